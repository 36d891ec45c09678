namespace TensorLite.Distributed;

/// <summary>Where a process finds its communicator.</summary>
public static class Communicators
{
    /// <summary>MPI when this process is one of several ranks started by `mpirun`, otherwise <see cref="SingleProcess"/>.</summary>
    public static ICommunicator FromEnvironment() => MpiCommunicator.LaunchedByMpirun ? new MpiCommunicator() : SingleProcess.Instance;

    /// <summary>Rank <paramref name="root"/>'s string, on every rank.</summary>
    public static string Broadcast(this ICommunicator world, string value, int root) =>
        world.WorldSize == 1 ? value : System.Text.Encoding.UTF8.GetString(world.BroadcastPayload(System.Text.Encoding.UTF8.GetBytes(value), root));

    /// <summary>Rank <paramref name="root"/>'s bytes, of a length only the root knows, on every rank (the length goes
    /// first); the other ranks' <paramref name="payload"/> is ignored.</summary>
    public static byte[] BroadcastPayload(this ICommunicator world, byte[] payload, int root)
    {
        if (world.WorldSize == 1) return payload;
        Span<byte> length = stackalloc byte[8];
        if (world.Rank == root) BitConverter.TryWriteBytes(length, (long)payload.Length);
        world.Broadcast(length, root);
        if (world.Rank != root) payload = new byte[BitConverter.ToInt64(length)];
        world.Broadcast(payload, root);
        return payload;
    }
}
