namespace TensorLite.Optim.Projected;

/// <summary>P = I: the gradient passes through unchanged (full rank). With the AdamW inner optimizer and scale 1 this
/// is AdamW.</summary>
public sealed class IdentityProjector(int m, int n) : IProjector
{
    /// <inheritdoc/>
    public ProjectionSide Side => ProjectionSide.Left;
    /// <inheritdoc/>
    public int Rank => m;
    /// <inheritdoc/>
    public bool IsIdentity => true;
    /// <inheritdoc/>
    public long RefreshCount => 0;
    /// <inheritdoc/>
    public bool IsRefreshDue(long step) => false;
    /// <inheritdoc/>
    public void Refresh(Tensor g, long step) { }
    /// <inheritdoc/>
    public Tensor Project(Tensor g) => g.Detach();
    /// <inheritdoc/>
    public Tensor ProjectBack(Tensor n) => n.Detach();

    /// <inheritdoc/>
    public Tensor BasisMatrix()
    {
        var eye = new float[m * m];
        for (int i = 0; i < m; i++) eye[i * m + i] = 1;
        return Tensor.FromArray(eye, m, m);
    }

    /// <inheritdoc/>
    public long StateBytes => 0;
    /// <inheritdoc/>
    public IEnumerable<(string Name, Tensor Tensor)> StateTensors() => [];
    /// <inheritdoc/>
    public void LoadState(IReadOnlyDictionary<string, Tensor> state, string prefix, long refreshCount, IBackend backend) { }
    /// <inheritdoc/>
    public void Dispose() { }
    internal int Columns => n;
}
