//! Structured errors: a status code and one line naming the field and the problem, as JSON
//! `{"error": "...", "field": "..."}`; 503s carry `Retry-After`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// The request field (or part) at fault, when one is.
    pub field: Option<String>,
    /// Seconds a client should wait before trying again (503).
    pub retry_after: Option<u64>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), field: None, retry_after: None }
    }
    /// 400: `field` is wrong; the message starts with the field's name (except for `model`,
    /// the run the URL names: its messages name the run).
    pub fn field(field: &str, message: impl std::fmt::Display) -> Self {
        let text =
            if field == "model" { message.to_string() } else { format!("{field}: {message}") };
        let mut e = Self::new(StatusCode::BAD_REQUEST, text);
        e.field = Some(field.to_string());
        e
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
    pub fn too_large(field: &str, message: impl std::fmt::Display) -> Self {
        let mut e = Self::field(field, message);
        e.status = StatusCode::PAYLOAD_TOO_LARGE;
        e
    }
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, message)
    }
    /// 503 with `Retry-After`.
    pub fn busy(message: impl Into<String>, retry_after: u64) -> Self {
        let mut e = Self::new(StatusCode::SERVICE_UNAVAILABLE, message);
        e.retry_after = Some(retry_after);
        e
    }
    /// A library error about `field`'s content: the caller's fault (400), unless it is the
    /// service's own (a file it cannot read, a tensor error: 500).
    pub fn from_lib(field: &str, e: deepgen::Error) -> Self {
        use deepgen::Error as E;
        match e {
            E::Config(_) | E::Shape(_) | E::BadFile { .. } => Self::field(field, e),
            E::TooLarge { .. } => Self::too_large(field, e),
            e => Self::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": self.message, "field": self.field});
        let mut r = (self.status, Json(body)).into_response();
        if let Some(s) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        r
    }
}

/// Rejections of axum's own extractors (malformed JSON, a wrong content type, a body over the
/// limit) in the same shape as every other error.
impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(r: axum::extract::rejection::JsonRejection) -> Self {
        let status = r.status();
        let mut e = Self::new(status, format!("body: {}", r.body_text()));
        e.field = Some("body".into());
        e
    }
}

impl From<axum::extract::rejection::BytesRejection> for ApiError {
    fn from(r: axum::extract::rejection::BytesRejection) -> Self {
        let mut e = Self::new(r.status(), format!("body: {}", r.body_text()));
        e.field = Some("body".into());
        e
    }
}

impl From<axum::extract::multipart::MultipartError> for ApiError {
    fn from(r: axum::extract::multipart::MultipartError) -> Self {
        let mut e = Self::new(r.status(), format!("body: {}", r.body_text()));
        e.field = Some("body".into());
        e
    }
}

impl From<axum::extract::multipart::MultipartRejection> for ApiError {
    fn from(r: axum::extract::multipart::MultipartRejection) -> Self {
        let mut e = Self::new(r.status(), format!("body: {}", r.body_text()));
        e.field = Some("body".into());
        e
    }
}
