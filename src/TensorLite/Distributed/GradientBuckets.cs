using System.Collections.Concurrent;
using System.Runtime.InteropServices;

namespace TensorLite.Distributed;

/// <summary>
/// Sums a sequence of tensors across the ranks, in place, one collective per bucket. The buckets depend only on the
/// sequence — the tensors' element counts in the order they are added — never on timing: tensors are packed greedily,
/// in order, into buckets of up to <see cref="BucketElements"/> float32 elements (a larger tensor is a bucket of its own).
/// Every rank that adds tensors of the same sizes in the same order therefore runs the same collectives on the same
/// element positions, and gets the same bits whether or not the sums overlap other work.
/// <para>
/// With <c>overlap</c>, a closed bucket is summed on a worker thread of this instance while the caller goes on (a
/// data-parallel step: the backward of the layers below); without it, the bucket is summed at once. Tensors are only
/// touched on the caller's thread — packed into a host buffer when their bucket closes, written back when its sum has
/// come back (checked at each <see cref="Add"/> and in <see cref="Complete"/>) — and the worker only calls the
/// communicator, on host buffers. MPI is initialized with MPI_THREAD_SERIALIZED, so while sums are in flight (between
/// the first <see cref="Add"/> of a sequence and its <see cref="Complete"/>) the caller must not call the communicator.
/// </para>
/// <para>
/// A communicator that sums on the device (<see cref="ICommunicator.CollectivesDevice"/>: NCCL) gets each bucket packed
/// into a float32 tensor of that device instead of a host buffer, summed on the caller's thread when the bucket closes
/// (the same buckets, in the same order), and no worker thread.
/// </para>
/// </summary>
public sealed class GradientBuckets : IDisposable
{
    /// <summary>At most this many closed buckets wait for their sum: adding more waits for the oldest, which bounds the
    /// host buffers in flight to about this many buckets.</summary>
    public const int MaxInFlight = 4;

    private readonly ICommunicator _world;
    private readonly List<Tensor> _open = [];
    private long _openElements;
    private readonly Queue<Bucket> _inFlight = new();
    private readonly List<float[]> _spareBuffers = [];
    private readonly BlockingCollection<Bucket>? _work;
    private readonly Thread? _worker;
    private readonly IBackend? _onDevice;

    /// <summary>Sums through <paramref name="world"/> in buckets of up to <paramref name="bucketElements"/> elements, on a
    /// worker thread when <paramref name="overlap"/>.</summary>
    public GradientBuckets(ICommunicator world, long bucketElements, bool overlap)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(bucketElements, 1);
        _world = world;
        BucketElements = bucketElements;
        _onDevice = world.CollectivesDevice;
        if (!overlap || _onDevice != null) return;
        _work = [];
        _worker = new Thread(SumBuckets) { IsBackground = true, Name = "TensorLite all-reduce" };
        _worker.Start();
    }

    /// <summary>The most float32 elements a bucket packs (unless one tensor alone is larger).</summary>
    public long BucketElements { get; }

    /// <summary>Whether sums run on the worker thread while the caller goes on.</summary>
    public bool Overlaps => _worker != null;

    /// <summary>Buckets closed and handed to the communicator so far, over the instance's life (the caller can tell how
    /// many of them started while it was still working, e.g. during backward).</summary>
    public long BucketsStarted { get; private set; }

    /// <summary>Buckets summed so far, over the instance's life.</summary>
    public long BucketsSummed { get; private set; }

    private sealed class Bucket(Tensor[] tensors, float[] host, int length)
    {
        public Tensor[] Tensors { get; } = tensors;
        public float[] Host { get; } = host;
        public int Length { get; } = length;
        public ManualResetEventSlim Summed { get; } = new();
        public Exception? Failure { get; set; }
    }

    /// <summary>The next tensor of the sequence (contiguous, floating point; null: none, skipped). Closes the open bucket
    /// first when the tensor would overflow it, and writes back the sums that have come back.</summary>
    public void Add(Tensor? tensor)
    {
        WriteBackFinished(wait: false);
        if (tensor == null) return;
        if (_open.Count > 0 && _openElements + tensor.Numel > BucketElements) Close();
        _open.Add(tensor);
        _openElements += tensor.Numel;
        if (_openElements >= BucketElements) Close(); // nothing more fits
    }

    /// <summary>Closes the last bucket, waits for every sum and writes it back: afterwards every added tensor holds its
    /// sum over the ranks, and the communicator is free for the caller again.</summary>
    public void Complete()
    {
        if (_open.Count > 0) Close();
        WriteBackFinished(wait: true);
    }

    /// <summary>Drops what was not summed yet and waits for the sums in flight without writing them back: after a failure
    /// in the middle of a sequence (the other ranks still run the collectives this rank started, so they come back).</summary>
    public void Abandon()
    {
        _open.Clear();
        _openElements = 0;
        while (_inFlight.TryDequeue(out var b)) b.Summed.Wait();
    }

    private void Close()
    {
        var tensors = _open.ToArray();
        int length = checked((int)_openElements);
        _open.Clear();
        _openElements = 0;
        if (_onDevice != null && tensors[0].Backend == _onDevice)
        {
            SumOnDevice(tensors, length);
            return;
        }
        // Host buffers are reused from step to step (the buckets have the same sizes at every step): the smallest that fits.
        int spare = -1;
        for (int i = 0; i < _spareBuffers.Count; i++)
            if (_spareBuffers[i].Length >= length && (spare < 0 || _spareBuffers[i].Length < _spareBuffers[spare].Length)) spare = i;
        var host = spare < 0 ? new float[length] : _spareBuffers[spare];
        if (spare >= 0) _spareBuffers.RemoveAt(spare);
        int offset = 0;
        foreach (var t in tensors)
        {
            ToHost(t, host.AsSpan(offset, (int)t.Numel));
            offset += (int)t.Numel;
        }
        var bucket = new Bucket(tensors, host, length);
        BucketsStarted++;
        if (_work == null)
        {
            _world.AllReduceSum(host.AsSpan(0, length));
            WriteBack(bucket);
            return;
        }
        if (_inFlight.Count >= MaxInFlight) WriteBackOldest();
        _inFlight.Enqueue(bucket);
        _work.Add(bucket);
    }

    /// <summary>Packs the bucket into one float32 tensor of the device, sums it there and writes the sums back (a 16-bit
    /// tensor receives them rounded to nearest by the backend's own conversion, as from host buffers).</summary>
    private void SumOnDevice(Tensor[] tensors, int length)
    {
        BucketsStarted++;
        using var bucket = Tensor.Empty([length], DType.Float32, _onDevice);
        int offset = 0;
        foreach (var t in tensors)
        {
            CheckSummable(t);
            using var part = bucket.Narrow(0, offset, t.Numel).View(t.ShapeArray);
            _onDevice!.Copy(t, part);
            offset += t.Numel;
        }
        _world.AllReduceSumOnDevice(bucket);
        offset = 0;
        foreach (var t in tensors)
        {
            using var part = bucket.Narrow(0, offset, t.Numel).View(t.ShapeArray);
            _onDevice!.Copy(part, t);
            offset += t.Numel;
        }
        BucketsSummed++;
    }

    private void SumBuckets()
    {
        foreach (var bucket in _work!.GetConsumingEnumerable())
        {
            try { _world.AllReduceSum(bucket.Host.AsSpan(0, bucket.Length)); }
            catch (Exception e) { bucket.Failure = e; }
            bucket.Summed.Set();
        }
    }

    private void WriteBackFinished(bool wait)
    {
        while (_inFlight.TryPeek(out var b) && (wait || b.Summed.IsSet)) WriteBackOldest();
    }

    private void WriteBackOldest()
    {
        var bucket = _inFlight.Dequeue();
        bucket.Summed.Wait();
        if (bucket.Failure != null) throw new TensorLiteException($"The all-reduce of a gradient bucket failed: {bucket.Failure.Message}");
        WriteBack(bucket);
    }

    private void WriteBack(Bucket bucket)
    {
        int offset = 0;
        foreach (var t in bucket.Tensors)
        {
            FromHost(bucket.Host.AsSpan(offset, (int)t.Numel), t);
            offset += (int)t.Numel;
        }
        bucket.Summed.Dispose();
        BucketsSummed++;
        _spareBuffers.Add(bucket.Host);
        if (_spareBuffers.Count > MaxInFlight + 1) _spareBuffers.RemoveAt(0); // keep no more than a step has in use at once
    }

    private static void CheckSummable(Tensor t)
    {
        if (!t.IsContiguous) throw new InvalidOperationException("All-reduce needs contiguous tensors.");
        if (!t.DType.IsFloatingPoint()) throw new InvalidOperationException($"All-reduce sums floating-point tensors, not {t.DType.Name()}.");
    }

    private static void ToHost(Tensor t, Span<float> destination)
    {
        CheckSummable(t);
        using var f = t.DType == DType.Float32 ? t.Detach() : t.To(DType.Float32);
        f.Backend.CopyToHost(f, MemoryMarshal.AsBytes(destination));
    }

    /// <summary>Writes the sums back; a 16-bit tensor receives them rounded to nearest (the backend's own conversion).</summary>
    private static void FromHost(ReadOnlySpan<float> source, Tensor t)
    {
        if (t.DType == DType.Float32)
        {
            t.Backend.CopyFromHost(MemoryMarshal.AsBytes(source), t);
            return;
        }
        using var f = Tensor.FromSpan(source, t.Shape, DType.Float32, t.Backend);
        t.Backend.Copy(f, t);
    }

    /// <summary>Stops the worker once the sums handed to it are done (a failed step's included).</summary>
    public void Dispose()
    {
        if (_work == null) return;
        _work.CompleteAdding();
        _worker!.Join();
        _work.Dispose();
    }
}
