//! Runtime CPU dispatch for deepgen's own loops, and the lane-explicit
//! reductions that make them vectorise.
//!
//! The crate is compiled for baseline x86-64 (SSE2), so that one binary runs
//! on every machine; the `gemm` crate picks AVX2 or AVX-512 at run time for
//! matrix products, but deepgen's own kernels (NADE's recurrence, ...) were
//! left at 4 lanes without FMA. [`dispatch`] runs a closure compiled for the
//! best instruction set the CPU has (pulp, the dispatcher `gemm` itself uses).
//!
//! Results do not depend on the instruction set: the kernels use no fused
//! multiply-add (`mul_add` rounds once where `a * b + c` rounds twice) and
//! every reduction keeps [`LANES`] partial sums in a fixed order, so the
//! 16-lane array is the same sum whether it becomes four SSE registers, two
//! AVX2 ones or one AVX-512 one. A float sum written as `iter().sum()` is a
//! sequential chain that LLVM may not reorder, so it never vectorises.

/// Partial sums a reduction keeps: enough independent chains to hide the
/// add latency on AVX2 (two 8-lane registers).
pub(crate) const LANES: usize = 16;

/// Runs `f` compiled for the CPU's best instruction set (AVX-512, AVX2 or the
/// baseline). `f` must be `#[inline(always)]`, and so must what it calls, for
/// the body to be compiled inside the dispatched function.
#[inline(always)]
pub(crate) fn dispatch<R>(f: impl FnOnce() -> R) -> R {
    pulp::Arch::new().dispatch(f)
}

/// The sum of the partial sums, in a fixed pairwise order.
#[inline(always)]
pub(crate) fn reduce(acc: &[f32; LANES]) -> f32 {
    let mut h = [0f32; LANES / 2];
    for l in 0..LANES / 2 {
        h[l] = acc[l] + acc[l + LANES / 2];
    }
    let (a, b, c, d) = (h[0] + h[4], h[1] + h[5], h[2] + h[6], h[3] + h[7]);
    (a + c) + (b + d)
}

/// `sum_k f(a[k], b[k])` with [`LANES`] partial sums (element k goes to
/// lane k mod LANES).
#[inline(always)]
pub(crate) fn dot_by(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..LANES {
            acc[l] += f(x[l], y[l]);
        }
    }
    for l in 0..ra.len() {
        acc[l] += f(ra[l], rb[l]);
    }
    reduce(&acc)
}

/// `a . b` with [`LANES`] partial sums.
#[inline(always)]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    dot_by(a, b, |x, y| x * y)
}

/// `y += alpha x`.
#[inline(always)]
pub(crate) fn axpy(y: &mut [f32], alpha: f32, x: &[f32]) {
    for (yk, xk) in y.iter_mut().zip(x) {
        *yk += alpha * xk;
    }
}

/// The logistic sigmoid with [`super::ops::fast_exp`] (no libm call, so loops vectorise).
#[inline(always)]
pub(crate) fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + super::ops::fast_exp(-x))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lane_sums_equal_a_plain_sum_and_do_not_depend_on_the_dispatch() {
        for n in [0, 1, 7, 16, 17, 500] {
            let a: Vec<f32> = (0..n).map(|k| ((k * 37 % 11) as f32 - 5.0) * 0.125).collect();
            let b: Vec<f32> = (0..n).map(|k| ((k * 13 % 7) as f32 - 3.0) * 0.25).collect();
            // Multiples of 1/32 add exactly, so any order gives the plain sum.
            let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert_eq!(dot(&a, &b), plain, "n = {n}");
            let wide = dispatch(
                #[inline(always)]
                || dot_by(&a, &b, |x, y| x * sigmoid(y)),
            );
            assert_eq!(wide.to_bits(), dot_by(&a, &b, |x, y| x * sigmoid(y)).to_bits());
        }
    }
}
