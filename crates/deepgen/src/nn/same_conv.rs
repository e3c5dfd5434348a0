//! Stride-1 convolutions (ProGAN's and the translation networks' 3x3 and 7x7 layers, "same" or,
//! after reflection padding, unpadded) on the CPU without an im2col buffer.
//!
//! On an image zero-padded by p to `[H + 2p, W + 2p, C]`, the k taps of kernel row ky at output
//! pixel (i, j) are k C contiguous values, starting at ((i + ky) (W + 2p) + j) C. Over the
//! output pixels taken on the padded width (j up to W + 2p, the last k - 1 of each row junk),
//! row r of that matrix starts C values after row r - 1: a matrix whose rows overlap in
//! memory, which the `gemm` crate reads through its strides ([`super::gemm::gemm_strided`]).
//! So the convolution is k products of `[M, k C] x [k C, N]` per image (M = (Ho - 1) (W + 2p) +
//! Wo), added up, and the valid rows copied out; im2col wrote and the product reread k^2
//! copies of the input (a tenth of a ProGAN step), the padded image is one. The junk rows cost
//! (W + 2p) / Wo more products, so [`eligible`] keeps the im2col path for narrow images.
//!
//! The backward passes are the same products: the input gradient is the convolution of the
//! output gradient, padded by k - 1 - p, with the kernel flipped and its channels swapped
//! ([`Same::adjoint`], [`flipped`]); the weight gradient k products `[k C, M] x [M, N]` over
//! the same overlapping matrix against the output gradient laid on the padded width (junk rows
//! zero). The stride-1 transposed convolution with padding p is the convolution with padding
//! k - 1 - p and the taps reversed ([`up_as_down`]).

use rayon::prelude::*;

use super::gemm::gemm_strided;
use super::with_scratch;

/// The geometry: the kernel side, the zero padding and the input image.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Same {
    pub k: usize,
    pub pad: usize,
    pub h: usize,
    pub w: usize,
}

impl Same {
    fn padded_w(&self) -> usize {
        self.w + 2 * self.pad
    }
    /// The output's sides.
    pub fn out(&self) -> (usize, usize) {
        (self.h + 2 * self.pad + 1 - self.k, self.w + 2 * self.pad + 1 - self.k)
    }
    /// Rows of one image's product (the last image row's junk dropped).
    fn rows(&self) -> usize {
        let (ho, wo) = self.out();
        (ho - 1) * self.padded_w() + wo
    }
    fn padded_len(&self, c: usize) -> usize {
        (self.h + 2 * self.pad) * self.padded_w() * c
    }
    /// The convolution whose output is this one's input gradient: over the output, padded by
    /// k - 1 - p.
    pub fn adjoint(&self) -> Self {
        let (ho, wo) = self.out();
        Self { k: self.k, pad: self.k - 1 - self.pad, h: ho, w: wo }
    }
    /// Whether the implicit path applies and pays here.
    pub fn eligible(&self) -> bool {
        let (k, p) = (self.k, self.pad);
        k >= 1
            && p < k
            && self.h + 2 * p >= k
            && self.w + 2 * p >= k
            && 2 * self.padded_w() <= 3 * (self.w + 2 * p + 1 - k)
    }

    /// Image `x` (`[H, W, C]`) into `out` (`[H + 2p, W + 2p, C]`), zero borders; every value of
    /// `out` written.
    fn pad_into(&self, x: &[f32], c: usize, out: &mut [f32]) {
        let (p, wp) = (self.pad, self.padded_w());
        out[..p * wp * c].fill(0.0);
        for i in 0..self.h {
            let row = &mut out[(p + i) * wp * c..(p + i + 1) * wp * c];
            row[..p * c].fill(0.0);
            row[p * c..(p + self.w) * c].copy_from_slice(&x[i * self.w * c..(i + 1) * self.w * c]);
            row[(p + self.w) * c..].fill(0.0);
        }
        out[(p + self.h) * wp * c..self.padded_len(c)].fill(0.0);
    }

    /// `f` on image `x` zero-padded (`x` itself when there is no padding).
    fn padded<R>(&self, x: &[f32], c: usize, f: impl FnOnce(&[f32]) -> R) -> R {
        if self.pad == 0 {
            return f(x);
        }
        with_scratch(self.padded_len(c), |padded| {
            self.pad_into(x, c, padded);
            f(padded)
        })
    }

    /// The k products of one padded image into `grid` (`[rows, n]`).
    fn product(&self, padded: &[f32], c: usize, wt: &[f32], n: usize, grid: &mut [f32]) {
        let (k, wp) = (self.k, self.padded_w());
        for ky in 0..k {
            let taps = &wt[ky * k * c * n..(ky + 1) * k * c * n];
            let a = &padded[ky * wp * c..];
            gemm_strided((self.rows(), n, k * c), grid, a, (c, 1), taps, (n, 1), ky > 0);
        }
    }
}

/// Whether the implicit path applies to a stride-`stride` convolution with padding `pad` over
/// `h x w` images, and pays: stride 1, and at most half again as many products as output pixels.
pub(crate) fn eligible(k: usize, stride: usize, pad: usize, h: usize, w: usize) -> bool {
    stride == 1 && Same { k, pad, h, w }.eligible()
}

/// `[B, H, W, C]` convolved with `wt` (`[k k C, N]`, tap-major rows (ky, kx, c)), plus `bias`:
/// `[B, Ho, Wo, N]`.
pub(crate) fn forward(
    g: Same,
    x: &[f32],
    c: usize,
    wt: &[f32],
    n: usize,
    bias: Option<&[f32]>,
) -> Vec<f32> {
    let ((ho, wo), wp) = (g.out(), g.padded_w());
    let (hw, per) = (g.h * g.w, ho * wo * n);
    let b = x.len() / (hw * c).max(1);
    let mut y = vec![0f32; b * per];
    y.par_chunks_mut(per.max(1)).zip(x.par_chunks((hw * c).max(1))).for_each(|(yb, xb)| {
        g.padded(xb, c, |padded| {
            with_scratch(g.rows() * n, |grid| {
                g.product(padded, c, wt, n, grid);
                for i in 0..ho {
                    for j in 0..wo {
                        let (out, src) = ((i * wo + j) * n, (i * wp + j) * n);
                        let dst = &mut yb[out..out + n];
                        match bias {
                            Some(bias) => dst
                                .iter_mut()
                                .zip(&grid[src..src + n])
                                .zip(bias)
                                .for_each(|((d, &v), &bv)| *d = v + bv),
                            None => dst.copy_from_slice(&grid[src..src + n]),
                        }
                    }
                }
            })
        })
    });
    y
}

/// The weight gradient `[k k C, N]` of [`forward`] at input `x` for output gradient `dy`
/// (`[B, Ho, Wo, N]`).
pub(crate) fn weight_grad(g: Same, x: &[f32], c: usize, dy: &[f32], n: usize) -> Vec<f32> {
    let (k, hw, wp) = (g.k, g.h * g.w, g.padded_w());
    let (ho, wo) = g.out();
    let kc = k * c;
    // A fixed split (a block of images per thread) and an ordered sum of the blocks' partial
    // gradients: rayon's fold would split by work stealing, and the sum's rounding with it.
    let b = x.len() / (hw * c).max(1);
    let per = b.div_ceil(candle_core::utils::get_num_threads().max(1)).max(1);
    let parts: Vec<Vec<f32>> = x
        .par_chunks((per * hw * c).max(1))
        .zip(dy.par_chunks((per * ho * wo * n).max(1)))
        .map(|(xs, dys)| {
            let mut acc = vec![0f32; k * kc * n];
            for (xb, db) in xs.chunks((hw * c).max(1)).zip(dys.chunks((ho * wo * n).max(1))) {
                g.padded(xb, c, |padded| {
                    with_scratch(g.rows() * n, |grid| {
                        // dy on the padded width, the junk rows zero.
                        for i in 0..ho {
                            for j in 0..wp {
                                let r = i * wp + j;
                                if r >= g.rows() {
                                    break;
                                }
                                let dst = &mut grid[r * n..(r + 1) * n];
                                if j < wo {
                                    let src = (i * wo + j) * n;
                                    dst.copy_from_slice(&db[src..src + n]);
                                } else {
                                    dst.fill(0.0);
                                }
                            }
                        }
                        for ky in 0..k {
                            let a = &padded[ky * wp * c..];
                            let out = &mut acc[ky * kc * n..(ky + 1) * kc * n];
                            gemm_strided((kc, n, g.rows()), out, a, (1, c), grid, (n, 1), true);
                        }
                    })
                });
            }
            acc
        })
        .collect();
    let mut parts = parts.into_iter();
    let mut out = parts.next().unwrap_or_else(|| vec![0f32; k * kc * n]);
    for p in parts {
        out.iter_mut().zip(&p).for_each(|(a, &v)| *a += v);
    }
    out
}

/// The kernel for the input gradient: `[k k N, C]` from `wt` (`[k k C, N]`), the taps reversed
/// and the channels swapped.
pub(crate) fn flipped(wt: &[f32], k: usize, c: usize, n: usize) -> Vec<f32> {
    let mut out = vec![0f32; k * k * n * c];
    for ky in 0..k {
        for kx in 0..k {
            let src = ((k - 1 - ky) * k + (k - 1 - kx)) * c;
            let dst = (ky * k + kx) * n;
            for ci in 0..c {
                for co in 0..n {
                    out[(dst + co) * c + ci] = wt[(src + ci) * n + co];
                }
            }
        }
    }
    out
}

/// The transposed convolution's weight (`[C, k k N]`, columns (ky, kx, n)) as this
/// convolution's (`[k k C, N]`): with stride 1 and same padding it is the convolution with the
/// taps reversed.
pub(crate) fn up_as_down(wt: &[f32], k: usize, c: usize, n: usize) -> Vec<f32> {
    let mut out = vec![0f32; k * k * c * n];
    for ky in 0..k {
        for kx in 0..k {
            let src = ((k - 1 - ky) * k + (k - 1 - kx)) * n;
            let dst = (ky * k + kx) * c;
            for ci in 0..c {
                let from = &wt[ci * k * k * n + src..ci * k * k * n + src + n];
                out[(dst + ci) * n..(dst + ci + 1) * n].copy_from_slice(from);
            }
        }
    }
    out
}

/// `[r, s]` row-major to `[s, r]`.
pub(crate) fn transposed(a: &[f32], r: usize, s: usize) -> Vec<f32> {
    let mut out = vec![0f32; r * s];
    for i in 0..r {
        for j in 0..s {
            out[j * r + i] = a[i * s + j];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The convolution by its definition, in f64.
    fn direct(g: Same, x: &[f32], c: usize, wt: &[f32], n: usize) -> Vec<f64> {
        let (h, w, k, p) = (g.h as isize, g.w as isize, g.k, g.pad as isize);
        let (ho, wo) = g.out();
        let b = x.len() / (g.h * g.w * c);
        let mut y = vec![0f64; b * ho * wo * n];
        for bi in 0..b {
            for i in 0..ho {
                for j in 0..wo {
                    for ky in 0..k {
                        for kx in 0..k {
                            let (u, v) =
                                (i as isize - p + ky as isize, j as isize - p + kx as isize);
                            if u < 0 || v < 0 || u >= h || v >= w {
                                continue;
                            }
                            for ci in 0..c {
                                let xv = x[((bi * g.h + u as usize) * g.w + v as usize) * c + ci];
                                for co in 0..n {
                                    let wv = wt[((ky * k + kx) * c + ci) * n + co];
                                    y[((bi * ho + i) * wo + j) * n + co] += xv as f64 * wv as f64;
                                }
                            }
                        }
                    }
                }
            }
        }
        y
    }

    fn values(n: usize, seed: usize) -> Vec<f32> {
        (0..n).map(|i| (((i + seed) * 7919 % 1000) as f32 - 500.0) / 500.0).collect()
    }

    /// Forward, weight gradient and input gradient against the definition (the gradients as
    /// the derivatives of sum(y * r) for a fixed r), for "same" 3x3 and 7x7 kernels, unpadded
    /// 3x3 and 7x7 ones (after reflection padding), 1x1 and an even 2x2, on square and oblong
    /// images, one and three images.
    #[test]
    fn the_implicit_convolution_and_its_gradients_match_the_definition() {
        let cases = [
            (3, 1, 5, 4, 3, 5, 1),
            (3, 1, 7, 9, 4, 2, 3),
            (7, 3, 12, 13, 2, 3, 2),
            (3, 0, 8, 9, 3, 4, 2),
            (7, 0, 22, 21, 2, 2, 1),
            (1, 0, 3, 4, 5, 3, 2),
            (2, 1, 5, 6, 2, 3, 2),
        ];
        for (k, pad, h, w, c, n, b) in cases {
            let g = Same { k, pad, h, w };
            assert!(g.eligible() && g.adjoint().eligible(), "{g:?}");
            let (ho, wo) = g.out();
            let x = values(b * h * w * c, 1);
            let wt = values(k * k * c * n, 2);
            let bias = values(n, 3);
            let y = forward(g, &x, c, &wt, n, Some(&bias));
            let want = direct(g, &x, c, &wt, n);
            assert_eq!(y.len(), want.len());
            for (i, (a, e)) in y.iter().zip(&want).enumerate() {
                let e = e + bias[i % n] as f64;
                assert!((*a as f64 - e).abs() < 1e-4 * (1.0 + e.abs()), "{g:?} y[{i}] {a} vs {e}");
            }
            let r = values(b * ho * wo * n, 4);
            // By linearity in w: d sum(y r) / dw_q = sum(direct(x, e_q) * r).
            let dw = weight_grad(g, &x, c, &r, n);
            for q in [0, 1, k * k * c * n / 2, k * k * c * n - 1] {
                let mut e = vec![0f32; k * k * c * n];
                e[q] = 1.0;
                let want: f64 =
                    direct(g, &x, c, &e, n).iter().zip(&r).map(|(a, &b)| a * b as f64).sum();
                assert!((dw[q] as f64 - want).abs() < 1e-3 * (1.0 + want.abs()), "{g:?} dw[{q}]");
            }
            let dx = forward(g.adjoint(), &r, n, &flipped(&wt, k, c, n), c, None);
            assert_eq!(dx.len(), x.len());
            for q in [0, 2, b * h * w * c / 2, b * h * w * c - 1] {
                let mut e = vec![0f32; b * h * w * c];
                e[q] = 1.0;
                let want: f64 =
                    direct(g, &e, c, &wt, n).iter().zip(&r).map(|(a, &b)| a * b as f64).sum();
                assert!((dx[q] as f64 - want).abs() < 1e-3 * (1.0 + want.abs()), "{g:?} dx[{q}]");
            }
        }
    }

    #[test]
    fn narrow_images_and_other_geometries_keep_the_im2col_path() {
        assert!(eligible(3, 1, 1, 4, 4) && eligible(7, 1, 3, 28, 28) && eligible(7, 1, 0, 34, 34));
        assert!(!eligible(3, 1, 1, 3, 3), "5/3 as many products");
        assert!(!eligible(7, 1, 0, 10, 10), "10/4 as many products");
        assert!(!eligible(4, 2, 1, 28, 28) && !eligible(3, 2, 1, 28, 28));
        assert!(!eligible(3, 1, 3, 28, 28), "padding beyond the kernel");
        assert_eq!(
            transposed(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2, 3),
            [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]
        );
    }
}
