//! MADE, RNADE, PixelCNN (plain and gated), Row LSTM and Diagonal BiLSTM:
//! exact normalisation, causality by perturbation (with the blind-spot and
//! receptive-field questions answered), the fast samplers against the full
//! forward pass, completion, gradients against finite differences.

#![allow(clippy::needless_range_loop)] // index pairs (output i, pixel j) read clearer as loops

mod common;

use candle_core::{Device, Tensor};
use common::*;
use deepgen::models::{
    Cell, DensityModel, Known, MadeConfig, Model, ModelConfig, PixelCnnConfig, PixelOutput,
    PixelRnnConfig, RnadeConfig,
};
use deepgen::rng;

fn made(d: usize, masks: usize, agnostic: bool) -> ModelConfig {
    ModelConfig::Made(MadeConfig {
        dim: d,
        hidden: vec![12, 10],
        connectivity_agnostic: agnostic,
        order_agnostic: agnostic,
        masks,
        mask_seed: 4,
    })
}
fn pixelcnn(h: usize, w: usize, layers: usize, gated: bool, output: PixelOutput) -> ModelConfig {
    ModelConfig::PixelCnn(PixelCnnConfig {
        height: h,
        width: w,
        channels: 4,
        layers,
        gated,
        output,
    })
}
fn pixelrnn(cell: Cell, h: usize, w: usize, output: PixelOutput) -> ModelConfig {
    ModelConfig::PixelRnn(PixelRnnConfig {
        cell,
        height: h,
        width: w,
        channels: 3,
        layers: 2,
        output,
    })
}

/// Every binary autoregressive model on an h x w image.
fn binary_image_models(h: usize, w: usize) -> Vec<ModelConfig> {
    vec![
        made(h * w, 1, false),
        made(h * w, 3, true),
        pixelcnn(h, w, 2, false, PixelOutput::Bernoulli),
        pixelcnn(h, w, 2, true, PixelOutput::Bernoulli),
        pixelrnn(Cell::Row, h, w, PixelOutput::Bernoulli),
        pixelrnn(Cell::Diagonal, h, w, PixelOutput::Bernoulli),
    ]
}

fn lp(m: &Model, x: &Tensor) -> Vec<f32> {
    vec1(&m.log_prob(x, &mut rng::rng(0)).unwrap())
}

fn logsumexp(v: &[f32]) -> f64 {
    let m = v.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
    m + v.iter().map(|&x| (x as f64 - m).exp()).sum::<f64>().ln()
}

#[test]
fn binary_models_sum_to_one_over_all_3x3_images() {
    let x = all_binary(9);
    for cfg in binary_image_models(3, 3) {
        let m = model(cfg.clone(), 1);
        randomize(&m, 2, 0.7);
        let l = lp(&m, &x);
        assert_eq!(l.len(), 512);
        let total = logsumexp(&l).exp();
        assert!(
            (total - 1.0).abs() < 1e-4,
            "{} ({cfg:?}): sum over 2^9 images = {total}",
            cfg.name()
        );
    }
}

#[test]
fn softmax_outputs_sum_to_one_over_all_256_level_1x2_images() {
    // Every pair of grey levels: 65,536 images of 1x2 pixels.
    let v: Vec<f32> =
        (0..65536u32).flat_map(|k| [(k & 255) as f32 / 255.0, (k >> 8) as f32 / 255.0]).collect();
    let x = Tensor::from_vec(v, (65536, 2), &Device::Cpu).unwrap();
    for cfg in [
        pixelcnn(1, 2, 1, false, PixelOutput::Softmax),
        pixelcnn(1, 2, 1, true, PixelOutput::Softmax),
        pixelrnn(Cell::Row, 1, 2, PixelOutput::Softmax),
        pixelrnn(Cell::Diagonal, 1, 2, PixelOutput::Softmax),
    ] {
        let m = model(cfg.clone(), 1);
        randomize(&m, 5, 0.5);
        let l = lp(&m, &x);
        let total = logsumexp(&l).exp();
        assert!((total - 1.0).abs() < 1e-3, "{}: sum over 256^2 images = {total}", cfg.name());
    }
}

/// `dep[i][j]`: changing pixel j changes some output parameter of position i.
fn dependencies(m: &Model, d: usize) -> Vec<Vec<bool>> {
    let x = random_binary(3, d, 9);
    let base = vec1(&m.conditionals(&x).unwrap().unwrap());
    let p = base.len() / (3 * d);
    let mut dep = vec![vec![false; d]; d];
    for j in 0..d {
        let mut xv = vec1(&x);
        for r in 0..3 {
            xv[r * d + j] = 1.0 - xv[r * d + j];
        }
        let out = vec1(
            &m.conditionals(&Tensor::from_vec(xv, (3, d), &Device::Cpu).unwrap()).unwrap().unwrap(),
        );
        for (i, row) in dep.iter_mut().enumerate() {
            row[j] = (0..3).any(|r| {
                (0..p).any(|q| (out[(r * d + i) * p + q] - base[(r * d + i) * p + q]).abs() > 1e-6)
            });
        }
    }
    dep
}

#[test]
fn every_model_is_causal_in_raster_order() {
    let (h, w) = (5, 5);
    let d = h * w;
    for cfg in binary_image_models(h, w) {
        let m = model(cfg.clone(), 3);
        randomize(&m, 4, 0.8);
        let dep = dependencies(&m, d);
        for i in 0..d {
            for j in i..d {
                assert!(!dep[i][j], "{}: output {i} depends on pixel {j}", cfg.name());
            }
        }
        // The test can fail: the last pixel's conditional does depend on earlier pixels.
        assert!((0..d - 1).any(|j| dep[d - 1][j]), "{}: no dependence at all", cfg.name());
    }
}

/// Receptive fields on an 8x8 image, from output (7, 1) (3 layers/blocks, 2 LSTM layers).
/// Measured maps ('#' seen, 'o' not seen), rows 0..6:
/// plain PixelCNN: rows 0-1 out of reach (depth), the wedge (2..4, 7), (5, 6..7), (6, 5..7) blind;
/// gated PixelCNN: rows 1-6 complete (row 0 beyond its 3 + 3 rows of vertical reach);
/// Row LSTM: complete except the triangle's outside (4, 7), (5, 6..7), (6, 5..7), and in its
/// own row only 3 + (layers) columns to the left;
/// Diagonal BiLSTM: complete except (6, 7) (see `diagonal_bilstm_context_and_its_shift`).
#[test]
fn receptive_fields_blind_spot_triangle_and_full_context() {
    let (h, w) = (8, 8);
    let d = h * w;
    let at = |r: usize, c: usize| r * w + c;
    let deps = |cfg: ModelConfig| {
        let m = model(cfg, 1);
        randomize(&m, 2, 0.8);
        dependencies(&m, d)
    };
    let o = at(7, 1);
    // Plain PixelCNN: (6, 5) is one row up and four columns right: the 7x7 mask A kernel reaches
    // three columns right, and masked 3x3 kernels move at most one column right per row up,
    // so no depth reaches it: the blind spot.
    let plain = deps(pixelcnn(h, w, 3, false, PixelOutput::Bernoulli));
    assert!(!plain[o][at(6, 5)] && !plain[o][at(5, 7)], "plain PixelCNN: expected the blind spot");
    assert!(
        plain[o][at(6, 4)] && plain[o][at(2, 6)],
        "plain PixelCNN must see the 7x7 kernel's reach and the cone above"
    );
    // Gated PixelCNN: no blind spot; everything within its reach (6 rows up) is seen.
    let gated = deps(pixelcnn(h, w, 3, true, PixelOutput::Bernoulli));
    for j in at(1, 0)..o {
        assert!(gated[o][j], "gated PixelCNN: (7, 1) does not see ({}, {})", j / w, j % w);
    }
    // Row LSTM: the triangle above widens one column per row up.
    let row = deps(pixelrnn(Cell::Row, h, w, PixelOutput::Bernoulli));
    assert!(
        !row[o][at(6, 5)] && !row[o][at(5, 6)] && !row[o][at(4, 7)],
        "row LSTM: outside the triangle"
    );
    assert!(
        row[o][at(6, 4)] && row[o][at(5, 5)] && row[o][at(3, 7)] && row[o][at(0, 7)],
        "row LSTM: inside the triangle"
    );
    // In its own row it sees 3 columns left through the 7x7 kernel plus one per layer (1x3 mask B
    // input-to-state).
    assert!(
        row[at(3, 6)][at(3, 1)] && !row[at(3, 6)][at(3, 0)],
        "row LSTM: 5 columns of its row to the left with 2 layers"
    );
}

/// The Diagonal BiLSTM sees every earlier pixel but one kind: the last pixel
/// of the previous row, from columns 4 or more to its left. That pixel is
/// seen by no feature of its own row (features see strictly earlier pixels),
/// so the right-to-left direction cannot carry it; the left-to-right
/// direction only moves right; only the 7x7 mask A kernel (3 columns) reaches
/// it. The one-row shift is what keeps the second direction causal (the
/// causality test fails without it: (r, c) would see (r, c+1..)).
#[test]
fn diagonal_bilstm_context_and_its_shift() {
    let (h, w) = (8, 8);
    let d = h * w;
    let m = model(pixelrnn(Cell::Diagonal, h, w, PixelOutput::Bernoulli), 1);
    randomize(&m, 2, 0.8);
    let dep = dependencies(&m, d);
    for i in 0..d {
        for j in 0..i {
            let (r, c) = (i / w, i % w);
            let expected_blind = r > 0 && j == (r - 1) * w + w - 1 && c + 4 < w;
            assert_eq!(
                !dep[i][j],
                expected_blind,
                "diagonal BiLSTM: output ({r}, {c}) vs pixel ({}, {})",
                j / w,
                j % w
            );
        }
    }
    // (1, 0) sees (0, 6) only through the shifted second direction: the 7x7 kernel reaches
    // 3 columns right, and the first direction's state at (1, 0) comes from (0, 0) and (1, -1).
    assert!(dep[w][6]);
}

/// Samplers and completion: the log-probability accumulated while sampling
/// equals the full forward pass's log p of the result, so every cached or
/// windowed computation agrees with the model's density.
#[test]
fn fast_samplers_agree_with_the_full_forward_pass() {
    let (h, w) = (5, 6);
    let d = h * w;
    let mut cfgs = binary_image_models(h, w);
    cfgs.push(pixelcnn(h, w, 2, false, PixelOutput::Softmax));
    cfgs.push(pixelrnn(Cell::Diagonal, h, w, PixelOutput::Softmax));
    cfgs.push(pixelrnn(Cell::Row, h, w, PixelOutput::Softmax));
    cfgs.push(ModelConfig::Rnade(RnadeConfig { dim: 4, hidden: 6, components: 3 }));
    for cfg in cfgs {
        // A 1-mask MADE: sampling from a mixture reports log p under the drawn mask, so compare
        // with one mask.
        let m = model(cfg.clone(), 6);
        randomize(&m, 7, 0.5);
        let dd = cfg.dim();
        let (x, lps) = m.sample_sequential(4, None, &mut rng::rng(8)).unwrap();
        assert_eq!(x.dims(), &[4, dd]);
        let full = lp(&m, &x);
        let is_ensemble = matches!(&cfg, ModelConfig::Made(c) if c.masks > 1);
        if !is_ensemble {
            for (a, b) in lps.iter().zip(&full) {
                assert!(
                    (a - *b as f64).abs() < 1e-3 * (1.0 + a.abs()),
                    "{}: sampler log p {a} vs forward {b}",
                    cfg.name()
                );
            }
        }
        // Completion keeps the known values and agrees too.
        let values = vec1(&x);
        let observed: Vec<bool> = (0..4 * dd).map(|k| k % dd < dd / 2).collect();
        let (y, lps) = m
            .sample_sequential(
                4,
                Some(&Known { values: values.clone(), observed: observed.clone() }),
                &mut rng::rng(9),
            )
            .unwrap();
        let yv = vec1(&y);
        for k in 0..4 * dd {
            if observed[k] {
                assert_eq!(yv[k], values[k], "{}: known value {k} changed", cfg.name());
            }
        }
        if is_ensemble {
            continue; // completion uses mask set 0, log_prob the ensemble
        }
        let full = lp(&m, &y);
        for (a, b) in lps.iter().zip(&full) {
            assert!(
                (a - *b as f64).abs() < 1e-3 * (1.0 + a.abs()),
                "{}: completion log p {a} vs forward {b}",
                cfg.name()
            );
        }
    }
    let _ = d;
}

#[test]
fn made_ensemble_is_the_mean_probability_over_masks() {
    let d = 8;
    let m = model(made(d, 4, true), 2);
    randomize(&m, 3, 0.7);
    let x = random_binary(5, d, 1);
    let l = lp(&m, &x);
    let single: Vec<Vec<f32>> = (0..4)
        .map(|k| {
            let mut c = match made(d, 4, true) {
                ModelConfig::Made(c) => c,
                _ => unreachable!(),
            };
            c.masks = k + 1;
            let mk = model(ModelConfig::Made(c), 2);
            let tensors =
                m.params.vars().map(|(n, v)| (n.clone(), v.as_tensor().clone())).collect();
            mk.params.load(&tensors, std::path::Path::new("test")).unwrap();
            lp(&mk, &x)
        })
        .collect();
    // single[k] = log mean over the first k+1 masks; recover each mask's log p and recombine.
    for b in 0..5 {
        let p: Vec<f64> = (0..4).map(|k| (single[k][b] as f64).exp() * (k + 1) as f64).collect();
        let per_mask: Vec<f64> =
            (0..4).map(|k| if k == 0 { p[0] } else { p[k] - p[k - 1] }).collect();
        assert!(
            per_mask.iter().all(|&q| q > 0.0),
            "mask probabilities must be positive: {per_mask:?}"
        );
        let mean = per_mask.iter().sum::<f64>() / 4.0;
        assert!(
            (mean.ln() - l[b] as f64).abs() < 1e-4,
            "ensemble {} vs mean of masks {}",
            l[b],
            mean.ln()
        );
        let (lo, hi) = per_mask.iter().fold((f64::MAX, f64::MIN), |a, &q| (a.0.min(q), a.1.max(q)));
        assert!(lo < hi, "the masks should disagree");
    }
}

#[test]
fn made_agnostic_training_draws_a_new_mask_per_minibatch() {
    use deepgen::models::Objective;
    let d = 10;
    let x = random_binary(6, d, 3);
    let m = model(made(d, 1, true), 1);
    let l1 = m.loss(&x, &mut rng::derived(0, "step", 0)).unwrap().total.to_scalar::<f32>().unwrap();
    let l2 = m.loss(&x, &mut rng::derived(0, "step", 1)).unwrap().total.to_scalar::<f32>().unwrap();
    let l1b =
        m.loss(&x, &mut rng::derived(0, "step", 0)).unwrap().total.to_scalar::<f32>().unwrap();
    assert_ne!(l1, l2, "different steps must use different masks");
    assert_eq!(l1, l1b, "the same step's mask is a function of the seed");
    let fixed = model(made(d, 1, false), 1);
    let f1 =
        fixed.loss(&x, &mut rng::derived(0, "step", 0)).unwrap().total.to_scalar::<f32>().unwrap();
    let f2 =
        fixed.loss(&x, &mut rng::derived(0, "step", 1)).unwrap().total.to_scalar::<f32>().unwrap();
    assert_eq!(f1, f2);
}

#[test]
fn rnade_density_integrates_to_one_on_a_2d_grid() {
    let m = model(ModelConfig::Rnade(RnadeConfig { dim: 2, hidden: 8, components: 3 }), 1);
    randomize(&m, 3, 0.3);
    // Midpoint rule on [-12, 12]^2 with 600^2 cells.
    let (lo, hi, k) = (-12.0f64, 12.0f64, 600usize);
    let step = (hi - lo) / k as f64;
    let pts: Vec<f32> = (0..k * k)
        .flat_map(|q| {
            [
                (lo + (q / k) as f64 * step + step / 2.0) as f32,
                (lo + (q % k) as f64 * step + step / 2.0) as f32,
            ]
        })
        .collect();
    let x = Tensor::from_vec(pts, (k * k, 2), &Device::Cpu).unwrap();
    let l = lp(&m, &x);
    let total: f64 = l.iter().map(|&v| (v as f64).exp()).sum::<f64>() * step * step;
    // Tolerance: the midpoint rule's error at this spacing and the mass outside the box are both
    // below 1e-3 here.
    assert!((total - 1.0).abs() < 5e-3, "integral of p over the grid = {total}");
}

#[test]
fn rnade_beats_a_full_covariance_gaussian_on_a_ring_of_gaussians() {
    use deepgen::data::DataSpec;
    use deepgen::train::{LikelihoodTrainer, NoHooks, TrainConfig};
    let train = "toy:ring8".parse::<DataSpec>().unwrap().load(0).unwrap().take(2000);
    let test = "toy:ring8".parse::<DataSpec>().unwrap().load(1).unwrap().take(1000);
    // The Gaussian baseline: maximum likelihood mean and covariance, log-density by hand.
    let n = train.n as f64;
    let (mut mx, mut my) = (0.0, 0.0);
    for p in train.x.chunks(2) {
        mx += p[0] as f64 / n;
        my += p[1] as f64 / n;
    }
    let (mut sxx, mut syy, mut sxy) = (0.0, 0.0, 0.0);
    for p in train.x.chunks(2) {
        let (a, b) = (p[0] as f64 - mx, p[1] as f64 - my);
        sxx += a * a / n;
        syy += b * b / n;
        sxy += a * b / n;
    }
    let det = sxx * syy - sxy * sxy;
    let gauss: f64 = test
        .x
        .chunks(2)
        .map(|p| {
            let (a, b) = (p[0] as f64 - mx, p[1] as f64 - my);
            let q = (syy * a * a - 2.0 * sxy * a * b + sxx * b * b) / det;
            -0.5 * q - 0.5 * det.ln() - (2.0 * std::f64::consts::PI).ln()
        })
        .sum::<f64>()
        / test.n as f64;
    let m = model(ModelConfig::Rnade(RnadeConfig { dim: 2, hidden: 32, components: 8 }), 0);
    let cfg = TrainConfig {
        steps: 600,
        batch_size: 100,
        lr: 1e-2,
        eval_every: 600,
        eval_examples: 100,
        ..TrainConfig::default()
    };
    let mut t = LikelihoodTrainer::new(&m, cfg, 0, deepgen::data::Binarize::None).unwrap();
    t.fit(&m, &train, None, &mut NoHooks).unwrap();
    let x = test.batch(&(0..test.n).collect::<Vec<_>>(), &Device::Cpu).unwrap();
    let rnade = lp(&m, &x).iter().map(|&v| v as f64).sum::<f64>() / test.n as f64;
    assert!(
        rnade > gauss + 0.5,
        "RNADE test log-density {rnade:.3} should beat the full-covariance Gaussian's {gauss:.3}"
    );
}

#[test]
fn image_model_gradients_match_finite_differences() {
    use deepgen::models::Objective;
    for cfg in [
        pixelcnn(3, 3, 1, false, PixelOutput::Bernoulli),
        pixelcnn(3, 3, 1, true, PixelOutput::Softmax),
        pixelrnn(Cell::Row, 3, 3, PixelOutput::Bernoulli),
        pixelrnn(Cell::Diagonal, 3, 3, PixelOutput::Bernoulli),
        made(6, 1, false),
        ModelConfig::Rnade(RnadeConfig { dim: 3, hidden: 4, components: 2 }),
    ] {
        let m = model(cfg.clone(), 1);
        // Seed 5: seed 2 puts a ReLU kink 7e-4 from a PixelCNN bias (both step sizes straddle it).
        randomize(&m, 5, 0.5);
        let d = cfg.dim();
        let x = if matches!(cfg, ModelConfig::Rnade(_)) {
            rng::randn(&mut rng::rng(3), &[4, d], &Device::Cpu).unwrap()
        } else if matches!(&cfg, ModelConfig::PixelCnn(c) if c.output == PixelOutput::Softmax) {
            let v: Vec<f32> = (0..4 * d).map(|k| ((k * 37) % 256) as f32 / 255.0).collect();
            Tensor::from_vec(v, (4, d), &Device::Cpu).unwrap()
        } else {
            random_binary(4, d, 3)
        };
        let loss = |m: &Model| {
            m.loss(&x, &mut rng::rng(0)).unwrap().total.to_scalar::<f32>().unwrap() as f64
        };
        let grads = m.loss(&x, &mut rng::rng(0)).unwrap().total.backward().unwrap();
        let n = assert_grads_match_fd(&m, &loss, &grads, 7, 1e-2, 2e-2, cfg.name());
        assert!(n > 5, "{}: checked only {n} entries", cfg.name());
    }
}

#[test]
fn fused_lstm_scans_equal_the_literal_skew_formulation() {
    use deepgen::models::PixelRnn;
    use deepgen::nn::Params;
    for cell in [Cell::Row, Cell::Diagonal] {
        let cfg = PixelRnnConfig {
            cell,
            height: 5,
            width: 6,
            channels: 3,
            layers: 2,
            output: PixelOutput::Bernoulli,
        };
        let mut p = Params::new();
        let net = PixelRnn::new(&mut p, &cfg, &mut rng::rng(1), &Device::Cpu).unwrap();
        let x = random_binary(3, 30, 4).reshape((3, 5, 6, 1)).unwrap();
        let fused = net.forward_image(&x).unwrap();
        let reference = net.forward_image_reference(&x).unwrap();
        let (a, b) = (vec1(&fused), vec1(&reference));
        let diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        assert!(diff < 1e-5, "{cell:?}: fused and literal outputs differ by {diff}");
        // Gradients of the same scalar through both.
        let w = rng::randn(&mut rng::rng(2), fused.dims(), &Device::Cpu).unwrap();
        let gf = (fused * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let gr = (reference * &w).unwrap().sum_all().unwrap().backward().unwrap();
        for (name, v) in p.vars() {
            let (a, b) =
                (vec1(gf.get(v.as_tensor()).unwrap()), vec1(gr.get(v.as_tensor()).unwrap()));
            let diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
            assert!(diff < 1e-4, "{cell:?}: gradient of {name} differs by {diff}");
        }
    }
}

/// NADE's candle-op path (a GPU's; `nn/portable`), the blocked prefix sum over pixels, gives the
/// fused recurrence's logits and weight gradients, for sides that fill the blocks (D = 9: 3 x 3)
/// and that leave one partly empty (D = 7, 11: padded).
#[test]
fn nade_blocked_prefix_matches_the_recurrence() {
    use deepgen::models::{Nade, NadeConfig};
    use deepgen::nn::Params;
    for d in [7, 9, 11] {
        let dev = Device::Cpu;
        let mut r = rng::rng(d as u64);
        let mut p = Params::default();
        let nade = Nade::new(&mut p, &NadeConfig { dim: d, hidden: 5 }, &mut r, &dev).unwrap();
        let x = rng::randn(&mut r, &[6, d], &dev).unwrap().gt(0f32).unwrap();
        let x = x.to_dtype(candle_core::DType::F32).unwrap();
        let g = rng::randn(&mut r, &[6, d], &dev).unwrap();
        let run = || {
            let l = nade.logits(&x).unwrap();
            let grads = (&l * &g).unwrap().sum_all().unwrap().backward().unwrap();
            let dw: Vec<f32> = p
                .vars()
                .map(|(_, v)| grads.get(v.as_tensor()).unwrap().flatten_all().unwrap())
                .flat_map(|t| t.to_vec1::<f32>().unwrap())
                .collect();
            (l.flatten_all().unwrap().to_vec1::<f32>().unwrap(), dw)
        };
        let (fused, portable) = (run(), deepgen::nn::with_portable_ops(run));
        for (what, a, e) in [("logits", &fused.0, &portable.0), ("grads", &fused.1, &portable.1)] {
            assert_eq!(a.len(), e.len());
            for (u, v) in a.iter().zip(e.iter()) {
                assert!((u - v).abs() < 1e-4 * (1.0 + v.abs()), "D = {d} {what}: {u} vs {v}");
            }
        }
    }
}
