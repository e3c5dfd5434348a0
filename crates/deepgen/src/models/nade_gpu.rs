//! NADE's recurrence on a CUDA device: the kernels of `nn::cuda::NADE` as candle custom ops, in
//! place of the candle-op path (`Nade::logits_portable`), whose blocked prefix sums keep several
//! `[B, H, D]` intermediates; these keep `[~16K, D]` partial sums.

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::PushKernelArg;
use candle_core::cuda_backend::CudaDevice;
use candle_core::{CpuStorage, CudaStorage, CustomOp3, Layout, Shape, Tensor};

use crate::nn::cuda;
use crate::nn::cuda::device::{self, ptx};

/// The logits less b, `[B, D]`, from x `[B, D]`, W^T `[D, H]` and [V; c] `[D + 1, H]`.
pub(super) struct NadeCuda {
    pub dim: usize,
    pub hidden: usize,
}

/// The weight gradients from [x; g] `[2, B, D]`, W^T and [V; c]: d/dW^T then d/d[V; c], flat
/// (`(2 D + 1) H` values).
struct NadeCudaGrad {
    dim: usize,
    hidden: usize,
}

fn flat<'a>(
    s: &'a CudaStorage,
    l: &Layout,
    what: &str,
) -> candle_core::Result<candle_core::cuda_backend::cudarc::driver::CudaView<'a, f32>> {
    device::view(s, l, "nade", what)
}

fn u32_of(n: usize, what: &str) -> candle_core::Result<u32> {
    device::u32_of(n, "nade", what)
}

/// `out[i] = sum_k part[k n + i]` on the device.
fn sum_parts(
    dev: &CudaDevice,
    part: &candle_core::cuda_backend::cudarc::driver::CudaSlice<f32>,
    out: &mut candle_core::cuda_backend::cudarc::driver::CudaViewMut<'_, f32>,
    n: usize,
    parts: usize,
) -> candle_core::Result<()> {
    let f = dev.get_or_load_custom_func("deepgen_sum_parts", MODULE, module_ptx()?)?;
    let (n32, p32) = (u32_of(n, "values")?, u32_of(parts, "parts")?);
    let mut b = f.builder();
    b.arg(part);
    b.arg(out);
    b.arg(&n32);
    b.arg(&p32);
    // SAFETY: `part` holds parts x n values and `out` n, bounds-checked in the kernel.
    unsafe { device::launch_over(b, n32) }?;
    Ok(())
}

const MODULE: &str = "deepgen_nade";

fn module_ptx() -> candle_core::Result<&'static str> {
    ptx(MODULE, &[cuda::SUM_PARTS, cuda::NADE])
}

impl CustomOp3 for NadeCuda {
    fn name(&self) -> &'static str {
        "deepgen-nade-cuda"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        candle_core::bail!("deepgen-nade-cuda runs on CUDA devices (the CPU has deepgen-nade)")
    }

    fn cuda_fwd(
        &self,
        s1: &CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
        s3: &CudaStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        let (d, h) = (self.dim, self.hidden);
        let (x, wt, vc) = (flat(s1, l1, "x")?, flat(s2, l2, "W^T")?, flat(s3, l3, "[V; c]")?);
        if x.len() % d != 0 || wt.len() != d * h || vc.len() != (d + 1) * h {
            candle_core::bail!(
                "nade (cuda): {} {} {} values for D={d}, H={h}",
                x.len(),
                wt.len(),
                vc.len()
            );
        }
        let nb = x.len() / d;
        let (hc, _) = cuda::nade_split(nb, h);
        let runs = h.div_ceil(hc);
        let dev = s1.device().clone();
        // SAFETY: every value of both buffers is written below before it is read.
        let part = unsafe { dev.alloc::<f32>(runs * nb * d)? };
        let mut out = unsafe { dev.alloc::<f32>(nb * d)? };
        let f = dev.get_or_load_custom_func("deepgen_nade_fwd", MODULE, module_ptx()?)?;
        let threads = u32_of(nb * runs, "threads")?;
        let (nb32, d32, h32, hc32) =
            (u32_of(nb, "B")?, u32_of(d, "D")?, u32_of(h, "H")?, hc as u32);
        let mut b = f.builder();
        b.arg(&x);
        b.arg(&wt);
        b.arg(&vc);
        b.arg(&part);
        b.arg(&nb32);
        b.arg(&d32);
        b.arg(&h32);
        b.arg(&hc32);
        // SAFETY: the sizes are checked above; each thread writes its own run's D values of part.
        unsafe { device::launch_over(b, threads) }?;
        sum_parts(&dev, &part, &mut out.slice_mut(..), nb * d, runs)?;
        Ok((CudaStorage::wrap_cuda_slice(out, dev), Shape::from((nb, d))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        wt: &Tensor,
        vc: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (d, h) = (self.dim, self.hidden);
        let xg = Tensor::stack(&[x, grad], 0)?.contiguous()?;
        let op = NadeCudaGrad { dim: d, hidden: h };
        let packed = xg.apply_op3_no_bwd(&wt.contiguous()?, &vc.contiguous()?, &op)?;
        let dwt = packed.narrow(0, 0, d * h)?.reshape((d, h))?;
        let dvc = packed.narrow(0, d * h, (d + 1) * h)?.reshape((d + 1, h))?;
        // Data needs no gradient; a differentiable input (a test's) takes the CPU kernel's pass,
        // through host copies.
        let dx = if x.track_op() {
            let cpu = super::NadeDot { dim: d, hidden: h };
            cpu.bwd(x, &wt.t()?.contiguous()?, vc, res, grad)?.0
        } else {
            None
        };
        Ok((dx, Some(dwt), Some(dvc)))
    }
}

impl CustomOp3 for NadeCudaGrad {
    fn name(&self) -> &'static str {
        "deepgen-nade-cuda-grad"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        candle_core::bail!("deepgen-nade-cuda-grad runs on CUDA devices")
    }

    fn cuda_fwd(
        &self,
        s1: &CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
        s3: &CudaStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        let (d, h) = (self.dim, self.hidden);
        let (xg, wt, vc) = (flat(s1, l1, "[x; g]")?, flat(s2, l2, "W^T")?, flat(s3, l3, "[V; c]")?);
        if xg.len() % (2 * d) != 0 || wt.len() != d * h || vc.len() != (d + 1) * h {
            candle_core::bail!(
                "nade (cuda): {} {} {} values for D={d}, H={h}",
                xg.len(),
                wt.len(),
                vc.len()
            );
        }
        let nb = xg.len() / (2 * d);
        let (x, g) = (xg.slice(..nb * d), xg.slice(nb * d..));
        let (_, per) = cuda::nade_split(nb, h);
        let groups = nb.div_ceil(per);
        let dev = s1.device().clone();
        // SAFETY: every value of the buffers is written below before it is read.
        let pdw = unsafe { dev.alloc::<f32>(groups * d * h)? };
        let pdv = unsafe { dev.alloc::<f32>(groups * d * h)? };
        let pdc = unsafe { dev.alloc::<f32>(groups * h)? };
        let mut out = unsafe { dev.alloc::<f32>((2 * d + 1) * h)? };
        let f = dev.get_or_load_custom_func("deepgen_nade_bwd", MODULE, module_ptx()?)?;
        let threads = u32_of(groups * h, "threads")?;
        let (nb32, d32, h32, per32) =
            (u32_of(nb, "B")?, u32_of(d, "D")?, u32_of(h, "H")?, per as u32);
        let mut b = f.builder();
        b.arg(&x);
        b.arg(&g);
        b.arg(&wt);
        b.arg(&vc);
        b.arg(&pdw);
        b.arg(&pdv);
        b.arg(&pdc);
        b.arg(&nb32);
        b.arg(&d32);
        b.arg(&h32);
        b.arg(&per32);
        // SAFETY: the sizes are checked above; each thread writes its own group's and unit's
        // values of the partial sums.
        unsafe { device::launch_over(b, threads) }?;
        let (dh, ch) = (d * h, (d + 1) * h);
        sum_parts(&dev, &pdw, &mut out.slice_mut(..dh), dh, groups)?;
        sum_parts(&dev, &pdv, &mut out.slice_mut(dh..2 * dh), dh, groups)?;
        sum_parts(&dev, &pdc, &mut out.slice_mut(2 * dh..dh + ch), h, groups)?;
        Ok((CudaStorage::wrap_cuda_slice(out, dev), Shape::from((2 * d + 1) * h)))
    }
}
