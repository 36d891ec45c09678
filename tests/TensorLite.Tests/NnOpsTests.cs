using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using TensorLite.Backends.Cpu;
using TensorLite.Tests.Support;
using Xunit;

namespace TensorLite.Tests;

/// <summary>A cross-entropy problem: batch dims, class count, target ids (some possibly ignored), id dtype,
/// and whether the logits arrive as a transposed (non-contiguous) view.</summary>
public sealed record CrossEntropyCase(int[] Batch, int Classes, int[] Targets, bool Int64, bool Transposed)
{
    public override string ToString() =>
        $"batch {ShapeMath.Format(Batch)} V={Classes} targets [{string.Join(",", Targets)}] {(Int64 ? "int64" : "int32")}{(Transposed ? " transposed" : "")}";
}

/// <summary>A RoPE problem [B, H, S, D] with a position offset; NonContiguous stores x as [B, S, H, D].</summary>
public sealed record RopeCase(int B, int H, int S, int D, int Offset, bool NonContiguous)
{
    public override string ToString() => $"[{B}, {H}, {S}, {D}] offset {Offset}{(NonContiguous ? " (transposed view)" : "")}";
}

public static class NnArbitraries
{
    public const int Ignore = -100;

    public static Arbitrary<CrossEntropyCase> CrossEntropyCase() =>
        (from rank in Gen.Choose(0, 2)
         from batch in Gen.ArrayOf(Gen.Choose(1, 4), rank)
         from classes in Gen.Choose(1, 7)
         let n = batch.Aggregate(1, (a, b) => a * b)
         from ignoredFraction in Gen.Elements(0, 0, 1, 2, 4) // 4: every target ignored
         from raw in Gen.ArrayOf(Gen.Choose(0, classes - 1), n)
         from dice in Gen.ArrayOf(Gen.Choose(0, 3), n)
         let targets = raw.Select((t, i) => dice[i] < ignoredFraction ? Ignore : t).ToArray()
         from int64 in Gen.Elements(true, false)
         from transposed in Gen.Elements(true, false)
         select new CrossEntropyCase(batch, classes, targets, int64, transposed && rank == 1)).ToArbitrary();

    public static Arbitrary<RopeCase> RopeCase() =>
        (from b in Gen.Choose(1, 2)
         from h in Gen.Choose(1, 3)
         from s in Gen.Choose(1, 5)
         from halfDim in Gen.Elements(1, 2, 3, 4, 17) // 17: headDim 34 runs the vector body and a tail
         from offset in Gen.Elements(0, 0, 1, 7, 40)
         from nc in Gen.Elements(true, false)
         select new RopeCase(b, h, s, 2 * halfDim, offset, nc)).ToArbitrary();
}

[Properties(Arbitrary = [typeof(TensorArbitraries), typeof(NnArbitraries)], MaxTest = 20)]
public class NnOpsTests
{
    private static Tensor Rand(int[] shape, ulong seed, float low = -1f, float high = 1f) =>
        Tensor.Rand(shape, new Generator(seed), low, high);

    private static void Close(double expected, double actual, double tol, string what) =>
        Assert.True(Math.Abs(expected - actual) <= tol * (1 + Math.Abs(expected)), $"{what}: expected {expected}, got {actual}");

    // ---- softmax / log_softmax ------------------------------------------------------------------

    [Property]
    public void Softmax_And_LogSoftmax_MatchFiniteDifferences(SmallShape shape, byte seed)
    {
        var x = Rand(shape.Dims, seed, -2f, 2f);
        int rank = shape.Dims.Length;
        for (int d = -1; d < rank; d++)
        {
            if (rank == 0 && d == 0) continue;
            int dim = d;
            GradCheck.Check(t => t[0].Softmax(dim), [x]);
            GradCheck.Check(t => t[0].LogSoftmax(dim), [x]);
        }
        if (rank >= 2)
        {
            // Non-contiguous input (a transposed view), along the last and the first dim.
            GradCheck.Check(t => t[0].T.Softmax(-1), [x]);
            GradCheck.Check(t => t[0].T.LogSoftmax(0), [x]);
            GradCheck.Check(t => t[0].Transpose(0, rank - 1).Softmax(rank - 2), [x]);
        }
    }

    [Property]
    public void Softmax_MatchesDoubleReference(SmallShape shape, byte seed)
    {
        int rank = shape.Dims.Length;
        if (rank == 0) return;
        // A large common offset: a naive exp would overflow.
        var x = Rand(shape.Dims, seed, -30f, 30f) + 1000f;
        for (int dim = 0; dim < rank; dim++) AssertSoftmaxMatchesReference(x, dim);
    }

    /// <summary>softmax and log_softmax along <paramref name="dim"/> against a double-precision reference.</summary>
    private static void AssertSoftmaxMatchesReference(Tensor x, int dim)
    {
        var shape = x.ShapeArray;
        var xs = x.ToArray();
        var p = x.Softmax(dim).ToArray();
        var lp = x.LogSoftmax(dim).ToArray();
        int len = shape[dim];
        int inner = shape.Skip(dim + 1).Aggregate(1, (a, b) => a * b);
        int outer = xs.Length / (len * inner);
        for (int o = 0; o < outer; o++)
        for (int i = 0; i < inner; i++)
        {
            int Index(int k) => (o * len + k) * inner + i;
            double max = Enumerable.Range(0, len).Max(k => (double)xs[Index(k)]);
            double sumExp = Enumerable.Range(0, len).Sum(k => Math.Exp(xs[Index(k)] - max));
            double rowSum = 0;
            for (int k = 0; k < len; k++)
            {
                double refLog = xs[Index(k)] - max - Math.Log(sumExp);
                Close(Math.Exp(refLog), p[Index(k)], 1e-5, "softmax");
                Close(refLog, lp[Index(k)], 1e-5, "log_softmax");
                Close(Math.Log(p[Index(k)]), lp[Index(k)], 1e-4, "log_softmax vs log(softmax)");
                Assert.False(float.IsNaN(p[Index(k)]) || float.IsNaN(lp[Index(k)]));
                rowSum += p[Index(k)];
            }
            Close(1.0, rowSum, 1e-5, "softmax row sum");
        }
    }

    [Fact]
    public void Softmax_AlongAStridedAxisWiderThanOneTile()
    {
        // inner = 300 columns: the strided kernel runs a full 256-column tile and a partial one.
        var x = Rand([3, 4, 300], 8, -10f, 10f);
        AssertSoftmaxMatchesReference(x, 1);
        AssertSoftmaxMatchesReference(x, 0);
        GradCheck.Check(t => t[0].Softmax(1), [x], maxChecksPerInput: 12);
        GradCheck.Check(t => t[0].LogSoftmax(0), [x], maxChecksPerInput: 12);
    }

    [Fact]
    public void Softmax_OfScalar_IsOne_And_LongRowsUseTheVectorPath()
    {
        Assert.Equal(1f, Tensor.Scalar(3f).Softmax().Item());
        Assert.Equal(0f, Tensor.Scalar(3f).LogSoftmax(0).Item());
        var x = Rand([3, 1000], 5, -20f, 20f);
        var p = x.Softmax().ToArray();
        var xs = x.ToArray();
        for (int r = 0; r < 3; r++)
        {
            var row = xs.Skip(r * 1000).Take(1000).Select(v => (double)v).ToArray();
            double max = row.Max(), sum = row.Sum(v => Math.Exp(v - max));
            for (int k = 0; k < 1000; k++) Close(Math.Exp(row[k] - max) / sum, p[r * 1000 + k], 1e-5, "softmax");
        }
        GradCheck.Check(t => t[0].LogSoftmax(), [Rand([2, 70], 6)]);
    }

    [Fact]
    public void Softmax_BackwardSurvivesDisposingTheOutput()
    {
        var x = Rand([3, 5], 11).RequireGrad();
        var probe = Rand([3, 5], 12);
        var y = x.Softmax(0);
        var z = (y * probe).Sum();
        y.Dispose();
        z.Backward();
        var ys = x.Detach().Softmax(0);
        // d/dx Σ probe·softmax = y·(probe − Σ probe·y) along dim 0
        var expected = ys * (probe - (probe * ys).Sum(0, keepDim: true));
        var e = expected.ToArray();
        var gx = x.Grad!.ToArray();
        for (int i = 0; i < e.Length; i++) Close(e[i], gx[i], 1e-6, $"gradient {i}");
    }

    // ---- cross-entropy --------------------------------------------------------------------------

    private static Tensor Targets(CrossEntropyCase c) =>
        c.Int64 ? Tensor.FromArray(c.Targets.Select(t => (long)t).ToArray(), c.Batch)
                : Tensor.FromArray(c.Targets, c.Batch);

    private static int[] LogitsShape(CrossEntropyCase c) => c.Batch.Append(c.Classes).ToArray();

    [Property]
    public void CrossEntropy_MatchesFiniteDifferences(CrossEntropyCase c, byte seed)
    {
        var targets = Targets(c);
        if (c.Transposed)
        {
            var stored = Rand([c.Classes, c.Batch[0]], seed, -2f, 2f);
            GradCheck.Check(t => Tensor.CrossEntropy(t[0].T, t[1]), [stored, targets]);
        }
        else
        {
            var logits = Rand(LogitsShape(c), seed, -2f, 2f);
            GradCheck.Check(t => Tensor.CrossEntropy(t[0], t[1]), [logits, targets]);
            // Through a log_softmax in front as well (composes with other recorded ops).
            GradCheck.Check(t => Tensor.CrossEntropy(t[0].LogSoftmax() * 2f, t[1]), [logits, targets]);
        }
    }

    [Property]
    public void CrossEntropy_MatchesNaiveNegativeLogLikelihood(CrossEntropyCase c, byte seed)
    {
        var logits = Rand(LogitsShape(c), seed, -5f, 5f) + 500f;
        var xs = logits.ToArray();
        double total = 0;
        int count = 0;
        for (int r = 0; r < c.Targets.Length; r++)
        {
            int t = c.Targets[r];
            if (t == NnArbitraries.Ignore) continue;
            var row = xs.Skip(r * c.Classes).Take(c.Classes).Select(v => (double)v).ToArray();
            double max = row.Max();
            double p = Math.Exp(row[t] - max) / row.Sum(v => Math.Exp(v - max));
            total += -Math.Log(p);
            count++;
        }
        double expected = count == 0 ? 0 : total / count;
        var leaf = logits.Detach().RequireGrad();
        var loss = Tensor.CrossEntropy(leaf, Targets(c));
        Assert.Equal(0, loss.Rank);
        Close(expected, loss.Item(), 1e-5, "cross_entropy");
        loss.Backward();
        var grad = leaf.Grad!.ToArray();
        if (count == 0) Assert.All(grad, g => Assert.Equal(0f, g));
        for (int r = 0; r < c.Targets.Length; r++)
        {
            double rowSum = 0;
            for (int k = 0; k < c.Classes; k++) rowSum += grad[r * c.Classes + k];
            Assert.True(Math.Abs(rowSum) < 1e-5, $"row {r} gradient sums to {rowSum}, not 0");
            if (c.Targets[r] == NnArbitraries.Ignore)
                for (int k = 0; k < c.Classes; k++) Assert.Equal(0f, grad[r * c.Classes + k]);
        }
    }

    [Fact]
    public void CrossEntropy_AllIgnored_IsZeroWithZeroGradient()
    {
        var logits = Rand([3, 4], 1).RequireGrad();
        var loss = Tensor.CrossEntropy(logits, Tensor.FromArray([7, 7, 7], 3), ignoreIndex: 7);
        Assert.Equal(0f, loss.Item());
        loss.Backward();
        Assert.All(logits.Grad!.ToArray(), g => Assert.Equal(0f, g));
    }

    [Fact]
    public void CrossEntropy_LargeVocabulary_UsesTheVectorPath()
    {
        const int n = 5, v = 1003;
        var logits = Rand([n, v], 21, -8f, 8f);
        var ids = new[] { 0, 1002, 517, NnArbitraries.Ignore, 64 };
        var xs = logits.ToArray();
        double total = 0;
        foreach (var r in new[] { 0, 1, 2, 4 })
        {
            var row = xs.Skip(r * v).Take(v).Select(x => (double)x).ToArray();
            double max = row.Max();
            total += max + Math.Log(row.Sum(x => Math.Exp(x - max))) - row[ids[r]];
        }
        Close(total / 4, Tensor.CrossEntropy(logits, Tensor.FromArray(ids, n)).Item(), 1e-5, "cross_entropy");
        GradCheck.Check(t => Tensor.CrossEntropy(t[0], t[1]), [logits, Tensor.FromArray(ids, n)]);
    }

    // ---- RMSNorm --------------------------------------------------------------------------------

    /// <summary>Values of magnitude 0.5–1.5 with random signs: the rms stays well away from 0.</summary>
    private static Tensor AwayFromZero(int[] shape, ulong seed)
    {
        var magnitude = Rand(shape, seed, 0.5f, 1.5f).ToArray();
        var sign = Rand(shape, seed + 3UL).ToArray();
        return Tensor.FromArray(magnitude.Select((m, i) => sign[i] < 0 ? -m : m).ToArray(), shape);
    }

    [Property]
    public void RmsNorm_MatchesFiniteDifferences(SmallShape shape, byte seed)
    {
        if (shape.Dims.Length == 0) return;
        var x = AwayFromZero(shape.Dims, seed);
        var w = Rand([shape.Dims[^1]], seed + 1UL, 0.5f, 1.5f);
        GradCheck.Check(t => t[0].RmsNorm(t[1], 1e-5f), [x, w]);
        if (shape.Dims.Length >= 2)
        {
            // Non-contiguous input: the transpose of the last two dims, normalized over the stored second-to-last dim.
            var wT = Rand([shape.Dims[^2]], seed + 2UL, 0.5f, 1.5f);
            GradCheck.Check(t => t[0].T.RmsNorm(t[1], 1e-5f), [x, wT]);
        }
    }

    [Property]
    public void RmsNorm_MatchesFormula(SmallShape shape, byte seed)
    {
        if (shape.Dims.Length == 0) return;
        int d = shape.Dims[^1];
        var x = Rand(shape.Dims, seed, -3f, 3f);
        var w = Rand([d], seed + 1UL);
        const float eps = 1e-6f;
        var y = x.RmsNorm(w, eps).ToArray();
        var xs = x.ToArray();
        var ws = w.ToArray();
        for (int r = 0; r < xs.Length / d; r++)
        {
            double ms = 0;
            for (int k = 0; k < d; k++) ms += (double)xs[r * d + k] * xs[r * d + k];
            double inv = 1 / Math.Sqrt(ms / d + eps);
            for (int k = 0; k < d; k++) Close(xs[r * d + k] * inv * ws[k], y[r * d + k], 1e-5, "rms_norm");
        }
    }

    [Fact]
    public void RmsNorm_LongRows_WeightOnlyGradient_AndDisposedInputs()
    {
        // 300 rows of 257: the backward splits rows over the cores and sums the weight gradient per chunk.
        var x = AwayFromZero([300, 257], 31);
        var w = Rand([257], 32, 0.5f, 1.5f);
        GradCheck.Check(t => t[0].RmsNorm(t[1], 1e-5f), [x, w], maxChecksPerInput: 8);

        // Only the weight requires grad, and the forward input is disposed before Backward.
        var wLeaf = w.Detach().RequireGrad();
        var xCopy = x.Clone();
        var probe = Rand([300, 257], 33);
        var loss = (xCopy.RmsNorm(wLeaf, 1e-5f) * probe).Sum();
        xCopy.Dispose();
        loss.Backward();
        var xs = x.ToArray();
        var ps = probe.ToArray();
        var expected = new double[257];
        for (int r = 0; r < 300; r++)
        {
            double ms = 0;
            for (int k = 0; k < 257; k++) ms += (double)xs[r * 257 + k] * xs[r * 257 + k];
            double inv = 1 / Math.Sqrt(ms / 257 + 1e-5);
            for (int k = 0; k < 257; k++) expected[k] += ps[r * 257 + k] * xs[r * 257 + k] * inv;
        }
        var gw = wLeaf.Grad!.ToArray();
        for (int k = 0; k < 257; k++) Close(expected[k], gw[k], 1e-4, $"weight grad {k}");
    }

    // ---- RoPE -----------------------------------------------------------------------------------

    /// <summary>HF's formulation, in double: q·cat(cos, cos) + rotate_half(q)·cat(sin, sin), with
    /// rotate_half(q) = cat(−q2, q1); the angle's sign flipped for the inverse rotation.</summary>
    private static double[] RopeReference(float[] x, int b, int h, int s, int d, int offset, double theta, bool inverse = false)
    {
        int half = d / 2;
        var y = new double[x.Length];
        for (int row = 0; row < b * h * s; row++)
        {
            int pos = row % s + offset;
            int baseIdx = row * d;
            for (int j = 0; j < d; j++)
            {
                int i = j % half;
                double angle = pos * Math.Pow(theta, -2.0 * i / d) * (inverse ? -1 : 1);
                double rotated = j < half ? -x[baseIdx + j + half] : x[baseIdx + j - half];
                y[baseIdx + j] = x[baseIdx + j] * Math.Cos(angle) + rotated * Math.Sin(angle);
            }
        }
        return y;
    }

    private static Tensor RopeInput(RopeCase c, ulong seed) =>
        c.NonContiguous ? Rand([c.B, c.S, c.H, c.D], seed) : Rand([c.B, c.H, c.S, c.D], seed);

    private static Tensor AsBhsd(Tensor stored, RopeCase c) => c.NonContiguous ? stored.Transpose(1, 2) : stored;

    [Property]
    public void Rope_MatchesFiniteDifferences(RopeCase c, byte seed)
    {
        var x = RopeInput(c, seed);
        GradCheck.Check(t => AsBhsd(t[0], c).Rope(c.Offset, 10000f), [x]);
        GradCheck.Check(t => AsBhsd(t[0], c).Rope(c.Offset, 500000f).Square(), [x]);
    }

    [Property]
    public void Rope_MatchesScalarReference_AndPreservesNorms(RopeCase c, byte seed)
    {
        const float theta = 10000f;
        var stored = RopeInput(c, seed);
        var x = AsBhsd(stored, c);
        var xs = x.Contiguous().ToArray();
        var leaf = x.Detach().RequireGrad();
        var y = leaf.Rope(c.Offset, theta);
        Assert.Equal(x.ShapeArray, y.ShapeArray);
        var ys = y.ToArray();
        var expected = RopeReference(xs, c.B, c.H, c.S, c.D, c.Offset, theta);
        for (int i = 0; i < ys.Length; i++) Close(expected[i], ys[i], 3e-5, $"rope element {i}");
        for (int row = 0; row < ys.Length / c.D; row++)
        {
            double nx = 0, ny = 0;
            for (int j = 0; j < c.D; j++)
            {
                nx += (double)xs[row * c.D + j] * xs[row * c.D + j];
                ny += (double)ys[row * c.D + j] * ys[row * c.D + j];
            }
            Close(Math.Sqrt(nx), Math.Sqrt(ny), 1e-5, "rope row norm");
        }
        // Backward is the inverse rotation of the output gradient.
        var g = Rand(y.ShapeArray, seed + 9UL);
        y.Backward(g);
        var expectedGrad = RopeReference(g.ToArray(), c.B, c.H, c.S, c.D, c.Offset, theta, inverse: true);
        var grad = leaf.Grad!.ToArray();
        for (int i = 0; i < grad.Length; i++) Close(expectedGrad[i], grad[i], 3e-5, $"rope gradient element {i}");
    }

    [Fact]
    public void Rope_TinyExample_RotatesPairsByPositionTimesInverseFrequency()
    {
        // headDim 4: inv_freq = [1, 1/100] with theta 10000; position 1 (offset 1, seq index 0).
        var x = Tensor.FromArray([1f, 2f, 3f, 4f], 1, 1, 1, 4);
        var y = x.Rope(positionOffset: 1, theta: 10000f).ToArray();
        double c0 = Math.Cos(1), s0 = Math.Sin(1), c1 = Math.Cos(0.01), s1 = Math.Sin(0.01);
        double[] expected = [1 * c0 - 3 * s0, 2 * c1 - 4 * s1, 3 * c0 + 1 * s0, 4 * c1 + 2 * s1];
        for (int i = 0; i < 4; i++) Close(expected[i], y[i], 1e-6, $"element {i}");
        // Position 0 is the identity.
        Assert.Equal(x.ToArray(), x.Rope(0, 10000f).ToArray());
    }

    [Fact]
    public void Rope_TablesAreCachedPerKey()
    {
        var (cos1, sin1) = RopeTables.Get(Backend.Cpu, 3, 6, 1234.5f, 17);
        var (cos2, sin2) = RopeTables.Get(Backend.Cpu, 3, 6, 1234.5f, 17);
        Assert.Same(cos1.Storage, cos2.Storage);
        Assert.Same(sin1.Storage, sin2.Storage);
        var (cos3, _) = RopeTables.Get(Backend.Cpu, 3, 6, 1234.5f, 18);
        Assert.NotSame(cos1.Storage, cos3.Storage);
        Assert.Equal([3, 3], cos1.ShapeArray);
        // Filling the cache evicts old entries, but handles taken before stay readable.
        for (int i = 0; i < RopeTables.Capacity + 2; i++) RopeTables.Get(Backend.Cpu, 1, 2, 99f, i).Cos.Dispose();
        Assert.True(RopeTables.Count <= RopeTables.Capacity);
        Assert.Equal((float)Math.Cos(17.0 * Math.Pow(1234.5, -2.0 / 6)), cos1.ToArray()[1], 6);
    }

    // ---- SwiGLU ---------------------------------------------------------------------------------

    [Theory]
    [InlineData(301, false)]
    [InlineData(301, true)]
    [InlineData(5003, false)]   // 35,021 elements: split across threads, then into blocks with an uneven tail
    public void SwiGlu_IsSiluTimesUp_BitForBit_ForwardAndBackward(int columns, bool transposedGate)
    {
        // Wide inputs (|x| up to 12) reach σ's flat tails.
        var gateData = Rand([columns, 7], 51, -12f, 12f);
        var upData = Rand([7, columns], 52, -3f, 3f);
        var g = Rand([7, columns], 53);
        (float[] Y, float[] GateGrad, float[] UpGrad) Run(bool fused)
        {
            var gateLeaf = gateData.Detach().RequireGrad();
            var upLeaf = upData.Detach().RequireGrad();
            var gate = transposedGate ? gateLeaf.T : gateLeaf.Transpose(0, 1).Contiguous();
            var y = fused ? gate.SwiGlu(upLeaf) : gate.Silu() * upLeaf;
            y.Backward(g);
            return (y.ToArray(), gateLeaf.Grad!.ToArray(), upLeaf.Grad!.ToArray());
        }
        var unfused = Run(fused: false);
        var fusedResult = Run(fused: true);
        Assert.Equal(unfused.Y, fusedResult.Y);
        Assert.Equal(unfused.GateGrad, fusedResult.GateGrad);
        Assert.Equal(unfused.UpGrad, fusedResult.UpGrad);
    }

    [Fact]
    public void SwiGlu_OnBf16_TakesASeedGradientOfAnotherDtype()
    {
        Tensor[] Grads(DType seedType)
        {
            var gate = Rand([3, 5], 81, -4f, 4f).To(DType.BFloat16).RequireGrad();
            var up = Rand([3, 5], 82).To(DType.BFloat16).RequireGrad();
            var y = gate.SwiGlu(up);
            y.Backward(Tensor.Ones(y.Shape, seedType));
            return [gate.Grad!, up.Grad!];
        }
        var fromBf16 = Grads(DType.BFloat16);
        var fromFloat32 = Grads(DType.Float32);
        for (int i = 0; i < 2; i++) Assert.Equal(fromBf16[i].ToArray(), fromFloat32[i].ToArray());
    }

    [Fact]
    public void SwiGlu_MatchesFiniteDifferences_AndItsDefinition()
    {
        GradCheck.Check(t => t[0].SwiGlu(t[1]), [Rand([4, 9], 61, -4f, 4f), Rand([4, 9], 62)]);
        var y = Tensor.FromArray([0f, 1f, -2f, 30f], 4).SwiGlu(Tensor.FromArray([5f, 2f, 1f, 0.5f], 4)).ToArray();
        double[] expected = [0, 2 / (1 + Math.Exp(-1)), -2 / (1 + Math.Exp(2)), 15];
        for (int i = 0; i < 4; i++) Close(expected[i], y[i], 1e-6, $"element {i}");
    }

    // ---- bad inputs -----------------------------------------------------------------------------

    [Fact]
    public void BadInputs_GiveClearExceptions()
    {
        var ints = Tensor.FromArray([1, 2, 3], 3);
        var x = Rand([2, 3], 1);
        Assert.Throws<DTypeMismatchException>(() => ints.Softmax());
        Assert.Throws<DTypeMismatchException>(() => ints.LogSoftmax());
        Assert.Throws<ArgumentOutOfRangeException>(() => x.Softmax(2));

        // cross-entropy
        var floatTargets = Tensor.FromArray([0f, 1f], 2);
        var e1 = Assert.Throws<DTypeMismatchException>(() => Tensor.CrossEntropy(x, floatTargets));
        Assert.Contains("int32 or int64", e1.Message);
        var e2 = Assert.Throws<ShapeMismatchException>(() => Tensor.CrossEntropy(x, Tensor.FromArray([0, 1, 2], 3)));
        Assert.Contains("[2, 3]", e2.Message);
        Assert.Contains("[3]", e2.Message);
        var e3 = Assert.Throws<ArgumentOutOfRangeException>(() => Tensor.CrossEntropy(x, Tensor.FromArray([0, 3], 2)));
        Assert.Contains("target id 3", e3.Message);
        Assert.Contains("3 classes", e3.Message);
        var e4 = Assert.Throws<ArgumentOutOfRangeException>(() => Tensor.CrossEntropy(x, Tensor.FromArray([-1L, 0L], 2)));
        Assert.Contains("target id -1", e4.Message);
        Assert.Throws<DTypeMismatchException>(() => Tensor.CrossEntropy(ints, Tensor.FromArray([0], 1)));
        Assert.Throws<ShapeMismatchException>(() => Tensor.CrossEntropy(Tensor.Scalar(1f), Tensor.FromArray([0], 1)));

        // RMSNorm
        var e5 = Assert.Throws<ShapeMismatchException>(() => x.RmsNorm(Tensor.Ones([2]), 1e-6f));
        Assert.Contains("[2, 3]", e5.Message);
        Assert.Throws<ShapeMismatchException>(() => x.RmsNorm(Tensor.Ones([1, 3]), 1e-6f));
        Assert.Throws<DTypeMismatchException>(() => ints.RmsNorm(Tensor.Ones([3]), 1e-6f));
        Assert.Throws<DTypeMismatchException>(() => x.RmsNorm(Tensor.FromArray([1, 1, 1], 3), 1e-6f));
        Assert.Throws<ShapeMismatchException>(() => Tensor.Scalar(1f).RmsNorm(Tensor.Ones([1]), 1e-6f));
        Assert.Throws<ArgumentException>(() => x.RmsNorm(Tensor.Ones([3]), -1f));

        // RoPE
        var e6 = Assert.Throws<ShapeMismatchException>(() => Rand([2, 3, 4], 2).Rope(0, 10000f));
        Assert.Contains("[2, 3, 4]", e6.Message);
        var e7 = Assert.Throws<ShapeMismatchException>(() => Rand([1, 1, 2, 5], 2).Rope(0, 10000f));
        Assert.Contains("even", e7.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => Rand([1, 1, 2, 4], 2).Rope(-1, 10000f));
        Assert.Throws<ArgumentException>(() => Rand([1, 1, 2, 4], 2).Rope(0, 0f));
        Assert.Throws<DTypeMismatchException>(() => Tensor.Zeros([1, 1, 2, 4], DType.Int32).Rope(0, 10000f));

        // SwiGLU
        var e8 = Assert.Throws<ShapeMismatchException>(() => x.SwiGlu(Rand([3, 2], 3)));
        Assert.Contains("[2, 3]", e8.Message);
        Assert.Contains("[3, 2]", e8.Message);
        var e9 = Assert.Throws<DTypeMismatchException>(() => x.SwiGlu(x.To(DType.BFloat16)));
        Assert.Contains("bfloat16", e9.Message);
        Assert.Throws<DTypeMismatchException>(() => ints.SwiGlu(ints));
    }
}

/// <summary>Memory checks read the process-wide pool counters, so they run alone with the other memory tests.</summary>
[Collection(nameof(SerialMemoryTests))]
public class NnOpsMemoryTests
{
    [Fact]
    public void TrainingStep_WithNnOps_ReturnsAllMemory()
    {
        var gen = new Generator(41);
        var emb = Tensor.RandN([2 * 2 * 3, 8], gen).RequireGrad().Persist();
        var norm = Tensor.Ones([8]).RequireGrad().Persist();
        var head = Tensor.RandN([8, 11], gen).RequireGrad().Persist();
        var ids = Tensor.FromArray([1, 5, -100, 10, 0, 3, 2, 2, 7, -100, 4, 9], 12).Persist();
        void Step()
        {
            using var scope = TensorScope.Enter();
            var q = emb.Reshape(2, 2, 3, 8).Rope(2, 10000f);     // [B, H, S, D]
            var h = q.Reshape(12, 8).RmsNorm(norm, 1e-5f);
            var logits = h.MatMul(head).Softmax(0).Log();        // exercises softmax along dim 0
            var loss = Tensor.CrossEntropy(logits.LogSoftmax(), ids);
            loss.Backward();
            emb.ZeroGrad();
            norm.ZeroGrad();
            head.ZeroGrad();
        }
        Step();
        MemoryCounters.Settle();
        long live = CpuMemoryPool.LiveBytes;
        Step();
        MemoryCounters.Settle();
        Assert.Equal(live, CpuMemoryPool.LiveBytes);

        // A forward pass whose graph is never differentiated frees everything when its scope ends.
        using (var scope = TensorScope.Enter())
        {
            var q = emb.Reshape(2, 2, 3, 8).Rope(2, 10000f);
            Tensor.CrossEntropy(q.Reshape(12, 8).RmsNorm(norm, 1e-5f).Softmax(), Tensor.FromArray([1, 5, 0, 7, 0, 3, 2, 2, 7, 1, 4, 6], 12));
        }
        MemoryCounters.Settle();
        Assert.Equal(live, CpuMemoryPool.LiveBytes);
    }

    [Fact]
    public void SwiGlu_KeepsOneMlpActivationLessForBackward_ThanSiluTimesUp()
    {
        // What a forward leaves held for backward: the output and — unfused — silu(gate) as well (the inputs are leaves).
        var gen = new Generator(71);
        var gate = Tensor.RandN([64, 256], gen).RequireGrad().Persist();
        var up = Tensor.RandN([64, 256], gen).RequireGrad().Persist();
        long Held(Func<Tensor> forward)
        {
            using var scope = TensorScope.Enter();
            long before = Backend.Cpu.Memory.LiveBytes;
            forward();
            return Backend.Cpu.Memory.LiveBytes - before;
        }
        long unfused = Held(() => { using var act = gate.Silu(); return act * up; });
        long fused = Held(() => gate.SwiGlu(up));
        Assert.Equal(64L * 256 * sizeof(float), fused);
        Assert.Equal(2 * fused, unfused);
    }

    [Fact]
    public void SwiGlu_OnBf16_AllocatesNothingButItsResultsAndGradients()
    {
        // The kernels widen bf16 as they read it, so a forward and backward never hold a float32 copy of an activation.
        var gen = new Generator(73);
        using var gate = Tensor.RandN([64, 256], gen, dtype: DType.BFloat16).RequireGrad().Persist();
        using var up = Tensor.RandN([64, 256], gen, dtype: DType.BFloat16).RequireGrad().Persist();
        long bf16Bytes = 64L * 256 * 2;
        var ledger = Backend.Cpu.Memory;
        using (TensorScope.Enter())
        {
            long before = ledger.LiveBytes;
            ledger.ResetPeak();
            var y = gate.SwiGlu(up);
            Assert.Equal(before + bf16Bytes, ledger.PeakBytes);
            y.Backward(Tensor.OnesLike(y));
            // y, its seed gradient, and the two input gradients.
            Assert.Equal(before + 4 * bf16Bytes, ledger.PeakBytes);
        }
        gate.ZeroGrad();
        up.ZeroGrad();
    }
}
