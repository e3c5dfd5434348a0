"""PyTorch versions of deepgen's autoregressive image models, for bench/torch_ref.py.

Each class is the architecture of the deepgen preset named in its docstring
(same layers, maps, taps and parameter count), written the way a PyTorch user
would write it, with PyTorch's default initialisation. Each has `logits(x)`
for x [B, 784] in {0, 1} and `sample(n)`, the best sampler PyTorch code for
the model usually ships (said per class).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

H = W = 28


def bce_log_prob(logits, x):
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(1)


# Pixels the naive sampler draws (all of them unless bench/torch_ref.py's --sample-pixels says
# fewer): each costs one full forward pass whatever its index, so timing the first K pixels and
# scaling by D/K measures the whole sampler without running it for minutes.
PIXELS = [H * W]


@torch.no_grad()
def naive_sample(model, n):
    """Raster-order sampling by one full forward pass per pixel (pytorch-generative's way)."""
    x = torch.zeros(n, H * W)
    for i in range(PIXELS[0]):
        p = torch.sigmoid(model.logits(x)[:, i])
        x[:, i] = torch.bernoulli(p)
    return x


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


def head(c):
    """relu -> 1x1 -> relu -> 1x1, deepgen's output head."""
    return nn.Sequential(nn.ReLU(), nn.Conv2d(c, c, 1), nn.ReLU(), nn.Conv2d(c, 1, 1))


class PixelCNN(nn.Module):
    """deepgen's `pixelcnn` (models/pixelcnn.rs): 7x7 mask A conv to C maps, residual blocks
    x + 1x1(relu(3x3_B(relu(1x1(relu x))))) with C/2 inner maps, relu -> 1x1 -> relu -> 1x1 -> logit.
    Sampler: one forward pass per pixel."""

    def __init__(self, c=32, layers=5):
        super().__init__()
        self.inp = MaskedConv2d(1, c, 7, "A")
        self.blocks = nn.ModuleList(nn.ModuleList([nn.Conv2d(c, c // 2, 1), MaskedConv2d(c // 2, c // 2, 3, "B"), nn.Conv2d(c // 2, c, 1)]) for _ in range(layers))
        self.head = head(c)

    def logits(self, x):
        h = self.inp(x.view(-1, 1, H, W))
        for a, conv, b in self.blocks:
            h = h + b(F.relu(conv(F.relu(a(F.relu(h))))))
        return self.head(h).view(x.shape[0], -1)

    def sample(self, n):
        return naive_sample(self, n)


def gate(x):
    a, b = x.chunk(2, 1)
    return torch.tanh(a) * torch.sigmoid(b)


class GatedPixelCNN(nn.Module):
    """deepgen's `gated-pixelcnn` (C=16 maps per stack, 1 + 5 layers): the vertical stack's kernel
    covers rows r-k/2..r (r-1 in the first layer, k=7; then k=3) and every column within k/2, the
    horizontal one the current row's k/2 pixels to the left and (after the first layer) the centre,
    both to 2C maps; h_pre = h_conv + link(v_pre), v = gate(v_pre), h = h + res(gate(h_pre)) (no
    residual in the first layer); gate = tanh(first half) * sigmoid(second half). Kernels are
    shaped to their taps (a (k/2+1) x k vertical and a 1 x (k/2+1) horizontal kernel, padded and
    cropped), as the usual PyTorch implementations do, so no multiply is wasted on masked taps.
    Sampler: one forward pass per pixel."""

    def __init__(self, c=16, layers=5):
        super().__init__()
        self.layers = nn.ModuleList()
        for l in range(layers + 1):
            k, cin, first = (7, 1, True) if l == 0 else (3, c, False)
            r = k // 2
            kh, kw = (r if first else r + 1), (r if first else r + 1)
            self.layers.append(nn.ModuleDict({
                "v": nn.Conv2d(cin, 2 * c, (kh, k)), "h": nn.Conv2d(cin, 2 * c, (1, kw)),
                "link": nn.Conv2d(2 * c, 2 * c, 1), "res": nn.Conv2d(c, c, 1)}))
        self.head = head(c)

    def logits(self, x):
        v = h = x.view(-1, 1, H, W)
        for l, g in enumerate(self.layers):
            k = 7 if l == 0 else 3
            r = k // 2
            if l == 0:   # rows r-3..r-1, columns r-1 .. left of the pixel: crop the last row / column
                vp, hp = F.pad(v[:, :, :-1], (r, r, r, 0)), F.pad(h[:, :, :, :-1], (r, 0, 0, 0))
            else:
                vp, hp = F.pad(v, (r, r, r, 0)), F.pad(h, (r, 0, 0, 0))
            v_pre = g["v"](vp)
            h_pre = g["h"](hp) + g["link"](v_pre)
            v = gate(v_pre)
            out = g["res"](gate(h_pre))
            h = out if l == 0 else h + out
        return self.head(h).view(x.shape[0], -1)

    def sample(self, n):
        return naive_sample(self, n)


def lstm_cell(g, c_prev, c):
    """Gates (i, f, o, g): c = sigma(f) c' + sigma(i) tanh(g), h = sigma(o) tanh(c)."""
    s = torch.sigmoid(g[:, :3 * c])
    cell = s[:, c:2 * c] * c_prev + s[:, :c] * torch.tanh(g[:, 3 * c:])
    return s[:, 2 * c:] * torch.tanh(cell), cell


class PixelRNN(nn.Module):
    """deepgen's `row-lstm` and `diagonal-bilstm` (models/pixelrnn.rs; C=32, 2 layers): a 7x7 mask A
    conv to C maps, LSTM layers with residuals x + 1x1(h), the relu -> 1x1 -> relu -> 1x1 head.
    Row LSTM: 1x2 input-to-state conv (left, centre), 1x3 state-to-state conv over the row above (no
    bias), a loop over rows. Diagonal BiLSTM: per direction a 1x1 input-to-state conv on the skewed
    map and a 2x1 state-to-state conv (above, left; no bias) over the previous skewed column, a loop
    over the W+H-1 columns with states outside the image held at zero; the right-to-left direction
    runs on the mirrored image and its output is shifted down one row. Sampler: one forward pass per
    pixel (cell-by-cell caching is not what PyTorch implementations ship)."""

    def __init__(self, cell="row", c=32, layers=2):
        super().__init__()
        self.cell, self.c = cell, c
        self.inp = MaskedConv2d(1, c, 7, "A")
        dirs = 1 if cell == "row" else 2
        self.layers = nn.ModuleList()
        for _ in range(layers):
            if cell == "row":
                d = [nn.ModuleDict({"input": nn.Conv2d(c, 4 * c, (1, 2)), "state": nn.Conv1d(c, 4 * c, 3, padding=1, bias=False)})]
            else:
                d = [nn.ModuleDict({"input": nn.Conv2d(c, 4 * c, 1), "state": nn.Conv1d(c, 4 * c, 2, bias=False)}) for _ in range(dirs)]
            self.layers.append(nn.ModuleDict({"dirs": nn.ModuleList(d), "res": nn.Conv2d(c, c, 1)}))
        self.head = head(c)

    def row_lstm(self, d, x):
        b, c = x.shape[0], self.c
        gin = d["input"](F.pad(x, (1, 0, 0, 0)))             # [B, 4C, H, W]
        h, cell, rows = x.new_zeros(b, c, W), x.new_zeros(b * W, c), []
        for r in range(H):
            g = gin[:, :, r] + d["state"](h)                  # [B, 4C, W]
            hn, cell = lstm_cell(g.permute(0, 2, 1).reshape(b * W, 4 * c), cell, c)
            h = hn.view(b, W, c).permute(0, 2, 1)
            rows.append(h)
        return torch.stack(rows, 2)                          # [B, C, H, W]

    def diagonal_lstm(self, d, x):
        b, c = x.shape[0], self.c
        gin = d["input"](x)                                   # [B, 4C, H, W]
        cols = W + H - 1
        skewed = x.new_zeros(b, 4 * c, H, cols)
        for r in range(H):
            skewed[:, :, r, r:r + W] = gin[:, :, r]
        valid = torch.tensor([[1.0 if r <= col < r + W else 0.0 for r in range(H)] for col in range(cols)])
        h, cell, outs = x.new_zeros(b, c, H), x.new_zeros(b * H, c), []
        for col in range(cols):
            g = skewed[:, :, :, col] + d["state"](F.pad(h, (1, 0)))   # [B, 4C, H]: the state above, then this row's
            hn, cell = lstm_cell(g.permute(0, 2, 1).reshape(b * H, 4 * c), cell, c)
            m = valid[col].view(1, H, 1)
            cell = (cell.view(b, H, c) * m).view(b * H, c)
            h = (hn.view(b, H, c) * m).permute(0, 2, 1)
            outs.append(h)
        out = torch.stack(outs, 3)                            # [B, C, H, cols]
        return torch.stack([out[:, :, r, r:r + W] for r in range(H)], 2)

    def logits(self, x):
        x = self.inp(x.view(-1, 1, H, W))
        for layer in self.layers:
            if self.cell == "row":
                hid = self.row_lstm(layer["dirs"][0], x)
            else:
                left = self.diagonal_lstm(layer["dirs"][0], x)
                right = self.diagonal_lstm(layer["dirs"][1], x.flip(3)).flip(3)
                hid = left + F.pad(right[:, :, :-1], (0, 0, 1, 0))
            x = x + layer["res"](hid)
        return self.head(x).view(-1, H * W)

    def sample(self, n):
        return naive_sample(self, n)


class NADE(nn.Module):
    """deepgen's `nade` (H=500), Larochelle & Murray (2011) eqs. 6-7, written either vectorised with
    cumsum over a [B, D, H] tensor (`impl="cumsum"`) or as the per-pixel recurrence (`impl="loop"`).
    Sampler: the O(DH) recurrence over the batch of samples."""

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

    @torch.no_grad()
    def sample(self, n):
        d = self.W.shape[1]
        x = torch.zeros(n, d)
        a = self.c.expand(n, -1).clone()
        wt = self.W.t()
        for i in range(d):
            p = torch.sigmoid(torch.sigmoid(a) @ self.V[i] + self.b[i])
            x[:, i] = torch.bernoulli(p)
            a += x[:, i:i + 1] * wt[i]
        return x


class MADE(nn.Module):
    """deepgen's `made` preset: one hidden layer of 500 ReLU units, natural order, one mask set
    (hidden degrees drawn uniformly in [1, D-1]). Sampler: one forward pass per pixel, the way
    MADE implementations sample (Germain et al.'s code, pytorch-generative)."""

    def __init__(self, d=784, h=500, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        m0 = torch.arange(1, d + 1, device="cpu")
        m1 = torch.randint(1, d, (h,), generator=g, device="cpu")
        self.register_buffer("mask1", (m1[:, None] >= m0[None, :]).float())   # [H, D]
        self.register_buffer("mask2", (m0[:, None] > m1[None, :]).float())    # [D, H]
        self.l1, self.l2 = nn.Linear(d, h), nn.Linear(h, d)

    def logits(self, x):
        h = F.relu(F.linear(x, self.l1.weight * self.mask1, self.l1.bias))
        return F.linear(h, self.l2.weight * self.mask2, self.l2.bias)

    def sample(self, n):
        return naive_sample(self, n)
