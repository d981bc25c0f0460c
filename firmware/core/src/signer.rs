//! Signing the COSE Sig_structure: one trait, two key stores.
//!
//! [`Signer::sign`] takes the message to sign (the Sig_structure bytes from
//! `prov_schemas::cose::to_be_signed`) and returns an ES256 signature with low S (SPEC §2); the
//! SHA-256 is computed inside, so a caller cannot hand over a digest of the wrong thing.
//!
//! - [`FlashKeySigner`]: the private scalar in a flash data partition (written by provisioning,
//!   [`crate::storage::key_slot`]); RFC 6979 deterministic nonces through
//!   `prov_schemas::keys::SecretKey`. Cheap, but the key is as safe as the flash (enable flash
//!   encryption).
//! - [`Atecc608Signer`]: the key generated inside an ATECC608 and never readable; the chip signs
//!   with random nonces and its `s` may be high, so it is normalised here. Each signature is
//!   also verified against the slot's public key (read once at start-up) before it is returned:
//!   a wrong slot, a misconfigured chip or a corrupted transfer then fails loudly on the first
//!   event instead of producing events no one can verify.
//!
//! Both implement [`Signer`] with the same error type, so the event builder is generic over
//! the key store and the host simulator uses the flash signer.

use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::{ErrorKind, I2c};
use embedded_storage::nor_flash::ReadNorFlash;
use p256::ecdsa::signature::hazmat::PrehashVerifier as _;
use prov_schemas::keys::{KeyError, PublicKey, SecretKey, Signature, SignatureError};
use sha2::Digest as _;

use crate::drivers::atecc608::{Atecc608, AteccError};
use crate::storage::key_slot::{self, KeySlotError};

/// Something that signs device events.
pub trait Signer {
    /// The public key the gateway registers for this device.
    fn public_key(&self) -> PublicKey;

    /// Signs `message` (ECDSA P-256 over SHA-256 of `message`); the result has low S.
    fn sign(&mut self, message: &[u8]) -> Result<Signature, SignerError>;
}

/// A signature could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignerError {
    /// The secure element failed (I2C errors reduced to their `ErrorKind`).
    #[error("secure element: {0}")]
    SecureElement(AteccError<ErrorKind>),
    /// The secure element returned a public key that is not a P-256 point.
    #[error("secure element slot {slot} holds no valid public key: {error}")]
    BadPublicKey {
        /// The slot.
        slot: u8,
        /// Why the key was rejected.
        error: KeyError,
    },
    /// The secure element returned bytes that are not a valid signature (zero or out of range).
    #[error("secure element returned an invalid signature: {0}")]
    BadSignature(SignatureError),
    /// The secure element's signature does not verify under the slot's public key.
    #[error("secure element signature does not verify under slot {slot}'s public key")]
    VerifyFailed {
        /// The slot.
        slot: u8,
    },
}

/// A P-256 key held in RAM, loaded from a flash key slot.
#[derive(Debug, Clone)]
pub struct FlashKeySigner {
    key: SecretKey,
}

impl FlashKeySigner {
    /// Loads the key at `addr` ([`key_slot`] format); a blank or corrupt slot is an error.
    pub fn load<F: ReadNorFlash>(flash: &mut F, addr: u32) -> Result<Self, KeySlotError<F::Error>> {
        key_slot::load(flash, addr).map(|key| FlashKeySigner { key })
    }

    /// Wraps a key that is already in memory (simulator, tests).
    pub fn new(key: SecretKey) -> Self {
        FlashKeySigner { key }
    }
}

impl Signer for FlashKeySigner {
    fn public_key(&self) -> PublicKey {
        self.key.public_key()
    }

    fn sign(&mut self, message: &[u8]) -> Result<Signature, SignerError> {
        Ok(self.key.sign(message))
    }
}

/// Signs with the private key in one ATECC608 slot.
#[derive(Debug)]
pub struct Atecc608Signer<I2C, D> {
    chip: Atecc608<I2C, D>,
    slot: u8,
    public: PublicKey,
}

impl<I2C: I2c, D: DelayNs> Atecc608Signer<I2C, D> {
    /// Reads the public key of `slot` (GenKey mode 0) and keeps it.
    pub fn new(mut chip: Atecc608<I2C, D>, slot: u8) -> Result<Self, SignerError> {
        let xy = chip.public_key(slot).map_err(reduce)?;
        let mut sec1 = [0u8; 65];
        sec1[0] = 0x04;
        sec1[1..].copy_from_slice(&xy);
        let public = PublicKey::from_sec1_uncompressed(&sec1)
            .map_err(|error| SignerError::BadPublicKey { slot, error })?;
        Ok(Atecc608Signer { chip, slot, public })
    }

    /// The slot used.
    pub fn slot(&self) -> u8 {
        self.slot
    }

    /// Gives the chip driver back.
    pub fn release(self) -> Atecc608<I2C, D> {
        self.chip
    }
}

impl<I2C: I2c, D: DelayNs> Signer for Atecc608Signer<I2C, D> {
    fn public_key(&self) -> PublicKey {
        self.public
    }

    fn sign(&mut self, message: &[u8]) -> Result<Signature, SignerError> {
        let digest: [u8; 32] = sha2::Sha256::digest(message).into();
        let raw = self.chip.sign_digest(self.slot, &digest).map_err(reduce)?;
        let signature = normalize_low_s(&raw).map_err(SignerError::BadSignature)?;
        verify_prehash(&self.public, &digest, &signature)
            .then_some(signature)
            .ok_or(SignerError::VerifyFailed { slot: self.slot })
    }
}

pub use prov_schemas::keys::normalize_low_s;

fn verify_prehash(key: &PublicKey, digest: &[u8; 32], signature: &Signature) -> bool {
    let Ok(vk) = p256::ecdsa::VerifyingKey::from_sec1_bytes(key.as_sec1_uncompressed()) else {
        return false;
    };
    let Ok(sig) = p256::ecdsa::Signature::from_slice(&signature.to_bytes()) else {
        return false;
    };
    vk.verify_prehash(digest, &sig).is_ok()
}

fn reduce<E: embedded_hal::i2c::Error>(error: AteccError<E>) -> SignerError {
    SignerError::SecureElement(error.map_i2c(|e| e.kind()))
}
