using TensorLite.IO;
using TensorLite.Optim.Lora;
using TensorLite.Optim.Projected;
using TensorLite.Training;
using Xunit;

namespace TensorLite.Tests;

/// <summary>ReLoRA's restart as its reference does it (Guitaricet/relora, torchrun_main.py and training_utils.py
/// <c>optimizer_reset</c>, <c>_get_cosine_schedule_with_multiple_warmups_lambda</c>): the adapters' moments are zeroed
/// or pruned (random, magnitude) while Adam's step count goes on, and the learning rate re-warms after each restart.</summary>
public class LoraRestartTests
{
    private const int M = 6, N = 4, Every = 3;

    private static (Tensor W, LoraOptimizer Opt) Make(LoraOptions options)
    {
        var w = Tensor.RandN([M, N], new Generator(3)).RequireGrad().Persist();
        return (w, new LoraOptimizer([("mlp.w", w)], options));
    }

    private static void Step(LoraOptimizer opt, Tensor w, Generator gen)
    {
        w.Grad?.Dispose();
        w.Grad = Tensor.RandN([M, N], gen).Persist();
        opt.Step();
    }

    private static float[] State(LoraOptimizer opt, string name) => opt.StateTensors().Single(x => x.Name == name).Tensor.ToArray();

    [Fact]
    public void Restart_ZeroesTheMoments_ButKeepsAdamsStepCount()
    {
        var (w, opt) = Make(new LoraOptions { Rank = 2, Alpha = 4, LearningRate = 0.05f, RestartEvery = Every });
        using (opt)
        {
            var gen = new Generator(8);
            for (int t = 1; t <= Every; t++) Step(opt, w, gen);
            Step(opt, w, gen); // step 4: the restart, then the first step of the new adapters
            var (a, b) = opt.AdaptersOf(0);
            // B was zero, so A's gradient s·Bᵀ·G is zero and its zeroed moments leave A as drawn; B's gradient is s·G·Aᵀ.
            float s = opt.ScaleOf(0);
            var g = w.Grad!.ToArray();
            var aValues = a!.ToArray();
            var bValues = b!.ToArray();
            const double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, lr = 0.05;
            double maxError = 0, maxFromRestartedCount = 0;
            for (int i = 0; i < M; i++)
                for (int k = 0; k < 2; k++)
                {
                    double gb = 0;
                    for (int j = 0; j < N; j++) gb += s * g[i * N + j] * aValues[k * N + j];
                    // Adam's first step from zero moments at step count t: m̂ = (1−β1)·g/(1−β1^t), v̂ = (1−β2)·g²/(1−β2^t).
                    double Update(int t) => -lr * ((1 - beta1) * gb / (1 - Math.Pow(beta1, t))) / (Math.Sqrt((1 - beta2) * gb * gb / (1 - Math.Pow(beta2, t))) + eps);
                    maxError = Math.Max(maxError, Math.Abs(bValues[i * 2 + k] - Update(4)));
                    maxFromRestartedCount = Math.Max(maxFromRestartedCount, Math.Abs(bValues[i * 2 + k] - Update(1)));
                }
            Assert.True(maxError < 1e-6, $"B differs from Adam's step at count 4 by {maxError}");
            Assert.True(maxFromRestartedCount > 1e-3, "B looks like a step with a restarted count");
        }
    }

    [Fact]
    public void Restart_MagnitudePruning_KeepsTheLargestMomentEntries()
    {
        var (w, opt) = Make(new LoraOptions { Rank = 2, Alpha = 4, LearningRate = 0.05f, RestartEvery = Every, RestartStates = LoraRestartStates.Magnitude, RestartPruneRatio = 0.5f });
        using (opt)
        {
            var gen = new Generator(8);
            for (int t = 1; t <= Every; t++) Step(opt, w, gen);
            var m = State(opt, "0.A.exp_avg");
            var v = State(opt, "0.A.exp_avg_sq");
            Step(opt, w, gen); // the restart prunes; A's gradient is then zero (B = 0), so its moments only decay
            foreach (var (before, after, beta) in new[] { (m, State(opt, "0.A.exp_avg"), 0.9f), (v, State(opt, "0.A.exp_avg_sq"), 0.999f) })
            {
                // torch.quantile(|x|, 0.5) with linear interpolation; entries at or below it are zeroed.
                var sorted = before.Select(MathF.Abs).OrderBy(x => x).ToArray();
                double position = 0.5 * (sorted.Length - 1);
                double threshold = sorted[(int)Math.Floor(position)] + (sorted[(int)Math.Ceiling(position)] - sorted[(int)Math.Floor(position)]) * (position - Math.Floor(position));
                for (int e = 0; e < before.Length; e++)
                {
                    float kept = Math.Abs(before[e]) > threshold ? before[e] : 0f;
                    Assert.Equal(beta * kept, after[e], 1e-7f);
                }
                Assert.Equal(before.Length / 2, after.Count(x => x == 0));
            }
        }
    }

    [Fact]
    public void RandomPruning_ZeroesAboutTheRatio_AndIsReproducible()
    {
        var values = Enumerable.Range(1, 4000).Select(i => (float)i).ToArray();
        using var first = Tensor.FromArray(values, 4000);
        using var second = Tensor.FromArray(values, 4000);
        MomentPruning.Random(first, 0.9f, new Generator(5));
        MomentPruning.Random(second, 0.9f, new Generator(5));
        var zeroed = first.ToArray().Count(x => x == 0) / 4000.0;
        Assert.InRange(zeroed, 0.87, 0.93);
        Assert.Equal(first.ToArray(), second.ToArray());
    }

    [Theory]
    [InlineData(LoraRestartStates.Random)]
    [InlineData(LoraRestartStates.Magnitude)]
    public void Restart_WithPruning_ResumesBitwise(LoraRestartStates states)
    {
        var options = new LoraOptions { Rank = 2, Alpha = 4, LearningRate = 0.05f, RestartEvery = Every, RestartStates = states, RestartPruneRatio = 0.5f, Seed = 2 };
        var (a, straight) = Make(options);
        using (straight)
        {
            var gen = new Generator(8);
            for (int t = 0; t < 8; t++) Step(straight, a, gen);
        }
        var (b, first) = Make(options);
        var path = Path.Combine(Path.GetTempPath(), $"tl-relora-{states}-{Environment.ProcessId}.safetensors");
        var gen2 = new Generator(8);
        long steps;
        using (first)
        {
            for (int t = 0; t < 2; t++) Step(first, b, gen2);
            SafeTensors.Save(path, first.StateTensors());
            steps = first.StepCount;
        }
        using var c = b.Clone().RequireGrad().Persist();
        using (var second = new LoraOptimizer([("mlp.w", c)], options))
        {
            var loaded = SafeTensors.Load(path);
            second.LoadState(loaded, steps);
            foreach (var t in loaded.Values) t.Dispose();
            File.Delete(path);
            for (int t = 2; t < 8; t++) Step(second, c, gen2);
        }
        Assert.Equal(a.ToArray(), c.ToArray());
    }

    [Fact]
    public void JaggedSchedule_RewarmsAfterEachRestart_ToTheScheduleAtTheRestart()
    {
        float Schedule(long step) => 100f - step;
        for (long step = 0; step < 10; step++) Assert.Equal(Schedule(step), LrSchedule.WithRestartWarmups(step, 10, 4, Schedule));
        Assert.Equal(90f * 1 / 4, LrSchedule.WithRestartWarmups(10, 10, 4, Schedule));
        Assert.Equal(90f * 3 / 4, LrSchedule.WithRestartWarmups(12, 10, 4, Schedule));
        Assert.Equal(90f, LrSchedule.WithRestartWarmups(13, 10, 4, Schedule));
        Assert.Equal(86f, LrSchedule.WithRestartWarmups(14, 10, 4, Schedule));
        Assert.Equal(80f / 4, LrSchedule.WithRestartWarmups(20, 10, 4, Schedule));
        Assert.Equal(Schedule(15), LrSchedule.WithRestartWarmups(15, 10, 0, Schedule));

        Assert.Equal(100, new TrainingOptions { Optimizer = "lora", LoraRestart = 2000 }.ResolvedLoraRestartWarmup);
        Assert.Equal(1, new TrainingOptions { Optimizer = "lora", LoraRestart = 3 }.ResolvedLoraRestartWarmup);
        Assert.Equal(0, new TrainingOptions { Optimizer = "adamw", LoraRestart = 3 }.ResolvedLoraRestartWarmup);
        Assert.Throws<ArgumentException>(() => new TrainingOptions { Optimizer = "lora", LoraRestart = 10, LoraRestartWarmup = 10 }.Validate());
        Assert.Throws<ArgumentException>(() => new TrainingOptions { Optimizer = "lora", LoraRestart = 10, LoraRestartStates = "half" }.Validate());
        Assert.Throws<ArgumentException>(() => new TrainingOptions { Optimizer = "lora", LoraRestart = 10, LoraRestartStates = "magnitude", States = "8bit" }.Validate());
    }
}
