//! Access tokens for the auditor and operator endpoints.
//!
//! Consumers need no token: a product's own bundle is public (it reveals nothing about other
//! items, SPEC §2's disclosure rule). Lineage, search, export, the device registry and the
//! quarantine reveal the whole factory, so they need a bearer token with a scope that allows
//! them; the answer without one is 401, with a token of too small a scope 403, and neither
//! carries any data.
//!
//! Tokens are random 256-bit secrets shown once, when created. The server keeps only their
//! BLAKE3 hash (a stolen token file grants nothing), with a name, a scope and a revoked flag,
//! in `tokens.json` in the data directory, rewritten atomically (temp file, fsync, rename,
//! fsync of the directory) so a crash leaves either the old or the new set. Revocation takes
//! effect at once: the service re-reads the file when it changes.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

/// What a token may do. Ordered: a larger scope includes the smaller ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// A product's own bundle (what everyone may see anyway).
    Consumer,
    /// Lineage, search, EPCIS export, the registry and the quarantine, read-only.
    Auditor,
    /// Everything an auditor may, and the operator's own tools.
    Operator,
}

impl Scope {
    /// The scope's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Consumer => "consumer",
            Scope::Auditor => "auditor",
            Scope::Operator => "operator",
        }
    }

    /// Parses a scope name.
    ///
    /// # Errors
    /// [`AuthError::UnknownScope`].
    pub fn parse(s: &str) -> Result<Scope, AuthError> {
        match s {
            "consumer" => Ok(Scope::Consumer),
            "auditor" => Ok(Scope::Auditor),
            "operator" => Ok(Scope::Operator),
            _ => Err(AuthError::UnknownScope(s.into())),
        }
    }
}

/// Why a token operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Reading or writing the token file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The token file does not parse.
    #[error("{path}: not a token file: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A scope name we do not know.
    #[error("unknown scope {0:?} (want consumer, auditor or operator)")]
    UnknownScope(String),
    /// A token name already in use.
    #[error("a token named {0:?} exists")]
    Exists(String),
    /// No token of that name.
    #[error("no token named {0:?}")]
    NotFound(String),
    /// A token name outside `[A-Za-z0-9._-]{1,64}`.
    #[error("bad token name {0:?}: use 1 to 64 of A-Z a-z 0-9 . _ -")]
    BadName(String),
    /// No randomness from the OS.
    #[error("no randomness: {0}")]
    Random(String),
}

/// One stored token (never the secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// The operator's name for it.
    pub name: String,
    /// What it may do.
    pub scope: Scope,
    /// BLAKE3 of the token text, hex.
    pub hash: String,
    /// Unix seconds when created.
    pub created: u64,
    /// Whether it was revoked.
    #[serde(default)]
    pub revoked: bool,
}

/// What a request presented, judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// A valid token of at least the needed scope.
    Granted,
    /// No token, an unknown one or a revoked one: 401.
    Unauthenticated,
    /// A valid token of too small a scope: 403.
    Forbidden,
}

/// The token set of a data directory.
#[derive(Debug)]
pub struct Tokens {
    path: PathBuf,
    cache: RwLock<(Option<SystemTime>, Vec<TokenRecord>)>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AuthError + '_ {
    move |source| AuthError::Io {
        path: path.to_owned(),
        source,
    }
}

fn hash_hex(token: &str) -> String {
    blake3::hash(token.as_bytes()).to_hex().to_string()
}

impl Tokens {
    /// The token file of `data_dir` (`tokens.json`; absent means no tokens).
    pub fn open(data_dir: &Path) -> Tokens {
        Tokens {
            path: data_dir.join("tokens.json"),
            cache: RwLock::new((None, Vec::new())),
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every record, as stored.
    ///
    /// # Errors
    /// [`AuthError::Io`] or [`AuthError::Corrupt`].
    pub fn list(&self) -> Result<Vec<TokenRecord>, AuthError> {
        match fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| AuthError::Corrupt {
                path: self.path.clone(),
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(io(&self.path)(e)),
        }
    }

    fn store(&self, records: &[TokenRecord]) -> Result<(), AuthError> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let tmp = self.path.with_extension("json.tmp");
        let body = serde_json::to_vec_pretty(records).map_err(|e| AuthError::Corrupt {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        let mut f = fs::File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(&body).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        drop(f);
        fs::rename(&tmp, &self.path).map_err(io(&self.path))?;
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir))?;
        Ok(())
    }

    /// Creates a token; returns its secret text (shown once, never stored).
    ///
    /// # Errors
    /// [`AuthError::BadName`], [`AuthError::Exists`], I/O.
    pub fn create(&self, name: &str, scope: Scope) -> Result<String, AuthError> {
        let name_ok = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !name_ok {
            return Err(AuthError::BadName(name.into()));
        }
        let mut records = self.list()?;
        if records.iter().any(|r| r.name == name) {
            return Err(AuthError::Exists(name.into()));
        }
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).map_err(|e| AuthError::Random(e.to_string()))?;
        let token = format!("prov_{}", URL_SAFE_NO_PAD.encode(secret));
        let created = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        records.push(TokenRecord {
            name: name.into(),
            scope,
            hash: hash_hex(&token),
            created,
            revoked: false,
        });
        self.store(&records)?;
        Ok(token)
    }

    /// Revokes the token `name`.
    ///
    /// # Errors
    /// [`AuthError::NotFound`], I/O.
    pub fn revoke(&self, name: &str) -> Result<(), AuthError> {
        let mut records = self.list()?;
        let r = records
            .iter_mut()
            .find(|r| r.name == name)
            .ok_or_else(|| AuthError::NotFound(name.into()))?;
        r.revoked = true;
        self.store(&records)
    }

    /// The current records, re-read when the file changed (so `prov token revoke` on a running
    /// gateway takes effect at once). A file that cannot be read grants nothing.
    fn current(&self) -> Vec<TokenRecord> {
        let modified = fs::metadata(&self.path).and_then(|m| m.modified()).ok();
        {
            let cache = self
                .cache
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if cache.0.is_some() && cache.0 == modified {
                return cache.1.clone();
            }
        }
        let records = self.list().unwrap_or_else(|e| {
            tracing::error!("token file unreadable, granting nothing: {e}");
            Vec::new()
        });
        let mut cache = self
            .cache
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *cache = (modified, records.clone());
        records
    }

    /// Judges an `Authorization` header value against the scope an endpoint needs.
    pub fn check(&self, authorization: Option<&str>, need: Scope) -> Access {
        let Some(token) = authorization.and_then(|h| h.strip_prefix("Bearer ")) else {
            return Access::Unauthenticated;
        };
        let hash = hash_hex(token.trim());
        match self
            .current()
            .into_iter()
            .find(|r| !r.revoked && r.hash == hash)
        {
            None => Access::Unauthenticated,
            Some(r) if r.scope >= need => Access::Granted,
            Some(_) => Access::Forbidden,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_revocation_and_storage() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = Tokens::open(dir.path());
        assert_eq!(tokens.check(None, Scope::Auditor), Access::Unauthenticated);
        let auditor = tokens.create("customs-1", Scope::Auditor).unwrap();
        let consumer = tokens.create("phone", Scope::Consumer).unwrap();
        assert!(matches!(
            tokens.create("phone", Scope::Operator),
            Err(AuthError::Exists(_))
        ));
        assert!(matches!(
            tokens.create("bad name", Scope::Operator),
            Err(AuthError::BadName(_))
        ));
        let bearer = |t: &str| format!("Bearer {t}");
        assert_eq!(
            tokens.check(Some(&bearer(&auditor)), Scope::Auditor),
            Access::Granted
        );
        assert_eq!(
            tokens.check(Some(&bearer(&consumer)), Scope::Auditor),
            Access::Forbidden
        );
        assert_eq!(
            tokens.check(Some(&bearer("prov_guess")), Scope::Consumer),
            Access::Unauthenticated
        );
        assert_eq!(
            tokens.check(Some(&auditor), Scope::Auditor),
            Access::Unauthenticated
        );
        // Only hashes are stored.
        let file = fs::read_to_string(tokens.path()).unwrap();
        assert!(!file.contains(&auditor[5..]));
        tokens.revoke("customs-1").unwrap();
        // A second handle (another process) sees the revocation.
        let again = Tokens::open(dir.path());
        assert_eq!(
            again.check(Some(&bearer(&auditor)), Scope::Auditor),
            Access::Unauthenticated
        );
        assert!(matches!(
            tokens.revoke("nobody"),
            Err(AuthError::NotFound(_))
        ));
        fs::write(tokens.path(), b"{not json").unwrap();
        assert!(matches!(tokens.list(), Err(AuthError::Corrupt { .. })));
        assert_eq!(
            Tokens::open(dir.path()).check(Some(&bearer(&consumer)), Scope::Consumer),
            Access::Unauthenticated
        );
    }
}
