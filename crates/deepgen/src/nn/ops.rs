//! Element-wise functions used by the likelihoods, with fused CPU kernels
//! where candle's composition of primitive ops costs several passes.
//!
//! The fused kernels (`Sigmoid`, `BernoulliLogits`) are ours because candle-core
//! has no fused, differentiable Bernoulli-with-logits likelihood; their
//! backward passes are built from differentiable tensor ops, so second-order
//! gradients through them stay correct. On non-CPU devices the plain
//! compositions are used.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::slices::f32s as contiguous_f32;

#[inline]
fn sigmoid_f32(z: f32) -> f32 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// log(1 + e^z), computed without overflow.
#[inline]
fn softplus_f32(z: f32) -> f32 {
    z.max(0.0) + (-z.abs()).exp().ln_1p()
}

struct Sigmoid;

impl CustomOp1 for Sigmoid {
    fn name(&self) -> &'static str {
        "deepgen-sigmoid"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let z = contiguous_f32(s, l, self.name())?;
        Ok((CpuStorage::F32(z.iter().map(|&v| sigmoid_f32(v)).collect()), l.shape().clone()))
    }
    fn bwd(
        &self,
        _arg: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        // d sigma / dz = sigma (1 - sigma)
        Ok(Some((grad * (res * (1.0 - res)?)?)?))
    }
}

/// Logistic sigmoid, differentiable (twice).
pub fn sigmoid(z: &Tensor) -> candle_core::Result<Tensor> {
    if crate::nn::cpu_kernels(z.device()) {
        z.contiguous()?.apply_op1(Sigmoid)
    } else {
        (z.neg()?.exp()? + 1.0)?.recip()
    }
}

/// log(1 + e^z) as differentiable tensor ops.
pub fn softplus(z: &Tensor) -> candle_core::Result<Tensor> {
    z.relu()? + (z.abs()?.neg()?.exp()? + 1.0)?.log()?
}

/// Element-wise Bernoulli log-likelihood with logits: x z - softplus(z).
struct BernoulliLogits;

impl CustomOp2 for BernoulliLogits {
    fn name(&self) -> &'static str {
        "deepgen-bernoulli-logits"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let z = contiguous_f32(s1, l1, self.name())?;
        let x = contiguous_f32(s2, l2, self.name())?;
        if l1.shape() != l2.shape() {
            candle_core::bail!(
                "{}: logits {:?} vs targets {:?}",
                self.name(),
                l1.shape(),
                l2.shape()
            );
        }
        let out = z.iter().zip(x).map(|(&z, &x)| x * z - softplus_f32(z)).collect();
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
    fn bwd(
        &self,
        z: &Tensor,
        x: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        if !crate::nn::create_graph() && crate::nn::cpu_kernels(z.device()) && !x.track_op() {
            // One pass, no graph: d/dz = g (x - sigma(z)); the targets are data.
            let (zv, xv) = (z.flatten_all()?.to_vec1::<f32>()?, x.flatten_all()?.to_vec1::<f32>()?);
            let gv = grad.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
            let dz: Vec<f32> = zv
                .iter()
                .zip(&xv)
                .zip(&gv)
                .map(|((&z, &x), &g)| g * (x - 1.0 / (1.0 + fast_exp(-z))))
                .collect();
            return Ok((Some(Tensor::from_vec(dz, z.shape(), z.device())?), None));
        }
        let dz = (grad * (x - sigmoid(z)?)?)?;
        let dx = (grad * z)?;
        Ok((Some(dz), Some(dx)))
    }
}

/// log Bernoulli(x | sigmoid(z)) element-wise, for x in [0, 1].
///
/// # Shapes
/// `z`, `x`: the same shape -> that shape.
pub fn bernoulli_log_prob_logits(z: &Tensor, x: &Tensor) -> candle_core::Result<Tensor> {
    if crate::nn::cpu_kernels(z.device()) {
        z.contiguous()?.apply_op2(&x.contiguous()?, BernoulliLogits)
    } else {
        (x * z)? - softplus(z)?
    }
}

/// log N(x | mu, exp(logvar)) element-wise.
pub fn gaussian_log_prob(x: &Tensor, mu: &Tensor, logvar: &Tensor) -> candle_core::Result<Tensor> {
    let ln2pi = (2.0 * std::f64::consts::PI).ln();
    let diff2 = x.broadcast_sub(mu)?.sqr()?;
    let quad = diff2.broadcast_mul(&logvar.neg()?.exp()?)?;
    (quad.broadcast_add(logvar)? + ln2pi)? * -0.5
}

/// log(mean(exp(a))) along `dim`, stable (the max is subtracted first).
pub fn log_mean_exp(a: &Tensor, dim: usize) -> candle_core::Result<Tensor> {
    let n = a.dim(dim)? as f64;
    let m = a.max_keepdim(dim)?.detach();
    let s = a.broadcast_sub(&m)?.exp()?.sum_keepdim(dim)?.log()?;
    (s + m)?.squeeze(dim)? - n.ln()
}

/// exp(x) for f32 without a libm call, so loops over slices vectorise:
/// n = round(x log2 e), r = x - n ln 2 (Cody-Waite: ln 2 split in a high part
/// exact in f32 and a low correction), e^r by a degree-7 Taylor polynomial on
/// |r| <= ln2/2 (evaluated by Estrin's scheme), and 2^n written into the exponent bits. Relative error below
/// 3e-7 over [-87, 87]. std's `f32::exp` calls libm per element; in NADE's
/// O(BDH) loops that call dominated the step.
#[inline(always)]
pub fn fast_exp(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.0, 87.0);
    // Round to nearest by the 1.5 * 2^23 trick (no floor(): it is a libm call without SSE4.1).
    const MAGIC: f32 = 12_582_912.0;
    let t = x * std::f32::consts::LOG2_E + MAGIC;
    let n = t - MAGIC;
    // The integer n is t's low mantissa bits (t's ulp is 1). Read from the bits, not by
    // `n as i32`: Rust's saturating float-to-int cast does not vectorise.
    let ni = t.to_bits().wrapping_sub(MAGIC.to_bits());
    let r = (x - n * LN2_HI) - n * LN2_LO;
    // Estrin's scheme: the same terms as Horner's rule, but a dependency chain of
    // 5 operations in place of 14, so that the out-of-order core overlaps more
    // elements of a loop (a loop of sigmoids was latency-bound: issue 28).
    let r2 = r * r;
    let r4 = r2 * r2;
    let lo = (1.0 + r) + r2 * (0.5 + r * (1.0 / 6.0));
    let hi = (1.0 / 24.0 + r * (1.0 / 120.0)) + r2 * (1.0 / 720.0 + r * (1.0 / 5040.0));
    let p = lo + r4 * hi;
    let scale = f32::from_bits(ni.wrapping_add(127) << 23);
    p * scale
}

/// Logistic sigmoid of `a` into `out`, vectorisable.
#[inline]
pub fn sigmoid_into(a: &[f32], out: &mut [f32]) {
    for (o, &v) in out.iter_mut().zip(a) {
        *o = 1.0 / (1.0 + fast_exp(-v));
    }
}

/// The level of a value in [0, 1] quantised to `k` levels: round(x (k-1)).
#[inline]
pub fn level_of(x: f32, k: usize) -> usize {
    ((x * (k - 1) as f32).round().max(0.0) as usize).min(k - 1)
}

/// log softmax(z)[level(x)] per row: a categorical over `K` grey levels.
struct CategoricalLevels;

impl CustomOp2 for CategoricalLevels {
    fn name(&self) -> &'static str {
        "deepgen-categorical-levels"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let z = contiguous_f32(s1, l1, self.name())?;
        let x = contiguous_f32(s2, l2, self.name())?;
        let (n, k) = l1.shape().dims2()?;
        if x.len() != n {
            candle_core::bail!("{}: {n} rows of logits vs {} targets", self.name(), x.len());
        }
        let out =
            z.chunks(k).zip(x).map(|(row, &x)| row[level_of(x, k)] - log_sum_exp(row)).collect();
        Ok((CpuStorage::F32(out), Shape::from(n)))
    }
    fn bwd(
        &self,
        z: &Tensor,
        x: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        // d/dz_j = g (1[j = level] - softmax(z)_j); the targets are data (no gradient).
        let (n, k) = z.dims2()?;
        let zv = z.flatten_all()?.to_vec1::<f32>()?;
        let xv = x.flatten_all()?.to_vec1::<f32>()?;
        let gv = grad.flatten_all()?.to_vec1::<f32>()?;
        let mut dz = vec![0f32; n * k];
        dz.chunks_mut(k).zip(zv.chunks(k)).zip(xv.iter().zip(&gv)).for_each(
            |((d, row), (&x, &g))| {
                let lse = log_sum_exp(row);
                d.iter_mut().zip(row).for_each(|(d, &z)| *d = -g * fast_exp(z - lse));
                d[level_of(x, k)] += g;
            },
        );
        Ok((Some(Tensor::from_vec(dz, (n, k), z.device())?), None))
    }
}

#[inline]
fn log_sum_exp(row: &[f32]) -> f32 {
    let m = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    m + row.iter().map(|&z| fast_exp(z - m)).sum::<f32>().ln()
}

/// log Categorical(level(x) | softmax(z)) per row, for x in [0, 1] quantised
/// to `K` levels (256 for 8-bit grey images). First-order on CPU (fused);
/// candle ops elsewhere.
///
/// # Shapes
/// `z: [N, K]`, `x: [N]` -> `[N]`
pub fn categorical_log_prob_levels(z: &Tensor, x: &Tensor) -> candle_core::Result<Tensor> {
    if crate::nn::cpu_kernels(z.device()) && !crate::nn::create_graph() {
        return z.contiguous()?.apply_op2(&x.contiguous()?, CategoricalLevels);
    }
    let k = z.dim(1)?;
    let m = z.max_keepdim(1)?.detach();
    let lse = (z.broadcast_sub(&m)?.exp()?.sum_keepdim(1)?.log()? + &m)?;
    let idx = ((x * (k - 1) as f64)?.round()?.clamp(0f32, (k - 1) as f32)?)
        .to_dtype(candle_core::DType::U32)?
        .unsqueeze(1)?;
    z.broadcast_sub(&lse)?.gather(&idx, 1)?.squeeze(1)
}

/// The gated activation of the gated PixelCNN, `tanh(a) * sigmoid(b)` for
/// `x = [a, b]` split in halves along the last dimension, as one pass (candle
/// would slice, apply two functions and multiply, with a full-size gradient
/// buffer for each step).
struct GatedTanh;

impl CustomOp1 for GatedTanh {
    fn name(&self) -> &'static str {
        "deepgen-gated-tanh"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s, l, self.name())?;
        let dims = l.shape().dims();
        let c2 = *dims.last().unwrap_or(&0);
        if !c2.is_multiple_of(2) {
            candle_core::bail!("{}: the last dimension ({c2}) must be even", self.name());
        }
        let c = c2 / 2;
        let rows = x.len() / c2.max(1);
        let block = 1024usize;
        let mut out = vec![0f32; rows * c];
        out.par_chunks_mut((block * c).max(1)).zip(x.par_chunks((block * c2).max(1))).for_each(
            |(o, xs)| {
                for (orow, row) in o.chunks_mut(c.max(1)).zip(xs.chunks(c2.max(1))) {
                    orow.iter_mut()
                        .zip(row[..c].iter().zip(&row[c..]))
                        .for_each(|(o, (&a, &b))| *o = tanh_f32(a) * sigmoid_fast(b));
                }
            },
        );
        let mut od = dims.to_vec();
        if let Some(l) = od.last_mut() {
            *l = c;
        }
        Ok((CpuStorage::F32(out), Shape::from(od)))
    }
    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let c2 = arg.dim(candle_core::D::Minus1)?;
        let c = c2 / 2;
        let block = 1024usize;
        // The gradient is read in place (no copy); each row's two halves are separate slices of
        // equal length, so the loop has no bounds checks and vectorises.
        let dx = crate::nn::fused::read(&grad.contiguous()?, |gv| {
            crate::nn::fused::read(arg, |xv| {
                let mut dx = vec![0f32; xv.len()];
                dx.par_chunks_mut(block * c2)
                    .zip(xv.par_chunks(block * c2))
                    .zip(gv.par_chunks(block * c))
                    .for_each(|((db, xb), gb)| {
                        for ((d, row), g) in db.chunks_mut(c2).zip(xb.chunks(c2)).zip(gb.chunks(c))
                        {
                            let (da, db) = d.split_at_mut(c);
                            let (a, b) = row.split_at(c);
                            for ((((da, db), &a), &b), &g) in
                                da.iter_mut().zip(db.iter_mut()).zip(a).zip(b).zip(g)
                            {
                                let (t, s) = (tanh_f32(a), sigmoid_fast(b));
                                *da = g * s * (1.0 - t * t);
                                *db = g * t * s * (1.0 - s);
                            }
                        }
                    });
                dx
            })
        })??;
        Ok(Some(Tensor::from_vec(dx, arg.shape(), arg.device())?))
    }
}

#[inline]
fn sigmoid_fast(x: f32) -> f32 {
    1.0 / (1.0 + fast_exp(-x))
}

#[inline]
fn tanh_f32(x: f32) -> f32 {
    1.0 - 2.0 / (fast_exp(2.0 * x) + 1.0)
}

/// `tanh(x[..., :C]) * sigmoid(x[..., C:])` for a last dimension of 2C.
/// Fused (first-order) on CPU; candle ops elsewhere and under `with_create_graph`.
pub fn gated_tanh(x: &Tensor) -> candle_core::Result<Tensor> {
    if crate::nn::cpu_kernels(x.device()) && !crate::nn::create_graph() {
        return x.contiguous()?.apply_op1(GatedTanh);
    }
    let last = x.rank() - 1;
    let c = x.dim(last)? / 2;
    x.narrow(last, 0, c)?.tanh()? * sigmoid(&x.narrow(last, c, c)?.contiguous()?)?
}
