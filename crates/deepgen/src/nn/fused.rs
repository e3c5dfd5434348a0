//! A fused dense layer for the CPU.
//!
//! candle runs `x.matmul(w) + b` then `relu` as three ops, and its backward
//! pass adds for each of them a zero-filled gradient buffer, an addition and
//! the ReLU mask as a comparison, a cast and a product; it also computes the
//! gradient of the layer's input when that input is data. Here the forward
//! pass is one GEMM into a bias-filled buffer with the activation applied in
//! place, and the backward pass computes only the gradients that are needed:
//! with direct GEMMs and loops by default, or with differentiable tensor ops
//! under [`crate::nn::with_create_graph`], so that gradients of gradients stay right.
//! Measured on the 784-512-512-32 VAE step: see bench/RESULTS.md.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Shape, Tensor};

use super::slices::f32s as slice;
use super::Act;

pub(crate) struct LinearOp {
    pub act: Act,
    /// Apply ReLU to the input first (the graph never holds relu(x)).
    pub in_relu: bool,
}

impl CustomOp3 for LinearOp {
    fn name(&self) -> &'static str {
        "deepgen-linear"
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
        let (x, w, b) = (slice(xs, xl, "input")?, slice(ws, wl, "weight")?, slice(bs, bl, "bias")?);
        let relu_x: Vec<f32>;
        let x = if self.in_relu {
            relu_x = x.iter().map(|v| v.max(0.0)).collect();
            &relu_x[..]
        } else {
            x
        };
        let (m, k) = xl.shape().dims2()?;
        let (k2, n) = wl.shape().dims2()?;
        if k != k2 || b.len() != n {
            candle_core::bail!(
                "linear: input {:?}, weight {:?}, bias {:?} do not fit",
                xl.shape(),
                wl.shape(),
                bl.shape()
            );
        }
        let mut y = b.repeat(m);
        let threads = candle_core::utils::get_num_threads();
        let par = if threads > 1 && m * n * k > 4096 {
            gemm::Parallelism::Rayon(threads)
        } else {
            gemm::Parallelism::None
        };
        super::gemm::count_flops(m, n, k);
        // SAFETY: the three buffers are contiguous row-major with the
        // lengths checked above (x: m*k, w: k*n, y: m*n); y is exclusively owned.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                y.as_mut_ptr(),
                1,
                n as isize,
                true,
                x.as_ptr(),
                1,
                k as isize,
                w.as_ptr(),
                1,
                n as isize,
                1.0f32,
                1.0f32,
                false,
                false,
                false,
                par,
            );
        }
        if self.act == Act::Relu {
            y.iter_mut().for_each(|v| *v = v.max(0.0));
        }
        Ok((CpuStorage::F32(y), Shape::from((m, n))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        y: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        if !super::create_graph() && crate::nn::cpu_kernels(x.device()) {
            return self.bwd_direct(x, w, b, y, grad);
        }
        if self.in_relu {
            candle_core::bail!(
                "linear: the input-ReLU form has no graph-building backward (use \
                relu then forward_act)"
            );
        }
        let dz = match self.act {
            Act::Identity => grad.clone(),
            Act::Relu => grad.contiguous()?.apply_op2(y, ReluGrad)?,
            other => candle_core::bail!("linear: {other:?} is not fused into the layer"),
        };
        let dw = x.t()?.matmul(&dz)?;
        // The bias gradient as ones[1, B] x dz: candle's sum over dim 0 walks
        // the rows element by element (about 10 % of an unrolled GAN step).
        let db = super::sum_rows(&dz)?;
        // The gradient of data is never needed; skipping it saves a third of the layer's backward
        // GEMMs.
        let dx = if x.track_op() { Some(dz.matmul(&w.t()?)?) } else { None };
        Ok((dx, Some(dw), Some(db)))
    }
}

impl LinearOp {
    /// The backward pass as plain GEMMs and loops (no graph). Inputs and
    /// weights are read in place, not copied out of their tensors.
    fn bwd_direct(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        y: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (m, k) = x.dims2()?;
        let n = w.dim(1)?;
        let (dz, db) = pre_activation_grad(grad, y, self.act, n)?;
        let threads = candle_core::utils::get_num_threads();
        let par = || {
            if threads > 1 && m * n * k > 4096 {
                gemm::Parallelism::Rayon(threads)
            } else {
                gemm::Parallelism::None
            }
        };
        // dW [k, n] = x^T [k, m] dz [m, n]; x^T is read through strides (row step 1, column step
        // k).
        let mut dw = Vec::new();
        let in_relu = self.in_relu;
        // Constant weights (the critic during the generator's update) need no weight gradient.
        let need_w = w.track_op();
        if need_w {
            dw = vec![0f32; k * n];
        }
        read(x, |xv| {
            if !need_w {
                return;
            }
            debug_assert_eq!(xv.len(), m * k);
            let relu_x: Vec<f32>;
            let xv = if in_relu {
                relu_x = xv.iter().map(|v| v.max(0.0)).collect();
                &relu_x[..]
            } else {
                xv
            };
            if m >= 8 * k.max(n) {
                // Many rows, a small weight (a layer applied at every pixel): split the reduction.
                dw = super::gemm_at_b(k, n, m, xv, &dz);
                return;
            }
            super::gemm::count_flops(k, n, m);
            // SAFETY: lengths: x m*k, dz m*n, dw k*n, all contiguous; dw exclusively owned.
            unsafe {
                gemm::gemm(
                    k,
                    n,
                    m,
                    dw.as_mut_ptr(),
                    1,
                    n as isize,
                    false,
                    xv.as_ptr(),
                    k as isize,
                    1,
                    dz.as_ptr(),
                    1,
                    n as isize,
                    0.0f32,
                    1.0f32,
                    false,
                    false,
                    false,
                    par(),
                );
            }
        })?;
        let dx = if x.track_op() {
            let mut dx = vec![0f32; m * k];
            read(w, |wv| {
                debug_assert_eq!(wv.len(), k * n);
                // dx [m, k] = dz [m, n] W^T [n, k]; W^T read through strides (row step 1, column
                // step n).
                super::gemm::count_flops(m, k, n);
                // SAFETY: lengths: dz m*n, w k*n, dx m*k, all contiguous; dx exclusively owned.
                unsafe {
                    gemm::gemm(
                        m,
                        k,
                        n,
                        dx.as_mut_ptr(),
                        1,
                        k as isize,
                        false,
                        dz.as_ptr(),
                        1,
                        n as isize,
                        wv.as_ptr(),
                        n as isize,
                        1,
                        0.0f32,
                        1.0f32,
                        false,
                        false,
                        false,
                        par(),
                    );
                }
            })?;
            if in_relu {
                read(x, |xv| {
                    dx.iter_mut().zip(xv).for_each(|(d, &v)| {
                        if v <= 0.0 {
                            *d = 0.0
                        }
                    })
                })?;
            }
            Some(Tensor::from_vec(dx, (m, k), x.device())?)
        } else {
            None
        };
        let dw = if need_w { Some(Tensor::from_vec(dw, (k, n), x.device())?) } else { None };
        let db = if b.track_op() { Some(Tensor::from_vec(db, n, x.device())?) } else { None };
        Ok((dx, dw, db))
    }
}

/// The gradient at the pre-activation of `y = act(z)` (the ReLU mask
/// applied) and its column sums, the bias gradient of a layer with `n` outputs.
pub(crate) fn pre_activation_grad(
    grad: &Tensor,
    y: &Tensor,
    act: Act,
    n: usize,
) -> candle_core::Result<(Vec<f32>, Vec<f32>)> {
    match act {
        Act::Identity => with_bias_grad(read(grad, |g| g.to_vec())?, n),
        Act::Relu => leaky_pre_activation_grad(grad, y, 0.0, n),
        Act::Leaky(a) => leaky_pre_activation_grad(grad, y, a, n),
        other => candle_core::bail!(
            "{other:?} is not fused into a layer (identity, ReLU or LeakyReLU are)"
        ),
    }
}

/// [`pre_activation_grad`] for `y = max(z, a z)` (a = 0: ReLU).
pub(crate) fn leaky_pre_activation_grad(
    grad: &Tensor,
    y: &Tensor,
    a: f32,
    n: usize,
) -> candle_core::Result<(Vec<f32>, Vec<f32>)> {
    with_bias_grad(read(grad, |g| read(y, |y| leaky_grad(g, y, a)))??, n)
}

fn with_bias_grad(dz: Vec<f32>, n: usize) -> candle_core::Result<(Vec<f32>, Vec<f32>)> {
    let mut db = vec![0f32; n];
    for row in dz.chunks(n.max(1)) {
        db.iter_mut().zip(row).for_each(|(a, &b)| *a += b);
    }
    Ok((dz, db))
}

/// `g * (y > 0 ? 1 : a)`: the gradient through `y = max(z, a z)` (a = 0:
/// ReLU), read from the output's sign, in parallel chunks.
pub(crate) fn leaky_grad(g: &[f32], y: &[f32], a: f32) -> Vec<f32> {
    use rayon::prelude::*;
    const CHUNK: usize = 16 * 1024;
    let mut out = vec![0f32; g.len()];
    out.par_chunks_mut(CHUNK).zip(g.par_chunks(CHUNK).zip(y.par_chunks(CHUNK))).for_each(
        |(o, (g, y))| {
            o.iter_mut()
                .zip(g.iter().zip(y))
                .for_each(|(o, (&g, &y))| *o = if y > 0.0 { g } else { a * g });
        },
    );
    out
}

/// Runs `f` on a tensor's f32 values in place when it is a contiguous CPU
/// tensor, or on a contiguous copy otherwise.
pub(crate) fn read<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> candle_core::Result<R> {
    {
        let (s, l) = t.storage_and_layout();
        if let (candle_core::Storage::Cpu(CpuStorage::F32(v)), Some((a, b))) =
            (&*s, l.contiguous_offsets())
        {
            return Ok(f(&v[a..b]));
        }
    }
    let v = t.flatten_all()?.contiguous()?.to_vec1::<f32>()?;
    Ok(f(&v))
}

/// `g * (y > 0)`: the ReLU backward mask applied to a gradient.
struct ReluGrad;

impl CustomOp2 for ReluGrad {
    fn name(&self) -> &'static str {
        "deepgen-relu-grad"
    }
    fn cpu_fwd(
        &self,
        gs: &CpuStorage,
        gl: &Layout,
        ys: &CpuStorage,
        yl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (g, y) = (slice(gs, gl, "gradient")?, slice(ys, yl, "output")?);
        let out = g.iter().zip(y).map(|(&g, &y)| if y > 0.0 { g } else { 0.0 }).collect();
        Ok((CpuStorage::F32(out), gl.shape().clone()))
    }
    fn bwd(
        &self,
        _g: &Tensor,
        y: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        // Linear in g with a piecewise-constant mask: d/dg = mask, d/dy = 0 almost everywhere.
        let dg = grad.contiguous()?.apply_op2(&y.contiguous()?, ReluGrad)?;
        Ok((Some(dg), Some(y.zeros_like()?.to_dtype(DType::F32)?)))
    }
}
