"""PyTorch Progressive GAN with deepgen's `progan` preset and recipe at one resolution, for the
speed ratio in bench/RESULTS.md (same protocol as `gan_bench --model progan --start-res 32`:
the networks fully grown, no fade-in; growing changes the work per step, not its kind).

The networks (deepgen's models/progan.rs, the authors' G_paper / D_paper): feature maps
nf(r) = min(32, 32 * 32 / r) (channels 32), latent 128; equalised learning rate (weights stored
N(0, 1), scaled by gain / sqrt(fan_in) at every forward pass, biases 0; gain sqrt(2), sqrt(2)/4
for the latent-to-4x4 dense layer, 1 for toRGB and the critic's output); leaky ReLU 0.2.
G: pixel norm of z - dense to 4x4xnf - leaky - pixel norm - conv 3x3 - leaky - pixel norm; per
resolution 8..R: nearest 2x upsample, two [conv 3x3 - leaky - pixel norm]; toRGB 1x1 at R.
D: fromRGB 1x1 - leaky at R; per resolution R..8: two [conv 3x3 - leaky] (the second to nf(r/2)),
2x2 average pool; then minibatch stddev (groups of 4), conv 3x3 (nf + 1 -> nf) - leaky, dense
16 nf -> 32 - leaky, dense -> 1. The toRGB / fromRGB layers of the other resolutions exist, as
in deepgen (the parameter counts agree), and are unused at a fixed resolution.
Loss: WGAN-GP (lambda 10) plus drift 0.001 E[D(x)^2]; one critic step per generator step;
Adam(1e-3, betas (0, 0.99), eps 1e-8) for both; batch 64; the generator's weight average
(decay 0.999) updated after every generator step. The data: MNIST rows in [0, 1] padded, centred,
to 32x32 with the background 0, scaled to [-1, 1].
Data: `gan_bench --steps 2 --warmup 1 --export FILE.npy` (the grey digits).

Usage: python torch_progan.py --data mnist-grey.npy [--steps 30] [--warmup 5] [--threads 2]
       [--res 32] [--device cpu|cuda]
"""
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import torch_gan_common as common

SQRT2 = math.sqrt(2.0)


class EqConv(nn.Module):
    def __init__(self, c_in, c_out, k, gain=SQRT2):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in, k, k))
        self.bias = nn.Parameter(torch.zeros(c_out))
        self.scale, self.pad = gain / math.sqrt(c_in * k * k), k // 2

    def forward(self, x):
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.pad)


class EqDense(nn.Module):
    def __init__(self, n_in, n_out, gain=SQRT2):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_out, n_in))
        self.bias = nn.Parameter(torch.zeros(n_out))
        self.scale = gain / math.sqrt(n_in)

    def forward(self, x):
        return F.linear(x, self.weight * self.scale, self.bias)


def pixel_norm(x):
    return x * torch.rsqrt(x.pow(2).mean(1, keepdim=True) + 1e-8)


def lrelu(x):
    return F.leaky_relu(x, 0.2)


def minibatch_stddev(x, group):
    b, c, h, w = x.shape
    g = min(group, b)
    y = x.view(g, b // g, c, h, w)
    s = ((y - y.mean(0)).pow(2).mean(0) + 1e-8).sqrt().mean((1, 2, 3))  # [b / g]
    return torch.cat([x, s.view(1, -1, 1, 1, 1).expand(g, -1, 1, h, w).reshape(b, 1, h, w)], 1)


def nf(r, channels=32):
    return max(1, min(channels, channels * 32 // r))


class Generator(nn.Module):
    def __init__(self, res, max_res, latent=128, c=1):
        super().__init__()
        self.fc = EqDense(latent, 16 * nf(4), SQRT2 / 4)
        self.conv = EqConv(nf(4), nf(4), 3)
        rs = [4 << i for i in range(int(math.log2(max_res // 4)) + 1)]
        self.blocks = nn.ModuleList(
            nn.ModuleList([EqConv(nf(r // 2), nf(r), 3), EqConv(nf(r), nf(r), 3)]) for r in rs[1:])
        self.rgb = nn.ModuleList(EqConv(nf(r), c, 1, 1.0) for r in rs)
        self.level = int(math.log2(res // 4))

    def forward(self, z):
        h = pixel_norm(lrelu(self.fc(pixel_norm(z)).view(-1, nf(4), 4, 4)))
        h = pixel_norm(lrelu(self.conv(h)))
        for b in self.blocks[:self.level]:
            h = F.interpolate(h, scale_factor=2, mode="nearest")
            h = pixel_norm(lrelu(b[0](h)))
            h = pixel_norm(lrelu(b[1](h)))
        return self.rgb[self.level](h)


class Critic(nn.Module):
    def __init__(self, res, max_res, c=1):
        super().__init__()
        rs = [4 << i for i in range(int(math.log2(max_res // 4)) + 1)]
        self.rgb = nn.ModuleList(EqConv(c, nf(r), 1) for r in rs)
        self.blocks = nn.ModuleList(
            nn.ModuleList([EqConv(nf(r), nf(r), 3), EqConv(nf(r), nf(r // 2), 3)]) for r in rs[1:])
        self.conv = EqConv(nf(4) + 1, nf(4), 3)
        self.fc = EqDense(16 * nf(4), 32)
        self.out = EqDense(32, 1, 1.0)
        self.level = int(math.log2(res // 4))

    def forward(self, x):
        h = lrelu(self.rgb[self.level](x))
        for b in reversed(self.blocks[:self.level]):
            h = F.avg_pool2d(lrelu(b[1](lrelu(b[0](h)))), 2)
        h = lrelu(self.conv(minibatch_stddev(h, 4)))
        return self.out(lrelu(self.fc(h.flatten(1)))).squeeze(1)


def main():
    a = common.parse(30, 5, 64, lambda ap: ap.add_argument("--res", type=int, default=32))
    x_all = torch.from_numpy(np.load(a.data)).float().view(-1, 1, 28, 28).to(a.device)
    x_all = F.pad(x_all, (2, 2, 2, 2)) * 2 - 1
    x_all = F.avg_pool2d(x_all, 32 // a.res) if a.res < 32 else x_all
    g, d = Generator(a.res, 32), Critic(a.res, 32)
    g_avg = [p.detach().clone() for p in g.parameters()]
    opt = dict(lr=1e-3, betas=(0.0, 0.99), eps=1e-8)
    og, od = torch.optim.Adam(g.parameters(), **opt), torch.optim.Adam(d.parameters(), **opt)
    b, batches, timer = a.batch, common.Batches(len(x_all), a.batch, a.seed), common.Timer(a)
    for step in range(a.steps):
        timer.tick(step)
        x = x_all[batches.next()]
        with torch.no_grad():
            fake = g(torch.randn(b, 128))
        v_real, v_fake = d(x), d(fake)
        e = torch.rand(b, 1, 1, 1)
        x_hat = (e * x + (1 - e) * fake).requires_grad_(True)
        grad, = torch.autograd.grad(d(x_hat).sum(), x_hat, create_graph=True)
        gp = ((grad.flatten(1).pow(2).sum(1) + 1e-12).sqrt() - 1).pow(2).mean()
        ld = v_fake.mean() - v_real.mean() + 10 * gp + 0.001 * v_real.pow(2).mean()
        od.zero_grad(set_to_none=True)
        ld.backward()
        od.step()
        d.requires_grad_(False)
        lg = -d(g(torch.randn(b, 128))).mean()
        og.zero_grad(set_to_none=True)
        lg.backward()
        og.step()
        d.requires_grad_(True)
        with torch.no_grad():
            torch._foreach_lerp_(g_avg, [p.detach() for p in g.parameters()], 1 - 0.999)
    timer.report("progan", (g, d), ld, lg, resolution=a.res)

if __name__ == "__main__":
    main()
