using TensorLite.Tests.Support;
using Xunit;
using TensorLite.Backends.Cpu;

namespace TensorLite.Tests;

/// <summary>Tests that run alone: those that read the process-wide pool counters (no other test may allocate
/// meanwhile) and those that force garbage collections continuously (they would stall every other test).</summary>
[CollectionDefinition(nameof(SerialMemoryTests), DisableParallelization = true)]
public sealed class SerialMemoryTests;

[Collection(nameof(SerialMemoryTests))]
public class MemoryAccountingTests
{
    [Fact]
    public void TensorScope_ReturnsStepTemporariesToThePool()
    {
        var w = Tensor.RandN([64, 64], new Generator(1)).RequireGrad().Persist();
        void Step()
        {
            using var scope = TensorScope.Enter();
            var x = Tensor.RandN([32, 64], new Generator(2));
            x.MatMul(w).Relu().Sum().Backward();
        }
        Step();
        w.ZeroGrad();
        MemoryCounters.Settle();
        long liveBefore = CpuMemoryPool.LiveBytes;
        Step();
        Assert.NotNull(w.Grad); // the gradient outlives the scope
        w.ZeroGrad();
        MemoryCounters.Settle();
        Assert.Equal(liveBefore, CpuMemoryPool.LiveBytes);
    }

    [Fact]
    public void TrainingStep_AfterWarmup_RequestsNoNewMemoryFromTheSystem()
    {
        var gen = new Generator(3);
        var w1 = Tensor.RandN([48, 96], gen).RequireGrad().Persist();
        var w2 = Tensor.RandN([96, 48], gen).RequireGrad().Persist();
        void Step()
        {
            using var scope = TensorScope.Enter();
            var x = Tensor.RandN([16, 48], new Generator(4));
            x.MatMul(w1).Silu().MatMul(w2).Square().Mean().Backward();
            w1.ZeroGrad();
            w2.ZeroGrad();
        }
        Step();
        long misses = CpuMemoryPool.SystemAllocations;
        Step();
        Step();
        Assert.Equal(misses, CpuMemoryPool.SystemAllocations);
    }
}
