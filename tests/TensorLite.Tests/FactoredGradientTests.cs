using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using TensorLite.Autograd;
using TensorLite.LinearAlgebra;
using TensorLite.Optim.Projected;
using Xunit;

namespace TensorLite.Tests;

/// <summary>
/// Factored weight gradients (G = dYᵀ·X kept as its factors): the engine's capture and fallback, every projector's
/// projected gradient and refresh from the factors against the same projector on the dense G, and GRASS's row-sparse
/// update.
/// </summary>
public sealed class FactoredGradientTests
{
    /// <summary>A random factored gradient: b rows of X [b, n] and dY [b, m] (b may be below r or above m).</summary>
    public sealed record FactorCase(int M, int N, int B, int Rank, bool Left, int Seed);

    public static Arbitrary<FactorCase> Cases() =>
        (from m in Gen.Choose(2, 12)
         from n in Gen.Choose(2, 12)
         from b in Gen.Choose(1, 20)
         from r in Gen.Choose(1, Math.Min(m, n))
         from left in Gen.Elements(true, false)
         from seed in Gen.Choose(0, 10_000)
         select new FactorCase(m, n, b, r, left, seed)).ToArbitrary();

    private static (FactoredGradient F, Tensor G) Make(FactorCase c, int pairs = 1)
    {
        var gen = new Generator((ulong)c.Seed + 1);
        var f = new FactoredGradient(c.M, c.N);
        Tensor? g = null;
        for (int i = 0; i < pairs; i++)
        {
            using var x = Tensor.RandN([c.B, c.N], gen, 1f);
            using var dy = Tensor.RandN([c.B, c.M], gen, 1f);
            f.Add(x, dy);
            using var dyt = dy.T;
            var term = dyt.MatMul(x);
            if (g == null) g = term;
            else using (term) { var sum = g + term; g.Dispose(); g = sum; }
        }
        return (f, g!);
    }

    private static void AssertClose(Tensor expected, Tensor actual, double scale, string what)
    {
        Assert.Equal(expected.ShapeArray, actual.ShapeArray);
        var a = expected.ToArray();
        var b = actual.ToArray();
        // float32 rounding of sums of ≤ 40 products of N(0, 1) factors, relative to the matrix's size.
        double tol = 1e-5 * (1 + scale);
        for (int i = 0; i < a.Length; i++)
            Assert.True(Math.Abs(a[i] - b[i]) <= tol, $"{what}: element {i} is {b[i]}, expected {a[i]} (tolerance {tol:g3})");
    }

    private static double MaxAbs(Tensor t) => t.ToArray().Max(v => Math.Abs((double)v));

    /// <summary>Every projector kind, created twice with the same seed (one for the dense path, one for the factored).</summary>
    private static IEnumerable<(string Name, Func<IProjector> Create)> Kinds(FactorCase c)
    {
        var side = c.Left ? ProjectionSide.Left : ProjectionSide.Right;
        ulong seed = (ulong)c.Seed + 77;
        yield return ("svd", () => new SvdProjector(side, c.M, c.N, c.Rank, 1, randomized: false, new Generator(seed)));
        yield return ("rsvd", () => new SvdProjector(side, c.M, c.N, c.Rank, 1, randomized: true, new Generator(seed)));
        yield return ("range", () => new RangeFinderProjector(side, c.M, c.N, c.Rank, 1, new Generator(seed)));
        yield return ("random", () => new RandomOrthonormalProjector(side, c.M, c.N, c.Rank, 1, new Generator(seed)));
        yield return ("random-bf16", () => new RandomOrthonormalProjector(side, c.M, c.N, c.Rank, 1, new Generator(seed), DType.BFloat16));
        yield return ("osd", () => new OnlinePcaProjector(side, c.M, c.N, c.Rank, 1e-2f));
        yield return ("osd-sgd", () => new OnlinePcaProjector(side, c.M, c.N, c.Rank, 1e-2f, OnlinePcaOptimizer.Sgd));
        foreach (var sel in new[] { RowSelection.TopNorm, RowSelection.NormProportional, RowSelection.Uniform, RowSelection.Block })
            yield return ($"sparse-{sel}", () => new SparseProjector(side, c.M, c.N, c.Rank, 1, sel, new Generator(seed)));
        // GRASS's default: sampled with replacement (rows may repeat) and re-scaled by ρ.
        yield return ("sparse-sampled-rescaled", () => new SparseProjector(side, c.M, c.N, c.Rank, 1, RowSelection.NormSquaredProportional, new Generator(seed), rescaled: true, withReplacement: true));
    }

    [Property(MaxTest = 25, Arbitrary = [typeof(FactoredGradientTests)])]
    public void ProjectedGradientFromFactors_EqualsProjectionOfTheDenseGradient(FactorCase c)
    {
        var (f, g) = Make(c, pairs: 1 + c.Seed % 2);
        using (f)
        using (g)
        {
            double scale = MaxAbs(g);
            foreach (var (name, create) in Kinds(c))
            {
                using var dense = create();
                using var factored = create();
                dense.Refresh(g, 0);
                using var rd = dense.Project(g);
                // The same basis, projecting the dense G and the factors.
                using var rSame = dense.ProjectFactored(f);
                AssertClose(rd, rSame, scale, $"{name} (same basis) {c}");
                if (name is "rsvd" or "range" or "osd" or "osd-sgd") continue; // their refreshes: the tests below
                // Refreshed from the factors (the exact SVD and the norm-based selections form G, the random basis does
                // not look at it): the same R.
                factored.RefreshFactored(f, 0);
                using var rf = factored.ProjectFactored(f);
                AssertClose(rd, rf, scale, $"{name} {c}");
            }
        }
    }

    [Property(MaxTest = 25, Arbitrary = [typeof(FactoredGradientTests)])]
    public void RefreshFromFactors_CapturesTheSameSubspaceAsFromTheDenseGradient(FactorCase c)
    {
        // Sign flips and, when rank(G) < r, the completion of the basis are arbitrary; what the basis keeps of G
        // (B·Bᵀ·G for left, G·B·Bᵀ for right) is not.
        var (f, g) = Make(c);
        using (f)
        using (g)
        {
            double scale = MaxAbs(g);
            foreach (var (name, create) in Kinds(c).Where(k => k.Name is "rsvd" or "range"))
            {
                using var dense = create();
                using var factored = create();
                dense.Refresh(g, 0);
                factored.RefreshFactored(f, 0);
                using var kd = Kept(dense, g);
                using var kf = Kept(factored, g);
                AssertClose(kd, kf, scale * 10, $"{name} {c}");
            }
        }
    }

    private static Tensor Kept(IProjector p, Tensor g)
    {
        using var r = p.Project(g);
        return p.ProjectBack(r);
    }

    [Property(MaxTest = 25, Arbitrary = [typeof(FactoredGradientTests)])]
    public void OnlinePcaStepFromFactors_EqualsTheDenseStep(FactorCase c)
    {
        var (f, g) = Make(c);
        using (f)
        using (g)
        {
            var side = c.Left ? ProjectionSide.Left : ProjectionSide.Right;
            // SGD: the step is linear in the PCA gradient, so it compares the gradients. (Adam's first steps are ±lr
            // wherever a gradient element is at rounding level, e.g. r = dim where the exact gradient is zero.)
            foreach (var optimizer in new[] { OnlinePcaOptimizer.Sgd })
            {
                using var dense = new OnlinePcaProjector(side, c.M, c.N, c.Rank, 1e-3f, optimizer);
                using var factored = new OnlinePcaProjector(side, c.M, c.N, c.Rank, 1e-3f, optimizer);
                for (int step = 0; step < 2; step++)
                {
                    dense.Refresh(g, step);
                    factored.RefreshFactored(f, step);
                }
                using var bd = dense.BasisMatrix();
                using var bf = factored.BasisMatrix();
                AssertClose(bd, bf, 1, $"{optimizer} {c}");
            }
        }
    }

    [Property(MaxTest = 25, Arbitrary = [typeof(FactoredGradientTests)])]
    public void DenseForm_NormInputsAndFolding_MatchTheDenseGradient(FactorCase c)
    {
        var (f, g) = Make(c, pairs: 2);
        using (f)
        using (g)
        {
            double scale = MaxAbs(g);
            using var dense = f.ToDense(DType.Float32);
            AssertClose(g, dense, scale, "ToDense");
            using var q = Tensor.RandN([c.N, c.Rank], new Generator(3), 1f);
            using var z = Tensor.RandN([c.M, c.Rank], new Generator(4), 1f);
            using var gq = g.MatMul(q);
            using var fq = f.Times(q);
            AssertClose(gq, fq, scale * c.N, "G·Q");
            using var gt = g.T;
            using var gtz = gt.MatMul(z);
            using var ftz = f.TransposeTimes(z);
            AssertClose(gtz, ftz, scale * c.M, "Gᵀ·Z");
            Assert.True(f.FactorsAreFinite());
        }
    }

    // ---- the engine ---------------------------------------------------------------------------------

    private static (Tensor W, Tensor X) LinearInputs(int seed, DType dtype = DType.Float32)
    {
        var gen = new Generator((ulong)seed);
        var w = Tensor.RandN([5, 7], gen, 1f).RequireGrad();
        using var x32 = Tensor.RandN([2, 3, 7], gen, 1f);
        var x = (dtype == DType.Float32 ? x32.Clone() : x32.To(dtype)).RequireGrad();
        return (w, x);
    }

    private static (float[] WGrad, float[] XGrad) DenseReference(Func<Tensor, Tensor, Tensor> loss, int seed, DType dtype = DType.Float32)
    {
        var (w, x) = LinearInputs(seed, dtype);
        loss(w, x).Backward();
        return (w.Grad!.ToArray(), x.Grad!.ToArray());
    }

    private static Tensor SquaredLoss(Tensor y)
    {
        using var y32 = y.To(DType.Float32);
        using var sq = y32.Square();
        return sq.Sum();
    }

    [Theory]
    [InlineData("float32")]
    [InlineData("bfloat16")]
    public void LinearProduct_WithCapture_KeepsFactors_AndTheSameInputGradient(string dtypeName)
    {
        var dtype = dtypeName == "float32" ? DType.Float32 : DType.BFloat16;
        Tensor Loss(Tensor w, Tensor x)
        {
            using var y = x.LinearProduct(w, x.DType);
            using var activated = y.Silu();
            return SquaredLoss(activated);
        }
        var (wGrad, xGrad) = DenseReference(Loss, 3, dtype);
        var (w, x) = LinearInputs(3, dtype);
        w.CaptureFactoredGradient = true;
        int hookRuns = 0;
        w.RegisterGradHook(_ => hookRuns++);
        Loss(w, x).Backward();
        Assert.Null(w.Grad);
        Assert.Equal(1, hookRuns);
        var f = w.FactoredGrad!;
        Assert.Single(f.Pairs);
        Assert.Equal(6, f.BatchRows);
        Assert.Equal(xGrad, x.Grad!.ToArray()); // the input gradient is the same product, bit for bit
        using var dense = f.ToDense(DType.Float32);
        var got = dense.ToArray();
        for (int i = 0; i < got.Length; i++) Assert.True(Math.Abs(got[i] - wGrad[i]) <= 1e-4 * (1 + Math.Abs(wGrad[i])), $"dW[{i}] {got[i]} vs {wGrad[i]}");
        w.ZeroGrad();
        Assert.Null(w.FactoredGrad);
    }

    [Fact]
    public void AWeightAlsoUsedDensely_FallsBackToTheDenseGradient()
    {
        // A tied weight: once through the factored product, once through a plain matmul.
        static Tensor Loss(Tensor w, Tensor x)
        {
            using var y = x.LinearProduct(w, DType.Float32);
            using var wt = w.T;
            using var y2 = x.MatMul(wt);
            using var sum = y * y2;
            return sum.Sum();
        }
        var (wGrad, _) = DenseReference(Loss, 4);
        var (w, x) = LinearInputs(4);
        w.CaptureFactoredGradient = true;
        Loss(w, x).Backward();
        Assert.Null(w.FactoredGrad);
        var got = w.Grad!.ToArray();
        for (int i = 0; i < got.Length; i++) Assert.True(Math.Abs(got[i] - wGrad[i]) <= 1e-4 * (1 + Math.Abs(wGrad[i])));
    }

    [Fact]
    public void DisposingAParameter_ReleasesTheFactorsItHolds()
    {
        var (w, x) = LinearInputs(6);
        w.CaptureFactoredGradient = true;
        using (var y = x.LinearProduct(w, DType.Float32))
        using (var loss = SquaredLoss(y))
            loss.Backward();
        var (input, outputGrad) = Assert.Single(w.FactoredGrad!.Pairs);
        w.Dispose();
        Assert.Null(w.FactoredGrad);
        Assert.True(input.IsDisposed && outputGrad.IsDisposed);
        x.Dispose();
    }

    [Fact]
    public void TwoBackwardPasses_AccumulatePairs_AndACheckpointedBlockDeliversItsFactorsOutward()
    {
        static Tensor Loss(Tensor w, Tensor x) => Checkpoint.Run(inputs =>
        {
            using var y = inputs[0].LinearProduct(w, DType.Float32);
            return SquaredLoss(y);
        }, x);
        var (w0, x0) = LinearInputs(5);
        Loss(w0, x0).Backward();
        Loss(w0, x0).Backward();
        var (w, x) = LinearInputs(5);
        w.CaptureFactoredGradient = true;
        Loss(w, x).Backward();
        Loss(w, x).Backward();
        Assert.Null(w.Grad);
        Assert.Equal(2, w.FactoredGrad!.Pairs.Count);
        using var dense = w.FactoredGrad.ToDense(DType.Float32);
        var expected = w0.Grad!.ToArray();
        var got = dense.ToArray();
        for (int i = 0; i < got.Length; i++) Assert.True(Math.Abs(got[i] - expected[i]) <= 1e-4 * (1 + Math.Abs(expected[i])));
    }

    [Fact]
    public void CaptureIsRefusedForNonLeavesAndVectors()
    {
        using var v = Tensor.Zeros([4]).RequireGrad();
        Assert.Throws<TensorLiteException>(() => v.CaptureFactoredGradient = true);
    }

    // ---- GRASS's row-sparse update ------------------------------------------------------------------

    [Theory]
    [InlineData(6, 10, 0.1f)] // left: rows
    [InlineData(10, 6, 0.1f)] // right: columns
    [InlineData(6, 10, 0f)]
    public void GrassStepFromFactors_ChangesOnlyTheSelectedRows_BitForBit(int m, int n, float weightDecay)
    {
        var gen = new Generator(9);
        var w = Tensor.RandN([m, n], gen, 1f).RequireGrad();
        var before = w.ToArray();
        using var opt = new ProjectedOptimizer([("w", w)], ProjectedOptions.Grass(rank: 2, learningRate: 0.05f, weightDecay: weightDecay)
            with { ShouldProject = ProjectedOptions.AllMatrices });
        Assert.True(opt.TakesFactoredGradient(0));
        using var x = Tensor.RandN([4, n], gen, 1f);
        using var dy = Tensor.RandN([4, m], gen, 1f);
        w.FactoredGrad = new FactoredGradient(m, n);
        w.FactoredGrad.Add(x, dy);
        opt.Step();
        var sparse = (SparseProjector)opt.ProjectorOf(0)!;
        var selected = sparse.Index!.ToArray<int>().ToHashSet();
        var after = w.ToArray();
        bool rows = m <= n;
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                bool touched = selected.Contains(rows ? i : j);
                int k = i * n + j;
                if (touched) Assert.NotEqual(before[k], after[k]);
                else Assert.Equal(BitConverter.SingleToInt32Bits(before[k]), BitConverter.SingleToInt32Bits(after[k]));
            }
        Assert.True(opt.FactoredGradNorm(0) > 0);
    }
}
