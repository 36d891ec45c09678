using TensorLite.Backends.Cpu;

namespace TensorLite;

/// <summary>Where new tensors are created when no input tensor decides it.</summary>
public static class Backend
{
    private static IBackend _default = CpuBackend.Instance;

    public static IBackend Default
    {
        get => _default;
        set => _default = value ?? throw new ArgumentNullException(nameof(value));
    }

    public static IBackend Cpu => CpuBackend.Instance;
}
