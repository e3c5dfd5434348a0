//! `deepgen eval`: every evaluation that applies to a run, written as one
//! `report.md` with its pictures beside it. Each section says what was
//! measured, on what, and how; a section that cannot apply says why instead.

use crate::models::{Aae, Classifier, Density, Gan, Labels, PuzzleGan, TextGan, Vae};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use super::report_text::{self as txt, fill};
use super::{RunConfig, RunDir};
use crate::data::{DataSpec, Dataset};
use crate::error::{Error, Result};
use crate::eval::{self, features, scores::ScoreKind};
use crate::models::{Model, Sampler};
use crate::rng;
use crate::run;
use crate::viz;

/// What `deepgen eval` was asked for.
pub struct ReportOptions {
    /// Generated examples for the sample-quality metrics (and toy mode coverage).
    pub samples: usize,
    /// A trained classifier run (for FID on MNIST, Inception score, class and Stacked-MNIST
    /// coverage).
    pub classifier: Option<(PathBuf, Model)>,
    /// Why there is no classifier, when there is none (said in the report).
    pub no_classifier: Option<String>,
    pub seed: u64,
    /// Mode coverage threshold on toy mixtures.
    pub min_share: f64,
    /// Where report.md and its pictures go.
    pub out: PathBuf,
    /// Only these sections (`deepgen eval --only`); `None` writes every section that applies.
    pub only: Option<Vec<Section>>,
    /// Classifier runs given for a translation run's domains (others are found under `runs/`).
    pub classifiers: Vec<PathBuf>,
    /// A text-matcher run trained apart from a text GAN's encoder (R-precision).
    pub matcher: Option<(PathBuf, Model)>,
}

/// The sections of a report, by the names `deepgen eval --only` takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    Classification,
    Density,
    Samples,
    Modes,
    Quality,
    Statistics,
    Codes,
    Anomaly,
    Probe,
    Latent,
    Translation,
    Text,
    Assembly,
}

impl Section {
    pub const ALL: [Section; 13] = [
        Section::Classification,
        Section::Density,
        Section::Samples,
        Section::Modes,
        Section::Quality,
        Section::Statistics,
        Section::Codes,
        Section::Anomaly,
        Section::Probe,
        Section::Latent,
        Section::Translation,
        Section::Text,
        Section::Assembly,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Section::Classification => "classification",
            Section::Density => "density",
            Section::Samples => "samples",
            Section::Modes => "modes",
            Section::Quality => "quality",
            Section::Statistics => "swd",
            Section::Codes => "codes",
            Section::Anomaly => "anomaly",
            Section::Probe => "probe",
            Section::Latent => "latent",
            Section::Translation => "translation",
            Section::Text => "text",
            Section::Assembly => "assembly",
        }
    }

    /// The sections that apply to a run, in report order.
    pub fn applicable(cfg: &RunConfig, model: &Model) -> Vec<Section> {
        let image = cfg.data.shape.len() == 3;
        let info = model.info();
        let can_sample = info.sampler;
        Section::ALL
            .into_iter()
            .filter(|s| match s {
                Section::Classification => info.labels == Labels::Target,
                Section::Density => info.density != Density::None,
                Section::Samples => can_sample,
                Section::Modes => can_sample && cfg.data.train.starts_with("toy:"),
                Section::Quality => can_sample && image,
                // Every GAN's samples (the autoregressive samplers would take minutes).
                Section::Statistics => {
                    can_sample && image && info.training == crate::models::Training::Adversarial
                }
                Section::Codes => {
                    image
                        && model
                            .get::<Gan>()
                            .is_some_and(|g| g.cfg.is_info() && g.cfg.categorical > 0)
                }
                Section::Anomaly => !ScoreKind::supported(model.name()).is_empty(),
                Section::Probe => model.has_features(),
                Section::Latent => {
                    image
                        && (model.get::<Vae>().is_some()
                            || model.get::<Aae>().is_some()
                            || model.get::<Gan>().is_some())
                }
                Section::Translation => model.as_translator().is_some(),
                Section::Text => model.get::<TextGan>().is_some(),
                Section::Assembly => model.get::<PuzzleGan>().is_some(),
            })
            .collect()
    }
}

impl std::str::FromStr for Section {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Section::ALL.into_iter().find(|k| k.name() == s.trim()).ok_or_else(|| {
            Error::config(format!(
                "unknown report section `{s}`; sections: {}",
                Section::ALL.map(|k| k.name()).join(", ")
            ))
        })
    }
}

/// What the report found, for callers that print a summary.
#[derive(Default, Debug, Clone)]
pub struct ReportSummary {
    pub lines: Vec<String>,
    pub path: PathBuf,
}

struct Report {
    md: String,
    out: PathBuf,
    summary: Vec<String>,
    timings: Vec<(String, f64)>,
}

impl Report {
    fn section(&mut self, title: &str, f: impl FnOnce(&mut Report) -> Result<()>) {
        let _ = writeln!(self.md, "\n## {title}\n");
        let t0 = Instant::now();
        if let Err(e) = f(self) {
            let _ = writeln!(self.md, "_Not available: {e}._");
        }
        self.timings.push((title.to_string(), t0.elapsed().as_secs_f64()));
    }

    fn image(&mut self, name: &str, alt: &str) {
        let _ = writeln!(self.md, "\n![{alt}]({name})\n");
    }

    fn file(&self, name: &str) -> PathBuf {
        self.out.join(name)
    }
}

/// The held-out data of a run (its validation spec, or the held-out split of its training spec).
pub fn held_out_spec(cfg: &RunConfig) -> Option<String> {
    cfg.data.val.clone().or_else(|| {
        cfg.data.train.parse::<DataSpec>().ok().and_then(|s| s.held_out()).map(|s| s.to_string())
    })
}

/// Writes `opts.out/report.md` for the run in `dir`.
pub fn write_report(
    dir: &RunDir,
    cfg: &RunConfig,
    model: &Model,
    opts: &ReportOptions,
) -> Result<ReportSummary> {
    let applicable = Section::applicable(cfg, model);
    let chosen: Vec<Section> = match &opts.only {
        None => applicable.clone(),
        Some(only) => {
            if let Some(s) = only.iter().find(|s| !applicable.contains(s)) {
                return Err(Error::config(format!(
                    "report section `{}` does not apply to {} ({} on {}); sections that do: {}",
                    s.name(),
                    dir.path.display(),
                    model.name(),
                    cfg.data.train,
                    applicable.iter().map(|k| k.name()).collect::<Vec<_>>().join(", ")
                )));
            }
            applicable.iter().copied().filter(|s| only.contains(s)).collect()
        }
    };
    std::fs::create_dir_all(&opts.out).map_err(|e| Error::io(&opts.out, e))?;
    let step = dir.checkpoint_info()?.step;
    let info = model.config.info();
    let mut r =
        Report { md: String::new(), out: opts.out.clone(), summary: vec![], timings: vec![] };
    let _ = writeln!(
        r.md,
        "# Evaluation of `{}`: {} on {}\n",
        dir.path.display(),
        model.name(),
        cfg.data.train
    );
    let _ = writeln!(r.md, "{}.\n", capitalise(info.summary));
    let trained = run::training_seconds(dir);
    let _ = writeln!(r.md, "| | |\n|---|---|");
    let _ = writeln!(r.md, "| model | `{}`, {} parameters |", model.name(), model.trained_count());
    let _ = writeln!(
        r.md,
        "| training data | `{}` (binarization: {:?}) |",
        cfg.data.train, cfg.data.binarize
    );
    let _ = writeln!(
        r.md,
        "| held-out data | {} |",
        held_out_spec(cfg).map(|s| format!("`{s}`")).unwrap_or("none".into())
    );
    let _ = writeln!(
        r.md,
        "| steps | {step} of {} (batch {}, lr {}, seed {}) |",
        cfg.train.steps, cfg.train.batch_size, cfg.train.lr, cfg.seed
    );
    let _ = writeln!(
        r.md,
        "| training time | {} |",
        trained
            .map(|s| format!("{s:.1} s ({:.1} steps/s, this machine)", step as f64 / s.max(1e-9)))
            .unwrap_or("not recorded (run from before timing was logged)".into())
    );
    let needs_held =
        chosen.iter().any(|s| !matches!(s, Section::Samples | Section::Modes | Section::Codes));
    let held = match held_out_spec(cfg).filter(|_| needs_held) {
        Some(s) => Some((s.clone(), run::load_transformed(&s, cfg, false)?)),
        None => None,
    };
    let held_data = held.as_ref().map(|(_, (d, _))| d);

    for s in chosen {
        match s {
            Section::Classification => {
                r.section("Classification", |r| classification(r, model, held_data))
            }
            Section::Density => r.section("Density: held-out log-likelihood", |r| {
                density(r, model, cfg, held.as_ref().map(|(_, d)| d))
            }),
            Section::Samples => r.section("Samples", |r| samples(r, model, cfg, opts)),
            Section::Modes => {
                r.section("Mode coverage on the toy mixture", |r| modes(r, model, cfg, opts))
            }
            Section::Quality => r.section("Sample quality through a classifier", |r| {
                quality(r, model, cfg, held_data, opts)
            }),
            Section::Statistics => r
                .section("Sample quality without a pretrained network: SWD and MS-SSIM", |r| {
                    statistics(r, model, held_data, opts)
                }),
            Section::Codes => r
                .section("InfoGAN: the categorical code against a classifier", |r| {
                    info_codes(r, model, opts)
                }),
            Section::Anomaly => r
                .section("Anomaly detection: held-out data against corrupted copies", |r| {
                    anomalies(r, model, cfg, held.as_ref(), opts)
                }),
            Section::Probe => {
                r.section("Features: linear probe", |r| probe(r, model, cfg, held_data, opts))
            }
            Section::Latent => r.section("Latent space: interpolations", |r| {
                latent(r, model, cfg, held_data, opts)
            }),
            Section::Translation => r.section("Translation", |r| {
                let known = super::translate_eval::find_classifiers(
                    &opts.classifiers,
                    std::path::Path::new("runs"),
                    &model.device(),
                )?;
                let f =
                    super::translate_eval::evaluate(cfg, model, &known, opts.samples, opts.seed)?;
                r.md.push_str(&f.md);
                r.summary.extend(f.summary);
                for p in super::translate::write_previews(model, cfg, &r.out)? {
                    let name =
                        p.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
                    r.image(&name, "input, translation, reconstruction per row");
                }
                Ok(())
            }),
            Section::Text => r.section("Text: does the image say what the caption says?", |r| {
                text(r, model, cfg, held_data, opts)
            }),
            Section::Assembly => r.section("Part to whole: wholes from key patches", |r| {
                assembly(r, model, cfg, held_data, opts)
            }),
        }
    }
    let _ = writeln!(r.md, "\n## Evaluation time\n\n| section | seconds |\n|---|---|");
    let timings = std::mem::take(&mut r.timings);
    for (t, s) in &timings {
        let _ = writeln!(r.md, "| {t} | {s:.1} |");
    }
    let _ = writeln!(
        r.md,
        "\nSeed {} for every draw of this report; rerun `deepgen eval {}{}` to reproduce it.",
        opts.seed,
        dir.path.display(),
        opts.only
            .as_ref()
            .map(|o| format!(
                " --only {}",
                o.iter().map(|k| k.name()).collect::<Vec<_>>().join(",")
            ))
            .unwrap_or_default()
    );
    let path = r.file("report.md");
    crate::files::atomic_write(&path, r.md.as_bytes())?;
    Ok(ReportSummary { lines: r.summary, path })
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().collect::<String>() + c.as_str()).unwrap_or_default()
}

fn need(d: Option<&Dataset>) -> Result<&Dataset> {
    d.ok_or_else(|| Error::config("the run has no held-out data (train with --val SPEC)"))
}

fn classification(r: &mut Report, model: &Model, held: Option<&Dataset>) -> Result<()> {
    let d = need(held)?;
    let labels =
        d.labels.as_ref().ok_or_else(|| Error::config(format!("{} has no labels", d.source)))?;
    let (p, _, k, _) = features::classify(model, &d.x, d.dim())?;
    let pred: Vec<usize> = p.chunks(k).map(crate::nn::argmax).collect();
    let right = pred.iter().zip(labels).filter(|(p, y)| **p == **y as usize).count();
    let acc = right as f64 / d.n as f64;
    let _ = writeln!(
        r.md,
        "Test accuracy on `{}`: **{:.2} %** ({right} of {}).\n\n| class | \
        examples | accuracy |\n|---|---|---|",
        d.source,
        100.0 * acc,
        d.n
    );
    for c in 0..k {
        let idx: Vec<usize> = (0..d.n).filter(|&i| labels[i] as usize == c).collect();
        if idx.is_empty() {
            continue;
        }
        let ok = idx.iter().filter(|&&i| pred[i] == c).count();
        let _ = writeln!(
            r.md,
            "| {c} | {} | {:.1} % |",
            idx.len(),
            100.0 * ok as f64 / idx.len() as f64
        );
    }
    r.summary.push(format!("test accuracy {:.2}% on {}", 100.0 * acc, d.source));
    Ok(())
}

fn density(
    r: &mut Report,
    model: &Model,
    cfg: &RunConfig,
    held: Option<&(Dataset, f64)>,
) -> Result<()> {
    let (d, log_det) =
        held.ok_or_else(|| Error::config("the run has no held-out data (train with --val SPEC)"))?;
    let mut g = rng::derived(cfg.seed, "test-nll", 0);
    let t0 = Instant::now();
    let rep = run::score(model, d, *log_det, 256, &mut g)?;
    let secs = t0.elapsed().as_secs_f64();
    let how = match (&model.config, model.info().density) {
        (crate::models::ModelConfig::Vae(c), _) => format!(
            "importance-weighted estimate with k = \
            {} (a stochastic lower bound on log p, Burda et al. 2016)",
            c.iw_samples
        ),
        (_, Density::Exact) => "exact".to_string(),
        _ => "bound".to_string(),
    };
    let _ = writeln!(
        r.md,
        "| data | examples | NLL (nats) | bits/dim | log p | scoring speed \
        |\n|---|---|---|---|---|---|"
    );
    let _ = writeln!(
        r.md,
        "| `{}` | {} | **{:.3}** | {:.4} | {how} | {:.0} examples/s |",
        d.source,
        d.n,
        rep.nats,
        rep.bits_per_dim,
        d.n as f64 / secs.max(1e-9)
    );
    r.summary.push(format!(
        "held-out NLL {:.3} nats ({:.4} bits/dim) on {}",
        rep.nats, rep.bits_per_dim, d.source
    ));
    Ok(())
}

fn samples(r: &mut Report, model: &Model, cfg: &RunConfig, opts: &ReportOptions) -> Result<()> {
    let mut g = rng::derived(opts.seed, "report-samples", 0);
    let image = cfg.data.shape.len() == 3;
    let n = if image { 64 } else { 2500.min(opts.samples.max(64)) };
    let t0 = Instant::now();
    let x = match model.get::<Gan>().filter(|g| g.cfg.classes > 0) {
        Some(gan) if image => run::class_rows(model, gan.cfg.classes, &mut g)?,
        _ => match (model.get::<Vae>(), image) {
            (Some(v), true) => v.sample_mean(n, &mut g)?,
            _ => model.sample(n, &mut g)?,
        },
    };
    let secs = t0.elapsed().as_secs_f64();
    let rows = x.dim(0)?;
    let name = if image || model.config.dim() == 2 { "samples.png" } else { "samples.csv" };
    run::write_examples(model, cfg, &x, &r.file(name), None)?;
    let what = match (model.get::<Vae>(), model.get::<Gan>().filter(|g| g.cfg.classes > 0)) {
        (Some(_), _) if image => "decoder means at z ~ N(0, I)",
        (_, Some(_)) => "one row per class",
        _ => "independent draws",
    };
    let _ = writeln!(
        r.md,
        "{rows} samples ({what}), drawn at {:.0} samples/s.",
        rows as f64 / secs.max(1e-9)
    );
    if name.ends_with(".png") {
        r.image(name, "samples");
    } else {
        let _ = writeln!(r.md, "Written to `{name}` (one example per row).");
    }
    // Reconstructions of held-out examples for the autoencoders (VAE: decoder means at the
    // posterior mean).
    if image && (model.get::<Vae>().is_some() || model.get::<Aae>().is_some()) {
        if let Some(spec) = held_out_spec(cfg) {
            let (d, _) = run::load_transformed(&spec, cfg, false)?;
            let path = r.file("reconstructions.png");
            if model.get::<Vae>().is_some() {
                run::write_reconstructions(model, &d, 32, &path)?;
            } else {
                run::write_aae_reconstructions(model, &d, 32, &path)?;
            }
            let _ = writeln!(
                r.md,
                "Reconstructions of held-out examples (each row of originals \
                above its reconstructions):"
            );
            r.image("reconstructions.png", "reconstructions");
        }
    }
    Ok(())
}

fn modes(r: &mut Report, model: &Model, cfg: &RunConfig, opts: &ReportOptions) -> Result<()> {
    let mut g = rng::derived(opts.seed, "eval", 0);
    let n = opts.samples;
    let rep = run::mode_eval(model, cfg, n, opts.min_share, &mut g, Some(&r.file("modes.png")))?;
    let text = fill(
        txt::MODES,
        &[
            ("n", n.to_string()),
            ("share", format!("{:.1}", 100.0 * rep.min_share)),
            ("covered", rep.covered.to_string()),
            ("modes", rep.modes.to_string()),
            ("quality", format!("{:.1}", 100.0 * rep.high_quality)),
            ("kl", format!("{:.3}", rep.reverse_kl)),
            ("counts", format!("{:?}", rep.counts)),
        ],
    );
    let _ = writeln!(r.md, "{text}");
    r.image("modes.png", "samples over 3-sigma circles around the true modes");
    r.summary.push(format!(
        "modes {}/{}, high quality {:.1}%",
        rep.covered,
        rep.modes,
        100.0 * rep.high_quality
    ));
    let json = serde_json::json!({
        "samples": rep.samples, "modes": rep.modes, "covered": rep.covered,
        "high_quality": rep.high_quality, "reverse_kl": rep.reverse_kl, "counts": rep.counts,
        "min_share": rep.min_share,
    });
    crate::files::atomic_write(&r.file("modes.json"), json.to_string().as_bytes())
}

fn quality(
    r: &mut Report,
    model: &Model,
    cfg: &RunConfig,
    held: Option<&Dataset>,
    opts: &ReportOptions,
) -> Result<()> {
    let (cpath, classifier) = classifier_of(opts)?;
    let real = need(held)?;
    let c = classifier
        .get::<Classifier>()
        .ok_or_else(|| Error::config(format!("{} is not a classifier run", cpath.display())))?;
    let mut g = rng::derived(opts.seed, "report-quality", 0);
    let n = opts.samples;
    let fake = draw(model, n, &mut g)?;
    let stacked = real.shape[0] == 3 && c.cfg.shape.len() == 3 && c.cfg.shape[0] == 1;
    let _ = writeln!(
        r.md,
        "Classifier: `{}` ({} classes). Real examples: the {} held-out examples of `{}`, with the \
            run's transforms; generated: {n} samples.\n",
        cpath.display(),
        c.cfg.classes,
        real.n,
        real.source
    );
    let (train, _) = run::load_transformed(&cfg.data.train, cfg, false)?;
    let m = n.min(train.n);
    let reference = &train.x[..m * train.dim()];
    if stacked {
        let g = features::stacked_modes(classifier, &fake, &real.shape)?;
        let t = features::stacked_modes(classifier, reference, &real.shape)?;
        let text = fill(
            txt::STACKED,
            &[
                ("modes", g.modes.to_string()),
                ("kl", format!("{:.3}", g.kl)),
                ("n", g.n.to_string()),
                ("real_modes", t.modes.to_string()),
                ("real_kl", format!("{:.3}", t.kl)),
                ("real_n", t.n.to_string()),
            ],
        );
        let _ = writeln!(r.md, "{text}");
        r.summary.push(format!(
            "stacked-MNIST modes {} of 1000, KL {:.3} (real training examples: {}, {:.3})",
            g.modes, g.kl, t.modes, t.kl
        ));
        return Ok(());
    }
    let q = features::sample_quality(classifier, &real.x, &fake, reference, real.dim())?;
    let table = fill(
        txt::FID_TABLE,
        &[
            ("m", m.to_string()),
            ("fid", format!("{:.2}", q.fid)),
            ("floor", format!("{:.2}", q.fid_floor)),
            ("is", format!("{:.2}", q.inception_score)),
            ("classes", c.cfg.classes.to_string()),
            ("kl", format!("{:.3}", q.class_kl)),
        ],
    );
    let _ = writeln!(r.md, "{table}");
    let _ = writeln!(r.md, "{}", fill(txt::FID_NOTE, &[("hidden", c.cfg.hidden.to_string())]));
    let _ = writeln!(
        r.md,
        "Per-class coverage (predicted class of each sample):\n\n| class | \
        samples | share |\n|---|---|---|"
    );
    for (k, &cnt) in q.class_counts.iter().enumerate() {
        let _ = writeln!(r.md, "| {k} | {cnt} | {:.1} % |", 100.0 * cnt as f64 / q.n as f64);
    }
    r.summary.push(format!(
        "FID-on-MNIST {:.2} (floor {:.2}), IS {:.2}",
        q.fid, q.fid_floor, q.inception_score
    ));
    Ok(())
}

/// `n` samples as one row-major vector, drawn 500 at a time.
fn draw(model: &Model, n: usize, g: &mut rng::Rng) -> Result<Vec<f32>> {
    let mut fake = Vec::with_capacity(n * model.config.dim());
    let mut left = n;
    while left > 0 {
        let b = left.min(500);
        fake.extend(model.sample(b, g)?.flatten_all()?.to_vec1::<f32>()?);
        left -= b;
    }
    Ok(fake)
}

/// Karras et al.'s sliced Wasserstein distance between samples and held-out images over a
/// Laplacian pyramid, and the MS-SSIM of sample pairs beside that of real pairs.
fn statistics(
    r: &mut Report,
    model: &Model,
    held: Option<&Dataset>,
    opts: &ReportOptions,
) -> Result<()> {
    use crate::eval::{ms_ssim, swd};
    let real = need(held)?;
    let n = opts.samples.min(real.n).min(1024);
    if n < 2 {
        return Err(Error::config(format!("{}: too few held-out images for SWD", real.source)));
    }
    let mut g = rng::derived(opts.seed, "report-swd", 0);
    let fake = draw(model, n, &mut g)?;
    let real_x = swd::Images::new(real.x[..n * real.dim()].to_vec(), &real.shape)?;
    let fake_x = swd::Images::new(fake, &real.shape)?;
    let rep = swd::swd(&real_x, &fake_x, &mut g)?;
    let pairs = n / 2;
    let (ms_fake, ms_real) =
        (ms_ssim::mean_ms_ssim(&fake_x, pairs)?, ms_ssim::mean_ms_ssim(&real_x, pairs)?);
    let heads: Vec<String> = rep.sides.iter().map(|s| format!("SWD x1e3 at {s} px")).collect();
    let _ = writeln!(
        r.md,
        "{n} samples against the first {n} held-out images of `{}` (7x7 neighbourhoods, 128 per         image, 512 directions; lower is closer). MS-SSIM: the mean over {pairs} pairs of         samples and of held-out images (lower is more varied; samples far above the real pairs         lack variety).
",
        real.source
    );
    let _ = writeln!(
        r.md,
        "| {} | SWD mean | MS-SSIM, samples | MS-SSIM, real |
|{}---|---|---|",
        heads.join(" | "),
        "---|".repeat(heads.len())
    );
    let cells: Vec<String> = rep.per_level.iter().map(|v| format!("{v:.2}")).collect();
    let _ = writeln!(
        r.md,
        "| {} | **{:.2}** | {ms_fake:.4} | {ms_real:.4} |",
        cells.join(" | "),
        rep.mean
    );
    r.summary.push(format!(
        "SWD x1e3 {:.2} (levels {}), MS-SSIM {ms_fake:.4} (real pairs {ms_real:.4})",
        rep.mean,
        cells.join("/")
    ));
    let json = serde_json::json!({
        "images": n, "sides": rep.sides, "swd_x1e3": rep.per_level, "swd_mean": rep.mean,
        "ms_ssim_samples": ms_fake, "ms_ssim_real": ms_real, "pairs": pairs,
    });
    crate::files::atomic_write(&r.file("swd.json"), json.to_string().as_bytes())
}

/// Generates `opts.samples` images spread evenly over the categorical code's
/// values (fresh z and continuous codes from their priors), classifies them,
/// and reports how well code values line up with classes.
fn info_codes(r: &mut Report, model: &Model, opts: &ReportOptions) -> Result<()> {
    let (cpath, classifier) = classifier_of(opts)?;
    let g = model.get::<Gan>().ok_or_else(|| Error::config("not a GAN"))?;
    let (k, m) = (g.cfg.categorical, g.cfg.continuous);
    let per = (opts.samples / k).max(1);
    let dim = g.cfg.shape.iter().product();
    let mut rg = rng::derived(opts.seed, "report-info-codes", 0);
    let mut counts: Vec<Vec<usize>> = Vec::with_capacity(k);
    for code in 0..k {
        let mut x = Vec::new();
        let mut left = per;
        while left > 0 {
            let b = left.min(500);
            let mut c = g.draw_codes(b, &mut rg)?.flatten_all()?.to_vec1::<f32>()?;
            for row in c.chunks_mut(k + m) {
                row[..k]
                    .iter_mut()
                    .enumerate()
                    .for_each(|(j, v)| *v = if j == code { 1.0 } else { 0.0 });
            }
            let c = candle_core::Tensor::from_vec(c, (b, k + m), &model.device())?;
            let z = g.draw_z(b, &mut rg)?;
            x.extend(g.generate(&z, Some(&c), false)?.flatten_all()?.to_vec1::<f32>()?);
            left -= b;
        }
        let (probs, _, classes, _) = features::classify(classifier, &x, dim)?;
        counts.push(eval::quality::class_counts(&probs, classes));
    }
    let a = eval::quality::code_class_agreement(&counts);
    let classes = counts.first().map(|c| c.len()).unwrap_or(0);
    let intro = fill(
        txt::INFO_CODES,
        &[
            ("per", per.to_string()),
            ("k", k.to_string()),
            ("classifier", cpath.display().to_string()),
        ],
    );
    let _ = writeln!(r.md, "{intro}");
    let matched = a
        .matched
        .map(|v| format!("**{:.1} %** (error {:.1} %)", 100.0 * v, 100.0 * (1.0 - v)))
        .unwrap_or("not computed (over 20 classes)".into());
    let _ = writeln!(
        r.md,
        "| one-to-one assignment accuracy | majority-class purity | distinct majority classes \
            |\n|---|---|---|\n| {matched} | {:.1} % | {} of {classes} |\n",
        100.0 * a.purity,
        a.distinct
    );
    let _ = write!(r.md, "| code | assigned class |");
    for c in 0..classes {
        let _ = write!(r.md, " {c} |");
    }
    let _ = write!(r.md, "\n|---|---|{}\n", "---|".repeat(classes));
    for (i, row) in counts.iter().enumerate() {
        let _ =
            write!(r.md, "| {i} | {} |", a.mapping[i].map(|c| c.to_string()).unwrap_or("-".into()));
        for v in row {
            let _ = write!(r.md, " {v} |");
        }
        let _ = writeln!(r.md);
    }
    r.summary.push(format!(
        "InfoGAN categorical code vs classes: one-to-one {}, purity {:.1} %, {} distinct classes",
        a.matched.map(|v| format!("{:.1} %", 100.0 * v)).unwrap_or("n/a".into()),
        100.0 * a.purity,
        a.distinct
    ));
    Ok(())
}

fn anomalies(
    r: &mut Report,
    model: &Model,
    cfg: &RunConfig,
    held: Option<&(String, (Dataset, f64))>,
    opts: &ReportOptions,
) -> Result<()> {
    let (spec, (normal, log_det)) =
        held.ok_or_else(|| Error::config("the run has no held-out data (train with --val SPEC)"))?;
    let supported = ScoreKind::supported(model.name());
    let main = supported[0];
    // For likelihood models, the corrections of the known failure mode come from the same NLL pass.
    let mut kinds = vec![main];
    for k in [ScoreKind::Typicality, ScoreKind::Complexity] {
        if main == ScoreKind::Nll
            && supported.contains(&k)
            && (k != ScoreKind::Complexity || normal.is_image())
        {
            kinds.push(k);
        }
    }
    let corruptions: &[&str] = if normal.is_image() {
        &["noise", "invert", "rotate", "shrink"]
    } else {
        &["noise", "uniform"]
    };
    let normal_scores =
        eval::scores::NormalScores::new(model, normal, *log_det, main.base(), 0.5, opts.seed)?;
    let names: Vec<String> = kinds.iter().map(|k| format!("AUROC ({})", k.name())).collect();
    let described: Vec<String> =
        kinds.iter().map(|k| format!("**{}** ({})", k.name(), k.describe())).collect();
    let intro = fill(
        txt::ANOMALY,
        &[
            ("spec", spec.to_string()),
            ("kinds", described.join("; ")),
            ("aurocs", names.join(" | ")),
            ("rule", "---|".repeat(kinds.len())),
            ("m", main.name().to_string()),
        ],
    );
    let _ = writeln!(r.md, "{intro}");
    for c in corruptions {
        let aspec = format!("{spec}+{c}");
        let (anom, _) = match run::load_transformed(&aspec, cfg, false) {
            Ok(a) => a,
            Err(e) => {
                let _ = writeln!(
                    r.md,
                    "| `+{c}` | not available: {e} |{}",
                    " |".repeat(kinds.len() + 2)
                );
                continue;
            }
        };
        let mut g = rng::derived(opts.seed, "detect-anomalies", 0);
        let anom_base = eval::scores::base_score(model, &anom, *log_det, main.base(), &mut g)?;
        let reps: Vec<_> = kinds
            .iter()
            .map(|&k| normal_scores.report(&anom_base, &anom, k, 0.05, &cfg.data.train))
            .collect::<Result<_>>()?;
        let d = &reps[0].detection;
        let aurocs: Vec<String> =
            reps.iter().map(|p| format!("{:.3}", p.detection.auroc)).collect();
        let _ = writeln!(
            r.md,
            "| `+{c}` | {} | {:.3} | {:.3} | {:.1} % |",
            aurocs.join(" | "),
            d.auprc,
            d.fpr_at_95_tpr,
            100.0 * reps[0].tpr
        );
        let png = format!("detect-{c}.png");
        viz::detection_plot(
            &format!("{} ({}) on {} vs {}", model.name(), main.name(), spec, aspec),
            &reps[0].normal,
            &reps[0].anomalous,
            reps[0].threshold.threshold,
            &d.roc,
            d.auroc,
            &r.file(&png),
        )?;
        r.summary.push(format!(
            "AUROC {} against +{c}",
            reps.iter()
                .map(|p| format!("{:.3} ({})", p.detection.auroc, p.kind.name()))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if main == ScoreKind::Nll {
        let _ = writeln!(r.md, "{}", txt::ANOMALY_NLL_NOTE);
    }
    let _ = writeln!(r.md, "\nScore histograms ({}) and ROC curves:", main.name());
    for c in corruptions {
        let png = format!("detect-{c}.png");
        if r.file(&png).is_file() {
            r.image(&png, &format!("scores against +{c}"));
        }
    }
    Ok(())
}

fn probe(
    r: &mut Report,
    model: &Model,
    cfg: &RunConfig,
    held: Option<&Dataset>,
    opts: &ReportOptions,
) -> Result<()> {
    let test = need(held)?;
    let (train, _) = run::load_transformed(&cfg.data.train, cfg, false)?;
    // At most 5,000 training examples: the probe's cost grows with examples x features x classes
    // (a DCGAN critic's features are 6,272-d); `deepgen probe` uses them all.
    let train = train.take(5000);
    let (Some(ytr), Some(yte)) = (&train.labels, &test.labels) else {
        return Err(Error::config("the data has no labels to probe with"));
    };
    let classes = ytr.iter().chain(yte).max().map(|m| *m as usize + 1).unwrap_or(0);
    if classes > 100 {
        return Err(Error::config(format!(
            "{classes} classes are too many for the report's linear probe (use deepgen probe)"
        )));
    }
    let (ftr, fd) = features::embed(model, &train)?;
    let (fte, _) = features::embed(model, test)?;
    let dev = model.device();
    let p = features::linear_probe((&ftr, ytr), (&fte, yte), fd, opts.seed, &dev)?;
    let raw =
        features::linear_probe((&train.x, ytr), (&test.x, yte), train.dim(), opts.seed, &dev)?;
    let what = model.info().features.unwrap_or("the model's features");
    let text = fill(
        txt::PROBE,
        &[
            ("what", what.to_string()),
            ("train", train.n.to_string()),
            ("test", test.n.to_string()),
            ("l2s", format!("{:?}", features::PROBE_L2)),
            ("model", model.name().to_string()),
            ("dim", p.dim.to_string()),
            ("l2", p.l2.to_string()),
            ("train_acc", format!("{:.2}", 100.0 * p.train_accuracy)),
            ("test_acc", format!("{:.2}", 100.0 * p.test_accuracy)),
            ("raw_dim", raw.dim.to_string()),
            ("raw_l2", raw.l2.to_string()),
            ("raw_train_acc", format!("{:.2}", 100.0 * raw.train_accuracy)),
            ("raw_test_acc", format!("{:.2}", 100.0 * raw.test_accuracy)),
        ],
    );
    let _ = writeln!(r.md, "{text}");
    r.summary.push(format!(
        "probe accuracy {:.2}% (raw pixels {:.2}%)",
        100.0 * p.test_accuracy,
        100.0 * raw.test_accuracy
    ));
    Ok(())
}

fn latent(
    r: &mut Report,
    model: &Model,
    cfg: &RunConfig,
    held: Option<&Dataset>,
    opts: &ReportOptions,
) -> Result<()> {
    if cfg.data.shape.len() != 3 {
        return Err(Error::config("interpolation grids are drawn for image data"));
    }
    for (spherical, name) in
        [(false, "interpolation-linear.png"), (true, "interpolation-slerp.png")]
    {
        let mut g = rng::derived(opts.seed, "interpolate", 0);
        let x = run::interpolate(model, held, 8, 10, spherical, &mut g)?;
        run::write_grid(model, cfg, &x, 10, &r.file(name))?;
    }
    let ends = if model.get::<Gan>().is_some() {
        "two noise draws"
    } else {
        "the codes of two held-out examples"
    };
    let _ = writeln!(
        r.md,
        "Each row walks from {ends} to the other in 10 steps: linear (left picture) and spherical \
            (right).\n\n![linear](interpolation-linear.png) ![spherical](interpolation-slerp.png)"
    );
    Ok(())
}

/// Caption consistency and R-precision of a text GAN, on the held-out captions and, for the
/// embedded digits' captions, on the held-out attribute combinations (`+seen` becomes `+unseen`).
fn text(
    r: &mut Report,
    model: &Model,
    cfg: &RunConfig,
    held: Option<&Dataset>,
    opts: &ReportOptions,
) -> Result<()> {
    let g = model.get::<TextGan>().ok_or_else(|| Error::config("not a text GAN"))?;
    let (cpath, classifier) = classifier_of(opts)?;
    let c = classifier
        .get::<Classifier>()
        .ok_or_else(|| Error::config(format!("{} is not a classifier run", cpath.display())))?;
    let matcher = opts.matcher.as_ref().and_then(|(_, m)| m.get::<crate::models::Matcher>());
    let held = need(held)?;
    let _ = writeln!(
        r.md,
        "Digits by the classifier `{}`; attributes measured on each image as the built-in \
        captions measure them; R-precision by {}.\n",
        cpath.display(),
        match &opts.matcher {
            Some((p, _)) => format!("the matcher `{}`", p.display()),
            None => "no matcher (give --matcher RUN)".into(),
        }
    );
    let s = crate::eval::captions::evaluate(g, c, matcher, held, held, opts.samples, opts.seed)?;
    r.md.push_str(&s.table(&format!("Held-out `{}`", held.source)));
    r.summary.push(s.line(&held.source));
    if let Some(spec) = held_out_spec(cfg).filter(|s| s.contains("+seen")) {
        let unseen = spec.replace("+seen", "+unseen");
        let scored = run::load_transformed(&unseen, cfg, false).and_then(|(d, _)| {
            crate::eval::captions::evaluate(g, c, matcher, &d, held, opts.samples, opts.seed)
        });
        r.md.push('\n');
        match scored {
            Ok(u) => {
                r.md.push_str(&u.table(&format!("Held-out attribute combinations `{unseen}`")));
                r.summary.push(u.line(&unseen));
            }
            Err(e) => {
                let _ = writeln!(r.md, "Held-out attribute combinations `{unseen}`: {e}.");
            }
        }
    }
    let mut rr = rng::derived(opts.seed, "text-grid", 0);
    let captions = crate::eval::captions::captions_for(held, 8, &mut rr)?;
    let rows: Vec<String> = captions.iter().flat_map(|t| vec![t.clone(); 8]).collect();
    let x = g.sample_captions(&rows, &mut rr)?;
    super::write_grid(model, cfg, &x, 8, &r.file("text.png"))?;
    r.image("text.png", "eight samples per held-out caption");
    let _ = writeln!(r.md, "Rows of `text.png`, top to bottom:\n");
    for (i, t) in captions.iter().enumerate() {
        let _ = writeln!(r.md, "{}. {t}", i + 1);
    }
    Ok(())
}

/// Class preservation, masked L1, mask IoU and FID of a puzzle GAN's wholes from the held-out
/// images' key patches, against the pasted-patches and nearest-training-image baselines.
fn assembly(
    r: &mut Report,
    model: &Model,
    cfg: &RunConfig,
    held: Option<&Dataset>,
    opts: &ReportOptions,
) -> Result<()> {
    let p = model.get::<PuzzleGan>().ok_or_else(|| Error::config("not a puzzle GAN"))?;
    let (cpath, classifier) = classifier_of(opts)?;
    let held = need(held)?;
    let (train, _) = run::load_transformed(&cfg.data.train, cfg, false)?;
    let s = crate::eval::assembly::evaluate(p, classifier, held, &train, opts.samples, opts.seed)?;
    let _ = writeln!(
        r.md,
        "Patches: {} of {} px per image of `{}`, placed on ink at random (seed {}); classes by \
        `{}`. The baselines see the patches' true places, the generator does not.\n",
        p.cfg.patches,
        p.cfg.patch_size,
        held.source,
        opts.seed,
        cpath.display()
    );
    r.md.push_str(&s.table());
    r.summary.push(s.line());
    super::assemble::from_data(model, cfg, held, 8, opts.seed, &r.file("assembly.png"))?;
    r.image("assembly.png", "patches, generated mask, whole and the source image per row");
    Ok(())
}

/// The classifier run of the sample-quality sections, or why there is none.
fn classifier_of(opts: &ReportOptions) -> Result<(&PathBuf, &Model)> {
    match &opts.classifier {
        Some((p, m)) => Ok((p, m)),
        None => Err(Error::config(
            opts.no_classifier
                .clone()
                .unwrap_or_else(|| "no classifier run given (--classifier DIR)".into()),
        )),
    }
}
