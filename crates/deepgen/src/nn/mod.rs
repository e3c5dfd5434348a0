//! Parameters and the layers candle-nn lacks or gets slow.
//!
//! [`Params`] is an ordered name -> `Var` map (the safetensors tensor names).
//! Layers store weights as `[in, out]` and compute `x.matmul(w)`: measured on
//! this project's MLP, that avoids the transposed copy that candle-nn's
//! `x.matmul(&w.t())` makes in forward and backward (16-19 ms -> 13 ms).

pub mod conv;
pub mod lstm;
pub mod ops;
pub mod stack;

use std::cell::Cell;
use std::collections::BTreeMap;

use candle_core::{DType, Device, Tensor, Var};

use crate::error::{Error, Result};
use crate::rng::{self, Rng};

thread_local! {
    static CREATE_GRAPH: Cell<bool> = const { Cell::new(false) };
}

/// Whether deepgen's fused ops build a differentiable graph in their backward
/// passes (needed only to differentiate a gradient again: gradient penalties,
/// R1, unrolled updates). Off by default on each thread: backward passes then
/// use direct GEMMs and loops, which is what makes training fast.
pub fn create_graph() -> bool {
    CREATE_GRAPH.with(|c| c.get())
}

/// Runs `f` with [`create_graph`] on for this thread (like PyTorch's
/// `backward(create_graph=True)`), restoring the previous setting after.
pub fn with_create_graph<T>(f: impl FnOnce() -> T) -> T {
    let prev = CREATE_GRAPH.with(|c| c.replace(true));
    let out = f();
    CREATE_GRAPH.with(|c| c.set(prev));
    out
}

/// The column sums of a 2-D tensor, `[B, N] -> [N]`, as the product
/// ones[1, B] x t: differentiable (it stays in the graph when
/// [`create_graph`] is on) and a GEMM, where candle's `sum(0)` walks the
/// rows element by element.
pub fn sum_rows(t: &Tensor) -> candle_core::Result<Tensor> {
    let (b, _) = t.dims2()?;
    Tensor::ones((1, b), t.dtype(), t.device())?.matmul(t)?.squeeze(0)
}

/// The trainable tensors of a model, by stable name.
#[derive(Clone, Debug, Default)]
pub struct Params {
    vars: BTreeMap<String, Var>,
}

impl Params {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a tensor as a trainable variable under `name`.
    pub fn add(&mut self, name: &str, t: Tensor) -> Result<Tensor> {
        if self.vars.contains_key(name) {
            return Err(Error::config(format!("parameter `{name}` registered twice")));
        }
        let v = Var::from_tensor(&t.to_dtype(DType::F32)?)?;
        let out = v.as_tensor().clone();
        self.vars.insert(name.to_string(), v);
        Ok(out)
    }

    /// PyTorch's default initialisation: uniform in +-1/sqrt(fan_in)
    /// (Kaiming-uniform with a = sqrt(5) gives exactly this bound).
    pub fn uniform_fan_in(&mut self, name: &str, shape: &[usize], fan_in: usize, rng: &mut Rng, dev: &Device) -> Result<Tensor> {
        let bound = 1.0 / (fan_in.max(1) as f32).sqrt();
        let t = rng::uniform(rng, shape, -bound, bound, dev)?;
        self.add(name, t)
    }

    /// Registers an existing variable (shared, not copied) under `name`.
    pub fn insert_var(&mut self, name: &str, v: Var) -> Result<()> {
        if self.vars.insert(name.to_string(), v).is_some() {
            return Err(Error::config(format!("parameter `{name}` registered twice")));
        }
        Ok(())
    }

    pub fn zeros(&mut self, name: &str, shape: &[usize], dev: &Device) -> Result<Tensor> {
        self.add(name, Tensor::zeros(shape, DType::F32, dev)?)
    }

    pub fn vars(&self) -> impl Iterator<Item = (&String, &Var)> {
        self.vars.iter()
    }

    pub fn get(&self, name: &str) -> Option<&Var> {
        self.vars.get(name)
    }

    pub fn len(&self) -> usize {
        self.vars.len()
    }

    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }

    /// Total number of scalars.
    pub fn count(&self) -> usize {
        self.vars.values().map(|v| v.elem_count()).sum()
    }

    /// Names and shapes, for `deepgen models` and checkpoint checks.
    pub fn shapes(&self) -> Vec<(String, Vec<usize>)> {
        self.vars.iter().map(|(k, v)| (k.clone(), v.dims().to_vec())).collect()
    }

    /// Copies `tensors` into the variables; every variable must be present
    /// with its exact shape, and nothing else may be.
    pub fn load(&self, tensors: &std::collections::HashMap<String, Tensor>, path: &std::path::Path) -> Result<()> {
        for (name, var) in &self.vars {
            let t = tensors.get(name).ok_or_else(|| Error::checkpoint(path, format!("tensor `{name}` is missing (a checkpoint of another model?)")))?;
            if t.dims() != var.dims() {
                return Err(Error::checkpoint(path, format!("tensor `{name}` has shape {:?}, the model expects {:?}", t.dims(), var.dims())));
            }
            var.set(&t.to_dtype(DType::F32)?.to_device(var.device())?)?;
        }
        if let Some(extra) = tensors.keys().find(|k| !self.vars.contains_key(*k)) {
            return Err(Error::checkpoint(path, format!("unexpected tensor `{extra}` (a checkpoint of another model?)")));
        }
        Ok(())
    }
}

/// A fully connected layer, `y = act(x W + b)` with `W: [in, out]`.
#[derive(Clone, Debug)]
pub struct Linear {
    pub w: Tensor,
    pub b: Tensor,
}

/// The activation fused into [`Linear::forward_act`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    Identity,
    Relu,
}

impl Linear {
    /// Registers `{name}.weight` `[in, out]` and `{name}.bias` `[out]` with PyTorch's init.
    pub fn new(p: &mut Params, name: &str, d_in: usize, d_out: usize, rng: &mut Rng, dev: &Device) -> Result<Self> {
        let w = p.uniform_fan_in(&format!("{name}.weight"), &[d_in, d_out], d_in, rng, dev)?;
        let b = p.uniform_fan_in(&format!("{name}.bias"), &[d_out], d_in, rng, dev)?;
        Ok(Self { w, b })
    }

    /// # Shapes
    /// `x: [B, in]` -> `[B, out]`
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_act(x, Act::Identity)
    }

    /// `act(x W + b)` as one op on CPU (see [`fused`]); candle ops elsewhere.
    ///
    /// # Shapes
    /// `x: [B, in]` -> `[B, out]`
    pub fn forward_act(&self, x: &Tensor, act: Act) -> Result<Tensor> {
        if x.device().is_cpu() && x.rank() == 2 {
            return Ok(x.contiguous()?.apply_op3(&self.w, &self.b, fused::LinearOp { act, in_relu: false })?);
        }
        let y = x.broadcast_matmul(&self.w)?.broadcast_add(&self.b)?;
        Ok(match act {
            Act::Identity => y,
            Act::Relu => y.relu()?,
        })
    }

    /// `act(relu(x) W + b)`: a pre-activation layer. On CPU the input's ReLU
    /// happens inside the op, so relu(x) is never a tensor of the graph.
    ///
    /// # Shapes
    /// `x: [B, in]` -> `[B, out]`
    pub fn forward_relu_in(&self, x: &Tensor, act: Act) -> Result<Tensor> {
        if x.device().is_cpu() && x.rank() == 2 && !create_graph() {
            return Ok(x.contiguous()?.apply_op3(&self.w, &self.b, fused::LinearOp { act, in_relu: true })?);
        }
        self.forward_act(&x.relu()?, act)
    }
}

/// `a^T b` for `a: [m, k]`, `b: [m, n]` with m large and k, n small (the
/// weight gradient of a layer applied at every pixel): the reduction over m
/// is split across threads, each with its own `[k, n]` partial sum. The GEMM
/// crate parallelises over the output, which here is too small to split.
pub(crate) fn gemm_at_b(k: usize, n: usize, m: usize, a: &[f32], b: &[f32]) -> Vec<f32> {
    use rayon::prelude::*;
    let threads = candle_core::utils::get_num_threads().max(1);
    let rows = m.div_ceil(threads).max(1);
    let parts: Vec<Vec<f32>> = a
        .par_chunks(rows * k)
        .zip(b.par_chunks(rows * n))
        .map(|(ac, bc)| {
            let r = ac.len() / k.max(1);
            let mut out = vec![0f32; k * n];
            gemm(k, n, r, &mut out, ac, true, bc, false, false, false);
            out
        })
        .collect();
    let mut out = vec![0f32; k * n];
    for p in parts {
        out.iter_mut().zip(p).for_each(|(o, v)| *o += v);
    }
    out
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Vec<Vec<f32>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` on a reused per-thread buffer of `len` values whose contents are
/// left over from earlier use: `f` must write every value it reads. The
/// im2col columns of a convolution are megabytes per call; a fresh allocation
/// for each costs the kernel's page zeroing, which here is paid once.
pub(crate) fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    let mut buf = SCRATCH.with(|s| s.borrow_mut().pop()).unwrap_or_default();
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    let r = f(&mut buf[..len]);
    SCRATCH.with(|s| s.borrow_mut().push(buf));
    r
}

/// `dst [m, n] (+)= a [m, k] b [k, n]`, either operand read transposed
/// (`a_t`: `a` holds `[k, m]` row-major), with rayon inside the product when
/// `parallel` and the product is big enough to pay for it.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm(m: usize, n: usize, k: usize, dst: &mut [f32], a: &[f32], a_t: bool, b: &[f32], b_t: bool, accumulate: bool, parallel: bool) {
    let threads = candle_core::utils::get_num_threads();
    if parallel && threads > 1 && m >= 64 * threads && m * n * k > (1 << 22) {
        // Large products: one single-threaded GEMM per block of dst rows, run
        // by rayon; measured faster on the DCGAN step than gemm's own threading.
        gemm_row_blocks(m, n, k, dst, a, a_t, b, b_t, accumulate, threads);
        return;
    }
    assert!(dst.len() >= m * n && a.len() >= m * k && b.len() >= k * n, "gemm: buffers too small");
    let (a_cs, a_rs) = if a_t { (m as isize, 1) } else { (1, k as isize) };
    let (b_cs, b_rs) = if b_t { (k as isize, 1) } else { (1, n as isize) };
    let par = if parallel && threads > 1 && m * n * k > 32768 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    // SAFETY: the slices hold at least m*k, k*n and m*n values (asserted above),
    // read with the strides of their row-major layouts; dst is exclusively borrowed.
    unsafe {
        gemm::gemm(m, n, k, dst.as_mut_ptr(), 1, n as isize, accumulate, a.as_ptr(), a_cs, a_rs, b.as_ptr(), b_cs, b_rs, 1.0f32, 1.0f32, false, false, false, par);
    }
}

/// [`gemm`] as `parts` single-threaded GEMMs over blocks of dst rows, in parallel.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_row_blocks(m: usize, n: usize, k: usize, dst: &mut [f32], a: &[f32], a_t: bool, b: &[f32], b_t: bool, accumulate: bool, parts: usize) {
    use rayon::prelude::*;
    assert!(dst.len() >= m * n && a.len() >= m * k && b.len() >= k * n, "gemm: buffers too small");
    let (a_cs, a_rs) = if a_t { (m as isize, 1) } else { (1, k as isize) };
    let (b_cs, b_rs) = if b_t { (k as isize, 1) } else { (1, n as isize) };
    let rows = m.div_ceil(parts.max(1)).max(1);
    dst[..m * n].par_chunks_mut(rows * n.max(1)).enumerate().for_each(|(i, d)| {
        let r0 = i * rows;
        let r = d.len() / n.max(1);
        let a_off = if a_t { r0 } else { r0 * k };
        // SAFETY: rows r0..r0+r of a (offset a_off, same strides) and of dst (this
        // chunk) lie within the asserted lengths; each chunk of dst has one task.
        unsafe {
            gemm::gemm(r, n, k, d.as_mut_ptr(), 1, n as isize, accumulate, a.as_ptr().add(a_off), a_cs, a_rs, b.as_ptr(), b_cs, b_rs, 1.0f32, 1.0f32, false, false, false, gemm::Parallelism::None);
        }
    });
}

#[cfg(test)]
mod tests {
    /// The row-block GEMM equals a plain triple loop for every transposition and with accumulation.
    #[test]
    fn row_block_gemm_matches_a_triple_loop() {
        let (m, n, k) = (301, 37, 53);
        let val = |i: usize| ((i * 7919 % 1000) as f32 - 500.0) / 250.0;
        let a: Vec<f32> = (0..m * k).map(val).collect();
        let b: Vec<f32> = (0..k * n).map(|i| val(i + 17)).collect();
        for (a_t, b_t) in [(false, false), (true, false), (false, true), (true, true)] {
            for accumulate in [false, true] {
                let start: Vec<f32> = (0..m * n).map(|i| val(i + 3)).collect();
                let mut want = start.clone();
                for i in 0..m {
                    for j in 0..n {
                        let mut acc = 0f64;
                        for p in 0..k {
                            let x = if a_t { a[p * m + i] } else { a[i * k + p] };
                            let y = if b_t { b[j * k + p] } else { b[p * n + j] };
                            acc += x as f64 * y as f64;
                        }
                        want[i * n + j] = acc as f32 + if accumulate { start[i * n + j] } else { 0.0 };
                    }
                }
                let mut got = start.clone();
                super::gemm_row_blocks(m, n, k, &mut got, &a, a_t, &b, b_t, accumulate, 3);
                for (g, w) in got.iter().zip(&want) {
                    assert!((g - w).abs() < 1e-3 * (1.0 + w.abs()), "a_t {a_t} b_t {b_t} accumulate {accumulate}: {g} vs {w}");
                }
            }
        }
    }
}

/// A fused dense layer for the CPU.
///
/// candle runs `x.matmul(w) + b` then `relu` as three ops, and its backward
/// pass adds for each of them a zero-filled gradient buffer, an addition and
/// the ReLU mask as a comparison, a cast and a product; it also computes the
/// gradient of the layer's input when that input is data. Here the forward
/// pass is one GEMM into a bias-filled buffer with the activation applied in
/// place, and the backward pass computes only the gradients that are needed:
/// with direct GEMMs and loops by default, or with differentiable tensor ops
/// under [`crate::nn::with_create_graph`], so that gradients of gradients stay right.
/// Measured on the 784-512-512-32 VAE step: see bench/RESULTS.md.
pub mod fused {
    use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Shape, Tensor};

    use super::Act;

    fn slice<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> candle_core::Result<&'a [f32]> {
        match (s, l.contiguous_offsets()) {
            (CpuStorage::F32(v), Some((a, b))) => Ok(&v[a..b]),
            _ => candle_core::bail!("linear: {what} must be contiguous f32"),
        }
    }

    pub(crate) struct LinearOp {
        pub act: Act,
        /// Apply ReLU to the input first (the graph never holds relu(x)).
        pub in_relu: bool,
    }

    impl CustomOp3 for LinearOp {
        fn name(&self) -> &'static str {
            "deepgen-linear"
        }

        fn cpu_fwd(&self, xs: &CpuStorage, xl: &Layout, ws: &CpuStorage, wl: &Layout, bs: &CpuStorage, bl: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
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
                candle_core::bail!("linear: input {:?}, weight {:?}, bias {:?} do not fit", xl.shape(), wl.shape(), bl.shape());
            }
            let mut y = vec![0f32; m * n];
            for row in y.chunks_mut(n) {
                row.copy_from_slice(b);
            }
            let threads = candle_core::utils::get_num_threads();
            let par = if threads > 1 && m * n * k > 4096 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
            // SAFETY: the three buffers are contiguous row-major with the
            // lengths checked above (x: m*k, w: k*n, y: m*n); y is exclusively owned.
            unsafe {
                gemm::gemm(m, n, k, y.as_mut_ptr(), 1, n as isize, true, x.as_ptr(), 1, k as isize, w.as_ptr(), 1, n as isize, 1.0f32, 1.0f32, false, false, false, par);
            }
            if self.act == Act::Relu {
                y.iter_mut().for_each(|v| *v = v.max(0.0));
            }
            Ok((CpuStorage::F32(y), Shape::from((m, n))))
        }

        fn bwd(&self, x: &Tensor, w: &Tensor, b: &Tensor, y: &Tensor, grad: &Tensor) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
            if !super::create_graph() && x.device().is_cpu() {
                return self.bwd_direct(x, w, b, y, grad);
            }
            if self.in_relu {
                candle_core::bail!("linear: the input-ReLU form has no graph-building backward (use relu then forward_act)");
            }
            let dz = match self.act {
                Act::Identity => grad.clone(),
                Act::Relu => grad.contiguous()?.apply_op2(y, ReluGrad)?,
            };
            let dw = x.t()?.matmul(&dz)?;
            // The bias gradient as ones[1, B] x dz: candle's sum over dim 0 walks
            // the rows element by element (about 10 % of an unrolled GAN step).
            let db = super::sum_rows(&dz)?;
            // The gradient of data is never needed; skipping it saves a third of the layer's backward GEMMs.
            let dx = if x.track_op() { Some(dz.matmul(&w.t()?)?) } else { None };
            Ok((dx, Some(dw), Some(db)))
        }
    }

    impl LinearOp {
        /// The backward pass as plain GEMMs and loops (no graph). Inputs and
        /// weights are read in place, not copied out of their tensors.
        fn bwd_direct(&self, x: &Tensor, w: &Tensor, b: &Tensor, y: &Tensor, grad: &Tensor) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
            let (m, k) = x.dims2()?;
            let n = w.dim(1)?;
            let (dz, db) = pre_activation_grad(grad, y, self.act, n)?;
            let threads = candle_core::utils::get_num_threads();
            let par = || if threads > 1 && m * n * k > 4096 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
            // dW [k, n] = x^T [k, m] dz [m, n]; x^T is read through strides (row step 1, column step k).
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
                // SAFETY: lengths: x m*k, dz m*n, dw k*n, all contiguous; dw exclusively owned.
                unsafe {
                    gemm::gemm(k, n, m, dw.as_mut_ptr(), 1, n as isize, false, xv.as_ptr(), k as isize, 1, dz.as_ptr(), 1, n as isize, 0.0f32, 1.0f32, false, false, false, par());
                }
            })?;
            let dx = if x.track_op() {
                let mut dx = vec![0f32; m * k];
                read(w, |wv| {
                    debug_assert_eq!(wv.len(), k * n);
                    // dx [m, k] = dz [m, n] W^T [n, k]; W^T read through strides (row step 1, column step n).
                    // SAFETY: lengths: dz m*n, w k*n, dx m*k, all contiguous; dx exclusively owned.
                    unsafe {
                        gemm::gemm(m, k, n, dx.as_mut_ptr(), 1, k as isize, false, dz.as_ptr(), 1, n as isize, wv.as_ptr(), n as isize, 1, 0.0f32, 1.0f32, false, false, false, par());
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
    pub(crate) fn pre_activation_grad(grad: &Tensor, y: &Tensor, act: Act, n: usize) -> candle_core::Result<(Vec<f32>, Vec<f32>)> {
        match act {
            Act::Identity => with_bias_grad(read(grad, |g| g.to_vec())?, n),
            Act::Relu => leaky_pre_activation_grad(grad, y, 0.0, n),
        }
    }

    /// [`pre_activation_grad`] for `y = max(z, a z)` (a = 0: ReLU).
    pub(crate) fn leaky_pre_activation_grad(grad: &Tensor, y: &Tensor, a: f32, n: usize) -> candle_core::Result<(Vec<f32>, Vec<f32>)> {
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
        out.par_chunks_mut(CHUNK).zip(g.par_chunks(CHUNK).zip(y.par_chunks(CHUNK))).for_each(|(o, (g, y))| {
            o.iter_mut().zip(g.iter().zip(y)).for_each(|(o, (&g, &y))| *o = if y > 0.0 { g } else { a * g });
        });
        out
    }

    /// Runs `f` on a tensor's f32 values in place when it is a contiguous CPU
    /// tensor, or on a contiguous copy otherwise.
    pub(crate) fn read<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> candle_core::Result<R> {
        {
            let (s, l) = t.storage_and_layout();
            if let (candle_core::Storage::Cpu(CpuStorage::F32(v)), Some((a, b))) = (&*s, l.contiguous_offsets()) {
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
        fn cpu_fwd(&self, gs: &CpuStorage, gl: &Layout, ys: &CpuStorage, yl: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
            let (g, y) = (slice(gs, gl, "gradient")?, slice(ys, yl, "output")?);
            let out = g.iter().zip(y).map(|(&g, &y)| if y > 0.0 { g } else { 0.0 }).collect();
            Ok((CpuStorage::F32(out), gl.shape().clone()))
        }
        fn bwd(&self, _g: &Tensor, y: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
            // Linear in g with a piecewise-constant mask: d/dg = mask, d/dy = 0 almost everywhere.
            let dg = grad.contiguous()?.apply_op2(&y.contiguous()?, ReluGrad)?;
            Ok((Some(dg), Some(y.zeros_like()?.to_dtype(DType::F32)?)))
        }
    }
}

/// The index of the largest value (the first of equal ones; 0 for an empty row).
pub fn argmax(row: &[f32]) -> usize {
    row.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i).unwrap_or(0)
}
