using System.CommandLine;
using System.Globalization;
using TensorLite.Optim.Projected;
using TensorLite.Training;

namespace TensorLite.Cli;

/// <summary>The options that define a training run, shared by `train` and `plan` so both read them the same way.</summary>
public sealed class TrainingOptionsBinder
{
    private static readonly TrainingOptions Defaults = new();

    private readonly Option<string> model = new Option<string>("--model") { Description = "Named config (tiny, byte_small, llama_20m, llama_60m, ...) or a config.json path.", DefaultValueFactory = _ => Defaults.Model };
    private readonly Option<string[]> data = new Option<string[]>("--data") { Description = "Text files to train on (default: the embedded synthetic language).", AllowMultipleArgumentsPerToken = true };
    private readonly Option<string> tokenizer = new Option<string>("--tokenizer") { Description = "Tokenizer: byte (UTF-8 bytes), cl100k or o200k (tiktoken), or a model's tokenizer.json (file or folder; default with --init-from: the folder's).", DefaultValueFactory = _ => Defaults.Tokenizer };
    private readonly Option<string?> initFrom = new Option<string?>("--init-from") { Description = "Fine-tune an HF model folder (config.json + model.safetensors or shards): its config replaces --model, its weights the random start." };
    private readonly Option<int> seq = new Option<int>("--seq") { Description = "Tokens per sequence.", DefaultValueFactory = _ => Defaults.Seq };
    private readonly Option<int> batch = new Option<int>("--batch") { Description = "Sequences per micro-batch.", DefaultValueFactory = _ => Defaults.Batch };
    private readonly Option<int> accum = new Option<int>("--grad-accum") { Description = "Micro-batches per optimizer step.", DefaultValueFactory = _ => Defaults.GradAccum };
    private readonly Option<int> steps = new Option<int>("--steps") { Description = "Optimizer steps (with --resume: the new total).", DefaultValueFactory = _ => Defaults.Steps };
    private readonly Option<float?> lr = new Option<float?>("--lr") { Description = $"Peak learning rate (default: the method's; {MethodDefaults(h => h.LearningRate)})." };
    private readonly Option<float> minLr = new Option<float>("--min-lr-ratio") { Description = "Final learning rate as a fraction of the peak.", DefaultValueFactory = _ => Defaults.MinLrRatio };
    private readonly Option<int> warmup = new Option<int>("--warmup") { Description = "Linear warm-up steps.", DefaultValueFactory = _ => Defaults.Warmup };
    private readonly Option<float?> wd = new Option<float?>("--weight-decay") { Description = $"Decoupled weight decay (default: {MethodDefaults(h => h.WeightDecay)})." };
    private readonly Option<float?> beta1 = new Option<float?>("--beta1") { Description = $"Adam beta1 (default: {MethodDefaults(h => h.Beta1)})." };
    private readonly Option<float?> beta2 = new Option<float?>("--beta2") { Description = $"Adam beta2 (default: {MethodDefaults(h => h.Beta2)})." };
    private readonly Option<float> clip = new Option<float>("--clip") { Description = "Global gradient-norm clip (0 = off).", DefaultValueFactory = _ => Defaults.ClipNorm };
    private readonly Option<int> evalEvery = new Option<int>("--eval-every") { Description = "Steps between validation evaluations.", DefaultValueFactory = _ => Defaults.EvalEvery };
    private readonly Option<int> evalBatches = new Option<int>("--eval-batches") { Description = "Batches per validation evaluation.", DefaultValueFactory = _ => Defaults.EvalBatches };
    private readonly Option<int> ckptEvery = new Option<int>("--checkpoint-every") { Description = "Steps between checkpoints (one is always written at the end).", DefaultValueFactory = _ => Defaults.CheckpointEvery };
    private readonly Option<int> keep = new Option<int>("--keep-checkpoints") { Description = "How many recent checkpoints to keep.", DefaultValueFactory = _ => Defaults.KeepCheckpoints };
    private readonly Option<int> logEvery = new Option<int>("--log-every") { Description = "Steps between progress lines.", DefaultValueFactory = _ => Defaults.LogEvery };
    private readonly Option<ulong> seed = new Option<ulong>("--seed") { Description = "Seed of initialization and data order.", DefaultValueFactory = _ => Defaults.Seed };
    private readonly Option<bool> ckptLayers = new Option<bool>("--checkpoint-layers") { Description = "Recompute decoder-layer activations in backward (less memory)." };
    private readonly Option<int> synthetic = new Option<int>("--synthetic-bytes") { Description = "Size of the generated corpus when no --data is given.", DefaultValueFactory = _ => Defaults.SyntheticBytes };
    private readonly Option<string> optimizer = new Option<string>("--optimizer") { Description = "adamw (dense), a projected optimizer (galore, osd, grass, frugal, lsp) or the lora baseline.", DefaultValueFactory = _ => Defaults.Optimizer };
    // The method's own numbers have no default here: left out, they take the method's preset (ProjectedOptions.Presets.cs).
    private readonly Option<int?> rank = new Option<int?>("--rank") { Description = "Projection rank (galore, osd, grass; default 128; lsp: the sketches' r, default 1280), clamped to min(m, n) per matrix." };
    private readonly Option<int?> gap = new Option<int?>("--update-gap") { Description = "Steps T between projection refreshes (galore, grass, frugal; default 200; lsp: sketch error checks, default 100); osd's PCA step size is 1/T." };
    private readonly Option<float?> scale = new Option<float?>("--scale") { Description = "Update scale α (default: galore/osd 0.25, grass 1); frugal: lr scale of the state-full part (default 1)." };
    private readonly Option<float?> density = new Option<float?>("--density") { Description = "FRUGAL: fraction ρ of the projectable matrices (matrices mode) or of each one (other modes) updated by AdamW (default 0.25)." };
    private readonly Option<string?> projection = new Option<string?>("--projection") { Description = "galore: svd|rsvd|range; grass: norm2|norm|uniform[+norepl]|topnorm; frugal: matrices|blocks|columns|random|svd|rsvd; osd: adamw|sgd[+qr]." };
    private readonly Option<string?> residual = new Option<string?>("--residual") { Description = "FRUGAL: signsgd|sgd for the state-free part." };
    private readonly Option<float?> residualScale = new Option<float?>("--residual-scale") { Description = "FRUGAL: lr scale of the state-free part, on top of --scale (default 1)." };
    private readonly Option<string?> blockOrder = new Option<string?>("--block-order") { Description = "FRUGAL matrices mode: random|ascending|descending|mirror (default descending)." };
    private readonly Option<string?> projSide = new Option<string?>("--proj-side") { Description = "Projected side, GaLore's proj_type: std (right when rows ≥ columns)|reverse_std|left|right|full (both sides, svd/rsvd only) (default std)." };
    private readonly Option<float?> loraAlpha = new Option<float?>("--lora-alpha") { Description = "LoRA: α, the adapters' scale is α/rank (default 32)." };
    private readonly Option<int?> loraRestart = new Option<int?>("--lora-restart") { Description = "LoRA: merge the adapters and restart them every this many steps (ReLoRA-style; default never)." };
    private readonly Option<string?> loraRestartStates = new Option<string?>("--lora-restart-states") { Description = "LoRA restarts: zero|random|magnitude — zero the adapters' moments or prune them (default zero)." };
    private readonly Option<float?> loraRestartPrune = new Option<float?>("--lora-restart-prune") { Description = "LoRA restarts: fraction of moment entries pruned by random|magnitude (default 0.9)." };
    private readonly Option<int?> loraRestartWarmup = new Option<int?>("--lora-restart-warmup") { Description = "LoRA restarts: steps of the learning-rate re-warm-up after each restart (default min(100, K/2))." };
    private readonly Option<int?> sketchNnz = new Option<int?>("--sketch-nnz") { Description = "LSP: non-zeros d per sketch column, at most --rank (default 4)." };
    private readonly Option<float?> sketchFitThreshold = new Option<float?>("--sketch-fit-threshold") { Description = "LSP: refit the sketches when their relative reconstruction error is at least this, checked every --update-gap steps (default 0.2)." };
    private readonly Option<float?> sketchFitLr = new Option<float?>("--sketch-fit-lr") { Description = "LSP: learning rate of the sketch fit's Adam (default 0.06)." };
    private readonly Option<int?> sketchFitIters = new Option<int?>("--sketch-fit-iters") { Description = "LSP: Adam iterations per sketch refit (default 100)." };
    private readonly Option<float?> pcaLr = new Option<float?>("--pca-lr") { Description = "OSD: the online PCA's peak learning rate, following the lr schedule (default 1/update-gap)." };
    private readonly Option<string> states = new("--states") { Description = "Optimizer state precision: fp32, 8bit (block-wise quantized AdamW moments) or factored (Adafactor).", DefaultValueFactory = _ => Defaults.States };
    private readonly Option<string> weights = new("--weights") { Description = "Parameter dtype: fp32 or bf16 (GEMMs accumulate in fp32).", DefaultValueFactory = _ => Defaults.Weights };
    private readonly Option<string> activations = new("--activations") { Description = "Activation dtype: fp32 or bf16 (ops compute in fp32; logits and loss stay fp32).", DefaultValueFactory = _ => Defaults.Activations };
    private readonly Option<bool> stochastic = new("--stochastic-rounding") { Description = "Round bf16 weight updates stochastically (needs --weights bf16)." };
    private readonly Option<bool> masters = new("--master-weights") { Description = "Update bf16 weights through float32 master copies (needs --weights bf16)." };
    private readonly Option<string> device = new("--device") { Description = "cpu, cuda, auto (cuda when a device is visible, else cpu) or ilgpu-cpu (the GPU kernels emulated on the CPU, to check them without a GPU: 15-30x slower than cpu, for tiny runs such as --model tiny --seq 32 --batch 4; see docs/gpu.md).", DefaultValueFactory = _ => Defaults.Device };
    private readonly Option<int?> eightBitBlock = new("--8bit-block-size") { Description = "With --states 8bit: elements per quantization block, a power of two from 64 to 2048 (default 2048, the 8-bit optimizers paper's; bitsandbytes uses 256)." };
    private readonly Option<bool> shardStates = new("--shard-states") { Description = "With --nproc: each process keeps the optimizer state of only its share of the parameters (ZeRO-1)." };
    private readonly Option<string> factored = OnOffOption("--factored-gradients", "on: projected matrices take their gradient as the layer's factors and are projected without forming it; off: the dense gradient.", Defaults.FactoredGradients);
    private readonly Option<string> allReduceOverlap = OnOffOption("--allreduce-overlap", "With --nproc: on, sum each bucket of gradients while the backward of the layers below goes on; off, sum them all after backward. Same results.", Defaults.AllReduceOverlap);
    private readonly Option<double> allReduceBucket = new("--allreduce-bucket-mb") { Description = "With --nproc: MiB of float32 gradients summed per all-reduce (default 16).", DefaultValueFactory = _ => Defaults.AllReduceBucketMb };
    private readonly Option<string> offload = new("--offload") { Description = "Keep the optimizer's states on the host (CPU) and move only what each update needs: none; host (the chosen optimizer, e.g. galore or grass: only R and its direction move); dense (AdamW, the ZeRO-Offload baseline: gradients and weights move); lsp (the LSP method). See docs/offload.md.", DefaultValueFactory = _ => Defaults.Offload };
    private readonly Option<string> offloadSchedule = new("--offload-schedule") { Description = "With --offload: overlap (host updates run while the device goes on; applied at the end of the step), deferred (overlap, but the updates of the layers nearest the input land in the next forward, just before each layer runs) or serial (the device waits for each). Same results.", DefaultValueFactory = _ => Defaults.OffloadSchedule };
    private readonly Option<int?> offloadDeferLayers = new("--offload-defer-layers") { Description = "With --offload-schedule deferred: how many decoder layers nearest the input (and the embedding) have their updates land in the next forward (default: a quarter of the layers, rounded up)." };
    private readonly Option<string?> deviceMemory = new("--device-memory") { Description = "With --offload: the device's memory budget (e.g. 4GB); the plan must fit it, and a GPU run may not exceed it." };
    private readonly Option<bool> perLayer = new("--per-layer") { Description = "Update each parameter during backward as soon as its gradient is final, then free the gradient; clipping uses the previous step's norm." };

    public void AddTo(Command command)
    {
        foreach (var option in new Option[] { model, data, tokenizer, initFrom, seq, batch, accum, steps, lr, minLr, warmup, wd, beta1, beta2, clip, evalEvery, evalBatches, ckptEvery, keep, logEvery, seed, ckptLayers, synthetic, optimizer, rank, gap, scale, density, projection, residual, residualScale, blockOrder, projSide, pcaLr, sketchNnz, sketchFitThreshold, sketchFitLr, sketchFitIters, loraAlpha, loraRestart, loraRestartStates, loraRestartPrune, loraRestartWarmup, states, eightBitBlock, weights, activations, stochastic, masters, perLayer, shardStates, allReduceOverlap, allReduceBucket, factored, device, offload, offloadSchedule, offloadDeferLayers, deviceMemory })
            command.Options.Add(option);
    }

    /// <summary>Whether the user gave <see cref="TrainingOptions.Steps"/> explicitly (resume may extend a run).</summary>
    public int? ExplicitSteps(ParseResult r) => r.GetResult(steps) is { Implicit: false } ? r.GetValue(steps) : null;

    /// <summary>The --device the user gave explicitly (resume may move a run to another device).</summary>
    public string? ExplicitDevice(ParseResult r) => r.GetResult(device) is { Implicit: false } ? r.GetValue(device) : null;

    /// <summary>--init-from as an absolute path (the run folder records it), refused together with an explicit --model.</summary>
    private string? InitFromChecked(ParseResult r)
    {
        if (r.GetValue(initFrom) is not { } dir) return null;
        if (r.GetResult(model) is { Implicit: false })
            throw new ArgumentException("--model and --init-from both define the model; give one (--init-from uses the folder's config.json).");
        return Path.GetFullPath(dir);
    }

    /// <summary>--tokenizer, or with --init-from and no --tokenizer the folder's own tokenizer.json when it has one.</summary>
    private string TokenizerOf(ParseResult r) =>
        r.GetResult(tokenizer) is { Implicit: true } && InitFromChecked(r) is { } dir && Data.HfTokenizer.IsTokenizerPath(dir) ? dir : r.GetValue(tokenizer)!;

    public TrainingOptions Read(ParseResult r) => new()
    {
        Model = InitFromChecked(r) ?? r.GetValue(model)!, Data = r.GetValue(data) ?? [], Tokenizer = TokenizerOf(r), InitFrom = InitFromChecked(r),
        Seq = r.GetValue(seq), Batch = r.GetValue(batch), GradAccum = r.GetValue(accum), Steps = r.GetValue(steps),
        LearningRate = r.GetValue(lr), MinLrRatio = r.GetValue(minLr), Warmup = r.GetValue(warmup),
        WeightDecay = r.GetValue(wd), Beta1 = r.GetValue(beta1), Beta2 = r.GetValue(beta2), ClipNorm = r.GetValue(clip),
        EvalEvery = r.GetValue(evalEvery), EvalBatches = r.GetValue(evalBatches), CheckpointEvery = r.GetValue(ckptEvery),
        KeepCheckpoints = r.GetValue(keep), LogEvery = r.GetValue(logEvery), Seed = r.GetValue(seed),
        CheckpointLayers = r.GetValue(ckptLayers), SyntheticBytes = r.GetValue(synthetic),
        Optimizer = r.GetValue(optimizer)!, Rank = r.GetValue(rank), UpdateGap = r.GetValue(gap), Scale = r.GetValue(scale),
        Density = r.GetValue(density), Projection = r.GetValue(projection), Residual = r.GetValue(residual),
        ResidualScale = r.GetValue(residualScale), BlockOrder = r.GetValue(blockOrder), ProjSide = r.GetValue(projSide), PcaLearningRate = r.GetValue(pcaLr), SketchNnz = r.GetValue(sketchNnz), SketchFitThreshold = r.GetValue(sketchFitThreshold), SketchFitLr = r.GetValue(sketchFitLr), SketchFitIters = r.GetValue(sketchFitIters), LoraAlpha = r.GetValue(loraAlpha), LoraRestart = r.GetValue(loraRestart), LoraRestartStates = r.GetValue(loraRestartStates), LoraRestartPrune = r.GetValue(loraRestartPrune), LoraRestartWarmup = r.GetValue(loraRestartWarmup),
        States = r.GetValue(states)!, EightBitBlockSize = r.GetValue(eightBitBlock), Weights = r.GetValue(weights)!, Activations = r.GetValue(activations)!, StochasticRounding = r.GetValue(stochastic),
        PerLayer = r.GetValue(perLayer), ShardStates = r.GetValue(shardStates), MasterWeights = r.GetValue(masters), Device = r.GetValue(device)!,
        FactoredGradients = r.GetValue(factored) == "on",
        AllReduceOverlap = r.GetValue(allReduceOverlap) == "on", AllReduceBucketMb = r.GetValue(allReduceBucket),
        Offload = r.GetValue(offload)!, OffloadSchedule = r.GetValue(offloadSchedule)!, OffloadDeferLayers = r.GetValue(offloadDeferLayers), DeviceMemory = r.GetValue(deviceMemory),
    };

    /// <summary>One of the methods' default numbers (<see cref="ProjectedOptions.HyperParametersOf"/>) as help text, methods
    /// sharing a value grouped: "adamw 0.003, galore/osd/grass 0.01, ..."; one value when every method has it.</summary>
    private static string MethodDefaults(Func<MethodHyperParameters, float> number)
    {
        var groups = Enum.GetValues<OptimizerMethod>()
            .GroupBy(m => number(ProjectedOptions.HyperParametersOf(m)))
            .Select(g => (Value: g.Key.ToString(CultureInfo.InvariantCulture), Methods: string.Join("/", g.Select(OptimizerSpec.WordOf))))
            .ToList();
        return groups.Count == 1 ? groups[0].Value : string.Join(", ", groups.Select(g => $"{g.Methods} {g.Value}"));
    }

    private static Option<string> OnOffOption(string name, string description, bool byDefault)
    {
        var option = new Option<string>(name) { Description = description, DefaultValueFactory = _ => byDefault ? "on" : "off" };
        option.AcceptOnlyFromAmong("on", "off");
        return option;
    }
}
