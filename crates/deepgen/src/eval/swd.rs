//! Sliced Wasserstein distance between two image sets over a Laplacian pyramid (Karras et al.
//! 2018, Sec. 5.1 and their `metrics/sliced_wasserstein.py`): at every pyramid level, 7x7
//! neighbourhoods at 128 random places per image are the descriptors; each set's descriptors are
//! normalised per channel by their own mean and standard deviation; the distance is the mean,
//! over 4 x 128 random unit directions, of the 1-D Wasserstein distance between the two sets'
//! projections (the mean absolute difference of the sorted projections), reported x 1e3. Levels
//! run from the image's size while the side is at least 8 (the reference stops at 16, which
//! would leave 28-px digits one level); the last level is the Gaussian residual. Images are
//! `[n, C, H, W]` rows; both sets must hold the same number of images.

use rand::Rng as _;
use rand_distr::{Distribution, StandardNormal};

use crate::error::{Error, Result};
use crate::rng::Rng;

/// Neighbourhood side, neighbourhoods per image, direction repeats and directions per repeat:
/// the reference's values.
pub const NHOOD: usize = 7;
pub const PER_IMAGE: usize = 128;
const REPEATS: usize = 4;
const DIRS: usize = 128;
/// The smallest pyramid level's side.
pub const MIN_SIDE: usize = 8;

/// The binomial 5x5 filter of `cv2.pyrDown`, separable: [1 4 6 4 1] / 16 each way.
const TAPS: [f32; 5] = [1.0 / 16.0, 4.0 / 16.0, 6.0 / 16.0, 4.0 / 16.0, 1.0 / 16.0];

/// A stack of `n` images of `c` channels, `h x w`, row-major `[n, c, h, w]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Images {
    pub v: Vec<f32>,
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
}

impl Images {
    pub fn new(v: Vec<f32>, shape: &[usize]) -> Result<Self> {
        let [c, h, w] = shape[..] else {
            return Err(Error::Shape(format!(
                "image metrics need [C, H, W] images, not {shape:?}"
            )));
        };
        let d = c * h * w;
        if d == 0 || !v.len().is_multiple_of(d) {
            return Err(Error::Shape(format!("{} values are not {c}x{h}x{w} images", v.len())));
        }
        Ok(Self { n: v.len() / d, v, c, h, w })
    }

    fn plane(&self, k: usize) -> &[f32] {
        &self.v[k * self.h * self.w..(k + 1) * self.h * self.w]
    }
}

/// Reflection about the border pixel (`scipy.ndimage` mode 'mirror': -1 -> 1).
fn mirror(i: isize, n: usize) -> usize {
    let n = n as isize;
    if n == 1 {
        return 0;
    }
    let period = 2 * (n - 1);
    let m = i.rem_euclid(period);
    (if m < n { m } else { period - m }) as usize
}

/// Every plane filtered by the 5x5 binomial filter times `gain`, mirror borders.
fn blur(x: &Images, gain: f32) -> Images {
    let (h, w) = (x.h, x.w);
    let mut out = vec![0f32; x.v.len()];
    let mut tmp = vec![0f32; h * w];
    for k in 0..x.n * x.c {
        let p = x.plane(k);
        for y in 0..h {
            for xx in 0..w {
                tmp[y * w + xx] = (0..5)
                    .map(|t| TAPS[t] * p[y * w + mirror(xx as isize + t as isize - 2, w)])
                    .sum();
            }
        }
        let o = &mut out[k * h * w..(k + 1) * h * w];
        for y in 0..h {
            for xx in 0..w {
                o[y * w + xx] = gain
                    * (0..5)
                        .map(|t| TAPS[t] * tmp[mirror(y as isize + t as isize - 2, h) * w + xx])
                        .sum::<f32>();
            }
        }
    }
    Images { v: out, ..*x }
}

/// `cv2.pyrDown`: blur, then every second pixel (sides rounded up).
pub fn pyr_down(x: &Images) -> Images {
    let b = blur(x, 1.0);
    let (h2, w2) = (x.h.div_ceil(2), x.w.div_ceil(2));
    let mut v = Vec::with_capacity(x.n * x.c * h2 * w2);
    for k in 0..x.n * x.c {
        let p = b.plane(k);
        for y in 0..h2 {
            for xx in 0..w2 {
                v.push(p[2 * y * x.w + 2 * xx]);
            }
        }
    }
    Images { v, n: x.n, c: x.c, h: h2, w: w2 }
}

/// `cv2.pyrUp` to `h x w`: zeros between the pixels, then the blur times 4.
pub fn pyr_up(x: &Images, h: usize, w: usize) -> Images {
    let mut v = vec![0f32; x.n * x.c * h * w];
    for k in 0..x.n * x.c {
        let p = x.plane(k);
        for y in 0..x.h.min(h.div_ceil(2)) {
            for xx in 0..x.w.min(w.div_ceil(2)) {
                v[k * h * w + 2 * y * w + 2 * xx] = p[y * x.w + xx];
            }
        }
    }
    blur(&Images { v, n: x.n, c: x.c, h, w }, 4.0)
}

/// The Laplacian pyramid: `levels` levels, each the difference between a Gaussian level and the
/// next one brought back up; the last is the Gaussian residual. Summing back up restores `x`.
pub fn laplacian_pyramid(x: &Images, levels: usize) -> Vec<Images> {
    let mut out = vec![x.clone()];
    for _ in 1..levels {
        let Some(last) = out.last_mut() else { break };
        let down = pyr_down(last);
        let up = pyr_up(&down, last.h, last.w);
        last.v.iter_mut().zip(&up.v).for_each(|(a, b)| *a -= b);
        out.push(down);
    }
    out
}

/// The pyramid's sides for images of side `h x w`: from the image down while at least
/// [`MIN_SIDE`] (and at least one level).
pub fn level_sides(h: usize, w: usize) -> Vec<usize> {
    let mut sides = vec![h.min(w)];
    let mut s = h.min(w).div_ceil(2);
    while s >= MIN_SIDE {
        sides.push(s);
        s = s.div_ceil(2);
    }
    sides
}

/// `PER_IMAGE` random 7x7 neighbourhoods of every image of one level, normalised per channel:
/// `[n * PER_IMAGE, C * 49]` row-major.
fn descriptors(x: &Images, rng: &mut Rng) -> Result<Vec<f32>> {
    let r = NHOOD / 2;
    if x.h < NHOOD || x.w < NHOOD {
        return Err(Error::Shape(format!(
            "SWD: a {}x{} pyramid level is smaller than its {NHOOD}x{NHOOD} neighbourhoods",
            x.h, x.w
        )));
    }
    let len = x.c * NHOOD * NHOOD;
    let mut d = Vec::with_capacity(x.n * PER_IMAGE * len);
    for i in 0..x.n {
        for _ in 0..PER_IMAGE {
            let cy = rng.gen_range(r..x.h - r);
            let cx = rng.gen_range(r..x.w - r);
            for ch in 0..x.c {
                let p = x.plane(i * x.c + ch);
                for y in cy - r..=cy + r {
                    d.extend_from_slice(&p[y * x.w + cx - r..=y * x.w + cx + r]);
                }
            }
        }
    }
    // Per channel: mean 0, standard deviation 1 over all neighbourhoods and positions.
    let per = NHOOD * NHOOD;
    for ch in 0..x.c {
        let vals = || d.chunks(len).flat_map(|row| row[ch * per..(ch + 1) * per].iter());
        let n = (d.len() / len * per) as f64;
        let mean = vals().map(|&v| v as f64).sum::<f64>() / n;
        let var = vals().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        let sd = var.sqrt().max(1e-12);
        for row in d.chunks_mut(len) {
            for v in &mut row[ch * per..(ch + 1) * per] {
                *v = ((*v as f64 - mean) / sd) as f32;
            }
        }
    }
    Ok(d)
}

/// The sliced Wasserstein distance between descriptor sets `a` and `b` (`[m, len]` each).
pub fn sliced_wasserstein(a: &[f32], b: &[f32], len: usize, rng: &mut Rng) -> Result<f64> {
    if a.len() != b.len() || a.is_empty() || !a.len().is_multiple_of(len) {
        return Err(Error::Shape(format!(
            "SWD: descriptor sets of {} and {} values (rows of {len})",
            a.len(),
            b.len()
        )));
    }
    let m = a.len() / len;
    let mut total = 0f64;
    for _ in 0..REPEATS {
        let mut dirs: Vec<f32> = (0..len * DIRS).map(|_| StandardNormal.sample(rng)).collect();
        for j in 0..DIRS {
            let norm = (0..len).map(|i| dirs[i * DIRS + j].powi(2)).sum::<f32>().sqrt();
            (0..len).for_each(|i| dirs[i * DIRS + j] /= norm);
        }
        let project = |x: &[f32]| -> Vec<f32> {
            let mut p = vec![0f32; m * DIRS];
            crate::nn::gemm::gemm(m, DIRS, len, &mut p, x, false, &dirs, false, false, true);
            p
        };
        let (pa, pb) = (project(a), project(b));
        let mut dist = 0f64;
        let (mut ca, mut cb) = (vec![0f32; m], vec![0f32; m]);
        for j in 0..DIRS {
            for i in 0..m {
                ca[i] = pa[i * DIRS + j];
                cb[i] = pb[i * DIRS + j];
            }
            ca.sort_unstable_by(f32::total_cmp);
            cb.sort_unstable_by(f32::total_cmp);
            dist += ca.iter().zip(&cb).map(|(u, v)| (u - v).abs() as f64).sum::<f64>();
        }
        total += dist / (m * DIRS) as f64;
    }
    Ok(total / REPEATS as f64)
}

/// SWD x 1e3 per pyramid level (largest first) and their mean.
#[derive(Debug, Clone)]
pub struct SwdReport {
    pub sides: Vec<usize>,
    pub per_level: Vec<f64>,
    pub mean: f64,
    pub images: usize,
}

/// The SWD between image sets `a` and `b` of equal size.
pub fn swd(a: &Images, b: &Images, rng: &mut Rng) -> Result<SwdReport> {
    if (a.n, a.c, a.h, a.w) != (b.n, b.c, b.h, b.w) {
        return Err(Error::Shape(format!(
            "SWD compares sets of equal size and shape: {}x{}x{}x{} against {}x{}x{}x{}",
            a.n, a.c, a.h, a.w, b.n, b.c, b.h, b.w
        )));
    }
    let sides = level_sides(a.h, a.w);
    let (pa, pb) = (laplacian_pyramid(a, sides.len()), laplacian_pyramid(b, sides.len()));
    let len = a.c * NHOOD * NHOOD;
    let mut per_level = vec![];
    for (la, lb) in pa.iter().zip(&pb) {
        let (da, db) = (descriptors(la, rng)?, descriptors(lb, rng)?);
        per_level.push(1e3 * sliced_wasserstein(&da, &db, len, rng)?);
    }
    let mean = per_level.iter().sum::<f64>() / per_level.len() as f64;
    Ok(SwdReport { sides, per_level, mean, images: a.n })
}
