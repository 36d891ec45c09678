namespace TensorLite.Optim.Projected;

/// <summary>P = I: the gradient passes through unchanged (full rank). With the AdamW inner optimizer and scale 1 this
/// is AdamW.</summary>
public sealed class IdentityProjector(int m, int n) : IProjector
{
    public ProjectionSide Side => ProjectionSide.Left;
    public int Rank => m;
    public bool IsIdentity => true;
    public long RefreshCount => 0;
    public bool IsRefreshDue(long step) => false;
    public void Refresh(Tensor g, long step) { }
    public Tensor Project(Tensor g) => g.Detach();
    public Tensor ProjectBack(Tensor n) => n.Detach();

    public Tensor BasisMatrix()
    {
        var eye = new float[m * m];
        for (int i = 0; i < m; i++) eye[i * m + i] = 1;
        return Tensor.FromArray(eye, m, m);
    }

    public long StateBytes => 0;
    public IEnumerable<(string Name, Tensor Tensor)> StateTensors() => [];
    public void LoadState(IReadOnlyDictionary<string, Tensor> state, string prefix, long refreshCount, IBackend backend) { }
    public void Dispose() { }
    internal int Columns => n;
}
