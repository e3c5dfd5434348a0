//! `nn::gemm_flops`, the counter behind bench/RESULTS.md's GFLOP/s and fraction-of-peak
//! columns, against hand counts: one product on each GEMM path, and a gated and a plain
//! PixelCNN's training step (forward, then backward) layer by layer. One test in its own
//! binary, because the counter is process-wide and other tests' products would move it.

use deepgen::models::{Model, ModelConfig, Objective, PixelCnnConfig, PixelOutput, Tensor};
use deepgen::nn::{gemm_flops, matmul_slices};
use deepgen::rng;

/// The change of the counter while `f` runs.
fn counted(f: impl FnOnce()) -> u64 {
    let f0 = gemm_flops();
    f();
    gemm_flops() - f0
}

fn pixelcnn(h: usize, w: usize, c: usize, layers: usize, gated: bool) -> ModelConfig {
    ModelConfig::PixelCnn(PixelCnnConfig {
        height: h,
        width: w,
        channels: c,
        layers,
        gated,
        output: PixelOutput::Bernoulli,
    })
}

/// (forward, backward) FLOPs of one loss evaluation and its gradient on `b` images.
fn step_flops(cfg: &ModelConfig, b: usize, d: usize) -> (u64, u64) {
    let m = Model::new(cfg, 1, &deepgen::models::Device::Cpu).unwrap();
    let mut r = rng::rng(2);
    let dev = deepgen::models::Device::Cpu;
    let x = Tensor::from_vec(rng::bernoulli(&mut r, &vec![0.3; b * d]), (b, d), &dev).unwrap();
    let mut loss = None;
    let fwd = counted(|| loss = Some(m.loss(&x, &mut r).unwrap()));
    let bwd = counted(|| {
        loss.unwrap().total.backward().unwrap();
    });
    (fwd, bwd)
}

#[test]
fn the_flop_counter_counts_every_product_once() {
    // Small products run as one GEMM call; large ones as row blocks over the threads (a path
    // that once counted itself twice).
    for (m, n, k) in [(8, 8, 8), (1024, 128, 128)] {
        let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 - 3.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 - 2.0).collect();
        let mut dst = vec![0f32; m * n];
        let f = counted(|| matmul_slices(m, n, k, &mut dst, &a, &b));
        assert_eq!(f, 2 * (m * n * k) as u64, "{m}x{n}x{k}");
        let want: f32 = (0..k).map(|j| a[(m - 1) * k + j] * b[j * n + n - 1]).sum();
        assert_eq!(dst[m * n - 1], want);
    }

    // Gated PixelCNN, C channels, per pixel (multiply-adds): the first layer's vertical 7x7
    // kernel stops a row above (3 x 7 taps) and its horizontal one left of the centre (3 taps),
    // from one input channel to 2C gate maps; each later layer has a 2 x 3 vertical and a 1 x 2
    // horizontal kernel from C to 2C; every layer a 2C x 2C link and a C x C residual 1x1; the
    // head C x C then C x 1.
    let (h, w, b, c, layers) = (5, 6, 3, 4, 2);
    let px = (b * h * w) as u64;
    let first = 21 * 2 * c + 3 * 2 * c;
    let later = 6 * c * 2 * c + 2 * c * 2 * c;
    let one_by_one = (layers + 1) * (4 * c * c + c * c) + c * c + c;
    let macs = (first + layers * later + one_by_one) as u64;
    let (fwd, bwd) = step_flops(&pixelcnn(h, w, c, layers, true), b, h * w);
    assert_eq!(fwd, 2 * macs * px, "gated forward");
    // The backward pass computes two products per forward one (weights and inputs), except the
    // first layer's input gradient: the images do not need one.
    assert_eq!(bwd, 2 * fwd - 2 * first as u64 * px, "gated backward");

    // Plain PixelCNN: a 7x7 mask-A kernel (24 taps) from 1 to C; each block C -> C/2, a 3x3
    // mask-B kernel (5 taps) from C/2 to C/2, and C/2 -> C; the same head.
    let first = 24 * c;
    let block = c * c / 2 + 5 * (c / 2) * (c / 2) + c / 2 * c;
    let macs = (first + layers * block + c * c + c) as u64;
    let (fwd, bwd) = step_flops(&pixelcnn(h, w, c, layers, false), b, h * w);
    assert_eq!(fwd, 2 * macs * px, "plain forward");
    assert_eq!(bwd, 2 * fwd - 2 * first as u64 * px, "plain backward");
}
