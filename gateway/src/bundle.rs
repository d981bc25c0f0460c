//! Product provenance bundles (SPEC §6): everything a verifier needs to check a product's
//! history without trusting this server, and the lookup counter shown next to it.
//!
//! # What goes in
//!
//! Every event naming the product, and its ancestors' own events, as the browser's verifier
//! (`prov_verifier::lineage`) derives ancestors from the bundle's signed events:
//! - **containers**: for each AggregationEvent ADD/OBSERVE putting the product (or one of its
//!   containers, transitively: item → case → pallet) into a parent, the parent's events up to
//!   the event time of the DELETE taking it out again (all of them if none; see
//!   `containers_of` for why there is no lower bound);
//! - **lots**: for an item, the lot its own events declare (`ilmd` `cbvmda:lotNumber`); for a
//!   lot, itself; then, transitively, the inputs of every TransformationEvent whose output is
//!   one of them (powder lot → milk lots), with all their events.
//!
//! **Disclosure rule** (SPEC §2): an event naming a serialized item other than the product is
//! left out, whatever else it names: the packing of the case's other items, in particular.
//!
//! Only leaves inside the latest signed checkpoint are used, and every proof is against that
//! one checkpoint, embedded byte-identically. Each event carries its device's key and the
//! registration record that admitted it (the one logged before it), with its own proof.
//!
//! # The cap
//!
//! At most `max_events` events (config `resolver.max_bundle_events`). When more qualify, the
//! bundle keeps, in this order of priority, the product's own events, the aggregation and
//! transformation events that link its ancestors (without them the verifier could not relate
//! the rest), then the newest of the others; it says `"truncated": true` and `"total_events"`.
//!
//! # Lookups
//!
//! [`Lookups`] counts how many times each product's bundle was fetched: a high count for one
//! serial is a counterfeit warning (copied labels). It is not derived from the log, so it lives
//! in a sled database of its own (`{data_dir}/lookups`), never in the indexes that `reindex`
//! rebuilds.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::PoisonError;
use std::time::{Duration, Instant};

use base64::Engine as _;
use prov_ledger::checkpoint::Checkpoint;
use prov_ledger::note::SignedNote;
use prov_ledger::store::{LogStore, StoreError};
use prov_ledger::tlog_proof::TlogProof;
use prov_schemas::cose::CoseSign1;
use prov_schemas::digital_link::{DigitalLink, IdKind, Lot};
use prov_schemas::event::{Action, Event, EventType, IlmdValue};
use prov_schemas::keys::{DeviceId, Kid, PublicKey};
use prov_schemas::registry::RegistryRecord;
use serde_json::{Value as Json, json};

use crate::index::IndexError;
use crate::pipeline::Shared;
use crate::verify::LogView as _;

/// The EPCIS master-data attribute naming an instance's lot.
const LOT_NUMBER: &str = "cbvmda:lotNumber";

/// Ancestors followed at most (a guard against pathological containment graphs).
const MAX_ANCESTORS: usize = 256;

/// Why a bundle could not be assembled.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// No checkpoint has been signed yet.
    #[error("no signed checkpoint yet")]
    NoCheckpoint,
    /// The latest checkpoint note does not parse (it was signed by this gateway: a bug).
    #[error("the latest checkpoint does not parse: {0}")]
    BadCheckpoint(String),
    /// No event in the latest checkpoint names the product.
    #[error("no event in the signed log names {product}")]
    Unknown {
        /// The canonical identifier.
        product: String,
    },
    /// Locations are not products.
    #[error("{product} is a location, not a product")]
    NotAProduct {
        /// The canonical identifier.
        product: String,
    },
    /// The indexes failed.
    #[error("indexes: {0}")]
    Index(#[from] IndexError),
    /// The log failed.
    #[error("log: {0}")]
    Store(#[from] StoreError),
    /// A logged entry does not decode (the log was verified on the way in: corruption).
    #[error("entry {leaf} does not decode: {detail}")]
    Corrupt {
        /// The leaf.
        leaf: u64,
        /// What failed.
        detail: String,
    },
    /// No registration of the event's device is logged before it (the log's rules forbid it).
    #[error("no registration of device {device} before entry {leaf}")]
    NoRegistration {
        /// The event's leaf.
        leaf: u64,
        /// Its device.
        device: String,
    },
    /// A tlog-proof could not be built.
    #[error("proof of entry {leaf}: {detail}")]
    Proof {
        /// The leaf.
        leaf: u64,
        /// What failed.
        detail: String,
    },
}

/// An assembled bundle and facts about it.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// The SPEC §6 JSON object (plus `total_events`, `truncated`, `max_events`).
    pub json: serde_json::Map<String, Json>,
    /// Events in the bundle.
    pub events: usize,
    /// Events that qualified before the cap.
    pub total_events: usize,
}

/// Why an event is in the bundle, for the cap's priorities (lower first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Priority {
    /// It names the product.
    Own = 0,
    /// It links an ancestor (aggregation or transformation).
    Link = 1,
    /// Another event of an ancestor.
    Other = 2,
}

/// A decoded candidate entry.
struct Candidate {
    message: Vec<u8>,
    event: Event,
}

/// The latest checkpoint: its note and size.
struct Anchor {
    note: String,
    size: u64,
}

fn anchor(shared: &Shared) -> Result<Anchor, BundleError> {
    let note = shared.checkpoint_note().ok_or(BundleError::NoCheckpoint)?;
    let signed = SignedNote::parse(&note).map_err(|e| BundleError::BadCheckpoint(e.to_string()))?;
    let checkpoint =
        Checkpoint::parse(signed.text()).map_err(|e| BundleError::BadCheckpoint(e.to_string()))?;
    Ok(Anchor {
        size: checkpoint.size(),
        note,
    })
}

fn decode(leaf: u64, message: Vec<u8>) -> Result<Option<Candidate>, BundleError> {
    let corrupt = |detail: String| BundleError::Corrupt { leaf, detail };
    let cose = CoseSign1::parse(&message).map_err(|e| corrupt(e.to_string()))?;
    if !matches!(cose.kid(), Kid::Device(_)) {
        return Ok(None);
    }
    let event = Event::decode_payload(cose.payload()).map_err(|e| corrupt(e.to_string()))?;
    Ok(Some(Candidate { message, event }))
}

/// The lot an item's event declares (`ilmd` `cbvmda:lotNumber`), as a Digital Link.
fn declared_lot(product: &DigitalLink, event: &Event) -> Option<DigitalLink> {
    let DigitalLink::Item { gtin, .. } = product else {
        return None;
    };
    match event.ilmd.as_ref()?.0.get(LOT_NUMBER)? {
        IlmdValue::Text(text) => Some(DigitalLink::Lot {
            gtin: *gtin,
            lot: Lot::parse(text).ok()?,
        }),
        _ => None,
    }
}

/// Whether `event` names a serialized item other than `product` (SPEC §2 disclosure rule).
fn discloses_other_item(product: &DigitalLink, event: &Event) -> bool {
    event
        .identifiers()
        .iter()
        .any(|id| id.kind() == IdKind::Item && *id != product)
}

/// Each parent `child` was put into (ADD or OBSERVE, below `size`), with the event time up to
/// which its events concern the child: the time of the first DELETE of the child from it that
/// is logged after an ADD, or `u64::MAX` while the child was never taken out again.
///
/// No lower bound: an SSCC names one logistic unit for its whole life (GS1 forbids reusing it
/// for at least a year), so a container's events before the child joined are still that unit's,
/// while a lower bound would lose events to device clock skew (a simulated line at full speed
/// signs a pallet's shipping before its palletizer signs the ADD).
fn containers_of(
    shared: &Shared,
    child: &DigitalLink,
    size: u64,
) -> Result<BTreeMap<DigitalLink, u64>, BundleError> {
    let mut by_parent: BTreeMap<DigitalLink, Vec<(u64, Action, u64)>> = BTreeMap::new();
    for edge in shared.indexes.parents(child)? {
        if edge.leaf < size {
            by_parent.entry(edge.other).or_default().push((
                edge.leaf,
                edge.action,
                edge.event_time_ms,
            ));
        }
    }
    let mut out = BTreeMap::new();
    for (parent, mut edges) in by_parent {
        edges.sort_unstable_by_key(|(leaf, _, _)| *leaf);
        let mut until = None::<u64>;
        for (i, (_, action, _)) in edges.iter().enumerate() {
            if *action == Action::Delete {
                continue;
            }
            let end = edges[i..]
                .iter()
                .find(|(_, a, _)| *a == Action::Delete)
                .map_or(u64::MAX, |(_, _, t)| *t);
            until = Some(until.map_or(end, |u| u.max(end)));
        }
        if let Some(until) = until {
            out.insert(parent, until);
        }
    }
    Ok(out)
}

/// The leaves (below `size`) of events naming `id`.
fn leaves_of(shared: &Shared, id: &DigitalLink, size: u64) -> Result<Vec<u64>, BundleError> {
    Ok(shared
        .indexes
        .product_leaves(id)?
        .into_iter()
        .filter(|l| *l < size)
        .collect())
}

/// Collects the candidate leaves of `product` with their priority.
fn collect(
    shared: &Shared,
    log: &LogStore,
    product: &DigitalLink,
    size: u64,
) -> Result<BTreeMap<u64, (Priority, Candidate)>, BundleError> {
    let mut chosen: BTreeMap<u64, (Priority, Candidate)> = BTreeMap::new();
    let consider = |chosen: &mut BTreeMap<u64, (Priority, Candidate)>,
                    leaf: u64,
                    priority: Priority|
     -> Result<(), BundleError> {
        if let Some((p, _)) = chosen.get_mut(&leaf) {
            *p = (*p).min(priority);
            return Ok(());
        }
        let Some(c) = decode(leaf, log.entry(leaf)?)? else {
            return Ok(());
        };
        if discloses_other_item(product, &c.event) {
            return Ok(());
        }
        let linking = matches!(
            c.event.event_type,
            EventType::Aggregation | EventType::Transformation
        );
        let priority = if priority == Priority::Other && linking {
            Priority::Link
        } else {
            priority
        };
        chosen.insert(leaf, (priority, c));
        Ok(())
    };

    let own = leaves_of(shared, product, size)?;
    if own.is_empty() {
        return Err(BundleError::Unknown {
            product: product.canonical(),
        });
    }
    for leaf in own {
        consider(&mut chosen, leaf, Priority::Own)?;
    }

    // Lots: declared by the item's own events, or the product itself.
    let mut lots: VecDeque<DigitalLink> = VecDeque::new();
    match product {
        DigitalLink::Item { .. } => {
            let declared: BTreeSet<DigitalLink> = chosen
                .values()
                .filter(|(p, _)| *p == Priority::Own)
                .filter_map(|(_, c)| declared_lot(product, &c.event))
                .collect();
            lots.extend(declared);
        }
        DigitalLink::Lot { .. } => lots.push_back(product.clone()),
        _ => {}
    }

    // Containers, transitively, each up to when its child was taken out of it.
    let mut seen: BTreeSet<DigitalLink> = BTreeSet::from([product.clone()]);
    let mut queue: VecDeque<DigitalLink> = VecDeque::from([product.clone()]);
    while let Some(child) = queue.pop_front() {
        for (parent, until) in containers_of(shared, &child, size)? {
            if seen.len() >= MAX_ANCESTORS || !seen.insert(parent.clone()) {
                continue;
            }
            for leaf in leaves_of(shared, &parent, size)? {
                let Some(info) = shared.indexes.leaf_info(leaf)? else {
                    continue;
                };
                if info.event_time_ms <= until {
                    consider(&mut chosen, leaf, Priority::Other)?;
                }
            }
            queue.push_back(parent);
        }
    }

    // Lots and, transitively, their inputs: all their events.
    while let Some(lot) = lots.pop_front() {
        if seen.len() >= MAX_ANCESTORS {
            break;
        }
        if lot != *product && !seen.insert(lot.clone()) {
            continue;
        }
        if lot != *product {
            for leaf in leaves_of(shared, &lot, size)? {
                consider(&mut chosen, leaf, Priority::Other)?;
            }
        }
        for edge in shared.indexes.inputs_of(&lot)? {
            if edge.leaf < size && !seen.contains(&edge.other) {
                lots.push_back(edge.other);
            }
        }
    }
    if chosen.is_empty() {
        // Every event naming it names another item too (SPEC §2): nothing can be disclosed.
        return Err(BundleError::Unknown {
            product: product.canonical(),
        });
    }
    Ok(chosen)
}

/// A device's registration entry that admitted an event: its leaf, bytes and key.
#[derive(Clone)]
struct Registration {
    leaf: u64,
    message: Vec<u8>,
    key: PublicKey,
}

/// The registration of `device` in force at `leaf`: the indexed one if logged before it, else
/// (the device was registered again later) the last one before it, found by a scan.
fn registration_for(
    shared: &Shared,
    log: &LogStore,
    device: &DeviceId,
    leaf: u64,
) -> Result<Registration, BundleError> {
    let missing = || BundleError::NoRegistration {
        leaf,
        device: device.to_string(),
    };
    let state = shared.indexes.device_state(device)?.ok_or_else(missing)?;
    if state.registered_at < leaf {
        return Ok(Registration {
            leaf: state.registered_at,
            message: log.entry(state.registered_at)?,
            key: state.key,
        });
    }
    let mut found: Option<(u64, Vec<u8>, PublicKey)> = None;
    log.for_each_entry(0..leaf, |i, bytes| {
        if let Ok(cose) = CoseSign1::parse(bytes)
            && matches!(cose.kid(), Kid::Operator(_))
            && let Ok(RegistryRecord::Registration { device: d, key, .. }) =
                RegistryRecord::decode_payload(cose.payload())
            && d == *device
        {
            found = Some((i, bytes.to_vec(), key));
        }
        std::ops::ControlFlow::Continue(())
    })?;
    let (leaf, message, key) = found.ok_or_else(missing)?;
    Ok(Registration { leaf, message, key })
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn proof(log: &LogStore, leaf: u64, anchor: &Anchor) -> Result<String, BundleError> {
    let hashes = log.inclusion_proof(leaf, anchor.size)?;
    TlogProof::new(leaf, hashes, anchor.note.clone())
        .map(|p| p.encode())
        .map_err(|e| BundleError::Proof {
            leaf,
            detail: e.to_string(),
        })
}

/// Assembles the bundle of `product` against the latest checkpoint, with at most
/// `max_events` events.
pub fn assemble(
    shared: &Shared,
    product: &DigitalLink,
    max_events: usize,
) -> Result<Bundle, BundleError> {
    if product.kind() == IdKind::Location {
        return Err(BundleError::NotAProduct {
            product: product.canonical(),
        });
    }
    // The note and the tree are read under one lock, so they agree (as in `GET /proof`).
    let log = shared.log.read().unwrap_or_else(PoisonError::into_inner);
    let anchor = anchor(shared)?;
    let chosen = collect(shared, &log, product, anchor.size)?;
    let total_events = chosen.len();

    let mut ranked: Vec<(Priority, std::cmp::Reverse<u64>)> = chosen
        .iter()
        .map(|(leaf, (p, _))| (*p, std::cmp::Reverse(*leaf)))
        .collect();
    ranked.sort_unstable();
    let kept: BTreeSet<u64> = ranked
        .into_iter()
        .take(max_events)
        .map(|(_, std::cmp::Reverse(leaf))| leaf)
        .collect();

    // Registrations by leaf: each distinct record is read and proved once.
    let mut registrations: BTreeMap<u64, (Registration, Json)> = BTreeMap::new();
    let mut events = Vec::with_capacity(kept.len());
    for (leaf, (_, c)) in chosen.into_iter().filter(|(l, _)| kept.contains(l)) {
        let r = registration_for(shared, &log, &c.event.device, leaf)?;
        let (registration, registration_json) = match registrations.get(&r.leaf) {
            Some(hit) => hit.clone(),
            None => {
                let j = json!({
                    "cose": b64(&r.message),
                    "leaf_index": r.leaf,
                    "proof": proof(&log, r.leaf, &anchor)?,
                });
                registrations.insert(r.leaf, (r.clone(), j.clone()));
                (r, j)
            }
        };
        events.push(json!({
            "cose": b64(&c.message),
            "leaf_index": leaf,
            "proof": proof(&log, leaf, &anchor)?,
            "device_key": b64(&registration.key.to_sec1_uncompressed()),
            "registration": registration_json,
        }));
    }
    drop(log);

    let count = events.len();
    let mut json = serde_json::Map::new();
    json.insert("product".into(), product.canonical().into());
    json.insert("checkpoint".into(), anchor.note.into());
    json.insert("gateway_key".into(), shared.gateway_key.to_string().into());
    json.insert("events".into(), Json::Array(events));
    json.insert("total_events".into(), total_events.into());
    json.insert("truncated".into(), (count < total_events).into());
    json.insert("max_events".into(), max_events.into());
    Ok(Bundle {
        json,
        events: count,
        total_events,
    })
}

/// The lookup counters could not be opened or updated.
#[derive(Debug, thiserror::Error)]
pub enum LookupsError {
    /// sled failed.
    #[error("lookup counters in {}: {source}", path.display())]
    Sled {
        /// The database directory.
        path: PathBuf,
        /// sled's error.
        source: sled::Error,
    },
    /// A stored counter is not 8 bytes.
    #[error("lookup counter of {product} is corrupt")]
    Corrupt {
        /// The product.
        product: String,
    },
}

/// How many times each product was looked up: a sled database of its own, flushed in the
/// background every 100 ms and on drop.
#[derive(Debug)]
pub struct Lookups {
    db: sled::Db,
    path: PathBuf,
}

/// How often sled writes the counters out.
const FLUSH_EVERY_MS: u64 = 100;

/// How long [`Lookups::open`] waits for a previous holder of the database (a gateway that is
/// still stopping in the same process) to let go of its lock.
const OPEN_PATIENCE: Duration = Duration::from_secs(10);

impl Lookups {
    /// Opens (or creates) the counters in `dir`.
    pub fn open(dir: &Path) -> Result<Lookups, LookupsError> {
        let started = Instant::now();
        loop {
            match sled::Config::new()
                .path(dir)
                .flush_every_ms(Some(FLUSH_EVERY_MS))
                .open()
            {
                Ok(db) => {
                    return Ok(Lookups {
                        db,
                        path: dir.to_path_buf(),
                    });
                }
                Err(sled::Error::Io(e))
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.to_string().contains("lock") =>
                {
                    if started.elapsed() > OPEN_PATIENCE {
                        return Err(LookupsError::Sled {
                            path: dir.to_path_buf(),
                            source: sled::Error::Io(e),
                        });
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(source) => {
                    return Err(LookupsError::Sled {
                        path: dir.to_path_buf(),
                        source,
                    });
                }
            }
        }
    }

    fn sled(&self, source: sled::Error) -> LookupsError {
        LookupsError::Sled {
            path: self.path.clone(),
            source,
        }
    }

    /// Counts one lookup of `product`; returns the count including this one.
    pub fn record(&self, product: &DigitalLink) -> Result<u64, LookupsError> {
        let key = product.canonical();
        let new = self
            .db
            .update_and_fetch(key.as_bytes(), |old| {
                let n = old
                    .and_then(|v| <[u8; 8]>::try_from(v).ok())
                    .map_or(0, u64::from_be_bytes);
                Some(n.saturating_add(1).to_be_bytes().to_vec())
            })
            .map_err(|e| self.sled(e))?;
        Self::value(&key, new.as_deref())
    }

    /// The count of `product` (0 if never looked up).
    pub fn count(&self, product: &DigitalLink) -> Result<u64, LookupsError> {
        let key = product.canonical();
        let v = self.db.get(key.as_bytes()).map_err(|e| self.sled(e))?;
        Self::value(&key, v.as_deref())
    }

    fn value(key: &str, v: Option<&[u8]>) -> Result<u64, LookupsError> {
        match v {
            None => Ok(0),
            Some(bytes) => <[u8; 8]>::try_from(bytes)
                .map(u64::from_be_bytes)
                .map_err(|_| LookupsError::Corrupt {
                    product: key.to_string(),
                }),
        }
    }

    /// Writes the counters out now.
    pub fn flush(&self) -> Result<(), LookupsError> {
        self.db.flush().map(|_| ()).map_err(|e| self.sled(e))
    }
}

impl Drop for Lookups {
    fn drop(&mut self) {
        if let Err(e) = self.db.flush() {
            tracing::warn!("flushing the lookup counters: {e}");
        }
    }
}
