//! The strided and transposed convolutions on a CUDA device: im2col or col2im
//! (`nn::cuda::IM2COL`) around one product, which candle runs on cuBLAS. Each op's backward is
//! the other op, so both directions (and the gradient penalty's second order) stay on the
//! kernels and the products; candle's own `conv_transpose2d` on CUDA, which its `conv2d`
//! backward also calls, loops over the inputs of every output value.

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{LaunchConfig, PushKernelArg};
use candle_core::cuda_backend::WrapErr;
use candle_core::{CpuStorage, CudaStorage, CustomOp1, Layout, Shape, Tensor};

use super::conv::Strided;
use super::cuda::{self, device::ptx};

const MODULE: &str = "deepgen_im2col";

/// `[B, H, W, C]` -> `[B Hl Wl, k k C]`.
#[derive(Clone, Copy)]
struct Im2Col(Strided);

/// `[B Hl Wl, k k C]` -> `[B, H, W, C]`, for the high side `H x W`.
#[derive(Clone, Copy)]
struct Col2Im(Strided, usize, usize);

/// Launches `name` over `threads` threads with the geometry's arguments.
fn launch(
    name: &str,
    src: &CudaStorage,
    l: &Layout,
    out_len: usize,
    dims: [usize; 4],
    g: Strided,
    lo: (usize, usize),
) -> candle_core::Result<CudaStorage> {
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

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        candle_core::bail!("deepgen-im2col-cuda runs on CUDA devices")
    }

    fn cuda_fwd(&self, s: &CudaStorage, l: &Layout) -> candle_core::Result<(CudaStorage, Shape)> {
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

impl CustomOp1 for Col2Im {
    fn name(&self) -> &'static str {
        "deepgen-col2im-cuda"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        candle_core::bail!("deepgen-col2im-cuda runs on CUDA devices")
    }

    fn cuda_fwd(&self, s: &CudaStorage, l: &Layout) -> candle_core::Result<(CudaStorage, Shape)> {
        let (rows, kc) = l.shape().dims2()?;
        let Col2Im(g, h, w) = *self;
        let (hl, wl) = (g.lo(h), g.lo(w));
        let c = kc / (g.k * g.k);
        if c * g.k * g.k != kc || hl * wl == 0 || rows % (hl * wl) != 0 {
            candle_core::bail!("col2im: [{rows}, {kc}] are not the columns of {h}x{w} maps");
        }
        let b = rows / (hl * wl);
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
pub(super) fn down(g: Strided, x: &Tensor, w: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    down_unbiased(g, x, w)?.broadcast_add(b)
}

/// [`down`] without the bias (the masked convolutions' dense form adds their own).
pub(super) fn down_unbiased(g: Strided, x: &Tensor, w: &Tensor) -> candle_core::Result<Tensor> {
    let (nb, h, wd, _) = x.dims4()?;
    let cols = x.contiguous()?.apply_op1(Im2Col(g))?;
    let n = w.dim(1)?;
    cols.matmul(w)?.reshape((nb, g.lo(h), g.lo(wd), n))
}

/// [`super::conv::conv_up`] on a CUDA device: `[B, H, W, in]` -> `[B, Hh, Wh, out]`.
pub(super) fn up(g: Strided, x: &Tensor, w: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    let (nb, h, wd, c) = x.dims4()?;
    let cols = x.contiguous()?.reshape((nb * h * wd, c))?.matmul(w)?;
    cols.apply_op1(Col2Im(g, g.hi(h), g.hi(wd)))?.broadcast_add(b)
}
