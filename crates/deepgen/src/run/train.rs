//! The training workflow of `deepgen train`, as a library call: make (or
//! reopen, with `--resume`) the run directory, train with the trainer the
//! model's family names, then leave the pictures a newcomer can open and
//! return what to print.
//!
//! Among data-parallel ranks ([`train_with`]) every rank reads the data and builds (or loads) the
//! model; rank 0 alone makes or cuts the run directory, holds its lock, writes checkpoints,
//! metrics and pictures, and returns lines to print. Each stage that can fail ends in a vote, so
//! that one rank's error stops every rank instead of leaving them waiting in a collective.

use std::path::PathBuf;

use candle_core::Device;

use super::config::{free_run_dir, new_run_config, positive};
use super::options::TrainOptions;
use super::{artifacts, examples, hooks, transform, RunConfig, RunDir, RunLock, Watch};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::eval::modes::DEFAULT_MIN_SHARE;
use crate::models::{Density, Gan, Labels, Model, Training, Vae};
use crate::parallel::Parallel;
use crate::rng;
use crate::train::{AdversarialTrainer, LikelihoodTrainer};

/// What a finished training run reports.
pub struct TrainSummary {
    pub dir: PathBuf,
    /// The lines `deepgen train` prints on stdout: held-out scores, what it wrote.
    pub lines: Vec<String>,
}

/// The device named by `--device`: `cpu`, or `cuda` / `cuda:N` (the N-th GPU) in a build with
/// the `cuda` feature.
pub fn device(name: Option<&str>) -> Result<Device> {
    match name.unwrap_or("cpu") {
        "cpu" => Ok(Device::Cpu),
        "cuda" => cuda_device(0),
        other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(n)) => cuda_device(n),
            _ => Err(Error::config(format!(
                "--device: unknown device `{other}` (expected cpu, cuda or cuda:N)"
            ))),
        },
    }
}

#[cfg(feature = "cuda")]
fn cuda_device(n: usize) -> Result<Device> {
    use candle_core::cuda_backend::cudarc::{cublas, curand, driver, nvrtc};
    // The libraries cudarc opens by name (NVRTC compiles deepgen's own kernels): a missing one
    // is named here, before anything would panic for it.
    // SAFETY: each check only tries to dlopen the library's usual file names.
    let found = unsafe {
        [
            ("the CUDA driver (libcuda)", driver::sys::is_culib_present()),
            ("cuBLAS (libcublas)", cublas::sys::is_culib_present()),
            ("cuRAND (libcurand)", curand::sys::is_culib_present()),
            ("NVRTC (libnvrtc)", nvrtc::sys::is_culib_present()),
        ]
    };
    if let Some((what, _)) = found.iter().find(|(_, ok)| !ok) {
        return Err(Error::config(format!(
            "--device cuda:{n}: {what} is not on this machine's library path (LD_LIBRARY_PATH); \
            use --device cpu"
        )));
    }
    // cudarc loads libcuda and the CUDA libraries with dlopen on first use, and panics when one
    // is missing: that panic is caught here (with the panic hook quiet meanwhile, so that it does
    // not print an internal error) and said in one line.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let made = std::panic::catch_unwind(|| Device::new_cuda(n));
    std::panic::set_hook(hook);
    match made {
        Ok(Ok(dev)) => Ok(dev),
        Ok(Err(e)) => Err(Error::config(format!(
            "--device cuda:{n}: cannot use the GPU: {}",
            e.to_string().lines().next().unwrap_or("unknown CUDA error")
        ))),
        Err(panic) => {
            let why = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("the CUDA libraries could not be loaded");
            // cudarc's message goes on to list every file name it tried.
            let why = why.split(" - searched").next().unwrap_or(why);
            Err(Error::config(format!(
                "--device cuda:{n}: no usable CUDA driver or library on this machine ({why}); \
                use --device cpu"
            )))
        }
    }
}

#[cfg(not(feature = "cuda"))]
fn cuda_device(_: usize) -> Result<Device> {
    Err(Error::config(
        "--device cuda: this build has no CUDA support (build it with scripts/build-cuda.sh); use \
        --device cpu",
    ))
}

/// A host copy of a model trained on another device, for the pictures and scores after training:
/// they are a few batches, and their code makes its inputs on the CPU. None for a CPU model.
fn on_host(model: &Model) -> Result<Option<Model>> {
    let dev = model.device();
    Ok(if dev.is_cpu() { None } else { Some(model.to_device(&Device::Cpu)?) })
}

/// A run to train: its directory, config, model and the step it starts at. Nothing on disk has
/// changed yet: [`Prepared::accept`] makes the directory (or cuts a resumed run's metrics back to
/// its checkpoint) once the data, the model and the optimizer state have all been accepted.
struct Prepared {
    dir: RunDir,
    cfg: RunConfig,
    model: Model,
    start: usize,
    /// A resumed run: the metrics bytes its checkpoint keeps.
    resumed: Option<Vec<u8>>,
    /// Held from acceptance to the end of training.
    lock: Option<RunLock>,
    /// A new run whose directory this call made (removed if it fails before any checkpoint).
    made_dir: bool,
}

impl Prepared {
    fn accept(&mut self) -> Result<()> {
        match &self.resumed {
            Some(metrics) => {
                self.dir.accept_resume(metrics, self.start)?;
                self.dir.write_config(&self.cfg)?;
            }
            None => {
                self.made_dir = !self.dir.path.exists();
                std::fs::create_dir_all(&self.dir.path)
                    .map_err(|e| Error::io(&self.dir.path, e))?;
                let lock = self.dir.lock()?;
                // Checked again under the lock: another run may have finished there meanwhile.
                check_out(&self.dir.path)?;
                self.lock = Some(lock);
                let _ = std::fs::remove_file(self.dir.file("metrics.jsonl"));
                self.dir.write_config(&self.cfg)?;
            }
        }
        Ok(())
    }

    /// After a new run failed before its first checkpoint: removes what it wrote.
    fn clean_up_failed(&self) {
        // Without the lock this call wrote nothing (another process may be training there).
        let ours = self.lock.is_some() && self.resumed.is_none();
        if !ours || self.dir.file("model.safetensors").exists() {
            return;
        }
        if self.made_dir {
            let _ = std::fs::remove_dir_all(&self.dir.path);
        } else {
            for f in ["config.toml", "metrics.jsonl", ".lock"] {
                let _ = std::fs::remove_file(self.dir.file(f));
            }
        }
    }
}

fn resume(o: &TrainOptions, path: &std::path::Path, dev: &Device, root: bool) -> Result<Prepared> {
    o.check_resume()?;
    let dir = RunDir::open(path)?;
    // Only rank 0 writes, so only it locks; the others read what it will continue.
    let lock = if root { Some(dir.lock()?) } else { None };
    let mut cfg = dir.read_config()?;
    if let Some(m) = &o.model {
        if m != cfg.model.name() {
            let msg = format!(
                "{}: holds a {} run, not {m} (a checkpoint of another model)",
                path.display(),
                cfg.model.name()
            );
            return Err(Error::config(msg));
        }
    }
    if let Some(s) = o.run.steps {
        cfg.train.steps = positive("--steps", s)?;
    }
    if let Some(s) = o.run.shards {
        cfg.train.shards = positive("--shards", s)?;
    }
    let info = dir.checkpoint_info()?;
    let (model, step) = dir.load_model(dev)?;
    super::check_agree(path, &cfg, &model)?;
    if step >= cfg.train.steps {
        let msg = format!(
            "{}: the run is already at step {step}; pass --steps larger than {step} to continue",
            path.display()
        );
        return Err(Error::config(msg));
    }
    let metrics = dir.metrics_to_keep(&info)?;
    Ok(Prepared { dir, cfg, model, start: step, resumed: Some(metrics), lock, made_dir: false })
}

/// Refuses an `--out` that holds anything but a deepgen run without a checkpoint (which a new run
/// may replace: it has nothing to resume).
fn check_out(path: &std::path::Path) -> Result<()> {
    let flag = format!("--out {}", path.display());
    if path.join("model.safetensors").exists() {
        let msg = format!(
            "{}: already holds a run; continue it with --resume {} or choose another --out",
            path.display(),
            path.display()
        );
        return Err(Error::config(msg));
    }
    if path.exists() && !path.is_dir() {
        return Err(Error::config(format!("{flag}: is a file, not a directory")));
    }
    let Ok(rd) = std::fs::read_dir(path) else { return Ok(()) };
    // A lock and the temporary files of a killed write are ours whatever else is there.
    let names: Vec<String> = rd
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into())
        .filter(|n: &String| n != ".lock" && !n.contains(".tmp-"))
        .collect();
    let ours = |n: &str| matches!(n, "config.toml" | "metrics.jsonl");
    let run_without_checkpoint = RunDir { path: path.to_path_buf() }.read_config().is_ok();
    if names.iter().any(|n| !ours(n)) || (!names.is_empty() && !run_without_checkpoint) {
        return Err(Error::config(format!(
            "{flag}: the directory is not empty and holds no deepgen run; choose a new or empty \
            directory"
        )));
    }
    Ok(())
}

fn create(o: &TrainOptions, dev: &Device, par: &Parallel) -> Result<Prepared> {
    let mut cfg = new_run_config(o)?;
    // One shard per rank unless the flag (or a --config file) chose a number.
    if o.run.shards.is_none() && cfg.train.shards == 1 {
        cfg.train.shards = par.size();
    }
    let path = o.run.out.clone().unwrap_or_else(|| free_run_dir(cfg.model.name()));
    if par.is_root() {
        check_out(&path)?;
    }
    let model = Model::new(&cfg.model, cfg.seed, dev)?;
    super::pretrained::attach(&model, &o.model_flags)?;
    let dir = RunDir { path };
    Ok(Prepared { dir, cfg, model, start: 0, resumed: None, lock: None, made_dir: false })
}

/// Trains a new run (or continues one with `--resume`) and leaves its pictures.
/// Nothing is written until the data, the model and (on resume) the optimizer state are accepted;
/// a new run that fails before its first checkpoint leaves nothing behind.
pub fn train(o: &TrainOptions, watch: &mut dyn Watch) -> Result<TrainSummary> {
    train_with(o, watch, &Parallel::local())
}

/// The data of a run: training set, validation set with its log-determinant, second domain.
type RunData = (Dataset, Option<(Dataset, f64)>, Option<Dataset>);

fn load_data(p: &Prepared) -> Result<RunData> {
    let (train_data, _) = transform::load_transformed(&p.cfg.data.train, &p.cfg, true)?;
    p.model.check_dim(train_data.dim(), &train_data.source)?;
    let val = match &p.cfg.data.val {
        Some(v) => Some(transform::load_transformed(v, &p.cfg, false)?),
        None => None,
    };
    let train_b = match &p.cfg.data.train_b {
        Some(b) => Some(transform::load_transformed(b, &p.cfg, true)?.0),
        None => None,
    };
    Ok((train_data, val, train_b))
}

/// `res` when every rank of `par` got its stage through; otherwise this rank's own error, or,
/// on a rank whose stage went well, an error naming the ranks that failed.
fn agreed<T>(par: &Parallel, res: Result<T>) -> Result<T> {
    let failed = par.failed_ranks(res.is_err())?;
    match res {
        Err(e) => Err(e),
        Ok(_) if !failed.is_empty() => {
            let who: Vec<String> = failed.iter().map(|r| r.to_string()).collect();
            Err(Error::Ranks(format!(
                "rank {} of {} failed before training (its error is above); no rank trained",
                who.join(", "),
                par.size()
            )))
        }
        Ok(t) => Ok(t),
    }
}

/// [`train`] as one of the data-parallel ranks of `par`: every rank calls it alike.
pub fn train_with(o: &TrainOptions, watch: &mut dyn Watch, par: &Parallel) -> Result<TrainSummary> {
    let ready = (|| {
        let dev = device(o.run.device.as_deref())?;
        let p = match &o.run.resume {
            Some(path) => resume(o, path, &dev, par.is_root())?,
            None => create(o, &dev, par)?,
        };
        par.check_shards(p.cfg.train.shards)?;
        let data = load_data(&p)?;
        Ok((p, data))
    })();
    let (mut p, (train_data, val, train_b)) = agreed(par, ready)?;
    for d in std::iter::once(&train_data).chain(val.as_ref().map(|v| &v.0)).chain(train_b.as_ref())
    {
        for n in &d.notes {
            watch.note(&format!("{}: {n}", d.source));
        }
    }
    let res = match p.model.info().training {
        Training::Adversarial => {
            let val = val.as_ref().map(|v| &v.0);
            train_adversarial(&mut p, &train_data, train_b, val, watch, par)
        }
        Training::Likelihood => train_likelihood(&mut p, &train_data, val.as_ref(), watch, par),
    };
    match res {
        Ok(lines) => Ok(TrainSummary { dir: p.dir.path.clone(), lines }),
        Err(Error::Interrupted { step, .. }) => {
            Err(Error::Interrupted { step, dir: Some(p.dir.path.clone()) })
        }
        Err(e) => {
            p.clean_up_failed();
            Err(e)
        }
    }
}

fn finish_line(p: &Prepared, secs: f64, precision: usize, par: &Parallel) -> String {
    let steps = p.cfg.train.steps - p.start;
    let rate = steps as f64 / secs.max(1e-9);
    let ranks = if par.size() > 1 {
        let (comm, _, calls) = par.comm_totals();
        let per = |s: f64| s * 1e3 / calls.max(1) as f64;
        format!(
            " on {} ranks (gradient all-reduce {:.2} ms per update, packing {:.2} ms; parameters \
            identical on every rank at each checkpoint)",
            par.size(),
            per(comm),
            per(par.packing_secs())
        )
    } else {
        String::new()
    };
    format!(
        "trained {steps} steps in {secs:.1} s ({rate:.precision$} steps/s){ranks}; checkpoint in \
        {}",
        p.dir.path.display()
    )
}

/// What a start line says about shards and ranks ("" for one shard in one process).
fn shards_text(p: &Prepared, par: &Parallel) -> String {
    let s = p.cfg.train.shards;
    if s == 1 && par.size() == 1 {
        return String::new();
    }
    format!(
        ", {s} shards of {} ({} per step) on {} rank(s) over {}",
        p.cfg.train.batch_size,
        s * p.cfg.train.batch_size,
        par.size(),
        par.communicator().describe()
    )
}

/// Makes a stage's hooks: rank 0's write the run, the others' only pass a stop on.
fn run_hooks<'a>(
    p: &'a Prepared,
    watch: &'a mut dyn Watch,
    what: &'static str,
    adversarial: bool,
    par: &Parallel,
) -> Box<dyn crate::train::Hooks + Send + 'a> {
    if par.is_root() {
        Box::new(hooks::RunHooks::new(&p.dir, &p.cfg, p.start, watch, what, adversarial))
    } else {
        Box::new(hooks::Follower { watch })
    }
}

fn train_likelihood(
    p: &mut Prepared,
    train_data: &Dataset,
    val: Option<&(Dataset, f64)>,
    watch: &mut dyn Watch,
    par: &Parallel,
) -> Result<Vec<String>> {
    let ready = (|| {
        let (train, seed) = (p.cfg.train.clone(), p.cfg.seed);
        let mut trainer = LikelihoodTrainer::new(&p.model, train, seed, p.cfg.data.binarize)?
            .with_parallel(par.clone())?;
        if p.start > 0 {
            p.dir.load_optimizers(&mut [&mut trainer.opt], p.start)?;
        }
        if par.is_root() {
            p.accept()?;
        }
        Ok(trainer)
    })();
    let mut trainer = agreed(par, ready)?;
    let (dir, cfg, model) = (&p.dir, &p.cfg, &p.model);
    let line = format!(
        "{} {} ({} parameters) on {} ({} examples of {} values, binarize {:?}) for {} steps, \
            batch {}{}, lr {}, seed {} -> {}",
        if p.start > 0 { "resuming" } else { "training" },
        model.name(),
        model.trained_count(),
        train_data.source,
        train_data.n,
        train_data.dim(),
        cfg.data.binarize,
        cfg.train.steps,
        cfg.train.batch_size,
        shards_text(p, par),
        cfg.train.lr,
        cfg.seed,
        dir.path.display()
    );
    watch.start(&line, p.start, cfg.train.steps);
    let target = model.info().labels == Labels::Target;
    // A model without a density or labels to score (the text matcher) reports its own loss.
    let own_loss = !target && model.info().density == Density::None;
    let what = match (target, own_loss) {
        (true, _) => "validation -log p(y|x)",
        (_, true) => "validation loss",
        _ => "validation NLL",
    };
    let t0 = std::time::Instant::now();
    {
        let mut hooks = run_hooks(p, watch, what, false, par);
        trainer.fit(model, train_data, val.map(|v| &v.0), hooks.as_mut())?;
    }
    watch.finish(&finish_line(p, t0.elapsed().as_secs_f64(), 1, par));
    if !par.is_root() {
        return Ok(vec![]);
    }
    let host = on_host(model)?;
    let model = host.as_ref().unwrap_or(model);

    // Pictures a newcomer can open.
    let mut lines = vec![];
    let mut r = rng::derived(cfg.seed, "final-samples", 0);
    if target {
        artifacts::write_loss_plot(dir, model.name())?;
        if let Some((v, _)) = val {
            lines.push(crate::eval::features::accuracy_line(model, v)?);
        }
        lines.push(format!("run directory: {}", dir.path.display()));
        return Ok(lines);
    }
    if own_loss {
        artifacts::write_loss_plot(dir, model.name())?;
        if let (Some((v, _)), Some(m)) = (val, model.get::<crate::models::Matcher>()) {
            lines.push(crate::eval::captions::matcher_line(m, v, cfg.seed)?);
        }
        lines.push(format!("run directory: {}", dir.path.display()));
        return Ok(lines);
    }
    if train_data.is_image() || train_data.dim() == 2 {
        let mean = model.get::<Vae>().is_some();
        examples::write_samples(
            model,
            cfg,
            64,
            mean,
            &mut r,
            &dir.file("samples.png"),
            Some(train_data),
        )?;
        let recon_src = val.map(|v| &v.0).unwrap_or(train_data);
        artifacts::write_reconstructions(model, recon_src, 32, &dir.file("reconstructions.png"))?;
    } else {
        examples::write_samples(model, cfg, 64, false, &mut r, &dir.file("samples.csv"), None)?;
    }
    artifacts::write_loss_plot(dir, model.name())?;
    if let Some((v, log_det)) = val {
        let mut r = rng::derived(cfg.seed, "test-nll", 0);
        let rep = transform::score(model, v, *log_det, 256, &mut r)?;
        lines.push(transform::nll_line(model, &v.source, &rep, cfg));
    }
    lines.push(format!("run directory: {}", dir.path.display()));
    Ok(lines)
}

/// Training of the two-player models, then the pictures and the mode count that fit the model.
fn train_adversarial(
    p: &mut Prepared,
    train_data: &Dataset,
    train_b: Option<Dataset>,
    val: Option<&Dataset>,
    watch: &mut dyn Watch,
    par: &Parallel,
) -> Result<Vec<String>> {
    let ready = (|| {
        let (train, seed) = (p.cfg.train.clone(), p.cfg.seed);
        let mut trainer = AdversarialTrainer::new(&p.model, train, seed, p.cfg.data.binarize)?
            .with_parallel(par.clone())?;
        if let Some(b) = train_b {
            trainer = trainer.with_domain_b(b);
        }
        if p.start > 0 {
            p.dir.load_optimizers(&mut [&mut trainer.g_opt, &mut trainer.d_opt], p.start)?;
            trainer.set_step(p.start);
        }
        if par.is_root() {
            p.accept()?;
        }
        Ok(trainer)
    })();
    let mut trainer = agreed(par, ready)?;
    let (dir, cfg, model) = (&p.dir, &p.cfg, &p.model);
    let line = adversarial_start_line(p, &trainer, train_data, par);
    watch.start(&line, p.start, cfg.train.steps);
    let t0 = std::time::Instant::now();
    {
        let mut hooks = run_hooks(p, watch, "validation NLL", true, par);
        trainer.fit(model, train_data, hooks.as_mut())?;
    }
    watch.finish(&finish_line(p, t0.elapsed().as_secs_f64(), 2, par));
    if !par.is_root() {
        return Ok(vec![]);
    }
    let host = on_host(model)?;
    let model = host.as_ref().unwrap_or(model);

    let mut lines = vec![];
    let mut r = rng::derived(cfg.seed, "final-samples", 0);
    let mut wrote: Vec<PathBuf> = vec![];
    let conditional = model.get::<Gan>().filter(|g| g.cfg.classes > 0);
    if model.get::<crate::models::progan::ProGan>().is_some() {
        super::growth::snapshot(dir, model, cfg.seed)?;
        wrote.push(dir.file("growth.png"));
    }
    if model.as_translator().is_some() {
        wrote.extend(super::translate::write_previews(model, cfg, &dir.path)?);
    } else if model.get::<crate::models::PuzzleGan>().is_some() {
        // Wholes from patches of held-out images (the training ones without held-out data).
        let from = val.unwrap_or(train_data);
        super::assemble::from_data(model, cfg, from, 8, cfg.seed, &dir.file("assembly.png"))?;
        wrote.push(dir.file("assembly.png"));
    } else if let (Some(g), true) = (conditional, train_data.is_image()) {
        // One row per class: `classes` rows of `classes` samples make a square grid.
        let rows = artifacts::class_rows(model, g.cfg.classes, &mut r)?;
        examples::write_examples(model, cfg, &rows, &dir.file("samples.png"), None)?;
        wrote.push(dir.file("samples.png"));
    } else if train_data.is_image() || train_data.dim() == 2 {
        let n = if train_data.dim() == 2 { 2500 } else { 64 };
        examples::write_samples(
            model,
            cfg,
            n,
            false,
            &mut r,
            &dir.file("samples.png"),
            Some(train_data),
        )?;
        wrote.push(dir.file("samples.png"));
    } else {
        examples::write_samples(model, cfg, 64, false, &mut r, &dir.file("samples.csv"), None)?;
        wrote.push(dir.file("samples.csv"));
    }
    wrote.extend(artifacts::write_info_grids(model, &mut r, &dir.path)?);
    let shown = val.unwrap_or(train_data);
    if artifacts::write_aae_reconstructions(model, shown, 32, &dir.file("reconstructions.png"))? {
        wrote.push(dir.file("reconstructions.png"));
    }
    if artifacts::write_latent_scatter(model, shown, 2000, &mut r, &dir.file("latent.png"))? {
        wrote.push(dir.file("latent.png"));
    }
    artifacts::write_adversarial_plot(dir, model.name())?;
    wrote.push(dir.file("loss.png"));
    if cfg.data.train.starts_with("toy:") {
        let mut r = rng::derived(cfg.seed, "eval", 0);
        let path = dir.file("modes.png");
        let rep = artifacts::mode_eval(model, cfg, 2500, DEFAULT_MIN_SHARE, &mut r, Some(&path))?;
        wrote.push(path);
        lines.push(artifacts::mode_line(&rep));
    }
    let names: Vec<String> = wrote
        .iter()
        .filter_map(|p| p.file_name().map(|f| f.to_string_lossy().to_string()))
        .collect();
    lines.push(format!("wrote {}", names.join(", ")));
    lines.push(format!("run directory: {}", dir.path.display()));
    Ok(lines)
}

fn adversarial_start_line(
    p: &Prepared,
    trainer: &AdversarialTrainer,
    train_data: &Dataset,
    par: &Parallel,
) -> String {
    let (dir, cfg, model) = (&p.dir, &p.cfg, &p.model);
    let adv = &trainer.adv;
    let gan = model.get::<Gan>();
    let loss = match (gan, model.get::<crate::models::Aae>()) {
        (None, Some(_)) => "non-saturating (codes vs prior)".into(),
        _ => model.as_adversarial().map(|g| g.loss().name()).unwrap_or_default(),
    };
    let second = trainer
        .domain_b()
        .map(|b| format!(" <-> {} ({} examples)", b.source, b.n))
        .unwrap_or_default();
    let unroll = if adv.unroll > 0 {
        let first = if adv.first_order { " (first order)" } else { "" };
        let one = if adv.unroll_same_batch { " (one batch)" } else { "" };
        format!(", unrolled K={}{first}{one}", adv.unroll)
    } else {
        String::new()
    };
    let ema = gan
        .filter(|g| g.cfg.ema > 0.0)
        .map(|g| format!(", generator weight average {}", g.cfg.ema));
    let uniform =
        gan.filter(|g| g.cfg.noise == crate::models::Noise::Uniform).map(|_| ", uniform noise");
    format!(
        "{} {} ({} parameters, {loss}) on {} ({} examples of {} values){second} for {} steps, \
            batch {}{}, \
            lr {} (critic {}{}), n_critic {}{}{}{unroll}{}{}, seed {} -> {}",
        if p.start > 0 { "resuming" } else { "training" },
        model.name(),
        model.trained_count(),
        train_data.source,
        train_data.n,
        train_data.dim(),
        cfg.train.steps,
        cfg.train.batch_size,
        shards_text(p, par),
        cfg.train.lr,
        adv.d_lr,
        adv.d_schedule.map(|s| format!(", {s:?} schedule").to_lowercase()).unwrap_or_default(),
        adv.n_critic,
        adv.clip.map(|c| format!(", clip {c}")).unwrap_or_default(),
        adv.gp.map(|c| format!(", gradient penalty {c}")).unwrap_or_default(),
        ema.unwrap_or_default(),
        uniform.unwrap_or_default(),
        cfg.seed,
        dir.path.display()
    )
}
