//! The format token in the `provkey` partition (see `flash`): parsing only, no hardware, so
//! that it can be checked on a host against what `tools/provision.py` writes.

use prov_firmware::storage::{ChainPoint, crc32};
use prov_schemas::Hash32;

/// Offset of the format token inside `provkey`.
pub const TOKEN_OFFSET: u32 = 0x100;
/// Bytes of a format token.
pub const TOKEN_LEN: usize = 52;
const TOKEN_MAGIC: [u8; 4] = *b"PFMT";
const TOKEN_VERSION: u8 = 1;

/// What the token slot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token {
    /// Erased: provisioning wrote no token.
    Blank,
    /// Cleared by [`Partition::consume_token`]: already used.
    Used,
    /// Format the store, the chain resuming after this point.
    Format(ChainPoint),
    /// Neither: a torn or foreign write (ignored, logged).
    Corrupt,
}

/// The token format (little-endian):
///
/// ```text
/// 0   magic "PFMT"          (cleared to 00 00 00 00 once used)
/// 4   version u8 = 1
/// 5   reserved [3] = FF FF FF
/// 8   resume seq u64        (0 for a new device)
/// 16  resume hash [32]      (BLAKE3 of message `seq`; zeros when seq = 0)
/// 48  crc32 u32             CRC-32 (zlib) of bytes 0..48
/// ```
pub fn parse_token(raw: &[u8; TOKEN_LEN]) -> Token {
    if raw.iter().all(|&b| b == 0xff) {
        return Token::Blank;
    }
    if raw[..4] == [0; 4] {
        return Token::Used;
    }
    let crc = u32::from_le_bytes([raw[48], raw[49], raw[50], raw[51]]);
    if raw[..4] != TOKEN_MAGIC || raw[4] != TOKEN_VERSION || crc != crc32(&raw[..48]) {
        return Token::Corrupt;
    }
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&raw[8..16]);
    let mut hash = [0u8; 32];
    hash.copy_from_slice(&raw[16..48]);
    let seq = u64::from_le_bytes(seq);
    let hash = Hash32(hash);
    // The genesis point has a zero hash and only it does (SPEC §2 `prov:prev`).
    if (seq == 0) != (hash == Hash32::ZERO) {
        return Token::Corrupt;
    }
    Token::Format(ChainPoint { seq, hash })
}
