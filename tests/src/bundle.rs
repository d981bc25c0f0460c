//! Product provenance bundles (SPEC §6) for the browser's verifier: `bundle.json` and
//! `bundle-50.json` under `schemas/vectors/` (format in `schemas/vectors/README.md`).
//!
//! - `bundle.json`: the bundle of item ABC123 over the vector log of `log.json` (its own events,
//!   its case's and pallet's, and its lot's, each with its device's registration and tlog-proofs
//!   against the last checkpoint), the trust configuration that verifies it, and hand-picked
//!   invalid variants (as patches) with the failures each must produce.
//! - `bundle-50.json`: a bigger, synthetic 50-event bundle over a log of its own (origin
//!   `factory-a.example/line-logs/2`, with other items' events in between): for timing, and for
//!   the declared-lot and device-chain paths.
//!
//! Deterministic like every vector: RFC 6979 and Ed25519 signatures, fixed names and times.

use crate::vectors::{
    self, CASE, COLD_ROOM, DEVICES, DOCK, FACTORY, ITEM_1, ITEM_2, MILK_LOT_1, MILK_LOT_2,
    OPERATOR, PALLET, POWDER_LOT, SignedVector,
};
use anyhow::{Context, Result, anyhow, ensure};
use prov_ledger::checkpoint::Checkpoint;
use prov_ledger::hasher::Blake3Hasher;
use prov_ledger::merkle::MemoryTree;
use prov_ledger::note::NoteSigner;
use prov_ledger::tlog_proof::TlogProof;
use prov_schemas::Hash32;
use prov_schemas::cose::{self, CoseSign1};
use prov_schemas::event::{Event, EventType};
use prov_schemas::keys::Kid;
use prov_schemas::registry::RegistryRecord;
use serde_json::{Value as Json, json};

/// The origin (and gateway key name) of the synthetic log behind `bundle-50.json`.
pub const LARGE_ORIGIN: &str = "factory-a.example/line-logs/2";

/// RFC 4648 §4 base64 with padding (the tests crate has no base64 dependency of its own).
pub fn b64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A log: its entries in order, its tree and its gateway's signer.
struct Log {
    entries: Vec<Vec<u8>>,
    tree: MemoryTree<Blake3Hasher>,
    signer: NoteSigner,
}

impl Log {
    fn new(signer: NoteSigner) -> Log {
        Log {
            entries: Vec::new(),
            tree: MemoryTree::new(Blake3Hasher),
            signer,
        }
    }

    fn append(&mut self, entry: Vec<u8>) -> u64 {
        let index = self.tree.append_entry(&entry);
        self.entries.push(entry);
        index
    }

    fn index_of(&self, entry: &[u8]) -> Result<u64> {
        let i = self
            .entries
            .iter()
            .position(|e| e == entry)
            .context("entry not in the log")?;
        Ok(i as u64)
    }

    /// The signed checkpoint note of the tree at `size`.
    fn note(&self, size: u64) -> Result<String> {
        let cp = Checkpoint::new(self.signer.name(), size, self.tree.root_at(size)?)?;
        Ok(cp.sign(&self.signer)?.encode())
    }

    /// The tlog-proof of entry `index` against the signed checkpoint `note` of size `size`.
    fn proof(&self, index: u64, size: u64, note: &str) -> Result<String> {
        let hashes = self.tree.inclusion_proof(index, size)?;
        Ok(TlogProof::new(index, hashes, note.to_string())?.encode())
    }

    fn trust(&self) -> Result<Json> {
        let op = vectors::test_key(OPERATOR)?.public_key();
        Ok(json!({
            "gateway_key": self.signer.verifier_key()?.to_string(),
            "operator_keys": {OPERATOR: b64(&op.to_sec1_uncompressed())},
        }))
    }

    /// One bundle entry (SPEC §6): the event, its proof, its device key, and its registration
    /// (the latest registration of its device before it) with its proof, all against `note`.
    fn bundle_event(&self, message: &[u8], note: &str, size: u64) -> Result<Json> {
        let index = self.index_of(message)?;
        let kid = *CoseSign1::parse(message)?.kid();
        let device = kid.device().context("an event")?;
        let (reg_index, reg, key) = self.entries[..index as usize]
            .iter()
            .enumerate()
            .rev()
            .find_map(|(i, e)| {
                let payload = CoseSign1::parse(e).ok()?.payload().to_vec();
                match RegistryRecord::decode_payload(&payload).ok()? {
                    RegistryRecord::Registration { device: d, key, .. } if d == *device => {
                        Some((i as u64, e, key))
                    }
                    _ => None,
                }
            })
            .context("registration")?;
        Ok(json!({
            "cose": b64(message),
            "leaf_index": index,
            "proof": self.proof(index, size, note)?,
            "device_key": b64(&key.to_sec1_uncompressed()),
            "registration": {
                "cose": b64(reg),
                "leaf_index": reg_index,
                "proof": self.proof(reg_index, size, note)?,
            },
        }))
    }

    fn bundle(&self, product: &str, messages: &[&[u8]]) -> Result<Json> {
        let size = self.tree.size();
        let note = self.note(size)?;
        let events = messages
            .iter()
            .map(|m| self.bundle_event(m, &note, size))
            .collect::<Result<Vec<_>>>()?;
        Ok(json!({
            "product": product,
            "checkpoint": note,
            "gateway_key": self.signer.verifier_key()?.to_string(),
            "events": events,
        }))
    }
}

fn decode_event(message: &[u8]) -> Result<Event> {
    Ok(Event::decode_payload(CoseSign1::parse(message)?.payload())?)
}

/// What ABC123's bundle holds: every event naming it or an ancestor (case, pallet, its lot by
/// GTIN, the lot's inputs), except aggregations that pack another item (SPEC §2's disclosure
/// rule keeps those out of other products' bundles).
fn in_item_bundle(event: &Event) -> bool {
    let ancestors = [ITEM_1, CASE, PALLET, POWDER_LOT, MILK_LOT_1, MILK_LOT_2];
    let names_lineage = event
        .identifiers()
        .iter()
        .any(|id| ancestors.contains(&id.canonical().as_str()));
    let other_item = event.event_type == EventType::Aggregation
        && event
            .child_epcs
            .iter()
            .any(|c| c.canonical() != ITEM_1 && c.canonical().contains("/21/"));
    names_lineage && !other_item
}

/// The vector log of `log.json`, rebuilt.
fn vector_log(registry: &[SignedVector], events: &[SignedVector]) -> Result<Log> {
    let mut log = Log::new(vectors::gateway_signer()?);
    for v in registry.iter().chain(events) {
        log.append(v.message.clone());
    }
    Ok(log)
}

/// A patch of an invalid case: set the value at a JSON path of the bundle, or replace a text
/// everywhere in the bundle's strings.
fn set(path: Json, value: Json) -> Json {
    json!({"op": "set", "path": path, "value": value})
}

fn replace_all(from: &str, to: &str) -> Json {
    json!({"op": "replace_all", "from": from, "to": to})
}

/// Flips one bit of a base64 text's decoded bytes at `at` (from the end if negative).
fn flip_b64(text: &str, at: isize) -> Result<String> {
    let mut bytes = b64_decode(text)?;
    let i = if at < 0 {
        bytes.len() as isize + at
    } else {
        at
    } as usize;
    *bytes.get_mut(i).context("flip position")? ^= 0x01;
    Ok(b64(&bytes))
}

fn b64_decode(text: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for c in text.bytes().filter(|&c| c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return Err(anyhow!("not base64")),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Ok(out)
}

/// The hand-picked invalid variants of ABC123's bundle: `(name, patches, expected failures as
/// (at, start of the error))`.
fn invalid_cases(log: &Log, bundle: &Json, registry: &[SignedVector]) -> Result<Vec<Json>> {
    let ev = |i: usize, field: &str| -> Result<String> {
        bundle["events"][i][field]
            .as_str()
            .map(String::from)
            .context("bundle field")
    };
    let note = bundle["checkpoint"].as_str().context("checkpoint")?;
    let size = log.tree.size();
    let mut cases = Vec::new();
    let mut case = |name: &str, patches: Vec<Json>, failures: &[(&str, &str)]| {
        let failures: Vec<Json> = failures
            .iter()
            .map(|(at, error)| json!({"at": at, "error": error}))
            .collect();
        cases.push(json!({"name": name, "patches": patches, "failures": failures}));
    };

    case(
        "event-bad-signature",
        vec![set(
            json!(["events", 1, "cose"]),
            json!(flip_b64(&ev(1, "cose")?, -33)?),
        )],
        &[
            ("events[1].cose", "bad signature"),
            (
                "events[1].proof",
                "inclusion proof does not match the checkpoint root",
            ),
        ],
    );
    // Flip a bit in the first proof hash (line 3 of the proof text).
    let proof = ev(2, "proof")?;
    let mut lines: Vec<String> = proof.split('\n').map(String::from).collect();
    lines[2] = flip_b64(&lines[2], 0)?;
    case(
        "event-proof-hash-modified",
        vec![set(json!(["events", 2, "proof"]), json!(lines.join("\n")))],
        &[(
            "events[2].proof",
            "inclusion proof does not match the checkpoint root",
        )],
    );
    // The same checkpoint body signed by another key, everywhere (bundle and proofs), and the
    // bundle naming that key as its gateway_key: the pinned key still decides.
    let impostor = NoteSigner::from_seed(vectors::ORIGIN, &[7u8; 32])?;
    let forged = Checkpoint::new(vectors::ORIGIN, size, log.tree.root_at(size)?)?
        .sign(&impostor)?
        .encode();
    case(
        "checkpoint-signed-by-another-key",
        vec![
            replace_all(note, &forged),
            set(
                json!(["gateway_key"]),
                json!(impostor.verifier_key()?.to_string()),
            ),
        ],
        &[("checkpoint", "not signed by the trusted gateway key")],
    );
    // A valid proof, but against an older (validly signed) checkpoint.
    let old_size = size - 1;
    let old_note = log.note(old_size)?;
    let index = bundle["events"][3]["leaf_index"]
        .as_u64()
        .context("leaf_index")?;
    case(
        "event-proof-against-another-checkpoint",
        vec![set(
            json!(["events", 3, "proof"]),
            json!(log.proof(index, old_size, &old_note)?),
        )],
        &[(
            "events[3].proof",
            "embedded checkpoint is not byte-identical to the bundle's checkpoint",
        )],
    );
    case(
        "event-leaf-index-differs-from-proof",
        vec![set(json!(["events", 0, "leaf_index"]), json!(index))],
        &[("events[0].proof", "index ")],
    );
    let other_key = vectors::test_key(DEVICES[0])?.public_key();
    case(
        "event-device-key-not-the-registered-one",
        vec![set(
            json!(["events", 1, "device_key"]),
            json!(b64(&other_key.to_sec1_uncompressed())),
        )],
        &[
            (
                "events[1].device_key",
                "differs from the key in its registration record",
            ),
            ("events[1].cose", "bad signature"),
        ],
    );
    // Event 1's registration replaced by event 0's (another device's, itself valid).
    case(
        "registration-of-another-device",
        vec![set(
            json!(["events", 1, "registration"]),
            bundle["events"][0]["registration"].clone(),
        )],
        &[
            (
                "events[1].device_key",
                "differs from the key in its registration record",
            ),
            ("events[1].registration.cose", "registers device "),
        ],
    );
    // A registration signed by an operator the page does not trust (and so not in the log).
    let reg_payload = CoseSign1::parse(&registry[1].message)?.payload().to_vec();
    let rogue = "operator:rogue";
    let rogue_msg =
        cose::sign_message(&Kid::new(rogue)?, &reg_payload, &vectors::test_key(rogue)?)?;
    case(
        "registration-by-untrusted-operator",
        vec![set(
            json!(["events", 1, "registration", "cose"]),
            json!(b64(&rogue_msg)),
        )],
        &[
            (
                "events[1].registration.cose",
                "operator rogue is not a trusted operator",
            ),
            (
                "events[1].registration.proof",
                "inclusion proof does not match the checkpoint root",
            ),
        ],
    );
    // The revocation entry (leaf 8, in the log, validly signed) cited as a registration.
    let revocation = &registry.last().context("registry")?.message;
    let rev_index = log.index_of(revocation)?;
    case(
        "registration-is-a-revocation",
        vec![set(
            json!(["events", 1, "registration"]),
            json!({"cose": b64(revocation), "leaf_index": rev_index,
                   "proof": log.proof(rev_index, size, note)?}),
        )],
        &[(
            "events[1].registration.cose",
            "is a prov:DeviceRevocation, not a prov:DeviceRegistration",
        )],
    );
    case(
        "product-not-canonical",
        vec![set(
            json!(["product"]),
            json!("https://example.com/01/09506000134352/21/ABC123"),
        )],
        &[("product", "not a canonical Digital Link")],
    );
    // Another item's commissioning (valid, in the log) slipped into the bundle.
    let item2 = log
        .entries
        .iter()
        .find(|e| {
            decode_event(e).is_ok_and(|ev| ev.epc_list.iter().any(|id| id.canonical() == ITEM_2))
        })
        .context("ITEM_2's commissioning")?;
    let n = bundle["events"].as_array().context("events")?.len();
    case(
        "event-of-another-product",
        vec![set(
            json!(["events", n]),
            log.bundle_event(item2, note, size)?,
        )],
        &[(
            &format!("events[{n}]"),
            "names neither the product nor one of its ancestors",
        )],
    );
    case(
        "event-proof-missing",
        vec![set(json!(["events", 0, "proof"]), Json::Null)],
        &[("events[0].proof", "missing")],
    );
    Ok(cases)
}

/// `bundle.json`.
pub fn bundle_json(registry: &[SignedVector], events: &[SignedVector]) -> Result<Json> {
    let log = vector_log(registry, events)?;
    let mut messages: Vec<&[u8]> = Vec::new();
    for v in events {
        if in_item_bundle(&decode_event(&v.message)?) {
            messages.push(&v.message);
        }
    }
    ensure!(
        messages.len() == 8,
        "ABC123's bundle has {}",
        messages.len()
    );
    let bundle = log.bundle(ITEM_1, &messages)?;
    let invalid = invalid_cases(&log, &bundle, registry)?;
    Ok(json!({
        "trust": log.trust()?,
        "bundle": bundle,
        "invalid": invalid,
    }))
}

/// The GS1 mod-10 check digit of `body` (digits).
fn check_digit(body: &str) -> char {
    let sum: u32 = body
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| u32::from(b - b'0') * if i % 2 == 0 { 3 } else { 1 })
        .sum();
    char::from(b'0' + ((10 - sum % 10) % 10) as u8)
}

fn sscc(body17: &str) -> String {
    format!("https://id.gs1.org/00/{body17}{}", check_digit(body17))
}

/// Signs `payload` (an event's JSON form without the `prov:` chain fields) as `device`,
/// continuing its chain in `chains`.
fn sign_event(
    chains: &mut Vec<(String, u64, Hash32)>,
    device: &str,
    mut payload: Json,
) -> Result<Vec<u8>> {
    let pos = chains.iter().position(|(d, _, _)| d == device);
    let (seq, prev) = pos.map_or((0, Hash32::ZERO), |p| (chains[p].1, chains[p].2));
    let obj = payload.as_object_mut().context("payload")?;
    obj.insert("prov:device".into(), json!(device));
    obj.insert("prov:seq".into(), json!(seq + 1));
    obj.insert("prov:prev".into(), json!(prev.to_hex()));
    let event: Event = serde_json::from_value(payload)?;
    let message = cose::sign_message(
        &Kid::new(device)?,
        &event.encode_payload(),
        &vectors::test_key(device)?,
    )?;
    let link = (device.to_string(), seq + 1, Hash32::blake3(&message));
    match pos {
        Some(p) => chains[p] = link,
        None => chains.push(link),
    }
    Ok(message)
}

fn registration(device: &str, minute: usize) -> Result<Vec<u8>> {
    let key = vectors::test_key(device)?.public_key();
    let record: RegistryRecord = serde_json::from_value(json!({
        "type": "prov:DeviceRegistration",
        "prov:device": device,
        "prov:key": hex::encode(key.to_sec1_uncompressed()),
        "eventTime": format!("2026-12-01T05:{minute:02}:00.000Z"),
    }))?;
    Ok(cose::sign_message(
        &Kid::new(OPERATOR)?,
        &record.encode_payload(),
        &vectors::test_key(OPERATOR)?,
    )?)
}

fn time(minutes: u64) -> String {
    format!(
        "2026-12-01T{:02}:{:02}:00.000Z",
        6 + minutes / 60,
        minutes % 60
    )
}

/// `bundle-50.json`: item SYN0001's 50 events (its lot's transformation, its commissioning
/// with its declared lot, packing, palletising, 42 cold-room readings with one excursion,
/// shipping, an order, the pallet's arrival and the case's unpacking) in a log where 60 other
/// items' events sit between them.
pub fn large_bundle_json() -> Result<Json> {
    let gtin = "09506000134352";
    let product = format!("https://id.gs1.org/01/{gtin}/21/SYN0001");
    let lot = format!("https://id.gs1.org/01/{gtin}/10/PWD-2612");
    let milk = "https://id.gs1.org/01/09506000134369/10/MILK-0420";
    let case = sscc("10614141234567920");
    let pallet = sscc("10614141234567930");
    let devices = [
        "dryer-transform",
        "line1-commission",
        "line1-packer",
        "line1-palletizer",
        "coldroom-sensor",
        "dock-shipper",
    ];
    let mut log = Log::new(NoteSigner::from_seed(
        LARGE_ORIGIN,
        &vectors::test_secret(LARGE_ORIGIN),
    )?);
    for (i, d) in devices.iter().enumerate() {
        log.append(registration(d, i)?);
    }
    let mut chains = Vec::new();
    let mut mine: Vec<Vec<u8>> = Vec::new();
    let mut add = |log: &mut Log, message: Vec<u8>, in_bundle: bool| {
        if in_bundle {
            mine.push(message.clone());
        }
        log.append(message);
    };
    let base = |t: u64, extra: Json| -> Json {
        let mut p = json!({"eventTime": time(t), "eventTimeZoneOffset": "+01:00"});
        if let (Some(p), Some(e)) = (p.as_object_mut(), extra.as_object()) {
            p.extend(e.clone());
        }
        p
    };
    let t = sign_event(
        &mut chains,
        "dryer-transform",
        base(
            0,
            json!({"type": "TransformationEvent",
                "inputQuantityList": [{"epcClass": milk, "quantity": 1800.0, "uom": "KGM"}],
                "outputQuantityList": [{"epcClass": lot, "quantity": 1250.5, "uom": "KGM"}],
                "bizStep": "commissioning", "disposition": "active", "readPoint": {"id": FACTORY}}),
        ),
    )?;
    add(&mut log, t, true);
    // SYN0001 and 60 other items are commissioned and packed; only SYN0001's go in.
    for n in 1..=61u64 {
        let item = format!("https://id.gs1.org/01/{gtin}/21/SYN{n:04}");
        let m = sign_event(
            &mut chains,
            "line1-commission",
            base(
                10 + n / 10,
                json!({"type": "ObjectEvent", "action": "ADD", "epcList": [item],
                    "bizStep": "commissioning", "disposition": "active",
                    "readPoint": {"id": FACTORY}, "ilmd": {"cbvmda:lotNumber": "PWD-2612"}}),
            ),
        )?;
        add(&mut log, m, n == 1);
        let parent = if n == 1 {
            case.clone()
        } else {
            sscc(&format!("106141412345{:05}", 68000 + n / 6))
        };
        let m = sign_event(
            &mut chains,
            "line1-packer",
            base(
                20 + n / 10,
                json!({"type": "AggregationEvent", "action": "ADD", "parentID": parent,
                    "childEPCs": [item], "bizStep": "packing", "disposition": "in_progress",
                    "readPoint": {"id": FACTORY}}),
            ),
        )?;
        add(&mut log, m, n == 1);
    }
    let m = sign_event(
        &mut chains,
        "line1-palletizer",
        base(
            40,
            json!({"type": "AggregationEvent", "action": "ADD", "parentID": pallet,
                "childEPCs": [case], "bizStep": "packing", "disposition": "in_progress",
                "readPoint": {"id": FACTORY}}),
        ),
    )?;
    add(&mut log, m, true);
    for r in 0..42u64 {
        let celsius = if r == 17 {
            8.5
        } else {
            3.0 + (r % 5) as f64 * 0.25
        };
        let mut report = json!({"type": "Temperature", "value": celsius, "uom": "CEL"});
        if r == 17 {
            report["exception"] = json!("ALARM_CONDITION");
        }
        let m = sign_event(
            &mut chains,
            "coldroom-sensor",
            base(
                60 + r * 15,
                json!({"type": "ObjectEvent", "action": "OBSERVE", "epcList": [pallet],
                    "bizStep": "sensor_reporting", "readPoint": {"id": COLD_ROOM},
                    "sensorElementList": [{"sensorMetadata": {"time": time(60 + r * 15)},
                                           "sensorReport": [report]}]}),
            ),
        )?;
        add(&mut log, m, true);
    }
    let tail = [
        json!({"type": "ObjectEvent", "action": "OBSERVE", "epcList": [pallet],
            "bizStep": "shipping", "disposition": "in_transit", "readPoint": {"id": DOCK}}),
        json!({"type": "TransactionEvent", "action": "ADD", "parentID": pallet,
            "epcList": [case], "bizStep": "shipping", "disposition": "in_transit",
            "bizTransactionList": [{"type": "po",
                "bizTransaction": "urn:epcglobal:cbv:bt:9506000134376:PO-4712"}]}),
        json!({"type": "ObjectEvent", "action": "OBSERVE", "epcList": [pallet],
            "bizStep": "receiving", "disposition": "in_progress", "readPoint": {"id": DOCK}}),
        json!({"type": "AggregationEvent", "action": "DELETE", "parentID": pallet,
            "childEPCs": [case], "bizStep": "unpacking", "disposition": "in_progress",
            "readPoint": {"id": DOCK}}),
    ];
    for (k, payload) in tail.into_iter().enumerate() {
        let m = sign_event(
            &mut chains,
            "dock-shipper",
            base(720 + k as u64 * 5, payload),
        )?;
        add(&mut log, m, true);
    }
    let messages: Vec<&[u8]> = mine.iter().map(Vec::as_slice).collect();
    ensure!(
        messages.len() == 50,
        "SYN0001's bundle has {}",
        messages.len()
    );
    Ok(json!({
        "trust": log.trust()?,
        "bundle": log.bundle(&product, &messages)?,
    }))
}
