//! Parameters and the layers candle-nn lacks or gets slow.
//!
//! [`Params`] is an ordered name -> `Var` map (the safetensors tensor names).
//! Layers store weights as `[in, out]` and compute `x.matmul(w)`: measured on
//! this project's MLP, that avoids the transposed copy that candle-nn's
//! `x.matmul(&w.t())` makes in forward and backward (16-19 ms -> 13 ms).
//!
//! One concern per file: [`Params`] (`params`), [`Linear`] (`linear`) and its
//! fused CPU kernels (`fused`), the activations (`act`), matrix products
//! (`gemm`), per-thread scratch buffers (`scratch`), the create-graph switch
//! (`graph`), CPU storage access (`slices`), class vectors (`classes`), fused
//! element-wise ops (`ops`), 2x2 pooling and upsampling (`resample`), run-time
//! SIMD dispatch and lane-explicit sums (`simd`), convolutions (`conv`; the
//! stride-1 ones without im2col: `same_conv`), the grid LSTM (`lstm`) and
//! sequential networks over substitutable weights (`stack`).

pub mod act;
pub mod classes;
pub mod conv;
mod conv_gpu;
#[cfg(test)]
mod conv_gpu_tests;
pub mod cuda;
pub mod fused;
pub(crate) mod gemm;
pub(crate) mod graph;
pub(crate) mod instance_norm;
pub mod linear;
pub mod lstm;
pub mod ops;
pub mod params;
pub(crate) mod pixel_norm;
pub(crate) mod resample;
pub(crate) mod same_conv;
mod scratch;
pub(crate) mod simd;
pub(crate) mod slices;
pub mod stack;
pub(crate) mod strided;

pub use act::Act;
pub use classes::{argmax, one_hot};
pub(crate) use gemm::{gemm, gemm_at_b};
pub use gemm::{gemm_flops, matmul_slices, sum_rows};
pub use graph::{
    cpu_kernels, create_graph, cuda_kernels, inputs_only, with_create_graph, with_input_graph,
    with_portable_ops, PORTABLE_OPS_ENV,
};
pub use linear::Linear;
pub use params::Params;
pub(crate) use scratch::with_scratch;
