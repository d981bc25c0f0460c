//! The structured parts of an event: quantities, locations, sensor data, business transactions,
//! sources and destinations, instance/lot master data, and the small validated text types they
//! use.
//!
//! Each struct is written once with serde attributes giving its EPCIS JSON names, and once as a
//! [`cbor_map!`] table giving the same names for CBOR; `tests/event_roundtrip.rs` checks the two
//! agree through the vectors README's JSON→CBOR rule.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use serde::{Deserialize, Serialize};

use super::EventError;
use super::codec::{CborField, cbor_map, text_field, wrong};
use super::serde_util::{non_empty, some};
use super::time::{EventTime, text_serde};
use super::vocab::{BizTransactionType, Component, MeasurementType, SensorAlert, SourceDestType};
use crate::cbor::Value;
use crate::digital_link::DigitalLink;

/// A text that is not one of the small validated text types ([`Uri`], [`Uom`], [`HexBinary`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not {want}")]
pub struct TextError {
    /// What the text had to be.
    pub want: &'static str,
    /// The text found (at most 40 characters of it).
    pub value: String,
}

fn text_error(want: &'static str, value: &str) -> TextError {
    TextError {
        want,
        value: value.chars().take(40).collect(),
    }
}

/// Longest [`Uri`] accepted, in bytes.
pub const MAX_URI_LEN: usize = 2048;

/// An absolute URI (RFC 3986 `scheme ":" rest`, printable ASCII without spaces or
/// `"<>\^`{|}`), at most [`MAX_URI_LEN`] bytes: the EPCIS fields whose values name things outside
/// this system (sensor device ids, business transactions, parties).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Uri(String);

impl Uri {
    /// Parses an absolute URI.
    pub fn parse(text: &str) -> Result<Uri, TextError> {
        let err = || text_error("an absolute URI", text);
        if text.len() > MAX_URI_LEN {
            return Err(err());
        }
        let (scheme, rest) = text.split_once(':').ok_or_else(err)?;
        let mut scheme_bytes = scheme.bytes();
        let scheme_ok = scheme_bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
            && scheme_bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
        let rest_ok = !rest.is_empty()
            && rest.bytes().all(|b| {
                (0x21..0x7f).contains(&b)
                    && !matches!(
                        b,
                        b'"' | b'<' | b'>' | b'\\' | b'^' | b'`' | b'{' | b'|' | b'}'
                    )
            });
        if !(scheme_ok && rest_ok) {
            return Err(err());
        }
        Ok(Uri(String::from(text)))
    }

    /// The URI text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A UN/CEFACT Recommendation 20 unit code (`CEL`, `KGM`, `A93`…): 2 or 3 of `[A-Z0-9]`, as
/// the EPCIS schema requires.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Uom {
    bytes: [u8; 3],
    len: u8,
}

impl Uom {
    /// Parses a unit code.
    pub fn parse(text: &str) -> Result<Uom, TextError> {
        let ok = (2..=3).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        if !ok {
            return Err(text_error("a UN/CEFACT unit code ([A-Z0-9]{2,3})", text));
        }
        let mut bytes = [0u8; 3];
        for (slot, b) in bytes.iter_mut().zip(text.bytes()) {
            *slot = b;
        }
        Ok(Uom {
            bytes,
            len: text.len() as u8,
        })
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        let len = usize::from(self.len).min(3);
        core::str::from_utf8(self.bytes.get(..len).unwrap_or_default()).unwrap_or_default()
    }
}

/// The `hexBinaryValue` of a sensor report: a non-empty, even number of hex digits (either case,
/// kept as written). It stays text in CBOR: the payload's only byte strings are `prov:prev` and
/// `prov:key`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HexBinary(String);

impl HexBinary {
    /// Parses hex digits.
    pub fn parse(text: &str) -> Result<HexBinary, TextError> {
        let ok = !text.is_empty()
            && text.len().is_multiple_of(2)
            && text.len() <= MAX_URI_LEN
            && text.bytes().all(|b| b.is_ascii_hexdigit());
        if !ok {
            return Err(text_error("an even number of hex digits", text));
        }
        Ok(HexBinary(String::from(text)))
    }

    /// The hex text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! text_debug_display {
    ($($ty:ident),*) => {$(
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($ty), "({:?})"), self.as_str())
            }
        }
        text_serde!($ty, "text");
    )*};
}
text_debug_display!(Uri, Uom, HexBinary);

text_field!(Uri, Text);
text_field!(Uom, Text);
text_field!(HexBinary, Text);
text_field!(EventTime, Time);
text_field!(super::time::TzOffset, Time);
text_field!(super::vocab::EventType, Vocabulary);
text_field!(super::vocab::Action, Vocabulary);
text_field!(super::vocab::BizStep, Vocabulary);
text_field!(super::vocab::Disposition, Vocabulary);
text_field!(MeasurementType, Vocabulary);
text_field!(SensorAlert, Vocabulary);
text_field!(Component, Vocabulary);
text_field!(BizTransactionType, Vocabulary);
text_field!(SourceDestType, Vocabulary);

impl CborField for DigitalLink {
    fn to_value(&self) -> Value {
        Value::Text(self.canonical())
    }
    /// Only canonical URIs (SPEC §1: payload URIs must already be canonical).
    fn from_value(v: &Value) -> Result<DigitalLink, EventError> {
        DigitalLink::parse_canonical(super::codec::text(v)?).map_err(|source| {
            EventError::Identifier {
                field: String::new(),
                source,
            }
        })
    }
}

/// One entry of a quantity list: an amount of a lot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuantityElement {
    /// The lot (class) URI.
    #[serde(rename = "epcClass")]
    pub epc_class: DigitalLink,
    /// How much: a count (a whole number) when `uom` is absent, else a measure.
    pub quantity: f64,
    /// The unit of a measured quantity; absent for a count.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub uom: Option<Uom>,
}

cbor_map!(QuantityElement {
    req epc_class = "epcClass",
    req quantity = "quantity",
    opt uom = "uom",
});

/// `readPoint` or `bizLocation`: `{ "id": location URI }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocationRef {
    /// The location (a `/414/{gln}` Digital Link).
    pub id: DigitalLink,
}

cbor_map!(LocationRef { req id = "id", });

/// One entry of `bizTransactionList`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BizTransaction {
    /// The kind of document, if stated.
    #[serde(
        rename = "type",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub kind: Option<BizTransactionType>,
    /// The document's URI.
    #[serde(rename = "bizTransaction")]
    pub biz_transaction: Uri,
}

cbor_map!(BizTransaction {
    opt kind = "type",
    req biz_transaction = "bizTransaction",
});

/// One entry of `sourceList`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// What the source is (owning party, possessing party, location).
    #[serde(rename = "type")]
    pub kind: SourceDestType,
    /// The source's URI.
    pub source: Uri,
}

cbor_map!(Source {
    req kind = "type",
    req source = "source",
});

/// One entry of `destinationList`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Destination {
    /// What the destination is (owning party, possessing party, location).
    #[serde(rename = "type")]
    pub kind: SourceDestType,
    /// The destination's URI.
    pub destination: Uri,
}

cbor_map!(Destination {
    req kind = "type",
    req destination = "destination",
});

/// One entry of `sensorElementList`: readings of one sensor, with optional metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SensorElement {
    /// About the whole group of readings.
    #[serde(
        rename = "sensorMetadata",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub sensor_metadata: Option<SensorMetadata>,
    /// The readings (at least one).
    #[serde(rename = "sensorReport", deserialize_with = "non_empty")]
    pub sensor_report: Vec<SensorReport>,
}

cbor_map!(SensorElement {
    opt sensor_metadata = "sensorMetadata",
    reqlist sensor_report = "sensorReport",
});

/// `sensorMetadata` (EPCIS 2.0): when and by what the readings were taken. At least one field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SensorMetadata {
    /// When the readings were taken.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub time: Option<EventTime>,
    /// Start of the interval the readings cover.
    #[serde(
        rename = "startTime",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub start_time: Option<EventTime>,
    /// End of the interval the readings cover.
    #[serde(
        rename = "endTime",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub end_time: Option<EventTime>,
    /// The sensor device.
    #[serde(
        rename = "deviceID",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub device_id: Option<Uri>,
    /// Where the device's metadata is.
    #[serde(
        rename = "deviceMetadata",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub device_metadata: Option<Uri>,
    /// Where the raw data is.
    #[serde(
        rename = "rawData",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub raw_data: Option<Uri>,
    /// How the data was processed.
    #[serde(
        rename = "dataProcessingMethod",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub data_processing_method: Option<Uri>,
    /// The business rules applied.
    #[serde(
        rename = "bizRules",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub biz_rules: Option<Uri>,
}

cbor_map!(SensorMetadata {
    opt time = "time",
    opt start_time = "startTime",
    opt end_time = "endTime",
    opt device_id = "deviceID",
    opt device_metadata = "deviceMetadata",
    opt raw_data = "rawData",
    opt data_processing_method = "dataProcessingMethod",
    opt biz_rules = "bizRules",
});

impl SensorMetadata {
    /// Whether no field is set (refused: omit `sensorMetadata` instead).
    pub fn is_empty(&self) -> bool {
        *self == SensorMetadata::default()
    }
}

/// One reading (`sensorReport[]` in EPCIS 2.0). `exception` marks an excursion
/// (`ALARM_CONDITION`) or a sensor fault (`ERROR_CONDITION`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SensorReport {
    /// What was measured.
    #[serde(rename = "type")]
    pub measurement_type: MeasurementType,
    /// An alarm or error condition.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub exception: Option<SensorAlert>,
    /// The sensor device, if it differs from the metadata's.
    #[serde(
        rename = "deviceID",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub device_id: Option<Uri>,
    /// Where the device's metadata is.
    #[serde(
        rename = "deviceMetadata",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub device_metadata: Option<Uri>,
    /// Where the raw data is.
    #[serde(
        rename = "rawData",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub raw_data: Option<Uri>,
    /// How the data was processed.
    #[serde(
        rename = "dataProcessingMethod",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub data_processing_method: Option<Uri>,
    /// The business rules applied.
    #[serde(
        rename = "bizRules",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub biz_rules: Option<Uri>,
    /// When this reading was taken.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub time: Option<EventTime>,
    /// The microorganism measured.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub microorganism: Option<Uri>,
    /// The chemical substance measured.
    #[serde(
        rename = "chemicalSubstance",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub chemical_substance: Option<Uri>,
    /// The coordinate reference system of a location reading.
    #[serde(
        rename = "coordinateReferenceSystem",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub coordinate_reference_system: Option<Uri>,
    /// The reading.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub value: Option<f64>,
    /// The vector component read.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub component: Option<Component>,
    /// A text reading.
    #[serde(
        rename = "stringValue",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub string_value: Option<String>,
    /// A boolean reading.
    #[serde(
        rename = "booleanValue",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub boolean_value: Option<bool>,
    /// A binary reading, as hex.
    #[serde(
        rename = "hexBinaryValue",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub hex_binary_value: Option<HexBinary>,
    /// A URI reading.
    #[serde(
        rename = "uriValue",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub uri_value: Option<Uri>,
    /// The lowest value over the interval.
    #[serde(
        rename = "minValue",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub min_value: Option<f64>,
    /// The highest value over the interval.
    #[serde(
        rename = "maxValue",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub max_value: Option<f64>,
    /// The mean over the interval.
    #[serde(
        rename = "meanValue",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub mean_value: Option<f64>,
    /// The standard deviation over the interval.
    #[serde(
        rename = "sDev",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub s_dev: Option<f64>,
    /// The percentile rank of `percValue`.
    #[serde(
        rename = "percRank",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub perc_rank: Option<f64>,
    /// The value at percentile `percRank`.
    #[serde(
        rename = "percValue",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub perc_value: Option<f64>,
    /// The unit of every numeric value of this report.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub uom: Option<Uom>,
}

cbor_map!(SensorReport {
    req measurement_type = "type",
    opt exception = "exception",
    opt device_id = "deviceID",
    opt device_metadata = "deviceMetadata",
    opt raw_data = "rawData",
    opt data_processing_method = "dataProcessingMethod",
    opt biz_rules = "bizRules",
    opt time = "time",
    opt microorganism = "microorganism",
    opt chemical_substance = "chemicalSubstance",
    opt coordinate_reference_system = "coordinateReferenceSystem",
    opt value = "value",
    opt component = "component",
    opt string_value = "stringValue",
    opt boolean_value = "booleanValue",
    opt hex_binary_value = "hexBinaryValue",
    opt uri_value = "uriValue",
    opt min_value = "minValue",
    opt max_value = "maxValue",
    opt mean_value = "meanValue",
    opt s_dev = "sDev",
    opt perc_rank = "percRank",
    opt perc_value = "percValue",
    opt uom = "uom",
});

impl SensorReport {
    /// A report with only its type set.
    pub fn new(measurement_type: MeasurementType) -> SensorReport {
        SensorReport {
            measurement_type,
            exception: None,
            device_id: None,
            device_metadata: None,
            raw_data: None,
            data_processing_method: None,
            biz_rules: None,
            time: None,
            microorganism: None,
            chemical_substance: None,
            coordinate_reference_system: None,
            value: None,
            component: None,
            string_value: None,
            boolean_value: None,
            hex_binary_value: None,
            uri_value: None,
            min_value: None,
            max_value: None,
            mean_value: None,
            s_dev: None,
            perc_rank: None,
            perc_value: None,
            uom: None,
        }
    }

    /// The numeric fields that are set, by JSON name (all must be finite).
    pub fn numbers(&self) -> impl Iterator<Item = (&'static str, f64)> {
        [
            ("value", self.value),
            ("minValue", self.min_value),
            ("maxValue", self.max_value),
            ("meanValue", self.mean_value),
            ("sDev", self.s_dev),
            ("percRank", self.perc_rank),
            ("percValue", self.perc_value),
        ]
        .into_iter()
        .filter_map(|(name, x)| x.map(|x| (name, x)))
    }
}

/// A value inside `ilmd` (instance/lot master data): JSON-like, with no `null` and no byte
/// strings (SPEC §2 and the vectors README: the payload's only byte strings are `prov:prev` and
/// `prov:key`). Integers are whole numbers in the `i64` range and stay integers in CBOR; floats
/// stay floats and must be finite.
#[derive(Debug, Clone, PartialEq)]
pub enum IlmdValue {
    /// A whole number (CBOR unsigned or negative integer, JSON number without fraction).
    Int(i64),
    /// A finite float (CBOR float, JSON number with a fraction or exponent).
    Float(f64),
    /// Text.
    Text(String),
    /// `true` or `false`.
    Bool(bool),
    /// A list.
    Array(Vec<IlmdValue>),
    /// An object with text keys.
    Map(BTreeMap<String, IlmdValue>),
}

/// `ilmd`: master data about the lot or items an event creates, keyed by text (CURIEs or URIs
/// such as `cbvmda:bestBeforeDate` in EPCIS). Never empty when present.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Ilmd(pub BTreeMap<String, IlmdValue>);

impl CborField for Ilmd {
    fn to_value(&self) -> Value {
        self.0.to_value()
    }
    fn from_value(v: &Value) -> Result<Ilmd, EventError> {
        BTreeMap::from_value(v).map(Ilmd)
    }
}

impl CborField for IlmdValue {
    fn to_value(&self) -> Value {
        match self {
            IlmdValue::Int(n) => Value::int(*n),
            IlmdValue::Float(x) => Value::Float(*x),
            IlmdValue::Text(s) => Value::Text(s.clone()),
            IlmdValue::Bool(b) => Value::Bool(*b),
            IlmdValue::Array(items) => super::codec::encode_list(items),
            IlmdValue::Map(m) => m.to_value(),
        }
    }

    fn from_value(v: &Value) -> Result<IlmdValue, EventError> {
        let out_of_range = || EventError::IntegerRange {
            field: String::new(),
        };
        Ok(match v {
            Value::Uint(n) => IlmdValue::Int(i64::try_from(*n).map_err(|_| out_of_range())?),
            Value::Nint(n) => IlmdValue::Int(-1 - i64::try_from(*n).map_err(|_| out_of_range())?),
            Value::Float(x) => IlmdValue::Float(*x),
            Value::Text(s) => IlmdValue::Text(s.clone()),
            Value::Bool(b) => IlmdValue::Bool(*b),
            Value::Array(items) => IlmdValue::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| {
                        IlmdValue::from_value(item).map_err(|e| e.at(&format!("[{i}]")))
                    })
                    .collect::<Result<_, _>>()?,
            ),
            Value::Map(_) => IlmdValue::Map(BTreeMap::from_value(v)?),
            Value::Bytes(_) => return Err(wrong("text, number, boolean, array or map", v)),
        })
    }
}

impl IlmdValue {
    /// The path (relative to this value) of the first non-finite float inside, if any.
    pub(crate) fn first_non_finite(&self) -> Option<String> {
        match self {
            IlmdValue::Float(x) if !x.is_finite() => Some(String::new()),
            IlmdValue::Array(items) => items
                .iter()
                .enumerate()
                .find_map(|(i, item)| item.first_non_finite().map(|p| join(&format!("[{i}]"), &p))),
            IlmdValue::Map(m) => m
                .iter()
                .find_map(|(k, item)| item.first_non_finite().map(|p| join(k, &p))),
            _ => None,
        }
    }
}

/// Keys refused anywhere inside `ilmd`: the names the vectors README maps specially
/// (always-float numbers, hex byte strings). A converter applying that rule by key name alone
/// would otherwise encode `{"value": 3}` inside `ilmd` differently from this crate.
pub const RESERVED_ILMD_KEYS: [&str; 10] = [
    "quantity",
    "value",
    "minValue",
    "maxValue",
    "meanValue",
    "sDev",
    "percRank",
    "percValue",
    "prov:prev",
    "prov:key",
];

impl IlmdValue {
    /// The path (relative to this value) of the first map key inside that is in
    /// [`RESERVED_ILMD_KEYS`], if any.
    pub(crate) fn first_reserved_key(&self) -> Option<String> {
        match self {
            IlmdValue::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
                item.first_reserved_key()
                    .map(|p| join(&format!("[{i}]"), &p))
            }),
            IlmdValue::Map(m) => m.iter().find_map(|(k, item)| {
                if RESERVED_ILMD_KEYS.contains(&k.as_str()) {
                    Some(k.clone())
                } else {
                    item.first_reserved_key().map(|p| join(k, &p))
                }
            }),
            _ => None,
        }
    }
}

/// `outer` then `inner` as a field path (`a` + `b` = `a.b`, `a` + `[0]` = `a[0]`).
pub(crate) fn join(outer: &str, inner: &str) -> String {
    if inner.is_empty() {
        String::from(outer)
    } else if inner.starts_with('[') || outer.is_empty() {
        format!("{outer}{inner}")
    } else {
        format!("{outer}.{inner}")
    }
}

impl Serialize for IlmdValue {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            IlmdValue::Int(n) => s.serialize_i64(*n),
            IlmdValue::Float(x) => s.serialize_f64(*x),
            IlmdValue::Text(t) => s.serialize_str(t),
            IlmdValue::Bool(b) => s.serialize_bool(*b),
            IlmdValue::Array(items) => s.collect_seq(items),
            IlmdValue::Map(m) => s.collect_map(m),
        }
    }
}

impl<'de> Deserialize<'de> for IlmdValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<IlmdValue, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = IlmdValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("text, a number, a boolean, an array or an object (not null)")
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<IlmdValue, E> {
                Ok(IlmdValue::Bool(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<IlmdValue, E> {
                Ok(IlmdValue::Int(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<IlmdValue, E> {
                i64::try_from(v)
                    .map(IlmdValue::Int)
                    .map_err(|_| E::custom("integer beyond the i64 range"))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<IlmdValue, E> {
                if !v.is_finite() {
                    return Err(E::custom("number is not finite"));
                }
                Ok(IlmdValue::Float(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<IlmdValue, E> {
                Ok(IlmdValue::Text(String::from(v)))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<IlmdValue, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(IlmdValue::Array(items))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<IlmdValue, A::Error> {
                let mut out = BTreeMap::new();
                while let Some((k, v)) = map.next_entry::<String, IlmdValue>()? {
                    if out.contains_key(&k) {
                        return Err(serde::de::Error::custom("duplicate key in ilmd"));
                    }
                    out.insert(k, v);
                }
                Ok(IlmdValue::Map(out))
            }
        }
        d.deserialize_any(V)
    }
}
