//! Provisioning: a device key and the registration record (SPEC §4) a gateway imports.
//!
//! [`provision`] creates the device's key file (random scalar, mode 0600, never overwritten),
//! builds the `prov:DeviceRegistration` record with the device's public key, signs it with the
//! operator's key file as `operator:{name}` (the same COSE_Sign1 envelope as events) and writes
//! the signed record to a file of its own, raw COSE bytes, for the gateway's import. What it
//! returns (and what the CLI prints) is public: the key, its fingerprint, the record's hash.
//! The secret never leaves the key file.
//!
//! [`registration_record`] is the signing step alone, for registering simulator devices whose
//! keys are derived rather than stored.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result};
use prov_schemas::Hash32;
use prov_schemas::checked::verify_registry_record;
use prov_schemas::cose::{P256Backend, sign_message};
use prov_schemas::event::EventTime;
use prov_schemas::keys::{DeviceId, Kid, OperatorName, PublicKey, SecretKey};
use prov_schemas::registry::RegistryRecord;

use crate::keys::{create_key_file, load_key_file};

/// A signed registration record of `device` with `key` at `event_time`, by `operator`. The
/// result is checked with the core's verifier before it is returned.
pub fn registration_record(
    device: DeviceId,
    key: PublicKey,
    event_time: EventTime,
    operator: OperatorName,
    operator_key: &SecretKey,
) -> Result<Vec<u8>> {
    let record = RegistryRecord::Registration {
        device,
        key,
        event_time,
    };
    let message = sign_message(
        &Kid::Operator(operator),
        &record.encode_payload(),
        operator_key,
    )?;
    let trusted = [(operator, operator_key.public_key())];
    verify_registry_record(&message, &trusted, &P256Backend)
        .context("the record just signed does not verify")?;
    Ok(message)
}

/// The current time as an event time.
pub fn now() -> Result<EventTime> {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("system clock before 1970")?
        .as_millis();
    Ok(EventTime::from_unix_millis(u64::try_from(millis)?)?)
}

/// Writes `bytes` to a new file (refusing to overwrite).
pub fn write_new(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("creating {} (never overwritten)", path.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

/// What [`provision`] made (all public).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provisioned {
    /// The device.
    pub device: DeviceId,
    /// Its new public key.
    pub public_key: PublicKey,
    /// Where its private key is (mode 0600).
    pub key_file: PathBuf,
    /// Where the signed registration record is.
    pub record_file: PathBuf,
    /// BLAKE3 of the record (its identity in the log).
    pub record_hash: Hash32,
}

/// Creates `device`'s key file at `key_out` and its registration record, signed with the
/// operator key in `operator_key_file` as `operator:{operator}`, at `record_out`. Neither file
/// may exist already. If writing the record fails, the new key file is removed again so a retry
/// starts clean.
pub fn provision(
    device: DeviceId,
    key_out: &Path,
    operator: OperatorName,
    operator_key_file: &Path,
    record_out: &Path,
) -> Result<Provisioned> {
    let operator_key = load_key_file(operator_key_file)
        .with_context(|| format!("operator key for operator:{operator}"))?;
    if record_out.exists() {
        anyhow::bail!("{} exists (never overwritten)", record_out.display());
    }
    let key = create_key_file(key_out)?;
    let public_key = key.public_key();
    let result = registration_record(device, public_key, now()?, operator, &operator_key)
        .and_then(|record| write_new(record_out, &record).map(|()| record));
    match result {
        Ok(record) => Ok(Provisioned {
            device,
            public_key,
            key_file: key_out.to_path_buf(),
            record_file: record_out.to_path_buf(),
            record_hash: Hash32::blake3(&record),
        }),
        Err(e) => {
            let _ = std::fs::remove_file(key_out);
            Err(e)
        }
    }
}
