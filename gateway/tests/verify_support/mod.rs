//! Builders shared by the gateway's verify and index tests: signed events and registry records
//! from test keys, and a small in-memory "gateway" (verify step + log + state).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use prov_gateway::verify::{Decision, Incoming, LogView, MemoryView, Verifier};
use prov_schemas::Hash32;
use prov_schemas::cose;
use prov_schemas::event::Event;
use prov_schemas::keys::{DeviceId, Kid, OperatorName, PublicKey, SecretKey};
use prov_schemas::registry::RegistryRecord;
use serde_json::{Value as Json, json};

pub const SITE: &str = "factory-a";
pub const OPERATOR: &str = "factory-a";
pub const ITEM: &str = "https://id.gs1.org/01/09506000134352/21/ABC123";
pub const ITEM_2: &str = "https://id.gs1.org/01/09506000134352/21/ABC124";
pub const CASE: &str = "https://id.gs1.org/00/106141412345678908";
pub const PALLET: &str = "https://id.gs1.org/00/106141412345678915";
pub const MILK_LOT: &str = "https://id.gs1.org/01/09506000134369/10/MILK-0412";
pub const POWDER_LOT: &str = "https://id.gs1.org/01/09506000134352/10/PWD-2611";
pub const FACTORY: &str = "https://id.gs1.org/414/9506000134376";

pub fn device(name: &str) -> DeviceId {
    DeviceId::new(name).expect("device id")
}

pub fn key(name: &str) -> SecretKey {
    SecretKey::test_key(name).expect("test key")
}

pub fn operator_key() -> SecretKey {
    key(&format!("operator:{OPERATOR}"))
}

pub fn operators() -> BTreeMap<OperatorName, PublicKey> {
    BTreeMap::from([(
        OperatorName::new(OPERATOR).expect("operator"),
        operator_key().public_key(),
    )])
}

pub fn verifier() -> Verifier {
    Verifier::new(operators()).with_site(SITE)
}

pub fn topic(device: &str) -> String {
    format!("prov/v1/{SITE}/{device}/events")
}

pub fn sign(kid: &str, payload: &[u8], key: &SecretKey) -> Vec<u8> {
    cose::sign_message(&Kid::new(kid).expect("kid"), payload, key).expect("sign")
}

fn registry_payload(json: Json) -> Vec<u8> {
    let record: RegistryRecord = serde_json::from_value(json).expect("registry record");
    record.encode_payload()
}

/// A registration of `device` with its test key, signed by the trusted operator.
pub fn registration(device: &str, minute: u32) -> Vec<u8> {
    registration_with(device, &key(device).public_key(), minute, &operator_key())
}

pub fn registration_with(
    device: &str,
    public: &PublicKey,
    minute: u32,
    signer: &SecretKey,
) -> Vec<u8> {
    let payload = registry_payload(json!({
        "type": "prov:DeviceRegistration",
        "prov:device": device,
        "prov:key": hex(&public.to_sec1_uncompressed()),
        "eventTime": format!("2026-11-24T06:{minute:02}:00.000Z"),
    }));
    sign(&format!("operator:{OPERATOR}"), &payload, signer)
}

pub fn revocation(device: &str, minute: u32) -> Vec<u8> {
    let payload = registry_payload(json!({
        "type": "prov:DeviceRevocation",
        "prov:device": device,
        "eventTime": format!("2026-11-24T06:{minute:02}:30.000Z"),
    }));
    sign(&format!("operator:{OPERATOR}"), &payload, &operator_key())
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An ObjectEvent observing `item`, by `device`, with `seq` and `prev`.
pub fn object_json(device: &str, seq: u64, prev: Hash32, item: &str, second: u64) -> Json {
    json!({
        "type": "ObjectEvent",
        "eventTime": format!("2026-11-24T08:{:02}:{:02}.000Z", (second / 60) % 60, second % 60),
        "eventTimeZoneOffset": "+01:00",
        "action": "OBSERVE",
        "epcList": [item],
        "bizStep": "inspecting",
        "readPoint": {"id": FACTORY},
        "prov:device": device,
        "prov:seq": seq,
        "prov:prev": prev.to_hex(),
    })
}

/// Signs an event given as JSON with the device's test key.
pub fn sign_event(json: Json) -> Vec<u8> {
    let event: Event = serde_json::from_value(json).expect("valid event");
    let device = event.device.to_string();
    sign(&device, &event.encode_payload(), &key(&device))
}

pub fn event(device: &str, seq: u64, prev: Hash32, item: &str) -> Vec<u8> {
    sign_event(object_json(device, seq, prev, item, seq))
}

/// A device that signs a correctly linked chain of events.
pub struct Device {
    pub name: String,
    pub seq: u64,
    pub prev: Hash32,
}

impl Device {
    pub fn new(name: &str) -> Device {
        Device {
            name: name.to_string(),
            seq: 0,
            prev: Hash32::ZERO,
        }
    }

    /// The next event of the chain, from a JSON body (the `prov:` fields are added).
    pub fn next_json(&mut self, mut body: Json) -> Vec<u8> {
        let obj = body.as_object_mut().expect("object");
        obj.insert("prov:device".into(), json!(self.name));
        obj.insert("prov:seq".into(), json!(self.seq + 1));
        obj.insert("prov:prev".into(), json!(self.prev.to_hex()));
        let message = sign_event(body);
        self.seq += 1;
        self.prev = Hash32::blake3(&message);
        message
    }

    /// The next ObjectEvent observing `item`.
    pub fn next(&mut self, item: &str) -> Vec<u8> {
        let message = event(&self.name, self.seq + 1, self.prev, item);
        self.seq += 1;
        self.prev = Hash32::blake3(&message);
        message
    }
}

/// The verify step over an in-memory state and log, as the gateway would drive it.
pub struct MemGateway {
    pub verifier: Verifier,
    pub state: MemoryView,
    pub log: Vec<Vec<u8>>,
}

impl MemGateway {
    pub fn new() -> MemGateway {
        MemGateway {
            verifier: verifier(),
            state: MemoryView::new(),
            log: Vec::new(),
        }
    }

    fn commit(&mut self, decision: &Decision) {
        if let Decision::Accept(a) = decision {
            let leaf = self.log.len() as u64;
            self.state.apply(leaf, a.entry.as_ref());
            self.log.push(a.entry.message().to_vec());
        }
    }

    pub fn event(&mut self, device: &str, message: &[u8]) -> Decision {
        self.event_on(&topic(device), message)
    }

    pub fn event_on(&mut self, topic: &str, message: &[u8]) -> Decision {
        let d = self
            .verifier
            .verify_event(&self.state, topic, message, 1_000)
            .expect("memory view never fails");
        self.commit(&d);
        d
    }

    pub fn registry(&mut self, message: &[u8]) -> Decision {
        let d = self
            .verifier
            .verify_registry(&self.state, message, 1_000)
            .expect("memory view never fails");
        self.commit(&d);
        d
    }

    pub fn batch(&mut self, items: &[Incoming<'_>]) -> Vec<Decision> {
        let ds = self
            .verifier
            .verify_batch(&self.state, self.log.len() as u64, items)
            .expect("memory view never fails");
        for d in &ds {
            self.commit(d);
        }
        ds
    }

    pub fn register(&mut self, device: &str) {
        let d = self.registry(&registration(device, 0));
        assert!(matches!(d, Decision::Accept(_)), "registration: {d:?}");
    }

    pub fn leaf_of(&self, message: &[u8]) -> Option<u64> {
        self.state
            .leaf_of(&Hash32::blake3(message))
            .expect("memory view never fails")
    }
}

/// The same message with its signature's `s` replaced by `n - s`.
pub fn high_s(message: &[u8]) -> Vec<u8> {
    let mut m = message.to_vec();
    let len = m.len();
    let s: [u8; 32] = m[len - 32..]
        .try_into()
        .expect("a signature ends every message");
    m[len - 32..].copy_from_slice(&prov_schemas::keys::negate_s(&s));
    m
}

/// One MQTT event of a batch.
pub fn incoming<'a>(topic: &'a str, message: &'a [u8]) -> Incoming<'a> {
    Incoming::Event {
        topic,
        message,
        received_ms: 5,
    }
}
