using TensorLite.Autograd;

namespace TensorLite.Optim.Projected;

/// <summary>The marker projector of FRUGAL's whole-matrix mode: the identity on the whole matrix, with no state. The
/// optimizer steps such a parameter itself (AdamW when the matrix is active, else the state-free rule) and uses
/// <see cref="RefreshCount"/> to count refreshes.</summary>
public sealed class WholeMatrixProjector(int m, int n, int updateGap) : IProjector
{
    public ProjectionSide Side => ProjectionSide.Left;
    public int Rank { get; } = Math.Min(m, n);
    public bool IsIdentity => true;
    public long RefreshCount { get; private set; }
    public int UpdateGap { get; } = updateGap >= 1 ? updateGap : throw new ArgumentOutOfRangeException(nameof(updateGap), "The update gap must be at least 1 step.");

    public bool IsRefreshDue(long step) => step % UpdateGap == 0;
    public void Refresh(Tensor g, long step) => RefreshCount++;

    public Tensor Project(Tensor g)
    {
        using var noGrad = GradMode.NoGrad();
        return g.Clone();
    }

    public Tensor ProjectBack(Tensor n)
    {
        using var noGrad = GradMode.NoGrad();
        return n.Clone();
    }

    public Tensor BasisMatrix()
    {
        var eye = new float[m * m];
        for (int i = 0; i < m; i++) eye[i * m + i] = 1f;
        return Tensor.FromSpan<float>(eye, [m, m], DType.Float32);
    }

    public long StateBytes => 0;
    public IEnumerable<(string Name, Tensor Tensor)> StateTensors() => [];
    public void LoadState(IReadOnlyDictionary<string, Tensor> state, string prefix, long refreshCount, IBackend backend) => RefreshCount = refreshCount;
    public void Dispose() { }
}
