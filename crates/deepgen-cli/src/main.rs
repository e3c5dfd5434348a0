//! The `deepgen` command-line tool: parse, validate, call the library, print.
//! Every failure is one line on stderr and exit code 2.

mod cmd;
mod uses;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(name = "deepgen", version, about = "Train, sample and score deep generative models", propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per process
enum Command {
    /// Train a model (default: a VAE on the embedded MNIST digits) into a run directory.
    Train(TrainArgs),
    /// Draw samples from a trained run: a PNG grid, a 2-D scatter, CSV or NPY.
    Sample(SampleArgs),
    /// Score data under a trained run: log p(x) per example in nats and bits/dim.
    Score(ScoreArgs),
    /// Fill in the unknown part of examples by sampling it from an autoregressive run, in order.
    Complete(CompleteArgs),
    /// List every model with its capabilities, tensor names and parameter counts.
    Models(ModelsArgs),
    /// Show what a run directory holds: model, step, parameters, last metrics.
    Info(InfoArgs),
    /// Evaluate a run: every measurement that applies, written to RUN/report/report.md with its pictures.
    Eval(EvalArgs),
    /// Anomaly detection: AUROC/AUPRC of normal vs anomalous data and a threshold; or flag new data with a saved threshold.
    Detect(DetectArgs),
    /// Write learned features (encoder means, hidden layers, discriminator features) of a data set to .npy or .csv.
    Embed(EmbedArgs),
    /// Linear probe: logistic regression on a run's features vs on raw pixels, test accuracy.
    Probe(ProbeArgs),
    /// Latent interpolations (linear or spherical) for models with a latent space.
    Interpolate(InterpolateArgs),
    /// The digit classifier behind FID on MNIST, the Inception score and mode counts.
    Classifier {
        #[command(subcommand)]
        command: ClassifierCommand,
    },
}

#[derive(Subcommand)]
enum ClassifierCommand {
    /// Train a classifier p(y|x) on labelled data [default: mnist -> runs/classifier]; all `deepgen train` flags apply.
    Train(TrainArgs),
}

#[derive(Args)]
pub struct DetectArgs {
    /// Run directory.
    pub run: std::path::PathBuf,
    /// Normal data; split into a validation part (threshold) and a test part [default: the run's held-out data].
    #[arg(long)]
    pub data: Option<String>,
    /// Anomalous data, e.g. mnist:test+only=3, mnist:test+invert, png:DIR.
    #[arg(long)]
    pub anomalies: Option<String>,
    /// Score: nll, bpd, elbo, recon, disc, typicality or complexity [default: the model's first, see deepgen models].
    #[arg(long)]
    pub score: Option<String>,
    /// Flag --data with the threshold saved in a threshold.json (or a directory holding one) instead of measuring.
    #[arg(long)]
    pub threshold_from: Option<std::path::PathBuf>,
    /// Share of the normal data used to choose the threshold.
    #[arg(long, default_value_t = 0.5)]
    pub val_fraction: f64,
    /// False-positive rate the threshold is chosen for, on the validation part.
    #[arg(long, default_value_t = 0.05)]
    pub target_fpr: f64,
    /// Output directory [default: RUN/detect]; with --threshold-from, the CSV of flags [default: RUN/flags.csv].
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
    /// Seed for the split and stochastic scores [default: the run's seed].
    #[arg(long)]
    pub seed: Option<u64>,
}

#[derive(Args)]
pub struct EmbedArgs {
    /// Run directory.
    pub run: std::path::PathBuf,
    /// Data to embed [default: the run's held-out data].
    #[arg(long)]
    pub data: Option<String>,
    /// Output: .npy (labels, if any, beside it in FILE.labels.csv) or .csv (label in the last column).
    #[arg(long)]
    pub out: std::path::PathBuf,
}

#[derive(Args)]
pub struct ProbeArgs {
    /// Run directory.
    pub run: std::path::PathBuf,
    /// Labelled training data for the probe [default: the run's training data].
    #[arg(long)]
    pub train: Option<String>,
    /// Labelled test data [default: the run's held-out data].
    #[arg(long)]
    pub test: Option<String>,
    #[arg(long)]
    pub seed: Option<u64>,
}

#[derive(Args)]
pub struct InterpolateArgs {
    /// Run directory (vae, aae or a GAN).
    pub run: std::path::PathBuf,
    /// Examples whose codes are the ends (VAE, AAE) [default: the run's held-out data].
    #[arg(long)]
    pub data: Option<String>,
    /// Rows (pairs of ends).
    #[arg(long, default_value_t = 8, allow_negative_numbers = true)]
    pub pairs: i64,
    /// Columns (points along each path, ends included).
    #[arg(long, default_value_t = 10, allow_negative_numbers = true)]
    pub steps: i64,
    /// Spherical interpolation (slerp) instead of linear (clipped to [-1, 1] for GANs with uniform noise).
    #[arg(long)]
    pub slerp: bool,
    /// Output .png grid, or .csv/.npy [default: RUN/interpolation.png].
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
    #[arg(long)]
    pub seed: Option<u64>,
}

#[derive(Args)]
pub struct TrainArgs {
    /// Model to train: bernoulli, fvsbn, nade, made, rnade, pixelcnn, gated-pixelcnn, row-lstm, diagonal-bilstm, vae,
    /// gan, dcgan, cgan, infogan, fgan, wgan, wgan-gp, unrolled-gan or aae [default: vae].
    pub model: Option<String>,
    /// Training data: mnist, mnist:test, digits, idx:PREFIX, png:DIR, csv:FILE, npy:FILE, toy:ring8, toy:grid25 [default: mnist].
    #[arg(long)]
    pub data: Option<String>,
    /// Validation data for the periodic NLL [default: the held-out split of embedded and toy sets; none otherwise].
    #[arg(long)]
    pub val: Option<String>,
    /// A run config (TOML, e.g. another run's config.toml); flags given here override it.
    #[arg(long)]
    pub config: Option<std::path::PathBuf>,
    /// Total optimisation steps; with --resume, the new total [default: 4000 vae, 1000 gated-pixelcnn, row-lstm and diagonal-bilstm, 10000 GANs on 2-D toy data, 3000 aae, 2000 others].
    #[arg(long, allow_negative_numbers = true)]
    pub steps: Option<i64>,
    /// Examples per step [default: 64 for the image models (pixelcnn, gated-pixelcnn, row-lstm, diagonal-bilstm), 128 others].
    #[arg(long, allow_negative_numbers = true)]
    pub batch_size: Option<i64>,
    /// Learning rate (Adam) [default: 0.05 bernoulli, 0.01 fvsbn, 0.001 nade and vae].
    #[arg(long, allow_negative_numbers = true)]
    pub lr: Option<f64>,
    /// Learning-rate schedule: constant or cosine [default: cosine for GANs on 2-D toy data, constant otherwise].
    #[arg(long)]
    pub schedule: Option<String>,
    /// Linear warm-up steps.
    #[arg(long)]
    pub warmup: Option<usize>,
    /// Clip the global gradient norm to this value.
    #[arg(long, allow_negative_numbers = true)]
    pub grad_clip: Option<f64>,
    /// Decoupled weight decay (AdamW).
    #[arg(long, allow_negative_numbers = true)]
    pub weight_decay: Option<f64>,
    /// Validation NLL (on up to 500 held-out examples) and checkpoint every N steps [default: 500].
    #[arg(long, allow_negative_numbers = true)]
    pub eval_every: Option<i64>,
    /// Seed for every random draw (initialisation, shuffling, noise, binarization) [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Binarization of grey values: none, static, dynamic or threshold [default: static for models that need binary data].
    #[arg(long)]
    pub binarize: Option<String>,
    /// Standardise each feature with the training mean and std (for real-valued data).
    #[arg(long)]
    pub standardize: bool,
    /// Hidden units: NADE's and RNADE's H, or MADE's and the VAE's hidden widths as a comma list (e.g. 512,512).
    #[arg(long)]
    pub hidden: Option<String>,
    /// PixelCNN / PixelRNN feature maps per layer [default: 32; gated-pixelcnn 16].
    #[arg(long)]
    pub channels: Option<usize>,
    /// PixelCNN residual blocks or gated layers [default: 5]; PixelRNN LSTM layers [default: 2].
    #[arg(long)]
    pub layers: Option<usize>,
    /// PixelCNN / PixelRNN output per pixel: bernoulli (binary images) or softmax (256 grey levels) [default: bernoulli].
    #[arg(long)]
    pub output: Option<String>,
    /// RNADE mixture components per conditional [default: 5].
    #[arg(long)]
    pub components: Option<usize>,
    /// MADE: masks averaged at test time [default: 1; more need an agnostic training flag].
    #[arg(long)]
    pub masks: Option<usize>,
    /// MADE: draw a new input ordering for every minibatch.
    #[arg(long)]
    pub order_agnostic: bool,
    /// MADE: draw new hidden-unit connectivity for every minibatch.
    #[arg(long)]
    pub connectivity_agnostic: bool,
    /// Latent dimension: VAE and AAE codes, GAN noise z.
    #[arg(long)]
    pub latent: Option<usize>,
    /// GANs: the objective: minimax, non-saturating, wasserstein, or an f-divergence (kl, reverse-kl, js, pearson, hellinger, gan).
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
    pub g_norm: bool,
    /// GANs: the distribution of the noise z, normal (N(0, I)) or uniform (U[-1, 1]) [default: normal].
    #[arg(long)]
    pub noise: Option<String>,
    /// GANs: PacGAN packing, the critic judges groups of M examples (all real or all generated) [default: 1].
    #[arg(long)]
    pub pack: Option<usize>,
    /// GANs: keep an exponential moving average of the generator's weights with decay BETA (e.g. 0.999); sampling, eval and reports use it [default: off].
    #[arg(long, allow_negative_numbers = true)]
    pub g_ema: Option<f64>,
    /// Adversarial models: the critic's learning rate [default: the variant's].
    #[arg(long, allow_negative_numbers = true)]
    pub d_lr: Option<f64>,
    /// Adversarial models: the critic's learning-rate schedule, constant or cosine [default: the generator's, --schedule].
    #[arg(long)]
    pub d_schedule: Option<String>,
    /// Adversarial models: critic updates per generator update [default: 5 for wgan and wgan-gp, 1 otherwise].
    #[arg(long, allow_negative_numbers = true)]
    pub n_critic: Option<i64>,
    /// WGAN: clip critic weights to [-C, C] after each update [default: 0.01 for wgan].
    #[arg(long, allow_negative_numbers = true)]
    pub clip: Option<f64>,
    /// Gradient-penalty weight lambda [default: 10 for wgan-gp].
    #[arg(long, allow_negative_numbers = true)]
    pub gp: Option<f64>,
    /// Unrolled GAN: critic steps K to differentiate through [default: 5 for unrolled-gan].
    #[arg(long)]
    pub unroll: Option<usize>,
    /// Unrolled GAN: treat the unrolled critic as a constant (no second-order terms), to compare.
    #[arg(long)]
    pub first_order: bool,
    /// Unrolled GAN: one real and one generated batch for all K look-ahead steps (Metz et al.'s reference code) instead of fresh batches.
    #[arg(long)]
    pub unroll_same_batch: bool,
    /// Adam beta1 (both players for adversarial models) [default: 0.5 for GANs, 0.9 otherwise].
    #[arg(long, allow_negative_numbers = true)]
    pub beta1: Option<f64>,
    /// Adam beta2.
    #[arg(long, allow_negative_numbers = true)]
    pub beta2: Option<f64>,
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
    /// AAE prior: gaussian, mixture10, swiss-roll, or a file of draws csv:FILE / npy:FILE [default: gaussian].
    #[arg(long)]
    pub prior: Option<String>,
    /// GAN players: mlp or dcgan [default: dcgan for dcgan, cgan, infogan, wgan and wgan-gp on images].
    #[arg(long)]
    pub arch: Option<String>,
    /// VAE importance samples k for log p(x).
    #[arg(long)]
    pub iw_samples: Option<usize>,
    /// Run directory to create [default: runs/MODEL, or runs/MODEL-2, ... if taken].
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
    /// Continue the run in this directory exactly where its last checkpoint stopped.
    #[arg(long)]
    pub resume: Option<std::path::PathBuf>,
    /// Device: cpu (cuda needs a build with the cuda feature).
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

#[derive(Args)]
pub struct SampleArgs {
    /// Run directory.
    pub run: std::path::PathBuf,
    /// Number of samples.
    #[arg(short = 'n', long = "num", default_value_t = 64, allow_negative_numbers = true)]
    pub n: i64,
    /// Output file: .png (grid or scatter), .csv or .npy [default: RUN/samples.png].
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
    /// Seed for the draws [default: the run's seed].
    #[arg(long)]
    pub seed: Option<u64>,
    /// For latent-variable models: show the decoder mean instead of a draw from p(x|z).
    #[arg(long)]
    pub mean: bool,
    /// Conditional GANs: draw every sample of this class.
    #[arg(long)]
    pub class: Option<u32>,
}

#[derive(Args)]
pub struct EvalArgs {
    /// Run directory.
    pub run: std::path::PathBuf,
    /// Classifier run for FID on MNIST, Inception score and class coverage [default: runs/classifier if present].
    #[arg(long)]
    pub classifier: Option<std::path::PathBuf>,
    /// Samples drawn for mode coverage and the sample-quality metrics.
    #[arg(short = 'n', long = "num", default_value_t = 2500, allow_negative_numbers = true)]
    pub n: i64,
    /// Share of samples a mode needs within 3 sigma to count as covered [default: 0.008, i.e. 20 of 2,500].
    #[arg(long)]
    pub min_share: Option<f64>,
    /// Seed for the draws [default: the run's seed].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Directory for report.md and its pictures [default: RUN/report].
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
    /// GANs trained with --g-ema: evaluate the live generator instead of its weight average.
    #[arg(long)]
    pub live_generator: bool,
    /// Only these report sections, comma-separated: classification, density, samples, modes, quality, codes, anomaly, probe, latent
    /// (e.g. `--only modes` for a quick mode count on a toy run) [default: every section that applies].
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
}

#[derive(Args)]
pub struct ScoreArgs {
    /// Run directory.
    pub run: std::path::PathBuf,
    /// Data to score (the run's transforms are applied).
    #[arg(long)]
    pub data: String,
    /// Per-example CSV: index,log_prob_nats,bits_per_dim.
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
    #[arg(long, default_value_t = 256, allow_negative_numbers = true)]
    pub batch_size: i64,
    /// VAE: importance samples k [default: the run's].
    #[arg(long)]
    pub iw_samples: Option<usize>,
    /// Seed for static binarization and importance sampling [default: the run's seed].
    #[arg(long)]
    pub seed: Option<u64>,
}

#[derive(Args)]
pub struct CompleteArgs {
    /// Run directory of an autoregressive model.
    pub run: std::path::PathBuf,
    /// Examples to complete (the run's transforms are applied) [default: the run's validation data].
    #[arg(long)]
    pub data: Option<String>,
    /// What stays known: top-half, left-half, bottom-half, right-half, or a PNG mask the size of one image (white = known).
    #[arg(long, default_value = "top-half")]
    pub keep: String,
    /// Examples to take from the data (the first N).
    #[arg(short = 'n', long = "num", default_value_t = 8, allow_negative_numbers = true)]
    pub n: i64,
    /// Completions per example.
    #[arg(long, default_value_t = 4, allow_negative_numbers = true)]
    pub samples: i64,
    /// Output grid (PNG; each row: original, masked, completions) or .csv/.npy of the completions [default: RUN/completions.png].
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
    /// Seed for the draws [default: the run's seed].
    #[arg(long)]
    pub seed: Option<u64>,
}

#[derive(Args)]
pub struct ModelsArgs {
    /// Data dimension for the shapes and counts shown.
    #[arg(long, default_value_t = 784)]
    pub dim: usize,
}

#[derive(Args)]
pub struct InfoArgs {
    /// Run directory.
    pub run: std::path::PathBuf,
}

fn main() -> ExitCode {
    // Before anything runs a backward pass: candle reads this once per thread.
    deepgen::enable_second_order();
    deepgen::tune_allocator();
    deepgen::tune_thread_pools();
    std::panic::set_hook(Box::new(|info| {
        let msg = info.payload().downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| info.payload().downcast_ref::<String>().cloned()).unwrap_or_default();
        let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        eprintln!("error: internal error{at}: {msg} (please report this)");
    }));
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) if matches!(e.kind(), clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion | clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand) => e.exit(),
        Err(e) => {
            // clap's message is several lines (problem, usage, hint); keep the problem's lines, joined.
            let text = e.to_string();
            let problem: Vec<&str> = text.lines().map(str::trim).take_while(|l| !l.is_empty()).collect();
            eprintln!("{} (see deepgen --help)", problem.join(" "));
            return ExitCode::from(2);
        }
    };
    let res = match cli.command {
        Command::Train(a) => cmd::train(a),
        Command::Sample(a) => cmd::sample(a),
        Command::Score(a) => cmd::score(a),
        Command::Complete(a) => cmd::complete(a),
        Command::Models(a) => cmd::models(a),
        Command::Info(a) => cmd::info(a),
        Command::Eval(a) => uses::eval(a),
        Command::Detect(a) => uses::detect(a),
        Command::Embed(a) => uses::embed(a),
        Command::Probe(a) => uses::probe(a),
        Command::Interpolate(a) => uses::interpolate(a),
        Command::Classifier { command: ClassifierCommand::Train(mut a) } => {
            match a.model.as_deref() {
                None | Some("classifier") => {}
                Some(m) => {
                    eprintln!("error: deepgen classifier train trains the classifier; `{m}` is a generative model (use deepgen train {m})");
                    return ExitCode::from(2);
                }
            }
            a.model = Some("classifier".into());
            if a.out.is_none() && a.resume.is_none() && !std::path::Path::new("runs/classifier/model.safetensors").exists() {
                a.out = Some("runs/classifier".into());
            }
            cmd::train(a)
        }
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let msg = format!("{e:#}").replace('\n', " ");
            eprintln!("error: {msg}");
            ExitCode::from(2)
        }
    }
}
