#!/usr/bin/env bash
# Training throughput of every method on the comparison's model (docs/results.md, "Compute"): the claims about compute
# (GRASS "at less compute", FRUGAL's cheap state-free part) need step times measured side by side on a quiet machine,
# which the long comparison runs cannot give. Each method trains the same llama_20m-shaped byte model with the same
# batch as comparison.sh; the figure is the wall time between the logs at steps 50 and 250: 200 steps holding exactly
# one projection refresh (T = 200), so the refresh is amortized as in a long run, and no evaluation (it runs only at the
# last step). Methods run interleaved, ROUNDS times; the table gives the median of the rounds.
# Usage (from the repository root, nothing else running): [ROUNDS=3] [BATCH=8] bash docs/reproduce/method-throughput.sh
# Needs jq. The "vs AdamW" column takes the first method as its baseline, so keep adamw first.
set -euo pipefail
rounds=${ROUNDS:-3}
methods=${METHODS:-"adamw galore osd grass frugal lora"}
batch=${BATCH:-8}
out=runs/throughput-batch$batch
tl() { dotnet run -c Release --no-build --project src/TensorLite.Cli -- "$@"; }
dotnet build -c Release src/TensorLite.Cli >/dev/null
mkdir -p "$out"
model=docs/results/compare-steps2000-batch8/byte_20m.json # the comparison's model, kept with its raw metrics
. "$(dirname "$0")/methods.sh" # method_flags, as comparison.sh trains each method
# Seconds from the log at step a to the log at step b: tokens_per_s is the run's average since its start.
seconds_between() { jq -rs --argjson a "$2" --argjson b "$3" \
  '(map(select(.step == $b))[0] | .tokens / .tokens_per_s) - (map(select(.step == $a))[0] | .tokens / .tokens_per_s)' "$1"; }
for round in $(seq 1 "$rounds"); do
  for method in $methods; do
    dir="$out/$method-round$round"
    rm -rf "$dir"
    # shellcheck disable=SC2046
    tl train --model "$model" --steps 275 --warmup 25 --eval-every 1000 --log-every 25 --batch "$batch" \
      --checkpoint-every 1000 --seed 1 $(method_flags "$method") --out "$dir" >/dev/null
    echo "$method round $round: $(seconds_between "$dir/metrics.jsonl" 50 250) s for steps 51-250"
  done
done
echo "## Steps 51-250 (one refresh), batch $batch × 128 tokens, median of $rounds rounds; $(date -u '+%Y-%m-%d %H:%M') UTC"
echo "| method | ms per step | tokens/s | vs AdamW |"
echo "|---|---|---|---|"
base=""
for method in $methods; do
  median=$(for round in $(seq 1 "$rounds"); do seconds_between "$out/$method-round$round/metrics.jsonl" 50 250; done |
    sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
  [ -z "$base" ] && base=$median
  awk -v m="$method" -v s="$median" -v b="$base" -v t=$((200 * batch * 128)) \
    'BEGIN { printf "| %s | %.1f | %.0f | %+.1f%% |\n", m, s * 5, t / s, (s / b - 1) * 100 }'
done
