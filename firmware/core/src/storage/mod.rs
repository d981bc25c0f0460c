//! Power-safe persistence on NOR flash: the device's hash-chain state, the queue of signed events
//! waiting for the gateway's receipt, and the flash key slot.
//!
//! Everything here is written against `embedded-storage`'s blocking [`NorFlash`] traits and
//! nothing else, so the exact code that runs on the ESP32-C3 (`esp-storage`) runs in the host
//! tests on [`mem_flash::MemFlash`], which can fail or lose power at any write. The tests cut the
//! power at *every* write and erase of a long run ([`EventStore`] in `tests/powercut.rs`).
//!
//! # Layout
//!
//! Two regions of one flash device, each a whole number of erase sectors ([`Layout`]):
//!
//! - [`state`]: a small log of fixed 64-byte [`state::StateRecord`]s over two or more sectors,
//!   holding the last *reserved* seq, the newest durable message `(seq, BLAKE3)` and the last
//!   applied receipt.
//! - [`queue`]: a ring of erase sectors holding the signed messages, chunked so that a 16 KiB
//!   message (SPEC §2) fits on 4 KiB sectors.
//!
//! The key slot ([`key_slot`]) lives in its own data partition and is written only by
//! provisioning.
//!
//! # Durability contract ([`EventStore`])
//!
//! 1. `reserve` makes the new seq durable (a state record) *before* the caller signs anything,
//!    so no power cut can make the device hand out a seq twice. It first checks that the queue
//!    has room, so a full queue never burns a seq.
//! 2. `commit` appends the signed message to the queue; once it returns `Ok` the message survives
//!    any power cut and will be offered for publishing until a receipt covers it.
//! 3. The next message's `prov:prev` is the BLAKE3 of the newest message that reached the queue.
//!    A reservation lost to a power cut (or a failed signature) becomes a gap in `seq` whose
//!    neighbours still chain: seq N+1 carries the hash of N-1 (SPEC §4 accepts gaps).
//! 4. `release_through(receipt)` (the gateway's receipts topic, never the broker's PUBACK) is
//!    recorded in the state log before the queue may reuse the space it frees. The queue erases
//!    only inside a `commit`, which always follows a reservation record, and every record
//!    carries the chain head: the newest message's hash never lives only in a sector being
//!    erased.
//! 5. On boot, `open` takes the newest valid state record and the newest *complete* message in
//!    the queue; a message newer than the record (power lost between `commit` and the next
//!    record) becomes the chain head. A queue newer than the state (a restored old state
//!    partition) is refused rather than risk reusing seqs.
//!
//! # Queue-full policy
//!
//! When the queue cannot hold a message of the requested size, [`EventStore::reserve`] fails
//! with [`StorageError::QueueFull`] and counts the refusal ([`EventStore::dropped`]); no seq is
//! consumed and nothing queued is touched. Dropping the *oldest* unacknowledged event instead
//! would silently destroy evidence the gateway has not stored yet; refusing the newest keeps
//! what is queued intact and makes the loss visible (the count can be reported in a status
//! event once the link is back).
//!
//! # Flash wear
//!
//! Every reservation and every receipt that advances appends one 64-byte state record; a state
//! sector is erased once per `ERASE_SIZE / 64` records, rotating over the state sectors. Every
//! queue sector is erased once per trip of the ring. With 4 KiB sectors, 100 k erase cycles, an
//! 8-sector state region and events of ~500 bytes in a 256 KiB queue, both regions last for
//! roughly 50–100 M events; size the regions from the event rate (see [`state`] and [`queue`]).

use core::fmt;
use core::ops::Range;

use embedded_storage::nor_flash::{NorFlash, ReadNorFlash};

pub mod key_slot;
pub mod mem_flash;
pub mod queue;
pub mod state;
mod store;

pub use store::{ChainPoint, EventStore, Layout, Reservation};

/// Largest `READ_SIZE` / `WRITE_SIZE` the storage code supports (it pads through a stack buffer
/// of this size).
pub const MAX_ALIGN: usize = 256;

/// Which flash operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlashOp {
    /// `ReadNorFlash::read`.
    Read,
    /// `NorFlash::write`.
    Write,
    /// `NorFlash::erase`.
    Erase,
}

impl fmt::Display for FlashOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FlashOp::Read => "read",
            FlashOp::Write => "write",
            FlashOp::Erase => "erase",
        })
    }
}

/// A storage operation failed. `E` is the flash driver's error type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorageError<E: fmt::Debug> {
    /// The flash driver reported an error (for a write or erase, the bytes concerned are now in
    /// an unknown state; the on-flash formats tolerate that).
    #[error("flash {op} of {len} bytes at {addr:#x} failed: {error:?}")]
    Flash {
        /// The operation.
        op: FlashOp,
        /// Its start address.
        addr: u32,
        /// Its length in bytes.
        len: u32,
        /// The driver's error.
        error: E,
    },
    /// A region is misaligned, too small or outside the flash.
    #[error("region {start:#x}..{end:#x} cannot be used: {reason}")]
    BadRegion {
        /// Region start.
        start: u32,
        /// Region end (exclusive).
        end: u32,
        /// What is wrong.
        reason: &'static str,
    },
    /// The flash geometry is outside what this code supports.
    #[error("flash {what} is {got}, supported up to {max}")]
    Geometry {
        /// Which constant.
        what: &'static str,
        /// Its value.
        got: usize,
        /// The supported maximum.
        max: usize,
    },
    /// The state region is erased: the device was never provisioned.
    #[error("state region {start:#x}..{end:#x} is blank: format (provision) it first")]
    NotProvisioned {
        /// Region start.
        start: u32,
        /// Region end (exclusive).
        end: u32,
    },
    /// The state region holds data but no valid record. Starting over would reuse seqs, so the
    /// device refuses; an operator re-provisions it from the gateway's last known seq.
    #[error("state region {start:#x}..{end:#x} holds no valid record (corrupt)")]
    StateCorrupt {
        /// Region start.
        start: u32,
        /// Region end (exclusive).
        end: u32,
    },
    /// A state record would move a counter backwards.
    #[error("state record would regress {field}: have {have}, got {got}")]
    StateRegression {
        /// Which counter.
        field: &'static str,
        /// The current value.
        have: u64,
        /// The value offered.
        got: u64,
    },
    /// The queue holds a message newer than the newest reservation the state knows: the state
    /// partition was rolled back. Continuing would reuse seqs.
    #[error("queue holds seq {queue} but the state has only reserved up to {state}")]
    StateBehindQueue {
        /// Newest seq in the queue.
        queue: u64,
        /// Newest reserved seq in the state.
        state: u64,
    },
    /// The 64-bit seq space is exhausted.
    #[error("seq space exhausted after {last}")]
    SeqExhausted {
        /// The last seq handed out.
        last: u64,
    },
    /// A message length outside `1..=max`.
    #[error("message has {got} bytes, want 1..={max}")]
    MessageSize {
        /// Bytes offered.
        got: usize,
        /// The limit.
        max: usize,
    },
    /// The queue cannot take a message of this size until receipts free space.
    #[error("queue full: message needs {need} bytes, room for {free}")]
    QueueFull {
        /// Bytes needed.
        need: usize,
        /// Largest message that fits now.
        free: usize,
    },
    /// A push whose seq is not above every seq already queued.
    #[error("seq {got} is not above the newest queued seq {newest}")]
    SeqNotIncreasing {
        /// The seq offered.
        got: u64,
        /// The newest seq in the queue.
        newest: u64,
    },
    /// `commit` with a message longer than its reservation checked space for.
    #[error("message for seq {seq} has {got} bytes, reservation was for {reserved}")]
    ExceedsReservation {
        /// The reservation's seq.
        seq: u64,
        /// Bytes offered.
        got: usize,
        /// Bytes reserved.
        reserved: usize,
    },
    /// `commit` with a reservation that is not the newest one.
    #[error("reservation for seq {got} is stale, the newest reservation is {newest}")]
    StaleReservation {
        /// The reservation's seq.
        got: u64,
        /// The newest reserved seq.
        newest: u64,
    },
    /// A queued message no longer reads back as it was validated (its sectors were reused, or the
    /// flash changed underneath).
    #[error("message seq {seq} at {addr:#x}: {what}")]
    Corrupt {
        /// The message's seq.
        seq: u64,
        /// Address of the entry that failed.
        addr: u32,
        /// What did not match.
        what: &'static str,
    },
    /// The caller's buffer is too small for the message.
    #[error("buffer has {got} bytes, message needs {want}")]
    BufferTooSmall {
        /// Buffer size.
        got: usize,
        /// Message size.
        want: usize,
    },
    /// A write failed and read-back could not tell whether the message became durable; the chain
    /// head is unknown until the store is reopened (what a reboot does).
    #[error("a failed write left the chain head unknown: reopen the store")]
    NeedsReopen,
}

/// CRC-32/ISO-HDLC (the zlib / Ethernet CRC: reflected polynomial 0xEDB88320, init and final
/// XOR 0xFFFFFFFF), check value `crc32(b"123456789") == 0xCBF43926`.
///
/// Records are checksummed, not authenticated: the threat here is a torn or worn write, not an
/// attacker with flash access (who could also read a flash key). A 4-bit table keeps it at
/// 64 bytes of ROM.
pub fn crc32(data: &[u8]) -> u32 {
    !crc32_update(!0, data)
}

/// Continues a CRC-32 over more bytes; start with `!0` and finish with `!crc`.
pub(crate) fn crc32_update(mut crc: u32, data: &[u8]) -> u32 {
    for &byte in data {
        crc = CRC32_NIBBLES[((crc ^ u32::from(byte)) & 0x0f) as usize] ^ (crc >> 4);
        crc = CRC32_NIBBLES[((crc ^ (u32::from(byte) >> 4)) & 0x0f) as usize] ^ (crc >> 4);
    }
    crc
}

const CRC32_NIBBLES: [u32; 16] = crc32_nibble_table();

const fn crc32_nibble_table() -> [u32; 16] {
    let mut table = [0u32; 16];
    let mut i = 0;
    while i < 16 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 4 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xedb8_8320
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

/// `value` rounded up to a multiple of `align` (`align >= 1`).
pub(crate) const fn round_up(value: u32, align: u32) -> u32 {
    value.div_ceil(align) * align
}

/// Whether every byte is erased (`0xFF`).
pub(crate) fn is_blank(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| b == 0xff)
}

/// Checks the driver's constants against what the storage code supports.
pub(crate) fn check_geometry<F: NorFlash>() -> Result<(), StorageError<F::Error>> {
    for (what, got) in [("READ_SIZE", F::READ_SIZE), ("WRITE_SIZE", F::WRITE_SIZE)] {
        if got == 0 || got > MAX_ALIGN {
            return Err(StorageError::Geometry {
                what,
                got,
                max: MAX_ALIGN,
            });
        }
    }
    if F::ERASE_SIZE == 0
        || F::ERASE_SIZE > u32::MAX as usize / 2
        || !F::ERASE_SIZE.is_multiple_of(F::WRITE_SIZE)
        || !F::ERASE_SIZE.is_multiple_of(F::READ_SIZE)
    {
        return Err(StorageError::Geometry {
            what: "ERASE_SIZE (must be a multiple of READ_SIZE and WRITE_SIZE)",
            got: F::ERASE_SIZE,
            max: u32::MAX as usize / 2,
        });
    }
    Ok(())
}

/// Checks that `region` is sector-aligned, inside the flash and at least `min_sectors` long;
/// returns the number of sectors.
pub(crate) fn check_region<F: NorFlash>(
    flash: &F,
    region: &Range<u32>,
    min_sectors: u32,
) -> Result<u32, StorageError<F::Error>> {
    check_geometry::<F>()?;
    let bad = |reason| StorageError::BadRegion {
        start: region.start,
        end: region.end,
        reason,
    };
    let erase = F::ERASE_SIZE as u32;
    if region.start > region.end {
        return Err(bad("start is after end"));
    }
    if !region.start.is_multiple_of(erase) || !region.end.is_multiple_of(erase) {
        return Err(bad("not aligned to the erase size"));
    }
    if region.end as usize > flash.capacity() {
        return Err(bad("extends past the end of the flash"));
    }
    let sectors = (region.end - region.start) / erase;
    if sectors < min_sectors {
        return Err(bad("too few erase sectors"));
    }
    Ok(sectors)
}

/// Reads `buf.len()` bytes at any address, honouring the driver's `READ_SIZE` alignment through
/// a bounce buffer for the unaligned head and tail.
pub(crate) fn read<F: ReadNorFlash>(
    flash: &mut F,
    addr: u32,
    buf: &mut [u8],
) -> Result<(), StorageError<F::Error>> {
    let fail = |error, at: u32, len: usize| StorageError::Flash {
        op: FlashOp::Read,
        addr: at,
        len: len as u32,
        error,
    };
    let rs = F::READ_SIZE.max(1);
    if rs == 1 {
        return flash.read(addr, buf).map_err(|e| fail(e, addr, buf.len()));
    }
    let mut done = 0usize;
    let mut at = addr;
    while done < buf.len() {
        let remaining = buf.len() - done;
        let misalign = at as usize % rs;
        if misalign == 0 && remaining >= rs {
            let n = remaining - remaining % rs;
            flash
                .read(at, &mut buf[done..done + n])
                .map_err(|e| fail(e, at, n))?;
            done += n;
            at += n as u32;
        } else {
            let base = at - misalign as u32;
            let mut bounce = [0u8; MAX_ALIGN];
            let block = bounce.get_mut(..rs).ok_or(StorageError::Geometry {
                what: "READ_SIZE",
                got: rs,
                max: MAX_ALIGN,
            })?;
            flash.read(base, block).map_err(|e| fail(e, base, rs))?;
            let take = (rs - misalign).min(remaining);
            buf[done..done + take].copy_from_slice(&block[misalign..misalign + take]);
            done += take;
            at += take as u32;
        }
    }
    Ok(())
}

/// Writes `data` at a `WRITE_SIZE`-aligned address; a final partial word is padded with `0xFF`
/// (which leaves those bits erased).
pub(crate) fn write_padded<F: NorFlash>(
    flash: &mut F,
    addr: u32,
    data: &[u8],
) -> Result<(), StorageError<F::Error>> {
    let ws = F::WRITE_SIZE.max(1);
    let body = data.len() - data.len() % ws;
    if body > 0 {
        flash
            .write(addr, &data[..body])
            .map_err(|error| StorageError::Flash {
                op: FlashOp::Write,
                addr,
                len: body as u32,
                error,
            })?;
    }
    let tail = &data[body..];
    if !tail.is_empty() {
        let mut bounce = [0xffu8; MAX_ALIGN];
        let word = bounce.get_mut(..ws).ok_or(StorageError::Geometry {
            what: "WRITE_SIZE",
            got: ws,
            max: MAX_ALIGN,
        })?;
        word[..tail.len()].copy_from_slice(tail);
        let at = addr + body as u32;
        flash.write(at, word).map_err(|error| StorageError::Flash {
            op: FlashOp::Write,
            addr: at,
            len: ws as u32,
            error,
        })?;
    }
    Ok(())
}

/// Erases `[from, to)` (both sector-aligned).
pub(crate) fn erase<F: NorFlash>(
    flash: &mut F,
    from: u32,
    to: u32,
) -> Result<(), StorageError<F::Error>> {
    flash.erase(from, to).map_err(|error| StorageError::Flash {
        op: FlashOp::Erase,
        addr: from,
        len: to - from,
        error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_check_value() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b""), 0);
        let split = crc32_update(crc32_update(!0, b"1234"), b"56789");
        assert_eq!(!split, 0xcbf4_3926);
    }

    #[test]
    fn rounding() {
        assert_eq!(round_up(0, 4), 0);
        assert_eq!(round_up(1, 4), 4);
        assert_eq!(round_up(64, 4), 64);
        assert_eq!(round_up(65, 32), 96);
    }
}
