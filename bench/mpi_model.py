"""Issue 27's cost model: ring all-reduce time per update, 2 (N - 1) / N * S / beta + 2 (N - 1) *
alpha, for a gradient of S bytes over N ranks with link bandwidth beta and per-message latency
alpha (Patarasuk & Yuan 2009; Thakur et al. 2005), added to the measured compute time of one
rank's step (no overlap: candle's backward pass returns all gradients at once). Each rank is
taken to be this machine running the 1-rank, 2-thread setup at batch B, so N ranks train on
N x B examples per step.

Usage: python3 bench/mpi_model.py scaling.jsonl RUN_LOG_DIR   (bench/mpi_scaling.sh calls it)
"""

import json
import re
import statistics
import sys
from pathlib import Path

NETWORKS = [
    # name, bandwidth in bytes/s, latency in s
    ("100 Gb/s InfiniBand (12.5 GB/s, 2 us)", 12.5e9, 2e-6),
    ("10 Gb/s Ethernet (1.25 GB/s, 25 us)", 1.25e9, 25e-6),
]
RANKS = [2, 8, 64, 512]


def ring(n, size_bytes, beta, alpha):
    return 2 * (n - 1) / n * size_bytes / beta + 2 * (n - 1) * alpha


def main():
    rows = [json.loads(l) for l in open(sys.argv[1])]
    logs = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(sys.argv[1]).parent
    models = sorted({r["model"] for r in rows}, key=lambda m: [r["model"] for r in rows].index(m))
    print("## Measured here (2 cores; median of the interleaved pairs)\n")
    print("| model | batch/rank | 1 rank x 2 threads | 1 rank x 1 thread | 2 ranks x 1 thread "
          "| 2 ranks / 1x2 (examples/s) | all-reduce per update (2 ranks) |")
    print("|---|---|---|---|---|---|---|")
    summary = {}
    for m in models:
        med = {}
        for setup in ["1x2", "1x1", "2x1"]:
            rs = [r for r in rows if r["model"] == m and r["setup"] == setup]
            med[setup] = (statistics.median(r["steps_per_s"] for r in rs),
                          statistics.median(r["examples_per_s"] for r in rs),
                          statistics.median(r["allreduce_ms"] for r in rs))
        b = next(r["batch"] for r in rows if r["model"] == m)
        log = next(logs.glob(f"{m}-1x2-*-a.log")).read_text()
        params = int(re.search(r"\((\d+) parameters", log).group(1))
        updates = 2 if "critic" in log else 1
        summary[m] = (b, params, updates, med)
        cell = lambda s: f"{med[s][0]:.2f} steps/s ({med[s][1]:.0f} ex/s)"
        print(f"| {m} | {b} | {cell('1x2')} | {cell('1x1')} | {cell('2x1')} "
              f"| {med['2x1'][1] / med['1x2'][1]:.2f}x | {med['2x1'][2]:.2f} ms |")
    print("\n## Projected: ring all-reduce over N ranks, each rank this machine at 2 threads\n")
    for name, beta, alpha in NETWORKS:
        print(f"### {name}\n")
        print("| model | gradient | compute/step | N | all-reduce/step | efficiency | examples/s |")
        print("|---|---|---|---|---|---|---|")
        for m, (b, params, updates, med) in summary.items():
            t_c = 1.0 / med["1x2"][0]
            # A GAN iteration all-reduces the critic's and then the generator's gradients: two
            # messages whose sizes add up to all trained parameters (n_critic 1).
            size = 4 * params
            for n in RANKS:
                t_ar = ring(n, size / updates, beta, alpha) * updates
                eff = t_c / (t_c + t_ar)
                ex = n * b / (t_c + t_ar)
                print(f"| {m} | {size / 2**20:.1f} MiB | {t_c * 1e3:.0f} ms | {n} "
                      f"| {t_ar * 1e3:.2f} ms | {eff:.0%} | {ex:,.0f} |")
        print()


if __name__ == "__main__":
    main()
