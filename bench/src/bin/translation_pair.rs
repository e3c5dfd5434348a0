//! StarGAN against a pairwise CycleGAN on one pair of domains (issue 23, the paper's central
//! claim): held-out inputs of domain A, their true images in domain B (paired specs of one base
//! set), each translation run's output, L1 to the true image and label preservation under a
//! classifier trained on domain B. Run from `bench/translation.sh`.
//!
//! ```sh
//! translation_pair --from mnist:test+tint=red --to mnist:test+tint=green \
//!     --classifier runs/clf-mnist-tint-green --cyclegan runs/cg-red-green \
//!     --stargan runs/sg-digits --stargan-to green,not-thick,not-invert
//! ```

use std::path::PathBuf;

use candle_core::Device;
use deepgen::data::attributes;
use deepgen::run::{self, translate, translate_eval};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

fn main() -> deepgen::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let need =
        |n: &str| arg(&args, n).ok_or_else(|| deepgen::Error::config(format!("{n} is required")));
    let (from, to) = (need("--from")?, need("--to")?);
    let n: usize = arg(&args, "-n").and_then(|v| v.parse().ok()).unwrap_or(1000);
    let (_, _, clf) = run::open(&PathBuf::from(need("--classifier")?))?;
    let a = from.parse::<deepgen::data::DataSpec>()?.load(0)?;
    let b = to.parse::<deepgen::data::DataSpec>()?.load(0)?;
    let n = n.min(a.n).min(b.n);
    let idx: Vec<usize> = (0..n).collect();
    let d = a.dim();
    let x = a.batch(&idx, &Device::Cpu)?;
    let truth: Vec<f32> = b.x[..n * d].to_vec();
    let labels = a.labels.clone().unwrap_or_default();
    let identity = x.flatten_all()?.to_vec1::<f32>()?;
    let mut rows: Vec<(String, Vec<f32>)> = vec![("identity map".into(), identity)];
    rows.push(("true transform".into(), truth.clone()));
    for (flag, kind) in [("--cyclegan", "cyclegan"), ("--stargan", "stargan")] {
        let Some(path) = arg(&args, flag) else { continue };
        let (_, cfg, model) = run::open(&PathBuf::from(&path))?;
        let t = translate::translator(&model, &PathBuf::from(&path))?;
        let changes = match kind {
            "stargan" => {
                let cols = match t.domains() {
                    deepgen::models::Domains::Attributes(c) => c,
                    _ => return Err(deepgen::Error::config("--stargan: not a StarGAN run")),
                };
                Some(attributes::parse_changes(&cols, &need("--stargan-to")?)?)
            }
            _ => None,
        };
        let mut y = Vec::with_capacity(n * d);
        for chunk in idx.chunks(256) {
            let xc = a.batch(chunk, &Device::Cpu)?;
            let (out, _) =
                translate::translate_batch(&model, t, &a, &xc, chunk, false, changes.as_deref())?;
            y.extend(out.clamp(0.0, 1.0)?.flatten_all()?.to_vec1::<f32>()?);
        }
        let steps = cfg.train.steps;
        rows.push((format!("{kind} ({path}, {steps} steps)"), y));
    }
    println!("{n} inputs of {from}, true images {to}; classifier of the target domain");
    println!("| translation | L1 to the true image | label preservation |");
    println!("|---|---|---|");
    for (name, y) in &rows {
        let l1 = translate_eval::mean_l1(y, &truth);
        let acc = translate_eval::share(&translate_eval::predict(&clf, y, d)?, &labels[..n]);
        println!("| {name} | {l1:.4} | {:.1} % |", 100.0 * acc);
    }
    Ok(())
}
