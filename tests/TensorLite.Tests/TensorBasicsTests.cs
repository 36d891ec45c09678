using FsCheck.Xunit;
using TensorLite.Autograd;
using TensorLite.Tests.Support;
using Xunit;

namespace TensorLite.Tests;

[Properties(Arbitrary = [typeof(TensorArbitraries)], MaxTest = 50)]
public class TensorBasicsTests
{
    [Property]
    public void Broadcasting_FollowsNumPyRules(BroadcastPair pair)
    {
        var shape = ShapeMath.Broadcast(pair.Left, pair.Right);
        int rank = Math.Max(pair.Left.Length, pair.Right.Length);
        Assert.Equal(rank, shape.Length);
        for (int i = 0; i < rank; i++)
        {
            int l = i - (rank - pair.Left.Length) is var li && li >= 0 ? pair.Left[li] : 1;
            int r = i - (rank - pair.Right.Length) is var ri && ri >= 0 ? pair.Right[ri] : 1;
            Assert.Equal(Math.Max(l, r), shape[i]);
        }
        // And the values: a + b equals the element-wise sum of explicitly expanded copies.
        var a = Tensor.Rand(pair.Left, new Generator(1));
        var b = Tensor.Rand(pair.Right, new Generator(2));
        var sum = (a + b).ToArray();
        var ea = a.Expand(shape).Contiguous().ToArray();
        var eb = b.Expand(shape).Contiguous().ToArray();
        for (int i = 0; i < sum.Length; i++) Assert.Equal(ea[i] + eb[i], sum[i]);
    }

    [Property]
    public void ViewsAndCopies_HoldTheSameElements(SmallShape shape, byte seed)
    {
        var x = Tensor.Rand(shape.Dims, new Generator(seed));
        int rank = shape.Dims.Length;
        if (rank < 2) return;
        var perm = Enumerable.Range(0, rank).Reverse().ToArray();
        var view = x.Permute(perm);
        var copy = view.Contiguous();
        Assert.True(copy.IsContiguous);
        // element (i0..ik) of the permuted view is element (ik..i0) of x
        var xs = x.ToArray();
        var cs = copy.ToArray();
        var xStrides = ShapeMath.ContiguousStrides(shape.Dims);
        var idx = new int[rank];
        for (int flat = 0; flat < cs.Length; flat++)
        {
            int rem = flat, src = 0;
            for (int d = rank - 1; d >= 0; d--)
            {
                idx[d] = rem % copy.Shape[d];
                rem /= copy.Shape[d];
            }
            for (int d = 0; d < rank; d++) src += idx[d] * xStrides[perm[d]];
            Assert.Equal(xs[src], cs[flat]);
        }
        // Reshaping a non-contiguous view round-trips through a copy with the same row-major order.
        Assert.Equal(cs, view.Reshape(-1).ToArray());
    }

    [Fact]
    public void Reshape_OfTransposedView_IsAViewWhenLayoutAllows()
    {
        var x = Tensor.Rand([4, 6], new Generator(3));
        var t = x.T; // [6, 4], strides [1, 6]
        var r = t.Reshape(2, 3, 4); // splitting the first dim keeps a view
        Assert.Same(x.Storage, r.Storage);
        var merged = t.Reshape(24); // merging needs a copy
        Assert.NotSame(x.Storage, merged.Storage);
        Assert.Equal(t.Contiguous().ToArray(), merged.ToArray());
    }

    [Fact]
    public void Narrow_IsAViewSharingMemory()
    {
        var x = Tensor.FromArray([0f, 1, 2, 3, 4, 5], 2, 3);
        var n = x.Narrow(1, 1, 2);
        Assert.Same(x.Storage, n.Storage);
        Assert.Equal([1f, 2, 4, 5], n.ToArray());
    }

    [Property]
    public void Reductions_MatchDoublePrecisionReferences(SmallShape shape, byte seed)
    {
        if (shape.Dims.Length == 0) return;
        var x = Tensor.Rand(shape.Dims, new Generator(seed), -10f, 10f);
        var xs = x.ToArray();
        double total = xs.Sum(v => (double)v);
        Approx.Close(total, x.Sum().Item(), 1e-3 * Math.Max(1, Math.Sqrt(xs.Length)), "sum");
        Approx.Close(total / xs.Length, x.Mean().Item(), 1e-4, "mean");
        Assert.Equal(xs.Max(), x.Max().Item());
        int last = shape.Dims[^1];
        var rowSums = x.Sum(-1).ToArray();
        for (int r = 0; r < rowSums.Length; r++)
            Approx.Close(xs.Skip(r * last).Take(last).Sum(v => (double)v), rowSums[r], 1e-4, "row sum");
    }

    [Fact]
    public void BFloat16_RoundTrip_IsWithinHalfAnUlp()
    {
        var gen = new Generator(11);
        var values = new float[4096];
        gen.FillNormal(values, 0, 100);
        var x = Tensor.FromArray(values, values.Length);
        var back = x.To(DType.BFloat16).To(DType.Float32).ToArray();
        for (int i = 0; i < values.Length; i++)
            Assert.True(Math.Abs(back[i] - values[i]) <= Math.Abs(values[i]) * (1.0 / 256), $"{values[i]} -> {back[i]}");
        // Round to nearest even: 1 + 2^-8 is a tie between 1 and 1 + 2^-7 and must round to 1 (even mantissa).
        Assert.Equal(1f, HalfPrecision.BFloat16ToFloat(HalfPrecision.FloatToBFloat16(1f + 1f / 256)));
        Assert.True(float.IsNaN(HalfPrecision.BFloat16ToFloat(HalfPrecision.FloatToBFloat16(float.NaN))));
    }

    [Fact]
    public void Float16_RoundTrip_IsWithinHalfAnUlpAndSaturatesToInfinity()
    {
        var gen = new Generator(12);
        var values = new float[4096];
        gen.FillNormal(values, 0, 100);
        var back = Tensor.FromArray(values, values.Length).To(DType.Float16).To(DType.Float32).ToArray();
        for (int i = 0; i < values.Length; i++)
            Assert.True(Math.Abs(back[i] - values[i]) <= Math.Max(Math.Abs(values[i]) / 2048, 6e-8f), $"{values[i]} -> {back[i]}");
        Assert.True(float.IsPositiveInfinity(Tensor.FromArray([1e6f], 1).To(DType.Float16).ToArray()[0]));
    }

    [Fact]
    public void IntegerDTypes_RoundTripAndConvert()
    {
        var ids = Tensor.FromArray([0, 5, -3, 70000], 4);
        Assert.Equal([0L, 5, -3, 70000], ids.To(DType.Int64).ToArray<long>());
        Assert.Equal([0f, 5, -3, 70000], ids.ToArray());
        Assert.Equal(new sbyte[] { 0, 5, -3, 127 }, ids.To(DType.Int8).ToArray<sbyte>()); // saturates
        Assert.Equal(new byte[] { 0, 5, 0, 255 }, ids.To(DType.UInt8).ToArray<byte>());
    }

    [Fact]
    public void ShapeMismatch_NamesBothShapes()
    {
        var a = Tensor.Zeros([2, 3]);
        var b = Tensor.Zeros([4, 3]);
        var e = Assert.Throws<ShapeMismatchException>(() => a + b);
        Assert.Contains("[2, 3]", e.Message);
        Assert.Contains("[4, 3]", e.Message);
        var m = Assert.Throws<ShapeMismatchException>(() => a.MatMul(b));
        Assert.Contains("[2, 3]", m.Message);
        Assert.Contains("[4, 3]", m.Message);
        Assert.Throws<ShapeMismatchException>(() => a.Reshape(5));
        Assert.Throws<ArgumentOutOfRangeException>(() => a.Narrow(1, 2, 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => a.Sum(2));
    }

    [Fact]
    public void WrongDTypes_GiveClearErrors()
    {
        var ids = Tensor.FromArray([1, 2, 3], 3);
        var e = Assert.Throws<DTypeMismatchException>(() => ids.Exp());
        Assert.Contains("int32", e.Message);
        Assert.Throws<DTypeMismatchException>(() => ids.RequiresGrad = true);
        Assert.Throws<DTypeMismatchException>(() => ids.ToArray<float>());
    }

    [Fact]
    public void Gradients_AccumulateAcrossBackwardCalls()
    {
        var w = Tensor.FromArray([1f, 2f, 3f], 3).RequireGrad();
        (w * w).Sum().Backward();
        (w * w).Sum().Backward();
        Assert.Equal([4f, 8f, 12f], w.Grad!.ToArray());
        w.ZeroGrad();
        Assert.Null(w.Grad);
    }

    [Fact]
    public void GradHooks_FireOncePerBackwardWithTheFinalGradient()
    {
        var w = Tensor.FromArray([1f, 2f], 2).RequireGrad();
        var seen = new List<float[]>();
        w.RegisterGradHook(p => seen.Add(p.Grad!.ToArray()));
        // w is used twice: the hook must see the sum of both paths, once.
        var y = (w * 3f + w.Square()).Sum();
        y.Backward();
        Assert.Single(seen);
        Assert.Equal([5f, 7f], seen[0]);
    }

    [Fact]
    public void GradHooks_FireLayerByLayerDuringBackward()
    {
        // Three chained linear maps: the last layer's weight is final before the first layer's.
        var gen = new Generator(5);
        var ws = Enumerable.Range(0, 3).Select(_ => Tensor.RandN([4, 4], gen).RequireGrad()).ToArray();
        var order = new List<int>();
        for (int i = 0; i < 3; i++) { int layer = i; ws[i].RegisterGradHook(_ => order.Add(layer)); }
        var h = Tensor.RandN([2, 4], gen);
        foreach (var w in ws) h = h.MatMul(w).Tanh();
        h.Sum().Backward();
        Assert.Equal([2, 1, 0], order);
    }

    [Fact]
    public void NoGrad_RecordsNothing()
    {
        var w = Tensor.Ones([2]).RequireGrad();
        Tensor y;
        using (GradMode.NoGrad()) y = w * 2f;
        Assert.False(y.RequiresGrad);
        Assert.Throws<TensorLiteException>(() => y.Sum().Backward());
    }

    [Fact]
    public void Checkpoint_GivesTheSameGradientsAsThePlainGraph()
    {
        var gen = new Generator(9);
        var w1 = Tensor.RandN([5, 5], gen).RequireGrad();
        var w2 = Tensor.RandN([5, 5], gen).RequireGrad();
        var x = Tensor.RandN([3, 5], gen).RequireGrad();
        Tensor Block(Tensor[] t) => t[0].MatMul(w1).Silu().MatMul(w2).Tanh();

        Block([x]).Square().Sum().Backward();
        var expected = new[] { x.Grad!.ToArray(), w1.Grad!.ToArray(), w2.Grad!.ToArray() };
        x.ZeroGrad(); w1.ZeroGrad(); w2.ZeroGrad();

        var y = Checkpoint.Run(Block, x);
        Assert.True(y.RequiresGrad);
        y.Square().Sum().Backward();
        Assert.Equal(expected[0], x.Grad!.ToArray());
        Assert.Equal(expected[1], w1.Grad!.ToArray());
        Assert.Equal(expected[2], w2.Grad!.ToArray());
    }

    [Fact]
    public void DisposedTensor_CannotBeUsed()
    {
        var x = Tensor.Ones([2]);
        x.Dispose();
        Assert.Throws<ObjectDisposedException>(() => x.Exp());
    }
}
