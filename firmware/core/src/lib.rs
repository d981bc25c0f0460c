//! The device core: what runs on the packaging-line boards, and unchanged in the host simulator.
//!
//! Pure logic over traits: sensors and scanners through embedded-hal / embedded-io, persistence
//! through embedded-storage's `NorFlash`, signing through [`signer::Signer`]. No I/O of its own,
//! so every path (power cuts at any flash write, broker outages, full queues) is tested on the
//! host, and the ESP32-C3 board crate stays thin.
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub mod device;
pub mod drivers;
pub mod roles;
pub mod scanner;
pub mod signer;
pub mod storage;
