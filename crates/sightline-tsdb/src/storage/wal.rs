//! Record framing shared by the WAL and checkpoints, the byte codec, and WAL segments.
//!
//! A record is `[payload length: u32 LE][CRC-32C of the payload: u32 LE][payload]`. Reading stops at the
//! first record that is short, too long or fails its checksum: everything before it is kept, and the
//! reason and byte offset are reported.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::labels::{Label, Labels};
use crate::traits::StorageError;

/// Records larger than this are treated as corrupt (a torn length field otherwise asks for gigabytes).
pub(crate) const MAX_RECORD: usize = 256 << 20;

const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

pub(crate) fn io_err(path: &Path, source: std::io::Error) -> StorageError {
    StorageError::Io { path: path.display().to_string(), source }
}

/// Frames `payload` as one record appended to `out`.
pub(crate) fn frame(out: &mut Vec<u8>, payload: &[u8]) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&CRC.checksum(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// The records of a framed file: the readable payloads and, if reading stopped early, why and where.
#[derive(Debug, Default)]
pub(crate) struct Records<'a> {
    pub payloads: Vec<&'a [u8]>,
    pub error: Option<(usize, String)>,
}

pub(crate) fn read_records(data: &[u8]) -> Records<'_> {
    let mut out = Records::default();
    let mut pos = 0;
    while pos < data.len() {
        let Some(header) = data.get(pos..pos + 8) else {
            out.error = Some((pos, "truncated record header".into()));
            break;
        };
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if len > MAX_RECORD {
            out.error = Some((pos, format!("record length {len} is implausible")));
            break;
        }
        let Some(payload) = data.get(pos + 8..pos + 8 + len) else {
            out.error = Some((pos, "truncated record".into()));
            break;
        };
        if CRC.checksum(payload) != crc {
            out.error = Some((pos, "checksum mismatch".into()));
            break;
        }
        out.payloads.push(payload);
        pos += 8 + len;
    }
    out
}

// === Codec ===

/// Appends primitive values to a byte buffer.
pub(crate) trait Put {
    fn put_u8(&mut self, v: u8);
    fn put_uvarint(&mut self, v: u64);
    fn put_varint(&mut self, v: i64);
    fn put_f64(&mut self, v: f64);
    fn put_bytes(&mut self, b: &[u8]);
    fn put_labels(&mut self, labels: &Labels);
}

impl Put for Vec<u8> {
    fn put_u8(&mut self, v: u8) {
        self.push(v);
    }

    fn put_uvarint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.push(v as u8);
    }

    fn put_varint(&mut self, v: i64) {
        self.put_uvarint(((v << 1) ^ (v >> 63)) as u64);
    }

    fn put_f64(&mut self, v: f64) {
        self.extend_from_slice(&v.to_bits().to_le_bytes());
    }

    fn put_bytes(&mut self, b: &[u8]) {
        self.put_uvarint(b.len() as u64);
        self.extend_from_slice(b);
    }

    fn put_labels(&mut self, labels: &Labels) {
        self.put_uvarint(labels.len() as u64);
        for l in labels {
            self.put_bytes(l.name.as_bytes());
            self.put_bytes(l.value.as_bytes());
        }
    }
}

/// Reads primitive values; every read past the end or of malformed data gives `None`.
#[derive(Debug)]
pub(crate) struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    pub fn u8(&mut self) -> Option<u8> {
        let b = *self.data.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    pub fn uvarint(&mut self) -> Option<u64> {
        let mut out = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            out |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Some(out);
            }
        }
        None
    }

    pub fn varint(&mut self) -> Option<i64> {
        let u = self.uvarint()?;
        Some(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    pub fn f64(&mut self) -> Option<f64> {
        let b = self.data.get(self.pos..self.pos + 8)?;
        self.pos += 8;
        Some(f64::from_bits(u64::from_le_bytes(b.try_into().ok()?)))
    }

    pub fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.uvarint()?).ok()?;
        let b = self.data.get(self.pos..self.pos.checked_add(len)?)?;
        self.pos += len;
        Some(b)
    }

    pub fn string(&mut self) -> Option<String> {
        std::str::from_utf8(self.bytes()?).ok().map(str::to_owned)
    }

    pub fn labels(&mut self) -> Option<Labels> {
        let n = self.uvarint()?;
        let mut out = Vec::with_capacity(n.min(64) as usize);
        for _ in 0..n {
            let name = self.string()?;
            let value = self.string()?;
            out.push(Label::new(name, value));
        }
        Some(Labels::new(out))
    }
}

// === WAL records ===

/// Payload kind of a commit: series definitions first, then samples.
const KIND_COMMIT: u8 = 1;

/// A decoded commit record.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct CommitRecord {
    pub series: Vec<(u64, Labels)>,
    pub samples: Vec<(u64, i64, f64)>,
}

pub(crate) fn encode_commit(out: &mut Vec<u8>, series: &[(u64, &Labels)], samples: &[(u64, i64, f64)]) {
    out.put_u8(KIND_COMMIT);
    out.put_uvarint(series.len() as u64);
    for (id, labels) in series {
        out.put_uvarint(*id);
        out.put_labels(labels);
    }
    out.put_uvarint(samples.len() as u64);
    // Timestamps are stored as deltas from the previous sample's: a scrape's samples share one.
    let mut prev_t = 0i64;
    for &(id, t, v) in samples {
        out.put_uvarint(id);
        out.put_varint(t.wrapping_sub(prev_t));
        out.put_f64(v);
        prev_t = t;
    }
}

pub(crate) fn decode_commit(payload: &[u8]) -> Option<CommitRecord> {
    let mut c = Cursor::new(payload);
    if c.u8()? != KIND_COMMIT {
        return None;
    }
    let mut rec = CommitRecord::default();
    let n = c.uvarint()?;
    for _ in 0..n {
        let id = c.uvarint()?;
        rec.series.push((id, c.labels()?));
    }
    let n = c.uvarint()?;
    rec.samples.reserve(n.min(1 << 20) as usize);
    let mut prev_t = 0i64;
    for _ in 0..n {
        let id = c.uvarint()?;
        let t = prev_t.wrapping_add(c.varint()?);
        let v = c.f64()?;
        rec.samples.push((id, t, v));
        prev_t = t;
    }
    c.is_empty().then_some(rec)
}

// === impl Wal ===

/// The WAL directory: numbered segment files, the highest one open for appends.
#[derive(Debug)]
pub(crate) struct Wal {
    dir: PathBuf,
    file: File,
    segment: u64,
    size: u64,
    pub dirty: bool,
}

pub(crate) fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:08}"))
}

/// Segment numbers in `dir`, sorted. Files with other names are ignored.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<u64>, StorageError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
        let entry = entry.map_err(|e| io_err(dir, e))?;
        if let Some(n) = entry.file_name().to_str().and_then(|s| s.parse::<u64>().ok()) {
            out.push(n);
        }
    }
    out.sort_unstable();
    Ok(out)
}

impl Wal {
    /// Opens a new segment `n` (segments are never appended to after a restart, so a torn tail stays
    /// where it was found).
    pub fn create(dir: &Path, n: u64) -> Result<Self, StorageError> {
        let path = segment_path(dir, n);
        let file = OpenOptions::new().create(true).append(true).open(&path).map_err(|e| io_err(&path, e))?;
        let size = file.metadata().map_err(|e| io_err(&path, e))?.len();
        sync_dir(dir)?;
        Ok(Self { dir: dir.to_owned(), file, segment: n, size, dirty: false })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends framed bytes.
    pub fn write(&mut self, framed: &[u8]) -> Result<(), StorageError> {
        self.file.write_all(framed).map_err(|e| io_err(&segment_path(&self.dir, self.segment), e))?;
        self.size += framed.len() as u64;
        self.dirty = true;
        Ok(())
    }

    pub fn sync(&mut self) -> Result<(), StorageError> {
        if self.dirty {
            self.file.sync_data().map_err(|e| io_err(&segment_path(&self.dir, self.segment), e))?;
            self.dirty = false;
        }
        Ok(())
    }

    /// Syncs the current segment and starts the next one; returns the new segment's number.
    pub fn cut(&mut self) -> Result<u64, StorageError> {
        self.sync()?;
        let next = Self::create(&self.dir, self.segment + 1)?;
        *self = next;
        Ok(self.segment)
    }
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir).and_then(|f| f.sync_all()).map_err(|e| io_err(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_roundtrip_and_torn_tail() {
        let l = Labels::from_pairs(&[("__name__", "up"), ("job", "x")]);
        let mut payload = Vec::new();
        encode_commit(&mut payload, &[(7, &l)], &[(7, 1000, 1.5), (7, 2000, f64::NAN), (9, -5, 0.0)]);
        let rec = decode_commit(&payload).expect("decodes");
        assert_eq!(rec.series, vec![(7, l)]);
        assert_eq!(rec.samples.len(), 3);
        assert_eq!(rec.samples[2], (9, -5, 0.0));

        let mut file = Vec::new();
        frame(&mut file, &payload);
        frame(&mut file, &payload);
        let full = read_records(&file);
        assert_eq!(full.payloads.len(), 2);
        assert!(full.error.is_none());
        let torn = read_records(&file[..file.len() - 3]);
        assert_eq!(torn.payloads.len(), 1);
        assert_eq!(torn.error.as_ref().map(|e| e.0), Some(8 + payload.len()));
        let mut flipped = file.clone();
        flipped[10] ^= 0xff;
        let bad = read_records(&flipped);
        assert!(bad.payloads.is_empty());
        assert_eq!(bad.error.map(|e| e.1), Some("checksum mismatch".to_string()));
    }
}
