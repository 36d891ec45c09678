#!/usr/bin/env python3
"""The PyTorch peer of `TensorLite.Perf gpu-bench`: the same GEMMs (torch.matmul, i.e. cuBLAS on a GPU) and the same
LLaMA training steps in plain PyTorch eager mode (no torch.compile), same shapes, batch, sequence length, optimizer
settings and timing window, so the two JSON files compare row by row.

    python3 perf/gpu/torch_reference.py [--device cuda] [--smoke] [--out torch.json]

--smoke uses the tiny sizes of `gpu-bench --smoke` (for checking the script on a CPU-only machine).
"""
import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

# The named configs of src/TensorLite/Models/LlamaConfig.cs (hidden, intermediate, heads, layers, vocab).
CONFIGS = {
    "tiny": (64, 176, 4, 2, 256),
    "llama_60m": (512, 1376, 8, 8, 32000),
    "llama_130m": (768, 2048, 12, 12, 32000),
}
# TrainingOptions defaults of the TensorLite trainer.
LR, BETAS, WEIGHT_DECAY, EPS, CLIP, RMS_EPS, ROPE_THETA = 3e-3, (0.9, 0.95), 0.1, 1e-8, 1.0, 1e-6, 10000.0


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


# ---- GEMM ---------------------------------------------------------------------------------------------------------

def bench_gemms(device, smoke):
    shapes = [(64, 64, 64), (32, 96, 48)] if smoke else [
        (4096, 4096, 4096), (2048, 768, 768), (2048, 2048, 768), (2048, 768, 2048), (2048, 32000, 768)]
    reps = 2 if smoke else 20
    rows = []
    for dtype in (torch.float32, torch.bfloat16):
        for m, n, k in shapes:
            a = torch.randn(m, k, device=device, dtype=dtype)
            b = torch.randn(k, n, device=device, dtype=dtype)
            torch.matmul(a, b)
            sync(device)
            times = []
            for _ in range(reps):
                t0 = time.perf_counter()
                torch.matmul(a, b)
                sync(device)
                times.append((time.perf_counter() - t0) * 1e3)
            times.sort()
            ms = times[len(times) // 2]
            tflops = 2.0 * m * n * k / (ms * 1e-3) / 1e12
            print(f"gemm {str(dtype):15s} {m}x{n}x{k}: {ms:9.3f} ms  {tflops:7.2f} TFLOP/s (median of {reps})", flush=True)
            rows.append(dict(dtype=str(dtype), m=m, n=n, k=k, medianMs=ms, tflops=tflops))
    return rows


# ---- LLaMA in eager PyTorch ---------------------------------------------------------------------------------------

class RMSNorm(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + RMS_EPS) * self.weight


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def causal_attention(q, k, v):
    if hasattr(F, "scaled_dot_product_attention"):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    t = q.shape[-2]
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
    mask = torch.ones(t, t, dtype=torch.bool, device=q.device).triu(1)
    return scores.masked_fill(mask, float("-inf")).softmax(-1) @ v


class Block(nn.Module):
    def __init__(self, hidden, inter, heads):
        super().__init__()
        self.heads = heads
        self.input_norm = RMSNorm(hidden)
        self.q = nn.Linear(hidden, hidden, bias=False)
        self.k = nn.Linear(hidden, hidden, bias=False)
        self.v = nn.Linear(hidden, hidden, bias=False)
        self.o = nn.Linear(hidden, hidden, bias=False)
        self.post_norm = RMSNorm(hidden)
        self.gate = nn.Linear(hidden, inter, bias=False)
        self.up = nn.Linear(hidden, inter, bias=False)
        self.down = nn.Linear(inter, hidden, bias=False)

    def forward(self, x, cos, sin):
        b, t, d = x.shape
        h = self.input_norm(x)
        split = lambda y: y.view(b, t, self.heads, d // self.heads).transpose(1, 2)
        q, k, v = split(self.q(h)), split(self.k(h)), split(self.v(h))
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        a = causal_attention(q, k, v).transpose(1, 2).reshape(b, t, d)
        x = x + self.o(a)
        h = self.post_norm(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Llama(nn.Module):
    def __init__(self, hidden, inter, heads, layers, vocab, seq):
        super().__init__()
        self.embed = nn.Embedding(vocab, hidden)
        self.blocks = nn.ModuleList(Block(hidden, inter, heads) for _ in range(layers))
        self.norm = RMSNorm(hidden)
        self.head = nn.Linear(hidden, vocab, bias=False)
        head_dim = hidden // heads
        inv = 1.0 / (ROPE_THETA ** (torch.arange(0, head_dim, 2).float() / head_dim))
        angles = torch.outer(torch.arange(seq).float(), inv)
        angles = torch.cat((angles, angles), dim=-1)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)
        for p in self.parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=0.02)

    def forward(self, ids, targets):
        x = self.embed(ids)
        for block in self.blocks:
            x = block(x, self.cos, self.sin)
        logits = self.head(self.norm(x))
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


class GaLoreAdamW(torch.optim.Optimizer):
    """GaLore (Zhao et al. 2024) as the TensorLite trainer configures it: the attention and MLP matrices get Adam in a
    rank-r subspace of their gradient (projection from an SVD, refreshed every `gap` steps, update scaled by `scale`,
    projecting on the smaller side); every other parameter gets dense AdamW."""

    def __init__(self, projected, dense, rank, gap=200, scale=0.25):
        groups = [dict(params=projected, galore=True), dict(params=dense, galore=False)]
        super().__init__(groups, dict(lr=LR, betas=BETAS, eps=EPS, weight_decay=WEIGHT_DECAY))
        self.rank, self.gap, self.scale = rank, gap, scale

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            lr, (b1, b2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                g = p.grad
                if group["galore"]:
                    left = g.shape[0] <= g.shape[1]
                    if state.get("step", 0) % self.gap == 0:
                        u, _, vh = torch.linalg.svd(g.float(), full_matrices=False)
                        state["P"] = u[:, :self.rank] if left else vh[:self.rank].T.contiguous()
                    P = state["P"]
                    g = P.T @ g if left else g @ P
                if "m" not in state:
                    state["m"], state["v"] = torch.zeros_like(g), torch.zeros_like(g)
                state["step"] = state.get("step", 0) + 1
                t = state["step"]
                m, v = state["m"], state["v"]
                m.mul_(b1).add_(g, alpha=1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                direction = (m / (1 - b1 ** t)) / ((v / (1 - b2 ** t)).sqrt() + eps)
                if group["galore"]:
                    direction = (P @ direction if left else direction @ P.T) * self.scale
                p.mul_(1 - lr * wd).add_(direction, alpha=-lr)


def bench_training(device, smoke):
    rows = []
    models = ["tiny"] if smoke else ["llama_60m", "llama_130m"]
    for name in models:
        for optimizer in ("adamw", "galore"):
            hidden, inter, heads, layers, vocab = CONFIGS[name]
            seq, batch = (32, 2) if smoke else (256, 8)
            steps, warmup_steps = (5, 3) if smoke else (23, 3)
            torch.manual_seed(1)
            model = Llama(hidden, inter, heads, layers, vocab, seq).to(device)
            if optimizer == "adamw":
                opt = torch.optim.AdamW(model.parameters(), lr=LR, betas=BETAS, eps=EPS, weight_decay=WEIGHT_DECAY)
            else:
                projected = [p for n, p in model.named_parameters() if p.dim() == 2 and n.startswith("blocks.")]
                dense = [p for n, p in model.named_parameters() if not (p.dim() == 2 and n.startswith("blocks."))]
                opt = GaLoreAdamW(projected, dense, rank=8 if smoke else 128)
            ids = torch.randint(0, vocab, (batch, seq + 1), device=device)
            elapsed = {}
            start = time.perf_counter()
            for step in range(1, steps + 1):
                loss = model(ids[:, :-1], ids[:, 1:])
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
                opt.step()
                opt.zero_grad(set_to_none=True)
                loss.item()  # as the TensorLite trainer reads every step's loss back
                elapsed[step] = time.perf_counter() - start
            first, last = warmup_steps, steps - 1
            tokens_per_second = (last - first) * batch * seq / (elapsed[last] - elapsed[first])
            peak = torch.cuda.max_memory_allocated() if device.type == "cuda" else None
            print(f"train {name} {optimizer}: {tokens_per_second:10.0f} tokens/s (steps {first + 1}..{last})"
                  + (f", peak allocated {peak / 2**20:.1f} MiB" if peak else ""), flush=True)
            rows.append(dict(model=name, optimizer=optimizer, batch=batch, seq=seq, tokensPerSecond=tokens_per_second,
                             peakAllocatedBytes=peak))
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--out")
    args = parser.parse_args()
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"torch {torch.__version__} on {name}; TF32 matmul allowed: {torch.backends.cuda.matmul.allow_tf32}", flush=True)
    results = dict(device=name, torch=torch.__version__, tf32=torch.backends.cuda.matmul.allow_tf32,
                   date=time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()), smoke=args.smoke,
                   gemm=bench_gemms(device, args.smoke), training=bench_training(device, args.smoke))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
