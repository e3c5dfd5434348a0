//! The image-text matcher: a text encoder and an image encoder trained so that an image and its
//! caption score higher than mismatched pairs. It gives the text-conditional GAN its text
//! embedding φ(t) (Reed et al. 2016, Sec. 3.1 pretrain a char-CNN-RNN this way, the "deep
//! symmetric structured joint embedding" of Reed et al. 2016b, and keep it fixed while the GAN
//! trains), and a second one, trained apart, is the judge of R-precision.
//!
//! The loss is the symmetric form of that joint embedding: with compatibility
//! F(v, t) = cos(θ(v), φ(t)) / τ between every image and every caption of a batch,
//!
//!   L = 1/2 [ mean_i -log softmax_j F(v_i, t_j)[i] + mean_j -log softmax_i F(v_i, t_j)[j] ],
//!
//! Reed et al.'s two misclassification terms (image to text, text to image) with the softmax
//! in place of their hinge over classes, and the other captions of the batch in place of class
//! prototypes: the embedded digits have no fine-grained classes, and the softmax gives every
//! pair a gradient (the form CLIP, Radford et al. 2021, trains at scale). τ = 0.1 is fixed.
//!
//! The text encoder ([`TextEncoder`]): word embeddings (32), a width-3 convolution over the words
//! (128 channels, ReLU), a max over the words, a dense layer to the 64-dimensional embedding. A
//! word-level CNN where Reed et al. run a character CNN and a GRU: the captions here are short
//! and made of a small vocabulary, and a word model needs no recurrence to read "leaning left".
//! The image encoder is an MLP (256 ReLU units, then 64).

use candle_core::{DType, Device, Tensor, Var};
use serde::{Deserialize, Serialize};

use super::{Losses, Objective};
use crate::data::captions::Vocab;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::models::family::net;
use crate::models::family::*;
pub use crate::models::text_config::TextEncoderConfig;
use crate::models::ModelFlags;
use crate::nn::stack::{Init, Stack};
use crate::nn::Params;
use crate::recipe::{Schedule, TrainConfig};
use crate::rng::{self, Rng};

/// φ(t): caption word ids `[B, L]` (0 = padding) to embeddings `[B, dim]`.
pub struct TextEncoder {
    pub cfg: TextEncoderConfig,
    embed: Var,
    conv: Stack,
    out: Stack,
    /// Every weight: `embed`, then `conv`'s, then `out`'s.
    pub names: Vec<String>,
    dev: Device,
}

/// The largest value a masked-out position can contribute to the max over words.
const MASKED: f64 = 1e4;

impl TextEncoder {
    pub fn new(
        p: &mut Params,
        prefix: &str,
        cfg: &TextEncoderConfig,
        rng: &mut Rng,
        dev: &Device,
    ) -> Result<Self> {
        if cfg.words == 0 || cfg.channels == 0 || cfg.dim == 0 {
            return Err(Error::config("the text encoder's widths must be positive"));
        }
        let v = cfg.vocab.words.len() + 1;
        p.room(&[v, cfg.words])?;
        let name = format!("{prefix}.embed");
        p.add(&name, (rng::randn(rng, &[v, cfg.words], dev)? * 0.1)?)?;
        let embed =
            p.get(&name).cloned().ok_or_else(|| Error::config("text embedding vanished"))?;
        let mut conv = Stack::new(&format!("{prefix}.conv"), 3 * cfg.words, dev);
        conv.dense(p, "w3", cfg.channels, true, Init::Default, rng)?;
        let mut out = Stack::new(&format!("{prefix}.out"), cfg.channels, dev);
        out.dense(p, "fc", cfg.dim, false, Init::Default, rng)?;
        let mut names = vec![name];
        names.extend(conv.names.iter().cloned());
        names.extend(out.names.iter().cloned());
        Ok(Self { cfg: cfg.clone(), embed, conv, out, names, dev: dev.clone() })
    }

    /// φ(t) of word ids `[B, L]` (f32, as batch rows carry them).
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let (b, l) = ids.dims2()?;
        let e = self.cfg.words;
        let mask = ids.ne(0f32)?.to_dtype(DType::F32)?;
        let flat = ids.to_dtype(DType::U32)?.reshape(b * l)?;
        let h = self.embed.as_tensor().index_select(&flat, 0)?.reshape((b, l, e))?;
        let h = h.broadcast_mul(&mask.unsqueeze(2)?)?;
        // Width-3 windows over the words, zero beyond both ends.
        let pad = Tensor::zeros((b, 1, e), DType::F32, &self.dev)?;
        let padded = Tensor::cat(&[&pad, &h, &pad], 1)?;
        let windows = Tensor::cat(
            &[&padded.narrow(1, 0, l)?, &padded.narrow(1, 1, l)?, &padded.narrow(1, 2, l)?],
            2,
        )?;
        let c = self.conv.forward(&windows.reshape((b * l, 3 * e))?, true)?;
        let c = c.reshape((b, l, self.cfg.channels))?;
        let c = c.broadcast_add(&((mask.unsqueeze(2)? - 1.0)? * MASKED)?)?;
        let pooled = c.max(1)?;
        self.out.forward(&pooled, true)
    }

    /// φ(t) of captions (each refused with one line when it has no words, is too long or has a
    /// word the encoder does not know).
    pub fn embed(&self, captions: &[String]) -> Result<Tensor> {
        let mut ids = Vec::with_capacity(captions.len() * self.cfg.vocab.max_words);
        for c in captions {
            ids.extend(self.cfg.vocab.row(c)?);
        }
        let t = Tensor::from_vec(ids, (captions.len(), self.cfg.vocab.max_words), &self.dev)?;
        self.forward(&t)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MatcherConfig {
    pub shape: Vec<usize>,
    pub text: TextEncoderConfig,
    pub hidden: usize,
    /// The softmax temperature τ.
    pub temperature: f64,
}

impl MatcherConfig {
    pub fn dim(&self) -> usize {
        self.shape.iter().product()
    }
}

pub struct Matcher {
    pub cfg: MatcherConfig,
    pub text: TextEncoder,
    image: Stack,
    dev: Device,
}

/// Rows scaled to unit length.
pub fn unit_rows(x: &Tensor) -> Result<Tensor> {
    let n = (x.sqr()?.sum_keepdim(1)? + 1e-12)?.sqrt()?;
    Ok(x.broadcast_div(&n)?)
}

/// -mean_i log softmax(logits[i])[i] of a square `[B, B]` matrix.
fn diagonal_nll(logits: &Tensor) -> Result<Tensor> {
    let b = logits.dim(0)?;
    let m = logits.max_keepdim(1)?.detach();
    let lse = (logits.broadcast_sub(&m)?.exp()?.sum_keepdim(1)?.log()? + &m)?;
    let eye = Tensor::eye(b, DType::F32, logits.device())?;
    let diag = (logits * eye)?.sum_keepdim(1)?;
    Ok((lse - diag)?.mean_all()?)
}

impl Matcher {
    pub fn new(p: &mut Params, cfg: &MatcherConfig, rng: &mut Rng, dev: &Device) -> Result<Self> {
        let text = TextEncoder::new(p, "text", &cfg.text, rng, dev)?;
        let mut image = Stack::new("image", cfg.dim(), dev);
        image.dense(p, "fc1", cfg.hidden, true, Init::Default, rng)?;
        image.dense(p, "fc2", cfg.text.dim, false, Init::Default, rng)?;
        Ok(Self { cfg: cfg.clone(), text, image, dev: dev.clone() })
    }

    /// θ(v) of images `[n, D]` in [0, 1], unit length.
    pub fn embed_images(&self, x: &Tensor) -> Result<Tensor> {
        unit_rows(&self.image.forward(x, true)?)
    }

    /// φ(t) of captions, unit length.
    pub fn embed_captions(&self, captions: &[String]) -> Result<Tensor> {
        unit_rows(&self.text.embed(captions)?)
    }

    /// The compatibility cos(θ(v_i), φ(t_j)) of every image with every caption, `[n, m]`.
    pub fn scores(&self, x: &Tensor, captions: &[String]) -> Result<Tensor> {
        let v = self.embed_images(x)?;
        let t = self.embed_captions(captions)?;
        Ok(v.matmul(&t.t()?)?)
    }

    /// (images, word ids) of a batch row.
    fn split(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let (d, l) = (self.cfg.dim(), self.cfg.text.vocab.max_words);
        if x.dim(1)? != d + l {
            return Err(Error::Shape(format!(
                "text-matcher: batch rows of {} values, expected an image and {l} word ids",
                x.dim(1)?
            )));
        }
        Ok((x.narrow(1, 0, d)?, x.narrow(1, d, l)?))
    }
}

impl Objective for Matcher {
    fn loss(&self, x: &Tensor, _rng: &mut Rng) -> Result<Losses> {
        let (img, ids) = self.split(x)?;
        let v = unit_rows(&self.image.forward(&img, true)?)?;
        let t = unit_rows(&self.text.forward(&ids)?)?;
        let logits = (v.matmul(&t.t()?)? / self.cfg.temperature)?;
        let i2t = diagonal_nll(&logits)?;
        let t2i = diagonal_nll(&logits.t()?.contiguous()?)?;
        let total = ((&i2t + &t2i)? * 0.5)?;
        // The share of images whose own caption scores highest in the batch.
        let hits = logits.argmax(1)?.to_vec1::<u32>()?;
        let acc = hits.iter().enumerate().filter(|(i, &j)| *i as u32 == j).count() as f32
            / hits.len().max(1) as f32;
        let acc = Tensor::new(acc, &self.dev)?;
        Ok(Losses {
            total,
            parts: vec![("image_to_text", i2t), ("text_to_image", t2i), ("batch_top1", acc)],
        })
    }

    fn vocab(&self) -> Option<&Vocab> {
        Some(&self.cfg.text.vocab)
    }
}

/// The encoder's widths for a vocabulary.
pub fn text_config(vocab: Vocab) -> TextEncoderConfig {
    TextEncoderConfig { vocab, words: 32, channels: 128, dim: 64 }
}

/// The data's captions, or one line saying how to give them.
pub fn captions_of<'a>(
    data: &'a Dataset,
    model: &str,
) -> Result<&'a crate::data::captions::Captions> {
    data.captions.as_ref().ok_or_else(|| {
        Error::config(format!(
            "{}: the {model} needs captions (SPEC+captions for the embedded digits, captions.txt \
            beside a PNG folder, PREFIX-captions.txt beside an IDX set)",
            data.source
        ))
    })
}

impl Family for MatcherConfig {
    const MODELS: &'static [ModelInfo] = &[ModelInfo {
        name: "text-matcher",
        summary: "image-text matcher (Reed et al. 2016's joint embedding): the text encoder of \
            text-gan and the judge of its R-precision (not generative; needs captions)",
        density: Density::None,
        training: Training::Likelihood,
        sampler: false,
        completion: false,
        encoder: false,
        features: None,
        labels: Labels::Unused,
        scores: &[],
        data: "images with captions: mnist+captions, or captions.txt beside a PNG folder",
        flags: &["hidden"],
    }];

    fn preset(_name: &str, shape: &[usize], _unit_data: bool) -> Result<Self> {
        let vocab = Vocab { words: vec![], max_words: 1 };
        Ok(Self { shape: shape.to_vec(), text: text_config(vocab), hidden: 256, temperature: 0.1 })
    }

    /// Adam 1e-3, batch 100 (the candidates of R-precision), 1500 steps, cosine decay.
    fn recipe(_name: &str, _shape: &[usize]) -> TrainConfig {
        TrainConfig {
            steps: 1500,
            batch_size: 100,
            lr: 1e-3,
            schedule: Schedule::Cosine,
            ..TrainConfig::default()
        }
    }

    fn name(&self) -> &'static str {
        "text-matcher"
    }

    fn dim(&self) -> usize {
        MatcherConfig::dim(self)
    }

    fn needs(&self) -> Needs {
        Needs { binary: false, grey_levels: false }
    }

    /// The vocabulary is the training captions' words.
    fn configure(&mut self, flags: &ModelFlags, data: &Dataset, _seed: u64) -> Result<()> {
        let c = captions_of(data, "text-matcher")?;
        self.text.vocab = Vocab::build(c, &data.source)?;
        if let Some(h) = &flags.hidden {
            self.hidden = width("--hidden", h)?;
        }
        Ok(())
    }

    fn build(&self, p: &mut Params, rng: &mut Rng, dev: &Device) -> Result<Box<dyn Net>> {
        Ok(Box::new(Matcher::new(p, self, rng, dev)?))
    }
}

net!(Matcher {
    density: no,
    sampler: no,
    sequential: no,
    encoder: no,
    features: no,
    objective: yes,
    adversarial: no,
    translator: no,
});
