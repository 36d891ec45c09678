using TensorLite.Numerics;
using Xunit;

namespace TensorLite.Tests;

/// <summary>CpuParallel.For hands chunks of a loop to the caller and helper threads by ticket: every item must run
/// exactly once whatever the cut, a body's exception must reach the caller as itself, and loops started inside a loop
/// or from several threads at once must neither deadlock nor mix up their items.</summary>
public class CpuParallelTests
{
    [Theory]
    [InlineData(2, 1L << 20)]      // two items, each large: one per chunk
    [InlineData(1000, 64)]         // more items than chunks
    [InlineData(100_000, 1)]       // many cheap items
    [InlineData(7, 1L << 14)]      // fewer items than 4 chunks per thread would want
    [InlineData(50, 1)]            // below the parallel threshold: runs inline
    public void EveryItemRunsExactlyOnce(int count, long workPerItem)
    {
        var hits = new int[count];
        CpuParallel.For(count, workPerItem, (start, end) =>
        {
            Assert.True(0 <= start && start < end && end <= count, $"range [{start}, {end}) of {count}");
            for (int i = start; i < end; i++) Interlocked.Increment(ref hits[i]);
        });
        Assert.All(hits, h => Assert.Equal(1, h));
    }

    [Fact]
    public void ABodysExceptionReachesTheCallerAsItself()
    {
        var e = Assert.Throws<InvalidOperationException>(() =>
            CpuParallel.For(1000, 1 << 10, (start, end) =>
            {
                if (start <= 500 && 500 < end) throw new InvalidOperationException("item 500");
            }));
        Assert.Equal("item 500", e.Message);
        // The helpers are still usable afterwards.
        EveryItemRunsExactlyOnce(1000, 64);
    }

    [Fact]
    public void NestedLoopsRunInlineAndCoverEveryItem()
    {
        const int outer = 16, inner = 4096;
        var hits = new int[outer * inner];
        CpuParallel.For(outer, 1L << 16, (o0, o1) =>
        {
            for (int o = o0; o < o1; o++)
            {
                int row = o;
                CpuParallel.For(inner, 64, (i0, i1) =>
                {
                    for (int i = i0; i < i1; i++) Interlocked.Increment(ref hits[row * inner + i]);
                });
            }
        });
        Assert.All(hits, h => Assert.Equal(1, h));
    }

    [Fact]
    public void ConcurrentCallersKeepTheirOwnItems()
    {
        const int callers = 4, count = 20_000, rounds = 50;
        var sums = new long[callers];
        var threads = Enumerable.Range(0, callers).Select(c => new Thread(() =>
        {
            for (int r = 0; r < rounds; r++)
            {
                var hits = new int[count];
                CpuParallel.For(count, 8, (start, end) =>
                {
                    for (int i = start; i < end; i++) Interlocked.Increment(ref hits[i]);
                });
                if (hits.All(h => h == 1)) sums[c] += count; // checked on the test's thread below
            }
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        Assert.All(sums, s => Assert.Equal((long)count * rounds, s));
    }
}
