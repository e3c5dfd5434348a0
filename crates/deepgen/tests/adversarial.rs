//! The adversarial family: f-divergence algebra, the optimal discriminator
//! and the value of the game, gradient penalty and unrolled gradients
//! against finite differences, the trainer's options, mode metrics, the
//! strided and transposed convolutions, and every model's train/save/load.

mod common;

use candle_core::{Device, Tensor, Var};
use common::*;
use deepgen::data::{Binarize, DataSpec, Dataset};
use deepgen::eval::modes::mode_report;
use deepgen::models::{Aae, Gan};
use deepgen::models::{Divergence, GanLoss, Model, ModelConfig, Noise, Sampler, Side};
use deepgen::nn::conv::{conv_down, conv_up, Strided};
use deepgen::nn::{with_create_graph, Params};
use deepgen::rng;
use deepgen::run::{DataConfig, RunConfig, RunDir};
use deepgen::train::{
    Adam, AdamConfig, AdversarialConfig, AdversarialTrainer, Schedule, TrainConfig,
};

fn t1(v: &[f32]) -> Tensor {
    Tensor::new(v, &Device::Cpu).unwrap()
}

#[test]
fn fenchel_young_holds_with_equality_at_the_derivative() {
    for d in Divergence::ALL {
        let us: Vec<f64> = (1..200).map(|i| 0.02 * i as f64 * (1.0 + i as f64 / 50.0)).collect();
        let ts: Vec<f64> = (-60..=60).map(|i| d.activation(i as f64 / 10.0)).collect();
        for &u in &us {
            for &t in &ts {
                let gap = d.f(u) + d.conjugate(t) - u * t;
                assert!(gap > -1e-9, "{}: f({u}) + f*({t}) < u t by {gap}", d.name());
            }
            // Equality at t = f'(u), which the output activation can reach.
            let t = d.f_prime(u);
            let eq = d.f(u) + d.conjugate(t) - u * t;
            assert!(eq.abs() < 1e-9, "{}: Fenchel-Young at t = f'({u}) leaves {eq}", d.name());
        }
        // The tensor forms are the scalar ones: T = g_f(v) and f*(T).
        let vs: Vec<f32> = (-30..=30).map(|i| i as f32 / 6.0).collect();
        let (t, c) = d.t_and_conjugate(&t1(&vs)).unwrap();
        for ((v, t), c) in vs.iter().zip(vec1(&t)).zip(vec1(&c)) {
            let te = d.activation(*v as f64);
            assert!(
                (t as f64 - te).abs() < 1e-5 * (1.0 + te.abs()),
                "{}: g_f({v}) = {t}, expected {te}",
                d.name()
            );
            let ce = d.conjugate(te);
            assert!(
                (c as f64 - ce).abs() < 1e-4 * (1.0 + ce.abs()),
                "{}: f*(g_f({v})) = {c}, expected {ce}",
                d.name()
            );
        }
    }
}

/// The critic output v with g_f(v) = t (the inverse output activation).
fn inverse_activation(d: Divergence, t: f64) -> f64 {
    match d {
        Divergence::Kl | Divergence::Pearson => t,
        Divergence::ReverseKl => -(-t).ln(),
        Divergence::Js => -(2.0 * (-t).exp() - 1.0).ln(),
        Divergence::Hellinger => -(1.0 - t).ln(),
        Divergence::Gan => -((-t).exp() - 1.0).ln(),
    }
}

#[test]
fn the_variational_bound_is_the_divergence_at_the_optimal_critic() {
    // P and Q on four points, as samples with those frequencies (10 each).
    let p = [0.1, 0.2, 0.3, 0.4];
    let q = [0.4, 0.3, 0.2, 0.1];
    for d in Divergence::ALL {
        let truth: f64 = p.iter().zip(&q).map(|(p, q)| q * d.f(p / q)).sum();
        let critic = |shift: f64| -> f64 {
            let v: Vec<f64> = p
                .iter()
                .zip(&q)
                .map(|(p, q)| inverse_activation(d, d.f_prime(p / q)) + shift)
                .collect();
            let rep = |w: &[f64; 4]| -> Tensor {
                t1(&w
                    .iter()
                    .enumerate()
                    .flat_map(|(i, w)| {
                        std::iter::repeat_n(v[i] as f32, (w * 10.0).round() as usize)
                    })
                    .collect::<Vec<_>>())
            };
            let terms = GanLoss::F(d).critic(&rep(&p), &rep(&q)).unwrap();
            terms.estimate.to_scalar::<f32>().unwrap() as f64
        };
        let at_opt = critic(0.0);
        assert!(
            (at_opt - truth).abs() < 2e-5 * (1.0 + truth.abs()),
            "{}: bound at T* = {at_opt}, divergence {truth}",
            d.name()
        );
        // Any other critic gives less (it is a lower bound).
        for s in [-0.3, 0.2] {
            assert!(critic(s) < at_opt, "{}: a shifted critic beats the optimum", d.name());
        }
    }
}

fn normal_pdf(x: f64, m: f64, s: f64) -> f64 {
    (-(x - m).powi(2) / (2.0 * s * s)).exp() / (s * (2.0 * std::f64::consts::PI).sqrt())
}
fn p_data(x: f64) -> f64 {
    0.5 * normal_pdf(x, -1.0, 0.5) + 0.5 * normal_pdf(x, 1.5, 0.5)
}
fn p_g(x: f64) -> f64 {
    normal_pdf(x, 0.0, 1.0)
}

/// A 1-D GAN whose critic is trained against a fixed p_g = N(0, 1) (standing in for a generator).
#[test]
fn the_trained_discriminator_is_near_optimal_and_its_value_is_2jsd_minus_log4() {
    let ModelConfig::Gan(mut c) = ModelConfig::preset("gan", &[1], false).unwrap() else {
        panic!()
    };
    c.d_hidden = vec![32, 32];
    c.g_hidden = vec![4];
    c.latent = 2;
    let m = Model::new(&ModelConfig::Gan(c), 3, &Device::Cpu).unwrap();
    let game = m.as_adversarial().unwrap();
    let mut dp = Params::new();
    for (n, v) in game.d_weights() {
        dp.insert_var(&n, v).unwrap();
    }
    let mut opt = Adam::new(&dp, AdamConfig { beta1: 0.5, ..AdamConfig::default() }).unwrap();
    let draw = |r: &mut rng::Rng, n: usize| -> (Tensor, Tensor) {
        let e = vec1(&rng::randn(r, &[2 * n], &Device::Cpu).unwrap());
        let u = vec1(&rng::uniform(r, &[n], 0.0, 1.0, &Device::Cpu).unwrap());
        let real: Vec<f32> =
            (0..n).map(|i| if u[i] < 0.5 { -1.0 + 0.5 * e[i] } else { 1.5 + 0.5 * e[i] }).collect();
        let fake: Vec<f32> = e[n..].to_vec();
        (
            Tensor::from_vec(real, (n, 1), &Device::Cpu).unwrap(),
            Tensor::from_vec(fake, (n, 1), &Device::Cpu).unwrap(),
        )
    };
    let side = |x: Tensor| Side { x, cond: None, codes: None };
    let ws =
        || game.d_weights().into_iter().map(|(_, v)| v.as_tensor().clone()).collect::<Vec<_>>();
    let mut r = rng::rng(11);
    for step in 0..1500 {
        let (xr, xf) = draw(&mut r, 256);
        let (vr, _) = game.critic(&side(xr), &ws()).unwrap();
        let (vf, _) = game.critic(&side(xf), &ws()).unwrap();
        let loss = GanLoss::Minimax.critic(&vr, &vf).unwrap().loss;
        let lr = if step < 1000 { 3e-3 } else { 1e-3 };
        opt.step(&loss.backward().unwrap(), lr, 1.0).unwrap();
    }
    // D(x) = sigmoid(v(x)) against p / (p + q) where both densities matter.
    let grid: Vec<f32> = (0..=90).map(|i| -2.5 + i as f32 * 0.05).collect();
    let (v, _) = game
        .critic(
            &side(Tensor::from_vec(grid.clone(), (grid.len(), 1), &Device::Cpu).unwrap()),
            &ws(),
        )
        .unwrap();
    let mut worst = 0f64;
    for (x, v) in grid.iter().zip(vec1(&v)) {
        let (p, q) = (p_data(*x as f64), p_g(*x as f64));
        if p + q > 0.15 {
            let d = 1.0 / (1.0 + (-(v as f64)).exp());
            worst = worst.max((d - p / (p + q)).abs());
        }
    }
    assert!(worst < 0.08, "trained D differs from p/(p+q) by up to {worst}");
    // V(D, G) by Monte Carlo with the trained D, against 2 JSD - log 4 by numerical integration.
    let (xr, xf) = draw(&mut rng::rng(12), 40_000);
    let (vr, _) = game.critic(&side(xr), &ws()).unwrap();
    let (vf, _) = game.critic(&side(xf), &ws()).unwrap();
    let value =
        GanLoss::Minimax.critic(&vr, &vf).unwrap().estimate.to_scalar::<f32>().unwrap() as f64;
    let (lo, hi, n) = (-10.0, 10.0, 200_000);
    let h = (hi - lo) / n as f64;
    let mut jsd = 0.0;
    for i in 0..=n {
        let x = lo + i as f64 * h;
        let (p, q) = (p_data(x), p_g(x));
        let m = 0.5 * (p + q);
        let w = if i == 0 || i == n { 0.5 } else { 1.0 };
        let term = |a: f64| if a > 0.0 { a * (a / m).ln() } else { 0.0 };
        jsd += w * h * 0.5 * (term(p) + term(q));
    }
    let target = 2.0 * jsd - 4f64.ln();
    assert!((value - target).abs() < 0.03, "V(D, G) = {value}, 2 JSD - log 4 = {target}");
    // And V never exceeds its maximum over D.
    assert!(value <= target + 0.01);
}

fn tiny_gan(name: &str, seed: u64) -> Model {
    let ModelConfig::Gan(mut c) = ModelConfig::preset(name, &[2], false).unwrap() else { panic!() };
    c.d_hidden = vec![6];
    c.g_hidden = vec![5];
    c.latent = 3;
    let m = Model::new(&ModelConfig::Gan(c), seed, &Device::Cpu).unwrap();
    randomize(&m, seed + 1, 0.7);
    m
}

fn toy(n: usize) -> Dataset {
    DataSpec::Toy { kind: "ring8".parse().unwrap(), test: false }.load(0).unwrap().take(n)
}

fn trainer(m: &Model, adv: AdversarialConfig, batch: usize) -> AdversarialTrainer {
    let cfg = TrainConfig {
        steps: 10,
        batch_size: batch,
        lr: 1e-3,
        adversarial: Some(adv),
        ..TrainConfig::default()
    };
    AdversarialTrainer::new(m, cfg, 5, deepgen::data::Binarize::None).unwrap()
}

#[test]
fn the_gradient_penalty_matches_finite_differences() {
    deepgen::enable_second_order();
    let m = tiny_gan("wgan-gp", 1);
    let game = m.as_adversarial().unwrap();
    let x = toy(8).batch(&(0..8).collect::<Vec<_>>(), &Device::Cpu).unwrap();
    // The output bias does not change the gradient with respect to the input.
    let all = game.d_weights();
    let vars: Vec<_> = all.iter().filter(|(n, _)| n != "d.head.v.bias").cloned().collect();
    let penalty = || -> Tensor {
        let mut r = rng::rng(4);
        let real = game.real(&x, None, &mut r).unwrap();
        let fake = game.fake(&x, None, &mut r).unwrap();
        let ws: Vec<Tensor> = all.iter().map(|(_, v)| v.as_tensor().clone()).collect();
        AdversarialTrainer::gradient_penalty(game, &real, &fake, &ws, 10.0, &mut r).unwrap()
    };
    let grads = penalty().backward().unwrap();
    let f = || penalty().to_dtype(candle_core::DType::F64).unwrap().to_scalar::<f64>().unwrap();
    assert!(f() > 0.0);
    let n = assert_grads_match_fd_vars(&vars, &f, &grads, 1, 1e-2, 2e-2, "gradient penalty");
    assert!(n > 20);
}

fn g_vars(m: &Model) -> Vec<(String, Var)> {
    m.as_adversarial()
        .unwrap()
        .g_names()
        .into_iter()
        .map(|n| (n.clone(), m.params.get(&n).unwrap().clone()))
        .collect()
}

#[test]
fn unrolled_generator_gradients_match_finite_differences_and_first_order_does_not() {
    deepgen::enable_second_order();
    let m = tiny_gan("unrolled-gan", 2);
    let game = m.as_adversarial().unwrap();
    let x = toy(16).batch(&(0..16).collect::<Vec<_>>(), &Device::Cpu).unwrap();
    // A critic optimiser with some history, and a large critic step so the look-ahead matters.
    let adv = AdversarialConfig { d_lr: 0.05, unroll: 3, ..AdversarialConfig::default() };
    let mut t = trainer(&m, adv.clone(), 16);
    t.step(&m, &toy(64), 0).unwrap();
    let loss = |t: &AdversarialTrainer| -> Tensor {
        t.generator_loss(game, &x, None, &mut rng::rng(9), &mut vec![]).unwrap()
    };
    let grads = loss(&t).backward().unwrap();
    let f = || loss(&t).to_dtype(candle_core::DType::F64).unwrap().to_scalar::<f64>().unwrap();
    let vars = g_vars(&m);
    let n = assert_grads_match_fd_vars(&vars, &f, &grads, 1, 1e-2, 2e-2, "unrolled generator loss");
    assert!(n > 20);
    let value = f() as f32;
    // The first-order variant has the same loss value but drops the terms through the critic's
    // updates.
    t.adv.first_order = true;
    let v1 = loss(&t).to_scalar::<f32>().unwrap();
    assert!((v1 - value).abs() < 1e-4 * (1.0 + value.abs()), "first-order loss {v1} vs {value}");
    let g1 = loss(&t).backward().unwrap();
    let (mut diff, mut size) = (0f64, 0f64);
    for (_, v) in &vars {
        let a = vec1(grads.get(v.as_tensor()).unwrap());
        let b = vec1(g1.get(v.as_tensor()).unwrap());
        diff += a.iter().zip(&b).map(|(a, b)| ((a - b) as f64).powi(2)).sum::<f64>();
        size += a.iter().map(|a| (*a as f64).powi(2)).sum::<f64>();
    }
    assert!(
        (diff / size).sqrt() > 0.05,
        "first-order and full unrolled gradients agree to {:.4} \
        relative: the look-ahead terms are missing",
        (diff / size).sqrt()
    );
}

/// Five look-ahead steps on one shared batch (the reverse pass then sums
/// every step's contribution into one generated batch, and the adjoints of
/// Adam's moments carry through the middle steps).
#[test]
fn unrolled_gradients_through_five_steps_on_one_batch_match_finite_differences() {
    deepgen::enable_second_order();
    let m = tiny_gan("unrolled-gan", 2);
    let game = m.as_adversarial().unwrap();
    let x = toy(16).batch(&(0..16).collect::<Vec<_>>(), &Device::Cpu).unwrap();
    let adv = AdversarialConfig {
        d_lr: 0.05,
        unroll: 5,
        unroll_same_batch: true,
        ..AdversarialConfig::default()
    };
    let mut t = trainer(&m, adv, 16);
    t.step(&m, &toy(64), 0).unwrap();
    let loss = |t: &AdversarialTrainer| -> Tensor {
        t.generator_loss(game, &x, None, &mut rng::rng(9), &mut vec![]).unwrap()
    };
    let grads = loss(&t).backward().unwrap();
    let f = || loss(&t).to_dtype(candle_core::DType::F64).unwrap().to_scalar::<f64>().unwrap();
    let n = assert_grads_match_fd_vars(
        &g_vars(&m),
        &f,
        &grads,
        1,
        1e-2,
        2e-2,
        "unrolled generator loss, one batch, K = 5",
    );
    assert!(n > 20);
}

#[test]
fn zero_unrolling_is_the_plain_gan() {
    let ma = tiny_gan("gan", 3);
    let mb = tiny_gan("gan", 3);
    let data = toy(256);
    let mut ta = trainer(&ma, AdversarialConfig { d_lr: 1e-3, ..AdversarialConfig::default() }, 32);
    let mut tb = trainer(
        &mb,
        AdversarialConfig { d_lr: 1e-3, unroll: 0, ..AdversarialConfig::default() },
        32,
    );
    for s in 0..4 {
        ta.step(&ma, &data, s).unwrap();
        tb.step(&mb, &data, s).unwrap();
    }
    // The plain generator loss written out: non-saturating softplus(-v) of the critic's own
    // weights.
    let game = ma.as_adversarial().unwrap();
    let x = data.batch(&(0..32).collect::<Vec<_>>(), &Device::Cpu).unwrap();
    let mut r = rng::rng(1);
    let fake = game.fake(&x, None, &mut r.clone()).unwrap();
    let ws: Vec<Tensor> =
        game.d_weights().into_iter().map(|(_, v)| v.as_tensor().clone()).collect();
    let (v, _) = game.critic(&fake, &ws).unwrap();
    let by_hand: f32 = vec1(&v).iter().map(|v| (1.0 + (-v).exp()).ln()).sum::<f32>() / 32.0;
    let via =
        ta.generator_loss(game, &x, None, &mut r, &mut vec![]).unwrap().to_scalar::<f32>().unwrap();
    assert!((by_hand - via).abs() < 1e-5, "{by_hand} vs {via}");
    for ((n, a), (_, b)) in ma.params.vars().zip(mb.params.vars()) {
        assert_eq!(
            vec1(a.as_tensor()),
            vec1(b.as_tensor()),
            "{n} differs between unroll 0 and the plain GAN"
        );
    }
}

#[test]
fn clipping_and_n_critic_are_trainer_options() {
    let m = tiny_gan("wgan", 4);
    let mut t = trainer(
        &m,
        AdversarialConfig {
            d_lr: 1e-3,
            n_critic: 3,
            clip: Some(0.01),
            ..AdversarialConfig::default()
        },
        32,
    );
    let rec = t.step(&m, &toy(256), 0).unwrap();
    assert_eq!((t.d_opt.step, t.g_opt.step), (3, 1));
    for (n, v) in m.as_adversarial().unwrap().d_weights() {
        assert!(vec1(v.as_tensor()).iter().all(|x| x.abs() <= 0.01 + 1e-7), "{n} escaped the clip");
    }
    assert!(rec.parts.contains_key("critic_estimate") && rec.parts.contains_key("g_loss"));
    // Options that do not fit are refused with a message.
    let bad = AdversarialConfig { first_order: true, ..AdversarialConfig::default() };
    assert!(bad.check().unwrap_err().to_string().contains("--first-order"));
}

/// The largest absolute change of each player's weights between two snapshots.
fn moved(before: &[(String, Vec<f32>)], m: &Model, names: &[String]) -> f32 {
    let now: std::collections::HashMap<String, Vec<f32>> =
        m.params.vars().map(|(n, v)| (n.to_string(), vec1(v.as_tensor()))).collect();
    before
        .iter()
        .filter(|(n, _)| names.contains(n))
        .flat_map(|(n, b)| now[n].iter().zip(b).map(|(p, q)| (p - q).abs()).collect::<Vec<_>>())
        .fold(0.0, f32::max)
}

/// `d_schedule` gives the critic its own schedule: under a cosine run, a
/// constant critic takes full steps (and looks ahead with them) halfway
/// through, while the generator's step is halved. Adam's first step moves
/// each weight by the learning rate, which makes the rates visible.
#[test]
fn the_critic_can_keep_its_rate_while_the_generator_cools() {
    deepgen::enable_second_order();
    for (d_schedule, want_d) in [(None, 0.5e-2), (Some(Schedule::Constant), 1e-2)] {
        let m = tiny_gan("unrolled-gan", 8);
        let game = m.as_adversarial().unwrap();
        let d_names: Vec<String> = game.d_weights().into_iter().map(|(n, _)| n).collect();
        let g_names = game.g_names();
        let adv = AdversarialConfig { d_lr: 1e-2, d_schedule, ..AdversarialConfig::default() };
        let cfg = TrainConfig {
            steps: 10,
            batch_size: 16,
            lr: 1e-3,
            schedule: Schedule::Cosine,
            adversarial: Some(adv.clone()),
            ..TrainConfig::default()
        };
        let mut t = AdversarialTrainer::new(&m, cfg, 5, deepgen::data::Binarize::None).unwrap();
        // Step 5 of 10 under cosine decay: the factor is 0.5 (1 + cos(pi / 2)) = 0.5.
        assert!((t.d_lr_at(5) - want_d).abs() < 1e-12, "{:?}: {}", d_schedule, t.d_lr_at(5));
        assert!((t.cfg.lr_at(5) - 0.5e-3).abs() < 1e-12);
        let before: Vec<(String, Vec<f32>)> =
            m.params.vars().map(|(n, v)| (n.to_string(), vec1(v.as_tensor()))).collect();
        t.step(&m, &toy(64), 5).unwrap();
        let (d, g) = (moved(&before, &m, &d_names), moved(&before, &m, &g_names));
        assert!(
            (d - want_d as f32).abs() < 0.02 * want_d as f32,
            "{d_schedule:?}: the critic moved {d}, want {want_d}"
        );
        assert!(
            (g - 0.5e-3).abs() < 0.02 * 0.5e-3,
            "{d_schedule:?}: the generator moved {g}, want 5e-4"
        );
        // The look-ahead steps with the critic's rate too: one unrolled step from a fresh state (at
        // the
        // trainer's iteration 5) moves the critic's weights by its rate there.
        let mut t = AdversarialTrainer::new(
            &m,
            TrainConfig {
                adversarial: Some(AdversarialConfig { unroll: 1, ..adv }),
                ..t.cfg.clone()
            },
            5,
            deepgen::data::Binarize::None,
        )
        .unwrap();
        t.g_opt.step = 5;
        let x = toy(64).batch(&(0..16).collect::<Vec<_>>(), &Device::Cpu).unwrap();
        let ws = t.unrolled_weights(game, &x, None, &mut rng::rng(3)).unwrap();
        let step = game
            .d_weights()
            .iter()
            .zip(&ws)
            .flat_map(|((_, v), w)| {
                vec1(v.as_tensor())
                    .into_iter()
                    .zip(vec1(w))
                    .map(|(p, q)| (p - q).abs())
                    .collect::<Vec<_>>()
            })
            .fold(0.0, f32::max);
        assert!(
            (step - want_d as f32).abs() < 0.02 * want_d as f32,
            "{d_schedule:?}: the look-ahead moved {step}, want {want_d}"
        );
    }
    // Parsed, and refused with a message when unknown.
    assert_eq!("constant".parse::<Schedule>().unwrap(), Schedule::Constant);
    assert!("linear"
        .parse::<Schedule>()
        .unwrap_err()
        .to_string()
        .contains("unknown schedule `linear`"));
}

/// Trains a fresh model (model and trainer seeded with `seed`) for `split` steps,
/// saves a checkpoint, reloads it into a fresh model and trainer, and trains on to `total`.
fn trained_with_a_reload(
    cfg: &ModelConfig,
    tc: &dyn Fn(usize) -> TrainConfig,
    split: usize,
    total: usize,
    data: &Dataset,
    seed: u64,
) -> Model {
    let dir = tempfile::tempdir().unwrap();
    let run = RunDir::create(dir.path()).unwrap();
    let half = Model::new(cfg, seed, &Device::Cpu).unwrap();
    let mut t1 =
        AdversarialTrainer::new(&half, tc(split), seed, deepgen::data::Binarize::None).unwrap();
    t1.fit(&half, data, &mut deepgen::train::NoHooks).unwrap();
    run.save(&half, &[&t1.g_opt, &t1.d_opt], split, seed).unwrap();
    let (back, step) = run.load_model(&Device::Cpu).unwrap();
    assert_eq!(step, split);
    let mut t2 =
        AdversarialTrainer::new(&back, tc(total), seed, deepgen::data::Binarize::None).unwrap();
    run.load_optimizers(&mut [&mut t2.g_opt, &mut t2.d_opt], split).unwrap();
    t2.set_step(split);
    t2.fit(&back, data, &mut deepgen::train::NoHooks).unwrap();
    back
}

/// `--noise uniform`: z ~ U[-1, 1]^d (mean 0, variance 1/3) feeds the generator;
/// a config written before the option reads back as normal noise.
#[test]
fn uniform_noise_is_uniform_and_old_configs_mean_normal() {
    let ModelConfig::Gan(mut c) = ModelConfig::preset("gan", &[2], false).unwrap() else {
        panic!()
    };
    (c.d_hidden, c.g_hidden, c.latent) = (vec![6], vec![5], 3);
    let text = toml::to_string(&c).unwrap();
    assert!(!text.contains("noise"), "{text}");
    assert_eq!(toml::from_str::<deepgen::models::GanConfig>(&text).unwrap().noise, Noise::Normal);
    c.noise = Noise::Uniform;
    assert_eq!(
        toml::from_str::<deepgen::models::GanConfig>(&toml::to_string(&c).unwrap()).unwrap().noise,
        Noise::Uniform
    );
    let m = Model::new(&ModelConfig::Gan(c), 5, &Device::Cpu).unwrap();
    let gan = m.get::<Gan>().unwrap();
    let z = vec1(&gan.draw_z(20_000, &mut rng::rng(3)).unwrap().flatten_all().unwrap());
    assert_eq!(z.len(), 60_000);
    assert!(z.iter().all(|v| (-1.0..1.0).contains(v)));
    let mean = z.iter().map(|&v| v as f64).sum::<f64>() / z.len() as f64;
    let var = z.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / z.len() as f64;
    // Standard errors: 0.0024 for the mean, 0.0012 for the variance.
    assert!(mean.abs() < 0.01 && (var - 1.0 / 3.0).abs() < 0.006, "mean {mean}, variance {var}");
    // Samples are the generator applied to those draws.
    let z = gan.draw_z(4, &mut rng::rng(9)).unwrap();
    let want = vec1(&gan.generate(&z, None, false).unwrap().flatten_all().unwrap());
    assert_eq!(
        vec1(&gan.sample_with(4, None, &mut rng::rng(9)).unwrap().flatten_all().unwrap()),
        want
    );
}

/// `--g-ema`: after every generator step the average moves by
/// avg <- beta avg + (1 - beta) w from the initial weights; samples use the
/// average and training the live weights; a checkpoint keeps it, and a
/// resumed run continues it exactly.
#[test]
fn the_generator_average_follows_its_recursion_and_is_what_samples_use() {
    let ModelConfig::Gan(mut c) = ModelConfig::preset("gan", &[2], false).unwrap() else {
        panic!()
    };
    (c.d_hidden, c.g_hidden, c.latent, c.ema) = (vec![6], vec![5], 3, 0.75);
    let cfg = ModelConfig::Gan(c.clone());
    let m = Model::new(&cfg, 5, &Device::Cpu).unwrap();
    let g_names = m.as_adversarial().unwrap().g_names();
    let avg_names: Vec<String> =
        g_names.iter().map(|n| format!("g_ema.{}", n.strip_prefix("g.").unwrap())).collect();
    let read = |m: &Model, names: &[String]| -> Vec<Vec<f32>> {
        names.iter().map(|n| vec1(m.params.get(n).unwrap().as_tensor())).collect()
    };
    let mut want = read(&m, &g_names);
    assert_eq!(read(&m, &avg_names), want, "the average starts at the initial weights");
    let data = toy(64);
    let tc = |steps| TrainConfig {
        steps,
        batch_size: 16,
        lr: 1e-2,
        eval_every: 100,
        adversarial: Some(AdversarialConfig::default()),
        ..TrainConfig::default()
    };
    let mut t = AdversarialTrainer::new(&m, tc(3), 5, deepgen::data::Binarize::None).unwrap();
    for s in 0..3 {
        t.step(&m, &data, s).unwrap();
        for (a, w) in want.iter_mut().zip(read(&m, &g_names)) {
            a.iter_mut().zip(w).for_each(|(a, w)| *a = 0.75 * *a + 0.25 * w);
        }
    }
    let (got, live) = (read(&m, &avg_names), read(&m, &g_names));
    let gap = |a: &[Vec<f32>], b: &[Vec<f32>]| {
        a.iter().flatten().zip(b.iter().flatten()).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
    };
    assert!(gap(&got, &want) < 1e-6, "the average is off its recursion by {}", gap(&got, &want));
    assert!(gap(&got, &live) > 1e-4, "the live weights should have moved away from the average");
    // Samples (eval mode) run on the average, training (train mode) on the live weights.
    let gan = m.get::<Gan>().unwrap();
    let z = rng::randn(&mut rng::rng(1), &[4, 3], &Device::Cpu).unwrap();
    let avg_ws: Vec<Tensor> =
        avg_names.iter().map(|n| m.params.get(n).unwrap().as_tensor().clone()).collect();
    assert_eq!(
        vec1(&gan.generate(&z, None, false).unwrap().flatten_all().unwrap()),
        vec1(&gan.g.forward_with(&z, &avg_ws, false, false).unwrap().flatten_all().unwrap())
    );
    assert_eq!(
        vec1(&gan.generate(&z, None, true).unwrap().flatten_all().unwrap()),
        vec1(&gan.g.forward(&z, true).unwrap().flatten_all().unwrap())
    );
    // Three steps in one go equal two, a checkpoint, a reload and one more.
    let back = trained_with_a_reload(&cfg, &tc, 2, 3, &data, 5);
    assert_eq!(read(&back, &avg_names), got, "the resumed run's average differs");
    // A decay outside [0, 1) is refused by name.
    c.ema = 1.0;
    let err = Model::new(&ModelConfig::Gan(c), 5, &Device::Cpu).err().unwrap().to_string();
    assert!(err.contains("--g-ema must be in [0, 1)"), "{err}");
}

#[test]
fn the_parameter_count_leaves_out_what_no_optimiser_trains() {
    // Critic 2 -> 6 -> 1; generator 3 -> 5 (batch norm: scale and shift) -> 2,
    // with running statistics (2 x 5) and a weight average (a copy of the generator).
    let ModelConfig::Gan(mut c) = ModelConfig::preset("gan", &[2], false).unwrap() else {
        panic!()
    };
    (c.d_hidden, c.g_hidden, c.latent, c.g_norm, c.ema) = (vec![6], vec![5], 3, true, 0.9);
    let m = Model::new(&ModelConfig::Gan(c), 5, &Device::Cpu).unwrap();
    let (critic, generator) = (2 * 6 + 6 + 6 + 1, 3 * 5 + 5 + 2 * 5 + 5 * 2 + 2);
    let names: Vec<String> = m.params.shapes().into_iter().map(|(n, _)| n).collect();
    assert_eq!(m.trained_count(), critic + generator, "{names:?}");
    assert!(
        m.params.count() > m.trained_count(),
        "the checkpoint holds the average and the statistics too"
    );
}

#[test]
fn mode_metrics_match_a_hand_count() {
    let means = [[0.0f32, 0.0], [10.0, 0.0], [0.0, 10.0]];
    // 6 samples at mode 0, 3 at mode 1, 1 far from everything (low quality), none at mode 2.
    let mut s: Vec<[f32; 2]> = vec![[0.05, 0.0]; 6];
    s.extend(vec![[10.0, 0.25]; 3]);
    s.push([5.0, 5.0]);
    let rep = mode_report(&s, &means, 0.1, 0.2);
    assert_eq!(rep.counts, vec![6, 3, 0]);
    assert_eq!(rep.covered, 2); // 6/10 and 3/10 >= 0.2
    assert!((rep.high_quality - 0.9).abs() < 1e-12);
    let kl = (6.0 / 9.0) * ((6.0 / 9.0) * 3.0f64).ln() + (3.0 / 9.0) * ((3.0 / 9.0) * 3.0f64).ln();
    assert!((rep.reverse_kl - kl).abs() < 1e-12);
    // A point at exactly 3 sigma counts; a higher share threshold drops mode 1.
    assert_eq!(mode_report(&[[0.3, 0.0]], &means, 0.1, 0.0).counts[0], 1);
    assert_eq!(mode_report(&s, &means, 0.1, 0.35).covered, 1);
}

#[test]
fn a_standardised_toy_run_is_counted_and_drawn_in_data_units() {
    let ModelConfig::Gan(mut c) = ModelConfig::preset("gan", &[2], false).unwrap() else {
        panic!()
    };
    (c.d_hidden, c.g_hidden, c.latent) = (vec![6], vec![5], 3);
    let model = Model::new(&ModelConfig::Gan(c.clone()), 5, &Device::Cpu).unwrap();
    // A tiny std maps every generated point (standard units, |x| of order 1) into 3 sigma of the
    // mode (2, -4).
    let (mean, std) = (vec![2.0f32, -4.0], vec![1e-3f32, 1e-3]);
    let data = DataConfig {
        train: "toy:grid25".into(),
        train_b: None,
        val_b: None,
        val: None,
        binarize: Binarize::None,
        shape: vec![2],
        mean: mean.clone(),
        std: std.clone(),
    };
    let cfg =
        RunConfig { seed: 5, data, train: TrainConfig::default(), model: ModelConfig::Gan(c) };
    let rep = deepgen::run::mode_eval(&model, &cfg, 300, 0.008, &mut rng::rng(9), None).unwrap();
    // The same draws, mapped back by hand.
    let raw = vec1(&model.sample(300, &mut rng::rng(9)).unwrap().flatten_all().unwrap());
    let pts: Vec<[f32; 2]> =
        raw.chunks(2).map(|p| [p[0] * std[0] + mean[0], p[1] * std[1] + mean[1]]).collect();
    let grid = deepgen::data::toy::Toy::Grid25;
    let by_hand = mode_report(&pts, &grid.modes(), grid.std(), 0.008);
    assert_eq!(rep.counts, by_hand.counts);
    assert_eq!((rep.counts[15], rep.covered, rep.high_quality), (300, 1, 1.0), "{:?}", rep.counts);
    // In standard units the points would spread over the square instead.
    let unmapped: Vec<[f32; 2]> = raw.chunks(2).map(|p| [p[0], p[1]]).collect();
    assert!(mode_report(&unmapped, &grid.modes(), grid.std(), 0.008).counts[15] < 300);
    // The data drawn behind a sample scatter is mapped back too.
    let raw_data = DataSpec::Toy { kind: grid, test: false }.load(0).unwrap();
    let mut standardised = raw_data.clone();
    standardised.standardize(&mean, &std).unwrap();
    let back = deepgen::run::background_points(&standardised, &cfg, 50);
    assert_eq!(back.len(), 50);
    for (b, x) in back.iter().zip(raw_data.x.chunks(2)) {
        assert!((b[0] - x[0]).abs() < 1e-3 && (b[1] - x[1]).abs() < 1e-3, "{b:?} against {x:?}");
    }
}

/// The fused strided and transposed convolutions (and their backward passes) against candle's
/// conv2d: the DCGAN's 4x4 stride 2, and stride-1 3x3 and 7x7 layers, padded and not, that run
/// without im2col (`nn/same_conv.rs`).
#[test]
fn strided_and_transposed_convolutions_match_candle() {
    for (k, stride, pad, side) in [(4, 2, 1, 6), (3, 1, 1, 6), (7, 1, 3, 12), (3, 1, 0, 8)] {
        convolutions_match_candle(Strided { k, stride, pad }, side);
    }
}

fn convolutions_match_candle(g: Strided, side: usize) {
    let mut r = rng::rng(5);
    let dev = Device::Cpu;
    let kk = g.k * g.k;
    let lo = g.lo(side);
    let x = Var::from_tensor(&rng::randn(&mut r, &[2, side, side, 3], &dev).unwrap()).unwrap();
    let w = Var::from_tensor(&rng::randn(&mut r, &[kk * 3, 5], &dev).unwrap()).unwrap();
    let b = Var::from_tensor(&rng::randn(&mut r, &[5], &dev).unwrap()).unwrap();
    let wu = Var::from_tensor(&rng::randn(&mut r, &[5, kk * 2], &dev).unwrap()).unwrap();
    let bu = Var::from_tensor(&rng::randn(&mut r, &[2], &dev).unwrap()).unwrap();
    let weights = rng::randn(&mut r, &[2, side, side, 2], &dev).unwrap();
    // down side^2 x 3 -> lo^2 x 5, up lo^2 x 5 -> side^2 x 2, a weighted sum.
    // 0: the fused kernels; 1: their graph-building backward passes; 2: candle's conv2d and
    // conv_transpose2d throughout (portable ops).
    let run = |mode: usize| {
        let f = || {
            let h = conv_down(g, x.as_tensor(), w.as_tensor(), b.as_tensor()).unwrap();
            assert_eq!(h.dims(), &[2, lo, lo, 5]);
            let y = conv_up(g, &h.tanh().unwrap(), wu.as_tensor(), bu.as_tensor()).unwrap();
            assert_eq!(y.dims(), &[2, side, side, 2]);
            let l = (y * &weights).unwrap().sum_all().unwrap();
            let gr = l.backward().unwrap();
            let gs: Vec<Vec<f32>> = [&x, &w, &b, &wu, &bu]
                .iter()
                .map(|v| vec1(gr.get(v.as_tensor()).unwrap()))
                .collect();
            (l.to_scalar::<f32>().unwrap(), gs)
        };
        match mode {
            0 => f(),
            1 => with_create_graph(f),
            _ => deepgen::nn::with_portable_ops(f),
        }
    };
    let (lc, gc) = run(2);
    for mode in [0, 1] {
        let (la, ga) = run(mode);
        assert!(
            (la - lc).abs() < 1e-3 * (1.0 + lc.abs()),
            "{g:?} mode {mode}: {la} vs candle {lc}"
        );
        for (i, (a, b)) in ga.iter().zip(&gc).enumerate() {
            for (u, v) in a.iter().zip(b) {
                assert!(
                    (u - v).abs() < 1e-3 * (1.0 + v.abs()),
                    "{g:?} mode {mode} gradient {i}: {u} vs candle {v}"
                );
            }
        }
    }
}

#[test]
fn infogan_bound_matches_a_hand_computation() {
    let ModelConfig::Gan(mut c) = ModelConfig::preset("infogan", &[2], false).unwrap() else {
        panic!()
    };
    c.categorical = 3;
    c.continuous = 1;
    let m = Model::new(&ModelConfig::Gan(c), 0, &Device::Cpu).unwrap();
    let game = m.as_adversarial().unwrap();
    let q = Tensor::new(&[[1.0f32, 0.0, -1.0, 0.5], [0.0, 2.0, 0.0, -0.5]], &Device::Cpu).unwrap();
    let codes =
        Tensor::new(&[[1.0f32, 0.0, 0.0, 0.2], [0.0, 0.0, 1.0, -0.5]], &Device::Cpu).unwrap();
    let (nll, bound) = game.info_loss(&q, &codes).unwrap().unwrap();
    let lse = |v: &[f64]| v.iter().map(|x| x.exp()).sum::<f64>().ln();
    let cat = -((1.0 - lse(&[1.0, 0.0, -1.0])) + (0.0 - lse(&[0.0, 2.0, 0.0]))) / 2.0;
    let gauss = ((0.2f64 - 0.5).powi(2) + 0.0) / 4.0 + 0.5 * (2.0 * std::f64::consts::PI).ln();
    let expect = cat + gauss;
    assert!((nll.to_scalar::<f32>().unwrap() as f64 - expect).abs() < 1e-5);
    let h = 3f64.ln() + 2f64.ln();
    assert!((bound.to_scalar::<f32>().unwrap() as f64 - (h - expect)).abs() < 1e-5);
}

fn digits8(n: usize) -> Dataset {
    DataSpec::Digits { test: false }.load(0).unwrap().take(n)
}

/// Every adversarial model: a few steps on small data, checkpoint, reload,
/// same weights and samples; resuming equals the uninterrupted run.
#[test]
fn every_adversarial_model_trains_saves_loads_and_resumes_exactly() {
    deepgen::enable_second_order();
    let adversarial =
        deepgen::models::models().filter(|m| m.training == deepgen::models::Training::Adversarial);
    // The translation models need a second domain or attributes: their resume is tested end to
    // end in crates/deepgen-cli/tests/translation.rs.
    let translation = |n: &str| matches!(n, "cyclegan" | "stargan");
    // The text GAN needs captions and a text encoder: crates/deepgen/tests/text.rs resumes it.
    let translation = |n: &str| translation(n) || n == "text-gan";
    for name in adversarial.map(|m| m.name).filter(|n| !translation(n)) {
        let image = !matches!(name, "gan" | "fgan" | "unrolled-gan");
        let data = if image { digits8(64) } else { toy(64) };
        let mut cfg = ModelConfig::preset(name, &data.shape, true).unwrap();
        match &mut cfg {
            ModelConfig::Gan(c) => {
                c.channels = 4;
                c.latent = 4;
                c.g_hidden = vec![8];
                c.d_hidden = vec![8];
            }
            ModelConfig::Aae(c) => {
                c.hidden = vec![8];
                c.d_hidden = vec![8];
            }
            // Phases of 16 images: the checkpoint falls in the 8x8 fade-in.
            ModelConfig::ProGan(c) => {
                (c.channels, c.latent, c.stabilise_images, c.fade_images) = (4, 4, 16, 32);
            }
            ModelConfig::PuzzleGan(c) => (c.channels, c.latent, c.features) = (4, 4, 8),
            _ => unreachable!(),
        }
        let adv = match name {
            "progan" => AdversarialConfig {
                gp: Some(10.0),
                drift: Some(0.001),
                ..AdversarialConfig::default()
            },
            "wgan" => {
                AdversarialConfig { n_critic: 2, clip: Some(0.05), ..AdversarialConfig::default() }
            }
            "wgan-gp" => {
                AdversarialConfig { n_critic: 2, gp: Some(10.0), ..AdversarialConfig::default() }
            }
            "unrolled-gan" => AdversarialConfig { unroll: 2, ..AdversarialConfig::default() },
            _ => AdversarialConfig::default(),
        };
        let tc = |steps| TrainConfig {
            steps,
            batch_size: 16,
            lr: 1e-3,
            eval_every: 100,
            adversarial: Some(adv.clone()),
            ..TrainConfig::default()
        };
        let full = Model::new(&cfg, 1, &Device::Cpu).unwrap();
        let mut t =
            AdversarialTrainer::new(&full, tc(4), 1, deepgen::data::Binarize::None).unwrap();
        t.fit(&full, &data, &mut deepgen::train::NoHooks).unwrap();
        // 2 steps, save, reload into a fresh model and trainer, 2 more.
        let back = trained_with_a_reload(&cfg, &tc, 2, 4, &data, 1);
        for ((n, a), (_, b)) in full.params.vars().zip(back.params.vars()) {
            assert_eq!(
                vec1(a.as_tensor()),
                vec1(b.as_tensor()),
                "{name}: {n} differs after resuming"
            );
        }
        // The puzzle GAN makes wholes from patches, not samples.
        let s = match back.get::<deepgen::models::PuzzleGan>() {
            Some(p) => {
                let x = data.batch(&(0..5).collect::<Vec<_>>(), &Device::Cpu).unwrap();
                let cuts = p.cut_rows(&x, &mut rng::rng(0)).unwrap();
                let sets: Vec<_> = cuts.iter().map(|c| c.patches.clone()).collect();
                p.assemble(&sets, p.cfg.patch_size, &mut rng::rng(0)).unwrap().images
            }
            None => deepgen::models::Sampler::sample(&back, 5, &mut rng::rng(0)).unwrap(),
        };
        assert_eq!(s.dims(), &[5, data.dim()], "{name}");
        assert!(vec1(&s).iter().all(|v| v.is_finite()), "{name}: non-finite samples");
    }
}

/// An Adam over all of the model's weights holding a copy of the critic optimiser's state.
fn critic_adam_copy(m: &Model, t: &AdversarialTrainer) -> Adam {
    let mut opt = Adam::new(&m.params, t.cfg.optimizer).unwrap();
    let state = t.d_opt.state();
    let all: std::collections::HashMap<String, Tensor> = m
        .params
        .vars()
        .map(|(n, v)| {
            (
                format!("mv.{n}"),
                state.get(&format!("mv.{n}")).cloned().unwrap_or_else(|| {
                    Tensor::zeros((2, v.elem_count()), candle_core::DType::F32, &Device::Cpu)
                        .unwrap()
                }),
            )
        })
        .collect();
    opt.load_state(&all, t.d_opt.step, std::path::Path::new("-")).unwrap();
    opt
}

/// The unrolled look-ahead is exactly what K real updates of the critic's Adam would do.
#[test]
fn unrolled_weights_equal_k_real_critic_updates() {
    deepgen::enable_second_order();
    let m = tiny_gan("unrolled-gan", 6);
    let game = m.as_adversarial().unwrap();
    let data = toy(64);
    let x = data.batch(&(0..16).collect::<Vec<_>>(), &Device::Cpu).unwrap();
    let mut t = trainer(
        &m,
        AdversarialConfig { d_lr: 0.01, unroll: 3, ..AdversarialConfig::default() },
        16,
    );
    t.step(&m, &data, 0).unwrap();
    for first_order in [false, true] {
        t.adv.first_order = first_order;
        let ws = t.unrolled_weights(game, &x, None, &mut rng::rng(21)).unwrap();
        // The same draws, applied in place by the critic's own optimiser (on a copy of its state).
        let saved: Vec<Vec<f32>> =
            game.d_weights().iter().map(|(_, v)| vec1(v.as_tensor())).collect();
        let mut opt = critic_adam_copy(&m, &t);
        let mut r = rng::rng(21);
        for _ in 0..3 {
            let real = game.real(&x, None, &mut r).unwrap();
            let fake = game.fake(&x, None, &mut r).unwrap();
            let fake = Side { x: fake.x.detach(), cond: None, codes: None };
            let w: Vec<Tensor> =
                game.d_weights().into_iter().map(|(_, v)| v.as_tensor().clone()).collect();
            let (vr, _) = game.critic(&real, &w).unwrap();
            let (vf, _) = game.critic(&fake, &w).unwrap();
            let g = GanLoss::NonSaturating.critic(&vr, &vf).unwrap().loss.backward().unwrap();
            // Only the critic's weights move: keep the generator's gradients out.
            let mut only_d = g;
            for n in game.g_names() {
                only_d.remove(m.params.get(&n).unwrap().as_tensor());
            }
            opt.step(&only_d, 0.01, 1.0).unwrap();
        }
        for ((n, v), (w, before)) in game.d_weights().iter().zip(ws.iter().zip(&saved)) {
            let (a, b) = (vec1(v.as_tensor()), vec1(w));
            assert!(a != *before, "{n}: 3 critic updates did not move it");
            for (p, q) in a.iter().zip(&b) {
                assert!(
                    (p - q).abs() < 1e-5 * (1.0 + p.abs()),
                    "{n} (first_order {first_order}): real updates {p}, unrolled {q}"
                );
            }
            v.set(&Tensor::from_vec(before.clone(), v.dims(), &Device::Cpu).unwrap()).unwrap();
        }
    }
}

/// Runs `run` on the fused CPU ops, then under `with_create_graph` (candle's
/// compositions), and asserts the loss and every gradient agree.
fn fused_equals_composed(run: impl Fn() -> (f32, Vec<Vec<f32>>)) {
    let (la, ga) = run();
    let (lb, gb) = with_create_graph(&run);
    assert!((la - lb).abs() < 1e-4 * (1.0 + lb.abs()), "fused {la} vs composed {lb}");
    for (a, b) in ga.iter().zip(&gb) {
        for (u, v) in a.iter().zip(b) {
            assert!((u - v).abs() < 1e-4 * (1.0 + v.abs()), "fused {u} vs composed {v}");
        }
    }
}

/// `--unroll-same-batch`: the K look-ahead steps all use one real and one
/// generated batch, so the unrolled weights equal K critic updates on that pair.
#[test]
fn unrolling_on_one_batch_equals_k_critic_updates_on_that_batch() {
    deepgen::enable_second_order();
    let m = tiny_gan("unrolled-gan", 7);
    let game = m.as_adversarial().unwrap();
    let data = toy(64);
    let x = data.batch(&(0..16).collect::<Vec<_>>(), &Device::Cpu).unwrap();
    let mut t = trainer(
        &m,
        AdversarialConfig {
            d_lr: 0.01,
            unroll: 3,
            unroll_same_batch: true,
            ..AdversarialConfig::default()
        },
        16,
    );
    t.step(&m, &data, 0).unwrap();
    let ws = t.unrolled_weights(game, &x, None, &mut rng::rng(22)).unwrap();
    let fresh = {
        t.adv.unroll_same_batch = false;
        let w = t.unrolled_weights(game, &x, None, &mut rng::rng(22)).unwrap();
        t.adv.unroll_same_batch = true;
        w
    };
    let saved: Vec<Vec<f32>> = game.d_weights().iter().map(|(_, v)| vec1(v.as_tensor())).collect();
    let mut opt = critic_adam_copy(&m, &t);
    let mut r = rng::rng(22);
    let real = game.real(&x, None, &mut r).unwrap();
    let fake = game.fake(&x, None, &mut r).unwrap();
    let fake = Side { x: fake.x.detach(), cond: None, codes: None };
    for _ in 0..3 {
        let w: Vec<Tensor> =
            game.d_weights().into_iter().map(|(_, v)| v.as_tensor().clone()).collect();
        let (vr, _) = game.critic(&real, &w).unwrap();
        let (vf, _) = game.critic(&fake, &w).unwrap();
        let mut g = GanLoss::NonSaturating.critic(&vr, &vf).unwrap().loss.backward().unwrap();
        for n in game.g_names() {
            g.remove(m.params.get(&n).unwrap().as_tensor());
        }
        opt.step(&g, 0.01, 1.0).unwrap();
    }
    let mut differs = false;
    for (((n, v), (w, before)), f) in game.d_weights().iter().zip(ws.iter().zip(&saved)).zip(&fresh)
    {
        let (a, b) = (vec1(v.as_tensor()), vec1(w));
        for (p, q) in a.iter().zip(&b) {
            assert!(
                (p - q).abs() < 1e-5 * (1.0 + p.abs()),
                "{n}: updates on one batch {p}, unrolled {q}"
            );
        }
        differs |= vec1(f).iter().zip(&b).any(|(p, q)| (p - q).abs() > 1e-4);
        v.set(&Tensor::from_vec(before.clone(), v.dims(), &Device::Cpu).unwrap()).unwrap();
    }
    assert!(differs, "fresh batches and one batch gave the same unrolled critic");
}

/// The fused convolution + LeakyReLU and batch norm + ReLU (one op each on the
/// CPU) equal their candle compositions, in values and in every gradient.
#[test]
fn fused_convolution_and_normalisation_activations_match_the_compositions() {
    use deepgen::nn::{
        stack::{Init, Stack},
        Act,
    };
    let dev = Device::Cpu;
    let mut p = Params::new();
    let mut r = rng::rng(11);
    let g = Strided { k: 4, stride: 2, pad: 1 };
    let mut s = Stack::new("s", 4 * 4 * 2, &dev);
    s.reshape(&[4, 4, 2]);
    s.down(&mut p, "c1", g, (4, 4, 2), 3, Init::Default, &mut r).unwrap().act(Act::Leaky(0.2));
    s.down(&mut p, "c2", g, (2, 2, 3), 4, Init::Default, &mut r)
        .unwrap()
        .norm(&mut p, "bn", 4, true, &mut r)
        .unwrap()
        .act(Act::Relu);
    s.dense(&mut p, "fc", 3, false, Init::Default, &mut r).unwrap();
    let x = Var::from_tensor(&rng::randn(&mut r, &[6, 32], &dev).unwrap()).unwrap();
    let w = rng::randn(&mut r, &[6, 3], &dev).unwrap();
    let run = || {
        let y = s.forward(x.as_tensor(), true).unwrap();
        let l = (y * &w).unwrap().sum_all().unwrap();
        let gr = l.backward().unwrap();
        let mut gs: Vec<Vec<f32>> =
            s.vars.iter().map(|v| vec1(gr.get(v.as_tensor()).unwrap())).collect();
        gs.push(vec1(gr.get(x.as_tensor()).unwrap()));
        (l.to_scalar::<f32>().unwrap(), gs)
    };
    fused_equals_composed(run);
}

/// `--g-norm`: the MLP generator gets batch norm before each hidden ReLU,
/// with running statistics that training updates and sampling uses.
#[test]
fn mlp_generator_batch_norm_trains_and_samples_from_running_statistics() {
    let ModelConfig::Gan(mut c) = ModelConfig::preset("gan", &[2], false).unwrap() else {
        panic!()
    };
    c.g_hidden = vec![5, 4];
    c.d_hidden = vec![6];
    c.latent = 3;
    c.g_norm = true;
    let m = Model::new(&ModelConfig::Gan(c), 3, &Device::Cpu).unwrap();
    let stat = |n: &str| vec1(m.params.get(n).unwrap_or_else(|| panic!("no {n}")).as_tensor());
    assert_eq!(stat("g.bn0.running_mean"), vec![0.0; 5]);
    assert_eq!(stat("g.bn1.running_var"), vec![1.0; 4]);
    let mut t = trainer(&m, AdversarialConfig::default(), 16);
    t.step(&m, &toy(64), 0).unwrap();
    assert!(
        stat("g.bn0.running_mean").iter().any(|v| v.abs() > 1e-6),
        "training left the running mean at 0"
    );
    // With the running statistics a draw does not depend on the rest of its batch
    // (batch statistics of a single row would normalise it to beta).
    use deepgen::models::Sampler;
    let a = vec1(&m.sample(8, &mut rng::rng(1)).unwrap().flatten_all().unwrap());
    let b = vec1(&m.sample(1, &mut rng::rng(1)).unwrap().flatten_all().unwrap());
    for (u, v) in a[..2].iter().zip(&b) {
        assert!((u - v).abs() < 1e-5, "first draw {u} in a batch of 8, {v} alone");
    }
}

/// The fused batch norm and LeakyReLU equal their candle compositions, in values and gradients.
#[test]
fn fused_batch_norm_and_leaky_relu_match_the_compositions() {
    use deepgen::nn::{
        stack::{Init, Stack},
        Act,
    };
    let dev = Device::Cpu;
    let mut p = Params::new();
    let mut r = rng::rng(8);
    let mut s = Stack::new("s", 6, &dev);
    s.dense(&mut p, "fc", 12, false, Init::Default, &mut r).unwrap().reshape(&[2, 2, 3]);
    s.norm(&mut p, "bn", 3, false, &mut r).unwrap().act(Act::Leaky(0.2));
    let x = rng::randn(&mut r, &[5, 6], &dev).unwrap();
    let w = rng::randn(&mut r, &[5, 2, 2, 3], &dev).unwrap();
    let run = || {
        let y = s.forward(&x, true).unwrap();
        let l = (y * &w).unwrap().sum_all().unwrap();
        let g = l.backward().unwrap();
        let gs: Vec<Vec<f32>> =
            s.vars.iter().map(|v| vec1(g.get(v.as_tensor()).unwrap())).collect();
        (l.to_scalar::<f32>().unwrap(), gs)
    };
    fused_equals_composed(run);
}

/// The running statistics batch norm keeps for sampling: the fused path updates them as the
/// composition does
/// (momentum 0.1, unbiased variance), and eval mode uses them.
#[test]
fn batch_norm_running_statistics_match_the_composition() {
    use deepgen::nn::stack::{Init, Stack};
    let dev = Device::Cpu;
    let mut p = Params::new();
    let mut r = rng::rng(9);
    let mut s = Stack::new("s", 4, &dev);
    s.dense(&mut p, "fc", 3, false, Init::Default, &mut r).unwrap();
    s.norm(&mut p, "bn", 3, true, &mut r).unwrap();
    let x = (rng::randn(&mut r, &[7, 4], &dev).unwrap() * 3.0).unwrap();
    let stats = |p: &Params| {
        (
            vec1(p.get("s.bn.running_mean").unwrap().as_tensor()),
            vec1(p.get("s.bn.running_var").unwrap().as_tensor()),
        )
    };
    s.forward(&x, true).unwrap();
    let fused = stats(&p);
    p.get("s.bn.running_mean")
        .unwrap()
        .set(&Tensor::zeros(3, candle_core::DType::F32, &dev).unwrap())
        .unwrap();
    p.get("s.bn.running_var")
        .unwrap()
        .set(&Tensor::ones(3, candle_core::DType::F32, &dev).unwrap())
        .unwrap();
    with_create_graph(|| s.forward(&x, true).unwrap());
    let composed = stats(&p);
    for (a, b) in fused.0.iter().chain(&fused.1).zip(composed.0.iter().chain(&composed.1)) {
        assert!((a - b).abs() < 1e-5 * (1.0 + b.abs()), "fused {a} vs composed {b}");
    }
    assert!(fused.0.iter().any(|m| m.abs() > 1e-3), "running mean never moved");
    // Eval mode normalises with the running statistics, not the batch's.
    let h = vec1(&s.forward(&x.narrow(0, 0, 1).unwrap(), false).unwrap());
    assert!(h.iter().all(|v| v.is_finite()));
}

/// The AAE's priors draw what they say: the mixture's components, the swiss roll's spiral, the
/// file's rows.
#[test]
fn aae_priors_draw_from_their_distributions() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("prior.csv");
    std::fs::write(&file, "1.0,2.0\n-3.0,0.5\n").unwrap();
    for prior in ["mixture10", "swiss-roll", &format!("csv:{}", file.display())] {
        let ModelConfig::Aae(mut c) = ModelConfig::preset("aae", &[4], false).unwrap() else {
            panic!()
        };
        c.prior = prior.parse().unwrap();
        c.hidden = vec![4];
        c.d_hidden = vec![4];
        let m = Model::new(&ModelConfig::Aae(c), 0, &Device::Cpu).unwrap();
        let z = vec1(&m.get::<Aae>().unwrap().prior_sample(2000, &mut rng::rng(1)).unwrap());
        let pts: Vec<[f32; 2]> = z.chunks(2).map(|c| [c[0], c[1]]).collect();
        match prior {
            "mixture10" => {
                // Every draw is within 4 sd of one of the 10 means, and every component is drawn.
                let means: Vec<[f32; 2]> =
                    (0..10).map(deepgen::models::Prior::mixture_mean).collect();
                let rep = mode_report(&pts, &means, 0.5 * 4.0 / 3.0, 0.05);
                assert!(rep.high_quality > 0.999 && rep.covered == 10, "{rep:?}");
            }
            "swiss-roll" => {
                // Radius |z| = t / 3 with t in [1.5 pi, 4.5 pi] (up to the 0.05 noise).
                for p in &pts {
                    let r = (p[0] * p[0] + p[1] * p[1]).sqrt();
                    assert!(
                        r > 1.5 * std::f32::consts::PI / 3.0 - 0.3
                            && r < 4.5 * std::f32::consts::PI / 3.0 + 0.3,
                        "radius {r}"
                    );
                }
            }
            _ => assert!(
                pts.iter().all(|p| *p == [1.0, 2.0] || *p == [-3.0, 0.5])
                    && pts.contains(&[1.0, 2.0])
                    && pts.contains(&[-3.0, 0.5])
            ),
        }
    }
}

/// DCGAN players take any channel count: a step on 3-channel 8x8 images, samples of that shape.
#[test]
fn dcgan_handles_colour_images() {
    let mut r = rng::rng(3);
    let x = vec1(&rng::uniform(&mut r, &[16 * 3 * 8 * 8], 0.0, 1.0, &Device::Cpu).unwrap());
    let data = Dataset::new("rgb", x, vec![3, 8, 8], None).unwrap();
    let mut cfg = ModelConfig::preset("dcgan", &[3, 8, 8], true).unwrap();
    if let ModelConfig::Gan(c) = &mut cfg {
        c.channels = 4;
        c.latent = 3;
        assert_eq!(c.arch, deepgen::models::Arch::Dcgan);
    }
    let m = Model::new(&cfg, 0, &Device::Cpu).unwrap();
    let mut t = trainer(&m, AdversarialConfig::default(), 8);
    let rec = t.step(&m, &data, 0).unwrap();
    assert!(rec.loss.is_finite());
    let s = deepgen::models::Sampler::sample(&m, 2, &mut rng::rng(0)).unwrap();
    assert_eq!(s.dims(), &[2, 192]);
    assert!(vec1(&s).iter().all(|v| (0.0..=1.0).contains(v)));
}

/// A conditional GAN refuses unlabelled data and out-of-range labels before training, naming the
/// data.
#[test]
fn conditional_gan_refuses_data_it_cannot_condition_on() {
    let ModelConfig::Gan(mut c) = ModelConfig::preset("cgan", &[2], false).unwrap() else {
        panic!()
    };
    c.classes = 3;
    c.g_hidden = vec![4];
    c.d_hidden = vec![4];
    let m = Model::new(&ModelConfig::Gan(c), 0, &Device::Cpu).unwrap();
    let mut t = trainer(&m, AdversarialConfig::default(), 8);
    let unlabelled = Dataset::new("pts", vec![0.0; 32], vec![2], None).unwrap();
    let e = t.fit(&m, &unlabelled, &mut deepgen::train::NoHooks).unwrap_err().to_string();
    assert!(e.contains("pts") && e.contains("needs labelled data"), "{e}");
    let ring = toy(64); // labels 0..7, more than 3 classes
    let e = t.fit(&m, &ring, &mut deepgen::train::NoHooks).unwrap_err().to_string();
    assert!(e.contains("out of range for 3 classes"), "{e}");
    assert_eq!(t.step_count(), 0);
}

/// PacGAN: a critic packed in groups of 2 is the one-example critic of data
/// with twice the values per example, fed each group's members back to back
/// (MLP rows concatenated; DCGAN images stacked as channels, which in C, H, W
/// row order is the same concatenation). Checked with the same weights for
/// both, MLP and DCGAN; ragged batches, InfoGAN codes and per-example scores are refused.
#[test]
fn a_packed_critic_judges_each_group_as_one_example() {
    for (shape, wide, arch) in [
        (vec![3], vec![6], deepgen::models::Arch::Mlp),
        (vec![1, 8, 8], vec![2, 8, 8], deepgen::models::Arch::Dcgan),
    ] {
        let model = |shape: &[usize], pack: usize| {
            let ModelConfig::Gan(mut c) = ModelConfig::preset("dcgan", shape, true).unwrap() else {
                panic!()
            };
            c.arch = arch;
            c.channels = 4;
            c.d_hidden = vec![5, 4];
            c.pack = pack;
            Model::new(&ModelConfig::Gan(c), 7, &Device::Cpu).unwrap()
        };
        let (packed, plain) = (model(&shape, 2), model(&wide, 1));
        randomize(&plain, 3, 0.5);
        let ws: Vec<Tensor> = plain
            .as_adversarial()
            .unwrap()
            .d_weights()
            .iter()
            .map(|(_, v)| v.as_tensor().clone())
            .collect();
        let d: usize = shape.iter().product();
        let x = rng::randn(&mut rng::rng(1), &[6, d], &Device::Cpu).unwrap();
        let side = |x: &Tensor| Side { x: x.clone(), cond: None, codes: None };
        let (vp, _) = packed.as_adversarial().unwrap().critic(&side(&x), &ws).unwrap();
        let (vw, _) = plain
            .as_adversarial()
            .unwrap()
            .critic(&side(&x.reshape((3, 2 * d)).unwrap()), &ws)
            .unwrap();
        assert_eq!(vp.dims(), &[3], "{arch:?}");
        for (a, b) in vec1(&vp).iter().zip(vec1(&vw)) {
            assert!(
                (a - b).abs() < 1e-5,
                "{arch:?}: packed critic {a}, one-example critic of the group {b}"
            );
        }
        // Swapping two groups swaps their outputs (MLP: no batch statistics in the critic).
        if arch == deepgen::models::Arch::Mlp {
            let swapped = Tensor::cat(
                &[
                    x.narrow(0, 2, 2).unwrap(),
                    x.narrow(0, 0, 2).unwrap(),
                    x.narrow(0, 4, 2).unwrap(),
                ],
                0,
            )
            .unwrap();
            let (vs, _) = packed.as_adversarial().unwrap().critic(&side(&swapped), &ws).unwrap();
            let (a, b) = (vec1(&vp), vec1(&vs));
            assert_eq!([b[1], b[0], b[2]], a[..], "swapping two groups swaps their outputs");
        }
        // The gradient penalty's norm is over the group, the packed critic's whole input:
        // the same e, and the one-example critic's gradient at each group's interpolate.
        let xf = rng::randn(&mut rng::rng(2), &[6, d], &Device::Cpu).unwrap();
        let gp = AdversarialTrainer::gradient_penalty(
            packed.as_adversarial().unwrap(),
            &side(&x),
            &side(&xf),
            &ws,
            10.0,
            &mut rng::rng(9),
        )
        .unwrap();
        let e = rng::uniform(&mut rng::rng(9), &[6, 1], 0.0, 1.0, &Device::Cpu).unwrap();
        let xhat = (x.broadcast_mul(&e).unwrap() + xf.broadcast_mul(&(1.0 - &e).unwrap()).unwrap())
            .unwrap();
        let wide_hat = Var::from_tensor(&xhat.reshape((3, 2 * d)).unwrap()).unwrap();
        let (v, _) =
            plain.as_adversarial().unwrap().critic(&side(wide_hat.as_tensor()), &ws).unwrap();
        let g = vec1(
            &v.sum_all()
                .unwrap()
                .backward()
                .unwrap()
                .get(wide_hat.as_tensor())
                .unwrap()
                .flatten_all()
                .unwrap(),
        );
        let want: f32 = g
            .chunks(2 * d)
            .map(|row| (row.iter().map(|v| v * v).sum::<f32>().sqrt() - 1.0).powi(2))
            .sum::<f32>()
            / 3.0
            * 10.0;
        let got = gp.to_scalar::<f32>().unwrap();
        assert!(
            (got - want).abs() < 1e-4 * (1.0 + want.abs()),
            "{arch:?}: packed gradient penalty {got}, group-wise by hand {want}"
        );
        let e = packed
            .as_adversarial()
            .unwrap()
            .critic(&side(&x.narrow(0, 0, 5).unwrap()), &ws)
            .unwrap_err()
            .to_string();
        assert!(e.contains("5 examples") && e.contains("multiple of 2"), "{e}");
        let e = packed.get::<Gan>().unwrap().critic_value(&x).unwrap_err().to_string();
        assert!(e.contains("packed"), "{e}");
    }
    let ModelConfig::Gan(mut c) = ModelConfig::preset("infogan", &[2], false).unwrap() else {
        panic!()
    };
    c.pack = 2;
    let e = Model::new(&ModelConfig::Gan(c), 0, &Device::Cpu).err().unwrap().to_string();
    assert!(e.contains("--pack") && e.contains("InfoGAN"), "{e}");
}

#[test]
fn least_squares_losses_match_the_hand_computation_and_mao_et_al() {
    let t = |v: &[f32]| Tensor::from_vec(v.to_vec(), v.len(), &Device::Cpu).unwrap();
    let (vr, vf) = (t(&[1.0, 0.5]), t(&[0.0, 0.5]));
    let terms = GanLoss::LeastSquares.critic(&vr, &vf).unwrap();
    // 1/2 mean((0, 0.25)) + 1/2 mean((0, 0.25)) = 0.125; the estimate is its negative.
    assert!((terms.loss.to_scalar::<f32>().unwrap() - 0.125).abs() < 1e-7);
    assert!((terms.estimate.to_scalar::<f32>().unwrap() + 0.125).abs() < 1e-7);
    // Generator: 1/2 mean((1, 0.25)) = 0.3125.
    let g = GanLoss::LeastSquares.generator(&vf).unwrap().to_scalar::<f32>().unwrap();
    assert!((g - 0.3125).abs() < 1e-7);
    // Gradients by hand: d/dvr_i = (vr_i - 1) / n, d/dvf_i = vf_i / n (n = 2 each), so the
    // critic's optimum is v = 1 on real and 0 on generated examples (eq. 9, b = 1, a = 0).
    let (r, f) = (Var::from_tensor(&vr).unwrap(), Var::from_tensor(&vf).unwrap());
    let loss = GanLoss::LeastSquares.critic(r.as_tensor(), f.as_tensor()).unwrap().loss;
    let grads = loss.backward().unwrap();
    let gr = grads.get(r.as_tensor()).unwrap().to_vec1::<f32>().unwrap();
    let gf = grads.get(f.as_tensor()).unwrap().to_vec1::<f32>().unwrap();
    assert_eq!((gr, gf), (vec![0.0, -0.25], vec![0.0, 0.25]));
    assert_eq!("lsgan".parse::<GanLoss>().unwrap(), GanLoss::LeastSquares);
    assert_eq!(GanLoss::LeastSquares.name(), "least squares");
}
