using TensorLite.Backends.Cpu;
using TensorLite.Ilgpu;
using Xunit;
using static TensorLite.Tests.Support.BackendCompare;

namespace TensorLite.Tests;

/// <summary>The ILGPU causal-attention kernels (forward o and lse, backward dq, dk, dv) against the CPU backend, on
/// ILGPU's CPU accelerator. Sequence lengths 1, odd, and not multiples of the 16-row tile; head dims from 1 to 256
/// (both tile sizes, one or several blocks of output columns per group); grouped-query attention with 2 and 4 query
/// heads per kv head.</summary>
public sealed class IlgpuAttentionTests(IlgpuCpuFixture fixture) : IClassFixture<IlgpuCpuFixture>
{
    private readonly IlgpuBackend _gpu = fixture.Backend;
    private static readonly IBackend Cpu = CpuBackend.Instance;

    /// <summary>Forward then backward through the backend members; returns o, lse, dq, dk, dv.</summary>
    private static float[][] RunMembers(IBackend be, int batch, int heads, int kvHeads, int seq, int d, int seed)
    {
        int[] qShape = [batch, heads, seq, d], kvShape = [batch, kvHeads, seq, d];
        int nq = batch * heads * seq * d, nkv = batch * kvHeads * seq * d;
        float scale = 1.3f / MathF.Sqrt(d);
        using var q = Make(be, RandomData(nq, seed), qShape);
        using var k = Make(be, RandomData(nkv, seed + 1), kvShape);
        using var v = Make(be, RandomData(nkv, seed + 2), kvShape);
        using var dO = Make(be, RandomData(nq, seed + 3, -1f, 1f), qShape);
        using var o = Tensor.Empty(qShape, DType.Float32, be);
        using var lse = Tensor.Empty([batch, heads, seq], DType.Float32, be);
        using var dq = Tensor.Empty(qShape, DType.Float32, be);
        using var dk = Tensor.Empty(kvShape, DType.Float32, be);
        using var dv = Tensor.Empty(kvShape, DType.Float32, be);
        be.CausalAttentionForward(q, k, v, o, lse, scale);
        be.CausalAttentionBackward(q, k, v, o, lse, dO, dq, dk, dv, scale);
        return [o.ToArray(), lse.ToArray(), dq.ToArray(), dk.ToArray(), dv.ToArray()];
    }

    /// <summary>Runs <paramref name="body"/> with the ILGPU backend's attention tiles set to <paramref name="tile"/> rows
    /// (null: the default by head dim).</summary>
    private T WithTile<T>(int? tile, Func<T> body)
    {
        _gpu.AttentionTileRows = tile;
        try { return body(); }
        finally { _gpu.AttentionTileRows = null; }
    }

    public static TheoryData<int, int, int, int, int?> Cases() => new()
    {
        // seq, head_dim, heads, kv heads, tile rows (batch 2 throughout). Small tiles keep the CPU accelerator fast
        // and put several tile edges into short sequences; the last rows use the tiles CUDA gets.
        { 1, 8, 2, 2, 4 },       // a single position: one key, probability 1
        { 5, 8, 2, 2, 4 },       // one full tile and a one-row tile
        { 17, 8, 2, 2, 4 },
        { 33, 8, 2, 2, 4 },
        { 17, 1, 2, 2, 4 },
        { 17, 24, 2, 2, 3 },     // a tile size that is not a power of two
        { 33, 64, 2, 2, 4 },
        { 17, 8, 4, 2, 4 },      // grouped-query: two query heads per kv head
        { 33, 24, 4, 1, 4 },     // all four query heads share one kv head
        { 5, 64, 4, 2, 4 },
        { 1, 24, 4, 1, 4 },
        { 17, 24, 2, 1, null },  // 16-row tiles (head dim ≤ 128): a full tile and a one-row tile
        { 5, 64, 2, 1, null },   // 16-row tile, mostly past the end of the sequence
        { 9, 160, 2, 1, null },  // 8-row tiles (head dim above 128): a full tile and a one-row tile
        { 9, 256, 4, 2, null },  // the largest head dim
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void ForwardAndBackward_MatchCpu(int seq, int d, int heads, int kvHeads, int? tile)
    {
        const int batch = 2;
        int seed = seq * 1000 + d * 10 + heads + kvHeads;
        var expected = RunMembers(Cpu, batch, heads, kvHeads, seq, d, seed);
        var actual = WithTile(tile, () => RunMembers(_gpu, batch, heads, kvHeads, seq, d, seed));
        string[] names = ["o", "lse", "dq", "dk", "dv"];
        for (int i = 0; i < names.Length; i++) AssertClose(expected[i], actual[i], i < 2 ? 2e-5f : 1e-4f, names[i]);
    }

    [Fact]
    public void Backward_IsDeterministic()
    {
        var first = WithTile(4, () => RunMembers(_gpu, 2, 4, 2, 10, 8, 5));
        var second = WithTile(4, () => RunMembers(_gpu, 2, 4, 2, 10, 8, 5));
        for (int i = 0; i < first.Length; i++) Assert.Equal(first[i], second[i]);
    }

    /// <summary>The public op through autograd with every tensor on ILGPU: strided [B, T, H, D] views (as the model
    /// passes them), grouped-query heads and a weighted sum as the loss; output and all three gradients match.</summary>
    [Fact]
    public void EndToEnd_CausalAttentionOp_ThroughAutograd_MatchesCpu()
    {
        const int batch = 2, seq = 19, heads = 4, kvHeads = 2, d = 12;
        var qData = RandomData(batch * seq * heads * d, 40);
        var kData = RandomData(batch * seq * kvHeads * d, 41);
        var vData = RandomData(batch * seq * kvHeads * d, 42);
        var wData = RandomData(batch * heads * seq * d, 43, -1f, 1f);
        (float[] O, float[] Dq, float[] Dk, float[] Dv) Run(IBackend be)
        {
            using var qs = Make(be, qData, batch, seq, heads, d);
            using var ks = Make(be, kData, batch, seq, kvHeads, d);
            using var vs = Make(be, vData, batch, seq, kvHeads, d);
            using var w = Make(be, wData, batch, heads, seq, d);
            qs.RequiresGrad = ks.RequiresGrad = vs.RequiresGrad = true;
            using var q = qs.Transpose(1, 2);
            using var k = ks.Transpose(1, 2);
            using var v = vs.Transpose(1, 2);
            using var o = Tensor.CausalAttention(q, k, v);
            using var weighted = o * w;
            using var loss = weighted.Sum();
            loss.Backward();
            var result = (o.ToArray(), qs.Grad!.ToArray(), ks.Grad!.ToArray(), vs.Grad!.ToArray());
            qs.Grad.Dispose(); ks.Grad.Dispose(); vs.Grad.Dispose();
            return result;
        }
        var cpu = Run(Cpu);
        var gpu = WithTile(4, () => Run(_gpu));
        AssertClose(cpu.O, gpu.O, 2e-5f, "o");
        AssertClose(cpu.Dq, gpu.Dq, 1e-4f, "dq");
        AssertClose(cpu.Dk, gpu.Dk, 1e-4f, "dk");
        AssertClose(cpu.Dv, gpu.Dv, 1e-4f, "dv");
    }

    [Fact]
    public void HeadDimAboveTheLimit_Throws()
    {
        int d = IlgpuKernels.AttentionMaxHeadDim + 1;
        using var q = Tensor.Zeros([1, 1, 2, d], DType.Float32, _gpu);
        using var o = Tensor.Empty([1, 1, 2, d], DType.Float32, _gpu);
        using var lse = Tensor.Empty([1, 1, 2], DType.Float32, _gpu);
        var e = Assert.Throws<NotSupportedException>(() => _gpu.CausalAttentionForward(q, q, q, o, lse, 1f));
        Assert.Contains("head_dim", e.Message);

        // 16-row tiles of head_dim 200 would overflow the staged tile buffer.
        using var q200 = Tensor.Zeros([1, 1, 2, 200], DType.Float32, _gpu);
        using var o200 = Tensor.Empty([1, 1, 2, 200], DType.Float32, _gpu);
        Assert.Throws<NotSupportedException>(() => WithTile(16, () => { _gpu.CausalAttentionForward(q200, q200, q200, o200, lse, 1f); return 0; }));
    }

    [Fact]
    public void NonFloat32_Strided_OrMisshapedOperands_Throw()
    {
        using var q = Tensor.Zeros([1, 2, 3, 4], DType.Float32, _gpu);
        using var o = Tensor.Empty([1, 2, 3, 4], DType.Float32, _gpu);
        using var lse = Tensor.Empty([1, 2, 3], DType.Float32, _gpu);
        using var half = Tensor.Zeros([1, 2, 3, 4], DType.BFloat16, _gpu);
        Assert.Throws<NotSupportedException>(() => _gpu.CausalAttentionForward(half, half, half, o, lse, 1f));
        using var strided = Tensor.Zeros([1, 3, 2, 4], DType.Float32, _gpu);
        using var view = strided.Transpose(1, 2);
        // Strided inputs are compacted (the backend contract allows them); a strided output is refused.
        var e = Assert.Throws<NotSupportedException>(() => _gpu.CausalAttentionForward(q, q, q, view, lse, 1f));
        Assert.Contains("contiguous", e.Message);
        using var shortOut = Tensor.Empty([1, 2, 2, 4], DType.Float32, _gpu);
        Assert.Throws<ArgumentException>(() => _gpu.CausalAttentionForward(q, q, q, shortOut, lse, 1f));
        using var shortLse = Tensor.Empty([1, 2, 2], DType.Float32, _gpu);
        Assert.Throws<ArgumentException>(() => _gpu.CausalAttentionForward(q, q, q, o, shortLse, 1f));
    }

    [Fact]
    public void OutputColumns_AreSplitIntoBlocksOfEightTilesPerGroup()
    {
        // The CUDA tiles cover a head dim of up to 128 in one block (no score is computed twice); 8-row tiles for head
        // dims above 128 and the small tiles of the tests above take several (cases 33×64 / tile 4, 160 and 256).
        Assert.Equal(1, IlgpuKernels.AttentionColumnBlocks(IlgpuKernels.AttentionTile(64), 64));
        Assert.Equal(1, IlgpuKernels.AttentionColumnBlocks(IlgpuKernels.AttentionTile(128), 128));
        Assert.Equal(3, IlgpuKernels.AttentionColumnBlocks(IlgpuKernels.AttentionTile(160), 160));
        Assert.Equal(4, IlgpuKernels.AttentionColumnBlocks(IlgpuKernels.AttentionTile(256), 256));
        Assert.Equal(2, IlgpuKernels.AttentionColumnBlocks(4, 64));
        Assert.Equal(1, IlgpuKernels.AttentionColumnBlocks(16, 0));   // head dim 0 still writes lse
    }

    [Fact]
    public void AttentionKernels_AreListedForThePtxCheck()
    {
        var names = IlgpuKernels.All().Select(k => (k.Method.Name, k.ExplicitlyGrouped)).ToHashSet();
        foreach (var name in new[] { "AttentionForward", "AttentionBackwardQuery", "AttentionBackwardKeyValue" })
            Assert.Contains((name, true), names);
        Assert.Contains(("AttentionRowDots", false), names);
    }
}
