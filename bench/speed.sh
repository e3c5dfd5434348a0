#!/usr/bin/env bash
# Issue 28: deepgen against PyTorch on this CPU, every benchmarked family, as
# interleaved pairs (deepgen, then PyTorch, PAIRS times) of short runs, 2 threads
# each, on the same exported bits; then sampling speed; then the GEMM rates and
# the step profiles (FLOPs per step). Prints JSON lines; bench/RESULTS.md
# "Speed against PyTorch (issue 28)" is this script's output.
#   bash bench/speed.sh            # ~30 minutes on 2 cores; needs .venv with torch
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DATA=${DATA:-/tmp/deepgen-bench-data}
PAIRS=${PAIRS:-3}
export RAYON_NUM_THREADS=2
cargo build --release -p deepgen-bench
B=target/release/deepgen-bench
$B --model vae --steps 21 --export "$DATA" > /dev/null
T="$PY bench/torch_ref.py --data $DATA --threads 2"
pair() { # model batch steps warmup [torch-only flags]
  local m=$1 b=$2 s=$3 w=$4; shift 4
  for i in $(seq "$PAIRS"); do
    $B --model "$m" --batch "$b" --steps "$s" --warmup "$w"
    $T --model "$m" --batch "$b" --steps "$s" --warmup "$w" "$@"
  done
}
echo "# training steps"
pair vae 128 520 20
pair pixelcnn 64 70 10
pair pixelcnn 128 40 5
pair nade 128 40 5 --nade-impl loop
$T --model nade --batch 128 --steps 8 --warmup 3 --nade-impl cumsum
pair made 64 320 20
pair gated-pixelcnn 64 25 5
pair row-lstm 64 15 3
pair diagonal-bilstm 64 8 2
target/release/gan_bench --steps 21 --warmup 20 --export "$DATA/mnist-grey.npy" > /dev/null
for i in $(seq "$PAIRS"); do
  target/release/gan_bench --steps 50 --warmup 10
  $PY bench/torch_dcgan.py --data "$DATA/mnist-grey.npy" --steps 50 --warmup 10 --threads 2 --careful
done
for i in $(seq "$PAIRS"); do
  target/release/gan_bench --model cyclegan --batch 8 --steps 30 --warmup 5
  $PY bench/torch_cyclegan.py --data "$DATA/mnist-grey.npy" --steps 30 --warmup 5 --threads 2
done
target/release/gan_bench --model stargan --steps 2 --warmup 1 --export "$DATA/stargan.npy" > /dev/null
for i in $(seq "$PAIRS"); do
  target/release/gan_bench --model stargan --steps 16 --warmup 3
  $PY bench/torch_stargan.py --data "$DATA/stargan.npy" --steps 16 --warmup 3 --threads 2
done
for i in $(seq "$PAIRS"); do
  target/release/gan_bench --model progan --start-res 32 --steps 20 --warmup 4
  $PY bench/torch_progan.py --data "$DATA/mnist-grey.npy" --steps 20 --warmup 4 --threads 2
done
target/release/gan_bench --model text-gan --steps 2 --warmup 1 --export "$DATA/text.npy" > /dev/null
for i in $(seq "$PAIRS"); do
  target/release/gan_bench --model text-gan --steps 60 --warmup 10
  $PY bench/torch_textgan.py --data "$DATA/text.npy" --steps 60 --warmup 10 --threads 2
done
for i in $(seq "$PAIRS"); do
  target/release/gan_bench --model puzzle-gan --steps 60 --warmup 10
  $PY bench/torch_puzzle.py --data "$DATA/mnist-grey.npy" --steps 60 --warmup 10 --threads 2
done
echo "# sampling: N samples at once (2 training steps first, only to have a model); PyTorch's"
echo "# naive samplers are timed on their first 56 pixels and scaled to 784 (torch_models.PIXELS)"
for spec in "nade 64" "made 64" "pixelcnn 16" "gated-pixelcnn 16" "row-lstm 16" "diagonal-bilstm 16"; do
  set -- $spec
  $B --model "$1" --batch 16 --steps 2 --warmup 1 --sample "$2"
  $T --model "$1" --batch 16 --steps 2 --warmup 1 --sample "$2" --sample-pixels 56
done
echo "# GEMM rates"
target/release/gemm_peak 20
$PY bench/torch_gemm.py --threads 2 --reps 20
echo "# step profiles"
for m in "vae 128 100" "made 64 100" "nade 128 10" "pixelcnn 64 10" "pixelcnn 128 5" \
  "gated-pixelcnn 64 5" "row-lstm 64 5" "diagonal-bilstm 64 3"; do
  target/release/step_profile $m
done
