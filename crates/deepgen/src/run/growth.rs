//! Progressive GAN's growth strip: at the end of every stable phase, samples of one fixed set of
//! latents from the generator average at that resolution, shown at the data's size (upsampled by
//! nearest neighbour). `growth/RxR.npy` keeps each resolution's row, so a resumed run adds to the
//! strip; `growth.png` is redrawn from every row written so far, one row per resolution.

use super::RunDir;
use crate::error::{Error, Result};
use crate::models::progan::ProGan;
use crate::models::Model;
use crate::rng;

/// Samples per resolution.
pub const PER_ROW: usize = 8;

/// Writes the current resolution's row and redraws `growth.png`; nothing for other models.
pub fn snapshot(dir: &RunDir, model: &Model, seed: u64) -> Result<()> {
    let Some(g) = model.get::<ProGan>() else { return Ok(()) };
    let p = g.current()?;
    // The same latents at every resolution: row k shows what the generator made of them then.
    let mut r = rng::derived(seed, "growth", 0);
    let x = g.sample_at(PER_ROW, &p, &mut r)?;
    let folder = dir.file("growth");
    std::fs::create_dir_all(&folder).map_err(|e| Error::io(&folder, e))?;
    let mut shape = vec![PER_ROW];
    shape.extend_from_slice(&g.cfg.shape);
    let v = x.flatten_all()?.to_vec1::<f32>()?;
    let file = folder.join(format!("{0}x{0}.npy", p.resolution));
    crate::files::atomic_write(&file, &crate::data::npy::encode_f32(&shape, &v))?;
    redraw(dir, g)
}

/// `growth.png` from every `growth/RxR.npy` present, lowest resolution first.
pub fn redraw(dir: &RunDir, g: &ProGan) -> Result<()> {
    let folder = dir.file("growth");
    let mut all = vec![];
    let mut rows = 0;
    for r in g.cfg.resolutions() {
        let file = folder.join(format!("{r}x{r}.npy"));
        if !file.exists() {
            continue;
        }
        let (shape, v, _) = crate::data::npy::read_file(&file)?;
        if shape.first() != Some(&PER_ROW) || v.len() != PER_ROW * g.cfg.dim() {
            return Err(Error::config(format!(
                "{}: {shape:?} is not a growth row of {PER_ROW} images",
                file.display()
            )));
        }
        all.extend(v);
        rows += 1;
    }
    if rows == 0 {
        return Ok(());
    }
    crate::viz::image_grid(&all, rows * PER_ROW, &g.cfg.shape, PER_ROW, 2, &dir.file("growth.png"))
}
