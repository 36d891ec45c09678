using TensorLite.Backends.Cpu;

namespace TensorLite;

/// <summary>Where new tensors are created when no input tensor decides it.</summary>
public static class Backend
{
    private static IBackend _default = CpuBackend.Instance;
    [ThreadStatic] private static IBackend? _override;

    /// <summary>The process-wide default, unless this thread is inside <see cref="Use"/>.</summary>
    public static IBackend Default
    {
        get => _override ?? _default;
        set => _default = value ?? throw new ArgumentNullException(nameof(value));
    }

    /// <summary>Makes <paramref name="backend"/> the default on this thread until the scope is disposed (scopes nest);
    /// other threads keep theirs.</summary>
    public static Scope Use(IBackend backend)
    {
        ArgumentNullException.ThrowIfNull(backend);
        var previous = _override;
        _override = backend;
        return new Scope(previous);
    }

    /// <summary>Restores the previous default backend of this thread when disposed (from <see cref="Use"/>).</summary>
    public readonly struct Scope(IBackend? previous) : IDisposable
    {
        /// <summary>Makes the backend that was the default before <see cref="Use"/> the default again.</summary>
        public void Dispose() => _override = previous;
    }

    /// <summary>The CPU backend: pure managed SIMD kernels on every core, the default on every thread.</summary>
    public static IBackend Cpu => CpuBackend.Instance;

    /// <summary>The high-water mark of the CPU pool, which holds the host tensors of a run on any device (metrics).</summary>
    public static long CpuPoolPeakBytes => CpuMemoryPool.PeakReservedBytes;
}
