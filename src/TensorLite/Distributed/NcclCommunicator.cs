namespace TensorLite.Distributed;

/// <summary>
/// The ranks of a data-parallel run on CUDA devices, with NCCL summing and broadcasting tensors on the devices. MPI
/// stays the launcher and bootstrap: rank 0 creates NCCL's unique id and broadcasts it over the host communicator, and
/// the host communicator keeps the small host-side collectives (the loss, flags, strings).
/// <para>
/// Contexts: ILGPU 1.5.3 creates its own CUDA context (cuCtxCreate), while NCCL works in the device's primary context
/// (it calls cudaSetDevice). Memory and streams of one context are not usable from another, so each collective copies
/// the tensor device-to-device into a buffer of the primary context (cuMemcpyPeerAsync, the driver's copy between
/// contexts), runs NCCL there on a stream of that context, and copies the result back — the tensor never goes through
/// host memory. The host waits for ILGPU's queued work before the copy and for the stream after it, so the sums are
/// ordered with ILGPU's kernels without sharing a stream; the host therefore does not run ahead during a sum.
/// </para>
/// </summary>
public sealed unsafe class NcclCommunicator : ICommunicator
{
    /// <summary>The values of --collectives.</summary>
    public static readonly string[] Choices = ["auto", "mpi", "nccl"];

    /// <summary>The environment variable that names libnccl.so.2 explicitly (otherwise the loader's default names).</summary>
    public const string LibraryPathVariable = NcclLibrary.PathVariable;

    private readonly ICommunicator _host;
    private readonly NcclLibrary _nccl;
    private readonly IBackend _backend;
    private readonly ICudaDevice _device;
    private readonly int _cuDevice;
    private readonly nint _primary;
    private nint _comm, _stream, _staging;
    private long _stagingBytes;
    private bool _failed, _disposed;

    /// <summary>
    /// The communicator a run on <paramref name="deviceName"/> uses for --collectives <paramref name="requested"/>: a new
    /// NCCL communicator over <paramref name="host"/>'s ranks, or <paramref name="host"/> itself (tensors staged through
    /// host memory). Every rank must call it at the same point (NCCL's set-up is collective). <paramref name="note"/> says
    /// which engine sums and why, for the run's header. A request that cannot be met (nccl on a device that is not CUDA,
    /// or without the library) throws a one-sentence <see cref="TensorLiteException"/> before anything is written.
    /// </summary>
    public static ICommunicator Connect(ICommunicator host, string requested, string deviceName, out string note)
    {
        NcclLibrary? library = null;
        bool nccl = Choose(requested, deviceName, host.WorldSize, MpiCommunicator.LocalSize,
            () => (library = NcclLibrary.TryGet(out string error)) == null ? error : null,
            name => Devices.Resolve(name, out _) is ICudaDevice device ? device.CudaDeviceCount : 0,
            out note);
        if (!nccl) return host;
        var communicator = new NcclCommunicator(host, library!, Devices.Resolve(deviceName, out _));
        note += $" (NCCL {library!.Version})";
        return communicator;
    }

    /// <summary>
    /// The decision behind <see cref="Connect"/>, apart from loading anything: true for NCCL. auto takes NCCL when there
    /// are several processes, the device is CUDA, each process of this machine has a device of its own (NCCL refuses two
    /// ranks on one device) and the library loads, else host MPI; mpi always takes host MPI; nccl refuses a device that
    /// is not CUDA (by name first: cpu and ilgpu-cpu never are), a missing library and shared devices.
    /// <paramref name="localProcesses"/> is how many of the processes run on this machine; <paramref name="libraryError"/>
    /// loads NCCL (null: loaded, else why not); <paramref name="cudaDevices"/> resolves a device name to the number of
    /// CUDA devices it can use (0: not CUDA).
    /// </summary>
    public static bool Choose(string requested, string deviceName, int processes, int localProcesses, Func<string?> libraryError,
        Func<string, int> cudaDevices, out string note)
    {
        if (!Choices.Contains(requested))
            throw new ArgumentException($"--collectives must be one of {string.Join(", ", Choices)}, got '{requested}'.");
        if (requested == "mpi")
        {
            note = "host MPI (--collectives mpi)";
            return false;
        }
        if (requested == "auto")
        {
            int devices;
            if (processes == 1) note = "none (one process)";
            else if ((devices = cudaDevices(deviceName)) == 0) note = "host MPI (auto: the device is not CUDA)";
            else if (localProcesses > devices) note = $"host MPI through host memory (auto: {Sharing(localProcesses, devices)})";
            else if (libraryError() is string missing) note = $"host MPI through host memory (auto: {missing})";
            else
            {
                note = $"NCCL on the device (auto: CUDA device, {processes} processes)";
                return true;
            }
            return false;
        }
        if (deviceName is "cpu" or "ilgpu-cpu")
            throw new TensorLiteException($"--collectives nccl sums tensors on a CUDA device; --device {deviceName} is not one (use --device cuda, or --collectives auto or mpi).");
        if (libraryError() is string error) throw new TensorLiteException($"--collectives nccl: {error}");
        int available = cudaDevices(deviceName);
        if (available == 0)
            throw new TensorLiteException($"--collectives nccl sums tensors on a CUDA device; --device {deviceName} did not find one (use --collectives auto or mpi).");
        if (localProcesses > available)
            throw new TensorLiteException($"--collectives nccl needs a CUDA device per process: {Sharing(localProcesses, available)} (use --collectives mpi).");
        note = processes == 1 ? "NCCL on the device (--collectives nccl; one process: a world of one)" : "NCCL on the device (--collectives nccl)";
        return true;
    }

    private static string Sharing(int processes, int devices) =>
        $"{processes} processes on this machine share {devices} CUDA device{(devices == 1 ? "" : "s")}, and NCCL takes one per process";

    /// <summary>Rank 0's NCCL unique id on every rank: rank 0 calls <paramref name="create"/> and broadcasts the 128 bytes
    /// over <paramref name="host"/>; the others receive them.</summary>
    internal static NcclUniqueId ExchangeId(ICommunicator host, Func<NcclUniqueId> create)
    {
        var id = host.Rank == 0 ? create() : default;
        host.Broadcast(new Span<byte>(id.Bytes, NcclUniqueId.Size), 0);
        return id;
    }

    private NcclCommunicator(ICommunicator host, NcclLibrary nccl, IBackend backend)
    {
        _host = host;
        _nccl = nccl;
        _backend = backend;
        _device = (ICudaDevice)backend;
        int cuDevice;
        nint primary;
        nccl.CheckCuda(nccl.CuInit(0), "cuInit");
        nccl.CheckCuda(nccl.CuDeviceGet(&cuDevice, _device.CudaOrdinal), "cuDeviceGet");
        nccl.CheckCuda(nccl.CuPrimaryCtxRetain(&primary, cuDevice), "cuDevicePrimaryCtxRetain");
        _cuDevice = cuDevice;
        _primary = primary;
        using var inPrimary = new PrimaryContext(this);
        nint stream, comm;
        nccl.CheckCuda(nccl.CuStreamCreate(&stream, NcclLibrary.StreamNonBlocking), "cuStreamCreate");
        _stream = stream;
        var id = ExchangeId(host, () =>
        {
            NcclUniqueId created;
            nccl.CheckNccl(nccl.GetUniqueId(&created), "ncclGetUniqueId");
            return created;
        });
        // Blocks until every rank has called it; NCCL takes the device of the current (primary) context.
        nccl.CheckNccl(nccl.CommInitRank(&comm, host.WorldSize, id, host.Rank), "ncclCommInitRank");
        _comm = comm;
        Description = $"{host.Description}; tensors summed on the device by NCCL {nccl.Version}";
    }

    /// <inheritdoc/>
    public int Rank => _host.Rank;
    /// <inheritdoc/>
    public int WorldSize => _host.WorldSize;
    /// <inheritdoc/>
    public string Description { get; }
    /// <inheritdoc/>
    public IBackend? CollectivesDevice => _backend;

    /// <inheritdoc/>
    public void AllReduceSum(Span<float> values) => _host.AllReduceSum(values);
    /// <inheritdoc/>
    public void AllReduceSum(Span<double> values) => _host.AllReduceSum(values);
    /// <inheritdoc/>
    public void Broadcast(Span<byte> data, int root) => _host.Broadcast(data, root);

    /// <inheritdoc/>
    public void AllReduceSumOnDevice(Tensor values) => AllReduce(values, NcclLibrary.Sum);

    /// <summary>The all-reduce with every rank's values multiplied by <paramref name="scale"/> first (NCCL's PreMulSum):
    /// for the GPU smoke check (perf gpu-nccl), where a world of one would otherwise leave the tensor as it was and could
    /// not show that the values went through NCCL and came back.</summary>
    internal void AllReduceScaledSumOnDevice(Tensor values, float scale)
    {
        int op;
        using (new PrimaryContext(this))
            _nccl.CheckNccl(_nccl.RedOpCreatePreMulSum(&op, &scale, NcclLibrary.Float32, NcclLibrary.ScalarHostImmediate, _comm), "ncclRedOpCreatePreMulSum");
        try { AllReduce(values, op); }
        finally
        {
            using (new PrimaryContext(this)) _nccl.RedOpDestroy(op, _comm);
        }
    }

    private void AllReduce(Tensor values, int op)
    {
        if (values.DType != DType.Float32) throw new ArgumentException($"NCCL sums float32 tensors here, not {values.DType.Name()}.");
        Collective(values, copyIn: true, copyOut: true, (buffer, comm, stream) =>
            _nccl.AllReduce(buffer, buffer, (nuint)values.Numel, NcclLibrary.Float32, op, comm, stream), "ncclAllReduce");
    }

    /// <inheritdoc/>
    public void BroadcastOnDevice(Tensor values, int root) =>
        Collective(values, copyIn: Rank == root, copyOut: Rank != root, (buffer, comm, stream) =>
            _nccl.Broadcast(buffer, buffer, (nuint)ByteLength(values), NcclLibrary.Uint8, root, comm, stream), "ncclBroadcast");

    private static long ByteLength(Tensor t) => (long)t.Numel * t.DType.SizeInBytes();

    /// <summary>Copies <paramref name="values"/> into the staging buffer, runs <paramref name="run"/> on it, copies the
    /// result back, and waits — all on this communicator's stream of the primary context.</summary>
    private void Collective(Tensor values, bool copyIn, bool copyOut, Func<nint, nint, nint, int> run, string call)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (values.Backend != _backend || !values.IsContiguous)
            throw new ArgumentException($"NCCL takes contiguous tensors of {_backend.Name}, not {values.Describe()}.");
        long bytes = ByteLength(values);
        nint tensor = _device.DevicePointer(values);
        _device.Synchronize(); // the kernels that wrote the tensor have finished
        using var inPrimary = new PrimaryContext(this);
        EnsureStaging(bytes);
        try
        {
            if (copyIn) _nccl.CheckCuda(_nccl.CuMemcpyPeerAsync(_staging, _primary, tensor, _device.CudaContext, (nuint)bytes, _stream), "cuMemcpyPeerAsync");
            _nccl.CheckNccl(run(_staging, _comm, _stream), call);
            if (copyOut) _nccl.CheckCuda(_nccl.CuMemcpyPeerAsync(tensor, _device.CudaContext, _staging, _primary, (nuint)bytes, _stream), "cuMemcpyPeerAsync");
            WaitForStream(call);
        }
        catch
        {
            _failed = true;
            throw;
        }
    }

    /// <summary>Waits for the stream, checking NCCL's asynchronous errors meanwhile (a failed peer surfaces there
    /// instead of leaving this rank waiting).</summary>
    private void WaitForStream(string call)
    {
        for (int spins = 0; ; spins++)
        {
            int state = _nccl.CuStreamQuery(_stream);
            if (state == NcclLibrary.CudaSuccess) return;
            if (state != NcclLibrary.CudaNotReady) _nccl.CheckCuda(state, call);
            int asyncError;
            _nccl.CheckNccl(_nccl.CommGetAsyncError(_comm, &asyncError), "ncclCommGetAsyncError");
            _nccl.CheckNccl(asyncError, call);
            if (spins > 1000) Thread.Sleep(0);
        }
    }

    /// <summary>A staging buffer of at least <paramref name="bytes"/> in the primary context (grown, never shrunk: the
    /// buckets have the same sizes at every step).</summary>
    private void EnsureStaging(long bytes)
    {
        if (bytes <= _stagingBytes) return;
        if (_staging != 0) _nccl.CheckCuda(_nccl.CuMemFree(_staging), "cuMemFree");
        _staging = 0;
        _stagingBytes = 0;
        nint buffer;
        _nccl.CheckCuda(_nccl.CuMemAlloc(&buffer, (nuint)bytes), "cuMemAlloc");
        _staging = buffer;
        _stagingBytes = bytes;
    }

    /// <summary>Makes the device's primary context current for a scope, restoring the caller's (ILGPU's) after.</summary>
    private readonly ref struct PrimaryContext
    {
        private readonly NcclCommunicator _owner;

        public PrimaryContext(NcclCommunicator owner)
        {
            _owner = owner;
            owner._nccl.CheckCuda(owner._nccl.CuCtxPushCurrent(owner._primary), "cuCtxPushCurrent");
        }

        public void Dispose()
        {
            nint popped;
            _owner._nccl.CuCtxPopCurrent(&popped);
        }
    }

    /// <summary>Ends the NCCL communicator (aborted after a failure, so that no rank waits on it) and frees its buffers;
    /// the host communicator stays open (its creator owns it).</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        using (new PrimaryContext(this))
        {
            if (_comm != 0) (_failed ? _nccl.CommAbort : _nccl.CommDestroy)(_comm);
            if (_staging != 0) _nccl.CuMemFree(_staging);
            if (_stream != 0) _nccl.CuStreamDestroy(_stream);
        }
        _nccl.CuPrimaryCtxRelease(_cuDevice);
    }
}
