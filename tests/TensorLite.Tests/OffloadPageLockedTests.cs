using TensorLite.Autograd;
using TensorLite.Backends.Cpu;
using TensorLite.Ilgpu;
using TensorLite.Optim;
using TensorLite.Optim.Offload;
using TensorLite.Optim.Projected;
using Xunit;

namespace TensorLite.Tests;

/// <summary>The offload engine's page-locked staging buffer on the ILGPU backend (its CPU accelerator here): copies
/// arrive exactly, chunk by chunk, and an offloaded optimizer gives the same bits with and without it.</summary>
public sealed class OffloadPageLockedTests(IlgpuCpuFixture fixture) : IClassFixture<IlgpuCpuFixture>
{
    [Fact]
    public void CopiesThroughASmallStagingBuffer_ArriveExactly_ChunkByChunk()
    {
        var gpu = fixture.Backend;
        using var staging = new PageLockedStaging(maxBytes: 4096);
        float[] values = Enumerable.Range(0, 10_001).Select(i => MathF.Sin(i) * 1e3f).ToArray(); // 40,004 bytes: 10 chunks and a partial one
        using var onDevice = Backend.Use(gpu);
        using var device = Tensor.FromArray(values, 10_001);
        using var host = Tensor.Empty([10_001], DType.Float32, CpuBackend.Instance);
        Assert.Equal(40_004, HostCopy.ToHost(device, host, staging));
        Assert.StartsWith("through a page-locked staging buffer (4 KiB)", staging.Description);
        Assert.Equal(values, host.ToArray());
        using var back = Tensor.Zeros([10_001], DType.Float32, gpu);
        HostCopy.ToDevice(host, back, staging);
        Assert.Equal(values, back.ToArray());
        // A strided device view is made contiguous before the copy.
        using var matrix = Tensor.FromArray(values[..12], 3, 4);
        using var transposed = matrix.T;
        using var hostT = Tensor.Empty([4, 3], DType.Float32, CpuBackend.Instance);
        HostCopy.ToHost(transposed, hostT, staging);
        Assert.Equal(transposed.ToArray(), hostT.ToArray());
    }

    [Fact]
    public void TheCpuBackend_HasNoPageLockedMemory_AndCopiesDirectly()
    {
        using var staging = new PageLockedStaging();
        Assert.Null(staging.For(CpuBackend.Instance, 1024));
        Assert.Equal("through ordinary host memory", staging.Description);
    }

    [Theory]
    [InlineData("adamw")]
    [InlineData("galore")]
    public void OffloadedOptimizer_OnIlgpu_GivesTheSameBits_WithAndWithoutPageLockedStaging(string method)
    {
        var gpu = fixture.Backend;
        var spec = OptimizerSpec.Parse(method) with { LearningRate = 0.02f, WeightDecay = 0.1f, Rank = 4, UpdateGap = 2, Seed = 5 };
        (Optimizer Opt, OffloadEngine Engine, Tensor[] Ps) Make(bool pinned)
        {
            var gen = new Generator(3);
            var ps = new[] { ("layers.0.mlp.up.weight", new[] { 24, 16 }), ("layers.0.norm.weight", new[] { 16 }) }
                .Select(s => (s.Item1, Tensor.RandN(s.Item2, gen, backend: gpu).RequireGrad().Persist())).ToList();
            var engine = new OffloadEngine(CpuBackend.Instance, overlap: true) { UsePageLockedStaging = pinned };
            return (OffloadedOptimizer.Create(spec, ps, DType.Float32, engine), engine, ps.Select(p => p.Item2).ToArray());
        }
        var (withOpt, withEngine, withPs) = Make(true);
        var (withoutOpt, withoutEngine, withoutPs) = Make(false);
        using (withEngine)
        using (withoutEngine)
        {
            for (int step = 0; step < 3; step++)
                foreach (var (opt, engine, ps) in new[] { (withOpt, withEngine, withPs), (withoutOpt, withoutEngine, withoutPs) })
                {
                    using (GradMode.NoGrad())
                        for (int i = 0; i < ps.Length; i++)
                        {
                            using var g = Tensor.RandN(ps[i].Shape, new Generator((ulong)(step * 7 + i + 1)), backend: gpu);
                            ps[i].Grad?.Dispose();
                            ps[i].Grad = g.Detach().Persist();
                        }
                    opt.BeginStep();
                    for (int i = ps.Length - 1; i >= 0; i--) opt.StepParameter(i);
                    engine.Drain();
                }
            Assert.StartsWith("through a page-locked staging buffer", withEngine.CopyDescription);
            Assert.Equal("through ordinary host memory", withoutEngine.CopyDescription);
            Assert.Equal(withoutEngine.TotalBytes, withEngine.TotalBytes);
            for (int i = 0; i < withPs.Length; i++) Assert.Equal(withoutPs[i].ToArray(), withPs[i].ToArray());
            var moments = withoutOpt.StateTensors().ToDictionary(x => x.Name, x => x.Tensor);
            foreach (var (name, t) in withOpt.StateTensors().Where(x => x.Tensor.DType == DType.Float32))
                Assert.Equal(moments[name].ToArray(), t.ToArray());
        }
    }
}
