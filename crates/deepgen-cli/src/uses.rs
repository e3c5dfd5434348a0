//! What generative models are for: `detect` (anomaly detection), `embed`
//! and `probe` (features), `interpolate` (latent paths), `classifier`
//! (the digit classifier behind the sample-quality metrics) and `eval` (the
//! one report).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::Device;
use deepgen::eval::features;
use deepgen::eval::scores::{self, ScoreKind, Threshold};
use deepgen::models::Model;
use deepgen::rng;
use deepgen::run;
use deepgen::train::checkpoint::atomic_write;
use deepgen::train::{RunConfig, RunDir};

use crate::cmd::{open_run, positive};
use crate::{DetectArgs, EmbedArgs, EvalArgs, InterpolateArgs, ProbeArgs};

/// The run's held-out spec (its validation data, or the held-out split of its training data).
fn held_out(cfg: &RunConfig, run: &Path) -> Result<String> {
    deepgen::report::held_out_spec(cfg).ok_or_else(|| anyhow::anyhow!("{}: the run has no held-out data; pass --data", run.display()))
}

fn score_kind(a: Option<&str>, model: &Model) -> Result<ScoreKind> {
    let supported = ScoreKind::supported(model.name());
    match a {
        Some(s) => Ok(s.parse()?),
        None => supported.first().copied().ok_or_else(|| anyhow::anyhow!("the {} model gives no anomaly score", model.name())),
    }
}

/// `threshold.json` from a file, or from a run (or detect output) directory holding one.
fn read_threshold(p: &Path) -> Result<(PathBuf, Threshold)> {
    let file = if p.is_dir() {
        [p.join("threshold.json"), p.join("detect/threshold.json")]
            .into_iter()
            .find(|f| f.is_file())
            .ok_or_else(|| anyhow::anyhow!("{}: no threshold.json here (write one with deepgen detect ... --anomalies SPEC)", p.display()))?
    } else {
        p.to_path_buf()
    };
    let t = Threshold::read(&file)?;
    Ok((file, t))
}

pub fn detect(a: DetectArgs) -> Result<()> {
    let (dir, cfg, model) = open_run(&a.run)?;
    let spec = match &a.data {
        Some(s) => s.clone(),
        None => held_out(&cfg, &a.run)?,
    };
    let (normal, log_det) = run::load_transformed(&spec, &cfg, false)?;
    model.check_dim(normal.dim(), &normal.source)?;
    let seed = a.seed.unwrap_or(cfg.seed);

    // Deployment: a saved threshold applied to new data.
    if let Some(from) = &a.threshold_from {
        if a.anomalies.is_some() {
            bail!("--threshold-from scores new data with a saved threshold; it takes no --anomalies");
        }
        let (file, t) = read_threshold(from)?;
        if let Some(k) = &a.score {
            if k.parse::<ScoreKind>()? != t.score {
                bail!("--score {k} differs from the score of {} ({})", file.display(), t.score.name());
            }
        }
        let mut r = rng::derived(seed, "detect-score", 0);
        let s = scores::score_with_reference(&model, &normal, log_det, t.score, t.reference, &mut r)?;
        let out = a.out.clone().unwrap_or_else(|| dir.file("flags.csv"));
        let mut csv = format!("index,{},anomalous\n", t.score.name());
        let mut flagged = 0;
        for (i, v) in s.iter().enumerate() {
            let f = *v > t.threshold;
            flagged += usize::from(f);
            csv.push_str(&format!("{i},{v},{}\n", u8::from(f)));
        }
        atomic_write(&out, csv.as_bytes())?;
        println!(
            "{}: {flagged} of {} examples flagged as anomalous ({:.1} %) with {} > {:.4} (from {}, chosen for a {:.1} % false-positive rate on {}); wrote {}",
            normal.source,
            normal.n,
            100.0 * flagged as f64 / normal.n as f64,
            t.score.name(),
            t.threshold,
            file.display(),
            100.0 * t.target_fpr,
            t.data,
            out.display()
        );
        return Ok(());
    }

    let anom_spec = a.anomalies.as_ref().ok_or_else(|| anyhow::anyhow!("give --anomalies SPEC (to measure detection) or --threshold-from RUN_OR_FILE (to flag new data)"))?;
    let (anom, _) = run::load_transformed(anom_spec, &cfg, false)?;
    if anom.shape != normal.shape {
        bail!("{}: examples of shape {:?}, but the normal data {} has {:?}", anom.source, anom.shape, normal.source, normal.shape);
    }
    let kind = score_kind(a.score.as_deref(), &model)?;
    let t0 = std::time::Instant::now();
    let rep = scores::detect(&model, &normal, &anom, log_det, kind, a.val_fraction, a.target_fpr, seed, &a.run.display().to_string())?;
    let secs = t0.elapsed().as_secs_f64();
    let out = a.out.clone().unwrap_or_else(|| dir.file("detect"));
    std::fs::create_dir_all(&out).with_context(|| out.display().to_string())?;
    let mut csv = format!("set,index,{},anomalous\n", kind.name());
    let t = rep.threshold.threshold;
    for (set, idx, s) in [("normal-validation", &rep.val_idx, &rep.val), ("normal-test", &rep.test_idx, &rep.normal)] {
        for (i, v) in idx.iter().zip(s) {
            csv.push_str(&format!("{set},{i},{v},{}\n", u8::from(*v > t)));
        }
    }
    for (i, v) in rep.anomalous.iter().enumerate() {
        csv.push_str(&format!("anomaly,{i},{v},{}\n", u8::from(*v > t)));
    }
    atomic_write(&out.join("scores.csv"), csv.as_bytes())?;
    atomic_write(&out.join("threshold.json"), serde_json::to_string_pretty(&rep.threshold)?.as_bytes())?;
    let d = &rep.detection;
    deepgen::viz::detection_plot(&format!("{} ({}): {} vs {}", model.name(), kind.name(), normal.source, anom.source), &rep.normal, &rep.anomalous, t, &d.roc, d.auroc, &out.join("detect.png"))?;
    let json = serde_json::json!({
        "score": kind.name(), "normal": normal.source, "anomalies": anom.source,
        "n_validation": rep.val.len(), "n_normal_test": rep.normal.len(), "n_anomalies": rep.anomalous.len(),
        "auroc": d.auroc, "auprc": d.auprc, "fpr_at_95_tpr": d.fpr_at_95_tpr,
        "threshold": t, "target_fpr": a.target_fpr, "validation_fpr": rep.val_fpr, "test_fpr": rep.test_fpr, "tpr_at_threshold": rep.tpr,
    });
    atomic_write(&out.join("detect.json"), serde_json::to_string_pretty(&json)?.as_bytes())?;
    println!(
        "{} ({}): normal {} ({} validation, {} test), anomalies {} ({}): AUROC {:.4}, AUPRC {:.4}, FPR at 95% TPR {:.4}",
        model.name(),
        kind.describe(),
        normal.source,
        rep.val.len(),
        rep.normal.len(),
        anom.source,
        rep.anomalous.len(),
        d.auroc,
        d.auprc,
        d.fpr_at_95_tpr
    );
    println!(
        "threshold {:.4} (target false-positive rate {:.1} % on validation: {:.1} %): flags {:.1} % of the normal test part and {:.1} % of the anomalies; scored in {secs:.1} s",
        t,
        100.0 * a.target_fpr,
        100.0 * rep.val_fpr,
        100.0 * rep.test_fpr,
        100.0 * rep.tpr
    );
    println!("wrote {} (scores.csv, threshold.json, detect.json, detect.png)", out.display());
    Ok(())
}

pub fn embed(a: EmbedArgs) -> Result<()> {
    let (_dir, cfg, model) = open_run(&a.run)?;
    let spec = match &a.data {
        Some(s) => s.clone(),
        None => held_out(&cfg, &a.run)?,
    };
    let (data, _) = run::load_transformed(&spec, &cfg, false)?;
    let (f, dim) = features::embed(&model, &data)?;
    let ext = a.out.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    let bytes = match ext.as_str() {
        "npy" => deepgen::data::npy::encode_f32(&[data.n, dim], &f),
        "csv" => {
            let mut s = String::new();
            for (i, row) in f.chunks(dim).enumerate() {
                let mut cells: Vec<String> = row.iter().map(|v| v.to_string()).collect();
                if let Some(l) = &data.labels {
                    cells.push(l[i].to_string());
                }
                s.push_str(&cells.join(","));
                s.push('\n');
            }
            s.into_bytes()
        }
        _ => bail!("{}: unknown output type (use .npy or .csv)", a.out.display()),
    };
    atomic_write(&a.out, &bytes)?;
    if ext == "npy" {
        if let Some(l) = &data.labels {
            let mut p = a.out.clone().into_os_string();
            p.push(".labels.csv");
            let text: String = l.iter().map(|v| format!("{v}\n")).collect();
            atomic_write(Path::new(&p), text.as_bytes())?;
        }
    }
    println!(
        "wrote {} x {dim} features of {} ({}){} to {}",
        data.n,
        data.source,
        model.name(),
        if ext == "csv" && data.labels.is_some() {
            ", label in the last column"
        } else if data.labels.is_some() {
            ", labels in FILE.labels.csv"
        } else {
            ""
        },
        a.out.display()
    );
    Ok(())
}

pub fn probe(a: ProbeArgs) -> Result<()> {
    let (_dir, cfg, model) = open_run(&a.run)?;
    let train_spec = a.train.clone().unwrap_or_else(|| cfg.data.train.clone());
    let test_spec = match &a.test {
        Some(s) => s.clone(),
        None => held_out(&cfg, &a.run)?,
    };
    let (train, _) = run::load_transformed(&train_spec, &cfg, false)?;
    let (test, _) = run::load_transformed(&test_spec, &cfg, false)?;
    let (Some(ytr), Some(yte)) = (&train.labels, &test.labels) else {
        bail!("the linear probe needs labelled data ({} and {})", train.source, test.source);
    };
    let seed = a.seed.unwrap_or(cfg.seed);
    let t0 = std::time::Instant::now();
    let (ftr, dim) = features::embed(&model, &train)?;
    let (fte, _) = features::embed(&model, &test)?;
    let p = features::linear_probe((&ftr, ytr), (&fte, yte), dim, seed)?;
    let raw = features::linear_probe((&train.x, ytr), (&test.x, yte), train.dim(), seed)?;
    println!("linear probe (multinomial logistic regression, trained on {} examples of {}, tested on {} of {}):", train.n, train.source, test.n, test.source);
    println!("  {:<12} {:>5} features, L2 {:<6}: train {:.2} %, test {:.2} %", model.name(), dim, p.l2, 100.0 * p.train_accuracy, 100.0 * p.test_accuracy);
    println!("  {:<12} {:>5} features, L2 {:<6}: train {:.2} %, test {:.2} %", "raw pixels", train.dim(), raw.l2, 100.0 * raw.train_accuracy, 100.0 * raw.test_accuracy);
    println!("(L2 chosen from {:?} on a fifth of the training examples)", features::PROBE_L2);
    println!("({:.1} s)", t0.elapsed().as_secs_f64());
    Ok(())
}

pub fn interpolate(a: InterpolateArgs) -> Result<()> {
    let (dir, cfg, model) = open_run(&a.run)?;
    let pairs = positive("--pairs", a.pairs)?;
    let steps = positive("--steps", a.steps)?;
    let data = if model.as_gan().is_some() {
        None
    } else {
        let spec = match &a.data {
            Some(s) => s.clone(),
            None => held_out(&cfg, &a.run)?,
        };
        Some(run::load_transformed(&spec, &cfg, false)?.0)
    };
    let mut r = rng::derived(a.seed.unwrap_or(cfg.seed), "interpolate", 0);
    let x = run::interpolate(&model, data.as_ref(), pairs, steps, a.slerp, &mut r)?;
    let out = a.out.clone().unwrap_or_else(|| dir.file(if a.slerp { "interpolation-slerp.png" } else { "interpolation.png" }));
    if out.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("png")) {
        run::write_grid(&model, &cfg, &x, steps, &out)?;
    } else {
        run::write_examples(&model, &cfg, &x, &out, None)?;
    }
    println!("wrote {pairs} {} interpolations of {steps} steps to {}", if a.slerp { "spherical" } else { "linear" }, out.display());
    Ok(())
}

/// The classifier for the sample-quality metrics: `--classifier DIR`, else `runs/classifier` if it exists.
fn find_classifier(a: &EvalArgs, cfg: &RunConfig) -> (Option<(PathBuf, Model)>, Option<String>) {
    let path = a.classifier.clone().unwrap_or_else(|| PathBuf::from("runs/classifier"));
    if !path.join("model.safetensors").is_file() {
        let why = format!(
            "no classifier run at `{}`: train one with `deepgen classifier train --data {}` (about a minute on 2 cores), or pass --classifier DIR",
            path.display(),
            cfg.data.train.split('+').next().unwrap_or("mnist").replace("stacked-mnist", "mnist")
        );
        return (None, Some(why));
    }
    match RunDir::open(&path).and_then(|d| d.load_model(&Device::Cpu)) {
        Ok((m, _)) if m.as_classifier().is_some() => (Some((path, m)), None),
        Ok((m, _)) => (None, Some(format!("`{}` holds a {} run, not a classifier", path.display(), m.name()))),
        Err(e) => (None, Some(format!("cannot load the classifier: {e}"))),
    }
}

pub fn eval(a: EvalArgs) -> Result<()> {
    let n = positive("-n", a.n)?;
    let (dir, cfg, model) = open_run(&a.run)?;
    if a.live_generator {
        match model.as_gan() {
            Some(g) if g.g_ema.is_some() => {
                g.use_live_weights()?;
                println!("using the live generator, not its weight average");
            }
            _ => bail!("--live-generator: {} keeps no generator weight average (train a GAN with --g-ema)", a.run.display()),
        }
    }
    let min_share = a.min_share.unwrap_or(deepgen::eval::modes::DEFAULT_MIN_SHARE);
    if !(0.0..=1.0).contains(&min_share) {
        bail!("--min-share must be between 0 and 1, got {min_share}");
    }
    if let Some(c) = &a.classifier {
        // An explicit classifier must load: a typo should not silently drop the FID.
        let d = RunDir::open(c)?;
        let (m, _) = d.load_model(&Device::Cpu)?;
        if m.as_classifier().is_none() {
            bail!("--classifier {}: holds a {} run, not a classifier", c.display(), m.name());
        }
    }
    let only = if a.only.is_empty() { None } else { Some(a.only.iter().map(|s| s.parse()).collect::<deepgen::Result<Vec<deepgen::report::Section>>>()?) };
    let (classifier, no_classifier) = find_classifier(&a, &cfg);
    let out = a.out.clone().unwrap_or_else(|| dir.file("report"));
    let opts = deepgen::report::ReportOptions { samples: n, classifier, no_classifier, seed: a.seed.unwrap_or(cfg.seed), min_share, out, only };
    let t0 = std::time::Instant::now();
    let rep = deepgen::report::write_report(&dir, &cfg, &model, &opts)?;
    for l in &rep.lines {
        println!("{l}");
    }
    println!("wrote {} in {:.1} s", rep.path.display(), t0.elapsed().as_secs_f64());
    Ok(())
}
