//! StarGAN (Choi et al. 2018, "StarGAN: Unified Generative Adversarial Networks for Multi-Domain
//! Image-to-Image Translation"): one generator G(x, c) for every target domain c, one critic
//! with an adversarial head D_src and a domain-classification head D_cls. The objectives of
//! eq. 5-7 with the WGAN-GP adversarial term of eq. 8:
//!
//!   L_D = -L_adv + lambda_cls L_cls^r,        L_cls^r = E[-log D_cls(c' | x)]
//!   L_G =  L_adv + lambda_cls L_cls^f + lambda_rec L_rec,
//!   L_cls^f = E[-log D_cls(c | G(x, c))],     L_rec = E ||x - G(G(x, c), c')||_1,
//!
//! lambda_cls 1, lambda_rec 10, gradient penalty 10, n_critic 5, Adam(1e-4, 0.5, 0.999), the
//! learning rate decayed linearly over the second half; target labels are a shuffled copy of the
//! batch's own labels (the authors' `solver.py`: `rand_idx = torch.randperm(...)`).
//!
//! Domains are attribute vectors ([`crate::data::attributes`]): the classification loss is a
//! softmax cross-entropy for an exclusive group (the paper's RaFD expressions) and a sigmoid
//! cross-entropy for each binary attribute (CelebA), summed over attributes and averaged over
//! the batch, as the reference's `classification_loss`. The target label is tiled as input planes
//! beside the image.
//!
//! Players, scaled to 28-32 px ([`super::translation`]): the paper's generator (7x7 convolution,
//! two 4x4 stride-2 downsamplings, 6 residual blocks, two 4x4 transposed convolutions, 7x7
//! convolution, tanh; affine instance norm) with `channels` (default 16, the paper's 64) in the
//! first layer; the paper's PatchGAN critic without normalisation (4x4 stride-2 convolutions,
//! LeakyReLU 0.01) with 3 downsamplings (the paper's 6 for 128 px), D_src a 3x3 convolution to one
//! channel, D_cls a convolution covering the whole last map (a dense layer here). Differences:
//! the heads have biases (the reference has none; harmless before a loss), the instance norm
//! always uses the example's own statistics (the reference's `track_running_stats=True` is never
//! switched to eval mode in its test code, so it does the same), and the trainer draws a fresh
//! target permutation for the generator's step. `--identity-weight W` adds CycleGAN's identity
//! term W |G(x, c) - x| (c the input's own labels), which the paper does not have (default 0).

use candle_core::{Device, Tensor, Var};
use serde::{Deserialize, Serialize};

use super::gan::GanLoss;
use super::translation::{self, l1, Domains, ResnetSpec, Target, Translator};
use super::{Adversarial, BatchRows, Side};
use crate::data::attributes::{self, Attribute};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::models::family::net;
use crate::models::family::*;
use crate::models::ModelFlags;
use crate::nn::conv::Strided;
use crate::nn::ops::softplus;
use crate::nn::stack::{Init, Stack};
use crate::nn::{Act, Params};
use crate::recipe::{AdversarialConfig, Schedule, TrainConfig};
use crate::rng::{self, Rng};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StarGanConfig {
    /// `[C, H, W]`.
    pub shape: Vec<usize>,
    /// The domains: the training data's attributes.
    pub attributes: Vec<Attribute>,
    /// The generator's first-layer channels (the critic's are twice these).
    pub channels: usize,
    pub blocks: usize,
    /// The critic's stride-2 convolutions.
    pub critic_layers: usize,
    pub cls_weight: f64,
    pub rec_weight: f64,
    /// Not in the paper: CycleGAN's identity term lambda_id |G(x, c) - x| on the input's own
    /// labels (0, the default, is the paper's objective).
    #[serde(default)]
    pub identity_weight: f64,
}

impl StarGanConfig {
    pub fn dim(&self) -> usize {
        self.shape.iter().product()
    }

    /// The width of the encoded attribute vector.
    pub fn width(&self) -> usize {
        attributes::width(&self.attributes)
    }

    pub fn check(&self) -> Result<()> {
        let (_, h, w) = translation::image_shape(&self.shape, "stargan")?;
        if self.attributes.is_empty() {
            return Err(Error::config("stargan needs at least one attribute"));
        }
        if self.channels == 0 || self.channels > 1024 {
            return Err(Error::config("--channels must be 1 to 1024"));
        }
        if self.blocks > 64 {
            return Err(Error::config("--layers (residual blocks) must be at most 64"));
        }
        if self.critic_layers == 0
            || self.critic_layers > 16
            || h >> self.critic_layers == 0
            || w >> self.critic_layers == 0
        {
            return Err(Error::config(format!(
                "stargan: {h}x{w} images are too small for {} critic downsamplings",
                self.critic_layers
            )));
        }
        for (flag, v) in [
            ("--cls-weight", self.cls_weight),
            ("--rec-weight", self.rec_weight),
            ("--identity-weight", self.identity_weight),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::config(format!("{flag} must be a number >= 0, got {v}")));
            }
        }
        Ok(())
    }
}

pub struct StarGan {
    pub cfg: StarGanConfig,
    pub g: Stack,
    /// The critic's body; `src` and `cls` its heads, one weight list in that order.
    pub d: Stack,
    pub src: Stack,
    pub cls: Stack,
    dev: Device,
}

/// The domain-classification loss of logits `[B, W]` against encoded labels `[B, W]`: per
/// attribute, softmax cross-entropy (a group) or sigmoid cross-entropy (binary), summed over
/// attributes, averaged over the batch.
pub fn classification_loss(cols: &[Attribute], logits: &Tensor, target: &Tensor) -> Result<Tensor> {
    let b = logits.dim(0)? as f64;
    let mut total: Option<Tensor> = None;
    let mut at = 0;
    for c in cols {
        let w = c.width();
        let l = logits.narrow(1, at, w)?;
        let t = target.narrow(1, at, w)?;
        let term = if c.is_binary() {
            // -[t log s(l) + (1 - t) log(1 - s(l))] = softplus(l) - t l
            (softplus(&l)? - (&t * &l)?)?.sum_all()?
        } else {
            let m = l.max_keepdim(1)?.detach();
            let lse = (l.broadcast_sub(&m)?.exp()?.sum_keepdim(1)?.log()? + &m)?;
            (lse.sum_all()? - (&t * &l)?.sum_all()?)?
        };
        let term = (term / b)?;
        total = Some(match total {
            Some(s) => (s + term)?,
            None => term,
        });
        at += w;
    }
    total.ok_or_else(|| Error::config("no attributes"))
}

impl StarGan {
    pub fn new(p: &mut Params, cfg: &StarGanConfig, rng: &mut Rng, dev: &Device) -> Result<Self> {
        cfg.check()?;
        let (c, h, w) = (cfg.shape[0], cfg.shape[1], cfg.shape[2]);
        let spec = ResnetSpec {
            c_in: c + cfg.width(),
            c_out: c,
            h,
            w,
            ch: cfg.channels,
            blocks: cfg.blocks,
            cyclegan: false,
        };
        let g = translation::resnet_generator("g", p, spec, rng, dev)?;
        let s = Strided { k: 4, stride: 2, pad: 1 };
        let mut d = Stack::new("d", c * h * w, dev);
        let (mut hh, mut ww, mut cc) = (h, w, c);
        for i in 0..cfg.critic_layers {
            let out = (2 * cfg.channels) << i;
            d.down(p, &format!("conv{i}"), s, (hh, ww, cc), out, Init::Default, rng)?
                .act(Act::Leaky(0.01));
            (hh, ww, cc) = (s.lo(hh), s.lo(ww), out);
        }
        let mut src = Stack::new("d.src", hh * ww * cc, dev);
        let keep = Strided { k: 3, stride: 1, pad: 1 };
        src.down(p, "conv", keep, (hh, ww, cc), 1, Init::Default, rng)?;
        let mut cls = Stack::new("d.cls", hh * ww * cc, dev);
        cls.dense(p, "fc", cfg.width(), false, Init::Default, rng)?;
        Ok(Self { cfg: cfg.clone(), g, d, src, cls, dev: dev.clone() })
    }

    fn maps(&self, rows: &Tensor) -> Result<Tensor> {
        let (c, h, w) = (self.cfg.shape[0], self.cfg.shape[1], self.cfg.shape[2]);
        Ok(rows.reshape((rows.dim(0)?, c, h, w))?.permute((0, 2, 3, 1))?)
    }

    /// G(x, c) on rows in network space `[B, D]` and encoded labels `[B, W]`.
    pub fn generate(&self, x: &Tensor, c: &Tensor) -> Result<Tensor> {
        let (b, h, w) = (x.dim(0)?, self.cfg.shape[1], self.cfg.shape[2]);
        let k = self.cfg.width();
        let planes = c.reshape((b, 1, 1, k))?.broadcast_as((b, h, w, k))?;
        let input = Tensor::cat(&[&self.maps(x)?, &planes.contiguous()?], 3)?;
        let y = self.g.forward(&input, true)?;
        Ok(y.permute((0, 3, 1, 2))?.reshape((b, ()))?)
    }

    /// (D_src `[B, patches]`, D_cls logits `[B, W]`) under weights `ws`.
    fn heads(&self, x: &Tensor, ws: &[Tensor]) -> Result<(Tensor, Tensor)> {
        let (nd, ns) = (self.d.vars.len(), self.src.vars.len());
        let f = self.d.forward_with(&self.maps(x)?, &ws[..nd], true, false)?;
        let v = self.src.forward_with(&f, &ws[nd..nd + ns], true, false)?;
        let q = self.cls.forward_with(&f, &ws[nd + ns..], true, false)?;
        Ok((v.reshape((v.dim(0)?, ()))?, q))
    }

    /// The critic's attribute estimate for data rows in [0, 1]: encoded vectors `[n, W]`.
    pub fn classify(&self, x: &Tensor) -> Result<Tensor> {
        translation::check_rows(x, &self.cfg.shape, "the input")?;
        let ws: Vec<Tensor> = self.d_weights().iter().map(|(_, v)| v.as_tensor().clone()).collect();
        let (_, q) = self.heads(&((x * 2.0)? - 1.0)?, &ws)?;
        let logits = q.to_vec2::<f32>()?;
        let mut out = Vec::with_capacity(logits.len() * self.cfg.width());
        for row in &logits {
            attributes::encode(
                &self.cfg.attributes,
                &attributes::decode_logits(&self.cfg.attributes, row),
                &mut out,
            );
        }
        Ok(Tensor::from_vec(out, (logits.len(), self.cfg.width()), &self.dev)?)
    }

    /// (pixels in network space, encoded labels) of a batch row.
    fn split(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let (d, k) = (self.cfg.dim(), self.cfg.width());
        if x.dim(1)? != d + k {
            return Err(Error::Shape(format!(
                "stargan: batch rows of {} values, expected an image and its {k} attribute values",
                x.dim(1)?
            )));
        }
        Ok((((x.narrow(1, 0, d)? * 2.0)? - 1.0)?, x.narrow(1, d, k)?))
    }
}

impl Translator for StarGan {
    fn domains(&self) -> Domains {
        Domains::Attributes(self.cfg.attributes.clone())
    }

    fn image_shape(&self) -> &[usize] {
        &self.cfg.shape
    }

    fn translate(&self, x: &Tensor, to: &Target) -> Result<Tensor> {
        translation::check_rows(x, &self.cfg.shape, "the input")?;
        let Target::Encoded(c) = to else {
            return Err(Error::config(
                "a StarGAN run translates to attributes (--to); --reverse is CycleGAN's",
            ));
        };
        let y = self.generate(&((x * 2.0)? - 1.0)?, c)?;
        Ok(((y + 1.0)? * 0.5)?)
    }
}

impl Adversarial for StarGan {
    fn d_weights(&self) -> Vec<(String, Var)> {
        let mut v: Vec<_> = self.d.names.iter().cloned().zip(self.d.vars.iter().cloned()).collect();
        v.extend(self.src.names.iter().cloned().zip(self.src.vars.iter().cloned()));
        v.extend(self.cls.names.iter().cloned().zip(self.cls.vars.iter().cloned()));
        v
    }

    fn g_names(&self) -> Vec<String> {
        self.g.names.clone()
    }

    fn loss(&self) -> GanLoss {
        GanLoss::Wasserstein
    }

    fn real(&self, x: &Tensor, _labels: Option<&[u32]>, _rng: &mut Rng) -> Result<Side> {
        let (px, c) = self.split(x)?;
        Ok(Side { x: px, cond: None, codes: Some(c) })
    }

    /// G(x, c) with c the labels of a random permutation of the batch.
    fn fake(&self, x: &Tensor, _labels: Option<&[u32]>, rng: &mut Rng) -> Result<Side> {
        let (px, c) = self.split(x)?;
        let perm: Vec<u32> =
            rng::permutation(rng, px.dim(0)?).into_iter().map(|i| i as u32).collect();
        let c_trg = c.contiguous()?.index_select(&Tensor::new(perm, &self.dev)?, 0)?;
        let y = self.generate(&px, &c_trg)?;
        Ok(Side { x: y, cond: None, codes: Some(c_trg) })
    }

    fn critic(&self, s: &Side, ws: &[Tensor]) -> Result<(Tensor, Option<Tensor>)> {
        let (v, q) = self.heads(&s.x, ws)?;
        Ok((v, Some(q)))
    }

    /// StarGAN's classification term is not InfoGAN's (it keeps the trait's `info_loss`): it is
    /// on real images for the critic (here) and on translations for the generator
    /// ([`Adversarial::generator_extra`]).
    fn real_head_loss(&self, q: &Tensor, real: &Side) -> Result<Vec<(&'static str, Tensor)>> {
        let c = real.codes.as_ref().ok_or_else(|| Error::config("stargan: real labels missing"))?;
        let l = classification_loss(&self.cfg.attributes, q, c)?;
        Ok(vec![("d_cls", (l * self.cfg.cls_weight)?)])
    }

    fn generator_extra(
        &self,
        x: &Tensor,
        fake: &Side,
        q: Option<&Tensor>,
    ) -> Result<Vec<(&'static str, Tensor)>> {
        let (px, c_org) = self.split(x)?;
        let c_trg =
            fake.codes.as_ref().ok_or_else(|| Error::config("stargan: target labels missing"))?;
        let q = q.ok_or_else(|| Error::config("stargan: the critic's classifier is missing"))?;
        let cls = (classification_loss(&self.cfg.attributes, q, c_trg)? * self.cfg.cls_weight)?;
        let rec = self.generate(&fake.x, &c_org)?;
        let rec = (l1(&px, &rec)? * self.cfg.rec_weight)?;
        let mut out = vec![("g_cls", cls), ("g_rec", rec)];
        if self.cfg.identity_weight > 0.0 {
            let same = self.generate(&px, &c_org)?;
            out.push(("g_identity", (l1(&px, &same)? * self.cfg.identity_weight)?));
        }
        Ok(out)
    }

    fn batch_rows(&self) -> BatchRows {
        BatchRows { domain_b: false, attributes: true }
    }

    fn check_data(&self, data: &Dataset) -> Result<()> {
        let a = data.attributes.as_ref().ok_or_else(|| {
            Error::config(format!(
                "{}: stargan needs attribute labels, this set has none",
                data.source
            ))
        })?;
        if a.columns != self.cfg.attributes {
            return Err(Error::config(format!(
                "{}: attributes {}, the model was built for {}",
                data.source,
                attributes::describe(&a.columns),
                attributes::describe(&self.cfg.attributes)
            )));
        }
        Ok(())
    }
}

impl Family for StarGanConfig {
    const MODELS: &'static [ModelInfo] = &[ModelInfo {
        name: "stargan",
        summary: "StarGAN (Choi et al. 2018): one generator G(x, c) for every attribute domain, \
            WGAN-GP critic with a domain classifier, reconstruction L1",
        density: Density::None,
        training: Training::Adversarial,
        sampler: false,
        completion: false,
        encoder: false,
        features: None,
        labels: Labels::Unused,
        scores: &[],
        data: "images with attribute labels: mnist+attributes, or attributes.csv beside a PNG \
            folder or IDX set",
        flags: &["channels", "layers", "cls_weight", "rec_weight", "identity_weight"],
    }];

    fn preset(_name: &str, shape: &[usize], _unit_data: bool) -> Result<Self> {
        Ok(Self {
            shape: shape.to_vec(),
            // The embedded digits' attributes until `configure` reads the data's.
            attributes: attributes::digit_columns(),
            channels: 16,
            blocks: 6,
            critic_layers: 3,
            cls_weight: 1.0,
            rec_weight: 10.0,
            identity_weight: 0.0,
        })
    }

    /// The paper's Adam(1e-4, 0.5, 0.999) for both players, n_critic 5, gradient penalty 10,
    /// linear decay over the second half; batch 16 (the paper's), 2000 generator updates.
    fn recipe(_name: &str, _shape: &[usize]) -> TrainConfig {
        let critic = AdversarialConfig {
            d_lr: 1e-4,
            n_critic: 5,
            gp: Some(10.0),
            ..AdversarialConfig::default()
        };
        let mut t = TrainConfig {
            steps: 2000,
            batch_size: 16,
            lr: 1e-4,
            schedule: Schedule::LinearDecay,
            adversarial: Some(critic),
            ..TrainConfig::default()
        };
        t.optimizer.beta1 = 0.5;
        t.optimizer.beta2 = 0.999;
        t
    }

    fn name(&self) -> &'static str {
        "stargan"
    }

    fn dim(&self) -> usize {
        StarGanConfig::dim(self)
    }

    fn needs(&self) -> Needs {
        Needs { binary: false, grey_levels: false }
    }

    fn configure(&mut self, flags: &ModelFlags, data: &Dataset, _seed: u64) -> Result<()> {
        translation::image_shape(&data.shape, "stargan")?;
        let a = data.attributes.as_ref().ok_or_else(|| {
            Error::config(format!(
                "{}: stargan needs attribute labels (use mnist+attributes, or an attributes.csv \
                beside a PNG folder, PREFIX-attributes.csv beside an IDX set)",
                data.source
            ))
        })?;
        self.attributes = a.columns.clone();
        self.channels = flags.channels.unwrap_or(self.channels);
        self.blocks = flags.layers.unwrap_or(self.blocks);
        self.cls_weight = flags.cls_weight.unwrap_or(self.cls_weight);
        self.rec_weight = flags.rec_weight.unwrap_or(self.rec_weight);
        self.identity_weight = flags.identity_weight.unwrap_or(self.identity_weight);
        self.check()
    }

    fn build(&self, p: &mut Params, rng: &mut Rng, dev: &Device) -> Result<Box<dyn Net>> {
        Ok(Box::new(StarGan::new(p, self, rng, dev)?))
    }
}

net!(StarGan {
    density: no,
    sampler: no,
    sequential: no,
    encoder: no,
    features: no,
    objective: no,
    adversarial: yes,
    translator: yes,
});
