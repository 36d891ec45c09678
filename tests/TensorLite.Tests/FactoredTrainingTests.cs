using System.Text.Json;
using TensorLite.Models;
using TensorLite.Training;
using Xunit;

namespace TensorLite.Tests;

/// <summary>
/// Whole training steps of a one-layer tiny LLaMA with factored gradients (--factored-gradients on) against the dense
/// path (off), for every projected preset, with gradient accumulation, per-layer updates and bf16 activations. Clipping
/// is off: with factored gradients it clips by the projected norm (docs/optimizers.md). GRASS runs without weight
/// decay here, because its factored update decays only the rows it updates (tested bit for bit in
/// <see cref="FactoredGradientTests"/>).
/// </summary>
public sealed class FactoredTrainingTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("tl-factored-").FullName;

    public FactoredTrainingTests() =>
        File.WriteAllText(Path.Combine(_root, "one-layer.json"), (LlamaConfig.FromName("tiny") with { NumHiddenLayers = 1 }).ToJson());

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private TrainingOptions Options(string optimizer, string? projection) => new()
    {
        Model = Path.Combine(_root, "one-layer.json"), Seq = 16, Batch = 2, GradAccum = 2, Steps = 3, Warmup = 1, EvalEvery = 3,
        EvalBatches = 1, CheckpointEvery = 3, LogEvery = 1, SyntheticBytes = 20_000, Optimizer = optimizer, Projection = projection,
        Rank = 4, UpdateGap = 2, ClipNorm = 0, WeightDecay = optimizer == "grass" ? 0 : 0.1f,
    };

    private (float[][] Weights, float[] Losses, Trainer Trainer) Train(TrainingOptions options, string name)
    {
        var trainer = Trainer.Create(options, Path.Combine(_root, name));
        trainer.Run();
        var losses = File.ReadLines(Path.Combine(trainer.RunDir, "metrics.jsonl"))
            .Select(line => JsonDocument.Parse(line).RootElement.GetProperty("loss").GetSingle()).ToArray();
        return (trainer.Model.Parameters().Select(p => p.ToArray()).ToArray(), losses, trainer);
    }

    /// <summary>Factored and dense runs take the same steps: every weight within 1e-6 of the dense run's (the updates
    /// are lr·α·Adam directions of about 1e-3 per step; only the order of float32 sums differs — the largest difference
    /// seen was 4e-9; OSD: see below), losses within 1e-3.</summary>
    [Theory]
    [InlineData("galore", "svd", "plain")]
    [InlineData("galore", "rsvd", "per-layer")]
    [InlineData("galore", "range", "bf16")]
    [InlineData("osd", null, "plain")]
    [InlineData("osd", null, "per-layer")]
    [InlineData("osd", null, "single")]
    [InlineData("grass", "norm", "single")]
    [InlineData("grass", "topnorm", "plain")]
    [InlineData("grass", "topnorm", "per-layer")]
    [InlineData("grass", "uniform", "bf16")]
    [InlineData("frugal", "blocks", "per-layer")]
    [InlineData("galore", "svd", "checkpointed")]
    public void FactoredSteps_EqualTheDenseSteps(string optimizer, string? projection, string mode)
    {
        var options = Options(optimizer, projection) with
        {
            PerLayer = mode is "per-layer" or "bf16" or "single",
            GradAccum = mode == "single" ? 1 : 2, // OSD refreshes at every step, so with accumulation its step is dense
            Activations = mode == "bf16" ? "bf16" : "fp32",
            CheckpointLayers = mode == "checkpointed",
        };
        string name = $"{optimizer}-{projection}-{mode}";
        var dense = Train(options with { FactoredGradients = false }, name + "-dense");
        var factored = Train(options with { FactoredGradients = true }, name + "-factored");
        Assert.False(dense.Trainer.Model.Layers[0].QProj.CaptureFactoredGradient);
        Assert.Equal(optimizer != "frugal", factored.Trainer.Model.Layers[0].QProj.CaptureFactoredGradient); // FRUGAL's residual needs G
        double worst = 0;
        for (int i = 0; i < dense.Weights.Length; i++)
            for (int j = 0; j < dense.Weights[i].Length; j++)
                worst = Math.Max(worst, Math.Abs(dense.Weights[i][j] - factored.Weights[i][j]));
        // OSD's online PCA runs Adam on P, whose first steps are ±lr wherever an element of the PCA gradient is at
        // rounding level, so the two paths' bases differ a little more (2.3e-6 seen).
        double tolerance = optimizer == "osd" ? 1e-5 : 1e-6;
        Assert.True(worst <= tolerance, $"weights differ by up to {worst:g3}");
        Assert.Equal(dense.Losses.Length, factored.Losses.Length);
        for (int i = 0; i < dense.Losses.Length; i++) Assert.True(Math.Abs(dense.Losses[i] - factored.Losses[i]) <= 1e-3, $"loss {i}: {dense.Losses[i]} vs {factored.Losses[i]}");
        // Nothing is left behind between steps: no factors, no gradients.
        Assert.All(factored.Trainer.Model.Parameters(), p => Assert.False(p.HasGradient));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Clipping_UsesTheProjectedNorm_WhichIsAtMostTheDenseNorm(bool perLayer)
    {
        // GRASS projects by a selection, so ‖R‖ ≤ ‖G‖ for every projected matrix; the other parameters are dense in both.
        var options = Options("grass", "topnorm") with { ClipNorm = 1e-3f, GradAccum = 1, PerLayer = perLayer };
        double[] Norms(string dir) => File.ReadLines(Path.Combine(dir, "metrics.jsonl"))
            .Select(line => JsonDocument.Parse(line).RootElement.GetProperty("grad_norm").GetDouble()).ToArray();
        var dense = Train(options with { FactoredGradients = false }, $"clip-dense-{perLayer}");
        var factored = Train(options with { FactoredGradients = true }, $"clip-factored-{perLayer}");
        var unclipped = Train(options with { FactoredGradients = true, ClipNorm = 0 }, $"clip-none-{perLayer}");
        double denseNorm = Norms(dense.Trainer.RunDir)[0], factoredNorm = Norms(factored.Trainer.RunDir)[0];
        Assert.True(factoredNorm > 0 && double.IsFinite(factoredNorm), $"factored norm {factoredNorm}");
        Assert.True(factoredNorm <= denseNorm * (1 + 1e-6), $"projected norm {factoredNorm} above the dense {denseNorm}");
        Assert.True(factoredNorm < denseNorm * 0.999, "the first step's norms should differ: GRASS drops most of each projected gradient");
        // The clip (1e-3, far below the norm) really scaled the factored steps of a projected matrix.
        Assert.NotEqual(unclipped.Trainer.Model.Layers[0].QProj.ToArray(), factored.Trainer.Model.Layers[0].QProj.ToArray());
    }
}
