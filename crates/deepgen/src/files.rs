//! Atomic file writes: every file deepgen writes (checkpoints, configs,
//! CSVs, pictures) goes through a temporary name in the same directory and a
//! rename, so a killed process never leaves a half-written file.

use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fault_point("atomic-write:before-rename");
        std::fs::rename(&tmp, path)?;
        // The rename itself is durable only once the directory is synced.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

/// Fault injection for the crash tests: with `DEEPGEN_FAULT=NAME@K` in the environment, the K-th
/// time (1-based) the process reaches the point `NAME` it aborts, as a `kill -9` there would
/// stop it. Without the variable this is one relaxed atomic load after the first call.
pub fn fault_point(name: &str) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::OnceLock;
    static FAULT: OnceLock<Option<(String, usize)>> = OnceLock::new();
    static HITS: AtomicUsize = AtomicUsize::new(0);
    let fault = FAULT.get_or_init(|| {
        let v = std::env::var("DEEPGEN_FAULT").ok()?;
        let (n, k) = v.rsplit_once('@').unwrap_or((v.as_str(), "1"));
        Some((n.to_string(), k.parse().ok()?))
    });
    if let Some((n, k)) = fault {
        if n == name && HITS.fetch_add(1, Ordering::Relaxed) + 1 == *k {
            std::process::abort();
        }
    }
}
