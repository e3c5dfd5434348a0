//! deepgen: deep generative models in Rust.
//!
//! Explicit-density models (independent Bernoulli, FVSBN, NADE) and latent
//! variable models (VAE) trained by one [`train::LikelihoodTrainer`], scored
//! in nats and bits/dim by [`eval`], checkpointed as safetensors run
//! directories. See ARCHITECTURE.md for the design.

pub mod data;
pub mod dist;
pub mod error;
pub mod eval;
pub mod models;
pub mod nn;
pub mod rng;
pub mod run;
pub mod train;
pub mod viz;

pub use error::{Error, Result};

use candle_core::{Device, Tensor, Var};

/// The environment variable candle reads (once per thread, in backprop.rs)
/// to keep the graph of gradients, without which second-order gradients are
/// silently zero.
pub const SECOND_ORDER_ENV: &str = "CANDLE_GRAD_DO_NOT_DETACH";

/// Turns on second-order gradients for threads that have not run a backward
/// pass yet. Call it first thing in `main`, before any thread is spawned.
pub fn enable_second_order() {
    if std::env::var_os(SECOND_ORDER_ENV).is_none() {
        // Safe in the 2021 edition; callers run this before spawning threads.
        std::env::set_var(SECOND_ORDER_ENV, "1");
    }
}

/// Checks on a tiny graph that gradients of gradients are right on this
/// thread: for f(w) = sum(tanh(x w)), d/dw of |df/dw|^2 against central
/// finite differences. Returns the largest relative error.
pub fn check_second_order() -> Result<f64> {
    let dev = Device::Cpu;
    let x = Tensor::new(&[[0.3f64, -0.7], [1.1, 0.4]], &dev)?;
    let w0 = [0.5f64, -0.2];
    let penalty = |w: &Tensor| -> Result<Tensor> {
        let f = x.matmul(&w.reshape((2, 1))?)?.tanh()?.sum_all()?;
        let g = f.backward()?;
        let gw = g.get(w).ok_or_else(|| Error::config("no gradient for w"))?.clone();
        Ok(gw.sqr()?.sum_all()?)
    };
    let w = Var::new(&w0, &dev)?;
    let p = penalty(w.as_tensor())?;
    let g2 = p.backward()?;
    let analytic = match g2.get(w.as_tensor()) {
        Some(g) => g.to_vec1::<f64>()?,
        None => vec![0.0, 0.0],
    };
    let h = 1e-5;
    let mut worst = 0f64;
    for i in 0..2 {
        let mut wp = w0;
        wp[i] += h;
        let mut wm = w0;
        wm[i] -= h;
        let fp = penalty(Var::new(&wp, &dev)?.as_tensor())?.to_scalar::<f64>()?;
        let fm = penalty(Var::new(&wm, &dev)?.as_tensor())?.to_scalar::<f64>()?;
        let fd = (fp - fm) / (2.0 * h);
        worst = worst.max((fd - analytic[i]).abs() / fd.abs().max(1e-12));
    }
    Ok(worst)
}
