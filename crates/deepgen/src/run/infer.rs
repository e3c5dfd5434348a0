//! The inference calls a program makes on a loaded run, shared by `deepgen sample` and the
//! service (`deepgen serve`), so that both give the same numbers for the same seed: what the
//! run can do ([`Capabilities`]), conditioned draws ([`draw`]), request rows under the run's
//! transforms ([`rows_dataset`]), scores with the saved anomaly threshold ([`score_rows`]),
//! and the latent space ([`encode`], [`decode`]).

use std::path::{Path, PathBuf};

use candle_core::Tensor;
use serde::Serialize;

use super::{RunConfig, RunDir};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::eval::scores::{self, Threshold};
use crate::models::{
    Aae, Density, Gan, Labels, Model, ModelConfig, PuzzleGan, Sampler, TextGan, Vae,
};
use crate::rng::{self, Rng};

/// A run opened once for many calls: its directory, config, model, step and the anomaly
/// threshold `deepgen detect` saved for it (`RUN/detect/threshold.json`), if any.
pub struct Loaded {
    pub path: PathBuf,
    pub dir: RunDir,
    pub cfg: RunConfig,
    pub model: Model,
    pub step: usize,
    pub threshold: Option<Threshold>,
}

impl Loaded {
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_on(path, &candle_core::Device::Cpu)
    }

    /// [`Loaded::open`] with the model on `dev`.
    pub fn open_on(path: &Path, dev: &candle_core::Device) -> Result<Self> {
        let (dir, cfg, model) = super::open_on(path, dev)?;
        let step = dir.checkpoint_info().map(|i| i.step).unwrap_or(0);
        let file = dir.file("detect/threshold.json");
        let threshold = if file.is_file() { Some(Threshold::read(&file)?) } else { None };
        Ok(Self { path: path.to_path_buf(), dir, cfg, model, step, threshold })
    }

    /// The shape of one example: the run's data shape, or `[D]`.
    pub fn shape(&self) -> Vec<usize> {
        if self.cfg.data.shape.is_empty() {
            vec![self.model.config.dim()]
        } else {
            self.cfg.data.shape.clone()
        }
    }
}

/// The prior of a latent space, for a client that moves through it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Prior {
    /// N(0, I).
    Normal,
    /// U[-1, 1]^d.
    Uniform,
    /// The AAE's chosen prior (a mixture, a file): N(0, I) is only a guide.
    Other,
}

/// What a loaded run offers a caller.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Capabilities {
    /// `exact`, `bound` (an importance-weighted lower bound) or `none`.
    pub density: &'static str,
    pub sample: bool,
    /// Classes a sample can be conditioned on (cGAN), 0 for none.
    pub classes: usize,
    /// Captions a sample can be conditioned on (text-gan).
    pub text: bool,
    /// `latent` (VAE, AAE codes), `features` (a feature layer) or `none`.
    pub encode: &'static str,
    /// The latent space that `decode` reads: its size and prior.
    pub latent: Option<(usize, Prior)>,
    pub interpolate: bool,
    pub translate: bool,
    pub complete: bool,
    pub assemble: bool,
}

/// What `model` offers.
pub fn capabilities(model: &Model) -> Capabilities {
    let info = model.info();
    let latent = latent(model);
    let density = match info.density {
        Density::Exact if info.labels != Labels::Target => "exact",
        Density::Bound => "bound",
        _ => "none",
    };
    let encode = if model.get::<Vae>().is_some() || model.get::<Aae>().is_some() {
        "latent"
    } else if model.has_features() {
        "features"
    } else {
        "none"
    };
    let text = model.get::<TextGan>().is_some();
    Capabilities {
        density,
        sample: info.sampler && model.get::<PuzzleGan>().is_none(),
        classes: model.get::<Gan>().map(|g| g.cfg.classes).unwrap_or(0),
        text,
        encode,
        latent,
        interpolate: latent.is_some() || text,
        translate: model.as_translator().is_some(),
        complete: info.completion,
        assemble: model.get::<PuzzleGan>().is_some(),
    }
}

/// The latent space `decode` reads, if the model has one.
pub fn latent(model: &Model) -> Option<(usize, Prior)> {
    if let ModelConfig::Vae(c) = &model.config {
        return Some((c.latent, Prior::Normal));
    }
    if let Some(a) = model.get::<Aae>() {
        return Some((a.cfg.latent, Prior::Other));
    }
    let g = model.get::<Gan>()?;
    let prior = if g.cfg.noise.bound().is_some() { Prior::Uniform } else { Prior::Normal };
    Some((g.cfg.latent, prior))
}

/// A sample's condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// A class of a conditional GAN.
    Class(u32),
    /// A caption of a text-conditional GAN, one per sample.
    Text(String),
}

/// Checks that `model` takes `cond`; `what` names the run in the message.
pub fn check_condition(model: &Model, cond: Option<&Condition>, what: &str) -> Result<()> {
    if model.get::<PuzzleGan>().is_some() {
        return Err(Error::config(format!(
            "{what}: a puzzle-gan run makes wholes from key patches: use deepgen assemble {what}"
        )));
    }
    match cond {
        None => Ok(()),
        Some(Condition::Class(k)) => {
            let classes = model.get::<Gan>().map(|g| g.cfg.classes).unwrap_or(0);
            if classes == 0 {
                return Err(Error::config(format!(
                    "class applies only to conditional runs (cgan); {what} is a {} run",
                    model.name()
                )));
            }
            if *k as usize >= classes {
                return Err(Error::config(format!(
                    "class {k} is out of range: the run has classes 0..{}",
                    classes - 1
                )));
            }
            Ok(())
        }
        Some(Condition::Text(t)) => {
            let g = model.get::<TextGan>().ok_or_else(|| {
                Error::config(format!(
                    "text applies only to text-conditional runs (text-gan); {what} is a {} run",
                    model.name()
                ))
            })?;
            g.cfg.text.vocab.row(t).map(|_| ())
        }
    }
}

/// `n` draws, `[n, D]` in the model's units, under `cond` (checked by [`check_condition`]);
/// `mean` gives a VAE's decoder means. `deepgen sample` draws by this in batches.
pub fn draw(
    model: &Model,
    n: usize,
    cond: Option<&Condition>,
    mean: bool,
    rng: &mut Rng,
) -> Result<Tensor> {
    match cond {
        Some(Condition::Class(k)) => {
            let g = model.get::<Gan>().ok_or_else(|| Error::config("class needs a cgan run"))?;
            g.sample_with(n, Some(&vec![*k; n]), rng)
        }
        Some(Condition::Text(t)) => {
            let g =
                model.get::<TextGan>().ok_or_else(|| Error::config("text needs a text-gan run"))?;
            g.sample_captions(&vec![t.clone(); n], rng)
        }
        None => match model.get::<Vae>().filter(|_| mean) {
            Some(v) => v.sample_mean(n, rng),
            None => model.sample(n, rng),
        },
    }
}

/// Rows a caller sent (`n * D` values in data units, of `shape`) as a data set under the run's
/// transforms (standardisation, a static binarization), with the log-determinant those add.
/// `source` names the rows in messages and fixes the static binarization's draw.
pub fn rows_dataset(
    l: &Loaded,
    x: Vec<f32>,
    shape: &[usize],
    source: &str,
) -> Result<(Dataset, f64)> {
    let want = l.shape();
    let (dim, want_dim) = (shape.iter().product::<usize>(), want.iter().product::<usize>());
    if dim != want_dim {
        return Err(Error::Shape(format!(
            "{source}: examples of shape {shape:?} ({dim} values), but {} takes {want:?} \
            ({want_dim} values)",
            l.path.display()
        )));
    }
    let mut d = Dataset::new(source, x, want, None)?;
    super::apply_transforms(&mut d, &l.cfg, false)
}

/// Each example's score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExampleScore {
    /// log p(x) in nats (a lower bound for the VAE), in data units.
    pub log_p_nats: f64,
    pub bits_per_dim: f64,
    /// The saved threshold's score, when the run has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anomaly_score: Option<f64>,
    /// Whether that score is above the threshold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anomalous: Option<bool>,
}

/// Scores `data` (from [`rows_dataset`]) under `l`: log p per example with the rng of `deepgen
/// score` (`seed`, "test-nll"), and the saved threshold's flags with that of `deepgen detect
/// --threshold-from` ("detect-score").
pub fn score_rows(
    l: &Loaded,
    data: &Dataset,
    log_det: f64,
    seed: u64,
) -> Result<Vec<ExampleScore>> {
    l.model.check_dim(data.dim(), &data.source)?;
    let mut r = rng::derived(seed, "test-nll", 0);
    let rep = super::score(&l.model, data, log_det, super::SCORE_BATCH, &mut r)?;
    let flags = match &l.threshold {
        Some(t) => {
            let mut r = rng::derived(seed, "detect-score", 0);
            let s = scores::score_with_reference(
                &l.model,
                data,
                log_det,
                t.score,
                t.reference,
                &mut r,
            )?;
            Some(s)
        }
        None => None,
    };
    Ok(rep
        .log_prob
        .iter()
        .enumerate()
        .map(|(i, lp)| {
            let a = flags.as_ref().map(|s| s[i]);
            ExampleScore {
                log_p_nats: *lp,
                bits_per_dim: rep.bpd(*lp),
                anomaly_score: a,
                anomalous: a.zip(l.threshold.as_ref()).map(|(s, t)| s > t.threshold),
            }
        })
        .collect())
}

/// Codes of `x` (`[B, D]`, the model's units): the VAE's posterior means, the AAE's codes, or
/// the feature layer of the models that have one.
pub fn encode(model: &Model, x: &Tensor) -> Result<Tensor> {
    if let Some(v) = model.get::<Vae>() {
        return Ok(v.encode(x)?.0);
    }
    if let Some(a) = model.get::<Aae>() {
        return a.encode(x);
    }
    model.features(x)
}

/// Examples `[B, D]` (the model's units) from latent points `z` (`[B, L]`): the VAE's decoder
/// means, the AAE's decoder, a GAN's generator (a cGAN at `class`, an InfoGAN with codes drawn
/// from `rng`).
pub fn decode(model: &Model, z: &Tensor, class: Option<u32>, rng: &mut Rng) -> Result<Tensor> {
    let Some((l, _)) = latent(model) else {
        return Err(Error::config(format!(
            "the {} model has no latent space to decode from (vae, aae and GANs do)",
            model.name()
        )));
    };
    if z.dim(1)? != l {
        return Err(Error::Shape(format!(
            "z: points of {} values, but the latent space has {l}",
            z.dim(1)?
        )));
    }
    if let Some(v) = model.get::<Vae>() {
        return v.decode_mean(z);
    }
    if let Some(a) = model.get::<Aae>() {
        return a.decode(z);
    }
    let g = model.get::<Gan>().ok_or_else(|| Error::config("no generator"))?;
    let n = z.dim(0)?;
    let cond = match (g.cfg.classes, class) {
        (0, Some(_)) => return Err(Error::config("class applies only to conditional runs (cgan)")),
        (0, None) if !g.cfg.is_info() => None,
        (c, Some(k)) if k as usize >= c => {
            return Err(Error::config(format!(
                "class {k} is out of range: the run has classes 0..{}",
                c - 1
            )))
        }
        (c, Some(k)) => Some(crate::nn::one_hot(&vec![k; n], c, z.device())?),
        _ => Some(g.sample_condition(n, rng)?),
    };
    g.generate(z, cond.as_ref(), false)
}

/// Examples `[n, D]` in the model's units as values in data units (the run's standardisation
/// undone), row-major.
pub fn to_data_values(x: &Tensor, cfg: &RunConfig) -> Result<Vec<f32>> {
    let mut v = x.flatten_all()?.to_vec1::<f32>()?;
    super::to_data_units(&mut v, cfg);
    Ok(v)
}
