using System.Reflection;
using System.Text.RegularExpressions;
using TensorLite.Backends.Cpu;
using TensorLite.Backends.Meta;
using TensorLite.Ilgpu;
using TensorLite.Numerics;
using TensorLite.Tests.Support;
using Xunit;
using static TensorLite.Tests.Support.BackendCompare;

namespace TensorLite.Tests;

/// <summary>
/// The backend contract, checked: every <see cref="IBackend"/> member is implemented by the CPU, ILGPU and meta backends
/// themselves (the interface has no default bodies to fall back on), lives in the partial file that matches the
/// interface file declaring it, and is called by at least one of the cross-backend cases below, which run each case on
/// all three backends behind a <see cref="RecordingBackend"/> and compare the CPU and ILGPU results.
/// </summary>
public sealed class BackendContractTests(IlgpuCpuFixture fixture) : IClassFixture<IlgpuCpuFixture>
{
    private static readonly Type[] Backends = [typeof(CpuBackend), typeof(IlgpuBackend), typeof(MetaBackend)];

    private static readonly MethodInfo[] Members = typeof(IBackend).GetMethods();

    private static string Describe(MethodInfo m) =>
        $"{m.Name}({string.Join(", ", m.GetParameters().Select(p => p.ParameterType.Name))})";

    [Fact]
    public void EveryMember_IsDeclaredWithoutADefaultBody()
    {
        var withBody = Members.Where(m => !m.IsAbstract).Select(Describe).ToList();
        Assert.True(withBody.Count == 0, $"IBackend members with a default body (call ReferenceKernels from the backends instead): {string.Join(", ", withBody)}");
    }

    [Fact]
    public void EveryMember_IsImplementedByEachBackendItself()
    {
        foreach (var type in Backends)
        {
            var map = type.GetInterfaceMap(typeof(IBackend));
            var inherited = map.TargetMethods.Where(t => t.DeclaringType != type).Select(Describe).ToList();
            Assert.True(inherited.Count == 0, $"{type.Name} does not implement: {string.Join(", ", inherited)}");
        }
    }

    // ---- the partial-file split --------------------------------------------------------------------

    /// <summary>Where each backend's partial files live, by class name.</summary>
    private static readonly (string Folder, string Class)[] BackendFiles =
    [
        ("src/TensorLite/Backends/Cpu", "CpuBackend"),
        ("kernels/TensorLite.Ilgpu", "IlgpuBackend"),
        ("src/TensorLite/Backends/Meta", "MetaBackend"),
    ];

    [Fact]
    public void EveryMember_IsImplementedInThePartialFileMatchingItsInterfaceFile()
    {
        string root = Repository.Root;
        var problems = new List<string>();
        var declaration = new Regex(@"^    [\w.<>?\[\]]+ (\w+)\s*[({]", RegexOptions.Multiline);
        var interfaceFiles = Directory.GetFiles(Path.Combine(root, "src/TensorLite/Backends"), "IBackend*.cs");
        var declared = new HashSet<string>();
        foreach (var file in interfaceFiles)
        {
            string suffix = Path.GetFileNameWithoutExtension(file)["IBackend".Length..]; // "" or ".Nn"
            var names = declaration.Matches(File.ReadAllText(file)).Select(m => m.Groups[1].Value).Distinct().ToList();
            declared.UnionWith(names);
            foreach (var (folder, cls) in BackendFiles)
            {
                string path = Path.Combine(root, folder, cls + suffix + ".cs");
                if (!File.Exists(path)) { problems.Add($"{folder}/{cls}{suffix}.cs is missing (IBackend{suffix}.cs declares {string.Join(", ", names)})"); continue; }
                string text = File.ReadAllText(path);
                foreach (var name in names)
                    if (!Regex.IsMatch(text, $@"public [^\n;=]*\b{name}\b\s*[({{=]"))
                        problems.Add($"{cls}{suffix}.cs does not implement {name} (declared in IBackend{suffix}.cs)");
            }
        }
        // The parse saw every member, so an unparsed declaration cannot slip through.
        var missed = Members.Select(m => m.IsSpecialName ? m.Name[4..] : m.Name).Distinct().Where(n => !declared.Contains(n)).ToList();
        Assert.True(missed.Count == 0, $"members the file check did not find in IBackend*.cs: {string.Join(", ", missed)}");
        Assert.True(problems.Count == 0, string.Join("\n", problems));
    }

    // ---- the cross-backend cases -------------------------------------------------------------------

    private static Tensor Ints(IBackend be, int[] values, params int[] shape) => Tensor.FromSpan<int>(values, shape, DType.Int32, be);

    private static float[] Floats(Tensor t) => t.DType == DType.UInt8 ? t.ToArray<byte>().Select(b => (float)b).ToArray() : t.ToArray();

    private static readonly AdamWStepParams Adam = new(1e-2f, 0.9f, 0.999f, 1e-8f, 0.1f, 0.19f, 0.002f);

    /// <summary>Each case runs on one backend and returns named results, compared between the CPU and ILGPU backends.</summary>
    private static readonly (string Name, Func<IBackend, (string, float[])[]> Run)[] Cases =
    [
        ("identity and memory", be =>
        {
            Assert.False(string.IsNullOrEmpty(be.Name));
            Assert.False(string.IsNullOrEmpty(be.Description));
            be.TrimCache();
            return [("computes", [be.ComputesValues ? 1f : 0f]), ("ledger", [be.Memory.LiveBytes > 0 ? 1f : 0f])];
        }),
        ("host copies, fill, strided copy", be =>
        {
            using var x = Make(be, RandomData(6, 1), 2, 3);
            using var xt = x.Transpose(0, 1);
            using var y = Tensor.Empty([3, 2], DType.Float32, be);
            be.Copy(xt, y);
            using var f = Tensor.Empty([4], DType.Float32, be);
            be.Fill(f, 1.5);
            return [("copy", y.ToArray()), ("fill", f.ToArray())];
        }),
        ("unary and its gradient", be =>
        {
            using var x = Make(be, RandomData(10, 2), 10);
            using var gy = Make(be, RandomData(10, 3), 10);
            using var y = Tensor.Empty([10], DType.Float32, be);
            using var gx = Tensor.Empty([10], DType.Float32, be);
            be.Unary(UnaryOp.Silu, x, y, 0f, 0f);
            be.UnaryBackward(UnaryOp.Silu, x, y, gy, gx, 0f, 0f);
            return [("y", y.ToArray()), ("gx", gx.ToArray())];
        }),
        ("broadcast binary and reductions", be =>
        {
            using var a = Make(be, RandomData(24, 4), 2, 3, 4);
            using var b = Make(be, RandomData(4, 5), 4);
            using var bb = b.BroadcastView([2, 3, 4]);
            using var y = Tensor.Empty([2, 3, 4], DType.Float32, be);
            be.Binary(BinaryOp.Mul, a, bb, y);
            using var sum = Tensor.Empty([2, 1, 4], DType.Float32, be);
            using var max = Tensor.Empty([2, 3, 1], DType.Float32, be);
            be.Reduce(ReduceOp.Sum, y, 1, sum);
            be.Reduce(ReduceOp.Max, y, 2, max);
            return [("y", y.ToArray()), ("sum", sum.ToArray()), ("max", max.ToArray())];
        }),
        ("matmul", be =>
        {
            using var a = Make(be, RandomData(15, 6), 3, 5);
            using var b = Make(be, RandomData(20, 7), 5, 4);
            using var c = Make(be, RandomData(12, 8), 3, 4);
            be.MatMul(a, b, c, 0.5f, 1f);
            return [("c", c.ToArray())];
        }),
        ("causal attention", be =>
        {
            int[] qs = [1, 2, 4, 8], ks = [1, 1, 4, 8];
            using var q = Make(be, RandomData(64, 9), qs);
            using var k = Make(be, RandomData(32, 10), ks);
            using var v = Make(be, RandomData(32, 11), ks);
            using var dO = Make(be, RandomData(64, 12), qs);
            using var o = Tensor.Empty(qs, DType.Float32, be);
            using var lse = Tensor.Empty([1, 2, 4], DType.Float32, be);
            using var dq = Tensor.Empty(qs, DType.Float32, be);
            using var dk = Tensor.Empty(ks, DType.Float32, be);
            using var dv = Tensor.Empty(ks, DType.Float32, be);
            float scale = 1f / MathF.Sqrt(8);
            be.CausalAttentionForward(q, k, v, o, lse, scale);
            be.CausalAttentionBackward(q, k, v, o, lse, dO, dq, dk, dv, scale);
            return [("o", o.ToArray()), ("lse", lse.ToArray()), ("dq", dq.ToArray()), ("dk", dk.ToArray()), ("dv", dv.ToArray())];
        }),
        ("indexing", be =>
        {
            using var x = Make(be, RandomData(12, 13), 3, 4);
            using var rows = Ints(be, [2, 0, 2], 3);
            long bad = be.FindIndexOutOfRange(rows, 2, out long value);
            using var selected = Tensor.Empty([3, 4], DType.Float32, be);
            be.IndexSelect(x, 0, rows, selected);
            using var added = Make(be, RandomData(12, 14), 3, 4);
            be.IndexAdd(added, 0, rows, selected);
            using var cols = Ints(be, [3, 0, 1, 1, 2, 0], 3, 2);
            using var gathered = Tensor.Empty([3, 2], DType.Float32, be);
            be.Gather(x, 1, cols, gathered);
            using var scattered = Make(be, RandomData(12, 15), 3, 4);
            be.ScatterAdd(scattered, 1, cols, gathered);
            using var condition = Make(be, [1f, 0f, 1f, 0f, 0f, 1f, 1f, 1f, 0f, 0f, 1f, 0f], 3, 4);
            using var where = Tensor.Empty([3, 4], DType.Float32, be);
            be.Where(condition, x, added, where);
            using var dropped = Tensor.Empty([3, 4], DType.Float32, be);
            be.Dropout(x, dropped, 0.5f, 42);
            return [("out of range", [bad, value]), ("select", selected.ToArray()), ("add", added.ToArray()), ("gather", gathered.ToArray()),
                ("scatter", scattered.ToArray()), ("where", where.ToArray()), ("dropout", dropped.ToArray())];
        }),
        ("linear algebra", be =>
        {
            using var a = Make(be, RandomData(15, 16), 5, 3);
            using var q = Tensor.Empty([5, 3], DType.Float32, be);
            using var r = Tensor.Empty([3, 3], DType.Float32, be);
            be.HouseholderQr(a, q, r);
            using var u = Tensor.Empty([5, 2], DType.Float32, be);
            using var s = Tensor.Empty([2], DType.Float32, be);
            using var vt = Tensor.Empty([2, 3], DType.Float32, be);
            be.Svd(a, u, s, vt);
            // Singular vectors are unique up to sign: compare |u| and |vt|.
            return [("q", q.ToArray()), ("r", r.ToArray()), ("s", s.ToArray()), ("|u|", u.ToArray().Select(MathF.Abs).ToArray()),
                ("|vt|", vt.ToArray().Select(MathF.Abs).ToArray())];
        }),
        ("softmax and cross-entropy", be =>
        {
            using var x = Make(be, RandomData(12, 17, -3f, 3f), 3, 4);
            using var gy = Make(be, RandomData(12, 18), 3, 4);
            using var y = Tensor.Empty([3, 4], DType.Float32, be);
            using var gx = Tensor.Empty([3, 4], DType.Float32, be);
            be.Softmax(x, y, 1, log: true);
            be.SoftmaxBackward(y, gy, gx, 1, log: true);
            using var targets = Ints(be, [1, -100, 3], 3);
            using var rowMax = Tensor.Empty([3], DType.Float32, be);
            using var rowLogSum = Tensor.Empty([3], DType.Float32, be);
            using var loss = Tensor.Empty([], DType.Float32, be);
            int count = be.CrossEntropy(x, targets, -100, rowMax, rowLogSum, loss);
            using var gLoss = Make(be, [1f]);
            using var gLogits = Tensor.Empty([3, 4], DType.Float32, be);
            be.CrossEntropyBackward(x, targets, -100, rowMax, rowLogSum, gLoss, count, gLogits);
            using var fusedLoss = Tensor.Empty([], DType.Float32, be);
            using var fusedGrad = Tensor.Empty([3, 4], DType.Float32, be);
            int fusedCount = be.CrossEntropyWithGradient(x, targets, -100, fusedLoss, fusedGrad);
            return [("y", y.ToArray()), ("gx", gx.ToArray()), ("loss", loss.ToArray()), ("gLogits", gLogits.ToArray()),
                ("fused count", [fusedCount]), ("fused loss", fusedLoss.ToArray()), ("fused gLogits", fusedGrad.ToArray())];
        }),
        ("rmsnorm, rope, swiglu", be =>
        {
            using var x = Make(be, RandomData(16, 19), 1, 2, 8);
            using var w = Make(be, RandomData(8, 20), 8);
            using var gy = Make(be, RandomData(16, 21), 1, 2, 8);
            using var y = Tensor.Empty([1, 2, 8], DType.Float32, be);
            using var rstd = Tensor.Empty([1, 2], DType.Float32, be);
            using var gx = Tensor.Empty([1, 2, 8], DType.Float32, be);
            using var gw = Tensor.Empty([8], DType.Float32, be);
            be.RmsNorm(x, w, 1e-5f, y, rstd);
            be.RmsNormBackward(x, w, rstd, gy, gx, gw);
            using var cos = Make(be, RandomData(8, 22), 2, 4);
            using var sin = Make(be, RandomData(8, 23), 2, 4);
            using var rotated = Tensor.Empty([1, 2, 8], DType.Float32, be);
            be.Rope(x, cos, sin, rotated, inverse: false);
            using var gated = Tensor.Empty([1, 2, 8], DType.Float32, be);
            using var gGate = Tensor.Empty([1, 2, 8], DType.Float32, be);
            using var gUp = Tensor.Empty([1, 2, 8], DType.Float32, be);
            be.SwiGlu(x, y, gated);
            be.SwiGluBackward(x, y, gy, gGate, gUp);
            return [("y", y.ToArray()), ("rstd", rstd.ToArray()), ("gx", gx.ToArray()), ("gw", gw.ToArray()), ("rope", rotated.ToArray()),
                ("swiglu", gated.ToArray()), ("gGate", gGate.ToArray()), ("gUp", gUp.ToArray())];
        }),
        ("optimizer kernels", be =>
        {
            using var p = Make(be, RandomData(10, 24), 10);
            using var g = Make(be, RandomData(10, 25), 10);
            using var m = Make(be, RandomData(10, 26, -0.1f, 0.1f), 10);
            using var v = Make(be, RandomData(10, 27, 0f, 0.1f), 10);
            be.AdamWStep(p, g, m, v, Adam);
            double norm = be.SumOfSquares(g);
            using var d = Tensor.Empty([10], DType.Float32, be);
            be.AdamDirection(g, m, v, d, Adam);
            be.ApplyUpdate(p, d, 0.99f, 0.01f);
            be.ApplyUpdate(p, g, 0.98f, 0.02f, ParamRounding.Nearest);
            return [("p", p.ToArray()), ("m", m.ToArray()), ("v", v.ToArray()), ("norm", [(float)norm]), ("direction", d.ToArray())];
        }),
        ("block-wise 8-bit states", be =>
        {
            int n = BlockwiseQuantizer.DefaultBlockSize + 100, blocks = BlockwiseQuantizer.BlockCount(n);
            using var x = Make(be, RandomData(n, 28), n);
            using var codes = Tensor.Empty([n], DType.UInt8, be);
            using var absmax = Tensor.Empty([blocks], DType.Float32, be);
            be.BlockwiseQuantize(x, codes, absmax, signed: true);
            using var back = Tensor.Empty([n], DType.Float32, be);
            be.BlockwiseDequantize(codes, absmax, back, signed: true);
            using var g = Make(be, RandomData(n, 29), n);
            using var v = Make(be, RandomData(n, 30, 0f, 0.1f), n);
            using var vCodes = Tensor.Empty([n], DType.UInt8, be);
            using var vAbsmax = Tensor.Empty([blocks], DType.Float32, be);
            be.BlockwiseQuantize(v, vCodes, vAbsmax, signed: false);
            using var d = Tensor.Empty([n], DType.Float32, be);
            be.AdamDirection8bit(g, codes, absmax, vCodes, vAbsmax, d, Adam);
            return [("back", back.ToArray()), ("direction", d.ToArray()), ("m codes", Floats(codes)), ("v codes", Floats(vCodes))];
        }),
    ];

    /// <summary>The members of <see cref="IBackend"/> the recorder has not seen called.</summary>
    private static List<string> Uncalled(RecordingBackend recorder)
    {
        var called = recorder.Called.ToHashSet();
        return Members.Where(m => !called.Contains(m)).Select(Describe).ToList();
    }

    [Fact]
    public void EveryMember_IsCalledByACrossBackendCase_OnEveryBackend()
    {
        var cpu = new RecordingBackend(CpuBackend.Instance);
        var gpu = new RecordingBackend(fixture.Backend);
        var meta = new RecordingBackend(new MetaBackend());
        foreach (var (name, run) in Cases)
        {
            var expected = run(cpu);
            var actual = run(gpu);
            run(meta); // values are zeros; the members must run
            Assert.Equal(expected.Length, actual.Length);
            for (int i = 0; i < expected.Length; i++)
                AssertClose(expected[i].Item2, actual[i].Item2, 1e-4f, $"{name}: {expected[i].Item1}");
        }
        foreach (var recorder in new[] { cpu, gpu, meta })
        {
            var uncalled = Uncalled(recorder);
            Assert.True(uncalled.Count == 0, $"IBackend members no cross-backend case calls on {recorder.Inner.Name}: {string.Join(", ", uncalled)}");
        }
    }

    [Fact]
    public void TheCoverageCheck_ReportsMembersThatNoCaseCalls()
    {
        var recorder = new RecordingBackend(CpuBackend.Instance);
        Cases[0].Run(recorder);
        var uncalled = Uncalled(recorder);
        Assert.Contains("MatMul(Tensor, Tensor, Tensor, Single, Single)", uncalled);
        Assert.DoesNotContain("TrimCache()", uncalled);
    }

    // ---- the opt-in reference implementations ------------------------------------------------------

    [Fact]
    public void ReferenceKernels_MatchTheCpuKernels()
    {
        var cpu = CpuBackend.Instance;
        int n = BlockwiseQuantizer.DefaultBlockSize + 300, blocks = BlockwiseQuantizer.BlockCount(n);
        var g = RandomData(n, 40);
        var m0 = RandomData(n, 41, -0.1f, 0.1f);
        var v0 = RandomData(n, 42, 0f, 0.1f);

        using var gt = Make(cpu, g, n);
        AssertClose([(float)cpu.SumOfSquares(gt)], [(float)ReferenceKernels.SumOfSquares(gt)], 1e-6f, "sum of squares");

        float[] Direction(Action<Tensor, Tensor, Tensor, Tensor> run)
        {
            using Tensor m = Make(cpu, m0, n), v = Make(cpu, v0, n), d = Tensor.Empty([n], DType.Float32, cpu);
            run(gt, m, v, d);
            return [.. d.ToArray(), .. m.ToArray(), .. v.ToArray()];
        }
        AssertClose(Direction((a, m, v, d) => cpu.AdamDirection(a, m, v, d, Adam)),
            Direction((a, m, v, d) => ReferenceKernels.AdamDirection(a, m, v, d, Adam)), 1e-5f, "adam direction");

        float[] Updated(Action<Tensor, Tensor> run)
        {
            using var p = Make(cpu, m0, n);
            run(p, gt);
            return p.ToArray();
        }
        AssertClose(Updated((p, u) => cpu.ApplyUpdate(p, u, 0.99f, 0.01f, ParamRounding.Nearest)),
            Updated((p, u) => ReferenceKernels.ApplyUpdate(p, u, 0.99f, 0.01f, ParamRounding.Nearest)), 1e-6f, "apply update");

        // The 8-bit kernels run the same block routines: bitwise equal.
        (byte[] Codes, float[] Absmax, float[] Back) Quantized(bool reference)
        {
            using Tensor codes = Tensor.Empty([n], DType.UInt8, cpu), absmax = Tensor.Empty([blocks], DType.Float32, cpu);
            using var back = Tensor.Empty([n], DType.Float32, cpu);
            if (reference) ReferenceKernels.BlockwiseQuantize(gt, codes, absmax, signed: true);
            else cpu.BlockwiseQuantize(gt, codes, absmax, signed: true);
            if (reference) ReferenceKernels.BlockwiseDequantize(codes, absmax, back, signed: true);
            else cpu.BlockwiseDequantize(codes, absmax, back, signed: true);
            return (codes.ToArray<byte>(), absmax.ToArray(), back.ToArray());
        }
        var (fc, fa, fb) = Quantized(false);
        var (rc, ra, rb) = Quantized(true);
        Assert.Equal(fc, rc);
        Assert.Equal(fa, ra);
        Assert.Equal(fb, rb);

        float[] Direction8bit(bool reference)
        {
            using Tensor mc = Tensor.Empty([n], DType.UInt8, cpu), ma = Tensor.Empty([blocks], DType.Float32, cpu);
            using Tensor vc = Tensor.Empty([n], DType.UInt8, cpu), va = Tensor.Empty([blocks], DType.Float32, cpu);
            using Tensor m = Make(cpu, m0, n), v = Make(cpu, v0, n), d = Tensor.Empty([n], DType.Float32, cpu);
            cpu.BlockwiseQuantize(m, mc, ma, signed: true);
            cpu.BlockwiseQuantize(v, vc, va, signed: false);
            if (reference) ReferenceKernels.AdamDirection8bit(gt, mc, ma, vc, va, d, Adam);
            else cpu.AdamDirection8bit(gt, mc, ma, vc, va, d, Adam);
            return [.. d.ToArray(), .. mc.ToArray<byte>().Select(b => (float)b), .. ma.ToArray(), .. vc.ToArray<byte>().Select(b => (float)b), .. va.ToArray()];
        }
        Assert.Equal(Direction8bit(false), Direction8bit(true));
    }
}
