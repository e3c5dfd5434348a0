//! Times the adversarial trainer on MNIST (grey levels in [0, 1], the
//! embedded 8,000 training digits), the protocol of `bench/torch_dcgan.py`:
//! `--warmup` untimed iterations, then the rest timed. One iteration = one
//! critic update on a real batch and a generated one (z drawn fresh), then
//! one generator update (z drawn fresh again).
//!
//! A two-domain game (`--model cyclegan`) takes its second domain from `--data-b SPEC` (default
//! `mnist+invert`; the protocol of `bench/torch_cyclegan.py`, batch 8 by `--batch 8`).
//!
//! Usage: gan_bench [--model dcgan] [--steps N] [--batch N] [--warmup N] [--seed N] [--samples
//! FILE.png] [--export FILE.npy] [--data-b SPEC] [--device cpu|cuda]

use deepgen::data::Binarize;
use deepgen::models::{ModelConfig, Sampler};
use deepgen::run::{DataConfig, RunConfig};
use deepgen::train::{AdversarialConfig, AdversarialTrainer, TrainConfig};
use deepgen_bench::{arg, Timer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    deepgen::enable_second_order();
    deepgen::tune_allocator();
    deepgen::tune_thread_pools();
    let args: Vec<String> = std::env::args().collect();
    let name = arg(&args, "--model", "dcgan");
    let steps: usize = arg(&args, "--steps", "120").parse()?;
    let batch: usize = arg(&args, "--batch", "64").parse()?;
    let warmup: usize = arg(&args, "--warmup", "20").parse()?;
    let seed: u64 = arg(&args, "--seed", "0").parse()?;
    let device = arg(&args, "--device", "cpu");
    let dev = deepgen::run::device(Some(&device))?;
    let model = ModelConfig::preset(&name, &[1, 28, 28], true)?;
    let adv = AdversarialConfig { d_lr: 2e-4, ..AdversarialConfig::default() };
    let mut train = TrainConfig {
        steps,
        batch_size: batch,
        lr: 2e-4,
        eval_every: steps,
        adversarial: Some(adv),
        ..TrainConfig::default()
    };
    train.optimizer.beta1 = 0.5;
    let cfg = RunConfig {
        seed,
        data: DataConfig {
            train: "mnist".into(),
            train_b: None,
            val_b: None,
            val: None,
            binarize: Binarize::None,
            shape: vec![1, 28, 28],
            mean: vec![],
            std: vec![],
        },
        train,
        model,
    };
    let (data, _) = deepgen::run::load_transformed("mnist", &cfg, true)?;
    if args.iter().any(|a| a == "--export") {
        std::fs::write(
            arg(&args, "--export", "mnist-grey.npy"),
            deepgen::data::npy::encode_f32(&[data.n, data.dim()], &data.x),
        )?;
    }
    let m = deepgen::models::Model::new(&cfg.model, seed, &dev)?;
    let mut t = AdversarialTrainer::new(&m, cfg.train.clone(), seed, Binarize::None)?;
    if name == "cyclegan" {
        let spec = arg(&args, "--data-b", "mnist+invert");
        t = t.with_domain_b(deepgen::run::load_transformed(&spec, &cfg, true)?.0);
    }
    let mut timer = Timer::new(warmup);
    t.fit(&m, &data, &mut timer)?;
    let sps = timer.steps_per_s(steps);
    let last = timer
        .last
        .as_ref()
        .map(|r| {
            format!(
                "\"d_loss\": {:.4}, \"g_loss\": {:.4}",
                r.loss,
                r.parts.get("g_loss").copied().unwrap_or(f64::NAN)
            )
        })
        .unwrap_or_default();
    if args.iter().any(|a| a == "--samples") {
        let x = m.sample(64, &mut deepgen::rng::rng(seed))?;
        deepgen::viz::image_grid(
            &x.flatten_all()?.to_vec1::<f32>()?,
            64,
            &[1, 28, 28],
            8,
            2,
            std::path::Path::new(&arg(&args, "--samples", "samples.png")),
        )?;
    }
    println!(
        "{{\"impl\": \"deepgen\", \"device\": \"{device}\", \"model\": \"{name}\", \"steps\": {steps}, \"batch\": \
        {batch}, \"params\": {}, \"steps_per_s\": {:.3}, {}}}",
        m.trained_count(),
        sps,
        last
    );
    Ok(())
}
