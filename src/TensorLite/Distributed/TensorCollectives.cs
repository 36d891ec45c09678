namespace TensorLite.Distributed;

/// <summary>Collectives on tensors of any backend: sums travel through host buffers of float32 (16-bit tensors are widened
/// for the sum and rounded back to nearest by the backend), one collective per bucket of tensors — or, when the
/// communicator works on the tensors' device (<see cref="ICommunicator.CollectivesDevice"/>: NCCL on CUDA), through a
/// float32 bucket on that device, never through host memory.</summary>
public static class TensorCollectives
{
    /// <summary>Tensors are packed into buckets of up to this many elements (16 MiB of float32; a data-parallel step's
    /// default, --allreduce-bucket-mb 16): one collective per bucket instead of one per tensor, without a host copy of
    /// every gradient at once, and small enough that a step's first buckets are summed while backward goes on.</summary>
    public const int BucketElements = 1 << 22;

    /// <summary>Sums each tensor over all ranks, in place, in buckets of <see cref="BucketElements"/> (see
    /// <see cref="GradientBuckets"/>), so ranks must pass tensors of the same shapes in the same order.</summary>
    public static void AllReduceSum(this ICommunicator world, IReadOnlyList<Tensor> tensors)
    {
        if (world.WorldSize == 1) return;
        using var buckets = new GradientBuckets(world, BucketElements, overlap: false);
        foreach (var t in tensors) buckets.Add(t);
        buckets.Complete();
    }

    /// <summary>Sums one tensor over all ranks, in place.</summary>
    public static void AllReduceSum(this ICommunicator world, Tensor tensor) => world.AllReduceSum([tensor]);

    /// <summary>Copies rank <paramref name="root"/>'s elements of each tensor into the same tensor on every rank.</summary>
    public static void Broadcast(this ICommunicator world, IReadOnlyList<Tensor> tensors, int root = 0)
    {
        if (world.WorldSize == 1) return;
        foreach (var t in tensors)
        {
            if (world.CollectivesDevice == t.Backend && t.IsContiguous)
            {
                world.BroadcastOnDevice(t, root);
                continue;
            }
            var bytes = new byte[t.Numel * t.DType.SizeInBytes()];
            if (world.Rank == root) t.Backend.CopyToHost(t, bytes);
            world.Broadcast(bytes, root);
            if (world.Rank != root) t.Backend.CopyFromHost(bytes, t);
        }
    }
}
