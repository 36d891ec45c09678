using TensorLite.Numerics;

namespace TensorLite.Backends.Meta;

// The members of IBackend.Quantized.cs: nothing is computed.
public sealed partial class MetaBackend
{
    public void BlockwiseQuantize(Tensor x, Tensor codes, Tensor absmax, bool signed, int blockSize = BlockwiseQuantizer.DefaultBlockSize) { }
    public void BlockwiseDequantize(Tensor codes, Tensor absmax, Tensor x, bool signed, int blockSize = BlockwiseQuantizer.DefaultBlockSize) { }
    public void AdamDirection8bit(Tensor grad, Tensor mCodes, Tensor mAbsmax, Tensor vCodes, Tensor vAbsmax, Tensor direction,
        AdamWStepParams h, int blockSize = BlockwiseQuantizer.DefaultBlockSize) { }
}
