"""PyTorch part-to-whole ("puzzle") GAN (Lee et al. 2018) with deepgen's `puzzle-gan` preset and
recipe on the embedded digits, for the speed ratio in bench/RESULTS.md (same protocol as
`gan_bench --model puzzle-gan`).

Key patches: K = 3 patches of 11x11 per image, each centred on a pixel drawn among the image's
ink (value > 0.5; anywhere when it has none) and moved inside the image, resized bilinearly to
28x28 (align_corners False, as deepgen's `domains::resize`) and mapped to [-1, 1]; the true mask
is their union. Cut here with batched tensor ops (on the GPU under --device cuda), where deepgen
cuts them on the CPU.
E (shared by the K parts, its maps summed over them at every scale): Conv 4x4 s2 p1 32 -
   LeakyReLU 0.2 (s1, 14x14) - Conv 4x4 s2 p1 64 - BN - LeakyReLU 0.2 (s2, 7x7) - Linear 128 -
   LeakyReLU 0.2 (s3).
M: s3 -> Linear 64x7x7 - BN - ReLU, joined to s2 (m7) - ConvT 4x4 s2 p1 32 - BN - ReLU, joined
   to s1 (m14) - ConvT 4x4 s2 p1 1 - sigmoid: the mask.
G: [s3, z ~ U(-1, 1) (128)] -> Linear 64x7x7 - BN - ReLU, joined to m7 - ConvT 32 - BN - ReLU,
   joined to m14 - ConvT 1 - tanh: the whole.
D: Conv 4x4 s2 p1 32 - LeakyReLU 0.2 - Conv 4x4 s2 p1 64 - BN - LeakyReLU 0.2 - Linear 1.
N(0, 0.02) weights, zero biases; batch statistics, each critic call its own batch.
One iteration: the critic on softplus(-D(x)) + softplus(D(G)) + softplus(D(x's parts region from
another image of the batch)) + softplus(D(x's parts on another image's background)); then the
generator (E, M and G under one Adam), the critic frozen, on fresh patches of the same batch:
softplus(-D(G)) + 50 mean |M - M_true| + 50 mean |G M - x M_true|.
Adam(2e-4, betas (0.5, 0.999)) for each player, batch 64.
Data: `gan_bench --export FILE.npy` (the grey-level digits in [0, 1]).

Usage: python torch_puzzle.py --data mnist-grey.npy [--steps 60] [--warmup 10] [--threads 2]
       [--device cpu|cuda]
"""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import torch_gan_common as common

K, P, SIDE, LATENT = 3, 11, 28, 128


def cut(x):
    """(parts [K * B, 1, H, W] in [-1, 1], part k of example b at row k * B + b; true masks
    [B, 1, H, W]) for images x [B, 1, H, W] in [0, 1]."""
    b = x.size(0)
    ink = (x.amax(1).flatten(1) > 0.5).float()
    ink[ink.sum(1) == 0] = 1
    centre = torch.multinomial(ink, K, replacement=True)
    top = (centre // SIDE - P // 2).clamp(0, SIDE - P)
    left = (centre % SIDE - P // 2).clamp(0, SIDE - P)
    ar = torch.arange(P)
    rows = (top[..., None] + ar)[..., :, None]
    cols = (left[..., None] + ar)[..., None, :]
    patches = x[:, 0][torch.arange(b)[:, None, None, None], rows, cols]
    parts = F.interpolate(patches.transpose(0, 1).reshape(K * b, 1, P, P), size=(SIDE, SIDE),
                          mode="bilinear", align_corners=False)
    at = torch.arange(SIDE)
    inside_r = (at >= top[..., None]) & (at < top[..., None] + P)
    inside_c = (at >= left[..., None]) & (at < left[..., None] + P)
    mask = (inside_r[..., :, None] & inside_c[..., None, :]).any(1).float()
    return parts * 2 - 1, mask.unsqueeze(1)


def up(c_in, c_out, last):
    return nn.Sequential(nn.ConvTranspose2d(c_in, c_out, 4, 2, 1), last)


class Assembler(nn.Module):
    """The part encoder and the mask and image generators."""

    def __init__(self, ch=32, f=128, c=1):
        super().__init__()
        self.ch = ch
        self.e1 = nn.Sequential(nn.Conv2d(c, ch, 4, 2, 1), nn.LeakyReLU(0.2))
        self.e2 = nn.Sequential(nn.Conv2d(ch, 2 * ch, 4, 2, 1), nn.BatchNorm2d(2 * ch),
                                nn.LeakyReLU(0.2))
        self.e3 = nn.Sequential(nn.Flatten(), nn.Linear(2 * ch * 49, f), nn.LeakyReLU(0.2))
        self.m0 = nn.Linear(f, 2 * ch * 49)
        self.m0n = nn.BatchNorm2d(2 * ch)
        self.m1 = up(4 * ch, ch, nn.Sequential(nn.BatchNorm2d(ch), nn.ReLU()))
        self.m2 = up(2 * ch, 1, nn.Sigmoid())
        self.g0 = nn.Linear(f + LATENT, 2 * ch * 49)
        self.g0n = nn.BatchNorm2d(2 * ch)
        self.g1 = up(6 * ch, ch, nn.Sequential(nn.BatchNorm2d(ch), nn.ReLU()))
        self.g2 = up(3 * ch, c, nn.Tanh())

    def forward(self, parts, z):
        b = z.size(0)
        a1 = self.e1(parts)
        a2 = self.e2(a1)
        a3 = self.e3(a2)
        s1, s2, s3 = (t.view(K, b, *t.shape[1:]).sum(0) for t in (a1, a2, a3))
        m0 = F.relu(self.m0n(self.m0(s3).view(b, 2 * self.ch, 7, 7)))
        m7 = torch.cat([m0, s2], 1)
        m14 = torch.cat([self.m1(m7), s1], 1)
        mask = self.m2(m14)
        g0 = F.relu(self.g0n(self.g0(torch.cat([s3, z], 1)).view(b, 2 * self.ch, 7, 7)))
        g14 = torch.cat([self.g1(torch.cat([g0, m7], 1)), m14], 1)
        return self.g2(g14), mask


def critic(ch=32, c=1):
    return nn.Sequential(nn.Conv2d(c, ch, 4, 2, 1), nn.LeakyReLU(0.2),
                         nn.Conv2d(ch, 2 * ch, 4, 2, 1), nn.BatchNorm2d(2 * ch),
                         nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(2 * ch * 49, 1))


def main():
    a = common.parse(60, 10, 64)
    x_all = torch.from_numpy(np.load(a.data)).float().view(-1, 1, SIDE, SIDE).to(a.device)
    g, d = Assembler(), critic()
    common.normal_init(g, d)
    og = torch.optim.Adam(g.parameters(), 2e-4, betas=(0.5, 0.999))
    od = torch.optim.Adam(d.parameters(), 2e-4, betas=(0.5, 0.999))
    b, batches, timer = a.batch, common.Batches(len(x_all), a.batch, a.seed), common.Timer(a)

    def assembled(x):
        parts, truth = cut(x)
        y, mask = g(parts, torch.rand(b, LATENT) * 2 - 1)
        return y, mask, truth

    for step in range(a.steps):
        timer.tick(step)
        x01 = x_all[torch.from_numpy(batches.next()).to(a.device)]
        x = x01 * 2 - 1
        fake, _, truth = assembled(x01)
        fake = fake.detach()
        other = x[(torch.arange(b) + torch.randint(1, b, (b,))) % b]
        shuffled_parts = other * truth + x * (1 - truth)
        shuffled_background = x * truth + other * (1 - truth)
        ld = (F.softplus(-d(x)).mean() + F.softplus(d(fake)).mean()
              + F.softplus(d(shuffled_parts)).mean() + F.softplus(d(shuffled_background)).mean())
        common.update(od, ld)
        d.requires_grad_(False)
        fake, mask, truth = assembled(x01)
        lg = (F.softplus(-d(fake)).mean() + 50 * (mask - truth).abs().mean()
              + 50 * (fake * mask - x * truth).abs().mean())
        common.update(og, lg)
        d.requires_grad_(True)
    timer.report("puzzle-gan", (g, d), ld, lg)


if __name__ == "__main__":
    main()
