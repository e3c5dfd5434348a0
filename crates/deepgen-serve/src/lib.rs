//! `deepgen serve`: trained runs behind an HTTP service and a web page, for programs that want
//! density scores and samples without Python.
//!
//! - axum on tokio; the runs are loaded once (after the socket is bound, so `/healthz` answers
//!   at once and `/readyz` says when they are ready) and shared by every request;
//! - inference runs off the async runtime through a bounded queue ([`pool`]): 503 with
//!   `Retry-After` when it is full, 504 past the request timeout;
//! - limits on samples per request, examples per request, body size and image size; every error
//!   is a status code and one line naming the field ([`error`]);
//! - one access-log line per request on stderr; SIGTERM and Ctrl-C stop accepting, let the
//!   requests in flight finish, then exit.
//!
//! The page ([`page`]) is served by the same binary, from files compiled in.

pub mod api;
pub mod body;
pub mod error;
pub mod page;
pub mod pool;
pub mod reply;
pub mod state;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, DefaultBodyLimit, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;

pub use state::AppState;

/// Everything `deepgen serve` takes; the defaults are the service's.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct ServeOptions {
    /// Run directories to serve, each named by its directory (or NAME=RUN).
    #[arg(required = true)]
    pub runs: Vec<String>,
    /// Address to listen on (port 0 picks a free port; the chosen address is printed).
    #[arg(long, default_value = DEFAULT.addr)]
    pub addr: String,
    /// Inference calls run at once.
    #[arg(long, default_value_t = DEFAULT.workers)]
    pub workers: usize,
    /// Calls that may wait for a worker; beyond them a request gets 503 with Retry-After.
    #[arg(long, default_value_t = DEFAULT.queue)]
    pub queue: usize,
    /// Most samples (or latent points, or completions) one request may ask for.
    #[arg(long, default_value_t = DEFAULT.max_samples)]
    pub max_samples: usize,
    /// Most examples one request may send.
    #[arg(long, default_value_t = DEFAULT.max_rows)]
    pub max_rows: usize,
    /// Largest request body, in bytes.
    #[arg(long, default_value_t = DEFAULT.max_body)]
    pub max_body: usize,
    /// Largest image a request may send, in pixels (checked from the PNG header).
    #[arg(long, default_value_t = DEFAULT.max_image_pixels)]
    pub max_image_pixels: u64,
    /// Seconds a request may wait and run before it gets 504.
    #[arg(long, default_value_t = DEFAULT.timeout)]
    pub timeout: f64,
    /// No access log.
    #[arg(long)]
    pub quiet: bool,
    /// Device for the models: cpu, cuda or cuda:N (a build with the cuda feature) [default:
    /// cpu].
    #[arg(long)]
    pub device: Option<String>,
}

/// The service's defaults, shared by the flags and [`ServeOptions::new`].
struct Defaults {
    addr: &'static str,
    workers: usize,
    queue: usize,
    max_samples: usize,
    max_rows: usize,
    max_body: usize,
    max_image_pixels: u64,
    timeout: f64,
}

const DEFAULT: Defaults = Defaults {
    addr: "127.0.0.1:8080",
    workers: 2,
    queue: 32,
    max_samples: 256,
    max_rows: 1024,
    max_body: 8 << 20,
    max_image_pixels: 1 << 20,
    timeout: 30.0,
};

impl ServeOptions {
    /// The options with their defaults, serving `runs`.
    pub fn new(runs: Vec<String>) -> Self {
        let d = DEFAULT;
        Self {
            runs,
            addr: d.addr.to_string(),
            workers: d.workers,
            queue: d.queue,
            max_samples: d.max_samples,
            max_rows: d.max_rows,
            max_body: d.max_body,
            max_image_pixels: d.max_image_pixels,
            timeout: d.timeout,
            quiet: false,
            device: None,
        }
    }

    pub fn check(&self) -> anyhow::Result<()> {
        let positive = [
            ("--workers", self.workers),
            ("--max-samples", self.max_samples),
            ("--max-rows", self.max_rows),
            ("--max-body", self.max_body),
        ];
        for (flag, v) in positive {
            if v == 0 {
                anyhow::bail!("{flag} must be at least 1");
            }
        }
        if self.max_image_pixels == 0 {
            anyhow::bail!("--max-image-pixels must be at least 1");
        }
        if !(self.timeout.is_finite() && self.timeout > 0.0) {
            anyhow::bail!("--timeout must be a positive number of seconds");
        }
        self.device()?;
        Ok(())
    }

    /// The device `--device` names (refused in one line before any run is read: a bad name, a
    /// build without CUDA, a missing GPU).
    pub fn device(&self) -> anyhow::Result<candle_core::Device> {
        Ok(deepgen::run::device(self.device.as_deref())?)
    }
}

/// The whole service: the API, the page, the body limit and the access log.
pub fn router(state: Arc<AppState>, access_log: bool) -> Router {
    let app = api::routes()
        .merge(page::routes())
        .layer(DefaultBodyLimit::max(state.limits.max_body))
        .with_state(state);
    if access_log {
        app.layer(middleware::from_fn(log_request))
    } else {
        app
    }
}

/// The service with its runs loaded (a program that embeds it, the tests): the state and the
/// router, no socket.
pub fn app(o: &ServeOptions) -> anyhow::Result<(Arc<AppState>, Router)> {
    o.check()?;
    let state = Arc::new(AppState::new(o));
    let _ = state.models.set(state::load(&o.runs, &o.device()?)?);
    Ok((state.clone(), router(state, !o.quiet)))
}

/// One line per request: client, method, path, status, body bytes, milliseconds.
async fn log_request(req: Request, next: Next) -> Response {
    let t0 = Instant::now();
    let client = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.to_string())
        .unwrap_or_else(|| "-".into());
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let r = next.run(req).await;
    let len = axum::body::HttpBody::size_hint(r.body())
        .exact()
        .map(|n| n.to_string())
        .unwrap_or_else(|| "-".into());
    eprintln!(
        "{client} \"{method} {path}\" {} {len} {:.1} ms",
        r.status().as_u16(),
        t0.elapsed().as_secs_f64() * 1e3
    );
    r
}

/// Serves `o.runs` until SIGTERM or Ctrl-C. `ready(addr)` is called once the socket is bound.
pub async fn serve(o: ServeOptions, ready: impl FnOnce(SocketAddr)) -> anyhow::Result<()> {
    o.check()?;
    let listener = tokio::net::TcpListener::bind(&o.addr)
        .await
        .map_err(|e| anyhow::anyhow!("--addr {}: cannot listen: {e}", o.addr))?;
    let addr = listener.local_addr()?;
    let state = Arc::new(AppState::new(&o));
    let app = router(state.clone(), !o.quiet);
    ready(addr);
    let (fail_tx, fail_rx) = tokio::sync::oneshot::channel::<String>();
    let specs = o.runs.clone();
    let dev = o.device()?;
    let loading = state.clone();
    tokio::task::spawn_blocking(move || match state::load(&specs, &dev) {
        Ok(m) => {
            let names: Vec<String> = m.iter().map(|e| e.name.clone()).collect();
            let _ = loading.models.set(m);
            eprintln!("deepgen serve: ready with {}", names.join(", "));
        }
        Err(e) => {
            let _ = fail_tx.send(e.to_string());
        }
    });
    let failed = Arc::new(std::sync::Mutex::new(None::<String>));
    let failed_w = failed.clone();
    let stop = async move {
        tokio::select! {
            why = shutdown_signal() => eprintln!("deepgen serve: {why}: finishing the requests in flight"),
            Ok(msg) = fail_rx => {
                if let Ok(mut f) = failed_w.lock() { *f = Some(msg); }
            }
        }
    };
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(stop)
        .await?;
    let failed = failed.lock().ok().and_then(|mut f| f.take());
    match failed {
        Some(msg) => Err(anyhow::anyhow!("{msg}")),
        None => Ok(()),
    }
}

/// SIGTERM or Ctrl-C, named.
async fn shutdown_signal() -> &'static str {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = ctrl_c => "Ctrl-C",
            },
            Err(_) => {
                ctrl_c.await;
                "Ctrl-C"
            }
        }
    }
    #[cfg(not(unix))]
    {
        ctrl_c.await;
        "Ctrl-C"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_library_defaults_are_the_flags_defaults() {
        use clap::{Args, FromArgMatches};
        let cmd = ServeOptions::augment_args(clap::Command::new("serve"));
        let m = cmd.try_get_matches_from(["serve", "a", "b=c"]).unwrap();
        let parsed = ServeOptions::from_arg_matches(&m).unwrap();
        assert_eq!(parsed, ServeOptions::new(vec!["a".into(), "b=c".into()]));
        assert!(parsed.check().is_ok());
        let mut bad = parsed.clone();
        bad.timeout = f64::NAN;
        assert!(bad.check().unwrap_err().to_string().contains("--timeout"));
    }
}
