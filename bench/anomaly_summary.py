"""Summarises bench/anomaly_table.sh: leave-one-class-out AUROC per digit
(mean and spread over the ten rounds) and the corrupted-input table.
Usage: python3 bench/anomaly_summary.py [OUT_DIR]"""
import glob
import json
import os
import statistics
import sys

out = sys.argv[1] if len(sys.argv) > 1 else "/tmp/deepgen-anomaly"


def load(path):
    p = os.path.join(path, "detect.json")
    return json.load(open(p)) if os.path.exists(p) else None


scores = ["nll", "elbo", "recon", "typicality", "complexity"]
rows = {}
for d in sorted(glob.glob(os.path.join(out, "loo-[0-9]"))):
    k = int(d.rsplit("-", 1)[1])
    rows[k] = {s: load(os.path.join(d, f"detect-{s}")) for s in scores}
if rows:
    print("Leave-one-class-out (VAE trained on the other nine digits; AUROC, anomaly = the held-out digit)\n")
    print("| held-out digit | " + " | ".join(scores) + " |")
    print("|---|" + "---|" * len(scores))
    for k, r in sorted(rows.items()):
        print(f"| {k} | " + " | ".join(f"{r[s]['auroc']:.3f}" if r[s] else "-" for s in scores) + " |")
    cells = []
    for s in scores:
        v = [r[s]["auroc"] for r in rows.values() if r[s]]
        cells.append(f"**{statistics.mean(v):.3f}** ± {statistics.stdev(v):.3f}" if len(v) > 1 else "-")
    print("| mean ± sd | " + " | ".join(cells) + " |\n")

corr = ["noise", "uniform", "invert", "rotate", "flip", "shrink"]
kinds = ["nll", "typicality", "complexity"]
for d in sorted(glob.glob(os.path.join(out, "all-*"))):
    if not os.path.isdir(d):
        continue
    m = os.path.basename(d)[4:]
    print(f"Corrupted inputs, {m} trained on all ten digits (AUROC; normal = mnist:test)\n")
    print("| anomalies | " + " | ".join(kinds) + " |")
    print("|---|" + "---|" * len(kinds))
    for c in corr:
        r = [load(os.path.join(d, f"detect-{c}-{s}")) for s in kinds]
        print(f"| +{c} | " + " | ".join(f"{x['auroc']:.3f}" if x else "-" for x in r) + " |")
    print()
