//! NADE, the neural autoregressive distribution estimator (Larochelle &
//! Murray, AISTATS 2011), eqs. (6)-(7):
//!   h_i = sigma(c + W_{:,<i} x_<i),   p(x_i = 1 | x_<i) = sigma(b_i + V_i . h_i).
//! Weights are shared across conditionals, so the pre-activation follows the
//! O(H) recurrence a_{i+1} = a_i + W_{:,i} x_i and both log p(x) and sampling
//! cost O(DH) per example. Pixel order row-major.
//!
//! Tensor names: `W` `[H, D]`, `c` `[H]`, `V` `[D, H]`, `b` `[D]`.

use candle_core::{CpuStorage, CustomOp3, Device, Layout, Shape, Tensor};
use serde::{Deserialize, Serialize};

use crate::data::Dataset;
use crate::dist::PixelOutput;
use crate::error::Result;
use crate::models::family::*;
use crate::models::family::{explicit_sequential, net};
use crate::models::Known;
use crate::models::ModelFlags;
use crate::nn::slices::f32s;
use crate::nn::{ops, Params};
use crate::recipe::TrainConfig;
use crate::rng::Rng;

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

    /// Ancestral sampling with the same O(DH) recurrence (plain loops); known
    /// values are kept. Returns `[n, D]` and each row's log p.
    pub fn sample_ar(
        &self,
        n: usize,
        known: Option<&Known>,
        rng: &mut Rng,
    ) -> Result<(Tensor, Vec<f64>)> {
        let (d, hn) = (self.dim, self.hidden);
        let w = self.w.to_vec2::<f32>()?;
        let wt: Vec<Vec<f32>> = (0..d).map(|i| (0..hn).map(|k| w[k][i]).collect()).collect();
        let c = self.c.to_vec1::<f32>()?;
        let v = self.v.to_vec2::<f32>()?;
        let b = self.b.to_vec1::<f32>()?;
        let mut out = vec![0f32; n * d];
        let mut lps = vec![0f64; n];
        for s in 0..n {
            let mut a = c.clone();
            for i in 0..d {
                let z = b[i]
                    + a.iter().zip(&v[i]).map(|(&ak, &vk)| vk / (1.0 + (-ak).exp())).sum::<f32>();
                let (xi, l) =
                    PixelOutput::Bernoulli.draw(&[z], known.and_then(|k| k.get(s, i, d)), rng);
                lps[s] += l;
                out[s * d + i] = xi;
                if xi != 0.0 {
                    a.iter_mut().zip(&wt[i]).for_each(|(ak, wk)| *ak += wk);
                }
            }
        }
        Ok((Tensor::from_vec(out, (n, d), self.b.device())?, lps))
    }
}

/// The NADE recurrence as one op: `out[b, i] = V_i . sigma(c + sum_{j<i} W[:, j] x[b, j])`
/// for inputs `x` [B, D], `W` [H, D] and `Vc` [D+1, H] (V with c as its last row).
///
/// The forward and backward passes are the O(BDH) loops of Larochelle &
/// Murray (2011, Algorithm 1), split over the batch across threads. candle has
/// no such op, and the same recurrence written as candle ops costs ~5,000 small
/// kernels per pass (measured: 4 s per step at B=128, H=500). Gradients are
/// first-order only (no second-order use of NADE exists here); the test suite
/// checks them against autodiff of an independent candle-ops implementation.
struct NadeDot {
    dim: usize,
    hidden: usize,
}

fn threads_for(b: usize) -> usize {
    let n = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    n.min(b).max(1)
}

impl NadeDot {
    /// Returns W transposed ([D, H], row i = W[:, i]).
    fn transpose(&self, w: &[f32]) -> Vec<f32> {
        let (d, h) = (self.dim, self.hidden);
        let mut wt = vec![0f32; d * h];
        for k in 0..h {
            for i in 0..d {
                wt[i * h + k] = w[k * d + i];
            }
        }
        wt
    }

    fn forward_rows(&self, x: &[f32], wt: &[f32], vc: &[f32], out: &mut [f32]) {
        let (d, h) = (self.dim, self.hidden);
        let c = &vc[d * h..];
        let mut a = vec![0f32; h];
        let mut s = vec![0f32; h];
        for (xb, ob) in x.chunks(d).zip(out.chunks_mut(d)) {
            a.copy_from_slice(c);
            for i in 0..d {
                ops::sigmoid_into(&a, &mut s);
                let vi = &vc[i * h..(i + 1) * h];
                ob[i] = s.iter().zip(vi).map(|(p, q)| p * q).sum();
                let xi = xb[i];
                if xi != 0.0 {
                    for (ak, wk) in a.iter_mut().zip(&wt[i * h..(i + 1) * h]) {
                        *ak += xi * wk;
                    }
                }
            }
        }
    }

    /// Accumulates d/dW^T, d/dV, d/dc into `dwt`, `dvc` and writes d/dx for rows `x`.
    #[allow(clippy::too_many_arguments)] // a kernel: inputs, outputs and accumulators as slices
    fn backward_rows(
        &self,
        x: &[f32],
        g: &[f32],
        wt: &[f32],
        vc: &[f32],
        dx: &mut [f32],
        dwt: &mut [f32],
        dvc: &mut [f32],
    ) {
        let (d, h) = (self.dim, self.hidden);
        let c = &vc[d * h..];
        let mut a_all = vec![0f32; d * h];
        let mut acc = vec![0f32; h];
        let mut s = vec![0f32; h];
        for ((xb, gb), dxb) in x.chunks(d).zip(g.chunks(d)).zip(dx.chunks_mut(d)) {
            // Forward again, keeping every pre-activation a_i.
            a_all[..h].copy_from_slice(c);
            for i in 1..d {
                let (prev, cur) = a_all.split_at_mut(i * h);
                let (prev, cur) = (&prev[(i - 1) * h..], &mut cur[..h]);
                let xi = xb[i - 1];
                for ((ck, pk), wk) in cur.iter_mut().zip(prev).zip(&wt[(i - 1) * h..i * h]) {
                    *ck = pk + xi * wk;
                }
            }
            acc.iter_mut().for_each(|v| *v = 0.0);
            for i in (0..d).rev() {
                let wti = &wt[i * h..(i + 1) * h];
                // x_i feeds every a_{i'} with i' > i: acc holds the sum of their gradients.
                let xi = xb[i];
                dxb[i] = acc.iter().zip(wti).map(|(p, q)| p * q).sum();
                if xi != 0.0 {
                    for (dw, ac) in dwt[i * h..(i + 1) * h].iter_mut().zip(&acc) {
                        *dw += xi * ac;
                    }
                }
                ops::sigmoid_into(&a_all[i * h..(i + 1) * h], &mut s);
                let gi = gb[i];
                let vi = &vc[i * h..(i + 1) * h];
                for (((dv, ac), sk), vk) in
                    dvc[i * h..(i + 1) * h].iter_mut().zip(acc.iter_mut()).zip(&s).zip(vi)
                {
                    *dv += gi * sk;
                    *ac += gi * vk * sk * (1.0 - sk);
                }
            }
            for (dc, ac) in dvc[d * h..].iter_mut().zip(&acc) {
                *dc += ac;
            }
        }
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
        let wt = self.transpose(w);
        let mut out = vec![0f32; b * d];
        let per = b.div_ceil(threads_for(b)).max(1);
        std::thread::scope(|sc| {
            for (xc, oc) in x.chunks(per * d).zip(out.chunks_mut(per * d)) {
                let wt = &wt;
                sc.spawn(move || self.forward_rows(xc, wt, vc, oc));
            }
        });
        Ok((CpuStorage::F32(out), Shape::from((b, d))))
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
        let wt = self.transpose(&w.flatten_all()?.to_vec1::<f32>()?);
        let vcv = vc.flatten_all()?.to_vec1::<f32>()?;
        let b = xv.len() / d;
        let mut dx = vec![0f32; b * d];
        let per = b.div_ceil(threads_for(b)).max(1);
        let parts: Vec<(Vec<f32>, Vec<f32>)> = std::thread::scope(|sc| {
            let handles: Vec<_> = xv
                .chunks(per * d)
                .zip(gv.chunks(per * d))
                .zip(dx.chunks_mut(per * d))
                .map(|((xc, gc), dxc)| {
                    let (wt, vcv) = (&wt, &vcv);
                    sc.spawn(move || {
                        let mut dwt = vec![0f32; d * h];
                        let mut dvc = vec![0f32; (d + 1) * h];
                        self.backward_rows(xc, gc, wt, vcv, dxc, &mut dwt, &mut dvc);
                        (dwt, dvc)
                    })
                })
                .collect();
            handles.into_iter().map(|t| t.join().unwrap_or_default()).collect()
        });
        let mut dwt = vec![0f32; d * h];
        let mut dvc = vec![0f32; (d + 1) * h];
        for (pw, pv) in &parts {
            if pw.len() != dwt.len() {
                candle_core::bail!("nade: a backward worker failed");
            }
            dwt.iter_mut().zip(pw).for_each(|(a, b)| *a += b);
            dvc.iter_mut().zip(pv).for_each(|(a, b)| *a += b);
        }
        let dev = x.device();
        let dw = Tensor::from_vec(dwt, (d, h), dev)?.t()?.contiguous()?;
        Ok((
            Some(Tensor::from_vec(dx, (b, d), dev)?),
            Some(dw),
            Some(Tensor::from_vec(dvc, (d + 1, h), dev)?),
        ))
    }
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
