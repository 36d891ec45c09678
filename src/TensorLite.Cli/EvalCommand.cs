using System.CommandLine;
using TensorLite.Training;

namespace TensorLite.Cli;

/// <summary>`tensorlite eval`: validation loss and perplexity of a run's latest checkpoint.</summary>
public static class EvalCommand
{
    public static Command Create()
    {
        var run = new Option<string>("--run") { Description = "Run folder to evaluate.", Required = true };
        var batches = new Option<int>("--batches") { Description = "Validation batches to average.", DefaultValueFactory = _ => 16 };
        var cmd = new Command("eval", "Validation loss and perplexity of a run's latest checkpoint.") { run, batches };
        cmd.SetAction(r =>
        {
            int n = r.GetValue(batches);
            if (n <= 0) throw new ArgumentException($"--batches must be positive, got {n}.");
            var trainer = Trainer.Open(r.GetValue(run)!);
            float loss = trainer.Evaluate(n);
            Console.WriteLine($"step {trainer.StartStep}: validation loss {loss:F4} nats/token, perplexity {Math.Exp(loss):F3} " +
                              $"({n} batches of {trainer.Options.Batch}×{trainer.Options.Seq} tokens)" +
                              (trainer.Data.EntropyFloorNats is double f ? $"; entropy floor {f:F3}" : ""));
            return 0;
        });
        return cmd;
    }
}
