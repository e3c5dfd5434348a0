#!/usr/bin/env bash
# Mode collapse on the toy mixtures (bench/RESULTS.md): the vanilla GAN and
# the Unrolled GAN (K = 5, differentiated through the critic's updates),
# 5 seeds each; every run ends with the mode report on 2,500 samples (a mode
# counts with >= 20 of them within 3 sigma), and `deepgen eval` writes it
# to report/modes.json. JOBS runs at a time (default 2), one thread each.
#   bash bench/modes_table.sh [OUT_DIR]     # ring8: ~80 min (unrolled) + ~10 min (vanilla) on 2 cores
#   DATA="ring8 grid25" MODELS="gan unrolled-gan" SEEDS="0 1 2 3 4" STEPS=10000 bash bench/modes_table.sh
# The grid25 Unrolled GAN rows (K = 10 on one batch, critic lr 1e-4; five runs at once on 2 cores):
#   DATA=grid25 MODELS=unrolled-gan STEPS=12000 D_LR=1e-4 EXTRA="--unroll 10 --unroll-same-batch" JOBS=5 bash bench/modes_table.sh   # ~70 min
#   the same with STEPS=20000 and EXTRA="--unroll 10 --unroll-same-batch --d-schedule constant": ~31 min a run at one thread, two at a time
# The sixth session's grid25 rows (PacGAN's batch-normed 4 x 400 generator with z of 2 against Metz et al.'s critic):
#   DATA=grid25 MODELS=unrolled-gan STEPS=20000 D_LR=1e-4 EXTRA="--g-norm --hidden 400,400,400,400 --latent 2 --unroll 10 --unroll-same-batch --d-schedule constant --g-ema 0.999" bash bench/modes_table.sh   # ~45 min a run, two at a time
#   (report/modes.json scores the generator's weight average; add `deepgen eval DIR --live-generator --out DIR/live` for the live weights)
# The seventh session's rows: the same with D_LR=2e-4 and without --g-ema (~47 min a run, two at a time).
# The eighth session's rows: the seventh's with --noise uniform added to EXTRA.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-/tmp/deepgen-modes}
STEPS=${STEPS:-10000}
DATA=${DATA:-ring8}
MODELS=${MODELS:-unrolled-gan gan}
SEEDS=${SEEDS:-0 1 2 3 4}
D_LR=${D_LR:-2e-4}
EXTRA=${EXTRA:-}
JOBS=${JOBS:-2}
mkdir -p "$OUT"
cargo build --release -p deepgen-cli
export OUT STEPS D_LR EXTRA RAYON_NUM_THREADS=1
run() { # model data seed
  local dir="$OUT/$1-$2-$3"
  rm -rf "$dir"
  target/release/deepgen train "$1" --data "toy:$2" --steps "$STEPS" --schedule cosine --d-lr "$D_LR" $EXTRA --seed "$3" --out "$dir" > "$dir.log" 2>&1
  target/release/deepgen eval "$dir" -n 2500 > "$dir.eval" 2>&1   # report/modes.json: the same draws as the end of training
  echo "$1 $2 seed $3: $(grep 'modes covered' "$dir.log")"
}
export -f run
for m in $MODELS; do for d in $DATA; do for s in $SEEDS; do echo "$m $d $s"; done; done; done | xargs -P "$JOBS" -L 1 bash -c 'run "$0" "$1" "$2"'
python3 bench/modes_summary.py "$OUT"
