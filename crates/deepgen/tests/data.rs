//! Data formats, specs and transforms, including every malformed input we know of.

use std::io::Write;
use std::path::Path;

use deepgen::data::{idx, npy, Binarize, DataSpec, Dataset};

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn embedded_sets_have_the_documented_sizes() {
    let tr = DataSpec::Mnist { test: false }.load(0).unwrap();
    assert_eq!((tr.n, tr.shape.clone()), (8000, vec![1, 28, 28]));
    let te = DataSpec::Mnist { test: true }.load(0).unwrap();
    assert_eq!(te.n, 2000);
    assert_eq!(te.labels.as_ref().unwrap().len(), 2000);
    assert!(tr.x.iter().all(|v| (0.0..=1.0).contains(v)));
    assert!(tr.x.contains(&1.0) && tr.x.iter().any(|&v| v > 0.0 && v < 1.0));
    let labels = tr.labels.unwrap();
    assert!((0..10).all(|k| labels.iter().filter(|&&l| l == k).count() > 600));
    let d = DataSpec::Digits { test: false }.load(0).unwrap();
    let dt = DataSpec::Digits { test: true }.load(0).unwrap();
    assert_eq!((d.n, dt.n, d.shape.clone()), (1500, 297, vec![1, 8, 8]));
    assert!(d.x.iter().all(|v| (0.0..=1.0).contains(v)));
}

#[test]
fn idx_round_trip_raw_and_gzip() {
    let tmp = tempfile::tempdir().unwrap();
    let img: Vec<u8> = (0..3 * 4 * 5).map(|i| (i * 4) as u8).collect();
    let raw = idx::encode_u8(&[3, 4, 5], &img);
    let lab = idx::encode_u8(&[3], &[7, 1, 2]);
    write(tmp.path(), "set-images-idx3-ubyte", &raw);
    write(tmp.path(), "set-labels-idx1-ubyte.gz", &gz(&lab));
    let spec: DataSpec = format!("idx:{}/set", tmp.path().display()).parse().unwrap();
    let d = spec.load(0).unwrap();
    assert_eq!((d.n, d.shape.clone()), (3, vec![1, 4, 5]));
    assert_eq!(d.labels, Some(vec![7, 1, 2]));
    assert!((d.x[1] - 4.0 / 255.0).abs() < 1e-7);
    // A single gzip file path works too.
    let p = write(tmp.path(), "one.gz", &gz(&raw));
    assert_eq!(DataSpec::Idx(p).load(0).unwrap().n, 3);
}

#[test]
fn bad_idx_files_give_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let good = idx::encode_u8(&[2, 3, 3], &[1u8; 18]);
    let mut huge = vec![0u8, 0, 8, 3];
    for d in [1_000_000u32, 1_000_000, 1_000_000] {
        huge.extend_from_slice(&d.to_be_bytes());
    }
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated",
            good[..good.len() - 5].to_vec(),
            "truncated IDX file: header [2, 3, 3] needs 18 data bytes, found 13",
        ),
        ("truncated.gz", gz(&good[..good.len() - 5]), "truncated IDX file"),
        ("header-cut", good[..7].to_vec(), "truncated IDX header"),
        ("magic", b"\x1f\x00\x08\x03abcdefgh".to_vec(), "not an IDX file"),
        ("type", vec![0, 0, 0x0B, 1, 0, 0, 0, 1, 0, 0], "unsupported IDX element type 0x0b"),
        ("rank", vec![0, 0, 8, 0], "IDX rank 0"),
        ("huge", huge.clone(), "corrupt header"),
        ("huge.gz", gz(&huge), "corrupt header"),
        ("trailing", [good.clone(), vec![9]].concat(), "trailing bytes"),
        ("empty", vec![], "no 4-byte magic"),
    ];
    for (name, bytes, want) in cases {
        let p = write(tmp.path(), name, &bytes);
        let e = idx::read_file(&p).unwrap_err().to_string();
        assert!(e.contains(want), "{name}: {e}");
        assert!(e.contains(name), "{name}: message does not name the file: {e}");
        assert!(!e.contains('\n'));
    }
}

#[test]
fn idx_labels_must_match_images() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "m-images-idx3-ubyte", &idx::encode_u8(&[2, 2, 2], &[0u8; 8]));
    write(tmp.path(), "m-labels-idx1-ubyte", &idx::encode_u8(&[3], &[0u8; 3]));
    let e = DataSpec::Idx(tmp.path().join("m")).load(0).unwrap_err().to_string();
    assert!(e.contains("3 labels for 2 images"), "{e}");
    let e = DataSpec::Idx(tmp.path().join("nothing")).load(0).unwrap_err().to_string();
    assert!(e.contains("no IDX images found"), "{e}");
}

#[test]
fn png_folders() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pngs");
    std::fs::create_dir(&dir).unwrap();
    for k in 0..3u8 {
        image::GrayImage::from_fn(4, 3, |x, y| image::Luma([k * 10 + (x + y) as u8]))
            .save(dir.join(format!("{k}.png")))
            .unwrap();
    }
    let d = DataSpec::Png(dir.clone()).load(0).unwrap();
    assert_eq!((d.n, d.shape.clone()), (3, vec![1, 3, 4]));
    assert!((d.x[12 + 1] - 11.0 / 255.0).abs() < 1e-7);
    // RGB folder: channels first.
    let rgb = tmp.path().join("rgb");
    std::fs::create_dir(&rgb).unwrap();
    image::RgbImage::from_fn(2, 2, |_, _| image::Rgb([255, 0, 51]))
        .save(rgb.join("a.png"))
        .unwrap();
    let d = DataSpec::Png(rgb).load(0).unwrap();
    assert_eq!(d.shape, vec![3, 2, 2]);
    assert_eq!(d.x, vec![1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.2, 0.2, 0.2, 0.2]);
    // A different size is an error naming the file.
    image::GrayImage::new(5, 5).save(dir.join("z.png")).unwrap();
    let e = DataSpec::Png(dir.clone()).load(0).unwrap_err().to_string();
    assert!(e.contains("z.png") && e.contains("one size"), "{e}");
    // A broken PNG.
    std::fs::write(dir.join("zz.png"), b"not a png").unwrap();
    std::fs::remove_file(dir.join("z.png")).unwrap();
    let e = DataSpec::Png(dir).load(0).unwrap_err().to_string();
    assert!(e.contains("zz.png") && e.contains("cannot decode"), "{e}");
    let e = DataSpec::Png(tmp.path().join("missing")).load(0).unwrap_err().to_string();
    assert!(e.contains("missing"), "{e}");
}

#[test]
fn csv_files() {
    let tmp = tempfile::tempdir().unwrap();
    let p = write(tmp.path(), "a.csv", b"3,2,x,y\n1,2\n3.5,-4\n5,6e-1\n");
    let d = DataSpec::Csv(p).load(0).unwrap();
    assert_eq!((d.n, d.shape.clone()), (3, vec![2]));
    assert_eq!(d.x, vec![1.0, 2.0, 3.5, -4.0, 5.0, 0.6]);
    assert_eq!(d.notes, vec!["line 1 taken as a header and skipped: `3,2,x,y`".to_string()]);
    // A byte order mark does not turn the first row into a header; `;` and tabs separate too.
    for (name, text) in [
        ("bom.csv", &b"\xEF\xBB\xBF1,2\n3,4\n"[..]),
        ("semi.csv", b"1;2\n3;4\n"),
        ("tab.csv", b"1\t2\n3\t4\n"),
        ("header-semi.csv", b"a;b\n1;2\n3;4\n"),
    ] {
        let d = DataSpec::Csv(write(tmp.path(), name, text)).load(0).unwrap();
        assert_eq!((d.n, d.x.clone()), (2, vec![1.0, 2.0, 3.0, 4.0]), "{name}");
        assert_eq!(d.notes.len(), usize::from(name.starts_with("header")), "{name}");
    }
    let e = DataSpec::Csv(write(tmp.path(), "bin.csv", b"1,2\n\xff\n")).load(0).unwrap_err();
    assert!(e.to_string().contains("bin.csv: line 2: not UTF-8 text"), "{e}");
    for (name, text, want) in [
        ("nan.csv", "1,2\nnan,3\n", "line 2, column 1: value NaN is not finite"),
        ("ragged.csv", "1,2\n3\n", "line 2: 1 columns separated by `,`, expected 2"),
        ("mixed.csv", "1;2\n3,4\n", "line 2: 1 columns separated by `;`, expected 2 (it has `,`"),
        ("word.csv", "1,2\n3,abc\n", "line 2, column 2: `abc` is not a number"),
        ("empty.csv", "", "empty"),
    ] {
        let p = write(tmp.path(), name, text.as_bytes());
        let e = DataSpec::Csv(p).load(0).unwrap_err().to_string();
        assert!(e.contains(want) && e.contains(name), "{name}: {e}");
    }
}

#[test]
fn npy_files() {
    let tmp = tempfile::tempdir().unwrap();
    let v: Vec<f32> = (0..12).map(|i| i as f32 * 0.5).collect();
    let p = write(tmp.path(), "a.npy", &npy::encode_f32(&[4, 3], &v));
    let d = DataSpec::Npy(p).load(0).unwrap();
    assert_eq!((d.n, d.shape.clone(), d.x.clone()), (4, vec![3], v.clone()));
    let p = write(tmp.path(), "img.npy", &npy::encode_f32(&[2, 2, 3], &v));
    assert_eq!(DataSpec::Npy(p).load(0).unwrap().shape, vec![1, 2, 3]);
    let mut bad = npy::encode_f32(&[4, 3], &v);
    bad.truncate(bad.len() - 4);
    let p = write(tmp.path(), "short.npy", &bad);
    let e = DataSpec::Npy(p).load(0).unwrap_err().to_string();
    assert!(e.contains("short.npy") && e.contains("needs 48 data bytes"), "{e}");
    let p = write(tmp.path(), "nan.npy", &npy::encode_f32(&[2, 1], &[1.0, f32::NAN]));
    let e = DataSpec::Npy(p).load(0).unwrap_err().to_string();
    assert!(e.contains("nan.npy") && e.contains("not finite"), "{e}");
    let p = write(tmp.path(), "x.npy", b"hello");
    assert!(DataSpec::Npy(p).load(0).unwrap_err().to_string().contains("not an NPY file"));
}

#[test]
fn npy_f64_u8_and_unsupported_dtypes() {
    let tmp = tempfile::tempdir().unwrap();
    let f64s: Vec<u8> = [0.5f64, -2.25, 3.0, 4.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    let p = write(tmp.path(), "d.npy", &npy::encode_raw("<f8", &[2, 2], &f64s));
    assert_eq!(DataSpec::Npy(p).load(0).unwrap().x, vec![0.5, -2.25, 3.0, 4.0]);
    let p = write(tmp.path(), "u.npy", &npy::encode_raw("|u1", &[1, 2, 2], &[0, 51, 255, 102]));
    let d = DataSpec::Npy(p).load(0).unwrap();
    assert_eq!((d.shape.clone(), d.x.clone()), (vec![1, 2, 2], vec![0.0, 0.2, 1.0, 0.4]));
    let p = write(tmp.path(), "i.npy", &npy::encode_raw("<i4", &[1, 1], &[1, 0, 0, 0]));
    let e = DataSpec::Npy(p).load(0).unwrap_err().to_string();
    assert!(
        e.contains("i.npy") && e.contains("unsupported NPY dtype `<i4` (supported: <f4, <f8, |u1)"),
        "{e}"
    );
    let p = write(tmp.path(), "f.npy", &npy::encode_raw("<f4", &[1, 1], &[0, 0, 0, 0]));
    assert_eq!(DataSpec::Npy(p).load(0).unwrap().n, 1);
    let p = write(tmp.path(), "v.npy", &npy::encode_raw("<f4", &[4], &[0u8; 16]));
    assert!(DataSpec::Npy(p).load(0).unwrap_err().to_string().contains("expected [N, D]"));
}

#[test]
fn toy_mixtures_have_their_modes() {
    for (spec, k, std) in [("toy:ring8", 8, 0.02f32), ("toy:grid25", 25, 0.05)] {
        let d = spec.parse::<DataSpec>().unwrap().load(3).unwrap();
        assert_eq!(d.shape, vec![2]);
        let DataSpec::Toy { kind, .. } = spec.parse::<DataSpec>().unwrap() else { panic!() };
        let modes = kind.modes();
        assert_eq!(modes.len(), k);
        let labels = d.labels.clone().unwrap();
        let mut sq = 0f64;
        for i in 0..d.n {
            let m = modes[labels[i] as usize];
            sq += ((d.x[2 * i] - m[0]) as f64).powi(2) + ((d.x[2 * i + 1] - m[1]) as f64).powi(2);
        }
        let est = (sq / (2.0 * d.n as f64)).sqrt() as f32;
        assert!((est - std).abs() < 0.05 * std, "{spec}: std {est}");
        // Same seed, same points; test split differs from train.
        assert_eq!(d.x, spec.parse::<DataSpec>().unwrap().load(3).unwrap().x);
        assert_ne!(
            d.x[..10],
            format!("{spec}:test").parse::<DataSpec>().unwrap().load(3).unwrap().x[..10]
        );
    }
}

#[test]
fn specs_parse_and_reject() {
    assert_eq!("mnist".parse::<DataSpec>().unwrap(), DataSpec::Mnist { test: false });
    assert_eq!("mnist:test".parse::<DataSpec>().unwrap(), DataSpec::Mnist { test: true });
    assert_eq!("mnist:test".parse::<DataSpec>().unwrap().to_string(), "mnist:test");
    assert_eq!(DataSpec::Mnist { test: false }.held_out(), Some(DataSpec::Mnist { test: true }));
    for (s, want) in [
        ("imagenet", "unknown data spec"),
        ("mnist:valid", "unknown split"),
        ("csv:", "needs a path"),
        ("toy:moons", "unknown toy"),
    ] {
        let e = s.parse::<DataSpec>().unwrap_err().to_string();
        assert!(e.contains(want), "{s}: {e}");
    }
}

#[test]
fn binarizations() {
    let base = Dataset::new("t", vec![0.0, 0.3, 0.7, 1.0, 0.5, 0.51], vec![3], None).unwrap();
    let mut t = base.clone();
    t.binarize(Binarize::Threshold, 0).unwrap();
    assert_eq!(t.x, vec![0.0, 0.0, 1.0, 1.0, 0.0, 1.0]);
    let mut mnist = DataSpec::Mnist { test: true }.load(0).unwrap();
    let grey_mean: f64 = mnist.x.iter().map(|&v| v as f64).sum::<f64>() / mnist.x.len() as f64;
    let mut again = mnist.clone();
    mnist.binarize(Binarize::Static, 5).unwrap();
    again.binarize(Binarize::Static, 5).unwrap();
    assert!(mnist.is_binary());
    assert_eq!(mnist.x, again.x, "static binarization must be a function of the seed");
    let bin_mean: f64 = mnist.x.iter().map(|&v| v as f64).sum::<f64>() / mnist.x.len() as f64;
    assert!((bin_mean - grey_mean).abs() < 0.002, "{bin_mean} vs {grey_mean}");
    let mut out = Dataset::new("bad", vec![1.5, 0.0], vec![2], None).unwrap();
    assert!(out.binarize(Binarize::Static, 0).unwrap_err().to_string().contains("outside [0, 1]"));
    assert!("sometimes".parse::<Binarize>().is_err());
}

#[test]
fn datasets_reject_nan_and_bad_shapes() {
    let e = Dataset::new("src", vec![1.0, f32::NAN], vec![2], None).unwrap_err().to_string();
    assert!(e.contains("src") && e.contains("not finite"), "{e}");
    assert!(Dataset::new("src", vec![1.0, 2.0, 3.0], vec![2], None).is_err());
    assert!(Dataset::new("src", vec![1.0, 2.0], vec![2], Some(vec![1, 2])).is_err());
}

#[test]
fn domain_modifiers_thick_thin_tint_upscale() {
    let load = |s: &str| s.parse::<DataSpec>().unwrap().load(0);
    let base = load("mnist:test").unwrap();
    let mean = |d: &deepgen::data::Dataset| d.x.iter().sum::<f32>() / d.x.len() as f32;
    let (thick, thin) = (load("mnist:test+thick").unwrap(), load("mnist:test+thin").unwrap());
    assert!(mean(&thick) > 1.5 * mean(&base) && mean(&thin) < 0.7 * mean(&base));
    assert!(mean(&load("mnist:test+thick=2").unwrap()) > mean(&thick));
    assert_eq!(thick.labels, base.labels);
    // A colour: grey times the colour's RGB, three planes.
    let digits = load("digits").unwrap();
    let green = load("digits+tint=green").unwrap();
    assert_eq!((green.shape.clone(), green.n), (vec![3, 8, 8], digits.n));
    for i in [0, 700, 1499] {
        let (g, r) = (green.row(i), digits.row(i));
        assert!(g[..64].iter().chain(&g[128..]).all(|&v| v == 0.0));
        assert_eq!(&g[64..128], r);
    }
    // The 8x8 digits at 28x28: bilinear keeps the ink about where it was.
    let up = load("digits+upscale=28").unwrap();
    assert_eq!((up.shape.clone(), up.n), (vec![1, 28, 28], digits.n));
    assert!(up.x.iter().all(|v| (0.0..=1.0).contains(v)));
    assert!((mean(&up) - mean(&digits)).abs() < 0.02, "{} vs {}", mean(&up), mean(&digits));
    // Colour images round-trip through NPY.
    let tmp = tempfile::tempdir().unwrap();
    let p = write(tmp.path(), "c.npy", &npy::encode_f32(&[green.n, 3, 8, 8], &green.x));
    let back = DataSpec::Npy(p).load(0).unwrap();
    assert_eq!((back.shape, back.x), (green.shape.clone(), green.x.clone()));
    for (spec, want) in [
        ("digits+tint=mauve", "unknown colour `mauve` (expected red, green, blue"),
        ("digits+tint", "`tint` needs a colour"),
        ("digits+tint=red+tint=red", "colours one-channel images, these have 3 channels"),
        ("toy:ring8+thick", "`thick and thin` needs images"),
        ("digits+thin=9", "the number of steps must be 1 to 8"),
        ("digits+upscale=0", "needs a side of 1 to 1024 pixels"),
        ("digits+upscale=x", "needs a side of 1 to 1024 pixels"),
    ] {
        let e = spec.parse::<DataSpec>().and_then(|s| s.load(0)).unwrap_err().to_string();
        assert!(e.contains(want), "{spec}: {e}");
    }
}
