//! One virtual board: the firmware's [`Device`] with its role, its scanner reader on a
//! simulated serial line and (in the cold room) the SHT4x driver on a simulated I2C bus.
//!
//! A board takes [`Observation`]s (bytes on the scanner line, the trigger, a sensor reading, an
//! order…), runs them through the same firmware code a real board runs (scanner line reader,
//! role state machine, SHT4x driver, device core) and records the resulting events. Errors a
//! board would meet in the field (a misread barcode, a scan the role refuses, a full queue) are
//! counted and logged, never fatal: a packaging line does not stop because one label was bad.

use std::path::Path;

use anyhow::{Context as _, Result};
use prov_firmware::device::{Device, DeviceError, Topics};
use prov_firmware::drivers::sht4x::{Precision, Sht4x};
use prov_firmware::roles::{
    ColdChain, ColdChainConfig, Commissioning, Draft, Packing, Palletizing, Shipping, Station,
    Transformation,
};
use prov_firmware::scanner::Scanner;
use prov_firmware::signer::FlashKeySigner;
use prov_firmware::storage::{ChainPoint, EventStore, StorageError};
use prov_schemas::digital_link::DigitalLink;
use prov_schemas::event::{BizStep, BizTransaction, Destination, EventType, Ilmd, Source, Uom};
use prov_schemas::keys::{DeviceId, SecretKey};

use crate::flash::SimFlash;
use crate::peripherals::{NoDelay, SimClock, SimSht4x, SimUart};

/// The device core as the simulator instantiates it.
pub type SimDevice = Device<FlashKeySigner, SimFlash, SimClock>;

/// The six stations of a line, in the order their boards are numbered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RoleKind {
    /// The spray dryer: milk lots in, a powder lot out.
    Transformation,
    /// Labels printed and applied: items come into existence.
    Commissioning,
    /// Items into cases.
    Packing,
    /// Cases onto pallets.
    Palletizing,
    /// The cold room's temperature / humidity sensor.
    ColdChain,
    /// The dock.
    Shipping,
}

impl RoleKind {
    /// Every role, in board order.
    pub const ALL: [RoleKind; 6] = [
        RoleKind::Transformation,
        RoleKind::Commissioning,
        RoleKind::Packing,
        RoleKind::Palletizing,
        RoleKind::ColdChain,
        RoleKind::Shipping,
    ];

    /// The station's short name, used in device ids.
    pub fn name(self) -> &'static str {
        match self {
            RoleKind::Transformation => "dryer",
            RoleKind::Commissioning => "commission",
            RoleKind::Packing => "packer",
            RoleKind::Palletizing => "palletizer",
            RoleKind::ColdChain => "coldroom",
            RoleKind::Shipping => "shipper",
        }
    }

    /// Position in [`RoleKind::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Something a board's peripherals observe.
#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    /// Bytes on the scanner's serial line (scans with their terminators).
    Serial(Vec<u8>),
    /// The trigger input (palletizer: pallet wrapped; packer: case sealed).
    Trigger,
    /// Cold room: the sensor now reads this (°C, %RH); the board measures.
    Measure {
        /// Temperature in °C.
        celsius: f64,
        /// Relative humidity in %.
        rh: f64,
    },
    /// Cold room: the next measurement comes back corrupted (CRC error on the bus).
    MeasureFault,
    /// Dock: the order the next units ship against.
    Order(BizTransaction),
    /// Commissioning: master data for the items from now on (the production lot).
    Ilmd(Option<Ilmd>),
    /// Transformation: an input lot consumed.
    Input {
        /// The lot.
        lot: DigitalLink,
        /// How much.
        quantity: f64,
        /// Unit (none for a count).
        uom: Option<Uom>,
    },
    /// Transformation: the output lot is complete.
    Output {
        /// The lot.
        lot: DigitalLink,
        /// How much.
        quantity: f64,
        /// Unit (none for a count).
        uom: Option<Uom>,
        /// The lot's master data.
        ilmd: Option<Ilmd>,
    },
}

/// An event a board recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// The device.
    pub device: DeviceId,
    /// Its `prov:seq`.
    pub seq: u64,
    /// The event type.
    pub event_type: EventType,
    /// Its business step.
    pub biz_step: Option<BizStep>,
    /// What it is about: the EPC list, or the parent, or the output lots.
    pub ids: Vec<DigitalLink>,
    /// Whether a sensor report carries an exception (excursion or fault).
    pub exception: bool,
}

impl Recorded {
    /// The item a commissioning event brought into existence.
    pub fn commissioned_item(&self) -> Option<&DigitalLink> {
        (self.biz_step == Some(BizStep::Commissioning) && self.event_type == EventType::Object)
            .then(|| self.ids.first())
            .flatten()
    }
}

/// Counters of what went wrong on a board (none of it stops the board).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BoardStats {
    /// Scanner lines that were not identifiers (misreads, noise).
    pub scan_errors: u64,
    /// Scans or inputs the role refused.
    pub role_errors: u64,
    /// Drafts the device could not record (queue full counts here and in `dropped`).
    pub record_errors: u64,
    /// Sensor readings that failed (CRC).
    pub sensor_errors: u64,
}

enum RoleState {
    Transformation(Transformation),
    Commissioning(Commissioning),
    Packing(Packing),
    Palletizing(Palletizing),
    ColdChain(ColdChain, SimSht4x),
    Shipping(Shipping),
}

/// How to build a board's role.
#[derive(Debug, Clone)]
pub struct RoleSetup {
    /// Which role.
    pub kind: RoleKind,
    /// Where it is.
    pub station: Station,
    /// Packing: items per case.
    pub items_per_case: u32,
    /// Palletizing: cases per pallet (the trigger closes pallets earlier).
    pub cases_per_pallet: u32,
    /// Cold chain: limits.
    pub cold_chain: ColdChainConfig,
    /// Shipping: `sourceList`.
    pub sources: Vec<Source>,
    /// Shipping: `destinationList`.
    pub destinations: Vec<Destination>,
}

/// One virtual board (see the module docs).
pub struct Board {
    kind: RoleKind,
    device: SimDevice,
    topics: Topics,
    scanner: Scanner<SimUart>,
    role: RoleState,
    stats: BoardStats,
}

impl std::fmt::Debug for Board {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Board")
            .field("kind", &self.kind)
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

/// Opens a device's store on `flash` (resuming its chain if the flash holds one), or formats a
/// new one.
pub fn open_device(
    id: DeviceId,
    key: SecretKey,
    flash: SimFlash,
    resume: bool,
    clock: SimClock,
) -> Result<SimDevice> {
    let layout = flash.layout();
    let store = if resume {
        EventStore::open(flash, layout)
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("reopening the flash of {id}"))?
    } else {
        EventStore::format(flash, layout, ChainPoint::GENESIS)
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("formatting the flash of {id}"))?
    };
    Ok(Device::new(id, FlashKeySigner::new(key), store, clock))
}

/// The flash of a device: in RAM, or in `{dir}/{id}.flash` when `state_dir` is given. Returns
/// whether it holds an earlier run's state.
pub fn device_flash(
    state_dir: Option<&Path>,
    id: &DeviceId,
    sectors: u32,
) -> Result<(SimFlash, bool)> {
    match state_dir {
        None => Ok((SimFlash::in_memory(sectors), false)),
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            let path = dir.join(format!("{id}.flash"));
            SimFlash::file_backed(&path, sectors)
                .with_context(|| format!("flash file {}", path.display()))
        }
    }
}

impl Board {
    /// A board running `setup` on `device`, publishing under `site`.
    pub fn new(setup: &RoleSetup, device: SimDevice, site: &str) -> Result<Board> {
        let topics = Topics::new(site, device.id()).map_err(|e| anyhow::anyhow!("{e}"))?;
        let role = match setup.kind {
            RoleKind::Transformation => {
                RoleState::Transformation(Transformation::new(setup.station))
            }
            RoleKind::Commissioning => RoleState::Commissioning(Commissioning::new(setup.station)),
            RoleKind::Packing => {
                RoleState::Packing(Packing::new(setup.station, Some(setup.items_per_case)))
            }
            RoleKind::Palletizing => RoleState::Palletizing(Palletizing::new(
                setup.station,
                setup.cases_per_pallet as usize,
            )),
            RoleKind::ColdChain => RoleState::ColdChain(
                ColdChain::new(setup.station, setup.cold_chain.clone()),
                SimSht4x::default(),
            ),
            RoleKind::Shipping => RoleState::Shipping(Shipping::new(
                setup.station,
                setup.sources.clone(),
                setup.destinations.clone(),
            )),
        };
        Ok(Board {
            kind: setup.kind,
            device,
            topics,
            scanner: Scanner::new(SimUart::default()),
            role,
            stats: BoardStats::default(),
        })
    }

    /// The role.
    pub fn kind(&self) -> RoleKind {
        self.kind
    }

    /// The device core.
    pub fn device(&self) -> &SimDevice {
        &self.device
    }

    /// The device core, mutable (publishing, receipts).
    pub fn device_mut(&mut self) -> &mut SimDevice {
        &mut self.device
    }

    /// The device's topics.
    pub fn topics(&self) -> &Topics {
        &self.topics
    }

    /// What went wrong so far.
    pub fn stats(&self) -> BoardStats {
        self.stats
    }

    /// Runs one observation through the firmware; returns the events recorded.
    pub fn observe(&mut self, observation: Observation) -> Vec<Recorded> {
        let drafts = self.drafts(observation);
        let mut out = Vec::with_capacity(drafts.len());
        for draft in drafts {
            let summary = summarize(&draft);
            match self.device.record(draft) {
                Ok(seq) => out.push(Recorded {
                    device: *self.device.id(),
                    seq,
                    event_type: summary.0,
                    biz_step: summary.1,
                    ids: summary.2,
                    exception: summary.3,
                }),
                Err(e) => {
                    self.stats.record_errors += 1;
                    match e {
                        DeviceError::Storage(StorageError::QueueFull { .. }) => tracing::debug!(
                            device = %self.device.id(),
                            "queue full, event dropped ({} so far)",
                            self.device.dropped()
                        ),
                        e => tracing::warn!(device = %self.device.id(), "event not recorded: {e}"),
                    }
                }
            }
        }
        out
    }

    fn drafts(&mut self, observation: Observation) -> Vec<Draft> {
        let id = *self.device.id();
        let role_error = |stats: &mut BoardStats, e: &dyn std::fmt::Display| {
            stats.role_errors += 1;
            tracing::warn!(device = %id, "refused: {e}");
        };
        let mut out = Vec::new();
        match observation {
            Observation::Serial(bytes) => {
                self.scanner.reader_mut().feed(&bytes);
                loop {
                    let scan = match self.scanner.read_scan() {
                        Ok(Some(scan)) => scan,
                        Ok(None) => break,
                        Err(e) => {
                            self.stats.scan_errors += 1;
                            tracing::debug!(device = %id, "scanner: {e}");
                            continue;
                        }
                    };
                    let result = match &mut self.role {
                        RoleState::Commissioning(r) => r.on_scan(scan).map(|d| vec![d]),
                        RoleState::Packing(r) => r.on_scan(scan).map(|d| d.into_iter().collect()),
                        RoleState::Palletizing(r) => {
                            r.on_scan(scan).map(|d| d.into_iter().collect())
                        }
                        RoleState::Shipping(r) => r.on_scan(scan).map(Vec::from),
                        RoleState::ColdChain(r, _) => r.on_scan(scan).map(|_| Vec::new()),
                        RoleState::Transformation(_) => {
                            role_error(&mut self.stats, &"the dryer has no scanner");
                            Ok(Vec::new())
                        }
                    };
                    match result {
                        Ok(drafts) => out.extend(drafts),
                        Err(e) => role_error(&mut self.stats, &e),
                    }
                }
            }
            Observation::Trigger => match &mut self.role {
                RoleState::Palletizing(r) => out.extend(r.on_trigger()),
                RoleState::Packing(r) => {
                    r.close_case();
                }
                _ => role_error(&mut self.stats, &"no trigger input on this station"),
            },
            Observation::Measure { celsius, rh } => match &mut self.role {
                RoleState::ColdChain(r, bus) => {
                    bus.set(celsius, rh);
                    out.extend(measure(r, bus, &mut self.stats, &id));
                }
                _ => role_error(&mut self.stats, &"no sensor on this station"),
            },
            Observation::MeasureFault => match &mut self.role {
                RoleState::ColdChain(r, bus) => {
                    bus.corrupt_next();
                    out.extend(measure(r, bus, &mut self.stats, &id));
                }
                _ => role_error(&mut self.stats, &"no sensor on this station"),
            },
            Observation::Order(order) => match &mut self.role {
                RoleState::Shipping(r) => r.set_order(order),
                _ => role_error(&mut self.stats, &"orders go to the dock"),
            },
            Observation::Ilmd(ilmd) => match &mut self.role {
                RoleState::Commissioning(r) => r.set_ilmd(ilmd),
                _ => role_error(&mut self.stats, &"master data goes to commissioning"),
            },
            Observation::Input { lot, quantity, uom } => match &mut self.role {
                RoleState::Transformation(r) => {
                    if let Err(e) = r.add_input(lot, quantity, uom) {
                        role_error(&mut self.stats, &e);
                    }
                }
                _ => role_error(&mut self.stats, &"inputs go to the dryer"),
            },
            Observation::Output {
                lot,
                quantity,
                uom,
                ilmd,
            } => match &mut self.role {
                RoleState::Transformation(r) => match r.finish(lot, quantity, uom, ilmd) {
                    Ok(draft) => out.push(draft),
                    Err(e) => role_error(&mut self.stats, &e),
                },
                _ => role_error(&mut self.stats, &"outputs come from the dryer"),
            },
        }
        out
    }
}

/// One measurement through the SHT4x driver: a reading, or (CRC error) a fault report.
fn measure(
    role: &ColdChain,
    bus: &mut SimSht4x,
    stats: &mut BoardStats,
    id: &DeviceId,
) -> Option<Draft> {
    match Sht4x::new(bus, NoDelay).measure(Precision::High) {
        Ok(m) => role.on_reading(&m),
        Err(e) => {
            stats.sensor_errors += 1;
            tracing::info!(device = %id, "SHT4x: {e}");
            role.on_fault()
        }
    }
}

/// Type, step, the identifiers an event is about, and whether it carries a sensor exception.
fn summarize(draft: &Draft) -> (EventType, Option<BizStep>, Vec<DigitalLink>, bool) {
    let ids = if !draft.epc_list.is_empty() {
        draft.epc_list.clone()
    } else if let Some(parent) = &draft.parent_id {
        vec![parent.clone()]
    } else {
        draft
            .output_quantity_list
            .iter()
            .map(|q| q.epc_class.clone())
            .chain(draft.output_epc_list.iter().cloned())
            .collect()
    };
    let exception = draft
        .sensor_element_list
        .iter()
        .flat_map(|e| &e.sensor_report)
        .any(|r| r.exception.is_some());
    (draft.event_type, draft.biz_step, ids, exception)
}
