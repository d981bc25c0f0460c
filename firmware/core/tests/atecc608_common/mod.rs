//! Transaction builders shared by the ATECC608 tests: what CryptoAuthLib puts on the bus for one
//! command (`calib_execute_command`).

#![allow(dead_code)]

use embedded_hal::i2c::{ErrorKind, NoAcknowledgeSource};
use embedded_hal_mock::eh1::i2c::Transaction as T;
use prov_firmware::drivers::atecc608::DEFAULT_ADDRESS;

/// The NACK a busy (or general-call) address gets.
pub const NACK: ErrorKind = ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address);

/// CRC-16/0x8005 written independently of the driver: reflect each input byte, then a plain
/// MSB-first shift register (equivalent to `atCRC`'s LSB-first bit loop).
pub fn reference_crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= u16::from(byte.reverse_bits()) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x8005
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// General-call wake byte (NACKed), then the wake response.
pub fn wake() -> Vec<T> {
    vec![
        T::write(0x00, vec![0x01]).with_error(NACK),
        T::read(DEFAULT_ADDRESS, vec![0x04, 0x11, 0x33, 0x43]),
    ]
}

/// Word address 0x03, count, opcode, param1, param2 LE, data, CRC LE.
pub fn packet(opcode: u8, p1: u8, p2: u16, data: &[u8]) -> Vec<u8> {
    let mut body = vec![(7 + data.len()) as u8, opcode, p1];
    body.extend_from_slice(&p2.to_le_bytes());
    body.extend_from_slice(data);
    let crc = reference_crc16(&body);
    body.extend_from_slice(&crc.to_le_bytes());
    let mut out = vec![0x03];
    out.extend(body);
    out
}

/// A response frame: count, data, CRC LE.
pub fn response(data: &[u8]) -> Vec<u8> {
    let mut out = vec![(data.len() + 3) as u8];
    out.extend_from_slice(data);
    let crc = reference_crc16(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Word address 0x00, count byte, the rest.
pub fn receive(frame: &[u8]) -> Vec<T> {
    vec![
        T::write(DEFAULT_ADDRESS, vec![0x00]),
        T::read(DEFAULT_ADDRESS, vec![frame[0]]),
        T::read(DEFAULT_ADDRESS, frame[1..].to_vec()),
    ]
}

/// One whole command: wake, send, receive, idle.
pub fn command(opcode: u8, p1: u8, p2: u16, data: &[u8], rsp_data: &[u8]) -> Vec<T> {
    let mut tx = wake();
    tx.push(T::write(DEFAULT_ADDRESS, packet(opcode, p1, p2, data)));
    tx.extend(receive(&response(rsp_data)));
    tx.push(T::write(DEFAULT_ADDRESS, vec![0x02]));
    tx
}

/// `calib_sign` on an ATECC608: Random (seed update), Nonce pass-through into the Message
/// Digest Buffer (mode 0x43), Sign external from it (mode 0xA0).
pub fn sign_transactions(slot: u8, digest: &[u8; 32], signature: &[u8]) -> Vec<T> {
    let mut tx = command(0x1b, 0x00, 0x0000, &[], &[0x11; 32]);
    tx.extend(command(0x16, 0x43, 0x0000, digest, &[0x00]));
    tx.extend(command(0x41, 0xa0, u16::from(slot), &[], signature));
    tx
}
