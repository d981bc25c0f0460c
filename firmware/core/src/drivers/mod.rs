//! Drivers for the parts on the board, written against embedded-hal 1.0 traits only, so they run
//! unchanged on the ESP32-C3 HAL and against `embedded-hal-mock` in the host tests.
//!
//! - [`sht4x`]: Sensirion SHT4x temperature / humidity sensor (CRC-checked readings).
//! - [`atecc608`]: Microchip ATECC608A/B secure element (key generation and ECDSA P-256 inside
//!   the chip), from Microchip's open CryptoAuthLib sources.

pub mod atecc608;
pub mod sht4x;
