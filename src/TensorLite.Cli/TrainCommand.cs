using System.CommandLine;
using TensorLite.Distributed;
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
        var nproc = new Option<int?>("--nproc") { Description = "Train data-parallel on N processes of this machine (runs this command under Open MPI's mpirun -np N; see docs/distributed.md)." };
        var collectives = new Option<string>("--collectives") { Description = $"With --nproc: what sums the gradients. auto: NCCL on the device when the device is CUDA and NCCL loads (libnccl.so.2, or the file ${NcclCommunicator.LibraryPathVariable} names), else MPI; mpi: MPI (GPU tensors through host memory); nccl: NCCL, refused on a device that is not CUDA or without the library.", DefaultValueFactory = _ => "auto" };
        collectives.AcceptOnlyFromAmong(NcclCommunicator.Choices);
        var cmd = new Command("train", "Train a LLaMA (default: a small byte-level model on the embedded synthetic language, ~2 minutes on 2 cores).");
        binder.AddTo(cmd);
        cmd.Options.Add(budget);
        cmd.Options.Add(outDir);
        cmd.Options.Add(resume);
        cmd.Options.Add(nproc);
        cmd.Options.Add(collectives);
        cmd.SetAction(r =>
        {
            if (r.GetValue(nproc) is int n && !MpiCommunicator.LaunchedByMpirun) return MpiLauncher.Relaunch(n);
            var world = Communicators.FromEnvironment();
            int code = CliErrors.Run(() => Train(r, world, binder, outDir, resume, budget, collectives));
            if (code != 0 && world is MpiCommunicator failed) failed.Abort(code); // the other ranks must not wait for this one
            world.Dispose();
            return code;
        });
        return cmd;
    }

    private static int Train(ParseResult r, ICommunicator world, TrainingOptionsBinder binder, Option<string?> outDir, Option<string?> resume, Option<string?> budget, Option<string> collectives)
    {
        // --collectives, decided (or refused in one line) once the run's device is known and before anything is written;
        // an NCCL communicator lives as long as this run and leaves the MPI one to the caller.
        ICommunicator? onDevice = null;
        string sumsNote = "";
        ICommunicator Sums(string deviceName) => onDevice = NcclCommunicator.Connect(world, r.GetValue(collectives)!, deviceName, out sumsNote);
        try
        {
            return Train(r, world, binder, outDir, resume, budget, Sums, () => sumsNote);
        }
        finally
        {
            if (onDevice != world) onDevice?.Dispose();
        }
    }

    private static int Train(ParseResult r, ICommunicator world, TrainingOptionsBinder binder, Option<string?> outDir, Option<string?> resume, Option<string?> budget,
        Func<string, ICommunicator> sums, Func<string> sumsNote)
    {
        string? resumeDir = r.GetValue(resume) is { } given ? CliPaths.ExistingRun(given, "--resume") : null;
        Trainer trainer;
        if (resumeDir != null)
        {
            int? steps = binder.ExplicitSteps(r);
            string? device = binder.ExplicitDevice(r);
            // The budget is checked on the run's own options before anything is loaded or written, as for a new run.
            if (r.GetValue(budget) is string text)
            {
                long l = MemoryPlan.ParseBytes(text);
                var planned = RunFolder.ForPlanning(resumeDir, Trainer.ReadOptions(resumeDir, steps, device));
                if (PlanCommand.RefuseOverBudget(planned, l) is int refused) return refused;
                trainer = Trainer.Resume(resumeDir, steps, device, refuseFinished: true, sums(planned.Device));
                trainer.Memory.LimitBytes = trainer.Device is IDeviceAllocator ? l : l - MemoryPlan.RuntimeBytes;
            }
            else trainer = Trainer.Resume(resumeDir, steps, device, refuseFinished: true, sums(Trainer.ReadOptions(resumeDir, steps, device).Device));
        }
        else
        {
            var options = CliPaths.TrainingInputs(binder.Read(r).Validate());
            // The budget is checked on the plan before anything is allocated or written, then enforced on the
            // tensors while the run lasts (what the runtime itself needs is left out of the limit).
            long? limit = r.GetValue(budget) is string text ? MemoryPlan.ParseBytes(text) : null;
            if (limit is long l && PlanCommand.RefuseOverBudget(options, l) is int refused) return refused;
            if (PlanCommand.RefuseOverDeviceBudget(options) is int refusedDevice) return refusedDevice;
            world = sums(options.Device);
            // Every rank trains in rank 0's folder (the default name holds the time, which ranks may not agree on).
            string dir = CliPaths.OutputFolder(world.Broadcast(r.GetValue(outDir) ?? Path.Combine("runs", DateTime.Now.ToString("yyyyMMdd-HHmmss")), 0), "--out");
            trainer = Trainer.Create(options, dir, world);
            if (limit is long bytes) trainer.Memory.LimitBytes = trainer.Device is IDeviceAllocator ? bytes : bytes - MemoryPlan.RuntimeBytes;
        }
        if (world.Rank == 0 && trainer.Data.Warning is string warning) Console.Error.WriteLine($"warning: {warning}");
        // On a GPU backend the device's tensors are held to --device-memory (a new run's, or the one train.json records);
        // on the CPU the device and the host are one pool, which the plan alone checks.
        if (trainer.Options.DeviceMemory is string deviceBudget && trainer.Device is IDeviceAllocator)
            trainer.Memory.LimitBytes = Math.Min(trainer.Memory.LimitBytes ?? long.MaxValue, MemoryPlan.ParseBytes(deviceBudget, "--device-memory"));
        if (world.Rank == 0) return TrainingView.Run(trainer, sumsNote());
        trainer.Run(); // the other ranks train silently; rank 0 reports
        return 0;
    }
}
