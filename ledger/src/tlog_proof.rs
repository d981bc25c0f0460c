//! C2SP `tlog-proof`: an offline-verifiable proof that one entry is in a log (SPEC §5, §6).
//!
//! ```text
//! c2sp.org/tlog-proof@v1
//! index 17
//! <base64 hash>            (the RFC 9162 inclusion proof, leaf's sibling first)
//! ...
//!
//! <signed checkpoint note, verbatim>
//! ```
//!
//! We never write the optional `extra` line; parsing accepts one (as C2SP allows) and exposes
//! its bytes, which are unauthenticated and must not be trusted. The embedded checkpoint is kept
//! verbatim, because a bundle requires it byte-identical to the bundle's own checkpoint.

use alloc::string::String;
use alloc::vec::Vec;

use prov_schemas::Hash32;

use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::hasher::{Blake3Hasher, LogHasher};
use crate::merkle::{MAX_INCLUSION_PROOF_LEN, MerkleError, verify_inclusion};
use crate::note::{SignedNote, VerifierKey};
use crate::text::{FieldError, b64_decode, b64_encode, parse_decimal};

/// The first line of every tlog-proof.
pub const TLOG_PROOF_HEADER: &str = "c2sp.org/tlog-proof@v1";

/// A tlog-proof is malformed, or does not prove inclusion under the trusted key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlogProofError {
    /// The first line is not `c2sp.org/tlog-proof@v1`.
    #[error("first line is not {TLOG_PROOF_HEADER:?}")]
    Header,
    /// The text ends before the blank line and the checkpoint.
    #[error("proof text ends early (no blank line before the checkpoint)")]
    Truncated,
    /// The `extra` line's data is not canonical padded base64.
    #[error("extra data is not canonical base64")]
    ExtraBase64,
    /// The `extra` line carries no data (C2SP: omit the line instead).
    #[error("extra line carries no data")]
    ExtraEmpty,
    /// The index line is missing or does not start with `index `.
    #[error("missing `index` line")]
    IndexLine,
    /// The index is not decimal without leading zeros, or overflows.
    #[error("index {got:?} is not a canonical decimal number")]
    IndexSyntax {
        /// The field as found.
        got: String,
    },
    /// A proof hash line is not canonical padded base64.
    #[error("proof hash {position} is not canonical base64")]
    HashBase64 {
        /// 0-based position in the proof.
        position: usize,
    },
    /// A proof hash does not decode to 32 bytes.
    #[error("proof hash {position} has {got} bytes, want 32")]
    HashLength {
        /// 0-based position in the proof.
        position: usize,
        /// Bytes decoded.
        got: usize,
    },
    /// More proof hashes than any tree of `u64` size needs.
    #[error("more than {max} proof hashes")]
    TooManyHashes {
        /// The limit.
        max: usize,
    },
    /// The embedded checkpoint is malformed or not signed by the trusted key.
    #[error("embedded checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
    /// The inclusion proof does not hold against the checkpoint.
    #[error("inclusion: {0}")]
    Merkle(#[from] MerkleError),
}

/// A parsed tlog-proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlogProof {
    extra: Option<Vec<u8>>,
    index: u64,
    hashes: Vec<Hash32>,
    checkpoint: String,
}

impl TlogProof {
    /// A proof of the entry at `index`, with its inclusion proof and the signed checkpoint note
    /// it holds against. The note is checked for well-formedness, not verified.
    ///
    /// # Errors
    /// [`TlogProofError::TooManyHashes`]; [`TlogProofError::Checkpoint`] for a malformed note.
    pub fn new(
        index: u64,
        hashes: Vec<Hash32>,
        checkpoint_note: String,
    ) -> Result<TlogProof, TlogProofError> {
        if hashes.len() > MAX_INCLUSION_PROOF_LEN {
            return Err(TlogProofError::TooManyHashes {
                max: MAX_INCLUSION_PROOF_LEN,
            });
        }
        SignedNote::parse(&checkpoint_note).map_err(CheckpointError::Note)?;
        Ok(TlogProof {
            extra: None,
            index,
            hashes,
            checkpoint: checkpoint_note,
        })
    }

    /// The unauthenticated `extra` data, if the proof carried any. Never trust it.
    pub fn extra(&self) -> Option<&[u8]> {
        self.extra.as_deref()
    }

    /// The entry's leaf index.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// The inclusion proof hashes.
    pub fn hashes(&self) -> &[Hash32] {
        &self.hashes
    }

    /// The embedded signed checkpoint note, verbatim.
    pub fn checkpoint_note(&self) -> &str {
        &self.checkpoint
    }

    /// The proof's text form.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(64 + 45 * self.hashes.len() + self.checkpoint.len());
        out.push_str(TLOG_PROOF_HEADER);
        out.push('\n');
        if let Some(extra) = &self.extra {
            out.push_str("extra ");
            out.push_str(&b64_encode(extra));
            out.push('\n');
        }
        out.push_str(&alloc::format!("index {}\n", self.index));
        for h in &self.hashes {
            out.push_str(&b64_encode(&h.0));
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&self.checkpoint);
        out
    }

    /// Parses a tlog-proof strictly; the embedded note is checked for well-formedness only.
    ///
    /// # Errors
    /// Any malformation, as a [`TlogProofError`] naming it.
    pub fn parse(text: &str) -> Result<TlogProof, TlogProofError> {
        let mut rest = text
            .strip_prefix(TLOG_PROOF_HEADER)
            .and_then(|r| r.strip_prefix('\n'))
            .ok_or(TlogProofError::Header)?;
        let mut line = next_line(&mut rest)?;
        let mut extra = None;
        if let Some(b64) = line.strip_prefix("extra ") {
            let data = b64_decode(b64).map_err(|_| TlogProofError::ExtraBase64)?;
            if data.is_empty() {
                return Err(TlogProofError::ExtraEmpty);
            }
            extra = Some(data);
            line = next_line(&mut rest)?;
        }
        let index_text = line
            .strip_prefix("index ")
            .ok_or(TlogProofError::IndexLine)?;
        let index =
            parse_decimal(index_text).map_err(|_: FieldError| TlogProofError::IndexSyntax {
                got: index_text.into(),
            })?;
        let mut hashes = Vec::new();
        loop {
            let line = next_line(&mut rest)?;
            if line.is_empty() {
                break;
            }
            let position = hashes.len();
            if position == MAX_INCLUSION_PROOF_LEN {
                return Err(TlogProofError::TooManyHashes {
                    max: MAX_INCLUSION_PROOF_LEN,
                });
            }
            let bytes = b64_decode(line).map_err(|_| TlogProofError::HashBase64 { position })?;
            let hash = Hash32::from_slice(&bytes).map_err(|_| TlogProofError::HashLength {
                position,
                got: bytes.len(),
            })?;
            hashes.push(hash);
        }
        SignedNote::parse(rest).map_err(CheckpointError::Note)?;
        Ok(TlogProof {
            extra,
            index,
            hashes,
            checkpoint: rest.into(),
        })
    }

    /// Verifies that the entry with BLAKE3 leaf hash `leaf_hash` is at [`TlogProof::index`] in
    /// the log whose checkpoint is embedded, signed by the trusted gateway key (SPEC §4, §5).
    /// Returns the checkpoint.
    ///
    /// # Errors
    /// [`TlogProofError::Checkpoint`] (signature, body, origin), [`TlogProofError::Merkle`].
    pub fn verify(
        &self,
        leaf_hash: &Hash32,
        key: &VerifierKey,
    ) -> Result<Checkpoint, TlogProofError> {
        self.verify_with(&Blake3Hasher, leaf_hash, key)
    }

    /// As [`TlogProof::verify`], from the entry's bytes.
    ///
    /// # Errors
    /// As [`TlogProof::verify`].
    pub fn verify_entry(
        &self,
        entry: &[u8],
        key: &VerifierKey,
    ) -> Result<Checkpoint, TlogProofError> {
        self.verify(&Blake3Hasher.hash_leaf(entry), key)
    }

    /// As [`TlogProof::verify`], with another hasher (for logs that follow RFC 9162 verbatim).
    ///
    /// # Errors
    /// As [`TlogProof::verify`].
    pub fn verify_with<H: LogHasher>(
        &self,
        hasher: &H,
        leaf_hash: &Hash32,
        key: &VerifierKey,
    ) -> Result<Checkpoint, TlogProofError> {
        let checkpoint = Checkpoint::open(&self.checkpoint, key)?;
        verify_inclusion(
            hasher,
            self.index,
            checkpoint.size(),
            leaf_hash,
            &self.hashes,
            &checkpoint.root(),
        )?;
        Ok(checkpoint)
    }
}

/// Takes the next newline-terminated line off `rest`.
fn next_line<'a>(rest: &mut &'a str) -> Result<&'a str, TlogProofError> {
    let (line, tail) = rest.split_once('\n').ok_or(TlogProofError::Truncated)?;
    *rest = tail;
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::MemoryTree;
    use crate::note::NoteSigner;

    #[test]
    fn round_trip_and_verify() {
        let signer = NoteSigner::from_seed("factory-a.example/line-logs/1", &[3; 32]).unwrap();
        let key = signer.verifier_key().unwrap();
        let mut tree = MemoryTree::new(Blake3Hasher);
        for i in 0..9u8 {
            tree.append_entry(&[i]);
        }
        let cp = Checkpoint::new(signer.name(), 9, tree.root()).unwrap();
        let note = cp.sign(&signer).unwrap().encode();
        for index in 0..9u64 {
            let proof =
                TlogProof::new(index, tree.inclusion_proof(index, 9).unwrap(), note.clone())
                    .unwrap();
            let text = proof.encode();
            let parsed = TlogProof::parse(&text).unwrap();
            assert_eq!(parsed, proof);
            assert_eq!(parsed.encode(), text);
            assert_eq!(parsed.verify_entry(&[index as u8], &key), Ok(cp.clone()));
            assert!(matches!(
                parsed.verify_entry(b"other", &key),
                Err(TlogProofError::Merkle(MerkleError::RootMismatch { .. }))
            ));
        }
        // Index 8 of 9 has a one-hash proof; an `extra` line is accepted and exposed.
        let proof = TlogProof::new(8, tree.inclusion_proof(8, 9).unwrap(), note.clone()).unwrap();
        let with_extra = proof.encode().replacen("index ", "extra AQID\nindex ", 1);
        let parsed = TlogProof::parse(&with_extra).unwrap();
        assert_eq!(parsed.extra(), Some(&[1u8, 2, 3][..]));
        assert_eq!(parsed.encode(), with_extra);
        assert_eq!(parsed.verify_entry(&[8], &key), Ok(cp));
    }

    #[test]
    fn malformed_texts() {
        let note = NoteSigner::from_seed("o", &[3; 32])
            .unwrap()
            .sign("o\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n")
            .unwrap()
            .encode();
        let h = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
        let cases: [(String, TlogProofError); 8] = [
            (
                alloc::format!("c2sp.org/tlog-proof@v2\nindex 0\n\n{note}"),
                TlogProofError::Header,
            ),
            (
                "c2sp.org/tlog-proof@v1\nindex 0\n".into(),
                TlogProofError::Truncated,
            ),
            (
                alloc::format!("c2sp.org/tlog-proof@v1\nindex 00\n\n{note}"),
                TlogProofError::IndexSyntax { got: "00".into() },
            ),
            (
                alloc::format!("c2sp.org/tlog-proof@v1\nindx 0\n\n{note}"),
                TlogProofError::IndexLine,
            ),
            (
                alloc::format!("c2sp.org/tlog-proof@v1\nextra \nindex 0\n\n{note}"),
                TlogProofError::ExtraEmpty,
            ),
            (
                alloc::format!("c2sp.org/tlog-proof@v1\nindex 0\n{h}\nAAAA\n\n{note}"),
                TlogProofError::HashLength {
                    position: 1,
                    got: 3,
                },
            ),
            (
                alloc::format!("c2sp.org/tlog-proof@v1\nindex 0\n{h} \n\n{note}"),
                TlogProofError::HashBase64 { position: 0 },
            ),
            (
                alloc::format!(
                    "c2sp.org/tlog-proof@v1\nindex 0\n{}\n{note}",
                    alloc::format!("{h}\n").repeat(65)
                ),
                TlogProofError::TooManyHashes { max: 64 },
            ),
        ];
        for (text, want) in cases {
            assert_eq!(TlogProof::parse(&text), Err(want), "{text:?}");
        }
        assert!(matches!(
            TlogProof::parse("c2sp.org/tlog-proof@v1\nindex 0\n\nnot a note\n"),
            Err(TlogProofError::Checkpoint(CheckpointError::Note(_)))
        ));
    }
}
