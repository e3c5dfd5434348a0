//! Progressive GAN's pixelwise feature normalisation (Karras et al. 2018, Sec. 4.2, eq. 2;
//! the reference's `pixel_norm`, epsilon 1e-8) as one CPU op: each feature vector (the last
//! axis of `[N, C]`) divided by s = sqrt(mean(x^2) + eps). As candle ops it is five full-size
//! passes forward and about ten backward, after every one of the generator's convolutions.
//!
//! Backward, recomputing y = x / s from x, with g the output's gradient, per vector:
//!   dx = (g - y mean_C(g y)) / s.

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::fused::read;
use super::slices::f32s;

pub(crate) const EPS: f32 = 1e-8;

/// The op on a contiguous `[N, C]`.
pub(crate) struct PixelNormOp;

/// Vectors per rayon task: large enough to pay for the task, small enough to split a batch.
const ROWS: usize = 256;

/// 1 / sqrt(mean(x^2) + eps) of one vector (the sum in f64: 1e-8 next to values of order 1
/// would vanish in an f32 sum anyway, but a long vector should not lose digits).
fn inv_scale(x: &[f32]) -> f32 {
    let ms = x.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>() / x.len().max(1) as f64;
    (1.0 / (ms + EPS as f64).sqrt()) as f32
}

fn dims(l: &Layout) -> candle_core::Result<(usize, usize)> {
    match l.shape().dims() {
        [n, c] if *c > 0 => Ok((*n, *c)),
        d => candle_core::bail!("pixel norm: expected [N, C], got {d:?}"),
    }
}

impl CustomOp1 for PixelNormOp {
    fn name(&self) -> &'static str {
        "deepgen-pixel-norm"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32s(s, l, self.name())?;
        let (_, c) = dims(l)?;
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(ROWS * c).zip(x.par_chunks(ROWS * c)).for_each(|(y, x)| {
            for (yr, xr) in y.chunks_exact_mut(c).zip(x.chunks_exact(c)) {
                let inv = inv_scale(xr);
                yr.iter_mut().zip(xr).for_each(|(o, &v)| *o = v * inv);
            }
        });
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let (n, c) = arg.dims2()?;
        let dx = read(arg, |x| {
            read(grad, |g| {
                let mut dx = vec![0f32; x.len()];
                dx.par_chunks_mut(ROWS * c)
                    .zip(x.par_chunks(ROWS * c).zip(g.par_chunks(ROWS * c)))
                    .for_each(|(d, (x, g))| {
                        for ((dr, xr), gr) in
                            d.chunks_exact_mut(c).zip(x.chunks_exact(c)).zip(g.chunks_exact(c))
                        {
                            let inv = inv_scale(xr);
                            let gy: f32 =
                                xr.iter().zip(gr).map(|(&v, &gv)| v * inv * gv).sum::<f32>();
                            let m = gy / c as f32;
                            dr.iter_mut()
                                .zip(xr.iter().zip(gr))
                                .for_each(|(o, (&v, &gv))| *o = (gv - v * inv * m) * inv);
                        }
                    });
                dx
            })
        })??;
        Ok(Some(Tensor::from_vec(dx, (n, c), arg.device())?))
    }
}
