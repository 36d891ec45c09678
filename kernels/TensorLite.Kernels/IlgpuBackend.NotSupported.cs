namespace TensorLite.Kernels;

// IBackend members that have no ILGPU kernel yet (docs/gpu.md lists them).
public sealed partial class IlgpuBackend
{
    private static NotSupportedException Missing(string op) => new($"{op} has no ILGPU kernel yet");

    public void CausalAttentionForward(Tensor q, Tensor k, Tensor v, Tensor o, Tensor lse, float scale) =>
        throw Missing(nameof(CausalAttentionForward));

    public void CausalAttentionBackward(Tensor q, Tensor k, Tensor v, Tensor o, Tensor lse, Tensor dO,
        Tensor dq, Tensor dk, Tensor dv, float scale) => throw Missing(nameof(CausalAttentionBackward));

    public long FindIndexOutOfRange(Tensor index, long size, out long value) => throw Missing(nameof(FindIndexOutOfRange));
    public void IndexSelect(Tensor x, int axis, Tensor index, Tensor y) => throw Missing(nameof(IndexSelect));
    public void IndexAdd(Tensor y, int axis, Tensor index, Tensor src) => throw Missing(nameof(IndexAdd));
    public void Gather(Tensor x, int axis, Tensor index, Tensor y) => throw Missing(nameof(Gather));
    public void ScatterAdd(Tensor y, int axis, Tensor index, Tensor src) => throw Missing(nameof(ScatterAdd));
    public void Where(Tensor condition, Tensor a, Tensor b, Tensor y) => throw Missing(nameof(Where));
    public void Dropout(Tensor x, Tensor y, float p, ulong seed) => throw Missing(nameof(Dropout));

    public void HouseholderQr(Tensor a, Tensor q, Tensor r) => throw Missing(nameof(HouseholderQr));
    public void Svd(Tensor a, Tensor u, Tensor s, Tensor vt) => throw Missing(nameof(Svd));
}
