//! The device's chain state: a log of small fixed-size records over two or more erase sectors.
//!
//! # Why a log, not a rewritten cell
//!
//! NOR flash cannot rewrite a cell without erasing its whole sector, and an erase interrupted by
//! a power cut leaves the sector in an unknown state. So the state is never updated in place:
//! each change appends a new [`StateRecord`] in the next free slot of the *active* sector (the
//! one holding the newest record). When that sector is full, the next sector in rotation is
//! erased and the record written to its first slot. The sector holding the newest valid record
//! is never erased, so at every instant at least one valid record (the newest or the one before
//! it) is on flash.
//!
//! # Record
//!
//! 64 bytes, little-endian, in a slot rounded up to `WRITE_SIZE` (padding stays `0xFF`):
//!
//! ```text
//! 0   magic "PVS1"
//! 4   reserved   u64   highest seq ever handed out (0: none)
//! 12  last_seq   u64   seq of the newest message known durable in the queue (0: none)
//! 20  last_hash  [32]  BLAKE3 of that message (zero when last_seq = 0)
//! 52  released   u64   highest gateway receipt applied
//! 60  crc32      u32   CRC-32 of bytes 0..60
//! ```
//!
//! A torn write leaves a slot that fails its CRC; it is skipped, never reused (writing over it
//! could need to set bits). Every counter only grows, so the newest record is the greatest by
//! `(reserved, last_seq, released)`; [`ChainState::append`] refuses a record that would move any
//! of them backwards.
//!
//! # Boot
//!
//! [`ChainState::open`] reads every slot, keeps the newest valid record, and resumes appending
//! after the last non-blank slot of its sector. An all-blank region is
//! [`StorageError::NotProvisioned`]; a region with data but no valid record is
//! [`StorageError::StateCorrupt`]: the device must not silently restart at seq 1, which would
//! reuse every seq it ever signed (equivocation, SPEC §4). Provisioning ([`ChainState::format`])
//! writes the first record.
//!
//! # Wear
//!
//! One erase per `ERASE_SIZE / slot` records, spread over the region's sectors in rotation: a
//! region of `n` 4 KiB sectors takes `n * 64` records per erase of each sector, so at 100 k
//! cycles it lasts `n * 6.4` M records (one per event plus one per receipt that advances).

use core::ops::Range;

use embedded_storage::nor_flash::NorFlash;
use prov_schemas::Hash32;

use super::{
    MAX_ALIGN, StorageError, check_region, crc32, erase, is_blank, read, round_up, write_padded,
};

/// Bytes of a record before padding.
pub const RECORD_LEN: usize = 64;

const MAGIC: [u8; 4] = *b"PVS1";

/// One durable snapshot of the chain state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StateRecord {
    /// The highest seq ever handed out by a reservation (0: none yet).
    pub reserved: u64,
    /// The seq of the newest message known durable in the queue when this record was written
    /// (0: none).
    pub last_seq: u64,
    /// BLAKE3 of that message's bytes ([`Hash32::ZERO`] when `last_seq` is 0).
    pub last_hash: Hash32,
    /// The highest gateway receipt applied.
    pub released: u64,
}

impl StateRecord {
    /// The record's 64 bytes.
    pub fn encode(&self) -> [u8; RECORD_LEN] {
        let mut out = [0u8; RECORD_LEN];
        out[0..4].copy_from_slice(&MAGIC);
        out[4..12].copy_from_slice(&self.reserved.to_le_bytes());
        out[12..20].copy_from_slice(&self.last_seq.to_le_bytes());
        out[20..52].copy_from_slice(self.last_hash.as_bytes());
        out[52..60].copy_from_slice(&self.released.to_le_bytes());
        let crc = crc32(&out[..60]);
        out[60..64].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Parses 64 bytes; `None` unless the magic and CRC match.
    pub fn decode(bytes: &[u8; RECORD_LEN]) -> Option<StateRecord> {
        if bytes[0..4] != MAGIC {
            return None;
        }
        let crc = u32::from_le_bytes([bytes[60], bytes[61], bytes[62], bytes[63]]);
        if crc != crc32(&bytes[..60]) {
            return None;
        }
        let u64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[at..at + 8]);
            u64::from_le_bytes(b)
        };
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&bytes[20..52]);
        Some(StateRecord {
            reserved: u64_at(4),
            last_seq: u64_at(12),
            last_hash: Hash32(hash),
            released: u64_at(52),
        })
    }

    fn order_key(&self) -> (u64, u64, u64) {
        (self.reserved, self.last_seq, self.released)
    }

    /// The first counter that `self` would move backwards from `older`, if any.
    fn regression_from(&self, older: &StateRecord) -> Option<(&'static str, u64, u64)> {
        if self.reserved < older.reserved {
            return Some(("reserved", older.reserved, self.reserved));
        }
        if self.last_seq < older.last_seq {
            return Some(("last_seq", older.last_seq, self.last_seq));
        }
        if self.released < older.released {
            return Some(("released", older.released, self.released));
        }
        None
    }
}

/// The state log over a flash region (two or more erase sectors).
#[derive(Debug, Clone)]
pub struct ChainState {
    region: Range<u32>,
    sector_size: u32,
    sectors: u32,
    slot_len: u32,
    slots_per_sector: u32,
    current: StateRecord,
    /// Sector holding the newest record.
    active: u32,
    /// Next free slot in `active`, or `None` when the next append must switch sectors.
    next_slot: Option<u32>,
}

impl ChainState {
    /// Provisioning: erases the region and writes `first` as its only record.
    pub fn format<F: NorFlash>(
        flash: &mut F,
        region: Range<u32>,
        first: StateRecord,
    ) -> Result<ChainState, StorageError<F::Error>> {
        let mut state = ChainState::layout(flash, region)?;
        erase(flash, state.region.start, state.region.end)?;
        state.current = first;
        state.active = 0;
        state.next_slot = Some(0);
        state.write_record(flash, first)?;
        Ok(state)
    }

    /// Boot: finds the newest valid record.
    pub fn open<F: NorFlash>(
        flash: &mut F,
        region: Range<u32>,
    ) -> Result<ChainState, StorageError<F::Error>> {
        let mut state = ChainState::layout(flash, region)?;
        let mut newest: Option<(StateRecord, u32)> = None;
        let mut any_data = false;
        let mut slot = [0u8; MAX_ALIGN];
        for sector in 0..state.sectors {
            for index in 0..state.slots_per_sector {
                let bytes = &mut slot[..state.slot_len as usize];
                read(flash, state.slot_addr(sector, index), bytes)?;
                if is_blank(bytes) {
                    continue;
                }
                any_data = true;
                let mut raw = [0u8; RECORD_LEN];
                raw.copy_from_slice(&bytes[..RECORD_LEN]);
                if let Some(record) = StateRecord::decode(&raw) {
                    let newer = newest
                        .as_ref()
                        .is_none_or(|(best, _)| record.order_key() >= best.order_key());
                    if newer {
                        newest = Some((record, sector));
                    }
                }
            }
        }
        match newest {
            Some((record, sector)) => {
                state.current = record;
                state.active = sector;
                state.next_slot = state.append_point(flash, sector)?;
                Ok(state)
            }
            None if any_data => Err(StorageError::StateCorrupt {
                start: state.region.start,
                end: state.region.end,
            }),
            None => Err(StorageError::NotProvisioned {
                start: state.region.start,
                end: state.region.end,
            }),
        }
    }

    /// The newest record (what was last appended, or found at boot).
    pub fn current(&self) -> &StateRecord {
        &self.current
    }

    /// Appends `record`, durable when this returns `Ok`.
    ///
    /// On an error the record may or may not have reached the flash; [`ChainState::current`]
    /// moves to it anyway, so that no later record can fall below one that did land.
    pub fn append<F: NorFlash>(
        &mut self,
        flash: &mut F,
        record: StateRecord,
    ) -> Result<(), StorageError<F::Error>> {
        if let Some((field, have, got)) = record.regression_from(&self.current) {
            return Err(StorageError::StateRegression { field, have, got });
        }
        self.current = record;
        self.write_record(flash, record)
    }

    /// Slots per sector (records between two erases of a sector).
    pub fn slots_per_sector(&self) -> u32 {
        self.slots_per_sector
    }

    fn layout<F: NorFlash>(
        flash: &F,
        region: Range<u32>,
    ) -> Result<ChainState, StorageError<F::Error>> {
        let sectors = check_region(flash, &region, 2)?;
        let sector_size = F::ERASE_SIZE as u32;
        let slot_len = round_up(RECORD_LEN as u32, F::WRITE_SIZE as u32);
        let slots_per_sector = sector_size / slot_len;
        if slot_len as usize > MAX_ALIGN || slots_per_sector == 0 {
            return Err(StorageError::Geometry {
                what: "state slot (64 bytes rounded up to WRITE_SIZE)",
                got: slot_len as usize,
                max: MAX_ALIGN.min(F::ERASE_SIZE),
            });
        }
        Ok(ChainState {
            region,
            sector_size,
            sectors,
            slot_len,
            slots_per_sector,
            current: StateRecord::default(),
            active: 0,
            next_slot: None,
        })
    }

    fn slot_addr(&self, sector: u32, index: u32) -> u32 {
        self.region.start + sector * self.sector_size + index * self.slot_len
    }

    /// The slot after the last non-blank one in `sector`, `None` if the sector is full.
    fn append_point<F: NorFlash>(
        &self,
        flash: &mut F,
        sector: u32,
    ) -> Result<Option<u32>, StorageError<F::Error>> {
        let mut slot = [0u8; MAX_ALIGN];
        let mut last_used = None;
        for index in 0..self.slots_per_sector {
            let bytes = &mut slot[..self.slot_len as usize];
            read(flash, self.slot_addr(sector, index), bytes)?;
            if !is_blank(bytes) {
                last_used = Some(index);
            }
        }
        Ok(match last_used {
            None => Some(0),
            Some(i) => Some(i + 1).filter(|&i| i < self.slots_per_sector),
        })
    }

    fn write_record<F: NorFlash>(
        &mut self,
        flash: &mut F,
        record: StateRecord,
    ) -> Result<(), StorageError<F::Error>> {
        let (sector, index) = match self.next_slot {
            Some(index) => (self.active, index),
            None => {
                // Switch: erase the next sector in rotation. It never holds the newest record
                // (that is in `active`, and there are at least two sectors).
                let target = (self.active + 1) % self.sectors;
                let start = self.region.start + target * self.sector_size;
                erase(flash, start, start + self.sector_size)?;
                (target, 0)
            }
        };
        let mut slot = [0xffu8; MAX_ALIGN];
        slot[..RECORD_LEN].copy_from_slice(&record.encode());
        let result = write_padded(
            flash,
            self.slot_addr(sector, index),
            &slot[..self.slot_len as usize],
        );
        match result {
            Ok(()) => {
                self.active = sector;
                self.next_slot = Some(index + 1).filter(|&i| i < self.slots_per_sector);
            }
            Err(_) if sector == self.active => {
                // The slot may be torn: never write it again.
                self.next_slot = Some(index + 1).filter(|&i| i < self.slots_per_sector);
            }
            Err(_) => {
                // The record may or may not be in the new sector; `active` keeps pointing at the
                // sector that certainly holds a valid record, and the next append erases the
                // target again.
            }
        }
        result
    }
}
