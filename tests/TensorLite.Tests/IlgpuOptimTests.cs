using TensorLite.Autograd;
using TensorLite.Backends.Cpu;
using TensorLite.Ilgpu;
using TensorLite.Optim;
using TensorLite.Optim.Projected;
using Xunit;
using TensorLite.Numerics;

namespace TensorLite.Tests;

/// <summary>The ILGPU optimizer kernels (IlgpuBackend.Optim.cs) against the CPU backend, on ILGPU's CPU accelerator:
/// fp32 results within one ulp, half-precision parameters (nearest and stochastic rounding), 8-bit codes and block
/// maxima bit for bit, and two steps of the real optimizers on ILGPU tensors.</summary>
public sealed class IlgpuOptimTests(IlgpuCpuFixture fixture) : IClassFixture<IlgpuCpuFixture>
{
    private readonly IlgpuBackend _gpu = fixture.Backend;
    private static readonly IBackend Cpu = CpuBackend.Instance;

    /// <summary>1, around one 8-bit block (2048) and several blocks with a short last one.</summary>
    private static readonly int[] Sizes = [1, 2047, 2048, 2049, 5000];

    // ---- data and comparisons -----------------------------------------------------------------------

    private static float[] Uniform(int n, int seed, float low, float high)
    {
        var rng = new Random(seed);
        var d = new float[n];
        for (int i = 0; i < n; i++) d[i] = low + (float)rng.NextDouble() * (high - low);
        return d;
    }

    /// <summary>Signed values whose magnitudes spread over 10⁻⁸ … 10¹, as Adam's moments do.</summary>
    private static float[] WideRange(int n, int seed, bool allowNegative = true)
    {
        var rng = new Random(seed);
        var d = new float[n];
        for (int i = 0; i < n; i++)
        {
            float magnitude = MathF.Pow(10f, -8f + 9f * (float)rng.NextDouble());
            d[i] = allowNegative && rng.Next(2) == 0 ? -magnitude : magnitude;
        }
        return d;
    }

    /// <summary>A tensor of <paramref name="dtype"/> holding <paramref name="values"/> (rounded to nearest on the host),
    /// 1-d unless a shape is given.</summary>
    private static Tensor Make(IBackend be, float[] values, DType dtype, int[]? shape = null)
    {
        shape ??= [values.Length];
        return dtype switch
        {
            DType.Float32 => Tensor.FromSpan<float>(values, shape, DType.Float32, be),
            DType.BFloat16 => Tensor.FromSpan<ushort>(values.Select(HalfPrecision.FloatToBFloat16).ToArray(), shape, dtype, be),
            DType.Float16 => Tensor.FromSpan<ushort>(values.Select(HalfPrecision.FloatToFloat16).ToArray(), shape, dtype, be),
            _ => throw new ArgumentException(dtype.Name()),
        };
    }

    private static Tensor MakeBytes(IBackend be, byte[] values) => Tensor.FromSpan<byte>(values, [values.Length], DType.UInt8, be);

    private static void AssertWithinUlps(float[] expected, float[] actual, int ulps, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            float e = expected[i], a = actual[i];
            if (e == a || (float.IsNaN(e) && float.IsNaN(a))) continue;
            long distance = Math.Abs((long)BitConverter.SingleToInt32Bits(e) - BitConverter.SingleToInt32Bits(a));
            Assert.True(Math.Sign(e) == Math.Sign(a) && distance <= ulps, $"{what}[{i}]: expected {e:R}, got {a:R} ({distance} ulps)");
        }
    }

    private static void AssertClose(double expected, double actual, double relative, string what) =>
        Assert.True(Math.Abs(expected - actual) <= relative * Math.Abs(expected), $"{what}: expected {expected:R}, got {actual:R}");

    /// <summary>float32 tensors agree within one ulp; half-precision ones bit for bit.</summary>
    private static void AssertSame(Tensor expected, Tensor actual, string what)
    {
        Assert.Equal(expected.DType, actual.DType);
        if (expected.DType == DType.Float32) AssertWithinUlps(expected.ToArray<float>(), actual.ToArray<float>(), 1, what);
        else Assert.Equal(expected.ToArray<ushort>(), actual.ToArray<ushort>());
    }

    private static ParamRounding RoundingOf(bool stochastic) =>
        stochastic ? ParamRounding.Stochastic(0xC0FFEEul, 3, 1) : ParamRounding.Nearest;

    // ---- AdamW, the Adam direction and ApplyUpdate --------------------------------------------------

    /// <summary>(param, gradient) dtype pairs: same precision, and mixed either way.</summary>
    private static readonly (DType Param, DType Grad)[] Pairs =
    [
        (DType.Float32, DType.Float32), (DType.BFloat16, DType.BFloat16), (DType.Float16, DType.Float16),
        (DType.BFloat16, DType.Float32), (DType.Float32, DType.BFloat16),
    ];

    /// <summary>Every size and dtype pair with nearest rounding, and stochastic rounding where it applies (bfloat16
    /// parameters; float32 and float16 ones ignore it, which the optimizer tests below also cover).</summary>
    public static IEnumerable<object[]> UpdateCases() =>
        from n in Sizes
        from pair in Pairs
        from stochastic in new[] { false, true }
        where !stochastic || pair.Param == DType.BFloat16
        select new object[] { n, pair.Param, pair.Grad, stochastic };

    [Theory]
    [MemberData(nameof(UpdateCases))]
    public void AdamWStep_TwoSteps_MatchCpu(int n, DType paramType, DType gradType, bool stochastic)
    {
        var p0 = Uniform(n, 1, -1f, 1f);
        var g0 = Uniform(n, 2, -0.5f, 0.5f);
        var g1 = Uniform(n, 3, -0.5f, 0.5f);
        Tensor[] Run(IBackend be)
        {
            var p = Make(be, p0, paramType);
            var m = Tensor.Zeros([n], DType.Float32, be);
            var v = Tensor.Zeros([n], DType.Float32, be);
            for (int step = 1; step <= 2; step++)
            {
                using var g = Make(be, step == 1 ? g0 : g1, gradType);
                var h = new AdamWStepParams(1e-3f, 0.9f, 0.999f, 1e-8f, 0.1f, 1f - MathF.Pow(0.9f, step), 1f - MathF.Pow(0.999f, step))
                    { Rounding = stochastic ? ParamRounding.Stochastic(77, step, 2) : ParamRounding.Nearest };
                be.AdamWStep(p, g, m, v, h);
            }
            return [p, m, v];
        }
        var cpu = Run(Cpu);
        var gpu = Run(_gpu);
        AssertSame(cpu[0], gpu[0], "param");
        AssertSame(cpu[1], gpu[1], "m");
        AssertSame(cpu[2], gpu[2], "v");
        foreach (var t in cpu.Concat(gpu)) t.Dispose();
    }

    [Fact]
    public void AdamWStep_StochasticRounding_DiffersFromNearest_OnBf16()
    {
        // Guards the stochastic case above: with updates far below half a bf16 ulp, nearest rounding leaves most
        // parameters unchanged and stochastic rounding moves some, so the two must differ.
        const int n = 2049;
        var p0 = Uniform(n, 4, 1f, 2f);
        var g0 = Uniform(n, 5, -1f, 1f);
        ushort[] After(ParamRounding rounding)
        {
            using var p = Make(_gpu, p0, DType.BFloat16);
            using var g = Make(_gpu, g0, DType.BFloat16);
            using var m = Tensor.Zeros([n], DType.Float32, _gpu);
            using var v = Tensor.Zeros([n], DType.Float32, _gpu);
            _gpu.AdamWStep(p, g, m, v, new AdamWStepParams(1e-4f, 0.9f, 0.999f, 1e-8f, 0f, 0.1f, 0.001f) { Rounding = rounding });
            return p.ToArray<ushort>();
        }
        var before = p0.Select(HalfPrecision.FloatToBFloat16).ToArray();
        var nearest = After(ParamRounding.Nearest);
        var stochastic = After(ParamRounding.Stochastic(9));
        Assert.Equal(before, nearest);
        Assert.NotEqual(nearest, stochastic);
    }

    [Fact]
    public void AdamWStep_RejectsNonFloat32Moments()
    {
        using var p = Make(_gpu, [1f, 2f], DType.Float32);
        using var m = Make(_gpu, [0f, 0f], DType.BFloat16);
        Assert.Throws<DTypeMismatchException>(() => _gpu.AdamWStep(p, p, m, m, new AdamWStepParams(1e-3f, 0.9f, 0.999f, 1e-8f, 0f, 1f, 1f)));
    }

    [Theory]
    [MemberData(nameof(SizeCases))]
    public void AdamDirection_TwoSteps_MatchCpu(int n)
    {
        var g0 = Uniform(n, 6, -1f, 1f);
        var g1 = WideRange(n, 7);
        Tensor[] Run(IBackend be)
        {
            var m = Tensor.Zeros([n], DType.Float32, be);
            var v = Tensor.Zeros([n], DType.Float32, be);
            var d = Tensor.Zeros([n], DType.Float32, be);
            for (int step = 1; step <= 2; step++)
            {
                using var g = Make(be, step == 1 ? g0 : g1, DType.Float32);
                be.AdamDirection(g, m, v, d, new AdamWStepParams(5f, 0.9f, 0.95f, 1e-8f, 3f, 1f - MathF.Pow(0.9f, step), 1f - MathF.Pow(0.95f, step)));
            }
            return [m, v, d];
        }
        var cpu = Run(Cpu);
        var gpu = Run(_gpu);
        AssertSame(cpu[0], gpu[0], "m");
        AssertSame(cpu[1], gpu[1], "v");
        AssertSame(cpu[2], gpu[2], "direction");
        foreach (var t in cpu.Concat(gpu)) t.Dispose();
    }

    public static IEnumerable<object[]> SizeCases() => Sizes.Select(n => new object[] { n });

    [Theory]
    [MemberData(nameof(UpdateCases))]
    public void ApplyUpdate_MatchesCpu(int n, DType paramType, DType updateType, bool stochastic)
    {
        var p0 = Uniform(n, 8, -2f, 2f);
        var u0 = Uniform(n, 9, -1f, 1f);
        Tensor Run(IBackend be)
        {
            var p = Make(be, p0, paramType);
            using var u = Make(be, u0, updateType);
            if (stochastic) be.ApplyUpdate(p, u, 0.999f, 3e-3f, RoundingOf(true));
            else be.ApplyUpdate(p, u, 0.999f, 3e-3f);   // the overload without a rounding: nearest
            return p;
        }
        using var cpu = Run(Cpu);
        using var gpu = Run(_gpu);
        AssertSame(cpu, gpu, "param");
    }

    [Fact]
    public void ApplyUpdate_OnARangeOfABf16Param_DrawsTheWholeUpdatesStochasticBits()
    {
        // Elements [3000, 4000) of a 5,000-element parameter, updated as a flat view with FirstIndex 3000, get the bits the
        // whole update gives them, on both backends.
        var p0 = Uniform(5000, 18, -2f, 2f);
        var u0 = Uniform(5000, 19, -1f, 1f);
        var rounding = RoundingOf(true);
        using var whole = Make(Cpu, p0, DType.BFloat16);
        using (var u = Make(Cpu, u0, DType.Float32)) Cpu.ApplyUpdate(whole, u, 0.999f, 3e-3f, rounding);
        var expected = whole.ToArray<ushort>()[3000..4000];
        foreach (var be in new[] { Cpu, (IBackend)_gpu })
        {
            using var p = Make(be, p0, DType.BFloat16);
            using var u = Make(be, u0, DType.Float32);
            using var part = p.Narrow(0, 3000, 1000);
            using var uPart = u.Narrow(0, 3000, 1000);
            be.ApplyUpdate(part, uPart, 0.999f, 3e-3f, rounding with { FirstIndex = 3000 });
            Assert.Equal(expected, part.Contiguous().ToArray<ushort>());
        }
    }

    // ---- Σ x² ---------------------------------------------------------------------------------------

    public static IEnumerable<object[]> SumCases() =>
        from n in Sizes.Append(0)
        from dtype in new[] { DType.Float32, DType.BFloat16, DType.Float16 }
        select new object[] { n, dtype };

    [Theory]
    [MemberData(nameof(SumCases))]
    public void SumOfSquares_MatchesCpu(int n, DType dtype)
    {
        var x = Uniform(n, 10, -3f, 3f);
        using var c = Make(Cpu, x, dtype);
        using var g = Make(_gpu, x, dtype);
        // The CPU adds float32 chunk sums in double; the kernel adds float32 squares in double: equal to ~1e-6.
        AssertClose(Cpu.SumOfSquares(c), _gpu.SumOfSquares(g), 1e-5, "sum of squares");
    }

    [Fact]
    public void SumOfSquares_MoreElementsThanThreads_MatchesDoubleSum()
    {
        // At most three groups of OptimGroupSize threads for 5000 elements: each thread strides through many.
        const int n = 5000;
        var x = Uniform(n, 11, -1f, 1f);
        double exact = x.Sum(v => (double)(v * v));
        using var g = Make(_gpu, x, DType.Float32);
        _gpu.SumOfSquaresMaxGroups = 3;
        try { AssertClose(exact, _gpu.SumOfSquares(g), 1e-12, "sum of squares"); }
        finally { _gpu.SumOfSquaresMaxGroups = TensorLite.Ilgpu.IlgpuKernels.MaxSumPartials; }
    }

    // ---- block-wise 8-bit states --------------------------------------------------------------------

    public static IEnumerable<object[]> QuantizeCases() =>
        from n in Sizes
        from signed in new[] { true, false }
        select new object[] { n, signed };

    /// <summary>Values for quantization: block 0 has absmax exactly 1 and holds every midpoint and every map entry of
    /// the map (ties go to the lower code), the third block (if any) is all zeros (zero code, absmax 0), the rest
    /// spread over nine decades; the unsigned map also gets negative values (they clamp to code 0).</summary>
    private static float[] QuantizationInput(int n, bool signed)
    {
        var x = WideRange(n, 12);
        var map = BlockwiseQuantizer.Map(signed);
        int k = 0;
        for (int i = 0; i < map.Length - 1 && k < Math.Min(n, BlockwiseQuantizer.DefaultBlockSize); i++)
        {
            x[k++] = 0.5f * (map[i] + map[i + 1]);
            if (k < Math.Min(n, BlockwiseQuantizer.DefaultBlockSize)) x[k++] = map[i];
        }
        for (int i = k; i < Math.Min(n, BlockwiseQuantizer.DefaultBlockSize); i++) x[i] = Math.Clamp(x[i], -1f, 1f);
        x[0] = 1f;
        for (int i = 2 * BlockwiseQuantizer.DefaultBlockSize; i < Math.Min(n, 3 * BlockwiseQuantizer.DefaultBlockSize); i++) x[i] = 0f;
        return x;
    }

    [Theory]
    [MemberData(nameof(QuantizeCases))]
    public void BlockwiseQuantize_CodesAndAbsmax_BitwiseEqualCpu(int n, bool signed)
    {
        var x = QuantizationInput(n, signed);
        int blocks = BlockwiseQuantizer.BlockCount(n);
        (byte[] Codes, float[] Absmax) Run(IBackend be)
        {
            using var xt = Make(be, x, DType.Float32);
            using var codes = Tensor.Zeros([n], DType.UInt8, be);
            using var absmax = Tensor.Zeros([blocks], DType.Float32, be);
            be.BlockwiseQuantize(xt, codes, absmax, signed);
            return (codes.ToArray<byte>(), absmax.ToArray<float>());
        }
        var cpu = Run(Cpu);
        var gpu = Run(_gpu);
        Assert.Equal(cpu.Absmax, gpu.Absmax);
        Assert.Equal(cpu.Codes, gpu.Codes);
        if (n > 2 * BlockwiseQuantizer.DefaultBlockSize)
        {
            Assert.Equal(0f, gpu.Absmax[2]);
            Assert.All(gpu.Codes.Skip(2 * BlockwiseQuantizer.DefaultBlockSize), c => Assert.Equal(BlockwiseQuantizer.ZeroCode(signed), c));
        }
    }

    [Theory]
    [MemberData(nameof(QuantizeCases))]
    public void BlockwiseDequantize_BitwiseEqualsCpu(int n, bool signed)
    {
        var rng = new Random(13);
        var codes = new byte[n];
        rng.NextBytes(codes);
        var absmax = WideRange(BlockwiseQuantizer.BlockCount(n), 14, allowNegative: false);
        float[] Run(IBackend be)
        {
            using var c = MakeBytes(be, codes);
            using var a = Make(be, absmax, DType.Float32);
            using var x = Tensor.Zeros([n], DType.Float32, be);
            be.BlockwiseDequantize(c, a, x, signed);
            return x.ToArray<float>();
        }
        Assert.Equal(Run(Cpu), Run(_gpu));
    }

    [Fact]
    public void BlockwiseQuantize_RoundTrip_StaysWithinTheMapError()
    {
        const int n = 2049;
        var x = WideRange(n, 15);
        using var xt = Make(_gpu, x, DType.Float32);
        using var codes = Tensor.Zeros([n], DType.UInt8, _gpu);
        using var absmax = Tensor.Zeros([2], DType.Float32, _gpu);
        using var back = Tensor.Zeros([n], DType.Float32, _gpu);
        _gpu.BlockwiseQuantize(xt, codes, absmax, signed: true);
        _gpu.BlockwiseDequantize(codes, absmax, back, signed: true);
        var a = absmax.ToArray<float>();
        var y = back.ToArray<float>();
        float halfGap = BlockwiseQuantizer.LargestGap(BlockwiseQuantizer.SignedMap) / 2;
        for (int i = 0; i < n; i++)
            Assert.True(Math.Abs(x[i] - y[i]) <= halfGap * a[i / BlockwiseQuantizer.DefaultBlockSize] * 1.0001f, $"[{i}]: {x[i]} came back as {y[i]}");
    }

    [Theory]
    [MemberData(nameof(SizeCases))]
    public void AdamDirection8bit_TwoSteps_BitwiseEqualCpu(int n)
    {
        var g0 = WideRange(n, 16);
        var g1 = Uniform(n, 17, -1f, 1f);
        // The third block's gradient is zero in both steps: its moments stay zero (absmax 0, zero codes).
        for (int i = 2 * BlockwiseQuantizer.DefaultBlockSize; i < n; i++) g0[i] = g1[i] = 0f;
        int blocks = BlockwiseQuantizer.BlockCount(n);
        (byte[] Mc, float[] Ma, byte[] Vc, float[] Va, float[] D) Run(IBackend be)
        {
            using var mc = Tensor.Zeros([n], DType.UInt8, be);
            using var vc = Tensor.Zeros([n], DType.UInt8, be);
            using var ma = Tensor.Zeros([blocks], DType.Float32, be);
            using var va = Tensor.Zeros([blocks], DType.Float32, be);
            using var d = Tensor.Zeros([n], DType.Float32, be);
            be.Fill(mc, BlockwiseQuantizer.SignedZeroCode);
            be.Fill(vc, BlockwiseQuantizer.UnsignedZeroCode);
            for (int step = 1; step <= 2; step++)
            {
                using var g = Make(be, step == 1 ? g0 : g1, DType.Float32);
                be.AdamDirection8bit(g, mc, ma, vc, va, d,
                    new AdamWStepParams(1f, 0.9f, 0.999f, 1e-8f, 0f, 1f - MathF.Pow(0.9f, step), 1f - MathF.Pow(0.999f, step)));
            }
            return (mc.ToArray<byte>(), ma.ToArray<float>(), vc.ToArray<byte>(), va.ToArray<float>(), d.ToArray<float>());
        }
        var cpu = Run(Cpu);
        var gpu = Run(_gpu);
        Assert.Equal(cpu.Ma, gpu.Ma);
        Assert.Equal(cpu.Va, gpu.Va);
        Assert.Equal(cpu.Mc, gpu.Mc);
        Assert.Equal(cpu.Vc, gpu.Vc);
        AssertWithinUlps(cpu.D, gpu.D, 1, "direction");
        if (n > 2 * BlockwiseQuantizer.DefaultBlockSize) Assert.Equal(0f, gpu.Ma[2]);
    }

    [Theory]
    [InlineData(64)]
    [InlineData(256)]
    public void SmallerBlocks_QuantizeDequantizeAndAdam_BitwiseEqualCpu(int blockSize)
    {
        const int n = 3 * 256 + 77;
        var x = WideRange(n, 18);
        var g = Uniform(n, 19, -1f, 1f);
        int blocks = BlockwiseQuantizer.BlockCount(n, blockSize);
        (byte[] Codes, float[] Scales, float[] Absmax, float[] Back, float[] D) Run(IBackend be)
        {
            using var xt = Make(be, x, DType.Float32);
            using var codes = Tensor.Zeros([n], DType.UInt8, be);
            using var absmax = Tensor.Zeros([blocks], DType.Float32, be);
            using var back = Tensor.Zeros([n], DType.Float32, be);
            be.BlockwiseQuantize(xt, codes, absmax, signed: true, blockSize);
            be.BlockwiseDequantize(codes, absmax, back, signed: true, blockSize);
            var scales = absmax.ToArray<float>();
            using var vc = Tensor.Zeros([n], DType.UInt8, be);
            using var va = Tensor.Zeros([blocks], DType.Float32, be);
            using var d = Tensor.Zeros([n], DType.Float32, be);
            using var gt = Make(be, g, DType.Float32);
            be.Fill(vc, BlockwiseQuantizer.UnsignedZeroCode);
            be.AdamDirection8bit(gt, codes, absmax, vc, va, d, new AdamWStepParams(1f, 0.9f, 0.999f, 1e-8f, 0f, 0.1f, 0.001f), blockSize);
            return (codes.ToArray<byte>(), scales, absmax.ToArray<float>(), back.ToArray<float>(), d.ToArray<float>());
        }
        var cpu = Run(Cpu);
        var gpu = Run(_gpu);
        Assert.Equal(cpu.Scales, gpu.Scales);
        Assert.Equal(cpu.Codes, gpu.Codes);
        Assert.Equal(cpu.Absmax, gpu.Absmax);
        Assert.Equal(cpu.Back, gpu.Back);
        AssertWithinUlps(cpu.D, gpu.D, 1, "direction");
        // Each scale is the absmax of its own blockSize elements: the blocks really are that long.
        for (int b = 0; b < blocks; b++)
        {
            float max = 0;
            for (int i = b * blockSize; i < Math.Min(n, (b + 1) * blockSize); i++) max = MathF.Max(max, MathF.Abs(x[i]));
            Assert.Equal(max, cpu.Scales[b]);
        }
    }

    [Fact]
    public void Quantized_RejectWrongDTypesAndSizes()
    {
        using var x = Make(_gpu, new float[10], DType.Float32);
        using var codes = Tensor.Zeros([10], DType.UInt8, _gpu);
        using var absmax = Tensor.Zeros([2], DType.Float32, _gpu);
        using var wrongCodes = Tensor.Zeros([10], DType.Float32, _gpu);
        Assert.Throws<ShapeMismatchException>(() => _gpu.BlockwiseQuantize(x, codes, absmax, signed: true));
        using var oneBlock = Tensor.Zeros([1], DType.Float32, _gpu);
        Assert.Throws<DTypeMismatchException>(() => _gpu.BlockwiseQuantize(x, wrongCodes, oneBlock, signed: true));
    }

    // ---- device memory of tensors that were never disposed -------------------------------------------

    [Fact]
    public void NeverDisposedTensors_TheirMemoryIsReusedSafely()
    {
        // Optimizer state (AdamW's moments, master weights) is never disposed, so its storage goes back to the pool
        // from a finalizer. The pool must keep those buffers alive: ILGPU's own buffer finalizer used to free them in
        // the same GC, and the next tensor of that size was written through a freed pointer.
        const int n = 777;
        LeakTensors(_gpu, n);
        GC.Collect();
        GC.WaitForPendingFinalizers();
        var values = Uniform(n, 18, -1f, 1f);
        for (int k = 0; k < 8; k++)
        {
            using var t = Make(_gpu, values, DType.Float32);
            using var u = Make(_gpu, values, DType.Float32);
            _gpu.ApplyUpdate(t, u, 2f, 1f);
            Assert.Equal(values, t.ToArray<float>());
        }
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static void LeakTensors(IBackend be, int n)
    {
        for (int k = 0; k < 8; k++) Tensor.Zeros([n], DType.Float32, be);
    }

    // ---- the optimizers on ILGPU tensors ------------------------------------------------------------

    private static readonly int[][] OptimizerShapes = [[40, 72], [50], [3000], [1]];

    /// <summary>Parameters of <paramref name="dtype"/> on a backend, with the same values on every backend.</summary>
    private static List<(string Name, Tensor Parameter)> Parameters(IBackend be, DType dtype)
    {
        return OptimizerShapes.Select((shape, i) =>
        {
            int n = shape.Aggregate(1, (a, b) => a * b);
            var p = Make(be, Uniform(n, 100 + i, -1f, 1f), dtype, shape).RequireGrad().Persist();
            return (shape.Length == 2 ? $"layers.{i}.mlp.weight" : $"layers.{i}.norm.weight", p);
        }).ToList();
    }

    /// <summary>Two optimizer steps with fixed gradients (of the parameters' dtype), then the parameters.</summary>
    private static List<Tensor> TwoSteps(IBackend be, DType dtype, Func<List<(string Name, Tensor Parameter)>, Optimizer> create)
    {
        var ps = Parameters(be, dtype);
        var opt = create(ps);
        for (int step = 0; step < 2; step++)
        {
            using var noGrad = GradMode.NoGrad();
            for (int i = 0; i < ps.Count; i++)
            {
                var p = ps[i].Parameter;
                p.Grad?.Dispose();
                p.Grad = Make(be, WideRange(p.Numel, 200 + 10 * step + i), dtype, p.Shape.ToArray()).Persist();
            }
            opt.Step();
        }
        (opt as IDisposable)?.Dispose();
        foreach (var (_, p) in ps)
        {
            p.Grad?.Dispose();
            p.Grad = null;
        }
        return ps.Select(x => x.Parameter).ToList();
    }

    private void OptimizerMatchesCpu(DType dtype, Func<List<(string Name, Tensor Parameter)>, Optimizer> create, int ulps)
    {
        var cpu = TwoSteps(Cpu, dtype, create);
        var gpu = TwoSteps(_gpu, dtype, create);
        for (int i = 0; i < cpu.Count; i++)
        {
            Assert.Equal(_gpu.Name, gpu[i].Backend.Name);
            if (dtype == DType.Float32) AssertWithinUlps(cpu[i].ToArray<float>(), gpu[i].ToArray<float>(), ulps, $"parameter {i}");
            else Assert.Equal(cpu[i].ToArray<ushort>(), gpu[i].ToArray<ushort>());
        }
        foreach (var t in cpu.Concat(gpu)) t.Dispose();
    }

    [Fact]
    public void AdamW_TwoSteps_MatchCpu() =>
        OptimizerMatchesCpu(DType.Float32, ps => new AdamW(ps.Select(x => x.Parameter), learningRate: 1e-2f), ulps: 1);

    [Fact]
    public void AdamW_Bf16Params_StochasticRounding_TwoSteps_BitwiseEqualCpu() =>
        OptimizerMatchesCpu(DType.BFloat16, ps => new AdamW(ps.Select(x => x.Parameter), learningRate: 1e-3f) { StochasticRoundingSeed = 42 }, ulps: 0);

    [Fact]
    public void AdamW_Bf16MasterWeights_TwoSteps_BitwiseEqualCpu() =>
        OptimizerMatchesCpu(DType.BFloat16, ps =>
        {
            var opt = new AdamW(ps.Select(x => x.Parameter), learningRate: 1e-3f);
            opt.EnableMasterWeights();
            return opt;
        }, ulps: 0);

    [Fact]
    public void DenseUpdatesInRanges_OnTheIlgpuBackend_AreBitwiseTheWholeUpdate()
    {
        // A dense bf16 parameter of 9,000 elements, updated by 8-bit AdamW with stochastic rounding in ranges of 2,048
        // (one block each, the last one partial) and whole.
        ushort[] Train(int range)
        {
            using var p = Make(_gpu, Uniform(9000, 31, -1f, 1f), DType.BFloat16, [90, 100]).RequireGrad().Persist();
            var options = ProjectedOptions.GaLore(rank: 8, updateGap: 2) with { Inner = new AdamW8bitInner(), DenseRangeElements = range, LearningRate = 1e-2f };
            using (var opt = new ProjectedOptimizer([("model.embed_tokens.weight", p)], options) { StochasticRoundingSeed = 5 })
            using (GradMode.NoGrad())
            {
                for (int step = 0; step < 2; step++)
                {
                    p.Grad?.Dispose();
                    p.Grad = Make(_gpu, WideRange(9000, 300 + step), DType.BFloat16, [90, 100]).Persist();
                    opt.Step();
                }
            }
            p.Grad?.Dispose();
            p.Grad = null;
            return p.ToArray<ushort>();
        }
        Assert.Equal(Train(int.MaxValue), Train(BlockwiseQuantizer.DefaultBlockSize));
    }

    [Fact]
    public void AdamW8bit_TwoSteps_MatchCpu() =>
        OptimizerMatchesCpu(DType.Float32, ps => new ProjectedOptimizer(ps,
            ProjectedOptions.AdamW(1e-2f, 0.1f) with { Inner = new AdamW8bitInner(minQuantizedNumel: 64) }), ulps: 1);

    [Fact]
    public void AdamW8bit_Bf16Params_StochasticRounding_TwoSteps_BitwiseEqualCpu() =>
        OptimizerMatchesCpu(DType.BFloat16, ps => new ProjectedOptimizer(ps,
            ProjectedOptions.AdamW(1e-3f, 0.1f) with { Inner = new AdamW8bitInner(minQuantizedNumel: 64) }) { StochasticRoundingSeed = 7 }, ulps: 0);

    [Fact]
    public void Adafactor_TwoSteps_MatchCpu()
    {
        // Adafactor's factored second moment is built from the generic ops (means along axes, broadcasts), whose
        // reduction order differs between the backends; only its final ApplyUpdate is a kernel of this file.
        var cpu = TwoSteps(Cpu, DType.Float32, Adafactor);
        var gpu = TwoSteps(_gpu, DType.Float32, Adafactor);
        for (int i = 0; i < cpu.Count; i++)
        {
            var e = cpu[i].ToArray<float>();
            var a = gpu[i].ToArray<float>();
            for (int k = 0; k < e.Length; k++)
                Assert.True(Math.Abs(e[k] - a[k]) <= 1e-5f * (1f + Math.Abs(e[k])), $"parameter {i}[{k}]: expected {e[k]}, got {a[k]}");
        }
        foreach (var t in cpu.Concat(gpu)) t.Dispose();

        static Optimizer Adafactor(List<(string Name, Tensor Parameter)> ps) =>
            new ProjectedOptimizer(ps, ProjectedOptions.AdamW(1e-2f, 0.1f) with { Inner = new AdafactorInner(beta1: 0.9f) });
    }
}
