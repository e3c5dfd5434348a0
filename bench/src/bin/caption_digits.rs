//! How much of the digit a text-matcher run's embedding carries: each held-out image against the
//! ten captions "a 0" ... "a 9" (and "zero" ... "nine"), the digit of the closest caption against
//! the label (bench/RESULTS.md, "Text-conditional GAN"). Usage: caption_digits RUN [SPEC].

use candle_core::Device;
use deepgen::models::Matcher;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let run = args.get(1).ok_or("usage: caption_digits RUN [SPEC]")?;
    let spec = args.get(2).map(String::as_str).unwrap_or("mnist:test");
    let (_, _, model) = deepgen::run::open(std::path::Path::new(run))?;
    let m = model.get::<Matcher>().ok_or("not a text-matcher run")?;
    let data = spec.parse::<deepgen::data::DataSpec>()?.load(0)?;
    let labels = data.labels.clone().ok_or("the data has no labels")?;
    let idx: Vec<usize> = (0..data.n).collect();
    let x = data.batch(&idx, &Device::Cpu)?;
    let words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"];
    for (name, captions) in [
        ("numerals", (0..10).map(|d| format!("a {d}")).collect::<Vec<_>>()),
        ("words", words.iter().map(|w| format!("a {w}")).collect()),
    ] {
        let s = m.scores(&x, &captions)?.to_vec2::<f32>()?;
        let hits = s
            .iter()
            .zip(&labels)
            .filter(|(row, &l)| {
                let best = (0..10).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap_or(0);
                best as u32 == l
            })
            .count();
        println!(
            "{run} {name}: {:.1} % of {} held-out digits",
            100.0 * hits as f64 / data.n as f64,
            data.n
        );
    }
    Ok(())
}
