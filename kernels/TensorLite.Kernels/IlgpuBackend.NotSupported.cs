namespace TensorLite.Kernels;

// IBackend members that have no ILGPU kernel yet (docs/gpu.md lists them).
public sealed partial class IlgpuBackend
{
    private static NotSupportedException Missing(string op) => new($"{op} has no ILGPU kernel yet");

    public void HouseholderQr(Tensor a, Tensor q, Tensor r) => throw Missing(nameof(HouseholderQr));
    public void Svd(Tensor a, Tensor u, Tensor s, Tensor vt) => throw Missing(nameof(Svd));
}
