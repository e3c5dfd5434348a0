//! `deepgen translate` on a CycleGAN or StarGAN run, and the translation pictures a training run
//! leaves: what a direction or a `--to` means for a run, the rows of a grid (input,
//! translation, reconstruction), and the `.npy` of translations for programs.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};

use super::{transform, RunConfig};
use crate::data::attributes::{self, Attribute, Change};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::models::{Domains, Model, StarGan, Target, Translator};

/// How many examples are translated at once (bounds the memory of a large `-n`).
const CHUNK: usize = 256;

/// What `deepgen translate` takes.
#[derive(Debug, Clone, Default)]
pub struct TranslateOptions {
    pub run: PathBuf,
    /// Inputs [default: the held-out set of the source domain].
    pub data: Option<String>,
    /// CycleGAN: B -> A.
    pub reverse: bool,
    /// StarGAN: target attributes (`thick,red`).
    pub to: Option<String>,
    pub n: usize,
    pub out: PathBuf,
    /// Where the model runs: `cpu`, `cuda`, `cuda:N` [default: cpu].
    pub device: Option<String>,
}

/// The translator of a run, or a clear refusal.
pub fn translator<'a>(model: &'a Model, run: &Path) -> Result<&'a dyn Translator> {
    model.as_translator().ok_or_else(|| {
        Error::config(format!(
            "{}: a {} run does not translate images (cyclegan and stargan runs do)",
            run.display(),
            model.name()
        ))
    })
}

/// The domains a run knows, in words: `A = mnist+part=1/2, B = mnist+invert+part=2/2` or the
/// attributes.
pub fn describe_domains(t: &dyn Translator, cfg: &RunConfig) -> String {
    match t.domains() {
        Domains::Pair => {
            format!("A = {}, B = {}", cfg.data.train, cfg.data.train_b.as_deref().unwrap_or("?"))
        }
        Domains::Attributes(cols) => format!("attributes {}", attributes::describe(&cols)),
    }
}

/// The default inputs of a direction: the source domain's held-out set, else its training set.
pub fn default_inputs(cfg: &RunConfig, reverse: bool) -> String {
    if reverse {
        cfg.data
            .val_b
            .clone()
            .or(cfg.data.train_b.clone())
            .unwrap_or_else(|| cfg.data.train.clone())
    } else {
        cfg.data.val.clone().unwrap_or_else(|| cfg.data.train.clone())
    }
}

/// The StarGAN attributes of inputs: their labels when the data has the run's attributes,
/// otherwise the critic's estimate.
pub fn input_attributes(
    model: &Model,
    cols: &[Attribute],
    data: &Dataset,
    x: &Tensor,
    idx: &[usize],
) -> Result<Vec<Vec<u32>>> {
    if let Some(a) = data.attributes.as_ref().filter(|a| a.columns == cols) {
        return Ok(idx.iter().map(|&i| a.row(i).to_vec()).collect());
    }
    let s = model
        .get::<StarGan>()
        .ok_or_else(|| Error::config("attribute inputs need a StarGAN run"))?;
    let enc = s.classify(x)?.to_vec2::<f32>()?;
    Ok(enc.iter().map(|e| attributes::decode(cols, e)).collect())
}

/// Encodes value indices `[n][k]` as `[n, width]`.
pub fn encode(cols: &[Attribute], vals: &[Vec<u32>], dev: &Device) -> Result<Tensor> {
    let mut v = Vec::with_capacity(vals.len() * attributes::width(cols));
    for r in vals {
        attributes::encode(cols, r, &mut v);
    }
    Ok(Tensor::from_vec(v, (vals.len(), attributes::width(cols)), dev)?)
}

/// The values after `changes`.
pub fn changed(vals: &[u32], changes: &[Change]) -> Vec<u32> {
    let mut v = vals.to_vec();
    for c in changes {
        v[c.column] = c.value;
    }
    v
}

/// The single-attribute changes of the paper's figures, one column each: every value of each
/// group (the input's own value among them) and each binary attribute flipped.
pub fn one_change_each(cols: &[Attribute], vals: &[u32]) -> Vec<Change> {
    let mut out = vec![];
    for (j, c) in cols.iter().enumerate() {
        if c.is_binary() {
            out.push(Change { column: j, value: 1 - vals[j].min(1) });
        } else {
            out.extend((0..c.count() as u32).map(|v| Change { column: j, value: v }));
        }
    }
    out
}

/// The column names of [`one_change_each`].
fn change_names(cols: &[Attribute]) -> Vec<String> {
    let mut out = vec![];
    for c in cols {
        if c.is_binary() {
            out.push(format!("{} flipped", c.name));
        } else {
            out.extend(c.values.iter().cloned());
        }
    }
    out
}

/// Translates `x` (rows of `data` at `idx`) and back: (translations, reconstructions).
pub fn translate_batch(
    model: &Model,
    t: &dyn Translator,
    data: &Dataset,
    x: &Tensor,
    idx: &[usize],
    reverse: bool,
    changes: Option<&[Change]>,
) -> Result<(Tensor, Tensor)> {
    match t.domains() {
        Domains::Pair => {
            let (to, back) = if reverse { (Target::A, Target::B) } else { (Target::B, Target::A) };
            let y = t.translate(x, &to)?;
            let r = t.translate(&y, &back)?;
            Ok((y, r))
        }
        Domains::Attributes(cols) => {
            let changes = changes.ok_or_else(|| Error::config("--to: no target attributes"))?;
            let orig = input_attributes(model, &cols, data, x, idx)?;
            let target: Vec<Vec<u32>> = orig.iter().map(|v| changed(v, changes)).collect();
            let dev = x.device();
            let y = t.translate(x, &Target::Encoded(encode(&cols, &target, dev)?))?;
            let r = t.translate(&y, &Target::Encoded(encode(&cols, &orig, dev)?))?;
            Ok((y, r))
        }
    }
}

/// Checks `--reverse` and `--to` against the run's domains; returns the parsed changes.
pub fn check_direction(
    t: &dyn Translator,
    cfg: &RunConfig,
    reverse: bool,
    to: Option<&str>,
) -> Result<Option<Vec<Change>>> {
    match t.domains() {
        Domains::Pair => {
            if let Some(to) = to {
                return Err(Error::config(format!(
                    "--to {to}: this CycleGAN run translates between two domains ({}); use \
                    --reverse for B -> A",
                    describe_domains(t, cfg)
                )));
            }
            Ok(None)
        }
        Domains::Attributes(cols) => {
            if reverse {
                return Err(Error::config(format!(
                    "--reverse applies to CycleGAN runs; this StarGAN run translates to \
                    attributes ({}) with --to",
                    attributes::describe(&cols)
                )));
            }
            to.map(|s| attributes::parse_changes(&cols, s)).transpose()
        }
    }
}

/// Loads translation inputs and checks their shape against the model's.
pub fn load_inputs(spec: &str, cfg: &RunConfig, t: &dyn Translator) -> Result<Dataset> {
    let (d, _) = transform::load_transformed(spec, cfg, false)?;
    if d.shape != t.image_shape() {
        let hint = match (&d.shape[..], t.image_shape()) {
            ([3, ..], [1, ..]) => " (colour images for a grey-only model)",
            ([1, ..], [3, ..]) => " (grey images for a colour model; +tint=COLOUR makes them RGB)",
            _ => "",
        };
        return Err(Error::Shape(format!(
            "{}: images of shape {:?}, the model translates {:?}{hint}",
            d.source,
            d.shape,
            t.image_shape()
        )));
    }
    Ok(d)
}

/// `deepgen translate`: writes the grid or the array, returns the lines to print.
pub fn translate(o: &TranslateOptions) -> Result<Vec<String>> {
    let (_, cfg, model) = super::open_on(&o.run, &super::device(o.device.as_deref())?)?;
    let t = translator(&model, &o.run)?;
    let changes = check_direction(t, &cfg, o.reverse, o.to.as_deref())?;
    let ext = o.out.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    if ext != "png" && ext != "npy" {
        return Err(Error::config(format!(
            "--out {}: write a .png grid or a .npy array",
            o.out.display()
        )));
    }
    let spec = o.data.clone().unwrap_or_else(|| default_inputs(&cfg, o.reverse));
    let data = load_inputs(&spec, &cfg, t)?;
    let n = o.n.min(data.n);
    let shape = t.image_shape().to_vec();
    if ext == "npy" {
        let stargan_all = matches!(t.domains(), Domains::Attributes(_)) && changes.is_none();
        if stargan_all {
            return Err(Error::config(
                "--to is needed for a .npy of a StarGAN run (one translation per input), e.g. \
                --to thick,red",
            ));
        }
        let d: usize = shape.iter().product();
        crate::limits::check_values(&o.out.display().to_string(), (n * d) as u64, 8)?;
        let mut out: Vec<f32> = Vec::with_capacity(n * d);
        for lo in (0..n).step_by(CHUNK) {
            let idx: Vec<usize> = (lo..(lo + CHUNK).min(n)).collect();
            let x = data.batch(&idx, &model.device())?;
            let (y, _) =
                translate_batch(&model, t, &data, &x, &idx, o.reverse, changes.as_deref())?;
            out.extend(y.clamp(0.0, 1.0)?.flatten_all()?.to_vec1::<f32>()?);
        }
        let mut full = vec![n];
        full.extend_from_slice(&shape);
        crate::files::atomic_write(&o.out, &crate::data::npy::encode_f32(&full, &out))?;
        return Ok(vec![format!(
            "wrote {n} translations of {} ({}) to {} as float32 [{n}, {}] in [0, 1]",
            data.source,
            what(t, &cfg, o.reverse, changes.as_deref()),
            o.out.display(),
            shape.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", ")
        )]);
    }
    let rows = grid_rows(
        &model,
        t,
        &data,
        n.min(crate::limits::MAX_GRID_IMAGES / 8),
        o.reverse,
        changes.as_deref(),
    )?;
    crate::viz::image_grid(&rows.values, rows.count, &shape, rows.cols, 2, &o.out)?;
    Ok(vec![format!(
        "wrote {} to {} ({} inputs of {}; each row: {})",
        what(t, &cfg, o.reverse, changes.as_deref()),
        o.out.display(),
        rows.count / rows.cols,
        data.source,
        rows.legend
    )])
}

/// The translation in words.
fn what(t: &dyn Translator, cfg: &RunConfig, reverse: bool, changes: Option<&[Change]>) -> String {
    match t.domains() {
        Domains::Pair if reverse => {
            format!("B -> A ({} -> {})", cfg.data.train_b.as_deref().unwrap_or("B"), cfg.data.train)
        }
        Domains::Pair => {
            format!("A -> B ({} -> {})", cfg.data.train, cfg.data.train_b.as_deref().unwrap_or("B"))
        }
        Domains::Attributes(cols) => match changes {
            Some(ch) => format!(
                "translations to {}",
                ch.iter()
                    .map(|c| cols[c.column].value_name(c.value))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => "single-attribute translations".into(),
        },
    }
}

/// The images of a grid, row-major.
pub struct GridRows {
    pub values: Vec<f32>,
    pub count: usize,
    pub cols: usize,
    pub legend: String,
}

/// `n` inputs, one row each: input, translation, reconstruction (a direction or `--to`), or the
/// input and each single-attribute change (StarGAN without `--to`).
pub fn grid_rows(
    model: &Model,
    t: &dyn Translator,
    data: &Dataset,
    n: usize,
    reverse: bool,
    changes: Option<&[Change]>,
) -> Result<GridRows> {
    let idx: Vec<usize> = (0..n.min(data.n)).collect();
    if idx.is_empty() {
        return Err(Error::config(format!("{}: no images to translate", data.source)));
    }
    let x = data.batch(&idx, &model.device())?;
    let rows_of = |parts: &[Vec<Vec<f32>>]| -> Vec<f32> {
        let mut v = vec![];
        for i in 0..idx.len() {
            for p in parts {
                v.extend_from_slice(&p[i]);
            }
        }
        v
    };
    let split = |t: &Tensor| -> Result<Vec<Vec<f32>>> { Ok(t.clamp(0.0, 1.0)?.to_vec2::<f32>()?) };
    match (t.domains(), changes) {
        (Domains::Attributes(cols), None) => {
            let orig = input_attributes(model, &cols, data, &x, &idx)?;
            let mut parts = vec![split(&x)?];
            let k = one_change_each(&cols, &orig[0]).len();
            for j in 0..k {
                let target: Vec<Vec<u32>> =
                    orig.iter().map(|v| changed(v, &[one_change_each(&cols, v)[j]])).collect();
                let y = t.translate(&x, &Target::Encoded(encode(&cols, &target, x.device())?))?;
                parts.push(split(&y)?);
            }
            Ok(GridRows {
                values: rows_of(&parts),
                count: idx.len() * (k + 1),
                cols: k + 1,
                legend: format!("input, {}", change_names(&cols).join(", ")),
            })
        }
        _ => {
            let (y, r) = translate_batch(model, t, data, &x, &idx, reverse, changes)?;
            let parts = [split(&x)?, split(&y)?, split(&r)?];
            Ok(GridRows {
                values: rows_of(&parts),
                count: idx.len() * 3,
                cols: 3,
                legend: "input, translation, reconstruction".into(),
            })
        }
    }
}

/// The pictures a translation run leaves: `translations.png` (A -> B and back, or StarGAN's
/// single-attribute changes) and, for CycleGAN, `translations-reverse.png`.
pub fn write_previews(model: &Model, cfg: &RunConfig, dir: &Path) -> Result<Vec<PathBuf>> {
    let Some(t) = model.as_translator() else { return Ok(vec![]) };
    let mut wrote = vec![];
    let directions: &[bool] = match t.domains() {
        Domains::Pair => &[false, true],
        Domains::Attributes(_) => &[false],
    };
    for &reverse in directions {
        let data = load_inputs(&default_inputs(cfg, reverse), cfg, t)?;
        let rows = grid_rows(model, t, &data, 8, reverse, None)?;
        let name = if reverse { "translations-reverse.png" } else { "translations.png" };
        let path = dir.join(name);
        crate::viz::image_grid(&rows.values, rows.count, t.image_shape(), rows.cols, 2, &path)?;
        wrote.push(path);
    }
    Ok(wrote)
}
