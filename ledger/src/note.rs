//! C2SP `signed-note` with Ed25519 (type 0x01), verifier keys, and `tlog-cosignature` v1
//! (type 0x04).
//!
//! A signed note is a text ending in a newline, a blank line, then one or more signature lines
//! `— {key name} {base64(4-byte key ID || signature)}\n`. A verifier is configured with the
//! keys it trusts ([`VerifierKey`]); it ignores lines from every other key (witnesses may add
//! theirs, keys rotate), and rejects the note unless the trusted key's signature is present and
//! every line that names the trusted key (name *and* key ID) verifies.
//!
//! Parsing is strict so that one note has one encoding: valid UTF-8, no control characters but
//! newline, canonical padded base64, valid key names, at most [`MAX_SIGNATURES`] lines. Ed25519
//! verification is `verify_strict` (no small-order keys or `R`, canonical `S`), which accepts
//! every signature an honest RFC 8032 signer produces.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::Digest as _;

use crate::text::{b64_decode, b64_encode};

/// Signature type byte of plain Ed25519 note signatures (C2SP signed-note).
pub const SIG_TYPE_ED25519: u8 = 0x01;
/// Signature type byte of timestamped Ed25519 witness cosignatures (C2SP tlog-cosignature).
pub const SIG_TYPE_COSIGNATURE_V1: u8 = 0x04;
/// The most signature lines a note may carry (C2SP requires accepting at least 16; Go's
/// reference implementation stops at 100, and so do we).
pub const MAX_SIGNATURES: usize = 100;
/// The prefix of every signature line: em dash (U+2014) and a space.
pub const SIGNATURE_PREFIX: &str = "\u{2014} ";
/// The header line of the message a v1 cosignature signs.
pub const COSIGNATURE_HEADER: &str = "cosignature/v1\n";

/// The largest timestamp a cosignature may carry (C2SP: at most 2^63 - 1).
pub const MAX_COSIGNATURE_TIME: u64 = i64::MAX as u64;

/// A verifier key or a key name is malformed or inconsistent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Key names must be non-empty.
    #[error("key name is empty")]
    EmptyName,
    /// Key names must not contain Unicode spaces, `+` or control characters.
    #[error("key name has forbidden character {ch:?} at byte {position}")]
    NameChar {
        /// Byte offset in the name.
        position: usize,
        /// The character.
        ch: char,
    },
    /// The verifier key string lacks one of its three `+`-separated fields.
    #[error("verifier key has no {field} field")]
    MissingField {
        /// `"key ID"` or `"public key"`.
        field: &'static str,
    },
    /// The key ID field is not 8 lowercase hex digits.
    #[error("verifier key ID {got:?} is not 8 lowercase hex digits")]
    KeyIdSyntax {
        /// The field as found.
        got: String,
    },
    /// The public key field is not canonical padded base64.
    #[error("verifier public key is not canonical base64")]
    Base64,
    /// The decoded public key field has the wrong length.
    #[error("verifier public key has {got} bytes, want {want}")]
    KeyLength {
        /// Bytes found (type byte included).
        got: usize,
        /// 33: the type byte and a 32-byte Ed25519 key.
        want: usize,
    },
    /// The type byte is not one this crate verifies (0x01 or 0x04).
    #[error("unsupported signature type {got:#04x}")]
    UnknownType {
        /// The type byte found.
        got: u8,
    },
    /// The 32 bytes are not a valid Ed25519 public key encoding.
    #[error("not a valid Ed25519 public key")]
    InvalidPoint,
    /// The key is of small order: any signature would be forgeable.
    #[error("weak (small-order) Ed25519 public key")]
    WeakKey,
    /// The key ID in the string is not the one the name and key imply.
    #[error("verifier key ID {got} does not match the computed {want}")]
    KeyIdMismatch {
        /// As written in the string.
        got: KeyId,
        /// `SHA-256(name || 0x0A || type || key)[:4]`.
        want: KeyId,
    },
}

/// A signed note is malformed, or does not verify under the trusted key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// The note is not valid UTF-8.
    #[error("note is not valid UTF-8 (valid up to byte {valid_up_to})")]
    NotUtf8 {
        /// Length of the valid prefix.
        valid_up_to: usize,
    },
    /// A control character other than newline.
    #[error("control character {byte:#04x} at byte {offset}")]
    ControlChar {
        /// Byte offset in the note (or text).
        offset: usize,
        /// The byte.
        byte: u8,
    },
    /// The note text is empty.
    #[error("note text is empty")]
    EmptyText,
    /// The note text does not end in a newline.
    #[error("note text does not end in a newline")]
    TextNotTerminated,
    /// No blank line separates the text from the signatures.
    #[error("no blank line separates the text from the signatures")]
    NoSeparator,
    /// There are no signature lines.
    #[error("note has no signature lines")]
    NoSignatures,
    /// More signature lines than [`MAX_SIGNATURES`].
    #[error("note has {got} signature lines, at most {max} are accepted")]
    TooManySignatures {
        /// Lines found.
        got: usize,
        /// The limit.
        max: usize,
    },
    /// A signature line is not `— {name} {base64}` followed by a newline.
    #[error("signature line {line} is malformed")]
    LineSyntax {
        /// 0-based index among the signature lines.
        line: usize,
    },
    /// A signature line names an invalid key name.
    #[error("signature line {line} has an invalid key name: {source}")]
    LineName {
        /// 0-based index among the signature lines.
        line: usize,
        /// What is wrong with the name.
        source: KeyError,
    },
    /// A signature line's payload is not canonical padded base64.
    #[error("signature line {line} is not canonical base64")]
    LineBase64 {
        /// 0-based index among the signature lines.
        line: usize,
    },
    /// A signature line's payload is shorter than a key ID and one byte.
    #[error("signature line {line} decodes to {got} bytes, want at least 5")]
    LineTooShort {
        /// 0-based index among the signature lines.
        line: usize,
        /// Bytes decoded.
        got: usize,
    },
    /// No signature line is from the trusted key (same name and key ID).
    #[error("no signature from the trusted key {name}+{key_id}")]
    MissingSignature {
        /// The trusted key's name.
        name: String,
        /// The trusted key's ID.
        key_id: KeyId,
    },
    /// A signature from the trusted key has the wrong length for its type.
    #[error("signature from {name} has {got} bytes, want {want}")]
    SignatureLength {
        /// The trusted key's name.
        name: String,
        /// Bytes after the key ID.
        got: usize,
        /// 64 for Ed25519, 72 for a v1 cosignature.
        want: usize,
    },
    /// A signature from the trusted key does not verify.
    #[error("invalid signature from {name}+{key_id}")]
    BadSignature {
        /// The trusted key's name.
        name: String,
        /// The trusted key's ID.
        key_id: KeyId,
    },
    /// The key is of the wrong kind for this operation.
    #[error("key is a {got:?} key, want a {want:?} key")]
    WrongKeyKind {
        /// The kind needed.
        want: KeyKind,
        /// The kind given.
        got: KeyKind,
    },
    /// A cosignature timestamp above 2^63 - 1.
    #[error("cosignature timestamp {got} exceeds 2^63 - 1")]
    TimestampRange {
        /// The timestamp.
        got: u64,
    },
    /// The Ed25519 signer failed (never happens with an in-memory key).
    #[error("signing failed")]
    Signing,
}

/// A 4-byte key ID: `SHA-256(name || 0x0A || type || public key)[:4]`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 4]);

impl KeyId {
    /// The C2SP key ID of a key of the given signature type.
    pub fn compute(name: &str, sig_type: u8, public_key: &[u8]) -> KeyId {
        let mut h = sha2::Sha256::new();
        h.update(name.as_bytes());
        h.update([b'\n', sig_type]);
        h.update(public_key);
        let digest = h.finalize();
        let mut id = [0u8; 4];
        id.copy_from_slice(&digest[..4]);
        KeyId(id)
    }

    /// The key ID as a big-endian integer (Go's `uint32` key hash).
    pub fn as_u32(&self) -> u32 {
        u32::from_be_bytes(self.0)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// The signature types this crate signs and verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// Type 0x01: Ed25519 over the note text (checkpoints, SPEC §5).
    Ed25519,
    /// Type 0x04: timestamped Ed25519 witness cosignature v1.
    CosignatureV1,
}

impl KeyKind {
    /// The signature type byte.
    pub fn sig_type(self) -> u8 {
        match self {
            KeyKind::Ed25519 => SIG_TYPE_ED25519,
            KeyKind::CosignatureV1 => SIG_TYPE_COSIGNATURE_V1,
        }
    }

    /// The kind of a signature type byte, if supported.
    pub fn from_sig_type(sig_type: u8) -> Option<KeyKind> {
        match sig_type {
            SIG_TYPE_ED25519 => Some(KeyKind::Ed25519),
            SIG_TYPE_COSIGNATURE_V1 => Some(KeyKind::CosignatureV1),
            _ => None,
        }
    }

    /// Length of the signature after the key ID.
    pub fn signature_len(self) -> usize {
        match self {
            KeyKind::Ed25519 => 64,
            KeyKind::CosignatureV1 => 72,
        }
    }
}

/// Checks a key name: non-empty, no Unicode spaces, no `+`, no control characters.
///
/// # Errors
/// [`KeyError::EmptyName`], [`KeyError::NameChar`].
pub fn validate_key_name(name: &str) -> Result<(), KeyError> {
    if name.is_empty() {
        return Err(KeyError::EmptyName);
    }
    match name
        .char_indices()
        .find(|&(_, c)| c.is_whitespace() || c == '+' || c.is_control())
    {
        Some((position, ch)) => Err(KeyError::NameChar { position, ch }),
        None => Ok(()),
    }
}

/// A trusted public key: name, type and Ed25519 key, as pinned in a verifier's configuration.
///
/// Its string form is `{name}+{8 hex key ID}+{base64(type || 32-byte key)}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    kind: KeyKind,
    key_id: KeyId,
    public: VerifyingKey,
}

impl VerifierKey {
    /// A key for plain Ed25519 note signatures (type 0x01).
    ///
    /// # Errors
    /// An invalid name, an invalid or weak public key.
    pub fn ed25519(name: &str, public_key: &[u8; 32]) -> Result<VerifierKey, KeyError> {
        VerifierKey::new(name, KeyKind::Ed25519, public_key)
    }

    /// A key for v1 witness cosignatures (type 0x04).
    ///
    /// # Errors
    /// An invalid name, an invalid or weak public key.
    pub fn cosignature(name: &str, public_key: &[u8; 32]) -> Result<VerifierKey, KeyError> {
        VerifierKey::new(name, KeyKind::CosignatureV1, public_key)
    }

    /// A key of the given kind.
    ///
    /// # Errors
    /// An invalid name, an invalid or weak public key.
    pub fn new(name: &str, kind: KeyKind, public_key: &[u8; 32]) -> Result<VerifierKey, KeyError> {
        validate_key_name(name)?;
        let public = VerifyingKey::from_bytes(public_key).map_err(|_| KeyError::InvalidPoint)?;
        if public.is_weak() {
            return Err(KeyError::WeakKey);
        }
        Ok(VerifierKey {
            name: name.into(),
            kind,
            key_id: KeyId::compute(name, kind.sig_type(), public_key),
            public,
        })
    }

    /// Parses `{name}+{8 lowercase hex key ID}+{base64(type || 32-byte key)}` and checks that
    /// the key ID is the one the name and key imply.
    ///
    /// # Errors
    /// Any [`KeyError`].
    pub fn parse(text: &str) -> Result<VerifierKey, KeyError> {
        // The name and the hex ID cannot contain '+'; the base64 key can.
        let mut fields = text.splitn(3, '+');
        let name = fields.next().unwrap_or_default();
        validate_key_name(name)?;
        let id_text = fields
            .next()
            .ok_or(KeyError::MissingField { field: "key ID" })?;
        let key_text = fields.next().ok_or(KeyError::MissingField {
            field: "public key",
        })?;
        let got = parse_key_id(id_text).ok_or_else(|| KeyError::KeyIdSyntax {
            got: id_text.into(),
        })?;
        let key = b64_decode(key_text).map_err(|_| KeyError::Base64)?;
        let (&sig_type, public) = key
            .split_first()
            .ok_or(KeyError::KeyLength { got: 0, want: 33 })?;
        let kind =
            KeyKind::from_sig_type(sig_type).ok_or(KeyError::UnknownType { got: sig_type })?;
        let public: &[u8; 32] = public.try_into().map_err(|_| KeyError::KeyLength {
            got: key.len(),
            want: 33,
        })?;
        let vk = VerifierKey::new(name, kind, public)?;
        if vk.key_id != got {
            return Err(KeyError::KeyIdMismatch {
                got,
                want: vk.key_id,
            });
        }
        Ok(vk)
    }

    /// The key name (for a log's checkpoint key: the log's origin).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The signature type this key verifies.
    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// The key ID.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The raw 32-byte Ed25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.public.to_bytes()
    }

    fn require(&self, want: KeyKind) -> Result<(), NoteError> {
        if self.kind != want {
            return Err(NoteError::WrongKeyKind {
                want,
                got: self.kind,
            });
        }
        Ok(())
    }

    /// The lines of `note` from this key (same name and key ID), or `MissingSignature`.
    fn own_lines<'n>(&self, note: &'n SignedNote) -> Result<Vec<&'n NoteSignature>, NoteError> {
        let lines: Vec<&NoteSignature> = note
            .signatures
            .iter()
            .filter(|s| s.key_id == self.key_id && s.name == self.name)
            .collect();
        if lines.is_empty() {
            return Err(NoteError::MissingSignature {
                name: self.name.clone(),
                key_id: self.key_id,
            });
        }
        Ok(lines)
    }

    fn check(&self, message: &[u8], signature: &[u8]) -> Result<(), NoteError> {
        let bad = || NoteError::BadSignature {
            name: self.name.clone(),
            key_id: self.key_id,
        };
        let sig = Signature::from_slice(signature).map_err(|_| bad())?;
        self.public.verify_strict(message, &sig).map_err(|_| bad())
    }

    fn check_length(&self, signature: &[u8]) -> Result<(), NoteError> {
        let want = self.kind.signature_len();
        if signature.len() != want {
            return Err(NoteError::SignatureLength {
                name: self.name.clone(),
                got: signature.len(),
                want,
            });
        }
        Ok(())
    }
}

impl fmt::Display for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut key = [0u8; 33];
        key[0] = self.kind.sig_type();
        key[1..].copy_from_slice(self.public.as_bytes());
        write!(f, "{}+{}+{}", self.name, self.key_id, b64_encode(&key))
    }
}

fn parse_key_id(text: &str) -> Option<KeyId> {
    if text.len() != 8 || !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut id = [0u8; 4];
    hex::decode_to_slice(text, &mut id).ok()?;
    Some(KeyId(id))
}

/// One signature line: key name, key ID, and the signature bytes after the key ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    /// The signing key's name.
    pub name: String,
    /// The signing key's ID.
    pub key_id: KeyId,
    /// The signature proper (64 bytes for Ed25519, 72 for a v1 cosignature).
    pub signature: Vec<u8>,
}

impl NoteSignature {
    /// The line `— {name} {base64(key ID || signature)}\n`.
    pub fn to_line(&self) -> String {
        let mut payload = Vec::with_capacity(4 + self.signature.len());
        payload.extend_from_slice(&self.key_id.0);
        payload.extend_from_slice(&self.signature);
        let mut line = String::with_capacity(self.name.len() + 8 + payload.len() * 4 / 3);
        line.push_str(SIGNATURE_PREFIX);
        line.push_str(&self.name);
        line.push(' ');
        line.push_str(&b64_encode(&payload));
        line.push('\n');
        line
    }

    /// For a v1 cosignature: the timestamp (the first 8 bytes, big-endian).
    pub fn cosignature_time(&self) -> Option<u64> {
        let ts: [u8; 8] = self.signature.get(..8)?.try_into().ok()?;
        Some(u64::from_be_bytes(ts))
    }
}

/// A parsed signed note: its text (with the final newline) and its signature lines, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedNote {
    text: String,
    signatures: Vec<NoteSignature>,
}

/// Checks the rules every note text follows: non-empty, ends in a newline, no control
/// characters but newline (UTF-8 validity is the `&str`'s).
///
/// # Errors
/// [`NoteError::EmptyText`], [`NoteError::TextNotTerminated`], [`NoteError::ControlChar`].
pub fn validate_text(text: &str) -> Result<(), NoteError> {
    if text.is_empty() {
        return Err(NoteError::EmptyText);
    }
    if !text.ends_with('\n') {
        return Err(NoteError::TextNotTerminated);
    }
    check_controls(text)
}

fn check_controls(text: &str) -> Result<(), NoteError> {
    match text
        .bytes()
        .enumerate()
        .find(|&(_, b)| b < 0x20 && b != b'\n')
    {
        Some((offset, byte)) => Err(NoteError::ControlChar { offset, byte }),
        None => Ok(()),
    }
}

impl SignedNote {
    /// A note from a text and signatures (which are not verified here).
    ///
    /// # Errors
    /// An invalid text; more than [`MAX_SIGNATURES`] signatures; an invalid key name.
    pub fn new(text: String, signatures: Vec<NoteSignature>) -> Result<SignedNote, NoteError> {
        validate_text(&text)?;
        if signatures.len() > MAX_SIGNATURES {
            return Err(NoteError::TooManySignatures {
                got: signatures.len(),
                max: MAX_SIGNATURES,
            });
        }
        for (line, s) in signatures.iter().enumerate() {
            validate_key_name(&s.name).map_err(|source| NoteError::LineName { line, source })?;
        }
        Ok(SignedNote { text, signatures })
    }

    /// Parses a signed note from bytes (which must be UTF-8).
    ///
    /// # Errors
    /// [`NoteError::NotUtf8`], then as [`SignedNote::parse`].
    pub fn parse_bytes(note: &[u8]) -> Result<SignedNote, NoteError> {
        let text = core::str::from_utf8(note).map_err(|e| NoteError::NotUtf8 {
            valid_up_to: e.valid_up_to(),
        })?;
        SignedNote::parse(text)
    }

    /// Parses a signed note strictly. Signatures are not verified: see [`SignedNote::verify`].
    ///
    /// # Errors
    /// Any malformation, as a [`NoteError`] naming it.
    pub fn parse(note: &str) -> Result<SignedNote, NoteError> {
        check_controls(note)?;
        // The text ends at the last blank line; a note ending in "\n\n" therefore has an empty
        // signature block, which is refused below.
        let split = note.rfind("\n\n").ok_or(NoteError::NoSeparator)?;
        let (text, sigs) = (&note[..split + 1], &note[split + 2..]);
        if sigs.is_empty() {
            return Err(NoteError::NoSignatures);
        }
        let count = sigs.bytes().filter(|&b| b == b'\n').count();
        if count > MAX_SIGNATURES {
            return Err(NoteError::TooManySignatures {
                got: count,
                max: MAX_SIGNATURES,
            });
        }
        let mut signatures = Vec::with_capacity(count);
        let mut rest = sigs;
        let mut line = 0usize;
        while !rest.is_empty() {
            // A final line without its newline is malformed.
            let end = rest.find('\n').ok_or(NoteError::LineSyntax { line })?;
            signatures.push(parse_signature_line(&rest[..end], line)?);
            rest = &rest[end + 1..];
            line += 1;
        }
        Ok(SignedNote {
            text: text.into(),
            signatures,
        })
    }

    /// The signed text, including its final newline.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The signature lines, in order.
    pub fn signatures(&self) -> &[NoteSignature] {
        &self.signatures
    }

    /// Appends a signature line (e.g. a witness cosignature).
    ///
    /// # Errors
    /// [`NoteError::TooManySignatures`]; [`NoteError::LineName`] for an invalid name.
    pub fn push_signature(&mut self, signature: NoteSignature) -> Result<(), NoteError> {
        if self.signatures.len() >= MAX_SIGNATURES {
            return Err(NoteError::TooManySignatures {
                got: self.signatures.len() + 1,
                max: MAX_SIGNATURES,
            });
        }
        validate_key_name(&signature.name).map_err(|source| NoteError::LineName {
            line: self.signatures.len(),
            source,
        })?;
        self.signatures.push(signature);
        Ok(())
    }

    /// The note's text form: text, blank line, signature lines.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(self.text.len() + 1 + 120 * self.signatures.len());
        out.push_str(&self.text);
        out.push('\n');
        for s in &self.signatures {
            out.push_str(&s.to_line());
        }
        out
    }

    /// Verifies the note under a trusted Ed25519 (type 0x01) key: at least one line carries the
    /// key's name and ID, and every such line verifies. Other lines are ignored.
    ///
    /// # Errors
    /// [`NoteError::WrongKeyKind`], [`NoteError::MissingSignature`],
    /// [`NoteError::SignatureLength`], [`NoteError::BadSignature`].
    pub fn verify(&self, key: &VerifierKey) -> Result<(), NoteError> {
        key.require(KeyKind::Ed25519)?;
        for line in key.own_lines(self)? {
            key.check_length(&line.signature)?;
            key.check(self.text.as_bytes(), &line.signature)?;
        }
        Ok(())
    }

    /// Verifies a witness's v1 cosignature (type 0x04) on this note and returns its timestamp
    /// (the latest, if the witness signed more than once).
    ///
    /// # Errors
    /// [`NoteError::WrongKeyKind`], [`NoteError::MissingSignature`],
    /// [`NoteError::SignatureLength`], [`NoteError::TimestampRange`], [`NoteError::BadSignature`].
    pub fn verify_cosignature(&self, key: &VerifierKey) -> Result<u64, NoteError> {
        key.require(KeyKind::CosignatureV1)?;
        let mut latest = 0u64;
        for line in key.own_lines(self)? {
            key.check_length(&line.signature)?;
            let (ts, sig) = line.signature.split_at(8);
            let mut ts_bytes = [0u8; 8];
            ts_bytes.copy_from_slice(ts);
            let timestamp = u64::from_be_bytes(ts_bytes);
            if timestamp > MAX_COSIGNATURE_TIME {
                return Err(NoteError::TimestampRange { got: timestamp });
            }
            key.check(cosignature_message(&self.text, timestamp).as_bytes(), sig)?;
            latest = latest.max(timestamp);
        }
        Ok(latest)
    }
}

impl fmt::Display for SignedNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.encode())
    }
}

fn parse_signature_line(line_text: &str, line: usize) -> Result<NoteSignature, NoteError> {
    let body = line_text
        .strip_prefix(SIGNATURE_PREFIX)
        .ok_or(NoteError::LineSyntax { line })?;
    let (name, b64) = body.split_once(' ').ok_or(NoteError::LineSyntax { line })?;
    validate_key_name(name).map_err(|source| NoteError::LineName { line, source })?;
    if b64.is_empty() {
        return Err(NoteError::LineSyntax { line });
    }
    let payload = b64_decode(b64).map_err(|_| NoteError::LineBase64 { line })?;
    if payload.len() < 5 {
        return Err(NoteError::LineTooShort {
            line,
            got: payload.len(),
        });
    }
    let (id, signature) = payload.split_at(4);
    let mut key_id = [0u8; 4];
    key_id.copy_from_slice(id);
    Ok(NoteSignature {
        name: name.into(),
        key_id: KeyId(key_id),
        signature: signature.to_vec(),
    })
}

/// The message a v1 cosignature signs: `cosignature/v1\ntime {timestamp}\n` then the note text.
pub fn cosignature_message(text: &str, timestamp: u64) -> String {
    alloc::format!("{COSIGNATURE_HEADER}time {timestamp}\n{text}")
}

/// Signs notes with an Ed25519 key (type 0x01): a log's checkpoint key.
pub struct NoteSigner {
    name: String,
    key_id: KeyId,
    key: SigningKey,
}

impl fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NoteSigner")
            .field("name", &self.name)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl NoteSigner {
    /// A signer from a 32-byte Ed25519 seed (RFC 8032 private key). Signing is deterministic.
    ///
    /// # Errors
    /// An invalid key name.
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<NoteSigner, KeyError> {
        validate_key_name(name)?;
        let key = SigningKey::from_bytes(seed);
        let key_id = KeyId::compute(name, SIG_TYPE_ED25519, key.verifying_key().as_bytes());
        Ok(NoteSigner {
            name: name.into(),
            key_id,
            key,
        })
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key ID.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The matching verifier key.
    ///
    /// # Errors
    /// [`KeyError::WeakKey`] cannot happen for a key derived from a seed, but is not unwrapped.
    pub fn verifier_key(&self) -> Result<VerifierKey, KeyError> {
        VerifierKey::ed25519(&self.name, self.key.verifying_key().as_bytes())
    }

    /// The signature line of this key over `text`.
    ///
    /// # Errors
    /// An invalid text (see [`validate_text`]).
    pub fn sign_text(&self, text: &str) -> Result<NoteSignature, NoteError> {
        validate_text(text)?;
        let sig = self
            .key
            .try_sign(text.as_bytes())
            .map_err(|_| NoteError::Signing)?;
        Ok(NoteSignature {
            name: self.name.clone(),
            key_id: self.key_id,
            signature: sig.to_bytes().to_vec(),
        })
    }

    /// The signed note: `text`, a blank line, and this key's signature line.
    ///
    /// # Errors
    /// An invalid text (see [`validate_text`]).
    pub fn sign(&self, text: &str) -> Result<SignedNote, NoteError> {
        let line = self.sign_text(text)?;
        SignedNote::new(text.into(), alloc::vec![line])
    }
}

/// Signs v1 cosignatures (type 0x04) with an Ed25519 key: a witness.
pub struct CosignatureSigner {
    name: String,
    key_id: KeyId,
    key: SigningKey,
}

impl fmt::Debug for CosignatureSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CosignatureSigner")
            .field("name", &self.name)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl CosignatureSigner {
    /// A cosigner from a 32-byte Ed25519 seed.
    ///
    /// # Errors
    /// An invalid key name.
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<CosignatureSigner, KeyError> {
        validate_key_name(name)?;
        let key = SigningKey::from_bytes(seed);
        let key_id = KeyId::compute(
            name,
            SIG_TYPE_COSIGNATURE_V1,
            key.verifying_key().as_bytes(),
        );
        Ok(CosignatureSigner {
            name: name.into(),
            key_id,
            key,
        })
    }

    /// The cosigner's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key ID (type 0x04).
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The matching verifier key (type 0x04).
    ///
    /// # Errors
    /// [`KeyError::WeakKey`] cannot happen for a key derived from a seed, but is not unwrapped.
    pub fn verifier_key(&self) -> Result<VerifierKey, KeyError> {
        VerifierKey::cosignature(&self.name, self.key.verifying_key().as_bytes())
    }

    /// The cosignature line over a checkpoint's note text at `timestamp` (POSIX seconds): the
    /// 72-byte payload is the big-endian timestamp then the Ed25519 signature of
    /// [`cosignature_message`].
    ///
    /// # Errors
    /// An invalid text; [`NoteError::TimestampRange`].
    pub fn cosign(&self, text: &str, timestamp: u64) -> Result<NoteSignature, NoteError> {
        validate_text(text)?;
        if timestamp > MAX_COSIGNATURE_TIME {
            return Err(NoteError::TimestampRange { got: timestamp });
        }
        let sig = self
            .key
            .try_sign(cosignature_message(text, timestamp).as_bytes())
            .map_err(|_| NoteError::Signing)?;
        let mut signature = Vec::with_capacity(72);
        signature.extend_from_slice(&timestamp.to_be_bytes());
        signature.extend_from_slice(&sig.to_bytes());
        Ok(NoteSignature {
            name: self.name.clone(),
            key_id: self.key_id,
            signature,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    // golang.org/x/mod/sumdb/note's test key and note (note_test.go).
    const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const PETER_SKEY_B64: &str = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const PETER_TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                              then you don't know what your problem is.\n";
    const PETER_SIG: &str = "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
    const ENOCH_VKEY: &str = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
    const ENOCH_SIG: &str = "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";

    fn peter_seed() -> [u8; 32] {
        let raw = b64_decode(PETER_SKEY_B64).unwrap();
        assert_eq!(raw[0], SIG_TYPE_ED25519);
        raw[1..].try_into().unwrap()
    }

    #[test]
    fn go_reference_key_id_key_string_and_signature() {
        let vk = VerifierKey::parse(PETER_VKEY).unwrap();
        assert_eq!(vk.name(), "PeterNeumann");
        assert_eq!(vk.key_id().as_u32(), 0xc74f20a3);
        assert_eq!(vk.to_string(), PETER_VKEY);
        let signer = NoteSigner::from_seed("PeterNeumann", &peter_seed()).unwrap();
        assert_eq!(signer.key_id(), vk.key_id());
        assert_eq!(signer.verifier_key().unwrap(), vk);
        let note = signer.sign(PETER_TEXT).unwrap();
        let want = alloc::format!("{PETER_TEXT}\n{PETER_SIG}");
        assert_eq!(note.encode(), want);
        let parsed = SignedNote::parse(&want).unwrap();
        assert_eq!(parsed, note);
        parsed.verify(&vk).unwrap();
    }

    #[test]
    fn go_reference_open_semantics() {
        let peter = VerifierKey::parse(PETER_VKEY).unwrap();
        let enoch = VerifierKey::parse(ENOCH_VKEY).unwrap();
        let both = alloc::format!("{PETER_TEXT}\n{PETER_SIG}{ENOCH_SIG}");
        let note = SignedNote::parse(&both).unwrap();
        note.verify(&peter).unwrap();
        note.verify(&enoch).unwrap();
        assert_eq!(note.encode(), both);
        // Only Enoch's line: Peter's signature is missing.
        let only_enoch = SignedNote::parse(&alloc::format!("{PETER_TEXT}\n{ENOCH_SIG}")).unwrap();
        assert!(matches!(
            only_enoch.verify(&peter),
            Err(NoteError::MissingSignature { .. })
        ));
        // Go's "invalid signature" case: "ABCD" spliced into Peter's base64.
        let bad = alloc::format!("{PETER_TEXT}\n{}ABCD{}", &PETER_SIG[..60], &PETER_SIG[60..]);
        assert!(matches!(
            SignedNote::parse(&bad).unwrap().verify(&peter),
            Err(NoteError::SignatureLength {
                got: 67,
                want: 64,
                ..
            })
        ));
        // Go's malformed notes.
        let malformed = [
            (PETER_TEXT.to_string(), NoteError::NoSeparator),
            (alloc::format!("{PETER_TEXT}\n"), NoteError::NoSignatures),
            (
                alloc::format!("{PETER_TEXT}\n{}", &PETER_SIG[..PETER_SIG.len() - 1]),
                NoteError::LineSyntax { line: 0 },
            ),
            (
                alloc::format!("\x01{PETER_TEXT}\n{PETER_SIG}"),
                NoteError::ControlChar { offset: 0, byte: 1 },
            ),
            (
                alloc::format!("{PETER_TEXT}\n{PETER_SIG}Unexpected line.\n"),
                NoteError::LineSyntax { line: 1 },
            ),
        ];
        for (text, want) in malformed {
            assert_eq!(SignedNote::parse(&text), Err(want), "{text:?}");
        }
        assert_eq!(
            SignedNote::parse_bytes(b"\xff"),
            Err(NoteError::NotUtf8 { valid_up_to: 0 })
        );
        let bad_name = alloc::format!(
            "{PETER_TEXT}\n— Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
        );
        assert!(matches!(
            SignedNote::parse(&bad_name),
            Err(NoteError::LineBase64 { line: 0 })
        ));
        let many = alloc::format!("{PETER_TEXT}\n{}", PETER_SIG.repeat(101));
        assert_eq!(
            SignedNote::parse(&many),
            Err(NoteError::TooManySignatures { got: 101, max: 100 })
        );
    }

    #[test]
    fn go_reference_key_manglings_are_rejected() {
        let b = PETER_VKEY.as_bytes();
        for i in 0..=b.len() {
            for j in i + 1..=b.len() {
                if i == 0 && j == b.len() {
                    continue;
                }
                let sub = core::str::from_utf8(&b[i..j]).unwrap();
                assert!(VerifierKey::parse(sub).is_err(), "{sub}");
            }
        }
        let mut m = b.to_vec();
        for i in 0..m.len() {
            m[i] += 1;
            let s = core::str::from_utf8(&m).unwrap();
            assert!(VerifierKey::parse(s).is_err(), "{s}");
            m[i] -= 1;
        }
        assert!(matches!(
            VerifierKey::parse(
                "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY=="
            ),
            Err(KeyError::KeyLength { .. } | KeyError::Base64)
        ));
        assert_eq!(
            VerifierKey::parse(
                "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
            ),
            Err(KeyError::UnknownType { got: 0x65 })
        );
        assert!(matches!(
            VerifierKey::parse(
                "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
            ),
            Err(KeyError::KeyIdSyntax { .. })
        ));
        assert!(matches!(
            VerifierKey::parse(
                "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
            ),
            Err(KeyError::KeyIdMismatch { .. })
        ));
    }

    #[test]
    fn cosignature_round_trip_and_c2sp_example_payload() {
        let body =
            "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
        assert_eq!(
            cosignature_message(body, 1679315147),
            "cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
        );
        // The witness line of the tlog-cosignature example: key ID, then the timestamp.
        let example = alloc::format!(
            "{body}\n— witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n"
        );
        let note = SignedNote::parse(&example).unwrap();
        let line = &note.signatures()[0];
        assert_eq!(line.key_id.to_string(), "8d66cf3f");
        assert_eq!(line.signature.len(), 72);
        assert_eq!(line.cosignature_time(), Some(1679315147));

        let log = NoteSigner::from_seed("example.com/behind-the-sofa", &[7; 32]).unwrap();
        let witness = CosignatureSigner::from_seed("witness.example.com/w1", &[9; 32]).unwrap();
        let wkey = witness.verifier_key().unwrap();
        assert_eq!(wkey.kind(), KeyKind::CosignatureV1);
        assert_eq!(
            wkey.key_id(),
            KeyId::compute(wkey.name(), 0x04, &wkey.public_key())
        );
        assert_eq!(VerifierKey::parse(&wkey.to_string()).unwrap(), wkey);
        let mut note = log.sign(body).unwrap();
        note.push_signature(witness.cosign(body, 1679315147).unwrap())
            .unwrap();
        let note = SignedNote::parse(&note.encode()).unwrap();
        assert_eq!(note.verify_cosignature(&wkey), Ok(1679315147));
        note.verify(&log.verifier_key().unwrap()).unwrap();
        assert!(matches!(
            note.verify(&wkey),
            Err(NoteError::WrongKeyKind { .. })
        ));
        assert_eq!(
            witness.cosign(body, 1 << 63),
            Err(NoteError::TimestampRange { got: 1 << 63 })
        );
        // A cosignature made at another time does not verify with the claimed time.
        let mut forged = witness.cosign(body, 5).unwrap();
        forged.signature[..8].copy_from_slice(&6u64.to_be_bytes());
        let mut n = log.sign(body).unwrap();
        n.push_signature(forged).unwrap();
        assert!(matches!(
            n.verify_cosignature(&wkey),
            Err(NoteError::BadSignature { .. })
        ));
    }

    #[test]
    fn names_and_texts_are_validated() {
        assert_eq!(validate_key_name(""), Err(KeyError::EmptyName));
        assert_eq!(
            validate_key_name("a+b"),
            Err(KeyError::NameChar {
                position: 1,
                ch: '+'
            })
        );
        assert!(validate_key_name("a\u{00a0}b").is_err());
        assert!(NoteSigner::from_seed("a b", &[0; 32]).is_err());
        let s = NoteSigner::from_seed("a", &[0; 32]).unwrap();
        assert_eq!(s.sign("abc").unwrap_err(), NoteError::TextNotTerminated);
        assert_eq!(s.sign("").unwrap_err(), NoteError::EmptyText);
        assert_eq!(
            s.sign("a\rb\n").unwrap_err(),
            NoteError::ControlChar {
                offset: 1,
                byte: b'\r'
            }
        );
    }
}
