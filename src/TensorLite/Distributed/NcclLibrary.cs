using System.Runtime.InteropServices;

namespace TensorLite.Distributed;

/// <summary>NCCL's unique id (ncclUniqueId): 128 opaque bytes that rank 0 creates and every rank passes to
/// ncclCommInitRank.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct NcclUniqueId
{
    public const int Size = 128;
    public fixed byte Bytes[Size];
}

/// <summary>
/// The NCCL calls a data-parallel run needs, and the few CUDA driver calls that using NCCL next to ILGPU needs, loaded
/// at run time (no NuGet package exists for NCCL, and it is not installable on every machine): from the file that the
/// <see cref="PathVariable"/> environment variable names, else by the library's default names (libnccl.so.2 on the
/// loader's path). The CUDA driver (libcuda.so.1) comes with the NVIDIA driver wherever a CUDA device is.
/// A thin layer of function pointers, as <see cref="MpiCommunicator"/> does for Open MPI.
/// </summary>
internal sealed unsafe class NcclLibrary
{
    /// <summary>The environment variable that names libnccl.so.2 explicitly (every rank of an mpirun job on this
    /// machine inherits it).</summary>
    public const string PathVariable = "TENSORLITE_NCCL";

    private static readonly string[] DefaultNames = ["libnccl.so.2", "libnccl.so"];
    private const string DriverName = "libcuda.so.1";

    // ncclResult_t, ncclDataType_t and ncclRedOp_t values of nccl.h.
    public const int Success = 0, InProgress = 7;
    public const int Uint8 = 1, Float32 = 7, Sum = 0, ScalarHostImmediate = 1;
    // CUresult values of cuda.h.
    public const int CudaSuccess = 0, CudaNotReady = 600;
    public const uint StreamNonBlocking = 1; // CU_STREAM_NON_BLOCKING

    private static readonly Lazy<(NcclLibrary? Library, string? Error)> FromEnvironment =
        new(() => Load(Environment.GetEnvironmentVariable(PathVariable)));

    /// <summary>The library as this process finds it (loaded once), or null with <paramref name="error"/>: one sentence
    /// saying what is missing.</summary>
    public static NcclLibrary? TryGet(out string error)
    {
        var (library, why) = FromEnvironment.Value;
        error = why ?? "";
        return library;
    }

    /// <summary>Loads NCCL from <paramref name="explicitPath"/> (when given: that file only) or by its default names,
    /// and the CUDA driver; null with the reason when either is missing.</summary>
    public static (NcclLibrary? Library, string? Error) Load(string? explicitPath)
    {
        nint nccl = 0;
        if (!string.IsNullOrEmpty(explicitPath))
        {
            if (!NativeLibrary.TryLoad(explicitPath, out nccl))
                return (null, $"{PathVariable}={explicitPath} does not name a loadable NCCL library (libnccl.so.2).");
        }
        else if (!DefaultNames.Any(name => NativeLibrary.TryLoad(name, out nccl)))
            return (null, $"NCCL (libnccl.so.2) is not on the loader's path; set {PathVariable} to its file (e.g. site-packages/nvidia/nccl/lib/libnccl.so.2 of PyTorch's nvidia-nccl-cu12 wheel).");
        if (!NativeLibrary.TryLoad(DriverName, out nint driver))
            return (null, $"NCCL needs the CUDA driver ({DriverName}), which is not installed.");
        try
        {
            return (new NcclLibrary(nccl, driver), null);
        }
        catch (EntryPointNotFoundException e)
        {
            return (null, $"NCCL or the CUDA driver lacks a function TensorLite calls: {e.Message}");
        }
    }

    private NcclLibrary(nint nccl, nint driver)
    {
        nint N(string name) => NativeLibrary.GetExport(nccl, name);
        nint D(string name) => NativeLibrary.GetExport(driver, name);
        GetVersion = (delegate* unmanaged<int*, int>)N("ncclGetVersion");
        GetUniqueId = (delegate* unmanaged<NcclUniqueId*, int>)N("ncclGetUniqueId");
        CommInitRank = (delegate* unmanaged<nint*, int, NcclUniqueId, int, int>)N("ncclCommInitRank");
        AllReduce = (delegate* unmanaged<nint, nint, nuint, int, int, nint, nint, int>)N("ncclAllReduce");
        Broadcast = (delegate* unmanaged<nint, nint, nuint, int, int, nint, nint, int>)N("ncclBroadcast");
        CommDestroy = (delegate* unmanaged<nint, int>)N("ncclCommDestroy");
        CommAbort = (delegate* unmanaged<nint, int>)N("ncclCommAbort");
        CommGetAsyncError = (delegate* unmanaged<nint, int*, int>)N("ncclCommGetAsyncError");
        GetErrorString = (delegate* unmanaged<int, nint>)N("ncclGetErrorString");
        RedOpCreatePreMulSum = (delegate* unmanaged<int*, void*, int, int, nint, int>)N("ncclRedOpCreatePreMulSum");
        RedOpDestroy = (delegate* unmanaged<int, nint, int>)N("ncclRedOpDestroy");

        CuInit = (delegate* unmanaged<uint, int>)D("cuInit");
        CuDeviceGet = (delegate* unmanaged<int*, int, int>)D("cuDeviceGet");
        CuPrimaryCtxRetain = (delegate* unmanaged<nint*, int, int>)D("cuDevicePrimaryCtxRetain");
        CuPrimaryCtxRelease = (delegate* unmanaged<int, int>)D("cuDevicePrimaryCtxRelease_v2");
        CuCtxPushCurrent = (delegate* unmanaged<nint, int>)D("cuCtxPushCurrent_v2");
        CuCtxPopCurrent = (delegate* unmanaged<nint*, int>)D("cuCtxPopCurrent_v2");
        CuStreamCreate = (delegate* unmanaged<nint*, uint, int>)D("cuStreamCreate");
        CuStreamQuery = (delegate* unmanaged<nint, int>)D("cuStreamQuery");
        CuStreamDestroy = (delegate* unmanaged<nint, int>)D("cuStreamDestroy_v2");
        CuMemAlloc = (delegate* unmanaged<nint*, nuint, int>)D("cuMemAlloc_v2");
        CuMemFree = (delegate* unmanaged<nint, int>)D("cuMemFree_v2");
        CuMemcpyPeerAsync = (delegate* unmanaged<nint, nint, nint, nint, nuint, nint, int>)D("cuMemcpyPeerAsync");
        CuGetErrorString = (delegate* unmanaged<int, nint*, int>)D("cuGetErrorString");
        int version;
        CheckNccl(GetVersion(&version), "ncclGetVersion");
        // Since NCCL 2.9 the code is 10000·major + 100·minor + patch; before, 1000·major + 100·minor + patch.
        Version = version >= 10000 ? $"{version / 10000}.{version / 100 % 100}.{version % 100}" : $"{version / 1000}.{version / 100 % 10}.{version % 100}";
    }

    /// <summary>NCCL's version, e.g. 2.21.5.</summary>
    public string Version { get; }

    public readonly delegate* unmanaged<int*, int> GetVersion;
    public readonly delegate* unmanaged<NcclUniqueId*, int> GetUniqueId;
    public readonly delegate* unmanaged<nint*, int, NcclUniqueId, int, int> CommInitRank;
    /// <summary>ncclAllReduce(send, receive, count, datatype, op, comm, stream).</summary>
    public readonly delegate* unmanaged<nint, nint, nuint, int, int, nint, nint, int> AllReduce;
    /// <summary>ncclBroadcast(send, receive, count, datatype, root, comm, stream).</summary>
    public readonly delegate* unmanaged<nint, nint, nuint, int, int, nint, nint, int> Broadcast;
    public readonly delegate* unmanaged<nint, int> CommDestroy;
    public readonly delegate* unmanaged<nint, int> CommAbort;
    public readonly delegate* unmanaged<nint, int*, int> CommGetAsyncError;
    private readonly delegate* unmanaged<int, nint> GetErrorString;
    /// <summary>ncclRedOpCreatePreMulSum(op, scalar, datatype, residence, comm): a sum of each rank's values times the
    /// scalar (NCCL 2.11 and later).</summary>
    public readonly delegate* unmanaged<int*, void*, int, int, nint, int> RedOpCreatePreMulSum;
    public readonly delegate* unmanaged<int, nint, int> RedOpDestroy;

    public readonly delegate* unmanaged<uint, int> CuInit;
    public readonly delegate* unmanaged<int*, int, int> CuDeviceGet;
    public readonly delegate* unmanaged<nint*, int, int> CuPrimaryCtxRetain;
    public readonly delegate* unmanaged<int, int> CuPrimaryCtxRelease;
    public readonly delegate* unmanaged<nint, int> CuCtxPushCurrent;
    public readonly delegate* unmanaged<nint*, int> CuCtxPopCurrent;
    public readonly delegate* unmanaged<nint*, uint, int> CuStreamCreate;
    public readonly delegate* unmanaged<nint, int> CuStreamQuery;
    public readonly delegate* unmanaged<nint, int> CuStreamDestroy;
    public readonly delegate* unmanaged<nint*, nuint, int> CuMemAlloc;
    public readonly delegate* unmanaged<nint, int> CuMemFree;
    /// <summary>cuMemcpyPeerAsync(destination, its context, source, its context, bytes, stream).</summary>
    public readonly delegate* unmanaged<nint, nint, nint, nint, nuint, nint, int> CuMemcpyPeerAsync;
    private readonly delegate* unmanaged<int, nint*, int> CuGetErrorString;

    /// <summary>Throws a one-sentence <see cref="TensorLiteException"/> when an NCCL call failed.</summary>
    public void CheckNccl(int result, string call)
    {
        if (result != Success && result != InProgress)
            throw new TensorLiteException($"{call} failed: {Marshal.PtrToStringUTF8(GetErrorString(result))} (NCCL error {result}).");
    }

    /// <summary>Throws a one-sentence <see cref="TensorLiteException"/> when a CUDA driver call failed.</summary>
    public void CheckCuda(int result, string call)
    {
        if (result == CudaSuccess) return;
        nint text = 0;
        CuGetErrorString(result, &text);
        throw new TensorLiteException($"{call} failed: {(text == 0 ? "unknown error" : Marshal.PtrToStringUTF8(text))} (CUDA error {result}).");
    }
}
