//! [`LogStore`]: the entries in checksummed segment files, and the stored tree hashes.

use std::cell::RefCell;
use std::fs::{self, File};
use std::ops::{ControlFlow, Range};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use prov_schemas::Hash32;

use super::io::{WriteBudget, create_dir_durable, io_err, lock_file, read_at, sync_dir};
use super::record::{self, Stop};
use super::tree::{
    BLOCK, BLOCK_LEVEL, Edge, HASH_BYTES, Upper, node_position, nodes_for_blocks, perfect_root,
};
use super::{DiskUsage, Recovery, StoreConfig, StoreError};
use crate::hasher::{Blake3Hasher, LogHasher};
use crate::merkle::{self, MerkleError, NodeSource, ProofError};

/// The largest entry the log accepts (SPEC §2 messages are at most 16 KiB).
pub const MAX_ENTRY_BYTES: usize = 4 << 20;

/// The first line of `FORMAT`: what this code writes and reads.
const FORMAT: &str = "prov-ledger log store v1\n";
const FORMAT_DOC: &str = "segments: entries/{first index:020}.seg, records [u32le len][entry][u32le crc32(len||entry)]\n\
tree: tree/nodes.bin, 32-byte BLAKE3 RFC 9162 subtree hashes of levels >= 4, post-order\n";

/// The sparse offset index keeps every 16th record's offset, counted from the segment's first.
const SPARSE: u64 = BLOCK;

/// Write buffers are flushed to the tree file past this size.
const TREE_FLUSH: usize = 1 << 20;

/// One segment file: entries `[first, first + count)`.
#[derive(Debug)]
struct Segment {
    first: u64,
    count: u64,
    /// Valid bytes (the file's length, once open has cut any torn tail).
    len: u64,
    path: PathBuf,
    /// Offset of every 16th record: `sparse[j]` is record `first + 16 j`'s.
    sparse: Vec<u64>,
    /// Opened on first read (the active segment: at creation, read-write).
    file: OnceLock<File>,
}

impl Segment {
    fn file(&self) -> Result<&File, StoreError> {
        if let Some(f) = self.file.get() {
            return Ok(f);
        }
        let f = File::open(&self.path).map_err(io_err("open", &self.path))?;
        Ok(self.file.get_or_init(|| f))
    }

    fn end(&self) -> u64 {
        self.first + self.count
    }
}

fn segment_name(first: u64) -> String {
    format!("{first:020}.seg")
}

/// The entries: segments in order, and the reads over them.
#[derive(Debug)]
struct Entries {
    dir: PathBuf,
    segments: Vec<Segment>,
    size: u64,
}

impl Entries {
    fn check_range(&self, range: &Range<u64>) -> Result<(), StoreError> {
        if range.end > self.size && range.start < range.end {
            return Err(StoreError::IndexOutOfRange {
                index: range.end - 1,
                size: self.size,
            });
        }
        Ok(())
    }

    /// Calls `f` on entries `range` in order, reading each segment in large sequential reads
    /// and checking every record's checksum.
    fn for_each(
        &self,
        range: Range<u64>,
        mut f: impl FnMut(u64, &[u8]) -> Result<ControlFlow<()>, StoreError>,
    ) -> Result<(), StoreError> {
        self.check_range(&range)?;
        if range.start >= range.end {
            return Ok(());
        }
        let first_seg = self
            .segments
            .partition_point(|s| s.first <= range.start)
            .saturating_sub(1);
        for seg in self.segments.iter().skip(first_seg) {
            if seg.first >= range.end {
                break;
            }
            let a = range.start.max(seg.first) - seg.first;
            let b = range.end.min(seg.end()) - seg.first;
            if a >= b {
                continue;
            }
            let (ja, jb) = (a / SPARSE, (b - 1) / SPARSE + 1);
            let start = seg.sparse.get(ja as usize).copied().unwrap_or(seg.len);
            let end = seg.sparse.get(jb as usize).copied().unwrap_or(seg.len);
            let mut local = ja * SPARSE;
            let mut stopped = false;
            let done = record::scan(
                seg.file()?,
                &seg.path,
                start,
                end,
                MAX_ENTRY_BYTES as u64,
                |_, payload| {
                    let here = local;
                    local += 1;
                    if here < a {
                        return Ok(ControlFlow::Continue(()));
                    }
                    if here >= b {
                        return Ok(ControlFlow::Break(()));
                    }
                    let flow = f(seg.first + here, payload)?;
                    stopped = flow.is_break();
                    Ok(flow)
                },
            )?;
            if let Stop::Damaged(damage) = done.stop {
                return Err(StoreError::Corrupt {
                    segment: seg.path.clone(),
                    offset: done.offset,
                    index: seg.first + ja * SPARSE + done.records,
                    damage,
                });
            }
            if stopped {
                return Ok(());
            }
        }
        Ok(())
    }

    fn entry(&self, index: u64) -> Result<Vec<u8>, StoreError> {
        if index >= self.size {
            return Err(StoreError::IndexOutOfRange {
                index,
                size: self.size,
            });
        }
        let mut out = Vec::new();
        self.for_each(index..index + 1, |_, e| {
            out.extend_from_slice(e);
            Ok(ControlFlow::Break(()))
        })?;
        Ok(out)
    }

    fn leaf_hashes(&self, range: Range<u64>) -> Result<Vec<Hash32>, StoreError> {
        let mut out = Vec::with_capacity(range.end.saturating_sub(range.start) as usize);
        self.for_each(range, |_, e| {
            out.push(Blake3Hasher.hash_leaf(e));
            Ok(ControlFlow::Continue(()))
        })?;
        Ok(out)
    }

    fn active(&mut self) -> Result<&mut Segment, StoreError> {
        self.segments.last_mut().ok_or_else(|| StoreError::Layout {
            path: self.dir.clone(),
            detail: "no segment".into(),
        })
    }
}

/// The tree file and the in-memory right edge.
#[derive(Debug)]
struct Tree {
    path: PathBuf,
    file: File,
    /// Valid bytes: `nodes_for_blocks(edge.blocks) * 32`.
    len: u64,
    edge: Edge,
    /// Stored levels ≥ 7, also in memory.
    upper: Upper,
}

/// What `sequence` must restore if it fails.
struct Snapshot {
    segments: usize,
    count: u64,
    len: u64,
    sparse: usize,
    size: u64,
}

/// The log's storage: entries in append-only, checksummed segment files, and the hashes of the
/// RFC 9162 tree over them. See the [module docs](super) for the layout and the durability
/// contract of each step.
#[derive(Debug)]
pub struct LogStore {
    dir: PathBuf,
    segment_bytes: u64,
    _lock: File,
    entries: Entries,
    tree: Tree,
    write_buf: Vec<u8>,
    budget: WriteBudget,
    poisoned: Option<String>,
    recovery: Recovery,
}

impl LogStore {
    /// Opens the store in `config.dir`, creating it if empty, and recovers it.
    ///
    /// Recovery reads every entry once: it checks each record's checksum, cuts a torn tail of
    /// the last segment back to its last whole record, rebuilds the sparse offset index, and
    /// recomputes the tree from the entries, comparing it with the stored tree hashes; from the
    /// first stored hash that is missing or disagrees, the stored tree is rewritten from the
    /// entries. What was done is in [`LogStore::recovery`].
    ///
    /// # Errors
    /// [`StoreError::Locked`] if another handle has the store open; [`StoreError::Corrupt`] for
    /// a damaged record anywhere but in a torn tail (naming segment, offset and entry index);
    /// [`StoreError::Layout`] for missing or overlapping segments; [`StoreError::Format`] for a
    /// directory of another format; I/O errors.
    pub fn open(config: StoreConfig) -> Result<LogStore, StoreError> {
        if config.segment_bytes == 0 {
            return Err(StoreError::Config {
                detail: "segment_bytes must be at least 1".into(),
            });
        }
        let dir = config.dir;
        let entries_dir = dir.join("entries");
        let tree_dir = dir.join("tree");
        for d in [&dir, &entries_dir, &tree_dir] {
            create_dir_durable(d)?;
        }
        let lock_path = dir.join("LOCK");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err("open", &lock_path))?;
        lock_file(&lock, &lock_path)?;
        check_format(&dir)?;

        let mut recovery = Recovery::default();
        let segments = list_segments(&entries_dir)?;
        let tree_path = tree_dir.join("nodes.bin");
        let tree_file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&tree_path)
            .map_err(io_err("open", &tree_path))?;
        let stored_len = tree_file
            .metadata()
            .map_err(io_err("stat", &tree_path))?
            .len();
        let mut check = TreeCheck::new(&tree_file, &tree_path, stored_len);

        let mut loaded = Vec::with_capacity(segments.len());
        let mut next_first = 0u64;
        let last = segments.len().saturating_sub(1);
        for (k, (first, path)) in segments.into_iter().enumerate() {
            if first != next_first {
                return Err(StoreError::Layout {
                    path,
                    detail: format!("segment starts at entry {first}, want {next_first}"),
                });
            }
            let seg = load_segment(first, path, k == last, &mut check, &mut recovery)?;
            next_first = seg.end();
            loaded.push(seg);
        }
        if loaded.is_empty() {
            loaded.push(create_segment(&entries_dir, 0)?);
        }
        let (edge, upper, tree_len) = check.finish(&mut recovery)?;
        let size = next_first;
        Ok(LogStore {
            dir,
            segment_bytes: config.segment_bytes,
            _lock: lock,
            entries: Entries {
                dir: entries_dir,
                segments: loaded,
                size,
            },
            tree: Tree {
                path: tree_path,
                file: tree_file,
                len: tree_len,
                edge,
                upper,
            },
            write_buf: Vec::new(),
            budget: WriteBudget::default(),
            poisoned: None,
            recovery,
        })
    }

    /// The directory of the store.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What [`LogStore::open`] found and repaired.
    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    /// Entries durably sequenced.
    pub fn size(&self) -> u64 {
        self.entries.size
    }

    /// Entries covered by the tree: proofs and roots are available for sizes up to this.
    pub fn integrated_size(&self) -> u64 {
        self.tree.edge.size()
    }

    /// The root of the tree over all integrated entries.
    pub fn root(&self) -> Hash32 {
        self.tree.edge.root()
    }

    /// SEQUENCE: appends whole entries and returns the index of the first. Every entry is on
    /// disk (written and `fdatasync`ed, and any new segment's directory entry fsynced) before
    /// this returns `Ok`.
    ///
    /// A batch that does not fit in the active segment continues in a new one: records never
    /// straddle segments. On a failed write (e.g. `ENOSPC`) the files are cut back to where
    /// they were before the call and the store stays usable; if even that fails, the store
    /// refuses further writes ([`StoreError::Poisoned`]) until reopened.
    ///
    /// # Errors
    /// [`StoreError::EntryTooLarge`] (nothing written); [`StoreError::WriteFailed`] (rolled
    /// back); [`StoreError::Poisoned`].
    pub fn sequence(&mut self, entries: &[&[u8]]) -> Result<u64, StoreError> {
        self.check_poisoned()?;
        for (position, e) in entries.iter().enumerate() {
            if e.len() > MAX_ENTRY_BYTES {
                return Err(StoreError::EntryTooLarge {
                    position,
                    len: e.len(),
                    max: MAX_ENTRY_BYTES,
                });
            }
        }
        let first = self.entries.size;
        if entries.is_empty() {
            return Ok(first);
        }
        let seg = self.entries.active()?;
        let snapshot = Snapshot {
            count: seg.count,
            len: seg.len,
            sparse: seg.sparse.len(),
            segments: self.entries.segments.len(),
            size: first,
        };
        let mut buf = std::mem::take(&mut self.write_buf);
        buf.clear();
        let result = self.append_batch(entries, &mut buf);
        buf.clear();
        self.write_buf = buf;
        match result {
            Ok(()) => Ok(first),
            Err(e) => Err(self.roll_back(snapshot, e)),
        }
    }

    fn append_batch(&mut self, entries: &[&[u8]], buf: &mut Vec<u8>) -> Result<(), StoreError> {
        for e in entries {
            let record = e.len() as u64 + record::OVERHEAD;
            let seg = self.entries.active()?;
            if seg.count > 0 && seg.len + buf.len() as u64 + record > self.segment_bytes {
                self.flush(buf)?;
                let first = self.entries.size;
                let new = create_segment(&self.entries.dir, first)?;
                self.entries.segments.push(new);
            }
            let seg = self.entries.active()?;
            if seg.count.is_multiple_of(SPARSE) {
                seg.sparse.push(seg.len + buf.len() as u64);
            }
            record::encode_into(buf, e);
            seg.count += 1;
            self.entries.size += 1;
        }
        self.flush(buf)
    }

    /// Writes `buf` at the end of the active segment and makes it durable.
    fn flush(&mut self, buf: &mut Vec<u8>) -> Result<(), StoreError> {
        if buf.is_empty() {
            return Ok(());
        }
        let budget = &mut self.budget;
        let seg = self
            .entries
            .segments
            .last_mut()
            .ok_or_else(|| StoreError::Layout {
                path: self.entries.dir.clone(),
                detail: "no segment".into(),
            })?;
        let file = seg.file()?;
        budget
            .write_all_at(file, buf, seg.len)
            .map_err(io_err("write", &seg.path))?;
        file.sync_data().map_err(io_err("fdatasync", &seg.path))?;
        seg.len += buf.len() as u64;
        buf.clear();
        Ok(())
    }

    /// Undoes a failed `sequence`: removes segments it created, cuts the active one back.
    fn roll_back(&mut self, s: Snapshot, error: StoreError) -> StoreError {
        let mut failures = Vec::new();
        let mut removed = false;
        while self.entries.segments.len() > s.segments {
            if let Some(seg) = self.entries.segments.pop() {
                if let Err(e) = fs::remove_file(&seg.path) {
                    failures.push(format!("remove {}: {e}", seg.path.display()));
                }
                removed = true;
            }
        }
        if removed && let Err(e) = sync_dir(&self.entries.dir) {
            failures.push(e.to_string());
        }
        if let Some(seg) = self.entries.segments.last_mut() {
            seg.count = s.count;
            seg.sparse.truncate(s.sparse);
            seg.len = s.len;
            match seg.file() {
                Ok(f) => {
                    if let Err(e) = f.set_len(s.len).and_then(|()| f.sync_data()) {
                        failures.push(format!("truncate {}: {e}", seg.path.display()));
                    }
                }
                Err(e) => failures.push(e.to_string()),
            }
        }
        self.entries.size = s.size;
        if !failures.is_empty() {
            let detail = format!("{error}; then: {}", failures.join("; "));
            self.poisoned = Some(detail.clone());
            return StoreError::Poisoned { detail };
        }
        match error {
            StoreError::Io { op, path, source } => StoreError::WriteFailed {
                op,
                path,
                size: s.size,
                source,
            },
            other => other,
        }
    }

    fn check_poisoned(&self) -> Result<(), StoreError> {
        match &self.poisoned {
            Some(detail) => Err(StoreError::Poisoned {
                detail: detail.clone(),
            }),
            None => Ok(()),
        }
    }

    /// INTEGRATE: hashes every sequenced entry not yet in the tree, appends the new complete
    /// subtree hashes to the tree file (written, not fsynced: see [`LogStore::sync`]), and
    /// returns the root at [`LogStore::size`].
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] if an entry read back fails its checksum;
    /// [`StoreError::WriteFailed`] (the tree file is cut back, nothing changes).
    pub fn integrate(&mut self) -> Result<Hash32, StoreError> {
        self.check_poisoned()?;
        let (from, to) = (self.tree.edge.size(), self.entries.size);
        if from == to {
            return Ok(self.tree.edge.root());
        }
        let mut edge = self.tree.edge.clone();
        let mut out = Vec::new();
        let mut written = self.tree.len;
        let (file, path) = (&self.tree.file, &self.tree.path);
        let upper = &mut self.tree.upper;
        let budget = &mut self.budget;
        let result = self.entries.for_each(from..to, |_, e| {
            let before = out.len();
            edge.push_leaf(Blake3Hasher.hash_leaf(e), &mut out);
            upper.add(out.get(before..).unwrap_or_default());
            if out.len() >= TREE_FLUSH {
                budget
                    .write_all_at(file, &out, written)
                    .map_err(io_err("write", path))?;
                written += out.len() as u64;
                out.clear();
            }
            Ok(ControlFlow::Continue(()))
        });
        let result = result.and_then(|()| {
            budget
                .write_all_at(file, &out, written)
                .map_err(io_err("write", path))
        });
        if let Err(error) = result {
            // Cut the tree file back; the edge is unchanged.
            let len = self.tree.len;
            self.tree.upper.truncate(self.tree.edge.blocks);
            if let Err(e) = self.tree.file.set_len(len) {
                let detail = format!("{error}; then: truncate {}: {e}", self.tree.path.display());
                self.poisoned = Some(detail.clone());
                return Err(StoreError::Poisoned { detail });
            }
            return Err(match error {
                StoreError::Io { op, path, source } => StoreError::WriteFailed {
                    op,
                    path,
                    size: self.entries.size,
                    source,
                },
                other => other,
            });
        }
        self.tree.len = nodes_for_blocks(edge.blocks) * HASH_BYTES;
        self.tree.edge = edge;
        Ok(self.tree.edge.root())
    }

    /// Makes the stored tree hashes durable (`fdatasync` of the tree file). The tree is derived
    /// from the entries, so this only saves recomputation at the next open; [`super::publish`]
    /// calls it before signing.
    ///
    /// # Errors
    /// I/O errors; [`StoreError::Poisoned`].
    pub fn sync(&mut self) -> Result<(), StoreError> {
        self.check_poisoned()?;
        self.tree
            .file
            .sync_data()
            .map_err(io_err("fdatasync", &self.tree.path))
    }

    /// The entry at `index`, checked against its record checksum.
    ///
    /// # Errors
    /// [`StoreError::IndexOutOfRange`], [`StoreError::Corrupt`], I/O errors.
    pub fn entry(&self, index: u64) -> Result<Vec<u8>, StoreError> {
        self.entries.entry(index)
    }

    /// Calls `f(index, entry)` for the entries in `range`, in order, until it breaks: for
    /// reindexing and export. Reads sequentially in large chunks; entries are not held in memory.
    ///
    /// # Errors
    /// [`StoreError::IndexOutOfRange`] if the range ends beyond [`LogStore::size`];
    /// [`StoreError::Corrupt`]; I/O errors.
    pub fn for_each_entry(
        &self,
        range: Range<u64>,
        mut f: impl FnMut(u64, &[u8]) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        self.entries.for_each(range, |i, e| Ok(f(i, e)))
    }

    /// The RFC 9162 leaf hash of entry `index`.
    ///
    /// # Errors
    /// As [`LogStore::entry`].
    pub fn leaf_hash(&self, index: u64) -> Result<Hash32, StoreError> {
        let edge = &self.tree.edge;
        let block_start = edge.blocks * BLOCK;
        if index >= block_start
            && let Some(h) = edge.pending.get((index - block_start) as usize)
        {
            return Ok(*h);
        }
        Ok(Blake3Hasher.hash_leaf(&self.entries.entry(index)?))
    }

    /// The root of the tree of the first `size` entries.
    ///
    /// # Errors
    /// [`StoreError::NotIntegrated`] if `size` is beyond [`LogStore::integrated_size`].
    pub fn root_at(&self, size: u64) -> Result<Hash32, StoreError> {
        self.check_integrated(size)?;
        if size == self.integrated_size() {
            return Ok(self.root());
        }
        merkle::root(&Blake3Hasher, &Nodes::new(self), size)
    }

    /// The RFC 9162 inclusion proof of entry `index` in the tree of the first `size` entries.
    ///
    /// # Errors
    /// [`StoreError::NotIntegrated`]; [`StoreError::Proof`] for an index not below `size`.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash32>, StoreError> {
        self.check_integrated(size)?;
        merkle::inclusion_proof(&Blake3Hasher, &Nodes::new(self), index, size).map_err(flatten)
    }

    /// The RFC 9162 consistency proof from the first `size1` entries to the first `size2`.
    ///
    /// # Errors
    /// [`StoreError::NotIntegrated`]; [`StoreError::Proof`] for sizes out of order or `size1`
    /// = 0.
    pub fn consistency_proof(&self, size1: u64, size2: u64) -> Result<Vec<Hash32>, StoreError> {
        self.check_integrated(size2)?;
        merkle::consistency_proof(&Blake3Hasher, &Nodes::new(self), size1, size2).map_err(flatten)
    }

    fn check_integrated(&self, size: u64) -> Result<(), StoreError> {
        let integrated = self.integrated_size();
        if size > integrated {
            return Err(StoreError::NotIntegrated { size, integrated });
        }
        Ok(())
    }

    /// Bytes on disk: segment files, tree file, and index files (none: the offset index is
    /// sparse, one `u64` per 16 entries, held in memory and rebuilt by the scan at open).
    ///
    /// # Errors
    /// None at present; kept fallible for index files.
    pub fn disk_usage(&self) -> Result<DiskUsage, StoreError> {
        Ok(DiskUsage {
            entry_bytes: self.entries.segments.iter().map(|s| s.len).sum(),
            tree_bytes: self.tree.len,
            index_bytes: 0,
        })
    }

    /// Number of segment files.
    pub fn segment_count(&self) -> usize {
        self.entries.segments.len()
    }

    /// Test seam: writes fail with `ENOSPC` once `bytes` more bytes have been written (after
    /// writing those, so a write can be cut short); `None` lifts the limit.
    #[doc(hidden)]
    pub fn fail_writes_after(&mut self, bytes: Option<u64>) {
        self.budget = WriteBudget(bytes);
    }
}

fn flatten(e: ProofError<StoreError>) -> StoreError {
    match e {
        ProofError::Merkle(e) => StoreError::Proof(e),
        ProofError::Source(e) => e,
    }
}

impl NodeSource for LogStore {
    type Error = StoreError;

    fn node(&self, level: u32, index: u64) -> Result<Hash32, StoreError> {
        Nodes::new(self).node(level, index)
    }
}

/// The log's nodes for one proof: stored hashes for levels ≥ 4, recomputed from the entries
/// below, with the (at most two) blocks of leaf hashes a proof touches kept for its duration.
struct Nodes<'a> {
    log: &'a LogStore,
    blocks: RefCell<Vec<(u64, Vec<Hash32>)>>,
}

impl<'a> Nodes<'a> {
    fn new(log: &'a LogStore) -> Self {
        Nodes {
            log,
            blocks: RefCell::new(Vec::new()),
        }
    }

    fn missing(level: u32, index: u64) -> StoreError {
        StoreError::Proof(MerkleError::NodeMissing { level, index })
    }

    /// The leaf hashes of block `b`.
    fn block(&self, b: u64) -> Result<Vec<Hash32>, StoreError> {
        let edge = &self.log.tree.edge;
        if b == edge.blocks {
            return Ok(edge.pending.clone());
        }
        if b > edge.blocks {
            return Ok(Vec::new());
        }
        if let Some((_, leaves)) = self.blocks.borrow().iter().find(|(k, _)| *k == b) {
            return Ok(leaves.clone());
        }
        let leaves = self.log.entries.leaf_hashes(b * BLOCK..(b + 1) * BLOCK)?;
        let mut memo = self.blocks.borrow_mut();
        if memo.len() >= 2 {
            memo.remove(0);
        }
        memo.push((b, leaves.clone()));
        Ok(leaves)
    }
}

impl NodeSource for Nodes<'_> {
    type Error = StoreError;

    fn node(&self, level: u32, index: u64) -> Result<Hash32, StoreError> {
        let edge = &self.log.tree.edge;
        if level < BLOCK_LEVEL {
            let first = index
                .checked_shl(level)
                .ok_or_else(|| Self::missing(level, index))?;
            let leaves = self.block(first / BLOCK)?;
            let lo = (first % BLOCK) as usize;
            let slice = leaves
                .get(lo..lo + (1usize << level))
                .ok_or_else(|| Self::missing(level, index))?;
            return Ok(perfect_root(slice));
        }
        if let Some(peak) = edge.peak(level, index) {
            return Ok(peak);
        }
        let tree = &self.log.tree;
        if let Some(node) = tree.upper.get(level, index) {
            return Ok(node);
        }
        let shift = level - BLOCK_LEVEL;
        if index >= edge.blocks.checked_shr(shift).unwrap_or(0) {
            return Err(Self::missing(level, index));
        }
        let pos = node_position(level, index).ok_or_else(|| Self::missing(level, index))?;
        let mut node = [0u8; HASH_BYTES as usize];
        tree.file
            .read_exact_at(&mut node, pos * HASH_BYTES)
            .map_err(io_err("read", &tree.path))?;
        Ok(Hash32(node))
    }
}

/// Checks `FORMAT` in a store directory, writing it into a new one.
fn check_format(dir: &Path) -> Result<(), StoreError> {
    let path = dir.join("FORMAT");
    match fs::read(&path) {
        Ok(bytes) => {
            if !bytes.starts_with(FORMAT.as_bytes()) {
                let first = String::from_utf8_lossy(&bytes);
                let first = first.lines().next().unwrap_or_default();
                return Err(StoreError::Format {
                    path,
                    detail: format!("found {first:?}, want {:?}", FORMAT.trim_end()),
                });
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let tmp = dir.join("FORMAT.tmp");
            let text = format!("{FORMAT}{FORMAT_DOC}");
            File::create(&tmp)
                .and_then(|mut f| {
                    std::io::Write::write_all(&mut f, text.as_bytes())?;
                    f.sync_all()
                })
                .map_err(io_err("write", &tmp))?;
            fs::rename(&tmp, &path).map_err(io_err("rename", &tmp))?;
            sync_dir(dir)
        }
        Err(e) => Err(io_err("read", &path)(e)),
    }
}

/// The segment files of `dir`, by first index. Leftover temporary files are removed.
fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, StoreError> {
    let mut out = Vec::new();
    for item in fs::read_dir(dir).map_err(io_err("list", dir))? {
        let item = item.map_err(io_err("list", dir))?;
        let path = item.path();
        let name = item.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(stem) = name.strip_suffix(".seg") else {
            continue;
        };
        let first = (stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()))
            .then(|| stem.parse::<u64>().ok())
            .flatten()
            .ok_or_else(|| StoreError::Layout {
                path: path.clone(),
                detail: "segment file name is not 20 decimal digits".into(),
            })?;
        out.push((first, path));
    }
    out.sort();
    Ok(out)
}

/// Creates the empty segment starting at entry `first`, durably (directory fsynced).
fn create_segment(dir: &Path, first: u64) -> Result<Segment, StoreError> {
    let path = dir.join(segment_name(first));
    let file = File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(io_err("create", &path))?;
    sync_dir(dir)?;
    Ok(Segment {
        first,
        count: 0,
        len: 0,
        path,
        sparse: Vec::new(),
        file: OnceLock::from(file),
    })
}

/// Scans one segment at open: checks every record, feeds the leaf hashes to the tree check,
/// and for the last segment cuts a torn tail.
fn load_segment(
    first: u64,
    path: PathBuf,
    is_last: bool,
    check: &mut TreeCheck<'_>,
    recovery: &mut Recovery,
) -> Result<Segment, StoreError> {
    let file = File::options()
        .read(true)
        .write(is_last)
        .open(&path)
        .map_err(io_err("open", &path))?;
    let file_len = file.metadata().map_err(io_err("stat", &path))?.len();
    let mut sparse = Vec::new();
    let mut count = 0u64;
    let max = MAX_ENTRY_BYTES as u64;
    let done = record::scan(&file, &path, 0, file_len, max, |offset, payload| {
        if count.is_multiple_of(SPARSE) {
            sparse.push(offset);
        }
        count += 1;
        check.push_leaf(Blake3Hasher.hash_leaf(payload))?;
        Ok(ControlFlow::Continue(()))
    })?;
    let mut len = file_len;
    if let Stop::Damaged(damage) = done.stop {
        let corrupt = || StoreError::Corrupt {
            segment: path.clone(),
            offset: done.offset,
            index: first + done.records,
            damage,
        };
        if !is_last || record::find_valid_run(&file, &path, done.offset, file_len, max)?.is_some() {
            return Err(corrupt());
        }
        // A torn tail: nothing valid follows the damage. Cut it off, durably.
        file.set_len(done.offset)
            .and_then(|()| file.sync_data())
            .map_err(io_err("truncate", &path))?;
        recovery.torn_bytes += file_len - done.offset;
        recovery.torn_segment = Some(path.clone());
        len = done.offset;
    }
    let file = if is_last {
        OnceLock::from(file)
    } else {
        OnceLock::new()
    };
    Ok(Segment {
        first,
        count,
        len,
        path,
        sparse,
        file,
    })
}

/// At open: recomputes the tree from the entries and compares it with the stored hashes, in
/// the file's order; rewrites the file from the first hash that is missing or wrong.
struct TreeCheck<'a> {
    file: &'a File,
    path: &'a Path,
    /// Whole hashes in the file as found.
    stored: u64,
    edge: Edge,
    /// New nodes of the current leaf.
    nodes: Vec<u8>,
    /// Position of the next node.
    next: u64,
    /// A window of stored hashes read ahead: (first position, bytes).
    window: (u64, Vec<u8>),
    /// Once diverged: nodes to write, and the offset to write them at.
    rewrite: Option<(u64, Vec<u8>)>,
    /// The block whose stored nodes were first missing or wrong.
    diverged_block: Option<u64>,
    upper: Upper,
}

impl<'a> TreeCheck<'a> {
    fn new(file: &'a File, path: &'a Path, len: u64) -> Self {
        TreeCheck {
            file,
            path,
            stored: len / HASH_BYTES,
            edge: Edge::default(),
            nodes: Vec::new(),
            next: 0,
            window: (0, Vec::new()),
            rewrite: None,
            diverged_block: None,
            upper: Upper::default(),
        }
    }

    fn stored_node(&mut self, pos: u64) -> Result<Option<[u8; 32]>, StoreError> {
        if pos >= self.stored {
            return Ok(None);
        }
        let (start, buf) = &self.window;
        let in_window = pos >= *start && (pos - start) * HASH_BYTES < buf.len() as u64;
        if !in_window {
            let n = (self.stored - pos).min((TREE_FLUSH as u64) / HASH_BYTES);
            let bytes = read_at(
                self.file,
                self.path,
                pos * HASH_BYTES,
                (n * HASH_BYTES) as usize,
            )?;
            self.window = (pos, bytes);
        }
        let (start, buf) = &self.window;
        let at = ((pos - start) * HASH_BYTES) as usize;
        Ok(buf
            .get(at..at + 32)
            .and_then(|s| s.first_chunk::<32>())
            .copied())
    }

    fn push_leaf(&mut self, leaf: Hash32) -> Result<(), StoreError> {
        self.nodes.clear();
        let mut nodes = std::mem::take(&mut self.nodes);
        self.edge.push_leaf(leaf, &mut nodes);
        let result = self.take_nodes(&nodes);
        self.nodes = nodes;
        result
    }

    fn take_nodes(&mut self, nodes: &[u8]) -> Result<(), StoreError> {
        if nodes.is_empty() {
            return Ok(());
        }
        self.upper.add(nodes);
        let count = nodes.len() as u64 / HASH_BYTES;
        if self.rewrite.is_none() {
            let mut same = true;
            for (j, node) in nodes.chunks_exact(32).enumerate() {
                if self
                    .stored_node(self.next + j as u64)?
                    .as_ref()
                    .map(|n| &n[..])
                    != Some(node)
                {
                    same = false;
                    break;
                }
            }
            if same {
                self.next += count;
                return Ok(());
            }
            // Diverged within this block's nodes: rewrite from the block's first node.
            self.diverged_block = Some(self.edge.blocks - 1);
            self.rewrite = Some((self.next * HASH_BYTES, Vec::new()));
        }
        if let Some((at, buf)) = self.rewrite.as_mut() {
            buf.extend_from_slice(nodes);
            if buf.len() >= TREE_FLUSH {
                self.file
                    .write_all_at(buf, *at)
                    .map_err(io_err("write", self.path))?;
                *at += buf.len() as u64;
                buf.clear();
            }
        }
        self.next += count;
        Ok(())
    }

    /// Writes what is pending, cuts the file to the tree's length, and returns the edge.
    fn finish(mut self, recovery: &mut Recovery) -> Result<(Edge, Upper, u64), StoreError> {
        let len = nodes_for_blocks(self.edge.blocks) * HASH_BYTES;
        if let Some((at, buf)) = self.rewrite.take() {
            self.file
                .write_all_at(&buf, at)
                .map_err(io_err("write", self.path))?;
        }
        if let Some(block) = self.diverged_block {
            recovery.tree_rebuilt_from_entry = Some(block * BLOCK);
            recovery.tree_nodes_rebuilt =
                (len / HASH_BYTES).saturating_sub(nodes_for_blocks(block));
        }
        let file_len = self
            .file
            .metadata()
            .map_err(io_err("stat", self.path))?
            .len();
        if file_len != len {
            self.file
                .set_len(len)
                .map_err(io_err("truncate", self.path))?;
            if file_len > len && self.diverged_block.is_none() {
                recovery.tree_bytes_dropped = file_len - len;
            }
        }
        Ok((self.edge, self.upper, len))
    }
}
