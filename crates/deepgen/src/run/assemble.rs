//! `deepgen assemble`: a puzzle GAN run's wholes from key patches (PNG files, or patches cut from
//! a data set's images), and the picture of each: the patches, the generated mask, the whole
//! (and the image the patches came from).

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};

use super::{write_examples, write_grid, RunConfig};
use crate::data::patches::Cut;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::eval::assembly;
use crate::models::{Model, PuzzleGan};

/// The puzzle GAN of a run, or one line saying the run is another model.
pub fn puzzle<'a>(model: &'a Model, what: &Path) -> Result<&'a PuzzleGan> {
    model.get::<PuzzleGan>().ok_or_else(|| {
        Error::config(format!(
            "{}: a {} run; assemble needs a puzzle-gan run",
            what.display(),
            model.name()
        ))
    })
}

/// Reads K patch PNGs: square, one side for all, the run's channels, at most the image's side.
pub fn read_patches(p: &PuzzleGan, files: &[PathBuf]) -> Result<(Vec<Vec<f32>>, usize)> {
    let (c, h, w) = (p.cfg.shape[0], p.cfg.shape[1], p.cfg.shape[2]);
    if files.len() != p.cfg.patches {
        return Err(Error::config(format!(
            "--patches: {} files, the run assembles {} patches",
            files.len(),
            p.cfg.patches
        )));
    }
    let mut side = None;
    let mut out = Vec::with_capacity(files.len());
    for f in files {
        let (x, shape) = crate::data::sources::read_png(f)?;
        let (pc, ph, pw) = (shape[0], shape[1], shape[2]);
        let bad = |msg: String| Error::bad_file(f, msg);
        if ph != pw {
            return Err(bad(format!("the patch is {pw}x{ph}; patches must be square")));
        }
        if ph < 2 || ph > h.min(w) {
            return Err(bad(format!(
                "the patch is {ph}x{ph}; the run's images are {h}x{w} (patches of 2 to {} px)",
                h.min(w)
            )));
        }
        if let Some(s) = side.filter(|&s| s != ph) {
            return Err(bad(format!("the patch is {ph}x{ph}, the first one {s}x{s}")));
        }
        side = Some(ph);
        let x = match (pc, c) {
            (a, b) if a == b => x,
            (3, 1) => {
                (0..ph * ph).map(|q| (x[q] + x[ph * ph + q] + x[2 * ph * ph + q]) / 3.0).collect()
            }
            (1, 3) => x.iter().chain(&x).chain(&x).copied().collect(),
            _ => return Err(bad(format!("{pc} channels, the run's images have {c}"))),
        };
        out.push(x);
    }
    Ok((out, side.unwrap_or(p.cfg.patch_size)))
}

/// A patch centred on a blank image-sized canvas, `[C, H, W]`.
fn centred(patch: &[f32], (c, h, w): (usize, usize, usize), side: usize) -> Vec<f32> {
    let mut out = vec![0f32; c * h * w];
    let (top, left) = ((h - side) / 2, (w - side) / 2);
    for k in 0..c {
        for i in 0..side {
            for j in 0..side {
                out[k * h * w + (top + i) * w + left + j] = patch[k * side * side + i * side + j];
            }
        }
    }
    out
}

/// Display rows: per example the K patches, the mask, the whole and (when given) the source.
fn rows(
    p: &PuzzleGan,
    sets: &[Vec<Vec<f32>>],
    side: usize,
    wholes: &[f32],
    masks: &[f32],
    sources: Option<&[f32]>,
) -> (Vec<f32>, usize) {
    let (c, h, w) = (p.cfg.shape[0], p.cfg.shape[1], p.cfg.shape[2]);
    let d = c * h * w;
    let mut out = Vec::new();
    for (i, set) in sets.iter().enumerate() {
        for patch in set {
            out.extend(centred(patch, (c, h, w), side));
        }
        out.extend(crate::models::puzzle::mask_image(&masks[i * h * w..(i + 1) * h * w], c));
        out.extend_from_slice(&wholes[i * d..(i + 1) * d]);
        if let Some(s) = sources {
            out.extend_from_slice(&s[i * d..(i + 1) * d]);
        }
    }
    (out, p.cfg.patches + 2 + usize::from(sources.is_some()))
}

/// Writes the wholes to `out` (.npy / .csv: the wholes only; .png: the rows of [`rows`]).
#[allow(clippy::too_many_arguments)]
fn write(
    model: &Model,
    cfg: &RunConfig,
    sets: &[Vec<Vec<f32>>],
    side: usize,
    wholes: &[f32],
    masks: &[f32],
    sources: Option<&[f32]>,
    out: &Path,
) -> Result<()> {
    let p = puzzle(model, out)?;
    let d = p.cfg.dim();
    let png =
        out.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("png"));
    if png {
        let (v, cols) = rows(p, sets, side, wholes, masks, sources);
        let t = Tensor::from_vec(v, (sets.len() * cols, d), &Device::Cpu)?;
        write_grid(model, cfg, &t, cols, out)
    } else {
        let t = Tensor::from_vec(wholes.to_vec(), (sets.len(), d), &Device::Cpu)?;
        write_examples(model, cfg, &t, out, None)
    }
}

/// Wholes from patch PNGs (`n` draws of z for the one set of patches).
pub fn from_files(
    model: &Model,
    cfg: &RunConfig,
    files: &[PathBuf],
    n: usize,
    seed: u64,
    out: &Path,
) -> Result<()> {
    let p = puzzle(model, out)?;
    let (set, side) = read_patches(p, files)?;
    let sets = vec![set; n];
    let mut r = crate::rng::derived(seed, "assemble-z", 0);
    let a = p.assemble(&sets, side, &mut r)?;
    let wholes = a.images.flatten_all()?.to_vec1::<f32>()?;
    let masks = a.masks.flatten_all()?.to_vec1::<f32>()?;
    write(model, cfg, &sets, side, &wholes, &masks, None, out)
}

/// Wholes from patches cut from the first `n` images of `data`.
pub fn from_data(
    model: &Model,
    cfg: &RunConfig,
    data: &Dataset,
    n: usize,
    seed: u64,
    out: &Path,
) -> Result<()> {
    let p = puzzle(model, out)?;
    model.check_dim(data.dim(), &data.source)?;
    let cuts: Vec<Cut> = assembly::held_out_cuts(p, data, n, seed)?;
    let (wholes, masks) = assembly::assemble_cuts(p, &cuts, seed)?;
    let sets: Vec<Vec<Vec<f32>>> = cuts.iter().map(|c| c.patches.clone()).collect();
    let d = p.cfg.dim();
    let sources = &data.x[..cuts.len() * d];
    write(model, cfg, &sets, p.cfg.patch_size, &wholes, &masks, Some(sources), out)
}
