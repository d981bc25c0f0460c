//! ATECC608 driver against embedded-hal-mock transactions shaped like CryptoAuthLib's
//! (`lib/calib/calib_execution.c`, `calib_basic.c`): wake = general-call byte + 4-byte read,
//! command = word address 0x03 + packet, receive = word address 0x00 + count byte + rest,
//! idle = word address 0x02 after every command.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod atecc608_common;

use atecc608_common::*;
use embedded_hal_mock::eh1::delay::{CheckedDelay, NoopDelay, Transaction as D};
use embedded_hal_mock::eh1::i2c::{Mock, Transaction as T};
use prov_firmware::drivers::atecc608::{
    Atecc608, AteccError, DEFAULT_ADDRESS, Status, crc16, execution_time_ms, opcode,
};

#[test]
fn crc16_known_answers() {
    // CryptoAuthLib lib/hal/atca_hal.c, hal_check_wake: the wake response 04 11 33 43.
    assert_eq!(crc16(&[0x04, 0x11]).to_le_bytes(), [0x33, 0x43]);
    // CryptoAuthLib kit protocol, ca_discover: the Info command 07 30 00 00 00 03 5D.
    assert_eq!(
        crc16(&[0x07, 0x30, 0x00, 0x00, 0x00]).to_le_bytes(),
        [0x03, 0x5d]
    );
    // Logic-analyser captures of ATSHA204 traffic (Random command, CheckMac miscompare and
    // execution-error status responses).
    assert_eq!(
        crc16(&[0x07, 0x1b, 0x00, 0x00, 0x00]).to_le_bytes(),
        [0x24, 0xcd]
    );
    assert_eq!(crc16(&[0x04, 0x01]).to_le_bytes(), [0x00, 0xc3]);
    assert_eq!(crc16(&[0x04, 0x0f]).to_le_bytes(), [0x23, 0x42]);
    // The test helper's independent implementation agrees.
    for data in [&[0x04u8, 0x11][..], &[1, 2, 3, 4, 5, 6, 7, 8, 9], &[]] {
        assert_eq!(crc16(data), reference_crc16(data));
    }
}

#[test]
fn wake_checks_the_response() {
    let i2c = Mock::new(&wake());
    let delay = CheckedDelay::new(&[D::delay_us(1_500)]);
    let mut chip = Atecc608::new(i2c, delay);
    chip.wake().unwrap();
    let (mut i2c, mut delay) = chip.release();
    i2c.done();
    delay.done();

    for (reply, want) in [
        ([0x04, 0x07, 0xc4, 0x40], AteccError::SelfTestFailed),
        ([0x04, 0x07, 0x40, 0xc2], AteccError::SelfTestFailed),
        (
            [0xff, 0xff, 0xff, 0xff],
            AteccError::WakeFailed {
                got: [0xff, 0xff, 0xff, 0xff],
            },
        ),
    ] {
        let i2c = Mock::new(&[
            T::write(0x00, vec![0x01]).with_error(NACK),
            T::read(DEFAULT_ADDRESS, reply.to_vec()),
        ]);
        let mut chip = Atecc608::new(i2c, NoopDelay::new());
        assert_eq!(chip.wake(), Err(want));
        chip.release().0.done();
    }
}

#[test]
fn info_revision_full_sequence_and_timing() {
    let i2c = Mock::new(&command(
        opcode::INFO,
        0x00,
        0x0000,
        &[],
        &[0x00, 0x00, 0x60, 0x02],
    ));
    // The exact bytes on the wire, from CryptoAuthLib's kit protocol discovery.
    assert_eq!(
        packet(opcode::INFO, 0x00, 0x0000, &[]),
        vec![0x03, 0x07, 0x30, 0x00, 0x00, 0x00, 0x03, 0x5d]
    );
    assert_eq!(
        response(&[0x00, 0x00, 0x60, 0x02]),
        vec![0x07, 0x00, 0x00, 0x60, 0x02, 0x80, 0x38]
    );
    let delay = CheckedDelay::new(&[
        D::delay_us(1_500),
        D::delay_ms(execution_time_ms(opcode::INFO)),
    ]);
    let mut chip = Atecc608::new(i2c, delay);
    assert_eq!(chip.info_revision().unwrap(), [0x00, 0x00, 0x60, 0x02]);
    let (mut i2c, mut delay) = chip.release();
    i2c.done();
    delay.done();
}

#[test]
fn genkey_public_key() {
    let xy: Vec<u8> = (0..64).collect();
    let i2c = Mock::new(&command(opcode::GENKEY, 0x00, 0x0002, &[], &xy));
    let mut chip = Atecc608::new(i2c, NoopDelay::new());
    assert_eq!(chip.public_key(2).unwrap().to_vec(), xy);
    chip.release().0.done();
}

#[test]
fn random_returns_32_bytes() {
    let rnd = [0xa5u8; 32];
    let i2c = Mock::new(&command(opcode::RANDOM, 0x00, 0x0000, &[], &rnd));
    let mut chip = Atecc608::new(i2c, NoopDelay::new());
    assert_eq!(chip.random().unwrap(), rnd);
    chip.release().0.done();
}

#[test]
fn nonce_and_sign_sequence() {
    let digest = [0x5au8; 32];
    let sig: Vec<u8> = (100..164).collect();
    let i2c = Mock::new(&sign_transactions(0, &digest, &sig));
    let mut chip = Atecc608::new(i2c, NoopDelay::new());
    assert_eq!(chip.sign_digest(0, &digest).unwrap().to_vec(), sig);
    chip.release().0.done();
}

#[test]
fn response_crc_error_is_reported_and_the_chip_idled() {
    let mut tx = wake();
    tx.push(T::write(DEFAULT_ADDRESS, packet(opcode::INFO, 0, 0, &[])));
    let mut bad = response(&[0x00, 0x00, 0x60, 0x02]);
    bad[6] ^= 0xff;
    tx.extend(receive(&bad));
    tx.push(T::write(DEFAULT_ADDRESS, vec![0x02]));
    let i2c = Mock::new(&tx);
    let mut chip = Atecc608::new(i2c, NoopDelay::new());
    assert_eq!(
        chip.info_revision(),
        Err(AteccError::Crc {
            opcode: opcode::INFO,
            got: 0xc780,
            want: 0x3880
        })
    );
    chip.release().0.done();
}

#[test]
fn error_status_bytes() {
    for (byte, status) in [
        (0x0f, Status::ExecutionError),
        (0x03, Status::ParseError),
        (0x05, Status::EccFault),
        (0x01, Status::Miscompare),
        (0xee, Status::WatchdogAboutToExpire),
        (0xff, Status::CommunicationError),
        (0x11, Status::AfterWake),
    ] {
        let i2c = Mock::new(&command(opcode::GENKEY, 0x00, 0x0000, &[], &[byte]));
        let mut chip = Atecc608::new(i2c, NoopDelay::new());
        assert_eq!(
            chip.public_key(0),
            Err(AteccError::Status {
                opcode: opcode::GENKEY,
                status
            })
        );
        chip.release().0.done();
    }
}

#[test]
fn success_status_where_data_was_expected_is_a_length_error() {
    let i2c = Mock::new(&command(opcode::GENKEY, 0x00, 0x0000, &[], &[0x00]));
    let mut chip = Atecc608::new(i2c, NoopDelay::new());
    assert_eq!(
        chip.public_key(0),
        Err(AteccError::UnexpectedLength {
            opcode: opcode::GENKEY,
            got: 4,
            want: 67
        })
    );
    chip.release().0.done();
}

#[test]
fn busy_chip_is_polled_until_it_answers() {
    let mut tx = wake();
    tx.push(T::write(DEFAULT_ADDRESS, packet(opcode::INFO, 0, 0, &[])));
    // Two polls NACKed while the chip executes.
    tx.push(T::write(DEFAULT_ADDRESS, vec![0x00]).with_error(NACK));
    tx.push(T::write(DEFAULT_ADDRESS, vec![0x00]).with_error(NACK));
    tx.extend(receive(&response(&[1, 2, 3, 4])));
    tx.push(T::write(DEFAULT_ADDRESS, vec![0x02]));
    let delay = CheckedDelay::new(&[
        D::delay_us(1_500),
        D::delay_ms(5),
        D::delay_ms(2),
        D::delay_ms(2),
    ]);
    let mut chip = Atecc608::new(Mock::new(&tx), delay);
    assert_eq!(chip.info_revision().unwrap(), [1, 2, 3, 4]);
    let (mut i2c, mut delay) = chip.release();
    i2c.done();
    delay.done();
}

#[test]
fn silent_chip_times_out_after_2500_ms_of_polling() {
    let mut tx = wake();
    tx.push(T::write(DEFAULT_ADDRESS, packet(opcode::INFO, 0, 0, &[])));
    for _ in 0..1250 {
        tx.push(T::write(DEFAULT_ADDRESS, vec![0x00]).with_error(NACK));
    }
    tx.push(T::write(DEFAULT_ADDRESS, vec![0x02]).with_error(NACK));
    let mut chip = Atecc608::new(Mock::new(&tx), NoopDelay::new());
    assert_eq!(
        chip.info_revision(),
        Err(AteccError::Timeout {
            opcode: opcode::INFO,
            polls: 1250,
            last: NACK
        })
    );
    chip.release().0.done();
}

#[test]
fn impossible_count_byte_is_rejected() {
    let mut tx = wake();
    tx.push(T::write(DEFAULT_ADDRESS, packet(opcode::INFO, 0, 0, &[])));
    tx.push(T::write(DEFAULT_ADDRESS, vec![0x00]));
    tx.push(T::read(DEFAULT_ADDRESS, vec![0xff]));
    tx.push(T::write(DEFAULT_ADDRESS, vec![0x02]));
    let mut chip = Atecc608::new(Mock::new(&tx), NoopDelay::new());
    assert_eq!(
        chip.info_revision(),
        Err(AteccError::BadCount {
            opcode: opcode::INFO,
            got: 0xff
        })
    );
    chip.release().0.done();
}

#[test]
fn slot_out_of_range_sends_nothing() {
    let mut chip = Atecc608::new(Mock::new(&[]), NoopDelay::new());
    assert_eq!(
        chip.public_key(16),
        Err(AteccError::InvalidSlot { slot: 16 })
    );
    assert_eq!(
        chip.sign_digest(200, &[0; 32]),
        Err(AteccError::InvalidSlot { slot: 200 })
    );
    chip.release().0.done();
}

#[test]
fn sleep_and_idle_word_addresses() {
    let i2c = Mock::new(&[
        T::write(DEFAULT_ADDRESS, vec![0x01]),
        T::write(DEFAULT_ADDRESS, vec![0x02]),
    ]);
    let mut chip = Atecc608::new(i2c, NoopDelay::new());
    chip.sleep().unwrap();
    chip.idle().unwrap();
    chip.release().0.done();
}
