using TensorLite.Autograd;
using TensorLite.Models;
using TensorLite.Optim.Lora;
using TensorLite.Optim.Projected;
using TensorLite.Training;
using Xunit;

namespace TensorLite.Tests;

/// <summary>The LoRA baseline: adapters merged into the weights, the base frozen.</summary>
public class LoraTests
{
    /// <summary>Plain SGD as an inner optimizer (p ← (1 − lr·wd)·p − lr·g), so LoRA's update can be written by hand.</summary>
    private sealed class SgdInner : IInnerOptimizer
    {
        public string Name => "sgd";
        public IInnerState CreateState(int[] shape, IBackend backend) => new State();
        public long PredictStateBytes(ReadOnlySpan<int> shape) => 0;

        private sealed class State : IInnerState
        {
            public void Direction(Tensor grad, Tensor direction, long step) => grad.Backend.Copy(grad, direction);
            public void Apply(Tensor param, Tensor grad, float learningRate, float weightDecay, long step, ParamRounding rounding, long offset = 0) =>
                param.Backend.ApplyUpdate(param, grad, 1f - learningRate * weightDecay, learningRate, rounding);
            public int RangeGranule => 0;
            public void Reset() { }
            public void ChangeBasis(Tensor change, ProjectionSide side) { }
            public long StateBytes => 0;
            public IEnumerable<(string Name, Tensor Tensor)> StateTensors() => [];
            public void LoadState(IReadOnlyDictionary<string, Tensor> state, string prefix) { }
            public void Dispose() { }
        }
    }

    private static float[] Merged(Tensor b, Tensor a, float scale)
    {
        using var noGrad = GradMode.NoGrad();
        using var ba = b.MatMul(a);
        using var s = ba * scale;
        return s.ToArray();
    }

    [Fact]
    public void FullRank_OneSgdStep_EqualsTheDenseSgdUpdate()
    {
        // With r = n and A = I, W₀ + s·B·A is a full reparameterization: one SGD step from B = 0 moves W by
        // −lr·s²·G·AᵀA = −lr·s²·G, the dense SGD step at lr·s².
        const int m = 5, n = 5;
        const float lr = 0.1f, alpha = 10f;
        var gen = new Generator(1);
        var w = Tensor.RandN([m, n], gen).RequireGrad().Persist();
        var w0 = w.ToArray();
        using var opt = new LoraOptimizer([("mlp.w", w)], new LoraOptions { Rank = n, Alpha = alpha, LearningRate = lr, Inner = new SgdInner() });
        var (a, _) = opt.AdaptersOf(0);
        var eye = new float[n * n];
        for (int i = 0; i < n; i++) eye[i * n + i] = 1f;
        using (var identity = Tensor.FromArray(eye, n, n)) a!.Backend.Copy(identity, a);
        float s = opt.ScaleOf(0);
        Assert.Equal(alpha / n, s);
        w.Grad = Tensor.RandN([m, n], gen).Persist();
        var g = w.Grad.ToArray();
        opt.Step();
        var after = w.ToArray();
        for (int i = 0; i < after.Length; i++) Assert.Equal(w0[i] - lr * s * s * g[i], after[i], 5);
    }

    [Fact]
    public void BaseWeights_NeverChange_WhileTheMergedWeightsLearn()
    {
        var config = new LlamaConfig
        {
            VocabSize = 32, HiddenSize = 32, IntermediateSize = 48, NumHiddenLayers = 1, NumAttentionHeads = 2, MaxPositionEmbeddings = 16,
        };
        var gen = new Generator(5);
        var model = new LlamaModel(config, gen);
        var named = model.NamedParameters().ToList();
        var initial = named.Select(x => x.Parameter.ToArray()).ToArray();
        using var opt = new LoraOptimizer(named, new LoraOptions { Rank = 4, Alpha = 8, LearningRate = 0.01f, WeightDecay = 0.1f });
        var data = Enumerable.Range(0, 36).Select(_ => gen.NextInt(config.VocabSize)).ToArray();
        var ids = Enumerable.Range(0, 4).SelectMany(b => data.Skip(b * 9).Take(8)).ToArray();
        var targets = Enumerable.Range(0, 4).SelectMany(b => data.Skip(b * 9 + 1).Take(8)).ToArray();
        float first = 0, last = 0;
        for (int step = 0; step < 25; step++)
        {
            using var scope = TensorScope.Enter();
            var loss = model.Loss(Tensor.FromArray(ids, 4, 8), Tensor.FromArray(targets, 4, 8));
            if (step == 0) first = loss.Item();
            last = loss.Item();
            loss.Backward();
            opt.Step();
            opt.ZeroGrad();
        }
        Assert.True(last < 0.7f * first, $"loss {first} → {last}");
        int adapted = 0;
        for (int i = 0; i < named.Count; i++)
        {
            var (a, b) = opt.AdaptersOf(i);
            if (a == null) continue;
            adapted++;
            var w = named[i].Parameter.ToArray();
            var delta = Merged(b!, a, opt.ScaleOf(i));
            double moved = w.Zip(initial[i], (x, y) => Math.Abs(x - y)).Max();
            Assert.True(moved > 1e-3, $"{named[i].Name} never moved");
            // W − s·B·A is the base, unchanged up to float32 rounding of the merges.
            double drift = w.Select((x, e) => Math.Abs(x - delta[e] - initial[i][e])).Max();
            Assert.True(drift < 1e-5, $"{named[i].Name}: the base drifted by {drift}");
        }
        Assert.Equal(7, adapted); // q, k, v, o, gate, up, down
        long predicted = LoraOptimizer.PredictStateBytes(named.Select(x => (x.Name, x.Parameter.ShapeArray)), opt.Options);
        Assert.Equal(predicted, opt.StateBytes);
    }

    [Fact]
    public void Restart_MergesTheAdaptersIntoTheBase_AndStartsThemAfresh()
    {
        const int m = 6, n = 4;
        var gen = new Generator(3);
        var w = Tensor.RandN([m, n], gen).RequireGrad().Persist();
        using var opt = new LoraOptimizer([("mlp.w", w)], new LoraOptions { Rank = 2, Alpha = 4, LearningRate = 0.05f, RestartEvery = 3 });
        float s = opt.ScaleOf(0);
        float[] aBefore = [], wBefore = [];
        for (int step = 1; step <= 4; step++)
        {
            if (step == 4) { aBefore = opt.AdaptersOf(0).A!.ToArray(); wBefore = w.ToArray(); }
            w.Grad?.Dispose();
            w.Grad = Tensor.RandN([m, n], gen).Persist();
            opt.Step();
        }
        // Step 4 opened a new period: B restarted from zero and took one step, A was redrawn, and the base the new
        // adapters sit on is the weight as step 3 left it.
        var (a, b) = opt.AdaptersOf(0);
        Assert.NotEqual(aBefore, a!.ToArray());
        var delta = Merged(b!, a, s);
        var now = w.ToArray();
        double drift = now.Select((x, e) => Math.Abs(x - delta[e] - wBefore[e])).Max();
        Assert.True(drift < 1e-5, $"the new base differs from the merged weight by {drift}");
        Assert.True(delta.Max(Math.Abs) > 0, "the restarted adapters did not move");
        Assert.Throws<ArgumentException>(() => new TrainingOptions { Optimizer = "lora", LoraRestart = 0 }.Validate());
    }

    [Fact]
    public void Cli_LoraRun_SavesAPlainLlamaCheckpoint_AndResumesBitwise()
    {
        var root = Path.Combine(Path.GetTempPath(), $"tl-lora-{Environment.ProcessId}-{Guid.NewGuid():N}");
        try
        {
            var options = new TrainingOptions
            {
                Model = "tiny", Seq = 16, Batch = 2, Steps = 4, Warmup = 1, EvalEvery = 2, EvalBatches = 1, CheckpointEvery = 2,
                LogEvery = 1, SyntheticBytes = 20_000, Optimizer = "lora", Rank = 4, LoraAlpha = 8, LoraRestart = 3,
            }.Validate();
            var straight = Trainer.Create(options, Path.Combine(root, "a"));
            straight.Run();
            var dir = Path.Combine(root, "b");
            var first = Trainer.Create(options with { Steps = 2 }, dir);
            first.Run();
            var resumed = Trainer.Resume(dir, steps: 4);
            resumed.Run();
            var x = straight.Model.NamedParameters().Select(p => p.Parameter.ToArray()).ToArray();
            var y = resumed.Model.NamedParameters().Select(p => p.Parameter.ToArray()).ToArray();
            for (int i = 0; i < x.Length; i++) Assert.Equal(x[i], y[i]);
            // The checkpoint's weights load into a plain LLaMA (no adapter tensors in model.safetensors).
            var names = IO.SafeTensors.ReadHeader(Path.Combine(Checkpoints.Latest(dir)!, "model.safetensors")).Tensors.Select(t => t.Name).ToList();
            Assert.DoesNotContain(names, n => n.Contains("lora", StringComparison.OrdinalIgnoreCase));
            Assert.Throws<ArgumentException>(() => (options with { Weights = "bf16" }).Validate());
        }
        finally
        {
            if (Directory.Exists(root)) Directory.Delete(root, recursive: true);
        }
    }
}
