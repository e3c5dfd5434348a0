//! Instance norm (Ulyanov et al. 2016, "Instance Normalization: The Missing Ingredient for Fast
//! Stylization", eq. 4) as one CPU op: each (example, channel) of a `[B, S, C]` map normalised
//! over its S positions, y = (x - mean) / sqrt(var + eps), the biased variance and eps 1e-5 as
//! PyTorch's `InstanceNorm2d`. The candle-op form ([`super::stack::instance_norm`] on other
//! devices and under `create_graph`) costs seven full-size passes forward and about fifteen
//! backward, which made CycleGAN's step mostly copies (perf: candle's element-wise maps and
//! `memmove` over 25 % of it).
//!
//! The affine form ([`InstanceNormAffineOp`], StarGAN's `InstanceNorm2d(affine=True)`),
//! y = gamma xhat + beta per channel, is one op too: as candle ops its scale and shift cost four
//! more full-size passes and a strided reduction per weight gradient (perf: a tenth of StarGAN's
//! step in candle's reductions).
//!
//! Backward, with xhat the normalised input (recomputed from x), h = gamma g (h = g without the
//! affine part) and g the output's gradient, per (example, channel):
//!   dx = inv (h - mean_S(h) - xhat mean_S(h xhat)),
//!   dgamma = sum_{B,S} g xhat,  dbeta = sum_{B,S} g.

use candle_core::{CpuStorage, CustomOp1, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::fused::read;
use super::slices::f32s;

pub(crate) const EPS: f64 = 1e-5;

/// The op on `[B, S, C]`; `S` and `C` from the layout.
pub(crate) struct InstanceNormOp;

/// Per-channel mean and 1 / sqrt(var + eps) of one example's `[S, C]` block, in f64 (two passes):
/// a channel of small spread on a large offset loses its digits in an f32 mean.
fn stats(x: &[f32], c: usize) -> (Vec<f64>, Vec<f64>) {
    let s = (x.len() / c).max(1);
    let mut sum = vec![0f64; c];
    for row in x.chunks_exact(c) {
        sum.iter_mut().zip(row).for_each(|(a, &v)| *a += v as f64);
    }
    let mean: Vec<f64> = sum.iter().map(|a| a / s as f64).collect();
    let mut sq = vec![0f64; c];
    for row in x.chunks_exact(c) {
        sq.iter_mut().zip(row).zip(&mean).for_each(|((a, &v), m)| *a += (v as f64 - m).powi(2));
    }
    let inv = sq.iter().map(|q| 1.0 / (q / s as f64 + EPS).sqrt()).collect();
    (mean, inv)
}

fn dims(l: &Layout) -> candle_core::Result<(usize, usize, usize)> {
    match l.shape().dims() {
        [b, s, c] => Ok((*b, *s, *c)),
        d => candle_core::bail!("instance norm: expected [B, S, C], got {d:?}"),
    }
}

/// The op on `[B, S, C]`, a scale `[C]` and a shift `[C]`.
pub(crate) struct InstanceNormAffineOp;

fn forward(x: &[f32], b: usize, sp: usize, c: usize, affine: Option<(&[f32], &[f32])>) -> Vec<f32> {
    let per = (sp * c).max(1);
    let mut y = vec![0f32; b * sp * c];
    y.par_chunks_mut(per).zip(x.par_chunks(per)).for_each(|(y, x)| {
        let (mean, inv) = stats(x, c);
        for (yr, xr) in y.chunks_exact_mut(c).zip(x.chunks_exact(c)) {
            for (k, (o, &v)) in yr.iter_mut().zip(xr).enumerate() {
                let xhat = ((v as f64 - mean[k]) * inv[k]) as f32;
                *o = match affine {
                    Some((gamma, beta)) => gamma[k] * xhat + beta[k],
                    None => xhat,
                };
            }
        }
    });
    y
}

impl CustomOp1 for InstanceNormOp {
    fn name(&self) -> &'static str {
        "deepgen-instance-norm"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32s(s, l, self.name())?;
        let (b, sp, c) = dims(l)?;
        Ok((CpuStorage::F32(forward(x, b, sp, c, None)), l.shape().clone()))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let (b, sp, c) = arg.dims3()?;
        // The input and gradient read in place where they are contiguous CPU tensors.
        let (dx, ..) = read(arg, |x| read(grad, |g| backward(x, g, sp, c, None)))??;
        Ok(Some(Tensor::from_vec(dx, (b, sp, c), arg.device())?))
    }
}

impl CustomOp3 for InstanceNormAffineOp {
    fn name(&self) -> &'static str {
        "deepgen-instance-norm-affine"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32s(s1, l1, self.name())?;
        let (gamma, beta) = (f32s(s2, l2, "its scale")?, f32s(s3, l3, "its shift")?);
        let (b, sp, c) = dims(l1)?;
        if gamma.len() != c || beta.len() != c {
            candle_core::bail!(
                "instance norm: {c} channels, a scale of {} and a shift of {}",
                gamma.len(),
                beta.len()
            );
        }
        let y = forward(x, b, sp, c, Some((gamma, beta)));
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        gamma: &Tensor,
        _beta: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (b, sp, c) = arg.dims3()?;
        let (dx, dgamma, dbeta) =
            read(arg, |x| read(gamma, |gm| read(grad, |g| backward(x, g, sp, c, Some(gm)))))???;
        let dev = arg.device();
        let to32 = |v: Vec<f64>| v.into_iter().map(|a| a as f32).collect::<Vec<f32>>();
        Ok((
            Some(Tensor::from_vec(dx, (b, sp, c), dev)?),
            Some(Tensor::from_vec(to32(dgamma), c, dev)?),
            Some(Tensor::from_vec(to32(dbeta), c, dev)?),
        ))
    }
}

/// (dx, dgamma, dbeta) for every example: `x`, `g` and dx are `[B, S, C]`; `gamma` the scale of
/// the affine form (the weight gradients are then summed over the batch, else zero).
fn backward(
    x: &[f32],
    g: &[f32],
    sp: usize,
    c: usize,
    gamma: Option<&[f32]>,
) -> (Vec<f32>, Vec<f64>, Vec<f64>) {
    let per = (sp * c).max(1);
    let mut dx = vec![0f32; x.len()];
    let sums: Vec<(Vec<f64>, Vec<f64>)> = dx
        .par_chunks_mut(per)
        .zip(x.par_chunks(per).zip(g.par_chunks(per)))
        .map(|(dx, (x, g))| {
            let (mean, inv) = stats(x, c);
            // Per channel: sum g, sum g xhat (the weight gradients), then the same of h = gamma g.
            let (mut sg, mut sgx) = (vec![0f64; c], vec![0f64; c]);
            for (xr, gr) in x.chunks_exact(c).zip(g.chunks_exact(c)) {
                for k in 0..c {
                    let xhat = (xr[k] as f64 - mean[k]) * inv[k];
                    sg[k] += gr[k] as f64;
                    sgx[k] += gr[k] as f64 * xhat;
                }
            }
            let n = sp.max(1) as f64;
            let scale: Vec<f64> = (0..c).map(|k| gamma.map_or(1.0, |gm| gm[k] as f64)).collect();
            let mh: Vec<f64> = (0..c).map(|k| scale[k] * sg[k] / n).collect();
            let mhx: Vec<f64> = (0..c).map(|k| scale[k] * sgx[k] / n).collect();
            for (dr, (xr, gr)) in
                dx.chunks_exact_mut(c).zip(x.chunks_exact(c).zip(g.chunks_exact(c)))
            {
                for k in 0..c {
                    let xhat = (xr[k] as f64 - mean[k]) * inv[k];
                    let h = scale[k] * gr[k] as f64;
                    dr[k] = (inv[k] * (h - mh[k] - xhat * mhx[k])) as f32;
                }
            }
            (sgx, sg)
        })
        .collect();
    let (mut dgamma, mut dbeta) = (vec![0f64; c], vec![0f64; c]);
    if gamma.is_some() {
        for (sgx, sg) in &sums {
            dgamma.iter_mut().zip(sgx).for_each(|(a, v)| *a += v);
            dbeta.iter_mut().zip(sg).for_each(|(a, v)| *a += v);
        }
    }
    (dx, dgamma, dbeta)
}
