#!/usr/bin/env bash
# Mode collapse on the toy mixtures (bench/RESULTS.md): the vanilla GAN and
# the Unrolled GAN (K = 5, differentiated through the critic's updates) on
# toy:ring8 and toy:grid25, 5 seeds each; every run ends with the mode
# report on 2,500 samples (a mode counts with >= 20 of them within 3 sigma).
# Two runs at a time, one thread each.
#   bash bench/modes_table.sh [OUT_DIR]       # ~75 min on 2 cores
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-/tmp/deepgen-modes}
STEPS=${STEPS:-6000}
mkdir -p "$OUT"
cargo build --release -p deepgen-cli
D=target/release/deepgen
export RAYON_NUM_THREADS=1
run() { # model data seed
  local dir="$OUT/$1-$2-$3"
  rm -rf "$dir"
  $D train "$1" --data "toy:$2" --steps "$STEPS" --schedule cosine --d-lr 2e-4 --seed "$3" --out "$dir" > "$dir.log" 2>&1
  $D eval "$dir" -n 2500 > "$dir.eval" 2>&1   # writes eval.json (the same draws as the end of training)
  echo "$1 $2 seed $3: $(grep 'modes covered' "$dir.log")"
}
for seed in 0 1 2 3 4; do
  run gan ring8 "$seed" & run gan grid25 "$seed"; wait
done
for seed in 0 1 2 3 4; do
  run unrolled-gan ring8 "$seed" & run unrolled-gan grid25 "$seed"; wait
done
python3 bench/modes_summary.py "$OUT"
