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
        var device = EvalCommand.DeviceOverride();
        var cmd = new Command("generate", "Sample text from a trained run.") { run, prompt, tokens, temperature, topK, seed, device };
        cmd.SetAction(r =>
        {
            int n = r.GetValue(tokens);
            if (n <= 0) throw new ArgumentException($"--tokens must be positive, got {n}.");
            float temp = CliErrors.Finite(r.GetValue(temperature), "--temperature", 0f);
            if (r.GetValue(topK) < 0) throw new ArgumentException($"--top-k must be 0 (all) or positive, got {r.GetValue(topK)}.");
            var trainer = Trainer.Open(r.GetValue(run)!, deviceName: r.GetValue(device));
            var tokenizer = Trainer.CreateTokenizer(trainer.Options.Tokenizer);
            var ids = tokenizer.Encode(r.GetValue(prompt)!);
            using var onDevice = Backend.Use(trainer.Device); // the prompt's tensors go where the model is
            var output = Sampling.Generate(trainer.Model, ids, n, temp, r.GetValue(topK),
                new Generator(r.GetValue(seed)), context: trainer.Options.Seq);
            Console.WriteLine(tokenizer.Decode(output));
            return 0;
        });
        return cmd;
    }
}
