//! [`GradSum`]: the gradients (and logged values) of the shards one update is computed on,
//! summed on this rank, all-reduced over ranks in flat buckets, and divided by the shard count,
//! the mean over the whole batch since every shard holds the same number of examples.

use std::time::Instant;

use candle_core::backprop::GradStore;
use candle_core::{Storage, Tensor, Var};

use super::Parallel;
use crate::error::{Error, Result};
use crate::nn::slices::f32s;

/// The sum of one update's shard gradients over the parameters `vars` (in the optimiser's
/// order, the same on every rank).
pub struct GradSum<'a> {
    par: &'a Parallel,
    vars: Vec<Var>,
    shards: usize,
    /// Every gradient flattened in `vars` order, then one count per var of the shards that gave
    /// it a gradient (so a parameter no shard reached stays without one, as in one process).
    buf: Vec<f32>,
    offsets: Vec<usize>,
    /// Logged values (loss and its parts), summed, in one order on every rank.
    scalars: Vec<(String, f64)>,
    /// The last shard's gradient store, reused to hand the mean to the optimiser.
    store: Option<GradStore>,
}

impl<'a> GradSum<'a> {
    /// An empty sum of `shards` shards' gradients of `vars`.
    pub fn new(par: &'a Parallel, vars: Vec<Var>, shards: usize) -> Self {
        Self { par, vars, shards, buf: vec![], offsets: vec![], scalars: vec![], store: None }
    }

    /// One process and one shard: the shard's own gradients are the mean, untouched (training
    /// without data parallelism computes exactly what it did before it existed).
    fn passthrough(&self) -> bool {
        self.shards == 1 && self.par.size() == 1
    }

    /// Adds one shard's gradients and logged values (sorted by name here, so that every rank
    /// sends them in one order).
    pub fn add(&mut self, grads: GradStore, mut scalars: Vec<(String, f64)>) -> Result<()> {
        scalars.sort_by(|a, b| a.0.cmp(&b.0));
        if self.passthrough() {
            self.store = Some(grads);
            self.scalars = scalars;
            return Ok(());
        }
        let t0 = Instant::now();
        if self.offsets.is_empty() {
            // The first shard is copied in (one pass over the bytes, not a zero fill and an add).
            let total: usize = self.vars.iter().map(|v| v.elem_count()).sum();
            self.buf = Vec::with_capacity(total + self.vars.len());
            let mut counts = Vec::with_capacity(self.vars.len());
            for v in &self.vars {
                self.offsets.push(self.buf.len());
                let g = grads.get(v.as_tensor());
                match g {
                    Some(g) => extend_with(&mut self.buf, g, v.elem_count())?,
                    None => self.buf.resize(self.buf.len() + v.elem_count(), 0.0),
                }
                counts.push(g.is_some() as u8 as f32);
            }
            self.buf.extend(counts);
        } else {
            let counts = self.buf.len() - self.vars.len();
            for (i, v) in self.vars.iter().enumerate() {
                let Some(g) = grads.get(v.as_tensor()) else { continue };
                let dst = &mut self.buf[self.offsets[i]..self.offsets[i] + v.elem_count()];
                add_into(dst, g)?;
                self.buf[counts + i] += 1.0;
            }
        }
        self.par.record_packing(t0.elapsed().as_secs_f64());
        if self.scalars.is_empty() {
            self.scalars = scalars;
        } else {
            if self.scalars.len() != scalars.len()
                || self.scalars.iter().zip(&scalars).any(|(a, b)| a.0 != b.0)
            {
                return Err(Error::config("shards logged different loss parts"));
            }
            for (a, b) in self.scalars.iter_mut().zip(&scalars) {
                a.1 += b.1;
            }
        }
        self.store = Some(grads);
        Ok(())
    }

    /// The mean over all shards of every rank: the gradients, in a store for the optimiser,
    /// and the logged values.
    pub fn reduce(mut self) -> Result<(GradStore, Vec<(String, f64)>)> {
        let Some(mut store) = self.store.take() else {
            return Err(Error::config("an update without a shard"));
        };
        if self.passthrough() {
            return Ok((store, self.scalars));
        }
        // The logged values ride in the last bucket. A rank's names match every other's: they
        // come from the same code, sorted.
        let grads_and_counts = self.buf.len();
        self.buf.extend(self.scalars.iter().map(|(_, v)| *v as f32));
        let t0 = Instant::now();
        let bucket = self.par.bucket.max(1);
        for chunk in self.buf.chunks_mut(bucket) {
            self.par.communicator().all_reduce_sum(chunk)?;
        }
        self.par.record(t0.elapsed().as_secs_f64(), self.buf.len() * 4);
        let t1 = Instant::now();
        let inv = 1.0 / self.shards as f32;
        let counts = grads_and_counts - self.vars.len();
        for (i, v) in self.vars.iter().enumerate() {
            if self.buf[counts + i] == 0.0 {
                store.remove(v.as_tensor());
                continue;
            }
            let n = v.elem_count();
            let mean: Vec<f32> =
                self.buf[self.offsets[i]..self.offsets[i] + n].iter().map(|g| g * inv).collect();
            let g = Tensor::from_vec(mean, v.shape(), v.device())?;
            store.insert(v.as_tensor(), g);
        }
        let scalars = self
            .scalars
            .iter()
            .zip(&self.buf[grads_and_counts..])
            .map(|((n, _), &s)| (n.clone(), s as f64 / self.shards as f64))
            .collect();
        self.par.record_packing(t1.elapsed().as_secs_f64());
        Ok((store, scalars))
    }
}

/// Appends the `n` values of gradient `g` to `buf`.
fn extend_with(buf: &mut Vec<f32>, g: &Tensor, n: usize) -> Result<()> {
    with_values(g, n, |src| buf.extend_from_slice(src))
}

/// `dst += g`.
fn add_into(dst: &mut [f32], g: &Tensor) -> Result<()> {
    with_values(g, dst.len(), |src| {
        for (d, s) in dst.iter_mut().zip(src) {
            *d += s;
        }
    })
}

/// Calls `f` with the `n` f32 values of gradient `g`: read in place from contiguous CPU storage,
/// through a copy otherwise.
fn with_values(g: &Tensor, n: usize, f: impl FnOnce(&[f32])) -> Result<()> {
    if n != g.elem_count() {
        return Err(Error::Shape(format!(
            "a gradient of {} values for a parameter of {n}",
            g.elem_count()
        )));
    }
    {
        let (s, l) = g.storage_and_layout();
        if let Storage::Cpu(c) = &*s {
            if let Ok(src) = f32s(c, l, "gradient") {
                f(src);
                return Ok(());
            }
        }
    }
    let src = g.flatten_all()?.to_dtype(candle_core::DType::F32)?.to_vec1::<f32>()?;
    f(&src);
    Ok(())
}
