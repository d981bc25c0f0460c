//! Registry records (SPEC §4): JSON ↔ Rust ↔ CBOR round trips against the README's mapping,
//! and every rejection with its typed error.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use prov_schemas::cbor::{CborError, Value};
use prov_schemas::event::EventTime;
use prov_schemas::keys::{DeviceId, KeyError, PublicKey};
use prov_schemas::registry::{RegistryError, RegistryRecord};
use serde_json::{Value as Json, json};

/// The P-256 base point: a valid public key that needs no signing feature.
const G: &str = "046b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c2964fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5";

fn registration() -> Json {
    json!({
        "type": "prov:DeviceRegistration",
        "prov:device": "line1-commission",
        "prov:key": G,
        "eventTime": "2024-03-01T07:00:00.000Z"
    })
}

fn revocation() -> Json {
    json!({
        "type": "prov:DeviceRevocation",
        "prov:device": "line1-commission",
        "eventTime": "2024-06-01T07:00:00.000Z"
    })
}

/// The README mapping for this small map: `prov:key` hex → bytes, the rest text.
fn json_to_cbor(json: &Json) -> Value {
    Value::map(json.as_object().unwrap().iter().map(|(k, v)| {
        let v = match (k.as_str(), v) {
            ("prov:key", Json::String(s)) => Value::Bytes(hex::decode(s).unwrap()),
            (_, Json::String(s)) => Value::text(s.as_str()),
            (_, Json::Number(n)) => Value::Uint(n.as_u64().unwrap()),
            (_, other) => panic!("unexpected {other}"),
        };
        (Value::text(k.as_str()), v)
    }))
}

fn rejection(json: Json) -> RegistryError {
    let cbor = json_to_cbor(&json);
    let err = RegistryRecord::from_cbor(&cbor).unwrap_err();
    assert_eq!(
        RegistryRecord::decode_payload(&cbor.encode()).unwrap_err(),
        err
    );
    assert!(
        serde_json::from_value::<RegistryRecord>(json.clone()).is_err(),
        "JSON accepted {json}"
    );
    err
}

fn set(mut json: Json, key: &str, value: Json) -> Json {
    json.as_object_mut().unwrap().insert(key.to_owned(), value);
    json
}

fn unset(mut json: Json, key: &str) -> Json {
    json.as_object_mut().unwrap().remove(key);
    json
}

#[test]
fn both_kinds_round_trip() {
    for json in [registration(), revocation()] {
        let record: RegistryRecord = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(serde_json::to_value(record).unwrap(), json);
        let payload = record.encode_payload();
        assert_eq!(payload, json_to_cbor(&json).encode());
        assert_eq!(RegistryRecord::decode_payload(&payload), Ok(record));
        assert_eq!(record.device(), &DeviceId::new("line1-commission").unwrap());
    }
    let record: RegistryRecord = serde_json::from_value(registration()).unwrap();
    assert_eq!(
        record,
        RegistryRecord::Registration {
            device: DeviceId::new("line1-commission").unwrap(),
            key: PublicKey::from_sec1_uncompressed(&hex::decode(G).unwrap()).unwrap(),
            event_time: EventTime::parse("2024-03-01T07:00:00.000Z").unwrap(),
        }
    );
    assert_eq!(record.type_name(), "prov:DeviceRegistration");
    assert!(record.key().is_some());
    // Key order in the payload: by encoded length first, then bytewise.
    let keys: Vec<String> = record
        .to_cbor()
        .as_map()
        .unwrap()
        .iter()
        .map(|(k, _)| k.as_text().unwrap().to_owned())
        .collect();
    assert_eq!(keys, ["type", "prov:key", "eventTime", "prov:device"]);
}

#[test]
fn rejections_are_typed() {
    assert_eq!(
        rejection(unset(registration(), "prov:key")),
        RegistryError::MissingField { field: "prov:key" }
    );
    assert_eq!(
        rejection(set(revocation(), "prov:key", json!(G))),
        RegistryError::KeyInRevocation
    );
    assert_eq!(
        rejection(unset(revocation(), "eventTime")),
        RegistryError::MissingField { field: "eventTime" }
    );
    assert_eq!(
        rejection(unset(revocation(), "type")),
        RegistryError::MissingField { field: "type" }
    );
    assert_eq!(
        rejection(set(revocation(), "type", json!("prov:DeviceSuspension"))),
        RegistryError::UnknownType {
            got: "prov:DeviceSuspension".into()
        }
    );
    assert_eq!(
        rejection(set(revocation(), "reason", json!("lost"))),
        RegistryError::UnknownField {
            field: "reason".into()
        }
    );
    assert_eq!(
        rejection(set(revocation(), "prov:device", json!(7))),
        RegistryError::WrongType {
            field: "prov:device",
            want: "text",
            got: "unsigned integer"
        }
    );
    assert!(matches!(
        rejection(set(revocation(), "prov:device", json!("Bad Id"))),
        RegistryError::Device(_)
    ));
    assert!(matches!(
        rejection(set(
            revocation(),
            "eventTime",
            json!("2024-06-31T00:00:00.000Z")
        )),
        RegistryError::Time(_)
    ));
    // Keys: wrong length, compressed, not on the curve.
    assert_eq!(
        rejection(set(registration(), "prov:key", json!(&G[..64]))),
        RegistryError::Key(KeyError::Length { got: 32, want: 65 })
    );
    let compressed = format!("03{}", &G[2..66]);
    assert!(matches!(
        RegistryRecord::from_cbor(&json_to_cbor(&set(
            registration(),
            "prov:key",
            json!(compressed)
        ))),
        Err(RegistryError::Key(KeyError::Length { got: 33, .. }))
    ));
    let off_curve = format!("{}00", &G[..128]);
    assert_eq!(
        rejection(set(registration(), "prov:key", json!(off_curve))),
        RegistryError::Key(KeyError::NotOnCurve)
    );
    // prov:key as text in CBOR.
    let mut cbor = json_to_cbor(&registration());
    if let Value::Map(entries) = &mut cbor {
        for (k, v) in entries.iter_mut() {
            if k.as_text() == Some("prov:key") {
                *v = Value::text(G);
            }
        }
    }
    assert_eq!(
        RegistryRecord::from_cbor(&cbor),
        Err(RegistryError::WrongType {
            field: "prov:key",
            want: "byte string",
            got: "text"
        })
    );
    assert!(matches!(
        RegistryRecord::from_cbor(&Value::Array(vec![])),
        Err(RegistryError::WrongType { want: "map", .. })
    ));
}

#[test]
fn json_form_is_strict() {
    for json in [
        set(registration(), "prov:key", json!(G.to_uppercase())),
        set(registration(), "prov:key", Json::Null),
        set(revocation(), "prov:key", Json::Null),
        set(revocation(), "extra", json!(1)),
    ] {
        assert!(
            serde_json::from_value::<RegistryRecord>(json.clone()).is_err(),
            "accepted {json}"
        );
    }
}

#[test]
fn non_deterministic_bytes_are_refused() {
    let mut payload = serde_json::from_value::<RegistryRecord>(revocation())
        .unwrap()
        .encode_payload();
    payload.push(0);
    assert_eq!(
        RegistryRecord::decode_payload(&payload),
        Err(RegistryError::Cbor(CborError::TrailingBytes { got: 1 }))
    );
    // A text string length written in a longer form (the device id's, 16 bytes: 0x70).
    let payload = serde_json::from_value::<RegistryRecord>(revocation())
        .unwrap()
        .encode_payload();
    let at = payload
        .windows(17)
        .position(|w| w == b"\x70line1-commission")
        .unwrap();
    let mut long = payload.clone();
    long.splice(at..at + 1, [0x78, 0x10]);
    let err = RegistryRecord::decode_payload(&long);
    assert!(
        matches!(err, Err(RegistryError::Cbor(CborError::NotDeterministic { offset, .. })) if offset == at),
        "{err:?}"
    );
}
