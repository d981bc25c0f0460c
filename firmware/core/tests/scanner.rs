//! The serial scanner reader: byte streams as UARTs deliver them (split anywhere, bursts of
//! several lines), every format a GS1 scanner sends (Digital Link URIs, raw element strings with
//! FNC1 as GS, human-readable element strings, AIM symbology prefixes), and the ways a line can
//! be bad (garbage, control bytes, overlong) with resynchronisation after each.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::VecDeque;
use std::convert::Infallible;

use proptest::prelude::*;
use prov_firmware::scanner::{GS, ScanError, Scanner, parse_line};
use prov_schemas::digital_link::{DigitalLink, DigitalLinkError};

const ITEM: &str = "https://id.gs1.org/01/09506000134352/21/ABC123";
const SSCC: &str = "https://id.gs1.org/00/106141412345678908";
const LOT: &str = "https://id.gs1.org/01/09506000134369/10/MILK-0412";

fn dl(uri: &str) -> DigitalLink {
    DigitalLink::parse_canonical(uri).unwrap()
}

/// A UART that delivers its bytes in chunks of the given sizes (cycled), then reports 0 bytes.
struct Chunked {
    data: VecDeque<u8>,
    sizes: Vec<usize>,
    turn: usize,
}

impl Chunked {
    fn new(data: &[u8], sizes: &[usize]) -> Chunked {
        Chunked {
            data: data.iter().copied().collect(),
            sizes: sizes.to_vec(),
            turn: 0,
        }
    }

    fn push(&mut self, more: &[u8]) {
        self.data.extend(more);
    }
}

impl embedded_io::ErrorType for Chunked {
    type Error = Infallible;
}

impl embedded_io::Read for Chunked {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        let want = self.sizes[self.turn % self.sizes.len()].max(1);
        self.turn += 1;
        let n = want.min(buf.len()).min(self.data.len());
        for slot in buf.iter_mut().take(n) {
            *slot = self.data.pop_front().unwrap();
        }
        Ok(n)
    }
}

type Outcome = Result<DigitalLink, ScanError<Infallible>>;

/// Every outcome until the input runs dry.
fn drain<const N: usize>(scanner: &mut Scanner<Chunked, N>) -> Vec<Outcome> {
    let mut out = Vec::new();
    loop {
        match scanner.read_scan() {
            Ok(Some(id)) => out.push(Ok(id)),
            Ok(None) => return out,
            Err(e) => out.push(Err(e)),
        }
    }
}

fn scan_all(stream: &[u8], sizes: &[usize]) -> Vec<Outcome> {
    let mut scanner: Scanner<_> = Scanner::new(Chunked::new(stream, sizes));
    drain(&mut scanner)
}

/// One line of each format the scanners on the line send, with the identifier it must give.
fn formats() -> Vec<(Vec<u8>, &'static str)> {
    let gs = char::from(GS);
    vec![
        // QR code with a brand resolver, a lot qualifier and a query: maps to the item key.
        (
            b"https://brand.example/01/09506000134352/10/L1/21/ABC123?17=281231".to_vec(),
            ITEM,
        ),
        // Same QR with the AIM identifier of a plain QR code in front.
        (format!("]Q1{ITEM}").into_bytes(), ITEM),
        // GS1 DataMatrix, raw: AIM ]d2, FNC1 as GS after the variable-length lot.
        (
            format!("]d20109506000134352172812311010{gs}21ABC123").into_bytes(),
            ITEM,
        ),
        // GS1-128 case label.
        (b"]C100106141412345678908".to_vec(), SSCC),
        // Leading FNC1 sent as GS, no AIM identifier.
        (format!("{gs}00106141412345678908").into_bytes(), SSCC),
        // Human-readable element string of a lot.
        (b"(01)09506000134369(10)MILK-0412".to_vec(), LOT),
        // Spaces around the scan (keyboard-wedge habit) are ignored.
        (format!("  {ITEM}\t").into_bytes(), ITEM),
    ]
}

fn stream_of(lines: &[(Vec<u8>, &str)], terminators: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, (line, _)) in lines.iter().enumerate() {
        out.extend_from_slice(line);
        out.extend_from_slice(terminators[i % terminators.len()]);
    }
    out
}

#[test]
fn every_format_in_one_burst() {
    let lines = formats();
    let stream = stream_of(&lines, &[b"\r\n", b"\n", b"\r"]);
    let got = scan_all(&stream, &[4096]);
    let want: Vec<Outcome> = lines.iter().map(|(_, uri)| Ok(dl(uri))).collect();
    assert_eq!(got, want);
}

#[test]
fn split_reads_give_the_same_scans() {
    let lines = formats();
    let stream = stream_of(&lines, &[b"\r\n"]);
    let want = scan_all(&stream, &[4096]);
    for size in 1..=9 {
        assert_eq!(scan_all(&stream, &[size]), want, "chunks of {size}");
    }
    assert_eq!(scan_all(&stream, &[1, 7, 2, 30, 3]), want);
}

#[test]
fn blank_lines_and_lone_terminators_are_skipped() {
    let stream = format!("\r\n\n\r\r{ITEM}\n\r\n\r{SSCC}\n\n").into_bytes();
    assert_eq!(scan_all(&stream, &[5]), vec![Ok(dl(ITEM)), Ok(dl(SSCC))]);
}

#[test]
fn garbage_is_reported_and_the_next_line_still_reads() {
    let stream = format!("hello world\r\n{ITEM}\r\n").into_bytes();
    let got = scan_all(&stream, &[3]);
    assert_eq!(got.len(), 2);
    match &got[0] {
        Err(ScanError::Parse { line, source }) => {
            assert_eq!(line, "hello world");
            assert!(matches!(source, DigitalLinkError::ExpectedAi { .. }));
        }
        other => panic!("want a parse error, got {other:?}"),
    }
    assert_eq!(got[1], Ok(dl(ITEM)));
}

#[test]
fn unknown_symbology_with_element_string_is_refused_by_the_core() {
    // `]Z9` is not a GS1 symbology: stripped, the rest is parsed as usual.
    assert_eq!(
        parse_line::<Infallible>(b"]Z9(00)106141412345678908"),
        Ok(dl(SSCC))
    );
    // A GS1 identifier stays for the element-string parser, which knows it.
    assert_eq!(
        parse_line::<Infallible>(b"]e000106141412345678908"),
        Ok(dl(SSCC))
    );
}

#[test]
fn wrong_check_digit_is_a_parse_error_with_evidence() {
    let got = parse_line::<Infallible>(b"]C100106141412345678909");
    match got {
        Err(ScanError::Parse { line, source }) => {
            assert_eq!(line, "]C100106141412345678909");
            assert_eq!(
                source,
                DigitalLinkError::CheckDigit {
                    what: "SSCC",
                    got: 9,
                    want: 8
                }
            );
        }
        other => panic!("want a check digit error, got {other:?}"),
    }
}

#[test]
fn control_and_non_ascii_bytes_are_refused_with_their_offset() {
    let mut stream = b"01095\x0260001\n".to_vec();
    stream.extend_from_slice(b"https://id.gs1.org/01/09506000134352/21/AB\xc3\xa9\n");
    stream.extend_from_slice(format!("{SSCC}\n").as_bytes());
    let got = scan_all(&stream, &[2]);
    assert_eq!(got.len(), 3);
    assert!(matches!(
        &got[0],
        Err(ScanError::BadByte {
            byte: 0x02,
            offset: 5,
            ..
        })
    ));
    assert!(matches!(
        &got[1],
        Err(ScanError::BadByte {
            byte: 0xc3,
            offset: 42,
            ..
        })
    ));
    assert_eq!(got[2], Ok(dl(SSCC)));
    // The evidence escapes control bytes when shown.
    let shown = got[0].as_ref().unwrap_err().to_string();
    assert!(shown.contains("\\u{2}"), "{shown}");
}

#[test]
fn gs_inside_a_uri_is_refused_by_the_core_not_passed_through() {
    let line = format!(
        "https://id.gs1.org/01/09506000134352/21/AB{}C",
        char::from(GS)
    );
    assert!(matches!(
        parse_line::<Infallible>(line.as_bytes()),
        Err(ScanError::Parse { .. })
    ));
}

#[test]
fn overlong_line_is_dropped_whole_then_reading_resumes() {
    let noise = vec![b'7'; 1000];
    let mut stream = noise.clone();
    stream.extend_from_slice(b"\r\n");
    stream.extend_from_slice(format!("{SSCC}\r\n").as_bytes());
    for sizes in [&[4096][..], &[1], &[13, 64, 5]] {
        let mut scanner: Scanner<_, 64> = Scanner::new(Chunked::new(&stream, sizes));
        let got = drain(&mut scanner);
        assert_eq!(
            got,
            vec![Err(ScanError::TooLong { len: 1000, max: 63 }), Ok(dl(SSCC))],
            "chunks {sizes:?}"
        );
        assert_eq!(scanner.buffered(), 0);
    }
}

#[test]
fn a_line_of_exactly_the_maximum_fits() {
    // 46 bytes + the terminator fill a 47-byte buffer exactly.
    assert_eq!(ITEM.len(), 46);
    let stream = format!("{ITEM}\n{ITEM}\n").into_bytes();
    let mut scanner: Scanner<_, 47> = Scanner::new(Chunked::new(&stream, &[1, 100]));
    assert_eq!(drain(&mut scanner), vec![Ok(dl(ITEM)), Ok(dl(ITEM))]);
    // One byte less of buffer and it is too long.
    let mut small: Scanner<_, 46> = Scanner::new(Chunked::new(&stream, &[100]));
    assert_eq!(
        drain(&mut small),
        vec![
            Err(ScanError::TooLong { len: 46, max: 45 }),
            Err(ScanError::TooLong { len: 46, max: 45 })
        ]
    );
}

#[test]
fn a_partial_line_waits_for_the_rest() {
    let mut scanner: Scanner<_> = Scanner::new(Chunked::new(b"https://id.gs1.org/00/10614", &[8]));
    assert_eq!(scanner.read_scan(), Ok(None));
    assert_eq!(scanner.buffered(), 27);
    scanner.reader_mut().push(b"1412345678908");
    assert_eq!(scanner.read_scan(), Ok(None));
    scanner.reader_mut().push(b"\r\n]C1");
    assert_eq!(scanner.read_scan(), Ok(Some(dl(SSCC))));
    assert_eq!(scanner.read_scan(), Ok(None));
    scanner.reader_mut().push(b"00106141412345678908\n");
    assert_eq!(scanner.read_scan(), Ok(Some(dl(SSCC))));
}

/// A UART that fails once, then works.
struct Flaky {
    failed: bool,
    inner: &'static [u8],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Framing;

impl embedded_io::Error for Framing {
    fn kind(&self) -> embedded_io::ErrorKind {
        embedded_io::ErrorKind::InvalidData
    }
}

impl core::fmt::Display for Framing {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("framing error")
    }
}

impl core::error::Error for Framing {}

impl embedded_io::ErrorType for Flaky {
    type Error = Framing;
}

impl embedded_io::Read for Flaky {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Framing> {
        if !self.failed {
            self.failed = true;
            return Err(Framing);
        }
        self.inner.read(buf).map_err(|e| match e {})
    }
}

#[test]
fn a_read_error_is_surfaced_and_reading_can_go_on() {
    let mut scanner: Scanner<_> = Scanner::new(Flaky {
        failed: false,
        inner: b"]C100106141412345678908\r\n",
    });
    assert_eq!(scanner.read_scan(), Err(ScanError::Io(Framing)));
    assert_eq!(scanner.read_scan(), Ok(Some(dl(SSCC))));
    assert_eq!(scanner.read_scan(), Ok(None));
}

proptest! {
    /// However the bytes are split into reads, the scans are the same.
    #[test]
    fn any_chunking_gives_the_same_scans(
        order in proptest::collection::vec(0usize..7, 1..12),
        sizes in proptest::collection::vec(1usize..40, 1..8),
    ) {
        let all = formats();
        let lines: Vec<_> = order.iter().map(|&i| all[i].clone()).collect();
        let stream = stream_of(&lines, &[b"\r\n", b"\n"]);
        let want: Vec<Outcome> = lines.iter().map(|(_, uri)| Ok(dl(uri))).collect();
        prop_assert_eq!(scan_all(&stream, &sizes), want);
    }

    /// Arbitrary bytes never panic, never grow the buffer past its size, and a valid line after
    /// them is still read once a terminator has resynchronised the reader.
    #[test]
    fn arbitrary_noise_then_a_valid_line(
        noise in proptest::collection::vec(any::<u8>(), 0..400),
        sizes in proptest::collection::vec(1usize..50, 1..5),
    ) {
        let mut stream = noise;
        stream.extend_from_slice(format!("\n{SSCC}\n").as_bytes());
        let mut scanner: Scanner<_, 64> = Scanner::new(Chunked::new(&stream, &sizes));
        let got = drain(&mut scanner);
        prop_assert!(scanner.buffered() <= 64);
        prop_assert_eq!(got.last(), Some(&Ok(dl(SSCC))));
    }
}
