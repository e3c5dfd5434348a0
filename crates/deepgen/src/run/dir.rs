//! Run directories and checkpoints.
//!
//! A run is a directory: `config.toml` (the complete resolved config),
//! `model.safetensors` (weights; `__metadata__` holds the model config JSON,
//! step, seed, deepgen version, the optimizer file and the metrics length),
//! `optimizer-STEP.safetensors` (Adam moments and step), `metrics.jsonl`, and
//! the PNGs. Every file is written to a temporary name and renamed, and a
//! checkpoint's files commit together ([`super::checkpoint`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::data::Binarize;
use crate::error::{Error, Result};
pub use crate::files::atomic_write;
use crate::models::ModelConfig;
use crate::train::TrainConfig;

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
    /// A two-domain model's second domain (CycleGAN's B) and its held-out set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_b: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_b: Option<String>,
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

pub(crate) fn safetensors_bytes(
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
    parse_safetensors(&bytes, path)
}

/// The tensors and metadata of safetensors bytes; `path` names the file in errors.
pub fn parse_safetensors(
    bytes: &[u8],
    path: &Path,
) -> Result<(HashMap<String, Tensor>, HashMap<String, String>)> {
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes)
        .map_err(|e| Error::checkpoint(path, format!("not a valid safetensors file: {e}")))?;
    let meta = meta.metadata().clone().unwrap_or_default();
    let tensors = candle_core::safetensors::load_buffer(bytes, &Device::Cpu)
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
        parse_config(&text, &p)
    }

    /// Reads `metrics.jsonl`. A line that is not JSON is an error naming it, except a last line
    /// without its newline (a write cut short by a kill, dropped when the run resumes).
    pub fn metrics(&self) -> Result<Vec<serde_json::Value>> {
        let p = self.file("metrics.jsonl");
        let bytes = std::fs::read(&p).map_err(|e| Error::io(&p, e))?;
        parse_metrics(&bytes, &p)
    }
}

/// A `config.toml`'s text as a run config; `p` names the file in errors, which are one line
/// with the line number (toml's own messages span several lines).
pub fn parse_config(text: &str, p: &Path) -> Result<RunConfig> {
    toml::from_str(text).map_err(|e| {
        let msg: Vec<&str> = e.message().lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        let at = e
            .span()
            .map(|s| {
                format!("line {}: ", text[..s.start.min(text.len())].matches('\n').count() + 1)
            })
            .unwrap_or_default();
        Error::bad_file(p, format!("{at}{}", msg.join(", ")))
    })
}

/// The lines of a `metrics.jsonl` (see [`RunDir::metrics`]).
pub fn parse_metrics(bytes: &[u8], p: &Path) -> Result<Vec<serde_json::Value>> {
    let complete = bytes.iter().rposition(|&b| b == b'\n').map(|i| i + 1).unwrap_or(0);
    let text = std::str::from_utf8(&bytes[..complete]).map_err(|e| {
        Error::bad_file(
            p,
            format!("not UTF-8 text (byte {}); the run's metrics are damaged", e.valid_up_to()),
        )
    })?;
    let mut out = Vec::new();
    for (i, l) in text.lines().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(l).map_err(|e| {
            Error::bad_file(
                p,
                format!("line {} is not a JSON object ({e}); the run's metrics are damaged", i + 1),
            )
        })?;
        if !v.is_object() {
            return Err(Error::bad_file(p, format!("line {} is not a JSON object", i + 1)));
        }
        out.push(v);
    }
    Ok(out)
}
