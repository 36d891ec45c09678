namespace TensorLite;

/// <summary>A backend whose tensors live in CUDA device memory, as a CUDA library (NCCL) needs to see them: the device,
/// the driver context that owns the memory and each tensor's device address. The GPU backend (TensorLite.Ilgpu)
/// implements it; the core library never calls CUDA itself.</summary>
public interface ICudaDevice
{
    /// <summary>The CUDA device ordinal, or −1 when the backend does not run on CUDA (ILGPU's CPU accelerator).</summary>
    int CudaOrdinal { get; }

    /// <summary>How many CUDA devices this machine shows the backend (0 when it does not run on CUDA).</summary>
    int CudaDeviceCount { get; }

    /// <summary>The CUDA driver context (CUcontext) that owns the backend's memory.</summary>
    nint CudaContext { get; }

    /// <summary>The device address of <paramref name="tensor"/>'s first element (its storage's address plus its offset).</summary>
    nint DevicePointer(Tensor tensor);

    /// <summary>Waits until every operation queued on the device has finished.</summary>
    void Synchronize();
}
