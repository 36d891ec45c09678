using System.Globalization;
using System.Text;
using TensorLite.Backends.Meta;
using TensorLite.Memory;
using TensorLite.Models;
using TensorLite.Optim.Projected;

namespace TensorLite.Training;

/// <summary>
/// The predicted peak memory of training with some options, by category. The prediction runs the trainer's own
/// training steps (forward, backward, optimizer step; per-layer hooks, accumulation, checkpointing and all) on a
/// <see cref="MetaBackend"/>, which creates every tensor's metadata but no memory and computes nothing, so the
/// timeline of tensor bytes is the real program's, for any model size, in seconds. Two steps are run because the
/// optimizer creates its state during the first. The meta backend also replays the CPU pool's caching policy, which
/// gives the memory the pool holds at its peak (<see cref="PeakPoolBytes"/>) — the CPU pool's, or for a GPU run the device
/// pool's (<see cref="BlockCachePolicy"/>); on the CPU, process memory adds <see cref="RuntimeBytes"/> (the .NET runtime,
/// managed heap, GEMM packing buffers, thread stacks), measured on this project's CPU machine.
/// </summary>
public sealed record MemoryPlan(TrainingOptions Options, LlamaConfig Config, long ParameterCount, long PeakTensorBytes,
    MemoryBreakdown AtPeak, BlockCachePolicy Allocator, long PeakPoolBytes)
{
    /// <summary>The processes of a data-parallel run; the plan is then rank 0's (with sharded optimizer states, its
    /// share of them).</summary>
    public int Processes { get; init; } = 1;

    /// <summary>For a data-parallel run, the gradient bytes each rank all-reduces on a step where the projections are
    /// refreshed and on a step between refreshes (equal for methods that sum dense gradients).</summary>
    public (long Refresh, long Between) AllReducedBytesPerStep { get; init; }

    /// <summary>The optimizer state this process (rank 0 of a data-parallel run) holds after the planned steps
    /// (<see cref="Optim.Optimizer.StateBytes"/>): with sharded states, the moments of its own parameters and every
    /// projection that all ranks keep (docs/distributed.md).</summary>
    public long OptimizerStateBytes { get; init; }

    /// <summary>Process memory beyond the CPU pool: peak RSS minus the pool's peak, 107–109 MiB in llama_20m runs on the
    /// CPU machine (docs/memory.md).</summary>
    public const long RuntimeBytes = 112L << 20;

    /// <summary>Whether the run's tensors live in GPU memory (the plan then predicts the device pool, not the process).</summary>
    public bool OnGpu => Allocator == BlockCachePolicy.Device;

    /// <summary>On the CPU, the pool at its peak (live tensors and cached blocks) plus the runtime: the predicted peak
    /// resident memory of the process. On a GPU, the device pool at its peak; the CUDA context (a few hundred MiB,
    /// driver-dependent) comes on top and is not predicted.</summary>
    public long PredictedPeakBytes => DevicePeakBytes + (OnGpu ? 0 : HostPeakBytes + RuntimeBytes);

    /// <summary>The device's pool at its peak (on the CPU, the part of the process's tensors that are not offloaded).</summary>
    public long DevicePeakBytes => Math.Max(PeakPoolBytes, PeakTensorBytes);

    /// <summary>With --offload: the host's tensors at their peak (optimizer states, host copies of weights, transfer
    /// buffers); 0 without.</summary>
    public long HostPeakBytes { get; init; }

    /// <summary>With --offload: the host's tensors by category at their peak.</summary>
    public MemoryBreakdown HostAtPeak { get; init; }

    /// <summary>With --offload: bytes a step moves device → host and host → device (the second planned step: weights
    /// the host copies once are not in it).</summary>
    public (long ToHost, long ToDevice) BytesMovedPerStep { get; init; }

    /// <summary>
    /// A lower bound that needs no planning run (a run folder's config may name a model too large even to plan
    /// quickly): the weights, once; on the CPU without per-layer updates twice, because the whole model's gradients
    /// exist together at the end of backward. With per-layer updates a parameter's gradient is freed as soon as it is
    /// used, and checkpoints load tensor by tensor, so one copy is the bound (the 7B headline of docs/memory.md is
    /// 12.55 GiB of bf16 weights in 18.96 GiB). On a GPU the host holds at least the loaded copy.
    /// </summary>
    public static double MinimumHostBytes(LlamaConfig config, TrainingOptions options)
    {
        double parameters = ParameterEstimate(config);
        bool gradientsTogether = AllocatorOf(options.Device) == BlockCachePolicy.Cpu && !options.PerLayer;
        return parameters * options.WeightDType.SizeInBytes() * (gradientsTogether ? 2 : 1);
    }

    /// <summary>Refuses, naming the config's size, when <see cref="MinimumHostBytes"/> exceeds the memory this process
    /// may use.</summary>
    public static void RequireHostMemory(LlamaConfig config, TrainingOptions options)
    {
        double needed = MinimumHostBytes(config, options);
        long available = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        if (available > 0 && needed > available)
            throw new TensorLiteException($"The model ({config.NumHiddenLayers} layers, hidden_size {config.HiddenSize}, vocab_size {config.VocabSize}: " +
                $"{ParameterEstimate(config):G3} parameters) needs at least {FormatDouble(needed)} to load or train, more than the {Format(available)} this machine " +
                "has; check the config, or see `tensorlite plan`.");
    }

    // In double: a corrupt or hostile config may name sizes whose product overflows a long.
    private static double ParameterEstimate(LlamaConfig config) =>
        (double)config.VocabSize * config.HiddenSize * (config.TieWordEmbeddings ? 1 : 2) + config.HiddenSize +
        (double)config.NumHiddenLayers * ((double)config.HiddenSize * config.HiddenSize * 2 +
                                          (double)config.HiddenSize * config.KeyValueHeads * config.HeadDim * 2 +
                                          3.0 * config.HiddenSize * config.IntermediateSize + 2.0 * config.HiddenSize);

    private static string FormatDouble(double bytes) => bytes < long.MaxValue / 2 ? Format((long)bytes) : $"{bytes / (1L << 40):G3} TiB";

    /// <summary>The plan of a run with <paramref name="options"/> over <paramref name="processes"/> data-parallel
    /// processes: the trainer's own steps replayed on the meta backend, which allocates nothing.</summary>
    public static MemoryPlan Predict(TrainingOptions options, int processes = 1)
    {
        options.Validate();
        var (config, _) = Trainer.ResolveConfig(options);
        var meta = new MetaBackend { Policy = AllocatorOf(options.Device) };
        using (Backend.Use(meta))
        {
            var trainer = Trainer.ForPlanning(options, config, processes);
            meta.TrimCache(); // as Trainer.Create releases what building the model left behind
            trainer.RunPlanningSteps(2);
            long parameters = trainer.Model.ParameterCount();
            var host = trainer.Offload;
            var hostLedger = host?.Host.Memory;
            return new MemoryPlan(options, config, parameters, meta.Memory.PeakBytes, meta.Memory.AtPeak, meta.Policy, meta.PeakReservedBytes)
            {
                Processes = processes,
                AllReducedBytesPerStep = (trainer.AllReducedGradientBytes(0), trainer.AllReducedGradientBytes(1)),
                OptimizerStateBytes = trainer.Optimizer.StateBytes,
                HostPeakBytes = hostLedger == null ? 0 : Math.Max(hostLedger.PeakBytes, ((MetaBackend)host!.Host).PeakReservedBytes),
                HostAtPeak = hostLedger?.AtPeak ?? default,
                BytesMovedPerStep = host == null ? default : (host.StepBytesToHost, host.StepBytesToDevice),
            };
        }
    }

    /// <summary>The allocator a run on <paramref name="device"/> uses (auto: whichever device it resolves to here).</summary>
    private static BlockCachePolicy AllocatorOf(string device) => device switch
    {
        "cpu" => BlockCachePolicy.Cpu,
        "auto" => Devices.Resolve("auto", out _) is IDeviceAllocator ? BlockCachePolicy.Device : BlockCachePolicy.Cpu,
        _ => BlockCachePolicy.Device,
    };

    /// <summary>Settings near <paramref name="options"/> that fit <paramref name="budgetBytes"/> (predicted process
    /// bytes): each single change that fits, or else the changes applied one after another until the plan fits.</summary>
    public static IReadOnlyList<(string Change, MemoryPlan Plan)> Alternatives(TrainingOptions options, long budgetBytes, Func<MemoryPlan, long>? measure = null)
    {
        measure ??= p => p.PredictedPeakBytes;
        var steps = new List<(string Flag, Func<TrainingOptions, TrainingOptions?> Apply)>
        {
            ("--per-layer", o => o.PerLayer ? null : o with { PerLayer = true }),
            ("--checkpoint-layers", o => o.CheckpointLayers ? null : o with { CheckpointLayers = true }),
            ("--states 8bit", o => o.ToOptimizerSpec().States == OptimizerStates.Fp32 ? o with { States = "8bit" } : null),
            ("--weights bf16", o => o.WeightDType == DType.BFloat16 ? null : o with { Weights = "bf16" }),
            ("--activations bf16", o => o.ActivationDType == DType.BFloat16 ? null : o with { Activations = "bf16" }),
            ("--rank (halved)", o => HasRank(o) && o.ResolvedRank > 1 ? o with { Rank = o.ResolvedRank / 2 } : null),
            ("--batch (halved, --grad-accum doubled)", o => o.Batch > 1 ? o with { Batch = o.Batch / 2, GradAccum = o.GradAccum * 2 } : null),
            // An offloaded dense baseline becomes an offloaded GaLore (--offload dense names AdamW).
            ("--optimizer galore", o => o.ToOptimizerSpec().Method == OptimizerMethod.AdamW ? o with { Optimizer = "galore", Projection = "rsvd", Offload = o.Offload == "dense" ? "host" : o.Offload } : null),
        };
        var fits = new List<(string, MemoryPlan)>();
        foreach (var (flag, apply) in steps)
        {
            if (apply(options) is not TrainingOptions changed || TryPredict(changed) is not MemoryPlan plan) continue;
            if (measure(plan) <= budgetBytes) fits.Add((Describe(changed, flag), plan));
        }
        // Nearest first: the change that keeps the most memory in use (the least intrusive one that fits).
        if (fits.Count > 0) return fits.OrderByDescending(x => measure(x.Item2)).ToList();
        // No single change is enough: combine them in order, repeating the halvings, until the plan fits.
        var current = options;
        var applied = new List<string>();
        for (int round = 0; round < 12; round++)
        {
            bool changedAny = false;
            foreach (var (flag, apply) in steps)
            {
                if (apply(current) is not TrainingOptions next || TryPredict(next) is not MemoryPlan plan) continue;
                current = next;
                applied.Add(flag);
                changedAny = true;
                if (measure(plan) <= budgetBytes) return [(Describe(current, string.Join(" + ", applied.Distinct())), plan)];
            }
            if (!changedAny) break;
        }
        return [];
    }

    /// <summary>The plan of a candidate setting, or null when the change makes the options invalid (a halved rank below a
    /// method's other knob, say): such a change is not offered.</summary>
    private static MemoryPlan? TryPredict(TrainingOptions options)
    {
        try
        {
            return Predict(options);
        }
        catch (ArgumentException)
        {
            return null;
        }
    }

    /// <summary>Whether the run's optimizer has a rank (GaLore, OSD, GRASS, LoRA).</summary>
    private static bool HasRank(TrainingOptions o) => o.ToOptimizerSpec().Method is OptimizerMethod.GaLore or OptimizerMethod.Osd or OptimizerMethod.Grass or OptimizerMethod.Lora or OptimizerMethod.Lsp;

    private static string Describe(TrainingOptions o, string change) => change switch
    {
        var c when c.StartsWith("--rank", StringComparison.Ordinal) => $"--rank {o.ResolvedRank}",
        var c when c.StartsWith("--batch", StringComparison.Ordinal) => $"--batch {o.Batch} --grad-accum {o.GradAccum}",
        "--optimizer galore" => $"--optimizer galore --projection rsvd --rank {o.ResolvedRank}" + (o.Offload == "host" ? " --offload host" : ""),
        _ when change.Contains(" + ") => change.Replace("--rank (halved)", $"--rank {o.ResolvedRank}")
            .Replace("--batch (halved, --grad-accum doubled)", $"--batch {o.Batch} --grad-accum {o.GradAccum}")
            .Replace("--optimizer galore", "--optimizer galore --projection rsvd"),
        _ => change,
    };

    /// <summary>A readable breakdown of the plan (one category per line).</summary>
    public string Render()
    {
        var o = Options;
        var sb = new StringBuilder();
        sb.AppendLine($"plan         {o.Model} ({ParameterCount:N0} parameters), {o.Optimizer}" +
                      (HasRank(o) ? $" rank {o.ResolvedRank}" : o.ToOptimizerSpec().Method == OptimizerMethod.Frugal ? $" density {o.ResolvedDensity}" : "") +
                      $", states {o.States}, weights {o.Weights}" + (o.MasterWeights ? " + fp32 masters" : "") +
                      (o.ActivationDType != DType.Float32 ? $", activations {o.Activations}" : "") + (o.PerLayer ? ", per-layer updates" : "") +
                      (o.CheckpointLayers ? ", checkpointed layers" : "") + (o.Offload != "none" ? $", optimizer offloaded ({o.Offload})" : "") + $", batch {o.Batch} × seq {o.Seq}" +
                      (o.GradAccum > 1 ? $" × {o.GradAccum} accumulation" : "") + (OnGpu ? $", on {o.Device}" : "") +
                      (Processes > 1 ? $"; per process of {Processes}" + (o.ShardStates ? ", optimizer states sharded" : "") : ""));
        if (Processes > 1)
        {
            var (refresh, between) = AllReducedBytesPerStep;
            sb.AppendLine($"all-reduced  {Format(between)} ({between:N0} bytes) of gradients per step" +
                          (refresh != between ? $" between refreshes, {Format(refresh)} ({refresh:N0} bytes) on refresh steps" : "") +
                          $"; dense gradients: {Format(sizeof(float) * ParameterCount)}");
            if (o.ShardStates)
                sb.AppendLine($"state/rank   {Format(OptimizerStateBytes)} ({OptimizerStateBytes:N0} bytes) of optimizer state on rank 0: the moments of its share, every shared projection");
        }
        bool offloaded = o.Offload != "none";
        sb.AppendLine(offloaded ? $"on the device ({(OnGpu ? o.Device : "cpu: the same memory as the host")}), at the peak of a training step:" : "at the peak of a training step:");
        foreach (var (category, bytes) in AtPeak.Items())
            sb.AppendLine($"  {CategoryName(category),-18}{Format(bytes),12}");
        sb.AppendLine($"  {"tensors",-18}{Format(PeakTensorBytes),12}");
        sb.AppendLine($"  {(OnGpu ? "pool cache (GPU)" : "pool cache (CPU)"),-18}{Format(Math.Max(0, PeakPoolBytes - PeakTensorBytes)),12}");
        if (offloaded)
        {
            sb.AppendLine($"  {"device peak",-18}{Format(DevicePeakBytes),12}" + (o.DeviceMemory is string budget ? $"   (--device-memory {budget})" : ""));
            sb.AppendLine($"on the host (--offload {o.Offload}: optimizer states, host copies of updated weights, transfer buffers):");
            foreach (var (category, bytes) in HostAtPeak.Items().Where(x => x.Bytes > 0))
                sb.AppendLine($"  {CategoryName(category),-18}{Format(bytes),12}");
            sb.AppendLine($"  {"host peak",-18}{Format(HostPeakBytes),12}");
            sb.AppendLine($"  {"moved per step",-18}{Format(BytesMovedPerStep.ToHost),12} to the host, {Format(BytesMovedPerStep.ToDevice)} back " +
                          $"({BytesMovedPerStep.ToHost:N0} + {BytesMovedPerStep.ToDevice:N0} bytes)");
        }
        if (OnGpu)
        {
            sb.Append($"  {"predicted peak",-18}{Format(PredictedPeakBytes),12}   of device memory, plus the CUDA context" + (offloaded ? "; the host part is in host memory" : ""));
            return sb.ToString();
        }
        sb.AppendLine($"  {"runtime (CPU)",-18}{Format(RuntimeBytes),12}");
        sb.Append($"  {"predicted peak",-18}{Format(PredictedPeakBytes),12}");
        return sb.ToString();
    }

    /// <summary>The label a plan and the progress lines give a memory category.</summary>
    public static string CategoryName(MemoryCategory category) => category switch
    {
        MemoryCategory.Activations => "activations",
        MemoryCategory.Weights => "weights",
        MemoryCategory.Gradients => "gradients",
        MemoryCategory.OptimizerState => "optimizer states",
        MemoryCategory.ProjectorState => "projector state",
        _ => "workspace",
    };

    /// <summary>Bytes as GiB (or MiB below 1 GiB), the unit used everywhere in plans.</summary>
    public static string Format(long bytes) =>
        Math.Abs(bytes) >= 1L << 30
            ? (bytes / (double)(1L << 30)).ToString("F2", CultureInfo.InvariantCulture) + " GiB"
            : (bytes / (double)(1L << 20)).ToString("F1", CultureInfo.InvariantCulture) + " MiB";

    /// <summary>Parses "24GB" (10⁹), "22GiB" (2³⁰), "512MB", "512MiB" or a number of bytes.</summary>
    public static long ParseBytes(string text, string flag = "--memory-budget")
    {
        var t = (text ?? "").Trim().Replace(" ", "");
        (string Suffix, double Scale)[] units = [("GiB", 1L << 30), ("MiB", 1L << 20), ("GB", 1e9), ("MB", 1e6), ("G", 1L << 30), ("M", 1L << 20), ("B", 1)];
        foreach (var (suffix, scale) in units)
            if (t.EndsWith(suffix, StringComparison.OrdinalIgnoreCase) &&
                double.TryParse(t[..^suffix.Length], NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && v > 0)
                return (long)(v * scale);
        if (long.TryParse(t, NumberStyles.Integer, CultureInfo.InvariantCulture, out var b) && b > 0) return b;
        throw new ArgumentException($"{flag} takes a size such as 24GB, 22GiB or 512MiB, not '{text}'.");
    }
}
