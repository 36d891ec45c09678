using TensorLite.Autograd;
using TensorLite.Memory;
using TensorLite.Optim.Projected;

namespace TensorLite.Optim.Lora;

/// <summary>
/// LoRA kept merged: the model's weight W of an adapted matrix always holds W₀ + s·B·A (s = α/r), so the forward pass,
/// the checkpoints (model.safetensors is a plain LLaMA) and every tool that reads weights need nothing LoRA-specific.
/// The gradient G the model computes for W is the gradient for W₀ + s·B·A, so the chain rule gives the adapters' exact
/// gradients, ∂L/∂A = s·Bᵀ·G and ∂L/∂B = s·G·Aᵀ; after the inner optimizer steps A and B, W moves by s·(B'A' − BA) and W₀
/// never changes. A starts as PEFT's Kaiming-uniform (U(±1/√n)), B as zeros, so W starts as W₀.
/// What this costs: the full [m, n] gradient of W exists during backward (as for every method here), where a separate
/// adapter module would only need the adapters' gradients; the optimizer state is A, B and their moments.
/// </summary>
public sealed class LoraOptimizer : Optimizer, IDisposable
{
    private sealed class Slot
    {
        public required string Name;
        public int Rank;
        public Tensor? A, B;
        public IInnerState? InnerA, InnerB, Dense;
    }

    private readonly Slot[] _slots;
    private readonly IInnerOptimizer _inner;

    /// <summary>LoRA over <paramref name="namedParameters"/>: the matrices <paramref name="options"/> selects get
    /// adapters A (random) and B (zero), the rest train densely. Adapted weights must be float32 and 2-D.</summary>
    public LoraOptimizer(IEnumerable<(string Name, Tensor Parameter)> namedParameters, LoraOptions options)
        : this(namedParameters.ToArray(), options) { }

    private LoraOptimizer((string Name, Tensor Parameter)[] named, LoraOptions options) : base(named.Select(x => x.Parameter))
    {
        Options = options.Validate();
        LearningRate = options.LearningRate;
        _inner = options.Inner ?? new AdamWInner();
        _slots = new Slot[named.Length];
        for (int i = 0; i < named.Length; i++)
        {
            var (name, p) = named[i];
            var slot = new Slot { Name = name };
            if (options.Adapts(name, p.ShapeArray))
            {
                if (p.Rank != 2) throw new TensorLiteException($"LoRA adapts 2-D weights, but the predicate selected '{name}' with shape {ShapeMath.Format(p.Shape)}.");
                if (p.DType != DType.Float32)
                    throw new TensorLiteException($"LoRA merges its adapters into float32 weights; '{name}' is {p.DType.Name()} (use --weights fp32).");
                int m = p.Shape[0], n = p.Shape[1];
                slot.Rank = options.RankFor(m, n);
                using (GradMode.NoGrad())
                using (MemoryLedger.Categorize(MemoryCategory.OptimizerState))
                {
                    slot.A = InitialA(slot.Rank, n, i, restart: 0, p.Backend).Persist();
                    slot.B = Tensor.Zeros([m, slot.Rank], DType.Float32, p.Backend).Persist();
                }
            }
            _slots[i] = slot;
        }
    }

    /// <summary>The options this optimizer was created with (validated).</summary>
    public LoraOptions Options { get; }

    /// <summary>A [r, n] ~ U(±1/√n) (PEFT's Kaiming-uniform), drawn from the seed, the parameter and the restart number, so
    /// a restart needs no generator state in the checkpoint.</summary>
    private Tensor InitialA(int r, int n, int index, long restart, IBackend backend)
    {
        var gen = new Generator(unchecked(Options.Seed ^ 0x10_4A_5EEDUL ^ ((ulong)index + 1) * 0x9E3779B97F4A7C15UL ^ (ulong)restart * 0xC2B2AE3D27D4EB4FUL));
        float bound = 1f / MathF.Sqrt(n);
        return Tensor.Rand([r, n], gen, -bound, bound, backend);
    }

    /// <summary>ReLoRA's restart, at the first step of every period after the first (StepCount = K·j + 1): the adapters
    /// are already merged into W, so B goes to zero (W is then the new base), A is drawn afresh and the adapters' moments
    /// are zeroed or pruned (<see cref="LoraOptions.RestartStates"/>). The bias-correction count goes on (the optimizer's
    /// step count), as torch's Adam keeps its "step" through the reference's optimizer_reset.</summary>
    private void RestartIfDue(Slot s, int index)
    {
        if (Options.RestartEvery == 0 || StepCount <= 1 || (StepCount - 1) % Options.RestartEvery != 0) return;
        long restart = (StepCount - 1) / Options.RestartEvery;
        using (var fresh = InitialA(s.Rank, s.A!.Shape[1], index, restart, s.A.Backend)) s.A.Backend.Copy(fresh, s.A);
        using (var zeros = Tensor.Zeros(s.B!.Shape, DType.Float32, s.B.Backend)) s.B.Backend.Copy(zeros, s.B);
        foreach (var (state, which) in new[] { (s.InnerA, 0UL), (s.InnerB, 1UL) })
        {
            if (state == null) continue;
            if (Options.RestartStates == LoraRestartStates.Zero) { state.Reset(); continue; }
            ulong moment = 0;
            foreach (var (_, t) in state.StateTensors())
            {
                if (Options.RestartStates == LoraRestartStates.Magnitude) MomentPruning.Magnitude(t, Options.RestartPruneRatio);
                else MomentPruning.Random(t, Options.RestartPruneRatio, PruningGenerator(index, restart, which * 2 + moment));
                moment++;
            }
        }
    }

    /// <summary>The random mask's draws, from the seed, the parameter, the restart and the tensor, so that a resumed run
    /// prunes the same entries without generator state in the checkpoint.</summary>
    private Generator PruningGenerator(int index, long restart, ulong tensor) =>
        new(unchecked(Options.Seed ^ 0x9B0E_57A7EUL ^ ((ulong)index + 1) * 0x9E3779B97F4A7C15UL ^ (ulong)restart * 0xC2B2AE3D27D4EB4FUL ^ (tensor + 1) * 0x165667B19E3779F9UL));

    /// <summary>s = α/r of the parameter at <paramref name="index"/> (0 when it has no adapter).</summary>
    public float ScaleOf(int index) => _slots[index].Rank == 0 ? 0f : Options.Alpha / _slots[index].Rank;

    /// <summary>The adapters (A [r, n], B [m, r]) of the parameter at <paramref name="index"/>, or nulls.</summary>
    public (Tensor? A, Tensor? B) AdaptersOf(int index) => (_slots[index].A, _slots[index].B);

    /// <inheritdoc/>
    protected override void Update(int index, Tensor p, Tensor grad)
    {
        var s = _slots[index];
        if (!p.IsContiguous) throw new TensorLiteException($"LoRA updates parameters in place and needs contiguous ones; '{s.Name}' is a strided view.");
        float lr = StepLearningRate;
        using var noGrad = GradMode.NoGrad();
        if (s.A == null)
        {
            s.Dense ??= Tagged(_inner.CreateState(p.ShapeArray, p.Backend));
            s.Dense.Apply(p, grad, lr, Options.WeightDecay, StepCount, RoundingFor(index));
            return;
        }
        using var scope = TensorScope.Enter();
        using var workspace = MemoryLedger.Categorize(MemoryCategory.Workspace);
        RestartIfDue(s, index);
        float scale = Options.Alpha / s.Rank;
        using var g = grad.DType == DType.Float32 ? grad.ContiguousNoGrad() : grad.To(DType.Float32);
        using var bt = s.B!.T;
        using var at = s.A.T;
        using var gA0 = bt.MatMul(g);
        using var gA = gA0 * scale;
        using var gB0 = g.MatMul(at);
        using var gB = gB0 * scale;
        using var before = s.B.MatMul(s.A);
        s.InnerA ??= Tagged(_inner.CreateState(s.A.ShapeArray, p.Backend));
        s.InnerB ??= Tagged(_inner.CreateState(s.B.ShapeArray, p.Backend));
        s.InnerA.Apply(s.A, gA, lr, Options.WeightDecay, StepCount, ParamRounding.Nearest);
        s.InnerB.Apply(s.B, gB, lr, Options.WeightDecay, StepCount, ParamRounding.Nearest);
        using var after = s.B.MatMul(s.A);
        using var change = before - after;
        p.Backend.ApplyUpdate(p, change, 1f, scale, ParamRounding.Nearest); // W ← W − s·(BA − B'A') = W + s·(B'A' − BA)
    }

    private static IInnerState Tagged(IInnerState state)
    {
        foreach (var (_, t) in state.StateTensors()) t.Tag(MemoryCategory.OptimizerState);
        return state;
    }

    /// <inheritdoc/>
    public override long StateBytes => OwnStateTensors().Sum(x => x.Tensor.Numel * (long)x.Tensor.DType.SizeInBytes());

    /// <summary>The closed form of <see cref="StateBytes"/> once every parameter has stepped: per adapted [m, n] matrix
    /// A and B (4·r·(m + n) bytes) and the inner state of both, the dense parameters' inner state.</summary>
    public static long PredictStateBytes(IEnumerable<(string Name, int[] Shape)> shapes, LoraOptions options)
    {
        var inner = options.Inner ?? new AdamWInner();
        long total = 0;
        foreach (var (name, shape) in shapes)
        {
            if (!options.Adapts(name, shape)) { total += inner.PredictStateBytes(shape); continue; }
            int m = shape[0], n = shape[1], r = options.RankFor(m, n);
            total += 4L * r * (m + n) + inner.PredictStateBytes([r, n]) + inner.PredictStateBytes([m, r]);
        }
        return total;
    }

    /// <inheritdoc/>
    protected override IEnumerable<(string Name, Tensor Tensor)> OwnStateTensors()
    {
        for (int i = 0; i < _slots.Length; i++)
        {
            var s = _slots[i];
            if (s.A != null)
            {
                yield return ($"{i}.lora_A", s.A);
                yield return ($"{i}.lora_B", s.B!);
            }
            foreach (var (state, prefix) in new[] { (s.InnerA, $"{i}.A."), (s.InnerB, $"{i}.B."), (s.Dense, $"{i}.") })
                if (state != null)
                    foreach (var (name, t) in state.StateTensors()) yield return ($"{prefix}{name}", t);
        }
    }

    /// <inheritdoc/>
    protected override void LoadOwnState(IReadOnlyDictionary<string, Tensor> state, long stepCount)
    {
        using var noGrad = GradMode.NoGrad();
        for (int i = 0; i < _slots.Length; i++)
        {
            var s = _slots[i];
            var p = Parameters[i];
            foreach (var x in new[] { s.InnerA, s.InnerB, s.Dense }) x?.Dispose();
            s.InnerA = s.InnerB = s.Dense = null;
            if (s.A != null)
            {
                if (!state.ContainsKey($"{i}.lora_A") || !state.ContainsKey($"{i}.lora_B"))
                    throw new TensorLiteException($"The optimizer checkpoint has no LoRA adapters for '{s.Name}'; it was written by another optimizer.");
                CopyStateInto(state, $"{i}.lora_A", s.A);
                CopyStateInto(state, $"{i}.lora_B", s.B!);
                if (state.ContainsKey($"{i}.A.exp_avg") || state.Keys.Any(k => k.StartsWith($"{i}.A.", StringComparison.Ordinal)))
                {
                    s.InnerA = Tagged(LoadInner(state, $"{i}.A.", s.A.ShapeArray, p.Backend));
                    s.InnerB = Tagged(LoadInner(state, $"{i}.B.", s.B!.ShapeArray, p.Backend));
                }
            }
            else if (state.Keys.Any(k => k.StartsWith($"{i}.", StringComparison.Ordinal)))
                s.Dense = Tagged(LoadInner(state, $"{i}.", p.ShapeArray, p.Backend));
        }
        StepCount = stepCount;
    }

    private IInnerState LoadInner(IReadOnlyDictionary<string, Tensor> state, string prefix, int[] shape, IBackend backend)
    {
        var inner = _inner.CreateState(shape, backend);
        inner.LoadState(state, prefix);
        return inner;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        foreach (var s in _slots)
        {
            s.A?.Dispose();
            s.B?.Dispose();
            foreach (var x in new[] { s.InnerA, s.InnerB, s.Dense }) x?.Dispose();
        }
    }
}
