//! Property tests of the deterministic CBOR codec: every value round-trips, the encoding is a
//! fixed point of decode→encode, and mutated encodings never decode to a different value silently.

use proptest::prelude::*;
use prov_schemas::cbor::{Value, decode_deterministic};

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<u64>().prop_map(Value::Uint),
        any::<u64>().prop_map(Value::Nint),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Value::Bytes),
        ".{0,30}".prop_map(Value::Text),
        any::<bool>().prop_map(Value::Bool),
        any::<f64>()
            .prop_filter("NaN payloads collapse to one NaN", |x| !x.is_nan())
            .prop_map(Value::Float),
        any::<f32>()
            .prop_filter("no NaN", |x| !x.is_nan())
            .prop_map(|x| Value::Float(f64::from(x))),
        (-1000i32..1000).prop_map(|n| Value::Float(f64::from(n) / 4.0)),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            proptest::collection::vec((".{0,12}".prop_map(Value::Text), inner), 0..8)
                .prop_map(Value::map),
        ]
    })
}

proptest! {
    #[test]
    fn round_trip(v in value()) {
        let bytes = v.encode();
        let back = decode_deterministic(&bytes).expect("canonical bytes decode");
        prop_assert_eq!(back.encode(), bytes);
        prop_assert_eq!(back, v);
    }

    #[test]
    fn single_byte_mutants_are_rejected_or_decode_to_another_canonical_value(
        v in value(), pos in any::<prop::sample::Index>(), xor in 1u8..=255,
    ) {
        let bytes = v.encode();
        let mut m = bytes.clone();
        let i = pos.index(m.len());
        m[i] ^= xor;
        // Either rejected with a typed error, or accepted only because the mutant is itself the
        // canonical encoding of some other value (e.g. a changed digit in a string).
        if let Ok(other) = decode_deterministic(&m) {
            prop_assert_eq!(other.encode(), m);
            prop_assert_ne!(other, v);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(v) = decode_deterministic(&bytes) {
            prop_assert_eq!(v.encode(), bytes);
        }
    }
}
