//! The variational autoencoder (Kingma & Welling, ICLR 2014): an MLP encoder
//! q(z|x) = N(mu(x), diag(exp(logvar(x)))), the reparameterisation
//! z = mu + exp(logvar/2) * eps, an MLP decoder p(x|z) (Bernoulli logits for
//! binary data, Gaussian with a learned per-dimension variance for real
//! data), and the ELBO  E_q[log p(x|z)] - KL(q(z|x) || N(0, I))  with the KL
//! in closed form (appendix B).
//!
//! `log_prob` is the importance-weighted estimate of Burda et al. (2016), eq. (8):
//! log p(x) ~= log (1/k) sum_k p(x, z_k) / q(z_k | x), z_k ~ q(z|x), a lower
//! bound that tightens as k grows; k = 1 gives the ELBO.
//!
//! Tensor names: `enc.{i}.weight` [in, out] / `enc.{i}.bias` for the hidden
//! layers, `enc.mu.*`, `enc.logvar.*`, `dec.{i}.*`, `dec.out.*`, and for the
//! Gaussian decoder `dec.logvar` `[D]`.

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::data::Dataset;
use crate::dist;
use crate::error::{Error, Result};
use crate::models::family::net;
use crate::models::family::*;
use crate::models::{DensityModel, Encoder, Losses, ModelFlags, Objective, Sampler};
use crate::nn::{ops, Act, Linear, Params};
use crate::recipe::TrainConfig;
use crate::rng::{self, Rng};

/// The decoder's observation model.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Likelihood {
    Bernoulli,
    Gaussian,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VaeConfig {
    pub dim: usize,
    /// Hidden widths of the encoder; the decoder mirrors them.
    #[serde(default = "default_hidden")]
    pub hidden: Vec<usize>,
    #[serde(default = "default_latent")]
    pub latent: usize,
    #[serde(default = "default_likelihood")]
    pub likelihood: Likelihood,
    /// Importance samples k for `log_prob`.
    #[serde(default = "default_iw")]
    pub iw_samples: usize,
}

fn default_hidden() -> Vec<usize> {
    vec![512, 512]
}
fn default_latent() -> usize {
    32
}
fn default_likelihood() -> Likelihood {
    Likelihood::Bernoulli
}
fn default_iw() -> usize {
    100
}

impl VaeConfig {
    pub fn check(&self) -> Result<()> {
        if self.latent == 0 || self.hidden.contains(&0) {
            return Err(Error::config("vae: latent and hidden sizes must be positive"));
        }
        if self.iw_samples == 0 {
            return Err(Error::config("vae: iw_samples must be at least 1"));
        }
        Ok(())
    }
}

/// The parts of the negative ELBO, per example.
pub struct Elbo {
    /// -E_q log p(x|z), one sample.  `[B]`
    pub recon: Tensor,
    /// KL(q(z|x) || p(z)), closed form.  `[B]`
    pub kl: Tensor,
}

#[derive(Debug, Clone)]
pub struct Vae {
    enc: Vec<Linear>,
    enc_mu: Linear,
    enc_lv: Linear,
    dec: Vec<Linear>,
    dec_out: Linear,
    dec_lv: Option<Tensor>,
    cfg: VaeConfig,
}

impl Vae {
    pub fn new(p: &mut Params, cfg: &VaeConfig, rng: &mut Rng, dev: &Device) -> Result<Self> {
        cfg.check()?;
        let mut enc = Vec::new();
        let mut d_in = cfg.dim;
        for (i, &h) in cfg.hidden.iter().enumerate() {
            enc.push(Linear::new(p, &format!("enc.{i}"), d_in, h, rng, dev)?);
            d_in = h;
        }
        let enc_mu = Linear::new(p, "enc.mu", d_in, cfg.latent, rng, dev)?;
        let enc_lv = Linear::new(p, "enc.logvar", d_in, cfg.latent, rng, dev)?;
        let mut dec = Vec::new();
        let mut d_in = cfg.latent;
        for (i, &h) in cfg.hidden.iter().rev().enumerate() {
            dec.push(Linear::new(p, &format!("dec.{i}"), d_in, h, rng, dev)?);
            d_in = h;
        }
        let dec_out = Linear::new(p, "dec.out", d_in, cfg.dim, rng, dev)?;
        let dec_lv = match cfg.likelihood {
            Likelihood::Gaussian => Some(p.zeros("dec.logvar", &[cfg.dim], dev)?),
            Likelihood::Bernoulli => None,
        };
        Ok(Self { enc, enc_mu, enc_lv, dec, dec_out, dec_lv, cfg: cfg.clone() })
    }

    pub fn config(&self) -> &VaeConfig {
        &self.cfg
    }

    /// # Shapes
    /// `x: [B, D]` -> (mu, logvar), each `[B, L]`
    pub fn encode(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let mut h = x.clone();
        for l in &self.enc {
            h = l.forward_act(&h, Act::Relu)?;
        }
        Ok((self.enc_mu.forward(&h)?, self.enc_lv.forward(&h)?))
    }

    /// Decoder output: Bernoulli logits or Gaussian means.
    ///
    /// # Shapes
    /// `z: [B, L]` -> `[B, D]`
    pub fn decode(&self, z: &Tensor) -> Result<Tensor> {
        let mut h = z.clone();
        for l in &self.dec {
            h = l.forward_act(&h, Act::Relu)?;
        }
        self.dec_out.forward(&h)
    }

    /// The mean of p(x|z): probabilities or Gaussian means.
    pub fn decode_mean(&self, z: &Tensor) -> Result<Tensor> {
        let out = self.decode(z)?;
        Ok(match self.cfg.likelihood {
            Likelihood::Bernoulli => ops::sigmoid(&out)?,
            Likelihood::Gaussian => out,
        })
    }

    /// log p(x | z) per row, summed over dimensions.
    fn log_lik(&self, x: &Tensor, out: &Tensor) -> Result<Tensor> {
        let ll = match (&self.cfg.likelihood, &self.dec_lv) {
            (Likelihood::Gaussian, Some(lv)) => ops::gaussian_log_prob(x, out, lv)?,
            _ => ops::bernoulli_log_prob_logits(out, x)?,
        };
        Ok(ll.sum(1)?)
    }

    /// One-sample negative ELBO parts (the training objective).
    pub fn elbo(&self, x: &Tensor, rng: &mut Rng) -> Result<Elbo> {
        let (mu, lv) = self.encode(x)?;
        let eps = rng::randn(rng, mu.dims(), mu.device())?;
        let z = (&mu + (lv.affine(0.5, 0.0)?.exp()? * eps)?)?;
        let recon = self.log_lik(x, &self.decode(&z)?)?.neg()?;
        let kl = dist::kl_std_normal(&mu, &lv)?;
        Ok(Elbo { recon, kl })
    }

    /// Importance-weighted estimate of log p(x) with `k` samples.
    ///
    /// # Shapes
    /// `x: [B, D]` -> `[B]`
    pub fn log_prob_k(&self, x: &Tensor, k: usize, rng: &mut Rng) -> Result<Tensor> {
        let (b, l) = (x.dim(0)?, self.cfg.latent);
        let (mu, lv) = self.encode(x)?;
        let std = lv.affine(0.5, 0.0)?.exp()?;
        // Decode at most ~4096 rows at a time.
        let per = (4096 / b.max(1)).clamp(1, k);
        let mut logw = Vec::new();
        let mut done = 0;
        while done < k {
            let kk = per.min(k - done);
            let eps = rng::randn(rng, &[kk, b, l], x.device())?;
            let z = eps.broadcast_mul(&std)?.broadcast_add(&mu)?; // [kk, B, L]
            let zf = z.reshape((kk * b, l))?;
            let xr =
                x.unsqueeze(0)?.broadcast_as((kk, b, x.dim(1)?))?.reshape((kk * b, x.dim(1)?))?;
            let lpx = self.log_lik(&xr, &self.decode(&zf)?)?.reshape((kk, b))?;
            let lpz = dist::std_normal_log_prob(&z)?; // [kk, B]
            let lqz = ops::gaussian_log_prob(&z, &mu.unsqueeze(0)?, &lv.unsqueeze(0)?)?
                .sum(candle_core::D::Minus1)?;
            logw.push(((lpx + lpz)? - lqz)?);
            done += kk;
        }
        Ok(ops::log_mean_exp(&Tensor::cat(&logw, 0)?, 0)?)
    }

    pub fn log_prob(&self, x: &Tensor, rng: &mut Rng) -> Result<Tensor> {
        self.log_prob_k(x, self.cfg.iw_samples, rng)
    }

    /// Draws x ~ p(x|z), z ~ N(0, I).
    pub fn sample(&self, n: usize, rng: &mut Rng) -> Result<Tensor> {
        let z = rng::randn(rng, &[n, self.cfg.latent], self.dec_out.b.device())?;
        let out = self.decode(&z)?;
        match (&self.cfg.likelihood, &self.dec_lv) {
            (Likelihood::Gaussian, Some(lv)) => {
                let eps = rng::randn(rng, out.dims(), out.device())?;
                Ok(out.add(&eps.broadcast_mul(&lv.affine(0.5, 0.0)?.exp()?)?)?)
            }
            _ => {
                let p = ops::sigmoid(&out)?;
                crate::data::binarize_batch(&p, rng)
            }
        }
    }

    /// The decoder mean at z ~ N(0, I): what sample grids usually show.
    pub fn sample_mean(&self, n: usize, rng: &mut Rng) -> Result<Tensor> {
        let z = rng::randn(rng, &[n, self.cfg.latent], self.dec_out.b.device())?;
        self.decode_mean(&z)
    }

    /// The decoder mean at the posterior mean: reconstructions.
    pub fn reconstruct(&self, x: &Tensor) -> Result<Tensor> {
        self.decode_mean(&self.encode(x)?.0)
    }
}

impl Family for VaeConfig {
    const MODELS: &'static [ModelInfo] = &[ModelInfo {
        name: "vae",
        summary: "VAE (Kingma & Welling 2014): ELBO training, importance-weighted log p (Burda et \
            al. 2016)",
        density: Density::Bound,
        training: Training::Likelihood,
        sampler: true,
        completion: false,
        encoder: true,
        features: Some("the encoder's mean code"),
        labels: Labels::Unused,
        scores: &[
            ScoreKind::Nll,
            ScoreKind::Bpd,
            ScoreKind::Elbo,
            ScoreKind::Recon,
            ScoreKind::Typicality,
            ScoreKind::Complexity,
        ],
        data: "binary (Bernoulli decoder) or real (Gaussian decoder)",
        flags: &["hidden", "latent", "iw_samples"],
    }];

    fn preset(_name: &str, shape: &[usize], unit_data: bool) -> Result<Self> {
        let likelihood = if unit_data { Likelihood::Bernoulli } else { Likelihood::Gaussian };
        Ok(Self {
            dim: shape.iter().product(),
            hidden: vec![512, 512],
            latent: 32,
            likelihood,
            iw_samples: 100,
        })
    }

    fn recipe(_name: &str, _shape: &[usize]) -> TrainConfig {
        TrainConfig { steps: 4000, ..TrainConfig::default() }
    }

    fn name(&self) -> &'static str {
        "vae"
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn needs(&self) -> Needs {
        Needs { binary: self.likelihood == Likelihood::Bernoulli, grey_levels: false }
    }

    fn configure(&mut self, flags: &ModelFlags, _data: &Dataset, _seed: u64) -> Result<()> {
        if let Some(h) = &flags.hidden {
            self.hidden = width_list("--hidden", h)?;
        }
        self.latent = flags.latent.unwrap_or(self.latent);
        self.iw_samples = flags.iw_samples.unwrap_or(self.iw_samples);
        Ok(())
    }

    fn build(&self, p: &mut Params, rng: &mut Rng, dev: &Device) -> Result<Box<dyn Net>> {
        Ok(Box::new(Vae::new(p, self, rng, dev)?))
    }
}

net!(Vae {
    density: yes,
    sampler: yes,
    sequential: no,
    encoder: yes,
    features: yes,
    objective: yes,
    adversarial: no,
    translator: no,
});

impl DensityModel for Vae {
    fn log_prob(&self, x: &Tensor, rng: &mut Rng) -> Result<Tensor> {
        Vae::log_prob(self, x, rng)
    }
}

impl Sampler for Vae {
    fn sample(&self, n: usize, rng: &mut Rng) -> Result<Tensor> {
        Vae::sample(self, n, rng)
    }
}

/// The encoder's mean.
impl Encoder for Vae {
    fn encode(&self, x: &Tensor) -> Result<Tensor> {
        Ok(Vae::encode(self, x)?.0)
    }
}

impl Features for Vae {
    fn features(&self, x: &Tensor) -> Result<Tensor> {
        Ok(Vae::encode(self, x)?.0)
    }
}

/// The negative ELBO, with its two parts.
impl Objective for Vae {
    fn loss(&self, x: &Tensor, rng: &mut Rng) -> Result<Losses> {
        let e = self.elbo(x, rng)?;
        let recon = e.recon.mean_all()?;
        let kl = e.kl.mean_all()?;
        let total = (&recon + &kl)?;
        Ok(Losses { total, parts: vec![("recon", recon), ("kl", kl)] })
    }
}
