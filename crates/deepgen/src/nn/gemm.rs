//! Matrix products on CPU slices: the `gemm` crate's kernels, split by rows
//! across threads for large products; the reduction-heavy `a^T b` of weight
//! gradients; column sums as a product.

use std::sync::atomic::{AtomicU64, Ordering};

use candle_core::Tensor;

/// Floating-point operations (2 m n k each) of the products run by [`gemm`].
static FLOPS: AtomicU64 = AtomicU64::new(0);

/// The floating-point operations (2 m n k per product) of every matrix product
/// deepgen's own kernels ran since the process started: the fused dense layers,
/// the convolutions and the LSTM scans (products candle runs itself, through
/// `Tensor::matmul`, are not counted). `step_profile` divides its difference
/// over a step by the step's time.
pub fn gemm_flops() -> u64 {
    FLOPS.load(Ordering::Relaxed)
}

/// Counts a product that calls the `gemm` crate directly (the fused dense layer).
pub(crate) fn count_flops(m: usize, n: usize, k: usize) {
    FLOPS.fetch_add(2 * (m * n * k) as u64, Ordering::Relaxed);
}

/// `dst [m, n] = a [m, k] b [k, n]` (row-major) on all threads, the path a training step's large
/// products take: for measuring the machine's GEMM rate (`bench/src/bin/gemm_peak.rs`).
pub fn matmul_slices(m: usize, n: usize, k: usize, dst: &mut [f32], a: &[f32], b: &[f32]) {
    gemm(m, n, k, dst, a, false, b, false, false, true);
}

/// The column sums of a 2-D tensor, `[B, N] -> [N]`, as the product
/// ones[1, B] x t: differentiable (it stays in the graph when
/// [`create_graph`] is on) and a GEMM, where candle's `sum(0)` walks the
/// rows element by element.
pub fn sum_rows(t: &Tensor) -> candle_core::Result<Tensor> {
    let (b, _) = t.dims2()?;
    Tensor::ones((1, b), t.dtype(), t.device())?.matmul(t)?.squeeze(0)
}

/// `a^T b` for `a: [m, k]`, `b: [m, n]` with m large and k, n small (the
/// weight gradient of a layer applied at every pixel): the reduction over m
/// is split across threads, each with its own `[k, n]` partial sum. The GEMM
/// crate parallelises over the output, which here is too small to split.
pub(crate) fn gemm_at_b(k: usize, n: usize, m: usize, a: &[f32], b: &[f32]) -> Vec<f32> {
    use rayon::prelude::*;
    let threads = candle_core::utils::get_num_threads().max(1);
    let rows = m.div_ceil(threads).max(1);
    let parts: Vec<Vec<f32>> = a
        .par_chunks(rows * k)
        .zip(b.par_chunks(rows * n))
        .map(|(ac, bc)| {
            let r = ac.len() / k.max(1);
            let mut out = vec![0f32; k * n];
            gemm(k, n, r, &mut out, ac, true, bc, false, false, false);
            out
        })
        .collect();
    let mut out = vec![0f32; k * n];
    for p in parts {
        out.iter_mut().zip(p).for_each(|(o, v)| *o += v);
    }
    out
}

/// `dst [m, n] (+)= a [m, k] b [k, n]`, either operand read transposed
/// (`a_t`: `a` holds `[k, m]` row-major), with rayon inside the product when
/// `parallel` and the product is big enough to pay for it.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    a: &[f32],
    a_t: bool,
    b: &[f32],
    b_t: bool,
    accumulate: bool,
    parallel: bool,
) {
    let threads = candle_core::utils::get_num_threads();
    if parallel && threads > 1 && m >= 64 * threads && m * n * k > (1 << 22) {
        // Large products: one single-threaded GEMM per block of dst rows, run
        // by rayon; measured faster on the DCGAN step than gemm's own threading.
        gemm_row_blocks(m, n, k, dst, a, a_t, b, b_t, accumulate, threads);
        return;
    }
    assert!(dst.len() >= m * n && a.len() >= m * k && b.len() >= k * n, "gemm: buffers too small");
    FLOPS.fetch_add(2 * (m * n * k) as u64, Ordering::Relaxed);
    let (a_cs, a_rs) = if a_t { (m as isize, 1) } else { (1, k as isize) };
    let (b_cs, b_rs) = if b_t { (k as isize, 1) } else { (1, n as isize) };
    let par = if parallel && threads > 1 && m * n * k > 32768 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the slices hold at least m*k, k*n and m*n values (asserted above),
    // read with the strides of their row-major layouts; dst is exclusively borrowed.
    unsafe {
        raw_gemm(
            (m, n, k),
            dst.as_mut_ptr(),
            accumulate,
            a.as_ptr(),
            (a_rs, a_cs),
            b.as_ptr(),
            (b_rs, b_cs),
            par,
        )
    }
}

/// The `gemm` crate's `dst [m, n] (+)= a b` (alpha 1, beta 1), `dst` row-major, `a` and `b` read
/// with (row, column) strides.
///
/// # Safety
/// Every index the strides reach from each pointer lies inside its buffer; nothing else writes
/// `dst` meanwhile.
#[allow(clippy::too_many_arguments)]
unsafe fn raw_gemm(
    (m, n, k): (usize, usize, usize),
    dst: *mut f32,
    accumulate: bool,
    a: *const f32,
    (a_rs, a_cs): (isize, isize),
    b: *const f32,
    (b_rs, b_cs): (isize, isize),
    par: gemm::Parallelism,
) {
    gemm::gemm(
        m, n, k, dst, 1, n as isize, accumulate, a, a_cs, a_rs, b, b_cs, b_rs, 1.0f32, 1.0f32,
        false, false, false, par,
    );
}

/// `dst [m, n] (+)= a b` on one thread, `dst` row-major and each operand read with explicit
/// (row, column) strides, so that an operand's rows may overlap in memory: the implicit im2col
/// of [`super::same_conv`], whose row r starts c values after row r - 1.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_strided(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    a: &[f32],
    (a_rs, a_cs): (usize, usize),
    b: &[f32],
    (b_rs, b_cs): (usize, usize),
    accumulate: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(0.0);
        }
        return;
    }
    // The last element each operand's strides reach lies inside its slice.
    assert!(
        dst.len() >= m * n
            && (m - 1) * a_rs + (k - 1) * a_cs < a.len()
            && (k - 1) * b_rs + (n - 1) * b_cs < b.len(),
        "gemm_strided: buffers too small"
    );
    FLOPS.fetch_add(2 * (m * n * k) as u64, Ordering::Relaxed);
    // SAFETY: every index the strides reach is inside its slice (asserted above); the operands
    // are only read (overlapping rows are fine), dst is exclusively borrowed and its rows are
    // disjoint.
    unsafe {
        raw_gemm(
            (m, n, k),
            dst.as_mut_ptr(),
            accumulate,
            a.as_ptr(),
            (a_rs as isize, a_cs as isize),
            b.as_ptr(),
            (b_rs as isize, b_cs as isize),
            gemm::Parallelism::None,
        )
    }
}

/// [`gemm`] as `parts` single-threaded GEMMs over blocks of dst rows, in parallel.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_row_blocks(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    a: &[f32],
    a_t: bool,
    b: &[f32],
    b_t: bool,
    accumulate: bool,
    parts: usize,
) {
    use rayon::prelude::*;
    assert!(dst.len() >= m * n && a.len() >= m * k && b.len() >= k * n, "gemm: buffers too small");
    FLOPS.fetch_add(2 * (m * n * k) as u64, Ordering::Relaxed);
    let (a_cs, a_rs) = if a_t { (m as isize, 1) } else { (1, k as isize) };
    let (b_cs, b_rs) = if b_t { (k as isize, 1) } else { (1, n as isize) };
    let rows = m.div_ceil(parts.max(1)).max(1);
    dst[..m * n].par_chunks_mut(rows * n.max(1)).enumerate().for_each(|(i, d)| {
        let r0 = i * rows;
        let r = d.len() / n.max(1);
        let a_off = if a_t { r0 } else { r0 * k };
        // SAFETY: rows r0..r0+r of a (offset a_off, same strides) and of dst (this
        // chunk) lie within the asserted lengths; each chunk of dst has one task.
        unsafe {
            raw_gemm(
                (r, n, k),
                d.as_mut_ptr(),
                accumulate,
                a.as_ptr().add(a_off),
                (a_rs, a_cs),
                b.as_ptr(),
                (b_rs, b_cs),
                gemm::Parallelism::None,
            )
        }
    });
}

#[cfg(test)]
mod tests {
    /// The row-block GEMM and the plain one equal a triple loop for every transposition and with
    /// accumulation, for a wide product and narrow ones (n = 3, an RGB output layer; n = 1, a
    /// critic's score).
    #[test]
    fn gemm_matches_a_triple_loop() {
        for (m, n, k) in [(301, 37, 53), (301, 3, 53), (200, 1, 9)] {
            let val = |i: usize| ((i * 7919 % 1000) as f32 - 500.0) / 250.0;
            let a: Vec<f32> = (0..m * k).map(val).collect();
            let b: Vec<f32> = (0..k * n).map(|i| val(i + 17)).collect();
            for (a_t, b_t) in [(false, false), (true, false), (false, true), (true, true)] {
                for accumulate in [false, true] {
                    let start: Vec<f32> = (0..m * n).map(|i| val(i + 3)).collect();
                    let mut want = start.clone();
                    for i in 0..m {
                        for j in 0..n {
                            let mut acc = 0f64;
                            for p in 0..k {
                                let x = if a_t { a[p * m + i] } else { a[i * k + p] };
                                let y = if b_t { b[j * k + p] } else { b[p * n + j] };
                                acc += x as f64 * y as f64;
                            }
                            want[i * n + j] =
                                acc as f32 + if accumulate { start[i * n + j] } else { 0.0 };
                        }
                    }
                    let mut blocks = start.clone();
                    super::gemm_row_blocks(m, n, k, &mut blocks, &a, a_t, &b, b_t, accumulate, 3);
                    let mut plain = start.clone();
                    super::gemm(m, n, k, &mut plain, &a, a_t, &b, b_t, accumulate, false);
                    for got in [&blocks, &plain] {
                        for (g, w) in got.iter().zip(&want) {
                            assert!(
                                (g - w).abs() < 1e-3 * (1.0 + w.abs()),
                                "{m}x{n}x{k} a_t {a_t} b_t {b_t} accumulate {accumulate}: \
                                 {g} vs {w}"
                            );
                        }
                    }
                }
            }
        }
    }
}
