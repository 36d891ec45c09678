using TensorLite.Autograd;
using TensorLite.LinearAlgebra;
using LA = TensorLite.LinearAlgebra.Linalg;

namespace TensorLite.Optim.Projected;

/// <summary>
/// GRASS's sparse projection (and FRUGAL's column / block subspaces): r whole rows of G (left) or columns (right) chosen
/// by <see cref="RowSelection"/> — top norms, norm-proportional or uniform sampling, or a contiguous block that moves on
/// by one block per refresh. R = ρ·G[rows] (or G[:, columns]·ρ); back(N) scatter-adds ρ·N into zeros (repeated rows,
/// drawn with replacement, add up). ρ is 1 unless the selection is <paramref name="rescaled"/> (<see cref="RowSampler"/>).
/// The state is the r int32 indices and, when re-scaled, the r float32 scales. The projector also counts the distinct
/// rows it has selected since it was created (<see cref="DistinctSelected"/>), for the end-of-run summary.
/// </summary>
public sealed partial class SparseProjector(ProjectionSide side, int m, int n, int rank, int updateGap, RowSelection selection, Generator generator,
    bool rescaled = false, bool withReplacement = false)
    : OneSidedProjector(side, m, n, rank, updateGap), IProjector
{
    private Tensor? _index, _scale;
    private readonly bool[] _seen = new bool[side == ProjectionSide.Left ? m : n];

    /// <summary>How rows (or columns) are picked at each refresh.</summary>
    public RowSelection Selection { get; } = selection;
    /// <summary>Whether a sampled row j is scaled by ρ_j = 1/√(r·q_j) (q_j its probability), which makes back(R) an
    /// unbiased estimate of G when drawn with replacement.</summary>
    public bool Rescaled { get; } = rescaled;
    /// <summary>Whether sampled rows are drawn with replacement (a row may then appear more than once).</summary>
    public bool WithReplacement { get; } = withReplacement;

    /// <summary>The selected indices (int32 [r], ascending), or null before the first refresh.</summary>
    public Tensor? Index => _index;

    /// <summary>How many distinct rows (columns for a right projector) the selections have covered since this projector
    /// was created (or loaded from a checkpoint).</summary>
    public int DistinctSelected => _seen.Count(x => x);

    /// <inheritdoc/>
    public bool IsRefreshDue(long step) => _index == null || step % UpdateGap == 0;

    /// <inheritdoc/>
    public void Refresh(Tensor g, long step)
    {
        using var noGrad = GradMode.NoGrad();
        int[] picked;
        float[]? scale = null;
        if (Rescaled || WithReplacement)
        {
            using var oriented = Side == ProjectionSide.Left ? g.Detach() : g.T;
            (picked, scale) = RowSampler.Sample(oriented, Rank, Selection, WithReplacement, generator);
        }
        else
        {
            int block = (int)(RefreshCount % int.MaxValue);
            using var next = Side == ProjectionSide.Left
                ? LA.SelectRows(g, Rank, Selection, generator, block)
                : LA.SelectColumns(g, Rank, Selection, generator, block);
            picked = next.ToArray<int>();
        }
        SetSelection(picked, Rescaled ? scale : null, g.Backend);
        RefreshCount++;
    }

    private void SetSelection(int[] picked, float[]? scale, IBackend backend)
    {
        _index?.Dispose();
        _scale?.Dispose();
        _index = Tensor.FromSpan<int>(picked, [Rank], DType.Int32, backend).Persist();
        _scale = scale == null ? null : Tensor.FromSpan<float>(scale, [Rank], DType.Float32, backend).Persist();
        foreach (int i in picked) _seen[i] = true;
    }

    /// <summary>x scaled by ρ along its projected dimension (a new tensor; a copy when not re-scaled).</summary>
    private Tensor Scaled(Tensor x)
    {
        if (_scale == null) return x.Detach();
        using var s = Side == ProjectionSide.Left ? _scale.Reshape(Rank, 1) : _scale.Reshape(1, Rank);
        return x * s;
    }

    /// <inheritdoc/>
    public Tensor Project(Tensor g)
    {
        var idx = _index ?? throw new InvalidOperationException("The projector has no selection yet; refresh it first.");
        using var noGrad = GradMode.NoGrad();
        var picked = Side == ProjectionSide.Left ? LA.GatherRows(g, idx) : LA.GatherColumns(g, idx);
        if (_scale == null) return picked;
        using (picked) return Scaled(picked);
    }

    /// <inheritdoc/>
    public Tensor ProjectBack(Tensor n)
    {
        var idx = _index ?? throw new InvalidOperationException("The projector has no selection yet; refresh it first.");
        using var noGrad = GradMode.NoGrad();
        using var zeros = Tensor.Zeros([Rows, Columns], DType.Float32, n.Backend);
        using var scaled = Scaled(n);
        return Side == ProjectionSide.Left ? LA.ScatterRows(zeros, idx, scaled) : LA.ScatterColumns(zeros, idx, scaled);
    }

    /// <inheritdoc/>
    public Tensor BasisMatrix()
    {
        var idx = (_index ?? throw new InvalidOperationException("The projector has no selection yet.")).ToArray<int>();
        var rho = _scale?.ToArray();
        var b = new float[Dim * Rank];
        for (int j = 0; j < Rank; j++) b[idx[j] * Rank + j] = rho?[j] ?? 1f;
        return Tensor.FromSpan<float>(b, [Dim, Rank], DType.Float32, _index.Backend);
    }

    /// <inheritdoc/>
    public long StateBytes => _index == null ? 0 : (_scale == null ? 4L : 8L) * Rank;

    /// <inheritdoc/>
    public IEnumerable<(string Name, Tensor Tensor)> StateTensors()
    {
        if (_index != null) yield return ("index", _index);
        if (_scale != null) yield return ("scale", _scale);
    }

    /// <inheritdoc/>
    public void LoadState(IReadOnlyDictionary<string, Tensor> state, string prefix, long refreshCount, IBackend backend)
    {
        _index?.Dispose();
        _scale?.Dispose();
        _index = _scale = null;
        RefreshCount = refreshCount;
        if (!state.TryGetValue(prefix + "index", out var saved)) return;
        if (saved.Rank != 1 || saved.Shape[0] != Rank)
            throw new TensorLiteException($"Optimizer state '{prefix}index' has shape {ShapeMath.Format(saved.Shape)}, but the selection needs [{Rank}].");
        var values = saved.DType == DType.Int32 ? saved.ToArray<int>() : saved.ToArray<long>().Select(v => checked((int)v)).ToArray();
        if (values.Any(v => v < 0 || v >= Dim))
            throw new TensorLiteException($"Optimizer state '{prefix}index' holds an index outside [0, {Dim}).");
        float[]? scale = null;
        if (Rescaled)
        {
            if (!state.TryGetValue(prefix + "scale", out var savedScale) || savedScale.Numel != Rank)
                throw new TensorLiteException($"Optimizer state '{prefix}scale' is missing or not [{Rank}]; the checkpoint was written without GRASS's re-scaling.");
            scale = savedScale.ToArray();
        }
        SetSelection(values, scale, backend);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _index?.Dispose();
        _scale?.Dispose();
        _index = _scale = null;
    }
}
