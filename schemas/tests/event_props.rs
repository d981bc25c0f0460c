//! Property tests over generated valid events of every type: JSON ↔ Rust ↔ CBOR round trips, the
//! CBOR bytes equal to an independent JSON→CBOR conversion by the vectors README's rule, and
//! decoding that never panics on mutated payloads.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use proptest::prelude::*;
use prov_schemas::Hash32;
use prov_schemas::cbor::Value;
use prov_schemas::digital_link::{DigitalLink, Gln, Gtin, Lot, Serial, Sscc};
use prov_schemas::event::{
    Action, BizStep, BizTransaction, BizTransactionType, Component, Destination, Disposition,
    Event, EventTime, EventType, HexBinary, Ilmd, IlmdValue, LocationRef, MAX_UNIX_MILLIS,
    MeasurementType, QuantityElement, RESERVED_ILMD_KEYS, SensorAlert, SensorElement,
    SensorMetadata, SensorReport, Source, SourceDestType, TzOffset, Uom, Uri,
};
use prov_schemas::keys::DeviceId;
use serde_json::Value as Json;

// ------------------------------------------------------------------------------------------------
// The README's JSON → CBOR rule, independently of the crate's serde and CBOR code.
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

// ------------------------------------------------------------------------------------------------
// Generators.
// ------------------------------------------------------------------------------------------------

const AI82: &[u8] =
    b"!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz";

fn ai82() -> impl Strategy<Value = String> {
    proptest::collection::vec(proptest::sample::select(AI82), 1..=20)
        .prop_map(|b| String::from_utf8(b).unwrap())
}

fn with_check(body: &[u8]) -> String {
    let body: String = body.iter().map(|d| char::from(b'0' + d)).collect();
    let sum: u32 = body
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| u32::from(b - b'0') * if i % 2 == 0 { 3 } else { 1 })
        .sum();
    format!("{body}{}", (10 - sum % 10) % 10)
}

fn digits(n: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(0u8..10, n).prop_map(|d| with_check(&d))
}

fn item() -> impl Strategy<Value = DigitalLink> {
    (digits(13), ai82()).prop_map(|(g, s)| DigitalLink::Item {
        gtin: Gtin::parse(&g).unwrap(),
        serial: Serial::parse(&s).unwrap(),
    })
}

fn lot() -> impl Strategy<Value = DigitalLink> {
    (digits(13), ai82()).prop_map(|(g, l)| DigitalLink::Lot {
        gtin: Gtin::parse(&g).unwrap(),
        lot: Lot::parse(&l).unwrap(),
    })
}

fn sscc() -> impl Strategy<Value = DigitalLink> {
    digits(17).prop_map(|s| DigitalLink::Sscc(Sscc::parse(&s).unwrap()))
}

fn location() -> impl Strategy<Value = LocationRef> {
    digits(12).prop_map(|g| LocationRef {
        id: DigitalLink::Location(Gln::parse(&g).unwrap()),
    })
}

fn item_or_sscc() -> impl Strategy<Value = DigitalLink> {
    prop_oneof![item(), sscc()]
}

fn unique<T: PartialEq + Clone>(items: Vec<T>, key: impl Fn(&T) -> DigitalLink) -> Vec<T> {
    let mut out: Vec<T> = Vec::new();
    for i in items {
        if !out.iter().any(|o| key(o) == key(&i)) {
            out.push(i);
        }
    }
    out
}

fn epcs(max: usize) -> impl Strategy<Value = Vec<DigitalLink>> {
    proptest::collection::vec(item_or_sscc(), 1..=max).prop_map(|v| unique(v, |d| d.clone()))
}

fn uom() -> impl Strategy<Value = Uom> {
    proptest::sample::select(vec!["KGM", "LTR", "MTR", "CEL", "P1", "A93", "GRM"])
        .prop_map(|u| Uom::parse(u).unwrap())
}

fn finite() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>().prop_filter("finite", |x| x.is_finite()),
        any::<f32>()
            .prop_filter("finite", |x| x.is_finite())
            .prop_map(f64::from),
        (-4000i32..4000).prop_map(|n| f64::from(n) / 8.0),
    ]
}

fn quantity() -> impl Strategy<Value = QuantityElement> {
    prop_oneof![
        (lot(), 1u32..1_000_000).prop_map(|(l, n)| QuantityElement {
            epc_class: l,
            quantity: f64::from(n),
            uom: None
        }),
        (
            lot(),
            finite()
                .prop_map(|x| x.abs())
                .prop_filter("positive", |x| *x > 0.0),
            uom()
        )
            .prop_map(|(l, q, u)| QuantityElement {
                epc_class: l,
                quantity: q,
                uom: Some(u)
            }),
    ]
}

fn quantities(max: usize) -> impl Strategy<Value = Vec<QuantityElement>> {
    proptest::collection::vec(quantity(), 1..=max).prop_map(|v| unique(v, |q| q.epc_class.clone()))
}

fn time() -> impl Strategy<Value = EventTime> {
    (0..=MAX_UNIX_MILLIS).prop_map(|ms| EventTime::from_unix_millis(ms).unwrap())
}

fn uri() -> impl Strategy<Value = Uri> {
    "(urn:epc:id:giai:[0-9]{7}\\.[0-9]{1,5}|https://example\\.com/[a-z0-9/]{1,20})"
        .prop_map(|s| Uri::parse(&s).unwrap())
}

fn pick<T: Copy + std::fmt::Debug + 'static>(all: &'static [T]) -> impl Strategy<Value = T> {
    proptest::sample::select(all)
}

fn report() -> impl Strategy<Value = SensorReport> {
    (
        pick(MeasurementType::ALL),
        proptest::option::of(pick(SensorAlert::ALL)),
        proptest::option::of(finite()),
        proptest::option::of(uom()),
        proptest::option::of(time()),
        proptest::option::of((finite(), finite(), finite())),
        proptest::option::of(pick(Component::ALL)),
        proptest::option::of(uri()),
        proptest::option::of(any::<bool>()),
        proptest::option::of("[0-9a-f]{2,16}".prop_filter("even", |s| s.len() % 2 == 0)),
        proptest::option::of(".{0,20}"),
    )
        .prop_map(
            |(t, exc, value, uom, time, stats, comp, dev, b, hex, text)| {
                let mut r = SensorReport::new(t);
                r.exception = exc;
                r.value = value;
                r.uom = uom;
                r.time = time;
                if let Some((a, b, c)) = stats {
                    r.min_value = Some(a);
                    r.max_value = Some(b);
                    r.mean_value = Some(c);
                }
                r.component = comp;
                r.device_id = dev;
                r.boolean_value = b;
                r.hex_binary_value = hex.map(|h| HexBinary::parse(&h).unwrap());
                r.string_value = text;
                r
            },
        )
}

fn sensor_element() -> impl Strategy<Value = SensorElement> {
    (
        proptest::option::of((time(), proptest::option::of(uri()))),
        proptest::collection::vec(report(), 1..4),
    )
        .prop_map(|(meta, reports)| SensorElement {
            sensor_metadata: meta.map(|(t, d)| SensorMetadata {
                time: Some(t),
                device_id: d,
                ..SensorMetadata::default()
            }),
            sensor_report: reports,
        })
}

fn ilmd_key(pattern: &'static str) -> impl Strategy<Value = String> {
    pattern.prop_filter("reserved", |k| !RESERVED_ILMD_KEYS.contains(&k.as_str()))
}

fn ilmd_value() -> impl Strategy<Value = IlmdValue> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(IlmdValue::Int),
        finite().prop_map(IlmdValue::Float),
        ".{0,12}".prop_map(IlmdValue::Text),
        any::<bool>().prop_map(IlmdValue::Bool),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(IlmdValue::Array),
            proptest::collection::btree_map(ilmd_key("[a-z:]{1,8}"), inner, 0..4)
                .prop_map(IlmdValue::Map),
        ]
    })
}

fn ilmd() -> impl Strategy<Value = Ilmd> {
    proptest::collection::btree_map(ilmd_key("[a-z]{1,6}:[a-zA-Z]{1,10}"), ilmd_value(), 1..4)
        .prop_map(|m: BTreeMap<String, IlmdValue>| Ilmd(m))
}

/// Everything common to all event types.
fn base(t: EventType) -> impl Strategy<Value = Event> {
    (
        (
            time(),
            (-840i16..=840).prop_map(|m| TzOffset::from_minutes(m).unwrap()),
            "[a-z0-9][a-z0-9._-]{0,30}".prop_map(|d| DeviceId::new(&d).unwrap()),
            prop_oneof![Just(1u64), 2u64..=u64::MAX],
            any::<[u8; 32]>().prop_filter("non-zero", |h| *h != [0; 32]),
            any::<bool>(),
        ),
        proptest::option::of(pick(BizStep::ALL)),
        proptest::option::of(pick(Disposition::ALL)),
        proptest::option::of(location()),
        proptest::option::of(location()),
        proptest::collection::vec(sensor_element(), 0..2),
        proptest::collection::vec(
            (proptest::option::of(pick(BizTransactionType::ALL)), uri()).prop_map(
                |(kind, biz_transaction)| BizTransaction {
                    kind,
                    biz_transaction,
                },
            ),
            0..3,
        ),
        proptest::collection::vec((pick(SourceDestType::ALL), uri(), any::<bool>()), 0..3),
    )
        .prop_map(
            move |((time, tz, device, seq, prev, synced), step, disp, rp, bl, sensors, txs, sd)| {
                let prev = if seq == 1 { Hash32::ZERO } else { Hash32(prev) };
                let mut e = Event::new(t, time, tz, device, seq, prev);
                e.clock_synced = synced;
                e.biz_step = step;
                e.disposition = disp;
                e.read_point = rp;
                e.biz_location = bl;
                e.sensor_element_list = sensors;
                e.biz_transaction_list = txs;
                for (kind, uri, is_source) in sd {
                    if is_source {
                        e.source_list.push(Source { kind, source: uri });
                    } else {
                        e.destination_list.push(Destination {
                            kind,
                            destination: uri,
                        });
                    }
                }
                e
            },
        )
}

fn action() -> impl Strategy<Value = Action> {
    pick(Action::ALL)
}

fn object() -> impl Strategy<Value = Event> {
    (
        base(EventType::Object),
        action(),
        proptest::collection::vec(item_or_sscc(), 0..4),
        proptest::collection::vec(quantity(), 0..3),
        proptest::option::of(ilmd()),
        item(),
    )
        .prop_map(|(mut e, action, epcs, qs, ilmd, fallback)| {
            e.action = Some(action);
            e.epc_list = unique(epcs, |d| d.clone());
            e.quantity_list = unique(qs, |q| q.epc_class.clone());
            if e.epc_list.is_empty() && e.quantity_list.is_empty() {
                e.epc_list.push(fallback);
            }
            if action == Action::Add {
                e.ilmd = ilmd;
            }
            e
        })
}

fn aggregation() -> impl Strategy<Value = Event> {
    (
        base(EventType::Aggregation),
        action(),
        sscc(),
        any::<bool>(),
        prop_oneof![
            item().prop_map(|i| (vec![i], vec![])),
            (
                proptest::collection::vec(sscc(), 1..5),
                proptest::collection::vec(quantity(), 0..3)
            ),
            quantities(3).prop_map(|q| (vec![], q)),
        ],
    )
        .prop_map(|(mut e, action, parent, drop_parent, (children, qs))| {
            e.action = Some(action);
            e.parent_id = (action != Action::Observe || !drop_parent).then_some(parent);
            e.child_epcs = unique(children, |d| d.clone());
            e.child_quantity_list = unique(qs, |q| q.epc_class.clone());
            e
        })
}

fn transformation() -> impl Strategy<Value = Event> {
    (
        base(EventType::Transformation),
        prop_oneof![
            epcs(3).prop_map(|e| (e, vec![])),
            quantities(3).prop_map(|q| (vec![], q))
        ],
        prop_oneof![
            epcs(3).prop_map(|e| (e, vec![])),
            quantities(3).prop_map(|q| (vec![], q))
        ],
        proptest::option::of(ilmd()),
    )
        .prop_map(|(mut e, (ie, iq), (oe, oq), ilmd)| {
            e.input_epc_list = ie;
            e.input_quantity_list = iq;
            e.output_epc_list = oe;
            e.output_quantity_list = oq;
            e.ilmd = ilmd;
            e
        })
}

fn association() -> impl Strategy<Value = Event> {
    (
        base(EventType::Association),
        action(),
        item_or_sscc(),
        epcs(3),
    )
        .prop_map(|(mut e, action, parent, children)| {
            e.action = Some(action);
            e.parent_id = Some(parent);
            e.child_epcs = children;
            e
        })
}

fn transaction() -> impl Strategy<Value = Event> {
    (
        base(EventType::Transaction),
        action(),
        proptest::option::of(item_or_sscc()),
        proptest::collection::vec(item_or_sscc(), 0..3),
        uri(),
    )
        .prop_map(|(mut e, action, parent, epcs, tx)| {
            e.action = Some(action);
            e.parent_id = parent;
            e.epc_list = unique(epcs, |d| d.clone());
            if e.biz_transaction_list.is_empty() {
                e.biz_transaction_list.push(BizTransaction {
                    kind: None,
                    biz_transaction: tx,
                });
            }
            e
        })
}

fn any_event() -> impl Strategy<Value = Event> {
    prop_oneof![
        object(),
        aggregation(),
        transformation(),
        association(),
        transaction()
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn generated_events_are_valid_and_round_trip(ev in any_event()) {
        prop_assert_eq!(ev.validate(), Ok(()));
        // JSON ↔ Rust.
        let json = serde_json::to_value(&ev).unwrap();
        let back: Event = serde_json::from_value(json.clone()).unwrap();
        prop_assert_eq!(&back, &ev);
        // (Not JSON *text*: serde_json without its `float_roundtrip` feature may read a float
        // back 1 ULP off, e.g. 1.7103586060777677e-20. Python's json module reads exactly.)
        // Rust ↔ CBOR, and CBOR = README mapping of the JSON form.
        let payload = ev.encode_payload();
        prop_assert_eq!(&payload, &json_to_cbor(None, &json).encode());
        prop_assert_eq!(&Event::decode_payload(&payload).unwrap(), &ev);
    }

    #[test]
    fn mutated_payloads_never_panic(ev in any_event(), at in any::<usize>(), byte in any::<u8>()) {
        let mut payload = ev.encode_payload();
        let i = at % payload.len();
        payload[i] = byte;
        if let Ok(decoded) = Event::decode_payload(&payload) {
            // Whatever decodes is valid and re-encodes to exactly the input.
            prop_assert_eq!(decoded.validate(), Ok(()));
            prop_assert_eq!(&decoded.encode_payload(), &payload);
        }
        payload.truncate(i);
        prop_assert!(Event::decode_payload(&payload).is_err());
    }
}
