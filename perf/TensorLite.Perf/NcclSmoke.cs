using System.Diagnostics;
using System.Text.Json;
using TensorLite.Distributed;
using TensorLite.Ilgpu;

namespace TensorLite.Perf;

/// <summary>
///   gpu-nccl [--device cuda] [--out f.json]
/// NCCL on one CUDA device, in a world of one process (NCCL refuses two ranks on one device, and the device machine has
/// one GPU): the communicator's set-up (unique id, ncclCommInitRank in the device's primary context next to ILGPU's own
/// context), an all-reduce and a broadcast of device tensors (views at an offset, with sentinels around them), a
/// PreMulSum all-reduce (×2) — a world of one sums nothing, so this is the check that the values went through NCCL and
/// came back — and the gradient buckets' device path (float32 and bf16 tensors, several buckets). Each check compares
/// bits with the expected values. Finds NCCL as the CLI does: $TENSORLITE_NCCL, else libnccl.so.2 on the loader's path
/// (perf/gpu/run.sh sets TENSORLITE_NCCL from PyTorch's nvidia-nccl wheel). Exit code 1 when a check fails or NCCL
/// could not start.
/// </summary>
public static class NcclSmoke
{
    public static int Run(string[] args)
    {
        IlgpuDevices.Register();
        string Opt(string name, string fallback) => args.SkipWhile(a => a != name).Skip(1).FirstOrDefault() ?? fallback;
        string device = Opt("--device", "cuda");
        string? outPath = args.Contains("--out") ? Opt("--out", "") : null;
        var results = new Dictionary<string, object?>
        {
            ["date"] = DateTime.UtcNow.ToString("u"),
            [NcclCommunicator.LibraryPathVariable] = Environment.GetEnvironmentVariable(NcclCommunicator.LibraryPathVariable),
        };
        bool passed;
        try
        {
            var clock = Stopwatch.StartNew();
            using var nccl = (NcclCommunicator)NcclCommunicator.Connect(SingleProcess.Instance, "nccl", device, out string note);
            results["setup_s"] = clock.Elapsed.TotalSeconds;
            results["collectives"] = note;
            results["communicator"] = nccl.Description;
            Console.WriteLine($"{note}: {nccl.Description}");
            var checks = new List<Dictionary<string, object>>
            {
                AllReduce(nccl, 3_000_017, scale: null),
                AllReduce(nccl, 1_000_003, scale: 2f),
                Broadcast(nccl, 777_777),
                Buckets(nccl),
            };
            results["checks"] = checks;
            passed = checks.All(c => (bool)c["passed"]);
        }
        catch (Exception e)
        {
            results["error"] = $"{e.GetType().Name}: {e.Message}";
            Console.WriteLine($"error: {e.Message}");
            passed = false;
        }
        results["passed"] = passed;
        Console.WriteLine(passed ? "NCCL smoke check passed" : "NCCL smoke check FAILED");
        if (outPath != null)
            File.WriteAllText(outPath, JsonSerializer.Serialize(results, new JsonSerializerOptions { WriteIndented = true }));
        return passed ? 0 : 1;
    }

    private const float Sentinel = -1536f; // exact in bf16, and no value below is negative

    /// <summary>Values 0.5, 1, 1.5 … 127.5 (repeating) at an offset inside a buffer of sentinels, copied from the host:
    /// at most 8 significant bits, so exact in bf16 and doubled exactly.</summary>
    private static (Tensor Whole, Tensor View, float[] Values) OffsetView(IBackend backend, int n, int offset, DType dtype)
    {
        var host = new float[n + 2 * offset];
        Array.Fill(host, Sentinel);
        var values = new float[n];
        for (int i = 0; i < n; i++) values[i] = host[offset + i] = (i % 255 + 1) * 0.5f;
        using var source = Tensor.FromSpan<float>(host, [host.Length], DType.Float32, backend);
        var whole = Tensor.Empty([host.Length], dtype, backend);
        backend.Copy(source, whole);
        return (whole, whole.Narrow(0, offset, n), values);
    }

    private static float[] Read(Tensor t)
    {
        using var f = t.DType == DType.Float32 ? t.Detach() : t.To(DType.Float32);
        var result = new float[t.Numel];
        f.Backend.CopyToHost(f, System.Runtime.InteropServices.MemoryMarshal.AsBytes(result.AsSpan()));
        return result;
    }

    /// <summary>Counts the elements of <paramref name="whole"/> that differ from the expected view values (times
    /// <paramref name="factor"/>) or, outside the view, from the sentinel.</summary>
    private static long Mismatches(Tensor whole, int offset, float[] values, float factor)
    {
        var all = Read(whole);
        long bad = 0;
        for (int i = 0; i < all.Length; i++)
        {
            int j = i - offset;
            float expected = j >= 0 && j < values.Length ? values[j] * factor : Sentinel;
            if (BitConverter.SingleToInt32Bits(all[i]) != BitConverter.SingleToInt32Bits(expected)) bad++;
        }
        return bad;
    }

    internal static Dictionary<string, object> AllReduce(ICommunicator nccl, int n, float? scale)
    {
        var backend = nccl.CollectivesDevice!;
        var (whole, view, values) = OffsetView(backend, n, offset: 37, DType.Float32);
        using (whole)
        using (view)
        {
            var clock = Stopwatch.StartNew();
            if (scale is float s) ((NcclCommunicator)nccl).AllReduceScaledSumOnDevice(view, s);
            else nccl.AllReduceSumOnDevice(view);
            double seconds = clock.Elapsed.TotalSeconds;
            long bad = Mismatches(whole, 37, values, scale ?? 1f);
            Console.WriteLine($"all-reduce{(scale is float f ? $" ×{f} (PreMulSum)" : "")} of {n} floats: {bad} mismatches, {seconds * 1e3:F2} ms");
            return new() { ["check"] = scale == null ? "all-reduce sum" : $"all-reduce PreMulSum x{scale}", ["elements"] = n, ["mismatches"] = bad, ["seconds"] = seconds, ["passed"] = bad == 0 };
        }
    }

    internal static Dictionary<string, object> Broadcast(ICommunicator nccl, int n)
    {
        var backend = nccl.CollectivesDevice!;
        var (whole, view, values) = OffsetView(backend, n, offset: 5, DType.BFloat16);
        using (whole)
        using (view)
        {
            nccl.BroadcastOnDevice(view, root: 0);
            long bad = Mismatches(whole, 5, values, 1f);
            Console.WriteLine($"broadcast of {n} bf16 values: {bad} mismatches");
            return new() { ["check"] = "broadcast bf16", ["elements"] = n, ["mismatches"] = bad, ["passed"] = bad == 0 };
        }
    }

    /// <summary>The gradient buckets' device path: float32 and bf16 tensors in buckets of 100 000 elements (five buckets:
    /// 70 000 | 50 000 | 250 000 alone | 3 | 99 999).</summary>
    internal static Dictionary<string, object> Buckets(ICommunicator nccl)
    {
        var backend = nccl.CollectivesDevice!;
        int[] sizes = [70_000, 50_000, 250_000, 3, 99_999];
        var tensors = new List<(Tensor Whole, Tensor View, float[] Values)>();
        for (int i = 0; i < sizes.Length; i++) tensors.Add(OffsetView(backend, sizes[i], offset: 11, i % 2 == 0 ? DType.Float32 : DType.BFloat16));
        var timed = new TimedCommunicator(nccl);
        using (var buckets = new GradientBuckets(timed, bucketElements: 100_000, overlap: true))
        {
            foreach (var t in tensors) buckets.Add(t.View);
            buckets.Complete();
            long bad = tensors.Sum(t => Mismatches(t.Whole, 11, t.Values, 1f));
            foreach (var t in tensors) { t.View.Dispose(); t.Whole.Dispose(); }
            Console.WriteLine($"gradient buckets: {buckets.BucketsSummed} buckets, {timed.AllReducedBytes} bytes, {bad} mismatches");
            return new() { ["check"] = "gradient buckets (f32 + bf16)", ["buckets"] = buckets.BucketsSummed, ["bytes"] = timed.AllReducedBytes, ["mismatches"] = bad, ["passed"] = bad == 0 && buckets.BucketsSummed == 5 };
        }
    }
}
