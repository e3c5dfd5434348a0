#!/usr/bin/env bash
# The autoregressive table of bench/RESULTS.md: every explicit model on the
# embedded MNIST (statically binarized, seed $SEED), the same budget
# ($STEPS steps of $BATCH, Adam, each model's default learning rate), then
# the exact test NLL on the 2,000 test digits and sampling speed (the
# model's sampler, and the naive full-forward-per-pixel sampler).
#   bash bench/ar_table.sh                 # builds, then runs everything
#   B=path/to/deepgen-bench bash bench/ar_table.sh   # with a prebuilt binary
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${STEPS:-2000}
BATCH=${BATCH:-64}
SEED=${SEED:-0}
SAMPLES=${SAMPLES:-16}
if [ -z "${B:-}" ]; then
  cargo build --release -p deepgen-bench
  B=target/release/deepgen-bench
fi
run() { "$B" --steps "$STEPS" --batch "$BATCH" --seed "$SEED" --warmup 10 --sample "$SAMPLES" "$@"; }
run --model fvsbn --lr 0.01
run --model nade --naive
run --model made --naive
run --model pixelcnn --naive
run --model gated-pixelcnn --channels 32
run --model row-lstm
run --model diagonal-bilstm
