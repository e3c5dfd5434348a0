//! The hooks that write a training run's metrics and checkpoints, and tell a
//! [`Watch`] (the CLI's progress bar) how training goes.

use super::RunDir;
use crate::error::Result;
use crate::models::Model;
use crate::train::{Adam, Hooks, StepRecord};

/// What a training run tells its caller as it goes (the CLI draws a progress bar).
pub trait Watch: Send {
    /// Training of `total` steps starts at step `start`; `line` says what and how.
    fn start(&mut self, line: &str, start: usize, total: usize);
    /// A step finished; `message` summarises its losses.
    fn step(&mut self, step: usize, message: &str);
    /// A validation line (the periodic held-out NLL).
    fn note(&mut self, line: &str);
    /// Training finished; `line` says how long it took.
    fn finish(&mut self, line: &str);
    /// Asked after every step: true saves a checkpoint at that step and stops training with
    /// [`crate::error::Error::Interrupted`] (the CLI answers Ctrl-C and SIGTERM so).
    fn stop_requested(&self) -> bool;
}

/// A [`Watch`] that ignores everything (library use, tests).
pub struct Quiet;

impl Watch for Quiet {
    fn start(&mut self, _line: &str, _start: usize, _total: usize) {}
    fn step(&mut self, _step: usize, _message: &str) {}
    fn note(&mut self, _line: &str) {}
    fn finish(&mut self, _line: &str) {}
    fn stop_requested(&self) -> bool {
        false
    }
}

/// The progress message of a step: the loss parts, sorted by name (the
/// likelihood models' total first; the adversarial models without the
/// generator's adversarial term, which `g` already is).
pub fn step_message(r: &StepRecord, adversarial: bool) -> String {
    if adversarial {
        // A growing game's phase leads ("16x16 fading in, alpha 0.42"); its numbers are in it.
        let mut p: Vec<String> = r
            .parts
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "g_adv" | "resolution" | "alpha"))
            .map(|(k, v)| format!("{k} {v:.3}"))
            .collect();
        p.sort();
        match &r.phase {
            Some(phase) => format!("{phase}: {}", p.join(" ")),
            None => p.join(" "),
        }
    } else {
        let mut p: Vec<String> = r
            .parts
            .iter()
            .filter(|(k, _)| k.as_str() != "nll")
            .map(|(k, v)| format!("{k} {v:.2}"))
            .collect();
        p.sort();
        format!("loss {:.3} {}", r.loss, p.join(" "))
    }
}

/// Writes metrics and checkpoints as training goes, and reports progress.
pub struct RunHooks<'a> {
    pub dir: &'a RunDir,
    pub seed: u64,
    pub watch: &'a mut dyn Watch,
    /// What the validation number is ("validation NLL", "validation -log p(y|x)").
    pub what: &'static str,
    adversarial: bool,
    /// Training seconds before this process (a resumed run's earlier time) and when this process
    /// started.
    base_s: f64,
    started: std::time::Instant,
}

impl<'a> RunHooks<'a> {
    /// Hooks for `dir`; the training clock continues from the last `elapsed_s` in its metrics.
    pub fn new(
        dir: &'a RunDir,
        seed: u64,
        watch: &'a mut dyn Watch,
        what: &'static str,
        adversarial: bool,
    ) -> Self {
        let base_s = training_seconds(dir).unwrap_or(0.0);
        Self { dir, seed, watch, what, adversarial, base_s, started: std::time::Instant::now() }
    }
}

/// Wall-clock training seconds recorded at the run's last checkpoint (`elapsed_s` in
/// metrics.jsonl).
pub fn training_seconds(dir: &RunDir) -> Option<f64> {
    dir.metrics().ok()?.iter().rev().find_map(|v| v["elapsed_s"].as_f64())
}

impl Hooks for RunHooks<'_> {
    fn on_step(&mut self, r: &StepRecord) -> Result<()> {
        let mut v = serde_json::json!({
            "step": r.step, "loss": r.loss, "lr": r.lr, "grad_norm": r.grad_norm,
        });
        for (k, x) in &r.parts {
            v[k] = serde_json::json!(x);
        }
        self.dir.append_metrics(&v)?;
        self.watch.step(r.step, &step_message(r, self.adversarial));
        Ok(())
    }
    fn on_eval(&mut self, step: usize, val_nll: f64) -> Result<()> {
        self.dir.append_metrics(&serde_json::json!({"step": step, "val_nll": val_nll}))?;
        self.watch.note(&format!("step {step}: {} {val_nll:.3} nats", self.what));
        Ok(())
    }
    /// The clock line goes into the metrics first: the checkpoint records the metrics' length,
    /// so the two commit together.
    fn on_checkpoint(&mut self, model: &Model, opts: &[&Adam], step: usize) -> Result<()> {
        let elapsed = self.base_s + self.started.elapsed().as_secs_f64();
        self.dir.append_metrics(&serde_json::json!({"step": step, "elapsed_s": elapsed}))?;
        crate::files::fault_point("checkpoint:metrics-written");
        self.dir.save(model, opts, step, self.seed)
    }
    fn on_stable_phase_end(&mut self, model: &Model, _step: usize) -> Result<()> {
        super::growth::snapshot(self.dir, model, self.seed)
    }
    fn stop_requested(&self) -> bool {
        self.watch.stop_requested()
    }
}
