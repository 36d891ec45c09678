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
        var whole = new Option<bool>("--whole-split")
        {
            Description = "Evaluate the whole validation split, in consecutive windows of the run's sequence length (a last partial window aside), instead of --batches random windows drawn from the run's seed: the same tokens for every seed and method, so runs compare without sampling noise.",
        };
        var device = DeviceOverride();
        var cmd = new Command("eval", "Validation loss and perplexity of a run's latest checkpoint.") { run, batches, whole, device };
        cmd.SetAction(r =>
        {
            int n = r.GetValue(batches);
            bool wholeSplit = r.GetValue(whole);
            // The two choose different tokens to score: a user who gives both would not get what one of them asked for.
            if (wholeSplit && r.GetResult(batches) is { Implicit: false })
                throw new ArgumentException("--batches and --whole-split exclude each other: --whole-split scores every validation window.");
            if (n <= 0) throw new ArgumentException($"--batches must be positive, got {n}.");
            var trainer = Trainer.Open(CliPaths.ExistingRun(r.GetValue(run)!, "--run"), deviceName: r.GetValue(device));
            float loss = wholeSplit ? trainer.EvaluateWholeSplit() : trainer.Evaluate(n);
            if (!float.IsFinite(loss))
                throw new TensorLiteException($"The validation loss of '{trainer.RunDir}' at step {trainer.StartStep} is {loss}: its checkpoint does not hold a usable model.");
            Console.WriteLine($"step {trainer.StartStep}: validation loss {loss:F4} nats/token, perplexity {Math.Exp(loss):F3} " +
                              (wholeSplit
                                  ? $"(the whole validation split: {trainer.Data.Dataset.ValidationWindowCount(trainer.Options.Seq)} windows of {trainer.Options.Seq} tokens)"
                                  : $"({n} batches of {trainer.Options.Batch}×{trainer.Options.Seq} tokens)") +
                              (trainer.Data.EntropyFloorNats is double f ? $"; entropy floor {f:F3}" : ""));
            return 0;
        });
        return cmd;
    }

    /// <summary>--device for commands that open a run: where to load it (default: the device it was trained on).</summary>
    public static Option<string?> DeviceOverride() =>
        new("--device") { Description = "cpu, cuda, auto or ilgpu-cpu (default: the device the run was trained on; checkpoints load on any)." };
}
