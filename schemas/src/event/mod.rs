//! The device event of SPEC §2: an EPCIS 2.0-shaped event as typed Rust, its JSON form (serde,
//! EPCIS JSON names) and its payload form (deterministic CBOR with the same names).
//!
//! Why one flat [`Event`] struct plus [`Event::validate`] rather than one type per event kind:
//! the JSON and CBOR forms are flat maps whose allowed keys depend on `type`, exactly as in EPCIS;
//! mirroring that keeps the serde derive, the CBOR table and the JSON Schema line for line the
//! same, and the per-type rules (which fields are required, which are allowed) live in one place,
//! [`Event::validate`], where every rule has its own typed error.
//!
//! Every way *in* validates: [`Event::from_cbor`], [`Event::decode_payload`] and serde
//! deserialization return an event only if [`Event::validate`] accepts it. Constructing an
//! [`Event`] in Rust (firmware, simulator) does not; call [`Event::validate`] before signing.
//!
//! Numbers: `quantity`, `value`, `minValue`, `maxValue`, `meanValue`, `sDev`, `percRank` and
//! `percValue` are always CBOR floats (shortest exact width), finite; `prov:seq` and integers in
//! `ilmd` are CBOR integers. Byte strings: only `prov:prev` (hex in JSON).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::Hash32;
use crate::cbor::{self, CborError, Value};
use crate::digital_link::{DigitalLink, DigitalLinkError, IdKind};
use crate::keys::{DeviceId, IdError};

pub(crate) mod codec;
mod parts;
mod serde_util;
mod time;
mod vocab;

use codec::{CborField, cbor_map};
use serde_util::{hex32, is_true, non_empty, only_false, some, yes};

pub use parts::{
    BizTransaction, Destination, HexBinary, Ilmd, IlmdValue, LocationRef, MAX_URI_LEN,
    QuantityElement, RESERVED_ILMD_KEYS, SensorElement, SensorMetadata, SensorReport, Source,
    TextError, Uom, Uri,
};
pub use time::{EventTime, MAX_UNIX_MILLIS, MAX_YEAR, MIN_YEAR, TimeError, TzOffset};
pub use vocab::{
    Action, BizStep, BizTransactionType, Component, Disposition, EventType, MeasurementType,
    SensorAlert, SourceDestType, VocabularyError,
};

/// Why an event payload was rejected. `field` is a path such as
/// `sensorElementList[0].sensorReport[2].value`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EventError {
    /// The payload bytes are not deterministic CBOR of our data model.
    #[error("payload: {0}")]
    Cbor(#[from] CborError),
    /// A field holds the wrong kind of CBOR item.
    #[error("{field}: want {want}, got {got}")]
    WrongType {
        /// Where.
        field: String,
        /// What was expected.
        want: &'static str,
        /// What was found.
        got: &'static str,
    },
    /// A key that is not part of the payload format.
    #[error("unknown field {field}")]
    UnknownField {
        /// The key (with its path).
        field: String,
    },
    /// A key given twice (possible only in a hand-built map).
    #[error("duplicate field {field}")]
    DuplicateField {
        /// The key (with its path).
        field: String,
    },
    /// A key that every such map must have.
    #[error("missing field {field}")]
    MissingField {
        /// The key (with its path).
        field: String,
    },
    /// A list or map that is present but empty (omit it instead).
    #[error("{field} is empty (omit it instead)")]
    Empty {
        /// Where.
        field: String,
    },
    /// A byte string of the wrong length.
    #[error("{field} has {got} bytes, want {want}")]
    Length {
        /// Where.
        field: String,
        /// Bytes found.
        got: usize,
        /// Bytes wanted.
        want: usize,
    },
    /// An integer outside the range of its field.
    #[error("{field}: integer out of range")]
    IntegerRange {
        /// Where.
        field: String,
    },
    /// A bad GS1 Digital Link URI (or one not in canonical form).
    #[error("{field}: {source}")]
    Identifier {
        /// Where.
        field: String,
        /// What is wrong with it.
        source: DigitalLinkError,
    },
    /// A bad time or time zone offset.
    #[error("{field}: {source}")]
    Time {
        /// Where.
        field: String,
        /// What is wrong with it.
        source: TimeError,
    },
    /// A name outside its vocabulary.
    #[error("{field}: {source}")]
    Vocabulary {
        /// Where.
        field: String,
        /// What is wrong with it.
        source: VocabularyError,
    },
    /// A bad URI, unit code or hex text.
    #[error("{field}: {source}")]
    Text {
        /// Where.
        field: String,
        /// What is wrong with it.
        source: TextError,
    },
    /// A bad `prov:device`.
    #[error("{field}: {source}")]
    DeviceId {
        /// Where.
        field: String,
        /// What is wrong with it.
        source: IdError,
    },
    /// `prov:clockSynced` present as `true` (it is omitted when the clock is synchronised).
    #[error("prov:clockSynced may only be false (omit it when the clock is synchronised)")]
    ClockSyncedTrue,
    /// A key inside `ilmd` that the JSON→CBOR mapping treats specially (see
    /// [`RESERVED_ILMD_KEYS`]).
    #[error("{field}: this key is reserved (the JSON/CBOR mapping treats it specially)")]
    ReservedKey {
        /// Where (the key's full path).
        field: String,
    },
    /// A number that is NaN or infinite.
    #[error("{field}: number is not finite")]
    NotFinite {
        /// Where.
        field: String,
    },
    /// A quantity that is not positive, or a count (no `uom`) that is not a whole number.
    #[error("{field}: quantity {quantity} is not {want}")]
    Quantity {
        /// Where.
        field: String,
        /// The quantity found.
        quantity: f64,
        /// What it must be.
        want: &'static str,
    },
    /// A field this event type requires is absent.
    #[error("{event_type} requires {field}")]
    Required {
        /// The event's type.
        event_type: EventType,
        /// The field (or `a or b` when either will do).
        field: &'static str,
    },
    /// A field this event type does not have.
    #[error("{field} is not allowed in {event_type}")]
    NotAllowed {
        /// The event's type.
        event_type: EventType,
        /// The field.
        field: &'static str,
    },
    /// `ilmd` on an ObjectEvent whose action is not ADD (EPCIS: master data comes with
    /// creation).
    #[error("ilmd is only allowed in an ObjectEvent with action ADD, not {action}")]
    IlmdWithoutAdd {
        /// The event's action.
        action: Action,
    },
    /// An identifier of the wrong kind for its field (an item where a location must be, a lot
    /// in an EPC list…).
    #[error("{field}: {uri} is a {got} identifier, want {want}")]
    IdentifierKind {
        /// Where.
        field: String,
        /// The identifier.
        uri: String,
        /// Its kind.
        got: IdKind,
        /// What the field takes.
        want: &'static str,
    },
    /// The same identifier twice in one list.
    #[error("{field}: {uri} is listed twice")]
    DuplicateIdentifier {
        /// Where (the second occurrence).
        field: String,
        /// The identifier.
        uri: String,
    },
    /// `prov:seq` is 0 (sequences start at 1).
    #[error("prov:seq must be at least 1")]
    SeqZero,
    /// `prov:prev` is zero while `prov:seq` is not 1, or not zero while it is.
    #[error("prov:prev must be 32 zero bytes exactly when prov:seq is 1 (seq {seq}, prev {prev})")]
    PrevMismatch {
        /// The event's `prov:seq`.
        seq: u64,
        /// The event's `prov:prev`.
        prev: Hash32,
    },
    /// SPEC §2 disclosure rule: an AggregationEvent with serialized-item children lists exactly
    /// one child.
    #[error(
        "disclosure rule: an AggregationEvent with serialized-item children lists exactly one child, got {children}"
    )]
    Disclosure {
        /// How many children the event lists.
        children: usize,
    },
}

impl EventError {
    /// Prefixes the field path with `outer` (a key or `[index]`).
    pub(crate) fn at(mut self, outer: &str) -> EventError {
        if let Some(field) = self.field_mut() {
            *field = parts::join(outer, field);
        }
        self
    }

    /// The field path this error is about, if it is about one field.
    pub fn field(&self) -> Option<&str> {
        match self {
            EventError::WrongType { field, .. }
            | EventError::UnknownField { field }
            | EventError::DuplicateField { field }
            | EventError::MissingField { field }
            | EventError::Empty { field }
            | EventError::Length { field, .. }
            | EventError::IntegerRange { field }
            | EventError::Identifier { field, .. }
            | EventError::Time { field, .. }
            | EventError::Vocabulary { field, .. }
            | EventError::Text { field, .. }
            | EventError::DeviceId { field, .. }
            | EventError::NotFinite { field }
            | EventError::ReservedKey { field }
            | EventError::Quantity { field, .. }
            | EventError::IdentifierKind { field, .. }
            | EventError::DuplicateIdentifier { field, .. } => Some(field),
            EventError::Required { field, .. } | EventError::NotAllowed { field, .. } => {
                Some(field)
            }
            EventError::ClockSyncedTrue => Some("prov:clockSynced"),
            EventError::SeqZero => Some("prov:seq"),
            EventError::PrevMismatch { .. } => Some("prov:prev"),
            EventError::Disclosure { .. } => Some("childEPCs"),
            EventError::IlmdWithoutAdd { .. } => Some("ilmd"),
            EventError::Cbor(_) => None,
        }
    }

    fn field_mut(&mut self) -> Option<&mut String> {
        match self {
            EventError::WrongType { field, .. }
            | EventError::UnknownField { field }
            | EventError::DuplicateField { field }
            | EventError::MissingField { field }
            | EventError::Empty { field }
            | EventError::Length { field, .. }
            | EventError::IntegerRange { field }
            | EventError::Identifier { field, .. }
            | EventError::Time { field, .. }
            | EventError::Vocabulary { field, .. }
            | EventError::Text { field, .. }
            | EventError::DeviceId { field, .. }
            | EventError::NotFinite { field }
            | EventError::ReservedKey { field }
            | EventError::Quantity { field, .. }
            | EventError::IdentifierKind { field, .. }
            | EventError::DuplicateIdentifier { field, .. } => Some(field),
            _ => None,
        }
    }
}

/// Declares [`Event`] and the private `EventJson` it is deserialized through (same fields, same
/// serde attributes), so that JSON input is validated like CBOR input and the two field lists
/// cannot drift apart.
/// The EPCIS master-data attribute (`ilmd`) naming an instance's lot.
pub const LOT_NUMBER: &str = "cbvmda:lotNumber";

macro_rules! event_struct {
    (
        $(#[$meta:meta])*
        pub struct Event { $( $(#[$fmeta:meta])* pub $field:ident : $ty:ty, )* }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(try_from = "EventJson")]
        pub struct Event { $( $(#[$fmeta])* pub $field: $ty, )* }

        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct EventJson { $( $(#[$fmeta])* $field: $ty, )* }

        impl TryFrom<EventJson> for Event {
            type Error = EventError;
            fn try_from(raw: EventJson) -> Result<Event, EventError> {
                let event = Event { $( $field: raw.$field, )* };
                event.validate()?;
                Ok(event)
            }
        }
    };
}

event_struct! {
    /// One device event (SPEC §2). Lists are empty and options `None` when the field is absent;
    /// see [`Event::validate`] for which fields each [`EventType`] has.
    pub struct Event {
        /// `type`.
        #[serde(rename = "type")]
        pub event_type: EventType,
        /// `eventTime`: when it happened (UTC, milliseconds).
        #[serde(rename = "eventTime")]
        pub event_time: EventTime,
        /// `eventTimeZoneOffset`: the site's offset from UTC.
        #[serde(rename = "eventTimeZoneOffset")]
        pub event_time_zone_offset: TzOffset,
        /// `action`: every type but TransformationEvent has one.
        #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "some")]
        pub action: Option<Action>,
        /// `epcList`: items and logistic units (ObjectEvent, TransactionEvent).
        #[serde(
            rename = "epcList",
            default,
            skip_serializing_if = "Vec::is_empty",
            deserialize_with = "non_empty"
        )]
        pub epc_list: Vec<DigitalLink>,
        /// `parentID`: the container (AggregationEvent: an SSCC) or associated object.
        #[serde(
            rename = "parentID",
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "some"
        )]
        pub parent_id: Option<DigitalLink>,
        /// `childEPCs`: what goes into or out of the parent.
        #[serde(
            rename = "childEPCs",
            default,
            skip_serializing_if = "Vec::is_empty",
            deserialize_with = "non_empty"
        )]
        pub child_epcs: Vec<DigitalLink>,
        /// `inputEPCList`: items consumed by a transformation.
        #[serde(
            rename = "inputEPCList",
            default,
            skip_serializing_if = "Vec::is_empty",
            deserialize_with = "non_empty"
        )]
        pub input_epc_list: Vec<DigitalLink>,
        /// `outputEPCList`: items produced by a transformation.
        #[serde(
            rename = "outputEPCList",
            default,
            skip_serializing_if = "Vec::is_empty",
            deserialize_with = "non_empty"
        )]
        pub output_epc_list: Vec<DigitalLink>,
        /// `quantityList`: lot quantities (ObjectEvent, TransactionEvent).
        #[serde(
            rename = "quantityList",
            default,
            skip_serializing_if = "Vec::is_empty",
            deserialize_with = "non_empty"
        )]
        pub quantity_list: Vec<QuantityElement>,
        /// `childQuantityList`: lot quantities going into or out of the parent.
        #[serde(
            rename = "childQuantityList",
            default,
            skip_serializing_if = "Vec::is_empty",
            deserialize_with = "non_empty"
        )]
        pub child_quantity_list: Vec<QuantityElement>,
        /// `inputQuantityList`: lot quantities consumed by a transformation.
        #[serde(
            rename = "inputQuantityList",
            default,
            skip_serializing_if = "Vec::is_empty",
            deserialize_with = "non_empty"
        )]
        pub input_quantity_list: Vec<QuantityElement>,
        /// `outputQuantityList`: lot quantities produced by a transformation.
        #[serde(
            rename = "outputQuantityList",
            default,
            skip_serializing_if = "Vec::is_empty",
            deserialize_with = "non_empty"
        )]
        pub output_quantity_list: Vec<QuantityElement>,
        /// `bizStep`: the CBV business step.
        #[serde(
            rename = "bizStep",
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "some"
        )]
        pub biz_step: Option<BizStep>,
        /// `disposition`: the CBV disposition of the objects afterwards.
        #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "some")]
        pub disposition: Option<Disposition>,
        /// `readPoint`: where the event was observed.
        #[serde(
            rename = "readPoint",
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "some"
        )]
        pub read_point: Option<LocationRef>,
        /// `bizLocation`: where the objects are afterwards.
        #[serde(
            rename = "bizLocation",
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "some"
        )]
        pub biz_location: Option<LocationRef>,
        /// `bizTransactionList`: the business documents involved.
        #[serde(
            rename = "bizTransactionList",
            default,
            skip_serializing_if = "Vec::is_empty",
            deserialize_with = "non_empty"
        )]
        pub biz_transaction_list: Vec<BizTransaction>,
        /// `sourceList`: where the objects come from.
        #[serde(
            rename = "sourceList",
            default,
            skip_serializing_if = "Vec::is_empty",
            deserialize_with = "non_empty"
        )]
        pub source_list: Vec<Source>,
        /// `destinationList`: where the objects go.
        #[serde(
            rename = "destinationList",
            default,
            skip_serializing_if = "Vec::is_empty",
            deserialize_with = "non_empty"
        )]
        pub destination_list: Vec<Destination>,
        /// `sensorElementList`: sensor readings.
        #[serde(
            rename = "sensorElementList",
            default,
            skip_serializing_if = "Vec::is_empty",
            deserialize_with = "non_empty"
        )]
        pub sensor_element_list: Vec<SensorElement>,
        /// `ilmd`: master data of created lots or items (ObjectEvent with ADD,
        /// TransformationEvent).
        #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "some")]
        pub ilmd: Option<Ilmd>,
        /// `prov:device`: the signing device; must equal the COSE kid.
        #[serde(rename = "prov:device")]
        pub device: DeviceId,
        /// `prov:seq`: 1 for the device's first event, +1 for each next one.
        #[serde(rename = "prov:seq")]
        pub seq: u64,
        /// `prov:prev`: BLAKE3 of the device's previous message; zero when `seq` is 1.
        #[serde(rename = "prov:prev", with = "hex32")]
        pub prev: Hash32,
        /// `prov:clockSynced`: `false` when `eventTime` is the device's unsynchronised guess;
        /// `true` (the field omitted) otherwise.
        #[serde(
            rename = "prov:clockSynced",
            default = "yes",
            skip_serializing_if = "is_true",
            deserialize_with = "only_false"
        )]
        pub clock_synced: bool,
    }
}

cbor_map!(Event {
    req event_type = "type",
    req event_time = "eventTime",
    req event_time_zone_offset = "eventTimeZoneOffset",
    opt action = "action",
    list epc_list = "epcList",
    opt parent_id = "parentID",
    list child_epcs = "childEPCs",
    list input_epc_list = "inputEPCList",
    list output_epc_list = "outputEPCList",
    list quantity_list = "quantityList",
    list child_quantity_list = "childQuantityList",
    list input_quantity_list = "inputQuantityList",
    list output_quantity_list = "outputQuantityList",
    opt biz_step = "bizStep",
    opt disposition = "disposition",
    opt read_point = "readPoint",
    opt biz_location = "bizLocation",
    list biz_transaction_list = "bizTransactionList",
    list source_list = "sourceList",
    list destination_list = "destinationList",
    list sensor_element_list = "sensorElementList",
    opt ilmd = "ilmd",
    req device = "prov:device",
    req seq = "prov:seq",
    req prev = "prov:prev",
    falseflag clock_synced = "prov:clockSynced",
});

/// The fields, besides the common ones (`type`, `eventTime`, `eventTimeZoneOffset`, `prov:*`),
/// that each event type may carry (EPCIS 2.0 JSON Schema, minus the fields this system does not
/// use: `eventID`, `recordTime`, `errorDeclaration`, `certificationInfo`, `persistentDisposition`,
/// `transformationID`, extensions).
fn allowed_fields(event_type: EventType) -> &'static [&'static str] {
    const SHARED: [&str; 8] = [
        "bizStep",
        "disposition",
        "readPoint",
        "bizLocation",
        "bizTransactionList",
        "sourceList",
        "destinationList",
        "sensorElementList",
    ];
    macro_rules! with_shared {
        ($($f:literal),*) => {
            &[$($f,)* SHARED[0], SHARED[1], SHARED[2], SHARED[3], SHARED[4], SHARED[5],
              SHARED[6], SHARED[7]]
        };
    }
    match event_type {
        EventType::Object => with_shared!("action", "epcList", "quantityList", "ilmd"),
        EventType::Aggregation | EventType::Association => {
            with_shared!("action", "parentID", "childEPCs", "childQuantityList")
        }
        EventType::Transformation => with_shared!(
            "inputEPCList",
            "inputQuantityList",
            "outputEPCList",
            "outputQuantityList",
            "ilmd"
        ),
        EventType::Transaction => with_shared!("action", "parentID", "epcList", "quantityList"),
    }
}

/// An edge of the containment graph: `child` went into (ADD), was seen in (OBSERVE) or came
/// out of (DELETE) `parent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Containment<'a> {
    /// The case or pallet.
    pub parent: &'a DigitalLink,
    /// An item, SSCC or lot inside it.
    pub child: &'a DigitalLink,
    /// ADD, OBSERVE or DELETE.
    pub action: Action,
}

const ITEM_OR_SSCC: &str = "an item or SSCC";

impl Event {
    /// An event with the required common fields set and everything else absent. Fill in the
    /// fields its type needs, then [`Event::validate`].
    pub fn new(
        event_type: EventType,
        event_time: EventTime,
        event_time_zone_offset: TzOffset,
        device: DeviceId,
        seq: u64,
        prev: Hash32,
    ) -> Event {
        Event {
            event_type,
            event_time,
            event_time_zone_offset,
            action: None,
            epc_list: Vec::new(),
            parent_id: None,
            child_epcs: Vec::new(),
            input_epc_list: Vec::new(),
            output_epc_list: Vec::new(),
            quantity_list: Vec::new(),
            child_quantity_list: Vec::new(),
            input_quantity_list: Vec::new(),
            output_quantity_list: Vec::new(),
            biz_step: None,
            disposition: None,
            read_point: None,
            biz_location: None,
            biz_transaction_list: Vec::new(),
            source_list: Vec::new(),
            destination_list: Vec::new(),
            sensor_element_list: Vec::new(),
            ilmd: None,
            device,
            seq,
            prev,
            clock_synced: true,
        }
    }

    /// The payload as a CBOR value (a map with text keys, absent fields omitted).
    pub fn to_cbor(&self) -> Value {
        self.to_value()
    }

    /// Reads an event from a CBOR value: unknown keys and wrong types are rejected naming the
    /// field, and the result is [validated](Event::validate).
    pub fn from_cbor(value: &Value) -> Result<Event, EventError> {
        let event = Event::from_value(value)?;
        event.validate()?;
        Ok(event)
    }

    /// The payload bytes: the deterministic CBOR encoding of [`Event::to_cbor`].
    pub fn encode_payload(&self) -> Vec<u8> {
        self.to_cbor().encode()
    }

    /// Decodes payload bytes: they must be deterministic CBOR (re-encoding gives the same bytes)
    /// of a valid event.
    pub fn decode_payload(bytes: &[u8]) -> Result<Event, EventError> {
        Event::from_cbor(&cbor::decode_deterministic(bytes)?)
    }

    /// The fields other than the common ones, by JSON name, with whether each is present.
    fn presence(&self) -> [(&'static str, bool); 20] {
        [
            ("action", self.action.is_some()),
            ("epcList", !self.epc_list.is_empty()),
            ("parentID", self.parent_id.is_some()),
            ("childEPCs", !self.child_epcs.is_empty()),
            ("inputEPCList", !self.input_epc_list.is_empty()),
            ("outputEPCList", !self.output_epc_list.is_empty()),
            ("quantityList", !self.quantity_list.is_empty()),
            ("childQuantityList", !self.child_quantity_list.is_empty()),
            ("inputQuantityList", !self.input_quantity_list.is_empty()),
            ("outputQuantityList", !self.output_quantity_list.is_empty()),
            ("bizStep", self.biz_step.is_some()),
            ("disposition", self.disposition.is_some()),
            ("readPoint", self.read_point.is_some()),
            ("bizLocation", self.biz_location.is_some()),
            ("bizTransactionList", !self.biz_transaction_list.is_empty()),
            ("sourceList", !self.source_list.is_empty()),
            ("destinationList", !self.destination_list.is_empty()),
            ("sensorElementList", !self.sensor_element_list.is_empty()),
            ("ilmd", self.ilmd.is_some()),
            // Listed so the table has every optional field; always allowed.
            ("prov:clockSynced", false),
        ]
    }

    /// Checks every rule of SPEC §2 and EPCIS 2.0 this system relies on:
    ///
    /// - per type, only its own fields ([`EventError::NotAllowed`]) and its required ones
    ///   ([`EventError::Required`]): ObjectEvent needs `action` and `epcList` or `quantityList`,
    ///   and carries `ilmd` only with ADD; AggregationEvent needs `action`, children
    ///   (`childEPCs` or `childQuantityList`) and, for ADD and DELETE, `parentID`;
    ///   TransformationEvent has no `action` and needs inputs and outputs; AssociationEvent
    ///   needs `action`, `parentID` and children; TransactionEvent needs `action` and
    ///   `bizTransactionList`;
    /// - identifiers of the right kind: items or SSCCs in EPC lists, an SSCC as an
    ///   AggregationEvent's parent (an item or SSCC otherwise), lots in quantity lists,
    ///   locations in `readPoint`/`bizLocation`; no identifier twice in one list;
    /// - the disclosure rule (an AggregationEvent with an item child lists exactly one child);
    /// - numbers finite, quantities positive and whole when they are counts; lists, `ilmd` and
    ///   `sensorMetadata` non-empty when present; no [`RESERVED_ILMD_KEYS`] inside `ilmd`;
    /// - `prov:seq` ≥ 1, and `prov:prev` zero exactly when `prov:seq` is 1.
    pub fn validate(&self) -> Result<(), EventError> {
        let t = self.event_type;
        let allowed = allowed_fields(t);
        for (field, present) in self.presence() {
            if present && field != "prov:clockSynced" && !allowed.contains(&field) {
                return Err(EventError::NotAllowed {
                    event_type: t,
                    field,
                });
            }
        }
        self.check_required()?;
        self.check_identifiers()?;
        self.check_numbers_and_shapes()?;
        if self.seq == 0 {
            return Err(EventError::SeqZero);
        }
        if (self.seq == 1) != (self.prev == Hash32::ZERO) {
            return Err(EventError::PrevMismatch {
                seq: self.seq,
                prev: self.prev,
            });
        }
        if t == EventType::Aggregation && self.child_epcs.iter().any(is_item) {
            let children = self.child_epcs.len() + self.child_quantity_list.len();
            if children != 1 {
                return Err(EventError::Disclosure { children });
            }
        }
        Ok(())
    }

    fn check_required(&self) -> Result<(), EventError> {
        let t = self.event_type;
        let require = |ok: bool, field| {
            if ok {
                Ok(())
            } else {
                Err(EventError::Required {
                    event_type: t,
                    field,
                })
            }
        };
        let has_children = !self.child_epcs.is_empty() || !self.child_quantity_list.is_empty();
        match t {
            EventType::Object => {
                require(self.action.is_some(), "action")?;
                require(
                    !self.epc_list.is_empty() || !self.quantity_list.is_empty(),
                    "epcList or quantityList",
                )?;
                if let (Some(action), Some(_)) = (self.action, &self.ilmd)
                    && action != Action::Add
                {
                    return Err(EventError::IlmdWithoutAdd { action });
                }
            }
            EventType::Aggregation => {
                require(self.action.is_some(), "action")?;
                if matches!(self.action, Some(Action::Add | Action::Delete)) {
                    require(self.parent_id.is_some(), "parentID")?;
                }
                require(has_children, "childEPCs or childQuantityList")?;
            }
            EventType::Transformation => {
                require(
                    !self.input_epc_list.is_empty() || !self.input_quantity_list.is_empty(),
                    "inputEPCList or inputQuantityList",
                )?;
                require(
                    !self.output_epc_list.is_empty() || !self.output_quantity_list.is_empty(),
                    "outputEPCList or outputQuantityList",
                )?;
            }
            EventType::Association => {
                require(self.action.is_some(), "action")?;
                require(self.parent_id.is_some(), "parentID")?;
                require(has_children, "childEPCs or childQuantityList")?;
            }
            EventType::Transaction => {
                require(self.action.is_some(), "action")?;
                require(!self.biz_transaction_list.is_empty(), "bizTransactionList")?;
            }
        }
        Ok(())
    }

    fn check_identifiers(&self) -> Result<(), EventError> {
        let epc_lists: [(&str, &[DigitalLink]); 4] = [
            ("epcList", &self.epc_list),
            ("childEPCs", &self.child_epcs),
            ("inputEPCList", &self.input_epc_list),
            ("outputEPCList", &self.output_epc_list),
        ];
        for (name, list) in epc_lists {
            for (i, id) in list.iter().enumerate() {
                let field = || format!("{name}[{i}]");
                if !matches!(id.kind(), IdKind::Item | IdKind::Sscc) {
                    return Err(kind_error(field(), id, ITEM_OR_SSCC));
                }
                if list.get(..i).is_some_and(|before| before.contains(id)) {
                    return Err(EventError::DuplicateIdentifier {
                        field: field(),
                        uri: id.canonical(),
                    });
                }
            }
        }
        for (name, list) in self.quantity_lists() {
            for (i, q) in list.iter().enumerate() {
                let field = || format!("{name}[{i}].epcClass");
                if q.epc_class.kind() != IdKind::Lot {
                    return Err(kind_error(field(), &q.epc_class, "a lot"));
                }
                if list
                    .get(..i)
                    .is_some_and(|before| before.iter().any(|b| b.epc_class == q.epc_class))
                {
                    return Err(EventError::DuplicateIdentifier {
                        field: field(),
                        uri: q.epc_class.canonical(),
                    });
                }
            }
        }
        if let Some(parent) = &self.parent_id {
            let (ok, want) = if self.event_type == EventType::Aggregation {
                (parent.kind() == IdKind::Sscc, "an SSCC")
            } else {
                (
                    matches!(parent.kind(), IdKind::Item | IdKind::Sscc),
                    ITEM_OR_SSCC,
                )
            };
            if !ok {
                return Err(kind_error(String::from("parentID"), parent, want));
            }
        }
        for (name, loc) in [
            ("readPoint", &self.read_point),
            ("bizLocation", &self.biz_location),
        ] {
            if let Some(loc) = loc
                && loc.id.kind() != IdKind::Location
            {
                return Err(kind_error(format!("{name}.id"), &loc.id, "a location"));
            }
        }
        Ok(())
    }

    fn quantity_lists(&self) -> [(&'static str, &[QuantityElement]); 4] {
        [
            ("quantityList", &self.quantity_list),
            ("childQuantityList", &self.child_quantity_list),
            ("inputQuantityList", &self.input_quantity_list),
            ("outputQuantityList", &self.output_quantity_list),
        ]
    }

    fn check_numbers_and_shapes(&self) -> Result<(), EventError> {
        for (name, list) in self.quantity_lists() {
            for (i, q) in list.iter().enumerate() {
                let field = || format!("{name}[{i}].quantity");
                if !q.quantity.is_finite() {
                    return Err(EventError::NotFinite { field: field() });
                }
                let want = if q.quantity <= 0.0 {
                    Some("positive")
                } else if q.uom.is_none() && !is_whole(q.quantity) {
                    Some("a whole number (a count: no uom)")
                } else {
                    None
                };
                if let Some(want) = want {
                    return Err(EventError::Quantity {
                        field: field(),
                        quantity: q.quantity,
                        want,
                    });
                }
            }
        }
        for (i, element) in self.sensor_element_list.iter().enumerate() {
            let at = |rest: &str| format!("sensorElementList[{i}]{rest}");
            if element
                .sensor_metadata
                .as_ref()
                .is_some_and(SensorMetadata::is_empty)
            {
                return Err(EventError::Empty {
                    field: at(".sensorMetadata"),
                });
            }
            if element.sensor_report.is_empty() {
                return Err(EventError::Empty {
                    field: at(".sensorReport"),
                });
            }
            for (j, report) in element.sensor_report.iter().enumerate() {
                if let Some((name, _)) = report.numbers().find(|(_, x)| !x.is_finite()) {
                    return Err(EventError::NotFinite {
                        field: at(&format!(".sensorReport[{j}].{name}")),
                    });
                }
            }
        }
        if let Some(ilmd) = &self.ilmd {
            if ilmd.0.is_empty() {
                return Err(EventError::Empty {
                    field: String::from("ilmd"),
                });
            }
            for (k, v) in &ilmd.0 {
                let reserved = if RESERVED_ILMD_KEYS.contains(&k.as_str()) {
                    Some(String::new())
                } else {
                    v.first_reserved_key()
                };
                if let Some(path) = reserved {
                    return Err(EventError::ReservedKey {
                        field: parts::join("ilmd", &parts::join(k, &path)),
                    });
                }
                if let Some(path) = v.first_non_finite() {
                    return Err(EventError::NotFinite {
                        field: parts::join("ilmd", &parts::join(k, &path)),
                    });
                }
            }
        }
        Ok(())
    }

    /// Every object identifier the event names (EPC lists, parent, children, inputs, outputs,
    /// the lots of every quantity list), sorted and without repeats: the keys of the product
    /// index. Locations are left out: see [`Event::locations`].
    pub fn identifiers(&self) -> Vec<&DigitalLink> {
        let mut out: Vec<&DigitalLink> = self
            .epc_list
            .iter()
            .chain(self.parent_id.iter())
            .chain(&self.child_epcs)
            .chain(&self.input_epc_list)
            .chain(&self.output_epc_list)
            .chain(
                self.quantity_lists()
                    .into_iter()
                    .flat_map(|(_, list)| list.iter().map(|q| &q.epc_class)),
            )
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// The locations the event names (`readPoint`, then `bizLocation`).
    pub fn locations(&self) -> impl Iterator<Item = &DigitalLink> {
        self.read_point
            .iter()
            .chain(self.biz_location.iter())
            .map(|l| &l.id)
    }

    /// The containment edges of an AggregationEvent with a parent: one per child (`childEPCs`,
    /// then the lots of `childQuantityList`). Empty for every other event.
    pub fn containment_edges(&self) -> Vec<Containment<'_>> {
        let (EventType::Aggregation, Some(parent), Some(action)) =
            (self.event_type, &self.parent_id, self.action)
        else {
            return Vec::new();
        };
        self.child_epcs
            .iter()
            .chain(self.child_quantity_list.iter().map(|q| &q.epc_class))
            .map(|child| Containment {
                parent,
                child,
                action,
            })
            .collect()
    }

    /// The edges `(input, output)` of a TransformationEvent: every input (items and lots) to
    /// every output. Empty for every other event.
    pub fn transformation_edges(&self) -> Vec<(&DigitalLink, &DigitalLink)> {
        if self.event_type != EventType::Transformation {
            return Vec::new();
        }
        let inputs = self
            .input_epc_list
            .iter()
            .chain(self.input_quantity_list.iter().map(|q| &q.epc_class));
        let outputs: Vec<&DigitalLink> = self
            .output_epc_list
            .iter()
            .chain(self.output_quantity_list.iter().map(|q| &q.epc_class))
            .collect();
        inputs
            .flat_map(|i| outputs.iter().map(move |o| (i, *o)))
            .collect()
    }

    /// The lot each serialized item of `epcList` belongs to, as this event declares it: `ilmd`'s
    /// `cbvmda:lotNumber` ([`LOT_NUMBER`], the EPCIS way to state an instance's lot) as a lot of
    /// the item's GTIN. Empty when the event declares no lot (or one that is not a valid lot).
    pub fn declared_lots(&self) -> Vec<(&DigitalLink, DigitalLink)> {
        let Some(parts::IlmdValue::Text(lot)) =
            self.ilmd.as_ref().and_then(|i| i.0.get(LOT_NUMBER))
        else {
            return Vec::new();
        };
        let Ok(lot) = crate::digital_link::Lot::parse(lot) else {
            return Vec::new();
        };
        self.epc_list
            .iter()
            .filter_map(|id| match id {
                DigitalLink::Item { gtin, .. } => Some((
                    id,
                    DigitalLink::Lot {
                        gtin: *gtin,
                        lot: lot.clone(),
                    },
                )),
                _ => None,
            })
            .collect()
    }

    /// Whether any sensor report carries an exception (an excursion or a sensor fault).
    pub fn has_sensor_exception(&self) -> bool {
        self.sensor_element_list
            .iter()
            .flat_map(|e| &e.sensor_report)
            .any(|r| r.exception.is_some())
    }
}

/// Whether a finite `x` is a whole number (without `f64::fract`, which needs `std`). Every
/// float of magnitude 2^52 or more is whole.
fn is_whole(x: f64) -> bool {
    x.abs() >= 4_503_599_627_370_496.0 || (x as i64) as f64 == x
}

fn is_item(id: &DigitalLink) -> bool {
    id.kind() == IdKind::Item
}

fn kind_error(field: String, id: &DigitalLink, want: &'static str) -> EventError {
    EventError::IdentifierKind {
        field,
        uri: id.canonical(),
        got: id.kind(),
        want,
    }
}
