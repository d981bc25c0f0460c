//! An in-memory NOR flash with fault injection, for host tests of everything that persists.
//!
//! Modelled on embassy-boot's `mem_flash.rs`, with stricter NOR semantics and power loss:
//!
//! - **NOR rules.** Erase sets a whole sector to `0xFF`; a write can only clear bits. A write
//!   that would set any bit from 0 to 1 is refused with [`MemFlashError::SetsBits`] and changes
//!   nothing: real parts would silently AND the data, hiding a bug in the on-flash format.
//!   Rewriting a word with a subset of its bits (clearing more) is allowed, as on real NOR.
//! - **Alignment.** Reads, writes and erases are checked against `READ_SIZE` (= `WRITE`),
//!   `WRITE_SIZE` and `ERASE_SIZE`, like `esp-storage` on the ESP32-C3 (4 / 4 / 4096).
//! - **Injected failures.** [`MemFlash::fail_op`] makes one chosen write or erase return
//!   [`MemFlashError::Injected`] without touching the array (a driver error, power stays on);
//!   [`MemFlash::fail_op_landed`] completes it first (the caller cannot know it landed).
//! - **Power loss.** [`MemFlash::cut_power_at`] makes one chosen write or erase lose power part
//!   way ([`Tear`]: none of it, a prefix of the bytes, or all of it lands), return
//!   [`MemFlashError::PowerLost`], and from then on fail every operation with
//!   [`MemFlashError::NoPower`] until [`MemFlash::power_on`] (the reboot).
//!
//! Operations are numbered in one sequence across writes and erases ([`MemFlash::mutations`]),
//! so a test can run a scenario once to count them and then cut the power at every index.
//! Counters per sector ([`MemFlash::sector_erases`]) support wear tests.
//!
//! A torn erase erases a prefix or a suffix of the range ([`Tear`]). Real parts can leave weakly programmed bits
//! anywhere in an interrupted sector; the on-flash formats never trust a sector whose erase may
//! have been interrupted (they erase again before writing into it) and checksum every record.

use alloc::vec;
use alloc::vec::Vec;

use embedded_storage::nor_flash::{
    ErrorType, MultiwriteNorFlash, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};

use super::FlashOp;

/// How much of the interrupted operation lands when power is lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tear {
    /// Nothing: the operation never started.
    Nothing,
    /// The first `n` bytes of the write (or of the erase range) land, the rest is untouched;
    /// `n` is clamped to the operation's length. Not word-aligned on purpose.
    Prefix(usize),
    /// The first half of the bytes land (rounded down).
    Half,
    /// The second half lands, the first half is untouched (for an erase: the sector header
    /// survives an erase that did not finish).
    LastHalf,
    /// Only the last `n` bytes land (an erase that reached the end of the sector first, leaving
    /// the sector header intact), clamped to the operation's length.
    Suffix(usize),
    /// All of it lands, but power is lost before the driver returns.
    All,
}

impl Tear {
    /// The tears every exhaustive test tries at each operation: nothing, the first half, the
    /// second half, everything.
    pub const ALL: [Tear; 4] = [Tear::Nothing, Tear::Half, Tear::LastHalf, Tear::All];

    /// The byte range of an operation of `len` bytes that lands.
    fn landed(self, len: usize) -> core::ops::Range<usize> {
        match self {
            Tear::Nothing => 0..0,
            Tear::Prefix(n) => 0..n.min(len),
            Tear::Half => 0..len / 2,
            Tear::LastHalf => len - len / 2..len,
            Tear::Suffix(n) => len - n.min(len)..len,
            Tear::All => 0..len,
        }
    }
}

/// An error from [`MemFlash`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MemFlashError {
    /// Offset or length not a multiple of the operation's alignment.
    #[error("{op} of {len} bytes at {offset:#x} is not aligned to {align}")]
    NotAligned {
        /// The operation.
        op: FlashOp,
        /// Its offset.
        offset: u32,
        /// Its length.
        len: usize,
        /// The required alignment.
        align: usize,
    },
    /// The operation extends past the end of the flash.
    #[error("{op} of {len} bytes at {offset:#x} is outside the {capacity}-byte flash")]
    OutOfBounds {
        /// The operation.
        op: FlashOp,
        /// Its offset.
        offset: u32,
        /// Its length.
        len: usize,
        /// The flash size.
        capacity: usize,
    },
    /// A write would set bits that are 0 (only an erase can do that).
    #[error("write at {addr:#x} would turn {have:#04x} into {want:#04x}: NOR can only clear bits")]
    SetsBits {
        /// Address of the first offending byte.
        addr: u32,
        /// The byte in flash.
        have: u8,
        /// The byte the write wanted.
        want: u8,
    },
    /// An injected driver failure (nothing was changed).
    #[error("injected failure of {op} number {index}")]
    Injected {
        /// The operation.
        op: FlashOp,
        /// Its index in [`MemFlash::mutations`] order.
        index: u64,
    },
    /// Power was lost during this operation.
    #[error("power lost during {op} number {index}")]
    PowerLost {
        /// The operation.
        op: FlashOp,
        /// Its index in [`MemFlash::mutations`] order.
        index: u64,
    },
    /// Power is off: call [`MemFlash::power_on`].
    #[error("no power")]
    NoPower,
}

impl NorFlashError for MemFlashError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            MemFlashError::NotAligned { .. } => NorFlashErrorKind::NotAligned,
            MemFlashError::OutOfBounds { .. } => NorFlashErrorKind::OutOfBounds,
            _ => NorFlashErrorKind::Other,
        }
    }
}

/// A scheduled fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Return [`MemFlashError::Injected`] at this operation index.
    Fail(u64),
    /// Complete the operation, then return [`MemFlashError::Injected`].
    FailLanded(u64),
    /// Lose power at this operation index.
    Cut(u64, Tear),
}

/// `SIZE` bytes of NOR flash with `ERASE`-byte sectors and `WRITE`-byte words (reads are aligned
/// to `WRITE` too). Starts fully erased.
#[derive(Debug, Clone)]
pub struct MemFlash<const SIZE: usize, const ERASE: usize, const WRITE: usize> {
    mem: Vec<u8>,
    erase_counts: Vec<u32>,
    mutations: u64,
    writes: u64,
    erases: u64,
    bytes_written: u64,
    faults: Vec<Fault>,
    powered: bool,
}

impl<const SIZE: usize, const ERASE: usize, const WRITE: usize> Default
    for MemFlash<SIZE, ERASE, WRITE>
{
    fn default() -> Self {
        Self::new()
    }
}

impl<const SIZE: usize, const ERASE: usize, const WRITE: usize> MemFlash<SIZE, ERASE, WRITE> {
    /// A fully erased flash.
    pub fn new() -> Self {
        MemFlash {
            mem: vec![0xff; SIZE],
            erase_counts: vec![0; SIZE / ERASE.max(1)],
            mutations: 0,
            writes: 0,
            erases: 0,
            bytes_written: 0,
            faults: Vec::new(),
            powered: true,
        }
    }

    /// The raw contents.
    pub fn as_bytes(&self) -> &[u8] {
        &self.mem
    }

    /// The raw contents, mutable (to plant corruption in tests; bypasses NOR rules and counters).
    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        &mut self.mem
    }

    /// Writes and erases attempted so far (including failed ones): the index the next one gets.
    pub fn mutations(&self) -> u64 {
        self.mutations
    }

    /// Writes attempted so far.
    pub fn writes(&self) -> u64 {
        self.writes
    }

    /// Erase calls attempted so far.
    pub fn erases(&self) -> u64 {
        self.erases
    }

    /// Bytes written by successful or torn writes.
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written
    }

    /// How many times sector `index` was erased (fully or partly).
    pub fn sector_erases(&self, index: usize) -> u32 {
        self.erase_counts.get(index).copied().unwrap_or(0)
    }

    /// The most-erased sector's count.
    pub fn max_sector_erases(&self) -> u32 {
        self.erase_counts.iter().copied().max().unwrap_or(0)
    }

    /// Makes operation number `index` (in [`MemFlash::mutations`] order) fail with
    /// [`MemFlashError::Injected`] without changing anything.
    pub fn fail_op(&mut self, index: u64) {
        self.faults.push(Fault::Fail(index));
    }

    /// Makes operation number `index` complete and *then* report [`MemFlashError::Injected`]
    /// (a driver that times out after programming): the caller cannot tell whether it landed.
    pub fn fail_op_landed(&mut self, index: u64) {
        self.faults.push(Fault::FailLanded(index));
    }

    /// Makes operation number `index` lose power with `tear`.
    pub fn cut_power_at(&mut self, index: u64, tear: Tear) {
        self.faults.push(Fault::Cut(index, tear));
    }

    /// Forgets every scheduled fault.
    pub fn clear_faults(&mut self) {
        self.faults.clear();
    }

    /// Restores power (the reboot after a cut).
    pub fn power_on(&mut self) {
        self.powered = true;
    }

    /// Whether the flash has power.
    pub fn is_powered(&self) -> bool {
        self.powered
    }

    fn check(
        &self,
        op: FlashOp,
        offset: u32,
        len: usize,
        align: usize,
    ) -> Result<(), MemFlashError> {
        if !self.powered {
            return Err(MemFlashError::NoPower);
        }
        let start = offset as usize;
        if start > SIZE || len > SIZE - start {
            return Err(MemFlashError::OutOfBounds {
                op,
                offset,
                len,
                capacity: SIZE,
            });
        }
        if align > 1 && (!start.is_multiple_of(align) || !len.is_multiple_of(align)) {
            return Err(MemFlashError::NotAligned {
                op,
                offset,
                len,
                align,
            });
        }
        Ok(())
    }

    /// Takes the fault scheduled for the operation about to run, if any, and numbers it.
    fn next_fault(&mut self) -> (u64, Option<Fault>) {
        let index = self.mutations;
        self.mutations += 1;
        let at = |f: &Fault| match f {
            Fault::Fail(i) | Fault::FailLanded(i) | Fault::Cut(i, _) => *i == index,
        };
        let fault = self
            .faults
            .iter()
            .position(at)
            .map(|p| self.faults.remove(p));
        (index, fault)
    }
}

impl<const SIZE: usize, const ERASE: usize, const WRITE: usize> ErrorType
    for MemFlash<SIZE, ERASE, WRITE>
{
    type Error = MemFlashError;
}

impl<const SIZE: usize, const ERASE: usize, const WRITE: usize> ReadNorFlash
    for MemFlash<SIZE, ERASE, WRITE>
{
    const READ_SIZE: usize = WRITE;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        self.check(FlashOp::Read, offset, bytes.len(), WRITE)?;
        let start = offset as usize;
        bytes.copy_from_slice(&self.mem[start..start + bytes.len()]);
        Ok(())
    }

    fn capacity(&self) -> usize {
        SIZE
    }
}

impl<const SIZE: usize, const ERASE: usize, const WRITE: usize> NorFlash
    for MemFlash<SIZE, ERASE, WRITE>
{
    const WRITE_SIZE: usize = WRITE;
    const ERASE_SIZE: usize = ERASE;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        let len = (to as usize).saturating_sub(from as usize);
        if to < from {
            return Err(MemFlashError::OutOfBounds {
                op: FlashOp::Erase,
                offset: from,
                len: 0,
                capacity: SIZE,
            });
        }
        self.check(FlashOp::Erase, from, len, ERASE)?;
        self.erases += 1;
        let (index, fault) = self.next_fault();
        let landed = match fault {
            Some(Fault::Fail(_)) => {
                return Err(MemFlashError::Injected {
                    op: FlashOp::Erase,
                    index,
                });
            }
            Some(Fault::Cut(_, tear)) => {
                self.powered = false;
                tear.landed(len)
            }
            Some(Fault::FailLanded(_)) | None => 0..len,
        };
        let start = from as usize;
        self.mem[start + landed.start..start + landed.end].fill(0xff);
        if !landed.is_empty() {
            let first = (start + landed.start) / ERASE;
            let last = (start + landed.end - 1) / ERASE;
            for count in &mut self.erase_counts[first..=last] {
                *count += 1;
            }
        }
        if !self.powered {
            return Err(MemFlashError::PowerLost {
                op: FlashOp::Erase,
                index,
            });
        }
        if matches!(fault, Some(Fault::FailLanded(_))) {
            return Err(MemFlashError::Injected {
                op: FlashOp::Erase,
                index,
            });
        }
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        self.check(FlashOp::Write, offset, bytes.len(), WRITE)?;
        let start = offset as usize;
        // NOR check first, over the whole write: a refused write changes nothing.
        for (i, (&have, &want)) in self.mem[start..start + bytes.len()]
            .iter()
            .zip(bytes)
            .enumerate()
        {
            if want & !have != 0 {
                return Err(MemFlashError::SetsBits {
                    addr: offset + i as u32,
                    have,
                    want,
                });
            }
        }
        self.writes += 1;
        let (index, fault) = self.next_fault();
        let landed = match fault {
            Some(Fault::Fail(_)) => {
                return Err(MemFlashError::Injected {
                    op: FlashOp::Write,
                    index,
                });
            }
            Some(Fault::Cut(_, tear)) => {
                self.powered = false;
                tear.landed(bytes.len())
            }
            Some(Fault::FailLanded(_)) | None => 0..bytes.len(),
        };
        for (cell, &want) in self.mem[start + landed.start..start + landed.end]
            .iter_mut()
            .zip(&bytes[landed.clone()])
        {
            *cell &= want;
        }
        self.bytes_written += landed.len() as u64;
        if !self.powered {
            return Err(MemFlashError::PowerLost {
                op: FlashOp::Write,
                index,
            });
        }
        if matches!(fault, Some(Fault::FailLanded(_))) {
            return Err(MemFlashError::Injected {
                op: FlashOp::Write,
                index,
            });
        }
        Ok(())
    }
}

/// Clearing more bits of an already written word is allowed, as on real NOR.
impl<const SIZE: usize, const ERASE: usize, const WRITE: usize> MultiwriteNorFlash
    for MemFlash<SIZE, ERASE, WRITE>
{
}

#[cfg(test)]
mod tests {
    use super::*;

    type Flash = MemFlash<1024, 256, 4>;

    #[test]
    fn nor_semantics() {
        let mut f = Flash::new();
        f.write(0, &[0x0f, 0xff, 0xff, 0xff]).unwrap();
        // Clearing more bits is fine.
        f.write(0, &[0x0e, 0xff, 0xff, 0xff]).unwrap();
        // Setting a bit is refused and changes nothing.
        assert_eq!(
            f.write(0, &[0x1e, 0x00, 0x00, 0x00]),
            Err(MemFlashError::SetsBits {
                addr: 0,
                have: 0x0e,
                want: 0x1e
            })
        );
        assert_eq!(&f.as_bytes()[..4], &[0x0e, 0xff, 0xff, 0xff]);
        f.erase(0, 256).unwrap();
        assert_eq!(&f.as_bytes()[..4], &[0xff; 4]);
        assert_eq!(f.sector_erases(0), 1);
        assert!(matches!(
            f.write(2, &[0; 4]),
            Err(MemFlashError::NotAligned { .. })
        ));
        assert!(matches!(
            f.erase(0, 100),
            Err(MemFlashError::NotAligned { .. })
        ));
        assert!(matches!(
            f.write(1024, &[0; 4]),
            Err(MemFlashError::OutOfBounds { .. })
        ));
    }

    #[test]
    fn power_cut_tears_and_blocks_until_power_on() {
        let mut f = Flash::new();
        f.write(0, &[0; 4]).unwrap();
        f.write(200, &[0x33; 4]).unwrap();
        assert_eq!(f.mutations(), 2);
        f.cut_power_at(2, Tear::Prefix(3));
        assert_eq!(
            f.write(4, &[0x11; 8]),
            Err(MemFlashError::PowerLost {
                op: FlashOp::Write,
                index: 2
            })
        );
        assert_eq!(
            &f.as_bytes()[4..12],
            &[0x11, 0x11, 0x11, 0xff, 0xff, 0xff, 0xff, 0xff]
        );
        let mut buf = [0u8; 4];
        assert_eq!(f.read(0, &mut buf), Err(MemFlashError::NoPower));
        f.power_on();
        f.read(0, &mut buf).unwrap();
        // A torn erase erases a prefix of the range.
        f.cut_power_at(3, Tear::Half);
        assert!(f.erase(0, 256).is_err());
        f.power_on();
        assert!(f.as_bytes()[..128].iter().all(|&b| b == 0xff));
        assert_eq!(&f.as_bytes()[200..204], &[0x33; 4]);
        f.fail_op(4);
        assert_eq!(
            f.erase(0, 256),
            Err(MemFlashError::Injected {
                op: FlashOp::Erase,
                index: 4
            })
        );
        assert_eq!(&f.as_bytes()[200..204], &[0x33; 4]);
    }
}
