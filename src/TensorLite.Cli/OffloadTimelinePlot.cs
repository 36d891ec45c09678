using TensorLite.Optim.Offload;
using TensorLite.Training;

namespace TensorLite.Cli;

/// <summary>Draws an offloaded run's step timeline (offload-timeline.json) as offload-timeline.png: one row per lane —
/// the device's forward and backward, the last step's deferred updates landing in the forward, copies to the host, host
/// updates, the device waiting, copies back with the update — so a user sees whether the device waits for the host.</summary>
public static class OffloadTimelinePlot
{
    private static readonly (OffloadLane Lane, string Label, ScottPlot.Color Color)[] Lanes =
    [
        (OffloadLane.DeviceCompute, "device: forward + backward", ScottPlot.Colors.SteelBlue),
        (OffloadLane.DeferredApply, "deferred update lands (next forward; before an evaluation)", ScottPlot.Colors.Gold),
        (OffloadLane.ToHost, "device → host copy", ScottPlot.Colors.Orange),
        (OffloadLane.HostUpdate, "host: optimizer update", ScottPlot.Colors.SeaGreen),
        (OffloadLane.DeviceWait, "device waits for host", ScottPlot.Colors.Crimson),
        (OffloadLane.ToDeviceAndApply, "host → device copy + apply", ScottPlot.Colors.MediumPurple),
    ];

    /// <summary>Writes the PNG when the run folder has a timeline; returns its path, else null.</summary>
    public static string? TryWrite(string runDir)
    {
        if (OffloadTimeline.Read(runDir) is not { } step || step.Events.Length == 0) return null;
        var plot = new ScottPlot.Plot();
        for (int row = 0; row < Lanes.Length; row++)
        {
            var (lane, _, color) = Lanes[row];
            double y = Lanes.Length - 1 - row;
            foreach (var e in step.Events.Where(e => e.Lane == lane))
            {
                // Events shorter than a pixel still show as a sliver.
                var box = plot.Add.Rectangle(e.Start * 1e3, Math.Max(e.End, e.Start + 1e-5) * 1e3, y - 0.35, y + 0.35);
                box.FillColor = color;
                box.LineWidth = 0;
            }
        }
        // The left axis names each lane (no legend: below the plot, six entries did not fit).
        plot.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.NumericManual(
            Enumerable.Range(0, Lanes.Length).Select(i => (double)(Lanes.Length - 1 - i)).ToArray(), Lanes.Select(l => l.Label).ToArray());
        plot.Title($"step {step.StepNumber}: {MemoryPlan.Format(step.BytesToHost)} to the host, {MemoryPlan.Format(step.BytesToDevice)} back; " +
                   $"host {step.HostSeconds:F3} s, device waited {step.WaitSeconds:F3} s");
        // A host update deferred from the last step may have started before this step did (negative times).
        plot.XLabel("milliseconds from the start of the step");
        string path = Path.Combine(runDir, "offload-timeline.png");
        LossPlot.SavePng(plot, path, 1100, 420);
        return path;
    }
}
