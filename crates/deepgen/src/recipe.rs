//! How to train: the settings the trainers read ([`TrainConfig`], with the
//! adversarial trainer's [`AdversarialConfig`]) and the learning-rate
//! [`Schedule`]. A plain value below both the models and the trainers, so
//! that each family can state its own training recipe
//! ([`crate::models::Family::recipe`]) and the trainers can read it.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::optim::AdamConfig;

/// Learning-rate schedule after warm-up.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Schedule {
    #[default]
    Constant,
    /// Cosine decay from `lr` to 0 over the run (Loshchilov & Hutter 2017, no restarts).
    Cosine,
    /// Constant for the first half of the run, then linear decay to 0 over the second half
    /// (CycleGAN's `linear` policy, Zhu et al. 2017 Sec. 7.1; StarGAN's decay, Choi et al. 2018
    /// Sec. 4.3).
    LinearDecay,
}

impl std::str::FromStr for Schedule {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "constant" => Ok(Schedule::Constant),
            "cosine" => Ok(Schedule::Cosine),
            "linear-decay" => Ok(Schedule::LinearDecay),
            _ => Err(Error::config(format!(
                "unknown schedule `{s}` (expected constant, cosine or linear-decay)"
            ))),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Total optimisation steps (a resumed run continues up to this number).
    pub steps: usize,
    pub batch_size: usize,
    pub lr: f64,
    #[serde(default)]
    pub schedule: Schedule,
    /// Linear warm-up steps from 0 to `lr`.
    #[serde(default)]
    pub warmup: usize,
    /// Clip the global gradient norm to this value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grad_clip: Option<f64>,
    /// Validation NLL and checkpoint every N steps (and at the end).
    pub eval_every: usize,
    /// Validation examples used for the periodic NLL.
    pub eval_examples: usize,
    #[serde(default)]
    pub optimizer: AdamConfig,
    /// Options of the adversarial trainer (two-player models only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adversarial: Option<AdversarialConfig>,
    /// Shards per step: each step's batch is `shards` x `batch_size` examples, spread over the
    /// data-parallel ranks (several per rank are computed in turn, summing gradients). The
    /// run's computation depends on this, not on the number of ranks (`crate::parallel`).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub shards: usize,
}

fn one() -> usize {
    1
}

fn is_one(n: &usize) -> bool {
    *n == 1
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            steps: 2000,
            batch_size: 128,
            lr: 1e-3,
            schedule: Schedule::Constant,
            warmup: 0,
            grad_clip: None,
            eval_every: 500,
            eval_examples: 500,
            optimizer: AdamConfig::default(),
            adversarial: None,
            shards: 1,
        }
    }
}

impl TrainConfig {
    /// The DCGAN recipe (Radford et al. 2016) that the conditional GANs' reference code keeps
    /// (Reed et al.'s `main_cls_int.lua`, Lee et al.'s `KeyPatchGan`): Adam(2e-4, 0.5, 0.999) for
    /// both players, batch 64, one critic step per generator step, `steps` iterations.
    pub fn dcgan_adam(steps: usize) -> Self {
        let critic = AdversarialConfig { d_lr: 2e-4, ..AdversarialConfig::default() };
        let mut t = TrainConfig {
            steps,
            batch_size: 64,
            lr: 2e-4,
            adversarial: Some(critic),
            ..TrainConfig::default()
        };
        t.optimizer.beta1 = 0.5;
        t.optimizer.beta2 = 0.999;
        t
    }

    /// Validates once; the message says what to change.
    pub fn check(&self) -> Result<()> {
        if self.steps == 0 {
            return Err(Error::config("--steps must be at least 1"));
        }
        if self.batch_size == 0 {
            return Err(Error::config("--batch-size must be at least 1"));
        }
        if self.shards == 0 {
            return Err(Error::config("--shards must be at least 1"));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::config(format!("--lr must be a positive number, got {}", self.lr)));
        }
        if self.eval_every == 0 {
            return Err(Error::config("--eval-every must be at least 1"));
        }
        if self.eval_examples == 0 {
            return Err(Error::config("train.eval_examples must be at least 1"));
        }
        if let Some(c) = self.grad_clip {
            if !(c.is_finite() && c > 0.0) {
                return Err(Error::config(format!("--grad-clip must be positive, got {c}")));
            }
        }
        let o = &self.optimizer;
        if !(0.0..1.0).contains(&o.beta1)
            || !(0.0..1.0).contains(&o.beta2)
            || o.eps <= 0.0
            || o.weight_decay < 0.0
        {
            return Err(Error::config(
                "optimizer: need 0 <= beta1, beta2 < 1, eps > 0, weight_decay >= 0",
            ));
        }
        Ok(())
    }

    /// The learning rate at (0-based) step `step`.
    pub fn lr_at(&self, step: usize) -> f64 {
        self.lr * self.lr_factor(self.schedule, step)
    }

    /// The factor (warm-up times decay, in [0, 1]) that `schedule` applies at
    /// step `step` of this run; `lr_at` is `lr` times this under the run's own schedule.
    pub fn lr_factor(&self, schedule: Schedule, step: usize) -> f64 {
        let warm = if self.warmup > 0 && step < self.warmup {
            (step + 1) as f64 / self.warmup as f64
        } else {
            1.0
        };
        let decay = match schedule {
            Schedule::Constant => 1.0,
            Schedule::Cosine => {
                let span = self.steps.saturating_sub(self.warmup).max(1) as f64;
                let t = (step.saturating_sub(self.warmup) as f64 / span).min(1.0);
                0.5 * (1.0 + (std::f64::consts::PI * t).cos())
            }
            Schedule::LinearDecay => {
                // Step s of the second half runs at (steps - s) / (steps - half): the last step at
                // 1 / (steps - half), as the reference's (n_epochs_decay + 1) divisor.
                let half = self.steps / 2;
                if step < half {
                    1.0
                } else {
                    (self.steps.saturating_sub(step) as f64 / (self.steps - half).max(1) as f64)
                        .min(1.0)
                }
            }
        };
        warm * decay
    }
}

/// The adversarial trainer's options (saved in the run's `[train.adversarial]`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AdversarialConfig {
    /// The critic's learning rate (the generator uses `train.lr`).
    pub d_lr: f64,
    /// Critic updates per generator update.
    pub n_critic: usize,
    /// WGAN: clip every critic weight to [-c, c] after each update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip: Option<f64>,
    /// WGAN-GP: weight lambda of E[(||grad_x D(x_hat)||_2 - 1)^2] at random interpolates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gp: Option<f64>,
    /// Progressive GAN: weight epsilon of the drift term epsilon E[D(x)^2] on real examples,
    /// which keeps a Wasserstein critic's output near 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<f64>,
    /// Unrolled GAN: critic optimiser steps K the generator looks ahead through.
    #[serde(default)]
    pub unroll: usize,
    /// Unrolled GAN: treat the unrolled critic as constant (no gradient through its updates).
    #[serde(default)]
    pub first_order: bool,
    /// Unrolled GAN: every look-ahead step uses one real and one generated
    /// batch (as Metz et al.'s reference code does) instead of fresh ones; the
    /// generator then runs once per update, not K + 1 times.
    #[serde(default)]
    pub unroll_same_batch: bool,
    /// The critic's schedule, when it differs from the generator's (`train.schedule`).
    /// Unrolling looks ahead with the critic's current rate, so a critic that
    /// cools with the generator also shortens the look-ahead; `constant` here keeps
    /// it while the generator's rate decays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub d_schedule: Option<Schedule>,
}

impl Default for AdversarialConfig {
    fn default() -> Self {
        Self {
            d_lr: 2e-4,
            n_critic: 1,
            clip: None,
            gp: None,
            drift: None,
            unroll: 0,
            first_order: false,
            unroll_same_batch: false,
            d_schedule: None,
        }
    }
}

impl AdversarialConfig {
    pub fn check(&self) -> Result<()> {
        if !(self.d_lr.is_finite() && self.d_lr > 0.0) {
            return Err(Error::config(format!(
                "--d-lr must be a positive number, got {}",
                self.d_lr
            )));
        }
        if self.n_critic == 0 {
            return Err(Error::config("--n-critic must be at least 1"));
        }
        if let Some(c) = self.clip {
            if !(c.is_finite() && c > 0.0) {
                return Err(Error::config(format!("--clip must be positive, got {c}")));
            }
        }
        if let Some(g) = self.gp {
            if !(g.is_finite() && g >= 0.0) {
                return Err(Error::config(format!("--gp must be non-negative, got {g}")));
            }
        }
        if let Some(d) = self.drift {
            if !(d.is_finite() && d >= 0.0) {
                return Err(Error::config(format!("--drift must be non-negative, got {d}")));
            }
        }
        if self.first_order && self.unroll == 0 {
            return Err(Error::config("--first-order applies only with --unroll K > 0"));
        }
        if self.unroll_same_batch && self.unroll == 0 {
            return Err(Error::config("--unroll-same-batch applies only with --unroll K > 0"));
        }
        Ok(())
    }
}
