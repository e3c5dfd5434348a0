//! The convolutions on a CUDA device: im2col or col2im (`nn::cuda::IM2COL`) around one product,
//! which candle runs on cuBLAS, for the strided and transposed ones; the gather of the allowed
//! taps (`nn::cuda::TAPS`) and one product for the masked ones. Each op's backward is its
//! adjoint op, so both directions (and the gradient penalty's second order) stay on the kernels
//! and the products; candle's own `conv_transpose2d` on CUDA, which its `conv2d` backward also
//! calls, loops over the inputs of every output value.
//!
//! The ops also run on the CPU (loops with the kernels' index arithmetic), only so that the unit
//! tests (`nn/conv_gpu_tests.rs`) check this composition (shapes, each op's backward, the second
//! order) against candle's convolutions and the CPU gather on any machine; `nn/conv.rs` takes it
//! on CUDA devices alone.
#![cfg_attr(not(feature = "cuda"), allow(dead_code))]

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};

use super::slices::f32s;
use super::strided::{Strided, Tap};

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

/// The gather of `taps` from `x` (`[b, h, w, c]`) as the kernel computes it, on the host.
fn gather_host(taps: &[Tap], x: &[f32], [b, h, w, c]: [usize; 4]) -> Vec<f32> {
    let tc = taps.len() * c;
    let mut cols = vec![0f32; b * h * w * tc];
    for (row, out) in cols.chunks_exact_mut(tc.max(1)).enumerate() {
        let (ox, oy, bi) = (row % w, (row / w) % h, row / (w * h));
        for (k, &(dy, dx)) in taps.iter().enumerate() {
            let (y, xx) = (oy as i64 + dy as i64, ox as i64 + dx as i64);
            if y < 0 || xx < 0 || y >= h as i64 || xx >= w as i64 {
                continue;
            }
            let at = ((bi * h + y as usize) * w + xx as usize) * c;
            out[k * c..][..c].copy_from_slice(&x[at..at + c]);
        }
    }
    cols
}

/// The scatter of `cols` into `[b, h, w, c]` as the kernel computes it (each value's taps in
/// order).
fn scatter_host(taps: &[Tap], cols: &[f32], [b, h, w, c]: [usize; 4]) -> Vec<f32> {
    let tc = taps.len() * c;
    let mut x = vec![0f32; b * h * w * c];
    for (t, v) in x.iter_mut().enumerate() {
        let (ci, ix, iy, bi) = (t % c, (t / c) % w, (t / (c * w)) % h, t / (c * w * h));
        let mut acc = 0f32;
        for (k, &(dy, dx)) in taps.iter().enumerate() {
            let (y, xo) = (iy as i64 - dy as i64, ix as i64 - dx as i64);
            if y < 0 || xo < 0 || y >= h as i64 || xo >= w as i64 {
                continue;
            }
            acc += cols[((bi * h + y as usize) * w + xo as usize) * tc + k * c + ci];
        }
        *v = acc;
    }
    x
}

/// The taps as a kernel argument (`struct dg_taps` of `nn::cuda::TAPS`).
#[cfg(feature = "cuda")]
#[repr(C)]
#[derive(Clone, Copy)]
struct TapArg {
    n: u32,
    dy: [i32; super::cuda::MAX_TAPS],
    dx: [i32; super::cuda::MAX_TAPS],
}

// SAFETY: a plain `repr(C)` struct of integers, laid out as the kernels' `struct dg_taps`.
#[cfg(feature = "cuda")]
unsafe impl candle_core::cuda_backend::cudarc::driver::DeviceRepr for TapArg {}

#[cfg(feature = "cuda")]
impl TapArg {
    fn new(taps: &[Tap]) -> candle_core::Result<Self> {
        if taps.len() > super::cuda::MAX_TAPS {
            candle_core::bail!("gather taps (cuda): {} taps, at most {}", taps.len(), Self::MAX);
        }
        let mut a = Self { n: taps.len() as u32, dy: [0; Self::MAX], dx: [0; Self::MAX] };
        for (k, &(dy, dx)) in taps.iter().enumerate() {
            (a.dy[k], a.dx[k]) = (dy, dx);
        }
        Ok(a)
    }

    const MAX: usize = super::cuda::MAX_TAPS;
}

/// Launches `name`, one thread per value of a new output of `out_len` values: (the input, the
/// output, the taps if any, then `args`).
#[cfg(feature = "cuda")]
fn launch(
    name: &str,
    src: &candle_core::CudaStorage,
    l: &Layout,
    out_len: usize,
    taps: Option<&[Tap]>,
    args: &[usize],
) -> candle_core::Result<candle_core::CudaStorage> {
    use candle_core::backend::BackendStorage;
    use candle_core::cuda_backend::cudarc::driver::PushKernelArg;
    use candle_core::CudaStorage;

    use super::cuda::{self, device};
    const MODULE: &str = "deepgen_im2col";
    let dev = src.device().clone();
    let src = device::view(src, l, name, "the input")?;
    let u = |v: usize| device::u32_of(v, name, "a size");
    let args: Vec<u32> = args.iter().map(|&v| u(v)).collect::<candle_core::Result<_>>()?;
    let taps = taps.map(TapArg::new).transpose()?;
    // SAFETY: every value is written by its thread below before it is read.
    let out = unsafe { dev.alloc::<f32>(out_len)? };
    let sources = [cuda::SUM_PARTS, cuda::IM2COL, cuda::TAPS];
    let f = dev.get_or_load_custom_func(name, MODULE, device::ptx(MODULE, &sources)?)?;
    let mut lb = f.builder();
    lb.arg(&src);
    lb.arg(&out);
    if let Some(t) = &taps {
        lb.arg(t);
    }
    for v in &args {
        lb.arg(v);
    }
    // SAFETY: `src` holds the input's values and `out` `out_len`; the kernel bounds-checks its
    // thread index against the sizes passed.
    unsafe { device::launch_over(lb, u(out_len)?) }?;
    Ok(CudaStorage::wrap_cuda_slice(out, dev))
}

/// Which pixels a row of columns reads: a strided window (im2col, `k k` positions) or a masked
/// convolution's taps (stride 1, the map's own size).
#[derive(Clone)]
enum Window {
    Strided(Strided),
    Taps(Vec<Tap>),
}

impl Window {
    /// Positions per row of columns.
    fn len(&self) -> usize {
        match self {
            Window::Strided(g) => g.k * g.k,
            Window::Taps(t) => t.len(),
        }
    }

    /// The rows per image (low side) of `h x w` maps.
    fn lo(&self, h: usize, w: usize) -> (usize, usize) {
        match self {
            Window::Strided(g) => (g.lo(h), g.lo(w)),
            Window::Taps(_) => (h, w),
        }
    }

    fn cols_host(&self, x: &[f32], dims: [usize; 4]) -> Vec<f32> {
        match self {
            Window::Strided(g) => im2col_host(*g, x, dims),
            Window::Taps(t) => gather_host(t, x, dims),
        }
    }

    fn uncols_host(&self, cols: &[f32], dims: [usize; 4]) -> Vec<f32> {
        match self {
            Window::Strided(g) => col2im_host(*g, cols, dims),
            Window::Taps(t) => scatter_host(t, cols, dims),
        }
    }

    /// The columns (or, `adjoint`, the map of `dims`) on the device from `s`.
    #[cfg(feature = "cuda")]
    fn launch(
        &self,
        adjoint: bool,
        s: &candle_core::CudaStorage,
        l: &Layout,
        [b, h, w, c]: [usize; 4],
    ) -> candle_core::Result<candle_core::CudaStorage> {
        let (hl, wl) = self.lo(h, w);
        let n = if adjoint { b * h * w * c } else { b * hl * wl * self.len() * c };
        match self {
            Window::Strided(g) => {
                let name = if adjoint { "deepgen_col2im" } else { "deepgen_im2col" };
                launch(name, s, l, n, None, &[b, h, w, c, g.k, g.stride, g.pad, hl, wl])
            }
            Window::Taps(t) => {
                let name = if adjoint { "deepgen_scatter_taps" } else { "deepgen_gather_taps" };
                launch(name, s, l, n, Some(t), &[b, h, w, c])
            }
        }
    }
}

/// `[B, H, W, C]` -> `[B Hl Wl, K C]`: im2col, or the gather of the taps.
#[derive(Clone)]
struct Cols(Window);

/// The adjoint, `[B Hl Wl, K C]` -> `[B, H, W, C]` for maps of `H x W`: col2im, or the scatter
/// of the taps.
#[derive(Clone)]
struct Uncols(Window, usize, usize);

impl CustomOp1 for Cols {
    fn name(&self) -> &'static str {
        "deepgen-cols-cuda"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (b, h, w, c) = l.shape().dims4()?;
        let cols = self.0.cols_host(f32s(s, l, self.name())?, [b, h, w, c]);
        Ok((CpuStorage::F32(cols), self.shape([b, h, w, c])))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        let (b, h, w, c) = l.shape().dims4()?;
        Ok((self.0.launch(false, s, l, [b, h, w, c])?, self.shape([b, h, w, c])))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let (_, h, w, _) = arg.dims4()?;
        Ok(Some(grad.contiguous()?.apply_op1(Uncols(self.0.clone(), h, w))?))
    }
}

impl Cols {
    fn shape(&self, [b, h, w, c]: [usize; 4]) -> Shape {
        let (hl, wl) = self.0.lo(h, w);
        Shape::from((b * hl * wl, self.0.len() * c))
    }
}

impl Uncols {
    /// The map `[b, h, w, c]` whose columns `l` holds.
    fn dims(&self, l: &Layout) -> candle_core::Result<[usize; 4]> {
        let (rows, kc) = l.shape().dims2()?;
        let Uncols(win, h, w) = self;
        let ((hl, wl), k) = (win.lo(*h, *w), win.len());
        let c = kc / k.max(1);
        if k == 0 || c * k != kc || hl * wl == 0 || rows % (hl * wl) != 0 {
            candle_core::bail!("uncols: [{rows}, {kc}] are not {k} columns of {h}x{w} maps");
        }
        Ok([rows / (hl * wl), *h, *w, c])
    }
}

impl CustomOp1 for Uncols {
    fn name(&self) -> &'static str {
        "deepgen-uncols-cuda"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let dims = self.dims(l)?;
        let x = self.0.uncols_host(f32s(s, l, self.name())?, dims);
        Ok((CpuStorage::F32(x), Shape::from(dims.to_vec())))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        let dims = self.dims(l)?;
        Ok((self.0.launch(true, s, l, dims)?, Shape::from(dims.to_vec())))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op1(Cols(self.0.clone()))?))
    }
}

/// A masked convolution (`super::conv::MaskedConv`) on a CUDA device without its bias: the
/// gather of `taps` from `x` `[B, H, W, in]` times `w` `[T in, out]` -> `[B, H, W, out]`.
pub(crate) fn masked_unbiased(taps: &[Tap], x: &Tensor, w: &Tensor) -> candle_core::Result<Tensor> {
    let (nb, h, wd, _) = x.dims4()?;
    let cols = x.contiguous()?.apply_op1(Cols(Window::Taps(taps.to_vec())))?;
    cols.matmul(w)?.reshape((nb, h, wd, w.dim(1)?))
}

/// [`super::conv::conv_down`] on a CUDA device: `[B, H, W, in]` -> `[B, Hl, Wl, out]`.
pub(crate) fn down(g: Strided, x: &Tensor, w: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    down_unbiased(g, x, w)?.broadcast_add(b)
}

/// [`down`] without the bias (the masked convolutions' dense form adds their own).
pub(crate) fn down_unbiased(g: Strided, x: &Tensor, w: &Tensor) -> candle_core::Result<Tensor> {
    let (nb, h, wd, _) = x.dims4()?;
    let cols = x.contiguous()?.apply_op1(Cols(Window::Strided(g)))?;
    let n = w.dim(1)?;
    cols.matmul(w)?.reshape((nb, g.lo(h), g.lo(wd), n))
}

/// [`super::conv::conv_up`] on a CUDA device: `[B, H, W, in]` -> `[B, Hh, Wh, out]`.
pub(crate) fn up(g: Strided, x: &Tensor, w: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    let (nb, h, wd, c) = x.dims4()?;
    let cols = x.contiguous()?.reshape((nb * h * wd, c))?.matmul(w)?;
    cols.apply_op1(Uncols(Window::Strided(g), g.hi(h), g.hi(wd)))?.broadcast_add(b)
}
