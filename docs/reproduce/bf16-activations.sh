#!/usr/bin/env bash
# fp32 vs bf16 activations. For each model and activation dtype: the plan (`tensorlite plan`: planned activations and
# tensors at the peak) next to a real four-step `tensorlite train` with the same options (the engine ledger's peak
# tensor bytes, /usr/bin/time -v's peak RSS, and seconds per step from steps 2-3, after the first step's warm-up).
# Prints a markdown table.
#   bash docs/reproduce/bf16-activations.sh "llama_60m llama_130m" [seq] [batch] [extra options]
set -euo pipefail
models=${1:-"llama_60m llama_130m"}
seq=${2:-256}
batch=${3:-2}
extra=${4:-"--weights bf16"}
cd "$(dirname "$0")/../.."
dotnet build -c Release src/TensorLite.Cli >/dev/null
cli="dotnet src/TensorLite.Cli/bin/Release/net10.0/TensorLite.Cli.dll"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "| model | settings | planned activations | planned tensors | measured tensors | error | measured peak RSS | s/step |"
echo "|---|---|---|---|---|---|---|---|"
for model in $models; do
  for act in fp32 bf16; do
    common="--model $model --seq $seq --batch $batch $extra --activations $act"
    $cli plan $common > "$work/plan.txt"
    run="$work/run-$RANDOM"
    /usr/bin/time -v $cli train $common --steps 4 --log-every 1 --eval-every 100 --eval-batches 1 \
      --synthetic-bytes 200000 --out "$run" > "$work/train.txt" 2> "$work/time.txt"
    python3 - "$work/plan.txt" "$run/metrics.jsonl" "$work/time.txt" "$model" "$extra --activations $act" $((seq * batch)) <<'PY'
import json, re, sys
plan, metrics, timing, model, setting, tokens = sys.argv[1:]
def gib(line):
    v, unit = re.search(r"([\d.]+) (GiB|MiB)", line).groups()
    return float(v) * (1 if unit == "GiB" else 1 / 1024)
lines = open(plan).read().splitlines()
planned_act = gib(next(l for l in lines if l.strip().startswith("activations")))
planned_tensors = gib(next(l for l in lines if l.strip().startswith("tensors")))
rows = [json.loads(l) for l in open(metrics).read().splitlines()]
elapsed = {r["step"]: r["step"] * int(tokens) / r["tokens_per_s"] for r in rows}
per_step = (elapsed[3] - elapsed[1]) / 2
measured = rows[-1]["peak_tensor_bytes"] / 2**30
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(timing).read()).group(1)) / 2**20
print(f"| {model} | `{setting}` | {planned_act:.3f} GiB | {planned_tensors:.3f} GiB | {measured:.3f} GiB "
      f"| {100 * (planned_tensors - measured) / measured:+.1f}% | {rss:.3f} GiB | {per_step:.1f} |")
PY
  done
done
