using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace TensorLite.Ilgpu;

// What a CUDA library (NCCL, see TensorLite.Distributed.NcclCommunicator) needs to work on this backend's tensors in
// place: the device, ILGPU's own CUDA context (ILGPU 1.5.3 creates one with cuCtxCreate; it is not the device's primary
// context) and device addresses. ILGPU queues all work on that context's default stream, so Synchronize (inherited from
// the backend) is the point after which a tensor's contents are final.
public sealed partial class IlgpuBackend : ICudaDevice
{
    public int CudaOrdinal => _accelerator is CudaAccelerator cuda ? cuda.DeviceId : -1;

    public int CudaDeviceCount => _accelerator is CudaAccelerator ? _context.GetCudaDevices().Count : 0;

    public nint CudaContext => _accelerator.NativePtr;

    public nint DevicePointer(Tensor tensor) => Bytes(tensor).LoadEffectiveAddressAsPtr();
}
