//! The train / sample / score workflow on run directories, shared by the CLI
//! and by programs that embed deepgen: data preparation with the run's
//! transforms, hooks that write metrics and checkpoints, and the pictures a
//! finished run leaves behind.

use std::path::Path;

use candle_core::{Device, Tensor};

use crate::data::{Binarize, DataSpec, Dataset};
use crate::error::{Error, Result};
use crate::eval::{self, NllReport};
use crate::models::{Known, Model, Sampler};
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
        return Err(Error::config(format!("{}: the {} model needs binary data; pass --binarize static, dynamic or threshold", d.source, cfg.model.name())));
    }
    if cfg.model.needs_grey_levels() {
        if let Some(v) = d.x.iter().find(|v| !(0.0..=1.0).contains(*v)) {
            return Err(Error::config(format!("{}: the {} model's softmax output reads 256 grey levels in [0, 1], but the data has the value {v}", d.source, cfg.model.name())));
        }
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
    /// Training seconds before this process (a resumed run's earlier time) and when this process started.
    base_s: f64,
    started: std::time::Instant,
}

impl<'a> RunHooks<'a> {
    /// Hooks for `dir`; the training clock continues from the last `elapsed_s` in its metrics.
    pub fn new(dir: &'a RunDir, seed: u64, on_step: Box<dyn FnMut(&StepRecord) + Send + 'a>, on_eval: Box<dyn FnMut(usize, f64) + Send + 'a>) -> Self {
        let base_s = training_seconds(dir).unwrap_or(0.0);
        Self { dir, seed, on_step, on_eval, base_s, started: std::time::Instant::now() }
    }
}

/// Wall-clock training seconds recorded at the run's last checkpoint (`elapsed_s` in metrics.jsonl).
pub fn training_seconds(dir: &RunDir) -> Option<f64> {
    dir.metrics().ok()?.iter().rev().find_map(|v| v["elapsed_s"].as_f64())
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
    fn on_checkpoint(&mut self, model: &Model, opts: &[&Adam], step: usize) -> Result<()> {
        self.dir.save(model, opts, step, self.seed)?;
        let elapsed = self.base_s + self.started.elapsed().as_secs_f64();
        self.dir.append_metrics(&serde_json::json!({"step": step, "elapsed_s": elapsed}))
    }
}

/// Writes `n` samples to `path`: a PNG grid for images, a scatter plot for
/// 2-D data, CSV rows otherwise (or whenever the name ends in `.csv`).
/// With `mean`, latent-variable models show decoder means instead of draws.
/// The example shape comes from the run config; `background`, for 2-D data,
/// gives the data points drawn behind the samples.
pub fn write_samples(model: &Model, cfg: &RunConfig, n: usize, mean: bool, rng: &mut Rng, path: &Path, background: Option<&Dataset>) -> Result<()> {
    let x = match (mean, model.as_vae()) {
        (true, Some(v)) => v.sample_mean(n, rng)?,
        _ => model.sample(n, rng)?,
    };
    write_examples(model, cfg, &x, path, background)
}

/// Writes examples `x` (`[n, D]`, the model's units) to `path` in data units,
/// in the formats of [`write_samples`].
pub fn write_examples(model: &Model, cfg: &RunConfig, x: &Tensor, path: &Path, background: Option<&Dataset>) -> Result<()> {
    let dim_only = [model.config.dim()];
    let shape: &[usize] = if cfg.data.shape.is_empty() { &dim_only } else { &cfg.data.shape };
    let n = x.dim(0)?;
    let mut v = x.flatten_all()?.to_vec1::<f32>()?;
    to_data_units(&mut v, cfg);
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    let dim: usize = shape.iter().product();
    match ext.as_str() {
        "png" if shape.len() == 3 => viz::image_grid(&v, n, shape, (n as f64).sqrt().ceil() as usize, 2, path),
        "png" if dim == 2 => {
            let pts: Vec<[f32; 2]> = v.chunks(2).map(|c| [c[0], c[1]]).collect();
            let dpts = background.map(|d| background_points(d, cfg, 2000)).unwrap_or_default();
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

/// Writes image rows `x` (`[n, D]`, the model's units) as a PNG grid with `cols` columns, in data units.
pub fn write_grid(model: &Model, cfg: &RunConfig, x: &Tensor, cols: usize, path: &Path) -> Result<()> {
    let shape = &cfg.data.shape;
    if shape.len() != 3 {
        return Err(Error::config(format!("{}: a grid needs image data, examples here have shape {shape:?}", path.display())));
    }
    model.check_dim(x.dim(1)?, "the grid")?;
    let mut v = x.flatten_all()?.to_vec1::<f32>()?;
    to_data_units(&mut v, cfg);
    viz::image_grid(&v, x.dim(0)?, shape, cols, 2, path)
}

/// The first `n` points of 2-D data `d` as loaded for the run (standardised
/// when it was), in data units: the background of a sample scatter.
pub fn background_points(d: &Dataset, cfg: &RunConfig, n: usize) -> Vec<[f32; 2]> {
    let mut v: Vec<f32> = d.x.iter().take(2 * n).copied().collect();
    to_data_units(&mut v, cfg);
    v.chunks_exact(2).map(|c| [c[0], c[1]]).collect()
}

/// Undoes the run's standardisation in place (rows of the model's values -> data units).
pub fn to_data_units(v: &mut [f32], cfg: &RunConfig) {
    if !cfg.data.mean.is_empty() {
        let d = cfg.data.mean.len();
        for (k, x) in v.iter_mut().enumerate() {
            *x = *x * cfg.data.std[k % d] + cfg.data.mean[k % d];
        }
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
    originals_over(&x, &r, &data.shape, path)
}

/// A grid of rows of 8 originals, each row followed by their reconstructions.
fn originals_over(x: &Tensor, r: &Tensor, shape: &[usize], path: &Path) -> Result<()> {
    let n = x.dim(0)?;
    let cols = 8usize;
    let mut rows: Vec<Tensor> = Vec::new();
    for start in (0..n).step_by(cols) {
        let len = cols.min(n - start);
        rows.push(x.narrow(0, start, len)?);
        rows.push(r.narrow(0, start, len)?);
    }
    let all = Tensor::cat(&rows, 0)?;
    viz::image_grid(&all.flatten_all()?.to_vec1::<f32>()?, all.dim(0)?, shape, cols, 2, path)
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

/// `loss.png` of an adversarial run: the critic's and the generator's losses (smoothed) and the logged estimates.
pub fn write_adversarial_plot(dir: &RunDir, model_name: &str) -> Result<()> {
    let m = dir.metrics()?;
    let series_of = |key: &str| -> Vec<(f64, f64)> {
        let raw: Vec<(f64, f64)> = m.iter().filter_map(|v| Some((v["step"].as_f64()?, v[key].as_f64()?))).collect();
        let w = 25usize;
        (0..raw.len())
            .map(|i| {
                let r = w.min(i).min(raw.len() - 1 - i);
                (raw[i].0, raw[i - r..=i + r].iter().map(|p| p.1).sum::<f64>() / (2 * r + 1) as f64)
            })
            .collect()
    };
    let keys = [
        ("d_loss", "critic loss"),
        ("g_loss", "generator loss"),
        ("critic_estimate", "critic's estimate (V, W1 or f-divergence bound)"),
        ("mi_bound", "InfoGAN bound on I(c; G(z,c))"),
        ("recon", "reconstruction (nats)"),
        ("gp", "gradient penalty"),
    ];
    let series: Vec<(&str, Vec<(f64, f64)>)> = keys.iter().map(|(k, label)| (*label, series_of(k))).filter(|(_, s)| !s.is_empty()).collect();
    viz::line_plot(&format!("{model_name}: training curves (smoothed)"), "value", &series, &dir.file("loss.png"))
}

/// The mean NLL of `data` with the run's transforms undone in the density.
pub fn score(model: &Model, data: &Dataset, log_det: f64, batch: usize, rng: &mut Rng) -> Result<NllReport> {
    Ok(eval::nll(model, data, batch, rng)?.shifted(log_det))
}

/// Which pixels `deepgen complete` keeps.
#[derive(Debug, Clone, PartialEq)]
pub enum Keep {
    TopHalf,
    BottomHalf,
    LeftHalf,
    RightHalf,
    /// One flag per value, `true` = known.
    Mask(Vec<bool>),
}

impl Keep {
    /// `top-half`, `bottom-half`, `left-half`, `right-half`, or the path of a
    /// PNG the size of one image whose white (>= 128) pixels are known.
    pub fn parse(s: &str, shape: &[usize]) -> Result<Self> {
        Ok(match s {
            "top-half" => Keep::TopHalf,
            "bottom-half" => Keep::BottomHalf,
            "left-half" => Keep::LeftHalf,
            "right-half" => Keep::RightHalf,
            path => {
                let p = Path::new(path);
                if !p.exists() {
                    return Err(Error::config(format!("--keep: `{path}` is neither top-half, bottom-half, left-half, right-half nor an existing PNG mask")));
                }
                let img = image::open(p).map_err(|e| Error::bad_file(p, format!("not a readable image: {e}")))?.to_luma8();
                let (w, h) = img.dimensions();
                let (eh, ew) = match shape {
                    [_, h, w] => (*h, *w),
                    _ => return Err(Error::config("--keep with a mask image needs image data")),
                };
                if (h as usize, w as usize) != (eh, ew) {
                    return Err(Error::bad_file(p, format!("mask is {w}x{h} pixels, the images are {ew}x{eh}")));
                }
                let c = shape[0];
                let m: Vec<bool> = img.into_raw().into_iter().map(|v| v >= 128).collect();
                Keep::Mask((0..c).flat_map(|_| m.iter().copied()).collect())
            }
        })
    }

    /// One flag per value of an example of `shape` (`[C, H, W]` or `[D]`).
    pub fn flags(&self, shape: &[usize]) -> Vec<bool> {
        let (c, h, w) = match shape {
            [c, h, w] => (*c, *h, *w),
            other => (1, 1, other.iter().product()),
        };
        let mut out = Vec::with_capacity(c * h * w);
        for _ in 0..c {
            for y in 0..h {
                for x in 0..w {
                    out.push(match self {
                        Keep::TopHalf => y < h.div_ceil(2).max(1) && (h > 1 || x < w.div_ceil(2)),
                        Keep::BottomHalf => y >= h / 2 && (h > 1 || x >= w / 2),
                        Keep::LeftHalf => x < w.div_ceil(2),
                        Keep::RightHalf => x >= w / 2,
                        Keep::Mask(m) => m[(y * w + x) % m.len()],
                    });
                }
            }
        }
        out
    }
}

/// Completions of the first `n` examples of `data` (transformed by the run's
/// config `cfg`): `samples` draws each of the values `keep` does not fix,
/// sampled in the model's order. Returns the examples `[n, D]`, the flags,
/// and the completions `[n * samples, D]` (example-major), both in the data's
/// units (standardisation undone), and each completion's log-probability
/// under the model (of the transformed values).
pub fn complete(model: &Model, cfg: &RunConfig, data: &Dataset, keep: &Keep, n: usize, samples: usize, rng: &mut Rng) -> Result<(Tensor, Vec<bool>, Tensor, Vec<f64>)> {
    model.check_dim(data.dim(), &data.source)?;
    let n = n.min(data.n);
    if n == 0 || samples == 0 {
        return Err(Error::config("completion needs at least one example and one sample"));
    }
    let flags = keep.flags(&data.shape);
    if !flags.iter().any(|&f| !f) {
        return Err(Error::config("--keep leaves no value to complete"));
    }
    let d = data.dim();
    let x = data.batch(&(0..n).collect::<Vec<_>>(), &Device::Cpu)?;
    let xv = x.flatten_all()?.to_vec1::<f32>()?;
    let mut values = Vec::with_capacity(n * samples * d);
    for i in 0..n {
        for _ in 0..samples {
            values.extend_from_slice(&xv[i * d..(i + 1) * d]);
        }
    }
    let observed: Vec<bool> = (0..n * samples).flat_map(|_| flags.iter().copied()).collect();
    let (out, lps) = model.sample_sequential(n * samples, Some(&Known { values, observed }), rng)?;
    let units = |t: Tensor| -> Result<Tensor> {
        let shape = t.shape().clone();
        let mut v = t.flatten_all()?.to_vec1::<f32>()?;
        to_data_units(&mut v, cfg);
        Ok(Tensor::from_vec(v, shape, &Device::Cpu)?)
    };
    Ok((units(x)?, flags, units(out)?, lps))
}

/// The completion grid: one row per example with the original, the masked
/// input (unknown values grey) and the completions.
pub fn write_completions(x: &Tensor, flags: &[bool], completions: &Tensor, shape: &[usize], path: &Path) -> Result<()> {
    let (n, d) = x.dims2()?;
    let samples = completions.dim(0)? / n.max(1);
    let xv = x.flatten_all()?.to_vec1::<f32>()?;
    let cv = completions.flatten_all()?.to_vec1::<f32>()?;
    let mut v = Vec::with_capacity(n * (2 + samples) * d);
    for i in 0..n {
        let row = &xv[i * d..(i + 1) * d];
        v.extend_from_slice(row);
        v.extend(row.iter().zip(flags).map(|(&x, &k)| if k { x } else { 0.5 }));
        v.extend_from_slice(&cv[i * samples * d..(i + 1) * samples * d]);
    }
    viz::image_grid(&v, n * (2 + samples), shape, 2 + samples, 2, path)
}

/// Samples of a conditional GAN with one row per class (`per_class` columns), `[classes*per_class, D]`.
pub fn class_rows(model: &Model, per_class: usize, rng: &mut Rng) -> Result<Tensor> {
    let g = model.as_gan().filter(|g| g.cfg.classes > 0).ok_or_else(|| Error::config(format!("the {} model is not class-conditional", model.name())))?;
    let labels: Vec<u32> = (0..g.cfg.classes as u32).flat_map(|c| std::iter::repeat_n(c, per_class)).collect();
    g.sample_with(labels.len(), Some(&labels), rng)
}

/// InfoGAN grids that vary one code at a time, each row with its own fixed noise z:
/// `categorical.png` (row k: categorical value k, columns: different z),
/// and for each continuous code j `continuous-{j}.png` (row k: categorical
/// value k and one z; columns: c_j from -2 to 2, the other codes 0).
pub fn write_info_grids(model: &Model, rng: &mut Rng, dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let Some(g) = model.as_gan().filter(|g| g.cfg.is_info()) else { return Ok(vec![]) };
    let (k, m, lat) = (g.cfg.categorical.max(1), g.cfg.continuous, g.cfg.latent);
    let cols = 10usize;
    let dev = Device::Cpu;
    let shape = &g.cfg.shape;
    let mut out = Vec::new();
    let grid = |codes: Vec<f32>, z: Tensor, name: &str| -> Result<std::path::PathBuf> {
        let n = z.dim(0)?;
        let c = Tensor::from_vec(codes, (n, g.cfg.codes()), &dev)?;
        let x = g.generate(&z, Some(&c), false)?;
        let p = dir.join(name);
        viz::image_grid(&x.flatten_all()?.to_vec1::<f32>()?, n, shape, cols, 2, &p)?;
        Ok(p)
    };
    let code_row = |cat: usize, cont: &[f32]| -> Vec<f32> {
        let mut v = vec![0f32; g.cfg.codes()];
        if g.cfg.categorical > 0 {
            v[cat] = 1.0;
        }
        v[g.cfg.categorical..].copy_from_slice(cont);
        v
    };
    if g.cfg.categorical > 0 {
        let z = g.draw_z(k * cols, rng)?;
        let codes: Vec<f32> = (0..k * cols).flat_map(|i| code_row(i / cols, &vec![0.0; m])).collect();
        out.push(grid(codes, z, "categorical.png")?);
    }
    for j in 0..m {
        let z1 = g.draw_z(k, rng)?;
        let z = z1.unsqueeze(1)?.broadcast_as((k, cols, lat))?.reshape((k * cols, lat))?;
        let codes: Vec<f32> = (0..k * cols)
            .flat_map(|i| {
                let mut cont = vec![0f32; m];
                cont[j] = -2.0 + 4.0 * (i % cols) as f32 / (cols - 1) as f32;
                code_row(i / cols, &cont)
            })
            .collect();
        out.push(grid(codes, z, &format!("continuous-{j}.png"))?);
    }
    Ok(out)
}

/// The AAE's 2-D codes of `data` coloured by label (or one colour), over prior draws in grey.
pub fn write_latent_scatter(model: &Model, data: &Dataset, n: usize, rng: &mut Rng, path: &Path) -> Result<bool> {
    let Some(a) = model.as_aae() else { return Ok(false) };
    if a.cfg.latent != 2 {
        return Ok(false);
    }
    let n = n.min(data.n);
    let idx: Vec<usize> = (0..n).collect();
    let z = a.encode(&data.batch(&idx, &Device::Cpu)?)?.flatten_all()?.to_vec1::<f32>()?;
    let prior = a.prior_sample(2000, rng)?.flatten_all()?.to_vec1::<f32>()?;
    let prior: Vec<[f32; 2]> = prior.chunks(2).map(|c| [c[0], c[1]]).collect();
    let pts: Vec<[f32; 2]> = z.chunks(2).map(|c| [c[0], c[1]]).collect();
    let mut by_label: Vec<Vec<[f32; 2]>> = Vec::new();
    match &data.labels {
        Some(l) => {
            for (i, p) in pts.iter().enumerate() {
                let c = l[i] as usize;
                if by_label.len() <= c {
                    by_label.resize(c + 1, vec![]);
                }
                by_label[c].push(*p);
            }
        }
        None => by_label.push(pts.clone()),
    }
    let mut groups = vec![viz::Group { points: &prior, colour: (200, 200, 200), label: Some("prior draws".into()) }];
    for (c, pts) in by_label.iter().enumerate() {
        let label = if data.labels.is_some() { Some(format!("label {c}")) } else { Some("codes".into()) };
        groups.push(viz::Group { points: pts, colour: viz::PALETTE[c % 10], label });
    }
    viz::scatter_groups(&format!("aae: codes of {} examples of {} over the {:?} prior", n, data.source, a.cfg.prior), &groups, &[], path)?;
    Ok(true)
}

/// The AAE's reconstructions: originals (odd rows) above reconstructions.
pub fn write_aae_reconstructions(model: &Model, data: &Dataset, n: usize, path: &Path) -> Result<bool> {
    let Some(a) = model.as_aae() else { return Ok(false) };
    if !data.is_image() {
        return Ok(false);
    }
    let n = n.min(data.n);
    let idx: Vec<usize> = (0..n).collect();
    let x = data.batch(&idx, &Device::Cpu)?;
    let r = a.decode(&a.encode(&x)?)?;
    originals_over(&x, &r, &data.shape, path)?;
    Ok(true)
}

/// Mode coverage of a run trained on a toy mixture: `n` samples, the
/// report, and `path` (PNG) with the samples over circles of 3 sigma around the true modes.
pub fn mode_eval(model: &Model, cfg: &RunConfig, n: usize, min_share: f64, rng: &mut Rng, path: Option<&Path>) -> Result<eval::modes::ModeReport> {
    let spec: DataSpec = cfg.data.train.parse()?;
    let DataSpec::Toy { kind, .. } = spec else {
        return Err(Error::config(format!("mode coverage needs a run trained on toy:ring8 or toy:grid25; this run was trained on {}", cfg.data.train)));
    };
    // A run trained with --standardize samples in standard units: the modes are in data units.
    let mut x = model.sample(n, rng)?.flatten_all()?.to_vec1::<f32>()?;
    to_data_units(&mut x, cfg);
    let pts: Vec<[f32; 2]> = x.chunks(2).map(|c| [c[0], c[1]]).collect();
    let means = kind.modes();
    let rep = eval::modes::mode_report(&pts, &means, kind.std(), min_share);
    if let Some(p) = path {
        let circles: Vec<([f32; 2], f32)> = means.iter().map(|m| (*m, 3.0 * kind.std())).collect();
        let groups = [viz::Group { points: &pts, colour: (0, 0, 255), label: None }];
        let title = format!("{} on {}: {} samples, {}/{} modes, {:.1}% high quality", model.name(), kind.name(), n, rep.covered, rep.modes, 100.0 * rep.high_quality);
        viz::scatter_groups(&title, &groups, &circles, p)?;
    }
    Ok(rep)
}

/// Spherical interpolation between rows `a` and `b` at `t` (linear when they are parallel).
pub fn slerp(a: &[f32], b: &[f32], t: f32) -> Vec<f32> {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let (na, nb) = (a.iter().map(|x| x * x).sum::<f32>().sqrt(), b.iter().map(|x| x * x).sum::<f32>().sqrt());
    let cos = (dot / (na * nb).max(1e-12)).clamp(-1.0, 1.0);
    let omega = cos.acos();
    if omega.abs() < 1e-4 {
        return a.iter().zip(b).map(|(x, y)| (1.0 - t) * x + t * y).collect();
    }
    let (wa, wb) = (((1.0 - t) * omega).sin() / omega.sin(), (t * omega).sin() / omega.sin());
    a.iter().zip(b).map(|(x, y)| wa * x + wb * y).collect()
}

/// The points of the interpolation paths: `z` holds pairs of ends (rows of
/// `l` values, two per path), each path gets `steps` points, ends included.
/// `clip` bounds every coordinate to [-clip, clip] (the support of uniform
/// noise; a linear path between points of the cube never leaves it).
pub fn latent_path(z: &[f32], l: usize, steps: usize, spherical: bool, clip: Option<f32>) -> Vec<f32> {
    let pairs = z.len() / (2 * l).max(1);
    let mut path = Vec::with_capacity(pairs * steps * l);
    for p in 0..pairs {
        let (a, b) = (&z[2 * p * l..(2 * p + 1) * l], &z[(2 * p + 1) * l..(2 * p + 2) * l]);
        for s in 0..steps {
            let t = s as f32 / (steps.max(2) - 1) as f32;
            let point = if spherical { slerp(a, b, t) } else { a.iter().zip(b).map(|(x, y)| (1.0 - t) * x + t * y).collect() };
            match clip {
                Some(c) => path.extend(point.into_iter().map(|x| x.clamp(-c, c))),
                None => path.extend(point),
            }
        }
    }
    path
}

/// Latent interpolations, one row per pair, `steps` columns from one end to
/// the other: VAE and AAE between the codes (posterior means) of pairs of
/// examples of `data` (the ends are their reconstructions); GANs between
/// two noise draws (a conditional GAN keeps one class per row, an InfoGAN
/// one code). `spherical` uses slerp, the natural path between Gaussian draws.
/// Returns `[pairs * steps, D]` in the model's units.
pub fn interpolate(model: &Model, data: Option<&Dataset>, pairs: usize, steps: usize, spherical: bool, rng: &mut Rng) -> Result<Tensor> {
    if steps < 2 || pairs == 0 {
        return Err(Error::config("interpolation needs at least 2 steps and 1 pair"));
    }
    let dev = Device::Cpu;
    let ends = |enc: &dyn Fn(&Tensor) -> Result<Tensor>| -> Result<(Vec<f32>, usize)> {
        let d = data.ok_or_else(|| Error::config(format!("the {} model interpolates between encoded examples: pass --data", model.name())))?;
        if d.n < 2 * pairs {
            return Err(Error::config(format!("{}: {} pairs need {} examples, the set has {}", d.source, pairs, 2 * pairs, d.n)));
        }
        model.check_dim(d.dim(), &d.source)?;
        let idx: Vec<usize> = (0..2 * pairs).collect();
        let z = enc(&d.batch(&idx, &dev)?)?;
        let l = z.dim(1)?;
        Ok((z.flatten_all()?.to_vec1::<f32>()?, l))
    };
    let (z, l) = if let Some(v) = model.as_vae() {
        ends(&|x| Ok(v.encode(x)?.0))?
    } else if let Some(a) = model.as_aae() {
        ends(&|x| a.encode(x))?
    } else if let Some(g) = model.as_gan() {
        let l = g.cfg.latent;
        (g.draw_z(2 * pairs, rng)?.flatten_all()?.to_vec1::<f32>()?, l)
    } else {
        return Err(Error::config(format!("the {} model has no latent space to interpolate in (vae, aae and GANs do)", model.name())));
    };
    // A slerp arc between two points of uniform noise's cube can leave it
    // (the arc bulges outward), so paths are clipped to the noise's support.
    let path = latent_path(&z, l, steps, spherical, model.as_gan().and_then(|g| g.cfg.noise.bound()));
    let zt = Tensor::from_vec(path, (pairs * steps, l), &dev)?;
    if let Some(v) = model.as_vae() {
        return v.decode_mean(&zt);
    }
    if let Some(a) = model.as_aae() {
        return a.decode(&zt);
    }
    let g = model.as_gan().ok_or_else(|| Error::config("no generator"))?;
    // One condition per row (a class, or InfoGAN codes), repeated along it.
    let cond = if g.cfg.classes > 0 || g.cfg.is_info() {
        let one = g.sample_condition(pairs, rng)?;
        let c = one.dim(1)?;
        Some(one.unsqueeze(1)?.broadcast_as((pairs, steps, c))?.reshape((pairs * steps, c))?)
    } else {
        None
    };
    g.generate(&zt, cond.as_ref(), false)
}
