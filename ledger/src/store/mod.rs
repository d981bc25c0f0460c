//! The on-disk log (feature `std`): entries in append-only checksummed segment files, the stored
//! hashes of the RFC 9162 tree over them, and the chain file of signed checkpoints.
//!
//! Three separate steps, as in Trillian Tessera, each with its own durability contract:
//!
//! | step | call | durable when it returns |
//! |---|---|---|
//! | sequence | [`LogStore::sequence`] | the entries: written and `fdatasync`ed (a new segment's directory entry fsynced too). Only now may the gateway acknowledge them. |
//! | integrate | [`LogStore::integrate`] | nothing: tree hashes are written, not synced. They are derived from the entries and re-derived at open. |
//! | publish | [`publish`] | the tree (`fdatasync`, [`LogStore::sync`]) and then the new chain block (`fdatasync`, [`ChainStore::append`]). A checkpoint exists once its block is durable; serve nothing before. |
//!
//! A crash during `sequence` may leave any prefix of the batch's whole entries on disk (never
//! acknowledged: the sender redelivers, the gateway deduplicates on reindex); a torn record is
//! cut at open. A `sequence` that returns an error has cut its writes back (or poisoned the
//! handle); a crash during that undo can again leave a prefix of the batch.
//!
//! # Layout of a log directory
//!
//! ```text
//! FORMAT                          "prov-ledger log store v1" and a reminder of the layout
//! LOCK                            advisory lock: one open handle at a time (flock)
//! entries/{first:020}.seg         records [u32 LE len][entry][u32 LE CRC-32(len || entry)],
//!                                 rotated before a record would pass `segment_bytes`
//! tree/nodes.bin                  32-byte hashes of the complete subtrees of levels >= 4,
//!                                 post-order (children before parent): see below
//! ```
//!
//! The offset index is sparse (the offset of every 16th record, one `u64` per 16 entries, half a
//! byte per entry: 5 MB of RAM for 10 M entries) and lives in memory, rebuilt by the scan at
//! open; `entry(i)` reads the ≤ 16 records from the nearest indexed one in one `pread`.
//!
//! The tree file stores hashes from level 4 (subtrees of 16 leaves) up: 4 bytes per entry
//! instead of the 64 of a full tree, so entries + tree stay at ~1.04× the message bytes for
//! 300-byte messages (8 bytes of framing + 4 of tree per entry). Hashes below level 4 are
//! recomputed from the entries when a proof needs them: a proof touches at most two 16-entry
//! blocks below level 4 (the leaf's own and the ragged right edge of the tree size), so it costs
//! at most two short reads and 32 leaf hashes plus one 32-byte read for each of levels 4 to 6
//! (levels 7 and up, 1/64 of the file, are also held in memory), and never recomputes the
//! tree. One append-only file (rather than one per level) means a single
//! length says how much of the tree is stored (`2k − popcount(k)` hashes for `k` blocks) and a
//! single fsync makes it durable.
//!
//! # Recovery at open
//!
//! [`LogStore::open`] reads every entry once, sequentially (about a million entries a second
//! here, so ~1 s per million entries of start-up time):
//! - every record's checksum is checked. A damaged record in the last segment with nothing
//!   valid after it is a torn tail (a crash during `sequence`): the file is cut back to the last
//!   whole record, durably, and the cut is reported in [`Recovery`]. A damaged record anywhere
//!   else, or followed by valid records (found by trying every byte position after the damage,
//!   since a flipped length bit hides where the next record starts), is corruption:
//!   [`StoreError::Corrupt`] names the segment, byte offset and entry index, and nothing is cut:
//!   an operator decides. Two cases cannot be told apart from the bytes alone and are decided
//!   this way: a damaged *last* record is cut as torn (if it had been checkpointed, [`publish`]
//!   then refuses: the log is behind the checkpoint), and a power cut on a file system that
//!   persisted a batch's pages out of order (valid records after a hole) is refused as corrupt.
//! - the tree is recomputed from the entries and compared, hash by hash, with the stored tree;
//!   from the first stored hash that is missing (not synced before a crash) or wrong (damaged,
//!   or the entries were rewritten), the stored tree is rewritten from the entries, and hashes
//!   beyond the entries are cut. So the stored tree always describes the entries on disk, and
//!   the root check of [`publish`] against the last signed checkpoint is a check of the entries.
//!
//! # The compare-and-swap before signing
//!
//! [`publish`] signs only after checking the log against the latest checkpoint of the chain
//! (the chain file is replayed and verified at [`ChainStore::open`], from block 0): the log must
//! have at least that many entries, and its root at that size must be that checkpoint's root.
//! A log that lost or rewrote entries (a crash on a lying disk, a restore from an old backup,
//! tampering) is refused with a typed error and nothing is signed. The new block then carries
//! the consistency proof from that checkpoint and [`ChainStore::append`] verifies it again
//! before writing, so no two inconsistent checkpoints are ever signed into the chain, across
//! crashes: every decision is taken from what is durable on disk. One process at a time: both
//! stores hold an exclusive lock while open.

mod chain;
mod io;
mod log;
mod record;
mod tree;

use std::path::PathBuf;

use prov_schemas::Hash32;

use crate::chain::{BlockError, ChainBlock, ChainError};
use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::merkle::MerkleError;
use crate::note::{KeyError, NoteError, NoteSigner};

pub use chain::{ChainStore, MAX_BLOCK_BYTES};
pub use log::{LogStore, MAX_ENTRY_BYTES};
pub use record::Damage;

/// The default segment size: 64 MiB.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;

/// Where and how a [`LogStore`] keeps its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// The store's directory (created if missing).
    pub dir: PathBuf,
    /// A segment is closed before a record would take it past this size (a single larger
    /// record gets a segment of its own). Default [`DEFAULT_SEGMENT_BYTES`].
    pub segment_bytes: u64,
}

impl StoreConfig {
    /// The default configuration for `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> StoreConfig {
        StoreConfig {
            dir: dir.into(),
            segment_bytes: DEFAULT_SEGMENT_BYTES,
        }
    }
}

/// Bytes on disk of a [`LogStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DiskUsage {
    /// Segment files: entries and their 8 bytes of framing each.
    pub entry_bytes: u64,
    /// The stored tree hashes.
    pub tree_bytes: u64,
    /// Index files (0: the offset index is held in memory, see the module docs).
    pub index_bytes: u64,
}

impl DiskUsage {
    /// All of it.
    pub fn total(&self) -> u64 {
        self.entry_bytes + self.tree_bytes + self.index_bytes
    }
}

/// What [`LogStore::open`] found and repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Bytes cut from the end of the last segment (a torn tail).
    pub torn_bytes: u64,
    /// The segment that had the torn tail.
    pub torn_segment: Option<PathBuf>,
    /// The first entry whose stored tree hashes were missing or wrong, and recomputed.
    pub tree_rebuilt_from_entry: Option<u64>,
    /// Stored tree hashes written again from the entries.
    pub tree_nodes_rebuilt: u64,
    /// Stored tree bytes beyond the entries (or a torn hash), cut.
    pub tree_bytes_dropped: u64,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// An I/O operation failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A write failed (e.g. `ENOSPC`) and was undone: the files are as before the call.
    #[error("{op} {} failed, undone (size stays {size}): {source}", path.display())]
    WriteFailed {
        /// What was being done.
        op: &'static str,
        /// On which file.
        path: PathBuf,
        /// The size (entries, or chain blocks) the store is back at.
        size: u64,
        /// The OS error (`ErrorKind::StorageFull` for a full disk).
        source: std::io::Error,
    },
    /// A failed write could not be undone; the store refuses writes until reopened (open
    /// recovers it: the leftover is a torn tail).
    #[error("store poisoned by a failed write that could not be undone ({detail}): reopen it")]
    Poisoned {
        /// The write error and the undo error.
        detail: String,
    },
    /// Another handle (this process or another) has the store open.
    #[error("{} is locked: the store is open elsewhere", path.display())]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// The directory is not a store of this format.
    #[error("{}: not a prov-ledger log store of this version: {detail}", path.display())]
    Format {
        /// The `FORMAT` file.
        path: PathBuf,
        /// What was found.
        detail: String,
    },
    /// An invalid configuration.
    #[error("invalid store configuration: {detail}")]
    Config {
        /// What is wrong.
        detail: String,
    },
    /// A damaged record that is not a torn tail: corruption. Nothing was cut.
    #[error("corrupt record in {} at byte {offset} (entry {index}): {damage}", segment.display())]
    Corrupt {
        /// The segment file.
        segment: PathBuf,
        /// The record's byte offset in it.
        offset: u64,
        /// The entry index of the damaged record.
        index: u64,
        /// What is wrong with it.
        damage: Damage,
    },
    /// Segment files missing, overlapping or misnamed.
    #[error("{}: {detail}", path.display())]
    Layout {
        /// The offending file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// An entry (or chain block) larger than allowed; nothing was written.
    #[error("item {position} of the batch has {len} bytes, at most {max} are allowed")]
    EntryTooLarge {
        /// Its position in the batch.
        position: usize,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// An entry (or block) index beyond the end.
    #[error("index {index} is not below the size {size}")]
    IndexOutOfRange {
        /// The index asked for.
        index: u64,
        /// Entries (or blocks) present.
        size: u64,
    },
    /// A tree size beyond the integrated entries.
    #[error("tree size {size} is beyond the {integrated} integrated entries")]
    NotIntegrated {
        /// The size asked for.
        size: u64,
        /// [`LogStore::integrated_size`].
        integrated: u64,
    },
    /// A proof request the RFC does not define (index or sizes out of range).
    #[error("proof: {0}")]
    Proof(MerkleError),
    /// A damaged chain record that is not a torn tail.
    #[error("corrupt chain record in {} at byte {offset} (block {block}): {damage}", path.display())]
    ChainCorrupt {
        /// The chain file.
        path: PathBuf,
        /// The record's byte offset.
        offset: u64,
        /// Its block index.
        block: u64,
        /// What is wrong with it.
        damage: Damage,
    },
    /// A chain block that does not verify or does not follow the latest (at open: in the
    /// file; at append: the block offered, nothing written).
    #[error("chain {} at byte {offset}: {source}", path.display())]
    Chain {
        /// The chain file.
        path: PathBuf,
        /// Where the block is (or would have gone).
        offset: u64,
        /// Which block, and why.
        source: ChainError,
    },
    /// A chain block could not be built.
    #[error("chain block: {0}")]
    Block(#[from] BlockError),
    /// A checkpoint could not be made or signed.
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
    /// A note could not be signed.
    #[error("note: {0}")]
    Note(#[from] NoteError),
    /// A key could not be derived.
    #[error("key: {0}")]
    Key(#[from] KeyError),
    /// The signer is not the key the chain verifies under.
    #[error("signer key {signer:?} is not the chain's key {chain:?}: refusing to sign")]
    KeyMismatch {
        /// The signer's verifier key.
        signer: String,
        /// The chain's.
        chain: String,
    },
    /// The log has fewer entries than the latest signed checkpoint: it lost entries.
    #[error(
        "the log has {log_size} entries, fewer than the {checkpoint_size} of the latest signed checkpoint: refusing to sign"
    )]
    LogBehindCheckpoint {
        /// Entries in the log.
        log_size: u64,
        /// The latest checkpoint's size.
        checkpoint_size: u64,
    },
    /// The log's entries do not reproduce the latest signed checkpoint's root: the log was
    /// rewritten or corrupted.
    #[error(
        "the log's root at size {size} is {log_root}, the latest signed checkpoint's is {checkpoint_root}: the log was rewritten or corrupted, refusing to sign"
    )]
    RootMismatch {
        /// The checkpoint's size.
        size: u64,
        /// The log's root at that size.
        log_root: Hash32,
        /// The checkpoint's root.
        checkpoint_root: Hash32,
    },
}

impl StoreError {
    /// The OS error behind an I/O failure, if that is what this is.
    pub fn io_error(&self) -> Option<&std::io::Error> {
        match self {
            StoreError::Io { source, .. } | StoreError::WriteFailed { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// PUBLISH: integrates, and if the log grew past the latest checkpoint (or the chain is
/// empty), signs a checkpoint of the whole log and appends it to the chain as the next block.
///
/// Before signing, the compare-and-swap: the log's entries must reproduce the latest
/// checkpoint (at least its size, and its root at its size), and `signer` must be the chain's
/// key. The tree is synced, the checkpoint signed, and the block (with the consistency proof
/// from the latest checkpoint) appended durably; the signed checkpoint is returned once its
/// block is on disk. `Ok(None)` when the log has not grown since the latest checkpoint. An
/// empty chain gets its first block at the log's current size, even 0.
///
/// # Errors
/// [`StoreError::KeyMismatch`], [`StoreError::LogBehindCheckpoint`],
/// [`StoreError::RootMismatch`] (nothing signed); errors of [`LogStore::integrate`],
/// [`LogStore::sync`] and [`ChainStore::append`].
pub fn publish(
    log: &mut LogStore,
    chain: &mut ChainStore,
    signer: &NoteSigner,
) -> Result<Option<Checkpoint>, StoreError> {
    let signer_key = signer.verifier_key()?;
    if &signer_key != chain.key() {
        return Err(StoreError::KeyMismatch {
            signer: signer_key.to_string(),
            chain: chain.key().to_string(),
        });
    }
    let root = log.integrate()?;
    let size = log.integrated_size();
    let proof = match chain.latest() {
        None => Vec::new(),
        Some(latest) => {
            if size < latest.size() {
                return Err(StoreError::LogBehindCheckpoint {
                    log_size: size,
                    checkpoint_size: latest.size(),
                });
            }
            let log_root = log.root_at(latest.size())?;
            if log_root != latest.root() {
                return Err(StoreError::RootMismatch {
                    size: latest.size(),
                    log_root,
                    checkpoint_root: latest.root(),
                });
            }
            if size == latest.size() {
                return Ok(None);
            }
            if latest.size() == 0 {
                Vec::new()
            } else {
                log.consistency_proof(latest.size(), size)?
            }
        }
    };
    log.sync()?;
    let checkpoint = Checkpoint::new(signer.name(), size, root)?;
    let note = checkpoint.sign(signer)?.encode();
    let block = match chain.last_block_hash() {
        None => ChainBlock::genesis(note),
        Some(prev) => ChainBlock::new(prev, note, proof)?,
    };
    chain.append(&block)?;
    Ok(Some(checkpoint))
}
