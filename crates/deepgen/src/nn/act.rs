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
            Act::Relu if h.device().is_cpu() && !super::create_graph() => {
                h.contiguous()?.apply_op1(Leaky(0.0))?
            }
            Act::Relu => h.relu()?,
            Act::Leaky(s) if h.device().is_cpu() && !super::create_graph() => {
                h.contiguous()?.apply_op1(Leaky(s))?
            }
            Act::Leaky(s) => h.maximum(&(h * s as f64)?)?,
            Act::Tanh => h.tanh()?,
            Act::Sigmoid => super::ops::sigmoid(h)?,
        })
    }
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
