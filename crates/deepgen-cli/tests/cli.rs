//! The `deepgen` binary end to end in a temporary directory, including every
//! bad input the foundation issue lists: each must exit 2 with one line on
//! stderr that names the problem, never a panic.

mod common;

use std::path::Path;

use common::{fails, ok};

fn metrics(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Every metric line as text (but the wall-clock `elapsed_s` lines): they must match exactly.
fn losses(m: &[serde_json::Value]) -> Vec<String> {
    m.iter().filter(|v| v.get("elapsed_s").is_none()).map(|v| v.to_string()).collect()
}

#[test]
fn nade_train_sample_score_info_and_exact_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let common = [
        "--data",
        "digits",
        "--hidden",
        "16",
        "--batch-size",
        "50",
        "--eval-every",
        "4",
        "--seed",
        "1",
    ];
    let mut args = vec!["train", "nade", "--steps", "12", "--out", "full"];
    args.extend(common);
    let out = ok(d, &args);
    assert!(out.contains("digits:test: 297 examples, mean NLL"), "{out}");
    assert!(out.contains("bits/dim (exact, static binarization with seed 1)"), "{out}");
    for f in [
        "config.toml",
        "model.safetensors",
        "optimizer-12.safetensors",
        "metrics.jsonl",
        "samples.png",
        "loss.png",
    ] {
        assert!(d.join("full").join(f).is_file(), "missing {f}");
    }
    let cfg = std::fs::read_to_string(d.join("full/config.toml")).unwrap();
    assert!(
        cfg.contains("seed = 1") && cfg.contains("kind = \"nade\"") && cfg.contains("hidden = 16"),
        "{cfg}"
    );

    // Interrupted at 8, then resumed to 12: identical metrics and weights.
    let mut args = vec!["train", "nade", "--steps", "8", "--out", "part"];
    args.extend(common);
    ok(d, &args);
    ok(d, &["train", "nade", "--resume", "part", "--steps", "12"]);
    // Step 8 is an evaluation step of both runs (every 4), so the logs must be identical.
    let (a, b) = (metrics(&d.join("full")), metrics(&d.join("part")));
    assert_eq!(losses(&a), losses(&b));
    // Same tensors and metadata (the file bytes differ: safetensors writes its metadata map in hash
    // order).
    let (ta, mut ma) = deepgen::run::read_safetensors(&d.join("full/model.safetensors")).unwrap();
    let (tb, mut mb) = deepgen::run::read_safetensors(&d.join("part/model.safetensors")).unwrap();
    // The metrics' length differs with the digits of the wall-clock times.
    ma.remove("metrics_bytes");
    mb.remove("metrics_bytes");
    assert_eq!(ma, mb);
    assert_eq!(ta.len(), 4);
    for (k, t) in &ta {
        let v = |t: &candle_core::Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(v(t), v(&tb[k]), "tensor {k} differs after resume");
    }

    // A run's config.toml alone reproduces it exactly.
    ok(d, &["train", "--config", "full/config.toml", "--out", "again"]);
    assert_eq!(losses(&metrics(&d.join("full"))), losses(&metrics(&d.join("again"))));

    // Samples.
    let out = ok(d, &["sample", "full", "-n", "16", "--out", "s.png"]);
    assert!(out.contains("wrote 16 samples"));
    let img = image::open(d.join("s.png")).unwrap();
    assert!(img.width() > 32 && img.height() > 32);
    ok(d, &["sample", "full", "-n", "5", "--out", "s.csv"]);
    let rows = std::fs::read_to_string(d.join("s.csv")).unwrap();
    assert_eq!(rows.lines().count(), 5);
    assert!(rows
        .lines()
        .all(|l| l.split(',').count() == 64 && l.split(',').all(|v| v == "0" || v == "1")));

    // Scores: header, one row per example, bits/dim consistent with nats.
    let out = ok(d, &["score", "full", "--data", "digits:test", "--out", "scores.csv"]);
    let csv = std::fs::read_to_string(d.join("scores.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("index,log_prob_nats,bits_per_dim"));
    let rows: Vec<Vec<f64>> =
        lines.map(|l| l.split(',').map(|v| v.parse().unwrap()).collect()).collect();
    assert_eq!(rows.len(), 297);
    let mean_nll = -rows.iter().map(|r| r[1]).sum::<f64>() / 297.0;
    for r in &rows {
        assert!((r[2] - (-r[1] / (64.0 * std::f64::consts::LN_2))).abs() < 1e-9);
    }
    assert!(out.contains(&format!("mean NLL {mean_nll:.3} nats")), "{out} vs {mean_nll}");
    // The score of the held-out set equals what training printed.
    let train_out = ok(d, &["score", "part", "--data", "digits:test"]);
    assert_eq!(out.trim(), train_out.trim());

    let info = ok(d, &["info", "full"]);
    assert!(
        info.contains("step:       12 of 12") && info.contains("W                    [16, 64]"),
        "{info}"
    );
    fails(d, &["train", "--resume", "full"], "already at step 12");
}

#[test]
fn vae_run_directory_has_everything() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let out = ok(
        d,
        &[
            "train",
            "vae",
            "--data",
            "digits",
            "--steps",
            "30",
            "--eval-every",
            "15",
            "--hidden",
            "32",
            "--latent",
            "4",
            "--iw-samples",
            "10",
            "--out",
            "v",
        ],
    );
    assert!(out.contains("importance-weighted bound, k=10"), "{out}");
    for f in [
        "config.toml",
        "model.safetensors",
        "optimizer-30.safetensors",
        "metrics.jsonl",
        "samples.png",
        "reconstructions.png",
        "loss.png",
    ] {
        assert!(d.join("v").join(f).is_file(), "missing {f}");
    }
    let m = metrics(&d.join("v"));
    assert!(
        m.iter().any(|v| v["recon"].is_number() && v["kl"].is_number()),
        "ELBO parts are not logged"
    );
    assert_eq!(m.iter().filter(|v| v["val_nll"].is_number()).count(), 2);
    // The seed is stored in the checkpoint's metadata.
    let bytes = std::fs::read(d.join("v/model.safetensors")).unwrap();
    let text = String::from_utf8_lossy(&bytes[..4096.min(bytes.len())]).to_string();
    assert!(text.contains("\"seed\":\"0\"") && text.contains("\"model\":\"vae\""), "{text}");
    let more = ok(d, &["score", "v", "--data", "digits:test", "--iw-samples", "50"]);
    assert!(more.contains("k=50"), "{more}");
    ok(d, &["sample", "v", "--mean", "-n", "9", "--out", "m.png"]);
    let models = ok(d, &["models"]);
    for name in ["bernoulli", "fvsbn", "nade", "vae"] {
        assert!(models.contains(name));
    }
    assert!(models.contains("W [500, 784]") && models.contains("2^784 - 1"), "{models}");
}

#[test]
fn bad_inputs_fail_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // A tiny valid run to point at.
    ok(d, &["train", "bernoulli", "--data", "digits", "--steps", "3", "--out", "b"]);

    // Missing file.
    fails(d, &["train", "nade", "--data", "idx:nowhere/train", "--steps", "2"], "nowhere/train");
    fails(d, &["train", "nade", "--data", "csv:missing.csv", "--steps", "2"], "missing.csv");
    // Truncated and wrong-magic IDX.
    let mut img = vec![0u8, 0, 8, 3, 0, 0, 0, 10, 0, 0, 0, 4, 0, 0, 0, 4];
    img.extend(vec![7u8; 100]);
    std::fs::write(d.join("t-images-idx3-ubyte"), &img).unwrap();
    fails(d, &["train", "nade", "--data", "idx:t", "--steps", "2"], "truncated IDX file");
    std::fs::write(d.join("w-images-idx3-ubyte"), b"\x89PNG\r\n\x1a\nrest").unwrap();
    fails(d, &["train", "nade", "--data", "idx:w", "--steps", "2"], "not an IDX file");
    // Mismatched sizes: a 64-pixel model scored on 784-pixel data.
    fails(
        d,
        &["score", "b", "--data", "mnist:test"],
        "784 values per example, the bernoulli model expects 64",
    );
    // A checkpoint of another model.
    ok(d, &["train", "fvsbn", "--data", "digits", "--steps", "2", "--out", "f"]);
    std::fs::copy(d.join("f/model.safetensors"), d.join("b/model.safetensors")).unwrap();
    fails(
        d,
        &["score", "b", "--data", "digits:test"],
        "config.toml is for a bernoulli model but model.safetensors holds a fvsbn",
    );
    std::fs::write(d.join("b/model.safetensors"), b"garbage").unwrap();
    fails(d, &["sample", "b"], "not a valid safetensors file");
    // Unknown model, zero and negative steps, bad flags.
    fails(d, &["train", "pixelgan", "--steps", "2"], "unknown model `pixelgan`");
    fails(d, &["train", "nade", "--steps", "0"], "--steps must be a positive integer, got 0");
    fails(d, &["train", "nade", "--steps", "-5"], "--steps must be a positive integer, got -5");
    fails(
        d,
        &["train", "nade", "--data", "digits", "--lr", "-1", "--steps", "2"],
        "--lr must be a positive number",
    );
    fails(
        d,
        &["train", "nade", "--data", "digits", "--binarize", "sometimes"],
        "unknown binarization",
    );
    fails(d, &["train", "--data", "imagenet"], "unknown data spec `imagenet`");
    fails(
        d,
        &["train", "nade", "--data", "digits", "--latent", "3"],
        "--latent does not apply to the nade model (it applies to: vae, gan",
    );
    fails(d, &["train", "nade", "--device", "tpu"], "unknown device");
    fails(d, &["train", "nade", "--device", "cuda:one"], "unknown device `cuda:one`");
    fails(d, &["sample", "f", "--device", "tpu"], "unknown device");
    fails(d, &["score", "f", "--data", "digits:test", "--device", "gpu"], "unknown device");
    if !cfg!(feature = "cuda") {
        fails(d, &["train", "nade", "--device", "cuda"], "this build has no CUDA support");
    }
    // The device is no part of a run: a resume may name one, and sample and score take one.
    ok(d, &["train", "--resume", "f", "--steps", "3", "--device", "cpu"]);
    ok(d, &["sample", "f", "-n", "4", "--device", "cpu", "--out", "f/four.png"]);
    ok(d, &["score", "f", "--data", "digits:test", "--device", "cpu"]);
    // Every command that runs a model takes --device, and refuses a bad one before any work.
    let uses: [&[&str]; 8] = [
        &["eval", "f"],
        &["detect", "f", "--anomalies", "digits:test+invert"],
        &["embed", "f", "--out", "f/e.npy"],
        &["probe", "f"],
        &["interpolate", "f"],
        &["complete", "f"],
        &["translate", "f", "--out", "f/t.png"],
        &["assemble", "f"],
    ];
    for u in uses {
        fails(d, &[u, &["--device", "tpu"]].concat(), "unknown device `tpu`");
    }
    ok(d, &["complete", "f", "-n", "2", "--samples", "1", "--device", "cpu", "--out", "f/c.png"]);
    ok(d, &["detect", "f", "--anomalies", "digits:test+invert", "--device", "cpu"]);
    ok(d, &["eval", "f", "--only", "density", "-n", "50", "--device", "cpu"]);
    fails(d, &["train", "--frobnicate"], "unexpected argument '--frobnicate'");
    fails(d, &["sample"], "required arguments were not provided");
    // Resume of a directory with no checkpoint, or none at all.
    std::fs::create_dir(d.join("empty")).unwrap();
    fails(d, &["train", "--resume", "empty"], "no checkpoint here (config.toml is missing)");
    fails(d, &["train", "--resume", "nothere"], "no such run directory");
    fails(d, &["train", "--resume", "f", "--lr", "0.1"], "--lr cannot be combined with --resume");
    fails(d, &["train", "nade", "--resume", "f", "--steps", "9"], "holds a fvsbn run, not nade");
    // Overwriting an existing run is refused.
    fails(
        d,
        &["train", "fvsbn", "--data", "digits", "--steps", "2", "--out", "f"],
        "already holds a run",
    );
    // NaN in the data.
    std::fs::write(d.join("nan.csv"), "1,2\n3,nan\n").unwrap();
    fails(
        d,
        &["train", "vae", "--data", "csv:nan.csv", "--steps", "2"],
        "nan.csv: line 2, column 2: value NaN is not finite",
    );
    // Binary models on real-valued data without binarization.
    std::fs::write(d.join("real.csv"), "0.1,0.2\n0.3,0.9\n").unwrap();
    fails(
        d,
        &["train", "nade", "--data", "csv:real.csv", "--binarize", "none", "--steps", "2"],
        "needs binary data",
    );
}

#[test]
fn non_finite_training_stops_and_keeps_the_last_good_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let rows: String = (0..64).map(|i| format!("{},{},{}\n", i % 7, (i * 3) % 11, i % 5)).collect();
    std::fs::write(d.join("r.csv"), rows).unwrap();
    fails(
        d,
        &[
            "train",
            "vae",
            "--data",
            "csv:r.csv",
            "--lr",
            "1e30",
            "--steps",
            "40",
            "--eval-every",
            "1",
            "--batch-size",
            "16",
            "--out",
            "nan",
        ],
        "non-finite loss at step",
    );
    // Whatever was saved before the blow-up still loads.
    let info = ok(d, &["info", "nan"]);
    assert!(info.contains("model:      vae"), "{info}");
}

#[test]
fn real_valued_csv_with_standardisation() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // Three correlated features in units of thousands, with a header row.
    let mut rows = String::from("a,b,c\n");
    for i in 0..200 {
        let t = (i as f64 * 0.37).sin();
        rows.push_str(&format!(
            "{},{},{}\n",
            1000.0 + 50.0 * t,
            2000.0 - 30.0 * t + (i % 7) as f64,
            (i % 5) as f64
        ));
    }
    std::fs::write(d.join("real.csv"), &rows).unwrap();
    ok(
        d,
        &[
            "train",
            "vae",
            "--data",
            "csv:real.csv",
            "--standardize",
            "--steps",
            "40",
            "--batch-size",
            "32",
            "--hidden",
            "16",
            "--latent",
            "2",
            "--out",
            "g",
        ],
    );
    let cfg = std::fs::read_to_string(d.join("g/config.toml")).unwrap();
    assert!(cfg.contains("likelihood = \"gaussian\"") && cfg.contains("mean = ["), "{cfg}");
    assert!(d.join("g/samples.csv").is_file());
    let out = ok(d, &["score", "g", "--data", "csv:real.csv"]);
    // The density is of the original units: log p includes -sum(ln std) with std ~ 35, ~ 21
    // and ~ 1.4, about -7 nats, so the NLL is well above the standardised one (a few nats).
    let nll: f64 =
        out.split("mean NLL ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
    assert!(nll > 7.0 && nll < 25.0, "{out}");
    // Sampling needs no data file: the shape and standardisation are in config.toml.
    std::fs::remove_file(d.join("real.csv")).unwrap();
    ok(d, &["sample", "g", "-n", "4", "--out", "s.csv"]);
    let s = std::fs::read_to_string(d.join("s.csv")).unwrap();
    let vals: Vec<f64> = s
        .lines()
        .flat_map(|l| l.split(',').map(|v| v.parse::<f64>().unwrap()).collect::<Vec<_>>())
        .collect();
    assert_eq!(vals.len(), 12);
    assert!(
        vals.iter().step_by(3).all(|v| (700.0..1300.0).contains(v)),
        "samples not in data units: {s}"
    );
    fails(d, &["sample", "g", "--out", "s.png"], "neither images nor 2-D points");

    // RNADE on the same table: an exact density of the original units.
    std::fs::write(d.join("real.csv"), &rows).unwrap();
    let out = ok(
        d,
        &[
            "train",
            "rnade",
            "--data",
            "csv:real.csv",
            "--standardize",
            "--steps",
            "60",
            "--batch-size",
            "32",
            "--hidden",
            "12",
            "--components",
            "3",
            "--out",
            "r",
        ],
    );
    assert!(d.join("r/samples.csv").is_file(), "{out}");
    let out = ok(d, &["score", "r", "--data", "csv:real.csv", "--out", "r.csv"]);
    assert!(out.contains("(exact density)"), "{out}");
    let nll: f64 =
        out.split("mean NLL ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
    assert!(nll > 0.0 && nll < 25.0, "{out}");
    ok(
        d,
        &[
            "complete",
            "r",
            "--data",
            "csv:real.csv",
            "--keep",
            "left-half",
            "-n",
            "3",
            "--out",
            "rc.csv",
        ],
    );
    let rows: Vec<Vec<f64>> = std::fs::read_to_string(d.join("rc.csv"))
        .unwrap()
        .lines()
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect();
    assert_eq!(rows.len(), 12, "3 examples x 4 completions");
    // The kept first two columns are the data's (in data units), the third is drawn.
    assert!(rows.iter().all(|r| (900.0..1100.0).contains(&r[0])), "{rows:?}");
}

#[test]
fn autoregressive_models_train_sample_complete_and_score() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let small: &[(&str, &[&str])] = &[
        (
            "made",
            &["--hidden", "24,24", "--order-agnostic", "--connectivity-agnostic", "--masks", "3"],
        ),
        ("pixelcnn", &["--channels", "6", "--layers", "2"]),
        ("gated-pixelcnn", &["--channels", "4", "--layers", "1", "--output", "softmax"]),
        ("row-lstm", &["--channels", "4", "--layers", "1"]),
        ("diagonal-bilstm", &["--channels", "4", "--layers", "1"]),
    ];
    for (name, extra) in small {
        let mut args = vec![
            "train",
            name,
            "--data",
            "digits",
            "--steps",
            "6",
            "--batch-size",
            "32",
            "--eval-every",
            "6",
            "--seed",
            "2",
            "--out",
            name,
        ];
        args.extend_from_slice(extra);
        let out = ok(d, &args);
        assert!(out.contains("mean NLL") && out.contains("(exact"), "{name}: {out}");
        if *name == "made" {
            assert!(out.contains("the mean probability over 3 mask sets"), "{out}");
        }
        let run = d.join(name);
        let s = ok(d, &["sample", name, "-n", "4", "--out", "s.png"]);
        assert!(s.contains("samples/s"), "{s}");
        let c = ok(
            d,
            &[
                "complete",
                name,
                "-n",
                "3",
                "--samples",
                "2",
                "--keep",
                "top-half",
                "--out",
                "c.png",
            ],
        );
        assert!(
            c.contains("completed 3 examples x 2 samples (32 of 64 values unknown)"),
            "{name}: {c}"
        );
        let img = image::open(d.join("c.png")).unwrap();
        // 3 rows of (original, masked, 2 completions): 8x8 digits drawn at 2x with 1-pixel gaps.
        assert_eq!((img.width(), img.height()), (4 * 16 + 5, 3 * 16 + 4), "{name}");
        let sc = ok(d, &["score", name, "--data", "digits:test", "--out", "scores.csv"]);
        assert!(sc.contains("297 examples"), "{sc}");
        assert!(run.join("model.safetensors").is_file());
    }
    let cfg = std::fs::read_to_string(d.join("gated-pixelcnn/config.toml")).unwrap();
    assert!(
        cfg.contains("output = \"softmax\"")
            && cfg.contains("binarize = \"none\"")
            && cfg.contains("gated = true"),
        "{cfg}"
    );
    let cfg = std::fs::read_to_string(d.join("made/config.toml")).unwrap();
    assert!(
        cfg.contains("order_agnostic = true")
            && cfg.contains("masks = 3")
            && cfg.contains("mask_seed = 2"),
        "{cfg}"
    );

    // Completion with a mask image: known = white.
    let mut m = image::GrayImage::new(8, 8);
    for (x, _, p) in m.enumerate_pixels_mut() {
        p.0 = [if x < 3 { 255 } else { 0 }];
    }
    m.save(d.join("mask.png")).unwrap();
    let c = ok(
        d,
        &[
            "complete",
            "pixelcnn",
            "-n",
            "2",
            "--samples",
            "1",
            "--keep",
            "mask.png",
            "--out",
            "c.csv",
        ],
    );
    assert!(c.contains("(40 of 64 values unknown)"), "{c}");
    let rows: Vec<Vec<f32>> = std::fs::read_to_string(d.join("c.csv"))
        .unwrap()
        .lines()
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.len() == 64 && r.iter().all(|&v| v == 0.0 || v == 1.0)));

    // RNADE on real-valued toy data.
    let out = ok(
        d,
        &[
            "train",
            "rnade",
            "--data",
            "toy:ring8",
            "--steps",
            "30",
            "--hidden",
            "16",
            "--components",
            "4",
            "--out",
            "rnade",
        ],
    );
    assert!(out.contains("mean NLL"), "{out}");
    ok(d, &["sample", "rnade", "-n", "50", "--out", "r.png"]);
    ok(d, &["complete", "rnade", "--keep", "left-half", "-n", "5", "--out", "r.csv"]);

    fails(d, &["complete", "rnade", "--keep", "everything"], "--keep");
    fails(d, &["complete", "pixelcnn", "--keep", "nowhere.png"], "neither top-half");
    std::fs::write(d.join("bad.png"), b"not a png").unwrap();
    fails(d, &["complete", "pixelcnn", "--keep", "bad.png"], "bad.png");
    let mut big = image::GrayImage::new(5, 8);
    big.put_pixel(0, 0, image::Luma([255]));
    big.save(d.join("wrong.png")).unwrap();
    fails(
        d,
        &["complete", "pixelcnn", "--keep", "wrong.png"],
        "mask is 5x8 pixels, the images are 8x8",
    );
    fails(
        d,
        &["train", "pixelcnn", "--data", "toy:ring8", "--out", "x"],
        "needs one-channel images",
    );
    fails(
        d,
        &["train", "made", "--data", "digits", "--masks", "2", "--out", "y"],
        "needs connectivity- or order-agnostic",
    );
    fails(
        d,
        &["train", "nade", "--data", "digits", "--channels", "4", "--out", "z"],
        "--channels does not apply to the nade model",
    );
    fails(
        d,
        &["train", "pixelcnn", "--data", "digits", "--output", "gaussian", "--out", "z"],
        "unknown output `gaussian`",
    );
    fails(
        d,
        &["train", "gated-pixelcnn", "--data", "toy:ring8", "--out", "z"],
        "needs one-channel images",
    );
}

#[test]
fn adversarial_models_train_sample_eval_resume_and_refuse_bad_flags() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // A toy GAN: training ends with the mode report and a scatter over the true modes.
    // A constant schedule: a cosine one is defined over the total steps, which a resume to more
    // steps changes.
    let common = [
        "--data",
        "toy:ring8",
        "--hidden",
        "16",
        "--d-hidden",
        "16",
        "--latent",
        "4",
        "--batch-size",
        "64",
        "--eval-every",
        "3",
        "--seed",
        "2",
        "--schedule",
        "constant",
    ];
    let mut args = vec!["train", "gan", "--steps", "6", "--out", "gan"];
    args.extend(common);
    let out = ok(d, &args);
    assert!(out.contains("modes covered: ") && out.contains("/8"), "{out}");
    for f in [
        "config.toml",
        "model.safetensors",
        "optimizer-6.safetensors",
        "metrics.jsonl",
        "samples.png",
        "loss.png",
        "modes.png",
    ] {
        assert!(d.join("gan").join(f).is_file(), "missing {f}");
    }
    let m = metrics(&d.join("gan"));
    assert!(
        m[0]["d_loss"].is_number()
            && m[0]["g_loss"].is_number()
            && m[0]["critic_estimate"].is_number(),
        "{:?}",
        m[0]
    );
    let out = ok(d, &["eval", "gan", "-n", "500"]);
    assert!(out.contains("modes ") && out.contains("/8, high quality"), "{out}");
    let report = std::fs::read_to_string(d.join("gan/report/report.md")).unwrap();
    assert!(
        report.contains("Mode coverage on the toy mixture") && report.contains("Per-mode counts"),
        "{report}"
    );
    assert!(d.join("gan/report/modes.json").is_file() && d.join("gan/report/modes.png").is_file());
    // `--only modes` writes just that section, with the same draws as the full report.
    let quick = ok(d, &["eval", "gan", "-n", "500", "--only", "modes", "--out", "quick"]);
    let short = std::fs::read_to_string(d.join("quick/report.md")).unwrap();
    let counts = |r: &str| r.lines().find(|l| l.starts_with("Per-mode counts")).map(str::to_string);
    assert!(counts(&short).is_some() && counts(&short) == counts(&report), "{short}");
    assert!(
        !short.contains("## Samples")
            && !short.contains("## Anomaly")
            && report.contains("## Samples"),
        "{short}"
    );
    assert!(quick.contains("/8, high quality") && short.contains("--only modes"), "{quick}");
    fails(d, &["eval", "gan", "--only", "modes,bogus"], "unknown report section `bogus`");
    fails(d, &["eval", "gan", "--only", "density"], "section `density` does not apply");
    // Resuming an adversarial run reproduces the uninterrupted one.
    let mut args = vec!["train", "gan", "--steps", "3", "--out", "part"];
    args.extend(common);
    ok(d, &args);
    ok(d, &["train", "gan", "--resume", "part", "--steps", "6"]);
    assert_eq!(losses(&metrics(&d.join("gan"))), losses(&metrics(&d.join("part"))));
    assert_eq!(
        std::fs::read(d.join("gan/model.safetensors")).unwrap().len(),
        std::fs::read(d.join("part/model.safetensors")).unwrap().len()
    );

    // Unrolled, WGAN-GP and f-GAN options reach the trainer.
    ok(
        d,
        &[
            "train",
            "unrolled-gan",
            "--data",
            "toy:grid25",
            "--steps",
            "2",
            "--unroll",
            "2",
            "--d-schedule",
            "constant",
            "--g-ema",
            "0.99",
            "--noise",
            "uniform",
            "--hidden",
            "8",
            "--d-hidden",
            "8",
            "--batch-size",
            "32",
            "--out",
            "u",
        ],
    );
    let cfg = std::fs::read_to_string(d.join("u/config.toml")).unwrap();
    assert!(
        cfg.contains("unroll = 2")
            && cfg.contains("d_schedule = \"constant\"")
            && cfg.contains("schedule = \"cosine\"")
            && cfg.contains("ema = 0.99")
            && cfg.contains("noise = \"uniform\""),
        "{cfg}"
    );
    assert!(
        !std::fs::read_to_string(d.join("gan/config.toml")).unwrap().contains("noise"),
        "the default noise is left out of the config"
    );
    // The generator's weight average is what eval uses, unless asked for the live one.
    let out = ok(d, &["eval", "u", "-n", "100", "--live-generator", "--out", "u-live"]);
    assert!(out.contains("using the live generator") && out.contains("/25, high quality"), "{out}");
    fails(d, &["eval", "gan", "--live-generator"], "keeps no generator weight average");
    // Slerp between uniform-noise draws: the same ends as the linear path (the clip keeps the
    // cube), other points between.
    let rows = |args: &[&str]| -> Vec<Vec<f32>> {
        ok(d, args);
        std::fs::read_to_string(d.join(args[args.len() - 1]))
            .unwrap()
            .lines()
            .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
            .collect()
    };
    let lin = rows(&[
        "interpolate",
        "u",
        "--pairs",
        "2",
        "--steps",
        "5",
        "--seed",
        "3",
        "--out",
        "lin.csv",
    ]);
    let arc = rows(&[
        "interpolate",
        "u",
        "--pairs",
        "2",
        "--steps",
        "5",
        "--seed",
        "3",
        "--slerp",
        "--out",
        "arc.csv",
    ]);
    assert_eq!((lin.len(), arc.len()), (10, 10));
    assert!(arc.iter().flatten().all(|v| v.is_finite()));
    for p in 0..2 {
        assert_eq!(
            (&lin[5 * p], &lin[5 * p + 4]),
            (&arc[5 * p], &arc[5 * p + 4]),
            "path {p}: the ends differ"
        );
    }
    assert!((1..4).any(|k| lin[k] != arc[k]), "slerp gave the linear path");
    fails(
        d,
        &["train", "gan", "--data", "toy:ring8", "--g-ema", "1.5", "--steps", "1"],
        "--g-ema must be in [0, 1)",
    );
    fails(
        d,
        &["train", "nade", "--data", "digits", "--g-ema", "0.9", "--steps", "1"],
        "--g-ema does not apply to the nade model",
    );
    fails(
        d,
        &["train", "gan", "--data", "toy:ring8", "--noise", "cauchy", "--steps", "1"],
        "unknown noise `cauchy`",
    );
    fails(
        d,
        &["train", "aae", "--data", "digits", "--noise", "uniform", "--steps", "1"],
        "--noise does not apply to the aae model",
    );
    ok(
        d,
        &[
            "train",
            "wgan-gp",
            "--data",
            "toy:ring8",
            "--steps",
            "2",
            "--hidden",
            "8",
            "--d-hidden",
            "8",
            "--batch-size",
            "32",
            "--out",
            "w",
        ],
    );
    assert!(metrics(&d.join("w"))[0]["gp"].is_number());
    ok(
        d,
        &[
            "train",
            "fgan",
            "--divergence",
            "pearson",
            "--data",
            "toy:ring8",
            "--steps",
            "2",
            "--hidden",
            "8",
            "--batch-size",
            "32",
            "--out",
            "f",
        ],
    );
    assert!(std::fs::read_to_string(d.join("f/config.toml")).unwrap().contains("pearson"));

    // A conditional DCGAN on 8x8 digits: class rows, and one class on request.
    ok(
        d,
        &[
            "train",
            "cgan",
            "--data",
            "digits",
            "--steps",
            "2",
            "--channels",
            "4",
            "--latent",
            "4",
            "--batch-size",
            "16",
            "--out",
            "c",
        ],
    );
    let out = ok(d, &["sample", "c", "--class", "7", "-n", "4", "--out", "seven.png"]);
    assert!(out.contains("wrote 4 samples"), "{out}");
    fails(d, &["sample", "c", "--class", "12"], "--class 12 is out of range");
    fails(d, &["sample", "gan", "--class", "1"], "--class applies only to conditional runs");
    // InfoGAN leaves code grids; the AAE a latent scatter and reconstructions.
    ok(
        d,
        &[
            "train",
            "infogan",
            "--data",
            "digits",
            "--steps",
            "2",
            "--channels",
            "4",
            "--latent",
            "4",
            "--batch-size",
            "16",
            "--out",
            "i",
        ],
    );
    for f in ["categorical.png", "continuous-0.png", "continuous-1.png"] {
        assert!(d.join("i").join(f).is_file(), "missing {f}");
    }
    ok(
        d,
        &[
            "train",
            "aae",
            "--data",
            "digits",
            "--steps",
            "2",
            "--hidden",
            "8",
            "--d-hidden",
            "8",
            "--batch-size",
            "16",
            "--prior",
            "mixture10",
            "--out",
            "a",
        ],
    );
    for f in ["latent.png", "reconstructions.png", "samples.png"] {
        assert!(d.join("a").join(f).is_file(), "missing {f}");
    }

    // Bad input: one line each.
    fails(
        d,
        &["train", "gan", "--data", "toy:ring8", "--divergence", "kl", "--steps", "1"],
        "--divergence applies only to the fgan model",
    );
    fails(
        d,
        &["train", "fgan", "--data", "toy:ring8", "--divergence", "chi", "--steps", "1"],
        "unknown divergence `chi`",
    );
    fails(
        d,
        &["train", "nade", "--data", "digits", "--n-critic", "3", "--steps", "1"],
        "does not apply to the nade model (it applies to the adversarial models",
    );
    fails(
        d,
        &["train", "gan", "--data", "toy:ring8", "--first-order", "--steps", "1"],
        "--first-order applies only with --unroll",
    );
    fails(
        d,
        &["train", "gan", "--data", "toy:ring8", "--d-schedule", "linear", "--steps", "1"],
        "unknown schedule `linear`",
    );
    fails(
        d,
        &["train", "nade", "--data", "digits", "--d-schedule", "constant", "--steps", "1"],
        "does not apply to the nade model (it applies to the adversarial models",
    );
    std::fs::write(d.join("points.csv"), "0.5,1.0\n-0.5,2.0\n1.5,0.0\n").unwrap();
    fails(
        d,
        &["train", "cgan", "--data", "csv:points.csv", "--steps", "1"],
        "a conditional GAN needs labelled data",
    );
    fails(
        d,
        &["train", "dcgan", "--data", "toy:ring8", "--arch", "dcgan", "--steps", "1"],
        "multiples of 4",
    );
    fails(
        d,
        &[
            "train",
            "aae",
            "--data",
            "digits",
            "--prior",
            "swiss-roll",
            "--latent",
            "3",
            "--steps",
            "1",
        ],
        "--latent 2",
    );
    fails(
        d,
        &["train", "aae", "--data", "digits", "--prior", "csv:nope.csv", "--steps", "1"],
        "nope.csv",
    );
    fails(d, &["score", "gan", "--data", "toy:ring8"], "has no likelihood");
    // PacGAN: a packed critic trains; per-example critic scores are refused, and the report says
    // why.
    ok(
        d,
        &[
            "train",
            "gan",
            "--data",
            "toy:ring8",
            "--pack",
            "2",
            "--steps",
            "2",
            "--batch-size",
            "16",
            "--hidden",
            "8",
            "--d-hidden",
            "8",
            "--out",
            "p",
        ],
    );
    fails(d, &["detect", "p", "--anomalies", "toy:grid25", "--score", "disc"], "packed (--pack 2)");
    ok(d, &["eval", "p", "-n", "50"]);
    assert!(std::fs::read_to_string(d.join("p/report/report.md"))
        .unwrap()
        .contains("critic is packed"));
    fails(
        d,
        &[
            "train",
            "gan",
            "--data",
            "toy:ring8",
            "--pack",
            "3",
            "--batch-size",
            "16",
            "--steps",
            "1",
        ],
        "--batch-size 16 is not a multiple of --pack 3",
    );
    fails(
        d,
        &["train", "nade", "--data", "digits", "--pack", "2", "--steps", "1"],
        "--pack does not apply to the nade model",
    );
    // A conditional GAN's report: samples, and no classifier (said, not failed).
    ok(d, &["eval", "c", "-n", "50"]);
    let report = std::fs::read_to_string(d.join("c/report/report.md")).unwrap();
    assert!(
        report.contains("one row per class") && report.contains("no classifier run at"),
        "{report}"
    );
    fails(d, &["complete", "gan"], "no sequential conditionals");
}

#[test]
fn uses_detect_embed_probe_interpolate_classifier_and_the_report() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // The classifier: `deepgen classifier train` saves a normal run and prints its test accuracy.
    let out = ok(
        d,
        &[
            "classifier",
            "train",
            "--data",
            "digits",
            "--steps",
            "60",
            "--channels",
            "8",
            "--out",
            "cls",
        ],
    );
    assert!(out.contains("digits:test: 297 examples, test accuracy"), "{out}");
    fails(d, &["classifier", "train", "vae", "--data", "digits"], "trains the classifier");
    std::fs::write(d.join("points.csv"), "0.5,1.0\n-0.5,2.0\n1.5,0.0\n").unwrap();
    fails(
        d,
        &["classifier", "train", "--data", "csv:points.csv", "--steps", "1", "--out", "x"],
        "needs labelled data",
    );
    fails(d, &["sample", "cls"], "not a generative model");

    ok(
        d,
        &[
            "train",
            "vae",
            "--data",
            "digits",
            "--steps",
            "40",
            "--hidden",
            "32",
            "--latent",
            "4",
            "--iw-samples",
            "5",
            "--out",
            "v",
        ],
    );
    // Detection: the inverted test digits against the test digits.
    let out = ok(d, &["detect", "v", "--anomalies", "digits:test+invert"]);
    assert!(
        out.contains("AUROC")
            && out.contains("AUPRC")
            && out.contains("FPR at 95% TPR")
            && out.contains("threshold"),
        "{out}"
    );
    for f in ["scores.csv", "threshold.json", "detect.json", "detect.png"] {
        assert!(d.join("v/detect").join(f).is_file(), "missing {f}");
    }
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("v/detect/detect.json")).unwrap())
            .unwrap();
    assert!(j["auroc"].as_f64().unwrap() > 0.9, "{j}");
    let csv = std::fs::read_to_string(d.join("v/detect/scores.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 297 + 297);
    // Other score kinds; the deployment path flags new data with the saved threshold and exits 0.
    ok(
        d,
        &[
            "detect",
            "v",
            "--anomalies",
            "digits:test+only=3",
            "--data",
            "digits:test+without=3",
            "--score",
            "elbo",
            "--out",
            "loo",
        ],
    );
    let out = ok(
        d,
        &[
            "detect",
            "v",
            "--data",
            "digits:test+noise=0.5",
            "--threshold-from",
            "v",
            "--out",
            "flags.csv",
        ],
    );
    assert!(out.contains("examples flagged as anomalous"), "{out}");
    assert_eq!(std::fs::read_to_string(d.join("flags.csv")).unwrap().lines().count(), 298);
    // Bad input: another shape, an empty set, an unsupported score, a missing threshold file.
    fails(d, &["detect", "v", "--anomalies", "mnist:test"], "shape");
    fails(d, &["detect", "v", "--anomalies", "digits:test+only=42"], "no examples are left");
    fails(d, &["detect", "v", "--anomalies", "digits:test", "--score", "disc"], "cannot give it");
    fails(
        d,
        &["detect", "v", "--anomalies", "digits:test", "--score", "loudness"],
        "unknown kind `loudness`",
    );
    fails(
        d,
        &["detect", "v", "--data", "digits:test", "--threshold-from", "nowhere.json"],
        "nowhere.json",
    );
    fails(d, &["detect", "v"], "give --anomalies");

    // Features and the probe.
    let out = ok(d, &["embed", "v", "--data", "digits:test", "--out", "z.npy"]);
    assert!(out.contains("297 x 4 features"), "{out}");
    assert!(d.join("z.npy").is_file() && d.join("z.npy.labels.csv").is_file());
    ok(d, &["embed", "v", "--out", "z.csv"]);
    assert_eq!(
        std::fs::read_to_string(d.join("z.csv"))
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .split(',')
            .count(),
        5
    );
    let out = ok(d, &["probe", "v"]);
    assert!(out.contains("raw pixels") && out.contains("test"), "{out}");
    fails(d, &["embed", "v", "--out", "z.txt"], "unknown output type");
    // Interpolations.
    ok(d, &["interpolate", "v", "--pairs", "3", "--steps", "5", "--slerp", "--out", "slerp.png"]);
    assert!(d.join("slerp.png").is_file());

    // The report with a classifier: every section that applies to a VAE, and the pictures beside
    // it.
    let out = ok(d, &["eval", "v", "--classifier", "cls", "-n", "300"]);
    assert!(
        out.contains("held-out NLL")
            && out.contains("FID-on-MNIST")
            && out.contains("probe accuracy"),
        "{out}"
    );
    let report = std::fs::read_to_string(d.join("v/report/report.md")).unwrap();
    for s in [
        "Density: held-out log-likelihood",
        "Samples",
        "Sample quality through a classifier",
        "FID on MNIST",
        "Anomaly detection",
        "Features: linear probe",
        "Latent space",
        "Evaluation time",
    ] {
        assert!(report.contains(s), "report lacks {s}: {report}");
    }
    assert!(!report.contains("Not available"), "{report}");
    for f in [
        "samples.png",
        "reconstructions.png",
        "detect-invert.png",
        "interpolation-linear.png",
        "interpolation-slerp.png",
    ] {
        assert!(d.join("v/report").join(f).is_file(), "missing {f}");
    }
    fails(d, &["eval", "v", "--classifier", "v"], "not a classifier");
    // The classifier's own report: its accuracy.
    ok(d, &["eval", "cls"]);
    assert!(std::fs::read_to_string(d.join("cls/report/report.md"))
        .unwrap()
        .contains("Test accuracy"));
}

/// `deepgen models` lists every registry entry with the capabilities its family declares,
/// and `train --help` shows the defaults of the families' recipes.
#[test]
fn models_and_help_say_what_the_registry_says() {
    let tmp = tempfile::tempdir().unwrap();
    let out = ok(tmp.path(), &["models", "--dim", "64"]);
    let blocks: Vec<&str> = out.lines().collect();
    let yes = |b: bool| if b { "yes" } else { "no" };
    for info in deepgen::models::models() {
        let head = format!("{:<15} {}", info.name, info.summary);
        let at = blocks.iter().position(|l| *l == head).unwrap_or_else(|| panic!("{head}\n{out}"));
        let caps = blocks[at + 1];
        assert!(caps.contains(&format!("sampling: {}", yes(info.sampler))), "{caps}");
        assert!(caps.contains(&format!("completion: {}", yes(info.completion))), "{caps}");
        assert!(caps.contains(&format!("encoder: {}", yes(info.encoder))), "{caps}");
        assert!(caps.contains(&format!("data: {}", info.data)), "{caps}");
        let scores = blocks[at + 2];
        let kinds: Vec<&str> = info.scores.iter().map(|k| k.name()).collect();
        let kinds = if kinds.is_empty() { "none".to_string() } else { kinds.join(", ") };
        assert!(scores.contains(&format!("--score): {kinds};")), "{scores}");
        let features = format!("features (deepgen embed): {}", yes(info.features.is_some()));
        assert!(scores.contains(&features), "{scores}");
    }
    let help = ok(tmp.path(), &["train", "--help"]);
    let steps = deepgen::run::options::defaults_text(|t| t.steps.to_string(), |_| true);
    assert!(help.contains(&steps) && steps.contains("4000 for vae"), "{help}");
    assert!(help.contains("[models: made]"), "{help}");
}

/// `deepgen models | head -1`: a reader that has gone away ends the command as Unix tools end
/// (by SIGPIPE), with no panic and no "internal error" line.
#[test]
fn a_closed_stdout_ends_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_deepgen"))
        .arg("models")
        .stdout(writer)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("internal error") && !err.contains("panicked"), "{err}");
    assert_eq!(o.status.signal(), Some(13), "{:?}: {err}", o.status);
}

#[test]
fn a_dcgan_trains_on_colour_domains_of_the_digits_and_samples_colour() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let data = "digits+upscale=16+thick+tint=red";
    ok(d, &["train", "dcgan", "--data", data, "--steps", "2", "--batch-size", "16", "--out", "c"]);
    ok(d, &["sample", "c", "-n", "4", "--out", "s.npy"]);
    let (shape, v, _) = deepgen::data::npy::read_file(&d.join("s.npy")).unwrap();
    assert_eq!((shape, v.len()), (vec![4, 3, 16, 16], 4 * 3 * 256));
    ok(d, &["sample", "c", "-n", "4", "--out", "s.png"]);
    let img = image::open(d.join("s.png")).unwrap();
    assert!(matches!(img.color(), image::ColorType::Rgb8 | image::ColorType::Rgba8));
}

/// `DEEPGEN_PORTABLE_OPS=1` turns deepgen's own kernels off for the process (the GPU machine's
/// way around a kernel that proves wrong there, with no toolchain to rebuild): NADE then trains
/// on its candle-op path, whose sums run in another order, so the gradient norms agree to
/// rounding and differ in their last bits.
#[test]
fn the_portable_ops_variable_switches_the_kernels_off() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let norms = |out: &str, portable: bool| -> Vec<f64> {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_deepgen"));
        cmd.args(["train", "nade", "--hidden", "50", "--steps", "3", "--out", out]);
        if portable {
            cmd.env(deepgen::nn::PORTABLE_OPS_ENV, "1");
        }
        let o = cmd.current_dir(d).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let m = std::fs::read_to_string(d.join(out).join("metrics.jsonl")).unwrap();
        m.lines()
            .filter_map(|l| {
                serde_json::from_str::<serde_json::Value>(l).ok()?["grad_norm"].as_f64()
            })
            .collect()
    };
    let (kernels, ops) = (norms("kernels", false), norms("ops", true));
    assert_eq!(kernels.len(), 3);
    assert_eq!(ops.len(), 3);
    for (a, b) in kernels.iter().zip(&ops) {
        assert!((a - b).abs() <= 1e-5 * a.abs(), "gradient norms {a} (kernels), {b} (candle ops)");
    }
    assert_ne!(kernels, ops, "the same bits: the variable changed nothing");
}
