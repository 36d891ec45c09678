using TensorLite.Autograd;
using TensorLite.Optim.Projected;
using Xunit;
using LA = TensorLite.LinearAlgebra.Linalg;

namespace TensorLite.Tests;

/// <summary>OSD's timing as in its reference (kyleliang919/Online-Subspace-Descent, galore_projector.py, "continuous"):
/// <c>project</c> computes the PCA loss's gradient at P_{t−1} and projects G_t with P_{t−1}; <c>project_back</c> maps
/// the update back with P_{t−1} and only then calls <c>ortho_matrix_optim.step()</c>, so P_t is first used at t + 1.</summary>
public class OsdStepTimingTests
{
    [Theory]
    [InlineData(OnlinePcaOptimizer.Adam)]
    [InlineData(OnlinePcaOptimizer.Sgd)]
    public void Osd_ProjectsAndProjectsBackWithThePreviousBasis_ThenStepsIt(OnlinePcaOptimizer pcaOptimizer)
    {
        const int m = 8, n = 6, r = 2;
        var w = Tensor.RandN([m, n], new Generator(2)).RequireGrad().Persist();
        var options = ProjectedOptions.Osd(rank: r, pcaOptimizer: pcaOptimizer, learningRate: 0.05f) with { UpdateGap = 4 };
        using var opt = new ProjectedOptimizer([("mlp.w", w)], options);
        var gen = new Generator(13);
        w.Grad = Tensor.RandN([m, n], gen).Persist();
        opt.Step();
        var proj = (OnlinePcaProjector)opt.ProjectorOf(0)!;
        Assert.Equal(ProjectionSide.Right, proj.Side); // m ≥ n: P is [n, r], R = G·P
        using var p0 = proj.Basis!.Clone();

        for (int step = 1; step <= 3; step++)
        {
            // P_{t−1} and its optimizer's state before the step.
            using var pBefore = proj.Basis!.Clone();
            using var m1 = proj.Pca!.FirstMoment?.Clone();
            using var m2 = proj.Pca.SecondMoment?.Clone();
            long pcaSteps = proj.Pca.StepCount;
            var before = w.ToArray();
            using var g = Tensor.RandN([m, n], gen);
            w.Grad = g.Clone().Persist();
            opt.Step();
            Assert.False(proj.HasPendingStep);

            // The update N·P_{t−1}ᵀ lies in the row space of P_{t−1}.
            using var delta = Tensor.FromArray(w.ToArray().Zip(before, (a, b) => a - b).ToArray(), m, n);
            using var q = LA.Orthonormalize(pBefore);
            using var qt = q.T;
            using var qqt = q.MatMul(qt);
            using var inSpan = delta.MatMul(qqt);
            using var outside = delta - inSpan;
            double outsideNorm = Norm(outside), deltaNorm = Norm(delta);
            Assert.True(outsideNorm < 1e-4 * deltaNorm, $"step {step}: {outsideNorm / deltaNorm} of the update lies outside span(P_t-1)");

            // P_t is one step of the PCA optimizer from P_{t−1} (and its state) on Ĝ_t = Gᵀ/‖G‖ (P is on the right).
            using var gt = g.T;
            using var normalized = gt * (float)(1 / Norm(g));
            using var replica = new OnlinePca(pBefore, proj.Pca.LearningRate, pcaOptimizer, reorthonormalize: false,
                proj.Pca.Beta1, proj.Pca.Beta2, proj.Pca.Eps, proj.Pca.WeightDecay);
            replica.LoadState(pBefore, m1, m2, pcaSteps);
            replica.Update(normalized);
            var diff = replica.Projection.ToArray().Zip(proj.Basis!.ToArray(), (a, b) => Math.Abs(a - b)).Max();
            Assert.True(diff < 1e-6, $"step {step}: P_t differs from one PCA step on P_t-1 by {diff}");
        }
        var moved = p0.ToArray().Zip(proj.Basis!.ToArray(), (a, b) => Math.Abs(a - b)).Max();
        Assert.True(moved > 0, "P never moved");
    }

    private static double Norm(Tensor t)
    {
        using var sq = t.Square();
        using var sum = sq.Sum();
        return Math.Sqrt(sum.Item());
    }
}
