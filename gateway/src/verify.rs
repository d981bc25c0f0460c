//! The verify step: decides, for each incoming message, whether it enters the log.
//!
//! Why a pure step: like rumqttc's `state.rs`, this module only *decides*; it never touches the
//! network, the disk or a clock. The caller (the gateway's pipeline) does the I/O: it appends
//! accepted entries to the log, writes rejections to the [quarantine](crate::quarantine),
//! publishes reject lines and receipts, and only then acknowledges the message to the broker. So
//! every rule of SPEC §2–§4 lives here, testable against an in-memory state ([`MemoryView`]) and
//! run unchanged against the sled [indexes](crate::index) in the gateway.
//!
//! The state the rules consult is behind [`LogView`]: the device registry (built from registry
//! records in the log), each device's chain (`(device, seq) → (hash, prev, leaf)` and its highest
//! seq), and `BLAKE3(message) → leaf` for idempotency.
//!
//! # Order of checks (cheapest first; the signature is the only expensive step)
//!
//! Device events ([`Verifier::verify_event`]):
//! 1. size ≤ 16 KiB (`oversize`);
//! 2. the topic is `prov/v1/{site}/{device_id}/events` (and the configured site, if any)
//!    (`topic-mismatch`);
//! 3. the exact COSE_Sign1 envelope of SPEC §2 (`bad-cose`), with low S (`high-s`);
//! 4. the kid is a device id equal to the topic's device id (`topic-mismatch`);
//! 5. the device is registered (`unknown-device`) and not revoked (`revoked-device`) — unless
//!    `BLAKE3(message)` is already logged: a copy logged before a revocation stays a
//!    [`Decision::Duplicate`];
//! 6. the payload is deterministic CBOR of a valid event (`bad-cbor`), its `prov:device` equals
//!    the kid (`kid-mismatch`), and the ES256 signature verifies under the registered key
//!    (`bad-signature`);
//! 7. the chain ([`chain_verdict`]): the same bytes logged at `(device, seq)` are a
//!    [`Decision::Duplicate`] with their leaf (idempotent); otherwise `equivocation`,
//!    `broken-chain`, `replay`, or accepted (possibly opening a gap, or filling one).
//!
//! Why the duplicate check is a chain lookup and not a `BLAKE3 → leaf` lookup before the
//! signature: identical bytes mean the same device and seq, so the chain finds every logged
//! copy, and for an event above its device's head (nearly every event) the answer needs no
//! index read at all ([`crate::index::Indexes`] keeps each device's head in memory). A BLAKE3
//! lookup was a sled read per event (~13 µs); a resent duplicate now costs a signature check
//! instead (~63 µs), which only redeliveries pay.
//!
//! Chain checks come after the signature so that only authentic messages can affect chain
//! decisions, and an `equivocation` rejection is proof against the device (both messages carry
//! its valid signature).
//!
//! Registry records ([`Verifier::verify_registry`]) enter the log through the same step. The
//! service accepts them from the operator's command-line tool over HTTP (wired by the service
//! modules), never over MQTT: 1. size, 2. envelope, 3. an `operator:{name}` kid (`bad-registry`),
//! 4. duplicate, 5. a trusted operator (`unknown-operator`), a valid record (`bad-cbor` /
//! `bad-registry`) and its signature (`bad-signature`), 6. the registry rules of
//! [`registry_verdict`].
//!
//! # Batches
//!
//! [`Verifier::verify_batch`] decides a batch of messages as if they were logged one after the
//! other: an [`Overlay`] on the view records each accepted message with its provisional leaf
//! (`next_leaf`, `next_leaf + 1`, …), so seq 1 and 2 of one device, a duplicate, or an
//! equivocating twin inside one batch are decided exactly as across batches. The caller must then
//! sequence the accepted entries of the batch, in order, in one append starting at `next_leaf`
//! (the sequencer checks that the log's first index equals it). The signature checks, which need
//! no chain state, can run on several threads ([`Verifier::with_workers`]).

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::fmt;
use std::str::FromStr;

use prov_schemas::Hash32;
use prov_schemas::checked::{self, CheckedEvent, CheckedRegistryRecord, VerifyError};
use prov_schemas::cose::{CoseError, CoseSign1, MAX_MESSAGE_LEN, PreferredBackend, VerifyBackend};
use prov_schemas::event::Event;
use prov_schemas::keys::{DeviceId, IdError, Kid, OperatorName, PublicKey};
use prov_schemas::registry::{RegistryError, RegistryRecord};

// ---------------------------------------------------------------------------------------------
// Reject codes and rejections.
// ---------------------------------------------------------------------------------------------

/// Why a message was rejected: the short kebab-case reason code of a reject line (SPEC §3,
/// `{seq or -} {reason code} {BLAKE3 hex}`) and of a quarantine record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RejectCode {
    /// `oversize`: the message is longer than 16 KiB (SPEC §2).
    Oversize,
    /// `bad-cbor`: the payload is not deterministic CBOR of a valid event or registry record.
    BadCbor,
    /// `bad-cose`: the envelope is not exactly the COSE_Sign1 layout of SPEC §2 (tag, structure,
    /// shortest lengths, protected header `{1: -7, 4: kid}`, empty unprotected map, 64-byte
    /// in-range signature, no trailing bytes).
    BadCose,
    /// `high-s`: the signature's `s` is above `n/2` (a malleated signature, SPEC §2).
    HighS,
    /// `unknown-device`: no registration record for the device is in the log (for a
    /// revocation: the device to revoke was never registered).
    UnknownDevice,
    /// `revoked-device`: the device's revocation record is in the log (for a registration:
    /// the device id was revoked and is never registered again).
    RevokedDevice,
    /// `bad-signature`: the ES256 signature does not verify under the registered key (or,
    /// for a registry record, the operator's key).
    BadSignature,
    /// `kid-mismatch`: the payload's `prov:device` differs from the COSE kid.
    KidMismatch,
    /// `topic-mismatch`: the topic is not `prov/v1/{site}/{device_id}/events` (or names
    /// another site than the gateway's), or its device id differs from the kid (an operator kid
    /// on an events topic included).
    TopicMismatch,
    /// `replay`: an authentic message for a seq below the device's highest, whose slot is
    /// empty (a recorded gap) but which does not fit the logged chain around it: its BLAKE3
    /// differs from the logged successor's `prov:prev`, or its `prov:prev` differs from the
    /// BLAKE3 of the logged predecessor. (A stale resend of a *logged* message is a duplicate,
    /// not a replay.)
    Replay,
    /// `broken-chain`: an authentic message for the next seq (highest + 1) whose `prov:prev` is
    /// not the BLAKE3 of the device's message at the highest seq.
    BrokenChain,
    /// `equivocation`: a different message for a `(device, seq)` already logged (or accepted
    /// earlier in the same batch); the logged one stays, this one is kept in the quarantine as
    /// evidence, and the device is flagged.
    Equivocation,
    /// `unknown-operator`: a registry record signed by an operator the gateway does not trust.
    UnknownOperator,
    /// `bad-registry`: a registry record that breaks the registry rules (kid not
    /// `operator:{name}`, a payload that is not a valid record, or a registration of a device
    /// that is already registered).
    BadRegistry,
}

impl RejectCode {
    /// Every code, in declaration order.
    pub const ALL: [RejectCode; 14] = [
        RejectCode::Oversize,
        RejectCode::BadCbor,
        RejectCode::BadCose,
        RejectCode::HighS,
        RejectCode::UnknownDevice,
        RejectCode::RevokedDevice,
        RejectCode::BadSignature,
        RejectCode::KidMismatch,
        RejectCode::TopicMismatch,
        RejectCode::Replay,
        RejectCode::BrokenChain,
        RejectCode::Equivocation,
        RejectCode::UnknownOperator,
        RejectCode::BadRegistry,
    ];

    /// The reason code as it appears on the `rejects` topic.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectCode::Oversize => "oversize",
            RejectCode::BadCbor => "bad-cbor",
            RejectCode::BadCose => "bad-cose",
            RejectCode::HighS => "high-s",
            RejectCode::UnknownDevice => "unknown-device",
            RejectCode::RevokedDevice => "revoked-device",
            RejectCode::BadSignature => "bad-signature",
            RejectCode::KidMismatch => "kid-mismatch",
            RejectCode::TopicMismatch => "topic-mismatch",
            RejectCode::Replay => "replay",
            RejectCode::BrokenChain => "broken-chain",
            RejectCode::Equivocation => "equivocation",
            RejectCode::UnknownOperator => "unknown-operator",
            RejectCode::BadRegistry => "bad-registry",
        }
    }
}

impl fmt::Display for RejectCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A reason code that is not one of [`RejectCode::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown reject code {0:?}")]
pub struct UnknownRejectCode(pub String);

impl FromStr for RejectCode {
    type Err = UnknownRejectCode;
    fn from_str(text: &str) -> Result<RejectCode, UnknownRejectCode> {
        RejectCode::ALL
            .into_iter()
            .find(|c| c.as_str() == text)
            .ok_or_else(|| UnknownRejectCode(text.chars().take(40).collect()))
    }
}

/// A rejected message: what goes to the quarantine (with the raw bytes and the topic, which the
/// caller holds) and, as [`Rejection::line`], to the device's `rejects` topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The reason code.
    pub code: RejectCode,
    /// The typed error's text (or the rule broken), for operators.
    pub detail: String,
    /// The message's `prov:seq` when its payload decoded as an event (authenticated only when
    /// the rejection came after the signature check: `replay`, `broken-chain`,
    /// `equivocation`).
    pub seq: Option<u64>,
    /// BLAKE3 of the whole message as received.
    pub hash: Hash32,
    /// For `equivocation`: the leaf of the logged message with the same `(device, seq)` (the
    /// other half of the evidence; this message is the quarantined half).
    pub evidence_of: Option<u64>,
    /// The device the message is about: the topic's device id (else the kid's) for events, the
    /// record's device for registry records; `None` when neither could be read. For
    /// `equivocation` it is the authenticated signer.
    pub device: Option<DeviceId>,
    /// When the gateway received the message (Unix milliseconds, from the caller).
    pub received_ms: u64,
}

impl Rejection {
    /// The reject line of SPEC §3: `{seq or -} {reason code} {BLAKE3 hex of the message}`.
    pub fn line(&self) -> String {
        let seq = self
            .seq
            .map_or_else(|| String::from("-"), |s| s.to_string());
        format!("{seq} {} {}", self.code, self.hash)
    }
}

// ---------------------------------------------------------------------------------------------
// Entries and decisions.
// ---------------------------------------------------------------------------------------------

/// A verified log entry: only these cross from the verify step into the sequencer.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    /// A device event (SPEC §2). (Boxed, like the record: a checked event is ~700 bytes and
    /// decisions move through queues.)
    Event(Box<CheckedEvent>),
    /// A registry record (SPEC §4).
    Registry(Box<CheckedRegistryRecord>),
}

impl Entry {
    /// The message exactly as received (what the log stores).
    pub fn message(&self) -> &[u8] {
        match self {
            Entry::Event(e) => e.message(),
            Entry::Registry(r) => r.message(),
        }
    }

    /// BLAKE3 of the message.
    pub fn hash(&self) -> Hash32 {
        match self {
            Entry::Event(e) => e.hash(),
            Entry::Registry(r) => r.hash(),
        }
    }

    /// The parts of the entry the indexes and the chain rules use.
    pub fn as_ref(&self) -> EntryRef<'_> {
        match self {
            Entry::Event(e) => EntryRef::Event {
                hash: e.hash(),
                event: e.event(),
            },
            Entry::Registry(r) => EntryRef::Registry {
                hash: r.hash(),
                record: r.record(),
            },
        }
    }

    /// The message bytes, giving up the rest.
    pub fn into_message(self) -> Vec<u8> {
        match self {
            Entry::Event(e) => (*e).into_message(),
            Entry::Registry(r) => (*r).into_message(),
        }
    }
}

/// A borrowed view of a log entry's content, whether it was just verified ([`Entry`]) or
/// re-parsed from the log for a reindex ([`crate::index::LoggedEntry`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EntryRef<'a> {
    /// A device event (its `prov:device` is the signer).
    Event {
        /// BLAKE3 of the message.
        hash: Hash32,
        /// The decoded event.
        event: &'a Event,
    },
    /// A registry record.
    Registry {
        /// BLAKE3 of the message.
        hash: Hash32,
        /// The decoded record.
        record: &'a RegistryRecord,
    },
}

impl EntryRef<'_> {
    /// BLAKE3 of the message.
    pub fn hash(&self) -> Hash32 {
        match self {
            EntryRef::Event { hash, .. } | EntryRef::Registry { hash, .. } => *hash,
        }
    }

    /// The device the entry is about.
    pub fn device(&self) -> &DeviceId {
        match self {
            EntryRef::Event { event, .. } => &event.device,
            EntryRef::Registry { record, .. } => record.device(),
        }
    }
}

/// An accepted message, ready to be sequenced.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    /// The verified entry.
    pub entry: Entry,
    /// For an event that skipped seqs: the missing seqs `(from, to)`, inclusive, now recorded
    /// as a gap.
    pub gap: Option<(u64, u64)>,
    /// The event fills (part of) a recorded gap (a late message below the highest seq).
    pub fills_gap: bool,
    /// When the gateway received it (Unix milliseconds, from the caller).
    pub received_ms: u64,
}

/// What to do with one message.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Append it to the log.
    Accept(Accepted),
    /// The exact same bytes are already logged (or accepted earlier in the batch) at `leaf`:
    /// store nothing, acknowledge as stored (idempotent).
    Duplicate {
        /// The leaf index of the logged copy (provisional inside a batch: see [`Overlay`]).
        leaf: u64,
    },
    /// Quarantine it with the reason and publish the reject line.
    Reject(Rejection),
}

impl Decision {
    /// The reject code, if rejected.
    pub fn code(&self) -> Option<RejectCode> {
        match self {
            Decision::Reject(r) => Some(r.code),
            _ => None,
        }
    }

    /// The accepted entry, if accepted.
    pub fn accepted(&self) -> Option<&Accepted> {
        match self {
            Decision::Accept(a) => Some(a),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The state the rules consult.
// ---------------------------------------------------------------------------------------------

/// A device's registry state, from the registry records in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceState {
    /// The registered key.
    pub key: PublicKey,
    /// Leaf of the registration record.
    pub registered_at: u64,
    /// Leaf of the revocation record, if revoked.
    pub revoked_at: Option<u64>,
}

/// One logged event of a device's chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    /// BLAKE3 of the message.
    pub hash: Hash32,
    /// Its `prov:prev`.
    pub prev: Hash32,
    /// Its leaf index.
    pub leaf: u64,
}

/// The log state the verify step consults. Implemented by the sled indexes
/// ([`crate::index::Indexes`]), by [`MemoryView`] (tests, tools) and by [`Overlay`] (a batch in
/// progress).
pub trait LogView {
    /// A failure to read the state (not a verdict on the message: the caller retries or stops
    /// without acknowledging).
    type Error: std::error::Error + Send + Sync + 'static;

    /// The device's registry state, if it was ever registered.
    fn device_state(&self, device: &DeviceId) -> Result<Option<DeviceState>, Self::Error>;

    /// The leaf of the logged registry record with this BLAKE3, if any. (The verify step finds
    /// a logged copy of an *event* through [`LogView::link`]: the same bytes are the same
    /// device's same seq. [`crate::index::Indexes`] keeps this map for registry records only;
    /// [`MemoryView`] for every entry.)
    fn leaf_of(&self, hash: &Hash32) -> Result<Option<u64>, Self::Error>;

    /// The device's logged event with this `prov:seq`, if any.
    fn link(&self, device: &DeviceId, seq: u64) -> Result<Option<Link>, Self::Error>;

    /// The device's highest logged `prov:seq`, if it logged any event.
    fn head(&self, device: &DeviceId) -> Result<Option<u64>, Self::Error>;
}

impl<V: LogView + ?Sized> LogView for &V {
    type Error = V::Error;
    fn device_state(&self, device: &DeviceId) -> Result<Option<DeviceState>, Self::Error> {
        (**self).device_state(device)
    }
    fn leaf_of(&self, hash: &Hash32) -> Result<Option<u64>, Self::Error> {
        (**self).leaf_of(hash)
    }
    fn link(&self, device: &DeviceId, seq: u64) -> Result<Option<Link>, Self::Error> {
        (**self).link(device, seq)
    }
    fn head(&self, device: &DeviceId) -> Result<Option<u64>, Self::Error> {
        (**self).head(device)
    }
}

/// The whole [`LogView`] state in memory: for tests and tools, and the delta of an [`Overlay`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryView {
    registry: BTreeMap<DeviceId, DeviceState>,
    links: BTreeMap<(DeviceId, u64), Link>,
    hashes: HashMap<Hash32, u64>,
    heads: BTreeMap<DeviceId, u64>,
}

impl MemoryView {
    /// An empty state (an empty log).
    pub fn new() -> MemoryView {
        MemoryView::default()
    }

    /// Records `entry` as logged at `leaf`. Entries must be applied in log order and must have
    /// been accepted against this state (nothing is re-checked here).
    pub fn apply(&mut self, leaf: u64, entry: EntryRef<'_>) {
        let device = *entry.device();
        let state = self.registry.get(&device).copied();
        let head = self.heads.get(&device).copied();
        self.apply_with(leaf, entry, state, head);
    }

    /// Records `entry` at `leaf`, given the device's current state and head (which an
    /// [`Overlay`] reads through its base).
    fn apply_with(
        &mut self,
        leaf: u64,
        entry: EntryRef<'_>,
        state: Option<DeviceState>,
        head: Option<u64>,
    ) {
        self.hashes.insert(entry.hash(), leaf);
        match entry {
            EntryRef::Event { hash, event } => {
                self.links.insert(
                    (event.device, event.seq),
                    Link {
                        hash,
                        prev: event.prev,
                        leaf,
                    },
                );
                let head = head.map_or(event.seq, |h| h.max(event.seq));
                self.heads.insert(event.device, head);
            }
            EntryRef::Registry { record, .. } => match record {
                RegistryRecord::Registration { device, key, .. } => {
                    self.registry.insert(
                        *device,
                        DeviceState {
                            key: *key,
                            registered_at: leaf,
                            revoked_at: None,
                        },
                    );
                }
                RegistryRecord::Revocation { device, .. } => {
                    if let Some(mut s) = state {
                        s.revoked_at = Some(leaf);
                        self.registry.insert(*device, s);
                    }
                }
            },
        }
    }
}

impl LogView for MemoryView {
    type Error = Infallible;
    fn device_state(&self, device: &DeviceId) -> Result<Option<DeviceState>, Infallible> {
        Ok(self.registry.get(device).copied())
    }
    fn leaf_of(&self, hash: &Hash32) -> Result<Option<u64>, Infallible> {
        Ok(self.hashes.get(hash).copied())
    }
    fn link(&self, device: &DeviceId, seq: u64) -> Result<Option<Link>, Infallible> {
        Ok(self.links.get(&(*device, seq)).copied())
    }
    fn head(&self, device: &DeviceId) -> Result<Option<u64>, Infallible> {
        Ok(self.heads.get(device).copied())
    }
}

/// A view plus the entries accepted so far in a batch, each at its provisional leaf
/// (`next_leaf`, `next_leaf + 1`, … in acceptance order).
#[derive(Debug)]
pub struct Overlay<'v, V: ?Sized> {
    base: &'v V,
    delta: MemoryView,
    next_leaf: u64,
}

impl<'v, V: LogView + ?Sized> Overlay<'v, V> {
    /// An overlay on `base`, whose next accepted entry will be logged at `next_leaf` (the log's
    /// size when the batch is sequenced).
    pub fn new(base: &'v V, next_leaf: u64) -> Overlay<'v, V> {
        Overlay {
            base,
            delta: MemoryView::new(),
            next_leaf,
        }
    }

    /// An overlay on `base` that already holds `delta` (the entries of a batch sequenced but
    /// not yet applied to `base`: the pipeline verifies batch *n + 1* while batch *n* is
    /// being indexed). `delta` must have been recorded by an overlay on the state `base` had
    /// before those entries (so its heads and registry states are complete), and `base` may
    /// apply them at any moment: every key they change is answered by `delta` first.
    pub fn with_delta(base: &'v V, delta: MemoryView, next_leaf: u64) -> Overlay<'v, V> {
        Overlay {
            base,
            delta,
            next_leaf,
        }
    }

    /// The entries recorded so far, as a [`MemoryView`] delta (for [`Overlay::with_delta`]).
    pub fn into_delta(self) -> MemoryView {
        self.delta
    }

    /// The leaf the next accepted entry will get.
    pub fn next_leaf(&self) -> u64 {
        self.next_leaf
    }

    /// Records a decision: an accepted entry takes the next provisional leaf, which is
    /// returned; duplicates and rejections change nothing.
    pub fn record(&mut self, decision: &Decision) -> Result<Option<u64>, V::Error> {
        let Decision::Accept(accepted) = decision else {
            return Ok(None);
        };
        let leaf = self.next_leaf;
        let entry = accepted.entry.as_ref();
        let device = *entry.device();
        let state = self.device_state(&device)?;
        let head = self.head(&device)?;
        self.delta.apply_with(leaf, entry, state, head);
        self.next_leaf += 1;
        Ok(Some(leaf))
    }
}

impl<V: LogView + ?Sized> LogView for Overlay<'_, V> {
    type Error = V::Error;
    fn device_state(&self, device: &DeviceId) -> Result<Option<DeviceState>, V::Error> {
        match self.delta.registry.get(device) {
            Some(s) => Ok(Some(*s)),
            None => self.base.device_state(device),
        }
    }
    fn leaf_of(&self, hash: &Hash32) -> Result<Option<u64>, V::Error> {
        match self.delta.hashes.get(hash) {
            Some(l) => Ok(Some(*l)),
            None => self.base.leaf_of(hash),
        }
    }
    fn link(&self, device: &DeviceId, seq: u64) -> Result<Option<Link>, V::Error> {
        match self.delta.links.get(&(*device, seq)) {
            Some(l) => Ok(Some(*l)),
            None => self.base.link(device, seq),
        }
    }
    fn head(&self, device: &DeviceId) -> Result<Option<u64>, V::Error> {
        // A delta head was computed from the base head, so it is never lower.
        match self.delta.heads.get(device) {
            Some(h) => Ok(Some(*h)),
            None => self.base.head(device),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The rules on state (shared with the indexes, which re-check every entry they apply).
// ---------------------------------------------------------------------------------------------

/// What the chain rules of SPEC §4 say about an authentic event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainVerdict {
    /// It extends the chain (or fills a gap): accept.
    Extends {
        /// The seqs it skips, `(from, to)` inclusive, to record as a gap.
        gap: Option<(u64, u64)>,
        /// It fills a slot of a recorded gap.
        fills_gap: bool,
    },
    /// The same message is logged at `leaf`.
    Duplicate {
        /// Its leaf.
        leaf: u64,
    },
    /// Another message with the same `(device, seq)` is logged at `leaf`.
    Equivocation {
        /// The logged message's leaf.
        leaf: u64,
        /// The logged message's BLAKE3.
        logged: Hash32,
    },
    /// `seq` is the next one but `prov:prev` is not the BLAKE3 of the message at the head.
    BrokenChain {
        /// BLAKE3 of the device's message at the highest seq.
        want_prev: Hash32,
    },
    /// A message for an empty slot below the head that does not fit the chain around it.
    Replay {
        /// Which link failed.
        reason: String,
    },
}

/// The chain rules (SPEC §2 `prov:seq`/`prov:prev`, SPEC §4) for an authentic event of `device`
/// with `seq`, `prev` and BLAKE3 `hash`:
///
/// - `(device, seq)` logged with the same hash: duplicate; with another hash: equivocation;
/// - no event logged yet: accepted, the seqs below recorded as a gap if `seq > 1`;
/// - `seq == head + 1`: accepted iff `prev` is the BLAKE3 of the message at `head`, else
///   broken chain;
/// - `seq > head + 1`: accepted, `head + 1 ..= seq - 1` recorded as a gap;
/// - `seq < head` (an empty slot, hence inside a recorded gap): accepted as a gap filler iff
///   it links to every logged neighbour — its BLAKE3 equals the logged successor's `prov:prev`
///   (SPEC §4) and its `prov:prev` equals the logged predecessor's BLAKE3 — else replay. A
///   filler with neither neighbour logged (the middle of a longer gap) is accepted; its links
///   are checked when the neighbours arrive, so fillers may come in any order.
pub fn chain_verdict<V: LogView + ?Sized>(
    view: &V,
    device: &DeviceId,
    seq: u64,
    prev: Hash32,
    hash: Hash32,
) -> Result<ChainVerdict, V::Error> {
    if let Some(logged) = view.link(device, seq)? {
        return Ok(if logged.hash == hash {
            ChainVerdict::Duplicate { leaf: logged.leaf }
        } else {
            ChainVerdict::Equivocation {
                leaf: logged.leaf,
                logged: logged.hash,
            }
        });
    }
    let Some(head) = view.head(device)? else {
        return Ok(ChainVerdict::Extends {
            gap: (seq > 1).then(|| (1, seq - 1)),
            fills_gap: false,
        });
    };
    if seq > head {
        if seq - head > 1 {
            return Ok(ChainVerdict::Extends {
                gap: Some((head + 1, seq - 1)),
                fills_gap: false,
            });
        }
        return Ok(match view.link(device, head)? {
            Some(at_head) if at_head.hash == prev => ChainVerdict::Extends {
                gap: None,
                fills_gap: false,
            },
            Some(at_head) => ChainVerdict::BrokenChain {
                want_prev: at_head.hash,
            },
            // The head is always logged; fail closed if the state says otherwise.
            None => ChainVerdict::Replay {
                reason: format!("no logged event at the head seq {head}: cannot check prov:prev"),
            },
        });
    }
    // seq < head and the slot is empty: a gap filler.
    if seq > 1
        && let Some(before) = view.link(device, seq - 1)?
        && before.hash != prev
    {
        return Ok(ChainVerdict::Replay {
            reason: format!(
                "prov:prev {prev} is not the BLAKE3 {} of seq {} (leaf {})",
                before.hash,
                seq - 1,
                before.leaf
            ),
        });
    }
    if let Some(after) = view.link(device, seq + 1)?
        && after.prev != hash
    {
        return Ok(ChainVerdict::Replay {
            reason: format!(
                "BLAKE3 {hash} is not the prov:prev {} of seq {} (leaf {})",
                after.prev,
                seq + 1,
                after.leaf
            ),
        });
    }
    Ok(ChainVerdict::Extends {
        gap: None,
        fills_gap: true,
    })
}

/// The registry rules (SPEC §4) for an authentic registry record: a registration only for a
/// device never registered (a revoked device id is never registered again: its events in the
/// log keep verifying under the one key its registration names, and an auditor maps every device
/// id to at most one key); a revocation only for a registered, unrevoked device. `Ok(Err(..))`
/// is a rejection with its code and detail.
pub fn registry_verdict<V: LogView + ?Sized>(
    view: &V,
    record: &RegistryRecord,
) -> Result<Result<(), (RejectCode, String)>, V::Error> {
    let device = record.device();
    let state = view.device_state(device)?;
    Ok(match (record, state) {
        (RegistryRecord::Registration { .. }, None) => Ok(()),
        (RegistryRecord::Registration { .. }, Some(s)) => match s.revoked_at {
            Some(revoked) => Err((
                RejectCode::RevokedDevice,
                format!(
                    "device {device} was revoked at leaf {revoked}; a device id is never registered again"
                ),
            )),
            None => Err((
                RejectCode::BadRegistry,
                format!(
                    "device {device} is already registered at leaf {}",
                    s.registered_at
                ),
            )),
        },
        (RegistryRecord::Revocation { .. }, None) => Err((
            RejectCode::UnknownDevice,
            format!("device {device} is not registered"),
        )),
        (RegistryRecord::Revocation { .. }, Some(s)) => match s.revoked_at {
            Some(revoked) => Err((
                RejectCode::RevokedDevice,
                format!("device {device} is already revoked at leaf {revoked}"),
            )),
            None => Ok(()),
        },
    })
}

/// The event rule on the registry: the device is registered and not revoked. `Err` is the
/// rejection code and detail.
pub fn device_verdict(
    device: &DeviceId,
    state: Option<&DeviceState>,
) -> Result<PublicKey, (RejectCode, String)> {
    match state {
        None => Err((
            RejectCode::UnknownDevice,
            format!("device {device} has no registration record in the log"),
        )),
        Some(DeviceState {
            revoked_at: Some(leaf),
            ..
        }) => Err((
            RejectCode::RevokedDevice,
            format!("device {device} was revoked at leaf {leaf}"),
        )),
        Some(s) => Ok(s.key),
    }
}

/// The reject code of a core verification error.
pub fn classify(error: &VerifyError) -> RejectCode {
    match error {
        VerifyError::Cose(CoseError::TooLarge { .. }) => RejectCode::Oversize,
        VerifyError::Cose(CoseError::HighS) => RejectCode::HighS,
        VerifyError::Cose(CoseError::BadSignature) => RejectCode::BadSignature,
        VerifyError::Cose(_) => RejectCode::BadCose,
        VerifyError::Event(_) | VerifyError::Registry(RegistryError::Cbor(_)) => {
            RejectCode::BadCbor
        }
        VerifyError::Registry(_) | VerifyError::NotAnOperator { .. } => RejectCode::BadRegistry,
        VerifyError::NotADevice { .. } => RejectCode::TopicMismatch,
        VerifyError::UnknownOperator { .. } => RejectCode::UnknownOperator,
        VerifyError::KidMismatch { .. } => RejectCode::KidMismatch,
    }
}

// ---------------------------------------------------------------------------------------------
// Topics.
// ---------------------------------------------------------------------------------------------

/// The first two levels of every topic (SPEC §3).
pub const TOPIC_ROOT: &str = "prov/v1";

/// Longest site name accepted in a topic, in bytes.
pub const MAX_SITE_LEN: usize = 64;

/// A topic that is not a well-formed events topic for this gateway.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// Not `prov/v1/{site}/{device_id}/events`.
    #[error("topic {topic:?} is not prov/v1/{{site}}/{{device_id}}/events")]
    Shape {
        /// The topic (at most 100 characters of it).
        topic: String,
    },
    /// The site level is empty, too long, or holds a wildcard or control character.
    #[error("site {site:?} is not a valid site name")]
    Site {
        /// The site found (at most 100 characters of it).
        site: String,
    },
    /// The device level is not a device id (SPEC §1).
    #[error("device id in topic: {0}")]
    Device(#[from] IdError),
    /// The site is not the gateway's.
    #[error("topic site {got:?} is not this gateway's site {want:?}")]
    WrongSite {
        /// The gateway's site.
        want: String,
        /// The site found (at most 100 characters of it).
        got: String,
    },
}

/// The parts of an events topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventTopic<'a> {
    /// The site level.
    pub site: &'a str,
    /// The device level.
    pub device: DeviceId,
}

fn clip(text: &str) -> String {
    text.chars().take(100).collect()
}

/// Parses `prov/v1/{site}/{device_id}/events` (SPEC §3).
pub fn parse_event_topic(topic: &str) -> Result<EventTopic<'_>, TopicError> {
    let shape = || TopicError::Shape { topic: clip(topic) };
    let rest = topic
        .strip_prefix(TOPIC_ROOT)
        .and_then(|r| r.strip_prefix('/'))
        .ok_or_else(shape)?;
    let mut levels = rest.split('/');
    let (Some(site), Some(device), Some("events"), None) =
        (levels.next(), levels.next(), levels.next(), levels.next())
    else {
        return Err(shape());
    };
    if site.is_empty()
        || site.len() > MAX_SITE_LEN
        || site.chars().any(|c| c == '+' || c == '#' || c.is_control())
    {
        return Err(TopicError::Site { site: clip(site) });
    }
    Ok(EventTopic {
        site,
        device: DeviceId::new(device)?,
    })
}

/// The topic a device's reject lines go to: `prov/v1/{site}/{device_id}/rejects`.
pub fn rejects_topic(site: &str, device: &DeviceId) -> String {
    format!("{TOPIC_ROOT}/{site}/{device}/rejects")
}

/// The topic a device's receipts go to: `prov/v1/{site}/{device_id}/receipts`.
pub fn receipts_topic(site: &str, device: &DeviceId) -> String {
    format!("{TOPIC_ROOT}/{site}/{device}/receipts")
}

// ---------------------------------------------------------------------------------------------
// The verifier.
// ---------------------------------------------------------------------------------------------

/// One message of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Incoming<'a> {
    /// A device event from MQTT.
    Event {
        /// The MQTT topic it arrived on.
        topic: &'a str,
        /// The payload (the COSE_Sign1 message).
        message: &'a [u8],
        /// Receipt time, Unix milliseconds.
        received_ms: u64,
    },
    /// A registry record from the operator (HTTP).
    Registry {
        /// The COSE_Sign1 message.
        message: &'a [u8],
        /// Receipt time, Unix milliseconds.
        received_ms: u64,
    },
}

/// The result of the state-free part of the checks (envelope, payload, signature): computed in
/// parallel for a batch, then completed against the state in order.
#[derive(Debug)]
struct Prepared {
    outcome: Pre,
    /// The registry state the signature check used (device, state), for events that got that
    /// far: if an earlier entry of the batch changed it, the message is checked again.
    registry_seen: Option<(DeviceId, Option<DeviceState>)>,
}

#[derive(Debug)]
enum Pre {
    Done(Decision),
    Event(Box<CheckedEvent>, u64),
    Registry(Box<CheckedRegistryRecord>, u64),
}

/// The verify step, configured: the gateway's site (optional), the trusted operator keys, the
/// signature backend and the number of threads for a batch's signature checks.
#[derive(Debug, Clone)]
pub struct Verifier<B = PreferredBackend> {
    site: Option<String>,
    operators: BTreeMap<OperatorName, PublicKey>,
    backend: B,
    workers: usize,
}

impl Verifier<PreferredBackend> {
    /// A verifier trusting `operators` for registry records, with the fastest backend (`ring`),
    /// any site, one thread.
    pub fn new(operators: BTreeMap<OperatorName, PublicKey>) -> Verifier<PreferredBackend> {
        Verifier::with_backend(operators, PreferredBackend::default())
    }
}

impl<B: VerifyBackend + Sync> Verifier<B> {
    /// A verifier with an explicit signature backend.
    pub fn with_backend(operators: BTreeMap<OperatorName, PublicKey>, backend: B) -> Verifier<B> {
        Verifier {
            site: None,
            operators,
            backend,
            workers: 1,
        }
    }

    /// Accept events only on topics of this site.
    pub fn with_site(mut self, site: impl Into<String>) -> Verifier<B> {
        self.site = Some(site.into());
        self
    }

    /// Check a batch's signatures on up to `workers` threads (at least 1).
    pub fn with_workers(mut self, workers: usize) -> Verifier<B> {
        self.workers = workers.max(1);
        self
    }

    /// The trusted operators.
    pub fn operators(&self) -> &BTreeMap<OperatorName, PublicKey> {
        &self.operators
    }

    /// The signature backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// Decides one device event received on `topic` (see the module docs for the order of
    /// checks). `Err` only when the state could not be read.
    pub fn verify_event<V: LogView + ?Sized>(
        &self,
        view: &V,
        topic: &str,
        message: &[u8],
        received_ms: u64,
    ) -> Result<Decision, V::Error> {
        let prepared = self.prepare_event(view, topic, message, received_ms)?;
        self.finish(view, prepared)
    }

    /// Decides one registry record (from the operator's tool, over HTTP).
    pub fn verify_registry<V: LogView + ?Sized>(
        &self,
        view: &V,
        message: &[u8],
        received_ms: u64,
    ) -> Result<Decision, V::Error> {
        let prepared = self.prepare_registry(view, message, received_ms)?;
        self.finish(view, prepared)
    }

    /// Decides a batch as if its messages were logged one by one: each decision sees the
    /// entries accepted before it in the batch, at provisional leaves `next_leaf`,
    /// `next_leaf + 1`, …. The caller must sequence the accepted entries in order, in one
    /// append whose first index is `next_leaf`.
    pub fn verify_batch<V: LogView + Sync + ?Sized>(
        &self,
        view: &V,
        next_leaf: u64,
        items: &[Incoming<'_>],
    ) -> Result<Vec<Decision>, V::Error> {
        self.verify_batch_delta(view, next_leaf, items)
            .map(|(decisions, _)| decisions)
    }

    /// [`Verifier::verify_batch`], also returning what the accepted entries change (their
    /// [`Overlay`] delta: links, heads, hashes and registry states at their provisional
    /// leaves), for verifying the next batch before these are indexed.
    pub fn verify_batch_delta<V: LogView + Sync + ?Sized>(
        &self,
        view: &V,
        next_leaf: u64,
        items: &[Incoming<'_>],
    ) -> Result<(Vec<Decision>, MemoryView), V::Error> {
        let prepared = self.prepare_all(view, items);
        let mut overlay = Overlay::new(view, next_leaf);
        let mut out = Vec::with_capacity(items.len());
        for (item, pre) in items.iter().zip(prepared) {
            let mut pre = pre?;
            if let Some((device, seen)) = &pre.registry_seen
                && overlay.device_state(device)? != *seen
            {
                // An earlier entry of this batch (un)registered the device: check again.
                pre = self.prepare(&overlay, item)?;
            }
            let decision = self.finish(&overlay, pre)?;
            overlay.record(&decision)?;
            out.push(decision);
        }
        Ok((out, overlay.into_delta()))
    }

    fn prepare_all<V: LogView + Sync + ?Sized>(
        &self,
        view: &V,
        items: &[Incoming<'_>],
    ) -> Vec<Result<Prepared, V::Error>> {
        let sequential = |chunk: &[Incoming<'_>]| -> Vec<Result<Prepared, V::Error>> {
            chunk.iter().map(|i| self.prepare(view, i)).collect()
        };
        if self.workers <= 1 || items.len() < 2 * self.workers {
            return sequential(items);
        }
        let chunk_len = items.len().div_ceil(self.workers);
        std::thread::scope(|scope| {
            let handles: Vec<_> = items
                .chunks(chunk_len)
                .map(|chunk| (chunk, scope.spawn(move || sequential(chunk))))
                .collect();
            let mut out = Vec::with_capacity(items.len());
            for (chunk, handle) in handles {
                // A worker that panicked (it should not) is redone on this thread.
                out.extend(handle.join().unwrap_or_else(|_| sequential(chunk)));
            }
            out
        })
    }

    fn prepare<V: LogView + ?Sized>(
        &self,
        view: &V,
        item: &Incoming<'_>,
    ) -> Result<Prepared, V::Error> {
        match *item {
            Incoming::Event {
                topic,
                message,
                received_ms,
            } => self.prepare_event(view, topic, message, received_ms),
            Incoming::Registry {
                message,
                received_ms,
            } => self.prepare_registry(view, message, received_ms),
        }
    }

    /// Everything but the chain rules: steps 1–7 of the module docs.
    fn prepare_event<V: LogView + ?Sized>(
        &self,
        view: &V,
        topic: &str,
        message: &[u8],
        received_ms: u64,
    ) -> Result<Prepared, V::Error> {
        let hash = Hash32::blake3(message);
        let reject = |code, detail: String, device, seq| Prepared {
            outcome: Pre::Done(Decision::Reject(Rejection {
                code,
                detail,
                seq,
                hash,
                evidence_of: None,
                device,
                received_ms,
            })),
            registry_seen: None,
        };
        if message.len() > MAX_MESSAGE_LEN {
            let e = CoseError::TooLarge {
                got: message.len(),
                max: MAX_MESSAGE_LEN,
            };
            let device = parse_event_topic(topic).ok().map(|t| t.device);
            return Ok(reject(RejectCode::Oversize, e.to_string(), device, None));
        }
        let parsed_topic = match parse_event_topic(topic) {
            Ok(t) => t,
            Err(e) => {
                let device = checked::peek_kid(message)
                    .ok()
                    .and_then(|k| k.device().copied());
                return Ok(reject(
                    RejectCode::TopicMismatch,
                    e.to_string(),
                    device,
                    None,
                ));
            }
        };
        let device = parsed_topic.device;
        if let Some(site) = &self.site
            && parsed_topic.site != site
        {
            let e = TopicError::WrongSite {
                want: site.clone(),
                got: clip(parsed_topic.site),
            };
            return Ok(reject(
                RejectCode::TopicMismatch,
                e.to_string(),
                Some(device),
                None,
            ));
        }
        let cose = match CoseSign1::parse(message) {
            Ok(c) => c,
            Err(e) => {
                let code = classify(&VerifyError::Cose(e));
                return Ok(reject(code, e.to_string(), Some(device), None));
            }
        };
        let kid_device = match cose.kid() {
            Kid::Device(d) if *d == device => *d,
            kid => {
                let detail = format!("kid {kid} differs from the topic's device id {device}");
                return Ok(reject(
                    RejectCode::TopicMismatch,
                    detail,
                    Some(device),
                    None,
                ));
            }
        };
        let state = view.device_state(&kid_device)?;
        let registry_seen = Some((kid_device, state));
        let peek_seq = || Event::decode_payload(cose.payload()).ok().map(|e| e.seq);
        let key = match device_verdict(&kid_device, state.as_ref()) {
            Ok(key) => key,
            Err((code, detail)) => {
                // A logged copy (same bytes: same seq) stays a duplicate after its device is
                // revoked.
                if let Some(seq) = peek_seq()
                    && let Some(logged) = view.link(&kid_device, seq)?
                    && logged.hash == hash
                {
                    return Ok(Prepared {
                        outcome: Pre::Done(Decision::Duplicate { leaf: logged.leaf }),
                        registry_seen: None,
                    });
                }
                return Ok(Prepared {
                    registry_seen,
                    ..reject(code, detail, Some(device), peek_seq())
                });
            }
        };
        // A logged copy of these exact bytes is found by the chain rules in `finish` (same
        // device, same seq, same BLAKE3: `ChainVerdict::Duplicate`); one that fails the checks
        // below cannot be logged (it passed them when it was).
        match checked::verify_event(message, &key, &self.backend) {
            Ok(event) => Ok(Prepared {
                outcome: Pre::Event(Box::new(event), received_ms),
                registry_seen,
            }),
            Err(e) => {
                let seq = if matches!(e, VerifyError::Event(_)) {
                    None
                } else {
                    peek_seq()
                };
                Ok(Prepared {
                    registry_seen,
                    ..reject(classify(&e), e.to_string(), Some(device), seq)
                })
            }
        }
    }

    fn prepare_registry<V: LogView + ?Sized>(
        &self,
        view: &V,
        message: &[u8],
        received_ms: u64,
    ) -> Result<Prepared, V::Error> {
        let hash = Hash32::blake3(message);
        let reject = |code, detail: String, device| Prepared {
            outcome: Pre::Done(Decision::Reject(Rejection {
                code,
                detail,
                seq: None,
                hash,
                evidence_of: None,
                device,
                received_ms,
            })),
            registry_seen: None,
        };
        let cose = match CoseSign1::parse(message) {
            Ok(c) => c,
            Err(e) => {
                let code = classify(&VerifyError::Cose(e));
                return Ok(reject(code, e.to_string(), None));
            }
        };
        let claimed = RegistryRecord::decode_payload(cose.payload())
            .ok()
            .map(|r| *r.device());
        if let Kid::Device(_) = cose.kid() {
            let e = VerifyError::NotAnOperator { kid: *cose.kid() };
            return Ok(reject(classify(&e), e.to_string(), claimed));
        }
        if let Some(leaf) = view.leaf_of(&hash)? {
            return Ok(Prepared {
                outcome: Pre::Done(Decision::Duplicate { leaf }),
                registry_seen: None,
            });
        }
        match checked::verify_registry_record(message, &self.operators, &self.backend) {
            Ok(record) => Ok(Prepared {
                outcome: Pre::Registry(Box::new(record), received_ms),
                registry_seen: None,
            }),
            Err(e) => Ok(reject(classify(&e), e.to_string(), claimed)),
        }
    }

    /// Completes a prepared message against the state: duplicates (also inside a batch), the
    /// chain rules for events, the registry rules for registry records.
    fn finish<V: LogView + ?Sized>(
        &self,
        view: &V,
        prepared: Prepared,
    ) -> Result<Decision, V::Error> {
        match prepared.outcome {
            Pre::Done(decision) => Ok(decision),
            Pre::Event(event, received_ms) => {
                // No BLAKE3 lookup: a logged (or earlier in the batch) copy of these bytes is
                // the same device's same seq, which `chain_verdict` reports as a duplicate.
                let hash = event.hash();
                let reject = |code, detail: String, evidence_of| {
                    Decision::Reject(Rejection {
                        code,
                        detail,
                        seq: Some(event.seq()),
                        hash,
                        evidence_of,
                        device: Some(*event.device()),
                        received_ms,
                    })
                };
                let verdict = chain_verdict(view, event.device(), event.seq(), event.prev(), hash)?;
                Ok(match verdict {
                    ChainVerdict::Extends { gap, fills_gap } => Decision::Accept(Accepted {
                        entry: Entry::Event(event),
                        gap,
                        fills_gap,
                        received_ms,
                    }),
                    ChainVerdict::Duplicate { leaf } => Decision::Duplicate { leaf },
                    ChainVerdict::Equivocation { leaf, logged } => reject(
                        RejectCode::Equivocation,
                        format!(
                            "device {} seq {} is already logged at leaf {leaf} as {logged}",
                            event.device(),
                            event.seq()
                        ),
                        Some(leaf),
                    ),
                    ChainVerdict::BrokenChain { want_prev } => reject(
                        RejectCode::BrokenChain,
                        format!(
                            "prov:prev {} is not {want_prev}, the BLAKE3 of seq {}",
                            event.prev(),
                            event.seq() - 1
                        ),
                        None,
                    ),
                    ChainVerdict::Replay { reason } => reject(RejectCode::Replay, reason, None),
                })
            }
            Pre::Registry(record, received_ms) => {
                let hash = record.hash();
                if let Some(leaf) = view.leaf_of(&hash)? {
                    return Ok(Decision::Duplicate { leaf });
                }
                Ok(match registry_verdict(view, record.record())? {
                    Ok(()) => Decision::Accept(Accepted {
                        entry: Entry::Registry(record),
                        gap: None,
                        fills_gap: false,
                        received_ms,
                    }),
                    Err((code, detail)) => Decision::Reject(Rejection {
                        code,
                        detail,
                        seq: None,
                        hash,
                        evidence_of: None,
                        device: Some(*record.record().device()),
                        received_ms,
                    }),
                })
            }
        }
    }
}
