#!/usr/bin/env bash
# Builds deepgen with candle's CUDA backend (`--features cuda`) on a machine without a GPU, and
# packs what the GPU check needs into dist/cuda/ (bench/gpu/run.sh runs it on the GPU machine).
#
# candle's kernels are compiled by nvcc at build time. The CUDA 13.0 compiler comes from NVIDIA's
# PyPI wheels, installed into a venv (.venv-cuda, about 300 MB): no system CUDA is needed.
# CUDA_COMPUTE_CAP (default 90, the H200) picks the PTX/SASS target, since there is no GPU to ask.
# The binaries load the CUDA driver and libraries at run time (cudarc's dynamic loading), so they
# also start on machines without CUDA. Its own target dir (target/cuda): switching features does
# not rebuild the CPU build. Cold, this takes about 30 minutes on 2 cores.
# Extra arguments go to every cargo command.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${DEEPGEN_CUDA_VENV:-.venv-cuda}
if [ ! -x "$venv/bin/nvcc-ok" ]; then
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install -q "nvidia-cuda-nvcc==13.0.*" "nvidia-cuda-crt==13.0.*" \
    "nvidia-nvvm==13.0.*" "nvidia-cuda-runtime==13.0.*" "nvidia-cuda-cccl==13.0.*" \
    "nvidia-cuda-nvrtc==13.0.*"
  touch "$venv/bin/nvcc-ok"
fi
cuda=$("$venv/bin/python" -c 'import nvidia, os; print(os.path.join(nvidia.__path__[0], "cu13"))')
# candle-kernels links the CUDA runtime as `-lcudart` (a shared library a machine without CUDA
# lacks, so the binary would not even start there). The linker finds, first, this linker script
# of that name, which links the wheel's static runtime instead: the binary then needs no CUDA
# library to start, and the runtime opens the driver itself on first use. LIBRARY_PATH reaches
# the linker through cc and is not part of cargo's fingerprint (changing it rebuilds nothing).
link="$PWD/target/cuda-link"
mkdir -p "$link"
echo "INPUT($cuda/lib/libcudart_static.a)" > "$link/libcudart.so"
export LIBRARY_PATH="$link${LIBRARY_PATH:+:$LIBRARY_PATH}"
export PATH="$cuda/bin:$PATH" CUDA_ROOT="$cuda" CUDA_PATH="$cuda" CUDA_HOME="$cuda"
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/cuda}
nvcc --version | tail -1
# deepgen's own kernels (crates/deepgen/src/nn/cuda.rs) are compiled by NVRTC at run time, on the
# GPU machine: compile them here first with the same NVRTC, so that a syntax error stops the
# build instead of the GPU run.
[ -e "$cuda/lib/libnvrtc.so.13" ] || "$venv/bin/pip" install -q "nvidia-cuda-nvrtc==13.0.*"
LD_LIBRARY_PATH="$cuda/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$venv/bin/python" \
  scripts/nvrtc-check.py crates/deepgen/src/nn/cuda.rs "$cuda/lib/libnvrtc.so.13" \
  "compute_${CUDA_COMPUTE_CAP}"
cargo build --release -p deepgen-cli -p deepgen-bench --features deepgen-cli/cuda,deepgen-bench/cuda "$@"
# The GPU agreement test (crates/deepgen/tests/gpu.rs), built in release: its one binary is run
# on the GPU machine, which has no Rust toolchain.
test_bin=$(cargo test --release -p deepgen --features cuda --test gpu --no-run \
  --message-format=json-render-diagnostics "$@" \
  | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -1)
dist=dist/cuda
rm -rf "$dist" && mkdir -p "$dist"
for b in deepgen deepgen-bench gan_bench step_profile; do cp "$CARGO_TARGET_DIR/release/$b" "$dist/"; done
cp "$test_bin" "$dist/gpu-test"
strip "$dist"/*
# No CUDA library is linked: each starts on a machine without one.
if readelf -d "$dist"/* | grep -E 'NEEDED.*(cuda|cublas|curand|nvrtc)'; then
  echo "build-cuda.sh: a binary links a CUDA library (above); it would not start without CUDA" >&2
  exit 1
fi
# Each binary carries candle's CUDA kernels (about 55 MB of PTX and SASS); compressed, the four
# stay well under the 64 MiB the GPU machine is sent. bench/gpu/run.sh unpacks them there.
xz -T0 -6 -f "$dist"/*
du -sh "$dist"/*
