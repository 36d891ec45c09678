using TensorLite.Autograd;
using TensorLite.Data;
using TensorLite.Models;
using TensorLite.Training;
using Xunit;

namespace TensorLite.Tests;

/// <summary>
/// The whole-split evaluation (`tensorlite eval --whole-split`): the validation windows tile the split in order, the
/// mask's context tokens are not counted, and the loss is the per-target mean over every window whatever the batch.
/// </summary>
public sealed class WholeSplitEvaluationTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("tl-wholesplit-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Fact]
    public void ValidationWindows_TileTheSplitInOrder_AndCountOnlyTheTargetsTheMaskKeeps()
    {
        var tokens = Enumerable.Range(0, 400).Select(i => (i * 7) % 50).ToArray();
        var trained = Enumerable.Range(0, 400).Select(i => i % 5 != 0).ToArray();
        var dataset = new TokenDataset(tokens, 50, 0.25, trained); // 100 validation tokens
        const int seq = 16;
        int windows = dataset.ValidationWindowCount(seq);
        Assert.Equal(6, windows); // 6 × 16 + 1 = 97 ≤ 100 < 7 × 16 + 1

        var (inputs, targets, count) = dataset.ValidationWindows(0, windows, seq);
        var x = inputs.ToArray<int>();
        var y = targets.ToArray<int>();
        Assert.Equal(dataset.Validation[..(windows * seq)], x);
        int kept = 0;
        for (int i = 0; i < y.Length; i++)
        {
            bool isTarget = dataset.ValidationMask![i + 1];
            Assert.Equal(isTarget ? dataset.Validation[i + 1] : TokenDataset.IgnoreIndex, y[i]);
            if (isTarget) kept++;
        }
        Assert.Equal(kept, count);
        Assert.InRange(count, 1, y.Length - 1);

        // A batch from the middle holds the same windows as the whole.
        var (middle, _, _) = dataset.ValidationWindows(2, 3, seq);
        Assert.Equal(x[(2 * seq)..(5 * seq)], middle.ToArray<int>());
        Assert.Throws<ArgumentOutOfRangeException>(() => dataset.ValidationWindows(5, 2, seq));
    }

    [Fact]
    public void EvaluateWholeSplit_IsTheMeanLossOverEveryWindow_OneAtATime()
    {
        var config = Path.Combine(_root, "one-layer.json");
        File.WriteAllText(config, (LlamaConfig.FromName("tiny") with { NumHiddenLayers = 1 }).ToJson());
        var options = new TrainingOptions
        {
            Model = config, Seq = 16, Batch = 4, Steps = 2, Warmup = 1, EvalEvery = 2, EvalBatches = 1, CheckpointEvery = 2,
            LogEvery = 1, SyntheticBytes = 3_000,
        };
        var trainer = Trainer.Create(options, Path.Combine(_root, "run"));
        trainer.Run();

        var data = trainer.Data.Dataset;
        int windows = data.ValidationWindowCount(options.Seq);
        Assert.True(windows % options.Batch != 0, "the test wants a last batch shorter than the others");
        double sum = 0;
        using (GradMode.NoGrad())
            for (int w = 0; w < windows; w++)
            {
                using var scope = TensorScope.Enter();
                var (x, y, _) = data.ValidationWindows(w, 1, options.Seq);
                sum += trainer.Model.Loss(x, y).Item();
            }
        Assert.Equal(sum / windows, trainer.EvaluateWholeSplit(), 1e-5);

        // The command prints it, reopening the run from its checkpoint.
        var (code, stdout, stderr) = CliProcess.Run(["eval", "--run", trainer.RunDir, "--whole-split"]);
        Assert.True(code == 0, stderr);
        Assert.Contains($"the whole validation split: {windows} windows of {options.Seq} tokens", stdout);
        Assert.Contains($"validation loss {trainer.EvaluateWholeSplit():F4}", stdout);

        // Asking for sampled batches as well is a contradiction, refused in one line before the run is opened.
        (code, _, stderr) = CliProcess.Run(["eval", "--run", trainer.RunDir, "--whole-split", "--batches", "4"]);
        Assert.NotEqual(0, code);
        Assert.Contains("--batches and --whole-split exclude each other", stderr);
    }
}
