#!/usr/bin/env bash
# The GPU measurements of docs/gpu.md, one stage per device call (each call may run at most 10 minutes).
#   here:        ../shared/gpu/pack.sh perf/TensorLite.Perf/TensorLite.Perf.csproj     (writes .gpu/app.tar.xz)
#   on the GPU:  device run, carry [".gpu"], command "bash perf/gpu/run.sh STAGE"
# STAGE: check  — the GPU backend against the CPU backend (GEMMs, tiny-LLaMA training runs)
#        bench  — TensorLite GEMM TFLOP/s and training tokens/s (llama_60m/130m × AdamW/GaLore)
#        torch  — the same with PyTorch eager + cuBLAS (perf/gpu/torch_reference.py)
#        7b     — the LLaMA-7B headline step: device pool peak against the plan
#        nccl   — NCCL smoke check (perf/TensorLite.Perf/NcclSmoke.cs): one process, a world of one on the one GPU
#                 (NCCL refuses two ranks on one device), with libnccl.so.2 from PyTorch's nvidia-nccl wheel
# Results (JSON + logs) go to $OUT, which the device tool brings back.
set -euo pipefail
stage=${1:?usage: run.sh check|bench|torch|7b|nccl}
out=${OUT:-/tmp/gpu-out}
mkdir -p "$out"
app=/tmp/tensorlite-perf
if [ "$stage" != torch ] && [ ! -x "$app/TensorLite.Perf" ]; then
    mkdir -p "$app" && tar -xJf .gpu/app.tar.xz -C "$app"
fi
# libnccl.so.2 as PyTorch ships it (nvidia-nccl-cu12: site-packages/nvidia/nccl/lib), or next to torch's own libraries.
find_nccl() {
    python3 - <<'PY' 2>/dev/null || true
import glob, os
found = []
try:
    import nvidia.nccl
    for d in nvidia.nccl.__path__:
        found += sorted(glob.glob(os.path.join(d, "lib", "libnccl.so*")))
except Exception:
    pass
try:
    import torch
    here = os.path.dirname(torch.__file__)
    found += sorted(glob.glob(os.path.join(here, "lib", "libnccl.so*")))
    found += sorted(glob.glob(os.path.join(os.path.dirname(here), "nvidia", "nccl", "lib", "libnccl.so*")))
except Exception:
    pass
print(found[0] if found else "")
PY
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$out/gpu.csv" 2>&1 || true
case "$stage" in
    check) "$app/TensorLite.Perf" gpu-check --device cuda --out "$out/check.json" 2>&1 | tee "$out/check.log" ;;
    bench) "$app/TensorLite.Perf" gpu-bench --device cuda --out "$out/tensorlite.json" 2>&1 | tee "$out/bench.log" ;;
    torch) python3 perf/gpu/torch_reference.py --device cuda --out "$out/torch.json" 2>&1 | tee "$out/torch.log" ;;
    7b)    "$app/TensorLite.Perf" gpu-7b --device cuda --out "$out/7b.json" 2>&1 | tee "$out/7b.log" ;;
    nccl)  lib=$(find_nccl)
           echo "libnccl: ${lib:-not found by python3 (nvidia.nccl or torch); trying the default library names}" | tee "$out/nccl.log"
           python3 -c 'import torch; print("torch", torch.__version__, "nccl", torch.cuda.nccl.version())' >> "$out/nccl.log" 2>&1 || true
           TENSORLITE_NCCL="$lib" "$app/TensorLite.Perf" gpu-nccl --device cuda --out "$out/nccl.json" 2>&1 | tee -a "$out/nccl.log" ;;
    *) echo "unknown stage '$stage' (check, bench, torch, 7b or nccl)" >&2; exit 2 ;;
esac
