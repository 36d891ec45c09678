using System.CommandLine;
using TensorLite.Training;

namespace TensorLite.Cli;

/// <summary>`tensorlite plan`: the predicted peak memory of a training run, by category, without allocating it.</summary>
public static class PlanCommand
{
    public static Command Create()
    {
        var binder = new TrainingOptionsBinder();
        var nproc = new Option<int>("--nproc") { Description = "Plan one process of a data-parallel run of N processes (with --shard-states, its share of the optimizer state).", DefaultValueFactory = _ => 1 };
        var budget = new Option<string?>("--memory-budget") { Description = "Say whether the plan fits this size (e.g. 24GB, 22GiB) and, if not, the nearest settings that do." };
        var cmd = new Command("plan", "Predict a training run's peak memory (weights, gradients, optimizer states, projector state, activations, workspace) by running its steps on the meta backend.");
        binder.AddTo(cmd);
        cmd.Options.Add(budget);
        cmd.Options.Add(nproc);
        cmd.SetAction(r =>
        {
            var options = CliPaths.TrainingInputs(binder.Read(r).Validate());
            int processes = r.GetValue(nproc);
            if (processes < 1) throw new ArgumentException($"--nproc must be positive, got {processes}.");
            var plan = MemoryPlan.Predict(options, processes);
            Console.WriteLine(plan.Render());
            Console.Out.Flush();
            if (r.GetValue(budget) is not string text) return 0;
            long limit = MemoryPlan.ParseBytes(text);
            if (plan.PredictedPeakBytes <= limit)
            {
                Console.WriteLine($"fits the budget of {MemoryPlan.Format(limit)} ({MemoryPlan.Format(limit - plan.PredictedPeakBytes)} to spare)");
                return 0;
            }
            Console.Error.WriteLine($"error: the plan needs {MemoryPlan.Format(plan.PredictedPeakBytes)}, over the budget of {MemoryPlan.Format(limit)}.");
            PrintAlternatives(options, limit);
            return CliErrors.UserError;
        });
        return cmd;
    }

    /// <summary>For `train --memory-budget`: null when the plan fits, else prints the refusal, the breakdown and what
    /// to change, and returns the exit code.</summary>
    public static int? RefuseOverBudget(TrainingOptions options, long limit)
    {
        var plan = MemoryPlan.Predict(options);
        if (plan.PredictedPeakBytes <= limit) return null;
        Console.Error.WriteLine($"error: the run would need {MemoryPlan.Format(plan.PredictedPeakBytes)}, over --memory-budget {MemoryPlan.Format(limit)}; nothing was started.");
        Console.Error.WriteLine(plan.Render());
        PrintAlternatives(options, limit);
        return CliErrors.UserError;
    }

    private static void PrintAlternatives(TrainingOptions options, long limit)
    {
        var alternatives = MemoryPlan.Alternatives(options, limit);
        if (alternatives.Count == 0)
        {
            Console.Error.WriteLine("no nearby setting fits: use a smaller model or a larger budget.");
            return;
        }
        Console.Error.WriteLine("settings that fit:");
        foreach (var (change, plan) in alternatives)
            Console.Error.WriteLine($"  {change,-48} {MemoryPlan.Format(plan.PredictedPeakBytes)}");
    }
}
