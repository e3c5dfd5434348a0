//! Data-spec modifiers (`SPEC+only=3`, `SPEC+invert`, ...): class subsets for
//! leave-one-class-out anomaly detection and corruptions for
//! out-of-distribution sets, plus Stacked MNIST (three digits as RGB planes).
//! Every draw is seeded by the modifier text, so a spec always means the same rows.

use crate::error::{Error, Result};
use crate::rng;

use super::Dataset;

/// One modifier of a data spec.
#[derive(Debug, Clone, PartialEq)]
pub enum Modifier {
    /// Keep the examples whose label is listed.
    Only(Vec<u32>),
    /// Drop the examples whose label is listed.
    Without(Vec<u32>),
    /// Add N(0, s^2) noise to every value (clamped to [0, 1] when the data lies in [0, 1]).
    Noise(f32),
    /// Replace every value by a uniform [0, 1) draw (pure-noise images).
    Uniform,
    /// 1 - x.
    Invert,
    /// Rotate images 90 degrees clockwise (square images).
    Rotate,
    /// Turn images upside down.
    Flip,
    /// Halve the digit: each image scaled to half size and centred on a blank canvas.
    Shrink,
    /// Thicker strokes: grey dilation by the 3x3 cross, K times ([`super::domains`]).
    Thick(usize),
    /// Thinner strokes: grey erosion by the 3x3 cross, K times.
    Thin(usize),
    /// A one-channel image in a colour: `[1, H, W]` -> `[3, H, W]`.
    Tint(String, [f32; 3]),
    /// Bilinear resampling of every image to N x N (the 8x8 UCI digits at 28x28: a second
    /// hand-writing domain beside MNIST).
    Upscale(usize),
    /// A border of N background (0) pixels on every side: `digits+upscale=20+pad=4` frames the
    /// UCI digits in 28 x 28 as MNIST frames its 20 x 20 digits.
    Pad(usize),
    /// Part K of N: the examples i with i * N / n == K - 1 (contiguous blocks), so that two
    /// domains drawn from one set share no example (`mnist+part=1/2`, `mnist+invert+part=2/2`).
    Part(usize, usize),
    /// StarGAN's five digit attributes (colour red|green|blue, thick, invert), drawn per image
    /// ([`super::attributes`]).
    Attributes,
    /// The labels become the value indices of attribute NAME (an attribute classifier's
    /// targets: `deepgen classifier train --data mnist+attributes+label=colour`).
    Label(String),
    /// Captions of the embedded digits from their labels and measured attributes
    /// ([`super::captions`]).
    Captions,
    /// The examples whose built-in captions state no held-out attribute combination (training).
    Seen,
    /// The examples whose built-in captions state a held-out combination (evaluation).
    Unseen,
}

pub const NAMES: &str = "only=L, without=L, noise[=S], uniform, invert, rotate, flip, shrink, \
    thick[=K], thin[=K], tint=COLOUR, upscale=N, pad=N, part=K/N, attributes, label=ATTRIBUTE, captions, seen, unseen";

/// The largest side `+upscale` makes.
pub const MAX_UPSCALE: usize = 1024;

impl Modifier {
    /// Parses `name[=arg]`; `None` when `name` is not a modifier.
    pub fn parse(s: &str) -> Option<Result<Self>> {
        let (name, arg) = match s.split_once('=') {
            Some((n, a)) => (n, Some(a)),
            None => (s, None),
        };
        let labels = |a: Option<&str>| -> Result<Vec<u32>> {
            let a = a.ok_or_else(|| {
                Error::config(format!(
                    "data modifier `{name}` needs labels, e.g. {name}=3 or {name}=0,1,2"
                ))
            })?;
            a.split(',')
                .map(|v| {
                    v.trim().parse::<u32>().map_err(|_| {
                        Error::config(format!("data modifier `{s}`: `{v}` is not a label"))
                    })
                })
                .collect()
        };
        let none = |m: Modifier| match arg {
            None => Ok(m),
            Some(_) => Err(Error::config(format!("data modifier `{name}` takes no value"))),
        };
        Some(match name {
            "only" => labels(arg).map(Modifier::Only),
            "without" => labels(arg).map(Modifier::Without),
            "noise" => match arg {
                None => Ok(Modifier::Noise(0.25)),
                Some(a) => match a.parse::<f32>() {
                    Ok(v) if v.is_finite() && v > 0.0 => Ok(Modifier::Noise(v)),
                    _ => Err(Error::config(format!(
                        "data modifier `{s}`: the noise level must be a positive number"
                    ))),
                },
            },
            "uniform" => none(Modifier::Uniform),
            "invert" => none(Modifier::Invert),
            "rotate" => none(Modifier::Rotate),
            "flip" => none(Modifier::Flip),
            "shrink" => none(Modifier::Shrink),
            "thick" | "thin" => {
                let k = match arg {
                    None => Ok(1),
                    Some(a) => match a.parse::<usize>() {
                        Ok(k) if (1..=8).contains(&k) => Ok(k),
                        _ => Err(Error::config(format!(
                            "data modifier `{s}`: the number of steps must be 1 to 8"
                        ))),
                    },
                };
                k.map(|k| if name == "thick" { Modifier::Thick(k) } else { Modifier::Thin(k) })
            }
            "tint" => match arg {
                Some(c) => super::domains::colour(c)
                    .map(|rgb| Modifier::Tint(c.to_string(), rgb))
                    .map_err(|e| Error::config(format!("data modifier `{s}`: {e}"))),
                None => Err(Error::config("data modifier `tint` needs a colour, e.g. tint=red")),
            },
            "upscale" => match arg.map(str::parse::<usize>) {
                Some(Ok(n)) if (1..=MAX_UPSCALE).contains(&n) => Ok(Modifier::Upscale(n)),
                _ => Err(Error::config(format!(
                    "data modifier `{s}` needs a side of 1 to {MAX_UPSCALE} pixels, e.g. \
                    upscale=28"
                ))),
            },
            "attributes" => none(Modifier::Attributes),
            "captions" => none(Modifier::Captions),
            "seen" => none(Modifier::Seen),
            "unseen" => none(Modifier::Unseen),
            "pad" => match arg.map(str::parse::<usize>) {
                Some(Ok(n)) if (1..=MAX_UPSCALE).contains(&n) => Ok(Modifier::Pad(n)),
                _ => Err(Error::config(format!(
                    "data modifier `{s}` needs a border of 1 to {MAX_UPSCALE} pixels, e.g. pad=4"
                ))),
            },
            "label" => match arg {
                Some(a) if !a.trim().is_empty() => Ok(Modifier::Label(a.trim().to_string())),
                _ => Err(Error::config(
                    "data modifier `label` needs an attribute name, e.g. label=colour",
                )),
            },
            "part" => {
                let parsed = arg.and_then(|a| a.split_once('/')).and_then(|(k, n)| {
                    Some((k.trim().parse::<usize>().ok()?, n.trim().parse::<usize>().ok()?))
                });
                match parsed {
                    Some((k, n)) if n >= 1 && (1..=n).contains(&k) => Ok(Modifier::Part(k, n)),
                    _ => Err(Error::config(format!(
                        "data modifier `{s}` needs K/N with 1 <= K <= N, e.g. part=1/2"
                    ))),
                }
            }
            _ => return None,
        })
    }

    fn image_dims(d: &Dataset, what: &str) -> Result<(usize, usize, usize)> {
        match d.shape[..] {
            [c, h, w] => Ok((c, h, w)),
            _ => Err(Error::config(format!(
                "{}: `{what}` needs images, but examples have shape {:?}",
                d.source, d.shape
            ))),
        }
    }

    /// Applies the modifier; `source` is the new spec text (it also seeds the noise). Attribute
    /// labels and captions follow their examples.
    pub fn apply(&self, d: Dataset, source: &str) -> Result<Dataset> {
        let (attrs, captions, n0) = (d.attributes.clone(), d.captions.clone(), d.n);
        // The rows a subset keeps, in order (None: every row, one for one).
        let kept: Option<Vec<usize>> = match self {
            Modifier::Part(k, parts) => {
                let n = d.n;
                Some((0..n).filter(|i| i * parts / n == k - 1).collect())
            }
            Modifier::Seen | Modifier::Unseen => {
                Some(super::captions::held_out_rows(&d, source, *self == Modifier::Unseen)?)
            }
            Modifier::Only(l) | Modifier::Without(l) => d.labels.as_ref().map(|y| {
                (0..d.n)
                    .filter(|&i| l.contains(&y[i]) == matches!(self, Modifier::Only(_)))
                    .collect()
            }),
            _ => None,
        };
        let mut out = match self {
            Modifier::Part(..) | Modifier::Seen | Modifier::Unseen => {
                let idx = kept.as_deref().unwrap_or_default();
                if idx.is_empty() {
                    return Err(Error::config(format!("{source}: no examples are left")));
                }
                let x: Vec<f32> = idx.iter().flat_map(|&i| d.row(i).iter().copied()).collect();
                let labels = d.labels.as_ref().map(|l| idx.iter().map(|&i| l[i]).collect());
                Dataset::new(source, x, d.shape.clone(), labels)?
            }
            Modifier::Attributes => super::attributes::digits_with_attributes(&d, source)?,
            Modifier::Captions => return super::captions::digits_with_captions(&d, source),
            Modifier::Label(name) => {
                let a = d.attributes.as_ref().ok_or_else(|| {
                    Error::config(format!("{source}: the data has no attributes to label by"))
                })?;
                let j = a.columns.iter().position(|c| c.name == *name).ok_or_else(|| {
                    Error::config(format!(
                        "{source}: unknown attribute `{name}` (the data has {})",
                        super::attributes::describe(&a.columns)
                    ))
                })?;
                let labels = (0..d.n).map(|i| a.row(i)[j]).collect();
                Dataset::new(source, d.x.clone(), d.shape.clone(), Some(labels))?
            }
            _ => self.apply_values(d, source)?,
        };
        if *self != Modifier::Attributes {
            out.attributes = match &kept {
                Some(idx) => attrs.map(|a| a.select(idx)),
                None => attrs,
            };
        }
        out.captions = match &kept {
            Some(idx) => captions.map(|c| c.select(idx)),
            None => captions,
        };
        if matches!(self, Modifier::Seen | Modifier::Unseen) {
            let which = if *self == Modifier::Seen { "held-out" } else { "seen" };
            out.notes.push(format!(
                "{} of {} images left out: their captions state {which} attribute combinations \
                (thick and leaning left for even digits, thin and leaning right for odd digits)",
                n0 - out.n,
                n0
            ));
        }
        Ok(out)
    }

    fn apply_values(&self, d: Dataset, source: &str) -> Result<Dataset> {
        let dim = d.dim();
        let keep = |d: Dataset, f: &dyn Fn(u32) -> bool| -> Result<Dataset> {
            let labels = d.labels.as_ref().ok_or_else(|| {
                Error::config(format!("{source}: the data has no labels to select classes by"))
            })?;
            let idx: Vec<usize> = (0..d.n).filter(|&i| f(labels[i])).collect();
            if idx.is_empty() {
                return Err(Error::config(format!("{source}: no examples are left")));
            }
            let x: Vec<f32> = idx.iter().flat_map(|&i| d.row(i).iter().copied()).collect();
            Dataset::new(source, x, d.shape.clone(), Some(idx.iter().map(|&i| labels[i]).collect()))
        };
        let mut r = rng::derived(0, source, 0);
        let unit = |d: &Dataset, what: &str| -> Result<()> {
            match d.x.iter().find(|v| !(0.0..=1.0).contains(*v)) {
                Some(v) => Err(Error::config(format!(
                    "{source}: `{what}` needs values in [0, 1], the data has {v}"
                ))),
                None => Ok(()),
            }
        };
        match self {
            Modifier::Tint(_, rgb) => {
                let (c, h, w) = Self::image_dims(&d, "tint")?;
                if c != 1 {
                    return Err(Error::config(format!(
                        "{source}: `tint` colours one-channel images, these have {c} channels"
                    )));
                }
                unit(&d, "tint")?;
                let x: Vec<f32> =
                    d.x.chunks(h * w).flat_map(|g| super::domains::tint(g, *rgb)).collect();
                return Dataset::new(source, x, vec![3, h, w], d.labels.clone());
            }
            Modifier::Upscale(n) => {
                let (c, h, w) = Self::image_dims(&d, "upscale")?;
                let values = (d.n as u64) * (c as u64) * (*n as u64) * (*n as u64);
                crate::limits::check_values(source, values, 4)?;
                let x = super::domains::resize(&d.x, h, w, *n, *n);
                return Dataset::new(source, x, vec![c, *n, *n], d.labels.clone());
            }
            Modifier::Pad(p) => {
                let (c, h, w) = Self::image_dims(&d, "pad")?;
                let (nh, nw) = (h + 2 * p, w + 2 * p);
                let values = (d.n as u64) * (c as u64) * (nh as u64) * (nw as u64);
                crate::limits::check_values(source, values, 4)?;
                let mut x = vec![0f32; d.n * c * nh * nw];
                for (k, plane) in d.x.chunks(h * w).enumerate() {
                    let out = &mut x[k * nh * nw..(k + 1) * nh * nw];
                    for (i, row) in plane.chunks(w).enumerate() {
                        out[(i + p) * nw + p..(i + p) * nw + p + w].copy_from_slice(row);
                    }
                }
                return Dataset::new(source, x, vec![c, nh, nw], d.labels.clone());
            }
            Modifier::Thick(k) | Modifier::Thin(k) => {
                let (_, h, w) = Self::image_dims(&d, "thick and thin")?;
                let mut x = d.x.clone();
                for _ in 0..*k {
                    super::domains::morph(&mut x, h, w, matches!(self, Modifier::Thick(_)));
                }
                return Dataset::new(source, x, d.shape.clone(), d.labels.clone());
            }
            _ => {}
        }
        let mut x = d.x.clone();
        match self {
            // Each of these returned above.
            Modifier::Tint(..)
            | Modifier::Upscale(_)
            | Modifier::Thick(_)
            | Modifier::Thin(_)
            | Modifier::Part(..)
            | Modifier::Pad(_)
            | Modifier::Attributes
            | Modifier::Label(_)
            | Modifier::Captions
            | Modifier::Seen
            | Modifier::Unseen => {}
            Modifier::Only(l) => return keep(d, &|y| l.contains(&y)),
            Modifier::Without(l) => return keep(d, &|y| !l.contains(&y)),
            Modifier::Noise(s) => {
                // Images (values in [0, 1]) stay images: the noisy values are clamped; other data
                // is not.
                let clamp = unit(&d, "noise").is_ok();
                let e =
                    rng::randn(&mut r, &[x.len()], &candle_core::Device::Cpu)?.to_vec1::<f32>()?;
                x.iter_mut().zip(e).for_each(|(v, e)| {
                    *v = if clamp { (*v + s * e).clamp(0.0, 1.0) } else { *v + s * e }
                });
            }
            Modifier::Uniform => {
                use rand::Rng as _;
                x.iter_mut().for_each(|v| *v = r.gen::<f32>());
            }
            Modifier::Invert => {
                unit(&d, "invert")?;
                x.iter_mut().for_each(|v| *v = 1.0 - *v);
            }
            Modifier::Rotate | Modifier::Flip | Modifier::Shrink => {
                let (c, h, w) = Self::image_dims(&d, "rotate, flip and shrink")?;
                if *self == Modifier::Rotate && h != w {
                    return Err(Error::config(format!(
                        "{source}: rotation needs square images, these are {h}x{w}"
                    )));
                }
                for (k, out) in x.chunks_mut(h * w).enumerate() {
                    let src = &d.x[k * h * w..(k + 1) * h * w];
                    for i in 0..h {
                        for j in 0..w {
                            out[i * w + j] = match self {
                                // Clockwise: output (i, j) comes from input (h - 1 - j, i).
                                Modifier::Rotate => src[(h - 1 - j) * w + i],
                                Modifier::Flip => src[(h - 1 - i) * w + j],
                                // Output (i, j) in the centred half-size box averages its 2x2 input
                                // block.
                                _ => {
                                    let (i0, j0) = (h / 4, w / 4);
                                    if i < i0 || j < j0 || i >= i0 + h / 2 || j >= j0 + w / 2 {
                                        0.0
                                    } else {
                                        let (si, sj) = (2 * (i - i0), 2 * (j - j0));
                                        let at = |a: usize, b: usize| {
                                            if a < h && b < w {
                                                src[a * w + b]
                                            } else {
                                                0.0
                                            }
                                        };
                                        (at(si, sj)
                                            + at(si + 1, sj)
                                            + at(si, sj + 1)
                                            + at(si + 1, sj + 1))
                                            / 4.0
                                    }
                                }
                            };
                        }
                    }
                }
                debug_assert_eq!(x.len(), d.n * c * h * w);
            }
        }
        debug_assert_eq!(x.len(), d.n * dim);
        Dataset::new(source, x, d.shape.clone(), d.labels.clone())
    }
}

/// Stacked MNIST (Metz et al. 2017; Srivastava et al. 2017): `n` images of
/// three MNIST digits drawn independently (seeded by `tag`) as the R, G and B
/// planes; label 100 a + 10 b + c, so 1,000 modes.
pub fn stacked(base: &Dataset, n: usize, tag: &str) -> Result<Dataset> {
    use rand::Rng as _;
    let labels = base
        .labels
        .as_ref()
        .ok_or_else(|| Error::config(format!("{tag}: the base set has no labels")))?;
    if base.shape.len() != 3 || base.shape[0] != 1 {
        return Err(Error::config(format!(
            "{tag}: stacking needs one-channel images, not shape {:?}",
            base.shape
        )));
    }
    let d = base.dim();
    let mut r = rng::derived(0, tag, 0);
    let mut x = Vec::with_capacity(n * 3 * d);
    let mut y = Vec::with_capacity(n);
    for _ in 0..n {
        let mut label = 0;
        for _ in 0..3 {
            let i = r.gen_range(0..base.n);
            x.extend_from_slice(base.row(i));
            label = label * 10 + labels[i];
        }
        y.push(label);
    }
    Dataset::new(tag, x, vec![3, base.shape[1], base.shape[2]], Some(y))
}
