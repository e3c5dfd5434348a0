//! Access to the f32 values of contiguous CPU storage, for the custom ops.

use candle_core::{CpuStorage, Layout};

/// The contiguous f32 values `l` describes in `s`; `what` names the operand in the error.
pub(crate) fn f32s<'a>(
    s: &'a CpuStorage,
    l: &Layout,
    what: &str,
) -> candle_core::Result<&'a [f32]> {
    match (s, l.contiguous_offsets()) {
        (CpuStorage::F32(v), Some((a, b))) => Ok(&v[a..b]),
        (CpuStorage::F32(_), None) => candle_core::bail!("{what}: must be contiguous"),
        _ => candle_core::bail!("{what}: only f32 is supported"),
    }
}

/// [`f32s`], mutable (in-place ops).
pub(crate) fn f32s_mut<'a>(
    s: &'a mut CpuStorage,
    l: &Layout,
    what: &str,
) -> candle_core::Result<&'a mut [f32]> {
    match (s, l.contiguous_offsets()) {
        (CpuStorage::F32(v), Some((a, b))) => Ok(&mut v[a..b]),
        (CpuStorage::F32(_), None) => candle_core::bail!("{what}: must be contiguous"),
        _ => candle_core::bail!("{what}: only f32 is supported"),
    }
}
