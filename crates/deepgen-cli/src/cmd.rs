//! The subcommands. Each validates its arguments, calls the library and prints.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::Device;
use deepgen::data::{Binarize, DataSpec};
use deepgen::models::{Model, ModelConfig, MODELS};
use deepgen::rng;
use deepgen::run;
use deepgen::train::checkpoint::DataConfig;
use deepgen::train::{LikelihoodTrainer, RunConfig, RunDir, Schedule, TrainConfig};
use indicatif::{ProgressBar, ProgressStyle};

use crate::{CompleteArgs, InfoArgs, ModelsArgs, SampleArgs, ScoreArgs, TrainArgs};
use deepgen::models::{Divergence, GanLoss, ADVERSARIAL};
use deepgen::train::{AdversarialConfig, AdversarialTrainer};

fn device(name: &str) -> Result<Device> {
    match name {
        "cpu" => Ok(Device::Cpu),
        "cuda" => bail!("--device cuda: this build has no CUDA support; use --device cpu"),
        other => bail!("--device: unknown device `{other}` (expected cpu or cuda)"),
    }
}

pub(crate) fn positive(flag: &str, v: i64) -> Result<usize> {
    if v <= 0 {
        bail!("{flag} must be a positive integer, got {v}");
    }
    Ok(v as usize)
}

/// Flags that define a run and so cannot change on --resume.
fn reject_on_resume(a: &TrainArgs) -> Result<()> {
    let given: [(&str, bool); 48] = [
        ("--g-ema", a.g_ema.is_some()),
        ("--noise", a.noise.is_some()),
        ("--d-schedule", a.d_schedule.is_some()),
        ("--unroll-same-batch", a.unroll_same_batch),
        ("--pack", a.pack.is_some()),
        ("--loss", a.loss.is_some()),
        ("--g-norm", a.g_norm),
        ("--divergence", a.divergence.is_some()),
        ("--d-hidden", a.d_hidden.is_some()),
        ("--d-lr", a.d_lr.is_some()),
        ("--n-critic", a.n_critic.is_some()),
        ("--clip", a.clip.is_some()),
        ("--gp", a.gp.is_some()),
        ("--unroll", a.unroll.is_some()),
        ("--first-order", a.first_order),
        ("--beta1", a.beta1.is_some()),
        ("--beta2", a.beta2.is_some()),
        ("--classes", a.classes.is_some()),
        ("--categorical", a.categorical.is_some()),
        ("--continuous", a.continuous.is_some()),
        ("--info-weight", a.info_weight.is_some()),
        ("--prior", a.prior.is_some()),
        ("--arch", a.arch.is_some()),
        ("--latent", a.latent.is_some()),
        ("--channels", a.channels.is_some()),
        ("--layers", a.layers.is_some()),
        ("--output", a.output.is_some()),
        ("--components", a.components.is_some()),
        ("--masks", a.masks.is_some()),
        ("--order-agnostic", a.order_agnostic),
        ("--connectivity-agnostic", a.connectivity_agnostic),
        ("--data", a.data.is_some()),
        ("--val", a.val.is_some()),
        ("--config", a.config.is_some()),
        ("--batch-size", a.batch_size.is_some()),
        ("--lr", a.lr.is_some()),
        ("--schedule", a.schedule.is_some()),
        ("--warmup", a.warmup.is_some()),
        ("--grad-clip", a.grad_clip.is_some()),
        ("--weight-decay", a.weight_decay.is_some()),
        ("--eval-every", a.eval_every.is_some()),
        ("--seed", a.seed.is_some()),
        ("--binarize", a.binarize.is_some()),
        ("--standardize", a.standardize),
        ("--hidden", a.hidden.is_some()),
        ("--iw-samples", a.iw_samples.is_some()),
        ("--out", a.out.is_some()),
        ("--device", a.device != "cpu"),
    ];
    if let Some((flag, _)) = given.iter().find(|g| g.1) {
        bail!("{flag} cannot be combined with --resume: the run's config.toml fixes it (only --steps may change)");
    }
    Ok(())
}

/// Default steps per model: each finishes in a few minutes on 2 cores
/// (measured on MNIST, batch 64: PixelCNN ~4 min, gated PixelCNN and the PixelRNNs ~5-10 min).
fn default_steps(model: &str, toy: bool) -> usize {
    match model {
        "classifier" => 1500,
        "vae" => 4000,
        "gan" | "unrolled-gan" | "fgan" | "wgan" | "wgan-gp" if toy => 10_000,
        "aae" => 3000,
        "gated-pixelcnn" | "row-lstm" | "diagonal-bilstm" => 1000,
        _ => 2000,
    }
}

/// Default batch: 64 for the convolutional and recurrent image models (the
/// budget of bench/ar_table.sh), 128 otherwise.
fn default_batch(model: &str, toy: bool) -> usize {
    match model {
        _ if toy && ADVERSARIAL.contains(&model) => 512,
        "pixelcnn" | "gated-pixelcnn" | "row-lstm" | "diagonal-bilstm" | "dcgan" | "cgan" | "infogan" | "gan" | "fgan" | "wgan" | "wgan-gp" | "unrolled-gan" => 64,
        _ => 128,
    }
}

/// Default Adam learning rate per model. The shallow models need large steps:
/// an independent pixel's logit must travel to about -6 for background pixels,
/// and at 1e-3 per step Adam takes thousands of steps to get there (measured on
/// MNIST, 2,000 steps: Bernoulli 281 nats at 1e-3, 207 at 0.05, optimum ~206;
/// FVSBN 140 at 1e-3, 108 at 0.01).
fn default_lr(model: &str, toy: bool) -> f64 {
    match model {
        "bernoulli" => 0.05,
        "fvsbn" => 0.01,
        "wgan" => 5e-5,
        "wgan-gp" => 1e-4,
        "aae" => 1e-3,
        _ if toy && ADVERSARIAL.contains(&model) => 1e-3,
        _ if ADVERSARIAL.contains(&model) => 2e-4,
        _ => 1e-3,
    }
}

/// The adversarial trainer's defaults per variant. Toy GANs: Metz et al.
/// 2017's generator lr 1e-3 and Adam beta1 0.5, with the critic at 2e-4 and
/// both decayed by a cosine schedule over 10,000 steps (the settings of
/// bench/modes_table.sh: the Unrolled GAN covers 8/8 ring modes on 5 of 5
/// seeds with 90.5 % high-quality samples; at 6,000 steps 85.6 %; Metz's
/// critic 1e-4 without decay had not converged after 2,000 steps);
/// image GANs DCGAN's 2e-4 for both; WGAN the paper's 5e-5 with n_critic 5 and
/// clipping at 0.01 (Adam with beta1 = 0 in place of RMSProp); WGAN-GP
/// Gulrajani et al.'s lambda 10, n_critic 5, Adam(1e-4, 0, 0.9).
fn default_adversarial(model: &str) -> AdversarialConfig {
    let mut c = AdversarialConfig { d_lr: 2e-4, ..AdversarialConfig::default() };
    match model {
        "wgan" => {
            c.d_lr = 5e-5;
            c.n_critic = 5;
            c.clip = Some(0.01);
        }
        "wgan-gp" => {
            c.d_lr = 1e-4;
            c.n_critic = 5;
            c.gp = Some(10.0);
        }
        "unrolled-gan" => c.unroll = 5,
        "aae" => c.d_lr = 2e-4,
        _ => {}
    }
    c
}

fn free_run_dir(model: &str) -> PathBuf {
    let base = PathBuf::from("runs");
    let mut p = base.join(model);
    let mut k = 2;
    while p.join("model.safetensors").exists() || p.join("config.toml").exists() {
        p = base.join(format!("{model}-{k}"));
        k += 1;
    }
    p
}

/// Builds the run config of a new run from flags (over an optional config file).
fn new_run_config(a: &TrainArgs) -> Result<RunConfig> {
    let file: Option<RunConfig> = match &a.config {
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("{}", p.display()))?;
            Some(toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {}", p.display(), e.message()))?)
        }
        None => None,
    };
    let seed = a.seed.or(file.as_ref().map(|f| f.seed)).unwrap_or(0);
    let data_spec = a.data.clone().or(file.as_ref().map(|f| f.data.train.clone())).unwrap_or_else(|| "mnist".into());
    let spec: DataSpec = data_spec.parse()?;
    let raw = spec.load(seed)?;
    let in_unit = raw.x.iter().all(|v| (0.0..=1.0).contains(v));

    let name = a.model.clone().or(file.as_ref().map(|f| f.model.name().to_string())).unwrap_or_else(|| "vae".into());
    let mut model = match &file {
        Some(f) if f.model.name() == name && f.model.dim() == raw.dim() => f.model.clone(),
        _ => ModelConfig::preset(&name, &raw.shape, in_unit)?,
    };
    let number = |h: &str| -> Result<usize> {
        match h.trim().parse::<usize>() {
            Ok(v) if v > 0 => Ok(v),
            _ => bail!("--hidden: `{h}` is not a positive number"),
        }
    };
    let list = |h: &str| -> Result<Vec<usize>> { h.split(',').map(number).collect::<Result<_>>().map_err(|_| anyhow::anyhow!("--hidden: `{h}` is not a comma list of positive numbers")) };
    match (&mut model, &a.hidden) {
        (ModelConfig::Gan(c), Some(h)) => c.g_hidden = list(h)?,
        (ModelConfig::Aae(c), Some(h)) => c.hidden = list(h)?,
        (ModelConfig::Nade(c), Some(h)) => c.hidden = number(h)?,
        (ModelConfig::Rnade(c), Some(h)) => c.hidden = number(h)?,
        (ModelConfig::Made(c), Some(h)) => c.hidden = list(h)?,
        (ModelConfig::Vae(c), Some(h)) => c.hidden = list(h)?,
        (ModelConfig::Classifier(c), Some(h)) => c.hidden = number(h)?,
        (_, Some(_)) => bail!("--hidden does not apply to the {name} model"),
        _ => {}
    }
    if let Some(ch) = a.channels {
        match &mut model {
            ModelConfig::PixelCnn(c) => c.channels = ch,
            ModelConfig::PixelRnn(c) => c.channels = ch,
            ModelConfig::Gan(c) if c.arch == deepgen::models::Arch::Dcgan => c.channels = ch,
            ModelConfig::Classifier(c) => c.channels = ch,
            _ => bail!("--channels applies only to the pixelcnn, pixelrnn, dcgan-architecture and classifier models"),
        }
    }
    if let Some(l) = a.layers {
        match &mut model {
            ModelConfig::PixelCnn(c) => c.layers = l,
            ModelConfig::PixelRnn(c) => c.layers = l,
            _ => bail!("--layers applies only to the pixelcnn and pixelrnn models"),
        }
    }
    if let Some(o) = &a.output {
        let o = o.parse()?;
        match model.output_mut() {
            Some(out) => *out = o,
            None => bail!("--output applies only to the pixelcnn and pixelrnn models"),
        }
    }
    if let Some(k) = a.components {
        match &mut model {
            ModelConfig::Rnade(c) => c.components = k,
            _ => bail!("--components applies only to the rnade model"),
        }
    }
    if a.masks.is_some() || a.order_agnostic || a.connectivity_agnostic {
        match &mut model {
            ModelConfig::Made(c) => {
                c.masks = a.masks.unwrap_or(c.masks);
                c.order_agnostic |= a.order_agnostic;
                c.connectivity_agnostic |= a.connectivity_agnostic;
            }
            _ => bail!("--masks, --order-agnostic and --connectivity-agnostic apply only to the made model"),
        }
    }
    if let ModelConfig::Made(c) = &mut model {
        c.mask_seed = seed;
    }
    if let ModelConfig::Classifier(c) = &mut model {
        let Some(labels) = &raw.labels else { bail!("{}: the classifier needs labelled data (this set has no labels)", raw.source) };
        c.classes = labels.iter().max().map(|m| *m as usize + 1).unwrap_or(0).max(2);
    }
    if let Some(l) = a.latent {
        match &mut model {
            ModelConfig::Vae(c) => c.latent = l,
            ModelConfig::Gan(c) => c.latent = l,
            ModelConfig::Aae(c) => c.latent = l,
            _ => bail!("--latent applies only to the vae, gan and aae models"),
        }
    }
    apply_adversarial_flags(a, &mut model, &raw)?;
    if let Some(k) = a.iw_samples {
        match &mut model {
            ModelConfig::Vae(c) => c.iw_samples = k,
            _ => bail!("--iw-samples applies only to the vae model"),
        }
    }

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
            bail!("--standardize cannot be combined with --binarize {binarize:?}");
        }
        raw.moments()
    } else {
        file.as_ref().map(|f| (f.data.mean.clone(), f.data.std.clone())).unwrap_or_default()
    };
    let val = a.val.clone().or(file.as_ref().and_then(|f| f.data.val.clone())).or(spec.held_out().map(|s| s.to_string()));

    let toy = raw.shape.len() == 1 && raw.dim() <= 16;
    let adversarial = ADVERSARIAL.contains(&name.as_str());
    let mut train = file.as_ref().map(|f| f.train.clone()).unwrap_or_else(|| {
        let mut t = TrainConfig { steps: default_steps(&name, toy), batch_size: default_batch(&name, toy), lr: default_lr(&name, toy), ..TrainConfig::default() };
        if adversarial {
            t.adversarial = Some(default_adversarial(&name));
            if toy {
                t.schedule = Schedule::Cosine;
            }
            t.optimizer.beta1 = if name.starts_with("wgan") { 0.0 } else { 0.5 };
            if name == "wgan-gp" {
                t.optimizer.beta2 = 0.9;
            }
        }
        if name == "classifier" {
            // Measured on the embedded MNIST (8,000 digits; 1,500 steps of 128): constant lr 96.0 % test accuracy, the
            // validation loss rising after step 500 (600 steps: 96.8 %); cosine with AdamW decay 0.1: 97.1 %.
            t.schedule = Schedule::Cosine;
            t.optimizer.weight_decay = 0.1;
        }
        t
    });
    if let Some(b) = a.beta1 {
        train.optimizer.beta1 = b;
    }
    if let Some(b) = a.beta2 {
        train.optimizer.beta2 = b;
    }
    let adv_flags = a.d_lr.is_some() || a.d_schedule.is_some() || a.n_critic.is_some() || a.clip.is_some() || a.gp.is_some() || a.unroll.is_some() || a.first_order || a.unroll_same_batch;
    match (&mut train.adversarial, adv_flags) {
        (Some(c), _) => {
            if let Some(v) = a.d_lr {
                c.d_lr = v;
            }
            if let Some(s) = &a.d_schedule {
                c.d_schedule = Some(s.parse::<Schedule>()?);
            }
            if let Some(v) = a.n_critic {
                c.n_critic = positive("--n-critic", v)?;
            }
            if a.clip.is_some() {
                c.clip = a.clip;
            }
            if a.gp.is_some() {
                c.gp = a.gp;
            }
            if let Some(k) = a.unroll {
                c.unroll = k;
            }
            c.first_order |= a.first_order;
            c.unroll_same_batch |= a.unroll_same_batch;
            c.check()?;
        }
        (None, true) => bail!("--d-lr, --d-schedule, --n-critic, --clip, --gp, --unroll, --first-order and --unroll-same-batch apply only to the adversarial models ({})", ADVERSARIAL.join(", ")),
        (None, false) => {}
    }
    if let Some(s) = a.steps {
        train.steps = positive("--steps", s)?;
    }
    if let Some(b) = a.batch_size {
        train.batch_size = positive("--batch-size", b)?;
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
    train.check()?;
    if let ModelConfig::Gan(c) = &model {
        if !train.batch_size.is_multiple_of(c.pack) {
            bail!("--batch-size {} is not a multiple of --pack {}: the critic judges whole groups", train.batch_size, c.pack);
        }
    }
    Ok(RunConfig { seed, data: DataConfig { train: data_spec, val, binarize, shape: raw.shape.clone(), mean, std }, train, model })
}

/// The GAN and AAE flags of `deepgen train`.
fn apply_adversarial_flags(a: &TrainArgs, model: &mut ModelConfig, raw: &deepgen::data::Dataset) -> Result<()> {
    let list = |flag: &str, h: &str| -> Result<Vec<usize>> {
        h.split(',').map(|v| v.trim().parse::<usize>().ok().filter(|&n| n > 0).ok_or_else(|| anyhow::anyhow!("{flag}: `{h}` is not a comma list of positive numbers"))).collect()
    };
    let name = model.name();
    match model {
        ModelConfig::Gan(c) => {
            if let Some(arch) = &a.arch {
                c.arch = match arch.as_str() {
                    "mlp" => deepgen::models::Arch::Mlp,
                    "dcgan" => deepgen::models::Arch::Dcgan,
                    other => bail!("--arch: unknown architecture `{other}` (expected mlp or dcgan)"),
                };
            }
            if let Some(l) = &a.loss {
                c.loss = l.parse()?;
            }
            if let Some(d) = &a.divergence {
                if c.variant != "fgan" && !matches!(c.loss, GanLoss::F(_)) {
                    bail!("--divergence applies only to the fgan model (or --loss with an f-divergence)");
                }
                c.loss = GanLoss::F(d.parse::<Divergence>()?);
            }
            if let Some(h) = &a.d_hidden {
                c.d_hidden = list("--d-hidden", h)?;
            }
            if let Some(m) = a.pack {
                c.pack = m;
            }
            if let Some(b) = a.g_ema {
                c.ema = b;
            }
            if let Some(n) = &a.noise {
                c.noise = n.parse()?;
            }
            if a.g_norm {
                if c.arch != deepgen::models::Arch::Mlp {
                    bail!("--g-norm applies only to MLP players (the DCGAN generator always has batch norm)");
                }
                c.g_norm = true;
            }
            if c.variant == "cgan" {
                let Some(labels) = &raw.labels else { bail!("{}: a conditional GAN needs labelled data (this set has no labels)", raw.source) };
                c.classes = a.classes.unwrap_or(labels.iter().max().map(|m| *m as usize + 1).unwrap_or(1));
            } else if a.classes.is_some() {
                bail!("--classes applies only to the cgan model");
            }
            if c.variant == "infogan" {
                c.categorical = a.categorical.unwrap_or(c.categorical);
                c.continuous = a.continuous.unwrap_or(c.continuous);
                c.info_weight = a.info_weight.unwrap_or(c.info_weight);
                if c.codes() == 0 {
                    bail!("infogan: give at least one code (--categorical K or --continuous M)");
                }
            } else if a.categorical.is_some() || a.continuous.is_some() || a.info_weight.is_some() {
                bail!("--categorical, --continuous and --info-weight apply only to the infogan model");
            }
            if a.prior.is_some() {
                bail!("--prior applies only to the aae model");
            }
            c.check()?;
        }
        ModelConfig::Aae(c) => {
            if let Some(p) = &a.prior {
                c.prior = p.parse()?;
            }
            if let Some(h) = &a.d_hidden {
                c.d_hidden = list("--d-hidden", h)?;
            }
            let bad = [
                ("--g-norm", a.g_norm),
                ("--g-ema", a.g_ema.is_some()),
                ("--noise", a.noise.is_some()),
                ("--pack", a.pack.is_some()),
                ("--loss", a.loss.is_some()),
                ("--divergence", a.divergence.is_some()),
                ("--classes", a.classes.is_some()),
                ("--categorical", a.categorical.is_some()),
                ("--continuous", a.continuous.is_some()),
                ("--arch", a.arch.is_some()),
            ];
            if let Some((f, _)) = bad.iter().find(|b| b.1) {
                bail!("{f} does not apply to the aae model");
            }
        }
        _ => {
            let bad = [
                ("--loss", a.loss.is_some()),
                ("--divergence", a.divergence.is_some()),
                ("--d-hidden", a.d_hidden.is_some()),
                ("--g-norm", a.g_norm),
                ("--g-ema", a.g_ema.is_some()),
                ("--noise", a.noise.is_some()),
                ("--pack", a.pack.is_some()),
                ("--classes", a.classes.is_some()),
                ("--categorical", a.categorical.is_some()),
                ("--continuous", a.continuous.is_some()),
                ("--info-weight", a.info_weight.is_some()),
                ("--prior", a.prior.is_some()),
                ("--arch", a.arch.is_some()),
            ];
            if let Some((f, _)) = bad.iter().find(|b| b.1) {
                bail!("{f} does not apply to the {name} model (only to the adversarial models: {})", ADVERSARIAL.join(", "));
            }
        }
    }
    Ok(())
}

pub fn train(a: TrainArgs) -> Result<()> {
    let dev = device(&a.device)?;
    let (dir, cfg, model, start) = match &a.resume {
        Some(r) => {
            reject_on_resume(&a)?;
            let dir = RunDir::open(r)?;
            let mut cfg = dir.read_config()?;
            if let Some(m) = &a.model {
                if m != cfg.model.name() {
                    bail!("{}: holds a {} run, not {m} (a checkpoint of another model)", r.display(), cfg.model.name());
                }
            }
            if let Some(s) = a.steps {
                cfg.train.steps = positive("--steps", s)?;
            }
            let (model, step) = dir.load_model(&dev)?;
            if model.config != cfg.model {
                bail!("{}: config.toml and model.safetensors describe different models", r.display());
            }
            if step >= cfg.train.steps {
                bail!("{}: the run is already at step {step}; pass --steps larger than {step} to continue", r.display());
            }
            dir.truncate_metrics(step)?;
            dir.write_config(&cfg)?;
            (dir, cfg, model, step)
        }
        None => {
            let cfg = new_run_config(&a)?;
            let path = a.out.clone().unwrap_or_else(|| free_run_dir(cfg.model.name()));
            if path.join("model.safetensors").exists() {
                bail!("{}: already holds a run; continue it with --resume {} or choose another --out", path.display(), path.display());
            }
            let dir = RunDir::create(&path)?;
            let _ = std::fs::remove_file(dir.file("metrics.jsonl"));
            dir.write_config(&cfg)?;
            let model = Model::new(&cfg.model, cfg.seed, &dev)?;
            (dir, cfg, model, 0)
        }
    };

    let (train_data, _) = run::load_transformed(&cfg.data.train, &cfg, true)?;
    model.check_dim(train_data.dim(), &train_data.source)?;
    let val = match &cfg.data.val {
        Some(v) => Some(run::load_transformed(v, &cfg, false)?),
        None => None,
    };
    if model.as_adversarial().is_some() {
        return train_adversarial(&dir, &cfg, &model, start, &train_data, val.as_ref().map(|v| &v.0));
    }
    let mut trainer = LikelihoodTrainer::new(&model, cfg.train.clone(), cfg.seed, cfg.data.binarize)?;
    if start > 0 {
        dir.load_optimizers(&mut [&mut trainer.opt], start)?;
    }
    eprintln!(
        "{} {} ({} parameters) on {} ({} examples of {} values, binarize {:?}) for {} steps, batch {}, lr {}, seed {} -> {}",
        if start > 0 { "resuming" } else { "training" },
        model.name(),
        model.trained_count(),
        train_data.source,
        train_data.n,
        train_data.dim(),
        cfg.data.binarize,
        cfg.train.steps,
        cfg.train.batch_size,
        cfg.train.lr,
        cfg.seed,
        dir.path.display()
    );

    let pb = progress(&cfg, start)?;
    let pb2 = pb.clone();
    let what = if model.as_classifier().is_some() { "validation -log p(y|x)" } else { "validation NLL" };
    let mut hooks = run::RunHooks::new(
        &dir,
        cfg.seed,
        Box::new(|r| {
            pb.set_position(r.step as u64);
            let parts: Vec<String> = {
                let mut p: Vec<_> = r.parts.iter().filter(|(k, _)| k.as_str() != "nll").map(|(k, v)| format!("{k} {v:.2}")).collect();
                p.sort();
                p
            };
            pb.set_message(format!("loss {:.3} {}", r.loss, parts.join(" ")));
        }),
        Box::new(move |step, nll| pb2.suspend(|| eprintln!("step {step}: {what} {nll:.3} nats"))),
    );
    let t0 = std::time::Instant::now();
    trainer.fit(&model, &train_data, val.as_ref().map(|v| &v.0), &mut hooks)?;
    drop(hooks);
    let secs = t0.elapsed().as_secs_f64();
    eprintln!("trained {} steps in {:.1} s ({:.1} steps/s); checkpoint in {}", cfg.train.steps - start, secs, (cfg.train.steps - start) as f64 / secs.max(1e-9), dir.path.display());

    // Pictures a newcomer can open.
    let mut r = rng::derived(cfg.seed, "final-samples", 0);
    if let Some(c) = model.as_classifier() {
        run::write_loss_plot(&dir, model.name())?;
        if let Some((v, _)) = &val {
            let (p, _, k, _) = deepgen::eval::features::classify(&model, &v.x, v.dim())?;
            let labels = v.labels.as_ref().ok_or_else(|| anyhow::anyhow!("{}: the validation data has no labels", v.source))?;
            let right = p.chunks(k).zip(labels).filter(|(row, y)| row.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i) == Some(**y as usize)).count();
            println!("{}: {} examples, test accuracy {:.2} % ({} classes, {}-d features)", v.source, v.n, 100.0 * right as f64 / v.n as f64, k, c.cfg.hidden);
        }
        println!("run directory: {}", dir.path.display());
        return Ok(());
    }
    if train_data.is_image() || train_data.dim() == 2 {
        run::write_samples(&model, &cfg, 64, model.as_vae().is_some(), &mut r, &dir.file("samples.png"), Some(&train_data))?;
        let recon_src = val.as_ref().map(|v| &v.0).unwrap_or(&train_data);
        run::write_reconstructions(&model, recon_src, 32, &dir.file("reconstructions.png"))?;
    } else {
        run::write_samples(&model, &cfg, 64, false, &mut r, &dir.file("samples.csv"), None)?;
    }
    run::write_loss_plot(&dir, model.name())?;

    if let Some((v, log_det)) = &val {
        let mut r = rng::derived(cfg.seed, "test-nll", 0);
        let rep = run::score(&model, v, *log_det, 256, &mut r)?;
        println!("{}", summary(&model, &v.source, &rep, &cfg));
    }
    println!("run directory: {}", dir.path.display());
    Ok(())
}

fn progress(cfg: &RunConfig, start: usize) -> Result<ProgressBar> {
    let pb = ProgressBar::new(cfg.train.steps as u64);
    pb.set_style(ProgressStyle::with_template("{bar:30} step {pos}/{len} {msg} [{elapsed_precise} < {eta_precise}]").map_err(|e| anyhow::anyhow!("{e}"))?);
    pb.set_position(start as u64);
    Ok(pb)
}

/// Training of the two-player models, then the pictures and the report that fit the model.
fn train_adversarial(dir: &RunDir, cfg: &RunConfig, model: &Model, start: usize, train_data: &deepgen::data::Dataset, val: Option<&deepgen::data::Dataset>) -> Result<()> {
    let mut trainer = AdversarialTrainer::new(model, cfg.train.clone(), cfg.seed, cfg.data.binarize)?;
    if start > 0 {
        dir.load_optimizers(&mut [&mut trainer.g_opt, &mut trainer.d_opt], start)?;
        trainer.set_step(start);
    }
    let adv = &trainer.adv;
    let loss = model.as_gan().map(|g| g.cfg.loss.name()).unwrap_or_else(|| "non-saturating (codes vs prior)".into());
    eprintln!(
        "{} {} ({} parameters, {loss}) on {} ({} examples of {} values) for {} steps, batch {}, lr {} (critic {}{}), n_critic {}{}{}{}{}{}, seed {} -> {}",
        if start > 0 { "resuming" } else { "training" },
        model.name(),
        model.trained_count(),
        train_data.source,
        train_data.n,
        train_data.dim(),
        cfg.train.steps,
        cfg.train.batch_size,
        cfg.train.lr,
        adv.d_lr,
        adv.d_schedule.map(|s| format!(", {s:?} schedule").to_lowercase()).unwrap_or_default(),
        adv.n_critic,
        adv.clip.map(|c| format!(", clip {c}")).unwrap_or_default(),
        adv.gp.map(|c| format!(", gradient penalty {c}")).unwrap_or_default(),
        if adv.unroll > 0 {
            format!(", unrolled K={}{}{}", adv.unroll, if adv.first_order { " (first order)" } else { "" }, if adv.unroll_same_batch { " (one batch)" } else { "" })
        } else {
            String::new()
        },
        model.as_gan().filter(|g| g.cfg.ema > 0.0).map(|g| format!(", generator weight average {}", g.cfg.ema)).unwrap_or_default(),
        model.as_gan().filter(|g| g.cfg.noise == deepgen::models::Noise::Uniform).map(|_| ", uniform noise").unwrap_or_default(),
        cfg.seed,
        dir.path.display()
    );
    let pb = progress(cfg, start)?;
    let mut hooks = run::RunHooks::new(
        dir,
        cfg.seed,
        Box::new(|r| {
            pb.set_position(r.step as u64);
            let mut p: Vec<String> = r.parts.iter().filter(|(k, _)| !matches!(k.as_str(), "g_adv")).map(|(k, v)| format!("{k} {v:.3}")).collect();
            p.sort();
            pb.set_message(p.join(" "));
        }),
        Box::new(|_, _| {}),
    );
    let t0 = std::time::Instant::now();
    trainer.fit(model, train_data, &mut hooks)?;
    drop(hooks);
    let secs = t0.elapsed().as_secs_f64();
    eprintln!("trained {} steps in {:.1} s ({:.2} steps/s); checkpoint in {}", cfg.train.steps - start, secs, (cfg.train.steps - start) as f64 / secs.max(1e-9), dir.path.display());

    let mut r = rng::derived(cfg.seed, "final-samples", 0);
    let mut wrote: Vec<PathBuf> = vec![];
    if model.as_gan().is_some_and(|g| g.cfg.classes > 0) && train_data.is_image() {
        // One row per class: `classes` rows of `classes` samples make a square grid.
        let per = model.as_gan().map(|g| g.cfg.classes).unwrap_or(10);
        run::write_examples(model, cfg, &run::class_rows(model, per, &mut r)?, &dir.file("samples.png"), None)?;
        wrote.push(dir.file("samples.png"));
    } else if train_data.is_image() || train_data.dim() == 2 {
        run::write_samples(model, cfg, if train_data.dim() == 2 { 2500 } else { 64 }, false, &mut r, &dir.file("samples.png"), Some(train_data))?;
        wrote.push(dir.file("samples.png"));
    } else {
        run::write_samples(model, cfg, 64, false, &mut r, &dir.file("samples.csv"), None)?;
        wrote.push(dir.file("samples.csv"));
    }
    wrote.extend(run::write_info_grids(model, &mut r, &dir.path)?);
    let shown = val.unwrap_or(train_data);
    if run::write_aae_reconstructions(model, shown, 32, &dir.file("reconstructions.png"))? {
        wrote.push(dir.file("reconstructions.png"));
    }
    if run::write_latent_scatter(model, shown, 2000, &mut r, &dir.file("latent.png"))? {
        wrote.push(dir.file("latent.png"));
    }
    run::write_adversarial_plot(dir, model.name())?;
    wrote.push(dir.file("loss.png"));
    if cfg.data.train.starts_with("toy:") {
        let mut r = rng::derived(cfg.seed, "eval", 0);
        let rep = run::mode_eval(model, cfg, 2500, deepgen::eval::modes::DEFAULT_MIN_SHARE, &mut r, Some(&dir.file("modes.png")))?;
        wrote.push(dir.file("modes.png"));
        println!("{}", mode_summary(&rep));
    }
    let names: Vec<String> = wrote.iter().filter_map(|p| p.file_name().map(|f| f.to_string_lossy().to_string())).collect();
    println!("wrote {}", names.join(", "));
    println!("run directory: {}", dir.path.display());
    Ok(())
}

fn mode_summary(rep: &deepgen::eval::modes::ModeReport) -> String {
    format!(
        "modes covered: {}/{} (a mode counts with >= {:.1}% of {} samples within 3 sigma); high-quality samples: {:.1}%; reverse KL of the mode histogram to uniform: {:.3} nats",
        rep.covered,
        rep.modes,
        100.0 * rep.min_share,
        rep.samples,
        100.0 * rep.high_quality,
        rep.reverse_kl
    )
}

fn summary(model: &Model, source: &str, rep: &deepgen::eval::NllReport, cfg: &RunConfig) -> String {
    let how = match &model.config {
        ModelConfig::Vae(c) => format!("importance-weighted bound, k={}", c.iw_samples),
        ModelConfig::Made(c) if c.masks > 1 => format!("exact, of the ensemble: the mean probability over {} mask sets", c.masks),
        ModelConfig::Rnade(_) => "exact density".to_string(),
        _ => "exact".to_string(),
    };
    let bin = match cfg.data.binarize {
        Binarize::None => String::new(),
        Binarize::Threshold => ", thresholded at 0.5".to_string(),
        _ => format!(", static binarization with seed {}", cfg.seed),
    };
    format!("{source}: {} examples, mean NLL {:.3} nats, {:.4} bits/dim ({how}{bin})", rep.log_prob.len(), rep.nats, rep.bits_per_dim)
}

pub(crate) fn open_run(path: &Path) -> Result<(RunDir, RunConfig, Model)> {
    let dir = RunDir::open(path)?;
    let cfg = dir.read_config()?;
    let (model, _) = dir.load_model(&Device::Cpu)?;
    if model.config.name() != cfg.model.name() {
        bail!("{}: config.toml is for a {} model but model.safetensors holds a {}", path.display(), cfg.model.name(), model.name());
    }
    Ok((dir, cfg, model))
}

pub fn sample(a: SampleArgs) -> Result<()> {
    let n = positive("-n", a.n)?;
    let (dir, cfg, model) = open_run(&a.run)?;
    let out = a.out.clone().unwrap_or_else(|| dir.file("samples.png"));
    // For 2-D data the training points, if still readable, are drawn behind the samples.
    let background = if model.config.dim() == 2 { run::load_transformed(&cfg.data.train, &cfg, true).ok().map(|d| d.0) } else { None };
    let mut r = rng::rng(a.seed.unwrap_or(cfg.seed));
    let t0 = std::time::Instant::now();
    if let Some(k) = a.class {
        let g = model.as_gan().filter(|g| g.cfg.classes > 0).ok_or_else(|| anyhow::anyhow!("--class applies only to conditional runs (cgan); {} is a {} run", a.run.display(), model.name()))?;
        if k as usize >= g.cfg.classes {
            bail!("--class {k} is out of range: the run has classes 0..{}", g.cfg.classes - 1);
        }
        let x = g.sample_with(n, Some(&vec![k; n]), &mut r)?;
        run::write_examples(&model, &cfg, &x, &out, None)?;
    } else {
        run::write_samples(&model, &cfg, n, a.mean, &mut r, &out, background.as_ref())?;
    }
    let secs = t0.elapsed().as_secs_f64();
    println!("wrote {n} samples from {} to {} in {secs:.2} s ({:.1} samples/s)", model.name(), out.display(), n as f64 / secs.max(1e-9));
    Ok(())
}

pub fn score(a: ScoreArgs) -> Result<()> {
    let batch = positive("--batch-size", a.batch_size)?;
    let (_dir, mut cfg, mut model) = open_run(&a.run)?;
    if let Some(k) = a.iw_samples {
        if k == 0 {
            bail!("--iw-samples must be at least 1");
        }
        let ModelConfig::Vae(mut c) = model.config.clone() else { bail!("--iw-samples applies only to vae runs") };
        c.iw_samples = k;
        let fresh = Model::new(&ModelConfig::Vae(c), cfg.seed, &Device::Cpu)?;
        let tensors = model.params.vars().map(|(k, v)| (k.clone(), v.as_tensor().clone())).collect();
        fresh.params.load(&tensors, &a.run)?;
        model = fresh;
        cfg.model = model.config.clone();
    }
    if let Some(s) = a.seed {
        cfg.seed = s;
    }
    let (data, log_det) = run::load_transformed(&a.data, &cfg, false)?;
    model.check_dim(data.dim(), &data.source)?;
    let mut r = rng::derived(cfg.seed, "test-nll", 0);
    let rep = run::score(&model, &data, log_det, batch, &mut r)?;
    if let Some(out) = &a.out {
        let mut s = String::from("index,log_prob_nats,bits_per_dim\n");
        for (i, lp) in rep.log_prob.iter().enumerate() {
            s.push_str(&format!("{i},{lp},{}\n", rep.bpd(*lp)));
        }
        deepgen::train::checkpoint::atomic_write(out, s.as_bytes())?;
    }
    println!("{}", summary(&model, &data.source, &rep, &cfg));
    Ok(())
}

pub fn complete(a: CompleteArgs) -> Result<()> {
    let n = positive("-n", a.n)?;
    let samples = positive("--samples", a.samples)?;
    let (dir, cfg, model) = open_run(&a.run)?;
    let spec = match a.data.clone().or(cfg.data.val.clone()) {
        Some(s) => s,
        None => bail!("{}: the run has no validation data; pass --data", a.run.display()),
    };
    let (data, _) = run::load_transformed(&spec, &cfg, false)?;
    model.check_dim(data.dim(), &data.source)?;
    let keep = run::Keep::parse(&a.keep, &data.shape)?;
    let flags = keep.flags(&data.shape);
    // The models condition on earlier values only: a known value after an unknown one is kept but not conditioned on.
    if let Some(first_unknown) = flags.iter().position(|&k| !k) {
        if flags[first_unknown..].iter().any(|&k| k) {
            eprintln!("note: some known values come after unknown ones in the model's raster order; the unknown ones are drawn given the known values before them only");
        }
    }
    let out = a.out.clone().unwrap_or_else(|| dir.file("completions.png"));
    let mut r = rng::derived(a.seed.unwrap_or(cfg.seed), "complete", 0);
    let t0 = std::time::Instant::now();
    let (x, flags, done, lps) = run::complete(&model, &cfg, &data, &keep, n, samples, &mut r)?;
    let secs = t0.elapsed().as_secs_f64();
    let ext = out.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "png" if data.is_image() => run::write_completions(&x, &flags, &done, &data.shape, &out)?,
        "png" => bail!("{}: a completion grid needs image data; write .csv or .npy", out.display()),
        "csv" | "npy" => {
            let v = done.flatten_all()?.to_vec1::<f32>()?;
            let d = data.dim();
            let bytes = if ext == "csv" {
                v.chunks(d).map(|r| r.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(",") + "\n").collect::<String>().into_bytes()
            } else {
                let mut shape = vec![done.dim(0)?];
                shape.extend_from_slice(&data.shape);
                deepgen::data::npy::encode_f32(&shape, &v)
            };
            deepgen::train::checkpoint::atomic_write(&out, &bytes)?;
        }
        _ => bail!("{}: unknown output type (use .png, .csv or .npy)", out.display()),
    }
    let mean_lp = lps.iter().sum::<f64>() / lps.len() as f64;
    println!(
        "completed {} examples x {samples} samples ({} of {} values unknown) in {secs:.2} s; mean log p of the completed examples {mean_lp:.2} nats; wrote {}",
        x.dim(0)?,
        flags.iter().filter(|&&k| !k).count(),
        flags.len(),
        out.display()
    );
    Ok(())
}

fn table_size(dim: usize) -> String {
    if dim < 64 {
        format!("{}", (1u128 << dim) - 1)
    } else {
        let l = dim as f64 * 2f64.log10();
        format!("2^{dim} - 1 (about 10^{:.0})", l)
    }
}

pub fn models(a: ModelsArgs) -> Result<()> {
    if a.dim == 0 {
        bail!("--dim must be positive");
    }
    for info in MODELS {
        let side = (a.dim as f64).sqrt().round() as usize;
        let shape = if side * side == a.dim { vec![1, side, side] } else { vec![a.dim] };
        let cfg = match ModelConfig::preset(info.name, &shape, true) {
            Ok(c) => c,
            Err(_) => match ModelConfig::preset(info.name, &[a.dim], true) {
                Ok(c) => c,
                Err(_) => {
                    println!("{:<15} {}", info.name, info.summary);
                    println!("           (needs one-channel square images here: --dim must be a square number, e.g. 784)");
                    continue;
                }
            },
        };
        let m = Model::new(&cfg, 0, &Device::Cpu)?;
        println!("{:<15} {}", info.name, info.summary);
        if m.as_classifier().is_some() {
            println!("           log p(x): none (models p(y | x), trained on labels by the likelihood trainer); sampling: no; data: labelled images (convolutional) or vectors (MLP)");
        } else if !info.density {
            println!(
                "           log p(x): none (trained adversarially); sampling: yes; completion: no; encoder: {}; data: {}",
                if m.as_aae().is_some() { "yes (deterministic codes)" } else { "no" },
                match &cfg {
                    ModelConfig::Gan(c) if c.arch == deepgen::models::Arch::Dcgan => "images (DCGAN players here; --arch mlp for MLP players)",
                    _ => "vectors, 2-D toy sets and flattened images (MLP players)",
                }
            );
        } else {
            println!(
                "           log p(x): {}; sampling: yes; completion: {}; encoder: {}; data: {}",
                if info.exact { "exact" } else { "importance-weighted lower bound (k samples)" },
                if m.as_vae().is_some() { "no" } else { "yes (deepgen complete)" },
                if m.as_vae().is_some() { "yes" } else { "no" },
                match info.name {
                    "vae" => "binary (Bernoulli decoder) or real (Gaussian decoder)",
                    "rnade" => "real values (a density; --standardize recommended)",
                    "pixelcnn" | "gated-pixelcnn" | "row-lstm" | "diagonal-bilstm" => "one-channel images: binary (--output bernoulli) or 256 grey levels (--output softmax)",
                    _ => "binary",
                }
            );
        }
        let kinds: Vec<&str> = deepgen::eval::scores::ScoreKind::supported(info.name).iter().map(|k| k.name()).collect();
        println!(
            "           anomaly scores (deepgen detect --score): {}; features (deepgen embed): {}",
            if kinds.is_empty() { "none".to_string() } else { kinds.join(", ") },
            if m.has_features() { "yes" } else { "no" }
        );
        let table = if cfg.needs_binary() { format!("; a full joint table over {} binary values needs {}", a.dim, table_size(a.dim)) } else { String::new() };
        println!("           parameters at D={}: {}{table}", a.dim, m.trained_count());
        let names: Vec<String> = m.params.shapes().iter().map(|(n, s)| format!("{n} {s:?}")).collect();
        println!("           tensors: {}", names.join(", "));
    }
    Ok(())
}

pub fn info(a: InfoArgs) -> Result<()> {
    let (dir, cfg, model) = open_run(&a.run)?;
    let (_, step) = dir.load_model(&Device::Cpu)?;
    println!("run:        {}", dir.path.display());
    println!("model:      {} ({})", model.name(), model.config.info().summary);
    let table = if model.config.needs_binary() { format!(" (a full joint table over {} binary values needs {})", model.config.dim(), table_size(model.config.dim())) } else { String::new() };
    println!("parameters: {}{table}", model.trained_count());
    println!("step:       {step} of {}", cfg.train.steps);
    println!("seed:       {}", cfg.seed);
    println!("data:       {} (binarize {:?}){}", cfg.data.train, cfg.data.binarize, cfg.data.val.as_ref().map(|v| format!(", validation {v}")).unwrap_or_default());
    if let Ok(m) = dir.metrics() {
        if let Some(l) = m.iter().rev().find(|v| v["loss"].is_number()) {
            println!("last loss:  {:.4} at step {}", l["loss"].as_f64().unwrap_or(f64::NAN), l["step"]);
        }
        if let Some(l) = m.iter().rev().find(|v| v["val_nll"].is_number()) {
            println!("val NLL:    {:.4} nats at step {}", l["val_nll"].as_f64().unwrap_or(f64::NAN), l["step"]);
        }
    }
    for (n, s) in model.params.shapes() {
        println!("  {n:<20} {s:?}");
    }
    Ok(())
}
