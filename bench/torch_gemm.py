"""PyTorch's GEMM rate (torch.mm, MKL) at the shapes of bench/src/bin/gemm_peak.rs.

Usage: python torch_gemm.py [--threads 2] [--reps 20]"""
import argparse
import json
import time

import torch

p = argparse.ArgumentParser()
p.add_argument("--threads", type=int, default=2)
p.add_argument("--reps", type=int, default=20)
a = p.parse_args()
torch.set_num_threads(a.threads)
for m, n, k in [(1024, 1024, 1024), (128, 512, 784), (784, 512, 128), (100_352, 16, 32)]:
    x, y = torch.randn(m, k), torch.randn(k, n)
    out = torch.mm(x, y)
    best = float("inf")
    for _ in range(a.reps):
        t = time.perf_counter()
        torch.mm(x, y, out=out)
        best = min(best, time.perf_counter() - t)
    print(json.dumps({"impl": f"pytorch {torch.__version__}", "m": m, "n": n, "k": k, "threads": a.threads,
                      "gflop_per_s": round(2 * m * n * k / best / 1e9, 1)}))
