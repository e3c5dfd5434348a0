//! What a family must say about itself, in its own file.
//!
//! A family is a config type (`XConfig`, saved in every checkpoint) that
//! implements [`Family`] and a built network that implements [`Net`]. Neither
//! trait has a default method: the compiler asks a new family for every
//! answer (its model names and capabilities, presets, training recipe,
//! flags, data needs, and which capability traits it offers), so nothing is
//! decided for it by a catch-all arm. `models/mod.rs` then needs one
//! registry line for it.

use std::any::Any;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::flags::{given, ModelFlags};
use super::{Adversarial, DensityModel, Encoder, Known, Objective, Sampler, Translator};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::nn::Params;
use crate::recipe::TrainConfig;
use crate::rng::Rng;

/// How a model knows log p(x).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Density {
    /// Exactly (normalised; of the ensemble for MADE's mask averages).
    Exact,
    /// A stochastic lower bound (the VAE's importance-weighted estimate).
    Bound,
    /// Not at all (adversarial models, the classifier).
    None,
}

/// Which trainer fits the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Training {
    /// [`crate::train::LikelihoodTrainer`]: the model's [`Objective`].
    Likelihood,
    /// [`crate::train::AdversarialTrainer`]: the model's [`Adversarial`] game.
    Adversarial,
}

/// What the data's labels are to a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Labels {
    /// Ignored.
    Unused,
    /// A conditioning input (cGAN: `sample --class K`); training needs them.
    Condition,
    /// The target it models, p(y | x) (the classifier); training needs them.
    Target,
}

/// What a score measures. All are "higher = more anomalous".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScoreKind {
    /// -log p(x) in nats (exact, or the VAE's importance-weighted estimate).
    Nll,
    /// -log p(x) / (D ln 2).
    Bpd,
    /// The VAE's negative ELBO (one posterior draw; an upper bound on -log p).
    Elbo,
    /// Squared error of the reconstruction at the posterior mean / code (VAE, AAE).
    Recon,
    /// Minus the discriminator's raw output (GANs): examples it finds unreal score high.
    Disc,
    /// |-log p(x) - mean -log p on the validation data| (a per-example
    /// typicality test, Nalisnick et al. 2019).
    Typicality,
    /// Bits per dim minus PNG-compressed bits per dim (input complexity, Serrà et al. 2020).
    Complexity,
}

/// The scores of a model with an exact density (and of none other).
pub const DENSITY_SCORES: &[ScoreKind] =
    &[ScoreKind::Nll, ScoreKind::Bpd, ScoreKind::Typicality, ScoreKind::Complexity];

/// What `deepgen models` says about one model name, declared in its family's file.
#[derive(Debug)]
pub struct ModelInfo {
    pub name: &'static str,
    pub summary: &'static str,
    pub density: Density,
    pub training: Training,
    /// Draws new examples (`deepgen sample`).
    pub sampler: bool,
    /// Has sequential conditionals (`deepgen complete`, the causality tests).
    pub completion: bool,
    /// Maps examples to codes (`Encoder`).
    pub encoder: bool,
    /// What its features are (`deepgen embed`, `probe`), if it has any.
    pub features: Option<&'static str>,
    pub labels: Labels,
    /// Anomaly scores it gives (`deepgen detect --score`), the default first.
    pub scores: &'static [ScoreKind],
    /// The data it takes, in words.
    pub data: &'static str,
    /// The model flags of `deepgen train` it takes (field names of [`ModelFlags`]).
    pub flags: &'static [&'static str],
}

/// What a configured model needs of its data's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    /// Values in {0, 1}.
    pub binary: bool,
    /// 8-bit grey levels k/255 in [0, 1].
    pub grey_levels: bool,
}

/// A family's configuration side: everything the registry, the run config and
/// `deepgen models` ask of it. Implemented by each `XConfig`.
pub trait Family: Sized {
    /// The model names this family answers to (`deepgen train NAME`).
    const MODELS: &'static [ModelInfo];
    /// The default configuration of model `name` for examples of `shape`
    /// (`[D]` or `[C, H, W]`); `unit_data`: every value lies in [0, 1].
    fn preset(name: &str, shape: &[usize], unit_data: bool) -> Result<Self>;
    /// How model `name` trains by default on examples of `shape`: steps,
    /// batch, learning rate, schedule, Adam's betas, the critic's settings.
    fn recipe(name: &str, shape: &[usize]) -> TrainConfig;
    /// The model name of this configuration (one of `MODELS`).
    fn name(&self) -> &'static str;
    /// The data dimension the model was built for.
    fn dim(&self) -> usize;
    fn needs(&self) -> Needs;
    /// Applies the model flags this model takes (those in its `flags`; the
    /// caller refuses the others by name) and settings that follow from the
    /// training data and the seed.
    fn configure(&mut self, flags: &ModelFlags, data: &Dataset, seed: u64) -> Result<()>;
    /// Builds the network, registering its parameters in `params`.
    fn build(&self, params: &mut Params, rng: &mut Rng, dev: &Device) -> Result<Box<dyn Net>>;
}

/// Sequential conditionals: the autoregressive families.
pub trait Sequential {
    /// Values in `known` are kept and the others drawn in the model's order
    /// given everything before them. Returns `[n, D]` and each row's log p.
    fn sample_ar(
        &self,
        n: usize,
        known: Option<&Known>,
        rng: &mut Rng,
    ) -> Result<(Tensor, Vec<f64>)>;
    /// The parameters of every conditional p(x_i | x_<i), `[B, D, P]`
    /// (raster order); `None` where the model has no parameters to show
    /// (independent pixels).
    fn conditionals(&self, x: &Tensor) -> Option<Result<Tensor>>;
}

/// Learned features of examples `[B, D]` -> `[B, F]`.
pub trait Features {
    fn features(&self, x: &Tensor) -> Result<Tensor>;
}

/// A sequential model samples by drawing every value in order, none known.
impl<T: Sequential> Sampler for T {
    fn sample(&self, n: usize, rng: &mut Rng) -> Result<Tensor> {
        Ok(self.sample_ar(n, None, rng)?.0)
    }
}

/// A built network of one family: which capability traits it offers.
pub trait Net: Send + Sync + 'static {
    /// The concrete network, for family-specific use (`Model::get::<Vae>()`).
    fn as_any(&self) -> &dyn Any;
    fn density(&self) -> Option<&dyn DensityModel>;
    fn sampler(&self) -> Option<&dyn Sampler>;
    fn sequential(&self) -> Option<&dyn Sequential>;
    fn encoder(&self) -> Option<&dyn Encoder>;
    fn features(&self) -> Option<&dyn Features>;
    /// What the likelihood trainer minimises, for the likelihood-trained models.
    fn objective(&self) -> Option<&dyn Objective>;
    fn adversarial(&self) -> Option<&dyn Adversarial>;
    /// Image-to-image translation (CycleGAN, StarGAN): `deepgen translate`.
    fn translator(&self) -> Option<&dyn Translator>;
}

/// Writes a family's [`Net`] impl from its answers: for each capability,
/// `yes` (the network implements that trait) or `no`. Every answer must be
/// given; a network whose answer depends on its config writes `Net` by hand.
///
/// ```ignore
/// net!(Nade { density: yes, sampler: yes, sequential: yes, encoder: no,
///             features: yes, objective: yes, adversarial: no, translator: no });
/// ```
macro_rules! net {
    ($t:ty {
        density: $d:ident,
        sampler: $s:ident,
        sequential: $q:ident,
        encoder: $e:ident,
        features: $f:ident,
        objective: $o:ident,
        adversarial: $a:ident,
        translator: $tr:ident $(,)?
    }) => {
        impl $crate::models::Net for $t {
            fn as_any(&self) -> &dyn std::any::Any {
                self
            }
            fn density(&self) -> Option<&dyn $crate::models::DensityModel> {
                $crate::models::family::net!(@ $d self)
            }
            fn sampler(&self) -> Option<&dyn $crate::models::Sampler> {
                $crate::models::family::net!(@ $s self)
            }
            fn sequential(&self) -> Option<&dyn $crate::models::Sequential> {
                $crate::models::family::net!(@ $q self)
            }
            fn encoder(&self) -> Option<&dyn $crate::models::Encoder> {
                $crate::models::family::net!(@ $e self)
            }
            fn features(&self) -> Option<&dyn $crate::models::Features> {
                $crate::models::family::net!(@ $f self)
            }
            fn objective(&self) -> Option<&dyn $crate::models::Objective> {
                $crate::models::family::net!(@ $o self)
            }
            fn adversarial(&self) -> Option<&dyn $crate::models::Adversarial> {
                $crate::models::family::net!(@ $a self)
            }
            fn translator(&self) -> Option<&dyn $crate::models::Translator> {
                $crate::models::family::net!(@ $tr self)
            }
        }
    };
    (@ yes $me:ident) => {
        Some($me)
    };
    (@ no $me:ident) => {
        None
    };
}
pub(crate) use net;

/// Writes the capability traits of an explicit, sequential family from its
/// network's own methods `log_prob(x)` and `sample_ar(n, known, rng)`:
/// [`DensityModel`], [`Sequential`] (its `conditionals` from `none`, for
/// independent values, `logits(method)`, one logit per value `[B, D]`, or
/// `own`, the network's `conditionals(x)` `[B, D, P]`) and, with
/// `objective: nll`, [`Objective`] as the mean of -log p (`objective: own`:
/// the family writes its own).
macro_rules! explicit_sequential {
    ($t:ident { conditionals: $($c:ident)? $(($m:ident))?, objective: $o:ident $(,)? }) => {
        impl $crate::models::DensityModel for $t {
            fn log_prob(
                &self,
                x: &candle_core::Tensor,
                _rng: &mut $crate::rng::Rng,
            ) -> $crate::Result<candle_core::Tensor> {
                $t::log_prob(self, x)
            }
        }

        impl $crate::models::Sequential for $t {
            fn sample_ar(
                &self,
                n: usize,
                known: Option<&$crate::models::Known>,
                rng: &mut $crate::rng::Rng,
            ) -> $crate::Result<(candle_core::Tensor, Vec<f64>)> {
                $t::sample_ar(self, n, known, rng)
            }
            fn conditionals(
                &self,
                x: &candle_core::Tensor,
            ) -> Option<$crate::Result<candle_core::Tensor>> {
                $crate::models::family::explicit_sequential!(@c [$($c)? $(($m))?] $t self x)
            }
        }

        $crate::models::family::explicit_sequential!(@o $o $t);
    };
    (@c [none] $t:ident $me:ident $x:ident) => {{
        let _ = $x;
        None
    }};
    (@c [logits($m:ident)] $t:ident $me:ident $x:ident) => {
        Some($t::$m($me, $x).and_then(|t| Ok(t.unsqueeze(2)?)))
    };
    (@c [own] $t:ident $me:ident $x:ident) => {
        Some($t::conditionals($me, $x))
    };
    (@o nll $t:ident) => {
        impl $crate::models::Objective for $t {
            fn loss(
                &self,
                x: &candle_core::Tensor,
                _rng: &mut $crate::rng::Rng,
            ) -> $crate::Result<$crate::models::Losses> {
                $crate::models::family::nll_loss($t::log_prob(self, x)?)
            }
        }
    };
    (@o own $t:ident) => {};
}
pub(crate) use explicit_sequential;

/// What an image model with a per-pixel output needs of its data.
pub fn pixel_needs(output: crate::dist::PixelOutput) -> Needs {
    use crate::dist::PixelOutput;
    Needs { binary: output == PixelOutput::Bernoulli, grey_levels: output == PixelOutput::Softmax }
}

/// `--channels`, `--layers` and `--output` of the PixelCNN and PixelRNN families.
pub fn configure_pixels(
    flags: &ModelFlags,
    channels: &mut usize,
    layers: &mut usize,
    output: &mut crate::dist::PixelOutput,
) -> Result<()> {
    *channels = flags.channels.unwrap_or(*channels);
    *layers = flags.layers.unwrap_or(*layers);
    if let Some(o) = &flags.output {
        *output = o.parse()?;
    }
    Ok(())
}

/// The mean negative log-likelihood as a training loss (explicit models:
/// training and evaluation cannot disagree).
pub fn nll_loss(log_prob: Tensor) -> Result<super::Losses> {
    let nll = log_prob.neg()?.mean_all()?;
    Ok(super::Losses { total: nll.clone(), parts: vec![("nll", nll)] })
}

/// `shape` as a one-channel image `(H, W)`, or an error naming the model.
pub fn one_channel(name: &str, shape: &[usize]) -> Result<(usize, usize)> {
    match shape {
        [1, h, w] => Ok((*h, *w)),
        _ => Err(Error::config(format!(
            "the {name} model needs one-channel images (shape [1, H, W]); \
             this data has examples of shape {shape:?}"
        ))),
    }
}

/// Two-dimensional (or small) vectors: the toy mixtures, whose recipes differ.
pub fn is_toy(shape: &[usize]) -> bool {
    shape.len() == 1 && shape[0] <= 16
}

/// Parses a `--hidden`-style comma list of positive widths.
pub fn width_list(flag: &str, h: &str) -> Result<Vec<usize>> {
    h.split(',').map(|v| width(flag, v).map_err(|_| not_widths(flag, h))).collect()
}

/// Parses one positive width.
pub fn width(flag: &str, h: &str) -> Result<usize> {
    match h.trim().parse::<usize>() {
        Ok(v) if v > 0 => Ok(v),
        _ => Err(Error::config(format!("{flag}: `{h}` is not a positive number"))),
    }
}

fn not_widths(flag: &str, h: &str) -> Error {
    Error::config(format!("{flag}: `{h}` is not a comma list of positive numbers"))
}

/// The number of classes of labelled data: `given` (`--classes`), which every label must be
/// below, or else the largest label + 1, refused when most of those classes have no example (IDX
/// labels that are all 200 do not make a model of 201 classes without a word).
pub fn label_classes(data: &Dataset, what: &str, given: Option<usize>) -> Result<usize> {
    let Some(labels) = &data.labels else {
        return Err(Error::config(format!(
            "{}: {what} needs labelled data (this set has no labels)",
            data.source
        )));
    };
    let Some(&max) = labels.iter().max() else { return Ok(given.unwrap_or(0)) };
    if let Some(k) = given {
        if let Some(i) = labels.iter().position(|&l| l as usize >= k) {
            return Err(Error::config(format!(
                "{}: label {} of example {i} is not below --classes {k}",
                data.source, labels[i]
            )));
        }
        return Ok(k);
    }
    let k = max as usize + 1;
    // A set, not a table of k flags: a label of 4e9 must not allocate 4 GB.
    let used = labels.iter().collect::<std::collections::HashSet<_>>().len();
    if k > 10 && used * 2 < k {
        return Err(Error::config(format!(
            "{}: the labels use {used} of the {k} classes 0..{max} that the largest label \
            implies; pass --classes {k} if that is meant",
            data.source
        )));
    }
    Ok(k)
}

/// Refuses, by name, a model flag that `info`'s model does not take, saying
/// which models do (`all`: the registry).
pub fn refuse_flags_not_taken<'a>(
    flags: &ModelFlags,
    info: &ModelInfo,
    all: impl Iterator<Item = &'a ModelInfo> + Clone,
) -> Result<()> {
    for flag in given(flags) {
        let field = flag.trim_start_matches("--").replace('-', "_");
        if !info.flags.contains(&field.as_str()) {
            let takers: Vec<&str> =
                all.clone().filter(|m| m.flags.contains(&field.as_str())).map(|m| m.name).collect();
            return Err(Error::config(format!(
                "{flag} does not apply to the {} model (it applies to: {})",
                info.name,
                takers.join(", ")
            )));
        }
    }
    Ok(())
}

/// The adversarial trainer's flags, for the models trained adversarially.
pub fn check_trainer_flags<'a>(
    given: &[String],
    info: &ModelInfo,
    all: impl Iterator<Item = &'a ModelInfo>,
) -> Result<()> {
    match given.first() {
        Some(flag) if info.training != Training::Adversarial => {
            let takers: Vec<&str> =
                all.filter(|m| m.training == Training::Adversarial).map(|m| m.name).collect();
            Err(Error::config(format!(
                "{flag} does not apply to the {} model (it applies to the adversarial models: {})",
                info.name,
                takers.join(", ")
            )))
        }
        _ => Ok(()),
    }
}
