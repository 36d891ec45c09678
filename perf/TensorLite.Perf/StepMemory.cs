using TensorLite.Backends.Cpu;
using TensorLite.Models;
using TensorLite.Optim;

namespace TensorLite.Perf;

/// <summary>
/// step-memory [model] [batch] [seq]: what a warm training step (forward, backward, AdamW) allocates:
/// managed bytes (all threads), gen-0 collections, native allocations requested from the system (cache
/// misses of the tensor pool) and the peak of live tensor memory.
/// </summary>
public static class StepMemory
{
    public static void Run(string[] args)
    {
        string name = args.Length > 1 ? args[1] : "byte_small";
        int batch = args.Length > 2 ? int.Parse(args[2]) : 16, seq = args.Length > 3 ? int.Parse(args[3]) : 128;
        var config = LlamaConfig.FromName(name);
        var model = new LlamaModel(config, new Generator(1));
        var opt = new AdamW(model.Parameters());
        var gen = new Generator(2);
        var ids = Tensor.FromArray(Enumerable.Range(0, batch * seq).Select(_ => gen.NextInt(config.VocabSize)).ToArray(), batch, seq).Persist();
        var targets = Tensor.FromArray(Enumerable.Range(0, batch * seq).Select(_ => gen.NextInt(config.VocabSize)).ToArray(), batch, seq).Persist();
        const int warmup = 3, measured = 10;
        long managed = 0, system = 0;
        int gen0 = 0;
        for (int step = 0; step < warmup + measured; step++)
        {
            if (step == warmup)
            {
                managed = GC.GetTotalAllocatedBytes(precise: true);
                system = CpuMemoryPool.SystemAllocations;
                gen0 = GC.CollectionCount(0);
            }
            using var scope = TensorScope.Enter();
            model.Loss(ids, targets).Backward();
            opt.Step();
            opt.ZeroGrad();
        }
        Console.WriteLine($"{name}, batch {batch} × seq {seq}, AdamW, {measured} warm steps:");
        Console.WriteLine($"  managed allocation   {(GC.GetTotalAllocatedBytes(precise: true) - managed) / measured / 1024.0:F0} KiB per step (all threads)");
        Console.WriteLine($"  gen-0 collections    {(GC.CollectionCount(0) - gen0) / (double)measured:F2} per step");
        Console.WriteLine($"  native allocations   {(CpuMemoryPool.SystemAllocations - system) / (double)measured:F2} per step requested from the system");
        Console.WriteLine($"  tensor memory peak   {CpuMemoryPool.PeakBytes / 1048576.0:F1} MiB (parameters, gradients, AdamW state, activations)");
    }
}
