namespace TensorLite.Backends.Meta;

// The members of IBackend.Indexing.cs: nothing is computed; no index is out of range.
internal sealed partial class MetaBackend
{
    public long FindIndexOutOfRange(Tensor index, long size, out long value)
    {
        value = 0;
        return -1;
    }

    public void IndexSelect(Tensor x, int axis, Tensor index, Tensor y) { }
    public void IndexAdd(Tensor y, int axis, Tensor index, Tensor src) { }
    public void Gather(Tensor x, int axis, Tensor index, Tensor y) { }
    public void ScatterAdd(Tensor y, int axis, Tensor index, Tensor src) { }
    public void Where(Tensor condition, Tensor a, Tensor b, Tensor y) { }
    public void Dropout(Tensor x, Tensor y, float p, ulong seed) { }
}
