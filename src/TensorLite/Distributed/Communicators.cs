namespace TensorLite.Distributed;

/// <summary>Where a process finds its communicator.</summary>
public static class Communicators
{
    /// <summary>MPI when this process is one of several ranks started by `mpirun`, otherwise <see cref="SingleProcess"/>.</summary>
    public static ICommunicator FromEnvironment() => MpiCommunicator.LaunchedByMpirun ? new MpiCommunicator() : SingleProcess.Instance;

    /// <summary>Rank <paramref name="root"/>'s string, on every rank.</summary>
    public static string Broadcast(this ICommunicator world, string value, int root)
    {
        if (world.WorldSize == 1) return value;
        Span<byte> length = stackalloc byte[4];
        var bytes = System.Text.Encoding.UTF8.GetBytes(value);
        if (world.Rank == root) BitConverter.TryWriteBytes(length, bytes.Length);
        world.Broadcast(length, root);
        if (world.Rank != root) bytes = new byte[BitConverter.ToInt32(length)];
        world.Broadcast(bytes, root);
        return System.Text.Encoding.UTF8.GetString(bytes);
    }
}
