//! The adversarial autoencoder (Makhzani et al. 2016): a deterministic
//! encoder q(z|x) and a decoder p(x|z) trained on reconstruction, while a
//! discriminator on the code pushes the aggregated posterior q(z) towards a
//! prior p(z) that only needs to be *sampled*: a Gaussian, a mixture of 10
//! Gaussians, a swiss roll, or the rows of any file of draws.
//!
//! Training is the adversarial trainer's: the critic separates prior draws
//! (real) from codes of data (fake); the generator step updates encoder and
//! decoder on reconstruction + adversarial loss together (the paper
//! alternates a reconstruction phase and a regularisation phase; one summed
//! update per step is the common single-optimiser form of the same objective).

use candle_core::{Device, Tensor};
use rand::Rng as _;
use serde::{Deserialize, Serialize};

use super::gan::GanLoss;
use super::{Adversarial, Side};
use crate::data::DataSpec;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::models::family::net;
use crate::models::family::*;
use crate::models::{Encoder, ModelFlags, Sampler};
use crate::nn::ops::bernoulli_log_prob_logits;
use crate::nn::stack::{Init, Stack};
use crate::nn::Params;
use crate::recipe::{AdversarialConfig, Schedule, TrainConfig};
use crate::rng::{self, Rng};

/// The prior the codes are matched to.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub enum Prior {
    /// N(0, I).
    Gaussian,
    /// 10 equally weighted 2-D Gaussians, means on a circle of radius 4, std 0.5 (the paper's Fig.
    /// 4 layout, isotropic).
    Mixture10,
    /// A 2-D swiss roll: angle t = 1.5 pi (1 + 2u), point (t cos t, t sin t) / 3 plus N(0, 0.05^2)
    /// noise.
    SwissRoll,
    /// Uniform draws from the rows of a data file (`csv:FILE` or `npy:FILE`) with one column per
    /// latent dimension.
    Samples(String),
}

impl std::str::FromStr for Prior {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "gaussian" => Prior::Gaussian,
            "mixture10" => Prior::Mixture10,
            "swiss-roll" => Prior::SwissRoll,
            s if s.starts_with("csv:") || s.starts_with("npy:") => Prior::Samples(s.to_string()),
            _ => {
                return Err(Error::config(format!(
                    "unknown prior `{s}` (expected gaussian, \
                mixture10, swiss-roll, csv:FILE or npy:FILE)"
                )))
            }
        })
    }
}

impl Prior {
    /// The mixture's mean of component k (for labelled plots and tests).
    pub fn mixture_mean(k: usize) -> [f32; 2] {
        let a = 2.0 * std::f32::consts::PI * k as f32 / 10.0;
        [4.0 * a.cos(), 4.0 * a.sin()]
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Recon {
    /// Binary cross-entropy against values in [0, 1] (images).
    Bernoulli,
    /// Squared error (real values).
    Gaussian,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AaeConfig {
    pub shape: Vec<usize>,
    pub hidden: Vec<usize>,
    pub latent: usize,
    pub d_hidden: Vec<usize>,
    pub prior: Prior,
    pub recon: Recon,
    /// Weight of the adversarial term in the encoder's loss (reconstruction has weight 1).
    pub adv_weight: f64,
}

impl AaeConfig {
    pub fn dim(&self) -> usize {
        self.shape.iter().product()
    }
}

pub struct Aae {
    pub cfg: AaeConfig,
    pub enc: Stack,
    pub dec: Stack,
    pub d: Stack,
    /// Draws of a file prior, `[n, latent]` row-major.
    samples: Vec<f32>,
    dev: Device,
}

impl Aae {
    pub fn new(p: &mut Params, cfg: &AaeConfig, rng: &mut Rng, dev: &Device) -> Result<Self> {
        if cfg.latent == 0 {
            return Err(Error::config("aae: --latent must be positive"));
        }
        if matches!(cfg.prior, Prior::Mixture10 | Prior::SwissRoll) && cfg.latent != 2 {
            return Err(Error::config(format!(
                "aae: the {:?} prior is 2-D; pass --latent \
                2",
                cfg.prior
            )));
        }
        let samples = match &cfg.prior {
            Prior::Samples(spec) => {
                let d = spec.parse::<DataSpec>()?.load(0)?;
                if d.dim() != cfg.latent {
                    return Err(Error::Shape(format!(
                        "{}: prior draws have {} values each, the \
                        latent has {}",
                        d.source,
                        d.dim(),
                        cfg.latent
                    )));
                }
                d.x
            }
            _ => vec![],
        };
        let mut enc = Stack::new("enc", cfg.dim(), dev);
        for (i, &h) in cfg.hidden.iter().enumerate() {
            enc.dense(p, &format!("fc{i}"), h, true, Init::Default, rng)?;
        }
        enc.dense(p, "z", cfg.latent, false, Init::Default, rng)?;
        let mut dec = Stack::new("dec", cfg.latent, dev);
        for (i, &h) in cfg.hidden.iter().rev().enumerate() {
            dec.dense(p, &format!("fc{i}"), h, true, Init::Default, rng)?;
        }
        dec.dense(p, "x", cfg.dim(), false, Init::Default, rng)?;
        let mut d = Stack::new("d", cfg.latent, dev);
        for (i, &h) in cfg.d_hidden.iter().enumerate() {
            d.dense(p, &format!("fc{i}"), h, true, Init::Default, rng)?;
        }
        d.dense(p, "v", 1, false, Init::Default, rng)?;
        Ok(Self { cfg: cfg.clone(), enc, dec, d, samples, dev: dev.clone() })
    }

    /// `n` draws from the prior, `[n, latent]`.
    pub fn prior_sample(&self, n: usize, rng: &mut Rng) -> Result<Tensor> {
        let l = self.cfg.latent;
        let v: Vec<f32> = match &self.cfg.prior {
            Prior::Gaussian => return Ok(rng::randn(rng, &[n, l], &self.dev)?),
            Prior::Mixture10 => {
                let e = rng::randn(rng, &[n, 2], &self.dev)?.flatten_all()?.to_vec1::<f32>()?;
                (0..n)
                    .flat_map(|i| {
                        let m = Prior::mixture_mean(rng.gen_range(0..10));
                        [m[0] + 0.5 * e[2 * i], m[1] + 0.5 * e[2 * i + 1]]
                    })
                    .collect()
            }
            Prior::SwissRoll => {
                let e = rng::randn(rng, &[n, 2], &self.dev)?.flatten_all()?.to_vec1::<f32>()?;
                (0..n)
                    .flat_map(|i| {
                        let t = 1.5 * std::f32::consts::PI * (1.0 + 2.0 * rng.gen::<f32>());
                        [
                            t * t.cos() / 3.0 + 0.05 * e[2 * i],
                            t * t.sin() / 3.0 + 0.05 * e[2 * i + 1],
                        ]
                    })
                    .collect()
            }
            Prior::Samples(_) => {
                let rows = self.samples.len() / l;
                (0..n)
                    .flat_map(|_| {
                        let r = rng.gen_range(0..rows);
                        self.samples[r * l..(r + 1) * l].to_vec()
                    })
                    .collect()
            }
        };
        Ok(Tensor::from_vec(v, (n, l), &self.dev)?)
    }

    /// The code of each example, `[B, latent]`.
    pub fn encode(&self, x: &Tensor) -> Result<Tensor> {
        self.enc.forward(x, true)
    }

    /// The decoder's mean, `[B, D]` (sigmoid of the logits for Bernoulli reconstruction).
    pub fn decode(&self, z: &Tensor) -> Result<Tensor> {
        let y = self.dec.forward(z, true)?;
        Ok(match self.cfg.recon {
            Recon::Bernoulli => crate::nn::ops::sigmoid(&y)?,
            Recon::Gaussian => y,
        })
    }

    /// Reconstruction loss per batch (nats for Bernoulli, half squared error for Gaussian), mean
    /// over examples.
    fn recon_loss(&self, x: &Tensor, z: &Tensor) -> Result<Tensor> {
        let y = self.dec.forward(z, true)?;
        Ok(match self.cfg.recon {
            Recon::Bernoulli => bernoulli_log_prob_logits(&y, x)?.sum(1)?.mean_all()?.neg()?,
            Recon::Gaussian => ((y - x)?.sqr()?.sum(1)? * 0.5)?.mean_all()?,
        })
    }

    pub fn sample(&self, n: usize, rng: &mut Rng) -> Result<Tensor> {
        self.decode(&self.prior_sample(n, rng)?)
    }
}

impl Adversarial for Aae {
    fn d_weights(&self) -> Vec<(String, candle_core::Var)> {
        self.d.names.iter().cloned().zip(self.d.vars.iter().cloned()).collect()
    }
    fn g_names(&self) -> Vec<String> {
        self.enc.names.iter().chain(self.dec.names.iter()).cloned().collect()
    }
    fn loss(&self) -> GanLoss {
        GanLoss::NonSaturating
    }
    fn real(&self, x: &Tensor, _labels: Option<&[u32]>, rng: &mut Rng) -> Result<Side> {
        Ok(Side { x: self.prior_sample(x.dim(0)?, rng)?, cond: None, codes: None })
    }
    fn fake(&self, x: &Tensor, _labels: Option<&[u32]>, _rng: &mut Rng) -> Result<Side> {
        Ok(Side { x: self.encode(x)?, cond: None, codes: None })
    }
    fn critic(&self, s: &Side, ws: &[Tensor]) -> Result<(Tensor, Option<Tensor>)> {
        Ok((self.d.forward_with(&s.x, ws, true, false)?.squeeze(1)?, None))
    }
    fn generator_extra(
        &self,
        x: &Tensor,
        fake: &Side,
        _q: Option<&Tensor>,
    ) -> Result<Vec<(&'static str, Tensor)>> {
        Ok(vec![("recon", self.recon_loss(x, &fake.x)?)])
    }
    fn adv_weight(&self) -> f64 {
        self.cfg.adv_weight
    }
}

impl Family for AaeConfig {
    const MODELS: &'static [ModelInfo] = &[ModelInfo {
        name: "aae",
        summary: "adversarial autoencoder (Makhzani et al. 2016): codes matched to a sampled prior",
        density: Density::None,
        training: Training::Adversarial,
        sampler: true,
        completion: false,
        encoder: true,
        features: Some("the encoder's mean code"),
        labels: Labels::Unused,
        scores: &[ScoreKind::Recon],
        data: "vectors, 2-D toy sets and flattened images (MLP players)",
        flags: &["hidden", "latent", "prior", "d_hidden"],
    }];

    fn preset(_name: &str, shape: &[usize], unit_data: bool) -> Result<Self> {
        Ok(Self {
            shape: shape.to_vec(),
            hidden: vec![512, 512],
            latent: 2,
            d_hidden: vec![512, 512],
            prior: Prior::Gaussian,
            recon: if unit_data { Recon::Bernoulli } else { Recon::Gaussian },
            adv_weight: 1.0,
        })
    }

    /// Adam(1e-3, beta1 0.5) for the autoencoder, the critic at 2e-4; on the
    /// 2-D toy sets batch 512 and a cosine schedule, as the toy GANs.
    fn recipe(_name: &str, shape: &[usize]) -> TrainConfig {
        let toy = is_toy(shape);
        let mut t = TrainConfig {
            steps: 3000,
            batch_size: if toy { 512 } else { 128 },
            ..TrainConfig::default()
        };
        t.adversarial = Some(AdversarialConfig { d_lr: 2e-4, ..AdversarialConfig::default() });
        if toy {
            t.schedule = Schedule::Cosine;
        }
        t.optimizer.beta1 = 0.5;
        t
    }

    fn name(&self) -> &'static str {
        "aae"
    }

    fn dim(&self) -> usize {
        AaeConfig::dim(self)
    }

    fn needs(&self) -> Needs {
        Needs { binary: false, grey_levels: false }
    }

    fn configure(&mut self, flags: &ModelFlags, _data: &Dataset, _seed: u64) -> Result<()> {
        if let Some(h) = &flags.hidden {
            self.hidden = width_list("--hidden", h)?;
        }
        if let Some(h) = &flags.d_hidden {
            self.d_hidden = width_list("--d-hidden", h)?;
        }
        self.latent = flags.latent.unwrap_or(self.latent);
        if let Some(p) = &flags.prior {
            self.prior = p.parse()?;
        }
        Ok(())
    }

    fn build(&self, p: &mut Params, rng: &mut Rng, dev: &Device) -> Result<Box<dyn Net>> {
        Ok(Box::new(Aae::new(p, self, rng, dev)?))
    }
}

net!(Aae {
    density: no,
    sampler: yes,
    sequential: no,
    encoder: yes,
    features: yes,
    objective: no,
    adversarial: yes,
    translator: no,
});

impl Sampler for Aae {
    fn sample(&self, n: usize, rng: &mut Rng) -> Result<Tensor> {
        Aae::sample(self, n, rng)
    }
}

/// The deterministic code.
impl Encoder for Aae {
    fn encode(&self, x: &Tensor) -> Result<Tensor> {
        Aae::encode(self, x)
    }
}

impl Features for Aae {
    fn features(&self, x: &Tensor) -> Result<Tensor> {
        Aae::encode(self, x)
    }
}
