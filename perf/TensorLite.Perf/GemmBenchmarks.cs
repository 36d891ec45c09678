using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using TensorLite.Backends.Cpu;

namespace TensorLite.Perf;

/// <summary>
/// CpuGemm on the reference shapes (cubes, a tall 4096-row problem and the LLaMA-60M projections
/// with their backward variants). Short job: the machine is shared, so a few iterations and the
/// median are as good as it gets; GFLOP/s and % of the FMA peak are derived from the median.
/// </summary>
[Config(typeof(GemmConfig))]
public unsafe class GemmBenchmarks
{
    GemmBuffers? _buf;

    public static IEnumerable<GemmShape> ShapeSource() => Shapes.All;

    [ParamsSource(nameof(ShapeSource))]
    public GemmShape Shape { get; set; }

    /// <summary>Thread counts to run: TL_BENCH_THREADS (e.g. "2"), default 1 and 2.</summary>
    public static IEnumerable<int> ThreadSource() =>
        (Environment.GetEnvironmentVariable("TL_BENCH_THREADS") ?? "1,2").Split(',').Select(int.Parse);

    [ParamsSource(nameof(ThreadSource))]
    public int Threads { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        CpuGemm.MaxThreads = Threads;
        _buf = new GemmBuffers(Shape);
    }

    [GlobalCleanup]
    public void Cleanup() => _buf?.Dispose();

    [Benchmark]
    public void Sgemm() => _buf!.Run();
}

public sealed class GemmConfig : ManualConfig
{
    public GemmConfig()
    {
        AddJob(Job.Default
            .WithLaunchCount(1).WithWarmupCount(3).WithIterationCount(9)
            .WithId("short"));
        AddColumn(StatisticColumn.Median);
        AddColumn(new GflopsColumn(peak: false));
        AddColumn(new GflopsColumn(peak: true));
    }
}

/// <summary>GFLOP/s (2mnk / median time) or the same as a percentage of the measured FMA peak.</summary>
public sealed class GflopsColumn(bool peak) : IColumn
{
    /// <summary>FMA peak per thread count, measured by the host process before the run (0 = unknown).</summary>
    public static readonly Dictionary<int, double> PeakGflops = new();

    public string Id => peak ? "PctPeak" : "GFLOPs";
    public string ColumnName => peak ? "% of FMA peak" : "GFLOP/s";
    public bool AlwaysShow => true;
    public ColumnCategory Category => ColumnCategory.Custom;
    public int PriorityInCategory => peak ? 1 : 0;
    public bool IsNumeric => true;
    public UnitType UnitType => UnitType.Dimensionless;
    public string Legend => peak
        ? "GFLOP/s as % of the tight-loop Vector512 FMA peak for the same thread count (measured before the run)"
        : "2·m·n·k / median time";
    public bool IsAvailable(Summary summary) => true;
    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
    {
        var report = summary[benchmarkCase];
        if (report?.ResultStatistics is null) return "-";
        var shape = benchmarkCase.Parameters.Items.Select(p => p.Value).OfType<GemmShape>().FirstOrDefault();
        int threads = benchmarkCase.Parameters.Items.Where(p => p.Name == "Threads").Select(p => (int)p.Value).FirstOrDefault(1);
        double gflops = shape.Flops / report.ResultStatistics.Median; // flop per ns = GFLOP/s
        if (!peak) return gflops.ToString("F1");
        return PeakGflops.TryGetValue(threads, out double p) && p > 0 ? (100 * gflops / p).ToString("F0") + "%" : "-";
    }
}

public static class Bench
{
    public static void Run(string[] args)
    {
        for (int t = 1; t <= 2; t++)
        {
            GflopsColumn.PeakGflops[t] = Peak.Measure(t);
            Console.WriteLine($"FMA peak, {t} thread(s): {GflopsColumn.PeakGflops[t]:F1} GFLOP/s");
        }
        BenchmarkSwitcher.FromAssembly(typeof(Bench).Assembly).Run(args);
    }
}
