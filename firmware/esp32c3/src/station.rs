//! The configured role, fed from the board's three inputs: scans (UART1), the trigger button
//! (GPIO) and periodic SHT4x readings. Every decision about events is the core's
//! (`prov_firmware::roles`); this only routes inputs to the role and collects its drafts.
//!
//! | role | scan | trigger |
//! |---|---|---|
//! | commissioning | item → ObjectEvent ADD | – |
//! | packing | case SSCC opens a case, item → AggregationEvent | case sealed (closes the case) |
//! | palletizing | pallet SSCC, then cases | pallet wrapped → AggregationEvent |
//! | shipping | unit → ObjectEvent OBSERVE + TransactionEvent (`SHIP_ORDER`) | – |
//! | coldchain | unit in / out of the room | – (readings every `COLDCHAIN_PERIOD_S`) |
//! | transformation | input lot (`TRANSFORM_INPUT_QTY`) | the next lot scanned is the output |

use alloc::vec;
use alloc::vec::Vec;

use log::info;
use prov_firmware::drivers::sht4x::Measurement;
use prov_firmware::roles::{
    ColdChain, Commissioning, Draft, Packing, Palletizing, Presence, RoleError, Shipping,
    Station as Place, Transformation,
};
use prov_schemas::digital_link::DigitalLink;

use crate::config::{Config, Role};

/// The role and what the board adds to it.
#[derive(Debug)]
pub enum Station {
    /// See the module table.
    Commissioning(Commissioning),
    /// See the module table.
    Packing(Packing),
    /// See the module table.
    Palletizing(Palletizing),
    /// See the module table.
    Shipping(Shipping),
    /// See the module table.
    ColdChain(ColdChain),
    /// See the module table; `output_next` is armed by the trigger.
    Transformation {
        /// The core role.
        role: Transformation,
        /// The next lot scanned is the output.
        output_next: bool,
        /// Quantities and unit from the configuration.
        config: TransformConfig,
    },
}

/// Transformation quantities (`TRANSFORM_*`).
#[derive(Debug, Clone)]
pub struct TransformConfig {
    input_qty: f64,
    output_qty: f64,
    uom: Option<prov_schemas::event::Uom>,
}

impl Station {
    /// The station of `config.role`.
    pub fn new(config: &Config) -> Station {
        let place = Place::new(config.read_point, config.tz);
        match config.role {
            Role::Commissioning => Station::Commissioning(Commissioning::new(place)),
            Role::Packing => Station::Packing(Packing::new(place, config.case_capacity)),
            Role::Palletizing => {
                Station::Palletizing(Palletizing::new(place, config.pallet_capacity))
            }
            Role::Shipping => {
                // After shipping the units are on the road: no bizLocation.
                let place = Place {
                    biz_location: None,
                    ..place
                };
                let mut role = Shipping::new(place, Vec::new(), Vec::new());
                if let Some(order) = config.ship_order.clone() {
                    role.set_order(order);
                }
                Station::Shipping(role)
            }
            Role::ColdChain => Station::ColdChain(ColdChain::new(place, config.coldchain.clone())),
            Role::Transformation => Station::Transformation {
                role: Transformation::new(place),
                output_next: false,
                config: TransformConfig {
                    input_qty: config.transform_input_qty,
                    output_qty: config.transform_output_qty,
                    uom: config.transform_uom,
                },
            },
        }
    }

    /// A scan: the drafts it calls for (possibly none).
    pub fn on_scan(&mut self, id: DigitalLink) -> Result<Vec<Draft>, RoleError> {
        Ok(match self {
            Station::Commissioning(role) => vec![role.on_scan(id)?],
            Station::Packing(role) => role.on_scan(id)?.into_iter().collect(),
            Station::Palletizing(role) => role.on_scan(id)?.into_iter().collect(),
            Station::Shipping(role) => role.on_scan(id)?.into(),
            Station::ColdChain(role) => {
                let presence = role.on_scan(id)?;
                let what = match presence {
                    Presence::Entered => "entered",
                    Presence::Left => "left",
                };
                info!(
                    "cold chain: unit {what} the room ({} inside)",
                    role.units().len()
                );
                Vec::new()
            }
            Station::Transformation {
                role,
                output_next,
                config,
            } => {
                if *output_next {
                    let draft = role.finish(id, config.output_qty, config.uom, None)?;
                    *output_next = false;
                    vec![draft]
                } else {
                    role.add_input(id, config.input_qty, config.uom)?;
                    info!("transformation: {} input lot(s)", role.inputs().len());
                    Vec::new()
                }
            }
        })
    }

    /// The trigger input.
    pub fn on_trigger(&mut self) -> Vec<Draft> {
        match self {
            Station::Packing(role) => {
                if let Some(case) = role.close_case() {
                    info!("packing: case {} closed", case.canonical());
                }
                Vec::new()
            }
            Station::Palletizing(role) => role.on_trigger().into_iter().collect(),
            Station::Transformation { output_next, .. } => {
                *output_next = true;
                info!("transformation: scan the output lot");
                Vec::new()
            }
            Station::Commissioning(_) | Station::Shipping(_) | Station::ColdChain(_) => Vec::new(),
        }
    }

    /// A sensor reading (`Err` when the SHT4x could not be read).
    pub fn on_reading<E>(&mut self, reading: Result<Measurement, E>) -> Vec<Draft> {
        match self {
            Station::ColdChain(role) => match reading {
                Ok(m) => role.on_reading(&m),
                Err(_) => role.on_fault(),
            }
            .into_iter()
            .collect(),
            _ => Vec::new(),
        }
    }

    /// Whether this station reads the SHT4x.
    pub fn uses_sensor(&self) -> bool {
        matches!(self, Station::ColdChain(_))
    }
}
