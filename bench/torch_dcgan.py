"""PyTorch DCGAN with deepgen's `dcgan` preset architecture, for the speed
ratio in bench/RESULTS.md (same protocol as bench/src/bin/gan_bench.rs).

G: z (100) -> Linear -> 128x7x7 -> BN -> ReLU -> ConvT(4, s2, p1) 64 -> BN -> ReLU
   -> ConvT(4, s2, p1) 1 -> sigmoid.
D: Conv(4, s2, p1) 64 -> LeakyReLU(0.2) -> Conv(4, s2, p1) 128 -> BN -> LeakyReLU(0.2)
   -> Linear(128*7*7, 1).
Non-saturating loss, Adam(2e-4, betas (0.5, 0.999)) for both, batch 64.
One iteration: D on a real batch and G(z) (detached); then G on a fresh z.
Data: the embedded MNIST training digits, exported by `gan_bench --export FILE`
or any [N, 784] float NPY in [0, 1].

Usage: python torch_dcgan.py --data train.npy [--steps 120] [--warmup 20] [--threads 2]
"""
import argparse
import json
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import torch_gan_common as common


class G(nn.Module):
    def __init__(self, z=100, ch=64):
        super().__init__()
        self.fc = nn.Linear(z, 2 * ch * 7 * 7)
        self.bn0 = nn.BatchNorm2d(2 * ch)
        self.up1 = nn.ConvTranspose2d(2 * ch, ch, 4, 2, 1)
        self.bn1 = nn.BatchNorm2d(ch)
        self.up2 = nn.ConvTranspose2d(ch, 1, 4, 2, 1)
        self.ch = ch

    def forward(self, z):
        h = self.fc(z).view(-1, 2 * self.ch, 7, 7)
        h = F.relu(self.bn0(h))
        h = F.relu(self.bn1(self.up1(h)))
        return torch.sigmoid(self.up2(h))


class D(nn.Module):
    def __init__(self, ch=64):
        super().__init__()
        self.c1 = nn.Conv2d(1, ch, 4, 2, 1)
        self.c2 = nn.Conv2d(ch, 2 * ch, 4, 2, 1)
        self.bn2 = nn.BatchNorm2d(2 * ch)
        self.v = nn.Linear(2 * ch * 7 * 7, 1)

    def forward(self, x):
        h = F.leaky_relu(self.c1(x), 0.2)
        h = F.leaky_relu(self.bn2(self.c2(h)), 0.2)
        return self.v(h.flatten(1)).squeeze(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="cpu or cuda (bench/gpu/run.sh)")
    ap.add_argument("--careful", action="store_true",
                    help="what deepgen's trainer does: the critic's fake batch under no_grad, the critic frozen during the generator's update")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    torch.set_default_device(a.device)
    x = torch.from_numpy(np.load(a.data)).float().view(-1, 1, 28, 28).to(a.device)
    g, d = G().to(a.device), D().to(a.device)
    common.normal_init(g, d)
    og = torch.optim.Adam(g.parameters(), 2e-4, betas=(0.5, 0.999))
    od = torch.optim.Adam(d.parameters(), 2e-4, betas=(0.5, 0.999))
    rng = np.random.default_rng(a.seed)
    perm, k = rng.permutation(len(x)), 0
    t0 = None
    for step in range(a.steps):
        if step == a.warmup:
            t0 = time.perf_counter()
        if (k + 1) * a.batch > len(x):
            perm, k = rng.permutation(len(x)), 0
        real = x[perm[k * a.batch:(k + 1) * a.batch]]
        k += 1
        if a.careful:
            with torch.no_grad():
                fake = g(torch.randn(a.batch, 100))
        else:
            fake = g(torch.randn(a.batch, 100)).detach()
        ld = F.softplus(-d(real)).mean() + F.softplus(d(fake)).mean()
        od.zero_grad(set_to_none=True)
        ld.backward()
        od.step()
        if a.careful:
            d.requires_grad_(False)
        lg = F.softplus(-d(g(torch.randn(a.batch, 100)))).mean()
        og.zero_grad(set_to_none=True)
        lg.backward()
        og.step()
        if a.careful:
            d.requires_grad_(True)
    if a.device != "cpu":
        torch.cuda.synchronize()
    sps = (a.steps - a.warmup) / (time.perf_counter() - t0)
    params = sum(p.numel() for p in g.parameters()) + sum(p.numel() for p in d.parameters())
    print(json.dumps({"impl": "pytorch-careful" if a.careful else "pytorch", "device": a.device, "model": "dcgan", "torch": torch.__version__, "steps": a.steps, "batch": a.batch,
                      "params": params, "steps_per_s": round(sps, 3), "d_loss": round(ld.item(), 4), "g_loss": round(lg.item(), 4)}))


if __name__ == "__main__":
    main()
