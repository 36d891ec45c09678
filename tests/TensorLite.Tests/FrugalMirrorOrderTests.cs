using TensorLite.Optim.Projected;
using Xunit;

namespace TensorLite.Tests;

/// <summary>FRUGAL's "mirror" block order (frugal/proj_optimizer_templates.py, <c>BlockOptimizer._update_states</c>):
/// pairs of matrices from both ends, j and k − 1 − j, moving inwards by round(ρ·k)/2 pairs per refresh.</summary>
public class FrugalMirrorOrderTests
{
    /// <summary>The reference's loop, step by step with its running <c>next_block_start</c>: the active sets of the
    /// first <paramref name="refreshes"/> refreshes.</summary>
    private static List<int[]> ReferenceMirror(int count, int active, int refreshes)
    {
        var sets = new List<int[]>();
        int half = count / 2, next = 0;
        for (int c = 0; c < refreshes; c++)
        {
            var set = new SortedSet<int>();
            for (int idx = next; idx < next + active / 2; idx++)
            {
                set.Add(idx % half);
                set.Add(count - 1 - idx % half);
            }
            next += active / 2;
            if (next >= half) next -= half;
            sets.Add(set.ToArray());
        }
        return sets;
    }

    [Theory]
    [InlineData(7, 2)]   // a LLaMA layer's 7 matrices at ρ = 0.3: pairs (0, 6), (1, 5), (2, 4); the middle one never
    [InlineData(8, 4)]
    [InlineData(28, 8)]  // 4 layers at ρ = 0.25 (round(7) would be odd; 8 is ρ ≈ 0.29)
    [InlineData(10, 6)]  // 3 pairs walking over 5 positions: wraps inside a refresh
    [InlineData(6, 6)]
    public void Mirror_FollowsTheReferenceLoop(int count, int active)
    {
        var factory = new WholeMatrixProjectorFactory(MatrixOrder.Mirror);
        var expected = ReferenceMirror(count, active, 12);
        for (int c = 0; c < expected.Count; c++)
        {
            var set = factory.ActiveSet(count, active, c, seed: 1);
            var actual = Enumerable.Range(0, count).Where(i => set[i]).ToArray();
            Assert.Equal(expected[c], actual);
        }
    }

    [Fact]
    public void Mirror_OnALayer_PairsTheEnds_AndNeedsAnEvenCount()
    {
        Assert.Equal(MatrixOrder.Mirror, OptimizerSpec.ParseOrder("mirror"));
        // A LLaMA layer's 7 projected matrices, in parameter order (q, k, v, o, gate, up, down).
        var ps = Enumerable.Range(0, 7).Select(i => ($"layers.0.mlp.w{i}.weight", Tensor.Zeros([4, 4]).RequireGrad().Persist())).ToList();
        using (var opt = new ProjectedOptimizer(ps, ProjectedOptions.Frugal(0.3f, order: MatrixOrder.Mirror, updateGap: 1)))
        {
            foreach (var (_, p) in ps) p.Grad = Tensor.Ones([4, 4]).Persist();
            opt.Step();
            Assert.Equal([0, 6], Enumerable.Range(0, 7).Where(opt.HasInnerState).ToArray());
            foreach (var (_, p) in ps) p.Grad = Tensor.Ones([4, 4]).Persist();
            opt.Step();
            Assert.Equal([1, 5], Enumerable.Range(0, 7).Where(opt.HasInnerState).ToArray());
        }
        // round(0.25·7) = 2 is even; round(0.5·7) = 4 too; round(0.15·7) = 1 is odd: refused before any step.
        var e = Assert.Throws<ArgumentException>(() => new ProjectedOptimizer(ps, ProjectedOptions.Frugal(0.15f, order: MatrixOrder.Mirror)));
        Assert.Contains("mirror", e.Message);
        Assert.Contains("odd", e.Message);
    }
}
