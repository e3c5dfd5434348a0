//! The API in process (tower's `oneshot` on the router): every endpoint against the library
//! calls it wraps, every body form agreeing, and every bad request answered with a clear 4xx
//! while the service goes on serving.

mod common;

use axum::body::{to_bytes, Body};
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use deepgen::run::infer::{self, Loaded};
use serde_json::{json, Value};
use tower::ServiceExt;

use common::{digits, options, png, runs};

fn app() -> Router {
    deepgen_serve::app(&options()).unwrap().1
}

struct Reply {
    status: StatusCode,
    ctype: String,
    retry_after: Option<String>,
    bytes: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.bytes)))
    }
}

async fn call(app: &Router, method: Method, path: &str, ctype: &str, body: Vec<u8>) -> Reply {
    let mut req = Request::builder().method(method).uri(path);
    if !ctype.is_empty() {
        req = req.header(header::CONTENT_TYPE, ctype);
    }
    let r = app.clone().oneshot(req.body(Body::from(body)).unwrap()).await.unwrap();
    let status = r.status();
    let h = r.headers().clone();
    let get = |k: header::HeaderName| h.get(k).map(|v| v.to_str().unwrap().to_string());
    let bytes = to_bytes(r.into_body(), usize::MAX).await.unwrap().to_vec();
    Reply {
        status,
        ctype: get(header::CONTENT_TYPE).unwrap_or_default(),
        retry_after: get(header::RETRY_AFTER),
        bytes,
    }
}

async fn post(app: &Router, path: &str, body: Value) -> Reply {
    call(app, Method::POST, path, "application/json", body.to_string().into_bytes()).await
}

async fn get(app: &Router, path: &str) -> Reply {
    call(app, Method::GET, path, "", vec![]).await
}

fn floats(v: &Value) -> Vec<f32> {
    let mut out = vec![];
    fn walk(v: &Value, out: &mut Vec<f32>) {
        match v {
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            Value::Number(n) => out.push(n.as_f64().unwrap() as f32),
            _ => panic!("not a number: {v}"),
        }
    }
    walk(v, &mut out);
    out
}

fn npy_values(b: &[u8]) -> (Vec<usize>, Vec<f32>) {
    let (s, v, _) = deepgen::data::npy::parse(b, std::path::Path::new("reply.npy")).unwrap();
    (s, v)
}

#[tokio::test]
async fn health_readiness_and_the_model_list() {
    let app = app();
    assert_eq!(get(&app, "/healthz").await.json()["status"], "ok");
    assert_eq!(get(&app, "/readyz").await.json()["models"], 3);
    let m = get(&app, "/v1/models").await.json();
    let names: Vec<&str> =
        m["models"].as_array().unwrap().iter().map(|x| x["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["vae", "nade", "cgan"]);
    let vae = &m["models"][0];
    assert_eq!(vae["family"], "vae");
    assert_eq!(vae["shape"], json!([1, 8, 8]));
    assert_eq!(vae["capabilities"]["density"], "bound");
    assert_eq!(vae["capabilities"]["latent"], json!([4, "normal"]));
    assert!(vae["threshold"]["score"].as_str().is_some(), "{vae}");
    assert_eq!(m["models"][1]["capabilities"]["complete"], true);
    assert_eq!(m["models"][2]["capabilities"]["classes"], 10);
    assert_eq!(m["models"][2]["capabilities"]["density"], "none");
    assert_eq!(get(&app, "/v1/models/nade").await.json()["family"], "nade");
}

#[tokio::test]
async fn samples_are_the_library_draw_for_the_seed_in_every_format() {
    let app = app();
    let l = Loaded::open(std::path::Path::new(&runs().run("vae"))).unwrap();
    let mut r = deepgen::rng::rng(7);
    let want =
        infer::to_data_values(&infer::draw(&l.model, 5, None, false, &mut r).unwrap(), &l.cfg)
            .unwrap();
    let j = post(&app, "/v1/models/vae/sample", json!({"n": 5, "seed": 7})).await;
    assert_eq!(j.status, StatusCode::OK);
    assert_eq!(floats(&j.json()["samples"]), want);
    assert_eq!(j.json()["seed"], 7);
    let n = post(&app, "/v1/models/vae/sample", json!({"n": 5, "seed": 7, "format": "npy"})).await;
    assert_eq!(n.ctype, "application/x-npy");
    assert_eq!(npy_values(&n.bytes), (vec![5, 1, 8, 8], want));
    let p = post(&app, "/v1/models/vae/sample", json!({"n": 5, "seed": 7, "format": "png"})).await;
    assert_eq!(p.ctype, "image/png");
    assert!(image::load_from_memory(&p.bytes).is_ok());
    // Another seed, other samples; no seed, the run's.
    let other = post(&app, "/v1/models/vae/sample", json!({"n": 5, "seed": 8})).await.json();
    assert_ne!(floats(&other["samples"]), floats(&j.json()["samples"]));
    assert_eq!(post(&app, "/v1/models/vae/sample", json!({})).await.json()["seed"], l.cfg.seed);
    assert_eq!(post(&app, "/v1/models/vae/sample", json!({})).await.json()["n"], 16);
}

#[tokio::test]
async fn a_conditional_gan_samples_the_class_asked_for() {
    let app = app();
    let l = Loaded::open(std::path::Path::new(&runs().run("cgan"))).unwrap();
    let mut r = deepgen::rng::rng(3);
    let cond = infer::Condition::Class(4);
    let want = infer::draw(&l.model, 6, Some(&cond), false, &mut r).unwrap();
    let want = infer::to_data_values(&want, &l.cfg).unwrap();
    let got = post(&app, "/v1/models/cgan/sample", json!({"n": 6, "seed": 3, "class": 4})).await;
    assert_eq!(floats(&got.json()["samples"]), want);
    let bad = post(&app, "/v1/models/cgan/sample", json!({"class": 10})).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.json()["field"], "class");
    assert!(bad.json()["error"].as_str().unwrap().contains("classes 0..9"), "{}", bad.json());
    let text = post(&app, "/v1/models/vae/sample", json!({"text": "a thin 3"})).await;
    assert_eq!(text.json()["field"], "text");
}

/// JSON rows, an NPY, single PNGs and a multipart form of PNGs give one score per example, the
/// library's, with the saved threshold's flags.
#[tokio::test]
async fn every_body_form_scores_alike_and_flags_with_the_saved_threshold() {
    let app = app();
    // PNG holds 8-bit grey levels: the rows are quantised alike so that all forms carry the
    // same values.
    let rows: Vec<Vec<f32>> = digits(3)
        .into_iter()
        .map(|r| r.iter().map(|x| (x * 255.0).round() / 255.0).collect())
        .collect();
    let j = post(&app, "/v1/models/vae/score", json!({"rows": rows, "seed": 1})).await;
    assert_eq!(j.status, StatusCode::OK, "{}", String::from_utf8_lossy(&j.bytes));
    let j = j.json();
    let lp = |v: &Value| -> Vec<f64> {
        v["examples"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["log_p_nats"].as_f64().unwrap())
            .collect()
    };
    let want = lp(&j);
    assert_eq!(want.len(), 3);
    assert!(want.iter().all(|x| x.is_finite() && *x < 0.0));
    let l = Loaded::open(std::path::Path::new(&runs().run("vae"))).unwrap();
    let flat: Vec<f32> = rows.concat();
    let (d, ld) = infer::rows_dataset(&l, flat.clone(), &[1, 8, 8], "request").unwrap();
    let lib = infer::score_rows(&l, &d, ld, 1).unwrap();
    assert_eq!(lib.iter().map(|s| s.log_p_nats).collect::<Vec<_>>(), want);
    let t = l.threshold.as_ref().unwrap().threshold;
    for (x, s) in j["examples"].as_array().unwrap().iter().zip(&lib) {
        assert_eq!(x["anomalous"], json!(s.anomaly_score.unwrap() > t));
    }
    assert_eq!(j["threshold"]["value"], json!(t));

    let npy = deepgen::data::npy::encode_f32(&[3, 64], &flat);
    let n = call(&app, Method::POST, "/v1/models/vae/score?seed=1", "application/x-npy", npy).await;
    assert_eq!(lp(&n.json()), want);
    // The bound's importance draws depend on the batch: one example against one example.
    let p = call(&app, Method::POST, "/v1/models/vae/score?seed=1", "image/png", png(&rows[1], 8))
        .await;
    let one = post(&app, "/v1/models/vae/score", json!({"rows": [rows[1]], "seed": 1})).await;
    assert_eq!(lp(&p.json()), lp(&one.json()));

    let boundary = "deepgenboundary";
    let mut form = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        form.extend(format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"d{i}.png\"\r\n\
            Content-Type: image/png\r\n\r\n"
        ).bytes());
        form.extend(png(r, 8));
        form.extend(b"\r\n");
    }
    form.extend(format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"seed\"\r\n\r\n1\r\n--{boundary}--\r\n"
    ).bytes());
    let ctype = format!("multipart/form-data; boundary={boundary}");
    let m = call(&app, Method::POST, "/v1/models/vae/score", &ctype, form).await;
    assert_eq!(m.status, StatusCode::OK, "{}", String::from_utf8_lossy(&m.bytes));
    assert_eq!(lp(&m.json()), want);
    assert_eq!(m.json()["examples"][2]["name"], "d2.png");
}

#[tokio::test]
async fn encode_decode_and_interpolate_move_through_the_latent_space() {
    let app = app();
    let rows = digits(2);
    let e = post(&app, "/v1/models/vae/encode", json!({"rows": rows})).await.json();
    assert_eq!(e["kind"], "latent");
    assert_eq!(e["dim"], 4);
    let codes = e["codes"].clone();
    let d = post(&app, "/v1/models/vae/decode", json!({"z": codes, "format": "npy"})).await;
    let (shape, ends) = npy_values(&d.bytes);
    assert_eq!(shape, vec![2, 1, 8, 8]);
    let i = post(
        &app,
        "/v1/models/vae/interpolate",
        json!({"from": codes[0], "to": codes[1], "steps": 5, "format": "npy"}),
    )
    .await;
    let (shape, path) = npy_values(&i.bytes);
    assert_eq!(shape, vec![5, 1, 8, 8]);
    // The path starts and ends at the decoded ends.
    assert_eq!(&path[..64], &ends[..64]);
    assert_eq!(&path[4 * 64..], &ends[64..]);
    // The same ends from the examples themselves.
    let from_rows = post(
        &app,
        "/v1/models/vae/interpolate",
        json!({"rows": rows, "steps": 5, "format": "npy"}),
    )
    .await;
    assert_eq!(npy_values(&from_rows.bytes).1, path);
    let gan = post(&app, "/v1/models/cgan/interpolate", json!({"steps": 3, "class": 2})).await;
    assert_eq!(gan.json()["n"], 3);
}

#[tokio::test]
async fn an_autoregressive_run_completes_the_unknown_half() {
    let app = app();
    let rows: Vec<Vec<f32>> =
        digits(2).into_iter().map(|r| r.iter().map(|x| f32::from(*x > 0.5)).collect()).collect();
    let c = post(
        &app,
        "/v1/models/nade/complete",
        json!({"rows": rows, "keep": "top-half", "samples": 3, "seed": 2}),
    )
    .await;
    assert_eq!(c.status, StatusCode::OK, "{}", String::from_utf8_lossy(&c.bytes));
    let c = c.json();
    assert_eq!(c["n"], 6);
    let out = floats(&c["samples"]);
    for k in 0..6 {
        assert_eq!(&out[k * 64..k * 64 + 32], &rows[k / 3][..32], "completion {k} kept its top");
    }
    assert_eq!(c["log_p_nats"].as_array().unwrap().len(), 6);
}

/// Each bad request: its status, the field it names, and a one-line message; the service
/// answers the next good request as before.
/// path, content type, body, status, field, part of the message.
type Case<'a> = (&'a str, &'a str, Vec<u8>, StatusCode, Option<&'a str>, &'a str);

#[tokio::test]
async fn bad_requests_get_a_clear_4xx_and_leave_the_service_serving() {
    let mut o = options();
    o.max_body = 64 * 1024;
    o.max_image_pixels = 32 * 32;
    o.max_rows = 4;
    let app = deepgen_serve::app(&o).unwrap().1;
    let row = vec![0.5f32; 64];
    let j = |v: Value| v.to_string().into_bytes();
    let big_png = png(&vec![0.5; 40 * 40], 40);
    let mut nan = deepgen::data::npy::encode_f32(&[1, 64], &row);
    let last = nan.len() - 4;
    nan[last..].copy_from_slice(&f32::NAN.to_le_bytes());
    let cases: Vec<Case> = vec![
        (
            "/v1/models/nope/sample",
            "application/json",
            j(json!({})),
            StatusCode::NOT_FOUND,
            None,
            "unknown model `nope`",
        ),
        (
            "/v1/models/vae/sample",
            "application/json",
            b"{\"n\": ".to_vec(),
            StatusCode::BAD_REQUEST,
            Some("body"),
            "malformed JSON",
        ),
        (
            "/v1/models/vae/sample",
            "application/json",
            j(json!({"m": 3})),
            StatusCode::BAD_REQUEST,
            Some("body"),
            "unknown field `m`",
        ),
        (
            "/v1/models/vae/sample",
            "application/json",
            j(json!({"n": 0})),
            StatusCode::BAD_REQUEST,
            Some("n"),
            "at least 1",
        ),
        (
            "/v1/models/vae/sample",
            "application/json",
            j(json!({"n": 100000})),
            StatusCode::BAD_REQUEST,
            Some("n"),
            "more than the 256",
        ),
        (
            "/v1/models/vae/sample",
            "application/json",
            j(json!({"n": "many"})),
            StatusCode::BAD_REQUEST,
            Some("body"),
            "invalid type",
        ),
        (
            "/v1/models/cgan/score",
            "application/json",
            j(json!({"rows": [row]})),
            StatusCode::BAD_REQUEST,
            Some("model"),
            "no density",
        ),
        (
            "/v1/models/vae/score",
            "application/json",
            j(json!({"rows": [[1, 2, 3]]})),
            StatusCode::BAD_REQUEST,
            Some("rows[0]"),
            "3 values",
        ),
        (
            "/v1/models/vae/score",
            "application/json",
            j(json!({"rows": [["a"]]})),
            StatusCode::BAD_REQUEST,
            Some("rows[0]"),
            "expected numbers",
        ),
        (
            "/v1/models/vae/score",
            "application/json",
            j(json!({"rows": []})),
            StatusCode::BAD_REQUEST,
            Some("rows"),
            "no examples",
        ),
        (
            "/v1/models/vae/score",
            "application/json",
            j(json!({"seed": 1})),
            StatusCode::BAD_REQUEST,
            Some("rows"),
            "missing",
        ),
        (
            "/v1/models/vae/score",
            "application/json",
            j(json!({"rows": vec![row.clone(); 5]})),
            StatusCode::PAYLOAD_TOO_LARGE,
            Some("rows"),
            "more than the 4",
        ),
        (
            "/v1/models/vae/score",
            "application/json",
            j(json!({"rows": vec![row.clone(); 400]})),
            StatusCode::PAYLOAD_TOO_LARGE,
            Some("body"),
            "length limit",
        ),
        (
            "/v1/models/vae/score",
            "text/plain",
            b"hello".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            None,
            "content type",
        ),
        (
            "/v1/models/vae/score",
            "image/png",
            b"not a png".to_vec(),
            StatusCode::BAD_REQUEST,
            Some("body.png"),
            "cannot decode PNG",
        ),
        (
            "/v1/models/vae/score",
            "image/png",
            big_png,
            StatusCode::PAYLOAD_TOO_LARGE,
            Some("body.png"),
            "more than the 1024",
        ),
        (
            "/v1/models/vae/score",
            "image/png",
            png(&[0.5; 100], 10),
            StatusCode::BAD_REQUEST,
            Some("body.png"),
            "takes 8x8",
        ),
        (
            "/v1/models/vae/score",
            "application/x-npy",
            nan,
            StatusCode::BAD_REQUEST,
            Some("body.npy"),
            "not finite",
        ),
        (
            "/v1/models/vae/score",
            "application/x-npy",
            b"garbage".to_vec(),
            StatusCode::BAD_REQUEST,
            Some("body.npy"),
            "",
        ),
        (
            "/v1/models/vae/decode",
            "application/json",
            j(json!({"z": [[0, 0]]})),
            StatusCode::BAD_REQUEST,
            Some("z[0]"),
            "latent space has 4",
        ),
        (
            "/v1/models/nade/decode",
            "application/json",
            j(json!({"z": [[0]]})),
            StatusCode::BAD_REQUEST,
            Some("model"),
            "no latent space",
        ),
        (
            "/v1/models/vae/interpolate",
            "application/json",
            j(json!({"steps": 1})),
            StatusCode::BAD_REQUEST,
            Some("steps"),
            "at least 2",
        ),
        (
            "/v1/models/vae/translate",
            "application/json",
            j(json!({"rows": [row]})),
            StatusCode::BAD_REQUEST,
            Some("model"),
            "does not translate",
        ),
        (
            "/v1/models/nade/complete",
            "application/json",
            j(json!({"rows": [row], "keep": "/etc/passwd"})),
            StatusCode::BAD_REQUEST,
            Some("keep"),
            "top-half",
        ),
        (
            "/v1/models/vae/complete",
            "application/json",
            j(json!({"rows": [row], "keep": "top-half"})),
            StatusCode::BAD_REQUEST,
            Some("model"),
            "cannot complete",
        ),
    ];
    for (path, ctype, body, status, field, want) in cases {
        let r = call(&app, Method::POST, path, ctype, body).await;
        let v = r.json();
        assert_eq!(r.status, status, "{path} {ctype}: {v}");
        assert_eq!(v["field"].as_str(), field, "{path}: {v}");
        let msg = v["error"].as_str().unwrap();
        assert!(msg.contains(want), "{path}: `{want}` not in `{msg}`");
        assert!(!msg.contains('\n'), "{path}: more than one line: {msg}");
        // Still serving.
        assert_eq!(get(&app, "/healthz").await.status, StatusCode::OK);
    }
    let ok = post(&app, "/v1/models/vae/sample", json!({"n": 2})).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(get(&app, "/v1/models/vae/nothing").await.status, StatusCode::NOT_FOUND);
}

/// Many requests at once give each the numbers it gives alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_give_the_numbers_of_sequential_ones() {
    let app = app();
    let mut alone = vec![];
    for seed in 0..8u64 {
        alone.push(post(&app, "/v1/models/vae/sample", json!({"n": 3, "seed": seed})).await.bytes);
    }
    let tasks: Vec<_> = (0..8u64)
        .map(|seed| {
            let app = app.clone();
            tokio::spawn(async move {
                post(&app, "/v1/models/vae/sample", json!({"n": 3, "seed": seed})).await.bytes
            })
        })
        .collect();
    for (seed, t) in tasks.into_iter().enumerate() {
        assert_eq!(t.await.unwrap(), alone[seed], "seed {seed}");
    }
}

#[tokio::test]
async fn the_page_and_the_training_curves_are_served() {
    let app = app();
    let page = get(&app, "/").await;
    assert!(page.ctype.starts_with("text/html"));
    let html = String::from_utf8(page.bytes).unwrap();
    assert!(html.contains("Latent explorer") && html.contains("/app.js"));
    assert!(get(&app, "/app.js").await.ctype.starts_with("text/javascript"));
    let m = get(&app, "/v1/models/vae/metrics").await.json();
    let lines = m["lines"].as_array().unwrap();
    assert!(lines.iter().filter(|l| l["loss"].is_number()).count() >= 40);
    let r = get(&app, "/v1/models/vae/report").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.json()["error"].as_str().unwrap().contains("deepgen eval"));
    assert!(r.retry_after.is_none());
}
