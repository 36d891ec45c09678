using FsCheck;
using FsCheck.Fluent;

namespace TensorLite.Tests.Support;

/// <summary>A small tensor shape (rank 0–4, dims 1–5 so size-1 and odd dims are common).</summary>
public sealed record SmallShape(int[] Dims)
{
    public override string ToString() => ShapeMath.Format(Dims);
}

/// <summary>Two shapes that broadcast together (the second has some dims set to 1 or dropped).</summary>
public sealed record BroadcastPair(int[] Left, int[] Right)
{
    public override string ToString() => $"{ShapeMath.Format(Left)} vs {ShapeMath.Format(Right)}";
}

/// <summary>A matmul problem: batch dims (possibly broadcast) and m, k, n, with transposed-layout flags.</summary>
public sealed record MatMulCase(int[] BatchA, int[] BatchB, int M, int K, int N, bool TransA, bool TransB)
{
    public override string ToString() => $"A{ShapeMath.Format(BatchA)}x[{M},{K}]{(TransA ? "ᵀ" : "")} B{ShapeMath.Format(BatchB)}x[{K},{N}]{(TransB ? "ᵀ" : "")}";
}

public static class TensorArbitraries
{
    private static Gen<int[]> ShapeGen(int minRank, int maxRank) =>
        from rank in Gen.Choose(minRank, maxRank)
        from dims in Gen.ArrayOf(Gen.Choose(1, 5), rank)
        select dims;

    public static Arbitrary<SmallShape> SmallShape() =>
        ShapeGen(0, 4).Select(d => new SmallShape(d)).ToArbitrary();

    public static Arbitrary<BroadcastPair> BroadcastPair() =>
        (from left in ShapeGen(1, 4)
         from drop in Gen.Choose(0, left.Length)
         from ones in Gen.ArrayOf(Gen.Elements(true, false, false), left.Length)
         from swap in Gen.Elements(true, false)
         let right = left.Skip(drop).Select((d, i) => ones[i + drop] ? 1 : d).ToArray()
         select swap ? new BroadcastPair(right, left) : new BroadcastPair(left, right)).ToArbitrary();

    public static Arbitrary<MatMulCase> MatMulCase() =>
        (from batch in ShapeGen(0, 2)
         from broadcastB in Gen.Elements(0, 1, 2)
         from m in Gen.Choose(1, 7)
         from k in Gen.Choose(1, 7)
         from n in Gen.Choose(1, 7)
         from ta in Gen.Elements(true, false)
         from tb in Gen.Elements(true, false)
         let batchB = broadcastB == 0 ? batch : broadcastB == 1 ? [] : batch.Select(_ => 1).ToArray()
         select new MatMulCase(batch, batchB, m, k, n, ta, tb)).ToArbitrary();
}
