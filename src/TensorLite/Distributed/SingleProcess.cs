namespace TensorLite.Distributed;

/// <summary>A run of one process: rank 0 of 1, every collective leaves its buffer as it is.</summary>
public sealed class SingleProcess : ICommunicator
{
    public static readonly SingleProcess Instance = new();

    private SingleProcess() { }

    public int Rank => 0;
    public int WorldSize => 1;
    public string Description => "1 process";
    public void AllReduceSum(Span<float> values) { }
    public void AllReduceSum(Span<double> values) { }
    public void Broadcast(Span<byte> data, int root) { }
    public void Dispose() { }
}
