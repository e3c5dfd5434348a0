//! deepgen's own CUDA kernels, as CUDA C sources that NVRTC compiles at first use on a device
//! (with the `cuda` feature): Adam's two in-place passes, NADE's recurrence, the strided
//! convolutions' im2col and col2im, the masked convolutions' gather of their taps, and
//! PixelRNN's spatial LSTM scan.
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
//! C function under the shim; `DEVICE` a helper the kernels call (`__device__`, or `static`).

/// What NVRTC reads before a kernel source.
pub const NVRTC_PRELUDE: &str = r#"
#define KERNEL extern "C" __global__
#define DEVICE __device__ __forceinline__
"#;

/// What a C compiler reads before a kernel source: CUDA's thread coordinates as globals that a
/// driver loop sets for each thread in turn.
pub const C_SHIM: &str = r#"#include <math.h>
#define KERNEL static
#define DEVICE static inline
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
/* Value t of a [nb, h, w, c] map: its channel, column, row and image (also TAPS's). */
DEVICE void dg_pixel(dg_index t, unsigned int h, unsigned int w, unsigned int c,
                     unsigned int* ci, long long* x, long long* y, dg_index* b) {
    dg_index r = t / c;
    *ci = (unsigned int)(t % c);
    *x = (long long)(r % w);
    *y = (long long)((r / w) % h);
    *b = r / ((dg_index)w * h);
}
KERNEL void deepgen_col2im(const float* cols, float* x, unsigned int nb, unsigned int h,
                           unsigned int w, unsigned int c, unsigned int k, unsigned int s,
                           unsigned int p, unsigned int hl, unsigned int wl) {
    dg_index t = (dg_index)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= (dg_index)nb * h * w * c) {
        return;
    }
    unsigned int ci;
    long long ix, iy;
    dg_index b;
    dg_pixel(t, h, w, c, &ci, &ix, &iy, &b);
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

/// The most taps a masked convolution may have for [`TAPS`] (a 7x7 window has 49).
pub const MAX_TAPS: usize = 64;

/// The masked convolutions' gather of their allowed taps and its adjoint, on channels-last maps
/// (`nn/conv.rs`: tap (dy, dx) of output pixel (y, x) reads (y + dy, x + dx), zero outside), so
/// that on a GPU a masked convolution is the gather then one product over its taps alone, as on
/// the CPU, not a dense (2p+1)^2 window that multiplies every masked-out zero. The taps come by
/// value (`struct dg_taps`, at most `DG_MAX_TAPS` = [`MAX_TAPS`]).
///
/// `deepgen_gather_taps`: one thread per value of `cols` `[nb h w, n c]` (row (b h + y) w + x,
/// column k c + ci) from `x` `[nb, h, w, c]`. `deepgen_scatter_taps`: one thread per value of
/// `x`, the sum over the taps (in order) of the columns that read it. It follows [`IM2COL`] in
/// its module (it uses `dg_pixel`).
pub const TAPS: &str = r#"
#define DG_MAX_TAPS 64
struct dg_taps {
    unsigned int n;
    int dy[DG_MAX_TAPS];
    int dx[DG_MAX_TAPS];
};
KERNEL void deepgen_gather_taps(const float* x, float* cols, struct dg_taps taps,
                                unsigned int nb, unsigned int h, unsigned int w,
                                unsigned int c) {
    dg_index t = (dg_index)blockIdx.x * blockDim.x + threadIdx.x;
    dg_index tc = (dg_index)taps.n * c;
    if (t >= (dg_index)nb * h * w * tc) {
        return;
    }
    dg_index row = t / tc;
    unsigned int col = (unsigned int)(t % tc);
    unsigned int ci = col % c, k = col / c;
    long long xx = (long long)(row % w) + taps.dx[k];
    long long yy = (long long)((row / w) % h) + taps.dy[k];
    dg_index b = row / ((dg_index)w * h);
    float v = 0.0f;
    if (yy >= 0 && yy < (long long)h && xx >= 0 && xx < (long long)w) {
        v = x[((b * h + (dg_index)yy) * w + (dg_index)xx) * c + ci];
    }
    cols[t] = v;
}
KERNEL void deepgen_scatter_taps(const float* cols, float* x, struct dg_taps taps,
                                 unsigned int nb, unsigned int h, unsigned int w,
                                 unsigned int c) {
    dg_index t = (dg_index)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= (dg_index)nb * h * w * c) {
        return;
    }
    unsigned int ci;
    long long ix, iy;
    dg_index b;
    dg_pixel(t, h, w, c, &ci, &ix, &iy, &b);
    dg_index tc = (dg_index)taps.n * c;
    float acc = 0.0f;
    for (unsigned int k = 0; k < taps.n; k++) {
        /* Output pixel (y, x) reads this one through tap k when (y + dy, x + dx) = (iy, ix). */
        long long y = iy - taps.dy[k], xo = ix - taps.dx[k];
        if (y < 0 || y >= (long long)h || xo < 0 || xo >= (long long)w) {
            continue;
        }
        dg_index row = (b * h + (dg_index)y) * w + (dg_index)xo;
        acc += cols[row * tc + (dg_index)k * c + ci];
    }
    x[t] = acc;
}
"#;

/// PixelRNN's spatial LSTM (`nn/lstm.rs`, eqs. 3-4 of van den Oord et al. 2016) as one launch
/// per wave of cells, each thread one (image b, cell of the wave, unit j) with its four gates.
/// `scan` 0 is the Row LSTM (the waves are the rows; a cell reads h at (r-1, c-1..c+1) and c at
/// (r-1, c)), 1 the Diagonal LSTM (the anti-diagonals; h at (r-1, c) and (r, c-1), c at
/// (r, c-1)). Every neighbour a cell reads lies in the wave before its own, so a launch reads
/// only what earlier launches wrote. Maps are `[nb, h, w, c]` (gates `[.., 4c]`: i f o g), the
/// state weights `wss` `[taps c, 4c]` in the order of `dg_lstm_tap`.
///
/// `deepgen_lstm_fwd` (wave `wv`): the gates from `gin` and the neighbours' hidden states, then
/// the cell and hidden state; it keeps the gates after their nonlinearities for the backward.
/// `deepgen_lstm_bwd_gates` (wave `wv`, its `dh` and `dc` complete): the gates' gradients into
/// `dgin`, and `dcf` = dL/dc_t f_t, what the cell before it receives.
/// `deepgen_lstm_bwd_states` (wave `wv`, after the gates of wave `wv` + 1): `dh += ` what the
/// cells of the next wave that read each state send back through `wss`, gathered by the reader
/// (so no two threads write one value), and `dc` from the one cell that reads it. The state
/// weights' gradient, a sum over every cell, is one product on the host side
/// (`nn::lstm::state_grad`).
pub const LSTM: &str = r#"
DEVICE unsigned int dg_lstm_taps(unsigned int scan) {
    return scan == 0 ? 3u : 2u;
}
DEVICE void dg_lstm_tap(unsigned int scan, unsigned int t, int* dy, int* dx) {
    if (scan == 0) {
        *dy = -1;
        *dx = (int)t - 1;
    } else {
        *dy = t == 0 ? -1 : 0;
        *dx = t == 0 ? 0 : -1;
    }
}
DEVICE void dg_lstm_ctap(unsigned int scan, int* dy, int* dx) {
    *dy = scan == 0 ? -1 : 0;
    *dx = scan == 0 ? 0 : -1;
}
DEVICE unsigned int dg_lstm_waves(unsigned int scan, unsigned int h, unsigned int w) {
    return scan == 0 ? h : h + w - 1;
}
/* The first row of anti-diagonal wv, and its number of cells (rows: the whole row). */
DEVICE unsigned int dg_lstm_first(unsigned int scan, unsigned int w, unsigned int wv) {
    return scan == 0 || wv < w ? 0u : wv - (w - 1);
}
DEVICE unsigned int dg_lstm_len(unsigned int scan, unsigned int h, unsigned int w,
                                unsigned int wv) {
    if (scan == 0) {
        return w;
    }
    unsigned int last = wv < h - 1 ? wv : h - 1;
    return last + 1 - dg_lstm_first(scan, w, wv);
}
/* Cell k of wave wv. */
DEVICE void dg_lstm_cell(unsigned int scan, unsigned int w, unsigned int wv, unsigned int k,
                         int* r, int* x) {
    if (scan == 0) {
        *r = (int)wv;
        *x = (int)k;
    } else {
        unsigned int r0 = dg_lstm_first(scan, w, wv);
        *r = (int)(r0 + k);
        *x = (int)(wv - r0 - k);
    }
}
/* The pixel (y, x) of the map, or -1 outside it. */
DEVICE long long dg_lstm_at(int y, int x, unsigned int h, unsigned int w) {
    if (y < 0 || x < 0 || y >= (int)h || x >= (int)w) {
        return -1;
    }
    return (long long)y * w + x;
}
DEVICE float dg_sigmoid(float x) {
    return 1.0f / (1.0f + expf(-x));
}
/* The thread's (image, pixel) in wave wv and unit j, or 0 past the wave's last thread. */
DEVICE int dg_lstm_thread(unsigned int scan, unsigned int nb, unsigned int h, unsigned int w,
                          unsigned int c, unsigned int wv, dg_index* b, int* r, int* x,
                          unsigned int* j) {
    dg_index t = (dg_index)blockIdx.x * blockDim.x + threadIdx.x;
    unsigned int len = dg_lstm_len(scan, h, w, wv);
    if (t >= (dg_index)nb * len * c) {
        return 0;
    }
    *j = (unsigned int)(t % c);
    dg_index bk = t / c;
    *b = bk / len;
    dg_lstm_cell(scan, w, wv, (unsigned int)(bk % len), r, x);
    return 1;
}
KERNEL void deepgen_lstm_fwd(const float* gin, const float* wss, float* gates, float* cell,
                             float* hid, unsigned int scan, unsigned int nb, unsigned int h,
                             unsigned int w, unsigned int c, unsigned int wv) {
    dg_index b;
    int r, x, dy, dx;
    unsigned int j;
    if (!dg_lstm_thread(scan, nb, h, w, c, wv, &b, &r, &x, &j)) {
        return;
    }
    dg_index hw = (dg_index)h * w, c4 = 4 * (dg_index)c;
    dg_index p = b * hw + (dg_index)dg_lstm_at(r, x, h, w);
    float a[4];
    for (unsigned int q = 0; q < 4; q++) {
        a[q] = gin[p * c4 + q * c + j];
    }
    for (unsigned int t = 0; t < dg_lstm_taps(scan); t++) {
        dg_lstm_tap(scan, t, &dy, &dx);
        long long n = dg_lstm_at(r + dy, x + dx, h, w);
        if (n < 0) {
            continue;
        }
        const float* hn = hid + (b * hw + (dg_index)n) * c;
        const float* wt = wss + (dg_index)t * c * c4 + j;
        for (unsigned int u = 0; u < c; u++) {
            float v = hn[u];
            for (unsigned int q = 0; q < 4; q++) {
                a[q] += v * wt[u * c4 + q * c];
            }
        }
    }
    dg_lstm_ctap(scan, &dy, &dx);
    long long n = dg_lstm_at(r + dy, x + dx, h, w);
    float cp = n < 0 ? 0.0f : cell[(b * hw + (dg_index)n) * c + j];
    float i = dg_sigmoid(a[0]), f = dg_sigmoid(a[1]), o = dg_sigmoid(a[2]), g = tanhf(a[3]);
    float cv = f * cp + i * g;
    cell[p * c + j] = cv;
    hid[p * c + j] = o * tanhf(cv);
    gates[p * c4 + j] = i;
    gates[p * c4 + c + j] = f;
    gates[p * c4 + 2 * c + j] = o;
    gates[p * c4 + 3 * c + j] = g;
}
KERNEL void deepgen_lstm_bwd_gates(const float* gates, const float* cell, const float* dh,
                                   const float* dc, float* dgin, float* dcf, unsigned int scan,
                                   unsigned int nb, unsigned int h, unsigned int w,
                                   unsigned int c, unsigned int wv) {
    dg_index b;
    int r, x, dy, dx;
    unsigned int j;
    if (!dg_lstm_thread(scan, nb, h, w, c, wv, &b, &r, &x, &j)) {
        return;
    }
    dg_index hw = (dg_index)h * w, c4 = 4 * (dg_index)c;
    dg_index p = b * hw + (dg_index)dg_lstm_at(r, x, h, w);
    const float* gt = gates + p * c4;
    float i = gt[j], f = gt[c + j], o = gt[2 * c + j], g = gt[3 * c + j];
    float tc = tanhf(cell[p * c + j]), dhv = dh[p * c + j];
    float dct = dc[p * c + j] + dhv * o * (1.0f - tc * tc);
    dg_lstm_ctap(scan, &dy, &dx);
    long long n = dg_lstm_at(r + dy, x + dx, h, w);
    float cp = n < 0 ? 0.0f : cell[(b * hw + (dg_index)n) * c + j];
    float* dr = dgin + p * c4;
    dr[j] = dct * g * i * (1.0f - i);
    dr[c + j] = dct * cp * f * (1.0f - f);
    dr[2 * c + j] = dhv * tc * o * (1.0f - o);
    dr[3 * c + j] = dct * i * (1.0f - g * g);
    dcf[p * c + j] = dct * f;
}
KERNEL void deepgen_lstm_bwd_states(const float* dgin, const float* wss, const float* dcf,
                                    float* dh, float* dc, unsigned int scan, unsigned int nb,
                                    unsigned int h, unsigned int w, unsigned int c,
                                    unsigned int wv) {
    dg_index b;
    int r, x, dy, dx;
    unsigned int j;
    if (!dg_lstm_thread(scan, nb, h, w, c, wv, &b, &r, &x, &j)) {
        return;
    }
    dg_index hw = (dg_index)h * w, c4 = 4 * (dg_index)c;
    dg_index q = b * hw + (dg_index)dg_lstm_at(r, x, h, w);
    /* The cell at (r, x) - tap reads this state through tap t. */
    float s = 0.0f;
    for (unsigned int t = 0; t < dg_lstm_taps(scan); t++) {
        dg_lstm_tap(scan, t, &dy, &dx);
        long long n = dg_lstm_at(r - dy, x - dx, h, w);
        if (n < 0) {
            continue;
        }
        const float* dr = dgin + (b * hw + (dg_index)n) * c4;
        const float* wr = wss + ((dg_index)t * c + j) * c4;
        for (dg_index k = 0; k < c4; k++) {
            s += dr[k] * wr[k];
        }
    }
    dh[q * c + j] += s;
    dg_lstm_ctap(scan, &dy, &dx);
    long long n = dg_lstm_at(r - dy, x - dx, h, w);
    dc[q * c + j] = n < 0 ? 0.0f : dcf[(b * hw + (dg_index)n) * c + j];
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

    use candle_core::cuda_backend::cudarc::driver::{CudaView, LaunchArgs, LaunchConfig};
    use candle_core::cuda_backend::cudarc::nvrtc;
    use candle_core::cuda_backend::WrapErr;
    use candle_core::{CudaStorage, Layout};

    /// The values of a contiguous `f32` tensor on the device, or an error naming `op` and `what`.
    pub fn view<'a>(
        s: &'a CudaStorage,
        l: &Layout,
        op: &str,
        what: &str,
    ) -> candle_core::Result<CudaView<'a, f32>> {
        match l.contiguous_offsets() {
            Some((a, b)) => Ok(s.as_cuda_slice::<f32>()?.slice(a..b)),
            None => candle_core::bail!("{op} (cuda): {what} must be contiguous"),
        }
    }

    /// Launches `args` over `n` threads in candle's usual blocks; nothing when `n` is 0 (CUDA
    /// refuses an empty grid, and an empty batch has nothing to compute).
    ///
    /// # Safety
    /// The kernel's: its arguments must be what it reads and writes.
    pub unsafe fn launch_over(mut args: LaunchArgs<'_>, n: u32) -> candle_core::Result<()> {
        if n > 0 {
            args.launch(LaunchConfig::for_num_elems(n)).w()?;
        }
        Ok(())
    }

    /// `n` as a kernel's `unsigned int` argument, or an error naming `op` and `what`.
    pub fn u32_of(n: usize, op: &str, what: &str) -> candle_core::Result<u32> {
        u32::try_from(n).map_err(|_| candle_core::Error::Msg(format!("{op} (cuda): {what} = {n}")))
    }

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
