"""PyTorch reference for bench/RESULTS.md: the same models, data, optimiser
and protocol as `deepgen-bench` (bench/src/main.rs).

Data: the NPY files `deepgen-bench --export DIR` writes (embedded MNIST,
statically binarized by deepgen with the seed given there), so both sides
train and test on identical bits.
VAE: 784-512-512-(2x32) encoder, 32-512-512-784 decoder, ReLU, Bernoulli
decoder, one-sample ELBO with closed-form KL; test NLL = IWAE bound, k=100.
NADE: H=500, Larochelle & Murray (2011) eqs. 6-7, written either vectorised
with cumsum over a [B, D, H] tensor (`--nade-impl cumsum`) or as the
per-pixel recurrence (`--nade-impl loop`); test NLL exact.
Adam lr 1e-3, PyTorch's default initialisation, batches from a seeded
per-epoch permutation (drop last), `--warmup` untimed steps.

PixelCNN: deepgen's `pixelcnn` preset (C=32 maps, 5 residual blocks; see the
class), masked convolutions as dense kernels times a 0/1 mask (the usual
PyTorch way); test NLL exact. MADE, the gated PixelCNN, the Row LSTM and the
Diagonal BiLSTM: bench/torch_models.py, each deepgen's preset.
With `--sample N`, N samples are drawn at once with the model's sampler
(bench/torch_models.py says which) and timed.

Usage: python torch_ref.py --model vae|nade|made|pixelcnn|gated-pixelcnn|row-lstm|diagonal-bilstm
       --data DIR [--steps N] [--batch N] [--threads 2] [--nade-impl cumsum|loop] [--sample N]
"""
import argparse
import json
import math
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import torch_models
from torch_models import MADE, NADE, GatedPixelCNN, PixelCNN, PixelRNN, bce_log_prob


class VAE(nn.Module):
    def __init__(self, d=784, h=512, z=32):
        super().__init__()
        self.enc = nn.Sequential(nn.Linear(d, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU())
        self.mu, self.lv = nn.Linear(h, z), nn.Linear(h, z)
        self.dec = nn.Sequential(nn.Linear(z, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, d))
        self.z = z

    def encode(self, x):
        e = self.enc(x)
        return self.mu(e), self.lv(e)

    def loss(self, x):
        mu, lv = self.encode(x)
        z = mu + torch.exp(0.5 * lv) * torch.randn_like(mu)
        rec = F.binary_cross_entropy_with_logits(self.dec(z), x, reduction="none").sum(1)
        kl = 0.5 * (mu.pow(2) + lv.exp() - 1 - lv).sum(1)
        return (rec + kl).mean()

    @torch.no_grad()
    def log_prob(self, x, k=100):
        mu, lv = self.encode(x)
        std = torch.exp(0.5 * lv)
        ws = []
        for _ in range(0, k, 10):
            eps = torch.randn(10, *mu.shape)
            z = mu + std * eps                                  # [10, B, Z]
            logits = self.dec(z)
            lpx = -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none").sum(-1)
            lpz = (-0.5 * z.pow(2) - 0.5 * math.log(2 * math.pi)).sum(-1)
            lqz = (-0.5 * eps.pow(2) - 0.5 * lv - 0.5 * math.log(2 * math.pi)).sum(-1)
            ws.append(lpx + lpz - lqz)
        w = torch.cat(ws, 0)
        return torch.logsumexp(w, 0) - math.log(w.shape[0])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="vae")
    p.add_argument("--data", required=True)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu", help="cpu or cuda (bench/gpu/run.sh)")
    p.add_argument("--nade-impl", default="loop", choices=["cumsum", "loop"])
    p.add_argument("--channels", type=int, default=0, help="0: the preset's")
    p.add_argument("--layers", type=int, default=0, help="0: the preset's")
    p.add_argument("--sample", type=int, default=0)
    p.add_argument("--sample-pixels", type=int, default=784,
                   help="naive samplers: time this many pixels and scale to all 784 (see torch_models.PIXELS)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    # Every tensor a model or a loss makes lands on the device; the batch order stays a CPU draw.
    torch.set_default_device(a.device)
    train = torch.from_numpy(np.load(f"{a.data}/train.npy")).to(a.device)
    test = torch.from_numpy(np.load(f"{a.data}/test.npy")).to(a.device)
    model = {
        "vae": lambda: VAE(), "nade": lambda: NADE(impl=a.nade_impl), "made": lambda: MADE(seed=a.seed),
        "pixelcnn": lambda: PixelCNN(a.channels or 32, a.layers or 5),
        "gated-pixelcnn": lambda: GatedPixelCNN(a.channels or 16, a.layers or 5),
        "row-lstm": lambda: PixelRNN("row", a.channels or 32, a.layers or 2),
        "diagonal-bilstm": lambda: PixelRNN("diagonal", a.channels or 32, a.layers or 2),
    }[a.model]().to(a.device)
    if not hasattr(model, "loss"):
        model.log_prob = lambda x, m=model: bce_log_prob(m.logits(x), x)
        model.loss = lambda x, m=model: -m.log_prob(x).mean()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    n = train.shape[0]
    per_epoch = n // a.batch
    g = torch.Generator().manual_seed(a.seed)
    perm = None
    start = None
    loss = float("nan")
    for s in range(a.steps):
        if s % per_epoch == 0:
            perm = torch.randperm(n, generator=g, device="cpu").to(a.device)
        k = s % per_epoch
        x = train[perm[k * a.batch:(k + 1) * a.batch]]
        if s == a.warmup:
            start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        l = model.loss(x)
        l.backward()
        opt.step()
        loss = l.item()
    secs = time.perf_counter() - start
    t0 = time.perf_counter()
    with torch.no_grad():
        lp = torch.cat([model.log_prob(test[i:i + 250]) for i in range(0, test.shape[0], 250)])
    extra = {}
    if a.sample:
        torch_models.PIXELS[0] = a.sample_pixels
        t1 = time.perf_counter()
        model.sample(a.sample)
        if a.device != "cpu":
            torch.cuda.synchronize()
        secs = time.perf_counter() - t1
        if not isinstance(model, NADE):   # NADE's sampler always runs all pixels
            secs *= 784 / a.sample_pixels
            extra["sample_pixels_timed"] = a.sample_pixels
        extra["samples_per_s"] = round(a.sample / secs, 2)
    print(json.dumps({
        "impl": f"pytorch {torch.__version__}" + (f" ({a.nade_impl})" if a.model == "nade" else ""), "device": a.device, "model": a.model, "steps": a.steps, "batch": a.batch,
        "steps_per_s": round((a.steps - a.warmup) / secs, 3), "final_train_loss": round(loss, 3),
        "test_nll_nats": round(-lp.mean().item(), 3), "eval_s": round(time.perf_counter() - t0, 1), **extra,
    }))


if __name__ == "__main__":
    main()
