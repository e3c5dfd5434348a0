//! Evaluation: negative log-likelihood in nats and bits per dimension.

use candle_core::Device;

use crate::data::Dataset;
use crate::error::{Error, Result};
pub mod anomaly;
pub mod features;
pub mod modes;
pub mod quality;
pub mod scores;

use crate::models::{DensityModel, Model};
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
    model.check_dim(data.dim(), &data.source)?;
    let dev = model.params.vars().next().map(|(_, v)| v.device().clone()).unwrap_or(Device::Cpu);
    let mut out = Vec::with_capacity(data.n);
    let idx: Vec<usize> = (0..data.n).collect();
    for chunk in idx.chunks(batch.max(1)) {
        let x = data.batch(chunk, &dev)?;
        let lp = match model.as_classifier() {
            // The classifier's "likelihood" is log p(y | x) of the labels.
            Some(c) => {
                let labels = data.labels.as_ref().ok_or_else(|| Error::config(format!("{}: the classifier needs labelled data", data.source)))?;
                let l: Vec<u32> = chunk.iter().map(|&i| labels[i]).collect();
                c.log_prob_of(&x, &l)?
            }
            None => model.log_prob(&x, rng)?,
        }
        .to_vec1::<f32>()?;
        out.extend(lp.into_iter().map(|v| v as f64));
    }
    if let Some(i) = out.iter().position(|v| !v.is_finite()) {
        return Err(Error::config(format!("{}: log p of example {i} is not finite ({})", data.source, out[i])));
    }
    Ok(NllReport::new(out, data.dim()))
}
