//! The math a GPU runs, checked on the CPU. On a CUDA device every fused CPU kernel of deepgen
//! (the convolutions, NADE's recurrence, the PixelRNN scan, Adam, the activations and losses)
//! gives way to its candle-op path; `with_portable_ops` takes those paths on the CPU too. Every
//! registered model trains two steps both ways through the `deepgen train` workflow, and the two
//! must agree: losses, loss parts and gradient norms of the first step to 1e-4 relative, the
//! losses of the second to 1e-2, parameters to rounding (Tolerance). A run written by one path
//! also resumes under the other.

mod agreement;

use agreement::{assert_agree, each, resume, tolerance, train, Tolerance};
use deepgen::models::models;

/// The two paths differ only in the order of float sums (different loops and GEMM blockings).
const TOL: Tolerance = Tolerance { metric: 1e-4, later: 1e-2, param_mean: 0.01, param_max: 3.0 };

/// The translation networks (N(0, 0.02) weights under instance norm, six residual blocks) are
/// ill-conditioned: each normalisation divides by a small pre-norm scale, so the first layers'
/// gradients are ~1e4 times the last's (read from Adam's second moments), and rounding
/// differences grow with them: the first step's gradient norms differ by ~1.4e-4, and after
/// one Adam step the second step's gradients by a quarter, while the losses still agree to
/// 2e-3. Their own, looser bound (`agreement::tolerance`).
const TOL_IN: Tolerance = Tolerance { metric: 1e-3, later: 2e-2, param_mean: 0.5, param_max: 3.0 };

#[test]
fn every_model_trains_alike_with_the_cpu_kernels_and_the_portable_ops() {
    deepgen::enable_second_order();
    let tmp = tempfile::tempdir().unwrap();
    let names: Vec<&str> = models().map(|m| m.name).collect();
    each(&names, |name| {
        let fused = train(name, &tmp.path().join("fused"), 2, None, false);
        let portable = train(name, &tmp.path().join("portable"), 2, None, true);
        let tol = tolerance(name, TOL, TOL_IN);
        assert_agree(name, "cpu kernels vs portable ops", &fused, &portable, tol);
    });
}

#[test]
fn a_run_written_by_one_path_resumes_under_the_other() {
    deepgen::enable_second_order();
    let tmp = tempfile::tempdir().unwrap();
    for name in ["nade", "pixelcnn", "dcgan"] {
        let whole = train(name, &tmp.path().join("whole"), 2, None, false);
        train(name, &tmp.path().join("split"), 1, None, false);
        let split = resume(&tmp.path().join("split").join(name), 2, None, true);
        assert_agree(name, "2 steps vs 1 step then 1 portable", &whole, &split, TOL);
    }
}

#[test]
fn the_inference_commands_run_on_the_portable_ops() {
    deepgen::enable_second_order();
    let tmp = tempfile::tempdir().unwrap();
    let judge = train("classifier", tmp.path(), 1, None, false).dir;
    // One of each kind of inference: codes, features and AR completion, a GAN's latent space,
    // translation by domain pair and by attributes, assembly, captions.
    let names = ["vae", "nade", "dcgan", "cyclegan", "stargan", "puzzle-gan", "text-gan"];
    each(&names, |name| {
        let cpu = candle_core::Device::Cpu;
        agreement::inference_agrees(name, &tmp.path().join("p"), &judge, &cpu, true, 1e-4);
    });
}
