//! The signed envelope of SPEC §2 and §4: a tagged COSE_Sign1 (RFC 9052) with ES256, in exactly
//! one byte layout.
//!
//! ```text
//! D2 84 <bstr protected> A0 <bstr payload> 58 40 <64-byte r||s>
//! protected = A2 01 26 04 <bstr kid>          ; {1: -7, 4: h'<kid>'}
//! ```
//!
//! Why a hand-written byte-level parser instead of a generic CBOR decoder: the contract admits one
//! encoding only, and anything a generic decoder would tolerate (longer length forms, indefinite
//! lengths, extra header parameters, a non-empty unprotected map, trailing bytes) would give one
//! event several byte forms, hence several BLAKE3 identities in the log and the device's hash
//! chain. So every byte is checked where it stands, and each rejection says where and why
//! ([`CoseError`]). The size limit is checked before anything else so no work is done on
//! oversized input.
//!
//! The low-S rule and every envelope check happen here, in [`CoseSign1::parse`], before any
//! cryptography: the verification backends ([`VerifyBackend`]: [`P256Backend`], and
//! `RingBackend` with feature `ring`) only do the ECDSA arithmetic, so they cannot disagree on
//! what is accepted. The payload is opaque at this layer; its deterministic CBOR is checked by
//! [`crate::cbor`].
//!
//! Because the parser demands shortest-form headers, the protected and payload byte strings
//! appear in the message exactly as they must appear in the Sig_structure
//! `84 6A "Signature1" <bstr protected> 40 <bstr payload>`, so verification hashes slices of the
//! message and never re-encodes.

use alloc::vec::Vec;

#[cfg(feature = "sign")]
use crate::keys::SecretKey;
use crate::keys::{IdError, Kid, Part, PublicKey, Signature, SignatureError};

mod backend;

#[cfg(feature = "ring")]
pub use backend::RingBackend;
pub use backend::{P256Backend, PreferredBackend, VerifyBackend};

/// Largest message accepted or produced, in bytes (SPEC §2: 16 KiB).
pub const MAX_MESSAGE_LEN: usize = 16 * 1024;

/// CBOR tag 18 (COSE_Sign1), as its one-byte head.
pub const COSE_SIGN1_TAG: u8 = 0xd2;

/// The fixed start of the protected map: `{1: -7, 4: ...` (alg ES256, then the kid label).
pub const PROTECTED_PREFIX: [u8; 4] = [0xa2, 0x01, 0x26, 0x04];

/// The fixed start of every Sig_structure: array of 4, text "Signature1".
pub const SIG_STRUCTURE_PREFIX: &[u8; 12] = b"\x84\x6aSignature1";

/// The `external_aad` item of the Sig_structure: an empty byte string.
const EMPTY_BSTR: &[u8] = &[0x40];

/// Head of the signature item: a 64-byte byte string.
const SIGNATURE_HEAD: [u8; 2] = [0x58, 0x40];

/// A message was rejected: each variant says what was wrong and, where it helps, at which offset
/// of the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CoseError {
    /// The message is longer than [`MAX_MESSAGE_LEN`] (checked before anything else).
    #[error("message has {got} bytes, max {max}")]
    TooLarge {
        /// Bytes found.
        got: usize,
        /// The limit.
        max: usize,
    },
    /// The first byte is not tag 18 (`0xd2`).
    #[error("first byte is {got:#04x}, want 0xd2 (COSE_Sign1 tag)")]
    NotTagged {
        /// The byte found.
        got: u8,
    },
    /// The message ended inside an item.
    #[error("message ends at offset {offset} inside the {field}")]
    Truncated {
        /// Length of the message (where more bytes were needed).
        offset: usize,
        /// The item being read.
        field: &'static str,
    },
    /// A byte that no valid message has at that place (wrong major type, indefinite length…).
    #[error("byte {got:#04x} at offset {offset}: want {want}")]
    BadStructure {
        /// Offset of the byte.
        offset: usize,
        /// The byte found.
        got: u8,
        /// What was expected there.
        want: &'static str,
    },
    /// A byte-string length was not in its shortest form (RFC 8949 §4.2.1).
    #[error("length {len} at offset {offset} is not in its shortest form")]
    NonShortestLength {
        /// Offset of the item's head.
        offset: usize,
        /// The length it encodes.
        len: u64,
    },
    /// The protected header is not exactly `A2 01 26 04 <bstr kid>`.
    #[error("protected header differs from {{1: -7, 4: kid}} at offset {offset}")]
    WrongProtectedHeader {
        /// Offset of the first deviating byte.
        offset: usize,
    },
    /// The kid is not a device id or `operator:{name}`.
    #[error("kid at offset {offset}: {source}")]
    BadKid {
        /// Offset of the kid's first byte.
        offset: usize,
        /// What is wrong with it.
        source: IdError,
    },
    /// The unprotected header is not the empty map `A0`.
    #[error("unprotected header at offset {offset} starts {got:#04x}, want 0xa0 (empty map)")]
    UnprotectedNotEmpty {
        /// Offset of the unprotected header.
        offset: usize,
        /// The byte found.
        got: u8,
    },
    /// The signature byte string is not 64 bytes.
    #[error("signature has {got} bytes, want 64")]
    SignatureLength {
        /// Bytes found.
        got: usize,
    },
    /// `r` or `s` is zero.
    #[error("signature {part} is zero")]
    SignatureZero {
        /// Which half.
        part: Part,
    },
    /// `r` or `s` is not below the group order.
    #[error("signature {part} is not below the group order")]
    SignatureOutOfRange {
        /// Which half.
        part: Part,
    },
    /// `s > n/2`: the malleated twin of a valid signature, refused by SPEC §2.
    #[error("signature s is high (s > n/2)")]
    HighS,
    /// Bytes follow the signature.
    #[error("{got} trailing bytes at offset {offset}")]
    TrailingBytes {
        /// Offset of the first trailing byte.
        offset: usize,
        /// How many bytes follow.
        got: usize,
    },
    /// The envelope is well formed but the signature does not verify under the key.
    #[error("signature does not verify under the key")]
    BadSignature,
}

impl From<SignatureError> for CoseError {
    fn from(e: SignatureError) -> CoseError {
        match e {
            SignatureError::Length { got } => CoseError::SignatureLength { got },
            SignatureError::Zero { part } => CoseError::SignatureZero { part },
            SignatureError::OutOfRange { part } => CoseError::SignatureOutOfRange { part },
            SignatureError::HighS => CoseError::HighS,
        }
    }
}

/// A parsed COSE_Sign1 message borrowing from its bytes. Existing means every envelope rule of
/// SPEC §2 held, including low S; only [`CoseSign1::verify`] remains.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct CoseSign1<'a> {
    message: &'a [u8],
    /// The protected bstr with its head, as it appears in the Sig_structure.
    protected_item: &'a [u8],
    protected: &'a [u8],
    kid: Kid,
    kid_bytes: &'a [u8],
    /// The payload bstr with its head, as it appears in the Sig_structure.
    payload_item: &'a [u8],
    payload: &'a [u8],
    signature: Signature,
}

impl core::fmt::Debug for CoseSign1<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CoseSign1")
            .field("kid", &self.kid)
            .field("payload_len", &self.payload.len())
            .field("signature", &self.signature)
            .finish()
    }
}

/// A cursor over the message; every read is bounds-checked and reports its offset.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self, field: &'static str) -> Result<u8, CoseError> {
        let b = *self.buf.get(self.pos).ok_or(CoseError::Truncated {
            offset: self.buf.len(),
            field,
        })?;
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, len: u64, field: &'static str) -> Result<&'a [u8], CoseError> {
        let truncated = CoseError::Truncated {
            offset: self.buf.len(),
            field,
        };
        let remaining = self.buf.len() - self.pos.min(self.buf.len());
        let len = usize::try_from(len).map_err(|_| truncated)?;
        if len > remaining {
            return Err(truncated);
        }
        let out = self.buf.get(self.pos..self.pos + len).ok_or(truncated)?;
        self.pos += len;
        Ok(out)
    }

    /// Reads a definite-length byte string with a shortest-form head; returns the whole item
    /// (head included) and its content.
    fn bstr(&mut self, field: &'static str) -> Result<(&'a [u8], &'a [u8]), CoseError> {
        let start = self.pos;
        let head = self.byte(field)?;
        let bad = |want| CoseError::BadStructure {
            offset: start,
            got: head,
            want,
        };
        if head >> 5 != 2 {
            return Err(bad("a byte string"));
        }
        let info = head & 0x1f;
        let (len, min): (u64, u64) = match info {
            0..=23 => (u64::from(info), 0),
            24 => (u64::from(self.byte(field)?), 24),
            25 => (self.be_uint::<2>(field)?, 0x100),
            26 => (self.be_uint::<4>(field)?, 0x1_0000),
            27 => (self.be_uint::<8>(field)?, 0x1_0000_0000),
            31 => return Err(bad("a definite-length byte string")),
            _ => return Err(bad("a well-formed byte string head")),
        };
        if len < min {
            return Err(CoseError::NonShortestLength { offset: start, len });
        }
        let content = self.take(len, field)?;
        let item = self.buf.get(start..self.pos).unwrap_or_default();
        Ok((item, content))
    }

    fn be_uint<const N: usize>(&mut self, field: &'static str) -> Result<u64, CoseError> {
        let bytes = self.take(N as u64, field)?;
        Ok(bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    fn expect(&mut self, want_byte: u8, want: &'static str) -> Result<(), CoseError> {
        let offset = self.pos;
        let got = self.byte(want)?;
        if got == want_byte {
            Ok(())
        } else {
            Err(CoseError::BadStructure { offset, got, want })
        }
    }
}

impl<'a> CoseSign1<'a> {
    /// Parses and checks a message against SPEC §2 (size, tag, structure, shortest lengths,
    /// protected header, kid, empty unprotected header, signature length and range, low S, no
    /// trailing bytes). Does not verify the signature: see [`CoseSign1::verify`].
    pub fn parse(message: &'a [u8]) -> Result<CoseSign1<'a>, CoseError> {
        if message.len() > MAX_MESSAGE_LEN {
            return Err(CoseError::TooLarge {
                got: message.len(),
                max: MAX_MESSAGE_LEN,
            });
        }
        let mut r = Reader {
            buf: message,
            pos: 0,
        };
        let tag = r.byte("COSE_Sign1 tag")?;
        if tag != COSE_SIGN1_TAG {
            return Err(CoseError::NotTagged { got: tag });
        }
        r.expect(0x84, "an array of 4 items (0x84)")?;

        let protected_start = r.pos;
        let (protected_item, protected) = r.bstr("protected header")?;
        let protected_offset = protected_start + (protected_item.len() - protected.len());
        let (kid_offset, kid_bytes) = parse_protected(protected, protected_offset)?;
        let kid = Kid::from_bytes(kid_bytes).map_err(|source| CoseError::BadKid {
            offset: kid_offset,
            source,
        })?;

        let unprotected_offset = r.pos;
        let unprotected = r.byte("unprotected header")?;
        if unprotected != 0xa0 {
            return Err(CoseError::UnprotectedNotEmpty {
                offset: unprotected_offset,
                got: unprotected,
            });
        }

        let (payload_item, payload) = r.bstr("payload")?;

        let (_, raw_signature) = r.bstr("signature")?;
        let signature = Signature::from_slice(raw_signature)?;

        if r.pos != message.len() {
            return Err(CoseError::TrailingBytes {
                offset: r.pos,
                got: message.len() - r.pos,
            });
        }
        Ok(CoseSign1 {
            message,
            protected_item,
            protected,
            kid,
            kid_bytes,
            payload_item,
            payload,
            signature,
        })
    }

    /// The whole message.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.message
    }

    /// The protected header map's bytes (`A2 01 26 04 <bstr kid>`), without the bstr head.
    pub fn protected(&self) -> &'a [u8] {
        self.protected
    }

    /// The signer.
    pub fn kid(&self) -> &Kid {
        &self.kid
    }

    /// The kid's bytes as they appear in the protected header.
    pub fn kid_bytes(&self) -> &'a [u8] {
        self.kid_bytes
    }

    /// The payload bytes (opaque here; deterministic CBOR is checked by [`crate::cbor`]).
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }

    /// The signature (already known to be in range and low-S).
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// The Sig_structure `["Signature1", protected, h'', payload]` that was signed.
    pub fn sig_structure(&self) -> Vec<u8> {
        self.signed_parts().concat()
    }

    /// The Sig_structure as slices of the message, in order.
    fn signed_parts(&self) -> [&'a [u8]; 4] {
        [
            SIG_STRUCTURE_PREFIX,
            self.protected_item,
            EMPTY_BSTR,
            self.payload_item,
        ]
    }

    /// Verifies the signature under `key` with `backend` ([`P256Backend`] anywhere,
    /// `RingBackend` (feature `ring`) on servers); every backend gives the same answer.
    ///
    /// Checking that `key` belongs to [`CoseSign1::kid`] is the caller's job (the registry).
    pub fn verify<B: VerifyBackend + ?Sized>(
        &self,
        key: &PublicKey,
        backend: &B,
    ) -> Result<(), CoseError> {
        if backend.verify_es256(key, &self.signed_parts(), &self.signature.to_bytes()) {
            Ok(())
        } else {
            Err(CoseError::BadSignature)
        }
    }
}

/// Checks the protected map `A2 01 26 04 <bstr kid>` exactly; returns the kid's offset in the
/// message and its bytes.
fn parse_protected(protected: &[u8], offset: usize) -> Result<(usize, &[u8]), CoseError> {
    for (i, want) in PROTECTED_PREFIX.iter().enumerate() {
        if protected.get(i) != Some(want) {
            return Err(CoseError::WrongProtectedHeader { offset: offset + i });
        }
    }
    let mut r = Reader {
        buf: protected,
        pos: PROTECTED_PREFIX.len(),
    };
    let (kid_item, kid) = r.bstr("kid").map_err(|e| match e {
        CoseError::NonShortestLength { offset: o, len } => CoseError::NonShortestLength {
            offset: offset + o,
            len,
        },
        // Anything else is the protected map not being {1: -7, 4: bstr}.
        _ => CoseError::WrongProtectedHeader {
            offset: offset + PROTECTED_PREFIX.len(),
        },
    })?;
    if r.pos != protected.len() {
        return Err(CoseError::WrongProtectedHeader {
            offset: offset + r.pos,
        });
    }
    let kid_offset = offset + PROTECTED_PREFIX.len() + (kid_item.len() - kid.len());
    Ok((kid_offset, kid))
}

/// Appends the shortest head of a byte string of `len` bytes.
fn write_bstr_head(out: &mut Vec<u8>, len: usize) {
    // `as` casts below are guarded by the range of each arm.
    match len {
        0..=23 => out.push(0x40 | len as u8),
        24..=0xff => out.extend_from_slice(&[0x58, len as u8]),
        0x100..=0xffff => {
            out.push(0x59);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(0x5a);
            out.extend_from_slice(&(len as u32).to_be_bytes());
        }
    }
}

/// Length of a byte string item (head plus content) of `len` bytes.
fn bstr_item_len(len: usize) -> usize {
    let head = match len {
        0..=23 => 1,
        24..=0xff => 2,
        0x100..=0xffff => 3,
        _ => 5,
    };
    head + len
}

/// The protected header map for `kid`: `A2 01 26 04 <bstr kid>` (SPEC §2).
pub fn protected_header(kid: &Kid) -> Vec<u8> {
    let kid_len = kid.encoded_len();
    let mut out = Vec::with_capacity(PROTECTED_PREFIX.len() + bstr_item_len(kid_len));
    out.extend_from_slice(&PROTECTED_PREFIX);
    write_bstr_head(&mut out, kid_len);
    kid.write_to(&mut out);
    out
}

/// The length of the COSE_Sign1 message that signs `payload_len` bytes under `kid`: what a
/// device must reserve in its queue before it signs.
pub fn signed_message_len(kid: &Kid, payload_len: usize) -> usize {
    message_len(
        PROTECTED_PREFIX.len() + bstr_item_len(kid.encoded_len()),
        payload_len,
    )
}

/// Total message length for this protected header and payload.
fn message_len(protected_len: usize, payload_len: usize) -> usize {
    2 + bstr_item_len(protected_len) + 1 + bstr_item_len(payload_len) + SIGNATURE_HEAD.len() + 64
}

fn check_size(protected_len: usize, payload_len: usize) -> Result<(), CoseError> {
    let got = message_len(protected_len, payload_len);
    if got > MAX_MESSAGE_LEN {
        return Err(CoseError::TooLarge {
            got,
            max: MAX_MESSAGE_LEN,
        });
    }
    Ok(())
}

/// The Sig_structure to sign for `kid` and `payload`: for signers outside this crate (a secure
/// element with random nonces), who then call [`assemble`]. Fails if the message would exceed
/// [`MAX_MESSAGE_LEN`].
pub fn to_be_signed(kid: &Kid, payload: &[u8]) -> Result<Vec<u8>, CoseError> {
    let protected = protected_header(kid);
    check_size(protected.len(), payload.len())?;
    let mut out = Vec::with_capacity(
        SIG_STRUCTURE_PREFIX.len()
            + bstr_item_len(protected.len())
            + 1
            + bstr_item_len(payload.len()),
    );
    out.extend_from_slice(SIG_STRUCTURE_PREFIX);
    write_bstr_head(&mut out, protected.len());
    out.extend_from_slice(&protected);
    out.extend_from_slice(EMPTY_BSTR);
    write_bstr_head(&mut out, payload.len());
    out.extend_from_slice(payload);
    Ok(out)
}

/// Builds the message `D2 84 <bstr protected> A0 <bstr payload> 58 40 <signature>` from a
/// signature made elsewhere over [`to_be_signed`]. The [`Signature`] type guarantees low S.
pub fn assemble(kid: &Kid, payload: &[u8], signature: &Signature) -> Result<Vec<u8>, CoseError> {
    let protected = protected_header(kid);
    check_size(protected.len(), payload.len())?;
    let mut out = Vec::with_capacity(message_len(protected.len(), payload.len()));
    out.extend_from_slice(&[COSE_SIGN1_TAG, 0x84]);
    write_bstr_head(&mut out, protected.len());
    out.extend_from_slice(&protected);
    out.push(0xa0);
    write_bstr_head(&mut out, payload.len());
    out.extend_from_slice(payload);
    out.extend_from_slice(&SIGNATURE_HEAD);
    out.extend_from_slice(&signature.to_bytes());
    Ok(out)
}

/// Signs `payload` as `kid` with `key` (feature `sign`): RFC 6979 nonce, low S. Fails only if
/// the message would exceed [`MAX_MESSAGE_LEN`].
#[cfg(feature = "sign")]
pub fn sign_message(kid: &Kid, payload: &[u8], key: &SecretKey) -> Result<Vec<u8>, CoseError> {
    let protected = protected_header(kid);
    check_size(protected.len(), payload.len())?;
    let mut protected_head = Vec::with_capacity(3);
    write_bstr_head(&mut protected_head, protected.len());
    let mut payload_head = Vec::with_capacity(5);
    write_bstr_head(&mut payload_head, payload.len());
    let signature = key.sign_parts(&[
        SIG_STRUCTURE_PREFIX,
        &protected_head,
        &protected,
        EMPTY_BSTR,
        &payload_head,
        payload,
    ]);
    assemble(kid, payload, &signature)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_shortest() {
        for len in [0usize, 23, 24, 255, 256, 16384, 65535, 65536] {
            let mut out = Vec::new();
            write_bstr_head(&mut out, len);
            assert_eq!(out.len() + len, bstr_item_len(len));
            out.resize(out.len() + len, 0);
            let mut r = Reader { buf: &out, pos: 0 };
            let (item, content) = r.bstr("test").unwrap();
            assert_eq!(item.len(), out.len());
            assert_eq!(content.len(), len);
        }
    }

    #[test]
    fn rejects_long_forms() {
        let buf = [0x58, 0x05, 1, 2, 3, 4, 5];
        let mut r = Reader { buf: &buf, pos: 0 };
        assert_eq!(
            r.bstr("x"),
            Err(CoseError::NonShortestLength { offset: 0, len: 5 })
        );
        let buf = [0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        let mut r = Reader { buf: &buf, pos: 0 };
        assert_eq!(
            r.bstr("x"),
            Err(CoseError::Truncated {
                offset: 9,
                field: "x"
            })
        );
        let buf = [0x5f, 0x41, 0x00, 0xff];
        let mut r = Reader { buf: &buf, pos: 0 };
        assert!(matches!(r.bstr("x"), Err(CoseError::BadStructure { .. })));
    }
}
