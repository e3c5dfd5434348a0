//! Class indices and their vectors: one-hot encoding and argmax.

use candle_core::{Device, Tensor};

use crate::error::{Error, Result};

/// The index of the largest value (the first of equal ones; 0 for an empty row).
pub fn argmax(row: &[f32]) -> usize {
    row.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i).unwrap_or(0)
}

/// One-hot rows `[n, k]` for labels.
pub fn one_hot(labels: &[u32], k: usize, dev: &Device) -> Result<Tensor> {
    let mut v = vec![0f32; labels.len() * k];
    for (i, &l) in labels.iter().enumerate() {
        if l as usize >= k {
            return Err(Error::config(format!("label {l} is out of range for {k} classes")));
        }
        v[i * k + l as usize] = 1.0;
    }
    Ok(Tensor::from_vec(v, (labels.len(), k), dev)?)
}
