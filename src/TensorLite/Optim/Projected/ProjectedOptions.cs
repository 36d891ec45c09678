using TensorLite.LinearAlgebra;

namespace TensorLite.Optim.Projected;

/// <summary>
/// The composition a <see cref="ProjectedOptimizer"/> runs: a projector (the plug-in <see cref="Projector"/>, which
/// owns its kind's settings; <see cref="Rank"/> or <see cref="Density"/>, <see cref="UpdateGap"/>, <see cref="Side"/>),
/// an inner optimizer on the projected gradient (<see cref="Inner"/>, AdamW by default), a residual rule, a scale α and
/// the moment policy at refresh. The named presets, with each method's defaults, are static methods in
/// ProjectedOptions.Presets.cs (<see cref="GaLore"/>, <see cref="Osd"/>, <see cref="Grass"/>, <see cref="Frugal"/>,
/// <see cref="AdamW"/>).
/// </summary>
public sealed partial record ProjectedOptions
{
    /// <summary>A label for logs ("galore", "osd", …).</summary>
    public string Method { get; init; } = "custom";

    /// <summary>The peak learning rate (non-negative; default 10⁻³); schedules scale it per step.</summary>
    public float LearningRate { get; init; } = 1e-3f;
    /// <summary>Decoupled weight decay, applied to every parameter as AdamW does: p ← (1 − lr·wd)·p − lr·update.</summary>
    public float WeightDecay { get; init; }

    /// <summary>The projector plug-in: its kind, its own settings, how it is created and what it keeps.</summary>
    public ProjectorFactory Projector { get; init; } = new SvdProjectorFactory();

    /// <summary>The projector's kind; setting it selects that kind's factory with its default settings.</summary>
    public ProjectionKind Projection { get => Projector.Kind; init => Projector = ProjectorFactory.Default(value); }

    /// <summary>The projection rank r, clamped to min(m, n) per parameter (ignored when <see cref="Density"/> is set).</summary>
    public int Rank { get; init; } = 128;
    /// <summary>FRUGAL's density ρ ∈ [0, 1]: each projected parameter gets rank round(ρ·min(m, n)).</summary>
    public float? Density { get; init; }
    /// <summary>Recompute the projection every this many steps of the parameter (T); OSD updates every step regardless.</summary>
    public int UpdateGap { get; init; } = 200;
    /// <summary>α: the projected update is α·back(N).</summary>
    public float Scale { get; init; } = 1f;
    /// <summary>Which side of each gradient is reduced (default Auto: GaLore's std rule); <see cref="ProjectionSide.Both"/>
    /// is GaLore's "full" (two-sided) projection, offered by the SVD kinds (<see cref="ProjectorFactory.CanProjectBothSides"/>);
    /// kinds that are always two-sided ignore it.</summary>
    public ProjectionSide Side { get; init; } = ProjectionSide.Auto;
    /// <summary>When the rank reaches min(m, n), use the identity instead of a full-rank rotation (so FRUGAL's ρ = 1 is AdamW).</summary>
    public bool FullRankAsIdentity { get; init; }

    /// <summary>What happens to the inner optimizer's moments when the basis changes (default: kept as they
    /// are).</summary>
    public MomentPolicy OnRefresh { get; init; } = MomentPolicy.Keep;
    /// <summary>The rule for the part of the gradient outside the projection (default: dropped, as GaLore
    /// does).</summary>
    public ResidualRule Residual { get; init; } = ResidualRule.Drop;
    /// <summary>The state-free part's learning-rate multiplier on top of <see cref="Scale"/> (its step is lr·α·ResidualScale,
    /// FRUGAL's inactive_lr_scale).</summary>
    public float ResidualScale { get; init; } = 1f;

    // Shorthands for settings that belong to one projector kind: they read and write its factory, so the kind must be
    // selected first; setting one for another kind throws rather than being silently dropped.

    /// <summary>How a sparse projector picks rows or columns (<see cref="SparseProjectorFactory.Selection"/>).</summary>
    public RowSelection Selection
    {
        get => (Projector as SparseProjectorFactory)?.Selection ?? RowSelection.TopNorm;
        init => Projector = Projector is SparseProjectorFactory f ? f with { Selection = value } : throw NotThisKind(nameof(Selection));
    }

    /// <summary>OSD: whether P is re-orthonormalized after each update (<see cref="OnlinePcaProjectorFactory.Orthonormalize"/>).</summary>
    public bool OsdOrthonormalize => Projector is OnlinePcaProjectorFactory { Orthonormalize: true };

    /// <summary>The randomized SVD's oversampling (<see cref="SvdProjectorFactory.Oversampling"/>).</summary>
    public int RsvdOversampling
    {
        get => (Projector as SvdProjectorFactory)?.Oversampling ?? 0;
        init => Projector = Projector is SvdProjectorFactory f ? f with { Oversampling = value } : throw NotThisKind(nameof(RsvdOversampling));
    }

    /// <summary>The randomized SVD's power iterations (<see cref="SvdProjectorFactory.PowerIterations"/>).</summary>
    public int RsvdPowerIterations
    {
        get => (Projector as SvdProjectorFactory)?.PowerIterations ?? 0;
        init => Projector = Projector is SvdProjectorFactory f ? f with { PowerIterations = value } : throw NotThisKind(nameof(RsvdPowerIterations));
    }

    private ArgumentException NotThisKind(string setting) =>
        new($"{setting} is a setting of another projector kind than {Projection}; select the projection first.", setting);

    /// <summary>The inner optimizer, which owns its hyper-parameters (AdamW's betas and ε); null means AdamW with the
    /// default ones.</summary>
    public IInnerOptimizer? Inner { get; init; }

    internal IInnerOptimizer ResolveInner() => Inner ?? new AdamWInner();

    /// <summary>The dtype a stored basis (SVD, randomized SVD, random orthonormal) is kept in: float32, or bfloat16 to
    /// halve projector memory (the trainer uses the weights' dtype, as GaLore does). OSD's basis is trained and stays
    /// float32.</summary>
    public DType BasisDType { get; init; } = DType.Float32;

    /// <summary>Seeds the optimizer's generator (random projections, sampled selections, randomized SVD sketches).</summary>
    public ulong Seed { get; init; }

    /// <summary>Dense parameters more than twice this many elements long (LLaMA-7B's embedding and LM head have 131M) are
    /// updated this many elements at a time when the inner state allows it, so the float32 gradient and direction exist
    /// for one range (16 MiB each by default) instead of the whole matrix. The result is the same bit for bit. 0 (or any
    /// value below the state's granule) updates every parameter whole.</summary>
    public int DenseRangeElements { get; init; } = 1 << 22;

    /// <summary>Which parameters are projected, from their name and shape; null means <see cref="DefaultShouldProject"/>.
    /// The others get the dense inner optimizer (AdamW).</summary>
    public Func<string, int[], bool>? ShouldProject { get; init; }

    /// <summary>The default: 2-D parameters whose names contain "self_attn." or "mlp." (LLaMA's attention and MLP
    /// weights); embeddings, norms and the LM head stay dense.</summary>
    public static bool DefaultShouldProject(string name, int[] shape) =>
        shape.Length == 2 && (name.Contains("self_attn.", StringComparison.Ordinal) || name.Contains("mlp.", StringComparison.Ordinal));

    /// <summary>Projects every 2-D parameter (for models whose names are not LLaMA's).</summary>
    public static bool AllMatrices(string name, int[] shape) => shape.Length == 2;

    internal bool Projects(string name, int[] shape) => (ShouldProject ?? DefaultShouldProject)(name, shape);

    /// <summary>The resolved side (Left or Right) for a [m, n] parameter: <see cref="ProjectionSide.Auto"/> is GaLore's
    /// "std" (right when m ≥ n), <see cref="ProjectionSide.Reverse"/> its "reverse_std" (left when m ≥ n),
    /// <see cref="ProjectionSide.Both"/> its "full". A two-sided projector kind resolves to <see cref="ProjectionSide.Both"/>
    /// whatever <see cref="Side"/> says.</summary>
    public ProjectionSide SideFor(int m, int n) => Projector.IsTwoSided ? ProjectionSide.Both : Side switch
    {
        ProjectionSide.Left or ProjectionSide.Right or ProjectionSide.Both => Side,
        ProjectionSide.Reverse => m >= n ? ProjectionSide.Left : ProjectionSide.Right,
        _ => m >= n ? ProjectionSide.Right : ProjectionSide.Left,
    };

    /// <summary>The rank a [m, n] projected parameter gets: 0 means no inner state (residual rule only), min(m, n) with
    /// the identity projection means full-rank AdamW.</summary>
    public int RankFor(int m, int n)
    {
        int full = Math.Min(m, n);
        if (Projection is ProjectionKind.Identity or ProjectionKind.WholeMatrix) return full;
        if (Density is float rho) return (int)Math.Round(rho * full, MidpointRounding.AwayFromZero);
        return Math.Min(Rank, full);
    }

    /// <summary>Whether a [m, n] projected parameter uses the identity projector.</summary>
    public bool IsIdentityFor(int m, int n) =>
        Projection == ProjectionKind.Identity
        || (FullRankAsIdentity && Projection != ProjectionKind.WholeMatrix && RankFor(m, n) == Math.Min(m, n));

    /// <summary>Checks the options; throws an argument exception with one sentence on the first problem.</summary>
    public ProjectedOptions Validate()
    {
        if (!(LearningRate >= 0)) throw new ArgumentOutOfRangeException(nameof(LearningRate), "The learning rate must be non-negative.");
        ArgumentNullException.ThrowIfNull(Projector);
        if (!float.IsFinite(WeightDecay)) throw new ArgumentOutOfRangeException(nameof(WeightDecay), "The weight decay must be finite.");
        if (Density is float rho && !(rho >= 0 && rho <= 1)) throw new ArgumentOutOfRangeException(nameof(Density), $"The density ρ must be in [0, 1], got {rho}.");
        if (Density == null && Projection != ProjectionKind.Identity && Rank < 1)
            throw new ArgumentOutOfRangeException(nameof(Rank), $"The projection rank must be at least 1, got {Rank}.");
        if (UpdateGap < 1) throw new ArgumentOutOfRangeException(nameof(UpdateGap), $"The projection update gap must be at least 1 step, got {UpdateGap}.");
        if (DenseRangeElements < 0) throw new ArgumentOutOfRangeException(nameof(DenseRangeElements), $"The dense update range must be non-negative (0 = whole parameters), got {DenseRangeElements}.");
        if (!float.IsFinite(Scale)) throw new ArgumentOutOfRangeException(nameof(Scale), "The scale α must be finite.");
        if (!float.IsFinite(ResidualScale)) throw new ArgumentOutOfRangeException(nameof(ResidualScale), "The residual scale must be finite.");
        if (Side == ProjectionSide.Both && !Projector.IsTwoSided && !Projector.CanProjectBothSides)
            throw new ArgumentException($"The two-sided (full) projection is offered by the SVD projections only (svd, rsvd), not by {Projection}.", nameof(Side));
        Projector.Validate();
        // OSD's basis moves at the end of each step (after the update, as in its reference), not at a refresh, so there is
        // no old and new basis at the refresh to rotate the moments between.
        if (Projection == ProjectionKind.OnlinePca && OnRefresh == MomentPolicy.Rotate)
            throw new ArgumentException("OSD moves its basis after every update, so its moments are kept or reset, not rotated.", nameof(OnRefresh));
        if (Projector is SketchProjectorFactory sketch && Density == null && sketch.NonZeros > Rank)
            throw new ArgumentOutOfRangeException(nameof(Rank), $"The sketch's non-zeros per column d = {sketch.NonZeros} must not exceed the rank r = {Rank}.");
        return this;
    }
}
