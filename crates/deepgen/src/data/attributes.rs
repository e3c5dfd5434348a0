//! Attribute labels: the domains of StarGAN (Choi et al. 2018, Sec. 3: "we denote the terms
//! attribute as a meaningful feature inherent in an image such as hair color, gender or age, and
//! attribute value as a particular value of an attribute").
//!
//! An attribute is binary (thick or not) or an exclusive group of values (a colour: red, green
//! or blue). An example's attributes are one value index per attribute; the networks see them
//! encoded ([`encode`]): 0/1 for a binary attribute, one-hot for a group, so the five labels of
//! the embedded digits (red, green, blue, thick, invert) are a vector of width 5 as the paper's
//! five CelebA labels (three hair colours, male, young).
//!
//! Sources:
//! - `+attributes` on one-channel images in [0, 1] (the embedded digits): each image draws a
//!   colour, `thick` and `invert` from a seeded RNG and is drawn with them ([`draw`]), so the
//!   true image for any target attributes is known.
//! - A CSV beside a PNG folder (`DIR/attributes.csv`, a `file` column naming each image) or an
//!   IDX set (`PREFIX-attributes.csv`, one row per image in order), with a header naming the
//!   attributes. A column whose values are all 0/1 (or -1/1, CelebA's list_attr_celeba.txt
//!   convention, or true/false) is binary; any other column is an exclusive group whose values
//!   are its distinct entries, sorted.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One attribute: binary when `values` is empty, otherwise an exclusive group of these values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attribute {
    pub name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

impl Attribute {
    pub fn binary(name: &str) -> Self {
        Self { name: name.into(), values: vec![] }
    }

    pub fn group(name: &str, values: &[&str]) -> Self {
        Self { name: name.into(), values: values.iter().map(|v| v.to_string()).collect() }
    }

    pub fn is_binary(&self) -> bool {
        self.values.is_empty()
    }

    /// How many values the attribute has (2 for a binary one).
    pub fn count(&self) -> usize {
        if self.is_binary() {
            2
        } else {
            self.values.len()
        }
    }

    /// Its width in the encoded vector.
    pub fn width(&self) -> usize {
        if self.is_binary() {
            1
        } else {
            self.values.len()
        }
    }

    /// The value's name: `thick` / `not thick` for a binary attribute, the group's value otherwise.
    pub fn value_name(&self, v: u32) -> String {
        match (self.is_binary(), v) {
            (true, 0) => format!("not {}", self.name),
            (true, _) => self.name.clone(),
            (false, v) => self.values.get(v as usize).cloned().unwrap_or_else(|| "?".into()),
        }
    }
}

/// Every example's attributes: `values[i * columns.len() + j]` is example i's value index of
/// attribute j.
#[derive(Debug, Clone, PartialEq)]
pub struct Attributes {
    pub columns: Vec<Attribute>,
    pub values: Vec<u32>,
}

/// The width of the encoded vector.
pub fn width(cols: &[Attribute]) -> usize {
    cols.iter().map(Attribute::width).sum()
}

/// Appends the encoding of one example's value indices to `out`.
pub fn encode(cols: &[Attribute], vals: &[u32], out: &mut Vec<f32>) {
    for (c, &v) in cols.iter().zip(vals) {
        if c.is_binary() {
            out.push(if v > 0 { 1.0 } else { 0.0 });
        } else {
            out.extend((0..c.values.len()).map(|k| if k as u32 == v { 1.0 } else { 0.0 }));
        }
    }
}

/// Value indices from an encoded vector (the largest entry of a group; > 0.5 for a binary one).
pub fn decode(cols: &[Attribute], enc: &[f32]) -> Vec<u32> {
    decode_at(cols, enc, 0.5)
}

/// Value indices from the critic's classification logits: the largest logit of a group, a
/// positive logit for a binary attribute.
pub fn decode_logits(cols: &[Attribute], logits: &[f32]) -> Vec<u32> {
    decode_at(cols, logits, 0.0)
}

fn decode_at(cols: &[Attribute], v: &[f32], threshold: f32) -> Vec<u32> {
    let mut at = 0;
    cols.iter()
        .map(|c| {
            let part = &v[at..at + c.width()];
            at += c.width();
            if c.is_binary() {
                (part[0] > threshold) as u32
            } else {
                crate::nn::argmax(part) as u32
            }
        })
        .collect()
}

/// The attributes as a user names them: `colour (red|green|blue), thick, invert`.
pub fn describe(cols: &[Attribute]) -> String {
    cols.iter()
        .map(|c| {
            if c.is_binary() {
                c.name.clone()
            } else {
                format!("{} ({})", c.name, c.values.join("|"))
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// One change of `--to`: attribute `column` set to value `value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    pub column: usize,
    pub value: u32,
}

/// Parses `--to` (comma-separated): `thick` or `thick=1` sets a binary attribute, `thick=0` or
/// `not-thick` clears it, `red` or `colour=red` picks a group's value. Unknown names are refused
/// with the attributes the run knows.
pub fn parse_changes(cols: &[Attribute], text: &str) -> Result<Vec<Change>> {
    let known = || format!("the run's attributes are {}", describe(cols));
    let mut out: Vec<Change> = vec![];
    for part in text.split(',').map(str::trim) {
        if part.is_empty() {
            return Err(Error::config(format!("--to `{text}`: an empty attribute name")));
        }
        let (name, arg) = match part.split_once('=') {
            Some((n, a)) => (n.trim(), Some(a.trim())),
            None => (part, None),
        };
        let (name, negated) = match name.strip_prefix("not-") {
            Some(n) if arg.is_none() => (n, true),
            _ => (name, false),
        };
        let change = if let Some(j) = cols.iter().position(|c| c.name == name) {
            let c = &cols[j];
            let value = match (c.is_binary(), arg) {
                (true, None) => Some(!negated as u32),
                (true, Some("1" | "true")) => Some(1),
                (true, Some("0" | "false")) => Some(0),
                (false, Some(v)) => c.values.iter().position(|x| x == v).map(|k| k as u32),
                _ => None,
            };
            let value = value.ok_or_else(|| {
                Error::config(format!(
                    "--to `{part}`: not a value of `{}` ({})",
                    c.name,
                    if c.is_binary() { "0 or 1".into() } else { c.values.join(", ") }
                ))
            })?;
            Change { column: j, value }
        } else {
            let hit = cols
                .iter()
                .enumerate()
                .find_map(|(j, c)| c.values.iter().position(|v| v == name).map(|k| (j, k as u32)));
            match (hit, arg) {
                (Some((column, value)), None) => Change { column, value },
                _ => {
                    return Err(Error::config(format!(
                        "--to: unknown attribute `{name}`; {}",
                        known()
                    )))
                }
            }
        };
        if out.iter().any(|c| c.column == change.column) {
            return Err(Error::config(format!(
                "--to `{text}`: `{}` is set twice",
                cols[change.column].name
            )));
        }
        out.push(change);
    }
    Ok(out)
}

impl Attributes {
    pub fn n(&self) -> usize {
        self.values.len() / self.columns.len().max(1)
    }

    /// Example i's value indices.
    pub fn row(&self, i: usize) -> &[u32] {
        let k = self.columns.len();
        &self.values[i * k..(i + 1) * k]
    }

    /// The encodings of examples `idx`, `[idx.len() * width]`.
    pub fn encode_rows(&self, idx: &[usize]) -> Vec<f32> {
        let mut out = Vec::with_capacity(idx.len() * width(&self.columns));
        for &i in idx {
            encode(&self.columns, self.row(i), &mut out);
        }
        out
    }

    /// The attributes of examples `idx`, in that order.
    pub fn select(&self, idx: &[usize]) -> Self {
        let values = idx.iter().flat_map(|&i| self.row(i).iter().copied()).collect();
        Self { columns: self.columns.clone(), values }
    }

    /// The share of examples with each value of each attribute, for the data's notes.
    pub fn summary(&self) -> String {
        let n = self.n().max(1) as f64;
        let parts: Vec<String> = self
            .columns
            .iter()
            .enumerate()
            .map(|(j, c)| {
                let count = |v: u32| (0..self.n()).filter(|&i| self.row(i)[j] == v).count();
                if c.is_binary() {
                    format!("{} {:.0} %", c.name, 100.0 * count(1) as f64 / n)
                } else {
                    let shares: Vec<String> = (0..c.values.len() as u32)
                        .map(|v| {
                            format!("{} {:.0} %", c.values[v as usize], 100.0 * count(v) as f64 / n)
                        })
                        .collect();
                    shares.join(", ")
                }
            })
            .collect();
        parts.join("; ")
    }
}

/// The embedded digits' attributes (`+attributes`).
pub fn digit_columns() -> Vec<Attribute> {
    vec![
        Attribute::group("colour", &["red", "green", "blue"]),
        Attribute::binary("thick"),
        Attribute::binary("invert"),
    ]
}

/// The image of a grey digit (`[H, W]` values in [0, 1]) with the digit attributes `vals`
/// (colour, thick, invert): dilated once if thick, then inverted, then tinted: `[3, H, W]`.
pub fn draw(grey: &[f32], h: usize, w: usize, vals: &[u32]) -> Result<Vec<f32>> {
    let cols = digit_columns();
    if vals.len() != cols.len() || vals[0] as usize >= cols[0].values.len() {
        return Err(Error::config(format!(
            "digit attributes {vals:?} are not {}",
            describe(&cols)
        )));
    }
    let mut g = grey.to_vec();
    if vals[1] == 1 {
        super::domains::morph(&mut g, h, w, true);
    }
    if vals[2] == 1 {
        g.iter_mut().for_each(|v| *v = 1.0 - *v);
    }
    let rgb = super::domains::colour(&cols[0].values[vals[0] as usize])?;
    Ok(super::domains::tint(&g, rgb))
}

/// `+attributes`: every image of a one-channel set in [0, 1] draws its attributes (seeded by the
/// spec text and its index) and becomes [`draw`]'s image; labels are kept.
pub fn digits_with_attributes(d: &super::Dataset, source: &str) -> Result<super::Dataset> {
    use rand::Rng as _;
    let (h, w) = match d.shape[..] {
        [1, h, w] => (h, w),
        _ => {
            return Err(Error::config(format!(
                "{source}: `attributes` draws one-channel images, these have shape {:?}",
                d.shape
            )))
        }
    };
    if let Some(v) = d.x.iter().find(|v| !(0.0..=1.0).contains(*v)) {
        return Err(Error::config(format!(
            "{source}: `attributes` needs values in [0, 1], the data has {v}"
        )));
    }
    crate::limits::check_values(source, d.n as u64 * 3 * (h * w) as u64, 4)?;
    let cols = digit_columns();
    let mut x = Vec::with_capacity(d.n * 3 * h * w);
    let mut values = Vec::with_capacity(d.n * cols.len());
    for i in 0..d.n {
        let mut r = crate::rng::derived(0, source, i as u64);
        let vals = [r.gen_range(0..3u32), r.gen_range(0..2u32), r.gen_range(0..2u32)];
        x.extend(draw(d.row(i), h, w, &vals)?);
        values.extend_from_slice(&vals);
    }
    let mut out = super::Dataset::new(source, x, vec![3, h, w], d.labels.clone())?;
    out.attributes = Some(Attributes { columns: cols, values });
    Ok(out)
}

/// Reads an attributes CSV for `n` examples. `files`: the PNG folder's file names in row order
/// (the CSV then has a `file` column and one row per image, in any order); `None`: rows in
/// example order.
pub fn read_csv(path: &Path, n: usize, files: Option<&[String]>) -> Result<Attributes> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    crate::limits::check_values(&path.display().to_string(), meta.len(), 1)?;
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| Error::bad_file(path, "attributes file is not UTF-8 text"))?;
    parse_csv(text.trim_start_matches('\u{feff}'), path, n, files)
}

/// [`read_csv`] on the file's text.
pub fn parse_csv(
    text: &str,
    path: &Path,
    n: usize,
    files: Option<&[String]>,
) -> Result<Attributes> {
    let bad = |line: usize, msg: String| Error::bad_file(path, format!("line {line}: {msg}"));
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines.next().ok_or_else(|| Error::bad_file(path, "empty attributes file"))?;
    let names: Vec<String> = header.split(',').map(|s| s.trim().to_string()).collect();
    let keyed = files.is_some();
    if keyed && names.first().map(String::as_str) != Some("file") {
        return Err(bad(1, "the first column must be `file` (the image's file name)".into()));
    }
    let attr_names = if keyed { &names[1..] } else { &names[..] };
    if attr_names.is_empty() || attr_names.iter().any(|n| n.is_empty()) {
        return Err(bad(1, "the header must name every attribute".into()));
    }
    for (i, a) in attr_names.iter().enumerate() {
        if attr_names[..i].contains(a) {
            return Err(bad(1, format!("attribute `{a}` is named twice")));
        }
    }
    let k = attr_names.len();
    let mut cells: Vec<Vec<String>> = vec![Vec::new(); n];
    let by_name: std::collections::HashMap<&str, usize> = files
        .map(|f| f.iter().enumerate().map(|(i, s)| (s.as_str(), i)).collect())
        .unwrap_or_default();
    for (seen, (ln, line)) in lines.enumerate() {
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        if f.len() != names.len() {
            return Err(bad(ln + 1, format!("{} fields, the header has {}", f.len(), names.len())));
        }
        let row = match files {
            Some(_) => by_name.get(f[0]).copied().ok_or_else(|| {
                bad(
                    ln + 1,
                    format!("`{}` is not an image of the folder", crate::error::shown(f[0])),
                )
            })?,
            None => {
                if seen >= n {
                    return Err(bad(ln + 1, format!("more rows than the {n} images")));
                }
                seen
            }
        };
        if !cells[row].is_empty() {
            return Err(bad(ln + 1, format!("a second row for image {}", row + 1)));
        }
        cells[row] = f[usize::from(keyed)..].iter().map(|s| s.to_string()).collect();
    }
    if let Some(i) = cells.iter().position(Vec::is_empty) {
        let which = files.map(|f| f[i].clone()).unwrap_or_else(|| format!("row {}", i + 1));
        return Err(Error::bad_file(path, format!("no attributes for image {which}")));
    }
    let binary = |v: &str| matches!(v, "0" | "1" | "-1" | "true" | "false");
    let mut columns = Vec::with_capacity(k);
    for (j, name) in attr_names.iter().enumerate() {
        if cells.iter().all(|r| binary(&r[j])) {
            columns.push(Attribute::binary(name));
        } else {
            let mut vals: Vec<String> = cells.iter().map(|r| r[j].clone()).collect();
            vals.sort();
            vals.dedup();
            if vals.len() < 2 {
                return Err(Error::bad_file(path, format!("attribute `{name}` has one value")));
            }
            columns.push(Attribute { name: name.clone(), values: vals });
        }
    }
    let mut values = Vec::with_capacity(n * k);
    for r in &cells {
        for (j, c) in columns.iter().enumerate() {
            values.push(if c.is_binary() {
                matches!(r[j].as_str(), "1" | "true") as u32
            } else {
                c.values.iter().position(|v| *v == r[j]).unwrap_or(0) as u32
            });
        }
    }
    Ok(Attributes { columns, values })
}
