#!/bin/bash
# Issue 27: data-parallel scaling on this machine. For the VAE, DCGAN and PixelCNN, interleaved
# runs of: 1 rank with 2 threads (batch B), 1 rank with 1 thread (batch B), and `mpirun -np 2`
# with 1 thread per rank (batch B per rank, 2B per step). Each setup trains S and 2S steps (one
# checkpoint each, at the end); steps/s is S over the difference of the two training times (the
# run's "trained N steps in T s" line), so start-up, the final validation, the checkpoint and its
# TensorBoard samples cancel. The run is stopped once that line is out (the pictures after it are
# not measured). The all-reduce time per update is the 2-rank runs' own figure. Then
# bench/mpi_model.py projects a ring all-reduce to 8, 64 and 512 ranks from the measured step
# times and the models' gradient sizes.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release --manifest-path "$root/Cargo.toml" -p deepgen-cli --features distributed
D="$root/target/release/deepgen"
work=${1:-mpi-work}
mkdir -p "$work" && cd "$work"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none
PAIRS=${PAIRS:-2}
# model batch S
cases=("vae 128 300" "dcgan 64 30" "pixelcnn 64 10")
: > scaling.jsonl
# RUN SETUP ARGS...: trains, stops the job once the "trained" line is out, prints the seconds.
timed() {
  local out=$1 setup=$2; shift 2
  rm -rf "$out"
  case $setup in
    1x2) RAYON_NUM_THREADS=2 "$D" "$@" --out "$out" > "$out.log" 2>&1 & ;;
    1x1) RAYON_NUM_THREADS=1 "$D" "$@" --out "$out" > "$out.log" 2>&1 & ;;
    2x1) mpirun -np 2 -x RAYON_NUM_THREADS=1 "$D" "$@" --out "$out" > "$out.log" 2>&1 & ;;
  esac
  local pid=$!
  until grep -q '^trained ' "$out.log"; do
    kill -0 "$pid" 2> /dev/null || { cat "$out.log" >&2; return 1; }
    sleep 0.2
  done
  kill "$pid" 2> /dev/null || true
  wait "$pid" 2> /dev/null || true
  grep -o '^trained [0-9]* steps in [0-9.]* s' "$out.log" | grep -o '[0-9.]* s$' | grep -o '[0-9.]*'
}
for pair in $(seq 1 "$PAIRS"); do
  for c in "${cases[@]}"; do
    read -r model batch steps <<< "$c"
    for setup in "1x2" "1x1" "2x1"; do
      common=(train "$model" --data mnist --val mnist:test+only=0 --batch-size "$batch")
      ta=$(timed "$model-$setup-$pair-a" "$setup" "${common[@]}" --steps "$steps" --eval-every "$steps")
      tb=$(timed "$model-$setup-$pair-b" "$setup" "${common[@]}" --steps $((2 * steps)) --eval-every $((2 * steps)))
      r=$(python3 -c "print($steps / ($tb - $ta))")
      ranks=${setup%x*}
      comm=$(grep -o 'all-reduce [0-9.]* ms' "$model-$setup-$pair-b.log" | grep -o '[0-9.]*' || echo 0)
      echo "{\"model\": \"$model\", \"setup\": \"$setup\", \"pair\": $pair, \"batch\": $batch, \"ranks\": $ranks, \"steps_per_s\": $r, \"examples_per_s\": $(python3 -c "print($r * $batch * $ranks)"), \"allreduce_ms\": $comm}" | tee -a scaling.jsonl
    done
  done
done
# Gradient sizes: the trained parameters each run's log names.
python3 "$root/bench/mpi_model.py" scaling.jsonl . | tee model.md
