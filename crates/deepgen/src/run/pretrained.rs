//! Parts of a new model that come from another run: the text GAN's fixed text encoder, from the
//! text-matcher run named by `--text-encoder`.

use std::path::Path;

use crate::error::{Error, Result};
use crate::models::{Matcher, Model, ModelFlags, TextGan};

/// Reads the `--text-encoder` run's encoder configuration into `flags` (for the family's
/// `configure`) when model `name` takes the flag and it is given.
pub fn read_text_encoder(name: &str, flags: &mut ModelFlags) -> Result<()> {
    let takes = crate::models::info(name).is_some_and(|i| i.flags.contains(&"text_encoder"));
    let (Some(path), true) = (flags.text_encoder.clone(), takes) else { return Ok(()) };
    let m = open_matcher(Path::new(&path))?;
    let matcher = m.get::<Matcher>().ok_or_else(|| not_a_matcher(&path, &m))?;
    flags.text_encoder_config = Some(matcher.cfg.text.clone());
    Ok(())
}

/// Copies the `--text-encoder` run's encoder weights into a new text GAN (nothing for other
/// models).
pub fn attach(model: &Model, flags: &ModelFlags) -> Result<()> {
    let (Some(g), Some(path)) = (model.get::<TextGan>(), &flags.text_encoder) else {
        return Ok(());
    };
    let m = open_matcher(Path::new(path))?;
    if m.get::<Matcher>().is_none() {
        return Err(not_a_matcher(path, &m));
    }
    g.load_text_encoder(&model.params, &m.params, &format!("--text-encoder {path}"))
}

fn open_matcher(path: &Path) -> Result<Model> {
    let (_, _, m) = super::open(path)
        .map_err(|e| Error::config(format!("--text-encoder {}: {e}", path.display())))?;
    Ok(m)
}

fn not_a_matcher(path: &str, m: &Model) -> Error {
    Error::config(format!(
        "--text-encoder {path}: a {} run, not a text-matcher (deepgen train text-matcher)",
        m.name()
    ))
}
