#!/bin/bash
# Issue 24: Progressive GAN against the DCGAN on the embedded digits (3 seeds, at equal images
# shown and at equal training time) and on Stacked MNIST (bench/RESULTS.md, "Progressive GAN").
# About 2.5 hours on 2 cores, one run after another. Usage: bench/progan.sh [WORKDIR] [BIN]
# (BIN: a deepgen binary to use instead of building one).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if [ -n "${2:-}" ]; then D=$2; else
  cargo build --release --manifest-path "$root/Cargo.toml" -p deepgen-cli
  D="$root/target/release/deepgen"
fi
work=${1:-progan-work}
mkdir -p "$work/runs" && cd "$work"
t() { local name=$1; shift; [ -f "runs/$name/model.safetensors" ] || "$D" "$@" --out "runs/$name" > "$name.log" 2>&1; }
secs() { python3 -c "import json,sys; print(max(json.loads(l).get('elapsed_s',0) for l in open(sys.argv[1])))" "runs/$1/metrics.jsonl"; }
t classifier train classifier --data mnist
# Equal images shown: 64,000 (ProGAN at batch 32 with 7 phases of 9,142 images: 4 stable, 8 fading
# in, 8, 16 fading in, 16, 32 fading in, 32; the DCGAN at its recipe batch 64).
for s in 0 1 2; do
  t "pg-$s" train progan --data mnist --batch-size 32 --steps 2000 --stabilise-images 9142 --fade-images 9142 --seed "$s"
  t "dc-$s" train dcgan --data mnist --steps 1000 --seed "$s"
done
# The attempt at the FID goal: the critic 5 steps per generator step (WGAN-GP's n_critic; the
# paper's is 1), the same 64,000 images shown: 400 iterations of 5 critic batches of 32 (seeds 0
# and 1 were run for bench/RESULTS.md).
for s in 0 1; do
  t "pgn5-$s" train progan --data mnist --batch-size 32 --n-critic 5 --steps 400 --stabilise-images 9142 --fade-images 9142 --seed "$s"
done
# The second attempt (second session): a lower learning rate for both players, on seed 1 (the seed
# that collapsed), alone and with five critic steps.
t pglr-1 train progan --data mnist --batch-size 32 --steps 2000 --stabilise-images 9142 --fade-images 9142 --lr 0.0002 --d-lr 0.0002 --seed 1
t pglrn5-1 train progan --data mnist --batch-size 32 --n-critic 5 --steps 400 --stabilise-images 9142 --fade-images 9142 --lr 0.0002 --d-lr 0.0002 --seed 1
# Equal training time: the DCGAN continued from its 1,000 steps to the ProGAN's seconds at its
# own measured speed.
for s in 0 1 2; do
  if [ ! -f "runs/dcw-$s/.done" ]; then
    rate=$(python3 -c "print(1000 / $(secs "dc-$s"))")
    steps=$(python3 -c "print(int(round($(secs "pg-$s") * $rate)))")
    rm -rf "runs/dcw-$s" && cp -r "runs/dc-$s" "runs/dcw-$s"
    "$D" train --resume "runs/dcw-$s" --steps "$steps" > "dcw-$s.log" 2>&1 && touch "runs/dcw-$s/.done"
  fi
done
# Stacked MNIST (Karras et al. Sec. 5.3 and Table 4, after Metz et al.): three digits as colour
# channels, 1,000 modes counted by the digit classifier on each channel.
t pg-stacked train progan --data stacked-mnist --batch-size 32 --steps 2000 --stabilise-images 9142 --fade-images 9142 --seed 0
t dc-stacked train dcgan --data stacked-mnist --steps 1000 --seed 0
for r in pg-0 pg-1 pg-2 pgn5-0 pgn5-1 pglr-1 pglrn5-1 dc-0 dc-1 dc-2 dcw-0 dcw-1 dcw-2 pg-stacked dc-stacked; do
  [ -f "eval-$r.txt" ] || "$D" eval "runs/$r" --classifier runs/classifier --only quality,swd > "eval-$r.txt" 2>&1
done
grep -H "FID-on-MNIST\|SWD\|MS-SSIM\|stacked-MNIST\|training time" eval-*.txt
