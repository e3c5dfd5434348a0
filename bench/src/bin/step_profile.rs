//! Splits one training step of any model on MNIST-shaped data (batch 128
//! unless given) into forward, backward and optimizer time, on random
//! binary images: `cargo run --release -p deepgen-bench --bin step_profile -- MODEL [BATCH]
//! [STEPS] [cpu|portable|cuda|cuda:N]` (`portable`: the candle-op paths a GPU takes, on the CPU;
//! `cuda`: on a GPU, each phase timed to a device synchronisation, in a cuda build)
//! (e.g. `vae 128 100`, `pixelcnn 128 5`). Also prints the step's matrix-product
//! FLOPs (`deepgen::nn::gemm_flops`, the products deepgen's kernels run) and
//! their rate over the whole step, for bench/RESULTS.md's fraction of the
//! machine's GEMM peak (`gemm_peak`).
use deepgen::models::{Device, Model, ModelConfig, Objective};
use deepgen::train::{Adam, AdamConfig};
use std::time::Instant;
fn main() {
    deepgen::enable_second_order();
    deepgen::tune_allocator();
    deepgen::tune_thread_pools();
    // Everything on the command line can be wrong: one line and exit 2, never a panic.
    let pool = rayon::ThreadPoolBuilder::new().build();
    let out = pool.map_err(|e| e.to_string()).and_then(|p| p.install(run));
    if let Err(e) = out {
        eprintln!("step_profile: {e}");
        std::process::exit(2)
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let name = args.get(1).cloned().unwrap_or_else(|| "pixelcnn".into());
    let count = |i: usize, what: &str, default: usize| -> Result<usize, String> {
        match args.get(i) {
            None => Ok(default),
            Some(s) => match s.parse::<usize>() {
                Ok(v) if v > 0 => Ok(v),
                _ => Err(format!("{what} must be a positive whole number, got {s:?}")),
            },
        }
    };
    let (b, n) = (count(2, "BATCH", 128)?, count(3, "STEPS", 5)?);
    let (portable, dev) = match args.get(4).map(String::as_str) {
        None | Some("cpu") => (false, Device::Cpu),
        Some("portable") => (true, Device::Cpu),
        Some(d) if d.starts_with("cuda") => {
            (false, deepgen::run::device(Some(d)).map_err(|e| e.to_string())?)
        }
        Some(other) => {
            return Err(format!(
                "the fourth argument may only be `cpu`, `portable` or `cuda[:N]`, not {other:?}"
            ))
        }
    };
    if portable {
        deepgen::nn::with_portable_ops(|| profile(&name, b, n, &dev))
    } else {
        profile(&name, b, n, &dev)
    }
}

fn profile(name: &str, b: usize, n: usize, dev: &Device) -> Result<(), String> {
    let name = name.to_string();
    let image =
        ["pixelcnn", "gated-pixelcnn", "row-lstm", "diagonal-bilstm"].contains(&name.as_str());
    let shape: &[usize] = if image { &[1, 28, 28] } else { &[784] };
    let e = |e: deepgen::Error| format!("{name}: {e}");
    let cfg = ModelConfig::preset(&name, shape, true).map_err(e)?;
    let m = Model::new(&cfg, 0, dev).map_err(e)?;
    let mut opt = Adam::new(&m.params, AdamConfig::default()).map_err(e)?;
    let mut r = deepgen::rng::rng(0);
    let v = deepgen::rng::bernoulli(&mut r, &vec![0.2; b * 784]);
    let c = |e: candle_core::Error| format!("{name}: {e}");
    let x = deepgen::models::Tensor::from_vec(v, (b, 784), dev).map_err(c)?;
    // A GPU queues work: each phase ends at a synchronisation, or its time would show up in the
    // next one's.
    let sync = || dev.synchronize().map_err(c);
    let (mut tf, mut tb, mut to) = (0.0, 0.0, 0.0);
    let (mut flops, mut fwd_flops) = (0u64, 0u64);
    for i in 0..n + 1 {
        let f0 = deepgen::nn::gemm_flops();
        let t0 = Instant::now();
        let l = m.loss(&x, &mut r).map_err(e)?;
        let _ = l.total.to_scalar::<f32>().map_err(c)?;
        let t1 = Instant::now();
        let f1 = deepgen::nn::gemm_flops();
        let g = l.total.backward().map_err(c)?;
        sync()?;
        let t2 = Instant::now();
        opt.step(&g, 1e-3, 1.0).map_err(e)?;
        sync()?;
        let t3 = Instant::now();
        if i >= 1 {
            flops += deepgen::nn::gemm_flops() - f0;
            fwd_flops += f1 - f0;
            tf += (t1 - t0).as_secs_f64();
            tb += (t2 - t1).as_secs_f64();
            to += (t3 - t2).as_secs_f64();
        }
    }
    let step = (tf + tb + to) / n as f64;
    let gflop = flops as f64 / n as f64 / 1e9;
    let fwd_gflop = fwd_flops as f64 / n as f64 / 1e9;
    println!(
        "{name} batch {b}: forward {:.2} ms, backward {:.2} ms, adam {:.2} ms; \
         matrix products {gflop:.3} GFLOP per step ({fwd_gflop:.3} forward), \
         {:.1} GFLOP/s over the step",
        tf * 1e3 / n as f64,
        tb * 1e3 / n as f64,
        to * 1e3 / n as f64,
        gflop / step
    );
    Ok(())
}
