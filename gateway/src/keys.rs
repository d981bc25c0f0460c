//! Key files: the gateway's Ed25519 checkpoint key and the site operator's P-256 key.
//!
//! Why two keys: the gateway signs checkpoints (what the log says); the operator signs registry
//! records (which device keys the log admits). Keeping them apart means a compromised or buggy
//! gateway cannot quietly admit a key of its own: a registration verifies only under an operator
//! key that verifiers pin from their own configuration (SPEC §4, §6).
//!
//! Both files hold 32 bytes as 64 lowercase hex digits and a newline (the simulator's key-file
//! format, so its `provision` can use the operator key), are created with mode 0600 in the
//! `open` call itself, are never overwritten, and are refused when others can read them.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use prov_ledger::note::NoteSigner;
use prov_schemas::keys::{OperatorName, PublicKey, SecretKey};

/// A key file problem.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file could not be read or written.
    #[error("key file {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Others can read the file.
    #[error("key file {} has mode {mode:o}; it must be readable by its owner only (chmod 600)", path.display())]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its mode bits.
        mode: u32,
    },
    /// The content is not 64 hex digits of a valid key.
    #[error("key file {}: {detail}", path.display())]
    Content {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The OS random generator failed.
    #[error("OS random generator: {0}")]
    Random(String),
    /// A trusted operator entry in the configuration is invalid.
    #[error("trusted operator {name:?}: {detail}")]
    Operator {
        /// The configured name.
        name: String,
        /// What is wrong.
        detail: String,
    },
}

/// Reads 32 bytes from a key file, checking its mode.
pub fn read_key_file(path: &Path) -> Result<[u8; 32], KeyFileError> {
    let io = |source| KeyFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyFileError::Permissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    let text = std::fs::read_to_string(path).map_err(io)?;
    let mut out = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut out).map_err(|_| KeyFileError::Content {
        path: path.to_path_buf(),
        detail: String::from("does not hold 64 hex digits"),
    })?;
    Ok(out)
}

/// Creates a key file holding `bytes` (mode 0600, never overwriting).
pub fn write_key_file(path: &Path, bytes: &[u8; 32]) -> Result<(), KeyFileError> {
    let io = |source| KeyFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    let text = format!("{}\n", hex::encode(bytes));
    if let Err(e) = file
        .write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
    {
        let _ = std::fs::remove_file(path);
        return Err(io(e));
    }
    Ok(())
}

/// 32 random bytes from the OS.
pub fn random_32() -> Result<[u8; 32], KeyFileError> {
    let mut out = [0u8; 32];
    getrandom::fill(&mut out).map_err(|e| KeyFileError::Random(e.to_string()))?;
    Ok(out)
}

/// Creates a new gateway Ed25519 seed file.
pub fn create_gateway_key(path: &Path) -> Result<(), KeyFileError> {
    write_key_file(path, &random_32()?)
}

/// The gateway's checkpoint signer for `origin` from its seed file.
pub fn load_gateway_signer(path: &Path, origin: &str) -> Result<NoteSigner, KeyFileError> {
    let seed = read_key_file(path)?;
    NoteSigner::from_seed(origin, &seed).map_err(|e| KeyFileError::Content {
        path: path.to_path_buf(),
        detail: format!("origin {origin:?} is not a valid key name: {e}"),
    })
}

/// Creates a new operator P-256 key file and returns the key.
pub fn create_operator_key(path: &Path) -> Result<SecretKey, KeyFileError> {
    loop {
        let bytes = random_32()?;
        if let Ok(key) = SecretKey::from_slice(&bytes) {
            write_key_file(path, &bytes)?;
            return Ok(key);
        }
    }
}

/// Loads an operator P-256 key file.
pub fn load_operator_key(path: &Path) -> Result<SecretKey, KeyFileError> {
    let bytes = read_key_file(path)?;
    SecretKey::from_slice(&bytes).map_err(|e| KeyFileError::Content {
        path: path.to_path_buf(),
        detail: format!("not a P-256 key: {e}"),
    })
}

/// Parses a 65-byte uncompressed SEC1 public key from hex.
pub fn parse_public_hex(text: &str) -> Result<PublicKey, String> {
    let bytes = hex::decode(text.trim()).map_err(|e| format!("not hex: {e}"))?;
    PublicKey::from_sec1_uncompressed(&bytes).map_err(|e| e.to_string())
}

/// The trusted operators of a configuration's `keys.operators` map.
pub fn trusted_operators(
    configured: &BTreeMap<String, String>,
) -> Result<BTreeMap<OperatorName, PublicKey>, KeyFileError> {
    configured
        .iter()
        .map(|(name, key)| {
            let bad = |detail: String| KeyFileError::Operator {
                name: name.clone(),
                detail,
            };
            let op = OperatorName::new(name.strip_prefix("operator:").unwrap_or(name))
                .map_err(|e| bad(e.to_string()))?;
            Ok((op, parse_public_hex(key).map_err(bad)?))
        })
        .collect()
}
