//! The gateway: receives signed device events, decides which enter the log, keeps the log and
//! its derived indexes, and serves them.
//!
//! Data flows one way (ARCHITECTURE.md): ingest → [`verify`] (pure: decides, does no I/O) →
//! sequence (append to the log; rejections to the [`quarantine`]; then the PUBACKs) →
//! integrate → publish, while a background thread applies each durable batch to the [`index`]es
//! (behind the log, never ahead of it; `catch_up` replays the log tail after a crash). The log
//! is the source of truth; everything in [`index`] can be rebuilt from it, while the
//! [`quarantine`] (messages that never entered the log) cannot and is kept in its own durable
//! file.
//!
//! Readers: the HTTP API ([`http`]: checkpoint, keys, registry, proofs; the Digital Link
//! [`resolver`] with its [`bundle`]s, [`labels`] and the scanner page [`web`]), the auditor's
//! endpoints behind tokens ([`auditor_api`], [`auth`], [`epcis`]), [`lineage`] traces, the
//! offline [`audit`] and the C2SP [`witness`].

pub mod index;
pub mod quarantine;
pub mod verify;

pub mod audit;
pub mod auditor_api;
pub mod auth;
pub mod broker;
pub mod config;
pub mod epcis;
pub mod http;
pub mod ingest;
pub mod keys;
pub mod lineage;
pub mod metrics;
pub mod pipeline;
pub mod service;

pub mod bundle;
pub mod demo;
pub mod labels;
pub mod resolver;
pub mod web;
pub mod witness;
