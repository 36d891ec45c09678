using System.Text.Json;

namespace TensorLite.Cli;

/// <summary>Draws runs' metrics.jsonl: one run as loss.png (train and validation loss, with reference lines),
/// or several runs' validation curves in one picture for comparisons.</summary>
public static class LossPlot
{
    private sealed record Curve(double[] Steps, double[] Loss, double[] ValSteps, double[] ValLoss, double TokensPerSecond, long StateBytes);

    private static bool Number(JsonElement e, out double value)
    {
        value = 0;
        return e.ValueKind == JsonValueKind.Number && e.TryGetDouble(out value) && double.IsFinite(value);
    }

    private static Curve Read(string runDir)
    {
        string metrics = Path.Combine(runDir, Training.MetricsLog.FileName);
        if (!File.Exists(metrics)) throw new TensorLiteException($"'{runDir}' has no metrics.jsonl.");
        var steps = new List<double>(); var losses = new List<double>();
        var valSteps = new List<double>(); var valLosses = new List<double>();
        double tokensPerSecond = 0;
        long stateBytes = 0;
        // Torn lines (a crash or a full disk mid-write) and records without a numeric loss are skipped.
        foreach (var r in Training.MetricsLog.Read(metrics, out _))
        {
            double step = r.GetProperty("step").GetInt64();
            if (!r.TryGetProperty("loss", out var loss) || !Number(loss, out double lossValue)) continue;
            if (r.TryGetProperty("tokens_per_s", out var tps) && Number(tps, out double t)) tokensPerSecond = t;
            if (r.TryGetProperty("optimizer_state_bytes", out var sb) && sb.ValueKind == JsonValueKind.Number && sb.TryGetInt64(out long b)) stateBytes = b;
            steps.Add(step);
            losses.Add(lossValue);
            if (r.TryGetProperty("val_loss", out var v) && Number(v, out double val))
            {
                valSteps.Add(step);
                valLosses.Add(val);
            }
        }
        return new Curve(steps.ToArray(), losses.ToArray(), valSteps.ToArray(), valLosses.ToArray(), tokensPerSecond, stateBytes);
    }

    /// <summary>Validation loss of several runs in one PNG, labelled by folder name; returns a Markdown table
    /// of each run's final validation loss, optimizer state and throughput.</summary>
    public static string Compare(IReadOnlyList<string> runDirs, string output, string title)
    {
        var plot = new ScottPlot.Plot();
        var table = new System.Text.StringBuilder("| run | final val loss | optimizer state (MiB) | tokens/s (whole run) |\n|---|---|---|---|\n");
        foreach (var dir in runDirs)
        {
            var c = Read(dir);
            string name = Path.GetFileName(Path.TrimEndingDirectorySeparator(dir));
            table.Append($"| {name} | {(c.ValLoss.Length > 0 ? c.ValLoss[^1].ToString("F4") : "-")} | {c.StateBytes / 1048576.0:F2} | {c.TokensPerSecond:F0} |\n");
            var val = plot.Add.Scatter(c.ValSteps, c.ValLoss);
            val.LegendText = name;
        }
        plot.Title(title);
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(output))!);
        plot.XLabel("step");
        plot.YLabel("validation cross-entropy (nats/token)");
        plot.ShowLegend(ScottPlot.Alignment.UpperRight);
        SavePng(plot, output, 1000, 560);
        return table.ToString();
    }

    public static void TryWrite(string runDir, double? floor, double unigram)
    {
        if (!File.Exists(Path.Combine(runDir, "metrics.jsonl"))) return;
        var c = Read(runDir);
        var (steps, losses, valSteps, valLosses) = (c.Steps, c.Loss, c.ValSteps, c.ValLoss);
        if (steps.Length == 0) return;
        var plot = new ScottPlot.Plot();
        var train = plot.Add.Scatter(steps, losses);
        train.LegendText = "train loss";
        train.MarkerSize = 0;
        if (valSteps.Length > 0)
        {
            var val = plot.Add.Scatter(valSteps, valLosses);
            val.LegendText = "validation loss";
        }
        var uni = plot.Add.HorizontalLine(unigram);
        uni.LegendText = $"unigram entropy {unigram:F2}";
        uni.LinePattern = ScottPlot.LinePattern.Dotted;
        if (floor is double f)
        {
            var fl = plot.Add.HorizontalLine(f);
            fl.LegendText = $"entropy floor {f:F3}";
            fl.LinePattern = ScottPlot.LinePattern.Dashed;
        }
        plot.XLabel("step");
        plot.YLabel("cross-entropy (nats/token)");
        plot.ShowLegend(ScottPlot.Alignment.UpperRight);
        SavePng(plot, Path.Combine(runDir, "loss.png"), 900, 500);
    }

    /// <summary>Saves <paramref name="plot"/> as a PNG through a temporary file, so a reader never sees half an image.</summary>
    internal static void SavePng(ScottPlot.Plot plot, string path, int width, int height)
    {
        string temp = path + ".tmp.png";
        plot.SavePng(temp, width, height);
        File.Move(temp, path, overwrite: true);
    }
}
