//! Small strict text codecs shared by the text formats (checkpoint, note, tlog-proof).
//!
//! Every C2SP format we speak uses standard padded base64 and decimal numbers without leading
//! zeros; both have several accepted spellings in lenient decoders, which would let one value
//! travel as many byte strings. We accept exactly one spelling per value.

use alloc::string::String;
use alloc::vec::Vec;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Why a base64 or decimal field was refused (the callers wrap it in their own error enums).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldError {
    /// Not canonical RFC 4648 §4 base64 with padding.
    Base64,
    /// Empty, or a character other than `0`–`9`.
    NotDecimal,
    /// A leading zero in a number other than `0`.
    LeadingZero,
    /// Above `u64::MAX`.
    Overflow,
}

/// Base64 (RFC 4648 §4, standard alphabet, with padding).
pub(crate) fn b64_encode(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Strict base64: padding required, no non-zero trailing bits, no whitespace.
///
/// `base64`'s `STANDARD` engine already refuses non-canonical input; the re-encoding check makes
/// that guarantee local to this function instead of a property of the dependency's defaults.
pub(crate) fn b64_decode(text: &str) -> Result<Vec<u8>, FieldError> {
    let bytes = STANDARD.decode(text).map_err(|_| FieldError::Base64)?;
    if STANDARD.encode(&bytes) != text {
        return Err(FieldError::Base64);
    }
    Ok(bytes)
}

/// ASCII decimal without leading zeros (`0` itself is allowed), fitting in a `u64`.
pub(crate) fn parse_decimal(text: &str) -> Result<u64, FieldError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(FieldError::NotDecimal);
    }
    if text.len() > 1 && text.starts_with('0') {
        return Err(FieldError::LeadingZero);
    }
    text.parse::<u64>().map_err(|_| FieldError::Overflow)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_is_strict() {
        assert_eq!(parse_decimal("0"), Ok(0));
        assert_eq!(parse_decimal("18446744073709551615"), Ok(u64::MAX));
        assert_eq!(
            parse_decimal("18446744073709551616"),
            Err(FieldError::Overflow)
        );
        assert_eq!(parse_decimal("01"), Err(FieldError::LeadingZero));
        assert_eq!(parse_decimal(""), Err(FieldError::NotDecimal));
        assert_eq!(parse_decimal("+1"), Err(FieldError::NotDecimal));
        assert_eq!(parse_decimal("1 "), Err(FieldError::NotDecimal));
    }

    #[test]
    fn base64_is_strict() {
        assert_eq!(b64_decode("AAE="), Ok(alloc::vec![0, 1]));
        assert_eq!(b64_decode("AAF="), Err(FieldError::Base64)); // non-zero trailing bits
        assert_eq!(b64_decode("AAE"), Err(FieldError::Base64)); // missing padding
        assert_eq!(b64_decode("AA E="), Err(FieldError::Base64));
        assert_eq!(b64_decode("AA-_"), Err(FieldError::Base64)); // URL alphabet
        assert_eq!(b64_decode(""), Ok(alloc::vec![]));
    }
}
