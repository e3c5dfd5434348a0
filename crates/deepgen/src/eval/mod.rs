//! Evaluation: negative log-likelihood in nats and bits per dimension.

use crate::data::Dataset;
use crate::error::Result;
pub mod anomaly;
pub mod assembly;
pub mod captions;
pub mod features;
pub mod modes;
pub mod ms_ssim;
pub mod quality;
pub mod scores;
pub mod swd;

use crate::models::Model;
use crate::rng::Rng;

/// Per-example log-likelihoods and their summary.
#[derive(Debug, Clone)]
pub struct NllReport {
    /// log p(x) in nats, one per example.
    pub log_prob: Vec<f64>,
    /// Mean negative log-likelihood in nats.
    pub nats: f64,
    /// The same in bits per dimension: nats / (D ln 2).
    pub bits_per_dim: f64,
    pub dim: usize,
}

impl NllReport {
    pub fn new(log_prob: Vec<f64>, dim: usize) -> Self {
        let nats = -log_prob.iter().sum::<f64>() / log_prob.len().max(1) as f64;
        Self { log_prob, nats, bits_per_dim: nats / (dim as f64 * std::f64::consts::LN_2), dim }
    }

    /// Bits per dimension of one example's log p.
    pub fn bpd(&self, log_prob: f64) -> f64 {
        -log_prob / (self.dim as f64 * std::f64::consts::LN_2)
    }

    /// Adds `delta` nats to every log p (the log-determinant of a data transform).
    pub fn shifted(self, delta: f64) -> Self {
        Self::new(self.log_prob.into_iter().map(|v| v + delta).collect(), self.dim)
    }
}

/// log p(x) of every example of `data`, in batches of `batch`.
pub fn nll(model: &Model, data: &Dataset, batch: usize, rng: &mut Rng) -> Result<NllReport> {
    Ok(NllReport::new(model.log_probs(data, batch, rng)?, data.dim()))
}
