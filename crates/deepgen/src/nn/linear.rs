//! The fully connected layer, weights `[in, out]` (no transposed copy in
//! forward or backward), with its activation fused on the CPU ([`super::fused`]).

use candle_core::{Device, Tensor};

use super::{create_graph, fused, Act, Params};
use crate::error::Result;
use crate::rng::Rng;

/// A fully connected layer, `y = act(x W + b)` with `W: [in, out]`.
#[derive(Clone, Debug)]
pub struct Linear {
    pub w: Tensor,
    pub b: Tensor,
}

impl Linear {
    /// Registers `{name}.weight` `[in, out]` and `{name}.bias` `[out]` with PyTorch's init.
    pub fn new(
        p: &mut Params,
        name: &str,
        d_in: usize,
        d_out: usize,
        rng: &mut Rng,
        dev: &Device,
    ) -> Result<Self> {
        let w = p.uniform_fan_in(&format!("{name}.weight"), &[d_in, d_out], d_in, rng, dev)?;
        let b = p.uniform_fan_in(&format!("{name}.bias"), &[d_out], d_in, rng, dev)?;
        Ok(Self { w, b })
    }

    /// # Shapes
    /// `x: [B, in]` -> `[B, out]`
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_act(x, Act::Identity)
    }

    /// `act(x W + b)` as one op on CPU (see [`fused`]); candle ops elsewhere.
    ///
    /// # Shapes
    /// `x: [B, in]` -> `[B, out]`
    pub fn forward_act(&self, x: &Tensor, act: Act) -> Result<Tensor> {
        let fusable = act.fuses_into_gemm();
        if crate::nn::cpu_kernels(x.device()) && x.rank() == 2 && fusable {
            return Ok(x.contiguous()?.apply_op3(
                &self.w,
                &self.b,
                fused::LinearOp { act, in_relu: false },
            )?);
        }
        let y = x.broadcast_matmul(&self.w)?.broadcast_add(&self.b)?;
        Ok(match act {
            Act::Identity => y,
            Act::Relu => super::act::leaky_ops(&y, 0.0)?,
            other => other.apply(&y)?,
        })
    }

    /// `act(relu(x) W + b)`: a pre-activation layer. On CPU the input's ReLU
    /// happens inside the op, so relu(x) is never a tensor of the graph.
    ///
    /// # Shapes
    /// `x: [B, in]` -> `[B, out]`
    pub fn forward_relu_in(&self, x: &Tensor, act: Act) -> Result<Tensor> {
        let fusable = act.fuses_into_gemm();
        if crate::nn::cpu_kernels(x.device()) && x.rank() == 2 && !create_graph() && fusable {
            return Ok(x.contiguous()?.apply_op3(
                &self.w,
                &self.b,
                fused::LinearOp { act, in_relu: true },
            )?);
        }
        self.forward_act(&super::act::leaky_ops(x, 0.0)?, act)
    }
}
