"""Reads a deepgen run's TensorBoard event files with TensorBoard's own reader (bench/serve.sh):
the scalar tags with their counts and first/last steps, the image tags, and whether the losses
equal metrics.jsonl's. Exits non-zero when a file does not read or a tag is missing.

  python bench/tb_check.py RUN
"""

import json
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def main(run):
    acc = EventAccumulator(run, size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    tags = acc.Tags()
    print("scalars:")
    for t in sorted(tags["scalars"]):
        ev = acc.Scalars(t)
        print(f"  {t:<24} {len(ev):>6} points, steps {ev[0].step}..{ev[-1].step}, last {ev[-1].value:.4f}")
    print("images:", ", ".join(f"{t} ({len(acc.Images(t))})" for t in tags["images"]))
    want = ["train/loss", "train/lr", "train/grad_norm"]
    missing = [t for t in want if t not in tags["scalars"]]
    if missing or "samples" not in tags["images"]:
        print("missing:", missing or "samples image")
        return 1
    losses = [json.loads(l)["loss"] for l in open(f"{run}/metrics.jsonl") if '"loss"' in l]
    tb = [e.value for e in acc.Scalars("train/loss")]
    same = len(tb) == len(losses) and all(abs(a - b) <= 1e-6 * max(1, abs(b)) for a, b in zip(tb, losses))
    print(f"train/loss equals metrics.jsonl's loss ({len(losses)} steps): {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
