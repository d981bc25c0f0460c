//! Checked types: sign (feature `sign`) → verify round trips for events and registry records,
//! and each way verification must fail (wrong key, kid mismatch, wrong kid kind, unknown
//! operator, invalid payload, tampered message), on every backend compiled in.
#![cfg(feature = "sign")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use prov_schemas::Hash32;
use prov_schemas::checked::{
    CheckedEvent, VerifyError, peek_kid, verify_event, verify_registry_record,
};
use prov_schemas::cose::{CoseError, P256Backend, VerifyBackend, sign_message};
use prov_schemas::digital_link::DigitalLink;
use prov_schemas::event::{Action, Event, EventError, EventTime, EventType, TzOffset};
use prov_schemas::keys::{DeviceId, Kid, OperatorName, PublicKey, SecretKey};
use prov_schemas::registry::{RegistryError, RegistryRecord};

fn device(name: &str) -> DeviceId {
    DeviceId::new(name).unwrap()
}

fn key(name: &str) -> SecretKey {
    SecretKey::test_key(name).unwrap()
}

fn commissioning(dev: &str, seq: u64, prev: Hash32) -> Event {
    let mut ev = Event::new(
        EventType::Object,
        EventTime::parse("2024-03-01T08:15:00.000Z").unwrap(),
        TzOffset::UTC,
        device(dev),
        seq,
        prev,
    );
    ev.action = Some(Action::Add);
    ev.epc_list = vec![
        DigitalLink::parse_canonical("https://id.gs1.org/01/09506000134352/21/ABC123").unwrap(),
    ];
    ev
}

fn signed(kid: Kid, payload: &[u8], signer: &str) -> Vec<u8> {
    sign_message(&kid, payload, &key(signer)).unwrap()
}

fn backends() -> Vec<(&'static str, Box<dyn VerifyBackend>)> {
    let mut out: Vec<(&'static str, Box<dyn VerifyBackend>)> =
        vec![("p256", Box::new(P256Backend))];
    #[cfg(feature = "ring")]
    out.push(("ring", Box::new(prov_schemas::cose::RingBackend)));
    out
}

#[test]
fn event_sign_verify_round_trip_and_chain() {
    for (name, backend) in backends() {
        let pk = key("line1").public_key();
        let first = commissioning("line1", 1, Hash32::ZERO);
        let m1 = signed(
            Kid::Device(device("line1")),
            &first.encode_payload(),
            "line1",
        );
        let c1: CheckedEvent = verify_event(&m1, &pk, backend.as_ref()).unwrap();
        assert_eq!(c1.message(), &m1[..], "{name}");
        assert_eq!(c1.hash(), Hash32::blake3(&m1));
        assert_eq!(c1.device(), &device("line1"));
        assert_eq!(c1.event(), &first);
        assert_eq!((c1.seq(), c1.prev()), (1, Hash32::ZERO));
        // The next event chains to the first message's hash.
        let second = commissioning("line1", 2, c1.hash());
        let m2 = signed(
            Kid::Device(device("line1")),
            &second.encode_payload(),
            "line1",
        );
        let c2 = verify_event(&m2, &pk, backend.as_ref()).unwrap();
        assert_eq!(c2.prev(), c1.hash());
        assert_eq!(c2.clone().into_message(), m2);
        assert_eq!(peek_kid(&m2), Ok(Kid::Device(device("line1"))));
    }
}

#[test]
fn event_verification_failures() {
    for (name, backend) in backends() {
        let b = backend.as_ref();
        let good = commissioning("line1", 1, Hash32::ZERO).encode_payload();
        let m = signed(Kid::Device(device("line1")), &good, "line1");
        // Wrong key.
        assert_eq!(
            verify_event(&m, &key("line2").public_key(), b),
            Err(VerifyError::Cose(CoseError::BadSignature)),
            "{name}"
        );
        // Signed by line2 (its own kid and key), claiming to be line1 in the payload.
        let m = signed(Kid::Device(device("line2")), &good, "line2");
        assert_eq!(
            verify_event(&m, &key("line2").public_key(), b),
            Err(VerifyError::KidMismatch {
                kid: Box::new(device("line2")),
                device: Box::new(device("line1"))
            })
        );
        // An operator kid cannot sign events.
        let op = Kid::Operator(OperatorName::new("factory-a").unwrap());
        let m = signed(op, &good, "operator:factory-a");
        assert_eq!(
            verify_event(&m, &key("operator:factory-a").public_key(), b),
            Err(VerifyError::NotADevice { kid: op })
        );
        // A well-signed but invalid payload.
        let mut bad = commissioning("line1", 1, Hash32::ZERO);
        bad.seq = 0;
        let m = signed(Kid::Device(device("line1")), &bad.encode_payload(), "line1");
        assert_eq!(
            verify_event(&m, &key("line1").public_key(), b),
            Err(VerifyError::Event(EventError::SeqZero))
        );
        // A payload that is not an event at all.
        let m = signed(Kid::Device(device("line1")), b"\xa0", "line1");
        assert!(matches!(
            verify_event(&m, &key("line1").public_key(), b),
            Err(VerifyError::Event(EventError::MissingField { .. }))
        ));
        // Tampering with the payload: a flipped byte is caught before or by the signature.
        let m = signed(Kid::Device(device("line1")), &good, "line1");
        for i in 0..m.len() {
            let mut t = m.clone();
            t[i] ^= 0x01;
            assert!(
                verify_event(&t, &key("line1").public_key(), b).is_err(),
                "{name}: byte {i}"
            );
        }
        // Envelope errors pass through typed.
        assert!(matches!(
            verify_event(b"\x00", &key("line1").public_key(), b),
            Err(VerifyError::Cose(CoseError::NotTagged { got: 0 }))
        ));
    }
}

#[test]
fn registry_record_sign_verify() {
    let operator = OperatorName::new("factory-a").unwrap();
    let op_pk: PublicKey = key("operator:factory-a").public_key();
    let trusted = [(operator, op_pk)];
    let record = RegistryRecord::Registration {
        device: device("line1"),
        key: key("line1").public_key(),
        event_time: EventTime::parse("2024-03-01T07:00:00.000Z").unwrap(),
    };
    let m = signed(
        Kid::Operator(operator),
        &record.encode_payload(),
        "operator:factory-a",
    );
    for (name, backend) in backends() {
        let b = backend.as_ref();
        let checked = verify_registry_record(&m, &trusted, b).unwrap();
        assert_eq!(checked.record(), &record, "{name}");
        assert_eq!(checked.operator(), &operator);
        assert_eq!(checked.hash(), Hash32::blake3(&m));
        assert_eq!(checked.message(), &m[..]);
        // Other containers of trusted keys.
        let map: BTreeMap<OperatorName, PublicKey> = trusted.iter().copied().collect();
        assert!(verify_registry_record(&m, &map, b).is_ok());
        assert!(verify_registry_record(&m, &trusted.to_vec(), b).is_ok());
        #[cfg(feature = "std")]
        {
            let hm: std::collections::HashMap<OperatorName, PublicKey> =
                trusted.iter().copied().collect();
            assert!(verify_registry_record(&m, &hm, b).is_ok());
        }
        // Unknown operator.
        let other = OperatorName::new("factory-b").unwrap();
        assert_eq!(
            verify_registry_record(&m, &[(other, op_pk)], b),
            Err(VerifyError::UnknownOperator { operator })
        );
        // Trusted name, wrong key.
        assert_eq!(
            verify_registry_record(&m, &[(operator, key("x").public_key())], b),
            Err(VerifyError::Cose(CoseError::BadSignature))
        );
        // A device cannot sign registry records.
        let dm = signed(
            Kid::Device(device("line1")),
            &record.encode_payload(),
            "line1",
        );
        assert_eq!(
            verify_registry_record(&dm, &trusted, b),
            Err(VerifyError::NotAnOperator {
                kid: Kid::Device(device("line1"))
            })
        );
        // An event payload is not a registry record.
        let em = signed(
            Kid::Operator(operator),
            &commissioning("line1", 1, Hash32::ZERO).encode_payload(),
            "operator:factory-a",
        );
        assert!(matches!(
            verify_registry_record(&em, &trusted, b),
            Err(VerifyError::Registry(RegistryError::UnknownField { .. }))
        ));
    }
    assert_eq!(peek_kid(&m), Ok(Kid::Operator(operator)));
}

#[test]
fn errors_display_their_evidence() {
    let e = VerifyError::KidMismatch {
        kid: Box::new(device("a")),
        device: Box::new(device("b")),
    };
    assert_eq!(
        e.to_string(),
        "payload prov:device b differs from the kid a"
    );
    let e = VerifyError::Event(EventError::SeqZero);
    assert_eq!(e.to_string(), "event: prov:seq must be at least 1");
}
