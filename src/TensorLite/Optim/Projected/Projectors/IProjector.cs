using TensorLite.Autograd;

namespace TensorLite.Optim.Projected;

/// <summary>
/// Maps one 2-D parameter's gradient G [m, n] to a small R and an update for R back to [m, n]. A left projector
/// (<see cref="ProjectionSide.Left"/>) has a basis B [m, r] and R = Bᵀ·G [r, n], back(N) = B·N; a right one has
/// B [n, r] and R = G·B [m, r], back(N) = N·Bᵀ. Sparse projectors use a selection (one-hot) B without forming it.
/// The optimizer calls <see cref="Refresh"/> before projecting whenever <see cref="IsRefreshDue"/> says so.
/// </summary>
public interface IProjector : IDisposable
{
    /// <summary>Left, Right, or Both for a two-sided projector (never Auto or Reverse).</summary>
    ProjectionSide Side { get; }

    /// <summary>r: the size of the projected dimension.</summary>
    int Rank { get; }

    /// <summary>Whether back(Project(G)) = G exactly (P = I): the residual is then zero.</summary>
    bool IsIdentity { get; }

    /// <summary>How many times <see cref="Refresh"/> has run (checkpointed by the optimizer).</summary>
    long RefreshCount { get; }

    /// <summary>Whether the basis must be recomputed at this 0-based step of the parameter.</summary>
    bool IsRefreshDue(long step);

    /// <summary>Recomputes the basis from the current gradient.</summary>
    void Refresh(Tensor g, long step);

    /// <summary>R, a new tensor the caller owns.</summary>
    Tensor Project(Tensor g);

    /// <summary>R from a gradient kept as factors (G = dYᵀ·X), without forming G where the kind allows; a new float32
    /// tensor the caller owns. Equals <see cref="Project"/> of the dense G up to float32 rounding. The default forms G.</summary>
    Tensor ProjectFactored(FactoredGradient g)
    {
        using var dense = g.ToDense(DType.Float32);
        return Project(dense);
    }

    /// <summary><see cref="Refresh"/> from a gradient kept as factors. The default forms G (exact SVD, norm-based
    /// selections); kinds that only need products with G compute them through the factors.</summary>
    void RefreshFactored(FactoredGradient g, long step)
    {
        using var dense = g.ToDense(DType.Float32);
        Refresh(dense, step);
    }

    /// <summary>The full-size [m, n] image of an R-shaped tensor, a new tensor the caller owns.</summary>
    Tensor ProjectBack(Tensor n);

    /// <summary>Called once per step after the step's update has been applied (after the last <see cref="ProjectBack"/>),
    /// also when the update itself runs later (offloaded states). Nothing by default; OSD steps its basis here, where its
    /// reference steps it (at the end of project_back), so a step projects and projects back with the same basis.</summary>
    void EndStep() { }

    /// <summary>The basis B [dim, r] as a new dense tensor (one-hot columns for a selection), for changes of basis
    /// and tests.</summary>
    Tensor BasisMatrix();

    /// <summary>The basis of one reduced side as a new dense tensor: <see cref="BasisMatrix()"/> for a one-sided projector
    /// (<paramref name="side"/> must be its <see cref="Side"/>); a two-sided one (<see cref="ProjectionSide.Both"/>) has a
    /// left basis [m, r] and a right one [n, r].</summary>
    Tensor BasisMatrix(ProjectionSide side) =>
        side == Side ? BasisMatrix() : throw new ArgumentException($"This projector reduces the {Side} side, not {side}.", nameof(side));

    /// <summary>The bytes the projector's state holds (basis, indices, the moments of a trained basis); 0 until the first
    /// refresh.</summary>
    long StateBytes { get; }

    /// <summary>The state tensors, named by a suffix ("basis", "index", …). Empty before the first refresh.</summary>
    IEnumerable<(string Name, Tensor Tensor)> StateTensors();

    /// <summary>Restores the state saved by <see cref="StateTensors"/> (keys "{prefix}{suffix}") and the refresh count.</summary>
    void LoadState(IReadOnlyDictionary<string, Tensor> state, string prefix, long refreshCount, IBackend backend);
}
