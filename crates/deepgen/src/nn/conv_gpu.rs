//! The strided and transposed convolutions on a CUDA device: im2col or col2im
//! (`nn::cuda::IM2COL`) around one product, which candle runs on cuBLAS. Each op's backward is
//! the other op, so both directions (and the gradient penalty's second order) stay on the
//! kernels and the products; candle's own `conv_transpose2d` on CUDA, which its `conv2d`
//! backward also calls, loops over the inputs of every output value.
//!
//! The ops also run on the CPU (loops with the kernels' index arithmetic), only so that the unit
//! tests (`nn/conv_gpu_tests.rs`) check this composition (shapes, each op's backward, the second order) against
//! candle's convolutions on any machine; `nn/conv.rs` takes it on CUDA devices alone.
#![cfg_attr(not(feature = "cuda"), allow(dead_code))]

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};

use super::slices::f32s;
use super::strided::Strided;

/// `[B, H, W, C]` -> `[B Hl Wl, k k C]`.
#[derive(Clone, Copy)]
struct Im2Col(Strided);

/// `[B Hl Wl, k k C]` -> `[B, H, W, C]`, for the high side `H x W`.
#[derive(Clone, Copy)]
struct Col2Im(Strided, usize, usize);

/// im2col of `x` (`[b, h, w, c]`) as the kernel computes it, on the host.
fn im2col_host(g: Strided, x: &[f32], [b, h, w, c]: [usize; 4]) -> Vec<f32> {
    let (hl, wl, k) = (g.lo(h), g.lo(w), g.k);
    let mut cols = vec![0f32; b * hl * wl * k * k * c];
    for (row, out) in cols.chunks_exact_mut(k * k * c).enumerate() {
        let (ox, oy, bi) = (row % wl, (row / wl) % hl, row / (wl * hl));
        for ky in 0..k {
            for kx in 0..k {
                let iy = (oy * g.stride + ky) as isize - g.pad as isize;
                let ix = (ox * g.stride + kx) as isize - g.pad as isize;
                if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                    continue;
                }
                let at = ((bi * h + iy as usize) * w + ix as usize) * c;
                out[(ky * k + kx) * c..][..c].copy_from_slice(&x[at..at + c]);
            }
        }
    }
    cols
}

/// col2im of `cols` into `[b, h, w, c]` as the kernel computes it (each value's taps in order).
fn col2im_host(g: Strided, cols: &[f32], [b, h, w, c]: [usize; 4]) -> Vec<f32> {
    let (hl, wl, k, s) = (g.lo(h), g.lo(w), g.k, g.stride as isize);
    let kc = k * k * c;
    let mut x = vec![0f32; b * h * w * c];
    for (t, v) in x.iter_mut().enumerate() {
        let (ci, ix, iy, bi) = (t % c, (t / c) % w, (t / (c * w)) % h, t / (c * w * h));
        let mut acc = 0f32;
        for ky in 0..k {
            let ys = (iy + g.pad) as isize - ky as isize;
            if ys < 0 || ys % s != 0 || (ys / s) as usize >= hl {
                continue;
            }
            for kx in 0..k {
                let xs = (ix + g.pad) as isize - kx as isize;
                if xs < 0 || xs % s != 0 || (xs / s) as usize >= wl {
                    continue;
                }
                let row = (bi * hl + (ys / s) as usize) * wl + (xs / s) as usize;
                acc += cols[row * kc + (ky * k + kx) * c + ci];
            }
        }
        *v = acc;
    }
    x
}

/// Launches `name` over `threads` threads with the geometry's arguments.
#[cfg(feature = "cuda")]
fn launch(
    name: &str,
    src: &candle_core::CudaStorage,
    l: &Layout,
    out_len: usize,
    dims: [usize; 4],
    g: Strided,
    lo: (usize, usize),
) -> candle_core::Result<candle_core::CudaStorage> {
    use candle_core::backend::BackendStorage;
    use candle_core::cuda_backend::cudarc::driver::{LaunchConfig, PushKernelArg};
    use candle_core::cuda_backend::WrapErr;
    use candle_core::CudaStorage;

    use super::cuda::{self, device::ptx};
    const MODULE: &str = "deepgen_im2col";
    let Some((a, b)) = l.contiguous_offsets() else {
        candle_core::bail!("{name}: the input must be contiguous");
    };
    let dev = src.device().clone();
    let threads = if name == "deepgen_im2col" { out_len } else { dims.iter().product() };
    let u = |v: usize| {
        u32::try_from(v).map_err(|_| candle_core::Error::Msg(format!("{name}: {v} is too large")))
    };
    let args = [dims[0], dims[1], dims[2], dims[3], g.k, g.stride, g.pad, lo.0, lo.1];
    let args: Vec<u32> = args.iter().map(|&v| u(v)).collect::<candle_core::Result<_>>()?;
    let src = src.as_cuda_slice::<f32>()?.slice(a..b);
    // SAFETY: every value is written by its thread below before it is read.
    let out = unsafe { dev.alloc::<f32>(out_len)? };
    let f =
        dev.get_or_load_custom_func(name, MODULE, ptx(MODULE, &[cuda::SUM_PARTS, cuda::IM2COL])?)?;
    let mut lb = f.builder();
    lb.arg(&src);
    lb.arg(&out);
    for v in &args {
        lb.arg(v);
    }
    // SAFETY: `src` holds the input's values and `out` `out_len`; the kernel bounds-checks its
    // thread index against the sizes passed.
    unsafe { lb.launch(LaunchConfig::for_num_elems(u(threads)?)) }.w()?;
    Ok(CudaStorage::wrap_cuda_slice(out, dev))
}

impl CustomOp1 for Im2Col {
    fn name(&self) -> &'static str {
        "deepgen-im2col-cuda"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (b, h, w, c) = l.shape().dims4()?;
        let g = self.0;
        let cols = im2col_host(g, f32s(s, l, self.name())?, [b, h, w, c]);
        Ok((CpuStorage::F32(cols), Shape::from((b * g.lo(h) * g.lo(w), g.k * g.k * c))))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        let (b, h, w, c) = l.shape().dims4()?;
        let g = self.0;
        let (hl, wl) = (g.lo(h), g.lo(w));
        let len = b * hl * wl * g.k * g.k * c;
        let out = launch("deepgen_im2col", s, l, len, [b, h, w, c], g, (hl, wl))?;
        Ok((out, Shape::from((b * hl * wl, g.k * g.k * c))))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let (_, h, w, _) = arg.dims4()?;
        Ok(Some(grad.contiguous()?.apply_op1(Col2Im(self.0, h, w))?))
    }
}

impl Col2Im {
    /// The map `[b, h, w, c]` whose columns `l` holds.
    fn dims(&self, l: &Layout) -> candle_core::Result<[usize; 4]> {
        let (rows, kc) = l.shape().dims2()?;
        let Col2Im(g, h, w) = *self;
        let (hl, wl) = (g.lo(h), g.lo(w));
        let c = kc / (g.k * g.k);
        if c * g.k * g.k != kc || hl * wl == 0 || rows % (hl * wl) != 0 {
            candle_core::bail!("col2im: [{rows}, {kc}] are not the columns of {h}x{w} maps");
        }
        Ok([rows / (hl * wl), h, w, c])
    }
}

impl CustomOp1 for Col2Im {
    fn name(&self) -> &'static str {
        "deepgen-col2im-cuda"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let [b, h, w, c] = self.dims(l)?;
        let x = col2im_host(self.0, f32s(s, l, self.name())?, [b, h, w, c]);
        Ok((CpuStorage::F32(x), Shape::from((b, h, w, c))))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        let [b, h, w, c] = self.dims(l)?;
        let g = self.0;
        let (hl, wl) = (g.lo(h), g.lo(w));
        let out = launch("deepgen_col2im", s, l, b * h * w * c, [b, h, w, c], g, (hl, wl))?;
        Ok((out, Shape::from((b, h, w, c))))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op1(Im2Col(self.0))?))
    }
}

/// [`super::conv::conv_down`] on a CUDA device: `[B, H, W, in]` -> `[B, Hl, Wl, out]`.
pub(crate) fn down(g: Strided, x: &Tensor, w: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    down_unbiased(g, x, w)?.broadcast_add(b)
}

/// [`down`] without the bias (the masked convolutions' dense form adds their own).
pub(crate) fn down_unbiased(g: Strided, x: &Tensor, w: &Tensor) -> candle_core::Result<Tensor> {
    let (nb, h, wd, _) = x.dims4()?;
    let cols = x.contiguous()?.apply_op1(Im2Col(g))?;
    let n = w.dim(1)?;
    cols.matmul(w)?.reshape((nb, g.lo(h), g.lo(wd), n))
}

/// [`super::conv::conv_up`] on a CUDA device: `[B, H, W, in]` -> `[B, Hh, Wh, out]`.
pub(crate) fn up(g: Strided, x: &Tensor, w: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    let (nb, h, wd, c) = x.dims4()?;
    let cols = x.contiguous()?.reshape((nb * h * wd, c))?.matmul(w)?;
    cols.apply_op1(Col2Im(g, g.hi(h), g.hi(wd)))?.broadcast_add(b)
}
