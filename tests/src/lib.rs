//! Cross-crate test support: the generator of the shared test vectors under `schemas/vectors/`
//! and the judge that runs any vector (valid or invalid) through the core.

pub mod bundle;
pub mod invalid;
pub mod vectors;
