//! Adam / AdamW (Kingma & Ba 2015; Loshchilov & Hutter 2019) as two fused
//! in-place passes per parameter. candle-nn's AdamW allocates a dozen
//! temporaries per parameter per step (measured: 50 ms of a 77 ms VAE step);
//! here the moments live in one `[2, n]` tensor per parameter and are updated
//! in place from the gradient (pass 1), then the parameter is updated in place
//! from the moments (pass 2). CPU kernels, and with the `cuda` feature the same two passes as
//! CUDA kernels (compiled by NVRTC at first use); on any other device, candle ops.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, DType, InplaceOp2, Layout, Tensor, Var};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::nn::slices::{f32s as slice, f32s_mut as slice_mut};
use crate::nn::Params;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AdamConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Decoupled weight decay (AdamW); 0 gives Adam.
    pub weight_decay: f64,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 }
    }
}

/// Work per thread: whole tensors below 64K values (threads cost more than they save there).
fn chunk_len(n: usize) -> usize {
    let threads = rayon::current_num_threads().max(1);
    n.div_ceil(threads).max(1 << 16)
}

/// Pass 1: m <- b1 m + (1 - b1) g s,  v <- b2 v + (1 - b2) (g s)^2, with s the clipping scale.
struct Moments {
    b1: f32,
    b2: f32,
    scale: f32,
}

impl InplaceOp2 for Moments {
    fn name(&self) -> &'static str {
        "deepgen-adam-moments"
    }
    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        mv: &mut candle_core::CudaStorage,
        ml: &Layout,
        g: &candle_core::CudaStorage,
        gl: &Layout,
    ) -> candle_core::Result<()> {
        cuda::launch("deepgen_adam_moments", mv, ml, g, gl, 2, &[self.b1, self.b2, self.scale])
    }
    fn cpu_fwd(
        &self,
        mv: &mut CpuStorage,
        ml: &Layout,
        g: &CpuStorage,
        gl: &Layout,
    ) -> candle_core::Result<()> {
        let g = slice(g, gl, self.name())?;
        let mv = slice_mut(mv, ml, self.name())?;
        let n = g.len();
        let (m, v) = mv.split_at_mut(n);
        let (b1, b2, s) = (self.b1, self.b2, self.scale);
        let chunk = chunk_len(n);
        m.par_chunks_mut(chunk).zip(v.par_chunks_mut(chunk)).zip(g.par_chunks(chunk)).for_each(
            |((m, v), g)| {
                for ((m, v), &g) in m.iter_mut().zip(v.iter_mut()).zip(g) {
                    let g = g * s;
                    *m = b1 * *m + (1.0 - b1) * g;
                    *v = b2 * *v + (1.0 - b2) * g * g;
                }
            },
        );
        Ok(())
    }
}

/// Pass 2: p <- p - lr wd p - lr (m / c1) / (sqrt(v / c2) + eps).
struct Update {
    lr: f32,
    wd: f32,
    c1: f32,
    c2: f32,
    eps: f32,
}

impl InplaceOp2 for Update {
    fn name(&self) -> &'static str {
        "deepgen-adam-update"
    }
    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        p: &mut candle_core::CudaStorage,
        pl: &Layout,
        mv: &candle_core::CudaStorage,
        ml: &Layout,
    ) -> candle_core::Result<()> {
        let k = [self.lr, 1.0 - self.lr * self.wd, 1.0 / self.c1, 1.0 / self.c2, self.eps];
        cuda::launch("deepgen_adam_update", p, pl, mv, ml, 1, &k)
    }
    fn cpu_fwd(
        &self,
        p: &mut CpuStorage,
        pl: &Layout,
        mv: &CpuStorage,
        ml: &Layout,
    ) -> candle_core::Result<()> {
        let p = slice_mut(p, pl, self.name())?;
        let mv = slice(mv, ml, self.name())?;
        let (m, v) = mv.split_at(p.len());
        let (lr, decay) = (self.lr, 1.0 - self.lr * self.wd);
        let (ic1, ic2, eps) = (1.0 / self.c1, 1.0 / self.c2, self.eps);
        let chunk = chunk_len(p.len());
        p.par_chunks_mut(chunk).zip(m.par_chunks(chunk)).zip(v.par_chunks(chunk)).for_each(
            |((p, m), v)| {
                for ((p, &m), &v) in p.iter_mut().zip(m).zip(v) {
                    *p = *p * decay - lr * (m * ic1) / ((v * ic2).sqrt() + eps);
                }
            },
        );
        Ok(())
    }
}

/// The two passes as CUDA kernels (`nn::cuda::ADAM`), compiled by NVRTC when first used on a
/// device (candle caches the module per device): one thread per parameter value, the CPU kernels'
/// formulas. The compiler may contract a multiply and an add into one FMA, so values can differ
/// from the CPU kernels' by rounding (tests/gpu.rs holds them to the portable ops on the same GPU,
/// tests/cuda_kernels.rs the same source, compiled as C, to the CPU kernels).
#[cfg(feature = "cuda")]
mod cuda {
    use candle_core::backend::BackendStorage;
    use candle_core::cuda_backend::cudarc::driver::PushKernelArg;
    use candle_core::{CudaStorage, Layout};

    /// Runs `name` on `dst` (`dst_per` x n values, written in place) and `src` ((3 - `dst_per`)
    /// x n values), with the f32 constants `k` after the length n.
    pub fn launch(
        name: &str,
        dst: &mut CudaStorage,
        dl: &Layout,
        src: &CudaStorage,
        sl: &Layout,
        dst_per: usize,
        k: &[f32],
    ) -> candle_core::Result<()> {
        let (Some((d0, d1)), Some((s0, s1))) = (dl.contiguous_offsets(), sl.contiguous_offsets())
        else {
            candle_core::bail!("{name}: the optimizer's tensors must be contiguous");
        };
        // Moments: dst is [2, n] against a gradient of n; update: dst is n against [2, n].
        let n = if dst_per == 2 { s1 - s0 } else { d1 - d0 };
        if (d1 - d0) != dst_per * n || (s1 - s0) != (3 - dst_per) * n {
            candle_core::bail!("{name}: {} and {} values do not fit", d1 - d0, s1 - s0);
        }
        let Ok(n32) = u32::try_from(n) else {
            candle_core::bail!("{name}: {n} values are more than one launch takes");
        };
        let dev = dst.device().clone();
        let ptx = crate::nn::cuda::device::ptx("deepgen_adam", &[crate::nn::cuda::ADAM])?;
        let func = dev.get_or_load_custom_func(name, "deepgen_adam", ptx)?;
        let src = src.as_cuda_slice::<f32>()?.slice(s0..s1);
        let mut dst = dst.as_cuda_slice_mut::<f32>()?.slice_mut(d0..d1);
        let mut b = func.builder();
        b.arg(&mut dst);
        b.arg(&src);
        b.arg(&n32);
        for v in k {
            b.arg(v);
        }
        // SAFETY: the kernel reads n (or 2n) values of src and writes n (or 2n) of dst, the
        // sizes checked above; one thread per value, bounds-checked in the kernel.
        unsafe { crate::nn::cuda::device::launch_over(b, n32) }?;
        Ok(())
    }
}

/// [`Moments`] then [`Update`] as candle ops, for devices without deepgen's CPU kernels (a GPU):
/// the same formulas, with temporaries.
fn portable_step(var: &Var, mv: &Var, g: &Tensor, mo: &Moments, up: &Update) -> Result<()> {
    let g = (g * mo.scale as f64)?;
    let (m, v) = (mv.as_tensor().get(0)?, mv.as_tensor().get(1)?);
    let m = ((m * mo.b1 as f64)? + (&g * (1.0 - mo.b1) as f64)?)?;
    let v = ((v * mo.b2 as f64)? + (g.sqr()? * (1.0 - mo.b2) as f64)?)?;
    let step =
        ((&m * (1.0 / up.c1) as f64)? / ((&v * (1.0 / up.c2) as f64)?.sqrt()? + up.eps as f64)?)?;
    let p = var.as_tensor().flatten_all()?;
    let p = ((p * (1.0 - up.lr * up.wd) as f64)? - (step * up.lr as f64)?)?;
    var.set(&p.reshape(var.shape())?)?;
    mv.set(&Tensor::stack(&[m, v], 0)?)?;
    Ok(())
}

/// The gradient norm from [`Adam::grad_square_sums`]'s values, added in order.
pub fn norm_of(square_sums: &[f64]) -> f64 {
    if square_sums.is_empty() {
        return 0.0;
    }
    square_sums.iter().sum::<f64>().sqrt()
}

/// Adam with its state: one `[2, n]` moment tensor per parameter, and the step count.
pub struct Adam {
    pub cfg: AdamConfig,
    pub step: usize,
    /// The step the bias correction counts from (0, or where [`Adam::restart`] zeroed the
    /// moments): update t uses beta^(step - since).
    pub since: usize,
    slots: Vec<(String, Var, Var)>,
}

impl Adam {
    pub fn new(params: &Params, cfg: AdamConfig) -> Result<Self> {
        let mut slots = Vec::new();
        for (name, var) in params.vars() {
            let mv = Var::zeros((2, var.elem_count()), DType::F32, var.device())?;
            slots.push((name.clone(), var.clone(), mv));
        }
        Ok(Self { cfg, step: 0, since: 0, slots })
    }

    /// Forgets the moments, as a fresh optimiser would have them, and counts the bias correction
    /// from the current step (Progressive GAN's reset at each new resolution).
    pub fn restart(&mut self) -> Result<()> {
        for (_, _, mv) in &self.slots {
            mv.set(&mv.as_tensor().zeros_like()?)?;
        }
        self.since = self.step;
        Ok(())
    }

    /// Global L2 norm of the gradients of every parameter. The per-parameter sums of squares
    /// are read back in one transfer (on a GPU, one synchronisation per step instead of one per
    /// parameter), then added in f64 in parameter order.
    pub fn grad_norm(&self, grads: &GradStore) -> Result<f64> {
        let sums = self.grad_square_sums(grads)?;
        if sums.is_empty() {
            return Ok(0.0);
        }
        let s = Tensor::stack(&sums, 0)?.to_vec1::<f32>()?;
        Ok(norm_of(&s.iter().map(|v| *v as f64).collect::<Vec<_>>()))
    }

    /// What [`Self::grad_norm`] adds up: each parameter's sum of squared gradients, a scalar
    /// tensor per parameter with a gradient, for a caller that reads them back together with
    /// other values (one transfer from a GPU) and takes [`norm_of`] of them.
    pub fn grad_square_sums(&self, grads: &GradStore) -> Result<Vec<Tensor>> {
        let mut sums = vec![];
        for (_, var, _) in &self.slots {
            if let Some(g) = grads.get(var.as_tensor()) {
                sums.push(g.sqr()?.sum_all()?);
            }
        }
        Ok(sums)
    }

    /// One update at learning rate `lr`; gradients are multiplied by `scale` (clipping).
    pub fn step(&mut self, grads: &GradStore, lr: f64, scale: f64) -> Result<()> {
        self.step += 1;
        let t = (self.step - self.since.min(self.step - 1)) as i32;
        let c = &self.cfg;
        let moments = Moments { b1: c.beta1 as f32, b2: c.beta2 as f32, scale: scale as f32 };
        let update = Update {
            lr: lr as f32,
            wd: c.weight_decay as f32,
            c1: (1.0 - c.beta1.powi(t)) as f32,
            c2: (1.0 - c.beta2.powi(t)) as f32,
            eps: c.eps as f32,
        };
        for (_, var, mv) in &self.slots {
            let Some(g) = grads.get(var.as_tensor()) else { continue };
            let g = g.flatten_all()?.contiguous()?;
            if crate::nn::cpu_kernels(g.device()) || crate::nn::cuda_kernels(g.device()) {
                mv.as_tensor().inplace_op2(&g, &moments)?;
                var.as_tensor().inplace_op2(mv.as_tensor(), &update)?;
            } else {
                portable_step(var, mv, &g, &moments, &update)?;
            }
        }
        Ok(())
    }

    /// The parameters this optimiser steps, in its order.
    pub fn vars(&self) -> Vec<Var> {
        self.slots.iter().map(|(_, v, _)| v.clone()).collect()
    }

    /// The `[2, n]` moment tensors, in [`Adam::vars`]' order (broadcast at a data-parallel start).
    pub fn moment_vars(&self) -> Vec<Var> {
        self.slots.iter().map(|(_, _, mv)| mv.clone()).collect()
    }

    /// (parameter, `[2, n]` moments) of every parameter, for differentiable look-ahead (unrolling).
    pub fn moments(&self) -> Vec<(Tensor, Tensor)> {
        self.slots
            .iter()
            .map(|(_, v, mv)| (v.as_tensor().clone(), mv.as_tensor().clone()))
            .collect()
    }

    /// The state as named tensors (`mv.{param}`), for `optimizer.safetensors`.
    pub fn state(&self) -> HashMap<String, Tensor> {
        self.slots.iter().map(|(n, _, mv)| (format!("mv.{n}"), mv.as_tensor().clone())).collect()
    }

    /// Restores moments saved by [`Adam::state`] at step `step`.
    pub fn load_state(
        &mut self,
        t: &HashMap<String, Tensor>,
        step: usize,
        path: &std::path::Path,
    ) -> Result<()> {
        for (n, _, mv) in &self.slots {
            let key = format!("mv.{n}");
            let s = t.get(&key).ok_or_else(|| {
                Error::checkpoint(path, format!("optimizer state `{key}` is missing"))
            })?;
            if s.dims() != mv.dims() {
                return Err(Error::checkpoint(
                    path,
                    format!(
                        "optimizer state `{key}` has shape {:?}, expected {:?}",
                        s.dims(),
                        mv.dims()
                    ),
                ));
            }
            let s = s.to_dtype(DType::F32)?;
            if s.flatten_all()?.to_vec1::<f32>()?.iter().any(|v| !v.is_finite()) {
                return Err(Error::checkpoint(
                    path,
                    format!(
                        "optimizer state `{key}` holds a non-finite value: the file is damaged"
                    ),
                ));
            }
            mv.set(&s.to_device(mv.device())?)?;
        }
        self.step = step;
        Ok(())
    }
}
