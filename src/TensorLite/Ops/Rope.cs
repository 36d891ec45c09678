using TensorLite.Autograd;

namespace TensorLite;

public sealed partial class Tensor
{
    /// <summary>
    /// Rotary position embedding of x [batch, heads, seq, headDim] (headDim even) in HF LLaMA's rotate_half
    /// convention: the pairs are (i, i + headDim/2), inv_freq[i] = theta^(−2i/headDim) and the angle of
    /// position p is (p + <paramref name="positionOffset"/>)·inv_freq[i]. Backward is the inverse rotation.
    /// A bfloat16 or float16 x is rotated in float32 and the result (and x's gradient) rounded back to x's dtype.
    /// <paramref name="inverseFrequencies"/> (headDim/2 values, e.g. a checkpoint's rope_scaling) replaces theta's; the
    /// tables of one array are cached by its identity, so keep the array unchanged.
    /// </summary>
    public Tensor Rope(int positionOffset = 0, float theta = 10000f, float[]? inverseFrequencies = null)
    {
        const string op = "rope";
        RequireFloatingPoint(this, op);
        if (Rank != 4)
            throw new ShapeMismatchException($"{op}: input must be [batch, heads, seq, headDim], got shape {ShapeMath.Format(Shape)}.");
        int seq = _shape[2], headDim = _shape[3];
        if (headDim == 0 || headDim % 2 != 0)
            throw new ShapeMismatchException($"{op}: headDim must be even and positive, got {headDim} in shape {ShapeMath.Format(Shape)}.");
        if (positionOffset < 0)
            throw new ArgumentOutOfRangeException(nameof(positionOffset), $"{op}: positionOffset must be non-negative, got {positionOffset}.");
        if (!(theta > 0) || float.IsInfinity(theta))
            throw new ArgumentException($"{op}: theta must be a finite positive number, got {theta}.", nameof(theta));
        if ((long)seq + positionOffset > int.MaxValue)
            throw new ArgumentOutOfRangeException(nameof(positionOffset), $"{op}: positions up to {(long)seq + positionOffset} exceed the int range.");
        if (inverseFrequencies != null && inverseFrequencies.Length != headDim / 2)
            throw new ArgumentException($"{op}: {inverseFrequencies.Length} inverse frequencies given for headDim {headDim} (needs {headDim / 2}).", nameof(inverseFrequencies));

        var backend = Backend;
        var (cos, sin) = RopeTables.Get(backend, seq, headDim, theta, positionOffset, inverseFrequencies);
        var y32 = Empty(Shape, DType.Float32, backend);
        using (var x32 = Float32ContiguousNoGrad()) backend.Rope(x32, cos, sin, y32, inverse: false);
        var y = NarrowedNoGrad(y32, DType)!;

        var inputShape = _shape;
        var inputType = DType;
        // The tables ride along as node inputs, so an evicted cache entry stays alive until backward has run.
        var result = Recorder.Record(y, op, [this, cos, sin], g =>
        {
            using var gc = g.Float32ContiguousNoGrad();
            var gx = Empty(inputShape, DType.Float32, backend);
            backend.Rope(gc, cos, sin, gx, inverse: true);
            return [NarrowedNoGrad(gx, inputType), null, null];
        });
        cos.Dispose();
        sin.Dispose();
        return result;
    }
}

/// <summary>
/// A small process-wide cache of RoPE cos/sin tables ([seq, headDim/2] each), keyed by backend, seq,
/// headDim, theta and position offset. The least recently used entry goes when the cache is full.
/// </summary>
internal static class RopeTables
{
    public const int Capacity = 32;

    private sealed record Key(IBackend Backend, int Seq, int HeadDim, float Theta, int Offset, float[]? InverseFrequencies);

    private static readonly object Gate = new();
    private static readonly Dictionary<Key, LinkedListNode<(Key Key, Tensor Cos, Tensor Sin)>> Entries = new();
    private static readonly LinkedList<(Key Key, Tensor Cos, Tensor Sin)> Recency = new(); // most recent first

    /// <summary>How many tables were computed (cache misses), for tests.</summary>
    public static long Misses { get; private set; }

    public static int Count
    {
        get { lock (Gate) return Entries.Count; }
    }

    /// <summary>Aliases of the cached tables; the caller disposes them.</summary>
    public static (Tensor Cos, Tensor Sin) Get(IBackend backend, int seq, int headDim, float theta, int offset, float[]? inverseFrequencies = null)
    {
        var key = new Key(backend, seq, headDim, theta, offset, inverseFrequencies);
        lock (Gate)
        {
            if (Entries.TryGetValue(key, out var node))
            {
                Recency.Remove(node);
                Recency.AddFirst(node);
                return (node.Value.Cos.Alias(), node.Value.Sin.Alias());
            }
        }

        var (cosHost, sinHost) = Compute(seq, headDim, theta, offset, inverseFrequencies);
        Tensor cos, sin;
        using (GradMode.NoGrad())
        {
            cos = Tensor.FromSpan<float>(cosHost, [seq, headDim / 2], DType.Float32, backend).Persist();
            sin = Tensor.FromSpan<float>(sinHost, [seq, headDim / 2], DType.Float32, backend).Persist();
        }
        lock (Gate)
        {
            Misses++;
            if (Entries.TryGetValue(key, out var raced))
            {
                // Another thread computed the same tables meanwhile: keep theirs.
                cos.Dispose();
                sin.Dispose();
                return (raced.Value.Cos.Alias(), raced.Value.Sin.Alias());
            }
            while (Entries.Count >= Capacity)
            {
                var oldest = Recency.Last!;
                Recency.RemoveLast();
                Entries.Remove(oldest.Value.Key);
                // Users of the evicted tables hold their own references (aliases or graph nodes).
                oldest.Value.Cos.Dispose();
                oldest.Value.Sin.Dispose();
            }
            Entries[key] = Recency.AddFirst((key, cos, sin));
            return (cos.Alias(), sin.Alias());
        }
    }

    /// <summary>
    /// The tables as HF computes them in float32: inv_freq[i] = 1 / theta^(2i/headDim), angle =
    /// float32(position)·inv_freq[i] rounded to float32; cos and sin of that angle are then exact to
    /// rounding, so long contexts see the same angles as HF-trained checkpoints.
    /// </summary>
    internal static (float[] Cos, float[] Sin) Compute(int seq, int headDim, float theta, int offset, float[]? inverseFrequencies = null)
    {
        int half = headDim / 2;
        var invFreq = inverseFrequencies ?? Models.RopeScaling.DefaultInverseFrequencies(theta, headDim);
        var cos = new float[seq * half];
        var sin = new float[seq * half];
        for (int s = 0; s < seq; s++)
        {
            float position = s + offset;
            for (int i = 0; i < half; i++)
            {
                double angle = position * invFreq[i];
                cos[s * half + i] = (float)Math.Cos(angle);
                sin[s * half + i] = (float)Math.Sin(angle);
            }
        }
        return (cos, sin);
    }
}
