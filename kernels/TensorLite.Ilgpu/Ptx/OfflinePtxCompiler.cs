using System.Reflection;
using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace TensorLite.Ilgpu.Ptx;

/// <summary>
/// Compiles kernels to PTX for one CUDA architecture with ILGPU's PTX backend alone: no GPU, driver or NVVM is
/// needed. The PTX is ISA 7.8, the newest that the CUDA 11.8 assembler (ptxas) accepts, so the same text that
/// CUDA would load can also be assembled offline (<see cref="PtxAssembler"/>).
/// </summary>
public sealed class OfflinePtxCompiler : IDisposable
{
    private readonly Context _context;
    private readonly PTXBackend _backend;

    /// <param name="sm">80 (A100) or 90 (H100/H200).</param>
    public OfflinePtxCompiler(int sm)
    {
        var architecture = sm switch
        {
            80 => CudaArchitecture.SM_80,
            90 => CudaArchitecture.SM_90,
            _ => throw new ArgumentOutOfRangeException(nameof(sm), sm, "Only sm_80 and sm_90 are checked."),
        };
        Sm = sm;
        _context = Context.Create(b => b.EnableAlgorithms().EnableTensorCoreMma());
        _backend = new PTXBackend(_context, architecture, CudaInstructionSet.ISA_78, nvvmAPI: null!);
    }

    public int Sm { get; }

    /// <summary>The PTX assembly of <paramref name="kernel"/>; explicitly grouped kernels declare their own group size.</summary>
    public string Compile(MethodInfo kernel, bool explicitlyGrouped = true)
    {
        var entry = explicitlyGrouped
            ? EntryPointDescription.FromExplicitlyGroupedKernel(kernel)
            : EntryPointDescription.FromImplicitlyGroupedKernel(kernel);
        return ((PTXCompiledKernel)_backend.Compile(entry, KernelSpecialization.Empty)).PTXAssembly;
    }

    /// <summary>A readable name for a kernel of <see cref="IlgpuKernels.All"/>: the method, with the element type of a
    /// generic one (Fill&lt;UInt32&gt;).</summary>
    public static string NameOf(MethodInfo kernel) => kernel.IsGenericMethod
        ? $"{kernel.Name}<{string.Join(",", kernel.GetGenericArguments().Select(t => t.Name))}>"
        : kernel.Name;

    public void Dispose()
    {
        _backend.Dispose();
        _context.Dispose();
    }
}
