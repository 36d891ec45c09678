using TensorLite.Autograd;

namespace TensorLite.Optim.Projected;

/// <summary>
/// Adafactor (Shazeer &amp; Stern 2018, "Adafactor: Adaptive Learning Rates with Sublinear Memory Cost",
/// arXiv:1804.04235) as an inner optimizer. For a tensor of two or more dimensions [..., m, n] the second moment is
/// factored: a row accumulator R [..., m] and a column accumulator C [..., n] of the mean of G² + ε1 over the last and
/// the second-to-last dimension, and V̂ = R·Cᵀ / mean(R) (the paper writes sums: R·Cᵀ / (1ᵀR); with means in R and C
/// the estimate is the same). 1-D (and 0-D) tensors keep a full V. The decay is β̂2_t = 1 − t^(−0.8), the update
/// U = G / sqrt(V̂) is clipped to RMS ≤ d (Û = U / max(1, RMS(U)/d)), and with β1 a first moment m ← β1·m + (1−β1)·Û
/// becomes the direction (no bias correction, as in the paper).
/// </summary>
/// <remarks>
/// <para>Learning rate: the external one (the optimizer's, set by the trainer's schedule) is used as is; the paper's
/// relative step size (ρ_t = min(10⁻², 1/√t) times the parameter's RMS) is not, so that Adafactor composes with
/// every method and schedule here. Weight decay is decoupled, as for AdamW.</para>
/// <para>Change of basis (<see cref="MomentPolicy.Rotate"/>): the first moment, if any, is rotated as in
/// <see cref="AdamWInner"/> (C·M, or M·Cᵀ for a right projection). The factored second moment is carried as the
/// factored form of (C∘C)·V̂, the rule AdamWInner applies to a full V: for a left projection (rows are basis
/// coordinates) R ← (C∘C)·R and C ← C·mean(R_new)/mean(R_old); for a right projection C ← (C∘C)·C and
/// R ← R·mean(C_new)/mean(C_old). (C∘C)·V̂ is still rank one, so this is exact for the estimate Adafactor uses, and
/// it keeps both accumulators non-negative and with equal means.</para>
/// <para>State bytes: 4·(numel/n + numel/m) for ≥ 2-D tensors, 4·numel for 1-D ones, plus 4·numel with a first
/// moment.</para>
/// </remarks>
public sealed class AdafactorInner : IInnerOptimizer
{
    /// <param name="beta1">The first moment's decay; null keeps no first moment (the paper's memory-lean default).</param>
    /// <param name="eps1">ε1, added to G² before the accumulators (the paper's 10⁻³⁰).</param>
    /// <param name="clipThreshold">d, the RMS above which the update is scaled down (the paper's 1).</param>
    /// <param name="decayRate">The exponent of β̂2_t = 1 − t^(−decayRate) (the paper's 0.8).</param>
    public AdafactorInner(float? beta1 = null, float eps1 = 1e-30f, float clipThreshold = 1f, float decayRate = 0.8f)
    {
        if (beta1 is float b && b is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(beta1), "beta1 must be in [0, 1) or null.");
        if (!(eps1 > 0)) throw new ArgumentOutOfRangeException(nameof(eps1), "eps1 must be positive.");
        if (!(clipThreshold > 0)) throw new ArgumentOutOfRangeException(nameof(clipThreshold), "The clip threshold must be positive.");
        if (!(decayRate > 0 && decayRate <= 1)) throw new ArgumentOutOfRangeException(nameof(decayRate), "The decay rate must be in (0, 1].");
        Beta1 = beta1;
        Eps1 = eps1;
        ClipThreshold = clipThreshold;
        DecayRate = decayRate;
    }

    /// <summary>The first moment's decay; null when no first moment is kept.</summary>
    public float? Beta1 { get; }
    /// <summary>ε1, added to G² before it enters the accumulators.</summary>
    public float Eps1 { get; }
    /// <summary>d: updates with an RMS above it are scaled down to RMS d.</summary>
    public float ClipThreshold { get; }
    /// <summary>The exponent c of the second moment's decay β̂2_t = 1 − t^(−c), in (0, 1].</summary>
    public float DecayRate { get; }
    /// <inheritdoc/>
    public string Name => "adafactor";

    /// <summary>β̂2_t = 1 − t^(−decayRate); 0 at t = 1, so the first step sees only its own gradient.</summary>
    public float Beta2At(long step) => 1f - (float)Math.Pow(step, -DecayRate);

    /// <summary>Whether a tensor of this shape gets the factored second moment (two or more dimensions).</summary>
    public static bool IsFactored(ReadOnlySpan<int> shape) => shape.Length >= 2;

    /// <inheritdoc/>
    public IInnerState CreateState(int[] shape, IBackend backend) => new State(this, shape, backend);

    /// <inheritdoc/>
    public long PredictStateBytes(ReadOnlySpan<int> shape)
    {
        long numel = ShapeMath.Numel(shape);
        long second = numel;
        if (IsFactored(shape))
        {
            long lead = 1;
            for (int i = 0; i < shape.Length - 2; i++) lead *= shape[i];
            second = lead * (shape[^2] + shape[^1]);
        }
        return 4 * second + (Beta1 != null ? 4 * numel : 0);
    }

    private sealed class State : IInnerState
    {
        private readonly AdafactorInner _owner;
        private readonly int _rank;
        private readonly Tensor? _row, _col, _v, _m;

        public State(AdafactorInner owner, int[] shape, IBackend backend)
        {
            _owner = owner;
            _rank = shape.Length;
            if (IsFactored(shape))
            {
                _row = Tensor.Zeros(shape[..^1], DType.Float32, backend).Persist();
                _col = Tensor.Zeros([.. shape[..^2], shape[^1]], DType.Float32, backend).Persist();
            }
            else _v = Tensor.Zeros(shape, DType.Float32, backend).Persist();
            if (owner.Beta1 != null) _m = Tensor.Zeros(shape, DType.Float32, backend).Persist();
        }

        private IEnumerable<Tensor> All()
        {
            foreach (var t in new[] { _row, _col, _v, _m }) if (t != null) yield return t;
        }

        public long StateBytes => All().Sum(t => 4L * t.Numel);

        private static void Ema(Tensor state, Tensor x, float beta)
        {
            using var a = state * beta;
            using var b = x * (1f - beta);
            using var c = a + b;
            state.Backend.Copy(c, state);
        }

        public void Direction(Tensor grad, Tensor direction, long step)
        {
            using var noGrad = GradMode.NoGrad();
            // Each full-size temporary is disposed as soon as the next one exists (at 7B a dense [32000, 4096] matrix
            // makes every one of them 500 MiB); the ops and their order are those of the formulas above.
            float beta2 = _owner.Beta2At(step);
            Tensor vhat;
            using (var g2e = SquaredPlusEps(grad))
            {
                if (_row != null)
                {
                    using (var rowMean = g2e.Mean(_rank - 1)) Ema(_row, rowMean, beta2);
                    using (var colMean = g2e.Mean(_rank - 2)) Ema(_col!, colMean, beta2);
                }
                else Ema(_v!, g2e, beta2);
            }
            if (_row != null)
            {
                using var rMean = _row.Mean(_rank - 2, keepDim: true);
                using var rowN = _row / rMean;
                using var r = rowN.Unsqueeze(_rank - 1);
                using var c = _col!.Unsqueeze(_rank - 2);
                vhat = r * c;
            }
            else vhat = _v!.Alias();
            Tensor u;
            using (vhat)
            using (var inv = vhat.Rsqrt())
                u = grad * inv;
            using (u)
            {
                float rms;
                using (var u2 = u.Square())
                using (var mean = u2.Mean()) rms = MathF.Sqrt(mean.Item());
                float scale = 1f / MathF.Max(1f, rms / _owner.ClipThreshold);
                if (_m != null)
                {
                    float b1 = _owner.Beta1!.Value;
                    using (var a = _m * b1)
                    using (var b = u * ((1f - b1) * scale))
                    using (var next = a + b)
                        _m.Backend.Copy(next, _m);
                    direction.Backend.Copy(_m, direction);
                }
                else
                {
                    using var clipped = u * scale;
                    direction.Backend.Copy(clipped, direction);
                }
            }
        }

        /// <summary>G² + ε1, the quantity both accumulators average.</summary>
        private Tensor SquaredPlusEps(Tensor grad)
        {
            using var g2 = grad.Square();
            return g2.Affine(1f, _owner.Eps1);
        }

        /// <summary>The factored second moment needs every row and column of the gradient at once.</summary>
        public int RangeGranule => 0;

        public void Apply(Tensor param, Tensor grad, float learningRate, float weightDecay, long step, ParamRounding rounding, long offset = 0)
        {
            if (offset != 0)
                throw new InvalidOperationException("Adafactor updates a whole parameter at a time, not a range of it.");
            using var direction = Tensor.Empty(grad.Shape, DType.Float32, grad.Backend);
            Direction(grad, direction, step);
            param.Backend.ApplyUpdate(param, direction, 1f - learningRate * weightDecay, learningRate, rounding);
        }

        public void Reset()
        {
            foreach (var t in All()) t.Backend.Fill(t, 0);
        }

        public void ChangeBasis(Tensor change, ProjectionSide side)
        {
            using var noGrad = GradMode.NoGrad();
            if (_rank != 2)
                throw new TensorLiteException($"Adafactor can change the basis of a 2-D state only, not of a {_rank}-D one.");
            if (_m != null)
            {
                using var m2 = InnerMath.ChangeBasis(_m, change, side);
                _m.Backend.Copy(m2, _m);
            }
            using var c2 = change.Square();
            // Left: rows are basis coordinates, so the row accumulator rotates; right: the column accumulator does.
            var (rotated, other) = side == ProjectionSide.Right ? (_col!, _row!) : (_row!, _col!);
            float before = MeanOf(rotated);
            using (var asColumn = rotated.Reshape(rotated.Numel, 1))
            using (var next = c2.MatMul(asColumn))
                rotated.Backend.Copy(next, rotated);
            float after = MeanOf(rotated);
            if (before > 0)
            {
                using var scaled = other * (after / before);
                other.Backend.Copy(scaled, other);
            }
        }

        private static float MeanOf(Tensor t)
        {
            using var mean = t.Mean();
            return mean.Item();
        }

        public IEnumerable<(string Name, Tensor Tensor)> StateTensors()
        {
            if (_row != null) yield return ("exp_avg_sq_row", _row);
            if (_col != null) yield return ("exp_avg_sq_col", _col);
            if (_v != null) yield return ("exp_avg_sq", _v);
            if (_m != null) yield return ("exp_avg", _m);
        }

        public void LoadState(IReadOnlyDictionary<string, Tensor> state, string prefix)
        {
            foreach (var (name, t) in StateTensors()) Optimizer.CopyStateInto(state, prefix + name, t);
        }

        public void Dispose()
        {
            foreach (var t in All()) t.Dispose();
        }
    }
}
