//! VAE: closed-form KL, ELBO parts, importance-weighted bound, gradients.

mod common;

use candle_core::{Device, Tensor};
use common::*;
use deepgen::dist;
use deepgen::models::Vae;
use deepgen::models::{Likelihood, Model, ModelConfig, Objective, VaeConfig};
use deepgen::rng;

fn tiny(likelihood: Likelihood, seed: u64) -> Model {
    model(
        ModelConfig::Vae(VaeConfig {
            dim: 6,
            hidden: vec![8],
            latent: 2,
            likelihood,
            iw_samples: 10,
        }),
        seed,
    )
}

#[test]
fn closed_form_kl_equals_monte_carlo() {
    let dev = Device::Cpu;
    let mu = Tensor::new(&[[0.5f32, -1.0, 0.2]], &dev).unwrap();
    let lv = Tensor::new(&[[-0.3f32, 0.4, -1.2]], &dev).unwrap();
    let kl = dist::kl_std_normal(&mu, &lv).unwrap().to_vec1::<f32>().unwrap()[0] as f64;
    // E_q[log q(z) - log p(z)] with 200,000 draws.
    let n = 200_000;
    let mut r = rng::rng(1);
    let eps = rng::randn(&mut r, &[n, 3], &dev).unwrap();
    let z = eps
        .broadcast_mul(&(lv.clone() * 0.5).unwrap().exp().unwrap())
        .unwrap()
        .broadcast_add(&mu)
        .unwrap();
    let lq = deepgen::nn::ops::gaussian_log_prob(&z, &mu, &lv).unwrap().sum(1).unwrap();
    let lp = dist::std_normal_log_prob(&z).unwrap();
    let mc = (lq - lp).unwrap().mean_all().unwrap().to_scalar::<f32>().unwrap() as f64;
    assert!((kl - mc).abs() < 0.01, "closed form {kl} vs Monte Carlo {mc}");
    // And by hand: 0.5 * sum(mu^2 + e^lv - 1 - lv)
    let hand: f64 = [(0.5f64, -0.3f64), (-1.0, 0.4), (0.2, -1.2)]
        .iter()
        .map(|(m, l)| 0.5 * (m * m + l.exp() - 1.0 - l))
        .sum();
    assert!((kl - hand).abs() < 1e-5);
}

#[test]
fn gaussian_log_prob_matches_formula() {
    let dev = Device::Cpu;
    let x = Tensor::new(&[1.5f32], &dev).unwrap();
    let mu = Tensor::new(&[0.5f32], &dev).unwrap();
    let lv = Tensor::new(&[0.7f32], &dev).unwrap();
    let got = deepgen::nn::ops::gaussian_log_prob(&x, &mu, &lv).unwrap().to_vec1::<f32>().unwrap()
        [0] as f64;
    let var = 0.7f64.exp();
    let want = -0.5 * (2.0 * std::f64::consts::PI * var).ln() - 0.5 / var;
    assert!((got - want).abs() < 1e-6);
}

#[test]
fn elbo_parts_add_up_and_iwae_bounds_it() {
    let m = tiny(Likelihood::Bernoulli, 3);
    randomize(&m, 4, 0.5);
    let vae = m.get::<Vae>().unwrap();
    let x = random_binary(16, 6, 5);
    // ELBO estimated with many one-sample draws, per example.
    let reps = 3000;
    let mut elbo = [0f64; 16];
    for s in 0..reps {
        let e = vae.elbo(&x, &mut rng::rng(100 + s)).unwrap();
        let v = vec1(&(e.recon + e.kl).unwrap());
        for i in 0..16 {
            elbo[i] -= v[i] as f64 / reps as f64;
        }
    }
    // Mean over draws of the k-sample bound: non-decreasing in k, and >= ELBO.
    let mean_bound = |k: usize, reps: u64| -> f64 {
        let mut tot = 0.0;
        for s in 0..reps {
            tot += vec1(&vae.log_prob_k(&x, k, &mut rng::rng(100_000 + s)).unwrap())
                .iter()
                .map(|&v| v as f64)
                .sum::<f64>();
        }
        tot / (reps as f64 * 16.0)
    };
    let e_mean = elbo.iter().sum::<f64>() / 16.0;
    let (b1, b5, b50) = (mean_bound(1, 3000), mean_bound(5, 200), mean_bound(50, 40));
    assert!((b1 - e_mean).abs() < 0.06, "k=1 bound {b1} should equal the ELBO {e_mean}");
    assert!(b5 >= b1 - 0.02 && b50 >= b5 - 0.02, "bounds not increasing in k: {b1} {b5} {b50}");
    assert!(b50 > e_mean, "IWAE(50) {b50} below the ELBO {e_mean}");
    // The true log p(x) for a 6-dim binary VAE is a 2-D integral; the bound must stay below it:
    // with k = 2000 samples the estimate is close to it, and bound(50) must not exceed it by noise.
    let near_exact = vec1(&vae.log_prob_k(&x, 2000, &mut rng::rng(7)).unwrap())
        .iter()
        .map(|&v| v as f64)
        .sum::<f64>()
        / 16.0;
    assert!(b50 <= near_exact + 0.02, "bound(50) {b50} above bound(2000) {near_exact}");
}

#[test]
fn vae_gradients_match_finite_differences() {
    for lik in [Likelihood::Bernoulli, Likelihood::Gaussian] {
        let m = tiny(lik, 6);
        randomize(&m, 7, 0.4);
        let x = if lik == Likelihood::Bernoulli {
            random_binary(5, 6, 8)
        } else {
            rng::randn(&mut rng::rng(8), &[5, 6], &Device::Cpu).unwrap()
        };
        // Same noise for every evaluation: the loss is then a deterministic function of the
        // parameters.
        let f = |m: &Model| -> f64 {
            m.loss(&x, &mut rng::rng(9)).unwrap().total.to_scalar::<f32>().unwrap() as f64
        };
        let g = m.loss(&x, &mut rng::rng(9)).unwrap().total.backward().unwrap();
        let checked = assert_grads_match_fd(&m, &f, &g, 7, 5e-3, 5e-3, &format!("{lik:?}"));
        assert!(checked > 10);
    }
}

#[test]
fn shapes_of_encoder_decoder_and_samples() {
    let m = tiny(Likelihood::Gaussian, 1);
    let vae = m.get::<Vae>().unwrap();
    let x = rng::randn(&mut rng::rng(2), &[3, 6], &Device::Cpu).unwrap();
    let (mu, lv) = vae.encode(&x).unwrap();
    assert_eq!(mu.dims(), &[3, 2]);
    assert_eq!(lv.dims(), &[3, 2]);
    assert_eq!(vae.decode(&mu).unwrap().dims(), &[3, 6]);
    assert_eq!(vae.reconstruct(&x).unwrap().dims(), &[3, 6]);
    assert_eq!(vae.log_prob_k(&x, 7, &mut rng::rng(3)).unwrap().dims(), &[3]);
    use deepgen::models::Sampler;
    assert_eq!(m.sample(4, &mut rng::rng(4)).unwrap().dims(), &[4, 6]);
    assert!(m.params.get("dec.logvar").is_some());
}
