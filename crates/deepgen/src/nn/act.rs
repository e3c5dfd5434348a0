//! The element-wise activations, one enum for every layer type: dense layers
//! fuse identity and ReLU into their GEMM ([`super::Linear::forward_act`]),
//! convolutions and batch norm fuse ReLU and LeakyReLU, and [`Act::apply`]
//! runs any of them on its own.

use candle_core::Tensor;
use rayon::prelude::*;

use super::slices::f32s;
use crate::error::Result;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Act {
    Identity,
    Relu,
    /// max(x, a x)
    Leaky(f32),
    Tanh,
    Sigmoid,
}

impl Act {
    /// Dense layers and masked convolutions apply these inside their GEMM op.
    pub fn fuses_into_gemm(self) -> bool {
        matches!(self, Act::Identity | Act::Relu)
    }

    /// The activation as differentiable tensor ops (fused on the CPU).
    pub fn apply(self, h: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Act::Identity => h.clone(),
            // max(x, 0) is the leaky op with slope 0: one parallel pass each way
            // instead of candle's comparison, cast and product in the backward pass.
            Act::Relu if crate::nn::cpu_kernels(h.device()) && !super::create_graph() => {
                h.contiguous()?.apply_op1(Leaky(0.0))?
            }
            Act::Relu => leaky_ops(h, 0.0)?,
            Act::Leaky(s) if crate::nn::cpu_kernels(h.device()) && !super::create_graph() => {
                h.contiguous()?.apply_op1(Leaky(s))?
            }
            Act::Leaky(s) => leaky_ops(h, s as f64)?,
            Act::Tanh => h.tanh()?,
            Act::Sigmoid => super::ops::sigmoid(h)?,
        })
    }
}

/// max(x, s x) as candle ops, x times a slope that is 1 where x > 0 and s elsewhere (a constant
/// of the graph): its gradient at x = 0 is s, as the fused kernel's and PyTorch's are. candle's
/// own `relu` passes the whole gradient at 0 and its `maximum` half to each side, and exact
/// zeros are common (a channel that instance norm maps to 0, a dead unit's output): the two
/// paths then trained differently.
pub(crate) fn leaky_ops(h: &Tensor, s: f64) -> candle_core::Result<Tensor> {
    let slope = ((h.gt(0f32)?.to_dtype(h.dtype())? * (1.0 - s))? + s)?;
    h * slope
}

/// max(x, a x) in one pass; its backward scales the gradient by 1 or a (from the output's sign).
struct Leaky(f32);

impl candle_core::CustomOp1 for Leaky {
    fn name(&self) -> &'static str {
        "deepgen-leaky-relu"
    }
    fn cpu_fwd(
        &self,
        s: &candle_core::CpuStorage,
        l: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        let x = f32s(s, l, "leaky relu")?;
        let a = self.0;
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(super::stack::PAR_CHUNK)
            .zip(x.par_chunks(super::stack::PAR_CHUNK))
            .for_each(|(y, x)| {
                y.iter_mut().zip(x).for_each(|(y, &v)| *y = if v > 0.0 { v } else { a * v })
            });
        Ok((candle_core::CpuStorage::F32(y), l.shape().clone()))
    }
    fn bwd(
        &self,
        arg: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let a = self.0;
        let g = super::fused::read(grad, |g| {
            super::fused::read(res, |y| super::fused::leaky_grad(g, y, a))
        })??;
        Ok(Some(Tensor::from_vec(g, arg.shape(), arg.device())?))
    }
}
