//! CycleGAN (Zhu et al. 2017, "Unpaired Image-to-Image Translation using Cycle-Consistent
//! Adversarial Networks"): two generators G: A -> B and F: B -> A, a critic per domain, and
//! the full objective of eq. 3 with the identity term of Sec. 5.2:
//!
//!   L = L_GAN(G, D_B) + L_GAN(F, D_A) + lambda (||F(G(a)) - a||_1 + ||G(F(b)) - b||_1)
//!       + lambda * lambda_id (||G(b) - b||_1 + ||F(a) - a||_1),
//!
//! with least-squares adversarial terms (Sec. 4, "we replace the negative log likelihood
//! objective by a least-squares loss"), lambda 10, lambda_id 0.5, critics trained on a history
//! of 50 generated images ([`super::image_pool`]), Adam(2e-4, beta1 0.5) with the learning rate
//! constant for the first half and decayed linearly to 0 over the second (the trainer's
//! `linear-decay` schedule). As the authors' `cycle_gan_model.py`, the L1 terms are means over
//! pixels of images in [-1, 1], and the generators' adversarial terms are MSE(D(fake), 1)
//! without a factor 1/2.
//!
//! Players, scaled to 28-32 px ([`super::translation`]): ResNet generators with instance norm
//! and reflection padding (ngf = `channels`, default 16 for 28 px images where the paper has 64
//! for 256 px; 6 residual blocks as the reference's
//! `resnet_6blocks` for 128 px); PatchGAN critics as the reference's `NLayerDiscriminator` with
//! `n_layers=1` (a 4x4 stride-2 convolution, LeakyReLU 0.2; a 4x4 stride-1 convolution,
//! instance norm, LeakyReLU; a 4x4 stride-1 convolution to one channel): each of the 12x12
//! outputs on a 28 px image judges a 16x16 patch (n_layers=3 sees 70 px, more than the image).
//!
//! Where this differs from the reference:
//! - Batches of 8 (the paper uses 1; instance norm makes the generators' outputs independent of
//!   the batch, and the critics' loss is a mean over the batch).
//! - The trainer updates the critics first, on freshly generated images passed through the
//!   pool, then the generators (the reference generates once per iteration and updates the
//!   generators first). Each critic's loss is the reference's 1/2 (MSE(D(real), 1) + MSE(D(fake),
//!   0)); the trainer averages the two critics' losses where the reference adds them (one Adam
//!   over both critics: the factor 2 changes nothing but the weight of Adam's epsilon).
//! - Draws of the pool come from the run's seeded RNG and the pool is a checkpointed buffer, so
//!   a resumed run is bit-identical.
//! - The domain names: `d_a` judges domain A (real a against F(b)), `d_b` domain B; the
//!   reference's `netD_A` judges B.

use candle_core::{Device, Tensor, Var};
use serde::{Deserialize, Serialize};

use super::gan::GanLoss;
use super::image_pool::ImagePool;
use super::translation::{self, l1, Domains, ResnetSpec, Target, Translator};
use super::{Adversarial, BatchRows, Side};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::models::family::net;
use crate::models::family::*;
use crate::models::ModelFlags;
use crate::nn::conv::Strided;
use crate::nn::stack::{Init, Stack};
use crate::nn::{Act, Params};
use crate::recipe::{AdversarialConfig, Schedule, TrainConfig};
use crate::rng::Rng;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CycleGanConfig {
    /// `[C, H, W]` of both domains.
    pub shape: Vec<usize>,
    /// The generators' first-layer channels (ngf) and the critics' (ndf).
    pub channels: usize,
    /// Residual blocks per generator.
    pub blocks: usize,
    /// lambda of the cycle terms.
    pub cycle_weight: f64,
    /// The identity terms' weight as a multiple of lambda (0: off).
    pub identity_weight: f64,
    /// Generated images each critic's history keeps.
    pub pool_size: usize,
    pub loss: GanLoss,
}

impl CycleGanConfig {
    pub fn dim(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn check(&self) -> Result<()> {
        translation::image_shape(&self.shape, "cyclegan")?;
        if self.channels == 0 || self.channels > 1024 {
            return Err(Error::config("--channels must be 1 to 1024"));
        }
        if self.blocks > 64 {
            return Err(Error::config("--layers (residual blocks) must be at most 64"));
        }
        for (flag, v) in
            [("--cycle-weight", self.cycle_weight), ("--identity-weight", self.identity_weight)]
        {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::config(format!("{flag} must be a number >= 0, got {v}")));
            }
        }
        if self.pool_size > 100_000 {
            return Err(Error::config("--pool-size must be at most 100000"));
        }
        if !matches!(self.loss, GanLoss::LeastSquares | GanLoss::NonSaturating) {
            return Err(Error::config(format!(
                "cyclegan: --loss {} is not offered (lsgan, the paper's, or non-saturating)",
                self.loss.name()
            )));
        }
        Ok(())
    }
}

/// A PatchGAN critic (see the module doc) on `[B, H, W, C]` maps; output `[B, patches]`.
fn patch_critic(
    prefix: &str,
    p: &mut Params,
    (c, h, w): (usize, usize, usize),
    ndf: usize,
    rng: &mut Rng,
    dev: &Device,
) -> Result<Stack> {
    let init = Init::Normal(0.02);
    let down = Strided { k: 4, stride: 2, pad: 1 };
    let keep = Strided { k: 4, stride: 1, pad: 1 };
    let mut d = Stack::new(prefix, c * h * w, dev);
    d.down(p, "conv1", down, (h, w, c), ndf, init, rng)?.act(Act::Leaky(0.2));
    let (h2, w2) = (down.lo(h), down.lo(w));
    d.down(p, "conv2", keep, (h2, w2, ndf), 2 * ndf, init, rng)?;
    d.instance_norm().act(Act::Leaky(0.2));
    d.down(p, "out", keep, (keep.lo(h2), keep.lo(w2), 2 * ndf), 1, init, rng)?;
    Ok(d)
}

pub struct CycleGan {
    pub cfg: CycleGanConfig,
    /// G: A -> B.
    pub g_ab: Stack,
    /// F: B -> A.
    pub g_ba: Stack,
    /// Judges domain A (real a against F(b)).
    pub d_a: Stack,
    /// Judges domain B.
    pub d_b: Stack,
    /// The critics' histories: `pool.a`, `pool.b` (`[size, D]`, network space) and `pool.len`
    /// (how many rows of each are filled), buffers saved with the weights.
    pools: Option<[Var; 3]>,
    dev: Device,
}

impl CycleGan {
    pub fn new(p: &mut Params, cfg: &CycleGanConfig, rng: &mut Rng, dev: &Device) -> Result<Self> {
        cfg.check()?;
        let (c, h, w) = (cfg.shape[0], cfg.shape[1], cfg.shape[2]);
        let spec = ResnetSpec {
            c_in: c,
            c_out: c,
            h,
            w,
            ch: cfg.channels,
            blocks: cfg.blocks,
            cyclegan: true,
        };
        let g_ab = translation::resnet_generator("g_ab", p, spec, rng, dev)?;
        let g_ba = translation::resnet_generator("g_ba", p, spec, rng, dev)?;
        let d_a = patch_critic("d_a", p, (c, h, w), cfg.channels, rng, dev)?;
        let d_b = patch_critic("d_b", p, (c, h, w), cfg.channels, rng, dev)?;
        let pools = if cfg.pool_size > 0 {
            let d = cfg.dim();
            p.room(&[2 * cfg.pool_size * d])?;
            let mut buf = |name: &str, t: Tensor| -> Result<Var> {
                p.add(name, t)?;
                p.get(name).cloned().ok_or_else(|| Error::config(format!("buffer {name} vanished")))
            };
            let zeros = || Tensor::zeros((cfg.pool_size, d), candle_core::DType::F32, dev);
            Some([
                buf("pool.a", zeros()?)?,
                buf("pool.b", zeros()?)?,
                buf("pool.len", Tensor::zeros(2, candle_core::DType::F32, dev)?)?,
            ])
        } else {
            None
        };
        Ok(Self { cfg: cfg.clone(), g_ab, g_ba, d_a, d_b, pools, dev: dev.clone() })
    }

    fn d(&self) -> usize {
        self.cfg.dim()
    }

    /// Rows `[B, D]` in network space to the players' maps.
    fn maps(&self, rows: &Tensor) -> Result<Tensor> {
        let (c, h, w) = (self.cfg.shape[0], self.cfg.shape[1], self.cfg.shape[2]);
        Ok(rows.reshape((rows.dim(0)?, c, h, w))?.permute((0, 2, 3, 1))?)
    }

    /// A generator on rows in network space, returning rows in network space.
    fn run(&self, g: &Stack, rows: &Tensor) -> Result<Tensor> {
        let y = g.forward(&self.maps(rows)?, true)?;
        let b = y.dim(0)?;
        Ok(y.permute((0, 3, 1, 2))?.reshape((b, ()))?)
    }

    /// The two halves (A, B) of a row of both domains.
    fn halves(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let d = self.d();
        if x.dim(1)? != 2 * d {
            return Err(Error::Shape(format!(
                "cyclegan: batch rows of {} values, expected an example of each domain ({})",
                x.dim(1)?,
                2 * d
            )));
        }
        Ok((x.narrow(1, 0, d)?, x.narrow(1, d, d)?))
    }

    /// Critic `d` on rows in network space: `[B, patches]`.
    fn judge(&self, d: &Stack, rows: &Tensor, ws: &[Tensor]) -> Result<Tensor> {
        let v = d.forward_with(&self.maps(rows)?, ws, true, false)?;
        Ok(v.reshape((v.dim(0)?, ()))?)
    }

    /// The history rule of [`ImagePool`] on pool `k` (0: A, 1: B), its state in the buffers.
    fn through_pool(&self, k: usize, fake: &Tensor, rng: &mut Rng) -> Result<Tensor> {
        let Some(bufs) = &self.pools else { return Ok(fake.clone()) };
        let lens = bufs[2].as_tensor().to_vec1::<f32>()?;
        let len = lens[k] as usize;
        let mut pool = ImagePool::new(self.cfg.pool_size, self.d());
        pool.load(&bufs[k].as_tensor().narrow(0, 0, len)?)?;
        let out = pool.query(fake, rng)?;
        let state = pool.state(&self.dev)?;
        let n = state.dim(0)?;
        let full = if n < self.cfg.pool_size {
            let rest = Tensor::zeros(
                (self.cfg.pool_size - n, self.d()),
                candle_core::DType::F32,
                &self.dev,
            )?;
            Tensor::cat(&[&state, &rest], 0)?
        } else {
            state
        };
        bufs[k].set(&full)?;
        let mut lens = lens;
        lens[k] = n as f32;
        bufs[2].set(&Tensor::from_vec(lens, 2, &self.dev)?)?;
        Ok(out)
    }
}

impl Translator for CycleGan {
    fn domains(&self) -> Domains {
        Domains::Pair
    }

    fn image_shape(&self) -> &[usize] {
        &self.cfg.shape
    }

    fn translate(&self, x: &Tensor, to: &Target) -> Result<Tensor> {
        translation::check_rows(x, &self.cfg.shape, "the input")?;
        let g = match to {
            Target::B => &self.g_ab,
            Target::A => &self.g_ba,
            Target::Encoded(_) => {
                return Err(Error::config(
                    "a CycleGAN run translates between its two domains; attributes (--to) are \
                    StarGAN's",
                ))
            }
        };
        let y = self.run(g, &((x * 2.0)? - 1.0)?)?;
        Ok(((y + 1.0)? * 0.5)?)
    }
}

impl Adversarial for CycleGan {
    fn d_weights(&self) -> Vec<(String, Var)> {
        let mut v: Vec<_> =
            self.d_a.names.iter().cloned().zip(self.d_a.vars.iter().cloned()).collect();
        v.extend(self.d_b.names.iter().cloned().zip(self.d_b.vars.iter().cloned()));
        v
    }

    fn g_names(&self) -> Vec<String> {
        let mut n = self.g_ab.names.clone();
        n.extend(self.g_ba.names.iter().cloned());
        n
    }

    fn loss(&self) -> GanLoss {
        self.cfg.loss
    }

    /// Real a and b, in network space, side by side.
    fn real(&self, x: &Tensor, _labels: Option<&[u32]>, _rng: &mut Rng) -> Result<Side> {
        let (a, b) = self.halves(x)?;
        let x = Tensor::cat(&[&a, &b], 1)?;
        Ok(Side { x: ((x * 2.0)? - 1.0)?, cond: None, codes: None })
    }

    /// (F(b), G(a)): what each domain's critic sees as generated.
    fn fake(&self, x: &Tensor, labels: Option<&[u32]>, rng: &mut Rng) -> Result<Side> {
        let real = self.real(x, labels, rng)?;
        let (a, b) = self.halves(&real.x)?;
        let fake_b = self.run(&self.g_ab, &a)?;
        let fake_a = self.run(&self.g_ba, &b)?;
        Ok(Side { x: Tensor::cat(&[&fake_a, &fake_b], 1)?, cond: None, codes: None })
    }

    fn critic(&self, s: &Side, ws: &[Tensor]) -> Result<(Tensor, Option<Tensor>)> {
        let (a, b) = self.halves(&s.x)?;
        let na = self.d_a.vars.len();
        let va = self.judge(&self.d_a, &a, &ws[..na])?;
        let vb = self.judge(&self.d_b, &b, &ws[na..])?;
        Ok((Tensor::cat(&[&va, &vb], 1)?, None))
    }

    /// The cycle terms lambda (|F(G(a)) - a| + |G(F(b)) - b|) and the identity terms
    /// lambda lambda_id (|G(b) - b| + |F(a) - a|), means over pixels in [-1, 1].
    fn generator_extra(
        &self,
        x: &Tensor,
        fake: &Side,
        _q: Option<&Tensor>,
    ) -> Result<Vec<(&'static str, Tensor)>> {
        let (a, b) = self.halves(&((x * 2.0)? - 1.0)?)?;
        let (fake_a, fake_b) = self.halves(&fake.x)?;
        let lambda = self.cfg.cycle_weight;
        let rec_a = self.run(&self.g_ba, &fake_b)?;
        let rec_b = self.run(&self.g_ab, &fake_a)?;
        let cycle = ((l1(&rec_a, &a)? + l1(&rec_b, &b)?)? * lambda)?;
        let mut out = vec![("cycle", cycle)];
        let w = lambda * self.cfg.identity_weight;
        if w > 0.0 {
            let idt_b = self.run(&self.g_ab, &b)?;
            let idt_a = self.run(&self.g_ba, &a)?;
            out.push(("identity", ((l1(&idt_b, &b)? + l1(&idt_a, &a)?)? * w)?));
        }
        Ok(out)
    }

    /// The generator's adversarial term is MSE(D_B(G(a)), 1) + MSE(D_A(F(b)), 1) as in the
    /// reference: the least-squares loss is 1/2 the mean over both critics' outputs, so 4 times
    /// it. (For `--loss non-saturating`, 2: the sum of the two critics' mean terms.)
    fn adv_weight(&self) -> f64 {
        match self.cfg.loss {
            GanLoss::LeastSquares => 4.0,
            _ => 2.0,
        }
    }

    fn critic_fakes(&self, fake: Side, rng: &mut Rng) -> Result<Side> {
        let (fa, fb) = self.halves(&fake.x)?;
        let fa = self.through_pool(0, &fa, rng)?;
        let fb = self.through_pool(1, &fb, rng)?;
        Ok(Side { x: Tensor::cat(&[&fa, &fb], 1)?, cond: None, codes: None })
    }

    fn batch_rows(&self) -> BatchRows {
        BatchRows { domain_b: true, attributes: false }
    }

    fn check_data(&self, data: &Dataset) -> Result<()> {
        if data.shape != self.cfg.shape {
            return Err(Error::Shape(format!(
                "{}: images of shape {:?}, the model translates {:?}",
                data.source, data.shape, self.cfg.shape
            )));
        }
        Ok(())
    }
}

impl Family for CycleGanConfig {
    const MODELS: &'static [ModelInfo] = &[ModelInfo {
        name: "cyclegan",
        summary: "CycleGAN (Zhu et al. 2017): unpaired translation A <-> B, cycle and identity \
            L1, least-squares PatchGAN critics, image pool",
        density: Density::None,
        training: Training::Adversarial,
        sampler: false,
        completion: false,
        encoder: false,
        features: None,
        labels: Labels::Unused,
        scores: &[],
        data: "two unpaired image sets of one shape, 1 or 3 channels, sides multiples of 4 \
            (--data A --data-b B)",
        flags: &["channels", "layers", "cycle_weight", "identity_weight", "pool_size", "loss"],
    }];

    fn preset(_name: &str, shape: &[usize], _unit_data: bool) -> Result<Self> {
        Ok(Self {
            shape: shape.to_vec(),
            channels: 16,
            blocks: 6,
            cycle_weight: 10.0,
            identity_weight: 0.5,
            pool_size: 50,
            loss: GanLoss::LeastSquares,
        })
    }

    /// The paper's Adam(2e-4, beta1 0.5) for generators and critics, constant then linearly
    /// decayed over the second half; batch 8 (see the module doc), 2000 iterations.
    fn recipe(_name: &str, _shape: &[usize]) -> TrainConfig {
        let mut t = TrainConfig {
            steps: 2000,
            batch_size: 8,
            lr: 2e-4,
            schedule: Schedule::LinearDecay,
            adversarial: Some(AdversarialConfig { d_lr: 2e-4, ..AdversarialConfig::default() }),
            ..TrainConfig::default()
        };
        t.optimizer.beta1 = 0.5;
        t
    }

    fn name(&self) -> &'static str {
        "cyclegan"
    }

    fn dim(&self) -> usize {
        CycleGanConfig::dim(self)
    }

    fn needs(&self) -> Needs {
        Needs { binary: false, grey_levels: false }
    }

    fn configure(&mut self, flags: &ModelFlags, data: &Dataset, _seed: u64) -> Result<()> {
        translation::image_shape(&data.shape, "cyclegan")?;
        self.channels = flags.channels.unwrap_or(self.channels);
        self.blocks = flags.layers.unwrap_or(self.blocks);
        self.cycle_weight = flags.cycle_weight.unwrap_or(self.cycle_weight);
        self.identity_weight = flags.identity_weight.unwrap_or(self.identity_weight);
        if let Some(n) = flags.pool_size {
            if n < 0 {
                return Err(Error::config(format!("--pool-size must be >= 0, got {n}")));
            }
            self.pool_size = n as usize;
        }
        if let Some(l) = &flags.loss {
            self.loss = l.parse()?;
        }
        self.check()
    }

    fn build(&self, p: &mut Params, rng: &mut Rng, dev: &Device) -> Result<Box<dyn Net>> {
        Ok(Box::new(CycleGan::new(p, self, rng, dev)?))
    }
}

net!(CycleGan {
    density: no,
    sampler: no,
    sequential: no,
    encoder: no,
    features: no,
    objective: no,
    adversarial: yes,
    translator: yes,
});
