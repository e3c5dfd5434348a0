//! What the image-to-image translation families (CycleGAN, StarGAN) share: the [`Translator`]
//! capability behind `deepgen translate` and `deepgen eval` on a translation run, the ResNet
//! generator both papers use (Johnson et al. 2016's layout: a 7x7 convolution, two stride-2
//! downsamplings, residual blocks, two upsamplings, a 7x7 convolution to the image, tanh), and
//! the pixel-space conventions.
//!
//! The networks work on images in [-1, 1] (both reference implementations normalise to
//! [-1, 1] and end the generators with tanh); data rows stay in [0, 1] outside the game, so the
//! L1 terms are taken in [-1, 1] as the references take them.
//!
//! Scaled to 28-32 px (the papers use 128-256 px): the generator downsamples twice, so H and W
//! must be multiples of 4; the upsampling layers are 4x4 stride-2 transposed convolutions with
//! padding 1 (CycleGAN's reference uses 3x3 with output_padding 1: the same output size).

use candle_core::{Device, Tensor};

use crate::data::attributes::Attribute;
use crate::error::{Error, Result};
use crate::nn::conv::Strided;
use crate::nn::stack::{Init, Stack};
use crate::nn::{Act, Params};
use crate::rng::Rng;

/// The domains a translation model knows.
#[derive(Debug, Clone, PartialEq)]
pub enum Domains {
    /// CycleGAN: two domains (the run config names their data specs).
    Pair,
    /// StarGAN: attributes, each example's domain a value of each.
    Attributes(Vec<Attribute>),
}

/// Where to translate to.
#[derive(Debug, Clone)]
pub enum Target {
    /// CycleGAN: A -> B (G).
    B,
    /// CycleGAN: B -> A (F).
    A,
    /// StarGAN: to these encoded attribute vectors, `[n, width]`.
    Encoded(Tensor),
}

/// Image-to-image translation.
pub trait Translator {
    fn domains(&self) -> Domains;
    /// The image shape `[C, H, W]` it translates.
    fn image_shape(&self) -> &[usize];
    /// Translates data rows `[n, C*H*W]` in [0, 1] (eval mode); returns rows in [0, 1].
    fn translate(&self, x: &Tensor, to: &Target) -> Result<Tensor>;
}

/// Data rows in [0, 1] to the networks' channels-last maps in [-1, 1].
pub fn to_net(x: &Tensor, shape: &[usize]) -> Result<Tensor> {
    let (c, h, w) = (shape[0], shape[1], shape[2]);
    Ok(((x * 2.0)? - 1.0)?.reshape((x.dim(0)?, c, h, w))?.permute((0, 2, 3, 1))?)
}

/// The networks' maps in [-1, 1] back to data rows in [0, 1].
pub fn to_rows(y: &Tensor) -> Result<Tensor> {
    let b = y.dim(0)?;
    Ok(((y.permute((0, 3, 1, 2))?.reshape((b, ()))? + 1.0)? * 0.5)?)
}

/// The mean absolute difference (PyTorch's `L1Loss`).
pub fn l1(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    Ok((a - b)?.abs()?.mean_all()?)
}

/// The ResNet generator of either paper.
#[derive(Debug, Clone, Copy)]
pub struct ResnetSpec {
    /// Input channels (StarGAN: image channels + attribute planes).
    pub c_in: usize,
    pub c_out: usize,
    pub h: usize,
    pub w: usize,
    /// Channels of the first layer (ngf / g_conv_dim); doubled by each downsampling.
    pub ch: usize,
    pub blocks: usize,
    /// CycleGAN: reflection padding, instance norm without affine parameters, N(0, 0.02)
    /// weights. StarGAN: zero padding, affine instance norm, PyTorch's default weights.
    pub cyclegan: bool,
}

/// Builds the generator as one [`Stack`] on `[B, H, W, c_in]` maps in [-1, 1], output tanh.
pub fn resnet_generator(
    prefix: &str,
    p: &mut Params,
    s: ResnetSpec,
    rng: &mut Rng,
    dev: &Device,
) -> Result<Stack> {
    if !s.h.is_multiple_of(4) || !s.w.is_multiple_of(4) || s.h < 8 || s.w < 8 {
        return Err(Error::config(format!(
            "the translation generators downsample twice: image sides must be multiples of 4 \
            and at least 8, not {}x{}",
            s.h, s.w
        )));
    }
    let init = if s.cyclegan { Init::Normal(0.02) } else { Init::Default };
    let mut g = Stack::new(prefix, s.h * s.w * s.c_in, dev);
    let norm = |g: &mut Stack, p: &mut Params, name: &str, c: usize| -> Result<()> {
        if s.cyclegan {
            g.instance_norm();
        } else {
            g.instance_norm_affine(p, name, c)?;
        }
        Ok(())
    };
    // A k x k stride-1 convolution that keeps the size: reflection padding then an unpadded
    // convolution (CycleGAN), or zero padding (StarGAN).
    #[allow(clippy::too_many_arguments)]
    fn same(
        g: &mut Stack,
        p: &mut Params,
        name: &str,
        k: usize,
        (h, w): (usize, usize),
        (c_in, c_out): (usize, usize),
        reflect: bool,
        init: Init,
        rng: &mut Rng,
    ) -> Result<()> {
        let pad = k / 2;
        if reflect {
            g.reflect_pad(pad);
            let st = Strided { k, stride: 1, pad: 0 };
            g.down(p, name, st, (h + 2 * pad, w + 2 * pad, c_in), c_out, init, rng)?;
        } else {
            g.down(p, name, Strided { k, stride: 1, pad }, (h, w, c_in), c_out, init, rng)?;
        }
        Ok(())
    }
    let r = s.cyclegan;
    let (h, w, ch) = (s.h, s.w, s.ch);
    same(&mut g, p, "in", 7, (h, w), (s.c_in, ch), r, init, rng)?;
    norm(&mut g, p, "in_norm", ch)?;
    g.act(Act::Relu);
    // CycleGAN downsamples with 3x3 kernels, StarGAN with 4x4; both halve the side.
    let down = if s.cyclegan {
        Strided { k: 3, stride: 2, pad: 1 }
    } else {
        Strided { k: 4, stride: 2, pad: 1 }
    };
    g.down(p, "down1", down, (h, w, ch), 2 * ch, init, rng)?;
    norm(&mut g, p, "down1_norm", 2 * ch)?;
    g.act(Act::Relu);
    g.down(p, "down2", down, (h / 2, w / 2, 2 * ch), 4 * ch, init, rng)?;
    norm(&mut g, p, "down2_norm", 4 * ch)?;
    g.act(Act::Relu);
    let (h4, w4, c4) = (h / 4, w / 4, 4 * ch);
    for i in 0..s.blocks {
        g.save();
        same(&mut g, p, &format!("res{i}.conv1"), 3, (h4, w4), (c4, c4), r, init, rng)?;
        norm(&mut g, p, &format!("res{i}.norm1"), c4)?;
        g.act(Act::Relu);
        same(&mut g, p, &format!("res{i}.conv2"), 3, (h4, w4), (c4, c4), r, init, rng)?;
        norm(&mut g, p, &format!("res{i}.norm2"), c4)?;
        g.add_saved();
    }
    let up = Strided { k: 4, stride: 2, pad: 1 };
    g.up(p, "up1", up, (h4, w4, c4), 2 * ch, init, rng)?;
    norm(&mut g, p, "up1_norm", 2 * ch)?;
    g.act(Act::Relu);
    g.up(p, "up2", up, (h / 2, w / 2, 2 * ch), ch, init, rng)?;
    norm(&mut g, p, "up2_norm", ch)?;
    g.act(Act::Relu);
    same(&mut g, p, "out", 7, (h, w), (ch, s.c_out), r, init, rng)?;
    g.act(Act::Tanh);
    Ok(g)
}

/// The data's image shape, or a clear refusal.
pub fn image_shape(shape: &[usize], model: &str) -> Result<(usize, usize, usize)> {
    match shape {
        [c, h, w] if *c == 1 || *c == 3 => Ok((*c, *h, *w)),
        _ => Err(Error::config(format!(
            "{model} translates images of 1 or 3 channels ([C, H, W]); the data has shape \
            {shape:?}"
        ))),
    }
}

/// Refuses rows of another image shape than the model's, naming both (a grey model given colour
/// images).
pub fn check_rows(x: &Tensor, shape: &[usize], what: &str) -> Result<()> {
    let d: usize = shape.iter().product();
    let got = x.dim(1)?;
    if got != d {
        return Err(Error::Shape(format!(
            "{what} has {got} values per example; the model translates {}x{}x{} images \
            ({d} values{})",
            shape[0],
            shape[1],
            shape[2],
            if shape[0] == 1 && got == 3 * d { "; these look like colour images" } else { "" }
        )));
    }
    Ok(())
}
