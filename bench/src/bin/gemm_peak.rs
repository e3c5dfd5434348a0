//! The machine's GEMM rate for deepgen's matrix-product path
//! (`deepgen::nn::matmul_slices`, the `gemm` crate split over rayon's threads),
//! at a large square size and at the shapes of the benchmarked steps: the
//! "peak" that bench/RESULTS.md's fraction-of-peak column divides by. Its
//! PyTorch counterpart is `bench/torch_gemm.py` (the same shapes, torch.mm).
//!
//! Usage: gemm_peak [REPS]   (threads from RAYON_NUM_THREADS)
use std::time::Instant;

fn main() {
    deepgen::tune_allocator();
    deepgen::tune_thread_pools();
    let reps: usize = match std::env::args().nth(1).map(|s| (s.parse::<usize>(), s)) {
        None => 20,
        Some((Ok(r), _)) if r > 0 => r,
        Some((_, s)) => {
            eprintln!("gemm_peak: REPS must be a positive whole number, got {s:?}");
            std::process::exit(2)
        }
    };
    let pool = rayon::ThreadPoolBuilder::new().build().unwrap_or_else(|e| {
        eprintln!("gemm_peak: a thread pool: {e}");
        std::process::exit(2)
    });
    pool.install(|| {
        // (m, n, k): a square product, then the VAE's widest layer at batch 128 forward
        // (128 x 784 -> 512) and its weight gradient (784 x 128 -> 512), and a PixelCNN
        // 1x1 layer at batch 128 (all 100,352 pixels, 32 -> 16 maps).
        for (m, n, k) in [(1024, 1024, 1024), (128, 512, 784), (784, 512, 128), (100_352, 16, 32)] {
            let a: Vec<f32> = (0..m * k).map(|i| ((i % 17) as f32 - 8.0) * 0.01).collect();
            let b: Vec<f32> = (0..k * n).map(|i| ((i % 13) as f32 - 6.0) * 0.01).collect();
            let mut c = vec![0f32; m * n];
            deepgen::nn::matmul_slices(m, n, k, &mut c, &a, &b);
            let mut best = f64::INFINITY;
            for _ in 0..reps {
                let t = Instant::now();
                deepgen::nn::matmul_slices(m, n, k, &mut c, &a, &b);
                best = best.min(t.elapsed().as_secs_f64());
            }
            let gflops = 2.0 * (m * n * k) as f64 / best / 1e9;
            println!(
                "{{\"impl\": \"deepgen\", \"m\": {m}, \"n\": {n}, \"k\": {k}, \"threads\": {}, \
                 \"gflop_per_s\": {gflops:.1}}}",
                rayon::current_num_threads()
            );
        }
    });
}
