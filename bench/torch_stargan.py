"""PyTorch StarGAN with deepgen's `stargan` preset and recipe on the embedded digits with drawn
attributes (`mnist+attributes`: 3x28x28, colour red|green|blue, thick, invert), for the speed
ratio in bench/RESULTS.md (same protocol as `gan_bench --model stargan`).

G (channels 16): Conv 7x7 p3 16 - IN - ReLU - Conv 4x4 s2 p1 32 - IN - ReLU - Conv 4x4 s2 p1 64
   - IN - ReLU - 6 residual blocks [Conv 3x3 p1 - IN - ReLU - Conv 3x3 p1 - IN] - ConvT 4x4 s2 p1
   32 - IN - ReLU - ConvT 4x4 s2 p1 16 - IN - ReLU - Conv 7x7 p3 3 - tanh; affine instance norm
   (eps 1e-5), every convolution with a bias (as deepgen's); the input is the image with the
   5 target-label planes beside it.
D: Conv 4x4 s2 p1 32 - LeakyReLU 0.01 - Conv 4x4 s2 p1 64 - LeakyReLU 0.01 - Conv 4x4 s2 p1 128
   - LeakyReLU 0.01 (28 -> 14 -> 7 -> 3); D_src Conv 3x3 p1 1; D_cls a dense layer over the
   3x3x128 map to the 5 label logits (the authors' whole-map convolution).
PyTorch's default initialisation (deepgen's Init::Default is the same uniform bound).
Losses (deepgen's, the authors' solver.py): classification = softmax cross-entropy over the
colour group + sigmoid cross-entropy for thick and for invert, summed, averaged over the batch.
One iteration: 5 critic updates, each on its own batch of 16 with target labels a random
permutation of the batch's: -mean D_src(x) + mean D_src(G(x, c')) + cls(D_cls(x), c)
+ 10 (||grad D_src(x_hat)|| - 1)^2; then one generator update on the last batch with a fresh
permutation: -mean D_src(G(x, c')) + cls(D_cls(G(x, c')), c') + 10 |x - G(G(x, c'), c)|.
Adam(1e-4, betas (0.5, 0.999)) for each player.
Data: `gan_bench --model stargan --export FILE.npy` (FILE.npy and FILE-attributes.npy).

Usage: python torch_stargan.py --data stargan.npy [--steps 20] [--warmup 3] [--threads 2]
       [--device cpu|cuda]
"""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import torch_gan_common as common


def norm(c):
    return nn.InstanceNorm2d(c, affine=True)


class Res(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, 1, 1), norm(c), nn.ReLU(),
                                  nn.Conv2d(c, c, 3, 1, 1), norm(c))

    def forward(self, x):
        return x + self.body(x)


class Generator(nn.Module):
    def __init__(self, c_img=3, k=5, ch=16, blocks=6):
        super().__init__()
        layers = [nn.Conv2d(c_img + k, ch, 7, 1, 3), norm(ch), nn.ReLU(),
                  nn.Conv2d(ch, 2 * ch, 4, 2, 1), norm(2 * ch), nn.ReLU(),
                  nn.Conv2d(2 * ch, 4 * ch, 4, 2, 1), norm(4 * ch), nn.ReLU()]
        layers += [Res(4 * ch) for _ in range(blocks)]
        layers += [nn.ConvTranspose2d(4 * ch, 2 * ch, 4, 2, 1), norm(2 * ch), nn.ReLU(),
                   nn.ConvTranspose2d(2 * ch, ch, 4, 2, 1), norm(ch), nn.ReLU(),
                   nn.Conv2d(ch, c_img, 7, 1, 3), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x, c):
        planes = c.view(c.size(0), c.size(1), 1, 1).expand(-1, -1, x.size(2), x.size(3))
        return self.net(torch.cat([x, planes], 1))


class Critic(nn.Module):
    def __init__(self, c_img=3, k=5, ch=16, layers=3, side=28):
        super().__init__()
        body, c = [], c_img
        for i in range(layers):
            body += [nn.Conv2d(c, (2 * ch) << i, 4, 2, 1), nn.LeakyReLU(0.01)]
            c, side = (2 * ch) << i, side // 2
        self.body = nn.Sequential(*body)
        self.src = nn.Conv2d(c, 1, 3, 1, 1)
        self.cls = nn.Linear(c * side * side, k)

    def forward(self, x):
        h = self.body(x)
        return self.src(h).flatten(1), self.cls(h.flatten(1))


def classification(logits, target):
    """Softmax cross-entropy over the colour group (columns 0-2), sigmoid cross-entropy for the
    two binary attributes, summed over attributes, averaged over the batch."""
    group = -(F.log_softmax(logits[:, :3], 1) * target[:, :3]).sum(1)
    binary = F.binary_cross_entropy_with_logits(logits[:, 3:], target[:, 3:], reduction="none")
    return (group + binary.sum(1)).mean()


def main():
    a = common.parse(20, 3, 16, lambda ap: ap.add_argument("--n-critic", type=int, default=5))
    x_all = torch.from_numpy(np.load(a.data)).float().view(-1, 3, 28, 28).to(a.device) * 2 - 1
    c_all = torch.from_numpy(np.load(a.data[:-len(".npy")] + "-attributes.npy")).float().to(a.device)
    assert c_all.shape == (len(x_all), 5), c_all.shape
    g, d = Generator(), Critic()
    og = torch.optim.Adam(g.parameters(), 1e-4, betas=(0.5, 0.999))
    od = torch.optim.Adam(d.parameters(), 1e-4, betas=(0.5, 0.999))
    b, batches, timer = a.batch, common.Batches(len(x_all), a.batch, a.seed), common.Timer(a)

    def batch():
        idx = batches.next()
        return x_all[idx], c_all[idx]

    for step in range(a.steps):
        timer.tick(step)
        for _ in range(a.n_critic):
            x, c = batch()
            c_trg = c[torch.randperm(b)]
            with torch.no_grad():
                fake = g(x, c_trg)
            src_r, cls_r = d(x)
            src_f, _ = d(fake)
            e = torch.rand(b, 1, 1, 1)
            x_hat = (e * x + (1 - e) * fake).requires_grad_(True)
            src_h, _ = d(x_hat)
            grad, = torch.autograd.grad(src_h.sum(), x_hat, create_graph=True)
            gp = ((grad.flatten(1).pow(2).sum(1) + 1e-12).sqrt() - 1).pow(2).mean()
            ld = -src_r.mean() + src_f.mean() + classification(cls_r, c) + 10 * gp
            od.zero_grad(set_to_none=True)
            ld.backward()
            od.step()
        d.requires_grad_(False)
        c_trg = c[torch.randperm(b)]
        fake = g(x, c_trg)
        src_f, cls_f = d(fake)
        rec = g(fake, c)
        lg = -src_f.mean() + classification(cls_f, c_trg) + 10 * (x - rec).abs().mean()
        og.zero_grad(set_to_none=True)
        lg.backward()
        og.step()
        d.requires_grad_(True)
    timer.report("stargan", (g, d), ld, lg)

if __name__ == "__main__":
    main()
