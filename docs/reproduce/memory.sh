#!/usr/bin/env bash
# Planner vs measured peak memory. For each model and optimizer setting: `tensorlite plan` (the prediction, from the
# meta backend) next to a real two-step `tensorlite train` (peak tensor bytes from the engine's ledger, and the
# process's peak RSS from /usr/bin/time -v). Prints a markdown table.
#   bash docs/reproduce/memory.sh "llama_20m llama_60m llama_130m" [seq] [batch]
#   SETTINGS=$'--optimizer adamw --weights bf16 --per-layer\n--optimizer grass --rank 512 --weights bf16 --per-layer' \
#     bash docs/reproduce/memory.sh llama_1b 256 1
set -euo pipefail
models=${1:-"llama_20m llama_60m llama_130m"}
seq=${2:-256}
batch=${3:-2}
cd "$(dirname "$0")/../.."
dotnet build -c Release src/TensorLite.Cli >/dev/null
cli="dotnet src/TensorLite.Cli/bin/Release/net10.0/TensorLite.Cli.dll"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# One setting per line in $SETTINGS overrides the default list.
if [[ -n "${SETTINGS:-}" ]]; then
  mapfile -t settings <<< "$SETTINGS"
else
  settings=(
    "--optimizer adamw"
    "--optimizer galore --projection rsvd --rank 128"
    "--optimizer osd --rank 128"
    "--optimizer grass --rank 128"
    "--optimizer frugal"
    "--optimizer adamw --states 8bit --weights bf16 --per-layer"
    "--optimizer galore --projection rsvd --rank 128 --states 8bit --weights bf16 --per-layer --checkpoint-layers"
    "--optimizer adamw --states factored --weights bf16 --per-layer"
  )
fi
echo "| model | settings | planned tensors | measured tensors | error | planned process | measured peak RSS | error |"
echo "|---|---|---|---|---|---|---|---|"
for model in $models; do
  for s in "${settings[@]}"; do
    common="--model $model --seq $seq --batch $batch $s"
    $cli plan $common > "$work/plan.txt"
    run="$work/run-$RANDOM"
    /usr/bin/time -v $cli train $common --steps 2 --eval-batches 1 --synthetic-bytes 200000 --out "$run" \
      > "$work/train.txt" 2> "$work/time.txt"
    python3 - "$work/plan.txt" "$run/metrics.jsonl" "$work/time.txt" "$model" "$s" <<'PY'
import json, re, sys
plan, metrics, timing, model, setting = sys.argv[1:]
def gib(line):
    v, unit = re.search(r"([\d.]+) (GiB|MiB)", line).groups()
    return float(v) * (1 if unit == "GiB" else 1 / 1024)
lines = open(plan).read().splitlines()
planned_tensors = gib(next(l for l in lines if l.strip().startswith("tensors")))
planned_process = gib(next(l for l in lines if l.strip().startswith("predicted peak")))
last = json.loads(open(metrics).read().splitlines()[-1])
measured_tensors = last["peak_tensor_bytes"] / 2**30
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(timing).read()).group(1)) / 2**20
pct = lambda p, m: f"{100 * (p - m) / m:+.1f}%"
print(f"| {model} | `{setting}` | {planned_tensors:.3f} GiB | {measured_tensors:.3f} GiB | {pct(planned_tensors, measured_tensors)} "
      f"| {planned_process:.3f} GiB | {rss:.3f} GiB | {pct(planned_process, rss)} |")
PY
  done
done
