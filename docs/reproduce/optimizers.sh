#!/usr/bin/env bash
# Reproduces docs/results.md: byte_small trained with dense AdamW and each projected optimizer at the same
# rank/density, on the embedded synthetic language and on tinyshakespeare (byte tokenizer).
# Usage (from the repository root): bash docs/reproduce/optimizers.sh [STEPS] [DATASETS]
set -euo pipefail
steps=${1:-300}
datasets=${2:-"embedded shakespeare"}
out=runs/repro
tl() { dotnet run -c Release --no-build --project src/TensorLite.Cli -- "$@"; }
dotnet build -c Release src/TensorLite.Cli >/dev/null
mkdir -p "$out" docs/images
# rank 48 = hidden/4 and density 0.25, the ratio of the GaLore paper's 60M runs (rank 128 of 512).
common=(--model byte_small --steps "$steps" --warmup 30 --eval-every 25 --log-every 25 --checkpoint-every "$steps")
for data in $datasets; do
  extra=()
  [ "$data" = shakespeare ] && extra=(--data ../shared/data/tinyshakespeare.txt)
  run() { name=$1; shift; rm -rf "$out/$data-$name"; tl train "${common[@]}" "${extra[@]}" --out "$out/$data-$name" "$@" | tail -n 2; }
  run adamw        --optimizer adamw  --lr 3e-3
  run galore-svd   --optimizer galore --rank 48 --update-gap 50 --projection svd  --lr 1e-2 --scale 0.25
  run galore-rsvd  --optimizer galore --rank 48 --update-gap 50 --projection rsvd --lr 1e-2 --scale 0.25
  run osd          --optimizer osd    --rank 48 --lr 1e-2 --scale 0.25
  run grass        --optimizer grass  --rank 48 --update-gap 50 --projection topnorm --lr 3e-3
  run frugal       --optimizer frugal --density 0.25 --update-gap 50 --projection blocks --residual signsgd --lr 3e-3
  tl plot "$out/$data"-* --out "docs/images/optimizers-$data.png" --title "byte_small, $data, $steps steps"
done
