using FsCheck.Xunit;
using TensorLite.Tests.Support;
using Xunit;

namespace TensorLite.Tests;

/// <summary>Embedding, index_select/index_add, gather/scatter_add, concat/stack/split/chunk, where/masked_fill and
/// dropout: forward values against plain loops, gradients against finite differences (on contiguous, transposed
/// and narrowed inputs), and the errors bad inputs raise.</summary>
[Properties(Arbitrary = [typeof(TensorArbitraries)], MaxTest = 30)]
public class IndexingOpsTests
{
    // ---- helpers --------------------------------------------------------------------------------

    /// <summary>A random float tensor of the given logical shape laid out contiguously (0), as a transposed view
    /// of reversed storage (1) or as a window narrowed out of a wider last dimension (2).</summary>
    private static Tensor Input(int[] shape, ulong seed, int layout)
    {
        var gen = new Generator(seed);
        int rank = shape.Length;
        switch (layout % 3)
        {
            case 1 when rank >= 2:
                var reversed = Enumerable.Range(0, rank).Reverse().ToArray();
                var storage = Tensor.Rand(shape.Reverse().ToArray(), gen, -1f, 1f);
                return storage.Permute(reversed);
            case 2 when rank >= 1:
                var wide = (int[])shape.Clone();
                wide[^1] += 2;
                return Tensor.Rand(wide, gen, -1f, 1f).Narrow(rank - 1, 1, shape[^1]);
            default:
                return Tensor.Rand(shape, gen, -1f, 1f);
        }
    }

    private static Tensor Index(int[] values, int[] shape, bool wide) =>
        wide ? Tensor.FromArray(values.Select(v => (long)v).ToArray(), shape) : Tensor.FromArray(values, shape);

    private static int[] RandomIndices(Generator gen, int count, int bound) =>
        Enumerable.Range(0, count).Select(_ => gen.NextInt(bound)).ToArray();

    private static int Numel(int[] shape) => shape.Aggregate(1, (a, b) => a * b);

    private static int[] Unravel(int flat, int[] shape)
    {
        var c = new int[shape.Length];
        for (int d = shape.Length - 1; d >= 0; d--)
        {
            c[d] = flat % shape[d];
            flat /= shape[d];
        }
        return c;
    }

    private static int Ravel(int[] coords, int[] shape)
    {
        int flat = 0;
        for (int d = 0; d < shape.Length; d++) flat = flat * shape[d] + coords[d];
        return flat;
    }

    private static int[] With(int[] array, int position, int value)
    {
        var copy = (int[])array.Clone();
        copy[position] = value;
        return copy;
    }

    // ---- embedding ------------------------------------------------------------------------------

    [Property]
    public void Embedding_CopiesRows_AndScatterAddsRowGradients(byte vocab, byte width, SmallShape ids, bool wide, byte seed)
    {
        int v = 1 + vocab % 6, d = 1 + width % 5;
        var idShape = ids.Dims.Take(3).ToArray();
        var gen = new Generator(seed);
        var idValues = RandomIndices(gen, Numel(idShape), v); // few rows, so ids repeat
        var index = Index(idValues, idShape, wide);
        var weight = Input([v, d], seed, seed);

        var y = Tensor.Embedding(weight, index);
        Assert.Equal([.. idShape, d], y.ShapeArray);
        var w = weight.ToArray();
        var ys = y.ToArray();
        for (int i = 0; i < idValues.Length; i++)
            for (int j = 0; j < d; j++)
                Assert.Equal(w[idValues[i] * d + j], ys[i * d + j]);

        GradCheck.Check(t => Tensor.Embedding(t[0], index), [weight]);
    }

    [Fact]
    public void Embedding_LargeBackward_IsExactAndDeterministic()
    {
        // D ≥ 256 with a single row block takes the column-parallel path; it must add in id order.
        const int vocab = 37, dim = 1024, count = 600;
        var gen = new Generator(11);
        var ids = RandomIndices(gen, count, vocab);
        var weight = Tensor.RandN([vocab, dim], gen);
        var gradOut = Tensor.RandN([count, dim], gen);
        float[] Run()
        {
            var w = weight.Detach().RequireGrad();
            Tensor.Embedding(w, Tensor.FromArray(ids, count)).Backward(gradOut);
            return w.Grad!.ToArray();
        }
        var first = Run();
        Assert.Equal(first, Run());
        var g = gradOut.ToArray();
        var expected = new float[vocab * dim];
        for (int i = 0; i < count; i++)
            for (int j = 0; j < dim; j++) expected[ids[i] * dim + j] += g[i * dim + j];
        Assert.Equal(expected, first);
    }

    [Fact]
    public void Embedding_KeepsIdsAliveWhenTheCallerDisposesThem()
    {
        var w = Tensor.RandN([5, 3], new Generator(1)).RequireGrad();
        var ids = Tensor.FromArray([4, 0, 4], 3);
        var y = Tensor.Embedding(w, ids);
        ids.Dispose();
        y.Sum().Backward();
        Assert.Equal([1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2], w.Grad!.ToArray());
    }

    [Fact]
    public void Embedding_OfAHalfPrecisionWeight_ReturnsItsDTypeAndAGradientOfIt()
    {
        var w = Tensor.RandN([4, 2], new Generator(2)).To(DType.BFloat16).RequireGrad();
        var y = Tensor.Embedding(w, Tensor.FromArray([3L, 3L, 1L], 3));
        Assert.Equal(DType.BFloat16, y.DType);
        y.To(DType.Float32).Sum().Backward();
        Assert.Equal(DType.BFloat16, w.Grad!.DType);
        Assert.Equal([0, 0, 1, 1, 0, 0, 2, 2], w.Grad.ToArray());
    }

    [Fact]
    public void Embedding_RejectsBadIdsAndWeights()
    {
        var w = Tensor.Zeros([4, 3]);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => Tensor.Embedding(w, Tensor.FromArray([1, 4], 2)));
        Assert.Contains("id 4 at position 1", e.Message);
        Assert.Contains("vocabulary of 4 rows", e.Message);
        e = Assert.Throws<ArgumentOutOfRangeException>(() => Tensor.Embedding(w, Tensor.FromArray([0L, -3L, 1L, 2L], 2, 2)));
        Assert.Contains("id -3 at position [0, 1]", e.Message);
        Assert.Throws<DTypeMismatchException>(() => Tensor.Embedding(w, Tensor.FromArray([1f], 1)));
        var s = Assert.Throws<ShapeMismatchException>(() => Tensor.Embedding(Tensor.Zeros([12]), Tensor.FromArray([1], 1)));
        Assert.Contains("[12]", s.Message);
    }

    // ---- index_select / index_add ---------------------------------------------------------------

    [Property]
    public void IndexSelect_PicksSlices_AndIndexAddsGradients(SmallShape shape, bool wide, byte seed)
    {
        int rank = shape.Dims.Length;
        if (rank == 0) return;
        var gen = new Generator(seed);
        int d = gen.NextInt(rank), k = 1 + gen.NextInt(5);
        var idx = RandomIndices(gen, k, shape.Dims[d]);
        var index = Index(idx, [k], wide);
        var x = Input(shape.Dims, seed, seed);

        var y = x.IndexSelect(d, index);
        var outShape = With(shape.Dims, d, k);
        Assert.Equal(outShape, y.ShapeArray);
        var xs = x.ToArray();
        var ys = y.ToArray();
        for (int p = 0; p < ys.Length; p++)
        {
            var c = Unravel(p, outShape);
            Assert.Equal(xs[Ravel(With(c, d, idx[c[d]]), shape.Dims)], ys[p]);
        }
        Assert.Equal(ys, x.IndexSelect(d - rank, index).ToArray());
        GradCheck.Check(t => t[0].IndexSelect(d, index), [x]);
    }

    [Property]
    public void IndexAdd_AccumulatesRepeatedIndices_AndDifferentiatesBothOperands(SmallShape shape, bool wide, byte seed)
    {
        int rank = shape.Dims.Length;
        if (rank == 0) return;
        var gen = new Generator(seed);
        int d = gen.NextInt(rank), k = 1 + gen.NextInt(5);
        var idx = RandomIndices(gen, k, shape.Dims[d]);
        var index = Index(idx, [k], wide);
        var srcShape = With(shape.Dims, d, k);
        var x = Input(shape.Dims, seed, seed);
        var src = Input(srcShape, seed + 1000UL, seed + 1);

        var expected = x.ToArray();
        var s = src.ToArray();
        for (int p = 0; p < s.Length; p++)
        {
            var c = Unravel(p, srcShape);
            expected[Ravel(With(c, d, idx[c[d]]), shape.Dims)] += s[p];
        }
        Assert.Equal(expected, x.IndexAdd(d, index, src).ToArray());
        GradCheck.Check(t => t[0].IndexAdd(d, index, t[1]), [x, src]);
    }

    [Fact]
    public void IndexSelect_CopiesRowsOfAnyDType()
    {
        var gen = new Generator(5);
        var m = Tensor.RandN([300, 257], gen);
        var rows = RandomIndices(gen, 120, 300);
        var picked = m.IndexSelect(0, Tensor.FromArray(rows, rows.Length)).ToArray();
        var all = m.ToArray();
        for (int r = 0; r < rows.Length; r++)
            Assert.Equal(all.AsSpan(rows[r] * 257, 257).ToArray(), picked.AsSpan(r * 257, 257).ToArray());

        var half = m.To(DType.BFloat16);
        var halfPicked = half.IndexSelect(0, Tensor.FromArray(rows, rows.Length));
        Assert.Equal(DType.BFloat16, halfPicked.DType);
        var halfAll = half.ToArray();
        Assert.Equal(rows.SelectMany(r => halfAll.Skip(r * 257).Take(257)).ToArray(), halfPicked.ToArray());

        var ints = Tensor.FromArray(Enumerable.Range(0, 12).ToArray(), 3, 4);
        Assert.Equal([3, 0, 3, 7, 4, 7, 11, 8, 11], ints.IndexSelect(1, Tensor.FromArray([3L, 0L, 3L], 3)).ToArray<int>());
        Assert.Equal([0, 4], ints.IndexSelect(0, Tensor.FromArray(Array.Empty<int>(), 0)).ShapeArray);
        Assert.Equal([3, 0], ints.IndexSelect(1, Tensor.FromArray(Array.Empty<long>(), 0)).ShapeArray);
    }

    [Fact]
    public void IndexSelectAndIndexAdd_RejectBadInputs()
    {
        var x = Tensor.Zeros([3, 4]);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => x.IndexSelect(1, Tensor.FromArray([0, 4], 2)));
        Assert.Contains("index 4 at position 1", e.Message);
        Assert.Contains("dimension 1 of size 4", e.Message);
        Assert.Throws<ShapeMismatchException>(() => x.IndexSelect(0, Tensor.FromArray([0, 1], 1, 2)));
        Assert.Throws<DTypeMismatchException>(() => x.IndexSelect(0, Tensor.FromArray(new byte[] { 0 }, 1)));
        Assert.Throws<ArgumentOutOfRangeException>(() => x.IndexSelect(2, Tensor.FromArray([0], 1)));
        var s = Assert.Throws<ShapeMismatchException>(() => x.IndexAdd(0, Tensor.FromArray([0, 2], 2), Tensor.Zeros([3, 4])));
        Assert.Contains("[3, 4]", s.Message);
        Assert.Contains("[2, 4]", s.Message);
        Assert.Throws<DTypeMismatchException>(() => Tensor.Zeros([3], DType.Int32).IndexAdd(0, Tensor.FromArray([0], 1), Tensor.Zeros([1], DType.Int32)));
    }

    // ---- gather / scatter_add -------------------------------------------------------------------

    [Property]
    public void Gather_ReadsIndexedElements_AndScatterAddsGradients(SmallShape shape, bool wide, byte seed)
    {
        int rank = shape.Dims.Length;
        if (rank == 0) return;
        var gen = new Generator(seed);
        int d = gen.NextInt(rank);
        var indexShape = shape.Dims.Select((n, i) => i == d ? 1 + gen.NextInt(4) : 1 + gen.NextInt(n)).ToArray();
        var idx = RandomIndices(gen, Numel(indexShape), shape.Dims[d]);
        var index = Index(idx, indexShape, wide);
        var x = Input(shape.Dims, seed, seed);

        var y = x.Gather(d, index);
        Assert.Equal(indexShape, y.ShapeArray);
        var xs = x.ToArray();
        var ys = y.ToArray();
        for (int p = 0; p < ys.Length; p++)
            Assert.Equal(xs[Ravel(With(Unravel(p, indexShape), d, idx[p]), shape.Dims)], ys[p]);
        Assert.Equal(ys, x.Gather(d - rank, index).ToArray());
        GradCheck.Check(t => t[0].Gather(d, index), [x]);
    }

    [Property]
    public void ScatterAdd_AccumulatesRepeatedTargets_AndDifferentiatesBothOperands(SmallShape shape, bool wide, byte seed)
    {
        int rank = shape.Dims.Length;
        if (rank == 0) return;
        var gen = new Generator(seed);
        int d = gen.NextInt(rank);
        var indexShape = shape.Dims.Select((n, i) => i == d ? 1 + gen.NextInt(4) : 1 + gen.NextInt(n)).ToArray();
        var srcShape = indexShape.Select(n => n + gen.NextInt(2)).ToArray(); // src may be larger than the index
        var idx = RandomIndices(gen, Numel(indexShape), shape.Dims[d]);
        var index = Index(idx, indexShape, wide);
        var x = Input(shape.Dims, seed, seed);
        var src = Input(srcShape, seed + 77UL, seed + 2);

        var expected = x.ToArray();
        var s = src.ToArray();
        for (int p = 0; p < idx.Length; p++)
        {
            var c = Unravel(p, indexShape);
            expected[Ravel(With(c, d, idx[p]), shape.Dims)] += s[Ravel(c, srcShape)];
        }
        Assert.Equal(expected, x.ScatterAdd(d, index, src).ToArray());
        GradCheck.Check(t => t[0].ScatterAdd(d, index, t[1]), [x, src]);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    public void GatherAndScatterAdd_OnLargeTensors_MatchLoops(int dim)
    {
        var gen = new Generator(3);
        int[] shape = [90, 70];
        int[] indexShape = dim == 0 ? [400, 70] : [90, 400];
        var idx = RandomIndices(gen, Numel(indexShape), shape[dim]);
        var index = Tensor.FromArray(idx, indexShape);
        var x = Tensor.RandN(shape, gen);
        var src = Tensor.RandN(indexShape, gen);
        var xs = x.ToArray();
        var s = src.ToArray();
        var gathered = new float[idx.Length];
        var scattered = (float[])xs.Clone();
        for (int p = 0; p < idx.Length; p++)
        {
            var target = Ravel(With(Unravel(p, indexShape), dim, idx[p]), shape);
            gathered[p] = xs[target];
            scattered[target] += s[p];
        }
        Assert.Equal(gathered, x.Gather(dim, index).ToArray());
        Assert.Equal(scattered, x.ScatterAdd(dim, index, src).ToArray());
    }

    [Fact]
    public void GatherAndScatterAdd_RejectBadInputs()
    {
        var x = Tensor.Zeros([3, 4]);
        var s = Assert.Throws<ShapeMismatchException>(() => x.Gather(0, Tensor.FromArray([0, 1], 2)));
        Assert.Contains("[2]", s.Message);
        s = Assert.Throws<ShapeMismatchException>(() => x.Gather(0, Tensor.Zeros([2, 5], DType.Int32)));
        Assert.Contains("dimension 1", s.Message);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => x.Gather(1, Tensor.FromArray([0, 1, 9, 2], 2, 2)));
        Assert.Contains("index 9 at position [1, 0]", e.Message);
        Assert.Throws<DTypeMismatchException>(() => x.Gather(0, Tensor.Zeros([1, 1])));
        Assert.Throws<ArgumentOutOfRangeException>(() => x.Gather(-3, Tensor.Zeros([1, 1], DType.Int32)));
        s = Assert.Throws<ShapeMismatchException>(() => x.ScatterAdd(0, Tensor.Zeros([2, 2], DType.Int64), Tensor.Zeros([1, 2])));
        Assert.Contains("larger than src", s.Message);
        s = Assert.Throws<ShapeMismatchException>(() => x.ScatterAdd(0, Tensor.Zeros([2, 2], DType.Int64), Tensor.Zeros([2])));
        Assert.Contains("same rank", s.Message);
        e = Assert.Throws<ArgumentOutOfRangeException>(() => x.ScatterAdd(0, Tensor.FromArray([-1], 1, 1), Tensor.Zeros([1, 1])));
        Assert.Contains("index -1", e.Message);
    }

    // ---- concat / stack / split / chunk ---------------------------------------------------------

    [Property]
    public void ConcatAndSplit_RoundTrip_AndGradientsAreNarrowed(SmallShape shape, byte seed)
    {
        int rank = shape.Dims.Length;
        if (rank == 0) return;
        var gen = new Generator(seed);
        int d = gen.NextInt(rank);
        var sizes = Enumerable.Range(0, 1 + gen.NextInt(3)).Select(_ => gen.NextInt(4)).ToArray();
        var parts = sizes.Select((n, i) => Input(With(shape.Dims, d, n), seed + (ulong)i * 31, seed + i)).ToArray();

        var cat = Tensor.Concat(d, parts);
        var catShape = With(shape.Dims, d, sizes.Sum());
        Assert.Equal(catShape, cat.ShapeArray);
        var values = cat.ToArray();
        var partValues = parts.Select(p => p.ToArray()).ToArray();
        for (int p = 0; p < values.Length; p++)
        {
            var c = Unravel(p, catShape);
            int part = 0, along = c[d];
            while (along >= sizes[part]) along -= sizes[part++];
            Assert.Equal(partValues[part][Ravel(With(c, d, along), With(shape.Dims, d, sizes[part]))], values[p]);
        }
        var back = cat.Split(d - rank, sizes);
        for (int i = 0; i < parts.Length; i++) Assert.Equal(partValues[i], back[i].ToArray());

        GradCheck.Check(t => Tensor.Concat(d, t), parts);
        var whole = Input(catShape, seed + 5UL, seed);
        GradCheck.Check(t => Tensor.Concat(d, t[0].Split(d, sizes).Reverse().ToArray()).Square(), [whole]);
    }

    [Property]
    public void Stack_InsertsADimension_AndGradientsAreSelected(SmallShape shape, byte seed)
    {
        var gen = new Generator(seed);
        int rank = shape.Dims.Length, count = 1 + gen.NextInt(3), d = gen.NextInt(rank + 1);
        var parts = Enumerable.Range(0, count).Select(i => Input(shape.Dims, seed + (ulong)i * 13, seed + i)).ToArray();
        var stacked = Tensor.Stack(d, parts);
        var expectedShape = shape.Dims.Take(d).Append(count).Concat(shape.Dims.Skip(d)).ToArray();
        Assert.Equal(expectedShape, stacked.ShapeArray);
        for (int i = 0; i < count; i++) Assert.Equal(parts[i].ToArray(), stacked.Select(d, i).ToArray());
        GradCheck.Check(t => Tensor.Stack(d - rank - 1, t), parts);
    }

    [Property]
    public void Chunk_SplitsLikeTorch_AndConcatRestoresTheInput(SmallShape shape, byte seed)
    {
        int rank = shape.Dims.Length;
        if (rank == 0) return;
        var gen = new Generator(seed);
        int d = gen.NextInt(rank), chunks = 1 + gen.NextInt(4), n = shape.Dims[d];
        var x = Input(shape.Dims, seed, seed);
        var pieces = x.Chunk(d, chunks);
        int size = (n + chunks - 1) / chunks;
        Assert.Equal((n + size - 1) / size, pieces.Length);
        for (int i = 0; i < pieces.Length; i++) Assert.Equal(Math.Min(size, n - i * size), pieces[i].Size(d));
        Assert.Equal(x.ToArray(), Tensor.Concat(d, pieces).ToArray());
        GradCheck.Check(t => t[0].Chunk(d, chunks)[^1].Exp(), [x]);
    }

    [Fact]
    public void ConcatStackAndSplit_HandleDTypesAndRejectBadInputs()
    {
        var ints = Tensor.Concat(1, Tensor.FromArray([1, 2], 2, 1), Tensor.FromArray([3, 4, 5, 6], 2, 2));
        Assert.Equal([1, 3, 4, 2, 5, 6], ints.ToArray<int>());
        Assert.Equal([2], Tensor.Stack(0, Tensor.Scalar(1f), Tensor.Scalar(2f)).ShapeArray);
        var a = Tensor.Rand([2, 3], new Generator(1)).RequireGrad();
        (Tensor.Concat(1, a, a).Sum() + Tensor.Stack(0, a, a, a).Sum()).Backward();
        Assert.All(a.Grad!.ToArray(), v => Assert.Equal(5f, v));

        var s = Assert.Throws<ShapeMismatchException>(() => Tensor.Concat(0, Tensor.Zeros([2, 3]), Tensor.Zeros([2, 4])));
        Assert.Contains("[2, 3]", s.Message);
        Assert.Contains("[2, 4]", s.Message);
        Assert.Throws<ShapeMismatchException>(() => Tensor.Concat(0, Tensor.Zeros([2, 3]), Tensor.Zeros([2])));
        Assert.Throws<ShapeMismatchException>(() => Tensor.Concat(0, Tensor.Scalar(1f), Tensor.Scalar(2f)));
        Assert.Throws<DTypeMismatchException>(() => Tensor.Concat(0, Tensor.Zeros([2]), Tensor.Zeros([2], DType.Int32)));
        Assert.Throws<ArgumentException>(() => Tensor.Concat(0));
        Assert.Throws<ArgumentOutOfRangeException>(() => Tensor.Concat(2, Tensor.Zeros([2, 3])));
        s = Assert.Throws<ShapeMismatchException>(() => Tensor.Stack(0, Tensor.Zeros([2, 3]), Tensor.Zeros([3, 2])));
        Assert.Contains("[3, 2]", s.Message);
        s = Assert.Throws<ShapeMismatchException>(() => Tensor.Zeros([5, 2]).Split(0, [2, 2]));
        Assert.Contains("add up to 4", s.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => Tensor.Zeros([5, 2]).Split(0, [6, -1]));
        Assert.Throws<ArgumentOutOfRangeException>(() => Tensor.Zeros([5, 2]).Chunk(0, 0));
    }

    // ---- where / masked_fill --------------------------------------------------------------------

    private static Tensor Condition(int[] shape, ulong seed, int kind)
    {
        var gen = new Generator(seed);
        var bits = Enumerable.Range(0, Numel(shape)).Select(_ => (float)gen.NextInt(2)).ToArray();
        var f = Tensor.FromArray(bits, shape);
        return (kind % 6) switch
        {
            0 => f,
            1 => f.To(DType.UInt8),
            2 => f.To(DType.Int32),
            3 => f.To(DType.Int64),
            4 => f.To(DType.Int8),
            _ => (f * -2.5f).To(DType.BFloat16),
        };
    }

    [Property]
    public void Where_SelectsByCondition_WithBroadcasting(BroadcastPair pair, bool conditionOnLeft, byte seed)
    {
        var shape = ShapeMath.Broadcast(pair.Left, pair.Right);
        var condition = Condition(conditionOnLeft ? pair.Left : pair.Right, seed, seed);
        var a = Input(pair.Left, seed, seed);
        var b = Input(pair.Right, seed + 9UL, seed + 1);

        var y = Tensor.Where(condition, a, b);
        Assert.Equal(shape, y.ShapeArray);
        var c = condition.Expand(shape).ToArray();
        var ae = a.Expand(shape).ToArray();
        var be = b.Expand(shape).ToArray();
        var ys = y.ToArray();
        for (int i = 0; i < ys.Length; i++) Assert.Equal(c[i] != 0 ? ae[i] : be[i], ys[i]);
        GradCheck.Check(t => Tensor.Where(condition, t[0], t[1]), [a, b]);
    }

    [Property]
    public void MaskedFill_FillsWhereMasked_AndBlocksTheirGradient(BroadcastPair pair, bool maskOnLeft, byte seed)
    {
        var shape = ShapeMath.Broadcast(pair.Left, pair.Right);
        var mask = Condition(maskOnLeft ? pair.Left : pair.Right, seed, seed);
        var x = Input(shape, seed, seed);
        var y = x.MaskedFill(mask, -7.5f);
        var m = mask.Expand(shape).ToArray();
        var xs = x.ToArray();
        Assert.Equal(xs.Select((v, i) => m[i] != 0 ? -7.5f : v).ToArray(), y.ToArray());
        GradCheck.Check(t => t[0].MaskedFill(mask, 3f).Square(), [x]);
    }

    [Fact]
    public void WhereAndMaskedFill_RejectBadInputs()
    {
        var s = Assert.Throws<ShapeMismatchException>(() => Tensor.Where(Tensor.Zeros([3]), Tensor.Zeros([2, 3]), Tensor.Zeros([4, 1])));
        Assert.Contains("[4, 1]", s.Message);
        Assert.Throws<DTypeMismatchException>(() => Tensor.Where(Tensor.Zeros([3]), Tensor.Zeros([3], DType.Int32), Tensor.Zeros([3])));
        s = Assert.Throws<ShapeMismatchException>(() => Tensor.Zeros([3]).MaskedFill(Tensor.Zeros([2, 3], DType.UInt8), 1f));
        Assert.Contains("[2, 3]", s.Message);
        Assert.Throws<DTypeMismatchException>(() => Tensor.Zeros([3], DType.Int32).MaskedFill(Tensor.Zeros([3]), 1f));
    }

    // ---- dropout --------------------------------------------------------------------------------

    [Theory]
    [InlineData(0.1f)]
    [InlineData(0.5f)]
    [InlineData(0.8f)]
    public void Dropout_DropsAFractionP_ScalesSurvivors_AndPreservesTheMean(float p)
    {
        const int n = 200_000;
        var y = Tensor.Ones([n]).Dropout(p, new Generator(42)).ToArray();
        float scale = 1f / (1f - p);
        Assert.All(y, v => Assert.True(v == 0f || v == scale, $"unexpected value {v}"));
        double dropped = y.Count(v => v == 0f) / (double)n;
        Assert.InRange(dropped, p - 5 * Math.Sqrt(p * (1 - p) / n), p + 5 * Math.Sqrt(p * (1 - p) / n));
        // Neighbours are independent: the two halves of every pair agree as often as independent draws would.
        double agree = Enumerable.Range(0, n / 2).Count(i => (y[2 * i] == 0) == (y[2 * i + 1] == 0)) / (n / 2.0);
        double expectedAgree = p * p + (1 - p) * (1 - p);
        Assert.InRange(agree, expectedAgree - 0.02, expectedAgree + 0.02);

        var x = Tensor.Rand([n], new Generator(9), 0.5f, 1.5f);
        var meanIn = x.ToArray().Average();
        var meanOut = x.Dropout(p, new Generator(43)).ToArray().Average();
        Assert.InRange(meanOut, meanIn - 0.03, meanIn + 0.03);
    }

    [Fact]
    public void Dropout_MaskIsDeterminedByTheGeneratorState()
    {
        var x = Tensor.RandN([64, 33], new Generator(1));
        var first = x.Dropout(0.3f, new Generator(5)).ToArray();
        Assert.Equal(first, x.Dropout(0.3f, new Generator(5)).ToArray());
        Assert.NotEqual(first, x.Dropout(0.3f, new Generator(6)).ToArray());
        var gen = new Generator(5);
        var a = x.Dropout(0.3f, gen).ToArray();
        var b = x.Dropout(0.3f, gen).ToArray(); // the generator advanced: a fresh mask
        Assert.Equal(first, a);
        Assert.NotEqual(a, b);
        // The mask follows the logical (row-major) order, whatever the input's layout.
        var stored = x.T.Contiguous();
        Assert.Equal(first, stored.T.Dropout(0.3f, new Generator(5)).ToArray());
    }

    [Fact]
    public void Dropout_BackwardAppliesTheForwardMask()
    {
        var x = Tensor.Rand([50, 41], new Generator(2), 0.5f, 1f).RequireGrad();
        var y = x.Dropout(0.25f, new Generator(8));
        var ys = y.ToArray();
        y.Sum().Backward();
        var g = x.Grad!.ToArray();
        for (int i = 0; i < ys.Length; i++) Assert.Equal(ys[i] == 0 ? 0f : 1f / 0.75f, g[i]);
    }

    [Property(MaxTest = 10)]
    public void Dropout_MatchesFiniteDifferences(SmallShape shape, byte seed)
    {
        var x = Input(shape.Dims, seed, seed);
        GradCheck.Check(t => t[0].Dropout(0.4f, new Generator(seed)), [x]);
    }

    [Fact]
    public void Dropout_IsTheIdentityWithoutDropProbabilityOrOutsideTraining()
    {
        var gen = new Generator(4);
        var state = gen.GetState();
        var x = Tensor.RandN([7, 5], new Generator(3)).RequireGrad();
        var evalOut = x.Dropout(0.5f, gen, training: false);
        var zeroOut = x.Dropout(0f, gen);
        Assert.Equal(x.ToArray(), evalOut.ToArray());
        Assert.Equal(x.ToArray(), zeroOut.ToArray());
        Assert.Equal(state, gen.GetState());
        (evalOut.Sum() + zeroOut.Sum()).Backward();
        Assert.All(x.Grad!.ToArray(), v => Assert.Equal(2f, v));
    }

    [Theory]
    [InlineData(-0.1f)]
    [InlineData(1f)]
    [InlineData(1.5f)]
    [InlineData(float.NaN)]
    public void Dropout_RejectsProbabilitiesOutsideZeroToOne(float p)
    {
        var e = Assert.Throws<ArgumentException>(() => Tensor.Ones([3]).Dropout(p, new Generator(1)));
        Assert.Contains("[0, 1)", e.Message);
    }
}
