namespace TensorLite.Distributed;

/// <summary>
/// The processes of a data-parallel run and the collectives they use: every rank calls the same collectives in the same
/// order with buffers of the same length. Implementations wrap an existing collective engine (MPI, NCCL); a single process is
/// <see cref="SingleProcess"/>, for which every collective is the identity.
/// </summary>
public interface ICommunicator : IDisposable
{
    /// <summary>This process's index, 0 … <see cref="WorldSize"/> − 1; rank 0 writes the run folder.</summary>
    int Rank { get; }

    /// <summary>The number of processes.</summary>
    int WorldSize { get; }

    /// <summary>What the processes are and which engine connects them, for the run's header.</summary>
    string Description { get; }

    /// <summary>Replaces <paramref name="values"/> on every rank by the element-wise sum over all ranks. Every rank
    /// receives the same bits.</summary>
    void AllReduceSum(Span<float> values);

    /// <summary>The same for float64 values (losses and norms).</summary>
    void AllReduceSum(Span<double> values);

    /// <summary>Copies <paramref name="data"/> of rank <paramref name="root"/> into <paramref name="data"/> of every other rank.</summary>
    void Broadcast(Span<byte> data, int root);

    /// <summary>The backend whose tensors this communicator sums and broadcasts where they live, without a host copy
    /// (<see cref="NcclCommunicator"/> on a CUDA device); null (the default): tensors are staged through host buffers
    /// and the span collectives above.</summary>
    IBackend? CollectivesDevice => null;

    /// <summary>Replaces a contiguous float32 tensor of <see cref="CollectivesDevice"/> on every rank by the element-wise
    /// sum over all ranks, on the device.</summary>
    void AllReduceSumOnDevice(Tensor values) => throw new NotSupportedException($"{Description} sums host buffers only.");

    /// <summary>Copies rank <paramref name="root"/>'s contiguous tensor of <see cref="CollectivesDevice"/> into the same
    /// tensor of every other rank, on the device.</summary>
    void BroadcastOnDevice(Tensor values, int root) => throw new NotSupportedException($"{Description} broadcasts host buffers only.");
}
