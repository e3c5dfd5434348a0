//! Examples to files: a PNG grid for images, a scatter for 2-D points, CSV or
//! NPY rows, in data units (the run's standardisation undone).
//!
//! Many samples without much memory: `deepgen sample -n 1000000 --out s.npy`
//! draws them in batches of [`SAMPLE_CHUNK`] and appends each batch to the
//! output file, so memory stays at one batch whatever `-n` is. The size of
//! the output is checked against the free disk space before the first draw,
//! and the file is written under a temporary name and renamed when complete.

use std::io::Write;
use std::path::Path;

use candle_core::Tensor;

use super::RunConfig;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::limits::{show_bytes, MAX_GRID_IMAGES};
use crate::models::{Model, Sampler, Vae};
use crate::rng::Rng;
use crate::viz;

/// Samples drawn per batch when many are asked for (`deepgen sample -n`, class rows).
pub const SAMPLE_CHUNK: usize = 1024;

/// Writes `n` samples to `path`: a PNG grid for images, a scatter plot for
/// 2-D data, CSV rows otherwise (or whenever the name ends in `.csv`).
/// With `mean`, latent-variable models show decoder means instead of draws.
/// The example shape comes from the run config; `background`, for 2-D data,
/// gives the data points drawn behind the samples.
pub fn write_samples(
    model: &Model,
    cfg: &RunConfig,
    n: usize,
    mean: bool,
    rng: &mut Rng,
    path: &Path,
    background: Option<&Dataset>,
) -> Result<()> {
    let vae = model.get::<Vae>().filter(|_| mean);
    write_drawn(model, cfg, n, path, background, &mut |k| match vae {
        Some(v) => v.sample_mean(k, rng),
        None => model.sample(k, rng),
    })
}

/// Writes examples `x` (`[n, D]`, the model's units) to `path` in data units,
/// in the formats of [`write_samples`].
pub fn write_examples(
    model: &Model,
    cfg: &RunConfig,
    x: &Tensor,
    path: &Path,
    background: Option<&Dataset>,
) -> Result<()> {
    let dim_only = [model.config.dim()];
    let shape: &[usize] = if cfg.data.shape.is_empty() { &dim_only } else { &cfg.data.shape };
    let n = x.dim(0)?;
    let mut v = x.flatten_all()?.to_vec1::<f32>()?;
    to_data_units(&mut v, cfg);
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    let dim: usize = shape.iter().product();
    match ext.as_str() {
        "png" if shape.len() == 3 => {
            viz::image_grid(&v, n, shape, (n as f64).sqrt().ceil() as usize, 2, path)
        }
        "png" if dim == 2 => {
            let pts: Vec<[f32; 2]> = v.chunks(2).map(|c| [c[0], c[1]]).collect();
            let dpts = background.map(|d| background_points(d, cfg, 2000)).unwrap_or_default();
            viz::scatter_2d(
                &format!("{} samples (blue) and data (grey)", model.name()),
                &dpts,
                &pts,
                path,
            )
        }
        "png" => Err(Error::config(format!(
            "{}: examples of shape {shape:?} are neither images \
            nor 2-D points; write samples to a .csv",
            path.display()
        ))),
        "csv" => {
            let mut s = String::new();
            for row in v.chunks(dim) {
                let cells: Vec<String> = row.iter().map(|x| x.to_string()).collect();
                s.push_str(&cells.join(","));
                s.push('\n');
            }
            crate::files::atomic_write(path, s.as_bytes())
        }
        "npy" => {
            let mut full = vec![n];
            full.extend_from_slice(shape);
            crate::files::atomic_write(path, &crate::data::npy::encode_f32(&full, &v))
        }
        _ => Err(Error::config(format!(
            "{}: unknown output type (use .png, .csv or .npy)",
            path.display()
        ))),
    }
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

/// Writes `n` examples drawn by `draw(k)` (`[k, D]` in the model's units) to `path`: a PNG grid
/// or scatter (at most [`MAX_GRID_IMAGES`]), or CSV/NPY rows streamed batch by batch.
pub fn write_drawn(
    model: &Model,
    cfg: &RunConfig,
    n: usize,
    path: &Path,
    background: Option<&Dataset>,
    draw: &mut dyn FnMut(usize) -> Result<Tensor>,
) -> Result<()> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    if ext == "png" && n > MAX_GRID_IMAGES {
        return Err(Error::config(format!(
            "-n {n}: a PNG holds at most {MAX_GRID_IMAGES} samples; write .npy or .csv for more \
            ({})",
            path.display()
        )));
    }
    if !matches!(ext.as_str(), "csv" | "npy") || n <= SAMPLE_CHUNK {
        return write_examples(model, cfg, &draw(n)?, path, background);
    }
    let dim_only = [model.config.dim()];
    let shape: &[usize] = if cfg.data.shape.is_empty() { &dim_only } else { &cfg.data.shape };
    let dim: usize = shape.iter().product();
    // NPY: 4 bytes a value; CSV: about 12 characters a value (`0.123456789,`).
    let per_value = if ext == "npy" { 4 } else { 12 };
    let bytes = (n as u64).checked_mul(dim as u64 * per_value);
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if let (Some(free), b) = (free_disk(dir), bytes) {
        if b.is_none_or(|b| b > free) {
            return Err(Error::config(format!(
                "-n {n}: {} of samples, more than the {} free on {}",
                b.map(show_bytes).unwrap_or_else(|| "more than 2^64 bytes".into()),
                show_bytes(free),
                dir.display()
            )));
        }
    }
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let res = stream(cfg, n, shape, &ext, &tmp, draw)
        .and_then(|()| std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e)));
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

fn stream(
    cfg: &RunConfig,
    n: usize,
    shape: &[usize],
    ext: &str,
    tmp: &Path,
    draw: &mut dyn FnMut(usize) -> Result<Tensor>,
) -> Result<()> {
    let io = |e| Error::io(tmp, e);
    let mut f = std::io::BufWriter::new(std::fs::File::create(tmp).map_err(io)?);
    if ext == "npy" {
        let mut full = vec![n];
        full.extend_from_slice(shape);
        f.write_all(&crate::data::npy::encode_raw("<f4", &full, &[])).map_err(io)?;
    }
    let dim: usize = shape.iter().product();
    let mut left = n;
    while left > 0 {
        let k = left.min(SAMPLE_CHUNK);
        let mut v = draw(k)?.flatten_all()?.to_vec1::<f32>()?;
        to_data_units(&mut v, cfg);
        if ext == "npy" {
            let b: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            f.write_all(&b).map_err(io)?;
        } else {
            for row in v.chunks(dim) {
                let cells: Vec<String> = row.iter().map(|x| x.to_string()).collect();
                writeln!(f, "{}", cells.join(",")).map_err(io)?;
            }
        }
        left -= k;
    }
    let f = f.into_inner().map_err(|e| io(e.into_error()))?;
    f.sync_all().map_err(io)
}

/// Bytes free for an unprivileged user on the file system of `dir` (None where unknown).
fn free_disk(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs writes into the zeroed struct we own; `c` outlives the call.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return None;
    }
    Some(s.f_bavail as u64 * s.f_frsize as u64)
}
