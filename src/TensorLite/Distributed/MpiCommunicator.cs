using System.Runtime.InteropServices;

namespace TensorLite.Distributed;

/// <summary>
/// The ranks of an `mpirun` job, connected by Open MPI (libmpi.so.40, loaded at run time so the library builds and runs
/// without it). A thin layer over the five MPI calls a data-parallel run needs, instead of MPI.NET, whose last release
/// targets Microsoft MPI and the .NET Framework. Open MPI's handles (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, …) are the
/// addresses of exported globals, read from the library. MPI's default error handler aborts the whole job on a failure,
/// so a rank that dies makes `mpirun` stop the others instead of leaving them waiting in a collective.
/// </summary>
public sealed unsafe class MpiCommunicator : ICommunicator
{
    private const string LibraryName = "libmpi.so.40";
    private const int ThreadSerialized = 2; // MPI_THREAD_SERIALIZED: calls may come from several threads, never at once
    private static readonly nint InPlace = 1; // Open MPI's MPI_IN_PLACE

    private readonly nint _library, _comm, _float, _double, _byte, _sum;
    private readonly delegate* unmanaged<nint, nint, int, nint, nint, nint, int> _allreduce;
    private readonly delegate* unmanaged<nint, int, nint, int, nint, int> _bcast;
    private readonly delegate* unmanaged<int> _finalize;
    private readonly delegate* unmanaged<nint, int, int> _abort;
    private bool _disposed;

    /// <summary>Whether this process was started by Open MPI's launcher as one of several ranks.</summary>
    public static bool LaunchedByMpirun =>
        int.TryParse(Environment.GetEnvironmentVariable("OMPI_COMM_WORLD_SIZE"), out int size) && size > 1;

    /// <summary>This process's index among the ranks of the job on its own machine (0 outside `mpirun`): which of the
    /// machine's GPUs it takes.</summary>
    public static int LocalRank =>
        int.TryParse(Environment.GetEnvironmentVariable("OMPI_COMM_WORLD_LOCAL_RANK"), out int rank) && rank >= 0 ? rank : 0;

    /// <summary>How many ranks of the job run on this process's machine (1 outside `mpirun`).</summary>
    public static int LocalSize =>
        int.TryParse(Environment.GetEnvironmentVariable("OMPI_COMM_WORLD_LOCAL_SIZE"), out int size) && size > 0 ? size : 1;

    /// <summary>Initializes MPI; throws a one-sentence <see cref="TensorLiteException"/> when Open MPI is not installed.</summary>
    public MpiCommunicator()
    {
        if (!NativeLibrary.TryLoad(LibraryName, out _library))
            throw new TensorLiteException($"Data-parallel training needs Open MPI ({LibraryName}), which is not installed; on Debian or Ubuntu: apt-get install openmpi-bin.");
        nint Export(string name) => NativeLibrary.GetExport(_library, name);
        _comm = Export("ompi_mpi_comm_world");
        _float = Export("ompi_mpi_float");
        _double = Export("ompi_mpi_double");
        _byte = Export("ompi_mpi_byte");
        _sum = Export("ompi_mpi_op_sum");
        _allreduce = (delegate* unmanaged<nint, nint, int, nint, nint, nint, int>)Export("MPI_Allreduce");
        _bcast = (delegate* unmanaged<nint, int, nint, int, nint, int>)Export("MPI_Bcast");
        _finalize = (delegate* unmanaged<int>)Export("MPI_Finalize");
        _abort = (delegate* unmanaged<nint, int, int>)Export("MPI_Abort");
        int provided;
        Check(((delegate* unmanaged<nint, nint, int, int*, int>)Export("MPI_Init_thread"))(0, 0, ThreadSerialized, &provided), "MPI_Init_thread");
        if (provided < ThreadSerialized)
            throw new TensorLiteException($"Open MPI provides thread level {provided}; data-parallel training needs MPI_THREAD_SERIALIZED ({ThreadSerialized}).");
        int rank, size;
        Check(((delegate* unmanaged<nint, int*, int>)Export("MPI_Comm_rank"))(_comm, &rank), "MPI_Comm_rank");
        Check(((delegate* unmanaged<nint, int*, int>)Export("MPI_Comm_size"))(_comm, &size), "MPI_Comm_size");
        Rank = rank;
        WorldSize = size;
    }

    /// <inheritdoc/>
    public int Rank { get; }
    /// <inheritdoc/>
    public int WorldSize { get; }
    /// <inheritdoc/>
    public string Description => $"{WorldSize} processes (Open MPI), this is rank {Rank}";

    // MPI counts are int: long buffers go in chunks (each chunk is reduced element-wise, so chunking changes no result).
    private const int Chunk = 1 << 28;

    /// <inheritdoc/>
    public void AllReduceSum(Span<float> values)
    {
        fixed (float* p = values)
            for (long done = 0; done < values.Length; done += Chunk)
                Check(_allreduce(InPlace, (nint)(p + done), (int)Math.Min(Chunk, values.Length - done), _float, _sum, _comm), "MPI_Allreduce");
    }

    /// <inheritdoc/>
    public void AllReduceSum(Span<double> values)
    {
        fixed (double* p = values)
            for (long done = 0; done < values.Length; done += Chunk)
                Check(_allreduce(InPlace, (nint)(p + done), (int)Math.Min(Chunk, values.Length - done), _double, _sum, _comm), "MPI_Allreduce");
    }

    /// <inheritdoc/>
    public void Broadcast(Span<byte> data, int root)
    {
        fixed (byte* p = data)
            for (long done = 0; done < data.Length; done += Chunk)
                Check(_bcast((nint)(p + done), (int)Math.Min(Chunk, data.Length - done), _byte, root, _comm), "MPI_Bcast");
    }

    private static void Check(int code, string call)
    {
        if (code != 0) throw new TensorLiteException($"{call} failed with MPI error code {code}.");
    }

    /// <summary>Ends every rank of the job with <paramref name="exitCode"/>: what a rank does after its own error has been
    /// reported, since the others would otherwise wait for it in their next collective.</summary>
    public void Abort(int exitCode)
    {
        _disposed = true;
        _abort(_comm, exitCode);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _finalize();
    }
}
