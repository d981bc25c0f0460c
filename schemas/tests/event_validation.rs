//! Events: one valid example per event type (plus a sensor excursion), their JSON ↔ Rust ↔ CBOR
//! round trips checked against an independent JSON→CBOR converter that follows
//! `vectors/README.md`, and one failing case per validation and decoding rule, each with the
//! typed error it must give.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use prov_schemas::Hash32;
use prov_schemas::cbor::{CborError, Value, decode_deterministic};
use prov_schemas::digital_link::{DigitalLink, DigitalLinkError, IdKind};
use prov_schemas::event::{
    Action, Event, EventError, EventTime, EventType, Ilmd, IlmdValue, LocationRef, MeasurementType,
    QuantityElement, SensorMetadata, SensorReport, TzOffset, Uom,
};
use prov_schemas::keys::DeviceId;
use serde_json::{Value as Json, json};

const ZERO: &str = "0000000000000000000000000000000000000000000000000000000000000000";
const PREV: &str = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262";

const ITEM: &str = "https://id.gs1.org/01/09506000134352/21/ABC123";
const ITEM2: &str = "https://id.gs1.org/01/09506000134352/21/ABC124";
const LOT: &str = "https://id.gs1.org/01/09506000134369/10/L%2F42";
const LOT2: &str = "https://id.gs1.org/01/09506000134376/10/B7";
const CASE: &str = "https://id.gs1.org/00/106141412345678908";
const CASE2: &str = "https://id.gs1.org/00/009506000134300016";
const PALLET: &str = "https://id.gs1.org/00/009506000134300023";
const SITE: &str = "https://id.gs1.org/414/9506000134307";
const DOCK: &str = "https://id.gs1.org/414/9506000134314";

// ------------------------------------------------------------------------------------------------
// The examples.
// ------------------------------------------------------------------------------------------------

fn commissioning() -> Json {
    json!({
        "type": "ObjectEvent",
        "eventTime": "2024-03-01T08:15:00.000Z",
        "eventTimeZoneOffset": "+01:00",
        "action": "ADD",
        "epcList": [ITEM],
        "bizStep": "commissioning",
        "disposition": "active",
        "readPoint": {"id": SITE},
        "ilmd": {
            "cbvmda:bestBeforeDate": "2025-03-01",
            "example:count": 3,
            "example:offset": -2,
            "example:ratio": 0.5,
            "example:nested": {"a": [1, true, "x"], "b": {"c": 2.25}}
        },
        "prov:device": "line1-commission",
        "prov:seq": 1,
        "prov:prev": ZERO
    })
}

fn packing() -> Json {
    json!({
        "type": "AggregationEvent",
        "eventTime": "2024-03-01T08:20:00.250Z",
        "eventTimeZoneOffset": "+01:00",
        "action": "ADD",
        "parentID": CASE,
        "childEPCs": [ITEM],
        "bizStep": "packing",
        "disposition": "in_progress",
        "readPoint": {"id": SITE},
        "prov:device": "line1-packer",
        "prov:seq": 7,
        "prov:prev": PREV
    })
}

fn palletising() -> Json {
    json!({
        "type": "AggregationEvent",
        "eventTime": "2024-03-01T09:00:00.000Z",
        "eventTimeZoneOffset": "+01:00",
        "action": "ADD",
        "parentID": PALLET,
        "childEPCs": [CASE, CASE2],
        "bizStep": "packing",
        "prov:device": "line1-palletiser",
        "prov:seq": 2,
        "prov:prev": PREV
    })
}

fn transformation() -> Json {
    json!({
        "type": "TransformationEvent",
        "eventTime": "2024-02-28T23:59:59.999Z",
        "eventTimeZoneOffset": "-05:30",
        "inputQuantityList": [
            {"epcClass": LOT, "quantity": 12.5, "uom": "KGM"},
            {"epcClass": LOT2, "quantity": 40.0}
        ],
        "outputEPCList": [ITEM, ITEM2],
        "bizStep": "assembling",
        "bizLocation": {"id": SITE},
        "ilmd": {"example:recipe": "R-7"},
        "prov:device": "mixer-2",
        "prov:seq": 3,
        "prov:prev": PREV
    })
}

fn association() -> Json {
    json!({
        "type": "AssociationEvent",
        "eventTime": "2024-03-02T10:00:00.000Z",
        "eventTimeZoneOffset": "+00:00",
        "action": "ADD",
        "parentID": CASE,
        "childEPCs": [ITEM],
        "bizStep": "installing",
        "prov:device": "assoc-1",
        "prov:seq": 1,
        "prov:prev": ZERO
    })
}

fn transaction() -> Json {
    json!({
        "type": "TransactionEvent",
        "eventTime": "2024-03-03T12:00:00.000Z",
        "eventTimeZoneOffset": "+01:00",
        "action": "ADD",
        "epcList": [PALLET],
        "bizTransactionList": [
            {"type": "po", "bizTransaction": "urn:epcglobal:cbv:bt:9506000134307:PO-1234"},
            {"bizTransaction": "https://erp.example.com/orders/1234"}
        ],
        "sourceList": [{"type": "owning_party", "source": "https://id.gs1.org/417/9506000134307"}],
        "destinationList": [{"type": "location", "destination": DOCK}],
        "prov:device": "erp-bridge",
        "prov:seq": 10,
        "prov:prev": PREV
    })
}

fn excursion() -> Json {
    json!({
        "type": "ObjectEvent",
        "eventTime": "2024-03-04T03:00:00.000Z",
        "eventTimeZoneOffset": "+01:00",
        "action": "OBSERVE",
        "epcList": [PALLET],
        "bizStep": "sensor_reporting",
        "readPoint": {"id": DOCK},
        "sensorElementList": [{
            "sensorMetadata": {
                "time": "2024-03-04T03:00:00.000Z",
                "startTime": "2024-03-04T02:00:00.000Z",
                "endTime": "2024-03-04T03:00:00.000Z",
                "deviceID": "urn:epc:id:giai:4000001.111"
            },
            "sensorReport": [
                {"type": "Temperature", "value": 9.5, "uom": "CEL", "exception": "ALARM_CONDITION",
                 "minValue": 2.0, "maxValue": 9.5, "meanValue": 5.25, "sDev": 1.5},
                {"type": "RelativeHumidity", "value": 61.0, "uom": "P1"},
                {"type": "Speed", "value": -0.0, "component": "x", "uom": "MTS"},
                {"type": "Count", "booleanValue": false, "stringValue": "door", "hexBinaryValue": "0aFF"}
            ]
        }],
        "prov:device": "reefer-7",
        "prov:seq": 44,
        "prov:prev": PREV,
        "prov:clockSynced": false
    })
}

fn examples() -> Vec<(&'static str, Json)> {
    vec![
        ("commissioning", commissioning()),
        ("packing", packing()),
        ("palletising", palletising()),
        ("transformation", transformation()),
        ("association", association()),
        ("transaction", transaction()),
        ("excursion", excursion()),
    ]
}

// ------------------------------------------------------------------------------------------------
// An independent JSON → CBOR converter, written from vectors/README.md only.
// ------------------------------------------------------------------------------------------------

const FLOAT_KEYS: &[&str] = &[
    "quantity",
    "value",
    "minValue",
    "maxValue",
    "meanValue",
    "sDev",
    "percRank",
    "percValue",
];

fn json_to_cbor(key: Option<&str>, v: &Json) -> Value {
    match v {
        Json::Object(m) => Value::map(
            m.iter()
                .map(|(k, v)| (Value::text(k.as_str()), json_to_cbor(Some(k), v))),
        ),
        Json::Array(items) => Value::Array(items.iter().map(|i| json_to_cbor(None, i)).collect()),
        Json::String(s) if matches!(key, Some("prov:prev" | "prov:key")) => {
            Value::Bytes(hex::decode(s).unwrap())
        }
        Json::String(s) => Value::text(s.as_str()),
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) if key.is_some_and(|k| FLOAT_KEYS.contains(&k)) => {
            Value::Float(n.as_f64().unwrap())
        }
        Json::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Value::Uint(u),
            (None, Some(i)) => Value::int(i),
            _ => Value::Float(n.as_f64().unwrap()),
        },
        Json::Null => panic!("null is never part of the JSON form"),
    }
}

fn event(json: Json) -> Event {
    serde_json::from_value(json).unwrap()
}

// ------------------------------------------------------------------------------------------------
// Valid examples and round trips.
// ------------------------------------------------------------------------------------------------

#[test]
fn every_example_round_trips_json_rust_cbor() {
    for (name, json) in examples() {
        let ev: Event =
            serde_json::from_value(json.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
        ev.validate().unwrap();
        // Rust → JSON gives back exactly the example.
        assert_eq!(serde_json::to_value(&ev).unwrap(), json, "{name}");
        // Rust → CBOR equals the README's mapping of the JSON form, byte for byte.
        let payload = ev.encode_payload();
        assert_eq!(payload, json_to_cbor(None, &json).encode(), "{name}");
        // CBOR → Rust gives back the same event.
        assert_eq!(Event::decode_payload(&payload).unwrap(), ev, "{name}");
        assert_eq!(Event::from_cbor(&ev.to_cbor()).unwrap(), ev, "{name}");
    }
}

#[test]
fn floats_are_cbor_floats_even_when_integral() {
    let ev = event(transformation());
    let cbor = ev.to_cbor();
    let q = &cbor.get("inputQuantityList").unwrap().as_array().unwrap()[1];
    assert_eq!(q.get("quantity"), Some(&Value::Float(40.0)));
    // f9 5100 = 40.0 as half float.
    let bytes = q.encode();
    assert!(
        bytes.windows(3).any(|w| w == [0xf9, 0x51, 0x00]),
        "{}",
        hex::encode(&bytes)
    );
    // ilmd integers stay integers.
    let ev = event(commissioning());
    let ilmd = ev.to_cbor().get("ilmd").unwrap().clone();
    assert_eq!(ilmd.get("example:count"), Some(&Value::Uint(3)));
    assert_eq!(ilmd.get("example:offset"), Some(&Value::int(-2)));
    assert_eq!(ilmd.get("example:ratio"), Some(&Value::Float(0.5)));
}

#[test]
fn prev_is_hex_in_json_and_bytes_in_cbor() {
    let ev = event(packing());
    assert_eq!(ev.prev, Hash32::from_hex(PREV).unwrap());
    assert_eq!(
        ev.to_cbor().get("prov:prev"),
        Some(&Value::Bytes(Hash32::from_hex(PREV).unwrap().0.to_vec()))
    );
}

#[test]
fn clock_synced_is_omitted_when_true() {
    let mut ev = event(excursion());
    assert!(!ev.clock_synced);
    assert_eq!(
        ev.to_cbor().get("prov:clockSynced"),
        Some(&Value::Bool(false))
    );
    ev.clock_synced = true;
    assert!(ev.to_cbor().get("prov:clockSynced").is_none());
    assert!(
        serde_json::to_value(&ev)
            .unwrap()
            .get("prov:clockSynced")
            .is_none()
    );
}

#[test]
fn sensor_excursion_is_visible() {
    let ev = event(excursion());
    assert!(ev.has_sensor_exception());
    assert!(!event(commissioning()).has_sensor_exception());
    let report = &ev.sensor_element_list[0].sensor_report[0];
    assert_eq!(report.measurement_type, MeasurementType::Temperature);
    assert_eq!(report.value, Some(9.5));
    assert_eq!(
        report.uom.map(|u| u.as_str().to_owned()).as_deref(),
        Some("CEL")
    );
}

#[test]
fn built_in_rust_equals_parsed_from_json() {
    let mut ev = Event::new(
        EventType::Aggregation,
        EventTime::parse("2024-03-01T08:20:00.250Z").unwrap(),
        TzOffset::from_minutes(60).unwrap(),
        DeviceId::new("line1-packer").unwrap(),
        7,
        Hash32::from_hex(PREV).unwrap(),
    );
    ev.action = Some(Action::Add);
    ev.parent_id = Some(DigitalLink::parse_canonical(CASE).unwrap());
    ev.child_epcs = vec![DigitalLink::parse_canonical(ITEM).unwrap()];
    ev.biz_step = Some(prov_schemas::event::BizStep::Packing);
    ev.disposition = Some(prov_schemas::event::Disposition::InProgress);
    ev.read_point = Some(LocationRef {
        id: DigitalLink::parse_canonical(SITE).unwrap(),
    });
    assert_eq!(ev.validate(), Ok(()));
    assert_eq!(ev, event(packing()));
}

// ------------------------------------------------------------------------------------------------
// Accessors for the gateway.
// ------------------------------------------------------------------------------------------------

fn dl(s: &str) -> DigitalLink {
    DigitalLink::parse_canonical(s).unwrap()
}

#[test]
fn identifiers_locations_and_edges() {
    let ev = event(transformation());
    let ids: Vec<String> = ev.identifiers().iter().map(|d| d.canonical()).collect();
    assert_eq!(ids.len(), 4);
    for want in [ITEM, ITEM2, LOT, LOT2] {
        assert!(ids.contains(&want.to_owned()), "{want}");
    }
    assert_eq!(ev.locations().cloned().collect::<Vec<_>>(), vec![dl(SITE)]);
    let edges = ev.transformation_edges();
    assert_eq!(edges.len(), 4);
    assert!(edges.contains(&(&dl(LOT), &dl(ITEM2))));
    assert!(ev.containment_edges().is_empty());

    let ev = event(palletising());
    let edges = ev.containment_edges();
    assert_eq!(edges.len(), 2);
    assert!(
        edges
            .iter()
            .all(|e| *e.parent == dl(PALLET) && e.action == Action::Add)
    );
    assert_eq!(*edges[1].child, dl(CASE2));
    assert!(ev.transformation_edges().is_empty());
    assert_eq!(ev.identifiers().len(), 3);

    // An association is not containment.
    assert!(event(association()).containment_edges().is_empty());
}

// ------------------------------------------------------------------------------------------------
// Validation rules: each has a failing case with its typed error.
// ------------------------------------------------------------------------------------------------

fn set(mut json: Json, key: &str, value: Json) -> Json {
    json.as_object_mut().unwrap().insert(key.to_owned(), value);
    json
}

fn unset(mut json: Json, key: &str) -> Json {
    json.as_object_mut().unwrap().remove(key);
    json
}

/// The error of a JSON-form event, through the CBOR value and the CBOR bytes (which must agree);
/// the JSON entrance is checked to refuse it too (serde's error carries ours as text).
fn rejection(json: Json) -> EventError {
    let cbor = json_to_cbor(None, &json);
    let err = Event::from_cbor(&cbor).unwrap_err();
    assert_eq!(Event::decode_payload(&cbor.encode()).unwrap_err(), err);
    assert!(
        serde_json::from_value::<Event>(json.clone()).is_err(),
        "JSON accepted {json}"
    );
    err
}

#[test]
fn fields_not_of_the_event_type_are_refused() {
    assert_eq!(
        rejection(set(transformation(), "action", json!("ADD"))),
        EventError::NotAllowed {
            event_type: EventType::Transformation,
            field: "action"
        }
    );
    assert_eq!(
        rejection(set(commissioning(), "parentID", json!(CASE))),
        EventError::NotAllowed {
            event_type: EventType::Object,
            field: "parentID"
        }
    );
    assert_eq!(
        rejection(set(packing(), "epcList", json!([ITEM2]))),
        EventError::NotAllowed {
            event_type: EventType::Aggregation,
            field: "epcList"
        }
    );
    assert_eq!(
        rejection(set(transaction(), "ilmd", json!({"a": 1}))),
        EventError::NotAllowed {
            event_type: EventType::Transaction,
            field: "ilmd"
        }
    );
    assert_eq!(
        rejection(set(association(), "outputEPCList", json!([ITEM2]))),
        EventError::NotAllowed {
            event_type: EventType::Association,
            field: "outputEPCList"
        }
    );
}

#[test]
fn required_fields_per_type() {
    let req = |event_type, field| EventError::Required { event_type, field };
    assert_eq!(
        rejection(unset(commissioning(), "action")),
        req(EventType::Object, "action")
    );
    assert_eq!(
        rejection(unset(commissioning(), "epcList")),
        req(EventType::Object, "epcList or quantityList")
    );
    assert_eq!(
        rejection(unset(packing(), "action")),
        req(EventType::Aggregation, "action")
    );
    assert_eq!(
        rejection(unset(packing(), "parentID")),
        req(EventType::Aggregation, "parentID")
    );
    let delete = set(packing(), "action", json!("DELETE"));
    assert_eq!(
        rejection(unset(delete, "parentID")),
        req(EventType::Aggregation, "parentID")
    );
    // OBSERVE may leave the parent out.
    let observe = unset(set(packing(), "action", json!("OBSERVE")), "parentID");
    assert!(serde_json::from_value::<Event>(observe).is_ok());
    assert_eq!(
        rejection(unset(packing(), "childEPCs")),
        req(EventType::Aggregation, "childEPCs or childQuantityList")
    );
    assert_eq!(
        rejection(unset(transformation(), "outputEPCList")),
        req(
            EventType::Transformation,
            "outputEPCList or outputQuantityList"
        )
    );
    assert_eq!(
        rejection(unset(transformation(), "inputQuantityList")),
        req(
            EventType::Transformation,
            "inputEPCList or inputQuantityList"
        )
    );
    assert_eq!(
        rejection(unset(association(), "action")),
        req(EventType::Association, "action")
    );
    assert_eq!(
        rejection(unset(association(), "parentID")),
        req(EventType::Association, "parentID")
    );
    assert_eq!(
        rejection(unset(association(), "childEPCs")),
        req(EventType::Association, "childEPCs or childQuantityList")
    );
    assert_eq!(
        rejection(unset(transaction(), "action")),
        req(EventType::Transaction, "action")
    );
    assert_eq!(
        rejection(unset(transaction(), "bizTransactionList")),
        req(EventType::Transaction, "bizTransactionList")
    );
}

#[test]
fn ilmd_needs_add_on_object_events() {
    assert_eq!(
        rejection(set(commissioning(), "action", json!("OBSERVE"))),
        EventError::IlmdWithoutAdd {
            action: Action::Observe
        }
    );
    assert_eq!(
        rejection(set(commissioning(), "ilmd", json!({}))),
        EventError::Empty {
            field: "ilmd".into()
        }
    );
}

#[test]
fn ilmd_keys_the_mapping_treats_specially_are_reserved() {
    // A converter applying the README rule by key name would make this 3 a float.
    assert_eq!(
        rejection(set(commissioning(), "ilmd", json!({"value": 3}))),
        EventError::ReservedKey {
            field: "ilmd.value".into()
        }
    );
    // Nested, through the Rust value (the README converter would already have turned this
    // string into a byte string, which the decoder refuses as a wrong type).
    let mut ev = event(commissioning());
    let nested = serde_json::from_value(json!([{"b": {"prov:prev": "00"}}])).unwrap();
    ev.ilmd.as_mut().unwrap().0.insert("a".into(), nested);
    assert_eq!(
        ev.validate(),
        Err(EventError::ReservedKey {
            field: "ilmd.a[0].b.prov:prev".into()
        })
    );
    assert!(serde_json::from_value::<Event>(serde_json::to_value(&ev).unwrap()).is_err());
}

#[test]
fn identifiers_must_be_of_the_right_kind() {
    let kind = |field: &str, uri: &str, got, want| EventError::IdentifierKind {
        field: field.into(),
        uri: uri.into(),
        got,
        want,
    };
    assert_eq!(
        rejection(set(commissioning(), "epcList", json!([ITEM, LOT]))),
        kind("epcList[1]", LOT, IdKind::Lot, "an item or SSCC")
    );
    assert_eq!(
        rejection(set(commissioning(), "epcList", json!([SITE]))),
        kind("epcList[0]", SITE, IdKind::Location, "an item or SSCC")
    );
    assert_eq!(
        rejection(set(packing(), "parentID", json!(ITEM2))),
        kind("parentID", ITEM2, IdKind::Item, "an SSCC")
    );
    assert_eq!(
        rejection(set(association(), "parentID", json!(LOT))),
        kind("parentID", LOT, IdKind::Lot, "an item or SSCC")
    );
    assert_eq!(
        rejection(set(commissioning(), "readPoint", json!({"id": CASE}))),
        kind("readPoint.id", CASE, IdKind::Sscc, "a location")
    );
    assert_eq!(
        rejection(set(transformation(), "bizLocation", json!({"id": ITEM}))),
        kind("bizLocation.id", ITEM, IdKind::Item, "a location")
    );
    assert_eq!(
        rejection(set(
            transformation(),
            "inputQuantityList",
            json!([{"epcClass": ITEM, "quantity": 1.0}])
        )),
        kind("inputQuantityList[0].epcClass", ITEM, IdKind::Item, "a lot")
    );
    assert_eq!(
        rejection(set(palletising(), "childEPCs", json!([CASE, CASE2, CASE]))),
        EventError::DuplicateIdentifier {
            field: "childEPCs[2]".into(),
            uri: CASE.into()
        }
    );
    assert_eq!(
        rejection(set(
            transformation(),
            "inputQuantityList",
            json!([{"epcClass": LOT, "quantity": 1.0}, {"epcClass": LOT, "quantity": 2.0}])
        )),
        EventError::DuplicateIdentifier {
            field: "inputQuantityList[1].epcClass".into(),
            uri: LOT.into()
        }
    );
}

#[test]
fn payload_uris_must_be_canonical() {
    let lower = "https://id.gs1.org/01/09506000134369/10/L%2f42";
    let err = rejection(set(
        transformation(),
        "inputQuantityList",
        json!([{"epcClass": lower, "quantity": 1.0}]),
    ));
    assert!(
        matches!(
            &err,
            EventError::Identifier { field, source: DigitalLinkError::NotCanonical { offset: 43, want } }
                if field == "inputQuantityList[0].epcClass" && want == LOT
        ),
        "{err:?}"
    );
    for not_canonical in [
        "https://example.com/01/09506000134352/21/ABC123",
        "https://id.gs1.org/01/9506000134352/21/ABC123",
        "https://id.gs1.org/01/09506000134352/10/L1/21/ABC123",
        "https://id.gs1.org/01/09506000134352/21/ABC123?17=250101",
    ] {
        let err = rejection(set(commissioning(), "epcList", json!([not_canonical])));
        assert!(
            matches!(&err, EventError::Identifier { field, source: DigitalLinkError::NotCanonical { .. } } if field == "epcList[0]"),
            "{not_canonical}: {err:?}"
        );
    }
    let err = rejection(set(
        commissioning(),
        "epcList",
        json!(["https://id.gs1.org/01/09506000134353/21/A"]),
    ));
    assert_eq!(
        err,
        EventError::Identifier {
            field: "epcList[0]".into(),
            source: DigitalLinkError::CheckDigit {
                what: "GTIN",
                got: 3,
                want: 2
            }
        }
    );
}

#[test]
fn disclosure_rule() {
    assert_eq!(
        rejection(set(packing(), "childEPCs", json!([ITEM, ITEM2]))),
        EventError::Disclosure { children: 2 }
    );
    // An item next to an SSCC is still two children.
    assert_eq!(
        rejection(set(
            set(packing(), "parentID", json!(PALLET)),
            "childEPCs",
            json!([CASE, ITEM])
        )),
        EventError::Disclosure { children: 2 }
    );
    // ...and next to a lot quantity.
    assert_eq!(
        rejection(set(
            packing(),
            "childQuantityList",
            json!([{"epcClass": LOT, "quantity": 3.0}])
        )),
        EventError::Disclosure { children: 2 }
    );
    // Many SSCCs are fine (palletising); the rule is the same for DELETE.
    assert!(serde_json::from_value::<Event>(palletising()).is_ok());
    assert_eq!(
        rejection(set(
            set(packing(), "action", json!("DELETE")),
            "childEPCs",
            json!([ITEM, ITEM2])
        )),
        EventError::Disclosure { children: 2 }
    );
}

#[test]
fn sequence_and_chain() {
    assert_eq!(
        rejection(set(packing(), "prov:seq", json!(0))),
        EventError::SeqZero
    );
    assert_eq!(
        rejection(set(packing(), "prov:prev", json!(ZERO))),
        EventError::PrevMismatch {
            seq: 7,
            prev: Hash32::ZERO
        }
    );
    assert_eq!(
        rejection(set(commissioning(), "prov:prev", json!(PREV))),
        EventError::PrevMismatch {
            seq: 1,
            prev: Hash32::from_hex(PREV).unwrap()
        }
    );
}

#[test]
fn quantities_and_numbers() {
    let with_q = |q: Json| {
        set(
            transformation(),
            "inputQuantityList",
            json!([{"epcClass": LOT, "quantity": q}]),
        )
    };
    assert!(matches!(
        rejection(with_q(json!(-1.0))),
        EventError::Quantity {
            want: "positive",
            ..
        }
    ));
    assert!(matches!(
        rejection(with_q(json!(0.0))),
        EventError::Quantity { .. }
    ));
    assert_eq!(
        rejection(with_q(json!(2.5))),
        EventError::Quantity {
            field: "inputQuantityList[0].quantity".into(),
            quantity: 2.5,
            want: "a whole number (a count: no uom)"
        }
    );
    // Not finite: only reachable from Rust or CBOR (JSON has no NaN).
    let mut ev = event(excursion());
    ev.sensor_element_list[0].sensor_report[1].max_value = Some(f64::INFINITY);
    let want = EventError::NotFinite {
        field: "sensorElementList[0].sensorReport[1].maxValue".into(),
    };
    assert_eq!(ev.validate(), Err(want.clone()));
    assert_eq!(Event::decode_payload(&ev.encode_payload()), Err(want));
    let mut ev = event(transformation());
    ev.input_quantity_list[0].quantity = f64::NAN;
    assert_eq!(
        Event::decode_payload(&ev.encode_payload()),
        Err(EventError::NotFinite {
            field: "inputQuantityList[0].quantity".into()
        })
    );
    let mut ev = event(commissioning());
    let ilmd = ev.ilmd.as_mut().unwrap();
    ilmd.0.insert(
        "z".into(),
        IlmdValue::Array(vec![IlmdValue::Int(1), IlmdValue::Float(f64::NAN)]),
    );
    assert_eq!(
        ev.validate(),
        Err(EventError::NotFinite {
            field: "ilmd.z[1]".into()
        })
    );
}

#[test]
fn empty_parts_are_refused() {
    let mut ev = event(excursion());
    ev.sensor_element_list[0].sensor_metadata = Some(SensorMetadata::default());
    assert_eq!(
        ev.validate(),
        Err(EventError::Empty {
            field: "sensorElementList[0].sensorMetadata".into()
        })
    );
    ev.sensor_element_list[0].sensor_metadata = None;
    ev.sensor_element_list[0].sensor_report.clear();
    assert_eq!(
        ev.validate(),
        Err(EventError::Empty {
            field: "sensorElementList[0].sensorReport".into()
        })
    );
    // Present-but-empty lists in CBOR.
    assert_eq!(
        rejection(set(commissioning(), "sourceList", json!([]))),
        EventError::Empty {
            field: "sourceList".into()
        }
    );
    assert_eq!(
        rejection(set(
            excursion(),
            "sensorElementList",
            json!([{"sensorReport": []}])
        )),
        EventError::Empty {
            field: "sensorElementList[0].sensorReport".into()
        }
    );
}

// ------------------------------------------------------------------------------------------------
// Decoding: strict types, names, bytes.
// ------------------------------------------------------------------------------------------------

#[test]
fn unknown_fields_are_refused_with_their_path() {
    assert_eq!(
        rejection(set(packing(), "eventID", json!("ni:///sha-256;00"))),
        EventError::UnknownField {
            field: "eventID".into()
        }
    );
    let mut json = excursion();
    json["sensorElementList"][0]["sensorReport"][2]["ex:feature"] = json!("x");
    assert_eq!(
        rejection(json),
        EventError::UnknownField {
            field: "sensorElementList[0].sensorReport[2].ex:feature".into()
        }
    );
    let mut json = packing();
    json["readPoint"]["extension"] = json!(1);
    assert_eq!(
        rejection(json),
        EventError::UnknownField {
            field: "readPoint.extension".into()
        }
    );
}

#[test]
fn wrong_types_name_the_field() {
    assert_eq!(
        rejection(set(packing(), "prov:seq", json!("7"))),
        EventError::WrongType {
            field: "prov:seq".into(),
            want: "unsigned integer",
            got: "text"
        }
    );
    // A quantity given as a CBOR integer (not what the README mapping produces).
    let mut cbor = event(transformation()).to_cbor();
    if let Value::Map(entries) = &mut cbor {
        for (k, v) in entries.iter_mut() {
            if k.as_text() == Some("inputQuantityList") {
                *v = Value::Array(vec![Value::map([
                    (Value::text("epcClass"), Value::text(LOT)),
                    (Value::text("quantity"), Value::Uint(2)),
                ])]);
            }
        }
    }
    assert_eq!(
        Event::from_cbor(&cbor),
        Err(EventError::WrongType {
            field: "inputQuantityList[0].quantity".into(),
            want: "float",
            got: "unsigned integer"
        })
    );
    assert_eq!(
        rejection(set(packing(), "childEPCs", json!(ITEM))),
        EventError::WrongType {
            field: "childEPCs".into(),
            want: "array",
            got: "text"
        }
    );
    assert_eq!(
        Event::from_cbor(&Value::Array(vec![])),
        Err(EventError::WrongType {
            field: String::new(),
            want: "map",
            got: "array"
        })
    );
    // prov:prev must be a byte string of 32 bytes.
    let mut cbor = event(packing()).to_cbor();
    if let Value::Map(entries) = &mut cbor {
        for (k, v) in entries.iter_mut() {
            if k.as_text() == Some("prov:prev") {
                *v = Value::Bytes(vec![1; 31]);
            }
        }
    }
    assert_eq!(
        Event::from_cbor(&cbor),
        Err(EventError::Length {
            field: "prov:prev".into(),
            got: 31,
            want: 32
        })
    );
    // Byte strings inside ilmd.
    let mut cbor = event(commissioning()).to_cbor();
    if let Value::Map(entries) = &mut cbor {
        for (k, v) in entries.iter_mut() {
            if k.as_text() == Some("ilmd") {
                *v = Value::map([(Value::text("blob"), Value::Bytes(vec![1]))]);
            }
        }
    }
    assert!(matches!(
        Event::from_cbor(&cbor),
        Err(EventError::WrongType { field, got: "byte string", .. }) if field == "ilmd.blob"
    ));
}

#[test]
fn missing_and_bad_common_fields() {
    assert_eq!(
        rejection(unset(packing(), "eventTime")),
        EventError::MissingField {
            field: "eventTime".into()
        }
    );
    assert_eq!(
        rejection(unset(packing(), "prov:device")),
        EventError::MissingField {
            field: "prov:device".into()
        }
    );
    for bad in [
        "2024-02-30T00:00:00.000Z",
        "2023-02-29T00:00:00.000Z",
        "2024-03-01T24:00:00.000Z",
        "2024-03-01T08:20:60.000Z",
        "2024-03-01T08:20:00Z",
        "2024-03-01T08:20:00.000+01:00",
        "1969-12-31T23:59:59.999Z",
    ] {
        assert!(
            matches!(rejection(set(packing(), "eventTime", json!(bad))), EventError::Time { ref field, .. } if field == "eventTime"),
            "{bad}"
        );
    }
    for bad in ["+1:00", "+15:00", "-00:00", "+01:60", "Z"] {
        assert!(
            matches!(
                rejection(set(packing(), "eventTimeZoneOffset", json!(bad))),
                EventError::Time { .. }
            ),
            "{bad}"
        );
    }
    assert!(matches!(
        rejection(set(packing(), "bizStep", json!("shiping"))),
        EventError::Vocabulary { ref field, .. } if field == "bizStep"
    ));
    assert!(matches!(
        rejection(set(packing(), "action", json!("add"))),
        EventError::Vocabulary { ref field, .. } if field == "action"
    ));
    assert!(matches!(
        rejection(set(packing(), "prov:device", json!("Line1"))),
        EventError::DeviceId { ref field, .. } if field == "prov:device"
    ));
    assert!(matches!(
        rejection(set(packing(), "type", json!("ExtendedEvent"))),
        EventError::Vocabulary { ref field, .. } if field == "type"
    ));
    let mut json = excursion();
    json["sensorElementList"][0]["sensorReport"][0]["uom"] = json!("cel");
    assert!(
        matches!(rejection(json), EventError::Text { ref field, .. } if field == "sensorElementList[0].sensorReport[0].uom")
    );
    let mut json = excursion();
    json["sensorElementList"][0]["sensorMetadata"]["deviceID"] = json!("not a uri");
    assert!(matches!(rejection(json), EventError::Text { .. }));
    let mut json = excursion();
    json["sensorElementList"][0]["sensorReport"][3]["hexBinaryValue"] = json!("abc");
    assert!(matches!(rejection(json), EventError::Text { .. }));
}

#[test]
fn clock_synced_true_is_refused() {
    assert_eq!(
        rejection(set(packing(), "prov:clockSynced", json!(true))),
        EventError::ClockSyncedTrue
    );
}

#[test]
fn duplicate_keys_in_a_hand_built_map_are_refused() {
    let cbor = event(packing()).to_cbor();
    let Value::Map(mut entries) = cbor else {
        unreachable!()
    };
    entries.push((Value::text("bizStep"), Value::text("packing")));
    assert_eq!(
        Event::from_cbor(&Value::Map(entries)),
        Err(EventError::DuplicateField {
            field: "bizStep".into()
        })
    );
}

#[test]
fn non_deterministic_payload_bytes_are_refused() {
    let payload = event(packing()).encode_payload();
    // prov:seq 7 written as a two-byte integer (0x18 0x07) instead of 0x07.
    let seq_at = payload
        .windows(9)
        .position(|w| w == b"\x68prov:seq")
        .unwrap()
        + 9;
    assert_eq!(payload[seq_at], 0x07);
    let mut longer = payload.clone();
    longer.splice(seq_at..=seq_at, [0x18, 0x07]);
    assert!(matches!(
        Event::decode_payload(&longer),
        Err(EventError::Cbor(CborError::NotDeterministic { .. }))
    ));
    // Keys out of canonical order.
    let Value::Map(entries) = event(packing()).to_cbor() else {
        unreachable!()
    };
    let mut reversed = vec![0xa0 | entries.len() as u8];
    for (k, v) in entries.iter().rev() {
        reversed.extend(k.encode());
        reversed.extend(v.encode());
    }
    assert!(matches!(
        Event::decode_payload(&reversed),
        Err(EventError::Cbor(CborError::MapKeyOrder { .. }))
    ));
    // A float quantity in a longer width than needed.
    let payload = event(transformation()).encode_payload();
    let at = payload
        .windows(3)
        .position(|w| w == [0xf9, 0x51, 0x00])
        .unwrap();
    let mut wide = payload.clone();
    wide.splice(at..at + 3, [0xfa, 0x42, 0x20, 0x00, 0x00]);
    assert!(matches!(
        decode_deterministic(&wide),
        Err(CborError::NotDeterministic { .. })
    ));
    assert!(matches!(
        Event::decode_payload(&wide),
        Err(EventError::Cbor(_))
    ));
    // Trailing bytes.
    let mut trailing = event(packing()).encode_payload();
    trailing.push(0);
    assert!(matches!(
        Event::decode_payload(&trailing),
        Err(EventError::Cbor(CborError::TrailingBytes { got: 1 }))
    ));
}

// ------------------------------------------------------------------------------------------------
// The JSON form is as strict as the CBOR one.
// ------------------------------------------------------------------------------------------------

#[test]
fn json_form_refuses_null_empty_lists_unknown_fields_and_uppercase_hex() {
    let bad = [
        set(packing(), "bizStep", Json::Null),
        set(packing(), "parentID", Json::Null),
        set(packing(), "sourceList", json!([])),
        set(packing(), "unknown", json!(1)),
        set(packing(), "prov:prev", json!(PREV.to_uppercase())),
        set(packing(), "prov:prev", json!(&PREV[2..])),
        set(packing(), "prov:clockSynced", json!(true)),
        set(commissioning(), "ilmd", json!({"a": null})),
        set(
            packing(),
            "parentID",
            json!("https://id.gs1.org/00/106141412345678908/"),
        ),
    ];
    for json in bad {
        assert!(
            serde_json::from_value::<Event>(json.clone()).is_err(),
            "accepted {json}"
        );
    }
}

#[test]
fn json_entrance_validates() {
    let err = serde_json::from_value::<Event>(set(packing(), "childEPCs", json!([ITEM, ITEM2])))
        .unwrap_err()
        .to_string();
    assert!(err.contains("disclosure rule"), "{err}");
}

#[test]
fn error_messages_carry_evidence() {
    let err = rejection(set(commissioning(), "epcList", json!([LOT])));
    assert_eq!(
        err.to_string(),
        format!("epcList[0]: {LOT} is a lot identifier, want an item or SSCC")
    );
    assert_eq!(err.field(), Some("epcList[0]"));
}

#[test]
fn uom_and_quantity_types() {
    let q = QuantityElement {
        epc_class: dl(LOT),
        quantity: 1.5,
        uom: Some(Uom::parse("KGM").unwrap()),
    };
    assert_eq!(
        serde_json::to_value(&q).unwrap(),
        json!({"epcClass": LOT, "quantity": 1.5, "uom": "KGM"})
    );
    assert!(Uom::parse("KG").is_ok());
    assert!(Uom::parse("KGMS").is_err());
    let r = SensorReport::new(MeasurementType::Temperature);
    assert_eq!(
        serde_json::to_value(&r).unwrap(),
        json!({"type": "Temperature"})
    );
    assert_eq!(Ilmd::default().0.len(), 0);
}

#[test]
fn declared_lots_map_items_to_lots_of_their_gtin() {
    let mut j = commissioning();
    j["ilmd"] = json!({"cbvmda:lotNumber": "PWD/26"});
    let e = event(j.clone());
    let lots = e.declared_lots();
    assert!(!lots.is_empty());
    for (item, lot) in &lots {
        assert_eq!(item.kind(), IdKind::Item);
        assert_eq!(lot.kind(), IdKind::Lot);
        assert_eq!(lot.gtin(), item.gtin());
        assert!(
            lot.canonical().ends_with("/10/PWD%2F26"),
            "{}",
            lot.canonical()
        );
    }
    // No lot declared, or not a valid lot: nothing.
    j["ilmd"] = json!({"cbvmda:bestBeforeDate": "2027-01-01"});
    assert!(event(j).declared_lots().is_empty());
    assert!(event(packing()).declared_lots().is_empty());
}
