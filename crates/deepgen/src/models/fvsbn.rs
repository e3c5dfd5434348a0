//! Fully visible sigmoid belief network (Neal 1992; Frey 1998): the chain rule
//! p(x) = prod_i p(x_i | x_<i) with each conditional a logistic regression on
//! all earlier pixels, p(x_i = 1 | x_<i) = sigma(a_i + sum_{j<i} W_ji x_j).
//! O(D^2) parameters, no hidden units; pixel order row-major.
//!
//! Tensor names: `W` `[D, D]` (row j = input pixel, column i = conditional;
//! only the strictly upper triangle j < i is used: the mask is applied in
//! `forward`, never written into the weights), `a` `[D]`.

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::data::Dataset;
use crate::dist::PixelOutput;
use crate::error::Result;
use crate::models::family::*;
use crate::models::family::{explicit_sequential, net};
use crate::models::Known;
use crate::models::ModelFlags;
use crate::nn::{ops, Params};
use crate::recipe::TrainConfig;
use crate::rng::Rng;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FvsbnConfig {
    pub dim: usize,
}

#[derive(Debug, Clone)]
pub struct Fvsbn {
    w: Tensor,
    a: Tensor,
    /// mask[j, i] = 1 where j < i.
    mask: Tensor,
    dim: usize,
}

impl Fvsbn {
    pub fn new(p: &mut Params, cfg: &FvsbnConfig, rng: &mut Rng, dev: &Device) -> Result<Self> {
        let d = cfg.dim;
        let w = p.uniform_fan_in("W", &[d, d], d, rng, dev)?;
        let a = p.zeros("a", &[d], dev)?;
        let m: Vec<f32> = (0..d * d).map(|k| if k / d < k % d { 1.0 } else { 0.0 }).collect();
        let mask = Tensor::from_vec(m, (d, d), dev)?;
        Ok(Self { w, a, mask, dim: d })
    }

    /// Logits of every conditional p(x_i = 1 | x_<i).
    ///
    /// # Shapes
    /// `x: [B, D]` -> `[B, D]`
    pub fn logits(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.matmul(&(&self.w * &self.mask)?)?.broadcast_add(&self.a)?)
    }

    /// # Shapes
    /// `x: [B, D]` -> `[B]`
    pub fn log_prob(&self, x: &Tensor) -> Result<Tensor> {
        Ok(ops::bernoulli_log_prob_logits(&self.logits(x)?, x)?.sum(1)?)
    }

    /// Ancestral sampling, one pixel at a time (plain loops: D steps of a dot
    /// product); known values are kept. Returns `[n, D]` and each row's log p.
    pub fn sample_ar(
        &self,
        n: usize,
        known: Option<&Known>,
        rng: &mut Rng,
    ) -> Result<(Tensor, Vec<f64>)> {
        let d = self.dim;
        let w = (&self.w * &self.mask)?.flatten_all()?.to_vec1::<f32>()?;
        let a = self.a.to_vec1::<f32>()?;
        let mut out = vec![0f32; n * d];
        let mut lps = vec![0f64; n];
        for s in 0..n {
            let x = &mut out[s * d..(s + 1) * d];
            for i in 0..d {
                let z: f32 = a[i] + (0..i).map(|j| x[j] * w[j * d + i]).sum::<f32>();
                let (v, l) =
                    PixelOutput::Bernoulli.draw(&[z], known.and_then(|k| k.get(s, i, d)), rng);
                x[i] = v;
                lps[s] += l;
            }
        }
        Ok((Tensor::from_vec(out, (n, d), self.a.device())?, lps))
    }
}

impl Family for FvsbnConfig {
    const MODELS: &'static [ModelInfo] = &[ModelInfo {
        name: "fvsbn",
        summary: "fully visible sigmoid belief net: chain rule, logistic conditionals",
        density: Density::Exact,
        training: Training::Likelihood,
        sampler: true,
        completion: true,
        encoder: false,
        features: None,
        labels: Labels::Unused,
        scores: DENSITY_SCORES,
        data: "binary",
        flags: &[],
    }];

    fn preset(_name: &str, shape: &[usize], _unit_data: bool) -> Result<Self> {
        Ok(Self { dim: shape.iter().product() })
    }

    /// The shallow model needs large steps (measured on MNIST, 2,000 steps:
    /// 140 nats at 1e-3, 108 at 0.01).
    fn recipe(_name: &str, _shape: &[usize]) -> TrainConfig {
        TrainConfig { lr: 0.01, ..TrainConfig::default() }
    }

    fn name(&self) -> &'static str {
        "fvsbn"
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn needs(&self) -> Needs {
        Needs { binary: true, grey_levels: false }
    }

    fn configure(&mut self, _flags: &ModelFlags, _data: &Dataset, _seed: u64) -> Result<()> {
        Ok(())
    }

    fn build(&self, p: &mut Params, rng: &mut Rng, dev: &Device) -> Result<Box<dyn Net>> {
        Ok(Box::new(Fvsbn::new(p, self, rng, dev)?))
    }
}

net!(Fvsbn {
    density: yes,
    sampler: yes,
    sequential: yes,
    encoder: no,
    features: no,
    objective: yes,
    adversarial: no,
    translator: no,
});

explicit_sequential!(Fvsbn { conditionals: logits(logits), objective: nll });
