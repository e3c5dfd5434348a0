#!/bin/bash
# Issue 25: the text-conditional GAN's four variants (GAN, GAN-CLS, GAN-INT, GAN-INT-CLS) on the
# embedded digits with their built-in captions, the held-out attribute combinations left out of
# training (bench/RESULTS.md, "Text-conditional GAN"). About 30 minutes on 2 cores, one run after
# another. Usage: bench/textgan.sh [WORKDIR] [BIN] (BIN: a deepgen binary instead of a build).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if [ -n "${2:-}" ]; then D=$2; else
  cargo build --release --manifest-path "$root/Cargo.toml" -p deepgen-cli
  D="$root/target/release/deepgen"
fi
work=${1:-textgan-work}
mkdir -p "$work/runs" && cd "$work"
t() { local name=$1; shift; [ -f "runs/$name/model.safetensors" ] || "$D" "$@" --out "runs/$name" > "$name.log" 2>&1; }
data=mnist+captions+seen
t classifier train classifier --data mnist
# The GAN's text encoder, and a second matcher trained apart (another seed) that judges
# R-precision.
t matcher train text-matcher --data $data --seed 0
t judge train text-matcher --data $data --seed 1
# The four variants side by side at 2,000 iterations, and GAN-INT-CLS at the recipe's 8,000.
for v in gan cls int int-cls; do
  t "tg-$v" train text-gan --data $data --text-encoder runs/matcher --text-variant "$v" --seed 0 --steps 2000
done
t tg-int-cls-8k train text-gan --data $data --text-encoder runs/matcher --seed 0
for v in gan cls int int-cls int-cls-8k; do
  [ -f "eval-tg-$v.txt" ] || "$D" eval "runs/tg-$v" --classifier runs/classifier --matcher runs/judge \
    --only quality,text -n 1000 > "eval-tg-$v.txt" 2>&1
done
tail -n +1 matcher.log judge.log | grep "R-precision"
grep -H "FID-on-MNIST\|digit agreement" eval-tg-*.txt
