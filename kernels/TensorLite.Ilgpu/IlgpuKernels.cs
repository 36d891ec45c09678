using System.Reflection;
using ILGPU;
using ILGPU.Algorithms;

namespace TensorLite.Ilgpu;

/// <summary>
/// The ILGPU kernels: static methods over <see cref="ArrayView{T}"/>. Element-wise kernels are implicitly grouped
/// (one thread per element); the GEMM kernels are in <see cref="GemmKernels"/>.
/// Only scalar code, <see cref="XMath"/> and plain arithmetic are used inside, so they compile for PTX and run on
/// the CPU accelerator alike.
/// </summary>
public static partial class IlgpuKernels
{
    private const float GeluC = 0.7978845608f, GeluA = 0.044715f;

    // ---- fill and copy ------------------------------------------------------------------------------

    public static void Fill<T>(Index1D i, ArrayView<T> y, T value) where T : unmanaged => y[i] = value;

    public static void CopyStrided<T>(Index1D i, ArrayView<T> src, ArrayView<T> dst, StridedLayout l) where T : unmanaged
    {
        l.Offsets(i, out int s, out int d, out _);
        dst[d] = src[s];
    }

    public static void CopyF32ToBF16(Index1D i, ArrayView<float> src, ArrayView<ushort> dst, StridedLayout l)
    {
        l.Offsets(i, out int s, out int d, out _);
        dst[d] = FloatToBFloat16(src[s]);
    }

    public static void CopyBF16ToF32(Index1D i, ArrayView<ushort> src, ArrayView<float> dst, StridedLayout l)
    {
        l.Offsets(i, out int s, out int d, out _);
        dst[d] = Interop.IntAsFloat((uint)src[s] << 16);
    }

    public static void CopyF32ToF16(Index1D i, ArrayView<float> src, ArrayView<ushort> dst, StridedLayout l)
    {
        l.Offsets(i, out int s, out int d, out _);
        dst[d] = FloatToHalfBits(src[s]);
    }

    public static void CopyF16ToF32(Index1D i, ArrayView<ushort> src, ArrayView<float> dst, StridedLayout l)
    {
        l.Offsets(i, out int s, out int d, out _);
        dst[d] = HalfBitsToFloat(src[s]);
    }

    /// <summary>float32 → IEEE binary16 bits with round-to-nearest-even, done on integer bits so the CPU accelerator
    /// and the GPU round alike (ILGPU's managed Half conversion truncates).</summary>
    public static ushort FloatToHalfBits(float value)
    {
        uint x = Interop.FloatAsInt(value);
        uint sign = (x >> 16) & 0x8000u;
        uint abs = x & 0x7FFF_FFFFu;
        if (abs >= 0x7F80_0000u) return (ushort)(sign | (abs > 0x7F80_0000u ? 0x7E00u : 0x7C00u));
        if (abs >= 0x477F_F000u) return (ushort)(sign | 0x7C00u);          // rounds past 65504: infinity
        if (abs < 0x3880_0000u)                                           // below 2^-14: subnormal half
        {
            if (abs <= 0x3300_0000u) return (ushort)sign;                 // at most 2^-25 rounds to zero
            int shift = 126 - (int)(abs >> 23);
            uint mant = (abs & 0x7F_FFFFu) | 0x80_0000u;
            uint q = mant >> shift, rem = mant & ((1u << shift) - 1u), half = 1u << (shift - 1);
            if (rem > half || (rem == half && (q & 1u) != 0)) q++;
            return (ushort)(sign | q);
        }
        uint r = abs - 0x3800_0000u;                                      // rebias the exponent (127 → 15)
        uint h = r >> 13, low = r & 0x1FFFu;
        if (low > 0x1000u || (low == 0x1000u && (h & 1u) != 0)) h++;
        return (ushort)(sign | h);
    }

    public static float HalfBitsToFloat(ushort bits)
    {
        uint sign = ((uint)bits & 0x8000u) << 16;
        uint e = ((uint)bits >> 10) & 0x1Fu, m = (uint)bits & 0x3FFu;
        if (e == 0)
        {
            float sub = m * 5.9604645e-8f;                                // m · 2^-24, exact in float32
            return Interop.IntAsFloat(sign | Interop.FloatAsInt(sub));
        }
        if (e == 31) return Interop.IntAsFloat(sign | 0x7F80_0000u | (m << 13));
        return Interop.IntAsFloat(sign | ((e + 112u) << 23) | (m << 13));
    }

    /// <summary>float32 → bfloat16, round to nearest even, NaN kept quiet (same rule as the CPU backend).</summary>
    public static ushort FloatToBFloat16(float value)
    {
        uint bits = Interop.FloatAsInt(value);
        if ((bits & 0x7FFF_FFFFu) > 0x7F80_0000u) return (ushort)((bits >> 16) | 0x0040u);
        uint bias = 0x7FFFu + ((bits >> 16) & 1u);
        return (ushort)((bits + bias) >> 16);
    }

    /// <summary>The murmur3 finalizer: the CPU backend's hash behind dropout masks and stochastic rounding, so both
    /// backends draw the same bits from (seed, element index).</summary>
    internal static uint Mix32(uint h)
    {
        h = (h ^ (h >> 16)) * 0x85EBCA6Bu;
        h = (h ^ (h >> 13)) * 0xC2B2AE35u;
        return h ^ (h >> 16);
    }

    // ---- element-wise -------------------------------------------------------------------------------

    public static void Unary(Index1D i, ArrayView<float> x, ArrayView<float> y, int op, float p0, float p1) =>
        y[i] = UnaryValue((UnaryOp)op, x[i], p0, p1);

    public static void UnaryBackward(Index1D i, ArrayView<float> x, ArrayView<float> y, ArrayView<float> gy,
        ArrayView<float> gx, int op, float p0, float p1) =>
        gx[i] = gy[i] * UnaryDerivative((UnaryOp)op, x[i], y[i], p0, p1);

    private static float Sigmoid(float v) => 1f / (1f + XMath.Exp(-v));

    private static float UnaryValue(UnaryOp op, float v, float p0, float p1)
    {
        switch (op)
        {
            case UnaryOp.Neg: return -v;
            case UnaryOp.Exp: return XMath.Exp(v);
            case UnaryOp.Log: return XMath.Log(v);
            case UnaryOp.Sqrt: return XMath.Sqrt(v);
            case UnaryOp.Rsqrt: return XMath.Rsqrt(v);
            case UnaryOp.Abs: return XMath.Abs(v);
            case UnaryOp.Sign: return v > 0f ? 1f : v < 0f ? -1f : 0f;
            case UnaryOp.Relu: return v > 0f ? v : 0f;
            case UnaryOp.Silu: return v * Sigmoid(v);
            case UnaryOp.Gelu: return 0.5f * v * (1f + XMath.Tanh(GeluC * (v + GeluA * v * v * v)));
            case UnaryOp.Sigmoid: return Sigmoid(v);
            case UnaryOp.Tanh: return XMath.Tanh(v);
            case UnaryOp.Square: return v * v;
            case UnaryOp.Pow: return XMath.Pow(v, p0);
            case UnaryOp.Clamp: return XMath.Min(XMath.Max(v, p0), p1);
            default: return p0 * v + p1; // Affine
        }
    }

    /// <summary>dy/dx at x, given y = f(x).</summary>
    private static float UnaryDerivative(UnaryOp op, float x, float y, float p0, float p1)
    {
        switch (op)
        {
            case UnaryOp.Neg: return -1f;
            case UnaryOp.Exp: return y;
            case UnaryOp.Log: return 1f / x;
            case UnaryOp.Sqrt: return 0.5f / y;
            case UnaryOp.Rsqrt: return -0.5f * y * y * y;
            case UnaryOp.Abs: return x > 0f ? 1f : x < 0f ? -1f : 0f;
            case UnaryOp.Sign: return 0f;
            case UnaryOp.Relu: return x > 0f ? 1f : 0f;
            case UnaryOp.Silu:
            {
                float s = Sigmoid(x);
                return s * (1f - y) + y;
            }
            case UnaryOp.Gelu:
            {
                float t = XMath.Tanh(GeluC * (x + GeluA * x * x * x));
                float dt = (1f - t * t) * GeluC * (1f + 3f * GeluA * x * x);
                return 0.5f * (1f + t) + 0.5f * x * dt;
            }
            case UnaryOp.Sigmoid: return y * (1f - y);
            case UnaryOp.Tanh: return 1f - y * y;
            case UnaryOp.Square: return 2f * x;
            case UnaryOp.Pow: return p0 * XMath.Pow(x, p0 - 1f);
            case UnaryOp.Clamp: return x >= p0 && x <= p1 ? 1f : 0f;
            default: return p0; // Affine
        }
    }

    public static void Binary(Index1D i, ArrayView<float> a, ArrayView<float> b, ArrayView<float> y, StridedLayout l, int op)
    {
        l.Offsets(i, out int ia, out int ib, out int iy);
        float u = a[ia], v = b[ib];
        float r;
        switch ((BinaryOp)op)
        {
            case BinaryOp.Add: r = u + v; break;
            case BinaryOp.Sub: r = u - v; break;
            case BinaryOp.Mul: r = u * v; break;
            case BinaryOp.Div: r = u / v; break;
            case BinaryOp.Maximum: r = XMath.Max(u, v); break;
            case BinaryOp.Minimum: r = XMath.Min(u, v); break;
            case BinaryOp.Greater: r = u > v ? 1f : 0f; break;
            case BinaryOp.Less: r = u < v ? 1f : 0f; break;
            default: r = u == v ? 1f : 0f; break; // Equal
        }
        y[iy] = r;
    }

    // ---- reductions ---------------------------------------------------------------------------------

    /// <summary>One thread per output element of x viewed as [outer, len, inner]; op 0 = sum, 1 = max.</summary>
    public static void Reduce(Index1D i, ArrayView<float> x, ArrayView<float> y, int len, int inner, int op)
    {
        int o = i / inner, j = i - o * inner;
        int baseIndex = o * len * inner + j;
        if (len == 0) { y[i] = 0f; return; }
        float acc = x[baseIndex];
        for (int r = 1; r < len; r++)
        {
            float v = x[baseIndex + r * inner];
            acc = op == 0 ? acc + v : XMath.Max(acc, v);
        }
        y[i] = acc;
    }


    /// <summary>Every kernel method (generic ones instantiated as the backend loads them) and whether it is
    /// explicitly grouped; the PTX test compiles each of these.</summary>
    public static IReadOnlyList<(MethodInfo Method, bool ExplicitlyGrouped)> All()
    {
        const BindingFlags flags = BindingFlags.Public | BindingFlags.Static;
        MethodInfo M(string name) => typeof(IlgpuKernels).GetMethod(name, flags)!;
        var list = new List<(MethodInfo, bool)>();
        foreach (var t in new[] { typeof(byte), typeof(ushort), typeof(uint), typeof(ulong) })
        {
            list.Add((M(nameof(Fill)).MakeGenericMethod(t), false));
            list.Add((M(nameof(CopyStrided)).MakeGenericMethod(t), false));
        }
        foreach (var name in new[] { nameof(CopyF32ToBF16), nameof(CopyBF16ToF32), nameof(CopyF32ToF16), nameof(CopyF16ToF32),
                     nameof(Unary), nameof(UnaryBackward), nameof(Binary), nameof(Reduce) })
            list.Add((M(name), false));
        list.AddRange(NnKernels());
        list.AddRange(IndexingKernels());
        list.AddRange(AttentionKernels());
        list.AddRange(GemmKernels.All());
        list.AddRange(OptimKernels());
        list.AddRange(LinalgKernels());
        return list;
    }
}
