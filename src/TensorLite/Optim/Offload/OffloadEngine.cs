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
/// <para>Parameters named in <see cref="DeferToForward"/> are deferred further (OffloadEngine.Deferred.cs): their
/// device phase waits past the end of the step and lands in the next forward, just before their layer runs.</para>
/// </summary>
public sealed partial class OffloadEngine : IDisposable
{
    private sealed class Pending(string name, Action host, Action device, int stage, long sequence)
    {
        public readonly string Name = name;
        public readonly Action Host = host;
        public readonly Action Device = device;
        /// <summary>The forward stage whose start the device phase waits for; <see cref="EndOfStep"/> when it lands
        /// at the end of the step.</summary>
        public readonly int Stage = stage;
        public readonly long Sequence = sequence;
        public readonly ManualResetEventSlim Done = new(false);
        public Exception? Error;
        public double HostStart, HostEnd;
    }

    /// <summary>The <see cref="Pending.Stage"/> of work whose device phase runs in <see cref="Drain"/>.</summary>
    private const int EndOfStep = -1;

    private readonly List<Pending> _pending = new();
    private readonly HostWorkQueue<Pending> _queue = new(w => w.Stage, w => w.Sequence);
    private long _submitted;
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

    /// <summary>Whether device ↔ host copies go through a page-locked staging buffer where the device offers one
    /// (default); off, they go through ordinary host memory. Both move the same bytes.</summary>
    public bool UsePageLockedStaging { get; set; } = true;

    private readonly PageLockedStaging _staging = new();

    /// <summary>How the engine's device ↔ host copies travel (page-locked staging or ordinary host memory).</summary>
    public string CopyDescription => UsePageLockedStaging ? _staging.Description : "through ordinary host memory";

    /// <summary>Copies <paramref name="device"/> into the host tensor <paramref name="host"/> and counts the bytes.</summary>
    internal void CopyToHost(Tensor device, Tensor host)
    {
        long bytes = HostCopy.ToHost(device, host, UsePageLockedStaging ? _staging : null);
        StepBytesToHost += bytes;
        TotalBytes += bytes;
    }

    /// <summary>Copies the host tensor <paramref name="host"/> into <paramref name="device"/> and counts the bytes.</summary>
    internal void CopyToDevice(Tensor host, Tensor device)
    {
        long bytes = HostCopy.ToDevice(host, device, UsePageLockedStaging ? _staging : null);
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
        int stage = DeferredStage(name);
        var work = new Pending(name, host, device, stage, _submitted++);
        (stage == EndOfStep ? _pending : _deferred).Add(work);
        EnsureWorker();
        _queue.Add(work);
    }

    /// <summary>Runs a parameter's host phase and then its device phase at once, on the calling thread (the device
    /// waits for the whole host update), whatever the schedule.</summary>
    public void RunSerially(string name, Action host, Action device)
    {
        var work = new Pending(name, host, device, EndOfStep, _submitted++);
        RunHost(work, catchErrors: false);
        StepWaitSeconds += work.HostEnd - work.HostStart;
        Finish(work);
    }

    /// <summary>Waits for every submitted host phase that is due at the end of the step and runs the device phases, in
    /// submission order (deferred work stays for the next forward). Rethrows the first host failure after all of them
    /// are done.</summary>
    public void Drain()
    {
        if (_pending.Count == 0) return;
        var items = _pending.ToArray();
        _pending.Clear();
        Complete(items, OffloadLane.ToDeviceAndApply);
    }

    /// <summary>Waits for each item's host phase (the device's wait goes on the timeline) and runs its device phase in
    /// <paramref name="lane"/>, in the order given; rethrows the first host failure after all of them are done.</summary>
    private void Complete(IEnumerable<Pending> items, OffloadLane lane)
    {
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
            if (first == null) Finish(work, lane);
        }
        if (first != null) throw new TensorLiteException($"The host update of an offloaded parameter failed: {first.Message}");
    }

    private void Finish(Pending work, OffloadLane lane = OffloadLane.ToDeviceAndApply)
    {
        work.Done.Dispose();
        OnDevice(work.Name, lane, work.Device);
    }

    private void RunHost(Pending work, bool catchErrors)
    {
        // Timed on the engine's clock, not the step's: a deferred update may start in one step and end in the next.
        work.HostStart = _clock.Elapsed.TotalSeconds;
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
            work.HostEnd = _clock.Elapsed.TotalSeconds;
            StepHostSecondsAdd(work.HostEnd - work.HostStart);
            double stepStart = _stepStart;
            Record(work.Name, OffloadLane.HostUpdate, work.HostStart - stepStart, work.HostEnd - stepStart);
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
            while (_queue.Take() is { } work)
            {
                RunHost(work, catchErrors: true);
                work.Done.Set();
            }
        }) { IsBackground = true, Name = "TensorLite offload host" };
        _worker.Start();
    }

    /// <summary>Finishes pending work (deferred updates included) and stops the worker thread.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        try { Flush(); }
        finally
        {
            _disposed = true; // later updates (an optimizer used after its run) run serially
            _queue.Complete();
            _worker?.Join();
            _staging.Dispose();
        }
    }
}
