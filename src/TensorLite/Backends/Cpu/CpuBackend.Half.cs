using TensorLite.Numerics;

namespace TensorLite.Backends.Cpu;

// Element-wise kernels on bfloat16/float16 tensors: the float32 kernels run on chunks widened into stack
// buffers, and results are rounded to nearest even once when stored. The autograd engine accumulates
// gradients with IBackend.Binary(Add, existing, incoming, existing) directly, so bfloat16 gradients of
// bfloat16 parameters go through here (float32 sum, one rounding per accumulation).
internal sealed unsafe partial class CpuBackend
{
    private const int HalfChunk = 512;

    /// <summary>A float32 in-place update of <c>length</c> parameter values from as many operand values, starting at
    /// element <c>first</c> of the whole tensor (for state arrays indexed alongside).</summary>
    private delegate void WidenedUpdate(float* param, float* operand, int first, int length);

    /// <summary>
    /// Runs a float32 update kernel over a parameter and an operand of which at least one is half precision: both are
    /// widened chunk by chunk (so a nearest-rounded result is exactly round(float32 update)), and a half parameter's
    /// chunk is written back with <paramref name="rounding"/>. Shared by AdamW and ApplyUpdate.
    /// </summary>
    private static void UpdateInWidenedChunks(Tensor param, Tensor operand, long grain, ParamRounding rounding, WidenedUpdate update)
    {
        nint pb = (nint)BytePtr(param), ob = (nint)BytePtr(operand);
        DType pt = param.DType, ot = operand.DType;
        CpuParallel.For(param.Numel, grain, (start, end) =>
        {
            float* pBuf = stackalloc float[HalfChunk];
            float* oBuf = stackalloc float[HalfChunk];
            for (int j = start; j < end; j += HalfChunk)
            {
                int len = Math.Min(HalfChunk, end - j);
                float* pf = HalfKernels.AsFloat((byte*)pb + (long)j * pt.SizeInBytes(), pt, pBuf, len);
                float* of = HalfKernels.AsFloat((byte*)ob + (long)j * ot.SizeInBytes(), ot, oBuf, len);
                update(pf, of, j, len);
                if (pt != DType.Float32) HalfKernels.Store(pf, (ushort*)pb + j, pt, len, rounding, rounding.FirstIndex + j);
            }
        });
    }

    private static bool AllFloat32(Tensor a, Tensor b, Tensor y) =>
        a.DType == DType.Float32 && b.DType == DType.Float32 && y.DType == DType.Float32;

    private static void RequireFloating(Tensor t, string op)
    {
        if (!t.DType.IsFloatingPoint())
            throw new DTypeMismatchException($"{op}: the CPU kernel reads float32, bfloat16 or float16, got {t.Describe()}.");
    }

    /// <summary>n elements at stride <paramref name="stride"/> (0 broadcasts one) of a float buffer as float32.</summary>
    private static void GatherFloats(byte* p, DType type, int stride, float* dst, int n)
    {
        if (stride == 1)
        {
            if (type == DType.Float32) Buffer.MemoryCopy(p, dst, n * 4L, n * 4L);
            else HalfKernels.Widen((ushort*)p, type, dst, n);
            return;
        }
        if (stride == 0)
        {
            new Span<float>(dst, n).Fill(HalfKernels.Load(p, type, 0));
            return;
        }
        for (int i = 0; i < n; i++) dst[i] = HalfKernels.Load(p, type, (long)i * stride);
    }

    private static void ScatterFloats(float* src, byte* p, DType type, int stride, int n)
    {
        if (stride == 1)
        {
            if (type == DType.Float32) Buffer.MemoryCopy(src, p, n * 4L, n * 4L);
            else HalfKernels.Narrow(src, (ushort*)p, type, n);
            return;
        }
        for (int i = 0; i < n; i++)
        {
            long at = (long)i * stride;
            switch (type)
            {
                case DType.Float32: ((float*)p)[at] = src[i]; break;
                case DType.BFloat16: ((ushort*)p)[at] = HalfPrecision.FloatToBFloat16(src[i]); break;
                default: ((ushort*)p)[at] = HalfPrecision.FloatToFloat16(src[i]); break;
            }
        }
    }

    /// <summary>Binary over operands of any float dtypes (mixed allowed): float32 math, y rounded once.</summary>
    private void BinaryMixed(BinaryOp op, Tensor a, Tensor b, Tensor y)
    {
        RequireFloating(a, "binary"); RequireFloating(b, "binary"); RequireFloating(y, "binary");
        var loop = new StridedLoop(y.Shape, a.Strides.ToArray(), b.Strides.ToArray(), y.Strides.ToArray());
        int n = loop.RowLength, sa = loop.RowStride(0), sb = loop.RowStride(1), sy = loop.RowStride(2);
        nint ap = (nint)BytePtr(a), bp = (nint)BytePtr(b), yp = (nint)BytePtr(y);
        DType at = a.DType, bt = b.DType, yt = y.DType;
        int za = at.SizeInBytes(), zb = bt.SizeInBytes(), zy = yt.SizeInBytes();
        CpuParallel.For(loop.RowCount, n, (start, end) =>
        {
            float* ab = stackalloc float[HalfChunk];
            float* bb = stackalloc float[HalfChunk];
            float* yb = stackalloc float[HalfChunk];
            for (int row = start; row < end; row++)
            {
                byte* ar = (byte*)ap + (long)loop.RowOffset(0, row) * za;
                byte* br = (byte*)bp + (long)loop.RowOffset(1, row) * zb;
                byte* yr = (byte*)yp + (long)loop.RowOffset(2, row) * zy;
                for (int j = 0; j < n; j += HalfChunk)
                {
                    int len = Math.Min(HalfChunk, n - j);
                    GatherFloats(ar + (long)j * sa * za, at, sa, ab, len);
                    GatherFloats(br + (long)j * sb * zb, bt, sb, bb, len);
                    BinaryKernels.Row(op, ab, 1, bb, 1, yb, len);
                    ScatterFloats(yb, yr + (long)j * sy * zy, yt, sy, len);
                }
            }
        });
    }

    /// <summary>Unary over contiguous x and y of any float dtypes: float32 math, y rounded once.</summary>
    private void UnaryMixed(UnaryOp op, Tensor x, Tensor y, float p0, float p1)
    {
        RequireFloating(x, "unary"); RequireFloating(y, "unary");
        nint xp = (nint)BytePtr(x), yp = (nint)BytePtr(y);
        DType xt = x.DType, yt = y.DType;
        int zx = xt.SizeInBytes(), zy = yt.SizeInBytes();
        CpuParallel.For(x.Numel, 4, (start, end) =>
        {
            float* xb = stackalloc float[HalfChunk];
            float* yb = stackalloc float[HalfChunk];
            for (int j = start; j < end; j += HalfChunk)
            {
                int len = Math.Min(HalfChunk, end - j);
                GatherFloats((byte*)xp + (long)j * zx, xt, 1, xb, len);
                UnaryKernels.Forward(op, new ReadOnlySpan<float>(xb, len), new Span<float>(yb, len), p0, p1);
                ScatterFloats(yb, (byte*)yp + (long)j * zy, yt, 1, len);
            }
        });
    }
}
