//! Closed-form quantities of the distributions the models use. Element-wise
//! log-densities live in [`crate::nn::ops`] (they have fused kernels).

use candle_core::Tensor;

pub use crate::nn::ops::{bernoulli_log_prob_logits, gaussian_log_prob, log_mean_exp};

/// KL( N(mu, diag(exp(logvar))) || N(0, I) ) per row, summed over the last dim:
/// 0.5 * sum(mu^2 + exp(logvar) - 1 - logvar)   (Kingma & Welling 2014, appendix B).
///
/// # Shapes
/// `mu, logvar: [B, L]` -> `[B]`
pub fn kl_std_normal(mu: &Tensor, logvar: &Tensor) -> candle_core::Result<Tensor> {
    let t = ((mu.sqr()? + logvar.exp()?)? - logvar)?;
    (t - 1.0)?.sum(candle_core::D::Minus1)? * 0.5
}

/// log N(z | 0, I) per row.
pub fn std_normal_log_prob(z: &Tensor) -> candle_core::Result<Tensor> {
    let l = z.dim(candle_core::D::Minus1)? as f64;
    (z.sqr()?.sum(candle_core::D::Minus1)? * -0.5)? - 0.5 * l * (2.0 * std::f64::consts::PI).ln()
}
