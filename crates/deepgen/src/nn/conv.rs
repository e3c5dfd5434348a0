//! Masked convolutions on channels-last images, as "gather the allowed taps,
//! then one matrix product".
//!
//! Every convolution of the autoregressive image models is a set of *taps*
//! (row offset, column offset) relative to the output pixel: a PixelCNN mask A
//! 7x7 kernel is the 24 taps strictly before the centre in raster order, mask B
//! adds the centre, a Row LSTM's input-to-state kernel is `(0,-1),(0,0)`.
//! [`gather`] copies, for every pixel of a `[B, H, W, C]` image, the `T` taps'
//! channel vectors into one row of `[B*H*W, T*C]` (zero outside the image);
//! [`MaskedConv`] multiplies that by a `[T*C, out]` weight with the fused
//! [`Linear`]. Masked-out taps are never gathered, so a masked kernel costs
//! what its allowed taps cost (24/49 of a dense 7x7, 5/9 of a 3x3), where
//! the usual "dense kernel times 0/1 mask" pays for every zero.
//!
//! The gather is ours because candle has no im2col with arbitrary taps; on
//! CPU it is one pass each way (a copy forward, a scatter-add backward), on
//! a CUDA device one kernel each way (`conv_gpu.rs`, any order of
//! derivatives), elsewhere a composition of pads and narrows, or one dense
//! convolution with the masked-out weights zero (differentiable to any order).

use candle_core::{CpuStorage, CustomOp1, CustomOp3, Device, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::same_conv;
use super::slices::f32s;
use super::{Act, Linear, Params};
use crate::error::{Error, Result};
use crate::rng::Rng;

pub use super::strided::Tap;

/// The taps of a `k x k` PixelCNN mask (van den Oord et al. 2016a, Fig. 2)
/// for one colour channel: every position above the centre row, then the
/// centre row left of the centre; mask B (`include_centre`) adds the centre.
pub fn raster_taps(k: usize, include_centre: bool) -> Vec<Tap> {
    let r = (k / 2) as i32;
    let mut t = Vec::new();
    for dy in -r..=0 {
        for dx in -r..=r {
            if dy < 0 || dx < 0 || (dx == 0 && include_centre) {
                t.push((dy, dx));
            }
        }
    }
    t
}

struct Gather {
    taps: Vec<Tap>,
}

fn dims4(l: &Layout) -> candle_core::Result<(usize, usize, usize, usize)> {
    l.shape().dims4()
}

impl Gather {
    /// One image's columns `o` ([H*W, T*C]) from its map `xi` ([H*W, C]), every value
    /// written (zeros for taps outside the image), so `o` may hold anything before.
    fn fill(&self, h: usize, w: usize, c: usize, xi: &[f32], o: &mut [f32]) {
        // A copy of a run-time length is a call to memmove per (pixel, tap): for the few
        // channels of these networks that call cost more than the copy (half of the gather's
        // time in the gated PixelCNN's profile), so the common widths get inline copies.
        match c {
            1 => self.fill_n::<1>(h, w, xi, o),
            8 => self.fill_n::<8>(h, w, xi, o),
            16 => self.fill_n::<16>(h, w, xi, o),
            32 => self.fill_n::<32>(h, w, xi, o),
            64 => self.fill_n::<64>(h, w, xi, o),
            _ => self.visit(h, w, c, |src, dst| match src {
                Some(src) => o[dst..dst + c].copy_from_slice(&xi[src..src + c]),
                None => o[dst..dst + c].fill(0.0),
            }),
        }
    }

    /// [`Self::fill`] for `C` channels, known when compiled.
    #[inline(always)]
    fn fill_n<const C: usize>(&self, h: usize, w: usize, xi: &[f32], o: &mut [f32]) {
        self.visit(h, w, C, |src, dst| {
            let d = &mut o[dst..dst + C];
            match src {
                Some(src) => d.copy_from_slice(&xi[src..src + C]),
                None => d.fill(0.0),
            }
        });
    }

    /// Calls `f(src_offset, dst_offset)` for every in-image (pixel, tap) pair of image `b`.
    #[inline]
    fn for_each(&self, h: usize, w: usize, c: usize, mut f: impl FnMut(usize, usize)) {
        self.visit(h, w, c, |src, dst| {
            if let Some(src) = src {
                f(src, dst)
            }
        });
    }

    /// Calls `f(src_offset or None outside the image, dst_offset)` for every (pixel, tap) pair.
    #[inline(always)]
    fn visit(&self, h: usize, w: usize, c: usize, mut f: impl FnMut(Option<usize>, usize)) {
        let t = self.taps.len();
        for y in 0..h {
            for x in 0..w {
                let row = (y * w + x) * t * c;
                for (k, &(dy, dx)) in self.taps.iter().enumerate() {
                    let (sy, sx) = (y as i32 + dy, x as i32 + dx);
                    let inside = sy >= 0 && sx >= 0 && (sy as usize) < h && (sx as usize) < w;
                    f(inside.then(|| (sy as usize * w + sx as usize) * c), row + k * c);
                }
            }
        }
    }
}

impl CustomOp1 for Gather {
    fn name(&self) -> &'static str {
        "deepgen-gather-taps"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (b, h, w, c) = dims4(l)?;
        let x = match (s, l.contiguous_offsets()) {
            (CpuStorage::F32(v), Some((a, e))) => &v[a..e],
            _ => candle_core::bail!("gather: input must be contiguous f32"),
        };
        let t = self.taps.len();
        let per = h * w * t * c;
        let mut out = vec![0f32; b * per];
        out.par_chunks_mut(per.max(1)).zip(x.par_chunks((h * w * c).max(1))).for_each(|(o, xi)| {
            self.for_each(h, w, c, |src, dst| o[dst..dst + c].copy_from_slice(&xi[src..src + c]));
        });
        Ok((CpuStorage::F32(out), Shape::from((b * h * w, t * c))))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let (b, h, w, c) = arg.dims4()?;
        if super::create_graph() || !crate::nn::cpu_kernels(arg.device()) {
            return Ok(Some(scatter_composed(&self.taps, grad, (b, h, w, c))?));
        }
        let t = self.taps.len();
        let g = grad.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let per = h * w * c;
        let mut dx = vec![0f32; b * per];
        dx.par_chunks_mut(per.max(1)).zip(g.par_chunks((h * w * t * c).max(1))).for_each(
            |(d, gi)| {
                self.for_each(h, w, c, |src, dst| {
                    d[src..src + c].iter_mut().zip(&gi[dst..dst + c]).for_each(|(a, &v)| *a += v)
                });
            },
        );
        Ok(Some(Tensor::from_vec(dx, (b, h, w, c), arg.device())?))
    }
}

/// `x` moved by (dy, dx): `out[y, x] = x[y - dy, x - dx]`, zero where that is outside.
fn shifted(x: &Tensor, dy: i32, dx: i32) -> candle_core::Result<Tensor> {
    let (_, h, w, _) = x.dims4()?;
    let (ay, ax) = (dy.unsigned_abs() as usize, dx.unsigned_abs() as usize);
    if ay >= h || ax >= w {
        return x.zeros_like();
    }
    let y = if dy >= 0 {
        x.narrow(1, 0, h - ay)?.pad_with_zeros(1, ay, 0)?
    } else {
        x.narrow(1, ay, h - ay)?.pad_with_zeros(1, 0, ay)?
    };
    if dx >= 0 {
        y.narrow(2, 0, w - ax)?.pad_with_zeros(2, ax, 0)
    } else {
        y.narrow(2, ax, w - ax)?.pad_with_zeros(2, 0, ax)
    }
}

/// The gather as candle ops: tap (dy, dx) is the image shifted by (-dy, -dx).
fn gather_composed(taps: &[Tap], x: &Tensor) -> candle_core::Result<Tensor> {
    let (b, h, w, c) = x.dims4()?;
    let parts: Vec<Tensor> =
        taps.iter().map(|&(dy, dx)| shifted(x, -dy, -dx)).collect::<candle_core::Result<_>>()?;
    Tensor::cat(&parts, 3)?.reshape((b * h * w, taps.len() * c))
}

/// The gather's vector-Jacobian product as candle ops (differentiable again).
fn scatter_composed(
    taps: &[Tap],
    grad: &Tensor,
    (b, h, w, c): (usize, usize, usize, usize),
) -> candle_core::Result<Tensor> {
    let g = grad.reshape((b, h, w, taps.len() * c))?;
    let mut acc: Option<Tensor> = None;
    for (k, &(dy, dx)) in taps.iter().enumerate() {
        let part = shifted(&g.narrow(3, k * c, c)?, dy, dx)?;
        acc = Some(match acc {
            None => part,
            Some(a) => (a + part)?,
        });
    }
    acc.ok_or_else(|| candle_core::Error::Msg("gather: no taps".into()))
}

/// For every pixel of `x`, the channel vectors at `taps` side by side.
///
/// # Shapes
/// `x: [B, H, W, C]` -> `[B*H*W, T*C]` (rows in raster order, zero outside the image)
pub fn gather(x: &Tensor, taps: &[Tap]) -> Result<Tensor> {
    if taps.is_empty() {
        return Err(Error::config("a convolution needs at least one tap"));
    }
    if crate::nn::cpu_kernels(x.device()) && !super::create_graph() {
        Ok(x.contiguous()?.apply_op1(Gather { taps: taps.to_vec() })?)
    } else {
        Ok(gather_composed(taps, x)?)
    }
}

/// A convolution restricted to `taps` (stride 1, zero padding, output the input's size).
#[derive(Clone, Debug)]
pub struct MaskedConv {
    pub taps: Vec<Tap>,
    pub lin: Linear,
}

impl MaskedConv {
    /// Registers `{name}.weight` `[T*in, out]` (row `t*in + c` = tap t, input channel c) and
    /// `{name}.bias`.
    pub fn new(
        p: &mut Params,
        name: &str,
        taps: Vec<Tap>,
        c_in: usize,
        c_out: usize,
        rng: &mut Rng,
        dev: &Device,
    ) -> Result<Self> {
        let lin = Linear::new(p, name, taps.len() * c_in, c_out, rng, dev)?;
        Ok(Self { taps, lin })
    }

    /// # Shapes
    /// `x: [B, H, W, in]` -> `[B, H, W, out]`
    pub fn forward(&self, x: &Tensor, act: Act) -> Result<Tensor> {
        if !act.fuses_into_gemm() {
            return act.apply(&self.forward(x, Act::Identity)?);
        }
        if crate::nn::cpu_kernels(x.device()) && !super::create_graph() {
            return Ok(x.contiguous()?.apply_op3(
                &self.lin.w,
                &self.lin.b,
                ConvOp { gather: Gather { taps: self.taps.clone() }, act },
            )?);
        }
        // On a CUDA device: deepgen's gather of the allowed taps and one product, as on the CPU
        // (`conv_gpu`), where the dense kernel multiplies every masked-out zero too.
        #[cfg(feature = "cuda")]
        if crate::nn::cuda_kernels(x.device()) && self.taps.len() <= super::cuda::MAX_TAPS {
            let y = super::conv_gpu::masked_unbiased(&self.taps, x, &self.lin.w)?;
            return act.apply(&y.broadcast_add(&self.lin.b)?);
        }
        let y = self.dense(x)?.broadcast_add(&self.lin.b)?;
        act.apply(&y)
    }

    /// The convolution as one dense candle `conv2d` whose (2p+1) x (2p+1) kernel holds the taps'
    /// weights and zeros elsewhere (the way PyTorch writes a masked convolution), p the farthest
    /// tap: on a GPU a few large kernels, where gathering the taps as shifted copies took four
    /// per tap. The kernel is an `index_select` of the weight rows (and one zero row), so the
    /// weights' gradient is the taps' part of the dense kernel's.
    fn dense(&self, x: &Tensor) -> Result<Tensor> {
        let (_, _, _, c) = x.dims4()?;
        let out = self.lin.w.dim(1)?;
        let p = self.taps.iter().map(|t| t.0.unsigned_abs().max(t.1.unsigned_abs())).max();
        let p = p.unwrap_or(0) as usize;
        let k = 2 * p + 1;
        let zero_row = (self.taps.len() * c) as u32;
        let mut rows = vec![zero_row; k * k * c];
        for (t, &(dy, dx)) in self.taps.iter().enumerate() {
            let at = ((dy + p as i32) as usize * k + (dx + p as i32) as usize) * c;
            for ch in 0..c {
                rows[at + ch] = (t * c + ch) as u32;
            }
        }
        let dev = x.device();
        let w = Tensor::cat(&[&self.lin.w, &Tensor::zeros((1, out), self.lin.w.dtype(), dev)?], 0)?;
        let dense = w.index_select(&Tensor::from_vec(rows, k * k * c, dev)?, 0)?;
        // On a CUDA device with more taps than the gather kernel takes: im2col and a product,
        // both ways (`conv_gpu`), where candle's conv2d would take its input gradient from a
        // direct conv_transpose2d loop.
        #[cfg(feature = "cuda")]
        if crate::nn::cuda_kernels(dev) {
            let g = Strided { k, stride: 1, pad: p };
            return Ok(super::conv_gpu::down_unbiased(g, x, &dense)?);
        }
        let kern = dense.reshape((k, k, c, out))?.permute((3, 2, 0, 1))?.contiguous()?;
        let y = x.permute((0, 3, 1, 2))?.contiguous()?.conv2d(&kern, p, 1, 1, 1)?;
        Ok(y.permute((0, 2, 3, 1))?)
    }

    /// How far the kernel reaches: (up, left, right), in pixels.
    pub fn reach(&self) -> (usize, usize, usize) {
        let up = self.taps.iter().map(|t| (-t.0).max(0)).max().unwrap_or(0) as usize;
        let left = self.taps.iter().map(|t| (-t.1).max(0)).max().unwrap_or(0) as usize;
        let right = self.taps.iter().map(|t| t.1.max(0)).max().unwrap_or(0) as usize;
        (up, left, right)
    }
}

/// Gather and product as one op on CPU: the `[B*H*W, T*in]` gathered matrix
/// is a scratch buffer (rebuilt in the backward pass), never a tensor of the
/// graph, so candle's backward does not zero-fill and accumulate it.
struct ConvOp {
    gather: Gather,
    act: Act,
}

impl ConvOp {
    /// `f` on the im2col columns of `x` ([B*H*W, T*C]), built in a reused scratch buffer
    /// (a fresh zeroed one per call was ~10% of the PixelCNN step in page zeroing and memset).
    fn with_cols<R>(
        &self,
        x: &[f32],
        (b, h, w, c): (usize, usize, usize, usize),
        f: impl FnOnce(&[f32]) -> R,
    ) -> R {
        let t = self.gather.taps.len();
        let per = h * w * t * c;
        super::with_scratch(b * per, |out| {
            out.par_chunks_mut(per.max(1))
                .zip(x.par_chunks((h * w * c).max(1)))
                .for_each(|(o, xi)| self.gather.fill(h, w, c, xi, o));
            f(out)
        })
    }
}

impl CustomOp3 for ConvOp {
    fn name(&self) -> &'static str {
        "deepgen-masked-conv"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let f = |s: &'_ CpuStorage, l: &Layout| -> candle_core::Result<Vec<f32>> {
            match (s, l.contiguous_offsets()) {
                (CpuStorage::F32(v), Some((a, e))) => Ok(v[a..e].to_vec()),
                _ => candle_core::bail!("masked conv: inputs must be contiguous f32"),
            }
        };
        let dims = xl.shape().dims4()?;
        let (k, n) = wl.shape().dims2()?;
        if k != self.gather.taps.len() * dims.3 || bl.shape().elem_count() != n {
            candle_core::bail!(
                "masked conv: weight {:?} does not fit {} taps of {} channels",
                wl.shape(),
                self.gather.taps.len(),
                dims.3
            );
        }
        let x = match (xs, xl.contiguous_offsets()) {
            (CpuStorage::F32(v), Some((a, e))) => &v[a..e],
            _ => candle_core::bail!("masked conv: input must be contiguous f32"),
        };
        let (w, bias) = (f(ws, wl)?, f(bs, bl)?);
        let m = dims.0 * dims.1 * dims.2;
        let mut y = bias.repeat(m);
        self.with_cols(x, dims, |cols| {
            super::gemm(m, n, k, &mut y, cols, false, &w, false, true, true)
        });
        if self.act == Act::Relu {
            y.iter_mut().for_each(|v| *v = v.max(0.0));
        }
        Ok((CpuStorage::F32(y), Shape::from((dims.0, dims.1, dims.2, n))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        bias: &Tensor,
        y: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        use super::fused::read;
        let dims = x.dims4()?;
        let (k, n) = w.dims2()?;
        let m = dims.0 * dims.1 * dims.2;
        let (dz, db) = super::fused::pre_activation_grad(grad, y, self.act, n)?;
        let dw = if w.track_op() {
            Some(read(x, |xv| {
                self.with_cols(xv, dims, |cols| super::gemm_at_b(k, n, m, cols, &dz))
            })?)
        } else {
            None
        };
        let dx = if x.track_op() {
            let (b, h, wd, c) = dims;
            let t = self.gather.taps.len();
            let per = h * wd * c;
            let mut dx = vec![0f32; b * per];
            // The product overwrites every value (no accumulation), so scratch will do.
            super::with_scratch(m * k, |dcols| -> candle_core::Result<()> {
                read(w, |wv| super::gemm(m, k, n, dcols, &dz, false, wv, true, false, true))?;
                dx.par_chunks_mut(per.max(1))
                    .zip(dcols.par_chunks((h * wd * t * c).max(1)))
                    .for_each(|(d, gi)| {
                        self.gather.for_each(h, wd, c, |src, dst| {
                            d[src..src + c]
                                .iter_mut()
                                .zip(&gi[dst..dst + c])
                                .for_each(|(a, &v)| *a += v)
                        });
                    });
                Ok(())
            })?;
            Some(Tensor::from_vec(dx, x.shape(), x.device())?)
        } else {
            None
        };
        Ok((
            dx,
            dw.map(|d| Tensor::from_vec(d, w.shape(), w.device())).transpose()?,
            if bias.track_op() { Some(Tensor::from_vec(db, n, w.device())?) } else { None },
        ))
    }
}

/// A 1x1 convolution: the same dense layer at every pixel.
///
/// # Shapes
/// `x: [B, H, W, in]` -> `[B, H, W, out]`
pub fn pointwise(lin: &Linear, x: &Tensor, act: Act) -> Result<Tensor> {
    let (b, h, w, c) = x.dims4()?;
    let y = lin.forward_act(&x.reshape((b * h * w, c))?, act)?;
    let out = y.dim(1)?;
    Ok(y.reshape((b, h, w, out))?)
}

/// A 1x1 convolution of relu(x) (ReLU fused into the op on CPU).
///
/// # Shapes
/// `x: [B, H, W, in]` -> `[B, H, W, out]`
pub fn pointwise_relu_in(lin: &Linear, x: &Tensor, act: Act) -> Result<Tensor> {
    let (b, h, w, c) = x.dims4()?;
    let y = lin.forward_relu_in(&x.reshape((b * h * w, c))?, act)?;
    let out = y.dim(1)?;
    Ok(y.reshape((b, h, w, out))?)
}

pub use super::strided::Strided;

/// The CPU kernels' side of the geometry.
impl Strided {
    /// The implicit-GEMM geometry when this convolution over `h x w` images is a "same" one
    /// that [`same_conv`] runs faster than im2col.
    fn same(&self, h: usize, w: usize) -> Option<same_conv::Same> {
        same_conv::eligible(self.k, self.stride, self.pad, h, w).then_some(same_conv::Same {
            k: self.k,
            pad: self.pad,
            h,
            w,
        })
    }

    /// The transposed convolution over `h x w` low-resolution images as a [`same_conv`] one
    /// (stride 1: padding k - 1 - p, the taps reversed), where that applies and pays.
    fn same_up(&self, h: usize, w: usize) -> Option<same_conv::Same> {
        if self.stride != 1 || self.pad >= self.k {
            return None;
        }
        let s = same_conv::Same { k: self.k, pad: self.k - 1 - self.pad, h, w };
        s.eligible().then_some(s)
    }

    /// Calls `f(hi_offset, col_offset, len)` for every in-image run of one kernel row's taps at
    /// one low pixel of one image: a kernel row's taps are neighbouring pixels, so their values
    /// are contiguous on both sides (`len` = the taps inside the image times `c`). Columns are
    /// `[Hl*Wl, k*k*c]`, tap-major.
    #[inline]
    fn for_each_row(
        &self,
        (hh, wh): (usize, usize),
        (hl, wl): (usize, usize),
        c: usize,
        mut f: impl FnMut(usize, usize, usize),
    ) {
        let (k, s, p) = (self.k, self.stride as isize, self.pad as isize);
        for i in 0..hl {
            for ky in 0..k {
                let y = s * i as isize - p + ky as isize;
                if y < 0 || y >= hh as isize {
                    continue;
                }
                for j in 0..wl {
                    let x0 = s * j as isize - p;
                    let lo = (-x0).clamp(0, k as isize) as usize;
                    let hi = (wh as isize - x0).clamp(0, k as isize) as usize;
                    if lo < hi {
                        let at = (y as usize * wh + (x0 + lo as isize) as usize) * c;
                        f(at, ((i * wl + j) * k + ky) * k * c + lo * c, (hi - lo) * c);
                    }
                }
            }
        }
    }

    /// im2col: `[B, Hh, Wh, C]` values -> `[B*Hl*Wl, k*k*C]`. Every element is
    /// written once (a copy or a padding zero), so the buffer is never memset first
    /// (the zero fill was ~5% of a DCGAN step).
    /// im2col into a scratch buffer (see [`super::with_scratch`]), then `f` on the columns.
    fn with_im2col<R>(
        &self,
        x: &[f32],
        b: usize,
        hi: (usize, usize),
        c: usize,
        f: impl FnOnce(&[f32]) -> R,
    ) -> R {
        let n = b * self.lo(hi.0) * self.lo(hi.1) * self.k * self.k * c;
        super::with_scratch(n, |cols| {
            self.im2col_into(x, hi, c, cols);
            f(cols)
        })
    }

    /// Writes every value of `out` (`b * Hl * Wl * k * k * c` of them).
    fn im2col_into(&self, x: &[f32], hi: (usize, usize), c: usize, out: &mut [f32]) {
        let (hl, wl) = (self.lo(hi.0), self.lo(hi.1));
        let (k, s, p) = (self.k, self.stride as isize, self.pad as isize);
        let per = hl * wl * k * k * c;
        out.par_chunks_mut(per.max(1)).zip(x.par_chunks((hi.0 * hi.1 * c).max(1))).for_each(
            |(o, xi)| {
                // A kernel row's k taps are k neighbouring pixels, k c contiguous values of the
                // input: one copy per row (with zeros for the taps off the edge), not one per tap
                // (a copy of c values per call was a tenth of StarGAN's step at c = 3 to 8).
                let mut at = 0;
                let w_in = hi.1 as isize;
                for i in 0..hl {
                    for j in 0..wl {
                        let x0 = s * j as isize - p;
                        let lo = (-x0).clamp(0, k as isize) as usize;
                        let hi_x = (w_in - x0).clamp(0, k as isize) as usize;
                        for ky in 0..k {
                            let y = s * i as isize - p + ky as isize;
                            let dst = &mut o[at..at + k * c];
                            if y < 0 || y >= hi.0 as isize || lo >= hi_x {
                                dst.fill(0.0);
                            } else {
                                dst[..lo * c].fill(0.0);
                                let src = (y as usize * hi.1 + (x0 + lo as isize) as usize) * c;
                                let n = (hi_x - lo) * c;
                                dst[lo * c..hi_x * c].copy_from_slice(&xi[src..src + n]);
                                dst[hi_x * c..].fill(0.0);
                            }
                            at += k * c;
                        }
                    }
                }
            },
        );
    }

    /// col2im: `[B*Hl*Wl, k*k*C]` -> `[B, Hh, Wh, C]`, summing overlapping taps, added onto `init`
    /// per pixel.
    fn col2im(
        &self,
        cols: &[f32],
        b: usize,
        hi: (usize, usize),
        c: usize,
        init: Option<&[f32]>,
    ) -> Vec<f32> {
        let lo = (self.lo(hi.0), self.lo(hi.1));
        let per = hi.0 * hi.1 * c;
        let mut out: Vec<f32> = Vec::with_capacity(b * per);
        out.spare_capacity_mut().par_chunks_mut(per.max(1)).for_each(|o| match init {
            Some(init) => o.iter_mut().enumerate().for_each(|(i, d)| {
                d.write(init[i % c]);
            }),
            None => o.iter_mut().for_each(|d| {
                d.write(0.0);
            }),
        });
        // SAFETY: the pass above wrote all b * per values (every chunk in full).
        unsafe { out.set_len(b * per) };
        out.par_chunks_mut(per.max(1))
            .zip(cols.par_chunks((lo.0 * lo.1 * self.k * self.k * c).max(1)))
            .for_each(|(o, ci)| {
                // A run per kernel row, not a call per tap (c values each: one at c = 1, the
                // generators' output layers, where the per-tap calls were 3 % of a text-GAN step).
                self.for_each_row(hi, lo, c, |dst, src, n| {
                    o[dst..dst + n].iter_mut().zip(&ci[src..src + n]).for_each(|(a, &v)| *a += v)
                });
            });
        out
    }
}

/// Strided convolution `[B, Hh, Wh, in]` -> `[B, Hl, Wl, out]`, weight `[k*k*in, out]`, as one op.
/// The convolution and an optional fused leaky slope (0 = ReLU).
struct DownOp(Strided, Option<f32>);

impl CustomOp3 for DownOp {
    fn name(&self) -> &'static str {
        "deepgen-conv-down"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (b, h, w, c) = xl.shape().dims4()?;
        let (k, n) = wl.shape().dims2()?;
        let g = self.0;
        if k != g.k * g.k * c || bl.shape().elem_count() != n {
            candle_core::bail!(
                "conv: weight {:?} does not fit a {}x{} kernel over {c} channels",
                wl.shape(),
                g.k,
                g.k
            );
        }
        let (x, wv, bias) =
            (f32s(xs, xl, "input")?, f32s(ws, wl, "weight")?, f32s(bs, bl, "bias")?);
        let (hl, wlo) = (g.lo(h), g.lo(w));
        let m = b * hl * wlo;
        let mut y = if let Some(s) = g.same(h, w) {
            same_conv::forward(s, x, c, wv, n, Some(bias))
        } else {
            // Bias rows written directly (no zero fill first).
            let mut y = Vec::with_capacity(m * n);
            for _ in 0..m {
                y.extend_from_slice(bias);
            }
            g.with_im2col(x, b, (h, w), c, |cols| {
                super::gemm(m, n, k, &mut y, cols, false, wv, false, true, true)
            });
            y
        };
        if let Some(a) = self.1 {
            // A select, not a branch (see the batch norm's forward in stack.rs).
            y.par_chunks_mut(1 << 14)
                .for_each(|c| c.iter_mut().for_each(|v| *v = if *v < 0.0 { *v * a } else { *v }));
        }
        Ok((CpuStorage::F32(y), Shape::from((b, hl, wlo, n))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        bias: &Tensor,
        y: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        use super::fused::read;
        if super::create_graph() {
            if self.1.is_some() {
                candle_core::bail!("conv: the fused activation has no graph-building backward");
            }
            let g = self.0;
            let (_, h, wd, c) = x.dims4()?;
            if g.hi(g.lo(h)) != h || g.hi(g.lo(wd)) != wd {
                let (dx, dw, db) = down_composed_grads(g, x, w, grad)?;
                return Ok((Some(dx), Some(dw), Some(db)));
            }
            // dx = col2im(grad W^T): the transposed convolution with weight W^T, itself one op
            // in the graph (its backward is this op's forward).
            let zero = Tensor::zeros(c, w.dtype(), w.device())?;
            let dx = grad.contiguous()?.apply_op3(&w.t()?.contiguous()?, &zero, UpOp(g))?;
            if super::inputs_only() {
                let (_, dw, db) =
                    super::graph::without_create_graph(|| self.bwd(x, w, bias, y, grad))?;
                return Ok((Some(dx), dw, db));
            }
            let (_, dw, db) = down_composed_grads(g, x, w, grad)?;
            return Ok((Some(dx), Some(dw), Some(db)));
        }
        let (b, h, wd, c) = x.dims4()?;
        let (k, n) = w.dims2()?;
        let g = self.0;
        let m = b * g.lo(h) * g.lo(wd);
        let (dz, db) = match self.1 {
            Some(a) => super::fused::leaky_pre_activation_grad(grad, y, a, n)?,
            None => super::fused::pre_activation_grad(grad, grad, Act::Identity, n)?,
        };
        let same = g.same(h, wd);
        // Constant weights (the critic during the generator's update) need no weight gradient.
        let dw = if !w.track_op() {
            None
        } else if let Some(s) = same {
            Some(read(x, |xv| same_conv::weight_grad(s, xv, c, &dz, n))?)
        } else {
            Some(read(x, |xv| {
                g.with_im2col(xv, b, (h, wd), c, |cols| super::gemm_at_b(k, n, m, cols, &dz))
            })?)
        };
        let back = same.map(|s| s.adjoint()).filter(|s| s.eligible());
        let dx = if let (true, Some(s)) = (x.track_op(), back) {
            let flipped = read(w, |wv| same_conv::flipped(wv, g.k, c, n))?;
            let dx = same_conv::forward(s, &dz, n, &flipped, c, None);
            Some(Tensor::from_vec(dx, x.shape(), x.device())?)
        } else if x.track_op() {
            // The GEMM overwrites the whole scratch buffer (no accumulation).
            let dx = super::with_scratch(m * k, |dcols| -> candle_core::Result<Vec<f32>> {
                read(w, |wv| super::gemm(m, k, n, dcols, &dz, false, wv, true, false, true))?;
                Ok(g.col2im(dcols, b, (h, wd), c, None))
            })?;
            Some(Tensor::from_vec(dx, x.shape(), x.device())?)
        } else {
            None
        };
        Ok((
            dx,
            dw.map(|d| Tensor::from_vec(d, w.shape(), w.device())).transpose()?,
            if bias.track_op() { Some(Tensor::from_vec(db, n, w.device())?) } else { None },
        ))
    }
}

/// Transposed convolution `[B, Hl, Wl, in]` -> `[B, Hh, Wh, out]`, weight `[in, k*k*out]`, as one
/// op:
/// one GEMM to per-pixel columns, then col2im.
struct UpOp(Strided);

impl CustomOp3 for UpOp {
    fn name(&self) -> &'static str {
        "deepgen-conv-up"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (b, h, w, c) = xl.shape().dims4()?;
        let (c2, kn) = wl.shape().dims2()?;
        let g = self.0;
        let n = bl.shape().elem_count();
        if c2 != c || kn != g.k * g.k * n {
            candle_core::bail!(
                "conv transpose: weight {:?} does not fit {c} inputs, a {}x{} \
                kernel and {n} outputs",
                wl.shape(),
                g.k,
                g.k
            );
        }
        let (x, wv, bias) =
            (f32s(xs, xl, "input")?, f32s(ws, wl, "weight")?, f32s(bs, bl, "bias")?);
        let m = b * h * w;
        let (hh, wh) = (g.hi(h), g.hi(w));
        if let Some(s) = g.same_up(h, w) {
            let down = same_conv::up_as_down(wv, g.k, c, n);
            let y = same_conv::forward(s, x, c, &down, n, Some(bias));
            return Ok((CpuStorage::F32(y), Shape::from((b, hh, wh, n))));
        }
        // The GEMM overwrites the whole scratch buffer (no accumulation).
        let y = super::with_scratch(m * kn, |cols| {
            super::gemm(m, kn, c, cols, x, false, wv, false, false, true);
            g.col2im(cols, b, (hh, wh), n, Some(bias))
        });
        Ok((CpuStorage::F32(y), Shape::from((b, hh, wh, n))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        bias: &Tensor,
        _y: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        use super::fused::read;
        if super::create_graph() {
            // dx = im2col(grad) W^T: the strided convolution with weight W^T, one op in the graph.
            let c = x.dim(3)?;
            let zero = Tensor::zeros(c, w.dtype(), w.device())?;
            let dx =
                grad.contiguous()?.apply_op3(&w.t()?.contiguous()?, &zero, DownOp(self.0, None))?;
            if super::inputs_only() {
                let (_, dw, db) =
                    super::graph::without_create_graph(|| self.bwd(x, w, bias, _y, grad))?;
                return Ok((Some(dx), dw, db));
            }
            let (_, dw, db) = up_composed_grads(self.0, x, w, bias, grad)?;
            return Ok((Some(dx), Some(dw), Some(db)));
        }
        let (b, h, wd, c) = x.dims4()?;
        let (_, kn) = w.dims2()?;
        let g = self.0;
        let n = bias.elem_count();
        let m = b * h * wd;
        let (hh, wh) = (g.hi(h), g.hi(wd));
        let db = read(grad, |gv| {
            let mut db = vec![0f32; n];
            for px in gv.chunks(n) {
                db.iter_mut().zip(px).for_each(|(a, &v)| *a += v);
            }
            db
        })?;
        if let Some(s) = g.same(hh, wh) {
            // This op is the adjoint of the convolution `s` from grad's size to x's: x's
            // gradient is that convolution of grad with W^T, the weight gradient its weight
            // gradient from grad to x, transposed.
            let dw = if w.track_op() {
                let d = read(grad, |gv| read(x, |xv| same_conv::weight_grad(s, gv, n, xv, c)))??;
                Some(Tensor::from_vec(same_conv::transposed(&d, kn, c), w.shape(), w.device())?)
            } else {
                None
            };
            let dx = if x.track_op() {
                let wt = read(w, |wv| same_conv::transposed(wv, c, kn))?;
                let dx = read(grad, |gv| same_conv::forward(s, gv, n, &wt, c, None))?;
                Some(Tensor::from_vec(dx, x.shape(), x.device())?)
            } else {
                None
            };
            let db =
                if bias.track_op() { Some(Tensor::from_vec(db, n, w.device())?) } else { None };
            return Ok((dx, dw, db));
        }
        let (dw, dx) = read(grad, |gv| {
            g.with_im2col(gv, b, (hh, wh), n, |dcols| -> candle_core::Result<_> {
                let dw = if w.track_op() {
                    Some(read(x, |xv| super::gemm_at_b(c, kn, m, xv, dcols))?)
                } else {
                    None
                };
                let dx = if x.track_op() {
                    let mut dx = vec![0f32; m * c];
                    read(w, |wv| {
                        super::gemm(m, c, kn, &mut dx, dcols, false, wv, true, false, true)
                    })?;
                    Some(Tensor::from_vec(dx, x.shape(), x.device())?)
                } else {
                    None
                };
                Ok((dw, dx))
            })
        })??;
        Ok((
            dx,
            dw.map(|d| Tensor::from_vec(d, w.shape(), w.device())).transpose()?,
            if bias.track_op() { Some(Tensor::from_vec(db, n, w.device())?) } else { None },
        ))
    }
}

/// Our `[k*k*in, out]` weight as candle's `[out, in, k, k]` conv2d kernel.
fn down_kernel(g: Strided, w: &Tensor) -> candle_core::Result<Tensor> {
    let (kc, n) = w.dims2()?;
    let c = kc / (g.k * g.k);
    w.reshape((g.k, g.k, c, n))?.permute((3, 2, 0, 1))?.contiguous()
}

/// Our `[in, k*k*out]` weight as candle's `[in, out, k, k]` conv_transpose2d kernel.
fn up_kernel(g: Strided, w: &Tensor, n: usize) -> candle_core::Result<Tensor> {
    let c = w.dim(0)?;
    w.reshape((c, g.k, g.k, n))?.permute((0, 3, 1, 2))?.contiguous()
}

/// The strided convolution as candle ops (NCHW conv2d between permutes): differentiable to any
/// order. On a CUDA device, deepgen's im2col kernel and one product instead (`conv_gpu`).
fn down_composed(g: Strided, x: &Tensor, w: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    #[cfg(feature = "cuda")]
    if crate::nn::cuda_kernels(x.device()) {
        return super::conv_gpu::down(g, x, w, b);
    }
    let y = x.permute((0, 3, 1, 2))?.contiguous()?.conv2d(
        &down_kernel(g, w)?,
        g.pad,
        g.stride,
        1,
        1,
    )?;
    y.permute((0, 2, 3, 1))?.broadcast_add(b)
}

/// The transposed convolution as candle ops: differentiable to any order. On a CUDA device, one
/// product and deepgen's col2im kernel instead (`conv_gpu`).
fn up_composed(g: Strided, x: &Tensor, w: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    #[cfg(feature = "cuda")]
    if crate::nn::cuda_kernels(x.device()) {
        return super::conv_gpu::up(g, x, w, b);
    }
    let n = b.elem_count();
    let y = x.permute((0, 3, 1, 2))?.contiguous()?.conv_transpose2d(
        &up_kernel(g, w, n)?,
        g.pad,
        0,
        g.stride,
        1,
    )?;
    y.permute((0, 2, 3, 1))?.broadcast_add(b)
}

/// The VJPs of the strided convolution as graph-building tensor ops (used under `create_graph`).
fn down_composed_grads(
    g: Strided,
    x: &Tensor,
    w: &Tensor,
    grad: &Tensor,
) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
    // dx: transposed convolution of grad with the same kernel (output size may need padding back to
    // x's size).
    let (_, h, wd, _) = x.dims4()?;
    let n = w.dim(1)?;
    let kern = down_kernel(g, w)?; // [n, c, k, k] = conv_transpose2d kernel with in = n, out = c
    let gn = grad.permute((0, 3, 1, 2))?.contiguous()?;
    let out_pad_h = h - g.hi(g.lo(h));
    let out_pad_w = wd - g.hi(g.lo(wd));
    if out_pad_h != out_pad_w {
        candle_core::bail!("conv: non-square output padding is not supported");
    }
    let dx = gn.conv_transpose2d(&kern, g.pad, out_pad_h, g.stride, 1)?.permute((0, 2, 3, 1))?;
    // dw[t*c + ci, o] = sum over pixels of x at the tap times grad: a gather of x (composed) then a
    // product.
    let cols = gather_strided_composed(g, x)?; // [B*Hl*Wl, k*k*c]
    let gm = grad.reshape(((), n))?;
    let dw = cols.t()?.matmul(&gm)?;
    let db = super::sum_rows(&gm)?;
    Ok((dx, dw, db))
}

fn up_composed_grads(
    g: Strided,
    x: &Tensor,
    w: &Tensor,
    bias: &Tensor,
    grad: &Tensor,
) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
    let n = bias.elem_count();
    let (b, h, wd, c) = x.dims4()?;
    let cols = gather_strided_composed(g, grad)?; // [B*H*W, k*k*n]: the adjoint of col2im
    let dx = cols.matmul(&w.t()?)?.reshape((b, h, wd, c))?;
    let dw = x.reshape((b * h * wd, c))?.t()?.matmul(&cols)?;
    let db = super::sum_rows(&grad.reshape(((), n))?)?;
    Ok((dx, dw, db))
}

/// im2col as candle ops: for every tap, the padded map sliced with the stride.
fn gather_strided_composed(g: Strided, x: &Tensor) -> candle_core::Result<Tensor> {
    let (b, h, w, c) = x.dims4()?;
    let (hl, wl) = (g.lo(h), g.lo(w));
    let s = g.stride;
    // Pad so every tap window of every low pixel is inside: rows needed s*(hl-1) + k.
    let need_h = s * (hl - 1) + g.k;
    let need_w = s * (wl - 1) + g.k;
    let xp = x.pad_with_zeros(1, g.pad, need_h.saturating_sub(h + g.pad))?.pad_with_zeros(
        2,
        g.pad,
        need_w.saturating_sub(w + g.pad),
    )?;
    let mut parts = Vec::with_capacity(g.k * g.k);
    for ky in 0..g.k {
        for kx in 0..g.k {
            // rows ky, ky+s, ..., ky+s*(hl-1)
            let rows = xp.narrow(1, ky, s * (hl - 1) + 1)?;
            let rows = if s > 1 {
                rows.pad_with_zeros(1, 0, s - 1)?
                    .reshape((b, hl, s, xp.dim(2)?, c))?
                    .narrow(2, 0, 1)?
                    .squeeze(2)?
            } else {
                rows
            };
            let cols = rows.narrow(2, kx, s * (wl - 1) + 1)?;
            let cols = if s > 1 {
                cols.pad_with_zeros(2, 0, s - 1)?
                    .reshape((b, hl, wl, s, c))?
                    .narrow(3, 0, 1)?
                    .squeeze(3)?
            } else {
                cols
            };
            parts.push(cols);
        }
    }
    Tensor::cat(&parts, 3)?.reshape((b * hl * wl, g.k * g.k * c))
}

/// A `k x k` convolution with stride `s` and zero padding `p` on channels-last maps.
/// Weight `{name}.weight` `[k*k*in, out]` (row `(ky*k + kx)*in + c`), bias `{name}.bias`.
///
/// # Shapes
/// `x: [B, H, W, in]` -> `[B, (H + 2p - k)/s + 1, (W + 2p - k)/s + 1, out]`
pub fn conv_down(g: Strided, x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    Ok(conv_down_act(g, x, w, b, None)?.0)
}

/// [`conv_down`] followed by max(y, a y) (a = 0: ReLU) in the same op where
/// the fused CPU path applies; the flag says whether the activation was applied.
pub(crate) fn conv_down_act(
    g: Strided,
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    act: Option<f32>,
) -> Result<(Tensor, bool)> {
    if crate::nn::cpu_kernels(x.device()) {
        // Under create_graph the activation stays a separate op: the graph-building backward
        // differentiates the convolution alone.
        let act = if super::create_graph() { None } else { act };
        return Ok((x.contiguous()?.apply_op3(w, b, DownOp(g, act))?, act.is_some()));
    }
    Ok((down_composed(g, x, w, b)?, false))
}

/// The transposed convolution (the adjoint of [`conv_down`]'s im2col) with
/// weight `[in, k*k*out]` (column `(ky*k + kx)*out + o`), bias `[out]`.
///
/// # Shapes
/// `x: [B, H, W, in]` -> `[B, (H-1)s + k - 2p, (W-1)s + k - 2p, out]`
pub fn conv_up(g: Strided, x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    if crate::nn::cpu_kernels(x.device()) {
        return Ok(x.contiguous()?.apply_op3(w, b, UpOp(g))?);
    }
    Ok(up_composed(g, x, w, b)?)
}
