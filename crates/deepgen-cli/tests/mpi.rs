//! Data-parallel training under a real `mpirun` (Open MPI): two ranks on this machine against one
//! process on the combined batch, for a likelihood model (NADE) and a GAN; a rank killed or
//! stopped mid-run; a resume on another number of ranks. Built with `--features distributed`
//! (scripts/test.sh does); needs `mpirun` (Debian's openmpi-bin).

#![cfg(feature = "distributed")]

mod common;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{ok, weights};

/// `mpirun -np N deepgen ARGS` in `dir`, allowed to run as root (CI's containers), with the
/// shared-memory transport's single-copy mechanism off (containers forbid the ptrace it uses).
fn mpirun(dir: &Path, n: usize) -> Command {
    let mpirun = ["/usr/bin/mpirun", "/usr/local/bin/mpirun"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("mpirun not found: install Open MPI (openmpi-bin), as scripts/test.sh does");
    let mut c = Command::new(mpirun);
    c.args(["-np", &n.to_string(), "--oversubscribe"])
        .arg(env!("CARGO_BIN_EXE_deepgen"))
        .current_dir(dir)
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("OMPI_MCA_btl_vader_single_copy_mechanism", "none")
        .env("OMPI_MCA_rmaps_base_oversubscribe", "1")
        .env_remove("RAYON_NUM_THREADS");
    c
}

fn mpi_ok(dir: &Path, n: usize, args: &[&str]) -> (String, String) {
    let o: Output = mpirun(dir, n).args(args).output().expect("run mpirun");
    let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "mpirun -np {n} deepgen {args:?} failed:\n{out}\n{err}");
    (out.to_string(), err.to_string())
}

/// The largest absolute difference between two runs' weights (same names and shapes).
fn max_diff(a: &Path, b: &Path) -> f32 {
    let (wa, wb) = (weights(a), weights(b));
    assert_eq!(wa.len(), wb.len());
    let mut worst = 0f32;
    for ((na, va), (nb, vb)) in wa.iter().zip(&wb) {
        assert_eq!(na, nb);
        assert_eq!(va.len(), vb.len(), "{na}");
        for (x, y) in va.iter().zip(vb) {
            worst = worst.max((x - y).abs());
        }
    }
    worst
}

const NADE: &[&str] = &["train", "nade", "--data", "digits", "--eval-every", "4", "--seed", "3"];

#[test]
fn two_ranks_match_one_process_on_the_combined_batch_for_nade() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let with = |extra: &[&str]| -> Vec<String> {
        NADE.iter().chain(extra).map(|s| s.to_string()).collect()
    };
    let two = with(&["--steps", "8", "--batch-size", "16", "--out", "two"]);
    let two: Vec<&str> = two.iter().map(|s| s.as_str()).collect();
    let (out, err) = mpi_ok(d, 2, &two);
    // Rank 0 alone prints, and says the ranks held identical parameters at each checkpoint.
    assert_eq!(out.matches("run directory:").count(), 1, "{out}");
    assert!(err.contains("2 shards of 16 (32 per step) on 2 rank(s) over MPI"), "{err}");
    assert!(err.contains("parameters identical on every rank"), "{err}");
    // One process on the combined batch of 32, in one forward pass.
    ok(
        d,
        &NADE
            .iter()
            .chain(&["--steps", "8", "--batch-size", "32", "--out", "one"])
            .copied()
            .collect::<Vec<_>>(),
    );
    // One process computing the two shards in turn.
    ok(
        d,
        &NADE
            .iter()
            .chain(&["--steps", "8", "--batch-size", "16", "--shards", "2", "--out", "acc"])
            .copied()
            .collect::<Vec<_>>(),
    );
    // The control: one shard of 16 is another computation, far outside the tolerance.
    ok(
        d,
        &NADE
            .iter()
            .chain(&["--steps", "8", "--batch-size", "16", "--out", "half"])
            .copied()
            .collect::<Vec<_>>(),
    );
    let (one, acc, half) = (
        max_diff(&d.join("two"), &d.join("one")),
        max_diff(&d.join("two"), &d.join("acc")),
        max_diff(&d.join("two"), &d.join("half")),
    );
    assert!(one < 1e-6, "2 ranks vs batch 32: {one}");
    assert!(acc < 1e-6, "2 ranks vs 2 shards in one process: {acc}");
    assert!(half > 1e-4, "the control should differ: {half}");
    // The logged loss is the mean over both ranks' shards: the one-process value.
    let losses = |run: &str| -> Vec<f64> {
        std::fs::read_to_string(d.join(run).join("metrics.jsonl"))
            .unwrap()
            .lines()
            .filter_map(|l| {
                serde_json::from_str::<serde_json::Value>(l).ok()?.get("loss")?.as_f64()
            })
            .collect()
    };
    let (a, b) = (losses("two"), losses("one"));
    assert_eq!(a.len(), 8);
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() < 1e-4 * y.abs(), "loss {x} vs {y}");
    }
}

#[test]
fn two_ranks_match_one_process_with_two_shards_for_a_gan() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let gan = ["train", "gan", "--data", "digits", "--steps", "6", "--batch-size", "16"];
    let mut two: Vec<&str> = gan.to_vec();
    two.extend(["--eval-every", "3", "--out", "two"]);
    let (_, err) = mpi_ok(d, 2, &two);
    assert!(err.contains("parameters identical on every rank"), "{err}");
    let mut acc: Vec<&str> = gan.to_vec();
    acc.extend(["--eval-every", "3", "--shards", "2", "--out", "acc"]);
    ok(d, &acc);
    // Shard 1's noise is its own stream, so the GAN matches one process that computes the same
    // two shards; the critic's and the generator's updates are both averaged.
    let diff = max_diff(&d.join("two"), &d.join("acc"));
    assert!(diff < 1e-6, "GAN, 2 ranks vs 2 shards in one process: {diff}");
    let mut half: Vec<&str> = gan.to_vec();
    half.extend(["--eval-every", "3", "--out", "half"]);
    ok(d, &half);
    assert!(max_diff(&d.join("two"), &d.join("half")) > 1e-4);
}

/// The pid of rank `rank` among `mpirun`'s children (Open MPI sets OMPI_COMM_WORLD_RANK).
fn rank_pid(mpirun: u32, rank: usize) -> Option<u32> {
    let want = format!("OMPI_COMM_WORLD_RANK={rank}");
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // The parent pid is the fourth field, after the parenthesised name.
        let after = stat.rsplit(')').next().unwrap_or("");
        let ppid: Option<u32> = after.split_whitespace().nth(1).and_then(|p| p.parse().ok());
        if ppid != Some(mpirun) {
            continue;
        }
        let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else { continue };
        if env.split(|&b| b == 0).any(|v| v == want.as_bytes()) {
            return Some(pid);
        }
    }
    None
}

/// Starts a long 2-rank NADE run and waits for its checkpoint of at least step `after`.
/// The job is returned running: the caller ends it and waits for it ([`wait`]).
#[allow(clippy::zombie_processes)]
fn start_long(d: &Path, out: &str, after: usize) -> Child {
    let args = [
        "train",
        "nade",
        "--data",
        "digits",
        "--steps",
        "100000",
        "--batch-size",
        "16",
        "--eval-every",
        "20",
        "--seed",
        "5",
        "--out",
        out,
    ];
    let mut child = mpirun(d, 2)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mpirun");
    let t0 = Instant::now();
    loop {
        let step =
            deepgen::run::RunDir { path: d.join(out) }.checkpoint_info().ok().map(|i| i.step);
        if step.is_some_and(|s| s >= after) {
            return child;
        }
        if t0.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("no checkpoint of step {after} within 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits for `child` at most `secs` seconds; its status and stderr.
fn wait(mut child: Child, secs: u64) -> (std::process::ExitStatus, String) {
    let t0 = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            let mut err = String::new();
            use std::io::Read;
            child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
            return (s, err);
        }
        if t0.elapsed() > Duration::from_secs(secs) {
            let _ = child.kill();
            panic!("the job did not end within {secs} s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_killed_rank_ends_the_job_and_its_last_checkpoint_resumes_on_one_process() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let child = start_long(d, "run", 40);
    let pid = rank_pid(child.id(), 1).expect("rank 1's process");
    assert!(Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap().success());
    let (status, err) = wait(child, 60);
    assert!(!status.success(), "{err}");
    // Open MPI names the rank and the signal.
    assert!(err.contains("rank 1") && err.contains("signal 9"), "{err}");
    // The last checkpoint is whole: one process continues it (the run's 2 shards in turn).
    let dir = deepgen::run::RunDir { path: d.join("run") };
    let step = dir.checkpoint_info().unwrap().step;
    assert!(step >= 40 && step.is_multiple_of(20), "checkpoint at {step}");
    let total = (step + 10).to_string();
    let out = ok(d, &["train", "--resume", "run", "--steps", &total]);
    assert!(out.contains("run directory:"), "{out}");
    assert_eq!(dir.checkpoint_info().unwrap().step, step + 10);
}

#[test]
fn sigterm_to_one_rank_stops_every_rank_at_one_checkpoint_and_two_ranks_resume() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let child = start_long(d, "run", 20);
    let pid = rank_pid(child.id(), 1).expect("rank 1's process");
    assert!(Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap().success());
    let (status, err) = wait(child, 60);
    assert!(!status.success());
    // Rank 0 saved the checkpoint of the step every rank stopped at, and said how to resume.
    let line =
        err.lines().find(|l| l.contains("interrupted at step")).unwrap_or_else(|| panic!("{err}"));
    assert_eq!(err.matches("interrupted at step").count(), 1, "{err}");
    let step: usize = line
        .split("interrupted at step ")
        .nth(1)
        .and_then(|s| s.split(':').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    let dir = deepgen::run::RunDir { path: d.join("run") };
    assert_eq!(dir.checkpoint_info().unwrap().step, step);
    let total = (step + 6).to_string();
    mpi_ok(d, 2, &["train", "--resume", "run", "--steps", &total]);
    assert_eq!(dir.checkpoint_info().unwrap().step, step + 6);
}

#[test]
fn resume_on_one_process_continues_a_two_rank_run_on_its_trajectory() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let base = ["train", "nade", "--data", "digits", "--batch-size", "16", "--eval-every", "4"];
    let args = |steps: &str, out: &str| -> Vec<String> {
        base.iter().chain(&["--steps", steps, "--out", out]).map(|s| s.to_string()).collect()
    };
    let refs = |v: &[String]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let a = refs(&args("4", "split"));
    mpi_ok(d, 2, &a.iter().map(|s| s.as_str()).collect::<Vec<_>>());
    ok(d, &["train", "--resume", "split", "--steps", "8"]);
    let b = refs(&args("8", "whole"));
    mpi_ok(d, 2, &b.iter().map(|s| s.as_str()).collect::<Vec<_>>());
    let diff = max_diff(&d.join("split"), &d.join("whole"));
    assert!(diff < 1e-6, "2 ranks then 1 process vs 2 ranks throughout: {diff}");
}

#[test]
fn a_rank_that_fails_before_training_stops_all_with_one_message() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    std::fs::create_dir(d.join("taken")).unwrap();
    std::fs::write(d.join("taken/notes.txt"), "mine").unwrap();
    let o = mpirun(d, 2)
        .args(["train", "nade", "--data", "digits", "--steps", "2", "--out", "taken"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
    // Rank 0 refused the directory; rank 1, whose part went well, printed nothing.
    assert_eq!(errors.len(), 1, "{err}");
    assert!(errors[0].contains("rank 0 of 2") && errors[0].contains("--out taken"), "{err}");
    assert_eq!(std::fs::read_to_string(d.join("taken/notes.txt")).unwrap(), "mine");
    // More ranks than shards: refused on every rank, printed once.
    let o = mpirun(d, 2)
        .args(["train", "nade", "--data", "digits", "--steps", "2", "--shards", "1", "--out", "x"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("--shards 1: fewer shards than the 2 ranks"), "{err}");
    assert!(!d.join("x").exists());
    // Only training is data-parallel: another command under mpirun is refused, once.
    let o = mpirun(d, 2).args(["models"]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && o.stdout.is_empty());
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(errors[0].contains("only `deepgen train` runs data-parallel"), "{err}");
}
