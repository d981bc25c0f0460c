//! Verifying a product provenance bundle (SPEC §6) under the verifier's own trusted keys.
//!
//! A bundle verifies when, with nothing taken on trust from the bundle itself:
//! - `product` is a canonical Digital Link (SPEC §1);
//! - `checkpoint` is a checkpoint signed by the trusted gateway key;
//! - every event's COSE message is a valid device event (SPEC §2) whose signature holds under
//!   its `device_key`, and that key is the one in the event's registration record;
//! - every registration record is a `prov:DeviceRegistration` of that very device, signed by a
//!   trusted operator key, and logged before the event (SPEC §4);
//! - every proof (event and registration) is a C2SP tlog-proof whose `index` is the entry's
//!   `leaf_index`, whose embedded checkpoint is byte-identical to `checkpoint`, and whose
//!   inclusion proof leads from the BLAKE3 leaf of the exact COSE bytes to the checkpoint root;
//! - events of one device agree with each other (one message per `prov:seq`, and `prov:prev`
//!   linking consecutive ones);
//! - every event names the product or one of its ancestors (`lineage`: its containers, its lot
//!   and the lot's inputs, as the bundle's own signed events link them).
//!
//! Every failure is reported with where it is (`events[3].proof`, `checkpoint`) and what is
//! wrong; nothing stops at the first failure, so the page can show which events hold. Things
//! that do not make a bundle false but that the page may want to say are `warnings`.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use prov_ledger::checkpoint::{Checkpoint, CheckpointError};
use prov_ledger::hasher::{Blake3Hasher, LogHasher};
use prov_ledger::merkle::{MerkleError, verify_inclusion};
use prov_ledger::note::{NoteError, SignedNote};
use prov_ledger::tlog_proof::TlogProof;
use prov_schemas::Hash32;
use prov_schemas::checked::{self, VerifyError};
use prov_schemas::cose::{CoseError, CoseSign1, P256Backend};
use prov_schemas::digital_link::DigitalLink;
use prov_schemas::event::{Event, SensorReport};
use prov_schemas::keys::{DeviceId, Kid, PublicKey};
use prov_schemas::registry::RegistryRecord;
use serde::{Deserialize, Serialize};

use crate::lineage::Lineage;
use crate::trust::Trust;

/// The overall answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every check of SPEC §6 held.
    Verified,
    /// At least one failed: see [`Report::failures`].
    NotVerified,
}

/// One failed check (or, in [`Report::warnings`], one remark).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// Where: a path into the bundle (`events[3].proof`, `events[0].registration.cose`,
    /// `checkpoint`, `product`), or `trust` / `bundle` for the inputs as a whole.
    pub at: String,
    /// What is wrong.
    pub error: String,
}

impl core::fmt::Display for Failure {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}: {}", self.at, self.error)
    }
}

/// The bundle's checkpoint, as read (verified or not: see `verified`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckpointInfo {
    /// The log's origin.
    pub origin: String,
    /// The tree size.
    pub size: u64,
    /// The root hash, hex.
    pub root_hex: String,
    /// Whether it is signed by the trusted gateway key.
    pub verified: bool,
}

/// The registration record an event relies on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegistrationInfo {
    /// Its leaf index in the log.
    pub leaf_index: Option<u64>,
    /// The operator that signed it (`operator:{name}`).
    pub operator: String,
    /// When the operator registered the device.
    pub registered_at: String,
    /// The registered key's fingerprint (SPEC §1).
    pub key_fingerprint: String,
}

/// One event of the bundle, for the timeline. The EPCIS-named fields repeat the event's own
/// (`event` holds all of them); they are absent when the COSE payload could not be decoded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventReport {
    /// Position in the bundle's `events`.
    pub index: usize,
    /// Whether every check about this event held (signature, key, registration, proofs,
    /// lineage). Show unverified events as such, or not at all.
    pub verified: bool,
    /// The event's leaf index in the log.
    pub leaf_index: Option<u64>,
    /// How it relates to the product: `product`, `container`, `lot`, `input`; absent if it
    /// names none of them.
    pub relation: Option<&'static str>,
    /// The product or ancestor it names.
    pub via: Option<String>,
    /// The device's registration.
    pub registration: Option<RegistrationInfo>,
    /// BLAKE3 of the COSE message, hex.
    pub message_blake3: Option<String>,
    /// `type`.
    #[serde(rename = "type")]
    pub event_type: Option<&'static str>,
    /// `eventTime`.
    #[serde(rename = "eventTime")]
    pub event_time: Option<String>,
    /// `eventTimeZoneOffset`.
    #[serde(rename = "eventTimeZoneOffset")]
    pub event_time_zone_offset: Option<String>,
    /// `action`.
    pub action: Option<&'static str>,
    /// `bizStep`.
    #[serde(rename = "bizStep")]
    pub biz_step: Option<&'static str>,
    /// `disposition`.
    pub disposition: Option<&'static str>,
    /// `readPoint.id`.
    #[serde(rename = "readPoint")]
    pub read_point: Option<String>,
    /// `bizLocation.id`.
    #[serde(rename = "bizLocation")]
    pub biz_location: Option<String>,
    /// `prov:device`.
    pub device: Option<String>,
    /// `prov:seq`.
    pub seq: Option<u64>,
    /// `prov:clockSynced` (true unless the device said otherwise; then `eventTime` is the
    /// device's guess).
    #[serde(rename = "clockSynced")]
    pub clock_synced: Option<bool>,
    /// Every sensor reading of every `sensorElementList` entry, in order.
    #[serde(rename = "sensorReports")]
    pub sensor_reports: Vec<SensorReport>,
    /// Whether any reading carries an exception (an excursion or a sensor fault).
    #[serde(rename = "sensorException")]
    pub sensor_exception: bool,
    /// The whole event, in its JSON form (SPEC §2, `schemas/vectors/README.md`).
    pub event: Option<Event>,
}

/// The answer for one bundle.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// `verified` iff `failures` is empty.
    pub verdict: Verdict,
    /// The product, canonical, if it parsed.
    pub product: Option<String>,
    /// The bundle's checkpoint, if it parsed.
    pub checkpoint: Option<CheckpointInfo>,
    /// Every check that failed, in bundle order.
    pub failures: Vec<Failure>,
    /// Remarks that do not make the bundle false.
    pub warnings: Vec<Failure>,
    /// The events, in bundle order.
    pub events: Vec<EventReport>,
}

impl Report {
    fn new() -> Report {
        Report {
            verdict: Verdict::NotVerified,
            product: None,
            checkpoint: None,
            failures: Vec::new(),
            warnings: Vec::new(),
            events: Vec::new(),
        }
    }

    /// A report for inputs that could not be read at all (`at` = `trust` or `bundle`).
    pub fn rejected(at: &str, error: String) -> Report {
        let mut r = Report::new();
        r.fail(at.into(), error);
        r
    }

    fn fail(&mut self, at: String, error: String) {
        self.failures.push(Failure { at, error });
    }

    fn warn(&mut self, at: String, error: String) {
        self.warnings.push(Failure { at, error });
    }

    /// Serialises the report as JSON.
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising these types cannot fail (string keys, finite floats only).
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[derive(Deserialize)]
struct BundleJson {
    product: Option<String>,
    checkpoint: Option<String>,
    gateway_key: Option<String>,
    events: Option<Vec<EventJson>>,
}

#[derive(Deserialize)]
struct EventJson {
    cose: Option<String>,
    leaf_index: Option<u64>,
    proof: Option<String>,
    device_key: Option<String>,
    registration: Option<EntryJson>,
}

#[derive(Deserialize)]
struct EntryJson {
    cose: Option<String>,
    leaf_index: Option<u64>,
    proof: Option<String>,
}

/// The bundle's checkpoint as needed by the proofs.
struct Anchor<'a> {
    note: &'a str,
    checkpoint: Checkpoint,
}

/// What a registration record yielded: the record (if its signature held) and the failures,
/// as `(path under registration, error)`. Shared by every event citing the same record.
#[derive(Clone)]
struct RegistrationOutcome {
    record: Option<(Kid, RegistryRecord)>,
    failures: Vec<(&'static str, String)>,
}

/// What identifies a registration entry of the bundle: its COSE, leaf index and proof texts.
type RegistrationKey<'b> = (&'b str, Option<u64>, &'b str);

/// An event after its own checks, before the cross-event ones.
struct Checked {
    device: DeviceId,
    seq: u64,
    prev: Hash32,
    hash: Hash32,
}

/// Verifies a bundle (the JSON of SPEC §6) under `trust`. Never panics; every problem is a
/// failure in the report.
pub fn verify_bundle(bundle_json: &[u8], trust: &Trust) -> Report {
    let mut r = Report::new();
    let bundle: BundleJson = match serde_json::from_slice(bundle_json) {
        Ok(b) => b,
        Err(e) => {
            r.fail("bundle".into(), format!("not a provenance bundle: {e}"));
            return r;
        }
    };

    let product = match &bundle.product {
        None => {
            r.fail("product".into(), "missing".into());
            None
        }
        Some(p) => match DigitalLink::parse_canonical(p) {
            Ok(link) => {
                r.product = Some(link.canonical());
                Some(link)
            }
            Err(e) => {
                r.fail(
                    "product".into(),
                    format!("not a canonical Digital Link: {e}"),
                );
                None
            }
        },
    };

    let anchor = bundle
        .checkpoint
        .as_deref()
        .and_then(|note| check_checkpoint(note, trust, &mut r));
    if bundle.checkpoint.is_none() {
        r.fail("checkpoint".into(), "missing".into());
    }
    if let Some(k) = &bundle.gateway_key
        && *k != trust.gateway_key().to_string()
    {
        r.warn(
            "gateway_key".into(),
            "differs from the trusted gateway key (ignored: only the pinned key counts)".into(),
        );
    }

    let events = bundle.events.unwrap_or_default();
    if events.is_empty() {
        r.fail("events".into(), "the bundle holds no events".into());
    }
    let mut registrations: Vec<(RegistrationKey<'_>, RegistrationOutcome)> = Vec::new();
    let mut checked: Vec<Option<Checked>> = Vec::with_capacity(events.len());
    for (i, ev) in events.iter().enumerate() {
        let (report, c) = check_event(i, ev, trust, anchor.as_ref(), &mut registrations, &mut r);
        r.events.push(report);
        checked.push(c);
    }
    check_device_chains(&checked, &mut r);
    if let Some(product) = &product {
        check_lineage(product, &mut r);
    }
    if r.failures.is_empty() {
        r.verdict = Verdict::Verified;
    }
    r
}

/// Reads and verifies the bundle's checkpoint; returns it (even unverified, so that the proofs
/// can still be checked against its root) unless it cannot be read.
fn check_checkpoint<'a>(note: &'a str, trust: &Trust, r: &mut Report) -> Option<Anchor<'a>> {
    let parsed = match SignedNote::parse(note) {
        Ok(n) => n,
        Err(e) => {
            r.fail("checkpoint".into(), format!("not a signed note: {e}"));
            return None;
        }
    };
    let body = match Checkpoint::parse(parsed.text()) {
        Ok(c) => c,
        Err(e) => {
            r.fail("checkpoint".into(), format!("not a checkpoint: {e}"));
            return None;
        }
    };
    let verified = match Checkpoint::open_note(&parsed, trust.gateway_key()) {
        Ok(_) => true,
        Err(e) => {
            let error = match e {
                CheckpointError::Note(NoteError::MissingSignature { .. }) => {
                    "not signed by the trusted gateway key".into()
                }
                CheckpointError::Note(NoteError::BadSignature { .. }) => {
                    "the trusted gateway key's signature does not verify".into()
                }
                other => other.to_string(),
            };
            r.fail("checkpoint".into(), error);
            false
        }
    };
    r.checkpoint = Some(CheckpointInfo {
        origin: body.origin().into(),
        size: body.size(),
        root_hex: body.root().to_hex(),
        verified,
    });
    Some(Anchor {
        note,
        checkpoint: body,
    })
}

fn b64(text: &str) -> Option<Vec<u8>> {
    STANDARD.decode(text.as_bytes()).ok()
}

fn describe_event_error(e: &VerifyError) -> String {
    match e {
        VerifyError::Cose(CoseError::BadSignature) => {
            "bad signature: does not verify under the device key".into()
        }
        other => other.to_string(),
    }
}

/// Checks a tlog-proof of `entry` at `leaf_index` against the bundle's checkpoint. Returns the
/// failures as `(field, error)`: `leaf_index` or `proof`.
fn check_proof(
    proof: Option<&str>,
    leaf_index: Option<u64>,
    entry: Option<&[u8]>,
    anchor: Option<&Anchor<'_>>,
) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if leaf_index.is_none() {
        out.push(("leaf_index", String::from("missing")));
    }
    let Some(text) = proof else {
        out.push(("proof", String::from("missing")));
        return out;
    };
    let parsed = match TlogProof::parse(text) {
        Ok(p) => p,
        Err(e) => {
            out.push(("proof", format!("not a tlog-proof: {e}")));
            return out;
        }
    };
    if let Some(li) = leaf_index
        && parsed.index() != li
    {
        out.push((
            "proof",
            format!("index {} differs from leaf_index {li}", parsed.index()),
        ));
    }
    let Some(anchor) = anchor else {
        return out;
    };
    if parsed.checkpoint_note() != anchor.note {
        out.push((
            "proof",
            "embedded checkpoint is not byte-identical to the bundle's checkpoint".into(),
        ));
        return out;
    }
    let Some(entry) = entry else {
        return out;
    };
    let cp = &anchor.checkpoint;
    if let Err(e) = verify_inclusion(
        &Blake3Hasher,
        parsed.index(),
        cp.size(),
        &Blake3Hasher.hash_leaf(entry),
        parsed.hashes(),
        &cp.root(),
    ) {
        let error = match e {
            MerkleError::RootMismatch { .. } => {
                "inclusion proof does not match the checkpoint root".into()
            }
            other => format!("inclusion proof: {other}"),
        };
        out.push(("proof", error));
    }
    out
}

fn check_registration(
    entry: &EntryJson,
    trust: &Trust,
    anchor: Option<&Anchor<'_>>,
) -> RegistrationOutcome {
    let mut failures = Vec::new();
    let message = match entry.cose.as_deref() {
        None => {
            failures.push(("cose", String::from("missing")));
            None
        }
        Some(text) => {
            let m = b64(text);
            if m.is_none() {
                failures.push(("cose", String::from("not base64")));
            }
            m
        }
    };
    let mut record = None;
    if let Some(m) = &message {
        match checked::verify_registry_record(m, trust, &P256Backend) {
            Ok(rec) => {
                record = Some((Kid::Operator(*rec.operator()), *rec.record()));
            }
            Err(e) => {
                let error = match e {
                    VerifyError::Cose(CoseError::BadSignature) => {
                        "bad signature: does not verify under the trusted operator key".into()
                    }
                    other => other.to_string(),
                };
                failures.push(("cose", error));
            }
        }
    }
    failures.extend(check_proof(
        entry.proof.as_deref(),
        entry.leaf_index,
        message.as_deref(),
        anchor,
    ));
    RegistrationOutcome { record, failures }
}

/// Checks one event and its registration; returns its report and, if its signature held, what
/// the cross-event checks need.
fn check_event<'b>(
    i: usize,
    ev: &'b EventJson,
    trust: &Trust,
    anchor: Option<&Anchor<'_>>,
    registrations: &mut Vec<(RegistrationKey<'b>, RegistrationOutcome)>,
    r: &mut Report,
) -> (EventReport, Option<Checked>) {
    let failures_before = r.failures.len();
    let at = |field: &str| format!("events[{i}].{field}");

    let device_key = match ev.device_key.as_deref() {
        None => {
            r.fail(at("device_key"), "missing".into());
            None
        }
        Some(text) => match b64(text).map(|b| PublicKey::from_sec1_uncompressed(&b)) {
            None => {
                r.fail(at("device_key"), "not base64".into());
                None
            }
            Some(Err(e)) => {
                r.fail(at("device_key"), format!("not a P-256 key: {e}"));
                None
            }
            Some(Ok(k)) => Some(k),
        },
    };
    let message = match ev.cose.as_deref() {
        None => {
            r.fail(at("cose"), "missing".into());
            None
        }
        Some(text) => {
            let m = b64(text);
            if m.is_none() {
                r.fail(at("cose"), "not base64".into());
            }
            m
        }
    };

    // The registration record (each distinct one verified once).
    let mut registration = None;
    let mut registered = None;
    match &ev.registration {
        None => r.fail(at("registration"), "missing".into()),
        Some(entry) => {
            let memo_key = (
                entry.cose.as_deref().unwrap_or_default(),
                entry.leaf_index,
                entry.proof.as_deref().unwrap_or_default(),
            );
            // A linear search: bundles cite a handful of distinct registrations.
            let outcome = match registrations.iter().find(|(k, _)| *k == memo_key) {
                Some((_, o)) => o.clone(),
                None => {
                    let o = check_registration(entry, trust, anchor);
                    registrations.push((memo_key, o.clone()));
                    o
                }
            };
            for (field, error) in outcome.failures {
                r.fail(at(&format!("registration.{field}")), error);
            }
            if let Some((operator, record)) = outcome.record {
                match record {
                    RegistryRecord::Registration {
                        device,
                        key,
                        event_time,
                    } => {
                        registration = Some(RegistrationInfo {
                            leaf_index: entry.leaf_index,
                            operator: operator.to_string(),
                            registered_at: event_time.as_str().into(),
                            key_fingerprint: key.fingerprint().to_hex(),
                        });
                        registered = Some((device, key));
                    }
                    RegistryRecord::Revocation { .. } => r.fail(
                        at("registration.cose"),
                        "is a prov:DeviceRevocation, not a prov:DeviceRegistration".into(),
                    ),
                }
            }
            if let (Some(reg), Some(ev_leaf)) = (entry.leaf_index, ev.leaf_index)
                && reg >= ev_leaf
            {
                r.fail(
                    at("registration.leaf_index"),
                    format!(
                        "the registration (leaf {reg}) is not logged before the event (leaf {ev_leaf})"
                    ),
                );
            }
        }
    }
    if let (Some(dk), Some((_, reg_key))) = (&device_key, &registered)
        && dk != reg_key
    {
        r.fail(
            at("device_key"),
            "differs from the key in its registration record".into(),
        );
    }

    // The event itself, under its device_key (SPEC §6), or the registered key if the bundle's
    // is unreadable (so that one bad field does not hide the rest).
    let key = device_key.as_ref().or(registered.as_ref().map(|(_, k)| k));
    let mut report_event = None;
    let mut checked_event = None;
    if let Some(m) = &message {
        let outcome = key.map(|k| checked::verify_event(m, k, &P256Backend));
        match outcome {
            Some(Ok(c)) => {
                checked_event = Some(Checked {
                    device: *c.device(),
                    seq: c.seq(),
                    prev: c.prev(),
                    hash: c.hash(),
                });
                report_event = Some(c.event().clone());
            }
            Some(Err(e)) => r.fail(at("cose"), describe_event_error(&e)),
            None => r.fail(
                at("cose"),
                "no key to verify it with (no valid device_key or registration)".into(),
            ),
        }
        if report_event.is_none() {
            // For display only, flagged unverified.
            report_event = CoseSign1::parse(m)
                .ok()
                .and_then(|c| Event::decode_payload(c.payload()).ok());
        }
        // The registration must be the signing device's.
        if let (Ok(cose), Some((reg_device, _))) = (CoseSign1::parse(m), &registered)
            && let Kid::Device(signer) = cose.kid()
            && signer != reg_device
        {
            r.fail(
                at("registration.cose"),
                format!("registers device {reg_device}, not the event's device {signer}"),
            );
        }
    }
    for (field, error) in check_proof(
        ev.proof.as_deref(),
        ev.leaf_index,
        message.as_deref(),
        anchor,
    ) {
        r.fail(at(field), error);
    }

    let verified = r.failures.len() == failures_before;
    let mut out = EventReport {
        index: i,
        verified,
        leaf_index: ev.leaf_index,
        relation: None,
        via: None,
        registration,
        message_blake3: message.as_deref().map(|m| Hash32::blake3(m).to_hex()),
        event_type: None,
        event_time: None,
        event_time_zone_offset: None,
        action: None,
        biz_step: None,
        disposition: None,
        read_point: None,
        biz_location: None,
        device: None,
        seq: None,
        clock_synced: None,
        sensor_reports: Vec::new(),
        sensor_exception: false,
        event: None,
    };
    if let Some(e) = report_event {
        out.event_type = Some(e.event_type.as_str());
        out.event_time = Some(e.event_time.as_str().into());
        out.event_time_zone_offset = Some(e.event_time_zone_offset.as_str().into());
        out.action = e.action.map(|a| a.as_str());
        out.biz_step = e.biz_step.map(|b| b.as_str());
        out.disposition = e.disposition.map(|d| d.as_str());
        out.read_point = e.read_point.as_ref().map(|l| l.id.canonical());
        out.biz_location = e.biz_location.as_ref().map(|l| l.id.canonical());
        out.device = Some(e.device.as_str().into());
        out.seq = Some(e.seq);
        out.clock_synced = Some(e.clock_synced);
        out.sensor_reports = e
            .sensor_element_list
            .iter()
            .flat_map(|s| s.sensor_report.iter().cloned())
            .collect();
        out.sensor_exception = e.has_sensor_exception();
        out.event = Some(e);
    }
    (out, checked_event)
}

/// The first event of the bundle seen for one (device, seq).
struct SeqEntry {
    device: DeviceId,
    seq: u64,
    index: usize,
    hash: Hash32,
}

/// Events of one device must agree: one message per `prov:seq`, and consecutive seqs linked by
/// `prov:prev` (SPEC §2). The gateway refuses anything else, so a bundle showing it proves the
/// log (or the bundle) wrong.
fn check_device_chains(checked: &[Option<Checked>], r: &mut Report) {
    // (device, seq) → (first event, its hash); linear searches keep the module small, and
    // bundles are capped at a few hundred events.
    let mut by_seq: Vec<SeqEntry> = Vec::new();
    let find = |by_seq: &[SeqEntry], device: &DeviceId, seq: u64| {
        by_seq
            .iter()
            .find(|s| s.device == *device && s.seq == seq)
            .map(|s| (s.index, s.hash))
    };
    for (i, c) in checked.iter().enumerate() {
        let Some(c) = c else { continue };
        match find(&by_seq, &c.device, c.seq) {
            Some((j, hash)) if hash == c.hash => {
                r.warn(format!("events[{i}]"), format!("repeats events[{j}]"));
            }
            Some((j, _)) => {
                r.fail(
                    format!("events[{i}].cose"),
                    format!(
                        "equivocation: a second message for seq {} of device {} (first: events[{j}])",
                        c.seq, c.device
                    ),
                );
                unverify(r, i);
            }
            None => by_seq.push(SeqEntry {
                device: c.device,
                seq: c.seq,
                index: i,
                hash: c.hash,
            }),
        }
    }
    for (i, c) in checked.iter().enumerate() {
        let Some(c) = c else { continue };
        let Some(prev_seq) = c.seq.checked_sub(1) else {
            continue;
        };
        if let Some((j, hash)) = find(&by_seq, &c.device, prev_seq)
            && hash != c.prev
        {
            r.fail(
                format!("events[{i}].cose"),
                format!(
                    "prov:prev is not the hash of events[{j}], seq {prev_seq} of the same device"
                ),
            );
            unverify(r, i);
        }
    }
}

fn unverify(r: &mut Report, i: usize) {
    if let Some(e) = r.events.get_mut(i) {
        e.verified = false;
    }
}

/// Relates every event to the product; an event naming neither the product nor one of its
/// ancestors is a failure.
///
/// The links come from every decoded event, verified or not: a verdict of `verified` needs
/// every event verified anyway, and this way one bad aggregation event is one failure, not one
/// more for each event of the containers it linked. For the same reason, when an event could
/// not be decoded at all (the lineage is then incomplete, and the bundle already failed), an
/// unrelated event is left without a relation rather than reported.
fn check_lineage(product: &DigitalLink, r: &mut Report) {
    let complete = r.events.iter().all(|e| e.event.is_some());
    let lineage = {
        let decoded: Vec<&Event> = r.events.iter().filter_map(|e| e.event.as_ref()).collect();
        Lineage::derive(product, &decoded)
    };
    for lot in &lineage.lots_by_gtin_only {
        let error = format!(
            "lot {} is linked to the product by its GTIN only: no signed event states the product's lot",
            lot.canonical()
        );
        r.warnings.push(Failure {
            at: "product".into(),
            error,
        });
    }
    let mut failures = Vec::new();
    let mut warnings = Vec::new();
    for e in &mut r.events {
        let Some(event) = &e.event else { continue };
        match lineage.relation(event) {
            Some((link, via)) => {
                e.relation = Some(link.as_str());
                e.via = Some(via.canonical());
            }
            None if complete => {
                e.verified = false;
                failures.push(Failure {
                    at: format!("events[{}]", e.index),
                    error: "names neither the product nor one of its ancestors".into(),
                });
            }
            None => {}
        }
        for other in lineage.other_items(event) {
            warnings.push(Failure {
                at: format!("events[{}]", e.index),
                error: format!(
                    "discloses another item's serial ({}), against SPEC §2's disclosure rule",
                    other.canonical()
                ),
            });
        }
    }
    r.failures.extend(failures);
    r.warnings.extend(warnings);
}
