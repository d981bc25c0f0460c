//! The gateway: receives signed device events, decides which enter the log, keeps the log and
//! its derived indexes, and serves them.
//!
//! Data flows one way (ARCHITECTURE.md): ingest → [`verify`] (pure: decides, does no I/O) →
//! sequence (append to the log, apply the [`index`]es; rejections to the [`quarantine`]) →
//! integrate → publish. The log is the source of truth; everything in [`index`] can be rebuilt
//! from it, while the [`quarantine`] (messages that never entered the log) cannot and is kept in
//! its own durable file.

pub mod index;
pub mod quarantine;
pub mod verify;

pub mod broker;
pub mod config;
pub mod http;
pub mod ingest;
pub mod keys;
pub mod metrics;
pub mod pipeline;
pub mod service;
