using System.CommandLine;
using TensorLite.Training;

namespace TensorLite.Cli;

/// <summary>`tensorlite train`: the main job.</summary>
public static class TrainCommand
{
    public static Command Create()
    {
        var binder = new TrainingOptionsBinder();
        var outDir = new Option<string?>("--out") { Description = "Run folder (default: runs/<date-time>)." };
        var resume = new Option<string?>("--resume") { Description = "Continue the run in this folder from its latest checkpoint." };
        var budget = new Option<string?>("--memory-budget") { Description = "Refuse to start unless the planned peak memory fits this size (e.g. 24GB, 22GiB)." };
        var cmd = new Command("train", "Train a LLaMA (default: a small byte-level model on the embedded synthetic language, ~2 minutes on 2 cores).");
        binder.AddTo(cmd);
        cmd.Options.Add(budget);
        cmd.Options.Add(outDir);
        cmd.Options.Add(resume);
        cmd.SetAction(r =>
        {
            string? resumeDir = r.GetValue(resume);
            Trainer trainer;
            if (resumeDir != null)
            {
                int? steps = binder.ExplicitSteps(r);
                string? device = binder.ExplicitDevice(r);
                // The budget is checked on the run's own options before anything is loaded or written, as for a new run.
                if (r.GetValue(budget) is string text)
                {
                    long l = MemoryPlan.ParseBytes(text);
                    if (PlanCommand.RefuseOverBudget(Trainer.ReadOptions(resumeDir, steps, device), l) is int refused) return refused;
                    trainer = Trainer.Resume(resumeDir, steps, device, refuseFinished: true);
                    trainer.Memory.LimitBytes = trainer.Device is IDeviceAllocator ? l : l - MemoryPlan.RuntimeBytes;
                }
                else trainer = Trainer.Resume(resumeDir, steps, device, refuseFinished: true);
            }
            else
            {
                var options = binder.Read(r).Validate();
                // The budget is checked on the plan before anything is allocated or written, then enforced on the
                // tensors while the run lasts (what the runtime itself needs is left out of the limit).
                long? limit = r.GetValue(budget) is string text ? MemoryPlan.ParseBytes(text) : null;
                if (limit is long l && PlanCommand.RefuseOverBudget(options, l) is int refused) return refused;
                string dir = r.GetValue(outDir) ?? Path.Combine("runs", DateTime.Now.ToString("yyyyMMdd-HHmmss"));
                trainer = Trainer.Create(options, dir);
                if (limit is long bytes) trainer.Memory.LimitBytes = trainer.Device is IDeviceAllocator ? bytes : bytes - MemoryPlan.RuntimeBytes;
            }
            return TrainingView.Run(trainer);
        });
        return cmd;
    }
}
