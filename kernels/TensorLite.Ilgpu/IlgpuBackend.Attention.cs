using ILGPU;
using ILGPU.Runtime;

namespace TensorLite.Ilgpu;

// Causal attention over the flash-attention kernels in AttentionKernels.cs. The causal_attention op passes float32
// inputs with a contiguous last dim (the CPU kernels read other strides in place; these members compact such inputs)
// and fresh contiguous outputs, which they check.
public sealed partial class IlgpuBackend
{
    private readonly AttentionKernelSet _attention;

    /// <summary>The attention kernel delegates, loaded once when the backend is created.</summary>
    private sealed class AttentionKernelSet(Accelerator a)
    {
        public readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionParams> Forward =
            a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionParams>(IlgpuKernels.AttentionForward);

        public readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int> RowDots =
            a.LoadElementwiseKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int>(IlgpuKernels.AttentionRowDots);

        public readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionParams> BackwardQuery =
            a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionParams>(IlgpuKernels.AttentionBackwardQuery);

        public readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionParams> BackwardKeyValue =
            a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionParams>(IlgpuKernels.AttentionBackwardKeyValue);
    }

    /// <summary>
    /// Rows per attention tile (query and key tiles alike); null (the default) picks 16 for head_dim ≤ 128 and 8 up
    /// to 256. Any size from 1 to 16 that fits the head dim gives the same results: tests use small tiles because a
    /// Tile × Tile group synchronized by barriers is slow to emulate on the CPU accelerator, and small tiles also
    /// put more tile edges into a short sequence.
    /// </summary>
    public int? AttentionTileRows { get; set; }

    /// <summary>The CUDA tile for this head dim, or on the CPU emulator the largest that fits a group of
    /// <see cref="GroupThreadsLimit"/> threads (tile² threads per group) and the head dim.</summary>
    private int DefaultAttentionTile(int headDim)
    {
        int tile = IlgpuKernels.AttentionTile(headDim);
        while (tile > 1 && tile * tile > GroupThreadsLimit && IlgpuKernels.AttentionTileFits(tile / 2, headDim)) tile /= 2;
        return tile;
    }

    /// <summary>Checks dtypes, layout and shapes (a wrong-sized output would be written out of bounds on the
    /// device, silently) and derives the launch parameters. likeQ: tensors shaped as q; likeK: shaped as k.</summary>
    private AttentionParams AttentionSetup(string op, Tensor q, Tensor k, Tensor lse, float scale, Tensor[] likeQ, Tensor[] likeK)
    {
        Tensor[] all = [q, k, lse, .. likeQ, .. likeK];
        RequireFloat32(op, all);
        foreach (var t in all)
            if (!t.IsContiguous)
                throw new NotSupportedException($"{op} on ILGPU needs contiguous tensors (the causal_attention op makes them so), got {t.Describe()}.");
        if (q.Rank != 4 || k.Rank != 4)
            throw new ArgumentException($"{op}: q and k must be [batch, heads, seq, head_dim], got {q.Describe()} and {k.Describe()}.");
        int heads = q.Shape[1], kvHeads = k.Shape[1], seq = q.Shape[2], d = q.Shape[3];
        if (k.Shape[0] != q.Shape[0] || k.Shape[2] != seq || k.Shape[3] != d || kvHeads == 0 || heads % kvHeads != 0)
            throw new ArgumentException($"{op}: q {q.Describe()} does not match k {k.Describe()} (same batch, seq and head_dim; kv heads must divide heads).");
        foreach (var (group, like) in new[] { (likeQ, q), (likeK, k) })
            foreach (var t in group)
                if (!ShapeMath.SameShape(t.Shape, like.Shape))
                    throw new ArgumentException($"{op}: {t.Describe()} must have the shape {ShapeMath.Format(like.Shape)}.");
        if (!ShapeMath.SameShape(lse.Shape, q.Shape[..3]))
            throw new ArgumentException($"{op}: lse {lse.Describe()} must be {ShapeMath.Format(q.Shape[..3])}.");
        if (d > IlgpuKernels.AttentionMaxHeadDim)
            throw new NotSupportedException(
                $"{op} on ILGPU supports head_dim up to {IlgpuKernels.AttentionMaxHeadDim} (shared-memory tiles are sized for it), got {d}.");
        int tile = AttentionTileRows ?? DefaultAttentionTile(d);
        if (!IlgpuKernels.AttentionTileFits(tile, d))
            throw new NotSupportedException($"{op}: attention tiles of {tile} rows do not fit head_dim {d} (AttentionTileRows).");
        return new AttentionParams
        {
            Heads = heads, KvHeads = kvHeads, Seq = seq, HeadDim = d,
            Tile = tile, SeqTiles = (seq + tile - 1) / tile, Scale = scale,
        };
    }

    /// <summary>One Tile × Tile group per (batch, head, sequence tile) of <paramref name="heads"/> heads and block of
    /// 8·Tile output columns.</summary>
    private static KernelConfig AttentionLaunch(int batch, int heads, AttentionParams p) =>
        new(new Index3D(batch * heads * p.SeqTiles, IlgpuKernels.AttentionColumnBlocks(p.Tile, p.HeadDim), 1),
            new Index3D(p.Tile, p.Tile, 1));

    public void CausalAttentionForward(Tensor q, Tensor k, Tensor v, Tensor o, Tensor lse, float scale)
    {
        // The kernels index packed [B, H, T, D]: strided inputs (allowed by the contract) are compacted first.
        using Tensor qc = q.ContiguousNoGrad(), kc = k.ContiguousNoGrad(), vc = v.ContiguousNoGrad();
        (q, k, v) = (qc, kc, vc);
        var p = AttentionSetup(nameof(CausalAttentionForward), q, k, lse, scale, [o], [v]);
        int batch = q.Shape[0];
        // head_dim 0 still launches: every score is 0, so lse = log(visible keys) and o is empty.
        if (batch == 0 || p.Heads == 0 || p.Seq == 0) return;
        _attention.Forward(AttentionLaunch(batch, p.Heads, p), View<float>(q), View<float>(k), View<float>(v),
            View<float>(o), View<float>(lse), p);
    }

    public void CausalAttentionBackward(Tensor q, Tensor k, Tensor v, Tensor o, Tensor lse, Tensor dO,
        Tensor dq, Tensor dk, Tensor dv, float scale)
    {
        using Tensor qc = q.ContiguousNoGrad(), kc = k.ContiguousNoGrad(), vc = v.ContiguousNoGrad();
        using Tensor oc = o.ContiguousNoGrad(), dOc = dO.ContiguousNoGrad();
        (q, k, v, o, dO) = (qc, kc, vc, oc, dOc);
        var p = AttentionSetup(nameof(CausalAttentionBackward), q, k, lse, scale, [o, dO, dq], [v, dk, dv]);
        int batch = q.Shape[0];
        if (batch == 0 || p.Heads == 0 || p.Seq == 0 || p.HeadDim == 0) return;
        using var dots = Tensor.Empty(lse.Shape, DType.Float32, this);
        _attention.RowDots(batch * p.Heads * p.Seq, View<float>(dO), View<float>(o), View<float>(dots), p.HeadDim);
        _attention.BackwardQuery(AttentionLaunch(batch, p.Heads, p), View<float>(q), View<float>(k), View<float>(v),
            View<float>(dO), View<float>(lse), View<float>(dots), View<float>(dq), p);
        _attention.BackwardKeyValue(AttentionLaunch(batch, p.KvHeads, p), View<float>(q), View<float>(k), View<float>(v),
            View<float>(dO), View<float>(lse), View<float>(dots), View<float>(dk), View<float>(dv), p);
        // dots goes back to the pool here; later launches on the same stream run after these kernels.
    }
}
