//! Times deepgen's training steps and measures test NLL, the same protocol
//! as `bench/torch_ref.py`: statically binarized embedded MNIST (seed given),
//! Adam at lr 1e-3, `--warmup` untimed steps, then the remaining steps timed;
//! then the test NLL on all 2,000 test digits (exact for NADE, the k=100
//! importance-weighted bound for the VAE). With `--export DIR` it first
//! writes the binarized train and test sets as NPY for the PyTorch script.
//!
//! Usage: deepgen-bench --model NAME [--steps N] [--batch N] [--warmup N] [--seed N] [--lr X]
//!        [--hidden H] [--channels C] [--layers L] [--export DIR] [--device cpu|cuda]

use std::time::Instant;

use deepgen::data::Binarize;
use deepgen::models::{Model, ModelConfig, Sampler};
use deepgen::run;
use deepgen::run::{DataConfig, RunConfig};
use deepgen::train::{LikelihoodTrainer, TrainConfig};
use deepgen_bench::{arg, Timer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    deepgen::enable_second_order();
    deepgen::tune_allocator();
    deepgen::tune_thread_pools();
    let args: Vec<String> = std::env::args().collect();
    let model_name = arg(&args, "--model", "vae");
    let steps: usize = arg(&args, "--steps", "1000").parse()?;
    let batch: usize = arg(&args, "--batch", "128").parse()?;
    let warmup: usize = arg(&args, "--warmup", "20").parse()?;
    let seed: u64 = arg(&args, "--seed", "0").parse()?;
    let dev = run::device(Some(&arg(&args, "--device", "cpu")))?;
    let image = ["pixelcnn", "gated-pixelcnn", "row-lstm", "diagonal-bilstm"]
        .contains(&model_name.as_str());
    let shape: &[usize] = if image { &[1, 28, 28] } else { &[784] };
    let model = match ModelConfig::preset(&model_name, shape, true)? {
        ModelConfig::Nade(mut c) => {
            c.hidden = arg(&args, "--hidden", "500").parse()?;
            ModelConfig::Nade(c)
        }
        // Flags override the presets (see `ModelConfig::preset`).
        ModelConfig::PixelCnn(mut c) => {
            c.channels = arg(&args, "--channels", &c.channels.to_string()).parse()?;
            c.layers = arg(&args, "--layers", &c.layers.to_string()).parse()?;
            ModelConfig::PixelCnn(c)
        }
        ModelConfig::PixelRnn(mut c) => {
            c.channels = arg(&args, "--channels", &c.channels.to_string()).parse()?;
            c.layers = arg(&args, "--layers", &c.layers.to_string()).parse()?;
            ModelConfig::PixelRnn(c)
        }
        c => c,
    };
    let lr: f64 = arg(&args, "--lr", "0.001").parse()?;
    let cfg = RunConfig {
        seed,
        data: DataConfig {
            train: "mnist".into(),
            train_b: None,
            val_b: None,
            val: Some("mnist:test".into()),
            binarize: Binarize::Static,
            shape: vec![1, 28, 28],
            mean: vec![],
            std: vec![],
        },
        train: TrainConfig {
            steps,
            batch_size: batch,
            lr,
            eval_every: steps,
            eval_examples: 1,
            ..TrainConfig::default()
        },
        model,
    };
    let (train, _) = run::load_transformed("mnist", &cfg, true)?;
    let (test, _) = run::load_transformed("mnist:test", &cfg, false)?;
    if args.iter().any(|a| a == "--export") {
        let dir = std::path::PathBuf::from(arg(&args, "--export", "."));
        std::fs::create_dir_all(&dir)?;
        for (name, d) in [("train", &train), ("test", &test)] {
            std::fs::write(
                dir.join(format!("{name}.npy")),
                deepgen::data::npy::encode_f32(&[d.n, d.dim()], &d.x),
            )?;
        }
    }
    let m = Model::new(&cfg.model, seed, &dev)?;
    let mut t = LikelihoodTrainer::new(&m, cfg.train.clone(), seed, Binarize::Static)?;
    let mut timer = Timer::new(warmup);
    t.fit(&m, &train, None, &mut timer)?;
    let sps = timer.steps_per_s(steps);
    let mut r = deepgen::rng::derived(seed, "test-nll", 0);
    let t0 = Instant::now();
    let rep = run::score(&m, &test, 0.0, 250, &mut r)?;
    let eval_s = t0.elapsed().as_secs_f64();
    // Sampling speed: the model's sampler, and (for autoregressive models) the
    // naive sampler that reruns the whole network once per pixel.
    let n_samples: usize = arg(&args, "--sample", "0").parse()?;
    let mut sampling = String::new();
    if n_samples > 0 {
        let mut r = deepgen::rng::rng(seed);
        let t0 = Instant::now();
        let _ = m.sample(n_samples, &mut r)?;
        let fast = n_samples as f64 / t0.elapsed().as_secs_f64();
        sampling = format!(", \"samples_per_s\": {fast:.2}");
        if args.iter().any(|a| a == "--naive") && m.conditionals(&test.batch(&[0], &dev)?).is_some()
        {
            let t0 = Instant::now();
            naive_sample(&m, n_samples, &mut r, &dev)?;
            sampling += &format!(
                ", \"naive_samples_per_s\": {:.3}",
                n_samples as f64 / t0.elapsed().as_secs_f64()
            );
        }
    }
    println!(
        "{{\"impl\": \"deepgen\", \"device\": \"{}\", \"model\": \"{model_name}\", \"steps\": {steps}, \"batch\": \
            {batch}, \"lr\": {lr}, \"steps_per_s\": {sps:.3}, \"final_train_loss\": {:.3}, \
            \"test_nll_nats\": {:.3}, \"eval_s\": {eval_s:.1}{sampling}}}",
        arg(&args, "--device", "cpu"),
        timer.last.as_ref().map(|r| r.loss).unwrap_or(f64::NAN),
        rep.nats,
    );
    Ok(())
}

/// Ancestral sampling the slow way: the full forward pass once per pixel.
fn naive_sample(
    m: &Model,
    n: usize,
    r: &mut deepgen::rng::Rng,
    dev: &deepgen::models::Device,
) -> Result<(), Box<dyn std::error::Error>> {
    let d = m.config.dim();
    let mut x = vec![0f32; n * d];
    for i in 0..d {
        let t = deepgen::models::Tensor::from_vec(x.clone(), (n, d), dev)?;
        let p = m.conditionals(&t).ok_or("not autoregressive")??;
        let p = p.narrow(1, i, 1)?.flatten_all()?.to_vec1::<f32>()?;
        for s in 0..n {
            x[s * d + i] = deepgen::dist::PixelOutput::Bernoulli.draw(&p[s..s + 1], None, r).0;
        }
    }
    Ok(())
}
