//! The long fuzz run of every parser of user input (the short one is in the test suite:
//! `crates/deepgen/tests/fuzz.rs`, the same harness). Prints one Markdown table row per
//! parser for `bench/RESULTS.md`; exits non-zero on any panic, multi-line error or input
//! whose memory passed the bound.
//!
//! `cargo run --release -p deepgen-bench --bin fuzz -- [INPUTS_PER_PARSER] [SEED] [TARGET]`
//! `[TARGET]` (default 100000 inputs, seed 2026, every parser; TARGET: a parser name's start).

#[path = "../../../crates/deepgen/tests/fuzz/harness.rs"]
mod harness;

#[global_allocator]
static ALLOC: harness::Counting = harness::Counting;

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let seed: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(2026);
    println!(
        "| parser | inputs | valid | errors | distinct errors | panics | multi-line errors | over \
        the bound | peak held | seconds |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let only = args.get(3);
    let mut bad = 0;
    for t in harness::targets() {
        if only.is_some_and(|o| !t.name.starts_with(o.as_str())) {
            continue;
        }
        let r = harness::fuzz(&t, n, seed);
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {:.1} MB | {:.1} |",
            r.name,
            r.inputs,
            r.valid,
            r.errors,
            r.messages.len(),
            r.panics,
            r.multiline,
            r.over_bound,
            r.peak_bytes as f64 / (1 << 20) as f64,
            r.seconds
        );
        for p in &r.panic_inputs {
            eprintln!("{}: panic on input {p}", r.name);
        }
        for m in &r.multiline_examples {
            eprintln!("{}: multi-line error {m:?}", r.name);
        }
        bad += r.panics + r.multiline + r.over_bound;
    }
    println!(
        "\nbound {} MB; largest single allocation request {:.1} MB",
        harness::BOUND >> 20,
        harness::LARGEST.load(std::sync::atomic::Ordering::Relaxed) as f64 / (1 << 20) as f64
    );
    if bad > 0 {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    }
}
