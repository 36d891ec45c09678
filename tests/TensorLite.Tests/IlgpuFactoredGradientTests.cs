using TensorLite.Backends.Cpu;
using TensorLite.Ilgpu;
using TensorLite.Optim.Projected;
using Xunit;

namespace TensorLite.Tests;

/// <summary>The factored-gradient path on the ILGPU backend (CPU accelerator) against the CPU backend: the engine's
/// capture through <see cref="Tensor.LinearProduct"/>, the projected gradient from the factors and the update (GRASS's
/// row- and column-sparse writes, GaLore's randomized SVD and OSD's online PCA from the factors), two steps each.</summary>
public sealed class IlgpuFactoredGradientTests(IlgpuCpuFixture fixture) : IClassFixture<IlgpuCpuFixture>
{
    private readonly IlgpuBackend _gpu = fixture.Backend;

    private static float[] Steps(IBackend backend, ProjectedOptions options, int m, int n)
    {
        var gen = new Generator(21);
        var w = Tensor.FromSpan<float>(Tensor.RandN([m, n], gen, 1f).ToArray(), [m, n], DType.Float32, backend).RequireGrad();
        w.CaptureFactoredGradient = true;
        using var opt = new ProjectedOptimizer([("w", w)], options with { ShouldProject = ProjectedOptions.AllMatrices });
        for (int step = 0; step < 2; step++)
        {
            using var x = Tensor.FromSpan<float>(Tensor.RandN([3, 4, n], gen, 1f).ToArray(), [3, 4, n], DType.Float32, backend);
            using var y = x.LinearProduct(w, DType.Float32);
            using var sq = y.Square();
            using var loss = sq.Sum();
            loss.Backward();
            Assert.NotNull(w.FactoredGrad);
            opt.Step();
            opt.ZeroGrad();
        }
        return w.ToArray();
    }

    [Theory]
    [InlineData("grass", 6, 10)]
    [InlineData("grass", 10, 6)]
    [InlineData("galore-rsvd", 6, 10)]
    [InlineData("osd", 10, 6)]
    [InlineData("lsp", 10, 6)]
    public void FactoredSteps_OnIlgpu_MatchTheCpuBackend(string method, int m, int n)
    {
        var options = method switch
        {
            "grass" => ProjectedOptions.Grass(rank: 2, learningRate: 0.01f, weightDecay: 0.1f),
            "galore-rsvd" => ProjectedOptions.GaLore(rank: 2, randomizedSvd: true, learningRate: 0.01f, weightDecay: 0.1f),
            "lsp" => ProjectedOptions.Lsp(rank: 4, nonZeros: 2, updateGap: 1, fitThreshold: 0f, fitIterations: 3, learningRate: 0.01f, weightDecay: 0.1f),
            _ => ProjectedOptions.Osd(rank: 2, learningRate: 0.01f, weightDecay: 0.1f),
        };
        var cpu = Steps(CpuBackend.Instance, options, m, n);
        var gpu = Steps(_gpu, options, m, n);
        for (int i = 0; i < cpu.Length; i++) Assert.True(Math.Abs(cpu[i] - gpu[i]) <= 1e-4, $"{method} [{i}]: {cpu[i]} vs {gpu[i]}");
    }
}
