//! The GAN family (Goodfellow et al. 2014) and its variants, one struct:
//! MLP or DCGAN players (Radford et al. 2016), optional class conditioning
//! (conditional GAN, Mirza & Osindero 2014), InfoGAN codes with a Q head on
//! the discriminator body (Chen et al. 2016), and the objective as a value:
//! minimax, non-saturating, any f-divergence of f-GAN (Nowozin et al. 2016)
//! or the Wasserstein critic (Arjovsky et al. 2017). Clipping, gradient
//! penalty, n_critic and unrolling are options of [`crate::train::AdversarialTrainer`].

use candle_core::{DType, Device, Tensor, Var};
use serde::{Deserialize, Serialize};

use super::{Adversarial, Side};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::models::family::*;
use crate::models::{DensityModel, Encoder, ModelFlags, Objective, Sampler};
use crate::nn::conv::Strided;
use crate::nn::ops::softplus;
use crate::nn::Params;
use crate::nn::{
    stack::{Init, Stack},
    Act,
};
use crate::recipe::{AdversarialConfig, Schedule, TrainConfig};
use crate::rng::{self, Rng};
use std::any::Any;

/// The f-divergences of f-GAN (Nowozin et al. 2016, Table 2) with the output
/// activation g_f of their Table 6, which maps the critic's raw output v into
/// the domain of the Fenchel conjugate f*.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Divergence {
    /// Kullback-Leibler KL(P || Q): f(u) = u log u, g_f(v) = v, f*(t) = exp(t - 1).
    Kl,
    /// Reverse KL(Q || P): f(u) = -log u, g_f(v) = -exp(-v), f*(t) = -1 - log(-t).
    ReverseKl,
    /// Jensen-Shannon: f(u) = -(u+1) log((1+u)/2) + u log u, g_f(v) = log 2 - log(1 + e^-v), f*(t)
    /// = -log(2 - e^t).
    Js,
    /// Pearson chi^2: f(u) = (u - 1)^2, g_f(v) = v, f*(t) = t^2/4 + t.
    Pearson,
    /// Squared Hellinger: f(u) = (sqrt u - 1)^2, g_f(v) = 1 - e^-v, f*(t) = t / (1 - t).
    Hellinger,
    /// The original GAN's: f(u) = u log u - (u+1) log(u+1), g_f(v) = -log(1 + e^-v), f*(t) = -log(1
    /// - e^t).
    Gan,
}

impl Divergence {
    pub const ALL: [Divergence; 6] = [
        Divergence::Kl,
        Divergence::ReverseKl,
        Divergence::Js,
        Divergence::Pearson,
        Divergence::Hellinger,
        Divergence::Gan,
    ];

    pub fn name(&self) -> &'static str {
        match self {
            Divergence::Kl => "kl",
            Divergence::ReverseKl => "reverse-kl",
            Divergence::Js => "js",
            Divergence::Pearson => "pearson",
            Divergence::Hellinger => "hellinger",
            Divergence::Gan => "gan",
        }
    }

    /// The generator function f (u = p/q > 0).
    pub fn f(&self, u: f64) -> f64 {
        match self {
            Divergence::Kl => u * u.ln(),
            Divergence::ReverseKl => -u.ln(),
            Divergence::Js => -(u + 1.0) * ((1.0 + u) / 2.0).ln() + u * u.ln(),
            Divergence::Pearson => (u - 1.0).powi(2),
            Divergence::Hellinger => (u.sqrt() - 1.0).powi(2),
            Divergence::Gan => u * u.ln() - (u + 1.0) * (u + 1.0).ln(),
        }
    }

    /// f'(u): the optimal critic output T*(x) = f'(p(x)/q(x)).
    pub fn f_prime(&self, u: f64) -> f64 {
        match self {
            Divergence::Kl => 1.0 + u.ln(),
            Divergence::ReverseKl => -1.0 / u,
            Divergence::Js => (2.0 * u / (1.0 + u)).ln(),
            Divergence::Pearson => 2.0 * (u - 1.0),
            Divergence::Hellinger => 1.0 - 1.0 / u.sqrt(),
            Divergence::Gan => (u / (u + 1.0)).ln(),
        }
    }

    /// The Fenchel conjugate f*(t) = sup_u (u t - f(u)), on its domain.
    pub fn conjugate(&self, t: f64) -> f64 {
        match self {
            Divergence::Kl => (t - 1.0).exp(),
            Divergence::ReverseKl => -1.0 - (-t).ln(),
            Divergence::Js => -(2.0 - t.exp()).ln(),
            Divergence::Pearson => t * t / 4.0 + t,
            Divergence::Hellinger => t / (1.0 - t),
            Divergence::Gan => -(1.0 - t.exp()).ln(),
        }
    }

    /// g_f(v) for one value.
    pub fn activation(&self, v: f64) -> f64 {
        let sp = |z: f64| z.max(0.0) + (-z.abs()).exp().ln_1p();
        match self {
            Divergence::Kl | Divergence::Pearson => v,
            Divergence::ReverseKl => -(-v).exp(),
            Divergence::Js => std::f64::consts::LN_2 - sp(-v),
            Divergence::Hellinger => 1.0 - (-v).exp(),
            Divergence::Gan => -sp(-v),
        }
    }

    /// (T, f*(T)) for T = g_f(v), as tensors, f*(g_f(v)) simplified so it stays finite.
    pub fn t_and_conjugate(&self, v: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let ln2 = std::f64::consts::LN_2;
        Ok(match self {
            Divergence::Kl => (v.clone(), (v - 1.0)?.exp()?),
            Divergence::ReverseKl => (v.neg()?.exp()?.neg()?, (v - 1.0)?),
            Divergence::Js => ((softplus(&v.neg()?)?.neg()? + ln2)?, (softplus(v)? - ln2)?),
            Divergence::Pearson => (v.clone(), ((v.sqr()? * 0.25)? + v)?),
            Divergence::Hellinger => ((v.neg()?.exp()?.neg()? + 1.0)?, (v.exp()? - 1.0)?),
            Divergence::Gan => (softplus(&v.neg()?)?.neg()?, softplus(v)?),
        })
    }
}

impl std::str::FromStr for Divergence {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Divergence::ALL.into_iter().find(|d| d.name() == s).ok_or_else(|| {
            Error::config(format!(
                "unknown divergence `{s}` (expected kl, reverse-kl, js, pearson, hellinger or gan)"
            ))
        })
    }
}

/// What the two players optimise.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case", tag = "type", content = "divergence")]
pub enum GanLoss {
    /// min_G max_D E log D(x) + E log(1 - D(G(z))), the generator minimising log(1 - D(G(z))).
    Minimax,
    /// The same discriminator; the generator maximises log D(G(z)) (Goodfellow et al. 2014, Sec.
    /// 3).
    NonSaturating,
    /// f-GAN: the critic maximises E_P[T] - E_Q[f*(T)], T = g_f(v); the
    /// generator maximises E_Q[g_f(v)] (the paper's Sec. 3.2 alternative update).
    F(Divergence),
    /// Wasserstein critic: maximise E_P[v] - E_Q[v] (a 1-Lipschitz constraint comes from clipping
    /// or a gradient penalty).
    Wasserstein,
    /// Least squares (LSGAN, Mao et al. 2017, eq. 9 with a = 0, b = c = 1): the critic minimises
    /// 1/2 E_P[(v - 1)^2] + 1/2 E_Q[v^2], the generator 1/2 E_Q[(v - 1)^2] (CycleGAN's reference
    /// code uses these targets, with the generator's 1/2 dropped).
    LeastSquares,
}

/// The terms of one critic update: its loss and the estimate it optimises.
pub struct CriticTerms {
    pub loss: Tensor,
    /// The value the critic maximises (V(D, G) for the GAN losses, the
    /// f-divergence bound for f-GAN, the W1 estimate for Wasserstein).
    pub estimate: Tensor,
}

impl GanLoss {
    /// The critic's loss from its raw outputs on real (`vr`) and generated (`vf`) examples, `[B]`
    /// each.
    pub fn critic(&self, vr: &Tensor, vf: &Tensor) -> Result<CriticTerms> {
        let (loss, estimate) = match self {
            GanLoss::Minimax | GanLoss::NonSaturating => {
                // -[log sigma(vr) + log(1 - sigma(vf))] = softplus(-vr) + softplus(vf)
                let l = (softplus(&vr.neg()?)?.mean_all()? + softplus(vf)?.mean_all()?)?;
                (l.clone(), l.neg()?)
            }
            GanLoss::F(d) => {
                let (tr, _) = d.t_and_conjugate(vr)?;
                let (_, cf) = d.t_and_conjugate(vf)?;
                let est = (tr.mean_all()? - cf.mean_all()?)?;
                (est.neg()?, est)
            }
            GanLoss::Wasserstein => {
                let est = (vr.mean_all()? - vf.mean_all()?)?;
                (est.neg()?, est)
            }
            GanLoss::LeastSquares => {
                let l = (((vr - 1.0)?.sqr()?.mean_all()? + vf.sqr()?.mean_all()?)? * 0.5)?;
                (l.clone(), l.neg()?)
            }
        };
        Ok(CriticTerms { loss, estimate })
    }

    /// The part of [`GanLoss::critic`]'s loss that comes from the examples it calls fake, `[B]`
    /// raw outputs (the loss is separable: a real term plus this one).
    pub fn fake_term(&self, vf: &Tensor) -> Result<Tensor> {
        Ok(match self {
            GanLoss::Minimax | GanLoss::NonSaturating => softplus(vf)?.mean_all()?,
            GanLoss::F(d) => d.t_and_conjugate(vf)?.1.mean_all()?,
            GanLoss::Wasserstein => vf.mean_all()?,
            GanLoss::LeastSquares => (vf.sqr()?.mean_all()? * 0.5)?,
        })
    }

    /// The generator's loss from the critic's raw outputs on generated examples.
    pub fn generator(&self, vf: &Tensor) -> Result<Tensor> {
        Ok(match self {
            GanLoss::Minimax => softplus(vf)?.mean_all()?.neg()?,
            GanLoss::NonSaturating => softplus(&vf.neg()?)?.mean_all()?,
            GanLoss::F(d) => d.t_and_conjugate(vf)?.0.mean_all()?.neg()?,
            GanLoss::Wasserstein => vf.mean_all()?.neg()?,
            GanLoss::LeastSquares => ((vf - 1.0)?.sqr()?.mean_all()? * 0.5)?,
        })
    }

    pub fn name(&self) -> String {
        match self {
            GanLoss::Minimax => "minimax".into(),
            GanLoss::NonSaturating => "non-saturating".into(),
            GanLoss::F(d) => format!("f-GAN {}", d.name()),
            GanLoss::Wasserstein => "wasserstein".into(),
            GanLoss::LeastSquares => "least squares".into(),
        }
    }
}

impl std::str::FromStr for GanLoss {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "minimax" => Ok(GanLoss::Minimax),
            "non-saturating" | "ns" => Ok(GanLoss::NonSaturating),
            "wasserstein" => Ok(GanLoss::Wasserstein),
            "lsgan" | "least-squares" => Ok(GanLoss::LeastSquares),
            other => match other.parse::<Divergence>() {
                Ok(d) => Ok(GanLoss::F(d)),
                Err(_) => Err(Error::config(format!(
                    "unknown GAN loss `{s}` (expected minimax, non-saturating, wasserstein, \
                     lsgan, or an f-divergence: kl, reverse-kl, js, pearson, hellinger, gan)"
                ))),
            },
        }
    }
}

/// The players' architecture.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// Fully connected players (vectors, 2-D toy data, flattened images).
    Mlp,
    /// DCGAN: transposed convolutions, strided convolutions, batch norm, LeakyReLU (images with H,
    /// W divisible by 4).
    Dcgan,
}

/// The distribution of the generator's noise z.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Noise {
    /// z ~ N(0, I) (Goodfellow et al. 2014 and most GANs since).
    #[default]
    Normal,
    /// z ~ U[-1, 1]^d (DCGAN's choice, Radford et al. 2016). On toy:grid25
    /// it changed neither coverage nor sharpness (bench/RESULTS.md, eighth session).
    Uniform,
}

impl Noise {
    /// The bound of the noise's support per coordinate, when it has one
    /// (paths through latent space are clipped to it).
    pub fn bound(&self) -> Option<f32> {
        match self {
            Noise::Normal => None,
            Noise::Uniform => Some(1.0),
        }
    }
}

impl std::str::FromStr for Noise {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "normal" => Ok(Noise::Normal),
            "uniform" => Ok(Noise::Uniform),
            other => {
                Err(Error::config(format!("unknown noise `{other}` (expected normal or uniform)")))
            }
        }
    }
}

/// The generator's last activation.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum GenOutput {
    /// Unbounded values (toy data, standardised features).
    Identity,
    /// Values in (0, 1) (images).
    Sigmoid,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GanConfig {
    /// The model name this config was made from.
    pub variant: Variant,
    /// One example's shape: `[D]` or `[C, H, W]`.
    pub shape: Vec<usize>,
    pub arch: Arch,
    pub loss: GanLoss,
    /// Noise dimension of z.
    pub latent: usize,
    /// The distribution of z (absent in configs written before the option: normal).
    #[serde(default, skip_serializing_if = "is_normal")]
    pub noise: Noise,
    /// MLP hidden widths of the generator and of the discriminator.
    pub g_hidden: Vec<usize>,
    pub d_hidden: Vec<usize>,
    /// MLP generator: batch norm before each hidden ReLU (PacGAN's grid generator).
    #[serde(default)]
    pub g_norm: bool,
    /// DCGAN: feature maps of the discriminator's first layer (the generator mirrors it).
    pub channels: usize,
    /// Batch norm in the discriminator (DCGAN; off for gradient penalties, which penalise
    /// per-example gradients).
    pub d_norm: bool,
    pub output: GenOutput,
    /// Conditional GAN: number of classes, given one-hot to both players (0 = unconditional).
    pub classes: usize,
    /// InfoGAN: size of the categorical code (0 = none).
    pub categorical: usize,
    /// InfoGAN: number of continuous codes, uniform on [-1, 1].
    pub continuous: usize,
    /// InfoGAN: weight lambda of the mutual-information term.
    pub info_weight: f64,
    /// PacGAN (Lin et al. 2018): the critic judges groups of `pack` examples,
    /// concatenated (MLP) or stacked as channels (DCGAN), all real or all
    /// generated; 1 = the usual one-example critic.
    #[serde(default = "one")]
    pub pack: usize,
    /// Decay beta of an exponential moving average of the generator's weights
    /// (Yazici et al. 2019; ProGAN's and StyleGAN's "G_ema"), updated after
    /// every generator step: avg <- beta avg + (1 - beta) w. Samples, `eval`
    /// and reports then use the average; training uses the live weights.
    /// 0 = off. Batch-norm running statistics are the live generator's.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ema: f64,
}

fn is_normal(n: &Noise) -> bool {
    *n == Noise::Normal
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

fn one() -> usize {
    1
}

impl GanConfig {
    pub fn dim(&self) -> usize {
        self.shape.iter().product()
    }
    /// Size of the code block given to the generator besides z.
    pub fn codes(&self) -> usize {
        self.categorical + self.continuous
    }
    pub fn is_info(&self) -> bool {
        self.codes() > 0
    }

    pub fn check(&self) -> Result<()> {
        if self.latent == 0 {
            return Err(Error::config("gan: --latent must be positive"));
        }
        if self.arch == Arch::Dcgan {
            match self.shape[..] {
                [_, h, w] if h % 4 == 0 && w % 4 == 0 && h >= 8 && w >= 8 => {}
                _ => {
                    return Err(Error::config(format!(
                        "the dcgan architecture needs images whose height and width are \
                         multiples of 4 (at least 8); this data has examples of shape {:?}",
                        self.shape
                    )))
                }
            }
            if self.channels == 0 {
                return Err(Error::config("dcgan: --channels must be positive"));
            }
        }
        if self.classes > 0 && self.is_info() {
            return Err(Error::config(
                "a GAN is either conditional (--classes) or an InfoGAN (codes), not both",
            ));
        }
        if self.categorical == 1 {
            return Err(Error::config("infogan: a categorical code needs at least 2 values"));
        }
        if self.pack == 0 {
            return Err(Error::config("--pack must be at least 1"));
        }
        super::ema::check(self.ema)?;
        if self.pack > 1 && self.is_info() {
            return Err(Error::config(
                "--pack does not combine with InfoGAN codes (the Q head \
                reads one example's code, a packed critic sees several)",
            ));
        }
        Ok(())
    }
}

/// A GAN: generator and discriminator (whose weights can be substituted, for unrolling).
pub struct Gan {
    pub cfg: GanConfig,
    pub g: Stack,
    /// The discriminator's body and heads share one weight list: body layers
    /// give features; `v_head` gives the raw output; `q_head` InfoGAN's code estimates.
    pub d: Stack,
    pub v_head: Stack,
    pub q_head: Option<Stack>,
    /// The generator's weight average (`g_ema.*`, in the order of `g.vars`), when `cfg.ema > 0`.
    pub g_ema: Option<Vec<Var>>,
    dev: Device,
}

impl Gan {
    pub fn new(p: &mut Params, cfg: &GanConfig, rng: &mut Rng, dev: &Device) -> Result<Self> {
        cfg.check()?;
        let z_in = cfg.latent + cfg.classes + cfg.codes();
        let (g, d) = match cfg.arch {
            Arch::Mlp => {
                let mut g = Stack::new("g", z_in, dev);
                for (i, &h) in cfg.g_hidden.iter().enumerate() {
                    g.dense(p, &format!("fc{i}"), h, !cfg.g_norm, Init::Default, rng)?;
                    if cfg.g_norm {
                        g.norm(p, &format!("bn{i}"), h, true, rng)?.act(Act::Relu);
                    }
                }
                g.dense(p, "out", cfg.dim(), false, Init::Default, rng)?;
                let mut d = Stack::new("d", cfg.pack * (cfg.dim() + cfg.classes), dev);
                for (i, &h) in cfg.d_hidden.iter().enumerate() {
                    if cfg.shape.len() == 3 {
                        d.dense(p, &format!("fc{i}"), h, false, Init::Default, rng)?
                            .act(Act::Leaky(0.2));
                    } else {
                        d.dense(p, &format!("fc{i}"), h, true, Init::Default, rng)?;
                    }
                }
                (g, d)
            }
            Arch::Dcgan => {
                let (c, h, w) = (cfg.shape[0], cfg.shape[1], cfg.shape[2]);
                let ch = cfg.channels;
                let (h4, w4) = (h / 4, w / 4);
                let s = Strided { k: 4, stride: 2, pad: 1 };
                let init = Init::Normal(0.02);
                let mut g = Stack::new("g", z_in, dev);
                g.dense(p, "fc", 2 * ch * h4 * w4, false, init, rng)?;
                g.reshape(&[h4, w4, 2 * ch]).norm(p, "bn0", 2 * ch, true, rng)?.act(Act::Relu);
                g.up(p, "up1", s, (h4, w4, 2 * ch), ch, init, rng)?;
                g.norm(p, "bn1", ch, true, rng)?.act(Act::Relu);
                g.up(p, "up2", s, (2 * h4, 2 * w4, ch), c, init, rng)?;
                let mut d = Stack::new("d", cfg.pack * (cfg.dim() + cfg.classes), dev);
                d.down(p, "conv1", s, (h, w, cfg.pack * (c + cfg.classes)), ch, init, rng)?
                    .act(Act::Leaky(0.2));
                d.down(p, "conv2", s, (h / 2, w / 2, ch), 2 * ch, init, rng)?;
                if cfg.d_norm {
                    d.norm(p, "bn2", 2 * ch, false, rng)?;
                }
                d.act(Act::Leaky(0.2));
                (g, d)
            }
        };
        let mut g = g;
        if cfg.output == GenOutput::Sigmoid {
            g.act(Act::Sigmoid);
        }
        let feat = d.out;
        let mut v_head = Stack::new("d.head", feat, dev);
        v_head.dense(
            p,
            "v",
            1,
            false,
            if cfg.arch == Arch::Dcgan { Init::Normal(0.02) } else { Init::Default },
            rng,
        )?;
        let q_head = if cfg.is_info() {
            let mut q = Stack::new("d.q", feat, dev);
            q.dense(p, "fc", 128, false, Init::Default, rng)?.act(Act::Leaky(0.2));
            q.dense(p, "out", cfg.codes(), false, Init::Default, rng)?;
            Some(q)
        } else {
            None
        };
        let g_ema =
            if cfg.ema > 0.0 { Some(super::ema::register(p, &g.names, &g.vars)?) } else { None };
        Ok(Self { cfg: cfg.clone(), g, d, v_head, q_head, g_ema, dev: dev.clone() })
    }

    /// Data rows `[B, D]` (C, H, W order) to the players' layout.
    fn to_players(&self, x: &Tensor) -> Result<Tensor> {
        match (self.cfg.arch, &self.cfg.shape[..]) {
            (Arch::Dcgan, [c, h, w]) => {
                Ok(x.reshape((x.dim(0)?, *c, *h, *w))?.permute((0, 2, 3, 1))?)
            }
            _ => Ok(x.clone()),
        }
    }

    /// The generator's output `[B, H, W, C]` (DCGAN) back to data rows `[B, D]`.
    fn to_rows(&self, y: &Tensor) -> Result<Tensor> {
        let b = y.dim(0)?;
        Ok(match self.cfg.arch {
            Arch::Dcgan => y.permute((0, 3, 1, 2))?.reshape((b, ()))?,
            Arch::Mlp => y.reshape((b, ()))?,
        })
    }

    /// Draws InfoGAN codes: a uniform categorical value (one-hot) and uniform[-1, 1] continuous
    /// codes, `[n, codes]`.
    pub fn draw_codes(&self, n: usize, rng: &mut Rng) -> Result<Tensor> {
        use rand::Rng as _;
        let (k, m) = (self.cfg.categorical, self.cfg.continuous);
        let mut v = vec![0f32; n * (k + m)];
        for row in v.chunks_mut(k + m) {
            if k > 0 {
                row[rng.gen_range(0..k)] = 1.0;
            }
            for c in &mut row[k..] {
                *c = rng.gen_range(-1.0f32..1.0);
            }
        }
        Ok(Tensor::from_vec(v, (n, k + m), &self.dev)?)
    }

    /// G(z, cond): `[n, D]` data rows. `cond` is the one-hot label or the InfoGAN codes (`[n,
    /// classes or codes]`).
    /// `train`: the live weights with batch statistics; otherwise the weight
    /// average when there is one (`--g-ema`), with running statistics.
    pub fn generate(&self, z: &Tensor, cond: Option<&Tensor>, train: bool) -> Result<Tensor> {
        let input = match cond {
            Some(c) => Tensor::cat(&[z, c], 1)?,
            None => z.clone(),
        };
        let ws = match (&self.g_ema, train) {
            (Some(avg), false) => avg.iter().map(|v| v.as_tensor().clone()).collect(),
            _ => self.g.tensors(),
        };
        let y = self.g.forward_with(&input, &ws, train, train)?;
        self.to_rows(&y)
    }

    /// Makes the weight average (if any) a copy of the live weights, in memory:
    /// `deepgen eval --live-generator` compares the two on one run.
    pub fn use_live_weights(&self) -> Result<()> {
        match &self.g_ema {
            Some(avg) => super::ema::copy_live(avg, &self.g.vars),
            None => Ok(()),
        }
    }

    /// `n` draws of the generator's noise z, `[n, latent]`, from the configured distribution.
    pub fn draw_z(&self, n: usize, rng: &mut Rng) -> Result<Tensor> {
        let shape = [n, self.cfg.latent];
        Ok(match self.cfg.noise {
            Noise::Normal => rng::randn(rng, &shape, &self.dev)?,
            Noise::Uniform => rng::uniform(rng, &shape, -1.0, 1.0, &self.dev)?,
        })
    }

    /// Samples with the generator in eval mode; labels for a conditional GAN
    /// (drawn uniformly when `None`), codes drawn for an InfoGAN.
    pub fn sample_with(&self, n: usize, labels: Option<&[u32]>, rng: &mut Rng) -> Result<Tensor> {
        let z = self.draw_z(n, rng)?;
        let cond = self.condition(n, labels, rng)?;
        self.generate(&z, cond.as_ref(), false)
    }

    /// A conditioning block for `n` draws: uniform one-hot classes, or InfoGAN codes (`[n, classes
    /// or codes]`).
    pub fn sample_condition(&self, n: usize, rng: &mut Rng) -> Result<Tensor> {
        self.condition(n, None, rng)?.ok_or_else(|| Error::config("this GAN takes no condition"))
    }

    /// The generator's conditioning block for `n` draws.
    fn condition(&self, n: usize, labels: Option<&[u32]>, rng: &mut Rng) -> Result<Option<Tensor>> {
        use rand::Rng as _;
        if self.cfg.classes > 0 {
            let drawn: Vec<u32>;
            let l = match labels {
                Some(l) => l,
                None => {
                    drawn = (0..n).map(|_| rng.gen_range(0..self.cfg.classes as u32)).collect();
                    &drawn
                }
            };
            return Ok(Some(crate::nn::one_hot(l, self.cfg.classes, &self.dev)?));
        }
        if self.cfg.is_info() {
            return Ok(Some(self.draw_codes(n, rng)?));
        }
        Ok(None)
    }

    fn no_labels(&self, what: &str) -> Result<()> {
        if self.cfg.classes > 0 {
            return Err(Error::config(format!(
                "the conditional GAN's critic also reads the label; \
                {what} of unlabelled examples is not defined"
            )));
        }
        Ok(())
    }

    fn unpacked(&self, what: &str) -> Result<()> {
        if self.cfg.pack > 1 {
            return Err(Error::config(format!(
                "this GAN's critic is packed (--pack {}): it judges \
                groups of {} examples, so {what} of one example is not defined",
                self.cfg.pack, self.cfg.pack
            )));
        }
        Ok(())
    }

    /// The discriminator body's features of data rows `[B, D]` -> `[B, F]` (batch statistics).
    pub fn embed(&self, x: &Tensor) -> Result<Tensor> {
        self.no_labels("embedding")?;
        self.unpacked("an embedding")?;
        self.features(x, None, &self.d.tensors())
    }

    /// The critic's raw output per example `[B]` (the logit of D(x) for the
    /// GAN losses, the critic value for WGANs): high means "real".
    pub fn critic_value(&self, x: &Tensor) -> Result<Tensor> {
        self.no_labels("a critic score")?;
        self.unpacked("a critic score")?;
        let f = self.features(x, None, &self.d.tensors())?;
        Ok(self.v_head.forward(&f, false)?.squeeze(1)?)
    }

    /// The discriminator body's features `[B / pack, F]` of data rows under weights `ws` (d, then
    /// heads).
    fn features(&self, x: &Tensor, cond: Option<&Tensor>, ws: &[Tensor]) -> Result<Tensor> {
        let b = x.dim(0)?;
        let m = self.cfg.pack;
        if b % m != 0 {
            return Err(Error::config(format!(
                "a batch of {b} examples cannot be packed in groups \
                of {m} (--pack): use a batch size that is a multiple of {m}"
            )));
        }
        let nd = self.d.vars.len();
        let input = match (self.cfg.arch, cond, self.cfg.classes) {
            (Arch::Dcgan, Some(c), k) if k > 0 => {
                let (h, w) = (self.cfg.shape[1], self.cfg.shape[2]);
                let planes = c.reshape((b, 1, 1, k))?.broadcast_as((b, h, w, k))?;
                Tensor::cat(&[&self.to_players(x)?, &planes], 3)?
            }
            (Arch::Mlp, Some(c), k) if k > 0 => Tensor::cat(&[x, c], 1)?,
            _ => self.to_players(x)?,
        };
        // PacGAN: member j of group g is example g * m + j; MLP rows are
        // concatenated, DCGAN images stacked along channels (NHWC: [g, j, h, w, c] -> [g, h, w, j *
        // c]).
        let input = match (m, input.rank()) {
            (1, _) => input,
            (_, 2) => input.reshape((b / m, ()))?,
            (_, _) => {
                let (_, h, w, c) = input.dims4()?;
                input.reshape((b / m, m, h, w, c))?.permute((0, 2, 3, 1, 4))?.reshape((
                    b / m,
                    h,
                    w,
                    m * c,
                ))?
            }
        };
        let f = self.d.forward_with(&input, &ws[..nd], true, false)?;
        Ok(f.reshape((b / m, ()))?)
    }
}

impl Adversarial for Gan {
    fn d_weights(&self) -> Vec<(String, candle_core::Var)> {
        let mut v: Vec<_> = self.d.names.iter().cloned().zip(self.d.vars.iter().cloned()).collect();
        v.extend(self.v_head.names.iter().cloned().zip(self.v_head.vars.iter().cloned()));
        if let Some(q) = &self.q_head {
            v.extend(q.names.iter().cloned().zip(q.vars.iter().cloned()));
        }
        v
    }

    fn g_names(&self) -> Vec<String> {
        self.g.names.clone()
    }

    fn loss(&self) -> GanLoss {
        self.cfg.loss
    }

    fn real(&self, x: &Tensor, labels: Option<&[u32]>, _rng: &mut Rng) -> Result<Side> {
        let cond = if self.cfg.classes > 0 {
            let l = labels.ok_or_else(|| Error::config("a conditional GAN needs labelled data"))?;
            Some(crate::nn::one_hot(l, self.cfg.classes, &self.dev)?)
        } else {
            None
        };
        Ok(Side { x: x.clone(), cond, codes: None })
    }

    fn fake(&self, x: &Tensor, _labels: Option<&[u32]>, rng: &mut Rng) -> Result<Side> {
        let n = x.dim(0)?;
        let z = self.draw_z(n, rng)?;
        let cond = self.condition(n, None, rng)?;
        let g = self.generate(&z, cond.as_ref(), true)?;
        Ok(if self.cfg.is_info() {
            Side { x: g, cond: None, codes: cond }
        } else {
            Side { x: g, cond, codes: None }
        })
    }

    fn critic(&self, s: &Side, ws: &[Tensor]) -> Result<(Tensor, Option<Tensor>)> {
        let f = self.features(&s.x, s.cond.as_ref(), ws)?;
        let nd = self.d.vars.len();
        let nv = self.v_head.vars.len();
        let v = self.v_head.forward_with(&f, &ws[nd..nd + nv], true, false)?.squeeze(1)?;
        let q = match &self.q_head {
            Some(q) => Some(q.forward_with(&f, &ws[nd + nv..], true, false)?),
            None => None,
        };
        Ok((v, q))
    }

    fn info_loss(&self, q: &Tensor, codes: &Tensor) -> Result<Option<(Tensor, Tensor)>> {
        if !self.cfg.is_info() {
            return Ok(None);
        }
        let (k, m) = (self.cfg.categorical, self.cfg.continuous);
        let b = q.dim(0)? as f64;
        let mut nll = Tensor::zeros((), DType::F32, &self.dev)?;
        let mut entropy = 0f64;
        if k > 0 {
            let logits = q.narrow(1, 0, k)?;
            let onehot = codes.narrow(1, 0, k)?;
            let logz = logits.exp()?.sum_keepdim(1)?.log()?;
            let lp = (logits.broadcast_sub(&logz)? * onehot)?.sum_all()?;
            nll = (nll - (lp / b)?)?;
            entropy += (k as f64).ln();
        }
        if m > 0 {
            // A unit-variance Gaussian Q(c|x) for each continuous code.
            let mu = q.narrow(1, k, m)?;
            let c = codes.narrow(1, k, m)?;
            let sq = ((c - mu)?.sqr()?.sum_all()? / (2.0 * b))?;
            nll = ((nll + sq)? + 0.5 * m as f64 * (2.0 * std::f64::consts::PI).ln())?;
            entropy += m as f64 * 2f64.ln();
        }
        // L_I = H(c) + E log Q(c | G(z, c)) <= I(c; G(z, c)) (Chen et al. 2016, Lemma 5.1).
        let bound = (nll.neg()? + entropy)?;
        Ok(Some((nll, bound)))
    }

    fn generator_extra(
        &self,
        _x: &Tensor,
        _fake: &Side,
        _q: Option<&Tensor>,
    ) -> Result<Vec<(&'static str, Tensor)>> {
        Ok(vec![])
    }

    fn info_weight(&self) -> f64 {
        self.cfg.info_weight
    }

    fn pack(&self) -> usize {
        self.cfg.pack
    }

    fn after_generator_step(&self) -> Result<()> {
        match &self.g_ema {
            Some(avg) => super::ema::update(avg, &self.g.vars, self.cfg.ema),
            None => Ok(()),
        }
    }

    fn check_data(&self, data: &crate::data::Dataset) -> Result<()> {
        if self.cfg.classes == 0 {
            return Ok(());
        }
        let labels = data.labels.as_ref().ok_or_else(|| {
            Error::config(format!(
                "{}: a conditional GAN needs labelled data (this set has no labels)",
                data.source
            ))
        })?;
        match labels.iter().find(|&&v| v as usize >= self.cfg.classes) {
            Some(bad) => Err(Error::config(format!(
                "{}: label {bad} is out of range for {} classes",
                data.source, self.cfg.classes
            ))),
            None => Ok(()),
        }
    }
}

/// The GAN variants, each a model name of its own: the name picks the
/// defaults (objective, players, recipe); every choice is a field of
/// [`GanConfig`], so variants differ only in their presets and recipes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Variant {
    Gan,
    Dcgan,
    Cgan,
    Infogan,
    Fgan,
    Wgan,
    WganGp,
    UnrolledGan,
}

impl Variant {
    pub const ALL: [Variant; 8] = [
        Variant::Gan,
        Variant::Dcgan,
        Variant::Cgan,
        Variant::Infogan,
        Variant::Fgan,
        Variant::Wgan,
        Variant::WganGp,
        Variant::UnrolledGan,
    ];

    /// The model name (`deepgen train NAME`), as serde writes it.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Gan => "gan",
            Variant::Dcgan => "dcgan",
            Variant::Cgan => "cgan",
            Variant::Infogan => "infogan",
            Variant::Fgan => "fgan",
            Variant::Wgan => "wgan",
            Variant::WganGp => "wgan-gp",
            Variant::UnrolledGan => "unrolled-gan",
        }
    }

    pub fn from_name(name: &str) -> Result<Self> {
        Variant::ALL
            .into_iter()
            .find(|v| v.name() == name)
            .ok_or_else(|| Error::config(format!("unknown GAN variant `{name}`")))
    }

    /// Convolutional players by default on images.
    fn conv(self) -> bool {
        matches!(
            self,
            Variant::Dcgan | Variant::Cgan | Variant::Infogan | Variant::Wgan | Variant::WganGp
        )
    }
}

const MLP: &str = "vectors, 2-D toy sets and flattened images (MLP players)";
const CONV: &str =
    "images: DCGAN players (--arch mlp for MLP players); vectors and 2-D toy sets: MLP players";
const BASE: &[&str] = &[
    "hidden",
    "latent",
    "loss",
    "divergence",
    "d_hidden",
    "g_norm",
    "noise",
    "pack",
    "g_ema",
    "arch",
    "channels",
];
const CGAN: &[&str] = &[
    "hidden",
    "latent",
    "loss",
    "divergence",
    "d_hidden",
    "g_norm",
    "noise",
    "pack",
    "g_ema",
    "arch",
    "channels",
    "classes",
];
const INFOGAN: &[&str] = &[
    "hidden",
    "latent",
    "loss",
    "divergence",
    "d_hidden",
    "g_norm",
    "noise",
    "pack",
    "g_ema",
    "arch",
    "channels",
    "categorical",
    "continuous",
    "info_weight",
];

/// What every GAN variant offers: samples, critic features and the critic's
/// anomaly score, no density (the conditional GAN differs, see `MODELS`).
const fn variant(
    name: &'static str,
    summary: &'static str,
    data: &'static str,
    flags: &'static [&'static str],
) -> ModelInfo {
    ModelInfo {
        name,
        summary,
        density: Density::None,
        training: Training::Adversarial,
        sampler: true,
        completion: false,
        encoder: false,
        features: Some("the discriminator's last hidden layer"),
        labels: Labels::Unused,
        scores: &[ScoreKind::Disc],
        data,
        flags,
    }
}

impl Family for GanConfig {
    const MODELS: &'static [ModelInfo] = &[
        variant(
            "gan",
            "GAN (Goodfellow et al. 2014): MLP players, --loss minimax or \
            non-saturating",
            MLP,
            BASE,
        ),
        variant(
            "dcgan",
            "DCGAN (Radford et al. 2016): transposed/strided convolutions, batch \
            norm, LeakyReLU",
            CONV,
            BASE,
        ),
        ModelInfo {
            features: None,
            labels: Labels::Condition,
            scores: &[],
            ..variant(
                "cgan",
                "conditional GAN (Mirza & Osindero 2014): one-hot labels to both \
                players; sample --class K",
                CONV,
                CGAN,
            )
        },
        variant(
            "infogan",
            "InfoGAN (Chen et al. 2016): categorical + continuous codes, Q head, \
            mutual-information bound",
            CONV,
            INFOGAN,
        ),
        variant(
            "fgan",
            "f-GAN (Nowozin et al. 2016): --divergence kl, reverse-kl, js, pearson, \
            hellinger or gan",
            MLP,
            BASE,
        ),
        variant(
            "wgan",
            "Wasserstein GAN (Arjovsky et al. 2017): weight clipping, n_critic 5, W1 \
            estimate logged",
            CONV,
            BASE,
        ),
        variant(
            "wgan-gp",
            "WGAN-GP (Gulrajani et al. 2017): gradient penalty (second-order \
            gradients)",
            CONV,
            BASE,
        ),
        variant(
            "unrolled-gan",
            "Unrolled GAN (Metz et al. 2017): generator loss through K \
            differentiable critic updates",
            MLP,
            BASE,
        ),
    ];

    /// MLP players for vectors (the 2-D toy sets: Metz et al. 2017's 2x128
    /// ReLU players), DCGAN players for images (except `gan`, `fgan` and
    /// `unrolled-gan`, which stay MLPs).
    fn preset(name: &str, shape: &[usize], unit_data: bool) -> Result<Self> {
        let variant = Variant::from_name(name)?;
        let image = shape.len() == 3 && shape[1].is_multiple_of(4) && shape[2].is_multiple_of(4);
        let toy = is_toy(shape);
        let loss = match variant {
            Variant::Gan
            | Variant::UnrolledGan
            | Variant::Dcgan
            | Variant::Cgan
            | Variant::Infogan => GanLoss::NonSaturating,
            Variant::Fgan => GanLoss::F(Divergence::Js),
            Variant::Wgan | Variant::WganGp => GanLoss::Wasserstein,
        };
        let info = variant == Variant::Infogan;
        Ok(GanConfig {
            variant,
            shape: shape.to_vec(),
            arch: if image && variant.conv() { Arch::Dcgan } else { Arch::Mlp },
            loss,
            latent: if toy {
                256
            } else if info {
                62
            } else {
                100
            },
            noise: Noise::Normal,
            g_hidden: if toy { vec![128, 128] } else { vec![256, 512] },
            d_hidden: if toy { vec![128, 128] } else { vec![512, 256] },
            g_norm: false,
            channels: 64,
            d_norm: variant != Variant::WganGp,
            output: if unit_data && !toy { GenOutput::Sigmoid } else { GenOutput::Identity },
            classes: if variant == Variant::Cgan { 10 } else { 0 },
            categorical: if info { 10 } else { 0 },
            continuous: if info { 2 } else { 0 },
            info_weight: 1.0,
            pack: 1,
            ema: 0.0,
        })
    }

    /// Toy GANs: Metz et al. 2017's generator lr 1e-3 and Adam beta1 0.5,
    /// with the critic at 2e-4, both decayed by a cosine schedule over
    /// 10,000 steps at batch 512 (the settings of bench/modes_table.sh: the
    /// Unrolled GAN covers 8/8 ring modes on 5 of 5 seeds with 90.5 %
    /// high-quality samples; at 6,000 steps 85.6 %; Metz's critic 1e-4
    /// without decay had not converged after 2,000 steps). Image GANs:
    /// DCGAN's 2e-4 for both, batch 64. WGAN: the paper's 5e-5 with n_critic
    /// 5 and clipping at 0.01 (Adam with beta1 = 0 in place of RMSProp).
    /// WGAN-GP: Gulrajani et al.'s lambda 10, n_critic 5, Adam(1e-4, 0, 0.9).
    fn recipe(name: &str, shape: &[usize]) -> TrainConfig {
        let toy = is_toy(shape);
        let variant = Variant::from_name(name).unwrap_or(Variant::Gan);
        let long = matches!(
            variant,
            Variant::Gan | Variant::UnrolledGan | Variant::Fgan | Variant::Wgan | Variant::WganGp
        );
        let lr = match variant {
            Variant::Wgan => 5e-5,
            Variant::WganGp => 1e-4,
            _ if toy => 1e-3,
            _ => 2e-4,
        };
        let mut critic = AdversarialConfig { d_lr: 2e-4, ..AdversarialConfig::default() };
        match variant {
            Variant::Wgan => {
                critic.d_lr = 5e-5;
                critic.n_critic = 5;
                critic.clip = Some(0.01);
            }
            Variant::WganGp => {
                critic.d_lr = 1e-4;
                critic.n_critic = 5;
                critic.gp = Some(10.0);
            }
            Variant::UnrolledGan => critic.unroll = 5,
            _ => {}
        }
        let mut t = TrainConfig {
            steps: if toy && long { 10_000 } else { 2000 },
            batch_size: if toy { 512 } else { 64 },
            lr,
            schedule: if toy { Schedule::Cosine } else { Schedule::Constant },
            adversarial: Some(critic),
            ..TrainConfig::default()
        };
        let wasserstein = matches!(variant, Variant::Wgan | Variant::WganGp);
        t.optimizer.beta1 = if wasserstein { 0.0 } else { 0.5 };
        if variant == Variant::WganGp {
            t.optimizer.beta2 = 0.9;
        }
        t
    }

    fn name(&self) -> &'static str {
        self.variant.name()
    }

    fn dim(&self) -> usize {
        GanConfig::dim(self)
    }

    fn needs(&self) -> Needs {
        Needs { binary: false, grey_levels: false }
    }

    fn configure(&mut self, flags: &ModelFlags, data: &Dataset, _seed: u64) -> Result<()> {
        if let Some(h) = &flags.hidden {
            self.g_hidden = width_list("--hidden", h)?;
        }
        if let Some(h) = &flags.d_hidden {
            self.d_hidden = width_list("--d-hidden", h)?;
        }
        self.latent = flags.latent.unwrap_or(self.latent);
        if let Some(arch) = &flags.arch {
            self.arch = match arch.as_str() {
                "mlp" => Arch::Mlp,
                "dcgan" => Arch::Dcgan,
                other => {
                    return Err(Error::config(format!(
                        "--arch: unknown architecture `{other}` (expected mlp or dcgan)"
                    )))
                }
            };
        }
        if let Some(ch) = flags.channels {
            if self.arch != Arch::Dcgan {
                return Err(Error::config(
                    "--channels applies only to DCGAN players (--arch dcgan)",
                ));
            }
            self.channels = ch;
        }
        if let Some(l) = &flags.loss {
            self.loss = l.parse()?;
        }
        if let Some(d) = &flags.divergence {
            if self.variant != Variant::Fgan && !matches!(self.loss, GanLoss::F(_)) {
                return Err(Error::config(
                    "--divergence applies only to the fgan model (or --loss with an f-divergence)",
                ));
            }
            self.loss = GanLoss::F(d.parse::<Divergence>()?);
        }
        self.pack = flags.pack.unwrap_or(self.pack);
        self.ema = flags.g_ema.unwrap_or(self.ema);
        if let Some(n) = &flags.noise {
            self.noise = n.parse()?;
        }
        if flags.g_norm {
            if self.arch != Arch::Mlp {
                return Err(Error::config(
                    "--g-norm applies only to MLP players (the DCGAN \
                    generator always has batch norm)",
                ));
            }
            self.g_norm = true;
        }
        if self.variant == Variant::Cgan {
            self.classes = label_classes(data, "a conditional GAN", flags.classes)?.max(1);
        }
        if self.variant == Variant::Infogan {
            self.categorical = flags.categorical.unwrap_or(self.categorical);
            self.continuous = flags.continuous.unwrap_or(self.continuous);
            self.info_weight = flags.info_weight.unwrap_or(self.info_weight);
            if self.codes() == 0 {
                return Err(Error::config(
                    "infogan: give at least one code (--categorical K or --continuous M)",
                ));
            }
        }
        self.check()
    }

    fn build(&self, p: &mut Params, rng: &mut Rng, dev: &Device) -> Result<Box<dyn Net>> {
        Ok(Box::new(Gan::new(p, self, rng, dev)?))
    }
}

impl Net for Gan {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn density(&self) -> Option<&dyn DensityModel> {
        None
    }
    fn sampler(&self) -> Option<&dyn Sampler> {
        Some(self)
    }
    fn sequential(&self) -> Option<&dyn Sequential> {
        None
    }
    fn encoder(&self) -> Option<&dyn Encoder> {
        None
    }
    fn features(&self) -> Option<&dyn Features> {
        if self.cfg.classes == 0 {
            Some(self)
        } else {
            None
        }
    }
    fn objective(&self) -> Option<&dyn Objective> {
        None
    }
    fn adversarial(&self) -> Option<&dyn Adversarial> {
        Some(self)
    }
    fn translator(&self) -> Option<&dyn super::Translator> {
        None
    }
}

/// Unconditional draws (a conditional GAN draws its labels).
impl Sampler for Gan {
    fn sample(&self, n: usize, rng: &mut Rng) -> Result<Tensor> {
        self.sample_with(n, None, rng)
    }
}

/// The discriminator body's output.
impl Features for Gan {
    fn features(&self, x: &Tensor) -> Result<Tensor> {
        self.embed(x)
    }
}
