//! The derived indexes, in sled: everything the verify step and the API look up, all computed
//! from the log entries alone, so that `reindex` can rebuild them from the log.
//!
//! What is indexed (SPEC §4): the device registry (device → key, registration leaf, revocation
//! leaf), each device's chain (`(device, seq)` → hash, prev, leaf), its highest seq and its
//! recorded gaps, `BLAKE3(message)` → leaf of registry records (idempotency; an event's copy is
//! found through its `(device, seq)` link instead, see below), the product index (canonical Digital
//! Link of every identifier an event names → leaves), the lineage edges — containment
//! (parent ⇄ child, with action and event time) and transformation (input ⇄ output) in both
//! directions — and per leaf its kind, device, seq and event time.
//!
//! # Why one sled tree with key spaces
//!
//! Every index lives in one tree under a one-byte key space, so that one log batch becomes one
//! `sled::Batch`, applied atomically together with the number of leaves indexed
//! (`indexed_size`): the indexes are always exactly those of a prefix of the log, never half a
//! batch. Multi-valued indexes use composite keys (`uri ‖ leaf`), read by prefix scans.
//!
//! # Every entry is re-checked
//!
//! Applying an entry runs the same state rules as the verify step ([`verify::chain_verdict`],
//! [`verify::registry_verdict`], [`verify::device_verdict`]) and refuses an entry they would
//! reject ([`IndexError::Inconsistent`]). Live, this double-checks the sequencer at the cost of a
//! few reads; in a reindex it makes the rebuild a strict replay of the log's rules. Reindex
//! parses every entry strictly (the exact envelope, deterministic CBOR, valid payload, kid =
//! `prov:device`) and, with [`Reindexer::with_signatures`], also re-verifies every signature
//! (events under the key registered at that point of the log, registry records under the
//! trusted operators): an auditor's full replay, about 16,000 entries/s per core with `ring`.
//!
//! # What an entry costs (the ingest bench, docs/bench)
//!
//! sled 0.34 pays ~10 µs of CPU per key written (a tree descent that materialises the page,
//! then a delta appended to it), so the key count per event is the index's price: no
//! `BLAKE3 → leaf` key per event (identical bytes are the same device's same seq, so the chain
//! key finds a logged copy; this key was also the only one at a random position, touching a
//! cold page per event), and the rule checks read each device's registry state, head, head
//! link and gaps from memory ([`Indexes`] keeps them, loaded at open and updated on commit)
//! instead of sled.
//!
//! # Durability and catching up
//!
//! [`Staged::commit`] applies the batch and calls `flush()` (sled otherwise syncs only every
//! 500 ms); the gateway's live indexing uses [`Indexes::apply_batch_unflushed`] (atomic and
//! visible at once, durable within 500 ms or at the flush of a graceful stop), since a crash
//! is repaired from the log anyway. The sequencer appends to the log first (and acknowledges),
//! then applies the batch here: after a crash
//! the indexes may lag the log (never lead it) and are caught up on start by re-applying the
//! entries from [`Indexes::indexed_size`] to the log's size ([`Indexes::catch_up`]). Indexes
//! *ahead* of the log are refused ([`IndexError::AheadOfLog`]). The `reindex` command is the
//! same loop on fresh indexes (a copy): [`Indexes::catch_up`] from leaf 0, or
//! [`Indexes::reindexer`] with [`Reindexer::with_signatures`] for a full re-verification.
//!
//! # What is not here
//!
//! Equivocation flags and the rejected twin of an equivocation are *not* derivable from the log
//! (the second message never entered it). They live with the rejected message in the
//! [quarantine](crate::quarantine), whose own file is the evidence and whose index of flagged
//! devices is rebuilt from that file on open.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock};

use prov_ledger::store::{LogStore, StoreError};
use prov_schemas::Hash32;
use prov_schemas::checked::{self, VerifyError};
use prov_schemas::cose::{CoseSign1, PreferredBackend, VerifyBackend};
use prov_schemas::digital_link::DigitalLink;
use prov_schemas::event::{Action, Event};
use prov_schemas::keys::{DeviceId, Kid, OperatorName, PUBLIC_KEY_LEN, PublicKey};
use prov_schemas::registry::RegistryRecord;

use crate::verify::{self, ChainVerdict, DeviceState, Entry, EntryRef, Link, LogView, Verifier};

/// Name of the sled tree holding the indexes.
pub const TREE_NAME: &str = "prov-indexes";

/// The format marker stored in the tree; a different one is refused (rebuild with reindex).
/// v2: `BLAKE3 → leaf` only for registry records (v1 also had one per event).
pub const FORMAT: &str = "prov-indexes-v2";

/// Entries per sled batch in a reindex.
pub const REINDEX_BATCH: usize = 1000;

/// sled's page cache for [`Indexes::open`] (its default, 1 GiB, let the gateway's RSS grow with
/// the log: 319 MB after 200,000 events). Lookups that miss it read sled's files through the
/// OS page cache.
pub const CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// The key spaces (first key byte; 0x00 holds the metadata keys below).
mod space {
    pub const REGISTRY: u8 = 0x01;
    pub const CHAIN: u8 = 0x02;
    pub const HEAD: u8 = 0x03;
    pub const GAPS: u8 = 0x04;
    pub const HASH: u8 = 0x05;
    pub const PRODUCT: u8 = 0x06;
    pub const CONTAINS: u8 = 0x07;
    pub const CONTAINED_IN: u8 = 0x08;
    pub const OUTPUTS: u8 = 0x09;
    pub const INPUTS: u8 = 0x0a;
    pub const LEAF: u8 = 0x0b;
    pub const LOT_ITEMS: u8 = 0x0c;
    pub const ITEM_LOTS: u8 = 0x0d;
}

const KEY_FORMAT: &[u8] = b"\x00format";
const KEY_INDEXED_SIZE: &[u8] = b"\x00indexed_size";

/// An index operation failed.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// sled failed (I/O, or its own corruption checks).
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    /// A stored value does not decode.
    #[error("corrupt index value under key {key}: {what}")]
    Corrupt {
        /// The key, hex.
        key: String,
        /// What was wrong.
        what: &'static str,
    },
    /// The tree holds indexes of another format.
    #[error("index format {found:?} is not {want:?}: rebuild the indexes (reindex)")]
    Format {
        /// The format found.
        found: String,
        /// The format this build writes.
        want: &'static str,
    },
    /// An entry was applied at another leaf than the next one.
    #[error("entry for leaf {got} applied out of order: the next leaf to index is {expected}")]
    OutOfOrder {
        /// The next leaf to index.
        expected: u64,
        /// The leaf given.
        got: u64,
    },
    /// An entry breaks the log's rules given the entries before it (SPEC §4).
    #[error("leaf {leaf} breaks the log rules: {reason}")]
    Inconsistent {
        /// The entry's leaf.
        leaf: u64,
        /// The rule broken.
        reason: String,
    },
    /// A logged entry does not parse (or, in a signature-checking reindex, verify).
    #[error("leaf {leaf}: {source}")]
    Entry {
        /// The entry's leaf.
        leaf: u64,
        /// What is wrong with it.
        source: VerifyError,
    },
    /// Reading the log failed.
    #[error("log: {0}")]
    Store(#[from] StoreError),
    /// The indexes cover more leaves than the log holds: they belong to another log, or the
    /// log lost entries it had acknowledged. The gateway must not start on this.
    #[error("the indexes cover {indexed} leaves but the log holds only {log}")]
    AheadOfLog {
        /// Leaves indexed.
        indexed: u64,
        /// Entries in the log.
        log: u64,
    },
    /// A rebuild was asked of indexes that already hold entries.
    #[error("cannot rebuild into indexes that already hold {size} leaves")]
    NotEmpty {
        /// Leaves already indexed.
        size: u64,
    },
}

type Result<T, E = IndexError> = std::result::Result<T, E>;

// ---------------------------------------------------------------------------------------------
// Key and value encodings.
// ---------------------------------------------------------------------------------------------

/// Appends `bytes` with a 2-byte big-endian length prefix (so prefix scans match exactly).
fn push_lp(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes.get(..usize::from(len)).unwrap_or(bytes));
}

fn device_key(space: u8, device: &DeviceId) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + device.as_bytes().len());
    k.push(space);
    k.extend_from_slice(device.as_bytes());
    k
}

fn chain_prefix(device: &DeviceId) -> Vec<u8> {
    let mut k = vec![space::CHAIN];
    push_lp(&mut k, device.as_bytes());
    k
}

fn chain_key(device: &DeviceId, seq: u64) -> Vec<u8> {
    let mut k = chain_prefix(device);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn hash_key(hash: &Hash32) -> Vec<u8> {
    let mut k = Vec::with_capacity(33);
    k.push(space::HASH);
    k.extend_from_slice(hash.as_bytes());
    k
}

fn uri_prefix(space: u8, uri: &str) -> Vec<u8> {
    let mut k = vec![space];
    push_lp(&mut k, uri.as_bytes());
    k
}

fn product_key(uri: &str, leaf: u64) -> Vec<u8> {
    let mut k = uri_prefix(space::PRODUCT, uri);
    k.extend_from_slice(&leaf.to_be_bytes());
    k
}

fn edge_key(space: u8, from: &str, to: &str, leaf: u64) -> Vec<u8> {
    let mut k = uri_prefix(space, from);
    push_lp(&mut k, to.as_bytes());
    k.extend_from_slice(&leaf.to_be_bytes());
    k
}

fn leaf_key(leaf: u64) -> Vec<u8> {
    let mut k = vec![space::LEAF];
    k.extend_from_slice(&leaf.to_be_bytes());
    k
}

fn corrupt(key: &[u8], what: &'static str) -> IndexError {
    IndexError::Corrupt {
        key: hex_string(key),
        what,
    }
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    let raw: [u8; 8] = bytes.get(at..at + 8)?.try_into().ok()?;
    Some(u64::from_be_bytes(raw))
}

fn hash_at(bytes: &[u8], at: usize) -> Option<Hash32> {
    let raw: [u8; 32] = bytes.get(at..at + 32)?.try_into().ok()?;
    Some(Hash32(raw))
}

const NO_LEAF: u8 = 0;
const HAS_LEAF: u8 = 1;

fn encode_state(s: &DeviceState) -> Vec<u8> {
    let mut v = Vec::with_capacity(PUBLIC_KEY_LEN + 17);
    v.extend_from_slice(s.key.as_sec1_uncompressed());
    v.extend_from_slice(&s.registered_at.to_be_bytes());
    match s.revoked_at {
        Some(leaf) => {
            v.push(HAS_LEAF);
            v.extend_from_slice(&leaf.to_be_bytes());
        }
        None => {
            v.push(NO_LEAF);
            v.extend_from_slice(&0u64.to_be_bytes());
        }
    }
    v
}

fn decode_state(key: &[u8], v: &[u8]) -> Result<DeviceState> {
    let bad = || corrupt(key, "registry value");
    if v.len() != PUBLIC_KEY_LEN + 17 {
        return Err(bad());
    }
    let public = PublicKey::from_sec1_uncompressed(v.get(..PUBLIC_KEY_LEN).ok_or_else(bad)?)
        .map_err(|_| bad())?;
    let registered_at = u64_at(v, PUBLIC_KEY_LEN).ok_or_else(bad)?;
    let revoked_at = match v.get(PUBLIC_KEY_LEN + 8) {
        Some(&NO_LEAF) => None,
        Some(&HAS_LEAF) => Some(u64_at(v, PUBLIC_KEY_LEN + 9).ok_or_else(bad)?),
        _ => return Err(bad()),
    };
    Ok(DeviceState {
        key: public,
        registered_at,
        revoked_at,
    })
}

fn encode_link(l: &Link) -> Vec<u8> {
    let mut v = Vec::with_capacity(72);
    v.extend_from_slice(l.hash.as_bytes());
    v.extend_from_slice(l.prev.as_bytes());
    v.extend_from_slice(&l.leaf.to_be_bytes());
    v
}

fn decode_link(key: &[u8], v: &[u8]) -> Result<Link> {
    let bad = || corrupt(key, "chain value");
    if v.len() != 72 {
        return Err(bad());
    }
    Ok(Link {
        hash: hash_at(v, 0).ok_or_else(bad)?,
        prev: hash_at(v, 32).ok_or_else(bad)?,
        leaf: u64_at(v, 64).ok_or_else(bad)?,
    })
}

fn decode_u64(key: &[u8], v: &[u8]) -> Result<u64> {
    if v.len() != 8 {
        return Err(corrupt(key, "want an 8-byte integer"));
    }
    u64_at(v, 0).ok_or_else(|| corrupt(key, "want an 8-byte integer"))
}

fn encode_gaps(gaps: &[(u64, u64)]) -> Vec<u8> {
    gaps.iter()
        .flat_map(|(from, to)| from.to_be_bytes().into_iter().chain(to.to_be_bytes()))
        .collect()
}

fn decode_gaps(key: &[u8], v: &[u8]) -> Result<Vec<(u64, u64)>> {
    if !v.len().is_multiple_of(16) {
        return Err(corrupt(key, "gap list"));
    }
    v.chunks_exact(16)
        .map(|c| match (u64_at(c, 0), u64_at(c, 8)) {
            (Some(from), Some(to)) if from <= to => Ok((from, to)),
            _ => Err(corrupt(key, "gap list")),
        })
        .collect()
}

fn action_byte(action: Action) -> u8 {
    match action {
        Action::Add => 0,
        Action::Observe => 1,
        Action::Delete => 2,
    }
}

fn action_from(key: &[u8], b: u8) -> Result<Action> {
    match b {
        0 => Ok(Action::Add),
        1 => Ok(Action::Observe),
        2 => Ok(Action::Delete),
        _ => Err(corrupt(key, "containment action")),
    }
}

/// Reads a 2-byte-length-prefixed part at `at`; returns it and the offset after it.
fn read_lp(bytes: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let len = usize::from(u16::from_be_bytes(bytes.get(at..at + 2)?.try_into().ok()?));
    let part = bytes.get(at + 2..at + 2 + len)?;
    Some((part, at + 2 + len))
}

fn parse_uri(key: &[u8], bytes: &[u8]) -> Result<DigitalLink> {
    let text = std::str::from_utf8(bytes).map_err(|_| corrupt(key, "identifier not UTF-8"))?;
    DigitalLink::parse_canonical(text).map_err(|_| corrupt(key, "identifier not canonical"))
}

// ---------------------------------------------------------------------------------------------
// Public result types.
// ---------------------------------------------------------------------------------------------

/// One containment edge seen from one end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainmentEdge {
    /// The other end: the child (for [`Indexes::children`]) or the parent (for
    /// [`Indexes::parents`]).
    pub other: DigitalLink,
    /// ADD, OBSERVE or DELETE.
    pub action: Action,
    /// The AggregationEvent's leaf.
    pub leaf: u64,
    /// Its `eventTime`, Unix milliseconds.
    pub event_time_ms: u64,
}

/// One transformation edge seen from one end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransformEdge {
    /// The other end: an output (for [`Indexes::outputs_of`]) or an input (for
    /// [`Indexes::inputs_of`]).
    pub other: DigitalLink,
    /// The TransformationEvent's leaf.
    pub leaf: u64,
}

/// A lot-membership edge: an item's event declaring its lot (`ilmd` `cbvmda:lotNumber`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LotEdge {
    /// The other end: the item (for [`Indexes::lot_items`]) or the lot
    /// ([`Indexes::item_lots`]).
    pub other: DigitalLink,
    /// The declaring event's leaf.
    pub leaf: u64,
    /// Its `eventTime`, Unix milliseconds.
    pub event_time_ms: u64,
}

/// What a leaf holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeafKind {
    /// A device event.
    Event,
    /// A device registration.
    Registration,
    /// A device revocation.
    Revocation,
}

/// Per-leaf facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeafInfo {
    /// What the entry is.
    pub kind: LeafKind,
    /// The device it is from (events) or about (registry records).
    pub device: DeviceId,
    /// The event's `prov:seq` (events only).
    pub seq: Option<u64>,
    /// The entry's `eventTime`, Unix milliseconds.
    pub event_time_ms: u64,
}

fn encode_leaf_info(info: &LeafInfo) -> Vec<u8> {
    let mut v = Vec::with_capacity(18 + info.device.as_bytes().len());
    v.push(match info.kind {
        LeafKind::Event => 0,
        LeafKind::Registration => 1,
        LeafKind::Revocation => 2,
    });
    v.extend_from_slice(&info.event_time_ms.to_be_bytes());
    v.extend_from_slice(&info.seq.unwrap_or(0).to_be_bytes());
    v.extend_from_slice(info.device.as_bytes());
    v
}

fn decode_leaf_info(key: &[u8], v: &[u8]) -> Result<LeafInfo> {
    let bad = || corrupt(key, "leaf value");
    let kind = match v.first() {
        Some(0) => LeafKind::Event,
        Some(1) => LeafKind::Registration,
        Some(2) => LeafKind::Revocation,
        _ => return Err(bad()),
    };
    let event_time_ms = u64_at(v, 1).ok_or_else(bad)?;
    let seq = u64_at(v, 9).ok_or_else(bad)?;
    let device = DeviceId::from_bytes(v.get(17..).ok_or_else(bad)?).map_err(|_| bad())?;
    Ok(LeafInfo {
        kind,
        device,
        seq: (kind == LeafKind::Event).then_some(seq),
        event_time_ms,
    })
}

// ---------------------------------------------------------------------------------------------
// Reading (shared by the committed indexes and a staged batch).
// ---------------------------------------------------------------------------------------------

trait Read {
    fn read(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;

    fn state_of(&self, device: &DeviceId) -> Result<Option<DeviceState>> {
        let k = device_key(space::REGISTRY, device);
        self.read(&k)?.map(|v| decode_state(&k, &v)).transpose()
    }

    fn leaf_of_hash(&self, hash: &Hash32) -> Result<Option<u64>> {
        let k = hash_key(hash);
        self.read(&k)?.map(|v| decode_u64(&k, &v)).transpose()
    }

    fn link_of(&self, device: &DeviceId, seq: u64) -> Result<Option<Link>> {
        let k = chain_key(device, seq);
        self.read(&k)?.map(|v| decode_link(&k, &v)).transpose()
    }

    fn head_of(&self, device: &DeviceId) -> Result<Option<u64>> {
        let k = device_key(space::HEAD, device);
        self.read(&k)?.map(|v| decode_u64(&k, &v)).transpose()
    }

    fn gaps_of(&self, device: &DeviceId) -> Result<Vec<(u64, u64)>> {
        let k = device_key(space::GAPS, device);
        Ok(self
            .read(&k)?
            .map(|v| decode_gaps(&k, &v))
            .transpose()?
            .unwrap_or_default())
    }

    fn size(&self) -> Result<u64> {
        self.read(KEY_INDEXED_SIZE)?
            .map(|v| decode_u64(KEY_INDEXED_SIZE, &v))
            .transpose()
            .map(Option::unwrap_or_default)
    }
}

// ---------------------------------------------------------------------------------------------
// The indexes.
// ---------------------------------------------------------------------------------------------

/// The sled indexes. Reads are concurrent; writes go through one [`Staged`] batch at a time
/// (the sequencer's), each committed atomically and flushed.
#[derive(Debug)]
pub struct Indexes {
    db: sled::Db,
    tree: sled::Tree,
    writer: Mutex<()>,
    /// Every device's registry state, head and gaps, mirroring the committed REGISTRY, HEAD
    /// and GAPS key spaces exactly (see [`DeviceMem`]).
    devices: RwLock<BTreeMap<DeviceId, DeviceMem>>,
}

/// A device's per-device index state, kept in memory so that the rule checks of the verify
/// step and of [`Staged::apply`] do no sled reads on the common path (an event extending its
/// device's chain).
///
/// Invariant: for every device with a REGISTRY, HEAD or GAPS key in the committed tree, the
/// map holds exactly their values (and the link at the head); a device absent from the map has
/// none of them. Loaded by a prefix scan at open (a few hundred bytes per device), updated by
/// [`Staged::commit`] right after the sled batch is applied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct DeviceMem {
    state: Option<DeviceState>,
    head: Option<(u64, Link)>,
    gaps: Vec<(u64, u64)>,
}

impl Indexes {
    /// Opens (or creates) the indexes in the sled database at `path`, with sled's page cache
    /// bounded to [`CACHE_BYTES`] and its high-throughput mode (less segment rewriting: the
    /// indexes' disk use is reported, not bounded, and they can be rebuilt from the log).
    pub fn open(path: impl AsRef<Path>) -> Result<Indexes> {
        let db = sled::Config::new()
            .path(path.as_ref())
            .cache_capacity(CACHE_BYTES)
            .mode(sled::Mode::HighThroughput)
            .open()?;
        Indexes::in_db(&db)
    }

    /// Indexes in a temporary sled database, removed on drop (tests, dry runs).
    pub fn temporary() -> Result<Indexes> {
        let db = sled::Config::new().temporary(true).open()?;
        Indexes::in_db(&db)
    }

    /// The indexes in the [`TREE_NAME`] tree of an open database (which may hold other trees).
    pub fn in_db(db: &sled::Db) -> Result<Indexes> {
        let tree = db.open_tree(TREE_NAME)?;
        match tree.get(KEY_FORMAT)? {
            Some(v) if v.as_ref() == FORMAT.as_bytes() => {}
            Some(v) => {
                return Err(IndexError::Format {
                    found: String::from_utf8_lossy(&v).into_owned(),
                    want: FORMAT,
                });
            }
            None => {
                tree.insert(KEY_FORMAT, FORMAT.as_bytes())?;
                tree.flush()?;
            }
        }
        let devices = RwLock::new(load_devices(&tree)?);
        Ok(Indexes {
            db: db.clone(),
            tree,
            writer: Mutex::new(()),
            devices,
        })
    }

    /// The cached per-device state (`None`: the device has no registry, head or gap key).
    fn device_mem(&self, device: &DeviceId) -> Option<DeviceMem> {
        self.devices
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(device)
            .cloned()
    }

    /// The number of log entries indexed: the next leaf to apply.
    pub fn indexed_size(&self) -> Result<u64> {
        self.size()
    }

    /// Starts a batch at the next leaf ([`Indexes::indexed_size`]); waits for any other batch
    /// to finish.
    pub fn begin(&self) -> Result<Staged<'_>> {
        let guard = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let next = self.size()?;
        Ok(Staged {
            indexes: self,
            _guard: guard,
            writes: BTreeMap::new(),
            mem: BTreeMap::new(),
            next,
        })
    }

    /// Applies one sequenced entry at `leaf` and commits (one batch, flushed).
    pub fn apply(&self, leaf: u64, entry: &Entry) -> Result<()> {
        self.apply_batch(leaf, [entry.as_ref()])
    }

    /// Applies the entries of one log batch, the first at `first_leaf`, as one atomic sled
    /// batch, flushed before returning.
    pub fn apply_batch<'e, I: IntoIterator<Item = EntryRef<'e>>>(
        &self,
        first_leaf: u64,
        entries: I,
    ) -> Result<()> {
        self.apply_batch_unflushed(first_leaf, entries)?;
        self.flush()
    }

    /// [`Indexes::apply_batch`] without the flush: the batch is applied atomically and visible
    /// at once, and sled makes it durable within its `flush_every_ms` (500 ms) or at the next
    /// [`Indexes::flush`]. For the gateway's live indexing, where a crash that loses it is
    /// repaired from the log by [`Indexes::catch_up`] at the next start (sled recovers a
    /// prefix of the applied batches, so the indexes still never lead the log), and an fsync
    /// per batch bought nothing.
    pub fn apply_batch_unflushed<'e, I: IntoIterator<Item = EntryRef<'e>>>(
        &self,
        first_leaf: u64,
        entries: I,
    ) -> Result<()> {
        let mut staged = self.begin()?;
        for (leaf, entry) in (first_leaf..).zip(entries) {
            staged.apply(leaf, entry)?;
        }
        staged.apply_unflushed()
    }

    /// Makes every applied batch durable (`fsync`).
    pub fn flush(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }

    /// A reindexer continuing from [`Indexes::indexed_size`] (parse-only checks; see
    /// [`Reindexer::with_signatures`]).
    pub fn reindexer(&self) -> Result<Reindexer<'_>> {
        Ok(Reindexer {
            staged: Some(self.begin()?),
            indexes: self,
            verifier: None,
            pending: 0,
        })
    }

    /// Rebuilds empty indexes from the log's entries `(leaf, bytes)` in order (the `reindex`
    /// command, run on a fresh copy): parses each strictly and re-applies the rules. Returns
    /// the number of leaves indexed.
    pub fn rebuild_from<I, M>(&self, entries: I) -> Result<u64>
    where
        I: IntoIterator<Item = (u64, M)>,
        M: AsRef<[u8]>,
    {
        let size = self.indexed_size()?;
        if size != 0 {
            return Err(IndexError::NotEmpty { size });
        }
        let mut r = self.reindexer()?;
        for (leaf, bytes) in entries {
            r.push(leaf, bytes.as_ref())?;
        }
        r.finish()
    }

    /// Brings the indexes up to the log (on start, after a crash between the log append and
    /// the index commit): re-applies the entries from [`Indexes::indexed_size`] to the log's
    /// size. Also the `reindex` command's loop, on fresh indexes. Returns the leaves indexed.
    pub fn catch_up(&self, store: &LogStore) -> Result<u64> {
        let mut r = self.reindexer()?;
        let from = r.next_leaf()?;
        let to = store.size();
        if from > to {
            return Err(IndexError::AheadOfLog {
                indexed: from,
                log: to,
            });
        }
        let mut failed = None;
        store.for_each_entry(from..to, |leaf, bytes| match r.push(leaf, bytes) {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => {
                failed = Some(e);
                ControlFlow::Break(())
            }
        })?;
        match failed {
            Some(e) => Err(e),
            None => r.finish(),
        }
    }

    /// BLAKE3 over every key and value, in key order: two index copies are identical iff their
    /// digests are.
    pub fn digest(&self) -> Result<Hash32> {
        let mut h = blake3::Hasher::new();
        for kv in self.tree.iter() {
            let (k, v) = kv?;
            for part in [k.as_ref(), v.as_ref()] {
                let len = u64::try_from(part.len()).unwrap_or(u64::MAX);
                h.update(&len.to_le_bytes());
                h.update(part);
            }
        }
        Ok(Hash32(*h.finalize().as_bytes()))
    }

    /// Every key and value, in key order (for comparing copies in detail).
    pub fn dump(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.tree
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                Ok((k.to_vec(), v.to_vec()))
            })
            .collect()
    }

    /// Every registered device (revoked ones included), by device id.
    pub fn devices(&self) -> Result<Vec<(DeviceId, DeviceState)>> {
        self.tree
            .scan_prefix([space::REGISTRY])
            .map(|kv| {
                let (k, v) = kv?;
                let device = DeviceId::from_bytes(k.get(1..).unwrap_or_default())
                    .map_err(|_| corrupt(&k, "device id"))?;
                Ok((device, decode_state(&k, &v)?))
            })
            .collect()
    }

    /// The device's recorded gaps `(from, to)` (inclusive), lowest first.
    pub fn gaps(&self, device: &DeviceId) -> Result<Vec<(u64, u64)>> {
        self.gaps_of(device)
    }

    /// The highest seq such that every seq up to it is logged (SPEC §3 receipts); 0 if none.
    pub fn contiguous_seq(&self, device: &DeviceId) -> Result<u64> {
        let Some(head) = self.head_of(device)? else {
            return Ok(0);
        };
        Ok(match self.gaps_of(device)?.first() {
            Some((from, _)) => from.saturating_sub(1),
            None => head,
        })
    }

    /// The device's logged chain, by seq.
    pub fn chain(&self, device: &DeviceId) -> Result<Vec<(u64, Link)>> {
        let prefix = chain_prefix(device);
        self.tree
            .scan_prefix(&prefix)
            .map(|kv| {
                let (k, v) = kv?;
                let seq = u64_at(&k, prefix.len()).ok_or_else(|| corrupt(&k, "chain key"))?;
                Ok((seq, decode_link(&k, &v)?))
            })
            .collect()
    }

    /// The leaves of every event naming `id` (as an EPC, parent, child, input, output, or the
    /// lot of a quantity), in log order.
    pub fn product_leaves(&self, id: &DigitalLink) -> Result<Vec<u64>> {
        let prefix = uri_prefix(space::PRODUCT, &id.canonical());
        self.tree
            .scan_prefix(&prefix)
            .map(|kv| {
                let (k, _) = kv?;
                u64_at(&k, prefix.len()).ok_or_else(|| corrupt(&k, "product key"))
            })
            .collect()
    }

    /// What was put into (ADD), seen in (OBSERVE) or taken out of (DELETE) `parent`.
    pub fn children(&self, parent: &DigitalLink) -> Result<Vec<ContainmentEdge>> {
        self.containment(space::CONTAINS, parent)
    }

    /// The containers `child` was put into or taken out of.
    pub fn parents(&self, child: &DigitalLink) -> Result<Vec<ContainmentEdge>> {
        self.containment(space::CONTAINED_IN, child)
    }

    /// What `input` was transformed into.
    pub fn outputs_of(&self, input: &DigitalLink) -> Result<Vec<TransformEdge>> {
        self.transformation(space::OUTPUTS, input)
    }

    /// What `output` was made from.
    pub fn inputs_of(&self, output: &DigitalLink) -> Result<Vec<TransformEdge>> {
        self.transformation(space::INPUTS, output)
    }

    /// The items whose events declare `lot` as their lot (`ilmd` `cbvmda:lotNumber`).
    pub fn lot_items(&self, lot: &DigitalLink) -> Result<Vec<LotEdge>> {
        self.lot_edges(space::LOT_ITEMS, lot)
    }

    /// The lots `item`'s events declare.
    pub fn item_lots(&self, item: &DigitalLink) -> Result<Vec<LotEdge>> {
        self.lot_edges(space::ITEM_LOTS, item)
    }

    fn lot_edges(&self, space: u8, from: &DigitalLink) -> Result<Vec<LotEdge>> {
        self.edges(space, from)?
            .into_iter()
            .map(|(other, leaf, v)| {
                let event_time_ms =
                    u64_at(&v, 0).ok_or_else(|| corrupt(&leaf_key(leaf), "lot edge value"))?;
                Ok(LotEdge {
                    other,
                    leaf,
                    event_time_ms,
                })
            })
            .collect()
    }

    /// What the entry at `leaf` is (kind, device, seq, event time).
    pub fn leaf_info(&self, leaf: u64) -> Result<Option<LeafInfo>> {
        let k = leaf_key(leaf);
        self.read(&k)?.map(|v| decode_leaf_info(&k, &v)).transpose()
    }

    /// Scans `[space] lp(from) lp(to) leaf` keys under `from`: `(to, leaf, value)`.
    fn edges(&self, space: u8, from: &DigitalLink) -> Result<Vec<(DigitalLink, u64, Vec<u8>)>> {
        let prefix = uri_prefix(space, &from.canonical());
        self.tree
            .scan_prefix(&prefix)
            .map(|kv| {
                let (k, v) = kv?;
                let (to, end) = read_lp(&k, prefix.len()).ok_or_else(|| corrupt(&k, "edge key"))?;
                let leaf = u64_at(&k, end).ok_or_else(|| corrupt(&k, "edge key"))?;
                Ok((parse_uri(&k, to)?, leaf, v.to_vec()))
            })
            .collect()
    }

    fn containment(&self, space: u8, from: &DigitalLink) -> Result<Vec<ContainmentEdge>> {
        self.edges(space, from)?
            .into_iter()
            .map(|(other, leaf, v)| {
                let key = leaf_key(leaf);
                let (Some(&action), Some(event_time_ms)) = (v.first(), u64_at(&v, 1)) else {
                    return Err(corrupt(&key, "containment value"));
                };
                Ok(ContainmentEdge {
                    other,
                    action: action_from(&key, action)?,
                    leaf,
                    event_time_ms,
                })
            })
            .collect()
    }

    fn transformation(&self, space: u8, from: &DigitalLink) -> Result<Vec<TransformEdge>> {
        Ok(self
            .edges(space, from)?
            .into_iter()
            .map(|(other, leaf, _)| TransformEdge { other, leaf })
            .collect())
    }
}

/// Reads the REGISTRY, HEAD (with the link at each head) and GAPS key spaces into memory.
fn load_devices(tree: &sled::Tree) -> Result<BTreeMap<DeviceId, DeviceMem>> {
    let mut out: BTreeMap<DeviceId, DeviceMem> = BTreeMap::new();
    let device_of = |k: &[u8]| {
        DeviceId::from_bytes(k.get(1..).unwrap_or_default()).map_err(|_| corrupt(k, "device id"))
    };
    for kv in tree.scan_prefix([space::REGISTRY]) {
        let (k, v) = kv?;
        out.entry(device_of(&k)?).or_default().state = Some(decode_state(&k, &v)?);
    }
    for kv in tree.scan_prefix([space::HEAD]) {
        let (k, v) = kv?;
        let device = device_of(&k)?;
        let seq = decode_u64(&k, &v)?;
        let link_key = chain_key(&device, seq);
        let link = match tree.get(&link_key)? {
            Some(l) => decode_link(&link_key, &l)?,
            None => return Err(corrupt(&k, "no chain entry at the head seq")),
        };
        out.entry(device).or_default().head = Some((seq, link));
    }
    for kv in tree.scan_prefix([space::GAPS]) {
        let (k, v) = kv?;
        out.entry(device_of(&k)?).or_default().gaps = decode_gaps(&k, &v)?;
    }
    Ok(out)
}

impl Read for Indexes {
    fn read(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.tree.get(key)?.map(|v| v.to_vec()))
    }

    fn state_of(&self, device: &DeviceId) -> Result<Option<DeviceState>> {
        Ok(self.device_mem(device).and_then(|m| m.state))
    }

    fn head_of(&self, device: &DeviceId) -> Result<Option<u64>> {
        Ok(self
            .device_mem(device)
            .and_then(|m| m.head)
            .map(|(seq, _)| seq))
    }

    fn gaps_of(&self, device: &DeviceId) -> Result<Vec<(u64, u64)>> {
        Ok(self.device_mem(device).map(|m| m.gaps).unwrap_or_default())
    }

    /// From memory when `seq` is at or above the head (the common case: nothing logged above
    /// the head, the head's link cached); from sled below it.
    fn link_of(&self, device: &DeviceId, seq: u64) -> Result<Option<Link>> {
        match self.device_mem(device).and_then(|m| m.head) {
            None => Ok(None),
            Some((head, _)) if seq > head => Ok(None),
            Some((head, link)) if seq == head => Ok(Some(link)),
            Some(_) => {
                let k = chain_key(device, seq);
                self.read(&k)?.map(|v| decode_link(&k, &v)).transpose()
            }
        }
    }
}

impl LogView for Indexes {
    type Error = IndexError;
    fn device_state(&self, device: &DeviceId) -> Result<Option<DeviceState>> {
        self.state_of(device)
    }
    fn leaf_of(&self, hash: &Hash32) -> Result<Option<u64>> {
        self.leaf_of_hash(hash)
    }
    fn link(&self, device: &DeviceId, seq: u64) -> Result<Option<Link>> {
        self.link_of(device, seq)
    }
    fn head(&self, device: &DeviceId) -> Result<Option<u64>> {
        self.head_of(device)
    }
}

// ---------------------------------------------------------------------------------------------
// A batch being staged.
// ---------------------------------------------------------------------------------------------

/// A batch of entries being applied: reads see the committed indexes plus the batch's own
/// writes; nothing is visible to others until [`Staged::commit`]. Dropping it discards the
/// batch.
pub struct Staged<'a> {
    indexes: &'a Indexes,
    _guard: MutexGuard<'a, ()>,
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// The per-device state of every device this batch touched, as it will be once committed
    /// (merged into [`Indexes`]' cache by [`Staged::commit`]).
    mem: BTreeMap<DeviceId, DeviceMem>,
    next: u64,
}

impl std::fmt::Debug for Staged<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Staged")
            .field("writes", &self.writes.len())
            .field("next", &self.next)
            .finish()
    }
}

impl Read for Staged<'_> {
    fn read(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.writes.get(key) {
            Some(v) => Ok(v.clone()),
            None => self.indexes.read(key),
        }
    }

    fn state_of(&self, device: &DeviceId) -> Result<Option<DeviceState>> {
        match self.mem.get(device) {
            Some(m) => Ok(m.state),
            None => self.indexes.state_of(device),
        }
    }

    fn head_of(&self, device: &DeviceId) -> Result<Option<u64>> {
        match self.mem.get(device) {
            Some(m) => Ok(m.head.map(|(seq, _)| seq)),
            None => self.indexes.head_of(device),
        }
    }

    fn gaps_of(&self, device: &DeviceId) -> Result<Vec<(u64, u64)>> {
        match self.mem.get(device) {
            Some(m) => Ok(m.gaps.clone()),
            None => self.indexes.gaps_of(device),
        }
    }

    /// This batch's links first; then the committed ones (whose head fast path stays right:
    /// every link this batch adds is in `writes`).
    fn link_of(&self, device: &DeviceId, seq: u64) -> Result<Option<Link>> {
        let k = chain_key(device, seq);
        match self.writes.get(&k) {
            Some(Some(v)) => decode_link(&k, v).map(Some),
            Some(None) => Ok(None),
            None => self.indexes.link_of(device, seq),
        }
    }
}

impl LogView for Staged<'_> {
    type Error = IndexError;
    fn device_state(&self, device: &DeviceId) -> Result<Option<DeviceState>> {
        self.state_of(device)
    }
    fn leaf_of(&self, hash: &Hash32) -> Result<Option<u64>> {
        self.leaf_of_hash(hash)
    }
    fn link(&self, device: &DeviceId, seq: u64) -> Result<Option<Link>> {
        self.link_of(device, seq)
    }
    fn head(&self, device: &DeviceId) -> Result<Option<u64>> {
        self.head_of(device)
    }
}

impl Staged<'_> {
    /// The leaf the next applied entry must have.
    pub fn next_leaf(&self) -> u64 {
        self.next
    }

    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.writes.insert(key, Some(value));
    }

    fn delete(&mut self, key: Vec<u8>) {
        self.writes.insert(key, None);
    }

    /// The device's cached state for this batch to change (copied from the committed cache on
    /// first touch).
    fn mem_mut(&mut self, device: &DeviceId) -> &mut DeviceMem {
        let indexes = self.indexes;
        self.mem
            .entry(*device)
            .or_insert_with(|| indexes.device_mem(device).unwrap_or_default())
    }

    /// Applies the entry at `leaf` (which must be [`Staged::next_leaf`]) after re-checking it
    /// against the rules of SPEC §4 given everything before it.
    pub fn apply(&mut self, leaf: u64, entry: EntryRef<'_>) -> Result<()> {
        if leaf != self.next {
            return Err(IndexError::OutOfOrder {
                expected: self.next,
                got: leaf,
            });
        }
        let inconsistent = |reason: String| IndexError::Inconsistent { leaf, reason };
        let hash = entry.hash();
        let info = match entry {
            EntryRef::Event { event, .. } => {
                // No BLAKE3 lookup for an event: a logged copy of the same bytes would be the
                // same device's same seq, which `chain_verdict` finds (and refuses) in the chain.
                self.apply_event(leaf, hash, event)?;
                LeafInfo {
                    kind: LeafKind::Event,
                    device: event.device,
                    seq: Some(event.seq),
                    event_time_ms: event.event_time.unix_millis(),
                }
            }
            EntryRef::Registry { record, .. } => {
                if let Some(at) = self.leaf_of_hash(&hash)? {
                    return Err(inconsistent(format!(
                        "the same message is already logged at leaf {at}"
                    )));
                }
                if let Err((code, detail)) = verify::registry_verdict(self, record)? {
                    return Err(inconsistent(format!("{code}: {detail}")));
                }
                let device = *record.device();
                let (kind, state) = match record {
                    RegistryRecord::Registration { key, .. } => (
                        LeafKind::Registration,
                        DeviceState {
                            key: *key,
                            registered_at: leaf,
                            revoked_at: None,
                        },
                    ),
                    RegistryRecord::Revocation { .. } => {
                        let mut state = self.state_of(&device)?.ok_or_else(|| {
                            inconsistent(format!("revocation of unregistered {device}"))
                        })?;
                        state.revoked_at = Some(leaf);
                        (LeafKind::Revocation, state)
                    }
                };
                self.put(device_key(space::REGISTRY, &device), encode_state(&state));
                self.mem_mut(&device).state = Some(state);
                LeafInfo {
                    kind,
                    device,
                    seq: None,
                    event_time_ms: record.event_time().unix_millis(),
                }
            }
        };
        if info.kind != LeafKind::Event {
            self.put(hash_key(&hash), leaf.to_be_bytes().to_vec());
        }
        self.put(leaf_key(leaf), encode_leaf_info(&info));
        self.next += 1;
        Ok(())
    }

    fn apply_event(&mut self, leaf: u64, hash: Hash32, event: &Event) -> Result<()> {
        let inconsistent = |reason: String| IndexError::Inconsistent { leaf, reason };
        let device = event.device;
        let state = self.state_of(&device)?;
        if let Err((code, detail)) = verify::device_verdict(&device, state.as_ref()) {
            return Err(inconsistent(format!("{code}: {detail}")));
        }
        match verify::chain_verdict(self, &device, event.seq, event.prev, hash)? {
            ChainVerdict::Extends { gap, fills_gap } => {
                if let Some((from, to)) = gap {
                    let mut gaps = self.gaps_of(&device)?;
                    gaps.push((from, to));
                    gaps.sort_unstable();
                    self.put(device_key(space::GAPS, &device), encode_gaps(&gaps));
                    self.mem_mut(&device).gaps = gaps;
                }
                if fills_gap {
                    self.fill_gap(leaf, &device, event.seq)?;
                }
            }
            other => return Err(inconsistent(describe(&device, event.seq, &other))),
        }
        let link = Link {
            hash,
            prev: event.prev,
            leaf,
        };
        self.put(chain_key(&device, event.seq), encode_link(&link));
        if self.head_of(&device)?.is_none_or(|h| event.seq > h) {
            self.put(
                device_key(space::HEAD, &device),
                event.seq.to_be_bytes().to_vec(),
            );
            self.mem_mut(&device).head = Some((event.seq, link));
        }
        for id in event.identifiers() {
            self.put(product_key(&id.canonical(), leaf), Vec::new());
        }
        let time = event.event_time.unix_millis();
        for edge in event.containment_edges() {
            let (parent, child) = (edge.parent.canonical(), edge.child.canonical());
            let mut value = vec![action_byte(edge.action)];
            value.extend_from_slice(&time.to_be_bytes());
            self.put(
                edge_key(space::CONTAINS, &parent, &child, leaf),
                value.clone(),
            );
            self.put(edge_key(space::CONTAINED_IN, &child, &parent, leaf), value);
        }
        for (input, output) in event.transformation_edges() {
            let (input, output) = (input.canonical(), output.canonical());
            self.put(edge_key(space::OUTPUTS, &input, &output, leaf), Vec::new());
            self.put(edge_key(space::INPUTS, &output, &input, leaf), Vec::new());
        }
        for (item, lot) in event.declared_lots() {
            let (item, lot) = (item.canonical(), lot.canonical());
            let value = time.to_be_bytes().to_vec();
            self.put(edge_key(space::LOT_ITEMS, &lot, &item, leaf), value.clone());
            self.put(edge_key(space::ITEM_LOTS, &item, &lot, leaf), value);
        }
        Ok(())
    }

    /// Removes `seq` from the device's recorded gaps (it must be in one).
    fn fill_gap(&mut self, leaf: u64, device: &DeviceId, seq: u64) -> Result<()> {
        let mut gaps = self.gaps_of(device)?;
        let Some(i) = gaps
            .iter()
            .position(|(from, to)| (*from..=*to).contains(&seq))
        else {
            return Err(IndexError::Inconsistent {
                leaf,
                reason: format!(
                    "{device} seq {seq} is below the head but neither logged nor in a recorded gap"
                ),
            });
        };
        let (from, to) = gaps.remove(i);
        if from < seq {
            gaps.push((from, seq - 1));
        }
        if seq < to {
            gaps.push((seq + 1, to));
        }
        gaps.sort_unstable();
        let key = device_key(space::GAPS, device);
        if gaps.is_empty() {
            self.delete(key);
        } else {
            self.put(key, encode_gaps(&gaps));
        }
        self.mem_mut(device).gaps = gaps;
        Ok(())
    }

    /// Applies the staged writes and the new `indexed_size` as one atomic sled batch, then
    /// flushes (fsync) before returning.
    pub fn commit(self) -> Result<()> {
        let indexes = self.indexes;
        self.apply_unflushed()?;
        indexes.flush()
    }

    /// Applies the staged writes and the new `indexed_size` as one atomic sled batch, without
    /// waiting for it to be durable.
    fn apply_unflushed(self) -> Result<()> {
        let mut batch = sled::Batch::default();
        for (k, v) in self.writes {
            match v {
                Some(v) => batch.insert(k, v),
                None => batch.remove(k),
            }
        }
        batch.insert(KEY_INDEXED_SIZE, &self.next.to_be_bytes());
        self.indexes.tree.apply_batch(batch)?;
        // The cache follows the committed tree (this batch's writer guard is still held).
        self.indexes
            .devices
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(self.mem);
        Ok(())
    }
}

fn describe(device: &DeviceId, seq: u64, verdict: &ChainVerdict) -> String {
    match verdict {
        ChainVerdict::Extends { .. } => format!("{device} seq {seq} extends the chain"),
        ChainVerdict::Duplicate { leaf } => {
            format!("{device} seq {seq}: the same message is logged at leaf {leaf}")
        }
        ChainVerdict::Equivocation { leaf, logged } => {
            format!("equivocation: {device} seq {seq} is already logged at leaf {leaf} as {logged}")
        }
        ChainVerdict::BrokenChain { want_prev } => {
            format!("broken-chain: {device} seq {seq} has a prov:prev other than {want_prev}")
        }
        ChainVerdict::Replay { reason } => format!("replay: {device} seq {seq}: {reason}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Reindex.
// ---------------------------------------------------------------------------------------------

/// A log entry parsed back from its bytes, strictly but without checking its signature (it was
/// verified when it was sequenced; [`Reindexer::with_signatures`] checks it again).
#[derive(Debug, Clone, PartialEq)]
pub enum LoggedEntry {
    /// A device event.
    Event {
        /// BLAKE3 of the message.
        hash: Hash32,
        /// The event (boxed: it is ~700 bytes, a record ~300).
        event: Box<Event>,
    },
    /// A registry record.
    Registry {
        /// BLAKE3 of the message.
        hash: Hash32,
        /// The operator whose kid signed it.
        operator: OperatorName,
        /// The record.
        record: Box<RegistryRecord>,
    },
}

impl LoggedEntry {
    /// Parses a logged message: the exact envelope of SPEC §2, then a device kid's payload as a
    /// valid event whose `prov:device` is the kid, or an operator kid's as a valid record.
    pub fn parse(message: &[u8]) -> Result<LoggedEntry, VerifyError> {
        let cose = CoseSign1::parse(message)?;
        let hash = Hash32::blake3(message);
        match *cose.kid() {
            Kid::Device(signer) => {
                let event = Event::decode_payload(cose.payload())?;
                if event.device != signer {
                    return Err(VerifyError::KidMismatch {
                        kid: Box::new(signer),
                        device: Box::new(event.device),
                    });
                }
                Ok(LoggedEntry::Event {
                    hash,
                    event: Box::new(event),
                })
            }
            Kid::Operator(operator) => Ok(LoggedEntry::Registry {
                hash,
                operator,
                record: Box::new(RegistryRecord::decode_payload(cose.payload())?),
            }),
        }
    }

    /// The parts the indexes use.
    pub fn as_ref(&self) -> EntryRef<'_> {
        match self {
            LoggedEntry::Event { hash, event } => EntryRef::Event { hash: *hash, event },
            LoggedEntry::Registry { hash, record, .. } => EntryRef::Registry {
                hash: *hash,
                record,
            },
        }
    }
}

/// Re-applies logged entries in order (a rebuild, or catching up after a crash), committing
/// every [`REINDEX_BATCH`] entries.
#[derive(Debug)]
pub struct Reindexer<'a, B = PreferredBackend> {
    staged: Option<Staged<'a>>,
    indexes: &'a Indexes,
    verifier: Option<&'a Verifier<B>>,
    pending: usize,
}

impl<'a> Reindexer<'a> {
    /// Also re-verify every signature: events under the key registered at that point of the
    /// log, registry records under `verifier`'s trusted operators.
    pub fn with_signatures<B: VerifyBackend + Sync>(
        mut self,
        verifier: &'a Verifier<B>,
    ) -> Reindexer<'a, B> {
        let staged = self.staged.take();
        Reindexer {
            staged,
            indexes: self.indexes,
            verifier: Some(verifier),
            pending: self.pending,
        }
    }
}

impl<'a, B: VerifyBackend + Sync> Reindexer<'a, B> {
    fn staged(&mut self) -> Result<&mut Staged<'a>> {
        if self.staged.is_none() {
            self.staged = Some(self.indexes.begin()?);
        }
        match self.staged.as_mut() {
            Some(s) => Ok(s),
            None => Err(IndexError::Inconsistent {
                leaf: 0,
                reason: String::from("no staged batch"),
            }),
        }
    }

    /// The leaf the next pushed entry must have.
    pub fn next_leaf(&mut self) -> Result<u64> {
        Ok(self.staged()?.next_leaf())
    }

    /// Parses (and, if asked, verifies) the entry at `leaf` and applies it.
    pub fn push(&mut self, leaf: u64, message: &[u8]) -> Result<()> {
        let entry_error = |source| IndexError::Entry { leaf, source };
        let logged = LoggedEntry::parse(message).map_err(entry_error)?;
        let verifier = self.verifier;
        let staged = self.staged()?;
        if let Some(v) = verifier {
            match &logged {
                LoggedEntry::Event { event, .. } => {
                    // An unregistered device is refused by `apply` below.
                    if let Some(state) = staged.state_of(&event.device)? {
                        checked::verify_event(message, &state.key, v.backend())
                            .map_err(entry_error)?;
                    }
                }
                LoggedEntry::Registry { .. } => {
                    checked::verify_registry_record(message, v.operators(), v.backend())
                        .map_err(entry_error)?;
                }
            }
        }
        staged.apply(leaf, logged.as_ref())?;
        self.pending += 1;
        if self.pending >= REINDEX_BATCH {
            self.pending = 0;
            if let Some(s) = self.staged.take() {
                s.commit()?;
            }
        }
        Ok(())
    }

    /// Commits what remains; returns the number of leaves indexed.
    pub fn finish(mut self) -> Result<u64> {
        if let Some(s) = self.staged.take() {
            s.commit()?;
        }
        self.indexes.indexed_size()
    }
}
