//! Data sets, data specs and transforms.
//!
//! A [`Dataset`] holds `n` examples of one shape as f32 rows. Specs
//! (`mnist`, `mnist:test`, `digits`, `idx:PREFIX`, `png:DIR`, `csv:FILE`,
//! `npy:FILE`, `toy:ring8`, `toy:grid25`, `stacked-mnist`) name where the rows
//! come from; `+modifier` suffixes (`mnist:test+only=3`, `mnist:test+invert`)
//! select classes or corrupt the rows ([`modify`]).
//! Image pixels are scaled to [0, 1]; CSV and float NPY values are kept as they are.

pub mod attributes;
pub mod captions;
pub mod domains;
pub mod idx;
pub mod modify;
pub mod npy;
pub mod patches;
pub(crate) mod sources;
pub mod toy;

use std::path::PathBuf;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::rng::{self, Rng};

pub use sources::{
    decode_png_bytes, load_csv, load_idx_prefix, load_png_dir, parse_csv, parse_csv_bytes,
};

/// Examples as rows.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// The spec the rows came from, for messages and reports.
    pub source: String,
    /// `n * dim` values, example-major.
    pub x: Vec<f32>,
    pub n: usize,
    /// Shape of one example: `[C, H, W]` for images, `[D]` otherwise.
    pub shape: Vec<usize>,
    pub labels: Option<Vec<u32>>,
    /// What the reader decided that changes what the rows are (a CSV header line it skipped), to
    /// be shown to the user: no row is dropped without a word.
    pub notes: Vec<String>,
    /// Attribute labels (StarGAN's domains), when the source has them.
    pub attributes: Option<attributes::Attributes>,
    /// Captions (the text-conditional GAN's conditions), when the source has them.
    pub captions: Option<captions::Captions>,
}

impl Dataset {
    pub fn new(
        source: impl Into<String>,
        x: Vec<f32>,
        shape: Vec<usize>,
        labels: Option<Vec<u32>>,
    ) -> Result<Self> {
        let source = source.into();
        let dim: usize = shape.iter().product();
        if dim == 0 || !x.len().is_multiple_of(dim) {
            return Err(Error::bad_file(
                &source,
                format!("{} values do not split into examples of shape {shape:?}", x.len()),
            ));
        }
        let n = x.len() / dim;
        if n == 0 {
            return Err(Error::bad_file(&source, "the data set is empty"));
        }
        if let Some(i) = x.iter().position(|v| !v.is_finite()) {
            return Err(Error::bad_file(
                &source,
                format!("value {} of example {} is not finite ({})", i % dim, i / dim, x[i]),
            ));
        }
        if let Some(l) = &labels {
            if l.len() != n {
                return Err(Error::Shape(format!("{source}: {} labels for {n} examples", l.len())));
            }
        }
        Ok(Self { source, x, n, shape, labels, notes: vec![], attributes: None, captions: None })
    }

    /// Values per example.
    pub fn dim(&self) -> usize {
        self.shape.iter().product()
    }

    /// True for `[C, H, W]` examples.
    pub fn is_image(&self) -> bool {
        self.shape.len() == 3
    }

    /// True when every value is exactly 0 or 1.
    pub fn is_binary(&self) -> bool {
        self.x.iter().all(|&v| v == 0.0 || v == 1.0)
    }

    pub fn row(&self, i: usize) -> &[f32] {
        let d = self.dim();
        &self.x[i * d..(i + 1) * d]
    }

    /// The examples at `idx` as a `[B, dim]` tensor.
    pub fn batch(&self, idx: &[usize], device: &Device) -> Result<Tensor> {
        let d = self.dim();
        let mut v = Vec::with_capacity(idx.len() * d);
        for &i in idx {
            v.extend_from_slice(self.row(i));
        }
        Ok(Tensor::from_vec(v, (idx.len(), d), device)?)
    }

    /// The first `n` examples (or all, if fewer).
    pub fn take(&self, n: usize) -> Dataset {
        let n = n.min(self.n);
        Dataset {
            source: self.source.clone(),
            x: self.x[..n * self.dim()].to_vec(),
            n,
            shape: self.shape.clone(),
            labels: self.labels.as_ref().map(|l| l[..n].to_vec()),
            notes: self.notes.clone(),
            attributes: self.attributes.as_ref().map(|a| a.select(&(0..n).collect::<Vec<_>>())),
            captions: self.captions.as_ref().map(|c| c.select(&(0..n).collect::<Vec<_>>())),
        }
    }

    /// Binarizes in place: static (seeded draws) or threshold at 0.5.
    pub fn binarize(&mut self, how: Binarize, seed: u64) -> Result<()> {
        if how != Binarize::None {
            self.check_unit_range()?;
        }
        match how {
            Binarize::None | Binarize::Dynamic => {}
            Binarize::Threshold => {
                self.x.iter_mut().for_each(|v| *v = if *v > 0.5 { 1.0 } else { 0.0 })
            }
            Binarize::Static => {
                let mut r = rng::derived(seed, "static-binarization", 0);
                self.x = rng::bernoulli(&mut r, &self.x);
            }
        }
        Ok(())
    }

    fn check_unit_range(&self) -> Result<()> {
        match self.x.iter().position(|v| !(0.0..=1.0).contains(v)) {
            Some(i) => Err(Error::config(format!(
                "{}: cannot binarize: value {} is outside [0, 1] \
                (binarization treats values as probabilities)",
                self.source, self.x[i]
            ))),
            None => Ok(()),
        }
    }

    /// Per-feature standardisation statistics (mean, std with std floor 1e-6).
    pub fn moments(&self) -> (Vec<f32>, Vec<f32>) {
        let d = self.dim();
        let mut mean = vec![0f64; d];
        let mut sq = vec![0f64; d];
        for i in 0..self.n {
            for (j, &v) in self.row(i).iter().enumerate() {
                mean[j] += v as f64;
                sq[j] += (v as f64) * (v as f64);
            }
        }
        let n = self.n as f64;
        let m: Vec<f32> = mean.iter().map(|s| (s / n) as f32).collect();
        let s: Vec<f32> = sq
            .iter()
            .zip(&mean)
            .map(|(q, s)| ((q / n - (s / n).powi(2)).max(0.0).sqrt().max(1e-6)) as f32)
            .collect();
        (m, s)
    }

    /// Applies `(x - mean) / std` per feature.
    pub fn standardize(&mut self, mean: &[f32], std: &[f32]) -> Result<()> {
        let d = self.dim();
        if mean.len() != d || std.len() != d {
            return Err(Error::Shape(format!(
                "{}: standardisation for {} features applied to {d}",
                self.source,
                mean.len()
            )));
        }
        for (k, v) in self.x.iter_mut().enumerate() {
            let j = k % d;
            *v = (*v - mean[j]) / std[j];
        }
        Ok(())
    }
}

/// How grey values in [0, 1] become binary data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Binarize {
    /// Keep the values.
    #[default]
    None,
    /// Each pixel 1 with probability equal to its value, drawn once with the run's seed.
    Static,
    /// Drawn afresh for every batch (Salakhutdinov & Murray's dynamic binarization).
    Dynamic,
    /// 1 where the value exceeds 0.5.
    Threshold,
}

impl std::str::FromStr for Binarize {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "none" => Ok(Self::None),
            "static" => Ok(Self::Static),
            "dynamic" => Ok(Self::Dynamic),
            "threshold" => Ok(Self::Threshold),
            _ => Err(Error::config(format!(
                "unknown binarization `{s}` (expected none, static, dynamic or threshold)"
            ))),
        }
    }
}

/// Draws a dynamic binarization of a batch of probabilities.
pub fn binarize_batch(x: &Tensor, rng: &mut Rng) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let v = x.flatten_all()?.to_vec1::<f32>()?;
    Ok(Tensor::from_vec(rng::bernoulli(rng, &v), dims, x.device())?)
}

/// Where a data set comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum DataSpec {
    /// Embedded MNIST: 8,000 train, 2,000 test.
    Mnist {
        test: bool,
    },
    /// Embedded UCI digits 8x8: first 1,500 train, last 297 test.
    Digits {
        test: bool,
    },
    /// `PREFIX-images-idx3-ubyte[.gz]` (+ optional `PREFIX-labels-idx1-ubyte[.gz]`), or one IDX
    /// file.
    Idx(PathBuf),
    Png(PathBuf),
    Csv(PathBuf),
    Npy(PathBuf),
    Toy {
        kind: toy::Toy,
        test: bool,
    },
    /// Three embedded MNIST digits as RGB planes: 24,000 train, 2,000 test (from the test digits).
    StackedMnist {
        test: bool,
    },
    /// A spec with modifiers applied in order (`SPEC+only=3+noise`); each keeps its text.
    Modified {
        base: Box<DataSpec>,
        mods: Vec<(String, modify::Modifier)>,
    },
}

impl std::str::FromStr for DataSpec {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        if s.chars().any(char::is_control) {
            return Err(Error::config(format!(
                "data spec `{}` contains a control character",
                crate::error::shown(s)
            )));
        }
        // Modifiers are `+name[=value]` suffixes; a `+` that starts no known modifier stays part of
        // a path.
        let mut mods = Vec::new();
        let mut base = s;
        while let Some((head, tail)) = base.rsplit_once('+') {
            match modify::Modifier::parse(tail) {
                Some(m) => {
                    mods.push((tail.to_string(), m?));
                    base = head;
                }
                None if matches!(
                    head.split(':').next(),
                    Some("mnist" | "digits" | "stacked-mnist" | "toy")
                ) || !head.contains(':') =>
                {
                    return Err(Error::config(format!(
                        "data spec `{s}`: unknown modifier `+{tail}` (expected {})",
                        modify::NAMES
                    )))
                }
                None => break,
            }
        }
        if !mods.is_empty() {
            mods.reverse();
            return Ok(DataSpec::Modified { base: Box::new(base.parse()?), mods });
        }
        let (kind, rest) = s.split_once(':').unwrap_or((s, ""));
        let split = |rest: &str| match rest {
            "" | "train" => Ok(false),
            "test" => Ok(true),
            other => Err(Error::config(format!(
                "data spec `{s}`: unknown split `{other}` (expected train or test)"
            ))),
        };
        let path = |rest: &str| {
            if rest.is_empty() {
                Err(Error::config(format!("data spec `{s}` needs a path after `{kind}:`")))
            } else {
                Ok(PathBuf::from(rest))
            }
        };
        Ok(match kind {
            "mnist" => DataSpec::Mnist { test: split(rest)? },
            "digits" => DataSpec::Digits { test: split(rest)? },
            "stacked-mnist" => DataSpec::StackedMnist { test: split(rest)? },
            "idx" => DataSpec::Idx(path(rest)?),
            "png" => DataSpec::Png(path(rest)?),
            "csv" => DataSpec::Csv(path(rest)?),
            "npy" => DataSpec::Npy(path(rest)?),
            "toy" => {
                let (name, sp) = rest.split_once(':').unwrap_or((rest, ""));
                DataSpec::Toy { kind: name.parse()?, test: split(sp)? }
            }
            _ => {
                return Err(Error::config(format!(
                    "unknown data spec `{s}` (expected mnist, mnist:test, digits, stacked-mnist, \
                        idx:PREFIX, png:DIR, csv:FILE, npy:FILE, toy:ring8, toy:grid25, each \
                        optionally +{})",
                    modify::NAMES
                )))
            }
        })
    }
}

impl std::fmt::Display for DataSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sp = |t: bool| if t { ":test" } else { "" };
        match self {
            DataSpec::Mnist { test } => write!(f, "mnist{}", sp(*test)),
            DataSpec::Digits { test } => write!(f, "digits{}", sp(*test)),
            DataSpec::Idx(p) => write!(f, "idx:{}", p.display()),
            DataSpec::Png(p) => write!(f, "png:{}", p.display()),
            DataSpec::Csv(p) => write!(f, "csv:{}", p.display()),
            DataSpec::Npy(p) => write!(f, "npy:{}", p.display()),
            DataSpec::Toy { kind, test } => write!(f, "toy:{}{}", kind.name(), sp(*test)),
            DataSpec::StackedMnist { test } => write!(f, "stacked-mnist{}", sp(*test)),
            DataSpec::Modified { base, mods } => {
                write!(f, "{base}")?;
                mods.iter().try_for_each(|(t, _)| write!(f, "+{t}"))
            }
        }
    }
}

impl DataSpec {
    /// The held-out split of an embedded or toy set, used for validation NLL.
    pub fn held_out(&self) -> Option<DataSpec> {
        match self {
            DataSpec::Mnist { test: false } => Some(DataSpec::Mnist { test: true }),
            DataSpec::Digits { test: false } => Some(DataSpec::Digits { test: true }),
            DataSpec::Toy { kind, test: false } => Some(DataSpec::Toy { kind: *kind, test: true }),
            DataSpec::StackedMnist { test: false } => Some(DataSpec::StackedMnist { test: true }),
            DataSpec::Modified { base, mods } => {
                Some(DataSpec::Modified { base: Box::new(base.held_out()?), mods: mods.clone() })
            }
            _ => None,
        }
    }

    /// Loads the rows. `seed` only matters for toy data.
    pub fn load(&self, seed: u64) -> Result<Dataset> {
        let name = self.to_string();
        match self {
            DataSpec::Mnist { test } => {
                let (img, lab) = if *test {
                    (
                        &include_bytes!("../../../../data/mnist10k-test-images-idx3-ubyte.gz")[..],
                        &include_bytes!("../../../../data/mnist10k-test-labels-idx1-ubyte.gz")[..],
                    )
                } else {
                    (
                        &include_bytes!("../../../../data/mnist10k-train-images-idx3-ubyte.gz")[..],
                        &include_bytes!("../../../../data/mnist10k-train-labels-idx1-ubyte.gz")[..],
                    )
                };
                sources::from_idx_bytes(&name, img, Some(lab), 255.0)
            }
            DataSpec::Digits { test } => {
                let all = sources::from_idx_bytes(
                    &name,
                    include_bytes!("../../../../data/digits8x8-images-idx3-ubyte.gz"),
                    Some(include_bytes!("../../../../data/digits8x8-labels-idx1-ubyte.gz")),
                    16.0,
                )?;
                let (lo, hi) = if *test { (1500, all.n) } else { (0, 1500) };
                let d = all.dim();
                Dataset::new(
                    name,
                    all.x[lo * d..hi * d].to_vec(),
                    all.shape.clone(),
                    all.labels.map(|l| l[lo..hi].to_vec()),
                )
            }
            DataSpec::Idx(p) => {
                let mut d = sources::load_idx_prefix(p)?;
                let beside = std::path::PathBuf::from(format!("{}-attributes.csv", p.display()));
                if beside.is_file() {
                    d.attributes = Some(attributes::read_csv(&beside, d.n, None)?);
                }
                let beside = std::path::PathBuf::from(format!("{}-captions.txt", p.display()));
                if beside.is_file() {
                    d.captions = Some(captions::read_file(&beside, d.n, None)?);
                }
                Ok(d)
            }
            DataSpec::Png(p) => {
                let mut d = sources::load_png_dir(p)?;
                let beside = p.join("attributes.csv");
                if beside.is_file() {
                    let files = sources::png_names(p)?;
                    d.attributes = Some(attributes::read_csv(&beside, d.n, Some(&files))?);
                }
                let beside = p.join("captions.txt");
                if beside.is_file() {
                    let files = sources::png_names(p)?;
                    d.captions = Some(captions::read_file(&beside, d.n, Some(&files))?);
                }
                Ok(d)
            }
            DataSpec::Csv(p) => sources::load_csv(p),
            DataSpec::Npy(p) => sources::load_npy(p),
            DataSpec::Toy { kind, test } => {
                let n = if *test { 2000 } else { 10_000 };
                let mut r = rng::derived(seed, if *test { "toy-test" } else { "toy-train" }, 0);
                toy::sample(*kind, n, &mut r, &name)
            }
            DataSpec::StackedMnist { test } => {
                let digits = DataSpec::Mnist { test: *test }.load(seed)?;
                modify::stacked(&digits, if *test { 2000 } else { 24_000 }, &name)
            }
            DataSpec::Modified { base, mods } => {
                let mut d = base.load(seed)?;
                let mut text = base.to_string();
                for (t, m) in mods {
                    text = format!("{text}+{t}");
                    d = m.apply(d, &text)?;
                }
                Ok(d)
            }
        }
    }
}
