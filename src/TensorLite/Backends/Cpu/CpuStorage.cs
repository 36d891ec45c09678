namespace TensorLite.Backends.Cpu;

/// <summary>Native (unmanaged, 64-byte aligned) memory rented from <see cref="CpuMemoryPool"/>, so tensors never
/// put pressure on the garbage collector and a training step reuses the same blocks every time.</summary>
internal sealed unsafe class CpuStorage : Storage
{
    internal CpuStorage(IBackend backend, long byteLength) : base(backend, byteLength)
    {
        Pointer = CpuMemoryPool.Rent(byteLength);
    }

    public byte* Pointer { get; private set; }

    protected override void Free(bool fromFinalizer)
    {
        byte* p = Pointer;
        Pointer = null;
        if (p != null) CpuMemoryPool.Return(p, ByteLength, toSystem: fromFinalizer);
    }
}
