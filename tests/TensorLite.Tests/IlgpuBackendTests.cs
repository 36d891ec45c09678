using TensorLite.Memory;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using TensorLite.Backends.Cpu;
using TensorLite.Ilgpu;
using TensorLite.Tests.Support;
using Xunit;
using static TensorLite.Tests.Support.BackendCompare;

namespace TensorLite.Tests;

/// <summary>One ILGPU backend on the CPU accelerator, shared by the tests of <see cref="IlgpuBackendTests"/> so the
/// kernels are compiled once.</summary>
public sealed class IlgpuCpuFixture : IDisposable
{
    public IlgpuBackend Backend { get; } = IlgpuBackend.Create(DeviceKind.Cpu);

    // Groups of 16 threads (the device runs groups of one), so the kernels' barriers and shared memory are exercised.
    public IlgpuCpuFixture() => Backend.GroupThreadsLimit = 16;

    public void Dispose()
    {
        Backend.Dispose();
        // Run pending finalizers now rather than inside a later test that reads the process-wide CPU pool counters.
        GC.Collect();
        GC.WaitForPendingFinalizers();
    }
}

/// <summary>Every ILGPU kernel against the CPU backend, run on ILGPU's CPU accelerator (no GPU needed), plus an
/// offline PTX compile of every kernel.</summary>
public sealed class IlgpuBackendTests(IlgpuCpuFixture fixture) : IClassFixture<IlgpuCpuFixture>
{
    private readonly IlgpuBackend _gpu = fixture.Backend;
    private static readonly IBackend Cpu = CpuBackend.Instance;

    /// <summary>Runs the same computation on the CPU backend and the ILGPU backend and compares the results.</summary>
    private void SameOnBoth(Func<IBackend, float[]> compute, float tol = 1e-5f, string what = "") =>
        AssertClose(compute(Cpu), compute(_gpu), tol, what);

    [Fact]
    public void Create_Cpu_SaysWhichAcceleratorRuns()
    {
        Assert.Equal(DeviceKind.Cpu, _gpu.Kind);
        Assert.Equal(AcceleratorType.CPU, _gpu.Accelerator.AcceleratorType);
        Assert.Contains("CPU", _gpu.Description);
        Assert.Equal("ilgpu-cpu", _gpu.Name);
    }

    [Fact]
    public void Auto_PicksCudaOnlyWhenADeviceIsVisible_AndSaysWhich()
    {
        using var auto = IlgpuBackend.Auto();
        bool hasCuda;
        using (var ctx = Context.Create(b => b.Cuda())) hasCuda = ctx.GetCudaDevices().Count > 0;
        Assert.Equal(hasCuda ? DeviceKind.Cuda : DeviceKind.Cpu, auto.Kind);
        Assert.Contains(hasCuda ? "CUDA" : "CPU", auto.Description);
        if (!hasCuda) Assert.Throws<NotSupportedException>(() => IlgpuBackend.Create(DeviceKind.Cuda));
        using var t = Tensor.FromSpan<float>([1f, 2f], [2], DType.Float32, auto);
        Assert.Equal([1f, 2f], t.ToArray());
    }

    [Fact]
    public void HostRoundTrip_KeepsBytesOfEveryDType()
    {
        using var f = Make(_gpu, [1.5f, -2f, 3.25f], 3);
        Assert.Equal([1.5f, -2f, 3.25f], f.ToArray<float>());
        using var i = Tensor.FromSpan<int>([7, -8, int.MaxValue], [3], DType.Int32, _gpu);
        Assert.Equal([7, -8, int.MaxValue], i.ToArray<int>());
        using var l = Tensor.FromSpan<long>([long.MinValue, 5], [2], DType.Int64, _gpu);
        Assert.Equal([long.MinValue, 5], l.ToArray<long>());
        using var b = Tensor.FromSpan<byte>([1, 2, 3, 255, 0], [5], DType.UInt8, _gpu);
        Assert.Equal([1, 2, 3, 255, 0], b.ToArray<byte>());
        using var h = Tensor.FromSpan<ushort>([0x3F80, 0xC000, 0x0001], [3], DType.BFloat16, _gpu);
        Assert.Equal([0x3F80, 0xC000, 0x0001], h.ToArray<ushort>());
    }

    [Fact]
    public void CopyFromHost_OfTheWrongLength_IsRefusedByBothBackends()
    {
        foreach (var be in new[] { Cpu, (IBackend)_gpu })
        {
            using var t = Tensor.Zeros([4], DType.Float32, be);
            Assert.Contains("holds 16", Assert.Throws<ArgumentException>(() => be.CopyFromHost(new byte[12], t)).Message);
            Assert.Throws<ArgumentException>(() => be.CopyFromHost(new byte[20], t));
            Assert.Equal([0f, 0f, 0f, 0f], t.ToArray());
        }
    }

    [Theory]
    [InlineData(DType.Float32, -1.25)]
    [InlineData(DType.BFloat16, 3.140625)]
    [InlineData(DType.Float16, -0.1)]
    [InlineData(DType.Int8, -7)]
    [InlineData(DType.UInt8, 200)]
    [InlineData(DType.Int32, -123456)]
    [InlineData(DType.Int64, 9876543210)]
    public void Fill_EveryDType_MatchesCpu(DType dtype, double value)
    {
        byte[] Bytes(IBackend be)
        {
            using var t = Tensor.Full([5, 3], value, dtype, be);
            var host = new byte[t.Numel * dtype.SizeInBytes()];
            be.CopyToHost(t, host);
            return host;
        }
        Assert.Equal(Bytes(Cpu), Bytes(_gpu));
    }

    [Fact]
    public void Copy_StridedViewsIntoContiguous_MatchesCpu()
    {
        var data = RandomData(2 * 3 * 4 * 5, 1);
        SameOnBoth(be => { using var x = Make(be, data, 2, 3, 4, 5); using var v = x.Permute(3, 1, 0, 2); using var c = v.Contiguous(); return c.ToArray(); }, 0f, "permute");
        SameOnBoth(be => { using var x = Make(be, data, 6, 20); using var v = x.T; using var n = v.Narrow(0, 3, 9); using var c = n.Contiguous(); return c.ToArray(); }, 0f, "transpose+narrow");
        SameOnBoth(be => { using var x = Make(be, data[..5], 5, 1); using var v = x.Expand(5, 7); using var c = v.Contiguous(); return c.ToArray(); }, 0f, "expand");
    }

    [Fact]
    public void Copy_StridedIntoStridedDestination_MatchesCpu()
    {
        var src = RandomData(4 * 6, 2);
        SameOnBoth(be =>
        {
            using var s = Make(be, src, 4, 6);
            using var st = s.T;                       // [6, 4] strided source
            using var d = Tensor.Zeros([4, 6], DType.Float32, be);
            using var dt = d.T;                       // [6, 4] strided destination
            be.Copy(st, dt);
            return d.ToArray();
        }, 0f);
    }

    [Theory]
    [InlineData(DType.BFloat16)]
    [InlineData(DType.Float16)]
    public void Copy_HalfPrecisionConversions_MatchCpu(DType dtype)
    {
        var data = RandomData(3 * 7, 3, -100f, 100f);
        data[0] = 0f; data[1] = 1f / 3f; data[2] = 65504f; data[3] = float.NaN;
        data[4] = 1e-6f; data[5] = -3e-8f; data[6] = 70000f; data[7] = 2.5e-5f; data[8] = 1.00048828125f; // subnormal, overflow, tie
        SameOnBoth(be => { using var x = Make(be, data, 3, 7); using var v = x.T; using var h = v.To(dtype); return h.ToArray(); }, 0f, dtype.Name());
        ushort[] Bits(IBackend be) { using var x = Make(be, data, 3, 7); using var h = x.To(dtype); return h.ToArray<ushort>(); }
        var cpuBits = Bits(Cpu);
        var gpuBits = Bits(_gpu);
        for (int i = 4; i < data.Length; i++) Assert.Equal(cpuBits[i], gpuBits[i]);
    }

    public static TheoryData<UnaryOp> UnaryOps() => new(Enum.GetValues<UnaryOp>());

    [Theory]
    [MemberData(nameof(UnaryOps))]
    public void Unary_ForwardAndBackward_MatchCpu(UnaryOp op)
    {
        bool positive = op is UnaryOp.Log or UnaryOp.Sqrt or UnaryOp.Rsqrt or UnaryOp.Pow;
        var x = RandomData(37, (int)op, positive ? 0.1f : -3f, 3f);
        var gy = RandomData(37, 100 + (int)op);
        float p0 = op == UnaryOp.Clamp ? -0.5f : op == UnaryOp.Pow ? 1.7f : 0.75f;
        float p1 = op == UnaryOp.Clamp ? 1.25f : -0.3f;
        SameOnBoth(be =>
        {
            using var xt = Make(be, x, 37);
            using var y = Tensor.Empty([37], DType.Float32, be);
            be.Unary(op, xt, y, p0, p1);
            using var g = Make(be, gy, 37);
            using var gx = Tensor.Empty([37], DType.Float32, be);
            be.UnaryBackward(op, xt, y, g, gx, p0, p1);
            return [.. y.ToArray(), .. gx.ToArray()];
        }, 2e-5f, op.ToString());
    }

    public static TheoryData<BinaryOp> BinaryOps() => new(Enum.GetValues<BinaryOp>());

    [Theory]
    [MemberData(nameof(BinaryOps))]
    public void Binary_BroadcastAndTransposedViews_MatchCpu(BinaryOp op)
    {
        var a = RandomData(4 * 5, 10);
        var b = RandomData(3 * 5, 11);
        b[2] = a[2]; // an equal pair for Equal
        SameOnBoth(be =>
        {
            using var at = Make(be, a, 5, 4);
            using var atT = at.T;                     // [4, 5], transposed strides
            using var a3 = atT.Unsqueeze(0);          // [1, 4, 5]
            using var ae = a3.Expand(3, 4, 5);        // zero stride on dim 0
            using var bt = Make(be, b, 3, 1, 5);
            using var be2 = bt.Expand(3, 4, 5);       // zero stride on dim 1
            using var y = Tensor.Empty([3, 4, 5], DType.Float32, be);
            be.Binary(op, ae, be2, y);
            return y.ToArray();
        }, 1e-6f, op.ToString());
    }

    [Theory]
    [InlineData(DType.BFloat16, DType.BFloat16, DType.BFloat16)]
    [InlineData(DType.BFloat16, DType.Float32, DType.Float32)]
    [InlineData(DType.Float16, DType.BFloat16, DType.Float32)]
    [InlineData(DType.Float32, DType.Float32, DType.BFloat16)]
    public void Binary_HalfPrecisionOperands_MatchCpuBitwise(DType aType, DType bType, DType yType)
    {
        var a = RandomData(4 * 5, 12);
        var b = RandomData(3 * 5, 13);
        foreach (var op in new[] { BinaryOp.Add, BinaryOp.Mul, BinaryOp.Div })
            SameOnBoth(be =>
            {
                using var a32 = Make(be, a, 5, 4);
                using var ah = a32.To(aType);
                using var aT = ah.T;                      // [4, 5], transposed strides
                using var a3 = aT.Unsqueeze(0);
                using var ae = a3.Expand(3, 4, 5);        // broadcast over dim 0
                using var b32 = Make(be, b, 3, 1, 5);
                using var bh = b32.To(bType);
                using var bx = bh.Expand(3, 4, 5);        // broadcast over dim 1
                using var y = Tensor.Empty([3, 4, 5], yType, be);
                be.Binary(op, ae, bx, y);
                return y.ToArray();
            }, 0f, $"{op} {aType}·{bType}→{yType}");
    }

    [Theory]
    [InlineData(DType.BFloat16, DType.BFloat16)]
    [InlineData(DType.Float16, DType.Float32)]
    [InlineData(DType.Float32, DType.BFloat16)]
    public void Unary_HalfPrecisionTensors_MatchCpu(DType xType, DType yType)
    {
        var x = RandomData(41, 16);
        foreach (var (op, p0, p1) in new[] { (UnaryOp.Affine, 0.37f, 0f), (UnaryOp.Silu, 0f, 0f), (UnaryOp.Exp, 0f, 0f) })
            SameOnBoth(be =>
            {
                using var x32 = Make(be, x, 41);
                using var xh = x32.To(xType);
                using var y = Tensor.Empty([41], yType, be);
                be.Unary(op, xh, y, p0, p1);
                return y.ToArray();
            }, // exp/silu differ from the CPU's by an ulp of float32, which may carry one half-precision rounding
            yType == DType.Float32 ? 1e-6f : 1e-2f, $"{op} {xType}→{yType}");
    }

    [Fact]
    public void Binary_InPlaceBf16Accumulation_MatchesCpuBitwise()
    {
        var a = RandomData(37, 14);
        var b = RandomData(37, 15);
        SameOnBoth(be =>
        {
            using var a32 = Make(be, a, 37);
            using var acc = a32.To(DType.BFloat16);
            using var b32 = Make(be, b, 37);
            using var inc = b32.To(DType.BFloat16);
            be.Binary(BinaryOp.Add, acc, inc, acc); // how the engine accumulates a bf16 gradient
            return acc.ToArray();
        }, 0f);
    }

    [Theory]
    [InlineData(ReduceOp.Sum, 0)]
    [InlineData(ReduceOp.Sum, 1)]
    [InlineData(ReduceOp.Sum, 2)]
    [InlineData(ReduceOp.Max, 0)]
    [InlineData(ReduceOp.Max, 1)]
    [InlineData(ReduceOp.Max, 2)]
    public void Reduce_AlongOneAxis_MatchesCpu(ReduceOp op, int axis)
    {
        var x = RandomData(3 * 4 * 5, 20 + axis);
        int[] shape = [3, 4, 5];
        int[] outShape = (int[])shape.Clone();
        outShape[axis] = 1;
        SameOnBoth(be =>
        {
            using var xt = Make(be, x, shape);
            using var y = Tensor.Empty(outShape, DType.Float32, be);
            be.Reduce(op, xt, axis, y);
            return y.ToArray();
        }, 1e-5f);
    }

    [Theory]
    [InlineData(1, 1, 1, false, false, 1)]       // naive path
    [InlineData(3, 5, 7, true, false, 1)]        // naive path, transposed a
    [InlineData(16, 16, 16, false, false, 1)]    // exactly one tile
    [InlineData(17, 33, 20, false, false, 1)]    // ragged edge tiles in m, n and k
    [InlineData(17, 33, 20, true, false, 1)]
    [InlineData(17, 33, 20, false, true, 1)]
    [InlineData(31, 18, 40, true, true, 1)]
    [InlineData(20, 24, 19, false, true, 3)]     // batched
    public void MatMul_TiledAndNaive_MatchCpu(int m, int n, int k, bool transA, bool transB, int batch)
    {
        var a = RandomData(batch * m * k, m * 7 + k);
        var b = RandomData(batch * k * n, n * 3 + k);
        var c0 = RandomData(batch * m * n, 99);
        SameOnBoth(be =>
        {
            using var at = transA ? Make(be, a, batch, k, m) : Make(be, a, batch, m, k);
            using var av = transA ? at.Transpose(1, 2) : at.Alias();
            using var bt = transB ? Make(be, b, batch, n, k) : Make(be, b, batch, k, n);
            using var bv = transB ? bt.Transpose(1, 2) : bt.Alias();
            using var c = Make(be, c0, batch, m, n);
            be.MatMul(av, bv, c, 0.5f, 0.25f);
            using var d = Tensor.Empty([batch, m, n], DType.Float32, be);
            be.MatMul(av, bv, d, 1f, 0f);
            return [.. c.ToArray(), .. d.ToArray()];
        }, 1e-4f);
    }

    [Fact]
    public void MatMul_BroadcastBatchOperand_MatchesCpu()
    {
        var a = RandomData(2 * 3 * 18 * 17, 5);
        var b = RandomData(17 * 20, 6);
        SameOnBoth(be =>
        {
            using var at = Make(be, a, 2, 3, 18, 17);
            using var bt = Make(be, b, 1, 1, 17, 20);
            using var bv = bt.Expand(2, 3, 17, 20);   // zero batch strides
            using var c = Tensor.Empty([2, 3, 18, 20], DType.Float32, be);
            be.MatMul(at, bv, c, 1f, 0f);
            return c.ToArray();
        }, 1e-4f);
    }

    [Fact]
    public void AdamWStep_MatchesCpu()
    {
        var p = RandomData(45, 30); var g = RandomData(45, 31); var m = RandomData(45, 32, -0.1f, 0.1f); var v = RandomData(45, 33, 0f, 0.1f);
        var h = new AdamWStepParams(1e-2f, 0.9f, 0.999f, 1e-8f, 0.1f, 1f - 0.9f * 0.9f, 1f - 0.999f * 0.999f);
        SameOnBoth(be =>
        {
            using var pt = Make(be, p, 45); using var gt = Make(be, g, 45);
            using var mt = Make(be, m, 45); using var vt = Make(be, v, 45);
            be.AdamWStep(pt, gt, mt, vt, h);
            be.AdamWStep(pt, gt, mt, vt, h);
            return [.. pt.ToArray(), .. mt.ToArray(), .. vt.ToArray()];
        }, 1e-5f);
    }

    [Fact]
    public void MemoryPool_CountsLiveAndPeakBytes_AndReusesBuffers()
    {
        var pool = _gpu.Pool;
        long live0 = pool.LiveBytes;
        pool.ResetPeak();
        var t1 = Tensor.Empty([1000], DType.Float32, _gpu);
        var t2 = Tensor.Empty([10], DType.Float32, _gpu);
        long size1 = BlockCachePolicy.Device.RoundUp(4000), size2 = BlockCachePolicy.Device.RoundUp(40);
        Assert.Equal(live0 + size1 + size2, pool.LiveBytes);
        t1.Dispose();
        t2.Dispose();
        Assert.Equal(live0, pool.LiveBytes);
        Assert.Equal(live0 + size1 + size2, pool.PeakBytes);
        long allocations = pool.DeviceAllocations;
        using var t3 = Tensor.Empty([1000], DType.Float32, _gpu);
        Assert.Equal(allocations, pool.DeviceAllocations); // served from the cache
    }

    [Fact]
    public void EndToEnd_MatMulSiluSum_ForwardAndBackward_MatchCpu()
    {
        var x = RandomData(5 * 20, 40);
        var w = RandomData(18 * 20, 41, -0.5f, 0.5f);
        (float loss, float[] gx, float[] gw) Run(IBackend be)
        {
            using var xt = Make(be, x, 5, 20);
            using var wt = Make(be, w, 18, 20);
            xt.RequiresGrad = true;
            wt.RequiresGrad = true;
            using var wT = wt.T;
            using var h = xt.MatMul(wT);
            using var s = h.Silu();
            using var y = s.Sum();
            y.Backward();
            Assert.Same(be, xt.Grad!.Backend);
            var result = (y.Item(), xt.Grad!.ToArray(), wt.Grad!.ToArray());
            xt.Grad.Dispose();
            wt.Grad.Dispose();
            return result;
        }
        var cpu = Run(Cpu);
        var gpu = Run(_gpu);
        Assert.True(Math.Abs(cpu.loss - gpu.loss) <= 1e-4f * (1 + Math.Abs(cpu.loss)), $"loss {cpu.loss} vs {gpu.loss}");
        AssertClose(cpu.gx, gpu.gx, 1e-4f, "dx");
        AssertClose(cpu.gw, gpu.gw, 1e-4f, "dw");
    }

    [Fact]
    public void OpsWithoutKernel_ThrowNotSupported()
    {
        // Dropout, the member used here before, has a kernel now. A view that does not collapse to the kernels'
        // six strided dimensions is a limit that stays: seven reversed dims cannot be merged.
        using var x = Tensor.Zeros([2, 2, 2, 2, 2, 2, 2], DType.Float32, _gpu);
        using var reversed = x.Permute(6, 5, 4, 3, 2, 1, 0);
        using var y = Tensor.Empty([2, 2, 2, 2, 2, 2, 2], DType.Float32, _gpu);
        var e = Assert.Throws<NotSupportedException>(() => _gpu.Copy(reversed, y));
        Assert.Contains("have no ILGPU kernel yet", e.Message);
    }

    [Theory]
    [InlineData(80)]
    [InlineData(90)]
    public void EveryKernel_CompilesToPtxOffline(int sm)
    {
        using var ptx = new OfflinePtx(sm);
        foreach (var (method, explicitlyGrouped) in TensorLite.Ilgpu.IlgpuKernels.All())
            Assert.Contains(".entry", ptx.Compile(method, explicitlyGrouped));
    }
}

/// <summary>Host↔device copies under garbage collection. The test forces collections continuously, which would stall
/// every test running beside it, so it runs alone.</summary>
[Collection(nameof(SerialMemoryTests))]
public sealed class IlgpuHostCopyTests
{
    [Fact]
    public void HostCopies_StayExact_WhileAnotherThreadCompactsTheManagedHeap()
    {
        // Regression: the host side of a copy must be pinned, or a garbage collection (triggered by any thread) moves
        // the managed array between taking its address and the copy — the copy then reads or writes whatever the heap
        // holds there. Unpinned, this loop went wrong within about 5,000 rounds here (wrong values, sometimes a crash).
        using var gpu = IlgpuBackend.Create(DeviceKind.Cpu);
        using var device = Tensor.Empty([4096], DType.Float32, gpu);
        bool stop = false;
        var compactor = new Thread(() =>
        {
            var garbage = new List<object>();
            while (!Volatile.Read(ref stop))
            {
                for (int i = 0; i < 200; i++) garbage.Add(new object[8]);
                if (garbage.Count > 20_000) garbage.Clear();
                GC.Collect(0, GCCollectionMode.Forced, blocking: true, compacting: true);
            }
        });
        compactor.Start();
        int wrong = 0;
        try
        {
            for (int round = 0; round < 20_000 && wrong == 0; round++)
            {
                var sent = new float[device.Numel];
                for (int i = 0; i < sent.Length; i++) sent[i] = round + i;
                gpu.CopyFromHost(System.Runtime.InteropServices.MemoryMarshal.AsBytes(sent.AsSpan()), device);
                var received = new float[device.Numel];
                gpu.CopyToHost(device, System.Runtime.InteropServices.MemoryMarshal.AsBytes(received.AsSpan()));
                if (!received.AsSpan().SequenceEqual(sent)) wrong++;
            }
        }
        finally
        {
            Volatile.Write(ref stop, true);
            compactor.Join();
        }
        Assert.Equal(0, wrong);
    }
}
