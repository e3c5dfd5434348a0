//! Sample quality through a classifier: Fréchet distance between Gaussian
//! fits of features (FID, here on a digit classifier's features: "FID on
//! MNIST", not comparable with Inception FID), the Inception score of the
//! class posteriors, and per-class coverage.

use nalgebra::{DMatrix, DVector, SymmetricEigen};

use crate::error::{Error, Result};

/// Mean and covariance (denominator n - 1) of feature rows.
#[derive(Debug, Clone)]
pub struct GaussianFit {
    pub mean: DVector<f64>,
    pub cov: DMatrix<f64>,
    pub n: usize,
}

impl GaussianFit {
    /// Fits `n` rows of `d` features (`rows.len() == n * d`).
    pub fn new(rows: &[f32], d: usize) -> Result<Self> {
        if d == 0 || !rows.len().is_multiple_of(d) || rows.len() / d < 2 {
            return Err(Error::Shape(format!(
                "a Gaussian fit needs at least 2 rows of {d} features, got {} values",
                rows.len()
            )));
        }
        let n = rows.len() / d;
        let m = DMatrix::from_row_slice(n, d, &rows.iter().map(|&v| v as f64).collect::<Vec<_>>());
        let mean = DVector::from_iterator(d, m.column_iter().map(|c| c.mean()));
        let mut centred = m;
        for (j, mut c) in centred.column_iter_mut().enumerate() {
            c.add_scalar_mut(-mean[j]);
        }
        let cov = centred.transpose() * &centred / (n as f64 - 1.0);
        Ok(Self { mean, cov, n })
    }
}

/// The principal square root of a symmetric positive semi-definite matrix
/// (negative eigenvalues from rounding are clamped to 0).
fn sqrt_psd(a: &DMatrix<f64>) -> DMatrix<f64> {
    let e = SymmetricEigen::new(a.clone());
    let s = DMatrix::from_diagonal(&e.eigenvalues.map(|v| v.max(0.0).sqrt()));
    &e.eigenvectors * s * e.eigenvectors.transpose()
}

/// Fréchet distance between N(m1, C1) and N(m2, C2):
/// |m1 - m2|^2 + tr(C1 + C2 - 2 (C1 C2)^(1/2)). The trace of (C1 C2)^(1/2)
/// is computed as tr((C1^(1/2) C2 C1^(1/2))^(1/2)), a symmetric PSD matrix
/// with the same eigenvalues, so no non-symmetric square root is needed.
pub fn frechet_distance(a: &GaussianFit, b: &GaussianFit) -> Result<f64> {
    if a.mean.len() != b.mean.len() {
        return Err(Error::Shape(format!(
            "Fréchet distance between {}- and {}-dimensional features",
            a.mean.len(),
            b.mean.len()
        )));
    }
    let s1 = sqrt_psd(&a.cov);
    let mid = &s1 * &b.cov * &s1;
    let mid = (&mid + mid.transpose()) * 0.5;
    let cross: f64 = SymmetricEigen::new(mid).eigenvalues.iter().map(|v| v.max(0.0).sqrt()).sum();
    let d = &a.mean - &b.mean;
    Ok((d.dot(&d) + a.cov.trace() + b.cov.trace() - 2.0 * cross).max(0.0))
}

/// Inception score exp(E_x KL(p(y|x) || p(y))) of class posteriors
/// (`probs`: n rows of k probabilities); 1 for identical posteriors, k for
/// confident predictions spread evenly over k classes.
pub fn inception_score(probs: &[f32], k: usize) -> Result<f64> {
    if k == 0 || !probs.len().is_multiple_of(k) || probs.is_empty() {
        return Err(Error::Shape(format!(
            "inception score: {} values are not rows of {k} class probabilities",
            probs.len()
        )));
    }
    let n = probs.len() / k;
    let mut marginal = vec![0f64; k];
    for row in probs.chunks(k) {
        for (m, &p) in marginal.iter_mut().zip(row) {
            *m += p as f64 / n as f64;
        }
    }
    let mut kl = 0.0;
    for row in probs.chunks(k) {
        for (&p, &m) in row.iter().zip(&marginal) {
            let p = p as f64;
            if p > 0.0 {
                kl += p * (p.ln() - m.ln());
            }
        }
    }
    Ok((kl / n as f64).exp())
}

/// Counts of the predicted class (argmax) of each row of `probs`.
pub fn class_counts(probs: &[f32], k: usize) -> Vec<usize> {
    let mut c = vec![0usize; k];
    for row in probs.chunks(k) {
        let best = crate::nn::argmax(row);
        c[best] += 1;
    }
    c
}

/// KL(q || uniform) of a histogram of counts over `k` bins (the empty ones included), in nats.
pub fn kl_to_uniform(counts: &[usize]) -> f64 {
    let n: usize = counts.iter().sum();
    let k = counts.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let q = c as f64 / n as f64;
            q * (q * k).ln()
        })
        .sum()
}

/// How well a categorical code (InfoGAN's c) lines up with classes:
/// `counts[k][c]` = samples generated with code value k that a classifier
/// put in class c.
#[derive(Debug, Clone, PartialEq)]
pub struct CodeAgreement {
    pub n: usize,
    /// Share of samples in their code's most frequent class (codes may share a class).
    pub purity: f64,
    /// Distinct classes among the codes' most frequent classes.
    pub distinct: usize,
    /// Best one-to-one assignment of codes to classes: share of samples whose
    /// class is their code's assigned class (1 - this is InfoGAN's "error"
    /// on MNIST, 5 % in Chen et al. 2016). None with more than 20 classes.
    pub matched: Option<f64>,
    /// The assignment: class of each code (None: left unmatched when codes outnumber classes).
    pub mapping: Vec<Option<usize>>,
}

/// [`CodeAgreement`] of a code-by-class count table. The one-to-one
/// assignment is exact (dynamic programming over subsets of classes), not greedy.
pub fn code_class_agreement(counts: &[Vec<usize>]) -> CodeAgreement {
    let k = counts.len();
    let c = counts.first().map(|r| r.len()).unwrap_or(0);
    let n: usize = counts.iter().flatten().sum();
    let argmax = |r: &Vec<usize>| {
        r.iter().enumerate().max_by_key(|&(i, &v)| (v, std::cmp::Reverse(i))).map(|(i, _)| i)
    };
    let majority: Vec<Option<usize>> = counts.iter().map(argmax).collect();
    let pure: usize = counts.iter().zip(&majority).map(|(r, m)| m.map(|m| r[m]).unwrap_or(0)).sum();
    let mut distinct: Vec<usize> = majority.iter().flatten().copied().collect();
    distinct.sort_unstable();
    distinct.dedup();
    let (matched, mapping) = if c <= 20 && n > 0 {
        // best[i][mask]: most samples matched by codes 0..i using exactly the classes in `mask`.
        let full = 1usize << c;
        let mut best = vec![vec![None::<usize>; full]; k + 1];
        best[0][0] = Some(0);
        for i in 0..k {
            for mask in 0..full {
                let Some(v) = best[i][mask] else { continue };
                // Code i unmatched.
                if best[i + 1][mask].is_none_or(|b| b < v) {
                    best[i + 1][mask] = Some(v);
                }
                for cl in (0..c).filter(|cl| mask & (1 << cl) == 0) {
                    let w = v + counts[i][cl];
                    let m2 = mask | (1 << cl);
                    if best[i + 1][m2].is_none_or(|b| b < w) {
                        best[i + 1][m2] = Some(w);
                    }
                }
            }
        }
        let (mut mask, total) = best[k]
            .iter()
            .enumerate()
            .filter_map(|(m, v)| v.map(|v| (m, v)))
            .max_by_key(|&(m, v)| (v, std::cmp::Reverse(m)))
            .unwrap_or((0, 0));
        // Walk back to recover each code's class.
        let mut mapping = vec![None; k];
        for i in (0..k).rev() {
            let here = best[i + 1][mask].unwrap_or(0);
            if best[i][mask] == Some(here) {
                continue;
            }
            let cl = (0..c).find(|&cl| {
                mask & (1 << cl) != 0
                    && best[i][mask & !(1 << cl)].is_some_and(|b| b + counts[i][cl] == here)
            });
            if let Some(cl) = cl {
                mapping[i] = Some(cl);
                mask &= !(1 << cl);
            }
        }
        (Some(total as f64 / n as f64), mapping)
    } else {
        (None, vec![None; k])
    };
    CodeAgreement {
        n,
        purity: if n > 0 { pure as f64 / n as f64 } else { 0.0 },
        distinct: distinct.len(),
        matched,
        mapping,
    }
}
