//! The barcode / QR scanner on a serial line: bytes in, [`DigitalLink`]s out.
//!
//! Line scanners (and 2D imagers in "serial" mode) send one decoded symbol per line, ended by CR,
//! LF or CR LF. What a line holds depends on the symbol and the scanner's setup:
//!
//! - a GS1 Digital Link URI from a QR code (`https://brand.example/01/…/21/…?17=…`);
//! - a GS1 element string from a GS1 DataMatrix / GS1-128 / GS1 QR, raw (`0109506000134352`
//!   `21ABC123`, FNC1 sent as ASCII GS 0x1D after each variable-length value) or, from some
//!   scanners, in the human-readable `(01)…(21)…` form;
//! - either of them behind an AIM symbology identifier (`]d2`, `]Q3`, `]C1`, `]e0`, `]J1` for
//!   GS1 symbols; `]Q1`, `]d1`… for plain ones) when the scanner is set to transmit it.
//!
//! [`Scanner`] splits the byte stream into lines and hands each to the core's
//! [`DigitalLink::parse_scan`], so a scan becomes exactly the identifier the rest of the system
//! would compute from the same symbol.
//!
//! # Why this shape
//!
//! - **One bounded buffer, no allocation per byte.** The UART driver hands over whatever it has
//!   (one byte or a burst with several lines). Bytes are read straight into a fixed `N`-byte
//!   buffer that holds the line being assembled and anything already read after it; nothing
//!   grows with the input.
//! - **Overlong lines are rejected, then resynchronised.** A line that does not fit (a wrong
//!   symbol, line noise, a scanner set to a different terminator) is dropped byte by byte until
//!   its terminator arrives; only then is [`ScanError::TooLong`] returned (with the full length),
//!   so the next call starts exactly at the next line and a burst of noise costs one error, not
//!   a stream of half-line errors.
//! - **Non-blocking sources work too.** A read of 0 bytes (end of input, or a drained software
//!   buffer) returns `Ok(None)`; a partial line is kept and completed by later calls.
//! - **Every rejection says why** ([`ScanError`]): a byte that no symbol of ours can carry, with
//!   its offset; a parse error of the core with the line it was about. A bad line never stops
//!   the scanner: the next call reads the next line.

use alloc::string::String;
use core::fmt;

use embedded_io::Read;
use prov_schemas::digital_link::{DigitalLink, DigitalLinkError};

/// Default buffer size: a line (with its terminator) of up to this many bytes is accepted.
/// Generous for Digital Link URIs with a brand host, a lot and query attributes.
pub const DEFAULT_LINE_CAPACITY: usize = 512;

/// ASCII group separator: FNC1 inside raw element strings.
pub const GS: u8 = 0x1d;

/// How many characters of a rejected line an error keeps as evidence.
pub const EVIDENCE_LEN: usize = 64;

/// The AIM symbology identifiers of GS1 symbols, which the element-string parser reads itself
/// (ISO/IEC 15424: GS1 DataMatrix, GS1 QR, GS1-128, GS1 DataBar, GS1 Composite).
const GS1_SYMBOLOGIES: [&[u8; 2]; 5] = [b"d2", b"Q3", b"C1", b"e0", b"J1"];

/// A line from the scanner could not be turned into an identifier. `E` is the serial driver's
/// error type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScanError<E: fmt::Debug> {
    /// The serial driver failed. Nothing was consumed; calling again retries the read.
    #[error("serial read failed: {0:?}")]
    Io(E),
    /// A line did not fit the buffer; it was dropped up to its terminator.
    #[error("line of {len} bytes dropped: longer than the {max}-byte limit")]
    TooLong {
        /// The line's length in bytes, without its terminator.
        len: usize,
        /// The longest line accepted (buffer capacity minus one byte for the terminator).
        max: usize,
    },
    /// A byte no scanned identifier can contain (a control character other than GS, or a
    /// non-ASCII byte: line noise or a wrong baud rate).
    #[error("byte {byte:#04x} at offset {offset} of line {line:?} is not scanner text")]
    BadByte {
        /// The byte.
        byte: u8,
        /// Its offset in the line.
        offset: usize,
        /// The start of the line (at most [`EVIDENCE_LEN`] characters, control bytes escaped).
        line: String,
    },
    /// The core's parser refused the line.
    #[error("scan {line:?}: {source}")]
    Parse {
        /// The line (at most [`EVIDENCE_LEN`] characters; GS shown as `\u{1d}`).
        line: String,
        /// Why it was refused.
        source: DigitalLinkError,
    },
}

/// Reads scans from a serial line. `N` is the buffer size in bytes (a line may have at most
/// `N - 1` bytes before its terminator).
#[derive(Debug)]
pub struct Scanner<R, const N: usize = DEFAULT_LINE_CAPACITY> {
    reader: R,
    buf: [u8; N],
    /// Bytes held in `buf`.
    len: usize,
    /// Bytes of `buf` already searched for a terminator.
    scanned: usize,
    /// While dropping an overlong line: how many of its bytes were dropped so far.
    dropping: Option<usize>,
}

impl<R: Read, const N: usize> Scanner<R, N> {
    /// A scanner reading from `reader` (a UART, or any [`embedded_io::Read`]).
    pub fn new(reader: R) -> Self {
        Scanner {
            reader,
            buf: [0; N],
            len: 0,
            scanned: 0,
            dropping: None,
        }
    }

    /// The longest line accepted, in bytes (without its terminator).
    pub const fn max_line_len() -> usize {
        N.saturating_sub(1)
    }

    /// The next scan.
    ///
    /// Reads until a whole line has arrived, skipping empty lines (so CR LF, LF CR and blank
    /// lines are all fine). Returns `Ok(None)` when the reader returns 0 bytes before a line is
    /// complete; the partial line is kept for the next call. A line that fails returns its
    /// error and is consumed: the next call continues with the line after it.
    pub fn read_scan(&mut self) -> Result<Option<DigitalLink>, ScanError<R::Error>> {
        loop {
            if let Some(result) = self.take_line() {
                return result.map(Some);
            }
            if self.len == N {
                // Full and no terminator: this line is too long. Drop what we have and keep
                // dropping until its end.
                self.dropping = Some(self.dropping.unwrap_or(0).saturating_add(N));
                self.len = 0;
                self.scanned = 0;
            }
            let free = self.buf.get_mut(self.len..).unwrap_or_default();
            let n = self.reader.read(free).map_err(ScanError::Io)?;
            if n == 0 {
                return Ok(None);
            }
            self.len = (self.len + n).min(N);
        }
    }

    /// Bytes received and not yet returned as part of a line (a partial line, or lines after
    /// it).
    pub fn buffered(&self) -> usize {
        self.len
    }

    /// The reader.
    pub fn reader_mut(&mut self) -> &mut R {
        &mut self.reader
    }

    /// Gives the reader back (buffered bytes are lost).
    pub fn into_inner(self) -> R {
        self.reader
    }

    /// If a terminator is in the buffer: consumes the line before it and returns its result
    /// (empty lines are consumed silently). `None` when no whole non-empty line is buffered.
    fn take_line(&mut self) -> Option<Result<DigitalLink, ScanError<R::Error>>> {
        while self.scanned < self.len {
            let at = self.scanned;
            let byte = self.buf.get(at).copied().unwrap_or(b'\n');
            if byte != b'\r' && byte != b'\n' {
                self.scanned += 1;
                continue;
            }
            let result = match self.dropping.take() {
                Some(dropped) => Some(Err(ScanError::TooLong {
                    len: dropped.saturating_add(at),
                    max: Self::max_line_len(),
                })),
                None if at == 0 => None,
                None => Some(parse_line(self.buf.get(..at).unwrap_or_default())),
            };
            // Consume the line and its terminator.
            self.buf.copy_within(at + 1..self.len, 0);
            self.len -= at + 1;
            self.scanned = 0;
            if result.is_some() {
                return result;
            }
        }
        None
    }
}

/// Parses one line (without its terminator) as a scan: trims spaces and tabs around it, checks
/// its bytes, deals with an AIM symbology identifier and calls [`DigitalLink::parse_scan`].
///
/// Exposed for scanners that deliver whole lines already (USB HID, keyboard wedge, tests).
pub fn parse_line<E: fmt::Debug>(line: &[u8]) -> Result<DigitalLink, ScanError<E>> {
    let line = trim(line);
    if let Some((offset, &byte)) = line
        .iter()
        .enumerate()
        .find(|&(_, &b)| !(b == GS || (0x20..0x7f).contains(&b)))
    {
        return Err(ScanError::BadByte {
            byte,
            offset,
            line: evidence(line),
        });
    }
    // Every byte is ASCII now, so this cannot fail.
    let text = core::str::from_utf8(strip_plain_aim(line)).unwrap_or_default();
    DigitalLink::parse_scan(text).map_err(|source| ScanError::Parse {
        line: evidence(line),
        source,
    })
}

/// Removes the AIM symbology identifier `]` + letter + character of a non-GS1 symbol (a QR code
/// carrying a Digital Link URI sends `]Q1`), leaving GS1 identifiers in place: the element
/// string parser reads those itself and they tell it FNC1 was present.
fn strip_plain_aim(line: &[u8]) -> &[u8] {
    match line {
        [b']', code, modifier, rest @ ..]
            if code.is_ascii_alphabetic() && modifier.is_ascii_alphanumeric() =>
        {
            if GS1_SYMBOLOGIES.contains(&&[*code, *modifier]) {
                line
            } else {
                rest
            }
        }
        _ => line,
    }
}

fn trim(mut line: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = line {
        line = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = line {
        line = rest;
    }
    line
}

/// The start of a line as printable text: control and non-ASCII bytes become `\u{..}` escapes
/// when the error is displayed with `{:?}`.
fn evidence(line: &[u8]) -> String {
    line.iter()
        .take(EVIDENCE_LEN)
        .map(|&b| char::from(b))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aim_prefixes() {
        assert_eq!(strip_plain_aim(b"]Q1https://x"), b"https://x");
        assert_eq!(strip_plain_aim(b"]d2010"), b"]d2010");
        assert_eq!(strip_plain_aim(b"]"), b"]");
        assert_eq!(strip_plain_aim(b"]Q"), b"]Q");
        assert_eq!(trim(b"  \tab \t"), b"ab");
        assert_eq!(trim(b"   "), b"");
    }
}
