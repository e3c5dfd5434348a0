//! Two runs of one model that must agree: the same recipe trained with deepgen's CPU kernels and
//! with the portable candle ops a GPU runs (tests/portable.rs), or on the CPU and on a CUDA device
//! (tests/gpu.rs, with the `cuda` feature on a GPU machine). Each run is the registry walk's
//! (tests/registry.rs): the full `deepgen train` workflow, a few steps on the embedded digits.
#![allow(dead_code)]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use deepgen::run::{self, Quiet, TrainOptions};

/// The registry walk's options for `name`, writing to `out`: the data its family takes, one
/// step of batch 16.
pub fn walk_options(name: &str, out: &Path) -> TrainOptions {
    let mut o = TrainOptions::for_model(name);
    // The translation models take two domains, or attribute labels.
    o.run.data = Some(
        match name {
            "stargan" => "digits+attributes",
            "text-matcher" | "text-gan" => "digits+captions",
            _ => "digits",
        }
        .into(),
    );
    // The text GAN's encoder is the text matcher's, trained earlier in the walk (the registry
    // lists it first).
    if name == "text-gan" {
        o.model_flags.text_encoder =
            out.parent().map(|p| p.join("text-matcher").display().to_string());
    }
    if name == "cyclegan" {
        o.run.data_b = Some("digits+invert".into());
    }
    o.run.steps = Some(1);
    o.run.batch_size = Some(16);
    o.run.out = Some(out.to_path_buf());
    o
}

/// What a run did: its metrics lines (every step's loss, loss parts and gradient norm) and its
/// final trained parameters, read back from the run directory.
pub struct Trained {
    pub dir: PathBuf,
    pub metrics: Vec<serde_json::Map<String, serde_json::Value>>,
    pub params: Vec<(String, Vec<f32>)>,
    /// The largest learning rate of the run (its generator's or critic's).
    pub lr: f64,
}

pub fn train(
    name: &str,
    root: &Path,
    steps: usize,
    device: Option<&str>,
    portable: bool,
) -> Trained {
    let out = root.join(name);
    let mut o = walk_options(name, &out);
    o.run.steps = Some(steps as i64);
    o.run.device = device.map(Into::into);
    let go = || run::train(&o, &mut Quiet);
    let res = if portable { deepgen::nn::with_portable_ops(go) } else { go() };
    res.unwrap_or_else(|e| panic!("{name} on {device:?} (portable ops {portable}): {e}"));
    read(&out)
}

/// A run directory's metrics and parameters (loaded on the CPU, wherever they were trained).
pub fn read(out: &Path) -> Trained {
    let text = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let metrics: Vec<serde_json::Map<String, serde_json::Value>> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .map(|mut m: serde_json::Map<String, serde_json::Value>| {
            m.remove("elapsed_s");
            m
        })
        // A checkpoint's clock line says nothing once its time is gone.
        .filter(|m| m.len() > 1)
        .collect();
    let lr = metrics
        .iter()
        .flat_map(|m| m.iter())
        .filter(|(k, _)| k.ends_with("lr"))
        .filter_map(|(_, v)| v.as_f64())
        .fold(0.0, f64::max);
    let (_, _, model) = run::open(out).unwrap();
    // The trained weights: an adversarial game's players, every parameter otherwise (not the
    // state kept beside them, such as CycleGAN's pool of generated images).
    let trained: Option<Vec<String>> = model.as_adversarial().map(|g| {
        let mut n = g.g_names();
        n.extend(g.d_weights().into_iter().map(|(k, _)| k));
        n
    });
    let params = model
        .params
        .vars()
        .filter(|(k, _)| trained.as_ref().is_none_or(|t| t.contains(k)))
        .map(|(k, v)| (k.clone(), v.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap()))
        .collect();
    Trained { dir: out.to_path_buf(), metrics, params, lr }
}

/// The tolerances two runs are held to.
#[derive(Clone, Copy, Debug)]
pub struct Tolerance {
    /// Every metric (loss, loss part, gradient norm, validation score) of the first step, which
    /// both runs take from the same parameters: |a - b| <= metric (1 + max(|a|, |b|)).
    pub metric: f64,
    /// The losses and loss parts of later steps. Their parameters already differ by Adam's
    /// rounding-level flips (below), which an ill-conditioned network amplifies: CycleGAN's
    /// channels of near-zero variance under instance norm scale gradients by up to
    /// 1/sqrt(eps), and its gradient norm at step 2 differs by a quarter between the two CPU
    /// paths, so later gradient norms are not compared.
    pub later: f64,
    /// Parameters, in units of the learning rate per step: the mean |a - b| over all of a
    /// model's parameters is at most `param_mean` lr steps, and none more than `param_max`. Adam
    /// moves a weight whose gradient is at rounding level by up to about lr in either direction
    /// (1.5 lr with beta1 0.5 at step 2), so single weights may differ by up to 3 lr per step
    /// even when the math agrees; a bias right before a normalisation has a gradient of exactly
    /// zero in exact arithmetic, so its every step is such a coin toss.
    pub param_mean: f64,
    pub param_max: f64,
}

/// `ill` for the families whose generators are ResNets under instance norm (cyclegan, stargan),
/// `tol` for every other model.
pub fn tolerance(name: &str, tol: Tolerance, ill: Tolerance) -> Tolerance {
    if ["cyclegan", "stargan"].contains(&name) {
        ill
    } else {
        tol
    }
}

/// Checks that `a` and `b` trained alike (see [`Tolerance`]); `what` names them in the message.
pub fn assert_agree(name: &str, what: &str, a: &Trained, b: &Trained, tol: Tolerance) {
    // Every step record ("loss") must be in both; other lines (validation scores) are compared
    // where both runs have them (a resumed run also evaluated where its first part stopped).
    let steps_of = |t: &Trained| -> Vec<u64> {
        t.metrics
            .iter()
            .filter(|m| m.contains_key("loss"))
            .map(|m| m["step"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(steps_of(a), steps_of(b), "{name} ({what}): the runs recorded other steps");
    for ma in &a.metrics {
        let kind = |m: &serde_json::Map<String, serde_json::Value>| {
            let mut k: Vec<String> = m.keys().cloned().collect();
            k.sort();
            (m["step"].as_u64(), m.contains_key("loss"), k)
        };
        let Some(mb) = b.metrics.iter().find(|mb| {
            let (ka, kb) = (kind(ma), kind(mb));
            ka.0 == kb.0 && ka.1 == kb.1 && (ka.1 || ka.2 == kb.2)
        }) else {
            continue;
        };
        assert_eq!(kind(ma).2, kind(mb).2, "{name} ({what}): metrics keys differ");
        let first = ma["step"].as_u64() == Some(1);
        for (k, va) in ma {
            let (Some(x), Some(y)) = (va.as_f64(), mb[k].as_f64()) else {
                assert_eq!(va, &mb[k], "{name} ({what}): {k}");
                continue;
            };
            if !first && k == "grad_norm" {
                continue;
            }
            let bound = if first { tol.metric } else { tol.later } * (1.0 + x.abs().max(y.abs()));
            assert!(
                (x - y).abs() <= bound,
                "{name} ({what}): {k} at step {}: {x} vs {y} (tolerance {bound:.3e})",
                ma["step"]
            );
        }
    }
    let steps = a.metrics.iter().filter(|m| m.contains_key("loss")).count().max(1) as f64;
    let unit = a.lr.max(b.lr) * steps;
    let (mut sum, mut n, mut worst) = (0.0, 0usize, (0.0f64, String::new()));
    for ((ka, va), (kb, vb)) in a.params.iter().zip(&b.params) {
        assert_eq!(ka, kb, "{name} ({what}): parameters differ");
        assert_eq!(va.len(), vb.len(), "{name} ({what}): {ka} has another size");
        for (x, y) in va.iter().zip(vb) {
            let d = (x - y).abs() as f64;
            assert!(d.is_finite(), "{name} ({what}): {ka} is not finite");
            sum += d;
            n += 1;
            if d > worst.0 {
                worst = (d, ka.clone());
            }
        }
    }
    let mean = sum / n.max(1) as f64;
    assert!(
        mean <= tol.param_mean * unit,
        "{name} ({what}): parameters differ by {mean:.3e} on average (lr x steps = {unit:.1e})"
    );
    assert!(
        worst.0 <= tol.param_max * unit,
        "{name} ({what}): {} differs by {:.3e} (lr x steps = {unit:.1e})",
        worst.1,
        worst.0
    );
}

/// Resumes the run in `dir` up to `steps` steps on `device` (portable ops when `portable`).
pub fn resume(dir: &Path, steps: usize, device: Option<&str>, portable: bool) -> Trained {
    let mut o = TrainOptions::default();
    o.run.resume = Some(dir.to_path_buf());
    o.run.steps = Some(steps as i64);
    o.run.device = device.map(Into::into);
    let go = || run::train(&o, &mut Quiet);
    let res = if portable { deepgen::nn::with_portable_ops(go) } else { go() };
    res.unwrap_or_else(|e| panic!("resuming {} on {device:?}: {e}", dir.display()));
    read(dir)
}

/// Runs `check` for each name, then fails listing every name whose check panicked.
pub fn each(names: &[&str], mut check: impl FnMut(&str)) {
    let mut failed = vec![];
    for &name in names {
        let t0 = std::time::Instant::now();
        match catch_unwind(AssertUnwindSafe(|| check(name))) {
            Ok(()) => eprintln!("ok {name} ({:.1} s)", t0.elapsed().as_secs_f64()),
            Err(e) => {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                eprintln!("FAILED {name}: {msg}");
                failed.push(format!("{name}: {msg}"));
            }
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} failed:\n{}",
        failed.len(),
        names.len(),
        failed.join("\n")
    );
}

/// Every inference call the commands make (`deepgen embed`, `eval`, `detect`, `interpolate`,
/// `complete`, `translate`, `assemble`), on a run of `name` trained one step on the CPU and
/// loaded on `dev` (with the portable ops when `portable`): the features and codes agree with
/// the CPU's to `tol` relative, and so do anomaly detection's scores (`scores.csv`, every
/// normal and anomalous row); the whole evaluation report (every section that applies, a
/// one-step classifier run as its judge, also on `dev`) completes.
/// `classifier` is that judge's run directory (trained once by the caller).
pub fn inference_agrees(
    name: &str,
    root: &Path,
    classifier: &Path,
    dev: &candle_core::Device,
    portable: bool,
    tol: f32,
) {
    use deepgen::run::{infer, report};
    let go = |f: &mut dyn FnMut()| {
        if portable {
            deepgen::nn::with_portable_ops(f)
        } else {
            f()
        }
    };
    if name == "text-gan" && !root.join("text-matcher").is_dir() {
        train("text-matcher", root, 1, None, false); // its caption encoder (walk_options)
    }
    let dir = train(name, root, 1, None, false).dir;
    let (rd, cfg, cpu) = run::open(&dir).unwrap();
    let (_, _, model) = run::open_on(&dir, dev).unwrap();
    assert!(model.device().same_device(dev), "{name}: the model is not on {dev:?}");
    let spec = report::held_out_spec(&cfg).unwrap_or_else(|| cfg.data.train.clone());
    let (data, _) = run::load_transformed(&spec, &cfg, false).unwrap();
    let close = |what: &str, a: &[f32], b: &[f32]| {
        assert_eq!(a.len(), b.len(), "{name}: {what}: lengths");
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            let ok = (x - y).abs() <= tol * (1.0 + x.abs().max(y.abs()));
            assert!(ok, "{name}: {what} [{i}]: {x} on the cpu, {y} on {dev:?}");
        }
    };
    let rows: Vec<usize> = (0..data.n.min(64)).collect();
    if cpu.has_features() {
        let (a, _) = deepgen::eval::features::embed(&cpu, &data).unwrap();
        let mut b = vec![];
        go(&mut || b = deepgen::eval::features::embed(&model, &data).unwrap().0);
        close("features", &a, &b);
    }
    if matches!(infer::capabilities(&cpu).encode, "latent") {
        let code = |m: &deepgen::models::Model| {
            let x = data.batch(&rows, &m.device()).unwrap();
            infer::encode(m, &x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap()
        };
        let a = code(&cpu);
        let mut b = vec![];
        go(&mut || b = code(&model));
        close("codes", &a, &b);
    }
    if let Some(t) = cpu.as_translator() {
        let x = data.batch(&rows, &candle_core::Device::Cpu).unwrap();
        let changes = match t.domains() {
            deepgen::models::Domains::Pair => None,
            deepgen::models::Domains::Attributes(cols) => {
                Some(vec![deepgen::data::attributes::Change { column: 0, value: 0 }])
                    .filter(|_| !cols.is_empty())
            }
        };
        let through = |m: &deepgen::models::Model, x: &candle_core::Tensor| {
            let t = m.as_translator().unwrap();
            let x = x.to_device(&m.device()).unwrap();
            let (y, _) =
                run::translate::translate_batch(m, t, &data, &x, &rows, false, changes.as_deref())
                    .unwrap();
            y.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        };
        let a = through(&cpu, &x);
        let mut b = vec![];
        go(&mut || b = through(&model, &x));
        close("translations", &a, &b);
    }
    // The judge reads images of the digits' size; toy runs go without one.
    let (_, _, judge) = run::open_on(classifier, dev).unwrap();
    let judge = (judge.config.dim() == cpu.config.dim()).then(|| (classifier.to_path_buf(), judge));
    let out = root.join(format!("{name}-report"));
    let opts = report::ReportOptions {
        samples: 200,
        no_classifier: judge.is_none().then(|| "a toy run".to_string()),
        classifier: judge,
        seed: cfg.seed,
        min_share: deepgen::eval::modes::DEFAULT_MIN_SHARE,
        out: out.clone(),
        only: None,
        classifiers: vec![],
        matcher: None,
    };
    go(&mut || {
        let rep = report::write_report(&rd, &cfg, &model, &opts)
            .unwrap_or_else(|e| panic!("{name}: the report on {dev:?}: {e}"));
        assert!(rep.path.is_file(), "{name}: no report.md");
    });
    if !cpu.info().scores.is_empty() {
        let o = deepgen::run::detect::DetectOptions {
            run: dir.clone(),
            data: Some(spec.clone()),
            anomalies: Some(format!("{spec}+invert")),
            score: None,
            threshold_from: None,
            val_fraction: 0.5,
            target_fpr: 0.05,
            out: Some(root.join(format!("{name}-detect"))),
            seed: None,
            device: Some(device_name(dev)),
        };
        go(&mut || {
            deepgen::run::detect::detect(&o)
                .unwrap_or_else(|e| panic!("{name}: detect on {dev:?}: {e}"));
        });
        // The same detection with the model on the CPU's kernels: every score alike.
        let on_cpu = root.join(format!("{name}-detect-cpu"));
        let o = deepgen::run::detect::DetectOptions {
            out: Some(on_cpu.clone()),
            device: Some("cpu".into()),
            ..o
        };
        deepgen::run::detect::detect(&o).unwrap_or_else(|e| panic!("{name}: detect on cpu: {e}"));
        let scores = |d: &Path| -> Vec<f32> {
            let text = std::fs::read_to_string(d.join("scores.csv")).unwrap();
            text.lines().skip(1).map(|l| l.split(',').nth(2).unwrap().parse().unwrap()).collect()
        };
        let theirs = scores(&root.join(format!("{name}-detect")));
        close("detect's scores", &scores(&on_cpu), &theirs);
        assert!(!theirs.is_empty(), "{name}: detect scored nothing");
    }
}

/// The `--device` name of `dev`.
pub fn device_name(dev: &candle_core::Device) -> String {
    match dev.location() {
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        _ => "cpu".into(),
    }
}
