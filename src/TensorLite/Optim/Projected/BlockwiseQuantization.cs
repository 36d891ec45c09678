namespace TensorLite.Optim.Projected;

/// <summary>
/// Block-wise dynamic 8-bit quantization of optimizer states, after Dettmers et al. 2022, "8-bit Optimizers via
/// Block-wise Quantization" (arXiv:2110.02861). A tensor is cut into blocks of <see cref="BlockSize"/> consecutive
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
    /// <summary>Elements per block (the paper's and bitsandbytes' block size for optimizer states).</summary>
    public const int BlockSize = 2048;

    /// <summary>Entries in a code map (8-bit codes).</summary>
    public const int MapSize = 256;

    /// <summary>The number of decimal exponent levels of the dynamic maps (magnitudes 10⁰ down to 10⁻⁶, times a
    /// fraction in (0.1, 1)).</summary>
    public const int ExponentLevels = 7;

    private static readonly float[] Signed = CreateDynamicMap(signed: true);
    private static readonly float[] Unsigned = CreateDynamicMap(signed: false);
    private static readonly float[] SignedMid = Midpoints(Signed);
    private static readonly float[] UnsignedMid = Midpoints(Unsigned);

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

    /// <summary>Blocks for <paramref name="count"/> elements: ceil(count / <see cref="BlockSize"/>).</summary>
    public static int BlockCount(long count) => (int)((count + BlockSize - 1) / BlockSize);

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

    /// <summary>The 255 midpoints between adjacent map entries, padded with +∞ to 256 so that the search below is a
    /// fixed sequence of 8 halvings.</summary>
    private static float[] Midpoints(float[] map)
    {
        var mid = new float[map.Length];
        for (int i = 0; i < map.Length - 1; i++) mid[i] = 0.5f * (map[i] + map[i + 1]);
        mid[^1] = float.PositiveInfinity;
        return mid;
    }

    /// <summary>The nearest code of a normalized value: the number of midpoints between adjacent codes that lie
    /// strictly below <paramref name="value"/>, found by binary search (ties go to the lower code). Values outside the
    /// map's range clamp to its ends; NaN gives code 0.</summary>
    public static byte Encode(float value, bool signed) => Encode(value, signed ? SignedMid : UnsignedMid);

    private static byte Encode(float value, float[] mid)
    {
        // Branch-free binary search over 256 sorted entries (the last is +∞): each halving adds its step when the
        // entry before it is below the value. Random data would mispredict a branching search at every level.
        ref float p = ref System.Runtime.InteropServices.MemoryMarshal.GetArrayDataReference(mid);
        int idx = 0;
        for (int step = 128; step > 0; step >>= 1)
            idx += System.Runtime.CompilerServices.Unsafe.Add(ref p, idx + step - 1) < value ? step : 0;
        return (byte)idx;
    }

    /// <summary>Quantizes one block (at most <see cref="BlockSize"/> elements) and returns its absmax.</summary>
    public static float QuantizeBlock(ReadOnlySpan<float> x, Span<byte> codes, bool signed)
    {
        float absmax = 0;
        for (int i = 0; i < x.Length; i++) absmax = MathF.Max(absmax, MathF.Abs(x[i]));
        EncodeBlock(x, codes, absmax, signed);
        return absmax;
    }

    private static void EncodeBlock(ReadOnlySpan<float> x, Span<byte> codes, float absmax, bool signed)
    {
        if (absmax == 0)
        {
            codes[..x.Length].Fill(ZeroCode(signed));
            return;
        }
        var mid = signed ? SignedMid : UnsignedMid;
        for (int i = 0; i < x.Length; i++) codes[i] = Encode(x[i] / absmax, mid);
    }

    /// <summary>Dequantizes one block: x[i] = map[codes[i]] · absmax.</summary>
    public static void DequantizeBlock(ReadOnlySpan<byte> codes, float absmax, Span<float> x, bool signed)
    {
        var map = signed ? Signed : Unsigned;
        for (int i = 0; i < x.Length; i++) x[i] = map[codes[i]] * absmax;
    }

    /// <summary>Quantizes a whole buffer block by block (<paramref name="absmax"/> has <see cref="BlockCount"/> entries).</summary>
    public static void Quantize(ReadOnlySpan<float> x, Span<byte> codes, Span<float> absmax, bool signed)
    {
        CheckSizes(x.Length, codes.Length, absmax.Length);
        for (int b = 0; b < absmax.Length; b++)
        {
            int start = b * BlockSize, len = Math.Min(BlockSize, x.Length - start);
            absmax[b] = QuantizeBlock(x.Slice(start, len), codes.Slice(start, len), signed);
        }
    }

    /// <summary>Dequantizes a whole buffer block by block.</summary>
    public static void Dequantize(ReadOnlySpan<byte> codes, ReadOnlySpan<float> absmax, Span<float> x, bool signed)
    {
        CheckSizes(x.Length, codes.Length, absmax.Length);
        for (int b = 0; b < absmax.Length; b++)
        {
            int start = b * BlockSize, len = Math.Min(BlockSize, x.Length - start);
            DequantizeBlock(codes.Slice(start, len), absmax[b], x.Slice(start, len), signed);
        }
    }

    internal static void CheckSizes(long values, long codes, long blocks)
    {
        if (codes != values)
            throw new ShapeMismatchException($"Block-wise quantization needs one code per value, got {codes} codes for {values} values.");
        if (blocks != BlockCount(values))
            throw new ShapeMismatchException($"Block-wise quantization of {values} values needs {BlockCount(values)} block scales, got {blocks}.");
    }

    /// <summary>
    /// One block of 8-bit Adam: dequantizes m and v, updates them in float32 from the gradient, writes the Adam
    /// direction with <see cref="IBackend.AdamDirection"/>'s formula and rounding order (computed from the updated
    /// float32 moments, before they are rounded to 8 bits), and requantizes m (signed map) and v (unsigned map) with
    /// the block's new absmax values. <paramref name="scratch"/> holds at least 2·length floats.
    /// </summary>
    public static void AdamBlock(ReadOnlySpan<float> g, Span<byte> mCodes, ref float mAbsmax, Span<byte> vCodes, ref float vAbsmax,
        Span<float> direction, AdamWStepParams h, Span<float> scratch)
    {
        int n = g.Length;
        var m = scratch[..n];
        var v = scratch.Slice(n, n);
        float invBc1 = 1f / h.BiasCorrection1;
        float invSqrtBc2 = 1f / MathF.Sqrt(h.BiasCorrection2);
        float c1 = 1f - h.Beta1, c2 = 1f - h.Beta2;
        float ma = mAbsmax, va = vAbsmax, newMa = 0, newVa = 0;
        for (int i = 0; i < n; i++)
        {
            float gi = g[i];
            float mi = h.Beta1 * (Signed[mCodes[i]] * ma) + c1 * gi;
            float vi = h.Beta2 * (Unsigned[vCodes[i]] * va) + c2 * gi * gi;
            m[i] = mi;
            v[i] = vi;
            direction[i] = invBc1 * mi / (MathF.Sqrt(vi) * invSqrtBc2 + h.Eps);
            newMa = MathF.Max(newMa, MathF.Abs(mi));
            newVa = MathF.Max(newVa, vi);
        }
        EncodeBlock(m, mCodes, newMa, signed: true);
        EncodeBlock(v, vCodes, newVa, signed: false);
        mAbsmax = newMa;
        vAbsmax = newVa;
    }
}
