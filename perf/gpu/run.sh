#!/usr/bin/env bash
# The GPU measurements of docs/gpu.md, one stage per device call (each call may run at most 10 minutes).
#   here:        ../shared/gpu/pack.sh perf/TensorLite.Perf/TensorLite.Perf.csproj     (writes .gpu/app.tar.xz)
#   on the GPU:  device run, carry [".gpu"], command "bash perf/gpu/run.sh STAGE"
# STAGE: check  — the GPU backend against the CPU backend (GEMMs, tiny-LLaMA training runs)
#        bench  — TensorLite GEMM TFLOP/s and training tokens/s (llama_60m/130m × AdamW/GaLore)
#        torch  — the same with PyTorch eager + cuBLAS (perf/gpu/torch_reference.py)
#        7b     — the LLaMA-7B headline step: device pool peak against the plan
# Results (JSON + logs) go to $OUT, which the device tool brings back.
set -euo pipefail
stage=${1:?usage: run.sh check|bench|torch|7b}
out=${OUT:-/tmp/gpu-out}
mkdir -p "$out"
app=/tmp/tensorlite-perf
if [ "$stage" != torch ] && [ ! -x "$app/TensorLite.Perf" ]; then
    mkdir -p "$app" && tar -xJf .gpu/app.tar.xz -C "$app"
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$out/gpu.csv" 2>&1 || true
case "$stage" in
    check) "$app/TensorLite.Perf" gpu-check --device cuda --out "$out/check.json" 2>&1 | tee "$out/check.log" ;;
    bench) "$app/TensorLite.Perf" gpu-bench --device cuda --out "$out/tensorlite.json" 2>&1 | tee "$out/bench.log" ;;
    torch) python3 perf/gpu/torch_reference.py --device cuda --out "$out/torch.json" 2>&1 | tee "$out/torch.log" ;;
    7b)    "$app/TensorLite.Perf" gpu-7b --device cuda --out "$out/7b.json" 2>&1 | tee "$out/7b.log" ;;
    *) echo "unknown stage '$stage' (check, bench, torch or 7b)" >&2; exit 2 ;;
esac
