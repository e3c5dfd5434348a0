//! The anomaly-detection workflow of `deepgen detect`, as a library call:
//! measure detection of anomalous data against normal data (AUROC, AUPRC,
//! FPR at 95 % TPR, a threshold, written to `RUN/detect/`), or flag new data
//! with a saved threshold.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{open_on, transform, RunConfig};
use crate::error::{Error, Result};
use crate::eval::scores::{self, ScoreKind, Threshold};
use crate::files::atomic_write;
use crate::models::Model;
use crate::rng;

/// Everything `deepgen detect` takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct DetectOptions {
    /// Run directory.
    pub run: PathBuf,
    /// Normal data; split into a validation part (threshold) and a test part [default: the
    /// run's held-out data].
    #[arg(long)]
    pub data: Option<String>,
    /// Anomalous data, e.g. mnist:test+only=3, mnist:test+invert, png:DIR.
    #[arg(long)]
    pub anomalies: Option<String>,
    /// Score: nll, bpd, elbo, recon, disc, typicality or complexity [default: the model's
    /// first, see deepgen models].
    #[arg(long)]
    pub score: Option<String>,
    /// Flag --data with the threshold saved in a threshold.json (or a directory holding one)
    /// instead of measuring.
    #[arg(long)]
    pub threshold_from: Option<PathBuf>,
    /// Share of the normal data used to choose the threshold.
    #[arg(long, default_value_t = 0.5)]
    pub val_fraction: f64,
    /// False-positive rate the threshold is chosen for, on the validation part.
    #[arg(long, default_value_t = 0.05)]
    pub target_fpr: f64,
    /// Output directory [default: RUN/detect]; with --threshold-from, the CSV of flags
    /// [default: RUN/flags.csv].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Seed for the split and stochastic scores [default: the run's seed].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Device for the model: cpu, cuda or cuda:N (a build with the cuda feature) [default: cpu].
    #[arg(long)]
    #[serde(default)]
    pub device: Option<String>,
}

/// The run's held-out spec (its validation data, or the held-out split of its training data).
pub fn held_out(cfg: &RunConfig, run: &Path) -> Result<String> {
    super::report::held_out_spec(cfg).ok_or_else(|| {
        Error::config(format!("{}: the run has no held-out data; pass --data", run.display()))
    })
}

/// The score `--score` names, or the model's first.
fn score_kind(a: Option<&str>, model: &Model) -> Result<ScoreKind> {
    match a {
        Some(s) => s.parse(),
        None => model.info().scores.first().copied().ok_or_else(|| {
            Error::config(format!("the {} model gives no anomaly score", model.name()))
        }),
    }
}

/// `threshold.json` from a file, or from a run (or detect output) directory holding one.
fn read_threshold(p: &Path) -> Result<(PathBuf, Threshold)> {
    let file = if p.is_dir() {
        [p.join("threshold.json"), p.join("detect/threshold.json")]
            .into_iter()
            .find(|f| f.is_file())
            .ok_or_else(|| {
                Error::config(format!(
                    "{}: no threshold.json here (write one with deepgen detect ... --anomalies \
                        SPEC)",
                    p.display()
                ))
            })?
    } else {
        p.to_path_buf()
    };
    let t = Threshold::read(&file)?;
    Ok((file, t))
}

/// Runs `deepgen detect`; returns the lines to print.
pub fn detect(a: &DetectOptions) -> Result<Vec<String>> {
    let (dir, cfg, model) = open_on(&a.run, &super::device(a.device.as_deref())?)?;
    let spec = match &a.data {
        Some(s) => s.clone(),
        None => held_out(&cfg, &a.run)?,
    };
    let (normal, log_det) = transform::load_transformed(&spec, &cfg, false)?;
    model.check_dim(normal.dim(), &normal.source)?;
    let seed = a.seed.unwrap_or(cfg.seed);
    if let Some(from) = &a.threshold_from {
        let out = a.out.clone().unwrap_or_else(|| dir.file("flags.csv"));
        return flag(a, from, &model, &normal, log_det, seed, &out);
    }
    let anom_spec = a.anomalies.as_ref().ok_or_else(|| {
        Error::config(
            "give --anomalies SPEC (to measure detection) or --threshold-from \
            RUN_OR_FILE (to flag new data)",
        )
    })?;
    let (anom, _) = transform::load_transformed(anom_spec, &cfg, false)?;
    if anom.shape != normal.shape {
        return Err(Error::config(format!(
            "{}: examples of shape {:?}, but the normal data {} has {:?}",
            anom.source, anom.shape, normal.source, normal.shape
        )));
    }
    let kind = score_kind(a.score.as_deref(), &model)?;
    let t0 = std::time::Instant::now();
    let run_name = a.run.display().to_string();
    let rep = scores::detect(
        &model,
        &normal,
        &anom,
        log_det,
        kind,
        a.val_fraction,
        a.target_fpr,
        seed,
        &run_name,
    )?;
    let secs = t0.elapsed().as_secs_f64();
    let out = a.out.clone().unwrap_or_else(|| dir.file("detect"));
    std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
    let mut csv = format!("set,index,{},anomalous\n", kind.name());
    let t = rep.threshold.threshold;
    for (set, idx, s) in
        [("normal-validation", &rep.val_idx, &rep.val), ("normal-test", &rep.test_idx, &rep.normal)]
    {
        for (i, v) in idx.iter().zip(s) {
            let _ = writeln!(csv, "{set},{i},{v},{}", u8::from(*v > t));
        }
    }
    for (i, v) in rep.anomalous.iter().enumerate() {
        let _ = writeln!(csv, "anomaly,{i},{v},{}", u8::from(*v > t));
    }
    atomic_write(&out.join("scores.csv"), csv.as_bytes())?;
    atomic_write(&out.join("threshold.json"), json_bytes(&rep.threshold)?.as_slice())?;
    let d = &rep.detection;
    let title = format!("{} ({}): {} vs {}", model.name(), kind.name(), normal.source, anom.source);
    crate::viz::detection_plot(
        &title,
        &rep.normal,
        &rep.anomalous,
        t,
        &d.roc,
        d.auroc,
        &out.join("detect.png"),
    )?;
    let json = serde_json::json!({
        "score": kind.name(), "normal": normal.source, "anomalies": anom.source,
        "n_validation": rep.val.len(), "n_normal_test": rep.normal.len(),
        "n_anomalies": rep.anomalous.len(),
        "auroc": d.auroc, "auprc": d.auprc, "fpr_at_95_tpr": d.fpr_at_95_tpr,
        "threshold": t, "target_fpr": a.target_fpr, "validation_fpr": rep.val_fpr,
        "test_fpr": rep.test_fpr, "tpr_at_threshold": rep.tpr,
    });
    atomic_write(&out.join("detect.json"), json_bytes(&json)?.as_slice())?;
    Ok(vec![
        format!(
            "{} ({}): normal {} ({} validation, {} test), anomalies {} ({}): AUROC {:.4}, AUPRC \
                {:.4}, FPR at 95% TPR {:.4}",
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
        ),
        format!(
            "threshold {:.4} (target false-positive rate {:.1} % on validation: {:.1} %): flags \
                {:.1} % of the normal test part and {:.1} % of the anomalies; scored in {secs:.1} \
                s",
            t,
            100.0 * a.target_fpr,
            100.0 * rep.val_fpr,
            100.0 * rep.test_fpr,
            100.0 * rep.tpr
        ),
        format!("wrote {} (scores.csv, threshold.json, detect.json, detect.png)", out.display()),
    ])
}

fn json_bytes<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(v).map_err(|e| Error::config(format!("cannot write JSON: {e}")))
}

/// Deployment: a saved threshold applied to new data, one flag per example in `out`.
fn flag(
    a: &DetectOptions,
    from: &Path,
    model: &Model,
    normal: &crate::data::Dataset,
    log_det: f64,
    seed: u64,
    out: &Path,
) -> Result<Vec<String>> {
    if a.anomalies.is_some() {
        return Err(Error::config(
            "--threshold-from scores new data with a saved threshold; it takes no --anomalies",
        ));
    }
    let (file, t) = read_threshold(from)?;
    if let Some(k) = &a.score {
        if k.parse::<ScoreKind>()? != t.score {
            return Err(Error::config(format!(
                "--score {k} differs from the score of {} ({})",
                file.display(),
                t.score.name()
            )));
        }
    }
    let mut r = rng::derived(seed, "detect-score", 0);
    let s = scores::score_with_reference(model, normal, log_det, t.score, t.reference, &mut r)?;
    let mut csv = format!("index,{},anomalous\n", t.score.name());
    let mut flagged = 0;
    for (i, v) in s.iter().enumerate() {
        let f = *v > t.threshold;
        flagged += usize::from(f);
        let _ = writeln!(csv, "{i},{v},{}", u8::from(f));
    }
    atomic_write(out, csv.as_bytes())?;
    Ok(vec![format!(
        "{}: {flagged} of {} examples flagged as anomalous ({:.1} %) with {} > {:.4} (from {}, \
            chosen for a {:.1} % false-positive rate on {}); wrote {}",
        normal.source,
        normal.n,
        100.0 * flagged as f64 / normal.n as f64,
        t.score.name(),
        t.threshold,
        file.display(),
        100.0 * t.target_fpr,
        t.data,
        out.display()
    )])
}
