//! Per-thread scratch buffers for values consumed inside one op.

use std::cell::RefCell;

thread_local! {
    static SCRATCH: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on a reused per-thread buffer of `len` values whose contents are
/// left over from earlier use: `f` must write every value it reads. The
/// im2col columns of a convolution are megabytes per call; a fresh allocation
/// for each costs the kernel's page zeroing, which here is paid once.
pub(crate) fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    let mut buf = SCRATCH.with(|s| s.borrow_mut().pop()).unwrap_or_default();
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    let r = f(&mut buf[..len]);
    SCRATCH.with(|s| s.borrow_mut().push(buf));
    r
}
