//! PixelRNN (van den Oord, Kalchbrenner & Kavukcuoglu, ICML 2016, section 3):
//! the **Row LSTM** and the **Diagonal BiLSTM**, on one-channel images in
//! raster order, with the output heads of PixelCNN (Bernoulli or 256-way
//! softmax).
//!
//! Both start with a 7x7 mask-A convolution (the pixel itself excluded) to
//! `C` feature maps, stack LSTM layers of `C` units with residual connections
//! `x_{l+1} = x_l + 1x1(h_l)` (section 3.4), and end with `relu -> 1x1 ->
//! relu -> 1x1`. Gates are (i, f, o, g): c = sigma(f) c' + sigma(i) tanh(g),
//! h = sigma(o) tanh(c) (eq. 3).
//!
//! * **Row LSTM** (3.1): row by row, top to bottom. The input-to-state
//!   convolution is 1x3 with mask B (taps left and centre, computed for all
//!   rows at once); the state-to-state convolution is 1x3 over the previous
//!   row's hidden state (taps left, centre, right). Each state sees a
//!   triangle above it (the receptive field grows one column per row on
//!   each side) and the row to its left through the input.
//! * **Diagonal BiLSTM** (3.2): the input map is *skewed* (row r shifted
//!   right by r) so that each anti-diagonal of the image is a column; an
//!   LSTM runs along the columns with a 1x1 input-to-state convolution and a
//!   2x1 state-to-state convolution over the previous column (in image
//!   coordinates: the state above and the state to the left), and the output
//!   is unskewed. States outside the image are held at zero. The second
//!   direction runs on the mirrored image (its states see the state to the
//!   right), and its output is **shifted down one row** before it is added
//!   to the first: otherwise pixel (r, c) would see the future pixels
//!   (r, c+1..). Each state then sees every pixel above and to the left.
//!
//! **Sampling** never recomputes a state: both networks are evaluated cell
//! by cell in raster order, each cell once. Row LSTM: cell (r, c) of every
//! layer depends only on pixels before (r, c), so it is computed at pixel
//! (r, c) from the layer's inputs at (r, c-1), (r, c) and the cached states
//! (r-1, c-1..c+1). Diagonal BiLSTM: cell (r, c) of the first direction from
//! cells (r, c-1) and (r-1, c); the second direction's row r-1 is run right
//! to left once row r-1 is complete. The tests check both samplers against
//! the full forward pass.
//!
//! Tensor names: `in` (7x7), `lstm{l}.input`, `lstm{l}.state` `[T*C, 4C]`,
//! for the Diagonal BiLSTM also `lstm{l}.input_right`, `lstm{l}.state_right`,
//! then `lstm{l}.res`, `head.{0,1}`.

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::data::Dataset;
use crate::dist::PixelOutput;
use crate::error::{Error, Result};
use crate::models::family::*;
use crate::models::family::{explicit_sequential, net};
use crate::models::ModelFlags;
use crate::models::{Canvas, Known};
use crate::nn::conv::{gather, pointwise, pointwise_relu_in, raster_taps, MaskedConv, Tap};
use crate::nn::lstm::{grid_lstm, Scan};
use crate::nn::{ops, Act, Linear, Params};
use crate::recipe::TrainConfig;
use crate::rng::Rng;

/// Which PixelRNN layer.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Cell {
    Row,
    Diagonal,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PixelRnnConfig {
    pub cell: Cell,
    pub height: usize,
    pub width: usize,
    /// Feature maps and LSTM units per layer.
    #[serde(default = "default_channels")]
    pub channels: usize,
    /// LSTM layers.
    #[serde(default = "default_layers")]
    pub layers: usize,
    #[serde(default)]
    pub output: PixelOutput,
}

fn default_channels() -> usize {
    32
}
fn default_layers() -> usize {
    2
}

const ROW_INPUT: [Tap; 2] = [(0, -1), (0, 0)];
const ROW_STATE: [Tap; 3] = [(0, -1), (0, 0), (0, 1)];
/// Over the previous skewed column: the state above, then the state in the same row (image: to the
/// left).
const DIAG_STATE: [Tap; 2] = [(-1, 0), (0, 0)];

#[derive(Debug, Clone)]
struct Direction {
    input: MaskedConv,
    state: Tensor,
}

#[derive(Debug, Clone)]
struct Layer {
    dirs: Vec<Direction>,
    res: Linear,
}

#[derive(Debug, Clone)]
pub struct PixelRnn {
    cfg: PixelRnnConfig,
    first: MaskedConv,
    layers: Vec<Layer>,
    head: [Linear; 2],
}

/// One LSTM step on gate pre-activations `[N, 4C]` (i, f, o, g) and the previous cell `[N, C]`.
fn lstm_cell(gates: &Tensor, c_prev: &Tensor, c: usize) -> Result<(Tensor, Tensor)> {
    let s = ops::sigmoid(&gates.narrow(1, 0, 3 * c)?.contiguous()?)?;
    let g = gates.narrow(1, 3 * c, c)?.tanh()?;
    let cell = ((s.narrow(1, c, c)? * c_prev)? + (s.narrow(1, 0, c)? * g)?)?;
    let h = (s.narrow(1, 2 * c, c)? * cell.tanh()?)?;
    Ok((h, cell))
}

/// `x` mirrored left-right.
///
/// # Shapes
/// `x: [B, H, W, C]` -> the same
fn flip_w(x: &Tensor) -> Result<Tensor> {
    let w = x.dim(2)?;
    let idx = Tensor::from_vec((0..w as u32).rev().collect::<Vec<_>>(), w, x.device())?;
    Ok(x.contiguous()?.index_select(&idx, 2)?)
}

/// Row r moved right by r: `[B, H, W, C]` -> `[B, H, W+H-1, C]` (zeros elsewhere).
fn skew(x: &Tensor) -> Result<Tensor> {
    let h = x.dim(1)?;
    let rows: Vec<Tensor> = (0..h)
        .map(|r| x.narrow(1, r, 1)?.pad_with_zeros(2, r, h - 1 - r))
        .collect::<candle_core::Result<_>>()?;
    Ok(Tensor::cat(&rows, 1)?)
}

/// The inverse of [`skew`].
fn unskew(x: &Tensor, w: usize) -> Result<Tensor> {
    let h = x.dim(1)?;
    let rows: Vec<Tensor> =
        (0..h).map(|r| x.narrow(1, r, 1)?.narrow(2, r, w)).collect::<candle_core::Result<_>>()?;
    Ok(Tensor::cat(&rows, 1)?)
}

impl PixelRnn {
    pub fn new(p: &mut Params, cfg: &PixelRnnConfig, rng: &mut Rng, dev: &Device) -> Result<Self> {
        let c = cfg.channels;
        if cfg.height == 0 || cfg.width == 0 || c == 0 || cfg.layers == 0 {
            return Err(Error::config(
                "pixelrnn: needs one-channel images and positive channels \
                and layers",
            ));
        }
        let first = MaskedConv::new(p, "in", raster_taps(7, false), 1, c, rng, dev)?;
        let mut layers = Vec::new();
        for l in 0..cfg.layers {
            let mut dirs = Vec::new();
            let names: &[&str] = match cfg.cell {
                Cell::Row => &[""],
                Cell::Diagonal => &["", "_right"],
            };
            for suffix in names {
                let (in_taps, st_taps): (Vec<Tap>, usize) = match cfg.cell {
                    Cell::Row => (ROW_INPUT.to_vec(), ROW_STATE.len()),
                    Cell::Diagonal => (vec![(0, 0)], DIAG_STATE.len()),
                };
                let input = MaskedConv::new(
                    p,
                    &format!("lstm{l}.input{suffix}"),
                    in_taps,
                    c,
                    4 * c,
                    rng,
                    dev,
                )?;
                let state = p.uniform_fan_in(
                    &format!("lstm{l}.state{suffix}"),
                    &[st_taps * c, 4 * c],
                    st_taps * c,
                    rng,
                    dev,
                )?;
                dirs.push(Direction { input, state });
            }
            layers.push(Layer {
                dirs,
                res: Linear::new(p, &format!("lstm{l}.res"), c, c, rng, dev)?,
            });
        }
        let head = [
            Linear::new(p, "head.0", c, c, rng, dev)?,
            Linear::new(p, "head.1", c, cfg.output.params(), rng, dev)?,
        ];
        Ok(Self { cfg: cfg.clone(), first, layers, head })
    }

    pub fn output(&self) -> PixelOutput {
        self.cfg.output
    }

    /// The Row LSTM over all rows of `x`: `[B, H, W, C]` -> hidden states `[B, H, W, C]`.
    fn row_lstm(&self, dir: &Direction, x: &Tensor) -> Result<Tensor> {
        let (b, h, w, c) = x.dims4()?;
        let gin = dir.input.forward(x, Act::Identity)?; // [B, H, W, 4C], all rows at once
        let mut hs = Tensor::zeros((b, 1, w, c), DType::F32, x.device())?;
        let mut cs = Tensor::zeros((b * w, c), DType::F32, x.device())?;
        let mut rows = Vec::with_capacity(h);
        for r in 0..h {
            let g = gin.narrow(1, r, 1)?.reshape((b * w, 4 * c))?;
            let (hn, cn) = self.row_step(dir, &g, &hs, &cs)?;
            hs = hn.reshape((b, 1, w, c))?;
            cs = cn;
            rows.push(hs.clone());
        }
        Ok(Tensor::cat(&rows, 1)?)
    }

    /// One row of the Row LSTM: input gates `[B*W, 4C]` of row r, states of row r-1.
    fn row_step(
        &self,
        dir: &Direction,
        g_in: &Tensor,
        h_prev: &Tensor,
        c_prev: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let c = self.cfg.channels;
        let g = (g_in + gather(h_prev, &ROW_STATE)?.matmul(&dir.state)?)?;
        lstm_cell(&g, c_prev, c)
    }

    /// One direction of the diagonal LSTM: `[B, H, W, C]` -> `[B, H, W, C]`.
    fn diagonal_lstm(&self, dir: &Direction, x: &Tensor) -> Result<Tensor> {
        let (b, h, w, c) = x.dims4()?;
        let gin = skew(&dir.input.forward(x, Act::Identity)?)?; // [B, H, W+H-1, 4C]
        let cols = w + h - 1;
        let mut hs = Tensor::zeros((b, h, 1, c), DType::F32, x.device())?;
        let mut cs = Tensor::zeros((b * h, c), DType::F32, x.device())?;
        let mut outs = Vec::with_capacity(cols);
        for col in 0..cols {
            // Column `col` holds pixel (r, col - r) of rows col-W+1 ..= col; the rest is outside
            // the image.
            let valid: Vec<f32> =
                (0..h).map(|r| if r <= col && col - r < w { 1.0 } else { 0.0 }).collect();
            let valid = Tensor::from_vec(valid, (1, h, 1), x.device())?;
            let g = (gin.narrow(2, col, 1)?.reshape((b * h, 4 * c))?
                + gather(&hs, &DIAG_STATE)?.matmul(&dir.state)?)?;
            let (hn, cn) = lstm_cell(&g, &cs, c)?;
            let hn = hn.reshape((b, h, c))?.broadcast_mul(&valid)?;
            cs = cn.reshape((b, h, c))?.broadcast_mul(&valid)?.reshape((b * h, c))?;
            hs = hn.reshape((b, h, 1, c))?;
            outs.push(hs.clone());
        }
        unskew(&Tensor::cat(&outs, 2)?, w)
    }

    /// The output parameters at every pixel.
    ///
    /// # Shapes
    /// `img: [B, H, W, 1]` -> `[B, H, W, P]`
    pub fn forward_image(&self, img: &Tensor) -> Result<Tensor> {
        // deepgen's scan (CPU or CUDA kernels) unless a gradient will be differentiated again.
        let dev = img.device();
        let kernels = crate::nn::cpu_kernels(dev) || crate::nn::cuda_kernels(dev);
        let fused = kernels && !crate::nn::create_graph();
        self.forward_image_with(img, fused)
    }

    /// [`Self::forward_image`] with the literal formulation of the paper in
    /// candle ops (row loop; skew, column loop, unskew), which the fused scan
    /// of [`crate::nn::lstm`] must reproduce (tested).
    pub fn forward_image_reference(&self, img: &Tensor) -> Result<Tensor> {
        self.forward_image_with(img, false)
    }

    fn forward_image_with(&self, img: &Tensor, fused: bool) -> Result<Tensor> {
        let mut x = self.first.forward(img, Act::Identity)?;
        let scan = |dir: &Direction, x: &Tensor| -> Result<Tensor> {
            match (self.cfg.cell, fused) {
                (Cell::Row, true) => {
                    grid_lstm(&dir.input.forward(x, Act::Identity)?, &dir.state, Scan::Rows)
                }
                (Cell::Diagonal, true) => {
                    grid_lstm(&dir.input.forward(x, Act::Identity)?, &dir.state, Scan::Diagonals)
                }
                (Cell::Row, false) => self.row_lstm(dir, x),
                (Cell::Diagonal, false) => self.diagonal_lstm(dir, x),
            }
        };
        for layer in &self.layers {
            let hid = match self.cfg.cell {
                Cell::Row => scan(&layer.dirs[0], &x)?,
                Cell::Diagonal => {
                    let left = scan(&layer.dirs[0], &x)?;
                    let right = flip_w(&scan(&layer.dirs[1], &flip_w(&x)?)?)?;
                    (left + shift_down(&right)?)?
                }
            };
            x = (x + pointwise(&layer.res, &hid, Act::Identity)?)?;
        }
        self.head(&x)
    }

    fn head(&self, x: &Tensor) -> Result<Tensor> {
        let x = pointwise_relu_in(&self.head[0], x, Act::Relu)?;
        pointwise(&self.head[1], &x, Act::Identity)
    }

    /// # Shapes
    /// `x: [B, D]` -> `[B, D, P]`
    pub fn conditionals(&self, x: &Tensor) -> Result<Tensor> {
        let (b, d) = x.dims2()?;
        let out = self.forward_image(&x.reshape((b, self.cfg.height, self.cfg.width, 1))?)?;
        Ok(out.reshape((b, d, self.cfg.output.params()))?)
    }

    /// # Shapes
    /// `x: [B, D]` -> `[B]`
    pub fn log_prob(&self, x: &Tensor) -> Result<Tensor> {
        self.cfg.output.log_prob(&self.conditionals(x)?, x)
    }

    /// Raster-order sampling with cached LSTM states (see the module notes).
    /// Known pixels (completion) are kept. Returns samples and their log-probabilities.
    pub fn sample_ar(
        &self,
        n: usize,
        known: Option<&Known>,
        rng: &mut Rng,
    ) -> Result<(Tensor, Vec<f64>)> {
        match self.cfg.cell {
            Cell::Row => self.sample_row(n, known, rng),
            Cell::Diagonal => self.sample_diagonal(n, known, rng),
        }
    }

    /// The first (7x7 mask A) convolution's output on row `r` of the canvas: `[n, 1, W, C]`.
    fn first_row(&self, img: &[f32], n: usize, r: usize, dev: &Device) -> Result<Tensor> {
        let (h, w) = (self.cfg.height, self.cfg.width);
        let r0 = r.saturating_sub(3);
        let rows = r - r0 + 1;
        let mut win = Vec::with_capacity(n * rows * w);
        for s in 0..n {
            win.extend_from_slice(&img[s * h * w + r0 * w..s * h * w + (r + 1) * w]);
        }
        let t = Tensor::from_vec(win, (n, rows, w, 1), dev)?;
        Ok(self.first.forward(&t, Act::Identity)?.narrow(1, rows - 1, 1)?)
    }

    fn sample_row(
        &self,
        n: usize,
        known: Option<&Known>,
        rng: &mut Rng,
    ) -> Result<(Tensor, Vec<f64>)> {
        let (h, w, c) = (self.cfg.height, self.cfg.width, self.cfg.channels);
        let d = h * w;
        let nl = self.layers.len();
        let dev = self.head[1].b.device().clone();
        let zero = Tensor::zeros((n, c), DType::F32, &dev)?;
        let mut canvas = Canvas::new(n, d, known);
        // Cells are [n, C] tensors, indexed [layer][column]: (h, c) of rows r-1 and r,
        // and each layer's input along row r (the 1x3 mask B kernel reads columns c-1 and c).
        let blank = || vec![vec![(zero.clone(), zero.clone()); w]; nl];
        let (mut prev, mut cur) = (blank(), blank());
        let mut inputs: Vec<Vec<Tensor>> = vec![vec![zero.clone(); w]; nl];
        for r in 0..h {
            for col in 0..w {
                // Cell (r, col) of every layer: it depends on pixels before (r, col) only, so it is
                // final now, and row r's other cells were computed at their own pixels.
                let mut x =
                    self.first_row(&canvas.x, n, r, &dev)?.narrow(2, col, 1)?.reshape((n, c))?;
                for (l, layer) in self.layers.iter().enumerate() {
                    let dir = &layer.dirs[0];
                    inputs[l][col] = x.clone();
                    let left = if col > 0 { inputs[l][col - 1].clone() } else { zero.clone() };
                    let above = |k: Option<usize>| {
                        k.filter(|&k| k < w)
                            .map(|k| prev[l][k].0.clone())
                            .unwrap_or_else(|| zero.clone())
                    };
                    let s_in = Tensor::cat(
                        &[&above(col.checked_sub(1)), &above(Some(col)), &above(Some(col + 1))],
                        1,
                    )?;
                    let g = (dir.input.lin.forward(&Tensor::cat(&[&left, &x], 1)?)?
                        + s_in.matmul(&dir.state)?)?;
                    let (hn, cn) = lstm_cell(&g, &prev[l][col].1, c)?;
                    x = (x + layer.res.forward(&hn)?)?;
                    cur[l][col] = (hn, cn);
                }
                let out = self.head[1]
                    .forward(&self.head[0].forward_relu_in(&x, Act::Relu)?)?
                    .to_vec2::<f32>()?;
                canvas.draw(r * w + col, &out, self.cfg.output, rng);
            }
            prev = std::mem::replace(&mut cur, blank());
        }
        canvas.finish(&dev)
    }

    fn sample_diagonal(
        &self,
        n: usize,
        known: Option<&Known>,
        rng: &mut Rng,
    ) -> Result<(Tensor, Vec<f64>)> {
        let (h, w, c) = (self.cfg.height, self.cfg.width, self.cfg.channels);
        let d = h * w;
        let nl = self.layers.len();
        let dev = self.head[1].b.device().clone();
        let zero = Tensor::zeros((n, c), DType::F32, &dev)?;
        let mut canvas = Canvas::new(n, d, known);
        // Cells are [n, C] tensors. prev_*: row r-1; cur_*: row r. Index [layer][column].
        let blank = || vec![vec![(zero.clone(), zero.clone()); w]; nl];
        let (mut prev_l, mut cur_l, mut prev_r) = (blank(), blank(), blank());
        // Layer inputs of the current row (for the right-to-left pass at its end).
        let mut inputs: Vec<Vec<Tensor>> = vec![vec![zero.clone(); w]; nl];
        // One cell: gates from the input, the state above and the state beside.
        let cell = |dir: &Direction,
                    x: &Tensor,
                    up: &(Tensor, Tensor),
                    side: &(Tensor, Tensor)|
         -> Result<(Tensor, Tensor)> {
            let g = (dir.input.lin.forward(x)?
                + Tensor::cat(&[&up.0, &side.0], 1)?.matmul(&dir.state)?)?;
            lstm_cell(&g, &side.1, c)
        };
        let zz = (zero.clone(), zero.clone());
        for r in 0..h {
            for col in 0..w {
                let mut x =
                    self.first_row(&canvas.x, n, r, &dev)?.narrow(2, col, 1)?.reshape((n, c))?;
                for (l, layer) in self.layers.iter().enumerate() {
                    inputs[l][col] = x.clone();
                    let side = if col > 0 { cur_l[l][col - 1].clone() } else { zz.clone() };
                    let st = cell(&layer.dirs[0], &x, &prev_l[l][col], &side)?;
                    // The second direction enters shifted down one row: its state at (r-1, col).
                    let hid = (&st.0 + &prev_r[l][col].0)?;
                    cur_l[l][col] = st;
                    x = (x + layer.res.forward(&hid)?)?;
                }
                let out = self.head[1]
                    .forward(&self.head[0].forward_relu_in(&x, Act::Relu)?)?
                    .to_vec2::<f32>()?;
                canvas.draw(r * w + col, &out, self.cfg.output, rng);
            }
            // Row r is complete: run the second direction over it, right to left.
            let mut cur_r = blank();
            for (l, layer) in self.layers.iter().enumerate() {
                for col in (0..w).rev() {
                    let side = if col + 1 < w { cur_r[l][col + 1].clone() } else { zz.clone() };
                    cur_r[l][col] = cell(&layer.dirs[1], &inputs[l][col], &prev_r[l][col], &side)?;
                }
            }
            prev_r = cur_r;
            prev_l = std::mem::replace(&mut cur_l, blank());
        }
        canvas.finish(&dev)
    }
}

/// Moves every row down by one (row 0 becomes zeros).
fn shift_down(x: &Tensor) -> Result<Tensor> {
    let h = x.dim(1)?;
    if h == 1 {
        return Ok(x.zeros_like()?);
    }
    Ok(x.narrow(1, 0, h - 1)?.pad_with_zeros(1, 1, 0)?)
}

impl Family for PixelRnnConfig {
    const MODELS: &'static [ModelInfo] = &[
        ModelInfo {
            name: "row-lstm",
            summary: "PixelRNN Row LSTM (van den Oord et al. 2016): row-by-row LSTM, triangular \
            receptive field",
            density: Density::Exact,
            training: Training::Likelihood,
            sampler: true,
            completion: true,
            encoder: false,
            features: None,
            labels: Labels::Unused,
            scores: DENSITY_SCORES,
            data: "one-channel images: binary (--output bernoulli) or 256 grey levels (--output \
            softmax)",
            flags: &["channels", "layers", "output"],
        },
        ModelInfo {
            name: "diagonal-bilstm",
            summary:
                "PixelRNN Diagonal BiLSTM (van den Oord et al. 2016): skewed diagonal LSTMs in \
            two directions",
            density: Density::Exact,
            training: Training::Likelihood,
            sampler: true,
            completion: true,
            encoder: false,
            features: None,
            labels: Labels::Unused,
            scores: DENSITY_SCORES,
            data: "one-channel images: binary (--output bernoulli) or 256 grey levels (--output \
            softmax)",
            flags: &["channels", "layers", "output"],
        },
    ];

    fn preset(name: &str, shape: &[usize], _unit_data: bool) -> Result<Self> {
        let (height, width) = one_channel(name, shape)?;
        let cell = if name == "row-lstm" { Cell::Row } else { Cell::Diagonal };
        Ok(Self { cell, height, width, channels: 32, layers: 2, output: PixelOutput::Bernoulli })
    }

    /// About 5-10 minutes on 2 cores at 1,000 steps of batch 64 (MNIST).
    fn recipe(_name: &str, _shape: &[usize]) -> TrainConfig {
        TrainConfig { steps: 1000, batch_size: 64, ..TrainConfig::default() }
    }

    fn name(&self) -> &'static str {
        match self.cell {
            Cell::Row => "row-lstm",
            Cell::Diagonal => "diagonal-bilstm",
        }
    }

    fn dim(&self) -> usize {
        self.height * self.width
    }

    fn needs(&self) -> Needs {
        pixel_needs(self.output)
    }

    fn configure(&mut self, flags: &ModelFlags, _data: &Dataset, _seed: u64) -> Result<()> {
        configure_pixels(flags, &mut self.channels, &mut self.layers, &mut self.output)
    }

    fn build(&self, p: &mut Params, rng: &mut Rng, dev: &Device) -> Result<Box<dyn Net>> {
        Ok(Box::new(PixelRnn::new(p, self, rng, dev)?))
    }
}

net!(PixelRnn {
    density: yes,
    sampler: yes,
    sequential: yes,
    encoder: no,
    features: no,
    objective: yes,
    adversarial: no,
    translator: no,
});

explicit_sequential!(PixelRnn { conditionals: own, objective: nll });
