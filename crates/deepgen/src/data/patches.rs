//! Key patches for part-to-whole generation (Lee et al. 2018, "Unsupervised Holistic Image
//! Generation from Key Local Patches"): K square patches cut from an image, and the mask of where
//! they were.
//!
//! The paper's key patches come from an unsupervised part detector run beforehand (the authors'
//! `celebA_allbbs.mat`: boxes of eyes, nose, mouth). Digits have no named parts, so a patch here is
//! centred on a pixel drawn at random among the image's ink (grey value above 0.5, the channels'
//! maximum), or anywhere when the image has none, and moved inside the image. The authors' loader
//! then resizes every patch to the image's size (`get_part_image`), so that the part encoder is a
//! full-image encoder; [`to_image_size`] does the same (bilinearly).

use rand::Rng as _;

use crate::error::{Error, Result};
use crate::rng::Rng;

/// Where a patch was cut: its top-left corner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    pub top: usize,
    pub left: usize,
}

/// K patches of one image and the mask of their union.
#[derive(Debug, Clone)]
pub struct Cut {
    /// K patches of `[C, P, P]` values each, in the order drawn.
    pub patches: Vec<Vec<f32>>,
    pub places: Vec<Place>,
    /// `[H, W]`: 1 inside any patch, 0 elsewhere.
    pub mask: Vec<f32>,
}

/// The `[C, P, P]` patch of image `x` (`[C, H, W]`) at `place`.
pub fn crop(x: &[f32], (c, h, w): (usize, usize, usize), p: usize, place: Place) -> Vec<f32> {
    let mut out = Vec::with_capacity(c * p * p);
    for k in 0..c {
        for i in 0..p {
            let row = k * h * w + (place.top + i) * w + place.left;
            out.extend_from_slice(&x[row..row + p]);
        }
    }
    out
}

/// The mask of patches of side `p` at `places` on an `h x w` image.
pub fn mask(places: &[Place], p: usize, (h, w): (usize, usize)) -> Vec<f32> {
    let mut m = vec![0f32; h * w];
    for q in places {
        for i in q.top..(q.top + p).min(h) {
            for j in q.left..(q.left + p).min(w) {
                m[i * w + j] = 1.0;
            }
        }
    }
    m
}

/// Cuts `k` patches of side `p` from image `x` of shape `(c, h, w)`, placed with `rng`.
pub fn cut(x: &[f32], (c, h, w): (usize, usize, usize), k: usize, p: usize, rng: &mut Rng) -> Cut {
    let ink: Vec<usize> = (0..h * w)
        .filter(|&q| (0..c).map(|ch| x[ch * h * w + q]).fold(0f32, f32::max) > 0.5)
        .collect();
    let mut places = Vec::with_capacity(k);
    for _ in 0..k {
        let centre =
            if ink.is_empty() { rng.gen_range(0..h * w) } else { ink[rng.gen_range(0..ink.len())] };
        let (ci, cj) = (centre / w, centre % w);
        let top = ci.saturating_sub(p / 2).min(h - p);
        let left = cj.saturating_sub(p / 2).min(w - p);
        places.push(Place { top, left });
    }
    let patches = places.iter().map(|&q| crop(x, (c, h, w), p, q)).collect();
    Cut { patches, mask: mask(&places, p, (h, w)), places }
}

/// A `[C, P, P]` patch resized to `[C, H, W]` (the authors' part images), bilinearly.
pub fn to_image_size(patch: &[f32], p: usize, (h, w): (usize, usize)) -> Vec<f32> {
    crate::data::domains::resize(patch, p, p, h, w)
}

/// The default patch side for images of side `h`: 40 % of it (11 px of 28), at least 2.
pub fn default_side(h: usize) -> usize {
    ((h as f64 * 0.4).round() as usize).max(2)
}

/// Checks a patch side against the image.
pub fn check_side(p: usize, h: usize, w: usize) -> Result<()> {
    if p < 2 || p > h.min(w) {
        return Err(Error::config(format!(
            "--patch-size {p}: patches must be 2 to {} pixels on {h}x{w} images",
            h.min(w)
        )));
    }
    Ok(())
}

/// Images with the patches pasted at their places on a blank canvas (the first baseline).
pub fn pasted(cut: &Cut, (c, h, w): (usize, usize, usize), p: usize) -> Vec<f32> {
    let mut out = vec![0f32; c * h * w];
    for (patch, q) in cut.patches.iter().zip(&cut.places) {
        for k in 0..c {
            for i in 0..p {
                for j in 0..p {
                    out[k * h * w + (q.top + i) * w + q.left + j] = patch[k * p * p + i * p + j];
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patches_are_cut_where_the_ink_is_and_the_mask_covers_them() {
        // One ink pixel at (20, 3) of a 28 x 28 image: every patch holds it.
        let mut x = vec![0f32; 28 * 28];
        x[20 * 28 + 3] = 1.0;
        let mut r = crate::rng::rng(1);
        let c = cut(&x, (1, 28, 28), 3, 11, &mut r);
        for (q, patch) in c.places.iter().zip(&c.patches) {
            assert_eq!(*q, Place { top: 15, left: 0 });
            assert_eq!(patch.len(), 121);
            assert_eq!(patch[5 * 11 + 3], 1.0);
        }
        let on: usize = c.mask.iter().map(|&v| v as usize).sum();
        assert_eq!(on, 121);
        assert_eq!(c.mask[15 * 28], 1.0);
        assert_eq!(c.mask[14 * 28], 0.0);
        // Pasting puts the patches back where they were.
        let back = pasted(&c, (1, 28, 28), 11);
        assert_eq!(back, x);
    }

    #[test]
    fn a_patch_at_the_border_stays_inside_and_resizes_to_the_image() {
        let x: Vec<f32> = (0..3 * 8 * 8).map(|v| (v % 7) as f32 / 7.0).collect();
        let q = Place { top: 5, left: 5 };
        let p = crop(&x, (3, 8, 8), 3, q);
        assert_eq!(p[0], x[5 * 8 + 5]);
        assert_eq!(p[9 + 8], x[64 + 7 * 8 + 7]);
        assert_eq!(to_image_size(&p, 3, (8, 8)).len(), 3 * 64);
        assert!(check_side(9, 8, 8).is_err() && check_side(1, 8, 8).is_err());
        assert_eq!(default_side(28), 11);
    }
}
