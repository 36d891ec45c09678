using TensorLite.Optim.Projected;

namespace TensorLite.Optim.Offload;

/// <summary>
/// An inner optimizer whose state lives on the host (<see cref="OffloadEngine.Host"/>) while the parameters stay on
/// their device: every state it creates is a <see cref="HostOffloadedState"/> around <paramref name="inner"/>'s state,
/// created on the host backend. The projected optimizer sends it R (or a dense parameter's gradient); the host runs
/// the inner optimizer with its own (CPU SIMD) kernels; the direction (or the updated weights) comes back.
/// </summary>
public sealed class HostOffloadedInner(IInnerOptimizer inner, OffloadEngine engine) : IInnerOptimizer
{
    /// <summary>The inner optimizer that runs on the host.</summary>
    public IInnerOptimizer Inner { get; } = inner ?? throw new ArgumentNullException(nameof(inner));

    /// <summary>The engine that schedules the host updates and counts the bytes moved.</summary>
    public OffloadEngine Engine { get; } = engine ?? throw new ArgumentNullException(nameof(engine));

    /// <summary>The inner optimizer's name with "@host" ("adamw@host").</summary>
    public string Name => Inner.Name + "@host";

    /// <summary>A zero state for gradients of <paramref name="shape"/> on the host; <paramref name="backend"/> is the
    /// device the gradients come from and the directions go to.</summary>
    public IInnerState CreateState(int[] shape, IBackend backend) =>
        new HostOffloadedState(Inner.CreateState(shape, Engine.Host), shape, Engine);

    /// <summary>The inner optimizer's state bytes (held on the host).</summary>
    public long PredictStateBytes(ReadOnlySpan<int> shape) => Inner.PredictStateBytes(shape);
}
