using TensorLite.Backends.Cpu;
using TensorLite.Backends.Meta;

namespace TensorLite.Optim.Offload;

/// <summary>
/// Copies between a device tensor and a host tensor of the same dtype and size, through the device backend's own
/// host copies (on the ILGPU backend a real device ↔ host transfer; on the CPU backend, where device and host are the
/// same memory, a memcpy), or through a page-locked staging buffer where the device offers one
/// (<see cref="PageLockedStaging"/>). A host tensor on a meta backend (a memory plan) receives nothing: the plan only counts.
/// </summary>
internal static unsafe class HostCopy
{
    /// <summary>Copies <paramref name="device"/> (any layout) into the contiguous host tensor, through
    /// <paramref name="staging"/>'s page-locked buffer when it has one for the device; returns the bytes moved.</summary>
    public static long ToHost(Tensor device, Tensor host, PageLockedStaging? staging = null)
    {
        Check(device, host);
        long bytes = Bytes(host);
        if (host.Backend is MetaBackend) return bytes;
        using var source = device.ContiguousNoGrad();
        var target = HostBytes(host);
        if (staging?.For(source.Backend, bytes) is { } pinned)
        {
            for (int offset = 0; offset < target.Length; offset += pinned.Span.Length)
            {
                int count = Math.Min(pinned.Span.Length, target.Length - offset);
                pinned.CopyFromDevice(source, offset, count);
                pinned.Span[..count].CopyTo(target[offset..]);
            }
            return bytes;
        }
        source.Backend.CopyToHost(source, target);
        return bytes;
    }

    /// <summary>Copies the contiguous host tensor into the contiguous <paramref name="device"/> tensor, through
    /// <paramref name="staging"/>'s page-locked buffer when it has one for the device; returns the bytes moved.</summary>
    public static long ToDevice(Tensor host, Tensor device, PageLockedStaging? staging = null)
    {
        Check(device, host);
        if (!device.IsContiguous) throw new ArgumentException($"An offloaded update writes contiguous device tensors, not {device.Describe()}.", nameof(device));
        long bytes = Bytes(host);
        if (host.Backend is MetaBackend) return bytes;
        var source = HostBytes(host);
        if (staging?.For(device.Backend, bytes) is { } pinned)
        {
            for (int offset = 0; offset < source.Length; offset += pinned.Span.Length)
            {
                int count = Math.Min(pinned.Span.Length, source.Length - offset);
                source.Slice(offset, count).CopyTo(pinned.Span);
                pinned.CopyToDevice(device, offset, count);
            }
            return bytes;
        }
        device.Backend.CopyFromHost(source, device);
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
