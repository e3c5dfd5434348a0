#!/usr/bin/env bash
# Anomaly detection on the embedded MNIST (bench/RESULTS.md "Anomaly detection"):
#  1. Leave-one-class-out: for each digit k, a VAE (the default recipe: 784-512-512-32,
#     4,000 steps) trained on the other nine (`mnist+without=k`), then
#     `deepgen detect` of mnist:test+only=k against mnist:test+without=k with
#     five scores: nll (importance-weighted, k=100), elbo, recon, typicality and complexity.
#  2. Corrupted inputs: the VAE and a PixelCNN trained on all ten digits, against
#     mnist:test+{noise,uniform,invert,rotate,flip,shrink}, scored by nll,
#     typicality and complexity.
# Then `python3 bench/anomaly_summary.py OUT` prints the tables.
#   BIN=target/release/deepgen bash bench/anomaly_table.sh [OUT_DIR]   # ~40 min on 2 cores
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-/tmp/deepgen-anomaly}
BIN=${BIN:-target/release/deepgen}
DIGITS=${DIGITS:-0 1 2 3 4 5 6 7 8 9}
mkdir -p "$OUT"
[ -x "$BIN" ] || cargo build --release -p deepgen-cli
for k in $DIGITS; do
  run="$OUT/loo-$k"
  [ -f "$run/model.safetensors" ] || "$BIN" train vae --data "mnist+without=$k" --out "$run" > "$run.log" 2>&1
  for s in nll elbo recon typicality complexity; do
    "$BIN" detect "$run" --data "mnist:test+without=$k" --anomalies "mnist:test+only=$k" --score "$s" --out "$run/detect-$s" > "$run/detect-$s.log" 2>&1
    echo "digit $k $s: $(grep -o 'AUROC [0-9.]*' "$run/detect-$s.log")"
  done
done
for m in vae pixelcnn; do
  run="$OUT/all-$m"
  [ -f "$run/model.safetensors" ] || "$BIN" train "$m" --data mnist --out "$run" > "$run.log" 2>&1
  for c in noise uniform invert rotate flip shrink; do
    for s in nll typicality complexity; do
      "$BIN" detect "$run" --data mnist:test --anomalies "mnist:test+$c" --score "$s" --out "$run/detect-$c-$s" > "$run/detect-$c-$s.log" 2>&1
      echo "$m +$c $s: $(grep -o 'AUROC [0-9.]*' "$run/detect-$c-$s.log")"
    done
  done
done
python3 bench/anomaly_summary.py "$OUT"
