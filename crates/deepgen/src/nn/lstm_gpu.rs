//! PixelRNN's scan on a CUDA device: the kernels of `nn::cuda::LSTM` as candle custom ops, one
//! launch per wave of cells, in place of the candle-op formulation (`models::pixelrnn`'s row
//! and column loops), whose backward is quadratic in the number of waves. As on the CPU, the
//! backward recomputes the forward activations first, then walks the waves in reverse; the
//! state weights' gradient is one product over every cell ([`state_grad`]). First-order only.

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{CudaSlice, CudaView, PushKernelArg};
use candle_core::cuda_backend::CudaDevice;
use candle_core::{CpuStorage, CudaStorage, CustomOp2, CustomOp3, Layout, Shape, Tensor};

use super::{state_grad_ops, Scan};
use crate::nn::cuda;
use crate::nn::cuda::device::{self, ptx};

const MODULE: &str = "deepgen_lstm";
const OP: &str = "grid lstm";

/// The hidden states `[B, H, W, C]` from the gates' pre-activations `[B, H, W, 4C]` and the
/// state weights `[taps C, 4C]`.
pub(super) struct GridLstmCuda {
    pub scan: Scan,
}

/// The gradient of the gates' pre-activations from (those, the state weights, the hidden
/// states' gradient).
struct GridLstmCudaGrad {
    scan: Scan,
}

/// The forward activations on the device: gates after their nonlinearities, cells, hidden states.
type Acts = [CudaSlice<f32>; 3];

/// One call's geometry: the scan, its waves' lengths, and the kernels' size arguments.
struct Grid {
    waves: Vec<usize>,
    args: [u32; 5],
    values: usize,
}

impl Grid {
    fn new(scan: Scan, gin: &Layout, wss: &Layout) -> candle_core::Result<Self> {
        let (b, h, w, c4) = gin.shape().dims4()?;
        let c = c4 / 4;
        if c4 % 4 != 0 || c == 0 || wss.shape().dims2()? != (scan.h_taps().len() * c, c4) {
            candle_core::bail!(
                "{OP} (cuda): state weights {:?} for gates {:?}",
                wss.shape(),
                gin.shape()
            );
        }
        let u = |n: usize, what: &str| device::u32_of(n, OP, what);
        let kind = match scan {
            Scan::Rows => 0,
            Scan::Diagonals => 1,
        };
        let args = [kind, u(b, "B")?, u(h, "H")?, u(w, "W")?, u(c, "C")?];
        let waves = scan.waves(h, w).iter().map(Vec::len).collect();
        Ok(Self { waves, args, values: b * h * w * c })
    }

    /// Launches `name` on wave `wv`, one thread per (image, cell, unit), with `bufs` first.
    fn launch(
        &self,
        dev: &CudaDevice,
        name: &str,
        wv: usize,
        bufs: &[CudaView<'_, f32>],
    ) -> candle_core::Result<()> {
        let f = dev.get_or_load_custom_func(
            name,
            MODULE,
            ptx(MODULE, &[cuda::SUM_PARTS, cuda::LSTM])?,
        )?;
        let wv32 = device::u32_of(wv, OP, "wave")?;
        let threads = self.args[1] as usize * self.waves[wv] * self.args[4] as usize;
        let threads = device::u32_of(threads, OP, "threads")?;
        let mut b = f.builder();
        for v in bufs {
            b.arg(v);
        }
        for v in &self.args {
            b.arg(v);
        }
        b.arg(&wv32);
        // SAFETY: the buffers hold the maps of the geometry in `args` (checked by the callers);
        // the kernel bounds-checks its thread index against the wave's cells.
        unsafe { device::launch_over(b, threads) }?;
        Ok(())
    }

    /// The forward scan: (gates after their nonlinearities, cell states, hidden states).
    fn forward(
        &self,
        dev: &CudaDevice,
        gin: &CudaView<'_, f32>,
        wss: &CudaView<'_, f32>,
    ) -> candle_core::Result<Acts> {
        let n = self.values;
        let acts = [dev.alloc_zeros::<f32>(4 * n)?, dev.alloc_zeros(n)?, dev.alloc_zeros(n)?];
        for wv in 0..self.waves.len() {
            let [gates, cell, hid] = &acts;
            let bufs =
                [gin.slice(..), wss.slice(..), gates.slice(..), cell.slice(..), hid.slice(..)];
            self.launch(dev, "deepgen_lstm_fwd", wv, &bufs)?;
        }
        Ok(acts)
    }
}

/// The geometry, device, state weights and forward activations of the scan of (gates `s1`,
/// state weights `s2`): what both ops start from.
fn scanned<'a>(
    scan: Scan,
    s1: &CudaStorage,
    l1: &Layout,
    s2: &'a CudaStorage,
    l2: &Layout,
) -> candle_core::Result<(Grid, CudaDevice, CudaView<'a, f32>, Acts)> {
    let g = Grid::new(scan, l1, l2)?;
    let (gin, wss) = (device::view(s1, l1, OP, "gates")?, device::view(s2, l2, OP, "weights")?);
    let dev = s1.device().clone();
    let acts = g.forward(&dev, &gin, &wss)?;
    Ok((g, dev, wss, acts))
}

impl CustomOp2 for GridLstmCuda {
    fn name(&self) -> &'static str {
        "deepgen-grid-lstm-cuda"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        candle_core::bail!(
            "deepgen-grid-lstm-cuda runs on CUDA devices (the CPU has deepgen-grid-lstm)"
        )
    }

    fn cuda_fwd(
        &self,
        s1: &CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        let (_, dev, _, [_, _, hid]) = scanned(self.scan, s1, l1, s2, l2)?;
        let (b, h, w, c4) = l1.shape().dims4()?;
        Ok((CudaStorage::wrap_cuda_slice(hid, dev), Shape::from((b, h, w, c4 / 4))))
    }

    fn bwd(
        &self,
        gin: &Tensor,
        wss: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let op = GridLstmCudaGrad { scan: self.scan };
        let dg = gin.apply_op3_no_bwd(&wss.contiguous()?, &grad.contiguous()?, &op)?;
        let dw = state_grad_ops(res, &dg, self.scan)?;
        Ok((Some(dg), Some(dw)))
    }
}

impl CustomOp3 for GridLstmCudaGrad {
    fn name(&self) -> &'static str {
        "deepgen-grid-lstm-cuda-grad"
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
        candle_core::bail!("deepgen-grid-lstm-cuda-grad runs on CUDA devices")
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
        let grad = device::view(s3, l3, OP, "gradient")?;
        let (g, dev, wss, [gates, cell, _]) = scanned(self.scan, s1, l1, s2, l2)?;
        if grad.len() != g.values {
            candle_core::bail!(
                "{OP} (cuda): a gradient of {:?} for gates {:?}",
                l3.shape(),
                l1.shape()
            );
        }
        let n = g.values;
        // dh starts as the output's gradient; each wave's states kernel adds what the next wave
        // sends back, and sets dc.
        let mut dh = dev.alloc_zeros::<f32>(n)?;
        dev.memcpy_dtod(&grad, &mut dh)?;
        let (dc, dcf) = (dev.alloc_zeros::<f32>(n)?, dev.alloc_zeros::<f32>(n)?);
        let dgin = dev.alloc_zeros::<f32>(4 * n)?;
        for wv in (0..g.waves.len()).rev() {
            let bufs = [
                gates.slice(..),
                cell.slice(..),
                dh.slice(..),
                dc.slice(..),
                dgin.slice(..),
                dcf.slice(..),
            ];
            g.launch(&dev, "deepgen_lstm_bwd_gates", wv, &bufs)?;
            if wv > 0 {
                let bufs =
                    [dgin.slice(..), wss.slice(..), dcf.slice(..), dh.slice(..), dc.slice(..)];
                g.launch(&dev, "deepgen_lstm_bwd_states", wv - 1, &bufs)?;
            }
        }
        Ok((CudaStorage::wrap_cuda_slice(dgin, dev), l1.shape().clone()))
    }
}
