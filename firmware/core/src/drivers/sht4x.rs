//! Sensirion SHT4x (SHT40 / SHT41 / SHT43 / SHT45) temperature and humidity sensor over I2C.
//!
//! The protocol is one command byte, a wait, then a 6-byte read: two 16-bit big-endian words,
//! each followed by its CRC-8 (polynomial 0x31, init 0xFF, Sensirion's checksum). Every CRC is
//! checked and a mismatch is an error ([`Sht4xError::Crc`]) rather than a reading: a value from
//! a disturbed bus would otherwise end up signed in an EPCIS `sensorReport`.
//!
//! Measurement waits are the datasheet maxima (high / medium / low repeatability 8.3 / 4.5 /
//! 1.6 ms; Sensirion's generated driver `Sensirion/embedded-i2c-sht4x` rounds them up to 10 / 5
//! / 2 ms). After the serial-number and soft-reset commands this driver waits 10 ms, as that
//! driver does. Heater commands are not implemented: a packaging line's sensor has no use for
//! them and they heat the sensor by up to 100 K.
//!
//! Conversions (datasheet §4.6): `T = -45 + 175 * raw / 65535` °C,
//! `RH = -6 + 125 * raw / 65535` %RH, clamped to 0..100 as the datasheet recommends.
//! [`Measurement`] keeps the raw words and converts in integers (milli-units) so that the
//! ESP32-C3, which has no FPU, needs no float code unless asked for it.

use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::I2c;

/// Address of SHT40-AD1B, SHT41-AD1B, SHT45-AD1B (the default parts).
pub const DEFAULT_ADDRESS: u8 = 0x44;
/// Address of the -BD1B variants.
pub const ADDRESS_B: u8 = 0x45;
/// Address of the -CD1B variants.
pub const ADDRESS_C: u8 = 0x46;

/// Command: read the serial number.
pub const CMD_SERIAL_NUMBER: u8 = 0x89;
/// Command: soft reset.
pub const CMD_SOFT_RESET: u8 = 0x94;

const SERIAL_WAIT_US: u32 = 10_000;
const RESET_WAIT_US: u32 = 10_000;

/// Measurement repeatability (precision): higher takes longer and draws more energy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// High repeatability, command 0xFD, max 8.3 ms.
    High,
    /// Medium repeatability, command 0xF6, max 4.5 ms.
    Medium,
    /// Low repeatability, command 0xE0, max 1.6 ms.
    Low,
}

impl Precision {
    /// The command byte.
    pub fn command(self) -> u8 {
        match self {
            Precision::High => 0xfd,
            Precision::Medium => 0xf6,
            Precision::Low => 0xe0,
        }
    }

    /// The maximum measurement duration in microseconds (datasheet).
    pub fn duration_us(self) -> u32 {
        match self {
            Precision::High => 8_300,
            Precision::Medium => 4_500,
            Precision::Low => 1_600,
        }
    }
}

/// The raw words of one measurement, with conversions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measurement {
    /// Raw temperature word.
    pub raw_temperature: u16,
    /// Raw humidity word.
    pub raw_humidity: u16,
}

impl Measurement {
    /// Temperature in milli-degrees Celsius: `-45000 + 175000 * raw / 65535`, rounded down.
    pub fn temperature_millicelsius(&self) -> i32 {
        let scaled = 175_000i64 * i64::from(self.raw_temperature);
        (-45_000 + scaled.div_euclid(65_535)) as i32
    }

    /// Relative humidity in milli-percent: `-6000 + 125000 * raw / 65535`, rounded down and
    /// clamped to `0..=100000`.
    pub fn humidity_millipercent(&self) -> i32 {
        let scaled = 125_000i64 * i64::from(self.raw_humidity);
        (-6_000 + scaled.div_euclid(65_535)).clamp(0, 100_000) as i32
    }

    /// Temperature in degrees Celsius.
    pub fn temperature_celsius(&self) -> f32 {
        -45.0 + 175.0 * f32::from(self.raw_temperature) / 65_535.0
    }

    /// Relative humidity in percent, clamped to 0..=100.
    pub fn humidity_percent(&self) -> f32 {
        (-6.0 + 125.0 * f32::from(self.raw_humidity) / 65_535.0).clamp(0.0, 100.0)
    }
}

/// An SHT4x operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Sht4xError<E: core::fmt::Debug> {
    /// The I2C transfer failed (a NACK usually means no sensor at the address, or a read
    /// before the measurement finished).
    #[error("I2C error: {0:?}")]
    I2c(E),
    /// A word's CRC-8 did not match.
    #[error("CRC mismatch on word {word}: received {got:#04x}, computed {want:#04x}")]
    Crc {
        /// Which word of the response (0 = temperature or serial high, 1 = humidity or serial
        /// low).
        word: u8,
        /// The CRC byte received.
        got: u8,
        /// The CRC computed over the word.
        want: u8,
    },
}

/// Sensirion's CRC-8: polynomial 0x31 (x^8 + x^5 + x^4 + 1), init 0xFF, no reflection, no final
/// XOR. `crc8(&[0xBE, 0xEF]) == 0x92` (datasheet example).
pub fn crc8(data: &[u8]) -> u8 {
    let mut crc = 0xffu8;
    for &byte in data {
        crc ^= byte;
        for _ in 0..8 {
            crc = if crc & 0x80 != 0 {
                (crc << 1) ^ 0x31
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// Checks both CRCs of a 6-byte response and returns the two words.
pub fn parse_response<E: core::fmt::Debug>(buf: &[u8; 6]) -> Result<(u16, u16), Sht4xError<E>> {
    let mut words = [0u16; 2];
    for (index, (chunk, word)) in buf.chunks_exact(3).zip(words.iter_mut()).enumerate() {
        let want = crc8(&chunk[..2]);
        if chunk[2] != want {
            return Err(Sht4xError::Crc {
                word: index as u8,
                got: chunk[2],
                want,
            });
        }
        *word = u16::from_be_bytes([chunk[0], chunk[1]]);
    }
    Ok((words[0], words[1]))
}

/// An SHT4x on an I2C bus.
#[derive(Debug)]
pub struct Sht4x<I2C, D> {
    i2c: I2C,
    delay: D,
    address: u8,
}

impl<I2C: I2c, D: DelayNs> Sht4x<I2C, D> {
    /// A sensor at [`DEFAULT_ADDRESS`].
    pub fn new(i2c: I2C, delay: D) -> Self {
        Self::with_address(i2c, delay, DEFAULT_ADDRESS)
    }

    /// A sensor at `address` (7-bit).
    pub fn with_address(i2c: I2C, delay: D, address: u8) -> Self {
        Sht4x {
            i2c,
            delay,
            address,
        }
    }

    /// Measures temperature and humidity.
    pub fn measure(&mut self, precision: Precision) -> Result<Measurement, Sht4xError<I2C::Error>> {
        let (raw_temperature, raw_humidity) =
            self.command_read(precision.command(), precision.duration_us())?;
        Ok(Measurement {
            raw_temperature,
            raw_humidity,
        })
    }

    /// Reads the 32-bit serial number (unique per sensor; worth putting in `sensorMetadata`).
    pub fn serial_number(&mut self) -> Result<u32, Sht4xError<I2C::Error>> {
        let (high, low) = self.command_read(CMD_SERIAL_NUMBER, SERIAL_WAIT_US)?;
        Ok((u32::from(high) << 16) | u32::from(low))
    }

    /// Soft reset, then waits for the sensor to be ready again.
    pub fn soft_reset(&mut self) -> Result<(), Sht4xError<I2C::Error>> {
        self.i2c
            .write(self.address, &[CMD_SOFT_RESET])
            .map_err(Sht4xError::I2c)?;
        self.delay.delay_us(RESET_WAIT_US);
        Ok(())
    }

    /// Gives the bus and the delay back.
    pub fn release(self) -> (I2C, D) {
        (self.i2c, self.delay)
    }

    fn command_read(
        &mut self,
        command: u8,
        wait_us: u32,
    ) -> Result<(u16, u16), Sht4xError<I2C::Error>> {
        self.i2c
            .write(self.address, &[command])
            .map_err(Sht4xError::I2c)?;
        self.delay.delay_us(wait_us);
        let mut buf = [0u8; 6];
        self.i2c
            .read(self.address, &mut buf)
            .map_err(Sht4xError::I2c)?;
        parse_response(&buf)
    }
}
