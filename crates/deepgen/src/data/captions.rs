//! Captions: one or more sentences per image, the text-conditional GAN's conditions (Reed et al.
//! 2016 use ten per image of CUB and Oxford-102, written by people).
//!
//! Sources:
//! - A caption file beside an image set, one caption per line as `KEY<TAB>CAPTION`, several lines
//!   allowed per image: `DIR/captions.txt` beside a PNG folder (the key is the image's file name)
//!   and `PREFIX-captions.txt` beside an IDX set (the key is the image's 0-based index). Every
//!   image needs at least one caption.
//! - `+captions` on the embedded digits: captions made from the label and from attributes
//!   measured on each image ([`measure`]): stroke thickness (twice the ink area over its
//!   perimeter, the width of a stroke of that area and outline), slant (the shear of the ink's
//!   second moments) and size (the ink's bounding box), and the colour of a tinted digit, in
//!   several wordings ("a thick 7 leaning left", "seven, bold, slanted left").
//!
//! The levels: the middle half of each measure says nothing ("a 7"); the thresholds are the
//! quartiles of the embedded training digits (size: 241, so that the many 12 x 20 boxes of
//! area 240 count as small; `tests/text.rs` checks each extreme holds about a quarter), except
//! slant, whose "leaning left" starts at a shear of -0.05 because most MNIST digits lean right.
//! Two attribute combinations are held out of training, `+seen` drops them and `+unseen` keeps
//! only them: thick and leaning left for even digits, thin and leaning right for odd digits.

use std::path::Path;

use rand::Rng as _;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The captions of each example, in example order (each has at least one).
#[derive(Debug, Clone, PartialEq)]
pub struct Captions {
    pub texts: Vec<Vec<String>>,
}

impl Captions {
    pub fn n(&self) -> usize {
        self.texts.len()
    }

    /// The captions of examples `idx`, in that order.
    pub fn select(&self, idx: &[usize]) -> Self {
        Self { texts: idx.iter().map(|&i| self.texts[i].clone()).collect() }
    }

    /// One caption of example `i`, drawn with `rng`.
    pub fn draw(&self, i: usize, rng: &mut crate::rng::Rng) -> &str {
        let t = &self.texts[i];
        &t[rng.gen_range(0..t.len())]
    }
}

/// A level of a measured attribute: the lowest quarter, the middle half, the top quarter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Level {
    Low,
    Mid,
    High,
}

/// Stroke width below which a digit is thin, and above which it is thick (pixels).
pub const THIN: f32 = 1.65;
pub const THICK: f32 = 2.3;
/// Shear (horizontal pixels per pixel up) below which a digit leans left, above which right.
pub const LEFT: f32 = -0.05;
pub const RIGHT: f32 = 0.3;
/// Bounding-box area below which a digit is small, above which large (28 x 28 pixels).
pub const SMALL: f32 = 241.0;
pub const LARGE: f32 = 340.0;

/// What is measured on one image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measured {
    /// Twice the ink area over its outline length: the width of a stroke (pixels).
    pub thickness: f32,
    /// The ink's shear: sum v (x - mx)(my - y) / sum v (y - my)^2 (positive: the top leans right).
    pub slant: f32,
    /// The area of the ink's bounding box, scaled to a 28 x 28 image.
    pub area: f32,
    /// The tint: the index in [`crate::data::domains::COLOURS`] nearest the ink's mean colour,
    /// for three-channel images.
    pub colour: Option<usize>,
}

fn level(v: f32, lo: f32, hi: f32) -> Level {
    if v < lo {
        Level::Low
    } else if v > hi {
        Level::High
    } else {
        Level::Mid
    }
}

impl Measured {
    pub fn thickness_level(&self) -> Level {
        level(self.thickness, THIN, THICK)
    }
    pub fn slant_level(&self) -> Level {
        level(self.slant, LEFT, RIGHT)
    }
    pub fn size_level(&self) -> Level {
        level(self.area, SMALL, LARGE)
    }
}

/// Measures one image of `shape` `[1 or 3, H, W]`, values in [0, 1] (ink bright). Ink is a pixel
/// above 0.5 in the grey image (the channels' maximum). An image without ink measures 0 for all.
pub fn measure(x: &[f32], shape: &[usize]) -> Result<Measured> {
    let (c, h, w) = match shape {
        [c @ (1 | 3), h, w] if x.len() == c * h * w => (*c, *h, *w),
        _ => {
            return Err(Error::Shape(format!(
                "captions measure one- or three-channel images, not shape {shape:?}"
            )))
        }
    };
    let grey: Vec<f32> =
        (0..h * w).map(|p| (0..c).map(|k| x[k * h * w + p]).fold(0f32, f32::max)).collect();
    let on: Vec<bool> = grey.iter().map(|&v| v > 0.5).collect();
    let area = on.iter().filter(|&&b| b).count();
    let mut perimeter = 0usize;
    let (mut top, mut bottom, mut left, mut right) = (h, 0, w, 0);
    for i in 0..h {
        for j in 0..w {
            if !on[i * w + j] {
                continue;
            }
            (top, bottom, left, right) = (top.min(i), bottom.max(i), left.min(j), right.max(j));
            let off = |a: Option<usize>, b: Option<usize>| match (a, b) {
                (Some(a), Some(b)) if a < h && b < w => !on[a * w + b],
                _ => true,
            };
            perimeter += [
                off(i.checked_sub(1), Some(j)),
                off(Some(i + 1), Some(j)),
                off(Some(i), j.checked_sub(1)),
                off(Some(i), Some(j + 1)),
            ]
            .iter()
            .filter(|&&e| e)
            .count();
        }
    }
    if area == 0 {
        return Ok(Measured { thickness: 0.0, slant: 0.0, area: 0.0, colour: None });
    }
    let mass: f64 = grey.iter().map(|&v| v as f64).sum();
    let (mut mx, mut my) = (0f64, 0f64);
    for (p, &v) in grey.iter().enumerate() {
        mx += v as f64 * (p % w) as f64;
        my += v as f64 * (p / w) as f64;
    }
    (mx, my) = (mx / mass, my / mass);
    let (mut sxy, mut syy) = (0f64, 0f64);
    for (p, &v) in grey.iter().enumerate() {
        let (dx, dy) = ((p % w) as f64 - mx, my - (p / w) as f64);
        sxy += v as f64 * dx * dy;
        syy += v as f64 * dy * dy;
    }
    let bbox = ((bottom - top + 1) * (right - left + 1)) as f32 * (28.0 * 28.0) / (h * w) as f32;
    let colour = (c == 3).then(|| {
        let mut mean = [0f32; 3];
        for (k, m) in mean.iter_mut().enumerate() {
            let s: f32 = (0..h * w).filter(|&p| on[p]).map(|p| x[k * h * w + p]).sum();
            *m = s / area as f32;
        }
        let dist = |rgb: &[f32; 3]| -> f32 { (0..3).map(|k| (rgb[k] - mean[k]).powi(2)).sum() };
        let colours = &super::domains::COLOURS;
        (0..colours.len())
            .min_by(|&a, &b| dist(&colours[a].1).total_cmp(&dist(&colours[b].1)))
            .unwrap_or(0)
    });
    Ok(Measured {
        thickness: 2.0 * area as f32 / perimeter.max(1) as f32,
        slant: if syy > 0.0 { (sxy / syy) as f32 } else { 0.0 },
        area: bbox,
        colour,
    })
}

/// What a caption of the embedded digits states: the digit and the attributes it names (None:
/// not said).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Meaning {
    pub digit: Option<u32>,
    pub thickness: Option<Level>,
    pub slant: Option<Level>,
    pub size: Option<Level>,
    /// A colour name of [`crate::data::domains::COLOURS`].
    pub colour: Option<String>,
}

const WORDS: [&str; 10] =
    ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"];
const THICK_WORDS: [&str; 3] = ["thick", "bold", "heavy"];
const THIN_WORDS: [&str; 3] = ["thin", "light", "fine"];
const SMALL_WORDS: [&str; 2] = ["small", "little"];
const LARGE_WORDS: [&str; 2] = ["large", "big"];
const LEAN: [&str; 3] = ["leaning", "slanted", "tilted"];

impl Meaning {
    /// What a digit of label `digit` with measures `m` is: the levels outside the middle half.
    pub fn of(digit: u32, m: &Measured) -> Self {
        let said = |l: Level| (l != Level::Mid).then_some(l);
        Self {
            digit: Some(digit),
            thickness: said(m.thickness_level()),
            slant: said(m.slant_level()),
            size: said(m.size_level()),
            colour: m.colour.map(|k| super::domains::COLOURS[k].0.to_string()),
        }
    }

    /// The combinations kept out of training: thick and leaning left for even digits, thin and
    /// leaning right for odd digits.
    pub fn held_out(&self) -> bool {
        match self.digit {
            Some(d) if d % 2 == 0 => {
                self.thickness == Some(Level::High) && self.slant == Some(Level::Low)
            }
            Some(_) => self.thickness == Some(Level::Low) && self.slant == Some(Level::High),
            None => false,
        }
    }

    /// One wording of the meaning (the template and synonyms drawn with `rng`).
    pub fn wording(&self, rng: &mut crate::rng::Rng) -> String {
        let pick = |r: &mut crate::rng::Rng, w: &[&'static str]| w[r.gen_range(0..w.len())];
        let digit = self.digit.unwrap_or(0) as usize;
        let name =
            if rng.gen_bool(0.5) { digit.to_string() } else { WORDS[digit % 10].to_string() };
        let stroke = match self.thickness {
            Some(Level::High) => Some(pick(rng, &THICK_WORDS)),
            Some(Level::Low) => Some(pick(rng, &THIN_WORDS)),
            _ => None,
        };
        let size = match self.size {
            Some(Level::High) => Some(pick(rng, &LARGE_WORDS)),
            Some(Level::Low) => Some(pick(rng, &SMALL_WORDS)),
            _ => None,
        };
        let lean = match self.slant {
            Some(Level::Low) => Some(format!("{} left", pick(rng, &LEAN))),
            Some(Level::High) => Some(format!("{} right", pick(rng, &LEAN))),
            _ => None,
        };
        let colour = self.colour.as_deref();
        let mut words: Vec<String> = vec![];
        match rng.gen_range(0..3) {
            // "a thick small red 7 leaning left"
            0 => {
                words.push("a".into());
                words.extend(stroke.into_iter().chain(size).chain(colour).map(String::from));
                words.push(name);
                words.extend(lean);
            }
            // "seven, bold, small, red, slanted left"
            1 => {
                words.push(name);
                for w in stroke.into_iter().chain(size).chain(colour).map(String::from).chain(lean)
                {
                    let last = words.pop().unwrap_or_default();
                    words.push(format!("{last},"));
                    words.push(w);
                }
            }
            // "the digit 7 in thick strokes, small, red, tilted left"
            _ => {
                words.extend(["the".to_string(), "digit".to_string(), name]);
                if let Some(s) = stroke {
                    words.extend(["in".to_string(), s.to_string(), "strokes".to_string()]);
                }
                for w in size.into_iter().chain(colour).map(String::from).chain(lean) {
                    let last = words.pop().unwrap_or_default();
                    words.push(format!("{last},"));
                    words.push(w);
                }
            }
        }
        words.join(" ")
    }

    /// What a caption in the built-in wordings states (words outside them are ignored).
    pub fn parse(caption: &str) -> Self {
        let words = tokens(caption);
        let mut m = Meaning::default();
        for (i, w) in words.iter().enumerate() {
            let w = w.as_str();
            if let Some(d) = WORDS.iter().position(|&n| n == w) {
                m.digit = Some(d as u32);
            } else if w.len() == 1 && w.as_bytes()[0].is_ascii_digit() {
                m.digit = Some((w.as_bytes()[0] - b'0') as u32);
            } else if THICK_WORDS.contains(&w) {
                m.thickness = Some(Level::High);
            } else if THIN_WORDS.contains(&w) {
                m.thickness = Some(Level::Low);
            } else if LARGE_WORDS.contains(&w) {
                m.size = Some(Level::High);
            } else if SMALL_WORDS.contains(&w) {
                m.size = Some(Level::Low);
            } else if LEAN.contains(&w) {
                match words.get(i + 1).map(String::as_str) {
                    Some("left") => m.slant = Some(Level::Low),
                    Some("right") => m.slant = Some(Level::High),
                    _ => {}
                }
            } else if super::domains::COLOURS.iter().any(|(n, _)| *n == w) {
                m.colour = Some(w.to_string());
            }
        }
        m
    }
}

/// How many captions `+captions` writes per image.
pub const PER_IMAGE: usize = 5;

/// `+captions`: [`PER_IMAGE`] captions per labelled digit image, from its label and measures
/// (wordings seeded by the spec text and the image's index).
pub fn digits_with_captions(d: &super::Dataset, source: &str) -> Result<super::Dataset> {
    let labels = d.labels.as_ref().ok_or_else(|| {
        Error::config(format!("{source}: `captions` names the digit: the data needs labels"))
    })?;
    if !matches!(d.shape[..], [1 | 3, _, _]) {
        return Err(Error::config(format!(
            "{source}: `captions` describes one- or three-channel images, these have shape {:?}",
            d.shape
        )));
    }
    if let Some(v) = d.x.iter().find(|v| !(0.0..=1.0).contains(*v)) {
        return Err(Error::config(format!(
            "{source}: `captions` needs values in [0, 1], the data has {v}"
        )));
    }
    if let Some(&l) = labels.iter().find(|&&l| l > 9) {
        return Err(Error::config(format!("{source}: `captions` names digits 0-9, not label {l}")));
    }
    let mut texts = Vec::with_capacity(d.n);
    for (i, &label) in labels.iter().enumerate() {
        let m = Meaning::of(label, &measure(d.row(i), &d.shape)?);
        let mut r = crate::rng::derived(0, source, i as u64);
        texts.push((0..PER_IMAGE).map(|_| m.wording(&mut r)).collect());
    }
    let mut out = d.clone();
    out.source = source.to_string();
    out.captions = Some(Captions { texts });
    Ok(out)
}

/// `+seen` (`keep_held_out` false) or `+unseen` (true): the examples whose built-in captions
/// do not (do) state a held-out combination ([`Meaning::held_out`]).
pub fn held_out_rows(d: &super::Dataset, source: &str, keep_held_out: bool) -> Result<Vec<usize>> {
    let c = d.captions.as_ref().ok_or_else(|| {
        Error::config(format!(
            "{source}: `{}` selects by caption: add captions first (SPEC+captions)",
            if keep_held_out { "unseen" } else { "seen" }
        ))
    })?;
    let idx: Vec<usize> = (0..c.n())
        .filter(|&i| c.texts[i].iter().any(|t| Meaning::parse(t).held_out()) == keep_held_out)
        .collect();
    if idx.is_empty() {
        return Err(Error::config(format!("{source}: no examples are left")));
    }
    Ok(idx)
}

/// Reads a caption file for `n` examples: `files` names the PNG folder's images in row order
/// (keys are file names), `None` for an IDX set (keys are 0-based indices).
pub fn read_file(path: &Path, n: usize, files: Option<&[String]>) -> Result<Captions> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    crate::limits::check_values(&path.display().to_string(), meta.len(), 1)?;
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| Error::bad_file(path, "the caption file is not UTF-8 text"))?;
    parse_file(text.trim_start_matches('\u{feff}'), path, n, files)
}

/// [`read_file`] on the file's text.
pub fn parse_file(text: &str, path: &Path, n: usize, files: Option<&[String]>) -> Result<Captions> {
    let by_name: std::collections::HashMap<&str, usize> = files
        .map(|f| f.iter().enumerate().map(|(i, s)| (s.as_str(), i)).collect())
        .unwrap_or_default();
    let mut texts: Vec<Vec<String>> = vec![Vec::new(); n];
    for (ln, line) in text.lines().enumerate() {
        let bad = |msg: String| Error::bad_file(path, format!("line {}: {msg}", ln + 1));
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let (key, caption) =
            line.split_once('\t').ok_or_else(|| bad("expected KEY<TAB>CAPTION".into()))?;
        let row = match files {
            Some(_) => *by_name.get(key.trim()).ok_or_else(|| {
                bad(format!("`{}` is not an image of the folder", crate::error::shown(key)))
            })?,
            None => match key.trim().parse::<usize>() {
                Ok(i) if i < n => i,
                _ => {
                    return Err(bad(format!(
                        "`{}` is not an image index 0 to {}",
                        crate::error::shown(key),
                        n - 1
                    )))
                }
            },
        };
        if tokens(caption).is_empty() {
            return Err(bad("the caption has no words".into()));
        }
        texts[row].push(caption.trim().to_string());
    }
    if let Some(i) = texts.iter().position(Vec::is_empty) {
        let which = files.map(|f| f[i].clone()).unwrap_or_else(|| format!("index {i}"));
        return Err(Error::bad_file(path, format!("no caption for image {which}")));
    }
    Ok(Captions { texts })
}

/// The words of a caption: lower case, split at every character that is not a letter or digit.
pub fn tokens(caption: &str) -> Vec<String> {
    caption
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// The most words a caption may have.
pub const MAX_WORDS: usize = 32;

/// The words a text encoder knows (id 0 is padding, word k has id k + 1) and the longest caption
/// it takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vocab {
    pub words: Vec<String>,
    pub max_words: usize,
}

impl Vocab {
    /// The words of every caption of `c`, sorted; `what` names the data in errors.
    pub fn build(c: &Captions, what: &str) -> Result<Self> {
        let mut words = std::collections::BTreeSet::new();
        let mut longest = 0;
        for t in c.texts.iter().flatten() {
            let w = tokens(t);
            if w.len() > MAX_WORDS {
                return Err(Error::config(format!(
                    "{what}: the caption `{}` has {} words, more than {MAX_WORDS}",
                    crate::error::shown(t),
                    w.len()
                )));
            }
            longest = longest.max(w.len());
            words.extend(w);
        }
        if words.is_empty() {
            return Err(Error::config(format!("{what}: the captions have no words")));
        }
        Ok(Self { words: words.into_iter().collect(), max_words: longest })
    }

    /// Ids 1.. of the caption's words, padded with 0 to `max_words`, as f32 (a batch row's tail).
    pub fn row(&self, caption: &str) -> Result<Vec<f32>> {
        let w = tokens(caption);
        if w.is_empty() {
            return Err(Error::config(format!(
                "the caption `{}` has no words",
                crate::error::shown(caption)
            )));
        }
        if w.len() > self.max_words {
            return Err(Error::config(format!(
                "the caption `{}` has {} words; the run's captions have at most {}",
                crate::error::shown(caption),
                w.len(),
                self.max_words
            )));
        }
        let mut out = vec![0f32; self.max_words];
        for (k, word) in w.iter().enumerate() {
            let id = self.words.binary_search(word).map_err(|_| {
                let shown: Vec<&str> = self.words.iter().take(40).map(String::as_str).collect();
                Error::config(format!(
                    "unknown word `{}` in `{}` (the run knows {} words: {}{})",
                    crate::error::shown(word),
                    crate::error::shown(caption),
                    self.words.len(),
                    shown.join(" "),
                    if self.words.len() > 40 { " ..." } else { "" }
                ))
            })?;
            out[k] = (id + 1) as f32;
        }
        Ok(out)
    }

    /// Ids per example, for the batch rows of examples `idx` of `c`, one caption each drawn with
    /// `rng`: `[idx.len() * max_words]`.
    pub fn rows(&self, c: &Captions, idx: &[usize], rng: &mut crate::rng::Rng) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(idx.len() * self.max_words);
        for &i in idx {
            out.extend(self.row(c.draw(i, rng))?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 28 x 28 image with the pixels `on` set to 1.
    fn image(on: impl Fn(usize, usize) -> bool) -> Vec<f32> {
        (0..28 * 28).map(|p| if on(p / 28, p % 28) { 1.0 } else { 0.0 }).collect()
    }

    #[test]
    fn a_bar_measures_its_width_slant_and_box() {
        // A vertical bar 3 wide and 20 tall: area 60, perimeter 2 (3 + 20) = 46.
        let x = image(|i, j| (4..24).contains(&i) && (12..15).contains(&j));
        let m = measure(&x, &[1, 28, 28]).unwrap();
        assert!((m.thickness - 120.0 / 46.0).abs() < 1e-5);
        assert!(m.slant.abs() < 1e-6);
        assert_eq!(m.area, 60.0);
        assert_eq!(m.colour, None);
        // A one-pixel diagonal going up to the right, one pixel right per pixel up: shear 1.
        let d = image(|i, j| (4..24).contains(&i) && j == 27 - i);
        let m = measure(&d, &[1, 28, 28]).unwrap();
        assert!((m.slant - 1.0).abs() < 1e-5, "{}", m.slant);
        assert_eq!(m.slant_level(), Level::High);
        assert_eq!(m.thickness_level(), Level::Low);
        // Its mirror leans left.
        let e = image(|i, j| (4..24).contains(&i) && j == i);
        assert!((measure(&e, &[1, 28, 28]).unwrap().slant + 1.0).abs() < 1e-5);
    }

    #[test]
    fn a_tinted_image_measures_its_colour() {
        let g = image(|i, j| (4..24).contains(&i) && (10..16).contains(&j));
        let rgb = super::super::domains::tint(&g, [0.0, 1.0, 0.0]);
        let m = measure(&rgb, &[3, 28, 28]).unwrap();
        assert_eq!(super::super::domains::COLOURS[m.colour.unwrap()].0, "green");
        assert!(measure(&rgb, &[1, 28, 28]).is_err());
    }

    #[test]
    fn wordings_say_the_meaning_and_parse_back() {
        let m = Meaning {
            digit: Some(7),
            thickness: Some(Level::High),
            slant: Some(Level::Low),
            size: Some(Level::Low),
            colour: Some("red".into()),
        };
        let mut r = crate::rng::rng(3);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let w = m.wording(&mut r);
            assert_eq!(Meaning::parse(&w), m, "{w}");
            seen.insert(w);
        }
        assert!(seen.len() > 20, "{} wordings", seen.len());
        // Thick and leaning left is held out for even digits only.
        assert!(!m.held_out());
        assert!(Meaning { digit: Some(8), ..m.clone() }.held_out());
        let thin_right =
            Meaning { thickness: Some(Level::Low), slant: Some(Level::High), ..m.clone() };
        assert!(thin_right.held_out() && !Meaning { digit: Some(4), ..thin_right }.held_out());
        let plain = Meaning { digit: Some(3), ..Meaning::default() };
        assert_eq!(Meaning::parse(&plain.wording(&mut r)), plain);
        assert_eq!(Meaning::parse("a thick 7 leaning left").slant, Some(Level::Low));
        assert_eq!(Meaning::parse("seven, bold, slanted right").thickness, Some(Level::High));
    }

    #[test]
    fn a_caption_file_keys_every_image() {
        let p = Path::new("c.txt");
        let files = vec!["a.png".to_string(), "b.png".to_string()];
        let c = parse_file("a.png\tA red 7\nb.png\tseven\na.png\tanother\n", p, 2, Some(&files))
            .unwrap();
        assert_eq!(c.texts, vec![vec!["A red 7", "another"], vec!["seven"]]);
        let e = parse_file("a.png\tx\n", p, 2, Some(&files)).unwrap_err().to_string();
        assert!(e.contains("no caption for image b.png"), "{e}");
        let e = parse_file("c.png\tx\n", p, 2, Some(&files)).unwrap_err().to_string();
        assert!(e.contains("line 1") && e.contains("c.png"), "{e}");
        let e = parse_file("0\tx\n1\t , \n", p, 2, None).unwrap_err().to_string();
        assert!(e.contains("line 2: the caption has no words"), "{e}");
        let e = parse_file("0 x\n", p, 1, None).unwrap_err().to_string();
        assert!(e.contains("KEY<TAB>CAPTION"), "{e}");
        let e = parse_file("5\tx\n", p, 2, None).unwrap_err().to_string();
        assert!(e.contains("index 0 to 1"), "{e}");
    }

    #[test]
    fn the_vocabulary_pads_and_refuses_unknown_words() {
        let c = Captions { texts: vec![vec!["a thick 7".into()], vec!["Seven, thin".into()]] };
        let v = Vocab::build(&c, "test").unwrap();
        assert_eq!(v.words, vec!["7", "a", "seven", "thick", "thin"]);
        assert_eq!(v.max_words, 3);
        assert_eq!(v.row("thin seven").unwrap(), vec![5.0, 3.0, 0.0]);
        let e = v.row("a purple 7").unwrap_err().to_string();
        assert!(e.contains("unknown word `purple`"), "{e}");
        assert!(v.row(" , ").unwrap_err().to_string().contains("no words"));
        assert!(v.row("a a a a").unwrap_err().to_string().contains("at most 3"));
    }
}
