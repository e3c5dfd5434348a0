#!/usr/bin/env bash
# Issue 29's GPU check, for a GPU machine with no Rust toolchain and no network: it builds
# nothing. It runs the binaries scripts/build-cuda.sh put in dist/cuda/ (the `deepgen` CLI,
# `deepgen-bench`, and the release build of crates/deepgen/tests/gpu.rs), writes everything to
# $OUT (default gpu-out/), and keeps going when a stage fails, so one run says all it can.
# Each command has its own time limit. The whole may take more than one device call's 600 s on
# an H200 (the dry run on 2 CPU cores, DEV=cpu PAIRS=1, takes 9 min), and a session's device
# time (15 min, the machine's start included) holds about two calls: split it with STAGES, the
# tests and the benchmark first:
#   STAGES="env gpu-test" bench/gpu/run.sh          # then, at once (the machine idles out):
#   STAGES="bench profile" PAIRS=1 bench/gpu/run.sh  # and, if time is left: STAGES="cli families"
#   bench/gpu/run.sh                      # all stages; PY=python3 with torch (CUDA); OUT=gpu-out
#   DEV=cpu PY=.venv/bin/python THREADS=2 PAIRS=1 bench/gpu/run.sh   # the dry run on a CPU machine
#   BUDGET=420 STAGES="env gpu-test" bench/gpu/run.sh   # stops starting commands after 420 s
#   DEEPGEN_PORTABLE_OPS=1 STAGES="bench" OUT=gpu-out-ops bench/gpu/run.sh
#       # deepgen's own kernels off (candle ops only, as before them): the way around a kernel
#       # that fails its gpu-test here, where nothing can be rebuilt, and the kernels' worth
# Stages (files in $OUT):
#   env.txt        GPU, driver, torch, the libraries found
#   cli.txt        deepgen train/sample/score --device cuda on the embedded digits; a resume on
#                  the CPU; a bad device index refused in one line; eval, detect, embed (against
#                  the CPU's features), probe, interpolate, complete, translate and assemble with
#                  --device cuda; deepgen serve --device cuda answering two sample requests
#   gpu-test.txt   tests/gpu.rs: every model's two steps on cuda against the CPU, resume across
#                  devices, GPU sampling and scoring, every model's inference calls (features,
#                  codes, translations against the CPU; the whole eval report; detect); the
#                  kernels (Adam, NADE, convolutions, masked convolutions, the PixelRNN scan)
#                  against candle's ops
#   bench.jsonl    steps/s on the GPU, deepgen and PyTorch eager in interleaved pairs (VAE, NADE,
#                  MADE, PixelCNNs, Row LSTM, DCGAN, CycleGAN, StarGAN, ProGAN at 32x32, the
#                  text GAN, the puzzle GAN)
#   profile.txt    forward, backward and Adam time of one GPU step of the likelihood models
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-$PWD/gpu-out}
PY=${PY:-python3}
PAIRS=${PAIRS:-2}
# DEV=cpu runs every stage on the CPU: a dry run of this script on a machine without a GPU.
DEV=${DEV:-cuda}
mkdir -p "$OUT"
stage() { echo "== $* ($(date +%T))" | tee -a "$OUT/log.txt"; }
# STAGES picks stages (default all, in this order): two calls of the device tool, each under its
# 600 s limit, can split them, e.g. STAGES="env cli gpu-test" then STAGES="bench profile families".
STAGES=${STAGES:-env cli gpu-test bench profile families}
want() { case " $STAGES " in *" $1 "*) stage "$1" ;; *) return 1 ;; esac; }
# BUDGET (seconds from the script's start, default none; the gpu-test, bench, profile and
# families stages): no command starts after it runs out, and each one's own limit is cut to what
# is left, so a device call's timeout_s is met with the results kept; what was skipped is
# written where its result would be.
deadline=$((SECONDS + ${BUDGET:-1000000}))
lim() { # the limit for a command allowed $1 seconds: at most what is left; fails when < 10 s
  local left=$((deadline - SECONDS))
  [ "$left" -ge 10 ] || return 1
  echo $(($1 < left ? $1 : left))
}
# The binaries come xz-compressed (scripts/build-cuda.sh); Python's lzma unpacks them.
D=${TMPDIR:-/tmp}/deepgen-cuda
mkdir -p "$D"
for f in dist/cuda/*.xz; do
  b=$D/$(basename "$f" .xz)
  "$PY" -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$f" "$b"
  chmod +x "$b"
done

# cudarc opens the driver (libcuda, on the system path) and cuBLAS, cuRAND and NVRTC by name at
# run time: PyTorch's NVIDIA wheels carry the latter.
libs=$("$PY" - <<'PYEOF' 2>/dev/null
import glob, os
try:
    import nvidia
    roots = list(nvidia.__path__)
except ImportError:
    roots = []
try:
    import torch
    roots.append(os.path.join(os.path.dirname(torch.__file__), "lib"))
except ImportError:
    pass
dirs = set()
for r in roots:
    for p in glob.glob(os.path.join(r, "**", "lib*.so*"), recursive=True):
        dirs.add(os.path.dirname(p))
print(":".join(sorted(dirs)))
PYEOF
)
# A system CUDA toolkit, where there is one, as a second place to look.
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
  [ -d "$d" ] && libs="${libs:+$libs:}$d"
done
export LD_LIBRARY_PATH="${libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

if want env; then
{
  nvidia-smi 2>&1 | head -15
  "$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available())'
  ls -la "$D"
  echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
  for l in libcuda.so.1 libcublas.so libcublasLt.so libcurand.so libnvrtc.so; do
    printf '%s: ' "$l"; ldconfig -p | grep -m1 "$l" || echo "(not in ldconfig)"
  done
  nproc
} > "$OUT/env.txt" 2>&1

fi
if want cli; then
(
  set -x
  R=$OUT/runs
  timeout 120 "$D/deepgen" train nade --steps 200 --device $DEV --out "$R/nade"
  timeout 60 "$D/deepgen" sample "$R/nade" -n 16 --device $DEV --out "$OUT/nade-cuda.png"
  timeout 60 "$D/deepgen" score "$R/nade" --data mnist:test --device $DEV
  timeout 60 "$D/deepgen" score "$R/nade" --data mnist:test --device cpu
  timeout 120 "$D/deepgen" train nade --resume "$R/nade" --steps 300 --device cpu
  timeout 120 "$D/deepgen" train dcgan --steps 200 --device $DEV --out "$R/dcgan"
  timeout 60 "$D/deepgen" sample "$R/dcgan" -n 64 --device $DEV --out "$OUT/dcgan-cuda.png"
  timeout 30 "$D/deepgen" train nade --steps 1 --device $DEV:7 --out "$R/bad"; echo "exit $?"
  # Every other command with its model on the GPU (and eval's classifier with it).
  timeout 120 "$D/deepgen" classifier train --steps 200 --device $DEV --out "$R/classifier"
  # (Not the linear probe of the DCGAN's 6,272 features: host work, a minute on 2 cores.)
  timeout 120 "$D/deepgen" eval "$R/dcgan" -n 500 --classifier "$R/classifier" --device $DEV \
    --only samples,quality,swd,anomaly,latent
  timeout 120 "$D/deepgen" eval "$R/nade" -n 100 --only density,anomaly,probe --device $DEV
  timeout 60 "$D/deepgen" detect "$R/nade" --anomalies mnist:test+invert --device $DEV
  timeout 60 "$D/deepgen" embed "$R/dcgan" --out "$OUT/dcgan-features.npy" --device $DEV
  timeout 60 "$D/deepgen" embed "$R/dcgan" --out "$OUT/dcgan-features-cpu.npy" --device cpu
  "$PY" -c 'import numpy as n, sys; a, b = n.load(sys.argv[1]), n.load(sys.argv[2]); print("embed cuda vs cpu: max |diff|", abs(a - b).max(), "of", abs(b).max())' "$OUT/dcgan-features.npy" "$OUT/dcgan-features-cpu.npy"
  timeout 60 "$D/deepgen" probe "$R/nade" --device $DEV
  timeout 60 "$D/deepgen" interpolate "$R/dcgan" --slerp --out "$OUT/dcgan-slerp.png" --device $DEV
  timeout 120 "$D/deepgen" complete "$R/nade" -n 4 --samples 2 --out "$OUT/nade-complete.png" --device $DEV
  timeout 120 "$D/deepgen" train cyclegan --data mnist --data-b mnist+invert --steps 50 --device $DEV --out "$R/cyclegan"
  timeout 60 "$D/deepgen" translate "$R/cyclegan" -n 8 --out "$OUT/cyclegan-cuda.png" --device $DEV
  timeout 120 "$D/deepgen" eval "$R/cyclegan" -n 200 --classifier "$R/classifier" --device $DEV
  timeout 120 "$D/deepgen" train puzzle-gan --steps 50 --device $DEV --out "$R/puzzle"
  timeout 60 "$D/deepgen" assemble "$R/puzzle" -n 8 --out "$OUT/puzzle-cuda.png" --device $DEV
  # The service with its models on the GPU: ready, then a sample and a score request.
  "$D/deepgen" serve nade="$R/nade" dcgan="$R/dcgan" --addr 127.0.0.1:18391 --device $DEV &
  srv=$!
  "$PY" - <<'PY'
import json, time, urllib.request as u
base = "http://127.0.0.1:18391"
for _ in range(120):
    try:
        if u.urlopen(base + "/readyz", timeout=2).status == 200:
            break
    except Exception:
        time.sleep(0.5)
for path, body in [("/v1/models/dcgan/sample", {"n": 4, "seed": 1}),
                   ("/v1/models/nade/sample", {"n": 2, "seed": 1})]:
    req = u.Request(base + path, data=json.dumps(body).encode(),
                    headers={"Content-Type": "application/json"})
    with u.urlopen(req, timeout=60) as r:
        print(path, r.status, len(r.read()), "bytes")
PY
  kill $srv; wait $srv; echo "serve exit $?"
) > "$OUT/cli.txt" 2>&1

fi
if want gpu-test; then
# One test at a time, each under its own limit: a slow one does not take the others' time.
# The kernels' own checks first: short, and the likeliest to name a fault precisely.
for t in adams_cuda_kernels_agree_with_its_candle_ops_and_the_cpu:15 \
    nades_cuda_kernels_agree_with_its_candle_ops_and_the_cpu:20 \
    the_convolution_kernels_agree_with_candles_convolutions_and_the_cpu:15 \
    the_masked_convolution_kernels_agree_with_the_dense_form_and_the_cpu:15 \
    the_lstm_scan_kernels_agree_with_the_literal_scans_and_the_cpu:30 \
    every_model_trains_alike_on_the_gpu_and_the_cpu:120 \
    a_checkpoint_resumes_across_devices:45 \
    a_gpu_model_samples_and_scores_as_on_the_cpu:30 \
    every_model_infers_on_the_gpu_as_on_the_cpu:120; do
  if ! l=$(lim "${t#*:}"); then echo "${t%%:*}: skipped (BUDGET)" >> "$OUT/gpu-test.txt"; continue; fi
  timeout "$l" "$D/gpu-test" --exact "${t%%:*}" --nocapture >> "$OUT/gpu-test.txt" 2>&1
  echo "${t%%:*}: exit $?" >> "$OUT/gpu-test.txt"
done

fi
if want bench; then
DATA=$OUT/bench-data
B=$D/deepgen-bench
"$B" --model vae --steps 2 --warmup 1 --export "$DATA" > /dev/null 2>> "$OUT/log.txt"
T="$PY bench/torch_ref.py --data $DATA --device $DEV --threads ${THREADS:-8}"
run() { # one timed run: its JSON line, or what failed and how (124: over the time limit)
  local l
  if ! l=$(lim 60); then echo "{\"skipped\": \"$*\", \"why\": \"BUDGET\"}" >> "$OUT/bench.jsonl"; return; fi
  timeout "$l" "$@" >> "$OUT/bench.jsonl" 2>> "$OUT/bench-err.txt"
  local rc=$?
  [ $rc -eq 0 ] || echo "{\"failed\": \"$*\", \"exit\": $rc}" >> "$OUT/bench.jsonl"
}
pair() { # model batch steps warmup [torch-only flags]
  local m=$1 b=$2 s=$3 w=$4; shift 4
  for _ in $(seq "$PAIRS"); do
    run "$B" --model "$m" --batch "$b" --steps "$s" --warmup "$w" --device $DEV
    run $T --model "$m" --batch "$b" --steps "$s" --warmup "$w" "$@"
  done
}
pair vae 128 300 30
pair nade 128 100 10 --nade-impl cumsum
pair made 64 300 30
pair pixelcnn 64 100 10
pair gated-pixelcnn 64 60 10
pair row-lstm 64 30 5
"$D/gan_bench" --steps 2 --warmup 1 --export "$DATA/mnist-grey.npy" > /dev/null 2>&1
for _ in $(seq "$PAIRS"); do
  run "$D/gan_bench" --steps 200 --warmup 20 --device $DEV
  run $PY bench/torch_dcgan.py --data "$DATA/mnist-grey.npy" --steps 200 --warmup 20 --device $DEV --threads ${THREADS:-8} --careful
done
for _ in $(seq "$PAIRS"); do
  run "$D/gan_bench" --model cyclegan --batch 8 --steps 60 --warmup 10 --device $DEV
  run $PY bench/torch_cyclegan.py --data "$DATA/mnist-grey.npy" --steps 60 --warmup 10 --device $DEV --threads ${THREADS:-8}
done
"$D/gan_bench" --model stargan --steps 2 --warmup 1 --export "$DATA/stargan.npy" > /dev/null 2>&1
for _ in $(seq "$PAIRS"); do
  run "$D/gan_bench" --model stargan --steps 30 --warmup 5 --device $DEV
  run $PY bench/torch_stargan.py --data "$DATA/stargan.npy" --steps 30 --warmup 5 --device $DEV --threads ${THREADS:-8}
done
for _ in $(seq "$PAIRS"); do
  run "$D/gan_bench" --model progan --start-res 32 --steps 40 --warmup 8 --device $DEV
  run $PY bench/torch_progan.py --data "$DATA/mnist-grey.npy" --steps 40 --warmup 8 --device $DEV --threads ${THREADS:-8}
done
"$D/gan_bench" --model text-gan --steps 2 --warmup 1 --export "$DATA/text.npy" > /dev/null 2>&1
for _ in $(seq "$PAIRS"); do
  run "$D/gan_bench" --model text-gan --steps 200 --warmup 20 --device $DEV
  run $PY bench/torch_textgan.py --data "$DATA/text.npy" --steps 200 --warmup 20 --device $DEV --threads ${THREADS:-8}
done
for _ in $(seq "$PAIRS"); do
  run "$D/gan_bench" --model puzzle-gan --steps 200 --warmup 20 --device $DEV
  run $PY bench/torch_puzzle.py --data "$DATA/mnist-grey.npy" --steps 200 --warmup 20 --device $DEV --threads ${THREADS:-8}
done

# Where a GPU step's time goes (forward, backward, Adam, each to a synchronisation) for the
# models whose CPU kernels gave way to candle ops: what a CUDA kernel would have to beat.
fi
if want profile; then
for mb in vae:128:50 nade:128:20 made:64:50 pixelcnn:64:20 gated-pixelcnn:64:10 row-lstm:64:5 \
    diagonal-bilstm:64:3; do
  IFS=: read -r m b s <<< "$mb"
  if ! l=$(lim 60); then echo "$m: skipped (BUDGET)" >> "$OUT/profile.txt"; continue; fi
  timeout "$l" "$D/step_profile" "$m" "$b" "$s" $DEV >> "$OUT/profile.txt" 2>&1 \
    || echo "$m: exit $?" >> "$OUT/profile.txt"
done

# The new GAN families, deepgen's own steps/s on the GPU and on this machine's CPU cores, from
# `deepgen train`'s last line, growing (CycleGAN, StarGAN, fixed-size ProGAN, the text GAN
# and the puzzle GAN have PyTorch references, above).
fi
if want families; then
fam() { # name device steps [flags]
  local m=$1 dev=$2 s=$3; shift 3
  echo "# $m on $dev" >> "$OUT/families.txt"
  local l
  if ! l=$(lim 90); then echo "skipped (BUDGET)" >> "$OUT/families.txt"; return; fi
  timeout "$l" "$D/deepgen" train "$m" --steps "$s" --device "$dev" --out "$OUT/fam/$m-$dev" "$@" \
    2>&1 | grep -E "^trained|steps/s|error" >> "$OUT/families.txt"
}
for m in cyclegan stargan progan puzzle-gan; do
  data=mnist; b=()
  case $m in
    cyclegan) b=(--data-b mnist+invert) ;;
    stargan) data=mnist+attributes ;;
  esac
  for dev in $(printf '%s\n' "$DEV" cpu | sort -u); do fam "$m" "$dev" 40 --data "$data" "${b[@]}"; done
done
fi
stage done
