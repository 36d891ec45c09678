using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using TensorLite.Autograd;
using TensorLite.Backends.Cpu;
using TensorLite.IO;
using TensorLite.LinearAlgebra;
using TensorLite.Models;
using TensorLite.Optim;
using TensorLite.Optim.Projected;
using Xunit;
using Xunit.Abstractions;
using TensorLite.Numerics;

namespace TensorLite.Tests;

/// <summary>Values to quantize: 1..3 blocks and a tail, magnitudes spread over six decades, with outliers.</summary>
public sealed record QuantCase(float[] Values, bool Signed)
{
    public override string ToString() => $"{Values.Length} values, {(Signed ? "signed" : "unsigned")}";
}

public static class QuantArbitraries
{
    public static Arbitrary<QuantCase> QuantCase() =>
        (from length in Gen.Choose(1, 3 * BlockwiseQuantizer.DefaultBlockSize + 300)
         from seed in Gen.Choose(0, 1_000_000)
         from signed in Gen.Elements(true, false)
         select Make(length, (ulong)seed, signed)).ToArbitrary();

    private static QuantCase Make(int length, ulong seed, bool signed)
    {
        var gen = new Generator(seed);
        var x = new float[length];
        gen.FillNormal(x, 0f, 1f);
        for (int i = 0; i < length; i++)
        {
            x[i] *= MathF.Pow(10f, -4f + 6f * gen.NextFloat());
            if (gen.NextInt(500) == 0) x[i] *= 1000f; // outliers
            if (!signed) x[i] = MathF.Abs(x[i]);
        }
        return new QuantCase(x, signed);
    }
}

/// <summary>
/// The reference the optimized quantizer must match bit for bit: the former production routines, kept here only.
/// Encoding is a binary search for the number of midpoints strictly below the value; the 8-bit Adam block is the
/// plain scalar loop followed by that encoder, with a division by the block's absmax per element.
/// </summary>
internal static class ReferenceQuantizer
{
    private static readonly float[] SignedMid = Midpoints(BlockwiseQuantizer.SignedMap.ToArray());
    private static readonly float[] UnsignedMid = Midpoints(BlockwiseQuantizer.UnsignedMap.ToArray());

    private static float[] Midpoints(float[] map)
    {
        var mid = new float[map.Length];
        for (int i = 0; i < map.Length - 1; i++) mid[i] = 0.5f * (map[i] + map[i + 1]);
        mid[^1] = float.PositiveInfinity;
        return mid;
    }

    public static byte Encode(float value, bool signed)
    {
        var mid = signed ? SignedMid : UnsignedMid;
        int idx = 0;
        for (int step = 128; step > 0; step >>= 1)
            idx += mid[idx + step - 1] < value ? step : 0;
        return (byte)idx;
    }

    public static void Quantize(ReadOnlySpan<float> x, Span<byte> codes, Span<float> absmax, bool signed)
    {
        for (int b = 0; b < absmax.Length; b++)
        {
            int start = b * BlockwiseQuantizer.DefaultBlockSize, len = Math.Min(BlockwiseQuantizer.DefaultBlockSize, x.Length - start);
            float max = 0;
            for (int i = start; i < start + len; i++) max = MathF.Max(max, MathF.Abs(x[i]));
            absmax[b] = max;
            for (int i = start; i < start + len; i++)
                codes[i] = max == 0 ? BlockwiseQuantizer.ZeroCode(signed) : Encode(x[i] / max, signed);
        }
    }

    public static void AdamBlock(ReadOnlySpan<float> g, Span<byte> mCodes, ref float mAbsmax, Span<byte> vCodes, ref float vAbsmax,
        Span<float> direction, AdamWStepParams h)
    {
        int n = g.Length;
        var m = new float[n];
        var v = new float[n];
        var sMap = BlockwiseQuantizer.SignedMap;
        var uMap = BlockwiseQuantizer.UnsignedMap;
        float invBc1 = 1f / h.BiasCorrection1;
        float invSqrtBc2 = 1f / MathF.Sqrt(h.BiasCorrection2);
        float c1 = 1f - h.Beta1, c2 = 1f - h.Beta2;
        float newMa = 0, newVa = 0;
        for (int i = 0; i < n; i++)
        {
            float gi = g[i];
            float mi = h.Beta1 * (sMap[mCodes[i]] * mAbsmax) + c1 * gi;
            float vi = h.Beta2 * (uMap[vCodes[i]] * vAbsmax) + c2 * gi * gi;
            m[i] = mi;
            v[i] = vi;
            direction[i] = invBc1 * mi / (MathF.Sqrt(vi) * invSqrtBc2 + h.Eps);
            newMa = MathF.Max(newMa, MathF.Abs(mi));
            newVa = MathF.Max(newVa, vi);
        }
        for (int i = 0; i < n; i++)
        {
            mCodes[i] = newMa == 0 ? BlockwiseQuantizer.SignedZeroCode : Encode(m[i] / newMa, signed: true);
            vCodes[i] = newVa == 0 ? BlockwiseQuantizer.UnsignedZeroCode : Encode(v[i] / newVa, signed: false);
        }
        mAbsmax = newMa;
        vAbsmax = newVa;
    }
}

[Properties(Arbitrary = [typeof(QuantArbitraries)], MaxTest = 30)]
public class QuantizedStatesTests(ITestOutputHelper output)
{
    private const int B = BlockwiseQuantizer.DefaultBlockSize;

    // ---- the code maps and block-wise quantization ----------------------------------------------

    [Fact]
    public void DynamicMaps_AreSorted_256Codes_WithZeroAndOne()
    {
        foreach (bool signed in new[] { true, false })
        {
            var map = BlockwiseQuantizer.Map(signed).ToArray();
            Assert.Equal(256, map.Length);
            for (int i = 1; i < map.Length; i++) Assert.True(map[i] > map[i - 1], $"map not strictly ascending at {i}");
            Assert.Equal(1f, map[^1]);
            Assert.Equal(0f, map[BlockwiseQuantizer.ZeroCode(signed)]);
            Assert.True(map[0] >= (signed ? -1f : 0f));
            // The smallest nonzero magnitude is about 1e-7 of the block's absmax; the top decade has bins of 0.9/64 (signed).
            float smallest = map.Where(v => v > 0).Min();
            Assert.InRange(smallest, 1e-7f, 1e-6f);
        }
        Assert.Equal(127, BlockwiseQuantizer.SignedZeroCode);
        // The largest gap is a top-decade bin: 0.9/64 signed, 0.9/128 unsigned (one more fraction bit).
        Assert.True(Math.Abs(BlockwiseQuantizer.LargestGap(BlockwiseQuantizer.SignedMap) - 0.9 / 64) < 1e-6);
        Assert.True(Math.Abs(BlockwiseQuantizer.LargestGap(BlockwiseQuantizer.UnsignedMap) - 0.9 / 128) < 1e-6);
    }

    private static (byte[] Codes, float[] Absmax, float[] Back) RoundTrip(float[] x, bool signed)
    {
        using var t = Tensor.FromArray(x, x.Length);
        using var codes = Tensor.Empty([x.Length], DType.UInt8);
        using var absmax = Tensor.Empty([BlockwiseQuantizer.BlockCount(x.Length)], DType.Float32);
        using var back = Tensor.Empty([x.Length], DType.Float32);
        CpuBackend.Instance.BlockwiseQuantize(t, codes, absmax, signed);
        CpuBackend.Instance.BlockwiseDequantize(codes, absmax, back, signed);
        return (codes.ToArray<byte>(), absmax.ToArray<float>(), back.ToArray<float>());
    }

    [Property]
    public void Quantization_ErrorIsAtMostHalfTheLargestGap_TimesTheBlockAbsmax(QuantCase c)
    {
        var (_, absmax, back) = RoundTrip(c.Values, c.Signed);
        float halfGap = BlockwiseQuantizer.LargestGap(BlockwiseQuantizer.Map(c.Signed)) / 2;
        for (int b = 0; b < absmax.Length; b++)
        {
            int start = b * B, end = Math.Min(c.Values.Length, start + B);
            float max = 0;
            for (int i = start; i < end; i++) max = MathF.Max(max, MathF.Abs(c.Values[i]));
            Assert.Equal(max, absmax[b]);
            // Half a gap, plus float rounding of x/absmax and map·absmax (a few ulps of absmax).
            double bound = absmax[b] * (halfGap * (1 + 1e-5) + 1e-6);
            for (int i = start; i < end; i++)
                Assert.True(Math.Abs((double)c.Values[i] - back[i]) <= bound,
                    $"block {b}, element {i}: {c.Values[i]} → {back[i]}, bound {bound}");
        }
        // The CPU kernel, the host routine (what every other backend runs by default) and the reference binary
        // search agree bitwise.
        var codes = new byte[c.Values.Length];
        var host = new float[absmax.Length];
        BlockwiseQuantizer.Quantize(c.Values, codes, host, c.Signed);
        Assert.Equal(RoundTrip(c.Values, c.Signed).Codes, codes);
        Assert.Equal(absmax, host);
        var refCodes = new byte[c.Values.Length];
        var refAbsmax = new float[absmax.Length];
        ReferenceQuantizer.Quantize(c.Values, refCodes, refAbsmax, c.Signed);
        Assert.Equal(refCodes, codes);
        Assert.Equal(refAbsmax, absmax);
    }

    [Property(MaxTest = 10)]
    public void MapPoints_RoundTripExactly(int exponent, bool signed)
    {
        // A block holding every map value times a power of two: absmax is that power, and every code comes back.
        float scale = MathF.Pow(2f, Math.Clamp(exponent, -20, 20));
        var map = BlockwiseQuantizer.Map(signed).ToArray();
        var x = map.Select(v => v * scale).ToArray();
        var (codes, absmax, back) = RoundTrip(x, signed);
        Assert.Equal(scale, absmax[0]);
        Assert.Equal(Enumerable.Range(0, 256).Select(i => (byte)i), codes);
        Assert.Equal(x, back);
    }

    [Property]
    public void ZeroBlock_StaysZero_AndBlocksAreIndependent(QuantCase c)
    {
        var x = c.Values.ToArray();
        int blocks = BlockwiseQuantizer.BlockCount(x.Length);
        int zeroBlock = blocks / 2;
        Array.Clear(x, zeroBlock * B, Math.Min(B, x.Length - zeroBlock * B));
        var (codes, absmax, back) = RoundTrip(x, c.Signed);
        Assert.Equal(0f, absmax[zeroBlock]);
        for (int i = zeroBlock * B; i < Math.Min(x.Length, (zeroBlock + 1) * B); i++)
        {
            Assert.Equal(BlockwiseQuantizer.ZeroCode(c.Signed), codes[i]);
            Assert.Equal(0f, back[i]);
        }
        // Each block quantized alone gives the same codes and scale as inside the whole tensor, so scaling one block
        // by 1000 changes nothing outside it.
        for (int b = 0; b < blocks; b++)
        {
            int start = b * B, len = Math.Min(B, x.Length - start);
            var (alone, a1, _) = RoundTrip(x.AsSpan(start, len).ToArray(), c.Signed);
            Assert.Equal(absmax[b], a1[0]);
            Assert.True(alone.AsSpan().SequenceEqual(codes.AsSpan(start, len)), $"block {b} differs when quantized alone");
        }
        var y = x.ToArray();
        for (int i = 0; i < Math.Min(B, y.Length); i++) y[i] *= 1000f;
        var (codesY, _, _) = RoundTrip(y, c.Signed);
        Assert.True(codesY.AsSpan(Math.Min(B, y.Length)).SequenceEqual(codes.AsSpan(Math.Min(B, x.Length))));
    }

    // ---- the table encoder against the reference binary search, bitwise --------------------------

    /// <summary>Every midpoint and its neighbouring floats (the only places where the code changes), every map value,
    /// the ends and special values, and random bit patterns and uniform values in [−1, 1].</summary>
    private static List<float> EncoderProbes(bool signed)
    {
        var map = BlockwiseQuantizer.Map(signed).ToArray();
        var probes = new List<float> { 0f, -0f, 1f, -1f, 2f, -2f, 1e30f, -1e30f, float.Epsilon, -float.Epsilon,
            float.MaxValue, float.MinValue, float.PositiveInfinity, float.NegativeInfinity, float.NaN, -float.NaN };
        for (int i = 0; i < map.Length; i++)
        {
            probes.Add(map[i]);
            probes.Add(-map[i]);
            if (i + 1 == map.Length) continue;
            float mid = 0.5f * (map[i] + map[i + 1]);
            for (int k = -3; k <= 3; k++)
            {
                float p = mid;
                for (int s = 0; s < Math.Abs(k); s++) p = k < 0 ? MathF.BitDecrement(p) : MathF.BitIncrement(p);
                probes.Add(p);
                probes.Add(-p);
            }
        }
        var gen = new Generator(signed ? 11u : 12u);
        for (int i = 0; i < 200_000; i++)
        {
            probes.Add(BitConverter.Int32BitsToSingle((int)(uint)gen.NextUInt64()));              // any float
            probes.Add(BitConverter.Int32BitsToSingle((int)((uint)gen.NextUInt64() % 0x3F80_0001u)) // [0, 1] by bits
                       * (gen.NextInt(2) == 0 ? 1f : -1f));
            probes.Add(2f * gen.NextFloat() - 1f);
        }
        return probes;
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Encode_MatchesTheReferenceSearch_Bitwise(bool signed)
    {
        var probes = EncoderProbes(signed);
        foreach (float y in probes)
        {
            byte expected = ReferenceQuantizer.Encode(y, signed), got = BlockwiseQuantizer.Encode(y, signed);
            if (got != expected) Assert.Fail($"Encode({y:R}, bits 0x{BitConverter.SingleToUInt32Bits(y):X8}, {(signed ? "signed" : "unsigned")}) = {got}, reference {expected}");
        }
        // The block kernels (vector paths and tails): blocks that start with 1, so absmax is 1 and x / absmax is the
        // probe itself, followed by the finite probes in [−1, 1]; a length that is not a multiple of the vector width.
        var finite = probes.Where(p => MathF.Abs(p) <= 1f).ToList();
        var x = new List<float>();
        for (int i = 0; i < finite.Count; i++)
        {
            if (x.Count % B == 0) x.Add(1f);
            x.Add(finite[i]);
        }
        if (x.Count % 8 == 0) x.Add(0.3f);
        var xs = x.ToArray();
        var refCodes = new byte[xs.Length];
        var refAbsmax = new float[BlockwiseQuantizer.BlockCount(xs.Length)];
        ReferenceQuantizer.Quantize(xs, refCodes, refAbsmax, signed);
        var (codes, absmax, _) = RoundTrip(xs, signed);
        Assert.All(absmax, a => Assert.Equal(1f, a));
        Assert.Equal(refAbsmax, absmax);
        for (int i = 0; i < xs.Length; i++)
            if (codes[i] != refCodes[i]) Assert.Fail($"kernel code of {xs[i]:R} at {i} is {codes[i]}, reference {refCodes[i]}");
    }

    [Fact]
    public void Tables_SurviveGarbageCollections()
    {
        // The encoder's tables are read through pointers into pinned arrays; they must stay alive and in place when
        // the GC runs and other pinned arrays take the freed space.
        var x = BlockwiseQuantizer.Map(true).ToArray().Concat(BlockwiseQuantizer.Map(false).ToArray()).ToArray();
        var before = RoundTrip(x, true);
        for (int k = 0; k < 3; k++)
        {
            GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
            GC.WaitForPendingFinalizers();
            for (int j = 0; j < 64; j++) GC.AllocateArray<int>(1024 + 7 * j, pinned: true).AsSpan().Fill(-1);
        }
        var after = RoundTrip(x, true);
        Assert.Equal(before.Codes, after.Codes);
        Assert.Equal(before.Back, after.Back);
        var refCodes = new byte[x.Length];
        ReferenceQuantizer.Quantize(x, refCodes, new float[1], true);
        Assert.Equal(refCodes, after.Codes);
    }

    [Fact]
    public void EightBitAdam_MatchesTheReferenceBlockRoutine_Bitwise()
    {
        // 3 full blocks and a tail of 301 (not a multiple of the vector width); gradients over six decades with
        // outliers; block 1 gets zero gradients from step 3 on (its moments decay, then stay representable).
        const int n = 3 * B + 301, steps = 8;
        int blocks = BlockwiseQuantizer.BlockCount(n);
        var gen = new Generator(21);
        var refM = Enumerable.Repeat(BlockwiseQuantizer.SignedZeroCode, n).ToArray();
        var refV = Enumerable.Repeat(BlockwiseQuantizer.UnsignedZeroCode, n).ToArray();
        var refMa = new float[blocks];
        var refVa = new float[blocks];
        var refD = new float[n];
        using var mc = Tensor.FromArray(refM.ToArray(), n);
        using var vc = Tensor.FromArray(refV.ToArray(), n);
        using var ma = Tensor.Zeros([blocks]);
        using var va = Tensor.Zeros([blocks]);
        using var d = Tensor.Empty([n], DType.Float32);
        for (int t = 1; t <= steps; t++)
        {
            var host = new float[n];
            gen.FillNormal(host, 0f, 1f);
            for (int i = 0; i < n; i++)
            {
                host[i] *= MathF.Pow(10f, -5f + 6f * gen.NextFloat());
                if (gen.NextInt(700) == 0) host[i] *= 300f;
                if (t >= 3 && i >= B && i < 2 * B) host[i] = 0f;
            }
            var h = new AdamWStepParams(1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, 1f - MathF.Pow(0.9f, t), 1f - MathF.Pow(0.999f, t));
            using var g = Tensor.FromArray(host, n);
            CpuBackend.Instance.AdamDirection8bit(g, mc, ma, vc, va, d, h);
            for (int b = 0; b < blocks; b++)
            {
                int start = b * B, len = Math.Min(B, n - start);
                ReferenceQuantizer.AdamBlock(host.AsSpan(start, len), refM.AsSpan(start, len), ref refMa[b],
                    refV.AsSpan(start, len), ref refVa[b], refD.AsSpan(start, len), h);
            }
            Assert.Equal(refMa, ma.ToArray<float>());
            Assert.Equal(refVa, va.ToArray<float>());
            Assert.True(refM.AsSpan().SequenceEqual(mc.ToArray<byte>()), $"step {t}: first-moment codes differ");
            Assert.True(refV.AsSpan().SequenceEqual(vc.ToArray<byte>()), $"step {t}: second-moment codes differ");
            var dir = d.ToArray<float>();
            for (int i = 0; i < n; i++)
                if (BitConverter.SingleToInt32Bits(dir[i]) != BitConverter.SingleToInt32Bits(refD[i]))
                    Assert.Fail($"step {t}, element {i}: direction {dir[i]:R}, reference {refD[i]:R}");
        }
    }

    // ---- 8-bit Adam against float32 Adam --------------------------------------------------------

    [Fact]
    public void EightBitDirection_TracksTheFp32AdamDirection()
    {
        const int n = 2 * B + 700, steps = 12;
        var inner8 = new AdamW8bitInner(0.9f, 0.999f, 1e-8f);
        var inner32 = new AdamWInner(0.9f, 0.999f, 1e-8f);
        using var s8 = inner8.CreateState([n], CpuBackend.Instance);
        using var s32 = inner32.CreateState([n], CpuBackend.Instance);
        var gen = new Generator(4);
        double worstMean = 0, worstMax = 0;
        for (int t = 1; t <= steps; t++)
        {
            using var scope = TensorScope.Enter();
            // Per-element scales over two decades and a drift, as real gradients have.
            var host = new float[n];
            gen.FillNormal(host, 0f, 1f);
            for (int i = 0; i < n; i++) host[i] = host[i] * MathF.Pow(10f, -(i % 7) / 3f) + 0.3f * MathF.Sin(i + t);
            using var g = Tensor.FromArray(host, n);
            using var d8 = Tensor.Empty([n], DType.Float32);
            using var d32 = Tensor.Empty([n], DType.Float32);
            s8.Direction(g, d8, t);
            s32.Direction(g, d32, t);
            var a = d8.ToArray();
            var b = d32.ToArray();
            if (t == 1) Assert.Equal(b, a); // zero state dequantizes to exact zeros: the first step is bitwise fp32 Adam
            double sumDiff = 0, sumRef = 0, max = 0;
            for (int i = 0; i < n; i++)
            {
                double diff = Math.Abs((double)a[i] - b[i]);
                sumDiff += diff;
                sumRef += Math.Abs(b[i]);
                max = Math.Max(max, diff);
            }
            worstMean = Math.Max(worstMean, sumDiff / sumRef);
            worstMax = Math.Max(worstMax, max);
        }
        output.WriteLine($"8-bit vs fp32 Adam direction over {steps} steps: worst mean relative difference {worstMean:E3}, worst element difference {worstMax:E3}");
        // Adam's direction is O(1) per element. Measured: 4.2e-2 worst mean relative difference and 0.117 worst
        // element difference. The bounds leave about 2× room. The error is largest for elements whose v sits decades
        // below its block's maximum, where the dynamic map's bins are coarse (8 bins per decade at 1e-4).
        Assert.True(worstMean < 0.08, $"mean relative difference {worstMean}");
        Assert.True(worstMax < 0.25, $"worst element difference {worstMax}");
    }

    // ---- inside the projected optimizer ---------------------------------------------------------

    private static List<(string Name, Tensor Parameter)> MakeParameters(int[][] shapes, ulong seed)
    {
        var gen = new Generator(seed);
        return shapes.Select((s, i) => (s.Length == 2 ? $"layers.{i}.mlp.w{i}.weight" : $"layers.{i}.norm.weight",
            Tensor.RandN(s, gen).RequireGrad().Persist())).ToList();
    }

    private static void Run(Optimizer opt, List<(string Name, Tensor Parameter)> ps, ulong seed, int from, int to)
    {
        for (int t = from; t < to; t++)
        {
            using var scope = TensorScope.Enter();
            using var noGrad = GradMode.NoGrad();
            for (int i = 0; i < ps.Count; i++)
            {
                var p = ps[i].Parameter;
                var gen = new Generator(seed * 7919 + (ulong)(t * 31 + i));
                using var a = Tensor.RandN(p.Shape, gen);
                using var half = p * 0.5f;
                var g = a + half;
                p.Grad?.Dispose();
                p.Grad = g.Persist();
            }
            opt.Step();
        }
    }

    /// <summary>Inner optimizers under test; the 8-bit one quantizes from 64 elements so that small shapes exercise
    /// both its 8-bit and its float32 states.</summary>
    private static IInnerOptimizer InnerOf(string name) => name switch
    {
        "8bit" => new AdamW8bitInner(minQuantizedNumel: 64),
        "8bit-256" => new AdamW8bitInner(minQuantizedNumel: 64, blockSize: 256),
        "factored" => new AdafactorInner(),
        "factored-m" => new AdafactorInner(beta1: 0.9f),
        _ => throw new ArgumentException(name),
    };

    private static ProjectedOptions PresetOf(string method)
    {
        var o = method switch
        {
            "adamw" => ProjectedOptions.AdamW(),
            "galore" => ProjectedOptions.GaLore(rank: 8, updateGap: 2),
            "galore-rotate" => ProjectedOptions.GaLore(rank: 8, updateGap: 2) with { OnRefresh = MomentPolicy.Rotate },
            "osd" => ProjectedOptions.Osd(rank: 8, pcaLearningRate: 0.05f),
            "grass" => ProjectedOptions.Grass(rank: 8, updateGap: 2),
            "grass-rotate" => ProjectedOptions.Grass(rank: 8, selection: RowSelection.Uniform, updateGap: 2) with { OnRefresh = MomentPolicy.Rotate },
            "frugal" => ProjectedOptions.Frugal(0.25f, FrugalSubspace.Blocks, updateGap: 2),
            _ => throw new ArgumentException(method),
        };
        return o with { LearningRate = 0.01f, WeightDecay = 0.05f, Seed = 3 };
    }

    public static IEnumerable<object[]> Combinations() =>
        (from method in new[] { "adamw", "galore", "galore-rotate", "osd", "grass", "grass-rotate", "frugal" }
        from inner in new[] { "8bit", "factored", "factored-m" }
        select new object[] { method, inner })
        .Append(["adamw", "8bit-256"]).Append(["galore-rotate", "8bit-256"]);

    private static readonly int[][] Shapes = [[40, 72], [72, 40], [50], [3000], [6, 6]];

    [Theory]
    [MemberData(nameof(Combinations))]
    public void StateBytes_EqualsPrediction_AndResumeIsBitwiseIdentical(string method, string inner)
    {
        var options = PresetOf(method) with { Inner = InnerOf(inner) };
        const ulong seed = 9;
        var named = Shapes.Select((s, i) => (Name: s.Length == 2 ? $"layers.{i}.mlp.w{i}.weight" : $"layers.{i}.norm.weight", Shape: s)).ToList();
        var a = MakeParameters(Shapes, seed);
        using (var opt = new ProjectedOptimizer(a, options))
        {
            Run(opt, a, seed, 0, 7);
            Assert.Equal(ProjectedOptimizer.PredictStateBytes(named.Select(x => (x.Name, x.Shape)), options), opt.StateBytes);
        }
        var b = MakeParameters(Shapes, seed);
        var path = Path.Combine(Path.GetTempPath(), $"tl-states-{method}-{inner}-{Environment.ProcessId}.safetensors");
        long steps;
        using (var first = new ProjectedOptimizer(b, options))
        {
            Run(first, b, seed, 0, 3);
            SafeTensors.Save(path, first.StateTensors());
            steps = first.StepCount;
        }
        using (var second = new ProjectedOptimizer(b, options))
        {
            var loaded = SafeTensors.Load(path);
            second.LoadState(loaded, steps);
            foreach (var t in loaded.Values) t.Dispose();
            File.Delete(path);
            Run(second, b, seed, 3, 7);
        }
        for (int i = 0; i < a.Count; i++)
            Assert.True(a[i].Parameter.ToArray().SequenceEqual(b[i].Parameter.ToArray()), $"{method}/{inner}: parameter {i} differs after resume");
    }

    [Theory]
    [InlineData("galore", "fp32", false)]
    [InlineData("galore", "8bit", false)]
    [InlineData("galore", "8bit", true)]       // bf16 weights, stochastic rounding: each range draws the whole update's bits
    [InlineData("galore", "factored", false)]  // whole parameters only: the range setting must leave it alone
    [InlineData("adamw", "8bit", true)]        // the identity projection: its matrix is a dense update too
    public void DenseUpdatesInRanges_AreBitwiseTheWholeUpdate(string method, string inner, bool bf16StochasticRounding)
    {
        // Two dense parameters of 9,000 and 4,500 elements (ranges of 2,048 with a partial last one) and a matrix of
        // 6,000 that GaLore projects and AdamW's identity projection updates densely.
        (string Name, int[] Shape)[] layout = [("model.embed_tokens.weight", [90, 100]), ("lm_head.weight", [45, 100]), ("layers.0.mlp.w.weight", [60, 100])];
        var dtype = bf16StochasticRounding ? DType.BFloat16 : DType.Float32;
        float[][] Train(int denseRange)
        {
            var gen = new Generator(21);
            var ps = layout.Select(x => (x.Name, Tensor.RandN(x.Shape, gen, dtype: dtype).RequireGrad().Persist())).ToList();
            var options = (method == "adamw" ? ProjectedOptions.AdamW() : ProjectedOptions.GaLore(rank: 8, updateGap: 2)) with
            {
                LearningRate = 0.01f, WeightDecay = 0.05f, Seed = 3, DenseRangeElements = denseRange,
                Inner = inner == "fp32" ? null : InnerOf(inner),
            };
            using var opt = new ProjectedOptimizer(ps, options);
            if (bf16StochasticRounding) opt.StochasticRoundingSeed = 77;
            for (int t = 0; t < 3; t++)
            {
                using var scope = TensorScope.Enter();
                using var noGrad = GradMode.NoGrad();
                foreach (var (_, p) in ps)
                {
                    using var g32 = Tensor.RandN(p.Shape, new Generator((ulong)(100 + t * 7 + p.Numel)));
                    p.Grad?.Dispose();
                    p.Grad = g32.To(p.DType).Persist();
                }
                opt.Step();
            }
            var result = ps.Select(x => x.Item2.ToArray()).ToArray();
            foreach (var (_, p) in ps) p.Dispose();
            return result;
        }
        var whole = Train(int.MaxValue);
        var ranges = Train(BlockwiseQuantizer.DefaultBlockSize);
        for (int i = 0; i < whole.Length; i++)
            Assert.True(whole[i].SequenceEqual(ranges[i]), $"{method}/{inner}: parameter {layout[i].Name} differs when updated in ranges");
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => (ProjectedOptions.GaLore(rank: 8) with { DenseRangeElements = -1 }).Validate());
        Assert.Contains("non-negative", e.Message);
    }

    [Fact]
    public void StateBytes_Formulas()
    {
        var q = new AdamW8bitInner();
        Assert.Equal(8L * 4095, q.PredictStateBytes([4095]));              // below the threshold: float32 moments
        Assert.Equal(2L * 4096 + 8 * 2, q.PredictStateBytes([64, 64]));    // 2 blocks
        Assert.Equal(2L * 176 * 64 + 8 * 6, q.PredictStateBytes([176, 64])); // 11264 elements, 6 blocks (last partial)
        Assert.Equal(2L * 10 + 8, new AdamW8bitInner(minQuantizedNumel: 0).PredictStateBytes([10])); // 1 block of 10
        Assert.Equal(2L * 176 * 64 + 8 * 44, new AdamW8bitInner(blockSize: 256).PredictStateBytes([176, 64])); // 44 blocks of 256
        var f = new AdafactorInner();
        Assert.Equal(4L * (176 + 64), f.PredictStateBytes([176, 64]));
        Assert.Equal(4L * 3 * (5 + 7), f.PredictStateBytes([3, 5, 7]));
        Assert.Equal(4L * 64, f.PredictStateBytes([64]));
        Assert.Equal(4L * (176 + 64) + 4L * 176 * 64, new AdafactorInner(beta1: 0.9f).PredictStateBytes([176, 64]));
        foreach (var (inner, shape) in new (IInnerOptimizer, int[])[] { (q, [176, 64]), (q, [30]), (new AdamW8bitInner(blockSize: 256), [176, 64]), (f, [3, 5, 7]), (f, [9]) })
        {
            using var state = inner.CreateState(shape, CpuBackend.Instance);
            Assert.Equal(inner.PredictStateBytes(shape), state.StateBytes);
            Assert.Equal(state.StateBytes, state.StateTensors().Sum(x => (long)x.Tensor.Numel * x.Tensor.DType.SizeInBytes()));
        }
    }

    [Fact]
    public void BlockSize_IsAPowerOfTwoInRange_AndAStateSavedWithAnotherSizeIsNamedOnLoad()
    {
        foreach (int bad in new[] { 0, 32, 100, 4096 })
            Assert.Contains("power of two from 64 to 2048", Assert.Throws<ArgumentOutOfRangeException>(() => new AdamW8bitInner(blockSize: bad)).Message);
        using var small = new AdamW8bitInner(blockSize: 256).CreateState([176, 64], CpuBackend.Instance);
        using var large = new AdamW8bitInner().CreateState([176, 64], CpuBackend.Instance);
        var saved = small.StateTensors().ToDictionary(x => "0." + x.Name, x => x.Tensor);
        var e = Assert.Throws<TensorLiteException>(() => large.LoadState(saved, "0."));
        Assert.Contains("another 8-bit block size", e.Message);
    }

    // ---- Adafactor against a double reference ---------------------------------------------------

    [Theory]
    [InlineData(new[] { 5, 7 }, false)]
    [InlineData(new[] { 5, 7 }, true)]
    [InlineData(new[] { 9 }, false)]
    [InlineData(new[] { 2, 3, 4 }, true)]
    public void Adafactor_MatchesAHandWrittenDoubleReference(int[] shape, bool firstMoment)
    {
        var inner = new AdafactorInner(beta1: firstMoment ? 0.9f : null);
        using var state = inner.CreateState(shape, CpuBackend.Instance);
        int numel = ShapeMath.Numel(shape);
        bool factored = shape.Length >= 2;
        int n = shape[^1], m = factored ? shape[^2] : 1, lead = numel / (m * n);
        var r = new double[lead * m];
        var c = new double[lead * n];
        var v = new double[numel];
        var mom = new double[numel];
        var gen = new Generator(21);
        for (int t = 1; t <= 6; t++)
        {
            using var scope = TensorScope.Enter();
            var g = new float[numel];
            gen.FillNormal(g, 0f, 1f);
            for (int i = 0; i < numel; i++) g[i] *= 1 + (i % 3); // uneven columns, so the factored estimate is not flat
            using var gt = Tensor.FromArray(g, shape);
            using var d = Tensor.Empty(shape, DType.Float32);
            state.Direction(gt, d, t);
            // The paper's Algorithm 4/5 with sums: R = β̂R + (1−β̂)·rowsum(G² + ε1), C likewise, V̂ = R·Cᵀ / ΣR.
            double beta = 1 - Math.Pow(t, -0.8), eps1 = 1e-30;
            var u = new double[numel];
            if (factored)
            {
                for (int l = 0; l < lead; l++)
                {
                    for (int i = 0; i < m; i++)
                    {
                        double s = 0;
                        for (int j = 0; j < n; j++) s += (double)g[(l * m + i) * n + j] * g[(l * m + i) * n + j] + eps1;
                        r[l * m + i] = beta * r[l * m + i] + (1 - beta) * s;
                    }
                    for (int j = 0; j < n; j++)
                    {
                        double s = 0;
                        for (int i = 0; i < m; i++) s += (double)g[(l * m + i) * n + j] * g[(l * m + i) * n + j] + eps1;
                        c[l * n + j] = beta * c[l * n + j] + (1 - beta) * s;
                    }
                    double total = 0;
                    for (int i = 0; i < m; i++) total += r[l * m + i];
                    for (int i = 0; i < m; i++)
                        for (int j = 0; j < n; j++)
                        {
                            int k = (l * m + i) * n + j;
                            u[k] = g[k] / Math.Sqrt(r[l * m + i] * c[l * n + j] / total);
                        }
                }
            }
            else
            {
                for (int k = 0; k < numel; k++)
                {
                    v[k] = beta * v[k] + (1 - beta) * ((double)g[k] * g[k] + eps1);
                    u[k] = g[k] / Math.Sqrt(v[k]);
                }
            }
            double rms = Math.Sqrt(u.Sum(x => x * x) / numel);
            double scale = 1 / Math.Max(1, rms);
            for (int k = 0; k < numel; k++)
            {
                u[k] *= scale;
                if (firstMoment) u[k] = mom[k] = 0.9 * mom[k] + 0.1 * u[k];
            }
            var got = d.ToArray();
            for (int k = 0; k < numel; k++)
                Assert.True(Math.Abs(got[k] - u[k]) <= 1e-5 * (1 + Math.Abs(u[k])), $"step {t}, element {k}: {got[k]} vs {u[k]}");
        }
    }

    [Theory]
    [InlineData(ProjectionSide.Left)]
    [InlineData(ProjectionSide.Right)]
    public void Adafactor_ChangeBasis_CarriesTheFactoredEstimate_AsCcTimesV(ProjectionSide side)
    {
        const int r = 4, other = 6;
        int[] shape = side == ProjectionSide.Left ? [r, other] : [other, r];
        var inner = new AdafactorInner();
        using var state = inner.CreateState(shape, CpuBackend.Instance);
        var gen = new Generator(8);
        for (int t = 1; t <= 3; t++)
        {
            using var g = Tensor.RandN(shape, gen);
            using var d = Tensor.Empty(shape, DType.Float32);
            state.Direction(g, d, t);
        }
        using var cRand = Tensor.RandN([r, r], gen);
        using var change = TensorLite.LinearAlgebra.Linalg.Orthonormalize(cRand);
        double[,] before = Estimate(state, shape), after;
        state.ChangeBasis(change, side);
        after = Estimate(state, shape);
        var cc = change.ToArray().Select(x => (double)x * x).ToArray();
        for (int i = 0; i < shape[0]; i++)
            for (int j = 0; j < shape[1]; j++)
            {
                double expected = 0;
                for (int k = 0; k < r; k++)
                    expected += side == ProjectionSide.Left ? cc[i * r + k] * before[k, j] : before[i, k] * cc[j * r + k];
                Assert.True(Math.Abs(after[i, j] - expected) <= 1e-5 * Math.Abs(expected), $"({i}, {j}): {after[i, j]} vs {expected}");
            }

        static double[,] Estimate(IInnerState s, int[] shape)
        {
            var tensors = s.StateTensors().ToDictionary(x => x.Name, x => x.Tensor.ToArray());
            var row = tensors["exp_avg_sq_row"];
            var col = tensors["exp_avg_sq_col"];
            double mean = row.Average(x => (double)x);
            var v = new double[shape[0], shape[1]];
            for (int i = 0; i < shape[0]; i++)
                for (int j = 0; j < shape[1]; j++) v[i, j] = row[i] * (double)col[j] / mean;
            return v;
        }
    }

    // ---- command-line words ---------------------------------------------------------------------

    [Fact]
    public void InnerFromCli_MapsTheWords_AndRejectsOthersInOneSentence()
    {
        var fp32 = Assert.IsType<AdamWInner>(ProjectedOptions.InnerFromCli("fp32", 0.9f, 0.95f, 1e-8f));
        Assert.Equal(0.95f, fp32.Beta2);
        var q = Assert.IsType<AdamW8bitInner>(ProjectedOptions.InnerFromCli("8bit", 0.9f, 0.95f, 1e-8f));
        Assert.Equal((0.9f, 0.95f, AdamW8bitInner.DefaultMinQuantizedNumel), (q.Beta1, q.Beta2, q.MinQuantizedNumel));
        Assert.Equal(0.9f, Assert.IsType<AdafactorInner>(ProjectedOptions.InnerFromCli("factored", 0.9f, 0.95f, 1e-8f)).Beta1);
        Assert.Null(Assert.IsType<AdafactorInner>(ProjectedOptions.InnerFromCli("factored", 0f, 0.95f, 1e-8f)).Beta1);
        var e = Assert.Throws<ArgumentException>(() => ProjectedOptions.InnerFromCli("4bit", 0.9f, 0.95f, 1e-8f));
        Assert.StartsWith("Unknown optimizer states '4bit'; choose one of fp32, 8bit, factored.", e.Message);
    }

    // ---- training -------------------------------------------------------------------------------

    private static float TrainTinyLlama(Func<LlamaModel, Optimizer> makeOptimizer, int steps, out float firstLoss)
    {
        var config = LlamaConfig.FromName("tiny");
        var gen = new Generator(77);
        var model = new LlamaModel(config, gen);
        var opt = makeOptimizer(model);
        const int batch = 4, seq = 16;
        // A fixed batch of a repeating pattern with noise: learnable, so the two optimizers have a curve to follow.
        var data = new int[batch * (seq + 1)];
        for (int i = 0; i < data.Length; i++) data[i] = gen.NextInt(6) == 0 ? gen.NextInt(config.VocabSize) : (i * 7) % 40;
        var ids = Enumerable.Range(0, batch).SelectMany(b => data.Skip(b * (seq + 1)).Take(seq)).ToArray();
        var targets = Enumerable.Range(0, batch).SelectMany(b => data.Skip(b * (seq + 1) + 1).Take(seq)).ToArray();
        float last = 0;
        firstLoss = 0;
        for (int step = 0; step < steps; step++)
        {
            using var scope = TensorScope.Enter();
            var loss = model.Loss(Tensor.FromArray(ids, batch, seq), Tensor.FromArray(targets, batch, seq));
            last = loss.Item();
            if (step == 0) firstLoss = last;
            loss.Backward();
            opt.Step();
            opt.ZeroGrad();
        }
        (opt as IDisposable)?.Dispose();
        return last;
    }

    [Fact]
    public void EightBitAdamW_TracksFp32AdamW_OnATinyLlama()
    {
        const int steps = 50;
        const float lr = 1e-3f, wd = 0.01f;
        float dense = TrainTinyLlama(m => new AdamW(m.Parameters(), learningRate: lr, weightDecay: wd), steps, out float first);
        float q = TrainTinyLlama(m => new ProjectedOptimizer(m.NamedParameters(),
            ProjectedOptions.AdamW(lr, wd) with { Inner = new AdamW8bitInner() }), steps, out float firstQ);
        float factored = TrainTinyLlama(m => new ProjectedOptimizer(m.NamedParameters(),
            ProjectedOptions.AdamW(lr, wd) with { Inner = new AdafactorInner(beta1: 0.9f) }), steps, out _);
        output.WriteLine($"tiny LLaMA, {steps} steps: loss {first:F4} → AdamW {dense:F4}, 8-bit AdamW {q:F4} ({(q - dense) / dense:P2}), Adafactor+β1 {factored:F4}");
        Assert.Equal(first, firstQ);
        // The tolerance is 3% of the final loss. Measured on the 2-vCPU machine: 5.558 → 1.420 (AdamW) and 1.434
        // (8-bit), a 0.99% difference; Adafactor with β1 = 0.9 reaches 1.721. (At lr 3e-3 both memorize the batch to
        // ≈ 0.05, where a relative tolerance says nothing, hence lr 1e-3.)
        Assert.True(Math.Abs(q - dense) <= 0.03f * dense, $"8-bit AdamW {q} vs AdamW {dense}");
        Assert.True(dense < 0.5f * first && factored < 0.5f * first, $"training did not progress: {first} → {dense} / {factored}");
    }
}
