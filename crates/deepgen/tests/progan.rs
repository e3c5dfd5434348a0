//! Progressive GAN (issue 24): equalised learning rate, pixel norm, minibatch standard deviation
//! and the pooling layers against hand computations; the growth schedule; the fade-in of both
//! players and of the real images at alpha 0 and 1; optimiser restarts and a bit-identical
//! resume in the middle of a fade; the batch-size check; SWD and MS-SSIM.

mod common;

use candle_core::{Device, Tensor};
use deepgen::data::{Binarize, Dataset};
use deepgen::eval::ms_ssim::{mean_ms_ssim, ms_ssim};
use deepgen::eval::swd::{self, Images};
use deepgen::models::progan::{ProGan, ProGanConfig};
use deepgen::models::{Model, ModelConfig, Side};
use deepgen::nn::conv::{conv_down, Strided};
use deepgen::nn::stack::{avg_pool2, minibatch_stddev, pixel_norm, upsample2, Init, Stack};
use deepgen::nn::Params;
use deepgen::recipe::TrainConfig;
use deepgen::rng;
use deepgen::run::RunDir;
use deepgen::train::AdversarialTrainer;

use common::vec1;

fn assert_close(a: &[f32], b: &[f32], tol: f32, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (u, v)) in a.iter().zip(b).enumerate() {
        assert!((u - v).abs() <= tol * (1.0 + v.abs()), "{what}[{i}]: {u} vs {v}");
    }
}

#[test]
fn equalised_layers_store_unit_normal_weights_and_scale_them_by_the_he_constant() {
    let dev = Device::Cpu;
    let mut p = Params::new();
    let mut r = rng::rng(1);
    let gain = std::f32::consts::SQRT_2;
    let mut d = Stack::new("d", 200, &dev);
    d.dense(&mut p, "fc", 300, false, Init::Equalized(gain), &mut r).unwrap();
    let w = vec1(d.vars[0].as_tensor());
    let mean = w.iter().sum::<f32>() / w.len() as f32;
    let sd = (w.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / w.len() as f32).sqrt();
    assert!(mean.abs() < 0.01 && (sd - 1.0).abs() < 0.01, "stored N(0, 1): {mean} {sd}");
    assert!(vec1(d.vars[1].as_tensor()).iter().all(|&b| b == 0.0), "biases start at 0");
    // Forward: x (w * gain / sqrt(200)) + b, the scale applied at run time.
    d.vars[1].set(&rng::randn(&mut r, &[300], &dev).unwrap()).unwrap();
    let x = rng::randn(&mut r, &[4, 200], &dev).unwrap();
    let scale = gain as f64 / 200f64.sqrt();
    let want = x
        .matmul(&(d.vars[0].as_tensor() * scale).unwrap())
        .unwrap()
        .broadcast_add(d.vars[1].as_tensor())
        .unwrap();
    assert_close(&vec1(&d.forward(&x, true).unwrap()), &vec1(&want), 1e-4, "dense");
    // A later change of the stored weight changes the output through the same constant: the
    // scale is not folded in at initialisation.
    d.vars[0].set(&(d.vars[0].as_tensor() * 2.0).unwrap()).unwrap();
    let want2 = ((want.broadcast_sub(d.vars[1].as_tensor()).unwrap() * 2.0).unwrap())
        .broadcast_add(d.vars[1].as_tensor())
        .unwrap();
    assert_close(&vec1(&d.forward(&x, true).unwrap()), &vec1(&want2), 1e-4, "dense, later");
    // A 3x3 convolution over 5 channels: fan-in 45.
    let g = Strided { k: 3, stride: 1, pad: 1 };
    let mut c = Stack::new("c", 6 * 6 * 5, &dev);
    c.down(&mut p, "conv", g, (6, 6, 5), 7, Init::Equalized(gain), &mut r).unwrap();
    let x = rng::randn(&mut r, &[2, 6, 6, 5], &dev).unwrap();
    let scaled = (c.vars[0].as_tensor() * (gain as f64 / 45f64.sqrt())).unwrap();
    let want = conv_down(g, &x, &scaled, c.vars[1].as_tensor()).unwrap();
    assert_close(&vec1(&c.forward(&x, true).unwrap()), &vec1(&want), 1e-4, "conv");
    assert_eq!(Init::Equalized(1.0).scale(16), 0.25);
    assert_eq!(Init::Default.scale(16), 1.0);
}

#[test]
fn pixel_norm_minibatch_stddev_and_the_resampling_layers_match_hand_computations() {
    let dev = Device::Cpu;
    // Pixel norm: one pixel's features (3, 4) over sqrt(mean(9, 16) + 1e-8).
    let x = Tensor::from_vec(vec![3f32, 4.0, 0.0, 0.0], (1, 1, 2, 2), &dev).unwrap();
    let y = vec1(&pixel_norm(&x).unwrap());
    let s = (12.5f32 + 1e-8).sqrt();
    assert_close(&y, &[3.0 / s, 4.0 / s, 0.0, 0.0], 1e-6, "pixel norm");
    // Minibatch stddev, 4 examples of one 1x1 pixel with 2 features, groups of 2: example i is in
    // group i mod 2, so groups {0, 2} and {1, 3}.
    let v = [1f32, 10.0, 2.0, 20.0, 3.0, 30.0, 6.0, 60.0];
    let x = Tensor::from_vec(v.to_vec(), (4, 1, 1, 2), &dev).unwrap();
    let y = vec1(&minibatch_stddev(&x, 2).unwrap());
    // Group {0, 2}: features (1, 3) and (10, 30): biased sd 1 and 10, mean 5.5.
    // Group {1, 3}: (2, 6) and (20, 60): sd 2 and 20, mean 11.
    let sd = |a: f32| (a * a + 1e-8).sqrt();
    let g0 = (sd(1.0) + sd(10.0)) / 2.0;
    let g1 = (sd(2.0) + sd(20.0)) / 2.0;
    let want = [1.0, 10.0, g0, 2.0, 20.0, g1, 3.0, 30.0, g0, 6.0, 60.0, g1];
    assert_close(&y, &want, 1e-6, "minibatch stddev");
    let e = minibatch_stddev(&x.narrow(0, 0, 3).unwrap(), 2).unwrap_err().to_string();
    assert!(e.contains("--group-size") && e.contains("batch of 3"), "{e}");
    // Upsampling repeats each pixel in a 2x2 block; pooling averages it back.
    let x = Tensor::from_vec(vec![1f32, 2.0, 3.0, 4.0], (1, 2, 2, 1), &dev).unwrap();
    let up = upsample2(&x).unwrap();
    assert_eq!(
        vec1(&up),
        [1., 1., 2., 2., 1., 1., 2., 2., 3., 3., 4., 4., 3., 3., 4., 4.].to_vec()
    );
    assert_eq!(vec1(&avg_pool2(&up).unwrap()), vec1(&x));
    assert_eq!(vec1(&avg_pool2(&x).unwrap()), vec![2.5]);
}

/// A ProGAN on `shape` with tiny players and phases of `s` stable and `f` fading images.
fn tiny(shape: &[usize], s: u64, f: u64) -> ProGanConfig {
    let ModelConfig::ProGan(mut c) = ModelConfig::preset("progan", shape, true).unwrap() else {
        panic!("not a progan preset")
    };
    (c.channels, c.latent, c.stabilise_images, c.fade_images) = (4, 6, s, f);
    c
}

#[test]
fn the_schedule_alternates_stable_and_fading_phases_up_to_the_largest_resolution() {
    let c = tiny(&[1, 28, 28], 100, 50);
    assert_eq!((c.start_res, c.max_res), (4, 32), "28-px digits grow to 32, padded");
    let at = |n: u64| {
        let p = c.phase(n);
        (p.resolution, p.alpha, p.phase_start)
    };
    assert_eq!(at(0), (4, 1.0, 0));
    assert_eq!(at(99), (4, 1.0, 0));
    assert_eq!(at(100), (8, 0.0, 100));
    assert_eq!(at(125), (8, 0.5, 100));
    assert_eq!(at(150), (8, 1.0, 150));
    assert_eq!(at(250), (16, 0.0, 250));
    assert_eq!(at(400), (32, 0.0, 400));
    assert_eq!(at(450), (32, 1.0, 450));
    assert_eq!(at(10_000), (32, 1.0, 450), "the last resolution trains on");
    assert_eq!(c.phase(125).label, "8x8 fading in, alpha 0.50");
    assert_eq!(c.phase(10).label, "4x4 stable");
    // Growth can start higher and stop lower.
    let c2 = ProGanConfig { start_res: 8, max_res: 16, ..c.clone() };
    assert_eq!(c2.phase(0).resolution, 8);
    assert_eq!(c2.phase(100).resolution, 16);
    assert_eq!(c2.phase(100_000).resolution, 16);
    // Bad choices are refused by flag.
    for (bad, flag) in [
        (ProGanConfig { max_res: 24, ..c.clone() }, "--max-res"),
        (ProGanConfig { max_res: 64, ..c.clone() }, "--max-res"),
        (ProGanConfig { start_res: 2, ..c.clone() }, "--start-res"),
        (ProGanConfig { start_res: 16, max_res: 8, ..c.clone() }, "--start-res"),
        (ProGanConfig { stabilise_images: 0, ..c.clone() }, "--stabilise-images"),
        (ProGanConfig { group_size: 0, ..c.clone() }, "--group-size"),
    ] {
        let e = bad.check().unwrap_err().to_string();
        assert!(e.contains(flag), "{flag}: {e}");
    }
}

fn model(c: &ProGanConfig, seed: u64) -> Model {
    Model::new(&ModelConfig::ProGan(c.clone()), seed, &Device::Cpu).unwrap()
}

#[test]
fn at_alpha_0_the_grown_networks_equal_the_old_ones_and_at_alpha_1_the_new_path_alone() {
    let c = tiny(&[1, 16, 16], 100, 100);
    let m = model(&c, 2);
    let g: &ProGan = m.get().unwrap();
    let game = m.as_adversarial().unwrap();
    let dev = Device::Cpu;
    let mut r = rng::rng(9);
    let z = rng::randn(&mut r, &[4, c.latent], &dev).unwrap();
    // Generator: at 8x8 with alpha 0, the 4x4 output upsampled; alpha 1 ignores toRGB at 4x4.
    let old = g.generate(&z, 4, 1.0, false).unwrap();
    let faded0 = g.generate(&z, 8, 0.0, false).unwrap();
    assert_close(&vec1(&faded0), &vec1(&upsample2(&old).unwrap()), 1e-6, "G at alpha 0");
    let new = g.generate(&z, 8, 1.0, false).unwrap();
    let half = g.generate(&z, 8, 0.5, false).unwrap();
    let mix = ((&faded0 * 0.5).unwrap() + (&new * 0.5).unwrap()).unwrap();
    assert_close(&vec1(&half), &vec1(&mix), 1e-5, "G at alpha 0.5");
    let rgb4 = m.params.get("g.rgb4.conv.weight").unwrap();
    rgb4.set(&(rgb4.as_tensor() * 3.0).unwrap()).unwrap();
    assert_close(&vec1(&g.generate(&z, 8, 1.0, false).unwrap()), &vec1(&new), 0.0, "G alpha 1");
    assert!(vec1(&g.generate(&z, 8, 0.5, false).unwrap()) != vec1(&half), "alpha 0.5 mixes");

    // Real images: at 8x8 alpha 0, the 4x4 version upsampled; at alpha 1, the 8x8 average pool.
    let data: Vec<f32> = (0..4 * 256).map(|i| ((i * 37) % 101) as f32 / 100.0).collect();
    let x = Tensor::from_vec(data, (4, 256), &dev).unwrap();
    let real4 = g.real_maps(&x, 4, 1.0).unwrap();
    let real8 = g.real_maps(&x, 8, 1.0).unwrap();
    let maps = ((x.reshape((4, 16, 16, 1)).unwrap() * 2.0).unwrap() - 1.0).unwrap();
    assert_close(&vec1(&real8), &vec1(&avg_pool2(&maps).unwrap()), 1e-6, "real at 8, alpha 1");
    let r0 = g.real_maps(&x, 8, 0.0).unwrap();
    assert_close(&vec1(&r0), &vec1(&upsample2(&real4).unwrap()), 1e-6, "real at 8, alpha 0");

    // Critic: at 8x8 alpha 0 it judges the 4x4 version through fromRGB at 4x4; at alpha 1 the
    // 4x4 fromRGB plays no part.
    let ws: Vec<Tensor> = game.d_weights().iter().map(|(_, v)| v.as_tensor().clone()).collect();
    let judge = |images: u64, maps: &Tensor| {
        game.advance(images).unwrap();
        let side = Side { x: maps.reshape((4, ())).unwrap(), cond: None, codes: None };
        vec1(&game.critic(&side, &ws).unwrap().0)
    };
    let v_old = judge(0, &real4);
    let v_faded0 = judge(100, &real8);
    assert_close(&v_faded0, &v_old, 1e-5, "D at alpha 0");
    let v_new = judge(200, &real8);
    let from4 = m.params.get("d.rgb4.conv.weight").unwrap();
    from4.set(&(from4.as_tensor() * 3.0).unwrap()).unwrap();
    let ws2: Vec<Tensor> = game.d_weights().iter().map(|(_, v)| v.as_tensor().clone()).collect();
    game.advance(200).unwrap();
    let side = Side { x: real8.reshape((4, ())).unwrap(), cond: None, codes: None };
    assert_close(&vec1(&game.critic(&side, &ws2).unwrap().0), &v_new, 0.0, "D alpha 1");
    // Samples are data rows at the data's size in [0, 1] at every resolution.
    for images in [0, 150, 400] {
        game.advance(images).unwrap();
        let s = deepgen::models::Sampler::sample(g, 3, &mut r).unwrap();
        assert_eq!(s.dims(), &[3, 256]);
        assert!(vec1(&s).iter().all(|v| (0.0..=1.0).contains(v)));
    }
}

fn digits() -> Dataset {
    "digits".parse::<deepgen::data::DataSpec>().unwrap().load(0).unwrap()
}

fn train_config(steps: usize, batch: usize) -> TrainConfig {
    let mut t = ModelConfig::recipe("progan", &[1, 8, 8]).unwrap();
    (t.steps, t.batch_size, t.eval_every) = (steps, batch, 1000);
    t
}

#[test]
fn resuming_in_the_middle_of_a_fade_is_bit_identical_and_optimisers_restart_per_phase() {
    let data = digits();
    // Batch 4: 4x4 stable for steps 0-3, fading in 8x8 for steps 4-11, then 8x8 stable.
    let c = tiny(&data.shape, 16, 32);
    let straight = model(&c, 4);
    let mut t = AdversarialTrainer::new(&straight, train_config(14, 4), 4, Binarize::None).unwrap();
    let mut since = vec![];
    for s in 0..14 {
        let rec = t.step(&straight, &data, s).unwrap();
        since.push((t.g_opt.since, t.d_opt.since));
        assert_eq!(rec.parts["resolution"], if s < 4 { 4.0 } else { 8.0 });
        assert!(rec.parts.contains_key("drift"), "the drift term is logged");
        if s == 6 {
            assert_eq!(rec.parts["alpha"], 0.25);
            assert_eq!(rec.phase.as_deref(), Some("8x8 fading in, alpha 0.25"));
        }
    }
    assert_eq!(since[3], (0, 0));
    assert_eq!(since[4], (4, 4), "both restart where the fade begins");
    assert_eq!(since[12], (12, 12), "and where it ends");
    // Step 7 (mid-fade) through a checkpoint, then on to 14.
    let dir = tempfile::tempdir().unwrap();
    let run = RunDir::create(dir.path()).unwrap();
    let half = model(&c, 4);
    let mut t1 = AdversarialTrainer::new(&half, train_config(7, 4), 4, Binarize::None).unwrap();
    t1.fit(&half, &data, &mut deepgen::train::NoHooks).unwrap();
    run.save(&half, &[&t1.g_opt, &t1.d_opt], 7, 4).unwrap();
    let (back, step) = run.load_model(&Device::Cpu).unwrap();
    // The checkpoint holds the phase of the last trained step (6: 24 images, alpha 0.25).
    assert_eq!(back.get::<ProGan>().unwrap().current().unwrap().alpha, 0.25);
    let mut t2 = AdversarialTrainer::new(&back, train_config(14, 4), 4, Binarize::None).unwrap();
    run.load_optimizers(&mut [&mut t2.g_opt, &mut t2.d_opt], step).unwrap();
    t2.set_step(step);
    t2.fit(&back, &data, &mut deepgen::train::NoHooks).unwrap();
    for (name, v) in straight.params.vars() {
        let w = back.params.get(name).unwrap();
        assert_eq!(vec1(v.as_tensor()), vec1(w.as_tensor()), "{name} differs after the resume");
    }
}

#[test]
fn a_batch_size_that_is_not_a_multiple_of_the_group_size_is_refused_by_name() {
    let data = digits();
    let m = model(&tiny(&data.shape, 16, 16), 1);
    let e = AdversarialTrainer::new(&m, train_config(2, 6), 1, Binarize::None).err().unwrap();
    let e = e.to_string();
    assert!(e.contains("--batch-size 6") && e.contains("--group-size"), "{e}");
    // Smaller batches than the group form one group.
    assert!(AdversarialTrainer::new(&m, train_config(2, 3), 1, Binarize::None).is_ok());
}

fn images(v: Vec<f32>, shape: &[usize]) -> Images {
    Images::new(v, shape).unwrap()
}

#[test]
fn the_laplacian_pyramid_sums_back_to_the_image_and_swd_separates_sets() {
    let mut r = rng::rng(3);
    let noise = |r: &mut rng::Rng, n: usize, s: f32| -> Vec<f32> {
        vec1(&(rng::randn(r, &[n * 3 * 32 * 32], &Device::Cpu).unwrap() * s as f64).unwrap())
    };
    let x = images(noise(&mut r, 2, 1.0), &[3, 32, 32]);
    assert_eq!(swd::level_sides(32, 32), vec![32, 16, 8]);
    assert_eq!(swd::level_sides(28, 28), vec![28, 14]);
    let pyr = swd::laplacian_pyramid(&x, 3);
    assert_eq!(pyr.iter().map(|l| l.h).collect::<Vec<_>>(), vec![32, 16, 8]);
    let mut back = pyr[2].clone();
    for level in pyr[..2].iter().rev() {
        let mut up = swd::pyr_up(&back, level.h, level.w);
        up.v.iter_mut().zip(&level.v).for_each(|(a, b)| *a += b);
        back = up;
    }
    assert_close(&back.v, &x.v, 1e-4, "pyramid reconstruction");
    // pyrDown of a constant image is the constant (the filter sums to 1, mirror borders).
    let flat = images(vec![0.7; 16 * 16], &[1, 16, 16]);
    assert!(swd::pyr_down(&flat).v.iter().all(|v| (v - 0.7).abs() < 1e-6));
    // Sets of one distribution (the same images at other random places, or other draws of white
    // noise): close. Stripes under a little noise, another texture: far, at the finest level.
    let a = images(noise(&mut r, 48, 1.0), &[3, 32, 32]);
    let same = swd::swd(&a, &a.clone(), &mut rng::rng(1)).unwrap();
    let close = swd::swd(&a, &images(noise(&mut r, 48, 1.0), &[3, 32, 32]), &mut rng::rng(1));
    let close = close.unwrap();
    let mut stripes = noise(&mut r, 48, 0.3);
    stripes.iter_mut().enumerate().for_each(|(i, v)| *v += ((i % 32) / 2 % 2) as f32);
    let far = swd::swd(&a, &images(stripes, &[3, 32, 32]), &mut rng::rng(1)).unwrap();
    let (f, c, s0) = (far.per_level[0], close.per_level[0], same.per_level[0]);
    assert!(f > 3.0 * c && f > 3.0 * s0, "far {f}, close {c}, same {s0}");
    assert!((far.mean - far.per_level.iter().sum::<f64>() / 3.0).abs() < 1e-9);
    assert!(swd::swd(&a, &x, &mut rng::rng(1)).is_err(), "sets of different sizes");
}

#[test]
fn ms_ssim_is_one_for_equal_images_symmetric_and_matches_a_hand_value_for_flat_ones() {
    let mut r = rng::rng(4);
    let v = vec1(&rng::uniform(&mut r, &[4 * 32 * 32], 0.0, 1.0, &Device::Cpu).unwrap());
    let mut two = v[..32 * 32].to_vec();
    two.extend_from_slice(&v[..32 * 32]);
    let x = images(two, &[1, 32, 32]);
    assert!((ms_ssim(&x, 0, 1).unwrap() - 1.0).abs() < 1e-9);
    let y = images(v.clone(), &[1, 32, 32]);
    let (ab, ba) = (ms_ssim(&y, 0, 1).unwrap(), ms_ssim(&y, 1, 0).unwrap());
    assert!((ab - ba).abs() < 1e-12 && ab < 0.2, "independent noise: {ab}");
    // Flat images 0.2 and 0.6: every contrast-structure term is (0 + C2) / (0 + C2) = 1 and the
    // last scale's luminance is (2 ab + C1) / (a^2 + b^2 + C1).
    let mut flat = vec![0.2f32; 32 * 32];
    flat.extend(vec![0.6f32; 32 * 32]);
    let f = images(flat, &[1, 32, 32]);
    let c1 = 1e-4;
    let lum: f64 = (2.0 * 0.12 + c1) / (0.04 + 0.36 + c1);
    assert!((ms_ssim(&f, 0, 1).unwrap() - lum.powf(0.1333)).abs() < 1e-5);
    assert_eq!(deepgen::eval::ms_ssim::scale_weights(8, 8).len(), 4);
    assert!((deepgen::eval::ms_ssim::scale_weights(8, 8).iter().sum::<f64>() - 1.0).abs() < 1e-12);
    // 28-px images reach an odd side at the third scale: still defined.
    let d = images(v[..2 * 28 * 28].to_vec(), &[1, 28, 28]);
    assert!(mean_ms_ssim(&d, 1).unwrap().is_finite());
}

/// The gradient penalty through ProGAN's critic (equalised 1x1 and 3x3 convolutions, average
/// pooling, the fade-in blend, minibatch stddev, dense layers), differentiated again with
/// respect to the critic's weights, against central finite differences: the graph-building
/// backward of the fused convolutions (dx as the adjoint op) is exact.
#[test]
fn the_gradient_penalty_through_the_progan_critic_matches_finite_differences() {
    deepgen::enable_second_order();
    let data = digits();
    let m = model(&tiny(&data.shape, 16, 32), 3);
    let game = m.as_adversarial().unwrap();
    game.advance(32).unwrap(); // 8x8 fading in, alpha 0.5
    let x = data.batch(&(0..8).collect::<Vec<_>>(), &Device::Cpu).unwrap();
    let all = game.d_weights();
    // Biases start at exactly 0, and the padded border makes pre-activations exactly 0 there:
    // a leaky ReLU's kink, where finite differences jump. Random biases move off it.
    let mut r = rng::rng(8);
    for (n, v) in &all {
        if n.ends_with(".bias") {
            v.set(&(rng::randn(&mut r, v.dims(), &Device::Cpu).unwrap() * 0.1).unwrap()).unwrap();
        }
    }
    // The biases after the minibatch stddev do not change the gradient with respect to the
    // input (only leaky ReLUs follow them, whose second derivative is 0): no gradient at all.
    let after = |n: &str| n.starts_with("d.final.") && n.ends_with(".bias");
    let vars: Vec<_> = all.iter().filter(|(n, _)| !after(n)).cloned().collect();
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
    let n = common::assert_grads_match_fd_vars(&vars, &f, &grads, 7, 1e-3, 3e-2, "progan GP");
    assert!(n > 50, "{n} entries checked");
}
