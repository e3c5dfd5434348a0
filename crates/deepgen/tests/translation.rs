//! Image-to-image translation (issue 23): the layers the generators need, the schedule, the
//! attribute labels and their sources, and CycleGAN's and StarGAN's loss terms against
//! independent computations.

mod common;

use candle_core::{Device, Tensor};
use deepgen::data::attributes::{self, Attribute, Change};
use deepgen::data::{DataSpec, Dataset};
use deepgen::models::cyclegan::CycleGanConfig;
use deepgen::models::stargan::{classification_loss, StarGanConfig};
use deepgen::models::{CycleGan, Model, ModelConfig, Side, StarGan, Target};
use deepgen::nn::conv::{conv_down, Strided};
use deepgen::nn::stack::{reflect_pad, Init, Stack};
use deepgen::nn::Params;
use deepgen::recipe::{Schedule, TrainConfig};
use deepgen::rng;

fn vec1(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * (1.0 + b.abs())
}

#[test]
fn reflection_padding_mirrors_about_the_border_pixel() {
    // One 3x3 map of 1..9, one channel: PyTorch's ReflectionPad2d(1) gives row -1 = row 1.
    let x =
        Tensor::from_vec((1..=9).map(|v| v as f32).collect(), (1, 3, 3, 1), &Device::Cpu).unwrap();
    let y = reflect_pad(&x, 1).unwrap();
    assert_eq!(y.dims(), &[1, 5, 5, 1]);
    let want = [
        5., 4., 5., 6., 5., //
        2., 1., 2., 3., 2., //
        5., 4., 5., 6., 5., //
        8., 7., 8., 9., 8., //
        5., 4., 5., 6., 5.,
    ];
    assert_eq!(vec1(&y), want);
    assert!(reflect_pad(&x, 3).is_err(), "padding as large as the side has no reflection");
}

#[test]
fn a_residual_block_adds_its_input_to_its_output() {
    let dev = Device::Cpu;
    let mut p = Params::new();
    let mut r = rng::rng(3);
    let g = Strided { k: 3, stride: 1, pad: 1 };
    let mut s = Stack::new("res", 4 * 4 * 2, &dev);
    s.save();
    s.down(&mut p, "conv", g, (4, 4, 2), 2, Init::Default, &mut r).unwrap();
    s.add_saved();
    let x = rng::randn(&mut r, &[3, 4, 4, 2], &dev).unwrap();
    let y = s.forward(&x, true).unwrap();
    let f = conv_down(g, &x, s.vars[0].as_tensor(), s.vars[1].as_tensor()).unwrap();
    let want = (x + f).unwrap();
    for (a, b) in vec1(&y).iter().zip(vec1(&want)) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
}

#[test]
fn linear_decay_is_constant_for_half_the_run_then_falls_to_zero() {
    let t = TrainConfig { steps: 10, ..TrainConfig::default() };
    let f: Vec<f64> = (0..10).map(|s| t.lr_factor(Schedule::LinearDecay, s)).collect();
    assert_eq!(&f[..5], &[1.0; 5]);
    let want = [1.0, 0.8, 0.6, 0.4, 0.2];
    for (a, b) in f[5..].iter().zip(want) {
        assert!((a - b).abs() < 1e-12, "{f:?}");
    }
    assert_eq!("linear-decay".parse::<Schedule>().unwrap(), Schedule::LinearDecay);
}

fn digit_cols() -> Vec<Attribute> {
    attributes::digit_columns()
}

#[test]
fn attribute_changes_parse_by_name_and_unknown_names_are_refused_with_the_known_ones() {
    let cols = digit_cols();
    let p = |s: &str| attributes::parse_changes(&cols, s);
    assert_eq!(
        p("thick,red").unwrap(),
        vec![Change { column: 1, value: 1 }, Change { column: 0, value: 0 }]
    );
    assert_eq!(p("colour=blue, not-invert").unwrap()[0], Change { column: 0, value: 2 });
    assert_eq!(p("not-invert").unwrap(), vec![Change { column: 2, value: 0 }]);
    assert_eq!(p("thick=0").unwrap(), vec![Change { column: 1, value: 0 }]);
    let e = p("purple").unwrap_err().to_string();
    assert!(
        e.contains("unknown attribute `purple`") && e.contains("colour (red|green|blue)"),
        "{e}"
    );
    assert!(p("red,blue").unwrap_err().to_string().contains("set twice"));
    assert!(p("colour=pink").unwrap_err().to_string().contains("not a value of `colour`"));
    // Encoding: one-hot colour, then the binary attributes.
    let mut enc = vec![];
    attributes::encode(&cols, &[2, 1, 0], &mut enc);
    assert_eq!(enc, vec![0., 0., 1., 1., 0.]);
    assert_eq!(attributes::decode(&cols, &enc), vec![2, 1, 0]);
    assert_eq!(attributes::decode_logits(&cols, &[0.1, 2.0, -1.0, -0.5, 0.3]), vec![1, 0, 1]);
}

#[test]
fn an_attributes_file_names_binary_columns_and_exclusive_groups() {
    let text = "file,hair,male,young\nb.png,blond,1,-1\na.png,black,-1,1\nc.png,brown,1,1\n";
    let files = ["a.png".to_string(), "b.png".into(), "c.png".into()];
    let path = std::path::Path::new("attributes.csv");
    let a = attributes::parse_csv(text, path, 3, Some(&files)).unwrap();
    assert_eq!(a.columns[0], Attribute::group("hair", &["black", "blond", "brown"]));
    assert_eq!(a.columns[1], Attribute::binary("male"));
    // Rows follow the folder's order, not the file's.
    assert_eq!(a.values, vec![0, 0, 1, 1, 1, 0, 2, 1, 1]);
    let bad = |t: &str| attributes::parse_csv(t, path, 3, Some(&files)).unwrap_err().to_string();
    assert!(bad("file,male\na.png,1\nb.png,0\n").contains("no attributes for image c.png"));
    assert!(bad("file,male\na.png,1\nb.png,0\nd.png,1\n").contains("`d.png` is not an image"));
    assert!(bad("file,male\na.png,1\na.png,0\n").contains("a second row"));
    assert!(bad("name,male\n").contains("first column must be `file`"));
    assert!(bad("file,male\na.png,1,0\n").contains("3 fields, the header has 2"));
    // Without file names (an IDX set), rows are in order and extra rows are refused.
    let idx = attributes::parse_csv("thick\n1\n0\n", path, 2, None).unwrap();
    assert_eq!(idx.values, vec![1, 0]);
    let extra = attributes::parse_csv("thick\n1\n0\n1\n", path, 2, None).unwrap_err();
    assert!(extra.to_string().contains("more rows than the 2 images"));
}

#[test]
fn every_digit_is_drawn_with_its_own_attributes_and_labels_follow() {
    let base = DataSpec::Digits { test: true }.load(0).unwrap();
    let d: Dataset = "digits:test+attributes".parse::<DataSpec>().unwrap().load(0).unwrap();
    assert_eq!((d.n, d.shape.clone()), (base.n, vec![3, 8, 8]));
    let a = d.attributes.as_ref().unwrap();
    let mut seen = [[0usize; 3]; 3];
    for i in 0..d.n {
        let v = a.row(i);
        for (j, &x) in v.iter().enumerate() {
            seen[j][x as usize] += 1;
        }
        // By hand: dilation by the 3x3 cross, then 1 - g, then the colour's plane.
        let mut g = base.row(i).to_vec();
        if v[1] == 1 {
            let src = g.clone();
            for y in 0..8usize {
                for x in 0..8usize {
                    let mut m = src[y * 8 + x];
                    for (dy, dx) in [(-1i32, 0i32), (1, 0), (0, -1), (0, 1)] {
                        let (yy, xx) = (y as i32 + dy, x as i32 + dx);
                        if (0..8).contains(&yy) && (0..8).contains(&xx) {
                            m = m.max(src[(yy * 8 + xx) as usize]);
                        }
                    }
                    g[y * 8 + x] = m;
                }
            }
        }
        if v[2] == 1 {
            g.iter_mut().for_each(|p| *p = 1.0 - *p);
        }
        let row = d.row(i);
        for c in 0..3 {
            for k in 0..64 {
                let want = if c as u32 == v[0] { g[k] } else { 0.0 };
                assert!((row[c * 64 + k] - want).abs() < 1e-6, "image {i} channel {c}");
            }
        }
    }
    // Every value occurs: the draws are not stuck.
    let counts = [&seen[0][..], &seen[1][..2], &seen[2][..2]];
    assert!(counts.iter().all(|c| c.iter().all(|&k| k > 0)), "{seen:?}");
    assert_eq!(d.labels, base.labels);
    // `+label=colour` makes the colour the label; `+part` keeps attributes with their rows.
    let l: Dataset =
        "digits:test+attributes+label=colour".parse::<DataSpec>().unwrap().load(0).unwrap();
    let colours: Vec<u32> = (0..d.n).map(|i| a.row(i)[0]).collect();
    assert_eq!(l.labels.unwrap(), colours);
    let h: Dataset =
        "digits:test+attributes+part=2/2".parse::<DataSpec>().unwrap().load(0).unwrap();
    let first = d.n - h.n;
    assert_eq!(h.attributes.unwrap().row(0), a.row(first));
    assert_eq!(h.x[..192], d.row(first)[..]);
    let e = "digits+label=colour".parse::<DataSpec>().unwrap().load(0).unwrap_err();
    assert!(e.to_string().contains("no attributes to label by"), "{e}");
}

#[test]
fn padding_frames_each_image_with_background() {
    let load = |s: &str| s.parse::<DataSpec>().unwrap().load(0).unwrap();
    let (d, p) = (load("digits:test"), load("digits:test+pad=2"));
    assert_eq!((p.n, p.shape.clone()), (d.n, vec![1, 12, 12]));
    for i in [0, 7] {
        let row = p.row(i);
        for y in 0..12 {
            for x in 0..12 {
                let inside = (2..10).contains(&y) && (2..10).contains(&x);
                let want = if inside { d.row(i)[(y - 2) * 8 + x - 2] } else { 0.0 };
                assert_eq!(row[y * 12 + x], want);
            }
        }
    }
}

#[test]
fn two_parts_of_a_set_share_no_example_and_cover_it() {
    let all = DataSpec::Digits { test: false }.load(0).unwrap();
    let load = |s: &str| s.parse::<DataSpec>().unwrap().load(0).unwrap();
    let (a, b) = (load("digits+part=1/2"), load("digits+invert+part=2/2"));
    assert_eq!(a.n + b.n, all.n);
    assert_eq!(a.x[..], all.x[..a.n * 64]);
    let inv: Vec<f32> = all.x[a.n * 64..].iter().map(|v| 1.0 - v).collect();
    assert_eq!(b.x, inv);
    assert!("digits+part=3/2".parse::<DataSpec>().is_err());
}

#[test]
fn colour_images_round_trip_through_png_folders_and_npy() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("png");
    std::fs::create_dir(&dir).unwrap();
    let mut want = vec![];
    for k in 0..2u8 {
        let img = image::RgbImage::from_fn(4, 4, |x, y| {
            image::Rgb([x as u8 * 60 + k, y as u8 * 60, 200 - k * 100])
        });
        img.save(dir.join(format!("{k}.png"))).unwrap();
        for c in 0..3 {
            want.extend(img.pixels().map(|p| p.0[c] as f32 / 255.0));
        }
    }
    std::fs::write(dir.join("attributes.csv"), "file,warm\n1.png,1\n0.png,0\n").unwrap();
    let d = DataSpec::Png(dir.clone()).load(0).unwrap();
    assert_eq!((d.n, d.shape.clone()), (2, vec![3, 4, 4]));
    assert_eq!(d.x, want);
    assert_eq!(d.attributes.unwrap().values, vec![0, 1]);
    let npy = tmp.path().join("x.npy");
    std::fs::write(&npy, deepgen::data::npy::encode_f32(&[2, 3, 4, 4], &want)).unwrap();
    let n = DataSpec::Npy(npy).load(0).unwrap();
    assert_eq!((n.shape.clone(), n.x.clone()), (vec![3, 4, 4], want));
}

#[test]
fn stargan_classification_terms_match_a_hand_computation_per_attribute_kind() {
    let cols = digit_cols();
    let logits = [0.3f32, -1.2, 2.0, 0.7, -0.4, -2.0, 0.5, 1.5, 1.1, 0.2];
    let target = [0f32, 0., 1., 1., 0., 1., 0., 0., 0., 1.];
    let t = |v: &[f32]| Tensor::from_vec(v.to_vec(), (2, 5), &Device::Cpu).unwrap();
    let got = classification_loss(&cols, &t(&logits), &t(&target)).unwrap();
    let got = got.to_scalar::<f32>().unwrap() as f64;
    let mut want = 0.0;
    for i in 0..2 {
        let l: Vec<f64> = logits[i * 5..i * 5 + 5].iter().map(|v| *v as f64).collect();
        let y: Vec<f64> = target[i * 5..i * 5 + 5].iter().map(|v| *v as f64).collect();
        // Softmax cross-entropy over the colour group.
        let z: f64 = l[..3].iter().map(|v| v.exp()).sum();
        let k = y[..3].iter().position(|v| *v == 1.0).unwrap();
        want += z.ln() - l[k];
        // Sigmoid cross-entropy for thick and invert.
        for j in 3..5 {
            let s = 1.0 / (1.0 + (-l[j]).exp());
            want -= y[j] * s.ln() + (1.0 - y[j]) * (1.0 - s).ln();
        }
    }
    want /= 2.0;
    assert!(close(got, want, 1e-5), "{got} vs {want}");
}

fn ws(w: &[(String, candle_core::Var)]) -> Vec<Tensor> {
    w.iter().map(|(_, v)| v.as_tensor().clone()).collect()
}

fn tiny(config: ModelConfig, seed: u64) -> Model {
    Model::new(&config, seed, &Device::Cpu).unwrap()
}

fn cyclegan_config(pool: usize) -> CycleGanConfig {
    CycleGanConfig {
        shape: vec![1, 8, 8],
        channels: 2,
        blocks: 1,
        cycle_weight: 10.0,
        identity_weight: 0.5,
        pool_size: pool,
        loss: deepgen::models::GanLoss::LeastSquares,
    }
}

#[test]
fn cyclegan_cycle_and_identity_terms_match_the_translations() {
    let m = tiny(ModelConfig::CycleGan(cyclegan_config(0)), 4);
    common::randomize(&m, 5, 0.3);
    let cg = m.get::<CycleGan>().unwrap();
    let game = m.as_adversarial().unwrap();
    let mut r = rng::rng(6);
    let x = rng::uniform(&mut r, &[3, 128], 0.0, 1.0, &Device::Cpu).unwrap();
    let fake = game.fake(&x, None, &mut r).unwrap();
    let extra = game.generator_extra(&x, &fake, None).unwrap();
    let t = m.as_translator().unwrap();
    let (a, b) = (x.narrow(1, 0, 64).unwrap(), x.narrow(1, 64, 64).unwrap());
    let l1 = |p: &Tensor, q: &Tensor| {
        vec1(p).iter().zip(vec1(q)).map(|(u, v)| (u - v).abs() as f64).sum::<f64>() / 192.0
    };
    let gb = t.translate(&a, &Target::B).unwrap();
    let fa = t.translate(&b, &Target::A).unwrap();
    // In [-1, 1] every L1 is twice the [0, 1] one.
    let cycle = 10.0
        * 2.0
        * (l1(&t.translate(&gb, &Target::A).unwrap(), &a)
            + l1(&t.translate(&fa, &Target::B).unwrap(), &b));
    let identity = 10.0
        * 0.5
        * 2.0
        * (l1(&t.translate(&b, &Target::B).unwrap(), &b)
            + l1(&t.translate(&a, &Target::A).unwrap(), &a));
    let get =
        |n: &str| extra.iter().find(|(k, _)| *k == n).unwrap().1.to_scalar::<f32>().unwrap() as f64;
    assert!(close(get("cycle"), cycle, 1e-4), "{} vs {cycle}", get("cycle"));
    assert!(close(get("identity"), identity, 1e-4), "{} vs {identity}", get("identity"));
    // The fakes are (F(b), G(a)) in [-1, 1].
    let fx = vec1(&fake.x);
    let want: Vec<f32> = vec1(&Tensor::cat(&[&fa, &gb], 1).unwrap());
    for (u, v) in fx.iter().zip(want) {
        assert!((u - (2.0 * v - 1.0)).abs() < 1e-4);
    }
    // Each half is judged by its own critic: 2x2 patches each on 8x8 images.
    let (v, q) = game.critic(&fake, &ws(&game.d_weights())).unwrap();
    assert!(q.is_none());
    assert_eq!(v.dims(), &[3, 2 * 4]);
    // The adversarial weight makes 1/2 mean over both critics into the reference's sum.
    assert_eq!(game.adv_weight(), 4.0);
    assert!(cg.cfg.identity_weight > 0.0);
}

#[test]
fn the_critics_see_a_history_of_generated_images_kept_in_the_checkpoint() {
    let m = tiny(ModelConfig::CycleGan(cyclegan_config(3)), 4);
    let game = m.as_adversarial().unwrap();
    let mut r = rng::rng(8);
    let mut made: Vec<Vec<f32>> = vec![];
    for k in 0..6 {
        let x = rng::uniform(&mut r, &[2, 128], -1.0, 1.0, &Device::Cpu).unwrap();
        made.extend(x.to_vec2::<f32>().unwrap());
        let side = Side { x: x.clone(), cond: None, codes: None };
        let seen = game.critic_fakes(side, &mut r).unwrap().x.to_vec2::<f32>().unwrap();
        if k == 0 {
            // While the pool fills, the new images pass through.
            assert_eq!(seen, x.to_vec2::<f32>().unwrap());
        }
        // Each critic's half comes from its own pool.
        for row in seen {
            assert!(made.iter().any(|g| g[..64] == row[..64]), "an A image that was generated");
            assert!(made.iter().any(|g| g[64..] == row[64..]), "a B image that was generated");
        }
    }
    let len = m.params.get("pool.len").unwrap().as_tensor().to_vec1::<f32>().unwrap();
    assert_eq!(len, vec![3.0, 3.0]);
    let stored = m.params.get("pool.a").unwrap().as_tensor().to_vec2::<f32>().unwrap();
    for row in stored {
        assert!(made.iter().any(|g| g[..64] == row[..]), "the pool holds generated A halves");
    }
}

#[test]
fn stargan_targets_are_the_batch_labels_shuffled_and_reconstruction_goes_back() {
    let cfg = StarGanConfig {
        shape: vec![3, 8, 8],
        attributes: digit_cols(),
        channels: 2,
        blocks: 1,
        critic_layers: 2,
        cls_weight: 1.0,
        rec_weight: 10.0,
        identity_weight: 0.0,
    };
    let m = tiny(ModelConfig::StarGan(cfg), 2);
    let s = m.get::<StarGan>().unwrap();
    let game = m.as_adversarial().unwrap();
    let mut r = rng::rng(1);
    let d = "digits:test+attributes".parse::<DataSpec>().unwrap().load(0).unwrap();
    let idx: Vec<usize> = (0..6).collect();
    let px = d.batch(&idx, &Device::Cpu).unwrap();
    let enc = d.attributes.as_ref().unwrap().encode_rows(&idx);
    let c = Tensor::from_vec(enc, (6, 5), &Device::Cpu).unwrap();
    let x = Tensor::cat(&[&px, &c], 1).unwrap();
    let fake = game.fake(&x, None, &mut r).unwrap();
    let mut org: Vec<Vec<f32>> = c.to_vec2().unwrap();
    let mut trg: Vec<Vec<f32>> = fake.codes.as_ref().unwrap().to_vec2().unwrap();
    let key = |v: &Vec<f32>| v.iter().map(|f| f.to_string()).collect::<String>();
    org.sort_by_key(key);
    trg.sort_by_key(key);
    assert_eq!(org, trg, "the targets are a permutation of the batch's labels");
    let (v, q) = game.critic(&fake, &ws(&game.d_weights())).unwrap();
    assert_eq!((v.dims(), q.as_ref().unwrap().dims()), (&[6, 4][..], &[6, 5][..]));
    let extra = game.generator_extra(&x, &fake, q.as_ref()).unwrap();
    let rec = extra.iter().find(|(k, _)| *k == "g_rec").unwrap().1.to_scalar::<f32>().unwrap();
    let back = s.generate(&fake.x, &c).unwrap();
    let net_x = ((px * 2.0).unwrap() - 1.0).unwrap();
    let want = vec1(&back).iter().zip(vec1(&net_x)).map(|(a, b)| (a - b).abs() as f64).sum::<f64>()
        / (6.0 * 192.0)
        * 10.0;
    assert!(close(rec as f64, want, 1e-4), "{rec} vs {want}");
    let real = game.real(&x, None, &mut r).unwrap();
    let (_, qr) = game.critic(&real, &ws(&game.d_weights())).unwrap();
    let d_cls = game.real_head_loss(qr.as_ref().unwrap(), &real).unwrap();
    let by_hand = classification_loss(&digit_cols(), qr.as_ref().unwrap(), &c).unwrap();
    assert_eq!(d_cls[0].1.to_scalar::<f32>().unwrap(), by_hand.to_scalar::<f32>().unwrap());
}
