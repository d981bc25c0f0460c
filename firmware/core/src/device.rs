//! The device core: event drafts in, signed SPEC §2 messages out, queued on flash until the
//! gateway's receipt covers them.
//!
//! [`Device`] is generic over the three things that differ between boards and the simulator:
//! the key store ([`Signer`]: a flash key or an ATECC608), the flash ([`NorFlash`], through the
//! storage layer's [`EventStore`]) and the clock ([`Clock`]). It does no I/O of its own: the
//! board's network task takes messages from [`Device::outbox`], publishes them on the topics of
//! [`Topics`], and hands back what the gateway answers ([`Device::on_receipt`],
//! [`Device::on_reject`]).
//!
//! # Recording an event ([`Device::record`])
//!
//! The order follows the storage layer's durability contract (`crate::storage`) step by step:
//!
//! 1. Time: [`Clock::now`], or before SNTP has synchronised the clock the best guess
//!    ([`Clock::uptime_millis`] after 1970-01-01, plainly not a real date) with
//!    `prov:clockSynced: false`: the gateway's receipt time is then the reliable one.
//! 2. The draft becomes an event with placeholder `prov:seq`/`prov:prev` and is validated, and the
//!    largest message it can become is computed (the seq placeholder is `u64::MAX`, the longest
//!    CBOR integer). An invalid draft is refused here, before a seq is spent.
//! 3. [`EventStore::reserve`] checks the queue has room for that size (a full queue refuses the
//!    newest event, counts it, and spends no seq) and makes the seq durable *before* anything is
//!    signed, so no power cut can hand out a seq twice.
//! 4. `prov:device`, `prov:seq` and `prov:prev` (the BLAKE3 of the newest queued message) are
//!    filled in and the payload is encoded as deterministic CBOR.
//! 5. The Sig_structure ([`cose::to_be_signed`]) is signed by the [`Signer`] (a secure element
//!    signs it with its own nonce) and the message assembled ([`cose::assemble`]).
//! 6. [`EventStore::commit`] appends it to the queue; once that returns the message survives any
//!    power cut, and its hash is the next event's `prov:prev`.
//!
//! A failure after step 3 leaves a gap in `prov:seq` that the neighbours still chain across
//! (SPEC §4 accepts gaps). Because a gap is permanent, signing is tried [`SIGN_ATTEMPTS`] times
//! before the reservation is given up (a secure element on a noisy I2C bus fails transiently).
//!
//! # Publishing and receipts
//!
//! Nothing leaves the queue because it was published, nor because the broker acknowledged it:
//! only [`Device::on_receipt`] with the gateway's receipt (the highest seq such that every seq up
//! to it is durably stored) releases messages. After a reconnect the network task drains the
//! queue again from the oldest unreleased message ([`Device::outbox`]), in seq order.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use embedded_storage::nor_flash::NorFlash;
use prov_schemas::Hash32;
use prov_schemas::cose::{self, CoseError};
use prov_schemas::event::{EventError, EventTime, TimeError};
use prov_schemas::keys::{DeviceId, IdError, Kid, PublicKey};

use crate::roles::Draft;
use crate::signer::{Signer, SignerError};
use crate::storage::queue::Entry;
use crate::storage::{ChainPoint, EventStore, StorageError};

/// How many times [`Device::record`] asks the signer before giving up a reserved seq.
pub const SIGN_ATTEMPTS: usize = 3;

/// The payload of the retained status message while the device is connected.
pub const STATUS_ONLINE: &[u8] = b"online";
/// The payload of the retained status message (and of the last will) when it is not.
pub const STATUS_OFFLINE: &[u8] = b"offline";

/// The device's time source.
pub trait Clock {
    /// Unix milliseconds, once the clock has been synchronised (SNTP after Wi-Fi is up);
    /// `None` before.
    fn now(&mut self) -> Option<u64>;

    /// Milliseconds since boot (monotonic): the device's best guess of the time while
    /// [`Clock::now`] is `None` is this many milliseconds after 1970-01-01.
    fn uptime_millis(&mut self) -> u64;
}

/// A [`Device`] operation failed. `E` is the flash driver's error type.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DeviceError<E: fmt::Debug> {
    /// The draft does not make a valid event (nothing was reserved).
    #[error("invalid event: {0}")]
    Event(#[from] EventError),
    /// The clock gave a time outside what an event can carry.
    #[error("event time: {0}")]
    Time(#[from] TimeError),
    /// The message would be too large, or the COSE layer refused it.
    #[error("message: {0}")]
    Cose(#[from] CoseError),
    /// The flash store failed or refused (queue full, flash error…).
    #[error("storage: {0}")]
    Storage(#[from] StorageError<E>),
    /// The signer failed [`SIGN_ATTEMPTS`] times; the reserved seq is a gap.
    #[error("signing seq {seq} failed: {source}")]
    Signer {
        /// The seq given up.
        seq: u64,
        /// The last signer error.
        source: SignerError,
    },
    /// The store has handed out seqs but never queued a message, so the next event would have
    /// `prov:seq` > 1 with a zero `prov:prev`, which SPEC §2 forbids. Happens when the very first
    /// reservation was lost (power cut or signer failure before the first commit); the device
    /// must be re-provisioned (formatted from the gateway's view of its chain). Nothing was
    /// reserved.
    #[error("seq {reserved} was reserved but no message was ever queued: re-provision the device")]
    LostGenesis {
        /// The highest seq handed out.
        reserved: u64,
    },
}

/// The device core (see the module docs).
pub struct Device<S, F, C> {
    id: DeviceId,
    kid: Kid,
    signer: S,
    store: EventStore<F>,
    clock: C,
    rejects: u32,
    last_reject: Option<Reject>,
}

impl<S, F, C> fmt::Debug for Device<S, F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Device")
            .field("id", &self.id)
            .field("rejects", &self.rejects)
            .finish_non_exhaustive()
    }
}

impl<S: Signer, F: NorFlash, C: Clock> Device<S, F, C> {
    /// A device over an opened (or freshly formatted) store.
    pub fn new(id: DeviceId, signer: S, store: EventStore<F>, clock: C) -> Self {
        Device {
            id,
            kid: Kid::Device(id),
            signer,
            store,
            clock,
            rejects: 0,
            last_reject: None,
        }
    }

    /// The device id (the COSE kid and `prov:device`).
    pub fn id(&self) -> &DeviceId {
        &self.id
    }

    /// The public key the gateway must have registered for this device.
    pub fn public_key(&self) -> PublicKey {
        self.signer.public_key()
    }

    /// Signs `draft` as the device's next event and queues it (see the module docs for the
    /// order of steps). Returns the event's `prov:seq`.
    pub fn record(&mut self, draft: Draft) -> Result<u64, DeviceError<F::Error>> {
        // 1. Time.
        let (millis, synced) = match self.clock.now() {
            Some(now) => (now, true),
            None => (self.clock.uptime_millis(), false),
        };
        let time = EventTime::from_unix_millis(millis)?;

        // 2. Validate with placeholders and bound the size, before spending a seq.
        let head = self.store.chain_head();
        if head.hash == Hash32::ZERO && self.store.last_reserved() > 0 {
            return Err(DeviceError::LostGenesis {
                reserved: self.store.last_reserved(),
            });
        }
        let mut event = draft.into_event(time, self.id, u64::MAX, Hash32([1; 32]), synced);
        event.validate()?;
        let max_len = cose::signed_message_len(&self.kid, event.encode_payload().len());
        if max_len > cose::MAX_MESSAGE_LEN {
            return Err(CoseError::TooLarge {
                got: max_len,
                max: cose::MAX_MESSAGE_LEN,
            }
            .into());
        }

        // 3. Durable seq.
        let reservation = self.store.reserve(max_len)?;
        let seq = reservation.seq();

        // 4. Chain fields and payload.
        event.seq = seq;
        event.prev = reservation.prev();
        event.validate()?;
        let payload = event.encode_payload();

        // 5. Sign and assemble.
        let to_sign = cose::to_be_signed(&self.kid, &payload)?;
        let mut attempt = 0;
        let signature = loop {
            attempt += 1;
            match self.signer.sign(&to_sign) {
                Ok(signature) => break signature,
                Err(source) if attempt >= SIGN_ATTEMPTS => {
                    return Err(DeviceError::Signer { seq, source });
                }
                Err(_) => {}
            }
        };
        let message = cose::assemble(&self.kid, &payload, &signature)?;

        // 6. Durable message; its hash becomes the chain head.
        self.store.commit(reservation, &message)?;
        Ok(seq)
    }

    /// The queued messages not yet covered by a receipt, oldest first: what to (re)publish
    /// after connecting.
    pub fn outbox(&mut self) -> Outbox<'_, F> {
        let released = self.store.released();
        self.outbox_after(released)
    }

    /// The queued messages with seq above `after`, oldest first: to continue a drain on the
    /// same connection from the last seq published.
    pub fn outbox_after(&mut self, after: u64) -> Outbox<'_, F> {
        Outbox {
            store: &mut self.store,
            cursor: Cursor::After(after),
        }
    }

    /// The gateway's receipt: releases every queued message up to `seq` (clamped to the newest
    /// queued one). Returns the released seq.
    pub fn on_receipt(&mut self, seq: u64) -> Result<u64, DeviceError<F::Error>> {
        Ok(self.store.release_through(seq)?)
    }

    /// The payload of a message on the receipts topic: parses it and applies it.
    pub fn on_receipt_payload(&mut self, payload: &[u8]) -> Result<u64, ReceiptError<F::Error>> {
        let seq = parse_receipt(payload)?;
        self.on_receipt(seq).map_err(ReceiptError::Device)
    }

    /// A line from the rejects topic: parses it, counts it and keeps it as the last reject.
    /// A reject does not release anything: what the gateway rejected is evidence of a fault
    /// (wrong key, clock, firmware) for an operator to look at, and only receipts free flash.
    pub fn on_reject(&mut self, line: &[u8]) -> Result<Reject, RejectError> {
        let reject = Reject::parse(line)?;
        self.rejects = self.rejects.saturating_add(1);
        self.last_reject = Some(reject.clone());
        Ok(reject)
    }

    /// Rejects received since boot.
    pub fn rejects(&self) -> u32 {
        self.rejects
    }

    /// The last reject received, if any.
    pub fn last_reject(&self) -> Option<&Reject> {
        self.last_reject.as_ref()
    }

    /// The newest queued message (`seq` 0 before the first).
    pub fn chain_head(&self) -> ChainPoint {
        self.store.chain_head()
    }

    /// The highest receipt applied.
    pub fn released(&self) -> u64 {
        self.store.released()
    }

    /// Events refused because the queue was full, since boot.
    pub fn dropped(&self) -> u32 {
        self.store.dropped()
    }

    /// The store (for status reporting).
    pub fn store(&self) -> &EventStore<F> {
        &self.store
    }

    /// The store, mutable (tests schedule flash faults through it).
    pub fn store_mut(&mut self) -> &mut EventStore<F> {
        &mut self.store
    }

    /// The clock, mutable.
    pub fn clock_mut(&mut self) -> &mut C {
        &mut self.clock
    }

    /// Takes the device apart (a reboot: reopen the store from its flash).
    pub fn into_parts(self) -> (S, EventStore<F>, C) {
        (self.signer, self.store, self.clock)
    }
}

/// One queued message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    /// Its `prov:seq`.
    pub seq: u64,
    /// The COSE_Sign1 bytes to publish.
    pub message: Vec<u8>,
}

enum Cursor {
    After(u64),
    From(Entry),
    Done,
}

/// Queued messages in seq order ([`Device::outbox`]). Reads each message from flash as it is
/// reached; stops at the first storage error (yielded once).
pub struct Outbox<'a, F> {
    store: &'a mut EventStore<F>,
    cursor: Cursor,
}

impl<F: NorFlash> Iterator for Outbox<'_, F> {
    type Item = Result<Queued, StorageError<F::Error>>;

    fn next(&mut self) -> Option<Self::Item> {
        let found = match core::mem::replace(&mut self.cursor, Cursor::Done) {
            Cursor::After(after) => self.store.first_after(after),
            Cursor::From(entry) => self.store.next(&entry),
            Cursor::Done => return None,
        };
        let entry = match found {
            Ok(Some(entry)) => entry,
            Ok(None) => return None,
            Err(e) => return Some(Err(e)),
        };
        let message = match self.store.read_vec(&entry) {
            Ok(message) => message,
            Err(e) => return Some(Err(e)),
        };
        let seq = entry.seq();
        self.cursor = Cursor::From(entry);
        Some(Ok(Queued { seq, message }))
    }
}

// ---------------------------------------------------------------------------------------------
// Receipts and rejects
// ---------------------------------------------------------------------------------------------

/// A receipts-topic payload that is not a seq, or a receipt that could not be applied.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReceiptError<E: fmt::Debug> {
    /// The payload is not a decimal seq.
    #[error("receipt {payload:?} is not a decimal seq")]
    NotASeq {
        /// The payload (at most 40 characters of it).
        payload: String,
    },
    /// Applying it failed.
    #[error("{0}")]
    Device(DeviceError<E>),
}

impl<E: fmt::Debug> From<NotASeq> for ReceiptError<E> {
    fn from(e: NotASeq) -> Self {
        ReceiptError::NotASeq { payload: e.0 }
    }
}

/// A receipts-topic payload that is not a seq (its first 40 characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotASeq(pub String);

/// Parses a receipt payload (SPEC §3): the decimal seq, surrounding whitespace tolerated.
pub fn parse_receipt(payload: &[u8]) -> Result<u64, NotASeq> {
    let bad = || NotASeq(excerpt(payload));
    let text = core::str::from_utf8(payload).map_err(|_| bad())?.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    text.parse().map_err(|_| bad())
}

/// One line of the rejects topic (SPEC §3): `{seq or -} {reason code} {BLAKE3 hex}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// The rejected message's seq, if the gateway could read one.
    pub seq: Option<u64>,
    /// The gateway's reason code.
    pub reason: String,
    /// BLAKE3 of the rejected message.
    pub hash: Hash32,
}

/// A rejects-topic line that does not have the SPEC §3 shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("reject line {line:?}: {problem}")]
pub struct RejectError {
    /// The line (at most 40 characters of it).
    pub line: String,
    /// What is wrong with it.
    pub problem: &'static str,
}

impl Reject {
    /// Parses one line (a trailing CR/LF is ignored).
    pub fn parse(line: &[u8]) -> Result<Reject, RejectError> {
        let bad = |problem| RejectError {
            line: excerpt(line),
            problem,
        };
        let text = core::str::from_utf8(line)
            .map_err(|_| bad("not UTF-8"))?
            .trim_end_matches(['\r', '\n']);
        let mut fields = text.split(' ');
        let (Some(seq), Some(reason), Some(hash), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(bad("want three fields separated by single spaces"));
        };
        let seq = match seq {
            "-" => None,
            s if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
                Some(s.parse().map_err(|_| bad("seq out of range"))?)
            }
            _ => return Err(bad("seq is neither a number nor -")),
        };
        if reason.is_empty() || !reason.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(bad("reason code is empty or not printable ASCII"));
        }
        let hash =
            Hash32::from_hex(hash).map_err(|_| bad("hash is not 64 lowercase hex digits"))?;
        Ok(Reject {
            seq,
            reason: String::from(reason),
            hash,
        })
    }
}

fn excerpt(bytes: &[u8]) -> String {
    bytes.iter().take(40).map(|&b| char::from(b)).collect()
}

// ---------------------------------------------------------------------------------------------
// Topics
// ---------------------------------------------------------------------------------------------

/// The four topics of one device (SPEC §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    /// `prov/v1/{site}/{device_id}/events`: QoS 1, the messages.
    pub events: String,
    /// `prov/v1/{site}/{device_id}/status`: retained `online` / `offline` (last will).
    pub status: String,
    /// `prov/v1/{site}/{device_id}/receipts`: the gateway's receipts.
    pub receipts: String,
    /// `prov/v1/{site}/{device_id}/rejects`: the gateway's reject lines.
    pub rejects: String,
}

/// Which of a device's topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicKind {
    /// `events`.
    Events,
    /// `status`.
    Status,
    /// `receipts`.
    Receipts,
    /// `rejects`.
    Rejects,
}

impl TopicKind {
    /// The last topic level.
    pub fn as_str(self) -> &'static str {
        match self {
            TopicKind::Events => "events",
            TopicKind::Status => "status",
            TopicKind::Receipts => "receipts",
            TopicKind::Rejects => "rejects",
        }
    }
}

/// The first two topic levels of every topic.
pub const TOPIC_PREFIX: &str = "prov/v1/";

/// A site name that cannot be a topic level. Site names follow the device id rule of SPEC §1
/// (`[a-z0-9][a-z0-9._-]{0,63}`), so they never contain MQTT's `/`, `+` or `#`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("site name: {0}")]
pub struct SiteError(pub IdError);

/// Checks a site name.
pub fn check_site(site: &str) -> Result<(), SiteError> {
    DeviceId::new(site).map(|_| ()).map_err(SiteError)
}

impl Topics {
    /// The topics of `device` at `site`.
    pub fn new(site: &str, device: &DeviceId) -> Result<Topics, SiteError> {
        check_site(site)?;
        let t = |kind: TopicKind| format!("{TOPIC_PREFIX}{site}/{device}/{}", kind.as_str());
        Ok(Topics {
            events: t(TopicKind::Events),
            status: t(TopicKind::Status),
            receipts: t(TopicKind::Receipts),
            rejects: t(TopicKind::Rejects),
        })
    }

    /// Splits a topic into site, device and kind; `None` if it is not one of ours.
    pub fn parse(topic: &str) -> Option<(&str, DeviceId, TopicKind)> {
        let rest = topic.strip_prefix(TOPIC_PREFIX)?;
        let mut levels = rest.split('/');
        let (Some(site), Some(device), Some(kind), None) =
            (levels.next(), levels.next(), levels.next(), levels.next())
        else {
            return None;
        };
        check_site(site).ok()?;
        let device = DeviceId::new(device).ok()?;
        let kind = match kind {
            "events" => TopicKind::Events,
            "status" => TopicKind::Status,
            "receipts" => TopicKind::Receipts,
            "rejects" => TopicKind::Rejects,
            _ => return None,
        };
        Some((site, device, kind))
    }
}
