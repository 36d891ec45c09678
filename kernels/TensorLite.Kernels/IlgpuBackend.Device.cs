namespace TensorLite.Kernels;

// The caching allocator's device footprint, which the trainer shows and writes to metrics next to the tensor ledger.
public sealed partial class IlgpuBackend : IDeviceAllocator
{
    public long ReservedBytes => Pool.ReservedBytes;
    public long PeakReservedBytes => Pool.PeakReservedBytes;
    public void TrimCache() => Pool.TrimCache();
}
