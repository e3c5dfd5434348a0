//! Seeded randomness. candle cannot seed its CPU generator, so every random
//! draw in deepgen (initialisation, noise, shuffling, binarisation) comes from
//! a [`Rng`] made here and is turned into a tensor.
//!
//! Training derives one generator per (seed, purpose, index) instead of
//! threading one stream through the run: step 1234's noise is the same whether
//! the run got there directly or was resumed from step 1000, with no generator
//! state to save.

use candle_core::{Device, Tensor};
use rand::{Rng as _, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

pub type Rng = rand_chacha::ChaCha8Rng;

/// A generator from a plain seed.
pub fn rng(seed: u64) -> Rng {
    Rng::seed_from_u64(seed)
}

/// A generator for one purpose (`tag`) and index (a step, an epoch) of a run.
pub fn derived(seed: u64, tag: &str, index: u64) -> Rng {
    // FNV-1a over the tag, then splitmix64 to spread the bits.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in tag.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    Rng::seed_from_u64(splitmix(seed ^ splitmix(h ^ splitmix(index))))
}

/// The generator of shard `shard` of a data-parallel step ([`crate::parallel`]): shard 0's is
/// [`derived`]'s, the stream training without shards uses, and every other shard has its own.
pub fn shard(seed: u64, tag: &str, index: u64, shard: usize) -> Rng {
    if shard == 0 {
        return derived(seed, tag, index);
    }
    derived(seed ^ splitmix(0x5348_4152_4400_0000 ^ shard as u64), tag, index)
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Standard normal draws as an f32 tensor.
pub fn randn(rng: &mut Rng, shape: &[usize], device: &Device) -> candle_core::Result<Tensor> {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| StandardNormal.sample(rng)).collect();
    Tensor::from_vec(v, shape, device)
}

/// Uniform draws in [lo, hi) as an f32 tensor.
pub fn uniform(
    rng: &mut Rng,
    shape: &[usize],
    lo: f32,
    hi: f32,
    device: &Device,
) -> candle_core::Result<Tensor> {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.gen_range(lo..hi)).collect();
    Tensor::from_vec(v, shape, device)
}

/// Bernoulli draws: 1.0 where a uniform draw falls below `p`.
pub fn bernoulli(rng: &mut Rng, p: &[f32]) -> Vec<f32> {
    p.iter().map(|&pi| if rng.gen::<f32>() < pi { 1.0 } else { 0.0 }).collect()
}

/// A uniformly random permutation of 0..n (Fisher-Yates).
pub fn permutation(rng: &mut Rng, n: usize) -> Vec<usize> {
    use rand::seq::SliceRandom;
    let mut idx: Vec<usize> = (0..n).collect();
    idx.shuffle(rng);
    idx
}
