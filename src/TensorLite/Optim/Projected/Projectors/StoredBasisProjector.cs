using TensorLite.Autograd;

namespace TensorLite.Optim.Projected;

/// <summary>A stored basis that is replaced at each refresh (SVD, randomized SVD, random orthonormal). It is computed in
/// float32 and stored in <see cref="BasisDType"/>: bfloat16 halves the projector's memory (GaLore stores its projection in
/// the weights' dtype); projections then run through the mixed-precision GEMM with fp32 accumulation.</summary>
public abstract class StoredBasisProjector(ProjectionSide side, int m, int n, int rank, int updateGap, DType basisDType = DType.Float32)
    : DenseBasisProjector(side, m, n, rank, updateGap)
{
    private Tensor? _basis;
    /// <inheritdoc/>
    public override Tensor? Basis => _basis;
    /// <summary>The dtype the basis is stored in: float32 or bfloat16.</summary>
    public DType BasisDType { get; } = basisDType is DType.Float32 or DType.BFloat16 ? basisDType
        : throw new ArgumentException($"A projection basis is stored as float32 or bfloat16, not {basisDType.Name()}.", nameof(basisDType));

    /// <summary>The new basis [Dim, Rank] computed from G (any layout; the caller keeps ownership of nothing it returns).</summary>
    protected abstract Tensor ComputeBasis(Tensor g);

    /// <summary>The new basis from G kept as factors; by default G is formed and <see cref="ComputeBasis(Tensor)"/> runs.</summary>
    protected virtual Tensor ComputeBasis(FactoredGradient g)
    {
        using var dense = g.ToDense(DType.Float32);
        return ComputeBasis(dense);
    }

    /// <inheritdoc/>
    public override void Refresh(Tensor g, long step)
    {
        using var noGrad = GradMode.NoGrad();
        Install(ComputeBasis(g));
    }

    /// <inheritdoc/>
    public override void RefreshFactored(FactoredGradient g, long step)
    {
        using var noGrad = GradMode.NoGrad();
        Install(ComputeBasis(g));
    }

    private void Install(Tensor next)
    {
        if (!next.IsContiguous || next.Shape[0] != Dim || next.Shape[1] != Rank)
            throw new InvalidOperationException($"A projector computed a basis {ShapeMath.Format(next.Shape)}; [{Dim}, {Rank}] contiguous was expected.");
        _basis?.Dispose();
        if (BasisDType == DType.Float32) _basis = next.Persist();
        else using (next) _basis = next.To(BasisDType).Persist();
        RefreshCount++;
    }

    /// <inheritdoc/>
    public override long StateBytes => _basis == null ? 0 : (long)BasisDType.SizeInBytes() * _basis.Numel;

    /// <inheritdoc/>
    public override IEnumerable<(string Name, Tensor Tensor)> StateTensors()
    {
        if (_basis != null) yield return ("basis", _basis);
    }

    /// <inheritdoc/>
    public override void LoadState(IReadOnlyDictionary<string, Tensor> state, string prefix, long refreshCount, IBackend backend)
    {
        _basis?.Dispose();
        _basis = null;
        if (state.ContainsKey(prefix + "basis"))
        {
            _basis = Tensor.Empty([Dim, Rank], BasisDType, backend).Persist();
            Optimizer.CopyStateInto(state, prefix + "basis", _basis);
        }
        RefreshCount = refreshCount;
    }

    /// <inheritdoc/>
    public override void Dispose()
    {
        _basis?.Dispose();
        _basis = null;
    }
}
