//! deepgen: deep generative models in Rust.
//!
//! Explicit-density models (independent Bernoulli, FVSBN, NADE, MADE, RNADE,
//! PixelCNN and gated PixelCNN, PixelRNN Row LSTM and Diagonal BiLSTM) and
//! latent variable models (VAE) trained by one [`train::LikelihoodTrainer`],
//! scored in nats and bits/dim by [`eval`], sampled and completed with
//! [`models::Model::sample_sequential`], checkpointed as safetensors run
//! directories. See ARCHITECTURE.md for the design.
//!
//! # Example: train, save, reload and score
//!
//! ```
//! use deepgen::data::{Binarize, DataSpec};
//! use deepgen::models::{Device, Model, ModelConfig, NadeConfig};
//! use deepgen::run::RunDir;
//! use deepgen::train::{LikelihoodTrainer, NoHooks, TrainConfig};
//!
//! # fn main() -> deepgen::Result<()> {
//! deepgen::enable_second_order();
//! let mut train = DataSpec::Digits { test: false }.load(0)?; // embedded UCI digits, 8x8
//! train.binarize(Binarize::Static, 7)?;
//! let cfg = ModelConfig::Nade(NadeConfig { dim: train.dim(), hidden: 32 });
//! let model = Model::new(&cfg, 7, &Device::Cpu)?;
//! let recipe = TrainConfig { steps: 50, batch_size: 64, lr: 1e-2, ..TrainConfig::default() };
//! let mut trainer = LikelihoodTrainer::new(&model, recipe, 7, Binarize::Static)?;
//! trainer.fit(&model, &train, None, &mut NoHooks)?;
//!
//! let dir = tempfile::tempdir().map_err(|e| deepgen::Error::io("tempdir", e))?;
//! let run = RunDir::create(dir.path())?;
//! run.save(&model, &[&trainer.opt], trainer.opt.step, 7)?;
//! let (reloaded, step) = run.load_model(&Device::Cpu)?;
//! assert_eq!(step, 50);
//!
//! let mut test = DataSpec::Digits { test: true }.load(0)?;
//! test.binarize(Binarize::Static, 8)?;
//! let report = deepgen::eval::nll(&reloaded, &test, 256, &mut deepgen::rng::rng(0))?;
//! println!("{:.2} nats, {:.4} bits/dim", report.nats, report.bits_per_dim);
//! // Better than the uniform distribution over 2^64 binary images (64 ln 2 = 44.4 nats).
//! assert!(report.nats > 0.0 && report.nats < 64.0 * std::f64::consts::LN_2);
//! # Ok(())
//! # }
//! ```

pub mod data;
pub mod dist;
pub mod error;
pub mod eval;
pub mod files;
pub mod limits;
pub mod models;
pub mod nn;
pub mod optim;
pub mod parallel;
pub mod recipe;
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

/// The environment variable candle reads (once, when its element-wise
/// thread pool starts) for how long idle workers spin before parking.
pub const SPIN_LIMIT_ENV: &str = "CANDLE_BARRIER_POOL_SPIN_LIMIT";

/// Makes candle's element-wise worker threads park after 1,000 spins instead
/// of 25,000: between candle's small element-wise ops they otherwise spin on
/// the cores that rayon's workers (our fused ops, GEMM) need. Measured on 2
/// cores: Unrolled GAN step +20% (14.7 -> 17.6 steps/s), DCGAN step +6%.
/// Call it first thing in `main`, before any thread is spawned; a value set
/// by the user wins.
pub fn tune_thread_pools() {
    if std::env::var_os(SPIN_LIMIT_ENV).is_none() {
        // Safe in the 2021 edition; callers run this before spawning threads.
        std::env::set_var(SPIN_LIMIT_ENV, "1000");
    }
}

/// Makes glibc's allocator keep freed memory for reuse instead of returning
/// every large block to the kernel: a training step allocates and frees
/// tensors of tens of MB (a `[128, 28, 28, 32]` map is 12.8 MB), and by
/// default each of them is a fresh `mmap` whose pages the kernel faults in
/// and zeroes on first touch. Raising the mmap threshold to its maximum
/// (32 MiB) and the trim threshold keeps them on the heap. Measured on the
/// PixelCNN step (batch 128, 2 threads): 0.30 s -> 0.25 s. Binaries call it
/// once at start; a no-op off glibc.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before other threads allocate.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_TOP_PAD, 64 << 20);
    }
}
