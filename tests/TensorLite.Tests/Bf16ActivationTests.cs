using TensorLite.Autograd;
using TensorLite.Models;
using TensorLite.Tests.Support;
using TensorLite.Training;
using Xunit;

namespace TensorLite.Tests;

/// <summary>
/// bf16 activations: each float32 op given bf16 inputs computes on their exact float32 widenings and rounds once, so its
/// output equals the float32 op's output rounded to bf16, and its gradients (bf16, one per input in that input's dtype)
/// match the float32 gradients within bf16 precision. Then the LLaMA path: what the graph saves, training, per-layer.
/// </summary>
public sealed class Bf16ActivationTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("tl-bf16act-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    /// <summary>A leaf requiring grad holding bf16-representable normal draws, in <paramref name="dtype"/>.</summary>
    private static Tensor Leaf(int[] shape, ulong seed, DType dtype = DType.BFloat16, float std = 1f) =>
        Tensor.RandN(shape, new Generator(seed), std, dtype: DType.BFloat16).To(dtype).RequireGrad();

    private static Tensor Widened(Tensor t)
    {
        using (GradMode.NoGrad()) return t.DType == DType.BFloat16 ? t.To(DType.Float32).RequireGrad() : t;
    }

    private static float[] RoundedToBf16(float[] values)
    {
        using var t = Tensor.FromArray(values, values.Length);
        using var r = t.To(DType.BFloat16);
        return r.ToArray();
    }

    /// <summary>Runs <paramref name="op"/> on the bf16 inputs and on their float32 widenings (other inputs, e.g. ids, are
    /// shared), and checks the output dtype and values and every gradient's dtype and values.</summary>
    private static void MatchesFloat32(Func<Tensor[], Tensor> op, Tensor[] inputs, DType expectedOutput, double gradTolerance = 0.02,
        bool exactForward = true)
    {
        var wide = inputs.Select(Widened).ToArray();
        using var y = op(inputs);
        using var yRef = op(wide);
        Assert.Equal(expectedOutput, y.DType);
        Assert.Equal(DType.Float32, yRef.DType);
        var expected = y.DType == DType.BFloat16 ? RoundedToBf16(yRef.ToArray()) : yRef.ToArray();
        var actual = y.ToArray();
        if (exactForward) Assert.Equal(expected, actual);
        else AssertClose(expected, actual, 0.01, "output");

        using var gRef = Tensor.RandN(y.Shape, new Generator(99), 1f, dtype: DType.BFloat16).To(DType.Float32);
        using var g = gRef.To(y.DType);
        var differentiable = inputs.Where(t => t.RequiresGrad).ToList();
        var grads = Engine.Grad(y, g, differentiable);
        var refGrads = Engine.Grad(yRef, gRef, wide.Where(t => t.RequiresGrad).ToList());
        for (int i = 0; i < differentiable.Count; i++)
        {
            Assert.NotNull(grads[i]);
            Assert.Equal(differentiable[i].DType, grads[i]!.DType);
            AssertClose(refGrads[i]!.ToArray(), grads[i]!.ToArray(), gradTolerance, $"gradient of input {i}");
        }
    }

    /// <summary>|a − e| ≤ tol·(|e| + max|e|): bf16 relative precision, with slack for elements near zero.</summary>
    private static void AssertClose(float[] expected, float[] actual, double tolerance, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        double scale = expected.Length == 0 ? 0 : expected.Max(v => Math.Abs((double)v));
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(actual[i] - expected[i]) <= tolerance * (Math.Abs(expected[i]) + scale),
                $"{what}[{i}]: {actual[i]} vs float32 {expected[i]}");
    }

    // ---- op level ---------------------------------------------------------------------------------------------------

    [Theory]
    [InlineData(DType.BFloat16)]
    [InlineData(DType.Float32)] // a float32 norm weight (the cast LLaMA uses) on bf16 activations
    public void RmsNorm_OnANonContiguousBf16Input(DType weightType) =>
        MatchesFloat32(x => { using var t = x[0].Transpose(0, 1); return t.RmsNorm(x[1], 1e-5f); },
            [Leaf([3, 5, 7], 1), Leaf([7], 2, weightType)], DType.BFloat16);

    [Fact]
    public void RmsNorm_OfOneElementRows() =>
        MatchesFloat32(x => x[0].RmsNorm(x[1]), [Leaf([3, 1], 3), Leaf([1], 4)], DType.BFloat16);

    [Fact]
    public void Rope_OnATransposedBf16View() =>
        MatchesFloat32(x => { using var t = x[0].Transpose(1, 2); return t.Rope(3, 10000f); }, [Leaf([2, 5, 3, 8], 5)], DType.BFloat16);

    [Fact]
    public void CausalAttention_GroupedQueries_LongerThanOneQueryBlock() =>
        // 70 rows cross the 64-row query block; backward rebuilds the probabilities from the bf16 output, so it is
        // compared within tolerance.
        MatchesFloat32(x =>
        {
            using var q = x[0].Transpose(1, 2);
            using var k = x[1].Transpose(1, 2);
            return Tensor.CausalAttention(q, k, x[2]);
        }, [Leaf([1, 70, 4, 8], 6), Leaf([1, 70, 2, 8], 7), Leaf([1, 2, 70, 8], 8)], DType.BFloat16, gradTolerance: 0.03);

    [Fact]
    public void SumAndMeanOverAxes_OfATransposedBf16Input() =>
        MatchesFloat32(x => { using var t = x[0].Transpose(0, 2); using var s = t.Sum([0, 2]); return s.Mean(0, keepDim: true); },
            [Leaf([4, 5, 6], 12)], DType.BFloat16, exactForward: false); // the sum rounds to bf16 before the mean does

    [Fact]
    public void Max_OfABf16Input() =>
        MatchesFloat32(x => x[0].Max(1), [Leaf([3, 17], 13)], DType.BFloat16);

    [Fact]
    public void SwiGlu_TheMlpGate() =>
        MatchesFloat32(x => x[0].SwiGlu(x[1]), [Leaf([3, 33], 9), Leaf([3, 33], 10)], DType.BFloat16); // fused: one rounding

    [Theory]
    [InlineData(0, false)]
    [InlineData(1, true)]
    public void SoftmaxAndLogSoftmax(int dim, bool log) =>
        MatchesFloat32(x => log ? x[0].LogSoftmax(dim) : x[0].Softmax(dim), [Leaf([5, 3], 11)], DType.BFloat16);

    [Fact]
    public void ResidualAdd_WithABroadcastOperand() =>
        MatchesFloat32(x => x[0] + x[1], [Leaf([4, 6], 12), Leaf([6], 13)], DType.BFloat16);

    [Theory]
    [InlineData(DType.BFloat16)]
    [InlineData(DType.Float32)]
    public void MatMul_Bf16ActivationsTimesAWeight_InTheActivationsDType(DType weightType) =>
        MatchesFloat32(x => { using var wt = x[1].T; return x[0].MatMul(wt, x[0].DType); },
            [Leaf([2, 5, 7], 14), Leaf([9, 7], 15, weightType)], DType.BFloat16, exactForward: false);

    [Fact]
    public void Embedding_WithRepeatedIds_FromABf16Table()
    {
        using var ids = Tensor.FromArray([3, 0, 3, 10, 3, 1], 2, 3);
        MatchesFloat32(x => Tensor.Embedding(x[0], ids), [Leaf([11, 6], 16)], DType.BFloat16);
    }

    [Fact]
    public void CrossEntropy_OnBf16Logits_GivesAFloat32Loss()
    {
        using var targets = Tensor.FromArray([2, -100, 8, 0, 5, 5], 6);
        MatchesFloat32(x => Tensor.CrossEntropy(x[0], targets), [Leaf([6, 9], 17, std: 3f)], DType.Float32);
    }

    // ---- the LLaMA path ---------------------------------------------------------------------------------------------

    [Fact]
    public void Llama_WithBf16Activations_SavesOnlyBf16ActivationsForBackward()
    {
        var config = LlamaConfig.FromName("tiny");
        var model = new LlamaModel(config, new Generator(3), DType.BFloat16) { ActivationDType = DType.BFloat16 };
        int batch = 2, seq = 9;
        using var ids = Tensor.FromArray(Enumerable.Range(0, batch * seq).Select(i => (i * 37) % config.VocabSize).ToArray(), batch, seq);
        using var logits = model.Forward(ids);
        Assert.Equal(DType.Float32, logits.DType);

        // Every tensor the graph holds: float32 ones must be small (norm-weight casts, RoPE tables, 1/rms rows) or the
        // logits; no other may be as large as a [batch, seq, hidden] activation.
        long activation = batch * seq * config.HiddenSize;
        var seen = new HashSet<Tensor>(ReferenceEqualityComparer.Instance);
        var stack = new Stack<Tensor>([logits]);
        int bf16Count = 0;
        while (stack.Count > 0)
        {
            var t = stack.Pop();
            if (!seen.Add(t)) continue;
            if (t.DType == DType.BFloat16 && t.Numel >= activation) bf16Count++;
            if (t.DType == DType.Float32 && t.Shape[^1] != config.VocabSize) // the logits (and their 2-D product)
                Assert.True(t.Numel < activation, $"a float32 {ShapeMath.Format(t.Shape)} tensor is saved in the graph");
            foreach (var input in t.GradFn?.Inputs ?? []) stack.Push(input);
        }
        Assert.True(bf16Count > 10 * config.NumHiddenLayers, $"only {bf16Count} bf16 activations in the graph");
    }

    private static TrainingOptions Tiny(string weights, string activations) => new()
    {
        Model = "tiny", Seq = 32, Batch = 4, Steps = 30, Warmup = 4, EvalEvery = 100, EvalBatches = 2, CheckpointEvery = 100,
        SyntheticBytes = 30_000, LearningRate = 3e-3f, Weights = weights, Activations = activations,
    };

    [Fact]
    public void TinyLlama_Bf16WeightsAndActivations_TrackFloat32Training()
    {
        var fp32 = Trainer.Create(Tiny("fp32", "fp32"), Path.Combine(_root, "fp32"));
        var fp32Loss = fp32.Run();
        var bf16 = Trainer.Create(Tiny("bf16", "bf16"), Path.Combine(_root, "bf16"));
        var bf16Loss = bf16.Run();
        // The loss falls from ln 256 = 5.55 to about 2.89 in 30 steps; bf16 weights and activations land within 0.5% of it
        // (docs/memory.md), and 2% is allowed.
        Assert.True(fp32Loss < 3.5, $"float32 run did not learn: {fp32Loss}");
        Assert.True(Math.Abs(bf16Loss - fp32Loss) <= 0.02 * fp32Loss, $"bf16 {bf16Loss} vs float32 {fp32Loss}");
        Assert.NotEqual(fp32Loss, bf16Loss); // the bf16 path really ran
    }

    [Theory]
    [InlineData("adamw", null)]
    [InlineData("galore", "rsvd")]
    public void PerLayerUpdates_WithCheckpointedLayersAndBf16Activations_GiveTheSameParameters(string optimizer, string? projection)
    {
        var options = new TrainingOptions
        {
            Model = "tiny", Seq = 16, Batch = 2, Steps = 3, Warmup = 1, ClipNorm = 0, EvalEvery = 100, EvalBatches = 1,
            CheckpointEvery = 100, SyntheticBytes = 20_000, Optimizer = optimizer, Projection = projection, Rank = 8, UpdateGap = 2,
            Weights = "bf16", Activations = "bf16", CheckpointLayers = true,
        };
        float[][] Train(TrainingOptions o, string name)
        {
            var trainer = Trainer.Create(o, Path.Combine(_root, name));
            trainer.Run();
            return trainer.Model.Parameters().Select(p => p.ToArray()).ToArray();
        }
        var ordinary = Train(options, optimizer + "-a");
        var perLayer = Train(options with { PerLayer = true }, optimizer + "-b");
        for (int i = 0; i < ordinary.Length; i++) Assert.Equal(ordinary[i], perLayer[i]);
    }
}

/// <summary>The planner with bf16 activations: it predicts less activation memory, and still the measured peak.</summary>
[Collection(nameof(SerialMemoryTests))]
public sealed class Bf16ActivationPlanTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("tl-bf16plan-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Theory]
    [InlineData("fp32", false)]
    [InlineData("bf16", true)]
    public void Plan_WithBf16Activations_IsSmaller_AndMatchesTheMeasuredPeakWithinFivePercent(string weights, bool perLayer)
    {
        var options = new TrainingOptions
        {
            Model = "tiny", Seq = 64, Batch = 4, Steps = 2, Warmup = 1, EvalEvery = 100, EvalBatches = 1, CheckpointEvery = 100,
            SyntheticBytes = 20_000, Weights = weights, PerLayer = perLayer, Activations = "bf16",
        };
        var plan = MemoryPlan.Predict(options);
        var fp32Plan = MemoryPlan.Predict(options with { Activations = "fp32" });
        // Nearly every saved activation halves; the float32 logits and their gradient do not.
        Assert.InRange(plan.AtPeak.Activations, 0.4 * fp32Plan.AtPeak.Activations, 0.8 * fp32Plan.AtPeak.Activations);

        MemoryCounters.Settle();
        var ledger = Backend.Cpu.Memory;
        long baseline = ledger.LiveBytes;
        ledger.ResetPeak();
        Trainer.Create(options, Path.Combine(_root, weights)).Run();
        long measured = ledger.PeakBytes - baseline;
        Assert.InRange(plan.PeakTensorBytes, measured * 0.95, measured * 1.05);
    }
}

/// <summary>The op-boundary conversion needs no new backend member: bf16 activations through RoPE, RMSNorm, softmax and
/// cross-entropy run on the ILGPU backend (CPU accelerator) with its float32 kernels and match the CPU backend.</summary>
public sealed class IlgpuBf16ActivationTests(IlgpuCpuFixture fixture) : IClassFixture<IlgpuCpuFixture>
{
    [Fact]
    public void RopeRmsNormSoftmaxCrossEntropy_OnBf16Activations_MatchTheCpuBackend()
    {
        var rng = new Random(5);
        // Small: the row kernels' shared-memory barriers are slow on the CPU accelerator.
        var x = Enumerable.Range(0, 1 * 3 * 2 * 4).Select(_ => (float)(rng.NextDouble() * 4 - 2)).ToArray();
        var w = Enumerable.Range(0, 4).Select(_ => (float)(rng.NextDouble() + 0.5)).ToArray();
        int[] targets = [3, -100, 0, 2, 1, 3];
        (float Loss, float[] Gx, float[] Gw) Run(IBackend be)
        {
            using var x32 = Tensor.FromSpan<float>(x, [1, 3, 2, 4], DType.Float32, be);
            using var xt = x32.To(DType.BFloat16).RequireGrad();
            using var wt = Tensor.FromSpan<float>(w, [4], DType.Float32, be).RequireGrad();
            using var ids = Tensor.FromSpan<int>(targets, [6], DType.Int32, be);
            using var rotated = xt.Transpose(1, 2).Rope();  // a non-contiguous bf16 view
            using var normed = rotated.RmsNorm(wt, 1e-5f);  // bf16 activations, float32 weight
            using var probs = normed.Softmax(1);            // along a non-last axis
            using var logits = probs.Reshape(6, 4);
            using var loss = Tensor.CrossEntropy(logits, ids);
            Assert.Equal(DType.BFloat16, logits.DType);
            loss.Backward();
            Assert.Equal(DType.BFloat16, xt.Grad!.DType);
            Assert.Equal(DType.Float32, wt.Grad!.DType);
            return (loss.Item(), xt.Grad.ToArray(), wt.Grad.ToArray());
        }
        var cpu = Run(TensorLite.Backends.Cpu.CpuBackend.Instance);
        var gpu = Run(fixture.Backend);
        Assert.True(Math.Abs(cpu.Loss - gpu.Loss) <= 1e-3 * Math.Abs(cpu.Loss), $"loss {cpu.Loss} vs {gpu.Loss}");
        // The kernels sum in different orders, so a value may land on the neighbouring bf16: compare within bf16 precision.
        foreach (var (expected, actual, name) in new[] { (cpu.Gx, gpu.Gx, "dx"), (cpu.Gw, gpu.Gw, "dw") })
        {
            double scale = expected.Max(v => Math.Abs((double)v));
            for (int i = 0; i < expected.Length; i++)
                Assert.True(Math.Abs(expected[i] - actual[i]) <= 0.01 * (Math.Abs(expected[i]) + scale), $"{name}[{i}]: {actual[i]} vs cpu {expected[i]}");
        }
    }
}
