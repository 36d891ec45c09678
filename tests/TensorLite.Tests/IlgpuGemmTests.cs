using TensorLite.Backends.Cpu;
using TensorLite.Ilgpu;
using TensorLite.Tests.Support;
using Xunit;

namespace TensorLite.Tests;

/// <summary>Two ILGPU backends on the CPU accelerator for <see cref="IlgpuGemmTests"/>: the standard one (16-thread
/// warps) and one with 32-thread warps, as on NVIDIA hardware, that routes bf16×bf16 and f16×f16 products through the
/// tensor-core kernel's emulated mma path.</summary>
public sealed class IlgpuGemmFixture : IDisposable
{
    public IlgpuBackend Backend { get; } = IlgpuBackend.Create(DeviceKind.Cpu);

    public IlgpuBackend TensorCoreEmulation { get; }

    public IlgpuGemmFixture()
    {
        Backend.GroupThreadsLimit = 16;   // 4×4-thread groups: the blocked kernel's cooperation is exercised
        TensorCoreEmulation = IlgpuBackend.CreateCpu(warpSize: 32, warpsPerGroup: 4);
        TensorCoreEmulation.EmulateTensorCores();
    }

    public void Dispose()
    {
        Backend.Dispose();
        TensorCoreEmulation.Dispose();
        GC.Collect();
        GC.WaitForPendingFinalizers();
    }
}

/// <summary>
/// The ILGPU GEMM kernels (naive, block-tiled register-blocked, tensor-core) against the CPU backend on ILGPU's CPU
/// accelerator: ragged shapes around the 64-wide block edges, transposed operands, batches with broadcast operands,
/// alpha/beta, every float32/bfloat16/float16 combination of a, b and c; and the offline PTX of the tensor-core kernel.
/// </summary>
public sealed class IlgpuGemmTests(IlgpuGemmFixture fixture) : IClassFixture<IlgpuGemmFixture>
{
    private readonly IlgpuBackend _gpu = fixture.Backend;
    private readonly IlgpuBackend _tensorCores = fixture.TensorCoreEmulation;
    private static readonly IBackend Cpu = CpuBackend.Instance;

    private static float[] Data(int n, int seed)
    {
        var rng = new Random(seed);
        var d = new float[n];
        for (int i = 0; i < n; i++) d[i] = -2f + 4f * (float)rng.NextDouble();
        return d;
    }

    /// <summary>Relative tolerance per result dtype: float32 differs only by summation order; a half result may
    /// round the other way when the float32 sums straddle a rounding boundary (one unit in the last place).</summary>
    private static float Tolerance(DType c) => c switch
    {
        DType.BFloat16 => 1f / 128,
        DType.Float16 => 1f / 1024,
        _ => 1e-4f,
    };

    private static void AssertClose(float[] expected, float[] actual, float tol, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            float e = expected[i], a = actual[i];
            Assert.True(e == a || Math.Abs(e - a) <= tol * (1f + Math.Abs(e)), $"{what}[{i}]: expected {e}, got {a}");
        }
    }

    /// <summary>A tensor of the given dtype holding <paramref name="data"/> (rounded once, the same way on both backends).</summary>
    private static Tensor Make(IBackend be, float[] data, DType dtype, params int[] shape)
    {
        using var f = Tensor.FromSpan<float>(data, shape, DType.Float32, be);
        return f.To(dtype);
    }

    /// <summary>One GEMM case: c = alpha·op(a)·op(b) + beta·c0 over a batch, a stored transposed when
    /// <paramref name="transA"/> (likewise b), both read through transposed views. Returns c as float32.</summary>
    private static float[] RunGemm(IBackend be, int m, int n, int k, bool transA, bool transB, int batch,
        DType at, DType bt, DType ct, float alpha, float beta)
    {
        using var aStored = transA ? Make(be, Data(batch * k * m, m * 7 + k), at, batch, k, m) : Make(be, Data(batch * m * k, m * 7 + k), at, batch, m, k);
        using var a = transA ? aStored.Transpose(1, 2) : aStored.Alias();
        using var bStored = transB ? Make(be, Data(batch * n * k, n * 3 + k), bt, batch, n, k) : Make(be, Data(batch * k * n, n * 3 + k), bt, batch, k, n);
        using var b = transB ? bStored.Transpose(1, 2) : bStored.Alias();
        using var c = Make(be, Data(batch * m * n, 99), ct, batch, m, n);
        be.MatMul(a, b, c, alpha, beta);
        return c.ToArray();
    }

    /// <summary>Runs <paramref name="run"/> on the CPU backend and on <paramref name="gpu"/> with its GEMM forced onto
    /// <paramref name="kernel"/> (via the naive-work threshold), checking that kernel was the one chosen.</summary>
    private static void SameOnBoth(IlgpuBackend gpu, string kernel, Func<IBackend, float[]> run, Func<IlgpuBackend, string> chosen, float tol)
    {
        var expected = run(Cpu);
        long saved = gpu.NaiveGemmMaxWork;
        gpu.NaiveGemmMaxWork = kernel == nameof(GemmKernels.GemmNaive) ? long.MaxValue : -1;
        try
        {
            Assert.Equal(kernel, chosen(gpu));
            AssertClose(expected, run(gpu), tol, kernel);
        }
        finally
        {
            gpu.NaiveGemmMaxWork = saved;
        }
    }

    /// <summary>Which kernel the backend picks for operands of these dtypes (any shape beyond the naive threshold).</summary>
    private static Func<IlgpuBackend, string> KernelFor(DType at, DType bt, DType ct) => gpu =>
    {
        using var a = Tensor.Empty([32, 32], at, gpu);
        using var b = Tensor.Empty([32, 32], bt, gpu);
        using var c = Tensor.Empty([32, 32], ct, gpu);
        return gpu.GemmKernelFor(a, b, c);
    };

    // ---- float32 ------------------------------------------------------------------------------------------

    [Theory]
    [InlineData(1, 1, 1, false, false, 1)]
    [InlineData(17, 33, 20, false, false, 1)]
    [InlineData(17, 33, 20, true, true, 1)]
    [InlineData(65, 31, 70, false, false, 1)]    // crosses the 64 block edge in m (and k is not a multiple of 16)
    [InlineData(65, 31, 70, true, false, 1)]
    [InlineData(31, 65, 70, false, true, 1)]     // crosses it in n
    [InlineData(64, 64, 64, false, false, 1)]    // exactly one block
    [InlineData(96, 80, 33, true, true, 1)]      // two blocks each way, both ragged
    [InlineData(20, 70, 19, false, true, 3)]     // batched
    public void Float32_Blocked_MatchesCpu(int m, int n, int k, bool transA, bool transB, int batch)
    {
        var f = DType.Float32;
        SameOnBoth(_gpu, nameof(GemmKernels.GemmBlocked),
            be => [.. RunGemm(be, m, n, k, transA, transB, batch, f, f, f, 0.5f, 0.25f),
                   .. RunGemm(be, m, n, k, transA, transB, batch, f, f, f, 1f, 0f)],
            KernelFor(f, f, f), Tolerance(f));
    }

    [Theory]
    [InlineData(1, 1, 1, false, false, 1)]
    [InlineData(3, 5, 7, true, false, 2)]
    [InlineData(17, 9, 20, false, true, 1)]
    public void Float32_Naive_MatchesCpu(int m, int n, int k, bool transA, bool transB, int batch)
    {
        var f = DType.Float32;
        SameOnBoth(_gpu, nameof(GemmKernels.GemmNaive),
            be => RunGemm(be, m, n, k, transA, transB, batch, f, f, f, 0.5f, 0.25f),
            KernelFor(f, f, f), Tolerance(f));
    }

    [Fact]
    public void DefaultThreshold_SendsTinyProblemsToTheNaiveKernel_AndOthersToTheBlockedOne()
    {
        using var a = Tensor.Empty([16, 16], DType.Float32, _gpu);
        using var b = Tensor.Empty([16, 16], DType.Float32, _gpu);
        using var c = Tensor.Empty([16, 16], DType.Float32, _gpu);
        using var big = Tensor.Empty([16, 17], DType.Float32, _gpu);
        using var cBig = Tensor.Empty([16, 17], DType.Float32, _gpu);
        Assert.Equal(nameof(GemmKernels.GemmNaive), _gpu.GemmKernelFor(a, b, c));            // 16·16·16 = 4096
        Assert.Equal(nameof(GemmKernels.GemmBlocked), _gpu.GemmKernelFor(a, big, cBig));     // 16·17·16 > 4096
    }

    [Fact]
    public void BetaZero_DoesNotReadC()
    {
        foreach (var kernel in new[] { nameof(GemmKernels.GemmNaive), nameof(GemmKernels.GemmBlocked) })
        {
            SameOnBoth(_gpu, kernel, be =>
            {
                using var a = Make(be, Data(9 * 70, 1), DType.Float32, 9, 70);
                using var b = Make(be, Data(70 * 11, 2), DType.Float32, 70, 11);
                using var c = Tensor.Empty([9, 11], DType.Float32, be);
                be.Fill(c, double.NaN);
                be.MatMul(a, b, c, 1f, 0f);
                var r = c.ToArray();
                Assert.DoesNotContain(r, float.IsNaN);
                return r;
            }, KernelFor(DType.Float32, DType.Float32, DType.Float32), 1e-4f);
        }
    }

    [Theory]
    [InlineData(nameof(GemmKernels.GemmNaive))]
    [InlineData(nameof(GemmKernels.GemmBlocked))]
    public void BroadcastBatchOperands_MatchCpu(string kernel)
    {
        var a = Data(2 * 3 * 18 * 67, 5);
        var b = Data(67 * 20, 6);
        var a2 = Data(3 * 18 * 67, 7);
        var b2 = Data(2 * 3 * 67 * 20, 8);
        SameOnBoth(_gpu, kernel, be =>
        {
            // b broadcast over both batch dims (zero strides), then a broadcast over the first one.
            using var at = Make(be, a, DType.Float32, 2, 3, 18, 67);
            using var bt = Make(be, b, DType.Float32, 1, 1, 67, 20);
            using var bv = bt.Expand(2, 3, 67, 20);
            using var c = Tensor.Empty([2, 3, 18, 20], DType.Float32, be);
            be.MatMul(at, bv, c, 1f, 0f);
            using var a2t = Make(be, a2, DType.Float32, 1, 3, 18, 67);
            using var a2v = a2t.Expand(2, 3, 18, 67);
            using var b2t = Make(be, b2, DType.Float32, 2, 3, 67, 20);
            using var c2 = Tensor.Empty([2, 3, 18, 20], DType.Float32, be);
            be.MatMul(a2v, b2t, c2, 2f, 0f);
            return [.. c.ToArray(), .. c2.ToArray()];
        }, KernelFor(DType.Float32, DType.Float32, DType.Float32), 1e-4f);
    }

    [Fact]
    public void BatchLargerThanTheGridZ_GroupsLoopOverTheRest()
    {
        int saved = _gpu.MaxGridZ, savedTc = _tensorCores.MaxGridZ;
        _gpu.MaxGridZ = 2;
        _tensorCores.MaxGridZ = 2;
        try
        {
            var f = DType.Float32;
            SameOnBoth(_gpu, nameof(GemmKernels.GemmBlocked),
                be => RunGemm(be, 9, 20, 30, false, true, 5, f, f, f, 1f, 0.5f), KernelFor(f, f, f), 1e-4f);
            var h = DType.BFloat16;
            SameOnBoth(_tensorCores, nameof(GemmKernels.GemmTensorCore),
                be => RunGemm(be, 9, 20, 30, true, false, 5, h, h, f, 1f, 0.5f), KernelFor(h, h, f), 1e-4f);
        }
        finally
        {
            _gpu.MaxGridZ = saved;
            _tensorCores.MaxGridZ = savedTc;
        }
    }

    // ---- mixed precision (portable kernels) -------------------------------------------------------------

    public static TheoryData<DType, DType, DType> AllDTypeCombinations()
    {
        var data = new TheoryData<DType, DType, DType>();
        DType[] types = [DType.Float32, DType.BFloat16, DType.Float16];
        foreach (var a in types)
            foreach (var b in types)
                foreach (var c in types)
                    data.Add(a, b, c);
        return data;
    }

    [Theory]
    [MemberData(nameof(AllDTypeCombinations))]
    public void MixedPrecision_Blocked_MatchesCpu(DType at, DType bt, DType ct)
    {
        SameOnBoth(_gpu, nameof(GemmKernels.GemmBlocked),
            be => RunGemm(be, 33, 65, 37, transA: at != DType.Float32, transB: bt == DType.Float32, 1, at, bt, ct, 0.5f, 0.25f),
            KernelFor(at, bt, ct), Tolerance(ct));
    }

    [Theory]
    [InlineData(DType.BFloat16, DType.Float32, DType.Float32)]
    [InlineData(DType.Float16, DType.BFloat16, DType.Float32)]
    [InlineData(DType.BFloat16, DType.BFloat16, DType.BFloat16)]
    [InlineData(DType.Float16, DType.Float16, DType.Float16)]
    [InlineData(DType.Float32, DType.Float32, DType.BFloat16)]
    public void MixedPrecision_Naive_MatchesCpu(DType at, DType bt, DType ct)
    {
        SameOnBoth(_gpu, nameof(GemmKernels.GemmNaive),
            be => RunGemm(be, 7, 9, 11, true, false, 2, at, bt, ct, 0.5f, 0.25f),
            KernelFor(at, bt, ct), Tolerance(ct));
    }

    [Fact]
    public void NonFloatOperand_Throws()
    {
        using var a = Tensor.Empty([2, 2], DType.Int32, _gpu);
        using var b = Tensor.Empty([2, 2], DType.Float32, _gpu);
        using var c = Tensor.Empty([2, 2], DType.Float32, _gpu);
        Assert.Throws<ArgumentException>(() => _gpu.MatMul(a, b, c, 1f, 0f));
    }

    [Fact]
    public void OpLevelMatMul_MixedPrecisionForwardAndBackward_MatchesCpu()
    {
        // Tensor.MatMul's dtype rules on top of the backend: bf16 @ bf16 → bf16 (rounded once), bf16 @ f32 → f32,
        // and each gradient in its input's dtype.
        float[] Run(IBackend be)
        {
            using var x = Make(be, Data(5 * 70, 11), DType.BFloat16, 5, 70);
            using var w = Make(be, Data(66 * 70, 12), DType.BFloat16, 66, 70);
            using var v = Make(be, Data(66 * 3, 13), DType.Float32, 66, 3);
            x.RequiresGrad = true;
            w.RequiresGrad = true;
            using var wt = w.T;
            using var h = x.MatMul(wt);                      // bf16, through a transposed view
            Assert.Equal(DType.BFloat16, h.DType);
            using var y = h.MatMul(v);                       // bf16 @ f32 → f32
            Assert.Equal(DType.Float32, y.DType);
            using var loss = y.Sum();
            loss.Backward();
            Assert.Equal(DType.BFloat16, x.Grad!.DType);
            return [.. y.ToArray(), .. x.Grad!.ToArray(), .. w.Grad!.ToArray()];
        }
        AssertClose(Run(Cpu), Run(_gpu), 2f / 128, "forward and gradients");
    }

    // ---- tensor cores (emulated fragment path) ----------------------------------------------------------

    [Theory]
    [InlineData(1, 1, 1, false, false, 1, DType.BFloat16, DType.Float32)]
    [InlineData(17, 33, 20, false, false, 1, DType.BFloat16, DType.Float32)]
    [InlineData(17, 33, 20, true, true, 1, DType.BFloat16, DType.BFloat16)]
    [InlineData(65, 31, 70, false, true, 1, DType.BFloat16, DType.Float32)]
    [InlineData(31, 65, 70, true, false, 1, DType.Float16, DType.Float32)]
    [InlineData(65, 31, 70, false, false, 1, DType.Float16, DType.Float16)]
    [InlineData(20, 70, 33, false, true, 3, DType.BFloat16, DType.Float16)]
    [InlineData(96, 72, 48, false, false, 1, DType.Float16, DType.BFloat16)]
    public void TensorCore_EmulatedMma_MatchesCpu(int m, int n, int k, bool transA, bool transB, int batch, DType ab, DType ct)
    {
        SameOnBoth(_tensorCores, nameof(GemmKernels.GemmTensorCore),
            be => [.. RunGemm(be, m, n, k, transA, transB, batch, ab, ab, ct, 0.5f, 0.25f),
                   .. RunGemm(be, m, n, k, transA, transB, batch, ab, ab, ct, 1f, 0f)],
            KernelFor(ab, ab, ct), Tolerance(ct));
    }

    [Fact]
    public void TensorCore_BroadcastBatchOperand_MatchesCpu()
    {
        var a = Data(2 * 3 * 18 * 40, 21);
        var b = Data(40 * 20, 22);
        SameOnBoth(_tensorCores, nameof(GemmKernels.GemmTensorCore), be =>
        {
            using var at = Make(be, a, DType.BFloat16, 2, 3, 18, 40);
            using var bt = Make(be, b, DType.BFloat16, 1, 1, 40, 20);
            using var bv = bt.Expand(2, 3, 40, 20);
            using var c = Tensor.Empty([2, 3, 18, 20], DType.Float32, be);
            be.MatMul(at, bv, c, 1f, 0f);
            return c.ToArray();
        }, KernelFor(DType.BFloat16, DType.BFloat16, DType.Float32), 1e-4f);
    }

    [Theory]
    [InlineData(DType.BFloat16, DType.Float16)]
    [InlineData(DType.Float32, DType.BFloat16)]
    [InlineData(DType.Float32, DType.Float32)]
    public void TensorCore_IsNotUsedForOtherOperandMixes(DType at, DType bt) =>
        Assert.Equal(nameof(GemmKernels.GemmBlocked), KernelFor(at, bt, DType.Float32)(_tensorCores));

    [Fact]
    public void TensorCore_IsNotUsedWithoutACudaDevice_OrEmulation()
    {
        Assert.False(_gpu.UsesTensorCores);
        Assert.Equal(nameof(GemmKernels.GemmBlocked), KernelFor(DType.BFloat16, DType.BFloat16, DType.Float32)(_gpu));
    }

    [Theory]
    [InlineData(80)]
    [InlineData(90)]
    public void TensorCoreKernel_PtxContainsMmaSync(int sm)
    {
        using var ptx = new OfflinePtx(sm);
        string Ptx(string name) => ptx.Compile(typeof(GemmKernels).GetMethod(name)!);
        string tensorCore = Ptx(nameof(GemmKernels.GemmTensorCore));
        Assert.Contains("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32", tensorCore);
        Assert.Contains("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32", tensorCore);
        Assert.Contains(".target sm_80", tensorCore);
        Assert.DoesNotContain("mma", Ptx(nameof(GemmKernels.GemmBlocked)));
    }

    [Fact]
    public void GemmKernels_AreListedForThePtxCheck()
    {
        var listed = TensorLite.Ilgpu.IlgpuKernels.All().Select(k => k.Method.Name).ToHashSet();
        Assert.Contains(nameof(GemmKernels.GemmNaive), listed);
        Assert.Contains(nameof(GemmKernels.GemmBlocked), listed);
        Assert.Contains(nameof(GemmKernels.GemmTensorCore), listed);
    }
}
