//! A checkpoint is one atomic unit: the weights, the optimizer state, the
//! step and the position in `metrics.jsonl` commit together.
//!
//! The commit point is the rename of `model.safetensors`. Saving step S:
//! 1. `metrics.jsonl` already holds every line up to step S (the hooks append
//!    before they save); its length in bytes goes into the model's metadata;
//! 2. `optimizer-S.safetensors` is written (temporary name, fsync, rename);
//! 3. `model.safetensors` is written the same way, its metadata naming step S
//!    and that optimizer file: the rename commits the checkpoint;
//! 4. the optimizer files of older steps are removed.
//!
//! A kill before the rename of 3 leaves the previous `model.safetensors` and
//! its own optimizer file (removed only in 4); a kill after it leaves the new
//! pair. Either way resume finds a model and the optimizer state of the same
//! step, and cuts `metrics.jsonl` back to the length the model names.
//! Runs saved before this scheme (`optimizer.safetensors`) still resume.
//!
//! One process trains a run at a time: [`RunDir::lock`] takes an advisory
//! `flock` on `RUN/.lock`, which the kernel releases when the process dies,
//! however it dies.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};

use super::dir::{parse_safetensors, read_safetensors, safetensors_bytes, RunDir};
use crate::error::{Error, Result};
use crate::files::atomic_write;
use crate::models::{Model, ModelConfig};
use crate::train::Adam;

/// The optimizer state file of step `step`.
pub fn optimizer_file(step: usize) -> String {
    format!("optimizer-{step}.safetensors")
}

/// What a model checkpoint's metadata says about the checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointInfo {
    pub step: usize,
    pub seed: u64,
    /// Length of `metrics.jsonl` when it was saved (absent in checkpoints from before this field).
    pub metrics_bytes: Option<u64>,
}

/// A held `flock` on `RUN/.lock`: released when dropped or when the process dies.
pub struct RunLock {
    _file: std::fs::File,
}

impl RunDir {
    /// Takes the run's lock, or says that another process is training it.
    pub fn lock(&self) -> Result<RunLock> {
        use std::os::fd::AsRawFd;
        let p = self.file(".lock");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .map_err(|e| Error::io(&p, e))?;
        // SAFETY: flock on a descriptor this function owns; no memory is shared.
        let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            return Err(Error::checkpoint(
                &self.path,
                "another deepgen process is training this run; wait for it or stop it first",
            ));
        }
        Ok(RunLock { _file: f })
    }

    /// Saves the checkpoint of `step` (see the module doc for the order of the writes).
    /// `opts` holds the run's optimisers (their state names are distinct: `mv.{param}`).
    pub fn save(&self, model: &Model, opts: &[&Adam], step: usize, seed: u64) -> Result<()> {
        let cfg_json =
            serde_json::to_string(&model.config).map_err(|e| Error::config(e.to_string()))?;
        let metrics_bytes =
            std::fs::metadata(self.file("metrics.jsonl")).map(|m| m.len()).unwrap_or(0);
        let opt_name = optimizer_file(step);
        let op = self.file(&opt_name);
        let state: HashMap<String, Tensor> = opts.iter().flat_map(|o| o.state()).collect();
        let ob =
            safetensors_bytes(&state, HashMap::from([("step".into(), step.to_string())]), &op)?;
        atomic_write(&op, &ob)?;
        crate::files::fault_point("checkpoint:optimizer-written");
        let meta = HashMap::from([
            ("deepgen_version".to_string(), env!("CARGO_PKG_VERSION").to_string()),
            ("model".to_string(), model.name().to_string()),
            ("config".to_string(), cfg_json),
            ("step".to_string(), step.to_string()),
            ("seed".to_string(), seed.to_string()),
            ("optimizer".to_string(), opt_name.clone()),
            ("metrics_bytes".to_string(), metrics_bytes.to_string()),
            ("params".to_string(), model.params.count().to_string()),
        ]);
        let weights: HashMap<String, Tensor> =
            model.params.vars().map(|(k, v)| (k.clone(), v.as_tensor().clone())).collect();
        let mp = self.file("model.safetensors");
        atomic_write(&mp, &safetensors_bytes(&weights, meta, &mp)?)?;
        crate::files::fault_point("checkpoint:model-written");
        self.remove_stale(Some(&opt_name));
        Ok(())
    }

    /// Removes optimizer files other than `keep` and temporary files of killed writes. Failures
    /// are ignored: a stale file costs disk space, never correctness.
    fn remove_stale(&self, keep: Option<&str>) {
        let Ok(rd) = std::fs::read_dir(&self.path) else { return };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let old_opt = name.starts_with("optimizer")
                && name.ends_with(".safetensors")
                && Some(name.as_str()) != keep;
            // Only a checkpoint's own leftovers: another command may be writing into the run.
            let tmp = [".model.safetensors", ".optimizer", ".metrics.jsonl", ".config.toml"]
                .iter()
                .any(|p| name.starts_with(p))
                && name.contains(".tmp-");
            if old_opt || tmp {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }

    /// The checkpoint's metadata, without building the model.
    pub fn checkpoint_info(&self) -> Result<CheckpointInfo> {
        let p = self.file("model.safetensors");
        let (_, meta) = read_safetensors(&p)?;
        info_from(&meta, &p)
    }

    /// Rebuilds the model from `model.safetensors` (config from its metadata).
    /// Returns the model and the step it was saved at.
    pub fn load_model(&self, dev: &Device) -> Result<(Model, usize)> {
        let p = self.file("model.safetensors");
        let bytes = std::fs::read(&p).map_err(|e| Error::io(&p, e))?;
        model_from_bytes(&bytes, &p, dev)
    }

    /// Restores the optimizer state saved with the model (each optimiser finds its own tensors).
    pub fn load_optimizers(&self, opts: &mut [&mut Adam], step: usize) -> Result<()> {
        let (tensors, p) = self.optimizer_state(step)?;
        for o in opts.iter_mut() {
            o.load_state(&tensors, step, &p)?;
        }
        Ok(())
    }

    /// The optimizer tensors of the checkpoint at `step`, and the file they came from.
    pub fn optimizer_state(&self, step: usize) -> Result<(HashMap<String, Tensor>, PathBuf)> {
        let named = self.file(&optimizer_file(step));
        let p = if named.is_file() { named } else { self.file("optimizer.safetensors") };
        if !p.is_file() {
            return Err(Error::checkpoint(
                &self.path,
                format!(
                    "{} is missing: the optimizer state of step {step} is needed to resume \
                    exactly",
                    optimizer_file(step)
                ),
            ));
        }
        let (tensors, meta) = read_safetensors(&p)?;
        let ostep: usize = meta
            .get("step")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Error::checkpoint(&p, "no step in the metadata"))?;
        if ostep != step {
            return Err(Error::checkpoint(
                &p,
                format!("optimizer state is from step {ostep}, the model from step {step}"),
            ));
        }
        Ok((tensors, p))
    }

    /// Appends one JSON line to `metrics.jsonl`.
    pub fn append_metrics(&self, line: &serde_json::Value) -> Result<()> {
        let p = self.file("metrics.jsonl");
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)
            .map_err(|e| Error::io(&p, e))?;
        writeln!(f, "{line}").map_err(|e| Error::io(&p, e))
    }

    /// The lines of `metrics.jsonl` that belong to the checkpoint `info`, checked to parse, as
    /// the bytes to keep. Changes nothing: [`RunDir::accept_resume`] writes them.
    pub fn metrics_to_keep(&self, info: &CheckpointInfo) -> Result<Vec<u8>> {
        let p = self.file("metrics.jsonl");
        let bytes = match std::fs::read(&p) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(Error::io(&p, e)),
        };
        let kept = match info.metrics_bytes {
            Some(n) if n as usize <= bytes.len() => bytes[..n as usize].to_vec(),
            // Older checkpoints, or a file cut shorter by hand: keep the lines up to the step.
            _ => {
                let lines = super::dir::parse_metrics(&bytes, &p)?;
                let mut out = String::new();
                for v in lines
                    .iter()
                    .filter(|v| v["step"].as_u64().is_some_and(|s| s as usize <= info.step))
                {
                    out.push_str(&v.to_string());
                    out.push('\n');
                }
                out.into_bytes()
            }
        };
        super::dir::parse_metrics(&kept, &p)?;
        Ok(kept)
    }

    /// Commits a resume that has been accepted: `metrics.jsonl` cut back to the checkpoint,
    /// leftovers of a killed save removed.
    pub fn accept_resume(&self, metrics: &[u8], step: usize) -> Result<()> {
        atomic_write(&self.file("metrics.jsonl"), metrics)?;
        let named = self.file(&optimizer_file(step));
        let keep =
            if named.is_file() { optimizer_file(step) } else { "optimizer.safetensors".into() };
        self.remove_stale(Some(&keep));
        Ok(())
    }
}

fn info_from(meta: &HashMap<String, String>, p: &Path) -> Result<CheckpointInfo> {
    let step = meta
        .get("step")
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Error::checkpoint(p, "no step in the metadata"))?;
    let seed = meta.get("seed").and_then(|s| s.parse().ok()).unwrap_or(0);
    let metrics_bytes = meta.get("metrics_bytes").and_then(|s| s.parse().ok());
    Ok(CheckpointInfo { step, seed, metrics_bytes })
}

/// Rebuilds the model of a `model.safetensors` from its bytes (config from the metadata); `p`
/// names the file in errors. Returns the model and the step it was saved at.
pub fn model_from_bytes(bytes: &[u8], p: &Path, dev: &Device) -> Result<(Model, usize)> {
    let (tensors, meta) = parse_safetensors(bytes, p)?;
    let cfg_json = meta.get("config").ok_or_else(|| {
        Error::checkpoint(p, "no model config in the metadata (not a deepgen checkpoint?)")
    })?;
    let cfg: ModelConfig = serde_json::from_str(cfg_json).map_err(|e| {
        Error::checkpoint(p, format!("model config in the metadata is invalid: {e}"))
    })?;
    let info = info_from(&meta, p)?;
    // A real checkpoint holds every parameter, so the model it describes is no larger than
    // the tensors in the file: edited or damaged metadata cannot make us allocate more.
    let stored: usize = tensors.values().map(|t| t.elem_count()).sum();
    let model = Model::new_within(&cfg, info.seed, dev, stored).map_err(|e| match e {
        Error::TooLarge { .. } => Error::checkpoint(
            p,
            "the model config in the metadata describes more parameters than the file \
            holds (a damaged or edited checkpoint)",
        ),
        e => e,
    })?;
    model.params.load(&tensors, p)?;
    Ok((model, info.step))
}
