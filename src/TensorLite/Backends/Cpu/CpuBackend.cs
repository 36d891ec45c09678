using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using TensorLite.Numerics;

namespace TensorLite.Backends.Cpu;

/// <summary>The pure-managed CPU backend: TensorPrimitives for element-wise work and reductions, a packed
/// Vector512 GEMM, and both cores for large loops. Kernels of op groups live in the partial files beside it.</summary>
internal sealed unsafe partial class CpuBackend : IBackend
{
    public static CpuBackend Instance { get; } = new();

    private CpuBackend() { }

    public string Name => "cpu";
    public string Description => $"managed CPU backend, {CpuParallel.Threads} threads";

    public bool ComputesValues => true;

    public Memory.MemoryLedger Memory { get; } = new();

    public Storage Allocate(long byteLength) => new CpuStorage(this, byteLength);

    /// <summary>Returns the blocks <see cref="CpuMemoryPool"/> keeps for reuse (process-wide: every CPU tensor's pool).</summary>
    public void TrimCache() => CpuMemoryPool.TrimCache();

    internal static byte* BytePtr(Tensor t) => ((CpuStorage)t.Storage).Pointer + (long)t.Offset * t.DType.SizeInBytes();
    internal static float* Ptr(Tensor t) => (float*)((CpuStorage)t.Storage).Pointer + t.Offset;
    internal static Span<float> Span(Tensor t) => new(Ptr(t), t.Numel);

    public void CopyToHost(Tensor source, Span<byte> destination) =>
        new ReadOnlySpan<byte>(BytePtr(source), source.Numel * source.DType.SizeInBytes()).CopyTo(destination);

    public void CopyFromHost(ReadOnlySpan<byte> source, Tensor destination)
    {
        var target = new Span<byte>(BytePtr(destination), destination.Numel * destination.DType.SizeInBytes());
        if (source.Length != target.Length)
            throw new ArgumentException($"CopyFromHost: {source.Length} bytes for {destination.Describe()}, which holds {target.Length}.", nameof(source));
        source.CopyTo(target);
    }

    public void Fill(Tensor destination, double value)
    {
        byte* p = BytePtr(destination);
        int n = destination.Numel;
        switch (destination.DType)
        {
            case DType.Float32: new Span<float>(p, n).Fill((float)value); break;
            case DType.BFloat16: new Span<ushort>(p, n).Fill(HalfPrecision.FloatToBFloat16((float)value)); break;
            case DType.Float16: new Span<ushort>(p, n).Fill(HalfPrecision.FloatToFloat16((float)value)); break;
            case DType.Int8: new Span<sbyte>(p, n).Fill((sbyte)value); break;
            case DType.UInt8: new Span<byte>(p, n).Fill((byte)value); break;
            case DType.Int32: new Span<int>(p, n).Fill((int)value); break;
            case DType.Int64: new Span<long>(p, n).Fill((long)value); break;
        }
    }

    public void Copy(Tensor source, Tensor destination)
    {
        var loop = new StridedLoop(source.Shape, source.Strides.ToArray(), destination.Strides.ToArray());
        int rowLength = loop.RowLength;
        int srcStride = loop.RowStride(0), dstStride = loop.RowStride(1);
        int srcSize = source.DType.SizeInBytes(), dstSize = destination.DType.SizeInBytes();
        nint src = (nint)BytePtr(source), dst = (nint)BytePtr(destination);
        DType st = source.DType, dt = destination.DType;
        CpuParallel.For(loop.RowCount, rowLength, (start, end) =>
        {
            for (int row = start; row < end; row++)
            {
                byte* s = (byte*)src + (long)loop.RowOffset(0, row) * srcSize;
                byte* d = (byte*)dst + (long)loop.RowOffset(1, row) * dstSize;
                CopyRow(s, srcStride, st, d, dstStride, dt, rowLength);
            }
        });
    }

    private static void CopyRow(byte* src, int srcStride, DType srcType, byte* dst, int dstStride, DType dstType, int n)
    {
        if (srcType == dstType && srcStride == 1 && dstStride == 1)
        {
            long bytes = (long)n * srcType.SizeInBytes();
            Buffer.MemoryCopy(src, dst, bytes, bytes);
            return;
        }
        if (srcType == dstType)
        {
            // Same dtype, strided: move raw elements of the dtype's width.
            switch (srcType.SizeInBytes())
            {
                case 4: StridedMove((uint*)src, srcStride, (uint*)dst, dstStride, n); return;
                case 2: StridedMove((ushort*)src, srcStride, (ushort*)dst, dstStride, n); return;
                case 1: StridedMove(src, srcStride, dst, dstStride, n); return;
                case 8: StridedMove((ulong*)src, srcStride, (ulong*)dst, dstStride, n); return;
            }
        }
        if (srcStride == 1 && dstStride == 1 && srcType == DType.Float32 && dstType == DType.Float16)
        {
            TensorPrimitives.ConvertToHalf(new ReadOnlySpan<float>(src, n), new Span<Half>(dst, n));
            return;
        }
        if (srcStride == 1 && dstStride == 1 && srcType == DType.Float16 && dstType == DType.Float32)
        {
            TensorPrimitives.ConvertToSingle(new ReadOnlySpan<Half>(src, n), new Span<float>(dst, n));
            return;
        }
        if (srcType == DType.Float32 && dstType == DType.BFloat16)
        {
            float* s = (float*)src; ushort* d = (ushort*)dst;
            for (int i = 0; i < n; i++) d[(long)i * dstStride] = HalfPrecision.FloatToBFloat16(s[(long)i * srcStride]);
            return;
        }
        if (srcType == DType.BFloat16 && dstType == DType.Float32)
        {
            ushort* s = (ushort*)src; float* d = (float*)dst;
            for (int i = 0; i < n; i++) d[(long)i * dstStride] = HalfPrecision.BFloat16ToFloat(s[(long)i * srcStride]);
            return;
        }
        int ss = srcType.SizeInBytes(), ds = dstType.SizeInBytes();
        for (int i = 0; i < n; i++)
            Write(dst + (long)i * dstStride * ds, dstType, Read(src + (long)i * srcStride * ss, srcType));
    }

    private static void StridedMove<T>(T* src, int srcStride, T* dst, int dstStride, int n) where T : unmanaged
    {
        for (int i = 0; i < n; i++) dst[(long)i * dstStride] = src[(long)i * srcStride];
    }

    // Every arm is widened to double on purpose: a switch whose arms are float, int and long has the natural type float,
    // which would round integers above 2^24 (int32 16777217 would copy to int64 as 16777216).
    private static double Read(byte* p, DType t) => t switch
    {
        DType.Float32 => (double)*(float*)p,
        DType.BFloat16 => HalfPrecision.BFloat16ToFloat(*(ushort*)p),
        DType.Float16 => HalfPrecision.Float16ToFloat(*(ushort*)p),
        DType.Int8 => *(sbyte*)p,
        DType.UInt8 => *p,
        DType.Int32 => *(int*)p,
        DType.Int64 => *(long*)p,
        _ => throw new ArgumentOutOfRangeException(nameof(t)),
    };

    /// <summary>Float → integer conversions round to nearest and saturate to the integer range.</summary>
    private static void Write(byte* p, DType t, double v)
    {
        switch (t)
        {
            case DType.Float32: *(float*)p = (float)v; break;
            case DType.BFloat16: *(ushort*)p = HalfPrecision.FloatToBFloat16((float)v); break;
            case DType.Float16: *(ushort*)p = HalfPrecision.FloatToFloat16((float)v); break;
            case DType.Int8: *(sbyte*)p = (sbyte)Math.Clamp(Math.Round(v), sbyte.MinValue, sbyte.MaxValue); break;
            case DType.UInt8: *p = (byte)Math.Clamp(Math.Round(v), byte.MinValue, byte.MaxValue); break;
            case DType.Int32: *(int*)p = (int)Math.Clamp(Math.Round(v), int.MinValue, int.MaxValue); break;
            case DType.Int64: *(long*)p = (long)Math.Clamp(Math.Round(v), long.MinValue, long.MaxValue); break;
        }
    }

    // ---- element-wise -------------------------------------------------------------------------------

    public void Unary(UnaryOp op, Tensor x, Tensor y, float p0, float p1)
    {
        if (x.DType != DType.Float32 || y.DType != DType.Float32)
        {
            UnaryMixed(op, x, y, p0, p1);
            return;
        }
        nint xp = (nint)Ptr(x), yp = (nint)Ptr(y);
        CpuParallel.For(x.Numel, 4, (start, end) =>
        {
            var xs = new ReadOnlySpan<float>((float*)xp + start, end - start);
            var ys = new Span<float>((float*)yp + start, end - start);
            UnaryKernels.Forward(op, xs, ys, p0, p1);
        });
    }

    public void UnaryBackward(UnaryOp op, Tensor x, Tensor y, Tensor gy, Tensor gx, float p0, float p1)
    {
        nint xp = (nint)Ptr(x), yp = (nint)Ptr(y), gyp = (nint)Ptr(gy), gxp = (nint)Ptr(gx);
        CpuParallel.For(x.Numel, 4, (start, end) =>
        {
            int n = end - start;
            UnaryKernels.Backward(op,
                new ReadOnlySpan<float>((float*)xp + start, n), new ReadOnlySpan<float>((float*)yp + start, n),
                new ReadOnlySpan<float>((float*)gyp + start, n), new Span<float>((float*)gxp + start, n), p0, p1);
        });
    }

    public void Binary(BinaryOp op, Tensor a, Tensor b, Tensor y)
    {
        if (!AllFloat32(a, b, y))
        {
            BinaryMixed(op, a, b, y);
            return;
        }
        var loop = new StridedLoop(y.Shape, a.Strides.ToArray(), b.Strides.ToArray(), y.Strides.ToArray());
        int n = loop.RowLength, sa = loop.RowStride(0), sb = loop.RowStride(1);
        nint ap = (nint)Ptr(a), bp = (nint)Ptr(b), yp = (nint)Ptr(y);
        if (loop.RowCount == 1 && sa <= 1 && sb <= 1)
        {
            // One long row: split it across the cores.
            CpuParallel.For(n, 1, (start, end) => BinaryKernels.Row(op,
                (float*)ap + (long)start * sa, sa, (float*)bp + (long)start * sb, sb, (float*)yp + start, end - start));
            return;
        }
        CpuParallel.For(loop.RowCount, n, (start, end) =>
        {
            for (int row = start; row < end; row++)
                BinaryKernels.Row(op, (float*)ap + loop.RowOffset(0, row), sa, (float*)bp + loop.RowOffset(1, row), sb,
                    (float*)yp + loop.RowOffset(2, row), n);
        });
    }

    public void Reduce(ReduceOp op, Tensor x, int axis, Tensor y)
    {
        var shape = x.Shape;
        int len = shape[axis];
        int outer = 1, inner = 1;
        for (int i = 0; i < axis; i++) outer *= shape[i];
        for (int i = axis + 1; i < shape.Length; i++) inner *= shape[i];
        nint xp = (nint)Ptr(x), yp = (nint)Ptr(y);
        if (inner == 1)
        {
            CpuParallel.For(outer, len, (start, end) =>
            {
                for (int o = start; o < end; o++)
                {
                    var row = new ReadOnlySpan<float>((float*)xp + (long)o * len, len);
                    ((float*)yp)[o] = op == ReduceOp.Sum ? TensorPrimitives.Sum(row) : TensorPrimitives.Max(row);
                }
            });
            return;
        }
        CpuParallel.For(outer, (long)len * inner, (start, end) =>
        {
            for (int o = start; o < end; o++)
            {
                var dst = new Span<float>((float*)yp + (long)o * inner, inner);
                float* block = (float*)xp + (long)o * len * inner;
                if (len == 0) { dst.Fill(0); continue; }
                new ReadOnlySpan<float>(block, inner).CopyTo(dst);
                for (int r = 1; r < len; r++)
                {
                    var src = new ReadOnlySpan<float>(block + (long)r * inner, inner);
                    if (op == ReduceOp.Sum) TensorPrimitives.Add(dst, src, dst);
                    else TensorPrimitives.Max(dst, src, dst);
                }
            }
        });
    }
}
