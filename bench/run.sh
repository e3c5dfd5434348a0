#!/usr/bin/env bash
# Reproduces bench/RESULTS.md: deepgen against PyTorch on this machine, same
# data, models, optimiser, batch and steps, 2 threads each, run one after the
# other. The machine's speed drifts by 10-20% over minutes, so the speed ratio
# is measured on interleaved pairs of short runs; the long runs give test NLL.
#   bash bench/run.sh            # needs .venv with torch (see RESULTS.md)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DATA=${DATA:-/tmp/deepgen-bench-data}
SEED=${SEED:-0}
VAE_STEPS=${VAE_STEPS:-4000}
NADE_STEPS=${NADE_STEPS:-1000}
export RAYON_NUM_THREADS=2
cargo build --release -p deepgen-bench
B=target/release/deepgen-bench
# Export the statically binarized data once (seed $SEED) for the PyTorch side.
$B --model vae --steps 21 --seed "$SEED" --export "$DATA" > /dev/null
$PY -c 'import torch; print("torch", torch.__version__, "threads", 2)'
echo "# VAE speed: three interleaved pairs of 1,020 steps (20 untimed)"
for i in 1 2 3; do
  $B --model vae --steps 1020 --batch 128 --seed "$SEED"
  $PY bench/torch_ref.py --model vae --data "$DATA" --steps 1020 --batch 128 --seed "$SEED" --threads 2
done
echo "# VAE test NLL after $VAE_STEPS steps"
$B --model vae --steps "$VAE_STEPS" --batch 128 --seed "$SEED"
$PY bench/torch_ref.py --model vae --data "$DATA" --steps "$VAE_STEPS" --batch 128 --seed "$SEED" --threads 2
echo "# NADE speed and test NLL after $NADE_STEPS steps"
$B --model nade --steps "$NADE_STEPS" --batch 128 --seed "$SEED"
$PY bench/torch_ref.py --model nade --data "$DATA" --steps "$NADE_STEPS" --batch 128 --seed "$SEED" --threads 2 --nade-impl loop
$PY bench/torch_ref.py --model nade --data "$DATA" --steps 60 --warmup 10 --batch 128 --seed "$SEED" --threads 2 --nade-impl cumsum
echo "# PixelCNN (32 maps, 5 residual blocks) speed: three interleaved pairs of 220 steps (20 untimed), batch 64"
for i in 1 2 3; do
  $B --model pixelcnn --steps 220 --batch 64 --seed "$SEED"
  $PY bench/torch_ref.py --model pixelcnn --data "$DATA" --steps 220 --batch 64 --seed "$SEED" --threads 2
done
echo "# PixelCNN test NLL after ${AR_STEPS:=2000} steps of 64 (the budget of bench/ar_table.sh)"
$PY bench/torch_ref.py --model pixelcnn --data "$DATA" --steps "$AR_STEPS" --batch 64 --seed "$SEED" --threads 2
echo "# The autoregressive table (deepgen only): bench/ar_table.sh"
echo "# DCGAN (the dcgan preset) speed: three interleaved pairs of 70 iterations (10 untimed), batch 64, grey MNIST"
target/release/gan_bench --steps 21 --warmup 20 --export "$DATA/mnist-grey.npy" > /dev/null
for i in 1 2 3; do
  target/release/gan_bench --steps 70 --warmup 10 --seed "$SEED"
  $PY bench/torch_dcgan.py --data "$DATA/mnist-grey.npy" --steps 70 --warmup 10 --threads 2 --seed "$SEED" --careful
done
echo "# Mode collapse on the toy mixtures: bench/modes_table.sh (~50 min)"
