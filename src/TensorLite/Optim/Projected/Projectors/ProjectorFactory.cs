namespace TensorLite.Optim.Projected;

/// <summary>
/// One kind of projection as a plug-in of <see cref="ProjectedOptimizer"/>: it owns that kind's settings, creates the
/// projector of each projected parameter and predicts the bytes that projector keeps, so the optimizer and the memory
/// planner never switch over kinds. A new method is a new factory with its <see cref="IProjector"/> (a folder under
/// Projectors/) and a preset in <see cref="ProjectedOptions"/>.
/// </summary>
public abstract record ProjectorFactory
{
    /// <summary>The kind this factory makes.</summary>
    public abstract ProjectionKind Kind { get; }

    /// <summary>The projector of one [<paramref name="m"/>, <paramref name="n"/>] parameter, reducing
    /// <paramref name="side"/> (Left or Right) to <paramref name="rank"/> (1 ≤ rank ≤ min(m, n)) and refreshed every
    /// <paramref name="updateGap"/> steps. <paramref name="generator"/> is the parameter's own random stream;
    /// <paramref name="basisDType"/> is the dtype a stored basis is kept in (kinds that train their basis ignore it).</summary>
    public abstract IProjector Create(ProjectionSide side, int m, int n, int rank, int updateGap, Generator generator, DType basisDType);

    /// <summary>The bytes the projector <see cref="Create"/> makes holds once it has been refreshed (its
    /// <see cref="IProjector.StateBytes"/>), from the shape alone.</summary>
    public abstract long PredictStateBytes(ProjectionSide side, int m, int n, int rank, DType basisDType);

    /// <summary>Whether the kind reduces both sides of G (<see cref="ProjectionSide.Both"/>): R is then [r, r].</summary>
    public virtual bool IsTwoSided => false;

    /// <summary>Whether the kind also offers a two-sided projection when <see cref="ProjectedOptions.Side"/> asks for
    /// <see cref="ProjectionSide.Both"/> (GaLore's "full"); a kind that is always two-sided need not say so.</summary>
    public virtual bool CanProjectBothSides => false;

    /// <summary>Whether the kind refreshes its projection at every step, whatever the update gap (OSD's online PCA): it
    /// never projects a gradient with a projection from an earlier step.</summary>
    public virtual bool RefreshesEveryStep => false;

    /// <summary>Checks this kind's own settings; throws an argument exception with one sentence on the first problem.</summary>
    public virtual void Validate() { }

    /// <summary>The length of the side a projector reduces: m for left, n for right, m + n for both (two bases).</summary>
    protected static long ProjectedLength(ProjectionSide side, int m, int n) => side switch
    {
        ProjectionSide.Left => m,
        ProjectionSide.Both => (long)m + n,
        _ => n,
    };

    /// <summary>The factory of <paramref name="kind"/> with that kind's default settings (what
    /// <see cref="ProjectedOptions.Projection"/> selects).</summary>
    public static ProjectorFactory Default(ProjectionKind kind) => kind switch
    {
        ProjectionKind.Identity => new IdentityProjectorFactory(),
        ProjectionKind.Svd => new SvdProjectorFactory(),
        ProjectionKind.RandomizedSvd => new SvdProjectorFactory(Randomized: true),
        ProjectionKind.RangeFinder => new RangeFinderProjectorFactory(),
        ProjectionKind.OnlinePca => new OnlinePcaProjectorFactory(),
        ProjectionKind.Sparse => new SparseProjectorFactory(),
        ProjectionKind.RandomOrthonormal => new RandomOrthonormalProjectorFactory(),
        ProjectionKind.WholeMatrix => new WholeMatrixProjectorFactory(),
        ProjectionKind.Sketch => new SketchProjectorFactory(),
        _ => throw new ArgumentOutOfRangeException(nameof(kind), $"Unknown projection kind {kind}."),
    };
}
