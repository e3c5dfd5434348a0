//! The run wing: everything that works on run directories, shared by the CLI
//! and by programs that embed deepgen. The run config and directory with its
//! atomic files (`dir`), the run's data transforms (`transform`), the hooks
//! that write metrics and checkpoints (`hooks`), the pictures a run leaves
//! (`artifacts`), completion (`complete`), latent paths (`latent`) and the
//! evaluation report (`report`).

pub mod artifacts;
pub mod assemble;
pub mod checkpoint;
pub mod complete;
pub mod config;
pub mod detect;
pub mod dir;
pub mod examples;
pub mod growth;
pub mod hooks;
pub mod infer;
pub mod latent;
pub mod options;
pub mod pretrained;
pub mod report;
mod report_text;
pub mod tensorboard;
pub mod train;
pub mod transform;
pub mod translate;
pub mod translate_eval;

pub use artifacts::*;
pub use checkpoint::{CheckpointInfo, RunLock};
pub use complete::*;
pub use dir::{
    atomic_write, parse_config, parse_safetensors, read_safetensors, DataConfig, RunConfig, RunDir,
};
pub use examples::*;
pub use hooks::*;
pub use latent::*;
pub use options::TrainOptions;
pub use train::{device, train, train_with, TrainSummary};
pub use transform::*;

use std::path::Path;

use crate::error::{Error, Result};
use crate::models::Model;

/// Opens a run directory: its config and its model, checked to agree.
pub fn open(path: &Path) -> Result<(RunDir, RunConfig, Model)> {
    open_on(path, &candle_core::Device::Cpu)
}

/// [`open`] with the model's weights on `dev` (`deepgen sample --device cuda`).
pub fn open_on(path: &Path, dev: &candle_core::Device) -> Result<(RunDir, RunConfig, Model)> {
    let dir = RunDir::open(path)?;
    let cfg = dir.read_config()?;
    let (model, _) = dir.load_model(dev)?;
    check_agree(path, &cfg, &model)?;
    Ok((dir, cfg, model))
}

/// A run's `config.toml` and its checkpoint must describe one model, and the data shape must
/// have the model's dimension: every command that opens a run refuses an edited config alike.
pub fn check_agree(path: &Path, cfg: &RunConfig, model: &Model) -> Result<()> {
    if model.config.name() != cfg.model.name() {
        return Err(Error::config(format!(
            "{}: config.toml is for a {} model but model.safetensors holds a {}",
            path.display(),
            cfg.model.name(),
            model.name()
        )));
    }
    if model.config != cfg.model {
        return Err(Error::config(format!(
            "{}: config.toml and model.safetensors describe different models (was config.toml \
            edited? the checkpoint's own config is in its metadata)",
            path.display()
        )));
    }
    let dim: usize = cfg.data.shape.iter().product();
    if !cfg.data.shape.is_empty() && dim != model.config.dim() {
        return Err(Error::config(format!(
            "{}: config.toml gives the data shape {:?} ({dim} values) but the model takes {}",
            path.display(),
            cfg.data.shape,
            model.config.dim()
        )));
    }
    Ok(())
}
