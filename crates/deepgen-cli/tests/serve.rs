//! `deepgen serve` as a user runs it: a process on a loopback socket, many clients at once
//! getting what `deepgen sample` and `deepgen score` give for the same seed, an access-log line
//! per request, and a clean stop on SIGTERM.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{fails, ok};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

type Http = Client<hyper_util::client::legacy::connect::HttpConnector, Full<bytes::Bytes>>;

async fn request(c: &Http, method: &str, url: &str, ctype: &str, body: Vec<u8>) -> (u16, Vec<u8>) {
    let req = http::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", ctype)
        .body(Full::new(bytes::Bytes::from(body)))
        .unwrap();
    let r = c.request(req).await.unwrap();
    let status = r.status().as_u16();
    (status, r.into_body().collect().await.unwrap().to_bytes().to_vec())
}

fn npy(b: &[u8]) -> (Vec<usize>, Vec<f32>) {
    let (s, v, _) = deepgen::data::npy::parse(b, std::path::Path::new("x.npy")).unwrap();
    (s, v)
}

#[test]
fn serve_over_a_socket_matches_the_cli_and_stops_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let train = [
        "train",
        "vae",
        "--data",
        "digits",
        "--steps",
        "30",
        "--hidden",
        "32",
        "--latent",
        "4",
        "--iw-samples",
        "8",
        "--out",
        "v",
    ];
    ok(d, &train);
    ok(d, &["sample", "v", "-n", "6", "--seed", "11", "--out", "s.npy"]);
    ok(d, &["score", "v", "--data", "npy:s.npy", "--seed", "5", "--out", "s.csv"]);
    let cli_samples = npy(&std::fs::read(d.join("s.npy")).unwrap());
    let cli_scores: Vec<f64> = std::fs::read_to_string(d.join("s.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
        .collect();

    let mut child = Command::new(env!("CARGO_BIN_EXE_deepgen"))
        .args(["serve", "v", "--addr", "127.0.0.1:0", "--device", "cpu"])
        .current_dir(d)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    // "deepgen serve: listening on http://127.0.0.1:PORT/ (loading the runs)"
    let addr = line.split("http://").nth(1).and_then(|r| r.split('/').next()).unwrap();
    let base = format!("http://{addr}");
    let mut stderr = child.stderr.take().unwrap();

    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build().unwrap();
    let requests = rt.block_on(async {
        let c: Http = Client::builder(TokioExecutor::new()).build_http();
        let t0 = Instant::now();
        loop {
            let (s, _) = request(&c, "GET", &format!("{base}/readyz"), "", vec![]).await;
            if s == 200 {
                break;
            }
            assert!(t0.elapsed() < Duration::from_secs(30), "never ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let body = std::fs::read(d.join("s.npy")).unwrap();
        let mut tasks = vec![];
        for k in 0..8 {
            let (c, base, body) = (c.clone(), base.clone(), body.clone());
            tasks.push(tokio::spawn(async move {
                if k % 2 == 0 {
                    let b = br#"{"n": 6, "seed": 11, "format": "npy"}"#.to_vec();
                    let url = format!("{base}/v1/models/v/sample");
                    (k, request(&c, "POST", &url, "application/json", b).await)
                } else {
                    let url = format!("{base}/v1/models/v/score?seed=5&source=npy:s.npy");
                    (k, request(&c, "POST", &url, "application/x-npy", body).await)
                }
            }));
        }
        for t in tasks {
            let (k, (status, bytes)) = t.await.unwrap();
            assert_eq!(status, 200, "request {k}: {}", String::from_utf8_lossy(&bytes));
            if k % 2 == 0 {
                assert_eq!(npy(&bytes), cli_samples, "request {k}: not the CLI's samples");
            } else {
                let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                let got: Vec<f64> = v["examples"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x["log_p_nats"].as_f64().unwrap())
                    .collect();
                assert_eq!(got, cli_scores, "request {k}: not the CLI's scores");
            }
        }
        // A bad request is a 4xx and the service goes on.
        let (s, b) = request(
            &c,
            "POST",
            &format!("{base}/v1/models/v/sample"),
            "application/json",
            b"{".to_vec(),
        )
        .await;
        assert_eq!(s, 400, "{}", String::from_utf8_lossy(&b));
        let (s, _) = request(&c, "GET", &format!("{base}/healthz"), "", vec![]).await;
        assert_eq!(s, 200);
        11
    });

    let t0 = Instant::now();
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "deepgen serve did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut log = String::new();
    stderr.read_to_string(&mut log).unwrap();
    assert!(status.success(), "exit {status:?}: {log}");
    assert!(log.contains("SIGTERM: finishing the requests in flight"), "{log}");
    let access: Vec<&str> = log.lines().filter(|l| l.contains("\"POST /v1/models/v/")).collect();
    assert_eq!(access.len(), 9, "one access-log line per POST: {log}");
    assert!(access.iter().all(|l| l.starts_with("127.0.0.1:") && l.ends_with(" ms")), "{log}");
    assert!(log.lines().filter(|l| l.contains("\"GET /readyz\"")).count() >= 1);
    assert!(requests > 0);
}

#[test]
fn serve_refuses_bad_runs_and_flags_in_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    fails(d, &["serve", "nope"], "nope");
    fails(d, &["serve", "x=nope", "--workers", "0"], "--workers must be at least 1");
    fails(d, &["serve", "bad name=nope"], "a run's name may hold");
    fails(d, &["serve", "nope", "--addr", "not-an-address"], "--addr not-an-address");
    // The device before any run is read.
    fails(d, &["serve", "nope", "--device", "tpu"], "unknown device");
    if !cfg!(feature = "cuda") {
        fails(d, &["serve", "nope", "--device", "cuda"], "this build has no CUDA support");
    }
}
