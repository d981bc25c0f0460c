//! The SPI flash seen as the two data partitions the core needs, and the one-shot format token
//! that lets provisioning start (or resume) the device's chain.
//!
//! - [`find_partitions`] reads the partition table that `espflash` wrote (offset 0x8000) and
//!   looks the partitions up *by label*, so the firmware follows whatever table is flashed; it
//!   refuses a table whose `provkey`/`provq` are missing, too small, not data partitions or
//!   not sector-aligned. `partitions.csv` in this crate is the table it is built and documented
//!   for ([`EXPECTED_PROVKEY`], [`EXPECTED_PROVQ`]); a different table is logged, not refused.
//! - [`Partition`] is an embedded-storage [`NorFlash`] over one partition (addresses relative to
//!   its start, bounds checked), owning the chip driver; [`Partition::retarget`] moves it to
//!   the other partition, since there is one flash driver.
//! - The format token ([`read_token`], [`consume_token`]): the core refuses to start a chain on
//!   a blank state region on its own (that would reuse seqs if the region had merely been
//!   erased). Provisioning therefore writes, next to the key slot, a token saying "format the
//!   event store, resuming after (seq, hash)"; the firmware formats only when the state region
//!   is blank *and* a valid token is present, then clears the token's magic (NOR bits can
//!   always be cleared without an erase), so it is used once.

use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};
use esp_bootloader_esp_idf::partitions::{PARTITION_TABLE_MAX_LEN, read_partition_table};
use esp_storage::FlashStorage;
use prov_firmware::storage::Layout;

use crate::token::{TOKEN_LEN, TOKEN_OFFSET, Token, parse_token};

/// Label of the key partition.
pub const PROVKEY_LABEL: &str = "provkey";
/// Label of the event store partition.
pub const PROVQ_LABEL: &str = "provq";

/// `(offset, size)` of `provkey` in this crate's `partitions.csv`.
pub const EXPECTED_PROVKEY: (u32, u32) = (0x1F_0000, 0x1000);
/// `(offset, size)` of `provq` in this crate's `partitions.csv`.
pub const EXPECTED_PROVQ: (u32, u32) = (0x20_0000, 0x1C_0000);

/// Erase sector of the ESP32-C3's flash.
pub const SECTOR: u32 = FlashStorage::SECTOR_SIZE;

/// Sectors of `provq` that hold the state log; the rest is the queue.
pub const STATE_SECTORS: u32 = 8;

/// Offset of the key slot inside `provkey` (core format, `storage::key_slot`).
pub const KEY_SLOT_OFFSET: u32 = 0;

/// Smallest `provq` this firmware accepts: the state log plus a queue that holds one 16 KiB
/// message with room to rotate.
const MIN_PROVQ: u32 = (STATE_SECTORS + 8) * SECTOR;

/// Where the two partitions are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partitions {
    /// `provkey`: `(offset, size)`.
    pub provkey: (u32, u32),
    /// `provq`: `(offset, size)`.
    pub provq: (u32, u32),
}

impl Partitions {
    /// The event store layout inside `provq` (partition-relative addresses).
    pub fn layout(&self) -> Layout {
        let state_end = STATE_SECTORS * SECTOR;
        Layout {
            state: 0..state_end,
            queue: state_end..self.provq.1,
        }
    }
}

/// The partition table cannot be used.
#[derive(Debug, Clone, Copy)]
pub enum TableError {
    /// No readable table at 0x8000.
    Unreadable(esp_bootloader_esp_idf::partitions::Error),
    /// A partition is missing.
    Missing(&'static str),
    /// A partition is not of type data.
    NotData(&'static str),
    /// A partition is not sector-aligned or is too small.
    BadGeometry {
        /// Its label.
        label: &'static str,
        /// Its offset.
        offset: u32,
        /// Its size.
        size: u32,
    },
}

impl core::fmt::Display for TableError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            TableError::Unreadable(e) => write!(f, "no readable partition table: {e}"),
            TableError::Missing(label) => write!(f, "no partition labelled {label}"),
            TableError::NotData(label) => write!(f, "partition {label} is not of type data"),
            TableError::BadGeometry {
                label,
                offset,
                size,
            } => write!(
                f,
                "partition {label} at {offset:#x} ({size:#x} bytes) is not sector-aligned or too small"
            ),
        }
    }
}

/// Reads the partition table and finds `provkey` and `provq`.
pub fn find_partitions(chip: &mut FlashStorage<'_>) -> Result<Partitions, TableError> {
    let mut buf = [0u8; PARTITION_TABLE_MAX_LEN];
    let table = read_partition_table(chip, &mut buf).map_err(TableError::Unreadable)?;
    let find = |label: &'static str, min: u32| -> Result<(u32, u32), TableError> {
        // Not `find_partition`: it decodes every entry's subtype and would trip over a custom
        // one; labels are what this firmware relies on.
        let entry = table
            .iter()
            .find(|e| e.label_as_str() == label)
            .ok_or(TableError::Missing(label))?;
        if entry.raw_type() != 1 {
            return Err(TableError::NotData(label));
        }
        let (offset, size) = (entry.offset(), entry.len());
        if !offset.is_multiple_of(SECTOR) || !size.is_multiple_of(SECTOR) || size < min {
            return Err(TableError::BadGeometry {
                label,
                offset,
                size,
            });
        }
        Ok((offset, size))
    };
    Ok(Partitions {
        provkey: find(PROVKEY_LABEL, SECTOR)?,
        provq: find(PROVQ_LABEL, MIN_PROVQ)?,
    })
}

/// An access outside the partition, or the chip driver's error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionError {
    /// Outside `0..size`.
    OutOfBounds,
    /// The driver failed.
    Flash(esp_storage::FlashStorageError),
}

impl NorFlashError for PartitionError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            PartitionError::OutOfBounds => NorFlashErrorKind::OutOfBounds,
            PartitionError::Flash(e) => e.kind(),
        }
    }
}

/// One partition of the flash chip as a [`NorFlash`] (see the module docs).
#[derive(Debug)]
pub struct Partition {
    chip: FlashStorage<'static>,
    offset: u32,
    size: u32,
}

impl Partition {
    /// The partition at `(offset, size)`.
    pub fn new(chip: FlashStorage<'static>, (offset, size): (u32, u32)) -> Self {
        Partition { chip, offset, size }
    }

    /// The same chip, now seen as the partition at `(offset, size)`.
    pub fn retarget(self, region: (u32, u32)) -> Self {
        Partition::new(self.chip, region)
    }

    fn absolute(&self, offset: u32, len: usize) -> Result<u32, PartitionError> {
        let len = u32::try_from(len).map_err(|_| PartitionError::OutOfBounds)?;
        let end = offset.checked_add(len).ok_or(PartitionError::OutOfBounds)?;
        if end > self.size {
            return Err(PartitionError::OutOfBounds);
        }
        Ok(self.offset + offset)
    }

    /// Clears the format token's magic in the `provkey` partition at `provkey_offset`, from
    /// whichever partition this view is on (the event store owns the `provq` view by then).
    pub fn consume_token(&mut self, provkey_offset: u32) -> Result<(), PartitionError> {
        // Writing zeros only clears bits: no erase, the key slot in the same sector is untouched.
        NorFlash::write(&mut self.chip, provkey_offset + TOKEN_OFFSET, &[0u8; 4])
            .map_err(PartitionError::Flash)
    }
}

impl ErrorType for Partition {
    type Error = PartitionError;
}

impl ReadNorFlash for Partition {
    const READ_SIZE: usize = <FlashStorage<'static> as ReadNorFlash>::READ_SIZE;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        let at = self.absolute(offset, bytes.len())?;
        ReadNorFlash::read(&mut self.chip, at, bytes).map_err(PartitionError::Flash)
    }

    fn capacity(&self) -> usize {
        self.size as usize
    }
}

impl NorFlash for Partition {
    const WRITE_SIZE: usize = <FlashStorage<'static> as NorFlash>::WRITE_SIZE;
    const ERASE_SIZE: usize = <FlashStorage<'static> as NorFlash>::ERASE_SIZE;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        if from > to {
            return Err(PartitionError::OutOfBounds);
        }
        let start = self.absolute(from, (to - from) as usize)?;
        NorFlash::erase(&mut self.chip, start, start + (to - from)).map_err(PartitionError::Flash)
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        let at = self.absolute(offset, bytes.len())?;
        NorFlash::write(&mut self.chip, at, bytes).map_err(PartitionError::Flash)
    }
}

/// Reads the token of the `provkey` partition `part` is on.
pub fn read_token(part: &mut Partition) -> Result<Token, PartitionError> {
    let mut raw = [0u8; TOKEN_LEN];
    ReadNorFlash::read(part, TOKEN_OFFSET, &mut raw)?;
    Ok(parse_token(&raw))
}
