//! One error type for the library. Every message is one line that names the
//! file, flag or tensor involved and what is wrong with it.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },

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

    /// Training produced NaN or infinity.
    #[error("non-finite loss at step {step} ({what}); the last good checkpoint is kept")]
    NonFinite { step: usize, what: String },

    /// An error from the tensor library.
    #[error("tensor error: {0}")]
    Candle(#[from] candle_core::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
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
