//! The line roles: what each station on a packaging line makes of its observations (scans,
//! sensor readings, the trigger input), as EPCIS event [`Draft`]s.
//!
//! Each role is a small state machine with no I/O and no clock: it takes an observation and
//! returns the drafts it calls for (or a [`RoleError`] saying why the observation makes no
//! sense at this station). The device core ([`crate::device::Device::record`]) adds what only
//! it knows: `eventTime` from its clock, `prov:device`, `prov:seq`, `prov:prev` and
//! `prov:clockSynced`, then validates, signs and queues. Keeping the two apart lets the roles be
//! tested exhaustively as pure functions and lets any board run any role.
//!
//! | role | observation | event |
//! |---|---|---|
//! | [`Commissioning`] | item scanned | ObjectEvent ADD, `commissioning`, `active`, one item |
//! | [`Packing`] | case SSCC, then items | AggregationEvent ADD, parent = case, exactly one child |
//! | [`Palletizing`] | pallet SSCC, cases, trigger | AggregationEvent ADD, parent = pallet, the cases |
//! | [`Shipping`] | pallet (or case) scanned | ObjectEvent OBSERVE `shipping` `in_transit` + TransactionEvent ADD |
//! | [`ColdChain`] | SHT4x reading | ObjectEvent OBSERVE `sensor_reporting` with a sensorElementList |
//! | [`Transformation`] | input lots + quantities, output lot | TransformationEvent |
//!
//! **Disclosure rule (SPEC §2).** A product's provenance bundle contains every event naming it,
//! so an event that names two serialized items would reveal one item's serial to whoever scans
//! the other. Commissioning therefore names one item per event and packing adds one item per
//! AggregationEvent; only logistic units (SSCCs) are grouped, when cases go onto a pallet.
//!
//! Memory is bounded: the roles keep at most the current container and, where they must list
//! them, a bounded number of SSCCs ([`MAX_CASES_PER_PALLET`], [`MAX_UNITS_IN_ROOM`],
//! [`MAX_INPUTS`]), so an event never approaches the 16 KiB message limit.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use prov_schemas::Hash32;
use prov_schemas::digital_link::{DigitalLink, Gln, IdKind};
use prov_schemas::event::{
    Action, BizStep, BizTransaction, Destination, Disposition, Event, EventTime, EventType, Ilmd,
    LocationRef, MeasurementType, QuantityElement, SensorAlert, SensorElement, SensorMetadata,
    SensorReport, Source, TzOffset, Uom, Uri,
};
use prov_schemas::keys::DeviceId;

use crate::drivers::sht4x::Measurement;

/// Most cases one palletizing event lists (about 4.5 KB of payload).
pub const MAX_CASES_PER_PALLET: usize = 100;
/// Most logistic units a cold-chain sensor reports on at once.
pub const MAX_UNITS_IN_ROOM: usize = 100;
/// Most input lots of one transformation.
pub const MAX_INPUTS: usize = 32;

/// The UN/CEFACT code for degrees Celsius.
pub const UOM_CELSIUS: &str = "CEL";
/// The UN/CEFACT code for percent (relative humidity).
pub const UOM_PERCENT: &str = "A93";

/// Where a station is and which time zone its site keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Station {
    /// `readPoint`: where the station observes.
    pub read_point: Gln,
    /// `bizLocation`: where the objects are afterwards (omitted when `None`, e.g. for shipping,
    /// after which they are on the road).
    pub biz_location: Option<Gln>,
    /// `eventTimeZoneOffset` of every event.
    pub tz: TzOffset,
}

impl Station {
    /// A station at `read_point`, with the same location as `bizLocation`.
    pub fn new(read_point: Gln, tz: TzOffset) -> Station {
        Station {
            read_point,
            biz_location: Some(read_point),
            tz,
        }
    }

    /// A draft of `event_type` with this station's offset, readPoint and bizLocation.
    fn draft(&self, event_type: EventType) -> Draft {
        let mut draft = Draft::new(event_type, self.tz);
        draft.read_point = Some(location(self.read_point));
        draft.biz_location = self.biz_location.map(location);
        draft
    }
}

fn location(gln: Gln) -> LocationRef {
    LocationRef {
        id: DigitalLink::Location(gln),
    }
}

/// An event before the device signs it: every field of [`Event`] except `eventTime` and the
/// `prov:` fields, which [`crate::device::Device::record`] fills in. Lists are empty and options
/// `None` when the field is absent.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)] // Each field is the `Event` field of the same name.
pub struct Draft {
    pub event_type: EventType,
    pub event_time_zone_offset: TzOffset,
    pub action: Option<Action>,
    pub epc_list: Vec<DigitalLink>,
    pub parent_id: Option<DigitalLink>,
    pub child_epcs: Vec<DigitalLink>,
    pub input_epc_list: Vec<DigitalLink>,
    pub output_epc_list: Vec<DigitalLink>,
    pub quantity_list: Vec<QuantityElement>,
    pub child_quantity_list: Vec<QuantityElement>,
    pub input_quantity_list: Vec<QuantityElement>,
    pub output_quantity_list: Vec<QuantityElement>,
    pub biz_step: Option<BizStep>,
    pub disposition: Option<Disposition>,
    pub read_point: Option<LocationRef>,
    pub biz_location: Option<LocationRef>,
    pub biz_transaction_list: Vec<BizTransaction>,
    pub source_list: Vec<Source>,
    pub destination_list: Vec<Destination>,
    pub sensor_element_list: Vec<SensorElement>,
    pub ilmd: Option<Ilmd>,
}

impl Draft {
    /// A draft with only its type and time zone offset.
    pub fn new(event_type: EventType, event_time_zone_offset: TzOffset) -> Draft {
        Draft {
            event_type,
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
        }
    }

    /// The full event. Not validated: [`Event::validate`] it (the device does) before signing.
    pub fn into_event(
        self,
        event_time: EventTime,
        device: DeviceId,
        seq: u64,
        prev: Hash32,
        clock_synced: bool,
    ) -> Event {
        let mut event = Event::new(
            self.event_type,
            event_time,
            self.event_time_zone_offset,
            device,
            seq,
            prev,
        );
        event.action = self.action;
        event.epc_list = self.epc_list;
        event.parent_id = self.parent_id;
        event.child_epcs = self.child_epcs;
        event.input_epc_list = self.input_epc_list;
        event.output_epc_list = self.output_epc_list;
        event.quantity_list = self.quantity_list;
        event.child_quantity_list = self.child_quantity_list;
        event.input_quantity_list = self.input_quantity_list;
        event.output_quantity_list = self.output_quantity_list;
        event.biz_step = self.biz_step;
        event.disposition = self.disposition;
        event.read_point = self.read_point;
        event.biz_location = self.biz_location;
        event.biz_transaction_list = self.biz_transaction_list;
        event.source_list = self.source_list;
        event.destination_list = self.destination_list;
        event.sensor_element_list = self.sensor_element_list;
        event.ilmd = self.ilmd;
        event.clock_synced = clock_synced;
        event
    }
}

/// An observation that makes no sense at this station. Nothing changes in the role's state.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RoleError {
    /// An identifier of the wrong kind (a lot at the commissioning station, an item where a
    /// case label is expected…).
    #[error("{role}: scanned {id} is a {got} identifier, want {want}")]
    WrongKind {
        /// The role.
        role: &'static str,
        /// The identifier (canonical URI).
        id: String,
        /// Its kind.
        got: IdKind,
        /// What the role takes here.
        want: &'static str,
    },
    /// An item or case scanned before its container was.
    #[error("{role}: scan {want} first")]
    NoContainer {
        /// The role.
        role: &'static str,
        /// What must be scanned first.
        want: &'static str,
    },
    /// The same identifier scanned again (a double read, or an item already handled here).
    #[error("{role}: {id} was already scanned")]
    Repeated {
        /// The role.
        role: &'static str,
        /// The identifier (canonical URI).
        id: String,
    },
    /// A bounded list is full.
    #[error("{role}: {what} is full ({max})")]
    Full {
        /// The role.
        role: &'static str,
        /// Which list.
        what: &'static str,
        /// Its capacity.
        max: usize,
    },
    /// A quantity that is not positive and finite (or a count that is not whole).
    #[error("{role}: quantity {quantity} is not {want}")]
    Quantity {
        /// The role.
        role: &'static str,
        /// The quantity given.
        quantity: f64,
        /// What it must be.
        want: &'static str,
    },
    /// Shipping without a business transaction to ship against.
    #[error("shipping: no order set (call set_order first)")]
    NoOrder,
    /// A transformation finished without inputs.
    #[error("transformation: no inputs")]
    NoInputs,
}

fn wrong_kind(role: &'static str, id: &DigitalLink, want: &'static str) -> RoleError {
    RoleError::WrongKind {
        role,
        id: id.canonical(),
        got: id.kind(),
        want,
    }
}

fn repeated(role: &'static str, id: &DigitalLink) -> RoleError {
    RoleError::Repeated {
        role,
        id: id.canonical(),
    }
}

// ---------------------------------------------------------------------------------------------
// Commissioning
// ---------------------------------------------------------------------------------------------

/// The commissioning station: each serialized item scanned (its label just printed) comes into
/// existence: ObjectEvent ADD, `commissioning`, `active`, one item per event.
#[derive(Debug, Clone)]
pub struct Commissioning {
    station: Station,
    ilmd: Option<Ilmd>,
    last: Option<DigitalLink>,
}

impl Commissioning {
    const ROLE: &'static str = "commissioning";

    /// A commissioning station.
    pub fn new(station: Station) -> Commissioning {
        Commissioning {
            station,
            ilmd: None,
            last: None,
        }
    }

    /// Master data every item commissioned from now on carries in `ilmd` (e.g.
    /// `cbvmda:lotNumber` of the production run, `cbvmda:bestBeforeDate`); `None` for none.
    pub fn set_ilmd(&mut self, ilmd: Option<Ilmd>) {
        self.ilmd = ilmd.filter(|i| !i.0.is_empty());
    }

    /// An item was scanned. The same item twice in a row is a double read and refused.
    pub fn on_scan(&mut self, id: DigitalLink) -> Result<Draft, RoleError> {
        if id.kind() != IdKind::Item {
            return Err(wrong_kind(Self::ROLE, &id, "a serialized item"));
        }
        if self.last.as_ref() == Some(&id) {
            return Err(repeated(Self::ROLE, &id));
        }
        let mut draft = self.station.draft(EventType::Object);
        draft.action = Some(Action::Add);
        draft.epc_list = vec![id.clone()];
        draft.biz_step = Some(BizStep::Commissioning);
        draft.disposition = Some(Disposition::Active);
        draft.ilmd = self.ilmd.clone();
        self.last = Some(id);
        Ok(draft)
    }
}

// ---------------------------------------------------------------------------------------------
// Packing
// ---------------------------------------------------------------------------------------------

/// The packing station: the case label (SSCC) is scanned to open a case, then each item going
/// in: one AggregationEvent ADD per item, parent = the case, exactly one child (SPEC §2).
///
/// Scanning another SSCC closes the open case and opens the new one; so does reaching the
/// configured capacity (the next item then needs a new case label).
#[derive(Debug, Clone)]
pub struct Packing {
    station: Station,
    capacity: Option<u32>,
    case: Option<DigitalLink>,
    packed: u32,
    last_item: Option<DigitalLink>,
}

impl Packing {
    const ROLE: &'static str = "packing";

    /// A packing station; `capacity` items per case, if fixed.
    pub fn new(station: Station, capacity: Option<u32>) -> Packing {
        Packing {
            station,
            capacity: capacity.filter(|&c| c > 0),
            case: None,
            packed: 0,
            last_item: None,
        }
    }

    /// The open case, if any.
    pub fn open_case(&self) -> Option<&DigitalLink> {
        self.case.as_ref()
    }

    /// Items packed into the open case.
    pub fn packed(&self) -> u32 {
        self.packed
    }

    /// A case label or an item was scanned. A case label yields no event (`Ok(None)`); an item
    /// yields its AggregationEvent.
    pub fn on_scan(&mut self, id: DigitalLink) -> Result<Option<Draft>, RoleError> {
        match id.kind() {
            IdKind::Sscc => {
                if self.case.as_ref() == Some(&id) {
                    return Err(repeated(Self::ROLE, &id));
                }
                self.case = Some(id);
                self.packed = 0;
                self.last_item = None;
                Ok(None)
            }
            IdKind::Item => {
                let Some(case) = self.case.clone() else {
                    return Err(RoleError::NoContainer {
                        role: Self::ROLE,
                        want: "a case label (SSCC)",
                    });
                };
                if self.last_item.as_ref() == Some(&id) {
                    return Err(repeated(Self::ROLE, &id));
                }
                let mut draft = self.station.draft(EventType::Aggregation);
                draft.action = Some(Action::Add);
                draft.parent_id = Some(case);
                draft.child_epcs = vec![id.clone()];
                draft.biz_step = Some(BizStep::Packing);
                draft.disposition = Some(Disposition::InProgress);
                self.packed = self.packed.saturating_add(1);
                self.last_item = Some(id);
                if self.capacity.is_some_and(|c| self.packed >= c) {
                    self.close_case();
                }
                Ok(Some(draft))
            }
            _ => Err(wrong_kind(
                Self::ROLE,
                &id,
                "a case label (SSCC) or an item",
            )),
        }
    }

    /// The trigger (case sealed): closes the open case; returns it.
    pub fn close_case(&mut self) -> Option<DigitalLink> {
        self.packed = 0;
        self.last_item = None;
        self.case.take()
    }
}

// ---------------------------------------------------------------------------------------------
// Palletizing
// ---------------------------------------------------------------------------------------------

/// The palletizing station: the pallet label (SSCC) is scanned first, then each case put on it;
/// the trigger (pallet wrapped) or reaching the capacity emits one AggregationEvent ADD listing
/// every case (SSCCs may be grouped: SPEC §2) and closes the pallet.
#[derive(Debug, Clone)]
pub struct Palletizing {
    station: Station,
    capacity: usize,
    pallet: Option<DigitalLink>,
    cases: Vec<DigitalLink>,
}

impl Palletizing {
    const ROLE: &'static str = "palletizing";

    /// A palletizing station closing each pallet at `capacity` cases (at most
    /// [`MAX_CASES_PER_PALLET`]; 0 means that maximum).
    pub fn new(station: Station, capacity: usize) -> Palletizing {
        let capacity = if capacity == 0 {
            MAX_CASES_PER_PALLET
        } else {
            capacity.min(MAX_CASES_PER_PALLET)
        };
        Palletizing {
            station,
            capacity,
            pallet: None,
            cases: Vec::new(),
        }
    }

    /// The open pallet and the cases on it so far.
    pub fn open_pallet(&self) -> Option<(&DigitalLink, &[DigitalLink])> {
        self.pallet.as_ref().map(|p| (p, self.cases.as_slice()))
    }

    /// An SSCC was scanned: the first opens a pallet, the next ones are cases on it. Returns the
    /// event when the pallet is full.
    pub fn on_scan(&mut self, id: DigitalLink) -> Result<Option<Draft>, RoleError> {
        if id.kind() != IdKind::Sscc {
            return Err(wrong_kind(
                Self::ROLE,
                &id,
                "an SSCC (pallet or case label)",
            ));
        }
        let Some(pallet) = &self.pallet else {
            self.pallet = Some(id);
            return Ok(None);
        };
        if *pallet == id || self.cases.contains(&id) {
            return Err(repeated(Self::ROLE, &id));
        }
        self.cases.push(id);
        if self.cases.len() >= self.capacity {
            return Ok(self.close());
        }
        Ok(None)
    }

    /// The trigger: closes the open pallet, returning its event if any case is on it.
    pub fn on_trigger(&mut self) -> Option<Draft> {
        self.close()
    }

    fn close(&mut self) -> Option<Draft> {
        let pallet = self.pallet.take()?;
        let cases = core::mem::take(&mut self.cases);
        if cases.is_empty() {
            return None;
        }
        let mut draft = self.station.draft(EventType::Aggregation);
        draft.action = Some(Action::Add);
        draft.parent_id = Some(pallet);
        draft.child_epcs = cases;
        draft.biz_step = Some(BizStep::Packing);
        draft.disposition = Some(Disposition::InProgress);
        Some(draft)
    }
}

// ---------------------------------------------------------------------------------------------
// Shipping
// ---------------------------------------------------------------------------------------------

/// The shipping dock: each pallet (or case) scanned on its way onto the truck yields an
/// ObjectEvent OBSERVE `shipping` `in_transit` naming the order, source and destination, and a
/// TransactionEvent ADD tying it to the order.
///
/// The order (`bizTransaction`) comes from outside the scan (a despatch advice, the dock's
/// work list): [`Shipping::set_order`].
#[derive(Debug, Clone)]
pub struct Shipping {
    station: Station,
    order: Option<BizTransaction>,
    sources: Vec<Source>,
    destinations: Vec<Destination>,
    last: Option<DigitalLink>,
}

impl Shipping {
    const ROLE: &'static str = "shipping";

    /// A shipping dock with its `sourceList` and `destinationList` (may be empty).
    pub fn new(station: Station, sources: Vec<Source>, destinations: Vec<Destination>) -> Shipping {
        Shipping {
            station,
            order: None,
            sources,
            destinations,
            last: None,
        }
    }

    /// The business transaction the next units ship against.
    pub fn set_order(&mut self, order: BizTransaction) {
        self.order = Some(order);
    }

    /// Where the next units go (replaces the destination list).
    pub fn set_destinations(&mut self, destinations: Vec<Destination>) {
        self.destinations = destinations;
    }

    /// A pallet or case (or a single item) was scanned on its way out.
    pub fn on_scan(&mut self, id: DigitalLink) -> Result<[Draft; 2], RoleError> {
        if !matches!(id.kind(), IdKind::Sscc | IdKind::Item) {
            return Err(wrong_kind(Self::ROLE, &id, "an SSCC or an item"));
        }
        let order = self.order.clone().ok_or(RoleError::NoOrder)?;
        if self.last.as_ref() == Some(&id) {
            return Err(repeated(Self::ROLE, &id));
        }
        let mut observe = self.station.draft(EventType::Object);
        observe.action = Some(Action::Observe);
        observe.epc_list = vec![id.clone()];
        observe.biz_step = Some(BizStep::Shipping);
        observe.disposition = Some(Disposition::InTransit);
        observe.biz_transaction_list = vec![order.clone()];
        observe.source_list = self.sources.clone();
        observe.destination_list = self.destinations.clone();

        let mut transaction = self.station.draft(EventType::Transaction);
        transaction.action = Some(Action::Add);
        transaction.epc_list = vec![id.clone()];
        transaction.biz_step = Some(BizStep::Shipping);
        transaction.disposition = Some(Disposition::InTransit);
        transaction.biz_transaction_list = vec![order];
        self.last = Some(id);
        Ok([observe, transaction])
    }
}

// ---------------------------------------------------------------------------------------------
// Cold chain
// ---------------------------------------------------------------------------------------------

/// Limits and identity of a cold-chain sensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColdChainConfig {
    /// A temperature above this (milli-°C) is an excursion (`ALARM_CONDITION`).
    pub max_millicelsius: i32,
    /// A temperature below this (milli-°C), if set, is an excursion too (freezing).
    pub min_millicelsius: Option<i32>,
    /// The sensor's own identifier for `sensorMetadata.deviceID`, if it has one.
    pub sensor_id: Option<Uri>,
}

impl ColdChainConfig {
    /// A chilled room: excursion above 8 °C or below 0 °C.
    pub fn chilled() -> ColdChainConfig {
        ColdChainConfig {
            max_millicelsius: 8_000,
            min_millicelsius: Some(0),
            sensor_id: None,
        }
    }
}

/// Whether a scan at the cold room's door put a unit in or took it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// The unit is now in the room.
    Entered,
    /// The unit has left the room.
    Left,
}

/// The cold-chain sensor of a cold room: each periodic SHT4x reading becomes an ObjectEvent
/// OBSERVE `sensor_reporting` naming the units in the room, with a `sensorElementList`
/// (Temperature in `CEL`, RelativeHumidity in `A93`); a temperature outside the limits carries
/// `exception: ALARM_CONDITION`, a failed reading `ERROR_CONDITION`.
///
/// The units in the room are tracked from scans at its door: a unit scanned in, then out. An
/// empty room yields no event (there is nothing whose provenance the reading belongs to).
///
/// Values are rounded to 0.01 (the SHT4x's resolution) in integers, so the signed number is the
/// same on the device and in the simulator and prints short (`4.25`, not `4.2499…`).
#[derive(Debug, Clone)]
pub struct ColdChain {
    station: Station,
    config: ColdChainConfig,
    units: Vec<DigitalLink>,
}

impl ColdChain {
    const ROLE: &'static str = "cold chain";

    /// A cold-chain sensor.
    pub fn new(station: Station, config: ColdChainConfig) -> ColdChain {
        ColdChain {
            station,
            config,
            units: Vec::new(),
        }
    }

    /// The units in the room, in the order they entered.
    pub fn units(&self) -> &[DigitalLink] {
        &self.units
    }

    /// A unit was scanned at the door: in if it was not in the room, out if it was.
    pub fn on_scan(&mut self, id: DigitalLink) -> Result<Presence, RoleError> {
        if !matches!(id.kind(), IdKind::Sscc | IdKind::Item) {
            return Err(wrong_kind(Self::ROLE, &id, "an SSCC or an item"));
        }
        if let Some(at) = self.units.iter().position(|u| *u == id) {
            self.units.remove(at);
            return Ok(Presence::Left);
        }
        if self.units.len() >= MAX_UNITS_IN_ROOM {
            return Err(RoleError::Full {
                role: Self::ROLE,
                what: "the room",
                max: MAX_UNITS_IN_ROOM,
            });
        }
        self.units.push(id);
        Ok(Presence::Entered)
    }

    /// Whether a temperature (milli-°C, already rounded as reported) is an excursion.
    pub fn is_excursion(&self, millicelsius: i32) -> bool {
        millicelsius > self.config.max_millicelsius
            || self
                .config
                .min_millicelsius
                .is_some_and(|min| millicelsius < min)
    }

    /// A reading; `None` when the room is empty.
    pub fn on_reading(&self, reading: &Measurement) -> Option<Draft> {
        let temperature = hundredths(reading.temperature_millicelsius());
        let humidity = hundredths(reading.humidity_millipercent());
        let mut t = SensorReport::new(MeasurementType::Temperature);
        t.value = Some(f64::from(temperature) / 100.0);
        t.uom = uom(UOM_CELSIUS);
        if self.is_excursion(temperature.saturating_mul(10)) {
            t.exception = Some(SensorAlert::AlarmCondition);
        }
        let mut h = SensorReport::new(MeasurementType::RelativeHumidity);
        h.value = Some(f64::from(humidity) / 100.0);
        h.uom = uom(UOM_PERCENT);
        self.report(vec![t, h])
    }

    /// The sensor could not be read (I2C error, CRC mismatch): a report with
    /// `ERROR_CONDITION` and no value, so the gap in the record is itself on record. `None`
    /// when the room is empty.
    pub fn on_fault(&self) -> Option<Draft> {
        let mut t = SensorReport::new(MeasurementType::Temperature);
        t.exception = Some(SensorAlert::ErrorCondition);
        self.report(vec![t])
    }

    fn report(&self, reports: Vec<SensorReport>) -> Option<Draft> {
        if self.units.is_empty() {
            return None;
        }
        let mut draft = self.station.draft(EventType::Object);
        draft.action = Some(Action::Observe);
        draft.epc_list = self.units.clone();
        draft.biz_step = Some(BizStep::SensorReporting);
        let metadata = self.config.sensor_id.clone().map(|id| SensorMetadata {
            device_id: Some(id),
            ..SensorMetadata::default()
        });
        draft.sensor_element_list = vec![SensorElement {
            sensor_metadata: metadata,
            sensor_report: reports,
        }];
        Some(draft)
    }
}

/// Milli-units to hundredths, rounding half up.
fn hundredths(milli: i32) -> i32 {
    milli.saturating_add(5).div_euclid(10)
}

fn uom(code: &str) -> Option<Uom> {
    Uom::parse(code).ok()
}

// ---------------------------------------------------------------------------------------------
// Transformation
// ---------------------------------------------------------------------------------------------

/// A transformation step (e.g. a spray dryer: milk lots in, a powder lot out): inputs are
/// added as they are consumed, then [`Transformation::finish`] names the output lot and emits
/// one TransformationEvent (`commissioning`, `active`: the output lot comes into existence).
#[derive(Debug, Clone)]
pub struct Transformation {
    station: Station,
    inputs: Vec<QuantityElement>,
}

impl Transformation {
    const ROLE: &'static str = "transformation";

    /// A transformation station.
    pub fn new(station: Station) -> Transformation {
        Transformation {
            station,
            inputs: Vec::new(),
        }
    }

    /// The inputs so far.
    pub fn inputs(&self) -> &[QuantityElement] {
        &self.inputs
    }

    /// An input lot consumed: `quantity` in `uom` (or a count without one). The same lot again
    /// (in the same unit) adds to its quantity.
    pub fn add_input(
        &mut self,
        lot: DigitalLink,
        quantity: f64,
        uom: Option<Uom>,
    ) -> Result<(), RoleError> {
        let element = quantity_element(lot, quantity, uom)?;
        if let Some(existing) = self
            .inputs
            .iter_mut()
            .find(|q| q.epc_class == element.epc_class)
        {
            if existing.uom != element.uom {
                return Err(repeated(Self::ROLE, &element.epc_class));
            }
            existing.quantity += element.quantity;
            return Ok(());
        }
        if self.inputs.len() >= MAX_INPUTS {
            return Err(RoleError::Full {
                role: Self::ROLE,
                what: "the input list",
                max: MAX_INPUTS,
            });
        }
        self.inputs.push(element);
        Ok(())
    }

    /// The output lot is complete: the event, and the inputs are cleared for the next batch.
    /// `ilmd` is the output lot's master data (best-before date, origin…).
    pub fn finish(
        &mut self,
        output: DigitalLink,
        quantity: f64,
        uom: Option<Uom>,
        ilmd: Option<Ilmd>,
    ) -> Result<Draft, RoleError> {
        if self.inputs.is_empty() {
            return Err(RoleError::NoInputs);
        }
        let output = quantity_element(output, quantity, uom)?;
        if self.inputs.iter().any(|i| i.epc_class == output.epc_class) {
            return Err(repeated(Self::ROLE, &output.epc_class));
        }
        let mut draft = self.station.draft(EventType::Transformation);
        draft.input_quantity_list = core::mem::take(&mut self.inputs);
        draft.output_quantity_list = vec![output];
        draft.biz_step = Some(BizStep::Commissioning);
        draft.disposition = Some(Disposition::Active);
        draft.ilmd = ilmd.filter(|i| !i.0.is_empty());
        Ok(draft)
    }
}

fn quantity_element(
    lot: DigitalLink,
    quantity: f64,
    uom: Option<Uom>,
) -> Result<QuantityElement, RoleError> {
    if lot.kind() != IdKind::Lot {
        return Err(wrong_kind(Transformation::ROLE, &lot, "a lot"));
    }
    let bad = |want| RoleError::Quantity {
        role: Transformation::ROLE,
        quantity,
        want,
    };
    if !quantity.is_finite() || quantity <= 0.0 {
        return Err(bad("positive and finite"));
    }
    if uom.is_none() && (quantity as u64) as f64 != quantity {
        return Err(bad("a whole number (a count: no unit)"));
    }
    Ok(QuantityElement {
        epc_class: lot,
        quantity,
        uom,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding() {
        assert_eq!(hundredths(4_124), 412);
        assert_eq!(hundredths(4_125), 413);
        assert_eq!(hundredths(-4_005), -400);
        assert_eq!(hundredths(-4_006), -401);
        assert_eq!(hundredths(0), 0);
    }
}
