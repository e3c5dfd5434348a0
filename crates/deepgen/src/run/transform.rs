//! A run's data transforms (standardisation, binarization) applied to any
//! data spec, and scoring under them.

use super::RunConfig;
use crate::data::{Binarize, DataSpec, Dataset};
use crate::error::{Error, Result};
use crate::eval::{self, NllReport};
use crate::models::Model;
use crate::models::ModelConfig;
use crate::rng::{self, Rng};

/// Loads a spec and applies the run's transforms (binarization, standardisation).
/// Returns the data and the log-determinant (nats per example) that the
/// transform adds to log-densities of the original values.
pub fn load_transformed(spec: &str, cfg: &RunConfig, for_training: bool) -> Result<(Dataset, f64)> {
    let parsed: DataSpec = spec.parse()?;
    let mut d = parsed.load(cfg.seed)?;
    apply_transforms(&mut d, cfg, for_training)
}

/// Applies the run's transforms to `d` (see [`load_transformed`]).
pub fn apply_transforms(
    d: &mut Dataset,
    cfg: &RunConfig,
    for_training: bool,
) -> Result<(Dataset, f64)> {
    let mut log_det = 0.0;
    if !cfg.data.mean.is_empty() {
        d.standardize(&cfg.data.mean, &cfg.data.std)?;
        log_det = -cfg.data.std.iter().map(|s| (*s as f64).ln()).sum::<f64>();
    }
    // Dynamic binarization draws per batch during training; evaluation data gets a static one.
    let how = match cfg.data.binarize {
        Binarize::Dynamic if !for_training => Binarize::Static,
        b => b,
    };
    d.binarize(how, static_seed(cfg.seed, &d.source))?;
    if cfg.model.needs_binary() && !(for_training && how == Binarize::Dynamic) && !d.is_binary() {
        return Err(Error::config(format!(
            "{}: the {} model needs binary data; pass --binarize static, dynamic or threshold",
            d.source,
            cfg.model.name()
        )));
    }
    if cfg.model.needs_grey_levels() {
        if let Some(v) = d.x.iter().find(|v| !(0.0..=1.0).contains(*v)) {
            return Err(Error::config(format!(
                "{}: the {} model's softmax output reads 256 grey \
                levels in [0, 1], but the data has the value {v}",
                d.source,
                cfg.model.name()
            )));
        }
    }
    Ok((d.clone(), log_det))
}

/// The static-binarization seed of one data set: fixed by the run seed and the source.
fn static_seed(seed: u64, source: &str) -> u64 {
    let mut r = rng::derived(seed, &format!("static-binarization:{source}"), 0);
    rand::Rng::gen(&mut r)
}

/// Examples scored per batch by `deepgen score` and the service.
pub const SCORE_BATCH: usize = 256;

/// The mean NLL of `data` with the run's transforms undone in the density.
pub fn score(
    model: &Model,
    data: &Dataset,
    log_det: f64,
    batch: usize,
    rng: &mut Rng,
) -> Result<NllReport> {
    Ok(eval::nll(model, data, batch, rng)?.shifted(log_det))
}

/// The line `deepgen score` and `deepgen train` print for a held-out score.
pub fn nll_line(model: &Model, source: &str, rep: &NllReport, cfg: &RunConfig) -> String {
    let how = match &model.config {
        ModelConfig::Vae(c) => format!("importance-weighted bound, k={}", c.iw_samples),
        ModelConfig::Made(c) if c.masks > 1 => {
            format!("exact, of the ensemble: the mean probability over {} mask sets", c.masks)
        }
        ModelConfig::Rnade(_) => "exact density".to_string(),
        _ => "exact".to_string(),
    };
    let bin = match cfg.data.binarize {
        Binarize::None => String::new(),
        Binarize::Threshold => ", thresholded at 0.5".to_string(),
        _ => format!(", static binarization with seed {}", cfg.seed),
    };
    let n = rep.log_prob.len();
    format!(
        "{source}: {n} examples, mean NLL {:.3} nats, {:.4} bits/dim ({how}{bin})",
        rep.nats, rep.bits_per_dim
    )
}

/// `deepgen score --out`: one line per example, `index,log_prob_nats,bits_per_dim`.
pub fn write_scores_csv(rep: &NllReport, out: &std::path::Path) -> Result<()> {
    let mut s = String::from("index,log_prob_nats,bits_per_dim\n");
    for (i, lp) in rep.log_prob.iter().enumerate() {
        s.push_str(&format!("{i},{lp},{}\n", rep.bpd(*lp)));
    }
    crate::files::atomic_write(out, s.as_bytes())
}

/// Examples `[n, D]` as `.csv` (one row each) or `.npy` (shape `[n, ..shape]`), by `out`'s
/// extension.
pub fn write_rows(x: &candle_core::Tensor, shape: &[usize], out: &std::path::Path) -> Result<()> {
    let v = x.flatten_all()?.to_vec1::<f32>()?;
    let d: usize = shape.iter().product();
    let ext = out.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    let bytes = match ext.as_str() {
        "csv" => v
            .chunks(d.max(1))
            .map(|r| r.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(",") + "\n")
            .collect::<String>()
            .into_bytes(),
        "npy" => {
            let mut full = vec![x.dim(0)?];
            full.extend_from_slice(shape);
            crate::data::npy::encode_f32(&full, &v)
        }
        _ => {
            return Err(Error::config(format!(
                "{}: unknown output type (use .csv or .npy)",
                out.display()
            )))
        }
    };
    crate::files::atomic_write(out, &bytes)
}
