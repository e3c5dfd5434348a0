//! Bernoulli, FVSBN and NADE: normalisation, causality, values against
//! independent chain-rule evaluations, gradients, sampling distributions.

mod common;

use candle_core::{Device, Tensor, Var};
use common::*;
use deepgen::models::{
    BernoulliConfig, DensityModel, FvsbnConfig, Known, Model, ModelConfig, NadeConfig, Sampler,
};
use deepgen::rng;

fn configs(d: usize) -> Vec<ModelConfig> {
    vec![
        ModelConfig::Bernoulli(BernoulliConfig { dim: d }),
        ModelConfig::Fvsbn(FvsbnConfig { dim: d }),
        ModelConfig::Nade(NadeConfig { dim: d, hidden: 7 }),
    ]
}

fn log_prob(m: &Model, x: &Tensor) -> Vec<f32> {
    vec1(&m.log_prob(x, &mut rng::rng(0)).unwrap())
}

#[test]
fn sums_to_one_over_all_2_pow_10_inputs() {
    let x = all_binary(10);
    for cfg in configs(10) {
        let m = model(cfg.clone(), 3);
        randomize(&m, 11, 1.0);
        let lp = log_prob(&m, &x);
        assert_eq!(lp.len(), 1024);
        let total: f64 = lp.iter().map(|&v| (v as f64).exp()).sum();
        assert!(
            (total - 1.0).abs() < 1e-5,
            "{}: sum of p(x) over 2^10 inputs = {total}",
            cfg.name()
        );
    }
}

#[test]
fn log_prob_shapes_and_sign() {
    for cfg in configs(6) {
        let m = model(cfg.clone(), 1);
        let lp = m.log_prob(&random_binary(5, 6, 2), &mut rng::rng(0)).unwrap();
        assert_eq!(lp.dims(), &[5], "{}", cfg.name());
        assert!(vec1(&lp).iter().all(|&v| v < 0.0 && v.is_finite()));
        let s = m.sample(4, &mut rng::rng(1)).unwrap();
        assert_eq!(s.dims(), &[4, 6]);
        assert!(vec1(&s).iter().all(|&v| v == 0.0 || v == 1.0));
    }
}

#[test]
fn autoregressive_models_are_causal() {
    let d = 9;
    for cfg in [
        ModelConfig::Fvsbn(FvsbnConfig { dim: d }),
        ModelConfig::Nade(NadeConfig { dim: d, hidden: 6 }),
    ] {
        let m = model(cfg.clone(), 5);
        randomize(&m, 7, 1.0);
        let x = random_binary(4, d, 9);
        let base = vec1(&m.conditionals(&x).unwrap().unwrap());
        for j in 0..d {
            // Flip x_j in every row.
            let mut xv = vec1(&x);
            for r in 0..4 {
                xv[r * d + j] = 1.0 - xv[r * d + j];
            }
            let xf = Tensor::from_vec(xv, (4, d), &Device::Cpu).unwrap();
            let out = vec1(&m.conditionals(&xf).unwrap().unwrap());
            let mut later_changed = false;
            for r in 0..4 {
                for i in 0..d {
                    let same = base[r * d + i] == out[r * d + i];
                    if i <= j {
                        assert!(
                            same,
                            "{}: flipping x_{j} changed the conditional of x_{i}",
                            cfg.name()
                        );
                    } else if !same {
                        later_changed = true;
                    }
                }
            }
            // The test must be able to fail: later conditionals do depend on x_j.
            if j + 1 < d {
                assert!(later_changed, "{}: x_{j} influences nothing after it", cfg.name());
            }
        }
    }
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

fn params(m: &Model, name: &str) -> Vec<f64> {
    vec1(m.params.get(name).unwrap().as_tensor()).into_iter().map(|v| v as f64).collect()
}

/// log p(x) = sum_i log p(x_i | x_<i), every conditional written out directly from the paper's
/// equations.
#[test]
fn nade_matches_a_direct_chain_rule_evaluation() {
    let (d, h) = (8, 5);
    let m = model(ModelConfig::Nade(NadeConfig { dim: d, hidden: h }), 2);
    randomize(&m, 3, 0.8);
    let (w, c, v, b) = (params(&m, "W"), params(&m, "c"), params(&m, "V"), params(&m, "b"));
    let x = random_binary(6, d, 4);
    let xv = vec1(&x);
    let lp = log_prob(&m, &x);
    for r in 0..6 {
        let xr = &xv[r * d..(r + 1) * d];
        let mut total = 0.0;
        for i in 0..d {
            // h_i = sigma(c + sum_{j<i} W[:, j] x_j)
            let hid: Vec<f64> = (0..h)
                .map(|k| sigmoid(c[k] + (0..i).map(|j| w[k * d + j] * xr[j] as f64).sum::<f64>()))
                .collect();
            let p = sigmoid(b[i] + (0..h).map(|k| v[i * h + k] * hid[k]).sum::<f64>());
            total += if xr[i] == 1.0 { p.ln() } else { (1.0 - p).ln() };
        }
        assert!((total - lp[r] as f64).abs() < 1e-4, "row {r}: direct {total} vs model {}", lp[r]);
    }
}

#[test]
fn fvsbn_matches_a_direct_chain_rule_evaluation() {
    let d = 7;
    let m = model(ModelConfig::Fvsbn(FvsbnConfig { dim: d }), 2);
    randomize(&m, 3, 0.8);
    let (w, a) = (params(&m, "W"), params(&m, "a"));
    let x = random_binary(5, d, 4);
    let xv = vec1(&x);
    let lp = log_prob(&m, &x);
    for r in 0..5 {
        let xr = &xv[r * d..(r + 1) * d];
        let total: f64 = (0..d)
            .map(|i| {
                let p = sigmoid(a[i] + (0..i).map(|j| w[j * d + i] * xr[j] as f64).sum::<f64>());
                if xr[i] == 1.0 {
                    p.ln()
                } else {
                    (1.0 - p).ln()
                }
            })
            .sum();
        assert!((total - lp[r] as f64).abs() < 1e-4);
    }
}

#[test]
fn bernoulli_matches_hand_computed_value() {
    let m = model(ModelConfig::Bernoulli(BernoulliConfig { dim: 3 }), 0);
    m.params
        .get("logits")
        .unwrap()
        .set(&Tensor::new(&[0.0f32, 2.0, -1.0], &Device::Cpu).unwrap())
        .unwrap();
    let x = Tensor::new(&[[1.0f32, 0.0, 1.0]], &Device::Cpu).unwrap();
    // log 0.5 + log(1 - sigma(2)) + log sigma(-1)
    let want = 0.5f64.ln() + (1.0 - sigmoid(2.0)).ln() + sigmoid(-1.0).ln();
    assert!((log_prob(&m, &x)[0] as f64 - want).abs() < 1e-6);
}

/// The NADE kernel's hand-written backward pass against candle's autodiff of
/// the same recurrence written with plain tensor ops: a tiny model, and one
/// with two hidden-unit blocks (the second partial), a partial tile of
/// examples and several checkpoint segments (the kernel's layout). The input
/// is a variable, so the gradient with respect to x is checked too.
#[test]
fn nade_gradients_match_autodiff_of_a_reference_implementation() {
    for (d, h, n) in [(6, 4, 5), (30, 150, 19)] {
        nade_against_reference(d, h, n);
    }
}

fn nade_against_reference(d: usize, h: usize, n: usize) {
    let m = model(ModelConfig::Nade(NadeConfig { dim: d, hidden: h }), 8);
    randomize(&m, 9, 0.7);
    let xv = Var::from_tensor(&random_binary(n, d, 10)).unwrap();
    let x = xv.as_tensor().clone();
    let loss = m.log_prob(&x, &mut rng::rng(0)).unwrap().sum_all().unwrap();
    let g = loss.backward().unwrap();

    let dev = Device::Cpu;
    let p =
        |k: &str| Var::from_tensor(&m.params.get(k).unwrap().as_tensor().copy().unwrap()).unwrap();
    let (w, c, v, b) = (p("W"), p("c"), p("V"), p("b"));
    let mut a = c.unsqueeze(0).unwrap().broadcast_as((n, h)).unwrap().contiguous().unwrap();
    let mut total = Tensor::zeros(n, candle_core::DType::F32, &dev).unwrap();
    for i in 0..d {
        let hid = (a.neg().unwrap().exp().unwrap() + 1.0).unwrap().recip().unwrap();
        let z = (hid.matmul(&v.narrow(0, i, 1).unwrap().t().unwrap()).unwrap().squeeze(1).unwrap()
            + b.narrow(0, i, 1).unwrap().broadcast_as(n).unwrap())
        .unwrap();
        let xi = x.narrow(1, i, 1).unwrap().squeeze(1).unwrap();
        let sp = (z.exp().unwrap() + 1.0).unwrap().log().unwrap();
        total = (total + ((&xi * &z).unwrap() - sp).unwrap()).unwrap();
        a = (a + x
            .narrow(1, i, 1)
            .unwrap()
            .matmul(&w.narrow(1, i, 1).unwrap().t().unwrap())
            .unwrap())
        .unwrap();
    }
    let rg = total.sum_all().unwrap().backward().unwrap();
    assert!(
        (total.sum_all().unwrap().to_scalar::<f32>().unwrap() - loss.to_scalar::<f32>().unwrap())
            .abs()
            < 1e-4
    );
    for (name, refvar) in [("W", &w), ("c", &c), ("V", &v), ("b", &b)] {
        let mine = vec1(g.get(m.params.get(name).unwrap().as_tensor()).unwrap());
        let theirs = vec1(rg.get(refvar.as_tensor()).unwrap());
        let worst = mine.iter().zip(&theirs).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst < 1e-4, "D={d} H={h}: d log p / d {name}: max abs difference {worst}");
    }
    let mine = vec1(g.get(&x).unwrap());
    let theirs = vec1(rg.get(&x).unwrap());
    let worst = mine.iter().zip(&theirs).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(worst < 1e-4, "D={d} H={h}: d log p / d x: max abs difference {worst}");
}

/// Central finite differences on a few entries of every NADE and FVSBN parameter.
#[test]
fn gradients_match_finite_differences() {
    for cfg in [
        ModelConfig::Nade(NadeConfig { dim: 5, hidden: 3 }),
        ModelConfig::Fvsbn(FvsbnConfig { dim: 5 }),
    ] {
        let m = model(cfg.clone(), 4);
        randomize(&m, 5, 0.5);
        let x = random_binary(4, 5, 6);
        let f = |m: &Model| -> f64 { log_prob(m, &x).iter().map(|&v| v as f64).sum() };
        let g = m.log_prob(&x, &mut rng::rng(0)).unwrap().sum_all().unwrap().backward().unwrap();
        assert_grads_match_fd(&m, &f, &g, 3, 1e-2, 2e-3, cfg.name());
    }
}

/// Ancestral samples follow p(x): empirical frequencies of all 2^3 outcomes
/// against exp(log_prob), 20,000 draws.
#[test]
fn samples_follow_the_model_distribution() {
    let x = all_binary(3);
    for cfg in configs(3) {
        let m = model(cfg.clone(), 12);
        randomize(&m, 13, 1.0);
        let p: Vec<f64> = log_prob(&m, &x).iter().map(|&v| (v as f64).exp()).collect();
        let n = 20_000;
        let s = vec1(&m.sample(n, &mut rng::rng(14)).unwrap());
        let mut counts = [0f64; 8];
        for row in s.chunks(3) {
            let k = (row[0] as usize) | (row[1] as usize) << 1 | (row[2] as usize) << 2;
            counts[k] += 1.0;
        }
        for k in 0..8 {
            let freq = counts[k] / n as f64;
            let se = (p[k] * (1.0 - p[k]) / n as f64).sqrt();
            assert!(
                (freq - p[k]).abs() < 5.0 * se + 1e-3,
                "{} outcome {k}: frequency {freq} vs p {}",
                cfg.name(),
                p[k]
            );
        }
    }
}

#[test]
fn sampling_is_reproducible_from_the_seed() {
    for cfg in configs(6) {
        let m = model(cfg, 1);
        randomize(&m, 2, 1.0);
        let a = vec1(&m.sample(8, &mut rng::rng(5)).unwrap());
        let b = vec1(&m.sample(8, &mut rng::rng(5)).unwrap());
        let c = vec1(&m.sample(8, &mut rng::rng(6)).unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}

#[test]
fn initialisation_is_reproducible_from_the_seed() {
    let a = model(ModelConfig::Nade(NadeConfig { dim: 5, hidden: 3 }), 1);
    let b = model(ModelConfig::Nade(NadeConfig { dim: 5, hidden: 3 }), 1);
    let c = model(ModelConfig::Nade(NadeConfig { dim: 5, hidden: 3 }), 2);
    assert_eq!(params(&a, "W"), params(&b, "W"));
    assert_ne!(params(&a, "W"), params(&c, "W"));
}

/// NADE's tiled sampler at the kernel's layout (two hidden-unit blocks, a
/// partial tile): the log p it accumulates is the forward pass's, known
/// values are kept, and the draws are the same on one thread and on two.
#[test]
fn nade_sampler_agrees_with_the_forward_pass_on_any_number_of_threads() {
    let (d, h, n) = (30, 150, 40);
    let m = model(ModelConfig::Nade(NadeConfig { dim: d, hidden: h }), 3);
    randomize(&m, 4, 0.7);
    let draw = |threads: usize, known: Option<&Known>| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| m.sample_sequential(n, known, &mut rng::rng(5)).unwrap())
    };
    let (x, lps) = draw(1, None);
    let (x2, lps2) = draw(2, None);
    assert_eq!(vec1(&x), vec1(&x2));
    assert_eq!(lps, lps2);
    for (a, b) in lps.iter().zip(log_prob(&m, &x)) {
        assert!((a - b as f64).abs() < 1e-4 * (1.0 + a.abs()), "sampler log p {a} vs forward {b}");
    }
    let values = vec1(&x);
    let observed: Vec<bool> = (0..n * d).map(|k| (k / 7) % 2 == 0).collect();
    let known = Known { values: values.clone(), observed: observed.clone() };
    let (y, lps) = draw(2, Some(&known));
    let yv = vec1(&y);
    for k in (0..n * d).filter(|&k| observed[k]) {
        assert_eq!(yv[k], values[k], "known value {k} changed");
    }
    for (a, b) in lps.iter().zip(log_prob(&m, &y)) {
        assert!(
            (a - b as f64).abs() < 1e-4 * (1.0 + a.abs()),
            "completion log p {a} vs forward {b}"
        );
    }
}
