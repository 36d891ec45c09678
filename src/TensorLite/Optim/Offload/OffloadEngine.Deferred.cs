namespace TensorLite.Optim.Offload;

/// <summary>
/// The deferred part of the overlapped schedule (<c>--offload-schedule deferred</c>): the layers nearest the input
/// finish their backward last, so their host updates cannot hide behind the backward of the layers below; instead
/// their device phase (copy back and apply) waits for the next forward and lands just before the layer runs
/// (<see cref="LandDeferred"/>), while the host works through them in the order that forward needs them. Each update's
/// floating-point work is unchanged, and every update lands before anything reads its parameter again, so the
/// deferred schedule gives the serial one's parameters bit for bit. Anything that reads the weights outside a training
/// forward (evaluation, a checkpoint, the end of the run) calls <see cref="Flush"/> first.
/// </summary>
public sealed partial class OffloadEngine
{
    private readonly Dictionary<string, int> _deferStage = new();
    private readonly List<Pending> _deferred = new();

    /// <summary>Defers the device phase of <paramref name="name"/>'s updates into the next forward, to land at the start
    /// of forward stage <paramref name="stage"/> (≥ 0; the trainer numbers the embedding 0 and decoder layer i as i + 1).
    /// Applies only when the engine overlaps.</summary>
    public void DeferToForward(string name, int stage)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(stage);
        _deferStage[name] = stage;
    }

    /// <summary>The parameters whose updates are deferred into the next forward, with their stages.</summary>
    public IReadOnlyDictionary<string, int> DeferredStages => _deferStage;

    /// <summary>Updates submitted but not yet applied on the device because they wait for the next forward.</summary>
    public int DeferredCount => _deferred.Count;

    private int DeferredStage(string name) => _deferStage.TryGetValue(name, out int stage) ? stage : EndOfStep;

    /// <summary>Lands the deferred updates of forward stages up to <paramref name="stage"/>: waits for their host
    /// phases and applies them on the device, lowest stage first (a stage that never ran cannot hold its updates back).
    /// The model calls this at the start of each stage of a forward.</summary>
    public void LandDeferred(int stage)
    {
        if (_deferred.Count == 0) return;
        var due = _deferred.Where(w => w.Stage <= stage).OrderBy(w => w.Stage).ThenBy(w => w.Sequence).ToArray();
        if (due.Length == 0) return;
        _deferred.RemoveAll(w => w.Stage <= stage);
        Complete(due, OffloadLane.DeferredApply);
    }

    /// <summary>Applies every pending update, those of the current step and the deferred ones, so the device holds
    /// fully updated weights and the host state is at rest (before an evaluation, a checkpoint, the end of a run).</summary>
    public void Flush()
    {
        Drain();
        LandDeferred(int.MaxValue);
    }
}
