//! The create-graph switch: whether deepgen's fused ops build a
//! differentiable graph in their backward passes.

use std::cell::Cell;

thread_local! {
    static CREATE_GRAPH: Cell<bool> = const { Cell::new(false) };
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
