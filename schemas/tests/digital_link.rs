//! GS1 identifiers and Digital Link URIs: GS1's example identifiers, check-digit failures,
//! canonicalisation of brand-resolver URIs (lot, query, lowercase escapes), every rejection with
//! its typed error, element strings as scanners emit them, and property tests over the AI 82
//! character set.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use prov_schemas::digital_link::{
    CANONICAL_HOST, DigitalLink, DigitalLinkError as E, Gln, Gtin, IdKind, Lot, Serial, Sscc,
    is_ai82,
};

const ITEM: &str = "https://id.gs1.org/01/09506000134352/21/ABC123";

fn item(gtin: &str, serial: &str) -> DigitalLink {
    DigitalLink::Item {
        gtin: Gtin::parse(gtin).unwrap(),
        serial: Serial::parse(serial).unwrap(),
    }
}

#[test]
fn gs1_example_identifiers() {
    // GS1 Digital Link standard and EPCIS 2.0 examples.
    for gtin in [
        "09506000134352",
        "04012345123456",
        "70614141123451",
        "00614141777778",
    ] {
        assert_eq!(Gtin::parse(gtin).unwrap().as_str(), gtin);
    }
    assert_eq!(
        Sscc::parse("106141412345678908").unwrap().as_str(),
        "106141412345678908"
    );
    assert_eq!(
        Gln::parse("9506000134307").unwrap().as_str(),
        "9506000134307"
    );
    // GTIN-8, -12 and -13 are padded to GTIN-14.
    assert_eq!(Gtin::parse("96385074").unwrap().as_str(), "00000096385074");
    assert_eq!(
        Gtin::parse("614141000012").unwrap().as_str(),
        "00614141000012"
    );
    assert_eq!(
        Gtin::parse("9506000134352").unwrap().as_str(),
        "09506000134352"
    );

    let link = DigitalLink::parse(ITEM).unwrap();
    assert_eq!(link, item("09506000134352", "ABC123"));
    assert_eq!(link.canonical(), ITEM);
    assert_eq!(link.to_string(), ITEM);
    assert_eq!(link.kind(), IdKind::Item);
    assert_eq!(link.gtin().unwrap().as_str(), "09506000134352");
    for (uri, kind) in [
        ("https://id.gs1.org/01/09506000134352/10/ABC1", IdKind::Lot),
        ("https://id.gs1.org/00/106141412345678908", IdKind::Sscc),
        ("https://id.gs1.org/414/9506000134307", IdKind::Location),
    ] {
        let link = DigitalLink::parse_canonical(uri).unwrap();
        assert_eq!(link.kind(), kind);
        assert_eq!(link.canonical(), uri);
    }
}

#[test]
fn check_digit_failures_report_got_and_want() {
    assert_eq!(
        Gtin::parse("09506000134353"),
        Err(E::CheckDigit {
            what: "GTIN",
            got: 3,
            want: 2
        })
    );
    assert_eq!(
        Sscc::parse("106141412345678909"),
        Err(E::CheckDigit {
            what: "SSCC",
            got: 9,
            want: 8
        })
    );
    assert_eq!(
        Gln::parse("9506000134308"),
        Err(E::CheckDigit {
            what: "GLN",
            got: 8,
            want: 7
        })
    );
    assert_eq!(
        DigitalLink::parse("https://id.gs1.org/01/09506000134350/21/X"),
        Err(E::CheckDigit {
            what: "GTIN",
            got: 0,
            want: 2
        })
    );
    assert_eq!(
        Gtin::parse("0950600013435"),
        Err(E::CheckDigit {
            what: "GTIN",
            got: 5,
            want: 9
        })
    );
}

#[test]
fn lengths_and_characters() {
    assert_eq!(
        Gtin::parse("123456789"),
        Err(E::Length {
            what: "GTIN",
            got: 9,
            want: "8, 12, 13 or 14"
        })
    );
    assert_eq!(
        Sscc::parse("1234"),
        Err(E::Length {
            what: "SSCC",
            got: 4,
            want: "18"
        })
    );
    assert_eq!(
        Gln::parse("95060001343O7"),
        Err(E::BadChar {
            what: "GLN",
            index: 11,
            ch: 'O'
        })
    );
    assert_eq!(
        Serial::parse(""),
        Err(E::Length {
            what: "serial",
            got: 0,
            want: "1 to 20"
        })
    );
    assert_eq!(
        Serial::parse("123456789012345678901"),
        Err(E::Length {
            what: "serial",
            got: 21,
            want: "1 to 20"
        })
    );
    assert_eq!(
        Serial::parse("AB#1"),
        Err(E::BadChar {
            what: "serial",
            index: 2,
            ch: '#'
        })
    );
    assert_eq!(
        Lot::parse("L 1"),
        Err(E::BadChar {
            what: "lot",
            index: 1,
            ch: ' '
        })
    );
    assert_eq!(
        Lot::parse("Lé"),
        Err(E::BadChar {
            what: "lot",
            index: 1,
            ch: 'é'
        })
    );
    // All 82 characters, and only them.
    let set: Vec<u8> = (0u8..=127).filter(|b| is_ai82(*b)).collect();
    assert_eq!(set.len(), 82);
    for b in b" #$@[\\]^`{|}~" {
        assert!(!is_ai82(*b), "{}", *b as char);
    }
}

#[test]
fn brand_resolver_uris_canonicalise() {
    let cases = [
        // Lot qualifier dropped from an item key, query dropped, host replaced.
        (
            "https://brand.example.com/01/09506000134352/10/LOT-7/21/ABC123?17=251231&3103=000500",
            ITEM,
        ),
        // http, uppercase scheme and host, a port, GTIN-13 in the path, a fragment.
        (
            "HTTP://Brand.Example.com:8080/01/9506000134352/21/ABC123#top",
            ITEM,
        ),
        // Lowercase and needless escapes become canonical.
        (
            "https://id.gs1.org/01/09506000134352/21/A%2fB%41!",
            "https://id.gs1.org/01/09506000134352/21/A%2FBA%21",
        ),
        // A lot key keeps its lot.
        (
            "https://qr.example/01/09506000134352/10/L!42?15=240101",
            "https://id.gs1.org/01/09506000134352/10/L%2142",
        ),
        (
            "http://x.example/00/106141412345678908",
            "https://id.gs1.org/00/106141412345678908",
        ),
        (
            "https://x.example/414/9506000134307?254=1",
            "https://id.gs1.org/414/9506000134307",
        ),
    ];
    for (input, want) in cases {
        let link = DigitalLink::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(link.canonical(), want, "{input}");
        assert_eq!(DigitalLink::parse_canonical(want), Ok(link.clone()));
        assert_eq!(DigitalLink::parse_scan(input), Ok(link));
    }
}

#[test]
fn parse_canonical_refuses_every_other_spelling() {
    let refuse = |uri: &str, offset: usize| {
        assert_eq!(
            DigitalLink::parse_canonical(uri),
            Err(E::NotCanonical {
                offset,
                want: ITEM.into()
            }),
            "{uri}"
        );
    };
    refuse("http://id.gs1.org/01/09506000134352/21/ABC123", 4);
    refuse("https://ID.gs1.org/01/09506000134352/21/ABC123", 8);
    refuse("https://id.gs1.org/01/9506000134352/21/ABC123", 22);
    refuse("https://id.gs1.org/01/09506000134352/10/L/21/ABC123", 37);
    refuse(
        "https://id.gs1.org/01/09506000134352/21/ABC123?17=250101",
        46,
    );
    refuse("https://id.gs1.org/01/09506000134352/21/ABC%3123", 43);
    assert_eq!(
        DigitalLink::parse_canonical("https://id.gs1.org/01/09506000134352/21/A%2fB"),
        Err(E::NotCanonical {
            offset: 43,
            want: "https://id.gs1.org/01/09506000134352/21/A%2FB".into()
        })
    );
}

#[test]
fn uri_rejections_are_typed() {
    let cases: Vec<(&str, E)> = vec![
        ("ftp://id.gs1.org/01/09506000134352/21/A", E::Scheme),
        ("id.gs1.org/01/09506000134352/21/A", E::Scheme),
        (
            "https://user@evil.example/01/09506000134352/21/A",
            E::Host { offset: 12 },
        ),
        ("https:///01/09506000134352/21/A", E::Host { offset: 8 }),
        (
            "https://x.example:80a/01/09506000134352/21/A",
            E::Host { offset: 18 },
        ),
        ("https://x.example", E::NoPrimaryKey),
        ("https://x.example/", E::NoPrimaryKey),
        (
            "https://x.example/01/09506000134352/21/A/",
            E::TrailingSlash,
        ),
        ("https://x.example/01//21/A", E::EmptySegment { offset: 21 }),
        ("https://x.example/01", E::MissingValue { ai: "01" }),
        (
            "https://x.example/01/09506000134352/21",
            E::MissingValue { ai: "21" },
        ),
        (
            "https://x.example/02/09506000134352/37/5",
            E::UnknownAi {
                ai: "02".into(),
                offset: 18,
            },
        ),
        (
            "https://x.example/shop/01/09506000134352/21/A",
            E::UnknownAi {
                ai: "shop".into(),
                offset: 18,
            },
        ),
        (
            "https://x.example/01/09506000134352/22/V1/21/A",
            E::UnknownAi {
                ai: "22".into(),
                offset: 36,
            },
        ),
        (
            "https://x.example/01/09506000134352/17/250101",
            E::UnknownAi {
                ai: "17".into(),
                offset: 36,
            },
        ),
        (
            "https://x.example/01/09506000134352/21/A/10/L",
            E::UnexpectedAi {
                ai: "10",
                offset: 41,
            },
        ),
        (
            "https://x.example/01/09506000134352/21/A/21/B",
            E::UnexpectedAi {
                ai: "21",
                offset: 41,
            },
        ),
        (
            "https://x.example/21/A",
            E::UnexpectedAi {
                ai: "21",
                offset: 18,
            },
        ),
        (
            "https://x.example/00/106141412345678908/21/A",
            E::UnexpectedAi {
                ai: "21",
                offset: 40,
            },
        ),
        (
            "https://x.example/414/9506000134307/254/1",
            E::UnknownAi {
                ai: "254".into(),
                offset: 36,
            },
        ),
        (
            "https://x.example/01/09506000134352",
            E::IncompleteKey {
                gtin: Gtin::parse("09506000134352").unwrap(),
            },
        ),
        (
            "https://x.example/01/09506000134352/21/A%2",
            E::BadPercent { offset: 40 },
        ),
        (
            "https://x.example/01/09506000134352/21/A%G1",
            E::BadPercent { offset: 40 },
        ),
        (
            "https://x.example/01/09506000134352/21/A B",
            E::BadChar {
                what: "URI",
                index: 40,
                ch: ' ',
            },
        ),
        (
            "https://x.example/01/09506000134352/21/A\"B",
            E::BadChar {
                what: "URI",
                index: 40,
                ch: '"',
            },
        ),
        (
            "https://x.example/01/09506000134352/21/Aé",
            E::BadChar {
                what: "URI",
                index: 40,
                ch: 'é',
            },
        ),
        (
            "https://x.example/01/09506000134352/21/A%C3%A9",
            E::BadChar {
                what: "URI",
                index: 40,
                ch: '\u{c3}',
            },
        ),
        (
            "https://x.example/01/09506000134352/21/A%23",
            E::BadChar {
                what: "serial",
                index: 1,
                ch: '#',
            },
        ),
        (
            "https://x.example/01/09506000134352/21/A@B",
            E::BadChar {
                what: "serial",
                index: 1,
                ch: '@',
            },
        ),
        (
            "https://x.example/01/09506000134352/21/123456789012345678901",
            E::Length {
                what: "serial",
                got: 21,
                want: "1 to 20",
            },
        ),
        (
            "https://x.example/00/10614141234567890",
            E::Length {
                what: "SSCC",
                got: 17,
                want: "18",
            },
        ),
    ];
    for (uri, want) in cases {
        assert_eq!(DigitalLink::parse(uri), Err(want), "{uri}");
    }
}

#[test]
fn with_host_prints_for_a_brand_resolver() {
    let link = DigitalLink::parse(ITEM).unwrap();
    assert_eq!(
        link.with_host("https://brand.example.com/"),
        "https://brand.example.com/01/09506000134352/21/ABC123"
    );
    assert_eq!(link.with_host(CANONICAL_HOST), ITEM);
    assert_eq!(link.path(), "/01/09506000134352/21/ABC123");
}

#[test]
fn element_strings_as_scanners_emit_them() {
    let want = item("09506000134352", "ABC123");
    let lot = DigitalLink::Lot {
        gtin: Gtin::parse("09506000134352").unwrap(),
        lot: Lot::parse("LOT(1)").unwrap(),
    };
    let ok: Vec<(&str, &DigitalLink)> = vec![
        ("(01)09506000134352(21)ABC123", &want),
        ("(01)09506000134352(17)251231(10)LOT-7(21)ABC123", &want),
        ("(21)ABC123(01)09506000134352", &want),
    ];
    for (input, link) in &ok {
        assert_eq!(
            DigitalLink::parse_element_string(input).as_ref(),
            Ok(*link),
            "{input}"
        );
        assert_eq!(
            DigitalLink::parse_scan(input).as_ref(),
            Ok(*link),
            "{input}"
        );
    }
    // Raw, FNC1 as GS, with symbology identifiers and a leading FNC1.
    let raws = [
        "0109506000134352\u{1d}21ABC123".to_owned(),
        "]d20109506000134352172512311".to_owned() + "0LOT-7\u{1d}21ABC123",
        "]Q3\u{1d}010950600013435221ABC123".to_owned(),
        "]C10109506000134352\u{1d}21ABC123".to_owned(),
        "010950600013435221ABC123".to_owned(),
        "21ABC123\u{1d}0109506000134352".to_owned(),
    ];
    for raw in &raws {
        assert_eq!(
            DigitalLink::parse_element_string(raw),
            Ok(want.clone()),
            "{raw:?}"
        );
    }
    // A lot whose value holds parentheses that are not an AI.
    assert_eq!(
        DigitalLink::parse_element_string("(01)09506000134352(10)LOT(1)"),
        Ok(lot)
    );
    assert_eq!(
        DigitalLink::parse_element_string("(00)106141412345678908"),
        Ok(DigitalLink::Sscc(
            Sscc::parse("106141412345678908").unwrap()
        ))
    );
    assert_eq!(
        DigitalLink::parse_element_string("]d2414950600013430"),
        Err(E::Length {
            what: "GLN",
            got: 12,
            want: "13"
        })
    );
    assert_eq!(
        DigitalLink::parse_element_string("4149506000134307"),
        Ok(DigitalLink::Location(Gln::parse("9506000134307").unwrap()))
    );
}

#[test]
fn element_string_rejections_are_typed() {
    let cases: Vec<(&str, E)> = vec![
        (
            "(01)09506000134353(21)A",
            E::CheckDigit {
                what: "GTIN",
                got: 3,
                want: 2,
            },
        ),
        (
            "(02)09506000134352(37)5",
            E::UnknownAi {
                ai: "02".into(),
                offset: 1,
            },
        ),
        (
            "0209506000134352",
            E::UnknownAi {
                ai: "02".into(),
                offset: 0,
            },
        ),
        ("(21)ABC123", E::NoPrimaryKey),
        (
            "(01)09506000134352",
            E::IncompleteKey {
                gtin: Gtin::parse("09506000134352").unwrap(),
            },
        ),
        (
            "(01)09506000134352(21)A(21)B",
            E::UnexpectedAi {
                ai: "21",
                offset: 24,
            },
        ),
        (
            "(01)09506000134352(00)106141412345678908",
            E::UnexpectedAi {
                ai: "00",
                offset: 19,
            },
        ),
        (
            "(01)0950600013435",
            E::Length {
                what: "GTIN",
                got: 13,
                want: "14",
            },
        ),
        (
            "(01)9506000134352(21)A",
            E::BadChar {
                what: "GTIN",
                index: 13,
                ch: '(',
            },
        ),
        ("(01)09506000134352(21)", E::MissingValue { ai: "21" }),
        ("(01)09506000134352x", E::ExpectedAi { offset: 18 }),
        ("]X90109506000134352", E::ExpectedAi { offset: 0 }),
        ("]d2", E::NoPrimaryKey),
        ("0109506000134352\u{1d}", E::ExpectedAi { offset: 17 }),
        (
            "01095060001343",
            E::Length {
                what: "GTIN",
                got: 12,
                want: "14",
            },
        ),
        (
            "0109506000134352\u{1d}21A#",
            E::BadChar {
                what: "serial",
                index: 1,
                ch: '#',
            },
        ),
        (
            "(01)09506000134352(21)Aé",
            E::BadChar {
                what: "element string",
                index: 23,
                ch: 'é',
            },
        ),
        (
            "(01)09506000134352(17)2512(21)A",
            E::Length {
                what: "date",
                got: 6,
                want: "6 digits",
            },
        ),
    ];
    for (input, want) in cases {
        assert_eq!(
            DigitalLink::parse_element_string(input),
            Err(want),
            "{input:?}"
        );
    }
}

#[test]
fn serde_is_the_canonical_string() {
    let link = DigitalLink::parse("https://b.example/01/09506000134352/21/A%2fB").unwrap();
    let json = serde_json::to_string(&link).unwrap();
    assert_eq!(json, "\"https://id.gs1.org/01/09506000134352/21/A%2FB\"");
    assert_eq!(serde_json::from_str::<DigitalLink>(&json).unwrap(), link);
    assert!(
        serde_json::from_str::<DigitalLink>("\"https://b.example/01/09506000134352/21/A\"")
            .is_err()
    );
}

// ------------------------------------------------------------------------------------------------
// Properties.
// ------------------------------------------------------------------------------------------------

const AI82: &[u8] =
    b"!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz";

fn ai82_string() -> impl Strategy<Value = String> {
    proptest::collection::vec(proptest::sample::select(AI82), 1..=20)
        .prop_map(|bytes| String::from_utf8(bytes).unwrap())
}

fn gtin() -> impl Strategy<Value = Gtin> {
    proptest::collection::vec(0u8..10, 13).prop_map(|digits| {
        let body: String = digits.iter().map(|d| char::from(b'0' + d)).collect();
        let sum: u32 = body
            .bytes()
            .rev()
            .enumerate()
            .map(|(i, b)| u32::from(b - b'0') * if i % 2 == 0 { 3 } else { 1 })
            .sum();
        Gtin::parse(&format!("{body}{}", (10 - sum % 10) % 10)).unwrap()
    })
}

/// Percent-encodes every byte (uppercase or lowercase hex), the most escaped spelling.
fn escape_all(s: &str, lower: bool) -> String {
    s.bytes()
        .map(|b| {
            if lower {
                format!("%{b:02x}")
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

proptest! {
    #[test]
    fn canonical_form_round_trips(gtin in gtin(), serial in ai82_string(), lot in ai82_string()) {
        let link = DigitalLink::Item { gtin, serial: Serial::parse(&serial).unwrap() };
        let uri = link.canonical();
        prop_assert_eq!(DigitalLink::parse_canonical(&uri), Ok(link.clone()));
        // Only unreserved characters and uppercase escapes in the canonical form.
        let path = uri.strip_prefix("https://id.gs1.org").unwrap();
        prop_assert!(path.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~%/".contains(&b)));
        // Any spelling a QR code might carry parses to the same key.
        let escaped = format!(
            "http://brand.example/01/{}/10/{}/21/{}?17=250101",
            gtin.as_str(), escape_all(&lot, true), escape_all(&serial, false)
        );
        prop_assert_eq!(DigitalLink::parse(&escaped), Ok(link.clone()));
        prop_assert_eq!(DigitalLink::parse(&link.with_host("https://q.example")), Ok(link.clone()));
        // The lot key of the same GTIN.
        let lot_link = DigitalLink::Lot { gtin, lot: Lot::parse(&lot).unwrap() };
        prop_assert_eq!(DigitalLink::parse_canonical(&lot_link.canonical()), Ok(lot_link));
        // Raw element string (GS after the variable-length serial is optional at the end).
        let raw = format!("]d201{}21{}", gtin.as_str(), serial);
        prop_assert_eq!(DigitalLink::parse_element_string(&raw), Ok(link.clone()));
        let raw = format!("01{}10{}\u{1d}21{}", gtin.as_str(), lot, serial);
        prop_assert_eq!(DigitalLink::parse_element_string(&raw), Ok(link));
    }

    #[test]
    fn escapes_in_the_canonical_form_are_uppercase(gtin in gtin(), serial in ai82_string()) {
        let uri = DigitalLink::Item { gtin, serial: Serial::parse(&serial).unwrap() }.canonical();
        let bytes = uri.as_bytes();
        for (i, b) in bytes.iter().enumerate() {
            if *b == b'%' {
                prop_assert!(bytes[i + 1..i + 3].iter().all(|h| h.is_ascii_digit() || h.is_ascii_uppercase()));
            }
        }
    }

    #[test]
    fn parsing_never_panics(s in "\\PC{0,80}") {
        let _ = DigitalLink::parse(&s);
        let _ = DigitalLink::parse_canonical(&s);
        let _ = DigitalLink::parse_element_string(&s);
    }

    #[test]
    fn parsing_near_misses_never_panics(
        prefix in proptest::sample::select(vec!["https://id.gs1.org/", "http://a.b/", "(01)", "]d2", "01"]),
        s in "[0-9A-Za-z%/()\\x1d?#:@!]{0,60}",
    ) {
        let input = format!("{prefix}{s}");
        let _ = DigitalLink::parse_scan(&input);
        if let Ok(link) = DigitalLink::parse(&input) {
            prop_assert_eq!(DigitalLink::parse_canonical(&link.canonical()), Ok(link));
        }
    }
}
