using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace TensorLite.Numerics;

/// <summary>
/// Block-wise dynamic 8-bit quantization of optimizer states, after Dettmers et al. 2022, "8-bit Optimizers via
/// Block-wise Quantization" (arXiv:2110.02861). A tensor is cut into blocks of a fixed number of consecutive
/// elements (the last block may be shorter). Each block keeps one float32 scale, its absolute maximum, and one byte per
/// element: the index of the entry of a sorted 256-entry code map nearest to x / absmax. Dequantization is
/// map[code] · absmax. Because every block is normalized by its own maximum, an outlier only costs precision inside its
/// own block, and blocks are independent of each other (which is what lets the kernels run them in parallel).
/// </summary>
/// <remarks>
/// The code maps are the paper's dynamic ("dynamic tree") maps, built by <see cref="CreateDynamicMap"/>: most codes
/// are spent near ±1 and the rest spread geometrically down to 1e-7, which suits Adam's moments, whose magnitudes
/// within a block span orders of magnitude. The first moment uses the signed map; the second moment, which is never
/// negative, uses the unsigned map, which spends the sign bit on one more bit of fraction.
/// </remarks>
public static class BlockwiseQuantizer
{
    /// <summary>Elements per block unless a run chooses another size: 2048, the block size of the 8-bit optimizers paper
    /// and the one the GaLore paper reports for its 8-bit runs (bitsandbytes' 8-bit optimizers use 256; why 2048 stays
    /// the default is in docs/optimizers.md).</summary>
    public const int DefaultBlockSize = 2048;

    /// <summary>The smallest block size: one element per thread of a kernel group.</summary>
    public const int MinBlockSize = 64;

    /// <summary>The largest block size: the kernels keep a block's float32 moments in shared memory.</summary>
    public const int MaxBlockSize = 2048;

    /// <summary>Entries in a code map (8-bit codes).</summary>
    public const int MapSize = 256;

    /// <summary>The number of decimal exponent levels of the dynamic maps (magnitudes 10⁰ down to 10⁻⁶, times a
    /// fraction in (0.1, 1)).</summary>
    public const int ExponentLevels = 7;

    private static readonly float[] Signed = CreateDynamicMap(signed: true);
    private static readonly float[] Unsigned = CreateDynamicMap(signed: false);
    private static readonly Codebook SignedBook = new(Signed);
    private static readonly Codebook UnsignedBook = new(Unsigned);

    /// <summary>The signed dynamic map (for first moments), ascending.</summary>
    public static ReadOnlySpan<float> SignedMap => Signed;

    /// <summary>The unsigned dynamic map (for second moments), ascending.</summary>
    public static ReadOnlySpan<float> UnsignedMap => Unsigned;

    /// <summary>The code of 0 in the signed map (127: there are 127 negative entries below it).</summary>
    public static byte SignedZeroCode { get; } = (byte)Array.IndexOf(Signed, 0f);

    /// <summary>The code of 0 in the unsigned map (0).</summary>
    public static byte UnsignedZeroCode { get; } = (byte)Array.IndexOf(Unsigned, 0f);

    /// <summary>The map for a sign.</summary>
    public static ReadOnlySpan<float> Map(bool signed) => signed ? Signed : Unsigned;

    /// <summary>The code of 0 for a sign.</summary>
    public static byte ZeroCode(bool signed) => signed ? SignedZeroCode : UnsignedZeroCode;

    /// <summary>Blocks for <paramref name="count"/> elements: ceil(count / <paramref name="blockSize"/>).</summary>
    public static int BlockCount(long count, int blockSize = DefaultBlockSize) => (int)((count + blockSize - 1) / blockSize);

    /// <summary>Whether <paramref name="blockSize"/> is a power of two from <see cref="MinBlockSize"/> to
    /// <see cref="MaxBlockSize"/>.</summary>
    public static bool IsValidBlockSize(int blockSize) =>
        blockSize >= MinBlockSize && blockSize <= MaxBlockSize && (blockSize & (blockSize - 1)) == 0;

    /// <summary>Returns <paramref name="blockSize"/>; throws unless <see cref="IsValidBlockSize"/>.</summary>
    public static int CheckBlockSize(int blockSize)
    {
        if (!IsValidBlockSize(blockSize))
            throw new ArgumentOutOfRangeException(nameof(blockSize), blockSize,
                $"The 8-bit block size must be a power of two from {MinBlockSize} to {MaxBlockSize}, got {blockSize}.");
        return blockSize;
    }

    /// <summary>
    /// Builds a dynamic code map of 256 ascending values in [−1, 1] (signed) or [0, 1] (unsigned).
    /// </summary>
    /// <remarks>
    /// The construction follows the paper's dynamic tree: read an 8-bit code as a sign bit (signed maps only), then a
    /// run of z zero bits that selects the decimal exponent 10^−z, then an indicator bit, then the remaining bits as a
    /// linear fraction. With b non-sign bits (7 signed; 8 unsigned, where the sign bit becomes one more fraction
    /// bit), exponent level z ∈ {0, …, 6} leaves f = b − 1 − z fraction bits, so it holds 2^f values: the centres of
    /// 2^f equal bins of [0.1, 1], times 10^−z. Larger magnitudes get finer fractions, and the smallest nonzero
    /// magnitude is about 10^−7 (3.25·10^−7 unsigned, 5.5·10^−7 signed). Counting: signed, 2 · (64 + 32 + … + 1) = 254 values; unsigned, 128 + 64 + … + 2 = 254 values;
    /// each map then adds 0 and 1, so that a zero block and the block's absmax itself are exact. The signed map has no
    /// −1: an element equal to −absmax lands on the nearest negative code, half a top-level bin away, which is within
    /// the map's error bound (half the largest gap between adjacent codes).
    /// </remarks>
    public static float[] CreateDynamicMap(bool signed)
    {
        var values = new List<float>(MapSize) { 0f, 1f };
        int topFractionBits = signed ? 6 : 7;
        for (int z = 0; z < ExponentLevels; z++)
        {
            int bins = 1 << (topFractionBits - z);
            double scale = Math.Pow(10, -z);
            double width = 0.9 / bins;
            for (int k = 0; k < bins; k++)
            {
                float v = (float)(scale * (0.1 + width * (k + 0.5)));
                values.Add(v);
                if (signed) values.Add(-v);
            }
        }
        if (values.Count != MapSize) throw new InvalidOperationException($"A dynamic map needs {MapSize} values, built {values.Count}.");
        values.Sort();
        return values.ToArray();
    }

    /// <summary>The largest gap between adjacent entries of a map (the quantization error bound is half of it, times
    /// the block's absmax).</summary>
    public static float LargestGap(ReadOnlySpan<float> map)
    {
        float gap = 0;
        for (int i = 1; i < map.Length; i++) gap = MathF.Max(gap, map[i] - map[i - 1]);
        return gap;
    }

    private static Codebook Book(bool signed) => signed ? SignedBook : UnsignedBook;

    /// <summary>The nearest code of a normalized value: the number of midpoints between adjacent codes that lie
    /// strictly below <paramref name="value"/> (ties go to the lower code). Values outside the map's range clamp to
    /// its ends; NaN gives code 0.</summary>
    public static byte Encode(float value, bool signed) => Book(signed).Encode(value);

    // The block routines are called once per 2048 elements, so their loops are too short for on-stack replacement and
    // they would run as tier-0 code until call counting promotes them, which was measured not to happen within seconds
    // of busy kernels (several times slower). AggressiveOptimization compiles them fully optimized from the start.

    /// <summary>Quantizes one block and returns its absmax.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static unsafe float QuantizeBlock(ReadOnlySpan<float> x, Span<byte> codes, bool signed)
    {
        Need(codes.Length, x.Length, "codes");
        fixed (float* xp = x)
        fixed (byte* cp = codes)
        {
            float absmax = AbsMax(xp, x.Length);
            Book(signed).EncodeBlock(xp, cp, x.Length, absmax);
            return absmax;
        }
    }

    /// <summary>Dequantizes one block: x[i] = map[codes[i]] · absmax.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static unsafe void DequantizeBlock(ReadOnlySpan<byte> codes, float absmax, Span<float> x, bool signed)
    {
        Need(codes.Length, x.Length, "codes");
        fixed (byte* cp = codes)
        fixed (float* xp = x)
        {
            float* map = Book(signed).Map;
            int n = x.Length, i = 0;
            if (Avx2.IsSupported)
            {
                var a = Vector256.Create(absmax);
                for (; i <= n - 8; i += 8)
                    (Avx2.GatherVector256(map, Avx2.ConvertToVector256Int32(cp + i), 4) * a).Store(xp + i);
            }
            for (; i < n; i++) xp[i] = map[cp[i]] * absmax;
        }
    }

    private static void Need(int have, int need, string what)
    {
        if (have < need) throw new ArgumentException($"A block of {need} values needs at least {need} {what}, got {have}.");
    }

    // max |x[i]|; the order of a max of non-negative values does not change the result.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe float AbsMax(float* x, int n)
    {
        int i = 0;
        float max = 0;
        if (Vector256.IsHardwareAccelerated && n >= 8)
        {
            var acc = Vector256<float>.Zero;
            for (; i <= n - 8; i += 8) acc = Vector256.Max(acc, Vector256.Abs(Vector256.Load(x + i)));
            max = HorizontalMax(acc);
        }
        for (; i < n; i++) max = MathF.Max(max, MathF.Abs(x[i]));
        return max;
    }

    private static float HorizontalMax(Vector256<float> v)
    {
        float max = v.GetElement(0);
        for (int k = 1; k < Vector256<float>.Count; k++) max = MathF.Max(max, v.GetElement(k));
        return max;
    }

    /// <summary>
    /// The encoder of one map. The nearest code of a value y is the number of midpoints between adjacent codes that
    /// lie strictly below y. The map is ascending, so this count is a non-decreasing step function of y, and so of
    /// y's IEEE bits read as sign and magnitude. <see cref="Steps"/> is indexed by the sign, the exponent and the top
    /// <see cref="MantissaBits"/> mantissa bits of y (a "bucket" of magnitudes). The mantissa width is the smallest for
    /// which no bucket contains more than one midpoint, so within a bucket the code takes at most two values: lo, the
    /// smallest code of the bucket, and lo + 1 above the bucket's midpoint. Values of one bucket share all but their
    /// low 23 − MantissaBits bits, so "y is above the midpoint" is an integer comparison of those low bits (reversed
    /// for negative values, whose order is the reverse of their magnitudes'). An entry holds lo in its low byte and
    /// that threshold above it (one past the largest low bits when the bucket has no midpoint): one table read and
    /// one comparison give exactly the count, with no search. Magnitudes below the binade of the smallest |midpoint|
    /// share bucket 0, magnitudes of 1 and above (and NaN's bits) share the last one; neither holds a midpoint.
    /// </summary>
    private sealed unsafe class Codebook
    {
        // The tables live on the pinned object heap, so the pointers stay valid; the array fields keep them reachable
        // (a raw pointer alone does not, and the GC would free and reuse the memory).
        private readonly float[] _map;
        private readonly int[] _steps = [];
        public readonly float* Map;      // the 256 map entries
        public readonly int* Steps;      // 2·Buckets entries (positive magnitudes, then negative): lo | threshold << 8
        public readonly int MantissaBits;
        public readonly int Shift;       // 23 − MantissaBits
        public readonly int Bias;        // bucket = clamp((bits & 0x7FFFFFFF) >> Shift − Bias, 0, Buckets − 1)
        public readonly int Buckets;     // per sign
        public readonly int LowMask;     // (1 << Shift) − 1: the bits below the bucket
        public readonly byte ZeroCode;

        public Codebook(float[] map)
        {
            var mapPinned = GC.AllocateArray<float>(MapSize, pinned: true);
            map.CopyTo(mapPinned, 0);
            var mid = new float[MapSize]; // 255 midpoints, then +∞ (no value is above the last code)
            for (int i = 0; i < MapSize - 1; i++) mid[i] = 0.5f * (map[i] + map[i + 1]);
            mid[^1] = float.PositiveInfinity;
            _map = mapPinned;
            Map = (float*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(mapPinned));
            ZeroCode = (byte)Array.IndexOf(map, 0f);
            float smallest = float.PositiveInfinity;
            for (int i = 0; i < MapSize - 1; i++) smallest = MathF.Min(smallest, MathF.Abs(mid[i]));
            int eMin = (int)(BitConverter.SingleToUInt32Bits(smallest) >> 23); // biased exponent of the smallest |midpoint|
            for (int bits = 1; bits <= 12; bits++)
            {
                int shift = 23 - bits, bias = (eMin << bits) - 1, buckets = ((127 - eMin) << bits) + 2;
                int lowMask = (1 << shift) - 1;
                var steps = GC.AllocateArray<int>(2 * buckets, pinned: true);
                bool atMostOneMidpoint = true;
                for (int b = 0; b < buckets && atMostOneMidpoint; b++)
                {
                    // The bucket's magnitudes: [low, high], the first from 0 and the last to +∞.
                    float low = b == 0 ? 0f : BitConverter.Int32BitsToSingle((b + bias) << shift);
                    float high = b == buckets - 1 ? float.PositiveInfinity : BitConverter.Int32BitsToSingle(((b + bias + 1) << shift) - 1);
                    int posLo = Below(mid, low), posHi = Below(mid, high), negLo = Below(mid, -high), negHi = Below(mid, -low);
                    atMostOneMidpoint = posHi - posLo <= 1 && negHi - negLo <= 1;
                    // The midpoint of a positive bucket is mid[posLo] ∈ [low, high): y > it ⟺ low bits of y > its low bits.
                    // That of a negative bucket is mid[negLo] ∈ [−high, −low): y > it ⟺ |y| < |it| ⟺
                    // (lowMask − low bits of |y|) > (lowMask − its low bits).
                    int posT = posHi > posLo ? (int)(BitConverter.SingleToUInt32Bits(mid[posLo]) & lowMask) : lowMask + 1;
                    int negT = negHi > negLo ? lowMask - (int)(BitConverter.SingleToUInt32Bits(-mid[negLo]) & lowMask) : lowMask + 1;
                    if ((b == 0 || b == buckets - 1) && (posHi > posLo || negHi > negLo))
                        throw new InvalidOperationException("A clamped bucket of the code map holds a midpoint.");
                    steps[b] = posLo | posT << 8;
                    steps[buckets + b] = negLo | negT << 8;
                }
                if (!atMostOneMidpoint) continue;
                _steps = steps;
                Steps = (int*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(steps));
                LowMask = lowMask;
                MantissaBits = bits;
                Shift = shift;
                Bias = bias;
                Buckets = buckets;
                return;
            }
            throw new InvalidOperationException("No bucket width up to 12 mantissa bits separates the midpoints of the code map.");
        }

        // The definition of the code: how many midpoints lie strictly below y (used only to build the table).
        private static int Below(float[] mid, float y)
        {
            int count = 0;
            foreach (float m in mid) count += m < y ? 1 : 0;
            return count;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public byte Encode(float y)
        {
            uint bits = BitConverter.SingleToUInt32Bits(y);
            int b = Math.Clamp((int)((bits & 0x7FFF_FFFFu) >> Shift) - Bias, 0, Buckets - 1) + (int)(bits >> 31) * Buckets;
            int step = Steps[b], key = (int)(bits & (uint)LowMask) ^ ((int)bits >> 31 & LowMask);
            return float.IsNaN(y) ? (byte)0 : (byte)(step + (key > step >> 8 ? 1 : 0));
        }

        // Eight codes at once, the same arithmetic.
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public Vector256<int> Encode(Vector256<float> y)
        {
            var bits = y.AsInt32();
            var b = Vector256.ShiftRightLogical(bits & Vector256.Create(0x7FFF_FFFF), Shift) - Vector256.Create(Bias);
            b = Vector256.Min(Vector256.Max(b, Vector256<int>.Zero), Vector256.Create(Buckets - 1));
            b += Vector256.ShiftRightArithmetic(bits, 31) & Vector256.Create(Buckets);
            var step = Avx2.GatherVector256(Steps, b, 4);
            var lowMask = Vector256.Create(LowMask);
            var key = (bits & lowMask) ^ (Vector256.ShiftRightArithmetic(bits, 31) & lowMask);
            // GreaterThan is all ones (−1) above the bucket's midpoint; Equals(y, y) is zero for NaN.
            var code = (step & Vector256.Create(0xFF)) - Vector256.GreaterThan(key, Vector256.ShiftRightArithmetic(step, 8));
            return code & Vector256.Equals(y, y).AsInt32();
        }

        /// <summary>codes[i] = Encode(x[i] / absmax), or the zero code everywhere when absmax is 0. The division is
        /// kept (x · (1/absmax) can differ from x / absmax in the last bit, which can move a value across a
        /// midpoint).</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void EncodeBlock(float* x, byte* codes, int n, float absmax)
        {
            if (absmax == 0)
            {
                new Span<byte>(codes, n).Fill(ZeroCode);
                return;
            }
            int i = 0;
            if (Avx2.IsSupported)
            {
                var a = Vector256.Create(absmax);
                for (; i <= n - 32; i += 32)
                {
                    var c0 = Encode(Vector256.Load(x + i) / a);
                    var c1 = Encode(Vector256.Load(x + i + 8) / a);
                    var c2 = Encode(Vector256.Load(x + i + 16) / a);
                    var c3 = Encode(Vector256.Load(x + i + 24) / a);
                    Vector256.Narrow(Vector256.Narrow(c0, c1), Vector256.Narrow(c2, c3)).AsByte().Store(codes + i);
                }
            }
            for (; i < n; i++) codes[i] = Encode(x[i] / absmax);
        }
    }

    /// <summary>Quantizes a whole buffer block by block (<paramref name="absmax"/> has <see cref="BlockCount"/> entries).</summary>
    public static void Quantize(ReadOnlySpan<float> x, Span<byte> codes, Span<float> absmax, bool signed, int blockSize = DefaultBlockSize)
    {
        CheckSizes(x.Length, codes.Length, absmax.Length, blockSize);
        for (int b = 0; b < absmax.Length; b++)
        {
            int start = b * blockSize, len = Math.Min(blockSize, x.Length - start);
            absmax[b] = QuantizeBlock(x.Slice(start, len), codes.Slice(start, len), signed);
        }
    }

    /// <summary>Dequantizes a whole buffer block by block.</summary>
    public static void Dequantize(ReadOnlySpan<byte> codes, ReadOnlySpan<float> absmax, Span<float> x, bool signed, int blockSize = DefaultBlockSize)
    {
        CheckSizes(x.Length, codes.Length, absmax.Length, blockSize);
        for (int b = 0; b < absmax.Length; b++)
        {
            int start = b * blockSize, len = Math.Min(blockSize, x.Length - start);
            DequantizeBlock(codes.Slice(start, len), absmax[b], x.Slice(start, len), signed);
        }
    }

    internal static void CheckSizes(long values, long codes, long blocks, int blockSize)
    {
        CheckBlockSize(blockSize);
        if (codes != values)
            throw new ShapeMismatchException($"Block-wise quantization needs one code per value, got {codes} codes for {values} values.");
        if (blocks != BlockCount(values, blockSize))
            throw new ShapeMismatchException($"Block-wise quantization of {values} values in blocks of {blockSize} needs {BlockCount(values, blockSize)} block scales, got {blocks}.");
    }

    /// <summary>
    /// One block of 8-bit Adam: dequantizes m and v, updates them in float32 from the gradient, writes the Adam
    /// direction with <see cref="IBackend.AdamDirection"/>'s formula and rounding order (computed from the updated
    /// float32 moments, before they are rounded to 8 bits), and requantizes m (signed map) and v (unsigned map) with
    /// the block's new absmax values. <paramref name="scratch"/> holds at least 2·length floats.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static unsafe void AdamBlock(ReadOnlySpan<float> g, Span<byte> mCodes, ref float mAbsmax, Span<byte> vCodes, ref float vAbsmax,
        Span<float> direction, AdamWStepParams h, Span<float> scratch)
    {
        int n = g.Length;
        Need(mCodes.Length, n, "first-moment codes");
        Need(vCodes.Length, n, "second-moment codes");
        Need(direction.Length, n, "direction values");
        Need(scratch.Length, 2 * n, "scratch floats (two per value)");
        float invBc1 = 1f / h.BiasCorrection1;
        float invSqrtBc2 = 1f / MathF.Sqrt(h.BiasCorrection2);
        float c1 = 1f - h.Beta1, c2 = 1f - h.Beta2;
        float ma = mAbsmax, va = vAbsmax, newMa = 0, newVa = 0;
        float* sMap = SignedBook.Map, uMap = UnsignedBook.Map;
        fixed (float* gp = g)
        fixed (byte* mc = mCodes)
        fixed (byte* vc = vCodes)
        fixed (float* d = direction)
        fixed (float* m = scratch)
        {
            float* v = m + n;
            int i = 0;
            // The same operations in the same order as the scalar loop below (and as AdamDirection), eight at a time.
            if (Avx2.IsSupported)
            {
                var vb1 = Vector256.Create(h.Beta1); var vc1 = Vector256.Create(c1);
                var vb2 = Vector256.Create(h.Beta2); var vc2 = Vector256.Create(c2);
                var vBc1 = Vector256.Create(invBc1); var vInv = Vector256.Create(invSqrtBc2); var vEps = Vector256.Create(h.Eps);
                var vMa = Vector256.Create(ma); var vVa = Vector256.Create(va);
                Vector256<float> maxM = Vector256<float>.Zero, maxV = Vector256<float>.Zero;
                for (; i <= n - 8; i += 8)
                {
                    var gi = Vector256.Load(gp + i);
                    var mi = vb1 * (Avx2.GatherVector256(sMap, Avx2.ConvertToVector256Int32(mc + i), 4) * vMa) + vc1 * gi;
                    var vi = vb2 * (Avx2.GatherVector256(uMap, Avx2.ConvertToVector256Int32(vc + i), 4) * vVa) + vc2 * gi * gi;
                    mi.Store(m + i);
                    vi.Store(v + i);
                    (vBc1 * mi / (Vector256.Sqrt(vi) * vInv + vEps)).Store(d + i);
                    maxM = Vector256.Max(maxM, Vector256.Abs(mi));
                    maxV = Vector256.Max(maxV, vi);
                }
                newMa = HorizontalMax(maxM);
                newVa = HorizontalMax(maxV);
            }
            for (; i < n; i++)
            {
                float gi = gp[i];
                float mi = h.Beta1 * (sMap[mc[i]] * ma) + c1 * gi;
                float vi = h.Beta2 * (uMap[vc[i]] * va) + c2 * gi * gi;
                m[i] = mi;
                v[i] = vi;
                d[i] = invBc1 * mi / (MathF.Sqrt(vi) * invSqrtBc2 + h.Eps);
                newMa = MathF.Max(newMa, MathF.Abs(mi));
                newVa = MathF.Max(newVa, vi);
            }
            SignedBook.EncodeBlock(m, mc, n, newMa);
            UnsignedBook.EncodeBlock(v, vc, n, newVa);
        }
        mAbsmax = newMa;
        vAbsmax = newVa;
    }
}
