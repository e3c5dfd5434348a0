//! [`Params`]: an ordered name -> `Var` map, the safetensors tensor names.

use std::collections::BTreeMap;

use candle_core::{DType, Device, Tensor, Var};

use crate::error::{Error, Result};
use crate::rng::{self, Rng};

/// The trainable tensors of a model, by stable name.
#[derive(Clone, Debug, Default)]
pub struct Params {
    vars: BTreeMap<String, Var>,
    /// The most scalars the model may hold (see [`Params::room`]); `None`: no bound.
    budget: Option<usize>,
}

impl Params {
    pub fn new() -> Self {
        Self::default()
    }

    /// Parameters that may hold at most `budget` scalars in all.
    pub fn with_budget(budget: usize) -> Self {
        Self { vars: BTreeMap::new(), budget: Some(budget) }
    }

    /// Checks, before a tensor of `shape` is allocated, that it fits in the budget: a model flag
    /// with three zeros too many is refused here instead of aborting on a failed allocation.
    pub fn room(&self, shape: &[usize]) -> Result<()> {
        let Some(budget) = self.budget else { return Ok(()) };
        let elems = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        match elems.and_then(|e| e.checked_add(self.count())) {
            Some(total) if total <= budget => Ok(()),
            total => Err(Error::TooLarge { params: total, budget }),
        }
    }

    /// Registers a tensor as a trainable variable under `name`.
    pub fn add(&mut self, name: &str, t: Tensor) -> Result<Tensor> {
        self.room(t.dims())?;
        if self.vars.contains_key(name) {
            return Err(Error::config(format!("parameter `{name}` registered twice")));
        }
        let v = Var::from_tensor(&t.to_dtype(DType::F32)?)?;
        let out = v.as_tensor().clone();
        self.vars.insert(name.to_string(), v);
        Ok(out)
    }

    /// PyTorch's default initialisation: uniform in +-1/sqrt(fan_in)
    /// (Kaiming-uniform with a = sqrt(5) gives exactly this bound).
    pub fn uniform_fan_in(
        &mut self,
        name: &str,
        shape: &[usize],
        fan_in: usize,
        rng: &mut Rng,
        dev: &Device,
    ) -> Result<Tensor> {
        self.room(shape)?;
        let bound = 1.0 / (fan_in.max(1) as f32).sqrt();
        let t = rng::uniform(rng, shape, -bound, bound, dev)?;
        self.add(name, t)
    }

    /// Registers an existing variable (shared, not copied) under `name`.
    pub fn insert_var(&mut self, name: &str, v: Var) -> Result<()> {
        if self.vars.insert(name.to_string(), v).is_some() {
            return Err(Error::config(format!("parameter `{name}` registered twice")));
        }
        Ok(())
    }

    pub fn zeros(&mut self, name: &str, shape: &[usize], dev: &Device) -> Result<Tensor> {
        self.room(shape)?;
        self.add(name, Tensor::zeros(shape, DType::F32, dev)?)
    }

    pub fn vars(&self) -> impl Iterator<Item = (&String, &Var)> {
        self.vars.iter()
    }

    pub fn get(&self, name: &str) -> Option<&Var> {
        self.vars.get(name)
    }

    pub fn len(&self) -> usize {
        self.vars.len()
    }

    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }

    /// Total number of scalars.
    pub fn count(&self) -> usize {
        self.vars.values().map(|v| v.elem_count()).sum()
    }

    /// Names and shapes, for `deepgen models` and checkpoint checks.
    pub fn shapes(&self) -> Vec<(String, Vec<usize>)> {
        self.vars.iter().map(|(k, v)| (k.clone(), v.dims().to_vec())).collect()
    }

    /// Copies `tensors` into the variables; every variable must be present
    /// with its exact shape, and nothing else may be.
    pub fn load(
        &self,
        tensors: &std::collections::HashMap<String, Tensor>,
        path: &std::path::Path,
    ) -> Result<()> {
        for (name, var) in &self.vars {
            let t = tensors.get(name).ok_or_else(|| {
                Error::checkpoint(
                    path,
                    format!("tensor `{name}` is missing (a checkpoint of another model?)"),
                )
            })?;
            if t.dims() != var.dims() {
                return Err(Error::checkpoint(
                    path,
                    format!(
                        "tensor `{name}` has shape {:?}, the model expects {:?}",
                        t.dims(),
                        var.dims()
                    ),
                ));
            }
            let t = t.to_dtype(DType::F32)?;
            let bad = t.flatten_all()?.to_vec1::<f32>()?.iter().position(|v| !v.is_finite());
            if let Some(i) = bad {
                return Err(Error::checkpoint(
                    path,
                    format!(
                        "tensor `{name}` holds a non-finite value at index {i}: the checkpoint is \
                        damaged (this is not a problem with the data)"
                    ),
                ));
            }
            var.set(&t.to_device(var.device())?)?;
        }
        if let Some(extra) = tensors.keys().find(|k| !self.vars.contains_key(*k)) {
            return Err(Error::checkpoint(
                path,
                format!("unexpected tensor `{extra}` (a checkpoint of another model?)"),
            ));
        }
        Ok(())
    }
}
