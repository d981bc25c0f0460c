//! The CBOR side of the payload: how each Rust type maps to a [`Value`] and back, with errors
//! that name the field.
//!
//! The JSON side is serde's; the two are kept in agreement by the vectors README's mapping rule
//! (checked in `tests/event_roundtrip.rs` by an independent JSON→CBOR converter). Errors are
//! built at the leaf with an empty field path and get their path prefixed on the way up
//! ([`EventError::at`]), so a successful decode never formats a path.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::EventError;
use crate::Hash32;
use crate::cbor::Value;

/// A type with one CBOR form in the payload.
pub(crate) trait CborField: Sized {
    /// The CBOR form.
    fn to_value(&self) -> Value;
    /// Parses the CBOR form; errors carry a field path relative to this value.
    fn from_value(v: &Value) -> Result<Self, EventError>;
}

/// What a value is, for "want X, got Y" errors.
pub(crate) fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::Uint(_) => "unsigned integer",
        Value::Nint(_) => "negative integer",
        Value::Bytes(_) => "byte string",
        Value::Text(_) => "text",
        Value::Array(_) => "array",
        Value::Map(_) => "map",
        Value::Bool(_) => "boolean",
        Value::Float(_) => "float",
    }
}

/// A [`EventError::WrongType`] for `v` at the current (empty) path.
pub(crate) fn wrong(want: &'static str, v: &Value) -> EventError {
    EventError::WrongType {
        field: String::new(),
        want,
        got: kind_name(v),
    }
}

pub(crate) fn text(v: &Value) -> Result<&str, EventError> {
    v.as_text().ok_or_else(|| wrong("text", v))
}

pub(crate) fn map(v: &Value) -> Result<&[(Value, Value)], EventError> {
    v.as_map().ok_or_else(|| wrong("map", v))
}

/// The text key of a map entry.
pub(crate) fn key(k: &Value) -> Result<&str, EventError> {
    k.as_text().ok_or_else(|| EventError::WrongType {
        field: String::from("(map key)"),
        want: "text",
        got: kind_name(k),
    })
}

/// A non-empty array of `T`.
pub(crate) fn decode_list<T: CborField>(v: &Value) -> Result<Vec<T>, EventError> {
    let items = v.as_array().ok_or_else(|| wrong("array", v))?;
    if items.is_empty() {
        return Err(EventError::Empty {
            field: String::new(),
        });
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| T::from_value(item).map_err(|e| e.at(&format!("[{i}]"))))
        .collect()
}

pub(crate) fn encode_list<T: CborField>(items: &[T]) -> Value {
    Value::Array(items.iter().map(T::to_value).collect())
}

impl CborField for f64 {
    fn to_value(&self) -> Value {
        Value::Float(*self)
    }
    fn from_value(v: &Value) -> Result<f64, EventError> {
        match v {
            Value::Float(x) => Ok(*x),
            _ => Err(wrong("float", v)),
        }
    }
}

impl CborField for bool {
    fn to_value(&self) -> Value {
        Value::Bool(*self)
    }
    fn from_value(v: &Value) -> Result<bool, EventError> {
        match v {
            Value::Bool(b) => Ok(*b),
            _ => Err(wrong("boolean", v)),
        }
    }
}

impl CborField for u64 {
    fn to_value(&self) -> Value {
        Value::Uint(*self)
    }
    fn from_value(v: &Value) -> Result<u64, EventError> {
        v.as_uint().ok_or_else(|| wrong("unsigned integer", v))
    }
}

impl CborField for String {
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
    fn from_value(v: &Value) -> Result<String, EventError> {
        text(v).map(String::from)
    }
}

impl CborField for Hash32 {
    fn to_value(&self) -> Value {
        Value::Bytes(self.0.to_vec())
    }
    fn from_value(v: &Value) -> Result<Hash32, EventError> {
        let bytes = v.as_bytes().ok_or_else(|| wrong("byte string", v))?;
        Hash32::from_slice(bytes).map_err(|_| EventError::Length {
            field: String::new(),
            got: bytes.len(),
            want: 32,
        })
    }
}

impl CborField for crate::keys::DeviceId {
    fn to_value(&self) -> Value {
        Value::text(self.as_str())
    }
    fn from_value(v: &Value) -> Result<Self, EventError> {
        crate::keys::DeviceId::new(text(v)?).map_err(|source| EventError::DeviceId {
            field: String::new(),
            source,
        })
    }
}

impl<T: CborField> CborField for BTreeMap<String, T> {
    fn to_value(&self) -> Value {
        Value::map(
            self.iter()
                .map(|(k, v)| (Value::text(k.as_str()), v.to_value())),
        )
    }
    fn from_value(v: &Value) -> Result<Self, EventError> {
        let mut out = BTreeMap::new();
        for (k, item) in map(v)? {
            let k = key(k)?;
            let parsed = T::from_value(item).map_err(|e| e.at(k))?;
            if out.insert(String::from(k), parsed).is_some() {
                return Err(EventError::DuplicateField {
                    field: String::from(k),
                });
            }
        }
        Ok(out)
    }
}

/// Implements [`CborField`] for a type with a text form and a `parse` returning `Result<_, E>`,
/// wrapping `E` into the [`EventError`] variant given.
macro_rules! text_field {
    ($ty:ty, $variant:ident) => {
        impl $crate::event::codec::CborField for $ty {
            fn to_value(&self) -> $crate::cbor::Value {
                $crate::cbor::Value::text(self.as_str())
            }
            fn from_value(v: &$crate::cbor::Value) -> Result<Self, $crate::event::EventError> {
                <$ty>::parse($crate::event::codec::text(v)?).map_err(|source| {
                    $crate::event::EventError::$variant {
                        field: alloc::string::String::new(),
                        source,
                    }
                })
            }
        }
    };
}
pub(crate) use text_field;

/// Implements [`CborField`] for a struct as a map with text keys, from a table of
/// `kind field = "key"` lines. Kinds: `req` (required `T`), `opt` (`Option<T>`, omitted when
/// `None`), `list` (`Vec<T>`, omitted when empty, non-empty when present), `reqlist` (required
/// non-empty `Vec<T>`), `falseflag` (`bool` that is `true` when absent and may only appear as
/// `false`). Unknown keys, duplicate keys and missing required keys are rejected.
macro_rules! cbor_map {
    ($ty:ident { $($kind:ident $field:ident = $key:literal,)* }) => {
        impl $crate::event::codec::CborField for $ty {
            #[allow(clippy::vec_init_then_push)]
            fn to_value(&self) -> $crate::cbor::Value {
                let mut entries = alloc::vec::Vec::new();
                $( $crate::event::codec::cbor_map!(@put $kind entries, $key, self.$field); )*
                $crate::cbor::Value::map(entries)
            }

            fn from_value(v: &$crate::cbor::Value) -> Result<Self, $crate::event::EventError> {
                use $crate::event::EventError;
                $( let mut $field = None; )*
                for (k, item) in $crate::event::codec::map(v)? {
                    let k = $crate::event::codec::key(k)?;
                    match k {
                        $(
                            $key => {
                                if $field.is_some() {
                                    return Err(EventError::DuplicateField { field: k.into() });
                                }
                                $field = Some(
                                    $crate::event::codec::cbor_map!(@take $kind item)
                                        .map_err(|e| e.at(k))?,
                                );
                            }
                        )*
                        _ => return Err(EventError::UnknownField { field: k.into() }),
                    }
                }
                Ok($ty {
                    $( $field: $crate::event::codec::cbor_map!(@finish $kind $field, $key), )*
                })
            }
        }
    };
    (@put req $e:ident, $key:literal, $v:expr) => {
        $e.push(($crate::cbor::Value::text($key), $crate::event::codec::CborField::to_value(&$v)));
    };
    (@put opt $e:ident, $key:literal, $v:expr) => {
        if let Some(x) = &$v {
            $e.push(($crate::cbor::Value::text($key), $crate::event::codec::CborField::to_value(x)));
        }
    };
    (@put list $e:ident, $key:literal, $v:expr) => {
        if !$v.is_empty() {
            $e.push(($crate::cbor::Value::text($key), $crate::event::codec::encode_list(&$v)));
        }
    };
    (@put reqlist $e:ident, $key:literal, $v:expr) => {
        $e.push(($crate::cbor::Value::text($key), $crate::event::codec::encode_list(&$v)));
    };
    (@put falseflag $e:ident, $key:literal, $v:expr) => {
        if !$v {
            $e.push(($crate::cbor::Value::text($key), $crate::cbor::Value::Bool(false)));
        }
    };
    (@take req $item:ident) => { $crate::event::codec::CborField::from_value($item) };
    (@take opt $item:ident) => { $crate::event::codec::CborField::from_value($item) };
    (@take list $item:ident) => { $crate::event::codec::decode_list($item) };
    (@take reqlist $item:ident) => { $crate::event::codec::decode_list($item) };
    (@take falseflag $item:ident) => {
        match $item {
            $crate::cbor::Value::Bool(false) => Ok(false),
            $crate::cbor::Value::Bool(true) => Err(EventError::ClockSyncedTrue),
            other => Err($crate::event::codec::wrong("false", other)),
        }
    };
    (@finish req $field:ident, $key:literal) => {
        $field.ok_or(EventError::MissingField { field: $key.into() })?
    };
    (@finish opt $field:ident, $key:literal) => { $field };
    (@finish list $field:ident, $key:literal) => { $field.unwrap_or_default() };
    (@finish reqlist $field:ident, $key:literal) => {
        $field.ok_or(EventError::MissingField { field: $key.into() })?
    };
    (@finish falseflag $field:ident, $key:literal) => { $field.unwrap_or(true) };
}
pub(crate) use cbor_map;
