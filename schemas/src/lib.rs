//! The data model and wire formats shared by every part of the system.
//!
//! This crate is the pure core: no I/O, no panics on outside input, `no_std` + `alloc`, so the
//! firmware, the gateway, the browser (wasm) and the auditor all verify with the same functions.
//! The byte-level contract it implements is `SPEC.md` (shared with outside verifiers).
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub mod cbor;
pub mod checked;
pub mod cose;
pub mod digital_link;
pub mod event;
pub mod hash;
pub mod keys;
pub mod registry;

pub use hash::Hash32;
