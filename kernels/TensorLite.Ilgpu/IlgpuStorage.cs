using ILGPU;
using ILGPU.Runtime;

namespace TensorLite.Ilgpu;

/// <summary>Device memory of one ILGPU accelerator, rented from its backend's <see cref="IlgpuMemoryPool"/>.</summary>
public sealed class IlgpuStorage : Storage
{
    private readonly IlgpuMemoryPool _pool;
    private MemoryBuffer1D<byte, Stride1D.Dense>? _buffer;

    internal IlgpuStorage(IlgpuBackend backend, long byteLength) : base(backend, byteLength)
    {
        _pool = backend.Pool;
        _buffer = _pool.Rent(byteLength);
    }

    /// <summary>The whole buffer as bytes (its length is the pool's rounded size, at least <see cref="Storage.ByteLength"/>).</summary>
    public ArrayView<byte> View =>
        (_buffer ?? throw new ObjectDisposedException(nameof(IlgpuStorage))).View.AsContiguous();

    protected override void Free(bool fromFinalizer)
    {
        var b = _buffer;
        _buffer = null;
        if (b is not null) _pool.Return(b, fromFinalizer);
    }
}
