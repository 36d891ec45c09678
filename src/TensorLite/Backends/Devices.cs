using TensorLite.Backends.Cpu;

namespace TensorLite;

/// <summary>A backend that manages its own device memory reports what it holds from the device, beyond the tensors the
/// ledger counts (a caching allocator keeps freed blocks).</summary>
public interface IDeviceAllocator
{
    /// <summary>Bytes currently taken from the device: live blocks plus blocks cached for reuse.</summary>
    long ReservedBytes { get; }

    /// <summary>The high-water mark of <see cref="ReservedBytes"/>: what the device had to provide.</summary>
    long PeakReservedBytes { get; }
}

/// <summary>
/// The devices a run can be placed on by name (`--device`). "cpu" is the managed CPU backend and always present; GPU
/// backends live in another assembly (kernels/TensorLite.Ilgpu) and register their names here, so the core library
/// does not depend on ILGPU. Each device's backend is created once, on first use, and shared by the whole process.
/// </summary>
public static class Devices
{
    /// <summary>Every name <see cref="Resolve"/> understands once the GPU backend is registered.</summary>
    public static readonly string[] Names = ["cpu", "cuda", "auto", "ilgpu-cpu"];

    private static readonly object Gate = new();
    private static readonly Dictionary<string, Lazy<IBackend>> Registered = new()
    {
        ["cpu"] = new(() => CpuBackend.Instance),
    };

    /// <summary>Makes <paramref name="name"/> resolvable; <paramref name="create"/> runs at most once, on first use, and
    /// throws <see cref="NotSupportedException"/> when the device is absent.</summary>
    public static void Register(string name, Func<IBackend> create)
    {
        lock (Gate) Registered.TryAdd(name, new Lazy<IBackend>(create, LazyThreadSafetyMode.ExecutionAndPublication));
    }

    /// <summary>
    /// The backend for a device name: cpu, cuda (fails when no CUDA device is visible), ilgpu-cpu (the GPU kernels
    /// emulated on ILGPU's CPU accelerator, one group thread at a time per core — for checking kernels on tiny runs,
    /// not for speed: docs/gpu.md, "The CPU emulator") or auto (cuda when a device is visible, otherwise cpu). <paramref name="note"/> says what was chosen and, for auto, why.
    /// </summary>
    public static IBackend Resolve(string name, out string note)
    {
        if (name == "auto")
        {
            if (TryCreate("cuda", out var cuda, out string why))
            {
                note = $"auto → cuda ({cuda.Description})";
                return cuda;
            }
            note = $"auto → cpu ({why})";
            return CpuBackend.Instance;
        }
        if (!Names.Contains(name))
            throw new TensorLiteException($"--device must be one of {string.Join(", ", Names)}, got '{name}'.");
        if (!TryCreate(name, out var backend, out string reason))
            throw new TensorLiteException($"--device {name}: {reason}");
        note = $"{name} ({backend.Description})";
        return backend;
    }

    private static bool TryCreate(string name, out IBackend backend, out string why)
    {
        Lazy<IBackend>? lazy;
        lock (Gate) Registered.TryGetValue(name, out lazy);
        backend = null!;
        if (lazy == null)
        {
            why = "this program was built without the GPU backend (TensorLite.Ilgpu)";
            return false;
        }
        try
        {
            backend = lazy.Value;
            why = "";
            return true;
        }
        catch (NotSupportedException e)
        {
            // Lazy keeps the exception, so every later call fails the same way without trying again.
            why = e.Message.TrimEnd('.');
            return false;
        }
    }
}
