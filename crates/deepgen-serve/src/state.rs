//! What the service holds: the runs, loaded once and shared by every request, its limits and
//! its inference pool.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use deepgen::run::infer::{self, Capabilities, Loaded};

use crate::pool::Pool;
use crate::ServeOptions;

/// One served run.
pub struct Entry {
    /// Its name in the URL (`/v1/models/{name}`).
    pub name: String,
    pub run: Loaded,
    pub caps: Capabilities,
}

/// The limits a request must keep to.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_samples: usize,
    pub max_rows: usize,
    pub max_body: usize,
    pub max_image_pixels: u64,
    pub max_steps: usize,
}

pub struct AppState {
    /// Set once the runs are loaded (`/readyz` answers 200 from then on).
    pub models: OnceLock<Vec<Arc<Entry>>>,
    pub pool: Pool,
    pub limits: Limits,
    pub workers: usize,
    pub queue: usize,
}

impl AppState {
    pub fn new(o: &ServeOptions) -> Self {
        Self {
            models: OnceLock::new(),
            pool: Pool::new(o.workers, o.queue, Duration::from_secs_f64(o.timeout.max(0.001))),
            limits: Limits {
                max_samples: o.max_samples,
                max_rows: o.max_rows,
                max_body: o.max_body,
                max_image_pixels: o.max_image_pixels,
                max_steps: 64,
            },
            workers: o.workers,
            queue: o.queue,
        }
    }

    /// The served run `name`, if loaded.
    pub fn entry(&self, name: &str) -> Option<Arc<Entry>> {
        self.models.get()?.iter().find(|e| e.name == name).cloned()
    }
}

/// `NAME=RUN` or `RUN` (named by its directory) as a name and a path.
pub fn name_and_path(spec: &str) -> anyhow::Result<(String, PathBuf)> {
    if let Some((name, path)) = spec.split_once('=') {
        let ok = !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !ok {
            anyhow::bail!(
                "{spec}: a run's name may hold letters, digits, `-`, `_` and `.` only (NAME=RUN)"
            );
        }
        return Ok((name.to_string(), PathBuf::from(path)));
    }
    let path = PathBuf::from(spec);
    let name = path
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().to_string()))
        .filter(|n| n.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)))
        .ok_or_else(|| {
            anyhow::anyhow!("{spec}: cannot name this run from its path; pass NAME={spec}")
        })?;
    Ok((name, path))
}

/// Opens every run onto `dev` (the slow part of starting: each checkpoint is read once).
pub fn load(specs: &[String], dev: &candle_core::Device) -> anyhow::Result<Vec<Arc<Entry>>> {
    let mut out: Vec<Arc<Entry>> = Vec::new();
    for spec in specs {
        let (name, path) = name_and_path(spec)?;
        if out.iter().any(|e| e.name == name) {
            anyhow::bail!("two runs are named `{name}`: name them apart with NAME=RUN");
        }
        let run = Loaded::open_on(&path, dev)?;
        let caps = infer::capabilities(&run.model);
        out.push(Arc::new(Entry { name, run, caps }));
    }
    Ok(out)
}
