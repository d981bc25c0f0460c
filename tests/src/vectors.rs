//! The generator of the shared test vectors (`schemas/vectors/*.json`).
//!
//! Everything is derived from fixed names, so every run writes the same bytes; the committed files
//! are checked against a fresh run by `tests/tests/vectors.rs`, and rebuilt byte for byte by the
//! independent Python encoder in `tests/python/`. The format is `schemas/vectors/README.md`.

use anyhow::{Context, Result};
use prov_ledger::chain::ChainBlock;
use prov_ledger::checkpoint::Checkpoint;
use prov_ledger::hasher::Blake3Hasher;
use prov_ledger::merkle::MemoryTree;
use prov_ledger::note::NoteSigner;
use prov_ledger::tlog_proof::TlogProof;
use prov_schemas::Hash32;
use prov_schemas::cose::{self, CoseSign1};
use prov_schemas::event::Event;
use prov_schemas::keys::{Kid, SecretKey};
use prov_schemas::registry::RegistryRecord;
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;

/// The checkpoint origin (and gateway key name) of the vector log.
pub const ORIGIN: &str = "factory-a.example/line-logs/1";
/// The operator kid that signs the vector registry records.
pub const OPERATOR: &str = "operator:factory-a";
/// The prefix of every test key derivation (schemas/vectors/README.md).
pub const TEST_KEY_PREFIX: &[u8] = b"prov test key v1:";

pub(crate) const ITEM_1: &str = "https://id.gs1.org/01/09506000134352/21/ABC123";
pub(crate) const ITEM_2: &str = "https://id.gs1.org/01/09506000134352/21/ABC124";
const LOGGER: &str = "https://id.gs1.org/01/09506000134376/21/LOGGER-7";
pub(crate) const MILK_LOT_1: &str = "https://id.gs1.org/01/09506000134369/10/MILK-0412";
pub(crate) const MILK_LOT_2: &str = "https://id.gs1.org/01/09506000134369/10/MILK-0413";
pub(crate) const POWDER_LOT: &str = "https://id.gs1.org/01/09506000134352/10/PWD-2611";
pub(crate) const CASE: &str = "https://id.gs1.org/00/106141412345678908";
pub(crate) const PALLET: &str = "https://id.gs1.org/00/106141412345678915";
pub(crate) const FACTORY: &str = "https://id.gs1.org/414/9506000134376";
pub(crate) const COLD_ROOM: &str = "https://id.gs1.org/414/9506000134383";
pub(crate) const DOCK: &str = "https://id.gs1.org/414/9506000134390";

/// Devices in registration order; the last one is registered, then revoked, and never signs.
pub const DEVICES: &[&str] = &[
    "dryer-transform",
    "line1-commission",
    "line1-packer",
    "line1-palletizer",
    "coldroom-sensor",
    "dock-shipper",
    "line1-assoc",
    "retired-scanner",
];

/// The event payloads, without the `prov:` fields the generator adds (device, seq, prev), in log
/// order: `(vector name, signing device, payload)`.
fn event_inputs() -> Vec<(&'static str, &'static str, Json)> {
    vec![
        (
            "transformation-milk-to-powder",
            "dryer-transform",
            json!({
                "type": "TransformationEvent",
                "eventTime": "2026-11-24T07:30:00.000Z",
                "eventTimeZoneOffset": "+01:00",
                "inputQuantityList": [
                    {"epcClass": MILK_LOT_1, "quantity": 1500.5, "uom": "KGM"},
                    {"epcClass": MILK_LOT_2, "quantity": 1200.0, "uom": "KGM"}
                ],
                "outputQuantityList": [
                    {"epcClass": POWDER_LOT, "quantity": 2100.25, "uom": "KGM"}
                ],
                "bizStep": "commissioning",
                "disposition": "active",
                "readPoint": {"id": FACTORY},
                "ilmd": {"cbvmda:bestBeforeDate": "2028-11-24", "cbvmda:countryOfOrigin": "NZ"}
            }),
        ),
        (
            "object-commissioning",
            "line1-commission",
            json!({
                "type": "ObjectEvent",
                "eventTime": "2026-11-24T08:00:00.000Z",
                "eventTimeZoneOffset": "+01:00",
                "action": "ADD",
                "epcList": [ITEM_1],
                "bizStep": "commissioning",
                "disposition": "active",
                "readPoint": {"id": FACTORY},
                "bizLocation": {"id": FACTORY}
            }),
        ),
        (
            "object-commissioning-clock-unsynced",
            "line1-commission",
            json!({
                "type": "ObjectEvent",
                "eventTime": "1970-01-01T00:02:13.250Z",
                "eventTimeZoneOffset": "+01:00",
                "action": "ADD",
                "epcList": [ITEM_2],
                "bizStep": "commissioning",
                "disposition": "active",
                "readPoint": {"id": FACTORY},
                "prov:clockSynced": false
            }),
        ),
        (
            "aggregation-item-into-case",
            "line1-packer",
            json!({
                "type": "AggregationEvent",
                "eventTime": "2026-11-24T08:05:00.000Z",
                "eventTimeZoneOffset": "+01:00",
                "action": "ADD",
                "parentID": CASE,
                "childEPCs": [ITEM_1],
                "bizStep": "packing",
                "disposition": "in_progress",
                "readPoint": {"id": FACTORY}
            }),
        ),
        (
            "aggregation-second-item-into-case",
            "line1-packer",
            json!({
                "type": "AggregationEvent",
                "eventTime": "2026-11-24T08:05:01.500Z",
                "eventTimeZoneOffset": "+01:00",
                "action": "ADD",
                "parentID": CASE,
                "childEPCs": [ITEM_2],
                "bizStep": "packing",
                "disposition": "in_progress",
                "readPoint": {"id": FACTORY}
            }),
        ),
        (
            "aggregation-case-onto-pallet",
            "line1-palletizer",
            json!({
                "type": "AggregationEvent",
                "eventTime": "2026-11-24T08:20:00.000Z",
                "eventTimeZoneOffset": "+01:00",
                "action": "ADD",
                "parentID": PALLET,
                "childEPCs": [CASE],
                "bizStep": "packing",
                "disposition": "in_progress",
                "readPoint": {"id": FACTORY}
            }),
        ),
        (
            "object-sensor-report-excursion",
            "coldroom-sensor",
            json!({
                "type": "ObjectEvent",
                "eventTime": "2026-11-24T09:00:00.000Z",
                "eventTimeZoneOffset": "+01:00",
                "action": "OBSERVE",
                "epcList": [PALLET],
                "bizStep": "sensor_reporting",
                "readPoint": {"id": COLD_ROOM},
                "sensorElementList": [{
                    "sensorMetadata": {"time": "2026-11-24T09:00:00.000Z"},
                    "sensorReport": [
                        {"type": "Temperature", "value": 9.5, "uom": "CEL",
                         "exception": "ALARM_CONDITION"},
                        {"type": "RelativeHumidity", "value": 41.25, "uom": "A93"}
                    ]
                }]
            }),
        ),
        (
            "association-logger-with-pallet",
            "line1-assoc",
            json!({
                "type": "AssociationEvent",
                "eventTime": "2026-11-24T09:10:00.000Z",
                "eventTimeZoneOffset": "+01:00",
                "action": "ADD",
                "parentID": PALLET,
                "childEPCs": [LOGGER],
                "bizStep": "assembling",
                "readPoint": {"id": FACTORY}
            }),
        ),
        (
            "object-shipping",
            "dock-shipper",
            json!({
                "type": "ObjectEvent",
                "eventTime": "2026-11-24T10:00:00.000Z",
                "eventTimeZoneOffset": "+01:00",
                "action": "OBSERVE",
                "epcList": [PALLET],
                "bizStep": "shipping",
                "disposition": "in_transit",
                "readPoint": {"id": DOCK},
                "bizTransactionList": [
                    {"type": "po", "bizTransaction": "urn:epcglobal:cbv:bt:9506000134376:PO-4711"}
                ],
                "sourceList": [{"type": "owning_party", "source": FACTORY}],
                "destinationList": [{"type": "owning_party", "destination": DOCK}]
            }),
        ),
        (
            "transaction-pallet-on-order",
            "dock-shipper",
            json!({
                "type": "TransactionEvent",
                "eventTime": "2026-11-24T10:00:00.500Z",
                "eventTimeZoneOffset": "+01:00",
                "action": "ADD",
                "parentID": PALLET,
                "epcList": [CASE],
                "bizStep": "shipping",
                "disposition": "in_transit",
                "bizTransactionList": [
                    {"type": "po", "bizTransaction": "urn:epcglobal:cbv:bt:9506000134376:PO-4711"}
                ]
            }),
        ),
    ]
}

/// One signed message of `events.json` / `registry.json`, with everything an outsider needs to
/// rebuild it.
pub struct SignedVector {
    /// Vector name.
    pub name: String,
    /// The COSE kid (device id or `operator:{name}`).
    pub kid: String,
    /// The payload's JSON form.
    pub payload: Json,
    /// The whole COSE_Sign1 message.
    pub message: Vec<u8>,
}

impl SignedVector {
    fn to_json(&self) -> Result<Json> {
        let parsed = CoseSign1::parse(&self.message).context("own message must parse")?;
        Ok(json!({
            "name": self.name,
            "kid": self.kid,
            "payload": self.payload,
            "payload_cbor_hex": hex::encode(parsed.payload()),
            "protected_hex": hex::encode(parsed.protected()),
            "sig_structure_hex": hex::encode(parsed.sig_structure()),
            "message_hex": hex::encode(&self.message),
            "message_blake3_hex": Hash32::blake3(&self.message).to_hex(),
        }))
    }
}

/// The secret key of a test signer (`BLAKE3(prefix || name)` as a big-endian scalar).
pub fn test_key(name: &str) -> Result<SecretKey> {
    SecretKey::test_key(name).with_context(|| format!("test key for {name}"))
}

/// `BLAKE3("prov test key v1:" || name)`: a test signer's P-256 scalar or Ed25519 seed.
pub fn test_secret(name: &str) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(TEST_KEY_PREFIX);
    h.update(name.as_bytes());
    *h.finalize().as_bytes()
}

/// The Ed25519 seed of the vector log's gateway key.
pub fn gateway_seed() -> [u8; 32] {
    test_secret(ORIGIN)
}

/// The gateway's note signer for the vector log.
pub fn gateway_signer() -> Result<NoteSigner> {
    NoteSigner::from_seed(ORIGIN, &gateway_seed()).context("gateway note signer")
}

fn sign(name: &str, kid: &str, payload_cbor: &[u8], payload: Json) -> Result<SignedVector> {
    let kid_parsed = Kid::new(kid).with_context(|| format!("kid {kid}"))?;
    let message = cose::sign_message(&kid_parsed, payload_cbor, &test_key(kid)?)
        .with_context(|| format!("signing {name}"))?;
    Ok(SignedVector {
        name: name.to_string(),
        kid: kid.to_string(),
        payload,
        message,
    })
}

/// The registry records: every device registered, then the last one revoked.
pub fn registry_vectors() -> Result<Vec<SignedVector>> {
    let mut out = Vec::new();
    for (i, device) in DEVICES.iter().enumerate() {
        let key = test_key(device)?.public_key();
        let payload = json!({
            "type": "prov:DeviceRegistration",
            "prov:device": device,
            "prov:key": hex::encode(key.to_sec1_uncompressed()),
            "eventTime": format!("2026-11-24T06:{:02}:00.000Z", i),
        });
        out.push(registry_vector(&format!("registration-{device}"), payload)?);
    }
    let retired = DEVICES[DEVICES.len() - 1];
    let payload = json!({
        "type": "prov:DeviceRevocation",
        "prov:device": retired,
        "eventTime": "2026-11-24T06:59:00.000Z",
    });
    out.push(registry_vector(&format!("revocation-{retired}"), payload)?);
    Ok(out)
}

fn registry_vector(name: &str, payload: Json) -> Result<SignedVector> {
    let record: RegistryRecord =
        serde_json::from_value(payload).with_context(|| format!("registry record {name}"))?;
    // The JSON we publish is what the model serialises, so the vector shows the canonical form.
    let payload_cbor = record.encode_payload();
    let json = serde_json::to_value(record)?;
    sign(name, OPERATOR, &payload_cbor, json)
}

/// The events, each device's chain linked by `prov:seq` and `prov:prev`.
pub fn event_vectors() -> Result<Vec<SignedVector>> {
    let mut last: BTreeMap<&str, (u64, Hash32)> = BTreeMap::new();
    let mut out = Vec::new();
    for (name, device, mut payload) in event_inputs() {
        let (seq, prev) = last.get(device).copied().unwrap_or((0, Hash32::ZERO));
        let obj = payload.as_object_mut().context("payload is an object")?;
        obj.insert("prov:device".into(), json!(device));
        obj.insert("prov:seq".into(), json!(seq + 1));
        obj.insert("prov:prev".into(), json!(prev.to_hex()));
        let event: Event =
            serde_json::from_value(payload).with_context(|| format!("event {name}"))?;
        let json = serde_json::to_value(&event)?;
        let v = sign(name, device, &event.encode_payload(), json)?;
        last.insert(device, (seq + 1, Hash32::blake3(&v.message)));
        out.push(v);
    }
    Ok(out)
}

fn keys_json() -> Result<Json> {
    let mut devices = Vec::new();
    for device in DEVICES {
        let key = test_key(device)?;
        let public = key.public_key();
        devices.push(json!({
            "device_id": device,
            "secret_hex": hex::encode(test_secret(device)),
            "public_sec1_hex": hex::encode(public.to_sec1_uncompressed()),
            "fingerprint_hex": public.fingerprint().to_hex(),
        }));
    }
    let op = test_key(OPERATOR)?;
    let gw = gateway_signer()?;
    let vkey = gw.verifier_key().context("gateway verifier key")?;
    Ok(json!({
        "devices": devices,
        "operator": {
            "kid": OPERATOR,
            "secret_hex": hex::encode(test_secret(OPERATOR)),
            "public_sec1_hex": hex::encode(op.public_key().to_sec1_uncompressed()),
        },
        "gateway": {
            "origin": ORIGIN,
            "seed_hex": hex::encode(gateway_seed()),
            "public_hex": hex::encode(vkey.public_key()),
            "key_id_hex": hex::encode(vkey.key_id().0),
            "verifier_key": vkey.to_string(),
        },
    }))
}

/// Sizes at which the vector log signs a checkpoint (one chain block each).
fn checkpoint_sizes(registry: usize, total: usize) -> Vec<u64> {
    vec![registry as u64, (registry + 5) as u64, total as u64]
}

fn log_json(registry: &[SignedVector], events: &[SignedVector]) -> Result<Json> {
    let entries: Vec<&[u8]> = registry
        .iter()
        .chain(events)
        .map(|v| v.message.as_slice())
        .collect();
    let h = Blake3Hasher;
    let mut tree = MemoryTree::new(h);
    for e in &entries {
        tree.append_entry(e);
    }
    let signer = gateway_signer()?;
    let sizes = checkpoint_sizes(registry.len(), entries.len());
    let mut checkpoints = Vec::new();
    let mut chain = Vec::new();
    let mut prev_block: Option<(ChainBlock, u64)> = None;
    let mut last_note = String::new();
    for &size in &sizes {
        let root = tree.root_at(size).context("root")?;
        let cp = Checkpoint::new(ORIGIN, size, root).context("checkpoint")?;
        let note = cp.sign(&signer).context("sign checkpoint")?.encode();
        let block = match &prev_block {
            None => ChainBlock::genesis(note.clone()),
            Some((prev, prev_size)) => {
                let proof = tree
                    .consistency_proof(*prev_size, size)
                    .context("consistency")?;
                ChainBlock::next(prev, note.clone(), proof).context("chain block")?
            }
        };
        let bytes = block.encode();
        checkpoints.push(json!({
            "size": size,
            "root_hex": root.to_hex(),
            "body": cp.body(),
            "note": note,
        }));
        chain.push(json!({
            "block_hex": hex::encode(&bytes),
            "block_hash_hex": Hash32::blake3(&bytes).to_hex(),
        }));
        prev_block = Some((block, size));
        last_note = note;
    }
    let final_size = entries.len() as u64;
    let mut inclusion = Vec::new();
    for index in 0..final_size {
        let proof = tree
            .inclusion_proof(index, final_size)
            .context("inclusion")?;
        let text = TlogProof::new(index, proof.clone(), last_note.clone())
            .context("tlog-proof")?
            .encode();
        inclusion.push(json!({
            "index": index,
            "size": final_size,
            "proof_hex": proof.iter().map(Hash32::to_hex).collect::<Vec<_>>(),
            "tlog_proof": text,
        }));
    }
    // A few proofs against an older tree size too, so the vectors are not all one shape.
    for (index, size) in [(0u64, 1u64), (2, 3), (5, 9), (8, 14)] {
        let proof = tree.inclusion_proof(index, size).context("inclusion")?;
        inclusion.push(json!({
            "index": index,
            "size": size,
            "proof_hex": proof.iter().map(Hash32::to_hex).collect::<Vec<_>>(),
        }));
    }
    let mut consistency = Vec::new();
    for size2 in 2..=final_size {
        for size1 in [1, size2 / 2, size2 - 1] {
            if size1 == 0 || size1 >= size2 {
                continue;
            }
            let proof = tree
                .consistency_proof(size1, size2)
                .context("consistency")?;
            consistency.push(json!({
                "size1": size1,
                "size2": size2,
                "proof_hex": proof.iter().map(Hash32::to_hex).collect::<Vec<_>>(),
            }));
        }
    }
    consistency.dedup();
    Ok(json!({
        "origin": ORIGIN,
        "entries_hex": entries.iter().map(hex::encode).collect::<Vec<_>>(),
        "leaf_hashes_hex": (0..final_size)
            .map(|i| tree.leaf_hash(i).map(|h| h.to_hex()))
            .collect::<Option<Vec<_>>>()
            .context("leaf hashes")?,
        "checkpoints": checkpoints,
        "inclusion": inclusion,
        "consistency": consistency,
        "chain": chain,
    }))
}

/// Every vector file: `(file name, contents)`, pretty JSON with a final newline.
pub fn generate() -> Result<Vec<(&'static str, String)>> {
    let registry = registry_vectors()?;
    let events = event_vectors()?;
    let messages = |v: &[SignedVector]| -> Result<Json> {
        Ok(json!({"messages": v.iter().map(SignedVector::to_json).collect::<Result<Vec<_>>>()?}))
    };
    let files = vec![
        ("keys.json", keys_json()?),
        ("registry.json", messages(&registry)?),
        ("events.json", messages(&events)?),
        ("log.json", log_json(&registry, &events)?),
        (
            "invalid.json",
            crate::invalid::invalid_json(&registry, &events)?,
        ),
        (
            "bundle.json",
            crate::bundle::bundle_json(&registry, &events)?,
        ),
        ("bundle-50.json", crate::bundle::large_bundle_json()?),
    ];
    files
        .into_iter()
        .map(|(name, json)| Ok((name, serde_json::to_string_pretty(&json)? + "\n")))
        .collect()
}
