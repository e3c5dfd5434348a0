//! The create-graph switch: whether deepgen's fused ops build a
//! differentiable graph in their backward passes; and the portable switch:
//! whether they run at all.

use std::cell::Cell;

use candle_core::Device;

thread_local! {
    static CREATE_GRAPH: Cell<bool> = const { Cell::new(false) };
    static INPUTS_ONLY: Cell<bool> = const { Cell::new(false) };
    static PORTABLE: Cell<bool> = const { Cell::new(false) };
}

/// Whether deepgen's own CPU kernels (the fused custom ops) serve tensors on `dev`: on the CPU,
/// unless [`with_portable_ops`] is on. Everywhere else (a CUDA device) the same math runs as
/// candle ops, which every candle backend has. Every custom op is applied behind this test.
pub fn cpu_kernels(dev: &Device) -> bool {
    dev.is_cpu() && !portable()
}

/// Whether deepgen's CUDA kernels (`nn::cuda`) serve tensors on `dev`: on a CUDA device in a
/// build with the `cuda` feature, unless [`with_portable_ops`] is on (then candle ops, which
/// `tests/gpu.rs` compares the kernels with).
pub fn cuda_kernels(dev: &Device) -> bool {
    cfg!(feature = "cuda") && dev.is_cuda() && !portable()
}

/// The environment variable that turns deepgen's own kernels off for the whole process
/// (`DEEPGEN_PORTABLE_OPS=1`): every op then runs as candle ops, on the CPU as on a GPU. For a
/// machine that can run but not rebuild deepgen (the GPU machine has no Rust toolchain): a
/// kernel that proves wrong there can be stepped around, and the kernels' worth measured.
pub const PORTABLE_OPS_ENV: &str = "DEEPGEN_PORTABLE_OPS";

/// Whether [`with_portable_ops`] is on for this thread (the trainers carry it onto their worker
/// thread), or [`PORTABLE_OPS_ENV`] for the process.
pub(crate) fn portable() -> bool {
    static ENV: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    PORTABLE.with(|c| c.get())
        || *ENV.get_or_init(|| std::env::var(PORTABLE_OPS_ENV).is_ok_and(|v| v == "1"))
}

/// Runs `f` with [`with_portable_ops`] on when `on`, else as it is.
pub(crate) fn with_portable_if<T>(on: bool, f: impl FnOnce() -> T) -> T {
    if on {
        with_portable_ops(f)
    } else {
        f()
    }
}

/// Runs `f` on this thread with deepgen's CPU kernels off, as on a GPU: every op takes its
/// candle-op path. The tests compare the two paths on the CPU (tests/portable.rs), so the math a
/// CUDA device runs is checked on machines without one.
pub fn with_portable_ops<T>(f: impl FnOnce() -> T) -> T {
    let prev = PORTABLE.with(|c| c.replace(true));
    let out = f();
    PORTABLE.with(|c| c.set(prev));
    out
}

/// Whether deepgen's fused ops build a differentiable graph in their backward
/// passes (needed only to differentiate a gradient again: gradient penalties,
/// R1, unrolled updates). Off by default on each thread: backward passes then
/// use direct GEMMs and loops, which is what makes training fast.
pub fn create_graph() -> bool {
    CREATE_GRAPH.with(|c| c.get())
}

/// Runs `f` with [`create_graph`] on for this thread (like PyTorch's
/// `backward(create_graph=True)`), restoring the previous setting after.
pub fn with_create_graph<T>(f: impl FnOnce() -> T) -> T {
    let prev = CREATE_GRAPH.with(|c| c.replace(true));
    let out = f();
    CREATE_GRAPH.with(|c| c.set(prev));
    out
}

/// Whether the graph-building backward passes may skip the weights' gradients: set by
/// [`with_input_graph`] when only the gradient at the input is read (gradient penalties).
pub fn inputs_only() -> bool {
    INPUTS_ONLY.with(|c| c.get())
}

/// [`with_create_graph`] for a backward pass whose only use is the gradient at the input (a
/// gradient penalty's dD/dx): the fused convolutions then give their weight gradients as plain
/// values, not as graphs that would be built and never read.
pub fn with_input_graph<T>(f: impl FnOnce() -> T) -> T {
    let prev = INPUTS_ONLY.with(|c| c.replace(true));
    let out = with_create_graph(f);
    INPUTS_ONLY.with(|c| c.set(prev));
    out
}

/// Runs `f` with [`create_graph`] off (the weights' gradients in an inputs-only pass: plain
/// values, no graph).
pub(crate) fn without_create_graph<T>(f: impl FnOnce() -> T) -> T {
    let prev = CREATE_GRAPH.with(|c| c.replace(false));
    let out = f();
    CREATE_GRAPH.with(|c| c.set(prev));
    out
}
