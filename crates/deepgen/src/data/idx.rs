//! The IDX format of the MNIST files (LeCun et al.): a big-endian magic
//! `0x0000TTRR` (TT the element type, RR the rank), RR big-endian u32
//! dimensions, then the elements. Read raw or gzip-compressed.
//!
//! The header is checked before anything is allocated: the element count it
//! claims is compared with the file (raw) or read with a bounded `take`
//! (gzip), so a corrupt header asking for 10^12 items is an error, not an
//! out-of-memory; a payload that would not fit in memory once decoded
//! ([`crate::limits`]) is refused before it is read (a gzip bomb).

use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

/// The decoded content of one IDX file.
#[derive(Debug, Clone)]
pub struct Idx {
    pub dims: Vec<usize>,
    pub data: IdxData,
}

#[derive(Debug, Clone)]
pub enum IdxData {
    U8(Vec<u8>),
    F32(Vec<f32>),
}

impl Idx {
    pub fn to_f32(&self) -> Vec<f32> {
        match &self.data {
            IdxData::U8(v) => v.iter().map(|&b| b as f32).collect(),
            IdxData::F32(v) => v.clone(),
        }
    }
}

/// Reads an IDX file; `.gz` names (or a gzip magic) are decompressed.
pub fn read_file(path: &Path) -> Result<Idx> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse(&bytes, path)
}

/// Parses IDX bytes (raw or gzip). `path` only names the source in errors.
pub fn parse(bytes: &[u8], path: &Path) -> Result<Idx> {
    if bytes.len() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b {
        let mut dec = flate2::read::GzDecoder::new(bytes);
        let mut header = [0u8; 4];
        read_exact(&mut dec, &mut header, path, "header")?;
        let (elem, rank) = check_magic(&header, path)?;
        let mut dims_raw = vec![0u8; 4 * rank];
        read_exact(&mut dec, &mut dims_raw, path, "dimensions")?;
        let dims = dims_of(&dims_raw);
        let need = payload_len(&dims, elem, path)?;
        let mut data = Vec::with_capacity(need.min(64 << 20) as usize);
        (&mut dec)
            .take(need + 1)
            .read_to_end(&mut data)
            .map_err(|e| Error::bad_file(path, format!("gzip stream is corrupt: {e}")))?;
        finish(dims, elem, data, need, path)
    } else {
        if bytes.len() < 4 {
            return Err(Error::bad_file(path, "truncated IDX file: no 4-byte magic number"));
        }
        let (elem, rank) = check_magic(&bytes[..4], path)?;
        let hdr = 4 + 4 * rank;
        if bytes.len() < hdr {
            return Err(Error::bad_file(
                path,
                format!(
                    "truncated IDX header: {rank} dimensions need {hdr} bytes, file has {}",
                    bytes.len()
                ),
            ));
        }
        let dims = dims_of(&bytes[4..hdr]);
        let need = payload_len(&dims, elem, path)?;
        finish(dims, elem, bytes[hdr..].to_vec(), need, path)
    }
}

fn read_exact(r: &mut impl Read, buf: &mut [u8], path: &Path, what: &str) -> Result<()> {
    r.read_exact(buf).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => {
            Error::bad_file(path, format!("truncated IDX file: ends inside the {what}"))
        }
        _ => Error::bad_file(path, format!("cannot read IDX {what}: {e}")),
    })
}

/// Returns (element size in bytes, rank).
fn check_magic(m: &[u8], path: &Path) -> Result<(usize, usize)> {
    if m[0] != 0 || m[1] != 0 {
        return Err(Error::bad_file(
            path,
            format!(
                "not an IDX file: magic {:02x}{:02x}{:02x}{:02x} does not start with 0000",
                m[0], m[1], m[2], m[3]
            ),
        ));
    }
    let elem = match m[2] {
        0x08 => 1,
        0x0D => 4,
        t => {
            return Err(Error::bad_file(
                path,
                format!(
                    "unsupported IDX element type 0x{t:02x} \
            (supported: 0x08 unsigned byte, 0x0D float)"
                ),
            ))
        }
    };
    let rank = m[3] as usize;
    if rank == 0 || rank > 4 {
        return Err(Error::bad_file(path, format!("IDX rank {rank} is not between 1 and 4")));
    }
    Ok((elem, rank))
}

fn dims_of(raw: &[u8]) -> Vec<usize> {
    raw.chunks(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize).collect()
}

fn payload_len(dims: &[usize], elem: usize, path: &Path) -> Result<u64> {
    let n = dims.iter().try_fold(elem as u64, |a, &d| a.checked_mul(d as u64));
    // The raw bytes and the f32 values they become are held at once.
    let decoded = n.and_then(|n| n.checked_mul(1 + 4 / elem as u64));
    match (n, decoded) {
        (Some(n), Some(b)) if b <= crate::limits::memory_bound() => Ok(n),
        (_, b) => Err(Error::bad_file(
            path,
            format!(
                "IDX header claims dimensions {dims:?} ({} once decoded), more than the {} \
                of memory available: a corrupt header?",
                b.map(crate::limits::show_bytes).unwrap_or_else(|| "more than 2^64 bytes".into()),
                crate::limits::show_bytes(crate::limits::memory_bound())
            ),
        )),
    }
}

fn finish(dims: Vec<usize>, elem: usize, data: Vec<u8>, need: u64, path: &Path) -> Result<Idx> {
    let have = data.len() as u64;
    if have < need {
        return Err(Error::bad_file(
            path,
            format!("truncated IDX file: header {dims:?} needs {need} data bytes, found {have}"),
        ));
    }
    if have > need {
        return Err(Error::bad_file(
            path,
            format!("IDX file has trailing bytes after the {need} that header {dims:?} describes"),
        ));
    }
    let data = if elem == 1 {
        IdxData::U8(data)
    } else {
        IdxData::F32(data.chunks(4).map(|c| f32::from_be_bytes([c[0], c[1], c[2], c[3]])).collect())
    };
    Ok(Idx { dims, data })
}

/// Encodes u8 data as a raw IDX file (for tests and for users exporting data).
pub fn encode_u8(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for &d in dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}
