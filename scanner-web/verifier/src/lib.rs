//! The browser's verifier of product provenance bundles (SPEC §6).
//!
//! A consumer's page fetches a product's bundle from the resolver and asks this crate, compiled
//! to `wasm32-unknown-unknown`, whether every event in it is signed by a registered device and
//! included in the signed log. Everything here is the pure core (`prov-schemas`, `prov-ledger`)
//! on its `no_std` path ([`prov_schemas::cose::P256Backend`], BLAKE3, Ed25519), so the browser
//! accepts exactly what the gateway and the auditor accept.
//!
//! - [`bundle::verify_bundle`]: the whole of SPEC §6 for one bundle, under the keys the page
//!   pins in its own configuration ([`Trust`]), never those in the bundle; the [`Report`] lists
//!   every failure by where it is (`events[3].proof`, `checkpoint`) and the decoded events for
//!   the timeline.
//! - [`checks`]: the primitive checks (one event, one registry record, one inclusion or
//!   consistency proof, one checkpoint, one tlog-proof, one chain, a tree root), with JSON inputs and
//!   outcomes, so that the wasm build runs the shared vectors (`schemas/vectors/`) like the
//!   Rust judge `tests/src/invalid.rs` does.
//! - `wasm` (on wasm32 only): the raw exports, the allocator and the panic handler; the one
//!   module with `unsafe` code. `scanner-web/js/verifier.js` is its loader.
//!
//! Nothing here panics on any input: every malformation is a failure in the report or an error
//! in the outcome.
#![no_std]

extern crate alloc;
// Natively (tests, the host cdylib) the runtime comes from std; the code itself uses only
// `core` and `alloc`, as the wasm32 build proves.
#[cfg(not(target_arch = "wasm32"))]
extern crate std;

pub mod bundle;
pub mod checks;
mod lineage;
pub mod trust;
// Not in wasm32 test builds, which have std's panic handler and allocator.
#[cfg(all(target_arch = "wasm32", not(test)))]
mod wasm;

pub use bundle::{Failure, Report, Verdict, verify_bundle};
pub use trust::{Trust, TrustError};
