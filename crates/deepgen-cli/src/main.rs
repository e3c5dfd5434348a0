//! The `deepgen` command-line tool: parse, validate, call the library, print.
//! Every failure is one line on stderr and exit code 2.

mod cmd;
mod uses;

use std::process::ExitCode;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use deepgen::run::detect::DetectOptions;
use deepgen::run::options::annotate;
use deepgen::run::TrainOptions;

#[derive(Parser)]
#[command(
    name = "deepgen",
    version,
    about = "Train, sample and score deep generative models",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per process
enum Command {
    /// Train a model (default: a VAE on the embedded MNIST digits) into a run directory.
    Train(TrainOptions),
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
    /// Evaluate a run: every measurement that applies, written to RUN/report/report.md with its
    /// pictures.
    Eval(EvalArgs),
    /// Anomaly detection: AUROC/AUPRC of normal vs anomalous data and a threshold; or flag new data
    /// with a saved threshold.
    Detect(DetectOptions),
    /// Write learned features (encoder means, hidden layers, discriminator features) of a data set
    /// to .npy or .csv.
    Embed(EmbedArgs),
    /// Linear probe: logistic regression on a run's features vs on raw pixels, test accuracy.
    Probe(ProbeArgs),
    /// Latent interpolations (linear or spherical) for models with a latent space.
    Interpolate(InterpolateArgs),
    /// Image-to-image translation with a CycleGAN or StarGAN run: a PNG grid (input,
    /// translation, reconstruction per row) or an NPY array of the translations.
    Translate(TranslateArgs),
    /// Part to whole with a puzzle-gan run: the whole image and the patches' mask from key
    /// patches (PNG files, or cut from a data set's images), as a PNG (patches, mask, whole per
    /// row) or an NPY array of the wholes.
    Assemble(AssembleArgs),
    /// Serve trained runs over HTTP: a JSON API (sample, score, encode, decode, interpolate,
    /// translate, complete) and a web page at `/`.
    Serve(deepgen_serve::ServeOptions),
    /// The digit classifier behind FID on MNIST, the Inception score and mode counts.
    Classifier {
        #[command(subcommand)]
        command: ClassifierCommand,
    },
}

#[derive(Subcommand)]
enum ClassifierCommand {
    /// Train a classifier p(y|x) on labelled data [default: mnist -> runs/classifier]; all
    /// `deepgen train` flags apply.
    Train(TrainOptions),
}

/// Where a command runs its model (and the classifiers or matcher it reads).
#[derive(Args)]
pub struct On {
    /// Device for the model: cpu, cuda or cuda:N (a build with the cuda feature) [default: cpu].
    #[arg(long)]
    pub device: Option<String>,
}

#[derive(Args)]
pub struct TranslateArgs {
    /// Run directory (a cyclegan or stargan run).
    pub run: std::path::PathBuf,
    /// Images to translate [default: the held-out set of the source domain].
    #[arg(long)]
    pub data: Option<String>,
    /// CycleGAN: translate B -> A (default A -> B).
    #[arg(long)]
    pub reverse: bool,
    /// StarGAN: target attributes, comma-separated (`thick,red`; `not-thick` or `thick=0`
    /// clears one); unnamed attributes keep the input's own [default for a PNG: one column per
    /// single-attribute change].
    #[arg(long)]
    pub to: Option<String>,
    /// Number of inputs.
    #[arg(short = 'n', long = "num", default_value_t = 8, allow_negative_numbers = true)]
    pub n: i64,
    /// Output: .png grid or .npy float32 [N, C, H, W] in [0, 1].
    #[arg(long)]
    pub out: std::path::PathBuf,
    #[command(flatten)]
    pub on: On,
}

#[derive(Args)]
pub struct EmbedArgs {
    /// Run directory.
    pub run: std::path::PathBuf,
    /// Data to embed [default: the run's held-out data].
    #[arg(long)]
    pub data: Option<String>,
    /// Output: .npy (labels, if any, beside it in FILE.labels.csv) or .csv (label in the last
    /// column).
    #[arg(long)]
    pub out: std::path::PathBuf,
    #[command(flatten)]
    pub on: On,
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
    #[command(flatten)]
    pub on: On,
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
    /// Spherical interpolation (slerp) instead of linear (clipped to [-1, 1] for GANs with uniform
    /// noise).
    #[arg(long)]
    pub slerp: bool,
    /// Output .png grid, or .csv/.npy [default: RUN/interpolation.png].
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// Text GANs: the two captions at the ends (`--text A --text B`); each row keeps one noise
    /// vector.
    #[arg(long)]
    pub text: Vec<String>,
    #[command(flatten)]
    pub on: On,
}

#[derive(Args)]
pub struct AssembleArgs {
    /// Run directory (puzzle-gan).
    pub run: std::path::PathBuf,
    /// The key patches, comma-separated PNG files (square, one size, at most the image's side).
    #[arg(long, value_delimiter = ',')]
    pub patches: Vec<std::path::PathBuf>,
    /// Cut the patches from this data set's first images instead [default: the run's held-out
    /// data].
    #[arg(long)]
    pub data: Option<String>,
    /// Wholes: one per image of --data, or draws of z for --patches.
    #[arg(short = 'n', long = "num", default_value_t = 8, allow_negative_numbers = true)]
    pub n: i64,
    /// Output .png (patches, mask, whole per row) or .npy/.csv (the wholes) [default:
    /// RUN/assembly.png].
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
    /// Seed for the patch places and z [default: the run's seed].
    #[arg(long)]
    pub seed: Option<u64>,
    #[command(flatten)]
    pub on: On,
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
    /// Text GANs: draw the samples for this caption (repeat for several: a grid row of -n
    /// samples per caption).
    #[arg(long)]
    pub text: Vec<String>,
    #[command(flatten)]
    pub on: On,
}

#[derive(Args)]
pub struct EvalArgs {
    /// Run directory.
    pub run: std::path::PathBuf,
    /// Classifier run for FID on MNIST, Inception score and class coverage [default:
    /// runs/classifier if present]; for a translation run, the classifiers of its domains and
    /// attributes, comma-separated (matched by the data they were trained on; classifier runs
    /// under runs/ are found too).
    #[arg(long, value_delimiter = ',')]
    pub classifier: Vec<std::path::PathBuf>,
    /// Samples drawn for mode coverage and the sample-quality metrics.
    #[arg(short = 'n', long = "num", default_value_t = 2500, allow_negative_numbers = true)]
    pub n: i64,
    /// Share of samples a mode needs within 3 sigma to count as covered [default: 0.008, i.e. 20 of
    /// 2,500].
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
    /// Text GANs: a text-matcher run trained apart from the GAN's own encoder, the judge of
    /// R-precision.
    #[arg(long, value_name = "RUN")]
    pub matcher: Option<std::path::PathBuf>,
    /// Only these report sections, comma-separated: classification, density, samples, modes,
    /// quality, swd, codes, anomaly, probe, latent, translation, text
    /// (e.g. `--only modes` for a quick mode count on a toy run) [default: every section that
    /// applies].
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    #[command(flatten)]
    pub on: On,
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
    #[arg(long, default_value_t = deepgen::run::SCORE_BATCH as i64, allow_negative_numbers = true)]
    pub batch_size: i64,
    /// VAE: importance samples k [default: the run's].
    #[arg(long)]
    pub iw_samples: Option<usize>,
    /// Seed for static binarization and importance sampling [default: the run's seed].
    #[arg(long)]
    pub seed: Option<u64>,
    #[command(flatten)]
    pub on: On,
}

#[derive(Args)]
pub struct CompleteArgs {
    /// Run directory of an autoregressive model.
    pub run: std::path::PathBuf,
    /// Examples to complete (the run's transforms are applied) [default: the run's validation
    /// data].
    #[arg(long)]
    pub data: Option<String>,
    /// What stays known: top-half, left-half, bottom-half, right-half, or a PNG mask the size of
    /// one image (white = known).
    #[arg(long, default_value = "top-half")]
    pub keep: String,
    /// Examples to take from the data (the first N).
    #[arg(short = 'n', long = "num", default_value_t = 8, allow_negative_numbers = true)]
    pub n: i64,
    /// Completions per example.
    #[arg(long, default_value_t = 4, allow_negative_numbers = true)]
    pub samples: i64,
    /// Output grid (PNG; each row: original, masked, completions) or .csv/.npy of the completions
    /// [default: RUN/completions.png].
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
    /// Seed for the draws [default: the run's seed].
    #[arg(long)]
    pub seed: Option<u64>,
    #[command(flatten)]
    pub on: On,
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
    // Under mpirun: each rank gets its share of the cores (before any thread starts).
    deepgen::parallel::share_cores();
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let at =
            info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        eprintln!("error: internal error{at}: {msg} (please report this)");
    }));
    // The train flags' help gets its per-model defaults from the library's recipes.
    let command = Cli::command()
        .mut_subcommand("train", annotate)
        .mut_subcommand("classifier", |c| c.mut_subcommand("train", annotate));
    let command = negative_numbers_reach_the_validator(command);
    let cli = match command.try_get_matches().and_then(|m| Cli::from_arg_matches(&m)) {
        Ok(c) => c,
        Err(e)
            if matches!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelp
                    | clap::error::ErrorKind::DisplayVersion
                    | clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) =>
        {
            e.exit()
        }
        Err(e) => {
            if let Some(line) = negative_value(&e) {
                eprintln!("error: {line}");
                return ExitCode::from(2);
            }
            // clap's message is several lines (problem, usage, hint); keep the problem's lines,
            // joined.
            let text = e.to_string();
            let problem: Vec<&str> =
                text.lines().map(str::trim).take_while(|l| !l.is_empty()).collect();
            eprintln!("{} (see deepgen --help)", problem.join(" "));
            return ExitCode::from(2);
        }
    };
    if !matches!(cli.command, Command::Serve(_)) {
        stdout_pipe_closes_quietly();
    }
    // Only training is data-parallel: N copies of another command would race for its outputs.
    let trains = matches!(cli.command, Command::Train(_) | Command::Classifier { .. });
    if let (false, Some((rank, size))) = (trains, deepgen::parallel::launched_rank()) {
        if size > 1 {
            if rank == 0 {
                print_error(&format!(
                    "started by an MPI launcher with {size} ranks: only `deepgen train` runs \
                    data-parallel; run this command without mpirun"
                ));
            }
            return ExitCode::from(2);
        }
    }
    let res = match cli.command {
        Command::Train(a) => cmd::train(a),
        Command::Sample(a) => cmd::sample(a),
        Command::Score(a) => cmd::score(a),
        Command::Complete(a) => cmd::complete(a),
        Command::Models(a) => cmd::models(a),
        Command::Info(a) => cmd::info(a),
        Command::Eval(a) => uses::eval(a),
        Command::Detect(a) => uses::detect(&a),
        Command::Embed(a) => uses::embed(a),
        Command::Probe(a) => uses::probe(a),
        Command::Interpolate(a) => uses::interpolate(a),
        Command::Translate(a) => uses::translate(a),
        Command::Assemble(a) => uses::assemble(a),
        Command::Serve(a) => uses::serve(a),
        Command::Classifier { command: ClassifierCommand::Train(a) } => cmd::train_classifier(a),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<cmd::Silent>().is_some() => {
            ExitCode::from(e.downcast_ref::<cmd::Silent>().map(|s| s.0).unwrap_or(2))
        }
        Err(e) => {
            let msg = format!("{e:#}").replace('\n', " ");
            print_error(&msg);
            ExitCode::from(e.downcast_ref::<cmd::Exit>().map(|x| x.0).unwrap_or(2))
        }
    }
}

/// `deepgen info RUN | head`: when the reader of stdout goes away, end as Unix tools do (by
/// SIGPIPE, silently) instead of panicking in `println!`. Rust ignores SIGPIPE so that a write to
/// a closed socket returns an error; the service keeps that (a client that hangs up must not end
/// the server), every other command restores the default.
fn stdout_pipe_closes_quietly() {
    #[cfg(unix)]
    // SAFETY: restores the default disposition of one signal, before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Prints `error: MSG` on stderr in one write: under `mpirun` the line then reaches the terminal
/// whole, not in the pieces `eprintln!` writes, between which the launcher's own lines land.
pub(crate) fn print_error(msg: &str) {
    use std::io::Write;
    let _ = std::io::stderr().write_all(format!("error: {msg}\n").as_bytes());
}

/// Every flag that takes a value accepts a leading `-` digit as its value, so that `--seed -1`
/// reaches the flag's parser (and [`negative_value`]) instead of reading as an unknown flag.
fn negative_numbers_reach_the_validator(c: clap::Command) -> clap::Command {
    c.mut_args(|a| if a.get_action().takes_values() { a.allow_negative_numbers(true) } else { a })
        .mut_subcommands(negative_numbers_reach_the_validator)
}

/// `--seed must be >= 0, got -1` for a negative value given to an unsigned flag.
fn negative_value(e: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue};
    if !matches!(e.kind(), clap::error::ErrorKind::ValueValidation) {
        return None;
    }
    let (Some(ContextValue::String(arg)), Some(ContextValue::String(v))) =
        (e.get(ContextKind::InvalidArg), e.get(ContextKind::InvalidValue))
    else {
        return None;
    };
    let negative = v.strip_prefix('-').is_some_and(|d| d.parse::<f64>().is_ok());
    let flag = arg.split_whitespace().next().unwrap_or(arg);
    negative.then(|| format!("{flag} must be >= 0, got {v}"))
}
