//! Progressive GAN (Karras, Aila, Laine & Lehtinen 2018, "Progressive Growing of GANs for Improved
//! Quality, Stability, and Variation"), following the paper and the authors' reference code
//! (`networks.py` G_paper / D_paper, `train.py`, `loss.py`):
//!
//! - Growing (Sec. 2, Fig. 2): training starts at `start_res` (4x4) and alternates two phases of
//!   images shown, as the reference's `TrainingSchedule`: stabilise at resolution r for
//!   `stabilise_images`, then fade in the 2r layers over `fade_images` with alpha rising linearly
//!   from 0 to 1, until `max_res`, which then trains for the rest of the steps. While fading, the
//!   generator's output is (1 - alpha) upsample(toRGB_r(h_r)) + alpha toRGB_2r(block_2r(h_r)), the
//!   critic's input path is (1 - alpha) fromRGB_r(avgpool(x)) + alpha block_2r(fromRGB_2r(x)),
//!   and the real images are blended the same way: (1 - alpha) upsample(avgpool(x_2r)) + alpha
//!   x_2r (the reference's `process_reals`), where x_2r is the data average-pooled to 2r.
//! - Equalised learning rate (Sec. 4.1): every weight is stored N(0, 1) and multiplied by its He
//!   constant gain / sqrt(fan_in) at every forward pass ([`Init::Equalized`]); biases unscaled,
//!   initialised to 0; gain sqrt(2), except sqrt(2)/4 for the latent-to-4x4 dense layer and 1 for
//!   toRGB and the critic's output, as in the reference.
//! - Pixelwise feature normalisation (Sec. 4.2) on the latent and after every generator
//!   convolution; leaky ReLU 0.2 everywhere; nearest-neighbour upsampling, 2x2 average-pool
//!   downsampling; toRGB / fromRGB 1x1 convolutions.
//! - Minibatch standard deviation (Sec. 3) before the critic's last block, groups of 4.
//! - Loss (Sec. A.1, `loss.py` G_wgan / D_wgangp): WGAN-GP with lambda 10 plus the drift term
//!   0.001 E[D(x)^2] on reals (the trainer's `gp` and `drift`); Adam(1e-3, beta1 0, beta2 0.99,
//!   eps 1e-8) for both players, one critic step per generator step.
//! - Both optimisers restart (moments zeroed, bias correction from the phase's first step) at
//!   every phase boundary, the reference's `reset_opt_for_new_lod = True`: Adam's moments of the
//!   old layers were estimated for another network.
//! - Samples come from an exponential moving average of the generator (`Gs`, G_smoothing): the
//!   paper's 0.999 per update is a half-life of about a tenth of its 600k-image phases, and the
//!   default decay keeps that ratio for the scaled phases ([`ema_decay`]; `--g-ema` sets it).
//! - Feature maps per resolution r: min(channels, 32 channels / r) (the reference's
//!   min(fmap_base / 2^stage, fmap_max) with fmap_base = 16 fmap_max); the paper's 512 becomes
//!   `--channels` (default 32) and its 512-wide latent `--latent` (default 128), for a CPU.
//!
//! Differences, said here: the networks run at the current resolution instead of at full
//! resolution with upscaled outputs (the reference's `lod` input), which computes the same
//! function with fewer operations; the first dense layer has a bias per output instead of per
//! channel; the batch size stays the same at every resolution (the reference's `minibatch_dict`
//! halves it at high resolutions, for GPU memory); data whose sides are not a power of two are
//! padded, centred, to the next power-of-two square with the background value 0 (MNIST's 28 to
//! 32) and samples are cropped back.

use candle_core::{Device, Tensor, Var};
use serde::{Deserialize, Serialize};

use super::gan::GanLoss;
use super::{Adversarial, Progress, Side};
use crate::error::{Error, Result};
use crate::models::family::net;
use crate::models::family::*;
use crate::models::{ModelFlags, Sampler};
use crate::nn::conv::Strided;
use crate::nn::stack::{avg_pool2, pixel_norm, upsample2, Init, Stack};
use crate::nn::{Act, Params};
use crate::recipe::{AdversarialConfig, Schedule, TrainConfig};
use crate::rng::{self, Rng};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProGanConfig {
    /// The data's `[C, H, W]`.
    pub shape: Vec<usize>,
    pub latent: usize,
    /// Feature maps at the low resolutions (the paper's fmap_max, 512).
    pub channels: usize,
    pub start_res: usize,
    pub max_res: usize,
    /// Images shown while a resolution stabilises, and while the next one fades in.
    pub stabilise_images: u64,
    pub fade_images: u64,
    /// Examples per minibatch-standard-deviation group.
    pub group_size: usize,
    /// Decay of the generator's weight average used for samples (0 = the live weights).
    pub ema: f64,
}

/// The side of the square the networks see: the next power of two of the data's larger side.
pub fn padded_side(h: usize, w: usize) -> usize {
    h.max(w).next_power_of_two()
}

impl ProGanConfig {
    pub fn dim(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn side(&self) -> usize {
        padded_side(self.shape[1], self.shape[2])
    }

    /// Feature maps at resolution `r`.
    pub fn nf(&self, r: usize) -> usize {
        (self.channels * 32 / r).clamp(1, self.channels)
    }

    /// Resolutions 4, 8, ..., `max_res` (index = level).
    pub fn resolutions(&self) -> Vec<usize> {
        (0..).map(|l| 4usize << l).take_while(|&r| r <= self.max_res).collect()
    }

    /// Level of resolution `r` (4x4 is level 0).
    pub fn level(r: usize) -> usize {
        (r / 4).trailing_zeros() as usize
    }

    pub fn check(&self) -> Result<()> {
        let [c, h, w] = self.shape[..] else {
            return Err(Error::config(format!(
                "progan makes images ([C, H, W]); the data has examples of shape {:?}",
                self.shape
            )));
        };
        if c == 0 || h < 4 || w < 4 {
            return Err(Error::config(format!(
                "progan grows from 4x4: {h}x{w} images are too small"
            )));
        }
        let side = self.side();
        for (flag, r) in [("--start-res", self.start_res), ("--max-res", self.max_res)] {
            if r < 4 || !r.is_power_of_two() || r > side {
                return Err(Error::config(format!(
                    "{flag} must be a power of two from 4 to {side} (the data's {h}x{w}, padded), \
                    got {r}"
                )));
            }
        }
        if self.start_res > self.max_res {
            return Err(Error::config(format!(
                "--start-res {} is above --max-res {}",
                self.start_res, self.max_res
            )));
        }
        if self.channels == 0 || self.channels > 1024 {
            return Err(Error::config("--channels must be 1 to 1024"));
        }
        if self.latent == 0 || self.latent > 8192 {
            return Err(Error::config("--latent must be 1 to 8192"));
        }
        if self.stabilise_images == 0 {
            return Err(Error::config("--stabilise-images must be at least 1"));
        }
        if self.group_size == 0 {
            return Err(Error::config("--group-size must be at least 1"));
        }
        super::ema::check(self.ema)?;
        Ok(())
    }

    /// Where the schedule stands after `images` examples shown (the reference's
    /// `TrainingSchedule`, with resolutions in place of levels of detail).
    pub fn phase(&self, images: u64) -> Progress {
        let (s, f) = (self.stabilise_images, self.fade_images);
        let dur = s + f;
        let growths = (self.max_res / self.start_res).trailing_zeros() as u64;
        let k = images / dur;
        let stable = |r: usize, start: u64| Progress {
            phase_start: start,
            resolution: r,
            alpha: 1.0,
            label: format!("{r}x{r} stable"),
        };
        if k >= growths {
            return stable(self.max_res, growths * dur);
        }
        let within = images - k * dur;
        let r = self.start_res << k;
        if within < s {
            return stable(r, k * dur);
        }
        let alpha = (within - s) as f64 / f as f64;
        Progress {
            phase_start: k * dur + s,
            resolution: 2 * r,
            alpha,
            label: format!("{0}x{0} fading in, alpha {alpha:.2}", 2 * r),
        }
    }
}

/// The generator average's decay per update of `batch` examples for phases of `phase` images:
/// a half-life of a tenth of a phase. The paper's 0.999 per update is a half-life of 693 updates,
/// 44k-89k images at its minibatches of 64-128, against phases of 600k images: the same tenth.
/// (0.999 itself over phases of a few hundred updates would average in layers not yet trained.)
pub fn ema_decay(phase: u64, batch: usize) -> f64 {
    let half_life = (phase as f64 / 10.0 / batch as f64).max(1.0);
    // Four decimals: a value that reads back exactly from config.toml and the checkpoint's JSON.
    (0.5f64.powf(1.0 / half_life) * 1e4).round() / 1e4
}

/// The two players: one stack per block, so the fade-in can mix two paths.
pub struct ProGan {
    pub cfg: ProGanConfig,
    /// Latent to the 4x4 map.
    g_base: Stack,
    /// Level l >= 1: upsample, two 3x3 convolutions (index l - 1).
    g_blocks: Vec<Stack>,
    /// toRGB per level.
    g_rgb: Vec<Stack>,
    /// fromRGB per level.
    d_rgb: Vec<Stack>,
    /// Level l >= 1: two 3x3 convolutions, average pool (index l - 1).
    d_blocks: Vec<Stack>,
    /// Minibatch stddev, 3x3 convolution, two dense layers to the critic's value.
    d_final: Stack,
    g_ema: Option<Vec<Var>>,
    /// Examples shown, as two exact f32 values (high and low 24 bits): saved in the checkpoint,
    /// so a loaded run samples at the resolution it reached.
    shown: Var,
    dev: Device,
}

const SQRT2: f32 = std::f32::consts::SQRT_2;
const LEAKY: Act = Act::Leaky(0.2);
const SAME3: Strided = Strided { k: 3, stride: 1, pad: 1 };
const ONE: Strided = Strided { k: 1, stride: 1, pad: 0 };

impl ProGan {
    pub fn new(p: &mut Params, cfg: &ProGanConfig, rng: &mut Rng, dev: &Device) -> Result<Self> {
        cfg.check()?;
        let c = cfg.shape[0];
        let eq = Init::Equalized(SQRT2);
        let nf4 = cfg.nf(4);
        let mut g_base = Stack::new("g.base", cfg.latent, dev);
        g_base.dense(p, "fc", 16 * nf4, false, Init::Equalized(SQRT2 / 4.0), rng)?;
        g_base.reshape(&[4, 4, nf4]).act(LEAKY).pixel_norm();
        g_base.down(p, "conv", SAME3, (4, 4, nf4), nf4, eq, rng)?.act(LEAKY).pixel_norm();
        let res = cfg.resolutions();
        let (mut g_blocks, mut g_rgb, mut d_rgb, mut d_blocks) = (vec![], vec![], vec![], vec![]);
        for &r in &res {
            let (lo, hi) = (cfg.nf((r / 2).max(4)), cfg.nf(r));
            if r > 4 {
                let mut b = Stack::new(&format!("g.block{r}"), (r / 2) * (r / 2) * lo, dev);
                b.upsample2();
                b.down(p, "conv0", SAME3, (r, r, lo), hi, eq, rng)?.act(LEAKY).pixel_norm();
                b.down(p, "conv1", SAME3, (r, r, hi), hi, eq, rng)?.act(LEAKY).pixel_norm();
                g_blocks.push(b);
                let mut d = Stack::new(&format!("d.block{r}"), r * r * hi, dev);
                d.down(p, "conv0", SAME3, (r, r, hi), hi, eq, rng)?.act(LEAKY);
                d.down(p, "conv1", SAME3, (r, r, hi), lo, eq, rng)?.act(LEAKY);
                d.avg_pool2();
                d_blocks.push(d);
            }
            let mut t = Stack::new(&format!("g.rgb{r}"), r * r * hi, dev);
            t.down(p, "conv", ONE, (r, r, hi), c, Init::Equalized(1.0), rng)?;
            g_rgb.push(t);
            let mut f = Stack::new(&format!("d.rgb{r}"), r * r * c, dev);
            f.down(p, "conv", ONE, (r, r, c), hi, eq, rng)?.act(LEAKY);
            d_rgb.push(f);
        }
        let mut d_final = Stack::new("d.final", 16 * nf4, dev);
        d_final.minibatch_stddev(cfg.group_size, (4, 4));
        d_final.down(p, "conv", SAME3, (4, 4, nf4 + 1), nf4, eq, rng)?.act(LEAKY);
        d_final.dense(p, "fc", cfg.channels, false, eq, rng)?.act(LEAKY);
        d_final.dense(p, "out", 1, false, Init::Equalized(1.0), rng)?;
        p.add("progress.shown", Tensor::zeros(2, candle_core::DType::F32, dev)?)?;
        let shown = p
            .get("progress.shown")
            .cloned()
            .ok_or_else(|| Error::config("buffer progress.shown vanished"))?;
        let mut gan = Self {
            cfg: cfg.clone(),
            g_base,
            g_blocks,
            g_rgb,
            d_rgb,
            d_blocks,
            d_final,
            g_ema: None,
            shown,
            dev: dev.clone(),
        };
        if cfg.ema > 0.0 {
            let (names, vars) = gan.g_named();
            gan.g_ema = Some(super::ema::register(p, &names, &vars)?);
        }
        Ok(gan)
    }

    /// The generator's stacks in weight order: base, blocks, toRGBs.
    fn g_stacks(&self) -> Vec<&Stack> {
        let mut v = vec![&self.g_base];
        v.extend(&self.g_blocks);
        v.extend(&self.g_rgb);
        v
    }

    /// The critic's stacks in weight order: fromRGBs, blocks, final.
    fn d_stacks(&self) -> Vec<&Stack> {
        let mut v: Vec<&Stack> = self.d_rgb.iter().collect();
        v.extend(&self.d_blocks);
        v.push(&self.d_final);
        v
    }

    fn g_named(&self) -> (Vec<String>, Vec<Var>) {
        let s = self.g_stacks();
        (
            s.iter().flat_map(|s| s.names.iter().cloned()).collect(),
            s.iter().flat_map(|s| s.vars.iter().cloned()).collect(),
        )
    }

    /// `flat` split into one weight list per stack of `stacks`.
    fn split(stacks: &[&Stack], flat: &[Tensor]) -> Vec<Vec<Tensor>> {
        let mut at = 0;
        stacks
            .iter()
            .map(|s| {
                let part = flat[at..at + s.vars.len()].to_vec();
                at += s.vars.len();
                part
            })
            .collect()
    }

    /// Examples shown so far (the value the trainer last set).
    pub fn images_shown(&self) -> Result<u64> {
        let v = self.shown.as_tensor().to_vec1::<f32>()?;
        Ok(((v[0] as u64) << 24) + v[1] as u64)
    }

    /// The schedule's position now.
    pub fn current(&self) -> Result<Progress> {
        Ok(self.cfg.phase(self.images_shown()?))
    }

    /// G(z) at `resolution` with fade-in weight `alpha`: `[B, r, r, C]` in network space
    /// ([-1, 1]); `ema`: the weight average (when there is one).
    pub fn generate(&self, z: &Tensor, resolution: usize, alpha: f64, ema: bool) -> Result<Tensor> {
        let stacks = self.g_stacks();
        let flat: Vec<Tensor> = match (&self.g_ema, ema) {
            (Some(avg), true) => avg.iter().map(|v| v.as_tensor().clone()).collect(),
            _ => stacks.iter().flat_map(|s| s.tensors()).collect(),
        };
        let ws = Self::split(&stacks, &flat);
        let nb = self.g_blocks.len();
        let run = |i: usize, h: &Tensor| stacks[i].forward_with(h, &ws[i], true, false);
        let level = ProGanConfig::level(resolution);
        let mut h = run(0, &pixel_norm(z)?)?;
        let mut prev = h.clone();
        for l in 1..=level {
            prev = h;
            h = run(l, &prev)?;
        }
        let y = run(1 + nb + level, &h)?;
        if alpha >= 1.0 || level == 0 {
            return Ok(y);
        }
        let low = upsample2(&run(nb + level, &prev)?)?;
        Ok((&low + ((y - &low)? * alpha)?)?)
    }

    /// The critic's value `[B]` of image maps `[B, r, r, C]` (network space) under weights `ws`.
    fn judge(&self, x: &Tensor, resolution: usize, alpha: f64, ws: &[Tensor]) -> Result<Tensor> {
        let stacks = self.d_stacks();
        let ws = Self::split(&stacks, ws);
        let nr = self.d_rgb.len();
        let run = |i: usize, h: &Tensor| stacks[i].forward_with(h, &ws[i], true, false);
        let level = ProGanConfig::level(resolution);
        let mut h = run(level, x)?;
        if level > 0 {
            h = run(nr + level - 1, &h)?;
            if alpha < 1.0 {
                let low = run(level - 1, &avg_pool2(x)?)?;
                h = (&low + ((h - &low)? * alpha)?)?;
            }
            for l in (1..level).rev() {
                h = run(nr + l - 1, &h)?;
            }
        }
        let v = run(stacks.len() - 1, &h)?;
        Ok(v.squeeze(1)?)
    }

    /// The data's (C, H, W).
    fn chw(&self) -> Result<(usize, usize, usize)> {
        match self.cfg.shape[..] {
            [c, h, w] => Ok((c, h, w)),
            _ => Err(Error::Shape(format!("progan: shape {:?} is not [C, H, W]", self.cfg.shape))),
        }
    }

    /// Data rows `[B, C*H*W]` in [0, 1] as the critic sees them at `resolution` and `alpha`:
    /// padded to the square side, average-pooled down, blended while fading.
    pub fn real_maps(&self, x: &Tensor, resolution: usize, alpha: f64) -> Result<Tensor> {
        let (c, h, w) = self.chw()?;
        let side = self.cfg.side();
        let b = x.dim(0)?;
        if x.dim(1)? != c * h * w {
            return Err(Error::Shape(format!(
                "progan: rows of {} values, the model makes {c}x{h}x{w} images",
                x.dim(1)?
            )));
        }
        // Padding of (x + 1) with zeros is padding of x with -1, the background 0.
        let mut m = (x.reshape((b, c, h, w))?.permute((0, 2, 3, 1))? * 2.0)?;
        let (top, left) = ((side - h) / 2, (side - w) / 2);
        m = m.pad_with_zeros(1, top, side - h - top)?.pad_with_zeros(2, left, side - w - left)?;
        m = (m - 1.0)?;
        let mut r = side;
        while r > resolution {
            m = avg_pool2(&m)?;
            r /= 2;
        }
        if alpha < 1.0 && resolution > 4 {
            let low = upsample2(&avg_pool2(&m)?)?;
            m = (&low + ((m - &low)? * alpha)?)?;
        }
        Ok(m)
    }

    /// Generator maps `[n, r, r, C]` (network space) to data rows `[n, C*H*W]` in [0, 1]:
    /// upsampled (nearest) to the padded side and cropped.
    pub fn to_rows(&self, y: &Tensor) -> Result<Tensor> {
        let (c, h, w) = self.chw()?;
        let side = self.cfg.side();
        let n = y.dim(0)?;
        let mut y = y.clone();
        while y.dim(1)? < side {
            y = upsample2(&y)?;
        }
        let (top, left) = ((side - h) / 2, (side - w) / 2);
        let y = y.narrow(1, top, h)?.narrow(2, left, w)?.permute((0, 3, 1, 2))?;
        if y.dim(1)? != c {
            return Err(Error::Shape(format!("progan: {} channels made, {c} expected", y.dim(1)?)));
        }
        Ok(((y.reshape((n, ()))? + 1.0)? * 0.5)?.clamp(0f32, 1f32)?)
    }

    /// Samples from the weight average at the schedule's current resolution and alpha.
    pub fn sample_at(&self, n: usize, p: &Progress, rng: &mut Rng) -> Result<Tensor> {
        let z = rng::randn(rng, &[n, self.cfg.latent], &self.dev)?;
        self.to_rows(&self.generate(&z, p.resolution, p.alpha, true)?)
    }

    fn maps(&self, rows: &Tensor, r: usize) -> Result<Tensor> {
        Ok(rows.reshape((rows.dim(0)?, r, r, self.cfg.shape[0]))?)
    }
}

impl Sampler for ProGan {
    fn sample(&self, n: usize, rng: &mut Rng) -> Result<Tensor> {
        self.sample_at(n, &self.current()?, rng)
    }
}

impl Adversarial for ProGan {
    fn d_weights(&self) -> Vec<(String, Var)> {
        self.d_stacks()
            .iter()
            .flat_map(|s| s.names.iter().cloned().zip(s.vars.iter().cloned()))
            .collect()
    }

    fn g_names(&self) -> Vec<String> {
        self.g_named().0
    }

    fn loss(&self) -> GanLoss {
        GanLoss::Wasserstein
    }

    /// The data at the current resolution, rows of the `[r, r, C]` map.
    fn real(&self, x: &Tensor, _labels: Option<&[u32]>, _rng: &mut Rng) -> Result<Side> {
        let p = self.current()?;
        let m = self.real_maps(x, p.resolution, p.alpha)?;
        Ok(Side { x: m.reshape((m.dim(0)?, ()))?, cond: None, codes: None })
    }

    fn fake(&self, x: &Tensor, _labels: Option<&[u32]>, rng: &mut Rng) -> Result<Side> {
        let p = self.current()?;
        let z = rng::randn(rng, &[x.dim(0)?, self.cfg.latent], &self.dev)?;
        let y = self.generate(&z, p.resolution, p.alpha, false)?;
        Ok(Side { x: y.reshape((y.dim(0)?, ()))?, cond: None, codes: None })
    }

    fn critic(&self, s: &Side, ws: &[Tensor]) -> Result<(Tensor, Option<Tensor>)> {
        let p = self.current()?;
        let v = self.judge(&self.maps(&s.x, p.resolution)?, p.resolution, p.alpha, ws)?;
        Ok((v, None))
    }

    fn after_generator_step(&self) -> Result<()> {
        match &self.g_ema {
            Some(avg) => super::ema::update(avg, &self.g_named().1, self.cfg.ema),
            None => Ok(()),
        }
    }

    fn progress(&self, images: u64) -> Option<Progress> {
        Some(self.cfg.phase(images))
    }

    fn advance(&self, images: u64) -> Result<()> {
        let v = [(images >> 24) as f32, (images & 0xff_ffff) as f32];
        Ok(self.shown.set(&Tensor::new(&v, &self.dev)?)?)
    }

    fn check_batch(&self, batch_size: usize) -> Result<()> {
        let g = self.cfg.group_size.min(batch_size).max(1);
        if !batch_size.is_multiple_of(g) {
            return Err(Error::config(format!(
                "progan: --batch-size {batch_size} is not a multiple of the minibatch standard \
                deviation's group size {g} (--group-size)"
            )));
        }
        Ok(())
    }
}

impl Family for ProGanConfig {
    const MODELS: &'static [ModelInfo] = &[ModelInfo {
        name: "progan",
        summary: "Progressive GAN (Karras et al. 2018): grows from 4x4 to the data's size with \
            fade-in, equalised learning rate, pixel norm, minibatch stddev, WGAN-GP + drift, \
            generator EMA",
        density: Density::None,
        training: Training::Adversarial,
        sampler: true,
        completion: false,
        encoder: false,
        features: None,
        labels: Labels::Unused,
        scores: &[],
        data: "images of 1 or more channels, any size (padded to a power-of-two square): mnist, \
            stacked-mnist, png:DIR",
        flags: &[
            "latent",
            "channels",
            "g_ema",
            "start_res",
            "max_res",
            "stabilise_images",
            "fade_images",
            "group_size",
        ],
    }];

    /// The paper's schedule scaled to the recipe's images: equal stabilise and fade phases (the
    /// reference's 600k + 600k images each), the final resolution stabilising as long as the
    /// others.
    fn preset(name: &str, shape: &[usize], _unit_data: bool) -> Result<Self> {
        let side = match shape {
            [_, h, w] => padded_side(*h, *w).max(4),
            _ => 4,
        };
        let t = Self::recipe(name, shape);
        let phases = 2 * (side / 4).trailing_zeros() as u64 + 1;
        let per = (t.steps * t.batch_size) as u64 / phases;
        Ok(Self {
            shape: shape.to_vec(),
            latent: 128,
            channels: 32,
            start_res: 4,
            max_res: side,
            stabilise_images: per,
            fade_images: per,
            group_size: 4,
            ema: ema_decay(per, t.batch_size),
        })
    }

    /// Adam(1e-3, 0, 0.99) for both players, one critic step per generator step, WGAN-GP
    /// lambda 10 with drift 0.001 (the paper's Sec. A.1); batch 64 and 2000 iterations, the
    /// DCGAN recipe's 128,000 images.
    fn recipe(_name: &str, _shape: &[usize]) -> TrainConfig {
        let critic = AdversarialConfig {
            d_lr: 1e-3,
            n_critic: 1,
            gp: Some(10.0),
            drift: Some(0.001),
            ..AdversarialConfig::default()
        };
        let mut t = TrainConfig {
            steps: 2000,
            batch_size: 64,
            lr: 1e-3,
            schedule: Schedule::Constant,
            adversarial: Some(critic),
            ..TrainConfig::default()
        };
        t.optimizer.beta1 = 0.0;
        t.optimizer.beta2 = 0.99;
        t.optimizer.eps = 1e-8;
        t
    }

    fn name(&self) -> &'static str {
        "progan"
    }

    fn dim(&self) -> usize {
        ProGanConfig::dim(self)
    }

    fn needs(&self) -> Needs {
        Needs { binary: false, grey_levels: false }
    }

    fn configure(
        &mut self,
        flags: &ModelFlags,
        data: &crate::data::Dataset,
        _seed: u64,
    ) -> Result<()> {
        if data.shape.len() != 3 {
            return Err(Error::config(format!(
                "{}: progan makes images; this set has examples of shape {:?}",
                data.source, data.shape
            )));
        }
        self.latent = flags.latent.unwrap_or(self.latent);
        self.channels = flags.channels.unwrap_or(self.channels);
        self.ema = flags.g_ema.unwrap_or(self.ema);
        self.start_res = flags.start_res.unwrap_or(self.start_res);
        self.max_res = flags.max_res.unwrap_or(self.max_res);
        self.stabilise_images = flags.stabilise_images.unwrap_or(self.stabilise_images);
        if flags.g_ema.is_none() {
            let batch = Self::recipe("progan", &self.shape).batch_size;
            self.ema = ema_decay(self.stabilise_images, batch);
        }
        self.fade_images = flags.fade_images.unwrap_or(self.fade_images);
        self.group_size = flags.group_size.unwrap_or(self.group_size);
        self.check()
    }

    fn build(&self, p: &mut Params, rng: &mut Rng, dev: &Device) -> Result<Box<dyn Net>> {
        Ok(Box::new(ProGan::new(p, self, rng, dev)?))
    }
}

net!(ProGan {
    density: no,
    sampler: yes,
    sequential: no,
    encoder: no,
    features: no,
    objective: no,
    adversarial: yes,
    translator: no,
});
