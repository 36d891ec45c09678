using TensorLite.Autograd;

namespace TensorLite.Optim.Projected;

/// <summary>
/// LSP_Offload's learned sparse projection of G [m, n] on both sides (<see cref="ProjectionSide.Both"/>): R =
/// S_l·G·S_rᵀ [r, r] and back(N) = S_lᵀ·N·S_r [m, n], with sparse sketches S_l [r, m] and S_r [r, n]
/// (<see cref="SparseSketch"/>, d non-zeros per column). The pattern is drawn at the first refresh from the parameter's
/// own generator and never changes. At every refresh step (every <see cref="UpdateGap"/> steps, step 0 included) the
/// relative error ‖P_l·G·P_r − G‖/‖G‖ of the current sketches is measured on the step's gradient; when it is at least
/// the threshold (and the fit has iterations) the values are refit by <see cref="SketchFit.Fit"/> and
/// <see cref="RefreshCount"/> goes up, otherwise the sketches (and so the optimizer's moments) are left as they are. In the basis terms of <see cref="IProjector"/>,
/// the left basis is S_lᵀ [m, r] and the right one S_rᵀ [n, r].
/// </summary>
public sealed class SketchProjector : IProjector
{
    private SparseSketch? _left, _right;
    private readonly Generator _generator;

    /// <summary>The projector of one [<paramref name="m"/>, <paramref name="n"/>] matrix with r = <paramref name="rank"/>
    /// (1 ≤ r ≤ min(m, n)) and d = <paramref name="nonZeros"/> (1 ≤ d ≤ r); the sketches are drawn from
    /// <paramref name="generator"/> at the first refresh.</summary>
    public SketchProjector(int m, int n, int rank, int nonZeros, int updateGap, int fitIterations, float fitLearningRate, float fitThreshold, Generator generator)
    {
        if (rank < 1 || rank > Math.Min(m, n))
            throw new ArgumentOutOfRangeException(nameof(rank), $"A sketch rank must be between 1 and min(m, n) = {Math.Min(m, n)}, got {rank}.");
        if (nonZeros < 1 || nonZeros > rank)
            throw new ArgumentOutOfRangeException(nameof(nonZeros), $"A sketch of rank {rank} takes 1 to {rank} non-zeros per column, got {nonZeros}.");
        if (updateGap < 1) throw new ArgumentOutOfRangeException(nameof(updateGap), "The refit interval must be at least 1 step.");
        (Rows, Columns, Rank, NonZeros, UpdateGap) = (m, n, rank, nonZeros, updateGap);
        (FitIterations, FitLearningRate, FitThreshold) = (fitIterations, fitLearningRate, fitThreshold);
        _generator = generator;
    }

    /// <inheritdoc/>
    public ProjectionSide Side => ProjectionSide.Both;
    /// <inheritdoc/>
    public int Rank { get; }
    /// <summary>m: the gradient's rows (the left sketch's columns).</summary>
    public int Rows { get; }
    /// <summary>n: the gradient's columns (the right sketch's columns).</summary>
    public int Columns { get; }
    /// <summary>d: non-zeros per sketch column.</summary>
    public int NonZeros { get; }
    /// <summary>Steps between error checks (and refits).</summary>
    public int UpdateGap { get; }
    /// <summary>Adam steps per refit.</summary>
    public int FitIterations { get; }
    /// <summary>The refit's Adam learning rate.</summary>
    public float FitLearningRate { get; }
    /// <summary>A check whose relative error is below this skips the refit.</summary>
    public float FitThreshold { get; }
    /// <inheritdoc/>
    public bool IsIdentity => false;

    /// <summary>How many refits changed the sketches (checks below the threshold do not count).</summary>
    public long RefreshCount { get; private set; }

    /// <summary>The relative error the last check measured, before any refit (NaN before the first check).</summary>
    public double LastCheckError { get; private set; } = double.NaN;

    /// <summary>The relative error right after the last refit, on the gradient it was fit to (NaN before the first).</summary>
    public double LastFitError { get; private set; } = double.NaN;

    /// <summary>The left sketch S_l [r, m] (null before the first refresh).</summary>
    public SparseSketch? Left => _left;

    /// <summary>The right sketch S_r [r, n] (null before the first refresh).</summary>
    public SparseSketch? Right => _right;

    /// <inheritdoc/>
    public bool IsRefreshDue(long step) => _left == null || step % UpdateGap == 0;

    /// <summary>Draws the sketches on the first call; then measures their error on <paramref name="g"/> and refits the
    /// values when it is at least the threshold.</summary>
    public void Refresh(Tensor g, long step)
    {
        using var noGrad = GradMode.NoGrad();
        if (_left == null || _right == null)
        {
            _left = SparseSketch.Random(Rank, Rows, NonZeros, _generator, g.Backend);
            _right = SparseSketch.Random(Rank, Columns, NonZeros, _generator, g.Backend);
        }
        LastCheckError = SketchFit.Error(g, _left, _right);
        // No fit iterations leave the values as drawn: nothing changed, so the moments must not be transferred either.
        if (LastCheckError < FitThreshold || FitIterations == 0) return;
        LastFitError = SketchFit.Fit(g, _left, _right, FitIterations, FitLearningRate);
        RefreshCount++;
    }

    /// <summary>R = S_l·G·S_rᵀ [r, r].</summary>
    public Tensor Project(Tensor g)
    {
        var (left, right) = Sketches();
        using var noGrad = GradMode.NoGrad();
        using var g32 = g.DType == DType.Float32 ? g.ContiguousNoGrad() : g.To(DType.Float32);
        using var u = left.Compress(g32, 0);
        return right.Compress(u, 1);
    }

    /// <summary>R from the factors, never forming G: Σ (dY·S_lᵀ)ᵀ·(X·S_rᵀ) over the pairs, times the scale — two
    /// sparse compressions of b rows each and one [r, b]·[b, r] GEMM per pair.</summary>
    public Tensor ProjectFactored(FactoredGradient g)
    {
        var (left, right) = Sketches();
        using var noGrad = GradMode.NoGrad();
        if (g.Pairs.Count == 0) throw new InvalidOperationException("A factored gradient without pairs has no products.");
        Tensor? total = null;
        foreach (var (x, dy) in g.Pairs)
        {
            using var dy32 = Float32(dy);
            using var x32 = Float32(x);
            using var a = left.Compress(dy32, 1);   // dY·S_lᵀ [b, r]
            using var b = right.Compress(x32, 1);   // X·S_rᵀ  [b, r]
            using var at = a.T;
            var term = at.MatMul(b);
            if (total == null) total = term;
            else using (term) total.Backend.Binary(BinaryOp.Add, total, term, total);
        }
        if (g.Scale != 1f) total!.Backend.Unary(UnaryOp.Affine, total, total, g.Scale, 0f);
        return total!;
    }

    /// <summary>back(N) = S_lᵀ·N·S_r [m, n].</summary>
    public Tensor ProjectBack(Tensor n)
    {
        var (left, right) = Sketches();
        using var noGrad = GradMode.NoGrad();
        using var n32 = Float32(n);
        using var w = left.Expand(n32, 0);
        return right.Expand(w, 1);
    }

    /// <summary>A two-sided projector has one basis per side; ask for it with <see cref="BasisMatrix(ProjectionSide)"/>.</summary>
    public Tensor BasisMatrix() =>
        throw new InvalidOperationException("The sketch projector reduces both sides; ask for the left or the right basis.");

    /// <summary>S_lᵀ [m, r] (left) or S_rᵀ [n, r] (right), dense float32.</summary>
    public Tensor BasisMatrix(ProjectionSide side)
    {
        var (left, right) = Sketches();
        var sketch = side switch
        {
            ProjectionSide.Left => left,
            ProjectionSide.Right => right,
            _ => throw new ArgumentException($"A sketch projector has a left and a right basis, not {side}.", nameof(side)),
        };
        using var noGrad = GradMode.NoGrad();
        using var dense = sketch.Dense();
        using var t = dense.T;
        return t.Clone();
    }

    /// <inheritdoc/>
    public long StateBytes => (_left?.StateBytes ?? 0) + (_right?.StateBytes ?? 0);

    /// <summary>Each sketch's indices and values ("left.index", "left.value", "right.index", "right.value").</summary>
    public IEnumerable<(string Name, Tensor Tensor)> StateTensors()
    {
        if (_left == null || _right == null) yield break;
        yield return ("left.index", _left.Indices);
        yield return ("left.value", _left.Values);
        yield return ("right.index", _right.Indices);
        yield return ("right.value", _right.Values);
    }

    /// <inheritdoc/>
    public void LoadState(IReadOnlyDictionary<string, Tensor> state, string prefix, long refreshCount, IBackend backend)
    {
        DisposeSketches();
        RefreshCount = refreshCount;
        LastCheckError = LastFitError = double.NaN;
        if (!state.ContainsKey(prefix + "left.index")) return;
        _left = Load(state, prefix + "left.", Rows, backend);
        _right = Load(state, prefix + "right.", Columns, backend);
    }

    private SparseSketch Load(IReadOnlyDictionary<string, Tensor> state, string prefix, int columns, IBackend backend)
    {
        if (!state.TryGetValue(prefix + "index", out var index) || !state.TryGetValue(prefix + "value", out var value))
            throw new TensorLiteException($"Optimizer state '{prefix}index' or '{prefix}value' is missing.");
        foreach (var (name, t) in new[] { ("index", index), ("value", value) })
            if (t.Rank != 2 || t.Shape[0] != NonZeros || t.Shape[1] != columns)
                throw new TensorLiteException($"Optimizer state '{prefix}{name}' has shape {ShapeMath.Format(t.Shape)}, but the sketch needs [{NonZeros}, {columns}].");
        var rows = index.DType == DType.Int32 ? index.ToArray<int>() : index.ToArray<long>().Select(v => checked((int)v)).ToArray();
        var values = value.DType == DType.Float32 ? value.ToArray() : throw new TensorLiteException($"Optimizer state '{prefix}value' must be float32, got {value.Describe()}.");
        return SparseSketch.FromHost(Rank, rows, values, NonZeros, columns, backend);
    }

    /// <summary>Replaces both sketches (for tests: identity or hand-made patterns).</summary>
    internal void SetSketches(SparseSketch left, SparseSketch right)
    {
        if (left.Rows != Rank || right.Rows != Rank || left.Columns != Rows || right.Columns != Columns || left.NonZeros != NonZeros || right.NonZeros != NonZeros)
            throw new ArgumentException($"The sketches must be [{Rank}, {Rows}] and [{Rank}, {Columns}] with {NonZeros} non-zeros per column.");
        DisposeSketches();
        (_left, _right) = (left, right);
    }

    private (SparseSketch Left, SparseSketch Right) Sketches() =>
        _left != null && _right != null ? (_left, _right) : throw new InvalidOperationException("The projector has no sketches yet; refresh it first.");

    private static Tensor Float32(Tensor t) => t.DType == DType.Float32 ? t.ContiguousNoGrad() : t.To(DType.Float32);

    private void DisposeSketches()
    {
        _left?.Dispose();
        _right?.Dispose();
        _left = _right = null;
    }

    /// <inheritdoc/>
    public void Dispose() => DisposeSketches();
}
