//! Feature learning and sample quality through learned features:
//! embeddings of a data set, the linear probe (multinomial logistic
//! regression on frozen features), and the classifier-based sample metrics
//! (FID on MNIST, Inception score, per-class and Stacked-MNIST mode coverage).

use crate::models::Classifier;
use candle_core::{Device, Tensor};

use super::quality::{self, GaussianFit};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::models::Model;
use crate::nn::Params;
use crate::optim::{Adam, AdamConfig};
use crate::rng;

/// Features of every example of `data` (rows of `dim` values), in batches of 256.
pub fn embed(model: &Model, data: &Dataset) -> Result<(Vec<f32>, usize)> {
    model.check_dim(data.dim(), &data.source)?;
    let dev = model.device();
    let idx: Vec<usize> = (0..data.n).collect();
    let mut out = Vec::new();
    let mut dim = 0;
    for chunk in idx.chunks(256) {
        let f = model.features(&data.batch(chunk, &dev)?)?;
        dim = f.dim(1)?;
        out.extend(f.flatten_all()?.to_vec1::<f32>()?);
    }
    Ok((out, dim))
}

/// What a linear probe reached.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    pub train_accuracy: f64,
    pub test_accuracy: f64,
    pub dim: usize,
    /// The L2 weight chosen on a held-out fifth of the training examples.
    pub l2: f64,
}

/// L2 weights the probe chooses from.
pub const PROBE_L2: [f64; 3] = [1e-4, 1e-3, 1e-2];

/// Multinomial logistic regression on standardised features (training
/// statistics), full-batch Adam (lr 0.02, 300 steps). The L2 weight is
/// chosen from [`PROBE_L2`] by accuracy on a seeded fifth of the training
/// examples, then the probe is refitted on all of them. Written here because
/// no well-kept Rust crate fits a softmax regression on candle tensors; it is
/// a few lines over our own Adam. The fit runs on `dev` (the model's: full-batch products of
/// thousands of features are a GPU's work).
pub fn linear_probe(
    train: (&[f32], &[u32]),
    test: (&[f32], &[u32]),
    dim: usize,
    seed: u64,
    dev: &Device,
) -> Result<Probe> {
    let (xtr, ytr) = train;
    let (xte, yte) = test;
    if dim == 0
        || xtr.len() != ytr.len() * dim
        || xte.len() != yte.len() * dim
        || ytr.len() < 5
        || yte.is_empty()
    {
        return Err(Error::Shape(format!(
            "linear probe: {} train and {} test values for {} and {} labels of {dim} features (at \
                least 5 training examples)",
            xtr.len(),
            xte.len(),
            ytr.len(),
            yte.len()
        )));
    }
    let k = ytr.iter().chain(yte).copied().max().unwrap_or(0) as usize + 1;
    let n = ytr.len();
    let mut mean = vec![0f64; dim];
    let mut sq = vec![0f64; dim];
    for row in xtr.chunks(dim) {
        for j in 0..dim {
            mean[j] += row[j] as f64 / n as f64;
            sq[j] += (row[j] as f64).powi(2) / n as f64;
        }
    }
    let std: Vec<f64> =
        sq.iter().zip(&mean).map(|(s, m)| (s - m * m).max(0.0).sqrt().max(1e-6)).collect();
    let standard = |x: &[f32]| -> Result<Tensor> {
        let v: Vec<f32> = x
            .iter()
            .enumerate()
            .map(|(i, &v)| ((v as f64 - mean[i % dim]) / std[i % dim]) as f32)
            .collect();
        Ok(Tensor::from_vec(v, (x.len() / dim, dim), dev)?)
    };
    let (a, b) = (standard(xtr)?, standard(xte)?);
    let perm = rng::permutation(&mut rng::derived(seed, "probe-split", 0), n);
    let n_val = n / 5;
    let pick = |idx: &[usize]| -> Result<(Tensor, Vec<u32>)> {
        let t =
            Tensor::from_vec(idx.iter().map(|&i| i as u32).collect::<Vec<u32>>(), idx.len(), dev)?;
        Ok((a.index_select(&t, 0)?, idx.iter().map(|&i| ytr[i]).collect()))
    };
    let (fit_x, fit_y) = pick(&perm[n_val..])?;
    let (val_x, val_y) = pick(&perm[..n_val])?;
    let mut best = (f64::NEG_INFINITY, PROBE_L2[0]);
    for l2 in PROBE_L2 {
        let (w, b0) = fit_softmax(&fit_x, &fit_y, k, l2, seed)?;
        let acc = accuracy(&val_x, &val_y, &w, &b0)?;
        if acc > best.0 {
            best = (acc, l2);
        }
    }
    let (w, b0) = fit_softmax(&a, ytr, k, best.1, seed)?;
    Ok(Probe {
        train_accuracy: accuracy(&a, ytr, &w, &b0)?,
        test_accuracy: accuracy(&b, yte, &w, &b0)?,
        dim,
        l2: best.1,
    })
}

fn fit_softmax(x: &Tensor, y: &[u32], k: usize, l2: f64, seed: u64) -> Result<(Tensor, Tensor)> {
    let dev = x.device().clone();
    let (n, dim) = x.dims2()?;
    let mut p = Params::new();
    let mut r = rng::derived(seed, "probe", 0);
    let w = p.add("w", (rng::randn(&mut r, &[dim, k], &dev)? * 0.01)?)?;
    let bias = p.zeros("b", &[k], &dev)?;
    let onehot = crate::nn::one_hot(y, k, &dev)?;
    let mut opt = Adam::new(&p, AdamConfig::default())?;
    for _ in 0..300 {
        let l = x.matmul(&w)?.broadcast_add(&bias)?;
        let m = l.max_keepdim(1)?.detach();
        let s = l.broadcast_sub(&m)?;
        let logz = s.exp()?.sum_keepdim(1)?.log()?;
        let nll = ((s.broadcast_sub(&logz)? * &onehot)?.sum_all()?.neg()? / n as f64)?;
        let loss = (nll + (w.sqr()?.sum_all()? * l2)?)?;
        let g = loss.backward()?;
        opt.step(&g, 0.02, 1.0)?;
    }
    Ok((w.detach(), bias.detach()))
}

fn accuracy(x: &Tensor, y: &[u32], w: &Tensor, b: &Tensor) -> Result<f64> {
    let pred = x.matmul(w)?.broadcast_add(b)?.argmax(1)?.to_vec1::<u32>()?;
    Ok(pred.iter().zip(y).filter(|(p, y)| p == y).count() as f64 / y.len().max(1) as f64)
}

/// Class posteriors `[n, k]` and features `[n, F]` of rows `x` under a classifier run.
pub fn classify(
    classifier: &Model,
    x: &[f32],
    dim: usize,
) -> Result<(Vec<f32>, Vec<f32>, usize, usize)> {
    let c = classifier.get::<Classifier>().ok_or_else(|| {
        Error::config(format!("the {} run is not a classifier", classifier.name()))
    })?;
    if dim != c.cfg.dim() {
        return Err(Error::Shape(format!(
            "the classifier reads {} values per example, these examples have {dim}",
            c.cfg.dim()
        )));
    }
    let (mut probs, mut feats) = (Vec::new(), Vec::new());
    let mut f_dim = 0;
    let dev = classifier.device();
    for rows in x.chunks(256 * dim) {
        let t = Tensor::from_vec(rows.to_vec(), (rows.len() / dim, dim), &dev)?;
        let f = c.features(&t)?;
        f_dim = f.dim(1)?;
        feats.extend(f.flatten_all()?.to_vec1::<f32>()?);
        probs.extend(c.log_probs(&t)?.exp()?.flatten_all()?.to_vec1::<f32>()?);
    }
    Ok((probs, feats, c.cfg.classes, f_dim))
}

/// Sample quality of generated rows against real rows, through a classifier.
#[derive(Debug, Clone)]
pub struct SampleQuality {
    /// Fréchet distance between the classifier's features of real and generated examples.
    pub fid: f64,
    /// The same for as many real training examples as generated ones: what a
    /// generator that reproduced the data would reach at this sample size (FID is biased upward at
    /// small n).
    pub fid_floor: f64,
    pub inception_score: f64,
    /// Generated examples per predicted class.
    pub class_counts: Vec<usize>,
    /// KL of the predicted-class histogram to uniform (nats).
    pub class_kl: f64,
    pub n: usize,
}

/// FID and the rest of `fake` against `real` (held-out rows), with
/// `reference` (real training rows, as many as `fake`) for the floor.
pub fn sample_quality(
    classifier: &Model,
    real: &[f32],
    fake: &[f32],
    reference: &[f32],
    dim: usize,
) -> Result<SampleQuality> {
    let (_, fr, _, fd) = classify(classifier, real, dim)?;
    let (pf, ff, k, _) = classify(classifier, fake, dim)?;
    let (_, fref, _, _) = classify(classifier, reference, dim)?;
    let real_fit = GaussianFit::new(&fr, fd)?;
    let fake_fit = GaussianFit::new(&ff, fd)?;
    let fid_floor = quality::frechet_distance(&GaussianFit::new(&fref, fd)?, &real_fit)?;
    let class_counts = quality::class_counts(&pf, k);
    Ok(SampleQuality {
        fid: quality::frechet_distance(&real_fit, &fake_fit)?,
        fid_floor,
        inception_score: quality::inception_score(&pf, k)?,
        class_kl: quality::kl_to_uniform(&class_counts),
        class_counts,
        n: fake.len() / dim,
    })
}

/// Stacked-MNIST modes of generated 3-channel rows: each plane classified
/// by a one-channel digit classifier; mode = 100 a + 10 b + c.
#[derive(Debug, Clone)]
pub struct StackedModes {
    /// Modes (of 1,000) with at least one sample.
    pub modes: usize,
    /// KL of the mode histogram to uniform over the 1,000 modes (nats).
    pub kl: f64,
    pub n: usize,
    /// The predicted mode (100 a + 10 b + c) of each example.
    pub predicted: Vec<u32>,
}

pub fn stacked_modes(classifier: &Model, x: &[f32], shape: &[usize]) -> Result<StackedModes> {
    let [3, h, w] = shape[..] else {
        return Err(Error::config(format!(
            "Stacked-MNIST modes need 3-channel images, not shape {shape:?}"
        )));
    };
    let plane = h * w;
    let n = x.len() / (3 * plane);
    let mut counts = vec![0usize; 1000];
    let mut digits = vec![[0usize; 3]; n];
    for c in 0..3 {
        let planes: Vec<f32> = (0..n)
            .flat_map(|i| x[(i * 3 + c) * plane..(i * 3 + c + 1) * plane].iter().copied())
            .collect();
        let (p, _, k, _) = classify(classifier, &planes, plane)?;
        for (i, row) in p.chunks(k).enumerate() {
            digits[i][c] = crate::nn::argmax(row).min(9);
        }
    }
    let predicted: Vec<u32> =
        digits.iter().map(|d| (d[0] * 100 + d[1] * 10 + d[2]) as u32).collect();
    for &p in &predicted {
        counts[p as usize] += 1;
    }
    Ok(StackedModes {
        modes: counts.iter().filter(|&&c| c > 0).count(),
        kl: quality::kl_to_uniform(&counts),
        n,
        predicted,
    })
}

/// The classifier's accuracy on labelled data `v`, as `deepgen classifier train` prints it.
pub fn accuracy_line(classifier: &Model, v: &Dataset) -> Result<String> {
    let (p, _, k, _) = classify(classifier, &v.x, v.dim())?;
    let labels = v
        .labels
        .as_ref()
        .ok_or_else(|| Error::config(format!("{}: the validation data has no labels", v.source)))?;
    let right =
        p.chunks(k).zip(labels).filter(|(row, y)| crate::nn::argmax(row) == **y as usize).count();
    let hidden = classifier.get::<Classifier>().map(|c| c.cfg.hidden).unwrap_or(0);
    let acc = 100.0 * right as f64 / v.n as f64;
    Ok(format!(
        "{}: {} examples, test accuracy {acc:.2} % ({k} classes, {hidden}-d features)",
        v.source, v.n
    ))
}
