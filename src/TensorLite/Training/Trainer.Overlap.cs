using System.Diagnostics;
using TensorLite.Distributed;

namespace TensorLite.Training;

/// <summary>
/// The gradient sums of a data-parallel step (without --per-layer, which sums each gradient inside its own update).
/// Gradients go into <see cref="GradientBuckets"/> in the order the rank's last backward finishes them — for a LLaMA:
/// LM head, final norm, the last layer … the first, the embedding — then any parameter that backward did not reach, in
/// parameter order. That order follows from the model's graph (the autograd engine walks it in a fixed topological
/// order), so the buckets are the same on every rank and at every step, whatever the timing. With --allreduce-overlap
/// on, each gradient hook of the last micro-batch adds its gradient at once, and a full bucket is summed on the
/// communication thread while backward continues below it; the step waits for the rest before the loss sum and
/// clipping. With off, the hooks only record the order, and the same buckets are summed one after another after
/// backward — the same collectives on the same bits.
/// </summary>
public sealed partial class Trainer
{
    private GradientBuckets? _sums;
    private readonly List<int> _finishedOrder = [];
    private bool[] _added = [];
    private bool _hooksInstalled;
    private readonly Stopwatch _sumTail = new();
    private long _bucketsBeforeStep, _bucketsDuringBackward;

    /// <summary>The time the steps waited after backward for their gradient sums (the part of the all-reduce backward did
    /// not hide, with the packing and writing back of what was left), over the run so far.</summary>
    public TimeSpan GradientSumWait => _sumTail.Elapsed;

    /// <summary>The buckets whose sum started during backward, over the run so far (0 without overlap).</summary>
    public long GradientBucketsOverlapped => _bucketsDuringBackward;

    /// <summary>How the steps sum gradients, for the run's header.</summary>
    private string GradientSumSchedule => _sums == null ? "" :
        $"; buckets of {Options.AllReduceBucketMb:0.##} MiB, " + (_sums.Overlaps ? "overlapped with backward" : "after backward");

    /// <summary>Called once the run knows its ranks: a data-parallel step sums its gradients in buckets, in the order
    /// the gradient hooks see them finished.</summary>
    private void StartGradientSums()
    {
        if (World.WorldSize == 1 || Options.PerLayer) return;
        _sums = new GradientBuckets(World, Options.AllReduceBucketElements, Options.AllReduceOverlap);
        _added = new bool[Optimizer.Parameters.Count];
        if (!_hooksInstalled) InstallGradientHooks();
    }

    /// <summary>The tensor a rank sums for parameter <paramref name="index"/>: its projected gradient where the projected
    /// optimizer takes one (<see cref="Optim.Projected.ProjectedOptimizer.GradientToAllReduce"/>), else its dense one.</summary>
    private Tensor? GradientToSum(int index) =>
        _factored != null ? _factored.GradientToAllReduce(index) : Optimizer.Parameters[index].Grad;

    /// <summary>In a gradient hook of the rank's last micro-batch: the parameter's gradient is final (a factored one is
    /// folded by now). Adds it to the buckets at once with overlap, else records its place in the order.</summary>
    private void SumWhenReady(int index)
    {
        if (_sums == null || !_lastMicroBatch || _added[index]) return;
        _added[index] = true;
        if (_sums.Overlaps) _sums.Add(GradientToSum(index));
        else _finishedOrder.Add(index);
    }

    /// <summary>After the last backward: adds what is left in the order and waits until every gradient holds its sum.</summary>
    private void SumGradients()
    {
        _sumTail.Start();
        if (_sums!.Overlaps) _bucketsDuringBackward += _sums.BucketsStarted - _bucketsBeforeStep;
        try
        {
            foreach (int i in _finishedOrder) _sums.Add(GradientToSum(i));
            for (int i = 0; i < _added.Length; i++)
                if (!_added[i]) _sums.Add(GradientToSum(i)); // not reached by the last micro-batch: earlier ones' gradient
            _sums.Complete();
        }
        catch
        {
            _sums.Abandon();
            throw;
        }
        finally
        {
            _sumTail.Stop();
            _bucketsBeforeStep = _sums.BucketsStarted;
            _finishedOrder.Clear();
            Array.Clear(_added);
        }
    }
}
