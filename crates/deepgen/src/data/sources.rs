//! Readers from files and folders into [`Dataset`]s.

use std::path::{Path, PathBuf};

use super::{idx, npy, Dataset};
use crate::error::{Error, Result};

/// Images from IDX bytes, scaled by `1/scale`; labels optional.
pub(crate) fn from_idx_bytes(
    name: &str,
    images: &[u8],
    labels: Option<&[u8]>,
    scale: f32,
) -> Result<Dataset> {
    let img = idx::parse(images, Path::new(name))?;
    let labels = match labels {
        Some(b) => Some(labels_from(idx::parse(b, Path::new(name))?, name)?),
        None => None,
    };
    images_from(img, labels, scale, name)
}

fn labels_from(l: idx::Idx, name: &str) -> Result<Vec<u32>> {
    if l.dims.len() != 1 {
        return Err(Error::bad_file(
            name,
            format!("label file has rank {} (expected 1)", l.dims.len()),
        ));
    }
    Ok(l.to_f32().into_iter().map(|v| v as u32).collect())
}

fn images_from(img: idx::Idx, labels: Option<Vec<u32>>, scale: f32, name: &str) -> Result<Dataset> {
    let shape = match img.dims.as_slice() {
        [_, h, w] => vec![1, *h, *w],
        [_, h, w, c] if *c == 1 || *c == 3 => vec![*c, *h, *w],
        [_, d] => vec![*d],
        d => {
            return Err(Error::bad_file(
                name,
                format!("IDX images have dims {d:?}; expected [N, H, W], [N, H, W, C] or [N, D]"),
            ))
        }
    };
    let n = img.dims[0];
    if let Some(l) = &labels {
        if l.len() != n {
            return Err(Error::Shape(format!("{name}: {} labels for {n} images", l.len())));
        }
    }
    let is_u8 = matches!(img.data, idx::IdxData::U8(_));
    let mut x = img.to_f32();
    if is_u8 {
        x.iter_mut().for_each(|v| *v /= scale);
    }
    if img.dims.len() == 4 {
        x = hwc_to_chw(&x, n, shape[1], shape[2], shape[0]);
    }
    Dataset::new(name, x, shape, labels)
}

fn hwc_to_chw(x: &[f32], n: usize, h: usize, w: usize, c: usize) -> Vec<f32> {
    let mut out = vec![0.0; x.len()];
    for i in 0..n {
        for y in 0..h {
            for xx in 0..w {
                for ch in 0..c {
                    out[i * c * h * w + ch * h * w + y * w + xx] =
                        x[i * h * w * c + (y * w + xx) * c + ch];
                }
            }
        }
    }
    out
}

fn first_existing(cands: &[PathBuf]) -> Option<PathBuf> {
    cands.iter().find(|p| p.is_file()).cloned()
}

/// `idx:PREFIX`: `PREFIX-images-idx3-ubyte[.gz]` with optional
/// `PREFIX-labels-idx1-ubyte[.gz]`, or `idx:FILE` for a single IDX file.
pub fn load_idx_prefix(prefix: &Path) -> Result<Dataset> {
    let name = format!("idx:{}", prefix.display());
    if prefix.is_file() {
        let img = idx::read_file(prefix)?;
        return images_from(img, None, 255.0, &prefix.display().to_string());
    }
    let p = prefix.display().to_string();
    let images = first_existing(&[
        format!("{p}-images-idx3-ubyte.gz").into(),
        format!("{p}-images-idx3-ubyte").into(),
        format!("{p}-images.idx3-ubyte").into(),
    ])
    .ok_or_else(|| {
        Error::bad_file(
            prefix,
            format!(
                "no IDX images found: expected \
            {p}-images-idx3-ubyte[.gz] or an IDX file at this path"
            ),
        )
    })?;
    let labels = first_existing(&[
        format!("{p}-labels-idx1-ubyte.gz").into(),
        format!("{p}-labels-idx1-ubyte").into(),
        format!("{p}-labels.idx1-ubyte").into(),
    ]);
    let img = idx::read_file(&images)?;
    let labels = match &labels {
        Some(l) => Some(labels_from(idx::read_file(l)?, &l.display().to_string())?),
        None => None,
    };
    if let Some(l) = &labels {
        if l.len() != img.dims[0] {
            return Err(Error::Shape(format!(
                "{name}: {} labels for {} images",
                l.len(),
                img.dims[0]
            )));
        }
    }
    let mut d = images_from(img, labels, 255.0, &images.display().to_string())?;
    d.source = name;
    Ok(d)
}

/// The `.png` files of a folder, sorted by name: the rows of `png:DIR`.
fn png_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut files: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("png"))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(Error::bad_file(dir, "no .png files in this folder"));
    }
    Ok(files)
}

/// The file names of `png:DIR`'s rows, in row order (what an attributes file names).
pub fn png_names(dir: &Path) -> Result<Vec<String>> {
    Ok(png_files(dir)?
        .iter()
        .map(|f| f.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default())
        .collect())
}

/// `png:DIR`: every `.png` in DIR (sorted by name), greyscale or RGB, all one size.
pub fn load_png_dir(dir: &Path) -> Result<Dataset> {
    let files = png_files(dir)?;
    let mut x = Vec::new();
    let mut shape: Option<(Vec<usize>, PathBuf)> = None;
    for f in &files {
        let img = decode_png(f)?;
        if shape.is_none() {
            // All images have one size: the first one tells how much the set needs.
            let dim = img.width() as u64 * img.height() as u64 * 3;
            let what = format!("png:{} ({} images)", dir.display(), files.len());
            crate::limits::check_values(&what, dim * files.len() as u64, 4)?;
        }
        let grey = matches!(
            img.color(),
            image::ColorType::L8
                | image::ColorType::L16
                | image::ColorType::La8
                | image::ColorType::La16
        );
        let (w, h) = (img.width() as usize, img.height() as usize);
        let this = if grey { vec![1, h, w] } else { vec![3, h, w] };
        match &shape {
            None => shape = Some((this.clone(), f.clone())),
            Some((s, first)) if *s != this => {
                return Err(Error::bad_file(
                    f,
                    format!(
                        "image is {}x{}x{} (CxHxW) but {} is {}x{}x{}; all images must have \
                        one size and colour type",
                        this[0],
                        h,
                        w,
                        first.display(),
                        s[0],
                        s[1],
                        s[2]
                    ),
                ))
            }
            _ => {}
        }
        if grey {
            x.extend(img.to_luma8().into_raw().into_iter().map(|v| v as f32 / 255.0));
        } else {
            let rgb = img.to_rgb8();
            for c in 0..3 {
                x.extend(rgb.pixels().map(|p| p.0[c] as f32 / 255.0));
            }
        }
    }
    let shape = shape.map(|s| s.0).unwrap_or_default();
    Dataset::new(format!("png:{}", dir.display()), x, shape, None)
}

/// One PNG as `[C, H, W]` values in [0, 1] (C = 1 for greyscale, 3 otherwise) and its shape.
pub fn read_png(f: &Path) -> Result<(Vec<f32>, Vec<usize>)> {
    let img = decode_png(f)?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    let grey = matches!(
        img.color(),
        image::ColorType::L8
            | image::ColorType::L16
            | image::ColorType::La8
            | image::ColorType::La16
    );
    if grey {
        let x = img.to_luma8().into_raw().into_iter().map(|v| v as f32 / 255.0).collect();
        return Ok((x, vec![1, h, w]));
    }
    let rgb = img.to_rgb8();
    let mut x = Vec::with_capacity(3 * h * w);
    for c in 0..3 {
        x.extend(rgb.pixels().map(|p| p.0[c] as f32 / 255.0));
    }
    Ok((x, vec![3, h, w]))
}

/// Decodes one PNG, its size checked against [`crate::limits::max_image_pixels`] from the header
/// before any pixel is decoded (a 389 KB file can claim 20000x20000 pixels).
fn decode_png(f: &Path) -> Result<image::DynamicImage> {
    let bytes = std::fs::read(f).map_err(|e| Error::io(f, e))?;
    decode_png_bytes(&bytes, f)
}

/// Decodes PNG bytes (see [`decode_png`]); `f` names the file in errors.
pub fn decode_png_bytes(bytes: &[u8], f: &Path) -> Result<image::DynamicImage> {
    let bad = |e: image::ImageError| Error::bad_file(f, format!("cannot decode PNG: {e}"));
    let open =
        || image::ImageReader::with_format(std::io::Cursor::new(bytes), image::ImageFormat::Png);
    let (w, h) = open().into_dimensions().map_err(bad)?;
    let max = crate::limits::max_image_pixels();
    if w as u64 * h as u64 > max {
        return Err(Error::bad_file(
            f,
            format!(
                "image is {w}x{h} pixels, more than the {max} allowed \
                (DEEPGEN_MAX_IMAGE_PIXELS raises the limit)"
            ),
        ));
    }
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(crate::limits::memory_bound());
    let mut reader = open();
    reader.limits(limits);
    reader.decode().map_err(bad)
}

/// `csv:FILE`: numeric rows, all the same length, separated by `,`, `;` or tabs (the
/// separator of the first data line; a file mixing them is an error naming both). A UTF-8 byte
/// order mark is skipped. A first line that does not parse as numbers is a header (the
/// scikit-learn files' `569,30,malignant,benign` is one); skipping it is reported in the data
/// set's notes.
pub fn load_csv(path: &Path) -> Result<Dataset> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse_csv_bytes(&bytes, path)
}

/// The bytes of a CSV file as a data set (see [`load_csv`]); `path` names it in errors.
pub fn parse_csv_bytes(bytes: &[u8], path: &Path) -> Result<Dataset> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()].iter().filter(|&&b| b == b'\n').count() + 1;
        Error::bad_file(path, format!("line {line}: not UTF-8 text (is this a CSV file?)"))
    })?;
    parse_csv(text, path)
}

/// The separator of a CSV line: `;` if it has one (such files often write decimal commas), else a
/// tab, else `,`.
fn separator(line: &str) -> char {
    [';', '\t', ','].into_iter().find(|c| line.contains(*c)).unwrap_or(',')
}

fn sep_name(c: char) -> &'static str {
    match c {
        ',' => "`,`",
        ';' => "`;`",
        _ => "tab",
    }
}

/// Parses CSV text (see [`load_csv`]); `path` names the file in errors.
pub fn parse_csv(text: &str, path: &Path) -> Result<Dataset> {
    let lines: Vec<(usize, &str)> =
        text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()).collect();
    let numbers =
        |l: &str, sep: char| -> bool { l.split(sep).all(|f| f.trim().parse::<f32>().is_ok()) };
    let mut rows = lines.as_slice();
    let mut notes = vec![];
    if let Some((ln, first)) = rows.first() {
        if !numbers(first, separator(first)) {
            let shown = crate::error::shown(&first.chars().take(60).collect::<String>());
            notes.push(format!("line {} taken as a header and skipped: `{shown}`", ln + 1));
            rows = &rows[1..];
        }
    }
    let Some((_, first)) = rows.first() else {
        return Err(Error::bad_file(path, "the CSV file is empty (no data rows)"));
    };
    let sep = separator(first);
    let ncol = first.split(sep).count();
    let mut x = Vec::new();
    for (ln, l) in rows {
        let fields: Vec<&str> = l.split(sep).collect();
        if fields.len() != ncol {
            let other = [',', ';', '\t'].into_iter().find(|c| *c != sep && l.contains(*c));
            let mixed = other
                .map(|o| {
                    format!(" (it has {} where earlier lines use {})", sep_name(o), sep_name(sep))
                })
                .unwrap_or_default();
            return Err(Error::bad_file(
                path,
                format!(
                    "line {}: {} columns separated by {}, expected {ncol}{mixed}",
                    ln + 1,
                    fields.len(),
                    sep_name(sep)
                ),
            ));
        }
        for (c, f) in fields.iter().enumerate() {
            let v: f32 = f.trim().parse().map_err(|_| {
                let f = crate::error::shown(&f.trim().chars().take(40).collect::<String>());
                Error::bad_file(
                    path,
                    format!("line {}, column {}: `{f}` is not a number", ln + 1, c + 1),
                )
            })?;
            if !v.is_finite() {
                return Err(Error::bad_file(
                    path,
                    format!("line {}, column {}: value {v} is not finite", ln + 1, c + 1),
                ));
            }
            x.push(v);
        }
    }
    let mut d = Dataset::new(format!("csv:{}", path.display()), x, vec![ncol], None)?;
    d.notes = notes;
    Ok(d)
}

/// `npy:FILE`: `[N, D]`, `[N, H, W]` or `[N, C, H, W]`; u8 values are scaled by 1/255.
pub fn load_npy(path: &Path) -> Result<Dataset> {
    let (shape, mut x, is_u8) = npy::read_file(path)?;
    if is_u8 {
        x.iter_mut().for_each(|v| *v /= 255.0);
    }
    let ex = match shape.as_slice() {
        [_, d] => vec![*d],
        [_, h, w] => vec![1, *h, *w],
        [_, c, h, w] => vec![*c, *h, *w],
        s => {
            return Err(Error::bad_file(
                path,
                format!("NPY array has shape {s:?}; expected [N, D], [N, H, W] or [N, C, H, W]"),
            ))
        }
    };
    let mut d = Dataset::new(path.display().to_string(), x, ex, None)?;
    d.source = format!("npy:{}", path.display());
    Ok(d)
}
