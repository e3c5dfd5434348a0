//! One error type for the library. Every message is one line that names the
//! file, flag or tensor involved and what is wrong with it.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written. (The OS error is not marked as the source: it is
    /// already in the message, and a caller printing the chain would print it twice.)
    #[error("{path}: {err}")]
    Io { path: PathBuf, err: std::io::Error },

    /// A data file exists but its content is not what its format promises.
    #[error("{path}: {msg}")]
    BadFile { path: PathBuf, msg: String },

    /// A data spec, flag or config value that cannot be used.
    #[error("{0}")]
    Config(String),

    /// Shapes that do not fit together (data against model, tensor against checkpoint).
    #[error("shape mismatch: {0}")]
    Shape(String),

    /// A checkpoint that is missing, of another model, or inconsistent.
    #[error("{path}: {msg}")]
    Checkpoint { path: PathBuf, msg: String },

    /// Training produced NaN or infinity. `kept`: the step of the checkpoint left in place, if
    /// any.
    #[error("non-finite loss at step {step} ({what}); {}", kept_text(*.kept))]
    NonFinite { step: usize, what: String, kept: Option<usize> },

    /// A model whose parameters would not fit in memory (see [`crate::limits`]).
    #[error(
        "the model would hold {} parameters, more than the {budget} that fit in the memory \
        available ({} at 16 bytes each: weights, gradients, two Adam moments); make it smaller",
        params.map(|p| p.to_string()).unwrap_or_else(|| "more than 2^64".into()),
        show_bytes(*budget as u64 * 16)
    )]
    TooLarge { params: Option<usize>, budget: usize },

    /// Data-parallel ranks that disagree, or a rank that failed before training: every rank
    /// returns this error alike (the CLI prints it once, from rank 0).
    #[error("{0}")]
    Ranks(String),

    /// Training stopped on SIGINT or SIGTERM after saving a checkpoint at `step`.
    #[error("interrupted at step {step}: {}", resume_text(dir.as_deref()))]
    Interrupted { step: usize, dir: Option<PathBuf> },

    /// An error from the tensor library.
    #[error("tensor error: {0}")]
    Candle(#[from] candle_core::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn resume_text(dir: Option<&std::path::Path>) -> String {
    match dir {
        Some(d) => format!(
            "the checkpoint is saved in {}; continue with `deepgen train --resume {}`",
            d.display(),
            d.display()
        ),
        None => "the checkpoint is saved".into(),
    }
}

fn kept_text(kept: Option<usize>) -> String {
    match kept {
        Some(s) => format!("the checkpoint of step {s} is kept; resume from it with a lower --lr"),
        None => "no checkpoint had been written yet (nothing to resume)".into(),
    }
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), err: source }
    }
    pub fn bad_file(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::BadFile { path: path.into(), msg: msg.into() }
    }
    pub fn config(msg: impl Into<String>) -> Self {
        Error::Config(msg.into())
    }
    pub fn checkpoint(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::Checkpoint { path: path.into(), msg: msg.into() }
    }
}

/// User text quoted in a message with its control characters escaped (`\n`, `\u{1b}`), so that
/// a message stays one line and cannot drive the terminal.
pub fn shown(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { c.escape_debug().to_string() } else { c.to_string() })
        .collect()
}

/// Human-readable bytes: `3.2 GB`, `512 MB`.
pub fn show_bytes(b: u64) -> String {
    let gb = b as f64 / (1u64 << 30) as f64;
    if gb >= 1.0 {
        format!("{gb:.1} GB")
    } else {
        format!("{:.0} MB", (b as f64 / (1u64 << 20) as f64).max(1.0))
    }
}
