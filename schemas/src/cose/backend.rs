//! ECDSA P-256 / SHA-256 verification backends.
//!
//! Two implementations of the same arithmetic: RustCrypto's `p256` (pure Rust, `no_std`, the one
//! firmware and the wasm verifier use) and `ring` (feature `ring`, std only, about 5x faster per
//! FIELD-NOTES: the gateway's hot path needs it to reach its event rate). A backend only answers
//! "is this `r || s` a valid signature by this key over these bytes"; the envelope, range and
//! low-S rules are enforced before, by [`super::CoseSign1::parse`], so the two cannot disagree on
//! policy, and the tests check they agree on every mutated message.

use crate::keys::{PublicKey, SIGNATURE_LEN};

/// An ECDSA P-256 / SHA-256 verifier.
///
/// This is the raw primitive: it applies no low-S rule (a high-S twin of a valid signature
/// verifies here). Use [`super::CoseSign1::verify`], which only passes signatures that already
/// passed the envelope checks.
pub trait VerifyBackend {
    /// Whether `signature` (`r || s`, big-endian) is a valid ES256 signature by `key` over the
    /// concatenation of `parts`. Malformed signatures (zero or out-of-range scalars) give `false`.
    fn verify_es256(
        &self,
        key: &PublicKey,
        parts: &[&[u8]],
        signature: &[u8; SIGNATURE_LEN],
    ) -> bool;
}

/// RustCrypto `p256`: pure Rust, `no_std`, the default everywhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct P256Backend;

impl VerifyBackend for P256Backend {
    fn verify_es256(
        &self,
        key: &PublicKey,
        parts: &[&[u8]],
        signature: &[u8; SIGNATURE_LEN],
    ) -> bool {
        use p256::ecdsa::signature::hazmat::PrehashVerifier as _;
        use sha2::Digest as _;
        let Ok(signature) = p256::ecdsa::Signature::from_slice(signature) else {
            return false;
        };
        let mut hasher = sha2::Sha256::new();
        for part in parts {
            hasher.update(part);
        }
        let digest: [u8; 32] = hasher.finalize().into();
        key.verifying_key()
            .verify_prehash(&digest, &signature)
            .is_ok()
    }
}

/// `ring`'s `ECDSA_P256_SHA256_FIXED` (feature `ring`, std only): the fast server backend.
///
/// `ring` 0.17 has no API to keep a parsed public key, so each call hands it the 65 bytes kept in
/// [`PublicKey`] (no allocation, no re-encoding); its point decoding costs well under 1 % of a
/// verification.
#[cfg(feature = "ring")]
#[derive(Debug, Clone, Copy, Default)]
pub struct RingBackend;

#[cfg(feature = "ring")]
impl VerifyBackend for RingBackend {
    fn verify_es256(
        &self,
        key: &PublicKey,
        parts: &[&[u8]],
        signature: &[u8; SIGNATURE_LEN],
    ) -> bool {
        use ring::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
        // ring hashes the message itself and takes it in one piece.
        let message = parts.concat();
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, key.as_sec1_uncompressed())
            .verify(&message, signature)
            .is_ok()
    }
}

/// The fastest backend compiled in: [`RingBackend`] with feature `ring`, else [`P256Backend`].
#[cfg(feature = "ring")]
pub type PreferredBackend = RingBackend;

/// The fastest backend compiled in: `RingBackend` with feature `ring`, else [`P256Backend`].
#[cfg(not(feature = "ring"))]
pub type PreferredBackend = P256Backend;
