using TensorLite.Autograd;
using TensorLite.LinearAlgebra;
using TensorLite.Optim;
using TensorLite.Optim.Projected;
using Xunit;
using LA = TensorLite.LinearAlgebra.Linalg;

namespace TensorLite.Tests;

/// <summary>The choices where TensorLite follows the methods' reference code (issue 17): GaLore's side rule, OSD's start
/// and step size, GRASS's unbiased re-scaling, FRUGAL's whole-matrix mode.</summary>
public class FaithfulMethodsTests
{
    private static Tensor Param(int m, int n) => Tensor.Zeros([m, n]).RequireGrad().Persist();

    // ---- GaLore's side rule -----------------------------------------------------------------------

    [Theory]
    [InlineData("std", 6, 6, ProjectionSide.Right)]      // galore_projector.py: shape[0] >= shape[1] → right
    [InlineData("std", 8, 5, ProjectionSide.Right)]
    [InlineData("std", 5, 8, ProjectionSide.Left)]
    [InlineData("reverse_std", 6, 6, ProjectionSide.Left)]
    [InlineData("reverse_std", 5, 8, ProjectionSide.Right)]
    [InlineData("left", 8, 5, ProjectionSide.Left)]
    [InlineData("right", 5, 8, ProjectionSide.Right)]
    public void GaLore_ProjectsOnTheReferenceSide(string projType, int m, int n, ProjectionSide expected)
    {
        var w = Param(m, n);
        var options = ProjectedOptions.GaLore(rank: 2, side: OptimizerSpec.ParseSide(projType));
        using var opt = new ProjectedOptimizer([("mlp.w", w)], options);
        w.Grad = Tensor.RandN([m, n], new Generator(3)).Persist();
        opt.Step();
        var proj = (DenseBasisProjector)opt.ProjectorOf(0)!;
        Assert.Equal(expected, proj.Side);
        // The basis is the top-2 singular vectors on that side: V_r [n, r] for right, U_r [m, r] for left.
        var (u, _, vt) = LA.Svd(w.Grad!, 2);
        using var v = vt.T;
        var reference = expected == ProjectionSide.Left ? u : v;
        Assert.True(LA.PrincipalAngles(reference, proj.Basis!).Max() < 1e-3);
    }

    [Fact]
    public void SideRule_AppliesToOsdAndFrugalSvd_AndTheCliWordsAreChecked()
    {
        Assert.Equal(ProjectionSide.Right, ProjectedOptions.Osd(rank: 2).SideFor(6, 6));
        Assert.Equal(ProjectionSide.Right, ProjectedOptions.Frugal(0.5f, FrugalSubspace.Svd).SideFor(6, 6));
        Assert.Equal(ProjectionSide.Left, (OptimizerSpec.Parse("osd") with { Side = ProjectionSide.Reverse }).ToOptions().SideFor(6, 6));
        var e = Assert.Throws<ArgumentException>(() => OptimizerSpec.ParseSide("both"));
        Assert.Contains("reverse_std", e.Message);
    }

    // ---- OSD --------------------------------------------------------------------------------------

    [Fact]
    public void Osd_FirstBasisIsTheSvdBasis_ThenMovesByTheScheduledPcaStep()
    {
        const int m = 8, n = 6, r = 2;
        var w = Param(m, n);
        var options = ProjectedOptions.Osd(rank: r, learningRate: 0.02f) with { UpdateGap = 50 };
        using var opt = new ProjectedOptimizer([("mlp.w", w)], options);
        var gen = new Generator(9);
        w.Grad = Tensor.RandN([m, n], gen).Persist();
        opt.Step();
        var proj = (OnlinePcaProjector)opt.ProjectorOf(0)!;
        Assert.Equal(ProjectionSide.Right, proj.Side); // 8 ≥ 6: the std rule
        using var svd = SvdProjector.TopSingularBasis(w.Grad!, r, ProjectionSide.Right);
        Assert.Equal(svd.ToArray(), proj.Basis!.ToArray()); // the same basis GaLore computes, bit for bit
        Assert.Equal(1f / 50, proj.LearningRate);             // 1/T
        var before = proj.Basis!.ToArray();
        // Second step at half the peak lr: the PCA step size is (1/T)·½.
        opt.LearningRate = 0.01f;
        w.Grad = Tensor.RandN([m, n], gen).Persist();
        opt.Step();
        Assert.Equal(1f / 50 * 0.5f, proj.Pca!.LearningRate, 6);
        Assert.Equal(1, proj.Pca.StepCount);
        Assert.True(before.Zip(proj.Basis!.ToArray(), (a, b) => Math.Abs(a - b)).Max() > 0, "P did not move on the second step");
    }

    [Fact]
    public void Osd_PcaStepIsInvariantToTheGradientsScale()
    {
        // The objective uses G/‖G‖_F, so scaling every gradient by 1000 leaves P's trajectory unchanged.
        float[] Run(float factor)
        {
            var w = Param(7, 5);
            using var opt = new ProjectedOptimizer([("mlp.w", w)], ProjectedOptions.Osd(rank: 2, pcaLearningRate: 0.05f, learningRate: 0f));
            var gen = new Generator(4);
            for (int t = 0; t < 4; t++)
            {
                using var g = Tensor.RandN([7, 5], gen);
                w.Grad = (g * factor).Persist();
                opt.Step();
            }
            return ((OnlinePcaProjector)opt.ProjectorOf(0)!).Basis!.ToArray();
        }
        var a = Run(1f);
        var b = Run(1000f);
        Assert.True(a.Zip(b, (x, y) => Math.Abs(x - y)).Max() < 1e-4);
    }

    // ---- GRASS ------------------------------------------------------------------------------------

    /// <summary>‖mean over draws of PᵀP·G − G‖_F / ‖G‖_F for a sparse projector that draws a new selection each step.</summary>
    private static double MeanReconstructionError(Tensor g, int rank, RowSelection selection, bool rescaled, bool withReplacement, int draws)
    {
        using var noGrad = GradMode.NoGrad();
        int m = g.Shape[0], n = g.Shape[1];
        using var proj = new SparseProjector(ProjectionSide.Left, m, n, rank, 1, selection, new Generator(2024), rescaled, withReplacement);
        var sum = new double[m * n];
        for (int t = 0; t < draws; t++)
        {
            using var scope = TensorScope.Enter();
            proj.Refresh(g, t);
            using var r = proj.Project(g);
            using var back = proj.ProjectBack(r);
            var b = back.ToArray();
            for (int i = 0; i < b.Length; i++) sum[i] += b[i];
        }
        var gv = g.ToArray();
        double err = 0, norm = 0;
        for (int i = 0; i < gv.Length; i++)
        {
            double d = sum[i] / draws - gv[i];
            err += d * d;
            norm += (double)gv[i] * gv[i];
        }
        return Math.Sqrt(err / norm);
    }

    [Theory]
    [InlineData(RowSelection.NormSquaredProportional, true)]
    [InlineData(RowSelection.NormProportional, true)]
    [InlineData(RowSelection.Uniform, true)]
    [InlineData(RowSelection.Uniform, false)] // without replacement the uniform scale √(m/r) is exactly unbiased too
    public void Grass_RescaledSampling_IsUnbiasedInExpectation(RowSelection selection, bool withReplacement)
    {
        // Rows of very different norms, so that a biased estimator shows.
        var gen = new Generator(77);
        using var raw = Tensor.RandN([6, 4], gen);
        using var weights = Tensor.FromArray(new[] { 3f, 1f, 0.5f, 2f, 0.2f, 1.5f }, 6, 1);
        using var g = raw * weights;
        const int draws = 3000;
        double unbiased = MeanReconstructionError(g, 2, selection, rescaled: true, withReplacement, draws);
        double plain = MeanReconstructionError(g, 2, selection, rescaled: false, withReplacement, draws);
        // Measured with these seeds: 0.005–0.022 re-scaled; without re-scaling the mean is r·q_i·G_i per row, 0.45–0.67 off.
        Assert.True(unbiased < 0.06, $"{selection} (replacement {withReplacement}): the re-scaled mean is {unbiased:F3} off G");
        Assert.True(plain > 0.3, $"{selection}: without re-scaling the mean should be biased, but is only {plain:F3} off");
    }

    [Fact]
    public void Grass_CountsTheDistinctRowsItHasSelected()
    {
        var g = Tensor.RandN([10, 3], new Generator(5));
        using var proj = new SparseProjector(ProjectionSide.Left, 10, 3, 2, 1, RowSelection.Uniform, new Generator(1), rescaled: true, withReplacement: true);
        proj.Refresh(g, 0);
        int first = proj.DistinctSelected;
        Assert.InRange(first, 1, 2);
        for (int t = 1; t < 60; t++) proj.Refresh(g, t);
        Assert.Equal(10, proj.DistinctSelected); // 120 uniform draws cover all 10 rows
        Assert.Equal(RowSelection.NormSquaredProportional, ProjectedOptions.Grass().Selection); // the default samples ∝ ‖row‖²
    }

    // ---- FRUGAL's whole-matrix mode ---------------------------------------------------------------

    private static List<(string Name, Tensor Parameter)> SevenMatrices(ulong seed)
    {
        var gen = new Generator(seed);
        string[] names = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];
        return names.Select((name, i) => ($"layers.0.{(i < 4 ? "self_attn" : "mlp")}.{name}.weight",
            Tensor.RandN(i < 4 ? [6, 6] : i < 6 ? [9, 6] : [6, 9], gen).RequireGrad().Persist())).ToList();
    }

    [Theory]
    [InlineData(0.25f, 2, MatrixOrder.Descending)] // round(1.75) = 2
    [InlineData(0.5f, 4, MatrixOrder.Ascending)]   // round(3.5) = 4, half to even as Python's round
    [InlineData(0.3f, 2, MatrixOrder.Random)]      // round(2.1) = 2
    public void FrugalMatrices_UpdatesExactlyRoundRhoK_WithAdamW_AndTheRestStateFree(float density, int expectedActive, MatrixOrder order)
    {
        const float lr = 0.01f, wd = 0.1f, residualScale = 0.5f;
        var ps = SevenMatrices(3);
        var options = ProjectedOptions.Frugal(density, order: order, updateGap: 2, residualScale: residualScale, learningRate: lr, weightDecay: wd);
        using var opt = new ProjectedOptimizer(ps, options);
        var gen = new Generator(8);
        var activeSets = new List<int[]>();
        for (int t = 0; t < 4; t++)
        {
            var before = ps.Select(x => x.Parameter.ToArray()).ToArray();
            foreach (var (_, p) in ps) { p.Grad?.Dispose(); p.Grad = Tensor.RandN(p.Shape, gen).Persist(); }
            var grads = ps.Select(x => x.Parameter.Grad!.ToArray()).ToArray();
            opt.Step();
            var active = Enumerable.Range(0, ps.Count).Where(opt.HasInnerState).ToArray();
            Assert.Equal(expectedActive, active.Length);
            for (int i = 0; i < ps.Count; i++)
            {
                if (active.Contains(i)) continue;
                // State-free SignSGD: p ← (1 − lr·wd)·p − lr·α·ResidualScale·sign(g), α = 1.
                var after = ps[i].Parameter.ToArray();
                for (int e = 0; e < after.Length; e++)
                    Assert.Equal((1f - lr * wd) * before[i][e] - lr * residualScale * MathF.Sign(grads[i][e]), after[e], 6);
            }
            if (t % 2 == 0) activeSets.Add(active);
            else Assert.Equal(activeSets[^1], active); // the set holds between refreshes
        }
        if (order == MatrixOrder.Descending) Assert.Equal([[5, 6], [3, 4]], activeSets);
        if (order == MatrixOrder.Ascending) Assert.Equal([[0, 1, 2, 3], [0, 4, 5, 6]], activeSets);
        // The state held is the active matrices' AdamW moments (plus counters), never more than the planner predicts.
        long predicted = ProjectedOptimizer.PredictStateBytes(ps.Select(x => (x.Name, x.Parameter.ShapeArray)), options);
        Assert.InRange(opt.StateBytes, 1, predicted);
    }

    [Fact]
    public void FrugalMatrices_ActiveMatrixTakesAdamWsStep_FromFreshMoments()
    {
        // An active matrix after a refresh equals AdamW's first step from zero moments (Adam's first step: lr·g/(|g|+ε)).
        const float lr = 0.01f;
        var ps = SevenMatrices(4);
        using var opt = new ProjectedOptimizer(ps, ProjectedOptions.Frugal(0.25f, updateGap: 1, learningRate: lr));
        var gen = new Generator(2);
        for (int t = 0; t < 2; t++)
        {
            var before = ps.Select(x => x.Parameter.ToArray()).ToArray();
            foreach (var (_, p) in ps) { p.Grad?.Dispose(); p.Grad = Tensor.RandN(p.Shape, gen).Persist(); }
            var grads = ps.Select(x => x.Parameter.Grad!.ToArray()).ToArray();
            opt.Step();
            foreach (int i in Enumerable.Range(0, ps.Count).Where(opt.HasInnerState))
            {
                var after = ps[i].Parameter.ToArray();
                for (int e = 0; e < after.Length; e++)
                    Assert.Equal(before[i][e] - lr * grads[i][e] / (MathF.Abs(grads[i][e]) + 1e-8f), after[e], 5);
            }
        }
    }
}

/// <summary>Issue 14's leftover: method defaults live with the method's preset; the trainer's options say "not given".</summary>
public class MethodDefaultsTests
{
    [Fact]
    public void TrainingOptions_LeaveMethodNumbersToThePresets()
    {
        var o = new TensorLite.Training.TrainingOptions();
        Assert.Equal((null, null, null, null, null), (o.Rank, o.UpdateGap, o.Density, o.Scale, o.LearningRate));
        var galore = (o with { Optimizer = "galore" }).ToOptimizerSpec();
        var g = galore.ToOptions();
        Assert.Equal((128, 200, 0.25f, 0.01f, 0f), (g.Rank, g.UpdateGap, g.Scale, g.LearningRate, g.WeightDecay));
        Assert.Equal((0.999f, 1e-6f), (galore.HyperParameters.Beta2, galore.HyperParameters.Eps));
        var frugal = (o with { Optimizer = "frugal" }).ToOptimizerSpec().ToOptions();
        Assert.Equal((0.25f, 200, 1e-3f, ProjectionKind.WholeMatrix), (frugal.Density!.Value, frugal.UpdateGap, frugal.LearningRate, frugal.Projection));
        Assert.Equal(MatrixOrder.Descending, ((WholeMatrixProjectorFactory)frugal.Projector).Order);
        // adamw keeps the trainer's own numbers, so the default run does not change.
        var adamw = o.ToOptimizerSpec().HyperParameters;
        Assert.Equal(new MethodHyperParameters(3e-3f, 0.1f, 0.9f, 0.95f, 1e-8f), adamw);
        Assert.Equal(3e-3f, o.PeakLearningRate);
        // A given number wins over the preset's.
        Assert.Equal(16, (o with { Optimizer = "osd", Rank = 16 }).ToOptimizerSpec().ToOptions().Rank);
        Assert.Equal(1e-4f, (o with { Optimizer = "galore", LearningRate = 1e-4f }).PeakLearningRate);
    }
}
