//! Simulated peripherals behind the same embedded-hal / embedded-io traits as the board's, so a
//! virtual device runs the firmware's own scanner reader and SHT4x driver:
//!
//! - [`SimUart`]: the scanner's serial line, a byte buffer the line feeds scans into;
//! - [`SimSht4x`]: an SHT4x on I2C answering the measure command with the words (and CRC-8s) of
//!   the temperature and humidity it is set to, or a corrupted CRC to simulate a disturbed bus;
//! - [`NoDelay`]: the driver's waits cost nothing in simulation;
//! - [`SimClock`]: the host's clock, "synchronised" only after a configurable delay from boot,
//!   so the first events of a run carry `prov:clockSynced: false` as on a board whose SNTP has
//!   not answered yet.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::{self, ErrorKind, I2c, Operation};
use prov_firmware::device::Clock;
use prov_firmware::drivers::sht4x::crc8;

/// The scanner's serial line: bytes fed in by the simulation, read by the firmware's scanner.
/// Reading an empty buffer returns 0 bytes (the scanner then waits for more).
#[derive(Debug, Default)]
pub struct SimUart {
    rx: VecDeque<u8>,
}

impl SimUart {
    /// Bytes arrive on the line.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.rx.extend(bytes);
    }
}

impl embedded_io::ErrorType for SimUart {
    type Error = Infallible;
}

impl embedded_io::Read for SimUart {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        let n = buf.len().min(self.rx.len());
        for (slot, byte) in buf.iter_mut().zip(self.rx.drain(..n)) {
            *slot = byte;
        }
        Ok(n)
    }
}

/// An SHT4x on the I2C bus.
#[derive(Debug, Default)]
pub struct SimSht4x {
    raw: (u16, u16),
    pending: Option<u8>,
    corrupt_next: bool,
}

impl SimSht4x {
    /// The sensor will read `celsius` and `rh` percent (inverting the datasheet conversion).
    pub fn set(&mut self, celsius: f64, rh: f64) {
        let t = ((celsius + 45.0) / 175.0 * 65535.0)
            .round()
            .clamp(0.0, 65535.0) as u16;
        let h = ((rh + 6.0) / 125.0 * 65535.0).round().clamp(0.0, 65535.0) as u16;
        self.raw = (t, h);
    }

    /// The next response arrives with a wrong CRC (the driver must refuse it).
    pub fn corrupt_next(&mut self) {
        self.corrupt_next = true;
    }

    fn response(&mut self) -> [u8; 6] {
        let words = match self.pending.take() {
            // Serial number.
            Some(0x89) => (0x0a1b, 0x2c3d),
            _ => self.raw,
        };
        let mut out = [0u8; 6];
        for (chunk, word) in out.chunks_exact_mut(3).zip([words.0, words.1]) {
            let be = word.to_be_bytes();
            chunk[..2].copy_from_slice(&be);
            chunk[2] = crc8(&be);
        }
        if std::mem::take(&mut self.corrupt_next) {
            out[2] ^= 0x5a;
        }
        out
    }
}

impl i2c::ErrorType for SimSht4x {
    type Error = ErrorKind;
}

impl I2c for SimSht4x {
    fn transaction(
        &mut self,
        address: u8,
        operations: &mut [Operation<'_>],
    ) -> Result<(), ErrorKind> {
        if address != prov_firmware::drivers::sht4x::DEFAULT_ADDRESS {
            return Err(ErrorKind::NoAcknowledge(i2c::NoAcknowledgeSource::Address));
        }
        for op in operations {
            match op {
                Operation::Write(bytes) => self.pending = bytes.first().copied(),
                Operation::Read(buf) => {
                    let response = self.response();
                    for (slot, byte) in buf.iter_mut().zip(response) {
                        *slot = byte;
                    }
                }
            }
        }
        Ok(())
    }
}

/// A delay that returns at once.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoDelay;

impl DelayNs for NoDelay {
    fn delay_ns(&mut self, _ns: u32) {}
}

/// The host clock, reported as synchronised only `sntp_after` after boot.
#[derive(Debug, Clone, Copy)]
pub struct SimClock {
    boot: Instant,
    sntp_after: Duration,
}

impl SimClock {
    /// A clock booted now whose SNTP answers after `sntp_after`.
    pub fn new(sntp_after: Duration) -> SimClock {
        SimClock {
            boot: Instant::now(),
            sntp_after,
        }
    }
}

impl Clock for SimClock {
    fn now(&mut self) -> Option<u64> {
        if self.boot.elapsed() < self.sntp_after {
            return None;
        }
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .ok()
            .map(|d| d.as_millis() as u64)
    }

    fn uptime_millis(&mut self) -> u64 {
        self.boot.elapsed().as_millis() as u64
    }
}
