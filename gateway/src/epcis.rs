//! EPCIS 2.0 for auditors: events of the log as a JSON-LD `EPCISDocument` /
//! `EPCISQueryDocument`, and a subset of the EPCIS query parameters over the log.
//!
//! Why a document built from the log and not from a separate event store: the log is the source
//! of truth, and an auditor must be able to check every exported event against it. So each
//! event keeps the exact signed message and its place in the log, carried as a declared
//! extension (the `prov:` prefix, bound in the document's `@context` as EPCIS 2.0 §8.2 asks for
//! user extensions): `prov:signature` (the COSE_Sign1 bytes, base64) and `prov:inclusion`
//! (leaf index and, when asked for, the C2SP tlog-proof against the document's checkpoint).
//! The event fields themselves are the device's own payload in its JSON form (SPEC §2: text
//! keys mirroring EPCIS 2.0 JSON names), so nothing is re-interpreted on the way out; its
//! `prov:device` / `prov:seq` / `prov:prev` / `prov:clockSynced` are extension fields under the
//! same prefix. `eventID` is derived from the message hash, so the same event always has the
//! same ID.
//!
//! Queries ([`EventQuery`]) follow the EPCIS 2.0 query language for the parameters we support
//! (`EQ_bizStep`, `MATCH_epc`, `MATCH_anyEPC`, `GE_eventTime`/`LT_eventTime`, `EQ_readPoint`,
//! `EQ_bizLocation`, `EQ_deviceID`, `EQ_type`, and the sensor comparisons
//! `{GT,GE,LT,LE,EQ}_{value,minValue,maxValue,meanValue}_{uom}`), with paging by
//! `perPage`/`nextPageToken` as in the EPCIS REST binding. An unknown parameter is an error,
//! never silently ignored: an auditor who misspells a filter must not get an unfiltered answer.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use prov_ledger::store::{LogStore, StoreError};
use prov_schemas::Hash32;
use prov_schemas::digital_link::DigitalLink;
use prov_schemas::event::{Event, EventTime};
use serde_json::{Map, Value, json};

use crate::index::LoggedEntry;

/// The JSON-LD context of EPCIS 2.0 (GS1's published URL).
pub const EPCIS_CONTEXT: &str = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld";

/// The namespace bound to the `prov:` prefix of our extension fields.
pub const PROV_NAMESPACE: &str = "https://example.invalid/provenance/ns/v1#";

/// Default page size of a query.
pub const DEFAULT_PER_PAGE: usize = 100;

/// Largest page size a query may ask for.
pub const MAX_PER_PAGE: usize = 1_000;

/// Why a query or an export failed.
#[derive(Debug, thiserror::Error)]
pub enum EpcisError {
    /// A parameter we do not support (or misspelt).
    #[error("unknown query parameter {name:?}")]
    UnknownParameter {
        /// The parameter as given.
        name: String,
    },
    /// A parameter's value does not parse.
    #[error("query parameter {name}: {reason} (got {value:?})")]
    BadValue {
        /// The parameter.
        name: String,
        /// Its value.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// The log could not be read.
    #[error("log: {0}")]
    Store(#[from] StoreError),
    /// An entry of the log does not parse (the log is corrupt or was written by other code).
    #[error("log entry {leaf} does not parse: {reason}")]
    Entry {
        /// Its index.
        leaf: u64,
        /// Why.
        reason: String,
    },
}

/// A comparison operator of the EPCIS query language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    /// `GT_`
    Gt,
    /// `GE_`
    Ge,
    /// `LT_`
    Lt,
    /// `LE_`
    Le,
    /// `EQ_`
    Eq,
}

impl Cmp {
    fn holds(self, got: f64, want: f64) -> bool {
        match self {
            Cmp::Gt => got > want,
            Cmp::Ge => got >= want,
            Cmp::Lt => got < want,
            Cmp::Le => got <= want,
            Cmp::Eq => got == want,
        }
    }
}

/// A sensor comparison: some `sensorReport` of the event has `field` (in `uom`) `cmp` `value`.
#[derive(Debug, Clone, PartialEq)]
pub struct SensorFilter {
    /// The operator.
    pub cmp: Cmp,
    /// `value`, `minValue`, `maxValue` or `meanValue`.
    pub field: &'static str,
    /// The UN/CEFACT unit code the report must carry (`CEL`, `KGM`…).
    pub uom: String,
    /// The bound.
    pub value: f64,
}

/// A parsed query: every constraint must hold (EPCIS: parameters are ANDed; the values of one
/// parameter are ORed).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventQuery {
    /// `EQ_type`: event types.
    pub types: Vec<String>,
    /// `EQ_bizStep`: CBV short names or full URIs' last segment.
    pub biz_steps: Vec<String>,
    /// `MATCH_epc`: in `epcList` or `childEPCs`.
    pub match_epc: Vec<String>,
    /// `MATCH_anyEPC`: anywhere (also `parentID`, inputs, outputs, quantity classes).
    pub match_any_epc: Vec<String>,
    /// `GE_eventTime` (inclusive), Unix milliseconds.
    pub from_ms: Option<u64>,
    /// `LT_eventTime` (exclusive), Unix milliseconds.
    pub to_ms: Option<u64>,
    /// `EQ_readPoint`.
    pub read_points: Vec<String>,
    /// `EQ_bizLocation`.
    pub biz_locations: Vec<String>,
    /// `EQ_deviceID`: the signing device (`prov:device`).
    pub devices: Vec<String>,
    /// Sensor comparisons.
    pub sensors: Vec<SensorFilter>,
    /// Page size.
    pub per_page: usize,
    /// First leaf to look at (from `nextPageToken`).
    pub start_leaf: u64,
}

fn bad(name: &str, value: &str, reason: impl Into<String>) -> EpcisError {
    EpcisError::BadValue {
        name: name.into(),
        value: value.into(),
        reason: reason.into(),
    }
}

/// A Digital Link in any form (SPEC §1), as its canonical URI.
fn canonical_id(name: &str, value: &str) -> Result<String, EpcisError> {
    DigitalLink::parse(value)
        .map(|id| id.canonical())
        .map_err(|e| bad(name, value, e.to_string()))
}

/// `YYYY-MM-DDTHH:MM:SS[.sss]Z` as Unix milliseconds.
fn time_ms(name: &str, value: &str) -> Result<u64, EpcisError> {
    let with_ms = match value.strip_suffix('Z') {
        Some(head) if head.len() == 19 => format!("{head}.000Z"),
        _ => value.to_owned(),
    };
    EventTime::parse(&with_ms)
        .map(|t| t.unix_millis())
        .map_err(|e| bad(name, value, e.to_string()))
}

impl EventQuery {
    /// Parses query parameters (name, value) pairs; values of list parameters may also be
    /// `|`-separated, as in the EPCIS REST binding.
    ///
    /// # Errors
    /// [`EpcisError::UnknownParameter`] or [`EpcisError::BadValue`] naming the parameter.
    pub fn parse<'a>(
        params: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<EventQuery, EpcisError> {
        let mut q = EventQuery {
            per_page: DEFAULT_PER_PAGE,
            ..EventQuery::default()
        };
        for (name, value) in params {
            let values = || value.split('|').filter(|v| !v.is_empty());
            match name {
                "EQ_type" => q.types.extend(values().map(str::to_owned)),
                "EQ_bizStep" => q.biz_steps.extend(values().map(short_name)),
                "MATCH_epc" => {
                    for v in values() {
                        q.match_epc.push(canonical_id(name, v)?);
                    }
                }
                "MATCH_anyEPC" => {
                    for v in values() {
                        q.match_any_epc.push(canonical_id(name, v)?);
                    }
                }
                "EQ_readPoint" => {
                    for v in values() {
                        q.read_points.push(canonical_id(name, v)?);
                    }
                }
                "EQ_bizLocation" => {
                    for v in values() {
                        q.biz_locations.push(canonical_id(name, v)?);
                    }
                }
                "EQ_deviceID" => q.devices.extend(values().map(str::to_owned)),
                "GE_eventTime" => q.from_ms = Some(time_ms(name, value)?),
                "LT_eventTime" => q.to_ms = Some(time_ms(name, value)?),
                "perPage" => {
                    let n: usize = value
                        .parse()
                        .map_err(|_| bad(name, value, "not a positive integer"))?;
                    if n == 0 || n > MAX_PER_PAGE {
                        return Err(bad(name, value, format!("must be 1..={MAX_PER_PAGE}")));
                    }
                    q.per_page = n;
                }
                "nextPageToken" => {
                    q.start_leaf = value
                        .parse()
                        .map_err(|_| bad(name, value, "not a page token of this server"))?;
                }
                _ => match parse_sensor(name, value)? {
                    Some(f) => q.sensors.push(f),
                    None => {
                        return Err(EpcisError::UnknownParameter { name: name.into() });
                    }
                },
            }
        }
        Ok(q)
    }

    /// Whether `event` (its JSON form) satisfies every constraint.
    pub fn matches(&self, event: &Value) -> bool {
        let s = |k: &str| event.get(k).and_then(Value::as_str);
        let one_of = |list: &[String], got: Option<&str>| {
            list.is_empty() || got.is_some_and(|g| list.iter().any(|w| w == g))
        };
        let id_of = |k: &str| {
            event
                .get(k)
                .and_then(|v| v.get("id"))
                .and_then(Value::as_str)
        };
        if !one_of(&self.types, s("type"))
            || !one_of(&self.biz_steps, s("bizStep"))
            || !one_of(&self.read_points, id_of("readPoint"))
            || !one_of(&self.biz_locations, id_of("bizLocation"))
            || !one_of(&self.devices, s("prov:device"))
        {
            return false;
        }
        if self.from_ms.is_some() || self.to_ms.is_some() {
            let Some(t) = s("eventTime").and_then(|t| EventTime::parse(t).ok()) else {
                return false;
            };
            let t = t.unix_millis();
            if self.from_ms.is_some_and(|f| t < f) || self.to_ms.is_some_and(|to| t >= to) {
                return false;
            }
        }
        if !self.match_epc.is_empty() {
            let ids = ids_in(event, &["epcList", "childEPCs"], &[]);
            if !self.match_epc.iter().any(|w| ids.contains(&w.as_str())) {
                return false;
            }
        }
        if !self.match_any_epc.is_empty() {
            let ids = ids_in(
                event,
                &["epcList", "childEPCs", "inputEPCList", "outputEPCList"],
                &[
                    "quantityList",
                    "childQuantityList",
                    "inputQuantityList",
                    "outputQuantityList",
                ],
            );
            let parent = s("parentID");
            if !self
                .match_any_epc
                .iter()
                .any(|w| ids.contains(&w.as_str()) || parent == Some(w.as_str()))
            {
                return false;
            }
        }
        self.sensors.iter().all(|f| sensor_holds(event, f))
    }
}

/// `bizStep` values may be given as CBV URIs (`https://ref.gs1.org/cbv/BizStep-packing`) or
/// short names; events carry short names (SPEC §2).
fn short_name(v: &str) -> String {
    v.rsplit_once("BizStep-")
        .map_or(v, |(_, short)| short)
        .to_owned()
}

fn parse_sensor(name: &str, value: &str) -> Result<Option<SensorFilter>, EpcisError> {
    let Some((op, rest)) = name.split_once('_') else {
        return Ok(None);
    };
    let cmp = match op {
        "GT" => Cmp::Gt,
        "GE" => Cmp::Ge,
        "LT" => Cmp::Lt,
        "LE" => Cmp::Le,
        "EQ" => Cmp::Eq,
        _ => return Ok(None),
    };
    let Some((field, uom)) = rest.split_once('_') else {
        return Ok(None);
    };
    let field = match field {
        "value" => "value",
        "minValue" => "minValue",
        "maxValue" => "maxValue",
        "meanValue" => "meanValue",
        _ => return Ok(None),
    };
    if uom.is_empty() || !uom.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(bad(
            name,
            value,
            "the unit must be a UN/CEFACT code such as CEL",
        ));
    }
    let bound: f64 = value
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite())
        .ok_or_else(|| bad(name, value, "not a number"))?;
    Ok(Some(SensorFilter {
        cmp,
        field,
        uom: uom.into(),
        value: bound,
    }))
}

fn sensor_holds(event: &Value, f: &SensorFilter) -> bool {
    let elements = event
        .get("sensorElementList")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    elements
        .iter()
        .filter_map(|e| e.get("sensorReport").and_then(Value::as_array))
        .flatten()
        .any(|r| {
            r.get("uom").and_then(Value::as_str) == Some(f.uom.as_str())
                && r.get(f.field)
                    .and_then(Value::as_f64)
                    .is_some_and(|got| f.cmp.holds(got, f.value))
        })
}

fn ids_in<'v>(event: &'v Value, lists: &[&str], quantity_lists: &[&str]) -> Vec<&'v str> {
    let mut out = Vec::new();
    for k in lists {
        if let Some(a) = event.get(*k).and_then(Value::as_array) {
            out.extend(a.iter().filter_map(Value::as_str));
        }
    }
    for k in quantity_lists {
        if let Some(a) = event.get(*k).and_then(Value::as_array) {
            out.extend(
                a.iter()
                    .filter_map(|q| q.get("epcClass").and_then(Value::as_str)),
            );
        }
    }
    out
}

/// One logged event with where it is.
#[derive(Debug, Clone)]
pub struct LoggedEvent {
    /// Its leaf index.
    pub leaf: u64,
    /// The exact message (COSE_Sign1 bytes).
    pub message: Vec<u8>,
    /// The event.
    pub event: Event,
}

impl LoggedEvent {
    /// Parses entry `leaf` of the log; `None` for a registry record.
    ///
    /// # Errors
    /// [`EpcisError::Entry`] if the entry does not parse.
    pub fn from_entry(leaf: u64, message: Vec<u8>) -> Result<Option<LoggedEvent>, EpcisError> {
        match LoggedEntry::parse(&message) {
            Ok(LoggedEntry::Event { event, .. }) => Ok(Some(LoggedEvent {
                leaf,
                message,
                event: *event,
            })),
            Ok(LoggedEntry::Registry { .. }) => Ok(None),
            Err(e) => Err(EpcisError::Entry {
                leaf,
                reason: e.to_string(),
            }),
        }
    }
}

/// One page of a query's answer.
#[derive(Debug, Clone)]
pub struct Page {
    /// The matching events, in log order.
    pub events: Vec<LoggedEvent>,
    /// Where the next page starts, if the log goes on.
    pub next_page_token: Option<u64>,
}

/// Runs `query` over the first `size` entries of `log` (the size of the checkpoint the answer
/// is given against), in log order, up to `query.per_page` matches.
///
/// A scan: the parameters that an index could serve (`MATCH_epc`, `EQ_deviceID`) are few
/// enough in an audit that a sequential read of the segments (hundreds of MB/s) is the simpler
/// honest answer; `nextPageToken` bounds each call.
///
/// # Errors
/// [`EpcisError::Store`] or [`EpcisError::Entry`].
pub fn query(log: &LogStore, size: u64, query: &EventQuery) -> Result<Page, EpcisError> {
    let mut events = Vec::new();
    let mut next = None;
    let mut failure = None;
    let start = query.start_leaf.min(size);
    log.for_each_entry(start..size, |leaf, message| {
        if events.len() == query.per_page {
            next = Some(leaf);
            return ControlFlow::Break(());
        }
        match LoggedEvent::from_entry(leaf, message.to_vec()) {
            Ok(Some(e)) => match serde_json::to_value(&e.event) {
                Ok(json) if query.matches(&json) => events.push(e),
                Ok(_) => {}
                Err(err) => {
                    failure = Some(EpcisError::Entry {
                        leaf,
                        reason: err.to_string(),
                    });
                    return ControlFlow::Break(());
                }
            },
            Ok(None) => {}
            Err(err) => {
                failure = Some(err);
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    })?;
    match failure {
        Some(e) => Err(e),
        None => Ok(Page {
            events,
            next_page_token: next,
        }),
    }
}

/// The `@context` of every document we write: EPCIS 2.0's, and our extension prefix.
pub fn context() -> Value {
    json!([EPCIS_CONTEXT, {"prov": PROV_NAMESPACE}])
}

/// The EPCIS 2.0 JSON of one logged event, with its signature and inclusion as extensions.
/// `proof`: the C2SP tlog-proof text against the document's checkpoint, when the caller has
/// it.
pub fn event_json(e: &LoggedEvent, proof: Option<&str>) -> Value {
    let mut v = serde_json::to_value(&e.event).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut v {
        map.insert(
            "eventID".into(),
            Value::String(format!(
                "urn:prov:event:blake3:{}",
                Hash32::blake3(&e.message).to_hex()
            )),
        );
        map.insert(
            "prov:signature".into(),
            json!({"alg": "ES256", "cose": STANDARD.encode(&e.message)}),
        );
        let mut inclusion = Map::new();
        inclusion.insert("leafIndex".into(), e.leaf.into());
        if let Some(p) = proof {
            inclusion.insert("tlogProof".into(), p.into());
        }
        map.insert("prov:inclusion".into(), Value::Object(inclusion));
    }
    v
}

/// An `EPCISDocument` of `events`. `checkpoint`: the signed note the inclusion proofs are
/// against (carried as `prov:checkpoint`); `creation_ms`: the document's `creationDate`.
pub fn document(events: &[Value], checkpoint: Option<&str>, creation_ms: u64) -> Value {
    let mut doc = Map::new();
    doc.insert("@context".into(), context());
    doc.insert("type".into(), "EPCISDocument".into());
    doc.insert("schemaVersion".into(), "2.0".into());
    doc.insert("creationDate".into(), creation_date(creation_ms).into());
    if let Some(c) = checkpoint {
        doc.insert("prov:checkpoint".into(), c.into());
    }
    doc.insert("epcisBody".into(), json!({"eventList": events}));
    Value::Object(doc)
}

/// An `EPCISQueryDocument`: the answer to a named query (`SimpleEventQuery` for
/// `GET /api/v1/events`).
pub fn query_document(
    query_name: &str,
    events: &[Value],
    checkpoint: Option<&str>,
    creation_ms: u64,
) -> Value {
    let mut doc = Map::new();
    doc.insert("@context".into(), context());
    doc.insert("type".into(), "EPCISQueryDocument".into());
    doc.insert("schemaVersion".into(), "2.0".into());
    doc.insert("creationDate".into(), creation_date(creation_ms).into());
    if let Some(c) = checkpoint {
        doc.insert("prov:checkpoint".into(), c.into());
    }
    doc.insert(
        "epcisBody".into(),
        json!({"queryResults": {"queryName": query_name, "resultsBody": {"eventList": events}}}),
    );
    Value::Object(doc)
}

fn creation_date(ms: u64) -> String {
    EventTime::from_unix_millis(ms)
        .map(|t| t.as_str().to_owned())
        .unwrap_or_else(|_| "1970-01-01T00:00:00.000Z".into())
}

/// Query parameters from a URL query string (`a=1&b=2`), percent-decoded.
///
/// # Errors
/// [`EpcisError::BadValue`] for a parameter that is not valid percent-encoded UTF-8.
pub fn params_from_query_string(qs: &str) -> Result<Vec<(String, String)>, EpcisError> {
    let mut out = Vec::new();
    for pair in qs.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.push((percent_decode(k)?, percent_decode(v)?));
    }
    Ok(out)
}

fn percent_decode(s: &str) -> Result<String, EpcisError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| bad("query string", s, "bad percent-encoding"))?;
                out.push(hex);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| bad("query string", s, "not UTF-8"))
}

/// Counts per event type of a set of events (for summaries).
pub fn type_counts(events: &[LoggedEvent]) -> BTreeMap<&'static str, usize> {
    let mut m = BTreeMap::new();
    for e in events {
        *m.entry(e.event.event_type.as_str()).or_insert(0) += 1;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Result<EventQuery, EpcisError> {
        EventQuery::parse(pairs.iter().copied())
    }

    #[test]
    fn unknown_parameters_are_errors() {
        assert!(matches!(
            q(&[("EQ_bizstep", "packing")]),
            Err(EpcisError::UnknownParameter { .. })
        ));
        assert!(matches!(
            q(&[("GE_maxValue_CEL", "warm")]),
            Err(EpcisError::BadValue { .. })
        ));
        assert!(matches!(
            q(&[("perPage", "0")]),
            Err(EpcisError::BadValue { .. })
        ));
        assert!(matches!(
            q(&[("MATCH_epc", "https://id.gs1.org/01/09506000134353/21/A")]),
            Err(EpcisError::BadValue { .. })
        ));
    }

    #[test]
    fn filters_match_the_json_form() {
        let ev = json!({
            "type": "ObjectEvent",
            "eventTime": "2026-11-24T08:00:00.000Z",
            "bizStep": "sensor_reporting",
            "prov:device": "line1-coldroom",
            "epcList": ["https://id.gs1.org/01/09506000134352/21/ABC123"],
            "readPoint": {"id": "https://id.gs1.org/414/9506000134376"},
            "sensorElementList": [{"sensorReport": [
                {"type": "Temperature", "value": 9.5, "uom": "CEL"}]}]
        });
        let yes = |p: &[(&str, &str)]| q(p).unwrap().matches(&ev);
        assert!(yes(&[("EQ_bizStep", "sensor_reporting")]));
        assert!(yes(&[(
            "EQ_bizStep",
            "https://ref.gs1.org/cbv/BizStep-sensor_reporting"
        )]));
        assert!(!yes(&[("EQ_bizStep", "packing")]));
        assert!(yes(&[("GE_value_CEL", "8")]));
        assert!(!yes(&[("GE_value_CEL", "10")]));
        assert!(!yes(&[("GE_value_KGM", "1")]));
        assert!(yes(&[("GE_eventTime", "2026-11-24T08:00:00Z")]));
        assert!(!yes(&[("LT_eventTime", "2026-11-24T08:00:00.000Z")]));
        assert!(yes(&[(
            "MATCH_epc",
            "https://brand.example/01/09506000134352/10/L1/21/ABC123?17=271231"
        )]));
        assert!(yes(&[("EQ_deviceID", "line9-x|line1-coldroom")]));
        assert!(!yes(&[("EQ_deviceID", "line9-x")]));
        assert!(yes(&[(
            "EQ_readPoint",
            "https://id.gs1.org/414/9506000134376"
        )]));
    }

    #[test]
    fn percent_decoding() {
        let p =
            params_from_query_string("MATCH_epc=https%3A%2F%2Fid.gs1.org%2F00%2F1&a=b+c").unwrap();
        assert_eq!(p[0].1, "https://id.gs1.org/00/1");
        assert_eq!(p[1].1, "b c");
        assert!(params_from_query_string("a=%zz").is_err());
    }
}
