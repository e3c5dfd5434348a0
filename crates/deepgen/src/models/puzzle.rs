//! The part-to-whole ("puzzle") GAN (Lee et al. 2018, "Unsupervised Holistic Image Generation
//! from Key Local Patches", and the authors' PyTorch code `KeyPatchGan`, `models/model.py` and the
//! U-net players of `models/networks.py`): given K key patches of an object, their positions
//! discarded, generate the mask of where they belong and the whole image.
//!
//! - Part encoder E, shared by the K patches (each resized to the image's size, as the authors'
//!   loader does), its features summed over the patches at every scale (so the order of the
//!   patches does not matter).
//! - Mask generator M: from the summed top feature back up to the image, each scale joined to
//!   the summed encoder map of that scale (the U-net skips), a sigmoid mask `[H, W]`.
//! - Image generator G: from the summed feature and z ~ U[-1, 1] back up, each scale joined to
//!   the mask generator's map of that scale, tanh.
//! - The critic D (a DCGAN critic) scores, as in `backward_D`: real images as real; as fakes the
//!   generated images, real images whose patch region comes from another image, and real
//!   patches on another image's background (the paper's "real images with shuffled parts"),
//!   each term weighted 1 (the reference sums them).
//! - The generator's loss (`backward_G`): the non-saturating adversarial term, plus
//!   L_mask = |M - M_true| and L_appearance = |G * M - x * M_true| (the generated image under
//!   its own mask against the real image under the true mask), as means weighted by
//!   `--mask-weight` and `--appearance-weight`.
//!
//! Differences from the reference: its L1 terms are sums over the batch with weights decayed
//! from 1e-2 to 1e-4 over the epochs (per pixel of its 64 px batches of 64: 7,864 to 79 for the
//! appearance term); here they are means with constant weights (default 50 each). The "other
//! image" of the shuffled fakes is another image of the batch, where the reference draws one
//! from the rest of the training set. Patches are centred on ink pixels drawn at random
//! ([`crate::data::patches`]), where the reference uses boxes from a part detector. The players
//! use 4x4 stride-2 (transposed) convolutions, the DCGAN's, where the reference uses 5x5.

use candle_core::{Device, Tensor, Var};
use serde::{Deserialize, Serialize};

use super::gan::GanLoss;
use super::{Adversarial, Side};
use crate::data::patches::{self, Cut};
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

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PuzzleGanConfig {
    /// `[C, H, W]`, H and W multiples of 4.
    pub shape: Vec<usize>,
    /// Key patches per image (K).
    pub patches: usize,
    /// The side of a patch as it is cut.
    pub patch_size: usize,
    pub latent: usize,
    /// The part encoder's feature width.
    pub features: usize,
    /// First-layer channels of every player.
    pub channels: usize,
    pub mask_weight: f64,
    pub appearance_weight: f64,
}

impl PuzzleGanConfig {
    pub fn dim(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn check(&self) -> Result<()> {
        let (h, w) = match self.shape[..] {
            [_, h, w] if h >= 4 && w >= 4 && h % 4 == 0 && w % 4 == 0 => (h, w),
            _ => {
                return Err(Error::config(format!(
                    "puzzle-gan needs images whose sides are multiples of 4, not shape {:?}",
                    self.shape
                )))
            }
        };
        patches::check_side(self.patch_size, h, w)?;
        if self.patches == 0 || self.patches > 16 {
            return Err(Error::config("--patches must be 1 to 16"));
        }
        if self.channels == 0 || self.channels > 1024 || self.features == 0 {
            return Err(Error::config("--channels must be 1 to 1024"));
        }
        if self.latent == 0 || self.latent > 4096 {
            return Err(Error::config("--latent must be 1 to 4096"));
        }
        for (flag, v) in
            [("--mask-weight", self.mask_weight), ("--appearance-weight", self.appearance_weight)]
        {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::config(format!("{flag} must be a number >= 0, got {v}")));
            }
        }
        Ok(())
    }
}

/// What the generators make for a batch of patch sets.
pub struct Assembled {
    /// The wholes, `[n, D]` in data space.
    pub images: Tensor,
    /// The masks, `[n, H * W]` in [0, 1].
    pub masks: Tensor,
}

pub struct PuzzleGan {
    pub cfg: PuzzleGanConfig,
    e1: Stack,
    e2: Stack,
    e3: Stack,
    m0: Stack,
    m1: Stack,
    m2: Stack,
    g0: Stack,
    g1: Stack,
    g2: Stack,
    d: Stack,
    dev: Device,
}

impl PuzzleGan {
    pub fn new(p: &mut Params, cfg: &PuzzleGanConfig, rng: &mut Rng, dev: &Device) -> Result<Self> {
        cfg.check()?;
        let (c, h, w) = (cfg.shape[0], cfg.shape[1], cfg.shape[2]);
        let (h2, w2, h4, w4) = (h / 2, w / 2, h / 4, w / 4);
        let (ch, f) = (cfg.channels, cfg.features);
        let s = Strided { k: 4, stride: 2, pad: 1 };
        let init = Init::Normal(0.02);
        let leaky = Act::Leaky(0.2);
        let mut e1 = Stack::new("e.conv1", c * h * w, dev);
        e1.down(p, "conv", s, (h, w, c), ch, init, rng)?.act(leaky);
        let mut e2 = Stack::new("e.conv2", h2 * w2 * ch, dev);
        e2.down(p, "conv", s, (h2, w2, ch), 2 * ch, init, rng)?;
        e2.norm(p, "bn", 2 * ch, true, rng)?.act(leaky);
        let mut e3 = Stack::new("e.fc", h4 * w4 * 2 * ch, dev);
        e3.dense(p, "fc", f, false, init, rng)?.act(leaky);
        let mut m0 = Stack::new("m.fc", f, dev);
        m0.dense(p, "fc", 2 * ch * h4 * w4, false, init, rng)?;
        m0.reshape(&[h4, w4, 2 * ch]).norm(p, "bn", 2 * ch, true, rng)?.act(Act::Relu);
        let mut m1 = Stack::new("m.up1", h4 * w4 * 4 * ch, dev);
        m1.up(p, "up", s, (h4, w4, 4 * ch), ch, init, rng)?;
        m1.norm(p, "bn", ch, true, rng)?.act(Act::Relu);
        let mut m2 = Stack::new("m.up2", h2 * w2 * 2 * ch, dev);
        m2.up(p, "up", s, (h2, w2, 2 * ch), 1, init, rng)?.act(Act::Sigmoid);
        let mut g0 = Stack::new("g.fc", f + cfg.latent, dev);
        g0.dense(p, "fc", 2 * ch * h4 * w4, false, init, rng)?;
        g0.reshape(&[h4, w4, 2 * ch]).norm(p, "bn", 2 * ch, true, rng)?.act(Act::Relu);
        let mut g1 = Stack::new("g.up1", h4 * w4 * 6 * ch, dev);
        g1.up(p, "up", s, (h4, w4, 6 * ch), ch, init, rng)?;
        g1.norm(p, "bn", ch, true, rng)?.act(Act::Relu);
        let mut g2 = Stack::new("g.up2", h2 * w2 * 3 * ch, dev);
        g2.up(p, "up", s, (h2, w2, 3 * ch), c, init, rng)?.act(Act::Tanh);
        let mut d = Stack::new("d", c * h * w, dev);
        d.down(p, "conv1", s, (h, w, c), ch, init, rng)?.act(leaky);
        d.down(p, "conv2", s, (h2, w2, ch), 2 * ch, init, rng)?;
        d.norm(p, "bn2", 2 * ch, false, rng)?.act(leaky);
        d.dense(p, "v", 1, false, init, rng)?;
        Ok(Self { cfg: cfg.clone(), e1, e2, e3, m0, m1, m2, g0, g1, g2, d, dev: dev.clone() })
    }

    fn generators(&self) -> [&Stack; 9] {
        [&self.e1, &self.e2, &self.e3, &self.m0, &self.m1, &self.m2, &self.g0, &self.g1, &self.g2]
    }

    /// (image in [-1, 1] `[B, D]`, mask `[B, H * W]`) for K part images `[K * B, D]` in [-1, 1]
    /// (part k of example b at row k * B + b) and z `[B, latent]`.
    pub fn generate(&self, parts: &Tensor, z: &Tensor, train: bool) -> Result<(Tensor, Tensor)> {
        let (c, h, w) = (self.cfg.shape[0], self.cfg.shape[1], self.cfg.shape[2]);
        let (k, b) = (self.cfg.patches, z.dim(0)?);
        let maps = parts.reshape((k * b, c, h, w))?.permute((0, 2, 3, 1))?;
        // Summed over the K parts at every scale.
        let sum = |t: &Tensor| -> Result<Tensor> {
            let mut dims = vec![k, b];
            dims.extend_from_slice(&t.dims()[1..]);
            Ok(t.reshape(dims)?.sum(0)?)
        };
        let a1 = self.e1.forward(&maps, train)?;
        let a2 = self.e2.forward(&a1, train)?;
        let a3 = self.e3.forward(&a2, train)?;
        let (s1, s2, s3) = (sum(&a1)?, sum(&a2)?, sum(&a3)?);
        let m7 = Tensor::cat(&[&self.m0.forward(&s3, train)?, &s2], 3)?;
        let m14 = Tensor::cat(&[&self.m1.forward(&m7, train)?, &s1], 3)?;
        let mask = self.m2.forward(&m14, train)?.reshape((b, h * w))?;
        let g7 = Tensor::cat(&[&self.g0.forward(&Tensor::cat(&[&s3, z], 1)?, train)?, &m7], 3)?;
        let g14 = Tensor::cat(&[&self.g1.forward(&g7, train)?, &m14], 3)?;
        let y = self.g2.forward(&g14, train)?;
        Ok((y.permute((0, 3, 1, 2))?.reshape((b, ()))?, mask))
    }

    /// The part images of patch sets (each set K patches `[C, P, P]` of any side P, resized to
    /// the image size and mapped to [-1, 1]), as [`PuzzleGan::generate`] takes them.
    fn part_rows(&self, sets: &[Vec<Vec<f32>>], side: usize) -> Result<Tensor> {
        let (c, h, w) = (self.cfg.shape[0], self.cfg.shape[1], self.cfg.shape[2]);
        let (k, b) = (self.cfg.patches, sets.len());
        let mut v = vec![0f32; k * b * c * h * w];
        for (i, set) in sets.iter().enumerate() {
            if set.len() != k {
                return Err(Error::config(format!(
                    "{} patches for a run that assembles {k}",
                    set.len()
                )));
            }
            for (j, patch) in set.iter().enumerate() {
                if patch.len() != c * side * side {
                    return Err(Error::Shape(format!(
                        "a patch of {} values, expected {c} x {side} x {side}",
                        patch.len()
                    )));
                }
                let big = patches::to_image_size(patch, side, (h, w));
                let at = (j * b + i) * c * h * w;
                for (o, val) in v[at..at + c * h * w].iter_mut().zip(big) {
                    *o = 2.0 * val - 1.0;
                }
            }
        }
        Ok(Tensor::from_vec(v, (k * b, c * h * w), &self.dev)?)
    }

    fn noise(&self, n: usize, rng: &mut Rng) -> Result<Tensor> {
        Ok(rng::uniform(rng, &[n, self.cfg.latent], -1.0, 1.0, &self.dev)?)
    }

    /// The wholes and masks for sets of K patches of side `side` (values in [0, 1]).
    pub fn assemble(
        &self,
        sets: &[Vec<Vec<f32>>],
        side: usize,
        rng: &mut Rng,
    ) -> Result<Assembled> {
        let parts = self.part_rows(sets, side)?;
        let z = self.noise(sets.len(), rng)?;
        let (y, masks) = self.generate(&parts, &z, false)?;
        Ok(Assembled { images: ((y + 1.0)? * 0.5)?, masks })
    }

    /// K patches cut from each image of a batch `[B, D]` in [0, 1], placed with `rng`.
    pub fn cut_rows(&self, x: &Tensor, rng: &mut Rng) -> Result<Vec<Cut>> {
        let (c, h, w) = (self.cfg.shape[0], self.cfg.shape[1], self.cfg.shape[2]);
        let rows = x.to_vec2::<f32>()?;
        Ok(rows
            .iter()
            .map(|r| patches::cut(r, (c, h, w), self.cfg.patches, self.cfg.patch_size, rng))
            .collect())
    }

    /// `[B, H * W]` masks broadcast over the channels: `[B, D]`.
    fn over_channels(&self, m: &Tensor) -> Result<Tensor> {
        let (c, hw) = (self.cfg.shape[0], self.cfg.shape[1] * self.cfg.shape[2]);
        let b = m.dim(0)?;
        Ok(m.reshape((b, 1, hw))?.broadcast_as((b, c, hw))?.reshape((b, c * hw))?)
    }
}

impl Adversarial for PuzzleGan {
    fn d_weights(&self) -> Vec<(String, Var)> {
        self.d.names.iter().cloned().zip(self.d.vars.iter().cloned()).collect()
    }

    /// The part encoder and both generators (the reference's one optimiser over all three).
    fn g_names(&self) -> Vec<String> {
        self.generators().iter().flat_map(|s| s.names.iter().cloned()).collect()
    }

    fn loss(&self) -> GanLoss {
        GanLoss::NonSaturating
    }

    fn real(&self, x: &Tensor, _labels: Option<&[u32]>, _rng: &mut Rng) -> Result<Side> {
        Ok(Side { x: ((x * 2.0)? - 1.0)?, cond: None, codes: None })
    }

    /// The whole from K patches of each real image: the generated mask rides in `cond`, the
    /// true one in `codes`.
    fn fake(&self, x: &Tensor, _labels: Option<&[u32]>, rng: &mut Rng) -> Result<Side> {
        let cuts = self.cut_rows(x, rng)?;
        let sets: Vec<Vec<Vec<f32>>> = cuts.iter().map(|c| c.patches.clone()).collect();
        let parts = self.part_rows(&sets, self.cfg.patch_size)?;
        let z = self.noise(cuts.len(), rng)?;
        let (y, mask) = self.generate(&parts, &z, true)?;
        let hw = self.cfg.shape[1] * self.cfg.shape[2];
        let truth: Vec<f32> = cuts.iter().flat_map(|c| c.mask.iter().copied()).collect();
        let truth = Tensor::from_vec(truth, (cuts.len(), hw), &self.dev)?;
        Ok(Side { x: y, cond: Some(mask), codes: Some(truth) })
    }

    fn critic(&self, s: &Side, ws: &[Tensor]) -> Result<(Tensor, Option<Tensor>)> {
        let (c, h, w) = (self.cfg.shape[0], self.cfg.shape[1], self.cfg.shape[2]);
        let b = s.x.dim(0)?;
        let maps = s.x.reshape((b, c, h, w))?.permute((0, 2, 3, 1))?;
        let v = self.d.forward_with(&maps, ws, true, false)?;
        Ok((v.reshape(b)?, None))
    }

    /// Real images with another image's parts, and real parts on another image (weight 1 each,
    /// the reference's `d_loss_shfpart_realbg` and `d_loss_realpart_shfbg`).
    fn extra_fakes(&self, real: &Side, fake: &Side, rng: &mut Rng) -> Result<Vec<(Side, f64)>> {
        use rand::Rng as _;
        let b = real.x.dim(0)?;
        let truth = fake.codes.as_ref().ok_or_else(|| Error::config("puzzle-gan: no true mask"))?;
        if b < 2 {
            return Err(Error::config("puzzle-gan needs batches of at least 2 (--batch-size)"));
        }
        let other: Vec<u32> = (0..b).map(|i| ((i + rng.gen_range(1..b)) % b) as u32).collect();
        let shuffled = real.x.index_select(&Tensor::new(other, &self.dev)?, 0)?;
        let m = self.over_channels(truth)?;
        let keep = (1.0 - &m)?;
        let shuffled_parts = ((&shuffled * &m)? + (&real.x * &keep)?)?;
        let shuffled_background = ((&real.x * &m)? + (&shuffled * &keep)?)?;
        let side = |x| Side { x, cond: None, codes: None };
        Ok(vec![(side(shuffled_parts), 1.0), (side(shuffled_background), 1.0)])
    }

    /// L_mask and L_appearance (`backward_G`).
    fn generator_extra(
        &self,
        x: &Tensor,
        fake: &Side,
        _q: Option<&Tensor>,
    ) -> Result<Vec<(&'static str, Tensor)>> {
        let mask = fake.cond.as_ref().ok_or_else(|| Error::config("puzzle-gan: no mask"))?;
        let truth = fake.codes.as_ref().ok_or_else(|| Error::config("puzzle-gan: no true mask"))?;
        let l_mask = ((mask - truth)?.abs()?.mean_all()? * self.cfg.mask_weight)?;
        let real = ((x * 2.0)? - 1.0)?;
        let gen_part = (&fake.x * self.over_channels(mask)?)?;
        let real_part = (real * self.over_channels(truth)?)?;
        let l_appr = ((gen_part - real_part)?.abs()?.mean_all()? * self.cfg.appearance_weight)?;
        Ok(vec![("g_mask", l_mask), ("g_appearance", l_appr)])
    }

    fn check_batch(&self, batch_size: usize) -> Result<()> {
        if batch_size < 2 {
            return Err(Error::config(
                "--batch-size: the puzzle GAN's shuffled fakes need at least 2 images per batch",
            ));
        }
        Ok(())
    }
}

impl Family for PuzzleGanConfig {
    const MODELS: &'static [ModelInfo] = &[ModelInfo {
        name: "puzzle-gan",
        summary: "part-to-whole GAN (Lee et al. 2018): the whole image and the patches' mask \
            from K key patches whose positions are discarded (deepgen assemble)",
        density: Density::None,
        training: Training::Adversarial,
        sampler: false,
        completion: false,
        encoder: false,
        features: None,
        labels: Labels::Unused,
        scores: &[],
        data: "images whose sides are multiples of 4 (the embedded digits)",
        flags: &["patches", "patch_size", "latent", "channels", "mask_weight", "appearance_weight"],
    }];

    fn preset(_name: &str, shape: &[usize], _unit_data: bool) -> Result<Self> {
        let h = shape.get(1).copied().unwrap_or(4);
        Ok(Self {
            shape: shape.to_vec(),
            patches: 3,
            patch_size: patches::default_side(h).min(h),
            latent: 128,
            features: 128,
            channels: 32,
            mask_weight: 50.0,
            appearance_weight: 50.0,
        })
    }

    /// The reference's Adam(2e-4, 0.5, 0.999) and batch 64; 2000 iterations.
    fn recipe(_name: &str, _shape: &[usize]) -> TrainConfig {
        TrainConfig::dcgan_adam(2000)
    }

    fn name(&self) -> &'static str {
        "puzzle-gan"
    }

    fn dim(&self) -> usize {
        PuzzleGanConfig::dim(self)
    }

    fn needs(&self) -> Needs {
        Needs { binary: false, grey_levels: false }
    }

    fn configure(&mut self, flags: &ModelFlags, data: &Dataset, _seed: u64) -> Result<()> {
        if let Some(v) = data.x.iter().find(|v| !(0.0..=1.0).contains(*v)) {
            return Err(Error::config(format!(
                "{}: puzzle-gan needs values in [0, 1], the data has {v}",
                data.source
            )));
        }
        self.patches = flags.patches.unwrap_or(self.patches);
        self.patch_size = flags.patch_size.unwrap_or(self.patch_size);
        self.latent = flags.latent.unwrap_or(self.latent);
        self.channels = flags.channels.unwrap_or(self.channels);
        self.mask_weight = flags.mask_weight.unwrap_or(self.mask_weight);
        self.appearance_weight = flags.appearance_weight.unwrap_or(self.appearance_weight);
        self.check()
    }

    fn build(&self, p: &mut Params, rng: &mut Rng, dev: &Device) -> Result<Box<dyn Net>> {
        Ok(Box::new(PuzzleGan::new(p, self, rng, dev)?))
    }
}

net!(PuzzleGan {
    density: no,
    sampler: no,
    sequential: no,
    encoder: no,
    features: no,
    objective: no,
    adversarial: yes,
    translator: no,
});

/// The mask generator's output as an image row `[H * W]` -> `[C, H, W]` for display.
pub fn mask_image(mask: &[f32], c: usize) -> Vec<f32> {
    (0..c).flat_map(|_| mask.iter().copied()).collect()
}
