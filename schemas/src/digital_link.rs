//! GS1 identifiers and GS1 Digital Link URIs (SPEC §1).
//!
//! Why a parsed type rather than strings: every index key, every payload field and every bundle
//! lookup compares identifiers, and SPEC §1 makes the *canonical* URI the one spelling that counts
//! (`https://id.gs1.org`, 14-digit GTIN, uppercase percent-escapes, no lot on an item key, no
//! query, no trailing slash). A [`DigitalLink`] can only be built by parsing, it is always valid
//! (check digits, AI 82 character set) and it prints only in canonical form, so two spellings of
//! one product can never end up as two keys.
//!
//! Three ways in, for the three places identifiers come from:
//! - [`DigitalLink::parse_canonical`]: signed payloads, which must already be canonical;
//! - [`DigitalLink::parse`]: what a phone reads from a QR code (any http(s) resolver host, lot
//!   qualifier, query attributes, percent-escapes in any case), mapped to the canonical key;
//! - [`DigitalLink::parse_element_string`]: what a barcode scanner emits, in human-readable
//!   `(01)…(21)…` form or raw with FNC1 as ASCII GS and an optional symbology identifier.
//!
//! Not supported (rejected with a typed error): path prefixes before the primary key on brand
//! resolvers, the `22` (consumer product variant) qualifier, the `254` GLN extension, and primary
//! keys other than GTIN, SSCC and GLN.

use alloc::borrow::ToOwned;
use alloc::string::String;
use core::fmt;

/// The host every canonical URI uses (SPEC §1).
pub const CANONICAL_HOST: &str = "https://id.gs1.org";

/// Longest serial number or lot (GS1 AI 21 and AI 10: up to 20 characters).
pub const MAX_SERIAL_LEN: usize = 20;

/// ASCII group separator: FNC1 as scanners transmit it inside raw element strings.
pub const GS: char = '\u{1d}';

/// Why an identifier, a Digital Link URI or an element string was rejected.
///
/// `index` fields count characters inside the one value named by `what`; `offset` fields count
/// bytes from the start of the whole input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigitalLinkError {
    /// A value has the wrong number of characters.
    #[error("{what} has {got} characters, want {want}")]
    Length {
        /// Which value (`GTIN`, `SSCC`, `GLN`, `serial`, `lot`).
        what: &'static str,
        /// Characters found.
        got: usize,
        /// What is accepted.
        want: &'static str,
    },
    /// A character that is not allowed in this value (a non-digit in a GTIN, a character outside
    /// the AI 82 set in a serial, or, with `what == "URI"`, a character not allowed raw in a URI).
    #[error("{what} has {ch:?} at index {index}, which is not allowed there")]
    BadChar {
        /// Which value.
        what: &'static str,
        /// Position of the character (in the value, or the byte offset in the URI).
        index: usize,
        /// The character.
        ch: char,
    },
    /// The mod-10 check digit does not match the other digits.
    #[error("{what} check digit is {got}, want {want}")]
    CheckDigit {
        /// Which value.
        what: &'static str,
        /// The check digit found.
        got: u8,
        /// The check digit the other digits call for.
        want: u8,
    },
    /// The URI does not start with `http://` or `https://`.
    #[error("not an http(s) URI")]
    Scheme,
    /// The host is empty, carries user information or has characters a host cannot have.
    #[error("bad host at byte {offset}")]
    Host {
        /// Byte offset of the problem.
        offset: usize,
    },
    /// A `%` not followed by two hex digits.
    #[error("bad percent-escape at byte {offset}")]
    BadPercent {
        /// Byte offset of the `%`.
        offset: usize,
    },
    /// An application identifier this system does not use (or not a number at all).
    #[error("unknown or unsupported application identifier {ai:?} at byte {offset}")]
    UnknownAi {
        /// The AI as found.
        ai: String,
        /// Byte offset of the AI.
        offset: usize,
    },
    /// A known application identifier in a place it cannot be (wrong order, repeated, a
    /// qualifier without its primary key, a qualifier on an SSCC or GLN).
    #[error("application identifier {ai} at byte {offset} is out of place")]
    UnexpectedAi {
        /// The AI.
        ai: &'static str,
        /// Byte offset of the AI.
        offset: usize,
    },
    /// An application identifier with no value after it.
    #[error("application identifier {ai} has no value")]
    MissingValue {
        /// The AI.
        ai: &'static str,
    },
    /// A GTIN with neither a serial nor a lot: names a product class, not anything this system
    /// tracks.
    #[error("GTIN {gtin} needs a serial (21) or a lot (10)")]
    IncompleteKey {
        /// The GTIN found.
        gtin: Gtin,
    },
    /// No primary key (`01`, `00` or `414`) at all.
    #[error("no primary key (01, 00 or 414)")]
    NoPrimaryKey,
    /// The path ends with `/`.
    #[error("trailing slash")]
    TrailingSlash,
    /// Two slashes in a row.
    #[error("empty path segment at byte {offset}")]
    EmptySegment {
        /// Byte offset of the empty segment.
        offset: usize,
    },
    /// A valid Digital Link that is not in canonical form where only the canonical form is
    /// accepted.
    #[error("URI is not canonical: first difference at byte {offset}, canonical form is {want}")]
    NotCanonical {
        /// First byte where the input departs from the canonical form.
        offset: usize,
        /// The canonical form.
        want: String,
    },
    /// In an element string: something other than an application identifier where one must be.
    #[error("element string: expected an application identifier at byte {offset}")]
    ExpectedAi {
        /// Byte offset.
        offset: usize,
    },
}

type Result<T> = core::result::Result<T, DigitalLinkError>;

/// The GS1 mod-10 check digit for `body` (ASCII digits, without the check digit).
fn check_digit(body: &[u8]) -> u8 {
    let sum: u32 = body
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| u32::from(d - b'0') * if i % 2 == 0 { 3 } else { 1 })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

/// Checks that `text` is all digits with one of the `lengths` and a valid check digit.
fn digits_with_check(
    what: &'static str,
    text: &str,
    lengths: &[usize],
    want: &'static str,
) -> Result<()> {
    if let Some((index, ch)) = text.chars().enumerate().find(|(_, c)| !c.is_ascii_digit()) {
        return Err(DigitalLinkError::BadChar { what, index, ch });
    }
    if !lengths.contains(&text.len()) {
        return Err(DigitalLinkError::Length {
            what,
            got: text.len(),
            want,
        });
    }
    let bytes = text.as_bytes();
    let (body, last) = bytes.split_at(bytes.len() - 1);
    let got = last.first().map_or(0, |d| d - b'0');
    let want = check_digit(body);
    if got != want {
        return Err(DigitalLinkError::CheckDigit { what, got, want });
    }
    Ok(())
}

fn ascii_str(bytes: &[u8]) -> &str {
    // Every constructor stores ASCII digits only, so this never falls back.
    core::str::from_utf8(bytes).unwrap_or_default()
}

macro_rules! digit_key {
    ($(#[$doc:meta])* $name:ident, $len:literal, $what:literal, $lengths:expr, $want:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name([u8; $len]);

        impl $name {
            #[doc = concat!("Parses a ", $what, " (", $want, " digits), validating the check digit.")]
            pub fn parse(text: &str) -> Result<$name> {
                digits_with_check($what, text, $lengths, $want)?;
                let mut out = [b'0'; $len];
                out[$len - text.len()..].copy_from_slice(text.as_bytes());
                Ok($name(out))
            }

            #[doc = concat!("The ", $len, " digits.")]
            pub fn as_str(&self) -> &str {
                ascii_str(&self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.as_str())
            }
        }
    };
}

digit_key!(
    /// A Global Trade Item Number, always held as GTIN-14 (GTIN-8/12/13 are left-padded with
    /// zeros on parsing, as GS1 prescribes), with a valid check digit.
    Gtin,
    14,
    "GTIN",
    &[8, 12, 13, 14],
    "8, 12, 13 or 14"
);
digit_key!(
    /// A Serial Shipping Container Code (a case or pallet): 18 digits, valid check digit.
    Sscc,
    18,
    "SSCC",
    &[18],
    "18"
);
digit_key!(
    /// A Global Location Number: 13 digits, valid check digit.
    Gln,
    13,
    "GLN",
    &[13],
    "13"
);

/// Whether `b` is in the GS1 AI encodable character set 82 (GS1 General Specifications
/// Figure 7.11-1): the 82 printable ASCII characters except space `#$@[\]^`{|}~`.
pub fn is_ai82(b: u8) -> bool {
    matches!(b,
        b'!' | b'"' | b'%'..=b'/' | b'0'..=b'9' | b':'..=b'?' | b'A'..=b'Z' | b'_' | b'a'..=b'z')
}

fn ai82(what: &'static str, text: &str) -> Result<()> {
    let got = text.chars().count();
    if got == 0 || got > MAX_SERIAL_LEN {
        return Err(DigitalLinkError::Length {
            what,
            got,
            want: "1 to 20",
        });
    }
    match text
        .chars()
        .enumerate()
        .find(|(_, c)| !c.is_ascii() || !is_ai82(*c as u8))
    {
        Some((index, ch)) => Err(DigitalLinkError::BadChar { what, index, ch }),
        None => Ok(()),
    }
}

macro_rules! ai82_value {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            #[doc = concat!("Parses a ", $what, ": 1 to 20 characters of the AI 82 set (not percent-encoded).")]
            pub fn parse(text: &str) -> Result<$name> {
                ai82($what, text)?;
                Ok($name(text.to_owned()))
            }

            #[doc = concat!("The ", $what, " as plain text.")]
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({:?})"), self.0)
            }
        }
    };
}

ai82_value!(
    /// A serial number (GS1 AI 21) of one item.
    Serial,
    "serial"
);
ai82_value!(
    /// A batch or lot number (GS1 AI 10).
    Lot,
    "lot"
);

/// One identifier of the system, in the form SPEC §1 prescribes.
///
/// Ordered (by variant, then value) and hashable so that it can key indexes directly.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DigitalLink {
    /// One serialized item: `/01/{gtin}/21/{serial}`.
    Item {
        /// The product.
        gtin: Gtin,
        /// The item's serial number.
        serial: Serial,
    },
    /// A lot (a class of items): `/01/{gtin}/10/{lot}`.
    Lot {
        /// The product.
        gtin: Gtin,
        /// The lot.
        lot: Lot,
    },
    /// A logistic unit (case, pallet): `/00/{sscc}`.
    Sscc(Sscc),
    /// A location (site, read point): `/414/{gln}`.
    Location(Gln),
}

/// Appends `value` with every character outside RFC 3986 "unreserved" percent-encoded in
/// uppercase hex (SPEC §1).
fn push_encoded(out: &mut String, value: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
}

/// Whether `b` may appear raw in a URI path segment (RFC 3986 `pchar` minus `%`).
fn is_pchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
        )
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decodes one path segment found at byte `base` of the URI. The result is ASCII (a
/// decoded byte above 0x7f is reported as a bad character).
fn percent_decode(segment: &str, base: usize) -> Result<String> {
    let bytes = segment.as_bytes();
    let mut out = String::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let pair = (bytes.get(i + 1).copied(), bytes.get(i + 2).copied());
            let decoded = match pair {
                (Some(h), Some(l)) => hex_val(h).zip(hex_val(l)).map(|(h, l)| h << 4 | l),
                _ => None,
            };
            let d = decoded.ok_or(DigitalLinkError::BadPercent { offset: base + i })?;
            if !d.is_ascii() {
                return Err(DigitalLinkError::BadChar {
                    what: "URI",
                    index: base + i,
                    ch: char::from(d),
                });
            }
            out.push(char::from(d));
            i += 3;
        } else if is_pchar(b) {
            out.push(char::from(b));
            i += 1;
        } else {
            let ch = segment
                .get(i..)
                .and_then(|s| s.chars().next())
                .unwrap_or(char::REPLACEMENT_CHARACTER);
            return Err(DigitalLinkError::BadChar {
                what: "URI",
                index: base + i,
                ch,
            });
        }
    }
    Ok(out)
}

/// The application identifiers this module understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ai {
    Sscc,
    Gtin,
    Lot,
    Serial,
    Gln,
    /// Dates (11 production, 12 due, 13 packaging, 15 best before, 16 sell by, 17 expiry):
    /// attributes a scanner may report, skipped when building the key.
    Date(&'static str),
}

impl Ai {
    fn code(self) -> &'static str {
        match self {
            Ai::Sscc => "00",
            Ai::Gtin => "01",
            Ai::Lot => "10",
            Ai::Serial => "21",
            Ai::Gln => "414",
            Ai::Date(code) => code,
        }
    }

    fn from_code(code: &str) -> Option<Ai> {
        Some(match code {
            "00" => Ai::Sscc,
            "01" => Ai::Gtin,
            "10" => Ai::Lot,
            "21" => Ai::Serial,
            "414" => Ai::Gln,
            "11" => Ai::Date("11"),
            "12" => Ai::Date("12"),
            "13" => Ai::Date("13"),
            "15" => Ai::Date("15"),
            "16" => Ai::Date("16"),
            "17" => Ai::Date("17"),
            _ => return None,
        })
    }

    /// What the value is called in errors.
    fn what(self) -> &'static str {
        match self {
            Ai::Sscc => "SSCC",
            Ai::Gtin => "GTIN",
            Ai::Lot => "lot",
            Ai::Serial => "serial",
            Ai::Gln => "GLN",
            Ai::Date(_) => "date",
        }
    }

    /// In an element string, a fixed-length value must have exactly its length (a GTIN is
    /// always 14 digits there, unlike in a URI path).
    fn check_fixed(self, value: &str) -> Result<()> {
        let want = match self {
            Ai::Sscc => "18",
            Ai::Gtin => "14",
            Ai::Gln => "13",
            Ai::Date(_) => "6 digits",
            Ai::Lot | Ai::Serial => return Ok(()),
        };
        if self.fixed_len() != Some(value.len()) {
            return Err(DigitalLinkError::Length {
                what: self.what(),
                got: value.len(),
                want,
            });
        }
        Ok(())
    }

    /// The value length of a fixed-length AI.
    fn fixed_len(self) -> Option<usize> {
        match self {
            Ai::Sscc => Some(18),
            Ai::Gtin => Some(14),
            Ai::Gln => Some(13),
            Ai::Date(_) => Some(6),
            Ai::Lot | Ai::Serial => None,
        }
    }
}

/// Collects (AI, value) pairs and turns them into a [`DigitalLink`]; shared by the URI and the
/// element-string parsers so both apply the same rules.
#[derive(Default)]
struct KeyParts {
    gtin: Option<Gtin>,
    sscc: Option<Sscc>,
    gln: Option<Gln>,
    lot: Option<Lot>,
    serial: Option<Serial>,
}

impl KeyParts {
    fn add(&mut self, ai: Ai, value: &str, offset: usize) -> Result<()> {
        let class_key = self.sscc.is_some() || self.gln.is_some();
        let conflict = match ai {
            Ai::Gtin => self.gtin.is_some() || class_key,
            Ai::Lot => self.lot.is_some() || class_key,
            Ai::Serial => self.serial.is_some() || class_key,
            Ai::Sscc | Ai::Gln => {
                class_key || self.gtin.is_some() || self.lot.is_some() || self.serial.is_some()
            }
            Ai::Date(_) => false,
        };
        if conflict {
            return Err(DigitalLinkError::UnexpectedAi {
                ai: ai.code(),
                offset,
            });
        }
        match ai {
            Ai::Gtin => self.gtin = Some(Gtin::parse(value)?),
            Ai::Sscc => self.sscc = Some(Sscc::parse(value)?),
            Ai::Gln => self.gln = Some(Gln::parse(value)?),
            Ai::Lot => self.lot = Some(Lot::parse(value)?),
            Ai::Serial => self.serial = Some(Serial::parse(value)?),
            Ai::Date(_) => {
                if value.len() != 6 || !value.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(DigitalLinkError::Length {
                        what: "date",
                        got: value.len(),
                        want: "6 digits",
                    });
                }
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<DigitalLink> {
        if let Some(sscc) = self.sscc {
            return Ok(DigitalLink::Sscc(sscc));
        }
        if let Some(gln) = self.gln {
            return Ok(DigitalLink::Location(gln));
        }
        let gtin = self.gtin.ok_or(DigitalLinkError::NoPrimaryKey)?;
        match (self.serial, self.lot) {
            (Some(serial), _) => Ok(DigitalLink::Item { gtin, serial }),
            (None, Some(lot)) => Ok(DigitalLink::Lot { gtin, lot }),
            (None, None) => Err(DigitalLinkError::IncompleteKey { gtin }),
        }
    }
}

impl DigitalLink {
    /// Parses a GS1 Digital Link URI as a QR code carries it: `http` or `https`, any resolver
    /// host, `/01/{gtin}[/10/{lot}][/21/{serial}]`, `/00/{sscc}` or `/414/{gln}`; percent-escapes
    /// in either case; query string and fragment dropped. An item key drops its lot.
    pub fn parse(uri: &str) -> Result<DigitalLink> {
        let after_scheme = strip_prefix_ci(uri, "https://")
            .or_else(|| strip_prefix_ci(uri, "http://"))
            .ok_or(DigitalLinkError::Scheme)?;
        let host_at = uri.len() - after_scheme.len();
        let host_end = after_scheme
            .find(['/', '?', '#'])
            .unwrap_or(after_scheme.len());
        let host = after_scheme.get(..host_end).unwrap_or_default();
        check_host(host, host_at)?;
        let path_at = host_at + host_end;
        let rest = after_scheme.get(host_end..).unwrap_or_default();
        let path = &rest[..rest.find(['?', '#']).unwrap_or(rest.len())];
        let Some(path) = path.strip_prefix('/') else {
            return Err(DigitalLinkError::NoPrimaryKey);
        };
        if path.is_empty() {
            return Err(DigitalLinkError::NoPrimaryKey);
        }
        if path.ends_with('/') {
            return Err(DigitalLinkError::TrailingSlash);
        }
        // (segment, byte offset in `uri`)
        let mut offset = path_at + 1;
        let mut segments = path.split('/').map(|s| {
            let at = offset;
            offset += s.len() + 1;
            (s, at)
        });
        let mut parts = KeyParts::default();
        // The AIs allowed next, in order: GS1 Digital Link fixes the qualifier order.
        let mut allowed: &[Ai] = &[Ai::Gtin, Ai::Sscc, Ai::Gln];
        while let Some((code, at)) = segments.next() {
            if code.is_empty() {
                return Err(DigitalLinkError::EmptySegment { offset: at });
            }
            let ai = Ai::from_code(code)
                .filter(|ai| !matches!(ai, Ai::Date(_)))
                .ok_or_else(|| DigitalLinkError::UnknownAi {
                    ai: code.to_owned(),
                    offset: at,
                })?;
            let Some(pos) = allowed.iter().position(|a| *a == ai) else {
                return Err(DigitalLinkError::UnexpectedAi {
                    ai: ai.code(),
                    offset: at,
                });
            };
            allowed = match ai {
                Ai::Gtin => &[Ai::Lot, Ai::Serial],
                Ai::Sscc | Ai::Gln => &[],
                _ => allowed.get(pos + 1..).unwrap_or_default(),
            };
            let (raw, value_at) = segments
                .next()
                .ok_or(DigitalLinkError::MissingValue { ai: ai.code() })?;
            if raw.is_empty() {
                return Err(DigitalLinkError::EmptySegment { offset: value_at });
            }
            let value = percent_decode(raw, value_at)?;
            parts.add(ai, &value, at)?;
        }
        parts.finish()
    }

    /// Parses only the canonical form (SPEC §1): what signed payloads must carry.
    pub fn parse_canonical(uri: &str) -> Result<DigitalLink> {
        let link = DigitalLink::parse(uri)?;
        let want = link.canonical();
        if want != uri {
            let offset = want
                .bytes()
                .zip(uri.bytes())
                .position(|(a, b)| a != b)
                .unwrap_or(want.len().min(uri.len()));
            return Err(DigitalLinkError::NotCanonical { offset, want });
        }
        Ok(link)
    }

    /// Parses a GS1 element string as a barcode scanner emits it: human-readable
    /// `(01)09506000134352(21)ABC123`, or raw `0109506000134352` `21ABC123` with FNC1 sent as
    /// ASCII GS (0x1D) after each variable-length value, optionally behind a symbology
    /// identifier (`]d2`, `]Q3`, `]C1`, `]e0`, `]J1`). Date AIs (11–17) are accepted and
    /// dropped; an item key drops its lot.
    ///
    /// In the human-readable form a serial or lot ends at the next `(` that opens a 2–4 digit
    /// AI in parentheses, so such a sequence cannot be part of a value there.
    pub fn parse_element_string(text: &str) -> Result<DigitalLink> {
        if let Some((index, ch)) = text.char_indices().find(|(_, c)| !c.is_ascii()) {
            return Err(DigitalLinkError::BadChar {
                what: "element string",
                index,
                ch,
            });
        }
        let mut parts = KeyParts::default();
        if text.starts_with('(') {
            parse_hri(text, &mut parts)?;
        } else {
            parse_raw(text, &mut parts)?;
        }
        parts.finish()
    }

    /// Parses what a scanner read, whichever of the two forms it is: a Digital Link URI
    /// ([`DigitalLink::parse`]) or an element string ([`DigitalLink::parse_element_string`]).
    pub fn parse_scan(text: &str) -> Result<DigitalLink> {
        if strip_prefix_ci(text, "http").is_some() {
            DigitalLink::parse(text)
        } else {
            DigitalLink::parse_element_string(text)
        }
    }

    /// The canonical URI (SPEC §1): `https://id.gs1.org/…`.
    pub fn canonical(&self) -> String {
        self.with_host(CANONICAL_HOST)
    }

    /// The same path under another resolver, e.g. a brand's own host for printing QR codes.
    /// `resolver` is `scheme://host[:port][/prefix]`; a trailing slash is ignored.
    pub fn with_host(&self, resolver: &str) -> String {
        let mut out = String::with_capacity(resolver.len() + 48);
        out.push_str(resolver.trim_end_matches('/'));
        out.push_str(&self.path());
        out
    }

    /// The path part of the canonical URI (`/01/…/21/…`), percent-encoded.
    pub fn path(&self) -> String {
        let mut out = String::with_capacity(48);
        match self {
            DigitalLink::Item { gtin, serial } => {
                out.push_str("/01/");
                out.push_str(gtin.as_str());
                out.push_str("/21/");
                push_encoded(&mut out, serial.as_str());
            }
            DigitalLink::Lot { gtin, lot } => {
                out.push_str("/01/");
                out.push_str(gtin.as_str());
                out.push_str("/10/");
                push_encoded(&mut out, lot.as_str());
            }
            DigitalLink::Sscc(sscc) => {
                out.push_str("/00/");
                out.push_str(sscc.as_str());
            }
            DigitalLink::Location(gln) => {
                out.push_str("/414/");
                out.push_str(gln.as_str());
            }
        }
        out
    }

    /// The GTIN of an item or a lot.
    pub fn gtin(&self) -> Option<&Gtin> {
        match self {
            DigitalLink::Item { gtin, .. } | DigitalLink::Lot { gtin, .. } => Some(gtin),
            _ => None,
        }
    }

    /// The kind of identifier, for error messages and dispatch.
    pub fn kind(&self) -> IdKind {
        match self {
            DigitalLink::Item { .. } => IdKind::Item,
            DigitalLink::Lot { .. } => IdKind::Lot,
            DigitalLink::Sscc(_) => IdKind::Sscc,
            DigitalLink::Location(_) => IdKind::Location,
        }
    }
}

/// The four kinds of [`DigitalLink`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IdKind {
    /// A serialized item.
    Item,
    /// A lot.
    Lot,
    /// A logistic unit.
    Sscc,
    /// A location.
    Location,
}

impl IdKind {
    /// A short lowercase name (`item`, `lot`, `sscc`, `location`).
    pub fn as_str(self) -> &'static str {
        match self {
            IdKind::Item => "item",
            IdKind::Lot => "lot",
            IdKind::Sscc => "sscc",
            IdKind::Location => "location",
        }
    }
}

impl fmt::Display for IdKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn strip_prefix_ci<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| text.get(prefix.len()..))
        .flatten()
}

/// A registered name or IPv4 address, with an optional port; no user information.
fn check_host(host: &str, base: usize) -> Result<()> {
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    };
    if name.is_empty() {
        return Err(DigitalLinkError::Host { offset: base });
    }
    if let Some(i) = name
        .bytes()
        .position(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.')))
    {
        return Err(DigitalLinkError::Host { offset: base + i });
    }
    if let Some(port) = port
        && (port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(DigitalLinkError::Host {
            offset: base + name.len() + 1,
        });
    }
    Ok(())
}

/// Human-readable element string: `(AI)value(AI)value…`.
fn parse_hri(text: &str, parts: &mut KeyParts) -> Result<()> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let (code, value_at) =
            hri_ai_at(bytes, i).ok_or(DigitalLinkError::ExpectedAi { offset: i })?;
        let ai = Ai::from_code(code).ok_or_else(|| DigitalLinkError::UnknownAi {
            ai: code.to_owned(),
            offset: i + 1,
        })?;
        let end = match ai.fixed_len() {
            Some(n) => (value_at + n).min(bytes.len()),
            None => (value_at..bytes.len())
                .find(|&j| hri_ai_at(bytes, j).is_some())
                .unwrap_or(bytes.len()),
        };
        let value = text.get(value_at..end).unwrap_or_default();
        if value.is_empty() {
            return Err(DigitalLinkError::MissingValue { ai: ai.code() });
        }
        ai.check_fixed(value)?;
        parts.add(ai, value, i + 1)?;
        i = end;
    }
    Ok(())
}

/// If `bytes[i..]` starts with `(` 2–4 digits `)`, the digits and the offset after `)`.
fn hri_ai_at(bytes: &[u8], i: usize) -> Option<(&str, usize)> {
    if bytes.get(i) != Some(&b'(') {
        return None;
    }
    let digits = bytes
        .get(i + 1..)?
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    if !(2..=4).contains(&digits) || bytes.get(i + 1 + digits) != Some(&b')') {
        return None;
    }
    let code = core::str::from_utf8(bytes.get(i + 1..i + 1 + digits)?).ok()?;
    Some((code, i + 2 + digits))
}

/// Raw element string: AIs and values run together, GS after each variable-length value.
fn parse_raw(text: &str, parts: &mut KeyParts) -> Result<()> {
    let bytes = text.as_bytes();
    let mut i = 0;
    // Symbology identifier: `]` + letter + digit (ISO/IEC 15424).
    if bytes.first() == Some(&b']') {
        let known = matches!(bytes.get(1..3), Some(b"d2" | b"Q3" | b"C1" | b"e0" | b"J1"));
        if !known {
            return Err(DigitalLinkError::ExpectedAi { offset: 0 });
        }
        i = 3;
    }
    // Some scanners also send the leading FNC1.
    if bytes.get(i) == Some(&0x1d) {
        i += 1;
    }
    if i >= bytes.len() {
        return Err(DigitalLinkError::NoPrimaryKey);
    }
    while i < bytes.len() {
        let ai_at = i;
        let two = text
            .get(i..i + 2)
            .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
            .ok_or(DigitalLinkError::ExpectedAi { offset: i })?;
        // GS1 fixes each AI's length by its first two digits; only "41" leads to the
        // three-digit AIs this module knows.
        let code = if two == "41" {
            text.get(i..i + 3)
                .ok_or(DigitalLinkError::ExpectedAi { offset: i })?
        } else {
            two
        };
        let ai = Ai::from_code(code).ok_or_else(|| DigitalLinkError::UnknownAi {
            ai: code.to_owned(),
            offset: ai_at,
        })?;
        i += code.len();
        let end = match ai.fixed_len() {
            Some(n) => (i + n).min(bytes.len()),
            None => bytes
                .get(i..)
                .and_then(|rest| rest.iter().position(|&b| b == 0x1d))
                .map_or(bytes.len(), |p| i + p),
        };
        let value = text.get(i..end).unwrap_or_default();
        if value.is_empty() {
            return Err(DigitalLinkError::MissingValue { ai: ai.code() });
        }
        ai.check_fixed(value)?;
        parts.add(ai, value, ai_at)?;
        i = end;
        // A GS after a variable-length value (or, tolerated, after a fixed-length one).
        if bytes.get(i) == Some(&0x1d) {
            i += 1;
            if i == bytes.len() {
                return Err(DigitalLinkError::ExpectedAi { offset: i });
            }
        }
    }
    Ok(())
}

impl fmt::Display for DigitalLink {
    /// The canonical URI.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(CANONICAL_HOST)?;
        f.write_str(&self.path())
    }
}

impl serde::Serialize for DigitalLink {
    fn serialize<S: serde::Serializer>(&self, s: S) -> core::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.canonical())
    }
}

impl<'de> serde::Deserialize<'de> for DigitalLink {
    /// Accepts only the canonical form, like payload decoding.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> core::result::Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = DigitalLink;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a canonical GS1 Digital Link URI")
            }
            fn visit_str<E: serde::de::Error>(
                self,
                v: &str,
            ) -> core::result::Result<DigitalLink, E> {
                DigitalLink::parse_canonical(v).map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_digits_of_gs1_examples() {
        let gtin = |s| Gtin::parse(s).map(|g| g.0);
        assert_eq!(gtin("09506000134352"), Ok(*b"09506000134352"));
        assert_eq!(gtin("96385074"), Ok(*b"00000096385074"));
        assert_eq!(
            gtin("09506000134353"),
            Err(DigitalLinkError::CheckDigit {
                what: "GTIN",
                got: 3,
                want: 2
            })
        );
    }
}
