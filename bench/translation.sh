#!/bin/bash
# Issue 23: CycleGAN and StarGAN on the embedded digits, the classifiers their evaluation needs,
# and StarGAN against a pairwise CycleGAN (bench/RESULTS.md, "Image-to-image translation").
# About 100 minutes on 2 cores, one run after another. Usage: bench/translation.sh [WORKDIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release --manifest-path "$root/Cargo.toml" -p deepgen-cli -p deepgen-bench
D="$root/target/release/deepgen"
work=${1:-translation-work}
mkdir -p "$work/runs" && cd "$work"
t() { local name=$1; shift; [ -f "runs/$name/model.safetensors" ] || /usr/bin/time -f "%e s" "$D" "$@" --out "runs/$name" > "$name.log" 2>&1; }
# Classifiers of every target domain and attribute (found by eval under runs/).
for s in mnist mnist+invert mnist+rotate digits+upscale=28 digits+upscale=20+pad=4 mnist+attributes mnist+tint=green; do
  t "clf-$(echo "$s" | tr '+=' '--')" classifier train --data "$s"
done
for a in colour thick invert; do t "clf-attr-$a" classifier train --data "mnist+attributes+label=$a"; done
t cg-invert train cyclegan --data mnist --data-b mnist+invert
t cg-uci train cyclegan --data mnist --data-b digits+upscale=28
t cg-uci-pad train cyclegan --data mnist --data-b digits+upscale=20+pad=4
t sg-digits train stargan --data mnist+attributes
t sg-digits-idt train stargan --data mnist+attributes --identity-weight 10
t cg-rotate train cyclegan --data mnist --data-b mnist+rotate
# Equal compute: StarGAN's 2000 iterations cost as much as 4,470 CycleGAN steps (1.37 and 3.06
# steps/s alone on 2 cores), which 66 pairwise CycleGANs (12 domains) share: 68 steps each.
t cg-red-green-eq train cyclegan --data mnist+tint=red --data-b mnist+tint=green --steps 68
t cg-red-green train cyclegan --data mnist+tint=red --data-b mnist+tint=green --steps 1000
for r in cg-invert cg-uci cg-uci-pad sg-digits sg-digits-idt cg-rotate; do "$D" eval "runs/$r" > "eval-$r.txt"; done
"$root/target/release/translation_pair" --from mnist:test+tint=red --to mnist:test+tint=green \
  --classifier runs/clf-mnist-tint-green --cyclegan runs/cg-red-green-eq \
  --stargan runs/sg-digits --stargan-to green,not-thick,not-invert > pair.txt
"$root/target/release/translation_pair" --from mnist:test+tint=red --to mnist:test+tint=green \
  --classifier runs/clf-mnist-tint-green --cyclegan runs/cg-red-green \
  --stargan runs/sg-digits-idt --stargan-to green,not-thick,not-invert >> pair.txt
cat eval-*.txt pair.txt
