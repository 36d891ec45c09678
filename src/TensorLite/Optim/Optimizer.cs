namespace TensorLite.Optim;

/// <summary>Updates a set of parameters from their accumulated gradients.</summary>
public abstract class Optimizer
{
    /// <summary>Takes <paramref name="parameters"/> in order (their index keys the state); each must require
    /// gradients.</summary>
    protected Optimizer(IEnumerable<Tensor> parameters)
    {
        Parameters = parameters.ToArray();
        foreach (var p in Parameters)
            if (!p.RequiresGrad)
                throw new TensorLiteException($"Parameter {p.Describe()} does not require gradients; an optimizer has nothing to update.");
    }

    /// <summary>The parameters this optimizer updates, in the order given; state entries are keyed by this
    /// index.</summary>
    public IReadOnlyList<Tensor> Parameters { get; }

    /// <summary>Learning rate of the next step (schedules set it before each step).</summary>
    public float LearningRate { get; set; }

    /// <summary>When set, bfloat16 parameters are written back with stochastic rounding keyed by (this seed, step,
    /// parameter index), so updates smaller than half a bf16 ulp survive on average; float32 parameters ignore it.</summary>
    public ulong? StochasticRoundingSeed { get; set; }

    /// <summary>The rounding of the parameter at <paramref name="index"/> in the current step.</summary>
    protected ParamRounding RoundingFor(int index) =>
        StochasticRoundingSeed is ulong seed ? ParamRounding.Stochastic(seed, StepCount, index) : ParamRounding.Nearest;

    /// <summary>Number of steps taken so far.</summary>
    public long StepCount { get; protected set; }

    /// <summary>Applies one update from the parameters' current gradients (parameters without a gradient are skipped).</summary>
    public void Step()
    {
        BeginStep();
        for (int i = 0; i < Parameters.Count; i++) StepParameter(i);
    }

    /// <summary>
    /// Starts an update: counts the step and fixes its hyper-parameters (the learning rate). Then
    /// <see cref="StepParameter"/> updates each parameter, in any order — per-layer training calls it from a gradient
    /// hook as soon as that parameter's gradient is final, during backward. Every parameter's update depends only on
    /// its own gradient and state, so the result does not depend on the order.
    /// </summary>
    public virtual void BeginStep()
    {
        StepCount++;
        StepLearningRate = LearningRate;
    }

    /// <summary>The learning rate of the step <see cref="BeginStep"/> started: every parameter of a step is updated with
    /// it, even if <see cref="LearningRate"/> is set again while per-layer updates are running.</summary>
    protected float StepLearningRate { get; private set; }

    /// <summary>Updates the parameter at <paramref name="index"/> from its gradient (none: nothing happens), after
    /// <see cref="BeginStep"/>. The gradient is left in place; the caller may free it.</summary>
    public void StepParameter(int index)
    {
        var p = Parameters[index];
        if (!p.HasGradient) return;
        var master = _masters?[index];
        if (p.Grad != null) Update(index, master ?? p, p.Grad);
        else UpdateFactored(index, master ?? p, p.FactoredGrad!);
        if (master != null) p.Backend.Copy(master, p); // rounded to nearest into the parameter's dtype
    }

    /// <summary>Applies this optimizer's rule for the parameter at <paramref name="index"/> to <paramref name="target"/>:
    /// the parameter itself, or its float32 master copy.</summary>
    protected abstract void Update(int index, Tensor target, Tensor grad);

    /// <summary>The update from a gradient kept as factors (<see cref="Tensor.FactoredGrad"/>). By default the dense
    /// gradient is formed and <see cref="Update"/> applies; projected optimizers compute what they need from the factors.</summary>
    protected virtual void UpdateFactored(int index, Tensor target, Autograd.FactoredGradient grad)
    {
        using var noGrad = Autograd.GradMode.NoGrad();
        using var dense = grad.ToDense(Parameters[index].DType);
        Update(index, target, dense);
    }

    private Tensor?[]? _masters;

    /// <summary>Whether non-float32 parameters are updated through float32 master copies.</summary>
    public bool HasMasterWeights => _masters != null;

    /// <summary>
    /// Keeps a float32 master copy of every non-float32 (bf16) parameter: updates are applied to the master and the
    /// parameter receives it rounded to nearest, so updates smaller than half a bf16 ulp accumulate instead of being
    /// lost. Costs 4 bytes per such parameter (counted as weights). Masters are saved with the optimizer state.
    /// </summary>
    public void EnableMasterWeights()
    {
        if (_masters != null) return;
        using var noGrad = Autograd.GradMode.NoGrad();
        _masters = Parameters.Select(p => p.DType == DType.Float32 ? null
            : p.To(DType.Float32).Persist().Tag(Memory.MemoryCategory.Weights)).ToArray();
    }

    /// <summary>Drops every parameter's gradient, dense or factored, before the next backward pass.</summary>
    public void ZeroGrad()
    {
        foreach (var p in Parameters) p.ZeroGrad();
    }

    /// <summary>Bytes of optimizer state held for all parameters.</summary>
    public abstract long StateBytes { get; }

    /// <summary>The state to checkpoint: this optimizer's, keyed "{parameter index}.{state name}" (e.g. "3.exp_avg"),
    /// and the master weights, keyed "master.{parameter index}".</summary>
    public IEnumerable<(string Name, Tensor Tensor)> StateTensors()
    {
        foreach (var entry in OwnStateTensors()) yield return entry;
        if (_masters == null) yield break;
        for (int i = 0; i < _masters.Length; i++)
            if (_masters[i] is Tensor m) yield return ($"master.{i}", m);
    }

    /// <summary>Restores state saved by <see cref="StateTensors"/> (values are copied in) and the step count. A
    /// checkpoint without master weights (written without them) starts them from the parameters.</summary>
    public void LoadState(IReadOnlyDictionary<string, Tensor> state, long stepCount)
    {
        LoadOwnState(state, stepCount);
        if (_masters == null) return;
        using var noGrad = Autograd.GradMode.NoGrad();
        for (int i = 0; i < _masters.Length; i++)
        {
            if (_masters[i] is not Tensor m) continue;
            if (state.ContainsKey($"master.{i}")) CopyStateInto(state, $"master.{i}", m);
            else m.Backend.Copy(Parameters[i], m);
        }
    }

    /// <summary>The subclass's own state (without master weights), keyed "{parameter index}.{state name}"; the tensors
    /// stay owned by the optimizer.</summary>
    protected abstract IEnumerable<(string Name, Tensor Tensor)> OwnStateTensors();

    /// <summary>Replaces the subclass's own state with the entries of <paramref name="state"/> it wrote (values copied
    /// in) and sets <see cref="StepCount"/> to <paramref name="stepCount"/>.</summary>
    protected abstract void LoadOwnState(IReadOnlyDictionary<string, Tensor> state, long stepCount);

    /// <summary>Copies the saved tensor at <paramref name="key"/> into <paramref name="destination"/>, checking its shape.
    /// Values keep the destination's dtype: the same dtype is copied bit for bit (codes, indices, counters), a different
    /// floating-point dtype is converted, anything else is refused. Goes through host memory, so the checkpoint (loaded on
    /// the CPU) may fill state on any backend.</summary>
    internal static void CopyStateInto(IReadOnlyDictionary<string, Tensor> state, string key, Tensor destination)
    {
        if (!state.TryGetValue(key, out var saved))
            throw new TensorLiteException($"The optimizer checkpoint has no '{key}' entry; it was written by a different optimizer or model.");
        if (!ShapeMath.SameShape(saved.Shape, destination.Shape))
            throw new TensorLiteException($"Optimizer state '{key}' has shape {ShapeMath.Format(saved.Shape)} but {ShapeMath.Format(destination.Shape)} is needed.");
        if (saved.DType != destination.DType && !(saved.DType.IsFloatingPoint() && destination.DType.IsFloatingPoint()))
            throw new TensorLiteException($"Optimizer state '{key}' is {saved.DType.Name()} but {destination.DType.Name()} is needed.");
        using var noGrad = Autograd.GradMode.NoGrad();
        using var converted = saved.DType == destination.DType ? saved.ContiguousNoGrad() : saved.To(destination.DType);
        var bytes = new byte[(long)converted.Numel * converted.DType.SizeInBytes()];
        converted.Backend.CopyToHost(converted, bytes);
        destination.Backend.CopyFromHost(bytes, destination);
    }
}
