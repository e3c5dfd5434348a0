//! NADE, the neural autoregressive distribution estimator (Larochelle &
//! Murray, AISTATS 2011), eqs. (6)-(7):
//!   h_i = sigma(c + W_{:,<i} x_<i),   p(x_i = 1 | x_<i) = sigma(b_i + V_i . h_i).
//! Weights are shared across conditionals, so the pre-activation follows the
//! O(H) recurrence a_{i+1} = a_i + W_{:,i} x_i and both log p(x) and sampling
//! cost O(DH) per example. Pixel order row-major.
//!
//! Tensor names: `W` `[H, D]`, `c` `[H]`, `V` `[D, H]`, `b` `[D]`.

use candle_core::{CpuStorage, CustomOp3, Device, Layout, Shape, Tensor};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::data::Dataset;
use crate::dist::PixelOutput;
use crate::error::Result;
use crate::models::family::*;
use crate::models::family::{explicit_sequential, net};
use crate::models::Known;
use crate::models::ModelFlags;
use crate::nn::slices::f32s;
use crate::nn::{ops, simd, Params};
use crate::recipe::TrainConfig;
use crate::rng::Rng;

#[cfg(feature = "cuda")]
#[path = "nade_gpu.rs"]
mod gpu;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NadeConfig {
    pub dim: usize,
    /// Hidden units H (the paper uses 500 on binarized MNIST).
    #[serde(default = "default_hidden")]
    pub hidden: usize,
}

fn default_hidden() -> usize {
    500
}

#[derive(Debug, Clone)]
pub struct Nade {
    w: Tensor,
    c: Tensor,
    v: Tensor,
    b: Tensor,
    dim: usize,
    hidden: usize,
}

impl Nade {
    pub fn new(p: &mut Params, cfg: &NadeConfig, rng: &mut Rng, dev: &Device) -> Result<Self> {
        let (d, h) = (cfg.dim, cfg.hidden);
        let w = p.uniform_fan_in("W", &[h, d], d, rng, dev)?;
        let c = p.zeros("c", &[h], dev)?;
        let v = p.uniform_fan_in("V", &[d, h], h, rng, dev)?;
        let b = p.zeros("b", &[d], dev)?;
        Ok(Self { w, c, v, b, dim: d, hidden: h })
    }

    /// Logits of every conditional p(x_i = 1 | x_<i), by the recurrence
    /// (one fused kernel on CPU, `NadeDot` below).
    ///
    /// # Shapes
    /// `x: [B, D]` -> `[B, D]`
    pub fn logits(&self, x: &Tensor) -> Result<Tensor> {
        #[cfg(feature = "cuda")]
        if crate::nn::cuda_kernels(x.device()) {
            return self.logits_cuda(x);
        }
        if !crate::nn::cpu_kernels(x.device()) {
            return self.logits_portable(x);
        }
        // [D+1, H]: V with c as the last row.
        let vc = Tensor::cat(&[&self.v, &self.c.unsqueeze(0)?], 0)?;
        let x = x.contiguous()?;
        let dot = x.apply_op3(
            &self.w.contiguous()?,
            &vc,
            NadeDot { dim: self.dim, hidden: self.hidden },
        )?;
        Ok(dot.broadcast_add(&self.b)?)
    }

    /// [`Nade::logits`] on a CUDA device: deepgen's kernels (`nn::cuda::NADE`, the recurrence
    /// per thread), [`gpu::NadeCuda`].
    #[cfg(feature = "cuda")]
    fn logits_cuda(&self, x: &Tensor) -> Result<Tensor> {
        let vc = Tensor::cat(&[&self.v, &self.c.unsqueeze(0)?], 0)?;
        let wt = self.w.t()?.contiguous()?;
        let op = gpu::NadeCuda { dim: self.dim, hidden: self.hidden };
        let dot = x.contiguous()?.apply_op3(&wt, &vc, op)?;
        Ok(dot.broadcast_add(&self.b)?)
    }

    /// [`Nade::logits`] as candle ops, for devices without deepgen's CPU kernel (a GPU): all D
    /// pre-activations at once, `a[b, :, i] = c + sum_{j<i} W[:, j] x[b, j]`, an exclusive
    /// prefix sum of the terms `W[:, j] x[b, j]` along the pixels, in place of the O(H)
    /// recurrence (a GPU does a few large products instead of D small steps). The prefix is
    /// blocked: the pixels in blocks of T ~ sqrt(D), a product with a strictly triangular T x T
    /// mask within each block and one with an nb x nb mask over the blocks' totals, so
    /// O(B H D (T + nb)) multiply-adds where one D x D mask took O(B H D^2) (28x fewer at
    /// D = 784). `[B, H, D]` values per intermediate.
    fn logits_portable(&self, x: &Tensor) -> Result<Tensor> {
        let (d, (b, h)) = (self.dim, (x.dim(0)?, self.hidden));
        let t = ((d as f64).sqrt().ceil() as usize).max(1);
        let nb = d.div_ceil(t);
        // strict(n)[j, i] = 1 where j < i.
        let strict = |n: usize| -> Result<Tensor> {
            let eye = Tensor::eye(n, x.dtype(), x.device())?;
            Ok(Tensor::triu2(n, x.dtype(), x.device())?.sub(&eye)?)
        };
        let xw = self.w.unsqueeze(0)?.broadcast_mul(&x.unsqueeze(1)?)?.reshape((b * h, d))?;
        let xw = if nb * t > d {
            let pad = Tensor::zeros((b * h, nb * t - d), x.dtype(), x.device())?;
            Tensor::cat(&[&xw, &pad], 1)?
        } else {
            xw
        };
        let blocks = xw.reshape((b * h * nb, t))?;
        let within = blocks.matmul(&strict(t)?)?.reshape((b * h, nb, t))?;
        let totals = blocks.sum(1)?.reshape((b * h, nb))?;
        let before = totals.matmul(&strict(nb)?)?.reshape((b * h, nb, 1))?;
        let a = within.broadcast_add(&before)?.reshape((b * h, nb * t))?.narrow(1, 0, d)?;
        let a = a.reshape((b, h, d))?.broadcast_add(&self.c.reshape((1, h, 1))?)?;
        let s = ops::sigmoid(&a)?;
        let dot = s.broadcast_mul(&self.v.t()?.unsqueeze(0)?)?.sum(1)?; // [B, D]
        Ok(dot.broadcast_add(&self.b)?)
    }

    /// The hidden layer given the whole input, sigmoid(W x + c): the state
    /// the recurrence reaches after the last value (the features for `embed`).
    ///
    /// # Shapes
    /// `x: [B, D]` -> `[B, H]`
    pub fn features(&self, x: &Tensor) -> Result<Tensor> {
        let a = x.matmul(&self.w.t()?)?.broadcast_add(&self.c)?;
        Ok(ops::sigmoid(&a)?)
    }

    /// # Shapes
    /// `x: [B, D]` -> `[B]`
    pub fn log_prob(&self, x: &Tensor) -> Result<Tensor> {
        Ok(ops::bernoulli_log_prob_logits(&self.logits(x)?, x)?.sum(1)?)
    }

    /// Ancestral sampling with the same O(DH) recurrence; known values are
    /// kept. Returns `[n, D]` and each row's log p.
    ///
    /// [`TILE`] examples advance through the pixels together (on rayon's
    /// threads, under [`simd::dispatch`]). The uniforms are drawn first, in
    /// the order one example after another consumes them, so the draws do
    /// not depend on the tiling or the threads; the logits are summed over
    /// the same hidden-unit blocks as [`Nade::logits`], so they are its bits.
    pub fn sample_ar(
        &self,
        n: usize,
        known: Option<&Known>,
        rng: &mut Rng,
    ) -> Result<(Tensor, Vec<f64>)> {
        use rand::Rng as _;
        let (d, h) = (self.dim, self.hidden);
        let op = NadeDot { dim: d, hidden: h };
        let wt = op.block_wt(&self.w.flatten_all()?.to_vec1::<f32>()?, 0, h);
        let c = self.c.to_vec1::<f32>()?;
        let v = self.v.flatten_all()?.to_vec1::<f32>()?;
        let b = self.b.to_vec1::<f32>()?;
        let blocks = op.blocks();
        let mut out = vec![0f32; n * d];
        let mut lps = vec![0f64; n];
        // Uniforms for this many examples at a time (1.6 MB).
        const CHUNK: usize = 256;
        for c0 in (0..n).step_by(CHUNK) {
            let cn = CHUNK.min(n - c0);
            let known_at = |s: usize, i: usize| known.and_then(|k| k.get(s, i, d));
            let mut u = vec![f64::NAN; cn * d];
            for (k, uk) in u.iter_mut().enumerate() {
                if known_at(c0 + k / d, k % d).is_none() {
                    *uk = rng.gen::<f64>();
                }
            }
            out[c0 * d..(c0 + cn) * d]
                .par_chunks_mut(TILE * d)
                .zip(lps[c0..c0 + cn].par_chunks_mut(TILE))
                .zip(u.par_chunks(TILE * d))
                .enumerate()
                .for_each(|(j, ((o, l), u))| {
                    let s0 = c0 + j * TILE;
                    let mut a: Vec<f32> = c.repeat(l.len());
                    simd::dispatch(
                        #[inline(always)]
                        || {
                            for i in 0..d {
                                let (vi, wi) = (&v[i * h..(i + 1) * h], &wt[i * h..(i + 1) * h]);
                                for (t, at) in a.chunks_exact_mut(h).enumerate() {
                                    let mut dot = 0f32;
                                    for (bi, &(k0, k1)) in blocks.iter().enumerate() {
                                        let p = simd::dot_by(&at[k0..k1], &vi[k0..k1], |ak, vk| {
                                            vk * simd::sigmoid(ak)
                                        });
                                        dot = if bi == 0 { p } else { dot + p };
                                    }
                                    let (xi, lp) = PixelOutput::bernoulli(
                                        dot + b[i],
                                        known_at(s0 + t, i),
                                        || u[t * d + i],
                                    );
                                    l[t] += lp;
                                    o[t * d + i] = xi;
                                    if xi != 0.0 {
                                        simd::axpy(at, xi, wi);
                                    }
                                }
                            }
                        },
                    );
                });
        }
        Ok((Tensor::from_vec(out, (n, d), self.b.device())?, lps))
    }
}

/// The NADE recurrence as one op: `out[b, i] = V_i . sigma(c + sum_{j<i} W[:, j] x[b, j])`
/// for inputs `x` [B, D], `W` [H, D] and `Vc` [D+1, H] (V with c as its last row).
///
/// The forward and backward passes are the O(BDH) loops of Larochelle &
/// Murray (2011, Algorithm 1). candle has no such op, and the same recurrence
/// written as candle ops costs ~5,000 small kernels per pass (measured: 4 s
/// per step at B=128, H=500). Gradients are first-order only (no second-order
/// use of NADE exists here); the test suite checks them against autodiff of
/// an independent candle-ops implementation.
///
/// How the loops are laid out (issue 28; 5.7 -> see bench/RESULTS.md):
/// - The hidden units are cut into blocks of [`BLOCK`]. Every hidden unit's
///   recurrence is independent of the others', so a block is one task with
///   its own slices of W, V and their gradients: no two tasks write the
///   same gradient, and only the logits (forward) and d/dx (backward) need a
///   sum over blocks, done afterwards in block order. Results therefore do
///   not depend on the number of threads.
/// - Inside a block, [`TILE`] examples advance one pixel at a time together,
///   so each row of W and V is read once per tile from L1, not once per
///   example from memory (W and V are 1.5 MB each at D=784, H=500).
/// - The backward pass needs every pre-activation a_i in reverse order. They
///   are recomputed, bit-identically, from checkpoints every ~sqrt(D) pixels
///   (Griewank's checkpointing): O(sqrt(D) H) memory per example in place of
///   O(DH), one extra multiply-add per element.
/// - The loops run under [`simd::dispatch`], with lane-explicit sums.
struct NadeDot {
    dim: usize,
    hidden: usize,
}

/// Hidden units per task.
const BLOCK: usize = 128;
/// Examples that advance through the pixels together.
const TILE: usize = 16;

/// One block's share of the backward pass: d/dW^T ([D, hb]), d/dVc
/// ([D+1, hb]) and its part of d/dx ([B, D], empty when not wanted).
struct BlockGrads {
    dwt: Vec<f32>,
    dvc: Vec<f32>,
    dx: Vec<f32>,
}

impl NadeDot {
    /// The hidden-unit blocks, `(k0, k1)`.
    fn blocks(&self) -> Vec<(usize, usize)> {
        (0..self.hidden).step_by(BLOCK).map(|k0| (k0, (k0 + BLOCK).min(self.hidden))).collect()
    }

    /// Rows `k0..k1` of W ([H, D]) transposed: [D, hb], row i = W[k0..k1, i].
    fn block_wt(&self, w: &[f32], k0: usize, k1: usize) -> Vec<f32> {
        let (d, hb) = (self.dim, k1 - k0);
        let mut wt = vec![0f32; d * hb];
        for (kk, row) in w[k0 * d..k1 * d].chunks_exact(d).enumerate() {
            for (i, &v) in row.iter().enumerate() {
                wt[i * hb + kk] = v;
            }
        }
        wt
    }

    /// Columns `k0..k1` of Vc ([D+1, H]): [D+1, hb].
    fn block_vc(&self, vc: &[f32], k0: usize, k1: usize) -> Vec<f32> {
        vc.chunks_exact(self.hidden).flat_map(|row| row[k0..k1].iter().copied()).collect()
    }

    /// The pixels between checkpoints of the backward pass.
    fn segment(&self) -> usize {
        ((self.dim as f64).sqrt().ceil() as usize).max(1)
    }

    /// One block's partial logits `out[b, i] = V_i[blk] . sigma(a_i[blk])`.
    #[inline(always)]
    fn forward_block(&self, x: &[f32], wt: &[f32], vc: &[f32], out: &mut [f32]) {
        let d = self.dim;
        let hb = wt.len() / d;
        let c = &vc[d * hb..];
        let n = x.len() / d;
        let mut a = vec![0f32; TILE * hb];
        for t0 in (0..n).step_by(TILE) {
            let tt = TILE.min(n - t0);
            for at in a.chunks_exact_mut(hb).take(tt) {
                at.copy_from_slice(c);
            }
            for i in 0..d {
                let (vi, wi) = (&vc[i * hb..(i + 1) * hb], &wt[i * hb..(i + 1) * hb]);
                for (t, at) in a.chunks_exact_mut(hb).take(tt).enumerate() {
                    let row = (t0 + t) * d + i;
                    out[row] = simd::dot_by(at, vi, |ak, vk| vk * simd::sigmoid(ak));
                    let xi = x[row];
                    if xi != 0.0 {
                        simd::axpy(at, xi, wi);
                    }
                }
            }
        }
    }

    /// One block's backward pass for upstream gradients `g` [B, D].
    #[inline(always)]
    fn backward_block(
        &self,
        x: &[f32],
        g: &[f32],
        wt: &[f32],
        vc: &[f32],
        want_dx: bool,
    ) -> BlockGrads {
        let d = self.dim;
        let hb = wt.len() / d;
        let c = &vc[d * hb..];
        let n = x.len() / d;
        let seg = self.segment();
        let nseg = d.div_ceil(seg);
        let tile = TILE * hb;
        let mut out = BlockGrads {
            dwt: vec![0f32; d * hb],
            dvc: vec![0f32; (d + 1) * hb],
            dx: if want_dx { vec![0f32; n * d] } else { Vec::new() },
        };
        // cp[s]: the tile's pre-activations before pixel s*seg; buf[j]: before pixel i0+j.
        let mut cp = vec![0f32; nseg * tile];
        let mut buf = vec![0f32; seg * tile];
        let mut acc = vec![0f32; tile];
        for t0 in (0..n).step_by(TILE) {
            let tt = TILE.min(n - t0);
            let xt = |t: usize, i: usize| x[(t0 + t) * d + i];
            // Forward, keeping the checkpoints (the same additions as `forward_block`).
            let a = &mut buf[..tile];
            for at in a.chunks_exact_mut(hb).take(tt) {
                at.copy_from_slice(c);
            }
            for i in 0..d {
                if i % seg == 0 {
                    cp[(i / seg) * tile..][..tile].copy_from_slice(a);
                }
                let wi = &wt[i * hb..(i + 1) * hb];
                for (t, at) in a.chunks_exact_mut(hb).take(tt).enumerate() {
                    let xi = xt(t, i);
                    if xi != 0.0 {
                        simd::axpy(at, xi, wi);
                    }
                }
            }
            acc.iter_mut().for_each(|v| *v = 0.0);
            for s in (0..nseg).rev() {
                let (i0, i1) = (s * seg, ((s + 1) * seg).min(d));
                buf[..tile].copy_from_slice(&cp[s * tile..(s + 1) * tile]);
                for i in i0 + 1..i1 {
                    let (prev, cur) = buf.split_at_mut((i - i0) * tile);
                    let (prev, cur) = (&prev[(i - i0 - 1) * tile..], &mut cur[..tile]);
                    cur.copy_from_slice(prev);
                    let wi = &wt[(i - 1) * hb..i * hb];
                    for (t, at) in cur.chunks_exact_mut(hb).take(tt).enumerate() {
                        let xi = xt(t, i - 1);
                        if xi != 0.0 {
                            simd::axpy(at, xi, wi);
                        }
                    }
                }
                for i in (i0..i1).rev() {
                    let (wi, vi) = (&wt[i * hb..(i + 1) * hb], &vc[i * hb..(i + 1) * hb]);
                    let dwi = &mut out.dwt[i * hb..(i + 1) * hb];
                    let dvi = &mut out.dvc[i * hb..(i + 1) * hb];
                    let ai = &buf[(i - i0) * tile..(i - i0 + 1) * tile];
                    for t in 0..tt {
                        let row = (t0 + t) * d + i;
                        let (xi, gi) = (x[row], g[row]);
                        let (at, acct) =
                            (&ai[t * hb..(t + 1) * hb], &mut acc[t * hb..(t + 1) * hb]);
                        // x_i feeds every a_{i'} with i' > i: acc holds the sum of their gradients.
                        if want_dx {
                            out.dx[row] = simd::dot(acct, wi);
                        }
                        if xi != 0.0 {
                            simd::axpy(dwi, xi, acct);
                        }
                        for (((dv, ac), &ak), &vk) in
                            dvi.iter_mut().zip(acct.iter_mut()).zip(at).zip(vi)
                        {
                            let sk = simd::sigmoid(ak);
                            *dv += gi * sk;
                            *ac += gi * vk * sk * (1.0 - sk);
                        }
                    }
                }
            }
            for acct in acc.chunks_exact(hb).take(tt) {
                simd::axpy(&mut out.dvc[d * hb..], 1.0, acct);
            }
        }
        out
    }
}

impl CustomOp3 for NadeDot {
    fn name(&self) -> &'static str {
        "deepgen-nade"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x, w, vc) = (f32s(s1, l1, "nade")?, f32s(s2, l2, "nade")?, f32s(s3, l3, "nade")?);
        let (d, h) = (self.dim, self.hidden);
        if x.len() % d != 0 || w.len() != h * d || vc.len() != (d + 1) * h {
            candle_core::bail!(
                "nade: shapes {:?} {:?} {:?} do not fit D={d}, \
                H={h}",
                l1.shape(),
                l2.shape(),
                l3.shape()
            );
        }
        let b = x.len() / d;
        let parts: Vec<Vec<f32>> = self
            .blocks()
            .into_par_iter()
            .map(|(k0, k1)| {
                let (wt, vcb) = (self.block_wt(w, k0, k1), self.block_vc(vc, k0, k1));
                let mut out = vec![0f32; b * d];
                simd::dispatch(
                    #[inline(always)]
                    || self.forward_block(x, &wt, &vcb, &mut out),
                );
                out
            })
            .collect();
        Ok((CpuStorage::F32(sum_in_order(&parts, b * d)), Shape::from((b, d))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        vc: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (d, h) = (self.dim, self.hidden);
        let xv = x.flatten_all()?.to_vec1::<f32>()?;
        let gv = grad.flatten_all()?.to_vec1::<f32>()?;
        let wv = w.flatten_all()?.to_vec1::<f32>()?;
        let vcv = vc.flatten_all()?.to_vec1::<f32>()?;
        let b = xv.len() / d;
        // Data needs no gradient: skip d/dx (a fifth of the work) unless x comes from a variable.
        let want_dx = x.track_op();
        let blocks = self.blocks();
        let parts: Vec<BlockGrads> = blocks
            .par_iter()
            .map(|&(k0, k1)| {
                let (wt, vcb) = (self.block_wt(&wv, k0, k1), self.block_vc(&vcv, k0, k1));
                simd::dispatch(
                    #[inline(always)]
                    || self.backward_block(&xv, &gv, &wt, &vcb, want_dx),
                )
            })
            .collect();
        let mut dw = vec![0f32; h * d];
        let mut dvc = vec![0f32; (d + 1) * h];
        for (&(k0, k1), p) in blocks.iter().zip(&parts) {
            let hb = k1 - k0;
            for (kk, row) in dw[k0 * d..k1 * d].chunks_exact_mut(d).enumerate() {
                for (i, v) in row.iter_mut().enumerate() {
                    *v = p.dwt[i * hb + kk];
                }
            }
            for (row, prow) in dvc.chunks_exact_mut(h).zip(p.dvc.chunks_exact(hb)) {
                row[k0..k1].copy_from_slice(prow);
            }
        }
        let dev = x.device();
        let dx = if want_dx {
            let dx: Vec<Vec<f32>> = parts.into_iter().map(|p| p.dx).collect();
            Some(Tensor::from_vec(sum_in_order(&dx, b * d), (b, d), dev)?)
        } else {
            None
        };
        Ok((
            dx,
            Some(Tensor::from_vec(dw, (h, d), dev)?),
            Some(Tensor::from_vec(dvc, (d + 1, h), dev)?),
        ))
    }
}

/// The element-wise sum of `parts` (each of length `n`), added in their order.
fn sum_in_order(parts: &[Vec<f32>], n: usize) -> Vec<f32> {
    let mut out = parts.first().cloned().unwrap_or_else(|| vec![0f32; n]);
    for p in parts.iter().skip(1) {
        out.iter_mut().zip(p).for_each(|(o, v)| *o += v);
    }
    out
}

impl Family for NadeConfig {
    const MODELS: &'static [ModelInfo] = &[ModelInfo {
        name: "nade",
        summary: "NADE (Larochelle & Murray 2011): shared weights, O(DH) recurrence",
        density: Density::Exact,
        training: Training::Likelihood,
        sampler: true,
        completion: true,
        encoder: false,
        features: Some("the hidden layer given the whole input"),
        labels: Labels::Unused,
        scores: DENSITY_SCORES,
        data: "binary",
        flags: &["hidden"],
    }];

    fn preset(_name: &str, shape: &[usize], _unit_data: bool) -> Result<Self> {
        Ok(Self { dim: shape.iter().product(), hidden: 500 })
    }

    fn recipe(_name: &str, _shape: &[usize]) -> TrainConfig {
        TrainConfig::default()
    }

    fn name(&self) -> &'static str {
        "nade"
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn needs(&self) -> Needs {
        Needs { binary: true, grey_levels: false }
    }

    fn configure(&mut self, flags: &ModelFlags, _data: &Dataset, _seed: u64) -> Result<()> {
        if let Some(h) = &flags.hidden {
            self.hidden = width("--hidden", h)?;
        }
        Ok(())
    }

    fn build(&self, p: &mut Params, rng: &mut Rng, dev: &Device) -> Result<Box<dyn Net>> {
        if self.hidden == 0 {
            return Err(crate::Error::config("nade: hidden must be positive"));
        }
        Ok(Box::new(Nade::new(p, self, rng, dev)?))
    }
}

net!(Nade {
    density: yes,
    sampler: yes,
    sequential: yes,
    encoder: no,
    features: yes,
    objective: yes,
    adversarial: no,
    translator: no,
});

explicit_sequential!(Nade { conditionals: logits(logits), objective: nll });

impl Features for Nade {
    fn features(&self, x: &Tensor) -> Result<Tensor> {
        Nade::features(self, x)
    }
}
