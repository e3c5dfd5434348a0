//! Fused element-wise kernels, second-order gradients, and the fused Adam.

mod common;

use candle_core::{Device, Tensor, Var};
use common::*;
use deepgen::models::{ModelConfig, NadeConfig};
use deepgen::nn::ops;
use deepgen::rng;
use deepgen::train::{Adam, AdamConfig};

#[test]
fn fast_exp_is_accurate() {
    let mut worst = 0f64;
    let mut x = -80.0f32;
    while x < 80.0 {
        let got = ops::fast_exp(x) as f64;
        let want = (x as f64).exp();
        worst = worst.max((got - want).abs() / want);
        x += 0.0137;
    }
    assert!(worst < 3e-7, "relative error {worst}");
}

#[test]
fn bernoulli_log_prob_and_its_gradient() {
    let dev = Device::Cpu;
    let z = Var::new(&[-30.0f32, -2.0, 0.0, 1.5, 40.0], &dev).unwrap();
    let x = Tensor::new(&[0.0f32, 1.0, 1.0, 0.0, 1.0], &dev).unwrap();
    let lp = ops::bernoulli_log_prob_logits(z.as_tensor(), &x).unwrap();
    let zs = [-30.0f64, -2.0, 0.0, 1.5, 40.0];
    let xs = [0.0f64, 1.0, 1.0, 0.0, 1.0];
    for (i, v) in vec1(&lp).iter().enumerate() {
        // log sigma(z) = -ln(1 + e^-z), log(1 - sigma(z)) = -ln(1 + e^z)
        let want = if xs[i] == 1.0 { -(-zs[i]).exp().ln_1p() } else { -zs[i].exp().ln_1p() };
        assert!((*v as f64 - want).abs() < 1e-5, "{i}: {v} vs {want}");
    }
    let g = vec1(lp.sum_all().unwrap().backward().unwrap().get(z.as_tensor()).unwrap());
    for i in 0..5 {
        let want = xs[i] - 1.0 / (1.0 + (-zs[i]).exp());
        assert!((g[i] as f64 - want).abs() < 1e-6);
    }
}

#[test]
fn log_mean_exp_is_stable_and_right() {
    let t = Tensor::new(&[[1000.0f32, 1000.0], [-3.0, 1.0]], &Device::Cpu).unwrap();
    let v = vec1(&ops::log_mean_exp(&t, 1).unwrap());
    assert!((v[0] - 1000.0).abs() < 1e-3);
    let want = (((-3.0f64).exp() + 1f64.exp()) / 2.0).ln();
    assert!((v[1] as f64 - want).abs() < 1e-5);
}

/// Gradient of a gradient penalty (WGAN-GP style: |d f / d x|^2 for a small
/// MLP with the fused sigmoid) against central finite differences.
#[test]
fn gradient_penalty_gradient_matches_finite_differences() {
    deepgen::enable_second_order();
    assert!(deepgen::check_second_order().unwrap() < 1e-6);
    let dev = Device::Cpu;
    let w1v = [0.3f32, -0.5, 0.8, 0.1, -0.4, 0.6];
    let x = Tensor::new(&[[0.2f32, -0.1], [0.7, 0.4]], &dev).unwrap();
    let w2 = Tensor::new(&[[0.5f32], [-0.9], [0.3]], &dev).unwrap();
    let penalty = |w1: &Tensor| -> Tensor {
        let xv = Var::from_tensor(&x).unwrap();
        let f = ops::sigmoid(&xv.as_tensor().matmul(w1).unwrap())
            .unwrap()
            .matmul(&w2)
            .unwrap()
            .sum_all()
            .unwrap();
        let gx = f.backward().unwrap().get(xv.as_tensor()).unwrap().clone();
        gx.sqr().unwrap().sum_all().unwrap()
    };
    let w1 = Var::new(&w1v, &dev).unwrap();
    let w1m = w1.as_tensor().reshape((2, 3)).unwrap();
    let g = vec1(penalty(&w1m).backward().unwrap().get(w1.as_tensor()).unwrap());
    assert!(
        g.iter().any(|v| v.abs() > 1e-3),
        "second-order gradient is zero: is CANDLE_GRAD_DO_NOT_DETACH set?"
    );
    for k in 0..6 {
        let h = 1e-3f32;
        let eval = |d: f32| {
            let mut v = w1v;
            v[k] += d;
            penalty(&Tensor::new(&v, &dev).unwrap().reshape((2, 3)).unwrap())
                .to_scalar::<f32>()
                .unwrap() as f64
        };
        let fd = (eval(h) - eval(-h)) / (2.0 * h as f64);
        assert!((fd - g[k] as f64).abs() < 1e-3 * (1.0 + fd.abs()), "w1[{k}]: fd {fd} vs {}", g[k]);
    }
}

/// Three Adam steps on f(p) = sum(a * p^2) against the update rule written out in f64.
#[test]
fn fused_adam_matches_the_update_rule() {
    for wd in [0.0, 0.1] {
        let m = model(ModelConfig::Nade(NadeConfig { dim: 2, hidden: 1 }), 0);
        let cfg = AdamConfig { beta1: 0.9, beta2: 0.99, eps: 1e-8, weight_decay: wd };
        let mut opt = Adam::new(&m.params, cfg).unwrap();
        let var = m.params.get("b").unwrap().clone();
        let w_before = vec1(m.params.get("W").unwrap().as_tensor());
        var.set(&Tensor::new(&[1.0f32, -2.0], &Device::Cpu).unwrap()).unwrap();
        let a = Tensor::new(&[3.0f32, 0.5], &Device::Cpu).unwrap();
        let (mut p, mut mo, mut v) = ([1.0f64, -2.0], [0.0f64; 2], [0.0f64; 2]);
        let lr = 0.05;
        for t in 1..=3 {
            let loss = (var.as_tensor().sqr().unwrap() * &a).unwrap().sum_all().unwrap();
            let grads = loss.backward().unwrap();
            opt.step(&grads, lr, 0.5).unwrap(); // scale 0.5: as if clipped
            for i in 0..2 {
                let g = 0.5 * 2.0 * [3.0, 0.5][i] * p[i];
                mo[i] = 0.9 * mo[i] + 0.1 * g;
                v[i] = 0.99 * v[i] + 0.01 * g * g;
                let mh = mo[i] / (1.0 - 0.9f64.powi(t));
                let vh = v[i] / (1.0 - 0.99f64.powi(t));
                p[i] = p[i] * (1.0 - lr * wd) - lr * mh / (vh.sqrt() + 1e-8);
            }
            let got = vec1(var.as_tensor());
            for i in 0..2 {
                assert!(
                    (got[i] as f64 - p[i]).abs() < 1e-5,
                    "wd {wd} step {t} p[{i}]: {} vs {}",
                    got[i],
                    p[i]
                );
            }
        }
        assert_eq!(opt.step, 3);
        // Parameters without gradients (W here: the loss depends on b only) are untouched,
        // even with weight decay on.
        assert_eq!(vec1(m.params.get("W").unwrap().as_tensor()), w_before);
    }
}

/// The same check through the fused dense layers (Linear + ReLU, then Linear),
/// the critic shape of WGAN-GP: with `with_create_graph` their backward passes
/// are differentiable, and d|grad_x f|^2 / dW matches finite differences.
#[test]
fn gradient_penalty_through_fused_linear_layers() {
    use deepgen::nn::{with_create_graph, Act, Linear, Params};
    deepgen::enable_second_order();
    let dev = Device::Cpu;
    let mut p = Params::new();
    let mut r = rng::rng(3);
    let l1 = Linear::new(&mut p, "l1", 3, 5, &mut r, &dev).unwrap();
    let l2 = Linear::new(&mut p, "l2", 5, 1, &mut r, &dev).unwrap();
    let x = rng::randn(&mut r, &[4, 3], &dev).unwrap();
    let penalty = || -> Tensor {
        let xv = Var::from_tensor(&x).unwrap();
        let f = l2
            .forward(&l1.forward_act(xv.as_tensor(), Act::Relu).unwrap())
            .unwrap()
            .sum_all()
            .unwrap();
        let gx = f.backward().unwrap().get(xv.as_tensor()).unwrap().clone();
        gx.sqr().unwrap().sum_all().unwrap()
    };
    let w1 = p.get("l1.weight").unwrap().clone();
    let g = with_create_graph(|| vec1(penalty().backward().unwrap().get(w1.as_tensor()).unwrap()));
    assert!(g.iter().any(|v| v.abs() > 1e-4), "second-order gradient through Linear is zero");
    let base = vec1(w1.as_tensor());
    for k in 0..base.len() {
        let h = 1e-3f32;
        let eval = |d: f32| {
            let mut v = base.clone();
            v[k] += d;
            w1.set(&Tensor::from_vec(v, (3, 5), &dev).unwrap()).unwrap();
            penalty().to_scalar::<f32>().unwrap() as f64
        };
        let fd = (eval(h) - eval(-h)) / (2.0 * h as f64);
        w1.set(&Tensor::from_vec(base.clone(), (3, 5), &dev).unwrap()).unwrap();
        assert!(
            (fd - g[k] as f64).abs() < 2e-3 * (1.0 + fd.abs()),
            "l1.weight[{k}]: fd {fd} vs {}",
            g[k]
        );
    }
}

/// The fused dense layer's direct backward pass equals the differentiable one.
#[test]
fn fused_linear_backward_paths_agree() {
    use deepgen::nn::{with_create_graph, Act, Linear, Params};
    let dev = Device::Cpu;
    let mut p = Params::new();
    let mut r = rng::rng(4);
    let l = Linear::new(&mut p, "l", 6, 4, &mut r, &dev).unwrap();
    let x = Var::from_tensor(&rng::randn(&mut r, &[5, 6], &dev).unwrap()).unwrap();
    let grads = |create: bool| {
        let f = || {
            let y = l.forward_act(x.as_tensor(), Act::Relu).unwrap();
            // Compare with plain candle ops too.
            let y_ref =
                x.as_tensor().matmul(&l.w).unwrap().broadcast_add(&l.b).unwrap().relu().unwrap();
            assert_eq!(vec1(&y), vec1(&y_ref));
            let g = (y.sqr().unwrap().sum_all().unwrap()).backward().unwrap();
            [l.w.clone(), l.b.clone(), x.as_tensor().clone()].map(|t| vec1(g.get(&t).unwrap()))
        };
        if create {
            with_create_graph(f)
        } else {
            f()
        }
    };
    let (a, b) = (grads(false), grads(true));
    for i in 0..3 {
        for (u, v) in a[i].iter().zip(&b[i]) {
            assert!((u - v).abs() < 1e-5, "{u} vs {v}");
        }
    }
}

#[test]
fn instance_norm_normalises_each_channel_of_each_example_and_its_gradient_is_right() {
    // [B=2, H*W=6, C=3], channels last as the convolutions lay them out.
    let mut r = rng::rng(3);
    let x = rng::randn(&mut r, &[2, 2, 3, 3], &Device::Cpu).unwrap().affine(2.0, 0.7).unwrap();
    let y = deepgen::nn::stack::instance_norm(&x).unwrap();
    let y = y.reshape((2, 6, 3)).unwrap().to_vec3::<f32>().unwrap();
    for ex in &y {
        for c in 0..3 {
            let v: Vec<f64> = ex.iter().map(|row| row[c] as f64).collect();
            let mean = v.iter().sum::<f64>() / 6.0;
            let var = v.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / 6.0;
            assert!(mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-3, "mean {mean}, var {var}");
        }
    }
    // d/dx of a weighted sum of the outputs against central differences.
    let xv = Var::from_tensor(&x).unwrap();
    let w = rng::randn(&mut r, &[2, 2, 3, 3], &Device::Cpu).unwrap();
    let f = || -> f64 {
        let y = deepgen::nn::stack::instance_norm(xv.as_tensor()).unwrap();
        (y * &w).unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap() as f64
    };
    let loss = (deepgen::nn::stack::instance_norm(xv.as_tensor()).unwrap() * &w)
        .unwrap()
        .sum_all()
        .unwrap();
    let grads = loss.backward().unwrap();
    let n =
        assert_grads_match_fd_vars(&[("x".into(), xv.clone())], &f, &grads, 1, 1e-2, 2e-2, "in");
    assert_eq!(n, 36);
}

/// The fused instance norm and its candle-op form (what other devices and `create_graph` run)
/// against an f64 evaluation of the definition, forward and backward: y = (x - mean) /
/// sqrt(var + eps) per (example, channel), dx = inv (g - mean(g) - y mean(g y)). A channel of
/// small spread on a large offset is where f32 means lose digits: the fused op sums in f64 and
/// the candle ops first shift each channel by its first value (measured worst errors: 4e-7 and
/// 1.4e-6 of dx; 3e-4 without the shift).
#[test]
fn instance_norm_matches_the_definition_in_f64() {
    use deepgen::nn::stack::instance_norm;
    let mut r = rng::rng(11);
    let (b, s, c) = (3, 35, 4);
    // Channels of different spreads and offsets, one of them constant (variance 0).
    let mut v = vec1(&rng::randn(&mut r, &[b, s, c], &Device::Cpu).unwrap());
    for (k, x) in v.iter_mut().enumerate() {
        let ch = k % c;
        *x = if ch == 3 { 2.5 } else { *x * [0.01, 1.0, 30.0][ch] + [5.0, -1.0, 100.0][ch] };
    }
    let g = vec1(&rng::randn(&mut r, &[b, s, c], &Device::Cpu).unwrap());
    let (mut y_ref, mut dx_ref) = (vec![0f64; v.len()], vec![0f64; v.len()]);
    for n in 0..b {
        for ch in 0..c {
            let at = |p: usize| (n * s + p) * c + ch;
            let mean = (0..s).map(|p| v[at(p)] as f64).sum::<f64>() / s as f64;
            let var = (0..s).map(|p| (v[at(p)] as f64 - mean).powi(2)).sum::<f64>() / s as f64;
            let inv = 1.0 / (var + 1e-5).sqrt();
            (0..s).for_each(|p| y_ref[at(p)] = (v[at(p)] as f64 - mean) * inv);
            let mg = (0..s).map(|p| g[at(p)] as f64).sum::<f64>() / s as f64;
            let mgy = (0..s).map(|p| g[at(p)] as f64 * y_ref[at(p)]).sum::<f64>() / s as f64;
            (0..s).for_each(|p| dx_ref[at(p)] = inv * (g[at(p)] as f64 - mg - y_ref[at(p)] * mgy));
        }
    }
    let x = Var::from_tensor(&Tensor::from_vec(v, (b, s, 1, c), &Device::Cpu).unwrap()).unwrap();
    let gt = Tensor::from_vec(g, (b, s, 1, c), &Device::Cpu).unwrap();
    let runs = fused_and_portable(|| {
        let y = instance_norm(x.as_tensor()).unwrap();
        let grads = (&y * &gt).unwrap().sum_all().unwrap().backward().unwrap();
        (vec1(&y), vec1(grads.get(x.as_tensor()).unwrap()))
    });
    let tol = 1e-5;
    for (portable, (y, dx)) in [(false, runs.0), (true, runs.1)] {
        // dx is up to 1/sqrt(eps) = 316 times g: compare on that scale.
        for (k, (a, e)) in y.iter().zip(&y_ref).enumerate() {
            assert!(
                (*a as f64 - e).abs() < tol * (1.0 + e.abs()),
                "y[{k}] {a} vs {e} ({portable})"
            );
        }
        for (k, (a, e)) in dx.iter().zip(&dx_ref).enumerate() {
            let bound = tol * (1.0 + e.abs()) * 10.0;
            assert!((*a as f64 - e).abs() < bound, "dx[{k}] {a} vs {e} (portable {portable})");
        }
    }
}

/// The fused affine instance norm (StarGAN's) against its candle-op form, instance norm then a
/// broadcast scale and shift, forward and every gradient; and its weight gradients against the
/// hand formulas dgamma = sum g xhat, dbeta = sum g over examples and positions.
#[test]
fn affine_instance_norm_agrees_with_its_candle_ops_and_the_weight_gradients_by_hand() {
    use deepgen::nn::stack::{instance_norm, instance_norm_affine};
    let mut r = rng::rng(12);
    let (b, s, c) = (3, 20, 5);
    let x = rng::randn(&mut r, &[b, 4, 5, c], &Device::Cpu).unwrap().affine(3.0, -2.0).unwrap();
    let x = Var::from_tensor(&x).unwrap();
    let gamma = Var::from_tensor(&rng::randn(&mut r, &[c], &Device::Cpu).unwrap()).unwrap();
    let beta = Var::from_tensor(&rng::randn(&mut r, &[c], &Device::Cpu).unwrap()).unwrap();
    let g = rng::randn(&mut r, &[b, 4, 5, c], &Device::Cpu).unwrap();
    let (fused, portable) = fused_and_portable(|| {
        let y = instance_norm_affine(x.as_tensor(), gamma.as_tensor(), beta.as_tensor());
        let y = y.unwrap();
        let grads = (&y * &g).unwrap().sum_all().unwrap().backward().unwrap();
        let of = |v: &Var| vec1(grads.get(v.as_tensor()).unwrap());
        (vec1(&y), of(&x), of(&gamma), of(&beta))
    });
    close(&fused.0, &portable.0, 1e-5, "y");
    close(&fused.1, &portable.1, 1e-4, "dx");
    close(&fused.2, &portable.2, 1e-4, "dgamma");
    close(&fused.3, &portable.3, 1e-4, "dbeta");
    // By hand from the plain instance norm's output.
    let xhat = vec1(&instance_norm(x.as_tensor()).unwrap());
    let gv = vec1(&g);
    let (mut dgamma, mut dbeta) = (vec![0f32; c], vec![0f32; c]);
    for k in 0..b * s * c {
        dgamma[k % c] += gv[k] * xhat[k];
        dbeta[k % c] += gv[k];
    }
    close(&fused.2, &dgamma, 1e-4, "dgamma by hand");
    close(&fused.3, &dbeta, 1e-4, "dbeta by hand");
}

/// Progressive GAN's pixel norm: the fused CPU op and its candle-op form agree on the output and
/// on dx, and dx matches central differences of an f64 evaluation of sum(g * y).
#[test]
fn pixel_norm_agrees_with_its_candle_ops_and_finite_differences() {
    use deepgen::nn::stack::pixel_norm;
    let mut r = rng::rng(21);
    let (b, h, w, c) = (2, 3, 4, 6);
    let x = rng::randn(&mut r, &[b, h, w, c], &Device::Cpu).unwrap().affine(2.0, 0.5).unwrap();
    let x = Var::from_tensor(&x).unwrap();
    let g = rng::randn(&mut r, &[b, h, w, c], &Device::Cpu).unwrap();
    let (fused, portable) = fused_and_portable(|| {
        let y = pixel_norm(x.as_tensor()).unwrap();
        assert_eq!(y.dims(), x.as_tensor().dims());
        let grads = (&y * &g).unwrap().sum_all().unwrap().backward().unwrap();
        (vec1(&y), vec1(grads.get(x.as_tensor()).unwrap()))
    });
    close(&fused.0, &portable.0, 1e-5, "y");
    close(&fused.1, &portable.1, 1e-4, "dx");
    // sum(g * y) in f64 for one vector, and its central differences in each coordinate.
    let (xv, gv) = (vec1(x.as_tensor()), vec1(&g));
    let loss = |v: &[f64], gr: &[f32]| {
        let ms = v.iter().map(|a| a * a).sum::<f64>() / c as f64;
        let inv = 1.0 / (ms + 1e-8).sqrt();
        v.iter().zip(gr).map(|(a, &gg)| a * inv * gg as f64).sum::<f64>()
    };
    let mut fd = vec![0f32; xv.len()];
    for (row, (xr, gr)) in xv.chunks(c).zip(gv.chunks(c)).enumerate() {
        for k in 0..c {
            let mut v: Vec<f64> = xr.iter().map(|&a| a as f64).collect();
            let e = 1e-6;
            v[k] += e;
            let up = loss(&v, gr);
            v[k] -= 2.0 * e;
            fd[row * c + k] = ((up - loss(&v, gr)) / (2.0 * e)) as f32;
        }
    }
    close(&fused.1, &fd, 1e-4, "dx against finite differences");
    // y has unit mean square per vector.
    for yr in fused.0.chunks(c) {
        let ms = yr.iter().map(|v| v * v).sum::<f32>() / c as f32;
        assert!((ms - 1.0).abs() < 1e-5, "mean square {ms}");
    }
}

/// `go` with deepgen's CPU kernels, then with the candle-op paths a GPU takes.
fn fused_and_portable<T>(go: impl Fn() -> T) -> (T, T) {
    (go(), deepgen::nn::with_portable_ops(&go))
}

/// Every value of `a` within `tol` (relative, plus absolute 1) of `e`'s.
fn close(a: &[f32], e: &[f32], tol: f32, what: &str) {
    assert_eq!(a.len(), e.len(), "{what}");
    for (k, (u, v)) in a.iter().zip(e).enumerate() {
        assert!((u - v).abs() < tol * (1.0 + v.abs()), "{what}[{k}]: {u} vs {v}");
    }
}

/// ProGAN's 2x2 average pooling and nearest upsampling as fused ops (`nn/resample.rs`) against
/// their candle-op forms: values, gradients, and the gradient of a gradient (the penalty's
/// graph-building backward) through a squared pooling and upsampling.
#[test]
fn pooling_and_upsampling_agree_with_their_candle_ops_to_second_order() {
    use deepgen::nn::stack::{avg_pool2, upsample2};
    use deepgen::nn::with_create_graph;
    let mut r = rng::rng(23);
    let (b, h, w, c) = (2, 4, 6, 3);
    let x = Var::from_tensor(&rng::randn(&mut r, &[b, h, w, c], &Device::Cpu).unwrap()).unwrap();
    let g = rng::randn(&mut r, &[b, h, w, c], &Device::Cpu).unwrap();
    let v = rng::randn(&mut r, &[b, h, w, c], &Device::Cpu).unwrap();
    let (fused, portable) = fused_and_portable(|| {
        with_create_graph(|| {
            let p = avg_pool2(x.as_tensor()).unwrap();
            assert_eq!(p.dims(), &[b, h / 2, w / 2, c]);
            let y = upsample2(&p.sqr().unwrap()).unwrap();
            assert_eq!(y.dims(), &[b, h, w, c]);
            let grads = (&y * &g).unwrap().sum_all().unwrap().backward().unwrap();
            let dx = grads.get(x.as_tensor()).unwrap().clone();
            let second = (&dx * &v).unwrap().sum_all().unwrap().backward().unwrap();
            (vec1(&y), vec1(&dx), vec1(second.get(x.as_tensor()).unwrap()))
        })
    });
    close(&fused.0, &portable.0, 1e-5, "y");
    close(&fused.1, &portable.1, 1e-5, "dx");
    close(&fused.2, &portable.2, 1e-5, "d(dx . v)/dx");
    // By hand at one input: y = upsample(p^2), p = mean of a 2x2 block, so
    // dL/dx = (sum of g over the block's 4 output pixels) * 2 p / 4.
    let (xv, gv) = (vec1(x.as_tensor()), vec1(&g));
    let at = |i: usize, j: usize, k: usize| (i * w + j) * c + k;
    let p = (xv[at(0, 0, 1)] + xv[at(0, 1, 1)] + xv[at(1, 0, 1)] + xv[at(1, 1, 1)]) / 4.0;
    let gs = gv[at(0, 0, 1)] + gv[at(0, 1, 1)] + gv[at(1, 0, 1)] + gv[at(1, 1, 1)];
    let want = gs * 2.0 * p / 4.0;
    assert!((fused.1[at(1, 1, 1)] - want).abs() < 1e-5 * (1.0 + want.abs()));
}
