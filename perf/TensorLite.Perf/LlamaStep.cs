using System.Diagnostics;
using TensorLite.Autograd;
using TensorLite.Backends.Cpu;
using TensorLite.Models;
using TensorLite.Optim;
#if TORCH_PEER
using TorchSharp;
using static TorchSharp.torch;
using TTensor = TorchSharp.torch.Tensor;
using TParameter = TorchSharp.Modules.Parameter;
#endif

namespace TensorLite.Perf;

/// <summary>
/// One full LLaMA training step (forward, cross-entropy, backward, AdamW, zero-grad) of a named config,
/// TensorLite vs the same model written with TorchSharp-cpu (libtorch), same weights, same token ids,
/// steps interleaved (TL, torch, TL, torch, …) in one process so machine noise hits both.
///
///   llama-step [batch=4] [steps=5] [model=llama_20m] [seq=256] [--vocab=N] [--tl-only | --torch-only] [--torch-threads=2] [--profile-steps=2] [--profile-rows=10]
///              [--threads=2] [--profile-clock=cpu]
///
/// --vocab=N replaces the named config's vocabulary (e.g. --vocab=256: llama_20m with a byte vocabulary, where the
/// LM head no longer dominates the step). --threads=N sets TensorLite's GEMM threads (its other loops follow
/// Environment.ProcessorCount: set DOTNET_PROCESSOR_COUNT=1 as well for a one-thread run). --profile-clock=cpu times the
/// profile on the calling thread's CPU time, which with one thread is each op's work without the time spent waiting
/// for a core on a shared machine.
///
/// Without -p:Peer=torch (or with --tl-only) only the TensorLite side runs.
/// </summary>
public static class LlamaStep
{
    private const float Lr = 1e-3f, WeightDecay = 0.1f, Beta1 = 0.9f, Beta2 = 0.999f, Eps = 1e-8f;
    private const int Warmup = 2;

    public static void Run(string[] args)
    {
        var positional = args.Skip(1).Where(a => !a.StartsWith("--", StringComparison.Ordinal)).ToArray();
        int batch = positional.Length > 0 ? int.Parse(positional[0]) : 4;
        int steps = positional.Length > 1 ? int.Parse(positional[1]) : 5;
        string modelName = positional.Length > 2 ? positional[2] : "llama_20m";
        int seq = positional.Length > 3 ? int.Parse(positional[3]) : 256;
        bool tlOnly = args.Contains("--tl-only");
        bool torchOnly = args.Contains("--torch-only");
        int Opt(string name, int fallback) => args.FirstOrDefault(a => a.StartsWith(name + "=", StringComparison.Ordinal)) is string o
            ? int.Parse(o[(name.Length + 1)..]) : fallback;
        int profileSteps = Opt("--profile-steps", 2);
        int profileRows = Opt("--profile-rows", 10);
        int torchThreads = Opt("--torch-threads", 2);
#if !TORCH_PEER
        tlOnly = true;
#endif
        int threads = Opt("--threads", 2);
        CpuGemm.MaxThreads = threads;
        bool cpuClock = args.Contains("--profile-clock=cpu");
        if (cpuClock) OpProfiler.Clock = (() => (long)(CpuClock.Thread() * 1e9), 1e9);
        int vocab = Opt("--vocab", 0);
        var named = LlamaConfig.FromName(modelName);
        var config = vocab > 0 ? (named with { VocabSize = vocab }).Validate() : named;
        long tokens = (long)batch * seq;

        Console.WriteLine($"llama-step: {modelName} (hidden {config.HiddenSize}, intermediate {config.IntermediateSize}, heads {config.NumAttentionHeads}, " +
                          $"layers {config.NumHiddenLayers}, vocab {config.VocabSize}), batch {batch} × seq {seq} = {tokens} tokens/step, float32, " +
                          $"AdamW lr {Lr} wd {WeightDecay}; {Warmup} warm-up + {steps} timed steps each; {threads} threads each " +
                          $"(Environment.ProcessorCount={Environment.ProcessorCount})");
        Console.WriteLine($"uptime before: {Uptime()}");
        Console.WriteLine($"FMA peak (2 threads) before: {Peak.Measure(threads, 5):F1} GFLOP/s");

        // ---- TensorLite side -----------------------------------------------------------------
        var model = new LlamaModel(config, new Generator(1234));
        var tlParams = model.NamedParameters().ToList();
        long tlCount = tlParams.Sum(x => x.Parameter.Numel);
        var optimizer = new AdamW(model.Parameters(), Lr, Beta1, Beta2, Eps, WeightDecay);
        var data = new Generator(42);

        Console.WriteLine($"TensorLite parameters: {tlCount:N0} (config.ParameterCount() = {config.ParameterCount():N0})");

#if TORCH_PEER
        TorchLlama? peer = null;
        if (!tlOnly)
        {
            torch.set_num_threads(torchThreads);
            peer = new TorchLlama(config, seq, tlParams.ToDictionary(x => x.Name, x => x.Parameter));
            Console.WriteLine($"libtorch {torch.__version__} (TorchSharp-cpu) parameters: {peer.ParameterCount:N0} " +
                              $"(torch.get_num_threads()={torch.get_num_threads()}); same count: {peer.ParameterCount == tlCount}");
        }
#endif

        int[] NextIds()
        {
            var ids = new int[batch * (seq + 1)];
            for (int i = 0; i < ids.Length; i++) ids[i] = data.NextInt(config.VocabSize);
            return ids;
        }

        (double Total, double Fwd, double Bwd, double Opt, float Loss) TlStep(int[] ids)
        {
            var sw = Stopwatch.StartNew();
            using var scope = TensorScope.Enter();
            var (x, y) = Split(ids, batch, seq);
            using var xt = Tensor.FromArray(x, batch, seq);
            using var yt = Tensor.FromArray(y, batch, seq);
            var loss = model.Loss(xt, yt);
            float value = loss.Item();
            double fwd = sw.Elapsed.TotalSeconds;
            loss.Backward();
            double bwd = sw.Elapsed.TotalSeconds;
            optimizer.Step();
            optimizer.ZeroGrad();
            double total = sw.Elapsed.TotalSeconds;
            return (total, fwd, bwd - fwd, total - bwd, value);
        }

        var tl = new List<(double Total, double Fwd, double Bwd, double Opt, float Loss)>();
        var th = new List<(double Total, double Fwd, double Bwd, double Opt, float Loss)>();
        Console.WriteLine();
        var tlCpu = new List<double>();
        var thCpu = new List<double>();
        Console.WriteLine("| step | TL s | TL CPU s | TL fwd/bwd/opt s | TL loss | torch s | torch CPU s | torch fwd/bwd/opt s | torch loss | load (1 min) |");
        Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        CpuMemoryPool.ResetPeak();
        for (int i = 0; i < Warmup + steps; i++)
        {
            var ids = NextIds();
            double cpu0 = CpuClock.Process();
            var a = torchOnly ? default : TlStep(ids);
            double aCpu = CpuClock.Process() - cpu0;
            string torchCols = "– | – | – | –";
#if TORCH_PEER
            if (peer != null)
            {
                double cpu1 = CpuClock.Process();
                var b = peer.Step(ids, batch, seq);
                double bCpu = CpuClock.Process() - cpu1;
                if (i >= Warmup) { th.Add(b); thCpu.Add(bCpu); }
                torchCols = $"{b.Total:F3} | {bCpu:F3} | {b.Fwd:F2}/{b.Bwd:F2}/{b.Opt:F2} | {b.Loss:F4}";
            }
#endif
            if (i >= Warmup && !torchOnly) { tl.Add(a); tlCpu.Add(aCpu); }
            Console.WriteLine($"| {(i < Warmup ? $"warm-up {i + 1}" : $"{i - Warmup + 1}")} | {a.Total:F3} | {aCpu:F3} | {a.Fwd:F2}/{a.Bwd:F2}/{a.Opt:F2} | {a.Loss:F4} | " +
                              $"{torchCols} | {LoadAvg1()} |");
        }
        long peak = CpuMemoryPool.PeakBytes;

        Console.WriteLine();
        // CPU s: CPU time of the whole process during the step (all threads, spin-waiting included): on a shared
        // machine, wall time also counts waiting for a core; CPU time shows what each side spends of the time it gets.
        Console.WriteLine("| | step s (median) | min–max s | tokens/s (median) | CPU s/step (median) | fwd / bwd / opt s (medians) |");
        Console.WriteLine("|---|---:|---:|---:|---:|---:|");
        double tlMed = tl.Count > 0 ? Median(tl.Select(s => s.Total)) : double.NaN;
        if (tl.Count > 0)
            Console.WriteLine($"| TensorLite | {tlMed:F3} | {tl.Min(s => s.Total):F3}–{tl.Max(s => s.Total):F3} | {tokens / tlMed:F0} | {Median(tlCpu):F3} | " +
                              $"{Median(tl.Select(s => s.Fwd)):F3} / {Median(tl.Select(s => s.Bwd)):F3} / {Median(tl.Select(s => s.Opt)):F3} |");
        if (th.Count > 0)
        {
            double thMed = Median(th.Select(s => s.Total));
            Console.WriteLine($"| libtorch | {thMed:F3} | {th.Min(s => s.Total):F3}–{th.Max(s => s.Total):F3} | {tokens / thMed:F0} | {Median(thCpu):F3} | " +
                              $"{Median(th.Select(s => s.Fwd)):F3} / {Median(th.Select(s => s.Bwd)):F3} / {Median(th.Select(s => s.Opt)):F3} |");
            var ratios = tl.Zip(th, (x, y) => y.Total / x.Total).DefaultIfEmpty(double.NaN).ToList();
            Console.WriteLine();
            Console.WriteLine($"TensorLite / libtorch tokens/s: {thMed / tlMed:F2}× (ratio of medians); per interleaved pair: " +
                              $"median {Median(ratios):F2}×, min {ratios.Min():F2}×, max {ratios.Max():F2}×; " +
                              $"CPU seconds per step, libtorch / TensorLite: {Median(thCpu) / Median(tlCpu):F2}×");
        }
        Console.WriteLine($"TensorLite peak tensor memory (CpuMemoryPool.PeakBytes over warm-up + timed steps): {peak / 1048576.0:F1} MiB");
        Console.WriteLine($"process peak working set: {Process.GetCurrentProcess().PeakWorkingSet64 / 1048576.0:F0} MiB");

        // ---- per-op profile of the TensorLite step (separate steps, so the timing above is unprofiled) ---
        // OpProfiler's "fwd" entries also fire for ops that backward functions call (e.g. the two
        // matmuls of a matmul's gradient), nested inside a "bwd" entry's time. So the profile is taken
        // per phase: forward-phase "fwd" entries, backward-phase "bwd" entries only, and the optimizer
        // step and zero-grad timed as rows of their own; the rows then add up to the step.
        if (profileSteps > 0 && !torchOnly)
        {
            var rows = new Dictionary<string, (double Ms, long Calls)>();
            void Take(string prefix)
            {
                foreach (var (op, ms, calls) in OpProfiler.Snapshot())
                    if (op.StartsWith(prefix, StringComparison.Ordinal))
                    {
                        var (m, c) = rows.GetValueOrDefault(op);
                        rows[op] = (m + ms, c + calls);
                    }
                OpProfiler.Reset();
            }
            void AddRow(string name, double ms)
            {
                var (m, c) = rows.GetValueOrDefault(name);
                rows[name] = (m + ms, c + 1);
            }
            double profiled = 0;
            (double Ms, double Flops, long Calls) gemmFwd = default, gemmBwd = default;
            static (double, double, long) Add((double Ms, double Flops, long Calls) a, (double Ms, double Flops, long Calls) b) =>
                (a.Ms + b.Ms, a.Flops + b.Flops, a.Calls + b.Calls);
            for (int i = 0; i < profileSteps; i++)
            {
                var (x, y) = Split(NextIds(), batch, seq);
                long stepStart = OpProfiler.Now();
                using var scope = TensorScope.Enter();
                using var xt = Tensor.FromArray(x, batch, seq);
                using var yt = Tensor.FromArray(y, batch, seq);
                OpProfiler.Reset();
                MatMulClock.Reset();
                OpProfiler.Enabled = true;
                var loss = model.Loss(xt, yt);
                loss.Item();
                Take("fwd ");
                gemmFwd = Add(gemmFwd, MatMulClock.Totals);
                MatMulClock.Reset();
                loss.Backward();
                Take("bwd ");
                gemmBwd = Add(gemmBwd, MatMulClock.Totals);
                OpProfiler.Enabled = false;
                long t0 = OpProfiler.Now();
                optimizer.Step();
                long t1 = OpProfiler.Now();
                optimizer.ZeroGrad();
                long t2 = OpProfiler.Now();
                AddRow("optimizer AdamW.Step", OpProfiler.Milliseconds(t1 - t0));
                AddRow("ZeroGrad", OpProfiler.Milliseconds(t2 - t1));
                profiled += OpProfiler.Milliseconds(t2 - stepStart);
            }
            var snap = rows.OrderByDescending(kv => kv.Value.Ms).ToList();
            double sum = snap.Sum(kv => kv.Value.Ms);
            Console.WriteLine();
            Console.WriteLine($"TensorLite per-op profile (OpProfiler on {(cpuClock ? "the calling thread's CPU time" : "wall time")}, " +
                              $"{profileSteps} profiled steps after the timed ones, mean per step): " +
                              $"profiled step {profiled / profileSteps:F0} ms, rows sum to {sum / profileSteps:F0} ms");
            Console.WriteLine("| op | ms/step | % of step | calls/step |");
            Console.WriteLine("|---|---:|---:|---:|");
            foreach (var (op, (ms, calls)) in snap.Take(profileRows))
                Console.WriteLine($"| {op} | {ms / profileSteps:F1} | {100 * ms / profiled:F1} | {calls / profileSteps} |");
            double rest = snap.Skip(profileRows).Sum(kv => kv.Value.Ms);
            if (snap.Count > profileRows)
                Console.WriteLine($"| (all other ops) | {rest / profileSteps:F1} | {100 * rest / profiled:F1} | |");
            Console.WriteLine();
            foreach (var (phase, g) in new[] { ("forward", gemmFwd), ("backward", gemmBwd) })
                Console.WriteLine($"GEMM kernels inside the {phase} phase's matmul ops (CpuBackend.MatMul): {g.Ms / profileSteps:F1} ms/step, " +
                                  $"{g.Calls / profileSteps} calls, {g.Flops / profileSteps / 1e9:F2} GFLOP/step, {g.Flops / (g.Ms * 1e6):F1} GFLOP/s");
        }

        Console.WriteLine();
        Console.WriteLine($"FMA peak (2 threads) after: {Peak.Measure(threads, 5):F1} GFLOP/s");
        Console.WriteLine($"uptime after: {Uptime()}");
    }

    private static (int[] X, int[] Y) Split(int[] ids, int batch, int seq)
    {
        var x = new int[batch * seq];
        var y = new int[batch * seq];
        for (int b = 0; b < batch; b++)
        {
            Array.Copy(ids, b * (seq + 1), x, b * seq, seq);
            Array.Copy(ids, b * (seq + 1) + 1, y, b * seq, seq);
        }
        return (x, y);
    }

    private static double Median(IEnumerable<double> values)
    {
        var s = values.OrderBy(v => v).ToArray();
        return s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
    }

    private static string LoadAvg1()
    {
        try { return File.ReadAllText("/proc/loadavg").Split(' ')[0]; }
        catch { return "?"; }
    }

    private static string Uptime()
    {
        try
        {
            var f = File.ReadAllText("/proc/loadavg").Split(' ');
            return $"load average: {f[0]}, {f[1]}, {f[2]} ({DateTime.Now:yyyy-MM-dd HH:mm:ss})";
        }
        catch { return "?"; }
    }

#if TORCH_PEER
    /// <summary>
    /// The same LLaMA as <see cref="LlamaModel"/> in TorchSharp: embedding, per layer RMSNorm → q/k/v
    /// projections (no bias) → RoPE (rotate_half, HF convention) → causal SDPA → o projection → residual,
    /// RMSNorm → SwiGLU MLP → residual; final RMSNorm, untied LM head, cross-entropy; torch.optim.AdamW.
    /// Weights are copied from the TensorLite model, so both start from identical parameters.
    /// </summary>
    private sealed class TorchLlama
    {
        private readonly LlamaConfig _c;
        private readonly TParameter _embed, _norm, _head;
        private readonly (TParameter In, TParameter Q, TParameter K, TParameter V, TParameter O, TParameter Post,
            TParameter Gate, TParameter Up, TParameter Down)[] _layers;
        private readonly List<TParameter> _all = new();
        private readonly TTensor _cos, _sin; // [seq, headDim]
        private readonly torch.optim.Optimizer _opt;

        public TorchLlama(LlamaConfig c, int seq, IReadOnlyDictionary<string, Tensor> from)
        {
            _c = c;
            TParameter P(string name)
            {
                var src = from[name];
                var t = torch.tensor(src.ToArray(), src.ShapeArray.Select(d => (long)d).ToArray());
                var p = new TParameter(t, requires_grad: true);
                _all.Add(p);
                return p;
            }
            _embed = P("model.embed_tokens.weight");
            _layers = new (TParameter, TParameter, TParameter, TParameter, TParameter, TParameter, TParameter, TParameter, TParameter)[c.NumHiddenLayers];
            for (int i = 0; i < _layers.Length; i++)
            {
                string l = $"model.layers.{i}.";
                _layers[i] = (P(l + "input_layernorm.weight"), P(l + "self_attn.q_proj.weight"), P(l + "self_attn.k_proj.weight"),
                    P(l + "self_attn.v_proj.weight"), P(l + "self_attn.o_proj.weight"), P(l + "post_attention_layernorm.weight"),
                    P(l + "mlp.gate_proj.weight"), P(l + "mlp.up_proj.weight"), P(l + "mlp.down_proj.weight"));
            }
            _norm = P("model.norm.weight");
            _head = P("lm_head.weight");

            // RoPE tables, HF LlamaRotaryEmbedding: inv_freq[i] = theta^(-2i/d), emb = cat(freqs, freqs).
            int d = c.HeadDim, half = d / 2;
            var cos = new float[seq * d];
            var sin = new float[seq * d];
            for (int pos = 0; pos < seq; pos++)
                for (int i = 0; i < half; i++)
                {
                    double invFreq = 1.0 / Math.Pow(c.RopeTheta, 2.0 * i / d);
                    double angle = pos * invFreq;
                    cos[pos * d + i] = cos[pos * d + i + half] = (float)Math.Cos(angle);
                    sin[pos * d + i] = sin[pos * d + i + half] = (float)Math.Sin(angle);
                }
            _cos = torch.tensor(cos, new long[] { seq, d });
            _sin = torch.tensor(sin, new long[] { seq, d });
            _opt = torch.optim.AdamW(_all, Lr, Beta1, Beta2, Eps, WeightDecay);
        }

        public long ParameterCount => _all.Sum(p => p.numel());

        private TTensor RmsNorm(TTensor x, TTensor w)
        {
            var variance = x.pow(2).mean(new long[] { -1 }, keepdim: true);
            return x * torch.rsqrt(variance + _c.RmsNormEps) * w;
        }

        private static TTensor RotateHalf(TTensor x)
        {
            long half = x.shape[^1] / 2;
            var x1 = x.narrow(-1, 0, half);
            var x2 = x.narrow(-1, half, half);
            return torch.cat(new[] { -x2, x1 }, -1);
        }

        private TTensor Rope(TTensor x) => x * _cos + RotateHalf(x) * _sin; // x: [b, heads, t, d]

        private TTensor Forward(TTensor ids, long b, long t)
        {
            long hidden = _c.HiddenSize, heads = _c.NumAttentionHeads, kv = _c.KeyValueHeads, d = _c.HeadDim;
            var h = _embed.index_select(0, ids.view(-1)).view(b, t, hidden);
            foreach (var L in _layers)
            {
                var x = RmsNorm(h, L.In);
                var q = Rope(nn.functional.linear(x, L.Q).view(b, t, heads, d).transpose(1, 2));
                var k = Rope(nn.functional.linear(x, L.K).view(b, t, kv, d).transpose(1, 2));
                var v = nn.functional.linear(x, L.V).view(b, t, kv, d).transpose(1, 2);
                var o = nn.functional.scaled_dot_product_attention(q, k, v, is_casual: true);
                var merged = o.transpose(1, 2).reshape(b, t, heads * d);
                h = h + nn.functional.linear(merged, L.O);
                var m = RmsNorm(h, L.Post);
                var act = nn.functional.silu(nn.functional.linear(m, L.Gate)) * nn.functional.linear(m, L.Up);
                h = h + nn.functional.linear(act, L.Down);
            }
            return nn.functional.linear(RmsNorm(h, _norm), _head);
        }

        public (double Total, double Fwd, double Bwd, double Opt, float Loss) Step(int[] ids, int batch, int seq)
        {
            var sw = Stopwatch.StartNew();
            using var scope = torch.NewDisposeScope();
            var (x, y) = Split(ids, batch, seq);
            var xt = torch.tensor(x.Select(v => (long)v).ToArray(), new long[] { batch, seq });
            var yt = torch.tensor(y.Select(v => (long)v).ToArray(), new long[] { batch * seq });
            var logits = Forward(xt, batch, seq);
            var loss = nn.functional.cross_entropy(logits.view(-1, _c.VocabSize), yt);
            float value = loss.item<float>();
            double fwd = sw.Elapsed.TotalSeconds;
            loss.backward();
            double bwd = sw.Elapsed.TotalSeconds;
            _opt.step();
            _opt.zero_grad();
            double total = sw.Elapsed.TotalSeconds;
            return (total, fwd, bwd - fwd, total - bwd, value);
        }
    }
#endif
}
