"""Summarises bench/modes_table.sh: mean and spread over seeds of modes
covered, high-quality share and reverse KL, per model and data set.
Usage: python3 bench/modes_summary.py [OUT_DIR]"""
import glob
import json
import os
import statistics
import sys

out = sys.argv[1] if len(sys.argv) > 1 else "/tmp/deepgen-modes"
rows = {}
for d in sorted(glob.glob(os.path.join(out, "*-*-*"))):
    # `deepgen eval` writes report/modes.json (eval.json before issue 5).
    found = [p for p in (os.path.join(d, "report", "modes.json"), os.path.join(d, "eval.json")) if os.path.exists(p)]
    if not os.path.isdir(d) or not found:
        continue
    model, data, seed = os.path.basename(d).rsplit("-", 2)
    rows.setdefault((model, data), []).append((int(seed), json.load(open(found[0]))))
print("| model | data | seeds | modes covered (per seed) | mean | high-quality % (mean ± sd) | reverse KL (mean) |")
print("|---|---|---|---|---|---|---|")
for (model, data), rs in sorted(rows.items()):
    rs.sort()
    cov = [r["covered"] for _, r in rs]
    hq = [100 * r["high_quality"] for _, r in rs]
    kl = [r["reverse_kl"] for _, r in rs]
    sd = statistics.stdev(hq) if len(hq) > 1 else 0.0
    kls = "inf" if any(k == float("inf") or k is None for k in kl) else f"{statistics.mean(kl):.3f}"
    print(f"| {model} | {data} | {len(rs)} | {', '.join(map(str, cov))} of {rs[0][1]['modes']} | {statistics.mean(cov):.1f} | {statistics.mean(hq):.1f} ± {sd:.1f} | {kls} |")
