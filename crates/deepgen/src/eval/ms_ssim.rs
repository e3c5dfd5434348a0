//! Multi-scale structural similarity (Wang, Simoncelli & Bovik 2003) between pairs of images, as
//! Odena et al. (2017) and Karras et al. (2018, Table 3) use it for diversity: the mean MS-SSIM of
//! random pairs of samples, lower meaning more varied, compared with the same number of pairs of
//! real images. Follows the reference's `metrics/ms_ssim.py` (from tensorflow/models): five
//! scales weighted 0.0448, 0.2856, 0.3001, 0.2363, 0.1333; at each a Gaussian window of 11 pixels,
//! sigma 1.5 ('valid' filtering, window and sigma shrunk to the image at the small scales);
//! K1 0.01, K2 0.03 for values in [0, 1]; 2x2 averages between scales; contrast-structure terms
//! of the first four scales and the SSIM of the last, each clipped at 0. Two differences: a scale
//! with an odd side drops its last row or column before averaging (the reference's slicing
//! needs even sides; 28-px digits reach 7), and images under 16 pixels a side (the 8x8 digits)
//! use as many scales as leave a pixel, their weights rescaled to sum to 1 (the reference fails).

use super::swd::Images;
use crate::error::{Error, Result};

const WEIGHTS: [f64; 5] = [0.0448, 0.2856, 0.3001, 0.2363, 0.1333];
const FILTER: usize = 11;
const SIGMA: f64 = 1.5;
const C1: f64 = 0.01 * 0.01;
const C2: f64 = 0.03 * 0.03;

/// One image of `c` planes `h x w`, f64.
#[derive(Clone)]
struct Planes {
    v: Vec<f64>,
    c: usize,
    h: usize,
    w: usize,
}

/// The normalised Gaussian window of the reference's `_FSpecialGauss`.
fn window(size: usize, sigma: f64) -> Vec<f64> {
    let radius = (size / 2) as f64;
    let offset = if size.is_multiple_of(2) { 0.5 } else { 0.0 };
    let mut g = Vec::with_capacity(size * size);
    for i in 0..size {
        for j in 0..size {
            let (x, y) = (i as f64 - radius + offset, j as f64 - radius + offset);
            g.push((-(x * x + y * y) / (2.0 * sigma * sigma)).exp());
        }
    }
    let s: f64 = g.iter().sum();
    g.iter().map(|v| v / s).collect()
}

/// 'Valid' filtering of every plane of `x` by `win` (`size x size`).
fn filter(x: &[f64], c: usize, h: usize, w: usize, win: &[f64], size: usize) -> Vec<f64> {
    let (oh, ow) = (h - size + 1, w - size + 1);
    let mut out = Vec::with_capacity(c * oh * ow);
    for ch in 0..c {
        let p = &x[ch * h * w..(ch + 1) * h * w];
        for y in 0..oh {
            for xx in 0..ow {
                let mut s = 0.0;
                for i in 0..size {
                    let row = &p[(y + i) * w + xx..(y + i) * w + xx + size];
                    s += row
                        .iter()
                        .zip(&win[i * size..(i + 1) * size])
                        .map(|(a, b)| a * b)
                        .sum::<f64>();
                }
                out.push(s);
            }
        }
    }
    out
}

/// (SSIM, contrast-structure) of two images at one scale.
fn ssim_cs(a: &Planes, b: &Planes) -> (f64, f64) {
    let size = FILTER.min(a.h).min(a.w);
    let win = window(size, size as f64 * SIGMA / FILTER as f64);
    let f = |x: &[f64]| filter(x, a.c, a.h, a.w, &win, size);
    let prod = |x: &[f64], y: &[f64]| -> Vec<f64> { x.iter().zip(y).map(|(u, v)| u * v).collect() };
    let (mu1, mu2) = (f(&a.v), f(&b.v));
    let (s11, s22, s12) = (f(&prod(&a.v, &a.v)), f(&prod(&b.v, &b.v)), f(&prod(&a.v, &b.v)));
    let (mut ssim, mut cs) = (0.0, 0.0);
    for i in 0..mu1.len() {
        let (m11, m22, m12) = (mu1[i] * mu1[i], mu2[i] * mu2[i], mu1[i] * mu2[i]);
        let v1 = 2.0 * (s12[i] - m12) + C2;
        let v2 = (s11[i] - m11) + (s22[i] - m22) + C2;
        ssim += ((2.0 * m12 + C1) * v1) / ((m11 + m22 + C1) * v2);
        cs += v1 / v2;
    }
    let n = mu1.len() as f64;
    (ssim / n, cs / n)
}

/// 2x2 averages (an odd side loses its last row or column).
fn halve(x: &Planes) -> Planes {
    let (h2, w2) = (x.h / 2, x.w / 2);
    let mut v = Vec::with_capacity(x.c * h2 * w2);
    for ch in 0..x.c {
        let p = &x.v[ch * x.h * x.w..];
        for y in 0..h2 {
            for xx in 0..w2 {
                let at = |dy: usize, dx: usize| p[(2 * y + dy) * x.w + 2 * xx + dx];
                v.push(0.25 * (at(0, 0) + at(1, 0) + at(0, 1) + at(1, 1)));
            }
        }
    }
    Planes { v, c: x.c, h: h2, w: w2 }
}

/// MS-SSIM of images `i` and `j` of `x`.
pub fn ms_ssim(x: &Images, i: usize, j: usize) -> Result<f64> {
    if i >= x.n || j >= x.n {
        return Err(Error::Shape(format!("MS-SSIM of images {i} and {j} of {}", x.n)));
    }
    let d = x.c * x.h * x.w;
    let plane = |k: usize| Planes {
        v: x.v[k * d..(k + 1) * d].iter().map(|&v| v as f64).collect(),
        c: x.c,
        h: x.h,
        w: x.w,
    };
    let (mut a, mut b) = (plane(i), plane(j));
    let w = scale_weights(x.h, x.w);
    let mut out = 1.0;
    for (s, wt) in w.iter().enumerate() {
        let (ssim, cs) = ssim_cs(&a, &b);
        let term = if s + 1 == w.len() { ssim } else { cs };
        out *= term.max(0.0).powf(*wt);
        a = halve(&a);
        b = halve(&b);
    }
    Ok(out)
}

/// The scales' weights: the reference's five for images of 16 pixels a side or more; for smaller
/// images, the first of them that still leave a pixel, rescaled to sum to 1.
pub fn scale_weights(h: usize, w: usize) -> Vec<f64> {
    let levels = (h.min(w).max(1).ilog2() as usize + 1).min(WEIGHTS.len());
    if levels == WEIGHTS.len() {
        return WEIGHTS.to_vec();
    }
    let total: f64 = WEIGHTS[..levels].iter().sum();
    WEIGHTS[..levels].iter().map(|v| v / total).collect()
}

/// The mean MS-SSIM of consecutive pairs (0, 1), (2, 3), ... of the first `2 * pairs` images.
pub fn mean_ms_ssim(x: &Images, pairs: usize) -> Result<f64> {
    let pairs = pairs.min(x.n / 2);
    if pairs == 0 {
        return Err(Error::Shape("MS-SSIM needs at least two images".into()));
    }
    let mut s = 0.0;
    for k in 0..pairs {
        s += ms_ssim(x, 2 * k, 2 * k + 1)?;
    }
    Ok(s / pairs as f64)
}
