using TensorLite.Numerics;

namespace TensorLite.Backends.Cpu;

// In-place block-wise 8-bit kernels: the same block routines as ReferenceKernels, over native memory, one
// contiguous range of blocks per core.
internal sealed unsafe partial class CpuBackend
{
    private const int Block = BlockwiseQuantizer.BlockSize;

    public void BlockwiseQuantize(Tensor x, Tensor codes, Tensor absmax, bool signed)
    {
        QuantizedChecks.Check(x, codes, absmax);
        nint xp = (nint)Ptr(x), cp = (nint)BytePtr(codes), ap = (nint)Ptr(absmax);
        ForEachBlock(absmax.Numel, x.Numel, 16L * Block, (b, s, len) =>
            ((float*)ap)[b] = BlockwiseQuantizer.QuantizeBlock(new ReadOnlySpan<float>((float*)xp + s, len),
                new Span<byte>((byte*)cp + s, len), signed));
    }

    public void BlockwiseDequantize(Tensor codes, Tensor absmax, Tensor x, bool signed)
    {
        QuantizedChecks.Check(x, codes, absmax);
        nint xp = (nint)Ptr(x), cp = (nint)BytePtr(codes), ap = (nint)Ptr(absmax);
        ForEachBlock(absmax.Numel, x.Numel, 2L * Block, (b, s, len) =>
            BlockwiseQuantizer.DequantizeBlock(new ReadOnlySpan<byte>((byte*)cp + s, len), ((float*)ap)[b],
                new Span<float>((float*)xp + s, len), signed));
    }

    /// <summary>Runs <paramref name="block"/>(index, first element, length) for each block of an
    /// <paramref name="n"/>-element tensor, a contiguous range of blocks per core.</summary>
    private static void ForEachBlock(int blocks, int n, long workPerBlock, Action<int, int, int> block) =>
        CpuParallel.For(blocks, workPerBlock, (start, end) =>
        {
            for (int b = start; b < end; b++)
            {
                int s = b * Block;
                block(b, s, Math.Min(Block, n - s));
            }
        });

    public void AdamDirection8bit(Tensor grad, Tensor mCodes, Tensor mAbsmax, Tensor vCodes, Tensor vAbsmax, Tensor direction, AdamWStepParams h)
    {
        QuantizedChecks.CheckAdam(grad, mCodes, mAbsmax, vCodes, vAbsmax, direction);
        int n = grad.Numel;
        nint gp = (nint)Ptr(grad), dp = (nint)Ptr(direction);
        nint mcp = (nint)BytePtr(mCodes), vcp = (nint)BytePtr(vCodes), map = (nint)Ptr(mAbsmax), vap = (nint)Ptr(vAbsmax);
        CpuParallel.For(mAbsmax.Numel, 40L * Block, (start, end) =>
        {
            Span<float> scratch = stackalloc float[2 * Block];
            for (int b = start; b < end; b++)
            {
                int s = b * Block, len = Math.Min(Block, n - s);
                BlockwiseQuantizer.AdamBlock(new ReadOnlySpan<float>((float*)gp + s, len),
                    new Span<byte>((byte*)mcp + s, len), ref ((float*)map)[b],
                    new Span<byte>((byte*)vcp + s, len), ref ((float*)vap)[b],
                    new Span<float>((float*)dp + s, len), h, scratch);
            }
        });
    }
}
