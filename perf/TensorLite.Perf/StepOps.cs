using System.Diagnostics;
using TensorLite.Backends.Cpu;
using TensorLite.Models;

namespace TensorLite.Perf;

/// <summary>
/// The non-GEMM ops of one LLaMA decoder layer at a training step's shapes, each timed alone: forward, and forward +
/// backward (the backward seeded with a random output gradient), as the median over repetitions of the calling
/// thread's CPU time and of wall time, with nanoseconds per element of the op's output.
///
///   step-ops [model=llama_20m] [batch=4] [seq=256] [reps=15]
///
/// Run it with DOTNET_PROCESSOR_COUNT=1 (and it sets one GEMM thread) to see each op's work on one core: on a shared
/// machine the CPU time leaves out the time the thread waited for a core.
/// </summary>
public static class StepOps
{
    public static void Run(string[] args)
    {
        string modelName = args.Length > 1 ? args[1] : "llama_20m";
        int batch = args.Length > 2 ? int.Parse(args[2]) : 4;
        int seq = args.Length > 3 ? int.Parse(args[3]) : 256;
        int reps = args.Length > 4 ? int.Parse(args[4]) : 15;
        CpuGemm.MaxThreads = Environment.ProcessorCount;
        var c = LlamaConfig.FromName(modelName);
        int h = c.HiddenSize, inter = c.IntermediateSize, heads = c.NumAttentionHeads, d = c.HeadDim;
        var g = new Generator(7);
        var parameters = new List<Tensor>();
        Tensor Param(params int[] shape)
        {
            var p = Tensor.RandN(shape, g).RequireGrad().Persist();
            parameters.Add(p);
            return p;
        }

        Console.WriteLine($"step-ops: {modelName} layer shapes, batch {batch} × seq {seq}, {Environment.ProcessorCount} thread(s), " +
                          $"median of {reps}; CPU = the calling thread's CPU time ({(CpuClock.IsCpuTime ? "clock_gettime" : "wall: no CPU clock")})");
        Console.WriteLine("| op | output elements | fwd CPU ms | fwd wall ms | fwd+bwd CPU ms | fwd+bwd wall ms | fwd+bwd CPU ns/element |");
        Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|");

        var x = Param(batch, seq, h);
        var w = Param(h);
        Time("rms_norm", () => x.RmsNorm(w, c.RmsNormEps));
        var gate = Param(batch, seq, inter);
        var up = Param(batch, seq, inter);
        Time("swiglu", () => gate.SwiGlu(up));
        var proj = Param(batch, seq, h);
        Time("heads + rope (q)", () =>
        {
            using var split = proj.Reshape(batch, seq, heads, d);
            using var t = split.Transpose(1, 2);
            return t.Rope(0, c.RopeTheta);
        });
        var q = Param(batch, heads, seq, d);
        var k = Param(batch, heads, seq, d);
        var vProj = Param(batch, seq, h);
        Time("causal_attention (v a transposed view)", () =>
        {
            using var split = vProj.Reshape(batch, seq, heads, d);
            using var v = split.Transpose(1, 2);
            return Tensor.CausalAttention(q, k, v);
        });
        var o = Param(batch, heads, seq, d);
        Time("merge heads (transpose + reshape)", () =>
        {
            using var t = o.Transpose(1, 2);
            return t.Reshape(batch, seq, h);
        });
        var r = Param(batch, seq, h);
        Time("residual add", () => x + r);

        void Time(string name, Func<Tensor> op)
        {
            var fwdCpu = new List<double>();
            var fwdWall = new List<double>();
            var allCpu = new List<double>();
            var allWall = new List<double>();
            int elements = 0;
            for (int i = 0; i < reps + 3; i++)
            {
                using (var scope = TensorScope.Enter())
                using (Autograd.GradMode.NoGrad())
                {
                    var sw = Stopwatch.StartNew();
                    double c0 = CpuClock.Thread();
                    using var y = op();
                    double c1 = CpuClock.Thread();
                    elements = y.Numel;
                    if (i >= 3) { fwdCpu.Add(c1 - c0); fwdWall.Add(sw.Elapsed.TotalSeconds); }
                }
                using (var scope = TensorScope.Enter())
                {
                    using var seed = Tensor.RandN([.. Shape(op)], new Generator((ulong)i));
                    var sw = Stopwatch.StartNew();
                    double c0 = CpuClock.Thread();
                    using var y = op();
                    y.Backward(seed);
                    double c1 = CpuClock.Thread();
                    if (i >= 3) { allCpu.Add(c1 - c0); allWall.Add(sw.Elapsed.TotalSeconds); }
                }
                foreach (var p in parameters)
                {
                    p.Grad?.Dispose();
                    p.Grad = null;
                }
            }
            double M(List<double> v) => v.OrderBy(t => t).ElementAt(v.Count / 2) * 1e3;
            Console.WriteLine($"| {name} | {elements:N0} | {M(fwdCpu):F2} | {M(fwdWall):F2} | {M(allCpu):F2} | {M(allWall):F2} | " +
                              $"{M(allCpu) * 1e6 / elements:F1} |");
        }

        static int[] Shape(Func<Tensor> op)
        {
            using var scope = TensorScope.Enter();
            using var noGrad = Autograd.GradMode.NoGrad();
            using var y = op();
            return y.Shape.ToArray();
        }
    }
}
