//! [`ChainStore`]: the chain file, SPEC §5 blocks in checksummed records, append-only.

use std::fs::File;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use prov_schemas::Hash32;

use super::StoreError;
use super::io::{WriteBudget, create_dir_durable, io_err, lock_file, parent_dir, sync_dir};
use super::record::{self, Stop};
use crate::chain::{ChainBlock, ChainVerifier};
use crate::checkpoint::Checkpoint;
use crate::note::VerifierKey;

/// The largest chain block accepted (a checkpoint note with cosignatures and a proof of at
/// most 65 hashes is a few KiB).
pub const MAX_BLOCK_BYTES: usize = 1 << 20;

/// The chain of signed checkpoints (SPEC §5) in one append-only file of records
/// `[u32 LE len][block][u32 LE CRC-32(len || block)]`.
///
/// Open replays and verifies every block from block 0 under the log's key; [`ChainStore::append`]
/// verifies the next block against the latest before writing it. A block is on disk (written
/// and `fdatasync`ed) when `append` returns: that is the moment a checkpoint is published.
#[derive(Debug)]
pub struct ChainStore {
    path: PathBuf,
    file: File,
    key: VerifierKey,
    /// Valid bytes.
    len: u64,
    /// Offset of each block's record.
    offsets: Vec<u64>,
    verifier: ChainVerifier,
    latest_note: Option<String>,
    torn_bytes: u64,
    budget: WriteBudget,
    poisoned: Option<String>,
}

impl ChainStore {
    /// Opens (or creates) the chain file at `path` for the log whose checkpoint key is `key`,
    /// replaying and verifying every block from block 0, and cutting a torn tail (a record cut
    /// short or damaged, with nothing valid after it: a crash during `append`).
    ///
    /// # Errors
    /// [`StoreError::Chain`] for a block that does not verify (with its index);
    /// [`StoreError::ChainCorrupt`] for a damaged record that is not a torn tail;
    /// [`StoreError::Locked`]; I/O errors.
    pub fn open(path: &Path, key: &VerifierKey) -> Result<ChainStore, StoreError> {
        let dir = parent_dir(path);
        create_dir_durable(&dir)?;
        let existed = path.exists();
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io_err("open", path))?;
        if !existed {
            sync_dir(&dir)?;
        }
        lock_file(&file, path)?;
        let file_len = file.metadata().map_err(io_err("stat", path))?.len();
        let mut verifier = ChainVerifier::new(key.clone());
        let mut offsets = Vec::new();
        let max = MAX_BLOCK_BYTES as u64;
        let done = record::scan(&file, path, 0, file_len, max, |offset, block| {
            verifier.push(block).map_err(|source| StoreError::Chain {
                path: path.to_path_buf(),
                offset,
                source,
            })?;
            offsets.push(offset);
            Ok(ControlFlow::Continue(()))
        })?;
        let mut torn_bytes = 0;
        let mut len = file_len;
        if let Stop::Damaged(damage) = done.stop {
            if record::find_valid_run(&file, path, done.offset, file_len, max)?.is_some() {
                return Err(StoreError::ChainCorrupt {
                    path: path.to_path_buf(),
                    offset: done.offset,
                    block: done.records,
                    damage,
                });
            }
            file.set_len(done.offset)
                .and_then(|()| file.sync_data())
                .map_err(io_err("truncate", path))?;
            torn_bytes = file_len - done.offset;
            len = done.offset;
        }
        let mut store = ChainStore {
            path: path.to_path_buf(),
            file,
            key: key.clone(),
            len,
            offsets,
            verifier,
            latest_note: None,
            torn_bytes,
            budget: WriteBudget::default(),
            poisoned: None,
        };
        if let Some(last) = store.len().checked_sub(1) {
            let block = ChainBlock::decode(&store.block(last)?)?;
            store.latest_note = Some(block.checkpoint_note().into());
        }
        Ok(store)
    }

    /// The chain file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The log's checkpoint key, under which every block verified.
    pub fn key(&self) -> &VerifierKey {
        &self.key
    }

    /// The latest checkpoint (of the last block).
    pub fn latest(&self) -> Option<&Checkpoint> {
        self.verifier.latest()
    }

    /// The latest signed checkpoint note, verbatim: what `GET /checkpoint` serves.
    pub fn latest_note(&self) -> Option<&str> {
        self.latest_note.as_deref()
    }

    /// The hash of the last block (the next block's `prev`).
    pub fn last_block_hash(&self) -> Option<Hash32> {
        self.verifier.last_block_hash()
    }

    /// Number of blocks.
    pub fn len(&self) -> u64 {
        self.offsets.len() as u64
    }

    /// No block yet.
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// Bytes cut from a torn tail at open.
    pub fn torn_bytes(&self) -> u64 {
        self.torn_bytes
    }

    /// The encoded block `i` (checked against its record checksum).
    ///
    /// # Errors
    /// [`StoreError::IndexOutOfRange`], [`StoreError::ChainCorrupt`], I/O errors.
    pub fn block(&self, i: u64) -> Result<Vec<u8>, StoreError> {
        let Some(&offset) = usize::try_from(i).ok().and_then(|i| self.offsets.get(i)) else {
            return Err(StoreError::IndexOutOfRange {
                index: i,
                size: self.len(),
            });
        };
        let end = usize::try_from(i + 1)
            .ok()
            .and_then(|j| self.offsets.get(j).copied())
            .unwrap_or(self.len);
        let mut out = None;
        let max = MAX_BLOCK_BYTES as u64;
        let done = record::scan(&self.file, &self.path, offset, end, max, |_, b| {
            out = Some(b.to_vec());
            Ok(ControlFlow::Break(()))
        })?;
        match (out, done.stop) {
            (Some(b), _) => Ok(b),
            (None, Stop::Damaged(damage)) => Err(StoreError::ChainCorrupt {
                path: self.path.clone(),
                offset,
                block: i,
                damage,
            }),
            (None, _) => Err(StoreError::ChainCorrupt {
                path: self.path.clone(),
                offset,
                block: i,
                damage: record::Damage::Truncated {
                    len: 0,
                    available: end - offset,
                },
            }),
        }
    }

    /// The compare-and-swap: appends `block` only if its `prev` is the last block's hash (32
    /// zero bytes for block 0), its checkpoint verifies under the chain's key, its size does
    /// not shrink and its consistency proof from the latest checkpoint verifies
    /// ([`ChainVerifier::push`]). Durable (`fdatasync`) before it returns `Ok`.
    ///
    /// # Errors
    /// [`StoreError::Chain`] for a block that does not follow (nothing written);
    /// [`StoreError::WriteFailed`] (the file is cut back); [`StoreError::Poisoned`].
    pub fn append(&mut self, block: &ChainBlock) -> Result<(), StoreError> {
        if let Some(detail) = &self.poisoned {
            return Err(StoreError::Poisoned {
                detail: detail.clone(),
            });
        }
        let bytes = block.encode();
        if bytes.len() > MAX_BLOCK_BYTES {
            return Err(StoreError::EntryTooLarge {
                position: 0,
                len: bytes.len(),
                max: MAX_BLOCK_BYTES,
            });
        }
        let mut verifier = self.verifier.clone();
        verifier.push(&bytes).map_err(|source| StoreError::Chain {
            path: self.path.clone(),
            offset: self.len,
            source,
        })?;
        let mut buf = Vec::with_capacity(bytes.len() + record::OVERHEAD as usize);
        record::encode_into(&mut buf, &bytes);
        let written = self
            .budget
            .write_all_at(&self.file, &buf, self.len)
            .and_then(|()| self.file.sync_data());
        if let Err(source) = written {
            if let Err(e) = self.file.set_len(self.len) {
                let detail = format!(
                    "append to {}: {source}; then truncate: {e}",
                    self.path.display()
                );
                self.poisoned = Some(detail.clone());
                return Err(StoreError::Poisoned { detail });
            }
            return Err(StoreError::WriteFailed {
                op: "append",
                path: self.path.clone(),
                size: self.len(),
                source,
            });
        }
        self.offsets.push(self.len);
        self.len += buf.len() as u64;
        self.verifier = verifier;
        self.latest_note = Some(block.checkpoint_note().into());
        Ok(())
    }

    /// Bytes of the chain file.
    pub fn file_bytes(&self) -> u64 {
        self.len
    }

    /// Test seam: as [`super::LogStore::fail_writes_after`].
    #[doc(hidden)]
    pub fn fail_writes_after(&mut self, bytes: Option<u64>) {
        self.budget = WriteBudget(bytes);
    }
}
