//! Crash safety of training, end to end: `deepgen train` as a child process, stopped by
//! `kill -9` at seeded random moments, by an abort at each point of a checkpoint write
//! (`DEEPGEN_FAULT`), and by SIGINT / SIGTERM; each time the run is resumed, and the final
//! weights, optimizer state and metrics must be bit-identical to an uninterrupted run.
//! (The long run, 20 trials for each trainer: `bench/src/bin/crash.rs`.)

#[path = "crash/trials.rs"]
mod trials;

use std::process::Command;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use trials::{finish, step_of, Recipe};

/// A checkpoint after every step, so that kills land inside checkpoint writes often.
fn recipe() -> Recipe {
    let args = "train fvsbn --data digits --eval-every 1 --seed 4";
    Recipe {
        bin: env!("CARGO_BIN_EXE_deepgen").into(),
        args: args.split(' ').map(String::from).collect(),
        steps: 600,
    }
}

#[test]
fn kill_9_at_random_moments_then_resume_is_bit_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let r = recipe();
    r.complete(d, "ref");
    let want = r.fingerprint(&d.join("ref"));
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(22);
    let t = trials::trials(&r, d, &want, 10, Duration::from_millis(900), &mut rng);
    assert_eq!((t.identical, t.unresumable), (10, 0), "{t:?}");
    // And one run killed again and again, each time after a resume.
    let mut kills = 0;
    while kills < 4 {
        let wait = Duration::from_millis(150 + 100 * kills);
        let (killed, _) = trials::kill_after(&r, d, "again", wait);
        kills += u64::from(killed);
        if step_of(d, "again") == r.steps {
            break;
        }
    }
    if step_of(d, "again") < r.steps {
        r.complete(d, "again");
    }
    assert!(want == r.fingerprint(&d.join("again")), "the resumed run differs from the reference");
}

#[test]
fn an_abort_at_each_point_of_a_checkpoint_write_resumes_bit_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let r = recipe();
    r.complete(d, "ref");
    let want = r.fingerprint(&d.join("ref"));
    // The points of `RunDir::save` (and the atomic write under it), at checkpoints 5 and 40.
    let faults = [
        "checkpoint:metrics-written@5",
        "checkpoint:optimizer-written@5",
        "atomic-write:before-rename@12",
        "checkpoint:model-written@40",
        "atomic-write:before-rename@81",
    ];
    for f in faults {
        let (code, err) = finish(r.start(d, "run", Some(f)));
        assert_eq!(code, None, "{f}: expected an abort, got {code:?}: {err}");
        assert!(step_of(d, "run") > 0, "{f}: no checkpoint");
    }
    r.complete(d, "run");
    assert!(want == r.fingerprint(&d.join("run")), "the resumed run differs from the reference");
    let left: Vec<String> = std::fs::read_dir(d.join("run"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.contains(".tmp-") || (n.starts_with("optimizer") && !n.contains("600")))
        .collect();
    assert!(left.is_empty(), "stale files left behind: {left:?}");
}

#[test]
fn sigint_and_sigterm_save_a_checkpoint_and_say_how_to_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let r = recipe();
    r.complete(d, "ref");
    let want = r.fingerprint(&d.join("ref"));
    for (sig, code) in [("INT", 130), ("TERM", 143)] {
        let before = step_of(d, "run");
        let c = r.start(d, "run", None);
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
    r.complete(d, "run");
    assert!(want == r.fingerprint(&d.join("run")), "the resumed run differs from the reference");
}

#[test]
fn a_second_signal_stops_at_once_and_the_checkpoint_before_it_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let r = recipe();
    let c = r.start(d, "run", None);
    let t0 = Instant::now();
    while step_of(d, "run") == 0 && t0.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(2));
    }
    // Two signals back to back: the second ends the process whatever it is doing.
    let pid = c.id().to_string();
    let ok = Command::new("sh").args(["-c", &format!("kill -INT {pid}; kill -INT {pid}")]).status();
    assert!(ok.unwrap().success());
    let (got, _) = finish(c);
    assert!(matches!(got, Some(130) | Some(0)), "{got:?}");
    r.complete(d, "run");
    r.complete(d, "ref");
    assert!(r.fingerprint(&d.join("ref")) == r.fingerprint(&d.join("run")));
}
