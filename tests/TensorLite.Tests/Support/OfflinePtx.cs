using System.Reflection;
using TensorLite.Ilgpu.Ptx;

namespace TensorLite.Tests.Support;

/// <summary>Compiles kernels to PTX for one CUDA architecture with ILGPU's PTX backend alone (no GPU, driver or NVVM),
/// so CI checks that every kernel would load on sm_80/sm_90 hardware. A thin test-side name for
/// <see cref="OfflinePtxCompiler"/>.</summary>
public sealed class OfflinePtx(int sm) : IDisposable
{
    private readonly OfflinePtxCompiler _compiler = new(sm);

    /// <summary>The PTX assembly of <paramref name="kernel"/>; explicitly grouped kernels declare their own group size.</summary>
    public string Compile(MethodInfo kernel, bool explicitlyGrouped = true) => _compiler.Compile(kernel, explicitlyGrouped);

    public void Dispose() => _compiler.Dispose();
}
