//! `deepgen train progan` end to end (issue 24): the growth through every phase on the 8x8
//! digits with a resume in the middle of a fade, the growth strip, eval's SWD and MS-SSIM, and
//! growth beyond the embedded sizes on a synthetic 64x64 colour PNG folder.

mod common;

use common::{fails, ok};

fn metrics(dir: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v.get("elapsed_s").is_none())
        .collect()
}

const TINY: [&str; 12] = [
    "--channels",
    "4",
    "--latent",
    "8",
    "--batch-size",
    "4",
    "--stabilise-images",
    "16",
    "--fade-images",
    "32",
    "--seed",
    "2",
];

fn progan(d: &std::path::Path, out: &str, steps: &str) -> String {
    let mut args = vec!["train", "progan", "--data", "digits", "--steps", steps, "--out", out];
    args.extend(TINY);
    ok(d, &args)
}

#[test]
fn a_progan_run_grows_resumes_mid_fade_exactly_and_is_evaluated_without_a_network() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let out = progan(d, "full", "14");
    assert!(out.contains("growth.png"), "{out}");
    let m = metrics(&d.join("full"));
    let res: Vec<f64> = m.iter().filter_map(|v| v["resolution"].as_f64()).collect();
    assert_eq!(res, [vec![4.0; 4], vec![8.0; 10]].concat());
    assert_eq!(m[6]["alpha"].as_f64(), Some(0.25));
    // Rows of the growth strip: 4x4 (written when its phase ended) and 8x8 (after training).
    let growth = image::open(d.join("full/growth.png")).unwrap();
    assert_eq!((growth.width(), growth.height()), (8 * 17 + 1, 2 * 17 + 1));
    assert!(d.join("full/growth/4x4.npy").is_file() && d.join("full/growth/8x8.npy").is_file());
    // Stopped at step 6 (alpha 0.25), resumed to 14: the same metrics and weights.
    progan(d, "half", "6");
    ok(d, &["train", "--resume", "half", "--steps", "14"]);
    assert_eq!(m, metrics(&d.join("half")));
    let weights = |run: &str| common::weights(&d.join(run));
    let (a, b) = (weights("full"), weights("half"));
    assert!(a.iter().any(|(k, _)| k.starts_with("g_ema.")), "the average is saved");
    assert!(a == b, "the resumed run's weights differ");
    let info = ok(d, &["info", "full"]);
    assert!(info.contains("growth:     8x8 stable after 52 images shown"), "{info}");
    // Sampling uses the weight average at the resolution reached, shown at the data's size.
    ok(d, &["sample", "full", "-n", "5", "--out", "s.npy"]);
    let (shape, v, _) = deepgen::data::npy::read_file(&d.join("s.npy")).unwrap();
    assert_eq!(shape, vec![5, 1, 8, 8]);
    assert!(v.iter().all(|x| (0.0..=1.0).contains(x)));
    // Eval: SWD over the pyramid and MS-SSIM pairs, with no classifier needed.
    let out = ok(d, &["eval", "full", "--only", "swd", "-n", "64"]);
    assert!(out.contains("SWD x1e3") && out.contains("MS-SSIM"), "{out}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("full/report/swd.json")).unwrap())
            .unwrap();
    assert_eq!(json["sides"], serde_json::json!([8]));
    assert!(json["swd_mean"].as_f64().unwrap() > 0.0);
    // Bad flags: one line naming the flag.
    fails(d, &["train", "progan", "--data", "digits", "--max-res", "16"], "--max-res");
    fails(d, &["train", "progan", "--data", "digits", "--batch-size", "6"], "--group-size");
    fails(d, &["train", "progan", "--data", "toy:ring8"], "progan makes images");
}

/// Eight 64x64 RGB images: a coloured disc of varying place and size on a grey ground.
fn write_pngs(dir: &std::path::Path) {
    std::fs::create_dir_all(dir).unwrap();
    for k in 0..8u32 {
        let (cx, cy, r) = (16.0 + 4.0 * k as f32, 40.0 - 2.0 * k as f32, 8.0 + k as f32);
        let img = image::RgbImage::from_fn(64, 64, |x, y| {
            let inside = (x as f32 - cx).powi(2) + (y as f32 - cy).powi(2) < r * r;
            if inside {
                image::Rgb([200, (30 * k) as u8, 255 - (30 * k) as u8])
            } else {
                image::Rgb([90, 90, 90])
            }
        });
        img.save(dir.join(format!("img{k}.png"))).unwrap();
    }
}

#[test]
fn progan_grows_past_the_embedded_sizes_to_64x64_on_a_png_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write_pngs(&d.join("discs"));
    // 4 growths of 4 + 4 images at batch 4: 64x64 from step 8.
    let out = ok(
        d,
        &[
            "train",
            "progan",
            "--data",
            "png:discs",
            "--channels",
            "4",
            "--latent",
            "8",
            "--batch-size",
            "4",
            "--stabilise-images",
            "4",
            "--fade-images",
            "4",
            "--steps",
            "10",
            "--out",
            "big",
        ],
    );
    assert!(out.contains("growth.png"), "{out}");
    let m = metrics(&d.join("big"));
    let res: Vec<f64> = m.iter().filter_map(|v| v["resolution"].as_f64()).collect();
    assert_eq!(res, vec![4.0, 8.0, 8.0, 16.0, 16.0, 32.0, 32.0, 64.0, 64.0, 64.0]);
    let growth = image::open(d.join("big/growth.png")).unwrap();
    assert_eq!((growth.width(), growth.height()), (8 * 129 + 1, 5 * 129 + 1), "5 resolutions");
    ok(d, &["sample", "big", "-n", "2", "--out", "s.npy"]);
    let (shape, _, _) = deepgen::data::npy::read_file(&d.join("s.npy")).unwrap();
    assert_eq!(shape, vec![2, 3, 64, 64]);
}
