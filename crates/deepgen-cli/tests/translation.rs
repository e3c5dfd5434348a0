//! `deepgen train cyclegan|stargan`, `deepgen translate` and `deepgen eval` on translation runs,
//! end to end on tiny players and the 8x8 digits, with the bad inputs of issue 23.

mod common;

use common::{fails, ok};

fn metrics(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| !l.contains("elapsed_s"))
        .map(str::to_string)
        .collect()
}

const TINY: [&str; 8] = ["--channels", "2", "--layers", "1", "--batch-size", "4", "--seed", "3"];

fn cyclegan(d: &std::path::Path, out: &str, steps: &str) {
    let mut args = vec![
        "train",
        "cyclegan",
        "--data",
        "digits",
        "--data-b",
        "digits+invert",
        "--steps",
        steps,
        "--eval-every",
        "2",
        "--out",
        out,
    ];
    args.extend(TINY);
    ok(d, &args);
}

#[test]
fn a_cyclegan_run_trains_on_disjoint_halves_translates_both_ways_and_resumes_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    cyclegan(d, "full", "4");
    let config = std::fs::read_to_string(d.join("full/config.toml")).unwrap();
    assert!(config.contains("train = \"digits+part=1/2\""), "{config}");
    assert!(config.contains("train_b = \"digits+invert+part=2/2\""), "{config}");
    assert!(config.contains("val_b = \"digits:test+invert\""), "{config}");
    for f in ["translations.png", "translations-reverse.png", "loss.png"] {
        assert!(d.join("full").join(f).is_file(), "{f}");
    }
    // The pool is part of the checkpoint: 2 steps, then resumed to 4, match 4 straight.
    cyclegan(d, "half", "2");
    ok(d, &["train", "--resume", "half", "--steps", "4"]);
    assert_eq!(metrics(&d.join("full")), metrics(&d.join("half")));
    let weights = |run: &str| common::weights(&d.join(run));
    let (full, half) = (weights("full"), weights("half"));
    assert!(full.iter().any(|(k, v)| k == "pool.a" && v.iter().any(|x| *x != 0.0)));
    assert!(full == half, "the resumed run's weights and pools differ");

    let out = ok(d, &["translate", "full", "-n", "5", "--out", "t.npy"]);
    assert!(out.contains("A -> B (digits+part=1/2 -> digits+invert+part=2/2)"), "{out}");
    let (shape, v, _) = deepgen::data::npy::read_file(&d.join("t.npy")).unwrap();
    assert_eq!(shape, vec![5, 1, 8, 8]);
    assert!(v.iter().all(|x| (0.0..=1.0).contains(x)));
    let out = ok(d, &["translate", "full", "--reverse", "-n", "3", "--out", "r.png"]);
    assert!(out.contains("B -> A") && out.contains("input, translation, reconstruction"), "{out}");
    let img = image::open(d.join("r.png")).unwrap();
    // Three rows of three 16-pixel cells with 1-pixel gaps.
    assert_eq!((img.width(), img.height()), (3 * 17 + 1, 3 * 17 + 1));

    // Bad input: one line each.
    fails(d, &["translate", "full", "--to", "red", "--out", "x.png"], "use --reverse for B -> A");
    fails(
        d,
        &["translate", "full", "--data", "digits+tint=red", "--out", "x.png"],
        "colour images for a grey-only model",
    );
    fails(d, &["translate", "full", "--out", "x.txt"], "write a .png grid or a .npy array");
    fails(d, &["translate", "full", "-n", "0", "--out", "x.png"], "--num");
    // Eval without classifiers still measures what needs none and says what is missing.
    let out = ok(d, &["eval", "full"]);
    assert!(out.contains("A -> B: cycle L1") && out.contains("B -> A: cycle L1"), "{out}");
    let report = std::fs::read_to_string(d.join("full/report/report.md")).unwrap();
    assert!(report.contains("L1 to the true image"), "{report}");
    assert!(report.contains("deepgen classifier train --data digits+invert"), "{report}");
}

#[test]
fn cyclegan_refuses_a_missing_or_mismatched_second_domain() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let base = ["train", "cyclegan", "--data", "digits", "--steps", "1", "--out", "x"];
    fails(d, &base, "give the second with --data-b");
    let mut shapes = base.to_vec();
    shapes.extend(["--data-b", "digits+tint=red"]);
    fails(d, &shapes, "both domains need one shape");
    let mut odd = vec!["train", "cyclegan", "--data", "toy:ring8", "--data-b", "toy:ring8"];
    odd.extend(["--steps", "1", "--out", "x"]);
    fails(d, &odd, "translates images of 1 or 3 channels");
    let mut small = base.to_vec();
    small.extend(["--data-b", "digits+only=3+part=1/20", "--batch-size", "16"]);
    fails(d, &small, "fewer than --batch-size 16");
    let vae = ["train", "vae", "--data", "digits", "--data-b", "digits", "--steps", "1"];
    fails(d, &vae, "--data-b applies only to two-domain models");
    assert!(!d.join("x").exists(), "a refused run writes nothing");
}

#[test]
fn a_stargan_run_translates_to_named_attributes_and_refuses_unknown_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let mut args = vec!["train", "stargan", "--data", "digits+attributes", "--steps", "2"];
    args.extend(["--eval-every", "2", "--out", "s"]);
    args.extend(TINY);
    let out = ok(d, &args);
    assert!(out.contains("translations.png"), "{out}");
    // Resumed from step 1, it matches the uninterrupted run.
    let mut half: Vec<&str> = args.iter().map(|a| if *a == "s" { "h" } else { a }).collect();
    half[5] = "1";
    ok(d, &half);
    ok(d, &["train", "--resume", "h", "--steps", "2"]);
    assert_eq!(metrics(&d.join("s")), metrics(&d.join("h")));
    let info = ok(d, &["info", "s"]);
    assert!(info.contains("colour (red|green|blue), thick, invert"), "{info}");
    let out = ok(d, &["translate", "s", "--to", "thick,red", "-n", "4", "--out", "t.npy"]);
    assert!(out.contains("translations to thick, red"), "{out}");
    let (shape, _, _) = deepgen::data::npy::read_file(&d.join("t.npy")).unwrap();
    assert_eq!(shape, vec![4, 3, 8, 8]);
    ok(d, &["translate", "s", "-n", "2", "--out", "all.png"]);
    let img = image::open(d.join("all.png")).unwrap();
    // Input, then red, green, blue, thick flipped, invert flipped.
    assert_eq!(img.width(), 6 * 17 + 1);
    let e = fails(d, &["translate", "s", "--to", "purple", "--out", "x.png"], "unknown attribute");
    assert!(e.contains("colour (red|green|blue), thick, invert"), "{e}");
    fails(d, &["translate", "s", "--reverse", "--out", "x.png"], "--reverse applies to CycleGAN");
    fails(d, &["translate", "s", "--out", "x.npy"], "--to is needed for a .npy");
    fails(
        d,
        &["translate", "s", "--data", "digits", "--to", "red", "--out", "x.png"],
        "grey images for a colour model",
    );
    let mut plain = vec!["train", "stargan", "--data", "digits+tint=red", "--steps", "1"];
    plain.extend(["--out", "p"]);
    fails(d, &plain, "stargan needs attribute labels");
    let vae_translate = ["train", "vae", "--data", "digits", "--steps", "1", "--out", "v"];
    ok(d, &vae_translate);
    fails(d, &["translate", "v", "--out", "x.png"], "does not translate images");
}
