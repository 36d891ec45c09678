using TensorLite.Autograd;
using TensorLite.Memory;
using TensorLite.Optim.Offload;

namespace TensorLite.Optim.Projected;

/// <summary>
/// The host-offloaded inner optimizer's schedule (<see cref="HostOffloadedInner"/>): when its engine overlaps, a
/// parameter's update is split where the inner optimizer runs — the device part before (projection, copy to the
/// host) now, the host update on the engine's worker, the device part after (copy back, back-projection, the update
/// of W) when the engine drains at the end of the step. Otherwise each update runs whole, as without offload.
/// </summary>
public sealed partial class ProjectedOptimizer
{
    /// <summary>The offload engine when the inner optimizer's state lives on the host, else null.</summary>
    public OffloadEngine? Offload => (_inner as HostOffloadedInner)?.Engine;

    /// <summary>Whether updates are split around an overlapped host update. Master weights are copied into the
    /// parameter right after its update, so with them every update runs whole.</summary>
    private bool DefersUpdates => Offload is { Overlap: true } && !HasMasterWeights;

    /// <summary>
    /// R's inner direction, then <paramref name="apply"/> of it on the device: at once, or (overlapped offload) the
    /// host update queued and <paramref name="apply"/> run when the engine drains, in a workspace scope of its own.
    /// <paramref name="apply"/> may use only tensors that outlive the step (the parameter, the projector), since the
    /// step's temporaries are gone by then.
    /// </summary>
    private void WithDirection(Slot s, Tensor r, IBackend device, Action<Tensor> apply)
    {
        if (!DefersUpdates)
        {
            using var direction = InnerDirection(s, r, device);
            apply(direction);
            return;
        }
        s.Inner ??= _inner.CreateState(r.ShapeArray, device);
        var state = (HostOffloadedState)s.Inner;
        state.Label = s.Name;
        long innerStep = ++s.InnerSteps;
        var engine = Offload!;
        int[] shape = r.ShapeArray;
        engine.OnDevice(s.Name, OffloadLane.ToHost, () => state.SendGradient(r));
        engine.Submit(s.Name, () => state.HostDirection(innerStep), () => InStepScope(() =>
        {
            using var direction = Tensor.Empty(shape, DType.Float32, device);
            state.ReceiveDirection(direction);
            apply(direction);
        }));
    }

    /// <summary>A dense parameter's fused update by an offloaded state, split when the engine overlaps: gradient to
    /// the host now, the host update on the worker, the updated weights back when the engine drains. False when the
    /// update is not split (the caller runs it whole).</summary>
    private bool TryDeferDense(Slot s, Tensor p, Tensor grad32, float lr, float wd, long step, ParamRounding rounding)
    {
        if (!DefersUpdates || s.Inner is not HostOffloadedState state) return false;
        state.Label = s.Name;
        var engine = Offload!;
        engine.OnDevice(s.Name, OffloadLane.ToHost, () => state.SendForApply(p, grad32));
        long count = p.Numel;
        engine.Submit(s.Name, () => state.HostApply(count, lr, wd, step, rounding), () => state.ReceiveParameter(p));
        return true;
    }

    /// <summary>Runs <paramref name="action"/> without recording, its temporaries counted as workspace and freed at the end.</summary>
    private static void InStepScope(Action action)
    {
        using (GradMode.NoGrad())
        using (MemoryLedger.Categorize(MemoryCategory.Workspace))
        using (TensorScope.Enter())
            action();
    }
}
