//! `Atecc608Signer` end to end against mock transactions: the chip's public key and signature
//! come from a known P-256 key, so the result can be checked against the software signer.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod atecc608_common;

use atecc608_common::*;
use embedded_hal_mock::eh1::delay::NoopDelay;
use embedded_hal_mock::eh1::i2c::Mock;
use prov_firmware::drivers::atecc608::{Atecc608, AteccError, Status};
use prov_firmware::signer::{Atecc608Signer, FlashKeySigner, Signer, SignerError, normalize_low_s};
use prov_schemas::cose;
use prov_schemas::keys::{DeviceId, Kid, P256_HALF_ORDER, P256_ORDER, SecretKey};
use sha2::Digest as _;

fn high_s_twin(sig: &[u8; 64]) -> [u8; 64] {
    // n - s, big-endian.
    let mut out = *sig;
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let mut d = i16::from(P256_ORDER[i]) - i16::from(sig[32 + i]) - borrow;
        borrow = i16::from(d < 0);
        if d < 0 {
            d += 256;
        }
        out[32 + i] = d as u8;
    }
    out
}

fn chip_for(key: &SecretKey, slot: u8, message: &[u8], chip_sig: &[u8; 64]) -> Mock {
    let xy = &key.public_key().to_sec1_uncompressed()[1..];
    let digest: [u8; 32] = sha2::Sha256::digest(message).into();
    let mut tx = command(0x40, 0x00, u16::from(slot), &[], xy);
    tx.extend(sign_transactions(slot, &digest, chip_sig));
    Mock::new(&tx)
}

#[test]
fn high_s_from_the_chip_is_normalised_and_verifies() {
    let key = SecretKey::test_key("atecc608").unwrap();
    let message = b"Sig_structure bytes";
    let low = key.sign(message).to_bytes();
    let high = high_s_twin(&low);
    assert!(high[32..] > P256_HALF_ORDER[..]);

    let chip = Atecc608::new(chip_for(&key, 3, message, &high), NoopDelay::new());
    let mut signer = Atecc608Signer::new(chip, 3).unwrap();
    assert_eq!(signer.public_key(), key.public_key());
    assert_eq!(signer.slot(), 3);
    let sig = signer.sign(message).unwrap();
    assert_eq!(sig.to_bytes(), low);
    signer.release().release().0.done();
}

#[test]
fn signed_event_verifies_as_cose() {
    let key = SecretKey::test_key("line1-packer").unwrap();
    let kid = Kid::Device(DeviceId::new("line1-packer").unwrap());
    let payload = b"\xa1\x64type\x6bObjectEvent";
    let tbs = cose::to_be_signed(&kid, payload).unwrap();
    let chip_sig = key.sign(&tbs).to_bytes();
    let chip = Atecc608::new(chip_for(&key, 0, &tbs, &chip_sig), NoopDelay::new());
    let mut signer = Atecc608Signer::new(chip, 0).unwrap();
    let sig = signer.sign(&tbs).unwrap();
    let message = cose::assemble(&kid, payload, &sig).unwrap();
    let parsed = cose::CoseSign1::parse(&message).unwrap();
    parsed
        .verify(&key.public_key(), &cose::P256Backend)
        .unwrap();
    signer.release().release().0.done();
}

#[test]
fn signature_from_another_key_is_refused() {
    let key = SecretKey::test_key("slot-key").unwrap();
    let other = SecretKey::test_key("other-key").unwrap();
    let message = b"m";
    let wrong = other.sign(message).to_bytes();
    let chip = Atecc608::new(chip_for(&key, 1, message, &wrong), NoopDelay::new());
    let mut signer = Atecc608Signer::new(chip, 1).unwrap();
    assert_eq!(
        signer.sign(message),
        Err(SignerError::VerifyFailed { slot: 1 })
    );
    signer.release().release().0.done();
}

#[test]
fn chip_errors_surface_with_their_status() {
    let tx = command(0x40, 0x00, 0x0005, &[], &[0x0f]);
    let mut bus = Mock::new(&tx);
    let chip = Atecc608::new(bus.clone(), NoopDelay::new());
    let Err(err) = Atecc608Signer::new(chip, 5) else {
        panic!("expected an error");
    };
    assert_eq!(
        err,
        SignerError::SecureElement(AteccError::Status {
            opcode: 0x40,
            status: Status::ExecutionError
        })
    );
    bus.done();
}

#[test]
fn invalid_public_key_is_refused() {
    let tx = command(0x40, 0x00, 0x0000, &[], &[0u8; 64]);
    let mut bus = Mock::new(&tx);
    let chip = Atecc608::new(bus.clone(), NoopDelay::new());
    assert!(matches!(
        Atecc608Signer::new(chip, 0),
        Err(SignerError::BadPublicKey { slot: 0, .. })
    ));
    bus.done();
}

#[test]
fn normalize_low_s_is_identity_on_low_and_rejects_zero() {
    let key = SecretKey::test_key("n").unwrap();
    let low = key.sign(b"x").to_bytes();
    assert_eq!(normalize_low_s(&low).unwrap().to_bytes(), low);
    assert_eq!(normalize_low_s(&high_s_twin(&low)).unwrap().to_bytes(), low);
    assert!(normalize_low_s(&[0u8; 64]).is_err());
}

#[test]
fn flash_signer_and_chip_signer_share_the_trait() {
    fn sign_with(signer: &mut dyn Signer, m: &[u8]) -> [u8; 64] {
        signer.sign(m).unwrap().to_bytes()
    }
    let key = SecretKey::test_key("shared").unwrap();
    let mut flash = FlashKeySigner::new(key.clone());
    let sig = sign_with(&mut flash, b"m");
    let chip = Atecc608::new(chip_for(&key, 2, b"m", &sig), NoopDelay::new());
    let mut chip = Atecc608Signer::new(chip, 2).unwrap();
    assert_eq!(sign_with(&mut chip, b"m"), sig);
    chip.release().release().0.done();
}
