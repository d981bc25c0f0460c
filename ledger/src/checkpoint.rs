//! C2SP `tlog-checkpoint` bodies, and their signing and opening as Ed25519 signed notes.
//!
//! Body: `{origin}\n{tree size}\n{base64 root}\n` (SPEC §5), with the root a BLAKE3 RFC 9162
//! tree hash. We never write extension lines and refuse them when reading: nothing in our system
//! reads them, and a line no monitor audits should not ride along under the log's signature.
//! The checkpoint key's name equals the origin, so the origin obeys the note key-name rules
//! (non-empty, no Unicode spaces, no `+`, no control characters).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use prov_schemas::Hash32;

use crate::note::{KeyError, NoteError, NoteSigner, SignedNote, VerifierKey, validate_key_name};
use crate::text::{FieldError, b64_decode, b64_encode, parse_decimal};

/// A checkpoint body is malformed, or its signed note does not open under the trusted key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// The origin is not a valid key name.
    #[error("invalid origin: {0}")]
    Origin(KeyError),
    /// The body does not end in a newline.
    #[error("checkpoint body does not end in a newline")]
    NotTerminated,
    /// Fewer than the three lines origin, size, root.
    #[error("checkpoint body has {got} lines, want 3")]
    TooFewLines {
        /// Lines found.
        got: usize,
    },
    /// Extension lines after the root (SPEC §5 allows none).
    #[error("checkpoint body has {count} extension lines, none are allowed")]
    ExtensionLines {
        /// How many.
        count: usize,
    },
    /// The size line is not ASCII decimal digits.
    #[error("tree size {got:?} is not a decimal number")]
    SizeNotDecimal {
        /// The line as found.
        got: String,
    },
    /// The size line has a leading zero.
    #[error("tree size {got:?} has a leading zero")]
    SizeLeadingZero {
        /// The line as found.
        got: String,
    },
    /// The size does not fit in 64 bits.
    #[error("tree size {got:?} overflows 64 bits")]
    SizeOverflow {
        /// The line as found.
        got: String,
    },
    /// The root line is not canonical padded base64.
    #[error("root {got:?} is not canonical base64")]
    RootBase64 {
        /// The line as found.
        got: String,
    },
    /// The root does not decode to 32 bytes.
    #[error("root has {got} bytes, want 32")]
    RootLength {
        /// Bytes decoded.
        got: usize,
    },
    /// The signed note is malformed or its signature does not verify.
    #[error("checkpoint note: {0}")]
    Note(#[from] NoteError),
    /// The checkpoint's origin is not the key's name (SPEC §5: they are equal).
    #[error("checkpoint origin {origin:?} is not the key name {key_name:?}")]
    OriginMismatch {
        /// The body's origin.
        origin: String,
        /// The key's name.
        key_name: String,
    },
}

/// A log's signed statement of its size and root: the body of a checkpoint note.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Checkpoint {
    origin: String,
    size: u64,
    root: Hash32,
}

impl Checkpoint {
    /// A checkpoint for `origin` at `size` leaves with tree hash `root`.
    ///
    /// # Errors
    /// [`CheckpointError::Origin`] for an origin that is not a valid key name.
    pub fn new(origin: &str, size: u64, root: Hash32) -> Result<Checkpoint, CheckpointError> {
        validate_key_name(origin).map_err(CheckpointError::Origin)?;
        Ok(Checkpoint {
            origin: origin.into(),
            size,
            root,
        })
    }

    /// The log's origin.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The tree size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The tree hash at that size.
    pub fn root(&self) -> Hash32 {
        self.root
    }

    /// The note text `{origin}\n{size}\n{base64 root}\n`.
    pub fn body(&self) -> String {
        alloc::format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            b64_encode(&self.root.0)
        )
    }

    /// Parses a checkpoint body strictly (exactly three lines, canonical fields).
    ///
    /// # Errors
    /// Any malformation, as a [`CheckpointError`] naming it.
    pub fn parse(body: &str) -> Result<Checkpoint, CheckpointError> {
        let content = body
            .strip_suffix('\n')
            .ok_or(CheckpointError::NotTerminated)?;
        let lines: Vec<&str> = content.split('\n').collect();
        let [origin, size, root] = lines.as_slice() else {
            return Err(if lines.len() < 3 {
                CheckpointError::TooFewLines { got: lines.len() }
            } else {
                CheckpointError::ExtensionLines {
                    count: lines.len() - 3,
                }
            });
        };
        validate_key_name(origin).map_err(CheckpointError::Origin)?;
        let size = parse_decimal(size).map_err(|e| {
            let got = String::from(*size);
            match e {
                FieldError::LeadingZero => CheckpointError::SizeLeadingZero { got },
                FieldError::Overflow => CheckpointError::SizeOverflow { got },
                FieldError::NotDecimal | FieldError::Base64 => {
                    CheckpointError::SizeNotDecimal { got }
                }
            }
        })?;
        let root_bytes = b64_decode(root).map_err(|_| CheckpointError::RootBase64 {
            got: String::from(*root),
        })?;
        let root = Hash32::from_slice(&root_bytes).map_err(|_| CheckpointError::RootLength {
            got: root_bytes.len(),
        })?;
        Ok(Checkpoint {
            origin: String::from(*origin),
            size,
            root,
        })
    }

    /// Signs the checkpoint with the log's key, whose name must be the origin.
    ///
    /// # Errors
    /// [`CheckpointError::OriginMismatch`].
    pub fn sign(&self, signer: &NoteSigner) -> Result<SignedNote, CheckpointError> {
        if signer.name() != self.origin {
            return Err(CheckpointError::OriginMismatch {
                origin: self.origin.clone(),
                key_name: signer.name().into(),
            });
        }
        Ok(signer.sign(&self.body())?)
    }

    /// Parses a signed checkpoint note, verifies it under the trusted log key, and returns the
    /// checkpoint. Lines from other keys (witnesses) are ignored.
    ///
    /// # Errors
    /// [`CheckpointError::Note`] (malformed note, missing or bad signature), a malformed body,
    /// [`CheckpointError::OriginMismatch`].
    pub fn open(note: &str, key: &VerifierKey) -> Result<Checkpoint, CheckpointError> {
        Checkpoint::open_note(&SignedNote::parse(note)?, key)
    }

    /// As [`Checkpoint::open`], for an already parsed note.
    ///
    /// # Errors
    /// As [`Checkpoint::open`].
    pub fn open_note(note: &SignedNote, key: &VerifierKey) -> Result<Checkpoint, CheckpointError> {
        note.verify(key)?;
        let checkpoint = Checkpoint::parse(note.text())?;
        if checkpoint.origin != key.name() {
            return Err(CheckpointError::OriginMismatch {
                origin: checkpoint.origin,
                key_name: key.name().into(),
            });
        }
        Ok(checkpoint)
    }
}

impl fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.body())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str =
        "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";

    #[test]
    fn c2sp_example_round_trips() {
        let c = Checkpoint::parse(BODY).unwrap();
        assert_eq!(c.origin(), "example.com/behind-the-sofa");
        assert_eq!(c.size(), 20852163);
        assert_eq!(c.body(), BODY);
    }

    #[test]
    fn strictness() {
        let root = "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=";
        type Check = fn(&CheckpointError) -> bool;
        let cases: [(String, Check); 11] = [
            (BODY.trim_end().into(), |e| {
                matches!(e, CheckpointError::NotTerminated)
            }),
            (alloc::format!("{BODY}ext\n"), |e| {
                matches!(e, CheckpointError::ExtensionLines { count: 1 })
            }),
            ("o\n1\n".into(), |e| {
                matches!(e, CheckpointError::TooFewLines { got: 2 })
            }),
            (alloc::format!("\n1\n{root}\n"), |e| {
                matches!(e, CheckpointError::Origin(KeyError::EmptyName))
            }),
            (alloc::format!("a b\n1\n{root}\n"), |e| {
                matches!(e, CheckpointError::Origin(KeyError::NameChar { .. }))
            }),
            (alloc::format!("o\n01\n{root}\n"), |e| {
                matches!(e, CheckpointError::SizeLeadingZero { .. })
            }),
            (alloc::format!("o\n-1\n{root}\n"), |e| {
                matches!(e, CheckpointError::SizeNotDecimal { .. })
            }),
            (alloc::format!("o\n99999999999999999999\n{root}\n"), |e| {
                matches!(e, CheckpointError::SizeOverflow { .. })
            }),
            (
                "o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I\n".into(),
                |e| matches!(e, CheckpointError::RootBase64 { .. }),
            ),
            ("o\n1\nAAAA\n".into(), |e| {
                matches!(e, CheckpointError::RootLength { got: 3 })
            }),
            (alloc::format!("o\n1\n{root}\r\n"), |e| {
                matches!(e, CheckpointError::RootBase64 { .. })
            }),
        ];
        for (body, want) in cases {
            let err = Checkpoint::parse(&body).unwrap_err();
            assert!(want(&err), "{body:?}: {err:?}");
        }
    }

    #[test]
    fn sign_and_open() {
        let signer = NoteSigner::from_seed("factory-a.example/line-logs/1", &[1; 32]).unwrap();
        let key = signer.verifier_key().unwrap();
        let c = Checkpoint::new(signer.name(), 3, Hash32([5; 32])).unwrap();
        let note = c.sign(&signer).unwrap().encode();
        assert_eq!(Checkpoint::open(&note, &key), Ok(c.clone()));
        let other = NoteSigner::from_seed("other.example/log", &[1; 32]).unwrap();
        assert!(matches!(
            c.sign(&other),
            Err(CheckpointError::OriginMismatch { .. })
        ));
        // A body signed under a key whose name is not the origin.
        let wrong = other.sign(&c.body()).unwrap().encode();
        assert!(matches!(
            Checkpoint::open(&wrong, &other.verifier_key().unwrap()),
            Err(CheckpointError::OriginMismatch { .. })
        ));
    }
}
