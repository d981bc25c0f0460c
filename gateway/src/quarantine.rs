//! The quarantine: every rejected message, with its reason, kept as evidence.
//!
//! Why its own file and not sled: rejected messages never enter the log, so unlike the
//! [indexes](crate::index) they cannot be rebuilt from it; the quarantine *is* the evidence (the
//! second half of an equivocation, the proof a device sent garbage). So it is an append-only,
//! checksummed file, `quarantine.log`, and every append is `fdatasync`ed before it returns: the
//! gateway acknowledges a message to the broker only after its rejection is durable (SPEC §3).
//!
//! # File format
//!
//! An 8-byte magic [`MAGIC`], then records, all integers little-endian:
//!
//! ```text
//! len u32 | crc32(len) u32 | body (len bytes) | crc32(body) u32
//! body = received_ms u64 | flags u8 (1: seq, 2: evidence, 4: raw truncated)
//!      | seq u64 | evidence_of u64 | BLAKE3 of the whole message [32] | message length u64
//!      | code (u8 len) | device (u8 len, 0 = none) | topic (u16 len) | detail (u16 len)
//!      | raw message (u32 len)
//! ```
//!
//! The length has its own checksum so that a corrupt length in the middle of the file is
//! reported as corruption instead of being mistaken for the end of the file. Limits keep a
//! hostile message from bloating the file: the raw bytes are kept up to 16 KiB (an `oversize`
//! message is cut, flagged, and keeps its full length and BLAKE3), the topic up to 1 KiB, the
//! detail up to 4 KiB.
//!
//! # Opening
//!
//! A crash can leave only a prefix of the last record (records are written with one `write`
//! and then synced): an incomplete record at the end is cut off (reported in [`OpenReport`];
//! it was never acknowledged). Anything else that does not check out — a checksum mismatch in
//! any complete record, an impossible length — is a [`QuarantineError::Corrupt`] naming the
//! offset: nothing is dropped silently.
//!
//! # Equivocation flags
//!
//! The per-code counts, the per-device record lists and the set of devices flagged for
//! equivocation are kept in memory and rebuilt from the file on open. A device is flagged by
//! every `equivocation` record naming it (its authenticated signer); the record's `evidence_of`
//! is the leaf of the logged twin. This is where device flags live: they cannot be derived from
//! the log.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use prov_schemas::Hash32;
use prov_schemas::cose::MAX_MESSAGE_LEN;
use prov_schemas::keys::DeviceId;

use crate::verify::{RejectCode, Rejection};

/// The first bytes of every quarantine file.
pub const MAGIC: &[u8; 8] = b"PROVQ01\n";

/// Longest topic kept, in bytes.
pub const MAX_TOPIC_LEN: usize = 1024;

/// Longest detail kept, in bytes.
pub const MAX_DETAIL_LEN: usize = 4096;

/// Longest record body: every field at its limit.
pub const MAX_BODY_LEN: usize = 8
    + 1
    + 8
    + 8
    + 32
    + 8
    + 1
    + 64
    + 1
    + 64
    + 2
    + MAX_TOPIC_LEN
    + 2
    + MAX_DETAIL_LEN
    + 4
    + MAX_MESSAGE_LEN;

const FLAG_SEQ: u8 = 1;
const FLAG_EVIDENCE: u8 = 2;
const FLAG_TRUNCATED: u8 = 4;
const HEADER_LEN: u64 = 8;
const TRAILER_LEN: u64 = 4;

/// A quarantine operation failed.
#[derive(Debug, thiserror::Error)]
pub enum QuarantineError {
    /// Reading, writing or syncing the file failed.
    #[error("quarantine {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The file does not start with [`MAGIC`].
    #[error("quarantine {path} is not a quarantine file (bad magic)")]
    BadMagic {
        /// The file.
        path: PathBuf,
    },
    /// A complete record does not check out.
    #[error("quarantine {path} is corrupt at offset {offset} (record {id}): {what}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Byte offset of the record.
        offset: u64,
        /// The record's id (its position).
        id: u64,
        /// What is wrong.
        what: &'static str,
    },
    /// No record with this id.
    #[error("no quarantine record {id} (there are {len})")]
    NoSuchRecord {
        /// The id asked for.
        id: u64,
        /// How many records there are.
        len: u64,
    },
    /// An earlier append failed and its partial record could not be cut off: the file needs
    /// reopening.
    #[error("quarantine {path} is unusable after a failed append; reopen it")]
    Poisoned {
        /// The file.
        path: PathBuf,
    },
}

type Result<T, E = QuarantineError> = std::result::Result<T, E>;

/// One quarantined message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantineRecord {
    /// Its id: its position in the file, from 0.
    pub id: u64,
    /// Receipt time, Unix milliseconds.
    pub received_ms: u64,
    /// The reason code.
    pub code: RejectCode,
    /// The reason, in words.
    pub detail: String,
    /// The device it names, if known.
    pub device: Option<DeviceId>,
    /// The topic it came on (or the source, e.g. `http:registry`).
    pub topic: String,
    /// Its `prov:seq`, if its payload decoded.
    pub seq: Option<u64>,
    /// For `equivocation`: the leaf of the logged twin.
    pub evidence_of: Option<u64>,
    /// BLAKE3 of the whole message as received.
    pub hash: Hash32,
    /// The message's length as received.
    pub message_len: u64,
    /// The message bytes (the first 16 KiB if it was longer: see `truncated`).
    pub raw: Vec<u8>,
    /// Whether `raw` was cut to 16 KiB.
    pub truncated: bool,
}

/// What opening found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OpenReport {
    /// Records in the file.
    pub records: u64,
    /// Bytes of an incomplete last record that were cut off.
    pub cut_bytes: u64,
    /// Whether the file was created.
    pub created: bool,
}

#[derive(Debug, Clone, Copy)]
struct Meta {
    offset: u64,
    code: RejectCode,
}

/// The quarantine file and its in-memory indexes.
#[derive(Debug)]
pub struct Quarantine {
    path: PathBuf,
    file: File,
    end: u64,
    poisoned: bool,
    records: Vec<Meta>,
    counts: BTreeMap<RejectCode, u64>,
    by_device: BTreeMap<DeviceId, Vec<u64>>,
    flagged: BTreeMap<DeviceId, Vec<u64>>,
}

fn clip_str(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default()
}

/// Encodes one record (header, body, trailer).
fn encode(rejection: &Rejection, topic: &str, raw: &[u8]) -> Vec<u8> {
    let topic = clip_str(topic, MAX_TOPIC_LEN);
    let detail = clip_str(&rejection.detail, MAX_DETAIL_LEN);
    let truncated = raw.len() > MAX_MESSAGE_LEN;
    let kept = raw.get(..MAX_MESSAGE_LEN).unwrap_or(raw);
    let mut flags = 0;
    if rejection.seq.is_some() {
        flags |= FLAG_SEQ;
    }
    if rejection.evidence_of.is_some() {
        flags |= FLAG_EVIDENCE;
    }
    if truncated {
        flags |= FLAG_TRUNCATED;
    }
    let code = rejection.code.as_str().as_bytes();
    let device = rejection
        .device
        .as_ref()
        .map(DeviceId::as_bytes)
        .unwrap_or_default();
    let mut body = Vec::with_capacity(128 + topic.len() + detail.len() + kept.len());
    body.extend_from_slice(&rejection.received_ms.to_le_bytes());
    body.push(flags);
    body.extend_from_slice(&rejection.seq.unwrap_or(0).to_le_bytes());
    body.extend_from_slice(&rejection.evidence_of.unwrap_or(0).to_le_bytes());
    body.extend_from_slice(rejection.hash.as_bytes());
    body.extend_from_slice(&(raw.len() as u64).to_le_bytes());
    // Lengths below are bounded by the clips above (code ≤ 16, device ≤ 64 bytes).
    body.push(code.len() as u8);
    body.extend_from_slice(code);
    body.push(device.len() as u8);
    body.extend_from_slice(device);
    body.extend_from_slice(&(topic.len() as u16).to_le_bytes());
    body.extend_from_slice(topic.as_bytes());
    body.extend_from_slice(&(detail.len() as u16).to_le_bytes());
    body.extend_from_slice(detail.as_bytes());
    body.extend_from_slice(&(kept.len() as u32).to_le_bytes());
    body.extend_from_slice(kept);
    let len = (body.len() as u32).to_le_bytes();
    let mut out = Vec::with_capacity(body.len() + 12);
    out.extend_from_slice(&len);
    out.extend_from_slice(&crc32fast::hash(&len).to_le_bytes());
    out.extend_from_slice(&body);
    out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    out
}

/// A cursor over a record body.
struct Body<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Body<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let out = self.buf.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(out)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn text(&mut self, n: usize) -> Option<&'a str> {
        std::str::from_utf8(self.take(n)?).ok()
    }
}

/// Decodes a body whose checksum already matched.
fn decode(id: u64, body: &[u8]) -> Option<QuarantineRecord> {
    let mut b = Body { buf: body, pos: 0 };
    let received_ms = b.u64()?;
    let flags = b.u8()?;
    let seq = b.u64()?;
    let evidence_of = b.u64()?;
    let hash = Hash32(b.take(32)?.try_into().ok()?);
    let message_len = b.u64()?;
    let code_len = usize::from(b.u8()?);
    let code: RejectCode = b.text(code_len)?.parse().ok()?;
    let device_len = usize::from(b.u8()?);
    let device = match device_len {
        0 => None,
        n => Some(DeviceId::from_bytes(b.take(n)?).ok()?),
    };
    let topic_len = usize::from(b.u16()?);
    let topic = b.text(topic_len)?.to_owned();
    let detail_len = usize::from(b.u16()?);
    let detail = b.text(detail_len)?.to_owned();
    let raw_len = usize::try_from(b.u32()?).ok()?;
    let raw = b.take(raw_len)?.to_vec();
    if b.pos != body.len() || flags & !(FLAG_SEQ | FLAG_EVIDENCE | FLAG_TRUNCATED) != 0 {
        return None;
    }
    Some(QuarantineRecord {
        id,
        received_ms,
        code,
        detail,
        device,
        topic,
        seq: (flags & FLAG_SEQ != 0).then_some(seq),
        evidence_of: (flags & FLAG_EVIDENCE != 0).then_some(evidence_of),
        hash,
        message_len,
        raw,
        truncated: flags & FLAG_TRUNCATED != 0,
    })
}

/// The outcome of reading one record at the current position.
enum Next {
    /// A valid record and its total size in bytes.
    Record(Box<QuarantineRecord>, u64),
    /// The end of the file.
    End,
    /// An incomplete record at the end of the file.
    Torn,
}

/// Reads the record `id` at `offset`, with `remaining` bytes left in the file.
fn read_record<R: Read>(
    path: &Path,
    reader: &mut R,
    id: u64,
    offset: u64,
    remaining: u64,
) -> Result<Next> {
    let io_err = |source| QuarantineError::Io {
        path: path.to_path_buf(),
        source,
    };
    let corrupt = |what| QuarantineError::Corrupt {
        path: path.to_path_buf(),
        offset,
        id,
        what,
    };
    if remaining == 0 {
        return Ok(Next::End);
    }
    if remaining < HEADER_LEN {
        return Ok(Next::Torn);
    }
    let mut header = [0u8; 8];
    reader.read_exact(&mut header).map_err(io_err)?;
    let (len_bytes, crc_bytes) = header.split_at(4);
    let len = u32::from_le_bytes(len_bytes.try_into().map_err(|_| corrupt("header"))?);
    let crc = u32::from_le_bytes(crc_bytes.try_into().map_err(|_| corrupt("header"))?);
    if crc32fast::hash(len_bytes) != crc {
        return Err(corrupt("length checksum mismatch"));
    }
    let len = u64::from(len);
    if len > MAX_BODY_LEN as u64 {
        return Err(corrupt("record longer than the maximum"));
    }
    let total = HEADER_LEN + len + TRAILER_LEN;
    if remaining < total {
        return Ok(Next::Torn);
    }
    let mut rest = vec![0u8; (len + TRAILER_LEN) as usize];
    reader.read_exact(&mut rest).map_err(io_err)?;
    let (body, trailer) = rest.split_at(len as usize);
    let crc = u32::from_le_bytes(trailer.try_into().map_err(|_| corrupt("trailer"))?);
    if crc32fast::hash(body) != crc {
        return Err(corrupt("record checksum mismatch"));
    }
    let record = decode(id, body).ok_or_else(|| corrupt("record body does not decode"))?;
    Ok(Next::Record(Box::new(record), total))
}

impl Quarantine {
    /// Opens (or creates) the quarantine file at `path`, checks every record and cuts an
    /// incomplete last record.
    pub fn open(path: impl AsRef<Path>) -> Result<(Quarantine, OpenReport)> {
        let path = path.as_ref().to_path_buf();
        let io_err = |source| QuarantineError::Io {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err)?;
        let mut report = OpenReport::default();
        let file_len = file.metadata().map_err(io_err)?.len();
        if file_len < MAGIC.len() as u64 {
            // New, or torn while being created: only a prefix of the magic may be there.
            let mut head = Vec::new();
            file.read_to_end(&mut head).map_err(io_err)?;
            if !MAGIC.starts_with(&head) {
                return Err(QuarantineError::BadMagic { path });
            }
            file.set_len(0).map_err(io_err)?;
            file.seek(SeekFrom::Start(0)).map_err(io_err)?;
            file.write_all(MAGIC).map_err(io_err)?;
            file.sync_all().map_err(io_err)?;
            sync_dir(&path).map_err(io_err)?;
            report.created = true;
        }
        let file_len = file.metadata().map_err(io_err)?.len();
        let mut q = Quarantine {
            path: path.clone(),
            file,
            end: MAGIC.len() as u64,
            poisoned: false,
            records: Vec::new(),
            counts: BTreeMap::new(),
            by_device: BTreeMap::new(),
            flagged: BTreeMap::new(),
        };
        let mut reader = BufReader::new(File::open(&path).map_err(io_err)?);
        let mut magic = [0u8; 8];
        reader.read_exact(&mut magic).map_err(io_err)?;
        if &magic != MAGIC {
            return Err(QuarantineError::BadMagic { path });
        }
        loop {
            let id = q.records.len() as u64;
            match read_record(&path, &mut reader, id, q.end, file_len - q.end)? {
                Next::Record(record, size) => {
                    q.index(q.end, record.code, record.device);
                    q.end += size;
                }
                Next::End => break,
                Next::Torn => {
                    report.cut_bytes = file_len - q.end;
                    tracing::warn!(
                        path = %path.display(),
                        offset = q.end,
                        bytes = report.cut_bytes,
                        "cutting an incomplete last quarantine record"
                    );
                    q.file.set_len(q.end).map_err(io_err)?;
                    q.file.sync_all().map_err(io_err)?;
                    break;
                }
            }
        }
        report.records = q.records.len() as u64;
        Ok((q, report))
    }

    /// Adds a record at `offset` to the in-memory indexes; returns its id.
    fn index(&mut self, offset: u64, code: RejectCode, device: Option<DeviceId>) -> u64 {
        let id = self.records.len() as u64;
        self.records.push(Meta { offset, code });
        *self.counts.entry(code).or_default() += 1;
        if let Some(device) = device {
            self.by_device.entry(device).or_default().push(id);
            if code == RejectCode::Equivocation {
                self.flagged.entry(device).or_default().push(id);
            }
        }
        id
    }

    /// Appends one rejection with the topic (or source) and the raw message; durable
    /// (`fdatasync`) when it returns. Returns the record's id.
    pub fn append(&mut self, rejection: &Rejection, topic: &str, raw: &[u8]) -> Result<u64> {
        let ids = self.append_batch(&[(rejection, topic, raw)])?;
        ids.first()
            .copied()
            .ok_or_else(|| QuarantineError::Poisoned {
                path: self.path.clone(),
            })
    }

    /// Appends several rejections with one write and one `fdatasync`. Returns their ids.
    pub fn append_batch(&mut self, items: &[(&Rejection, &str, &[u8])]) -> Result<Vec<u64>> {
        if self.poisoned {
            return Err(QuarantineError::Poisoned {
                path: self.path.clone(),
            });
        }
        let mut bytes = Vec::new();
        let mut metas = Vec::with_capacity(items.len());
        for (rejection, topic, raw) in items {
            let record = encode(rejection, topic, raw);
            metas.push(self.end + bytes.len() as u64);
            bytes.extend_from_slice(&record);
        }
        if let Err(source) = self.write_synced(&bytes) {
            // Cut whatever part reached the file, so later appends stay readable.
            let cut = self
                .file
                .set_len(self.end)
                .and_then(|()| self.file.sync_all());
            if cut.is_err() {
                self.poisoned = true;
            }
            return Err(QuarantineError::Io {
                path: self.path.clone(),
                source,
            });
        }
        let mut ids = Vec::with_capacity(items.len());
        for ((rejection, _, _), offset) in items.iter().zip(metas) {
            ids.push(self.index(offset, rejection.code, rejection.device));
        }
        self.end += bytes.len() as u64;
        Ok(ids)
    }

    fn write_synced(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.seek(SeekFrom::Start(self.end))?;
        self.file.write_all(bytes)?;
        self.file.sync_data()
    }

    /// The number of records.
    pub fn len(&self) -> u64 {
        self.records.len() as u64
    }

    /// Whether there are no records.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads record `id`.
    pub fn get(&self, id: u64) -> Result<QuarantineRecord> {
        let meta = usize::try_from(id)
            .ok()
            .and_then(|i| self.records.get(i))
            .ok_or(QuarantineError::NoSuchRecord {
                id,
                len: self.len(),
            })?;
        let io_err = |source| QuarantineError::Io {
            path: self.path.clone(),
            source,
        };
        let mut file = File::open(&self.path).map_err(io_err)?;
        file.seek(SeekFrom::Start(meta.offset)).map_err(io_err)?;
        let mut reader = BufReader::new(file);
        match read_record(
            &self.path,
            &mut reader,
            id,
            meta.offset,
            self.end - meta.offset,
        )? {
            Next::Record(record, _) => Ok(*record),
            Next::End | Next::Torn => Err(QuarantineError::Corrupt {
                path: self.path.clone(),
                offset: meta.offset,
                id,
                what: "record vanished",
            }),
        }
    }

    /// Every record, in order (reads the file; records appended after the call are not seen).
    pub fn iter(&self) -> Result<QuarantineIter> {
        let io_err = |source| QuarantineError::Io {
            path: self.path.clone(),
            source,
        };
        let mut file = File::open(&self.path).map_err(io_err)?;
        file.seek(SeekFrom::Start(MAGIC.len() as u64))
            .map_err(io_err)?;
        Ok(QuarantineIter {
            path: self.path.clone(),
            reader: BufReader::new(file),
            id: 0,
            offset: MAGIC.len() as u64,
            end: self.end,
            done: false,
        })
    }

    /// How many records each reason code has (codes with none are absent).
    pub fn counts(&self) -> &BTreeMap<RejectCode, u64> {
        &self.counts
    }

    /// The ids of the records with this code.
    pub fn ids_with_code(&self, code: RejectCode) -> Vec<u64> {
        (0u64..)
            .zip(&self.records)
            .filter(|(_, m)| m.code == code)
            .map(|(id, _)| id)
            .collect()
    }

    /// The ids of the records naming `device`.
    pub fn ids_for_device(&self, device: &DeviceId) -> &[u64] {
        self.by_device.get(device).map_or(&[], Vec::as_slice)
    }

    /// Whether `device` is flagged (an `equivocation` record names it).
    pub fn is_flagged(&self, device: &DeviceId) -> bool {
        self.flagged.contains_key(device)
    }

    /// Every flagged device with the ids of its `equivocation` records.
    pub fn flagged(&self) -> &BTreeMap<DeviceId, Vec<u64>> {
        &self.flagged
    }
}

/// Iterates over the records of a [`Quarantine`] (see [`Quarantine::iter`]).
#[derive(Debug)]
pub struct QuarantineIter {
    path: PathBuf,
    reader: BufReader<File>,
    id: u64,
    offset: u64,
    end: u64,
    done: bool,
}

impl Iterator for QuarantineIter {
    type Item = Result<QuarantineRecord>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let remaining = self.end.saturating_sub(self.offset);
        match read_record(
            &self.path,
            &mut self.reader,
            self.id,
            self.offset,
            remaining,
        ) {
            Ok(Next::Record(record, size)) => {
                self.id += 1;
                self.offset += size;
                Some(Ok(*record))
            }
            Ok(Next::End) => {
                self.done = true;
                None
            }
            Ok(Next::Torn) => {
                self.done = true;
                Some(Err(QuarantineError::Corrupt {
                    path: self.path.clone(),
                    offset: self.offset,
                    id: self.id,
                    what: "record cut short",
                }))
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// Syncs the directory holding `path`, so a newly created file's entry is durable.
fn sync_dir(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(())
    }
}
