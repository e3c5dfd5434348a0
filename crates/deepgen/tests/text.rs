//! Text-conditional generation (issue 25): the built-in captions against the measures of their
//! images, the caption file, the matcher's loss and gradients against independent computations,
//! the text encoder's padding, GAN-CLS's three critic terms and GAN-INT's interpolation against
//! hand computations, and a text GAN's training and resume.

mod common;

use candle_core::{Device, Tensor};
use deepgen::data::captions::{self, Captions, Level, Meaning, Vocab};
use deepgen::data::{DataSpec, Dataset};
use deepgen::models::matcher::{text_config, MatcherConfig};
use deepgen::models::textgan::TextVariant;
use deepgen::models::{Matcher, Model, ModelConfig, Objective, TextGan};
use deepgen::recipe::{AdversarialConfig, TrainConfig};
use deepgen::rng;
use deepgen::train::{AdversarialTrainer, NoHooks};

use common::vec1;

fn load(spec: &str) -> Dataset {
    spec.parse::<DataSpec>().unwrap().load(0).unwrap()
}

fn softplus(v: f64) -> f64 {
    v.max(0.0) + (-v.abs()).exp().ln_1p()
}

#[test]
fn built_in_captions_state_what_is_measured_and_follow_their_rows() {
    let d = load("mnist+captions");
    let c = d.captions.as_ref().unwrap();
    assert_eq!(c.n(), d.n);
    let labels = d.labels.as_ref().unwrap();
    let mut levels = [[0usize; 3]; 3];
    for (i, &label) in labels.iter().enumerate() {
        assert_eq!(c.texts[i].len(), captions::PER_IMAGE);
        let m = captions::measure(d.row(i), &d.shape).unwrap();
        let want = Meaning::of(label, &m);
        for t in &c.texts[i] {
            assert_eq!(Meaning::parse(t), want, "image {i}: `{t}`");
        }
        for (a, l) in [m.thickness_level(), m.slant_level(), m.size_level()].iter().enumerate() {
            levels[a][*l as usize] += 1;
        }
    }
    // The thresholds are the training digits' quartiles (slant's left one by meaning): each
    // extreme level holds about a quarter of the images.
    for (a, name) in ["thickness", "slant", "size"].iter().enumerate() {
        for l in [Level::Low, Level::High] {
            let share = levels[a][l as usize] as f64 / d.n as f64;
            assert!((0.18..0.32).contains(&share), "{name} {l:?}: {share}");
        }
    }
    // Seen and unseen split the set; the unseen images are exactly the held-out combinations.
    let seen = load("mnist+captions+seen");
    let unseen = load("mnist+captions+unseen");
    assert_eq!(seen.n + unseen.n, d.n);
    assert!(unseen.n > 100, "{}", unseen.n);
    for (set, held) in [(&seen, false), (&unseen, true)] {
        let c = set.captions.as_ref().unwrap();
        for i in 0..set.n {
            assert_eq!(Meaning::parse(&c.texts[i][0]).held_out(), held);
            let m = captions::measure(set.row(i), &set.shape).unwrap();
            assert_eq!(Meaning::of(set.labels.as_ref().unwrap()[i], &m).held_out(), held);
        }
    }
    assert!(seen
        .notes
        .iter()
        .any(|n| n.contains(&format!("{} of 8000 images left out", unseen.n))));
    // Captions follow a class subset.
    let threes = load("mnist+captions+only=3");
    for t in threes.captions.as_ref().unwrap().texts.iter().flatten() {
        assert_eq!(Meaning::parse(t).digit, Some(3), "{t}");
    }
    // Captions need labels and come after them; seen needs captions.
    let e = "mnist+seen".parse::<DataSpec>().unwrap().load(0).unwrap_err().to_string();
    assert!(e.contains("add captions first"), "{e}");
}

#[test]
fn tinted_digits_are_captioned_with_their_colour() {
    let d = load("digits+upscale=28+tint=green+captions");
    let t = &d.captions.as_ref().unwrap().texts[0];
    assert!(t.iter().all(|t| t.contains("green")), "{t:?}");
}

#[test]
fn a_caption_file_beside_an_idx_set_is_read_with_several_lines_per_image() {
    let tmp = tempfile::tempdir().unwrap();
    let prefix = tmp.path().join("set");
    // Two 2x2 images in IDX.
    let mut img = vec![0u8, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2];
    img.extend([0, 255, 255, 0, 255, 0, 0, 255]);
    std::fs::write(format!("{}-images-idx3-ubyte", prefix.display()), &img).unwrap();
    std::fs::write(
        format!("{}-captions.txt", prefix.display()),
        "0\ta bright diagonal\n1\tthe other diagonal\n0\tsecond caption\n",
    )
    .unwrap();
    let d = load(&format!("idx:{}", prefix.display()));
    let c = d.captions.unwrap();
    assert_eq!(c.texts[0], vec!["a bright diagonal", "second caption"]);
    assert_eq!(c.texts[1], vec!["the other diagonal"]);
    std::fs::write(format!("{}-captions.txt", prefix.display()), "0\tonly one\n").unwrap();
    let e = format!("idx:{}", prefix.display()).parse::<DataSpec>().unwrap().load(0);
    let e = e.unwrap_err().to_string();
    assert!(e.contains("set-captions.txt") && e.contains("no caption for image index 1"), "{e}");
}

/// A matcher for 8x8 digit images over the captions of `data`.
fn matcher(data: &Dataset, seed: u64) -> Model {
    let vocab = Vocab::build(data.captions.as_ref().unwrap(), "test").unwrap();
    let mut text = text_config(vocab);
    (text.words, text.channels, text.dim) = (6, 8, 5);
    let cfg = MatcherConfig { shape: data.shape.clone(), text, hidden: 7, temperature: 0.1 };
    Model::new(&ModelConfig::Matcher(cfg), seed, &Device::Cpu).unwrap()
}

fn rows(model: &Model, data: &Dataset, idx: &[usize], seed: u64) -> Tensor {
    let mut r = rng::rng(seed);
    deepgen::train::batch_rows(model.vocab(), data, idx, &Device::Cpu, &mut r).unwrap()
}

#[test]
fn the_matcher_loss_is_the_symmetric_softmax_over_the_batch_and_its_gradients_are_right() {
    let data = load("digits+captions").take(40);
    let model = matcher(&data, 3);
    let m = model.get::<Matcher>().unwrap();
    let idx: Vec<usize> = (0..6).collect();
    let x = rows(&model, &data, &idx, 1);
    let l = model.loss(&x, &mut rng::rng(0)).unwrap();
    // The same from the two embeddings, in f64.
    let d = data.dim();
    let v = vec1(&m.embed_images(&x.narrow(1, 0, d).unwrap()).unwrap());
    let words = m.text.cfg.vocab.max_words;
    let t = deepgen::models::matcher::unit_rows(
        &m.text.forward(&x.narrow(1, d, words).unwrap()).unwrap(),
    )
    .unwrap();
    let t = vec1(&t);
    let k = 5;
    let s = |i: usize, j: usize| -> f64 {
        (0..k).map(|c| v[i * k + c] as f64 * t[j * k + c] as f64).sum::<f64>() / 0.1
    };
    let n = idx.len();
    let lse = |f: &dyn Fn(usize) -> f64| (0..n).map(|j| f(j).exp()).sum::<f64>().ln();
    let i2t: f64 = (0..n).map(|i| lse(&|j| s(i, j)) - s(i, i)).sum::<f64>() / n as f64;
    let t2i: f64 = (0..n).map(|j| lse(&|i| s(i, j)) - s(j, j)).sum::<f64>() / n as f64;
    let got = l.total.to_scalar::<f32>().unwrap() as f64;
    assert!((got - 0.5 * (i2t + t2i)).abs() < 1e-4, "{got} vs {}", 0.5 * (i2t + t2i));
    let grads = l.total.backward().unwrap();
    let f =
        |m: &Model| m.loss(&x, &mut rng::rng(0)).unwrap().total.to_scalar::<f32>().unwrap() as f64;
    let checked = common::assert_grads_match_fd(&model, &f, &grads, 7, 1e-2, 2e-2, "matcher");
    assert!(checked > 50, "{checked}");
}

#[test]
fn padding_does_not_change_a_caption_embedding_and_bad_captions_get_one_line() {
    let data = load("digits+captions").take(40);
    let model = matcher(&data, 3);
    let m = model.get::<Matcher>().unwrap();
    let caption = data.captions.as_ref().unwrap().texts[0][0].clone();
    let a = vec1(&m.text.embed(std::slice::from_ref(&caption)).unwrap());
    // The same weights under a vocabulary allowing longer captions: more padding, same φ(t).
    let mut longer = match &model.config {
        ModelConfig::Matcher(c) => c.clone(),
        _ => unreachable!(),
    };
    longer.text.vocab.max_words += 5;
    let wide =
        model.with_config(&ModelConfig::Matcher(longer), 3, std::path::Path::new("-")).unwrap();
    let b = vec1(&wide.get::<Matcher>().unwrap().text.embed(&[caption]).unwrap());
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() < 1e-6, "{x} vs {y}");
    }
    let e = m.text.embed(&["a purple 3".into()]).unwrap_err().to_string();
    assert!(e.contains("unknown word `purple`") && !e.contains('\n'), "{e}");
    let e = m.text.embed(&["".into()]).unwrap_err().to_string();
    assert!(e.contains("has no words"), "{e}");
}

/// A small text GAN over `data`'s captions (8x8 images).
fn text_gan(data: &Dataset, variant: TextVariant, seed: u64) -> Model {
    let c = data.captions.as_ref().unwrap();
    let ModelConfig::TextGan(mut cfg) = ModelConfig::preset("text-gan", &data.shape, true).unwrap()
    else {
        unreachable!()
    };
    let vocab = Vocab::build(c, "test").unwrap();
    cfg.text = text_config(vocab);
    (cfg.text.words, cfg.text.channels, cfg.text.dim) = (6, 8, 5);
    (cfg.channels, cfg.latent, cfg.compressed, cfg.variant) = (4, 3, 3, variant);
    cfg.captions = c.texts.iter().map(|t| t[0].clone()).take(10).collect();
    Model::new(&ModelConfig::TextGan(cfg), seed, &Device::Cpu).unwrap()
}

#[test]
fn gan_cls_scores_real_pairs_mismatched_pairs_and_fakes_as_the_paper_weighs_them() {
    let data = load("digits+captions").take(64);
    let model = text_gan(&data, TextVariant::Cls, 2);
    let game = model.as_adversarial().unwrap();
    let idx: Vec<usize> = (0..8).collect();
    let x = rows(&model, &data, &idx, 4);
    let labels: Vec<u32> = idx.iter().map(|&i| data.labels.as_ref().unwrap()[i]).collect();
    let mut r = rng::rng(5);
    let real = game.real(&x, Some(&labels), &mut r).unwrap();
    let fake = game.fake(&x, Some(&labels), &mut r).unwrap();
    let extras = game.extra_fakes(&real, &fake, &mut r).unwrap();
    assert_eq!(extras.len(), 1, "GAN-CLS has one kind of mismatched pair");
    let (wrong, weight) = extras[0].clone();
    assert_eq!(weight, 0.5);
    // The mismatched pairs are the real images with the caption of an image of another digit.
    assert_eq!(vec1(&wrong.x), vec1(&real.x));
    let h = real.cond.as_ref().unwrap().to_vec2::<f32>().unwrap();
    let w = wrong.cond.as_ref().unwrap().to_vec2::<f32>().unwrap();
    for (i, row) in w.iter().enumerate() {
        let j = h.iter().position(|r| r == row).expect("a caption of the batch");
        assert_ne!(labels[j], labels[i], "row {i} got the caption of a {}", labels[j]);
    }
    let ws: Vec<Tensor> = game.d_weights().iter().map(|(_, v)| v.as_tensor().clone()).collect();
    let score = |s| vec1(&game.critic(s, &ws).unwrap().0);
    let (vr, vf, vw) = (score(&real), score(&fake), score(&wrong));
    // log D(x, h) + 1/2 [log(1 - D(x, h')) + log(1 - D(G(z, h), h))], as a loss.
    let mean = |v: &[f32], f: &dyn Fn(f64) -> f64| {
        v.iter().map(|&a| f(a as f64)).sum::<f64>() / v.len() as f64
    };
    let want =
        mean(&vr, &|a| softplus(-a)) + 0.5 * mean(&vf, &softplus) + 0.5 * mean(&vw, &softplus);
    let mut parts = vec![];
    let got = AdversarialTrainer::critic_loss(game, &real, &fake, &extras, &ws, None, &mut parts)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap() as f64;
    assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    // Without the mismatched pairs (GAN), the plain conditional GAN's loss.
    let gan = text_gan(&data, TextVariant::Gan, 2);
    let plain_game = gan.as_adversarial().unwrap();
    let plain =
        AdversarialTrainer::critic_loss(plain_game, &real, &fake, &[], &ws, None, &mut parts)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap() as f64;
    let want = mean(&vr, &|a| softplus(-a)) + mean(&vf, &softplus);
    assert!((plain - want).abs() < 1e-5, "{plain} vs {want}");
    let real = plain_game.real(&x, Some(&labels), &mut r).unwrap();
    assert!(plain_game.extra_fakes(&real, &fake, &mut r).unwrap().is_empty());
}

#[test]
fn gan_int_adds_half_a_batch_at_the_mean_of_two_captions_which_the_critic_never_sees() {
    let data = load("digits+captions").take(64);
    let model = text_gan(&data, TextVariant::Int, 2);
    let game = model.as_adversarial().unwrap();
    let x = rows(&model, &data, &(0..8).collect::<Vec<_>>(), 4);
    let mut r = rng::rng(5);
    let real = game.real(&x, None, &mut r).unwrap();
    let fake = game.fake(&x, None, &mut r).unwrap();
    assert_eq!(fake.x.dims(), &[12, data.dim()]);
    let h = real.cond.unwrap().to_vec2::<f32>().unwrap();
    let f = fake.cond.clone().unwrap().to_vec2::<f32>().unwrap();
    for i in 0..8 {
        assert_eq!(f[i], h[i]);
    }
    for i in 0..4 {
        for k in 0..h[0].len() {
            let want = 0.5 * h[i][k] + 0.5 * h[4 + i][k];
            assert!((f[8 + i][k] - want).abs() < 1e-6);
        }
    }
    let seen = game.critic_fakes(fake.clone(), &mut r).unwrap();
    assert_eq!(vec1(&seen.x), vec1(&fake.x.narrow(0, 0, 8).unwrap()));
    assert_eq!(seen.cond.unwrap().to_vec2::<f32>().unwrap(), f[..8].to_vec());
}

#[test]
fn a_text_gan_trains_resumes_exactly_and_samples_for_a_caption() {
    let data = load("digits+captions").take(64);
    let cfg = text_gan(&data, TextVariant::IntCls, 1).config.clone();
    let tc = |steps| TrainConfig {
        steps,
        batch_size: 16,
        lr: 1e-3,
        eval_every: 100,
        adversarial: Some(AdversarialConfig::default()),
        ..TrainConfig::default()
    };
    let train = |m: &Model, steps| {
        let mut t =
            AdversarialTrainer::new(m, tc(steps), 1, deepgen::data::Binarize::None).unwrap();
        t.fit(m, &data, &mut NoHooks).unwrap();
        t
    };
    let full = Model::new(&cfg, 1, &Device::Cpu).unwrap();
    let before = vec1(full.params.get("text.embed").unwrap().as_tensor());
    train(&full, 4);
    // The text encoder stays fixed; the players move.
    assert_eq!(vec1(full.params.get("text.embed").unwrap().as_tensor()), before);
    let tmp = tempfile::tempdir().unwrap();
    let run = deepgen::run::RunDir::create(tmp.path()).unwrap();
    let half = Model::new(&cfg, 1, &Device::Cpu).unwrap();
    let t = train(&half, 2);
    run.save(&half, &[&t.g_opt, &t.d_opt], 2, 1).unwrap();
    let (back, step) = run.load_model(&Device::Cpu).unwrap();
    assert_eq!(step, 2);
    let mut t2 = AdversarialTrainer::new(&back, tc(4), 1, deepgen::data::Binarize::None).unwrap();
    run.load_optimizers(&mut [&mut t2.g_opt, &mut t2.d_opt], 2).unwrap();
    t2.set_step(2);
    t2.fit(&back, &data, &mut NoHooks).unwrap();
    for ((n, a), (_, b)) in full.params.vars().zip(back.params.vars()) {
        assert_eq!(vec1(a.as_tensor()), vec1(b.as_tensor()), "{n} differs after resuming");
    }
    let g = back.get::<TextGan>().unwrap();
    let caption = data.captions.as_ref().unwrap().texts[3][0].clone();
    let s = g.sample_captions(&[caption.clone(), caption], &mut rng::rng(0)).unwrap();
    assert_eq!(s.dims(), &[2, data.dim()]);
    assert!(vec1(&s).iter().all(|v| (0.0..=1.0).contains(v)));
    let e = g.sample_captions(&["a purple 3".into()], &mut rng::rng(0)).unwrap_err().to_string();
    assert!(e.contains("unknown word `purple`"), "{e}");
    let strip = g.interpolate("a 3", "a 7", 2, 5, &mut rng::rng(0)).unwrap();
    assert_eq!(strip.dims(), &[10, data.dim()]);
    // Captions the text encoder cannot read are refused before training.
    let mut other = data.clone();
    other.captions = Some(Captions { texts: vec![vec!["an unheard word".into()]; other.n] });
    let m = Model::new(&cfg, 1, &Device::Cpu).unwrap();
    let mut t = AdversarialTrainer::new(&m, tc(1), 1, deepgen::data::Binarize::None).unwrap();
    let e = t.fit(&m, &other, &mut NoHooks).unwrap_err().to_string();
    assert!(e.contains("unknown word `an`"), "{e}");
}
