//! [`AdversarialTrainer`]: the one loop for every two-player model (all
//! GAN variants and the adversarial autoencoder). Its options, not the
//! models, decide n_critic, weight clipping, the gradient penalty and
//! unrolling; the models only say what is real, what is generated and how
//! the critic scores it ([`Adversarial`]).
//!
//! One iteration = `n_critic` critic updates (each on its own data batch),
//! then one generator update. Randomness is a pure function of (seed, step):
//! critic update i of iteration s draws from `derived(seed, "critic", s*n + i)`,
//! the generator update from `derived(seed, "generator", s)`.
//!
//! The translation games take more than one example per batch row ([`BatchRows`]): CycleGAN an
//! example of its second domain, drawn by a shuffle of its own (`derived(seed, "shuffle-b",
//! epoch)`), StarGAN the example's attribute vector; the game splits the row.
//!
//! Data-parallel (`crate::parallel`): every update (each critic update and the generator's) is
//! the mean of the step's shards' gradients; shard j's draws come from `rng::shard(seed, tag,
//! index, j)`, shard 0's being the streams above. Unrolling looks ahead on each shard's own
//! batch (the look-ahead's inner critic steps are not all-reduced), and a game's buffers (batch
//! norm's running statistics, CycleGAN's image pool) are rank 0's after every iteration.

use std::collections::HashMap;

use candle_core::{Tensor, Var};

use super::{Adam, AdversarialConfig, Batches, Hooks, StepRecord, TrainConfig};
use crate::data::{binarize_batch, Binarize, Dataset};
use crate::error::{Error, Result};
use crate::models::{Adversarial, BatchRows, Model, Progress, Side};
use crate::nn::{with_create_graph, with_input_graph, Params};
use crate::parallel::{GradSum, Parallel};
use crate::rng;

/// The critic's look-ahead ([`AdversarialTrainer::unrolled_weights`]).
struct LookAhead {
    /// The weights after the K steps.
    weights: Vec<Tensor>,
    steps: Vec<LookAheadStep>,
    /// Each generated batch: the generator's output (with its graph) and the leaf copy the critic
    /// saw.
    fakes: Vec<(Side, Side)>,
}

/// A generated batch as the look-ahead's critic sees it: the examples as a
/// leaf variable (the reverse pass reads dL/d batch there), the conditioning
/// and codes as constants.
/// (First-order unrolling needs no gradient there: `leaf` false gives a plain constant.)
fn leaf_copy(fake: &Side, leaf: bool) -> Result<Side> {
    let x = if leaf {
        Var::from_tensor(&fake.x.detach())?.as_tensor().clone()
    } else {
        fake.x.detach()
    };
    Ok(Side {
        x,
        cond: fake.cond.as_ref().map(|t| t.detach()),
        codes: fake.codes.as_ref().map(|t| t.detach()),
    })
}

/// `acc + t`, where an empty accumulator is zero.
fn accumulate(acc: Option<Tensor>, t: Tensor) -> Result<Tensor> {
    Ok(match acc {
        Some(a) => (a + t)?,
        None => t,
    })
}

struct LookAheadStep {
    /// The step's inputs (weights, m, v) as leaf variables; None at step 0 and when first-order.
    leaves: Option<[Vec<Var>; 3]>,
    /// The step's outputs (weights, m, v), functions of its leaves and its batch's leaf.
    next: [Vec<Tensor>; 3],
}

/// Builds a parameter set holding just `names` of `all`.
fn subset(all: &Params, names: &[String]) -> Result<Params> {
    let mut p = Params::new();
    for n in names {
        let v = all.get(n).ok_or_else(|| Error::config(format!("parameter `{n}` not found")))?;
        p.insert_var(n, v.clone())?;
    }
    Ok(p)
}

/// Alternating two-player training with two Adam optimisers.
pub struct AdversarialTrainer {
    pub cfg: TrainConfig,
    pub adv: AdversarialConfig,
    pub d_opt: Adam,
    pub g_opt: Adam,
    pub seed: u64,
    pub binarize: Binarize,
    /// The ranks this trainer's shards are spread over (one process by default).
    pub par: Parallel,
    batches: Batches,
    /// The second domain of a two-domain game (CycleGAN's B) and its batch order.
    domain_b: Option<(Dataset, Batches)>,
}

impl AdversarialTrainer {
    pub fn new(model: &Model, cfg: TrainConfig, seed: u64, binarize: Binarize) -> Result<Self> {
        cfg.check()?;
        let adv = cfg.adversarial.clone().unwrap_or_default();
        adv.check()?;
        let game = model.as_adversarial().ok_or_else(|| {
            Error::config(format!(
                "the {} model is not adversarial; it trains by likelihood",
                model.name()
            ))
        })?;
        let d_names: Vec<String> = game.d_weights().into_iter().map(|(n, _)| n).collect();
        let d_opt = Adam::new(&subset(&model.params, &d_names)?, cfg.optimizer)?;
        let g_opt = Adam::new(&subset(&model.params, &game.g_names())?, cfg.optimizer)?;
        game.check_batch(cfg.batch_size)?;
        let batches = Batches::new(seed, cfg.batch_size * cfg.shards);
        let par = Parallel::local();
        Ok(Self { cfg, adv, d_opt, g_opt, seed, binarize, par, batches, domain_b: None })
    }

    /// Spreads the shards over the ranks of `par` (data-parallel training).
    pub fn with_parallel(mut self, par: Parallel) -> Result<Self> {
        par.check_shards(self.cfg.shards)?;
        self.par = par;
        Ok(self)
    }

    /// Gives a two-domain game (CycleGAN) its second, unpaired domain.
    pub fn with_domain_b(mut self, b: Dataset) -> Self {
        let batches = Batches::other(self.seed, self.cfg.batch_size * self.cfg.shards, "shuffle-b");
        self.domain_b = Some((b, batches));
        self
    }

    /// The second domain of a two-domain game, if given.
    pub fn domain_b(&self) -> Option<&Dataset> {
        self.domain_b.as_ref().map(|(d, _)| d)
    }

    /// Completed iterations (generator updates).
    pub fn step_count(&self) -> usize {
        self.g_opt.step
    }

    /// The critic's learning rate at iteration `step`: `d_lr` under the
    /// generator's warm-up and the critic's schedule (by default the generator's).
    pub fn d_lr_at(&self, step: usize) -> f64 {
        self.adv.d_lr * self.cfg.lr_factor(self.adv.d_schedule.unwrap_or(self.cfg.schedule), step)
    }

    /// Sets both optimisers' step counters after loading their state at iteration `step`.
    pub fn set_step(&mut self, step: usize) {
        self.g_opt.step = step;
        self.d_opt.step = step * self.adv.n_critic;
    }

    /// Shard `shard` of batch `k`: the examples (with what [`BatchRows`] asks for appended) and
    /// their labels.
    #[allow(clippy::too_many_arguments)]
    fn data(
        &mut self,
        train: &Dataset,
        k: usize,
        shard: usize,
        rows: BatchRows,
        vocab: Option<&crate::data::captions::Vocab>,
        dev: &candle_core::Device,
        r: &mut rng::Rng,
    ) -> Result<(Tensor, Option<Vec<u32>>)> {
        let shards = self.cfg.shards;
        let cut = |idx: Vec<usize>| {
            let b = idx.len() / shards;
            idx[shard * b..(shard + 1) * b].to_vec()
        };
        let idx = cut(self.batches.indices(train.n, k));
        let x = train.batch(&idx, dev)?;
        let mut x = if self.binarize == Binarize::Dynamic { binarize_batch(&x, r)? } else { x };
        x = super::with_captions(x, vocab, train, &idx, r)?;
        let labels = train.labels.as_ref().map(|l| idx.iter().map(|&i| l[i]).collect());
        if rows.domain_b {
            let (b, batches) = self.domain_b.as_mut().ok_or_else(|| {
                Error::config(
                    "this model translates between two domains: give the second one (--data-b)",
                )
            })?;
            let xb = b.batch(&cut(batches.indices(b.n, k)), dev)?;
            let xb = if self.binarize == Binarize::Dynamic { binarize_batch(&xb, r)? } else { xb };
            x = Tensor::cat(&[&x, &xb], 1)?;
        }
        if rows.attributes {
            let a = train.attributes.as_ref().ok_or_else(|| {
                Error::config(format!("{}: the data has no attribute labels", train.source))
            })?;
            let w = crate::data::attributes::width(&a.columns);
            let enc = Tensor::from_vec(a.encode_rows(&idx), (idx.len(), w), dev)?;
            x = Tensor::cat(&[&x, &enc], 1)?;
        }
        Ok((x, labels))
    }

    /// The critic's loss on (real, fake) under weights `ws`, with the game's further fakes
    /// (`extras`, weighted; [`Adversarial::extra_fakes`]), InfoGAN's term and the drift penalty
    /// epsilon E[D(x)^2] on the real batch; parts logged.
    pub fn critic_loss(
        game: &dyn Adversarial,
        real: &Side,
        fake: &Side,
        extras: &[(Side, f64)],
        ws: &[Tensor],
        drift: Option<f64>,
        parts: &mut Vec<(&'static str, Tensor)>,
    ) -> Result<Tensor> {
        let (vr, qr) = game.critic(real, ws)?;
        let (vf, q) = game.critic(fake, ws)?;
        let terms = game.loss().critic(&vr, &vf)?;
        parts.push(("critic_estimate", terms.estimate.clone()));
        let mut loss = terms.loss;
        // Further fakes (GAN-CLS, the puzzle GAN): the loss is a real term plus weighted fake
        // terms, the generated batch's weighted by the game's `fake_weight`.
        if !extras.is_empty() {
            let w = game.fake_weight();
            if w != 1.0 {
                loss = (loss + (game.loss().fake_term(&vf)? * (w - 1.0))?)?;
            }
            for (side, w) in extras {
                let (ve, _) = game.critic(side, ws)?;
                loss = (loss + (game.loss().fake_term(&ve)? * *w)?)?;
            }
        }
        if let Some(eps) = drift {
            let d = (vr.sqr()?.mean_all()? * eps)?;
            parts.push(("drift", d.clone()));
            loss = (loss + d)?;
        }
        if let Some(qr) = &qr {
            for (name, t) in game.real_head_loss(qr, real)? {
                loss = (loss + &t)?;
                parts.push((name, t));
            }
        }
        if let (Some(q), Some(c)) = (q, fake.codes.as_ref()) {
            if let Some((nll, bound)) = game.info_loss(&q, c)? {
                loss = (loss + (nll * game.info_weight())?)?;
                parts.push(("mi_bound", bound));
            }
        }
        Ok(loss)
    }

    /// The gradient penalty lambda E[(||grad D(x_hat)||_2 - 1)^2] at x_hat = e x_r + (1 - e) x_f, e
    /// ~ U(0, 1) per example
    /// (per group of examples for a packed critic, whose input is the group).
    pub fn gradient_penalty(
        game: &dyn Adversarial,
        real: &Side,
        fake: &Side,
        ws: &[Tensor],
        lambda: f64,
        r: &mut rng::Rng,
    ) -> Result<Tensor> {
        let n = real.x.dim(0)?;
        let e = rng::uniform(r, &[n, 1], 0.0, 1.0, real.x.device())?;
        let xr = real.x.detach();
        let xf = fake.x.detach();
        let xhat = (xr.broadcast_mul(&e)? + xf.broadcast_mul(&(1.0 - &e)?)?)?;
        let xhat = Var::from_tensor(&xhat)?;
        with_input_graph(|| -> Result<Tensor> {
            let side = Side { x: xhat.as_tensor().clone(), cond: real.cond.clone(), codes: None };
            let (v, _) = game.critic(&side, ws)?;
            let grads = v.sum_all()?.backward()?;
            let g = grads.get(xhat.as_tensor()).ok_or_else(|| {
                Error::config("gradient penalty: no gradient at the interpolates")
            })?;
            // A packed critic's input is a group of `pack` examples: the norm is over the group.
            let g = g.reshape((n / game.pack(), ()))?;
            let norm = (g.sqr()?.sum(1)? + 1e-12)?.sqrt()?;
            Ok(((norm - 1.0)?.sqr()?.mean_all()? * lambda)?)
        })
    }

    /// The critic's weights after `K` Adam steps taken from its current state
    /// (on fresh generated batches, or one shared batch), as values. The
    /// generator's loss differentiates through these steps with
    /// [`AdversarialTrainer::generator_loss`].
    pub fn unrolled_weights(
        &self,
        game: &dyn Adversarial,
        x: &Tensor,
        labels: Option<&[u32]>,
        r: &mut rng::Rng,
    ) -> Result<Vec<Tensor>> {
        Ok(self.look_ahead(game, x, labels, r)?.weights.iter().map(|w| w.detach()).collect())
    }

    /// Runs the K look-ahead steps of the critic's Adam. With second-order
    /// unrolling, each step starts from fresh leaf variables holding the
    /// previous step's (weights, m, v) and sees the generated batch through a
    /// leaf too, so its gradient (taken with a graph) depends only on
    /// that step's leaves: [`Self::generator_loss`] then runs reverse mode one
    /// step at a time. (candle's `backward` has no `inputs=` argument and walks
    /// every tracked ancestor: one graph through all K steps and the
    /// generator made each inner backward pass re-traverse the earlier steps
    /// and the generator, 3-4x slower on the grid players.)
    fn look_ahead(
        &self,
        game: &dyn Adversarial,
        x: &Tensor,
        labels: Option<&[u32]>,
        r: &mut rng::Rng,
    ) -> Result<LookAhead> {
        let vars: Vec<Var> = game.d_weights().into_iter().map(|(_, v)| v).collect();
        // The generator's update never uses the critic's own gradients (the
        // generator's optimiser steps only its weights), so the critic's
        // weights enter as constants: the backward pass then skips their
        // weight-gradient GEMMs (see the fused ops' `track_op` checks).
        let mut ws: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().detach()).collect();
        let mut out = LookAhead { weights: ws.clone(), steps: vec![], fakes: vec![] };
        if self.adv.unroll == 0 {
            return Ok(out);
        }
        let second = !self.adv.first_order;
        let c = &self.cfg.optimizer;
        // The critic optimiser's moments, as constants.
        let state = self.d_opt.moments();
        let mut m: Vec<Tensor> = Vec::with_capacity(ws.len());
        let mut v: Vec<Tensor> = Vec::with_capacity(ws.len());
        for (w, var) in ws.iter().zip(&vars) {
            let mv = state
                .iter()
                .find(|(t, _)| t.id() == var.as_tensor().id())
                .map(|(_, mv)| mv.clone());
            match mv {
                Some(mv) => {
                    m.push(mv.get(0)?.reshape(w.shape())?.detach());
                    v.push(mv.get(1)?.reshape(w.shape())?.detach());
                }
                None => {
                    return Err(Error::config("unrolling: a critic weight has no optimiser state"))
                }
            }
        }
        let t0 = self.d_opt.step;
        let d_lr = self.d_lr_at(self.g_opt.step);
        let draw = |r: &mut rng::Rng, out: &mut LookAhead| -> Result<(Side, usize)> {
            let real = game.real(x, labels, r)?;
            let fake = game.fake(x, labels, r)?;
            let seen = leaf_copy(&fake, second)?;
            out.fakes.push((fake, seen));
            Ok((real, out.fakes.len() - 1))
        };
        let shared = if self.adv.unroll_same_batch { Some(draw(r, &mut out)?) } else { None };
        for k in 0..self.adv.unroll {
            // Step k's inputs: constants at k = 0 (and throughout when first-order), leaves after.
            let leaves = if second && k > 0 {
                let leaf = |ts: &[Tensor]| {
                    ts.iter()
                        .map(|t| Var::from_tensor(&t.detach()))
                        .collect::<candle_core::Result<Vec<Var>>>()
                };
                let l = [leaf(&ws)?, leaf(&m)?, leaf(&v)?];
                ws = l[0].iter().map(|v| v.as_tensor().clone()).collect();
                m = l[1].iter().map(|v| v.as_tensor().clone()).collect();
                v = l[2].iter().map(|v| v.as_tensor().clone()).collect();
                Some(l)
            } else {
                ws = ws.iter().map(|w| w.detach()).collect();
                None
            };
            // candle keeps gradients only for variables (it drops those of
            // intermediate tensors as it goes), so the critic runs on
            // ws + p with a zero variable p per weight: dL/dp = dL/dws, and
            // (with the graph kept) it stays a function of the step's leaves.
            let probes: Vec<Var> = ws
                .iter()
                .map(|w| Var::zeros(w.shape(), w.dtype(), w.device()))
                .collect::<candle_core::Result<_>>()?;
            let probed: Vec<Tensor> = ws
                .iter()
                .zip(&probes)
                .map(|(w, p)| w + p.as_tensor())
                .collect::<candle_core::Result<_>>()?;
            let fresh;
            let (real, fake) = match &shared {
                Some((real, i)) => (real, *i),
                None => {
                    fresh = draw(r, &mut out)?;
                    (&fresh.0, fresh.1)
                }
            };
            let seen = &out.fakes[fake].1;
            let step = || -> Result<candle_core::backprop::GradStore> {
                let loss =
                    Self::critic_loss(game, real, seen, &[], &probed, self.adv.drift, &mut vec![])?;
                Ok(loss.backward()?)
            };
            let grads = if second { with_create_graph(step)? } else { step()? };
            let t = (t0 + k + 1) as i32;
            let (c1, c2) = (1.0 - c.beta1.powi(t), 1.0 - c.beta2.powi(t));
            for i in 0..ws.len() {
                let g = match grads.get(probes[i].as_tensor()) {
                    Some(g) if second => g.clone(),
                    Some(g) => g.detach(),
                    None => Tensor::zeros_like(&ws[i])?,
                };
                m[i] = ((&m[i] * c.beta1)? + (&g * (1.0 - c.beta1))?)?;
                v[i] = ((&v[i] * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?;
                // sqrt(v + 1e-30): finite derivative where a weight's gradient has been exactly 0
                // throughout.
                let denom = (((&v[i] / c2)? + 1e-30)?.sqrt()? + c.eps)?;
                ws[i] = (&ws[i] - ((&m[i] / c1)? / denom)? * d_lr)?;
            }
            out.steps.push(LookAheadStep { leaves, next: [ws.clone(), m.clone(), v.clone()] });
        }
        if !second {
            ws = ws.iter().map(|w| w.detach()).collect();
        }
        out.weights = ws;
        Ok(out)
    }

    /// The generator's loss for one update (exposed for gradient checks): adversarial term
    /// through the (possibly unrolled) critic, InfoGAN's term, extras.
    ///
    /// With second-order unrolling the value is the loss, and its gradient is
    /// the generator's total derivative through the K look-ahead steps,
    /// computed here by reverse mode one step at a time (see
    /// [`Self::look_ahead`]) and handed to the generator as
    /// `L + (T - T.detach())`, T = sum_i <G output_i, dL/d(batch i)>.
    pub fn generator_loss(
        &self,
        game: &dyn Adversarial,
        x: &Tensor,
        labels: Option<&[u32]>,
        r: &mut rng::Rng,
        parts: &mut Vec<(&'static str, Tensor)>,
    ) -> Result<Tensor> {
        let mut ur = r.clone();
        let mut la = self.look_ahead(game, x, labels, &mut ur)?;
        let second = self.adv.unroll > 0 && !self.adv.first_order;
        // The batch the generator's loss is taken on: with one shared batch, that batch
        // (Metz et al.'s reference code); otherwise a fresh one.
        let (fake, seen_at) = if second && self.adv.unroll_same_batch {
            (la.fakes[0].0.clone(), 0)
        } else {
            let fake = game.fake(x, labels, r)?;
            if second {
                la.fakes.push((fake.clone(), leaf_copy(&fake, true)?));
                (fake, la.fakes.len() - 1)
            } else {
                (fake, usize::MAX)
            }
        };
        let final_w: Vec<Var> = if second {
            la.weights
                .iter()
                .map(|w| Var::from_tensor(&w.detach()))
                .collect::<candle_core::Result<_>>()?
        } else {
            vec![]
        };
        let ws: Vec<Tensor> = if second {
            final_w.iter().map(|v| v.as_tensor().clone()).collect()
        } else {
            la.weights.clone()
        };
        let critic_side = if second { &la.fakes[seen_at].1 } else { &fake };
        let (vf, q) = game.critic(critic_side, &ws)?;
        let adv = game.loss().generator(&vf)?;
        parts.push(("g_adv", adv.clone()));
        let mut loss = (adv * game.adv_weight())?;
        if let (Some(q), Some(c)) = (&q, critic_side.codes.as_ref()) {
            if let Some((nll, _)) = game.info_loss(q, c)? {
                loss = (loss + (nll * game.info_weight())?)?;
            }
        }
        if second {
            loss = (loss.detach() + Self::reverse_through_look_ahead(&la, &loss, &final_w)?)?;
        }
        for (name, t) in game.generator_extra(x, &fake, q.as_ref())? {
            loss = (loss + &t)?;
            parts.push((name, t));
        }
        Ok(loss)
    }

    /// Reverse mode through the look-ahead, last step first: returns T - T.detach()
    /// (value 0), T = sum over generated batches of <G output, dL/d(batch)>.
    fn reverse_through_look_ahead(
        la: &LookAhead,
        loss: &Tensor,
        final_w: &[Var],
    ) -> Result<Tensor> {
        let mut d_fake: Vec<Option<Tensor>> = vec![None; la.fakes.len()];
        let add_fake = |d_fake: &mut Vec<Option<Tensor>>,
                        grads: &candle_core::backprop::GradStore|
         -> Result<()> {
            for (i, (_, seen)) in la.fakes.iter().enumerate() {
                if let Some(g) = grads.get(&seen.x) {
                    d_fake[i] = Some(accumulate(d_fake[i].take(), g.detach())?);
                }
            }
            Ok(())
        };
        // Gradients come back with graphs when second-order differentiation is
        // on (CANDLE_GRAD_DO_NOT_DETACH); the adjoints are constants.
        let get =
            |grads: &candle_core::backprop::GradStore, t: &Tensor| grads.get(t).map(|g| g.detach());
        let grads = loss.backward()?;
        add_fake(&mut d_fake, &grads)?;
        // The adjoint of the state after step k: (weights, m, v); the final loss sees only the
        // weights.
        let mut adj: [Vec<Option<Tensor>>; 3] = [
            final_w.iter().map(|w| get(&grads, w.as_tensor())).collect(),
            vec![None; final_w.len()],
            vec![None; final_w.len()],
        ];
        for step in la.steps.iter().rev() {
            let mut s: Option<Tensor> = None;
            for (outs, lambdas) in step.next.iter().zip(&adj) {
                for (o, l) in outs.iter().zip(lambdas) {
                    if let Some(l) = l {
                        s = Some(accumulate(s, (o * l)?.sum_all()?)?);
                    }
                }
            }
            let Some(s) = s else { break };
            let grads = s.backward()?;
            add_fake(&mut d_fake, &grads)?;
            adj = match &step.leaves {
                Some(l) => {
                    [0, 1, 2].map(|j| l[j].iter().map(|v| get(&grads, v.as_tensor())).collect())
                }
                None => break,
            };
        }
        let mut t: Option<Tensor> = None;
        for ((fake, _), d) in la.fakes.iter().zip(&d_fake) {
            if let Some(d) = d {
                t = Some(accumulate(t, (&fake.x * d)?.sum_all()?)?);
            }
        }
        Ok(match t {
            Some(t) => (&t - t.detach())?,
            None => loss.zeros_like()?,
        })
    }

    /// Examples the critic sees per iteration (over all shards: a growing game's schedule counts
    /// the images shown, so more shards per step reach each phase in fewer steps).
    fn per_step(&self) -> u64 {
        (self.cfg.batch_size * self.cfg.shards * self.adv.n_critic) as u64
    }

    /// The first iteration of the phase a growing game is in after `images` examples shown.
    fn phase_start_step(&self, p: &Progress) -> usize {
        p.phase_start.div_ceil(self.per_step()) as usize
    }

    /// Moves a growing game to iteration `step` and restarts both optimisers where a phase
    /// begins (Karras et al.'s reference code resets Adam whenever the level of detail crosses
    /// an integer: at every fade-in and every stabilisation); on resume the bias correction's
    /// origin is recomputed from the step, so a mid-phase resume continues exactly.
    fn advance(&mut self, game: &dyn Adversarial, step: usize) -> Result<Option<Progress>> {
        let images = step as u64 * self.per_step();
        let Some(p) = game.progress(images) else { return Ok(None) };
        game.advance(images)?;
        let start = self.phase_start_step(&p);
        if start == step && step > 0 && self.g_opt.since != step {
            self.g_opt.restart()?;
            self.d_opt.restart()?;
        }
        self.g_opt.since = start;
        self.d_opt.since = start * self.adv.n_critic;
        Ok(Some(p))
    }

    /// One iteration: `n_critic` critic updates, one generator update. `step` is 0-based.
    pub fn step(&mut self, model: &Model, train: &Dataset, step: usize) -> Result<StepRecord> {
        let game =
            model.as_adversarial().ok_or_else(|| Error::config("not an adversarial model"))?;
        let progress = self.advance(game, step)?;
        let dev = model
            .params
            .vars()
            .next()
            .map(|(_, v)| v.device().clone())
            .unwrap_or(candle_core::Device::Cpu);
        let d_vars: Vec<Var> = game.d_weights().into_iter().map(|(_, v)| v).collect();
        let par = self.par.clone();
        let (owned, total) = (par.owned(self.cfg.shards), self.cfg.shards);
        let alone = total == 1 && par.size() == 1;
        let mut parts: Vec<(String, f64)> = Vec::new();
        let mut last = Vec::new();
        let mut d_loss_val = 0.0;
        for i in 0..self.adv.n_critic {
            let k = step * self.adv.n_critic + i;
            let mut sum = GradSum::new(&par, self.d_opt.vars(), total);
            last.clear();
            for &j in &owned {
                let mut r = rng::shard(self.seed, "critic", k as u64, j);
                let rows = game.batch_rows();
                let (x, labels) = self.data(train, k, j, rows, game.vocab(), &dev, &mut r)?;
                let real = game.real(&x, labels.as_deref(), &mut r)?;
                let fake = game.fake(&x, labels.as_deref(), &mut r)?;
                let fake = Side { x: fake.x.detach(), cond: fake.cond, codes: fake.codes };
                let fake = game.critic_fakes(fake, &mut r)?;
                let ws: Vec<Tensor> = d_vars.iter().map(|v| v.as_tensor().clone()).collect();
                let mut shard_parts = Vec::new();
                let extras = game.extra_fakes(&real, &fake, &mut r)?;
                let drift = self.adv.drift;
                let mut loss =
                    Self::critic_loss(game, &real, &fake, &extras, &ws, drift, &mut shard_parts)?;
                shard_parts.push(("d_loss", loss.clone()));
                if let Some(l) = self.adv.gp {
                    let gp = Self::gradient_penalty(game, &real, &fake, &ws, l, &mut r)?;
                    shard_parts.push(("gp", gp.clone()));
                    loss = (loss + gp)?;
                }
                // The backward pass is queued before the loss and its parts are read back, in
                // one transfer (on a GPU, one synchronisation, with the backward already queued).
                let grads = loss.backward()?;
                shard_parts.push((CRITIC, loss));
                let scalars = values(&shard_parts)?;
                let value = scalars.last().map_or(f64::NAN, |(_, v)| *v);
                if !value.is_finite() && alone {
                    return Err(Self::non_finite(step, "critic loss", value));
                }
                sum.add(grads, scalars)?;
                last.push((x, labels));
            }
            let (grads, mut scalars) = sum.reduce()?;
            d_loss_val = take(&mut scalars, CRITIC);
            if !d_loss_val.is_finite() {
                return Err(Self::non_finite(step, "critic loss", d_loss_val));
            }
            parts = scalars;
            self.d_opt.step(&grads, self.d_lr_at(step), 1.0)?;
            if let Some(c) = self.adv.clip {
                for v in &d_vars {
                    v.set(&v.as_tensor().clamp(-c, c)?)?;
                }
            }
        }
        if last.is_empty() {
            return Err(Error::config("n_critic must be at least 1"));
        }
        let mut sum = GradSum::new(&par, self.g_opt.vars(), total);
        // Alone, the generator's gradient norm is read back with its loss (one transfer).
        let mut norm = None;
        for (&j, (x, labels)) in owned.iter().zip(&last) {
            let mut r = rng::shard(self.seed, "generator", step as u64, j);
            let mut g_parts = Vec::new();
            let g_loss = self.generator_loss(game, x, labels.as_deref(), &mut r, &mut g_parts)?;
            let grads = g_loss.backward()?;
            g_parts.push(("g_loss", g_loss));
            let squares = if alone { self.g_opt.grad_square_sums(&grads)? } else { vec![] };
            let (scalars, sq) = values_and(&g_parts, &squares)?;
            norm = alone.then(|| crate::optim::norm_of(&sq));
            let value = scalars.last().map_or(f64::NAN, |(_, v)| *v);
            if !value.is_finite() && alone {
                return Err(Self::non_finite(step, "generator loss", value));
            }
            sum.add(grads, scalars)?;
        }
        let (grads, g_scalars) = sum.reduce()?;
        let g_val = g_scalars.iter().find(|(k, _)| k == "g_loss").map_or(f64::NAN, |(_, v)| *v);
        if !g_val.is_finite() {
            return Err(Self::non_finite(step, "generator loss", g_val));
        }
        let grad_norm = match norm {
            Some(n) => n,
            None => self.g_opt.grad_norm(&grads)?,
        };
        if !grad_norm.is_finite() {
            return Err(Self::non_finite(step, "generator gradient norm", grad_norm));
        }
        let lr = self.cfg.lr_at(step);
        self.g_opt.step(&grads, lr, 1.0)?;
        game.after_generator_step()?;
        if par.size() > 1 {
            par.broadcast_vars(&self.buffers(model))?;
        }
        let mut out: HashMap<String, f64> = parts.into_iter().collect();
        out.extend(g_scalars);
        if let Some(p) = &progress {
            out.insert("resolution".into(), p.resolution as f64);
            out.insert("alpha".into(), p.alpha);
        }
        let phase = progress.map(|p| p.label);
        Ok(StepRecord { step: step + 1, loss: d_loss_val, parts: out, lr, grad_norm, phase })
    }

    fn non_finite(step: usize, what: &str, value: f64) -> Error {
        Error::NonFinite { step: step + 1, what: format!("{what} = {value}"), kept: None }
    }

    /// The model's state no optimiser trains (batch norm's running statistics, the generator's
    /// average, CycleGAN's image pool): rank 0's is every rank's after each iteration.
    fn buffers(&self, model: &Model) -> Vec<Var> {
        let trained: std::collections::HashSet<_> = self
            .d_opt
            .vars()
            .iter()
            .chain(&self.g_opt.vars())
            .map(|v| v.as_tensor().id())
            .collect();
        model
            .params
            .vars()
            .filter(|(_, v)| !trained.contains(&v.as_tensor().id()))
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Trains up to `cfg.steps` iterations (see [`super::LikelihoodTrainer::fit`] for the thread
    /// pool).
    pub fn fit(
        &mut self,
        model: &Model,
        train: &Dataset,
        hooks: &mut (dyn Hooks + Send),
    ) -> Result<()> {
        super::in_pool(|| self.fit_here(model, train, hooks))
    }

    fn fit_here(
        &mut self,
        model: &Model,
        train: &Dataset,
        hooks: &mut (dyn Hooks + Send),
    ) -> Result<()> {
        model.check_dim(train.dim(), &train.source)?;
        let game =
            model.as_adversarial().ok_or_else(|| Error::config("not an adversarial model"))?;
        game.check_data(train)?;
        if game.batch_rows().domain_b {
            let (b, _) = self.domain_b.as_ref().ok_or_else(|| {
                Error::config(format!(
                    "the {} model translates between two domains: give the second one \
                    (--data-b)",
                    model.name()
                ))
            })?;
            model.check_dim(b.dim(), &b.source)?;
            // One row holds an example of each domain: both must fill a batch.
            if let Some(d) = [train, b].into_iter().find(|d| d.n < self.cfg.batch_size) {
                return Err(Error::config(format!(
                    "{}: {} examples, fewer than --batch-size {} (each batch row pairs an \
                    example of each domain)",
                    d.source, d.n, self.cfg.batch_size
                )));
            }
        }
        super::check_fills(train, self.cfg.batch_size, self.cfg.shards)?;
        if let Some((b, _)) = &self.domain_b {
            super::check_fills(b, self.cfg.batch_size, self.cfg.shards)?;
        }
        let par = self.par.clone();
        par.start(&model.params, &[&self.g_opt, &self.d_opt])?;
        par.set_training(true);
        let mut kept = (self.step_count() > 0).then_some(self.step_count());
        while self.step_count() < self.cfg.steps {
            let s = self.step_count();
            let rec = self.step(model, train, s).map_err(|e| super::with_kept(e, kept))?;
            hooks.on_step(&rec)?;
            let done = self.step_count();
            // The last iteration of a stable phase: the run draws that resolution's samples.
            let now = game.progress(s as u64 * self.per_step());
            let next = game.progress(done as u64 * self.per_step());
            if let (Some(now), Some(next)) = (now, next) {
                if now.alpha == 1.0 && self.phase_start_step(&next) == done && done > s {
                    hooks.on_stable_phase_end(model, done)?;
                }
            }
            let due = done.is_multiple_of(self.cfg.eval_every) || done == self.cfg.steps;
            let opts = [&self.g_opt, &self.d_opt];
            kept = super::after_step(hooks, model, &opts, done, due, kept, &par)?;
        }
        par.set_training(false);
        Ok(())
    }
}

/// The name the critic's total loss (with its penalty) travels under among a shard's values.
const CRITIC: &str = "\u{0}critic";

/// Logged tensors as (name, value) pairs.
fn values(parts: &[(&'static str, Tensor)]) -> Result<Vec<(String, f64)>> {
    Ok(values_and(parts, &[])?.0)
}

/// Logged values by name.
type Named = Vec<(String, f64)>;

/// [`values`] and the values of `more` scalar tensors, read back in the same transfer.
fn values_and(parts: &[(&'static str, Tensor)], more: &[Tensor]) -> Result<(Named, Vec<f64>)> {
    let all: Vec<&Tensor> = parts.iter().map(|(_, v)| v).chain(more).collect();
    let read = super::scalars_of(&all)?;
    let (named, rest) = read.split_at(parts.len());
    let named = parts.iter().zip(named).map(|((k, _), v)| (k.to_string(), *v)).collect();
    Ok((named, rest.to_vec()))
}

/// Removes `name`'s value from `scalars` (NaN when absent).
fn take(scalars: &mut Vec<(String, f64)>, name: &str) -> f64 {
    match scalars.iter().position(|(k, _)| k == name) {
        Some(i) => scalars.remove(i).1,
        None => f64::NAN,
    }
}
