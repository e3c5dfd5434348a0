//! Image transforms that make new domains of the embedded digits for image-to-image translation
//! (issue 23): thicker and thinner strokes, a colour, another resolution. Each works on one
//! `[C, H, W]` example at a time, values in [0, 1].
//!
//! - `thick` / `thin`: grey-level morphological dilation / erosion (Soille, *Morphological
//!   Image Analysis*, 2003, ch. 3) with the 3x3 cross (a pixel and its four neighbours) as the
//!   structuring element, `k` times; pixels outside the image are ignored (so a border does not
//!   erode a stroke). The cross rather than the 3x3 square: one erosion by the square removes
//!   most of a 2-pixel MNIST stroke.
//! - `tint`: a one-channel image times an RGB colour, giving `[3, H, W]`.
//! - `resize`: bilinear resampling with PyTorch's `align_corners=False` convention (output
//!   pixel centres mapped onto input pixel centres, coordinates clamped at the border), the
//!   `F.interpolate(mode="bilinear")` a Python reference would use.

use crate::error::{Error, Result};

/// The colours `+tint=NAME` knows, as RGB in [0, 1].
pub const COLOURS: [(&str, [f32; 3]); 8] = [
    ("red", [1.0, 0.0, 0.0]),
    ("green", [0.0, 1.0, 0.0]),
    ("blue", [0.0, 0.0, 1.0]),
    ("yellow", [1.0, 1.0, 0.0]),
    ("cyan", [0.0, 1.0, 1.0]),
    ("magenta", [1.0, 0.0, 1.0]),
    ("orange", [1.0, 0.5, 0.0]),
    ("white", [1.0, 1.0, 1.0]),
];

/// The RGB of colour `name`, or an error listing the colours.
pub fn colour(name: &str) -> Result<[f32; 3]> {
    COLOURS.iter().find(|(n, _)| *n == name).map(|(_, c)| *c).ok_or_else(|| {
        let names: Vec<&str> = COLOURS.iter().map(|(n, _)| *n).collect();
        Error::config(format!(
            "unknown colour `{}` (expected {})",
            crate::error::shown(name),
            names.join(", ")
        ))
    })
}

/// Dilation (`grow`) or erosion of every `h x w` plane of `x` by the 3x3 cross, in place.
pub fn morph(x: &mut [f32], h: usize, w: usize, grow: bool) {
    let mut out = vec![0f32; h * w];
    for plane in x.chunks_mut(h * w) {
        for i in 0..h {
            for j in 0..w {
                let mut v = plane[i * w + j];
                let mut take = |a: usize, b: usize| {
                    let u = plane[a * w + b];
                    v = if grow { v.max(u) } else { v.min(u) };
                };
                if i > 0 {
                    take(i - 1, j);
                }
                if i + 1 < h {
                    take(i + 1, j);
                }
                if j > 0 {
                    take(i, j - 1);
                }
                if j + 1 < w {
                    take(i, j + 1);
                }
                out[i * w + j] = v;
            }
        }
        plane.copy_from_slice(&out);
    }
}

/// A one-channel `h x w` image times `rgb`: the three planes of `[3, h, w]`.
pub fn tint(grey: &[f32], rgb: [f32; 3]) -> Vec<f32> {
    rgb.iter().flat_map(|&c| grey.iter().map(move |&v| v * c)).collect()
}

/// Bilinear resampling of every `h x w` plane of `x` to `nh x nw` (see the module doc).
pub fn resize(x: &[f32], h: usize, w: usize, nh: usize, nw: usize) -> Vec<f32> {
    // Source coordinate of output index `o` along an axis of `n` -> `m` pixels, and its two
    // neighbours with the weight of the second.
    let axis = |o: usize, n: usize, m: usize| -> (usize, usize, f32) {
        let s = ((o as f32 + 0.5) * n as f32 / m as f32 - 0.5).clamp(0.0, (n - 1) as f32);
        let lo = s.floor() as usize;
        let hi = (lo + 1).min(n - 1);
        (lo, hi, s - lo as f32)
    };
    let rows: Vec<_> = (0..nh).map(|i| axis(i, h, nh)).collect();
    let cols: Vec<_> = (0..nw).map(|j| axis(j, w, nw)).collect();
    let mut out = Vec::with_capacity(x.len() / (h * w) * nh * nw);
    for plane in x.chunks(h * w) {
        for &(r0, r1, fr) in &rows {
            for &(c0, c1, fc) in &cols {
                let at = |r: usize, c: usize| plane[r * w + c];
                let top = at(r0, c0) * (1.0 - fc) + at(r0, c1) * fc;
                let bottom = at(r1, c0) * (1.0 - fc) + at(r1, c1) * fc;
                out.push(top * (1.0 - fr) + bottom * fr);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dilation_and_erosion_by_the_cross() {
        // One bright pixel grows into a cross; eroding the cross gives the pixel back.
        let mut x = vec![0.0; 25];
        x[12] = 1.0;
        morph(&mut x, 5, 5, true);
        let cross: Vec<usize> = (0..25).filter(|&k| x[k] == 1.0).collect();
        assert_eq!(cross, vec![7, 11, 12, 13, 17]);
        morph(&mut x, 5, 5, false);
        assert_eq!((0..25).filter(|&k| x[k] == 1.0).collect::<Vec<_>>(), vec![12]);
        // Grey levels: max and min over the cross; the border is not zero padding.
        let mut g = vec![0.2, 0.9, 0.4, 0.1];
        morph(&mut g, 2, 2, false);
        assert_eq!(g, vec![0.2, 0.1, 0.1, 0.1]);
    }

    #[test]
    fn tint_and_bilinear_resize_by_hand() {
        assert_eq!(
            tint(&[0.5, 1.0], colour("orange").unwrap()),
            vec![0.5, 1.0, 0.25, 0.5, 0.0, 0.0]
        );
        assert!(colour("mauve").unwrap_err().to_string().contains("expected red, green"));
        // 2x2 -> 4x4 with align_corners=False: sources -0.25 (clamped to 0), 0.25, 0.75, 1.25
        // (clamped to 1), as torch.nn.functional.interpolate gives.
        let up = resize(&[0.0, 1.0, 2.0, 3.0], 2, 2, 4, 4);
        let row0 = [0.0, 0.25, 0.75, 1.0];
        assert_eq!(&up[..4], &row0);
        assert_eq!(&up[4..8], &row0.map(|v| v + 0.5));
        assert_eq!(&up[12..], &row0.map(|v| v + 2.0));
        // Down by two averages each 2x2 block (sources 0.5, 2.5).
        let big: Vec<f32> = (0..16).map(|v| v as f32).collect();
        assert_eq!(resize(&big, 4, 4, 2, 2), vec![2.5, 4.5, 10.5, 12.5]);
    }
}
