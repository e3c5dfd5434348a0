//! Examples in the answer a client asked for: JSON rows (data units), a PNG grid, or an NPY
//! array `[n, ...shape]` of float32.

use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::Value;

use crate::error::{ApiError, ApiResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Json,
    Png,
    Npy,
}

/// The `format` field, else what `Accept` prefers, else JSON.
pub fn format(field: Option<Format>, headers: &HeaderMap) -> Format {
    if let Some(f) = field {
        return f;
    }
    let accept = headers.get(ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    if accept.contains("image/png") {
        Format::Png
    } else if accept.contains("application/x-npy") {
        Format::Npy
    } else {
        Format::Json
    }
}

/// Examples `values` (`n` of `shape`, data units) as `format`; a PNG grid has `cols` columns.
/// `meta` is merged into a JSON answer and sent as headers `X-Deepgen-*` otherwise.
pub fn examples(
    values: &[f32],
    n: usize,
    shape: &[usize],
    cols: usize,
    format: Format,
    meta: Value,
) -> ApiResult<Response> {
    let dim: usize = shape.iter().product();
    match format {
        Format::Json => {
            let rows: Vec<&[f32]> = values.chunks(dim.max(1)).collect();
            let mut body = serde_json::json!({"n": n, "shape": shape, "samples": rows});
            if let (Some(b), Value::Object(m)) = (body.as_object_mut(), meta) {
                b.extend(m);
            }
            Ok(Json(body).into_response())
        }
        Format::Png => {
            if shape.len() != 3 {
                return Err(ApiError::field(
                    "format",
                    format!(
                        "png needs image examples; these have shape {shape:?} (use json or npy)"
                    ),
                ));
            }
            let png = deepgen::viz::image_grid_png(values, n, shape, cols, 2)
                .map_err(|e| ApiError::from_lib("format", e))?;
            Ok(with_meta(([(CONTENT_TYPE, "image/png")], png).into_response(), meta))
        }
        Format::Npy => {
            let mut full = vec![n];
            full.extend_from_slice(shape);
            let npy = deepgen::data::npy::encode_f32(&full, values);
            Ok(with_meta(([(CONTENT_TYPE, "application/x-npy")], npy).into_response(), meta))
        }
    }
}

/// Scalar metadata as `X-Deepgen-<key>` headers (seed, kind), for binary answers.
fn with_meta(mut r: Response, meta: Value) -> Response {
    if let Value::Object(m) = meta {
        for (k, v) in m {
            let text = match v {
                Value::String(s) => s,
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => continue,
            };
            let name = format!("x-deepgen-{}", k.replace('_', "-"));
            if let (Ok(n), Ok(v)) = (
                axum::http::HeaderName::from_bytes(name.as_bytes()),
                axum::http::HeaderValue::from_str(&text),
            ) {
                r.headers_mut().insert(n, v);
            }
        }
    }
    r
}
