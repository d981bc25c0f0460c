//! SHT4x driver against embedded-hal-mock I2C and delay transactions.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use embedded_hal::i2c::{ErrorKind, NoAcknowledgeSource};
use embedded_hal_mock::eh1::delay::{CheckedDelay, NoopDelay, Transaction as D};
use embedded_hal_mock::eh1::i2c::{Mock, Transaction as T};
use proptest::prelude::*;
use prov_firmware::drivers::sht4x::{
    ADDRESS_B, DEFAULT_ADDRESS, Measurement, Precision, Sht4x, Sht4xError, crc8, parse_response,
};

const A: u8 = DEFAULT_ADDRESS;

/// CRC bytes computed independently (Python, poly 0x31, init 0xFF):
/// 0x6666 -> 0x93, 0x8000 -> 0xA2, 0x1234 -> 0x37, 0x5678 -> 0x7D.
const RESPONSE_25C_56RH: [u8; 6] = [0x66, 0x66, 0x93, 0x80, 0x00, 0xa2];

#[test]
fn crc8_datasheet_vector() {
    assert_eq!(crc8(&[0xbe, 0xef]), 0x92);
    assert_eq!(crc8(&[0x00, 0x00]), 0x81);
    assert_eq!(crc8(&[0xff, 0xff]), 0xac);
}

#[test]
fn measure_each_precision_sends_its_command_and_waits() {
    for (precision, command, wait_us) in [
        (Precision::High, 0xfd, 8_300),
        (Precision::Medium, 0xf6, 4_500),
        (Precision::Low, 0xe0, 1_600),
    ] {
        let i2c = Mock::new(&[
            T::write(A, vec![command]),
            T::read(A, RESPONSE_25C_56RH.to_vec()),
        ]);
        let delay = CheckedDelay::new(&[D::delay_us(wait_us)]);
        let mut sensor = Sht4x::new(i2c, delay);
        let m = sensor.measure(precision).unwrap();
        assert_eq!(
            m,
            Measurement {
                raw_temperature: 0x6666,
                raw_humidity: 0x8000
            }
        );
        assert_eq!(m.temperature_millicelsius(), 25_000);
        assert_eq!(m.humidity_millipercent(), 56_500);
        assert!((m.temperature_celsius() - 25.0).abs() < 0.01);
        assert!((m.humidity_percent() - 56.50).abs() < 0.01);
        let (mut i2c, mut delay) = sensor.release();
        i2c.done();
        delay.done();
    }
}

#[test]
fn crc_failure_on_temperature_word_is_an_error() {
    let mut bad = RESPONSE_25C_56RH;
    bad[2] ^= 0x01;
    let i2c = Mock::new(&[T::write(A, vec![0xfd]), T::read(A, bad.to_vec())]);
    let mut sensor = Sht4x::new(i2c, NoopDelay::new());
    assert_eq!(
        sensor.measure(Precision::High),
        Err(Sht4xError::Crc {
            word: 0,
            got: 0x92,
            want: 0x93
        })
    );
    sensor.release().0.done();
}

#[test]
fn crc_failure_on_humidity_word_is_an_error() {
    let mut bad = RESPONSE_25C_56RH;
    bad[4] ^= 0x40; // data bit flipped, CRC byte intact
    let i2c = Mock::new(&[T::write(A, vec![0xe0]), T::read(A, bad.to_vec())]);
    let mut sensor = Sht4x::new(i2c, NoopDelay::new());
    let err = sensor.measure(Precision::Low).unwrap_err();
    assert_eq!(
        err,
        Sht4xError::Crc {
            word: 1,
            got: 0xa2,
            want: crc8(&[0x80, 0x40])
        }
    );
    assert_eq!(
        err.to_string(),
        format!(
            "CRC mismatch on word 1: received 0xa2, computed {:#04x}",
            crc8(&[0x80, 0x40])
        )
    );
    sensor.release().0.done();
}

#[test]
fn nack_is_an_i2c_error() {
    let nack = ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address);
    let i2c = Mock::new(&[T::write(A, vec![0xfd]).with_error(nack)]);
    let mut sensor = Sht4x::new(i2c, NoopDelay::new());
    assert_eq!(sensor.measure(Precision::High), Err(Sht4xError::I2c(nack)));
    sensor.release().0.done();
}

#[test]
fn serial_number_and_soft_reset_at_another_address() {
    let i2c = Mock::new(&[
        T::write(ADDRESS_B, vec![0x89]),
        T::read(ADDRESS_B, vec![0x12, 0x34, 0x37, 0x56, 0x78, 0x7d]),
        T::write(ADDRESS_B, vec![0x94]),
    ]);
    let delay = CheckedDelay::new(&[D::delay_us(10_000), D::delay_us(10_000)]);
    let mut sensor = Sht4x::with_address(i2c, delay, ADDRESS_B);
    assert_eq!(sensor.serial_number().unwrap(), 0x1234_5678);
    sensor.soft_reset().unwrap();
    let (mut i2c, mut delay) = sensor.release();
    i2c.done();
    delay.done();
}

#[test]
fn serial_number_crc_failure() {
    let i2c = Mock::new(&[
        T::write(A, vec![0x89]),
        T::read(A, vec![0x12, 0x34, 0x37, 0x56, 0x78, 0x00]),
    ]);
    let mut sensor = Sht4x::new(i2c, NoopDelay::new());
    assert_eq!(
        sensor.serial_number(),
        Err(Sht4xError::Crc {
            word: 1,
            got: 0x00,
            want: 0x7d
        })
    );
    sensor.release().0.done();
}

#[test]
fn conversion_extremes_and_clamping() {
    let lo = Measurement {
        raw_temperature: 0,
        raw_humidity: 0,
    };
    let hi = Measurement {
        raw_temperature: 0xffff,
        raw_humidity: 0xffff,
    };
    assert_eq!(lo.temperature_millicelsius(), -45_000);
    assert_eq!(hi.temperature_millicelsius(), 130_000);
    // RH formula gives -6 % and 119 %: clamped.
    assert_eq!(lo.humidity_millipercent(), 0);
    assert_eq!(hi.humidity_millipercent(), 100_000);
    assert_eq!(lo.humidity_percent(), 0.0);
    assert_eq!(hi.humidity_percent(), 100.0);
}

proptest! {
    #[test]
    fn any_words_with_their_crcs_parse(t: u16, h: u16) {
        let [t0, t1] = t.to_be_bytes();
        let [h0, h1] = h.to_be_bytes();
        let buf = [t0, t1, crc8(&[t0, t1]), h0, h1, crc8(&[h0, h1])];
        prop_assert_eq!(parse_response::<ErrorKind>(&buf), Ok((t, h)));
    }

    #[test]
    fn any_single_bit_flip_is_caught(t: u16, h: u16, bit in 0usize..48) {
        let [t0, t1] = t.to_be_bytes();
        let [h0, h1] = h.to_be_bytes();
        let mut buf = [t0, t1, crc8(&[t0, t1]), h0, h1, crc8(&[h0, h1])];
        buf[bit / 8] ^= 1 << (bit % 8);
        let is_crc_error = matches!(
            parse_response::<ErrorKind>(&buf),
            Err(Sht4xError::Crc { word, .. }) if usize::from(word) == bit / 24
        );
        prop_assert!(is_crc_error);
    }

    #[test]
    fn integer_and_float_conversions_agree(t: u16, h: u16) {
        let m = Measurement { raw_temperature: t, raw_humidity: h };
        prop_assert!((m.temperature_millicelsius() as f32 / 1000.0 - m.temperature_celsius()).abs() < 0.01);
        prop_assert!((m.humidity_millipercent() as f32 / 1000.0 - m.humidity_percent()).abs() < 0.01);
    }
}
