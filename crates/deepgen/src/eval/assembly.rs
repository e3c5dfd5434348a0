//! How well a part-to-whole generator restores held-out images from their key patches, against
//! two baselines that see the patches' true places, which the generator never does:
//!
//! - *pasted*: the patches pasted at their true places on a blank canvas;
//! - *nearest*: the training image closest (L2) to the held-out image inside the true mask.
//!
//! Measures: class preservation (an independent classifier's class of the whole against the
//! held-out image's label), L1 to the held-out image inside the true mask (0 for *pasted* by
//! construction), the IoU of the generated mask (above 0.5) with the true one, and FID-on-MNIST
//! of the wholes against the held-out set.

use candle_core::{Device, Tensor};

use crate::data::patches::{self, Cut};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::eval::features;
use crate::models::{Model, PuzzleGan};
use crate::rng;

/// One method's scores.
#[derive(Debug, Clone)]
pub struct Method {
    pub name: &'static str,
    /// The share of wholes classified as the held-out image's label.
    pub class: f64,
    /// Mean |whole - image| inside the true mask.
    pub masked_l1: f64,
    pub fid: f64,
}

#[derive(Debug, Clone)]
pub struct AssemblyScores {
    pub n: usize,
    pub methods: Vec<Method>,
    /// The generated mask's IoU with the true one, mean over images.
    pub mask_iou: f64,
    pub fid_floor: f64,
}

/// The K patches of the first `n` held-out images, cut with the run's patch size.
pub fn held_out_cuts(p: &PuzzleGan, data: &Dataset, n: usize, seed: u64) -> Result<Vec<Cut>> {
    let n = n.min(data.n);
    let idx: Vec<usize> = (0..n).collect();
    let x = data.batch(&idx, &Device::Cpu)?;
    let mut r = rng::derived(seed, "assemble", 0);
    p.cut_rows(&x, &mut r)
}

/// The wholes and masks for `cuts`, in batches.
pub fn assemble_cuts(p: &PuzzleGan, cuts: &[Cut], seed: u64) -> Result<(Vec<f32>, Vec<f32>)> {
    let mut r = rng::derived(seed, "assemble-z", 0);
    let (mut images, mut masks) = (Vec::new(), Vec::new());
    for chunk in cuts.chunks(256) {
        let sets: Vec<Vec<Vec<f32>>> = chunk.iter().map(|c| c.patches.clone()).collect();
        let a = p.assemble(&sets, p.cfg.patch_size, &mut r)?;
        images.extend(a.images.flatten_all()?.to_vec1::<f32>()?);
        masks.extend(a.masks.flatten_all()?.to_vec1::<f32>()?);
    }
    Ok((images, masks))
}

/// The nearest training image to each held-out image inside its true mask: `[n, D]`.
fn nearest(train: &Dataset, held: &[f32], cuts: &[Cut], c: usize) -> Result<Vec<f32>> {
    let d = train.dim();
    let dev = Device::Cpu;
    let b = Tensor::from_vec(train.x.clone(), (train.n, d), &dev)?;
    let b2 = b.sqr()?;
    let n = cuts.len();
    let m: Vec<f32> = cuts.iter().flat_map(|k| patches_mask(k, c)).collect();
    let m = Tensor::from_vec(m, (n, d), &dev)?;
    let a = Tensor::from_vec(held.to_vec(), (n, d), &dev)?;
    // ||m (a - b)||^2 = m . b^2 - 2 (m a) . b + m . a^2, the last term constant per row.
    let s = (m.matmul(&b2.t()?)? - ((&m * &a)?.matmul(&b.t()?)? * 2.0)?)?;
    let best = s.argmin(1)?.to_vec1::<u32>()?;
    Ok(best.iter().flat_map(|&j| train.row(j as usize).iter().copied()).collect())
}

/// A cut's mask over every channel, `[C * H * W]`.
fn patches_mask(cut: &Cut, c: usize) -> Vec<f32> {
    (0..c).flat_map(|_| cut.mask.iter().copied()).collect()
}

fn argmax(row: &[f32]) -> u32 {
    (0..row.len()).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap_or(0) as u32
}

/// Scores the run on the first `n` images of `held` (labelled), with `train` for the nearest
/// baseline and the FID floor.
pub fn evaluate(
    p: &PuzzleGan,
    classifier: &Model,
    held: &Dataset,
    train: &Dataset,
    n: usize,
    seed: u64,
) -> Result<AssemblyScores> {
    let labels = held.labels.as_ref().ok_or_else(|| {
        Error::config(format!("{}: class preservation needs labels", held.source))
    })?;
    let cuts = held_out_cuts(p, held, n, seed)?;
    let n = cuts.len();
    let (c, h, w) = (p.cfg.shape[0], p.cfg.shape[1], p.cfg.shape[2]);
    let d = c * h * w;
    let real = &held.x[..n * d];
    let (gen, masks) = assemble_cuts(p, &cuts, seed)?;
    let pasted: Vec<f32> =
        cuts.iter().flat_map(|k| patches::pasted(k, (c, h, w), p.cfg.patch_size)).collect();
    let near = nearest(train, real, &cuts, c)?;
    let reference = &train.x[..n.min(train.n) * d];
    let mut methods = Vec::new();
    let mut floor = 0.0;
    for (name, x) in [("generated", &gen), ("pasted", &pasted), ("nearest", &near)] {
        let (probs, _, k, _) = features::classify(classifier, x, d)?;
        let hits = (0..n).filter(|&i| argmax(&probs[i * k..(i + 1) * k]) == labels[i]).count();
        let mut l1 = 0f64;
        let mut on = 0f64;
        for (i, cut) in cuts.iter().enumerate() {
            for (j, m) in patches_mask(cut, c).iter().enumerate() {
                l1 += (*m as f64) * (x[i * d + j] - real[i * d + j]).abs() as f64;
                on += *m as f64;
            }
        }
        let q = features::sample_quality(classifier, &held.x, x, reference, d)?;
        floor = q.fid_floor;
        methods.push(Method {
            name,
            class: hits as f64 / n.max(1) as f64,
            masked_l1: l1 / on.max(1.0),
            fid: q.fid,
        });
    }
    let mut iou = 0f64;
    for (i, cut) in cuts.iter().enumerate() {
        let (mut inter, mut union) = (0f64, 0f64);
        for (q, &t) in cut.mask.iter().enumerate() {
            let g = masks[i * h * w + q] > 0.5;
            let t = t > 0.5;
            inter += f64::from(u8::from(g && t));
            union += f64::from(u8::from(g || t));
        }
        iou += inter / union.max(1.0);
    }
    Ok(AssemblyScores { n, methods, mask_iou: iou / n.max(1) as f64, fid_floor: floor })
}

impl AssemblyScores {
    pub fn table(&self) -> String {
        let mut s = format!(
            "{} held-out images, K patches each.\n\n| method | class preserved | L1 inside the true \
            mask | FID-on-MNIST |\n|---|---|---|---|\n",
            self.n
        );
        for m in &self.methods {
            s += &format!(
                "| {} | {:.1} % | {:.4} | {:.2} |\n",
                m.name,
                100.0 * m.class,
                m.masked_l1,
                m.fid
            );
        }
        s += &format!(
            "\nGenerated mask IoU with the true mask: {:.3}. FID floor {:.2}.\n",
            self.mask_iou, self.fid_floor
        );
        s
    }

    pub fn line(&self) -> String {
        let parts: Vec<String> = self
            .methods
            .iter()
            .map(|m| {
                format!(
                    "{} {:.1} % (L1 {:.3}, FID {:.1})",
                    m.name,
                    100.0 * m.class,
                    m.masked_l1,
                    m.fid
                )
            })
            .collect();
        format!("class preserved: {}; mask IoU {:.3}", parts.join(", "), self.mask_iou)
    }
}
