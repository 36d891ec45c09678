using System.Runtime.InteropServices;

namespace TensorLite.Distributed;

/// <summary>Collectives on tensors of any backend: the elements travel through one host buffer of float32 (16-bit tensors
/// are widened for the sum and rounded back to nearest even), so every tensor of a call costs one collective in all.</summary>
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
        switch (t.DType)
        {
            case DType.Float32:
                t.Backend.CopyToHost(t, MemoryMarshal.AsBytes(destination));
                break;
            case DType.BFloat16 or DType.Float16:
                var bits = new ushort[t.Numel];
                t.Backend.CopyToHost(t, MemoryMarshal.AsBytes(bits.AsSpan()));
                for (int i = 0; i < bits.Length; i++)
                    destination[i] = t.DType == DType.BFloat16 ? HalfPrecision.BFloat16ToFloat(bits[i]) : HalfPrecision.Float16ToFloat(bits[i]);
                break;
            default:
                throw new InvalidOperationException($"All-reduce sums floating-point tensors, not {t.DType.Name()}.");
        }
    }

    private static void FromHost(ReadOnlySpan<float> source, Tensor t)
    {
        if (t.DType == DType.Float32)
        {
            t.Backend.CopyFromHost(MemoryMarshal.AsBytes(source), t);
            return;
        }
        var bits = new ushort[t.Numel];
        for (int i = 0; i < bits.Length; i++)
            bits[i] = t.DType == DType.BFloat16 ? HalfPrecision.FloatToBFloat16(source[i]) : HalfPrecision.FloatToFloat16(source[i]);
        t.Backend.CopyFromHost(MemoryMarshal.AsBytes(bits.AsSpan()), t);
    }
}
