using TensorLite.Numerics;

namespace TensorLite.Backends.Cpu;

// In-place block-wise 8-bit kernels: the same block routines as ReferenceKernels, over native memory, one
// contiguous range of blocks per core.
public sealed unsafe partial class CpuBackend
{
    public void BlockwiseQuantize(Tensor x, Tensor codes, Tensor absmax, bool signed, int blockSize = BlockwiseQuantizer.DefaultBlockSize)
    {
        QuantizedChecks.Check(x, codes, absmax, blockSize);
        nint xp = (nint)Ptr(x), cp = (nint)BytePtr(codes), ap = (nint)Ptr(absmax);
        ForEachBlock(absmax.Numel, x.Numel, blockSize, 16L * blockSize, (b, s, len) =>
            ((float*)ap)[b] = BlockwiseQuantizer.QuantizeBlock(new ReadOnlySpan<float>((float*)xp + s, len),
                new Span<byte>((byte*)cp + s, len), signed));
    }

    public void BlockwiseDequantize(Tensor codes, Tensor absmax, Tensor x, bool signed, int blockSize = BlockwiseQuantizer.DefaultBlockSize)
    {
        QuantizedChecks.Check(x, codes, absmax, blockSize);
        nint xp = (nint)Ptr(x), cp = (nint)BytePtr(codes), ap = (nint)Ptr(absmax);
        ForEachBlock(absmax.Numel, x.Numel, blockSize, 2L * blockSize, (b, s, len) =>
            BlockwiseQuantizer.DequantizeBlock(new ReadOnlySpan<byte>((byte*)cp + s, len), ((float*)ap)[b],
                new Span<float>((float*)xp + s, len), signed));
    }

    /// <summary>Runs <paramref name="block"/>(index, first element, length) for each block of
    /// <paramref name="blockSize"/> elements of an <paramref name="n"/>-element tensor, a contiguous range of blocks per core.</summary>
    private static void ForEachBlock(int blocks, int n, int blockSize, long workPerBlock, Action<int, int, int> block) =>
        CpuParallel.For(blocks, workPerBlock, (start, end) =>
        {
            for (int b = start; b < end; b++)
            {
                int s = b * blockSize;
                block(b, s, Math.Min(blockSize, n - s));
            }
        });

    public void AdamDirection8bit(Tensor grad, Tensor mCodes, Tensor mAbsmax, Tensor vCodes, Tensor vAbsmax, Tensor direction, AdamWStepParams h,
        int blockSize = BlockwiseQuantizer.DefaultBlockSize)
    {
        QuantizedChecks.CheckAdam(grad, mCodes, mAbsmax, vCodes, vAbsmax, direction, blockSize);
        int n = grad.Numel;
        nint gp = (nint)Ptr(grad), dp = (nint)Ptr(direction);
        nint mcp = (nint)BytePtr(mCodes), vcp = (nint)BytePtr(vCodes), map = (nint)Ptr(mAbsmax), vap = (nint)Ptr(vAbsmax);
        CpuParallel.For(mAbsmax.Numel, 40L * blockSize, (start, end) =>
        {
            Span<float> scratch = stackalloc float[2 * blockSize];
            for (int b = start; b < end; b++)
            {
                int s = b * blockSize, len = Math.Min(blockSize, n - s);
                BlockwiseQuantizer.AdamBlock(new ReadOnlySpan<float>((float*)gp + s, len),
                    new Span<byte>((byte*)mcp + s, len), ref ((float*)map)[b],
                    new Span<byte>((byte*)vcp + s, len), ref ((float*)vap)[b],
                    new Span<float>((float*)dp + s, len), h, scratch);
            }
        });
    }
}
