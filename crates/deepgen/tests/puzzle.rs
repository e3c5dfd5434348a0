//! The part-to-whole GAN (issue 25): the critic's four terms and the generator's mask and
//! appearance terms against hand computations, and the order of the patches not mattering.

mod common;

use candle_core::{Device, Tensor};
use deepgen::data::{DataSpec, Dataset};
use deepgen::models::{Model, ModelConfig, PuzzleGan};
use deepgen::rng;
use deepgen::train::AdversarialTrainer;

use common::vec1;

fn softplus(v: f64) -> f64 {
    v.max(0.0) + (-v.abs()).exp().ln_1p()
}

fn digits(n: usize) -> Dataset {
    DataSpec::Digits { test: false }.load(0).unwrap().take(n)
}

fn puzzle(shape: &[usize]) -> Model {
    let ModelConfig::PuzzleGan(mut c) = ModelConfig::preset("puzzle-gan", shape, true).unwrap()
    else {
        unreachable!()
    };
    (c.channels, c.latent, c.features) = (4, 3, 6);
    Model::new(&ModelConfig::PuzzleGan(c), 4, &Device::Cpu).unwrap()
}

fn mean(v: &[f32], f: &dyn Fn(f64) -> f64) -> f64 {
    v.iter().map(|&a| f(a as f64)).sum::<f64>() / v.len() as f64
}

#[test]
fn the_critic_scores_reals_wholes_and_both_shuffles_as_the_reference_sums_them() {
    let data = digits(16);
    let model = puzzle(&data.shape);
    let game = model.as_adversarial().unwrap();
    let x = data.batch(&(0..8).collect::<Vec<_>>(), &Device::Cpu).unwrap();
    let mut r = rng::rng(2);
    let real = game.real(&x, None, &mut r).unwrap();
    let fake = game.fake(&x, None, &mut r).unwrap();
    let extras = game.extra_fakes(&real, &fake, &mut r).unwrap();
    assert_eq!(extras.len(), 2);
    // Inside the true mask the first extra is another image, outside it is the image itself;
    // the second the other way round.
    let m = vec1(fake.codes.as_ref().unwrap());
    let (rx, a, b) = (vec1(&real.x), vec1(&extras[0].0.x), vec1(&extras[1].0.x));
    let d = data.dim();
    for i in 0..8 {
        for j in 0..d {
            let inside = m[i * d + j] > 0.5;
            assert!(a[i * d + j] == rx[i * d + j] || inside);
            assert!(b[i * d + j] == rx[i * d + j] || !inside);
        }
    }
    let ws: Vec<Tensor> = game.d_weights().iter().map(|(_, v)| v.as_tensor().clone()).collect();
    let score = |s| vec1(&game.critic(s, &ws).unwrap().0);
    let want = mean(&score(&real), &|v| softplus(-v))
        + mean(&score(&fake), &softplus)
        + mean(&score(&extras[0].0), &softplus)
        + mean(&score(&extras[1].0), &softplus);
    let got = AdversarialTrainer::critic_loss(game, &real, &fake, &extras, &ws, None, &mut vec![])
        .unwrap()
        .to_scalar::<f32>()
        .unwrap() as f64;
    assert!((got - want).abs() < 1e-5, "{got} vs {want}");
}

#[test]
fn the_mask_and_appearance_terms_are_l1_means_under_the_masks() {
    let data = digits(16);
    let model = puzzle(&data.shape);
    let p = model.get::<PuzzleGan>().unwrap();
    let game = model.as_adversarial().unwrap();
    let x = data.batch(&(0..6).collect::<Vec<_>>(), &Device::Cpu).unwrap();
    let fake = game.fake(&x, None, &mut rng::rng(5)).unwrap();
    let terms = game.generator_extra(&x, &fake, None).unwrap();
    let (g, gm, tm, rx) = (
        vec1(&fake.x),
        vec1(fake.cond.as_ref().unwrap()),
        vec1(fake.codes.as_ref().unwrap()),
        vec1(&x),
    );
    let n = gm.len() as f64;
    let l_mask = gm.iter().zip(&tm).map(|(a, b)| (a - b).abs() as f64).sum::<f64>() / n;
    let l_appr = (0..g.len())
        .map(|k| (g[k] * gm[k] - (2.0 * rx[k] - 1.0) * tm[k]).abs() as f64)
        .sum::<f64>()
        / g.len() as f64;
    let get =
        |name: &str| terms.iter().find(|t| t.0 == name).unwrap().1.to_scalar::<f32>().unwrap();
    assert!((get("g_mask") as f64 - p.cfg.mask_weight * l_mask).abs() < 1e-4);
    assert!((get("g_appearance") as f64 - p.cfg.appearance_weight * l_appr).abs() < 1e-4);
}

#[test]
fn the_order_of_the_patches_does_not_change_the_whole() {
    let data = digits(4);
    let model = puzzle(&data.shape);
    let p = model.get::<PuzzleGan>().unwrap();
    let x = data.batch(&[0, 1], &Device::Cpu).unwrap();
    let cuts = p.cut_rows(&x, &mut rng::rng(1)).unwrap();
    let sets: Vec<_> = cuts.iter().map(|c| c.patches.clone()).collect();
    let reversed: Vec<_> = sets.iter().map(|s| s.iter().rev().cloned().collect()).collect();
    let a = p.assemble(&sets, p.cfg.patch_size, &mut rng::rng(9)).unwrap();
    let b = p.assemble(&reversed, p.cfg.patch_size, &mut rng::rng(9)).unwrap();
    for (u, v) in vec1(&a.images).iter().zip(vec1(&b.images)) {
        assert!((u - v).abs() < 1e-5, "{u} vs {v}");
    }
    let e = p.assemble(&[sets[0][..2].to_vec()], p.cfg.patch_size, &mut rng::rng(9));
    assert!(e.err().unwrap().to_string().contains("2 patches for a run that assembles 3"));
}
