using System.Reflection;
using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace TensorLite.Tests.Support;

/// <summary>Compiles kernels to PTX for one CUDA architecture with ILGPU's PTX backend alone: no GPU, driver or NVVM
/// is needed, so CI checks that every kernel would load on sm_80/sm_90 hardware.</summary>
public sealed class OfflinePtx : IDisposable
{
    private readonly Context _context;
    private readonly PTXBackend _backend;

    /// <param name="sm">80 (A100) or 90 (H100/H200).</param>
    public OfflinePtx(int sm)
    {
        var architecture = sm switch
        {
            80 => CudaArchitecture.SM_80,
            90 => CudaArchitecture.SM_90,
            _ => throw new ArgumentOutOfRangeException(nameof(sm), sm, "Only sm_80 and sm_90 are checked."),
        };
        _context = Context.Create(b => b.EnableAlgorithms());
        _backend = new PTXBackend(_context, architecture, CudaInstructionSet.ISA_80, nvvmAPI: null!);
    }

    /// <summary>The PTX assembly of <paramref name="kernel"/>; explicitly grouped kernels declare their own group size.</summary>
    public string Compile(MethodInfo kernel, bool explicitlyGrouped = true)
    {
        var entry = explicitlyGrouped
            ? EntryPointDescription.FromExplicitlyGroupedKernel(kernel)
            : EntryPointDescription.FromImplicitlyGroupedKernel(kernel);
        return ((PTXCompiledKernel)_backend.Compile(entry, KernelSpecialization.Empty)).PTXAssembly;
    }

    public void Dispose()
    {
        _backend.Dispose();
        _context.Dispose();
    }
}
