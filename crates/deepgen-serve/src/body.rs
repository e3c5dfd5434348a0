//! Examples in a request, in any of the forms a client has them: JSON rows, an NPY array, one
//! PNG, or a multipart form of PNG and NPY files (what the page's drop zone sends). Each comes
//! back as values in data units with its shape and the request's other parameters as JSON, so
//! that one typed struct reads them whatever the body was.

use std::path::Path;

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::header::CONTENT_TYPE;
use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};
use crate::state::Limits;

/// Examples sent with a request.
pub struct Examples {
    /// `n * dim` values, example-major, in data units.
    pub x: Vec<f32>,
    pub n: usize,
    /// The shape of one example.
    pub shape: Vec<usize>,
    /// Where each example came from (file names of a form; `rows[i]` for JSON).
    pub names: Vec<String>,
}

/// Reads the examples and the other parameters of a request. `shape` is the run's example
/// shape (PNGs are converted to its channels; JSON rows must have its size).
pub async fn read(req: Request, shape: &[usize], limits: &Limits) -> ApiResult<(Examples, Value)> {
    let ctype = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let query = query_params(req.uri().query());
    let mut ex = Collect::new(shape, limits);
    let params = if ctype.starts_with("multipart/form-data") {
        let mut form = Multipart::from_request(req, &()).await?;
        let mut params = query;
        while let Some(field) = form.next_field().await? {
            let name = field.name().unwrap_or("").to_string();
            let file = field.file_name().map(|s| s.to_string());
            let ftype = field.content_type().unwrap_or("").to_ascii_lowercase();
            let data = field.bytes().await?;
            match file {
                Some(f) => ex.file(&f, &ftype, &data)?,
                None => {
                    let text = String::from_utf8_lossy(&data).to_string();
                    params.insert(name, scalar(&text));
                }
            }
        }
        Value::Object(params)
    } else {
        let body = Bytes::from_request(req, &()).await?;
        // `curl -d` labels a body form-urlencoded unless told otherwise: a body that is a JSON
        // object without a JSON label is read as JSON all the same.
        let looks_json = body.iter().find(|c| !c.is_ascii_whitespace()) == Some(&b'{');
        let unlabelled = ctype.is_empty() || ctype.starts_with("application/x-www-form-urlencoded");
        if ctype.starts_with("application/json") || (unlabelled && looks_json) {
            let mut v: Value = serde_json::from_slice(&body)
                .map_err(|e| ApiError::field("body", format!("malformed JSON: {e}")))?;
            let obj = v
                .as_object_mut()
                .ok_or_else(|| ApiError::field("body", "expected a JSON object"))?;
            let rows = obj
                .remove("rows")
                .ok_or_else(|| ApiError::field("rows", "missing: give the examples to use"))?;
            ex.json_rows(&rows)?;
            v
        } else if ctype.starts_with("image/png") {
            ex.file("body.png", "image/png", &body)?;
            Value::Object(query)
        } else if ctype.starts_with("application/x-npy")
            || ctype.starts_with("application/octet-stream")
        {
            ex.file("body.npy", "application/x-npy", &body)?;
            Value::Object(query)
        } else {
            return Err(ApiError::unsupported(format!(
                "content type `{ctype}`: send application/json ({{\"rows\": [[...]]}}), \
                application/x-npy, image/png or multipart/form-data"
            )));
        }
    };
    Ok((ex.finish()?, params))
}

/// Examples given as JSON `rows` (an array of examples of `shape`).
pub fn json_examples(rows: &Value, shape: &[usize], limits: &Limits) -> ApiResult<Examples> {
    let mut ex = Collect::new(shape, limits);
    ex.json_rows(rows)?;
    ex.finish()
}

/// Query parameters as JSON values (numbers and booleans parsed).
fn query_params(q: Option<&str>) -> Map<String, Value> {
    let mut m = Map::new();
    for pair in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        m.insert(k.to_string(), scalar(&percent_decode(v)));
    }
    m
}

/// `%41` and `+` in a query value (the forms a browser writes).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).to_string()
}

/// A form or query value: a number or boolean when it reads as one, else a string.
fn scalar(s: &str) -> Value {
    match serde_json::from_str::<Value>(s) {
        Ok(v @ (Value::Number(_) | Value::Bool(_))) => v,
        _ => Value::String(s.to_string()),
    }
}

/// Examples gathered from the parts of a request, checked as they come.
struct Collect<'a> {
    shape: &'a [usize],
    dim: usize,
    limits: &'a Limits,
    x: Vec<f32>,
    names: Vec<String>,
}

impl<'a> Collect<'a> {
    fn new(shape: &'a [usize], limits: &'a Limits) -> Self {
        Self { shape, dim: shape.iter().product(), limits, x: vec![], names: vec![] }
    }

    fn room(&self, more: usize, field: &str) -> ApiResult<()> {
        if self.names.len() + more > self.limits.max_rows {
            return Err(ApiError::too_large(
                field,
                format!(
                    "{} examples, more than the {} a request may hold (--max-rows)",
                    self.names.len() + more,
                    self.limits.max_rows
                ),
            ));
        }
        Ok(())
    }

    /// `rows`: an array of examples, each a flat array of `dim` numbers (or nested to the
    /// example's shape).
    fn json_rows(&mut self, rows: &Value) -> ApiResult<()> {
        let rows = rows.as_array().ok_or_else(|| {
            ApiError::field("rows", "expected an array of examples (arrays of numbers)")
        })?;
        self.room(rows.len(), "rows")?;
        for (i, r) in rows.iter().enumerate() {
            let field = format!("rows[{i}]");
            let start = self.x.len();
            flatten(r, &mut self.x, &field)?;
            let got = self.x.len() - start;
            if got != self.dim {
                return Err(ApiError::field(
                    &field,
                    format!(
                        "{got} values, but the model takes examples of shape {:?} ({} values)",
                        self.shape, self.dim
                    ),
                ));
            }
            self.names.push(field);
        }
        Ok(())
    }

    /// One uploaded file: a PNG (one example) or an NPY (`[n, ...shape]` or one example).
    fn file(&mut self, name: &str, ctype: &str, data: &[u8]) -> ApiResult<()> {
        let lower = name.to_ascii_lowercase();
        let png = ctype.starts_with("image/png") || lower.ends_with(".png");
        let npy = ctype.contains("npy") || lower.ends_with(".npy");
        if png {
            self.room(1, name)?;
            let v = png_values(name, data, self.shape, self.limits)?;
            self.x.extend(v);
            self.names.push(name.to_string());
            Ok(())
        } else if npy {
            let (shape, v, _) = deepgen::data::npy::parse(data, Path::new(name))
                .map_err(|e| ApiError::from_lib(name, e))?;
            let total: usize = shape.iter().product();
            let n = if shape == self.shape { 1 } else { total / self.dim.max(1) };
            if shape.is_empty()
                || (shape != self.shape && shape[1..].iter().product::<usize>() != self.dim)
            {
                return Err(ApiError::field(
                    name,
                    format!(
                        "an array of shape {shape:?}, but the model takes examples of shape {:?} \
                        (send [n, {}] or [n, ...{:?}])",
                        self.shape, self.dim, self.shape
                    ),
                ));
            }
            self.room(n, name)?;
            for i in 0..n {
                self.names.push(if n == 1 { name.to_string() } else { format!("{name}[{i}]") });
            }
            self.x.extend(v);
            Ok(())
        } else {
            Err(ApiError::unsupported(format!(
                "{name}: send PNG images or NPY arrays (by content type or by name)"
            )))
        }
    }

    fn finish(self) -> ApiResult<Examples> {
        if self.names.is_empty() {
            return Err(ApiError::field("rows", "no examples in the request"));
        }
        if let Some(i) = self.x.iter().position(|v| !v.is_finite()) {
            return Err(ApiError::field(
                &self.names[i / self.dim.max(1)],
                format!("value {} is not finite", i % self.dim.max(1)),
            ));
        }
        Ok(Examples {
            n: self.names.len(),
            x: self.x,
            shape: self.shape.to_vec(),
            names: self.names,
        })
    }
}

/// Flattens nested arrays of numbers.
fn flatten(v: &Value, out: &mut Vec<f32>, field: &str) -> ApiResult<()> {
    match v {
        Value::Number(n) => {
            out.push(n.as_f64().unwrap_or(f64::NAN) as f32);
            Ok(())
        }
        Value::Array(a) => a.iter().try_for_each(|v| flatten(v, out, field)),
        other => Err(ApiError::field(field, format!("expected numbers, found {other}"))),
    }
}

/// A PNG as the run's `[C, H, W]` values in [0, 1], its size checked from the header first.
pub fn png_values(
    name: &str,
    data: &[u8],
    shape: &[usize],
    limits: &Limits,
) -> ApiResult<Vec<f32>> {
    let [c, h, w] = shape else {
        return Err(ApiError::field(
            name,
            format!("the model takes rows of shape {shape:?}, not images"),
        ));
    };
    let reader =
        image::ImageReader::with_format(std::io::Cursor::new(data), image::ImageFormat::Png);
    let (iw, ih) = reader
        .into_dimensions()
        .map_err(|e| ApiError::field(name, format!("cannot decode PNG: {e}")))?;
    if iw as u64 * ih as u64 > limits.max_image_pixels {
        return Err(ApiError::too_large(
            name,
            format!(
                "image is {iw}x{ih} pixels, more than the {} allowed (--max-image-pixels)",
                limits.max_image_pixels
            ),
        ));
    }
    if (ih as usize, iw as usize) != (*h, *w) {
        return Err(ApiError::field(
            name,
            format!("image is {iw}x{ih} pixels, but the model takes {w}x{h}"),
        ));
    }
    let img = deepgen::data::decode_png_bytes(data, Path::new(name))
        .map_err(|e| ApiError::from_lib(name, e))?;
    Ok(match c {
        1 => img.to_luma8().into_raw().into_iter().map(|v| v as f32 / 255.0).collect(),
        3 => {
            let rgb = img.to_rgb8();
            (0..3)
                .flat_map(|ch| rgb.pixels().map(move |p| p.0[ch] as f32 / 255.0))
                .collect::<Vec<_>>()
        }
        _ => return Err(ApiError::field(name, format!("the model's images have {c} channels"))),
    })
}

/// Parameters in a typed struct, a bad one named.
pub fn params<T: serde::de::DeserializeOwned>(v: Value) -> ApiResult<T> {
    serde_json::from_value(v).map_err(|e| ApiError::field("body", e))
}
