//! Training. One trainer per training style: [`LikelihoodTrainer`] fits every
//! model that has an [`Objective`] (exact NLL or negative ELBO); models never
//! own a loop.
//!
//! Batches and noise are a pure function of (seed, step): epoch e's order is a
//! permutation drawn from `derived(seed, "shuffle", e)`, step s's noise from
//! `derived(seed, "step", s)`. With the optimizer state saved, a resumed run
//! computes exactly what the uninterrupted run would have.
//!
//! Data-parallel training (`crate::parallel`) cuts each step's batch into `cfg.shards` shards;
//! shard j draws from `rng::shard(seed, "step", s, j)` (shard 0's stream is the one above), each
//! rank computes its shards, and the trainer steps on the mean of all shards' gradients.

pub mod adversarial;

use std::collections::HashMap;

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::data::{binarize_batch, Binarize, Dataset};
use crate::error::{Error, Result};
use crate::models::{Density, Labels, Model, Objective};
use crate::parallel::{GradSum, Parallel};
use crate::rng;

pub use crate::optim::{Adam, AdamConfig};
pub use crate::recipe::{AdversarialConfig, Schedule, TrainConfig};
pub use adversarial::AdversarialTrainer;

/// What one optimisation step did.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StepRecord {
    /// 1-based: the number of updates applied so far.
    pub step: usize,
    pub loss: f64,
    pub parts: HashMap<String, f64>,
    pub lr: f64,
    pub grad_norm: f64,
    /// A growing game's phase in words ("16x16 fading in, alpha 0.42"), for the progress bar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
}

/// Called by the trainer; the CLI draws progress and writes the run directory here.
pub trait Hooks {
    fn on_step(&mut self, _r: &StepRecord) -> Result<()> {
        Ok(())
    }
    fn on_eval(&mut self, _step: usize, _val_nll: f64) -> Result<()> {
        Ok(())
    }
    /// After `step` updates: the model and its optimisers (one, or the generator's then the
    /// critic's).
    fn on_checkpoint(&mut self, _model: &Model, _opts: &[&Adam], _step: usize) -> Result<()> {
        Ok(())
    }
    /// A growing game (ProGAN) finished a phase at `step` with its networks stable (not fading):
    /// the run writes that resolution's row of the growth strip.
    fn on_stable_phase_end(&mut self, _model: &Model, _step: usize) -> Result<()> {
        Ok(())
    }
    /// Asked after every step: true stops training after a checkpoint at the current step, with
    /// [`Error::Interrupted`] (the CLI's answer to Ctrl-C and SIGTERM).
    fn stop_requested(&self) -> bool {
        false
    }
}

/// After a step: checkpoints when one is due (`due`) or a stop was asked for, then stops.
/// Returns the step of the newest checkpoint. Among the ranks of `par`, a stop asked of any rank
/// stops every rank at the same step, and every checkpoint first checks that all ranks hold the
/// same parameters (only rank 0's hooks write).
pub(crate) fn after_step(
    hooks: &mut (dyn Hooks + Send),
    model: &Model,
    opts: &[&Adam],
    done: usize,
    due: bool,
    kept: Option<usize>,
    par: &Parallel,
) -> Result<Option<usize>> {
    let stop = par.any(hooks.stop_requested())?;
    if !(due || stop) {
        return Ok(kept);
    }
    par.check_identical(&model.params, done)?;
    hooks.on_checkpoint(model, opts, done)?;
    if stop {
        return Err(Error::Interrupted { step: done, dir: None });
    }
    Ok(Some(done))
}

/// A non-finite step's error, saying which checkpoint (`kept`) is left in place.
pub(crate) fn with_kept(e: Error, kept: Option<usize>) -> Error {
    match e {
        Error::NonFinite { step, what, .. } => Error::NonFinite { step, what, kept },
        e => e,
    }
}

/// Hooks that do nothing (library use, tests).
pub struct NoHooks;
impl Hooks for NoHooks {}

/// Minibatch indices as a pure function of (seed, batch number): batch k of
/// epoch e is a slice of the permutation drawn from `derived(seed, "shuffle", e)`.
pub(crate) struct Batches {
    seed: u64,
    size: usize,
    perm: Option<(usize, Vec<usize>)>,
    /// The purpose the epoch permutations are derived under.
    purpose: &'static str,
}

impl Batches {
    pub(crate) fn new(seed: u64, size: usize) -> Self {
        Self { seed, size, perm: None, purpose: "shuffle" }
    }

    /// A second, independent batch order over another set (CycleGAN's domain B).
    pub(crate) fn other(seed: u64, size: usize, purpose: &'static str) -> Self {
        Self { seed, size, perm: None, purpose }
    }

    /// The example indices of (0-based) batch `k` of a set of `n`.
    pub(crate) fn indices(&mut self, n: usize, k: usize) -> Vec<usize> {
        let b = self.size.min(n);
        let per_epoch = (n / b).max(1);
        let (epoch, j) = (k / per_epoch, k % per_epoch);
        let perm = match &self.perm {
            Some((e, p)) if *e == epoch => p,
            _ => {
                let mut r = rng::derived(self.seed, self.purpose, epoch as u64);
                &self.perm.insert((epoch, rng::permutation(&mut r, n))).1
            }
        };
        perm[j * b..(j + 1) * b].to_vec()
    }
}

/// The values of scalar tensors, read back in one transfer.
pub(crate) fn scalars_of(ts: &[&Tensor]) -> Result<Vec<f64>> {
    if ts.is_empty() {
        return Ok(vec![]);
    }
    let flat: Vec<Tensor> =
        ts.iter().map(|t| t.flatten_all()).collect::<candle_core::Result<_>>()?;
    Ok(Tensor::cat(&flat, 0)?.to_vec1::<f32>()?.iter().map(|v| *v as f64).collect())
}

/// Runs a training loop on a worker of a rayon pool of `get_num_threads()`
/// threads, the pool the matrix products and element-wise kernels split
/// their work in: the calling thread is then one of the workers instead of
/// a third thread competing with two spinning workers for two cores
/// (measured: +5% steps/s on the VAE benchmark).
pub(crate) fn in_pool<T: Send>(f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    if rayon::current_thread_index().is_some() {
        return f();
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(candle_core::utils::get_num_threads())
        .build()
        .map_err(|e| Error::config(format!("cannot start worker threads: {e}")))?;
    // The portable switch is per thread: the worker takes the caller's.
    let portable = crate::nn::graph::portable();
    pool.install(move || crate::nn::graph::with_portable_if(portable, f))
}

/// Maximum-likelihood (or ELBO) training of any [`Objective`].
pub struct LikelihoodTrainer {
    pub cfg: TrainConfig,
    pub opt: Adam,
    pub seed: u64,
    pub binarize: Binarize,
    /// The ranks this trainer's shards are spread over (one process by default).
    pub par: Parallel,
    batches: Batches,
}

impl LikelihoodTrainer {
    pub fn new(model: &Model, cfg: TrainConfig, seed: u64, binarize: Binarize) -> Result<Self> {
        cfg.check()?;
        let opt = Adam::new(&model.params, cfg.optimizer)?;
        let batches = Batches::new(seed, cfg.batch_size * cfg.shards);
        Ok(Self { cfg, opt, seed, binarize, par: Parallel::local(), batches })
    }

    /// Spreads the shards over the ranks of `par` (data-parallel training).
    pub fn with_parallel(mut self, par: Parallel) -> Result<Self> {
        par.check_shards(self.cfg.shards)?;
        self.par = par;
        Ok(self)
    }

    /// One update on batch `x` as (0-based) step `step`.
    pub fn step(&mut self, model: &Model, x: &Tensor, step: usize) -> Result<StepRecord> {
        self.step_labelled(model, x, None, step)
    }

    /// One update on batch `x` with its labels (used by models that read them: the classifier).
    /// One process, one shard: see [`Self::step_shards`] for data-parallel steps.
    pub fn step_labelled(
        &mut self,
        model: &Model,
        x: &Tensor,
        labels: Option<&[u32]>,
        step: usize,
    ) -> Result<StepRecord> {
        let shard = Shard { index: 0, x: x.clone(), labels: labels.map(|l| l.to_vec()) };
        let par = Parallel::local();
        self.update(model, &[shard], 1, &par, step)
    }

    /// One update from this rank's `shards` of a step of `self.cfg.shards` shards: each shard's
    /// gradients, all-reduced over the ranks of [`Self::par`], averaged.
    pub fn step_shards(
        &mut self,
        model: &Model,
        shards: &[Shard],
        step: usize,
    ) -> Result<StepRecord> {
        let par = self.par.clone();
        self.update(model, shards, self.cfg.shards, &par, step)
    }

    fn update(
        &mut self,
        model: &Model,
        shards: &[Shard],
        total: usize,
        par: &Parallel,
        step: usize,
    ) -> Result<StepRecord> {
        let mut sum = GradSum::new(par, self.opt.vars(), total);
        // One shard in one process: its gradients are the step's, so their norm's sums are read
        // back with the loss, one transfer (one GPU synchronisation) per step.
        let alone = shards.len() == 1 && total == 1 && par.size() == 1;
        let mut norm = None;
        for s in shards {
            let mut r = rng::shard(self.seed, "step", step as u64, s.index);
            // Only the example is binarized, not the caption ids a row may carry after it.
            let d = model.config.dim();
            let x = &s.x;
            let x = match (self.binarize, x.dim(1)? > d) {
                (Binarize::Dynamic, false) => binarize_batch(x, &mut r)?,
                (Binarize::Dynamic, true) => {
                    let ids = x.narrow(1, d, x.dim(1)? - d)?;
                    Tensor::cat(&[&binarize_batch(&x.narrow(1, 0, d)?, &mut r)?, &ids], 1)?
                }
                _ => x.clone(),
            };
            let losses = model.loss_labelled(&x, s.labels.as_deref(), &mut r)?;
            // The backward pass is queued first, then the loss and its parts are read back in
            // one transfer (on a GPU, one synchronisation, with the backward already queued).
            let grads = losses.total.backward()?;
            let squares = if alone { self.opt.grad_square_sums(&grads)? } else { vec![] };
            let mut all = vec![&losses.total];
            all.extend(losses.parts.iter().map(|(_, v)| v));
            all.extend(&squares);
            let read = scalars_of(&all)?;
            let loss = read[0];
            let (read, sq) = read.split_at(1 + losses.parts.len());
            norm = alone.then(|| crate::optim::norm_of(sq));
            // Alone, a non-finite loss stops here, before any update; among ranks, after the
            // all-reduce, where every rank sees it.
            if !loss.is_finite() && total == 1 && par.size() == 1 {
                let what = format!("loss = {loss}");
                return Err(Error::NonFinite { step: step + 1, what, kept: None });
            }
            let mut scalars = vec![(LOSS.to_string(), loss)];
            for ((k, _), v) in losses.parts.iter().zip(&read[1..]) {
                scalars.push((k.to_string(), *v));
            }
            sum.add(grads, scalars)?;
        }
        let (grads, mut scalars) = sum.reduce()?;
        let at = scalars.iter().position(|(k, _)| k == LOSS);
        let loss = at.map(|i| scalars.remove(i).1).unwrap_or(f64::NAN);
        if !loss.is_finite() {
            let what = format!("loss = {loss}");
            return Err(Error::NonFinite { step: step + 1, what, kept: None });
        }
        let grad_norm = match norm {
            Some(n) => n,
            None => self.opt.grad_norm(&grads)?,
        };
        if !grad_norm.is_finite() {
            return Err(Error::NonFinite {
                step: step + 1,
                what: format!("gradient norm = {grad_norm}"),
                kept: None,
            });
        }
        let scale = match self.cfg.grad_clip {
            Some(c) if grad_norm > c => c / grad_norm,
            _ => 1.0,
        };
        let lr = self.cfg.lr_at(step);
        self.opt.step(&grads, lr, scale)?;
        let parts: HashMap<String, f64> = scalars.into_iter().collect();
        Ok(StepRecord { step: step + 1, loss, parts, lr, grad_norm, phase: None })
    }

    /// Trains from the optimizer's current step up to `cfg.steps` (on a worker of [`in_pool`]'s
    /// pool).
    pub fn fit(
        &mut self,
        model: &Model,
        train: &Dataset,
        val: Option<&Dataset>,
        hooks: &mut (dyn Hooks + Send),
    ) -> Result<()> {
        in_pool(|| self.fit_here(model, train, val, hooks))
    }

    fn fit_here(
        &mut self,
        model: &Model,
        train: &Dataset,
        val: Option<&Dataset>,
        hooks: &mut (dyn Hooks + Send),
    ) -> Result<()> {
        model.check_dim(train.dim(), &train.source)?;
        if let Some(v) = val {
            model.check_dim(v.dim(), &v.source)?;
        }
        let dev = model
            .params
            .vars()
            .next()
            .map(|(_, v)| v.device().clone())
            .unwrap_or(candle_core::Device::Cpu);
        let val = val.map(|v| v.take(self.cfg.eval_examples));
        check_fills(train, self.cfg.batch_size, self.cfg.shards)?;
        let par = self.par.clone();
        par.start(&model.params, &[&self.opt])?;
        par.set_training(true);
        let mut kept = (self.opt.step > 0).then_some(self.opt.step);
        while self.opt.step < self.cfg.steps {
            let s = self.opt.step;
            let idx = self.batches.indices(train.n, s);
            let b = idx.len() / self.cfg.shards;
            let mut shards = vec![];
            for j in par.owned(self.cfg.shards) {
                let idx = &idx[j * b..(j + 1) * b];
                let mut r = rng::shard(self.seed, "captions", s as u64, j);
                let x = batch_rows(model.vocab(), train, idx, &dev, &mut r)?;
                let labels = train.labels.as_ref().map(|l| idx.iter().map(|&i| l[i]).collect());
                shards.push(Shard { index: j, x, labels });
            }
            let rec = self.step_shards(model, &shards, s).map_err(|e| with_kept(e, kept))?;
            hooks.on_step(&rec)?;
            let done = self.opt.step;
            let due = done.is_multiple_of(self.cfg.eval_every) || done == self.cfg.steps;
            if due && par.is_root() {
                if let Some(v) = &val {
                    let mut r = rng::derived(self.seed, "val", done as u64);
                    hooks.on_eval(done, validation(model, v, self.cfg.batch_size, &mut r)?)?;
                }
            }
            kept = after_step(hooks, model, &[&self.opt], done, due, kept, &par)?;
        }
        par.set_training(false);
        Ok(())
    }
}

/// The name the loss travels under among the logged values of a shard.
const LOSS: &str = "\u{0}loss";

/// One shard of a step's batch: its index among the step's shards (which names its noise
/// stream), its rows and their labels.
pub struct Shard {
    pub index: usize,
    pub x: Tensor,
    pub labels: Option<Vec<u32>>,
}

/// Refuses a set smaller than one step's batch (`shards` x `batch`): the shards would overlap.
pub(crate) fn check_fills(data: &Dataset, batch: usize, shards: usize) -> Result<()> {
    if shards > 1 && data.n < batch * shards {
        return Err(Error::config(format!(
            "{}: {} examples, fewer than a step's batch of {shards} shards x --batch-size {batch}",
            data.source, data.n
        )));
    }
    Ok(())
}

/// The batch rows of examples `idx`: the examples, and when the model reads captions (`vocab`)
/// one caption of each drawn with `rng`, as word ids ([`with_captions`]).
pub fn batch_rows(
    vocab: Option<&crate::data::captions::Vocab>,
    data: &Dataset,
    idx: &[usize],
    dev: &candle_core::Device,
    rng: &mut rng::Rng,
) -> Result<Tensor> {
    with_captions(data.batch(idx, dev)?, vocab, data, idx, rng)
}

/// Rows `x` of examples `idx` of `data` with, when the model reads captions (`vocab`), one
/// caption of each appended as word ids, drawn with `rng`.
pub fn with_captions(
    x: Tensor,
    vocab: Option<&crate::data::captions::Vocab>,
    data: &Dataset,
    idx: &[usize],
    rng: &mut rng::Rng,
) -> Result<Tensor> {
    let Some(v) = vocab else { return Ok(x) };
    let c = crate::models::matcher::captions_of(data, "model")?;
    let ids = Tensor::from_vec(v.rows(c, idx, rng)?, (idx.len(), v.max_words), x.device())?;
    Ok(Tensor::cat(&[&x, &ids], 1)?)
}

/// The validation value: the mean -log p(x) (the classifier: -log p(y | x)); for a model without
/// a density (the text matcher), its training loss on the validation set in batches of `batch`.
fn validation(model: &Model, v: &Dataset, batch: usize, r: &mut rng::Rng) -> Result<f64> {
    let info = model.info();
    if info.density != Density::None || info.labels == Labels::Target {
        let lp = model.log_probs(v, 256, r)?;
        return Ok(-lp.iter().sum::<f64>() / lp.len().max(1) as f64);
    }
    let dev = model
        .params
        .vars()
        .next()
        .map(|(_, v)| v.device().clone())
        .unwrap_or(candle_core::Device::Cpu);
    let idx: Vec<usize> = (0..v.n).collect();
    let (mut sum, mut count) = (0f64, 0usize);
    for chunk in idx.chunks(batch.max(2)).filter(|c| c.len() >= 2) {
        let x = batch_rows(model.vocab(), v, chunk, &dev, r)?;
        sum += model.loss(&x, r)?.total.to_scalar::<f32>()? as f64 * chunk.len() as f64;
        count += chunk.len();
    }
    Ok(sum / count.max(1) as f64)
}
