//! Closed-form quantities of the distributions the models use. Element-wise
//! log-densities live in [`crate::nn::ops`] (they have fused kernels).

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

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

/// The per-pixel output distribution of the autoregressive image models.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum PixelOutput {
    /// One logit per pixel: binary images.
    #[default]
    Bernoulli,
    /// A 256-way softmax per pixel: 8-bit grey images (values k/255).
    Softmax,
}

impl std::str::FromStr for PixelOutput {
    type Err = crate::error::Error;
    fn from_str(s: &str) -> crate::error::Result<Self> {
        match s {
            "bernoulli" => Ok(PixelOutput::Bernoulli),
            "softmax" | "softmax256" => Ok(PixelOutput::Softmax),
            _ => Err(crate::error::Error::config(format!(
                "unknown output `{s}` (expected bernoulli or softmax)"
            ))),
        }
    }
}

impl PixelOutput {
    /// Grey levels of the softmax output.
    pub const LEVELS: usize = 256;

    /// Parameters per pixel: 1 logit, or 256 logits.
    pub fn params(&self) -> usize {
        match self {
            PixelOutput::Bernoulli => 1,
            PixelOutput::Softmax => Self::LEVELS,
        }
    }

    /// log p(x) summed over pixels.
    ///
    /// # Shapes
    /// `params: [B, D, P]`, `x: [B, D]` -> `[B]`
    pub fn log_prob(&self, params: &Tensor, x: &Tensor) -> crate::error::Result<Tensor> {
        let (b, d, p) = params.dims3()?;
        Ok(match self {
            PixelOutput::Bernoulli => {
                bernoulli_log_prob_logits(&params.reshape((b, d))?, x)?.sum(1)?
            }
            PixelOutput::Softmax => crate::nn::ops::categorical_log_prob_levels(
                &params.reshape((b * d, p))?,
                &x.flatten_all()?,
            )?
            .reshape((b, d))?
            .sum(1)?,
        })
    }

    /// Draws a Bernoulli pixel of logit `z` from the uniform `u()` (called only
    /// when the pixel is not `known`); returns the value and its log-probability.
    #[inline]
    pub fn bernoulli(z: f32, known: Option<f32>, u: impl FnOnce() -> f64) -> (f32, f64) {
        let z = z as f64;
        let x = known.map(|v| if v >= 0.5 { 1.0 } else { 0.0 }).unwrap_or_else(|| {
            if u() < 1.0 / (1.0 + (-z).exp()) {
                1.0
            } else {
                0.0
            }
        });
        // log sigma(z) or log(1 - sigma(z)) = -softplus(-z) or -softplus(z)
        let s = if x > 0.5 { -z } else { z };
        (x as f32, -(s.max(0.0) + (-s.abs()).exp().ln_1p()))
    }

    /// Draws one pixel from its parameters (or keeps `known`); returns the
    /// value and its log-probability.
    pub fn draw(&self, p: &[f32], known: Option<f32>, rng: &mut crate::rng::Rng) -> (f32, f64) {
        use rand::Rng as _;
        match self {
            PixelOutput::Bernoulli => Self::bernoulli(p[0], known, || rng.gen::<f64>()),
            PixelOutput::Softmax => {
                let m = p.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
                let w: Vec<f64> = p.iter().map(|&z| (z as f64 - m).exp()).collect();
                let total: f64 = w.iter().sum();
                let k = match known {
                    Some(v) => crate::nn::ops::level_of(v, Self::LEVELS),
                    None => {
                        let u = rng.gen::<f64>() * total;
                        let mut acc = 0.0;
                        w.iter()
                            .position(|&wi| {
                                acc += wi;
                                acc > u
                            })
                            .unwrap_or(p.len() - 1)
                    }
                };
                (k as f32 / (Self::LEVELS - 1) as f32, w[k].ln() - total.ln())
            }
        }
    }
}
