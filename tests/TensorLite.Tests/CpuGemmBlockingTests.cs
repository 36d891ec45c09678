using TensorLite.Backends.Cpu;
using Xunit;

namespace TensorLite.Tests;

/// <summary>CpuGemm's block sizes as derived from the reported cache sizes.</summary>
public class CpuGemmBlockingTests
{
    [Theory]
    [InlineData("32K", 32L << 10)]
    [InlineData("1024K", 1L << 20)]
    [InlineData("32768K", 32L << 20)]
    [InlineData("2M", 2L << 20)]
    [InlineData("4096", 4096L)]
    [InlineData("", 0L)]
    [InlineData("big", 0L)]
    [InlineData("-1K", 0L)]
    public void ParsesSysfsSizes(string text, long bytes) =>
        Assert.Equal(bytes, CpuGemm.CacheSizes.ParseSize(text));

    [Fact]
    public void DetectReadsDataAndUnifiedLevelsAndSkipsInstructionCaches()
    {
        string root = Path.Combine(Path.GetTempPath(), "tl-cache-" + Guid.NewGuid().ToString("N"));
        try
        {
            Write(root, 0, "1", "Data", "48K");
            Write(root, 1, "1", "Instruction", "32K");
            Write(root, 2, "2", "Unified", "1024K");
            Write(root, 3, "3", "Unified", "32768K");
            Assert.Equal(new CpuGemm.CacheSizes(48 << 10, 1 << 20, 32 << 20), CpuGemm.CacheSizes.Detect(root));

            Directory.Delete(Path.Combine(root, "index3"), recursive: true);
            Assert.Equal(CpuGemm.CacheSizes.Fallback.L3, CpuGemm.CacheSizes.Detect(root).L3);
        }
        finally
        {
            if (Directory.Exists(root)) Directory.Delete(root, recursive: true);
        }
        Assert.Equal(CpuGemm.CacheSizes.Fallback, CpuGemm.CacheSizes.Detect(root));
    }

    static void Write(string root, int index, string level, string type, string size)
    {
        string dir = Path.Combine(root, $"index{index}");
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "level"), level + "\n");
        File.WriteAllText(Path.Combine(dir, "type"), type + "\n");
        File.WriteAllText(Path.Combine(dir, "size"), size + "\n");
    }

    [Theory]
    // Zen 3 (AVX2 6×16): the 32 KiB B micro-panel fills L1D; the A block half of L2
    [InlineData(32, 512, 32, 6, 16, 512, 126)]
    // Zen 4 (AVX-512 12×32, 32 KiB L1D)
    [InlineData(32, 1024, 32, 12, 32, 256, 504)]
    // Zen 5 (48 KiB L1D) with the 12×32 family
    [InlineData(48, 1024, 32, 12, 32, 384, 336)]
    // an implausibly large L1D figure is capped at kc = 512
    [InlineData(32 << 10, 2048, 60, 12, 32, 512, 504)]
    public void BlockSizesFollowTheCaches(int l1KiB, int l2KiB, int l3MiB, int mr, int nr, int kc, int mc)
    {
        var b = CpuGemm.Blocking.For(new CpuGemm.CacheSizes((long)l1KiB << 10, (long)l2KiB << 10, (long)l3MiB << 20), mr, nr);
        Assert.Equal(kc, b.KC);
        Assert.Equal(mc, b.MC);
        Assert.Equal(0, b.MC % mr);
        Assert.True((long)b.MC * b.KC * sizeof(float) <= ((long)l2KiB << 10) / 2);
        Assert.InRange(b.BBlockFloats, 256 << 10, 4 << 20);
    }

    [Fact]
    public void TinyCachesStillGiveOneTileOfRows()
    {
        // 4 KiB L1D: the 256 floor; half of a 16 KiB L2 holds one 6-row A micro-panel of 256 k steps
        var b = CpuGemm.Blocking.For(new CpuGemm.CacheSizes(4 << 10, 16 << 10, 0), 6, 16);
        Assert.Equal(256, b.KC);
        Assert.Equal(6, b.MC);
        Assert.Equal(256 << 10, b.BBlockFloats);
    }
}
