//! I2C0 shared between the SHT4x (cold chain) and the ATECC608 (secure element signer): one
//! blocking driver in a `RefCell`, one embedded-hal device handle per chip.
//!
//! Every user runs on the one embassy executor (thread mode), and a transfer never awaits, so a
//! `RefCell` is enough; a critical-section mutex would mask interrupts (the radio's) for each
//! whole transfer, which at 100 kHz is milliseconds.

use core::cell::RefCell;

use embedded_hal_bus::i2c::RefCellDevice;
use esp_hal::Blocking;
use esp_hal::i2c::master::I2c;
use static_cell::StaticCell;

/// The bus driver.
pub type Bus = I2c<'static, Blocking>;

/// A handle on the shared bus (implements `embedded_hal::i2c::I2c`).
pub type SharedI2c = RefCellDevice<'static, Bus>;

static BUS: StaticCell<RefCell<Bus>> = StaticCell::new();

/// Makes `bus` shareable; call once.
pub fn share(bus: Bus) -> &'static RefCell<Bus> {
    BUS.init(RefCell::new(bus))
}

/// A new handle on the shared bus.
pub fn device(bus: &'static RefCell<Bus>) -> SharedI2c {
    RefCellDevice::new(bus)
}
