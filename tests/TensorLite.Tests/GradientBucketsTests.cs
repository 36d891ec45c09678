using TensorLite.Distributed;
using Xunit;

namespace TensorLite.Tests;

/// <summary>
/// <see cref="GradientBuckets"/> with a stand-in communicator (two ranks holding the same values: every sum doubles):
/// the buckets depend only on the sequence of tensor sizes, the overlapped and the serial schedule run the same
/// collectives on the same values, and with overlap a bucket is summed on another thread while the caller goes on.
/// </summary>
public sealed class GradientBucketsTests
{
    /// <summary>Doubles every buffer and records its values and the thread it was summed on; optionally holds each sum
    /// until the test opens <see cref="Gate"/>.</summary>
    private sealed class RecordingTwins(bool gated = false) : ICommunicator
    {
        public List<(float[] Values, int Thread)> Sums { get; } = [];
        public ManualResetEventSlim Started { get; } = new();
        public ManualResetEventSlim Gate { get; } = new(!gated);
        public int Rank => 0;
        public int WorldSize => 2;
        public string Description => "recording twins";

        public void AllReduceSum(Span<float> values)
        {
            Started.Set();
            if (!Gate.Wait(TimeSpan.FromSeconds(60))) throw new TimeoutException("the test never opened the gate");
            lock (Sums) Sums.Add((values.ToArray(), Environment.CurrentManagedThreadId));
            foreach (ref var v in values) v *= 2;
        }

        public void AllReduceSum(Span<double> values) => throw new NotSupportedException();
        public void Broadcast(Span<byte> data, int root) => throw new NotSupportedException();
        public void Dispose() { }
    }

    private static Tensor[] Sequence() =>
        [.. new[] { 5, 3, 4, 9, 2 }.Select((n, i) => Tensor.FromArray(Enumerable.Range(0, n).Select(k => i + k / 8f).ToArray(), n))];

    private static RecordingTwins Sum(Tensor[] tensors, bool overlap, out GradientBuckets buckets)
    {
        var world = new RecordingTwins();
        buckets = new GradientBuckets(world, bucketElements: 8, overlap);
        foreach (var t in tensors) buckets.Add(t);
        buckets.Add(null); // a parameter without gradient is skipped
        Assert.Equal(3, buckets.BucketsStarted); // the last bucket, [2], is closed by Complete
        buckets.Complete();
        return world;
    }

    [Fact]
    public void Overlapped_and_serial_sums_run_the_same_buckets_on_the_same_values()
    {
        var serialTensors = Sequence();
        var overlapTensors = Sequence();
        var expected = serialTensors.Select(t => t.ToArray().Select(v => 2 * v).ToArray()).ToArray();
        var serial = Sum(serialTensors, overlap: false, out var serialBuckets);
        var overlapped = Sum(overlapTensors, overlap: true, out var overlapBuckets);
        using (serialBuckets)
        using (overlapBuckets)
        {
            // Greedy in order, up to 8 elements: [5 3] is full, 4 + 9 overflows, 9 alone is over the limit, then [2].
            Assert.Equal([8, 4, 9, 2], serial.Sums.Select(s => s.Values.Length));
            Assert.Equal(serial.Sums.Select(s => s.Values), overlapped.Sums.Select(s => s.Values));
            for (int i = 0; i < expected.Length; i++)
            {
                Assert.Equal(expected[i], serialTensors[i].ToArray());
                Assert.Equal(expected[i], overlapTensors[i].ToArray());
            }
            Assert.All(serial.Sums, s => Assert.Equal(Environment.CurrentManagedThreadId, s.Thread));
            Assert.All(overlapped.Sums, s => Assert.NotEqual(Environment.CurrentManagedThreadId, s.Thread));
            Assert.Equal((4L, 4L), (serialBuckets.BucketsStarted, serialBuckets.BucketsSummed));
            Assert.Equal((4L, 4L), (overlapBuckets.BucketsStarted, overlapBuckets.BucketsSummed));
        }
    }

    [Fact]
    public void With_overlap_a_full_bucket_is_summed_while_the_caller_goes_on_and_written_back_on_its_thread()
    {
        var world = new RecordingTwins(gated: true);
        using var buckets = new GradientBuckets(world, bucketElements: 4, overlap: true);
        using var first = Tensor.FromArray([1f, 2f, 3f, 4f], 4);
        using var second = Tensor.FromArray([5f], 1);
        buckets.Add(first); // fills its bucket: handed to the worker, whose sum now waits at the gate
        Assert.True(world.Started.Wait(TimeSpan.FromSeconds(60)), "the first bucket's sum should start before Complete");
        buckets.Add(second); // the caller is not blocked by the sum in flight
        Assert.Equal([1f, 2f, 3f, 4f], first.ToArray()); // sums are written back only on the caller's thread
        world.Gate.Set();
        buckets.Complete();
        Assert.Equal([2f, 4f, 6f, 8f], first.ToArray());
        Assert.Equal([10f], second.ToArray());
    }
}
