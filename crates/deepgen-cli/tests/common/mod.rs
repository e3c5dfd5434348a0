//! Running the `deepgen` binary in the CLI tests.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

pub fn deepgen(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_deepgen"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run deepgen")
}

pub fn ok(dir: &Path, args: &[&str]) -> String {
    let o = deepgen(dir, args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "deepgen {args:?} failed: {err}");
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// Runs a command that must fail cleanly; returns its one-line message.
pub fn fails(dir: &Path, args: &[&str], want: &str) -> String {
    let o = deepgen(dir, args);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(
        o.status.code(),
        Some(2),
        "deepgen {args:?}: expected exit 2, got {:?}; stderr: {err}",
        o.status.code()
    );
    assert!(
        !err.contains("panicked") && !err.contains("internal error") && !err.contains("backtrace"),
        "{args:?}: {err}"
    );
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(lines.len(), 1, "{args:?}: expected one error line, got: {err}");
    assert!(err.contains(want), "{args:?}: expected `{want}` in: {err}");
    err
}

/// Every tensor of a run's `model.safetensors`, sorted by name.
pub fn weights(run: &Path) -> Vec<(String, Vec<f32>)> {
    let (t, _) = deepgen::run::read_safetensors(&run.join("model.safetensors")).unwrap();
    let mut v: Vec<(String, Vec<f32>)> = t
        .into_iter()
        .map(|(k, t)| (k, t.flatten_all().unwrap().to_vec1::<f32>().unwrap()))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}
