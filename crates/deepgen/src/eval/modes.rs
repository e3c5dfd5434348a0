//! Mode collapse on mixtures with known modes (the 2-D ring of 8 and grid
//! of 25): which modes the samples cover and how many samples are good.
//!
//! A sample is *high quality* when it lies within 3 standard deviations of
//! its nearest mode, and is then registered to that mode. A mode is
//! *covered* when at least `min_share` of all samples are registered to it
//! (default 20 of 2,500, i.e. 0.8%, the count threshold of the protocol
//! VEEGAN and PacGAN report on). The reverse KL is KL(q || p) between the
//! histogram q of high-quality samples over modes and the true, uniform p.

/// What [`mode_report`] measured.
#[derive(Debug, Clone, PartialEq)]
pub struct ModeReport {
    pub samples: usize,
    pub modes: usize,
    /// Modes with at least `min_share` of the samples registered.
    pub covered: usize,
    /// Share of samples within 3 sigma of a mode.
    pub high_quality: f64,
    /// KL(generated mode histogram || uniform), in nats (0 = every mode equally often).
    pub reverse_kl: f64,
    /// High-quality samples registered to each mode.
    pub counts: Vec<usize>,
    pub min_share: f64,
}

/// The default share of samples a mode needs to count as covered: 20 of 2,500.
pub const DEFAULT_MIN_SHARE: f64 = 20.0 / 2500.0;

/// Measures coverage of `means` (each a mixture component with standard deviation `sigma`) by
/// `samples`.
pub fn mode_report(
    samples: &[[f32; 2]],
    means: &[[f32; 2]],
    sigma: f32,
    min_share: f64,
) -> ModeReport {
    let mut counts = vec![0usize; means.len()];
    let mut hq = 0usize;
    for s in samples {
        let (k, d2) = means
            .iter()
            .enumerate()
            .map(|(k, m)| (k, (s[0] - m[0]).powi(2) + (s[1] - m[1]).powi(2)))
            .fold((0, f32::INFINITY), |a, b| if b.1 < a.1 { b } else { a });
        if d2.sqrt() <= 3.0 * sigma {
            counts[k] += 1;
            hq += 1;
        }
    }
    let n = samples.len().max(1);
    let covered = counts.iter().filter(|&&c| c as f64 >= min_share * n as f64 && c > 0).count();
    let reverse_kl = if hq == 0 {
        f64::INFINITY
    } else {
        let p = 1.0 / means.len() as f64;
        counts
            .iter()
            .filter(|&&c| c > 0)
            .map(|&c| {
                let q = c as f64 / hq as f64;
                q * (q / p).ln()
            })
            .sum()
    };
    ModeReport {
        samples: samples.len(),
        modes: means.len(),
        covered,
        high_quality: hq as f64 / n as f64,
        reverse_kl,
        counts,
        min_share,
    }
}
