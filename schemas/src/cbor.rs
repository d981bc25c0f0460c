//! Deterministic CBOR (RFC 8949 §4.2.1), the encoding of every payload and chain block.
//!
//! Why a value tree and a strict decoder: SPEC §2 makes the payload's *bytes* part of what is
//! signed and hashed, so two encodings of the same data must never both be accepted. The rule is
//! the SPEC's own: a receiver decodes, re-encodes deterministically and rejects the message if the
//! bytes differ. [`decode_deterministic`] does exactly that, and reports the first offset where
//! the input departs from the canonical form.
//!
//! Deterministic here means: definite lengths only; integers, lengths and tags in their shortest
//! form; floats in the shortest of f16/f32/f64 that keeps the value exactly (NaN as `f9 7e00`);
//! map keys sorted bytewise by their encoding, no duplicates. `null`, `undefined`, other simple
//! values and tags are not part of our data model (SPEC §2: absent fields are omitted, never null)
//! and are rejected.
//!
//! The byte-level work is done by `minicbor` (no_std, no allocation of its own); this module adds
//! the value tree, the canonical ordering and the strictness.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use minicbor::data::Type;

/// Deepest nesting accepted from outside input: protects the decoder's stack from hostile input
/// (a 16 KiB message could otherwise nest thousands of arrays).
pub const MAX_DEPTH: usize = 32;

/// A CBOR data item of our data model.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Major type 0: an unsigned integer.
    Uint(u64),
    /// Major type 1: the negative integer `-1 - n`.
    Nint(u64),
    /// Major type 2: a byte string.
    Bytes(Vec<u8>),
    /// Major type 3: a UTF-8 text string.
    Text(String),
    /// Major type 4: an array.
    Array(Vec<Value>),
    /// Major type 5: a map. Kept in canonical key order by [`Value::map`] and by the decoder.
    Map(Vec<(Value, Value)>),
    /// `true` or `false`.
    Bool(bool),
    /// A floating-point number, encoded in its shortest exact width.
    Float(f64),
}

/// Why a CBOR input was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CborError {
    /// The input is not well-formed CBOR (truncated, bad UTF-8, bad header…).
    #[error("malformed CBOR at byte {offset}: {reason}")]
    Malformed {
        /// Byte offset where decoding failed.
        offset: usize,
        /// What the decoder said.
        reason: String,
    },
    /// A well-formed item that is outside our data model (null, undefined, tag, simple value,
    /// indefinite length).
    #[error("unsupported CBOR item at byte {offset}: {what}")]
    Unsupported {
        /// Byte offset of the item.
        offset: usize,
        /// What kind of item it was.
        what: &'static str,
    },
    /// Nesting deeper than [`MAX_DEPTH`].
    #[error("CBOR nested deeper than {max} levels at byte {offset}")]
    TooDeep {
        /// Byte offset of the item that went too deep.
        offset: usize,
        /// The limit.
        max: usize,
    },
    /// A map key is not strictly greater (bytewise, by encoding) than the key before it.
    #[error("map key at byte {offset} is out of canonical order or duplicated")]
    MapKeyOrder {
        /// Byte offset of the offending key.
        offset: usize,
    },
    /// Bytes left after the single top-level item.
    #[error("{got} trailing bytes after the CBOR item")]
    TrailingBytes {
        /// How many bytes were left.
        got: usize,
    },
    /// The input decodes, but is not the deterministic encoding of what it decodes to.
    #[error(
        "CBOR is not deterministic: first difference at byte {offset} (got {got:#04x}, want {want:#04x})"
    )]
    NotDeterministic {
        /// First differing offset.
        offset: usize,
        /// The input's byte there (0 past its end).
        got: u8,
        /// The canonical encoding's byte there (0 past its end).
        want: u8,
    },
}

impl Value {
    /// A text value.
    pub fn text(s: impl Into<String>) -> Value {
        Value::Text(s.into())
    }

    /// A signed integer value.
    pub fn int(n: i64) -> Value {
        if n >= 0 {
            Value::Uint(n as u64)
        } else {
            // -1 - n' = n  =>  n' = -1 - n = !n (two's complement), always >= 0 here.
            Value::Nint(!n as u64)
        }
    }

    /// A map from (key, value) pairs, put into canonical key order. A later duplicate key
    /// replaces an earlier one.
    pub fn map(entries: impl IntoIterator<Item = (Value, Value)>) -> Value {
        let mut keyed: Vec<(Vec<u8>, Value, Value)> = Vec::new();
        for (k, v) in entries {
            let enc = k.encode();
            match keyed.iter_mut().find(|(e, _, _)| *e == enc) {
                Some(slot) => slot.2 = v,
                None => keyed.push((enc, k, v)),
            }
        }
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        Value::Map(keyed.into_iter().map(|(_, k, v)| (k, v)).collect())
    }

    /// The text, if this is a text string.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }

    /// The bytes, if this is a byte string.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The integer, if this is an unsigned integer.
    pub fn as_uint(&self) -> Option<u64> {
        match self {
            Value::Uint(n) => Some(*n),
            _ => None,
        }
    }

    /// The items, if this is an array.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(items) => Some(items),
            _ => None,
        }
    }

    /// The entries, if this is a map.
    pub fn as_map(&self) -> Option<&[(Value, Value)]> {
        match self {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// For a map with text keys: the value under `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.as_text() == Some(key))
            .map(|(_, v)| v)
    }

    /// The deterministic encoding of this value.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    /// Appends the deterministic encoding of this value to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let mut e = minicbor::Encoder::new(&mut *out);
        // Writing into a Vec cannot fail (`Infallible`), so the results carry no information.
        match self {
            Value::Uint(n) => {
                let _ = e.u64(*n);
            }
            Value::Nint(n) => {
                // -1 - n always fits the CBOR negative range, so the conversion cannot fail.
                if let Ok(i) = minicbor::data::Int::try_from(-1 - i128::from(*n)) {
                    let _ = e.int(i);
                }
            }
            Value::Bytes(b) => {
                let _ = e.bytes(b);
            }
            Value::Text(s) => {
                let _ = e.str(s);
            }
            Value::Bool(b) => {
                let _ = e.bool(*b);
            }
            Value::Float(x) => encode_float(*x, out),
            Value::Array(items) => {
                let _ = e.array(items.len() as u64);
                for item in items {
                    item.encode_into(out);
                }
            }
            Value::Map(entries) => {
                let _ = e.map(entries.len() as u64);
                let mut encoded: Vec<(Vec<u8>, &Value)> =
                    entries.iter().map(|(k, v)| (k.encode(), v)).collect();
                encoded.sort_by(|a, b| a.0.cmp(&b.0));
                for (k, v) in encoded {
                    out.extend_from_slice(&k);
                    v.encode_into(out);
                }
            }
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Text(s.to_string())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Text(s)
    }
}

impl From<u64> for Value {
    fn from(n: u64) -> Value {
        Value::Uint(n)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

/// Writes `x` in the shortest of f16, f32, f64 that represents it exactly (RFC 8949 §4.2.2's
/// preferred serialization; NaN as the canonical quiet NaN `f9 7e00`).
fn encode_float(x: f64, out: &mut Vec<u8>) {
    if x.is_nan() {
        out.extend_from_slice(&[0xf9, 0x7e, 0x00]);
        return;
    }
    let h = half::f16::from_f64(x);
    if h.to_f64() == x {
        out.push(0xf9);
        out.extend_from_slice(&h.to_bits().to_be_bytes());
        return;
    }
    let f = x as f32;
    if f64::from(f) == x {
        out.push(0xfa);
        out.extend_from_slice(&f.to_be_bytes());
        return;
    }
    out.push(0xfb);
    out.extend_from_slice(&x.to_be_bytes());
}

/// Decodes one data item that must make up the whole input and be in deterministic form.
///
/// This is the only decoder outside input should reach: it returns a typed error, never panics,
/// and accepts exactly the bytes [`Value::encode`] would produce.
pub fn decode_deterministic(bytes: &[u8]) -> Result<Value, CborError> {
    let mut d = minicbor::Decoder::new(bytes);
    let value = decode_item(&mut d, 0)?;
    let rest = bytes.len() - d.position();
    if rest != 0 {
        return Err(CborError::TrailingBytes { got: rest });
    }
    let canonical = value.encode();
    if canonical != bytes {
        let offset = canonical
            .iter()
            .zip(bytes)
            .position(|(a, b)| a != b)
            .unwrap_or(canonical.len().min(bytes.len()));
        return Err(CborError::NotDeterministic {
            offset,
            got: bytes.get(offset).copied().unwrap_or(0),
            want: canonical.get(offset).copied().unwrap_or(0),
        });
    }
    Ok(value)
}

fn malformed(offset: usize, e: minicbor::decode::Error) -> CborError {
    CborError::Malformed {
        offset,
        reason: e.to_string(),
    }
}

fn decode_item(d: &mut minicbor::Decoder<'_>, depth: usize) -> Result<Value, CborError> {
    let at = d.position();
    if depth > MAX_DEPTH {
        return Err(CborError::TooDeep {
            offset: at,
            max: MAX_DEPTH,
        });
    }
    let ty = d.datatype().map_err(|e| malformed(at, e))?;
    let unsupported = |what| Err(CborError::Unsupported { offset: at, what });
    match ty {
        Type::U8 | Type::U16 | Type::U32 | Type::U64 => {
            d.u64().map(Value::Uint).map_err(|e| malformed(at, e))
        }
        Type::I8 | Type::I16 | Type::I32 | Type::I64 | Type::Int => {
            let n = d.int().map_err(|e| malformed(at, e))?;
            let n = i128::from(n);
            if n >= 0 {
                Ok(Value::Uint(n as u64))
            } else {
                Ok(Value::Nint((-1 - n) as u64))
            }
        }
        Type::F16 => d
            .f16()
            .map(|x| Value::Float(f64::from(x)))
            .map_err(|e| malformed(at, e)),
        Type::F32 => d
            .f32()
            .map(|x| Value::Float(f64::from(x)))
            .map_err(|e| malformed(at, e)),
        Type::F64 => d.f64().map(Value::Float).map_err(|e| malformed(at, e)),
        Type::Bool => d.bool().map(Value::Bool).map_err(|e| malformed(at, e)),
        Type::Bytes => d
            .bytes()
            .map(|b| Value::Bytes(b.to_vec()))
            .map_err(|e| malformed(at, e)),
        Type::String => d
            .str()
            .map(|s| Value::Text(s.to_string()))
            .map_err(|e| malformed(at, e)),
        Type::Array => {
            let len = d
                .array()
                .map_err(|e| malformed(at, e))?
                .ok_or(CborError::Unsupported {
                    offset: at,
                    what: "indefinite-length array",
                })?;
            // Every item takes at least one byte: a length beyond the input is a lie, and
            // must not drive an allocation.
            check_len(d, at, len)?;
            let mut items = Vec::with_capacity(len as usize);
            for _ in 0..len {
                items.push(decode_item(d, depth + 1)?);
            }
            Ok(Value::Array(items))
        }
        Type::Map => {
            let len = d
                .map()
                .map_err(|e| malformed(at, e))?
                .ok_or(CborError::Unsupported {
                    offset: at,
                    what: "indefinite-length map",
                })?;
            check_len(d, at, len.saturating_mul(2))?;
            let mut entries: Vec<(Value, Value)> = Vec::with_capacity(len as usize);
            let mut prev_key: Option<&[u8]> = None;
            for _ in 0..len {
                let key_at = d.position();
                let key = decode_item(d, depth + 1)?;
                let key_bytes = d.input().get(key_at..d.position()).unwrap_or_default();
                if prev_key.is_some_and(|p| p >= key_bytes) {
                    return Err(CborError::MapKeyOrder { offset: key_at });
                }
                prev_key = Some(key_bytes);
                let value = decode_item(d, depth + 1)?;
                entries.push((key, value));
            }
            Ok(Value::Map(entries))
        }
        Type::Null => unsupported("null"),
        Type::Undefined => unsupported("undefined"),
        Type::Simple => unsupported("simple value"),
        Type::Tag => unsupported("tag"),
        Type::BytesIndef => unsupported("indefinite-length byte string"),
        Type::StringIndef => unsupported("indefinite-length text string"),
        Type::ArrayIndef => unsupported("indefinite-length array"),
        Type::MapIndef => unsupported("indefinite-length map"),
        Type::Break => unsupported("break"),
        Type::Unknown(_) => unsupported("unknown major type"),
    }
}

fn check_len(d: &minicbor::Decoder<'_>, at: usize, items: u64) -> Result<(), CborError> {
    let left = (d.input().len() - d.position()) as u64;
    if items > left {
        return Err(CborError::Malformed {
            offset: at,
            reason: alloc::format!("length {items} exceeds the {left} bytes left"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn hex(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    #[test]
    fn rfc8949_appendix_a_examples() {
        // (value, canonical encoding) pairs from RFC 8949 Appendix A.
        let cases: Vec<(Value, &str)> = vec![
            (Value::Uint(0), "00"),
            (Value::Uint(23), "17"),
            (Value::Uint(24), "1818"),
            (Value::Uint(1_000_000), "1a000f4240"),
            (Value::Uint(u64::MAX), "1bffffffffffffffff"),
            (Value::int(-1), "20"),
            (Value::int(-1000), "3903e7"),
            (Value::Nint(u64::MAX), "3bffffffffffffffff"),
            (Value::Float(0.0), "f90000"),
            (Value::Float(-0.0), "f98000"),
            (Value::Float(1.0), "f93c00"),
            (Value::Float(1.1), "fb3ff199999999999a"),
            (Value::Float(1.5), "f93e00"),
            (Value::Float(65504.0), "f97bff"),
            (Value::Float(100000.0), "fa47c35000"),
            (Value::Float(5.960464477539063e-8), "f90001"),
            (Value::Float(-4.1), "fbc010666666666666"),
            (Value::Float(f64::INFINITY), "f97c00"),
            (Value::Float(f64::NAN), "f97e00"),
            (Value::Bool(true), "f5"),
            (Value::Bytes(vec![1, 2, 3, 4]), "4401020304"),
            (Value::text("IETF"), "6449455446"),
            (Value::text("\u{6c34}"), "63e6b0b4"),
            (Value::Array(vec![Value::Uint(1), Value::Uint(2)]), "820102"),
            (
                Value::map([
                    (Value::text("a"), Value::Uint(1)),
                    (Value::text("b"), Value::Uint(2)),
                ]),
                "a2616101616202",
            ),
        ];
        for (value, want) in cases {
            assert_eq!(hex::encode(value.encode()), want, "{value:?}");
            let back = decode_deterministic(&hex(want)).unwrap();
            assert_eq!(back.encode(), hex(want));
        }
    }

    #[test]
    fn map_keys_sort_bytewise_by_encoding() {
        // Shorter text keys sort first because the length is in the header byte.
        let m = Value::map([
            (Value::text("eventTime"), Value::Uint(1)),
            (Value::text("type"), Value::Uint(2)),
            (Value::text("action"), Value::Uint(3)),
        ]);
        let keys: Vec<&str> = m
            .as_map()
            .unwrap()
            .iter()
            .map(|(k, _)| k.as_text().unwrap())
            .collect();
        assert_eq!(keys, ["type", "action", "eventTime"]);
        // Integer keys: 1 before 4 (the COSE protected header).
        let h = Value::map([
            (Value::Uint(4), Value::Bytes(vec![])),
            (Value::Uint(1), Value::int(-7)),
        ]);
        assert_eq!(hex::encode(h.encode()), "a201260440");
    }

    /// A predicate over the error a rejected input must produce.
    type Expect = fn(&CborError) -> bool;

    #[test]
    fn rejects_every_non_canonical_form() {
        let cases: &[(&str, Expect)] = &[
            ("1817", |e| {
                matches!(e, CborError::NotDeterministic { offset: 0, .. })
            }),
            ("190005", |e| {
                matches!(e, CborError::NotDeterministic { .. })
            }),
            ("fa3f800000", |e| {
                matches!(e, CborError::NotDeterministic { .. })
            }),
            ("fb3ff0000000000000", |e| {
                matches!(e, CborError::NotDeterministic { .. })
            }),
            ("f97e01", |e| {
                matches!(e, CborError::NotDeterministic { .. })
            }),
            ("5801ff", |e| {
                matches!(e, CborError::NotDeterministic { .. })
            }),
            ("a2616202616101", |e| {
                matches!(e, CborError::MapKeyOrder { offset: 4 })
            }),
            ("a2616101616102", |e| {
                matches!(e, CborError::MapKeyOrder { .. })
            }),
            ("9f01ff", |e| matches!(e, CborError::Unsupported { .. })),
            ("5f4101ff", |e| matches!(e, CborError::Unsupported { .. })),
            ("f6", |e| {
                matches!(e, CborError::Unsupported { what: "null", .. })
            }),
            ("f7", |e| matches!(e, CborError::Unsupported { .. })),
            ("c100", |e| {
                matches!(e, CborError::Unsupported { what: "tag", .. })
            }),
            ("0000", |e| matches!(e, CborError::TrailingBytes { got: 1 })),
            ("62c328", |e| matches!(e, CborError::Malformed { .. })),
            ("83010203ff", |e| {
                matches!(e, CborError::TrailingBytes { .. })
            }),
            ("8301", |e| matches!(e, CborError::Malformed { .. })),
            ("9bffffffffffffffff", |e| {
                matches!(e, CborError::Malformed { .. })
            }),
            ("", |e| matches!(e, CborError::Malformed { .. })),
        ];
        for (input, want) in cases {
            let err = decode_deterministic(&hex(input)).unwrap_err();
            assert!(want(&err), "{input}: {err:?}");
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let deep = vec![0x81u8; 10_000];
        assert!(matches!(
            decode_deterministic(&deep),
            Err(CborError::TooDeep { .. })
        ));
    }
}
