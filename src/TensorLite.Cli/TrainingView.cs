using Spectre.Console;
using TensorLite.Optim.Projected;
using TensorLite.Training;

namespace TensorLite.Cli;

/// <summary>Shows a run's progress: a live table on a terminal, plain lines when output is redirected (CI, tee).</summary>
public static class TrainingView
{
    public static int Run(Trainer trainer, string? collectives = null)
    {
        var o = trainer.Options;
        var data = trainer.Data;
        var c = trainer.Model.Config;
        Console.WriteLine($"run folder   {Path.GetFullPath(trainer.RunDir)}");
        Console.WriteLine($"device       {trainer.DeviceNote}");
        if (trainer.World.WorldSize > 1)
            Console.WriteLine($"processes    {trainer.World.Description}; each takes {o.GradAccum / trainer.World.WorldSize} of the {o.GradAccum} micro-batches of a step" +
                              (o.ShardStates ? "; optimizer states sharded" : "") + $"; sums {trainer.AllReduceSummary}");
        if (trainer.World.WorldSize > 1 && collectives != null) Console.WriteLine($"collectives  {collectives}");
        Console.WriteLine($"model        {o.Model}: {c.NumHiddenLayers} layers, hidden {c.HiddenSize}, heads {c.NumAttentionHeads}, {trainer.Model.ParameterCount():N0} parameters");
        Console.WriteLine($"data         {data.Description}; unigram entropy {data.UnigramEntropyNats:F3} nats/token" +
                          (data.EntropyFloorNats is double f ? $", known entropy floor {f:F3}" : ""));
        Console.WriteLine($"optimizer    {OptimizerSummary(o)}; state {trainer.PredictedOptimizerStateBytes / 1048576.0:F2} MiB" +
                          (o.States != "fp32" ? $" ({o.States})" : "") + (o.PerLayer ? "; per-layer updates" : ""));
        if (trainer.Offload != null)
            Console.WriteLine($"offload      optimizer states on the host ({o.Offload}), {o.OffloadSchedule} schedule" +
                              (trainer.Offload.DeferredStages.Count > 0 ? $" (the updates of the embedding and {DeferredLayerNames(Trainer.DeferredLayers(o, c.NumHiddenLayers))} land in the next forward)" : "") + (o.DeviceMemory is string dm ? $", device budget {dm}" : ""));
        if (o.WeightDType != DType.Float32)
            Console.WriteLine($"weights      {o.Weights}" + (o.MasterWeights ? " with float32 masters" : o.StochasticRounding ? ", stochastic rounding" : ", rounded to nearest"));
        if (o.ActivationDType != DType.Float32)
            Console.WriteLine($"activations  {o.Activations} (fp32 math inside each op; fp32 logits and loss)");
        Console.WriteLine($"training     {o.Steps} steps × {o.Batch}×{o.Seq} tokens × {o.GradAccum} accumulation, lr {o.PeakLearningRate:G3} (warm-up {o.Warmup}, cosine), clip {o.ClipNorm}, seed {o.Seed}" +
                          (trainer.StartStep > 0 ? $", resuming at step {trainer.StartStep}" : ""));
        try
        {
            if (AnsiConsole.Profile.Capabilities.Interactive) RunLive(trainer);
            else RunPlain(trainer);
        }
        catch
        {
            // The plot of what was done is still drawn, but a failure there (a full disk, say) must not hide the
            // run's own error.
            try { LossPlot.TryWrite(trainer.RunDir, data.EntropyFloorNats, data.UnigramEntropyNats); }
            catch (Exception) { /* the original error is reported */ }
            throw;
        }
        LossPlot.TryWrite(trainer.RunDir, data.EntropyFloorNats, data.UnigramEntropyNats);
        if (OffloadTimelinePlot.TryWrite(trainer.RunDir) is string timeline) Console.WriteLine($"offload      timeline of the last logged step: {timeline}");
        if (trainer.Offload is { } engine) Console.WriteLine($"offload      device ↔ host copies went {engine.CopyDescription}");
        Console.WriteLine("peak memory  " + string.Join(", ", trainer.Memory.AtPeak.Items().Where(x => x.Bytes > 0)
            .Select(x => $"{MemoryPlan.CategoryName(x.Category)} {MemoryPlan.Format(x.Bytes)}")) +
            $"; tensors {MemoryPlan.Format(trainer.Memory.PeakBytes)}, process {MemoryPlan.Format(TensorLite.Memory.ProcessMemory.PeakResidentBytes())}" +
            (trainer.Device is IDeviceAllocator a ? $", device allocator {MemoryPlan.Format(a.PeakReservedBytes)}" : ""));
        if (DistinctRowsSummary(trainer) is string rows) Console.WriteLine(rows);
        if (SketchErrorSummary(trainer) is string sketches) Console.WriteLine(sketches);
        if (trainer.World is TensorLite.Distributed.TimedCommunicator timed)
            Console.WriteLine($"collectives  {timed.Elapsed.TotalSeconds:F1} s on rank 0 (summing gradients and losses, waiting for the other ranks included)" +
                              (trainer.GradientSumWait > TimeSpan.Zero ? $"; the steps waited {trainer.GradientSumWait.TotalSeconds:F1} s after backward for their gradient sums" : ""));
        float val = trainer.LastValidationLoss ?? float.NaN;
        Console.WriteLine($"done: validation loss {val:F4} nats/token (perplexity {Math.Exp(val):F2})" +
                          (data.EntropyFloorNats is double floor ? $"; floor {floor:F3}, unigram {data.UnigramEntropyNats:F3}" : "") +
                          $"; checkpoint {Checkpoints.Latest(trainer.RunDir)}; loss plot {Path.Combine(trainer.RunDir, "loss.png")}");
        return 0;
    }

    /// <summary>What a ReLoRA restart does to the moments, in words.</summary>
    private static string RestartMoments(Optim.Lora.LoraOptions l) => l.RestartStates == Optim.Lora.LoraRestartStates.Zero
        ? "moments zeroed"
        : $"{l.RestartStates.ToString().ToLowerInvariant()} pruning of {l.RestartPruneRatio:P0} of the moments";

    /// <summary>The optimizer as the run resolves it: the variant as the user wrote it, else the one the spec parsed;
    /// numbers (and their defaults) from the method's preset.</summary>
    /// <summary>The decoder layers a deferred offload schedule defers, in words: "layer 0" or "layers 0–3".</summary>
    private static string DeferredLayerNames(int layers) => layers == 1 ? "layer 0" : $"layers 0–{layers - 1}";

    private static string OptimizerSummary(TrainingOptions o)
    {
        var spec = o.ToOptimizerSpec();
        if (spec.Method == OptimizerMethod.Lora)
        {
            var l = spec.ToLoraOptions();
            var hl = spec.HyperParameters;
            return $"LoRA rank {l.Rank}, alpha {l.Alpha} (scale {l.Alpha / l.Rank:G3}), base frozen, merged into the weights{(l.RestartEvery > 0 ? $", merge-and-restart every {l.RestartEvery} steps ({RestartMoments(l)}, lr re-warm-up {o.ResolvedLoraRestartWarmup} steps)" : "")}; Adam β {hl.Beta1}, {hl.Beta2}, ε {hl.Eps:G2}, weight decay {hl.WeightDecay}";
        }
        var p = spec.ToOptions();
        string side = o.ProjSide is string w ? $", side {w}" : "";
        var h = spec.HyperParameters;
        string adam = spec.Method == OptimizerMethod.AdamW ? "" : $"; Adam β {h.Beta1}, {h.Beta2}, ε {h.Eps:G2}, weight decay {h.WeightDecay}";
        return spec.Method switch
        {
            OptimizerMethod.AdamW => $"AdamW (β {h.Beta1}, {h.Beta2}, weight decay {h.WeightDecay})",
            OptimizerMethod.Frugal => $"FRUGAL density {p.Density}, subspace {o.Projection ?? Word(spec.Subspace)}" +
                (p.Projector is WholeMatrixProjectorFactory whole ? $" ({Word<MatrixOrder>(whole.Order)} order)" : "") +
                $", residual {o.Residual ?? Word(spec.Residual)}, lr scales {p.Scale} / {p.ResidualScale}, refresh every {p.UpdateGap}{side}{adam}",
            OptimizerMethod.Osd => $"Online Subspace Descent rank {p.Rank}, scale {p.Scale}, PCA lr {((OnlinePcaProjectorFactory)p.Projector).LearningRateFor(p.UpdateGap):G3} × schedule{side}{adam}",
            OptimizerMethod.Lsp when p.Projector is SketchProjectorFactory sk =>
                $"LSP sketches rank {p.Rank}, {sk.NonZeros} non-zeros per column, refit check every {p.UpdateGap} (threshold {sk.FitThreshold}, {sk.FitIterations} Adam steps at lr {sk.FitLearningRate}){adam}",
            OptimizerMethod.Grass => $"GRASS rank {p.Rank}, selection {GrassSelection((SparseProjectorFactory)p.Projector)}, refresh every {p.UpdateGap}{side}{adam}",
            _ => $"{o.Optimizer} rank {p.Rank}, projection {o.Projection ?? Word(spec.GaLoreBasis)}, refresh every {p.UpdateGap}, scale {p.Scale}{side}{adam}",
        };
    }

    /// <summary>For GRASS: how many distinct rows (columns) each projected matrix has selected during this process —
    /// min, median and max over the matrices, as a fraction of the projected side.</summary>
    private static string? DistinctRowsSummary(Trainer trainer)
    {
        if (trainer.Optimizer is not ProjectedOptimizer opt) return null;
        var fractions = Enumerable.Range(0, opt.Names.Count).Select(opt.ProjectorOf).OfType<SparseProjector>()
            .Select(s => (double)s.DistinctSelected / s.Dim).Order().ToArray();
        if (fractions.Length == 0) return null;
        return $"rows seen    distinct rows selected per matrix: min {fractions[0]:P0}, median {fractions[fractions.Length / 2]:P0}, max {fractions[^1]:P0} of the projected side ({fractions.Length} matrices)";
    }

    /// <summary>For LSP: the sketches' relative reconstruction error ‖P_l·G·P_r − G‖/‖G‖ at the last check of each matrix
    /// (median and max) and, where that check refit, right after the fit — measured on the gradient of that step.</summary>
    private static string? SketchErrorSummary(Trainer trainer)
    {
        if (trainer.Optimizer is not ProjectedOptimizer opt) return null;
        var sketches = Enumerable.Range(0, opt.Names.Count).Select(opt.ProjectorOf).OfType<SketchProjector>().ToArray();
        var checks = sketches.Select(s => s.LastCheckError).Where(double.IsFinite).Order().ToArray();
        if (checks.Length == 0) return null;
        var fits = sketches.Select(s => s.LastFitError).Where(double.IsFinite).Order().ToArray();
        string fitted = fits.Length == 0 ? "no refit this process" : $"right after each matrix's last refit median {fits[fits.Length / 2]:F3}, max {fits[^1]:F3}";
        // An error near 1 after fitting means the fit shrank the values towards zero (P = 0 gives exactly 1): the rank
        // is too small for these gradients and the updates carry almost nothing, which a user would otherwise not see.
        string advice = fits.Length > 0 && fits[fits.Length / 2] >= 0.9
            ? "; the fitted sketches keep almost none of the gradient (error near 1): raise --rank" : "";
        return $"sketches    relative error at the last check: median {checks[checks.Length / 2]:F3}, max {checks[^1]:F3}; {fitted}; {sketches.Sum(s => s.RefreshCount)} refits in all{advice}";
    }

    /// <summary>GRASS's selection in the command line's words, with how it samples.</summary>
    private static string GrassSelection(SparseProjectorFactory f) => f.Selection switch
    {
        TensorLite.LinearAlgebra.RowSelection.TopNorm => "topnorm",
        TensorLite.LinearAlgebra.RowSelection.NormProportional => "norm",
        TensorLite.LinearAlgebra.RowSelection.NormSquaredProportional => "norm2",
        _ => "uniform",
    } + (f.Sampled ? (f.WithReplacement ? " (sampled with replacement" : " (sampled without replacement") + (f.Rescaled ? ", re-scaled)" : ")") : "");

    private static string Word<T>(T? value) where T : struct, Enum => value?.ToString().ToLowerInvariant() ?? "";

    private static string Line(TrainProgress p) =>
        $"step {p.Step,6}/{p.TotalSteps}  loss {p.Loss,7:F4}  " + (p.ValidationLoss is float v ? $"val {v,7:F4}  " : new string(' ', 14)) +
        $"lr {p.LearningRate,9:E2}  |g| {p.GradNorm,6:F2}  {p.TokensPerSecond,7:F0} tok/s  " +
        $"elapsed {p.Elapsed:mm\\:ss}  eta {p.Remaining:mm\\:ss}  mem {Mib(p.TensorBytes)}/{Mib(p.PeakTensorBytes)} peak, rss {Mib(p.ProcessBytes)}" +
        (p.DeviceReservedBytes is long d ? $", device {Mib(d)}" : "") +
        (p.OffloadBytes is long moved ? $"  offload {MemoryPlan.Format(moved)}/step, host {p.OffloadHostSeconds:F2}s, waited {p.OffloadWaitSeconds:F2}s" : "");

    private static string Mib(long bytes) => $"{bytes / 1048576.0:F0}MiB";

    private static void RunPlain(Trainer trainer)
    {
        trainer.Progress += p => Console.WriteLine(Line(p));
        trainer.Run();
    }

    private static void RunLive(Trainer trainer)
    {
        var table = new Table().Border(TableBorder.Rounded).Expand();
        foreach (var col in new[] { "step", "loss", "val loss", "lr", "grad norm", "tokens/s", "elapsed", "ETA", "tensor memory (peak)", "process" })
            table.AddColumn(col);
        table.AddRow("-", "-", "-", "-", "-", "-", "-", "-", "-", "-");
        float? lastVal = null;
        AnsiConsole.Live(table).Start(ctx =>
        {
            trainer.Progress += p =>
            {
                lastVal = p.ValidationLoss ?? lastVal;
                table.UpdateCell(0, 0, $"{p.Step}/{p.TotalSteps}").UpdateCell(0, 1, $"{p.Loss:F4}")
                    .UpdateCell(0, 2, lastVal is float v ? $"{v:F4}" : "-").UpdateCell(0, 3, $"{p.LearningRate:E2}")
                    .UpdateCell(0, 4, $"{p.GradNorm:F2}").UpdateCell(0, 5, $"{p.TokensPerSecond:F0}")
                    .UpdateCell(0, 6, $"{p.Elapsed:mm\\:ss}").UpdateCell(0, 7, $"{p.Remaining:mm\\:ss}")
                    .UpdateCell(0, 8, $"{Mib(p.TensorBytes)} ({Mib(p.PeakTensorBytes)})").UpdateCell(0, 9, Mib(p.ProcessBytes));
                if (p.ValidationLoss != null) AnsiConsole.MarkupLine(Markup.Escape(Line(p)));
                ctx.Refresh();
            };
            trainer.Run();
        });
    }
}
