//! PixelCNN (van den Oord, Kalchbrenner & Kavukcuoglu, ICML 2016, section
//! 3.4 and Table 1) and the gated PixelCNN (van den Oord et al., NIPS 2016,
//! "Conditional Image Generation with PixelCNN Decoders", section 2.2).
//!
//! p(x) = prod_i p(x_i | x_<i) in raster order over a one-channel image.
//! * **Plain**: a 7x7 mask-A convolution (the pixel itself excluded), then
//!   residual blocks `x + 1x1(relu(3x3_B(relu(1x1(relu x)))))` with mask B
//!   (the centre included: its features depend only on earlier pixels), then
//!   `1x1 -> relu -> 1x1` to the output. Stacked masked 3x3 convolutions
//!   have a blind spot: pixels above-right of the current one that no path
//!   reaches (the tests show which).
//! * **Gated**: a vertical stack that sees every row above (kernel rows
//!   r-k/2..r of a map that itself only depends on rows above; the first
//!   layer's kernel stops at row r-1) and a horizontal stack that sees the
//!   current row to the left, the vertical stack's pre-activation linked into
//!   the horizontal one at each layer; gates tanh(a) * sigmoid(b); residual
//!   connections in the horizontal stack. No blind spot.
//!
//! Output per pixel: one Bernoulli logit, or a 256-way softmax for 8-bit
//! grey images (see [`PixelOutput`]). Convolutions are [`MaskedConv`]s on
//! channels-last maps (only the allowed taps are computed).
//!
//! **Sampling** recomputes, for pixel (r, c), only the window of rows
//! r-U..r and columns c-L..c+R, where U, L, R are the network's total reach
//! up, left and right: every feature the output at (r, c) depends on lies
//! in that window and is computed from inputs inside it, so the result is
//! exact (tested against the full forward pass) at a fraction of the cost.
//!
//! Tensor names: `in` (first conv), `block{i}.{a,conv,b}`, `head.{0,1}`;
//! gated: `v{i}`, `h{i}`, `link{i}`, `res{i}`, `head.{0,1}`.

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::data::Dataset;
use crate::dist::PixelOutput;
use crate::error::{Error, Result};
use crate::models::family::*;
use crate::models::family::{explicit_sequential, net};
use crate::models::ModelFlags;
use crate::models::{Canvas, Known};
use crate::nn::conv::{pointwise, pointwise_relu_in, raster_taps, MaskedConv, Tap};
use crate::nn::{ops, Act, Linear, Params};
use crate::recipe::TrainConfig;
use crate::rng::Rng;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PixelCnnConfig {
    pub height: usize,
    pub width: usize,
    /// Feature maps of the residual stream (plain) or of each stack (gated).
    #[serde(default = "default_channels")]
    pub channels: usize,
    /// Residual blocks (plain) or gated layers after the first.
    #[serde(default = "default_layers")]
    pub layers: usize,
    #[serde(default)]
    pub gated: bool,
    #[serde(default)]
    pub output: PixelOutput,
}

fn default_channels() -> usize {
    32
}
fn default_layers() -> usize {
    5
}

/// The vertical stack's taps: rows r-k/2..r (or ..r-1 for the first layer), all columns within k/2.
fn vertical_taps(k: usize, first: bool) -> Vec<Tap> {
    let r = (k / 2) as i32;
    let last = if first { -1 } else { 0 };
    (-r..=last).flat_map(|dy| (-r..=r).map(move |dx| (dy, dx))).collect()
}

/// The horizontal stack's taps: the current row, k/2 to the left, up to (not for the first layer)
/// the centre.
fn horizontal_taps(k: usize, first: bool) -> Vec<Tap> {
    let r = (k / 2) as i32;
    let last = if first { -1 } else { 0 };
    (-r..=last).map(|dx| (0, dx)).collect()
}

#[derive(Debug, Clone)]
struct Block {
    a: Linear,
    conv: MaskedConv,
    b: Linear,
}

#[derive(Debug, Clone)]
struct GatedLayer {
    v: MaskedConv,
    h: MaskedConv,
    link: Linear,
    res: Linear,
}

#[derive(Debug, Clone)]
pub struct PixelCnn {
    cfg: PixelCnnConfig,
    first: Option<MaskedConv>,
    blocks: Vec<Block>,
    gated: Vec<GatedLayer>,
    head: [Linear; 2],
}

/// tanh(first half) * sigmoid(second half) of the channels.
fn gate(x: &Tensor) -> Result<Tensor> {
    Ok(ops::gated_tanh(x)?)
}

impl PixelCnn {
    pub fn new(p: &mut Params, cfg: &PixelCnnConfig, rng: &mut Rng, dev: &Device) -> Result<Self> {
        let c = cfg.channels;
        if cfg.height == 0 || cfg.width == 0 {
            return Err(Error::config(
                "pixelcnn: needs one-channel images (height and width \
                positive)",
            ));
        }
        if c < 2 {
            return Err(Error::config("pixelcnn: channels must be at least 2"));
        }
        let (mut first, mut blocks, mut gated) = (None, Vec::new(), Vec::new());
        if cfg.gated {
            for l in 0..=cfg.layers {
                let (k, cin) = if l == 0 { (7, 1) } else { (3, c) };
                gated.push(GatedLayer {
                    v: MaskedConv::new(
                        p,
                        &format!("v{l}"),
                        vertical_taps(k, l == 0),
                        cin,
                        2 * c,
                        rng,
                        dev,
                    )?,
                    h: MaskedConv::new(
                        p,
                        &format!("h{l}"),
                        horizontal_taps(k, l == 0),
                        cin,
                        2 * c,
                        rng,
                        dev,
                    )?,
                    link: Linear::new(p, &format!("link{l}"), 2 * c, 2 * c, rng, dev)?,
                    res: Linear::new(p, &format!("res{l}"), c, c, rng, dev)?,
                });
            }
        } else {
            first = Some(MaskedConv::new(p, "in", raster_taps(7, false), 1, c, rng, dev)?);
            for i in 0..cfg.layers {
                blocks.push(Block {
                    a: Linear::new(p, &format!("block{i}.a"), c, c / 2, rng, dev)?,
                    conv: MaskedConv::new(
                        p,
                        &format!("block{i}.conv"),
                        raster_taps(3, true),
                        c / 2,
                        c / 2,
                        rng,
                        dev,
                    )?,
                    b: Linear::new(p, &format!("block{i}.b"), c / 2, c, rng, dev)?,
                });
            }
        }
        let head = [
            Linear::new(p, "head.0", c, c, rng, dev)?,
            Linear::new(p, "head.1", c, cfg.output.params(), rng, dev)?,
        ];
        Ok(Self { cfg: cfg.clone(), first, blocks, gated, head })
    }

    pub fn output(&self) -> PixelOutput {
        self.cfg.output
    }

    /// The output parameters at every pixel of `[B, H, W, 1]` images (any H, W).
    ///
    /// # Shapes
    /// `img: [B, H, W, 1]` -> `[B, H, W, P]`
    pub fn forward_image(&self, img: &Tensor) -> Result<Tensor> {
        let mut x = if let Some(first) = &self.first {
            let mut x = first.forward(img, Act::Identity)?;
            for b in &self.blocks {
                let t = pointwise_relu_in(&b.a, &x, Act::Relu)?;
                let t = b.conv.forward(&t, Act::Relu)?;
                x = (x + pointwise(&b.b, &t, Act::Identity)?)?;
            }
            x
        } else {
            let (mut v, mut h) = (img.clone(), img.clone());
            for (l, g) in self.gated.iter().enumerate() {
                let v_pre = g.v.forward(&v, Act::Identity)?;
                let h_pre =
                    (g.h.forward(&h, Act::Identity)? + pointwise(&g.link, &v_pre, Act::Identity)?)?;
                v = gate(&v_pre)?;
                let out = pointwise(&g.res, &gate(&h_pre)?, Act::Identity)?;
                h = if l == 0 { out } else { (h + out)? };
            }
            h
        };
        x = pointwise_relu_in(&self.head[0], &x, Act::Relu)?;
        pointwise(&self.head[1], &x, Act::Identity)
    }

    /// Output parameters of every conditional.
    ///
    /// # Shapes
    /// `x: [B, D]` -> `[B, D, P]`
    pub fn conditionals(&self, x: &Tensor) -> Result<Tensor> {
        let (b, d) = x.dims2()?;
        let (h, w) = (self.cfg.height, self.cfg.width);
        let out = self.forward_image(&x.reshape((b, h, w, 1))?)?;
        Ok(out.reshape((b, d, self.cfg.output.params()))?)
    }

    /// # Shapes
    /// `x: [B, D]` -> `[B]`
    pub fn log_prob(&self, x: &Tensor) -> Result<Tensor> {
        self.cfg.output.log_prob(&self.conditionals(x)?, x)
    }

    /// The network's total reach (up, left, right) in pixels.
    pub fn reach(&self) -> (usize, usize, usize) {
        let convs: Vec<&MaskedConv> = self
            .first
            .iter()
            .chain(self.blocks.iter().map(|b| &b.conv))
            .chain(self.gated.iter().flat_map(|g| [&g.v, &g.h]))
            .collect();
        // The two gated stacks run side by side; summing both over-estimates the reach, which is
        // safe.
        convs.iter().fold((0, 0, 0), |acc, c| {
            let r = c.reach();
            (acc.0 + r.0, acc.1 + r.1, acc.2 + r.2)
        })
    }

    /// Raster-order sampling, each pixel from the network evaluated on the
    /// window that reaches it (exact; see the module notes). Known pixels
    /// (completion) are kept. Returns samples and their log-probabilities.
    pub fn sample_ar(
        &self,
        n: usize,
        known: Option<&Known>,
        rng: &mut Rng,
    ) -> Result<(Tensor, Vec<f64>)> {
        let (h, w) = (self.cfg.height, self.cfg.width);
        let d = h * w;
        let dev = self.head[1].b.device().clone();
        let (up, left, right) = self.reach();
        let p = self.cfg.output.params();
        let mut canvas = Canvas::new(n, d, known);
        for r in 0..h {
            let r0 = r.saturating_sub(up);
            for c in 0..w {
                let (c0, c1) = (c.saturating_sub(left), (c + right + 1).min(w));
                let (wh, ww) = (r - r0 + 1, c1 - c0);
                let mut win = Vec::with_capacity(n * wh * ww);
                for s in 0..n {
                    for y in r0..=r {
                        win.extend_from_slice(&canvas.x[s * d + y * w + c0..s * d + y * w + c1]);
                    }
                }
                let t = Tensor::from_vec(win, (n, wh, ww, 1), &dev)?;
                let out = self
                    .forward_image(&t)?
                    .narrow(1, wh - 1, 1)?
                    .narrow(2, c - c0, 1)?
                    .reshape((n, p))?
                    .to_vec2::<f32>()?;
                canvas.draw(r * w + c, &out, self.cfg.output, rng);
            }
        }
        canvas.finish(&dev)
    }
}

impl Family for PixelCnnConfig {
    const MODELS: &'static [ModelInfo] = &[
        ModelInfo {
            name: "pixelcnn",
            summary: "PixelCNN (van den Oord et al. 2016): masked convolutions A then B, residual \
            blocks",
            density: Density::Exact,
            training: Training::Likelihood,
            sampler: true,
            completion: true,
            encoder: false,
            features: None,
            labels: Labels::Unused,
            scores: DENSITY_SCORES,
            data: "one-channel images: binary (--output bernoulli) or 256 grey levels (--output \
            softmax)",
            flags: &["channels", "layers", "output"],
        },
        ModelInfo {
            name: "gated-pixelcnn",
            summary:
                "gated PixelCNN (van den Oord et al. 2016b): vertical and horizontal stacks, no \
            blind spot",
            density: Density::Exact,
            training: Training::Likelihood,
            sampler: true,
            completion: true,
            encoder: false,
            features: None,
            labels: Labels::Unused,
            scores: DENSITY_SCORES,
            data: "one-channel images: binary (--output bernoulli) or 256 grey levels (--output \
            softmax)",
            flags: &["channels", "layers", "output"],
        },
    ];

    fn preset(name: &str, shape: &[usize], _unit_data: bool) -> Result<Self> {
        let (height, width) = one_channel(name, shape)?;
        // The gated layer computes 2C gate maps from a 3x3 vertical and a 1x2 horizontal kernel
        // plus
        // a 2C x 2C link: ~9x the work of a plain bottleneck block at the same C, so 16 maps.
        let gated = name == "gated-pixelcnn";
        let channels = if gated { 16 } else { 32 };
        Ok(Self { height, width, channels, layers: 5, gated, output: PixelOutput::Bernoulli })
    }

    /// Each finishes in a few minutes on 2 cores (measured on MNIST, batch 64:
    /// PixelCNN ~4 min at 2,000 steps, the gated PixelCNN ~5-10 min at 1,000);
    /// batch 64 is the budget of bench/ar_table.sh.
    fn recipe(name: &str, _shape: &[usize]) -> TrainConfig {
        let steps = if name == "gated-pixelcnn" { 1000 } else { 2000 };
        TrainConfig { steps, batch_size: 64, ..TrainConfig::default() }
    }

    fn name(&self) -> &'static str {
        if self.gated {
            "gated-pixelcnn"
        } else {
            "pixelcnn"
        }
    }

    fn dim(&self) -> usize {
        self.height * self.width
    }

    fn needs(&self) -> Needs {
        pixel_needs(self.output)
    }

    fn configure(&mut self, flags: &ModelFlags, _data: &Dataset, _seed: u64) -> Result<()> {
        configure_pixels(flags, &mut self.channels, &mut self.layers, &mut self.output)
    }

    fn build(&self, p: &mut Params, rng: &mut Rng, dev: &Device) -> Result<Box<dyn Net>> {
        Ok(Box::new(PixelCnn::new(p, self, rng, dev)?))
    }
}

net!(PixelCnn {
    density: yes,
    sampler: yes,
    sequential: yes,
    encoder: no,
    features: no,
    objective: yes,
    adversarial: no,
    translator: no,
});

explicit_sequential!(PixelCnn { conditionals: own, objective: nll });
