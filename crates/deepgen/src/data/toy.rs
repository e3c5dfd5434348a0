//! 2-D Gaussian mixtures with known modes, the standard mode-collapse tests
//! (ring of 8 from Metz et al. 2017, Unrolled GANs; 5x5 grid from Srivastava et al. 2017, VEEGAN).

use rand_distr::{Distribution, Normal};

use crate::error::{Error, Result};
use crate::rng::Rng;

use super::Dataset;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Toy {
    /// 8 Gaussians on a circle of radius 2, std 0.02.
    Ring8,
    /// 25 Gaussians on the grid {-4,-2,0,2,4}^2, std 0.05.
    Grid25,
}

impl Toy {
    pub fn name(&self) -> &'static str {
        match self {
            Toy::Ring8 => "ring8",
            Toy::Grid25 => "grid25",
        }
    }
    pub fn std(&self) -> f32 {
        match self {
            Toy::Ring8 => 0.02,
            Toy::Grid25 => 0.05,
        }
    }
    /// The mixture's component means (equal weights).
    pub fn modes(&self) -> Vec<[f32; 2]> {
        match self {
            Toy::Ring8 => (0..8)
                .map(|k| {
                    let a = 2.0 * std::f32::consts::PI * k as f32 / 8.0;
                    [2.0 * a.cos(), 2.0 * a.sin()]
                })
                .collect(),
            Toy::Grid25 => (0..25)
                .map(|k| [-4.0 + 2.0 * (k / 5) as f32, -4.0 + 2.0 * (k % 5) as f32])
                .collect(),
        }
    }
}

impl std::str::FromStr for Toy {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "ring8" => Ok(Toy::Ring8),
            "grid25" => Ok(Toy::Grid25),
            _ => {
                Err(Error::config(format!("unknown toy data set `{s}` (expected ring8 or grid25)")))
            }
        }
    }
}

/// `n` points; labels are the index of the component each came from.
pub fn sample(kind: Toy, n: usize, rng: &mut Rng, source: &str) -> Result<Dataset> {
    let modes = kind.modes();
    let noise = Normal::new(0.0f32, kind.std()).map_err(|e| Error::config(e.to_string()))?;
    let mut x = Vec::with_capacity(2 * n);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let k = i % modes.len();
        x.push(modes[k][0] + noise.sample(rng));
        x.push(modes[k][1] + noise.sample(rng));
        labels.push(k as u32);
    }
    Dataset::new(source, x, vec![2], Some(labels))
}
