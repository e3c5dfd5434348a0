"""PyTorch CycleGAN with deepgen's `cyclegan` preset for 28x28 grey images, for the speed ratio
in bench/RESULTS.md (same protocol as `gan_bench --model cyclegan --batch 8`).

G, F (ngf 16): ReflectionPad(3) Conv 7x7 16 - IN - ReLU - Conv 3x3 s2 32 - IN - ReLU - Conv 3x3
   s2 64 - IN - ReLU - 6 residual blocks [ReflectionPad(1) Conv 3x3 - IN - ReLU - ReflectionPad(1)
   Conv 3x3 - IN] - ConvT 4x4 s2 32 - IN - ReLU - ConvT 4x4 s2 16 - IN - ReLU - ReflectionPad(3)
   Conv 7x7 1 - tanh. Instance norm without affine parameters, eps 1e-5; every convolution has a
   bias (as deepgen's).
D_A, D_B (ndf 16, PatchGAN n_layers=1): Conv 4x4 s2 p1 16 - LeakyReLU 0.2 - Conv 4x4 s1 p1 32 -
   IN - LeakyReLU 0.2 - Conv 4x4 s1 p1 1.
Weights N(0, 0.02), biases 0. Adam(2e-4, betas (0.5, 0.999)) for the two generators together and
for the two critics together, batch 8, images in [-1, 1].
One iteration, in deepgen's trainer's order: the critics on real images and on generated ones
(made without a graph) passed through a 50-image pool each, each critic's loss
1/2 (MSE(D(real), 1) + MSE(D(fake), 0)), the two averaged; then the generators on
MSE(D_B(G(a)), 1) + MSE(D_A(F(b)), 1) + 10 (|F(G(a)) - a| + |G(F(b)) - b|)
+ 5 (|G(b) - b| + |F(a) - a|), L1 as means.
Data: domain A the embedded MNIST training digits (`gan_bench --export FILE`), domain B the same
digits inverted (deepgen's `mnist+invert`), batches of each from their own permutation.

Usage: python torch_cyclegan.py --data mnist-grey.npy [--steps 60] [--warmup 10] [--threads 2]
       [--device cpu|cuda]
"""
import random

import numpy as np
import torch
import torch.nn as nn

import torch_gan_common as common


def same(c_in, c_out, k):
    return [nn.ReflectionPad2d(k // 2), nn.Conv2d(c_in, c_out, k)]


class Res(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.body = nn.Sequential(*same(c, c, 3), nn.InstanceNorm2d(c), nn.ReLU(),
                                  *same(c, c, 3), nn.InstanceNorm2d(c))

    def forward(self, x):
        return x + self.body(x)


def generator(ch=16, blocks=6):
    layers = [*same(1, ch, 7), nn.InstanceNorm2d(ch), nn.ReLU(),
              nn.Conv2d(ch, 2 * ch, 3, 2, 1), nn.InstanceNorm2d(2 * ch), nn.ReLU(),
              nn.Conv2d(2 * ch, 4 * ch, 3, 2, 1), nn.InstanceNorm2d(4 * ch), nn.ReLU()]
    layers += [Res(4 * ch) for _ in range(blocks)]
    layers += [nn.ConvTranspose2d(4 * ch, 2 * ch, 4, 2, 1), nn.InstanceNorm2d(2 * ch), nn.ReLU(),
               nn.ConvTranspose2d(2 * ch, ch, 4, 2, 1), nn.InstanceNorm2d(ch), nn.ReLU(),
               *same(ch, 1, 7), nn.Tanh()]
    return nn.Sequential(*layers)


def critic(ndf=16):
    return nn.Sequential(nn.Conv2d(1, ndf, 4, 2, 1), nn.LeakyReLU(0.2),
                         nn.Conv2d(ndf, 2 * ndf, 4, 1, 1), nn.InstanceNorm2d(2 * ndf),
                         nn.LeakyReLU(0.2), nn.Conv2d(2 * ndf, 1, 4, 1, 1))


class Pool:
    """The authors' ImagePool: until full, store and return; then half the time swap a random
    stored image in for the new one."""

    def __init__(self, size=50):
        self.size, self.images = size, []

    def query(self, x):
        out = []
        for im in x:
            im = im.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(im)
                out.append(im)
            elif random.random() < 0.5:
                k = random.randrange(self.size)
                out.append(self.images[k].clone())
                self.images[k] = im
            else:
                out.append(im)
        return torch.cat(out, 0)


def main():
    a = common.parse(60, 10, 8)
    random.seed(a.seed)
    xa = torch.from_numpy(np.load(a.data)).float().view(-1, 1, 28, 28).to(a.device) * 2 - 1
    xb = -xa
    g_ab, g_ba, d_a, d_b = generator(), generator(), critic(), critic()
    for net in (g_ab, g_ba, d_a, d_b):
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.normal_(m.weight, 0, 0.02)
                nn.init.zeros_(m.bias)
    og = torch.optim.Adam(list(g_ab.parameters()) + list(g_ba.parameters()), 2e-4, betas=(0.5, 0.999))
    od = torch.optim.Adam(list(d_a.parameters()) + list(d_b.parameters()), 2e-4, betas=(0.5, 0.999))
    pool_a, pool_b = Pool(), Pool()
    batches, timer = common.Batches(len(xa), a.batch, a.seed, k=2), common.Timer(a)
    mse = lambda v, t: ((v - t) ** 2).mean()
    for step in range(a.steps):
        timer.tick(step)
        ia, ib = batches.next()
        ra, rb = xa[ia], xb[ib]
        with torch.no_grad():
            fa, fb = pool_a.query(g_ba(rb)), pool_b.query(g_ab(ra))
        la = 0.5 * (mse(d_a(ra), 1) + mse(d_a(fa), 0))
        lb = 0.5 * (mse(d_b(rb), 1) + mse(d_b(fb), 0))
        ld = 0.5 * (la + lb)
        od.zero_grad(set_to_none=True)
        ld.backward()
        od.step()
        d_a.requires_grad_(False)
        d_b.requires_grad_(False)
        fake_b, fake_a = g_ab(ra), g_ba(rb)
        adv = mse(d_b(fake_b), 1) + mse(d_a(fake_a), 1)
        cyc = 10 * ((g_ba(fake_b) - ra).abs().mean() + (g_ab(fake_a) - rb).abs().mean())
        idt = 5 * ((g_ab(rb) - rb).abs().mean() + (g_ba(ra) - ra).abs().mean())
        lg = adv + cyc + idt
        og.zero_grad(set_to_none=True)
        lg.backward()
        og.step()
        d_a.requires_grad_(True)
        d_b.requires_grad_(True)
    timer.report("cyclegan", (g_ab, g_ba, d_a, d_b), ld, lg)

if __name__ == "__main__":
    main()
