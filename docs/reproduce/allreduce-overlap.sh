#!/usr/bin/env bash
# Step time of data-parallel training with the gradient all-reduce overlapped with backward or after it
# (docs/distributed.md, "Overlapping the all-reduce with backward"): llama_20m, 4 × 256 tokens × 2 micro-batches per
# step, one process against two (each taking one micro-batch), --allreduce-overlap off and on alternated, for AdamW
# (dense sums) and GaLore rank 128 (projected sums). Prints per run the median step time of steps 2–9 (from the
# cumulative tokens/s in metrics.jsonl; step 1 warms up, step 10 evaluates), rank 0's time in collectives and the time
# its steps waited after backward for their gradient sums over the same steps, and the load average before and after.
# Usage (from the repository root): bash docs/reproduce/allreduce-overlap.sh [STEPS]. Needs jq and Open MPI.
set -euo pipefail
steps=${1:-10}
out=runs/allreduce-overlap
tl() { dotnet src/TensorLite.Cli/bin/Release/net10.0/TensorLite.Cli.dll "$@"; }
dotnet build -c Release src/TensorLite.Cli >/dev/null
rm -rf "$out"
mkdir -p "$out"
common=(--model llama_20m --tokenizer byte --batch 4 --seq 256 --grad-accum 2 --steps "$steps" --eval-every 1000
        --checkpoint-every 1000 --log-every 1 --synthetic-bytes 400000)
tokens=$((4 * 256 * 2))
# Median seconds per step over steps 2..steps-1, from consecutive cumulative tokens/s records.
report() {
  jq -s -r --argjson tok "$tokens" --argjson last "$((steps - 1))" '
    [ .[] | {step, t: (.step * $tok / .tokens_per_s), c: (.collective_s // 0), w: (.allreduce_wait_s // 0)} ] as $r
    | [ range(1; $last) | ($r[.].t - $r[. - 1].t) ] | sort as $d
    | ($d | if length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end) as $median
    | ($r[$last - 1].t - $r[0].t) as $span
    | [ ($median | . * 1000 | round / 1000), ($tok / $median | round),
        (($r[$last - 1].c - $r[0].c) | . * 100 | round / 100), (($r[$last - 1].w - $r[0].w) | . * 100 | round / 100),
        ($span | . * 100 | round / 100) ] | @tsv' "$1/metrics.jsonl"
}
printf 'run\tmedian s/step\ttokens/s\tcollectives s (steps 2-%d)\twaited after backward s\twall s (steps 2-%d)\tload before -> after\n' "$((steps - 1))" "$((steps - 1))"
run() {
  local name=$1; shift
  local before; before=$(cut -d' ' -f1 /proc/loadavg)
  tl train "${common[@]}" --out "$out/$name" "$@" >"$out/$name.log" 2>&1
  printf '%s\t%s\t%s -> %s\n' "$name" "$(report "$out/$name")" "$before" "$(cut -d' ' -f1 /proc/loadavg)"
}
for method in adamw galore; do
  flags=()
  [ "$method" = galore ] && flags=(--optimizer galore --rank 128 --update-gap 200)
  run "$method-1proc" "${flags[@]}"
  run "$method-2proc-off" "${flags[@]}" --nproc 2 --allreduce-overlap off
  run "$method-2proc-on" "${flags[@]}" --nproc 2 --allreduce-overlap on
  run "$method-2proc-off-b" "${flags[@]}" --nproc 2 --allreduce-overlap off
  run "$method-2proc-on-b" "${flags[@]}" --nproc 2 --allreduce-overlap on
done
