#!/usr/bin/env bash
# The fair comparison of issue 17 (docs/results.md, "The comparison"): every method at its reference pre-training
# defaults (the presets; docs/optimizers.md has the table) and with a small learning-rate sweep (½× and 2× the
# default), 3 seeds each, on a llama_20m-shaped byte model (hidden 256, intermediate 688, 4 layers, 4 heads, vocabulary
# 256) for STEPS steps, on the embedded synthetic language and on tinyshakespeare. It prints, per dataset and cell,
# mean ± sample standard deviation of the final validation loss over the seeds (on the whole validation split, the
# same tokens for every seed: whole-split.txt, and on the training's 16 sampled batches), the optimizer-state bytes and
# tokens/s, and keeps every run folder (metrics.jsonl and whole-split.txt are the raw data) under runs/compare.
# Long: at ~1 s per 2048-token step on 2 cores, 5000 steps × 6 methods × 3 lrs × 3 seeds × 2 datasets is weeks of CPU;
# run it on a bigger machine (--device auto uses a GPU) or in slices: METHODS="galore osd" SEEDS="1" bash … .
# Methods: any name docs/reproduce/methods.sh reads (grass-topnorm, grass@scale=0.25).
# Usage (from the repository root): [BATCH=16] bash docs/reproduce/comparison.sh [STEPS] [DATASETS]. Needs jq.
# TABLE_ONLY=1 trains nothing and prints the table from the run folders there are; OUT=folder reads or writes another
# folder than runs/compare/steps<STEPS>-batch<BATCH> (docs/results.md's tables: OUT=docs/results/compare-steps2000-batch8).
set -euo pipefail
steps=${1:-5000}
datasets=${2:-"embedded shakespeare"}
methods=${METHODS:-"adamw galore osd grass frugal lora"}
seeds=${SEEDS:-"1 2 3"}
lr_factors=${LR_FACTORS:-"1 0.5 2"}
device=${DEVICE:-cpu}
batch=${BATCH:-16} # sequences of 128 tokens per step
out=${OUT:-runs/compare/steps$steps-batch$batch}
table_only=${TABLE_ONLY:-}
tl() { dotnet run -c Release --no-build --project src/TensorLite.Cli -- "$@"; }
[ -n "$table_only" ] || dotnet build -c Release src/TensorLite.Cli >/dev/null
mkdir -p "$out"
cat > "$out/byte_20m.json" <<'JSON'
{ "vocab_size": 256, "hidden_size": 256, "intermediate_size": 688, "num_hidden_layers": 4, "num_attention_heads": 4,
  "max_position_embeddings": 1024, "rms_norm_eps": 1e-6, "rope_theta": 10000, "tie_word_embeddings": false,
  "hidden_act": "silu", "model_type": "llama" }
JSON
. "$(dirname "$0")/methods.sh" # optimizer_of, swept_lr, method_flags
common=(--model "$out/byte_20m.json" --steps "$steps" --warmup $((steps / 10)) --eval-every $(( steps >= 20 ? steps / 20 : 1 ))
        --batch "$batch" --eval-batches 16 --log-every 50 --checkpoint-every "$steps" --device "$device")
for data in $datasets; do
  extra=()
  [ "$data" = shakespeare ] && extra=(--data ../shared/data/tinyshakespeare.txt)
  # Seeds outermost, then learning-rate factors: a run cut short still has every method at the first seed and default lr.
  for seed in $seeds; do
    [ -n "$table_only" ] && break
    for f in $lr_factors; do
      for method in $methods; do
        lr=$(swept_lr "$method" "$f")
        dir="$out/$data-$method-lr$lr-seed$seed"
        if ! { [ -f "$dir/metrics.jsonl" ] && grep -q "\"step\":$steps," "$dir/metrics.jsonl"; }; then # done: resumable
          rm -rf "$dir"
          # shellcheck disable=SC2046
          tl train "${common[@]}" "${extra[@]}" $(method_flags "$method") --lr "$lr" --seed "$seed" \
            --out "$dir" | tail -n 1
        fi
        # The final model on the whole validation split: the same tokens for every seed and method (the training's
        # evaluations sample 16 batches from the seed). Written whole or not at all; a failure leaves the cell to the table's "—".
        [ -f "$dir/whole-split.txt" ] || { tl eval --run "$dir" --whole-split > "$dir/whole-split.tmp" &&
                                           mv "$dir/whole-split.tmp" "$dir/whole-split.txt"; } || rm -f "$dir/whole-split.tmp"
      done
    done
  done
  echo "## $data, $steps steps (mean ± sd over seeds $seeds)"
  echo "| method | lr | final val loss, whole split | final val loss, 16 sampled batches | optimizer state (MiB) | tokens/s (whole run; depends on the load) |"
  echo "|---|---|---|---|---|---|"
  for method in $methods; do
    for f in $lr_factors; do
      lr=$(swept_lr "$method" "$f")
      for seed in $seeds; do
        dir="$out/$data-$method-lr$lr-seed$seed"
        [ -f "$dir/metrics.jsonl" ] && grep -q "\"step\":$steps," "$dir/metrics.jsonl" || continue # finished runs only
        whole=$(sed -n 's/.*validation loss \([0-9.]*\) .*/\1/p' "$dir/whole-split.txt" 2>/dev/null || true)
        printf '%s\t' "${whole:--}"
        jq -r 'select(.val_loss != null) | [.val_loss, .optimizer_state_bytes, .tokens_per_s] | @tsv' "$dir/metrics.jsonl" | tail -n 1
      done | awk -v name="$method" -v lr="$lr" '
        function cell(k, s, ss) { if (k == 0) return "—"; m = s / k
                                  return sprintf("%.4f ± %.4f (n=%d)", m, k > 1 ? sqrt((ss - k * m * m) / (k - 1)) : 0, k) }
        { n++; if ($1 != "-") { w++; ws += $1; wss += $1 * $1 } s += $2; ss += $2 * $2; mem = $3; tps += $4 }
        END { if (n == 0) exit
              printf "| %s | %s | %s | %s | %.2f | %.0f |\n", name, lr, cell(w, ws, wss), cell(n, s, ss), mem / 1048576, tps / n }'
    done
  done
done
