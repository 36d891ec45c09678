using TensorLite.Ilgpu;
using TensorLite.Memory;
using TensorLite.Training;
using Xunit;

namespace TensorLite.Tests;

/// <summary>Device names resolve to backends once per process, and a plan for a GPU run predicts the device pool.</summary>
public sealed class DeviceTests
{
    static DeviceTests() => IlgpuDevices.Register();

    [Fact]
    public void DeviceNames_ResolveToOneSharedBackendEach()
    {
        Assert.Same(Backend.Cpu, Devices.Resolve("cpu", out string cpuNote));
        Assert.StartsWith("cpu (managed CPU backend", cpuNote);
        var emulated = Devices.Resolve("ilgpu-cpu", out string note);
        Assert.Equal("ilgpu-cpu", emulated.Name);
        Assert.StartsWith("ilgpu-cpu (ILGPU CPU accelerator", note);
        Assert.Same(emulated, Devices.Resolve("ilgpu-cpu", out _));
        Assert.IsAssignableFrom<IDeviceAllocator>(emulated);
        Assert.Contains("--device must be one of", Assert.Throws<TensorLiteException>(() => Devices.Resolve("tpu", out _)).Message);
    }

    [Fact]
    public void APlanForTheGpu_HasTheSameTensors_AndPredictsTheDevicePoolWithoutTheCpuRuntime()
    {
        var options = new TrainingOptions { Model = "llama_20m", Seq = 64, Batch = 2, Optimizer = "galore", Rank = 32, PerLayer = true };
        var cpu = MemoryPlan.Predict(options);
        var gpu = MemoryPlan.Predict(options with { Device = "cuda" }); // planning needs no device
        Assert.False(cpu.OnGpu);
        Assert.True(gpu.OnGpu);
        Assert.Equal(cpu.PeakTensorBytes, gpu.PeakTensorBytes);
        Assert.Equal(cpu.AtPeak.Total, gpu.AtPeak.Total);
        Assert.True(gpu.PeakPoolBytes >= gpu.PeakTensorBytes);
        Assert.Equal(Math.Max(gpu.PeakPoolBytes, gpu.PeakTensorBytes), gpu.PredictedPeakBytes);
        Assert.Equal(Math.Max(cpu.PeakPoolBytes, cpu.PeakTensorBytes) + MemoryPlan.RuntimeBytes, cpu.PredictedPeakBytes);
        Assert.Contains("pool cache (GPU)", gpu.Render());
        Assert.Contains("of device memory", gpu.Render());
        Assert.DoesNotContain("runtime (CPU)", gpu.Render());
    }

    [Fact]
    public void TheDevicePoolPolicy_CachesEveryBlockIn256ByteSizes_TheCpuPolicyCapsItsCache()
    {
        Assert.Equal(256, BlockCachePolicy.Device.RoundUp(1));
        Assert.Equal(512, BlockCachePolicy.Device.RoundUp(257));
        Assert.True(BlockCachePolicy.Device.Caches(8L << 30, 100L << 30));
        Assert.Equal(64, BlockCachePolicy.Cpu.RoundUp(1));
        Assert.False(BlockCachePolicy.Cpu.Caches(256L << 20, 0));
        Assert.False(BlockCachePolicy.Cpu.Caches(1L << 20, 512L << 20));
        Assert.True(BlockCachePolicy.Cpu.Caches(1L << 20, 100L << 20));
    }

    [Fact]
    public void DeviceBuffersOfForgottenTensors_ComeBackUsable_AfterTheGarbageCollectorFinalizedThem()
    {
        using var backend = IlgpuBackend.Create(DeviceKind.Cpu);
        static void Forget(IBackend b)
        {
            for (int i = 0; i < 50; i++) Tensor.Zeros([1000], DType.Float32, b);
        }
        Forget(backend);
        for (int round = 0; round < 3; round++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
        }
        long allocations = backend.Pool.DeviceAllocations;
        var values = Enumerable.Range(0, 1000).Select(i => (float)i).ToArray();
        for (int i = 0; i < 50; i++)
        {
            using var t = Tensor.FromSpan<float>(values, [1000], DType.Float32, backend);
            Assert.Equal(values, t.ToArray());
        }
        Assert.Equal(allocations, backend.Pool.DeviceAllocations); // served by the finalized tensors' buffers
    }
}
