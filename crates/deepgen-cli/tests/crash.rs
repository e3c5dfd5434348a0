//! Crash safety of training, end to end: `deepgen train` as a child process, stopped by
//! `kill -9` at seeded random moments, by an abort at each point of a checkpoint write
//! (`DEEPGEN_FAULT`), and by SIGINT / SIGTERM; each time the run is resumed, and the final
//! weights, optimizer state and metrics must be bit-identical to an uninterrupted run.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

const STEPS: &str = "600";
const TOTAL: usize = 600;
/// A checkpoint after every step, so that kills land inside checkpoint writes often.
const EVERY: &str = "1";

fn cmd(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_deepgen"));
    c.args(args).current_dir(dir).stdout(Stdio::null()).stderr(Stdio::piped());
    c
}

fn first_args<'a>(out: &'a str) -> Vec<&'a str> {
    let mut a = vec!["train", "fvsbn", "--data", "digits", "--steps", STEPS, "--eval-every"];
    a.extend([EVERY, "--seed", "4", "--out", out]);
    a
}

/// Starts training `run`: fresh if it has no checkpoint yet, else `--resume`.
fn start(dir: &Path, run: &str, fault: Option<&str>) -> Child {
    let resume = dir.join(run).join("model.safetensors").exists();
    let args: Vec<&str> =
        if resume { vec!["train", "--resume", run, "--steps", STEPS] } else { first_args(run) };
    let mut c = cmd(dir, &args);
    if let Some(f) = fault {
        c.env("DEEPGEN_FAULT", f);
    }
    c.spawn().expect("start deepgen")
}

/// Waits for a child; returns its exit code (None: killed by a signal) and stderr.
fn finish(c: Child) -> (Option<i32>, String) {
    let o = c.wait_with_output().expect("wait for deepgen");
    (o.status.code(), String::from_utf8_lossy(&o.stderr).to_string())
}

fn step_of(dir: &Path, run: &str) -> usize {
    let p = dir.join(run);
    deepgen::run::RunDir::open(&p).and_then(|d| d.checkpoint_info()).map(|i| i.step).unwrap_or(0)
}

/// Weights, optimizer state and the metric lines (without wall-clock times) of a finished run.
fn fingerprint(dir: &Path) -> (Vec<(String, Vec<f32>)>, Vec<(String, Vec<f32>)>, Vec<String>) {
    let read = |p: &Path| {
        let (t, _) = deepgen::run::read_safetensors(p).unwrap();
        let mut v: Vec<(String, Vec<f32>)> = t
            .iter()
            .map(|(k, t)| (k.clone(), t.flatten_all().unwrap().to_vec1::<f32>().unwrap()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    let opt = dir.join(format!("optimizer-{STEPS}.safetensors"));
    let m = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    let lines = m.lines().filter(|l| !l.contains("elapsed_s")).map(String::from).collect();
    (read(&dir.join("model.safetensors")), read(&opt), lines)
}

fn reference(dir: &Path) -> (Vec<(String, Vec<f32>)>, Vec<(String, Vec<f32>)>, Vec<String>) {
    let (code, err) = finish(start(dir, "ref", None));
    assert_eq!(code, Some(0), "{err}");
    fingerprint(&dir.join("ref"))
}

/// Resumes `run` (without faults) until it finishes.
fn complete(dir: &Path, run: &str) {
    let (code, err) = finish(start(dir, run, None));
    assert_eq!(code, Some(0), "resuming {run} failed: {err}");
}

#[test]
fn kill_9_at_random_moments_then_resume_is_bit_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let want = reference(d);
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(22);
    let (mut kills, mut resumed_mid_run) = (0, 0);
    // Each kill comes at a random moment of a child's life: during start-up, a step, or a
    // checkpoint write (most of the time, with a checkpoint every step).
    while kills < 12 {
        let before = step_of(d, "run");
        let mut c = start(d, "run", None);
        let t0 = Instant::now();
        let wait = Duration::from_millis(r.gen_range(30..700));
        while t0.elapsed() < wait {
            if c.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        if c.try_wait().unwrap().is_none() {
            c.kill().unwrap();
            let (code, _) = finish(c);
            assert_eq!(code, None, "the child should have died of SIGKILL");
            kills += 1;
        } else {
            let (code, err) = finish(c);
            assert_eq!(code, Some(0), "{err}");
        }
        if step_of(d, "run") == TOTAL {
            // Finished (perhaps killed while drawing its pictures): check it, then start over.
            assert!(want == fingerprint(&d.join("run")), "a resumed run differs from the reference");
            std::fs::remove_dir_all(d.join("run")).unwrap();
            continue;
        }
        if step_of(d, "run") > before && before > 0 {
            resumed_mid_run += 1;
        }
    }
    complete(d, "run");
    assert!(resumed_mid_run >= 3, "too few kills fell after a resume: {resumed_mid_run}");
    assert!(want == fingerprint(&d.join("run")), "the resumed run differs from the reference");
}

#[test]
fn an_abort_at_each_point_of_a_checkpoint_write_resumes_bit_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let want = reference(d);
    // The points of `RunDir::save` (and the atomic write under it), at checkpoints 5 and 40.
    let faults = [
        "checkpoint:metrics-written@5",
        "checkpoint:optimizer-written@5",
        "atomic-write:before-rename@12",
        "checkpoint:model-written@40",
        "atomic-write:before-rename@81",
    ];
    for f in faults {
        let (code, err) = finish(start(d, "run", Some(f)));
        assert_eq!(code, None, "{f}: expected an abort, got {code:?}: {err}");
        let info = deepgen::run::RunDir::open(&d.join("run")).unwrap().checkpoint_info().unwrap();
        assert!(info.step > 0, "{f}: no checkpoint");
    }
    complete(d, "run");
    assert!(want == fingerprint(&d.join("run")), "the resumed run differs from the reference");
    let left: Vec<String> = std::fs::read_dir(d.join("run"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.contains(".tmp-") || (n.starts_with("optimizer") && !n.contains(STEPS)))
        .collect();
    assert!(left.is_empty(), "stale files left behind: {left:?}");
}

#[test]
fn sigint_and_sigterm_save_a_checkpoint_and_say_how_to_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let want = reference(d);
    for (sig, code) in [(libc_sig::INT, 130), (libc_sig::TERM, 143)] {
        let before = step_of(d, "run");
        let c = start(d, "run", None);
        // Wait for this child's training to be under way (a new checkpoint), then signal.
        let t0 = Instant::now();
        while step_of(d, "run") <= before && t0.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(2));
        }
        let ok = Command::new("kill").arg(format!("-{sig}")).arg(c.id().to_string()).status();
        assert!(ok.unwrap().success());
        let (got, err) = finish(c);
        if got == Some(0) {
            continue; // finished before the signal arrived
        }
        assert_eq!(got, Some(code), "{sig}: {err}");
        let line = err.lines().find(|l| l.starts_with("error:")).unwrap_or_default();
        assert!(line.contains("interrupted at step"), "{line}");
        assert!(line.contains("deepgen train --resume run"), "{line}");
        let at: usize = line
            .split("interrupted at step ")
            .nth(1)
            .and_then(|s| s.split(':').next())
            .and_then(|s| s.parse().ok())
            .unwrap();
        assert_eq!(step_of(d, "run"), at, "the checkpoint is not at the step the message names");
        assert!(at >= before);
    }
    complete(d, "run");
    assert!(want == fingerprint(&d.join("run")), "the resumed run differs from the reference");
}

/// Signal names for `kill -NAME` (no libc in this test crate).
mod libc_sig {
    pub const INT: &str = "INT";
    pub const TERM: &str = "TERM";
}
