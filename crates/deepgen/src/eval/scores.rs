//! Per-example anomaly scores of a trained model (higher = more anomalous)
//! and the detection workflow: split the normal data into a validation part
//! (threshold, reference statistics) and a test part, score both sets,
//! report AUROC / AUPRC / FPR@95 and the threshold's rates.

use crate::models::{Aae, Gan, Vae};
use std::io::Cursor;

use serde::{Deserialize, Serialize};

use super::anomaly::{self, Detection};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::models::{DensityModel, Model};
use crate::rng::{self, Rng};

pub use crate::models::ScoreKind;

impl ScoreKind {
    pub const ALL: [ScoreKind; 7] = [
        ScoreKind::Nll,
        ScoreKind::Bpd,
        ScoreKind::Elbo,
        ScoreKind::Recon,
        ScoreKind::Disc,
        ScoreKind::Typicality,
        ScoreKind::Complexity,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ScoreKind::Nll => "nll",
            ScoreKind::Bpd => "bpd",
            ScoreKind::Elbo => "elbo",
            ScoreKind::Recon => "recon",
            ScoreKind::Disc => "disc",
            ScoreKind::Typicality => "typicality",
            ScoreKind::Complexity => "complexity",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            ScoreKind::Nll => "negative log-likelihood (nats)",
            ScoreKind::Bpd => "negative log-likelihood (bits/dim)",
            ScoreKind::Elbo => "negative ELBO (nats)",
            ScoreKind::Recon => "reconstruction squared error",
            ScoreKind::Disc => "minus the discriminator's output",
            ScoreKind::Typicality => "distance of the NLL from the validation mean (nats)",
            ScoreKind::Complexity => "bits/dim minus PNG bits/dim",
        }
    }

    /// The kinds model `name` supports (its family says: [`crate::models::ModelInfo::scores`]), the
    /// default first.
    pub fn supported(name: &str) -> Vec<ScoreKind> {
        crate::models::info(name).map(|i| i.scores.to_vec()).unwrap_or_default()
    }
}

impl std::str::FromStr for ScoreKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        ScoreKind::ALL.into_iter().find(|k| k.name() == s).ok_or_else(|| {
            let names: Vec<&str> = ScoreKind::ALL.iter().map(|k| k.name()).collect();
            Error::config(format!("--score: unknown kind `{s}` (expected {})", names.join(", ")))
        })
    }
}

/// PNG-compressed size of each image in bits (8-bit grey levels, best compression).
fn png_bits(data: &Dataset) -> Result<Vec<f64>> {
    let [c, h, w] = data.shape[..] else {
        return Err(Error::config(format!(
            "{}: the complexity score needs images, not examples of shape {:?}",
            data.source, data.shape
        )));
    };
    let mut out = Vec::with_capacity(data.n);
    for i in 0..data.n {
        let row = data.row(i);
        // Channels side by side as one grey image (C planes of H x W).
        let mut pix = vec![0u8; c * h * w];
        for ch in 0..c {
            for y in 0..h {
                for x in 0..w {
                    pix[y * c * w + ch * w + x] =
                        (row[(ch * h + y) * w + x].clamp(0.0, 1.0) * 255.0).round() as u8;
                }
            }
        }
        let mut buf = Vec::new();
        let enc = image::codecs::png::PngEncoder::new_with_quality(
            Cursor::new(&mut buf),
            image::codecs::png::CompressionType::Best,
            image::codecs::png::FilterType::Adaptive,
        );
        image::ImageEncoder::write_image(
            enc,
            &pix,
            (c * w) as u32,
            h as u32,
            image::ExtendedColorType::L8,
        )
        .map_err(|e| {
            Error::config(format!("{}: PNG encoding of example {i} failed: {e}", data.source))
        })?;
        out.push(buf.len() as f64 * 8.0);
    }
    Ok(out)
}

impl ScoreKind {
    /// The score computed by the model that this kind is derived from (bpd, typicality and
    /// complexity come from nll).
    pub fn base(self) -> ScoreKind {
        match self {
            ScoreKind::Bpd | ScoreKind::Typicality | ScoreKind::Complexity => ScoreKind::Nll,
            k => k,
        }
    }
}

/// The model's base scores of `data` (already in the model's units: the
/// run's transforms applied; `log_det` is the transform's log-determinant,
/// see `run::load_transformed`): nll, elbo, recon or disc.
pub fn base_score(
    model: &Model,
    data: &Dataset,
    log_det: f64,
    kind: ScoreKind,
    rng: &mut Rng,
) -> Result<Vec<f64>> {
    model.check_dim(data.dim(), &data.source)?;
    let supported = ScoreKind::supported(model.name());
    if !supported.contains(&kind) {
        let ok: Vec<&str> = supported.iter().map(|k| k.name()).collect();
        return Err(Error::config(format!(
            "--score {}: the {} model cannot give it (it supports: {})",
            kind.name(),
            model.name(),
            if ok.is_empty() { "none".to_string() } else { ok.join(", ") }
        )));
    }
    let dev = model.device();
    let mut out = Vec::with_capacity(data.n);
    let idx: Vec<usize> = (0..data.n).collect();
    for chunk in idx.chunks(256) {
        let x = data.batch(chunk, &dev)?;
        let v: Vec<f32> = match kind.base() {
            ScoreKind::Elbo => {
                let vae =
                    model.get::<Vae>().ok_or_else(|| Error::config("--score elbo needs a VAE"))?;
                let e = vae.elbo(&x, rng)?;
                (e.recon + e.kl)?.affine(1.0, -log_det)?.to_vec1()?
            }
            ScoreKind::Recon => {
                let r = match (model.get::<Vae>(), model.get::<Aae>()) {
                    (Some(v), _) => v.reconstruct(&x)?,
                    (_, Some(a)) => a.decode(&a.encode(&x)?)?,
                    _ => {
                        return Err(Error::config("--score recon needs an autoencoder (vae, aae)"))
                    }
                };
                (r - &x)?.sqr()?.sum(1)?.to_vec1()?
            }
            ScoreKind::Disc => {
                let g =
                    model.get::<Gan>().ok_or_else(|| Error::config("--score disc needs a GAN"))?;
                g.critic_value(&x)?.neg()?.to_vec1()?
            }
            _ => model.log_prob(&x, rng)?.affine(-1.0, -log_det)?.to_vec1()?,
        };
        out.extend(v.into_iter().map(|s| s as f64));
    }
    if let Some(i) = out.iter().position(|v| !v.is_finite()) {
        return Err(Error::config(format!(
            "{}: the {} score of example {i} is not finite",
            data.source,
            kind.base().name()
        )));
    }
    Ok(out)
}

/// Turns base scores into `kind` (bits/dim; |nll - reference| for
/// typicality; bits/dim minus PNG bits/dim for complexity).
pub fn derive(
    kind: ScoreKind,
    base: &[f64],
    data: &Dataset,
    reference: Option<f64>,
) -> Result<Vec<f64>> {
    let d = data.dim() as f64;
    let ln2 = std::f64::consts::LN_2;
    Ok(match kind {
        ScoreKind::Bpd => base.iter().map(|s| s / (d * ln2)).collect(),
        ScoreKind::Typicality => {
            let r = reference.ok_or_else(|| {
                Error::config(
                    "the typicality score needs the \
                validation mean NLL (a threshold file from `deepgen detect`)",
                )
            })?;
            base.iter().map(|s| (s - r).abs()).collect()
        }
        ScoreKind::Complexity => {
            base.iter().zip(png_bits(data)?).map(|(s, l)| (s / ln2 - l) / d).collect()
        }
        _ => base.to_vec(),
    })
}

/// Scores of `data` of any kind; typicality needs `reference` (the validation mean NLL).
pub fn score_with_reference(
    model: &Model,
    data: &Dataset,
    log_det: f64,
    kind: ScoreKind,
    reference: Option<f64>,
    rng: &mut Rng,
) -> Result<Vec<f64>> {
    if !ScoreKind::supported(model.name()).contains(&kind) {
        // The message that says what the model supports.
        base_score(model, data, log_det, kind, rng)?;
    }
    let base = base_score(model, data, log_det, kind.base(), rng)?;
    derive(kind, &base, data, reference)
}

/// Scores of `data` of any kind but typicality (which needs a reference: [`score_with_reference`]).
pub fn score(
    model: &Model,
    data: &Dataset,
    log_det: f64,
    kind: ScoreKind,
    rng: &mut Rng,
) -> Result<Vec<f64>> {
    score_with_reference(model, data, log_det, kind, None, rng)
}

/// A saved detector: `threshold.json`, what `--threshold-from` reads.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Threshold {
    pub score: ScoreKind,
    /// Flag an example when its score is above this.
    pub threshold: f64,
    /// The false-positive rate the threshold was chosen for, on the validation split.
    pub target_fpr: f64,
    /// Typicality: the validation mean NLL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<f64>,
    /// The normal data and the run it was chosen on.
    pub data: String,
    pub run: String,
}

impl Threshold {
    pub fn read(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let t: Threshold = serde_json::from_str(&text).map_err(|e| {
            Error::bad_file(path.display().to_string(), format!("not a threshold file: {e}"))
        })?;
        if !t.threshold.is_finite() {
            return Err(Error::bad_file(path.display().to_string(), "the threshold is not finite"));
        }
        Ok(t)
    }
}

/// Everything `deepgen detect` measures.
#[derive(Debug, Clone)]
pub struct DetectReport {
    pub kind: ScoreKind,
    pub detection: Detection,
    pub threshold: Threshold,
    /// Shares flagged at the threshold: normal validation, normal test, anomalies (= TPR).
    pub val_fpr: f64,
    pub test_fpr: f64,
    pub tpr: f64,
    /// Scores: normal validation, normal test, anomalies.
    pub val: Vec<f64>,
    pub normal: Vec<f64>,
    pub anomalous: Vec<f64>,
    /// Indices (into the normal set) of the validation and test parts.
    pub val_idx: Vec<usize>,
    pub test_idx: Vec<usize>,
}

/// The normal data split into a validation part (threshold, typicality
/// reference) and a test part, with the model's base scores of both, so
/// several anomaly sets and derived kinds reuse one scoring pass.
pub struct NormalScores {
    pub val_idx: Vec<usize>,
    pub test_idx: Vec<usize>,
    val_set: Dataset,
    test_set: Dataset,
    val_base: Vec<f64>,
    test_base: Vec<f64>,
    base: ScoreKind,
    source: String,
    shape: Vec<usize>,
}

impl NormalScores {
    /// Splits `normal` (validation share `val_fraction`, permutation seeded by `seed`) and scores
    /// both parts.
    pub fn new(
        model: &Model,
        normal: &Dataset,
        log_det: f64,
        base: ScoreKind,
        val_fraction: f64,
        seed: u64,
    ) -> Result<Self> {
        if !(val_fraction > 0.0 && val_fraction < 1.0) {
            return Err(Error::config(format!(
                "--val-fraction must be between 0 and 1, got {val_fraction}"
            )));
        }
        if normal.n < 2 {
            return Err(Error::config(format!(
                "{}: needs at least 2 normal examples (validation and test), has {}",
                normal.source, normal.n
            )));
        }
        let n_val = ((normal.n as f64 * val_fraction).round() as usize).clamp(1, normal.n - 1);
        let perm = rng::permutation(&mut rng::derived(seed, "detect-split", 0), normal.n);
        let (mut val_idx, mut test_idx) = (perm[..n_val].to_vec(), perm[n_val..].to_vec());
        val_idx.sort_unstable();
        test_idx.sort_unstable();
        let subset = |idx: &[usize]| -> Result<Dataset> {
            let x: Vec<f32> = idx.iter().flat_map(|&i| normal.row(i).iter().copied()).collect();
            Dataset::new(
                normal.source.clone(),
                x,
                normal.shape.clone(),
                normal.labels.as_ref().map(|l| idx.iter().map(|&i| l[i]).collect()),
            )
        };
        let (val_set, test_set) = (subset(&val_idx)?, subset(&test_idx)?);
        let mut r = rng::derived(seed, "detect-score", 0);
        let val_base = base_score(model, &val_set, log_det, base, &mut r)?;
        let test_base = base_score(model, &test_set, log_det, base, &mut r)?;
        Ok(Self {
            val_idx,
            test_idx,
            val_set,
            test_set,
            val_base,
            test_base,
            base,
            source: normal.source.clone(),
            shape: normal.shape.clone(),
        })
    }

    /// Detection of `anomalies` with score `kind` (derived from the base scores), threshold at
    /// `target_fpr`.
    #[allow(clippy::too_many_arguments)]
    pub fn against(
        &self,
        model: &Model,
        anomalies: &Dataset,
        log_det: f64,
        kind: ScoreKind,
        target_fpr: f64,
        seed: u64,
        run: &str,
    ) -> Result<DetectReport> {
        if kind.base() != self.base {
            return Err(Error::config(format!(
                "the normal data was scored by {}, not {}",
                self.base.name(),
                kind.base().name()
            )));
        }
        if anomalies.shape != self.shape {
            return Err(Error::Shape(format!(
                "{} has examples of shape {:?} but {} has {:?}",
                anomalies.source, anomalies.shape, self.source, self.shape
            )));
        }
        let mut r = rng::derived(seed, "detect-anomalies", 0);
        let anom_base = base_score(model, anomalies, log_det, self.base, &mut r)?;
        self.report(&anom_base, anomalies, kind, target_fpr, run)
    }

    /// The report for anomalies already scored (`anom_base`, base kind).
    pub fn report(
        &self,
        anom_base: &[f64],
        anomalies: &Dataset,
        kind: ScoreKind,
        target_fpr: f64,
        run: &str,
    ) -> Result<DetectReport> {
        let reference = (kind == ScoreKind::Typicality)
            .then(|| self.val_base.iter().sum::<f64>() / self.val_base.len() as f64);
        let val = derive(kind, &self.val_base, &self.val_set, reference)?;
        let normal_s = derive(kind, &self.test_base, &self.test_set, reference)?;
        let anom_s = derive(kind, anom_base, anomalies, reference)?;
        let detection = anomaly::detection(&normal_s, &anom_s)?;
        let t = anomaly::threshold_at_fpr(&val, target_fpr)?;
        let threshold = Threshold {
            score: kind,
            threshold: t,
            target_fpr,
            reference,
            data: self.source.clone(),
            run: run.to_string(),
        };
        Ok(DetectReport {
            kind,
            detection,
            val_fpr: anomaly::flagged_share(&val, t),
            test_fpr: anomaly::flagged_share(&normal_s, t),
            tpr: anomaly::flagged_share(&anom_s, t),
            threshold,
            val,
            normal: normal_s,
            anomalous: anom_s,
            val_idx: self.val_idx.clone(),
            test_idx: self.test_idx.clone(),
        })
    }
}

/// Splits `normal` into validation (`val_fraction`, seeded by `seed`) and
/// test parts, scores them and `anomalies`, and picks the threshold at
/// `target_fpr` on the validation scores. `run` names the run in the threshold file.
#[allow(clippy::too_many_arguments)]
pub fn detect(
    model: &Model,
    normal: &Dataset,
    anomalies: &Dataset,
    log_det: f64,
    kind: ScoreKind,
    val_fraction: f64,
    target_fpr: f64,
    seed: u64,
    run: &str,
) -> Result<DetectReport> {
    if normal.shape != anomalies.shape {
        return Err(Error::Shape(format!(
            "{} has examples of shape {:?} but {} has {:?}",
            anomalies.source, anomalies.shape, normal.source, normal.shape
        )));
    }
    if !ScoreKind::supported(model.name()).contains(&kind) {
        base_score(model, normal, log_det, kind, &mut rng::rng(seed))?;
    }
    NormalScores::new(model, normal, log_det, kind.base(), val_fraction, seed)?
        .against(model, anomalies, log_det, kind, target_fpr, seed, run)
}
