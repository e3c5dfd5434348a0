//! Helpers shared by the integration tests.
#![allow(dead_code)]

use candle_core::{Device, Tensor};
use deepgen::models::{Model, ModelConfig};
use deepgen::rng;

/// All 2^d binary vectors as a `[2^d, d]` tensor (bit j of row k is x_j).
pub fn all_binary(d: usize) -> Tensor {
    let n = 1usize << d;
    let v: Vec<f32> = (0..n).flat_map(|k| (0..d).map(move |j| ((k >> j) & 1) as f32)).collect();
    Tensor::from_vec(v, (n, d), &Device::Cpu).unwrap()
}

/// Random binary rows.
pub fn random_binary(n: usize, d: usize, seed: u64) -> Tensor {
    let mut r = rng::rng(seed);
    let v = rng::bernoulli(&mut r, &vec![0.4; n * d]);
    Tensor::from_vec(v, (n, d), &Device::Cpu).unwrap()
}

/// Gives every parameter a random value (so that zero-initialised biases are tested too).
pub fn randomize(m: &Model, seed: u64, scale: f32) {
    let mut r = rng::rng(seed);
    for (_, v) in m.params.vars() {
        let t = rng::randn(&mut r, v.dims(), &Device::Cpu).unwrap();
        v.set(&(t * scale as f64).unwrap()).unwrap();
    }
}

pub fn model(cfg: ModelConfig, seed: u64) -> Model {
    Model::new(&cfg, seed, &Device::Cpu).unwrap()
}

pub fn vec1(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

/// Central finite differences of `f` against the gradients in `grads`, on
/// every `stride`-th entry of every parameter of `m`; returns how many were checked.
pub fn assert_grads_match_fd(
    m: &Model,
    f: &dyn Fn(&Model) -> f64,
    grads: &candle_core::backprop::GradStore,
    stride: usize,
    h: f32,
    tol: f64,
    what: &str,
) -> usize {
    let vars: Vec<(String, candle_core::Var)> =
        m.params.vars().map(|(n, v)| (n.clone(), v.clone())).collect();
    assert_grads_match_fd_vars(&vars, &|| f(m), grads, stride, h, tol, what)
}

/// [`assert_grads_match_fd`] over the given variables only.
pub fn assert_grads_match_fd_vars(
    vars: &[(String, candle_core::Var)],
    f: &dyn Fn() -> f64,
    grads: &candle_core::backprop::GradStore,
    stride: usize,
    h: f32,
    tol: f64,
    what: &str,
) -> usize {
    let mut checked = 0;
    for (name, var) in vars {
        let analytic = vec1(
            grads.get(var.as_tensor()).unwrap_or_else(|| panic!("{what}: no gradient for {name}")),
        );
        let base = vec1(var.as_tensor());
        for k in (0..base.len()).step_by(stride) {
            let eval = |d: f32| {
                let mut v = base.clone();
                v[k] += d;
                var.set(&Tensor::from_vec(v, var.dims(), &Device::Cpu).unwrap()).unwrap();
                f()
            };
            let fd = (eval(h) - eval(-h)) / (2.0 * h as f64);
            let ok = |fd: f64| (fd - analytic[k] as f64).abs() < tol * (1.0 + fd.abs());
            // A ReLU kink within h of the point bends a central difference; a wrong
            // gradient fails at both step sizes, a kink at most at one.
            let fd = if ok(fd) { fd } else { (eval(h / 8.0) - eval(-h / 8.0)) / (h as f64 / 4.0) };
            var.set(&Tensor::from_vec(base.clone(), var.dims(), &Device::Cpu).unwrap()).unwrap();
            assert!(
                ok(fd),
                "{what} {name}[{k}]: finite difference {fd} vs analytic {}",
                analytic[k]
            );
            checked += 1;
        }
    }
    checked
}
