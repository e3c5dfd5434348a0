//! The sum all-reduce of deepgen's MPI communicator on f32 buffers of 1 KiB to 16 MiB, as the
//! trainers call it (`Communicator::all_reduce_sum`, with its send copy): for each size, the
//! median over 30 calls after 5 warm-up calls. Rank 0 prints one JSON line per size. Run under
//! `mpirun -np N target/release/allreduce` (bench/mpi_scaling.sh), to fit the latency alpha and
//! bandwidth beta of the cost model to this machine.

use std::time::Instant;

use deepgen::parallel::launch;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let job = launch()?;
    let comm = job.par.communicator();
    for log2 in (10..=24).step_by(2) {
        let bytes = 1usize << log2;
        let mut buf = vec![1f32; bytes / 4];
        let mut times = Vec::new();
        for rep in 0..35 {
            comm.barrier()?;
            let t0 = Instant::now();
            comm.all_reduce_sum(&mut buf)?;
            if rep >= 5 {
                times.push(t0.elapsed().as_secs_f64());
            }
        }
        times.sort_by(|a, b| a.total_cmp(b));
        if comm.rank() == 0 {
            let med = times[times.len() / 2];
            let rate = bytes as f64 / med / 1e9;
            let ranks = comm.size();
            println!(
                "{{\"ranks\": {ranks}, \"bytes\": {bytes}, \"median_s\": {med:.9}, \
                \"gb_per_s\": {rate:.3}}}"
            );
        }
    }
    Ok(())
}
