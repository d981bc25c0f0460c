//! The host simulator of a packaging line, and device provisioning.
//!
//! Virtual devices run the **same** firmware core as the ESP32-C3 boards
//! (`prov_firmware::device::Device`, its roles, scanner reader and SHT4x driver) against
//! simulated peripherals ([`peripherals`]) and a simulated NOR flash ([`flash`], optionally
//! file-backed), so what the simulator publishes is what a line of boards would publish, down to
//! the bytes: seq and hash chains, the flash queue, `prov:clockSynced`, receipts and rejects.
//!
//! - [`mod@line`]: what to simulate ([`line::LineConfig`]) and the boards of a line;
//! - [`plan`]: the script of a realistic line (dryer, commissioning, packing, palletizing, cold
//!   room with occasional excursions, dock), deterministic for a seed;
//! - [`mqtt::run_line`]: publish to a broker (QoS 1, persistent sessions, last will, receipts
//!   free the queue, reconnect and re-drain);
//! - [`presign::presign`]: the same stream written to a file, for benchmarks;
//! - [`provision`]: device key files and operator-signed registration records (SPEC §4);
//! - `testkit` (feature `testkit`): a throwaway Mosquitto for tests.
//!
//! The binary `prov-sim` wraps these as subcommands `run`, `presign`, `provision`, `keygen` and
//! `register`.

pub mod board;
pub mod flash;
pub mod keys;
pub mod line;
pub mod mqtt;
pub mod peripherals;
pub mod plan;
pub mod presign;
pub mod provision;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use board::{Observation, Recorded, RoleKind};
pub use line::{Drain, LineConfig, LineReport, Stop};
pub use mqtt::run_line;
