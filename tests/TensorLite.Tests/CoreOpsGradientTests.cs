using FsCheck.Xunit;
using TensorLite.Tests.Support;

namespace TensorLite.Tests;

[Properties(Arbitrary = [typeof(TensorArbitraries)], MaxTest = 20)]
public class CoreOpsGradientTests
{
    private static Tensor Rand(int[] shape, ulong seed, float low = -1f, float high = 1f) =>
        Tensor.Rand(shape, new Generator(seed), low, high);

    [Property]
    public void BroadcastBinaryOps_MatchFiniteDifferences(BroadcastPair pair, byte seed)
    {
        var a = Rand(pair.Left, seed);
        var b = Rand(pair.Right, seed + 1000UL, 0.5f, 1.5f); // away from 0 for division
        GradCheck.Check(x => x[0] + x[1], [a, b]);
        GradCheck.Check(x => x[0] - x[1], [a, b]);
        GradCheck.Check(x => x[0] * x[1], [a, b]);
        GradCheck.Check(x => x[0] / x[1], [a, b]);
        // Max/min: operands on the grids k/10 and k/10 + 0.05 are never closer than 0.05, far beyond eps.
        var qa = Quantized(pair.Left, seed, 0f);
        var qb = Quantized(pair.Right, seed + 500UL, 0.05f);
        GradCheck.Check(x => Tensor.Maximum(x[0], x[1]), [qa, qb]);
        GradCheck.Check(x => Tensor.Minimum(x[0], x[1]), [qa, qb]);
    }

    private static Tensor Quantized(int[] shape, ulong seed, float shift)
    {
        var values = Rand(shape, seed, -10f, 10f).ToArray().Select(v => MathF.Round(v) / 10f + shift).ToArray();
        return Tensor.FromArray(values, shape);
    }

    /// <summary>All-distinct values at least 2/numel apart (a shuffled ramp), so no max is near a tie.</summary>
    private static Tensor Distinct(int[] shape, ulong seed)
    {
        var gen = new Generator(seed);
        int n = ShapeMath.Numel(shape);
        var values = Enumerable.Range(0, n).OrderBy(_ => gen.NextUInt64()).Select(i => 2f * i / n - 1f).ToArray();
        return Tensor.FromArray(values, shape);
    }

    [Property]
    public void UnaryOps_MatchFiniteDifferences(SmallShape shape, byte seed)
    {
        var x = Rand(shape.Dims, seed);
        var positive = Rand(shape.Dims, seed, 0.5f, 2f);
        GradCheck.Check(t => t[0].Neg(), [x]);
        GradCheck.Check(t => t[0].Exp(), [x]);
        GradCheck.Check(t => t[0].Log(), [positive]);
        GradCheck.Check(t => t[0].Sqrt(), [positive]);
        GradCheck.Check(t => t[0].Rsqrt(), [positive]);
        GradCheck.Check(t => t[0].Pow(3f), [x]);
        GradCheck.Check(t => t[0].Pow(-1.5f), [positive]);
        GradCheck.Check(t => t[0].Silu(), [x]);
        GradCheck.Check(t => t[0].Gelu(), [x]);
        GradCheck.Check(t => t[0].Sigmoid(), [x]);
        GradCheck.Check(t => t[0].Tanh(), [x]);
        GradCheck.Check(t => t[0].Square(), [x]);
        GradCheck.Check(t => t[0].Affine(-2f, 0.5f), [x]);
        GradCheck.Check(t => 3f - t[0] * 2f, [x]);
    }

    [Property]
    public void KinkedUnaryOps_MatchFiniteDifferencesAwayFromKinks(SmallShape shape, byte seed)
    {
        // Values in ±[0.1, 1] keep the central difference off the kink at 0 and the clamp edges.
        var magnitude = Rand(shape.Dims, seed, 0.1f, 1f);
        var sign = Rand(shape.Dims, seed + 7UL, -1f, 1f).Sign();
        var x = magnitude * sign;
        GradCheck.Check(t => t[0].Abs(), [x]);
        GradCheck.Check(t => t[0].Relu(), [x]);
        GradCheck.Check(t => t[0].Sign(), [x]);
        GradCheck.Check(t => (t[0] * 3f).Clamp(-0.05f, 0.05f), [x], eps: 1e-3f);
    }

    [Property]
    public void Reductions_MatchFiniteDifferences(SmallShape shape, byte seed)
    {
        var x = Rand(shape.Dims, seed);
        GradCheck.Check(t => t[0].Sum(), [x]);
        GradCheck.Check(t => t[0].Mean(), [x]);
        for (int d = 0; d < shape.Dims.Length; d++)
        {
            int dim = d;
            GradCheck.Check(t => t[0].Sum(dim), [x]);
            GradCheck.Check(t => t[0].Mean(dim, keepDim: true), [x]);
            GradCheck.Check(t => t[0].Max(dim), [Distinct(shape.Dims, seed)], eps: 1e-3f);
        }
        if (shape.Dims.Length >= 2) GradCheck.Check(t => t[0].Sum([0, shape.Dims.Length - 1]), [x]);
    }

    [Property]
    public void MatMul_MatchesFiniteDifferences(MatMulCase c, byte seed)
    {
        var a = MakeOperand(c.BatchA, c.M, c.K, c.TransA, seed);
        var b = MakeOperand(c.BatchB, c.K, c.N, c.TransB, seed + 99UL);
        GradCheck.Check(t => Operand(t[0], c.TransA).MatMul(Operand(t[1], c.TransB)), [a, b]);
    }

    /// <summary>Stores the matrix transposed when asked, so the op sees a transposed (non-contiguous) view.</summary>
    private static Tensor MakeOperand(int[] batch, int rows, int cols, bool transposed, ulong seed) =>
        Rand(batch.Concat(transposed ? new[] { cols, rows } : new[] { rows, cols }).ToArray(), seed);

    private static Tensor Operand(Tensor stored, bool transposed) => transposed ? stored.T : stored;

    [Property]
    public void Views_MatchFiniteDifferences(SmallShape shape, byte seed)
    {
        var x = Rand(shape.Dims, seed);
        int rank = shape.Dims.Length;
        GradCheck.Check(t => t[0].Reshape(-1), [x]);
        GradCheck.Check(t => t[0].Unsqueeze(0).Exp(), [x]);
        if (rank >= 2)
        {
            GradCheck.Check(t => t[0].Transpose(0, rank - 1).Contiguous() * 2f, [x]);
            GradCheck.Check(t => t[0].T.Reshape(-1), [x]);
            var perm = Enumerable.Range(0, rank).Reverse().ToArray();
            GradCheck.Check(t => t[0].Permute(perm).Square(), [x]);
        }
        if (rank >= 1 && shape.Dims[0] >= 2)
        {
            GradCheck.Check(t => t[0].Narrow(0, 1, shape.Dims[0] - 1).Square(), [x]);
            GradCheck.Check(t => t[0].Select(0, -1) * 3f, [x]);
        }
        if (rank >= 1)
        {
            var bigger = new[] { 3 }.Concat(shape.Dims).ToArray();
            GradCheck.Check(t => t[0].Expand(bigger).Square(), [x]);
        }
    }
}
