using System.Diagnostics;
using System.Text.Json;
using TensorLite.Ilgpu;
using TensorLite.Training;

namespace TensorLite.Perf;

/// <summary>
/// What the GPU issue measures, runnable on the device machine in one command (perf/gpu/run.sh packs and runs it):
///
///   gpu-check [--device cuda] [--out f.json]   the GPU backend against the CPU backend: GEMMs (fp32, bf16, transposed)
///                                              and whole tiny-LLaMA training runs (AdamW, per-layer, GaLore rSVD)
///   gpu-bench [--device cuda] [--smoke] [--out f.json]
///                                              GEMM TFLOP/s (fp32 and bf16 at 4096³ and llama_130m shapes) and training
///                                              tokens/s (llama_60m, llama_130m × AdamW, GaLore), device pool peaks
///   gpu-7b [--device cuda] [--out f.json]      the 7B headline step (8-bit GaLore r=1024, per-layer, bf16 weights,
///                                              checkpointed layers, seq 256, batch 1): device pool peak vs the plan
///
/// --device ilgpu-cpu runs the same code on ILGPU's CPU accelerator (use --smoke sizes there): that is how this file is
/// checked on a machine without a GPU. Results go to stdout and, as JSON, to --out.
/// </summary>
public static class GpuBench
{
    public static void Run(string[] args)
    {
        IlgpuDevices.Register();
        string Opt(string name, string fallback) => args.SkipWhile(a => a != name).Skip(1).FirstOrDefault() ?? fallback;
        string device = Opt("--device", "cuda");
        string? outPath = args.Contains("--out") ? Opt("--out", "") : null;
        bool smoke = args.Contains("--smoke");
        var backend = Devices.Resolve(device, out string note);
        Console.WriteLine($"device: {note}");
        var results = new Dictionary<string, object> { ["device"] = note, ["date"] = DateTime.UtcNow.ToString("u"), ["smoke"] = smoke };
        switch (args[0])
        {
            case "gpu-check":
                results["gemm"] = CheckGemms(backend, smoke);
                results["training"] = CheckTraining(device);
                break;
            case "gpu-bench":
                results["gemm"] = BenchGemms(backend, smoke);
                results["training"] = BenchTraining(device, smoke);
                break;
            case "gpu-7b":
                results["step"] = HeadlineStep(device, smoke);
                break;
        }
        if (outPath != null)
            File.WriteAllText(outPath, JsonSerializer.Serialize(results, new JsonSerializerOptions { WriteIndented = true }));
    }

    private static void Synchronize(IBackend backend)
    {
        if (backend is IlgpuBackend ilgpu) ilgpu.Synchronize();
    }

    /// <summary>Random operands made on the host and copied to the device (so both backends see the same values).</summary>
    private static Tensor Random(IBackend backend, int[] shape, DType dtype, ulong seed)
    {
        using var host = Tensor.RandN(shape, new Generator(seed), 1f, Backend.Cpu, dtype);
        var bytes = new byte[host.Numel * host.DType.SizeInBytes()];
        Backend.Cpu.CopyToHost(host, bytes);
        var t = Tensor.Empty(shape, dtype, backend);
        backend.CopyFromHost(bytes, t);
        return t;
    }

    // ---- correctness on the device ------------------------------------------------------------------------------

    private static List<object> CheckGemms(IBackend backend, bool smoke)
    {
        var rows = new List<object>();
        int[][] shapes = smoke ? [[17, 33, 20], [64, 48, 40]] : [[1, 1, 1], [17, 33, 20], [257, 129, 513], [1024, 768, 2048], [2048, 32000, 768]];
        foreach (var dtype in new[] { DType.Float32, DType.BFloat16 })
            foreach (bool transposeB in new[] { false, true })
                foreach (var s in shapes)
                {
                    int m = s[0], n = s[1], k = s[2];
                    using var a = Random(backend, [m, k], dtype, 1);
                    using var bStored = Random(backend, transposeB ? [n, k] : [k, n], dtype, 2);
                    using var aCpu = Random(Backend.Cpu, [m, k], dtype, 1);
                    using var bCpuStored = Random(Backend.Cpu, transposeB ? [n, k] : [k, n], dtype, 2);
                    var b = transposeB ? bStored.T : bStored; // a view: no copy, read through strides
                    var bCpu = transposeB ? bCpuStored.T : bCpuStored;
                    using var c = a.MatMul(b);
                    using var expected = aCpu.MatMul(bCpu);
                    var got = c.ToArray();
                    var want = expected.ToArray();
                    double maxErr = 0, scale = 0;
                    for (int i = 0; i < got.Length; i++)
                    {
                        maxErr = Math.Max(maxErr, Math.Abs(got[i] - want[i]));
                        scale = Math.Max(scale, Math.Abs(want[i]));
                    }
                    double rel = maxErr / Math.Max(scale, 1e-30);
                    // fp32 sums of k products in other orders; bf16 operands are exact in fp32, outputs may round to bf16.
                    double tolerance = (c.DType == DType.Float32 ? 1e-5 : 1e-2) * Math.Sqrt(k);
                    bool ok = rel <= tolerance;
                    Console.WriteLine($"gemm {dtype} {m}x{n}x{k}{(transposeB ? " bᵀ" : "")}: max |Δ|/max|c| = {rel:E2} {(ok ? "ok" : "FAILED")}");
                    rows.Add(new { dtype = dtype.ToString(), m, n, k, transposeB, relError = rel, ok });
                }
        return rows;
    }

    private static List<object> CheckTraining(string device)
    {
        var rows = new List<object>();
        var runs = new (string Optimizer, string? Projection, bool PerLayer, string Weights)[]
        {
            ("adamw", null, false, "fp32"), ("adamw", null, true, "fp32"), ("galore", "rsvd", false, "fp32"), ("adamw", null, false, "bf16"),
        };
        foreach (var (optimizer, projection, perLayer, weights) in runs)
        {
            var options = new TrainingOptions
            {
                Model = "tiny", Seq = 32, Batch = 4, Steps = 4, Warmup = 1, EvalEvery = 4, EvalBatches = 2, CheckpointEvery = 4,
                LogEvery = 1, SyntheticBytes = 50_000, Optimizer = optimizer, Projection = projection, PerLayer = perLayer,
                Weights = weights, Rank = 8, UpdateGap = 2,
            };
            string root = Directory.CreateTempSubdirectory("tl-gpu-check-").FullName;
            try
            {
                var cpu = Trainer.Create(options, Path.Combine(root, "cpu"));
                float cpuVal = cpu.Run();
                var gpu = Trainer.Create(options with { Device = device }, Path.Combine(root, "gpu"));
                float gpuVal = gpu.Run();
                double maxDiff = cpu.Model.Parameters().Zip(gpu.Model.Parameters())
                    .Max(p => p.First.ToArray().Zip(p.Second.ToArray()).Max(x => Math.Abs(x.First - x.Second)));
                bool ok = Math.Abs(cpuVal - gpuVal) <= 1e-3f * (1 + Math.Abs(cpuVal)) && maxDiff <= (weights == "bf16" ? 2e-2 : 1e-3);
                string name = $"{optimizer}{(projection != null ? "/" + projection : "")}{(perLayer ? " per-layer" : "")} {weights}";
                Console.WriteLine($"training {name}: val loss cpu {cpuVal:F5} vs {device} {gpuVal:F5}, max |Δweight| {maxDiff:E2} {(ok ? "ok" : "FAILED")}");
                rows.Add(new { run = name, cpuVal, gpuVal, maxWeightDiff = maxDiff, ok });
            }
            finally
            {
                Directory.Delete(root, recursive: true);
            }
        }
        return rows;
    }

    // ---- speed ------------------------------------------------------------------------------------------------------

    private static List<object> BenchGemms(IBackend backend, bool smoke)
    {
        var rows = new List<object>();
        // 4096³ and the llama_130m shapes at batch 8 × seq 256 = 2048 tokens: q/k/v/o, MLP up/gate, MLP down, LM head.
        int[][] shapes = smoke ? [[64, 64, 64], [32, 96, 48]] : [[4096, 4096, 4096], [2048, 768, 768], [2048, 2048, 768], [2048, 768, 2048], [2048, 32000, 768]];
        int reps = smoke ? 2 : 20;
        foreach (var dtype in new[] { DType.Float32, DType.BFloat16 })
            foreach (var s in shapes)
            {
                int m = s[0], n = s[1], k = s[2];
                using var a = Random(backend, [m, k], dtype, 1);
                using var b = Random(backend, [k, n], dtype, 2);
                using var c = Tensor.Empty([m, n], DType.Float32, backend);
                backend.MatMul(a, b, c, 1f, 0f); // loads and warms the kernel
                Synchronize(backend);
                var times = new List<double>();
                for (int r = 0; r < reps; r++)
                {
                    var clock = Stopwatch.StartNew();
                    backend.MatMul(a, b, c, 1f, 0f);
                    Synchronize(backend);
                    times.Add(clock.Elapsed.TotalMilliseconds);
                }
                times.Sort();
                double ms = times[times.Count / 2];
                double tflops = 2.0 * m * n * k / (ms * 1e-3) / 1e12;
                Console.WriteLine($"gemm {dtype,-8} {m}x{n}x{k}: {ms,9:F3} ms  {tflops,7:F2} TFLOP/s (median of {reps})");
                rows.Add(new { dtype = dtype.ToString(), m, n, k, medianMs = ms, tflops });
            }
        return rows;
    }

    private static List<object> BenchTraining(string device, bool smoke)
    {
        var rows = new List<object>();
        string[] models = smoke ? ["tiny"] : ["llama_60m", "llama_130m"];
        foreach (var model in models)
            foreach (var optimizer in new[] { "adamw", "galore" })
            {
                const int warmupSteps = 3;
                int steps = smoke ? 5 : 23;
                var options = new TrainingOptions
                {
                    Model = model, Seq = smoke ? 32 : 256, Batch = smoke ? 2 : 8, Steps = steps, Warmup = 2, EvalEvery = steps,
                    EvalBatches = 1, CheckpointEvery = steps, LogEvery = 1, SyntheticBytes = 200_000, Optimizer = optimizer,
                    Rank = smoke ? 8 : 128, Projection = optimizer == "galore" ? "svd" : null,
                };
                string root = Directory.CreateTempSubdirectory("tl-gpu-bench-").FullName;
                try
                {
                    var trainer = Trainer.Create(options with { Device = device }, Path.Combine(root, "run"));
                    var elapsed = new Dictionary<long, double>();
                    trainer.Progress += p => elapsed.TryAdd(p.Step, p.Elapsed.TotalSeconds);
                    trainer.Run();
                    // Steps after the warm-up (the first holds kernel loading and GaLore's first SVD), up to the last
                    // step before evaluation; every step ends by reading the loss back, so the device is synchronized.
                    long first = warmupSteps, last = steps - 1;
                    double seconds = elapsed[last] - elapsed[first];
                    double tokensPerSecond = (last - first) * (double)options.Batch * options.Seq / seconds;
                    var allocator = trainer.Device as IDeviceAllocator;
                    Console.WriteLine($"train {model} {optimizer}: {tokensPerSecond,10:F0} tokens/s (steps {first + 1}..{last}), " +
                                      $"tensor peak {MemoryPlan.Format(trainer.Memory.PeakBytes)}, device pool peak {MemoryPlan.Format(allocator?.PeakReservedBytes ?? 0)}");
                    rows.Add(new { model, optimizer, batch = options.Batch, seq = options.Seq, tokensPerSecond, tensorPeakBytes = trainer.Memory.PeakBytes, devicePoolPeakBytes = allocator?.PeakReservedBytes });
                }
                finally
                {
                    Directory.Delete(root, recursive: true);
                }
            }
        return rows;
    }

    // ---- memory at scale ----------------------------------------------------------------------------------------------

    private static object HeadlineStep(string device, bool smoke)
    {
        var options = new TrainingOptions
        {
            Model = smoke ? "llama_20m" : "llama_7b", Optimizer = "galore", Projection = "range", Rank = smoke ? 64 : 1024,
            States = "8bit", PerLayer = true, Weights = "bf16", CheckpointLayers = true, Seq = 256, Batch = 1, Steps = 1,
            EvalBatches = 1, SyntheticBytes = 200_000, LogEvery = 1, Device = device,
        };
        var plan = MemoryPlan.Predict(options);
        Console.WriteLine(plan.Render());
        string root = Directory.CreateTempSubdirectory("tl-gpu-7b-").FullName;
        try
        {
            var clock = Stopwatch.StartNew();
            var trainer = Trainer.Create(options, Path.Combine(root, "run"));
            float loss = trainer.Run();
            var allocator = trainer.Device as IDeviceAllocator;
            Console.WriteLine($"{options.Model} step on {device}: tensors peak {MemoryPlan.Format(trainer.Memory.PeakBytes)} (plan {MemoryPlan.Format(plan.PeakTensorBytes)}), " +
                              $"device pool peak {MemoryPlan.Format(allocator?.PeakReservedBytes ?? 0)} (plan {MemoryPlan.Format(plan.PredictedPeakBytes)}), " +
                              $"val loss {loss:F3}, {clock.Elapsed.TotalMinutes:F1} min");
            return new
            {
                model = options.Model, tensorPeakBytes = trainer.Memory.PeakBytes, plannedTensorPeakBytes = plan.PeakTensorBytes,
                devicePoolPeakBytes = allocator?.PeakReservedBytes, plannedDevicePoolPeakBytes = plan.PredictedPeakBytes,
                atPeak = trainer.Memory.AtPeak.Items().ToDictionary(x => MemoryPlan.CategoryName(x.Category), x => x.Bytes),
                minutes = clock.Elapsed.TotalMinutes,
            };
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }
}
