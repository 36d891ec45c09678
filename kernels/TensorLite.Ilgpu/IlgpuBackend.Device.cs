namespace TensorLite.Ilgpu;

// The caching allocator's device footprint, which the trainer shows and writes to metrics next to the tensor ledger
// (IBackend.TrimCache, which empties its cache, is in IlgpuBackend.cs).
public sealed partial class IlgpuBackend : IDeviceAllocator
{
    public long ReservedBytes => Pool.ReservedBytes;
    public long PeakReservedBytes => Pool.PeakReservedBytes;
}
