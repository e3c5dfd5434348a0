//! deepgen's CUDA kernels (`nn::cuda`) on any machine: each source is compiled as C by the
//! system's C compiler (the one Rust links with; `CC` overrides it) behind `nn::cuda::C_SHIM`,
//! and a driver runs every thread of each launch in turn, in order and again in reverse (the two
//! must agree bit for bit: a GPU keeps no order), under the address and undefined-behaviour
//! sanitizers where the compiler has them (a read or write past a buffer stops the driver). The
//! kernels' threads share nothing (no shared memory, synchronisation or atomics), so this is the
//! GPU's arithmetic up to floating-point contraction, and it must agree with deepgen's CPU
//! kernels: NADE's logits and weight gradients against the fused recurrence (`deepgen-nade`),
//! with odd sizes so that the last run of hidden units and the last group of examples are
//! partial; Adam's two passes against the CPU optimiser; im2col and col2im, each with one
//! product, against the strided and transposed convolutions as candle's CPU conv2d and
//! conv_transpose2d; the masked convolutions' gather of their taps and its scatter against the
//! CPU gather and its backward; PixelRNN's scan, both kinds, against the fused CPU scan
//! (`deepgen-grid-lstm`), its hidden states and gradients. On a GPU, tests/gpu.rs then holds
//! the compiled kernels to the candle-op paths.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use candle_core::{Device, Tensor};
use deepgen::models::{Model, ModelConfig, Nade, NadeConfig};
use deepgen::nn::cuda;

/// The driver: reads a mode and its inputs (little-endian u32 sizes, then f32 arrays) on stdin,
/// launches the kernels thread by thread, writes the outputs (f32) on stdout.
const DRIVER: &str = r#"
#include <stdio.h>
#include <stdlib.h>
static unsigned int u32in(void) {
    unsigned int v;
    if (fread(&v, 4, 1, stdin) != 1) exit(3);
    return v;
}
static float* f32in(size_t n) {
    float* v = malloc(n ? n * 4 : 4); /* exactly n: a read past the end is the sanitizer's */
    if (fread(v, 4, n, stdin) != n) exit(3);
    return v;
}
static void out(const float* v, size_t n) { fwrite(v, 4, n, stdout); }
/* Every thread of a launch of `threads` in blocks of 256, one after another: in order, or from
   the last to the first when DG_REVERSE is set (threads that share nothing give the same bits). */
static int reverse_;
#define LAUNCH(threads, call) \
    for (size_t i_ = 0; i_ < (size_t)(threads); i_++) { \
        size_t t_ = reverse_ ? (size_t)(threads) - 1 - i_ : i_; \
        blockDim.x = 256; \
        blockIdx.x = (unsigned int)(t_ / 256); \
        threadIdx.x = (unsigned int)(t_ % 256); \
        call; \
    }
int main(void) {
    reverse_ = getenv("DG_REVERSE") != NULL;
    unsigned int mode = u32in();
    if (mode == 0) { /* NADE */
        unsigned int nb = u32in(), d = u32in(), h = u32in(), hc = u32in(), per = u32in();
        float *x = f32in((size_t)nb * d), *g = f32in((size_t)nb * d);
        float *wt = f32in((size_t)d * h), *vc = f32in((size_t)(d + 1) * h);
        unsigned int runs = (h + hc - 1) / hc, groups = (nb + per - 1) / per;
        float* part = malloc((size_t)runs * nb * d * 4);
        float* logits = malloc((size_t)nb * d * 4);
        LAUNCH((size_t)nb * runs + 300, deepgen_nade_fwd(x, wt, vc, part, nb, d, h, hc));
        LAUNCH((size_t)nb * d, deepgen_sum_parts(part, logits, nb * d, runs));
        float *pdw = malloc((size_t)groups * d * h * 4), *pdv = malloc((size_t)groups * d * h * 4);
        float* pdc = malloc((size_t)groups * h * 4);
        float *dw = malloc((size_t)d * h * 4), *dv = malloc((size_t)d * h * 4), *dc = malloc(h * 4);
        LAUNCH((size_t)groups * h + 300,
               deepgen_nade_bwd(x, g, wt, vc, pdw, pdv, pdc, nb, d, h, per));
        LAUNCH((size_t)d * h, deepgen_sum_parts(pdw, dw, d * h, groups));
        LAUNCH((size_t)d * h, deepgen_sum_parts(pdv, dv, d * h, groups));
        LAUNCH(h, deepgen_sum_parts(pdc, dc, h, groups));
        out(logits, (size_t)nb * d);
        out(dw, (size_t)d * h);
        out(dv, (size_t)d * h);
        out(dc, h);
    } else if (mode == 2) { /* im2col of x, col2im of cols */
        unsigned int nb = u32in(), h = u32in(), w = u32in(), c = u32in(), k = u32in();
        unsigned int s = u32in(), p = u32in(), hl = u32in(), wl = u32in();
        size_t nx = (size_t)nb * h * w * c, nc = (size_t)nb * hl * wl * k * k * c;
        float *x = f32in(nx), *cols = f32in(nc);
        float *out_cols = malloc(nc * 4), *out_x = malloc(nx * 4);
        LAUNCH(nc + 300, deepgen_im2col(x, out_cols, nb, h, w, c, k, s, p, hl, wl));
        LAUNCH(nx + 300, deepgen_col2im(cols, out_x, nb, h, w, c, k, s, p, hl, wl));
        out(out_cols, nc);
        out(out_x, nx);
    } else if (mode == 4) { /* the masked convolutions' gather of taps and its scatter */
        unsigned int nb = u32in(), h = u32in(), w = u32in(), c = u32in();
        struct dg_taps taps;
        taps.n = u32in();
        for (unsigned int k = 0; k < taps.n; k++) {
            taps.dy[k] = (int)u32in();
            taps.dx[k] = (int)u32in();
        }
        size_t nx = (size_t)nb * h * w * c, nc = nx * taps.n;
        float *x = f32in(nx), *cols = f32in(nc);
        float *out_cols = malloc(nc * 4), *out_x = malloc(nx * 4);
        LAUNCH(nc + 300, deepgen_gather_taps(x, out_cols, taps, nb, h, w, c));
        LAUNCH(nx + 300, deepgen_scatter_taps(cols, out_x, taps, nb, h, w, c));
        out(out_cols, nc);
        out(out_x, nx);
    } else if (mode == 3) { /* the grid LSTM: forward scan, then backward through the waves */
        unsigned int scan = u32in(), nb = u32in(), h = u32in(), w = u32in(), c = u32in();
        size_t n = (size_t)nb * h * w * c, taps = dg_lstm_taps(scan);
        float *gin = f32in(4 * n), *wss = f32in(taps * c * 4 * c), *dh = f32in(n);
        float *gates = calloc(4 * n, 4), *cell = calloc(n, 4), *hid = calloc(n, 4);
        float *dgin = calloc(4 * n, 4), *dc = calloc(n, 4), *dcf = calloc(n, 4);
        unsigned int waves = dg_lstm_waves(scan, h, w);
        for (unsigned int wv = 0; wv < waves; wv++) {
            LAUNCH((size_t)nb * dg_lstm_len(scan, h, w, wv) * c + 300,
                   deepgen_lstm_fwd(gin, wss, gates, cell, hid, scan, nb, h, w, c, wv));
        }
        for (unsigned int wv = waves; wv-- > 0;) {
            LAUNCH((size_t)nb * dg_lstm_len(scan, h, w, wv) * c + 300,
                   deepgen_lstm_bwd_gates(gates, cell, dh, dc, dgin, dcf, scan, nb, h, w, c, wv));
            if (wv > 0) {
                LAUNCH((size_t)nb * dg_lstm_len(scan, h, w, wv - 1) * c + 300,
                       deepgen_lstm_bwd_states(dgin, wss, dcf, dh, dc, scan, nb, h, w, c, wv - 1));
            }
        }
        out(hid, n);
        out(dgin, 4 * n);
    } else { /* Adam */
        unsigned int n = u32in();
        float* k = f32in(8);
        float *mv = f32in(2 * (size_t)n), *g = f32in(n), *p = f32in(n);
        LAUNCH(n + 300, deepgen_adam_moments(mv, g, n, k[0], k[1], k[2]));
        LAUNCH(n + 300, deepgen_adam_update(p, mv, n, k[3], k[4], k[5], k[6], k[7]));
        out(mv, 2 * (size_t)n);
        out(p, n);
    }
    return 0;
}
"#;

/// Builds the driver once per test in `dir`.
fn build(dir: &Path) -> std::path::PathBuf {
    let src = dir.join("kernels.c");
    let sources = [cuda::SUM_PARTS, cuda::NADE, cuda::ADAM, cuda::IM2COL, cuda::TAPS, cuda::LSTM];
    let text = [&[cuda::C_SHIM][..], &sources, &[DRIVER]].concat().concat();
    std::fs::write(&src, text).unwrap();
    let exe = dir.join("kernels");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    // No -ffast-math and no contraction: the C build rounds as the CPU kernels do. With the
    // address and undefined-behaviour sanitizers where the compiler has them (gcc and clang
    // on Linux): a kernel that reads or writes past a buffer, which on a GPU would corrupt
    // memory or fault, then stops the driver; every buffer is allocated to its exact size.
    let compile = |extra: &[&str]| {
        Command::new(&cc)
            .args(["-O1", "-std=c99", "-ffp-contract=off"])
            .args(extra)
            .arg("-o")
            .arg(&exe)
            .arg(&src)
            .arg("-lm")
            .output()
            .unwrap_or_else(|e| panic!("{cc}: {e} (the C compiler Rust links with; set CC)"))
    };
    let checked = compile(&["-fsanitize=address,undefined", "-fno-sanitize-recover=all"]);
    if !checked.status.success() {
        eprintln!("{cc} has no address sanitizer here: the kernels run without bounds checks");
        let o = compile(&[]);
        assert!(o.status.success(), "{cc}: {}", String::from_utf8_lossy(&o.stderr));
    }
    exe
}

/// The driver's outputs for `input`. It runs twice, each launch's threads in order and then in
/// reverse, and the two must agree bit for bit: a GPU runs threads in any order, so a thread
/// that read what another of the same launch writes would show here.
fn run(exe: &Path, input: &[u8]) -> Vec<f32> {
    let once = |reverse: bool| {
        let mut cmd = Command::new(exe);
        // The driver frees nothing (it exits): no leak report.
        cmd.env("ASAN_OPTIONS", "detect_leaks=0");
        if reverse {
            cmd.env("DG_REVERSE", "1");
        }
        let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success(), "the kernel driver exited {:?}", o.status.code());
        o.stdout
    };
    let out = once(false);
    assert!(out == once(true), "the kernels' threads in reverse order give other values");
    out.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

fn push_u32(v: &mut Vec<u8>, x: usize) {
    v.extend_from_slice(&u32::try_from(x).unwrap().to_le_bytes());
}

fn push_f32(v: &mut Vec<u8>, xs: &[f32]) {
    for x in xs {
        v.extend_from_slice(&x.to_le_bytes());
    }
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

fn close(what: &str, a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let scale = 1.0 + x.abs().max(y.abs());
        assert!((x - y).abs() <= tol * scale, "{what} [{i}]: kernel {x}, cpu {y}");
    }
}

#[test]
fn nades_cuda_kernels_compute_the_cpu_kernels_logits_and_gradients() {
    let tmp = tempfile::tempdir().unwrap();
    let exe = build(tmp.path());
    // Sizes whose splits leave partial runs and groups, the real one (D 784, H 500) among them.
    for (nb, d, h, split) in [
        (5, 11, 7, None),
        (9, 20, 13, Some((4, 3))),
        (3, 6, 70, Some((64, 2))),
        (7, 784, 500, Some((4, 4))),
    ] {
        let (hc, per) = split.unwrap_or_else(|| cuda::nade_split(nb, h));
        let cfg = ModelConfig::Nade(NadeConfig { dim: d, hidden: h });
        let m = Model::new(&cfg, 3, &Device::Cpu).unwrap();
        let nade = m.get::<Nade>().unwrap();
        let mut r = deepgen::rng::rng(9);
        // Binary pixels with some real values among them (the kernels skip exact zeros).
        let mut xv = deepgen::rng::bernoulli(&mut r, &vec![0.3; nb * d]);
        xv.iter_mut().step_by(5).for_each(|v| *v *= 0.75);
        let x = Tensor::from_vec(xv.clone(), (nb, d), &Device::Cpu).unwrap();
        let g = deepgen::rng::randn(&mut r, &[nb, d], &Device::Cpu).unwrap();
        let logits = nade.logits(&x).unwrap();
        let grads = (&logits * &g).unwrap().sum_all().unwrap().backward().unwrap();
        let p = |n: &str| m.params.get(n).unwrap().as_tensor().clone();
        let (w, c, v, b) = (p("W"), p("c"), p("V"), p("b"));
        let wt = w.t().unwrap().contiguous().unwrap();
        let vc = Tensor::cat(&[&v, &c.unsqueeze(0).unwrap()], 0).unwrap();
        let mut input = vec![];
        for s in [0, nb, d, h, hc, per] {
            push_u32(&mut input, s);
        }
        for t in [&x, &g, &wt, &vc] {
            push_f32(&mut input, &flat(t));
        }
        let o = run(&exe, &input);
        let (lk, rest) = o.split_at(nb * d);
        let (dwt, rest) = rest.split_at(d * h);
        let (dv, dc) = rest.split_at(d * h);
        let what = format!("B {nb} D {d} H {h} (runs of {hc}, groups of {per})");
        let less_b = flat(&logits.broadcast_sub(&b).unwrap());
        close(&format!("{what}: logits"), lk, &less_b, 1e-5);
        let grad = |t: &Tensor| flat(grads.get(t).unwrap());
        let dw_t = grads.get(&w).unwrap().t().unwrap();
        close(&format!("{what}: dW^T"), dwt, &flat(&dw_t), 1e-4);
        close(&format!("{what}: dV"), dv, &grad(&v), 1e-4);
        close(&format!("{what}: dc"), dc, &grad(&c), 1e-4);
    }
}

#[test]
fn adams_cuda_kernels_compute_the_cpu_optimisers_step() {
    let tmp = tempfile::tempdir().unwrap();
    let exe = build(tmp.path());
    let n = 1000;
    let mut r = deepgen::rng::rng(4);
    let p0 = deepgen::rng::randn(&mut r, &[n], &Device::Cpu).unwrap();
    let g = deepgen::rng::randn(&mut r, &[n], &Device::Cpu).unwrap();
    // One step of deepgen's Adam from zero moments, against the kernels from the same state.
    let mut params = deepgen::nn::Params::new();
    let var = params.add("w", p0.clone()).unwrap();
    let cfg = deepgen::optim::AdamConfig { weight_decay: 0.1, ..Default::default() };
    let mut adam = deepgen::optim::Adam::new(&params, cfg).unwrap();
    let loss = (&var * &g).unwrap().sum_all().unwrap();
    let (lr, scale) = (0.01f32, 0.5f32);
    adam.step(&loss.backward().unwrap(), lr as f64, scale as f64).unwrap();
    let (b1, b2, eps) = (cfg.beta1 as f32, cfg.beta2 as f32, cfg.eps as f32);
    let (c1, c2) = (1.0 - b1, 1.0 - b2); // the bias corrections of step 1
    let k = [b1, b2, scale, lr, 1.0 - lr * cfg.weight_decay as f32, 1.0 / c1, 1.0 / c2, eps];
    let mut input = vec![];
    push_u32(&mut input, 1);
    push_u32(&mut input, n);
    push_f32(&mut input, &k);
    push_f32(&mut input, &vec![0.0; 2 * n]);
    push_f32(&mut input, &flat(&g));
    push_f32(&mut input, &flat(&p0));
    let o = run(&exe, &input);
    let stepped = flat(params.get("w").unwrap().as_tensor());
    close("Adam's parameters", &o[2 * n..], &stepped, 1e-6);
}

#[test]
fn the_convolution_kernels_compute_candles_convolutions() {
    use deepgen::nn::conv::{conv_down, conv_up, Strided};
    let tmp = tempfile::tempdir().unwrap();
    let exe = build(tmp.path());
    let cpu = Device::Cpu;
    // The GANs' layers: 4x4 stride 2 (DCGAN, the text and puzzle GANs; an odd side too), the
    // 3x3 and 7x7 "same" ones (ProGAN, the translation networks), and an unpadded 3x3.
    for (b, h, c, n, k, s, p) in [
        (2, 14, 3, 5, 4, 2, 1),
        (3, 15, 2, 4, 4, 2, 1),
        (2, 9, 4, 3, 3, 1, 1),
        (1, 11, 3, 2, 7, 1, 3),
        (2, 8, 2, 3, 3, 1, 0),
    ] {
        let g = Strided { k, stride: s, pad: p };
        let hl = g.lo(h);
        let mut r = deepgen::rng::rng(7);
        let x = deepgen::rng::randn(&mut r, &[b, h, h, c], &cpu).unwrap();
        let wd = deepgen::rng::randn(&mut r, &[k * k * c, n], &cpu).unwrap();
        let bias = deepgen::rng::randn(&mut r, &[n], &cpu).unwrap();
        // The transposed convolution's input lives on the low side, its output on the high one.
        let xl = deepgen::rng::randn(&mut r, &[b, hl, hl, n], &cpu).unwrap();
        let wu = deepgen::rng::randn(&mut r, &[n, k * k * c], &cpu).unwrap();
        let bu = deepgen::rng::randn(&mut r, &[c], &cpu).unwrap();
        let cols_up = xl.reshape((b * hl * hl, n)).unwrap().matmul(&wu).unwrap();
        let mut input = vec![];
        for v in [2, b, h, h, c, k, s, p, hl, hl] {
            push_u32(&mut input, v);
        }
        push_f32(&mut input, &flat(&x));
        push_f32(&mut input, &flat(&cols_up));
        let o = run(&exe, &input);
        let (cols, hi) = o.split_at(b * hl * hl * k * k * c);
        let what = format!("{b}x{h}x{h}x{c}, k {k} s {s} p {p}");
        let cols = Tensor::from_vec(cols.to_vec(), (b * hl * hl, k * k * c), &cpu).unwrap();
        let down = cols.matmul(&wd).unwrap().reshape((b, hl, hl, n)).unwrap();
        let down = down.broadcast_add(&bias).unwrap();
        let want = deepgen::nn::with_portable_ops(|| conv_down(g, &x, &wd, &bias)).unwrap();
        close(&format!("{what}: im2col x W + b"), &flat(&down), &flat(&want), 1e-5);
        let up = Tensor::from_vec(hi.to_vec(), (b, h, h, c), &cpu).unwrap();
        let up = up.broadcast_add(&bu).unwrap();
        // conv_up's output side is g.hi(hl), which is h except where h + 2p - k is not a
        // multiple of s (the odd side): there it is one row and column short of h.
        let want = deepgen::nn::with_portable_ops(|| conv_up(g, &xl, &wu, &bu)).unwrap();
        let hh = g.hi(hl);
        let up = up.narrow(1, 0, hh).unwrap().narrow(2, 0, hh).unwrap();
        close(&format!("{what}: col2im(x W) + b"), &flat(&up), &flat(&want), 1e-5);
    }
}

#[test]
fn the_lstm_scan_kernels_compute_the_cpu_scans_states_and_gradients() {
    use deepgen::nn::lstm::{grid_lstm, state_grad, Scan};
    let tmp = tempfile::tempdir().unwrap();
    let exe = build(tmp.path());
    let cpu = Device::Cpu;
    // Non-square maps, so that the anti-diagonals are cut by both sides; a one-row map; the
    // model's 28x28 with its 32 units.
    for (scan, b, h, w, c) in [
        (Scan::Rows, 2, 4, 5, 3),
        (Scan::Diagonals, 2, 4, 6, 3),
        (Scan::Diagonals, 3, 5, 3, 2),
        (Scan::Rows, 1, 1, 4, 2),
        (Scan::Diagonals, 1, 1, 4, 2),
        (Scan::Rows, 2, 28, 28, 32),
        (Scan::Diagonals, 2, 28, 28, 32),
    ] {
        let taps = scan.h_taps().len();
        let mut r = deepgen::rng::rng(5);
        let gin = deepgen::rng::randn(&mut r, &[b, h, w, 4 * c], &cpu).unwrap();
        let wss = (deepgen::rng::randn(&mut r, &[taps * c, 4 * c], &cpu).unwrap() * 0.3).unwrap();
        let g = deepgen::rng::randn(&mut r, &[b, h, w, c], &cpu).unwrap();
        let (gv, wv) = (
            candle_core::Var::from_tensor(&gin).unwrap(),
            candle_core::Var::from_tensor(&wss).unwrap(),
        );
        let hid = grid_lstm(gv.as_tensor(), wv.as_tensor(), scan).unwrap();
        let grads = (&hid * &g).unwrap().sum_all().unwrap().backward().unwrap();
        let mut input = vec![];
        let kind = if scan == Scan::Rows { 0 } else { 1 };
        for v in [3, kind, b, h, w, c] {
            push_u32(&mut input, v);
        }
        for t in [&gin, &wss, &g] {
            push_f32(&mut input, &flat(t));
        }
        let o = run(&exe, &input);
        let (kh, kdg) = o.split_at(b * h * w * c);
        let what = format!("{scan:?} {b}x{h}x{w}x{c}");
        close(&format!("{what}: hidden states"), kh, &flat(&hid), 1e-5);
        close(&format!("{what}: d gates"), kdg, &flat(grads.get(gv.as_tensor()).unwrap()), 1e-4);
        // The state weights' gradient, as the CUDA backward forms it from the kernels' outputs.
        let kh = Tensor::from_vec(kh.to_vec(), (b, h, w, c), &cpu).unwrap();
        let kdg = Tensor::from_vec(kdg.to_vec(), (b, h, w, 4 * c), &cpu).unwrap();
        let dw = state_grad(&kh, &kdg, scan).unwrap();
        close(
            &format!("{what}: d state weights"),
            &flat(&dw),
            &flat(grads.get(wv.as_tensor()).unwrap()),
            1e-4,
        );
    }
}

#[test]
fn the_tap_gather_kernels_compute_the_cpu_gather_and_its_backward() {
    use deepgen::nn::conv::{gather, raster_taps, Tap};
    let tmp = tempfile::tempdir().unwrap();
    let exe = build(tmp.path());
    let cpu = Device::Cpu;
    // PixelCNN's 7x7 mask A on a map narrower than the window, its 3x3 mask B, a Row LSTM's
    // input taps, a gated vertical stack, and the most taps the kernel takes.
    let vertical: Vec<Tap> = (-3..0).flat_map(|dy| (-3..=3).map(move |dx| (dy, dx))).collect();
    let most: Vec<Tap> = (0..cuda::MAX_TAPS as i32).map(|k| (k / 9 - 3, k % 9 - 4)).collect();
    for (taps, b, h, w, c) in [
        (raster_taps(7, false), 2, 5, 4, 1),
        (raster_taps(3, true), 3, 6, 6, 5),
        (vec![(0, -1), (0, 0)], 2, 4, 7, 3),
        (vertical, 1, 8, 8, 2),
        (most, 1, 6, 5, 2),
    ] {
        let t = taps.len();
        let mut r = deepgen::rng::rng(8);
        let x = deepgen::rng::randn(&mut r, &[b, h, w, c], &cpu).unwrap();
        let g = deepgen::rng::randn(&mut r, &[b * h * w, t * c], &cpu).unwrap();
        let xv = candle_core::Var::from_tensor(&x).unwrap();
        let cols = gather(xv.as_tensor(), &taps).unwrap();
        let grads = (&cols * &g).unwrap().sum_all().unwrap().backward().unwrap();
        let mut input = vec![];
        for v in [4, b, h, w, c, t] {
            push_u32(&mut input, v);
        }
        for &(dy, dx) in &taps {
            input.extend_from_slice(&dy.to_le_bytes());
            input.extend_from_slice(&dx.to_le_bytes());
        }
        push_f32(&mut input, &flat(&x));
        push_f32(&mut input, &flat(&g));
        let o = run(&exe, &input);
        let (kc, kx) = o.split_at(b * h * w * t * c);
        let what = format!("{t} taps, {b}x{h}x{w}x{c}");
        close(&format!("{what}: gather"), kc, &flat(&cols), 0.0);
        close(&format!("{what}: scatter"), kx, &flat(grads.get(xv.as_tensor()).unwrap()), 1e-6);
    }
}

/// The GPU machine runs tests/gpu.rs one test at a time by name (`bench/gpu/run.sh`, `--exact`),
/// where a misspelt or forgotten name would run nothing and look like a pass: the script's list
/// must be exactly the file's tests.
#[test]
fn the_gpu_script_runs_every_gpu_test_by_its_name() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tests = std::fs::read_to_string(root.join("tests/gpu.rs")).unwrap();
    let mut in_file: Vec<&str> =
        tests.split("#[test]\nfn ").skip(1).map(|rest| rest.split('(').next().unwrap()).collect();
    let script = std::fs::read_to_string(root.join("../../bench/gpu/run.sh")).unwrap();
    let list = script.split("if want gpu-test; then").nth(1).unwrap();
    let list = list.split("; do").next().unwrap();
    let mut in_script: Vec<&str> = list
        .split_whitespace()
        .filter_map(|w| w.split_once(':'))
        .filter(|(_, secs)| secs.parse::<u32>().is_ok())
        .map(|(name, _)| name.trim_start_matches("for t in "))
        .collect();
    in_file.sort();
    in_script.sort();
    assert!(in_file.len() >= 9, "tests/gpu.rs: found only {in_file:?}");
    assert_eq!(in_script, in_file, "bench/gpu/run.sh's gpu-test list against tests/gpu.rs");
}
