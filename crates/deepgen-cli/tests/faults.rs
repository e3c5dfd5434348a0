//! The faults and bad inputs of issue 22, each through the binary: one clear line naming the
//! file or flag, a non-zero exit, and nothing of the user's lost or changed.

mod common;

use std::path::Path;

use common::{deepgen, fails, ok};

fn train_fvsbn(d: &Path, out: &str, steps: &str) {
    let args = ["train", "fvsbn", "--data", "digits", "--eval-every", "5", "--steps", steps];
    ok(d, &[&args[..], &["--out", out]].concat());
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap()
}

#[test]
fn a_refused_resume_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let rows: String = (0..64).map(|i| format!("{},{}\n", i % 2, (i / 2) % 2)).collect();
    std::fs::write(d.join("x.csv"), &rows).unwrap();
    ok(d, &["train", "fvsbn", "--data", "csv:x.csv", "--steps", "10", "--eval-every", "5"]);
    let run = d.join("runs/fvsbn");
    // As a kill after step 12 would leave it: metric lines past the checkpoint.
    let mut m = read(&run.join("metrics.jsonl"));
    m.extend_from_slice(b"{\"step\":12,\"loss\":1.0}\n");
    std::fs::write(run.join("metrics.jsonl"), &m).unwrap();
    let before: Vec<Vec<u8>> =
        ["metrics.jsonl", "config.toml", "model.safetensors"].map(|f| read(&run.join(f))).into();
    // The data is gone: the resume is refused after the checkpoint was read, and changes nothing.
    std::fs::rename(d.join("x.csv"), d.join("y.csv")).unwrap();
    fails(d, &["train", "--resume", "runs/fvsbn", "--steps", "20"], "x.csv");
    let after: Vec<Vec<u8>> =
        ["metrics.jsonl", "config.toml", "model.safetensors"].map(|f| read(&run.join(f))).into();
    assert!(before == after, "a refused resume changed the run");
    // Back in place, the resume is accepted and cuts the metrics back to the checkpoint.
    std::fs::rename(d.join("y.csv"), d.join("x.csv")).unwrap();
    ok(d, &["train", "--resume", "runs/fvsbn", "--steps", "20"]);
    let m = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    assert!(!m.contains("\"loss\":1.0}"), "the stale line survived the resume");
}

#[test]
fn damaged_metrics_are_found_before_training() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    train_fvsbn(d, "r", "10");
    let p = d.join("r/metrics.jsonl");
    let text = std::fs::read_to_string(&p).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines[2] = "{\"step\": 3, garbage";
    let broken = lines.join("\n") + "\n";
    std::fs::write(&p, &broken).unwrap();
    let model = read(&d.join("r/model.safetensors"));
    let e = fails(d, &["train", "--resume", "r", "--steps", "20"], "metrics.jsonl: line 3 ");
    assert!(e.contains("is not a JSON object"), "{e}");
    assert_eq!(read(&d.join("r/model.safetensors")), model);
    assert_eq!(std::fs::read_to_string(&p).unwrap(), broken);
}

#[test]
fn a_run_that_fails_before_its_first_checkpoint_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    fails(d, &["train", "vae", "--data", "digits", "--latent", "0", "--out", "lz"], "latent");
    assert!(!d.join("lz").exists(), "a failed validation left a directory");
    // NaN at step 2, long before the first checkpoint: the message says there is none.
    let rows: String = (0..64).map(|i| format!("{},{},{}\n", i % 7, (i * 3) % 11, i % 5)).collect();
    std::fs::write(d.join("r.csv"), rows).unwrap();
    let args = ["train", "vae", "--data", "csv:r.csv", "--lr", "1e30", "--steps", "40"];
    let e = fails(d, &[&args[..], &["--batch-size", "16", "--out", "nan"]].concat(), "step");
    assert!(e.contains("non-finite") && e.contains("no checkpoint had been written yet"), "{e}");
    assert!(!d.join("nan").exists());
    // With checkpoints, the message names the one that is kept.
    let e = fails(
        d,
        &[&args[..], &["--batch-size", "16", "--eval-every", "1", "--out", "nan"]].concat(),
        "step",
    );
    assert!(e.contains("the checkpoint of step"), "{e}");
    ok(d, &["info", "nan"]);
    // The adversarial trainer stops the same way, before the update the NaN would make.
    let args = ["train", "gan", "--lr", "1e30", "--steps", "30", "--out", "gnan"];
    let e = fails(d, &args, "non-finite loss at step");
    assert!(e.contains("loss = NaN") && e.contains("no checkpoint had been written yet"), "{e}");
    assert!(!d.join("gnan").exists());
}

#[test]
fn out_must_be_new_empty_or_a_run_without_a_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::create_dir(d.join("docs")).unwrap();
    std::fs::write(d.join("docs/notes.txt"), "mine").unwrap();
    std::fs::write(d.join("docs/metrics.jsonl"), "mine too").unwrap();
    let args = ["train", "fvsbn", "--data", "digits", "--steps", "2", "--out"];
    fails(d, &[&args[..], &["docs"]].concat(), "not empty and holds no deepgen run");
    assert_eq!(std::fs::read_to_string(d.join("docs/metrics.jsonl")).unwrap(), "mine too");
    std::fs::write(d.join("file"), "x").unwrap();
    fails(d, &[&args[..], &["file"]].concat(), "--out file: is a file");
    std::fs::create_dir(d.join("empty")).unwrap();
    ok(d, &[&args[..], &["empty"]].concat());
}

#[test]
fn every_command_refuses_an_edited_config() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    train_fvsbn(d, "r", "5");
    let p = d.join("r/config.toml");
    let text = std::fs::read_to_string(&p).unwrap();
    std::fs::write(&p, text.replace("dim = 64", "dim = 65")).unwrap();
    let want = "config.toml and model.safetensors describe different models";
    fails(d, &["score", "r", "--data", "digits:test"], want);
    fails(d, &["sample", "r", "-n", "4"], want);
    fails(d, &["train", "--resume", "r", "--steps", "9"], want);
    std::fs::write(&p, text.replace("    8,\n    8,", "    8,\n    9,")).unwrap();
    fails(
        d,
        &["score", "r", "--data", "digits:test"],
        "gives the data shape [1, 8, 9] (72 values)",
    );
    std::fs::write(&p, "seed = [").unwrap();
    fails(d, &["score", "r", "--data", "digits:test"], "config.toml: line 1: ");
}

#[test]
fn non_finite_weights_are_named_as_a_damaged_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    train_fvsbn(d, "r", "5");
    let (dir, _, model) = deepgen::run::open(&d.join("r")).unwrap();
    let (name, var) = model.params.vars().next().unwrap();
    let nan = (var.as_tensor().zeros_like().unwrap() + f64::NAN).unwrap();
    var.set(&nan).unwrap();
    dir.save(&model, &[], 5, 0).unwrap();
    let want = format!("tensor `{name}` holds a non-finite value at index 0: the checkpoint is");
    let e = fails(d, &["score", "r", "--data", "digits:test"], &want);
    assert!(e.contains("not a problem with the data"), "{e}");
    fails(d, &["train", "--resume", "r", "--steps", "9"], &want);
}

#[test]
fn os_errors_negative_numbers_and_npy_dtypes_read_as_one_clean_line() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let e = fails(d, &["train", "--data", "csv:missing.csv"], "missing.csv: ");
    assert_eq!(e.matches("No such file or directory").count(), 1, "{e}");
    fails(d, &["train", "--seed", "-1"], "--seed must be >= 0, got -1");
    fails(d, &["train", "--steps", "-5"], "--steps must be a positive integer, got -5");
    let npy = deepgen::data::npy::encode_raw("<i8", &[1, 1], &[0; 8]);
    std::fs::write(d.join("i.npy"), npy).unwrap();
    fails(d, &["train", "--data", "npy:i.npy"], "unsupported NPY dtype `<i8` (supported: <f4");
}

fn idx_set(d: &Path, prefix: &str, labels: &[u8]) {
    let n = labels.len();
    let img: Vec<u8> = (0..n * 64).map(|i| (i * 37 % 256) as u8).collect();
    let images = deepgen::data::idx::encode_u8(&[n, 8, 8], &img);
    std::fs::write(d.join(format!("{prefix}-images-idx3-ubyte")), images).unwrap();
    let l = deepgen::data::idx::encode_u8(&[n], labels);
    std::fs::write(d.join(format!("{prefix}-labels-idx1-ubyte")), l).unwrap();
}

#[test]
fn labels_are_checked_against_the_class_count() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    idx_set(d, "odd", &[200; 16]);
    let args = ["train", "cgan", "--data", "idx:odd", "--steps", "2"];
    fails(d, &args, "the labels use 1 of the 201 classes 0..200");
    fails(d, &[&args[..], &["--classes", "10"]].concat(), "label 200 of example 0 is not below");
    // Said on purpose, it trains (200 empty classes) and its class grid stays bounded.
    ok(d, &[&args[..], &["--classes", "201", "--out", "c"]].concat());
}

/// A PNG of 1x1 pixel whose header is patched to claim `w` x `h` (with a valid CRC).
fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    image::GrayImage::new(1, 1).write_to(&mut out, image::ImageFormat::Png).unwrap();
    let mut b = out.into_inner();
    // Signature (8), IHDR length (4), "IHDR" (4), width, height, ... and the CRC after 13 bytes.
    b[16..20].copy_from_slice(&w.to_be_bytes());
    b[20..24].copy_from_slice(&h.to_be_bytes());
    let mut crc = flate2::Crc::new();
    crc.update(&b[12..29]);
    b[29..33].copy_from_slice(&crc.sum().to_be_bytes());
    b
}

#[test]
fn sizes_are_bounded_before_memory_is_allocated() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::create_dir(d.join("big")).unwrap();
    std::fs::write(d.join("big/a.png"), png_claiming(20000, 20000)).unwrap();
    let e = fails(d, &["train", "vae", "--data", "png:big"], "a.png: image is 20000x20000 pixels");
    assert!(e.contains("DEEPGEN_MAX_IMAGE_PIXELS"), "{e}");
    train_fvsbn(d, "r", "5");
    fails(d, &["sample", "r", "-n", "1000000000"], "a PNG holds at most 10000 samples");
    fails(d, &["sample", "r", "-n", "1000000000000", "--out", "s.npy"], "of samples, more than");
    fails(d, &["eval", "r", "-n", "1000000000000"], "-n 1000000000000 needs");
    ok(d, &["sample", "r", "-n", "3000", "--out", "s.npy"]);
    let (shape, v, _) = deepgen::data::npy::read_file(&d.join("s.npy")).unwrap();
    assert_eq!((shape, v.len()), (vec![3000, 1, 8, 8], 3000 * 64));
    // A model too large for the memory given to deepgen is refused by name, before it is built.
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_deepgen"))
        .args(["train", "vae", "--data", "digits", "--steps", "2", "--out", "v"])
        .env("DEEPGEN_MAX_MEMORY", "2M")
        .current_dir(d)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("vae: the model would hold") && err.contains("make it smaller"), "{err}");
    assert!(!d.join("v").exists());
}

#[test]
fn a_run_is_trained_by_one_process_at_a_time() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    train_fvsbn(d, "r", "5");
    let mut first = std::process::Command::new(env!("CARGO_BIN_EXE_deepgen"))
        .args(["train", "--resume", "r", "--steps", "1000000"])
        .current_dir(d)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the first process is training (its first new checkpoint is written).
    let t0 = std::time::Instant::now();
    while deepgen::run::RunDir::open(&d.join("r")).unwrap().checkpoint_info().unwrap().step <= 5
        && t0.elapsed() < std::time::Duration::from_secs(30)
    {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let o = deepgen(d, &["train", "--resume", "r", "--steps", "2000000"]);
    first.kill().unwrap();
    first.wait().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("another deepgen process is training this run"), "{err}");
}

#[test]
fn runs_saved_before_the_one_unit_checkpoint_still_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    train_fvsbn(d, "old", "5");
    train_fvsbn(d, "new", "10");
    // The earlier layout: one `optimizer.safetensors`.
    std::fs::rename(d.join("old/optimizer-5.safetensors"), d.join("old/optimizer.safetensors"))
        .unwrap();
    ok(d, &["train", "--resume", "old", "--steps", "10"]);
    assert!(!d.join("old/optimizer.safetensors").exists(), "the old file was not replaced");
    let weights = |run: &str| {
        let (t, _) =
            deepgen::run::read_safetensors(&d.join(run).join("model.safetensors")).unwrap();
        let mut v: Vec<(String, Vec<f32>)> = t
            .iter()
            .map(|(k, t)| (k.clone(), t.flatten_all().unwrap().to_vec1().unwrap()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    assert!(weights("old") == weights("new"));
}
