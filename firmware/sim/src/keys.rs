//! Device and operator keys: derived for simulation, or random and kept in key files.
//!
//! - **Simulation keys** ([`derive_device_key`]): the scalar is
//!   `BLAKE3("prov-sim device key v1:" || seed (decimal) || ":" || device_id)`, re-hashed with a
//!   counter in the (negligible) case it is not a valid P-256 scalar. Anyone who knows the seed
//!   can derive them: they exist so a simulated line, its test subscriber and a gateway's
//!   registry can agree on keys without files. Never use them for real devices.
//! - **Key files** ([`create_key_file`], [`load_key_file`]): the 32-byte big-endian scalar as 64
//!   lowercase hex digits and a newline. Created with mode 0600 in the same `open` call (never a
//!   window with wider permissions), never overwritten, and never printed or logged: only the
//!   public key and its fingerprint are.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use anyhow::{Context as _, Result, bail};
use prov_schemas::keys::{DeviceId, PublicKey, SecretKey};
use zeroize::Zeroize as _;

/// The derivation prefix of simulation keys.
pub const SIM_KEY_PREFIX: &[u8] = b"prov-sim device key v1:";

/// The simulation key of `device` under `seed` (see the module docs).
pub fn derive_device_key(seed: u64, device: &DeviceId) -> SecretKey {
    let mut counter = 0u32;
    loop {
        let mut h = blake3::Hasher::new();
        h.update(SIM_KEY_PREFIX);
        h.update(seed.to_string().as_bytes());
        h.update(b":");
        h.update(device.as_bytes());
        if counter > 0 {
            h.update(&counter.to_be_bytes());
        }
        let mut scalar = *h.finalize().as_bytes();
        let key = SecretKey::from_slice(&scalar);
        scalar.zeroize();
        if let Ok(key) = key {
            return key;
        }
        counter += 1;
    }
}

/// A fresh random P-256 scalar from the operating system's generator, and its key. The caller
/// wipes the scalar.
fn random_scalar() -> Result<([u8; 32], SecretKey)> {
    loop {
        let mut scalar = [0u8; 32];
        getrandom::fill(&mut scalar).map_err(|e| anyhow::anyhow!("OS random generator: {e}"))?;
        match SecretKey::from_slice(&scalar) {
            Ok(key) => return Ok((scalar, key)),
            Err(_) => scalar.zeroize(),
        }
    }
}

/// Creates a key file at `path` holding a new random key (mode 0600 from the moment the file
/// exists; refuses to overwrite an existing file) and returns the key.
pub fn create_key_file(path: &Path) -> Result<SecretKey> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| {
            format!(
                "creating key file {} (an existing key file is never overwritten)",
                path.display()
            )
        })?;
    let (mut scalar, key) = random_scalar()?;
    let mut text = hex::encode(scalar);
    scalar.zeroize();
    text.push('\n');
    let written = file
        .write_all(text.as_bytes())
        .and_then(|()| file.sync_all());
    text.zeroize();
    if let Err(e) = written {
        // Leave no half-written key behind.
        let _ = std::fs::remove_file(path);
        return Err(e).with_context(|| format!("writing key file {}", path.display()));
    }
    Ok(key)
}

/// Loads a key file written by [`create_key_file`]. Refuses a file that others can read.
pub fn load_key_file(path: &Path) -> Result<SecretKey> {
    let meta = std::fs::metadata(path).with_context(|| format!("key file {}", path.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        bail!(
            "key file {} has mode {mode:o}; a private key file must be readable by its owner only (chmod 600)",
            path.display()
        );
    }
    let mut text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut bytes = hex::decode(text.trim())
        .map_err(|_| anyhow::anyhow!("key file {} does not hold 64 hex digits", path.display()));
    text.zeroize();
    let key = match &bytes {
        Ok(raw) => SecretKey::from_slice(raw)
            .with_context(|| format!("key file {} does not hold a P-256 key", path.display())),
        Err(_) => bail!("key file {} does not hold 64 hex digits", path.display()),
    };
    if let Ok(raw) = &mut bytes {
        raw.zeroize();
    }
    key
}

/// The public key as SPEC §4 carries it (65-byte uncompressed SEC1), in hex.
pub fn public_hex(key: &PublicKey) -> String {
    hex::encode(key.to_sec1_uncompressed())
}

/// The SPEC §1 fingerprint: BLAKE3 of the compressed SEC1 key, hex.
pub fn fingerprint_hex(key: &PublicKey) -> String {
    key.fingerprint().to_hex()
}
