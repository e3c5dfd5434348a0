//! The page in a real browser: Debian's headless Chromium, driven through ChromeDriver
//! (WebDriver) by fantoccini, against the service on a loopback socket. The page loads and
//! draws samples, a latent slider moved by the keyboard changes the picture to the decode of
//! the slider's point, a chosen file and two dropped files get the API's scores, and the
//! training tab draws the run's curve.
//!
//! It needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (packages chromium and
//! chromium-driver; `scripts/test.sh` installs them, or set CHROMIUM and CHROMEDRIVER). Without
//! them the test fails, unless DEEPGEN_SKIP_BROWSER=1 says to skip it.

mod common;

use std::net::TcpListener as StdListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{ClientBuilder, Locator};
use serde_json::{json, Value};

use common::{digits, options, png};

fn tool(env: &str, default: &str) -> Option<PathBuf> {
    let p = PathBuf::from(std::env::var(env).unwrap_or_else(|_| default.to_string()));
    p.is_file().then_some(p)
}

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Polls `script` (a JS expression) until it is truthy; returns its value.
async fn until(c: &fantoccini::Client, what: &str, script: &str) -> Value {
    let t0 = Instant::now();
    loop {
        let v = c.execute(&format!("return {script};"), vec![]).await.unwrap();
        let truthy = match &v {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::String(s) => !s.is_empty(),
            Value::Number(n) => n.as_f64() != Some(0.0),
            _ => true,
        };
        if truthy {
            return v;
        }
        if t0.elapsed() > Duration::from_secs(60) {
            let status = c
                .execute("return [...document.querySelectorAll('.status')].map(e => e.textContent).join(' | ');", vec![])
                .await
                .unwrap();
            panic!("timed out waiting for {what} ({script}); page status: {status}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn fnv(b: &[u8]) -> String {
    let mut h: u32 = 0x811c9dc5;
    for &x in b {
        h ^= x as u32;
        h = h.wrapping_mul(0x01000193);
    }
    format!("{h:x}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_works_in_a_real_browser() {
    let (Some(chromium), Some(chromedriver)) =
        (tool("CHROMIUM", "/usr/bin/chromium"), tool("CHROMEDRIVER", "/usr/bin/chromedriver"))
    else {
        if std::env::var("DEEPGEN_SKIP_BROWSER").as_deref() == Ok("1") {
            eprintln!("skipped: no chromium/chromedriver and DEEPGEN_SKIP_BROWSER=1");
            return;
        }
        panic!(
            "the browser test needs /usr/bin/chromium and /usr/bin/chromedriver (apt-get install \
            chromium chromium-driver; scripts/test.sh does), or DEEPGEN_SKIP_BROWSER=1 to skip"
        );
    };

    // The service on a loopback socket.
    let (state, app) = deepgen_serve::app(&options()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let port = free_port();
    let driver = Driver(
        Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let profile = tempfile::tempdir().unwrap();
    let args = vec![
        "--headless=new".to_string(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-dev-shm-usage".into(),
        "--disable-quic".into(),
        "--no-first-run".into(),
        "--disable-background-networking".into(),
        "--disable-component-update".into(),
        "--disable-sync".into(),
        "--window-size=1200,900".into(),
        format!("--user-data-dir={}", profile.path().display()),
    ];
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"binary": chromium.display().to_string(), "args": args}),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let url = format!("http://127.0.0.1:{port}");
    let t0 = Instant::now();
    let c = loop {
        match ClientBuilder::new(connector.clone()).capabilities(caps.clone()).connect(&url).await {
            Ok(c) => break c,
            Err(e) if t0.elapsed() < Duration::from_secs(30) => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => {
                panic!("cannot start a browser session through {}: {e}", chromedriver.display())
            }
        }
    };

    // The page loads, lists the runs and draws the first one's samples.
    c.goto(&format!("http://{addr}/")).await.unwrap();
    until(&c, "the page to be ready", "document.body.dataset.ready").await;
    let options = c.find_all(Locator::Css("#model option")).await.unwrap();
    assert_eq!(options.len(), 3);
    let width =
        until(&c, "the gallery picture", "document.getElementById('g-img').naturalWidth").await;
    assert!(width.as_f64().unwrap() > 8.0);
    let first = c.find(Locator::Id("g-img")).await.unwrap().attr("data-hash").await.unwrap();
    c.find(Locator::Id("g-reseed")).await.unwrap().click().await.unwrap();
    until(&c, "a reseeded gallery", "document.getElementById('g-img').dataset.version === '2'")
        .await;
    let second = c.find(Locator::Id("g-img")).await.unwrap().attr("data-hash").await.unwrap();
    assert_ne!(first, second, "reseeding drew the same picture");

    // The latent explorer: a slider moved with the keyboard changes the picture, and the
    // picture is the service's decode of the sliders' point.
    c.find(Locator::Css("button[data-tab=latent]")).await.unwrap().click().await.unwrap();
    until(&c, "the first decode", "document.getElementById('l-img').dataset.hash").await;
    let before = c.find(Locator::Id("l-img")).await.unwrap().attr("data-hash").await.unwrap();
    let slider = c.find(Locator::Id("z0")).await.unwrap();
    slider.click().await.unwrap();
    let right = "\u{E014}"; // WebDriver's ArrowRight
    slider.send_keys(&right.repeat(20)).await.unwrap();
    let script = format!(
        "document.getElementById('l-img').dataset.hash !== '{}' && !busy && !again",
        before.clone().unwrap()
    );
    until(&c, "the slider to change the picture", &script).await;
    let after = c.find(Locator::Id("l-img")).await.unwrap().attr("data-hash").await.unwrap();
    let z = c.execute("return z;", vec![]).await.unwrap();
    let e = state.entry("vae").unwrap();
    let want = {
        let body = json!({"z": [z], "format": "png"}).to_string();
        let r =
            post_over_socket(addr, "/v1/models/vae/decode", "application/json", body.into_bytes())
                .await;
        fnv(&r)
    };
    assert_eq!(after.as_deref(), Some(want.as_str()), "the picture is not the decode of z");
    assert_eq!(e.caps.latent.unwrap().0, 4);

    // The anomaly tab: a chosen file, then two dropped files, get the API's scores.
    c.find(Locator::Css("button[data-tab=anomaly]")).await.unwrap().click().await.unwrap();
    let rows = digits(2);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("digit.png");
    std::fs::write(&file, png(&rows[0], 8)).unwrap();
    let input = c.find(Locator::Id("a-files")).await.unwrap();
    input.send_keys(&file.display().to_string()).await.unwrap();
    until(
        &c,
        "the chosen file's score",
        "document.getElementById('a-table').dataset.count === '1'",
    )
    .await;
    let shown = c
        .execute("return Number(document.querySelector('#a-table tbody tr').dataset.logp);", vec![])
        .await
        .unwrap();
    let api = post_over_socket(addr, "/v1/models/vae/score", "image/png", png(&rows[0], 8)).await;
    let api: Value = serde_json::from_slice(&api).unwrap();
    assert_eq!(shown.as_f64(), api["examples"][0]["log_p_nats"].as_f64());
    let flag = c
        .find(Locator::Css("#a-table tbody tr td:last-child"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(flag == "anomalous" || flag == "normal", "flag cell: {flag}");

    let files: Vec<Vec<u8>> = rows.iter().map(|r| png(r, 8)).collect();
    c.execute(
        "const dt = new DataTransfer();
         arguments[0].forEach((b, i) => dt.items.add(new File([new Uint8Array(b)], 'drop' + i + '.png', {type: 'image/png'})));
         document.getElementById('drop').dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));",
        vec![json!(files)],
    )
    .await
    .unwrap();
    until(
        &c,
        "the dropped files' scores",
        "document.getElementById('a-table').dataset.count === '2'",
    )
    .await;
    let names = c
        .execute("return [...document.querySelectorAll('#a-table tbody tr td:first-child')].map(e => e.textContent);", vec![])
        .await
        .unwrap();
    assert_eq!(names, json!(["drop0.png", "drop1.png"]));
    let dropped = c
        .execute("return [...document.querySelectorAll('#a-table tbody tr')].map(e => Number(e.dataset.logp));", vec![])
        .await
        .unwrap();
    // The same two images as rows (PNG's 8-bit levels) in one request: the bound's draws depend
    // on the batch, so the pair is scored as the page sent it, together.
    let quantised: Vec<Vec<f32>> =
        rows.iter().map(|r| r.iter().map(|x| (x * 255.0).round() / 255.0).collect()).collect();
    let body = json!({"rows": quantised}).to_string().into_bytes();
    let api = post_over_socket(addr, "/v1/models/vae/score", "application/json", body).await;
    let api: Value = serde_json::from_slice(&api).unwrap();
    let want: Vec<Value> =
        api["examples"].as_array().unwrap().iter().map(|x| x["log_p_nats"].clone()).collect();
    assert_eq!(dropped, json!(want), "the dropped files' scores are the API's");

    // The training tab draws the run's curve.
    c.find(Locator::Css("button[data-tab=training]")).await.unwrap().click().await.unwrap();
    let points = until(
        &c,
        "the training curve",
        "Number(document.getElementById('t-loss').dataset.points || 0)",
    )
    .await;
    assert!(points.as_f64().unwrap() >= 40.0);

    c.close().await.unwrap();
    drop(driver);
}

/// A POST over the loopback socket with hyper's client (what the page's fetch does).
async fn post_over_socket(
    addr: std::net::SocketAddr,
    path: &str,
    ctype: &str,
    body: Vec<u8>,
) -> Vec<u8> {
    use http_body_util::BodyExt;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<axum::body::Bytes>>();
    let req = axum::http::Request::post(format!("http://{addr}{path}"))
        .header("content-type", ctype)
        .body(http_body_util::Full::new(axum::body::Bytes::from(body)))
        .unwrap();
    let r = client.request(req).await.unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.into_body().collect().await.unwrap().to_bytes().to_vec()
}
