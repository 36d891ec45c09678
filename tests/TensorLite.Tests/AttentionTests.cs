using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using TensorLite.Tests.Support;
using Xunit;

namespace TensorLite.Tests;

public sealed record AttentionCase(int Batch, int Heads, int KvHeads, int Seq, int HeadDim)
{
    public override string ToString() => $"B{Batch} H{Heads} Hkv{KvHeads} T{Seq} D{HeadDim}";
}

public static class AttentionArbitraries
{
    public static Arbitrary<AttentionCase> Case() =>
        (from b in Gen.Choose(1, 2)
         from kv in Gen.Choose(1, 2)
         from groupSize in Gen.Choose(1, 3)
         from t in Gen.Choose(1, 9)
         from d in Gen.Choose(1, 6)
         select new AttentionCase(b, kv * groupSize, kv, t, d)).ToArbitrary();
}

[Properties(Arbitrary = [typeof(AttentionArbitraries)], MaxTest = 25)]
public class AttentionTests
{
    private static (Tensor Q, Tensor K, Tensor V) Inputs(AttentionCase c, ulong seed)
    {
        var g = new Generator(seed);
        return (Tensor.RandN([c.Batch, c.Heads, c.Seq, c.HeadDim], g),
                Tensor.RandN([c.Batch, c.KvHeads, c.Seq, c.HeadDim], g),
                Tensor.RandN([c.Batch, c.KvHeads, c.Seq, c.HeadDim], g));
    }

    /// <summary>softmax(q·kᵀ/sqrt(D) with future positions masked)·v, in double precision.</summary>
    private static double[] Reference(AttentionCase c, float[] q, float[] k, float[] v)
    {
        int t = c.Seq, d = c.HeadDim, group = c.Heads / c.KvHeads;
        var o = new double[q.Length];
        for (int b = 0; b < c.Batch; b++)
        for (int h = 0; h < c.Heads; h++)
        {
            int qBase = (b * c.Heads + h) * t * d, kvBase = (b * c.KvHeads + h / group) * t * d;
            for (int i = 0; i < t; i++)
            {
                var s = new double[i + 1];
                for (int j = 0; j <= i; j++)
                {
                    for (int x = 0; x < d; x++) s[j] += (double)q[qBase + i * d + x] * k[kvBase + j * d + x];
                    s[j] /= Math.Sqrt(d);
                }
                double max = s.Max(), sum = s.Sum(z => Math.Exp(z - max));
                for (int j = 0; j <= i; j++)
                    for (int x = 0; x < d; x++)
                        o[qBase + i * d + x] += Math.Exp(s[j] - max) / sum * v[kvBase + j * d + x];
            }
        }
        return o;
    }

    [Property]
    public void Forward_MatchesADoublePrecisionReference(AttentionCase c, byte seed)
    {
        var (q, k, v) = Inputs(c, seed);
        var got = Tensor.CausalAttention(q, k, v).ToArray();
        var expected = Reference(c, q.ToArray(), k.ToArray(), v.ToArray());
        for (int i = 0; i < got.Length; i++) Approx.Close(expected[i], got[i], 1e-4, $"o[{i}]");
    }

    [Property]
    public void Gradients_MatchFiniteDifferences(AttentionCase c, byte seed)
    {
        var (q, k, v) = Inputs(c, seed);
        GradCheck.Check(x => Tensor.CausalAttention(x[0], x[1], x[2]), [q, k, v]);
    }

    [Fact]
    public void LongSequences_SpanningSeveralQueryBlocks_MatchReferenceAndFiniteDifferences()
    {
        var c = new AttentionCase(1, 2, 1, 150, 4);
        var (q, k, v) = Inputs(c, 77);
        var got = Tensor.CausalAttention(q, k, v).ToArray();
        var expected = Reference(c, q.ToArray(), k.ToArray(), v.ToArray());
        for (int i = 0; i < got.Length; i++) Approx.Close(expected[i], got[i], 1e-4, $"o[{i}]");
        GradCheck.Check(x => Tensor.CausalAttention(x[0], x[1], x[2]), [q, k, v], maxChecksPerInput: 40);
    }

    [Fact]
    public void NonContiguousInputs_GiveTheSameResult()
    {
        // [B, T, H, D] storage viewed as [B, H, T, D], as the model produces after its projections.
        var g = new Generator(4);
        var qs = Tensor.RandN([2, 5, 3, 4], g);
        var ks = Tensor.RandN([2, 5, 3, 4], g);
        var vs = Tensor.RandN([2, 5, 3, 4], g);
        var strided = Tensor.CausalAttention(qs.Transpose(1, 2), ks.Transpose(1, 2), vs.Transpose(1, 2)).ToArray();
        var packed = Tensor.CausalAttention(qs.Transpose(1, 2).Contiguous(), ks.Transpose(1, 2).Contiguous(), vs.Transpose(1, 2).Contiguous()).ToArray();
        Assert.Equal(packed, strided);
    }

    [Fact]
    public void MismatchedShapes_AreRejected()
    {
        var q = Tensor.Zeros([1, 3, 4, 2]);
        var kv = Tensor.Zeros([1, 2, 4, 2]);
        var e = Assert.Throws<ShapeMismatchException>(() => Tensor.CausalAttention(q, kv, kv));
        Assert.Contains("[1, 3, 4, 2]", e.Message);
        Assert.Throws<ShapeMismatchException>(() => Tensor.CausalAttention(Tensor.Zeros([3, 4, 2]), kv, kv));
    }
}
