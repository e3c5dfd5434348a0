#!/bin/bash
# Issue 25: the part-to-whole (puzzle) GAN on the embedded digits, 3 key patches of 11 px per
# image, against the pasted-patches and nearest-training-image baselines (bench/RESULTS.md,
# "Puzzle GAN"). About 15 minutes on 2 cores for the first run, 100 for the second.
# Usage: bench/puzzle.sh [WORKDIR] [BIN].
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if [ -n "${2:-}" ]; then D=$2; else
  cargo build --release --manifest-path "$root/Cargo.toml" -p deepgen-cli
  D="$root/target/release/deepgen"
fi
work=${1:-puzzle-work}
mkdir -p "$work/runs" && cd "$work"
t() { local name=$1; shift; [ -f "runs/$name/model.safetensors" ] || "$D" "$@" --out "runs/$name" > "$name.log" 2>&1; }
t classifier train classifier --data mnist
t puzzle train puzzle-gan --data mnist --seed 0
[ -f eval-puzzle.txt ] || "$D" eval runs/puzzle --classifier runs/classifier --only assembly -n 2000 > eval-puzzle.txt 2>&1
cat eval-puzzle.txt
# The second attempt (about 100 minutes on 2 cores): three times the iterations.
t puzzle-6k train puzzle-gan --data mnist --seed 0 --steps 6000
[ -f eval-6k.txt ] || "$D" eval runs/puzzle-6k --classifier runs/classifier --only assembly -n 2000 > eval-6k.txt 2>&1
cat eval-6k.txt
