//! MADE, the masked autoencoder for distribution estimation (Germain,
//! Gregor, Murray & Larochelle, ICML 2015).
//!
//! An MLP whose weight matrices are multiplied by 0/1 masks so that output d
//! depends only on inputs earlier than d in an ordering: every unit gets a
//! degree m(k); input d has degree m0(d) = its position in the ordering
//! (1..D); a hidden unit of layer l gets m_l(k) in [min m_{l-1}, D-1]; a
//! connection k' -> k is kept when m_l(k) >= m_{l-1}(k') (eq. 12) and an
//! output connection k -> d when m0(d) > m_L(k) (eq. 13).
//!
//! * **Connectivity-agnostic** training draws new hidden degrees for every
//!   minibatch, **order-agnostic** training a new input ordering too (both
//!   from the step's seeded RNG; section 4).
//! * **Mask ensembles** at test time: log p(x) = log (1/M) sum_m p_m(x), the
//!   average *probability* over M mask sets, itself a normalised density
//!   (a uniform mixture). Mask set 0 always uses the natural (raster) order;
//!   sets 1.. use random orders when order-agnostic. Every mask set is a pure
//!   function of (`mask_seed`, index), so the ensemble is reproducible.
//! * **Sampling** (from the mixture: a mask set per sample, then its order)
//!   computes every hidden unit exactly once: a unit of degree t-1 is final
//!   once the first t-1 inputs in the order are known, so step t computes
//!   only the units of degree t-1 in each layer and the one output it needs.
//!
//! Tensor names: `layer{l}.weight` `[in, out]`, `layer{l}.bias`, `out.weight`
//! `[H_L, D]`, `out.bias` `[D]`.

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::models::family::*;
use crate::models::family::{explicit_sequential, net};
use crate::models::Known;
use crate::models::{Losses, ModelFlags, Objective};
use crate::nn::{ops, Act, Linear, Params};
use crate::recipe::TrainConfig;
use crate::rng::{self, Rng};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MadeConfig {
    pub dim: usize,
    /// Hidden layer sizes (the paper's best binarized-MNIST model: one layer of 500, or two of
    /// 8000).
    #[serde(default = "default_hidden")]
    pub hidden: Vec<usize>,
    /// Draw new hidden degrees for every minibatch.
    #[serde(default)]
    pub connectivity_agnostic: bool,
    /// Draw a new input ordering for every minibatch.
    #[serde(default)]
    pub order_agnostic: bool,
    /// Mask sets averaged by `log_prob` (1 = mask set 0 only).
    #[serde(default = "one")]
    pub masks: usize,
    /// Seeds the mask sets used at test time.
    #[serde(default)]
    pub mask_seed: u64,
}

fn default_hidden() -> Vec<usize> {
    vec![500]
}
fn one() -> usize {
    1
}

/// One mask set: the ordering (degree of every input) and the 0/1 masks.
#[derive(Debug, Clone)]
pub struct MaskSet {
    /// m0(d): position of input d in the ordering, 1..=D.
    pub input_degree: Vec<usize>,
    /// m_l(k) for every hidden layer.
    pub hidden_degree: Vec<Vec<usize>>,
    /// `[in, out]` masks, one per hidden layer then the output layer.
    pub masks: Vec<Tensor>,
}

#[derive(Debug, Clone)]
pub struct Made {
    layers: Vec<Linear>,
    out: Linear,
    cfg: MadeConfig,
    /// The test-time ensemble (mask set 0 first).
    ensemble: Vec<MaskSet>,
}

impl Made {
    pub fn new(p: &mut Params, cfg: &MadeConfig, rng: &mut Rng, dev: &Device) -> Result<Self> {
        if cfg.hidden.is_empty() || cfg.hidden.contains(&0) {
            return Err(Error::config("made: hidden must list one or more positive layer sizes"));
        }
        if cfg.masks == 0 {
            return Err(Error::config("made: masks must be at least 1"));
        }
        if cfg.masks > 1 && !(cfg.connectivity_agnostic || cfg.order_agnostic) {
            return Err(Error::config(
                "made: an ensemble of masks (masks > 1) needs connectivity- \
                or order-agnostic training",
            ));
        }
        let mut layers = Vec::new();
        let mut d_in = cfg.dim;
        for (l, &h) in cfg.hidden.iter().enumerate() {
            layers.push(Linear::new(p, &format!("layer{l}"), d_in, h, rng, dev)?);
            d_in = h;
        }
        let out = Linear::new(p, "out", d_in, cfg.dim, rng, dev)?;
        let ensemble = (0..cfg.masks)
            .map(|m| {
                let mut r = rng::derived(cfg.mask_seed, "made-mask", m as u64);
                Self::draw_masks(cfg, m > 0 && cfg.order_agnostic, &mut r, dev)
            })
            .collect::<Result<_>>()?;
        Ok(Self { layers, out, cfg: cfg.clone(), ensemble })
    }

    /// Draws a mask set: a random ordering when `random_order`, else raster order.
    pub fn draw_masks(
        cfg: &MadeConfig,
        random_order: bool,
        r: &mut Rng,
        dev: &Device,
    ) -> Result<MaskSet> {
        use rand::Rng as _;
        let d = cfg.dim;
        let input_degree: Vec<usize> = if random_order {
            let perm = rng::permutation(r, d);
            let mut deg = vec![0; d];
            for (pos, &i) in perm.iter().enumerate() {
                deg[i] = pos + 1;
            }
            deg
        } else {
            (1..=d).collect()
        };
        let mut hidden_degree = Vec::new();
        let mut masks = Vec::new();
        let mut prev = input_degree.clone();
        let top = d.saturating_sub(1);
        for &h in &cfg.hidden {
            let lo = prev.iter().copied().min().unwrap_or(0).min(top);
            let deg: Vec<usize> = (0..h).map(|_| r.gen_range(lo..=top)).collect();
            masks.push(mask(&prev, &deg, |a, b| b >= a, dev)?);
            prev = deg.clone();
            hidden_degree.push(deg);
        }
        masks.push(mask(&prev, &input_degree, |a, b| b > a, dev)?);
        Ok(MaskSet { input_degree, hidden_degree, masks })
    }

    pub fn ensemble(&self) -> &[MaskSet] {
        &self.ensemble
    }

    /// Logits of p(x_d = 1 | inputs before d in the set's ordering).
    ///
    /// # Shapes
    /// `x: [B, D]` -> `[B, D]`
    pub fn logits_with(&self, x: &Tensor, set: &MaskSet) -> Result<Tensor> {
        let mut h = x.clone();
        for (layer, m) in self.layers.iter().zip(&set.masks) {
            let masked = Linear { w: (&layer.w * m)?, b: layer.b.clone() };
            h = masked.forward_act(&h, Act::Relu)?;
        }
        let out =
            Linear { w: (&self.out.w * &set.masks[self.layers.len()])?, b: self.out.b.clone() };
        out.forward(&h)
    }

    /// The first hidden layer under mask set 0, `[B, D]` -> `[B, H1]` (the features for `embed`).
    pub fn features(&self, x: &Tensor) -> Result<Tensor> {
        let layer = &self.layers[0];
        Linear { w: (&layer.w * &self.ensemble[0].masks[0])?, b: layer.b.clone() }
            .forward_act(x, Act::Relu)
    }

    /// Mask set 0 (raster order): the conditionals used for completion.
    pub fn logits(&self, x: &Tensor) -> Result<Tensor> {
        self.logits_with(x, &self.ensemble[0])
    }

    /// log p(x) under the test-time ensemble: log of the mean probability over the mask sets.
    ///
    /// # Shapes
    /// `x: [B, D]` -> `[B]`
    pub fn log_prob(&self, x: &Tensor) -> Result<Tensor> {
        let per: Vec<Tensor> = self
            .ensemble
            .iter()
            .map(|s| Ok(ops::bernoulli_log_prob_logits(&self.logits_with(x, s)?, x)?.sum(1)?))
            .collect::<Result<_>>()?;
        if per.len() == 1 {
            return Ok(per[0].clone());
        }
        Ok(ops::log_mean_exp(&Tensor::stack(&per, 0)?, 0)?)
    }

    /// The training loss: -log p under a mask set drawn from `rng` when
    /// training is connectivity- or order-agnostic, else under mask set 0.
    pub fn train_log_prob(&self, x: &Tensor, rng: &mut Rng) -> Result<Tensor> {
        if !(self.cfg.connectivity_agnostic || self.cfg.order_agnostic) {
            return Ok(ops::bernoulli_log_prob_logits(&self.logits(x)?, x)?.sum(1)?);
        }
        let set = Self::draw_masks(&self.cfg, self.cfg.order_agnostic, rng, x.device())?;
        Ok(ops::bernoulli_log_prob_logits(&self.logits_with(x, &set)?, x)?.sum(1)?)
    }

    /// Ancestral sampling from the ensemble (a mask set per sample, uniformly)
    /// or, with `known`, completion under mask set 0 in raster order. Each
    /// hidden unit is computed once per sample (see the module notes).
    /// Returns the samples `[n, D]` and log p of each under the mask set used.
    pub fn sample_ar(
        &self,
        n: usize,
        known: Option<&Known>,
        rng: &mut Rng,
    ) -> Result<(Tensor, Vec<f64>)> {
        use rand::Rng as _;
        let d = self.cfg.dim;
        let dev = self.out.b.device().clone();
        // Dense masked weights per mask set, as plain vectors.
        let sets: Vec<(Vec<Vec<f32>>, &MaskSet)> = self
            .ensemble
            .iter()
            .map(|s| {
                let mut ws = Vec::new();
                for (l, layer) in self.layers.iter().enumerate() {
                    ws.push((&layer.w * &s.masks[l])?.flatten_all()?.to_vec1::<f32>()?);
                }
                ws.push(
                    (&self.out.w * &s.masks[self.layers.len()])?.flatten_all()?.to_vec1::<f32>()?,
                );
                Ok((ws, s))
            })
            .collect::<Result<_>>()?;
        let biases: Vec<Vec<f32>> = self
            .layers
            .iter()
            .map(|l| l.b.to_vec1::<f32>())
            .chain(std::iter::once(self.out.b.to_vec1::<f32>()))
            .collect::<candle_core::Result<_>>()?;
        let mut out = vec![0f32; n * d];
        let mut lps = vec![0f64; n];
        for s in 0..n {
            let which =
                if known.is_some() || sets.len() == 1 { 0 } else { rng.gen_range(0..sets.len()) };
            let (ws, set) = &sets[which];
            // Inputs and units grouped by degree.
            let mut input_at = vec![0usize; d + 1];
            for (i, &m) in set.input_degree.iter().enumerate() {
                input_at[m] = i;
            }
            let by_degree: Vec<Vec<Vec<usize>>> = set
                .hidden_degree
                .iter()
                .map(|deg| {
                    let mut g = vec![Vec::new(); d.max(1)];
                    for (k, &m) in deg.iter().enumerate() {
                        g[m].push(k);
                    }
                    g
                })
                .collect();
            let mut acts: Vec<Vec<f32>> = self.cfg.hidden.iter().map(|&h| vec![0f32; h]).collect();
            let x = &mut out[s * d..(s + 1) * d];
            let mut lp = 0.0;
            for t in 1..=d {
                // Units of degree t-1 now have all their inputs.
                for l in 0..self.layers.len() {
                    let n_out = self.cfg.hidden[l];
                    let (prev, rest): (&[f32], &mut [Vec<f32>]) = if l == 0 {
                        (&x[..], &mut acts[..])
                    } else {
                        let (a, b) = acts.split_at_mut(l);
                        (&a[l - 1][..], b)
                    };
                    let w = &ws[l];
                    for &k in &by_degree[l][t - 1] {
                        let mut z = biases[l][k];
                        for (j, &v) in prev.iter().enumerate() {
                            if v != 0.0 {
                                z += v * w[j * n_out + k];
                            }
                        }
                        rest[0][k] = z.max(0.0);
                    }
                }
                let i = input_at[t];
                let wo = &ws[self.layers.len()];
                let hl = &acts[self.layers.len() - 1];
                let z = biases[self.layers.len()][i]
                    + hl.iter().enumerate().map(|(k, &h)| h * wo[k * d + i]).sum::<f32>();
                let kv = known.and_then(|k| k.get(s, i, d));
                let (v, l) = crate::dist::PixelOutput::Bernoulli.draw(&[z], kv, rng);
                x[i] = v;
                lp += l;
            }
            lps[s] = lp;
        }
        Ok((Tensor::from_vec(out, (n, d), &dev)?, lps))
    }
}

/// `mask[a, b] = keep(deg_in[a], deg_out[b])` as an `[in, out]` f32 tensor.
fn mask(
    deg_in: &[usize],
    deg_out: &[usize],
    keep: impl Fn(usize, usize) -> bool,
    dev: &Device,
) -> Result<Tensor> {
    let v: Vec<f32> = deg_in
        .iter()
        .flat_map(|&a| deg_out.iter().map(move |&b| (a, b)))
        .map(|(a, b)| if keep(a, b) { 1.0 } else { 0.0 })
        .collect();
    Ok(Tensor::from_vec(v, (deg_in.len(), deg_out.len()), dev)?)
}

impl Family for MadeConfig {
    const MODELS: &'static [ModelInfo] = &[ModelInfo {
        name: "made",
        summary: "MADE (Germain et al. 2015): masked MLP, order/connectivity-agnostic training, \
            mask ensembles",
        density: Density::Exact,
        training: Training::Likelihood,
        sampler: true,
        completion: true,
        encoder: false,
        features: Some("the first hidden layer"),
        labels: Labels::Unused,
        scores: DENSITY_SCORES,
        data: "binary",
        flags: &["hidden", "masks", "order_agnostic", "connectivity_agnostic"],
    }];

    fn preset(_name: &str, shape: &[usize], _unit_data: bool) -> Result<Self> {
        let dim = shape.iter().product();
        Ok(Self {
            dim,
            hidden: vec![500],
            connectivity_agnostic: false,
            order_agnostic: false,
            masks: 1,
            mask_seed: 0,
        })
    }

    fn recipe(_name: &str, _shape: &[usize]) -> TrainConfig {
        TrainConfig::default()
    }

    fn name(&self) -> &'static str {
        "made"
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn needs(&self) -> Needs {
        Needs { binary: true, grey_levels: false }
    }

    /// The test-time mask sets are seeded by the run seed.
    fn configure(&mut self, flags: &ModelFlags, _data: &Dataset, seed: u64) -> Result<()> {
        if let Some(h) = &flags.hidden {
            self.hidden = width_list("--hidden", h)?;
        }
        self.masks = flags.masks.unwrap_or(self.masks);
        self.order_agnostic |= flags.order_agnostic;
        self.connectivity_agnostic |= flags.connectivity_agnostic;
        self.mask_seed = seed;
        Ok(())
    }

    fn build(&self, p: &mut Params, rng: &mut Rng, dev: &Device) -> Result<Box<dyn Net>> {
        Ok(Box::new(Made::new(p, self, rng, dev)?))
    }
}

net!(Made {
    density: yes,
    sampler: yes,
    sequential: yes,
    encoder: no,
    features: yes,
    objective: yes,
    adversarial: no,
    translator: no,
});

explicit_sequential!(Made { conditionals: logits(logits), objective: own });

impl Features for Made {
    fn features(&self, x: &Tensor) -> Result<Tensor> {
        Made::features(self, x)
    }
}

/// Training draws a fresh mask set per step when agnostic.
impl Objective for Made {
    fn loss(&self, x: &Tensor, rng: &mut Rng) -> Result<Losses> {
        nll_loss(self.train_log_prob(x, rng)?)
    }
}
