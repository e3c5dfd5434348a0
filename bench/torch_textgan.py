"""PyTorch text-conditional GAN (GAN-INT-CLS, Reed et al. 2016) with deepgen's `text-gan` preset
and recipe on the embedded captioned digits (`mnist+captions+seen`), for the speed ratio in
bench/RESULTS.md (same protocol as `gan_bench --model text-gan`).

Text encoder phi (fixed, run under no_grad; the matcher's shape with untrained weights, as
gan_bench's): word embedding 32 (id 0 pads, masked out) - width-3 convolution over the words
128 + ReLU - max over the words - Linear 64.
G: phi(t) -> Linear 32 + LeakyReLU 0.2, joined to z ~ N(0, I) (100) -> Linear 128x7x7 - BN -
   ReLU - ConvT 4x4 s2 p1 64 - BN - ReLU - ConvT 4x4 s2 p1 1 - tanh.
D: Conv 4x4 s2 p1 64 - LeakyReLU 0.2 - Conv 4x4 s2 p1 128 - BN - LeakyReLU 0.2 (7x7 map); phi(t)
   -> Linear 32 + LeakyReLU 0.2 tiled over the map and joined as channels - Conv 1x1 128 - BN -
   LeakyReLU 0.2 - Linear over the 7x7x128 map to one logit.
N(0, 0.02) weights, zero biases (deepgen's Init::Normal(0.02)); batch norm with batch
statistics, each critic call its own batch.
One iteration (the batch's rows each with one of its image's 5 captions, drawn afresh):
the critic on softplus(-D(x, h)) + 1/2 softplus(D(G(z, h), h)) + 1/2 softplus(D(x, h_wrong))
(h_wrong: the caption of another row with another label), G's batch holding B rows plus B/2 at
h = (h[:B/2] + h[B/2:]) / 2 of which the critic sees the first B; then the generator, the critic
frozen, on softplus(-D(G(z, h), h)) over a fresh B + B/2 rows of the same batch.
Adam(2e-4, betas (0.5, 0.999)) for each player, batch 64.
Data: `gan_bench --model text-gan --export FILE.npy` (FILE.npy, FILE-captions.npy,
FILE-labels.npy).

Usage: python torch_textgan.py --data text.npy [--steps 60] [--warmup 10] [--threads 2]
       [--device cpu|cuda]
"""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import torch_gan_common as common


class TextEncoder(nn.Module):
    def __init__(self, vocab, words=32, channels=128, dim=64):
        super().__init__()
        self.embed = nn.Parameter(torch.randn(vocab + 1, words) * 0.1)
        self.conv = nn.Linear(3 * words, channels)
        self.out = nn.Linear(channels, dim)

    def forward(self, ids):
        mask = (ids != 0).float().unsqueeze(2)
        h = self.embed[ids] * mask
        padded = F.pad(h, (0, 0, 1, 1))
        windows = torch.cat([padded[:, :-2], padded[:, 1:-1], padded[:, 2:]], 2)
        c = F.relu(self.conv(windows)) + (mask - 1) * 1e4
        return self.out(c.amax(1))


def compress(dim=64, nt=32):
    return nn.Sequential(nn.Linear(dim, nt), nn.LeakyReLU(0.2))


class Generator(nn.Module):
    def __init__(self, latent=100, nt=32, ch=64, c=1):
        super().__init__()
        self.text, self.ch = compress(nt=nt), ch
        self.fc = nn.Linear(latent + nt, 2 * ch * 7 * 7)
        self.net = nn.Sequential(nn.BatchNorm2d(2 * ch), nn.ReLU(),
                                 nn.ConvTranspose2d(2 * ch, ch, 4, 2, 1), nn.BatchNorm2d(ch),
                                 nn.ReLU(), nn.ConvTranspose2d(ch, c, 4, 2, 1), nn.Tanh())

    def forward(self, z, h):
        y = self.fc(torch.cat([z, self.text(h)], 1)).view(-1, 2 * self.ch, 7, 7)
        return self.net(y)


class Critic(nn.Module):
    def __init__(self, nt=32, ch=64, c=1):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, ch, 4, 2, 1), nn.LeakyReLU(0.2),
                                  nn.Conv2d(ch, 2 * ch, 4, 2, 1), nn.BatchNorm2d(2 * ch),
                                  nn.LeakyReLU(0.2))
        self.text = compress(nt=nt)
        self.joint = nn.Sequential(nn.Conv2d(2 * ch + nt, 2 * ch, 1), nn.BatchNorm2d(2 * ch),
                                   nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(2 * ch * 49, 1))

    def forward(self, x, h):
        f = self.body(x)
        t = self.text(h)[:, :, None, None].expand(-1, -1, f.size(2), f.size(3))
        return self.joint(torch.cat([f, t], 1)).squeeze(1)


def main():
    a = common.parse(60, 10, 64)
    stem = a.data[:-len(".npy")]
    x_all = torch.from_numpy(np.load(a.data)).float().view(-1, 1, 28, 28).to(a.device) * 2 - 1
    caps = torch.from_numpy(np.load(stem + "-captions.npy")).long().to(a.device)
    labels = torch.from_numpy(np.load(stem + "-labels.npy")).long().to(a.device)
    assert caps.shape[0] == labels.shape[0] == len(x_all), (caps.shape, labels.shape)
    enc = TextEncoder(int(caps.max()))
    enc.requires_grad_(False)
    g, d = Generator(), Critic()
    common.normal_init(g, d)
    og = torch.optim.Adam(g.parameters(), 2e-4, betas=(0.5, 0.999))
    od = torch.optim.Adam(d.parameters(), 2e-4, betas=(0.5, 0.999))
    b, batches, timer = a.batch, common.Batches(len(x_all), a.batch, a.seed), common.Timer(a)
    half = b // 2

    def generated(h):
        """G's rows: B at the batch's embeddings, B/2 at GAN-INT's interpolations."""
        h = torch.cat([h, 0.5 * h[:half] + 0.5 * h[half:2 * half]])
        return g(torch.randn(len(h), 100), h), h

    for step in range(a.steps):
        timer.tick(step)
        idx = torch.from_numpy(batches.next()).to(a.device)
        x, y = x_all[idx], labels[idx]
        with torch.no_grad():
            h = enc(caps[idx, torch.randint(caps.shape[1], (b,))])
        fake, _ = generated(h)
        fake = fake[:b].detach()
        others = (y[:, None] != y[None, :]).float()
        others[others.sum(1) == 0] = 1 - torch.eye(b)[others.sum(1) == 0]
        wrong = h[torch.multinomial(others, 1).squeeze(1)]
        ld = (F.softplus(-d(x, h)).mean() + 0.5 * F.softplus(d(fake, h)).mean()
              + 0.5 * F.softplus(d(x, wrong)).mean())
        common.update(od, ld)
        d.requires_grad_(False)
        fake, hg = generated(h)
        lg = F.softplus(-d(fake, hg)).mean()
        common.update(og, lg)
        d.requires_grad_(True)
    timer.report("text-gan", (g, d), ld, lg)


if __name__ == "__main__":
    main()
