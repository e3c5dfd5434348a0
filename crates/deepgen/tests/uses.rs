//! What generative models are for: anomaly-detection metrics against hand
//! counts (ties included), the Fréchet distance against closed forms, the
//! Inception score's extremes, the classifier and the linear probe on the
//! embedded digits, data-spec modifiers, scores, features and interpolation.

use deepgen::data::{Binarize, DataSpec, Dataset};
use deepgen::eval::anomaly::{detection, flagged_share, threshold_at_fpr};
use deepgen::eval::features;
use deepgen::eval::quality::{
    code_class_agreement, frechet_distance, inception_score, kl_to_uniform, GaussianFit,
};
use deepgen::eval::scores::{self, ScoreKind};
use deepgen::models::Vae;
use deepgen::models::{
    BernoulliConfig, ClassifierConfig, DensityModel, Device, GanConfig, Model, ModelConfig,
    VaeConfig,
};
use deepgen::rng;
use deepgen::train::{LikelihoodTrainer, NoHooks, TrainConfig};
use nalgebra::{DMatrix, DVector};

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

#[test]
fn auroc_auprc_and_fpr95_match_hand_counts_with_ties() {
    // Normal {1, 2, 3}, anomalies {2, 4}. Pairs won by the anomaly: 2 beats 1, ties 2 (half), loses
    // to 3 -> 1.5;
    // 4 beats all three -> 3. AUROC = 4.5 / 6.
    let d = detection(&[1.0, 2.0, 3.0], &[2.0, 4.0]).unwrap();
    assert!(close(d.auroc, 0.75, 1e-12), "{}", d.auroc);
    // Thresholds high to low: at 4 recall 1/2 with precision 1; at 3 recall unchanged; at 2 (a tie
    // group of one
    // normal and one anomaly) recall 1 with precision 2/4. AP = 0.5 * 1 + 0.5 * 0.5.
    assert!(close(d.auprc, 0.75, 1e-12), "{}", d.auprc);
    // TPR first reaches 95 % at the threshold 2, where 2 of 3 normals are flagged.
    assert!(close(d.fpr_at_95_tpr, 2.0 / 3.0, 1e-12));
    assert_eq!(d.roc, vec![(0.0, 0.0), (0.0, 0.5), (1.0 / 3.0, 0.5), (2.0 / 3.0, 1.0), (1.0, 1.0)]);

    // All tied: chance AUROC, precision = prevalence.
    let t = detection(&[1.0, 1.0], &[1.0]).unwrap();
    assert!(
        close(t.auroc, 0.5, 1e-12)
            && close(t.auprc, 1.0 / 3.0, 1e-12)
            && close(t.fpr_at_95_tpr, 1.0, 1e-12)
    );
    // Perfectly separated, and perfectly reversed.
    let p = detection(&[0.1, 0.2], &[0.5, 0.9, 0.7]).unwrap();
    assert!(close(p.auroc, 1.0, 1e-12) && close(p.auprc, 1.0, 1e-12) && p.fpr_at_95_tpr == 0.0);
    let rev = detection(&[0.5, 0.9], &[0.1, 0.2]).unwrap();
    assert!(close(rev.auroc, 0.0, 1e-12));

    // Against the brute-force pair count on data with many ties.
    let mut r = rng::rng(3);
    use rand::Rng as _;
    let normal: Vec<f64> = (0..300).map(|_| (r.gen::<f64>() * 10.0).round()).collect();
    let anom: Vec<f64> = (0..200).map(|_| (r.gen::<f64>() * 10.0 + 2.0).round()).collect();
    let mut won = 0.0;
    for a in &anom {
        for n in &normal {
            won += if a > n {
                1.0
            } else if a == n {
                0.5
            } else {
                0.0
            };
        }
    }
    let d = detection(&normal, &anom).unwrap();
    assert!(close(d.auroc, won / (300.0 * 200.0), 1e-12));
    // The ROC's trapezoid area equals the tie-aware AUROC.
    let area: f64 = d.roc.windows(2).map(|w| (w[1].0 - w[0].0) * (w[1].1 + w[0].1) / 2.0).sum();
    assert!(close(area, d.auroc, 1e-12));

    // Errors: an empty set or a NaN score.
    assert!(detection(&[], &[1.0]).unwrap_err().to_string().contains("no examples"));
    assert!(detection(&[1.0, f64::NAN], &[1.0]).unwrap_err().to_string().contains("not finite"));
}

#[test]
fn threshold_flags_at_most_the_target_share_of_validation_data() {
    let v: Vec<f64> = (1..=100).map(f64::from).collect();
    let t = threshold_at_fpr(&v, 0.05).unwrap();
    assert_eq!(t, 95.0);
    assert!(close(flagged_share(&v, t), 0.05, 1e-12));
    // With ties at the quantile, fewer (never more) are flagged.
    let tied = vec![1.0; 50].into_iter().chain((0..50).map(|i| 2.0 + i as f64)).collect::<Vec<_>>();
    let t = threshold_at_fpr(&tied, 0.6).unwrap();
    assert!(flagged_share(&tied, t) <= 0.6);
    assert!(threshold_at_fpr(&v, 1.5).is_err());
}

#[test]
fn frechet_distance_matches_closed_forms() {
    let mut r = rng::rng(1);
    let x = rng::randn(&mut r, &[4000, 3], &Device::Cpu).unwrap().to_vec1_flat();
    let a = GaussianFit::new(&x, 3).unwrap();
    assert!(frechet_distance(&a, &a).unwrap() < 1e-8);
    // A shifted copy: only the means differ, FD = |delta|^2.
    let delta = [0.5f32, -1.0, 2.0];
    let shifted: Vec<f32> = x.iter().enumerate().map(|(i, v)| v + delta[i % 3]).collect();
    let b = GaussianFit::new(&shifted, 3).unwrap();
    assert!(close(frechet_distance(&a, &b).unwrap(), 0.25 + 1.0 + 4.0, 1e-6));
    // Diagonal covariances: FD = |m1 - m2|^2 + sum (s1 - s2)^2.
    let g = |m: &[f64], var: &[f64]| GaussianFit {
        mean: DVector::from_row_slice(m),
        cov: DMatrix::from_diagonal(&DVector::from_row_slice(var)),
        n: 100,
    };
    let fd = frechet_distance(&g(&[0.0, 1.0], &[1.0, 4.0]), &g(&[1.0, 1.0], &[4.0, 9.0])).unwrap();
    assert!(close(fd, 1.0 + 1.0 + 1.0, 1e-10), "{fd}");
    // Non-commuting 2x2 covariances: tr sqrt(C1 C2) = sqrt(tr(C1 C2) + 2 sqrt(det(C1 C2))) for 2x2
    // matrices with non-negative eigenvalues.
    let c1 = DMatrix::<f64>::from_row_slice(2, 2, &[2.0, 0.8, 0.8, 1.0]);
    let c2 = DMatrix::<f64>::from_row_slice(2, 2, &[1.0, -0.3, -0.3, 3.0]);
    let p = &c1 * &c2;
    let cross = (p.trace() + 2.0 * p.determinant().sqrt()).sqrt();
    let want = 4.0 + c1.trace() + c2.trace() - 2.0 * cross;
    let fa = GaussianFit { mean: DVector::from_row_slice(&[0.0, 0.0]), cov: c1, n: 10 };
    let fb = GaussianFit { mean: DVector::from_row_slice(&[2.0, 0.0]), cov: c2, n: 10 };
    assert!(close(frechet_distance(&fa, &fb).unwrap(), want, 1e-9));
}

trait Flat {
    fn to_vec1_flat(&self) -> Vec<f32>;
}
impl Flat for candle_core::Tensor {
    fn to_vec1_flat(&self) -> Vec<f32> {
        self.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    }
}

#[test]
fn inception_score_extremes_and_class_kl() {
    // Identical posteriors: 1. Confident predictions spread evenly over k classes: k.
    assert!(close(inception_score(&[0.2, 0.3, 0.5, 0.2, 0.3, 0.5], 3).unwrap(), 1.0, 1e-6));
    let one_hot: Vec<f32> =
        (0..40).flat_map(|i| (0..4).map(move |c| if c == i % 4 { 1.0 } else { 0.0 })).collect();
    assert!(close(inception_score(&one_hot, 4).unwrap(), 4.0, 1e-6));
    assert!(close(kl_to_uniform(&[5, 5, 5, 5]), 0.0, 1e-12));
    // All mass in one of 1,000 bins: log 1000.
    let mut c = vec![0usize; 1000];
    c[7] = 26;
    assert!(close(kl_to_uniform(&c), 1000f64.ln(), 1e-12));
}

#[test]
fn data_modifiers_select_and_corrupt() {
    let base = DataSpec::Digits { test: true }.load(0).unwrap();
    let only: DataSpec = "digits:test+only=3".parse().unwrap();
    assert_eq!(only.to_string(), "digits:test+only=3");
    let d3 = only.load(0).unwrap();
    assert!(d3.labels.as_ref().unwrap().iter().all(|&l| l == 3));
    let without = "digits:test+without=3".parse::<DataSpec>().unwrap().load(0).unwrap();
    assert_eq!(d3.n + without.n, base.n);
    // The held-out split keeps the modifiers.
    assert_eq!(
        "digits+without=3".parse::<DataSpec>().unwrap().held_out().unwrap().to_string(),
        "digits:test+without=3"
    );
    let inv = "digits:test+invert".parse::<DataSpec>().unwrap().load(0).unwrap();
    assert!(inv.x.iter().zip(&base.x).all(|(a, b)| (a + b - 1.0).abs() < 1e-6));
    // Four quarter turns and two flips are the identity; one quarter turn moves the top-left pixel
    // to the top-right.
    let mut r = base.clone();
    for k in 0..4 {
        r = deepgen::data::modify::Modifier::Rotate.apply(r, &format!("rot{k}")).unwrap();
        if k == 0 {
            assert_eq!(r.row(0)[7], base.row(0)[7 * 8]);
        }
    }
    assert_eq!(r.x, base.x);
    let f = "digits:test+flip+flip".parse::<DataSpec>().unwrap().load(0).unwrap();
    assert_eq!(f.x, base.x);
    let noisy = "digits:test+noise=0.1".parse::<DataSpec>().unwrap().load(0).unwrap();
    assert!(noisy.x.iter().all(|v| (0.0..=1.0).contains(v)) && noisy.x != base.x);
    assert_eq!(
        noisy.x,
        "digits:test+noise=0.1".parse::<DataSpec>().unwrap().load(0).unwrap().x,
        "modifiers are seeded"
    );
    // Errors name the problem.
    let e = |s: &str| s.parse::<DataSpec>().and_then(|d| d.load(0)).unwrap_err().to_string();
    assert!(e("digits:test+only=42").contains("no examples are left"));
    assert!(e("digits+bogus").contains("unknown modifier"));
    assert!(e("toy:ring8+invert").contains("needs values in [0, 1]"));
    // Noise on data outside [0, 1] is added without clamping.
    let ring = DataSpec::Toy { kind: deepgen::data::toy::Toy::Ring8, test: true }.load(0).unwrap();
    let noisy_ring = "toy:ring8:test+noise=0.5".parse::<DataSpec>().unwrap().load(0).unwrap();
    let moved: f32 = noisy_ring.x.iter().zip(&ring.x).map(|(a, b)| (a - b).abs()).sum::<f32>()
        / ring.x.len() as f32;
    assert!(
        (moved - 0.5 * (2.0 / std::f32::consts::PI).sqrt()).abs() < 0.02,
        "mean |noise| {moved}"
    );
    assert!(e("toy:ring8+rotate").contains("needs images"));
    // Stacked MNIST: three digits as planes, label 100a + 10b + c.
    let s = DataSpec::StackedMnist { test: true }.load(0).unwrap();
    assert_eq!((s.n, s.shape.clone()), (2000, vec![3, 28, 28]));
    assert!(s.labels.as_ref().unwrap().iter().all(|&l| l < 1000));
}

fn train_classifier(train: &Dataset, steps: usize) -> Model {
    let cfg = ModelConfig::Classifier(ClassifierConfig {
        shape: train.shape.clone(),
        classes: 10,
        channels: 16,
        hidden: 64,
    });
    let m = Model::new(&cfg, 0, &Device::Cpu).unwrap();
    let mut t = LikelihoodTrainer::new(
        &m,
        TrainConfig { steps, batch_size: 128, lr: 3e-3, ..TrainConfig::default() },
        0,
        Binarize::None,
    )
    .unwrap();
    t.fit(&m, train, None, &mut NoHooks).unwrap();
    m
}

#[test]
fn classifier_and_linear_probe_reach_their_accuracy_on_the_embedded_digits() {
    let train = DataSpec::Digits { test: false }.load(0).unwrap();
    let test = DataSpec::Digits { test: true }.load(0).unwrap();
    let c = train_classifier(&train, 300);
    let (p, f, k, fd) = features::classify(&c, &test.x, test.dim()).unwrap();
    assert_eq!((k, fd, f.len()), (10, 64, test.n * 64));
    let right = p
        .chunks(10)
        .zip(test.labels.as_ref().unwrap())
        .filter(|(row, y)| {
            row.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0 == **y as usize
        })
        .count();
    let acc = right as f64 / test.n as f64;
    assert!(acc >= 0.90, "classifier test accuracy {acc}");
    // Its validation "NLL" is -log p(y | x) of the labels.
    let rep = deepgen::eval::nll(&c, &test, 256, &mut rng::rng(0)).unwrap();
    assert!(rep.nats > 0.0 && rep.nats < 0.5, "{}", rep.nats);
    // No labels, no loss.
    let unlabelled = Dataset::new("u", train.x.clone(), train.shape.clone(), None).unwrap();
    let m = Model::new(&c.config, 0, &Device::Cpu).unwrap();
    let mut t = LikelihoodTrainer::new(
        &m,
        TrainConfig { steps: 1, ..TrainConfig::default() },
        0,
        Binarize::None,
    )
    .unwrap();
    assert!(t.fit(&m, &unlabelled, None, &mut NoHooks).unwrap_err().to_string().contains("labels"));

    // Stacked digits: each plane classified; the predicted mode is the true 3-digit label for most
    // examples
    // (about accuracy^3), and the histogram covers as many modes as the labels do, give or take.
    let stacked = deepgen::data::modify::stacked(&test, 3000, "stacked-digits").unwrap();
    let m = features::stacked_modes(&c, &stacked.x, &stacked.shape).unwrap();
    let truth = stacked.labels.as_ref().unwrap();
    let right = m.predicted.iter().zip(truth).filter(|(p, t)| p == t).count() as f64 / 3000.0;
    assert!(
        right > acc.powi(3) - 0.05 && right <= 1.0,
        "stacked accuracy {right} vs per-digit {acc}"
    );
    let true_modes = truth.iter().collect::<std::collections::HashSet<_>>().len();
    assert!(
        (m.modes as f64 - true_modes as f64).abs() < 0.1 * true_modes as f64,
        "{} modes predicted, {true_modes} true",
        m.modes
    );
    assert!(features::stacked_modes(&c, &test.x, &test.shape).is_err());

    // Linear probe on raw pixels (8x8 digits are nearly linearly separable) and on the classifier's
    // features.
    let (ytr, yte) = (train.labels.as_ref().unwrap(), test.labels.as_ref().unwrap());
    let raw = features::linear_probe((&train.x, ytr), (&test.x, yte), 64, 0, &Device::Cpu).unwrap();
    assert!(raw.test_accuracy > 0.88, "{raw:?}");
    let (ftr, d) = features::embed(&c, &train).unwrap();
    let (fte, _) = features::embed(&c, &test).unwrap();
    let probe = features::linear_probe((&ftr, ytr), (&fte, yte), d, 0, &Device::Cpu).unwrap();
    assert!(probe.test_accuracy > 0.88, "{probe:?}");
}

#[test]
fn scores_detection_and_features_per_model() {
    let mut train = DataSpec::Digits { test: false }.load(0).unwrap();
    train.binarize(Binarize::Static, 1).unwrap();
    let mut test = DataSpec::Digits { test: true }.load(0).unwrap();
    test.binarize(Binarize::Static, 2).unwrap();
    let mut inv = "digits:test+invert".parse::<DataSpec>().unwrap().load(0).unwrap();
    inv.binarize(Binarize::Static, 3).unwrap();
    let b =
        Model::new(&ModelConfig::Bernoulli(BernoulliConfig { dim: 64 }), 0, &Device::Cpu).unwrap();
    let mut t = LikelihoodTrainer::new(
        &b,
        TrainConfig { steps: 200, batch_size: 100, lr: 0.05, ..TrainConfig::default() },
        0,
        Binarize::Static,
    )
    .unwrap();
    t.fit(&b, &train, None, &mut NoHooks).unwrap();

    // nll is -log p, bpd the same over D ln 2, and both give the same ranking.
    let mut r = rng::rng(0);
    let nll = scores::score(&b, &test, 0.0, ScoreKind::Nll, &mut r).unwrap();
    let lp = b
        .log_prob(&test.batch(&[0, 1], &Device::Cpu).unwrap(), &mut r)
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert!(close(nll[0], -lp[0] as f64, 1e-4) && close(nll[1], -lp[1] as f64, 1e-4));
    let bpd = scores::score(&b, &test, 0.0, ScoreKind::Bpd, &mut r).unwrap();
    assert!(close(bpd[3], nll[3] / (64.0 * std::f64::consts::LN_2), 1e-9));
    // Typicality: |nll - reference|.
    let typ =
        scores::score_with_reference(&b, &test, 0.0, ScoreKind::Typicality, Some(20.0), &mut r)
            .unwrap();
    assert!(close(typ[5], (nll[5] - 20.0).abs(), 1e-9));
    // Complexity: bits/dim minus PNG bits/dim, so it differs from bpd by the PNG length.
    let cx = scores::score(&b, &test, 0.0, ScoreKind::Complexity, &mut r).unwrap();
    assert!(cx.iter().zip(&bpd).all(|(c, b)| c < b));
    // The inverted digits are far less likely: detection is near perfect, and the threshold holds
    // its rate.
    let rep =
        scores::detect(&b, &test, &inv, 0.0, ScoreKind::Nll, 0.5, 0.05, 0, "bernoulli").unwrap();
    assert!(rep.detection.auroc > 0.99, "{}", rep.detection.auroc);
    assert!(rep.val_fpr <= 0.05 && rep.tpr > 0.9);
    assert_eq!(rep.val_idx.len() + rep.test_idx.len(), test.n);
    // Wrong shapes and unsupported kinds are refused.
    let other = DataSpec::Mnist { test: true }.load(0).unwrap().take(10);
    assert!(scores::detect(&b, &test, &other, 0.0, ScoreKind::Nll, 0.5, 0.05, 0, "x")
        .unwrap_err()
        .to_string()
        .contains("shape"));
    assert!(scores::score(&b, &test, 0.0, ScoreKind::Disc, &mut r)
        .unwrap_err()
        .to_string()
        .contains("cannot give it"));
    assert!(!b.has_features() && b.features(&test.batch(&[0], &Device::Cpu).unwrap()).is_err());

    // Features: VAE codes, GAN critic features; a VAE's ELBO and reconstruction scores.
    let vae = Model::new(
        &ModelConfig::Vae(VaeConfig {
            dim: 64,
            hidden: vec![32],
            latent: 3,
            likelihood: deepgen::models::Likelihood::Bernoulli,
            iw_samples: 5,
        }),
        0,
        &Device::Cpu,
    )
    .unwrap();
    let (f, d) = features::embed(&vae, &test).unwrap();
    assert_eq!((d, f.len()), (3, test.n * 3));
    for k in [ScoreKind::Nll, ScoreKind::Elbo, ScoreKind::Recon] {
        assert_eq!(scores::score(&vae, &test, 0.0, k, &mut r).unwrap().len(), test.n);
    }
    let mut gc = match ModelConfig::preset("gan", &[64], true).unwrap() {
        ModelConfig::Gan(c) => c,
        _ => unreachable!(),
    };
    gc.d_hidden = vec![16];
    gc.g_hidden = vec![16];
    // NADE: sigmoid(W x + c), by hand for one example; MADE: the first masked layer, [B, H1].
    let nade = Model::new(
        &ModelConfig::Nade(deepgen::models::NadeConfig { dim: 64, hidden: 5 }),
        3,
        &Device::Cpu,
    )
    .unwrap();
    let x0 = test.batch(&[0], &Device::Cpu).unwrap();
    let f = nade.features(&x0).unwrap().to_vec1_flat();
    let w = nade.params.get("W").unwrap().as_tensor().to_vec2::<f32>().unwrap();
    let c = nade.params.get("c").unwrap().as_tensor().to_vec1::<f32>().unwrap();
    let xv = x0.to_vec1_flat();
    for h in 0..5 {
        let a: f32 = c[h] + (0..64).map(|d| w[h][d] * xv[d]).sum::<f32>();
        assert!((f[h] - 1.0 / (1.0 + (-a).exp())).abs() < 1e-5);
    }
    let made = Model::new(
        &ModelConfig::Made(deepgen::models::MadeConfig {
            dim: 64,
            hidden: vec![12, 7],
            connectivity_agnostic: false,
            order_agnostic: false,
            masks: 1,
            mask_seed: 0,
        }),
        0,
        &Device::Cpu,
    )
    .unwrap();
    assert_eq!(features::embed(&made, &test).unwrap().1, 12);
    let gan = Model::new(&ModelConfig::Gan(GanConfig { ..gc }), 0, &Device::Cpu).unwrap();
    assert_eq!(features::embed(&gan, &test).unwrap().1, 16);
    assert_eq!(scores::score(&gan, &test, 0.0, ScoreKind::Disc, &mut r).unwrap().len(), test.n);
}

#[test]
fn interpolation_paths_end_at_their_ends() {
    let a = [1.0f32, 0.0, 0.0];
    let b = [0.0f32, 2.0, 0.0];
    assert_eq!(deepgen::run::slerp(&a, &b, 0.0), a.to_vec());
    let end = deepgen::run::slerp(&a, &b, 1.0);
    assert!(end.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-6));
    // Halfway between two orthogonal unit vectors: on the unit circle, at 45 degrees.
    let h = deepgen::run::slerp(&a, &[0.0, 1.0, 0.0], 0.5);
    assert!((h[0] - h[1]).abs() < 1e-6 && (h[0] * h[0] + h[1] * h[1] - 1.0).abs() < 1e-6);

    // Two corners-ish of uniform noise's cube: the slerp arc bulges out of it
    // (halfway it is (0.9 sqrt 2, 0) = (1.27, 0)); clipped, it stays inside and
    // keeps its ends; the linear path needs no clipping.
    let ends = [0.9f32, 0.9, 0.9, -0.9];
    let free = deepgen::run::latent_path(&ends, 2, 5, true, None);
    assert!((free[4] - 0.9 * 2f32.sqrt()).abs() < 1e-5 && free[5].abs() < 1e-5, "{free:?}");
    let clipped = deepgen::run::latent_path(&ends, 2, 5, true, Some(1.0));
    assert!(clipped.iter().all(|x| x.abs() <= 1.0));
    assert_eq!(clipped[4], 1.0);
    assert!((clipped[0] - 0.9).abs() < 1e-6 && (clipped[9] + 0.9).abs() < 1e-6);
    let linear = deepgen::run::latent_path(&ends, 2, 5, false, None);
    assert_eq!(linear, deepgen::run::latent_path(&ends, 2, 5, false, Some(1.0)));
    assert!((linear[4] - 0.9).abs() < 1e-6 && linear[5].abs() < 1e-6);

    // A VAE's path starts and ends at the reconstructions of its two examples.
    let test = DataSpec::Digits { test: true }.load(0).unwrap();
    let vae = Model::new(
        &ModelConfig::Vae(VaeConfig {
            dim: 64,
            hidden: vec![16],
            latent: 2,
            likelihood: deepgen::models::Likelihood::Gaussian,
            iw_samples: 5,
        }),
        0,
        &Device::Cpu,
    )
    .unwrap();
    let x = deepgen::run::interpolate(&vae, Some(&test), 2, 5, true, &mut rng::rng(0)).unwrap();
    assert_eq!(x.dims(), &[10, 64]);
    let rec = vae
        .get::<Vae>()
        .unwrap()
        .reconstruct(&test.batch(&[0, 1, 2, 3], &Device::Cpu).unwrap())
        .unwrap()
        .to_vec1_flat();
    let x = x.to_vec1_flat();
    let row = |v: &[f32], i: usize| v[i * 64..(i + 1) * 64].to_vec();
    for (path_row, rec_row) in [(0, 0), (4, 1), (5, 2), (9, 3)] {
        assert!(row(&x, path_row)
            .iter()
            .zip(row(&rec, rec_row))
            .all(|(p, q)| (p - q).abs() < 1e-5));
    }
    let bern =
        Model::new(&ModelConfig::Bernoulli(BernoulliConfig { dim: 64 }), 0, &Device::Cpu).unwrap();
    assert!(deepgen::run::interpolate(&bern, Some(&test), 1, 3, false, &mut rng::rng(0)).is_err());
}

/// InfoGAN's code-to-class agreement, by hand: the one-to-one assignment is
/// the best one (greedy in code order would give 8 of 24), and codes beyond
/// the number of classes stay unmatched.
#[test]
fn code_class_agreement_matches_a_hand_count() {
    let a = code_class_agreement(&[vec![5, 4, 0], vec![6, 0, 0], vec![0, 0, 3]]);
    assert_eq!(a.n, 18);
    assert!((a.purity - 14.0 / 18.0).abs() < 1e-12, "{a:?}");
    assert_eq!(a.distinct, 2);
    assert!((a.matched.unwrap() - 13.0 / 18.0).abs() < 1e-12, "{a:?}");
    assert_eq!(a.mapping, vec![Some(1), Some(0), Some(2)]);
    let b = code_class_agreement(&[vec![2, 0], vec![3, 0], vec![0, 1]]);
    assert!((b.matched.unwrap() - 4.0 / 6.0).abs() < 1e-12, "{b:?}");
    assert_eq!(b.mapping, vec![None, Some(0), Some(1)]);
    assert_eq!(b.distinct, 2);
}
