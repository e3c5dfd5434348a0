//! deepgen's own CUDA kernels, as CUDA C sources that NVRTC compiles at first use on a device
//! (with the `cuda` feature): Adam's two in-place passes and NADE's recurrence.
//!
//! Every kernel is written so that its threads are independent: no shared memory, no
//! synchronisation, no atomics, each thread writing only its own outputs. So the same source,
//! compiled as C by the system's C compiler with a shim that runs the threads one after another
//! ([`C_SHIM`]), computes what the GPU computes up to floating-point contraction, and
//! `tests/cuda_kernels.rs` holds it to deepgen's CPU kernels on any machine, CI included; on a
//! GPU, `tests/gpu.rs` holds the compiled kernels to the candle-op paths. Reductions across
//! threads go through per-thread partial sums and a second kernel ([`SUM_PARTS`]) that adds
//! them in a fixed order, so results are deterministic.
//!
//! `KERNEL` opens each kernel: `extern "C" __global__` under NVRTC ([`NVRTC_PRELUDE`]), a plain
//! C function under the shim.

/// What NVRTC reads before a kernel source.
pub const NVRTC_PRELUDE: &str = "#define KERNEL extern \"C\" __global__\n";

/// What a C compiler reads before a kernel source: CUDA's thread coordinates as globals that a
/// driver loop sets for each thread in turn.
pub const C_SHIM: &str = r#"#include <math.h>
#define KERNEL static
struct deepgen_dim3 { unsigned int x, y, z; };
static struct deepgen_dim3 blockIdx, blockDim, threadIdx;
"#;

/// `out[i] = sum_k part[k n + i]`, k in order: the second pass of every kernel that leaves
/// per-thread partial sums. It opens every module (NVRTC has no headers): `dg_index`, the
/// 64-bit offset type the others use.
pub const SUM_PARTS: &str = r#"
typedef unsigned long long dg_index;
KERNEL void deepgen_sum_parts(const float* part, float* out, unsigned int n, unsigned int parts) {
    unsigned int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        float s = 0.0f;
        for (unsigned int k = 0; k < parts; k++) {
            s += part[(dg_index)k * n + i];
        }
        out[i] = s;
    }
}
"#;

/// Adam's passes (`optim.rs`): moments `mv` ([2, n]) from the gradient, then the parameter from
/// the moments; one thread per value.
pub const ADAM: &str = r#"
KERNEL void deepgen_adam_moments(float* mv, const float* g, unsigned int n,
                                 float b1, float b2, float s) {
    unsigned int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        float gi = g[i] * s;
        mv[i] = b1 * mv[i] + (1.0f - b1) * gi;
        mv[n + i] = b2 * mv[n + i] + (1.0f - b2) * gi * gi;
    }
}
KERNEL void deepgen_adam_update(float* p, const float* mv, unsigned int n,
                                float lr, float decay, float ic1, float ic2, float eps) {
    unsigned int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        p[i] = p[i] * decay - lr * (mv[i] * ic1) / (sqrtf(mv[n + i] * ic2) + eps);
    }
}
"#;

/// The most hidden units one NADE forward thread carries, and examples one backward thread.
pub const NADE_MAX_UNITS: usize = 64;
pub const NADE_MAX_EXAMPLES: usize = 32;

/// NADE (`models/nade.rs`, eqs. 6-7 of Larochelle & Murray 2011) with `wt` = W^T ([D, H]) and
/// `vc` = [V; c] ([D + 1, H]).
///
/// `deepgen_nade_fwd`: one thread per (example b, run of `hc` hidden units from k hc), walking
/// the pixels in order with the O(H) recurrence a_{i+1} = a_i + W_{:,i} x_i; it writes
/// `part[k, b, i] = sum over its units of V[i, h] sigmoid(a[b, h, i])`, and
/// [`SUM_PARTS`] adds the runs up into the logits (less b).
///
/// `deepgen_nade_bwd`: one thread per (group g of `per` examples from g per, hidden unit h). It
/// runs the recurrence forward to a_D, then back through the pixels, recovering each a_i by
/// subtracting W_{:,i} x_i (the CPU kernel keeps checkpoints instead and recomputes; the
/// difference is rounding, ~1e-6 of the pre-activation), with r = the gradient of every later
/// pre-activation, sum_{i' > i} dL/da_{i'}:
///   dW^T[i, h] += x[b, i] r,  dV[i, h] += g[b, i] s,  dc[h] += g[b, i] V[i, h] s (1 - s),
/// s = sigmoid(a[b, h, i]); its partial sums go to `pdw`, `pdv` ([groups, D, H]) and `pdc`
/// ([groups, H]), which [`SUM_PARTS`] adds over the groups. The input's gradient is not here
/// (data needs none; a differentiable input takes the CPU kernel's backward).
pub const NADE: &str = r#"
#define NADE_MAX_UNITS 64
#define NADE_MAX_EXAMPLES 32
KERNEL void deepgen_nade_fwd(const float* x, const float* wt, const float* vc, float* part,
                             unsigned int nb, unsigned int d, unsigned int h, unsigned int hc) {
    unsigned int t = blockIdx.x * blockDim.x + threadIdx.x;
    unsigned int runs = (h + hc - 1) / hc;
    if (t >= nb * runs) {
        return;
    }
    unsigned int k = t % runs, b = t / runs;
    unsigned int h0 = k * hc;
    unsigned int n = h - h0 < hc ? h - h0 : hc;
    float a[NADE_MAX_UNITS];
    for (unsigned int u = 0; u < n; u++) {
        a[u] = vc[(dg_index)d * h + h0 + u];
    }
    const float* xb = x + (dg_index)b * d;
    float* out = part + ((dg_index)k * nb + b) * d;
    for (unsigned int i = 0; i < d; i++) {
        const float* vi = vc + (dg_index)i * h + h0;
        float s = 0.0f;
        for (unsigned int u = 0; u < n; u++) {
            s += vi[u] / (1.0f + expf(-a[u]));
        }
        out[i] = s;
        float xi = xb[i];
        if (xi != 0.0f) {
            const float* wi = wt + (dg_index)i * h + h0;
            for (unsigned int u = 0; u < n; u++) {
                a[u] += wi[u] * xi;
            }
        }
    }
}
KERNEL void deepgen_nade_bwd(const float* x, const float* g, const float* wt, const float* vc,
                             float* pdw, float* pdv, float* pdc, unsigned int nb, unsigned int d,
                             unsigned int h, unsigned int per) {
    unsigned int t = blockIdx.x * blockDim.x + threadIdx.x;
    unsigned int groups = (nb + per - 1) / per;
    if (t >= groups * h) {
        return;
    }
    unsigned int hh = t % h, grp = t / h;
    unsigned int b0 = grp * per;
    unsigned int m = nb - b0 < per ? nb - b0 : per;
    float a[NADE_MAX_EXAMPLES], r[NADE_MAX_EXAMPLES];
    float c = vc[(dg_index)d * h + hh];
    for (unsigned int e = 0; e < m; e++) {
        a[e] = c;
        r[e] = 0.0f;
    }
    for (unsigned int i = 0; i < d; i++) {
        float w = wt[(dg_index)i * h + hh];
        for (unsigned int e = 0; e < m; e++) {
            float xi = x[(dg_index)(b0 + e) * d + i];
            if (xi != 0.0f) {
                a[e] += w * xi;
            }
        }
    }
    float dc = 0.0f;
    for (unsigned int i = d; i-- > 0;) {
        float w = wt[(dg_index)i * h + hh], v = vc[(dg_index)i * h + hh];
        float sw = 0.0f, sv = 0.0f;
        for (unsigned int e = 0; e < m; e++) {
            dg_index row = (dg_index)(b0 + e) * d + i;
            float xi = x[row], gi = g[row];
            if (xi != 0.0f) {
                a[e] -= w * xi;
            }
            sw += xi * r[e];
            float s = 1.0f / (1.0f + expf(-a[e]));
            sv += gi * s;
            float da = gi * v * s * (1.0f - s);
            dc += da;
            r[e] += da;
        }
        pdw[((dg_index)grp * d + i) * h + hh] = sw;
        pdv[((dg_index)grp * d + i) * h + hh] = sv;
    }
    pdc[(dg_index)grp * h + hh] = dc;
}
"#;

/// The strided convolutions' im2col and its adjoint col2im on channels-last maps (`nn/conv.rs`,
/// [`Strided`](super::conv::Strided): low pixel (oy, ox) and tap (ky, kx) meet high pixel
/// (s oy - p + ky, s ox - p + kx)), so that on a GPU a convolution is im2col then one cuBLAS
/// product, and a transposed convolution one product then col2im, in both directions: candle's
/// CUDA `conv_transpose2d` (its transposed convolutions, and every `conv2d`'s input gradient) is
/// a direct loop per output value.
///
/// `deepgen_im2col`: one thread per value of `cols` `[nb hl wl, k k c]` (row (b hl + oy) wl + ox,
/// column (ky k + kx) c + ci) from `x` `[nb, h, w, c]`, zero outside the map.
/// `deepgen_col2im`: one thread per value of `x`, the sum over the taps (ky, then kx) of the
/// columns whose windows cover it.
pub const IM2COL: &str = r#"
KERNEL void deepgen_im2col(const float* x, float* cols, unsigned int nb, unsigned int h,
                           unsigned int w, unsigned int c, unsigned int k, unsigned int s,
                           unsigned int p, unsigned int hl, unsigned int wl) {
    dg_index t = (dg_index)blockIdx.x * blockDim.x + threadIdx.x;
    dg_index kc = (dg_index)k * k * c;
    if (t >= (dg_index)nb * hl * wl * kc) {
        return;
    }
    dg_index row = t / kc;
    unsigned int col = (unsigned int)(t % kc);
    unsigned int ci = col % c, tap = col / c;
    unsigned int kx = tap % k, ky = tap / k;
    unsigned int ox = (unsigned int)(row % wl);
    unsigned int oy = (unsigned int)((row / wl) % hl);
    dg_index b = row / ((dg_index)wl * hl);
    long long iy = (long long)oy * s + ky - p, ix = (long long)ox * s + kx - p;
    float v = 0.0f;
    if (iy >= 0 && iy < (long long)h && ix >= 0 && ix < (long long)w) {
        v = x[((b * h + (dg_index)iy) * w + (dg_index)ix) * c + ci];
    }
    cols[t] = v;
}
KERNEL void deepgen_col2im(const float* cols, float* x, unsigned int nb, unsigned int h,
                           unsigned int w, unsigned int c, unsigned int k, unsigned int s,
                           unsigned int p, unsigned int hl, unsigned int wl) {
    dg_index t = (dg_index)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= (dg_index)nb * h * w * c) {
        return;
    }
    unsigned int ci = (unsigned int)(t % c);
    dg_index r = t / c;
    long long ix = (long long)(r % w), iy = (long long)((r / w) % h);
    dg_index b = r / ((dg_index)w * h);
    dg_index kc = (dg_index)k * k * c;
    float acc = 0.0f;
    for (unsigned int ky = 0; ky < k; ky++) {
        long long ys = iy + p - ky;
        if (ys < 0 || ys % s != 0 || ys / s >= (long long)hl) {
            continue;
        }
        for (unsigned int kx = 0; kx < k; kx++) {
            long long xs = ix + p - kx;
            if (xs < 0 || xs % s != 0 || xs / s >= (long long)wl) {
                continue;
            }
            dg_index row = (b * hl + (dg_index)(ys / s)) * wl + (dg_index)(xs / s);
            acc += cols[row * kc + (dg_index)(ky * k + kx) * c + ci];
        }
    }
    x[t] = acc;
}
"#;

/// The threads a NADE pass on `b` examples of `h` hidden units takes about this many, enough to
/// fill a large GPU while keeping the partial sums to ~16K x D values.
const NADE_THREADS: usize = 16_384;

/// (`hc`, `per`): the hidden units of one forward thread and the examples of one backward thread
/// for `b` examples and `h` hidden units.
pub fn nade_split(b: usize, h: usize) -> (usize, usize) {
    let want = (b * h).div_ceil(NADE_THREADS).max(1);
    (want.min(NADE_MAX_UNITS).min(h.max(1)), want.min(NADE_MAX_EXAMPLES).min(b.max(1)))
}

/// Compiling the sources above for a CUDA device.
#[cfg(feature = "cuda")]
pub(crate) mod device {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};

    use candle_core::cuda_backend::cudarc::nvrtc;

    /// The PTX of `module` (the concatenated `sources`), compiled by NVRTC once per process;
    /// `CudaDevice::get_or_load_custom_func` then loads it once per device.
    pub fn ptx(module: &'static str, sources: &[&str]) -> candle_core::Result<&'static str> {
        type Made = HashMap<&'static str, Result<&'static str, String>>;
        static MADE: OnceLock<Mutex<Made>> = OnceLock::new();
        let mut made = MADE.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
        let r = made.entry(module).or_insert_with(|| {
            let src = format!("{}{}", super::NVRTC_PRELUDE, sources.concat());
            // Kept for the process's life: loaded again on each device that runs it.
            nvrtc::compile_ptx(src)
                .map(|p| &*Box::leak(p.to_src().into_boxed_str()))
                .map_err(|e| e.to_string())
        });
        match r {
            Ok(p) => Ok(p),
            Err(e) => candle_core::bail!("deepgen's CUDA kernels `{module}` (NVRTC): {e}"),
        }
    }
}
