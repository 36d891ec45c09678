using TensorLite.Autograd;
using TensorLite.Optim.Projected;
using Xunit;
using LA = TensorLite.LinearAlgebra.Linalg;

namespace TensorLite.Tests;

/// <summary>GaLore's two-sided "full" projection (galore_projector.py, <c>proj_type='full'</c>): U_r and V_r from one
/// SVD, R = U_rᵀ·G·V_r [r, r], back(N) = U_r·N·V_rᵀ. Resume and the state-byte prediction run in the every-preset
/// theories of <see cref="ProjectedOptimizerTests"/> ("galore-full", "galore-rsvd-full").</summary>
public class GaLoreFullProjectionTests
{
    private static double RelativeError(float[] actual, float[] expected)
    {
        double diff = 0, norm = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            diff += Math.Pow(actual[i] - expected[i], 2);
            norm += Math.Pow(expected[i], 2);
        }
        return Math.Sqrt(diff / norm);
    }

    [Theory]
    [InlineData(7, 5)]
    [InlineData(5, 7)]
    [InlineData(6, 6)]
    public void Full_ProjectsOnBothSingularBases_WithRByRMoments(int m, int n)
    {
        const int r = 2;
        var w = Tensor.RandN([m, n], new Generator(4)).RequireGrad().Persist();
        var before = w.ToArray();
        using var opt = new ProjectedOptimizer([("mlp.w", w)], ProjectedOptions.GaLore(rank: r, side: OptimizerSpec.ParseSide("full"), learningRate: 0.01f));
        w.Grad = Tensor.RandN([m, n], new Generator(5)).Persist();
        opt.Step();

        var proj = Assert.IsType<TwoSidedSvdProjector>(opt.ProjectorOf(0));
        Assert.Equal(ProjectionSide.Both, proj.Side);
        // The bases are U[:, :r] and Vh[:r, :]ᵀ of the gradient's SVD, as get_orthogonal_matrix(type='full') returns.
        var (u, s, vt) = LA.Svd(w.Grad!, r);
        s.Dispose();
        using var v = vt.T;
        Assert.Equal(u.ToArray(), proj.Left!.ToArray());
        Assert.Equal(v.ToArray(), proj.Right!.ToArray());
        // R = Uᵀ·G·V [r, r].
        using var rProjected = proj.Project(w.Grad!);
        Assert.Equal([r, r], rProjected.ShapeArray);
        using var ut = u.T;
        using var ug = ut.MatMul(w.Grad!);
        using var expected = ug.MatMul(v);
        Assert.True(RelativeError(rProjected.ToArray(), expected.ToArray()) < 1e-6);
        // The inner moments are [r, r].
        var moments = opt.StateTensors().Where(x => x.Name.StartsWith("0.", StringComparison.Ordinal)
            && !x.Name.Contains("proj.", StringComparison.Ordinal) && !x.Name.EndsWith("counters", StringComparison.Ordinal) && !x.Name.EndsWith("rng", StringComparison.Ordinal)).ToList();
        Assert.True(moments.Count >= 2, string.Join(", ", opt.StateTensors().Select(x => x.Name)));
        Assert.All(moments, x => Assert.Equal([r, r], x.Tensor.ShapeArray));
        // The update U·N·Vᵀ lies in span(U) on the left and span(V) on the right.
        using var delta = Tensor.FromArray(w.ToArray().Zip(before, (a, b) => a - b).ToArray(), m, n);
        using var uut = u.MatMul(ut);
        using var leftPart = uut.MatMul(delta);
        using var vvt = v.MatMul(vt);
        using var rightPart = delta.MatMul(vvt);
        Assert.True(RelativeError(leftPart.ToArray(), delta.ToArray()) < 1e-4);
        Assert.True(RelativeError(rightPart.ToArray(), delta.ToArray()) < 1e-4);
        u.Dispose();
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Full_FromFactors_EqualsTheProjectionOfTheDenseGradient(bool randomized)
    {
        const int m = 9, n = 6, r = 3, b = 4;
        var gen = new Generator(21);
        using var factored = new FactoredGradient(m, n);
        for (int i = 0; i < 2; i++)
        {
            using var x = Tensor.RandN([b, n], gen);
            using var dy = Tensor.RandN([b, m], gen);
            factored.Add(x, dy);
        }
        using var dense = factored.ToDense(DType.Float32);
        // Same seed: the factored refresh draws the randomized SVD's sketch exactly as the dense one does.
        using var fromDense = new TwoSidedSvdProjector(m, n, r, 10, randomized, new Generator(3));
        using var fromFactors = new TwoSidedSvdProjector(m, n, r, 10, randomized, new Generator(3));
        fromDense.Refresh(dense, 0);
        fromFactors.RefreshFactored(factored, 0);
        Assert.True(LA.PrincipalAngles(fromDense.Left!, fromFactors.Left!).Max() < 1e-3);
        Assert.True(LA.PrincipalAngles(fromDense.Right!, fromFactors.Right!).Max() < 1e-3);
        using var expected = fromDense.Project(dense);
        using var actual = fromDense.ProjectFactored(factored);
        Assert.True(RelativeError(actual.ToArray(), expected.ToArray()) < 1e-5);
    }

    [Fact]
    public void Full_IsRefusedWhereTheReferenceOffersNoFullProjection()
    {
        Assert.Equal(ProjectionSide.Both, OptimizerSpec.ParseSide("full"));
        var galore = (OptimizerSpec.Parse("galore") with { Side = ProjectionSide.Both }).ToOptions();
        Assert.Equal(ProjectionSide.Both, galore.SideFor(8, 4));
        foreach (var method in new[] { "osd", "grass" })
        {
            var e = Assert.Throws<ArgumentException>(() => (OptimizerSpec.Parse(method) with { Side = ProjectionSide.Both }).ToOptions());
            Assert.Contains("svd", e.Message);
        }
        var range = Assert.Throws<ArgumentException>(() => (OptimizerSpec.Parse("galore", "range") with { Side = ProjectionSide.Both }).ToOptions());
        Assert.Contains("RangeFinder", range.Message);
    }
}
