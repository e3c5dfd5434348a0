//! Independent Bernoulli pixels, the baseline every model must beat:
//! p(x) = prod_i sigma(l_i)^{x_i} (1 - sigma(l_i))^{1 - x_i}, D parameters.
//!
//! Tensor names: `logits` `[D]`.

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::nn::{ops, Params};
use crate::rng::{self, Rng};

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

    /// # Shapes
    /// -> `[n, D]` binary draws.
    pub fn sample(&self, n: usize, rng: &mut Rng) -> Result<Tensor> {
        let p = ops::sigmoid(&self.logits)?.to_vec1::<f32>()?;
        let d = p.len();
        let mut out = Vec::with_capacity(n * d);
        for _ in 0..n {
            out.extend(rng::bernoulli(rng, &p));
        }
        Ok(Tensor::from_vec(out, (n, d), self.logits.device())?)
    }
}
