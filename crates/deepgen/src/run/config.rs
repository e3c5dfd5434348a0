//! A new run's config from [`TrainOptions`]: an optional config file, the
//! model's preset for the data's shape, the model flags its family takes,
//! the family's training recipe, then the run flags over it.

use std::path::PathBuf;

use super::options::{CriticFlags, TrainOptions};
use super::{DataConfig, RunConfig};
use crate::data::{Binarize, DataSpec};
use crate::error::{Error, Result};
use crate::models::ModelConfig;
use crate::recipe::{Schedule, TrainConfig};

/// `v` as a positive count, or an error naming `flag`.
pub fn positive(flag: &str, v: i64) -> Result<usize> {
    if v <= 0 {
        return Err(Error::config(format!("{flag} must be a positive integer, got {v}")));
    }
    Ok(v as usize)
}

/// `runs/MODEL`, or `runs/MODEL-2`, ... if taken (anything in it, or a file of that name).
pub fn free_run_dir(model: &str) -> PathBuf {
    let base = PathBuf::from("runs");
    let mut p = base.join(model);
    let mut k = 2;
    let taken = |p: &PathBuf| {
        p.exists() && std::fs::read_dir(p).map(|mut d| d.next().is_some()).unwrap_or(true)
    };
    while taken(&p) {
        p = base.join(format!("{model}-{k}"));
        k += 1;
    }
    p
}

fn read_config_file(o: &TrainOptions) -> Result<Option<RunConfig>> {
    let Some(p) = &o.run.config else { return Ok(None) };
    let text = std::fs::read_to_string(p).map_err(|e| Error::io(p, e))?;
    Ok(Some(super::dir::parse_config(&text, p)?))
}

/// Builds the run config of a new run from options (over an optional config file).
pub fn new_run_config(o: &TrainOptions) -> Result<RunConfig> {
    let a = &o.run;
    let file = read_config_file(o)?;
    let seed = a.seed.or(file.as_ref().map(|f| f.seed)).unwrap_or(0);
    let data_spec = a
        .data
        .clone()
        .or(file.as_ref().map(|f| f.data.train.clone()))
        .unwrap_or_else(|| "mnist".into());
    let spec: DataSpec = data_spec.parse()?;
    let raw = spec.load(seed)?;
    let in_unit = raw.x.iter().all(|v| (0.0..=1.0).contains(v));

    let name = o
        .model
        .clone()
        .or(file.as_ref().map(|f| f.model.name().to_string()))
        .unwrap_or_else(|| "vae".into());
    let mut model = match &file {
        Some(f) if f.model.name() == name && f.model.dim() == raw.dim() => f.model.clone(),
        _ => ModelConfig::preset(&name, &raw.shape, in_unit)?,
    };
    let mut flags = o.model_flags.clone();
    super::pretrained::read_text_encoder(&name, &mut flags)?;
    model.configure(&flags, &raw, seed)?;
    o.check_critic(model.info())?;

    let binarize = match &a.binarize {
        Some(b) => b.parse()?,
        None => match &file {
            Some(f) => f.data.binarize,
            None if model.needs_binary() && !raw.is_binary() && in_unit => Binarize::Static,
            None => Binarize::None,
        },
    };
    let (mean, std) = if a.standardize {
        if binarize != Binarize::None {
            return Err(Error::config(format!(
                "--standardize cannot be combined with --binarize {binarize:?}"
            )));
        }
        raw.moments()
    } else {
        file.as_ref().map(|f| (f.data.mean.clone(), f.data.std.clone())).unwrap_or_default()
    };
    let val = a
        .val
        .clone()
        .or(file.as_ref().and_then(|f| f.data.val.clone()))
        .or(spec.held_out().map(|s| s.to_string()));

    let mut train = match &file {
        Some(f) => f.train.clone(),
        None => ModelConfig::recipe(&name, &raw.shape)?,
    };
    apply_run_flags(o, &mut train)?;
    if let Some(c) = &mut train.adversarial {
        apply_critic_flags(&o.critic, c)?;
    }
    train.check()?;
    if let ModelConfig::Gan(c) = &model {
        if !train.batch_size.is_multiple_of(c.pack) {
            return Err(Error::config(format!(
                "--batch-size {} is not a multiple of --pack {}: the critic judges whole groups",
                train.batch_size, c.pack
            )));
        }
    }
    let (train_spec, train_b, val_b) = second_domain(o, file.as_ref(), &model, &spec, &raw)?;
    let data = DataConfig {
        train: train_spec.unwrap_or(data_spec),
        val,
        train_b,
        val_b,
        binarize,
        shape: raw.shape.clone(),
        mean,
        std,
    };
    Ok(RunConfig { seed, data, train, model })
}

/// A two-domain model's second domain (`--data-b`): (A's spec when it changes, B's spec, B's
/// held-out spec). Domains drawn from one base set get disjoint halves (`+part=1/2`,
/// `+part=2/2`), so that no example appears in both.
#[allow(clippy::type_complexity)]
fn second_domain(
    o: &TrainOptions,
    file: Option<&RunConfig>,
    model: &ModelConfig,
    spec: &DataSpec,
    raw: &crate::data::Dataset,
) -> Result<(Option<String>, Option<String>, Option<String>)> {
    let two = model.info().name == "cyclegan";
    let given = o.run.data_b.clone().or(file.and_then(|f| f.data.train_b.clone()));
    let Some(b) = given else {
        if two {
            return Err(Error::config(format!(
                "the {} model translates between two domains: give the second with --data-b \
                (e.g. --data mnist --data-b mnist+invert)",
                model.name()
            )));
        }
        return Ok((None, None, None));
    };
    if !two {
        return Err(Error::config(format!(
            "--data-b applies only to two-domain models (cyclegan), not {}",
            model.name()
        )));
    }
    if file.is_some_and(|f| f.data.train_b.as_deref() == Some(&b)) && o.run.data.is_none() {
        // A config file already holds the split specs.
        let f = file.and_then(|f| f.data.val_b.clone());
        return Ok((None, Some(b), f));
    }
    let spec_b: DataSpec = b.parse().map_err(|e| Error::config(format!("--data-b: {e}")))?;
    let raw_b = spec_b.load(0)?;
    if raw_b.shape != raw.shape {
        return Err(Error::Shape(format!(
            "--data-b {b}: images of shape {:?}, but --data {} has {:?}; both domains need one \
            shape (a modifier such as +tint or +upscale=N can make them agree)",
            raw_b.shape, raw.source, raw.shape
        )));
    }
    let val_b = spec_b.held_out().map(|s| s.to_string());
    let base = |s: &DataSpec| match s {
        DataSpec::Modified { base, .. } => base.to_string(),
        other => other.to_string(),
    };
    let split = |s: &DataSpec| match s {
        DataSpec::Modified { mods, .. } => {
            mods.iter().any(|(_, m)| matches!(m, crate::data::modify::Modifier::Part(..)))
        }
        _ => false,
    };
    if base(spec) == base(&spec_b) && !split(spec) && !split(&spec_b) {
        return Ok((Some(format!("{spec}+part=1/2")), Some(format!("{b}+part=2/2")), val_b));
    }
    Ok((None, Some(b), val_b))
}

fn apply_run_flags(o: &TrainOptions, train: &mut TrainConfig) -> Result<()> {
    let a = &o.run;
    if let Some(b) = a.beta1 {
        train.optimizer.beta1 = b;
    }
    if let Some(b) = a.beta2 {
        train.optimizer.beta2 = b;
    }
    if let Some(s) = a.steps {
        train.steps = positive("--steps", s)?;
    }
    if let Some(b) = a.batch_size {
        train.batch_size = positive("--batch-size", b)?;
    }
    if let Some(s) = a.shards {
        train.shards = positive("--shards", s)?;
    }
    if let Some(lr) = a.lr {
        train.lr = lr;
    }
    if let Some(s) = &a.schedule {
        train.schedule = s.parse::<Schedule>()?;
    }
    if let Some(w) = a.warmup {
        train.warmup = w;
    }
    if a.grad_clip.is_some() {
        train.grad_clip = a.grad_clip;
    }
    if let Some(w) = a.weight_decay {
        train.optimizer.weight_decay = w;
    }
    if let Some(e) = a.eval_every {
        train.eval_every = positive("--eval-every", e)?;
    }
    Ok(())
}

fn apply_critic_flags(f: &CriticFlags, c: &mut crate::recipe::AdversarialConfig) -> Result<()> {
    if let Some(v) = f.d_lr {
        c.d_lr = v;
    }
    if let Some(s) = &f.d_schedule {
        c.d_schedule = Some(s.parse::<Schedule>()?);
    }
    if let Some(v) = f.n_critic {
        c.n_critic = positive("--n-critic", v)?;
    }
    if f.clip.is_some() {
        c.clip = f.clip;
    }
    if f.gp.is_some() {
        c.gp = f.gp;
    }
    if f.drift.is_some() {
        c.drift = f.drift;
    }
    if let Some(k) = f.unroll {
        c.unroll = k;
    }
    c.first_order |= f.first_order;
    c.unroll_same_batch |= f.unroll_same_batch;
    c.check()
}
