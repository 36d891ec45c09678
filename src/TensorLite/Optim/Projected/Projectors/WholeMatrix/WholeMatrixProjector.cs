using TensorLite.Autograd;

namespace TensorLite.Optim.Projected;

/// <summary>The marker projector of FRUGAL's whole-matrix mode: the identity on the whole matrix, with no state. The
/// optimizer steps such a parameter itself (AdamW when the matrix is active, else the state-free rule) and uses
/// <see cref="RefreshCount"/> to count refreshes.</summary>
public sealed class WholeMatrixProjector(int m, int n, int updateGap) : IProjector
{
    /// <inheritdoc/>
    public ProjectionSide Side => ProjectionSide.Left;
    /// <inheritdoc/>
    public int Rank { get; } = Math.Min(m, n);
    /// <inheritdoc/>
    public bool IsIdentity => true;
    /// <inheritdoc/>
    public long RefreshCount { get; private set; }
    /// <summary>Steps between refreshes (at least 1): how often the set of state-full matrices changes.</summary>
    public int UpdateGap { get; } = updateGap >= 1 ? updateGap : throw new ArgumentOutOfRangeException(nameof(updateGap), "The update gap must be at least 1 step.");

    /// <inheritdoc/>
    public bool IsRefreshDue(long step) => step % UpdateGap == 0;
    /// <inheritdoc/>
    public void Refresh(Tensor g, long step) => RefreshCount++;

    /// <inheritdoc/>
    public Tensor Project(Tensor g)
    {
        using var noGrad = GradMode.NoGrad();
        return g.Clone();
    }

    /// <inheritdoc/>
    public Tensor ProjectBack(Tensor n)
    {
        using var noGrad = GradMode.NoGrad();
        return n.Clone();
    }

    /// <inheritdoc/>
    public Tensor BasisMatrix()
    {
        var eye = new float[m * m];
        for (int i = 0; i < m; i++) eye[i * m + i] = 1f;
        return Tensor.FromSpan<float>(eye, [m, m], DType.Float32);
    }

    /// <inheritdoc/>
    public long StateBytes => 0;
    /// <inheritdoc/>
    public IEnumerable<(string Name, Tensor Tensor)> StateTensors() => [];
    /// <inheritdoc/>
    public void LoadState(IReadOnlyDictionary<string, Tensor> state, string prefix, long refreshCount, IBackend backend) => RefreshCount = refreshCount;
    /// <inheritdoc/>
    public void Dispose() { }
}
