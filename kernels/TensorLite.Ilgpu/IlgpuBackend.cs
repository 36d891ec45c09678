using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;
using TensorLite.Ilgpu.Ptx;

namespace TensorLite.Ilgpu;

public enum DeviceKind { Cuda, Cpu }

/// <summary>
/// The backend seam over one ILGPU accelerator: tensors live in <see cref="IlgpuStorage"/> buffers (from
/// <see cref="IlgpuMemoryPool"/>) and every <see cref="IBackend"/> member launches kernels of <see cref="IlgpuKernels"/>
/// or <see cref="GemmKernels"/>, each compiled once when the backend is created. This file holds the core members
/// (memory, host copies, fill, copy, element-wise, reductions); IlgpuBackend.X.cs implements the members of
/// IBackend.X.cs, as in every backend (see docs/gpu.md). Operands a kernel does not take (an unsupported dtype, a
/// view of too many dimensions) raise <see cref="NotSupportedException"/>. All launches go to the accelerator's
/// default stream, so they run in order; host reads synchronize first.
/// </summary>
public sealed partial class IlgpuBackend : IBackend, IDisposable
{
    private readonly Context _context;
    private readonly Accelerator _accelerator;

    private readonly Action<Index1D, ArrayView<byte>, byte> _fill8;
    private readonly Action<Index1D, ArrayView<ushort>, ushort> _fill16;
    private readonly Action<Index1D, ArrayView<uint>, uint> _fill32;
    private readonly Action<Index1D, ArrayView<ulong>, ulong> _fill64;
    private readonly Action<Index1D, ArrayView<byte>, ArrayView<byte>, StridedLayout> _copy8;
    private readonly Action<Index1D, ArrayView<ushort>, ArrayView<ushort>, StridedLayout> _copy16;
    private readonly Action<Index1D, ArrayView<uint>, ArrayView<uint>, StridedLayout> _copy32;
    private readonly Action<Index1D, ArrayView<ulong>, ArrayView<ulong>, StridedLayout> _copy64;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<ushort>, StridedLayout> _f32ToBf16;
    private readonly Action<Index1D, ArrayView<ushort>, ArrayView<float>, StridedLayout> _bf16ToF32;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<ushort>, StridedLayout> _f32ToF16;
    private readonly Action<Index1D, ArrayView<ushort>, ArrayView<float>, StridedLayout> _f16ToF32;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>, int, float, float> _unary;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, float, float> _unaryBackward;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, StridedLayout, int> _binary;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>, int, int, int> _reduce;

    private IlgpuBackend(Context context, Accelerator accelerator)
    {
        _context = context;
        _accelerator = accelerator;
        Pool = new IlgpuMemoryPool(accelerator);
        Kind = accelerator.AcceleratorType == AcceleratorType.Cuda ? DeviceKind.Cuda : DeviceKind.Cpu;
        _groupThreadsLimit = Kind == DeviceKind.Cuda ? accelerator.MaxNumThreadsPerGroup : Math.Min(EmulatorGroupThreads, accelerator.MaxNumThreadsPerGroup);
        Description = Kind == DeviceKind.Cuda
            ? $"ILGPU CUDA accelerator: {accelerator.Name}"
            : $"ILGPU CPU accelerator (the GPU kernels emulated on {accelerator.NumMultiprocessors} cores: for checking kernels on tiny runs, not for speed): {accelerator.Name}";

        var a = accelerator;
        _fill8 = a.LoadElementwiseKernel<Index1D, ArrayView<byte>, byte>(IlgpuKernels.Fill);
        _fill16 = a.LoadElementwiseKernel<Index1D, ArrayView<ushort>, ushort>(IlgpuKernels.Fill);
        _fill32 = a.LoadElementwiseKernel<Index1D, ArrayView<uint>, uint>(IlgpuKernels.Fill);
        _fill64 = a.LoadElementwiseKernel<Index1D, ArrayView<ulong>, ulong>(IlgpuKernels.Fill);
        _copy8 = a.LoadElementwiseKernel<Index1D, ArrayView<byte>, ArrayView<byte>, StridedLayout>(IlgpuKernels.CopyStrided);
        _copy16 = a.LoadElementwiseKernel<Index1D, ArrayView<ushort>, ArrayView<ushort>, StridedLayout>(IlgpuKernels.CopyStrided);
        _copy32 = a.LoadElementwiseKernel<Index1D, ArrayView<uint>, ArrayView<uint>, StridedLayout>(IlgpuKernels.CopyStrided);
        _copy64 = a.LoadElementwiseKernel<Index1D, ArrayView<ulong>, ArrayView<ulong>, StridedLayout>(IlgpuKernels.CopyStrided);
        _f32ToBf16 = a.LoadElementwiseKernel<Index1D, ArrayView<float>, ArrayView<ushort>, StridedLayout>(IlgpuKernels.CopyF32ToBF16);
        _bf16ToF32 = a.LoadElementwiseKernel<Index1D, ArrayView<ushort>, ArrayView<float>, StridedLayout>(IlgpuKernels.CopyBF16ToF32);
        _f32ToF16 = a.LoadElementwiseKernel<Index1D, ArrayView<float>, ArrayView<ushort>, StridedLayout>(IlgpuKernels.CopyF32ToF16);
        _f16ToF32 = a.LoadElementwiseKernel<Index1D, ArrayView<ushort>, ArrayView<float>, StridedLayout>(IlgpuKernels.CopyF16ToF32);
        _unary = a.LoadElementwiseKernel<Index1D, ArrayView<float>, ArrayView<float>, int, float, float>(IlgpuKernels.Unary);
        _unaryBackward = a.LoadElementwiseKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, float, float>(IlgpuKernels.UnaryBackward);
        _binary = a.LoadElementwiseKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, StridedLayout, int>(IlgpuKernels.Binary);
        _reduce = a.LoadElementwiseKernel<Index1D, ArrayView<float>, ArrayView<float>, int, int, int>(IlgpuKernels.Reduce);
        _nn = new NnKernelSet(a);
        _index = new IndexKernelSet(a);
        _attention = new AttentionKernelSet(a);
        _gemm = new GemmKernelSet(a);
        _optim = new OptimKernelSet(a);
        _linalg = new LinalgKernelSet(a);
    }

    /// <summary>A backend on a CUDA device — the first, or under mpirun the local rank's (throws when there is none) or on ILGPU's CPU accelerator (one
    /// emulated multiprocessor per core; see "the CPU emulator's thread use" below).</summary>
    public static IlgpuBackend Create(DeviceKind kind)
    {
        if (kind == DeviceKind.Cuda)
        {
            var ctx = Context.Create(b => b.Cuda().EnableAlgorithms().EnableTensorCoreMma());
            var devices = ctx.GetCudaDevices();
            if (devices.Count == 0)
            {
                ctx.Dispose();
                throw new NotSupportedException("No CUDA device is visible to ILGPU on this machine.");
            }
            // The ranks of an mpirun job on one machine take one device each (NCCL refuses two ranks on one device).
            return new IlgpuBackend(ctx, devices[Distributed.MpiCommunicator.LocalRank % devices.Count].CreateAccelerator(ctx));
        }
        return CreateCpu(EmulatorWarpSize, EmulatorMaxGroupThreads / EmulatorWarpSize, Environment.ProcessorCount);
    }

    /// <summary>A backend on ILGPU's CPU accelerator: <paramref name="processors"/> emulated multiprocessors (each runs
    /// a share of the groups of a launch), groups of up to <paramref name="warpSize"/> × <paramref name="warpsPerGroup"/>
    /// threads.</summary>
    internal static IlgpuBackend CreateCpu(int warpSize, int warpsPerGroup, int processors = 1)
    {
        var ctx = Context.Create(b => b.CPU(new CPUDevice(warpSize, warpsPerGroup, processors)).EnableAlgorithms());
        return new IlgpuBackend(ctx, ctx.GetCPUDevice(0).CreateAccelerator(ctx));
    }

    // ---- the CPU emulator's thread use ----------------------------------------------------------------
    // ILGPU's CPU accelerator runs every thread of a group on its own OS thread. Each multiprocessor starts as many OS
    // threads as the largest group it has run, and from then on all of them take part in two rendezvous per launch,
    // whatever the launch's group size; a group's threads also meet at a barrier after every group they run. On the
    // 2-core development machine one 256-thread launch made every later launch cost ~15 ms instead of ~2 ms, and groups
    // of 16 cost ~2 µs per element (docs/gpu.md, "The CPU emulator"). So on the CPU accelerator element-wise kernels
    // run in groups of one (ElementwiseKernelLoader) and the grouped kernels in groups of at most GroupThreadsLimit
    // (EmulatorGroupThreads unless a test raises it): that many busy OS threads per core, whatever the kernels' CUDA
    // group sizes.

    private const int EmulatorWarpSize = 16;

    /// <summary>The CPU accelerator's capacity: the largest CUDA group shape (16 × 16) still runs there when a test
    /// raises <see cref="GroupThreadsLimit"/>.</summary>
    private const int EmulatorMaxGroupThreads = 256;

    /// <summary>Threads per group of the grouped kernels on the CPU accelerator. One: every launch is then a loop over
    /// its groups on each core, with no rendezvous of OS threads inside a core, so the emulator's speed does not
    /// collapse when the machine is busy (a rendezvous waits for every thread to be scheduled). The kernel tests raise
    /// <see cref="GroupThreadsLimit"/> to check the cooperation of a group's threads (barriers, shared memory).</summary>
    public const int EmulatorGroupThreads = 1;

    /// <summary>The most threads a grouped kernel's group gets: unlimited on CUDA, <see cref="EmulatorGroupThreads"/>
    /// on the CPU accelerator. Tests raise it to run the CUDA group shapes on the emulator (a power of two ≤ 256).</summary>
    internal int GroupThreadsLimit
    {
        get => _groupThreadsLimit;
        set => _groupThreadsLimit = value >= 1 && value <= _accelerator.MaxNumThreadsPerGroup && (value & (value - 1)) == 0 ? value
            : throw new ArgumentOutOfRangeException(nameof(value), $"A power of two from 1 to {_accelerator.MaxNumThreadsPerGroup}, got {value}.");
    }

    private int _groupThreadsLimit;

    /// <summary>The group size a kernel written for <paramref name="cudaThreads"/> threads per group (a power of two)
    /// launches with here. The kernels read it at run time (Group.DimX).</summary>
    private int GroupThreads(int cudaThreads) => Math.Min(cudaThreads, _groupThreadsLimit);

    /// <summary>CUDA when a device is present, otherwise the CPU accelerator; <see cref="Description"/> says which.</summary>
    public static IlgpuBackend Auto()
    {
        try { return Create(DeviceKind.Cuda); }
        catch (Exception) { return Create(DeviceKind.Cpu); }
    }

    public string Name => Kind == DeviceKind.Cuda ? "ilgpu-cuda" : "ilgpu-cpu";

    public TensorLite.Memory.MemoryLedger Memory { get; } = new();

    /// <summary>Which accelerator runs the kernels, in words.</summary>
    public string Description { get; }

    public bool ComputesValues => true;

    public DeviceKind Kind { get; }

    public IlgpuMemoryPool Pool { get; }

    public Accelerator Accelerator => _accelerator;

    public void Synchronize() => _accelerator.Synchronize();

    public void Dispose()
    {
        _accelerator.Synchronize();
        Pool.Dispose();
        _accelerator.Dispose();
        _context.Dispose();
    }

    // ---- views --------------------------------------------------------------------------------------

    private IlgpuStorage StorageOf(Tensor t) => t.Storage as IlgpuStorage
        ?? throw new ArgumentException($"Tensor {t.Describe()} lives on backend '{t.Backend.Name}', not on '{Name}'.");

    /// <summary>The tensor's storage as elements of T, starting at the tensor's offset.</summary>
    private ArrayView<T> View<T>(Tensor t) where T : unmanaged
    {
        var v = StorageOf(t).View.Cast<T>();
        return v.SubView(t.Offset, v.Length - t.Offset);
    }

    private ArrayView<byte> Bytes(Tensor t)
    {
        int size = t.DType.SizeInBytes();
        return StorageOf(t).View.SubView((long)t.Offset * size, (long)t.Numel * size);
    }

    // ---- memory -------------------------------------------------------------------------------------

    public Storage Allocate(long byteLength) => new IlgpuStorage(this, byteLength);

    /// <summary>Gives the device pool's cached blocks back to the device.</summary>
    public void TrimCache() => Pool.TrimCache();

    public void CopyToHost(Tensor source, Span<byte> destination)
    {
        var bytes = Bytes(source);
        if (bytes.Length == 0) return;
        _accelerator.Synchronize();
        // The span overloads pin the host memory for the copy. The ref-based overloads take a raw pointer without
        // pinning, so a garbage collection on any thread could move a managed array mid-copy (seen as corrupted
        // weights and crashes; see IlgpuHostCopyTests.HostCopies_StayExact_WhileAnotherThreadCompactsTheManagedHeap).
        bytes.CopyToCPU(destination[..checked((int)bytes.Length)]);
    }

    public void CopyFromHost(ReadOnlySpan<byte> source, Tensor destination)
    {
        var bytes = Bytes(destination);
        if (source.Length != bytes.Length)
            throw new ArgumentException($"CopyFromHost: {source.Length} bytes for {destination.Describe()}, which holds {bytes.Length}.", nameof(source));
        if (bytes.Length == 0) return;
        bytes.CopyFromCPU(source); // pinned, as in CopyToHost
    }

    public void Fill(Tensor destination, double value)
    {
        int n = destination.Numel;
        if (n == 0) return;
        switch (destination.DType)
        {
            case DType.Float32: _fill32(n, View<uint>(destination), BitConverter.SingleToUInt32Bits((float)value)); break;
            case DType.Int32: _fill32(n, View<uint>(destination), unchecked((uint)(int)value)); break;
            case DType.BFloat16: _fill16(n, View<ushort>(destination), HalfPrecision.FloatToBFloat16((float)value)); break;
            case DType.Float16: _fill16(n, View<ushort>(destination), HalfPrecision.FloatToFloat16((float)value)); break;
            case DType.Int8: _fill8(n, View<byte>(destination), unchecked((byte)(sbyte)value)); break;
            case DType.UInt8: _fill8(n, View<byte>(destination), (byte)value); break;
            case DType.Int64: _fill64(n, View<ulong>(destination), unchecked((ulong)(long)value)); break;
            default: throw new ArgumentOutOfRangeException(nameof(destination));
        }
    }

    public void Copy(Tensor source, Tensor destination)
    {
        int n = source.Numel;
        if (n == 0) return;
        var l = StridedLayout.Create(source.Shape, source.Strides, destination.Strides);
        DType st = source.DType, dt = destination.DType;
        if (st == dt)
        {
            switch (st.SizeInBytes())
            {
                case 1: _copy8(n, View<byte>(source), View<byte>(destination), l); return;
                case 2: _copy16(n, View<ushort>(source), View<ushort>(destination), l); return;
                case 4: _copy32(n, View<uint>(source), View<uint>(destination), l); return;
                case 8: _copy64(n, View<ulong>(source), View<ulong>(destination), l); return;
            }
        }
        switch (st, dt)
        {
            case (DType.Float32, DType.BFloat16): _f32ToBf16(n, View<float>(source), View<ushort>(destination), l); return;
            case (DType.BFloat16, DType.Float32): _bf16ToF32(n, View<ushort>(source), View<float>(destination), l); return;
            case (DType.Float32, DType.Float16): _f32ToF16(n, View<float>(source), View<ushort>(destination), l); return;
            case (DType.Float16, DType.Float32): _f16ToF32(n, View<ushort>(source), View<float>(destination), l); return;
        }
        CopyConverting(source, destination, l);   // every other pair (integer dtypes, bf16 <-> f16): IlgpuBackend.Indexing.cs
    }

    // ---- element-wise -------------------------------------------------------------------------------

    /// <summary>For the kernels that read and write float32 only (softmax, cross-entropy, RMSNorm, RoPE, indexing,
    /// linear algebra, attention): half-precision operands are refused. Element-wise ops, copies, GEMM, SwiGLU and the
    /// optimizer kernels take bfloat16/float16 too.</summary>
    private static void RequireFloat32(string op, params Tensor[] tensors)
    {
        foreach (var t in tensors)
            if (t.DType != DType.Float32)
                throw new NotSupportedException($"{op} on {t.DType.Name()} tensors has no ILGPU kernel yet (float32 only).");
    }

    public void Unary(UnaryOp op, Tensor x, Tensor y, float p0, float p1)
    {
        if (x.Numel == 0) return;
        if (x.DType == DType.Float32 && y.DType == DType.Float32)
        {
            _unary(x.Numel, View<float>(x), View<float>(y), (int)op, p0, p1);
            return;
        }
        // Half-precision tensors (e.g. clipping a bf16 gradient in place): float32 math, rounded once into y, as on the CPU.
        foreach (var t in new[] { x, y })
            if (!t.DType.IsFloatingPoint()) throw new ArgumentException($"unary: {t.Describe()} is not a floating-point tensor.");
        using var x32 = WidenedOrNull(x);
        using var y32 = y.DType == DType.Float32 ? null : Tensor.Empty(y.Shape, DType.Float32, this);
        Unary(op, x32 ?? x, y32 ?? y, p0, p1);
        if (y32 != null) Copy(y32, y);
    }

    public void UnaryBackward(UnaryOp op, Tensor x, Tensor y, Tensor gy, Tensor gx, float p0, float p1)
    {
        if (x.Numel == 0) return;
        _unaryBackward(x.Numel, View<float>(x), View<float>(y), View<float>(gy), View<float>(gx), (int)op, p0, p1);
    }

    public void Binary(BinaryOp op, Tensor a, Tensor b, Tensor y)
    {
        if (y.Numel == 0) return;
        if (a.DType == DType.Float32 && b.DType == DType.Float32 && y.DType == DType.Float32)
        {
            var l = StridedLayout.Create(y.Shape, a.Strides, b.Strides, y.Strides);
            _binary(y.Numel, View<float>(a), View<float>(b), View<float>(y), l, (int)op);
            return;
        }
        // Half-precision operands (bf16 activations, bf16 gradients accumulating): widened into float32 temporaries by
        // the Copy kernels, combined in float32 and rounded once into y — the CPU backend's arithmetic. y may be a or b
        // (in-place accumulation): the temporaries are read before y is written.
        foreach (var t in new[] { a, b, y })
            if (!t.DType.IsFloatingPoint()) throw new ArgumentException($"binary: {t.Describe()} is not a floating-point tensor.");
        using var a32 = WidenedOrNull(a);
        using var b32 = WidenedOrNull(b);
        using var y32 = y.DType == DType.Float32 ? null : Tensor.Empty(y.Shape, DType.Float32, this);
        Binary(op, a32 ?? a, b32 ?? b, y32 ?? y);
        if (y32 != null) Copy(y32, y);
    }

    /// <summary>A contiguous float32 copy of a half-precision view (broadcast strides included), or null for float32.</summary>
    private Tensor? WidenedOrNull(Tensor t)
    {
        if (t.DType == DType.Float32) return null;
        var wide = Tensor.Empty(t.Shape, DType.Float32, this);
        Copy(t, wide);
        return wide;
    }

    public void Reduce(ReduceOp op, Tensor x, int axis, Tensor y)
    {
        var shape = x.Shape;
        int len = shape[axis], outer = 1, inner = 1;
        for (int i = 0; i < axis; i++) outer *= shape[i];
        for (int i = axis + 1; i < shape.Length; i++) inner *= shape[i];
        if (outer * inner == 0) return;
        _reduce(outer * inner, View<float>(x), View<float>(y), len, inner, op == ReduceOp.Sum ? 0 : 1);
    }

}
