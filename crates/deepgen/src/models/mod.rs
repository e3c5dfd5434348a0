//! Model families, their capabilities (traits) and the registry.
//!
//! One module per family. Each has an `XConfig` (serde, validated) that
//! describes the family ([`Family`]: model names, capabilities, presets,
//! training recipes, flags, data needs) and a network that says which
//! capability traits it offers ([`Net`]). [`ModelConfig`] is the serde-tagged
//! registry saved in every checkpoint, one line per family; [`Model`] builds
//! any of them and answers the capability traits through its network, so
//! trainers and the CLI never match on the family.

pub mod aae;
pub mod bernoulli;
pub mod bernoulli_mixture;
pub mod classifier;
pub mod cyclegan;
pub mod ema;
pub mod family;
pub mod flags;
pub mod fvsbn;
pub mod gan;
pub mod image_pool;
pub mod made;
pub mod matcher;
pub mod nade;
pub mod pixelcnn;
pub mod pixelrnn;
pub mod progan;
pub mod puzzle;
pub mod rnade;
pub mod stargan;
pub mod text_config;
pub mod textgan;
pub mod translation;
pub mod vae;

pub use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::data::captions::Vocab;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::nn::Params;
use crate::recipe::TrainConfig;
use crate::rng::{self, Rng};

pub use aae::{Aae, AaeConfig, Prior, Recon};
pub use bernoulli::{Bernoulli, BernoulliConfig};
pub use classifier::{Classifier, ClassifierConfig};
pub use cyclegan::{CycleGan, CycleGanConfig};
pub use fvsbn::{Fvsbn, FvsbnConfig};
pub use gan::{Arch, Divergence, Gan, GanConfig, GanLoss, GenOutput, Noise, Variant};
pub use made::{Made, MadeConfig};
pub use matcher::{Matcher, MatcherConfig, TextEncoder};
pub use nade::{Nade, NadeConfig};
pub use pixelcnn::{PixelCnn, PixelCnnConfig};
pub use pixelrnn::{Cell, PixelRnn, PixelRnnConfig};
pub use puzzle::{PuzzleGan, PuzzleGanConfig};
pub use rnade::{Rnade, RnadeConfig};
pub use stargan::{StarGan, StarGanConfig};
pub use textgan::{TextGan, TextGanConfig, TextVariant};
pub use translation::{Domains, Target, Translator};
pub use vae::{Likelihood, Vae, VaeConfig};

pub use crate::dist::PixelOutput;
pub use family::{
    Density, Family, Features, Labels, ModelInfo, Needs, Net, ScoreKind, Sequential, Training,
};
pub use flags::ModelFlags;

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

/// What the adversarial trainer appends to each training example of a batch row, for the
/// translation games: `x` is then `[B, D + D_b + A]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchRows {
    /// An example of the second domain (CycleGAN's unpaired B, drawn by its own seeded
    /// shuffle), `D_b = D` values.
    pub domain_b: bool,
    /// The example's encoded attributes (StarGAN), `A` values.
    pub attributes: bool,
}

/// Two players, for [`crate::train::AdversarialTrainer`]: the model says what
/// is real, what is generated and how the critic scores them under any
/// weights (its own, or the unrolled ones); the trainer owns the loop,
/// the two optimisers, n_critic, penalties, clipping and unrolling.
/// Where a growing game stands ([`Adversarial::progress`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// The examples shown at which the current phase began: both optimisers restart there.
    pub phase_start: u64,
    /// The side of the images the players make and judge now.
    pub resolution: usize,
    /// The fade-in weight of the newest layers, 1 when the networks are stable.
    pub alpha: f64,
    /// The phase in words, for the progress bar ("16x16 fading in, alpha 0.42").
    pub label: String,
}

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
    /// None for a game without InfoGAN codes (the default).
    fn info_loss(&self, _q: &Tensor, _codes: &Tensor) -> Result<Option<(Tensor, Tensor)>> {
        Ok(None)
    }
    /// Extra generator-side losses (the AAE's reconstruction, CycleGAN's cycle and identity
    /// terms, StarGAN's classification and reconstruction), named; `q` is the critic's second
    /// head on `fake` (StarGAN's domain classifier).
    fn generator_extra(
        &self,
        _x: &Tensor,
        _fake: &Side,
        _q: Option<&Tensor>,
    ) -> Result<Vec<(&'static str, Tensor)>> {
        Ok(vec![])
    }
    /// The critic's terms from its second head on the real batch (StarGAN's domain
    /// classification of real images), named and weighted; empty for other games.
    fn real_head_loss(&self, _q: &Tensor, _real: &Side) -> Result<Vec<(&'static str, Tensor)>> {
        Ok(vec![])
    }
    /// The generated batch as the critic sees it (CycleGAN: drawn from a history of generated
    /// images, [`image_pool`]); by default the batch itself.
    fn critic_fakes(&self, fake: Side, _rng: &mut Rng) -> Result<Side> {
        Ok(fake)
    }
    /// What a batch row holds besides the training example: see [`BatchRows`].
    fn batch_rows(&self) -> BatchRows {
        BatchRows::default()
    }
    /// The weight of InfoGAN's mutual-information term (0 without codes, the default).
    fn info_weight(&self) -> f64 {
        0.0
    }
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
    /// A game whose players change as training goes (Progressive GAN's growing resolution): its
    /// position after `images` examples shown to the critic, without changing the game; None for
    /// a fixed game.
    fn progress(&self, _images: u64) -> Option<Progress> {
        None
    }
    /// Moves the game to its position after `images` examples shown (see
    /// [`Adversarial::progress`]); the trainer calls it before every iteration.
    fn advance(&self, _images: u64) -> Result<()> {
        Ok(())
    }
    /// Refuses a batch size the critic cannot take (ProGAN's minibatch standard deviation groups),
    /// naming the flag.
    fn check_batch(&self, _batch_size: usize) -> Result<()> {
        Ok(())
    }
    /// The words of the captions the game reads (the text-conditional GAN), as
    /// [`Objective::vocab`].
    fn vocab(&self) -> Option<&Vocab> {
        None
    }
    /// Examples the critic should also call fake, beside the generated batch, each with its
    /// weight in the critic's loss: GAN-CLS's real images with mismatching captions (Reed et al.
    /// 2016, Alg. 1), the puzzle GAN's real images with another image's parts. `fake` is the
    /// generated batch as the critic sees it. None for other games.
    fn extra_fakes(&self, _real: &Side, _fake: &Side, _rng: &mut Rng) -> Result<Vec<(Side, f64)>> {
        Ok(vec![])
    }
    /// The weight of the generated batch's term in the critic's loss (1; GAN-CLS: 1/2, the other
    /// half going to the mismatched pairs).
    fn fake_weight(&self) -> f64 {
        1.0
    }
    /// Refuses training data the game cannot use (a conditional GAN's unlabelled or out-of-range
    /// data).
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

    /// Draws value `i` of every example from its output parameters `params[s]` (or keeps the known
    /// value).
    pub fn draw(&mut self, i: usize, params: &[Vec<f32>], out: PixelOutput, rng: &mut Rng) {
        for (s, ps) in params.iter().enumerate().take(self.n) {
            let (v, lp) =
                out.draw(&ps[..out.params()], self.known.and_then(|k| k.get(s, i, self.d)), rng);
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
    /// log p(y | x) per example `[B]`, for the models whose labels are their
    /// target ([`Labels::Target`]: the classifier); the others model x.
    fn log_prob_labels(&self, _x: &Tensor, _labels: &[u32]) -> Result<Tensor> {
        Err(Error::config("this model does not model labels"))
    }
    /// The words of the captions the model reads: the trainer then appends one caption of each
    /// example, as [`Vocab::row`]'s word ids, to its batch row.
    fn vocab(&self) -> Option<&Vocab> {
        None
    }
}

/// The registry: one line per family, `"kind" => Variant(module::Config)`.
/// The `kind` tags the family's config in `config.toml` and in every
/// checkpoint. The macro writes [`ModelConfig`] with its dispatch to the
/// family's [`Family`] methods; nothing else here names a family. (The
/// family's `pub mod` line stays outside the macro: rustfmt does not follow
/// module declarations made inside macro invocations.)
macro_rules! registry {
    ($($kind:literal => $variant:ident($module:ident :: $config:ident),)*) => {

        /// Every model's complete configuration, tagged by `kind`.
        #[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
        #[serde(tag = "kind")]
        pub enum ModelConfig {
            $(#[serde(rename = $kind)] $variant($module::$config),)*
        }

        /// Every model name of every family, in registry order.
        pub fn models() -> impl Iterator<Item = &'static ModelInfo> + Clone {
            [$(<$module::$config as Family>::MODELS,)*].into_iter().flatten()
        }

        impl ModelConfig {
            /// The default configuration of model `name` for examples of `shape`
            /// (`[D]` for vectors, `[C, H, W]` for images); `unit_data`: every
            /// value lies in [0, 1].
            pub fn preset(name: &str, shape: &[usize], unit_data: bool) -> Result<Self> {
                $(if <$module::$config as Family>::MODELS.iter().any(|m| m.name == name) {
                    let c = <$module::$config as Family>::preset(name, shape, unit_data)?;
                    return Ok(ModelConfig::$variant(c));
                })*
                Err(unknown_model(name))
            }

            /// How model `name` trains by default on examples of `shape`.
            pub fn recipe(name: &str, shape: &[usize]) -> Result<TrainConfig> {
                $(if <$module::$config as Family>::MODELS.iter().any(|m| m.name == name) {
                    return Ok(<$module::$config as Family>::recipe(name, shape));
                })*
                Err(unknown_model(name))
            }

            /// What the model's family says about it: the `MODELS` entry of
            /// its name (the registry test checks that every name has one).
            pub fn info(&self) -> &'static ModelInfo {
                match self {
                    $(ModelConfig::$variant(c) => {
                        let all = <$module::$config as Family>::MODELS;
                        all.iter().find(|m| m.name == c.name()).unwrap_or(&all[0])
                    })*
                }
            }

            pub fn name(&self) -> &'static str {
                match self {
                    $(ModelConfig::$variant(c) => c.name(),)*
                }
            }

            /// The data dimension the model was built for.
            pub fn dim(&self) -> usize {
                match self {
                    $(ModelConfig::$variant(c) => Family::dim(c),)*
                }
            }

            pub fn needs(&self) -> Needs {
                match self {
                    $(ModelConfig::$variant(c) => c.needs(),)*
                }
            }

            /// Applies model flags (refusing by name those the model does not take).
            pub fn configure(
                &mut self,
                flags: &ModelFlags,
                data: &Dataset,
                seed: u64,
            ) -> Result<()> {
                family::refuse_flags_not_taken(flags, self.info(), models())?;
                match self {
                    $(ModelConfig::$variant(c) => c.configure(flags, data, seed),)*
                }
            }

            fn build(&self, p: &mut Params, r: &mut Rng, dev: &Device) -> Result<Box<dyn Net>> {
                match self {
                    $(ModelConfig::$variant(c) => c.build(p, r, dev),)*
                }
            }
        }
    };
}

registry! {
    "bernoulli" => Bernoulli(bernoulli::BernoulliConfig),
    "bernoulli-mixture" => BernoulliMixture(bernoulli_mixture::BernoulliMixtureConfig),
    "fvsbn" => Fvsbn(fvsbn::FvsbnConfig),
    "nade" => Nade(nade::NadeConfig),
    "made" => Made(made::MadeConfig),
    "rnade" => Rnade(rnade::RnadeConfig),
    "pixelcnn" => PixelCnn(pixelcnn::PixelCnnConfig),
    "pixelrnn" => PixelRnn(pixelrnn::PixelRnnConfig),
    "vae" => Vae(vae::VaeConfig),
    "gan" => Gan(gan::GanConfig),
    "aae" => Aae(aae::AaeConfig),
    "cyclegan" => CycleGan(cyclegan::CycleGanConfig),
    "stargan" => StarGan(stargan::StarGanConfig),
    "progan" => ProGan(progan::ProGanConfig),
    "text-matcher" => Matcher(matcher::MatcherConfig),
    "text-gan" => TextGan(textgan::TextGanConfig),
    "puzzle-gan" => PuzzleGan(puzzle::PuzzleGanConfig),
    "classifier" => Classifier(classifier::ClassifierConfig),
}

fn unknown_model(name: &str) -> Error {
    let names: Vec<&str> = models().map(|m| m.name).collect();
    Error::config(format!("unknown model `{name}` (available: {})", names.join(", ")))
}

/// What `deepgen models` says about model `name`.
pub fn info(name: &str) -> Option<&'static ModelInfo> {
    models().find(|m| m.name == name)
}

impl ModelConfig {
    /// Whether the model needs binary data.
    pub fn needs_binary(&self) -> bool {
        self.needs().binary
    }

    /// Whether the model reads 8-bit grey levels (values k/255 in [0, 1]).
    pub fn needs_grey_levels(&self) -> bool {
        self.needs().grey_levels
    }
}

/// Any model of the registry with its parameters.
pub struct Model {
    pub config: ModelConfig,
    pub params: Params,
    net: Box<dyn Net>,
}

impl Model {
    /// Builds a model, initialising its parameters from `seed`.
    /// Builds a model with fresh weights, refused with [`Error::TooLarge`]'s message (naming the
    /// model) when its parameters would not fit in the memory available ([`crate::limits`]).
    pub fn new(config: &ModelConfig, seed: u64, dev: &Device) -> Result<Self> {
        let budget = (crate::limits::memory_bound() / 16).min(usize::MAX as u64) as usize;
        Self::new_within(config, seed, dev, budget).map_err(|e| match e {
            Error::TooLarge { .. } => Error::config(format!("{}: {e}", config.name())),
            e => e,
        })
    }

    /// Builds a model of at most `budget` parameters; a larger one is [`Error::TooLarge`],
    /// found before its tensors are allocated.
    pub fn new_within(
        config: &ModelConfig,
        seed: u64,
        dev: &Device,
        budget: usize,
    ) -> Result<Self> {
        if config.dim() == 0 {
            return Err(Error::config("model dimension must be positive"));
        }
        let mut p = Params::with_budget(budget);
        let mut r = rng::derived(seed, "init", 0);
        let net = config.build(&mut p, &mut r, dev)?;
        Ok(Self { config: config.clone(), params: p, net })
    }

    pub fn name(&self) -> &'static str {
        self.config.name()
    }

    /// The same weights under another configuration of the same network
    /// (e.g. the VAE's importance samples k); `what` names the source in errors.
    pub fn with_config(
        &self,
        config: &ModelConfig,
        seed: u64,
        what: &std::path::Path,
    ) -> Result<Self> {
        let fresh = Model::new(config, seed, &self.net_device())?;
        let tensors = self.params.vars().map(|(k, v)| (k.clone(), v.as_tensor().clone())).collect();
        fresh.params.load(&tensors, what)?;
        Ok(fresh)
    }

    fn net_device(&self) -> Device {
        self.params.vars().next().map(|(_, v)| v.device().clone()).unwrap_or(Device::Cpu)
    }

    /// The device the weights live on.
    pub fn device(&self) -> Device {
        self.net_device()
    }

    /// The same model with its weights copied to `dev` (a GPU-trained model's pictures and
    /// scores after training are computed from a host copy).
    pub fn to_device(&self, dev: &Device) -> Result<Self> {
        let fresh = Model::new(&self.config, 0, dev)?;
        let tensors = self.params.vars().map(|(k, v)| (k.clone(), v.as_tensor().clone())).collect();
        fresh.params.load(&tensors, std::path::Path::new("(the trained model)"))?;
        Ok(fresh)
    }

    pub fn info(&self) -> &'static ModelInfo {
        self.config.info()
    }

    /// The family's own network, for what only it offers
    /// (`model.get::<Vae>()` for reconstructions, `model.get::<Gan>()` for codes).
    pub fn get<T: 'static>(&self) -> Option<&T> {
        self.net.as_any().downcast_ref::<T>()
    }

    /// Scalars an optimiser trains: for the adversarial models the critic's
    /// and the generator's weights, leaving out what the checkpoint also holds
    /// but no gradient moves (batch-norm running statistics, the generator's
    /// weight average). Every parameter, for the likelihood models.
    pub fn trained_count(&self) -> usize {
        match self.as_adversarial() {
            Some(game) => {
                let d: usize = game.d_weights().iter().map(|(_, v)| v.elem_count()).sum();
                let g: usize = game
                    .g_names()
                    .iter()
                    .filter_map(|n| self.params.get(n))
                    .map(|v| v.elem_count())
                    .sum();
                d + g
            }
            None => self.params.count(),
        }
    }

    /// The words of the captions the model reads, when it reads captions.
    pub fn vocab(&self) -> Option<&Vocab> {
        match (self.net.objective(), self.net.adversarial()) {
            (Some(o), _) if o.vocab().is_some() => o.vocab(),
            (_, Some(a)) => a.vocab(),
            _ => None,
        }
    }

    /// The two players, for the adversarial models (GANs, AAE).
    pub fn as_adversarial(&self) -> Option<&dyn Adversarial> {
        self.net.adversarial()
    }

    /// Image-to-image translation (CycleGAN, StarGAN).
    pub fn as_translator(&self) -> Option<&dyn Translator> {
        self.net.translator()
    }

    /// Whether [`Model::features`] works for this model.
    pub fn has_features(&self) -> bool {
        self.net.features().is_some()
    }

    /// Learned features of examples `[B, D]` -> `[B, F]` (what they are:
    /// [`ModelInfo::features`]).
    pub fn features(&self, x: &Tensor) -> Result<Tensor> {
        match self.net.features() {
            Some(f) => f.features(x),
            None => {
                let with: Vec<&str> =
                    models().filter(|m| m.features.is_some()).map(|m| m.name).collect();
                Err(Error::config(format!(
                    "the {} model has no feature layer to embed with (models with features: {})",
                    self.name(),
                    with.join(", ")
                )))
            }
        }
    }

    /// The parameters of every conditional p(x_i | x_<i), `[B, D, P]`, for
    /// the autoregressive families (raster order; MADE: mask set 0): P = 1
    /// logit for binary outputs, 256 logits for grey levels, 3K mixture
    /// parameters for RNADE. `None` for the other families.
    pub fn conditionals(&self, x: &Tensor) -> Option<Result<Tensor>> {
        self.net.sequential()?.conditionals(x)
    }

    /// Sequential sampling for the models with tractable conditionals: values
    /// in `known` are kept and the others drawn in the model's order given
    /// everything before them, which for the raster order makes `known` = top
    /// half an exact conditional completion. Returns the examples `[n, D]`
    /// and the log-probability (or log-density) of each, accumulated while sampling.
    pub fn sample_sequential(
        &self,
        n: usize,
        known: Option<&Known>,
        rng: &mut Rng,
    ) -> Result<(Tensor, Vec<f64>)> {
        if let Some(k) = known {
            let d = self.config.dim();
            if k.values.len() != n * d || k.observed.len() != n * d {
                return Err(Error::Shape(format!(
                    "completion needs {n} x {d} known values and flags, got {} and {}",
                    k.values.len(),
                    k.observed.len()
                )));
            }
        }
        match self.net.sequential() {
            Some(s) => s.sample_ar(n, known, rng),
            None => Err(Error::config(format!(
                "the {} model has no sequential conditionals; \
                completion needs an autoregressive model",
                self.name()
            ))),
        }
    }

    /// log p(x) of every example of `data`, in batches of `batch` (the
    /// classifier: log p(y | x) of the labels).
    pub fn log_probs(&self, data: &Dataset, batch: usize, rng: &mut Rng) -> Result<Vec<f64>> {
        self.check_dim(data.dim(), &data.source)?;
        let dev = self.net_device();
        let mut out = Vec::with_capacity(data.n);
        let idx: Vec<usize> = (0..data.n).collect();
        for chunk in idx.chunks(batch.max(1)) {
            let x = data.batch(chunk, &dev)?;
            let lp = match self.info().labels {
                Labels::Target => {
                    let labels = data.labels.as_ref().ok_or_else(|| {
                        Error::config(format!(
                            "{}: the {} model needs labelled data",
                            data.source,
                            self.name()
                        ))
                    })?;
                    let l: Vec<u32> = chunk.iter().map(|&i| labels[i]).collect();
                    let c = self.net.objective().ok_or_else(|| self.not_trained_by_likelihood())?;
                    c.log_prob_labels(&x, &l)?
                }
                _ => self.log_prob(&x, rng)?,
            }
            .to_vec1::<f32>()?;
            out.extend(lp.into_iter().map(|v| v as f64));
        }
        if let Some(i) = out.iter().position(|v| !v.is_finite()) {
            return Err(Error::config(format!(
                "{}: log p of example {i} is not finite ({})",
                data.source, out[i]
            )));
        }
        Ok(out)
    }

    fn not_trained_by_likelihood(&self) -> Error {
        Error::config(format!(
            "the {} model is trained by the adversarial trainer, not by likelihood",
            self.name()
        ))
    }

    /// Checks that data of `dim` values fits this model.
    pub fn check_dim(&self, dim: usize, what: &str) -> Result<()> {
        if dim != self.config.dim() {
            return Err(Error::Shape(format!(
                "{what} has {dim} values per example, the {} model expects {}",
                self.name(),
                self.config.dim()
            )));
        }
        Ok(())
    }
}

impl DensityModel for Model {
    fn log_prob(&self, x: &Tensor, rng: &mut Rng) -> Result<Tensor> {
        match self.net.density() {
            Some(d) => d.log_prob(x, rng),
            None if self.info().labels == Labels::Target => Err(Error::config(format!(
                "the {} models p(y | x), not p(x): it has no density \
                    over examples",
                self.name()
            ))),
            None => Err(Error::config(format!(
                "the {} model has no likelihood: it is trained \
                adversarially and defines no density",
                self.name()
            ))),
        }
    }
}

impl Sampler for Model {
    fn sample(&self, n: usize, rng: &mut Rng) -> Result<Tensor> {
        match self.net.sampler() {
            Some(s) => s.sample(n, rng),
            None if self.net.translator().is_some() => Err(Error::config(format!(
                "the {} model translates images and does not sample: use deepgen translate",
                self.name()
            ))),
            None => Err(Error::config(format!(
                "the {} is not a generative model: it cannot sample",
                self.name()
            ))),
        }
    }
}

impl Objective for Model {
    fn loss(&self, x: &Tensor, rng: &mut Rng) -> Result<Losses> {
        self.net.objective().ok_or_else(|| self.not_trained_by_likelihood())?.loss(x, rng)
    }

    fn loss_labelled(&self, x: &Tensor, labels: Option<&[u32]>, rng: &mut Rng) -> Result<Losses> {
        self.net
            .objective()
            .ok_or_else(|| self.not_trained_by_likelihood())?
            .loss_labelled(x, labels, rng)
    }
}

impl Encoder for Model {
    fn encode(&self, x: &Tensor) -> Result<Tensor> {
        match self.net.encoder() {
            Some(e) => e.encode(x),
            None => Err(Error::config(format!("the {} model has no encoder", self.name()))),
        }
    }
}
