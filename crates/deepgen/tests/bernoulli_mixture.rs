//! The mixture of Bernoullis (the worked example of a family added in one
//! file and one registry line): log p against a hand computation,
//! normalisation over all 2^D inputs, causal conditionals that are the
//! chain rule of the same density, the sampler against the forward pass,
//! gradients against finite differences, posterior features, training.

mod common;

use candle_core::{Device, Tensor};
use common::*;
use deepgen::models::bernoulli_mixture::{BernoulliMixture, BernoulliMixtureConfig};
use deepgen::models::{DensityModel, Known, Model, ModelConfig, Objective};
use deepgen::rng;

fn mixture(dim: usize, components: usize, seed: u64) -> Model {
    let m = model(ModelConfig::BernoulliMixture(BernoulliMixtureConfig { dim, components }), seed);
    randomize(&m, seed + 1, 1.0);
    m
}

fn lp(m: &Model, x: &Tensor) -> Vec<f32> {
    m.log_prob(x, &mut rng::rng(0)).unwrap().to_vec1::<f32>().unwrap()
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

#[test]
fn log_prob_matches_a_hand_computation() {
    let m = mixture(3, 2, 1);
    let a = vec1(m.params.get("mix").unwrap().as_tensor());
    let l = vec1(m.params.get("logits").unwrap().as_tensor());
    let xs: [[f32; 3]; 2] = [[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]];
    let x = Tensor::from_vec(xs.concat(), (2, 3), &Device::Cpu).unwrap();
    let got = lp(&m, &x);
    for (row, g) in xs.iter().zip(got) {
        let z = (a[0] as f64).exp() + (a[1] as f64).exp();
        let mut p = 0.0;
        for k in 0..2 {
            let mut comp = (a[k] as f64).exp() / z;
            for i in 0..3 {
                let mu = sigmoid(l[k * 3 + i] as f64);
                comp *= if row[i] > 0.5 { mu } else { 1.0 - mu };
            }
            p += comp;
        }
        assert!((p.ln() - g as f64).abs() < 1e-5, "hand {} vs model {g}", p.ln());
    }
}

#[test]
fn sums_to_one_over_all_2_to_the_10_inputs() {
    let m = mixture(10, 4, 2);
    let total: f64 = lp(&m, &all_binary(10)).iter().map(|v| (*v as f64).exp()).sum();
    assert!((total - 1.0).abs() < 1e-4, "sum of p over all inputs: {total}");
}

#[test]
fn conditionals_are_causal_and_the_chain_rule_of_log_prob() {
    let d = 6;
    let m = mixture(d, 3, 3);
    let x = random_binary(5, d, 4);
    let z = vec1(&m.conditionals(&x).unwrap().unwrap());
    let xv = vec1(&x);
    // sum_i log p(x_i | x_<i) = log p(x).
    for (r, full) in lp(&m, &x).iter().enumerate() {
        let chain: f64 = (0..d)
            .map(|i| {
                let p = sigmoid(z[r * d + i] as f64);
                if xv[r * d + i] > 0.5 {
                    p.ln()
                } else {
                    (1.0 - p).ln()
                }
            })
            .sum();
        assert!((chain - *full as f64).abs() < 1e-4, "chain rule {chain} vs log p {full}");
    }
    // Flipping x_j changes no conditional i <= j, and does change a later one.
    for j in 0..d {
        let mut flipped = xv.clone();
        for r in 0..5 {
            flipped[r * d + j] = 1.0 - flipped[r * d + j];
        }
        let f = vec1(
            &m.conditionals(&Tensor::from_vec(flipped, (5, d), &Device::Cpu).unwrap())
                .unwrap()
                .unwrap(),
        );
        for r in 0..5 {
            for i in 0..=j {
                assert!((f[r * d + i] - z[r * d + i]).abs() < 1e-6, "output {i} depends on {j}");
            }
        }
        if j + 1 < d {
            assert!(
                (0..5).any(|r| (f[r * d + j + 1] - z[r * d + j + 1]).abs() > 1e-6),
                "no dependence on {j}"
            );
        }
    }
}

#[test]
fn sampler_and_completion_agree_with_the_forward_pass() {
    let d = 8;
    let m = mixture(d, 3, 5);
    let (x, lps) = m.sample_sequential(6, None, &mut rng::rng(6)).unwrap();
    for (a, b) in lps.iter().zip(lp(&m, &x)) {
        assert!((a - b as f64).abs() < 1e-4, "sampler log p {a} vs forward {b}");
    }
    let values = vec1(&x);
    let observed: Vec<bool> = (0..6 * d).map(|k| k % d < d / 2).collect();
    let known = Known { values: values.clone(), observed: observed.clone() };
    let (y, lps) = m.sample_sequential(6, Some(&known), &mut rng::rng(7)).unwrap();
    let yv = vec1(&y);
    assert!((0..6 * d).all(|k| !observed[k] || yv[k] == values[k]), "a known value changed");
    for (a, b) in lps.iter().zip(lp(&m, &y)) {
        assert!((a - b as f64).abs() < 1e-4, "completion log p {a} vs forward {b}");
    }
}

#[test]
fn gradients_match_finite_differences() {
    let m = mixture(5, 3, 8);
    let x = random_binary(6, 5, 9);
    let loss =
        |m: &Model| m.loss(&x, &mut rng::rng(0)).unwrap().total.to_scalar::<f32>().unwrap() as f64;
    let grads = m.loss(&x, &mut rng::rng(0)).unwrap().total.backward().unwrap();
    let n = assert_grads_match_fd(&m, &loss, &grads, 1, 1e-2, 1e-2, "bernoulli-mixture");
    assert_eq!(n, 3 + 15);
}

#[test]
fn features_are_the_posterior_over_components() {
    let m = mixture(6, 4, 10);
    let x = random_binary(5, 6, 11);
    let f = vec1(&m.features(&x).unwrap());
    for row in f.chunks(4) {
        assert!(
            (row.iter().sum::<f32>() - 1.0).abs() < 1e-5 && row.iter().all(|p| *p >= 0.0),
            "{row:?}"
        );
    }
    // The posterior is Bayes' rule on the joint: p(k | x) p(x) = pi_k p(x | k).
    let net = m.get::<BernoulliMixture>().unwrap();
    let r = vec1(&net.responsibilities(&x).unwrap());
    assert_eq!(r, f);
}
