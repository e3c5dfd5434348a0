//! Latent paths (linear and spherical) and interpolation grids.

use crate::models::{Aae, Gan, Vae};

use candle_core::Tensor;

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::models::Model;
use crate::rng::Rng;

/// Spherical interpolation between rows `a` and `b` at `t` (linear when they are parallel).
pub fn slerp(a: &[f32], b: &[f32], t: f32) -> Vec<f32> {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let (na, nb) =
        (a.iter().map(|x| x * x).sum::<f32>().sqrt(), b.iter().map(|x| x * x).sum::<f32>().sqrt());
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
pub fn latent_path(
    z: &[f32],
    l: usize,
    steps: usize,
    spherical: bool,
    clip: Option<f32>,
) -> Vec<f32> {
    let pairs = z.len() / (2 * l).max(1);
    let mut path = Vec::with_capacity(pairs * steps * l);
    for p in 0..pairs {
        let (a, b) = (&z[2 * p * l..(2 * p + 1) * l], &z[(2 * p + 1) * l..(2 * p + 2) * l]);
        for s in 0..steps {
            let t = s as f32 / (steps.max(2) - 1) as f32;
            let point = if spherical {
                slerp(a, b, t)
            } else {
                a.iter().zip(b).map(|(x, y)| (1.0 - t) * x + t * y).collect()
            };
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
pub fn interpolate(
    model: &Model,
    data: Option<&Dataset>,
    pairs: usize,
    steps: usize,
    spherical: bool,
    rng: &mut Rng,
) -> Result<Tensor> {
    if steps < 2 || pairs == 0 {
        return Err(Error::config("interpolation needs at least 2 steps and 1 pair"));
    }
    let dev = model.device();
    let ends = |enc: &dyn Fn(&Tensor) -> Result<Tensor>| -> Result<(Vec<f32>, usize)> {
        let d = data.ok_or_else(|| {
            Error::config(format!(
                "the {} model interpolates between encoded examples: pass --data",
                model.name()
            ))
        })?;
        if d.n < 2 * pairs {
            return Err(Error::config(format!(
                "{}: {} pairs need {} examples, the set has {}",
                d.source,
                pairs,
                2 * pairs,
                d.n
            )));
        }
        model.check_dim(d.dim(), &d.source)?;
        let idx: Vec<usize> = (0..2 * pairs).collect();
        let z = enc(&d.batch(&idx, &dev)?)?;
        let l = z.dim(1)?;
        Ok((z.flatten_all()?.to_vec1::<f32>()?, l))
    };
    let (z, l) = if let Some(v) = model.get::<Vae>() {
        ends(&|x| Ok(v.encode(x)?.0))?
    } else if let Some(a) = model.get::<Aae>() {
        ends(&|x| a.encode(x))?
    } else if let Some(g) = model.get::<Gan>() {
        let l = g.cfg.latent;
        (g.draw_z(2 * pairs, rng)?.flatten_all()?.to_vec1::<f32>()?, l)
    } else {
        return Err(Error::config(format!(
            "the {} model has no latent space to interpolate in (vae, aae and GANs do)",
            model.name()
        )));
    };
    // A slerp arc between two points of uniform noise's cube can leave it
    // (the arc bulges outward), so paths are clipped to the noise's support.
    let path =
        latent_path(&z, l, steps, spherical, model.get::<Gan>().and_then(|g| g.cfg.noise.bound()));
    let zt = Tensor::from_vec(path, (pairs * steps, l), &dev)?;
    if let Some(v) = model.get::<Vae>() {
        return v.decode_mean(&zt);
    }
    if let Some(a) = model.get::<Aae>() {
        return a.decode(&zt);
    }
    let g = model.get::<Gan>().ok_or_else(|| Error::config("no generator"))?;
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
