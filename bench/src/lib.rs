//! What the benchmark binaries share: flag parsing and a timing hook.

use std::time::Instant;

use deepgen::train::{Hooks, StepRecord};

/// The value after `name` in `args`, or `default`.
pub fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| default.to_string())
}

/// Starts the clock after `warmup` steps and keeps the last step's record.
pub struct Timer {
    pub warmup: usize,
    pub start: Option<Instant>,
    pub last: Option<StepRecord>,
}

impl Timer {
    pub fn new(warmup: usize) -> Self {
        Self { warmup, start: None, last: None }
    }

    /// Timed steps per second for a run of `steps`.
    pub fn steps_per_s(&self, steps: usize) -> f64 {
        self.start
            .map(|s| (steps - self.warmup) as f64 / s.elapsed().as_secs_f64())
            .unwrap_or(f64::NAN)
    }
}

impl Hooks for Timer {
    fn on_step(&mut self, r: &StepRecord) -> deepgen::Result<()> {
        if r.step == self.warmup {
            self.start = Some(Instant::now());
        }
        self.last = Some(r.clone());
        Ok(())
    }
}
