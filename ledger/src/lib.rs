//! The log: RFC 9162 Merkle maths, checkpoints, proofs and the checkpoint chain.
//!
//! This is the pure core of the ledger (SPEC §4 and §5): no I/O, `no_std` + `alloc`, and no
//! panics on outside input, so that the gateway, the firmware, the browser (wasm) and the auditor
//! all verify with the very same functions. Every decoder and verifier returns a typed error
//! whose variant says what was wrong and carries the evidence (`got`/`want`, index, size).
//!
//! Modules, from the bottom up:
//! - [`hasher`]: the RFC 9162 hashing rules, with BLAKE3 (our logs) or SHA-256 (test vectors);
//! - [`merkle`]: tree hashes, inclusion and consistency proofs (generation and verification),
//!   the append-only [`merkle::MemoryTree`] and the O(log n) [`merkle::Frontier`];
//! - [`checkpoint`]: the C2SP `tlog-checkpoint` body, signed and opened as a note;
//! - [`note`]: C2SP `signed-note` with Ed25519, verifier keys and `tlog-cosignature` v1;
//! - [`tlog_proof`]: the C2SP `tlog-proof` text for one entry;
//! - [`chain`]: the hash-linked chain of signed checkpoints (SPEC §5);
//! - [`witness`]: the C2SP `tlog-witness` request, decision and response (pure part);
//! - `store` (feature `std`): the on-disk log, segments, tree hashes and chain file.
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub mod chain;
pub mod checkpoint;
pub mod hasher;
pub mod merkle;
pub mod note;
#[cfg(feature = "std")]
pub mod store;
mod text;
pub mod tlog_proof;
pub mod witness;

pub use prov_schemas::Hash32;
