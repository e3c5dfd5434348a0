//! A network as a list of layers over a flat list of weight tensors, so the
//! same network can run on its own variables or on substituted tensors (the
//! discriminator after K differentiable optimiser steps, for Unrolled GANs).
//!
//! Layers: dense, strided convolution, transposed convolution, batch norm,
//! reshape, activations, and Progressive GAN's pixel norm, nearest-neighbour upsampling, average
//! pooling and minibatch standard deviation. Channels-last image maps (`[B, H, W, C]`).
//!
//! Weights made with [`Init::Equalized`] are stored N(0, 1) and multiplied by their He constant
//! `gain / sqrt(fan_in)` at every forward pass (Karras et al. 2018, Sec. 4.1, "equalized learning
//! rate"), so Adam's per-weight step size is the same for every layer.

use candle_core::{DType, Device, Tensor, Var};
use rayon::prelude::*;

use super::conv::{conv_down_act, conv_up, Strided};
use super::slices::f32s;
use super::{Act, Linear, Params};
use crate::error::{Error, Result};
use crate::rng::{self, Rng};

#[derive(Clone, Debug)]
enum Layer {
    /// Weight and bias indices into the weight list; ReLU fused when `relu`.
    /// `scale`: the run-time weight multiplier of an equalised layer (1 otherwise).
    Dense {
        w: usize,
        b: usize,
        relu: bool,
        scale: f64,
    },
    Down {
        g: Strided,
        w: usize,
        b: usize,
        scale: f64,
    },
    Up {
        g: Strided,
        w: usize,
        b: usize,
        scale: f64,
    },
    /// Batch norm over every axis but the last; running statistics (buffers) for eval mode.
    Norm {
        gamma: usize,
        beta: usize,
        stats: Option<(Var, Var)>,
    },
    /// Instance norm (Ulyanov et al. 2016): each example's channels (the last axis) normalised
    /// over its other axes, without learned scale or shift, as CycleGAN's reference generators
    /// use it (`InstanceNorm2d(affine=False)`, eps 1e-5).
    InstanceNorm,
    /// Instance norm with a learned per-channel scale and shift (`InstanceNorm2d(affine=True)`,
    /// StarGAN's generator).
    InstanceNormAffine {
        gamma: usize,
        beta: usize,
    },
    /// Pads an image map `[B, H, W, C]` by `p` pixels on each side with its reflection
    /// (`nn.ReflectionPad2d`, CycleGAN's generators): the border pixel is not repeated.
    ReflectPad(usize),
    /// Remembers the current activation, the input of a residual block.
    Save,
    /// Adds the activation remembered by the matching [`Layer::Save`] (the skip connection of a
    /// residual block, He et al. 2016).
    AddSaved,
    /// Pixelwise feature normalisation (Karras et al. 2018, eq. in Sec. 4.2): each pixel's feature
    /// vector divided by sqrt(mean of its squares + 1e-8).
    PixelNorm,
    /// Nearest-neighbour upsampling by 2 of an image map.
    Upsample2,
    /// 2x2 average pooling of an image map.
    AvgPool2,
    /// Minibatch standard deviation (Karras et al. 2018, Sec. 3): one feature map appended, the
    /// mean over features and pixels of the standard deviation within groups of this many
    /// examples.
    MinibatchStddev(usize),
    /// Reshape to `[B, dims...]`.
    Reshape(Vec<usize>),
    Act(Act),
}

/// A sequential network whose weights are `vars` (in order), registered in
/// [`Params`] under `{prefix}.{layer}.weight` etc.
#[derive(Clone, Debug)]
pub struct Stack {
    pub prefix: String,
    pub names: Vec<String>,
    pub vars: Vec<Var>,
    layers: Vec<Layer>,
    /// Width of the last layer's output (per example, flattened).
    pub out: usize,
    dev: Device,
}

/// How weights are initialised.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// PyTorch's default: uniform +-1/sqrt(fan_in).
    Default,
    /// N(0, std^2) weights, zero biases (DCGAN: std 0.02).
    Normal(f32),
    /// Equalised learning rate: N(0, 1) weights scaled by `gain / sqrt(fan_in)` at every forward
    /// pass, zero biases (Progressive GAN; gain sqrt(2) for layers before a leaky ReLU).
    Equalized(f32),
}

impl Init {
    /// The run-time weight multiplier of a layer with `fan_in` inputs: the He constant for
    /// equalised layers, 1 otherwise.
    pub fn scale(self, fan_in: usize) -> f64 {
        match self {
            Init::Equalized(gain) => gain as f64 / (fan_in.max(1) as f64).sqrt(),
            _ => 1.0,
        }
    }
}

impl Stack {
    pub fn new(prefix: &str, input: usize, dev: &Device) -> Self {
        Self {
            prefix: prefix.into(),
            names: vec![],
            vars: vec![],
            layers: vec![],
            out: input,
            dev: dev.clone(),
        }
    }

    fn register(&mut self, p: &mut Params, name: &str, t: Tensor) -> Result<usize> {
        let full = format!("{}.{}", self.prefix, name);
        p.add(&full, t)?;
        let var = p
            .get(&full)
            .ok_or_else(|| Error::config(format!("parameter {full} vanished")))?
            .clone();
        self.names.push(full);
        self.vars.push(var);
        Ok(self.vars.len() - 1)
    }

    fn weight(
        &self,
        p: &Params,
        shape: &[usize],
        fan_in: usize,
        init: Init,
        rng: &mut Rng,
    ) -> Result<(Tensor, Tensor)> {
        let n = *shape.last().unwrap_or(&1);
        p.room(shape)?;
        Ok(match init {
            Init::Default => {
                let bound = 1.0 / (fan_in.max(1) as f32).sqrt();
                (
                    rng::uniform(rng, shape, -bound, bound, &self.dev)?,
                    rng::uniform(rng, &[n], -bound, bound, &self.dev)?,
                )
            }
            Init::Normal(s) => (
                (rng::randn(rng, shape, &self.dev)? * s as f64)?,
                Tensor::zeros(n, DType::F32, &self.dev)?,
            ),
            Init::Equalized(_) => {
                (rng::randn(rng, shape, &self.dev)?, Tensor::zeros(n, DType::F32, &self.dev)?)
            }
        })
    }

    /// A dense layer to `n` units (optionally with ReLU fused in).
    pub fn dense(
        &mut self,
        p: &mut Params,
        name: &str,
        n: usize,
        relu: bool,
        init: Init,
        rng: &mut Rng,
    ) -> Result<&mut Self> {
        let (w, b) = self.weight(p, &[self.out, n], self.out, init, rng)?;
        let w = self.register(p, &format!("{name}.weight"), w)?;
        let b = self.register(p, &format!("{name}.bias"), b)?;
        self.layers.push(Layer::Dense { w, b, relu, scale: init.scale(self.out) });
        self.out = n;
        Ok(self)
    }

    /// A strided convolution from `c_in` to `c_out` channels on an `h x w` map.
    #[allow(clippy::too_many_arguments)]
    pub fn down(
        &mut self,
        p: &mut Params,
        name: &str,
        g: Strided,
        (h, w, c_in): (usize, usize, usize),
        c_out: usize,
        init: Init,
        rng: &mut Rng,
    ) -> Result<&mut Self> {
        let fan = g.k * g.k * c_in;
        let (wt, b) = self.weight(p, &[fan, c_out], fan, init, rng)?;
        let wi = self.register(p, &format!("{name}.weight"), wt)?;
        let bi = self.register(p, &format!("{name}.bias"), b)?;
        self.layers.push(Layer::Down { g, w: wi, b: bi, scale: init.scale(fan) });
        self.out = g.lo(h) * g.lo(w) * c_out;
        Ok(self)
    }

    /// A transposed convolution from `c_in` to `c_out` channels on an `h x w` map.
    #[allow(clippy::too_many_arguments)]
    pub fn up(
        &mut self,
        p: &mut Params,
        name: &str,
        g: Strided,
        (h, w, c_in): (usize, usize, usize),
        c_out: usize,
        init: Init,
        rng: &mut Rng,
    ) -> Result<&mut Self> {
        let fan = g.k * g.k * c_in;
        let (wt, _) = self.weight(p, &[c_in, g.k * g.k * c_out], fan, init, rng)?;
        let b = match init {
            Init::Default => {
                let bound = 1.0 / (fan as f32).sqrt();
                rng::uniform(rng, &[c_out], -bound, bound, &self.dev)?
            }
            Init::Normal(_) | Init::Equalized(_) => Tensor::zeros(c_out, DType::F32, &self.dev)?,
        };
        let wi = self.register(p, &format!("{name}.weight"), wt)?;
        let bi = self.register(p, &format!("{name}.bias"), b)?;
        self.layers.push(Layer::Up { g, w: wi, b: bi, scale: init.scale(fan) });
        self.out = g.hi(h) * g.hi(w) * c_out;
        Ok(self)
    }

    /// Batch norm over `c` features (the last axis); `running` keeps
    /// running statistics (`{name}.running_mean`, `.running_var`, not trained) for eval mode.
    pub fn norm(
        &mut self,
        p: &mut Params,
        name: &str,
        c: usize,
        running: bool,
        rng: &mut Rng,
    ) -> Result<&mut Self> {
        p.room(&[4 * c])?;
        let gamma = (rng::randn(rng, &[c], &self.dev)? * 0.02)? + 1.0;
        let gamma = self.register(p, &format!("{name}.weight"), gamma?)?;
        let beta =
            self.register(p, &format!("{name}.bias"), Tensor::zeros(c, DType::F32, &self.dev)?)?;
        let stats = if running {
            let m = format!("{}.{name}.running_mean", self.prefix);
            let v = format!("{}.{name}.running_var", self.prefix);
            p.add(&m, Tensor::zeros(c, DType::F32, &self.dev)?)?;
            p.add(&v, Tensor::ones(c, DType::F32, &self.dev)?)?;
            let get = |n: &str| {
                p.get(n).cloned().ok_or_else(|| Error::config(format!("buffer {n} vanished")))
            };
            Some((get(&m)?, get(&v)?))
        } else {
            None
        };
        self.layers.push(Layer::Norm { gamma, beta, stats });
        Ok(self)
    }

    /// Instance norm of every channel of every example (see [`Layer::InstanceNorm`]).
    pub fn instance_norm(&mut self) -> &mut Self {
        self.layers.push(Layer::InstanceNorm);
        self
    }

    /// Instance norm with a learned scale (initialised to 1) and shift (0) per channel.
    pub fn instance_norm_affine(
        &mut self,
        p: &mut Params,
        name: &str,
        c: usize,
    ) -> Result<&mut Self> {
        p.room(&[2 * c])?;
        let gamma =
            self.register(p, &format!("{name}.weight"), Tensor::ones(c, DType::F32, &self.dev)?)?;
        let beta =
            self.register(p, &format!("{name}.bias"), Tensor::zeros(c, DType::F32, &self.dev)?)?;
        self.layers.push(Layer::InstanceNormAffine { gamma, beta });
        Ok(self)
    }

    /// Reflection padding by `p` pixels (see [`Layer::ReflectPad`]).
    pub fn reflect_pad(&mut self, p: usize) -> &mut Self {
        self.layers.push(Layer::ReflectPad(p));
        self
    }

    /// Starts a residual block: the layers until [`Stack::add_saved`] compute f(x), and the block
    /// outputs x + f(x).
    pub fn save(&mut self) -> &mut Self {
        self.layers.push(Layer::Save);
        self
    }

    /// Ends a residual block started by [`Stack::save`].
    pub fn add_saved(&mut self) -> &mut Self {
        self.layers.push(Layer::AddSaved);
        self
    }

    /// Pixelwise feature normalisation (see [`Layer::PixelNorm`]).
    pub fn pixel_norm(&mut self) -> &mut Self {
        self.layers.push(Layer::PixelNorm);
        self
    }

    /// Nearest-neighbour upsampling by 2; `self.out` quadruples.
    pub fn upsample2(&mut self) -> &mut Self {
        self.layers.push(Layer::Upsample2);
        self.out *= 4;
        self
    }

    /// 2x2 average pooling; `self.out` is divided by 4.
    pub fn avg_pool2(&mut self) -> &mut Self {
        self.layers.push(Layer::AvgPool2);
        self.out /= 4;
        self
    }

    /// Minibatch standard deviation over groups of `group` examples, on an `h x w` map (one
    /// feature map more).
    pub fn minibatch_stddev(&mut self, group: usize, (h, w): (usize, usize)) -> &mut Self {
        self.layers.push(Layer::MinibatchStddev(group));
        self.out += h * w;
        self
    }

    pub fn reshape(&mut self, dims: &[usize]) -> &mut Self {
        self.layers.push(Layer::Reshape(dims.to_vec()));
        self
    }

    pub fn act(&mut self, a: Act) -> &mut Self {
        self.layers.push(Layer::Act(a));
        self
    }

    /// The weights as tensors (the variables themselves).
    pub fn tensors(&self) -> Vec<Tensor> {
        self.vars.iter().map(|v| v.as_tensor().clone()).collect()
    }

    /// Runs the network on `x` with weights `ws` (same order as `vars`).
    /// `train`: batch norm uses batch statistics (and updates the running ones
    /// when `update_stats`); otherwise the running statistics.
    pub fn forward_with(
        &self,
        x: &Tensor,
        ws: &[Tensor],
        train: bool,
        update_stats: bool,
    ) -> Result<Tensor> {
        if ws.len() != self.vars.len() {
            return Err(Error::Shape(format!(
                "{}: {} weight tensors for {} weights",
                self.prefix,
                ws.len(),
                self.vars.len()
            )));
        }
        let b = x.dim(0)?;
        let mut h = x.clone();
        let mut fused_act = false;
        let mut saved: Vec<Tensor> = vec![];
        for (i, l) in self.layers.iter().enumerate() {
            if std::mem::take(&mut fused_act) {
                continue;
            }
            h = match l {
                Layer::Dense { w, b: bi, relu, scale } => {
                    let x2 = if h.rank() == 2 { h } else { h.reshape((b, ()))? };
                    Linear { w: scaled(&ws[*w], *scale)?, b: ws[*bi].clone() }
                        .forward_act(&x2, if *relu { Act::Relu } else { Act::Identity })?
                }
                Layer::Down { g, w, b: bi, scale } => {
                    let wt = scaled(&ws[*w], *scale)?;
                    let (y, fused) = conv_down_act(*g, &h, &wt, &ws[*bi], self.leaky_after(i))?;
                    fused_act = fused;
                    y
                }
                Layer::Up { g, w, b: bi, scale } => {
                    conv_up(*g, &h, &scaled(&ws[*w], *scale)?, &ws[*bi])?
                }
                Layer::Norm { gamma, beta, stats } => {
                    let (y, fused) = batch_norm(
                        &h,
                        &ws[*gamma],
                        &ws[*beta],
                        stats.as_ref(),
                        train,
                        update_stats,
                        self.leaky_after(i),
                    )?;
                    fused_act = fused;
                    y
                }
                Layer::InstanceNorm => instance_norm(&h)?,
                Layer::InstanceNormAffine { gamma, beta } => {
                    instance_norm_affine(&h, &ws[*gamma], &ws[*beta])?
                }
                Layer::ReflectPad(p) => reflect_pad(&h, *p)?,
                Layer::Save => {
                    saved.push(h.clone());
                    h
                }
                Layer::AddSaved => {
                    let skip = saved.pop().ok_or_else(|| {
                        Error::config(format!("{}: a residual add without its start", self.prefix))
                    })?;
                    (h + skip)?
                }
                Layer::PixelNorm => pixel_norm(&h)?,
                Layer::Upsample2 => upsample2(&h)?,
                Layer::AvgPool2 => avg_pool2(&h)?,
                Layer::MinibatchStddev(g) => minibatch_stddev(&h, *g)?,
                Layer::Reshape(d) => {
                    let mut s = vec![b];
                    s.extend_from_slice(d);
                    h.reshape(s)?
                }
                Layer::Act(a) => a.apply(&h)?,
            };
        }
        Ok(h)
    }

    /// The slope of a ReLU (0) or LeakyReLU right after layer `i`, which the
    /// convolution and batch-norm ops can apply themselves (they report
    /// whether they did, and the loop then skips the activation layer).
    fn leaky_after(&self, i: usize) -> Option<f32> {
        match self.layers.get(i + 1) {
            Some(Layer::Act(Act::Relu)) => Some(0.0),
            Some(Layer::Act(Act::Leaky(a))) => Some(*a),
            _ => None,
        }
    }

    /// Runs the network on its own weights.
    pub fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_with(x, &self.tensors(), train, train)
    }
}

/// The weight an equalised layer uses: `w * scale` (the variable itself when `scale` is 1).
fn scaled(w: &Tensor, scale: f64) -> Result<Tensor> {
    Ok(if scale == 1.0 { w.clone() } else { (w * scale)? })
}

/// `[..., C]` with each feature vector (the last axis) divided by sqrt(mean(x^2) + 1e-8), Progressive
/// GAN's pixel norm (the reference's `pixel_norm`, epsilon 1e-8): one fused op on the CPU
/// ([`super::pixel_norm`]) unless the graph is kept for a second derivative.
pub fn pixel_norm(h: &Tensor) -> Result<Tensor> {
    let c = *h.dims().last().unwrap_or(&1);
    if c > 0 && crate::nn::cpu_kernels(h.device()) && !super::create_graph() {
        let x = h.contiguous()?.reshape(((), c))?;
        return Ok(x.apply_op1(super::pixel_norm::PixelNormOp)?.reshape(h.dims())?);
    }
    let ms = h.sqr()?.mean_keepdim(h.rank() - 1)?;
    Ok(h.broadcast_div(&(ms + super::pixel_norm::EPS as f64)?.sqrt()?)?)
}

/// `[B, H, W, C]` -> `[B, 2H, 2W, C]`, every pixel repeated in a 2x2 block (nearest neighbour).
pub fn upsample2(h: &Tensor) -> Result<Tensor> {
    let (b, hh, ww, c) = h.dims4()?;
    if super::cpu_kernels(h.device()) {
        return Ok(h
            .contiguous()?
            .apply_op1(super::resample::Resample { up: true, scale: 1.0 })?);
    }
    Ok(h.reshape((b, hh, 1, ww, 1, c))?
        .broadcast_as((b, hh, 2, ww, 2, c))?
        .contiguous()?
        .reshape((b, 2 * hh, 2 * ww, c))?)
}

/// `[B, H, W, C]` -> `[B, H/2, W/2, C]`, the mean of each 2x2 block (H and W even).
pub fn avg_pool2(h: &Tensor) -> Result<Tensor> {
    let (b, hh, ww, c) = h.dims4()?;
    if hh % 2 != 0 || ww % 2 != 0 {
        return Err(Error::Shape(format!("2x2 average pooling of a {hh}x{ww} map")));
    }
    if super::cpu_kernels(h.device()) {
        let op = super::resample::Resample { up: false, scale: 0.25 };
        return Ok(h.contiguous()?.apply_op1(op)?);
    }
    Ok((h.reshape((b, hh / 2, 2, ww / 2, 2, c))?.sum(4)?.sum(2)? * 0.25)?)
}

/// Minibatch standard deviation of `[B, H, W, C]` -> `[B, H, W, C + 1]`, as the reference's
/// `minibatch_stddev_layer`: the batch splits into groups of `g = min(group, B)` examples, example
/// i in group i mod (B / g); within each group the standard deviation of every feature at every
/// pixel (sqrt(var + 1e-8), var biased), averaged over features and pixels, is appended to each
/// member as a constant map. B must be a multiple of g.
pub fn minibatch_stddev(h: &Tensor, group: usize) -> Result<Tensor> {
    let (b, hh, ww, c) = h.dims4()?;
    let g = group.min(b).max(1);
    if !b.is_multiple_of(g) {
        return Err(Error::config(format!(
            "the minibatch standard deviation takes groups of {g} examples (--group-size): a \
            batch of {b} is not a multiple of {g}"
        )));
    }
    let m = b / g;
    let y = h.reshape((g, m, hh * ww * c))?;
    let centred = y.broadcast_sub(&y.mean_keepdim(0)?)?;
    let sd = (centred.sqr()?.mean(0)? + 1e-8)?.sqrt()?; // [m, hwc]
    let s = sd.mean_keepdim(1)?; // [m, 1]
    let s = s.reshape((1, m, 1))?.broadcast_as((g, m, hh * ww))?.reshape((b, hh, ww, 1))?;
    Ok(Tensor::cat(&[h, &s.contiguous()?], 3)?)
}

/// `[B, H, W, C]` padded by `p` on both sides of H and W with the reflection about the border
/// pixel (PyTorch's `ReflectionPad2d`: row -1 is row 1). Needs `p < H` and `p < W`.
pub fn reflect_pad(h: &Tensor, p: usize) -> Result<Tensor> {
    if p == 0 {
        return Ok(h.clone());
    }
    let (_, hh, ww, _) = h.dims4()?;
    if p >= hh || p >= ww {
        return Err(Error::Shape(format!("reflection padding of {p} on a {hh}x{ww} map")));
    }
    let index = |n: usize| -> Vec<u32> {
        let mut v: Vec<u32> = (1..=p).rev().map(|i| i as u32).collect();
        v.extend(0..n as u32);
        v.extend((n - 1 - p..n - 1).rev().map(|i| i as u32));
        v
    };
    let dev = h.device();
    let rows = Tensor::new(index(hh), dev)?;
    let cols = Tensor::new(index(ww), dev)?;
    Ok(h.contiguous()?.index_select(&rows, 1)?.index_select(&cols, 2)?)
}

/// `[B, ..., C]` with each (example, channel) normalised to mean 0 and variance 1 (biased, as
/// PyTorch's instance norm) over the middle axes, eps 1e-5: one fused op on the CPU
/// ([`super::instance_norm`]), candle ops elsewhere and under `create_graph`.
pub fn instance_norm(h: &Tensor) -> Result<Tensor> {
    let dims = h.dims().to_vec();
    let (b, c) = (dims[0], *dims.last().unwrap_or(&1));
    let x = h.reshape((b, (), c))?;
    if crate::nn::cpu_kernels(x.device()) && !super::create_graph() {
        let op = super::instance_norm::InstanceNormOp;
        return Ok(x.contiguous()?.apply_op1(op)?.reshape(dims)?);
    }
    // Shifted by each channel's first value first (exact for values near it, and instance norm
    // is shift-invariant): an f32 mean of a channel of small spread on a large offset otherwise
    // loses the digits the normalisation then magnifies.
    let x = x.broadcast_sub(&x.narrow(1, 0, 1)?.detach())?;
    let xc = x.broadcast_sub(&x.mean_keepdim(1)?)?;
    let var = xc.sqr()?.mean_keepdim(1)?;
    Ok(xc.broadcast_div(&(var + super::instance_norm::EPS)?.sqrt()?)?.reshape(dims)?)
}

/// [`instance_norm`] then a per-channel scale and shift, `gamma * y + beta` (`gamma`, `beta`:
/// `[C]`): one fused op on the CPU as well.
pub fn instance_norm_affine(h: &Tensor, gamma: &Tensor, beta: &Tensor) -> Result<Tensor> {
    let dims = h.dims().to_vec();
    let (b, c) = (dims[0], *dims.last().unwrap_or(&1));
    if crate::nn::cpu_kernels(h.device()) && !super::create_graph() {
        let x = h.reshape((b, (), c))?.contiguous()?;
        let op = super::instance_norm::InstanceNormAffineOp;
        let y = x.apply_op3(&gamma.contiguous()?, &beta.contiguous()?, op)?;
        return Ok(y.reshape(dims)?);
    }
    Ok(instance_norm(h)?.broadcast_mul(gamma)?.broadcast_add(beta)?)
}

/// Batch norm with batch statistics over the rows of `[N, C]` as one op: y = (x - mean) / sqrt(var
/// + eps) * gamma + beta.
struct NormOp {
    /// Fused activation after the normalisation: max(y, a y) with this slope (0 = ReLU).
    act: Option<f32>,
    /// The input's per-channel mean and 1/sqrt(var + eps), computed once by [`batch_norm`].
    mean: Vec<f32>,
    inv: Vec<f32>,
}

impl NormOp {
    /// Per-channel mean and 1/sqrt(var + eps) (two passes, in parallel over blocks of rows).
    fn stats(x: &[f32], c: usize) -> (Vec<f32>, Vec<f32>) {
        let n = (x.len() / c.max(1)).max(1);
        let sum = col_sums(x.len() / c.max(1), c, |r, acc| {
            acc.iter_mut().zip(&x[r * c..(r + 1) * c]).for_each(|(a, &v)| *a += v)
        });
        let mean: Vec<f32> = sum.iter().map(|s| (s / n as f64) as f32).collect();
        let sq = col_sums(x.len() / c.max(1), c, |r, acc| {
            acc.iter_mut()
                .zip(&x[r * c..(r + 1) * c])
                .zip(&mean)
                .for_each(|((a, &v), &m)| *a += (v - m) * (v - m))
        });
        let inv: Vec<f32> =
            sq.iter().map(|v| (1.0 / (v / n as f64 + BN_EPS).sqrt()) as f32).collect();
        (mean, inv)
    }
}

/// Rows processed per parallel task by the element-wise ops.
const PAR_ROWS: usize = 256;
/// Values processed per parallel task by the element-wise ops.
pub(crate) const PAR_CHUNK: usize = 16 * 1024;

/// Column sums over `n` rows of `c` values: `add(row, acc)` adds row `row`'s
/// terms into an f32 accumulator, one per block of [`PAR_ROWS`] rows (run in
/// parallel); the blocks are summed in f64, in order (deterministic).
fn col_sums(n: usize, c: usize, add: impl Fn(usize, &mut [f32]) + Sync) -> Vec<f64> {
    let blocks = n.div_ceil(PAR_ROWS);
    (0..blocks)
        .into_par_iter()
        .map(|b| {
            let mut acc = vec![0f32; c];
            for r in b * PAR_ROWS..((b + 1) * PAR_ROWS).min(n) {
                add(r, &mut acc);
            }
            acc
        })
        .collect::<Vec<_>>()
        .into_iter()
        // Summed in block order, so the result does not depend on how rayon split the work.
        .fold(vec![0f64; c], |mut a, b| {
            a.iter_mut().zip(&b).for_each(|(x, &y)| *x += y as f64);
            a
        })
}

impl candle_core::CustomOp3 for NormOp {
    fn name(&self) -> &'static str {
        "deepgen-batch-norm"
    }
    fn cpu_fwd(
        &self,
        xs: &candle_core::CpuStorage,
        xl: &candle_core::Layout,
        gs: &candle_core::CpuStorage,
        gl: &candle_core::Layout,
        bs: &candle_core::CpuStorage,
        bl: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        let (x, gamma, beta) =
            (f32s(xs, xl, "stack")?, f32s(gs, gl, "stack")?, f32s(bs, bl, "stack")?);
        let c = gamma.len();
        if self.mean.len() != c || self.inv.len() != c {
            candle_core::bail!(
                "batch norm: statistics for {} channels, gamma has {c}",
                self.mean.len()
            );
        }
        let (mean, inv) = (&self.mean, &self.inv);
        let scale: Vec<f32> = inv.iter().zip(gamma).map(|(i, g)| i * g).collect();
        let shift: Vec<f32> =
            mean.iter().zip(&scale).zip(beta).map(|((m, s), b)| b - m * s).collect();
        let act = self.act;
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(PAR_ROWS * c).zip(x.par_chunks(PAR_ROWS * c)).for_each(|(yb, xb)| {
            // One pass, the slope as a select: a branch on the sign mispredicts on half the
            // values and keeps the loop scalar (it was 8 % of a text-GAN step).
            let slope = act.unwrap_or(1.0);
            for (yr, xr) in yb.chunks_mut(c).zip(xb.chunks(c)) {
                yr.iter_mut().zip(xr).zip(scale.iter().zip(&shift)).for_each(
                    |((y, &x), (&s, &t))| {
                        let v = x * s + t;
                        *y = if v < 0.0 { v * slope } else { v };
                    },
                );
            }
        });
        Ok((candle_core::CpuStorage::F32(y), xl.shape().clone()))
    }
    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        _beta: &Tensor,
        y: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let c = gamma.elem_count();
        let gv = gamma.flatten_all()?.to_vec1::<f32>()?;
        let need_x = x.track_op();
        // Through the fused activation first: the output's sign tells which slope applied.
        let masked = match self.act {
            Some(a) => Some(super::fused::read(grad, |g| {
                super::fused::read(y, |yv| super::fused::leaky_grad(g, yv, a))
            })??),
            None => None,
        };
        let (dx, dg, db) = super::fused::read(x, |xv| {
            let grads = |dy: &[f32]| {
                let rows = xv.len() / c.max(1);
                let n = rows.max(1) as f32;
                let (mean, inv) = (&self.mean, &self.inv);
                // sums of dy and dy * xhat per channel
                let sd: Vec<f32> = col_sums(rows, c, |r, acc| {
                    acc.iter_mut().zip(&dy[r * c..(r + 1) * c]).for_each(|(a, &d)| *a += d)
                })
                .iter()
                .map(|&v| v as f32)
                .collect();
                let sdx: Vec<f32> = col_sums(rows, c, |r, acc| {
                    let (xr, dr) = (&xv[r * c..(r + 1) * c], &dy[r * c..(r + 1) * c]);
                    for k in 0..c {
                        acc[k] += dr[k] * (xr[k] - mean[k]) * inv[k];
                    }
                })
                .iter()
                .map(|&v| v as f32)
                .collect();
                let mut dx = Vec::new();
                if need_x {
                    // dx = gamma * inv * (dy - sd/n - xhat * sdx/n) = a * dy + b * x + e per
                    // channel.
                    let a: Vec<f32> = (0..c).map(|k| gv[k] * inv[k]).collect();
                    let bq: Vec<f32> = (0..c).map(|k| -a[k] * inv[k] * sdx[k] / n).collect();
                    let e: Vec<f32> = (0..c).map(|k| -a[k] * sd[k] / n - bq[k] * mean[k]).collect();
                    dx = vec![0f32; xv.len()];
                    dx.par_chunks_mut(PAR_ROWS * c)
                        .zip(xv.par_chunks(PAR_ROWS * c).zip(dy.par_chunks(PAR_ROWS * c)))
                        .for_each(|(ob, (xb, db))| {
                            for ((o, xr), dr) in
                                ob.chunks_mut(c).zip(xb.chunks(c)).zip(db.chunks(c))
                            {
                                for k in 0..c {
                                    o[k] = a[k] * dr[k] + bq[k] * xr[k] + e[k];
                                }
                            }
                        });
                }
                (dx, sdx, sd)
            };
            match &masked {
                Some(dy) => Ok(grads(dy)),
                None => super::fused::read(grad, grads),
            }
        })??;
        let dev = x.device();
        let dx = if need_x { Some(Tensor::from_vec(dx, x.shape(), dev)?) } else { None };
        if !gamma.track_op() {
            return Ok((dx, None, None));
        }
        Ok((
            dx,
            Some(Tensor::from_vec(dg, gamma.shape(), dev)?),
            Some(Tensor::from_vec(db, gamma.shape(), dev)?),
        ))
    }
}

const BN_EPS: f64 = 1e-5;
const BN_MOMENTUM: f64 = 0.1;

/// Batch norm over all rows of the last axis (PyTorch's BatchNorm1d/2d on channels-last data).
/// With `act` (a leaky slope; 0 for ReLU) the fused path applies the
/// activation too and returns `true`; otherwise the caller applies it.
#[allow(clippy::too_many_arguments)]
fn batch_norm(
    h: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    stats: Option<&(Var, Var)>,
    train: bool,
    update: bool,
    act: Option<f32>,
) -> Result<(Tensor, bool)> {
    let dims = h.dims().to_vec();
    let c = *dims.last().unwrap_or(&1);
    let x = h.reshape(((), c))?;
    let n = x.dim(0)?;
    let fused =
        crate::nn::cpu_kernels(x.device()) && !super::create_graph() && (train || stats.is_none());
    if fused {
        // The batch statistics once, for the running averages, the forward and the backward pass.
        let xc = x.contiguous()?;
        let (mean, inv) = super::fused::read(&xc, |v| NormOp::stats(v, c))?;
        if let (Some((rm, rv)), true) = (stats, update) {
            let unbias = n as f64 / (n.max(2) - 1) as f64;
            let var: Vec<f32> = inv
                .iter()
                .map(|i| ((1.0 / (*i as f64).powi(2) - BN_EPS) * unbias) as f32)
                .collect();
            let dev = x.device();
            rm.set(
                &((rm.as_tensor() * (1.0 - BN_MOMENTUM))?
                    + (Tensor::from_vec(mean.clone(), c, dev)? * BN_MOMENTUM)?)?,
            )?;
            rv.set(
                &((rv.as_tensor() * (1.0 - BN_MOMENTUM))?
                    + (Tensor::from_vec(var, c, dev)? * BN_MOMENTUM)?)?,
            )?;
        }
        return Ok((
            xc.apply_op3(gamma, beta, NormOp { act, mean, inv })?.reshape(dims)?,
            act.is_some(),
        ));
    }
    let (mean, var) = if train || stats.is_none() {
        let mean = x.mean_keepdim(0)?;
        let centred = x.broadcast_sub(&mean)?;
        let var = centred.sqr()?.mean_keepdim(0)?;
        if let (Some((rm, rv)), true) = (stats, update) {
            let unbiased = (var.detach() * (n as f64 / (n.max(2) - 1) as f64))?;
            rm.set(
                &((rm.as_tensor() * (1.0 - BN_MOMENTUM))?
                    + (mean.detach().squeeze(0)? * BN_MOMENTUM)?)?,
            )?;
            rv.set(
                &((rv.as_tensor() * (1.0 - BN_MOMENTUM))? + (unbiased.squeeze(0)? * BN_MOMENTUM)?)?,
            )?;
        }
        (mean, var)
    } else {
        let (rm, rv) = stats.ok_or_else(|| Error::config("batch norm: no running statistics"))?;
        (rm.as_tensor().unsqueeze(0)?, rv.as_tensor().unsqueeze(0)?)
    };
    let y = x
        .broadcast_sub(&mean)?
        .broadcast_div(&(var + BN_EPS)?.sqrt()?)?
        .broadcast_mul(gamma)?
        .broadcast_add(beta)?;
    Ok((y.reshape(dims)?, false))
}
