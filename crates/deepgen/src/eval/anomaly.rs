//! Anomaly-detection metrics. Anomalies are the positive class and a
//! higher score means "more anomalous". Ties are handled exactly: AUROC is
//! the Mann-Whitney statistic with half credit for tied pairs, and every
//! curve steps over distinct score values, never inside a group of ties.

use crate::error::{Error, Result};

/// Detection quality of scores on a normal and an anomalous set.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// P(score of an anomaly > score of a normal example) + P(tie) / 2.
    pub auroc: f64,
    /// Average precision: the sum over distinct thresholds of (recall step) x precision.
    pub auprc: f64,
    /// False-positive rate at the first threshold whose true-positive rate reaches 95 %.
    pub fpr_at_95_tpr: f64,
    /// ROC curve (FPR, TPR), from (0, 0) to (1, 1), one point per distinct score.
    pub roc: Vec<(f64, f64)>,
}

fn check(what: &str, s: &[f64]) -> Result<()> {
    if s.is_empty() {
        return Err(Error::config(format!("{what}: no examples to score")));
    }
    if let Some(i) = s.iter().position(|v| !v.is_finite()) {
        return Err(Error::config(format!(
            "{what}: the score of example {i} is not finite ({})",
            s[i]
        )));
    }
    Ok(())
}

/// Scores grouped by distinct value, highest first: (value, normals, anomalies).
fn groups(normal: &[f64], anomalous: &[f64]) -> Vec<(f64, usize, usize)> {
    let mut all: Vec<(f64, bool)> =
        normal.iter().map(|&s| (s, false)).chain(anomalous.iter().map(|&s| (s, true))).collect();
    all.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut out: Vec<(f64, usize, usize)> = Vec::new();
    for (s, pos) in all {
        match out.last_mut() {
            Some(g) if g.0 == s => {
                if pos {
                    g.2 += 1
                } else {
                    g.1 += 1
                }
            }
            _ => out.push((s, usize::from(!pos), usize::from(pos))),
        }
    }
    out
}

/// AUROC, AUPRC, FPR at 95 % TPR and the ROC curve.
pub fn detection(normal: &[f64], anomalous: &[f64]) -> Result<Detection> {
    check("normal set", normal)?;
    check("anomaly set", anomalous)?;
    let (n_neg, n_pos) = (normal.len() as f64, anomalous.len() as f64);
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut roc = vec![(0.0, 0.0)];
    let (mut auroc, mut auprc) = (0.0, 0.0);
    let mut fpr95 = None;
    for (_, neg, pos) in groups(normal, anomalous) {
        // Pairs decided in this group: anomalies here beat every normal example
        // below (not yet counted) and tie with the normals of this group.
        let below = n_neg - (fp + neg) as f64;
        auroc += pos as f64 * (below + 0.5 * neg as f64);
        let recall_before = tp as f64 / n_pos;
        tp += pos;
        fp += neg;
        let (tpr, fpr) = (tp as f64 / n_pos, fp as f64 / n_neg);
        auprc += (tpr - recall_before) * tp as f64 / (tp + fp) as f64;
        if fpr95.is_none() && tpr >= 0.95 - 1e-12 {
            fpr95 = Some(fpr);
        }
        roc.push((fpr, tpr));
    }
    Ok(Detection {
        auroc: auroc / (n_neg * n_pos),
        auprc,
        fpr_at_95_tpr: fpr95.unwrap_or(1.0),
        roc,
    })
}

/// The threshold that flags (score > t) at most a share `fpr` of `normal`:
/// the empirical (1 - fpr) quantile of the validation scores.
pub fn threshold_at_fpr(normal: &[f64], fpr: f64) -> Result<f64> {
    check("validation set", normal)?;
    if !(0.0..1.0).contains(&fpr) {
        return Err(Error::config(format!("--target-fpr must be in [0, 1), got {fpr}")));
    }
    let mut s = normal.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    let k = ((n as f64 * (1.0 - fpr)).ceil() as usize).clamp(1, n) - 1;
    Ok(s[k])
}

/// The share of `scores` above `t`.
pub fn flagged_share(scores: &[f64], t: f64) -> f64 {
    scores.iter().filter(|&&s| s > t).count() as f64 / scores.len().max(1) as f64
}
