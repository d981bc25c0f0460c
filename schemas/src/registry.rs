//! Registry records (SPEC §4): the operator-signed log entries that admit a device's key and
//! later revoke it.
//!
//! Why a separate, tiny payload rather than an EPCIS event: the gateway must decide from these
//! alone which key verifies which device's events, and an auditor must replay that decision from
//! the log. So the format is closed (four keys, one of two types), strict like events (unknown
//! keys, wrong types and `prov:key` on a revocation are refused) and has one byte form: the
//! deterministic CBOR map `{type, "prov:device", "prov:key" (65-byte bstr, registration only),
//! eventTime}`. The JSON form is the same map with `prov:key` as lowercase hex.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use serde::{Deserialize, Serialize};

use crate::cbor::{self, CborError, Value};
use crate::event::{EventTime, TimeError};
use crate::keys::{DeviceId, IdError, KeyError, PublicKey};

/// `type` of a registration.
pub const REGISTRATION_TYPE: &str = "prov:DeviceRegistration";
/// `type` of a revocation.
pub const REVOCATION_TYPE: &str = "prov:DeviceRevocation";

/// One registry record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RecordJson", into = "RecordJson")]
pub enum RegistryRecord {
    /// Admits `device`'s events signed with `key`, from `event_time` on.
    Registration {
        /// The device.
        device: DeviceId,
        /// Its P-256 public key.
        key: PublicKey,
        /// When the operator registered it.
        event_time: EventTime,
    },
    /// Stops admitting `device`'s events (those already logged still verify).
    Revocation {
        /// The device.
        device: DeviceId,
        /// When the operator revoked it.
        event_time: EventTime,
    },
}

/// Why a registry record payload was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// The payload bytes are not deterministic CBOR of our data model.
    #[error("payload: {0}")]
    Cbor(#[from] CborError),
    /// A field (or the payload itself, field `""`) holds the wrong kind of item.
    #[error("{field}: want {want}, got {got}")]
    WrongType {
        /// Where.
        field: &'static str,
        /// What was expected.
        want: &'static str,
        /// What was found.
        got: &'static str,
    },
    /// A key that is not part of the format.
    #[error("unknown field {field:?}")]
    UnknownField {
        /// The key (at most 40 characters of it).
        field: String,
    },
    /// A key given twice (possible only in a hand-built map).
    #[error("duplicate field {field}")]
    DuplicateField {
        /// The key.
        field: &'static str,
    },
    /// A required key is absent (`prov:key` in a registration, or a common one).
    #[error("missing field {field}")]
    MissingField {
        /// The key.
        field: &'static str,
    },
    /// `type` is neither registration nor revocation.
    #[error("unknown record type {got:?}")]
    UnknownType {
        /// The type found (at most 40 characters of it).
        got: String,
    },
    /// `prov:key` on a revocation.
    #[error("prov:key is not allowed in a revocation")]
    KeyInRevocation,
    /// A bad `prov:device`.
    #[error("prov:device: {0}")]
    Device(IdError),
    /// A bad `prov:key`.
    #[error("prov:key: {0}")]
    Key(KeyError),
    /// A bad `eventTime`.
    #[error("eventTime: {0}")]
    Time(TimeError),
}

impl RegistryRecord {
    /// The device the record is about.
    pub fn device(&self) -> &DeviceId {
        match self {
            RegistryRecord::Registration { device, .. }
            | RegistryRecord::Revocation { device, .. } => device,
        }
    }

    /// When the operator made the record.
    pub fn event_time(&self) -> &EventTime {
        match self {
            RegistryRecord::Registration { event_time, .. }
            | RegistryRecord::Revocation { event_time, .. } => event_time,
        }
    }

    /// The registered key (registrations only).
    pub fn key(&self) -> Option<&PublicKey> {
        match self {
            RegistryRecord::Registration { key, .. } => Some(key),
            RegistryRecord::Revocation { .. } => None,
        }
    }

    /// The `type` text.
    pub fn type_name(&self) -> &'static str {
        match self {
            RegistryRecord::Registration { .. } => REGISTRATION_TYPE,
            RegistryRecord::Revocation { .. } => REVOCATION_TYPE,
        }
    }

    /// The payload as a CBOR value.
    pub fn to_cbor(&self) -> Value {
        let mut entries = Vec::with_capacity(4);
        entries.push((Value::text("type"), Value::text(self.type_name())));
        entries.push((
            Value::text("prov:device"),
            Value::text(self.device().as_str()),
        ));
        if let Some(key) = self.key() {
            entries.push((
                Value::text("prov:key"),
                Value::Bytes(key.as_sec1_uncompressed().to_vec()),
            ));
        }
        entries.push((
            Value::text("eventTime"),
            Value::text(self.event_time().as_str()),
        ));
        Value::map(entries)
    }

    /// Reads a record from a CBOR value, strictly.
    pub fn from_cbor(value: &Value) -> Result<RegistryRecord, RegistryError> {
        let entries = value.as_map().ok_or(RegistryError::WrongType {
            field: "",
            want: "map",
            got: crate::event::codec::kind_name(value),
        })?;
        let mut kind = None;
        let mut device = None;
        let mut key = None;
        let mut event_time = None;
        for (k, v) in entries {
            let k = k.as_text().ok_or(RegistryError::WrongType {
                field: "(map key)",
                want: "text",
                got: crate::event::codec::kind_name(k),
            })?;
            let (slot, name): (&mut Option<&Value>, &'static str) = match k {
                "type" => (&mut kind, "type"),
                "prov:device" => (&mut device, "prov:device"),
                "prov:key" => (&mut key, "prov:key"),
                "eventTime" => (&mut event_time, "eventTime"),
                _ => {
                    return Err(RegistryError::UnknownField {
                        field: k.chars().take(40).collect(),
                    });
                }
            };
            if slot.replace(v).is_some() {
                return Err(RegistryError::DuplicateField { field: name });
            }
        }
        let text = |v: Option<&Value>, field: &'static str| -> Result<String, RegistryError> {
            let v = v.ok_or(RegistryError::MissingField { field })?;
            v.as_text()
                .map(String::from)
                .ok_or(RegistryError::WrongType {
                    field,
                    want: "text",
                    got: crate::event::codec::kind_name(v),
                })
        };
        let kind = RecordType::parse(&text(kind, "type")?)?;
        let device = DeviceId::new(&text(device, "prov:device")?).map_err(RegistryError::Device)?;
        let event_time =
            EventTime::parse(&text(event_time, "eventTime")?).map_err(RegistryError::Time)?;
        let key = match key {
            None => None,
            Some(v) => Some(v.as_bytes().ok_or(RegistryError::WrongType {
                field: "prov:key",
                want: "byte string",
                got: crate::event::codec::kind_name(v),
            })?),
        };
        RecordJson {
            kind,
            device,
            key: key
                .map(PublicKey::from_sec1_uncompressed)
                .transpose()
                .map_err(RegistryError::Key)?,
            event_time,
        }
        .try_into()
    }

    /// The payload bytes (deterministic CBOR).
    pub fn encode_payload(&self) -> Vec<u8> {
        self.to_cbor().encode()
    }

    /// Decodes payload bytes: deterministic CBOR of a valid record.
    pub fn decode_payload(bytes: &[u8]) -> Result<RegistryRecord, RegistryError> {
        RegistryRecord::from_cbor(&cbor::decode_deterministic(bytes)?)
    }
}

/// The two record types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RecordType {
    Registration,
    Revocation,
}

impl RecordType {
    fn parse(text: &str) -> Result<RecordType, RegistryError> {
        match text {
            REGISTRATION_TYPE => Ok(RecordType::Registration),
            REVOCATION_TYPE => Ok(RecordType::Revocation),
            _ => Err(RegistryError::UnknownType {
                got: text.chars().take(40).collect(),
            }),
        }
    }
}

impl Serialize for RecordType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match self {
            RecordType::Registration => REGISTRATION_TYPE,
            RecordType::Revocation => REVOCATION_TYPE,
        })
    }
}

impl<'de> Deserialize<'de> for RecordType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<RecordType, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = RecordType;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a registry record type")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RecordType, E> {
                RecordType::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

/// The flat JSON form, through which the enum is (de)serialized.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordJson {
    #[serde(rename = "type")]
    kind: RecordType,
    #[serde(rename = "prov:device")]
    device: DeviceId,
    #[serde(
        rename = "prov:key",
        default,
        skip_serializing_if = "Option::is_none",
        with = "key_hex"
    )]
    key: Option<PublicKey>,
    #[serde(rename = "eventTime")]
    event_time: EventTime,
}

impl TryFrom<RecordJson> for RegistryRecord {
    type Error = RegistryError;
    fn try_from(raw: RecordJson) -> Result<RegistryRecord, RegistryError> {
        let RecordJson {
            kind,
            device,
            key,
            event_time,
        } = raw;
        match (kind, key) {
            (RecordType::Registration, Some(key)) => Ok(RegistryRecord::Registration {
                device,
                key,
                event_time,
            }),
            (RecordType::Registration, None) => {
                Err(RegistryError::MissingField { field: "prov:key" })
            }
            (RecordType::Revocation, None) => Ok(RegistryRecord::Revocation { device, event_time }),
            (RecordType::Revocation, Some(_)) => Err(RegistryError::KeyInRevocation),
        }
    }
}

impl From<RegistryRecord> for RecordJson {
    fn from(record: RegistryRecord) -> RecordJson {
        match record {
            RegistryRecord::Registration {
                device,
                key,
                event_time,
            } => RecordJson {
                kind: RecordType::Registration,
                device,
                key: Some(key),
                event_time,
            },
            RegistryRecord::Revocation { device, event_time } => RecordJson {
                kind: RecordType::Revocation,
                device,
                key: None,
                event_time,
            },
        }
    }
}

/// `prov:key` as 130 lowercase hex digits; `null` refused.
mod key_hex {
    use super::*;

    pub(super) fn serialize<S: serde::Serializer>(
        key: &Option<PublicKey>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match key {
            Some(key) => s.serialize_str(&hex::encode(key.as_sec1_uncompressed())),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<PublicKey>, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = PublicKey;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a 65-byte uncompressed SEC1 P-256 key in lowercase hex")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<PublicKey, E> {
                if v.bytes().any(|b| b.is_ascii_uppercase()) {
                    return Err(E::custom("prov:key must be lowercase hex"));
                }
                let bytes = hex::decode(v).map_err(E::custom)?;
                PublicKey::from_sec1_uncompressed(&bytes).map_err(E::custom)
            }
        }
        d.deserialize_str(V).map(Some)
    }
}
