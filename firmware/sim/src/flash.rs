//! The virtual devices' flash: a NOR flash in RAM, optionally written through to a file so a
//! restarted simulator resumes each device's seq and hash chain (and its unreceipted queue)
//! instead of starting at seq 1 again, which a gateway would rightly call equivocation.
//!
//! Same geometry as the ESP32-C3's flash (4-byte words, 4 KiB sectors) and the same NOR rule as
//! the core's `MemFlash` (a write can only clear bits: it is applied as AND), so the storage code
//! runs here exactly as on the board. Writes reach the file with `pwrite` and no `fsync`: a
//! host crash can lose the last writes, which the store's checksums and recovery handle like a
//! power cut.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};
use prov_firmware::storage::Layout;

/// Word size (read and write alignment), as on the ESP32-C3.
pub const WORD: usize = 4;
/// Erase sector size, as on the ESP32-C3.
pub const SECTOR: usize = 4096;
/// Sectors of the state log (the rest of the flash is the queue).
pub const STATE_SECTORS: u32 = 4;

/// A flash operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SimFlashError {
    /// Outside the flash.
    #[error("{len} bytes at {offset:#x} are outside the {capacity}-byte flash")]
    OutOfBounds {
        /// Start.
        offset: u32,
        /// Length.
        len: usize,
        /// Flash size.
        capacity: usize,
    },
    /// Not aligned to the word or sector size.
    #[error("{len} bytes at {offset:#x} are not aligned to {align}")]
    NotAligned {
        /// Start.
        offset: u32,
        /// Length.
        len: usize,
        /// Required alignment.
        align: usize,
    },
    /// The backing file could not be written.
    #[error("backing file: {0}")]
    Io(#[from] io::Error),
}

impl NorFlashError for SimFlashError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            SimFlashError::OutOfBounds { .. } => NorFlashErrorKind::OutOfBounds,
            SimFlashError::NotAligned { .. } => NorFlashErrorKind::NotAligned,
            SimFlashError::Io(_) => NorFlashErrorKind::Other,
        }
    }
}

/// NOR flash in RAM, optionally backed by a file.
#[derive(Debug)]
pub struct SimFlash {
    mem: Vec<u8>,
    file: Option<File>,
}

impl SimFlash {
    /// An erased flash of `sectors` sectors in RAM only.
    pub fn in_memory(sectors: u32) -> SimFlash {
        SimFlash {
            mem: vec![0xff; sectors as usize * SECTOR],
            file: None,
        }
    }

    /// A flash of `sectors` sectors backed by `path`: its contents if the file exists with
    /// that size, else a new erased file. Returns whether the contents were loaded.
    pub fn file_backed(path: &Path, sectors: u32) -> io::Result<(SimFlash, bool)> {
        let size = sectors as usize * SECTOR;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let existing = file.metadata()?.len();
        if existing == size as u64 {
            let mut mem = vec![0u8; size];
            file.read_exact_at(&mut mem, 0)?;
            return Ok((
                SimFlash {
                    mem,
                    file: Some(file),
                },
                true,
            ));
        }
        if existing != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} has {existing} bytes, want {size} (a flash of another size: move it away)",
                    path.display()
                ),
            ));
        }
        let mem = vec![0xff; size];
        file.write_all_at(&mem, 0)?;
        Ok((
            SimFlash {
                mem,
                file: Some(file),
            },
            false,
        ))
    }

    /// The store layout for this flash: [`STATE_SECTORS`] of state log, the rest queue.
    pub fn layout(&self) -> Layout {
        let end = self.mem.len() as u32;
        let state_end = STATE_SECTORS * SECTOR as u32;
        Layout {
            state: 0..state_end,
            queue: state_end..end,
        }
    }

    fn check(&self, offset: u32, len: usize, align: usize) -> Result<(), SimFlashError> {
        let start = offset as usize;
        if start > self.mem.len() || len > self.mem.len() - start {
            return Err(SimFlashError::OutOfBounds {
                offset,
                len,
                capacity: self.mem.len(),
            });
        }
        if !start.is_multiple_of(align) || !len.is_multiple_of(align) {
            return Err(SimFlashError::NotAligned { offset, len, align });
        }
        Ok(())
    }

    fn persist(&self, start: usize, end: usize) -> Result<(), SimFlashError> {
        if let (Some(file), Some(bytes)) = (&self.file, self.mem.get(start..end)) {
            file.write_all_at(bytes, start as u64)?;
        }
        Ok(())
    }
}

impl ErrorType for SimFlash {
    type Error = SimFlashError;
}

impl ReadNorFlash for SimFlash {
    const READ_SIZE: usize = WORD;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), SimFlashError> {
        self.check(offset, bytes.len(), WORD)?;
        let start = offset as usize;
        if let Some(src) = self.mem.get(start..start + bytes.len()) {
            bytes.copy_from_slice(src);
        }
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.mem.len()
    }
}

impl NorFlash for SimFlash {
    const WRITE_SIZE: usize = WORD;
    const ERASE_SIZE: usize = SECTOR;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), SimFlashError> {
        let len = to.saturating_sub(from) as usize;
        self.check(from, len, SECTOR)?;
        let (start, end) = (from as usize, from as usize + len);
        if let Some(range) = self.mem.get_mut(start..end) {
            range.fill(0xff);
        }
        self.persist(start, end)
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), SimFlashError> {
        self.check(offset, bytes.len(), WORD)?;
        let start = offset as usize;
        if let Some(range) = self.mem.get_mut(start..start + bytes.len()) {
            // NOR: programming can only clear bits.
            for (cell, b) in range.iter_mut().zip(bytes) {
                *cell &= b;
            }
        }
        self.persist(start, start + bytes.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nor_semantics_and_alignment() {
        let mut f = SimFlash::in_memory(2);
        f.write(0, &[0x0f, 0xf0, 0xff, 0x00]).unwrap_or_default();
        f.write(0, &[0xff, 0xff, 0x0f, 0xff]).unwrap_or_default();
        let mut out = [0u8; 4];
        f.read(0, &mut out).unwrap_or_default();
        assert_eq!(out, [0x0f, 0xf0, 0x0f, 0x00]);
        assert!(f.write(1, &[0; 4]).is_err());
        assert!(f.erase(0, 100).is_err());
        assert!(f.erase(0, 4096).is_ok());
        f.read(0, &mut out).unwrap_or_default();
        assert_eq!(out, [0xff; 4]);
        assert!(f.read(8192, &mut out).is_err());
    }
}
