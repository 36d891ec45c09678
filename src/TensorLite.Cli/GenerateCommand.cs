using System.CommandLine;
using TensorLite.Models;
using TensorLite.Training;

namespace TensorLite.Cli;

/// <summary>`tensorlite generate`: sample text from a run's latest checkpoint.</summary>
public static class GenerateCommand
{
    public static Command Create()
    {
        var run = new Option<string>("--run") { Description = "Run folder whose latest checkpoint to sample from.", Required = true };
        var prompt = new Option<string>("--prompt") { Description = "Text to continue.", DefaultValueFactory = _ => " " };
        var tokens = new Option<int>("--tokens") { Description = "Tokens to generate.", DefaultValueFactory = _ => 200 };
        var temperature = new Option<float>("--temperature") { Description = "Sampling temperature (0 = greedy).", DefaultValueFactory = _ => 0.8f };
        var topK = new Option<int>("--top-k") { Description = "Sample among the k most likely tokens (0 = all).", DefaultValueFactory = _ => 40 };
        var seed = new Option<ulong>("--seed") { Description = "Sampling seed.", DefaultValueFactory = _ => 1UL };
        var stop = new Option<string?>("--stop") { Description = "Text of one token that ends generation, besides the model's end-of-sequence tokens (e.g. a newline for byte-level models)." };
        var device = EvalCommand.DeviceOverride();
        var cmd = new Command("generate", "Sample text from a trained run; stops at the model's end-of-sequence tokens (config.json eos_token_id, the tokenizer's eos_token).")
            { run, prompt, tokens, temperature, topK, seed, stop, device };
        cmd.SetAction(r =>
        {
            int n = r.GetValue(tokens);
            if (n <= 0) throw new ArgumentException($"--tokens must be positive, got {n}.");
            float temp = CliErrors.Finite(r.GetValue(temperature), "--temperature", 0f);
            if (r.GetValue(topK) < 0) throw new ArgumentException($"--top-k must be 0 (all) or positive, got {r.GetValue(topK)}.");
            var trainer = Trainer.Open(CliPaths.ExistingRun(r.GetValue(run)!, "--run"), deviceName: r.GetValue(device));
            var tokenizer = RunFolder.OpenTokenizer(trainer.RunDir, trainer.Options.Tokenizer);
            var ids = tokenizer.Encode(r.GetValue(prompt)!);
            var stopTokens = StopTokens(trainer.Model.Config, tokenizer, r.GetValue(stop));
            using var onDevice = Backend.Use(trainer.Device); // the prompt's tensors go where the model is
            var output = Sampling.Generate(trainer.Model, ids, n, temp, r.GetValue(topK),
                new Generator(r.GetValue(seed)), context: trainer.Options.Seq, stopTokens);
            if (output.Length > ids.Length && stopTokens.Contains(output[^1])) output = output[..^1]; // the end marker is not text
            Console.WriteLine(tokenizer.Decode(output));
            return 0;
        });
        return cmd;
    }

    /// <summary>The model's end-of-sequence ids, the tokenizer's eos_token, and the token of --stop.</summary>
    private static HashSet<int> StopTokens(LlamaConfig config, Data.ITokenizer tokenizer, string? stopText)
    {
        var stop = new HashSet<int>(config.EosTokenId ?? []);
        if (tokenizer is Data.HfTokenizer { EosTokenId: int eos }) stop.Add(eos);
        if (stopText != null)
        {
            var ids = tokenizer.Encode(stopText.Replace("\\n", "\n"));
            if (ids.Length != 1) throw new ArgumentException($"--stop must be the text of exactly one token; '{stopText}' is {ids.Length} tokens.");
            stop.Add(ids[0]);
        }
        return stop;
    }
}
