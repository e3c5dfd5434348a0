//! What generative models are for: `detect` (anomaly detection), `embed`
//! and `probe` (features), `interpolate` (latent paths), `classifier`
//! (the digit classifier behind the sample-quality metrics) and `eval` (the
//! one report).

use deepgen::models::{Classifier, Gan, Matcher, TextGan};
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use candle_core::Device;
use deepgen::eval::features;
use deepgen::files::atomic_write;
use deepgen::models::Model;
use deepgen::rng;
use deepgen::run;
use deepgen::run::{RunConfig, RunDir};

use crate::cmd::{open_run, positive};
use crate::{AssembleArgs, EmbedArgs, EvalArgs, InterpolateArgs, ProbeArgs, TranslateArgs};
use deepgen::run::detect::DetectOptions;

fn held_out(cfg: &RunConfig, run: &Path) -> Result<String> {
    Ok(deepgen::run::detect::held_out(cfg, run)?)
}

pub fn detect(a: &DetectOptions) -> Result<()> {
    for l in deepgen::run::detect::detect(a)? {
        println!("{l}");
    }
    Ok(())
}

pub fn embed(a: EmbedArgs) -> Result<()> {
    let (_dir, cfg, model) = open_run(&a.run, &a.on)?;
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
    let (_dir, cfg, model) = open_run(&a.run, &a.on)?;
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
    let dev = model.device();
    let p = features::linear_probe((&ftr, ytr), (&fte, yte), dim, seed, &dev)?;
    let raw = features::linear_probe((&train.x, ytr), (&test.x, yte), train.dim(), seed, &dev)?;
    println!(
        "linear probe (multinomial logistic regression, trained on {} examples of {}, tested \
        on {} of {}):",
        train.n, train.source, test.n, test.source
    );
    println!(
        "  {:<12} {:>5} features, L2 {:<6}: train {:.2} %, test {:.2} %",
        model.name(),
        dim,
        p.l2,
        100.0 * p.train_accuracy,
        100.0 * p.test_accuracy
    );
    println!(
        "  {:<12} {:>5} features, L2 {:<6}: train {:.2} %, test {:.2} %",
        "raw pixels",
        train.dim(),
        raw.l2,
        100.0 * raw.train_accuracy,
        100.0 * raw.test_accuracy
    );
    println!("(L2 chosen from {:?} on a fifth of the training examples)", features::PROBE_L2);
    println!("({:.1} s)", t0.elapsed().as_secs_f64());
    Ok(())
}

pub fn translate(a: TranslateArgs) -> Result<()> {
    let n = positive("--num", a.n)?;
    let o = run::translate::TranslateOptions {
        run: a.run,
        data: a.data,
        reverse: a.reverse,
        to: a.to,
        n,
        out: a.out,
        device: a.on.device,
    };
    for line in run::translate::translate(&o)? {
        println!("{line}");
    }
    Ok(())
}

pub fn interpolate(a: InterpolateArgs) -> Result<()> {
    let (dir, cfg, model) = open_run(&a.run, &a.on)?;
    let pairs = positive("--pairs", a.pairs)?;
    let steps = positive("--steps", a.steps)?;
    let what = format!("--pairs {pairs} --steps {steps}");
    deepgen::limits::check_draws(&what, pairs.saturating_mul(steps), model.config.dim())?;
    if !a.text.is_empty() {
        let g = model.get::<TextGan>().ok_or_else(|| {
            anyhow::anyhow!(
                "--text applies only to text-conditional runs (text-gan); {} is a {} run",
                a.run.display(),
                model.name()
            )
        })?;
        let [from, to] = &a.text[..] else {
            bail!("--text: give exactly two captions, the ends (--text A --text B)");
        };
        let mut r = rng::derived(a.seed.unwrap_or(cfg.seed), "interpolate", 0);
        let x = g.interpolate(from, to, pairs, steps, &mut r)?;
        let out = a.out.clone().unwrap_or_else(|| dir.file("interpolation-text.png"));
        if out.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("png")) {
            run::write_grid(&model, &cfg, &x, steps, &out)?;
        } else {
            run::write_examples(&model, &cfg, &x, &out, None)?;
        }
        println!(
            "wrote {pairs} interpolations of {steps} steps from `{from}` to `{to}` to {}",
            out.display()
        );
        return Ok(());
    }
    let data = if model.get::<Gan>().is_some() {
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
    let out = a.out.clone().unwrap_or_else(|| {
        dir.file(if a.slerp { "interpolation-slerp.png" } else { "interpolation.png" })
    });
    if out.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("png")) {
        run::write_grid(&model, &cfg, &x, steps, &out)?;
    } else {
        run::write_examples(&model, &cfg, &x, &out, None)?;
    }
    println!(
        "wrote {pairs} {} interpolations of {steps} steps to {}",
        if a.slerp { "spherical" } else { "linear" },
        out.display()
    );
    Ok(())
}

/// The classifier for the sample-quality metrics: `--classifier DIR`, else `runs/classifier` if it
/// exists.
fn find_classifier(
    a: &EvalArgs,
    cfg: &RunConfig,
    dev: &Device,
) -> (Option<(PathBuf, Model)>, Option<String>) {
    let path = a.classifier.first().cloned().unwrap_or_else(|| PathBuf::from("runs/classifier"));
    if !path.join("model.safetensors").is_file() {
        let why = format!(
            "no classifier run at `{}`: train one with `deepgen classifier train --data {}` \
                (about a minute on 2 cores), or pass --classifier DIR",
            path.display(),
            cfg.data.train.split('+').next().unwrap_or("mnist").replace("stacked-mnist", "mnist")
        );
        return (None, Some(why));
    }
    match RunDir::open(&path).and_then(|d| d.load_model(dev)) {
        Ok((m, _)) if m.get::<Classifier>().is_some() => (Some((path, m)), None),
        Ok((m, _)) => {
            (None, Some(format!("`{}` holds a {} run, not a classifier", path.display(), m.name())))
        }
        Err(e) => (None, Some(format!("cannot load the classifier: {e}"))),
    }
}

pub fn eval(a: EvalArgs) -> Result<()> {
    let n = positive("-n", a.n)?;
    let (dir, cfg, model) = open_run(&a.run, &a.on)?;
    deepgen::limits::check_draws(&format!("-n {n}"), n, model.config.dim())?;
    if a.live_generator {
        match model.get::<Gan>() {
            Some(g) if g.g_ema.is_some() => {
                g.use_live_weights()?;
                println!("using the live generator, not its weight average");
            }
            _ => bail!(
                "--live-generator: {} keeps no generator weight average (train a GAN with --g-ema)",
                a.run.display()
            ),
        }
    }
    let min_share = a.min_share.unwrap_or(deepgen::eval::modes::DEFAULT_MIN_SHARE);
    if !(0.0..=1.0).contains(&min_share) {
        bail!("--min-share must be between 0 and 1, got {min_share}");
    }
    for c in &a.classifier {
        // An explicit classifier must load: a typo should not silently drop the FID.
        let d = RunDir::open(c)?;
        let (m, _) = d.load_model(&model.device())?;
        if m.get::<Classifier>().is_none() {
            bail!("--classifier {}: holds a {} run, not a classifier", c.display(), m.name());
        }
    }
    let only = if a.only.is_empty() {
        None
    } else {
        Some(
            a.only
                .iter()
                .map(|s| s.parse())
                .collect::<deepgen::Result<Vec<deepgen::run::report::Section>>>()?,
        )
    };
    let translation = model.as_translator().is_some();
    let (classifier, no_classifier) =
        if translation { (None, None) } else { find_classifier(&a, &cfg, &model.device()) };
    let matcher = match &a.matcher {
        Some(p) => {
            let (m, _) = RunDir::open(p)?.load_model(&model.device())?;
            if m.get::<Matcher>().is_none() {
                bail!("--matcher {}: holds a {} run, not a text-matcher", p.display(), m.name());
            }
            Some((p.clone(), m))
        }
        None => None,
    };
    let out = a.out.clone().unwrap_or_else(|| dir.file("report"));
    let opts = deepgen::run::report::ReportOptions {
        matcher,
        samples: n,
        classifier,
        no_classifier,
        seed: a.seed.unwrap_or(cfg.seed),
        min_share,
        out,
        only,
        classifiers: a.classifier.clone(),
    };
    let t0 = std::time::Instant::now();
    let rep = deepgen::run::report::write_report(&dir, &cfg, &model, &opts)?;
    for l in &rep.lines {
        println!("{l}");
    }
    println!("wrote {} in {:.1} s", rep.path.display(), t0.elapsed().as_secs_f64());
    Ok(())
}

pub fn assemble(a: AssembleArgs) -> Result<()> {
    let n = positive("-n", a.n)?;
    let (dir, cfg, model) = open_run(&a.run, &a.on)?;
    run::assemble::puzzle(&model, &a.run)?;
    deepgen::limits::check_draws(&format!("-n {n}"), n, model.config.dim())?;
    let seed = a.seed.unwrap_or(cfg.seed);
    let out = a.out.clone().unwrap_or_else(|| dir.file("assembly.png"));
    if !a.patches.is_empty() {
        if a.data.is_some() {
            bail!("--patches and --data: give one source of patches");
        }
        run::assemble::from_files(&model, &cfg, &a.patches, n, seed, &out)?;
        println!("wrote {n} wholes from {} patches to {}", a.patches.len(), out.display());
        return Ok(());
    }
    let spec = match &a.data {
        Some(s) => s.clone(),
        None => held_out(&cfg, &a.run)?,
    };
    let (data, _) = run::load_transformed(&spec, &cfg, false)?;
    run::assemble::from_data(&model, &cfg, &data, n, seed, &out)?;
    println!("wrote {} wholes from patches of {} to {}", n.min(data.n), data.source, out.display());
    Ok(())
}

/// `deepgen serve`: prints the address once the socket is bound, serves until SIGTERM or
/// Ctrl-C.
pub fn serve(a: deepgen_serve::ServeOptions) -> Result<()> {
    a.check()?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(deepgen_serve::serve(a, |addr| {
        println!("deepgen serve: listening on http://{addr}/ (loading the runs)");
    }))
}
