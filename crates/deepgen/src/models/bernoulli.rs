//! Independent Bernoulli pixels, the baseline every model must beat:
//! p(x) = prod_i sigma(l_i)^{x_i} (1 - sigma(l_i))^{1 - x_i}, D parameters.
//!
//! Tensor names: `logits` `[D]`.

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::dist::PixelOutput;
use crate::error::Result;
use crate::models::Known;
use crate::nn::{ops, Params};
use crate::rng::Rng;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BernoulliConfig {
    /// Number of binary variables.
    pub dim: usize,
}

#[derive(Debug, Clone)]
pub struct Bernoulli {
    logits: Tensor,
}

impl Bernoulli {
    pub fn new(p: &mut Params, cfg: &BernoulliConfig, _rng: &mut Rng, dev: &Device) -> Result<Self> {
        Ok(Self { logits: p.zeros("logits", &[cfg.dim], dev)? })
    }

    /// # Shapes
    /// `x: [B, D]` binary -> `[B]` log p(x) in nats.
    pub fn log_prob(&self, x: &Tensor) -> Result<Tensor> {
        let z = self.logits.unsqueeze(0)?.broadcast_as(x.shape())?;
        Ok(ops::bernoulli_log_prob_logits(&z, x)?.sum(1)?)
    }

    /// Independent draws (known values kept); returns `[n, D]` and each row's log p.
    pub fn sample_ar(&self, n: usize, known: Option<&Known>, rng: &mut Rng) -> Result<(Tensor, Vec<f64>)> {
        let z = self.logits.to_vec1::<f32>()?;
        let d = z.len();
        let mut out = Vec::with_capacity(n * d);
        let mut lps = vec![0f64; n];
        for (s, lp) in lps.iter_mut().enumerate() {
            for (i, &zi) in z.iter().enumerate() {
                let (v, l) = PixelOutput::Bernoulli.draw(&[zi], known.and_then(|k| k.get(s, i, d)), rng);
                out.push(v);
                *lp += l;
            }
        }
        Ok((Tensor::from_vec(out, (n, d), self.logits.device())?, lps))
    }
}
