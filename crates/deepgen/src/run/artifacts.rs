//! The pictures a run leaves besides its samples ([`super::examples`]):
//! image grids, reconstructions, loss curves, class rows, InfoGAN grids, AAE
//! code scatters, mode plots.

use crate::models::{Aae, Gan, Vae};
use std::path::Path;

use candle_core::Tensor;

use super::examples::{to_data_units, SAMPLE_CHUNK};
use super::{RunConfig, RunDir};
use crate::data::{DataSpec, Dataset};
use crate::error::{Error, Result};
use crate::eval::{self};
use crate::models::{Model, Sampler};
use crate::rng::Rng;
use crate::viz;

/// Writes image rows `x` (`[n, D]`, the model's units) as a PNG grid with `cols` columns, in data
/// units.
pub fn write_grid(
    model: &Model,
    cfg: &RunConfig,
    x: &Tensor,
    cols: usize,
    path: &Path,
) -> Result<()> {
    let shape = &cfg.data.shape;
    if shape.len() != 3 {
        return Err(Error::config(format!(
            "{}: a grid needs image data, examples here have shape {shape:?}",
            path.display()
        )));
    }
    model.check_dim(x.dim(1)?, "the grid")?;
    let mut v = x.flatten_all()?.to_vec1::<f32>()?;
    to_data_units(&mut v, cfg);
    viz::image_grid(&v, x.dim(0)?, shape, cols, 2, path)
}

/// Originals (odd rows) above their reconstructions (even rows), for VAEs on images.
pub fn write_reconstructions(model: &Model, data: &Dataset, n: usize, path: &Path) -> Result<()> {
    let Some(vae) = model.get::<Vae>() else { return Ok(()) };
    if !data.is_image() {
        return Ok(());
    }
    let n = n.min(data.n);
    let idx: Vec<usize> = (0..n).collect();
    let x = data.batch(&idx, &model.device())?;
    let r = vae.reconstruct(&x)?;
    originals_over(&x, &r, &data.shape, path)
}

/// A grid of rows of 8 originals, each row followed by their reconstructions.
fn originals_over(x: &Tensor, r: &Tensor, shape: &[usize], path: &Path) -> Result<()> {
    let n = x.dim(0)?;
    let cols = 8usize;
    let mut rows: Vec<Tensor> = Vec::new();
    for start in (0..n).step_by(cols) {
        let len = cols.min(n - start);
        rows.push(x.narrow(0, start, len)?);
        rows.push(r.narrow(0, start, len)?);
    }
    let all = Tensor::cat(&rows, 0)?;
    viz::image_grid(&all.flatten_all()?.to_vec1::<f32>()?, all.dim(0)?, shape, cols, 2, path)
}

/// `loss.png` from `metrics.jsonl`: training loss and validation NLL.
pub fn write_loss_plot(dir: &RunDir, model_name: &str) -> Result<()> {
    let m = dir.metrics()?;
    let train: Vec<(f64, f64)> =
        m.iter().filter_map(|v| Some((v["step"].as_f64()?, v["loss"].as_f64()?))).collect();
    let val: Vec<(f64, f64)> =
        m.iter().filter_map(|v| Some((v["step"].as_f64()?, v["val_nll"].as_f64()?))).collect();
    // Smooth the per-step loss with a centred window of up to 51 steps (shrinking at the ends).
    let w = 25usize;
    let smooth: Vec<(f64, f64)> = (0..train.len())
        .map(|i| {
            let r = w.min(i).min(train.len() - 1 - i);
            let s: f64 = train[i - r..=i + r].iter().map(|p| p.1).sum();
            (train[i].0, s / (2 * r + 1) as f64)
        })
        .collect();
    let mut series = vec![("training loss (smoothed)", smooth)];
    if !val.is_empty() {
        series.push(("validation NLL", val));
    }
    viz::line_plot(
        &format!("{model_name}: loss in nats per example"),
        "nats",
        &series,
        &dir.file("loss.png"),
    )
}

/// `loss.png` of an adversarial run: the critic's and the generator's losses (smoothed) and the
/// logged estimates.
pub fn write_adversarial_plot(dir: &RunDir, model_name: &str) -> Result<()> {
    let m = dir.metrics()?;
    let series_of = |key: &str| -> Vec<(f64, f64)> {
        let raw: Vec<(f64, f64)> =
            m.iter().filter_map(|v| Some((v["step"].as_f64()?, v[key].as_f64()?))).collect();
        let w = 25usize;
        (0..raw.len())
            .map(|i| {
                let r = w.min(i).min(raw.len() - 1 - i);
                (raw[i].0, raw[i - r..=i + r].iter().map(|p| p.1).sum::<f64>() / (2 * r + 1) as f64)
            })
            .collect()
    };
    let keys = [
        ("d_loss", "critic loss"),
        ("g_loss", "generator loss"),
        ("critic_estimate", "critic's estimate (V, W1 or f-divergence bound)"),
        ("mi_bound", "InfoGAN bound on I(c; G(z,c))"),
        ("recon", "reconstruction (nats)"),
        ("gp", "gradient penalty"),
    ];
    let series: Vec<(&str, Vec<(f64, f64)>)> = keys
        .iter()
        .map(|(k, label)| (*label, series_of(k)))
        .filter(|(_, s)| !s.is_empty())
        .collect();
    viz::line_plot(
        &format!("{model_name}: training curves (smoothed)"),
        "value",
        &series,
        &dir.file("loss.png"),
    )
}

/// Samples of a conditional GAN with one row per class (`per_class` columns, at most 10),
/// `[rows*per_class, D]`: every class, or as many as [`crate::limits::MAX_GRID_IMAGES`] allows.
/// Drawn in batches of [`SAMPLE_CHUNK`], so that many classes do not make one huge batch.
pub fn class_rows(model: &Model, per_class: usize, rng: &mut Rng) -> Result<Tensor> {
    let g = model.get::<Gan>().filter(|g| g.cfg.classes > 0).ok_or_else(|| {
        Error::config(format!("the {} model is not class-conditional", model.name()))
    })?;
    let per_class = per_class.clamp(1, 10);
    let rows = g.cfg.classes.min(crate::limits::MAX_GRID_IMAGES / per_class);
    let labels: Vec<u32> =
        (0..rows as u32).flat_map(|c| std::iter::repeat_n(c, per_class)).collect();
    let parts = labels
        .chunks(SAMPLE_CHUNK)
        .map(|l| g.sample_with(l.len(), Some(l), rng))
        .collect::<Result<Vec<_>>>()?;
    Ok(Tensor::cat(&parts, 0)?)
}

/// InfoGAN grids that vary one code at a time, each row with its own fixed noise z:
/// `categorical.png` (row k: categorical value k, columns: different z),
/// and for each continuous code j `continuous-{j}.png` (row k: categorical
/// value k and one z; columns: c_j from -2 to 2, the other codes 0).
pub fn write_info_grids(
    model: &Model,
    rng: &mut Rng,
    dir: &Path,
) -> Result<Vec<std::path::PathBuf>> {
    let Some(g) = model.get::<Gan>().filter(|g| g.cfg.is_info()) else { return Ok(vec![]) };
    let (k, m, lat) = (g.cfg.categorical.max(1), g.cfg.continuous, g.cfg.latent);
    let cols = 10usize;
    let dev = model.device();
    let shape = &g.cfg.shape;
    let mut out = Vec::new();
    let grid = |codes: Vec<f32>, z: Tensor, name: &str| -> Result<std::path::PathBuf> {
        let n = z.dim(0)?;
        let c = Tensor::from_vec(codes, (n, g.cfg.codes()), &dev)?;
        let x = g.generate(&z, Some(&c), false)?;
        let p = dir.join(name);
        viz::image_grid(&x.flatten_all()?.to_vec1::<f32>()?, n, shape, cols, 2, &p)?;
        Ok(p)
    };
    let code_row = |cat: usize, cont: &[f32]| -> Vec<f32> {
        let mut v = vec![0f32; g.cfg.codes()];
        if g.cfg.categorical > 0 {
            v[cat] = 1.0;
        }
        v[g.cfg.categorical..].copy_from_slice(cont);
        v
    };
    if g.cfg.categorical > 0 {
        let z = g.draw_z(k * cols, rng)?;
        let codes: Vec<f32> =
            (0..k * cols).flat_map(|i| code_row(i / cols, &vec![0.0; m])).collect();
        out.push(grid(codes, z, "categorical.png")?);
    }
    for j in 0..m {
        let z1 = g.draw_z(k, rng)?;
        let z = z1.unsqueeze(1)?.broadcast_as((k, cols, lat))?.reshape((k * cols, lat))?;
        let codes: Vec<f32> = (0..k * cols)
            .flat_map(|i| {
                let mut cont = vec![0f32; m];
                cont[j] = -2.0 + 4.0 * (i % cols) as f32 / (cols - 1) as f32;
                code_row(i / cols, &cont)
            })
            .collect();
        out.push(grid(codes, z, &format!("continuous-{j}.png"))?);
    }
    Ok(out)
}

/// The AAE's 2-D codes of `data` coloured by label (or one colour), over prior draws in grey.
pub fn write_latent_scatter(
    model: &Model,
    data: &Dataset,
    n: usize,
    rng: &mut Rng,
    path: &Path,
) -> Result<bool> {
    let Some(a) = model.get::<Aae>() else { return Ok(false) };
    if a.cfg.latent != 2 {
        return Ok(false);
    }
    let n = n.min(data.n);
    let idx: Vec<usize> = (0..n).collect();
    let z = a.encode(&data.batch(&idx, &model.device())?)?.flatten_all()?.to_vec1::<f32>()?;
    let prior = a.prior_sample(2000, rng)?.flatten_all()?.to_vec1::<f32>()?;
    let prior: Vec<[f32; 2]> = prior.chunks(2).map(|c| [c[0], c[1]]).collect();
    let pts: Vec<[f32; 2]> = z.chunks(2).map(|c| [c[0], c[1]]).collect();
    let mut by_label: Vec<Vec<[f32; 2]>> = Vec::new();
    match &data.labels {
        Some(l) => {
            for (i, p) in pts.iter().enumerate() {
                let c = l[i] as usize;
                if by_label.len() <= c {
                    by_label.resize(c + 1, vec![]);
                }
                by_label[c].push(*p);
            }
        }
        None => by_label.push(pts.clone()),
    }
    let mut groups = vec![viz::Group {
        points: &prior,
        colour: (200, 200, 200),
        label: Some("prior draws".into()),
    }];
    for (c, pts) in by_label.iter().enumerate() {
        let label =
            if data.labels.is_some() { Some(format!("label {c}")) } else { Some("codes".into()) };
        groups.push(viz::Group { points: pts, colour: viz::PALETTE[c % 10], label });
    }
    viz::scatter_groups(
        &format!(
            "aae: codes of {} examples of {} over the {:?} prior",
            n, data.source, a.cfg.prior
        ),
        &groups,
        &[],
        path,
    )?;
    Ok(true)
}

/// The AAE's reconstructions: originals (odd rows) above reconstructions.
pub fn write_aae_reconstructions(
    model: &Model,
    data: &Dataset,
    n: usize,
    path: &Path,
) -> Result<bool> {
    let Some(a) = model.get::<Aae>() else { return Ok(false) };
    if !data.is_image() {
        return Ok(false);
    }
    let n = n.min(data.n);
    let idx: Vec<usize> = (0..n).collect();
    let x = data.batch(&idx, &model.device())?;
    let r = a.decode(&a.encode(&x)?)?;
    originals_over(&x, &r, &data.shape, path)?;
    Ok(true)
}

/// Mode coverage of a run trained on a toy mixture: `n` samples, the
/// report, and `path` (PNG) with the samples over circles of 3 sigma around the true modes.
pub fn mode_eval(
    model: &Model,
    cfg: &RunConfig,
    n: usize,
    min_share: f64,
    rng: &mut Rng,
    path: Option<&Path>,
) -> Result<eval::modes::ModeReport> {
    let spec: DataSpec = cfg.data.train.parse()?;
    let DataSpec::Toy { kind, .. } = spec else {
        return Err(Error::config(format!(
            "mode coverage needs a run trained on toy:ring8 or \
            toy:grid25; this run was trained on {}",
            cfg.data.train
        )));
    };
    // A run trained with --standardize samples in standard units: the modes are in data units.
    let mut x = model.sample(n, rng)?.flatten_all()?.to_vec1::<f32>()?;
    to_data_units(&mut x, cfg);
    let pts: Vec<[f32; 2]> = x.chunks(2).map(|c| [c[0], c[1]]).collect();
    let means = kind.modes();
    let rep = eval::modes::mode_report(&pts, &means, kind.std(), min_share);
    if let Some(p) = path {
        let circles: Vec<([f32; 2], f32)> = means.iter().map(|m| (*m, 3.0 * kind.std())).collect();
        let groups = [viz::Group { points: &pts, colour: (0, 0, 255), label: None }];
        let title = format!(
            "{} on {}: {} samples, {}/{} modes, {:.1}% high quality",
            model.name(),
            kind.name(),
            n,
            rep.covered,
            rep.modes,
            100.0 * rep.high_quality
        );
        viz::scatter_groups(&title, &groups, &circles, p)?;
    }
    Ok(rep)
}

/// The mode-coverage line `deepgen train` prints on a toy set.
pub fn mode_line(rep: &eval::modes::ModeReport) -> String {
    format!(
        "modes covered: {}/{} (a mode counts with >= {:.1}% of {} samples within 3 sigma); \
            high-quality samples: {:.1}%; reverse KL of the mode histogram to uniform: {:.3} nats",
        rep.covered,
        rep.modes,
        100.0 * rep.min_share,
        rep.samples,
        100.0 * rep.high_quality,
        rep.reverse_kl
    )
}
