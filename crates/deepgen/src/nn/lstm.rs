//! The spatial LSTMs of PixelRNN as one fused scan per layer and direction.
//!
//! A PixelRNN layer is an LSTM whose cells sit on the pixel grid: each cell
//! reads its input-to-state gates (computed for all pixels beforehand by a
//! convolution), the hidden states of a few neighbour cells through the
//! state-to-state kernel, and the cell state of one neighbour. The cells are
//! computed in *waves*, every neighbour in an earlier wave:
//!
//! * Row LSTM: the waves are the rows; a cell reads h at (r-1, c-1),
//!   (r-1, c), (r-1, c+1) (the 1x3 state-to-state kernel) and c at (r-1, c).
//! * Diagonal LSTM: the waves are the anti-diagonals r + c = const, which
//!   are exactly the columns of the paper's skewed map (row r shifted right
//!   by r); a cell reads h at (r-1, c) and (r, c-1) (the 2x1 kernel over the
//!   previous skewed column) and c at (r, c-1) (the previous column's cell).
//!   Scanning the anti-diagonals in image coordinates *is* skew, column
//!   LSTM, unskew, without moving the data; `models::pixelrnn` keeps the
//!   literal skew/unskew formulation in candle ops as the reference the
//!   tests compare this kernel with.
//!
//! candle has no recurrent op, and a scan written as candle ops slices the
//! gate tensor once per wave: candle's backward of each slice is a zero-
//! padded full-size gradient, so the backward pass is quadratic in the
//! number of waves (measured: 6.2 s per Row LSTM step at B=128 on MNIST).
//! Here the forward pass is one loop over waves with one GEMM per wave
//! (neighbour states gathered into rows), and the backward pass is
//! backpropagation through the waves in reverse (it recomputes the forward
//! activations first, which costs one forward pass and no memory between
//! the passes). Batch chunks run on separate threads. First-order only.
//!
//! On a CUDA device the same scan runs as deepgen's kernels (`nn::cuda::LSTM`, one launch per
//! wave, in `lstm_gpu.rs`), with the state weights' gradient as one product ([`state_grad`]).

use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::slices::f32s;

use crate::error::Result;
use crate::nn::gemm;
use crate::nn::ops::fast_exp;

#[cfg(feature = "cuda")]
#[path = "lstm_gpu.rs"]
mod gpu;

/// The order in which the cells of the grid are computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scan {
    /// Row LSTM: waves are rows.
    Rows,
    /// Diagonal LSTM: waves are anti-diagonals.
    Diagonals,
}

impl Scan {
    /// Neighbours whose hidden states feed the state-to-state kernel, in the
    /// order of its weight rows (`[taps * C, 4C]`).
    pub fn h_taps(self) -> &'static [(i32, i32)] {
        match self {
            Scan::Rows => &[(-1, -1), (-1, 0), (-1, 1)],
            Scan::Diagonals => &[(-1, 0), (0, -1)],
        }
    }

    /// The neighbour whose cell state the forget gate keeps.
    pub fn c_tap(self) -> (i32, i32) {
        match self {
            Scan::Rows => (-1, 0),
            Scan::Diagonals => (0, -1),
        }
    }

    pub(crate) fn waves(self, h: usize, w: usize) -> Vec<Vec<(usize, usize)>> {
        match self {
            Scan::Rows => (0..h).map(|r| (0..w).map(|c| (r, c)).collect()).collect(),
            Scan::Diagonals => (0..h + w - 1)
                .map(|d| (0..h).filter(|&r| r <= d && d - r < w).map(|r| (r, d - r)).collect())
                .collect(),
        }
    }
}

#[inline]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + fast_exp(-x))
}

#[inline]
fn tanh(x: f32) -> f32 {
    1.0 - 2.0 / (fast_exp(2.0 * x) + 1.0)
}

struct GridLstm {
    scan: Scan,
}

/// Geometry of one call.
#[derive(Clone, Copy)]
struct Dims {
    h: usize,
    w: usize,
    c: usize,
}

impl Dims {
    fn neighbour(&self, (r, c): (usize, usize), (dy, dx): (i32, i32)) -> Option<usize> {
        let (y, x) = (r as i32 + dy, c as i32 + dx);
        (y >= 0 && x >= 0 && (y as usize) < self.h && (x as usize) < self.w)
            .then(|| y as usize * self.w + x as usize)
    }
}

/// Activations of a chunk of images: gates after their nonlinearities
/// `[n, H*W, 4C]` (i, f, o, g), cell states and hidden states `[n, H*W, C]`.
struct Acts {
    gates: Vec<f32>,
    cell: Vec<f32>,
    hid: Vec<f32>,
}

impl GridLstm {
    /// Forward scan over `n` images (gin `[n, H*W, 4C]`).
    fn forward(&self, gin: &[f32], wss: &[f32], n: usize, d: Dims) -> Acts {
        let (hw, c) = (d.h * d.w, d.c);
        let taps = self.scan.h_taps();
        let tc = taps.len() * c;
        let mut a = Acts {
            gates: vec![0f32; n * hw * 4 * c],
            cell: vec![0f32; n * hw * c],
            hid: vec![0f32; n * hw * c],
        };
        for wave in self.scan.waves(d.h, d.w) {
            let m = n * wave.len();
            let mut s = vec![0f32; m * tc];
            let mut g = vec![0f32; m * 4 * c];
            for b in 0..n {
                for (k, &cell) in wave.iter().enumerate() {
                    let row = b * wave.len() + k;
                    let p = cell.0 * d.w + cell.1;
                    g[row * 4 * c..(row + 1) * 4 * c]
                        .copy_from_slice(&gin[(b * hw + p) * 4 * c..(b * hw + p + 1) * 4 * c]);
                    for (t, &tap) in taps.iter().enumerate() {
                        if let Some(q) = d.neighbour(cell, tap) {
                            s[row * tc + t * c..row * tc + (t + 1) * c]
                                .copy_from_slice(&a.hid[(b * hw + q) * c..(b * hw + q + 1) * c]);
                        }
                    }
                }
            }
            gemm(m, 4 * c, tc, &mut g, &s, false, wss, false, true, false);
            for b in 0..n {
                for (k, &cell) in wave.iter().enumerate() {
                    let row = b * wave.len() + k;
                    let p = b * hw + cell.0 * d.w + cell.1;
                    let prev = d.neighbour(cell, self.scan.c_tap()).map(|q| b * hw + q);
                    let gr = &mut g[row * 4 * c..(row + 1) * 4 * c];
                    for j in 0..c {
                        let (i, f, o, gg) = (
                            sigmoid(gr[j]),
                            sigmoid(gr[c + j]),
                            sigmoid(gr[2 * c + j]),
                            tanh(gr[3 * c + j]),
                        );
                        let cp = prev.map(|q| a.cell[q * c + j]).unwrap_or(0.0);
                        let cv = f * cp + i * gg;
                        a.cell[p * c + j] = cv;
                        a.hid[p * c + j] = o * tanh(cv);
                        gr[j] = i;
                        gr[c + j] = f;
                        gr[2 * c + j] = o;
                        gr[3 * c + j] = gg;
                    }
                    a.gates[p * 4 * c..(p + 1) * 4 * c].copy_from_slice(gr);
                }
            }
        }
        a
    }

    /// Backpropagation through the waves for `n` images; returns d gin and
    /// adds d Wss into `dw`.
    fn backward(
        &self,
        gin: &[f32],
        wss: &[f32],
        grad: &[f32],
        n: usize,
        d: Dims,
        dw: &mut [f32],
    ) -> Vec<f32> {
        let a = self.forward(gin, wss, n, d);
        let (hw, c) = (d.h * d.w, d.c);
        let taps = self.scan.h_taps();
        let tc = taps.len() * c;
        let mut dh = grad.to_vec();
        let mut dc = vec![0f32; n * hw * c];
        let mut dgin = vec![0f32; n * hw * 4 * c];
        for wave in self.scan.waves(d.h, d.w).iter().rev() {
            let m = n * wave.len();
            let mut dg = vec![0f32; m * 4 * c];
            let mut s = vec![0f32; m * tc];
            for b in 0..n {
                for (k, &cell) in wave.iter().enumerate() {
                    let row = b * wave.len() + k;
                    let p = b * hw + cell.0 * d.w + cell.1;
                    let prev = d.neighbour(cell, self.scan.c_tap()).map(|q| b * hw + q);
                    let gt = &a.gates[p * 4 * c..(p + 1) * 4 * c];
                    let dr = &mut dg[row * 4 * c..(row + 1) * 4 * c];
                    for j in 0..c {
                        let (i, f, o, gg) = (gt[j], gt[c + j], gt[2 * c + j], gt[3 * c + j]);
                        let tcv = tanh(a.cell[p * c + j]);
                        let dhv = dh[p * c + j];
                        let dct = dc[p * c + j] + dhv * o * (1.0 - tcv * tcv);
                        let cp = prev.map(|q| a.cell[q * c + j]).unwrap_or(0.0);
                        dr[j] = dct * gg * i * (1.0 - i);
                        dr[c + j] = dct * cp * f * (1.0 - f);
                        dr[2 * c + j] = dhv * tcv * o * (1.0 - o);
                        dr[3 * c + j] = dct * i * (1.0 - gg * gg);
                        if let Some(q) = prev {
                            dc[q * c + j] += dct * f;
                        }
                    }
                    dgin[p * 4 * c..(p + 1) * 4 * c].copy_from_slice(dr);
                    for (t, &tap) in taps.iter().enumerate() {
                        if let Some(q) = d.neighbour(cell, tap) {
                            s[row * tc + t * c..row * tc + (t + 1) * c]
                                .copy_from_slice(&a.hid[(b * hw + q) * c..(b * hw + q + 1) * c]);
                        }
                    }
                }
            }
            // dWss += S^T dG; dS = dG Wss^T, scattered back to the neighbours' hidden states.
            gemm(tc, 4 * c, m, dw, &s, true, &dg, false, true, false);
            let mut ds = vec![0f32; m * tc];
            gemm(m, tc, 4 * c, &mut ds, &dg, false, wss, true, false, false);
            for b in 0..n {
                for (k, &cell) in wave.iter().enumerate() {
                    let row = b * wave.len() + k;
                    for (t, &tap) in taps.iter().enumerate() {
                        if let Some(q) = d.neighbour(cell, tap) {
                            let dst = &mut dh[(b * hw + q) * c..(b * hw + q + 1) * c];
                            dst.iter_mut()
                                .zip(&ds[row * tc + t * c..row * tc + (t + 1) * c])
                                .for_each(|(x, &v)| *x += v);
                        }
                    }
                }
            }
        }
        dgin
    }
}

/// Images per thread task: the batch split into one chunk per thread.
fn chunk(n: usize) -> usize {
    n.div_ceil(candle_core::utils::get_num_threads().max(1)).max(1)
}

impl CustomOp2 for GridLstm {
    fn name(&self) -> &'static str {
        "deepgen-grid-lstm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (gin, wss) = (f32s(s1, l1, "grid lstm")?, f32s(s2, l2, "grid lstm")?);
        let (b, h, w, c4) = l1.shape().dims4()?;
        let c = c4 / 4;
        let d = Dims { h, w, c };
        if l2.shape().dims2()? != (self.scan.h_taps().len() * c, c4) {
            candle_core::bail!("grid lstm: state weights {:?} do not fit {c} units", l2.shape());
        }
        let per = h * w;
        let k = chunk(b);
        let mut out = vec![0f32; b * per * c];
        out.par_chunks_mut(k * per * c).zip(gin.par_chunks(k * per * c4)).for_each(|(o, g)| {
            let n = g.len() / (per * c4);
            o.copy_from_slice(&self.forward(g, wss, n, d).hid);
        });
        Ok((CpuStorage::F32(out), Shape::from((b, h, w, c))))
    }

    fn bwd(
        &self,
        gin: &Tensor,
        wss: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let (b, h, w, c4) = gin.dims4()?;
        let c = c4 / 4;
        let d = Dims { h, w, c };
        let gv = gin.flatten_all()?.to_vec1::<f32>()?;
        let wv = wss.flatten_all()?.to_vec1::<f32>()?;
        let dv = grad.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let per = h * w;
        let k = chunk(b);
        let parts: Vec<(Vec<f32>, Vec<f32>)> = gv
            .par_chunks(k * per * c4)
            .zip(dv.par_chunks(k * per * c))
            .map(|(g, gr)| {
                let n = g.len() / (per * c4);
                let mut dw = vec![0f32; wv.len()];
                let dg = self.backward(g, &wv, gr, n, d, &mut dw);
                (dg, dw)
            })
            .collect();
        let mut dgin = Vec::with_capacity(gv.len());
        let mut dw = vec![0f32; wv.len()];
        for (g, w) in parts {
            dgin.extend(g);
            dw.iter_mut().zip(w).for_each(|(a, b)| *a += b);
        }
        Ok((
            Some(Tensor::from_vec(dgin, gin.shape(), gin.device())?),
            Some(Tensor::from_vec(dw, wss.shape(), wss.device())?),
        ))
    }
}

/// Runs the LSTM over the grid in `scan` order.
///
/// # Shapes
/// `gin: [B, H, W, 4C]` (input-to-state gate pre-activations, i f o g),
/// `wss: [taps * C, 4C]` (state-to-state weights, rows by [`Scan::h_taps`])
/// -> hidden states `[B, H, W, C]`.
pub fn grid_lstm(gin: &Tensor, wss: &Tensor, scan: Scan) -> Result<Tensor> {
    #[cfg(feature = "cuda")]
    if gin.device().is_cuda() {
        return Ok(gin.contiguous()?.apply_op2(&wss.contiguous()?, gpu::GridLstmCuda { scan })?);
    }
    Ok(gin.contiguous()?.apply_op2(&wss.contiguous()?, GridLstm { scan })?)
}

/// The gradient of [`grid_lstm`]'s state weights, `[taps * C, 4C]`, from its hidden states
/// `hid` `[B, H, W, C]` and the gradient of its gate pre-activations `dgates` `[B, H, W, 4C]`:
/// S^T dG, where row (b, r, c) of S holds the hidden states of the neighbours that cell read
/// (zero outside the map). Candle ops on any device: the second half of the CUDA backward,
/// whose kernels give dG.
pub fn state_grad(hid: &Tensor, dgates: &Tensor, scan: Scan) -> Result<Tensor> {
    Ok(state_grad_ops(hid, dgates, scan)?)
}

fn state_grad_ops(hid: &Tensor, dgates: &Tensor, scan: Scan) -> candle_core::Result<Tensor> {
    let (b, h, w, c) = hid.dims4()?;
    let padded = hid.pad_with_zeros(1, 1, 1)?.pad_with_zeros(2, 1, 1)?;
    let taps = scan.h_taps();
    let s = taps
        .iter()
        .map(|&(dy, dx)| padded.narrow(1, (1 + dy) as usize, h)?.narrow(2, (1 + dx) as usize, w))
        .collect::<candle_core::Result<Vec<_>>>()?;
    let s = Tensor::cat(&s, 3)?.reshape((b * h * w, taps.len() * c))?;
    s.t()?.matmul(&dgates.reshape((b * h * w, 4 * c))?)
}
