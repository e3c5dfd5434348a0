//! Instance norm (Ulyanov et al. 2016, "Instance Normalization: The Missing Ingredient for Fast
//! Stylization", eq. 4) as one CPU op: each (example, channel) of a `[B, S, C]` map normalised
//! over its S positions, y = (x - mean) / sqrt(var + eps), the biased variance and eps 1e-5 as
//! PyTorch's `InstanceNorm2d`. The candle-op form ([`super::stack::instance_norm`] on other
//! devices and under `create_graph`) costs seven full-size passes forward and about fifteen
//! backward, which made CycleGAN's step mostly copies (perf: candle's element-wise maps and
//! `memmove` over 25 % of it).
//!
//! Backward, with y the output and g its gradient, per (example, channel):
//!   dx = inv (g - mean_S(g) - y mean_S(g y)).

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
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

impl CustomOp1 for InstanceNormOp {
    fn name(&self) -> &'static str {
        "deepgen-instance-norm"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32s(s, l, self.name())?;
        let (b, sp, c) = dims(l)?;
        let per = (sp * c).max(1);
        let mut y = vec![0f32; b * sp * c];
        y.par_chunks_mut(per).zip(x.par_chunks(per)).for_each(|(y, x)| {
            let (mean, inv) = stats(x, c);
            for (yr, xr) in y.chunks_exact_mut(c).zip(x.chunks_exact(c)) {
                for (((o, &v), m), i) in yr.iter_mut().zip(xr).zip(&mean).zip(&inv) {
                    *o = ((v as f64 - m) * i) as f32;
                }
            }
        });
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let (b, sp, c) = arg.dims3()?;
        let per = (sp * c).max(1);
        // The input, output and gradient read in place where they are contiguous CPU tensors.
        let dx = read(arg, |x| read(res, |y| read(grad, |g| backward(x, y, g, sp, c, per))))???;
        Ok(Some(Tensor::from_vec(dx, (b, sp, c), arg.device())?))
    }
}

/// dx for every example: `x`, `y`, `g` and the result are `[B, S, C]`, `per` = S C.
fn backward(x: &[f32], y: &[f32], g: &[f32], sp: usize, c: usize, per: usize) -> Vec<f32> {
    let mut dx = vec![0f32; x.len()];
    dx.par_chunks_mut(per)
        .zip(x.par_chunks(per))
        .zip(y.par_chunks(per).zip(g.par_chunks(per)))
        .for_each(|((dx, x), (y, g))| {
            let (_, inv) = stats(x, c);
            let (mut mg, mut mgy) = (vec![0f64; c], vec![0f64; c]);
            for (yr, gr) in y.chunks_exact(c).zip(g.chunks_exact(c)) {
                for (((a, b), &yv), &gv) in mg.iter_mut().zip(mgy.iter_mut()).zip(yr).zip(gr) {
                    *a += gv as f64;
                    *b += (gv * yv) as f64;
                }
            }
            let n = sp.max(1) as f64;
            let mg: Vec<f32> = mg.iter().map(|v| (v / n) as f32).collect();
            let mgy: Vec<f32> = mgy.iter().map(|v| (v / n) as f32).collect();
            for ((dr, yr), gr) in
                dx.chunks_exact_mut(c).zip(y.chunks_exact(c)).zip(g.chunks_exact(c))
            {
                for (k, d) in dr.iter_mut().enumerate() {
                    *d = (inv[k] * (gr[k] - mg[k] - yr[k] * mgy[k]) as f64) as f32;
                }
            }
        });
    dx
}
