using System.Runtime.InteropServices;

namespace TensorLite.Distributed;

/// <summary>Collectives on tensors of any backend: the elements travel through one host buffer of float32 (16-bit tensors
/// are widened for the sum and rounded back to nearest by the backend), one collective per bucket of tensors.</summary>
public static class TensorCollectives
{
    /// <summary>Tensors are packed into buckets of about this many elements (64 MiB of float32): one collective per
    /// bucket instead of one per tensor, without a host copy of every gradient at once.</summary>
    public const int BucketElements = 1 << 24;

    /// <summary>Sums each tensor over all ranks, in place. Tensors are packed into buckets in the given order, so ranks
    /// must pass tensors of the same shapes in the same order.</summary>
    public static void AllReduceSum(this ICommunicator world, IReadOnlyList<Tensor> tensors)
    {
        if (world.WorldSize == 1) return;
        int first = 0;
        while (first < tensors.Count)
        {
            long elements = tensors[first].Numel;
            int end = first + 1;
            while (end < tensors.Count && elements + tensors[end].Numel <= BucketElements) elements += tensors[end++].Numel;
            ReduceBucket(world, tensors, first, end, elements);
            first = end;
        }
    }

    private static void ReduceBucket(ICommunicator world, IReadOnlyList<Tensor> tensors, int first, int end, long elements)
    {
        var host = new float[elements];
        long offset = 0;
        for (int i = first; i < end; i++)
        {
            if (!tensors[i].IsContiguous) throw new InvalidOperationException("All-reduce needs contiguous tensors.");
            ToHost(tensors[i], host.AsSpan((int)offset, (int)tensors[i].Numel));
            offset += tensors[i].Numel;
        }
        world.AllReduceSum(host);
        offset = 0;
        for (int i = first; i < end; i++)
        {
            FromHost(host.AsSpan((int)offset, (int)tensors[i].Numel), tensors[i]);
            offset += tensors[i].Numel;
        }
    }

    /// <summary>Sums one tensor over all ranks, in place.</summary>
    public static void AllReduceSum(this ICommunicator world, Tensor tensor) => world.AllReduceSum([tensor]);

    /// <summary>Copies rank <paramref name="root"/>'s elements of each tensor into the same tensor on every rank.</summary>
    public static void Broadcast(this ICommunicator world, IReadOnlyList<Tensor> tensors, int root = 0)
    {
        if (world.WorldSize == 1) return;
        foreach (var t in tensors)
        {
            var bytes = new byte[t.Numel * t.DType.SizeInBytes()];
            if (world.Rank == root) t.Backend.CopyToHost(t, bytes);
            world.Broadcast(bytes, root);
            if (world.Rank != root) t.Backend.CopyFromHost(bytes, t);
        }
    }

    private static void ToHost(Tensor t, Span<float> destination)
    {
        if (!t.DType.IsFloatingPoint()) throw new InvalidOperationException($"All-reduce sums floating-point tensors, not {t.DType.Name()}.");
        using var f = t.DType == DType.Float32 ? t.Detach() : t.To(DType.Float32);
        f.Backend.CopyToHost(f, MemoryMarshal.AsBytes(destination));
    }

    /// <summary>Writes the sums back; a 16-bit tensor receives them rounded to nearest (the backend's own conversion).</summary>
    private static void FromHost(ReadOnlySpan<float> source, Tensor t)
    {
        if (t.DType == DType.Float32)
        {
            t.Backend.CopyFromHost(MemoryMarshal.AsBytes(source), t);
            return;
        }
        using var f = Tensor.FromSpan(source, t.Shape, DType.Float32, t.Backend);
        t.Backend.Copy(f, t);
    }
}
