//! The history of generated images that CycleGAN's critics learn from (Shrivastava et al.
//! 2017, Sec. 2.3; Zhu et al. 2017, Sec. 4, "we update the discriminators using a history of
//! generated images rather than the ones produced by the latest generators", a buffer of 50).
//!
//! The rule of the authors' `util/image_pool.py`, image by image: while the pool holds fewer
//! than `size` images, the new image goes in and is returned; once it is full, with
//! probability 1/2 a uniformly chosen stored image is returned and the new one takes its place,
//! otherwise the new image is returned and the pool is unchanged. `size` 0 returns the batch.
//! Unlike the reference, the draws come from the caller's seeded RNG, and the pool's content
//! is a tensor that a checkpoint stores ([`ImagePool::state`]), so a resumed run sees the same
//! history.

use candle_core::{Device, Tensor};
use rand::Rng as _;

use crate::error::{Error, Result};
use crate::rng::Rng;

/// Up to `size` generated images of `dim` values each.
#[derive(Debug, Clone)]
pub struct ImagePool {
    size: usize,
    dim: usize,
    images: Vec<Vec<f32>>,
}

impl ImagePool {
    pub fn new(size: usize, dim: usize) -> Self {
        Self { size, dim, images: Vec::with_capacity(size) }
    }

    /// How many images the pool holds.
    pub fn len(&self) -> usize {
        self.images.len()
    }

    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    /// The images the critic sees for the generated batch `x` (`[B, dim]`, detached), by the rule
    /// in the module doc.
    pub fn query(&mut self, x: &Tensor, rng: &mut Rng) -> Result<Tensor> {
        let (b, d) = x.dims2()?;
        if d != self.dim {
            return Err(Error::Shape(format!("image pool of {} values given {d}", self.dim)));
        }
        if self.size == 0 {
            return Ok(x.detach());
        }
        let rows = x.detach().to_vec2::<f32>()?;
        let mut out = Vec::with_capacity(b * d);
        for row in rows {
            if self.images.len() < self.size {
                out.extend_from_slice(&row);
                self.images.push(row);
            } else if rng.gen::<f64>() > 0.5 {
                let k = rng.gen_range(0..self.size);
                out.extend_from_slice(&self.images[k]);
                self.images[k] = row;
            } else {
                out.extend_from_slice(&row);
            }
        }
        Ok(Tensor::from_vec(out, (b, d), x.device())?)
    }

    /// The stored images as `[len, dim]` (`[0, dim]` when empty), for a checkpoint.
    pub fn state(&self, dev: &Device) -> Result<Tensor> {
        let flat: Vec<f32> = self.images.iter().flatten().copied().collect();
        Ok(Tensor::from_vec(flat, (self.images.len(), self.dim), dev)?)
    }

    /// Restores images saved by [`ImagePool::state`].
    pub fn load(&mut self, t: &Tensor) -> Result<()> {
        let (n, d) = t.dims2()?;
        if d != self.dim || n > self.size {
            return Err(Error::Shape(format!(
                "image pool state of {n} images of {d} values; the pool holds up to {} of {}",
                self.size, self.dim
            )));
        }
        self.images = t.to_vec2::<f32>()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng;

    fn rows(v: &[f32]) -> Tensor {
        Tensor::from_vec(v.to_vec(), (v.len(), 1), &Device::Cpu).unwrap()
    }

    #[test]
    fn the_pool_fills_then_swaps_half_of_the_time() {
        let mut pool = ImagePool::new(3, 1);
        let mut r = rng::rng(5);
        // Filling: the images come back as they are and are kept.
        let out = pool.query(&rows(&[1.0, 2.0]), &mut r).unwrap();
        assert_eq!(out.flatten_all().unwrap().to_vec1::<f32>().unwrap(), vec![1.0, 2.0]);
        assert_eq!(pool.len(), 2);
        // The third fills the pool; the fourth on is returned or swapped for a stored one.
        let mut swapped = 0;
        let n = 4000;
        for i in 0..n {
            let new = 10.0 + i as f32;
            let before: Vec<f32> = pool.images.iter().map(|v| v[0]).collect();
            let got = pool.query(&rows(&[new]), &mut r).unwrap().to_vec2::<f32>().unwrap()[0][0];
            let after: Vec<f32> = pool.images.iter().map(|v| v[0]).collect();
            if i == 0 {
                assert_eq!((got, after.len()), (new, 3));
                continue;
            }
            if got == new {
                assert_eq!(before, after, "returned the new image but changed the pool");
            } else {
                swapped += 1;
                let k = before.iter().position(|&v| v == got).expect("a stored image");
                let mut want = before.clone();
                want[k] = new;
                assert_eq!(after, want, "the returned image's place holds the new one");
            }
        }
        let share = swapped as f64 / (n - 1) as f64;
        assert!((share - 0.5).abs() < 0.03, "swapped {share} of the time, expected 1/2");
    }

    #[test]
    fn an_empty_pool_passes_through_and_the_state_round_trips() {
        let mut r = rng::rng(1);
        let x = rows(&[3.0, 4.0]);
        let mut none = ImagePool::new(0, 1);
        assert_eq!(none.query(&x, &mut r).unwrap().to_vec2::<f32>().unwrap(), [[3.0], [4.0]]);
        let mut pool = ImagePool::new(4, 1);
        pool.query(&x, &mut r).unwrap();
        let mut back = ImagePool::new(4, 1);
        back.load(&pool.state(&Device::Cpu).unwrap()).unwrap();
        assert_eq!(back.images, pool.images);
        assert!(ImagePool::new(1, 1).load(&pool.state(&Device::Cpu).unwrap()).is_err());
        assert!(pool
            .query(&Tensor::zeros((2, 3), candle_core::DType::F32, &Device::Cpu).unwrap(), &mut r)
            .is_err());
    }
}
