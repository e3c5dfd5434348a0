//! Model families, their capabilities (traits) and the registry.
//!
//! One module per family. Each has an `XConfig` (serde, validated) and
//! `X::new(params, cfg, rng, device)`. [`ModelConfig`] is the serde-tagged
//! registry saved in every checkpoint; [`Model`] builds any of them and
//! implements the capability traits by dispatch, so trainers and the CLI never
//! match on the family.

pub mod aae;
pub mod bernoulli;
pub mod classifier;
pub mod fvsbn;
pub mod gan;
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

pub use aae::{Aae, AaeConfig, Prior, Recon};
pub use bernoulli::{Bernoulli, BernoulliConfig};
pub use classifier::{Classifier, ClassifierConfig};
pub use fvsbn::{Fvsbn, FvsbnConfig};
pub use gan::{Arch, Divergence, Gan, GanConfig, GanLoss, GenOutput, Noise};
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

/// One side of an adversarial game, as the critic sees it: examples (data
/// rows, or codes for the AAE), the conditioning given to the critic
/// (cGAN one-hot labels) and the InfoGAN codes the generator was given.
#[derive(Clone)]
pub struct Side {
    pub x: Tensor,
    pub cond: Option<Tensor>,
    pub codes: Option<Tensor>,
}

/// Two players, for [`crate::train::AdversarialTrainer`]: the model says what
/// is real, what is generated and how the critic scores them under any
/// weights (its own, or the unrolled ones); the trainer owns the loop,
/// the two optimisers, n_critic, penalties, clipping and unrolling.
pub trait Adversarial {
    /// The critic's weights, in the order [`Adversarial::critic`] takes them.
    fn d_weights(&self) -> Vec<(String, candle_core::Var)>;
    /// Names of the generator-side parameters (the second optimiser's).
    fn g_names(&self) -> Vec<String>;
    fn loss(&self) -> gan::GanLoss;
    /// What the critic should call real, for the data batch `x`.
    fn real(&self, x: &Tensor, labels: Option<&[u32]>, rng: &mut Rng) -> Result<Side>;
    /// What the generator makes (differentiable in its parameters), for a batch like `x`.
    fn fake(&self, x: &Tensor, labels: Option<&[u32]>, rng: &mut Rng) -> Result<Side>;
    /// The critic's raw outputs `[B]` (and InfoGAN's Q head) under weights `ws`.
    fn critic(&self, s: &Side, ws: &[Tensor]) -> Result<(Tensor, Option<Tensor>)>;
    /// InfoGAN: (-E log Q(c | x), the lower bound on I(c; G(z, c))), from the Q head's output.
    fn info_loss(&self, q: &Tensor, codes: &Tensor) -> Result<Option<(Tensor, Tensor)>>;
    /// Extra generator-side losses (the AAE's reconstruction), named.
    fn generator_extra(&self, x: &Tensor, fake: &Side) -> Result<Vec<(&'static str, Tensor)>>;
    fn info_weight(&self) -> f64;
    /// Weight of the adversarial term in the generator's loss.
    fn adv_weight(&self) -> f64 {
        1.0
    }
    /// PacGAN: how many examples the critic judges at once (its output has `B / pack` rows).
    fn pack(&self) -> usize {
        1
    }
    /// Called after every generator update (the GAN's weight average, `--g-ema`).
    fn after_generator_step(&self) -> Result<()> {
        Ok(())
    }
    /// Refuses training data the game cannot use (a conditional GAN's unlabelled or out-of-range data).
    fn check_data(&self, _data: &crate::data::Dataset) -> Result<()> {
        Ok(())
    }
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
    /// The loss of a batch with its labels (when the data has them): the
    /// classifier's -log p(y | x); every other model ignores them.
    fn loss_labelled(&self, x: &Tensor, _labels: Option<&[u32]>, rng: &mut Rng) -> Result<Losses> {
        self.loss(x, rng)
    }
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
    Gan(GanConfig),
    Aae(AaeConfig),
    Classifier(ClassifierConfig),
}

/// What `deepgen models` prints about a family.
pub struct ModelInfo {
    pub name: &'static str,
    pub summary: &'static str,
    /// log_prob is exact (true) or an importance-weighted bound (false).
    pub exact: bool,
    /// Needs binary data.
    pub binary: bool,
    /// Has a log-density (exact or a bound).
    pub density: bool,
}

pub const MODELS: &[ModelInfo] = &[
    ModelInfo { name: "bernoulli", summary: "independent Bernoulli pixels (baseline)", exact: true, binary: true, density: true },
    ModelInfo { name: "fvsbn", summary: "fully visible sigmoid belief net: chain rule, logistic conditionals", exact: true, binary: true, density: true },
    ModelInfo { name: "nade", summary: "NADE (Larochelle & Murray 2011): shared weights, O(DH) recurrence", exact: true, binary: true, density: true },
    ModelInfo { name: "made", summary: "MADE (Germain et al. 2015): masked MLP, order/connectivity-agnostic training, mask ensembles", exact: true, binary: true, density: true },
    ModelInfo { name: "rnade", summary: "RNADE (Uria et al. 2013): NADE with mixture-of-Gaussians conditionals for real values", exact: true, binary: false, density: true },
    ModelInfo { name: "pixelcnn", summary: "PixelCNN (van den Oord et al. 2016): masked convolutions A then B, residual blocks", exact: true, binary: true, density: true },
    ModelInfo { name: "gated-pixelcnn", summary: "gated PixelCNN (van den Oord et al. 2016b): vertical and horizontal stacks, no blind spot", exact: true, binary: true, density: true },
    ModelInfo { name: "row-lstm", summary: "PixelRNN Row LSTM (van den Oord et al. 2016): row-by-row LSTM, triangular receptive field", exact: true, binary: true, density: true },
    ModelInfo { name: "diagonal-bilstm", summary: "PixelRNN Diagonal BiLSTM (van den Oord et al. 2016): skewed diagonal LSTMs in two directions", exact: true, binary: true, density: true },
    ModelInfo { name: "vae", summary: "VAE (Kingma & Welling 2014): ELBO training, importance-weighted log p (Burda et al. 2016)", exact: false, binary: false, density: true },
    ModelInfo { name: "gan", summary: "GAN (Goodfellow et al. 2014): MLP players, --loss minimax or non-saturating", exact: false, binary: false, density: false },
    ModelInfo { name: "dcgan", summary: "DCGAN (Radford et al. 2016): transposed/strided convolutions, batch norm, LeakyReLU", exact: false, binary: false, density: false },
    ModelInfo { name: "cgan", summary: "conditional GAN (Mirza & Osindero 2014): one-hot labels to both players; sample --class K", exact: false, binary: false, density: false },
    ModelInfo { name: "infogan", summary: "InfoGAN (Chen et al. 2016): categorical + continuous codes, Q head, mutual-information bound", exact: false, binary: false, density: false },
    ModelInfo { name: "fgan", summary: "f-GAN (Nowozin et al. 2016): --divergence kl, reverse-kl, js, pearson, hellinger or gan", exact: false, binary: false, density: false },
    ModelInfo { name: "wgan", summary: "Wasserstein GAN (Arjovsky et al. 2017): weight clipping, n_critic 5, W1 estimate logged", exact: false, binary: false, density: false },
    ModelInfo { name: "wgan-gp", summary: "WGAN-GP (Gulrajani et al. 2017): gradient penalty (second-order gradients)", exact: false, binary: false, density: false },
    ModelInfo { name: "unrolled-gan", summary: "Unrolled GAN (Metz et al. 2017): generator loss through K differentiable critic updates", exact: false, binary: false, density: false },
    ModelInfo { name: "aae", summary: "adversarial autoencoder (Makhzani et al. 2016): codes matched to a sampled prior", exact: false, binary: false, density: false },
    ModelInfo { name: "classifier", summary: "digit classifier p(y|x) for FID-on-MNIST, Inception score and mode counts (not generative; needs labels)", exact: false, binary: false, density: false },
];

/// Names of the adversarial models (trained by the adversarial trainer).
pub const ADVERSARIAL: &[&str] = &["gan", "dcgan", "cgan", "infogan", "fgan", "wgan", "wgan-gp", "unrolled-gan", "aae"];

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
            "gan" | "dcgan" | "cgan" | "infogan" | "fgan" | "wgan" | "wgan-gp" | "unrolled-gan" => ModelConfig::Gan(gan_preset(name, shape, binary_data)),
            "aae" => ModelConfig::Aae(AaeConfig {
                shape: shape.to_vec(),
                hidden: vec![512, 512],
                latent: 2,
                d_hidden: vec![512, 512],
                prior: Prior::Gaussian,
                recon: if binary_data { Recon::Bernoulli } else { Recon::Gaussian },
                adv_weight: 1.0,
            }),
            "classifier" => ModelConfig::Classifier(ClassifierConfig { shape: shape.to_vec(), classes: 10, channels: 32, hidden: 128 }),
            "bernoulli" => ModelConfig::Bernoulli(BernoulliConfig { dim }),
            "fvsbn" => ModelConfig::Fvsbn(FvsbnConfig { dim }),
            "nade" => ModelConfig::Nade(NadeConfig { dim, hidden: 500 }),
            "vae" => ModelConfig::Vae(VaeConfig { dim, hidden: vec![512, 512], latent: 32, likelihood: if binary_data { Likelihood::Bernoulli } else { Likelihood::Gaussian }, iw_samples: 100 }),
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
            ModelConfig::Gan(c) => ADVERSARIAL.iter().find(|n| **n == c.variant).copied().unwrap_or("gan"),
            ModelConfig::Aae(_) => "aae",
            ModelConfig::Classifier(_) => "classifier",
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
            ModelConfig::Gan(c) => c.dim(),
            ModelConfig::Aae(c) => c.dim(),
            ModelConfig::Classifier(c) => c.dim(),
        }
    }

    /// Whether the model needs binary data.
    pub fn needs_binary(&self) -> bool {
        match self {
            ModelConfig::Vae(c) => c.likelihood == Likelihood::Bernoulli,
            ModelConfig::Rnade(_) | ModelConfig::Gan(_) | ModelConfig::Aae(_) | ModelConfig::Classifier(_) => false,
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
    Gan(Gan),
    Aae(Aae),
    Classifier(Classifier),
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
            ModelConfig::Gan(c) => Net::Gan(Gan::new(&mut p, c, &mut r, dev)?),
            ModelConfig::Aae(c) => Net::Aae(Aae::new(&mut p, c, &mut r, dev)?),
            ModelConfig::Classifier(c) => Net::Classifier(Classifier::new(&mut p, c, &mut r, dev)?),
        };
        Ok(Self { config: config.clone(), params: p, net })
    }

    pub fn name(&self) -> &'static str {
        self.config.name()
    }

    /// Scalars an optimiser trains: for the adversarial models the critic's
    /// and the generator's weights, leaving out what the checkpoint also holds
    /// but no gradient moves (batch-norm running statistics, the generator's
    /// weight average). Every parameter, for the likelihood models.
    pub fn trained_count(&self) -> usize {
        match self.as_adversarial() {
            Some(game) => {
                let d: usize = game.d_weights().iter().map(|(_, v)| v.elem_count()).sum();
                let g: usize = game.g_names().iter().filter_map(|n| self.params.get(n)).map(|v| v.elem_count()).sum();
                d + g
            }
            None => self.params.count(),
        }
    }

    /// The VAE, when this model is one (reconstructions, decoder means).
    pub fn as_vae(&self) -> Option<&Vae> {
        match &self.net {
            Net::Vae(v) => Some(v),
            _ => None,
        }
    }

    /// The two players, for the adversarial models (GANs, AAE).
    pub fn as_adversarial(&self) -> Option<&dyn Adversarial> {
        match &self.net {
            Net::Gan(g) => Some(g),
            Net::Aae(a) => Some(a),
            _ => None,
        }
    }

    pub fn as_classifier(&self) -> Option<&Classifier> {
        match &self.net {
            Net::Classifier(c) => Some(c),
            _ => None,
        }
    }

    /// Whether [`Model::features`] works for this model.
    pub fn has_features(&self) -> bool {
        match &self.net {
            Net::Vae(_) | Net::Aae(_) | Net::Nade(_) | Net::Made(_) | Net::Classifier(_) => true,
            Net::Gan(g) => g.cfg.classes == 0,
            _ => false,
        }
    }

    /// Learned features of examples `[B, D]` -> `[B, F]`: encoder means (VAE,
    /// AAE), the hidden layer given the whole input (NADE: sigmoid(W x + c);
    /// MADE: the first hidden layer under mask set 0), the discriminator
    /// body's output (GANs), the classifier's feature layer.
    pub fn features(&self, x: &Tensor) -> Result<Tensor> {
        match &self.net {
            Net::Vae(m) => Ok(m.encode(x)?.0),
            Net::Aae(m) => m.encode(x),
            Net::Nade(m) => m.features(x),
            Net::Made(m) => m.features(x),
            Net::Gan(m) => m.embed(x),
            Net::Classifier(m) => m.features(x),
            _ => Err(Error::config(format!("the {} model has no feature layer to embed with (models with features: vae, aae, nade, made, GANs, classifier)", self.name()))),
        }
    }

    pub fn as_gan(&self) -> Option<&Gan> {
        match &self.net {
            Net::Gan(g) => Some(g),
            _ => None,
        }
    }

    pub fn as_aae(&self) -> Option<&Aae> {
        match &self.net {
            Net::Aae(a) => Some(a),
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
            Net::Vae(_) | Net::Gan(_) | Net::Aae(_) | Net::Classifier(_) => {
                Err(Error::config(format!("the {} model has no sequential conditionals; completion needs an autoregressive model", self.name())))
            }
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
            Net::Gan(_) | Net::Aae(_) => Err(Error::config(format!("the {} model has no likelihood: it is trained adversarially and defines no density", self.name()))),
            Net::Classifier(_) => Err(Error::config("the classifier models p(y | x), not p(x): it has no density over examples")),
        }
    }
}

impl Sampler for Model {
    fn sample(&self, n: usize, rng: &mut Rng) -> Result<Tensor> {
        match &self.net {
            Net::Vae(m) => m.sample(n, rng),
            Net::Gan(m) => m.sample_with(n, None, rng),
            Net::Aae(m) => m.sample(n, rng),
            Net::Classifier(_) => Err(Error::config("the classifier is not a generative model: it cannot sample")),
            _ => Ok(self.sample_sequential(n, None, rng)?.0),
        }
    }
}

impl Objective for Model {
    fn loss(&self, x: &Tensor, rng: &mut Rng) -> Result<Losses> {
        match &self.net {
            Net::Gan(_) | Net::Aae(_) => Err(Error::config(format!("the {} model is trained by the adversarial trainer, not by likelihood", self.name()))),
            Net::Classifier(_) => Err(Error::config("the classifier trains on labelled data: -log p(y | x) needs the labels")),
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

    fn loss_labelled(&self, x: &Tensor, labels: Option<&[u32]>, rng: &mut Rng) -> Result<Losses> {
        match (&self.net, labels) {
            (Net::Classifier(c), Some(l)) => {
                let nll = c.log_prob_of(x, l)?.neg()?.mean_all()?;
                Ok(Losses { total: nll.clone(), parts: vec![("nll", nll)] })
            }
            _ => self.loss(x, rng),
        }
    }
}

impl Encoder for Model {
    fn encode(&self, x: &Tensor) -> Result<Tensor> {
        match &self.net {
            Net::Vae(m) => Ok(m.encode(x)?.0),
            Net::Aae(m) => m.encode(x),
            _ => Err(Error::config(format!("the {} model has no encoder", self.name()))),
        }
    }
}

/// The default configuration of the GAN variants: MLP players for vectors
/// (the 2-D toy sets: Metz et al. 2017's 2x128 ReLU players), DCGAN players
/// for images (except `gan`, `fgan` and `unrolled-gan`, which stay MLPs).
fn gan_preset(name: &str, shape: &[usize], unit_data: bool) -> GanConfig {
    let image = shape.len() == 3 && shape[1].is_multiple_of(4) && shape[2].is_multiple_of(4);
    let conv = image && matches!(name, "dcgan" | "cgan" | "infogan" | "wgan" | "wgan-gp");
    let toy = shape.len() == 1 && shape[0] <= 16;
    let loss = match name {
        "gan" | "unrolled-gan" | "dcgan" | "cgan" | "infogan" => GanLoss::NonSaturating,
        "fgan" => GanLoss::F(Divergence::Js),
        _ => GanLoss::Wasserstein,
    };
    GanConfig {
        variant: name.to_string(),
        shape: shape.to_vec(),
        arch: if conv { Arch::Dcgan } else { Arch::Mlp },
        loss,
        latent: if toy {
            256
        } else if name == "infogan" {
            62
        } else {
            100
        },
        noise: Noise::Normal,
        g_hidden: if toy { vec![128, 128] } else { vec![256, 512] },
        d_hidden: if toy { vec![128, 128] } else { vec![512, 256] },
        g_norm: false,
        channels: 64,
        d_norm: name != "wgan-gp",
        output: if unit_data && !toy { GenOutput::Sigmoid } else { GenOutput::Identity },
        classes: if name == "cgan" { 10 } else { 0 },
        categorical: if name == "infogan" { 10 } else { 0 },
        continuous: if name == "infogan" { 2 } else { 0 },
        info_weight: 1.0,
        pack: 1,
        ema: 0.0,
    }
}
