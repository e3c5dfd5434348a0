//! The subcommands. Each validates its arguments, calls the library and prints.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Result};
use candle_core::Device;
use deepgen::models::{self as registry, Density, Labels, Model, ModelConfig, TextGan, Training};
use deepgen::rng;
use deepgen::run::infer::{self, Condition};
use deepgen::run::{self, RunConfig, RunDir, TrainOptions, Watch};
use indicatif::{ProgressBar, ProgressStyle};

use crate::{CompleteArgs, InfoArgs, ModelsArgs, SampleArgs, ScoreArgs};

pub(crate) use deepgen::run::config::positive;

/// Draws training progress on stderr, and tells training to stop after the first SIGINT or
/// SIGTERM (a second one ends the process at once: `signal_hook`'s conditional shutdown).
#[derive(Default)]
struct Bar(Option<ProgressBar>, Stop);

/// The signals that stop training: set by the first SIGINT (`.0`) or SIGTERM (`.1`).
#[derive(Default, Clone)]
struct Stop(Arc<AtomicBool>, Arc<AtomicBool>);

impl Stop {
    fn install() -> Result<Self> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        use signal_hook::flag;
        let s = Stop::default();
        // Order matters: the shutdown is registered first so that it sees the flag as it was
        // before this signal set it (signal_hook's documented double-Ctrl-C pattern).
        for (sig, f, code) in [(SIGINT, &s.0, 130), (SIGTERM, &s.1, 143)] {
            flag::register_conditional_shutdown(sig, code, Arc::clone(f))?;
            flag::register_conditional_shutdown(
                sig,
                code,
                Arc::clone(if sig == SIGINT { &s.1 } else { &s.0 }),
            )?;
            flag::register(sig, Arc::clone(f))?;
        }
        Ok(s)
    }

    fn requested(&self) -> bool {
        self.0.load(Ordering::Relaxed) || self.1.load(Ordering::Relaxed)
    }

    /// The conventional exit code of the signal that stopped training.
    fn exit_code(&self) -> u8 {
        if self.1.load(Ordering::Relaxed) {
            143
        } else {
            130
        }
    }
}

impl Watch for Bar {
    fn start(&mut self, line: &str, start: usize, total: usize) {
        eprintln!("{line}");
        let pb = ProgressBar::new(total as u64);
        let template = "{bar:30} step {pos}/{len} {msg} [{elapsed_precise} < {eta_precise}]";
        if let Ok(style) = ProgressStyle::with_template(template) {
            pb.set_style(style);
        }
        pb.set_position(start as u64);
        self.0 = Some(pb);
    }
    fn step(&mut self, step: usize, message: &str) {
        if let Some(pb) = &self.0 {
            pb.set_position(step as u64);
            pb.set_message(message.to_string());
        }
    }
    fn note(&mut self, line: &str) {
        match &self.0 {
            Some(pb) => pb.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }
    fn finish(&mut self, line: &str) {
        eprintln!("{line}");
    }
    fn stop_requested(&self) -> bool {
        let stop = self.1.requested();
        if stop {
            if let Some(pb) = &self.0 {
                pb.abandon();
            }
        }
        stop
    }
}

/// A command's failure with the exit code it asks for (training stopped by a signal: 130 or 143).
#[derive(Debug)]
pub struct Exit(pub u8, pub deepgen::error::Error);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.1.fmt(f)
    }
}

impl std::error::Error for Exit {}

/// An exit code without a message: a data-parallel rank whose error rank 0 prints.
#[derive(Debug)]
pub struct Silent(pub u8);

impl std::fmt::Display for Silent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}", self.0)
    }
}

impl std::error::Error for Silent {}

impl Exit {
    /// This failure's exit code, printed by another rank.
    fn silent(self) -> anyhow::Error {
        Silent(self.0).into()
    }
}

/// The watch of a data-parallel rank other than 0: silent, but it hears this process's signals.
struct Follower(Stop);

impl Watch for Follower {
    fn start(&mut self, _line: &str, _start: usize, _total: usize) {}
    fn step(&mut self, _step: usize, _message: &str) {}
    fn note(&mut self, _line: &str) {}
    fn finish(&mut self, _line: &str) {}
    fn stop_requested(&self) -> bool {
        self.0.requested()
    }
}

/// `deepgen train`, in one process or as one rank of `mpirun -np N deepgen train ...` (rank 0
/// prints; an error every rank shares is printed by rank 0 alone).
pub fn train(a: TrainOptions) -> Result<()> {
    let launch = deepgen::parallel::launch()?;
    let par = &launch.par;
    let stop = Stop::install()?;
    let res = if par.is_root() {
        run::train_with(&a, &mut Bar(None, stop.clone()), par)
    } else {
        run::train_with(&a, &mut Follower(stop.clone()), par)
    };
    let e = match res {
        Ok(summary) => {
            for l in &summary.lines {
                println!("{l}");
            }
            return Ok(());
        }
        Err(e) => e,
    };
    if par.must_abort(&e) {
        // The other ranks wait for this one in a collective: end the whole job.
        let msg = format!("rank {} of {}: {e}; stopping every rank", par.rank(), par.size());
        crate::print_error(&msg);
        par.communicator().abort(2);
    }
    let shared = matches!(
        e,
        deepgen::error::Error::Interrupted { .. }
            | deepgen::error::Error::NonFinite { .. }
            | deepgen::error::Error::Ranks(_)
    );
    let code = match e {
        deepgen::error::Error::Interrupted { .. } => stop.exit_code(),
        _ => 2,
    };
    if par.size() > 1 && shared && !par.is_root() {
        return Err(Exit(code, e).silent());
    }
    if par.size() > 1 && !shared {
        // This rank's own error (each rank that failed says so).
        let e = deepgen::error::Error::Ranks(format!("rank {} of {}: {e}", par.rank(), par.size()));
        return Err(Exit(code, e).into());
    }
    Err(Exit(code, e).into())
}

/// `deepgen classifier train`: `deepgen train classifier`, into runs/classifier by default.
pub fn train_classifier(mut a: TrainOptions) -> Result<()> {
    match a.model.as_deref() {
        None | Some("classifier") => {}
        Some(m) => bail!(
            "deepgen classifier train trains the classifier; `{m}` is a generative \
            model (use deepgen train {m})"
        ),
    }
    a.model = Some("classifier".into());
    let taken = Path::new("runs/classifier/model.safetensors").exists();
    if a.run.out.is_none() && a.run.resume.is_none() && !taken {
        a.run.out = Some("runs/classifier".into());
    }
    train(a)
}

/// Opens a run with its model on `--device` (`on`).
pub(crate) fn open_run(path: &Path, on: &crate::On) -> Result<(RunDir, RunConfig, Model)> {
    Ok(run::open_on(path, &run::device(on.device.as_deref())?)?)
}

pub fn sample(a: SampleArgs) -> Result<()> {
    let n = positive("-n", a.n)?;
    let (dir, cfg, model) = open_run(&a.run, &a.on)?;
    let out = a.out.clone().unwrap_or_else(|| dir.file("samples.png"));
    // For 2-D data the training points, if still readable, are drawn behind the samples.
    let background = if model.config.dim() == 2 {
        run::load_transformed(&cfg.data.train, &cfg, true).ok().map(|d| d.0)
    } else {
        None
    };
    let mut r = rng::rng(a.seed.unwrap_or(cfg.seed));
    let t0 = std::time::Instant::now();
    if !a.text.is_empty() && a.class.is_some() {
        bail!("--text and --class: give one condition");
    }
    let what = a.run.display().to_string();
    if !a.text.is_empty() {
        for t in &a.text {
            let cond = Condition::Text(t.clone());
            infer::check_condition(&model, Some(&cond), &what).map_err(flag_named("--text"))?;
        }
        let total = n.saturating_mul(a.text.len());
        deepgen::limits::check_draws(
            &format!("-n {n} for {} captions", a.text.len()),
            total,
            model.config.dim(),
        )?;
        let mut parts = Vec::with_capacity(a.text.len());
        for t in &a.text {
            parts.push(infer::draw(&model, n, Some(&Condition::Text(t.clone())), false, &mut r)?);
        }
        let x = candle_core::Tensor::cat(&parts, 0)?;
        if out.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("png")) {
            run::write_grid(&model, &cfg, &x, n, &out)?;
        } else {
            run::write_examples(&model, &cfg, &x, &out, None)?;
        }
        let secs = t0.elapsed().as_secs_f64();
        println!(
            "wrote {total} samples for {} caption(s) from {} to {} in {secs:.2} s",
            a.text.len(),
            model.name(),
            out.display()
        );
        return Ok(());
    }
    let cond = a.class.map(Condition::Class);
    infer::check_condition(&model, cond.as_ref(), &what).map_err(flag_named("--class"))?;
    if cond.is_some() {
        let mut draw = |m: usize| infer::draw(&model, m, cond.as_ref(), false, &mut r);
        run::write_drawn(&model, &cfg, n, &out, None, &mut draw)?;
    } else {
        run::write_samples(&model, &cfg, n, a.mean, &mut r, &out, background.as_ref())?;
    }
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "wrote {n} samples from {} to {} in {secs:.2} s ({:.1} samples/s)",
        model.name(),
        out.display(),
        n as f64 / secs.max(1e-9)
    );
    Ok(())
}

/// Prefixes a condition error with the flag that gave it (`--class 12 is out of range`).
fn flag_named(flag: &'static str) -> impl Fn(deepgen::Error) -> anyhow::Error {
    move |e| {
        let m = e.to_string();
        match m.strip_prefix("class ").or_else(|| m.strip_prefix("text ")) {
            Some(rest) => anyhow::anyhow!("{flag} {rest}"),
            None => e.into(),
        }
    }
}

pub fn score(a: ScoreArgs) -> Result<()> {
    let batch = positive("--batch-size", a.batch_size)?;
    let (_dir, mut cfg, mut model) = open_run(&a.run, &a.on)?;
    if let Some(k) = a.iw_samples {
        if k == 0 {
            bail!("--iw-samples must be at least 1");
        }
        // Every batch keeps k log-weights per example (and decodes up to 4096 rows at a time).
        let what = format!("--iw-samples {k} with --batch-size {batch}");
        deepgen::limits::check_draws(&what, k.saturating_mul(batch), 1)?;
        let ModelConfig::Vae(mut c) = model.config.clone() else {
            bail!("--iw-samples applies only to vae runs")
        };
        c.iw_samples = k;
        model = model.with_config(&ModelConfig::Vae(c), cfg.seed, &a.run)?;
        cfg.model = model.config.clone();
    }
    if let Some(s) = a.seed {
        cfg.seed = s;
    }
    let (data, log_det) = run::load_transformed(&a.data, &cfg, false)?;
    for n in &data.notes {
        eprintln!("{}: {n}", data.source);
    }
    model.check_dim(data.dim(), &data.source)?;
    let mut r = rng::derived(cfg.seed, "test-nll", 0);
    let rep = run::score(&model, &data, log_det, batch, &mut r)?;
    if let Some(out) = &a.out {
        run::write_scores_csv(&rep, out)?;
    }
    println!("{}", run::nll_line(&model, &data.source, &rep, &cfg));
    Ok(())
}

pub fn complete(a: CompleteArgs) -> Result<()> {
    let n = positive("-n", a.n)?;
    let samples = positive("--samples", a.samples)?;
    let (dir, cfg, model) = open_run(&a.run, &a.on)?;
    let what = format!("-n {n} --samples {samples}");
    deepgen::limits::check_draws(&what, n.saturating_mul(samples), model.config.dim())?;
    let spec = match a.data.clone().or(cfg.data.val.clone()) {
        Some(s) => s,
        None => bail!("{}: the run has no validation data; pass --data", a.run.display()),
    };
    let (data, _) = run::load_transformed(&spec, &cfg, false)?;
    model.check_dim(data.dim(), &data.source)?;
    let keep = run::Keep::parse(&a.keep, &data.shape)?;
    let flags = keep.flags(&data.shape);
    // The models condition on earlier values only: a known value after an unknown one is kept but
    // not conditioned on.
    if let Some(first_unknown) = flags.iter().position(|&k| !k) {
        if flags[first_unknown..].iter().any(|&k| k) {
            eprintln!(
                "note: some known values come after unknown ones in the model's raster \
                order; the unknown ones are drawn given the known values before them only"
            );
        }
    }
    let out = a.out.clone().unwrap_or_else(|| dir.file("completions.png"));
    let mut r = rng::derived(a.seed.unwrap_or(cfg.seed), "complete", 0);
    let t0 = std::time::Instant::now();
    let (x, flags, done, lps) = run::complete(&model, &cfg, &data, &keep, n, samples, &mut r)?;
    let secs = t0.elapsed().as_secs_f64();
    let ext = out.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "png" if data.is_image() => run::write_completions(&x, &flags, &done, &data.shape, &out)?,
        "png" => bail!("{}: a completion grid needs image data; write .csv or .npy", out.display()),
        "csv" | "npy" => run::write_rows(&done, &data.shape, &out)?,
        _ => bail!("{}: unknown output type (use .png, .csv or .npy)", out.display()),
    }
    let mean_lp = lps.iter().sum::<f64>() / lps.len() as f64;
    println!(
        "completed {} examples x {samples} samples ({} of {} values unknown) in {secs:.2} s; mean \
            log p of the completed examples {mean_lp:.2} nats; wrote {}",
        x.dim(0)?,
        flags.iter().filter(|&&k| !k).count(),
        flags.len(),
        out.display()
    );
    Ok(())
}

fn table_size(dim: usize) -> String {
    if dim < 64 {
        format!("{}", (1u128 << dim) - 1)
    } else {
        let l = dim as f64 * 2f64.log10();
        format!("2^{dim} - 1 (about 10^{:.0})", l)
    }
}

/// What a model offers, in one line of `deepgen models`.
fn capabilities(m: &Model) -> String {
    let info = m.info();
    let yes = |b: bool| if b { "yes" } else { "no" };
    let density = match (info.density, info.labels, info.training) {
        (Density::Exact, _, _) => "exact",
        (Density::Bound, _, _) => "importance-weighted lower bound (k samples)",
        (Density::None, Labels::Target, _) => {
            "none (models p(y | x), trained on labels by the likelihood trainer)"
        }
        (Density::None, _, Training::Adversarial) => "none (trained adversarially)",
        (Density::None, _, Training::Likelihood) => "none",
    };
    let completion = if info.completion { "yes (deepgen complete)" } else { "no" };
    let labels = match info.labels {
        Labels::Unused => "",
        Labels::Condition => "; labels: conditioning (sample --class K)",
        Labels::Target => "; labels: the target",
    };
    format!(
        "log p(x): {density}; sampling: {}; completion: {completion}; encoder: {}{labels}; data: \
            {}",
        yes(info.sampler),
        yes(info.encoder),
        info.data
    )
}

pub fn models(a: ModelsArgs) -> Result<()> {
    if a.dim == 0 {
        bail!("--dim must be positive");
    }
    let side = (a.dim as f64).sqrt().round() as usize;
    let square = if side * side == a.dim { vec![1, side, side] } else { vec![a.dim] };
    for info in registry::models() {
        println!("{:<15} {}", info.name, info.summary);
        let cfg = ModelConfig::preset(info.name, &square, true)
            .or_else(|_| ModelConfig::preset(info.name, &[a.dim], true));
        let Ok(cfg) = cfg else {
            println!(
                "           (needs one-channel square images here: --dim must be a square \
                number, e.g. 784)"
            );
            continue;
        };
        let m = Model::new(&cfg, 0, &Device::Cpu)?;
        println!("           {}", capabilities(&m));
        let kinds: Vec<&str> = info.scores.iter().map(|k| k.name()).collect();
        let kinds = if kinds.is_empty() { "none".to_string() } else { kinds.join(", ") };
        let features = if m.has_features() { "yes" } else { "no" };
        println!(
            "           anomaly scores (deepgen detect --score): {kinds}; features (deepgen \
            embed): {features}"
        );
        let table = if cfg.needs_binary() {
            format!("; a full joint table over {} binary values needs {}", a.dim, table_size(a.dim))
        } else {
            String::new()
        };
        println!("           parameters at D={}: {}{table}", a.dim, m.trained_count());
        let names: Vec<String> =
            m.params.shapes().iter().map(|(n, s)| format!("{n} {s:?}")).collect();
        println!("           tensors: {}", names.join(", "));
    }
    Ok(())
}

pub fn info(a: InfoArgs) -> Result<()> {
    let (dir, cfg, model) = run::open(&a.run)?;
    let step = dir.checkpoint_info()?.step;
    println!("run:        {}", dir.path.display());
    println!("model:      {} ({})", model.name(), model.config.info().summary);
    let table = if model.config.needs_binary() {
        format!(
            " (a full joint table over {} binary values needs {})",
            model.config.dim(),
            table_size(model.config.dim())
        )
    } else {
        String::new()
    };
    println!("parameters: {}{table}", model.trained_count());
    println!("step:       {step} of {}", cfg.train.steps);
    println!("seed:       {}", cfg.seed);
    println!(
        "data:       {} (binarize {:?}){}",
        cfg.data.train,
        cfg.data.binarize,
        cfg.data.val.as_ref().map(|v| format!(", validation {v}")).unwrap_or_default()
    );
    if let Some(t) = model.as_translator() {
        println!("domains:    {}", run::translate::describe_domains(t, &cfg));
    }
    if let Some(g) = model.get::<deepgen::models::progan::ProGan>() {
        let images = g.images_shown()?;
        println!("growth:     {} after {images} images shown", g.current()?.label);
    }
    if let Some(g) = model.get::<TextGan>() {
        let v = &g.cfg.text.vocab;
        println!(
            "text:       {}, encoder from {}, {} words, captions of up to {} words",
            g.cfg.variant.name(),
            g.cfg.text_encoder,
            v.words.len(),
            v.max_words
        );
    }
    if let Some(p) = model.get::<deepgen::models::PuzzleGan>() {
        println!("patches:    {} of {} px per image", p.cfg.patches, p.cfg.patch_size);
    }
    if let Ok(m) = dir.metrics() {
        if let Some(l) = m.iter().rev().find(|v| v["loss"].is_number()) {
            println!(
                "last loss:  {:.4} at step {}",
                l["loss"].as_f64().unwrap_or(f64::NAN),
                l["step"]
            );
        }
        if let Some(l) = m.iter().rev().find(|v| v["val_nll"].is_number()) {
            println!(
                "val NLL:    {:.4} nats at step {}",
                l["val_nll"].as_f64().unwrap_or(f64::NAN),
                l["step"]
            );
        }
    }
    for (n, s) in model.params.shapes() {
        println!("  {n:<20} {s:?}");
    }
    Ok(())
}
