//! Runs for the service tests, trained once per test binary: a VAE (with a saved anomaly
//! threshold), a NADE and a conditional GAN on the embedded 8x8 digits.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use clap::{Args, FromArgMatches};

pub struct Runs {
    pub root: PathBuf,
}

impl Runs {
    pub fn run(&self, name: &str) -> String {
        self.root.join(name).display().to_string()
    }
    pub fn specs(&self) -> Vec<String> {
        ["vae", "nade", "cgan"].iter().map(|n| format!("{n}={}", self.run(n))).collect()
    }
}

fn parse<T: Args + FromArgMatches>(name: &'static str, args: &[&str]) -> T {
    let cmd = T::augment_args(clap::Command::new(name));
    let m = cmd.try_get_matches_from(std::iter::once(name).chain(args.iter().copied())).unwrap();
    T::from_arg_matches(&m).unwrap()
}

fn train(root: &Path, args: &[&str], out: &str) {
    let mut a = args.to_vec();
    let out = root.join(out).display().to_string();
    a.extend(["--out", &out]);
    let o: deepgen::run::TrainOptions = parse("train", &a);
    deepgen::run::train(&o, &mut deepgen::run::Quiet).unwrap();
}

/// The shared runs (trained on first use; the directory lives as long as the test binary).
pub fn runs() -> &'static Runs {
    static RUNS: OnceLock<Runs> = OnceLock::new();
    RUNS.get_or_init(|| {
        let root = tempfile::tempdir().unwrap().keep();
        let vae = [
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
            "8",
        ];
        train(&root, &vae, "vae");
        train(&root, &["nade", "--data", "digits", "--steps", "20", "--hidden", "16"], "nade");
        train(&root, &["cgan", "--data", "digits", "--steps", "4"], "cgan");
        let d: deepgen::run::detect::DetectOptions = parse(
            "detect",
            &[root.join("vae").to_str().unwrap(), "--anomalies", "digits:test+invert"],
        );
        deepgen::run::detect::detect(&d).unwrap();
        Runs { root }
    })
}

/// Service options with the defaults and the shared runs.
pub fn options() -> deepgen_serve::ServeOptions {
    let mut o = deepgen_serve::ServeOptions::new(runs().specs());
    o.quiet = true;
    o
}

/// The first `n` digits of the embedded test set, `[n, 64]` values in [0, 1].
pub fn digits(n: usize) -> Vec<Vec<f32>> {
    let spec: deepgen::data::DataSpec = "digits:test".parse().unwrap();
    let d = spec.load(0).unwrap();
    (0..n).map(|i| d.row(i).to_vec()).collect()
}

/// One 8x8 grey PNG of `v` (values in [0, 1]).
pub fn png(v: &[f32], side: u32) -> Vec<u8> {
    let px: Vec<u8> = v.iter().map(|x| (x * 255.0).round() as u8).collect();
    let img = image::GrayImage::from_raw(side, side, px).unwrap();
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png).unwrap();
    out
}
