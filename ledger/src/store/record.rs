//! The record framing of segment and chain files: `[u32 LE len][bytes][u32 LE CRC-32(len || bytes)]`.
//!
//! The checksum is there to find torn writes and media errors, not forgeries: an adversary with
//! the disk can recompute any checksum, and is caught by the Merkle root under the signed
//! checkpoint instead. CRC-32 (IEEE, `crc32fast`, ~10 GB/s) detects every error burst of up to
//! 32 bits and any other damage with probability 1 − 2⁻³², which is what that job needs; a
//! cryptographic hash per record would cost more CPU than the leaf hash and prove nothing more.

use std::fs::File;
use std::ops::ControlFlow;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::StoreError;
use super::io::io_err;

/// Framing bytes around each record's payload.
pub(crate) const OVERHEAD: u64 = 8;

/// How much a sequential scan reads at a time.
const CHUNK: usize = 1 << 20;

/// What is wrong with a record that failed validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Damage {
    /// The length field is larger than any record may be.
    #[error("length field {len} exceeds the maximum {max}")]
    Length {
        /// The length field as read.
        len: u64,
        /// The largest payload allowed.
        max: u64,
    },
    /// The record runs past the end of the file.
    #[error("record of {len} payload bytes runs past the end of the file ({available} bytes left)")]
    Truncated {
        /// The length field as read (0 when even the length field is cut).
        len: u64,
        /// Bytes left in the file from the record's start.
        available: u64,
    },
    /// The checksum does not match the record's bytes.
    #[error("checksum {stored:08x} does not match the record's {computed:08x}")]
    Checksum {
        /// As stored.
        stored: u32,
        /// As computed over length and payload.
        computed: u32,
    },
}

/// The checksum of a record: CRC-32 over the 4 length bytes and the payload.
pub(crate) fn checksum(len_bytes: [u8; 4], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&len_bytes);
    h.update(payload);
    h.finalize()
}

/// Appends the framed record of `payload` (at most `u32::MAX` bytes, checked by the caller).
pub(crate) fn encode_into(buf: &mut Vec<u8>, payload: &[u8]) {
    let len = (payload.len() as u32).to_le_bytes();
    buf.extend_from_slice(&len);
    buf.extend_from_slice(payload);
    buf.extend_from_slice(&checksum(len, payload).to_le_bytes());
}

/// The result of parsing one record at the start of a buffer.
enum Parse<'a> {
    /// A whole, valid record: its payload and its total length.
    Record(&'a [u8], usize),
    /// The buffer ends inside the record; `need` bytes in all would hold it (4 if the length
    /// itself is cut).
    Incomplete { need: usize, len: u64 },
    /// The record is damaged.
    Bad(Damage),
}

fn parse(buf: &[u8], max: u64) -> Parse<'_> {
    let Some(len_bytes) = buf.first_chunk::<4>().copied() else {
        return Parse::Incomplete { need: 4, len: 0 };
    };
    let len = u64::from(u32::from_le_bytes(len_bytes));
    if len > max {
        return Parse::Bad(Damage::Length { len, max });
    }
    let total = (len + OVERHEAD) as usize;
    let (Some(payload), Some(crc)) = (
        buf.get(4..total - 4),
        buf.get(total - 4..total).and_then(|c| c.first_chunk::<4>()),
    ) else {
        return Parse::Incomplete { need: total, len };
    };
    let stored = u32::from_le_bytes(*crc);
    let computed = checksum(len_bytes, payload);
    if stored != computed {
        return Parse::Bad(Damage::Checksum { stored, computed });
    }
    Parse::Record(payload, total)
}

/// Why a scan stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// Every byte of the range was a whole, valid record.
    End,
    /// The visitor asked to stop.
    Break,
    /// A record at the stop offset is damaged or cut by the end of the range.
    Damaged(Damage),
}

/// Where and why a scan stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ScanEnd {
    /// The offset after the last record visited (at a `Damaged` stop: the damaged record's).
    pub offset: u64,
    /// Records visited.
    pub records: u64,
    /// Why.
    pub stop: Stop,
}

/// Reads the records in `[start, end)` of `file` in order, in large sequential reads, calling
/// `visit(offset, payload)` for each whole, valid one. Stops at the end, at a `Break`, or at the
/// first damaged record.
pub(crate) fn scan(
    file: &File,
    path: &Path,
    start: u64,
    end: u64,
    max: u64,
    mut visit: impl FnMut(u64, &[u8]) -> Result<ControlFlow<()>, StoreError>,
) -> Result<ScanEnd, StoreError> {
    let mut buf: Vec<u8> = Vec::new();
    let mut buf_start = start;
    let mut pos = 0usize;
    let mut records = 0u64;
    loop {
        let rest = buf.get(pos..).unwrap_or_default();
        match parse(rest, max) {
            Parse::Record(payload, total) => {
                let offset = buf_start + pos as u64;
                records += 1;
                if visit(offset, payload)?.is_break() {
                    return Ok(ScanEnd {
                        offset: offset + total as u64,
                        records,
                        stop: Stop::Break,
                    });
                }
                pos += total;
            }
            Parse::Bad(damage) => {
                return Ok(ScanEnd {
                    offset: buf_start + pos as u64,
                    records,
                    stop: Stop::Damaged(damage),
                });
            }
            Parse::Incomplete { need, len } => {
                let loaded_end = buf_start + buf.len() as u64;
                let offset = buf_start + pos as u64;
                if loaded_end >= end {
                    let stop = if offset == end {
                        Stop::End
                    } else {
                        Stop::Damaged(Damage::Truncated {
                            len,
                            available: end - offset,
                        })
                    };
                    return Ok(ScanEnd {
                        offset,
                        records,
                        stop,
                    });
                }
                // Drop what was consumed, then read at least the rest of this record.
                buf.drain(..pos);
                buf_start = offset;
                pos = 0;
                let want = (need.saturating_sub(buf.len())).max(CHUNK) as u64;
                let take = want.min(end - loaded_end) as usize;
                let old = buf.len();
                buf.resize(old + take, 0);
                let slot = buf.get_mut(old..).unwrap_or_default();
                file.read_exact_at(slot, loaded_end)
                    .map_err(io_err("read", path))?;
            }
        }
    }
}

/// After a damaged record at `bad` in the last file of a log, tells a torn tail (a crash during
/// an append: nothing valid follows) from corruption (valid records follow the damage): returns
/// the offset of the first position after `bad` from which whole, valid records run back to
/// back to the end of the file (or into a record the end cuts short), if there is one.
///
/// A flipped bit in a length field makes the damaged record's extent meaningless, so every byte
/// position is tried, not only the damaged record's claimed end. Runs only during recovery.
pub(crate) fn find_valid_run(
    file: &File,
    path: &Path,
    bad: u64,
    end: u64,
    max: u64,
) -> Result<Option<u64>, StoreError> {
    let tail_len = usize::try_from(end.saturating_sub(bad)).unwrap_or(usize::MAX);
    let mut tail = vec![0u8; tail_len];
    file.read_exact_at(&mut tail, bad)
        .map_err(io_err("read", path))?;
    for q in 1..tail.len() {
        let Some(from_q) = tail.get(q..) else { break };
        if !matches!(parse(from_q, max), Parse::Record(..)) {
            continue;
        }
        // A valid record at q: do valid records follow it to the end?
        let mut p = 0usize;
        let runs_to_end = loop {
            match parse(from_q.get(p..).unwrap_or_default(), max) {
                Parse::Record(_, total) => p += total,
                Parse::Incomplete { .. } => break true,
                Parse::Bad(_) => break false,
            }
        };
        if runs_to_end {
            return Ok(Some(bad + q as u64));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let mut buf = Vec::new();
        encode_into(&mut buf, b"hello");
        assert_eq!(buf.len(), 13);
        assert!(matches!(parse(&buf, 100), Parse::Record(b"hello", 13)));
        assert!(matches!(
            parse(&buf[..7], 100),
            Parse::Incomplete { need: 13, len: 5 }
        ));
        assert!(matches!(
            parse(&buf, 4),
            Parse::Bad(Damage::Length { len: 5, max: 4 })
        ));
        buf[5] ^= 1;
        assert!(matches!(
            parse(&buf, 100),
            Parse::Bad(Damage::Checksum { .. })
        ));
        // All zeros is not a valid empty record.
        assert!(matches!(
            parse(&[0u8; 8], 100),
            Parse::Bad(Damage::Checksum { .. })
        ));
    }
}
