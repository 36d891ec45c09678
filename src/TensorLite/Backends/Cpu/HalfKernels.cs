using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace TensorLite.Backends.Cpu;

/// <summary>
/// Vectorized conversions between float32 and the 16-bit float formats, used wherever a CPU kernel reads or
/// writes a bfloat16/float16 tensor while computing in float32: GEMM packing, the optimizer write-back,
/// element-wise ops and copies. bfloat16 → float32 is exact (a 16-bit shift); float32 → bfloat16 rounds to
/// nearest even (bit-identical to <see cref="HalfPrecision.FloatToBFloat16"/>) or stochastically.
/// </summary>
internal static unsafe class HalfKernels
{
    /// <summary>d[i] = (float)s[i] for n contiguous 16-bit floats of <paramref name="type"/> (bfloat16 or float16).</summary>
    public static void Widen(ushort* s, DType type, float* d, int n)
    {
        if (type == DType.Float16)
        {
            TensorPrimitives.ConvertToSingle(new ReadOnlySpan<Half>(s, n), new Span<float>(d, n));
            return;
        }
        int i = 0;
        if (Avx512F.IsSupported)
        {
            for (; i + 16 <= n; i += 16)
                Avx512F.ShiftLeftLogical(Avx512F.ConvertToVector512UInt32(Vector256.Load(s + i)), 16).AsSingle().Store(d + i);
        }
        else if (Avx2.IsSupported)
        {
            for (; i + 8 <= n; i += 8)
                Avx2.ShiftLeftLogical(Avx2.ConvertToVector256Int32(Vector128.Load(s + i)), 16).AsSingle().Store(d + i);
        }
        for (; i < n; i++) d[i] = HalfPrecision.BFloat16ToFloat(s[i]);
    }

    /// <summary>d[i] = round-to-nearest-even(s[i]) for n contiguous floats into <paramref name="type"/> (bfloat16 or float16).</summary>
    public static void Narrow(float* s, ushort* d, DType type, int n)
    {
        if (type == DType.Float16)
        {
            TensorPrimitives.ConvertToHalf(new ReadOnlySpan<float>(s, n), new Span<Half>(d, n));
            return;
        }
        int i = 0;
        if (Avx512F.IsSupported && Avx512BW.IsSupported)
        {
            for (; i + 16 <= n; i += 16)
                Avx512F.ConvertToVector256UInt16(RoundBf16(Vector512.Load(s + i))).Store(d + i);
        }
        for (; i < n; i++) d[i] = HalfPrecision.FloatToBFloat16(s[i]);
    }

    /// <summary>Round-to-nearest-even of 16 floats to bfloat16 bit patterns (in the low 16 bits of each lane);
    /// NaN stays a quiet NaN with its sign, like the scalar conversion.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<uint> RoundBf16(Vector512<float> x)
    {
        var bits = x.AsUInt32();
        var rounded = (bits + Vector512.Create(0x7FFFu) + ((bits >> 16) & Vector512<uint>.One)) >> 16;
        var isNaN = Vector512.GreaterThan(bits & Vector512.Create(0x7FFF_FFFFu), Vector512.Create(0x7F80_0000u));
        return Vector512.ConditionalSelect(isNaN, (bits >> 16) | Vector512.Create(0x0040u), rounded);
    }

    /// <summary>
    /// Stochastic rounding of 16 floats to bfloat16 with per-lane 16-bit random numbers <paramref name="r"/>:
    /// adding r below the kept bits and truncating rounds up with probability (dropped bits)/2^16, so the
    /// expectation equals the float32 value exactly. NaN stays NaN; ±Inf stays ±Inf.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<uint> StochasticBf16(Vector512<float> x, Vector512<uint> r)
    {
        var bits = x.AsUInt32();
        var rounded = (bits + (r & Vector512.Create(0xFFFFu))) >> 16;
        var special = Vector512.GreaterThanOrEqual(bits & Vector512.Create(0x7FFF_FFFFu), Vector512.Create(0x7F80_0000u));
        var keep = (bits >> 16) | (Vector512.GreaterThan(bits & Vector512.Create(0x7FFF_FFFFu), Vector512.Create(0x7F80_0000u)) & Vector512.Create(0x0040u));
        return Vector512.ConditionalSelect(special, keep, rounded);
    }

    /// <summary>Scalar stochastic rounding (same result as the vector form for the same random number).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort StochasticBf16(float x, uint r)
    {
        uint bits = BitConverter.SingleToUInt32Bits(x);
        uint magnitude = bits & 0x7FFF_FFFFu;
        if (magnitude > 0x7F80_0000u) return (ushort)((bits >> 16) | 0x0040u);
        if (magnitude == 0x7F80_0000u) return (ushort)(bits >> 16);
        return (ushort)((bits + (r & 0xFFFFu)) >> 16);
    }

    /// <summary>The 16-bit random number of element <paramref name="index"/> under a 64-bit key: a counter-based
    /// hash (two keyed rounds of the murmur3 finalizer, as dropout uses), independent of how loops are split.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint RandomBits(uint k0, uint k1, uint index) => Mix32(Mix32(index ^ k0) + k1) >> 16;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<uint> RandomBits(Vector512<uint> k0, Vector512<uint> k1, Vector512<uint> index) =>
        Mix32(Mix32(index ^ k0) + k1) >> 16;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static uint Mix32(uint h)
    {
        h = (h ^ (h >> 16)) * 0x85EBCA6Bu;
        h = (h ^ (h >> 13)) * 0xC2B2AE35u;
        return h ^ (h >> 16);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<uint> Mix32(Vector512<uint> h)
    {
        h = (h ^ (h >> 16)) * Vector512.Create(0x85EBCA6Bu);
        h = (h ^ (h >> 13)) * Vector512.Create(0xC2B2AE35u);
        return h ^ (h >> 16);
    }

    /// <summary>Stores n floats into a 16-bit parameter: nearest-even, or (bfloat16 only) stochastic rounding whose
    /// random bits for element i are <see cref="RandomBits(uint, uint, uint)"/> of (key, firstIndex + i) (indices
    /// taken modulo 2³²).</summary>
    public static void Store(float* s, ushort* d, DType type, int n, ParamRounding rounding, long firstIndex)
    {
        if (rounding.Mode == ParamRoundingMode.Nearest || type != DType.BFloat16)
        {
            Narrow(s, d, type, n);
            return;
        }
        uint k0 = (uint)rounding.Seed, k1 = (uint)(rounding.Seed >> 32);
        int i = 0;
        if (Avx512F.IsSupported)
        {
            var vk0 = Vector512.Create(k0); var vk1 = Vector512.Create(k1);
            var index = Vector512<uint>.Indices + Vector512.Create((uint)firstIndex);
            var step = Vector512.Create(16u);
            for (; i + 16 <= n; i += 16, index += step)
                Avx512F.ConvertToVector256UInt16(StochasticBf16(Vector512.Load(s + i), RandomBits(vk0, vk1, index))).Store(d + i);
        }
        for (; i < n; i++) d[i] = StochasticBf16(s[i], RandomBits(k0, k1, (uint)(firstIndex + i)));
    }

    /// <summary>Reads element i of a float32/bfloat16/float16 buffer as float32.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Load(void* p, DType type, long i) => type switch
    {
        DType.Float32 => ((float*)p)[i],
        DType.BFloat16 => HalfPrecision.BFloat16ToFloat(((ushort*)p)[i]),
        _ => HalfPrecision.Float16ToFloat(((ushort*)p)[i]),
    };

    /// <summary>n contiguous elements of a float32/bfloat16/float16 buffer as float32: the buffer itself when it is
    /// float32, otherwise widened into <paramref name="scratch"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float* AsFloat(void* p, DType type, float* scratch, int n)
    {
        if (type == DType.Float32) return (float*)p;
        Widen((ushort*)p, type, scratch, n);
        return scratch;
    }
}
