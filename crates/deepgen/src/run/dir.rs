//! Run directories and checkpoints.
//!
//! A run is a directory: `config.toml` (the complete resolved config),
//! `model.safetensors` (weights; `__metadata__` holds the model config JSON,
//! step, seed and deepgen version), `optimizer.safetensors` (Adam moments and
//! step), `metrics.jsonl`, and the PNGs. Every file is written to a temporary
//! name and renamed, so a killed run never leaves a half-written checkpoint.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::data::Binarize;
use crate::error::{Error, Result};
pub use crate::files::atomic_write;
use crate::models::{Model, ModelConfig};
use crate::train::{Adam, TrainConfig};

/// Everything needed to rebuild a run: saved as `config.toml`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    pub seed: u64,
    pub data: DataConfig,
    pub train: TrainConfig,
    pub model: ModelConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Training data spec.
    pub train: String,
    /// Validation data spec, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val: Option<String>,
    pub binarize: Binarize,
    /// Shape of one example (`[C, H, W]` for images, `[D]` otherwise), so that
    /// sampling needs no data file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shape: Vec<usize>,
    /// Per-feature standardisation (x - mean) / std applied before the model; empty when off.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mean: Vec<f32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub std: Vec<f32>,
}

fn safetensors_bytes(
    tensors: &HashMap<String, Tensor>,
    meta: HashMap<String, String>,
    path: &Path,
) -> Result<Vec<u8>> {
    let mut items: Vec<(&String, &Tensor)> = tensors.iter().collect();
    items.sort_by(|a, b| a.0.cmp(b.0));
    safetensors::serialize(items, Some(meta))
        .map_err(|e| Error::checkpoint(path, format!("cannot serialize: {e}")))
}

/// Reads a safetensors file: tensors and metadata.
pub fn read_safetensors(path: &Path) -> Result<(HashMap<String, Tensor>, HashMap<String, String>)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| Error::checkpoint(path, format!("not a valid safetensors file: {e}")))?;
    let meta = meta.metadata().clone().unwrap_or_default();
    let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
        .map_err(|e| Error::checkpoint(path, format!("cannot read tensors: {e}")))?;
    Ok((tensors, meta))
}

/// A run directory.
pub struct RunDir {
    pub path: PathBuf,
}

impl RunDir {
    /// Creates (or reuses) the directory.
    pub fn create(path: &Path) -> Result<Self> {
        std::fs::create_dir_all(path).map_err(|e| Error::io(path, e))?;
        Ok(Self { path: path.to_path_buf() })
    }

    /// Opens an existing run; it must hold a config and a model checkpoint.
    pub fn open(path: &Path) -> Result<Self> {
        if !path.is_dir() {
            return Err(Error::checkpoint(path, "no such run directory"));
        }
        for f in ["config.toml", "model.safetensors"] {
            if !path.join(f).is_file() {
                return Err(Error::checkpoint(
                    path,
                    format!("no checkpoint here ({f} is missing)"),
                ));
            }
        }
        Ok(Self { path: path.to_path_buf() })
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    pub fn write_config(&self, cfg: &RunConfig) -> Result<()> {
        let text = toml::to_string_pretty(cfg)
            .map_err(|e| Error::config(format!("cannot write config: {e}")))?;
        atomic_write(&self.file("config.toml"), text.as_bytes())
    }

    pub fn read_config(&self) -> Result<RunConfig> {
        let p = self.file("config.toml");
        let text = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
        toml::from_str(&text).map_err(|e| Error::bad_file(&p, e.message().to_string()))
    }

    /// Saves weights and optimizer state (each atomically; weights last, so
    /// a model file is never newer than the optimizer state it pairs with).
    /// `opts` holds the run's optimisers (their state names are distinct: `mv.{param}`).
    pub fn save(&self, model: &Model, opts: &[&Adam], step: usize, seed: u64) -> Result<()> {
        let cfg_json =
            serde_json::to_string(&model.config).map_err(|e| Error::config(e.to_string()))?;
        let step = step.to_string();
        let mut meta = HashMap::from([
            ("deepgen_version".to_string(), env!("CARGO_PKG_VERSION").to_string()),
            ("model".to_string(), model.name().to_string()),
            ("config".to_string(), cfg_json),
            ("step".to_string(), step.clone()),
            ("seed".to_string(), seed.to_string()),
        ]);
        let op = self.file("optimizer.safetensors");
        let state: HashMap<String, Tensor> = opts.iter().flat_map(|o| o.state()).collect();
        let ob = safetensors_bytes(&state, HashMap::from([("step".to_string(), step)]), &op)?;
        atomic_write(&op, &ob)?;
        let weights: HashMap<String, Tensor> =
            model.params.vars().map(|(k, v)| (k.clone(), v.as_tensor().clone())).collect();
        let mp = self.file("model.safetensors");
        meta.insert("params".to_string(), model.params.count().to_string());
        let mb = safetensors_bytes(&weights, meta, &mp)?;
        atomic_write(&mp, &mb)
    }

    /// Rebuilds the model from `model.safetensors` (config from its metadata).
    /// Returns the model and the step it was saved at.
    pub fn load_model(&self, dev: &Device) -> Result<(Model, usize)> {
        let p = self.file("model.safetensors");
        let (tensors, meta) = read_safetensors(&p)?;
        let cfg_json = meta.get("config").ok_or_else(|| {
            Error::checkpoint(&p, "no model config in the metadata (not a deepgen checkpoint?)")
        })?;
        let cfg: ModelConfig = serde_json::from_str(cfg_json).map_err(|e| {
            Error::checkpoint(&p, format!("model config in the metadata is invalid: {e}"))
        })?;
        let step = meta
            .get("step")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Error::checkpoint(&p, "no step in the metadata"))?;
        let seed = meta.get("seed").and_then(|s| s.parse().ok()).unwrap_or(0);
        let model = Model::new(&cfg, seed, dev)?;
        model.params.load(&tensors, &p)?;
        Ok((model, step))
    }

    /// Restores the optimizer state saved with the model (each optimiser finds its own tensors).
    pub fn load_optimizers(&self, opts: &mut [&mut Adam], step: usize) -> Result<()> {
        let p = self.file("optimizer.safetensors");
        if !p.is_file() {
            return Err(Error::checkpoint(
                &self.path,
                "optimizer.safetensors is missing: cannot resume exactly",
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
        for o in opts.iter_mut() {
            o.load_state(&tensors, step, &p)?;
        }
        Ok(())
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

    /// Drops metric lines past `step` (written after the last checkpoint of a killed run).
    pub fn truncate_metrics(&self, step: usize) -> Result<()> {
        let p = self.file("metrics.jsonl");
        let Ok(text) = std::fs::read_to_string(&p) else { return Ok(()) };
        let kept: Vec<&str> = text
            .lines()
            .filter(|l| {
                serde_json::from_str::<serde_json::Value>(l)
                    .ok()
                    .and_then(|v| v["step"].as_u64())
                    .is_some_and(|s| s as usize <= step)
            })
            .collect();
        let mut out = kept.join("\n");
        if !out.is_empty() {
            out.push('\n');
        }
        atomic_write(&p, out.as_bytes())
    }

    /// Reads `metrics.jsonl`.
    pub fn metrics(&self) -> Result<Vec<serde_json::Value>> {
        let p = self.file("metrics.jsonl");
        let text = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
        Ok(text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect())
    }
}
