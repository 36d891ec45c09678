namespace TensorLite.Memory;

/// <summary>
/// How a caching allocator rounds block sizes and which freed blocks it keeps for reuse (by exact rounded size). The
/// CPU pool and the GPU backend's device pool each follow one, and the meta backend replays the same policy, so the
/// memory planner predicts what the allocator holds, not only what the tensors need.
/// </summary>
public sealed record BlockCachePolicy(string Name, long Granule, long LargeBlockBytes, long CacheLimitBytes)
{
    /// <summary>The CPU pool: 64-byte blocks; blocks of 256 MiB or more go back to the system, and the cache holds at
    /// most 512 MiB (at LLaMA-7B scale an unbounded cache holds gigabytes other sizes cannot reuse, while a small
    /// model's whole step fits under the limit, so its warm steps never allocate).</summary>
    public static readonly BlockCachePolicy Cpu = new("CPU pool", 64, 256L << 20, 512L << 20);

    /// <summary>The device pool of the GPU backend: 256-byte blocks, every freed block kept (device allocations are
    /// slow and synchronize); the pool gives its cache back when the device runs out and retries, and on
    /// <see cref="IBackend.TrimCache"/>.</summary>
    public static readonly BlockCachePolicy Device = new("device pool", 256, long.MaxValue, long.MaxValue);

    /// <summary><paramref name="bytes"/> rounded up to the pool's granule (at least one granule).</summary>
    public long RoundUp(long bytes) => Math.Max(Granule, (bytes + Granule - 1) / Granule * Granule);

    /// <summary>Whether a freed block of (rounded) <paramref name="size"/> is kept, given the bytes cached already.</summary>
    public bool Caches(long size, long cachedBytes) => size < LargeBlockBytes && cachedBytes + size <= CacheLimitBytes;
}
