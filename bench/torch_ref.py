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
PyTorch way); test NLL exact.

Usage: python torch_ref.py --model vae|nade|pixelcnn --data DIR [--steps N] [--batch N] [--threads 2] [--nade-impl cumsum|loop]
"""
import argparse
import json
import math
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


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


class NADE(nn.Module):
    def __init__(self, d=784, h=500, impl="loop"):
        super().__init__()
        self.impl = impl
        bw, bv = 1 / math.sqrt(d), 1 / math.sqrt(h)
        self.W = nn.Parameter(torch.empty(h, d).uniform_(-bw, bw))
        self.c = nn.Parameter(torch.zeros(h))
        self.V = nn.Parameter(torch.empty(d, h).uniform_(-bv, bv))
        self.b = nn.Parameter(torch.zeros(d))

    def logits(self, x):
        if self.impl == "loop":
            # The recurrence a_{i+1} = a_i + W[:, i] x_i, one pixel at a time.
            a = self.c.expand(x.shape[0], -1)
            out = []
            wt = self.W.t()
            for i in range(x.shape[1]):
                h = torch.sigmoid(a)
                out.append(h @ self.V[i])
                a = a + x[:, i:i + 1] * wt[i]
            return torch.stack(out, 1) + self.b
        # a_i = c + sum_{j<i} W[:, j] x_j, for every i at once: exclusive cumsum over pixels.
        contrib = x.unsqueeze(2) * self.W.t().unsqueeze(0)          # [B, D, H]
        a = torch.cumsum(contrib, dim=1) - contrib + self.c
        return (torch.sigmoid(a) * self.V).sum(-1) + self.b

    def log_prob(self, x):
        return -F.binary_cross_entropy_with_logits(self.logits(x), x, reduction="none").sum(1)

    def loss(self, x):
        return -self.log_prob(x).mean()


class MaskedConv2d(nn.Conv2d):
    """A k x k convolution with the PixelCNN mask (A: centre excluded, B: included), one colour channel."""

    def __init__(self, cin, cout, k, mask):
        super().__init__(cin, cout, k, padding=k // 2)
        m = torch.ones_like(self.weight)
        m[:, :, k // 2, k // 2 + (1 if mask == "B" else 0):] = 0
        m[:, :, k // 2 + 1:] = 0
        self.register_buffer("mask", m)

    def forward(self, x):
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class PixelCNN(nn.Module):
    """deepgen's `pixelcnn` (models/pixelcnn.rs): 7x7 mask A conv to C maps, residual blocks
    x + 1x1(relu(3x3_B(relu(1x1(relu x))))) with C/2 inner maps, relu -> 1x1 -> relu -> 1x1 -> logit."""

    def __init__(self, c=32, layers=5):
        super().__init__()
        self.inp = MaskedConv2d(1, c, 7, "A")
        self.blocks = nn.ModuleList(nn.ModuleList([nn.Conv2d(c, c // 2, 1), MaskedConv2d(c // 2, c // 2, 3, "B"), nn.Conv2d(c // 2, c, 1)]) for _ in range(layers))
        self.head = nn.Sequential(nn.ReLU(), nn.Conv2d(c, c, 1), nn.ReLU(), nn.Conv2d(c, 1, 1))

    def logits(self, x):
        h = self.inp(x.view(-1, 1, 28, 28))
        for a, conv, b in self.blocks:
            h = h + b(F.relu(conv(F.relu(a(F.relu(h))))))
        return self.head(h).view(x.shape[0], -1)

    def log_prob(self, x):
        return -F.binary_cross_entropy_with_logits(self.logits(x), x, reduction="none").sum(1)

    def loss(self, x):
        return -self.log_prob(x).mean()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="vae")
    p.add_argument("--data", required=True)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--nade-impl", default="loop", choices=["cumsum", "loop"])
    p.add_argument("--channels", type=int, default=32)
    p.add_argument("--layers", type=int, default=5)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    train = torch.from_numpy(np.load(f"{a.data}/train.npy"))
    test = torch.from_numpy(np.load(f"{a.data}/test.npy"))
    model = {"vae": lambda: VAE(), "nade": lambda: NADE(impl=a.nade_impl), "pixelcnn": lambda: PixelCNN(a.channels, a.layers)}[a.model]()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    n = train.shape[0]
    per_epoch = n // a.batch
    g = torch.Generator().manual_seed(a.seed)
    perm = None
    start = None
    loss = float("nan")
    for s in range(a.steps):
        if s % per_epoch == 0:
            perm = torch.randperm(n, generator=g)
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
    print(json.dumps({
        "impl": f"pytorch {torch.__version__}" + (f" ({a.nade_impl})" if a.model == "nade" else ""), "model": a.model, "steps": a.steps, "batch": a.batch,
        "steps_per_s": round((a.steps - a.warmup) / secs, 3), "final_train_loss": round(loss, 3),
        "test_nll_nats": round(-lp.mean().item(), 3), "eval_s": round(time.perf_counter() - t0, 1),
    }))


if __name__ == "__main__":
    main()
