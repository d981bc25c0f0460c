//! The one 32-byte hash type used across the system (BLAKE3 outputs, Merkle nodes, chain links).
//!
//! A fixed-size newtype rather than `[u8; 32]` or `Vec<u8>` so that a hash can never be confused
//! with a key or a signature, and a wrong-length value is rejected once, at parse time.

use alloc::string::String;
use core::fmt;

/// A 32-byte digest: BLAKE3 (SPEC §2, §4, §5) or, for test vectors only, SHA-256.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Hash32(pub [u8; 32]);

/// A hash could not be parsed from text or bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashParseError {
    /// The input had the wrong number of bytes.
    #[error("hash has {got} bytes, want 32")]
    Length {
        /// Bytes found.
        got: usize,
    },
    /// The input was not lowercase hex.
    #[error("hash is not lowercase hex")]
    NotHex,
}

impl Hash32 {
    /// 32 zero bytes: `prov:prev` of a device's first event, `prev` of chain block 0.
    pub const ZERO: Hash32 = Hash32([0u8; 32]);

    /// The plain BLAKE3 hash of `data` (never keyed or derive-key mode, SPEC preamble).
    pub fn blake3(data: &[u8]) -> Hash32 {
        Hash32(*blake3::hash(data).as_bytes())
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parses exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Hash32, HashParseError> {
        <[u8; 32]>::try_from(bytes)
            .map(Hash32)
            .map_err(|_| HashParseError::Length { got: bytes.len() })
    }

    /// Lowercase hex (SPEC preamble: hex is lowercase).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 lowercase hex digits.
    pub fn from_hex(text: &str) -> Result<Hash32, HashParseError> {
        if text.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(HashParseError::NotHex);
        }
        let bytes = hex::decode(text).map_err(|_| HashParseError::NotHex)?;
        Hash32::from_slice(&bytes)
    }
}

impl fmt::Debug for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash32({})", hex::encode(self.0))
    }
}

impl fmt::Display for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl AsRef<[u8]> for Hash32 {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_rejections() {
        let h = Hash32::blake3(b"");
        assert_eq!(
            h.to_hex(),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
        assert_eq!(Hash32::from_hex(&h.to_hex()), Ok(h));
        assert_eq!(
            Hash32::from_hex(&h.to_hex().to_uppercase()),
            Err(HashParseError::NotHex)
        );
        assert_eq!(
            Hash32::from_slice(&[0u8; 31]),
            Err(HashParseError::Length { got: 31 })
        );
    }
}
