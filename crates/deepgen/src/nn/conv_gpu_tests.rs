//! The GPU's convolution form (`conv_gpu.rs`) against candle's convolutions, on the CPU.

use candle_core::{Device, Var};

use super::conv_gpu::{down, masked_unbiased, up};
use super::strided::Strided;
use crate::nn::conv::{conv_down, conv_up, gather, raster_taps, Tap};
use candle_core::Tensor;

/// The output, the first-order gradients of sum(y^2) for x and W, and the second-order
/// gradient for W of the penalty |dx|^2 (a gradient penalty's shape).
fn grads(y: &dyn Fn(&Tensor, &Tensor) -> Tensor, x: &Tensor, w: &Tensor) -> Vec<Vec<f32>> {
    let (x, w) = (Var::from_tensor(x).unwrap(), Var::from_tensor(w).unwrap());
    let out = y(x.as_tensor(), w.as_tensor());
    let g = out.sqr().unwrap().sum_all().unwrap().backward().unwrap();
    let (dx, dw) = (g.get(x.as_tensor()).unwrap(), g.get(w.as_tensor()).unwrap());
    let g2 = dx.sqr().unwrap().sum_all().unwrap().backward().unwrap();
    let dw2 = g2.get(w.as_tensor()).unwrap();
    [&out, dx, dw, dw2].iter().map(|t| t.flatten_all().unwrap().to_vec1().unwrap()).collect()
}

fn close(what: &str, a: &[Vec<f32>], b: &[Vec<f32>]) {
    for (part, (a, b)) in ["y", "dx", "dW", "d|dx|^2/dW"].iter().zip(a.iter().zip(b)) {
        assert_eq!(a.len(), b.len(), "{what} {part}");
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            let ok = (x - y).abs() <= 1e-4 * (1.0 + x.abs().max(y.abs()));
            assert!(ok, "{what} {part} [{i}]: im2col form {x}, candle {y}");
        }
    }
}

#[test]
fn the_im2col_forms_differentiate_as_candles_convolutions_to_second_order() {
    crate::enable_second_order();
    let cpu = Device::Cpu;
    for (b, h, c, n, k, s, p) in
        [(2, 8, 3, 4, 4, 2, 1), (2, 7, 2, 3, 4, 2, 1), (1, 6, 2, 3, 3, 1, 1)]
    {
        let g = Strided { k, stride: s, pad: p };
        let hl = g.lo(h);
        let mut r = crate::rng::rng(1);
        let x = crate::rng::randn(&mut r, &[b, h, h, c], &cpu).unwrap();
        let wd = crate::rng::randn(&mut r, &[k * k * c, n], &cpu).unwrap();
        let bd = crate::rng::randn(&mut r, &[n], &cpu).unwrap();
        let xl = crate::rng::randn(&mut r, &[b, hl, hl, n], &cpu).unwrap();
        let wu = crate::rng::randn(&mut r, &[n, k * k * c], &cpu).unwrap();
        let bu = crate::rng::randn(&mut r, &[c], &cpu).unwrap();
        let what = format!("{b}x{h}x{h}x{c} k {k} s {s} p {p}");
        let form = grads(&|x, w| down(g, x, w, &bd).unwrap(), &x, &wd);
        let candle = crate::nn::with_portable_ops(|| {
            grads(&|x, w| conv_down(g, x, w, &bd).unwrap(), &x, &wd)
        });
        close(&format!("{what} down"), &form, &candle);
        let form = grads(&|x, w| up(g, x, w, &bu).unwrap(), &xl, &wu);
        let candle = crate::nn::with_portable_ops(|| {
            grads(&|x, w| conv_up(g, x, w, &bu).unwrap(), &xl, &wu)
        });
        close(&format!("{what} up"), &form, &candle);
    }
}

#[test]
fn the_tap_gather_form_differentiates_as_the_gather_to_second_order() {
    crate::enable_second_order();
    let cpu = Device::Cpu;
    // PixelCNN's 7x7 mask A and 3x3 mask B, a Row LSTM's input taps, a gated PixelCNN's
    // vertical stack (above the row, reaching right), on maps smaller than the 7x7 window.
    let row: Vec<Tap> = vec![(0, -1), (0, 0)];
    let vertical: Vec<Tap> = (-2..0).flat_map(|dy| (-2..=2).map(move |dx| (dy, dx))).collect();
    for (taps, b, h, w, c, n) in [
        (raster_taps(7, false), 2, 5, 6, 1, 3),
        (raster_taps(3, true), 2, 4, 4, 3, 2),
        (row, 1, 3, 5, 2, 4),
        (vertical, 2, 3, 4, 2, 3),
    ] {
        let mut r = crate::rng::rng(2);
        let x = crate::rng::randn(&mut r, &[b, h, w, c], &cpu).unwrap();
        let wt = crate::rng::randn(&mut r, &[taps.len() * c, n], &cpu).unwrap();
        let what = format!("{} taps, {b}x{h}x{w}x{c}", taps.len());
        let form = grads(&|x, w| masked_unbiased(&taps, x, w).unwrap(), &x, &wt);
        // The gather's candle-op form (shifted copies), differentiable to any order.
        let ops = crate::nn::with_portable_ops(|| {
            let y = |x: &Tensor, k: &Tensor| {
                gather(x, &taps).unwrap().matmul(k).unwrap().reshape((b, h, w, n)).unwrap()
            };
            grads(&y, &x, &wt)
        });
        close(&format!("{what} gather"), &form, &ops);
    }
}
