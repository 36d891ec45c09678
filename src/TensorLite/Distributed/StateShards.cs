namespace TensorLite.Distributed;

/// <summary>
/// Optimizer-state sharding (ZeRO stage 1, Rajbhandari et al. 2020): each rank keeps the optimizer state of its share of
/// the parameters and updates only those; the updated parameters are then broadcast by their owners, so every rank
/// still holds all weights and all (summed) gradients. The shares are balanced by element count, filled greedily in
/// parameter order — the same on every rank, for a given number of ranks.
/// </summary>
public sealed class StateShards
{
    private readonly int[] _owner;

    /// <summary>Assigns each of <paramref name="parameters"/> to one of <paramref name="worldSize"/> ranks (at least
    /// 1), balancing element counts.</summary>
    public StateShards(IReadOnlyList<Tensor> parameters, int worldSize)
    {
        if (worldSize < 1) throw new ArgumentOutOfRangeException(nameof(worldSize));
        WorldSize = worldSize;
        _owner = new int[parameters.Count];
        var load = new long[worldSize];
        for (int i = 0; i < parameters.Count; i++)
        {
            int least = 0;
            for (int r = 1; r < worldSize; r++)
                if (load[r] < load[least]) least = r;
            _owner[i] = least;
            load[least] += parameters[i].Numel;
        }
    }

    /// <summary>The number of ranks the parameters are shared among.</summary>
    public int WorldSize { get; }

    /// <summary>The rank that keeps the state of parameter <paramref name="index"/> and updates it.</summary>
    public int Owner(int index) => _owner[index];

    /// <summary>The parameter an optimizer state entry belongs to: entries are named "{index}.{name}" or "master.{index}"
    /// (<see cref="Optim.Optimizer.StateTensors"/>).</summary>
    public static int ParameterOf(string stateName)
    {
        const string master = "master.";
        if (stateName.StartsWith(master, StringComparison.Ordinal)) return int.Parse(stateName.AsSpan(master.Length), System.Globalization.CultureInfo.InvariantCulture);
        int dot = stateName.IndexOf('.');
        if (dot > 0 && int.TryParse(stateName.AsSpan(0, dot), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int index)) return index;
        throw new FormatException($"Optimizer state entry '{stateName}' names no parameter.");
    }

    /// <summary>Rank 0 receives every rank's state entries (<paramref name="own"/>: each rank's entries for the
    /// parameters it owns), one parameter at a time through a broadcast from its owner, so no message is larger than one
    /// parameter's state: what a checkpoint of a sharded run writes. Returns host (CPU) copies of the other ranks'
    /// entries, with rank 0's own, on rank 0; null on the other ranks.</summary>
    public List<(string Name, Tensor Tensor)>? GatherToRankZero(ICommunicator world, IReadOnlyList<(string Name, Tensor Tensor)> own)
    {
        List<(string, Tensor)>? gathered = world.Rank == 0 ? [.. own] : null;
        var byParameter = own.ToLookup(e => ParameterOf(e.Name));
        for (int i = 0; i < _owner.Length; i++)
        {
            int sender = _owner[i];
            if (sender == 0) continue;
            var payload = world.BroadcastPayload(world.Rank == sender ? Serialize([.. byParameter[i]]) : [], sender);
            gathered?.AddRange(Deserialize(payload));
        }
        return gathered;
    }

    /// <summary>Every rank receives, from the owner of each parameter in <paramref name="indices"/> (the same list on
    /// every rank), the entries <paramref name="export"/> gives for it, and hands them to <paramref name="import"/> (host
    /// copies, disposed afterwards). One message per owner that has any: rank 0's parameters first, then rank 1's, …,
    /// each owner's in the order of <paramref name="indices"/>, so the order is fixed and the receivers get the owner's
    /// bits.</summary>
    public void BroadcastFromOwners(ICommunicator world, IReadOnlyList<int> indices, Func<int, IEnumerable<(string Name, Tensor Tensor)>> export,
        Action<IReadOnlyList<(string Name, Tensor Tensor)>> import)
    {
        for (int sender = 0; sender < WorldSize; sender++)
        {
            var owned = indices.Where(i => _owner[i] == sender).ToList();
            if (owned.Count == 0) continue;
            var payload = world.BroadcastPayload(world.Rank == sender ? Serialize([.. owned.SelectMany(export)]) : [], sender);
            if (world.Rank == sender) continue;
            var received = Deserialize(payload);
            try { import(received); }
            finally { foreach (var (_, t) in received) t.Dispose(); }
        }
    }

    private static byte[] Serialize(IReadOnlyList<(string Name, Tensor Tensor)> entries)
    {
        using var stream = new MemoryStream();
        using var w = new BinaryWriter(stream);
        w.Write(entries.Count);
        foreach (var (name, t) in entries)
        {
            w.Write(name);
            w.Write((int)t.DType);
            w.Write(t.Shape.Length);
            foreach (int d in t.Shape) w.Write(d);
            var bytes = new byte[t.Numel * t.DType.SizeInBytes()];
            using (var c = t.ContiguousNoGrad()) c.Backend.CopyToHost(c, bytes);
            w.Write(bytes);
        }
        w.Flush();
        return stream.ToArray();
    }

    private static List<(string Name, Tensor Tensor)> Deserialize(byte[] payload)
    {
        using var r = new BinaryReader(new MemoryStream(payload));
        int count = r.ReadInt32();
        var result = new List<(string Name, Tensor Tensor)>(count);
        for (int e = 0; e < count; e++)
        {
            string name = r.ReadString();
            var dtype = (DType)r.ReadInt32();
            var shape = new int[r.ReadInt32()];
            for (int d = 0; d < shape.Length; d++) shape[d] = r.ReadInt32();
            var t = Tensor.Empty(shape, dtype, Backend.Cpu);
            t.Backend.CopyFromHost(r.ReadBytes((int)(t.Numel * dtype.SizeInBytes())), t);
            result.Add((name, t));
        }
        return result;
    }
}
