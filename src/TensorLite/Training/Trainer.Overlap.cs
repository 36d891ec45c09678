using System.Diagnostics;
using TensorLite.Distributed;

namespace TensorLite.Training;

/// <summary>
/// The gradient sums of a data-parallel step (without --per-layer, which sums each gradient inside its own update).
/// Gradients go into <see cref="GradientBuckets"/> in a fixed order — the parameters last to first, the order in which a
/// LLaMA's backward finishes them (LM head, final norm, the last layer … the first, the embedding) — so the buckets are a
/// function of the model and the options alone, the same on every rank and at every step. With --allreduce-overlap on,
/// each gradient hook of the rank's last micro-batch adds every gradient that is ready in that order; a full bucket is
/// summed on the communication thread while backward continues below it, and the step waits for the rest before
/// clipping. A gradient that is ready before an earlier one in the order waits for it, and a parameter the last
/// micro-batch did not reach is added after backward: only when the buckets start changes, never what they hold. With
/// off, the same buckets are summed one after another after backward — the same collectives on the same bits.
/// </summary>
public sealed partial class Trainer
{
    private GradientBuckets? _sums;
    private int[] _sumOrder = [];
    private bool[] _sumReady = [];
    private int _sumNext;
    private bool _hooksInstalled;
    private readonly Stopwatch _sumTail = new();

    /// <summary>The time the steps waited after backward for their gradient sums (the part of the all-reduce backward did
    /// not hide, with the packing and writing back of what was left), over the run so far.</summary>
    public TimeSpan GradientSumWait => _sumTail.Elapsed;

    /// <summary>How the steps sum gradients, for the run's header.</summary>
    private string GradientSumSchedule => _sums == null ? "" :
        $"; buckets of {Options.AllReduceBucketMb:0.##} MiB, " + (_sums.Overlaps ? "overlapped with backward" : "after backward");

    /// <summary>Called once the run knows its ranks: a data-parallel step sums its gradients in buckets.</summary>
    private void StartGradientSums()
    {
        if (World.WorldSize == 1 || Options.PerLayer) return;
        _sums = new GradientBuckets(World, Options.AllReduceBucketElements, Options.AllReduceOverlap);
        _sumOrder = Enumerable.Range(0, Optimizer.Parameters.Count).Reverse().ToArray();
        _sumReady = new bool[_sumOrder.Length];
        if (Options.AllReduceOverlap && !_hooksInstalled) InstallGradientHooks();
    }

    /// <summary>The tensor a rank sums for parameter <paramref name="index"/>: its projected gradient where the projected
    /// optimizer takes one (<see cref="Optim.Projected.ProjectedOptimizer.GradientToAllReduce"/>), else its dense one.</summary>
    private Tensor? GradientToSum(int index) =>
        _factored != null ? _factored.GradientToAllReduce(index) : Optimizer.Parameters[index].Grad;

    /// <summary>In a gradient hook: on the rank's last micro-batch with overlap, marks the parameter's gradient final
    /// and adds every gradient that is now next in the order.</summary>
    private void SumWhenReady(int index)
    {
        if (_sums is not { Overlaps: true } || !_lastMicroBatch) return;
        _sumReady[index] = true;
        while (_sumNext < _sumOrder.Length && _sumReady[_sumOrder[_sumNext]]) _sums.Add(GradientToSum(_sumOrder[_sumNext++]));
    }

    /// <summary>After the last backward: adds what is left in the order and waits until every gradient holds its sum.</summary>
    private void SumGradients()
    {
        _sumTail.Start();
        try
        {
            while (_sumNext < _sumOrder.Length) _sums!.Add(GradientToSum(_sumOrder[_sumNext++]));
            _sums!.Complete();
        }
        catch
        {
            _sums!.Abandon();
            throw;
        }
        finally
        {
            _sumTail.Stop();
            _sumNext = 0;
            Array.Clear(_sumReady);
        }
    }
}
