//! The prose of `report.md`, kept where a person can read and edit it: each
//! template is the section's text with `{name}` placeholders that
//! [`fill`] replaces with values the report has already formatted.
//! (A template crate would add a dependency for what `str::replace` does.)

/// Replaces each `{name}` in `template` by its value.
pub fn fill(template: &str, values: &[(&str, String)]) -> String {
    let mut out = template.to_string();
    for (name, value) in values {
        out = out.replace(&format!("{{{name}}}"), value);
    }
    out
}

pub const MODES: &str = "\
{n} samples. A mode is covered when at least {share} % of the samples lie within 3 sigma \
of it; a sample is high quality within 3 sigma of any mode.

| modes covered | high-quality samples | reverse KL to uniform (nats) |
|---|---|---|
| **{covered}/{modes}** | {quality} % | {kl} |

Per-mode counts: {counts}.";

pub const STACKED: &str = "\
Stacked MNIST: each colour plane classified as a digit; a mode is the 3-digit number \
(1,000 modes). A sample counts for its mode however it looks: judge quality from the samples.

| | modes with a sample | KL to uniform (nats) | examples |
|---|---|---|---|
| generated | **{modes}** | {kl} | {n} |
| real training examples | {real_modes} | {real_kl} | {real_n} |

Published with 26k samples: DCGAN 99 modes / KL 3.40, Unrolled GAN 48.7 / 4.32, \
PacDCGAN2 1000 / 0.06.";

pub const FID_TABLE: &str = "\
| FID on MNIST | the same for {m} real training examples (the floor) | Inception score \
    (classifier) | class KL to uniform |
|---|---|---|---|
| **{fid}** | {floor} | {is} of {classes} | {kl} nats |
";

pub const FID_NOTE: &str = "\
FID on MNIST is the Fréchet distance between Gaussians fitted to the classifier's \
{hidden}-d feature layer for the held-out set and for the generated samples; it is not \
comparable with Inception FID. The floor is what a generator that reproduced the training \
data would score at this sample size.
";

pub const INFO_CODES: &str = "\
{per} samples for each of the {k} values of the categorical code (z and the continuous \
codes drawn from their priors), each classified by `{classifier}`. Chen et al. (2016) \
report 5 % error on MNIST for the best one-to-one assignment of code values to digits.
";

pub const ANOMALY: &str = "\
Normal: `{spec}`, split in half (seeded): one half picks the threshold at a 5 % \
false-positive rate, the other is scored against a corrupted copy of the held-out set \
(`{spec}+KIND`; the run's transforms are applied after the corruption). Scores, higher = \
more anomalous: {kinds}. For leave-one-class-out and other protocols use `deepgen detect` \
(bench/anomaly_table.sh).

| anomalies | {aurocs} | AUPRC ({m}) | FPR at 95 % TPR ({m}) | flagged at the threshold ({m}) |
|---|{rule}---|---|---|";

pub const ANOMALY_NLL_NOTE: &str = "
An AUROC below 0.5 means the model finds the corrupted images *more* likely than real \
ones: the known failure of likelihood-based detection on simpler inputs (shrunken digits \
have fewer ink pixels). Typicality scores the distance of the NLL from its typical value on \
the validation half (Nalisnick et al. 2019); complexity subtracts the PNG-compressed length \
(Serrà et al. 2020).";

pub const PROBE: &str = "\
Multinomial logistic regression on frozen features ({what}), fitted on the first {train} \
training examples, tested on the {test} held-out ones; the same classifier on raw pixels is \
the baseline. The L2 weight of each is chosen from {l2s} on a fifth of the training examples.

| features | dimension | L2 | train accuracy | test accuracy |
|---|---|---|---|---|
| {model} | {dim} | {l2} | {train_acc} % | **{test_acc} %** |
| raw pixels | {raw_dim} | {raw_l2} | {raw_train_acc} % | {raw_test_acc} % |";
