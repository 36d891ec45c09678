using TensorLite.Tests.Support;
using Xunit;

namespace TensorLite.Tests;

/// <summary>
/// The cross-entropy gradient computed in the forward pass (CrossEntropyWithGradient) against the two-kernel path it
/// replaced in training (CrossEntropy, then CrossEntropyBackward recomputing the exponentials), and its scaling by an
/// output gradient other than 1.
/// </summary>
public class CrossEntropyGradientPassTests
{
    private static (Tensor Logits, Tensor Targets) Inputs(int rows, int vocab, ulong seed)
    {
        var g = new Generator(seed);
        using var raw = Tensor.RandN([rows, vocab], g);
        var logits = raw * 4f; // a spread like a trained LM head's
        var ids = new int[rows];
        var pick = new Random((int)seed);
        for (int i = 0; i < rows; i++) ids[i] = i % 7 == 3 ? -100 : pick.Next(vocab);
        return (logits, Tensor.FromArray(ids, rows));
    }

    [Theory]
    [InlineData(37, 1000)]
    [InlineData(5, 32000)]
    public void FusedKernel_MatchesTheForwardAndBackwardKernels(int rows, int vocab)
    {
        var (logits, targets) = Inputs(rows, vocab, 9);
        var backend = logits.Backend;
        using var rowMax = Tensor.Empty([rows]);
        using var rowLogSum = Tensor.Empty([rows]);
        using var loss = Tensor.Empty([]);
        using var one = Tensor.Scalar(1f);
        using var expected = Tensor.Empty([rows, vocab]);
        int count = backend.CrossEntropy(logits, targets, -100, rowMax, rowLogSum, loss);
        backend.CrossEntropyBackward(logits, targets, -100, rowMax, rowLogSum, one, count, expected);

        using var fusedLoss = Tensor.Empty([]);
        using var fused = Tensor.Empty([rows, vocab]);
        Assert.Equal(count, backend.CrossEntropyWithGradient(logits, targets, -100, fusedLoss, fused));
        Assert.Equal(loss.Item(), fusedLoss.Item()); // the same sums in the same order
        float[] e = expected.ToArray(), f = fused.ToArray();
        for (int i = 0; i < e.Length; i++) Approx.Close(e[i], f[i], 1e-6 * Math.Abs(e[i]) + 1e-12, $"gLogits[{i}]");
    }

    [Fact]
    public void TheGradientIsScaledByTheOutputGradient()
    {
        var (raw, targets) = Inputs(12, 50, 4);
        var logits = raw.RequireGrad();
        using (var loss = Tensor.CrossEntropy(logits, targets)) loss.Backward();
        float[] unit = logits.Grad!.ToArray();
        logits.Grad.Dispose();
        logits.Grad = null;
        using (var loss = Tensor.CrossEntropy(logits, targets))
        using (var scaled = loss * 0.25f)
            scaled.Backward();
        float[] quarter = logits.Grad!.ToArray();
        for (int i = 0; i < unit.Length; i++) Assert.Equal(unit[i] * 0.25f, quarter[i]);
        Assert.Contains(unit, x => x != 0f);
    }
}
