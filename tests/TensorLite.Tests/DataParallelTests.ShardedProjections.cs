using TensorLite.Backends.Meta;
using TensorLite.Distributed;
using TensorLite.IO;
using TensorLite.Optim.Projected;
using TensorLite.Training;
using Xunit;

namespace TensorLite.Tests;

/// <summary>
/// --shard-states with projected gradient sums: every rank keeps every shared projection, the owner of a parameter
/// refreshes it and broadcasts it, and the other ranks project their gradients with the owner's bits. A sharded run
/// does exactly the arithmetic of an unsharded run on the same number of ranks (each owner's update is the one every
/// unsharded rank computes, from the same sums), so the two are compared bit for bit, not within a tolerance.
/// </summary>
public sealed partial class DataParallelTests
{
    /// <summary>Every weight and every optimizer state entry of every checkpoint of <paramref name="b"/> has the bits of
    /// <paramref name="a"/>'s, and both runs wrote the same checkpoints.</summary>
    private static void AssertBitIdentical(string a, string b)
    {
        Assert.Equal(Checkpoints(a).Select(Path.GetFileName), Checkpoints(b).Select(Path.GetFileName));
        foreach (var checkpoint in Checkpoints(a).Select(Path.GetFileName))
            foreach (var file in new[] { "model.safetensors", "optimizer.safetensors" })
            {
                var x = Raw(Path.Combine(a, "checkpoints", checkpoint!, file));
                var y = Raw(Path.Combine(b, "checkpoints", checkpoint!, file));
                Assert.Equal(x.Keys.Order(), y.Keys.Order());
                foreach (var (name, bytes) in x) Assert.True(bytes.AsSpan().SequenceEqual(y[name]), $"{checkpoint}/{file}: {name} differs");
            }
    }

    /// <summary>Each tensor of a safetensors file as its raw bytes (counters and generator words are int64).</summary>
    private static Dictionary<string, byte[]> Raw(string path) => SafeTensors.Load(path).ToDictionary(e => e.Key, e =>
    {
        var bytes = new byte[e.Value.Numel * e.Value.DType.SizeInBytes()];
        e.Value.Backend.CopyToHost(e.Value, bytes);
        e.Value.Dispose();
        return bytes;
    });

    /// <summary>The optimizer state bytes rank 0 reported at <paramref name="step"/> (metrics.jsonl).</summary>
    private static long StateBytesAt(string dir, long step) => File.ReadLines(Path.Combine(dir, "metrics.jsonl"))
        .Select(l => System.Text.Json.JsonDocument.Parse(l).RootElement)
        .Single(r => r.GetProperty("step").GetInt64() == step).GetProperty("optimizer_state_bytes").GetInt64();

    [Fact]
    public void Sharded_states_sum_projected_gradients_as_unsharded_ranks_do_and_resume_on_another_number_of_ranks()
    {
        // GRASS selects rows at steps 1 and 4 (update gap 3): 2 ranks take steps 1-2, 3 ranks resume for steps 3-4, so the
        // resumed ranks' first step sums the rows of the selections they loaded from the checkpoint (each rank loads every
        // shared projection, and the moments of its own parameters only).
        string[] method = ["--optimizer", "grass", "--rank", "8", "--update-gap", "3"];
        string TwoThenThree(string name, params string[] more)
        {
            string dir = Train(name, 2, 2, 6, [.. method, .. more]);
            var (code, stdout, stderr) = CliProcess.Run(["train", "--resume", dir, "--steps", "4", "--nproc", "3"], timeoutSeconds: 180);
            output.WriteLine(stdout + stderr);
            Assert.True(code == 0, stderr);
            return dir;
        }
        string plain = TwoThenThree("plain");
        string sharded = TwoThenThree("sharded", "--shard-states");
        AssertBitIdentical(plain, sharded);
        // What the ranks sum does not change with sharding: G on refresh steps, R between them.
        var (dense, projected) = ExpectedAllReducedBytes(sharded);
        var sent = AllReducedBytesPerStep(sharded, resumedAt: 2);
        output.WriteLine($"all-reduced per step: {string.Join(", ", sent)} bytes (dense {dense}, projected {projected})");
        Assert.True(projected < dense / 2, $"the projected sum ({projected} bytes) should be far below the dense one ({dense})");
        Assert.Equal([dense, projected, projected, dense], sent);
        // Rank 0's optimizer state: the moments of its share and every shared projection — what the plan predicts for
        // rank 0 of 2 (steps 1-2) and of 3 (steps 3-4), and the closed form.
        foreach (var (processes, step) in new[] { (2, 2L), (3, 4L) })
        {
            var options = new TrainingOptions { Optimizer = "grass", Rank = 8, UpdateGap = 3, Batch = 2, Seq = 32, GradAccum = 6, ShardStates = true };
            var plan = MemoryPlan.Predict(options, processes);
            long closedForm = ClosedFormShardStateBytes(options, processes);
            output.WriteLine($"rank 0 of {processes}: optimizer state {StateBytesAt(sharded, step)} bytes measured, {plan.OptimizerStateBytes} planned, {closedForm} closed form; unsharded {StateBytesAt(plain, step)}");
            Assert.Equal(closedForm, plan.OptimizerStateBytes);
            Assert.Equal(closedForm, StateBytesAt(sharded, step));
            Assert.Contains("every shared projection", plan.Render());
        }
    }

    /// <summary><see cref="ProjectedOptimizer.PredictShardStateBytes"/> for rank 0 of a run of <paramref name="options"/>
    /// over <paramref name="processes"/> ranks, the model and its shards built on the meta backend.</summary>
    private static long ClosedFormShardStateBytes(TrainingOptions options, int processes)
    {
        using var onMeta = Backend.Use(new MetaBackend());
        var model = new Models.LlamaModel(Trainer.ResolveConfig(options).Config, null);
        var named = model.NamedParameters().ToList();
        var shards = new StateShards([.. named.Select(x => x.Parameter)], processes);
        var projected = (ProjectedOptimizer)options.ToOptimizerSpec().Create(named, options.WeightDType);
        return ProjectedOptimizer.PredictShardStateBytes([.. named.Select(x => (x.Name, x.Parameter.ShapeArray))], projected.Options, i => shards.Owner(i) == 0);
    }

    [Fact]
    public void A_rank_that_receives_a_refreshed_projection_projects_with_the_owners_bits()
    {
        // Two optimizers over the same weight stand for its owner and another rank: the owner steps (and refreshes), the
        // other counts the step and installs what the owner sends; both then project the next gradient alike.
        var gen = new Generator(11);
        using var w0 = Tensor.RandN([4, 6], gen, 1f);
        var options = ProjectedOptions.GaLore(rank: 2, updateGap: 2) with { ShouldProject = ProjectedOptions.AllMatrices };
        using var ownerWeight = w0.Detach().RequireGrad();
        using var otherWeight = w0.Detach().RequireGrad();
        using var owner = new ProjectedOptimizer([("w", ownerWeight)], options);
        using var other = new ProjectedOptimizer([("w", otherWeight)], options);
        Assert.True(owner.SharesProjection(0));
        using (var g = Tensor.RandN([4, 6], gen, 1f))
        {
            ownerWeight.Grad = g.Clone();
            otherWeight.Grad = g.Clone();
        }
        Assert.True(owner.RefreshesSharedProjection(0));
        Assert.True(other.RefreshesSharedProjection(0));
        owner.Step();
        other.BeginStep();
        other.FollowStep(0);
        var sent = owner.ProjectionState(0).Select(e => (e.Name, Tensor: e.Tensor.Clone())).ToList();
        Assert.Equal(["0.counters", "0.rng", "0.proj.basis"], sent.Select(e => e.Name));
        other.LoadProjectionState(sent);
        foreach (var (_, t) in sent) t.Dispose();
        ownerWeight.ZeroGrad();
        otherWeight.ZeroGrad();
        Assert.False(owner.RefreshesSharedProjection(0)); // step 2 projects with step 1's basis, on both
        Assert.False(other.RefreshesSharedProjection(0));
        using var x = Tensor.RandN([3, 6], gen, 1f);
        using var dy = Tensor.RandN([3, 4], gen, 1f);
        ownerWeight.FactoredGrad = new Autograd.FactoredGradient(4, 6);
        ownerWeight.FactoredGrad.Add(x, dy);
        otherWeight.FactoredGrad = new Autograd.FactoredGradient(4, 6);
        otherWeight.FactoredGrad.Add(x, dy);
        var r = owner.GradientToAllReduce(0)!.ToArray();
        var rOther = other.GradientToAllReduce(0)!.ToArray();
        Assert.Equal(8 + 4, r.Length); // R = Bᵀ·G, [2, 6]
        Assert.True(r.AsSpan().SequenceEqual(rOther));
        // The other rank holds the projection without moments: the closed form of a rank that does not own the weight.
        var shapes = new List<(string, int[])> { ("w", [4, 6]) };
        Assert.Equal(ProjectedOptimizer.PredictShardStateBytes(shapes, options, _ => false), other.StateBytes);
        Assert.Equal(ProjectedOptimizer.PredictStateBytes(shapes, options), owner.StateBytes);
        Assert.Equal(ProjectedOptimizer.PredictShardStateBytes(shapes, options, _ => true), owner.StateBytes);
        Assert.Equal(24 + 32 + 4 * 4 * 2, other.StateBytes); // counters, generator, the [4, 2] float32 basis
        // Moments are never sent, and a projection refreshed at every step (OSD, or an update gap of 1) is not shared.
        Assert.Throws<InvalidOperationException>(() => other.LoadProjectionState([.. owner.StateTensors().Where(e => e.Name.EndsWith("exp_avg", StringComparison.Ordinal))]));
        using var osd = new ProjectedOptimizer([("w", otherWeight)], ProjectedOptions.Osd(rank: 2) with { ShouldProject = ProjectedOptions.AllMatrices });
        Assert.False(osd.SharesProjection(0));
        using var everyStep = new ProjectedOptimizer([("w", otherWeight)], options with { UpdateGap = 1 });
        Assert.False(everyStep.SharesProjection(0));
    }
}
