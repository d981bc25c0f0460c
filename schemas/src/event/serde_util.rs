//! serde helpers that make the JSON form as strict as the CBOR form: no `null` for an absent
//! field, no empty list standing in for an absent one, `prov:prev` as lowercase hex, and
//! `prov:clockSynced` present only as `false`.

use alloc::vec::Vec;

use serde::{Deserialize, Deserializer, Serializer};

use crate::Hash32;

/// An optional field that, when present, must hold a value (`null` is refused).
pub(crate) fn some<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// A list that, when present, has at least one item.
pub(crate) fn non_empty<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Vec<T>, D::Error> {
    let items = Vec::<T>::deserialize(d)?;
    if items.is_empty() {
        return Err(serde::de::Error::invalid_length(0, &"at least one item"));
    }
    Ok(items)
}

/// `true`: the value of `prov:clockSynced` when the field is absent.
pub(crate) fn yes() -> bool {
    true
}

/// Whether `b` is `true` (then `prov:clockSynced` is omitted).
pub(crate) fn is_true(b: &bool) -> bool {
    *b
}

/// `prov:clockSynced` may only be written as `false`.
pub(crate) fn only_false<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    if bool::deserialize(d)? {
        return Err(serde::de::Error::custom(
            "prov:clockSynced may only be false (omit it when the clock is synchronised)",
        ));
    }
    Ok(false)
}

/// A [`Hash32`] as 64 lowercase hex digits.
pub(crate) mod hex32 {
    use super::*;

    /// Writes lowercase hex.
    pub(crate) fn serialize<S: Serializer>(h: &Hash32, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&h.to_hex())
    }

    /// Reads 64 lowercase hex digits.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Hash32, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Hash32;
            fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str("64 lowercase hex digits")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Hash32, E> {
                Hash32::from_hex(v).map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}
