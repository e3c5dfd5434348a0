//! The [`Communicator`] over MPI's world communicator (rsmpi, the `mpi` crate, over the system's
//! Open MPI or MPICH). Built with the `distributed` feature.
//!
//! MPI is initialised asking for `MPI_THREAD_SERIALIZED`: training runs on a worker thread of
//! the rayon pool, not the thread that initialised MPI, and every call goes through one mutex,
//! so calls never overlap. [`MpiSession`] finalises MPI when dropped, on the thread that made it.

use std::sync::{Arc, Mutex};

use mpi::collective::{CommunicatorCollectives, Root, SystemOperation};
use mpi::environment::Universe;
use mpi::topology::{Communicator as _, SimpleCommunicator};
use mpi::Threading;

use super::Communicator;
use crate::error::{Error, Result};

/// MPI from initialisation to finalisation: keep it alive (on the main thread) until training is
/// over, then drop it.
pub struct MpiSession {
    _universe: Universe,
}

/// The world communicator.
pub struct Mpi {
    world: Mutex<World>,
    rank: usize,
    size: usize,
    library: String,
}

/// The world communicator's handle.
struct World(SimpleCommunicator);

// SAFETY: an MPI communicator handle is a process-wide value, valid on any thread once MPI runs at
// MPI_THREAD_SERIALIZED or above (checked in `init`); `Mpi` only touches it under its mutex, so no
// two threads ever call MPI at once.
unsafe impl Send for World {}

/// Initialises MPI and returns its session (to keep) and its world communicator.
pub fn init() -> Result<(MpiSession, Arc<Mpi>)> {
    let (universe, level) = mpi::initialize_with_threading(Threading::Serialized)
        .ok_or_else(|| Error::config("MPI was already initialised in this process"))?;
    if level < Threading::Serialized {
        return Err(Error::config(format!(
            "the MPI library offers threading level {level:?}; deepgen needs Serialized (an MPI \
            built with thread support)"
        )));
    }
    let world = universe.world();
    let rank = world.rank() as usize;
    let size = world.size() as usize;
    let library = mpi::environment::library_version()
        .map(|v| v.split(',').next().unwrap_or("MPI").trim().to_string())
        .unwrap_or_else(|_| "MPI".into());
    let comm = Mpi { world: Mutex::new(World(world)), rank, size, library };
    Ok((MpiSession { _universe: universe }, Arc::new(comm)))
}

impl Mpi {
    fn world(&self) -> std::sync::MutexGuard<'_, World> {
        // A poisoned lock only means another thread panicked mid-call; MPI's state is MPI's.
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Communicator for Mpi {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.size
    }
    fn all_reduce_sum(&self, buf: &mut [f32]) -> Result<()> {
        // rsmpi has no MPI_IN_PLACE form: the send side is a copy.
        let send = buf.to_vec();
        self.world().0.all_reduce_into(&send[..], buf, SystemOperation::sum());
        Ok(())
    }
    fn broadcast(&self, buf: &mut [f32], root: usize) -> Result<()> {
        let w = self.world();
        w.0.process_at_rank(root as i32).broadcast_into(buf);
        Ok(())
    }
    fn broadcast_bytes(&self, buf: &mut Vec<u8>, root: usize) -> Result<()> {
        let w = self.world();
        let p = w.0.process_at_rank(root as i32);
        let mut len = [buf.len() as u64];
        p.broadcast_into(&mut len[..]);
        buf.resize(len[0] as usize, 0);
        p.broadcast_into(&mut buf[..]);
        Ok(())
    }
    fn barrier(&self) -> Result<()> {
        self.world().0.barrier();
        Ok(())
    }
    fn abort(&self, code: i32) -> ! {
        self.world().0.abort(code)
    }
    fn describe(&self) -> String {
        format!("MPI ({})", self.library)
    }
}
