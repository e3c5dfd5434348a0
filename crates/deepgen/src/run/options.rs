//! The options of a training run, declared once: clap reads them from
//! `deepgen train`'s command line, serde from a program's TOML or JSON, and
//! [`super::config::new_run_config`] turns them into a [`super::RunConfig`].
//!
//! Three groups, each with its own rule:
//! - [`RunFlags`] apply to every model; on `--resume` only `--steps` may change.
//! - [`ModelFlags`] apply to the models whose family lists them
//!   ([`crate::models::ModelInfo::flags`]); others are refused by name.
//! - [`CriticFlags`] apply to the adversarially trained models.
//!
//! The `--help` defaults of the recipe flags are generated from the
//! families' recipes ([`annotate`]), so they cannot drift from what runs.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::models::family::check_trainer_flags;
use crate::models::flags::given;
use crate::models::{models, ModelConfig, ModelFlags, ModelInfo, Training};
use crate::recipe::TrainConfig;

/// Everything `deepgen train` takes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(default, deny_unknown_fields)]
pub struct TrainOptions {
    /// Model to train [default: vae].
    pub model: Option<String>,
    #[command(flatten)]
    pub run: RunFlags,
    #[command(flatten)]
    pub model_flags: ModelFlags,
    #[command(flatten)]
    pub critic: CriticFlags,
}

/// The flags of every training run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(default, deny_unknown_fields)]
pub struct RunFlags {
    /// Training data: mnist, mnist:test, digits, idx:PREFIX, png:DIR, csv:FILE, npy:FILE,
    /// toy:ring8, toy:grid25 [default: mnist].
    #[arg(long)]
    pub data: Option<String>,
    /// CycleGAN: the second domain B (unpaired with --data). When both come from one set
    /// (mnist and mnist+invert), A is its first half and B its second, so no example is in both.
    #[arg(long)]
    pub data_b: Option<String>,
    /// Validation data for the periodic NLL [default: the held-out split of embedded and toy
    /// sets; none otherwise].
    #[arg(long)]
    pub val: Option<String>,
    /// A run config (TOML, e.g. another run's config.toml); flags given here override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Total optimisation steps; with --resume, the new total.
    #[arg(long, allow_negative_numbers = true)]
    pub steps: Option<i64>,
    /// Examples per step.
    #[arg(long, allow_negative_numbers = true)]
    pub batch_size: Option<i64>,
    /// Learning rate (Adam; the generator's for adversarial models).
    #[arg(long, allow_negative_numbers = true)]
    pub lr: Option<f64>,
    /// Learning-rate schedule: constant, cosine or linear-decay (constant, then to 0 over the
    /// second half).
    #[arg(long)]
    pub schedule: Option<String>,
    /// Linear warm-up steps.
    #[arg(long)]
    pub warmup: Option<usize>,
    /// Clip the global gradient norm to this value.
    #[arg(long, allow_negative_numbers = true)]
    pub grad_clip: Option<f64>,
    /// Decoupled weight decay (AdamW).
    #[arg(long, allow_negative_numbers = true)]
    pub weight_decay: Option<f64>,
    /// Adam beta1 (both players for adversarial models).
    #[arg(long, allow_negative_numbers = true)]
    pub beta1: Option<f64>,
    /// Adam beta2.
    #[arg(long, allow_negative_numbers = true)]
    pub beta2: Option<f64>,
    /// Validation NLL (on up to 500 held-out examples) and checkpoint every N steps
    /// [default: 500].
    #[arg(long, allow_negative_numbers = true)]
    pub eval_every: Option<i64>,
    /// Seed for every random draw (initialisation, shuffling, noise, binarization)
    /// [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Binarization of grey values: none, static, dynamic or threshold [default: static for
    /// models that need binary data].
    #[arg(long)]
    pub binarize: Option<String>,
    /// Standardise each feature with the training mean and std (for real-valued data).
    #[arg(long)]
    #[serde(skip_serializing_if = "is_false")]
    pub standardize: bool,
    /// Run directory to create [default: runs/MODEL, or runs/MODEL-2, ... if taken].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue the run in this directory exactly where its last checkpoint stopped.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Device: cpu, cuda or cuda:N (a build with the cuda feature: scripts/build-cuda.sh); may
    /// change on --resume [default: cpu].
    #[arg(long)]
    pub device: Option<String>,
    /// Data-parallel shards per step: each step's batch is SHARDS x --batch-size examples, the
    /// shards spread over the MPI ranks (`mpirun -np N`), several per rank computed in turn. The
    /// result depends on SHARDS, not on the ranks; with --resume it may change (a new batch)
    /// [default: the number of ranks; a resumed run keeps its own].
    #[arg(long, allow_negative_numbers = true)]
    pub shards: Option<i64>,
}

/// The adversarial trainer's flags.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(default, deny_unknown_fields)]
pub struct CriticFlags {
    /// Adversarial models: the critic's learning rate.
    #[arg(long, allow_negative_numbers = true)]
    pub d_lr: Option<f64>,
    /// Adversarial models: the critic's learning-rate schedule, constant, cosine or linear-decay
    /// [default: the generator's, --schedule].
    #[arg(long)]
    pub d_schedule: Option<String>,
    /// Adversarial models: critic updates per generator update.
    #[arg(long, allow_negative_numbers = true)]
    pub n_critic: Option<i64>,
    /// WGAN: clip critic weights to [-C, C] after each update.
    #[arg(long, allow_negative_numbers = true)]
    pub clip: Option<f64>,
    /// Gradient-penalty weight lambda.
    #[arg(long, allow_negative_numbers = true)]
    pub gp: Option<f64>,
    /// Weight epsilon of the drift penalty epsilon E[D(x)^2] on real examples (Progressive GAN).
    #[arg(long, allow_negative_numbers = true)]
    pub drift: Option<f64>,
    /// Unrolled GAN: critic steps K to differentiate through.
    #[arg(long)]
    pub unroll: Option<usize>,
    /// Unrolled GAN: treat the unrolled critic as a constant (no second-order terms),
    /// to compare.
    #[arg(long)]
    #[serde(skip_serializing_if = "is_false")]
    pub first_order: bool,
    /// Unrolled GAN: one real and one generated batch for all K look-ahead steps (Metz et
    /// al.'s reference code) instead of fresh batches.
    #[arg(long)]
    #[serde(skip_serializing_if = "is_false")]
    pub unroll_same_batch: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The flags that may change on `--resume`: the new total, the shards, and the device (a
/// checkpoint holds no device: one written on a GPU resumes on the CPU and back; the numbers then
/// continue to within the two devices' rounding, not bit for bit).
const ON_RESUME: &[&str] = &["--steps", "--resume", "--shards", "--device"];

impl TrainOptions {
    /// Options for `deepgen train MODEL` with every other choice left to the library.
    pub fn for_model(model: &str) -> Self {
        Self { model: Some(model.to_string()), ..Self::default() }
    }

    /// Refuses the flags that `--resume` cannot change: the run's config.toml fixes them.
    pub fn check_resume(&self) -> Result<()> {
        let mut all = given(&self.run);
        all.extend(given(&self.model_flags));
        all.extend(given(&self.critic));
        let fixed = all.iter().find(|f| !ON_RESUME.contains(&f.as_str()));
        match fixed {
            Some(flag) => Err(Error::config(format!(
                "{flag} cannot be combined with --resume: the run's config.toml fixes it \
                 (only --steps, --shards and --device may change)"
            ))),
            None => Ok(()),
        }
    }

    /// Refuses the adversarial trainer's flags for a model trained by likelihood.
    pub fn check_critic(&self, info: &ModelInfo) -> Result<()> {
        check_trainer_flags(&given(&self.critic), info, models())
    }
}

/// A recipe value as `--help` shows it.
type Shown = fn(&TrainConfig) -> String;
/// A critic setting as `--help` shows it (the likelihood models have none).
type ShownIf = fn(&TrainConfig) -> Option<String>;

/// Adds to `train`'s help what the registry knows: each recipe flag's
/// defaults per model (from the families' recipes) and the models each model
/// flag applies to. `cmd` is the clap command holding the [`TrainOptions`].
pub fn annotate(cmd: clap::Command) -> clap::Command {
    let names: Vec<&str> = models().map(|m| m.name).collect();
    let mut cmd = cmd.mut_arg("model", |a| {
        let help = format!("Model to train: {} [default: vae].", names.join(", "));
        a.help(help)
    });
    let recipe_flags: [(&str, Shown); 7] = [
        ("steps", |t| t.steps.to_string()),
        ("batch_size", |t| t.batch_size.to_string()),
        ("lr", |t| t.lr.to_string()),
        ("schedule", |t| format!("{:?}", t.schedule).to_lowercase()),
        ("beta1", |t| t.optimizer.beta1.to_string()),
        ("beta2", |t| t.optimizer.beta2.to_string()),
        ("weight_decay", |t| t.optimizer.weight_decay.to_string()),
    ];
    for (id, value) in recipe_flags {
        let text = defaults_text(value, |_| true);
        cmd = cmd.mut_arg(id, |a| append_help(a, &format!("[default: {text}]")));
    }
    let critic_flags: [(&str, ShownIf); 6] = [
        ("d_lr", |t| t.adversarial.as_ref().map(|c| c.d_lr.to_string())),
        ("n_critic", |t| t.adversarial.as_ref().map(|c| c.n_critic.to_string())),
        ("clip", |t| t.adversarial.as_ref().and_then(|c| c.clip).map(|v| v.to_string())),
        ("gp", |t| t.adversarial.as_ref().and_then(|c| c.gp).map(|v| v.to_string())),
        ("drift", |t| t.adversarial.as_ref().and_then(|c| c.drift).map(|v| v.to_string())),
        ("unroll", |t| t.adversarial.as_ref().map(|c| c.unroll.to_string())),
    ];
    for (id, value) in critic_flags {
        let adversarial = |m: &ModelInfo| m.training == Training::Adversarial;
        let text = defaults_text(|t| value(t).unwrap_or_else(|| "none".into()), adversarial);
        cmd = cmd.mut_arg(id, |a| append_help(a, &format!("[default: {text}]")));
    }
    let flags = <ModelFlags as clap::Args>::augment_args(clap::Command::new("flags"));
    let flag_ids: Vec<String> = flags.get_arguments().map(|a| a.get_id().to_string()).collect();
    for id in flag_ids {
        let takers: Vec<&str> =
            models().filter(|m| m.flags.contains(&id.as_str())).map(|m| m.name).collect();
        let text = format!("[models: {}]", takers.join(", "));
        cmd = cmd.mut_arg(id.as_str(), |a| append_help(a, &text));
    }
    cmd
}

fn append_help(a: clap::Arg, text: &str) -> clap::Arg {
    let old = a.get_help().map(|h| h.to_string()).unwrap_or_default();
    a.help(format!("{old} {text}"))
}

/// `value`'s defaults over the registry's models that `which` keeps: on
/// MNIST-shaped images the most common value "otherwise", the others by
/// model, then what differs on the 2-D toy sets.
pub fn defaults_text(
    value: impl Fn(&TrainConfig) -> String,
    which: impl Fn(&ModelInfo) -> bool,
) -> String {
    let on = |shape: &[usize]| -> Vec<(&'static str, String)> {
        let recipe =
            |m: &ModelInfo| ModelConfig::recipe(m.name, shape).ok().map(|t| (m.name, value(&t)));
        models().filter(|m| which(m)).filter_map(recipe).collect()
    };
    let image = on(&[1, 28, 28]);
    let toy = on(&[2]);
    let mut text = grouped(&image);
    let changed: Vec<(&str, String)> =
        toy.iter().zip(&image).filter(|(t, i)| t.1 != i.1).map(|(t, _)| t.clone()).collect();
    if !changed.is_empty() {
        text.push_str(&format!("; on 2-D toy data {}", grouped_all(&changed)));
    }
    text
}

/// "V1 otherwise; V2 for a, b" with the most common value first.
fn grouped(values: &[(&str, String)]) -> String {
    let groups = groups(values);
    let Some((common, _)) = groups.iter().max_by_key(|(_, names)| names.len()) else {
        return String::new();
    };
    let mut parts = vec![];
    for (v, names) in &groups {
        if v != common {
            parts.push(format!("{v} for {}", names.join(", ")));
        }
    }
    if parts.is_empty() {
        common.clone()
    } else {
        format!("{}; {common} otherwise", parts.join("; "))
    }
}

fn grouped_all(values: &[(&str, String)]) -> String {
    let parts: Vec<String> =
        groups(values).iter().map(|(v, names)| format!("{v} for {}", names.join(", "))).collect();
    parts.join("; ")
}

fn groups(values: &[(&str, String)]) -> Vec<(String, Vec<String>)> {
    let mut groups: Vec<(String, Vec<String>)> = vec![];
    for (name, v) in values {
        match groups.iter_mut().find(|(g, _)| g == v) {
            Some((_, names)) => names.push(name.to_string()),
            None => groups.push((v.clone(), vec![name.to_string()])),
        }
    }
    groups
}
