using TensorLite.Backends.Cpu;
using TensorLite.Ilgpu;
using Xunit;
using static TensorLite.Tests.Support.BackendCompare;

namespace TensorLite.Tests;

/// <summary>The ILGPU softmax, cross-entropy, RMSNorm and RoPE kernels against the CPU backend, on ILGPU's CPU
/// accelerator. Row lengths cover 1, odd lengths and lengths above <see cref="IlgpuKernels.RowGroupSize"/>.
/// (Their PTX compile is covered by <see cref="IlgpuBackendTests.EveryKernel_CompilesToPtxOffline"/>, which walks
/// <see cref="IlgpuKernels.All"/>; <see cref="NnKernels_AreListedForThePtxCheck"/> checks they are listed.)</summary>
public sealed class IlgpuNnTests(IlgpuCpuFixture fixture) : IClassFixture<IlgpuCpuFixture>
{
    private readonly IlgpuBackend _gpu = fixture.Backend;
    private static readonly IBackend Cpu = CpuBackend.Instance;
    private const int Ignore = -100;

    /// <summary>Runs <paramref name="compute"/> on both backends; each returns named arrays compared pairwise.</summary>
    private void SameOnBoth(Func<IBackend, (string Name, float[] Values)[]> compute, float tol = 1e-5f)
    {
        var expected = compute(Cpu);
        var actual = compute(_gpu);
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++) AssertClose(expected[i].Values, actual[i].Values, tol, expected[i].Name);
    }

    public static TheoryData<int[], int, bool> SoftmaxCases()
    {
        var data = new TheoryData<int[], int, bool>();
        foreach (bool log in new[] { false, true })
        {
            data.Add([4, 1], 1, log);          // row length 1
            data.Add([3, 7], 1, log);          // odd length
            data.Add([2, 130], 1, log);        // longer than a group (64), not a multiple of it
            data.Add([5], 0, log);             // a single row
            data.Add([3, 5, 4], 0, log);       // first axis
            data.Add([3, 5, 4], 1, log);       // middle axis
            data.Add([2, 70, 3], 1, log);      // strided axis longer than a group
            data.Add([6, 1, 3], 1, log);       // strided axis of length 1
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(SoftmaxCases))]
    public void Softmax_ForwardAndBackward_AnyAxis_MatchCpu(int[] shape, int axis, bool log)
    {
        int n = shape.Aggregate(1, (a, b) => a * b);
        var x = RandomData(n, n + axis, -3f, 3f);
        var gy = RandomData(n, 2 * n + 1, -1f, 1f);
        SameOnBoth(be =>
        {
            using var xt = Make(be, x, shape);
            using var y = Tensor.Empty(shape, DType.Float32, be);
            be.Softmax(xt, y, axis, log);
            using var gyt = Make(be, gy, shape);
            using var gx = Tensor.Empty(shape, DType.Float32, be);
            be.SoftmaxBackward(y, gyt, gx, axis, log);
            return [("y", y.ToArray()), ("gx", gx.ToArray())];
        });
    }

    [Theory]
    [InlineData(1, 1, false)]      // a single class
    [InlineData(4, 7, false)]      // odd vocabulary
    [InlineData(6, 130, false)]    // vocabulary above the group size
    [InlineData(5, 9, true)]       // int64 targets
    [InlineData(70, 3, true)]      // more rows than the loss kernel's group
    public void CrossEntropy_ForwardAndBackward_WithIgnoredRows_MatchCpu(int n, int v, bool int64)
    {
        var logits = RandomData(n * v, n * 31 + v, -5f, 5f);
        var rng = new Random(n + v);
        var targets = new long[n];
        for (int i = 0; i < n; i++) targets[i] = i % 3 == 1 ? Ignore : rng.Next(v);
        int expectedCount = targets.Count(t => t != Ignore);
        SameOnBoth(be =>
        {
            using var lt = Make(be, logits, n, v);
            using var tt = MakeTargets(be, targets, int64);
            using var rowMax = Tensor.Empty([n], DType.Float32, be);
            using var rowLogSum = Tensor.Empty([n], DType.Float32, be);
            using var loss = Tensor.Empty([], DType.Float32, be);
            int count = be.CrossEntropy(lt, tt, Ignore, rowMax, rowLogSum, loss);
            Assert.Equal(expectedCount, count);
            using var gLoss = Tensor.Scalar(2.5f, be);
            using var g = Tensor.Empty([n, v], DType.Float32, be);
            be.CrossEntropyBackward(lt, tt, Ignore, rowMax, rowLogSum, gLoss, count, g);
            return [("rowMax", rowMax.ToArray()), ("rowLogSum", rowLogSum.ToArray()), ("loss", loss.ToArray()), ("gLogits", g.ToArray())];
        });
    }

    [Fact]
    public void CrossEntropy_EveryRowIgnored_GivesZeroLossCountAndGradient()
    {
        var logits = RandomData(3 * 5, 7, -3f, 3f);
        SameOnBoth(be =>
        {
            using var lt = Make(be, logits, 3, 5);
            using var tt = MakeTargets(be, [Ignore, Ignore, Ignore], false);
            using var rowMax = Tensor.Empty([3], DType.Float32, be);
            using var rowLogSum = Tensor.Empty([3], DType.Float32, be);
            using var loss = Tensor.Full([], 123f, DType.Float32, be);
            Assert.Equal(0, be.CrossEntropy(lt, tt, Ignore, rowMax, rowLogSum, loss));
            using var gLoss = Tensor.Scalar(1f, be);
            using var g = Tensor.Full([3, 5], 7f, DType.Float32, be);
            be.CrossEntropyBackward(lt, tt, Ignore, rowMax, rowLogSum, gLoss, 0, g);
            return [("rowMax", rowMax.ToArray()), ("rowLogSum", rowLogSum.ToArray()), ("loss", loss.ToArray()), ("gLogits", g.ToArray())];
        }, 0f);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void CrossEntropy_TargetOutOfRange_Throws(bool int64)
    {
        using var lt = Make(_gpu, RandomData(2 * 4, 3, -3f, 3f), 2, 4);
        using var tt = MakeTargets(_gpu, [1, 4], int64);
        using var rowMax = Tensor.Empty([2], DType.Float32, _gpu);
        using var rowLogSum = Tensor.Empty([2], DType.Float32, _gpu);
        using var loss = Tensor.Empty([], DType.Float32, _gpu);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => _gpu.CrossEntropy(lt, tt, Ignore, rowMax, rowLogSum, loss));
        Assert.Contains("target id 4 at position 1", e.Message);
    }

    private static Tensor MakeTargets(IBackend be, long[] targets, bool int64) => int64
        ? Tensor.FromSpan<long>(targets, [targets.Length], DType.Int64, be)
        : Tensor.FromSpan<int>(targets.Select(t => (int)t).ToArray(), [targets.Length], DType.Int32, be);

    [Theory]
    [InlineData(3, 1)]      // row length 1
    [InlineData(4, 7)]      // odd
    [InlineData(2, 64)]     // exactly one group
    [InlineData(3, 130)]    // above the group size
    [InlineData(0, 5)]      // no rows: the weight gradient is zero
    public void RmsNorm_ForwardAndBackward_MatchCpu(int rows, int d)
    {
        var x = RandomData(rows * d, rows * 13 + d, -3f, 3f);
        var w = RandomData(d, d, 0.5f, 1.5f);
        var gy = RandomData(rows * d, rows + d * 5, -1f, 1f);
        SameOnBoth(be =>
        {
            using var xt = Make(be, x, rows, d);
            using var wt = Make(be, w, d);
            using var y = Tensor.Empty([rows, d], DType.Float32, be);
            using var rstd = Tensor.Empty([rows], DType.Float32, be);
            be.RmsNorm(xt, wt, 1e-5f, y, rstd);
            using var gyt = Make(be, gy, rows, d);
            using var gx = Tensor.Empty([rows, d], DType.Float32, be);
            using var gw = Tensor.Full([d], 9f, DType.Float32, be);
            be.RmsNormBackward(xt, wt, rstd, gyt, gx, gw);
            // each gradient alone, as autograd asks when only one input needs it
            using var gxOnly = Tensor.Empty([rows, d], DType.Float32, be);
            be.RmsNormBackward(xt, wt, rstd, gyt, gxOnly, null);
            using var gwOnly = Tensor.Empty([d], DType.Float32, be);
            be.RmsNormBackward(xt, wt, rstd, gyt, null, gwOnly);
            return [("y", y.ToArray()), ("rstd", rstd.ToArray()), ("gx", gx.ToArray()), ("gw", gw.ToArray()),
                ("gxOnly", gxOnly.ToArray()), ("gwOnly", gwOnly.ToArray())];
        }, 1e-5f);
    }

    [Theory]
    [InlineData(new[] { 2, 3, 5, 8 }, false)]
    [InlineData(new[] { 2, 3, 5, 8 }, true)]
    [InlineData(new[] { 4, 2 }, false)]          // head dim 2: one pair per row
    [InlineData(new[] { 1, 6, 130 }, true)]      // 65 pairs per row
    public void Rope_ForwardAndInverse_MatchCpu(int[] shape, bool inverse)
    {
        int n = shape.Aggregate(1, (a, b) => a * b);
        int seq = shape[^2], half = shape[^1] / 2;
        var x = RandomData(n, n, -3f, 3f);
        var angles = RandomData(seq * half, seq + half, 0f, 6.3f);
        var cos = angles.Select(MathF.Cos).ToArray();
        var sin = angles.Select(MathF.Sin).ToArray();
        SameOnBoth(be =>
        {
            using var xt = Make(be, x, shape);
            using var ct = Make(be, cos, seq, half);
            using var st = Make(be, sin, seq, half);
            using var y = Tensor.Empty(shape, DType.Float32, be);
            be.Rope(xt, ct, st, y, inverse);
            return [("y", y.ToArray())];
        });
    }

    [Fact]
    public void Rope_InverseUndoesForward()
    {
        var x = RandomData(3 * 4 * 6, 77, -3f, 3f);
        var angles = RandomData(4 * 3, 78, 0f, 6.3f);
        using var xt = Make(_gpu, x, 3, 4, 6);
        using var ct = Make(_gpu, angles.Select(MathF.Cos).ToArray(), 4, 3);
        using var st = Make(_gpu, angles.Select(MathF.Sin).ToArray(), 4, 3);
        using var y = Tensor.Empty([3, 4, 6], DType.Float32, _gpu);
        using var back = Tensor.Empty([3, 4, 6], DType.Float32, _gpu);
        _gpu.Rope(xt, ct, st, y, false);
        _gpu.Rope(y, ct, st, back, true);
        AssertClose(x, back.ToArray(), 1e-5f, "x");
    }

    [Theory]
    [InlineData(1, true, true, DType.Float32)]
    [InlineData(1037, true, true, DType.Float32)]    // not a multiple of any group size
    [InlineData(1037, true, false, DType.Float32)]   // only the gate's gradient wanted
    [InlineData(1037, false, true, DType.Float32)]   // only up's
    [InlineData(1037, true, true, DType.BFloat16)]   // half precision is read and written by the kernels themselves
    [InlineData(1037, true, true, DType.Float16)]
    public void SwiGlu_ForwardAndBackward_MatchCpu(int n, bool wantGate, bool wantUp, DType dtype)
    {
        var gate = RandomData(n, 91, -12f, 12f);
        var up = RandomData(n, 92);
        var gy = RandomData(n, 93);
        SameOnBoth(be =>
        {
            Tensor Input(float[] data)
            {
                using var f = Make(be, data, n);
                return f.To(dtype);
            }
            using var g = Input(gate);
            using var u = Input(up);
            using var dy = Input(gy);
            using var y = Tensor.Empty([n], dtype, be);
            using var gGate = Tensor.Full([n], 7.0, dtype, be);   // an unwanted gradient must stay untouched
            using var gUp = Tensor.Full([n], 7.0, dtype, be);
            be.SwiGlu(g, u, y);
            be.SwiGluBackward(g, u, dy, wantGate ? gGate : null, wantUp ? gUp : null);
            return [("y", y.ToArray()), ("gGate", gGate.ToArray()), ("gUp", gUp.ToArray())];
        }, dtype == DType.Float32 ? 1e-5f : 1e-2f); // half precision: the two backends' float32 values may round apart
    }

    /// <summary>Rope → RMSNorm → matmul → cross-entropy + log-softmax along a non-last axis, forward and backward
    /// through autograd with every tensor on the ILGPU backend: loss and input/weight gradients match the CPU.</summary>
    [Fact]
    public void EndToEnd_RopeRmsNormCrossEntropy_ThroughAutograd_MatchCpu()
    {
        var x = RandomData(1 * 2 * 5 * 8, 90, -1f, 1f);
        var w = RandomData(8, 91, 0.5f, 1.5f);
        var wo = RandomData(7 * 8, 92, -0.5f, 0.5f);
        int[] targets = [3, -100, 0, 6, 2, 2, -100, 5, 1, 4];
        (float Loss, float[] Gx, float[] Gw, float[] Gwo) Run(IBackend be)
        {
            using var xt = Make(be, x, 1, 2, 5, 8);
            using var wt = Make(be, w, 8);
            using var wot = Make(be, wo, 7, 8);
            using var tt = Tensor.FromSpan<int>(targets, [1, 2, 5], DType.Int32, be);
            xt.RequiresGrad = wt.RequiresGrad = wot.RequiresGrad = true;
            using var r = xt.Rope();
            using var h = r.RmsNorm(wt, 1e-5f);
            using var woT = wot.T;
            using var logits = h.MatMul(woT);                 // [1, 2, 5, 7]
            using var ce = Tensor.CrossEntropy(logits, tt);
            using var ls = logits.LogSoftmax(2);              // along seq, not the last axis
            using var lsSum = ls.Sum();
            using var lsScaled = lsSum * 0.01f;
            using var loss = ce + lsScaled;
            loss.Backward();
            var result = (loss.Item(), xt.Grad!.ToArray(), wt.Grad!.ToArray(), wot.Grad!.ToArray());
            xt.Grad.Dispose(); wt.Grad.Dispose(); wot.Grad.Dispose();
            return result;
        }
        var cpu = Run(Cpu);
        var gpu = Run(_gpu);
        Assert.True(Math.Abs(cpu.Loss - gpu.Loss) <= 1e-4f * (1 + Math.Abs(cpu.Loss)), $"loss {cpu.Loss} vs {gpu.Loss}");
        AssertClose(cpu.Gx, gpu.Gx, 1e-4f, "dx");
        AssertClose(cpu.Gw, gpu.Gw, 1e-4f, "dw");
        AssertClose(cpu.Gwo, gpu.Gwo, 1e-4f, "dwo");
    }

    [Fact]
    public void NnKernels_AreListedForThePtxCheck()
    {
        var names = TensorLite.Ilgpu.IlgpuKernels.All().Select(k => (k.Method.Name, k.ExplicitlyGrouped)).ToHashSet();
        foreach (var name in new[] { "SoftmaxRows", "SoftmaxBackwardRows", "CrossEntropyRows", "CrossEntropyLoss", "RmsNormRows", "RmsNormBackwardRows" })
            Assert.Contains((name, true), names);
        foreach (var name in new[] { "CrossEntropyBackward", "RmsNormWeightGrad", "Rope", "SwiGlu", "SwiGluBackward" })
            Assert.Contains((name, false), names);
    }
}
