//! The hooks that write a training run's metrics and checkpoints, and tell a
//! [`Watch`] (the CLI's progress bar) how training goes.

use super::tensorboard::EventWriter;
use super::{RunConfig, RunDir};
use crate::error::Result;
use crate::models::Model;
use crate::rng;
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

/// The hooks of a data-parallel rank other than 0: it writes nothing, and passes a stop asked of
/// it (SIGTERM to that process) on to the vote that stops every rank.
pub struct Follower<'a> {
    pub watch: &'a mut dyn Watch,
}

impl Hooks for Follower<'_> {
    fn stop_requested(&self) -> bool {
        self.watch.stop_requested()
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

/// Writes metrics, TensorBoard events and checkpoints as training goes, and reports progress.
pub struct RunHooks<'a> {
    pub dir: &'a RunDir,
    pub cfg: &'a RunConfig,
    pub seed: u64,
    pub watch: &'a mut dyn Watch,
    /// What the validation number is ("validation NLL", "validation -log p(y|x)").
    pub what: &'static str,
    adversarial: bool,
    /// Training seconds before this process (a resumed run's earlier time) and when this process
    /// started.
    base_s: f64,
    started: std::time::Instant,
    tb: EventWriter,
}

impl<'a> RunHooks<'a> {
    /// Hooks for `dir`, training from step `start`; the training clock continues from the last
    /// `elapsed_s` in its metrics.
    pub fn new(
        dir: &'a RunDir,
        cfg: &'a RunConfig,
        start: usize,
        watch: &'a mut dyn Watch,
        what: &'static str,
        adversarial: bool,
    ) -> Self {
        let base_s = training_seconds(dir).unwrap_or(0.0);
        let tb = EventWriter::new(&dir.path, start);
        let started = std::time::Instant::now();
        Self { dir, cfg, seed: cfg.seed, watch, what, adversarial, base_s, started, tb }
    }

    /// The TensorBoard tag of the validation number.
    fn val_tag(&self) -> &'static str {
        match self.what {
            "validation NLL" => "val/nll",
            "validation -log p(y|x)" => "val/nll_labels",
            _ => "val/loss",
        }
    }

    /// The sample grid at a checkpoint, for the models that sample images.
    fn sample_image(&mut self, model: &Model, step: usize) -> Result<()> {
        let shape = &self.cfg.data.shape;
        if shape.len() != 3 || !super::infer::capabilities(model).sample {
            return Ok(());
        }
        let mut r = rng::derived(self.seed, "tensorboard", step as u64);
        let x = crate::models::Sampler::sample(model, 16, &mut r)?;
        let v = super::infer::to_data_values(&x, self.cfg)?;
        let png = crate::viz::image_grid_png(&v, 16, shape, 4, 2)?;
        // The grid's size, from the PNG header (IHDR: width, height at bytes 16..24).
        let be = |i: usize| u32::from_be_bytes([png[i], png[i + 1], png[i + 2], png[i + 3]]);
        let (w, h) = (be(16), be(20));
        self.tb.image(step, "samples", png, w, h)
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
        let mut tags = vec![
            ("train/loss".to_string(), r.loss),
            ("train/lr".to_string(), r.lr),
            ("train/grad_norm".to_string(), r.grad_norm),
        ];
        let mut parts: Vec<_> = r.parts.iter().map(|(k, x)| (format!("train/{k}"), *x)).collect();
        parts.sort_by(|a, b| a.0.cmp(&b.0));
        tags.extend(parts);
        self.tb.scalars(r.step, &tags)?;
        self.watch.step(r.step, &step_message(r, self.adversarial));
        Ok(())
    }
    fn on_eval(&mut self, step: usize, val_nll: f64) -> Result<()> {
        self.dir.append_metrics(&serde_json::json!({"step": step, "val_nll": val_nll}))?;
        self.tb.scalars(step, &[(self.val_tag().to_string(), val_nll)])?;
        self.watch.note(&format!("step {step}: {} {val_nll:.3} nats", self.what));
        Ok(())
    }
    /// The clock line goes into the metrics first: the checkpoint records the metrics' length,
    /// so the two commit together.
    fn on_checkpoint(&mut self, model: &Model, opts: &[&Adam], step: usize) -> Result<()> {
        let elapsed = self.base_s + self.started.elapsed().as_secs_f64();
        self.dir.append_metrics(&serde_json::json!({"step": step, "elapsed_s": elapsed}))?;
        crate::files::fault_point("checkpoint:metrics-written");
        self.dir.save(model, opts, step, self.seed)?;
        self.sample_image(model, step)?;
        self.tb.flush()
    }
    fn on_stable_phase_end(&mut self, model: &Model, _step: usize) -> Result<()> {
        super::growth::snapshot(self.dir, model, self.seed)
    }
    fn stop_requested(&self) -> bool {
        self.watch.stop_requested()
    }
}
