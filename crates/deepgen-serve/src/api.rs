//! The JSON API, `/v1/models/...`: every handler checks its request (cheap, on the runtime),
//! then does the model's work through the bounded [`crate::pool::Pool`], with the same library
//! calls and seeds as the CLI.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use candle_core::Tensor;
use deepgen::models::{Gan, TextGan};
use deepgen::rng;
use deepgen::run::infer::{self, Condition};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::body::{self, Examples};
use crate::error::{ApiError, ApiResult};
use crate::reply::{self, Format};
use crate::state::{AppState, Entry};

type St = State<Arc<AppState>>;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/v1/models", get(models))
        .route("/v1/models/{name}", get(model))
        .route("/v1/models/{name}/sample", post(sample))
        .route("/v1/models/{name}/score", post(score))
        .route("/v1/models/{name}/encode", post(encode))
        .route("/v1/models/{name}/decode", post(decode))
        .route("/v1/models/{name}/interpolate", post(interpolate))
        .route("/v1/models/{name}/translate", post(translate))
        .route("/v1/models/{name}/complete", post(complete))
        .route("/v1/models/{name}/metrics", get(metrics))
        .route("/v1/models/{name}/report", get(report))
}

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(s): St) -> ApiResult<Json<Value>> {
    match s.models.get() {
        Some(m) => Ok(Json(json!({"status": "ready", "models": m.len()}))),
        None => Err(ApiError::busy("the runs are still loading", 1)),
    }
}

/// The served run `name`: 503 while loading, 404 for an unknown name.
fn entry(s: &AppState, name: &str) -> ApiResult<Arc<Entry>> {
    let Some(all) = s.models.get() else {
        return Err(ApiError::busy("the runs are still loading", 1));
    };
    s.entry(name).ok_or_else(|| {
        let names: Vec<&str> = all.iter().map(|e| e.name.as_str()).collect();
        ApiError::not_found(format!(
            "unknown model `{name}`; this service has: {}",
            names.join(", ")
        ))
    })
}

/// 400 for a call the run's family does not offer: "NAME: a FAMILY run WHAT".
fn cannot(e: &Entry, what: &str) -> ApiError {
    ApiError::field("model", format!("{}: a {} run {what}", e.name, e.run.model.name()))
}

fn describe(e: &Entry) -> Value {
    let r = &e.run;
    let threshold = r.threshold.as_ref().map(|t| {
        json!({"score": t.score.name(), "value": t.threshold, "target_fpr": t.target_fpr,
            "data": t.data})
    });
    json!({
        "name": e.name, "family": r.model.name(), "summary": r.model.info().summary,
        "run": r.path.display().to_string(), "step": r.step, "seed": r.cfg.seed,
        "data": r.cfg.data.train, "shape": r.shape(), "capabilities": e.caps,
        "threshold": threshold,
    })
}

async fn models(State(s): St) -> ApiResult<Json<Value>> {
    let all = s.models.get().ok_or_else(|| ApiError::busy("the runs are still loading", 1))?;
    Ok(Json(json!({"models": all.iter().map(|e| describe(e)).collect::<Vec<_>>()})))
}

async fn model(State(s): St, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    let e = entry(&s, &name)?;
    Ok(Json(describe(&e)))
}

/// A JSON body (an empty one is `{}`), its fields checked by `T`.
fn json_body<T: serde::de::DeserializeOwned>(b: &Bytes) -> ApiResult<T> {
    let text: &[u8] = if b.iter().all(|c| c.is_ascii_whitespace()) { b"{}" } else { b };
    serde_json::from_slice(text).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            ApiError::field("body", format!("malformed JSON: {e}"))
        } else {
            ApiError::field("body", e)
        }
    })
}

/// `n` in 1..=limit.
fn count(field: &str, n: usize, limit: usize, flag: &str) -> ApiResult<usize> {
    if n == 0 {
        return Err(ApiError::field(field, "must be at least 1"));
    }
    if n > limit {
        return Err(ApiError::field(
            field,
            format!("{n} is more than the {limit} allowed ({flag})"),
        ));
    }
    Ok(n)
}

fn grid_cols(n: usize) -> usize {
    (n as f64).sqrt().ceil() as usize
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SampleReq {
    #[serde(default = "sixteen")]
    n: usize,
    seed: Option<u64>,
    class: Option<u32>,
    text: Option<String>,
    #[serde(default)]
    mean: bool,
    format: Option<Format>,
}

fn sixteen() -> usize {
    16
}

async fn sample(
    State(s): St,
    Path(name): Path<String>,
    h: HeaderMap,
    b: Bytes,
) -> ApiResult<Response> {
    let e = entry(&s, &name)?;
    let q: SampleReq = json_body(&b)?;
    let n = count("n", q.n, s.limits.max_samples, "--max-samples")?;
    if !e.caps.sample {
        return Err(cannot(&e, "does not sample"));
    }
    let cond = match (q.class, q.text) {
        (Some(_), Some(_)) => return Err(ApiError::field("text", "give class or text, not both")),
        (Some(k), None) => Some(Condition::Class(k)),
        (None, Some(t)) => Some(Condition::Text(t)),
        (None, None) => None,
    };
    let field = match cond {
        Some(Condition::Class(_)) => "class",
        Some(Condition::Text(_)) => "text",
        None => "model",
    };
    infer::check_condition(&e.run.model, cond.as_ref(), &name)
        .map_err(|err| ApiError::from_lib(field, err))?;
    let format = reply::format(q.format, &h);
    let seed = q.seed.unwrap_or(e.run.cfg.seed);
    let mean = q.mean;
    s.pool
        .run(move || {
            let mut r = rng::rng(seed);
            let x = infer::draw(&e.run.model, n, cond.as_ref(), mean, &mut r)
                .map_err(|err| ApiError::from_lib("model", err))?;
            let v = values(&e, &x)?;
            let meta = json!({"model": e.name, "seed": seed});
            reply::examples(&v, n, &e.run.shape(), grid_cols(n), format, meta)
        })
        .await
}

/// Examples in the model's units as data-unit values.
fn values(e: &Entry, x: &Tensor) -> ApiResult<Vec<f32>> {
    infer::to_data_values(x, &e.run.cfg).map_err(|err| ApiError::from_lib("model", err))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScoreParams {
    seed: Option<u64>,
    /// The name the rows go by: with a static binarization it fixes the draw, so `npy:FILE`
    /// gives exactly what `deepgen score --data npy:FILE` gives.
    source: Option<String>,
}

/// The examples of a request as a data set under the run's transforms, on the pool.
fn dataset(e: &Entry, ex: Examples, source: &str) -> ApiResult<(deepgen::data::Dataset, f64)> {
    infer::rows_dataset(&e.run, ex.x, &ex.shape, source)
        .map_err(|err| ApiError::from_lib("rows", err))
}

async fn score(State(s): St, Path(name): Path<String>, req: Request) -> ApiResult<Response> {
    let e = entry(&s, &name)?;
    if e.caps.density == "none" {
        return Err(cannot(&e, "has no density to score (exact or bound density models do)"));
    }
    let (ex, p) = body::read(req, &e.run.shape(), &s.limits).await?;
    let p: ScoreParams = body::params(p)?;
    let seed = p.seed.unwrap_or(e.run.cfg.seed);
    let source = p.source.unwrap_or_else(|| "request".into());
    s.pool
        .run(move || {
            let names = ex.names.clone();
            let (data, log_det) = dataset(&e, ex, &source)?;
            let scores = infer::score_rows(&e.run, &data, log_det, seed)
                .map_err(|err| ApiError::from_lib("rows", err))?;
            let n = scores.len() as f64;
            let nll = -scores.iter().map(|x| x.log_p_nats).sum::<f64>() / n;
            let bpd = scores.iter().map(|x| x.bits_per_dim).sum::<f64>() / n;
            let examples: Vec<Value> = names
                .iter()
                .zip(&scores)
                .map(|(nm, x)| {
                    let mut v = serde_json::to_value(x).unwrap_or(Value::Null);
                    v["name"] = json!(nm);
                    v
                })
                .collect();
            let threshold = e.run.threshold.as_ref().map(|t| {
                json!({"score": t.score.name(), "value": t.threshold, "target_fpr": t.target_fpr})
            });
            Ok(Json(json!({
                "model": e.name, "density": e.caps.density, "seed": seed, "n": scores.len(),
                "mean_nll_nats": nll, "mean_bits_per_dim": bpd, "examples": examples,
                "threshold": threshold,
            }))
            .into_response())
        })
        .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EncodeParams {
    source: Option<String>,
}

async fn encode(State(s): St, Path(name): Path<String>, req: Request) -> ApiResult<Response> {
    let e = entry(&s, &name)?;
    if e.caps.encode == "none" {
        return Err(cannot(&e, "has no encoder or feature layer"));
    }
    let (ex, p) = body::read(req, &e.run.shape(), &s.limits).await?;
    let p: EncodeParams = body::params(p)?;
    let source = p.source.unwrap_or_else(|| "request".into());
    s.pool
        .run(move || {
            let (data, _) = dataset(&e, ex, &source)?;
            let x = data
                .batch(&(0..data.n).collect::<Vec<_>>(), &e.run.model.device())
                .map_err(|err| ApiError::from_lib("rows", err))?;
            let z =
                infer::encode(&e.run.model, &x).map_err(|err| ApiError::from_lib("rows", err))?;
            let l = z.dim(1).map_err(lib_err)?;
            let v = z.flatten_all().and_then(|t| t.to_vec1::<f32>()).map_err(lib_err)?;
            let codes: Vec<&[f32]> = v.chunks(l.max(1)).collect();
            Ok(Json(json!({"model": e.name, "kind": e.caps.encode, "dim": l, "codes": codes}))
                .into_response())
        })
        .await
}

fn lib_err(e: candle_core::Error) -> ApiError {
    ApiError::from_lib("model", e.into())
}

/// Latent points given as JSON arrays of `l` numbers.
fn points(v: &[Vec<f64>], l: usize, field: &str) -> ApiResult<Vec<f32>> {
    let mut out = Vec::with_capacity(v.len() * l);
    for (i, p) in v.iter().enumerate() {
        if p.len() != l {
            return Err(ApiError::field(
                &format!("{field}[{i}]"),
                format!("{} values, but the latent space has {l}", p.len()),
            ));
        }
        if p.iter().any(|x| !x.is_finite()) {
            return Err(ApiError::field(&format!("{field}[{i}]"), "values must be finite"));
        }
        out.extend(p.iter().map(|&x| x as f32));
    }
    Ok(out)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DecodeReq {
    z: Vec<Vec<f64>>,
    class: Option<u32>,
    seed: Option<u64>,
    format: Option<Format>,
}

async fn decode(
    State(s): St,
    Path(name): Path<String>,
    h: HeaderMap,
    b: Bytes,
) -> ApiResult<Response> {
    let e = entry(&s, &name)?;
    let q: DecodeReq = json_body(&b)?;
    let Some((l, _)) = e.caps.latent else {
        return Err(cannot(&e, "has no latent space to decode from"));
    };
    let n = count("z", q.z.len(), s.limits.max_samples, "--max-samples")?;
    let z = points(&q.z, l, "z")?;
    let format = reply::format(q.format, &h);
    let seed = q.seed.unwrap_or(e.run.cfg.seed);
    s.pool
        .run(move || {
            let zt = Tensor::from_vec(z, (n, l), &e.run.model.device()).map_err(lib_err)?;
            let mut r = rng::derived(seed, "decode", 0);
            let x = infer::decode(&e.run.model, &zt, q.class, &mut r)
                .map_err(|err| ApiError::from_lib("class", err))?;
            let v = values(&e, &x)?;
            reply::examples(&v, n, &e.run.shape(), grid_cols(n), format, json!({"model": e.name}))
        })
        .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InterpolateReq {
    #[serde(default = "eight")]
    steps: usize,
    #[serde(default)]
    slerp: bool,
    /// The ends as latent points.
    from: Option<Vec<f64>>,
    to: Option<Vec<f64>>,
    /// The ends as two examples, encoded first (VAE, AAE).
    rows: Option<Value>,
    /// The ends as two captions (text-gan).
    text: Option<Vec<String>>,
    class: Option<u32>,
    seed: Option<u64>,
    format: Option<Format>,
}

fn eight() -> usize {
    8
}

async fn interpolate(
    State(s): St,
    Path(name): Path<String>,
    h: HeaderMap,
    b: Bytes,
) -> ApiResult<Response> {
    let e = entry(&s, &name)?;
    let q: InterpolateReq = json_body(&b)?;
    if q.steps < 2 {
        return Err(ApiError::field("steps", "must be at least 2"));
    }
    let steps = count("steps", q.steps, s.limits.max_steps, "at most 64")?;
    let format = reply::format(q.format, &h);
    let seed = q.seed.unwrap_or(e.run.cfg.seed);
    let shape = e.run.shape();
    if let Some(t) = &q.text {
        let [a, z] = &t[..] else {
            return Err(ApiError::field("text", "give exactly two captions, the ends"));
        };
        let (a, z) = (a.clone(), z.clone());
        if e.run.model.get::<TextGan>().is_none() {
            return Err(ApiError::field("text", "applies only to text-gan runs"));
        }
        return s
            .pool
            .run(move || {
                let g =
                    e.run.model.get::<TextGan>().ok_or_else(|| ApiError::field("text", "no"))?;
                let mut r = rng::derived(seed, "interpolate", 0);
                let x = g
                    .interpolate(&a, &z, 1, steps, &mut r)
                    .map_err(|err| ApiError::from_lib("text", err))?;
                let v = values(&e, &x)?;
                reply::examples(&v, steps, &shape, steps, format, json!({"model": e.name}))
            })
            .await;
    }
    let Some((l, _)) = e.caps.latent else {
        return Err(cannot(&e, "has no latent space to interpolate in"));
    };
    let ends = match (&q.from, &q.to, &q.rows) {
        (Some(a), Some(z), None) => Some(points(&[a.clone(), z.clone()], l, "from/to")?),
        (None, None, None) => None,
        (None, None, Some(_)) => None,
        _ => return Err(ApiError::field("from", "give from and to together, or rows, not both")),
    };
    let rows = match &q.rows {
        Some(r) => {
            if e.caps.encode != "latent" {
                return Err(ApiError::field("rows", "applies to runs with an encoder (vae, aae)"));
            }
            let ex = body::json_examples(r, &shape, &s.limits)?;
            if ex.n != 2 {
                return Err(ApiError::field("rows", format!("give 2 examples, not {}", ex.n)));
            }
            Some(ex)
        }
        None => None,
    };
    let (slerp, class) = (q.slerp, q.class);
    s.pool
        .run(move || {
            let m = &e.run.model;
            let mut r = rng::derived(seed, "interpolate", 0);
            let z = match (ends, rows) {
                (Some(z), _) => z,
                (None, Some(ex)) => {
                    let (data, _) = dataset(&e, ex, "request")?;
                    let x = data
                        .batch(&[0, 1], &e.run.model.device())
                        .map_err(|err| ApiError::from_lib("rows", err))?;
                    let z = infer::encode(m, &x).map_err(|err| ApiError::from_lib("rows", err))?;
                    z.flatten_all().and_then(|t| t.to_vec1::<f32>()).map_err(lib_err)?
                }
                (None, None) => prior_draws(m, 2, l, &mut r)?,
            };
            let clip = m.get::<Gan>().and_then(|g| g.cfg.noise.bound());
            let path = deepgen::run::latent_path(&z, l, steps, slerp, clip);
            let zt = Tensor::from_vec(path, (steps, l), &e.run.model.device()).map_err(lib_err)?;
            let x = infer::decode(m, &zt, class, &mut r)
                .map_err(|err| ApiError::from_lib("class", err))?;
            let v = values(&e, &x)?;
            reply::examples(&v, steps, &e.run.shape(), steps, format, json!({"model": e.name}))
        })
        .await
}

/// `k` draws of a latent prior (a GAN's noise; N(0, I) for the others).
fn prior_draws(
    m: &deepgen::models::Model,
    k: usize,
    l: usize,
    r: &mut rng::Rng,
) -> ApiResult<Vec<f32>> {
    let z = match m.get::<Gan>() {
        Some(g) => g.draw_z(k, r),
        None => rng::randn(r, &[k, l], &m.device()).map_err(Into::into),
    };
    let z = z.map_err(|err| ApiError::from_lib("model", err))?;
    z.flatten_all().and_then(|t| t.to_vec1::<f32>()).map_err(lib_err)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TranslateParams {
    #[serde(default)]
    reverse: bool,
    to: Option<String>,
    format: Option<Format>,
}

async fn translate(
    State(s): St,
    Path(name): Path<String>,
    h: HeaderMap,
    req: Request,
) -> ApiResult<Response> {
    let e = entry(&s, &name)?;
    let shape = match e.run.model.as_translator() {
        Some(t) => t.image_shape().to_vec(),
        None => return Err(cannot(&e, "does not translate (cyclegan and stargan runs do)")),
    };
    let (ex, p) = body::read(req, &shape, &s.limits).await?;
    let p: TranslateParams = body::params(p)?;
    let changes = {
        let t =
            e.run.model.as_translator().ok_or_else(|| ApiError::field("model", "no translator"))?;
        let c = deepgen::run::translate::check_direction(t, &e.run.cfg, p.reverse, p.to.as_deref())
            .map_err(|err| ApiError::from_lib(if p.reverse { "reverse" } else { "to" }, err))?;
        if matches!(t.domains(), deepgen::models::Domains::Attributes(_)) && c.is_none() {
            return Err(ApiError::field(
                "to",
                "missing: give the target attributes (e.g. thick,red)",
            ));
        }
        c
    };
    let format = reply::format(p.format, &h);
    s.pool
        .run(move || {
            let m = &e.run.model;
            let t = m.as_translator().ok_or_else(|| ApiError::field("model", "no translator"))?;
            let n = ex.n;
            let mut d = deepgen::data::Dataset::new("request", ex.x, shape.clone(), None)
                .map_err(|err| ApiError::from_lib("rows", err))?;
            let (data, _) = deepgen::run::apply_transforms(&mut d, &e.run.cfg, false)
                .map_err(|err| ApiError::from_lib("rows", err))?;
            let idx: Vec<usize> = (0..n).collect();
            let x = data
                .batch(&idx, &e.run.model.device())
                .map_err(|err| ApiError::from_lib("rows", err))?;
            let (y, back) = deepgen::run::translate::translate_batch(
                m,
                t,
                &data,
                &x,
                &idx,
                p.reverse,
                changes.as_deref(),
            )
            .map_err(|err| ApiError::from_lib("rows", err))?;
            let meta = json!({"model": e.name});
            if format == Format::Png {
                // One row per input: input, translation, reconstruction.
                let grid = Tensor::stack(&[&x, &y, &back], 1)
                    .and_then(|g| g.flatten_to(1))
                    .map_err(lib_err)?;
                let v = values(&e, &grid)?;
                return reply::examples(&v, 3 * n, &shape, 3, format, meta);
            }
            let v = values(&e, &y)?;
            reply::examples(&v, n, &shape, grid_cols(n), format, meta)
        })
        .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CompleteParams {
    keep: String,
    #[serde(default = "one")]
    samples: usize,
    seed: Option<u64>,
    format: Option<Format>,
}

fn one() -> usize {
    1
}

async fn complete(
    State(s): St,
    Path(name): Path<String>,
    h: HeaderMap,
    req: Request,
) -> ApiResult<Response> {
    let e = entry(&s, &name)?;
    if !e.caps.complete {
        return Err(cannot(&e, "cannot complete examples (autoregressive runs can)"));
    }
    let (ex, p) = body::read(req, &e.run.shape(), &s.limits).await?;
    let p: CompleteParams = body::params(p)?;
    // A client names a half, never a file on the server's disk.
    if !["top-half", "bottom-half", "left-half", "right-half"].contains(&p.keep.as_str()) {
        return Err(ApiError::field("keep", "top-half, bottom-half, left-half or right-half"));
    }
    let samples = count("samples", p.samples, s.limits.max_samples, "--max-samples")?;
    count("samples", samples * ex.n, s.limits.max_samples, "--max-samples: examples x samples")?;
    let format = reply::format(p.format, &h);
    let seed = p.seed.unwrap_or(e.run.cfg.seed);
    s.pool
        .run(move || {
            let (data, _) = dataset(&e, ex, "request")?;
            let keep = deepgen::run::Keep::parse(&p.keep, &data.shape)
                .map_err(|err| ApiError::from_lib("keep", err))?;
            let mut r = rng::derived(seed, "complete", 0);
            let (_, _, done, lps) = deepgen::run::complete(
                &e.run.model,
                &e.run.cfg,
                &data,
                &keep,
                data.n,
                samples,
                &mut r,
            )
            .map_err(|err| ApiError::from_lib("rows", err))?;
            let n = done.dim(0).map_err(lib_err)?;
            let v = done.flatten_all().and_then(|t| t.to_vec1::<f32>()).map_err(lib_err)?;
            let meta = json!({"model": e.name, "seed": seed, "log_p_nats": lps});
            reply::examples(&v, n, &data.shape, samples, format, meta)
        })
        .await
}

/// The run's training curves: `metrics.jsonl` as JSON, thinned to about 2,000 step lines
/// (every validation, checkpoint and evaluation line kept).
async fn metrics(State(s): St, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    let e = entry(&s, &name)?;
    let lines = e.run.dir.metrics().map_err(|err| ApiError::from_lib("model", err))?;
    let steps = lines.iter().filter(|v| v["loss"].is_number()).count();
    let every = steps.div_ceil(2000).max(1);
    let mut k = 0;
    let kept: Vec<&Value> = lines
        .iter()
        .filter(|v| {
            if !v["loss"].is_number() {
                return true;
            }
            k += 1;
            (k - 1) % every == 0
        })
        .collect();
    Ok(Json(json!({"model": e.name, "every": every, "lines": kept})))
}

/// The run's evaluation report (`deepgen eval` writes `RUN/report/report.md`).
async fn report(State(s): St, Path(name): Path<String>) -> ApiResult<Response> {
    let e = entry(&s, &name)?;
    let p = e.run.dir.file("report/report.md");
    match std::fs::read_to_string(&p) {
        Ok(t) => Ok(([(axum::http::header::CONTENT_TYPE, "text/markdown; charset=utf-8")], t)
            .into_response()),
        Err(_) => Err(ApiError::not_found(format!(
            "{name}: no report yet (write one with deepgen eval {})",
            e.run.path.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_bounded_on_both_sides() {
        assert!(count("n", 0, 10, "--max-samples").is_err());
        assert!(count("n", 11, 10, "--max-samples")
            .unwrap_err()
            .message
            .contains("more than the 10"));
        assert_eq!(count("n", 10, 10, "--max-samples").unwrap(), 10);
    }

    #[test]
    fn an_empty_body_is_an_empty_object_and_bad_json_names_the_body() {
        let q: SampleReq = json_body(&Bytes::from_static(b" ")).unwrap();
        assert_eq!(q.n, 16);
        let e = json_body::<SampleReq>(&Bytes::from_static(b"{\"n\": ")).err().unwrap();
        assert!(e.message.starts_with("body: malformed JSON"), "{}", e.message);
        let e = json_body::<SampleReq>(&Bytes::from_static(b"{\"clas\": 3}")).err().unwrap();
        assert!(e.message.contains("unknown field `clas`"), "{}", e.message);
    }

    #[test]
    fn latent_points_of_the_wrong_size_are_named() {
        let e = points(&[vec![0.0; 3], vec![0.0; 2]], 3, "z").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("z[1]"));
    }
}
