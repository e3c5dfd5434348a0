//! Model families, their capabilities (traits) and the registry.
//!
//! One module per family. Each has an `XConfig` (serde, validated) and
//! `X::new(params, cfg, rng, device)`. [`ModelConfig`] is the serde-tagged
//! registry saved in every checkpoint; [`Model`] builds any of them and
//! implements the capability traits by dispatch, so trainers and the CLI never
//! match on the family.

pub mod bernoulli;
pub mod fvsbn;
pub mod nade;
pub mod vae;

pub use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::nn::Params;
use crate::rng::{self, Rng};

pub use bernoulli::{Bernoulli, BernoulliConfig};
pub use fvsbn::{Fvsbn, FvsbnConfig};
pub use nade::{Nade, NadeConfig};
pub use vae::{Likelihood, Vae, VaeConfig};

/// Normalised log-density, one value per example, in nats. Models whose
/// density is intractable return a stochastic bound and say so through
/// [`ModelInfo::exact`]; `rng` feeds that estimate and is unused otherwise.
pub trait DensityModel {
    fn log_prob(&self, x: &Tensor, rng: &mut Rng) -> Result<Tensor>;
}

/// Draws new examples with the caller's RNG.
pub trait Sampler {
    fn sample(&self, n: usize, rng: &mut Rng) -> Result<Tensor>;
}

/// Maps examples to a feature or latent space.
pub trait Encoder {
    fn encode(&self, x: &Tensor) -> Result<Tensor>;
}

/// A training loss with named parts (all scalars, batch means).
pub struct Losses {
    pub total: Tensor,
    pub parts: Vec<(&'static str, Tensor)>,
}

/// What the likelihood trainer minimises. For explicit models this is
/// exactly the mean of `-log_prob`, so training and evaluation cannot disagree.
pub trait Objective {
    fn loss(&self, x: &Tensor, rng: &mut Rng) -> Result<Losses>;
}

/// The registry: every model's complete configuration, tagged by `kind`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ModelConfig {
    Bernoulli(BernoulliConfig),
    Fvsbn(FvsbnConfig),
    Nade(NadeConfig),
    Vae(VaeConfig),
}

/// What `deepgen models` prints about a family.
pub struct ModelInfo {
    pub name: &'static str,
    pub summary: &'static str,
    /// log_prob is exact (true) or an importance-weighted bound (false).
    pub exact: bool,
    /// Needs binary data.
    pub binary: bool,
}

pub const MODELS: &[ModelInfo] = &[
    ModelInfo { name: "bernoulli", summary: "independent Bernoulli pixels (baseline)", exact: true, binary: true },
    ModelInfo { name: "fvsbn", summary: "fully visible sigmoid belief net: chain rule, logistic conditionals", exact: true, binary: true },
    ModelInfo { name: "nade", summary: "NADE (Larochelle & Murray 2011): shared weights, O(DH) recurrence", exact: true, binary: true },
    ModelInfo { name: "vae", summary: "VAE (Kingma & Welling 2014): ELBO training, importance-weighted log p (Burda et al. 2016)", exact: false, binary: false },
];

impl ModelConfig {
    /// The default configuration of model `name` for data of `dim` values.
    pub fn preset(name: &str, dim: usize, binary_data: bool) -> Result<Self> {
        Ok(match name {
            "bernoulli" => ModelConfig::Bernoulli(BernoulliConfig { dim }),
            "fvsbn" => ModelConfig::Fvsbn(FvsbnConfig { dim }),
            "nade" => ModelConfig::Nade(NadeConfig { dim, hidden: 500 }),
            "vae" => ModelConfig::Vae(VaeConfig {
                dim,
                hidden: vec![512, 512],
                latent: 32,
                likelihood: if binary_data { Likelihood::Bernoulli } else { Likelihood::Gaussian },
                iw_samples: 100,
            }),
            _ => {
                let names: Vec<&str> = MODELS.iter().map(|m| m.name).collect();
                return Err(Error::config(format!("unknown model `{name}` (available: {})", names.join(", "))));
            }
        })
    }

    pub fn name(&self) -> &'static str {
        match self {
            ModelConfig::Bernoulli(_) => "bernoulli",
            ModelConfig::Fvsbn(_) => "fvsbn",
            ModelConfig::Nade(_) => "nade",
            ModelConfig::Vae(_) => "vae",
        }
    }

    pub fn info(&self) -> &'static ModelInfo {
        let n = self.name();
        MODELS.iter().find(|m| m.name == n).unwrap_or(&MODELS[0])
    }

    /// The data dimension the model was built for.
    pub fn dim(&self) -> usize {
        match self {
            ModelConfig::Bernoulli(c) => c.dim,
            ModelConfig::Fvsbn(c) => c.dim,
            ModelConfig::Nade(c) => c.dim,
            ModelConfig::Vae(c) => c.dim,
        }
    }

    /// Whether the model needs binary data.
    pub fn needs_binary(&self) -> bool {
        match self {
            ModelConfig::Vae(c) => c.likelihood == Likelihood::Bernoulli,
            _ => true,
        }
    }
}

enum Net {
    Bernoulli(Bernoulli),
    Fvsbn(Fvsbn),
    Nade(Nade),
    Vae(Vae),
}

/// Any model of the registry with its parameters.
pub struct Model {
    pub config: ModelConfig,
    pub params: Params,
    net: Net,
}

impl Model {
    /// Builds a model, initialising its parameters from `seed`.
    pub fn new(config: &ModelConfig, seed: u64, dev: &Device) -> Result<Self> {
        if config.dim() == 0 {
            return Err(Error::config("model dimension must be positive"));
        }
        let mut p = Params::new();
        let mut r = rng::derived(seed, "init", 0);
        let net = match config {
            ModelConfig::Bernoulli(c) => Net::Bernoulli(Bernoulli::new(&mut p, c, &mut r, dev)?),
            ModelConfig::Fvsbn(c) => Net::Fvsbn(Fvsbn::new(&mut p, c, &mut r, dev)?),
            ModelConfig::Nade(c) => {
                if c.hidden == 0 {
                    return Err(Error::config("nade: hidden must be positive"));
                }
                Net::Nade(Nade::new(&mut p, c, &mut r, dev)?)
            }
            ModelConfig::Vae(c) => Net::Vae(Vae::new(&mut p, c, &mut r, dev)?),
        };
        Ok(Self { config: config.clone(), params: p, net })
    }

    pub fn name(&self) -> &'static str {
        self.config.name()
    }

    /// The VAE, when this model is one (reconstructions, decoder means).
    pub fn as_vae(&self) -> Option<&Vae> {
        match &self.net {
            Net::Vae(v) => Some(v),
            _ => None,
        }
    }

    /// Logits of p(x_i = 1 | x_<i) for the autoregressive families.
    pub fn conditionals(&self, x: &Tensor) -> Option<Result<Tensor>> {
        match &self.net {
            Net::Fvsbn(m) => Some(m.logits(x)),
            Net::Nade(m) => Some(m.logits(x)),
            _ => None,
        }
    }

    /// Checks that data of `dim` values fits this model.
    pub fn check_dim(&self, dim: usize, what: &str) -> Result<()> {
        if dim != self.config.dim() {
            return Err(Error::Shape(format!("{what} has {dim} values per example, the {} model expects {}", self.name(), self.config.dim())));
        }
        Ok(())
    }
}

impl DensityModel for Model {
    fn log_prob(&self, x: &Tensor, rng: &mut Rng) -> Result<Tensor> {
        match &self.net {
            Net::Bernoulli(m) => m.log_prob(x),
            Net::Fvsbn(m) => m.log_prob(x),
            Net::Nade(m) => m.log_prob(x),
            Net::Vae(m) => m.log_prob(x, rng),
        }
    }
}

impl Sampler for Model {
    fn sample(&self, n: usize, rng: &mut Rng) -> Result<Tensor> {
        match &self.net {
            Net::Bernoulli(m) => m.sample(n, rng),
            Net::Fvsbn(m) => m.sample(n, rng),
            Net::Nade(m) => m.sample(n, rng),
            Net::Vae(m) => m.sample(n, rng),
        }
    }
}

impl Objective for Model {
    fn loss(&self, x: &Tensor, rng: &mut Rng) -> Result<Losses> {
        match &self.net {
            Net::Vae(m) => {
                let e = m.elbo(x, rng)?;
                let recon = e.recon.mean_all()?;
                let kl = e.kl.mean_all()?;
                let total = (&recon + &kl)?;
                Ok(Losses { total, parts: vec![("recon", recon), ("kl", kl)] })
            }
            _ => {
                let nll = self.log_prob(x, rng)?.neg()?.mean_all()?;
                Ok(Losses { total: nll.clone(), parts: vec![("nll", nll)] })
            }
        }
    }
}

impl Encoder for Model {
    fn encode(&self, x: &Tensor) -> Result<Tensor> {
        match &self.net {
            Net::Vae(m) => Ok(m.encode(x)?.0),
            _ => Err(Error::config(format!("the {} model has no encoder", self.name()))),
        }
    }
}
