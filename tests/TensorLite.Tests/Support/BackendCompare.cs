using Xunit;

namespace TensorLite.Tests.Support;

/// <summary>Inputs and comparisons for the tests that run one computation on two backends (the CPU backend as the
/// reference, the ILGPU backend on its CPU accelerator).</summary>
public static class BackendCompare
{
    /// <summary>Reproducible uniform values in [low, high).</summary>
    public static float[] RandomData(int n, int seed, float low = -2f, float high = 2f)
    {
        var rng = new Random(seed);
        var d = new float[n];
        for (int i = 0; i < n; i++) d[i] = low + (float)rng.NextDouble() * (high - low);
        return d;
    }

    public static Tensor Make(IBackend be, float[] data, params int[] shape) => Tensor.FromSpan<float>(data, shape, DType.Float32, be);

    /// <summary>Element-wise |e − a| ≤ tol·(1 + |e|); NaN must meet NaN.</summary>
    public static void AssertClose(float[] expected, float[] actual, float tol, string what = "")
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            float e = expected[i], a = actual[i];
            if (float.IsNaN(e)) { Assert.True(float.IsNaN(a), $"{what}[{i}]: expected NaN, got {a}"); continue; }
            Assert.True(e == a || Math.Abs(e - a) <= tol * (1f + Math.Abs(e)), $"{what}[{i}]: expected {e}, got {a}");
        }
    }
}
