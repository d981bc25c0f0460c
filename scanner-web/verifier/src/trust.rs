//! The keys a verifier trusts: pinned in the page's own build configuration, in the shape the
//! gateway publishes at `GET /api/v1/keys` (SPEC §6), and never taken from a bundle.
//!
//! ```json
//! {"gateway_key": "<verifier key string, SPEC §5>",
//!  "operator_keys": {"operator:{name}": "<base64 65-byte uncompressed SEC1>"}}
//! ```

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use prov_ledger::note::{KeyKind, VerifierKey};
use prov_schemas::checked::TrustedOperators;
use prov_schemas::keys::{Kid, OperatorName, PublicKey};
use serde::Deserialize;

/// The trusted gateway (checkpoint) key and operator (registry) keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trust {
    gateway_key: VerifierKey,
    operators: Vec<(OperatorName, PublicKey)>,
}

/// The trust configuration could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustError {
    /// Not JSON of the `/api/v1/keys` shape.
    Json(String),
    /// `gateway_key` is not a valid verifier key string.
    GatewayKey(String),
    /// `gateway_key` is a valid key of another kind (a witness cosignature key, type 0x04):
    /// checkpoints are signed with Ed25519 (type 0x01).
    GatewayKeyKind,
    /// A name in `operator_keys` is not `operator:{name}`.
    OperatorKid(String),
    /// An operator key is not base64 of a 65-byte uncompressed SEC1 P-256 key.
    OperatorKey {
        /// The operator kid.
        kid: String,
        /// What is wrong.
        reason: String,
    },
}

impl fmt::Display for TrustError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrustError::Json(e) => write!(f, "not a keys object: {e}"),
            TrustError::GatewayKey(e) => write!(f, "gateway_key: {e}"),
            TrustError::GatewayKeyKind => {
                f.write_str("gateway_key: not an Ed25519 checkpoint key (type 0x01)")
            }
            TrustError::OperatorKid(kid) => {
                write!(f, "operator_keys: {kid:?} is not an operator:{{name}} kid")
            }
            TrustError::OperatorKey { kid, reason } => {
                write!(f, "operator_keys[{kid:?}]: {reason}")
            }
        }
    }
}

#[derive(Deserialize)]
struct TrustJson {
    gateway_key: String,
    operator_keys: BTreeMap<String, String>,
}

impl Trust {
    /// A trust configuration from already parsed keys.
    pub fn new(gateway_key: VerifierKey, operators: Vec<(OperatorName, PublicKey)>) -> Trust {
        Trust {
            gateway_key,
            operators,
        }
    }

    /// Reads the `/api/v1/keys` JSON shape, strictly: every key must parse.
    ///
    /// # Errors
    /// [`TrustError`] naming the first key that does not.
    pub fn from_json(json: &[u8]) -> Result<Trust, TrustError> {
        let raw: TrustJson =
            serde_json::from_slice(json).map_err(|e| TrustError::Json(e.to_string()))?;
        let gateway_key = VerifierKey::parse(&raw.gateway_key)
            .map_err(|e| TrustError::GatewayKey(e.to_string()))?;
        if gateway_key.kind() != KeyKind::Ed25519 {
            return Err(TrustError::GatewayKeyKind);
        }
        let mut operators = Vec::with_capacity(raw.operator_keys.len());
        for (kid, b64) in raw.operator_keys {
            let Ok(Kid::Operator(name)) = Kid::new(&kid) else {
                return Err(TrustError::OperatorKid(kid));
            };
            let bad = |reason: String| TrustError::OperatorKey {
                kid: kid.clone(),
                reason,
            };
            let bytes = STANDARD
                .decode(b64.as_bytes())
                .map_err(|_| bad("not base64".into()))?;
            let key = PublicKey::from_sec1_uncompressed(&bytes).map_err(|e| bad(e.to_string()))?;
            operators.push((name, key));
        }
        Ok(Trust {
            gateway_key,
            operators,
        })
    }

    /// The trusted checkpoint key.
    pub fn gateway_key(&self) -> &VerifierKey {
        &self.gateway_key
    }

    /// The trusted operator keys.
    pub fn operators(&self) -> &[(OperatorName, PublicKey)] {
        &self.operators
    }
}

impl TrustedOperators for Trust {
    fn operator_key(&self, operator: &OperatorName) -> Option<&PublicKey> {
        self.operators.as_slice().operator_key(operator)
    }
}
