//! Checked types: the only way a message becomes something the rest of the system may trust.
//!
//! ARCHITECTURE: "only checked types cross from the verify step into the sequencer". A
//! [`CheckedEvent`] or [`CheckedRegistryRecord`] has no public constructor; the one way to get
//! one is [`verify_event`] / [`verify_registry_record`], which run every check of SPEC §2/§4 in
//! order, cheapest first, so hostile input costs as little as possible and the signature (the
//! expensive step) is checked last:
//!
//! 1. COSE envelope: size, exact layout, kid syntax, signature range and low S
//!    ([`crate::cose::CoseSign1::parse`]);
//! 2. the kid is of the right kind (a device id for events, `operator:{name}` of a trusted
//!    operator for registry records);
//! 3. the payload is deterministic CBOR of a valid event / record;
//! 4. for events, `prov:device` equals the kid;
//! 5. the ES256 signature verifies under the key.
//!
//! Which key belongs to a device is the registry's business (the caller looks it up with
//! [`peek_kid`] first); this module only checks the message against the key it is given.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::Hash32;
use crate::cose::{CoseError, CoseSign1, VerifyBackend};
use crate::event::{Event, EventError};
use crate::keys::{DeviceId, Kid, OperatorName, PublicKey};
use crate::registry::{RegistryError, RegistryRecord};

/// Why a message did not verify.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VerifyError {
    /// The COSE envelope is malformed or the signature does not verify.
    #[error("envelope: {0}")]
    Cose(#[from] CoseError),
    /// The payload is not a valid event.
    #[error("event: {0}")]
    Event(#[from] EventError),
    /// The payload is not a valid registry record.
    #[error("registry record: {0}")]
    Registry(#[from] RegistryError),
    /// An event signed with an operator kid.
    #[error("kid {kid} is not a device id")]
    NotADevice {
        /// The kid found.
        kid: Kid,
    },
    /// A registry record signed with a device kid.
    #[error("kid {kid} is not an operator kid")]
    NotAnOperator {
        /// The kid found.
        kid: Kid,
    },
    /// A registry record signed by an operator this verifier does not trust.
    #[error("operator {operator} is not a trusted operator")]
    UnknownOperator {
        /// The operator named by the kid.
        operator: OperatorName,
    },
    /// The payload's `prov:device` is not the kid that signed it. (Boxed: two inline device
    /// ids would make every `Result<_, VerifyError>` 130 bytes larger.)
    #[error("payload prov:device {device} differs from the kid {kid}")]
    KidMismatch {
        /// The signer (kid).
        kid: Box<DeviceId>,
        /// The payload's `prov:device`.
        device: Box<DeviceId>,
    },
}

/// A device event whose envelope, payload and signature have been verified.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedEvent {
    message: Vec<u8>,
    hash: Hash32,
    device: DeviceId,
    event: Event,
}

impl CheckedEvent {
    /// The message exactly as received (what the log stores).
    pub fn message(&self) -> &[u8] {
        &self.message
    }

    /// BLAKE3 of the whole message: the next event's `prov:prev`, and the hash in reject lines.
    pub fn hash(&self) -> Hash32 {
        self.hash
    }

    /// The signing device (kid and `prov:device`, which are equal).
    pub fn device(&self) -> &DeviceId {
        &self.device
    }

    /// The decoded, validated event.
    pub fn event(&self) -> &Event {
        &self.event
    }

    /// The event's `prov:seq`.
    pub fn seq(&self) -> u64 {
        self.event.seq
    }

    /// The event's `prov:prev`.
    pub fn prev(&self) -> Hash32 {
        self.event.prev
    }

    /// The message bytes, giving up the rest.
    pub fn into_message(self) -> Vec<u8> {
        self.message
    }
}

/// A registry record whose envelope, payload, operator and signature have been verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedRegistryRecord {
    message: Vec<u8>,
    hash: Hash32,
    operator: OperatorName,
    record: RegistryRecord,
}

impl CheckedRegistryRecord {
    /// The message exactly as received.
    pub fn message(&self) -> &[u8] {
        &self.message
    }

    /// BLAKE3 of the whole message.
    pub fn hash(&self) -> Hash32 {
        self.hash
    }

    /// The operator that signed it.
    pub fn operator(&self) -> &OperatorName {
        &self.operator
    }

    /// The decoded record.
    pub fn record(&self) -> &RegistryRecord {
        &self.record
    }

    /// The message bytes, giving up the rest.
    pub fn into_message(self) -> Vec<u8> {
        self.message
    }
}

/// The kid of a message, after checking only its envelope (not its payload, not its
/// signature): for looking up the key to verify it with. Trust nothing else about the message
/// until it has been verified.
pub fn peek_kid(message: &[u8]) -> Result<Kid, CoseError> {
    CoseSign1::parse(message).map(|m| *m.kid())
}

/// Verifies a device event (SPEC §2) against the key registered for its kid.
pub fn verify_event<B: VerifyBackend + ?Sized>(
    message: &[u8],
    key: &PublicKey,
    backend: &B,
) -> Result<CheckedEvent, VerifyError> {
    let cose = CoseSign1::parse(message)?;
    let kid = *cose.kid();
    let Kid::Device(signer) = kid else {
        return Err(VerifyError::NotADevice { kid });
    };
    let event = Event::decode_payload(cose.payload())?;
    if event.device != signer {
        return Err(VerifyError::KidMismatch {
            kid: Box::new(signer),
            device: Box::new(event.device),
        });
    }
    cose.verify(key, backend)?;
    Ok(CheckedEvent {
        message: message.to_vec(),
        hash: Hash32::blake3(message),
        device: signer,
        event,
    })
}

/// The operator keys a verifier trusts, from its own configuration (never from the message or a
/// bundle, SPEC §6).
pub trait TrustedOperators {
    /// The key of `operator`, if trusted.
    fn operator_key(&self, operator: &OperatorName) -> Option<&PublicKey>;
}

impl TrustedOperators for [(OperatorName, PublicKey)] {
    fn operator_key(&self, operator: &OperatorName) -> Option<&PublicKey> {
        self.iter().find(|(n, _)| n == operator).map(|(_, k)| k)
    }
}

impl<const N: usize> TrustedOperators for [(OperatorName, PublicKey); N] {
    fn operator_key(&self, operator: &OperatorName) -> Option<&PublicKey> {
        self.as_slice().operator_key(operator)
    }
}

impl TrustedOperators for Vec<(OperatorName, PublicKey)> {
    fn operator_key(&self, operator: &OperatorName) -> Option<&PublicKey> {
        self.as_slice().operator_key(operator)
    }
}

impl TrustedOperators for BTreeMap<OperatorName, PublicKey> {
    fn operator_key(&self, operator: &OperatorName) -> Option<&PublicKey> {
        self.get(operator)
    }
}

#[cfg(feature = "std")]
impl<S: std::hash::BuildHasher> TrustedOperators
    for std::collections::HashMap<OperatorName, PublicKey, S>
{
    fn operator_key(&self, operator: &OperatorName) -> Option<&PublicKey> {
        self.get(operator)
    }
}

/// Verifies a registry record (SPEC §4): kid `operator:{name}` of an operator in `trusted`,
/// a valid record payload, and the signature under that operator's key.
pub fn verify_registry_record<T: TrustedOperators + ?Sized, B: VerifyBackend + ?Sized>(
    message: &[u8],
    trusted: &T,
    backend: &B,
) -> Result<CheckedRegistryRecord, VerifyError> {
    let cose = CoseSign1::parse(message)?;
    let kid = *cose.kid();
    let Kid::Operator(operator) = kid else {
        return Err(VerifyError::NotAnOperator { kid });
    };
    let key = trusted
        .operator_key(&operator)
        .ok_or(VerifyError::UnknownOperator { operator })?;
    let record = RegistryRecord::decode_payload(cose.payload())?;
    cose.verify(key, backend)?;
    Ok(CheckedRegistryRecord {
        message: message.to_vec(),
        hash: Hash32::blake3(message),
        operator,
        record,
    })
}
