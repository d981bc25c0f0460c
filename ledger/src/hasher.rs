//! The three hashing rules of an RFC 9162 §2.1 Merkle tree, behind one trait.
//!
//! Our logs hash with BLAKE3 (SPEC §4); the public transparency-dev test vectors use SHA-256.
//! Keeping the tree maths generic over [`LogHasher`] lets one implementation of the algorithms be
//! checked against those vectors with [`Sha256Hasher`] and then used with [`Blake3Hasher`].
//!
//! The leaf prefix `0x00` and node prefix `0x01` give domain separation: no leaf hash can be
//! reinterpreted as an interior node (the second-preimage attack on plain Merkle trees).

use prov_schemas::Hash32;
use sha2::Digest as _;

/// Leaf hash prefix (RFC 9162 §2.1.1).
pub const LEAF_PREFIX: u8 = 0x00;
/// Interior node hash prefix (RFC 9162 §2.1.1).
pub const NODE_PREFIX: u8 = 0x01;

/// The hashing rules of a log: RFC 9162 §2.1.1 with some 32-byte hash function.
pub trait LogHasher {
    /// The root of the empty tree: `HASH("")`.
    fn empty_root(&self) -> Hash32;
    /// A leaf's hash: `HASH(0x00 || entry)`, over the entry's exact bytes.
    fn hash_leaf(&self, entry: &[u8]) -> Hash32;
    /// An interior node's hash: `HASH(0x01 || left || right)`.
    fn hash_children(&self, left: &Hash32, right: &Hash32) -> Hash32;
}

/// The log hasher of SPEC §4: RFC 9162 with plain BLAKE3 in place of SHA-256.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Blake3Hasher;

impl LogHasher for Blake3Hasher {
    fn empty_root(&self) -> Hash32 {
        Hash32(*blake3::hash(b"").as_bytes())
    }

    fn hash_leaf(&self, entry: &[u8]) -> Hash32 {
        let mut h = blake3::Hasher::new();
        h.update(&[LEAF_PREFIX]);
        h.update(entry);
        Hash32(*h.finalize().as_bytes())
    }

    fn hash_children(&self, left: &Hash32, right: &Hash32) -> Hash32 {
        // One 65-byte buffer and one call: cheaper than three `update`s on the hot path.
        let mut buf = [0u8; 65];
        buf[0] = NODE_PREFIX;
        buf[1..33].copy_from_slice(&left.0);
        buf[33..].copy_from_slice(&right.0);
        Hash32(*blake3::hash(&buf).as_bytes())
    }
}

/// RFC 9162 proper, with SHA-256: used to check the tree maths against public test vectors.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sha256Hasher;

impl LogHasher for Sha256Hasher {
    fn empty_root(&self) -> Hash32 {
        Hash32(sha2::Sha256::digest(b"").into())
    }

    fn hash_leaf(&self, entry: &[u8]) -> Hash32 {
        let mut h = sha2::Sha256::new();
        h.update([LEAF_PREFIX]);
        h.update(entry);
        Hash32(h.finalize().into())
    }

    fn hash_children(&self, left: &Hash32, right: &Hash32) -> Hash32 {
        let mut h = sha2::Sha256::new();
        h.update([NODE_PREFIX]);
        h.update(left.0);
        h.update(right.0);
        Hash32(h.finalize().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blake3_rules_match_spec_section_4() {
        let b = Blake3Hasher;
        assert_eq!(b.empty_root(), Hash32::blake3(b""));
        assert_eq!(b.hash_leaf(b"abc"), Hash32::blake3(b"\x00abc"));
        let (l, r) = (Hash32([1; 32]), Hash32([2; 32]));
        let mut cat = alloc::vec![1u8];
        cat.extend_from_slice(&l.0);
        cat.extend_from_slice(&r.0);
        assert_eq!(b.hash_children(&l, &r), Hash32::blake3(&cat));
    }

    #[test]
    fn sha256_known_answers() {
        let s = Sha256Hasher;
        // RFC 6962 test data (transparency-dev/merkle): empty tree and the leaf of "".
        assert_eq!(
            s.empty_root().to_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            s.hash_leaf(b"").to_hex(),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
    }
}
