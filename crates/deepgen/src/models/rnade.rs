//! RNADE, the real-valued neural autoregressive density estimator (Uria,
//! Murray & Larochelle, NIPS 2013).
//!
//! NADE's shared-weight recurrence with real inputs and a mixture of K
//! Gaussians per conditional (eqs. 3-6):
//!   a_d = c + W_{:,<d} x_<d,   h_d = relu(rho_d a_d),
//!   p(x_d | x_<d) = sum_k pi_dk N(x_d; mu_dk, sigma_dk^2),
//! with pi_d = softmax(V^alpha_d h_d + b^alpha_d), mu_d = V^mu_d h_d + b^mu_d
//! and sigma_d = exp(V^sigma_d h_d + b^sigma_d). The activation rescaling
//! rho_d (initialised to 1) is the paper's fix for the growing a_d.
//! `log_prob` is a density in nats (not a probability): it integrates to 1
//! over R^D. Dimension order is the data's column order.
//!
//! Tensor names: `W` `[D, H]` (row j = input j), `c` `[H]`, `rho` `[D]`,
//! `V` `[D, H, 3K]` (per dimension: K mixture logits, K means, K log-scales),
//! `b` `[D, 3K]`.

use candle_core::{Device, Tensor, D};
use serde::{Deserialize, Serialize};

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::models::family::*;
use crate::models::family::{explicit_sequential, net};
use crate::models::Known;
use crate::models::ModelFlags;
use crate::nn::Params;
use crate::recipe::TrainConfig;
use crate::rng::Rng;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RnadeConfig {
    pub dim: usize,
    #[serde(default = "default_hidden")]
    pub hidden: usize,
    /// Mixture components K per conditional.
    #[serde(default = "default_components")]
    pub components: usize,
}

fn default_hidden() -> usize {
    100
}
fn default_components() -> usize {
    5
}

#[derive(Debug, Clone)]
pub struct Rnade {
    w: Tensor,
    c: Tensor,
    rho: Tensor,
    v: Tensor,
    b: Tensor,
    /// mask[j, i] = 1 where j < i: which inputs feed conditional i.
    lower: Tensor,
    dim: usize,
    k: usize,
}

/// The mixture parameters of every conditional.
pub struct Mixture {
    /// log pi `[B, D, K]` (normalised).
    pub log_pi: Tensor,
    pub mu: Tensor,
    pub log_sigma: Tensor,
}

impl Rnade {
    pub fn new(p: &mut Params, cfg: &RnadeConfig, rng: &mut Rng, dev: &Device) -> Result<Self> {
        let (d, h, k) = (cfg.dim, cfg.hidden, cfg.components);
        if h == 0 || k == 0 {
            return Err(Error::config("rnade: hidden and components must be positive"));
        }
        let w = p.uniform_fan_in("W", &[d, h], d, rng, dev)?;
        let c = p.zeros("c", &[h], dev)?;
        let rho = p.add("rho", Tensor::ones(d, candle_core::DType::F32, dev)?)?;
        let v = p.uniform_fan_in("V", &[d, h, 3 * k], h, rng, dev)?;
        // Means spread over a standardised range at init so the components are not identical.
        let mut b0 = vec![0f32; d * 3 * k];
        for i in 0..d {
            for j in 0..k {
                b0[i * 3 * k + k + j] =
                    if k > 1 { -1.5 + 3.0 * j as f32 / (k - 1) as f32 } else { 0.0 };
            }
        }
        let b = p.add("b", Tensor::from_vec(b0, (d, 3 * k), dev)?)?;
        // The mask is no parameter (a checkpoint does not hold it) but may be as large as one.
        crate::limits::check_values("the rnade mask", (d as u64).saturating_mul(d as u64), 4)?;
        let m: Vec<f32> = (0..d * d).map(|q| if q / d < q % d { 1.0 } else { 0.0 }).collect();
        let lower = Tensor::from_vec(m, (d, d), dev)?;
        Ok(Self { w, c, rho, v, b, lower, dim: d, k })
    }

    /// Mixture parameters of every conditional p(x_d | x_<d).
    ///
    /// # Shapes
    /// `x: [B, D]` -> three `[B, D, K]`
    pub fn mixture(&self, x: &Tensor) -> Result<Mixture> {
        let (_, d) = x.dims2()?;
        // a[b, i, :] = c + sum_{j<i} x[b, j] W[j, :]
        let contrib = x.unsqueeze(2)?.broadcast_mul(&self.w.unsqueeze(0)?)?; // [B, D, H]: x_j W_j
        let a = self
            .lower
            .t()?
            .contiguous()?
            .unsqueeze(0)?
            .broadcast_matmul(&contrib)?
            .broadcast_add(&self.c)?; // exclusive prefix sum
        let h = a.broadcast_mul(&self.rho.reshape((1, d, 1))?)?.relu()?;
        // Per-dimension output layer: [D, B, H] x [D, H, 3K] -> [D, B, 3K].
        let o = h
            .transpose(0, 1)?
            .contiguous()?
            .matmul(&self.v)?
            .transpose(0, 1)?
            .broadcast_add(&self.b)?; // [B, D, 3K]
        let k = self.k;
        let logits = o.narrow(D::Minus1, 0, k)?;
        let mu = o.narrow(D::Minus1, k, k)?;
        let log_sigma = o.narrow(D::Minus1, 2 * k, k)?.clamp(-7f32, 7f32)?;
        let m = logits.max_keepdim(D::Minus1)?.detach();
        let lse = (logits.broadcast_sub(&m)?.exp()?.sum_keepdim(D::Minus1)?.log()? + &m)?;
        Ok(Mixture { log_pi: logits.broadcast_sub(&lse)?, mu, log_sigma })
    }

    /// Per-dimension log-densities log p(x_d | x_<d).
    ///
    /// # Shapes
    /// `x: [B, D]` -> `[B, D]`
    pub fn conditional_log_probs(&self, x: &Tensor) -> Result<Tensor> {
        let m = self.mixture(x)?;
        let z = x.unsqueeze(2)?.broadcast_sub(&m.mu)?.broadcast_div(&m.log_sigma.exp()?)?;
        let ln2pi = (2.0 * std::f64::consts::PI).ln();
        let comp = ((z.sqr()? * -0.5)? - &m.log_sigma)? - 0.5 * ln2pi; // log N per component
        let t = (comp + &m.log_pi)?;
        let mx = t.max_keepdim(D::Minus1)?.detach();
        Ok((t.broadcast_sub(&mx)?.exp()?.sum_keepdim(D::Minus1)?.log()? + mx)?
            .squeeze(D::Minus1)?)
    }

    /// # Shapes
    /// `x: [B, D]` -> `[B]` (nats of density)
    pub fn log_prob(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.conditional_log_probs(x)?.sum(1)?)
    }

    /// The conditionals as `[B, D, 3K]` (mixture logits, means, log-scales).
    pub fn conditionals(&self, x: &Tensor) -> Result<Tensor> {
        let m = self.mixture(x)?;
        Ok(Tensor::cat(&[&m.log_pi, &m.mu, &m.log_sigma], D::Minus1)?)
    }

    /// Ancestral sampling with the O(DH) recurrence: a_{d+1} = a_d + x_d W_d.
    /// Known values (completion) are kept. Returns samples and their log-density.
    pub fn sample_ar(
        &self,
        n: usize,
        known: Option<&Known>,
        rng: &mut Rng,
    ) -> Result<(Tensor, Vec<f64>)> {
        use rand::Rng as _;
        use rand_distr::{Distribution, StandardNormal};
        let (d, k) = (self.dim, self.k);
        let w = self.w.to_vec2::<f32>()?;
        let c = self.c.to_vec1::<f32>()?;
        let rho = self.rho.to_vec1::<f32>()?;
        let v = self.v.flatten_all()?.to_vec1::<f32>()?;
        let b = self.b.flatten_all()?.to_vec1::<f32>()?;
        let hn = c.len();
        let mut out = vec![0f32; n * d];
        let mut lps = vec![0f64; n];
        let mut o = vec![0f64; 3 * k];
        for s in 0..n {
            let mut a: Vec<f32> = c.clone();
            let mut lp = 0.0;
            for i in 0..d {
                o.iter_mut().enumerate().for_each(|(q, ov)| *ov = b[i * 3 * k + q] as f64);
                for (j, &aj) in a.iter().enumerate() {
                    let hj = (rho[i] * aj).max(0.0) as f64;
                    if hj != 0.0 {
                        let row = &v[(i * hn + j) * 3 * k..(i * hn + j + 1) * 3 * k];
                        o.iter_mut().zip(row).for_each(|(ov, &vv)| *ov += hj * vv as f64);
                    }
                }
                let mx = o[..k].iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let lse = mx + o[..k].iter().map(|l| (l - mx).exp()).sum::<f64>().ln();
                let x = match known.and_then(|kn| kn.get(s, i, d)) {
                    Some(x) => x as f64,
                    None => {
                        let u: f64 = rng.gen();
                        let mut acc = 0.0;
                        let comp = (0..k).position(|q| {
                            acc += (o[q] - lse).exp();
                            acc > u
                        });
                        let q = comp.unwrap_or(k - 1);
                        let e: f64 = StandardNormal.sample(rng);
                        o[k + q] + o[2 * k + q].clamp(-7.0, 7.0).exp() * e
                    }
                };
                // log sum_k pi_k N(x; mu_k, sigma_k)
                let terms: Vec<f64> = (0..k)
                    .map(|q| {
                        let ls = o[2 * k + q].clamp(-7.0, 7.0);
                        let z = (x - o[k + q]) / ls.exp();
                        o[q] - lse - 0.5 * z * z - ls - 0.5 * (2.0 * std::f64::consts::PI).ln()
                    })
                    .collect();
                let tm = terms.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                lp += tm + terms.iter().map(|t| (t - tm).exp()).sum::<f64>().ln();
                out[s * d + i] = x as f32;
                for (aj, &wj) in a.iter_mut().zip(&w[i]) {
                    *aj += x as f32 * wj;
                }
            }
            lps[s] = lp;
        }
        Ok((Tensor::from_vec(out, (n, d), self.w.device())?, lps))
    }
}

impl Family for RnadeConfig {
    const MODELS: &'static [ModelInfo] = &[ModelInfo {
        name: "rnade",
        summary: "RNADE (Uria et al. 2013): NADE with mixture-of-Gaussians conditionals for real \
            values",
        density: Density::Exact,
        training: Training::Likelihood,
        sampler: true,
        completion: true,
        encoder: false,
        features: None,
        labels: Labels::Unused,
        scores: DENSITY_SCORES,
        data: "real values (a density; --standardize recommended)",
        flags: &["hidden", "components"],
    }];

    fn preset(_name: &str, shape: &[usize], _unit_data: bool) -> Result<Self> {
        Ok(Self { dim: shape.iter().product(), hidden: 100, components: 5 })
    }

    fn recipe(_name: &str, _shape: &[usize]) -> TrainConfig {
        TrainConfig::default()
    }

    fn name(&self) -> &'static str {
        "rnade"
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn needs(&self) -> Needs {
        Needs { binary: false, grey_levels: false }
    }

    fn configure(&mut self, flags: &ModelFlags, _data: &Dataset, _seed: u64) -> Result<()> {
        if let Some(h) = &flags.hidden {
            self.hidden = width("--hidden", h)?;
        }
        self.components = flags.components.unwrap_or(self.components);
        Ok(())
    }

    fn build(&self, p: &mut Params, rng: &mut Rng, dev: &Device) -> Result<Box<dyn Net>> {
        Ok(Box::new(Rnade::new(p, self, rng, dev)?))
    }
}

net!(Rnade {
    density: yes,
    sampler: yes,
    sequential: yes,
    encoder: no,
    features: no,
    objective: yes,
    adversarial: no,
    translator: no,
});

explicit_sequential!(Rnade { conditionals: own, objective: nll });
