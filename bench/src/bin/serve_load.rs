//! A bounded load test of an HTTP service on loopback (bench/serve.sh): C clients, each sending
//! one request after another for T seconds (keep-alive connections), with the latency of every
//! request, the errors (a transport failure or a status other than 200), and the resident
//! memory of the server process sampled every 100 ms. Prints one JSON line.
//!
//! serve_load URL --body FILE --ctype TYPE [--clients C] [--seconds T] [--pid PID]

use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

/// Resident set size of `pid` in MiB, from /proc.
fn rss_mib(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(url), Some(body), Some(ctype)) =
        (args.get(1).cloned(), arg(&args, "--body"), arg(&args, "--ctype"))
    else {
        eprintln!("usage: serve_load URL --body FILE --ctype TYPE [--clients C] [--seconds T] [--pid PID]");
        std::process::exit(2);
    };
    let clients: usize = arg(&args, "--clients").and_then(|s| s.parse().ok()).unwrap_or(8);
    let seconds: f64 = arg(&args, "--seconds").and_then(|s| s.parse().ok()).unwrap_or(10.0);
    let pid: Option<u32> = arg(&args, "--pid").and_then(|s| s.parse().ok());
    let body = bytes::Bytes::from(std::fs::read(&body).unwrap_or_else(|e| {
        eprintln!("{body}: {e}");
        std::process::exit(2)
    }));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build();
    let rt = rt.unwrap_or_else(|e| {
        eprintln!("cannot start tokio: {e}");
        std::process::exit(2)
    });
    let out = rt.block_on(async move {
        let client: Client<_, Full<bytes::Bytes>> =
            Client::builder(TokioExecutor::new()).build_http();
        let end = Instant::now() + Duration::from_secs_f64(seconds);
        let rss0 = pid.and_then(rss_mib);
        let sampler = tokio::spawn(async move {
            let mut max: f64 = 0.0;
            let mut last = None;
            while Instant::now() < end {
                if let Some(r) = pid.and_then(rss_mib) {
                    max = max.max(r);
                    last = Some(r);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (max, last)
        });
        let mut tasks = vec![];
        for _ in 0..clients {
            let (client, url, body, ctype) =
                (client.clone(), url.clone(), body.clone(), ctype.clone());
            tasks.push(tokio::spawn(async move {
                let (mut lat, mut errors) = (vec![], 0usize);
                while Instant::now() < end {
                    let req = http::Request::post(&url)
                        .header("content-type", &ctype)
                        .body(Full::new(body.clone()));
                    let Ok(req) = req else {
                        errors += 1;
                        break;
                    };
                    let t0 = Instant::now();
                    match client.request(req).await {
                        Ok(r) => {
                            let ok = r.status() == 200;
                            let got = r.into_body().collect().await.is_ok();
                            if ok && got {
                                lat.push(t0.elapsed().as_secs_f64() * 1e3);
                            } else {
                                errors += 1;
                            }
                        }
                        Err(_) => errors += 1,
                    }
                }
                (lat, errors)
            }));
        }
        let (mut lat, mut errors) = (vec![], 0);
        for t in tasks {
            if let Ok((l, e)) = t.await {
                lat.extend(l);
                errors += e;
            }
        }
        let (rss_max, rss_end) = sampler.await.unwrap_or((f64::NAN, None));
        lat.sort_by(|a, b| a.total_cmp(b));
        serde_json::json!({
            "url": url, "clients": clients, "seconds": seconds, "requests": lat.len(),
            "errors": errors, "rps": lat.len() as f64 / seconds,
            "p50_ms": percentile(&lat, 0.5), "p99_ms": percentile(&lat, 0.99),
            "rss_start_mib": rss0, "rss_max_mib": rss_max, "rss_end_mib": rss_end,
        })
    });
    println!("{out}");
}
