using System.Diagnostics;
using TensorLite.IO;
using TensorLite.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace TensorLite.Tests;

/// <summary>Open MPI for the data-parallel tests: installed from Debian when absent (CI machines start with only the .NET
/// SDK), once per test run.</summary>
public sealed class OpenMpi
{
    public OpenMpi()
    {
        Mpirun = Find("mpirun");
        if (Mpirun != null) return;
        Apt.Install("openmpi-bin");
        Mpirun = Find("mpirun") ?? throw new InvalidOperationException("Open MPI could not be installed (apt-get install openmpi-bin); the data-parallel tests need it.");
    }

    /// <summary>Where Open MPI's launcher is.</summary>
    public string? Mpirun { get; }

    private static string? Find(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Where(dir => dir.Length > 0).Select(dir => Path.Combine(dir, name)).FirstOrDefault(File.Exists);
}

/// <summary>
/// `train --nproc N` against one process with the same global batch: each rank trains on its share of every step's
/// micro-batches and the gradients are summed with MPI_Allreduce. The sum equals the single process's accumulation up to
/// float32 rounding, not bit for bit: the single process adds each micro-batch's weight gradient into the accumulated one
/// inside the gradient GEMM (so the k-blocks of the new micro-batch are added one by one), while ranks add whole
/// micro-batch gradients. After a few AdamW steps the parameters agree to ~1e-6 of their scale.
/// </summary>
public sealed partial class DataParallelTests(OpenMpi mpi, ITestOutputHelper output) : IClassFixture<OpenMpi>, IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("tl-dp-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private static string[] Tiny(string dir, int steps, int gradAccum, params string[] more) =>
    [
        "train", "--model", "byte_small", "--steps", steps.ToString(), "--grad-accum", gradAccum.ToString(), "--batch", "2", "--seq", "32",
        "--synthetic-bytes", "40000", "--eval-every", "1000", "--checkpoint-every", "2", "--log-every", "1", "--out", dir, .. more,
    ];

    private string Train(string name, int processes, int steps, int gradAccum, params string[] more)
    {
        string dir = Path.Combine(_root, name);
        string[] args = processes == 1 ? Tiny(dir, steps, gradAccum, more) : [.. Tiny(dir, steps, gradAccum, more), "--nproc", processes.ToString()];
        var (code, stdout, stderr) = CliProcess.Run(args, timeoutSeconds: 180);
        output.WriteLine($"{(processes == 1 ? "" : mpi.Mpirun + " ")}{string.Join(' ', args)}\n{stdout}{stderr}");
        Assert.True(code == 0, $"exit {code}: {stderr}");
        return dir;
    }

    private static Dictionary<string, float[]> Latest(string dir, string file) =>
        SafeTensors.Load(Path.Combine(Checkpoints(dir).Last(), file)).ToDictionary(x => x.Key, x => x.Value.ToArray());

    private static string[] Checkpoints(string dir) => Directory.GetDirectories(Path.Combine(dir, "checkpoints")).Order().ToArray();

    /// <summary>Largest difference of any element, relative to the largest magnitude of its tensor.</summary>
    private static double WorstRelativeDifference(Dictionary<string, float[]> a, Dictionary<string, float[]> b)
    {
        Assert.Equal(a.Keys.Order(), b.Keys.Order());
        double worst = 0;
        foreach (var (name, x) in a)
        {
            var y = b[name];
            double scale = x.Max(v => Math.Abs(v)) + 1e-30;
            for (int i = 0; i < x.Length; i++) worst = Math.Max(worst, Math.Abs(x[i] - y[i]) / scale);
        }
        return worst;
    }

    private void AssertSameTraining(string single, string parallel, double tolerance)
    {
        double weights = WorstRelativeDifference(Latest(single, "model.safetensors"), Latest(parallel, "model.safetensors"));
        double states = WorstRelativeDifference(Latest(single, "optimizer.safetensors"), Latest(parallel, "optimizer.safetensors"));
        output.WriteLine($"worst relative difference: weights {weights:E2}, optimizer states {states:E2}");
        Assert.InRange(weights, 0, tolerance);
        Assert.InRange(states, 0, tolerance);
        // Rank 0 alone writes: one metrics record per step, the same number of checkpoints as the single run.
        var steps = File.ReadAllLines(Path.Combine(parallel, "metrics.jsonl")).Select(l => System.Text.Json.JsonDocument.Parse(l).RootElement.GetProperty("step").GetInt64()).ToArray();
        Assert.Equal(steps.Distinct().Count(), steps.Length);
        Assert.Equal(Checkpoints(single).Select(Path.GetFileName), Checkpoints(parallel).Select(Path.GetFileName));
    }

    [Theory]
    [InlineData("adamw", 2, false)]
    [InlineData("galore", 2, true)]
    [InlineData("grass", 3, true)]
    [InlineData("osd", 2, false)]
    [InlineData("frugal", 3, false)]
    [InlineData("lsp", 2, true)]
    public void N_processes_train_as_one_process_with_the_same_global_batch(string optimizer, int processes, bool sumsProjected)
    {
        // Factored gradients on (the default): GaLore, GRASS and LSP (its r×r sketch) sum R between refreshes and dense G on refresh steps (every
        // second step here); OSD (a refresh at every step) and FRUGAL (a residual rule needs G) sum dense G at every step.
        string[] method = optimizer == "adamw" ? [] : ["--optimizer", optimizer, "--rank", "8", "--update-gap", "2"];
        string single = Train("single", 1, 4, processes, method);
        string parallel = Train("parallel", processes, 4, processes, method);
        // OSD's online PCA runs Adam on P from G/‖G‖: a G summed in another order moves the PCA gradient's small
        // entries by a few ulps, and Adam's m/√v magnifies them in its moments (observed up to 1.1e-5 of the tensor's
        // largest element; the weights still agree to 1.5e-7). Every other method stays within 1e-5.
        AssertSameTraining(single, parallel, optimizer == "osd" ? 1e-4 : 1e-5);
        var (dense, projected) = ExpectedAllReducedBytes(parallel);
        var sent = AllReducedBytesPerStep(parallel);
        output.WriteLine($"all-reduced per step: {string.Join(", ", sent)} bytes (dense {dense}, projected {projected})");
        long between = sumsProjected ? projected : dense;
        Assert.True(!sumsProjected || projected < dense / 2, $"the projected sum ({projected} bytes) should be far below the dense one ({dense})");
        Assert.Equal([dense, between, dense, between], sent);
        if (optimizer == "galore")
        {
            // The plan prints the same figures, from the optimizer's own shapes (the loss's 8 bytes are not gradients).
            var options = new Training.TrainingOptions { Optimizer = optimizer, Rank = 8, UpdateGap = 2, Batch = 2, Seq = 32, GradAccum = processes };
            var plan = Training.MemoryPlan.Predict(options, processes);
            Assert.Equal((dense - LossBytes, projected - LossBytes), plan.AllReducedBytesPerStep);
            Assert.Contains("all-reduced", plan.Render());
        }
    }

    [Fact]
    public void Per_layer_updates_sum_each_gradient_across_ranks_before_its_update()
    {
        // GaLore's projected matrices sum R (or G on refresh steps), the norms and embeddings their dense gradients.
        string[] method = ["--per-layer", "--optimizer", "galore", "--rank", "8", "--update-gap", "2"];
        string single = Train("single", 1, 4, 2, method);
        string parallel = Train("parallel", 2, 4, 2, method);
        AssertSameTraining(single, parallel, 1e-5);
        var (dense, projected) = ExpectedAllReducedBytes(parallel);
        Assert.Equal([dense, projected, dense, projected], AllReducedBytesPerStep(parallel));
        // Sharded, the same sums: each parameter's owner steps it inside backward and broadcasts it, the others take the
        // norm the next step clips by from the same summed R, and the owners broadcast refreshed bases after backward.
        string sharded = Train("sharded", 2, 4, 2, [.. method, "--shard-states"]);
        AssertBitIdentical(parallel, sharded);
        Assert.Equal([dense, projected, dense, projected], AllReducedBytesPerStep(sharded));
    }

    [Theory]
    [InlineData("adamw", 2)]
    [InlineData("galore", 3)]
    public void Sums_overlapped_with_backward_give_the_bits_of_sums_after_backward(string optimizer, int processes)
    {
        // Small buckets (64K elements: about 30 for byte_small's dense gradients) so that most are summed while backward
        // goes on. With 3 ranks the reduction order inside MPI_Allreduce depends on where an element sits in its bucket,
        // so equal bits also show that both schedules build the same buckets.
        string[] method = [.. optimizer == "adamw" ? [] : new[] { "--optimizer", optimizer, "--rank", "8", "--update-gap", "2" }, "--allreduce-bucket-mb", "0.25"];
        // Two steps: GaLore's first refreshes (dense G), its second sums R.
        string serial = Train("serial", processes, 2, processes, [.. method, "--allreduce-overlap", "off"]);
        string overlapped = Train("overlapped", processes, 2, processes, method);
        AssertBitIdentical(serial, overlapped);
        Assert.Equal(AllReducedBytesPerStep(serial), AllReducedBytesPerStep(overlapped));
        long Last(string dir, string field) => System.Text.Json.JsonDocument.Parse(File.ReadLines(Path.Combine(dir, "metrics.jsonl")).Last()).RootElement.GetProperty(field).GetInt64();
        output.WriteLine($"buckets: {Last(serial, "allreduce_buckets")} serial, {Last(overlapped, "allreduce_buckets")} overlapped, of which {Last(overlapped, "allreduce_buckets_overlapped")} started during backward");
        Assert.Equal(Last(serial, "allreduce_buckets"), Last(overlapped, "allreduce_buckets"));
        Assert.Equal(0, Last(serial, "allreduce_buckets_overlapped"));
        // At each step, at least the bucket with the LM head starts during backward, and the one with the embedding
        // (whose gradient is the last) only after it.
        Assert.InRange(Last(overlapped, "allreduce_buckets_overlapped"), 2, Last(overlapped, "allreduce_buckets") - 2);
    }

    /// <summary>Each step also sums its loss: one float64.</summary>
    private const long LossBytes = sizeof(double);

    /// <summary>The bytes a step all-reduces, from the run's metrics (cumulative allreduce_bytes of rank 0, logged at every
    /// step; a run resumed after step <paramref name="resumedAt"/> counts again from 0).</summary>
    private static long[] AllReducedBytesPerStep(string dir, long resumedAt = -1)
    {
        var records = File.ReadAllLines(Path.Combine(dir, "metrics.jsonl")).Select(l => System.Text.Json.JsonDocument.Parse(l).RootElement)
            .Select(r => (Step: r.GetProperty("step").GetInt64(), Total: r.GetProperty("allreduce_bytes").GetInt64())).ToArray();
        return records.Select((r, i) => r.Total - (i == 0 || r.Step == resumedAt + 1 ? 0 : records[i - 1].Total)).ToArray();
    }

    /// <summary>What a step should all-reduce, derived from the checkpoint alone: dense, 4 bytes per weight; projected, 4
    /// bytes per element of each parameter's first Adam moment — which has R's shape for a projected matrix and the
    /// parameter's own shape otherwise. Both plus the loss.</summary>
    private static (long Dense, long Projected) ExpectedAllReducedBytes(string dir)
    {
        long dense = 4 * Latest(dir, "model.safetensors").Values.Sum(v => (long)v.Length);
        var moments = Latest(dir, "optimizer.safetensors").Where(x => x.Key.EndsWith(".exp_avg", StringComparison.Ordinal) && char.IsDigit(x.Key[0]));
        long projected = 4 * moments.Sum(x => (long)x.Value.Length);
        return (dense + LossBytes, projected + LossBytes);
    }

    [Fact]
    public void A_run_resumes_with_a_different_number_of_processes()
    {
        string single = Train("single", 1, 4, 6);
        string parallel = Train("parallel", 2, 2, 6);
        var (code, stdout, stderr) = CliProcess.Run(["train", "--resume", parallel, "--steps", "4", "--nproc", "3"], timeoutSeconds: 180);
        output.WriteLine(stdout + stderr);
        Assert.True(code == 0, stderr);
        Assert.Contains("resuming at step 2", stdout);
        AssertSameTraining(single, parallel, 1e-5);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Sharded_optimizer_states_train_as_one_process_and_checkpoint_the_whole_state(bool perLayer)
    {
        string[] mode = perLayer ? ["--per-layer"] : [];
        // Each rank keeps and updates half of the parameters' AdamW moments; rank 0 gathers them for the checkpoint,
        // which then holds every entry of the single run's (compared name by name), and the run resumes on 3 ranks.
        string single = Train("single", 1, 4, 6, mode);
        string parallel = Train("parallel", 2, 2, 6, [.. mode, "--shard-states"]);
        var (code, stdout, stderr) = CliProcess.Run(["train", "--resume", parallel, "--steps", "4", "--nproc", "3"], timeoutSeconds: 180);
        output.WriteLine(stdout + stderr);
        Assert.True(code == 0, stderr);
        AssertSameTraining(single, parallel, 1e-5);
    }

    [Fact]
    public void The_plan_of_a_sharded_run_holds_one_share_of_the_optimizer_state()
    {
        var options = new Training.TrainingOptions { Model = "llama_20m", Batch = 1, Seq = 64 };
        var whole = Training.MemoryPlan.Predict(options, processes: 2);
        var shard = Training.MemoryPlan.Predict(options with { ShardStates = true }, processes: 2);
        long all = whole.AtPeak[Memory.MemoryCategory.OptimizerState], mine = shard.AtPeak[Memory.MemoryCategory.OptimizerState];
        output.WriteLine($"optimizer states: {all} bytes unsharded, {mine} bytes on rank 0 of 2");
        // Greedy balance by element count: rank 0's share is about half (the embedding alone is 8.2M of 21M parameters).
        Assert.InRange(mine, all * 0.4, all * 0.6);
        Assert.Contains("per process of 2, optimizer states sharded", shard.Render());
    }

    [Fact]
    public void Sharding_FRUGALs_whole_matrix_mode_is_refused_in_one_sentence()
    {
        var e = Assert.Throws<ArgumentException>(() => new Training.TrainingOptions { Optimizer = "frugal", ShardStates = true }.Validate());
        Assert.Contains("--shard-states cannot shard FRUGAL's whole-matrix mode", e.Message);
        new Training.TrainingOptions { Optimizer = "frugal", Projection = "blocks", ShardStates = true }.Validate();
    }

    /// <summary>Two ranks holding the same values: every sum is twice the values.</summary>
    private sealed class TwinRanks : Distributed.ICommunicator
    {
        public int Rank => 0;
        public int WorldSize => 2;
        public string Description => "twin ranks";
        public void AllReduceSum(Span<float> values) { foreach (ref var v in values) v *= 2; }
        public void AllReduceSum(Span<double> values) { foreach (ref var v in values) v *= 2; }
        public void Broadcast(Span<byte> data, int root) { }
        public void Dispose() { }
    }

    [Fact]
    public void Tensors_of_every_float_dtype_are_summed_in_place_bucket_by_bucket()
    {
        var values = new float[] { 1.5f, -3.25f, 0.0078125f, 1024f };
        using var f32 = Tensor.FromArray(values, 2, 2);
        using var bf16 = f32.To(DType.BFloat16);
        using var f16 = f32.To(DType.Float16);
        using var big = Tensor.Ones([Distributed.TensorCollectives.BucketElements + 3]); // a bucket of its own
        Distributed.TensorCollectives.AllReduceSum(new TwinRanks(), [f32, bf16, f16, big]);
        var doubled = values.Select(v => 2 * v).ToArray();
        Assert.Equal(doubled, f32.ToArray());
        Assert.Equal(doubled, bf16.ToArray()); // doubling is exact in every format, so no rounding shows
        Assert.Equal(doubled, f16.ToArray());
        Assert.All(big.ToArray(), v => Assert.Equal(2f, v));
    }

    [Fact]
    public void Twin_ranks_summing_projected_gradients_step_as_one_process_with_the_summed_gradient()
    {
        // Two ranks with the same factored gradient G: they sum dense G on the refresh step (step 0) and R between
        // refreshes (step 1); one process with 2·G dense steps the same. Doubling is exact and projection linear, so the
        // results agree to the last bit but for the paths' own float32 rounding.
        var gen = new Generator(5);
        using var w0 = Tensor.RandN([4, 6], gen, 1f);
        var options = Optim.Projected.ProjectedOptions.GaLore(rank: 2, updateGap: 2) with { ShouldProject = Optim.Projected.ProjectedOptions.AllMatrices };
        using var twin = w0.Detach().RequireGrad();
        using var single = w0.Detach().RequireGrad();
        using var twinOpt = new Optim.Projected.ProjectedOptimizer([("w", twin)], options);
        using var singleOpt = new Optim.Projected.ProjectedOptimizer([("w", single)], options);
        var ranks = new TwinRanks();
        for (int step = 0; step < 2; step++)
        {
            using var x = Tensor.RandN([3, 6], gen, 1f);
            using var dy = Tensor.RandN([3, 4], gen, 1f);
            twin.FactoredGrad = new Autograd.FactoredGradient(4, 6);
            twin.FactoredGrad.Add(x, dy);
            var summed = twinOpt.GradientToAllReduce(0)!;
            Assert.Equal(step == 0 ? [4, 6] : new[] { 2, 6 }, summed.ShapeArray); // G on the refresh step, R = Bᵀ·G after
            Assert.Equal(summed.Numel, twinOpt.AllReducedElements(0, step));
            Distributed.TensorCollectives.AllReduceSum(ranks, summed);
            using (var dyt = dy.T)
            using (var g = dyt.MatMul(x))
                single.Grad = g * 2f;
            if (step == 1)
            {
                // What was summed is the projection, in the basis the refresh step computed, of each rank's G.
                using var basis = twinOpt.ProjectorOf(0)!.BasisMatrix();
                using var bt = basis.T;
                using var expected = bt.MatMul(single.Grad);
                AssertClose(expected.ToArray(), summed.ToArray(), 1e-5f);
            }
            else AssertClose(single.Grad.ToArray(), summed.ToArray(), 1e-5f);
            twinOpt.Step();
            twin.ZeroGrad();
            singleOpt.Step();
            single.ZeroGrad();
            AssertClose(single.ToArray(), twin.ToArray(), 1e-6f);
        }
    }

    private static void AssertClose(float[] expected, float[] actual, float tolerance)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++) Assert.Equal(expected[i], actual[i], tolerance);
    }

    [Fact]
    public void A_grad_accum_that_the_processes_cannot_share_is_refused_in_one_line()
    {
        string dir = Path.Combine(_root, "refused");
        var (code, _, stderr) = CliProcess.Run([.. Tiny(dir, 2, 3), "--nproc", "2"], timeoutSeconds: 120);
        Assert.NotEqual(0, code);
        Assert.Contains("--grad-accum 3 must be a multiple of the 2 processes", stderr);
        Assert.False(File.Exists(Path.Combine(dir, "train.json")));
    }

    [Fact]
    public void A_rank_that_dies_mid_step_stops_the_job_and_the_run_resumes_from_its_last_checkpoint()
    {
        string dir = Path.Combine(_root, "killed");
        var clock = Stopwatch.StartNew();
        // Rank 1 kills itself before its 4th gradient sum: rank 0 is then waiting in the collective for it.
        var (code, stdout, stderr) = CliProcess.Run([.. Tiny(dir, 6, 2), "--nproc", "2"], fault: "allreduce.rank1:4:kill", timeoutSeconds: 120);
        output.WriteLine($"{clock.Elapsed.TotalSeconds:F1} s, exit {code}\n{stdout}{stderr}");
        Assert.NotEqual(0, code);
        Assert.Equal("step-0000002", Path.GetFileName(Checkpoints(dir).Last()));
        var (resumed, _, err) = CliProcess.Run(["train", "--resume", dir], timeoutSeconds: 120);
        Assert.True(resumed == 0, err);
        Assert.Equal("step-0000006", Path.GetFileName(Checkpoints(dir).Last()));
    }
}
