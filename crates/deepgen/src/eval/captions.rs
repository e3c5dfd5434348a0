//! Does a text-conditional generator draw what its caption says?
//!
//! - Caption consistency: an independent digit classifier's digit for each generated image
//!   against the caption's digit, and the attributes measured on the image
//!   ([`crate::data::captions::measure`]) against those the caption states; the chance level of
//!   an attribute is the share of real held-out images at the stated level (what a generator
//!   ignoring that word would score).
//! - R-precision (Xu et al. 2018, AttnGAN, Sec. 5): for each generated image, its caption and 99
//!   captions of other held-out images ranked by a separately trained matcher
//!   ([`crate::models::Matcher`]); the share of images whose own caption ranks first. Chance is
//!   1 %; the same matcher on the real images gives the ceiling.

use candle_core::Tensor;
use rand::Rng as _;

use crate::data::captions::{measure, Level, Meaning};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::models::{Classifier, Matcher, TextGan};
use crate::rng::{self, Rng};

/// Candidates per image for R-precision (the true caption among them).
pub const CANDIDATES: usize = 100;

/// One attribute's agreement: among the captions stating it, the share whose image measures at
/// the stated level.
#[derive(Debug, Clone)]
pub struct Agreement {
    pub name: &'static str,
    pub stated: usize,
    pub agree: usize,
    /// The mean, over the captions stating it, of the real images' share at the stated level.
    pub chance: f64,
}

impl Agreement {
    pub fn rate(&self) -> f64 {
        self.agree as f64 / self.stated.max(1) as f64
    }
}

/// Caption consistency and R-precision of generated images.
#[derive(Debug, Clone)]
pub struct TextScores {
    pub n: usize,
    /// The share of generated images whose classified digit is the caption's (over captions
    /// naming a digit), and the classifier's accuracy on the real images against their captions.
    pub digit: f64,
    pub digit_real: f64,
    pub attributes: Vec<Agreement>,
    /// R-precision on generated and on real images (with a matcher).
    pub r_precision: Option<(f64, f64)>,
}

/// The captions the images are drawn for: one per example of `data` (the first `n`), drawn with
/// `rng`.
pub fn captions_for(data: &Dataset, n: usize, rng: &mut Rng) -> Result<Vec<String>> {
    let c = crate::models::matcher::captions_of(data, "text evaluation")?;
    Ok((0..n.min(data.n)).map(|i| c.draw(i, rng).to_string()).collect())
}

/// R-precision: `images[i]` against caption `i` and 99 captions of other rows.
pub fn r_precision(
    m: &Matcher,
    images: &Tensor,
    captions: &[String],
    rng: &mut Rng,
) -> Result<f64> {
    let n = captions.len();
    if n < 2 {
        return Err(Error::config("R-precision needs at least 2 images"));
    }
    let mut t = Vec::new();
    for chunk in captions.chunks(512) {
        t.push(m.embed_captions(chunk)?);
    }
    let t = Tensor::cat(&t, 0)?;
    let mut hits = 0;
    for start in (0..n).step_by(256) {
        let k = 256.min(n - start);
        // The images may sit on another device than the matcher (its captions' embeddings).
        let v = m.embed_images(&images.narrow(0, start, k)?.to_device(t.device())?)?;
        let s = v.matmul(&t.t()?)?.to_vec2::<f32>()?;
        for (r, row) in s.iter().enumerate() {
            let i = start + r;
            let own = row[i];
            let beaten = (0..CANDIDATES - 1).any(|_| {
                let j = (i + rng.gen_range(1..n)) % n;
                row[j] >= own
            });
            hits += usize::from(!beaten);
        }
    }
    Ok(hits as f64 / n as f64)
}

fn argmax(row: &[f32]) -> u32 {
    (0..row.len()).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap_or(0) as u32
}

fn digits(c: &Classifier, x: &Tensor) -> Result<Vec<u32>> {
    let mut out = Vec::with_capacity(x.dim(0)?);
    for start in (0..x.dim(0)?).step_by(512) {
        let k = 512.min(x.dim(0)? - start);
        out.extend(c.logits(&x.narrow(0, start, k)?)?.to_vec2::<f32>()?.iter().map(|r| argmax(r)));
    }
    Ok(out)
}

/// The real held-out images' share at each level of each attribute (thickness, slant, size).
fn shares(data: &Dataset, n: usize) -> Result<[[f64; 3]; 3]> {
    let mut s = [[0f64; 3]; 3];
    let n = n.min(data.n);
    for i in 0..n {
        let m = measure(data.row(i), &data.shape)?;
        for (a, l) in [m.thickness_level(), m.slant_level(), m.size_level()].into_iter().enumerate()
        {
            s[a][l as usize] += 1.0 / n as f64;
        }
    }
    Ok(s)
}

/// Scores `gan` on `n` captions of `data` (held-out images with captions): one image per
/// caption. The chance levels are the shares of `population`'s images (the held-out set as a
/// whole, when `data` is a selection such as the held-out attribute combinations).
pub fn evaluate(
    gan: &TextGan,
    classifier: &Classifier,
    matcher: Option<&Matcher>,
    data: &Dataset,
    population: &Dataset,
    n: usize,
    seed: u64,
) -> Result<TextScores> {
    let mut r = rng::derived(seed, "text-eval", 0);
    let captions = captions_for(data, n, &mut r)?;
    let n = captions.len();
    let mut parts = Vec::new();
    for chunk in captions.chunks(256) {
        parts.push(gan.sample_captions(chunk, &mut r)?);
    }
    let fake = Tensor::cat(&parts, 0)?;
    let idx: Vec<usize> = (0..n).collect();
    let real = data.batch(&idx, fake.device())?;
    let meanings: Vec<Meaning> = captions.iter().map(|c| Meaning::parse(c)).collect();
    let (said_fake, said_real) = (digits(classifier, &fake)?, digits(classifier, &real)?);
    let named: Vec<usize> = (0..n).filter(|&i| meanings[i].digit.is_some()).collect();
    let rate = |said: &[u32]| {
        named.iter().filter(|&&i| meanings[i].digit == Some(said[i])).count() as f64
            / named.len().max(1) as f64
    };
    let base = shares(population, population.n)?;
    let rows = fake.to_vec2::<f32>()?;
    let measured: Vec<_> =
        rows.iter().map(|x| measure(x, &data.shape)).collect::<Result<Vec<_>>>()?;
    let mut attributes = Vec::new();
    type Get = fn(&Meaning) -> Option<Level>;
    let named_attrs: [(&str, Get); 3] =
        [("thickness", |m| m.thickness), ("slant", |m| m.slant), ("size", |m| m.size)];
    for (a, (name, get)) in named_attrs.into_iter().enumerate() {
        let mut g = Agreement { name, stated: 0, agree: 0, chance: 0.0 };
        for i in 0..n {
            let Some(l) = get(&meanings[i]) else { continue };
            let m = &measured[i];
            let got = [m.thickness_level(), m.slant_level(), m.size_level()][a];
            g.stated += 1;
            g.agree += usize::from(got == l);
            g.chance += base[a][l as usize];
        }
        g.chance /= g.stated.max(1) as f64;
        attributes.push(g);
    }
    let with_colour: Vec<usize> = (0..n).filter(|&i| meanings[i].colour.is_some()).collect();
    if !with_colour.is_empty() {
        let colours = &crate::data::domains::COLOURS;
        let mut share = vec![0f64; colours.len()];
        for j in 0..population.n {
            if let Some(k) = measure(population.row(j), &population.shape)?.colour {
                share[k] += 1.0 / population.n as f64;
            }
        }
        let mut g = Agreement { name: "colour", stated: 0, agree: 0, chance: 0.0 };
        for &i in &with_colour {
            let said = meanings[i].colour.as_deref();
            g.stated += 1;
            g.agree += usize::from(measured[i].colour.map(|k| colours[k].0) == said);
            g.chance += colours.iter().position(|c| Some(c.0) == said).map_or(0.0, |k| share[k]);
        }
        g.chance /= g.stated.max(1) as f64;
        attributes.push(g);
    }
    let r_precision = match matcher {
        Some(m) => {
            let mut rr = rng::derived(seed, "r-precision", 0);
            let f = r_precision(m, &fake, &captions, &mut rr)?;
            let mut rr = rng::derived(seed, "r-precision", 0);
            Some((f, r_precision(m, &real, &captions, &mut rr)?))
        }
        None => None,
    };
    Ok(TextScores {
        n,
        digit: rate(&said_fake),
        digit_real: rate(&said_real),
        attributes,
        r_precision,
    })
}

impl TextScores {
    /// A markdown table.
    pub fn table(&self, what: &str) -> String {
        let mut s = format!(
            "{what}: {} captions, one generated image each.\n\n| measure | generated | real \
            images | chance |\n|---|---|---|---|\n",
            self.n
        );
        s += &format!(
            "| digit (classifier agrees with the caption) | {:.1} % | {:.1} % | 10 % |\n",
            100.0 * self.digit,
            100.0 * self.digit_real
        );
        for a in &self.attributes {
            s += &format!(
                "| {} ({} captions state it) | {:.1} % | 100 % (captions made from it) | {:.1} % \
                |\n",
                a.name,
                a.stated,
                100.0 * a.rate(),
                100.0 * a.chance
            );
        }
        if let Some((f, r)) = self.r_precision {
            s += &format!(
                "| R-precision (1 of {CANDIDATES}, separate matcher) | {:.1} % | {:.1} % | {:.0} % \
                |\n",
                100.0 * f,
                100.0 * r,
                100.0 / CANDIDATES as f64
            );
        }
        s
    }

    /// One line.
    pub fn line(&self, what: &str) -> String {
        let attrs: Vec<String> = self
            .attributes
            .iter()
            .map(|a| {
                format!("{} {:.1} % (chance {:.1} %)", a.name, 100.0 * a.rate(), 100.0 * a.chance)
            })
            .collect();
        let rp = self
            .r_precision
            .map(|(f, r)| format!("; R-precision {:.1} % (real {:.1} %)", 100.0 * f, 100.0 * r))
            .unwrap_or_default();
        format!(
            "{what}: digit agreement {:.1} % (real {:.1} %); {}{rp}",
            100.0 * self.digit,
            100.0 * self.digit_real,
            attrs.join(", ")
        )
    }
}

/// The matcher's R-precision on real held-out images, for the end of its training.
pub fn matcher_line(m: &Matcher, v: &Dataset, seed: u64) -> Result<String> {
    let mut r = rng::derived(seed, "r-precision", 0);
    let captions = captions_for(v, 1000, &mut r)?;
    let idx: Vec<usize> = (0..captions.len()).collect();
    let dev = candle_core::Device::Cpu;
    let x = v.batch(&idx, &dev)?;
    let p = r_precision(m, &x, &captions, &mut r)?;
    Ok(format!(
        "R-precision on {} held-out images of {} (own caption first among {CANDIDATES}): {:.1} %",
        captions.len(),
        v.source,
        100.0 * p
    ))
}
