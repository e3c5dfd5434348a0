//! 2x2 average pooling and 2x2 nearest-neighbour upsampling of channels-last maps (Progressive
//! GAN's moves between resolutions, Karras et al. 2018 Sec. 3, the reference's `downscale2d`
//! and `upscale2d`) as one CPU pass each. As candle ops the pooling was two strided sums and a
//! scaling (and their broadcasts backward), about 7 % of a ProGAN step.
//!
//! The two maps are adjoint: pooling's backward is upsampling scaled by 1/4, upsampling's is the
//! 2x2 sum. Each backward applies the other as an op of the graph, so they differentiate to any
//! order (the gradient penalty's graph-building backward needs no candle-op fallback).

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::slices::f32s;

/// `up`: every pixel times `scale` repeated over a 2x2 block; otherwise: every 2x2 block's sum
/// times `scale`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Resample {
    pub up: bool,
    pub scale: f32,
}

impl CustomOp1 for Resample {
    fn name(&self) -> &'static str {
        if self.up {
            "deepgen-upsample2"
        } else {
            "deepgen-sum-pool2"
        }
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32s(s, l, self.name())?;
        let (b, h, w, c) = l.shape().dims4()?;
        let a = self.scale;
        if self.up {
            let row = 2 * w * c;
            let mut y = vec![0f32; b * 2 * h * row];
            // An input row makes two identical output rows.
            y.par_chunks_mut(2 * row).zip(x.par_chunks(w * c)).for_each(|(pair, xr)| {
                let (top, bottom) = pair.split_at_mut(row);
                for (o, px) in top.chunks_exact_mut(2 * c).zip(xr.chunks_exact(c)) {
                    let (left, right) = o.split_at_mut(c);
                    left.iter_mut().zip(px).for_each(|(d, &v)| *d = a * v);
                    right.copy_from_slice(left);
                }
                bottom.copy_from_slice(top);
            });
            return Ok((CpuStorage::F32(y), Shape::from((b, 2 * h, 2 * w, c))));
        }
        if h % 2 != 0 || w % 2 != 0 {
            candle_core::bail!("2x2 pooling of a {h}x{w} map");
        }
        let (h2, w2) = (h / 2, w / 2);
        let mut y = vec![0f32; b * h2 * w2 * c];
        y.par_chunks_mut(w2 * c).zip(x.par_chunks(2 * w * c)).for_each(|(o, pair)| {
            let (top, bottom) = pair.split_at(w * c);
            for (j, out) in o.chunks_exact_mut(c).enumerate() {
                let at = 2 * j * c;
                for (k, d) in out.iter_mut().enumerate() {
                    let s = top[at + k] + top[at + c + k] + bottom[at + k] + bottom[at + c + k];
                    *d = a * s;
                }
            }
        });
        Ok((CpuStorage::F32(y), Shape::from((b, h2, w2, c))))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let adjoint = Resample { up: !self.up, scale: self.scale };
        Ok(Some(grad.contiguous()?.apply_op1(adjoint)?))
    }
}
