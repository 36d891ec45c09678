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
            if (DeviceBudgetRefusal(options, plan) is string refusal)
            {
                Console.Error.WriteLine(refusal);
                PrintAlternatives(options, MemoryPlan.ParseBytes(options.DeviceMemory!, "--device-memory"), p => p.DevicePeakBytes);
                return CliErrors.UserError;
            }
            if (options.DeviceMemory != null) Console.WriteLine($"fits the device budget of {options.DeviceMemory} ({MemoryPlan.Format(MemoryPlan.ParseBytes(options.DeviceMemory, "--device-memory") - plan.DevicePeakBytes)} to spare)");
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

    /// <summary>For an offloaded run with --device-memory: the error line when the device part of the plan does not fit
    /// the budget (naming the weights when they alone are too large), else null.</summary>
    private static string? DeviceBudgetRefusal(TrainingOptions options, MemoryPlan plan)
    {
        if (options.DeviceMemory is not string text) return null;
        long limit = MemoryPlan.ParseBytes(text, "--device-memory");
        if (plan.DevicePeakBytes <= limit) return null;
        long weights = plan.AtPeak.Weights;
        return weights > limit
            ? $"error: the weights alone take {MemoryPlan.Format(weights)} on the device, over --device-memory {MemoryPlan.Format(limit)}; use --weights bf16, a smaller model or a larger budget."
            : $"error: the device part of the plan needs {MemoryPlan.Format(plan.DevicePeakBytes)}, over --device-memory {MemoryPlan.Format(limit)}.";
    }

    /// <summary>For `train --device-memory`: null when the device part of the plan fits, else prints the refusal, the
    /// breakdown and what to change, and returns the exit code.</summary>
    public static int? RefuseOverDeviceBudget(TrainingOptions options)
    {
        if (options.DeviceMemory == null) return null;
        var plan = MemoryPlan.Predict(options);
        if (DeviceBudgetRefusal(options, plan) is not string refusal) return null;
        Console.Error.WriteLine(refusal.TrimEnd('.') + "; nothing was started.");
        Console.Error.WriteLine(plan.Render());
        PrintAlternatives(options, MemoryPlan.ParseBytes(options.DeviceMemory, "--device-memory"), p => p.DevicePeakBytes);
        return CliErrors.UserError;
    }

    private static void PrintAlternatives(TrainingOptions options, long limit, Func<MemoryPlan, long>? measure = null)
    {
        measure ??= p => p.PredictedPeakBytes;
        var alternatives = MemoryPlan.Alternatives(options, limit, measure);
        if (alternatives.Count == 0)
        {
            Console.Error.WriteLine("no nearby setting fits: use a smaller model or a larger budget.");
            return;
        }
        Console.Error.WriteLine("settings that fit:");
        foreach (var (change, plan) in alternatives)
            Console.Error.WriteLine($"  {change,-48} {MemoryPlan.Format(measure(plan))}");
    }
}
