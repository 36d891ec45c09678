using TensorLite.Numerics;

namespace TensorLite.Ilgpu;

// The block-wise 8-bit members (IBackend.Quantized.cs) over the kernels in OptimKernels.cs.
public sealed partial class IlgpuBackend
{

    public void BlockwiseQuantize(Tensor x, Tensor codes, Tensor absmax, bool signed, int blockSize = BlockwiseQuantizer.DefaultBlockSize)
    {
        QuantizedChecks.Check(x, codes, absmax, blockSize);
        if (x.Numel == 0) return;
        _optim.Quantize(OptimGroups(absmax.Numel), View<float>(x), View<byte>(codes), View<float>(absmax), x.Numel, blockSize,
            _optim.Tables, signed ? CodeTables.SignedMidpoints : CodeTables.UnsignedMidpoints);
    }

    public void BlockwiseDequantize(Tensor codes, Tensor absmax, Tensor x, bool signed, int blockSize = BlockwiseQuantizer.DefaultBlockSize)
    {
        QuantizedChecks.Check(x, codes, absmax, blockSize);
        if (x.Numel == 0) return;
        _optim.Dequantize(x.Numel, View<byte>(codes), View<float>(absmax), View<float>(x), blockSize, _optim.Tables,
            signed ? CodeTables.SignedMap : CodeTables.UnsignedMap);
    }

    public void AdamDirection8bit(Tensor grad, Tensor mCodes, Tensor mAbsmax, Tensor vCodes, Tensor vAbsmax, Tensor direction, AdamWStepParams h,
        int blockSize = BlockwiseQuantizer.DefaultBlockSize)
    {
        QuantizedChecks.CheckAdam(grad, mCodes, mAbsmax, vCodes, vAbsmax, direction, blockSize);
        if (grad.Numel == 0) return;
        _optim.Adam8bit(OptimGroups(mAbsmax.Numel), View<float>(grad), View<byte>(mCodes), View<float>(mAbsmax),
            View<byte>(vCodes), View<float>(vAbsmax), View<float>(direction), grad.Numel, blockSize, AdamParams(h), _optim.Tables);
    }
}
