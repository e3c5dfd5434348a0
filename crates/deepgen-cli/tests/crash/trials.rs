//! Kill trials of `deepgen train`, shared by the crash tests (`tests/crash.rs`) and the long
//! run in `bench/src/bin/crash.rs`: start a run as a child process, `kill -9` it at a seeded
//! random moment, resume it to the end, and compare its weights, optimizer state and metrics
//! with an uninterrupted run's.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand::Rng;

/// How to train one run: the binary, the arguments of a fresh run (without `--out`), its steps.
pub struct Recipe {
    pub bin: PathBuf,
    pub args: Vec<String>,
    pub steps: usize,
}

/// Weights, optimizer state and metric lines (without the wall-clock ones) of a finished run.
#[derive(PartialEq, Debug)]
pub struct Fingerprint {
    pub weights: Vec<(String, Vec<f32>)>,
    pub optimizer: Vec<(String, Vec<f32>)>,
    pub metrics: Vec<String>,
}

impl Recipe {
    /// Starts training `dir/run`: fresh if it has no checkpoint yet, else `--resume`.
    pub fn start(&self, dir: &Path, run: &str, fault: Option<&str>) -> Child {
        let steps = self.steps.to_string();
        let mut c = Command::new(&self.bin);
        if dir.join(run).join("model.safetensors").exists() {
            c.args(["train", "--resume", run, "--steps", &steps]);
        } else {
            c.args(&self.args).args(["--steps", &steps, "--out", run]);
        }
        c.current_dir(dir).stdout(Stdio::null()).stderr(Stdio::piped());
        if let Some(f) = fault {
            c.env("DEEPGEN_FAULT", f);
        }
        c.spawn().expect("start deepgen")
    }

    /// Trains `dir/run` to the end without faults; panics if it fails.
    pub fn complete(&self, dir: &Path, run: &str) {
        let (code, err) = finish(self.start(dir, run, None));
        assert_eq!(code, Some(0), "training {run} failed: {err}");
    }

    pub fn fingerprint(&self, run: &Path) -> Fingerprint {
        let read = |p: &Path| {
            let (t, _) = deepgen::run::read_safetensors(p).expect("a checkpoint");
            let mut v: Vec<(String, Vec<f32>)> = t
                .iter()
                .map(|(k, t)| (k.clone(), t.flatten_all().unwrap().to_vec1::<f32>().unwrap()))
                .collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        };
        let opt = run.join(deepgen::run::checkpoint::optimizer_file(self.steps));
        let m = std::fs::read_to_string(run.join("metrics.jsonl")).expect("metrics");
        let metrics = m.lines().filter(|l| !l.contains("elapsed_s")).map(String::from).collect();
        Fingerprint {
            weights: read(&run.join("model.safetensors")),
            optimizer: read(&opt),
            metrics,
        }
    }
}

/// Waits for a child; returns its exit code (None: killed by a signal) and its stderr.
pub fn finish(c: Child) -> (Option<i32>, String) {
    let o = c.wait_with_output().expect("wait for deepgen");
    (o.status.code(), String::from_utf8_lossy(&o.stderr).to_string())
}

/// The step of `dir/run`'s checkpoint (0 without one).
pub fn step_of(dir: &Path, run: &str) -> usize {
    let p = dir.join(run);
    deepgen::run::RunDir::open(&p).and_then(|d| d.checkpoint_info()).map(|i| i.step).unwrap_or(0)
}

/// Starts `run` and kills it with SIGKILL after `wait`, unless it finished first.
/// Returns whether it was killed, and whether a checkpoint write was under way (its temporary
/// file was left behind).
pub fn kill_after(recipe: &Recipe, dir: &Path, run: &str, wait: Duration) -> (bool, bool) {
    let mut c = recipe.start(dir, run, None);
    let t0 = Instant::now();
    while t0.elapsed() < wait && c.try_wait().expect("poll deepgen").is_none() {
        std::thread::sleep(Duration::from_millis(1));
    }
    if c.try_wait().expect("poll deepgen").is_some() {
        let (code, err) = finish(c);
        assert_eq!(code, Some(0), "{err}");
        return (false, false);
    }
    c.kill().expect("kill deepgen");
    let (code, err) = finish(c);
    if code.is_some() {
        // It finished between the last poll and the kill.
        assert_eq!(code, Some(0), "{err}");
        return (false, false);
    }
    let mid_write = std::fs::read_dir(dir.join(run)).is_ok_and(|rd| {
        rd.flatten().any(|e| {
            let n = e.file_name().to_string_lossy().to_string();
            n.contains(".tmp-") && n.contains("safetensors")
        })
    });
    (true, mid_write)
}

/// What a series of kill trials found.
#[derive(Debug, Default)]
pub struct Tally {
    pub trials: usize,
    pub identical: usize,
    pub unresumable: usize,
    pub during_checkpoint_write: usize,
    pub before_first_checkpoint: usize,
}

/// `n` independent trials: each a fresh run killed once at a random moment of its life
/// (`max_wait`), then resumed (or restarted, if it had no checkpoint yet) to the end and
/// compared with `want`.
pub fn trials(
    recipe: &Recipe,
    dir: &Path,
    want: &Fingerprint,
    n: usize,
    max_wait: Duration,
    r: &mut impl Rng,
) -> Tally {
    let mut t = Tally::default();
    while t.trials < n {
        let run = format!("trial-{}", t.trials);
        let wait = Duration::from_millis(r.gen_range(20..max_wait.as_millis() as u64));
        let (killed, mid_write) = kill_after(recipe, dir, &run, wait);
        if !killed {
            let _ = std::fs::remove_dir_all(dir.join(&run));
            continue;
        }
        t.trials += 1;
        t.during_checkpoint_write += usize::from(mid_write);
        t.before_first_checkpoint += usize::from(step_of(dir, &run) == 0);
        // Killed after its last checkpoint (drawing its pictures): nothing to resume.
        let done = step_of(dir, &run) == recipe.steps;
        let (code, err) =
            if done { (Some(0), String::new()) } else { finish(recipe.start(dir, &run, None)) };
        if code != Some(0) {
            eprintln!("{run}: resume failed: {err}");
            t.unresumable += 1;
            continue;
        }
        if recipe.fingerprint(&dir.join(&run)) == *want {
            t.identical += 1;
        } else {
            eprintln!("{run}: resumed run differs from the uninterrupted one");
        }
        let _ = std::fs::remove_dir_all(dir.join(&run));
    }
    t
}
