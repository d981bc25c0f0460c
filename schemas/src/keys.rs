//! Identifiers and P-256 key material, each parsed once into a checked, fixed-size type.
//!
//! Everything here comes from outside (MQTT topics, COSE kids, registry records, bundles), so every
//! constructor validates and returns a typed error saying what was wrong; once a value of one of
//! these types exists, the rest of the system never re-checks it:
//!
//! - [`DeviceId`] and [`OperatorName`]: `[a-z0-9][a-z0-9._-]{0,63}` (SPEC §1), stored inline (no
//!   allocation, `Copy`) so they can sit in hot-path structures and on firmware.
//! - [`Kid`]: the COSE `kid` of SPEC §2/§4, either a device id or `operator:{name}`. The two forms
//!   cannot be confused: `:` is outside the device-id alphabet.
//! - [`PublicKey`]: a P-256 point, accepted only as the 65-byte uncompressed SEC1 form the wire
//!   uses, checked on the curve once; it keeps both the parsed point (for the `p256` backend) and
//!   the 65 bytes (for `ring`), so verification never re-parses.
//! - [`Signature`]: raw `r || s`, with `0 < r, s < n` and **low S** (`s <= n/2`, SPEC §2) checked at
//!   parse time, so a malleated signature is rejected the same way whatever backend verifies it.
//! - `SecretKey` (feature `sign`): signs with RFC 6979 nonces and low-S normalisation; its
//!   `Debug` is redacted and the scalar is zeroized on drop (by `p256`'s `SigningKey`).

use core::fmt;
use core::str::FromStr;

use crate::Hash32;

/// Longest device id or operator name, in bytes (SPEC §1: one leading character plus up to 63).
pub const MAX_NAME_LEN: usize = 64;

/// The prefix of an operator kid (SPEC §4: `operator:{name}`).
pub const OPERATOR_PREFIX: &str = "operator:";

/// Longest kid in bytes: `operator:` plus a 64-byte name.
pub const MAX_KID_LEN: usize = OPERATOR_PREFIX.len() + MAX_NAME_LEN;

/// The P-256 group order `n`, big-endian.
pub const P256_ORDER: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

/// `floor(n / 2)`, big-endian: the largest `s` a signature may carry (SPEC §2, low S).
pub const P256_HALF_ORDER: [u8; 32] = [
    0x7f, 0xff, 0xff, 0xff, 0x80, 0x00, 0x00, 0x00, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xde, 0x73, 0x7d, 0x56, 0xd3, 0x8b, 0xcf, 0x42, 0x79, 0xdc, 0xe5, 0x61, 0x7e, 0x31, 0x92, 0xa8,
];

// ---------------------------------------------------------------------------------------------
// Names: device ids, operator names, kids.
// ---------------------------------------------------------------------------------------------

/// A device id, operator name or kid could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The name was empty.
    #[error("name is empty")]
    Empty,
    /// The name was longer than [`MAX_NAME_LEN`] bytes.
    #[error("name has {got} bytes, max {max}")]
    TooLong {
        /// Bytes found.
        got: usize,
        /// The limit.
        max: usize,
    },
    /// A byte outside the allowed alphabet (`[a-z0-9]` first, then `[a-z0-9._-]`).
    #[error("byte {byte:#04x} at offset {offset} is not allowed in a name")]
    BadChar {
        /// Offset of the byte within the name.
        offset: usize,
        /// The byte found.
        byte: u8,
    },
}

/// Checks the SPEC §1 name rule `[a-z0-9][a-z0-9._-]{0,63}`.
fn check_name(bytes: &[u8]) -> Result<(), IdError> {
    if bytes.is_empty() {
        return Err(IdError::Empty);
    }
    if bytes.len() > MAX_NAME_LEN {
        return Err(IdError::TooLong {
            got: bytes.len(),
            max: MAX_NAME_LEN,
        });
    }
    for (offset, &byte) in bytes.iter().enumerate() {
        let ok = byte.is_ascii_lowercase()
            || byte.is_ascii_digit()
            || (offset > 0 && matches!(byte, b'.' | b'_' | b'-'));
        if !ok {
            return Err(IdError::BadChar { offset, byte });
        }
    }
    Ok(())
}

/// A validated name stored inline: zero-padded bytes plus a length.
///
/// Field order matters for the derived `Ord`: comparing the zero-padded bytes first gives the
/// bytewise order of the strings (no allowed character is `0x00`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Name {
    bytes: [u8; MAX_NAME_LEN],
    len: u8,
}

impl Name {
    fn parse(bytes: &[u8]) -> Result<Name, IdError> {
        check_name(bytes)?;
        let mut buf = [0u8; MAX_NAME_LEN];
        buf[..bytes.len()].copy_from_slice(bytes);
        // `check_name` bounds the length by 64, so it fits in a u8.
        let len = u8::try_from(bytes.len()).map_err(|_| IdError::TooLong {
            got: bytes.len(),
            max: MAX_NAME_LEN,
        })?;
        Ok(Name { bytes: buf, len })
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    fn as_str(&self) -> &str {
        // Only ASCII was admitted by `check_name`, so this never falls back.
        core::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }
}

macro_rules! name_type {
    ($(#[$doc:meta])* $ty:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $ty(Name);

        impl $ty {
            #[doc = concat!("Parses a ", $what, " from its UTF-8 bytes.")]
            pub fn from_bytes(bytes: &[u8]) -> Result<$ty, IdError> {
                Name::parse(bytes).map($ty)
            }

            #[doc = concat!("Parses a ", $what, ".")]
            pub fn new(text: &str) -> Result<$ty, IdError> {
                $ty::from_bytes(text.as_bytes())
            }

            #[doc = concat!("The ", $what, " as text.")]
            pub fn as_str(&self) -> &str {
                self.0.as_str()
            }

            #[doc = concat!("The ", $what, " as UTF-8 bytes.")]
            pub fn as_bytes(&self) -> &[u8] {
                self.0.as_bytes()
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($ty), self.as_str())
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $ty {
            type Err = IdError;
            fn from_str(text: &str) -> Result<$ty, IdError> {
                $ty::new(text)
            }
        }

        impl TryFrom<&str> for $ty {
            type Error = IdError;
            fn try_from(text: &str) -> Result<$ty, IdError> {
                $ty::new(text)
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }

        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<$ty, D::Error> {
                struct V;
                impl serde::de::Visitor<'_> for V {
                    type Value = $ty;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str(concat!("a ", $what))
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<$ty, E> {
                        $ty::new(v).map_err(E::custom)
                    }
                }
                d.deserialize_str(V)
            }
        }
    };
}

name_type!(
    /// A device id (SPEC §1): `[a-z0-9][a-z0-9._-]{0,63}`, stored inline.
    DeviceId,
    "device id"
);

name_type!(
    /// The `{name}` of an operator kid `operator:{name}` (SPEC §4), same alphabet as a device id.
    OperatorName,
    "operator name"
);

/// A COSE kid (SPEC §2, §4): who signed a message.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kid {
    /// A device's own key: the kid is the device id.
    Device(DeviceId),
    /// A site's operator key: the kid is `operator:{name}`.
    Operator(OperatorName),
}

impl Kid {
    /// Parses kid bytes: `operator:{name}` is an operator, anything else must be a device id.
    pub fn from_bytes(bytes: &[u8]) -> Result<Kid, IdError> {
        match bytes.strip_prefix(OPERATOR_PREFIX.as_bytes()) {
            Some(name) => OperatorName::from_bytes(name)
                .map(Kid::Operator)
                .map_err(|e| match e {
                    // Report offsets within the whole kid, not within the name.
                    IdError::BadChar { offset, byte } => IdError::BadChar {
                        offset: offset + OPERATOR_PREFIX.len(),
                        byte,
                    },
                    other => other,
                }),
            None => DeviceId::from_bytes(bytes).map(Kid::Device),
        }
    }

    /// Parses a kid from text.
    pub fn new(text: &str) -> Result<Kid, IdError> {
        Kid::from_bytes(text.as_bytes())
    }

    /// The device id, if this is a device kid.
    pub fn device(&self) -> Option<&DeviceId> {
        match self {
            Kid::Device(id) => Some(id),
            Kid::Operator(_) => None,
        }
    }

    /// The operator name, if this is an operator kid.
    pub fn operator(&self) -> Option<&OperatorName> {
        match self {
            Kid::Operator(name) => Some(name),
            Kid::Device(_) => None,
        }
    }

    /// Length of the kid's UTF-8 encoding in bytes.
    pub fn encoded_len(&self) -> usize {
        match self {
            Kid::Device(id) => id.as_bytes().len(),
            Kid::Operator(name) => OPERATOR_PREFIX.len() + name.as_bytes().len(),
        }
    }

    /// Appends the kid's UTF-8 bytes (what goes into the COSE protected header) to `out`.
    pub fn write_to(&self, out: &mut alloc::vec::Vec<u8>) {
        match self {
            Kid::Device(id) => out.extend_from_slice(id.as_bytes()),
            Kid::Operator(name) => {
                out.extend_from_slice(OPERATOR_PREFIX.as_bytes());
                out.extend_from_slice(name.as_bytes());
            }
        }
    }

    /// The kid's UTF-8 bytes.
    pub fn to_vec(&self) -> alloc::vec::Vec<u8> {
        let mut out = alloc::vec::Vec::with_capacity(self.encoded_len());
        self.write_to(&mut out);
        out
    }
}

impl From<DeviceId> for Kid {
    fn from(id: DeviceId) -> Kid {
        Kid::Device(id)
    }
}

impl From<OperatorName> for Kid {
    fn from(name: OperatorName) -> Kid {
        Kid::Operator(name)
    }
}

impl fmt::Display for Kid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kid::Device(id) => f.write_str(id.as_str()),
            Kid::Operator(name) => write!(f, "{OPERATOR_PREFIX}{name}"),
        }
    }
}

impl fmt::Debug for Kid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Kid({:?})", alloc::format!("{self}"))
    }
}

impl FromStr for Kid {
    type Err = IdError;
    fn from_str(text: &str) -> Result<Kid, IdError> {
        Kid::new(text)
    }
}

impl serde::Serialize for Kid {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Kid {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Kid, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Kid;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a device id or operator:{name}")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Kid, E> {
                Kid::new(v).map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

// ---------------------------------------------------------------------------------------------
// Public keys.
// ---------------------------------------------------------------------------------------------

/// Length of an uncompressed SEC1 P-256 key (`04 || x || y`).
pub const PUBLIC_KEY_LEN: usize = 65;

/// Length of a compressed SEC1 P-256 key (`02|03 || x`).
pub const COMPRESSED_KEY_LEN: usize = 33;

/// A key could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The input had the wrong number of bytes.
    #[error("key has {got} bytes, want {want}")]
    Length {
        /// Bytes found.
        got: usize,
        /// Bytes expected.
        want: usize,
    },
    /// The SEC1 tag byte was not `0x04` (uncompressed); `0x02`/`0x03` (compressed) and `0x00`
    /// (identity) are refused too: the wire form is always uncompressed (SPEC §4, §6).
    #[error("SEC1 tag is {got:#04x}, want 0x04 (uncompressed)")]
    Tag {
        /// The tag found.
        got: u8,
    },
    /// The coordinates were out of range or the point is not on P-256.
    #[error("point is not on the P-256 curve")]
    NotOnCurve,
    /// A secret scalar was zero.
    #[error("secret scalar is zero")]
    SecretZero,
    /// A secret scalar was `>= n`.
    #[error("secret scalar is not below the group order")]
    SecretTooLarge,
}

/// A P-256 public key, validated once (on the curve, not the identity).
///
/// Holds the parsed point for the `p256` backend and the 65-byte encoding for `ring`, so both
/// backends verify without re-parsing or re-encoding.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey {
    sec1: [u8; PUBLIC_KEY_LEN],
    point: p256::ecdsa::VerifyingKey,
}

impl PublicKey {
    /// Parses a 65-byte uncompressed SEC1 key (`04 || x || y`), the only form on the wire.
    pub fn from_sec1_uncompressed(bytes: &[u8]) -> Result<PublicKey, KeyError> {
        let sec1: [u8; PUBLIC_KEY_LEN] = bytes.try_into().map_err(|_| KeyError::Length {
            got: bytes.len(),
            want: PUBLIC_KEY_LEN,
        })?;
        if sec1[0] != 0x04 {
            return Err(KeyError::Tag { got: sec1[0] });
        }
        let point =
            p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).map_err(|_| KeyError::NotOnCurve)?;
        Ok(PublicKey { sec1, point })
    }

    /// The 65-byte uncompressed SEC1 encoding.
    pub fn to_sec1_uncompressed(&self) -> [u8; PUBLIC_KEY_LEN] {
        self.sec1
    }

    /// The 65-byte uncompressed SEC1 encoding, borrowed.
    pub fn as_sec1_uncompressed(&self) -> &[u8; PUBLIC_KEY_LEN] {
        &self.sec1
    }

    /// The 33-byte compressed SEC1 encoding (`02` or `03` by the parity of `y`, then `x`).
    pub fn to_sec1_compressed(&self) -> [u8; COMPRESSED_KEY_LEN] {
        let mut out = [0u8; COMPRESSED_KEY_LEN];
        out[0] = 0x02 | (self.sec1[64] & 1);
        out[1..].copy_from_slice(&self.sec1[1..33]);
        out
    }

    /// The key fingerprint (SPEC §1): BLAKE3 of the compressed SEC1 key; `Display` is lowercase hex.
    pub fn fingerprint(&self) -> Hash32 {
        Hash32::blake3(&self.to_sec1_compressed())
    }

    /// The parsed point, for the RustCrypto backend.
    pub(crate) fn verifying_key(&self) -> &p256::ecdsa::VerifyingKey {
        &self.point
    }
}

impl core::hash::Hash for PublicKey {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        // The encoding determines the point, so hashing it agrees with `Eq`.
        self.sec1.hash(state);
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", hex::encode(self.sec1))
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.sec1))
    }
}

// ---------------------------------------------------------------------------------------------
// Signatures.
// ---------------------------------------------------------------------------------------------

/// Length of a raw ES256 signature `r || s`.
pub const SIGNATURE_LEN: usize = 64;

/// Which half of a signature an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The first 32 bytes.
    R,
    /// The last 32 bytes.
    S,
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Part::R => "r",
            Part::S => "s",
        })
    }
}

/// A signature could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The input was not 64 bytes.
    #[error("signature has {got} bytes, want 64")]
    Length {
        /// Bytes found.
        got: usize,
    },
    /// `r` or `s` was zero.
    #[error("signature {part} is zero")]
    Zero {
        /// Which half.
        part: Part,
    },
    /// `r` or `s` was `>= n`.
    #[error("signature {part} is not below the group order")]
    OutOfRange {
        /// Which half.
        part: Part,
    },
    /// `s > n/2`: a malleated (high-S) signature, refused by SPEC §2.
    #[error("signature s is high (s > n/2)")]
    HighS,
}

/// A raw ES256 signature `r || s` with `0 < r < n` and `0 < s <= n/2` (low S).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature {
    r: [u8; 32],
    s: [u8; 32],
}

impl Signature {
    /// Parses 64 bytes `r || s`, rejecting zero or out-of-range scalars and high S.
    pub fn from_slice(bytes: &[u8]) -> Result<Signature, SignatureError> {
        let raw: &[u8; SIGNATURE_LEN] = bytes
            .try_into()
            .map_err(|_| SignatureError::Length { got: bytes.len() })?;
        Signature::from_bytes(raw)
    }

    /// Parses a 64-byte array `r || s`, rejecting zero or out-of-range scalars and high S.
    pub fn from_bytes(raw: &[u8; SIGNATURE_LEN]) -> Result<Signature, SignatureError> {
        let (r, s) = split(raw);
        // Big-endian byte arrays of equal length compare like the integers they encode.
        if r == [0u8; 32] {
            return Err(SignatureError::Zero { part: Part::R });
        }
        if r >= P256_ORDER {
            return Err(SignatureError::OutOfRange { part: Part::R });
        }
        if s == [0u8; 32] {
            return Err(SignatureError::Zero { part: Part::S });
        }
        if s >= P256_ORDER {
            return Err(SignatureError::OutOfRange { part: Part::S });
        }
        if s > P256_HALF_ORDER {
            return Err(SignatureError::HighS);
        }
        Ok(Signature { r, s })
    }

    /// The 64 bytes `r || s`.
    pub fn to_bytes(&self) -> [u8; SIGNATURE_LEN] {
        let mut out = [0u8; SIGNATURE_LEN];
        out[..32].copy_from_slice(&self.r);
        out[32..].copy_from_slice(&self.s);
        out
    }

    /// The big-endian `r`.
    pub fn r(&self) -> &[u8; 32] {
        &self.r
    }

    /// The big-endian `s` (always `<= n/2`).
    pub fn s(&self) -> &[u8; 32] {
        &self.s
    }
}

/// Splits `r || s` into its two big-endian halves.
pub(crate) fn split(raw: &[u8; SIGNATURE_LEN]) -> ([u8; 32], [u8; 32]) {
    let mut r = [0u8; 32];
    let mut s = [0u8; 32];
    r.copy_from_slice(&raw[..32]);
    s.copy_from_slice(&raw[32..]);
    (r, s)
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", hex::encode(self.to_bytes()))
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.to_bytes()))
    }
}

// ---------------------------------------------------------------------------------------------
// Secret keys (feature `sign`).
// ---------------------------------------------------------------------------------------------

/// A P-256 signing key (feature `sign`).
///
/// `Debug` never shows the scalar; `p256`'s `SigningKey` zeroizes it on drop.
#[cfg(feature = "sign")]
#[derive(Clone)]
pub struct SecretKey {
    inner: p256::ecdsa::SigningKey,
    public: PublicKey,
}

#[cfg(feature = "sign")]
use p256::elliptic_curve::zeroize::Zeroize as _;

#[cfg(feature = "sign")]
impl SecretKey {
    /// Parses a 32-byte big-endian scalar in `[1, n-1]`.
    pub fn from_slice(bytes: &[u8]) -> Result<SecretKey, KeyError> {
        let raw: &[u8; 32] = bytes.try_into().map_err(|_| KeyError::Length {
            got: bytes.len(),
            want: 32,
        })?;
        if raw == &[0u8; 32] {
            return Err(KeyError::SecretZero);
        }
        if raw >= &P256_ORDER {
            return Err(KeyError::SecretTooLarge);
        }
        let mut field = p256::FieldBytes::from(*raw);
        let inner = p256::ecdsa::SigningKey::from_bytes(&field);
        // Wipe our stack copy of the scalar; the caller owns (and should wipe) `bytes`.
        field.zeroize();
        let inner = inner.map_err(|_| KeyError::SecretTooLarge)?;
        let encoded = inner.verifying_key().to_sec1_point(false);
        let public = PublicKey::from_sec1_uncompressed(encoded.as_bytes())?;
        Ok(SecretKey { inner, public })
    }

    /// The test key of `name` (`schemas/vectors/README.md`): scalar =
    /// `BLAKE3("prov test key v1:" || name)`. For test vectors and simulators only: anyone can
    /// derive it.
    pub fn test_key(name: &str) -> Result<SecretKey, KeyError> {
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"prov test key v1:");
        hasher.update(name.as_bytes());
        let mut scalar = *hasher.finalize().as_bytes();
        let key = SecretKey::from_slice(&scalar);
        scalar.zeroize();
        key
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        self.public
    }

    /// Signs `message` (ES256: ECDSA P-256 over SHA-256), with an RFC 6979 nonce and `s`
    /// normalised low.
    pub fn sign(&self, message: &[u8]) -> Signature {
        self.sign_parts(&[message])
    }

    /// Signs the concatenation of `parts` without building it (as [`SecretKey::sign`]).
    pub fn sign_parts(&self, parts: &[&[u8]]) -> Signature {
        use sha2::Digest as _;
        let mut hasher = sha2::Sha256::new();
        for part in parts {
            hasher.update(part);
        }
        self.sign_prehash(hasher.finalize().into())
    }

    fn sign_prehash(&self, digest: [u8; 32]) -> Signature {
        use p256::ecdsa::signature::hazmat::PrehashSigner as _;
        // p256 0.14's RFC 6979 prehash signer never returns an error (its `Result` is only the
        // trait's shape). Were that to change, the zero signature below would verify nowhere:
        // every parser and backend rejects r = 0.
        let raw = self
            .inner
            .sign_prehash(&digest)
            .map(|sig: p256::ecdsa::Signature| sig.normalize_s().to_bytes())
            .map(|bytes| {
                let mut out = [0u8; SIGNATURE_LEN];
                out.copy_from_slice(&bytes);
                out
            })
            .unwrap_or([0u8; SIGNATURE_LEN]);
        let (r, s) = split(&raw);
        Signature { r, s }
    }
}

#[cfg(feature = "sign")]
impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SecretKey(<redacted>, public {})",
            self.public.fingerprint()
        )
    }
}

/// `n - s` for the P-256 order `n` and a big-endian `s < n`: the other half of an ECDSA
/// signature's `(r, ±s)` pair.
pub fn negate_s(s: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let mut d = i16::from(P256_ORDER[i]) - i16::from(s[i]) - borrow;
        borrow = 0;
        if d < 0 {
            d += 256;
            borrow = 1;
        }
        // 0 <= d < 256 here, so the cast is exact.
        out[i] = d as u8;
    }
    out
}

/// Parses `r || s`, replacing a high `s` by `n - s` (the same signature in SPEC §2's low-S form).
/// For signers that do not normalise themselves, such as a secure element with random nonces.
pub fn normalize_low_s(raw: &[u8; 64]) -> Result<Signature, SignatureError> {
    match Signature::from_bytes(raw) {
        Err(SignatureError::HighS) => {
            let mut s = [0u8; 32];
            s.copy_from_slice(&raw[32..]);
            let mut out = *raw;
            out[32..].copy_from_slice(&negate_s(&s));
            Signature::from_bytes(&out)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::string::ToString;

    #[test]
    fn names() {
        assert!(DeviceId::new("a").is_ok());
        assert!(DeviceId::new("line1-commission.2_x").is_ok());
        assert_eq!(DeviceId::new(""), Err(IdError::Empty));
        assert_eq!(
            DeviceId::new("-a"),
            Err(IdError::BadChar {
                offset: 0,
                byte: b'-'
            })
        );
        assert_eq!(
            DeviceId::new("aB"),
            Err(IdError::BadChar {
                offset: 1,
                byte: b'B'
            })
        );
        let long = "a".repeat(65);
        assert_eq!(
            DeviceId::new(&long),
            Err(IdError::TooLong { got: 65, max: 64 })
        );
        assert!(DeviceId::new(&long[..64]).is_ok());
        assert!(DeviceId::new("a").unwrap() < DeviceId::new("aa").unwrap());
        assert!(DeviceId::new("ab").unwrap() < DeviceId::new("b").unwrap());
    }

    #[test]
    fn kids() {
        let k = Kid::new("operator:factory-a").unwrap();
        assert_eq!(k.operator().map(|n| n.as_str()), Some("factory-a"));
        assert_eq!(k.to_string(), "operator:factory-a");
        assert_eq!(k.encoded_len(), 18);
        assert_eq!(k.to_vec(), b"operator:factory-a");
        assert_eq!(
            Kid::new("operator:"),
            Err(IdError::Empty),
            "empty operator name"
        );
        assert_eq!(
            Kid::new("operator:Ab"),
            Err(IdError::BadChar {
                offset: 9,
                byte: b'A'
            })
        );
        assert_eq!(
            Kid::new("operators:a"),
            Err(IdError::BadChar {
                offset: 9,
                byte: b':'
            })
        );
        let d = Kid::new("dev1").unwrap();
        assert_eq!(d.device().map(|d| d.as_str()), Some("dev1"));
        assert_eq!(format!("{d:?}"), "Kid(\"dev1\")");
    }

    #[test]
    fn signature_ranges() {
        let mut raw = [1u8; 64];
        assert!(Signature::from_bytes(&raw).is_ok());
        raw[32..].copy_from_slice(&P256_HALF_ORDER);
        assert!(Signature::from_bytes(&raw).is_ok());
        raw[63] += 1;
        assert_eq!(Signature::from_bytes(&raw), Err(SignatureError::HighS));
        raw[32..].copy_from_slice(&P256_ORDER);
        assert_eq!(
            Signature::from_bytes(&raw),
            Err(SignatureError::OutOfRange { part: Part::S })
        );
        raw[32..].fill(0);
        assert_eq!(
            Signature::from_bytes(&raw),
            Err(SignatureError::Zero { part: Part::S })
        );
        raw[..32].fill(0);
        assert_eq!(
            Signature::from_bytes(&raw),
            Err(SignatureError::Zero { part: Part::R })
        );
        raw[..32].copy_from_slice(&P256_ORDER);
        assert_eq!(
            Signature::from_bytes(&raw),
            Err(SignatureError::OutOfRange { part: Part::R })
        );
        assert_eq!(
            Signature::from_slice(&[1u8; 63]),
            Err(SignatureError::Length { got: 63 })
        );
    }
}
