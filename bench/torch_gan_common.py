"""What the PyTorch GAN references (torch_cyclegan.py, torch_stargan.py, torch_progan.py,
torch_textgan.py, torch_puzzle.py; torch_dcgan.py its initialisation) share: the command line,
the epoch-shuffled minibatches, the timer and the one JSON line they print (the fields
`gan_bench` prints), the DCGAN initialisation and an optimiser step."""
import argparse
import json
import time

import numpy as np
import torch


def parse(steps, warmup, batch, extra=None):
    """--data --steps --warmup --batch --threads --seed --device (plus `extra(parser)`'s), with
    torch's threads, seed and default device set from them."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--steps", type=int, default=steps)
    ap.add_argument("--warmup", type=int, default=warmup)
    ap.add_argument("--batch", type=int, default=batch)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="cpu or cuda (bench/gpu/run.sh)")
    if extra:
        extra(ap)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    torch.set_default_device(a.device)
    return a


def normal_init(*nets, std=0.02):
    """N(0, std) weights and zero biases for every convolution and dense layer of `nets`
    (deepgen's Init::Normal(0.02), the DCGAN-family presets)."""
    import torch.nn as nn
    for net in nets:
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                nn.init.normal_(m.weight, 0, std)
                nn.init.zeros_(m.bias)


def update(opt, loss):
    """One optimiser step on `loss`, the gradients cleared first."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


class Batches:
    """Index arrays of `b` examples out of `n`, `k` independent shuffles, reshuffled when the
    epoch runs out (a partial last batch is skipped)."""

    def __init__(self, n, b, seed, k=1):
        self.rng, self.n, self.b, self.k = np.random.default_rng(seed), n, b, k
        self.perms, self.at = [self.rng.permutation(n) for _ in range(k)], 0

    def next(self):
        if (self.at + 1) * self.b > self.n:
            self.perms, self.at = [self.rng.permutation(self.n) for _ in range(self.k)], 0
        out = [p[self.at * self.b:(self.at + 1) * self.b] for p in self.perms]
        self.at += 1
        return out[0] if self.k == 1 else out


class Timer:
    """Steps per second over the steps after the warm-up (the GPU synchronised at both ends)."""

    def __init__(self, a):
        self.a, self.t0 = a, None

    def sync(self):
        if self.a.device != "cpu":
            torch.cuda.synchronize()

    def tick(self, step):
        if step == self.a.warmup:
            self.sync()
            self.t0 = time.perf_counter()

    def report(self, model, nets, d_loss, g_loss, **extra):
        self.sync()
        a = self.a
        sps = (a.steps - a.warmup) / (time.perf_counter() - self.t0)
        params = sum(p.numel() for net in nets for p in net.parameters())
        line = {"impl": "pytorch", "device": a.device, "model": model, "torch": torch.__version__}
        line.update(extra)
        line.update({"steps": a.steps, "batch": a.batch, "params": params,
                     "steps_per_s": round(sps, 3), "d_loss": round(d_loss.item(), 4),
                     "g_loss": round(g_loss.item(), 4)})
        print(json.dumps(line))
