//! The long crash run: for each trainer, 20 independent trials of `deepgen train` killed with
//! SIGKILL at a seeded random moment of its life, resumed to the end and compared bit for bit
//! (weights, optimizer state, metrics) with an uninterrupted run. Prints a Markdown table for
//! `bench/RESULTS.md`; exits non-zero unless every trial resumed bit-identical.
//!
//! `cargo build --release && cargo run --release -p deepgen-bench --bin crash -- [TRIALS] [BIN]`
//! (default 20 trials, `target/release/deepgen`).

#[path = "../../../crates/deepgen-cli/tests/crash/trials.rs"]
mod trials;

use std::time::Duration;

use rand::SeedableRng;

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let fail = |msg: String| {
        eprintln!("crash: {msg}");
        std::process::ExitCode::from(2)
    };
    let n: usize = match args.get(1).map(|s| s.parse::<usize>()) {
        None => 20,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            return fail(format!("TRIALS must be a positive whole number, got {:?}", args[1]))
        }
    };
    let bin = args.get(2).cloned().unwrap_or_else(|| "target/release/deepgen".into());
    let bin = match std::fs::canonicalize(&bin) {
        Ok(b) => b,
        Err(e) => return fail(format!("{bin}: {e} (the deepgen binary: build it first)")),
    };
    let runs = [
        ("fvsbn, digits, checkpoint every step", "train fvsbn --data digits --eval-every 1", 600),
        ("nade, digits, checkpoint every 5 steps", "train nade --data digits --eval-every 5", 300),
        ("vae, digits, checkpoint every 10 steps", "train vae --data digits --eval-every 10", 400),
        (
            "gan, toy:ring8, checkpoint every 5 steps",
            "train gan --data toy:ring8 --eval-every 5",
            300,
        ),
    ];
    println!(
        "| run | trials | resumed bit-identical | unresumable | killed during a checkpoint \
        write | killed before the first checkpoint | run length |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut all_ok = true;
    for (k, (what, args, steps)) in runs.iter().enumerate() {
        let tmp = match tempfile::tempdir() {
            Ok(t) => t,
            Err(e) => return fail(format!("a temporary directory: {e}")),
        };
        let d = tmp.path();
        let mut args: Vec<String> = args.split(' ').map(String::from).collect();
        args.extend(["--seed".into(), "3".into()]);
        let recipe = trials::Recipe { bin: bin.clone(), args, steps: *steps };
        let t0 = std::time::Instant::now();
        recipe.complete(d, "ref");
        let length = t0.elapsed();
        let want = recipe.fingerprint(&d.join("ref"));
        let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(2026 + k as u64);
        // Kills fall anywhere from start-up to the end of training.
        let max_wait = length + Duration::from_millis(50);
        let t = trials::trials(&recipe, d, &want, n, max_wait, &mut r);
        println!(
            "| {what} | {} | {} | {} | {} | {} | {:.2} s |",
            t.trials,
            t.identical,
            t.unresumable,
            t.during_checkpoint_write,
            t.before_first_checkpoint,
            length.as_secs_f64()
        );
        all_ok &= t.identical == t.trials && t.unresumable == 0;
    }
    if all_ok {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}
