using System.Text.Json;

namespace TensorLite.Cli;

/// <summary>Draws a run's metrics.jsonl as loss.png (train and validation loss, with reference lines).</summary>
public static class LossPlot
{
    public static void TryWrite(string runDir, double? floor, double unigram)
    {
        string metrics = Path.Combine(runDir, "metrics.jsonl");
        if (!File.Exists(metrics)) return;
        var steps = new List<double>(); var losses = new List<double>();
        var valSteps = new List<double>(); var valLosses = new List<double>();
        foreach (var line in File.ReadLines(metrics))
        {
            using var doc = JsonDocument.Parse(line);
            var r = doc.RootElement;
            double step = r.GetProperty("step").GetDouble();
            steps.Add(step);
            losses.Add(r.GetProperty("loss").GetDouble());
            if (r.TryGetProperty("val_loss", out var v) && v.ValueKind == JsonValueKind.Number)
            {
                valSteps.Add(step);
                valLosses.Add(v.GetDouble());
            }
        }
        if (steps.Count == 0) return;
        var plot = new ScottPlot.Plot();
        var train = plot.Add.Scatter(steps.ToArray(), losses.ToArray());
        train.LegendText = "train loss";
        train.MarkerSize = 0;
        if (valSteps.Count > 0)
        {
            var val = plot.Add.Scatter(valSteps.ToArray(), valLosses.ToArray());
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
        string path = Path.Combine(runDir, "loss.png");
        string temp = path + ".tmp.png";
        plot.SavePng(temp, 900, 500);
        File.Move(temp, path, overwrite: true);
    }
}
