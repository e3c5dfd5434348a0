//! The text-conditional GAN (Reed et al. 2016, "Generative Adversarial Text to Image
//! Synthesis", and the authors' `main_cls_int.lua`): a DCGAN whose generator and critic both see
//! a caption's embedding φ(t) from a text encoder trained beforehand for image-text matching
//! ([`super::matcher`]) and kept fixed.
//!
//! - Generator: φ(t) compressed by a dense layer to 32 values with LeakyReLU(0.2) (the
//!   reference's `fcG`, 1024 to 128), joined to z ~ N(0, I) (100), then the DCGAN generator.
//! - Critic: the DCGAN critic's convolutions down to its H/4 x W/4 map; φ(t) compressed the same
//!   way (`fcD`), tiled over that map and joined to it as channels, a 1x1 convolution with batch
//!   norm and LeakyReLU(0.2), and a dense layer over the whole map to one logit (the reference's
//!   4x4 convolution over its 4x4 map).
//! - GAN-CLS (Alg. 1): the critic's loss is
//!   log D(x, h) + 1/2 [log(1 - D(x, ĥ)) + log(1 - D(G(z, h), h))], real images with
//!   mismatching text ĥ as a second kind of fake (the reference's `cls_weight` 0.5). The
//!   mismatching caption is that of another image of the batch with another label (the
//!   reference's `wrong_img` comes from another class), any other image when the data has no
//!   labels.
//! - GAN-INT (Sec. 4.3): the generator also makes images for h = β h1 + (1 - β) h2, β = 0.5, the
//!   first half of the batch's embeddings with the second half's (the reference's
//!   `interp_type` 1), B/2 more rows in the generator's loss, weight 1 (`interp_weight`); the
//!   critic never sees them (there is no real image for an interpolated caption).
//! - Losses: the non-saturating GAN loss (the reference's BCE with real labels for the
//!   generator), Adam(2e-4, 0.5, 0.999) for both players.
//!
//! Differences from the reference: it averages the embeddings of 4 captions of each image
//! (`numCaption` 4); here each batch row carries one of its image's captions, drawn afresh each
//! step, so the generator learns to follow one sentence. The players are the DCGAN scaled to
//! 28-32 px (two stride-2 layers instead of four, and no residual blocks), and the critic's text
//! branch has no batch norm.

use candle_core::{Device, Tensor, Var};
use serde::{Deserialize, Serialize};

use super::gan::GanLoss;
use super::matcher::{captions_of, TextEncoder, TextEncoderConfig};
use super::{Adversarial, Sampler, Side};
use crate::data::captions::Vocab;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::models::family::net;
use crate::models::family::*;
use crate::models::ModelFlags;
use crate::nn::conv::Strided;
use crate::nn::stack::{Init, Stack};
use crate::nn::{Act, Params};
use crate::recipe::TrainConfig;
use crate::rng::{self, Rng};

/// Which of the paper's four models (Sec. 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TextVariant {
    /// The plain conditional GAN.
    Gan,
    /// The matching-aware critic.
    Cls,
    /// Interpolated text embeddings for the generator.
    Int,
    /// Both.
    IntCls,
}

impl TextVariant {
    pub fn cls(self) -> bool {
        matches!(self, TextVariant::Cls | TextVariant::IntCls)
    }
    pub fn int(self) -> bool {
        matches!(self, TextVariant::Int | TextVariant::IntCls)
    }
    pub fn name(self) -> &'static str {
        match self {
            TextVariant::Gan => "GAN",
            TextVariant::Cls => "GAN-CLS",
            TextVariant::Int => "GAN-INT",
            TextVariant::IntCls => "GAN-INT-CLS",
        }
    }
}

impl std::str::FromStr for TextVariant {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "gan" => Ok(TextVariant::Gan),
            "cls" => Ok(TextVariant::Cls),
            "int" => Ok(TextVariant::Int),
            "int-cls" => Ok(TextVariant::IntCls),
            _ => Err(Error::config(format!(
                "--text-variant `{}`: expected gan, cls, int or int-cls",
                crate::error::shown(s)
            ))),
        }
    }
}

/// How many training captions a run keeps to draw conditions from when it samples without a
/// caption (its sample grids, `deepgen eval`).
pub const KEPT_CAPTIONS: usize = 512;

/// GAN-CLS's weight on the mismatched pairs (the reference's `cls_weight`), the generated batch
/// taking the rest.
pub const CLS_WEIGHT: f64 = 0.5;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TextGanConfig {
    /// `[C, H, W]`, H and W multiples of 4.
    pub shape: Vec<usize>,
    /// The fixed text encoder's shape (copied from the matcher run).
    pub text: TextEncoderConfig,
    /// The matcher run the text encoder came from, for the record.
    pub text_encoder: String,
    pub variant: TextVariant,
    pub latent: usize,
    /// The compressed embedding's width (the reference's `nt`).
    pub compressed: usize,
    /// The generator's last hidden channels (the critic's first).
    pub channels: usize,
    /// GAN-INT's β.
    pub beta: f64,
    /// Training captions (up to [`KEPT_CAPTIONS`], drawn by the seed) for unconditioned samples.
    pub captions: Vec<String>,
}

impl TextGanConfig {
    pub fn dim(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn check(&self) -> Result<()> {
        match self.shape[..] {
            [_, h, w] if h >= 4 && w >= 4 && h % 4 == 0 && w % 4 == 0 => {}
            _ => {
                return Err(Error::config(format!(
                    "text-gan needs images whose sides are multiples of 4, not shape {:?}",
                    self.shape
                )))
            }
        }
        if self.channels == 0 || self.channels > 1024 {
            return Err(Error::config("--channels must be 1 to 1024"));
        }
        if self.latent == 0 || self.latent > 4096 {
            return Err(Error::config("--latent must be 1 to 4096"));
        }
        Ok(())
    }
}

pub struct TextGan {
    pub cfg: TextGanConfig,
    /// φ, fixed: neither optimiser has its weights.
    pub text: TextEncoder,
    g_text: Stack,
    g: Stack,
    d: Stack,
    d_text: Stack,
    d_joint: Stack,
    dev: Device,
}

impl TextGan {
    pub fn new(p: &mut Params, cfg: &TextGanConfig, rng: &mut Rng, dev: &Device) -> Result<Self> {
        cfg.check()?;
        let text = TextEncoder::new(p, "text", &cfg.text, rng, dev)?;
        let (c, h, w) = (cfg.shape[0], cfg.shape[1], cfg.shape[2]);
        let (h4, w4, ch, nt) = (h / 4, w / 4, cfg.channels, cfg.compressed);
        let init = Init::Normal(0.02);
        let s = Strided { k: 4, stride: 2, pad: 1 };
        let mut g_text = Stack::new("g.text", cfg.text.dim, dev);
        g_text.dense(p, "fc", nt, false, init, rng)?.act(Act::Leaky(0.2));
        let mut g = Stack::new("g", cfg.latent + nt, dev);
        g.dense(p, "fc", 2 * ch * h4 * w4, false, init, rng)?;
        g.reshape(&[h4, w4, 2 * ch]).norm(p, "bn0", 2 * ch, true, rng)?.act(Act::Relu);
        g.up(p, "up1", s, (h4, w4, 2 * ch), ch, init, rng)?;
        g.norm(p, "bn1", ch, true, rng)?.act(Act::Relu);
        g.up(p, "up2", s, (2 * h4, 2 * w4, ch), c, init, rng)?.act(Act::Tanh);
        let mut d = Stack::new("d", c * h * w, dev);
        d.down(p, "conv1", s, (h, w, c), ch, init, rng)?.act(Act::Leaky(0.2));
        d.down(p, "conv2", s, (h / 2, w / 2, ch), 2 * ch, init, rng)?;
        d.norm(p, "bn2", 2 * ch, false, rng)?.act(Act::Leaky(0.2));
        let mut d_text = Stack::new("d.text", cfg.text.dim, dev);
        d_text.dense(p, "fc", nt, false, init, rng)?.act(Act::Leaky(0.2));
        let mut d_joint = Stack::new("d.joint", h4 * w4 * (2 * ch + nt), dev);
        let one = Strided { k: 1, stride: 1, pad: 0 };
        d_joint.down(p, "conv", one, (h4, w4, 2 * ch + nt), 2 * ch, init, rng)?;
        d_joint.norm(p, "bn", 2 * ch, false, rng)?.act(Act::Leaky(0.2));
        d_joint.dense(p, "v", 1, false, init, rng)?;
        Ok(Self { cfg: cfg.clone(), text, g_text, g, d, d_text, d_joint, dev: dev.clone() })
    }

    /// φ(t) of captions (one clear line for an unknown word, an empty or too long caption).
    pub fn embed(&self, captions: &[String]) -> Result<Tensor> {
        Ok(self.text.embed(captions)?.detach())
    }

    /// G(z, h) in data space ([0, 1]) `[n, D]`; `train`: batch statistics (the training step)
    /// rather than the running ones.
    pub fn generate(&self, z: &Tensor, h: &Tensor, train: bool) -> Result<Tensor> {
        let t = self.g_text.forward(h, train)?;
        let y = self.g.forward_with(&Tensor::cat(&[z, &t], 1)?, &self.g.tensors(), train, train)?;
        let b = z.dim(0)?;
        let y = y.permute((0, 3, 1, 2))?.reshape((b, ()))?;
        Ok(((y + 1.0)? * 0.5)?)
    }

    /// Images for captions, one per caption, z drawn with `rng`.
    pub fn sample_captions(&self, captions: &[String], rng: &mut Rng) -> Result<Tensor> {
        let h = self.embed(captions)?;
        let z = rng::randn(rng, &[captions.len(), self.cfg.latent], &self.dev)?;
        self.generate(&z, &h, false)
    }

    /// Rows of `n` noise vectors, each drawn at `steps` embeddings from caption `a`'s to `b`'s
    /// (linearly): `[n * steps, D]`, row-major (a row per noise vector).
    pub fn interpolate(
        &self,
        a: &str,
        b: &str,
        n: usize,
        steps: usize,
        rng: &mut Rng,
    ) -> Result<Tensor> {
        let h = self.embed(&[a.to_string(), b.to_string()])?;
        let (ha, hb) = (h.narrow(0, 0, 1)?, h.narrow(0, 1, 1)?);
        let z = rng::randn(rng, &[n, self.cfg.latent], &self.dev)?;
        let mut zs = Vec::with_capacity(n * steps);
        let mut hs = Vec::with_capacity(n * steps);
        for i in 0..n {
            for k in 0..steps {
                let t = if steps > 1 { k as f64 / (steps - 1) as f64 } else { 0.0 };
                zs.push(z.narrow(0, i, 1)?);
                hs.push(((&ha * (1.0 - t))? + (&hb * t)?)?);
            }
        }
        self.generate(&Tensor::cat(&zs, 0)?, &Tensor::cat(&hs, 0)?, false)
    }

    /// Copies the text encoder's weights from a matcher run's parameters (names `text.*`).
    pub fn load_text_encoder(&self, own: &Params, matcher: &Params, what: &str) -> Result<()> {
        for name in &self.text.names {
            let src = matcher.get(name).ok_or_else(|| {
                Error::config(format!("{what}: the matcher run has no weight {name}"))
            })?;
            let dst = own.get(name).ok_or_else(|| Error::config(format!("{name} vanished")))?;
            if src.shape() != dst.shape() {
                return Err(Error::config(format!(
                    "{what}: weight {name} has shape {:?}, the text GAN's encoder {:?}",
                    src.dims(),
                    dst.dims()
                )));
            }
            dst.set(src.as_tensor())?;
        }
        Ok(())
    }

    /// (images in [-1, 1], φ(t)) of a batch row.
    fn split(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let (d, l) = (self.cfg.dim(), self.cfg.text.vocab.max_words);
        if x.dim(1)? != d + l {
            return Err(Error::Shape(format!(
                "text-gan: batch rows of {} values, expected an image and {l} word ids",
                x.dim(1)?
            )));
        }
        let h = self.text.forward(&x.narrow(1, d, l)?)?.detach();
        Ok((((x.narrow(1, 0, d)? * 2.0)? - 1.0)?, h))
    }

    /// GAN-CLS's real images with mismatching captions: each row gets the caption of another
    /// row with another label (any other row when the data has no labels); None without CLS.
    pub fn mismatched(&self, real: &Side, rng: &mut Rng) -> Result<Option<Side>> {
        use rand::Rng as _;
        if !self.cfg.variant.cls() {
            return Ok(None);
        }

        let h = real.cond.as_ref().ok_or_else(|| Error::config("text-gan: no text"))?;
        let b = h.dim(0)?;
        if b < 2 {
            return Err(Error::config("GAN-CLS needs batches of at least 2 (--batch-size)"));
        }
        let labels = real.codes.as_ref().map(|c| c.to_vec1::<f32>()).transpose()?;
        let mut pick = Vec::with_capacity(b);
        for i in 0..b {
            let others: Vec<u32> = (0..b as u32)
                .filter(|&j| j as usize != i)
                .filter(|&j| labels.as_ref().is_none_or(|l| l[j as usize] != l[i]))
                .collect();
            pick.push(if others.is_empty() {
                ((i + rng.gen_range(1..b)) % b) as u32
            } else {
                others[rng.gen_range(0..others.len())]
            });
        }
        let wrong = h.index_select(&Tensor::new(pick, &self.dev)?, 0)?;
        Ok(Some(Side { x: real.x.clone(), cond: Some(wrong), codes: None }))
    }

    /// The generator's real rows of a fake batch of `total` rows: GAN-INT appends B/2
    /// interpolated rows to B (so B = ceil(2 total / 3)).
    fn matched_rows(&self, total: usize) -> usize {
        if self.cfg.variant.int() {
            (2 * total).div_ceil(3)
        } else {
            total
        }
    }
}

impl Sampler for TextGan {
    /// Images for captions drawn from the run's training captions.
    fn sample(&self, n: usize, rng: &mut Rng) -> Result<Tensor> {
        use rand::Rng as _;
        if self.cfg.captions.is_empty() {
            return Err(Error::config("the run keeps no captions to sample from: give --text"));
        }
        let k = self.cfg.captions.len();
        let captions: Vec<String> =
            (0..n).map(|_| self.cfg.captions[rng.gen_range(0..k)].clone()).collect();
        self.sample_captions(&captions, rng)
    }
}

impl Adversarial for TextGan {
    fn d_weights(&self) -> Vec<(String, Var)> {
        [&self.d, &self.d_text, &self.d_joint]
            .iter()
            .flat_map(|s| s.names.iter().cloned().zip(s.vars.iter().cloned()))
            .collect()
    }

    fn g_names(&self) -> Vec<String> {
        let mut n = self.g_text.names.clone();
        n.extend(self.g.names.iter().cloned());
        n
    }

    fn loss(&self) -> GanLoss {
        GanLoss::NonSaturating
    }

    /// Real images with their own captions; the labels ride along for GAN-CLS's mismatches.
    fn real(&self, x: &Tensor, labels: Option<&[u32]>, _rng: &mut Rng) -> Result<Side> {
        let (px, h) = self.split(x)?;
        let codes = match labels {
            Some(l) => Some(Tensor::from_vec(
                l.iter().map(|&v| v as f32).collect::<Vec<_>>(),
                l.len(),
                &self.dev,
            )?),
            None => None,
        };
        Ok(Side { x: px, cond: Some(h), codes })
    }

    /// G(z, h) for the batch's captions, and for GAN-INT B/2 more at interpolated embeddings.
    fn fake(&self, x: &Tensor, _labels: Option<&[u32]>, rng: &mut Rng) -> Result<Side> {
        let (_, h) = self.split(x)?;
        let b = h.dim(0)?;
        let h = if self.cfg.variant.int() && b >= 2 {
            let half = b / 2;
            let beta = self.cfg.beta;
            let mix =
                ((h.narrow(0, 0, half)? * beta)? + (h.narrow(0, half, half)? * (1.0 - beta))?)?;
            Tensor::cat(&[&h, &mix], 0)?
        } else {
            h
        };
        let z = rng::randn(rng, &[h.dim(0)?, self.cfg.latent], &self.dev)?;
        let y = self.generate(&z, &h, true)?;
        Ok(Side { x: ((y * 2.0)? - 1.0)?, cond: Some(h), codes: None })
    }

    /// The critic sees the matched fakes only (GAN-INT's interpolations have no real
    /// counterpart).
    fn critic_fakes(&self, fake: Side, _rng: &mut Rng) -> Result<Side> {
        let total = fake.x.dim(0)?;
        let b = self.matched_rows(total);
        if b == total {
            return Ok(fake);
        }
        let cond = fake.cond.as_ref().map(|c| c.narrow(0, 0, b)).transpose()?;
        Ok(Side { x: fake.x.narrow(0, 0, b)?, cond, codes: None })
    }

    /// GAN-CLS: the real images with mismatching captions, weight 1/2 (and the generated batch
    /// 1/2, [`Adversarial::fake_weight`]).
    fn extra_fakes(&self, real: &Side, _fake: &Side, rng: &mut Rng) -> Result<Vec<(Side, f64)>> {
        Ok(match self.mismatched(real, rng)? {
            Some(w) => vec![(w, CLS_WEIGHT)],
            None => vec![],
        })
    }

    fn fake_weight(&self) -> f64 {
        if self.cfg.variant.cls() {
            1.0 - CLS_WEIGHT
        } else {
            1.0
        }
    }

    fn critic(&self, s: &Side, ws: &[Tensor]) -> Result<(Tensor, Option<Tensor>)> {
        let h = s.cond.as_ref().ok_or_else(|| Error::config("text-gan: the critic needs text"))?;
        let (c, hh, ww) = (self.cfg.shape[0], self.cfg.shape[1], self.cfg.shape[2]);
        let b = s.x.dim(0)?;
        let (nd, nt) = (self.d.vars.len(), self.d_text.vars.len());
        let maps = s.x.reshape((b, c, hh, ww))?.permute((0, 2, 3, 1))?;
        let f = self.d.forward_with(&maps, &ws[..nd], true, false)?;
        let t = self.d_text.forward_with(h, &ws[nd..nd + nt], true, false)?;
        let (h4, w4) = (hh / 4, ww / 4);
        let k = self.cfg.compressed;
        let tiled = t.reshape((b, 1, 1, k))?.broadcast_as((b, h4, w4, k))?.contiguous()?;
        let joint = Tensor::cat(&[&f, &tiled], 3)?;
        let v = self.d_joint.forward_with(&joint, &ws[nd + nt..], true, false)?;
        Ok((v.reshape(b)?, None))
    }

    fn vocab(&self) -> Option<&Vocab> {
        Some(&self.cfg.text.vocab)
    }

    fn check_data(&self, data: &Dataset) -> Result<()> {
        let c = captions_of(data, "text-gan")?;
        // Every caption must be readable by the fixed encoder: refused now, not mid-run.
        for t in c.texts.iter().flatten() {
            self.cfg
                .text
                .vocab
                .row(t)
                .map_err(|e| Error::config(format!("{}: {e}", data.source)))?;
        }
        Ok(())
    }
}

impl Family for TextGanConfig {
    const MODELS: &'static [ModelInfo] = &[ModelInfo {
        name: "text-gan",
        summary: "text-conditional GAN (Reed et al. 2016): GAN-CLS's matching-aware critic and \
            GAN-INT's interpolated captions on a DCGAN, captions embedded by a text-matcher run",
        density: Density::None,
        training: Training::Adversarial,
        sampler: true,
        completion: false,
        encoder: false,
        features: None,
        labels: Labels::Unused,
        scores: &[],
        data: "images with captions (mnist+captions+seen, captions.txt beside a PNG folder) and \
            --text-encoder RUN, a text-matcher trained on them",
        flags: &["text_encoder", "text_variant", "latent", "channels"],
    }];

    fn preset(_name: &str, shape: &[usize], _unit_data: bool) -> Result<Self> {
        Ok(Self {
            shape: shape.to_vec(),
            text: super::matcher::text_config(Vocab { words: vec![], max_words: 1 }),
            text_encoder: String::new(),
            variant: TextVariant::IntCls,
            latent: 100,
            compressed: 32,
            channels: 64,
            beta: 0.5,
            captions: vec![],
        })
    }

    /// The reference's Adam(2e-4, 0.5, 0.999) for both players and batch 64; 8000 iterations
    /// (69 epochs of the seen digits), where GAN-INT-CLS follows the caption's digit 94.7 % of
    /// the time on held-out captions (29.8 % after 2000; bench/RESULTS.md).
    fn recipe(_name: &str, _shape: &[usize]) -> TrainConfig {
        TrainConfig::dcgan_adam(8000)
    }

    fn name(&self) -> &'static str {
        "text-gan"
    }

    fn dim(&self) -> usize {
        TextGanConfig::dim(self)
    }

    fn needs(&self) -> Needs {
        Needs { binary: false, grey_levels: false }
    }

    fn configure(&mut self, flags: &ModelFlags, data: &Dataset, seed: u64) -> Result<()> {
        let c = captions_of(data, "text-gan")?;
        match (&flags.text_encoder, &flags.text_encoder_config) {
            (Some(path), Some(t)) => {
                self.text = t.clone();
                self.text_encoder = path.clone();
            }
            (Some(path), None) => {
                return Err(Error::config(format!(
                    "--text-encoder {path}: the run was not read (a library caller sets \
                    ModelFlags::text_encoder_config from the matcher run)"
                )))
            }
            (None, _) if self.text_encoder.is_empty() => {
                return Err(Error::config(
                    "text-gan embeds captions with a trained text encoder: give --text-encoder \
                    RUN (deepgen train text-matcher --data SAME-DATA first)",
                ))
            }
            (None, _) => {}
        }
        if let Some(v) = &flags.text_variant {
            self.variant = v.parse()?;
        }
        self.latent = flags.latent.unwrap_or(self.latent);
        self.channels = flags.channels.unwrap_or(self.channels);
        let mut r = rng::derived(seed, "kept-captions", 0);
        let all: Vec<&String> = c.texts.iter().flatten().collect();
        let order = rng::permutation(&mut r, all.len());
        self.captions = order.iter().take(KEPT_CAPTIONS).map(|&i| all[i].clone()).collect();
        self.check()?;
        for t in &self.captions {
            self.text.vocab.row(t).map_err(|e| {
                Error::config(format!(
                    "{}: the text encoder ({}) cannot read the data's captions: {e}",
                    data.source, self.text_encoder
                ))
            })?;
        }
        Ok(())
    }

    fn build(&self, p: &mut Params, rng: &mut Rng, dev: &Device) -> Result<Box<dyn Net>> {
        Ok(Box::new(TextGan::new(p, self, rng, dev)?))
    }
}

net!(TextGan {
    density: no,
    sampler: yes,
    sequential: no,
    encoder: no,
    features: no,
    objective: no,
    adversarial: yes,
    translator: no,
});
