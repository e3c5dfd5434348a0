//! `deepgen eval` on a translation run (CycleGAN, StarGAN): does a translation land in the target
//! domain while keeping what should be kept? Every figure stands beside its baselines: the
//! identity map (the input, untranslated) and, where it is known, the true transform (synthetic
//! domains: the same held-out digit drawn in the target domain).
//!
//! - Label preservation: an independent digit classifier trained on the target domain's real
//!   images (`deepgen classifier train --data SPEC`) classifies the translations; the share
//!   given the input's digit.
//! - Attribute accuracy (StarGAN, as Choi et al. 2018 Sec. 5.4 measure it): per attribute, a
//!   classifier trained on real images (`--data SPEC+label=NAME`) reads the translation's value,
//!   compared with the target value.
//! - Cycle (CycleGAN: F(G(a)) against a) and reconstruction (StarGAN: G(G(x, c'), c) against x)
//!   L1, in [0, 1] pixel units.
//! - L1 against the true transform, when the held-out sets are paired (one base set, the same
//!   examples).
//! - FID on the target-domain classifier's features: translations of the first half of the
//!   held-out inputs against the real target images of the second half, beside the real first
//!   half (the floor at this sample size).
//!
//! Classifiers are found by the data they were trained on: those given with `--classifier`, and
//! every classifier run under `runs/`. A spec matches a domain when both agree once `+part=K/N`
//! and the split (`:test`) are dropped.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};

use super::translate::{self, encode};
use super::{RunConfig, RunDir};
use crate::data::attributes::{self, Attribute};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::eval::features::classify;
use crate::eval::quality::{frechet_distance, GaussianFit};
use crate::models::{Classifier, Domains, Model, Target, Translator};
use crate::rng::{self, Rng};

/// Held-out inputs translated (at most), to bound the time on 2 cores.
pub const MAX_INPUTS: usize = 2000;

/// A classifier run and the data spec it was trained on.
pub struct Known {
    pub path: PathBuf,
    pub spec: String,
    pub model: Model,
}

/// A spec with `+part=K/N` and the split dropped: what identifies a domain.
pub fn domain_of(spec: &str) -> String {
    let mut parts = spec.split('+');
    let base = parts.next().unwrap_or("");
    let base = base.strip_suffix(":test").or(base.strip_suffix(":train")).unwrap_or(base);
    let mut out = base.to_string();
    for m in parts.filter(|m| !m.starts_with("part=")) {
        out.push('+');
        out.push_str(m);
    }
    out
}

/// The classifier runs given and found under `runs/`, loaded on `dev` (the translation model's).
pub fn find_classifiers(given: &[PathBuf], runs: &Path, dev: &Device) -> Result<Vec<Known>> {
    let mut paths: Vec<PathBuf> = given.to_vec();
    if let Ok(rd) = std::fs::read_dir(runs) {
        let mut found: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        found.sort();
        paths.extend(found.into_iter().filter(|p| p.join("model.safetensors").is_file()));
    }
    let mut out: Vec<Known> = vec![];
    for p in paths {
        if out.iter().any(|k| k.path == p) {
            continue;
        }
        let explicit = given.contains(&p);
        let loaded = RunDir::open(&p).and_then(|d| {
            let cfg = d.read_config()?;
            let (m, _) = d.load_model(dev)?;
            Ok((cfg, m))
        });
        match loaded {
            Ok((cfg, m)) if m.get::<Classifier>().is_some() => {
                out.push(Known { path: p, spec: cfg.data.train, model: m })
            }
            Ok((_, m)) if explicit => {
                return Err(Error::config(format!(
                    "--classifier {}: holds a {} run, not a classifier",
                    p.display(),
                    m.name()
                )))
            }
            Err(e) if explicit => return Err(e),
            _ => {}
        }
    }
    Ok(out)
}

fn classifier_for<'a>(known: &'a [Known], spec: &str) -> Option<&'a Known> {
    let want = domain_of(spec);
    known.iter().find(|k| domain_of(&k.spec) == want)
}

fn missing(spec: &str) -> String {
    format!(
        "no classifier trained on `{}`: `deepgen classifier train --data {} --out runs/NAME`",
        domain_of(spec),
        domain_of(spec)
    )
}

/// The predicted class of each row under a classifier run.
pub fn predict(c: &Model, rows: &[f32], d: usize) -> Result<Vec<u32>> {
    let (probs, _, k, _) = classify(c, rows, d)?;
    Ok(probs.chunks(k).map(|p| crate::nn::argmax(p) as u32).collect())
}

pub fn share(pred: &[u32], want: &[u32]) -> f64 {
    pred.iter().zip(want).filter(|(p, w)| p == w).count() as f64 / want.len().max(1) as f64
}

pub fn mean_l1(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs() as f64).sum::<f64>() / a.len().max(1) as f64
}

/// FID between the classifier's features of rows `a` and `b`.
fn fid(c: &Model, a: &[f32], b: &[f32], d: usize) -> Result<f64> {
    let (_, fa, _, fd) = classify(c, a, d)?;
    let (_, fb, _, _) = classify(c, b, d)?;
    frechet_distance(&GaussianFit::new(&fa, fd)?, &GaussianFit::new(&fb, fd)?)
}

fn pct(v: f64) -> String {
    format!("{:.1} %", 100.0 * v)
}

/// The images each comparison classifies: the translations, the inputs (the identity map) and
/// the true images, when known.
struct Images<'a> {
    y: &'a [f32],
    x: &'a [f32],
    truth: Option<&'a [f32]>,
    d: usize,
}

/// Writes a table row: the share of translations, inputs and true images that classifier `c`
/// gives the values `want`; returns the first two.
fn scored_row(
    md: &mut String,
    what: &str,
    c: &Known,
    im: &Images,
    want: &[u32],
) -> Result<(f64, f64)> {
    let acc = share(&predict(&c.model, im.y, im.d)?, want);
    let ident = share(&predict(&c.model, im.x, im.d)?, want);
    let tru =
        im.truth.map(|tr| predict(&c.model, tr, im.d).map(|p| pct(share(&p, want)))).transpose()?;
    let _ = writeln!(
        md,
        "| {what} (`{}`) | {} | {} | {} |",
        c.path.display(),
        pct(acc),
        pct(ident),
        tru.unwrap_or_else(|| "-".into())
    );
    Ok((acc, ident))
}

/// Writes the table's header, the round trip's L1 (`back` against the inputs) and the L1 to the
/// true images when known; returns the round trip's.
fn l1_rows(md: &mut String, what: &str, back: &[f32], im: &Images) -> f64 {
    let _ = writeln!(
        md,
        "| measure | translation | identity map | true transform |\n|---|---|---|---|"
    );
    let round = mean_l1(back, im.x);
    let _ = writeln!(md, "| {what} | {round:.4} | 0 | 0 |");
    if let Some(tr) = im.truth {
        let (t, i) = (mean_l1(im.y, tr), mean_l1(im.x, tr));
        let _ = writeln!(md, "| L1 to the true image | {t:.4} | {i:.4} | 0 |");
    }
    round
}

/// What the translation section found.
pub struct Found {
    pub md: String,
    pub summary: Vec<String>,
}

/// Evaluates a translation run on its held-out data.
pub fn evaluate(
    cfg: &RunConfig,
    model: &Model,
    known: &[Known],
    n: usize,
    seed: u64,
) -> Result<Found> {
    let t = model.as_translator().ok_or_else(|| Error::config("not a translation run"))?;
    let mut f = Found { md: String::new(), summary: vec![] };
    let n = n.min(MAX_INPUTS);
    match t.domains() {
        Domains::Pair => {
            for reverse in [false, true] {
                cyclegan_direction(&mut f, cfg, model, t, known, n, reverse)?;
            }
        }
        Domains::Attributes(cols) => stargan(&mut f, cfg, model, t, &cols, known, n, seed)?,
    }
    Ok(f)
}

/// Where a chunk of inputs goes and how it comes back.
type Directions<'a> = &'a dyn Fn(&[usize]) -> Result<(Target, Target)>;

/// Translates rows in chunks: (translations, reconstructions), flat.
fn through(
    t: &dyn Translator,
    dev: &Device,
    data: &Dataset,
    idx: &[usize],
    to: Directions,
) -> Result<(Vec<f32>, Vec<f32>)> {
    let (mut y, mut r) = (vec![], vec![]);
    for chunk in idx.chunks(256) {
        let x = data.batch(chunk, dev)?;
        let (fwd, back) = to(chunk)?;
        let out = t.translate(&x, &fwd)?.clamp(0.0, 1.0)?;
        let rec = t.translate(&out, &back)?.clamp(0.0, 1.0)?;
        y.extend(out.flatten_all()?.to_vec1::<f32>()?);
        r.extend(rec.flatten_all()?.to_vec1::<f32>()?);
    }
    Ok((y, r))
}

fn rows(data: &Dataset, idx: &[usize]) -> Vec<f32> {
    idx.iter().flat_map(|&i| data.row(i).iter().copied()).collect()
}

/// Whether two held-out sets hold the same examples in two domains (one base set, the same
/// labels in order).
fn paired(a: &Dataset, b: &Dataset) -> bool {
    let base = |s: &str| s.split('+').next().unwrap_or("").to_string();
    base(&a.source) == base(&b.source) && a.n == b.n && a.labels.is_some() && a.labels == b.labels
}

fn cyclegan_direction(
    f: &mut Found,
    cfg: &RunConfig,
    model: &Model,
    t: &dyn Translator,
    known: &[Known],
    n: usize,
    reverse: bool,
) -> Result<()> {
    let (src_spec, dst_spec) =
        (translate::default_inputs(cfg, reverse), translate::default_inputs(cfg, !reverse));
    let (dst_train, name) = if reverse {
        (cfg.data.train.clone(), "B -> A")
    } else {
        (cfg.data.train_b.clone().unwrap_or_default(), "A -> B")
    };
    let src = translate::load_inputs(&src_spec, cfg, t)?;
    let dst = translate::load_inputs(&dst_spec, cfg, t)?;
    let n = n.min(src.n).min(dst.n);
    let idx: Vec<usize> = (0..n).collect();
    let d = src.dim();
    let (fwd, back) = if reverse { (Target::A, Target::B) } else { (Target::B, Target::A) };
    let (y, r) = through(t, &model.device(), &src, &idx, &|_| Ok((fwd.clone(), back.clone())))?;
    let x = rows(&src, &idx);
    let truth = paired(&src, &dst).then(|| rows(&dst, &idx));
    let _ = writeln!(f.md, "\n### {name}: {} -> {}\n", src.source, dst.source);
    let _ = writeln!(
        f.md,
        "{n} held-out inputs.{}\n",
        if truth.is_some() {
            " The two held-out sets are paired (the same digits), so the true transform is known."
        } else {
            " The sets are not paired: the true transform is unknown."
        }
    );
    let im = Images { y: &y, x: &x, truth: truth.as_deref(), d };
    let cyc = l1_rows(&mut f.md, "cycle L1 (pixels in [0, 1])", &r, &im);
    let mut summary = format!("{name}: cycle L1 {cyc:.4}");
    match (classifier_for(known, &dst_train), src.labels.as_ref()) {
        (Some(c), Some(labels)) => {
            let what = "label preservation (classifier of the target domain)";
            let (acc, ident) = scored_row(&mut f.md, what, c, &im, &labels[..n])?;
            let h = n / 2;
            if h >= 2 {
                let far = rows(&dst, &(h..2 * h).collect::<Vec<_>>());
                let fid_t = fid(&c.model, &y[..h * d], &far, d)?;
                let fid_i = fid(&c.model, &x[..h * d], &far, d)?;
                let floor = fid(&c.model, &rows(&dst, &(0..h).collect::<Vec<_>>()), &far, d)?;
                let _ = writeln!(
                    f.md,
                    "| FID on the classifier's features, {h} against {h} real target images | \
                    {fid_t:.2} | {fid_i:.2} | {floor:.2} (real target images) |"
                );
                summary.push_str(&format!(
                    ", label preservation {} (identity {}), FID {fid_t:.2} (floor {floor:.2})",
                    pct(acc),
                    pct(ident)
                ));
            }
        }
        (None, _) => {
            let _ = writeln!(f.md, "\n_Label preservation and FID: {}._", missing(&dst_train));
        }
        (_, None) => {
            let _ = writeln!(f.md, "\n_Label preservation: {} has no labels._", src.source);
        }
    }
    f.summary.push(summary);
    Ok(())
}

/// The grey digits behind a `...+attributes` spec, when that is its last modifier.
fn grey_base(spec: &str, cfg: &RunConfig) -> Option<Dataset> {
    let base = spec.strip_suffix("+attributes")?;
    let parsed: crate::data::DataSpec = base.parse().ok()?;
    let d = parsed.load(cfg.seed).ok()?;
    (d.shape.first() == Some(&1)).then_some(d)
}

#[allow(clippy::too_many_arguments)]
fn stargan(
    f: &mut Found,
    cfg: &RunConfig,
    model: &Model,
    t: &dyn Translator,
    cols: &[Attribute],
    known: &[Known],
    n: usize,
    seed: u64,
) -> Result<()> {
    use rand::Rng as _;
    let spec = translate::default_inputs(cfg, false);
    let data = translate::load_inputs(&spec, cfg, t)?;
    let n = n.min(data.n);
    let idx: Vec<usize> = (0..n).collect();
    let d = data.dim();
    let x = rows(&data, &idx);
    let dev = model.device();
    let xt = Tensor::from_vec(x.clone(), (n, d), &dev)?;
    let orig = translate::input_attributes(model, cols, &data, &xt, &idx)?;
    // Each input's target: every attribute drawn uniformly from its values (seeded).
    let mut r: Rng = rng::derived(seed, "translate-eval", 0);
    let target: Vec<Vec<u32>> =
        (0..n).map(|_| cols.iter().map(|c| r.gen_range(0..c.count() as u32)).collect()).collect();
    let (y, rec) = through(t, &dev, &data, &idx, &|chunk| {
        let tv: Vec<Vec<u32>> = chunk.iter().map(|&i| target[i].clone()).collect();
        let ov: Vec<Vec<u32>> = chunk.iter().map(|&i| orig[i].clone()).collect();
        Ok((Target::Encoded(encode(cols, &tv, &dev)?), Target::Encoded(encode(cols, &ov, &dev)?)))
    })?;
    let digits = cols == attributes::digit_columns().as_slice();
    let truth: Option<Vec<f32>> = match (digits, grey_base(&spec, cfg)) {
        (true, Some(g)) if g.n == data.n => {
            let (h, w) = (g.shape[1], g.shape[2]);
            let mut v = Vec::with_capacity(n * d);
            for (i, tv) in target.iter().enumerate() {
                v.extend(attributes::draw(g.row(i), h, w, tv)?);
            }
            Some(v)
        }
        _ => None,
    };
    let _ = writeln!(
        f.md,
        "\n{n} held-out inputs of {}, each translated to attributes drawn uniformly ({}).{}\n",
        data.source,
        attributes::describe(cols),
        if truth.is_some() {
            " The true image of each translation is known (the same digit drawn with the \
            target attributes)."
        } else {
            ""
        }
    );
    let im = Images { y: &y, x: &x, truth: truth.as_deref(), d };
    let rec_l1 = l1_rows(&mut f.md, "reconstruction L1, G(G(x, c'), c) against x", &rec, &im);
    let mut summary = format!("stargan: reconstruction L1 {rec_l1:.4}");
    let mut accs = vec![];
    for (j, c) in cols.iter().enumerate() {
        let label_spec = format!("{}+label={}", cfg.data.train, c.name);
        let Some(k) = classifier_for(known, &label_spec) else {
            let _ = writeln!(
                f.md,
                "| attribute `{}` accuracy | {} | | |",
                c.name,
                missing(&label_spec)
            );
            continue;
        };
        let want: Vec<u32> = target.iter().map(|v| v[j]).collect();
        let what = format!("attribute `{}` accuracy", c.name);
        let (acc, _) = scored_row(&mut f.md, &what, k, &im, &want)?;
        accs.push((c.name.clone(), acc));
    }
    if !accs.is_empty() {
        let mean = accs.iter().map(|a| a.1).sum::<f64>() / accs.len() as f64;
        summary.push_str(&format!(
            ", attribute accuracy {} ({})",
            pct(mean),
            accs.iter().map(|(n, a)| format!("{n} {}", pct(*a))).collect::<Vec<_>>().join(", ")
        ));
    }
    match (classifier_for(known, &cfg.data.train), data.labels.as_ref()) {
        (Some(c), Some(labels)) => {
            let (acc, _) = scored_row(&mut f.md, "label preservation", c, &im, &labels[..n])?;
            let h = n / 2;
            if h >= 2 {
                let far = x[h * d..2 * h * d].to_vec();
                let fid_t = fid(&c.model, &y[..h * d], &far, d)?;
                let floor = fid(&c.model, &x[..h * d], &far, d)?;
                let _ = writeln!(
                    f.md,
                    "| FID on the classifier's features, {h} against {h} real images | \
                    {fid_t:.2} | {floor:.2} (real images, the floor) | |"
                );
                summary.push_str(&format!(
                    ", label preservation {}, FID {fid_t:.2} (floor {floor:.2})",
                    pct(acc)
                ));
            }
        }
        (None, _) => {
            let _ = writeln!(f.md, "\n_Label preservation and FID: {}._", missing(&cfg.data.train));
        }
        (_, None) => {}
    }
    f.summary.push(summary);
    Ok(())
}
