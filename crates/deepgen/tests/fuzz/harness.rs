//! A mutation fuzzer on stable Rust for every parser of user input: IDX, NPY, CSV, PNG,
//! safetensors checkpoints, `config.toml`, data specs with modifiers. Each target starts from
//! valid seeds and feeds seeded mutations of them (bit flips, interesting bytes and numbers,
//! cut, duplicated and spliced ranges, dictionary tokens) and some purely random inputs.
//!
//! Every input must give a valid result or an error of one line, without a panic, and the
//! memory the call holds at its peak must stay under the bound set with
//! `deepgen::limits::set_memory_bound` plus a small multiple of the input's size. A
//! counting global allocator ([`Counting`]) measures that per thread.
//!
//! Shared by `tests/fuzz.rs` (a short run in the test suite) and `bench/src/bin/fuzz.rs` (the
//! long run whose counts are in `bench/RESULTS.md`).

#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use candle_core::Device;
use deepgen::data::{self, idx, npy, DataSpec, Dataset};
use deepgen::models::{Model, ModelConfig};
use deepgen::run::{DataConfig, RunConfig, RunDir};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The bound the fuzzed calls run under.
pub const BOUND: u64 = 64 << 20;

// ---------------------------------------------------------------------------------------------
// Counting allocator: live and peak bytes of the current thread.

thread_local! {
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

/// The largest single request seen by any thread (bytes).
pub static LARGEST: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

pub struct Counting;

fn grew(n: usize) {
    let _ = LIVE.try_with(|l| {
        let v = l.get().saturating_add(n);
        l.set(v);
        let _ = PEAK.try_with(|p| p.set(p.get().max(v)));
    });
    LARGEST.fetch_max(n, std::sync::atomic::Ordering::Relaxed);
}

fn shrank(n: usize) {
    let _ = LIVE.try_with(|l| l.set(l.get().saturating_sub(n)));
}

// SAFETY: every call is forwarded to the system allocator unchanged; only counts are kept.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            grew(l.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(l) };
        if !p.is_null() {
            grew(l.size());
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        shrank(l.size());
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            shrank(l.size());
            grew(new);
        }
        q
    }
}

/// Peak bytes held above the level at the start of `f`, on this thread.
pub fn measure<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.with(|l| l.get());
    PEAK.with(|p| p.set(base));
    let out = f();
    (out, PEAK.with(|p| p.get()).saturating_sub(base))
}

// ---------------------------------------------------------------------------------------------
// Targets.

/// The call that parses one input: a valid result or a one-line error.
pub type Parse = Box<dyn Fn(&[u8]) -> Result<(), String>>;
/// Reframes a mutated input before the call.
pub type Fix = fn(Vec<u8>, &mut ChaCha8Rng) -> Vec<u8>;

/// A parser under test: its valid seeds and the call that parses one input.
pub struct Target {
    pub name: &'static str,
    pub seeds: Vec<Vec<u8>>,
    /// Text formats also get dictionary tokens and number swaps.
    pub text: bool,
    pub run: Parse,
    /// Restructures a mutated input before the call (the safetensors length prefix).
    pub fix: Option<Fix>,
}

fn err(e: deepgen::error::Error) -> String {
    e.to_string()
}

fn idx_target() -> Target {
    let raw = idx::encode_u8(&[3, 4, 4], &(0..48).map(|i| (i * 5) as u8).collect::<Vec<_>>());
    let labels = idx::encode_u8(&[3], &[1, 0, 2]);
    let mut f32s = vec![0, 0, 0x0D, 2, 0, 0, 0, 2, 0, 0, 0, 2];
    for v in [0.5f32, 1.0, -2.0, 3.25] {
        f32s.extend_from_slice(&v.to_be_bytes());
    }
    let seeds = vec![gzip(&raw), raw, labels.clone(), gzip(&labels), f32s];
    Target {
        name: "IDX",
        seeds,
        text: false,
        fix: None,
        run: Box::new(|b| {
            let i = idx::parse(b, Path::new("f.idx")).map_err(err)?;
            let _ = i.to_f32();
            Ok(())
        }),
    }
}

fn npy_target() -> Target {
    let f64s: Vec<u8> = [0.5f64, -2.25, 3.0, 4.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    let seeds = vec![
        npy::encode_f32(&[2, 3], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]),
        npy::encode_raw("<f8", &[2, 2], &f64s),
        npy::encode_raw("|u1", &[1, 2, 2], &[0, 51, 255, 102]),
        npy::encode_f32(&[1, 1, 2, 2], &[0.5; 4]),
    ];
    Target {
        name: "NPY",
        seeds,
        text: false,
        fix: None,
        run: Box::new(|b| {
            npy::parse(b, Path::new("f.npy")).map_err(err)?;
            Ok(())
        }),
    }
}

fn csv_target() -> Target {
    let seeds: Vec<Vec<u8>> = [
        &b"1,2,3\n4,5,6\n"[..],
        b"a,b\n0.5,-1e-3\n2,3\n",
        b"\xEF\xBB\xBF1;2\n3;4\n",
        b"569,30,malignant,benign\n1.5,2.5\n3,4\n",
        b"1\t2\n3\t4\n\n",
    ]
    .iter()
    .map(|s| s.to_vec())
    .collect();
    Target {
        name: "CSV",
        seeds,
        text: true,
        fix: None,
        run: Box::new(|b| {
            data::parse_csv_bytes(b, Path::new("f.csv")).map_err(err)?;
            Ok(())
        }),
    }
}

fn png_bytes(img: image::DynamicImage) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).expect("encode a PNG");
    out.into_inner()
}

/// Recomputes the CRC of every whole chunk after a mutation (most of the time), so that the
/// mutation reaches the header's size fields and the compressed pixels instead of the first CRC
/// check.
fn fix_png(mut b: Vec<u8>, r: &mut ChaCha8Rng) -> Vec<u8> {
    if r.gen_ratio(1, 5) {
        return b;
    }
    let mut i = 8;
    while i + 12 <= b.len() {
        let n = u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]) as usize;
        let Some(end) = (i + 8).checked_add(n).filter(|&e| e + 4 <= b.len()) else { break };
        let mut crc = flate2::Crc::new();
        crc.update(&b[i + 4..end]);
        b[end..end + 4].copy_from_slice(&crc.sum().to_be_bytes());
        i = end + 4;
    }
    b
}

fn png_target() -> Target {
    let grey = image::GrayImage::from_fn(6, 5, |x, y| image::Luma([(x * 40 + y * 7) as u8]));
    let rgb = image::RgbImage::from_fn(4, 4, |x, y| image::Rgb([x as u8 * 60, y as u8 * 60, 9]));
    let seeds = vec![
        png_bytes(image::DynamicImage::ImageLuma8(grey)),
        png_bytes(image::DynamicImage::ImageRgb8(rgb)),
    ];
    Target {
        name: "PNG",
        seeds,
        text: false,
        fix: Some(fix_png),
        run: Box::new(|b| {
            data::decode_png_bytes(b, Path::new("f.png")).map_err(err)?;
            Ok(())
        }),
    }
}

/// A folder of PNGs: a valid `a.png` of 6x5 grey pixels beside the mutated `b.png` (the
/// folder reader's checks: one size and colour type for all, the data set's size).
fn png_folder_target() -> Target {
    let mut t = png_target();
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::write(dir.path().join("a.png"), &t.seeds[0]).expect("write a.png");
    t.name = "PNG folder";
    t.run = Box::new(move |b| {
        std::fs::write(dir.path().join("b.png"), b).map_err(|e| e.to_string())?;
        data::load_png_dir(dir.path()).map_err(err)?;
        Ok(())
    });
    t
}

/// `model.safetensors` bytes of a freshly built tiny model.
fn checkpoint_bytes(name: &str, shape: &[usize]) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let cfg = ModelConfig::preset(name, shape, true).expect("a preset");
    let model = Model::new(&cfg, 3, &Device::Cpu).expect("a model");
    let run = RunDir::create(dir.path()).expect("a run directory");
    run.save(&model, &[], 7, 3).expect("a checkpoint");
    std::fs::read(dir.path().join("model.safetensors")).expect("read the checkpoint")
}

/// Re-frames safetensors bytes after a mutation: half of the time the mutation is moved into
/// the JSON header (and the length prefix recomputed), so that it reaches the metadata and the
/// model config instead of failing at the first length check.
fn fix_safetensors(b: Vec<u8>, r: &mut ChaCha8Rng) -> Vec<u8> {
    if b.len() < 8 || r.gen_bool(0.5) {
        return b;
    }
    let n = u64::from_le_bytes(b[..8].try_into().unwrap_or([0; 8])) as usize;
    let Some(header) = b.get(8..8 + n) else { return b };
    let Ok(text) = std::str::from_utf8(header) else { return b };
    let mutated = mutate_numbers(text, r);
    let mut out = (mutated.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(mutated.as_bytes());
    out.extend_from_slice(&b[8 + n..]);
    out
}

fn checkpoint_target() -> Target {
    let seeds = vec![
        checkpoint_bytes("bernoulli", &[16]),
        checkpoint_bytes("fvsbn", &[1, 4, 4]),
        checkpoint_bytes("nade", &[1, 4, 4]),
        checkpoint_bytes("made", &[1, 4, 4]),
        checkpoint_bytes("vae", &[1, 4, 4]),
    ];
    Target {
        name: "safetensors checkpoint",
        seeds,
        text: false,
        fix: Some(fix_safetensors),
        run: Box::new(|b| {
            deepgen::run::checkpoint::model_from_bytes(
                b,
                Path::new("model.safetensors"),
                &Device::Cpu,
            )
            .map_err(err)?;
            Ok(())
        }),
    }
}

fn config_text(name: &str, shape: &[usize]) -> Vec<u8> {
    let cfg = RunConfig {
        seed: 5,
        data: DataConfig {
            train: "digits".into(),
            train_b: None,
            val_b: None,
            val: Some("digits:test".into()),
            binarize: data::Binarize::Static,
            shape: shape.to_vec(),
            mean: vec![],
            std: vec![],
        },
        train: ModelConfig::recipe(name, shape).expect("a recipe"),
        model: ModelConfig::preset(name, shape, true).expect("a preset"),
    };
    toml::to_string_pretty(&cfg).expect("toml").into_bytes()
}

fn config_target() -> Target {
    let seeds = ["vae", "nade", "fvsbn", "gan", "pixelcnn", "bernoulli-mixture"]
        .iter()
        .map(|m| config_text(m, &[1, 8, 8]))
        .collect();
    Target {
        name: "config.toml",
        seeds,
        text: true,
        fix: None,
        run: Box::new(|b| {
            let text = std::str::from_utf8(b).map_err(|e| e.to_string())?;
            let cfg = deepgen::run::parse_config(text, Path::new("config.toml")).map_err(err)?;
            cfg.train.check().map_err(err)?;
            cfg.data.train.parse::<DataSpec>().map_err(err)?;
            Model::new(&cfg.model, cfg.seed, &Device::Cpu).map_err(err)?;
            Ok(())
        }),
    }
}

fn spec_target() -> Target {
    let seeds: Vec<Vec<u8>> = [
        "digits",
        "digits:test+only=3",
        "digits+without=1,2+noise=0.3",
        "digits+invert+rotate+flip+shrink",
        "toy:ring8",
        "toy:grid25:test+uniform",
        "csv:some/file+name.csv+noise",
        "mnist:test+only=0,1",
        "digits+attributes+label=thick",
        "digits+part=1/2+pad=4",
        "digits+tint=red+upscale=16",
        "digits+captions+seen",
        "digits+upscale=28+captions+unseen",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    // The modifiers act on 40 digits: loading the embedded sets again for every input would
    // measure gzip, not the parser.
    let digits = DataSpec::Digits { test: true }.load(0).expect("digits").take(40);
    Target {
        name: "data spec + modifiers",
        seeds,
        text: true,
        fix: None,
        run: Box::new(move |b| {
            let text = std::str::from_utf8(b).map_err(|e| e.to_string())?;
            let spec: DataSpec = text.parse().map_err(err)?;
            apply_spec(&spec, &digits).map_err(err)?;
            Ok(())
        }),
    }
}

fn apply_spec(spec: &DataSpec, digits: &Dataset) -> deepgen::error::Result<()> {
    match spec {
        DataSpec::Modified { base, mods } => {
            let mut d = match base.as_ref() {
                DataSpec::Toy { kind, .. } => {
                    let mut r = deepgen::rng::rng(1);
                    data::toy::sample(*kind, 50, &mut r, "toy")?
                }
                _ => digits.clone(),
            };
            for (t, m) in mods {
                d = m.apply(d, t)?;
            }
            Ok(())
        }
        DataSpec::Toy { kind, .. } => {
            data::toy::sample(*kind, 50, &mut deepgen::rng::rng(1), "toy").map(|_| ())
        }
        _ => Ok(()),
    }
}

/// Every target.
pub fn targets() -> Vec<Target> {
    vec![
        idx_target(),
        npy_target(),
        csv_target(),
        png_target(),
        png_folder_target(),
        checkpoint_target(),
        config_target(),
        spec_target(),
    ]
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b).expect("gzip");
    e.finish().expect("gzip")
}

// ---------------------------------------------------------------------------------------------
// Mutations.

const INTERESTING_U32: [u32; 10] =
    [0, 1, 2, 0x7f, 0xff, 0xffff, 0x10000, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff];
const NUMBERS: [&str; 14] = [
    "0",
    "-1",
    "1e30",
    "-1e30",
    "NaN",
    "inf",
    "99999999999",
    "4294967296",
    "18446744073709551616",
    "1000000",
    "0.0",
    "-0",
    "65536",
    "3",
];
const TOKENS: [&str; 18] = [
    "\u{feff}", ",", ";", "\t", "\n", "+", ":", "=", "\"", "[", "]", "{", "}", "+only=", "+noise=",
    "'", "+part=", "+pad=",
];

/// `text` with one digit run replaced by an interesting number.
fn mutate_numbers(text: &str, r: &mut ChaCha8Rng) -> String {
    let runs: Vec<(usize, usize)> = {
        let b = text.as_bytes();
        let mut v = vec![];
        let mut i = 0;
        while i < b.len() {
            if b[i].is_ascii_digit() {
                let s = i;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                v.push((s, i));
            } else {
                i += 1;
            }
        }
        v
    };
    if runs.is_empty() {
        return text.to_string();
    }
    let (s, e) = runs[r.gen_range(0..runs.len())];
    format!("{}{}{}", &text[..s], NUMBERS[r.gen_range(0..NUMBERS.len())], &text[e..])
}

/// One mutation of `b` (`other`: another seed to splice from).
fn mutate_once(b: &mut Vec<u8>, other: &[u8], text: bool, r: &mut ChaCha8Rng) {
    let len = b.len();
    let at = |r: &mut ChaCha8Rng, n: usize| if n == 0 { 0 } else { r.gen_range(0..n) };
    match r.gen_range(0..if text { 10 } else { 8 }) {
        0 if len > 0 => {
            let i = at(r, len);
            b[i] ^= 1 << r.gen_range(0..8);
        }
        1 if len > 0 => {
            let i = at(r, len);
            b[i] = [0u8, 0xff, 0x7f, 0x80, 1, b'0', b'9', b'-'][r.gen_range(0..8)];
        }
        2 if len >= 4 => {
            let i = at(r, len - 3);
            let v = INTERESTING_U32[r.gen_range(0..INTERESTING_U32.len())];
            let bytes = if r.gen_bool(0.5) { v.to_be_bytes() } else { v.to_le_bytes() };
            b[i..i + 4].copy_from_slice(&bytes);
        }
        3 if len > 0 => {
            let i = at(r, len);
            b.truncate(i);
        }
        4 if len > 0 => {
            let i = at(r, len);
            let n = r.gen_range(1..=16.min(len - i).max(1));
            b.drain(i..(i + n).min(len));
        }
        5 if len > 0 => {
            let i = at(r, len);
            let n = r.gen_range(1..=64.min(len - i).max(1));
            let piece: Vec<u8> = b[i..(i + n).min(len)].to_vec();
            let j = at(r, len);
            b.splice(j..j, piece);
        }
        6 if !other.is_empty() => {
            let i = at(r, len + 1);
            let j = at(r, other.len());
            b.truncate(i);
            b.extend_from_slice(&other[j..]);
        }
        7 => {
            let i = at(r, len + 1);
            let n = r.gen_range(1..8);
            let junk: Vec<u8> = (0..n).map(|_| r.gen()).collect();
            b.splice(i..i, junk);
        }
        8 => {
            let i = at(r, len + 1);
            let t = TOKENS[r.gen_range(0..TOKENS.len())].as_bytes();
            b.splice(i..i, t.iter().copied());
        }
        _ => {
            if let Ok(t) = std::str::from_utf8(b) {
                *b = mutate_numbers(t, r).into_bytes();
            }
        }
    }
}

/// Input number `k` of a run: a seed with 1-8 mutations, or (1 in 16) random bytes.
pub fn input(t: &Target, r: &mut ChaCha8Rng) -> Vec<u8> {
    if r.gen_ratio(1, 16) {
        let n = r.gen_range(0..256);
        return (0..n).map(|_| r.gen()).collect();
    }
    let mut b = t.seeds[r.gen_range(0..t.seeds.len())].clone();
    let other = &t.seeds[r.gen_range(0..t.seeds.len())];
    for _ in 0..r.gen_range(1..=8) {
        mutate_once(&mut b, other, t.text, r);
    }
    match t.fix {
        Some(f) => f(b, r),
        None => b,
    }
}

// ---------------------------------------------------------------------------------------------
// Runs.

/// What a run of one target found.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub name: String,
    pub inputs: usize,
    pub valid: usize,
    pub errors: usize,
    /// Inputs that panicked (the first few kept, hex).
    pub panics: usize,
    pub panic_inputs: Vec<String>,
    /// Errors whose message is not one line.
    pub multiline: usize,
    pub multiline_examples: Vec<String>,
    /// Inputs whose peak memory passed the bound (+ 16x their size + 1 MB).
    pub over_bound: usize,
    pub peak_bytes: usize,
    /// Distinct error messages (their first 60 characters), to see what the run reached.
    pub messages: HashMap<String, usize>,
    pub seconds: f64,
}

/// Feeds `n` inputs to `t` from seed `seed`. Panics are caught and counted (the panic hook is
/// silenced for the run).
pub fn fuzz(t: &Target, n: usize, seed: u64) -> Tally {
    deepgen::limits::set_memory_bound(BOUND);
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    let mut tally = Tally { name: t.name.to_string(), ..Default::default() };
    let t0 = std::time::Instant::now();
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    for _ in 0..n {
        let b = input(t, &mut r);
        let (res, peak) =
            measure(|| std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (t.run)(&b))));
        tally.inputs += 1;
        tally.peak_bytes = tally.peak_bytes.max(peak);
        if peak as u64 > BOUND + 16 * b.len() as u64 + (1 << 20) {
            tally.over_bound += 1;
        }
        match res {
            Ok(Ok(())) => tally.valid += 1,
            Ok(Err(m)) => {
                tally.errors += 1;
                if m.contains('\n') {
                    tally.multiline += 1;
                    if tally.multiline_examples.len() < 3 {
                        tally.multiline_examples.push(m.clone());
                    }
                }
                let key: String = m.chars().take(60).collect();
                *tally.messages.entry(key).or_default() += 1;
            }
            Err(_) => {
                tally.panics += 1;
                if tally.panic_inputs.len() < 3 {
                    tally.panic_inputs.push(b.iter().map(|x| format!("{x:02x}")).collect());
                }
            }
        }
    }
    std::panic::set_hook(hook);
    tally.seconds = t0.elapsed().as_secs_f64();
    tally
}
