//! NumPy `.npy` files (format versions 1-3): little-endian f32, f64 or u8, C order.
//! Written here rather than through candle's reader so that every failure
//! names the file and the problem, and the declared size is checked first.

use std::path::Path;

use crate::error::{Error, Result};

/// Returns (shape, values as f32, whether the source was u8).
pub fn read_file(path: &Path) -> Result<(Vec<usize>, Vec<f32>, bool)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse(&bytes, path)
}

pub fn parse(b: &[u8], path: &Path) -> Result<(Vec<usize>, Vec<f32>, bool)> {
    let bad = |m: String| Error::bad_file(path, m);
    if b.len() < 10 || &b[..6] != b"\x93NUMPY" {
        return Err(bad("not an NPY file (no \\x93NUMPY magic)".into()));
    }
    let (hlen, start) = match b[6] {
        1 => (u16::from_le_bytes([b[8], b[9]]) as usize, 10),
        2 | 3 if b.len() >= 12 => (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12),
        v => return Err(bad(format!("unsupported NPY version {v}"))),
    };
    let header = b.get(start..start + hlen).ok_or_else(|| bad("truncated NPY header".into()))?;
    let header = std::str::from_utf8(header).map_err(|_| bad("NPY header is not text".into()))?;
    let field = |key: &str| -> Result<&str> {
        let at = header
            .find(&format!("'{key}'"))
            .ok_or_else(|| bad(format!("NPY header has no '{key}'")))?;
        Ok(header[at + key.len() + 2..].trim_start().trim_start_matches(':').trim_start())
    };
    let descr = field("descr")?;
    // The dtype is a quoted string: `'<f4'`.
    let dtype = descr
        .strip_prefix('\'')
        .and_then(|d| d.split_once('\''))
        .map(|(d, _)| d)
        .ok_or_else(|| bad("NPY header's 'descr' is not a quoted dtype string".into()))?;
    let (size, kind) = match dtype {
        "<f4" => (4, 'f'),
        "<f8" => (8, 'd'),
        "|u1" | "<u1" => (1, 'u'),
        d => {
            let d = crate::error::shown(&d.chars().take(24).collect::<String>());
            return Err(bad(format!("unsupported NPY dtype `{d}` (supported: <f4, <f8, |u1)")));
        }
    };
    if field("fortran_order")?.starts_with("True") {
        return Err(bad("Fortran-order NPY arrays are not supported; save with C order".into()));
    }
    let shape_s = field("shape")?;
    let tuple = shape_s
        .strip_prefix('(')
        .and_then(|t| t.split_once(')'))
        .map(|(t, _)| t)
        .ok_or_else(|| bad("NPY shape is not a tuple".into()))?;
    let shape: Vec<usize> = tuple
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>().map_err(|_| {
                bad(format!("NPY shape entry `{}` is not a number", crate::error::shown(s)))
            })
        })
        .collect::<Result<_>>()?;
    let n = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| bad("NPY shape overflows".into()))?;
    let data = &b[start + hlen..];
    let need = n.checked_mul(size).ok_or_else(|| bad("NPY shape overflows".into()))?;
    if data.len() != need {
        return Err(bad(format!(
            "NPY shape {shape:?} needs {need} data bytes, file has {}",
            data.len()
        )));
    }
    let v: Vec<f32> = match kind {
        'f' => data.chunks(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
        'd' => data
            .chunks(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32)
            .collect(),
        _ => data.iter().map(|&x| x as f32).collect(),
    };
    Ok((shape, v, kind == 'u'))
}

/// Encodes an f32 array as NPY version 1.0 bytes.
pub fn encode_f32(shape: &[usize], data: &[f32]) -> Vec<u8> {
    let bytes: Vec<u8> = data.iter().flat_map(|x| x.to_le_bytes()).collect();
    encode_raw("<f4", shape, &bytes)
}

/// NPY version 1.0 bytes for already-encoded little-endian `data` of dtype
/// `descr` (e.g. `<f8`, `|u1`), C order.
pub fn encode_raw(descr: &str, shape: &[usize], data: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let tuple =
        if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let mut h = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {tuple}, }}");
    // The header is padded so that the data starts on a 64-byte boundary.
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(' ');
    }
    h.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(h.len() as u16).to_le_bytes());
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    out
}
