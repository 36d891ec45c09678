using System.Collections.Concurrent;
using System.Diagnostics;

namespace TensorLite.Optim.Offload;

/// <summary>
/// Runs the host side of an offloaded optimizer and accounts for it. Each parameter's update is three phases: the
/// device computes what the host needs (the projected gradient R, or the float32 gradient of a dense parameter) and
/// copies it to the host; the host updates the optimizer state and computes the direction (or the updated weights);
/// the device copies the result back and applies it. Serially the three phases run one after another. With
/// <see cref="Overlap"/> the host phase runs on this engine's worker thread while the device goes on (the backward of
/// the layers below, in per-layer training), and the device phases wait in <see cref="Drain"/>, run at the end of the
/// step in the order the parameters were submitted. Each parameter's floating-point work is the same in both
/// schedules (its own state, its own inputs, the same kernels), so both give the same parameters bit for bit.
/// </summary>
public sealed class OffloadEngine : IDisposable
{
    private sealed class Pending(string name, Action host, Action device)
    {
        public readonly string Name = name;
        public readonly Action Host = host;
        public readonly Action Device = device;
        public readonly ManualResetEventSlim Done = new(false);
        public Exception? Error;
        public double HostStart, HostEnd;
    }

    private readonly List<Pending> _pending = new();
    private readonly BlockingCollection<Pending> _queue = new();
    private Thread? _worker;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private double _stepStart;
    private readonly List<OffloadEvent> _events = new();
    private readonly object _gate = new();
    private bool _disposed;

    /// <summary>An engine whose optimizer state lives on <paramref name="host"/> (the CPU backend in a run; a meta
    /// backend of its own in a plan, so the plan counts host memory apart from the device's).</summary>
    public OffloadEngine(IBackend host, bool overlap)
    {
        Host = host ?? throw new ArgumentNullException(nameof(host));
        Overlap = overlap;
    }

    /// <summary>The backend that holds the offloaded optimizer state and runs its updates.</summary>
    public IBackend Host { get; }

    /// <summary>Whether host updates run on the worker thread, overlapping the device's work (else serially, in place).</summary>
    public bool Overlap { get; set; }

    /// <summary>Bytes copied device → host during the current (or last finished) step.</summary>
    public long StepBytesToHost { get; private set; }

    /// <summary>Bytes copied host → device during the current (or last finished) step.</summary>
    public long StepBytesToDevice { get; private set; }

    /// <summary>Seconds the device waited for host updates in <see cref="Drain"/> during the current step (serially:
    /// all the host time, since the device waits for each update).</summary>
    public double StepWaitSeconds { get; private set; }

    /// <summary>Seconds of host updates during the current step (the work that can overlap the device's).</summary>
    public double StepHostSeconds { get; private set; }

    /// <summary>Bytes moved in both directions since the engine was created.</summary>
    public long TotalBytes { get; private set; }

    /// <summary>The current step's timeline, in seconds from <see cref="BeginStep"/>.</summary>
    public IReadOnlyList<OffloadEvent> StepEvents
    {
        get { lock (_gate) return _events.ToArray(); }
    }

    private double Now => _clock.Elapsed.TotalSeconds - _stepStart;

    /// <summary>Seconds since <see cref="BeginStep"/> (the timeline's clock).</summary>
    public double StepSeconds => Now;

    /// <summary>Starts a step's accounting and timeline (pending work of the last step must have been drained).</summary>
    public void BeginStep()
    {
        Drain();
        _stepStart = _clock.Elapsed.TotalSeconds;
        StepBytesToHost = StepBytesToDevice = 0;
        StepWaitSeconds = StepHostSeconds = 0;
        lock (_gate) _events.Clear();
    }

    /// <summary>Adds an event to the step's timeline.</summary>
    public void Record(string name, OffloadLane lane, double start, double end)
    {
        lock (_gate) _events.Add(new OffloadEvent(name, lane, start, end));
    }

    /// <summary>Runs a device-side action and records it on the timeline.</summary>
    internal void OnDevice(string name, OffloadLane lane, Action action)
    {
        double start = Now;
        action();
        Record(name, lane, start, Now);
    }

    /// <summary>Counts a device → host copy of <paramref name="bytes"/>.</summary>
    internal void CountToHost(long bytes)
    {
        StepBytesToHost += bytes;
        TotalBytes += bytes;
    }

    /// <summary>Counts a host → device copy of <paramref name="bytes"/>.</summary>
    internal void CountToDevice(long bytes)
    {
        StepBytesToDevice += bytes;
        TotalBytes += bytes;
    }

    /// <summary>
    /// Runs a parameter's host phase and then its device phase: at once when the schedule is serial, else the host
    /// phase on the worker thread now and the device phase in <see cref="Drain"/>. The host phase may touch only host
    /// tensors that nothing else uses until the device phase has run.
    /// </summary>
    public void Submit(string name, Action host, Action device)
    {
        if (!Overlap || _disposed)
        {
            RunSerially(name, host, device);
            return;
        }
        var work = new Pending(name, host, device);
        _pending.Add(work);
        EnsureWorker();
        _queue.Add(work);
    }

    /// <summary>Runs a parameter's host phase and then its device phase at once, on the calling thread (the device
    /// waits for the whole host update), whatever the schedule.</summary>
    public void RunSerially(string name, Action host, Action device)
    {
        var work = new Pending(name, host, device);
        RunHost(work, catchErrors: false);
        StepWaitSeconds += work.HostEnd - work.HostStart;
        Finish(work);
    }

    /// <summary>Waits for every submitted host phase and runs the device phases, in submission order. Rethrows the
    /// first host failure after all of them are done.</summary>
    public void Drain()
    {
        if (_pending.Count == 0) return;
        var items = _pending.ToArray();
        _pending.Clear();
        Exception? first = null;
        foreach (var work in items)
        {
            double waitStart = Now;
            work.Done.Wait();
            double waited = Now - waitStart;
            if (waited > 0)
            {
                StepWaitSeconds += waited;
                Record(work.Name, OffloadLane.DeviceWait, waitStart, waitStart + waited);
            }
            if (work.Error != null)
            {
                first ??= work.Error;
                continue;
            }
            if (first == null) Finish(work);
        }
        if (first != null) throw new TensorLiteException($"The host update of an offloaded parameter failed: {first.Message}");
    }

    private void Finish(Pending work)
    {
        work.Done.Dispose();
        OnDevice(work.Name, OffloadLane.ToDeviceAndApply, work.Device);
    }

    private void RunHost(Pending work, bool catchErrors)
    {
        work.HostStart = Now;
        try
        {
            work.Host();
        }
        catch (Exception e) when (catchErrors)
        {
            work.Error = e;
        }
        finally
        {
            work.HostEnd = Now;
            StepHostSecondsAdd(work.HostEnd - work.HostStart);
            Record(work.Name, OffloadLane.HostUpdate, work.HostStart, work.HostEnd);
        }
    }

    private void StepHostSecondsAdd(double seconds)
    {
        lock (_gate) StepHostSeconds += seconds;
    }

    private void EnsureWorker()
    {
        if (_worker != null) return;
        _worker = new Thread(() =>
        {
            foreach (var work in _queue.GetConsumingEnumerable())
            {
                RunHost(work, catchErrors: true);
                work.Done.Set();
            }
        }) { IsBackground = true, Name = "TensorLite offload host" };
        _worker.Start();
    }

    /// <summary>Finishes pending work and stops the worker thread.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        try { Drain(); }
        finally
        {
            _disposed = true; // later updates (an optimizer used after its run) run serially
            _queue.CompleteAdding();
            _worker?.Join();
            _queue.Dispose();
        }
    }
}
