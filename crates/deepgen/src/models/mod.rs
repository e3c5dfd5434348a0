//! Model families, their capabilities (traits) and the registry.
//!
//! One module per family. Each has an `XConfig` (serde, validated) and
//! `X::new(params, cfg, rng, device)`. [`ModelConfig`] is the serde-tagged
//! registry saved in every checkpoint; [`Model`] builds any of them and
//! implements the capability traits by dispatch, so trainers and the CLI never
//! match on the family.

pub mod bernoulli;
pub mod fvsbn;
pub mod made;
pub mod nade;
pub mod pixelcnn;
pub mod pixelrnn;
pub mod rnade;
pub mod vae;

pub use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::nn::Params;
use crate::rng::{self, Rng};

pub use bernoulli::{Bernoulli, BernoulliConfig};
pub use fvsbn::{Fvsbn, FvsbnConfig};
pub use made::{Made, MadeConfig};
pub use nade::{Nade, NadeConfig};
pub use pixelcnn::{PixelCnn, PixelCnnConfig};
pub use pixelrnn::{Cell, PixelRnn, PixelRnnConfig};
pub use rnade::{Rnade, RnadeConfig};
pub use vae::{Likelihood, Vae, VaeConfig};

pub use crate::dist::PixelOutput;

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

/// Values already known, for conditional completion: `values` and
/// `observed` are `[n, D]` row-major; unobserved values are ignored.
#[derive(Debug, Clone)]
pub struct Known {
    pub values: Vec<f32>,
    pub observed: Vec<bool>,
}

impl Known {
    /// The known value of element `i` of example `s` (of `d` values), if observed.
    #[inline]
    pub fn get(&self, s: usize, i: usize, d: usize) -> Option<f32> {
        let k = s * d + i;
        if *self.observed.get(k)? {
            self.values.get(k).copied()
        } else {
            None
        }
    }
}

/// The examples a sequential image sampler is drawing, `[n, D]`, and the
/// log-probability accumulated for each (shared by the PixelCNN and PixelRNN samplers).
pub(crate) struct Canvas<'a> {
    pub x: Vec<f32>,
    pub log_p: Vec<f64>,
    n: usize,
    d: usize,
    known: Option<&'a Known>,
}

impl<'a> Canvas<'a> {
    pub fn new(n: usize, d: usize, known: Option<&'a Known>) -> Self {
        Self { x: vec![0f32; n * d], log_p: vec![0f64; n], n, d, known }
    }

    /// Draws value `i` of every example from its output parameters `params[s]` (or keeps the known value).
    pub fn draw(&mut self, i: usize, params: &[Vec<f32>], out: PixelOutput, rng: &mut Rng) {
        for (s, ps) in params.iter().enumerate().take(self.n) {
            let (v, lp) = out.draw(&ps[..out.params()], self.known.and_then(|k| k.get(s, i, self.d)), rng);
            self.x[s * self.d + i] = v;
            self.log_p[s] += lp;
        }
    }

    pub fn finish(self, dev: &Device) -> Result<(Tensor, Vec<f64>)> {
        Ok((Tensor::from_vec(self.x, (self.n, self.d), dev)?, self.log_p))
    }
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
    Made(MadeConfig),
    Rnade(RnadeConfig),
    #[serde(rename = "pixelcnn")]
    PixelCnn(PixelCnnConfig),
    #[serde(rename = "pixelrnn")]
    PixelRnn(PixelRnnConfig),
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
    ModelInfo { name: "made", summary: "MADE (Germain et al. 2015): masked MLP, order/connectivity-agnostic training, mask ensembles", exact: true, binary: true },
    ModelInfo { name: "rnade", summary: "RNADE (Uria et al. 2013): NADE with mixture-of-Gaussians conditionals for real values", exact: true, binary: false },
    ModelInfo { name: "pixelcnn", summary: "PixelCNN (van den Oord et al. 2016): masked convolutions A then B, residual blocks", exact: true, binary: true },
    ModelInfo { name: "gated-pixelcnn", summary: "gated PixelCNN (van den Oord et al. 2016b): vertical and horizontal stacks, no blind spot", exact: true, binary: true },
    ModelInfo { name: "row-lstm", summary: "PixelRNN Row LSTM (van den Oord et al. 2016): row-by-row LSTM, triangular receptive field", exact: true, binary: true },
    ModelInfo { name: "diagonal-bilstm", summary: "PixelRNN Diagonal BiLSTM (van den Oord et al. 2016): skewed diagonal LSTMs in two directions", exact: true, binary: true },
    ModelInfo { name: "vae", summary: "VAE (Kingma & Welling 2014): ELBO training, importance-weighted log p (Burda et al. 2016)", exact: false, binary: false },
];

impl ModelConfig {
    /// The default configuration of model `name` for examples of `shape`
    /// (`[D]` for vectors, `[1, H, W]` for one-channel images).
    pub fn preset(name: &str, shape: &[usize], binary_data: bool) -> Result<Self> {
        let dim: usize = shape.iter().product();
        let image = || match shape {
            [1, h, w] => Ok((*h, *w)),
            _ => Err(Error::config(format!("the {name} model needs one-channel images (shape [1, H, W]); this data has examples of shape {shape:?}"))),
        };
        Ok(match name {
            "made" => ModelConfig::Made(MadeConfig { dim, hidden: vec![500], connectivity_agnostic: false, order_agnostic: false, masks: 1, mask_seed: 0 }),
            "rnade" => ModelConfig::Rnade(RnadeConfig { dim, hidden: 100, components: 5 }),
            "pixelcnn" | "gated-pixelcnn" => {
                let (height, width) = image()?;
                // The gated layer computes 2C gate maps from a 3x3 vertical and a 1x2 horizontal kernel plus
                // a 2C x 2C link: ~9x the work of a plain bottleneck block at the same C, so 16 maps.
                let gated = name == "gated-pixelcnn";
                ModelConfig::PixelCnn(PixelCnnConfig { height, width, channels: if gated { 16 } else { 32 }, layers: 5, gated, output: PixelOutput::Bernoulli })
            }
            "row-lstm" | "diagonal-bilstm" => {
                let (height, width) = image()?;
                let cell = if name == "row-lstm" { Cell::Row } else { Cell::Diagonal };
                ModelConfig::PixelRnn(PixelRnnConfig { cell, height, width, channels: 32, layers: 2, output: PixelOutput::Bernoulli })
            }
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
            ModelConfig::Made(_) => "made",
            ModelConfig::Rnade(_) => "rnade",
            ModelConfig::PixelCnn(c) if c.gated => "gated-pixelcnn",
            ModelConfig::PixelCnn(_) => "pixelcnn",
            ModelConfig::PixelRnn(c) if c.cell == Cell::Row => "row-lstm",
            ModelConfig::PixelRnn(_) => "diagonal-bilstm",
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
            ModelConfig::Made(c) => c.dim,
            ModelConfig::Rnade(c) => c.dim,
            ModelConfig::PixelCnn(c) => c.height * c.width,
            ModelConfig::PixelRnn(c) => c.height * c.width,
            ModelConfig::Vae(c) => c.dim,
        }
    }

    /// Whether the model needs binary data.
    pub fn needs_binary(&self) -> bool {
        match self {
            ModelConfig::Vae(c) => c.likelihood == Likelihood::Bernoulli,
            ModelConfig::Rnade(_) => false,
            ModelConfig::PixelCnn(c) => c.output == PixelOutput::Bernoulli,
            ModelConfig::PixelRnn(c) => c.output == PixelOutput::Bernoulli,
            _ => true,
        }
    }

    /// Whether the model reads 8-bit grey levels (values k/255 in [0, 1]).
    pub fn needs_grey_levels(&self) -> bool {
        match self {
            ModelConfig::PixelCnn(c) => c.output == PixelOutput::Softmax,
            ModelConfig::PixelRnn(c) => c.output == PixelOutput::Softmax,
            _ => false,
        }
    }

    /// The per-pixel output of the image models.
    pub fn output_mut(&mut self) -> Option<&mut PixelOutput> {
        match self {
            ModelConfig::PixelCnn(c) => Some(&mut c.output),
            ModelConfig::PixelRnn(c) => Some(&mut c.output),
            _ => None,
        }
    }
}

enum Net {
    Bernoulli(Bernoulli),
    Fvsbn(Fvsbn),
    Nade(Nade),
    Made(Made),
    Rnade(Rnade),
    PixelCnn(PixelCnn),
    PixelRnn(PixelRnn),
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
            ModelConfig::Made(c) => Net::Made(Made::new(&mut p, c, &mut r, dev)?),
            ModelConfig::Rnade(c) => Net::Rnade(Rnade::new(&mut p, c, &mut r, dev)?),
            ModelConfig::PixelCnn(c) => Net::PixelCnn(PixelCnn::new(&mut p, c, &mut r, dev)?),
            ModelConfig::PixelRnn(c) => Net::PixelRnn(PixelRnn::new(&mut p, c, &mut r, dev)?),
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

    /// The parameters of every conditional p(x_i | x_<i), `[B, D, P]`, for
    /// the autoregressive families (raster order; MADE: mask set 0): P = 1
    /// logit for binary outputs, 256 logits for grey levels, 3K mixture
    /// parameters for RNADE. `None` for the other families.
    pub fn conditionals(&self, x: &Tensor) -> Option<Result<Tensor>> {
        let un = |t: Result<Tensor>| t.and_then(|t| Ok(t.unsqueeze(2)?));
        match &self.net {
            Net::Fvsbn(m) => Some(un(m.logits(x))),
            Net::Nade(m) => Some(un(m.logits(x))),
            Net::Made(m) => Some(un(m.logits(x))),
            Net::Rnade(m) => Some(m.conditionals(x)),
            Net::PixelCnn(m) => Some(m.conditionals(x)),
            Net::PixelRnn(m) => Some(m.conditionals(x)),
            _ => None,
        }
    }

    /// Sequential sampling for the models with tractable conditionals (all
    /// but the VAE): values in `known` are kept and the others drawn in the
    /// model's order given everything before them, which for the raster
    /// order makes `known` = top half an exact conditional completion.
    /// Returns the examples `[n, D]` and the log-probability (or log-density)
    /// of each, accumulated while sampling.
    pub fn sample_sequential(&self, n: usize, known: Option<&Known>, rng: &mut Rng) -> Result<(Tensor, Vec<f64>)> {
        if let Some(k) = known {
            let d = self.config.dim();
            if k.values.len() != n * d || k.observed.len() != n * d {
                return Err(Error::Shape(format!("completion needs {n} x {d} known values and flags, got {} and {}", k.values.len(), k.observed.len())));
            }
        }
        match &self.net {
            Net::Bernoulli(m) => m.sample_ar(n, known, rng),
            Net::Fvsbn(m) => m.sample_ar(n, known, rng),
            Net::Nade(m) => m.sample_ar(n, known, rng),
            Net::Made(m) => m.sample_ar(n, known, rng),
            Net::Rnade(m) => m.sample_ar(n, known, rng),
            Net::PixelCnn(m) => m.sample_ar(n, known, rng),
            Net::PixelRnn(m) => m.sample_ar(n, known, rng),
            Net::Vae(_) => Err(Error::config("the vae model has no sequential conditionals; completion needs an autoregressive model")),
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
            Net::Made(m) => m.log_prob(x),
            Net::Rnade(m) => m.log_prob(x),
            Net::PixelCnn(m) => m.log_prob(x),
            Net::PixelRnn(m) => m.log_prob(x),
            Net::Vae(m) => m.log_prob(x, rng),
        }
    }
}

impl Sampler for Model {
    fn sample(&self, n: usize, rng: &mut Rng) -> Result<Tensor> {
        match &self.net {
            Net::Vae(m) => m.sample(n, rng),
            _ => Ok(self.sample_sequential(n, None, rng)?.0),
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
            Net::Made(m) => {
                let nll = m.train_log_prob(x, rng)?.neg()?.mean_all()?;
                Ok(Losses { total: nll.clone(), parts: vec![("nll", nll)] })
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
