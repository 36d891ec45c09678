using TensorLite.Autograd;
using TensorLite.LinearAlgebra;
using LA = TensorLite.LinearAlgebra.Linalg;

namespace TensorLite.Optim.Projected;

/// <summary>
/// GRASS's sparse projection (and FRUGAL's column / block subspaces): r whole rows of G (left) or columns (right) chosen
/// by <see cref="RowSelection"/> — top norms, norm-proportional or uniform sampling, or a contiguous block that moves on
/// by one block per refresh. R = G[rows] (or G[:, columns]); back(N) scatters N into zeros. The state is the r int32 indices.
/// </summary>
public sealed partial class SparseProjector(ProjectionSide side, int m, int n, int rank, int updateGap, RowSelection selection, Generator generator)
    : OneSidedProjector(side, m, n, rank, updateGap), IProjector
{
    private Tensor? _index;

    public RowSelection Selection { get; } = selection;

    /// <summary>The selected indices (int32 [r], ascending), or null before the first refresh.</summary>
    public Tensor? Index => _index;

    public bool IsRefreshDue(long step) => _index == null || step % UpdateGap == 0;

    public void Refresh(Tensor g, long step)
    {
        using var noGrad = GradMode.NoGrad();
        int block = (int)(RefreshCount % int.MaxValue);
        var next = Side == ProjectionSide.Left
            ? LA.SelectRows(g, Rank, Selection, generator, block)
            : LA.SelectColumns(g, Rank, Selection, generator, block);
        _index?.Dispose();
        _index = next.Persist();
        RefreshCount++;
    }

    public Tensor Project(Tensor g)
    {
        var idx = _index ?? throw new InvalidOperationException("The projector has no selection yet; refresh it first.");
        return Side == ProjectionSide.Left ? LA.GatherRows(g, idx) : LA.GatherColumns(g, idx);
    }

    public Tensor ProjectBack(Tensor n)
    {
        var idx = _index ?? throw new InvalidOperationException("The projector has no selection yet; refresh it first.");
        using var noGrad = GradMode.NoGrad();
        using var zeros = Tensor.Zeros([Rows, Columns], DType.Float32, n.Backend);
        return Side == ProjectionSide.Left ? LA.ScatterRows(zeros, idx, n) : LA.ScatterColumns(zeros, idx, n);
    }

    public Tensor BasisMatrix()
    {
        var idx = (_index ?? throw new InvalidOperationException("The projector has no selection yet.")).ToArray<int>();
        var b = new float[Dim * Rank];
        for (int j = 0; j < Rank; j++) b[idx[j] * Rank + j] = 1;
        return Tensor.FromSpan<float>(b, [Dim, Rank], DType.Float32, _index.Backend);
    }

    public long StateBytes => _index == null ? 0 : 4L * Rank;

    public IEnumerable<(string Name, Tensor Tensor)> StateTensors()
    {
        if (_index != null) yield return ("index", _index);
    }

    public void LoadState(IReadOnlyDictionary<string, Tensor> state, string prefix, long refreshCount, IBackend backend)
    {
        _index?.Dispose();
        _index = null;
        RefreshCount = refreshCount;
        if (!state.TryGetValue(prefix + "index", out var saved)) return;
        if (saved.Rank != 1 || saved.Shape[0] != Rank)
            throw new TensorLiteException($"Optimizer state '{prefix}index' has shape {ShapeMath.Format(saved.Shape)}, but the selection needs [{Rank}].");
        var values = saved.DType == DType.Int32 ? saved.ToArray<int>() : saved.ToArray<long>().Select(v => checked((int)v)).ToArray();
        if (values.Any(v => v < 0 || v >= Dim))
            throw new TensorLiteException($"Optimizer state '{prefix}index' holds an index outside [0, {Dim}).");
        _index = Tensor.FromSpan<int>(values, [Rank], DType.Int32, backend).Persist();
    }

    public void Dispose()
    {
        _index?.Dispose();
        _index = null;
    }
}
