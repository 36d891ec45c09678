using TensorLite.Backends.Cpu;
using TensorLite.Backends.Meta;

namespace TensorLite.Optim.Offload;

/// <summary>
/// Copies between a device tensor and a host tensor of the same dtype and size, through the device backend's own
/// host copies (on the ILGPU backend a real device ↔ host transfer; on the CPU backend, where device and host are the
/// same memory, a memcpy). A host tensor on a meta backend (a memory plan) receives nothing: the plan only counts.
/// </summary>
internal static unsafe class HostCopy
{
    /// <summary>Copies <paramref name="device"/> (any layout) into the contiguous host tensor; returns the bytes moved.</summary>
    public static long ToHost(Tensor device, Tensor host)
    {
        Check(device, host);
        long bytes = Bytes(host);
        if (host.Backend is MetaBackend) return bytes;
        using var source = device.ContiguousNoGrad();
        source.Backend.CopyToHost(source, HostBytes(host));
        return bytes;
    }

    /// <summary>Copies the contiguous host tensor into the contiguous <paramref name="device"/> tensor; returns the bytes moved.</summary>
    public static long ToDevice(Tensor host, Tensor device)
    {
        Check(device, host);
        if (!device.IsContiguous) throw new ArgumentException($"An offloaded update writes contiguous device tensors, not {device.Describe()}.", nameof(device));
        long bytes = Bytes(host);
        if (host.Backend is MetaBackend) return bytes;
        device.Backend.CopyFromHost(HostBytes(host), device);
        return bytes;
    }

    private static long Bytes(Tensor t) => (long)t.Numel * t.DType.SizeInBytes();

    private static void Check(Tensor device, Tensor host)
    {
        if (device.DType != host.DType || device.Numel != host.Numel)
            throw new ArgumentException($"A host copy needs the same dtype and size on both sides, got {device.Describe()} and {host.Describe()}.");
        if (!host.IsContiguous || host.Backend is not (CpuBackend or MetaBackend))
            throw new ArgumentException($"The host side of an offload copy must be a contiguous CPU tensor, got {host.Describe()}.");
    }

    private static Span<byte> HostBytes(Tensor host) => new(CpuBackend.BytePtr(host), checked((int)Bytes(host)));
}
