//! The model flags of `deepgen train`, declared once: clap reads them from the
//! command line and serde from a program's TOML or JSON, into the same struct.
//! Which models take a flag is said by each model's
//! [`super::ModelInfo::flags`]; a flag given to a model that does not list it
//! is refused by name ([`super::family::refuse_flags_not_taken`]). A family
//! reads the flags it lists in [`super::Family::configure`].

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(default, deny_unknown_fields)]
pub struct ModelFlags {
    /// Hidden units: NADE's, RNADE's and the classifier's H, or a comma list of widths
    /// (MADE, VAE, AAE and GAN generators, e.g. 512,512).
    #[arg(long)]
    pub hidden: Option<String>,
    /// Feature maps per layer (PixelCNN, PixelRNN, DCGAN players, classifier).
    #[arg(long)]
    pub channels: Option<usize>,
    /// PixelCNN residual blocks or gated layers; PixelRNN LSTM layers; CycleGAN and StarGAN
    /// generator residual blocks.
    #[arg(long)]
    pub layers: Option<usize>,
    /// Output per pixel: bernoulli (binary images) or softmax (256 grey levels).
    #[arg(long)]
    pub output: Option<String>,
    /// RNADE mixture components per conditional.
    #[arg(long)]
    pub components: Option<usize>,
    /// MADE: masks averaged at test time (more than 1 needs an agnostic training flag).
    #[arg(long)]
    pub masks: Option<usize>,
    /// MADE: draw a new input ordering for every minibatch.
    #[arg(long)]
    #[serde(skip_serializing_if = "is_false")]
    pub order_agnostic: bool,
    /// MADE: draw new hidden-unit connectivity for every minibatch.
    #[arg(long)]
    #[serde(skip_serializing_if = "is_false")]
    pub connectivity_agnostic: bool,
    /// Latent dimension: VAE and AAE codes, GAN noise z.
    #[arg(long)]
    pub latent: Option<usize>,
    /// GANs: the objective: minimax, non-saturating, wasserstein, lsgan (least squares), or an
    /// f-divergence (kl, reverse-kl, js, pearson, hellinger, gan).
    #[arg(long)]
    pub loss: Option<String>,
    /// f-GAN: the divergence (kl, reverse-kl, js, pearson, hellinger, gan) [default: js].
    #[arg(long)]
    pub divergence: Option<String>,
    /// GAN / AAE discriminator hidden widths, a comma list (MLP players).
    #[arg(long)]
    pub d_hidden: Option<String>,
    /// GANs with MLP players: batch norm before each hidden ReLU of the generator.
    #[arg(long)]
    #[serde(skip_serializing_if = "is_false")]
    pub g_norm: bool,
    /// GANs: the distribution of the noise z, normal (N(0, I)) or uniform (U[-1, 1])
    /// [default: normal].
    #[arg(long)]
    pub noise: Option<String>,
    /// GANs: PacGAN packing, the critic judges groups of M examples (all real or all
    /// generated) [default: 1].
    #[arg(long)]
    pub pack: Option<usize>,
    /// GANs: keep an exponential moving average of the generator's weights with decay BETA
    /// (e.g. 0.999); sampling, eval and reports use it [default: off].
    #[arg(long, allow_negative_numbers = true)]
    pub g_ema: Option<f64>,
    /// Conditional GAN: number of classes [default: the data's largest label + 1].
    #[arg(long)]
    pub classes: Option<usize>,
    /// InfoGAN: categorical code size [default: 10].
    #[arg(long)]
    pub categorical: Option<usize>,
    /// InfoGAN: continuous codes [default: 2].
    #[arg(long)]
    pub continuous: Option<usize>,
    /// InfoGAN: weight of the mutual-information term [default: 1].
    #[arg(long, allow_negative_numbers = true)]
    pub info_weight: Option<f64>,
    /// AAE prior: gaussian, mixture10, swiss-roll, or a file of draws csv:FILE / npy:FILE
    /// [default: gaussian].
    #[arg(long)]
    pub prior: Option<String>,
    /// GAN players: mlp or dcgan [default: dcgan for dcgan, cgan, infogan, wgan and wgan-gp
    /// on images].
    #[arg(long)]
    pub arch: Option<String>,
    /// VAE importance samples k for log p(x).
    #[arg(long)]
    pub iw_samples: Option<usize>,
    /// CycleGAN: weight lambda of the cycle-consistency L1 terms [default: 10].
    #[arg(long, allow_negative_numbers = true)]
    pub cycle_weight: Option<f64>,
    /// CycleGAN: weight of the identity terms, as a multiple of the cycle weight; 0 turns them
    /// off [default: 0.5]. StarGAN: weight of |G(x, c) - x| on the input's own labels, not in
    /// the paper [default: 0].
    #[arg(long, allow_negative_numbers = true)]
    pub identity_weight: Option<f64>,
    /// CycleGAN: generated images kept for the critics; 0 shows them only the latest
    /// [default: 50].
    #[arg(long, allow_negative_numbers = true)]
    pub pool_size: Option<i64>,
    /// StarGAN: weight of the domain-classification terms [default: 1].
    #[arg(long, allow_negative_numbers = true)]
    pub cls_weight: Option<f64>,
    /// StarGAN: weight of the reconstruction L1 term [default: 10].
    #[arg(long, allow_negative_numbers = true)]
    pub rec_weight: Option<f64>,
    /// ProGAN: the resolution training starts at, a power of two [default: 4].
    #[arg(long)]
    pub start_res: Option<usize>,
    /// ProGAN: the resolution growth stops at, a power of two [default: the data's side, padded
    /// to a power of two].
    #[arg(long)]
    pub max_res: Option<usize>,
    /// ProGAN: images shown while each resolution stabilises [default: the recipe's images over
    /// the number of phases].
    #[arg(long)]
    pub stabilise_images: Option<u64>,
    /// ProGAN: images shown while each new resolution fades in; 0 grows at once [default: as
    /// --stabilise-images].
    #[arg(long)]
    pub fade_images: Option<u64>,
    /// ProGAN: examples per minibatch-standard-deviation group; the batch size must be a
    /// multiple [default: 4].
    #[arg(long)]
    pub group_size: Option<usize>,
    /// Text GAN: the text-matcher run whose text encoder embeds the captions (kept fixed while
    /// the GAN trains).
    #[arg(long, value_name = "RUN")]
    pub text_encoder: Option<String>,
    /// Text GAN: gan, cls (GAN-CLS's matching-aware critic), int (GAN-INT's interpolated
    /// captions) or int-cls [default: int-cls].
    #[arg(long)]
    pub text_variant: Option<String>,
    /// Puzzle GAN: key patches per image [default: 3].
    #[arg(long)]
    pub patches: Option<usize>,
    /// Puzzle GAN: the side of a key patch in pixels [default: 40 % of the image's side].
    #[arg(long)]
    pub patch_size: Option<usize>,
    /// Puzzle GAN: weight of the mask L1 term [default: 50].
    #[arg(long, allow_negative_numbers = true)]
    pub mask_weight: Option<f64>,
    /// Puzzle GAN: weight of the appearance L1 term (the generated image under its mask against
    /// the real one under the true mask) [default: 50].
    #[arg(long, allow_negative_numbers = true)]
    pub appearance_weight: Option<f64>,
    /// The text encoder's configuration, read from the `--text-encoder` run by the run layer
    /// before the model is configured (not a flag).
    #[arg(skip)]
    #[serde(skip)]
    pub text_encoder_config: Option<super::text_config::TextEncoderConfig>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The flags set in a flag struct: the fields serde writes that are neither
/// absent (`None`, skipped) nor `false`, as `--kebab-case` names. The struct's
/// own declaration is the only list of its flags.
pub fn given<T: Serialize>(flags: &T) -> Vec<String> {
    let Ok(serde_json::Value::Object(map)) = serde_json::to_value(flags) else {
        return vec![];
    };
    map.into_iter()
        .filter(|(_, v)| !v.is_null() && *v != serde_json::Value::Bool(false))
        .map(|(k, _)| format!("--{}", k.replace('_', "-")))
        .collect()
}
