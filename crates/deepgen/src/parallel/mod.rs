//! Data-parallel training, as PyTorch's DistributedDataParallel does it (Li et al., "PyTorch
//! Distributed: Experiences on Accelerating Data Parallel Training", VLDB 2020): every rank holds
//! the whole model, trains on its own shard of each step's batch, and the gradients are averaged
//! by an all-reduce before every rank takes the same optimiser step.
//!
//! - [`Communicator`]: rank, size, sum all-reduce, broadcast, barrier. [`Local`] is the one
//!   process of the default build; [`mpi::Mpi`] (feature `distributed`) is MPI's world.
//! - [`Parallel`]: a communicator and the collective steps the trainers take with it: the start
//!   (parameters, buffers and optimiser moments broadcast from rank 0, after a check that every
//!   rank built the same model), the gradient sum over shards ([`GradSum`], flattened buckets),
//!   buffers after each step, the stop vote and the parameter check at checkpoints.
//!
//! Shards, not ranks, define the computation. A step's batch is `shards` x `--batch-size`
//! examples: a slice of the epoch's seeded permutation, cut into `shards` consecutive shards.
//! Shard j draws its noise from its own stream ([`crate::rng::shard`]: shard 0's is the
//! single-process stream, so one shard computes exactly what training did before). Rank r
//! computes the shards j with j mod size = r in turn, summing their gradients; the all-reduce
//! sums over ranks and the sum is divided by `shards`. So one process with `--shards 2` and two
//! ranks of one shard each compute the same step (up to the order of float sums), and a run
//! resumes on any number of ranks up to its shard count with the same trajectory.
//!
//! Batch norm: each shard normalises with its own batch statistics (DDP's default, not
//! SyncBatchNorm), and the running statistics (buffers, like every parameter no optimiser
//! trains) are rank 0's, broadcast after each step (DDP's `broadcast_buffers`).
//!
//! Not overlapped: candle's `backward()` returns every gradient at once, with no hook per
//! gradient as PyTorch's autograd has, so the all-reduce starts after the backward pass ends.
//!
//! NCCL (multi-GPU) is left ready, not written: a communicator over NCCL would implement the
//! same trait on device buffers (its unique id broadcast over MPI by
//! [`Communicator::broadcast_bytes`]);
//! [`GradSum`] is the only place that moves gradient bytes.

pub mod reduce;

#[cfg(feature = "distributed")]
pub mod mpi;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use candle_core::{Tensor, Var};

use crate::error::{Error, Result};
pub use reduce::GradSum;

/// The collective operations data-parallel training needs. Every rank calls them in the same
/// order; a call returns once every rank has made it.
pub trait Communicator: Send + Sync {
    /// This process's rank, 0-based.
    fn rank(&self) -> usize;
    /// The number of ranks.
    fn size(&self) -> usize;
    /// Sums `buf` over all ranks, in place.
    fn all_reduce_sum(&self, buf: &mut [f32]) -> Result<()>;
    /// Copies `root`'s `buf` into every rank's (all of the same length).
    fn broadcast(&self, buf: &mut [f32], root: usize) -> Result<()>;
    /// Copies `root`'s bytes to every rank (lengths may differ before the call).
    fn broadcast_bytes(&self, buf: &mut Vec<u8>, root: usize) -> Result<()>;
    /// Returns once every rank has called it.
    fn barrier(&self) -> Result<()>;
    /// Ends every rank of the job at once with exit status `code` (after a rank-local failure:
    /// the others would wait in a collective for ever).
    fn abort(&self, code: i32) -> !;
    /// What carries the messages ("one process", "MPI (Open MPI v4.1.4 ...)").
    fn describe(&self) -> String;
}

/// One process: every collective is the identity.
pub struct Local;

impl Communicator for Local {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn all_reduce_sum(&self, _buf: &mut [f32]) -> Result<()> {
        Ok(())
    }
    fn broadcast(&self, _buf: &mut [f32], _root: usize) -> Result<()> {
        Ok(())
    }
    fn broadcast_bytes(&self, _buf: &mut Vec<u8>, _root: usize) -> Result<()> {
        Ok(())
    }
    fn barrier(&self) -> Result<()> {
        Ok(())
    }
    fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }
    fn describe(&self) -> String {
        "one process".into()
    }
}

/// True when this process was started by an MPI launcher (`mpirun`, `mpiexec`, `srun --mpi`):
/// Open MPI, MPICH/Hydra and PMIx each set their own variables.
pub fn launched_by_mpi() -> bool {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS"]
        .iter()
        .any(|v| std::env::var_os(v).is_some())
}

/// (rank, ranks) as an MPI launcher set them for this process, before MPI starts (Open MPI's and
/// MPICH's variables); None without a launcher.
pub fn launched_rank() -> Option<(usize, usize)> {
    let var =
        |names: &[&str]| names.iter().find_map(|v| std::env::var(v).ok()?.parse::<usize>().ok());
    let size = var(&["OMPI_COMM_WORLD_SIZE", "PMI_SIZE"])?;
    Some((var(&["OMPI_COMM_WORLD_RANK", "PMI_RANK"]).unwrap_or(0), size))
}

/// The ranks the launcher says this machine runs, before MPI starts (Open MPI's and MPICH's
/// variables; 1 without a launcher).
pub fn local_ranks_from_env() -> usize {
    ["OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "PMI_LOCAL_SIZE"]
        .iter()
        .find_map(|v| std::env::var(v).ok()?.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1)
}

/// The ranks of this process's job, from initialisation to finalisation: MPI's when an MPI
/// launcher started it (and the build has the `distributed` feature), one process otherwise.
/// Keep it on the main thread until training ends, then drop it (MPI finalises there).
pub struct Launch {
    pub par: Parallel,
    #[cfg(feature = "distributed")]
    _session: Option<mpi::MpiSession>,
}

/// The job this process belongs to ([`Launch`]). Under `mpirun` without the `distributed`
/// feature, one line says how to build one that has it.
pub fn launch() -> Result<Launch> {
    if !launched_by_mpi() {
        return Ok(Launch::local());
    }
    #[cfg(feature = "distributed")]
    {
        let (session, comm) = mpi::init()?;
        Ok(Launch { par: Parallel::new(comm), _session: Some(session) })
    }
    #[cfg(not(feature = "distributed"))]
    {
        let size = ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE"]
            .iter()
            .find_map(|v| std::env::var(v).ok()?.parse::<usize>().ok())
            .unwrap_or(1);
        if size > 1 {
            return Err(Error::config(format!(
                "started by an MPI launcher with {size} ranks, but this deepgen was built without \
                MPI: build it with `cargo build --release --features distributed` (Open MPI or \
                MPICH and libclang installed)"
            )));
        }
        Ok(Launch::local())
    }
}

impl Launch {
    fn local() -> Self {
        Launch {
            par: Parallel::local(),
            #[cfg(feature = "distributed")]
            _session: None,
        }
    }
}

/// The environment variable candle and rayon read for their thread counts.
pub const THREADS_ENV: &str = "RAYON_NUM_THREADS";

/// Under an MPI launcher, gives each rank its share of this machine's cores (cores / local
/// ranks, at least 1) unless the user set `RAYON_NUM_THREADS`: two ranks of two threads on two
/// cores would spin against each other. Call it first thing in `main`, before any thread starts.
pub fn share_cores() {
    if !launched_by_mpi() || std::env::var_os(THREADS_ENV).is_some() {
        return;
    }
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let per = (cores / local_ranks_from_env()).max(1);
    // Safe in the 2021 edition; callers run this before spawning threads.
    std::env::set_var(THREADS_ENV, per.to_string());
}

/// Time and bytes spent in gradient all-reduces, for the metrics and the benchmark.
#[derive(Default)]
struct Stats {
    nanos: AtomicU64,
    /// Flattening gradients into the buffer and back out.
    packing: AtomicU64,
    bytes: AtomicU64,
    calls: AtomicU64,
}

/// A communicator and the collective steps of data-parallel training. Cheap to clone (shared).
#[derive(Clone)]
pub struct Parallel {
    comm: Arc<dyn Communicator>,
    stats: Arc<Stats>,
    /// Set while the ranks are in the training loop, where a rank that fails alone must end the
    /// job ([`Parallel::must_abort`]).
    training: Arc<AtomicBool>,
    /// Floats per all-reduce call (PyTorch DDP's default bucket: 25 MiB).
    pub bucket: usize,
}

impl Default for Parallel {
    fn default() -> Self {
        Self::local()
    }
}

impl std::fmt::Debug for Parallel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Parallel(rank {} of {})", self.rank(), self.size())
    }
}

/// DDP's default bucket size, in f32 values (25 MiB).
pub const DEFAULT_BUCKET: usize = 25 << 18;

impl Parallel {
    /// One process.
    pub fn local() -> Self {
        Self::new(Arc::new(Local))
    }

    pub fn new(comm: Arc<dyn Communicator>) -> Self {
        let (stats, training) = (Arc::new(Stats::default()), Arc::new(AtomicBool::new(false)));
        Self { comm, stats, training, bucket: DEFAULT_BUCKET }
    }

    pub fn rank(&self) -> usize {
        self.comm.rank()
    }

    pub fn size(&self) -> usize {
        self.comm.size()
    }

    /// Rank 0 writes the run directory, prints and draws; the others only compute.
    pub fn is_root(&self) -> bool {
        self.rank() == 0
    }

    pub fn communicator(&self) -> &dyn Communicator {
        self.comm.as_ref()
    }

    /// The shards of `shards` this rank computes: j with j mod size = rank.
    pub fn owned(&self, shards: usize) -> Vec<usize> {
        (self.rank()..shards).step_by(self.size()).collect()
    }

    /// Refuses a shard count that leaves a rank without work.
    pub fn check_shards(&self, shards: usize) -> Result<()> {
        if shards < self.size() {
            // The same on every rank: printed once, by rank 0.
            return Err(Error::Ranks(format!(
                "--shards {shards}: fewer shards than the {} ranks (each rank needs at least one \
                shard of the batch); pass --shards {} or more",
                self.size(),
                self.size()
            )));
        }
        Ok(())
    }

    /// The ranks whose `failed` is true, on every rank: the vote after each rank prepared its
    /// part (read the data, built the model, rank 0 made the run directory), so that one rank's
    /// failure stops all of them before any waits in a collective the failed one never reaches.
    pub fn failed_ranks(&self, failed: bool) -> Result<Vec<usize>> {
        if self.size() == 1 {
            return Ok(if failed { vec![0] } else { vec![] });
        }
        let mut who = vec![0f32; self.size()];
        who[self.rank()] = failed as u8 as f32;
        self.comm.all_reduce_sum(&mut who)?;
        Ok(who.iter().enumerate().filter(|(_, &w)| w > 0.0).map(|(r, _)| r).collect())
    }

    /// True on every rank when any rank's `flag` is (a stop asked of one rank stops all).
    pub fn any(&self, flag: bool) -> Result<bool> {
        if self.size() == 1 {
            return Ok(flag);
        }
        let mut v = [flag as u8 as f32];
        self.comm.all_reduce_sum(&mut v)?;
        Ok(v[0] > 0.0)
    }

    /// The start of training: checks that every rank built the same model and optimiser state
    /// (names, shapes, step), then copies rank 0's parameters, buffers and optimiser moments to
    /// every rank (DDP's broadcast at construction; on resume every rank loaded the same
    /// checkpoint, and this makes sure of it).
    pub fn start(&self, params: &crate::nn::Params, opts: &[&crate::optim::Adam]) -> Result<()> {
        if self.size() == 1 {
            return Ok(());
        }
        let mut layout = String::new();
        for (n, v) in params.vars() {
            layout.push_str(&format!("{n}{:?};", v.dims()));
        }
        for o in opts {
            layout.push_str(&format!("step {} since {};", o.step, o.since));
        }
        self.same_everywhere(layout.as_bytes(), "built a different model or optimizer state")?;
        let mut vars: Vec<Var> = params.vars().map(|(_, v)| v.clone()).collect();
        vars.extend(opts.iter().flat_map(|o| o.moment_vars()));
        self.broadcast_vars(&vars)
    }

    /// Copies rank 0's values of `vars` to every rank.
    pub fn broadcast_vars(&self, vars: &[Var]) -> Result<()> {
        if self.size() == 1 || vars.is_empty() {
            return Ok(());
        }
        for v in vars {
            let mut buf = v.as_tensor().flatten_all()?.to_vec1::<f32>()?;
            self.comm.broadcast(&mut buf, 0)?;
            if !self.is_root() {
                let t = Tensor::from_vec(buf, v.shape(), v.device())?;
                v.set(&t)?;
            }
        }
        Ok(())
    }

    /// Fails on every rank, naming the ranks, unless every rank's `bytes` equal rank 0's.
    fn same_everywhere(&self, bytes: &[u8], what: &str) -> Result<()> {
        let mine = fnv(bytes);
        let mut root = mine.to_le_bytes().to_vec();
        self.comm.broadcast_bytes(&mut root, 0)?;
        let differs = root != mine.to_le_bytes();
        let bad: Vec<String> = self.failed_ranks(differs)?.iter().map(|r| r.to_string()).collect();
        if bad.is_empty() {
            return Ok(());
        }
        Err(Error::Ranks(format!(
            "rank {} of {} {what} than rank 0 (the same binary, flags, data and run directory \
            must reach every rank)",
            bad.join(", "),
            self.size()
        )))
    }

    /// Checks that every rank holds exactly rank 0's parameters (called at each checkpoint):
    /// a rank that drifted would go on training another model unnoticed.
    pub fn check_identical(&self, params: &crate::nn::Params, step: usize) -> Result<()> {
        if self.size() == 1 {
            return Ok(());
        }
        let mut bytes = Vec::new();
        for (_, v) in params.vars() {
            for x in v.as_tensor().flatten_all()?.to_vec1::<f32>()? {
                bytes.extend_from_slice(&x.to_bits().to_le_bytes());
            }
        }
        self.same_everywhere(&bytes, &format!("holds other parameters at step {step}"))
    }

    /// Marks the start (`true`) and the normal end (`false`) of the training loop.
    pub(crate) fn set_training(&self, on: bool) {
        self.training.store(on, Ordering::Relaxed);
    }

    /// Whether `e`, returned by this rank, leaves the other ranks waiting for it: an error of this
    /// rank alone inside the training loop (a checkpoint that cannot be written, say). Errors every
    /// rank returns alike (a stop, a non-finite loss, a failed vote) end every rank normally.
    pub fn must_abort(&self, e: &Error) -> bool {
        let shared =
            matches!(e, Error::Interrupted { .. } | Error::NonFinite { .. } | Error::Ranks(_));
        self.size() > 1 && self.training.load(Ordering::Relaxed) && !shared
    }

    pub(crate) fn record(&self, secs: f64, bytes: usize) {
        self.stats.nanos.fetch_add((secs * 1e9) as u64, Ordering::Relaxed);
        self.stats.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        self.stats.calls.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_packing(&self, secs: f64) {
        self.stats.packing.fetch_add((secs * 1e9) as u64, Ordering::Relaxed);
    }

    /// Seconds spent flattening gradients into all-reduce buffers and back, in this process.
    pub fn packing_secs(&self) -> f64 {
        self.stats.packing.load(Ordering::Relaxed) as f64 * 1e-9
    }

    /// Seconds, bytes and calls of gradient all-reduce so far in this process.
    pub fn comm_totals(&self) -> (f64, u64, u64) {
        (
            self.stats.nanos.load(Ordering::Relaxed) as f64 * 1e-9,
            self.stats.bytes.load(Ordering::Relaxed),
            self.stats.calls.load(Ordering::Relaxed),
        )
    }
}

/// FNV-1a, 64 bits: a fingerprint to compare ranks' states, not a security hash.
fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}
