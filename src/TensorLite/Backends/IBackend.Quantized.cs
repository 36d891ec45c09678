using TensorLite.Numerics;

namespace TensorLite;

// Kernels of block-wise 8-bit optimizer states (Numerics/BlockwiseQuantization.cs). ReferenceKernels runs the shared
// block routines of BlockwiseQuantizer on host copies (slowly); the CPU backend runs them in place, one block per task,
// and the ILGPU backend one block per kernel group, with bitwise the same results.
public partial interface IBackend
{
    /// <summary>Block-wise quantization of a contiguous float32 tensor <paramref name="x"/> into uint8
    /// <paramref name="codes"/> (same element count) and float32 <paramref name="absmax"/> (one per block of
    /// <paramref name="blockSize"/> elements, <see cref="BlockwiseQuantizer.CheckBlockSize"/>), with the signed or
    /// unsigned dynamic map.</summary>
    void BlockwiseQuantize(Tensor x, Tensor codes, Tensor absmax, bool signed, int blockSize = BlockwiseQuantizer.DefaultBlockSize);

    /// <summary>The inverse: x[i] = map[codes[i]] · absmax[i / blockSize], into a contiguous float32 tensor.</summary>
    void BlockwiseDequantize(Tensor codes, Tensor absmax, Tensor x, bool signed, int blockSize = BlockwiseQuantizer.DefaultBlockSize);

    /// <summary>
    /// 8-bit Adam's direction: per block, dequantizes m (signed map) and v (unsigned map), updates them in float32
    /// (m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²), writes direction ← (m/bc1)/(sqrt(v/bc2)+eps) from the float32
    /// values with <see cref="AdamDirection"/>'s rounding order, and requantizes both moments with new block maxima.
    /// The learning rate and weight decay in <paramref name="h"/> are ignored.
    /// </summary>
    void AdamDirection8bit(Tensor grad, Tensor mCodes, Tensor mAbsmax, Tensor vCodes, Tensor vAbsmax, Tensor direction, AdamWStepParams h,
        int blockSize = BlockwiseQuantizer.DefaultBlockSize);
}

internal static class QuantizedChecks
{
    public static void Check(Tensor x, Tensor codes, Tensor absmax, int blockSize)
    {
        Need(x, DType.Float32, "values");
        Need(codes, DType.UInt8, "codes");
        Need(absmax, DType.Float32, "block scales");
        BlockwiseQuantizer.CheckSizes(x.Numel, codes.Numel, absmax.Numel, blockSize);
    }

    public static void CheckAdam(Tensor grad, Tensor mCodes, Tensor mAbsmax, Tensor vCodes, Tensor vAbsmax, Tensor direction, int blockSize)
    {
        Check(grad, mCodes, mAbsmax, blockSize);
        Check(direction, vCodes, vAbsmax, blockSize);
        if (direction.Numel != grad.Numel)
            throw new ShapeMismatchException($"The 8-bit Adam direction has {direction.Numel} elements but the gradient has {grad.Numel}.");
    }

    private static void Need(Tensor t, DType dtype, string what)
    {
        if (t.DType != dtype)
            throw new DTypeMismatchException($"Block-wise quantization needs {dtype.Name()} {what}, got {t.DType.Name()}.");
        if (!t.IsContiguous)
            throw new TensorLiteException($"Block-wise quantization needs contiguous {what}.");
    }
}
