using TensorLite.LinearAlgebra;

namespace TensorLite.Optim.Projected;

/// <summary>
/// A run's optimizer as typed values: the method, its variant (projector and residual rule), the state precision and
/// the numbers. <see cref="Parse"/> reads the command line's words, the one place they are parsed. A value left null
/// takes the method's default from its preset (<see cref="ProjectedOptions.GaLore"/>, …), so the defaults live with
/// the methods; a value a method does not use is ignored (GRASS and FRUGAL have no PCA; OSD refreshes every step and uses the update gap only for its PCA step size 1/T).
/// </summary>
public sealed record OptimizerSpec
{
    /// <summary>The method (default AdamW).</summary>
    public OptimizerMethod Method { get; init; } = OptimizerMethod.AdamW;
    /// <summary>The precision of the optimizer's moments (default float32).</summary>
    public OptimizerStates States { get; init; } = OptimizerStates.Fp32;
    /// <summary>Elements per block of 8-bit states (<see cref="OptimizerStates.EightBit"/> only); null takes
    /// <see cref="Numerics.BlockwiseQuantizer.DefaultBlockSize"/>.</summary>
    public int? EightBitBlockSize { get; init; }

    private int BlockSizeOfStates => EightBitBlockSize ?? Numerics.BlockwiseQuantizer.DefaultBlockSize;

    // The run's optimizer numbers; null takes the method's (ProjectedOptions.HyperParametersOf).
    /// <summary>The peak learning rate; null: the method's default.</summary>
    public float? LearningRate { get; init; }
    /// <summary>Decoupled weight decay; null: the method's default.</summary>
    public float? WeightDecay { get; init; }
    /// <summary>The inner optimizer's β1; null: the method's default.</summary>
    public float? Beta1 { get; init; }
    /// <summary>The inner optimizer's β2 (unused by Adafactor); null: the method's default.</summary>
    public float? Beta2 { get; init; }
    /// <summary>The inner optimizer's ε (unused by Adafactor); null: the method's default.</summary>
    public float? Eps { get; init; }

    /// <summary>The numbers the run uses: those given, else the method's defaults.</summary>
    public MethodHyperParameters HyperParameters
    {
        get
        {
            var d = ProjectedOptions.HyperParametersOf(Method);
            return new(LearningRate ?? d.LearningRate, WeightDecay ?? d.WeightDecay, Beta1 ?? d.Beta1, Beta2 ?? d.Beta2, Eps ?? d.Eps);
        }
    }
    /// <summary>Seeds the projected optimizer's generators.</summary>
    public ulong Seed { get; init; }

    /// <summary>The projection rank (galore, osd, grass).</summary>
    public int? Rank { get; init; }
    /// <summary>Steps between projection refreshes (galore, grass, frugal).</summary>
    public int? UpdateGap { get; init; }
    /// <summary>The update scale α (galore, osd, grass).</summary>
    public float? Scale { get; init; }
    /// <summary>FRUGAL's density ρ.</summary>
    public float? Density { get; init; }

    /// <summary>GaLore's basis: <see cref="ProjectionKind.Svd"/>, <see cref="ProjectionKind.RandomizedSvd"/> or
    /// <see cref="ProjectionKind.RangeFinder"/>.</summary>
    public ProjectionKind? GaLoreBasis { get; init; }
    /// <summary>OSD: the online PCA's optimizer.</summary>
    public OnlinePcaOptimizer? PcaOptimizer { get; init; }
    /// <summary>OSD: re-orthonormalize P by QR after each update.</summary>
    public bool PcaOrthonormalize { get; init; }
    /// <summary>GRASS: how rows or columns are picked.</summary>
    public RowSelection? Selection { get; init; }
    /// <summary>FRUGAL: the state-full subspace.</summary>
    public FrugalSubspace? Subspace { get; init; }
    /// <summary>FRUGAL: the rule for the rest of the gradient.</summary>
    public ResidualRule? Residual { get; init; }
    /// <summary>FRUGAL: the state-free part's lr multiplier on top of the scale (the reference's inactive_lr_scale).</summary>
    public float? ResidualScale { get; init; }
    /// <summary>FRUGAL's whole-matrix mode: the order matrices become state-full in.</summary>
    public MatrixOrder? Order { get; init; }
    /// <summary>GRASS: whether sampled rows are drawn with replacement (else without).</summary>
    public bool? WithReplacement { get; init; }
    /// <summary>OSD: the online PCA's peak learning rate (null: 1/T).</summary>
    public float? PcaLearningRate { get; init; }
    /// <summary>LoRA's α (the adapters' scale is α/r); null: <see cref="Lora.LoraOptions.Alpha"/>'s default.</summary>
    public float? LoraAlpha { get; init; }
    /// <summary>LoRA: ReLoRA-style merge-and-restart every this many steps; null or 0: never.</summary>
    public int? LoraRestart { get; init; }
    /// <summary>LoRA: what a restart does to the adapters' moments; null: zero them.</summary>
    public Lora.LoraRestartStates? LoraRestartStates { get; init; }
    /// <summary>LoRA: the fraction of moment entries a pruning restart zeroes; null: 0.9.</summary>
    public float? LoraRestartPrune { get; init; }
    /// <summary>LSP: non-zeros d per sketch column.</summary>
    public int? SketchNonZeros { get; init; }
    /// <summary>LSP: the relative reconstruction error at or above which a check refits the sketches.</summary>
    public float? SketchFitThreshold { get; init; }
    /// <summary>LSP: the learning rate of the sketch fit's Adam.</summary>
    public float? SketchFitLearningRate { get; init; }
    /// <summary>LSP: Adam iterations per sketch refit.</summary>
    public int? SketchFitIterations { get; init; }
    /// <summary>Which side a projector reduces (GaLore's proj_type: std, reverse_std, left, right); null: std.</summary>
    public ProjectionSide? Side { get; init; }

    /// <summary>The words of <see cref="ParseSide"/>, in GaLore's spelling.</summary>
    public static IReadOnlyList<string> SideWords { get; } = ["std", "reverse_std", "left", "right", "full"];

    /// <summary>GaLore's proj_type word as a side: std (right when m ≥ n), reverse_std, left, right, or full (both sides,
    /// R = U_rᵀ·G·V_r; SVD projections only).</summary>
    public static ProjectionSide ParseSide(string word) => word.Trim().ToLowerInvariant() switch
    {
        "std" => ProjectionSide.Auto,
        "reverse_std" => ProjectionSide.Reverse,
        "left" => ProjectionSide.Left,
        "right" => ProjectionSide.Right,
        "full" => ProjectionSide.Both,
        _ => throw new ArgumentException($"The projection side is one of {string.Join(", ", SideWords)}, not '{word}'.", nameof(word)),
    };

    /// <summary>ReLoRA's restart treatment of the moments: zero (the reference's reset), random or magnitude (pruning).</summary>
    public static Lora.LoraRestartStates ParseRestartStates(string word) => word.Trim().ToLowerInvariant() switch
    {
        "zero" => Lora.LoraRestartStates.Zero,
        "random" => Lora.LoraRestartStates.Random,
        "magnitude" => Lora.LoraRestartStates.Magnitude,
        _ => throw new ArgumentException($"A LoRA restart's moments are zero, random or magnitude, not '{word}'.", nameof(word)),
    };

    /// <summary>FRUGAL's block order word: random, ascending, descending or mirror.</summary>
    public static MatrixOrder ParseOrder(string word) => word.Trim().ToLowerInvariant() switch
    {
        "random" => MatrixOrder.Random,
        "ascending" => MatrixOrder.Ascending,
        "descending" => MatrixOrder.Descending,
        "mirror" => MatrixOrder.Mirror,
        _ => throw new ArgumentException($"FRUGAL's matrix order is random, ascending, descending or mirror, not '{word}'.", nameof(word)),
    };

    /// <summary>
    /// The spec named by command-line words: <paramref name="method"/> is adamw | galore | osd | grass | frugal | lsp | lora;
    /// <paramref name="projection"/> is, for galore: svd | rsvd | range; for grass: norm2 | norm | uniform (sampled with replacement, "+norepl" without) | topnorm; for
    /// frugal: matrices | blocks | columns | random | svd | rsvd; for osd: adamw | sgd (the online PCA's optimizer), optionally "+qr";
    /// <paramref name="residual"/> (frugal) is signsgd | sgd; <paramref name="states"/> is one of
    /// <see cref="ProjectedOptions.StateWords"/>. Words a method does not use are ignored; an unknown word throws an
    /// <see cref="ArgumentException"/> with one sentence.
    /// </summary>
    public static OptimizerSpec Parse(string method, string? projection = null, string? residual = null, string states = "fp32")
    {
        string proj = (projection ?? "").Trim().ToLowerInvariant();
        var spec = new OptimizerSpec { States = ParseStates(states) };
        return (method ?? "").Trim().ToLowerInvariant() switch
        {
            "adamw" or "identity" => spec,
            "galore" => spec with
            {
                Method = OptimizerMethod.GaLore,
                GaLoreBasis = proj switch
                {
                    "" or "svd" => ProjectionKind.Svd,
                    "rsvd" or "randomized" => ProjectionKind.RandomizedSvd,
                    "range" => ProjectionKind.RangeFinder,
                    _ => throw new ArgumentException($"GaLore's projection is svd, rsvd or range, not '{projection}'.", nameof(projection)),
                },
            },
            "osd" => spec with
            {
                Method = OptimizerMethod.Osd,
                PcaOrthonormalize = proj.EndsWith("+qr", StringComparison.Ordinal),
                PcaOptimizer = proj.Replace("+qr", "") switch
                {
                    "" or "adam" or "adamw" => OnlinePcaOptimizer.Adam,
                    "sgd" => OnlinePcaOptimizer.Sgd,
                    _ => throw new ArgumentException($"OSD's projection optimizer is adamw or sgd (optionally +qr), not '{projection}'.", nameof(projection)),
                },
            },
            "grass" => spec with
            {
                Method = OptimizerMethod.Grass,
                WithReplacement = !proj.EndsWith("+norepl", StringComparison.Ordinal),
                Selection = proj.Replace("+norepl", "") switch
                {
                    "topnorm" or "top" => RowSelection.TopNorm,
                    "norm" or "multinomial" => RowSelection.NormProportional,
                    "" or "norm2" => RowSelection.NormSquaredProportional,
                    "uniform" => RowSelection.Uniform,
                    _ => throw new ArgumentException($"GRASS's selection is norm2, norm, uniform (optionally +norepl) or topnorm, not '{projection}'.", nameof(projection)),
                },
            },
            "frugal" => spec with
            {
                Method = OptimizerMethod.Frugal,
                Subspace = proj switch
                {
                    "" or "matrices" => FrugalSubspace.Matrices,
                    "blocks" => FrugalSubspace.Blocks,
                    "columns" => FrugalSubspace.Columns,
                    "random" => FrugalSubspace.Random,
                    "svd" => FrugalSubspace.Svd,
                    "rsvd" => FrugalSubspace.RandomizedSvd,
                    _ => throw new ArgumentException($"FRUGAL's subspace is matrices, blocks, columns, random, svd or rsvd, not '{projection}'.", nameof(projection)),
                },
                Residual = (residual ?? "signsgd").Trim().ToLowerInvariant() switch
                {
                    "signsgd" or "sign" => ResidualRule.SignSgd,
                    "sgd" => ResidualRule.Sgd,
                    _ => throw new ArgumentException($"FRUGAL's residual rule is signsgd or sgd, not '{residual}'.", nameof(residual)),
                },
            },
            "lora" => spec with { Method = OptimizerMethod.Lora },
            "lsp" => spec with { Method = OptimizerMethod.Lsp },
            _ => throw new ArgumentException($"Unknown optimizer method '{method}'; expected adamw, galore, osd, grass, frugal, lsp or lora.", nameof(method)),
        };
    }

    /// <summary>The command-line word of <paramref name="method"/>, the inverse of <see cref="Parse"/>'s method word.</summary>
    public static string WordOf(OptimizerMethod method) => method switch
    {
        OptimizerMethod.AdamW => "adamw",
        OptimizerMethod.GaLore => "galore",
        OptimizerMethod.Osd => "osd",
        OptimizerMethod.Grass => "grass",
        OptimizerMethod.Frugal => "frugal",
        OptimizerMethod.Lora => "lora",
        OptimizerMethod.Lsp => "lsp",
        _ => throw new ArgumentOutOfRangeException(nameof(method), $"Unknown optimizer method {method}."),
    };

    /// <summary>The state precision named by one of <see cref="ProjectedOptions.StateWords"/>.</summary>
    public static OptimizerStates ParseStates(string states) => states switch
    {
        "fp32" => OptimizerStates.Fp32,
        "8bit" => OptimizerStates.EightBit,
        "factored" => OptimizerStates.Factored,
        _ => throw new ArgumentException($"Unknown optimizer states '{states}'; choose one of {string.Join(", ", ProjectedOptions.StateWords)}.", nameof(states)),
    };

    /// <summary>The inner optimizer of a state precision. Adafactor takes <paramref name="beta1"/> as its first moment's
    /// decay (none when 0); its second moment has its own decay schedule and ε, so <paramref name="beta2"/> and
    /// <paramref name="eps"/> do not apply to it.</summary>
    public static IInnerOptimizer CreateInner(OptimizerStates states, float beta1, float beta2, float eps,
        int eightBitBlockSize = Numerics.BlockwiseQuantizer.DefaultBlockSize) => states switch
    {
        OptimizerStates.Fp32 => new AdamWInner(beta1, beta2, eps),
        OptimizerStates.EightBit => new AdamW8bitInner(beta1, beta2, eps, blockSize: eightBitBlockSize),
        OptimizerStates.Factored => new AdafactorInner(beta1 == 0f ? null : beta1),
        _ => throw new ArgumentOutOfRangeException(nameof(states), $"Unknown optimizer states {states}."),
    };

    /// <summary>The projected optimizer's options: the method's preset, then the values this spec sets, the seed and the
    /// inner optimizer (which alone receives the betas and ε).</summary>
    public ProjectedOptions ToOptions()
    {
        if (Method == OptimizerMethod.Lora) throw new InvalidOperationException("LoRA is not a projected optimizer; use ToLoraOptions.");
        var h = HyperParameters;
        var o = Method switch
        {
            OptimizerMethod.AdamW => ProjectedOptions.AdamW(h.LearningRate, h.WeightDecay),
            OptimizerMethod.GaLore => GaLore(),
            OptimizerMethod.Osd => Osd(),
            OptimizerMethod.Grass => Grass(),
            OptimizerMethod.Frugal => Frugal(),
            OptimizerMethod.Lsp => Lsp(),
            _ => throw new ArgumentOutOfRangeException(nameof(Method), $"Unknown optimizer method {Method}."),
        };
        return (o with { Seed = Seed, Inner = CreateInner(States, h.Beta1, h.Beta2, h.Eps, BlockSizeOfStates) }).Validate();
    }

    private ProjectedOptions GaLore()
    {
        var o = ProjectedOptions.GaLore(randomizedSvd: GaLoreBasis == ProjectionKind.RandomizedSvd, learningRate: HyperParameters.LearningRate, weightDecay: HyperParameters.WeightDecay);
        o = o with { Rank = Rank ?? o.Rank, UpdateGap = UpdateGap ?? o.UpdateGap, Scale = Scale ?? o.Scale, Side = Side ?? o.Side };
        return GaLoreBasis == ProjectionKind.RangeFinder ? o with { Method = "galore-range", Projector = new RangeFinderProjectorFactory() } : o;
    }

    private ProjectedOptions Osd()
    {
        var o = ProjectedOptions.Osd(orthonormalize: PcaOrthonormalize, learningRate: HyperParameters.LearningRate, weightDecay: HyperParameters.WeightDecay);
        var pca = (OnlinePcaProjectorFactory)o.Projector;
        return o with
        {
            Rank = Rank ?? o.Rank, UpdateGap = UpdateGap ?? o.UpdateGap, Scale = Scale ?? o.Scale, Side = Side ?? o.Side,
            Projector = pca with { Optimizer = PcaOptimizer ?? pca.Optimizer, LearningRate = PcaLearningRate ?? pca.LearningRate },
        };
    }

    private ProjectedOptions Grass()
    {
        var d = ProjectedOptions.Grass(learningRate: HyperParameters.LearningRate, weightDecay: HyperParameters.WeightDecay);
        var o = ProjectedOptions.Grass(Rank ?? d.Rank, Selection ?? d.Selection, UpdateGap ?? d.UpdateGap, Scale ?? d.Scale,
            d.LearningRate, d.WeightDecay, WithReplacement ?? true, Side ?? d.Side);
        return o;
    }

    private ProjectedOptions Lsp()
    {
        var d = ProjectedOptions.Lsp();
        var sketch = (SketchProjectorFactory)d.Projector;
        return ProjectedOptions.Lsp(Rank ?? d.Rank, SketchNonZeros ?? sketch.NonZeros, UpdateGap ?? d.UpdateGap,
            SketchFitThreshold ?? sketch.FitThreshold, SketchFitLearningRate ?? sketch.FitLearningRate, SketchFitIterations ?? sketch.FitIterations,
            HyperParameters.LearningRate, HyperParameters.WeightDecay);
    }

    private ProjectedOptions Frugal()
    {
        var o = ProjectedOptions.Frugal(learningRate: HyperParameters.LearningRate, weightDecay: HyperParameters.WeightDecay);
        var projector = Subspace is FrugalSubspace s ? ProjectedOptions.FrugalProjector(s) : o.Projector;
        if (projector is WholeMatrixProjectorFactory whole && Order is MatrixOrder order) projector = whole with { Order = order };
        return o with
        {
            Density = Density ?? o.Density, UpdateGap = UpdateGap ?? o.UpdateGap, Residual = Residual ?? o.Residual,
            Scale = Scale ?? o.Scale, ResidualScale = ResidualScale ?? o.ResidualScale, Side = Side ?? o.Side,
            Projector = projector,
        };
    }

    /// <summary>The LoRA baseline's options: its defaults, then the values this spec sets.</summary>
    public Lora.LoraOptions ToLoraOptions()
    {
        var h = HyperParameters;
        var d = new Lora.LoraOptions();
        return new Lora.LoraOptions
        {
            Rank = Rank ?? d.Rank, Alpha = LoraAlpha ?? d.Alpha, LearningRate = h.LearningRate, WeightDecay = h.WeightDecay,
            Inner = CreateInner(States, h.Beta1, h.Beta2, h.Eps, BlockSizeOfStates), Seed = Seed, RestartEvery = LoraRestart ?? d.RestartEvery,
            RestartStates = LoraRestartStates ?? d.RestartStates, RestartPruneRatio = LoraRestartPrune ?? d.RestartPruneRatio,
        }.Validate();
    }

    /// <summary>The optimizer this spec describes over <paramref name="namedParameters"/>: dense <see cref="AdamW"/> for
    /// AdamW with float32 states, else a <see cref="ProjectedOptimizer"/> whose stored bases are kept in
    /// <paramref name="basisDType"/>.</summary>
    public Optimizer Create(IEnumerable<(string Name, Tensor Parameter)> namedParameters, DType basisDType)
    {
        if (Method == OptimizerMethod.AdamW && States == OptimizerStates.Fp32)
        {
            var h = HyperParameters;
            return new AdamW(namedParameters.Select(x => x.Parameter), h.LearningRate, h.Beta1, h.Beta2, h.Eps, h.WeightDecay);
        }
        if (Method == OptimizerMethod.Lora) return new Lora.LoraOptimizer(namedParameters, ToLoraOptions());
        return new ProjectedOptimizer(namedParameters, ToOptions() with { BasisDType = basisDType });
    }
}
