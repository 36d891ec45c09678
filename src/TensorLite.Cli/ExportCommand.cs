using System.CommandLine;
using TensorLite.Data;
using TensorLite.Models;
using TensorLite.Training;

namespace TensorLite.Cli;

/// <summary>`tensorlite export`: a run's latest checkpoint as an HF model folder (transformers and --init-from read it).</summary>
public static class ExportCommand
{
    public static Command Create()
    {
        var run = new Option<string>("--run") { Description = "Run folder whose latest checkpoint to export.", Required = true };
        var output = new Option<string>("--out") { Description = "New (or empty) folder to write the HF model into.", Required = true };
        var dtype = new Option<string>("--dtype") { Description = "Weight dtype of the files: fp32, bf16 or fp16.", DefaultValueFactory = _ => "fp32" };
        var shard = new Option<long>("--max-shard-mb") { Description = "Largest shard in MB (10^6 bytes); above it the weights are sharded with an index, as HF does.", DefaultValueFactory = _ => HfModelFolder.DefaultMaxShardBytes / 1_000_000 };
        var cmd = new Command("export", "Write a run's latest checkpoint as an HF model folder: config.json, model.safetensors (sharded above --max-shard-mb), generation_config.json and the tokenizer files.")
            { run, output, dtype, shard };
        cmd.SetAction(r =>
        {
            var weights = r.GetValue(dtype) switch
            {
                "fp32" => DType.Float32,
                "bf16" => DType.BFloat16,
                "fp16" => DType.Float16,
                var other => throw new ArgumentException($"--dtype must be fp32, bf16 or fp16, got '{other}'."),
            };
            long shardMb = r.GetValue(shard);
            if (shardMb <= 0) throw new ArgumentException($"--max-shard-mb must be positive, got {shardMb}.");
            string outDir = CliPaths.OutputFolder(r.GetValue(output)!, "--out");
            var trainer = Trainer.Open(CliPaths.ExistingRun(r.GetValue(run)!, "--run"), deviceName: "cpu");
            var tokenizer = RunFolder.OpenTokenizer(trainer.RunDir, trainer.Options.Tokenizer);
            HfModelFolder.Save(trainer.Model, outDir, weights, shardMb * 1_000_000, (tokenizer as HfTokenizer)?.Directory);
            Console.WriteLine($"Exported step {trainer.StartStep} of '{trainer.RunDir}' to '{outDir}' ({weights.Name()})." +
                              (tokenizer is HfTokenizer ? "" : $" The run's tokenizer ({tokenizer.Name}) has no tokenizer.json; load the folder with --tokenizer {tokenizer.Name}."));
            return 0;
        });
        return cmd;
    }
}
