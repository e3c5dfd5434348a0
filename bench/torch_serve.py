"""The Python baseline of bench/serve.sh: a minimal PyTorch HTTP service over the same VAE
(784-512-512-32, Bernoulli decoder) with the same weights, read from a deepgen run's
model.safetensors, and the same two calls:

  POST /v1/models/vae/sample   {"n": N, "seed": S}  -> {"samples": [[...]]} (Bernoulli draws)
  POST /v1/models/vae/score    NPY [n, 1, 28, 28]   -> {"examples": [{"log_p_nats", "bits_per_dim"}]}
                                                       (importance-weighted bound, the run's k)

Python's standard ThreadingHTTPServer (a thread per connection, keep-alive) and torch with
`--threads` intra-op threads; no framework, so the ratio measures the model work and the
serving loop, not a framework's overhead.

  python bench/torch_serve.py RUN --port 8181 [--threads 2]
"""

import argparse
import json
import math
import struct
import sys
import tomllib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import torch
import torch.nn.functional as F
from safetensors.torch import load_file


class Vae:
    def __init__(self, run):
        w = load_file(f"{run}/model.safetensors")
        self.w = w
        cfg = tomllib.load(open(f"{run}/config.toml", "rb"))
        self.k = int(cfg["model"].get("iw_samples", 100))
        self.latent = w["enc.mu.weight"].shape[1]
        self.dim = w["dec.out.weight"].shape[1]

    def lin(self, name, x):
        return x @ self.w[name + ".weight"] + self.w[name + ".bias"]

    def encode(self, x):
        h = F.relu(self.lin("enc.1", F.relu(self.lin("enc.0", x))))
        return self.lin("enc.mu", h), self.lin("enc.logvar", h)

    def logits(self, z):
        return self.lin("dec.out", F.relu(self.lin("dec.1", F.relu(self.lin("dec.0", z)))))

    @torch.no_grad()
    def sample(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        z = torch.randn(n, self.latent, generator=g)
        p = torch.sigmoid(self.logits(z))
        return torch.bernoulli(p, generator=g)

    @torch.no_grad()
    def log_prob(self, x, seed):
        g = torch.Generator().manual_seed(seed)
        mu, lv = self.encode(x)
        std = torch.exp(0.5 * lv)
        eps = torch.randn(self.k, *mu.shape, generator=g)
        z = mu + std * eps
        lg = self.logits(z)
        lpx = -F.binary_cross_entropy_with_logits(lg, x.expand_as(lg), reduction="none").sum(-1)
        lpz = (-0.5 * z.pow(2) - 0.5 * math.log(2 * math.pi)).sum(-1)
        lqz = (-0.5 * eps.pow(2) - 0.5 * lv - 0.5 * math.log(2 * math.pi)).sum(-1)
        return torch.logsumexp(lpx + lpz - lqz, 0) - math.log(self.k)


def read_npy(b):
    """A little-endian float32 C-order NPY (what deepgen writes) as a tensor [n, D]."""
    if b[:6] != b"\x93NUMPY":
        raise ValueError("not an NPY file")
    major = b[6]
    hlen = struct.unpack("<H", b[8:10])[0] if major == 1 else struct.unpack("<I", b[8:12])[0]
    start = (10 if major == 1 else 12) + hlen
    header = b[start - hlen:start].decode("latin1")
    if "'<f4'" not in header or "True" in header.split("fortran_order")[1][:8]:
        raise ValueError("want little-endian float32, C order")
    shape = eval(header.split("'shape':")[1].split(")")[0] + ")")
    t = torch.frombuffer(bytearray(b[start:]), dtype=torch.float32)
    return t.reshape(shape[0], -1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--port", type=int, default=8181)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    vae = Vae(a.run)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def reply(self, code, obj):
            body = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            n = int(self.headers.get("Content-Length", 0))
            data = self.rfile.read(n)
            try:
                if self.path == "/v1/models/vae/sample":
                    q = json.loads(data or b"{}")
                    x = vae.sample(int(q.get("n", 16)), int(q.get("seed", 0)))
                    self.reply(200, {"n": x.shape[0], "samples": x.tolist()})
                elif self.path.startswith("/v1/models/vae/score"):
                    lp = vae.log_prob(read_npy(data), 0)
                    d = vae.dim * math.log(2)
                    ex = [{"log_p_nats": v, "bits_per_dim": -v / d} for v in lp.tolist()]
                    self.reply(200, {"n": len(ex), "examples": ex})
                else:
                    self.reply(404, {"error": "unknown path " + self.path})
            except Exception as e:  # one line, as the deepgen service answers
                self.reply(400, {"error": str(e)})

        def log_message(self, *args):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    print(f"torch_serve: listening on http://127.0.0.1:{a.port}/", flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
