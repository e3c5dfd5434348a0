//! The CUDA backend against the CPU (issue 29). Built only with the `cuda` feature and run on a
//! machine with a CUDA device (bench/gpu/run.sh runs this binary there; it has no GPU in CI):
//! - every registered model trains two steps on `cuda` and on the CPU through the `deepgen
//!   train` workflow, and the two agree: the first step's losses, loss parts and gradient norms
//!   to 1e-3 relative, the second's losses to 2e-2, parameters to rounding ([`TOL`]);
//! - a checkpoint written on the GPU resumes on the CPU (and one from the CPU on the GPU), and
//!   continues as an all-CPU run does;
//! - a GPU model samples and scores: the scores agree with the CPU's;
//! - every inference command's library call (embed, eval's whole report, detect, translate,
//!   assemble) runs with the model on the GPU, its features, codes and translations agreeing with
//!   the CPU's to 1e-3 relative;
//! - Adam's, NADE's, the convolutions' (strided, transposed, masked) and PixelRNN's scan's CUDA
//!   kernels agree with their candle-op forms on the same GPU, and with the CPU.
//!
//! Every model is tried even when one fails, and each failure is reported: a GPU machine's time
//! is short. Without a CUDA device every test fails, saying so.
#![cfg(feature = "cuda")]

mod agreement;

use agreement::{assert_agree, each, resume, tolerance, train, Tolerance};
use candle_core::{DType, Device, Tensor};
use deepgen::models::models;
use deepgen::run;

/// The GPU's float sums run in other orders (cuBLAS, candle's reductions) than the CPU's, and its
/// transcendental functions round differently: ten times the CPU-vs-portable metric tolerance.
const TOL: Tolerance = Tolerance { metric: 1e-3, later: 2e-2, param_mean: 0.02, param_max: 3.0 };

/// The ill-conditioned translation networks (tests/portable.rs, `TOL_IN`), ten times looser too.
const TOL_IN: Tolerance = Tolerance { metric: 1e-2, later: 5e-2, param_mean: 0.5, param_max: 3.0 };

fn gpu() -> Device {
    run::device(Some("cuda")).unwrap_or_else(|e| panic!("this test needs a CUDA device: {e}"))
}

/// `run` three ways: deepgen's CUDA kernels on `dev`, candle's ops on `dev` (the portable path),
/// and the CPU; each output (named by `names`) must agree value by value to `tol` relative.
fn kernels_agree(dev: &Device, names: &[&str], tol: f32, run: impl Fn(&Device) -> Vec<Vec<f32>>) {
    let kernels = run(dev);
    let ops = deepgen::nn::with_portable_ops(|| run(dev));
    let cpu = run(&Device::Cpu);
    assert_eq!(kernels.len(), names.len());
    for (((k, o), c), name) in kernels.iter().zip(&ops).zip(&cpu).zip(names) {
        assert_eq!((k.len(), o.len()), (c.len(), c.len()), "{name}: lengths");
        for (i, ((k, o), c)) in k.iter().zip(o).zip(c).enumerate() {
            let ok = |a: f32, b: f32| (a - b).abs() <= tol * (1.0 + a.abs().max(b.abs()));
            assert!(ok(*k, *o), "{name} [{i}]: kernels {k} vs candle ops {o}");
            assert!(ok(*k, *c), "{name} [{i}]: kernels {k} vs cpu {c}");
        }
    }
}

#[test]
fn every_model_trains_alike_on_the_gpu_and_the_cpu() {
    deepgen::enable_second_order();
    gpu();
    let tmp = tempfile::tempdir().unwrap();
    let names: Vec<&str> = models().map(|m| m.name).collect();
    each(&names, |name| {
        let cpu = train(name, &tmp.path().join("cpu"), 2, None, false);
        let cuda = train(name, &tmp.path().join("cuda"), 2, Some("cuda"), false);
        assert_agree(name, "cpu vs cuda", &cpu, &cuda, tolerance(name, TOL, TOL_IN));
    });
}

#[test]
fn a_checkpoint_resumes_across_devices() {
    deepgen::enable_second_order();
    gpu();
    let tmp = tempfile::tempdir().unwrap();
    let names = ["nade", "pixelcnn", "vae", "dcgan", "wgan-gp", "cyclegan"];
    each(&names, |name| {
        let whole = train(name, &tmp.path().join("whole"), 2, None, false);
        train(name, &tmp.path().join("g2c"), 1, Some("cuda"), false);
        let g2c = resume(&tmp.path().join("g2c").join(name), 2, Some("cpu"), false);
        let tol = tolerance(name, TOL, TOL_IN);
        assert_agree(name, "cpu, vs cuda then cpu", &whole, &g2c, tol);
        train(name, &tmp.path().join("c2g"), 1, None, false);
        let c2g = resume(&tmp.path().join("c2g").join(name), 2, Some("cuda"), false);
        assert_agree(name, "cpu, vs cpu then cuda", &whole, &c2g, tol);
    });
}

#[test]
fn a_gpu_model_samples_and_scores_as_on_the_cpu() {
    deepgen::enable_second_order();
    let dev = gpu();
    let tmp = tempfile::tempdir().unwrap();
    let names = ["bernoulli", "nade", "made", "pixelcnn", "gated-pixelcnn", "row-lstm", "vae"];
    each(&names, |name| {
        let dir = train(name, tmp.path(), 1, None, false).dir;
        let (_, cfg, cpu) = run::open(&dir).unwrap();
        let (_, _, cuda) = run::open_on(&dir, &dev).unwrap();
        assert!(cuda.device().is_cuda());
        let (data, log_det) = run::load_transformed("digits:test", &cfg, false).unwrap();
        let score = |m| {
            let mut r = deepgen::rng::derived(cfg.seed, "test-nll", 0);
            run::score(m, &data, log_det, 256, &mut r).unwrap()
        };
        let (a, b) = (score(&cpu), score(&cuda));
        let (x, y) = (a.nats, b.nats);
        assert!((x - y).abs() <= 1e-3 * (1.0 + x.abs()), "{name}: NLL {x} on cpu, {y} on cuda");
        let mut r = deepgen::rng::rng(1);
        let s = deepgen::run::infer::draw(&cuda, 8, None, false, &mut r).unwrap();
        assert_eq!(s.dims(), [8, cfg.model.dim()]);
        let v = s.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(v.iter().all(|v| v.is_finite()), "{name}: samples not finite");
    });
}

#[test]
fn every_model_infers_on_the_gpu_as_on_the_cpu() {
    deepgen::enable_second_order();
    let dev = gpu();
    let tmp = tempfile::tempdir().unwrap();
    let judge = train("classifier", tmp.path(), 1, None, false).dir;
    let names: Vec<&str> = models().map(|m| m.name).collect();
    each(&names, |name| {
        agreement::inference_agrees(name, &tmp.path().join("i"), &judge, &dev, false, 1e-3);
    });
}

#[test]
fn adams_cuda_kernels_agree_with_its_candle_ops_and_the_cpu() {
    let dev = gpu();
    // Parameters from one value to more than one launch block's worth.
    let shapes: [&[usize]; 4] = [&[1], &[7, 3], &[300, 513], &[1 << 17]];
    kernels_agree(&dev, &["w0", "w1", "w2", "w3"], 1e-5, |dev| {
        let mut p = deepgen::nn::Params::new();
        let mut r = deepgen::rng::rng(5);
        for (i, s) in shapes.iter().enumerate() {
            p.add(&format!("w{i}"), deepgen::rng::randn(&mut r, s, dev).unwrap()).unwrap();
        }
        let mut adam =
            deepgen::optim::Adam::new(&p, deepgen::optim::AdamConfig::default()).unwrap();
        for step in 0..3 {
            let loss = p
                .vars()
                .map(|(_, v)| {
                    let t = v.as_tensor();
                    (t.sqr().unwrap() * (step + 1) as f64).unwrap().sum_all().unwrap()
                })
                .reduce(|a, b| (a + b).unwrap())
                .unwrap();
            let grads = loss.backward().unwrap();
            adam.step(&grads, 1e-2, 0.5).unwrap();
        }
        p.vars()
            .map(|(_, v)| v.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap())
            .collect()
    });
}

#[test]
fn nades_cuda_kernels_agree_with_its_candle_ops_and_the_cpu() {
    use deepgen::models::{Model, ModelConfig, Nade, NadeConfig};
    let dev = gpu();
    // The real sizes, and a batch whose split leaves a partial group of examples.
    let (b, d, h) = (33, 784, 500);
    let cfg = ModelConfig::Nade(NadeConfig { dim: d, hidden: h });
    let mut r = deepgen::rng::rng(2);
    let xv = deepgen::rng::bernoulli(&mut r, &vec![0.3; b * d]);
    let gv = deepgen::rng::randn(&mut r, &[b, d], &Device::Cpu).unwrap();
    // Logits, then the gradients of sum(logits * g) for W, c, V, b and a differentiable x.
    kernels_agree(&dev, &["logits", "dW", "dc", "dV", "db", "dx"], 1e-3, |dev| {
        let m = Model::new(&cfg, 3, dev).unwrap();
        let x = candle_core::Var::from_vec(xv.clone(), (b, d), dev).unwrap();
        let g = gv.to_device(dev).unwrap();
        let l = m.get::<Nade>().unwrap().logits(x.as_tensor()).unwrap();
        let grads = (&l * &g).unwrap().sum_all().unwrap().backward().unwrap();
        let mut out = vec![l];
        for n in ["W", "c", "V", "b"] {
            out.push(grads.get(m.params.get(n).unwrap().as_tensor()).unwrap().clone());
        }
        out.push(grads.get(x.as_tensor()).unwrap().clone());
        out.iter().map(|t| t.flatten_all().unwrap().to_vec1::<f32>().unwrap()).collect()
    });
}

#[test]
fn the_convolution_kernels_agree_with_candles_convolutions_and_the_cpu() {
    use deepgen::nn::conv::{conv_down, conv_up, Strided};
    let dev = gpu();
    let g = Strided { k: 4, stride: 2, pad: 1 };
    let (b, h, c, n) = (8, 14, 16, 32);
    let mut r = deepgen::rng::rng(3);
    let cpu = Device::Cpu;
    let x = deepgen::rng::randn(&mut r, &[b, h, h, c], &cpu).unwrap();
    let wd = deepgen::rng::randn(&mut r, &[g.k * g.k * c, n], &cpu).unwrap();
    let wu = deepgen::rng::randn(&mut r, &[n, g.k * g.k * c], &cpu).unwrap();
    let zeros = |n: usize| Tensor::zeros(n, DType::F32, &cpu).unwrap();
    let (bd, bu) = (zeros(n), zeros(c));
    // down then up (an autoencoder's pair), and the gradients of every input and weight.
    kernels_agree(&dev, &["y", "dx", "dWd", "dWu"], 1e-3, |dev| {
        let on = |t: &Tensor| candle_core::Var::from_tensor(&t.to_device(dev).unwrap()).unwrap();
        let (x, wd, wu, bd, bu) = (on(&x), on(&wd), on(&wu), on(&bd), on(&bu));
        let y = conv_down(g, x.as_tensor(), wd.as_tensor(), bd.as_tensor()).unwrap();
        let z = conv_up(g, &y, wu.as_tensor(), bu.as_tensor()).unwrap();
        let grads = z.sqr().unwrap().sum_all().unwrap().backward().unwrap();
        let mut out = vec![z];
        for v in [&x, &wd, &wu] {
            out.push(grads.get(v.as_tensor()).unwrap().clone());
        }
        out.iter().map(|t| t.flatten_all().unwrap().to_vec1::<f32>().unwrap()).collect()
    });
}

#[test]
fn the_lstm_scan_kernels_agree_with_the_literal_scans_and_the_cpu() {
    use deepgen::models::{Cell, PixelOutput, PixelRnn, PixelRnnConfig};
    use deepgen::nn::Params;
    let dev = gpu();
    // The model's sizes (28x28, 32 units, two layers), both cells; the outputs, then the
    // gradient of every parameter of sum(outputs * g).
    for cell in [Cell::Row, Cell::Diagonal] {
        let output = PixelOutput::Bernoulli;
        let cfg = PixelRnnConfig { cell, height: 28, width: 28, channels: 32, layers: 2, output };
        let b = 8;
        let mut r = deepgen::rng::rng(6);
        let xv = deepgen::rng::bernoulli(&mut r, &vec![0.3; b * 28 * 28]);
        let names: Vec<String> = {
            let mut p = Params::new();
            PixelRnn::new(&mut p, &cfg, &mut deepgen::rng::rng(1), &Device::Cpu).unwrap();
            std::iter::once("outputs".to_string())
                .chain(p.vars().map(|(n, _)| n.to_string()))
                .collect()
        };
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        kernels_agree(&dev, &names, 1e-3, |dev| {
            let mut p = Params::new();
            let net = PixelRnn::new(&mut p, &cfg, &mut deepgen::rng::rng(1), dev).unwrap();
            let x = Tensor::from_vec(xv.clone(), (b, 28, 28, 1), dev).unwrap();
            let y = net.forward_image(&x).unwrap();
            let g = deepgen::rng::randn(&mut deepgen::rng::rng(2), y.dims(), &Device::Cpu).unwrap();
            let grads =
                (&y * &g.to_device(dev).unwrap()).unwrap().sum_all().unwrap().backward().unwrap();
            let mut out = vec![y];
            for (_, v) in p.vars() {
                out.push(grads.get(v.as_tensor()).unwrap().clone());
            }
            out.iter().map(|t| t.flatten_all().unwrap().to_vec1::<f32>().unwrap()).collect()
        });
    }
}

#[test]
fn the_masked_convolution_kernels_agree_with_the_dense_form_and_the_cpu() {
    use deepgen::nn::conv::{raster_taps, MaskedConv};
    use deepgen::nn::{Act, Params};
    let dev = gpu();
    // PixelCNN's first two layers (7x7 mask A from one channel, 3x3 mask B) on a batch of
    // digits' size; the output, then the gradients of the input and every weight.
    let (b, h, c) = (16, 28, 32);
    let mut r = deepgen::rng::rng(4);
    let x = deepgen::rng::randn(&mut r, &[b, h, h, 1], &Device::Cpu).unwrap();
    let names = ["y", "dx", "a.bias", "a.weight", "b.bias", "b.weight"];
    kernels_agree(&dev, &names, 1e-3, |dev| {
        let mut p = Params::new();
        let mut r = deepgen::rng::rng(5);
        let a = MaskedConv::new(&mut p, "a", raster_taps(7, false), 1, c, &mut r, dev).unwrap();
        let bc = MaskedConv::new(&mut p, "b", raster_taps(3, true), c, c, &mut r, dev).unwrap();
        let xv = candle_core::Var::from_tensor(&x.to_device(dev).unwrap()).unwrap();
        let y = bc.forward(&a.forward(xv.as_tensor(), Act::Relu).unwrap(), Act::Identity).unwrap();
        let grads = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
        let mut out = vec![y, grads.get(xv.as_tensor()).unwrap().clone()];
        for (_, v) in p.vars() {
            out.push(grads.get(v.as_tensor()).unwrap().clone());
        }
        out.iter().map(|t| t.flatten_all().unwrap().to_vec1::<f32>().unwrap()).collect()
    });
}
