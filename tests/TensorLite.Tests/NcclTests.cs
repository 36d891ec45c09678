using System.Runtime.InteropServices;
using TensorLite.Distributed;
using TensorLite.IO;
using TensorLite.Ilgpu;
using TensorLite.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace TensorLite.Tests;

/// <summary>
/// The NCCL path as far as a machine without a GPU or NCCL can check it: the choice of --collectives and its one-line
/// refusals, the unique id's exchange over the host communicator, the device path of the gradient buckets and of
/// broadcasts (driven by a stand-in communicator on the CPU backend — the packing, order and write-back, not NCCL), the
/// device addresses the GPU backend hands out, and that `auto` on the CPU leaves today's MPI path as it was. NCCL itself
/// runs only on a GPU machine (perf/gpu/run.sh nccl); no test here pretends it ran.
/// </summary>
public sealed class NcclTests(OpenMpi mpi, ITestOutputHelper output) : IClassFixture<OpenMpi>, IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("tl-nccl-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    // ---- the choice of --collectives ---------------------------------------------------------------------------

    /// <summary>Runs <see cref="NcclCommunicator.Choose"/> with a library that loads (or fails with
    /// <paramref name="libraryError"/>) and devices of which only "cuda" is CUDA, a machine of <paramref name="gpus"/>
    /// CUDA devices running <paramref name="local"/> of the processes (all by default); counts what it looked at.</summary>
    private static (bool Nccl, string Note, int LibraryLoads, int Resolves) Choose(string requested, string device, int processes, string? libraryError = null,
        int gpus = 8, int? local = null)
    {
        int loads = 0, resolves = 0;
        bool nccl = NcclCommunicator.Choose(requested, device, processes, local ?? processes,
            () => { loads++; return libraryError; },
            name => { resolves++; return name == "cuda" ? gpus : 0; },
            out string note);
        return (nccl, note, loads, resolves);
    }

    [Fact]
    public void Auto_takes_NCCL_only_for_several_processes_on_a_CUDA_device_with_the_library()
    {
        Assert.Equal((true, "NCCL on the device (auto: CUDA device, 2 processes)", 1, 1), Choose("auto", "cuda", 2));
        Assert.Equal((false, "none (one process)", 0, 0), Choose("auto", "cuda", 1));
        Assert.Equal((false, "host MPI (auto: the device is not CUDA)", 0, 1), Choose("auto", "cpu", 3));
        var missing = Choose("auto", "cuda", 2, libraryError: "NCCL (libnccl.so.2) is not on the loader's path.");
        Assert.False(missing.Nccl);
        Assert.Equal("host MPI through host memory (auto: NCCL (libnccl.so.2) is not on the loader's path.)", missing.Note);
        Assert.Equal((false, "host MPI through host memory (auto: 2 processes on this machine share 1 CUDA device, and NCCL takes one per process)", 0, 1),
            Choose("auto", "cuda", 4, gpus: 1, local: 2));
        Assert.Equal((true, "NCCL on the device (auto: CUDA device, 4 processes)", 1, 1), Choose("auto", "cuda", 4, gpus: 2, local: 2)); // two machines
    }

    [Fact]
    public void Mpi_never_loads_NCCL_or_resolves_the_device()
    {
        Assert.Equal((false, "host MPI (--collectives mpi)", 0, 0), Choose("mpi", "cuda", 4));
    }

    [Fact]
    public void Nccl_is_refused_on_a_device_that_is_not_CUDA_and_without_the_library()
    {
        foreach (string device in new[] { "cpu", "ilgpu-cpu" })
        {
            int loads = 0;
            var e = Assert.Throws<TensorLiteException>(() => NcclCommunicator.Choose("nccl", device, 2, 2, () => { loads++; return null; }, _ => 1, out _));
            Assert.Contains($"--device {device} is not one", e.Message);
            Assert.Equal(0, loads); // named devices are refused before anything is loaded
        }
        var noLibrary = Assert.Throws<TensorLiteException>(() => Choose("nccl", "cuda", 2, libraryError: "TENSORLITE_NCCL=/x does not name a loadable NCCL library (libnccl.so.2)."));
        Assert.Equal("--collectives nccl: TENSORLITE_NCCL=/x does not name a loadable NCCL library (libnccl.so.2).", noLibrary.Message);
        var autoWithoutCuda = Assert.Throws<TensorLiteException>(() => Choose("nccl", "auto", 2));
        Assert.Contains("--device auto did not find one", autoWithoutCuda.Message);
        var shared = Assert.Throws<TensorLiteException>(() => Choose("nccl", "cuda", 3, gpus: 2));
        Assert.Equal("--collectives nccl needs a CUDA device per process: 3 processes on this machine share 2 CUDA devices, and NCCL takes one per process (use --collectives mpi).", shared.Message);
        Assert.Equal((true, "NCCL on the device (--collectives nccl)", 1, 1), Choose("nccl", "cuda", 2));
        Assert.Throws<ArgumentException>(() => Choose("gloo", "cuda", 2));
    }

    [Fact]
    public void An_explicit_library_path_that_does_not_load_names_the_variable_and_the_file()
    {
        var (library, error) = NcclLibrary.Load("/nonexistent/libnccl.so.2");
        Assert.Null(library);
        Assert.Equal("TENSORLITE_NCCL=/nonexistent/libnccl.so.2 does not name a loadable NCCL library (libnccl.so.2).", error);
        string notALibrary = Path.Combine(_root, "libnccl.so.2");
        File.WriteAllText(notALibrary, "not an ELF file");
        Assert.StartsWith($"TENSORLITE_NCCL={notALibrary} does not name", NcclLibrary.Load(notALibrary).Error);
    }

    [Fact]
    public void Auto_on_the_CPU_keeps_the_MPI_communicator_itself()
    {
        var world = new DeviceTwins(device: null);
        Assert.Same(world, NcclCommunicator.Connect(world, "auto", "cpu", out string note));
        Assert.Equal("host MPI (auto: the device is not CUDA)", note);
        Assert.Same(world, NcclCommunicator.Connect(world, "mpi", "cpu", out _));
    }

    // ---- the CLI's refusals ---------------------------------------------------------------------------------

    private (int Code, string[] ErrorLines, bool FolderWritten) Train(string device, IReadOnlyDictionary<string, string>? environment = null)
    {
        string dir = Path.Combine(_root, $"run-{device}");
        var (code, stdout, stderr) = CliProcess.Run(["train", "--collectives", "nccl", "--device", device, "--steps", "1", "--out", dir], environment: environment);
        output.WriteLine(stdout + stderr);
        return (code, stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries), Directory.Exists(dir));
    }

    [Fact]
    public void Nccl_on_the_CPU_device_is_refused_in_one_line_before_a_run_folder_exists()
    {
        var (code, lines, written) = Train("cpu");
        Assert.Equal(2, code);
        Assert.Equal("error: --collectives nccl sums tensors on a CUDA device; --device cpu is not one (use --device cuda, or --collectives auto or mpi).", Assert.Single(lines));
        Assert.False(written);
    }

    [Fact]
    public void Nccl_with_a_library_path_that_does_not_load_is_refused_in_one_line_before_a_run_folder_exists()
    {
        var (code, lines, written) = Train("cuda", new Dictionary<string, string> { [NcclCommunicator.LibraryPathVariable] = "/nonexistent/libnccl.so.2" });
        Assert.Equal(2, code);
        Assert.Equal("error: --collectives nccl: TENSORLITE_NCCL=/nonexistent/libnccl.so.2 does not name a loadable NCCL library (libnccl.so.2).", Assert.Single(lines));
        Assert.False(written);
    }

    // ---- the unique id's exchange ---------------------------------------------------------------------------

    /// <summary>One rank of a stand-in job whose broadcasts pass through <see cref="Wire"/>: the root writes it, the
    /// others read it (run the root first).</summary>
    private sealed class WireRank(int rank, int worldSize, byte[] wire) : ICommunicator
    {
        public byte[] Wire { get; } = wire;
        public int Rank => rank;
        public int WorldSize => worldSize;
        public string Description => "wire";
        public void AllReduceSum(Span<float> values) => throw new NotSupportedException();
        public void AllReduceSum(Span<double> values) => throw new NotSupportedException();

        public void Broadcast(Span<byte> data, int root)
        {
            if (rank == root) data.CopyTo(Wire);
            else Wire.AsSpan(0, data.Length).CopyTo(data);
        }

        public void Dispose() { }
    }

    private static unsafe byte[] BytesOf(NcclUniqueId id) => new Span<byte>(id.Bytes, NcclUniqueId.Size).ToArray();

    [Fact]
    public unsafe void Rank_zero_creates_the_unique_id_and_every_other_rank_receives_its_128_bytes()
    {
        var wire = new byte[NcclUniqueId.Size];
        int created = 0;
        NcclUniqueId Create()
        {
            created++;
            NcclUniqueId id = default;
            for (int i = 0; i < NcclUniqueId.Size; i++) id.Bytes[i] = (byte)(i * 7 + 3);
            return id;
        }
        var zero = NcclCommunicator.ExchangeId(new WireRank(0, 3, wire), Create);
        var one = NcclCommunicator.ExchangeId(new WireRank(1, 3, wire), () => throw new InvalidOperationException("only rank 0 creates the id"));
        var two = NcclCommunicator.ExchangeId(new WireRank(2, 3, wire), () => throw new InvalidOperationException("only rank 0 creates the id"));
        Assert.Equal(1, created);
        Assert.Equal(Enumerable.Range(0, NcclUniqueId.Size).Select(i => (byte)(i * 7 + 3)), BytesOf(zero));
        Assert.Equal(BytesOf(zero), BytesOf(one));
        Assert.Equal(BytesOf(zero), BytesOf(two));
    }

    // ---- the device path of the buckets and broadcasts --------------------------------------------------------

    /// <summary>Two ranks holding the same values (every sum doubles). With a <paramref name="device"/> it sums that
    /// backend's tensors "on the device" (a stand-in for NCCL: the backend's own affine op, in place) and records each
    /// bucket; host buffers are recorded apart.</summary>
    private sealed class DeviceTwins(IBackend? device) : ICommunicator
    {
        public List<float[]> DeviceSums { get; } = [];
        public List<float[]> HostSums { get; } = [];
        public List<(int Root, int Thread)> DeviceBroadcasts { get; } = [];
        public List<int> SumThreads { get; } = [];
        public int Rank => 0;
        public int WorldSize => 2;
        public string Description => "device twins";
        public IBackend? CollectivesDevice => device;

        public void AllReduceSum(Span<float> values)
        {
            HostSums.Add(values.ToArray());
            foreach (ref var v in values) v *= 2;
        }

        public void AllReduceSumOnDevice(Tensor values)
        {
            Assert.Equal(DType.Float32, values.DType);
            Assert.Same(device, values.Backend);
            DeviceSums.Add(values.ToArray());
            SumThreads.Add(Environment.CurrentManagedThreadId);
            values.Backend.Unary(UnaryOp.Affine, values, values, 2f, 0f);
        }

        public void BroadcastOnDevice(Tensor values, int root) => DeviceBroadcasts.Add((root, Environment.CurrentManagedThreadId));
        public void AllReduceSum(Span<double> values) => throw new NotSupportedException();
        public void Broadcast(Span<byte> data, int root) => throw new NotSupportedException("the device path takes the tensors");
        public void Dispose() { }
    }

    /// <summary>Float32 and bf16 tensors of several sizes (exact in bf16), in an order that makes three buckets of ≤ 8.</summary>
    private static Tensor[] Gradients() =>
        [.. new[] { 5, 3, 4, 9, 2 }.Select((n, i) =>
        {
            var t = Tensor.FromArray(Enumerable.Range(0, n).Select(k => i + k / 8f).ToArray(), n);
            return i % 2 == 0 ? t : t.To(DType.BFloat16);
        })];

    private static GradientBuckets SumAll(ICommunicator world, Tensor[] tensors, bool overlap)
    {
        var buckets = new GradientBuckets(world, bucketElements: 8, overlap);
        foreach (var t in tensors) buckets.Add(t);
        buckets.Complete();
        return buckets;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Buckets_summed_on_the_device_are_the_host_path_buckets_with_the_same_results(bool overlap)
    {
        var onHost = Gradients();
        var onDevice = Gradients();
        var host = new DeviceTwins(device: null);
        var device = new DeviceTwins(Backend.Cpu);
        using (SumAll(host, onHost, overlap)) { }
        using var buckets = SumAll(device, onDevice, overlap);
        Assert.False(buckets.Overlaps); // a device communicator sums on the caller's thread, in order
        Assert.Equal(Environment.CurrentManagedThreadId, Assert.Single(device.SumThreads.Distinct()));
        Assert.Empty(device.HostSums);
        Assert.Equal(host.HostSums.Count, device.DeviceSums.Count);
        for (int b = 0; b < host.HostSums.Count; b++) Assert.Equal(host.HostSums[b], device.DeviceSums[b]); // same buckets, same packed values
        Assert.Equal(4, buckets.BucketsSummed); // [5,3] [4] [9] [2]
        for (int i = 0; i < onHost.Length; i++)
        {
            Assert.Equal(onHost[i].DType, onDevice[i].DType);
            Assert.Equal(onHost[i].ToArray(), onDevice[i].ToArray());
        }
    }

    [Fact]
    public void Tensors_on_another_backend_than_the_communicators_device_go_through_host_buffers()
    {
        var world = new DeviceTwins(new RecordingBackend(Backend.Cpu)); // another backend than the tensors' (Backend.Cpu)
        var tensors = Gradients();
        using (SumAll(world, tensors, overlap: false)) { }
        Assert.Empty(world.DeviceSums);
        Assert.Equal(4, world.HostSums.Count);
    }

    [Fact]
    public void Broadcasts_of_device_tensors_stay_on_the_device_and_sums_are_timed()
    {
        var world = new DeviceTwins(Backend.Cpu);
        var timed = new TimedCommunicator(world);
        using var a = Tensor.FromArray([1f, 2f, 3f], 3);
        using var b = Tensor.FromArray([4f, 5f], 2);
        timed.Broadcast([a, b], root: 1);
        Assert.Equal(new[] { 1, 1 }, world.DeviceBroadcasts.Select(x => x.Root));
        timed.AllReduceSum([a, b]);
        Assert.Equal(new[] { 2f, 4f, 6f }, a.ToArray());
        Assert.Equal(5 * sizeof(float), timed.AllReducedBytes);
        Assert.Same(Backend.Cpu, timed.CollectivesDevice);
    }

    [Fact]
    public void The_GPU_backend_hands_out_the_address_of_a_views_first_element()
    {
        using var backend = IlgpuBackend.Create(DeviceKind.Cpu);
        var cuda = (ICudaDevice)backend;
        Assert.Equal(-1, cuda.CudaOrdinal); // ILGPU's CPU accelerator is not a CUDA device
        using var whole = Tensor.FromSpan<float>(Enumerable.Range(0, 20).Select(i => i * 1.5f).ToArray(), [20], DType.Float32, backend);
        using var view = whole.Narrow(0, 7, 5);
        cuda.Synchronize();
        var read = new float[5];
        Marshal.Copy(cuda.DevicePointer(view), read, 0, read.Length); // the CPU accelerator's memory is host memory
        Assert.Equal(Enumerable.Range(7, 5).Select(i => i * 1.5f), read);
    }

    // ---- auto on the CPU: today's path, bit for bit --------------------------------------------------------------

    [Fact]
    public void Two_processes_on_the_CPU_train_the_same_bits_with_auto_as_with_mpi()
    {
        string Run(string collectives)
        {
            string dir = Path.Combine(_root, collectives);
            string[] args = ["train", "--model", "byte_small", "--steps", "2", "--grad-accum", "2", "--batch", "2", "--seq", "32", "--synthetic-bytes", "40000",
                "--eval-every", "1000", "--checkpoint-every", "2", "--log-every", "1", "--out", dir, "--nproc", "2", "--collectives", collectives];
            var (code, stdout, stderr) = CliProcess.Run(args, timeoutSeconds: 180);
            output.WriteLine($"{mpi.Mpirun} {string.Join(' ', args)}\n{stdout}{stderr}");
            Assert.True(code == 0, $"exit {code}: {stderr}");
            Assert.Contains(collectives == "auto" ? "collectives  host MPI (auto: the device is not CUDA)" : "collectives  host MPI (--collectives mpi)", stdout);
            return dir;
        }
        static byte[] Weights(string dir) =>
            File.ReadAllBytes(Path.Combine(Directory.GetDirectories(Path.Combine(dir, "checkpoints")).Order().Last(), "model.safetensors"));
        Assert.Equal(Weights(Run("mpi")), Weights(Run("auto")));
    }
}
