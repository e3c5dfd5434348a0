#!/bin/bash
# Issue 26: `deepgen serve` under load on loopback against a minimal PyTorch HTTP service over
# the same VAE and weights (bench/torch_serve.py), and TensorBoard's own reader over the run's
# event files (bench/tb_check.py). C clients for T seconds on score (16 digits, NPY, the
# importance-weighted bound with k = 100) and on sample (16 draws, JSON); two interleaved pairs
# of servers; p50/p99 latency, requests/s, errors and the server's resident memory.
# Usage: bench/serve.sh [WORKDIR]   (needs .venv with torch, safetensors and tensorboard)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
PY=${PY:-$root/.venv/bin/python}
C=${C:-8}
T=${T:-15}
export RAYON_NUM_THREADS=2
cargo build --release --manifest-path "$root/Cargo.toml" -p deepgen-cli -p deepgen-bench
D="$root/target/release/deepgen"
L="$root/target/release/serve_load"
work=${1:-serve-work}
mkdir -p "$work/runs" && cd "$work"
[ -f runs/vae/model.safetensors ] || "$D" train --out runs/vae > train.log 2>&1
"$PY" "$root/bench/tb_check.py" runs/vae | tee tb_check.txt
"$D" sample runs/vae -n 16 --seed 1 --out score16.npy > /dev/null
echo '{"n": 16, "seed": 3}' > sample16.json
wait_ready() { for _ in $(seq 1 300); do curl -sf "$1" > /dev/null && return 0; sleep 0.1; done; return 1; }
load() { # NAME URL_BASE PID
  "$L" "$2/v1/models/vae/score" --body score16.npy --ctype application/x-npy --clients "$C" --seconds "$T" --pid "$3" | sed "s/^/{\"server\": \"$1\", \"call\": \"score\", \"r\": /; s/$/}/"
  "$L" "$2/v1/models/vae/sample" --body sample16.json --ctype application/json --clients "$C" --seconds "$T" --pid "$3" | sed "s/^/{\"server\": \"$1\", \"call\": \"sample\", \"r\": /; s/$/}/"
}
: > load.jsonl
for pair in 1 2; do
  "$D" serve runs/vae --addr 127.0.0.1:8180 --workers 2 --quiet > serve.log 2>&1 &
  pid=$!
  wait_ready http://127.0.0.1:8180/readyz
  load deepgen http://127.0.0.1:8180 "$pid" >> load.jsonl
  kill -TERM "$pid"; wait "$pid" || true
  "$PY" "$root/bench/torch_serve.py" runs/vae --port 8181 --threads 2 > torch.log 2>&1 &
  pid=$!
  for _ in $(seq 1 300); do grep -q listening torch.log && break; sleep 0.1; done
  load pytorch http://127.0.0.1:8181 "$pid" >> load.jsonl
  kill "$pid"; wait "$pid" || true
done
python3 - <<'PY'
import json
rows = [json.loads(l) for l in open("load.jsonl")]
print(f"{'server':<8} {'call':<7} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6} {'RSS MiB start/max/end':>24}")
for r in rows:
    x = r["r"]
    print(f"{r['server']:<8} {r['call']:<7} {x['rps']:>8.1f} {x['p50_ms']:>8.2f} {x['p99_ms']:>8.2f} {x['errors']:>6} "
          f"{x['rss_start_mib'] or 0:>8.0f}/{x['rss_max_mib']:.0f}/{x['rss_end_mib'] or 0:.0f}")
for call in ("score", "sample"):
    d = [r["r"]["rps"] for r in rows if r["server"] == "deepgen" and r["call"] == call]
    p = [r["r"]["rps"] for r in rows if r["server"] == "pytorch" and r["call"] == call]
    ratios = [a / b for a, b in zip(d, p)]
    print(f"{call}: deepgen/pytorch requests/s per pair: " + ", ".join(f"{x:.2f}x" for x in ratios))
PY
