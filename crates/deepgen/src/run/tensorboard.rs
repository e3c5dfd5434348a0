//! TensorBoard event files beside `metrics.jsonl`, so that `tensorboard --logdir runs` shows
//! every run: scalars (`train/loss`, `train/lr`, `train/grad_norm`, `train/<part>` each step,
//! `val/nll` at each validation) and an image (`samples`, a grid of 16 draws) at each
//! checkpoint.
//!
//! The format is TensorFlow's: a file `events.out.tfevents.<secs>.<host>.<pid>` of records,
//! each `u64` length, masked CRC-32C of the length, the serialized `Event` protobuf, masked
//! CRC-32C of the data (little-endian; mask `((c >> 15) | (c << 17)) + 0xa282ead8`). The
//! messages are declared here with prost's derive from `tensorflow/core/util/event.proto` and
//! `summary.proto`, keeping only the fields written (the tag numbers are the protos'; no
//! crate carries TensorBoard's protos in a maintained form). The first event holds
//! `file_version = "brain.Event:2"`; a resumed run starts its new file with a
//! `SessionLog START` at the resume step, which tells TensorBoard to drop the steps after it
//! that the first file still holds (its "purge orphaned data").

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use prost::Message;

use crate::error::{Error, Result};

/// `tensorflow.Event`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Event {
    #[prost(double, tag = "1")]
    pub wall_time: f64,
    #[prost(int64, tag = "2")]
    pub step: i64,
    #[prost(oneof = "What", tags = "3, 5, 7")]
    pub what: Option<What>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum What {
    #[prost(string, tag = "3")]
    FileVersion(String),
    #[prost(message, tag = "5")]
    Summary(Summary),
    #[prost(message, tag = "7")]
    SessionLog(SessionLog),
}

/// `tensorflow.Summary`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Summary {
    #[prost(message, repeated, tag = "1")]
    pub value: Vec<Value>,
}

/// `tensorflow.Summary.Value`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Value {
    #[prost(string, tag = "1")]
    pub tag: String,
    #[prost(oneof = "Content", tags = "2, 4")]
    pub content: Option<Content>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Content {
    #[prost(float, tag = "2")]
    SimpleValue(f32),
    #[prost(message, tag = "4")]
    Image(Image),
}

/// `tensorflow.Summary.Image`: an encoded PNG.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Image {
    #[prost(int32, tag = "1")]
    pub height: i32,
    #[prost(int32, tag = "2")]
    pub width: i32,
    /// 1 grey, 3 RGB, 4 RGBA.
    #[prost(int32, tag = "3")]
    pub colorspace: i32,
    #[prost(bytes = "vec", tag = "4")]
    pub encoded_image_string: Vec<u8>,
}

/// `tensorflow.SessionLog`; status 1 is START.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SessionLog {
    #[prost(int32, tag = "1")]
    pub status: i32,
}

/// TensorFlow's masked CRC-32C.
pub fn masked_crc(b: &[u8]) -> u32 {
    let c = crc32c::crc32c(b);
    c.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// One record: length, its CRC, the data, its CRC.
pub fn record(data: &[u8]) -> Vec<u8> {
    let len = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc(data).to_le_bytes());
    out
}

/// Reads the records of an event file back, checking both CRCs of each; a record cut short at
/// the end (a run killed mid-write) ends the list, as TensorBoard's reader does.
pub fn read_events(path: &Path) -> Result<Vec<Event>> {
    let b = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let mut out = vec![];
    let mut i = 0;
    while i + 12 <= b.len() {
        let len_bytes = &b[i..i + 8];
        let crc = u32::from_le_bytes([b[i + 8], b[i + 9], b[i + 10], b[i + 11]]);
        if masked_crc(len_bytes) != crc {
            return Err(Error::bad_file(path, format!("record at byte {i}: bad length CRC")));
        }
        let len = u64::from_le_bytes(len_bytes.try_into().unwrap_or([0; 8])) as usize;
        let start = i + 12;
        let Some(end) = start.checked_add(len).filter(|e| e + 4 <= b.len()) else {
            break;
        };
        let data = &b[start..end];
        let crc = u32::from_le_bytes([b[end], b[end + 1], b[end + 2], b[end + 3]]);
        if masked_crc(data) != crc {
            return Err(Error::bad_file(path, format!("record at byte {i}: bad data CRC")));
        }
        let ev = Event::decode(data)
            .map_err(|e| Error::bad_file(path, format!("record at byte {i}: {e}")))?;
        out.push(ev);
        i = end + 4;
    }
    Ok(out)
}

/// The event files of a run directory, oldest first.
pub fn event_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().contains(".tfevents.")))
        .collect();
    v.sort();
    Ok(v)
}

/// Appends events to one new event file of a run directory; the file is made on the first
/// event, so a run that fails before its first step leaves none.
pub struct EventWriter {
    dir: PathBuf,
    out: Option<(PathBuf, BufWriter<File>)>,
    /// The step training resumes from (0 for a new run).
    start: usize,
}

impl EventWriter {
    pub fn new(dir: &Path, start: usize) -> Self {
        Self { dir: dir.to_path_buf(), out: None, start }
    }

    fn now() -> f64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0)
    }

    fn file(&mut self) -> Result<&mut BufWriter<File>> {
        if self.out.is_none() {
            let host = hostname();
            let secs = Self::now() as u64;
            // Two files of one process and second get different names.
            let mut k = 0;
            let path = loop {
                let suffix = if k == 0 { String::new() } else { format!(".{k}") };
                let p = self.dir.join(format!(
                    "events.out.tfevents.{secs}.{host}.{}{suffix}",
                    std::process::id()
                ));
                if !p.exists() {
                    break p;
                }
                k += 1;
            };
            let f = File::create(&path).map_err(|e| Error::io(&path, e))?;
            let mut w = BufWriter::new(f);
            let head = Event {
                wall_time: Self::now(),
                step: self.start as i64,
                what: Some(What::FileVersion("brain.Event:2".into())),
            };
            w.write_all(&record(&head.encode_to_vec())).map_err(|e| Error::io(&path, e))?;
            if self.start > 0 {
                let start = Event {
                    wall_time: Self::now(),
                    step: self.start as i64,
                    what: Some(What::SessionLog(SessionLog { status: 1 })),
                };
                w.write_all(&record(&start.encode_to_vec())).map_err(|e| Error::io(&path, e))?;
            }
            self.out = Some((path, w));
        }
        match &mut self.out {
            Some((_, w)) => Ok(w),
            None => Err(Error::config("event file not open")),
        }
    }

    fn write(&mut self, step: usize, values: Vec<Value>) -> Result<()> {
        let ev = Event {
            wall_time: Self::now(),
            step: step as i64,
            what: Some(What::Summary(Summary { value: values })),
        };
        let bytes = record(&ev.encode_to_vec());
        let w = self.file()?;
        let res = w.write_all(&bytes);
        let path = self.out.as_ref().map(|o| o.0.clone()).unwrap_or_default();
        res.map_err(|e| Error::io(path, e))
    }

    /// Scalars at `step`, one value per tag.
    pub fn scalars(&mut self, step: usize, tags: &[(String, f64)]) -> Result<()> {
        let values = tags
            .iter()
            .filter(|(_, v)| v.is_finite())
            .map(|(t, v)| Value { tag: t.clone(), content: Some(Content::SimpleValue(*v as f32)) })
            .collect();
        self.write(step, values)
    }

    /// A PNG image at `step`.
    pub fn image(&mut self, step: usize, tag: &str, png: Vec<u8>, w: u32, h: u32) -> Result<()> {
        let img =
            Image { height: h as i32, width: w as i32, colorspace: 3, encoded_image_string: png };
        self.write(step, vec![Value { tag: tag.into(), content: Some(Content::Image(img)) }])
    }

    /// Writes what is buffered (at each checkpoint, and when the writer is dropped).
    pub fn flush(&mut self) -> Result<()> {
        if let Some((p, w)) = &mut self.out {
            w.flush().map_err(|e| Error::io(p.as_path(), e))?;
        }
        Ok(())
    }
}

impl Drop for EventWriter {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// This machine's name, for the event file's name (TensorBoard's convention).
fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `len` bytes into the buffer it is given.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let end = buf.iter().position(|&b| b == 0).unwrap_or(0);
    let name = if ok { String::from_utf8_lossy(&buf[..end]).to_string() } else { String::new() };
    let clean: String =
        name.chars().filter(|c| c.is_ascii_alphanumeric() || "-_".contains(*c)).collect();
    if clean.is_empty() {
        "deepgen".into()
    } else {
        clean
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CRC-32C check value of "123456789" is 0xe3069283 (RFC 3720); TensorFlow's mask of
    /// it (rotate right 15, add 0xa282ead8), worked by hand, is 0xc78ab0e5.
    #[test]
    fn the_masked_crc_is_tensorflows() {
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(masked_crc(b"123456789"), 0xc78a_b0e5);
    }

    /// A scalar event's bytes, by hand from the protobuf wire format.
    #[test]
    fn a_scalar_event_encodes_as_the_proto_says() {
        let ev = Event {
            wall_time: 0.0,
            step: 3,
            what: Some(What::Summary(Summary {
                value: vec![Value { tag: "a".into(), content: Some(Content::SimpleValue(1.0)) }],
            })),
        };
        // step: field 2 varint 3; summary: field 5, length 10: value field 1, length 8: tag
        // field 1 "a", simple_value field 2 fixed32 1.0f.
        let want = [0x10, 3, 0x2a, 10, 0x0a, 8, 0x0a, 1, b'a', 0x15, 0, 0, 0x80, 0x3f];
        assert_eq!(ev.encode_to_vec(), want);
    }

    #[test]
    fn records_read_back_and_a_flipped_bit_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = EventWriter::new(dir.path(), 5);
        w.scalars(6, &[("train/loss".into(), 0.5), ("bad".into(), f64::NAN)]).unwrap();
        w.flush().unwrap();
        let files = event_files(dir.path()).unwrap();
        assert_eq!(files.len(), 1);
        let ev = read_events(&files[0]).unwrap();
        assert_eq!(ev.len(), 3);
        assert_eq!(ev[0].what, Some(What::FileVersion("brain.Event:2".into())));
        assert_eq!(ev[1].what, Some(What::SessionLog(SessionLog { status: 1 })));
        let Some(What::Summary(s)) = &ev[2].what else { panic!("not a summary") };
        assert_eq!(s.value.len(), 1, "the NaN is left out");
        assert_eq!(s.value[0].content, Some(Content::SimpleValue(0.5)));
        let mut b = std::fs::read(&files[0]).unwrap();
        let n = b.len();
        b[n - 6] ^= 1;
        std::fs::write(&files[0], &b).unwrap();
        assert!(read_events(&files[0]).unwrap_err().to_string().contains("bad data CRC"));
        // A torn last record ends the list.
        std::fs::write(&files[0], &b[..n - 3]).unwrap();
        assert_eq!(read_events(&files[0]).unwrap().len(), 2);
    }
}
