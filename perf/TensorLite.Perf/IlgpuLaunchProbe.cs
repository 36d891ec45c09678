using System.Diagnostics;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using TensorLite.Ilgpu;

namespace TensorLite.Perf;

/// <summary>
/// `ilgpu-launch [launches]`: what one kernel launch costs on ILGPU's CPU accelerator (the `ilgpu-cpu` device) and
/// how many cores it keeps busy, for an element-wise (auto-grouped) launch and for explicitly grouped launches of
/// 16 and 256 threads with a group barrier, on the emulator as `--device ilgpu-cpu` creates it. Reports wall
/// time per launch, process CPU time per launch (CPU/wall = cores kept busy) and the process's OS thread count.
/// </summary>
public static class IlgpuLaunchProbe
{
    public static void Run(string[] args)
    {
        int launches = args.Length > 1 ? int.Parse(args[1]) : 200;
        Console.WriteLine($"# ILGPU CPU accelerator launch cost, {launches} launches each; {Environment.ProcessorCount} cores; load {Load()}");
        using var backend = IlgpuBackend.Create(DeviceKind.Cpu);
        Console.WriteLine($"# {backend.Description}");
        var a = backend.Accelerator;
        using var buffer = a.Allocate1D<float>(1 << 16);
        // Element-wise kernels as the backend loads them (groups of one thread on this accelerator) and as ILGPU would
        // auto-group them (one 16-thread warp per group), and a grouped kernel with a barrier at several group sizes.
        var elementwise = a.LoadElementwiseKernel<Index1D, ArrayView<float>>(Touch);
        var autoGrouped = a.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>>(Touch);
        var grouped = a.LoadStreamKernel<ArrayView<float>>(TouchWithBarrier);
        void Elementwise(string when)
        {
            Measure($"element-wise 1024, {when}", launches, () => elementwise(1024, buffer.View));
            Measure($"element-wise 65536, {when}", launches, () => elementwise(1 << 16, buffer.View));
        }
        void Grouped(int threads) =>
            Measure($"{threads}-thread groups + barrier, 4 groups", launches, () => grouped(new KernelConfig(4, threads), buffer.View));
        Elementwise("first");
        Grouped(IlgpuBackend.EmulatorGroupThreads);
        Elementwise($"after {IlgpuBackend.EmulatorGroupThreads}-thread groups");
        Measure("auto-grouped element-wise 1024", launches, () => autoGrouped(1024, buffer.View));
        Measure("auto-grouped element-wise 65536", Math.Max(1, launches / 10), () => autoGrouped(1 << 16, buffer.View));
        Grouped(256);
        Elementwise("after 256-thread groups");
    }

    private static void Touch(Index1D i, ArrayView<float> x) => x[i] += 1f;

    private static void TouchWithBarrier(ArrayView<float> x)
    {
        int i = Grid.GlobalIndex.X;
        x[i] += 1f;
        Group.Barrier();
        x[i] += 1f;
    }

    private static void Measure(string what, int launches, Action launch)
    {
        launch();   // compile and start the emulator's threads first
        var process = Process.GetCurrentProcess();
        var cpu0 = process.TotalProcessorTime;
        var watch = Stopwatch.StartNew();
        for (int i = 0; i < launches; i++) launch();
        watch.Stop();
        process.Refresh();
        double cpu = (process.TotalProcessorTime - cpu0).TotalMilliseconds, wall = watch.Elapsed.TotalMilliseconds;
        Console.WriteLine($"{what,-45} {wall / launches * 1000,9:F0} µs/launch wall  {cpu / launches * 1000,9:F0} µs CPU  " +
            $"cores busy {cpu / wall,4:F1}  OS threads {process.Threads.Count}");
    }

    private static string Load() => File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Trim() : "?";
}
