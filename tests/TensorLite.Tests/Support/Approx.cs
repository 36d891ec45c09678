using Xunit;

namespace TensorLite.Tests.Support;

/// <summary>Tolerance comparisons (xunit's decimal-places overload rounds, which fails on rounding boundaries).</summary>
public static class Approx
{
    public static void Close(double expected, double actual, double tolerance, string? what = null) =>
        Assert.True(Math.Abs(expected - actual) <= tolerance,
            $"{what ?? "value"}: expected {expected} ± {tolerance}, got {actual}");
}
