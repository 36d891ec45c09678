namespace TensorLite.Optim;

/// <summary>Updates a set of parameters from their accumulated gradients.</summary>
public abstract class Optimizer
{
    protected Optimizer(IEnumerable<Tensor> parameters)
    {
        Parameters = parameters.ToArray();
        foreach (var p in Parameters)
            if (!p.RequiresGrad)
                throw new TensorLiteException($"Parameter {p.Describe()} does not require gradients; an optimizer has nothing to update.");
    }

    public IReadOnlyList<Tensor> Parameters { get; }

    /// <summary>Learning rate of the next step (schedules set it before each step).</summary>
    public float LearningRate { get; set; }

    /// <summary>Number of steps taken so far.</summary>
    public long StepCount { get; protected set; }

    /// <summary>Applies one update from the parameters' current gradients (parameters without a gradient are skipped).</summary>
    public abstract void Step();

    public void ZeroGrad()
    {
        foreach (var p in Parameters) p.ZeroGrad();
    }

    /// <summary>Bytes of optimizer state held for all parameters.</summary>
    public abstract long StateBytes { get; }
}
