#!/bin/bash
# Issue 27: data-parallel scaling on this machine. For the VAE, DCGAN and PixelCNN, interleaved
# runs of: 1 rank with 2 threads (batch B), 1 rank with 1 thread (batch B), and `mpirun -np 2`
# with 1 thread per rank (batch B per rank, 2B per step). Steps/s come from the training loop
# between the two checkpoints of each run (metrics.jsonl's elapsed_s), the all-reduce time per
# update from the run's last line. Then bench/mpi_model.py projects a ring all-reduce to 8, 64 and
# 512 ranks from the measured step times and the models' gradient sizes.
# Usage: bench/mpi_scaling.sh [WORKDIR]   (needs Open MPI: apt-get install openmpi-bin libopenmpi-dev libclang-dev)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release --manifest-path "$root/Cargo.toml" -p deepgen-cli --features distributed
D="$root/target/release/deepgen"
work=${1:-mpi-work}
mkdir -p "$work" && cd "$work"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none
PAIRS=${PAIRS:-2}
# model batch steps (two checkpoints: at steps/2 and at steps)
cases=("vae 128 400" "dcgan 64 40" "pixelcnn 64 12")
: > scaling.jsonl
rate() { # RUN -> steps/s between its two checkpoints
  python3 - "$1" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1] + "/metrics.jsonl") if '"elapsed_s"' in l]
(a, b) = rows[-2], rows[-1]
print((b["step"] - a["step"]) / (b["elapsed_s"] - a["elapsed_s"]))
EOF
}
for pair in $(seq 1 "$PAIRS"); do
  for c in "${cases[@]}"; do
    read -r model batch steps <<< "$c"
    half=$((steps / 2))
    args=(train "$model" --data mnist --batch-size "$batch" --steps "$steps" --eval-every "$half")
    for setup in "1x2" "1x1" "2x1"; do
      out="$model-$setup-$pair"
      rm -rf "$out"
      case $setup in
        1x2) RAYON_NUM_THREADS=2 "$D" "${args[@]}" --out "$out" > "$out.log" 2>&1 ;;
        1x1) RAYON_NUM_THREADS=1 "$D" "${args[@]}" --out "$out" > "$out.log" 2>&1 ;;
        2x1) mpirun -np 2 -x RAYON_NUM_THREADS=1 "$D" "${args[@]}" --out "$out" > "$out.log" 2>&1 ;;
      esac
      r=$(rate "$out")
      ranks=${setup%x*}
      comm=$(grep -o 'all-reduce [0-9.]* ms' "$out.log" | grep -o '[0-9.]*' || echo 0)
      echo "{\"model\": \"$model\", \"setup\": \"$setup\", \"pair\": $pair, \"batch\": $batch, \"ranks\": $ranks, \"steps_per_s\": $r, \"examples_per_s\": $(python3 -c "print($r * $batch * $ranks)"), \"allreduce_ms\": $comm}" | tee -a scaling.jsonl
    done
  done
done
# Gradient sizes: the trained parameters each run's log names.
python3 "$root/bench/mpi_model.py" scaling.jsonl . | tee model.md
