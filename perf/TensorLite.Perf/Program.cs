using TensorLite.Perf;

// perf modes:
//   peak               tight-loop FMA throughput at the widest accelerated vector width, 1 and 2 threads
//   quick [MxNxK[:tn]] Stopwatch timing of CpuGemm (tuning aid; TL_THREADS=1 for one thread, TL_QUICK_REPS=n samples)
//   quick llama [rows] the linear-layer GEMMs of llama_20m … llama_1b at rows = batch·seq (default 2048), then 1024³
//   kernel [kc] [n]    the micro-kernel (12×32 or 6×16, by vector width) alone on cache-resident panels
//   pack               A/B packing throughput (hot and cold caches)
//   compare [reps]     CpuGemm vs libtorch side by side (needs -p:Peer=torch, run in the trixie chroot)
//   svd [m n ranks]    randomized vs exact SVD: time and error vs the optimal rank-r error
//   rsvd [m n rank p q] only randomized SVD and its QRs at GaLore sizes (no exact SVD)
//   galore-overhead    training step with GaLore vs AdamW, refresh amortized over the gap
//   step-memory        allocations of a warm training step (managed, gen-0 GCs, native, peak)
//   llama-step [batch] [steps] [model] [seq] [--vocab=N] [--tl-only] [--profile-steps=N] [--threads=N] [--profile-clock=cpu]
//                      a full LLaMA training step (AdamW) vs the same model in libtorch, interleaved
//   step-ops [model] [batch] [seq] [reps]
//                      the non-GEMM ops of a decoder layer alone, forward and forward+backward, CPU and wall time
//   attention [batch] [heads] [seq] [headDim] [reps]
//                      the CPU causal attention kernels alone, forward and backward, CPU ms and % of the FMA peak
//   q8 [sizes] [reps]  fp32 AdamDirection vs AdamDirection8bit vs block-wise quantize/dequantize (Stopwatch medians)
//   gpu-check | gpu-bench | gpu-7b [--device cuda] [--smoke] [--out f.json]
//                      the GPU backend vs the CPU backend, GEMM/training speed, the 7B step's device peak (GpuBench.cs)
//   gpu-nccl [--device cuda] [--out f.json]
//                      NCCL on one CUDA device, a world of one: set-up, all-reduce, broadcast, the buckets' device path (NcclSmoke.cs)
//   ilgpu-launch [n]   launch cost and cores kept busy on ILGPU's CPU accelerator (--device ilgpu-cpu)
//   ptx-report         every kernel assembled by ptxas for sm_80/sm_90: registers, stack, spills, SASS mix (tools/ptx-report.sh)
//   factored [b] [reps] [steps]  dW cost and step time, dense vs factored gradients (FactoredBench.cs)
//   anything else      BenchmarkDotNet (e.g. --filter '*Gemm*'), with GFLOP/s and % of peak columns
string mode = args.Length > 0 ? args[0] : "";
switch (mode)
{
    case "peak":
        Peak.Run();
        break;
    case "quick":
        Quick.Run(args);
        break;
    case "pack":
        PackProbe.Run();
        break;
    case "kernel":
        KernelProbe.Run(args);
        break;
    case "compare":
        Compare.Run(args);
        break;
    case "step-memory":
        StepMemory.Run(args);
        break;
    case "svd":
        ProjectionBench.Svd(args);
        break;
    case "rsvd":
        ProjectionBench.RandomizedOnly(args);
        break;
    case "galore-overhead":
        ProjectionBench.GaLoreOverhead(args);
        break;
    case "q8":
        QuantBench.Run(args);
        break;
    case "gpu-check" or "gpu-bench" or "gpu-7b":
        GpuBench.Run(args);
        break;
    case "gpu-nccl":
        Environment.ExitCode = NcclSmoke.Run(args);
        break;
    case "ilgpu-launch":
        IlgpuLaunchProbe.Run(args);
        break;
    case "ptx-report":
        PtxReport.Run(args);
        break;
    case "factored":
        FactoredBench.Run(args);
        break;
    case "llama-step":
        LlamaStep.Run(args);
        break;
    case "attention":
        AttentionBench.Run(args);
        break;
    case "step-ops":
        StepOps.Run(args);
        break;
    default:
        Bench.Run(args);
        break;
}
