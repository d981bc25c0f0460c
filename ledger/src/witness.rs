//! The pure core of a C2SP `tlog-witness` for our BLAKE3 logs (SPEC §5): the `add-checkpoint`
//! request body, the witness's decision on it, and the response bodies.
//!
//! Why here and not in the witness service: the decision is the security-relevant part (when may
//! a witness cosign?), and a pure function of (trusted log key, last cosigned checkpoint,
//! request) can be tested exhaustively without a server, and reused by anything that wants to
//! check a witness's behaviour. The service only adds I/O: it looks the log up, persists the new
//! state atomically *before* answering, and keeps the evidence of a split view.
//!
//! Request body (C2SP tlog-witness): `old {size}\n`, zero to [`MAX_PROOF_LINES`] base64
//! consistency-proof hashes, one per line, an empty line, then the signed checkpoint note.
//! Parsing is strict: decimal without leading zeros, canonical padded base64 of exactly 32
//! bytes, every line ending in `\n`.
//!
//! The checks, in the order the spec gives them, and the HTTP status of each refusal
//! ([`WitnessError::status`]):
//! 1. the body is well formed (400);
//! 2. the checkpoint's origin is a log this witness knows (404: C2SP says "404 Not Found" for an
//!    unknown origin);
//! 3. the checkpoint is signed by the log's trusted key (403);
//! 4. a checkpoint of the same size as the witnessed one but with another root is a **split
//!    view**, whatever `old` says (409, evidence);
//! 5. `old` ≤ the checkpoint size (400);
//! 6. `old` equals the size of the last cosigned checkpoint, 0 if none (409, body = that size);
//! 7. the consistency proof from the witnessed checkpoint to the new one verifies (422; with a
//!    valid log signature this is evidence of an inconsistent log: [`WitnessError::is_split_view`]).
//!    From `old == 0` the proof must be empty.
//!
//! If all pass, the witness records the new checkpoint and answers 200 with its cosignature
//! line(s) (`tlog-cosignature` v1, see [`crate::note::CosignatureSigner`]).

use alloc::string::String;
use alloc::vec::Vec;

use prov_schemas::Hash32;

use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::hasher::Blake3Hasher;
use crate::merkle::{MerkleError, verify_consistency};
use crate::note::{NoteError, NoteSignature, SignedNote, VerifierKey};
use crate::text::{b64_decode, b64_encode, parse_decimal};

/// The most consistency-proof lines a request may carry (C2SP: "MUST NOT send more than 63").
pub const MAX_PROOF_LINES: usize = 63;
/// The content type of a 409 response body (C2SP tlog-witness).
pub const SIZE_CONTENT_TYPE: &str = "text/x.tlog.size";
/// The path of the submission endpoint, below the witness's submission prefix.
pub const ADD_CHECKPOINT_PATH: &str = "/add-checkpoint";

/// An `add-checkpoint` request body is malformed (HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The body is not UTF-8.
    #[error("request body is not UTF-8 (valid up to byte {valid_up_to})")]
    NotUtf8 {
        /// Length of the valid prefix.
        valid_up_to: usize,
    },
    /// The first line is not `old {size}`.
    #[error("first line {got:?} is not `old {{size}}`")]
    OldLine {
        /// The line as found (cut at 64 bytes).
        got: String,
    },
    /// The old size is not a decimal number without leading zeros fitting 64 bits.
    #[error("old size {got:?} is not a canonical decimal")]
    OldSize {
        /// The field as found (cut at 64 bytes).
        got: String,
    },
    /// A line is not terminated by a newline (the body ended inside it).
    #[error("line {line} is not terminated by a newline")]
    Unterminated {
        /// 0-based line number in the body.
        line: usize,
    },
    /// A proof line is not canonical padded base64.
    #[error("proof line {line} is not canonical base64")]
    ProofBase64 {
        /// 0-based index among the proof lines.
        line: usize,
    },
    /// A proof line does not decode to 32 bytes.
    #[error("proof line {line} decodes to {got} bytes, want 32")]
    ProofHashLength {
        /// 0-based index among the proof lines.
        line: usize,
        /// Bytes decoded.
        got: usize,
    },
    /// More proof lines than [`MAX_PROOF_LINES`].
    #[error("{got} proof lines, at most {max} are allowed")]
    TooManyProofLines {
        /// Lines found (counted up to `max + 1`).
        got: usize,
        /// The limit.
        max: usize,
    },
    /// No empty line separates the proof from the checkpoint.
    #[error("no empty line before the checkpoint")]
    NoSeparator,
    /// The checkpoint note is not a well-formed signed note.
    #[error("checkpoint note: {0}")]
    Note(NoteError),
    /// The note's text is not a well-formed checkpoint body.
    #[error("checkpoint body: {0}")]
    Checkpoint(CheckpointError),
}

/// A parsed `add-checkpoint` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddCheckpoint {
    /// The size of the checkpoint the client believes the witness last cosigned.
    pub old_size: u64,
    /// The consistency proof from `old_size` to the checkpoint's size.
    pub proof: Vec<Hash32>,
    /// The signed checkpoint note, as parsed.
    pub note: SignedNote,
    /// The checkpoint body (parsed from the note's text, not yet verified).
    pub checkpoint: Checkpoint,
}

fn cut(text: &str) -> String {
    let mut end = text.len().min(64);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].into()
}

impl AddCheckpoint {
    /// Parses a request body strictly (see the module docs).
    ///
    /// # Errors
    /// [`RequestError`] naming the first malformed part.
    pub fn parse(body: &[u8]) -> Result<AddCheckpoint, RequestError> {
        let text = core::str::from_utf8(body).map_err(|e| RequestError::NotUtf8 {
            valid_up_to: e.valid_up_to(),
        })?;
        let (first, mut rest) = text
            .split_once('\n')
            .ok_or(RequestError::Unterminated { line: 0 })?;
        let size_text = first
            .strip_prefix("old ")
            .ok_or_else(|| RequestError::OldLine { got: cut(first) })?;
        let old_size = parse_decimal(size_text).map_err(|_| RequestError::OldSize {
            got: cut(size_text),
        })?;
        let mut proof = Vec::new();
        let mut line_no = 1usize;
        loop {
            let (line, after) = rest.split_once('\n').ok_or(if rest.is_empty() {
                RequestError::NoSeparator
            } else {
                RequestError::Unterminated { line: line_no }
            })?;
            rest = after;
            line_no += 1;
            if line.is_empty() {
                break;
            }
            let index = proof.len();
            if index >= MAX_PROOF_LINES {
                return Err(RequestError::TooManyProofLines {
                    got: index + 1,
                    max: MAX_PROOF_LINES,
                });
            }
            let bytes = b64_decode(line).map_err(|_| RequestError::ProofBase64 { line: index })?;
            let hash = Hash32::from_slice(&bytes).map_err(|_| RequestError::ProofHashLength {
                line: index,
                got: bytes.len(),
            })?;
            proof.push(hash);
        }
        let note = SignedNote::parse(rest).map_err(RequestError::Note)?;
        let checkpoint = Checkpoint::parse(note.text()).map_err(RequestError::Checkpoint)?;
        Ok(AddCheckpoint {
            old_size,
            proof,
            note,
            checkpoint,
        })
    }

    /// The checkpoint's origin (which log the request is for).
    pub fn origin(&self) -> &str {
        self.checkpoint.origin()
    }
}

/// The request body for `old_size`, `proof` and the signed checkpoint note `note` (which must
/// end in a newline, as every encoded signed note does).
pub fn encode_add_checkpoint(old_size: u64, proof: &[Hash32], note: &str) -> String {
    let mut body = alloc::format!("old {old_size}\n");
    for hash in proof {
        body.push_str(&b64_encode(&hash.0));
        body.push('\n');
    }
    body.push('\n');
    body.push_str(note);
    body
}

/// What a witness has last cosigned for one log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Witnessed {
    /// The checkpoint.
    pub checkpoint: Checkpoint,
    /// Its signed note as submitted (the log's signature: evidence if the log forks later).
    pub note: String,
}

/// Why a witness refuses to cosign; each variant maps to its HTTP status ([`Self::status`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WitnessError {
    /// The request body is malformed (400).
    #[error("malformed request: {0}")]
    Malformed(#[from] RequestError),
    /// The checkpoint's origin is not a log this witness knows (404).
    #[error("unknown log origin {origin:?}")]
    UnknownLog {
        /// The origin found in the checkpoint.
        origin: String,
    },
    /// The checkpoint does not verify under the log's trusted key (403).
    #[error("checkpoint is not signed by the trusted key of {origin:?}: {source}")]
    BadLogSignature {
        /// The log.
        origin: String,
        /// Why it does not verify.
        source: CheckpointError,
    },
    /// `old` is above the checkpoint's size (400).
    #[error("old size {old} is above the checkpoint size {size}")]
    OldAboveSize {
        /// The request's old size.
        old: u64,
        /// The checkpoint's size.
        size: u64,
    },
    /// `old` is not the size of the last cosigned checkpoint (409).
    #[error("old size {got} does not match the witnessed size {want}")]
    OldSizeMismatch {
        /// The request's old size.
        got: u64,
        /// The size of the last cosigned checkpoint (0 if none).
        want: u64,
    },
    /// A signed checkpoint of the witnessed size with another root: a split view (409).
    #[error(
        "split view: size {size} was witnessed with root {witnessed}, now signed with root {got}"
    )]
    SplitView {
        /// The size both checkpoints have.
        size: u64,
        /// The root the witness cosigned.
        witnessed: Hash32,
        /// The root of the submitted checkpoint.
        got: Hash32,
    },
    /// The consistency proof does not verify from the witnessed checkpoint (422).
    #[error("consistency proof from size {old} to {size} does not verify: {source}")]
    Inconsistent {
        /// The witnessed size.
        old: u64,
        /// The checkpoint's size.
        size: u64,
        /// What failed.
        source: MerkleError,
    },
}

impl WitnessError {
    /// The HTTP status of this refusal (C2SP tlog-witness).
    pub fn status(&self) -> u16 {
        match self {
            WitnessError::Malformed(_) | WitnessError::OldAboveSize { .. } => 400,
            WitnessError::UnknownLog { .. } => 404,
            WitnessError::BadLogSignature { .. } => 403,
            WitnessError::OldSizeMismatch { .. } | WitnessError::SplitView { .. } => 409,
            WitnessError::Inconsistent { .. } => 422,
        }
    }

    /// Whether the refusal is evidence that the log signed two views that cannot both be true
    /// (the checkpoint carried a valid log signature): the witness keeps both notes.
    pub fn is_split_view(&self) -> bool {
        matches!(
            self,
            WitnessError::SplitView { .. } | WitnessError::Inconsistent { .. }
        )
    }

    /// The body of the response: for a 409 on the old size, the witnessed size and a newline
    /// (content type [`SIZE_CONTENT_TYPE`]); otherwise the error text and a newline.
    pub fn body(&self) -> String {
        match self {
            WitnessError::OldSizeMismatch { want, .. } => alloc::format!("{want}\n"),
            other => alloc::format!("{other}\n"),
        }
    }
}

/// Decides whether a witness that trusts `key` for the request's origin and last cosigned
/// `witnessed` (None: never) may cosign `request`; returns the checkpoint to cosign.
///
/// The caller has looked the origin up (an unknown origin is [`WitnessError::UnknownLog`],
/// decided by the caller, which holds the list of logs).
///
/// # Errors
/// [`WitnessError`] per the module docs.
pub fn check_add_checkpoint(
    key: &VerifierKey,
    witnessed: Option<&Checkpoint>,
    request: &AddCheckpoint,
) -> Result<Checkpoint, WitnessError> {
    let checkpoint = Checkpoint::open_note(&request.note, key).map_err(|source| {
        WitnessError::BadLogSignature {
            origin: request.origin().into(),
            source,
        }
    })?;
    let size = checkpoint.size();
    if let Some(w) = witnessed
        && w.size() == size
        && w.root() != checkpoint.root()
    {
        return Err(WitnessError::SplitView {
            size,
            witnessed: w.root(),
            got: checkpoint.root(),
        });
    }
    if request.old_size > size {
        return Err(WitnessError::OldAboveSize {
            old: request.old_size,
            size,
        });
    }
    let want = witnessed.map_or(0, Checkpoint::size);
    if request.old_size != want {
        return Err(WitnessError::OldSizeMismatch {
            got: request.old_size,
            want,
        });
    }
    match witnessed {
        None => {}
        Some(w) if w.size() == 0 => {}
        Some(w) => {
            verify_consistency(
                &Blake3Hasher,
                w.size(),
                size,
                &request.proof,
                &w.root(),
                &checkpoint.root(),
            )
            .map_err(|source| WitnessError::Inconsistent {
                old: w.size(),
                size,
                source,
            })?;
            return Ok(checkpoint);
        }
    }
    // From the empty tree (never witnessed, or witnessed at size 0) nothing can be proven, so
    // the proof must be empty.
    if !request.proof.is_empty() {
        return Err(WitnessError::Inconsistent {
            old: 0,
            size,
            source: MerkleError::ProofLength {
                got: request.proof.len(),
                want: 0,
            },
        });
    }
    Ok(checkpoint)
}

/// A witness response body could not be read as cosignature lines.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    /// The body holds no signature line.
    #[error("response holds no signature line")]
    Empty,
    /// The lines are not well-formed note signature lines.
    #[error("response lines: {0}")]
    Note(NoteError),
}

/// Parses a 200 response body: one or more note signature lines for the checkpoint `note_text`
/// (the text the lines sign). Verify them with [`SignedNote::verify_cosignature`] under the
/// witness keys the caller trusts; lines from unknown keys are to be ignored.
///
/// # Errors
/// [`ResponseError`].
pub fn parse_cosignature_lines(
    note_text: &str,
    body: &str,
) -> Result<Vec<NoteSignature>, ResponseError> {
    if body.is_empty() {
        return Err(ResponseError::Empty);
    }
    let note = SignedNote::parse(&alloc::format!("{note_text}\n{body}")).map_err(|e| match e {
        NoteError::NoSignatures => ResponseError::Empty,
        other => ResponseError::Note(other),
    })?;
    Ok(note.signatures().to_vec())
}

/// The 200 response body: the cosignature lines, each ending in a newline.
pub fn encode_cosignature_lines(lines: &[NoteSignature]) -> String {
    lines.iter().map(NoteSignature::to_line).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::MemoryTree;
    use crate::note::{CosignatureSigner, NoteSigner};
    use alloc::vec;

    const ORIGIN: &str = "factory-a.example/line-logs/1";

    struct Log {
        signer: NoteSigner,
        tree: MemoryTree<Blake3Hasher>,
    }

    impl Log {
        fn new() -> Log {
            Log {
                signer: NoteSigner::from_seed(ORIGIN, &[4; 32]).unwrap(),
                tree: MemoryTree::new(Blake3Hasher),
            }
        }
        fn grow(&mut self, size: u64) -> String {
            while self.tree.size() < size {
                self.tree.append_entry(&self.tree.size().to_be_bytes());
            }
            Checkpoint::new(ORIGIN, size, self.tree.root())
                .unwrap()
                .sign(&self.signer)
                .unwrap()
                .encode()
        }
        fn key(&self) -> VerifierKey {
            self.signer.verifier_key().unwrap()
        }
    }

    fn decide(
        key: &VerifierKey,
        witnessed: Option<&Checkpoint>,
        body: &str,
    ) -> Result<Checkpoint, WitnessError> {
        let request = AddCheckpoint::parse(body.as_bytes())?;
        check_add_checkpoint(key, witnessed, &request)
    }

    #[test]
    fn grows_and_round_trips() {
        let mut log = Log::new();
        let key = log.key();
        let n5 = log.grow(5);
        let body = encode_add_checkpoint(0, &[], &n5);
        let parsed = AddCheckpoint::parse(body.as_bytes()).unwrap();
        assert_eq!(parsed.old_size, 0);
        assert_eq!(parsed.note.encode(), n5);
        let c5 = decide(&key, None, &body).unwrap();
        assert_eq!(c5.size(), 5);
        let n13 = log.grow(13);
        let proof = log.tree.consistency_proof(5, 13).unwrap();
        let body = encode_add_checkpoint(5, &proof, &n13);
        assert_eq!(AddCheckpoint::parse(body.as_bytes()).unwrap().proof, proof);
        let c13 = decide(&key, Some(&c5), &body).unwrap();
        assert_eq!(c13.size(), 13);
        // The same checkpoint again: old = size, empty proof.
        assert_eq!(
            decide(&key, Some(&c13), &encode_add_checkpoint(13, &[], &n13)),
            Ok(c13.clone())
        );
        // Stale old size: 409 with the witnessed size.
        let err = decide(&key, Some(&c13), &encode_add_checkpoint(5, &proof, &n13)).unwrap_err();
        assert_eq!(err, WitnessError::OldSizeMismatch { got: 5, want: 13 });
        assert_eq!((err.status(), err.body().as_str()), (409, "13\n"));
        // A proof from the empty tree must be empty.
        let err = decide(&key, None, &encode_add_checkpoint(0, &proof, &n13)).unwrap_err();
        assert_eq!(err.status(), 422);
    }

    #[test]
    fn refusals_and_their_statuses() {
        let mut log = Log::new();
        let key = log.key();
        let n8 = log.grow(8);
        let c8 = decide(&key, None, &encode_add_checkpoint(0, &[], &n8)).unwrap();
        // Forged same-size checkpoint (same key, another root): split view.
        let forged = Checkpoint::new(ORIGIN, 8, Hash32([9; 32]))
            .unwrap()
            .sign(&log.signer)
            .unwrap()
            .encode();
        let err = decide(&key, Some(&c8), &encode_add_checkpoint(0, &[], &forged)).unwrap_err();
        assert!(matches!(err, WitnessError::SplitView { size: 8, .. }));
        assert!(err.is_split_view());
        assert_eq!(err.status(), 409);
        // A bad proof: 422, evidence.
        let n12 = log.grow(12);
        let mut proof = log.tree.consistency_proof(8, 12).unwrap();
        proof[0].0[0] ^= 1;
        let err = decide(&key, Some(&c8), &encode_add_checkpoint(8, &proof, &n12)).unwrap_err();
        assert_eq!(err.status(), 422);
        assert!(err.is_split_view());
        // Another key: 403.
        let other = NoteSigner::from_seed(ORIGIN, &[5; 32]).unwrap();
        let foreign = Checkpoint::new(ORIGIN, 12, log.tree.root())
            .unwrap()
            .sign(&other)
            .unwrap()
            .encode();
        let err = decide(&key, Some(&c8), &encode_add_checkpoint(8, &[], &foreign)).unwrap_err();
        assert_eq!(err.status(), 403);
        // old above size: 400.
        let err = decide(&key, Some(&c8), &encode_add_checkpoint(20, &[], &n12)).unwrap_err();
        assert_eq!(err, WitnessError::OldAboveSize { old: 20, size: 12 });
        assert_eq!(err.status(), 400);
    }

    #[test]
    fn malformed_bodies() {
        let mut log = Log::new();
        let n3 = log.grow(3);
        let h = b64_encode(&[7; 32]);
        let cases: Vec<(String, RequestError)> = vec![
            (
                alloc::format!("old 01\n\n{n3}"),
                RequestError::OldSize { got: "01".into() },
            ),
            (
                alloc::format!("olds 1\n\n{n3}"),
                RequestError::OldLine {
                    got: "olds 1".into(),
                },
            ),
            (
                alloc::format!("old 1\n{h}x\n\n{n3}"),
                RequestError::ProofBase64 { line: 0 },
            ),
            (
                alloc::format!("old 1\n{}\n\n{n3}", b64_encode(&[7; 31])),
                RequestError::ProofHashLength { line: 0, got: 31 },
            ),
            (
                alloc::format!("old 1\n{}\n{n3}", alloc::format!("{h}\n").repeat(64)),
                RequestError::TooManyProofLines { got: 64, max: 63 },
            ),
            (String::from("old 1\n"), RequestError::NoSeparator),
            (
                String::from("old 1"),
                RequestError::Unterminated { line: 0 },
            ),
            (
                String::from("old 1\nAAAA"),
                RequestError::Unterminated { line: 1 },
            ),
        ];
        for (body, want) in cases {
            assert_eq!(AddCheckpoint::parse(body.as_bytes()), Err(want), "{body:?}");
        }
        assert_eq!(
            AddCheckpoint::parse(b"old 1\n\xff"),
            Err(RequestError::NotUtf8 { valid_up_to: 6 })
        );
        assert!(matches!(
            AddCheckpoint::parse(alloc::format!("old 1\n\n{}", &n3[..n3.len() - 1]).as_bytes()),
            Err(RequestError::Note(_))
        ));
        assert_eq!(WitnessError::from(RequestError::NoSeparator).status(), 400);
    }

    #[test]
    fn cosignature_lines_round_trip() {
        let mut log = Log::new();
        let n3 = log.grow(3);
        let note = SignedNote::parse(&n3).unwrap();
        let witness = CosignatureSigner::from_seed("witness.example/w1", &[1; 32]).unwrap();
        let line = witness.cosign(note.text(), 1_700_000_000).unwrap();
        let body = encode_cosignature_lines(core::slice::from_ref(&line));
        let lines = parse_cosignature_lines(note.text(), &body).unwrap();
        assert_eq!(lines, vec![line]);
        let mut cosigned = note.clone();
        cosigned.push_signature(lines[0].clone()).unwrap();
        assert_eq!(
            cosigned.verify_cosignature(&witness.verifier_key().unwrap()),
            Ok(1_700_000_000)
        );
        assert_eq!(
            parse_cosignature_lines(note.text(), ""),
            Err(ResponseError::Empty)
        );
        assert!(matches!(
            parse_cosignature_lines(note.text(), "garbage\n"),
            Err(ResponseError::Note(_))
        ));
    }
}
