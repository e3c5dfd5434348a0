//! The train / sample / score workflow on run directories, shared by the CLI
//! and by programs that embed deepgen: data preparation with the run's
//! transforms, hooks that write metrics and checkpoints, and the pictures a
//! finished run leaves behind.

use std::path::Path;

use candle_core::{Device, Tensor};

use crate::data::{Binarize, DataSpec, Dataset};
use crate::error::{Error, Result};
use crate::eval::{self, NllReport};
use crate::models::{Model, Sampler};
use crate::rng::{self, Rng};
use crate::train::{Adam, Hooks, RunConfig, RunDir, StepRecord};
use crate::viz;

/// Loads a spec and applies the run's transforms (binarization, standardisation).
/// Returns the data and the log-determinant (nats per example) that the
/// transform adds to log-densities of the original values.
pub fn load_transformed(spec: &str, cfg: &RunConfig, for_training: bool) -> Result<(Dataset, f64)> {
    let parsed: DataSpec = spec.parse()?;
    let mut d = parsed.load(cfg.seed)?;
    apply_transforms(&mut d, cfg, for_training)
}

/// Applies the run's transforms to `d` (see [`load_transformed`]).
pub fn apply_transforms(d: &mut Dataset, cfg: &RunConfig, for_training: bool) -> Result<(Dataset, f64)> {
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
    Ok((d.clone(), log_det))
}

/// The static-binarization seed of one data set: fixed by the run seed and the source.
fn static_seed(seed: u64, source: &str) -> u64 {
    let mut r = rng::derived(seed, &format!("static-binarization:{source}"), 0);
    rand::Rng::gen(&mut r)
}

/// Writes metrics and checkpoints as training goes, and reports progress.
pub struct RunHooks<'a> {
    pub dir: &'a RunDir,
    pub seed: u64,
    pub on_step: Box<dyn FnMut(&StepRecord) + Send + 'a>,
    pub on_eval: Box<dyn FnMut(usize, f64) + Send + 'a>,
}

impl Hooks for RunHooks<'_> {
    fn on_step(&mut self, r: &StepRecord) -> Result<()> {
        let mut v = serde_json::json!({"step": r.step, "loss": r.loss, "lr": r.lr, "grad_norm": r.grad_norm});
        for (k, x) in &r.parts {
            v[k] = serde_json::json!(x);
        }
        self.dir.append_metrics(&v)?;
        (self.on_step)(r);
        Ok(())
    }
    fn on_eval(&mut self, step: usize, val_nll: f64) -> Result<()> {
        self.dir.append_metrics(&serde_json::json!({"step": step, "val_nll": val_nll}))?;
        (self.on_eval)(step, val_nll);
        Ok(())
    }
    fn on_checkpoint(&mut self, model: &Model, opt: &Adam) -> Result<()> {
        self.dir.save(model, opt, self.seed)
    }
}

/// Writes `n` samples to `path`: a PNG grid for images, a scatter plot for
/// 2-D data, CSV rows otherwise (or whenever the name ends in `.csv`).
/// With `mean`, latent-variable models show decoder means instead of draws.
/// The example shape comes from the run config; `background`, for 2-D data,
/// gives the data points drawn behind the samples.
pub fn write_samples(model: &Model, cfg: &RunConfig, n: usize, mean: bool, rng: &mut Rng, path: &Path, background: Option<&Dataset>) -> Result<()> {
    let dim_only = [model.config.dim()];
    let shape: &[usize] = if cfg.data.shape.is_empty() { &dim_only } else { &cfg.data.shape };
    let x = match (mean, model.as_vae()) {
        (true, Some(v)) => v.sample_mean(n, rng)?,
        _ => model.sample(n, rng)?,
    };
    let mut v = x.flatten_all()?.to_vec1::<f32>()?;
    // Undo standardisation so samples are in the data's units.
    if !cfg.data.mean.is_empty() {
        let d = cfg.data.mean.len();
        for (k, x) in v.iter_mut().enumerate() {
            *x = *x * cfg.data.std[k % d] + cfg.data.mean[k % d];
        }
    }
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    let dim: usize = shape.iter().product();
    match ext.as_str() {
        "png" if shape.len() == 3 => viz::image_grid(&v, n, shape, (n as f64).sqrt().ceil() as usize, 2, path),
        "png" if dim == 2 => {
            let pts: Vec<[f32; 2]> = v.chunks(2).map(|c| [c[0], c[1]]).collect();
            let dpts: Vec<[f32; 2]> = background.map(|d| d.x.chunks(2).take(2000).map(|c| [c[0], c[1]]).collect()).unwrap_or_default();
            viz::scatter_2d(&format!("{} samples (blue) and data (grey)", model.name()), &dpts, &pts, path)
        }
        "png" => Err(Error::config(format!("{}: examples of shape {shape:?} are neither images nor 2-D points; write samples to a .csv", path.display()))),
        "csv" => {
            let mut s = String::new();
            for row in v.chunks(dim) {
                let cells: Vec<String> = row.iter().map(|x| x.to_string()).collect();
                s.push_str(&cells.join(","));
                s.push('\n');
            }
            crate::train::checkpoint::atomic_write(path, s.as_bytes())
        }
        "npy" => {
            let mut full = vec![n];
            full.extend_from_slice(shape);
            crate::train::checkpoint::atomic_write(path, &crate::data::npy::encode_f32(&full, &v))
        }
        _ => Err(Error::config(format!("{}: unknown output type (use .png, .csv or .npy)", path.display()))),
    }
}

/// Originals (odd rows) above their reconstructions (even rows), for VAEs on images.
pub fn write_reconstructions(model: &Model, data: &Dataset, n: usize, path: &Path) -> Result<()> {
    let Some(vae) = model.as_vae() else { return Ok(()) };
    if !data.is_image() {
        return Ok(());
    }
    let n = n.min(data.n);
    let idx: Vec<usize> = (0..n).collect();
    let x = data.batch(&idx, &Device::Cpu)?;
    let r = vae.reconstruct(&x)?;
    let cols = 8usize;
    let mut rows: Vec<Tensor> = Vec::new();
    for start in (0..n).step_by(cols) {
        let len = cols.min(n - start);
        rows.push(x.narrow(0, start, len)?);
        rows.push(r.narrow(0, start, len)?);
    }
    let all = Tensor::cat(&rows, 0)?;
    let v = all.flatten_all()?.to_vec1::<f32>()?;
    viz::image_grid(&v, all.dim(0)?, &data.shape, cols, 2, path)
}

/// `loss.png` from `metrics.jsonl`: training loss and validation NLL.
pub fn write_loss_plot(dir: &RunDir, model_name: &str) -> Result<()> {
    let m = dir.metrics()?;
    let train: Vec<(f64, f64)> = m.iter().filter_map(|v| Some((v["step"].as_f64()?, v["loss"].as_f64()?))).collect();
    let val: Vec<(f64, f64)> = m.iter().filter_map(|v| Some((v["step"].as_f64()?, v["val_nll"].as_f64()?))).collect();
    // Smooth the per-step loss with a centred window of up to 51 steps (shrinking at the ends).
    let w = 25usize;
    let smooth: Vec<(f64, f64)> = (0..train.len())
        .map(|i| {
            let r = w.min(i).min(train.len() - 1 - i);
            let s: f64 = train[i - r..=i + r].iter().map(|p| p.1).sum();
            (train[i].0, s / (2 * r + 1) as f64)
        })
        .collect();
    let mut series = vec![("training loss (smoothed)", smooth)];
    if !val.is_empty() {
        series.push(("validation NLL", val));
    }
    viz::line_plot(&format!("{model_name}: loss in nats per example"), "nats", &series, &dir.file("loss.png"))
}

/// The mean NLL of `data` with the run's transforms undone in the density.
pub fn score(model: &Model, data: &Dataset, log_det: f64, batch: usize, rng: &mut Rng) -> Result<NllReport> {
    Ok(eval::nll(model, data, batch, rng)?.shifted(log_det))
}
