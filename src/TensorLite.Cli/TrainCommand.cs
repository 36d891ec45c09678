using System.CommandLine;
using TensorLite.Training;

namespace TensorLite.Cli;

/// <summary>`tensorlite train`: the main job.</summary>
public static class TrainCommand
{
    public static Command Create()
    {
        var d = new TrainingOptions();
        var model = new Option<string>("--model") { Description = "Named config (tiny, byte_small, llama_20m, llama_60m, ...) or a config.json path.", DefaultValueFactory = _ => d.Model };
        var data = new Option<string[]>("--data") { Description = "Text files to train on (default: the embedded synthetic language).", AllowMultipleArgumentsPerToken = true };
        var tokenizer = new Option<string>("--tokenizer") { Description = "Tokenizer: byte (UTF-8 bytes), cl100k or o200k (tiktoken).", DefaultValueFactory = _ => d.Tokenizer };
        var seq = new Option<int>("--seq") { Description = "Tokens per sequence.", DefaultValueFactory = _ => d.Seq };
        var batch = new Option<int>("--batch") { Description = "Sequences per micro-batch.", DefaultValueFactory = _ => d.Batch };
        var accum = new Option<int>("--grad-accum") { Description = "Micro-batches per optimizer step.", DefaultValueFactory = _ => d.GradAccum };
        var steps = new Option<int>("--steps") { Description = "Optimizer steps (with --resume: the new total).", DefaultValueFactory = _ => d.Steps };
        var lr = new Option<float>("--lr") { Description = "Peak learning rate.", DefaultValueFactory = _ => d.LearningRate };
        var minLr = new Option<float>("--min-lr-ratio") { Description = "Final learning rate as a fraction of the peak.", DefaultValueFactory = _ => d.MinLrRatio };
        var warmup = new Option<int>("--warmup") { Description = "Linear warm-up steps.", DefaultValueFactory = _ => d.Warmup };
        var wd = new Option<float>("--weight-decay") { Description = "AdamW decoupled weight decay.", DefaultValueFactory = _ => d.WeightDecay };
        var beta1 = new Option<float>("--beta1") { Description = "AdamW beta1.", DefaultValueFactory = _ => d.Beta1 };
        var beta2 = new Option<float>("--beta2") { Description = "AdamW beta2.", DefaultValueFactory = _ => d.Beta2 };
        var clip = new Option<float>("--clip") { Description = "Global gradient-norm clip (0 = off).", DefaultValueFactory = _ => d.ClipNorm };
        var evalEvery = new Option<int>("--eval-every") { Description = "Steps between validation evaluations.", DefaultValueFactory = _ => d.EvalEvery };
        var evalBatches = new Option<int>("--eval-batches") { Description = "Batches per validation evaluation.", DefaultValueFactory = _ => d.EvalBatches };
        var ckptEvery = new Option<int>("--checkpoint-every") { Description = "Steps between checkpoints (one is always written at the end).", DefaultValueFactory = _ => d.CheckpointEvery };
        var keep = new Option<int>("--keep-checkpoints") { Description = "How many recent checkpoints to keep.", DefaultValueFactory = _ => d.KeepCheckpoints };
        var logEvery = new Option<int>("--log-every") { Description = "Steps between progress lines.", DefaultValueFactory = _ => d.LogEvery };
        var seed = new Option<ulong>("--seed") { Description = "Seed of initialization and data order.", DefaultValueFactory = _ => d.Seed };
        var ckptLayers = new Option<bool>("--checkpoint-layers") { Description = "Recompute decoder-layer activations in backward (less memory)." };
        var synthetic = new Option<int>("--synthetic-bytes") { Description = "Size of the generated corpus when no --data is given.", DefaultValueFactory = _ => d.SyntheticBytes };
        var optimizer = new Option<string>("--optimizer") { Description = "adamw (dense) or a projected optimizer: galore, osd, grass, frugal.", DefaultValueFactory = _ => d.Optimizer };
        var rank = new Option<int>("--rank") { Description = "Projection rank (galore, osd, grass).", DefaultValueFactory = _ => d.Rank };
        var gap = new Option<int>("--update-gap") { Description = "Steps between projection refreshes (galore, grass, frugal).", DefaultValueFactory = _ => d.UpdateGap };
        var scale = new Option<float?>("--scale") { Description = "Update scale α (default: galore/osd 0.25, grass 1)." };
        var density = new Option<float>("--density") { Description = "FRUGAL: fraction ρ of each projected matrix updated by AdamW.", DefaultValueFactory = _ => d.Density };
        var projection = new Option<string?>("--projection") { Description = "galore: svd|rsvd; grass: topnorm|norm|norm2|uniform; frugal: blocks|columns|random|svd|rsvd; osd: adam|sgd[+qr]." };
        var residual = new Option<string?>("--residual") { Description = "FRUGAL: signsgd|sgd for the state-free part." };
        var outDir = new Option<string?>("--out") { Description = "Run folder (default: runs/<date-time>)." };
        var resume = new Option<string?>("--resume") { Description = "Continue the run in this folder from its latest checkpoint." };
        var cmd = new Command("train", "Train a LLaMA (default: a small byte-level model on the embedded synthetic language, ~2 minutes on 2 cores).")
        {
            model, data, tokenizer, seq, batch, accum, steps, lr, minLr, warmup, wd, beta1, beta2, clip,
            evalEvery, evalBatches, ckptEvery, keep, logEvery, seed, ckptLayers, synthetic,
            optimizer, rank, gap, scale, density, projection, residual, outDir, resume,
        };
        cmd.SetAction(r =>
        {
            string? resumeDir = r.GetValue(resume);
            Trainer trainer;
            if (resumeDir != null)
            {
                int? newSteps = r.GetResult(steps) is { Implicit: false } ? r.GetValue(steps) : null;
                trainer = Trainer.Resume(resumeDir, newSteps);
            }
            else
            {
                var options = new TrainingOptions
                {
                    Model = r.GetValue(model)!, Data = r.GetValue(data) ?? [], Tokenizer = r.GetValue(tokenizer)!,
                    Seq = r.GetValue(seq), Batch = r.GetValue(batch), GradAccum = r.GetValue(accum), Steps = r.GetValue(steps),
                    LearningRate = r.GetValue(lr), MinLrRatio = r.GetValue(minLr), Warmup = r.GetValue(warmup),
                    WeightDecay = r.GetValue(wd), Beta1 = r.GetValue(beta1), Beta2 = r.GetValue(beta2), ClipNorm = r.GetValue(clip),
                    EvalEvery = r.GetValue(evalEvery), EvalBatches = r.GetValue(evalBatches), CheckpointEvery = r.GetValue(ckptEvery),
                    KeepCheckpoints = r.GetValue(keep), LogEvery = r.GetValue(logEvery), Seed = r.GetValue(seed),
                    CheckpointLayers = r.GetValue(ckptLayers), SyntheticBytes = r.GetValue(synthetic),
                    Optimizer = r.GetValue(optimizer)!, Rank = r.GetValue(rank), UpdateGap = r.GetValue(gap), Scale = r.GetValue(scale),
                    Density = r.GetValue(density), Projection = r.GetValue(projection), Residual = r.GetValue(residual),
                };
                string dir = r.GetValue(outDir) ?? Path.Combine("runs", DateTime.Now.ToString("yyyyMMdd-HHmmss"));
                trainer = Trainer.Create(options, dir);
            }
            return TrainingView.Run(trainer);
        });
        return cmd;
    }
}
