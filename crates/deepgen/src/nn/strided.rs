//! The geometry of the convolutions, shared by the CPU kernels (`conv.rs`) and the GPU's forms
//! (`conv_gpu.rs`): a strided window, and a masked convolution's tap.

/// A kernel position relative to the output pixel: (row offset, column offset).
pub type Tap = (i32, i32);

/// The geometry of a strided `k x k` convolution between a high-resolution
/// map `[B, Hh, Wh, C]` and a low-resolution one `[B, Hl, Wl, C']`: low pixel
/// (i, j) and tap (ky, kx) meet high pixel (s i - p + ky, s j - p + kx).
/// A strided convolution gathers high -> low (im2col); a transposed
/// convolution is its adjoint and scatters low -> high (col2im).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Strided {
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
}

impl Strided {
    /// The low-resolution size for a high-resolution side `hi` (PyTorch's conv2d formula).
    pub fn lo(&self, hi: usize) -> usize {
        (hi + 2 * self.pad).saturating_sub(self.k) / self.stride + 1
    }
    /// The high-resolution side for a low-resolution side `lo` (PyTorch's conv_transpose2d
    /// formula).
    pub fn hi(&self, lo: usize) -> usize {
        (lo - 1) * self.stride + self.k - 2 * self.pad
    }
}
