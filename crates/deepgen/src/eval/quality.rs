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
            return Err(Error::Shape(format!("a Gaussian fit needs at least 2 rows of {d} features, got {} values", rows.len())));
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
        return Err(Error::Shape(format!("Fréchet distance between {}- and {}-dimensional features", a.mean.len(), b.mean.len())));
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
        return Err(Error::Shape(format!("inception score: {} values are not rows of {k} class probabilities", probs.len())));
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
        let best = row.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i).unwrap_or(0);
        c[best] += 1;
    }
    c
}

/// KL(q || uniform) of a histogram of counts over `k` bins (the empty ones included), in nats.
pub fn kl_to_uniform(counts: &[usize]) -> f64 {
    let n: usize = counts.iter().sum();
    let k = counts.len() as f64;
    counts.iter().filter(|&&c| c > 0).map(|&c| {
        let q = c as f64 / n as f64;
        q * (q * k).ln()
    }).sum()
}
