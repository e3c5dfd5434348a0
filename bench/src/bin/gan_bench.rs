//! Times the adversarial trainer on the embedded digits with a family's own recipe (its
//! optimiser, n_critic, gradient penalty), the protocol of the `bench/torch_*.py` scripts:
//! `--warmup` untimed iterations, then the rest timed. One iteration = the recipe's critic
//! updates (each on its own batch), then one generator update.
//!
//! - `dcgan` (default): MNIST grey levels in [0, 1], `bench/torch_dcgan.py`.
//! - `cyclegan`: the second domain from `--data-b SPEC` (default `mnist+invert`),
//!   `bench/torch_cyclegan.py` (batch 8 by `--batch 8`).
//! - `stargan`: `--data` defaults to `mnist+attributes` (tinted, thickened, inverted digits and
//!   their attribute vectors), `bench/torch_stargan.py` (batch 16, 5 critic steps with a
//!   gradient penalty per generator step).
//! - `progan --start-res 32`: the full-size networks at 32x32 (the data padded), no growing,
//!   `bench/torch_progan.py`.
//! - `text-gan`: `--data` defaults to `mnist+captions+seen`; the fixed text encoder is the
//!   matcher's shape with its initial (untrained) weights, as a speed run needs no trained one
//!   (`--text-encoder` is not read here); `bench/torch_textgan.py`.
//! - `puzzle-gan`: `bench/torch_puzzle.py`.
//!
//! `--export FILE.npy` writes the training images as rows for the PyTorch scripts, and beside
//! it, when the set has them: the encoded attribute vectors (`FILE-attributes.npy`), the labels
//! (`FILE-labels.npy`, as f32) and every image's captions as word ids (`FILE-captions.npy`,
//! `[N, K, L]` f32, id 0 padding a caption, an image with fewer than K captions repeating them).
//!
//! Usage: gan_bench [--model dcgan] [--data SPEC] [--steps N] [--batch N] [--warmup N] [--seed N]
//! [--samples FILE.png] [--export FILE.npy] [--data-b SPEC] [--start-res N] [--device cpu|cuda]

use deepgen::data::{attributes, Binarize};
use deepgen::models::{ModelConfig, ModelFlags, Sampler};
use deepgen::run::{DataConfig, RunConfig};
use deepgen::train::AdversarialTrainer;
use deepgen_bench::{arg, Timer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    deepgen::enable_second_order();
    deepgen::tune_allocator();
    deepgen::tune_thread_pools();
    let args: Vec<String> = std::env::args().collect();
    let name = arg(&args, "--model", "dcgan");
    let default_data = match name.as_str() {
        "stargan" => "mnist+attributes",
        "text-gan" => "mnist+captions+seen",
        _ => "mnist",
    };
    let spec = arg(&args, "--data", default_data);
    let steps: usize = arg(&args, "--steps", "120").parse()?;
    let warmup: usize = arg(&args, "--warmup", "20").parse()?;
    let seed: u64 = arg(&args, "--seed", "0").parse()?;
    let device = arg(&args, "--device", "cpu");
    let dev = deepgen::run::device(Some(&device))?;
    let data_cfg = |shape: Vec<usize>| DataConfig {
        train: spec.clone(),
        train_b: None,
        val_b: None,
        val: None,
        binarize: Binarize::None,
        shape,
        mean: vec![],
        std: vec![],
    };
    // The data first: its shape and attributes configure the model, as `deepgen train` does.
    let mut cfg = RunConfig {
        seed,
        data: data_cfg(vec![1, 28, 28]),
        train: ModelConfig::recipe(&name, &[1, 28, 28])?,
        model: ModelConfig::preset(&name, &[1, 28, 28], true)?,
    };
    let (data, _) = deepgen::run::load_transformed(&spec, &cfg, true)?;
    cfg.data = data_cfg(data.shape.clone());
    cfg.model = ModelConfig::preset(&name, &data.shape, true)?;
    // `--start-res N` (ProGAN): start growing at N; N = the padded side trains at one
    // resolution, the protocol of `bench/torch_progan.py`.
    let start_res = args.iter().any(|a| a == "--start-res");
    let mut flags = ModelFlags {
        start_res: start_res.then(|| arg(&args, "--start-res", "4").parse()).transpose()?,
        ..ModelFlags::default()
    };
    if name == "text-gan" {
        let c = deepgen::models::matcher::captions_of(&data, "text-gan")?;
        let vocab = deepgen::data::captions::Vocab::build(c, &spec)?;
        flags.text_encoder_config = Some(deepgen::models::matcher::text_config(vocab));
        flags.text_encoder = Some("untrained (gan_bench)".into());
    }
    cfg.model.configure(&flags, &data, seed)?;
    let mut train = ModelConfig::recipe(&name, &data.shape)?;
    train.steps = steps;
    train.eval_every = steps;
    train.batch_size = arg(&args, "--batch", &train.batch_size.to_string()).parse()?;
    cfg.train = train;
    if cfg.train.adversarial.is_none() {
        return Err(format!("gan_bench: {name} is not an adversarial model").into());
    }
    if args.iter().any(|a| a == "--export") {
        let path = arg(&args, "--export", "mnist-grey.npy");
        std::fs::write(&path, deepgen::data::npy::encode_f32(&[data.n, data.dim()], &data.x))?;
        export_beside(&path, &data, flags.text_encoder_config.as_ref().map(|t| &t.vocab))?;
    }
    let m = deepgen::models::Model::new(&cfg.model, seed, &dev)?;
    let mut t = AdversarialTrainer::new(&m, cfg.train.clone(), seed, Binarize::None)?;
    if name == "cyclegan" {
        let spec_b = arg(&args, "--data-b", "mnist+invert");
        t = t.with_domain_b(deepgen::run::load_transformed(&spec_b, &cfg, true)?.0);
    }
    let mut timer = Timer::new(warmup);
    let flops0 = deepgen::nn::gemm_flops();
    t.fit(&m, &data, &mut timer)?;
    // The matrix products deepgen's kernels ran per iteration (PyTorch's count of the same
    // recipe: bench/torch_flops.py).
    let gflop = (deepgen::nn::gemm_flops() - flops0) as f64 / steps.max(1) as f64 / 1e9;
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
            &data.shape,
            8,
            2,
            std::path::Path::new(&arg(&args, "--samples", "samples.png")),
        )?;
    }
    println!(
        "{{\"impl\": \"deepgen\", \"device\": \"{device}\", \"model\": \"{name}\", \"steps\": {steps}, \"batch\": \
        {}, \"params\": {}, \"steps_per_s\": {:.3}, \"gemm_gflop_per_step\": {:.3}, {}}}",
        cfg.train.batch_size,
        m.trained_count(),
        sps,
        gflop,
        last
    );
    Ok(())
}

/// The attribute vectors, labels and captions of `data` beside the exported images at `path`.
fn export_beside(
    path: &str,
    data: &deepgen::data::Dataset,
    vocab: Option<&deepgen::data::captions::Vocab>,
) -> Result<(), Box<dyn std::error::Error>> {
    use deepgen::data::npy::encode_f32;
    let stem = path.strip_suffix(".npy").unwrap_or(path);
    if let Some(a) = &data.attributes {
        let k = attributes::width(&a.columns);
        let mut enc = Vec::with_capacity(data.n * k);
        for row in a.values.chunks(a.columns.len()) {
            attributes::encode(&a.columns, row, &mut enc);
        }
        std::fs::write(format!("{stem}-attributes.npy"), encode_f32(&[data.n, k], &enc))?;
    }
    if let Some(l) = &data.labels {
        let v: Vec<f32> = l.iter().map(|&v| v as f32).collect();
        std::fs::write(format!("{stem}-labels.npy"), encode_f32(&[data.n], &v))?;
    }
    if let (Some(c), Some(vocab)) = (&data.captions, vocab) {
        let k = c.texts.iter().map(Vec::len).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(data.n * k * vocab.max_words);
        for texts in &c.texts {
            if texts.is_empty() {
                return Err("gan_bench --export: an image without captions".into());
            }
            for j in 0..k {
                ids.extend(vocab.row(&texts[j % texts.len()])?);
            }
        }
        let dims = [data.n, k, vocab.max_words];
        std::fs::write(format!("{stem}-captions.npy"), encode_f32(&dims, &ids))?;
    }
    Ok(())
}
