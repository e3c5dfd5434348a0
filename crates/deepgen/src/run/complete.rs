//! Conditional completion: which values stay known, and sampling the rest
//! from an autoregressive run.

use std::path::Path;

use candle_core::{Device, Tensor};

use super::examples::to_data_units;
use super::RunConfig;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::models::{Known, Model};
use crate::rng::Rng;
use crate::viz;

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
                    return Err(Error::config(format!(
                        "--keep: `{path}` is neither top-half, \
                        bottom-half, left-half, right-half nor an existing PNG mask"
                    )));
                }
                let img = image::open(p)
                    .map_err(|e| Error::bad_file(p, format!("not a readable image: {e}")))?
                    .to_luma8();
                let (w, h) = img.dimensions();
                let (eh, ew) = match shape {
                    [_, h, w] => (*h, *w),
                    _ => return Err(Error::config("--keep with a mask image needs image data")),
                };
                if (h as usize, w as usize) != (eh, ew) {
                    return Err(Error::bad_file(
                        p,
                        format!("mask is {w}x{h} pixels, the images are {ew}x{eh}"),
                    ));
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
pub fn complete(
    model: &Model,
    cfg: &RunConfig,
    data: &Dataset,
    keep: &Keep,
    n: usize,
    samples: usize,
    rng: &mut Rng,
) -> Result<(Tensor, Vec<bool>, Tensor, Vec<f64>)> {
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
    let (out, lps) =
        model.sample_sequential(n * samples, Some(&Known { values, observed }), rng)?;
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
pub fn write_completions(
    x: &Tensor,
    flags: &[bool],
    completions: &Tensor,
    shape: &[usize],
    path: &Path,
) -> Result<()> {
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
