//! `deepgen train puzzle-gan` and `deepgen assemble` end to end (issue 25): wholes from patches
//! cut from held-out images and from PNG files, the report's assembly section, resume, and one
//! clear line for patches of the wrong size, number or colour.

mod common;

use common::{fails, ok};

const TINY: [&str; 8] = ["--channels", "4", "--latent", "4", "--batch-size", "8", "--seed", "1"];

fn train(d: &std::path::Path, out: &str, steps: &str) {
    let mut args = vec!["train", "puzzle-gan", "--data", "digits", "--steps", steps, "--out", out];
    args.extend(TINY);
    ok(d, &args);
}

fn patch(d: &std::path::Path, name: &str, w: u32, h: u32) -> String {
    image::GrayImage::from_fn(w, h, |x, y| image::Luma([if x == y { 255 } else { 0 }]))
        .save(d.join(name))
        .unwrap();
    name.to_string()
}

#[test]
fn a_puzzle_gan_assembles_wholes_from_cut_and_given_patches_and_resumes_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    train(d, "full", "4");
    assert!(d.join("full/assembly.png").is_file());
    train(d, "half", "2");
    ok(d, &["train", "--resume", "half", "--steps", "4"]);
    assert!(common::weights(&d.join("full")) == common::weights(&d.join("half")));
    // Patches cut from 5 held-out digits: rows of 3 patches, mask, whole, source (8x8 cells of
    // 17 px).
    let out = ok(d, &["assemble", "full", "-n", "5", "--out", "a.png"]);
    assert!(out.contains("wrote 5 wholes from patches of digits:test"), "{out}");
    let grid = image::open(d.join("a.png")).unwrap();
    assert_eq!((grid.width(), grid.height()), (6 * 17 + 1, 5 * 17 + 1));
    ok(d, &["assemble", "full", "-n", "5", "--out", "a.npy"]);
    let npy = deepgen::data::DataSpec::Npy(d.join("a.npy")).load(0).unwrap();
    assert_eq!((npy.n, npy.dim()), (5, 64));
    // Three PNG patches (any side up to the image's): 4 draws of z.
    let files = [patch(d, "p1.png", 3, 3), patch(d, "p2.png", 3, 3), patch(d, "p3.png", 3, 3)];
    let list = files.join(",");
    let out = ok(d, &["assemble", "full", "--patches", &list, "-n", "4", "--out", "b.png"]);
    assert!(out.contains("wrote 4 wholes from 3 patches"), "{out}");
    ok(d, &["train", "classifier", "--data", "digits", "--steps", "10", "--out", "classifier"]);
    let out =
        ok(d, &["eval", "full", "--classifier", "classifier", "--only", "assembly", "-n", "40"]);
    assert!(out.contains("class preserved: generated") && out.contains("nearest"), "{out}");
    let report = std::fs::read_to_string(d.join("full/report/report.md")).unwrap();
    assert!(report.contains("| pasted |") && report.contains("assembly.png"), "{report}");

    patch(d, "wide.png", 4, 3);
    patch(d, "big.png", 9, 9);
    patch(d, "other.png", 2, 2);
    let bad = |f: &str| format!("p1.png,p2.png,{f}");
    fails(d, &["assemble", "full", "--patches", &bad("wide.png")], "patches must be square");
    fails(d, &["assemble", "full", "--patches", &bad("big.png")], "the run's images are 8x8");
    fails(d, &["assemble", "full", "--patches", &bad("other.png")], "the first one 3x3");
    fails(d, &["assemble", "full", "--patches", "p1.png,p2.png"], "the run assembles 3 patches");
    fails(d, &["assemble", "full", "--patches", &bad("nope.png")], "nope.png");
    fails(d, &["assemble", "full", "--patches", &list, "--data", "digits"], "give one source");
    fails(d, &["assemble", "classifier"], "assemble needs a puzzle-gan run");
    fails(
        d,
        &["train", "puzzle-gan", "--data", "digits", "--patch-size", "9", "--out", "x"],
        "--patch-size 9: patches must be 2 to 8 pixels",
    );
    assert!(!d.join("x").exists());
}
