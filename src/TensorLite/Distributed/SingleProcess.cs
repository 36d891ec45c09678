namespace TensorLite.Distributed;

/// <summary>A run of one process: rank 0 of 1, every collective leaves its buffer as it is.</summary>
public sealed class SingleProcess : ICommunicator
{
    /// <summary>The one instance (the class has no state).</summary>
    public static readonly SingleProcess Instance = new();

    private SingleProcess() { }

    /// <inheritdoc/>
    public int Rank => 0;
    /// <inheritdoc/>
    public int WorldSize => 1;
    /// <inheritdoc/>
    public string Description => "1 process";
    /// <inheritdoc/>
    public void AllReduceSum(Span<float> values) { }
    /// <inheritdoc/>
    public void AllReduceSum(Span<double> values) { }
    /// <inheritdoc/>
    public void Broadcast(Span<byte> data, int root) { }
    /// <inheritdoc/>
    public void Dispose() { }
}
