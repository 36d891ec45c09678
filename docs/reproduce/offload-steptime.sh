#!/usr/bin/env bash
# Step time with and without optimizer offload (docs/offload.md): llama_20m, per-layer updates, 8 steps per setting,
# settings interleaved in each round. Prints the mean step time of steps 3-7 and, with offload, the host update time,
# the device's wait and the bytes moved per step.
# Usage (from the repository root): bash docs/reproduce/offload-steptime.sh [ROUNDS] [methods|schedules]
#   methods (default): adamw and lsp, each without offload and offloaded (overlapped schedule);
#   schedules: dense adamw and lsp offload, each with --offload-schedule serial, overlap and deferred.
set -euo pipefail
rounds=${1:-2}
set_name=${2:-methods}
dotnet build -c Release src/TensorLite.Cli >/dev/null
cli="dotnet src/TensorLite.Cli/bin/Release/net10.0/TensorLite.Cli.dll"
common="--model llama_20m --batch 4 --seq 128 --steps 8 --log-every 1 --eval-every 1000 --eval-batches 1 --synthetic-bytes 2000000 --per-layer"
case "$set_name" in
  methods) settings=("--optimizer adamw" "--optimizer adamw --offload dense" "--optimizer lsp --rank 128" "--optimizer lsp --rank 128 --offload lsp") ;;
  schedules)
    settings=()
    for method in "--optimizer adamw --offload dense" "--optimizer lsp --rank 128 --offload lsp"; do
      for schedule in serial overlap deferred; do settings+=("$method --offload-schedule $schedule"); done
    done ;;
  *) echo "usage: $0 [ROUNDS] [methods|schedules]" >&2; exit 2 ;;
esac
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for round in $(seq "$rounds"); do
  for setting in "${settings[@]}"; do
    out="$work/run-$RANDOM"
    echo "round $round, $(uptime | sed 's/.*load/load/')"
    $cli train $common $setting --out "$out" > /dev/null
    python3 - "$out/metrics.jsonl" "$setting" <<'PY'
import json, sys
rows = {r["step"]: r for r in map(json.loads, open(sys.argv[1]))}
elapsed = lambda k: rows[k]["tokens"] / rows[k]["tokens_per_s"]
steps = range(3, 8)
mean = lambda field: sum(rows[k].get(field) or 0 for k in steps) / len(steps)
line = f"| `{sys.argv[2]}` | {(elapsed(7) - elapsed(2)) / 5:.3f} s |"
if rows[7].get("offload_host_s") is not None:
    line += (f" host {mean('offload_host_s'):.3f} s, waited {mean('offload_wait_s'):.3f} s,"
             f" moved {rows[7]['offload_bytes_to_host']:,} + {rows[7]['offload_bytes_to_device']:,} bytes |")
print(line)
PY
  done
done
