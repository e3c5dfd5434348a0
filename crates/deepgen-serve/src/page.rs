//! The web page: a sample gallery, a latent explorer, an anomaly tab and the run's training
//! curves and report. Plain HTML, CSS and JavaScript compiled into the binary (no build step,
//! nothing fetched from elsewhere); every picture and number comes from the JSON API.

use std::sync::Arc;

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::state::AppState;

const INDEX: &str = include_str!("../assets/index.html");
const APP: &str = include_str!("../assets/app.js");
const STYLE: &str = include_str!("../assets/style.css");

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(|| async { asset("text/html; charset=utf-8", INDEX) }))
        .route("/app.js", get(|| async { asset("text/javascript; charset=utf-8", APP) }))
        .route("/style.css", get(|| async { asset("text/css; charset=utf-8", STYLE) }))
}

fn asset(ctype: &'static str, body: &'static str) -> impl IntoResponse {
    ([(CONTENT_TYPE, ctype), (CACHE_CONTROL, "no-cache")], body)
}
