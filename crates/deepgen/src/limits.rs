//! Bounds checked before memory is allocated, so that a small input (a PNG
//! header that claims 20000x20000 pixels, `-n 1000000000`, a model flag with
//! a typo of three zeros) gets one clear line instead of an abort on a
//! failed allocation or a machine that swaps for an hour.
//!
//! The bound is this machine's available memory (`MemAvailable` in
//! `/proc/meminfo`), or the `DEEPGEN_MAX_MEMORY` environment variable
//! (bytes, or with a K/M/G suffix) when it is set: a service that embeds
//! deepgen sets its own share.

use std::sync::atomic::{AtomicU64, Ordering};

pub use crate::error::show_bytes;
use crate::error::{Error, Result};

/// The most pixels one image may have before it is decoded (`DEEPGEN_MAX_IMAGE_PIXELS` overrides):
/// 64 megapixels, a 8192x8192 picture, far above any data set deepgen trains on.
pub const DEFAULT_MAX_IMAGE_PIXELS: u64 = 1 << 26;

/// The largest number of examples a PNG sample grid shows (use .npy or .csv for more).
pub const MAX_GRID_IMAGES: usize = 10_000;

static BOUND: AtomicU64 = AtomicU64::new(0);

/// Sets the bound for this process (0: back to the environment and the machine), for programs
/// that embed deepgen and for the fuzz tests, without touching the environment.
pub fn set_memory_bound(bytes: u64) {
    BOUND.store(bytes, Ordering::Relaxed);
}

/// Bytes deepgen may allocate for one purpose (a data set, a model, a batch of samples).
pub fn memory_bound() -> u64 {
    let set = BOUND.load(Ordering::Relaxed);
    if set > 0 {
        return set;
    }
    if let Some(v) = std::env::var("DEEPGEN_MAX_MEMORY").ok().and_then(|s| parse_bytes(&s)) {
        return v;
    }
    available_memory().unwrap_or(8 << 30)
}

/// The most pixels an image may have.
pub fn max_image_pixels() -> u64 {
    std::env::var("DEEPGEN_MAX_IMAGE_PIXELS")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(DEFAULT_MAX_IMAGE_PIXELS)
}

/// `MemAvailable` from `/proc/meminfo`, in bytes (None off Linux).
pub fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// `123`, `64K`, `512M`, `2G` (powers of 1024) as bytes.
pub fn parse_bytes(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mul) = match s.char_indices().last()? {
        (i, 'k' | 'K') => (&s[..i], 1u64 << 10),
        (i, 'm' | 'M') => (&s[..i], 1 << 20),
        (i, 'g' | 'G') => (&s[..i], 1 << 30),
        _ => (s, 1),
    };
    num.trim().parse::<u64>().ok()?.checked_mul(mul)
}

/// `count` values of `size` bytes each, or an error saying what would not fit.
pub fn check_values(what: &str, count: u64, size: u64) -> Result<()> {
    let bound = memory_bound();
    match count.checked_mul(size) {
        Some(b) if b <= bound => Ok(()),
        b => Err(Error::config(format!(
            "{what} needs {} of memory, more than the {} available{}",
            b.map(show_bytes).unwrap_or_else(|| "more than 2^64 bytes".into()),
            show_bytes(bound),
            if std::env::var("DEEPGEN_MAX_MEMORY").is_ok() { " (DEEPGEN_MAX_MEMORY)" } else { "" }
        ))),
    }
}

/// Bytes a drawn value may cost while it is made (the activations of the layers before it): a
/// generous factor, so that only counts far too large for the machine are refused.
pub const BYTES_PER_DRAWN_VALUE: u64 = 64;

/// `count` examples of `dim` values drawn at once (`what`: the flag, e.g. `eval -n 1000000000`).
pub fn check_draws(what: &str, count: usize, dim: usize) -> Result<()> {
    let values = (count as u64).saturating_mul(dim as u64);
    check_values(what, values, BYTES_PER_DRAWN_VALUE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes_parse_with_suffixes() {
        assert_eq!(parse_bytes("123"), Some(123));
        assert_eq!(parse_bytes("64K"), Some(64 << 10));
        assert_eq!(parse_bytes("2g"), Some(2 << 30));
        assert_eq!(parse_bytes("x"), None);
        assert_eq!(parse_bytes(""), None);
    }

    #[test]
    fn a_count_past_the_bound_is_refused_with_its_size() {
        let e = check_values("sampling", u64::MAX / 2, 4).unwrap_err().to_string();
        assert!(e.starts_with("sampling needs more than 2^64 bytes"), "{e}");
        assert!(check_values("one value", 1, 4).is_ok());
    }
}
