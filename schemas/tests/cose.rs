//! COSE_Sign1 envelope: sign → parse → verify round trips, strict rejections, mutations, high S.
// Test code: a failed expectation should panic (clippy.toml only exempts `#[test]` fns).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg(feature = "sign")]

use proptest::prelude::*;
use prov_schemas::cose::{
    self, CoseError, CoseSign1, MAX_MESSAGE_LEN, P256Backend, PreferredBackend, VerifyBackend,
};
use prov_schemas::keys::{IdError, Kid, P256_ORDER, Part, PublicKey, SecretKey};

fn key(name: &str) -> SecretKey {
    SecretKey::test_key(name).expect("test key in range")
}

fn kid(text: &str) -> Kid {
    Kid::new(text).expect("valid kid")
}

/// A ~250-byte payload (opaque to this layer).
fn payload() -> Vec<u8> {
    (0..250u16).map(|i| (i * 7 + 3) as u8).collect()
}

/// Every backend compiled in, with a name for messages.
fn backends() -> Vec<(&'static str, Box<dyn VerifyBackend>)> {
    let mut out: Vec<(&'static str, Box<dyn VerifyBackend>)> =
        vec![("p256", Box::new(P256Backend))];
    #[cfg(feature = "ring")]
    out.push(("ring", Box::new(cose::RingBackend)));
    out
}

/// Parse + verify with one backend.
fn check(message: &[u8], key: &PublicKey, backend: &dyn VerifyBackend) -> Result<(), CoseError> {
    CoseSign1::parse(message)?.verify(key, backend)
}

fn signed(kid_text: &str, payload: &[u8]) -> (Vec<u8>, PublicKey) {
    let sk = key(kid_text);
    let msg = cose::sign_message(&kid(kid_text), payload, &sk).expect("sign");
    (msg, sk.public_key())
}

#[test]
fn round_trip_device_and_operator() {
    for kid_text in [
        "line1-commission",
        "operator:factory-a",
        "a",
        &"z".repeat(64),
    ] {
        let p = payload();
        let (msg, pk) = signed(kid_text, &p);
        let parsed = CoseSign1::parse(&msg).expect("parse");
        assert_eq!(parsed.kid(), &kid(kid_text));
        assert_eq!(parsed.kid_bytes(), kid_text.as_bytes());
        assert_eq!(parsed.payload(), &p[..]);
        assert_eq!(parsed.as_bytes(), &msg[..]);
        assert_eq!(
            parsed.protected(),
            &cose::protected_header(&kid(kid_text))[..]
        );
        let tbs = cose::to_be_signed(&kid(kid_text), &p).expect("tbs");
        assert_eq!(parsed.sig_structure(), tbs);
        assert_eq!(
            cose::assemble(&kid(kid_text), &p, parsed.signature()).expect("assemble"),
            msg
        );
        for (name, b) in backends() {
            assert_eq!(parsed.verify(&pk, b.as_ref()), Ok(()), "{name}");
        }
        assert_eq!(parsed.verify(&pk, &PreferredBackend::default()), Ok(()));
    }
}

#[test]
fn empty_payload_and_layout() {
    let (msg, pk) = signed("dev", b"");
    // D2 84 | 48 A2 01 26 04 43 "dev" | A0 | 40 | 58 40 sig
    assert_eq!(&msg[..13], b"\xd2\x84\x48\xa2\x01\x26\x04\x43dev\xa0\x40");
    assert_eq!(&msg[13..15], b"\x58\x40");
    assert_eq!(msg.len(), 15 + 64);
    for (_, b) in backends() {
        assert_eq!(check(&msg, &pk, b.as_ref()), Ok(()));
    }
}

#[test]
fn wrong_key_and_wrong_payload_fail() {
    let (msg, _) = signed("dev-a", &payload());
    let other = key("dev-b").public_key();
    for (_, b) in backends() {
        assert_eq!(
            check(&msg, &other, b.as_ref()),
            Err(CoseError::BadSignature)
        );
    }
}

#[test]
fn size_limit_is_exact() {
    // kid "dev": 2 + 9 (protected item) + 1 + 3 (payload head) + len + 66 = 81 + len.
    let sk = key("dev");
    let fits = vec![0u8; MAX_MESSAGE_LEN - 81];
    let msg = cose::sign_message(&kid("dev"), &fits, &sk).expect("16 KiB fits");
    assert_eq!(msg.len(), MAX_MESSAGE_LEN);
    for (_, b) in backends() {
        assert_eq!(check(&msg, &sk.public_key(), b.as_ref()), Ok(()));
    }
    let over = vec![0u8; MAX_MESSAGE_LEN - 80];
    assert_eq!(
        cose::sign_message(&kid("dev"), &over, &sk),
        Err(CoseError::TooLarge {
            got: MAX_MESSAGE_LEN + 1,
            max: MAX_MESSAGE_LEN
        })
    );
    let mut long = msg.clone();
    long.push(0);
    // The size is checked before anything else, even before the trailing byte.
    assert_eq!(
        CoseSign1::parse(&long),
        Err(CoseError::TooLarge {
            got: MAX_MESSAGE_LEN + 1,
            max: MAX_MESSAGE_LEN
        })
    );
    assert_eq!(
        CoseSign1::parse(&vec![0u8; 1 << 20]),
        Err(CoseError::TooLarge {
            got: 1 << 20,
            max: MAX_MESSAGE_LEN
        })
    );
}

/// Builds `D2 84 <protected item> A0 <payload item> 58 40 <sig>` from raw pieces.
fn raw_message(protected_item: &[u8], payload_item: &[u8], sig: &[u8]) -> Vec<u8> {
    let mut m = vec![0xd2, 0x84];
    m.extend_from_slice(protected_item);
    m.push(0xa0);
    m.extend_from_slice(payload_item);
    m.extend_from_slice(&[0x58, 0x40]);
    m.extend_from_slice(sig);
    m
}

#[test]
fn strict_rejections() {
    let (msg, _) = signed("dev", b"\xa0");
    let sig = &msg[msg.len() - 64..];
    let good_prot: &[u8] = b"\x48\xa2\x01\x26\x04\x43dev";
    assert!(CoseSign1::parse(&raw_message(good_prot, b"\x41\xa0", sig)).is_ok());

    let cases: Vec<(&str, Vec<u8>, CoseError)> = vec![
        (
            "empty",
            vec![],
            CoseError::Truncated {
                offset: 0,
                field: "COSE_Sign1 tag",
            },
        ),
        (
            "untagged",
            msg[1..].to_vec(),
            CoseError::NotTagged { got: 0x84 },
        ),
        (
            "tag 98 (COSE_Sign)",
            [&[0xd8, 0x62][..], &msg[1..]].concat(),
            CoseError::NotTagged { got: 0xd8 },
        ),
        (
            "array of 3",
            [&[0xd2, 0x83][..], &msg[2..]].concat(),
            CoseError::BadStructure {
                offset: 1,
                got: 0x83,
                want: "an array of 4 items (0x84)",
            },
        ),
        (
            "alg ES384 (-35)",
            raw_message(b"\x49\xa2\x01\x38\x22\x04\x43dev", b"\x41\xa0", sig),
            CoseError::WrongProtectedHeader { offset: 5 },
        ),
        (
            "kid first",
            raw_message(b"\x48\xa2\x04\x43dev\x01\x26", b"\x41\xa0", sig),
            CoseError::WrongProtectedHeader { offset: 4 },
        ),
        (
            "extra protected parameter",
            raw_message(b"\x4b\xa3\x01\x26\x03\x00\x04\x43dev", b"\x41\xa0", sig),
            CoseError::WrongProtectedHeader { offset: 3 },
        ),
        (
            "bytes after the kid inside protected",
            raw_message(b"\x49\xa2\x01\x26\x04\x43dev\x00", b"\x41\xa0", sig),
            CoseError::WrongProtectedHeader { offset: 11 },
        ),
        (
            "kid as text string",
            raw_message(b"\x48\xa2\x01\x26\x04\x63dev", b"\x41\xa0", sig),
            CoseError::WrongProtectedHeader { offset: 7 },
        ),
        (
            "kid length not shortest",
            raw_message(b"\x49\xa2\x01\x26\x04\x58\x03dev", b"\x41\xa0", sig),
            CoseError::NonShortestLength { offset: 7, len: 3 },
        ),
        (
            "protected length not shortest",
            raw_message(b"\x58\x08\xa2\x01\x26\x04\x43dev", b"\x41\xa0", sig),
            CoseError::NonShortestLength { offset: 2, len: 8 },
        ),
        (
            "protected as a map, not a bstr",
            raw_message(b"\xa2\x01\x26\x04\x43dev", b"\x41\xa0", sig),
            CoseError::BadStructure {
                offset: 2,
                got: 0xa2,
                want: "a byte string",
            },
        ),
        (
            "empty kid",
            raw_message(b"\x45\xa2\x01\x26\x04\x40", b"\x41\xa0", sig),
            CoseError::BadKid {
                offset: 8,
                source: IdError::Empty,
            },
        ),
        (
            "uppercase kid",
            raw_message(b"\x48\xa2\x01\x26\x04\x43dEv", b"\x41\xa0", sig),
            CoseError::BadKid {
                offset: 8,
                source: IdError::BadChar {
                    offset: 1,
                    byte: b'E',
                },
            },
        ),
        (
            "bad operator kid",
            raw_message(b"\x50\xa2\x01\x26\x04\x4boperator:-x", b"\x41\xa0", sig),
            CoseError::BadKid {
                offset: 8,
                source: IdError::BadChar {
                    offset: 9,
                    byte: b'-',
                },
            },
        ),
        (
            "unprotected not empty",
            {
                let mut m = raw_message(good_prot, b"\x41\xa0", sig);
                m[11] = 0xa1;
                m
            },
            CoseError::UnprotectedNotEmpty {
                offset: 11,
                got: 0xa1,
            },
        ),
        (
            "payload length not shortest",
            raw_message(good_prot, b"\x58\x01\xa0", sig),
            CoseError::NonShortestLength { offset: 12, len: 1 },
        ),
        (
            "payload length 4-byte form",
            raw_message(good_prot, b"\x5a\x00\x00\x00\x01\xa0", sig),
            CoseError::NonShortestLength { offset: 12, len: 1 },
        ),
        (
            "indefinite payload",
            raw_message(good_prot, b"\x5f\x41\xa0\xff", sig),
            CoseError::BadStructure {
                offset: 12,
                got: 0x5f,
                want: "a definite-length byte string",
            },
        ),
        (
            "reserved length form",
            raw_message(good_prot, b"\x5c\xa0", sig),
            CoseError::BadStructure {
                offset: 12,
                got: 0x5c,
                want: "a well-formed byte string head",
            },
        ),
        (
            "nil payload (detached)",
            raw_message(good_prot, b"\xf6", sig),
            CoseError::BadStructure {
                offset: 12,
                got: 0xf6,
                want: "a byte string",
            },
        ),
        (
            "payload longer than message",
            raw_message(good_prot, b"\x59\x40\x00", sig),
            CoseError::Truncated {
                offset: 81,
                field: "payload",
            },
        ),
        (
            "signature 63 bytes",
            {
                let mut m = raw_message(good_prot, b"\x41\xa0", &sig[..63]);
                m[15] = 0x3f;
                m
            },
            CoseError::SignatureLength { got: 63 },
        ),
        (
            "signature 65 bytes",
            {
                let mut m = raw_message(good_prot, b"\x41\xa0", sig);
                m[15] = 0x41;
                m.push(0);
                m
            },
            CoseError::SignatureLength { got: 65 },
        ),
        (
            "signature as array",
            [&raw_message(good_prot, b"\x41\xa0", sig)[..14], &[0x82][..]].concat(),
            CoseError::BadStructure {
                offset: 14,
                got: 0x82,
                want: "a byte string",
            },
        ),
        (
            "signature truncated",
            raw_message(good_prot, b"\x41\xa0", &sig[..40]),
            CoseError::Truncated {
                offset: 56,
                field: "signature",
            },
        ),
        (
            "r = 0",
            raw_message(
                good_prot,
                b"\x41\xa0",
                &[&[0u8; 32][..], &sig[32..]].concat(),
            ),
            CoseError::SignatureZero { part: Part::R },
        ),
        (
            "s = n",
            raw_message(
                good_prot,
                b"\x41\xa0",
                &[&sig[..32], &P256_ORDER[..]].concat(),
            ),
            CoseError::SignatureOutOfRange { part: Part::S },
        ),
        (
            "trailing byte",
            [&raw_message(good_prot, b"\x41\xa0", sig)[..], &[0x00][..]].concat(),
            CoseError::TrailingBytes { offset: 80, got: 1 },
        ),
    ];
    for (name, bytes, want) in cases {
        assert_eq!(CoseSign1::parse(&bytes), Err(want), "{name}");
    }
}

/// n - s for a big-endian 32-byte s with 0 < s < n.
fn negate_mod_n(s: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let mut d = i16::from(P256_ORDER[i]) - i16::from(s[i]) - borrow;
        borrow = if d < 0 {
            d += 256;
            1
        } else {
            0
        };
        out[i] = d as u8;
    }
    out
}

#[test]
fn high_s_is_rejected_by_the_parser_not_the_math() {
    for kid_text in ["line1-commission", "operator:factory-a"] {
        let p = payload();
        let (msg, pk) = signed(kid_text, &p);
        let parsed = CoseSign1::parse(&msg).expect("valid");
        let sig_structure = parsed.sig_structure();
        let low = parsed.signature().to_bytes();
        let mut high = low;
        high[32..].copy_from_slice(&negate_mod_n(&low[32..]));
        assert_ne!(high, low);

        let mut twin = msg.clone();
        let at = twin.len() - 32;
        twin[at..].copy_from_slice(&high[32..]);
        assert_eq!(CoseSign1::parse(&twin), Err(CoseError::HighS));

        // The raw backends accept the malleated twin: the rejection is ours, by SPEC §2.
        for (name, b) in backends() {
            assert!(b.verify_es256(&pk, &[&sig_structure], &low), "{name} low");
            assert!(b.verify_es256(&pk, &[&sig_structure], &high), "{name} high");
        }
        // And so does p256 called directly, without our types.
        use p256::ecdsa::signature::Verifier as _;
        let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(pk.as_sec1_uncompressed()).unwrap();
        let raw_high = p256::ecdsa::Signature::from_slice(&high).unwrap();
        assert!(vk.verify(&sig_structure, &raw_high).is_ok());
    }
}

/// What both raw backends say about a mutant, read at the original message's fixed offsets.
fn raw_answers(mutant: &[u8], layout: (usize, usize), pk: &PublicKey) -> Vec<bool> {
    let (prot_end, payload_end) = layout;
    let mut sig = [0u8; 64];
    sig.copy_from_slice(&mutant[mutant.len() - 64..]);
    let parts: [&[u8]; 4] = [
        b"\x84\x6aSignature1",
        &mutant[2..prot_end],
        b"\x40",
        &mutant[prot_end + 1..payload_end],
    ];
    backends()
        .iter()
        .map(|(_, b)| b.verify_es256(pk, &parts, &sig))
        .collect()
}

#[test]
fn every_single_byte_mutant_is_rejected_and_backends_agree() {
    let mut checked = 0usize;
    let mut reached_crypto = 0usize;
    for kid_text in ["line1-commission", "operator:factory-a"] {
        let p = payload();
        let (msg, pk) = signed(kid_text, &p);
        let parsed = CoseSign1::parse(&msg).expect("valid");
        // D2 84, the protected bstr head (1 byte below 24 bytes of content, else 2), the map.
        let head = if parsed.protected().len() < 24 { 1 } else { 2 };
        let prot_end = 2 + head + parsed.protected().len();
        let payload_end = msg.len() - 66;
        let layout = (prot_end, payload_end);
        assert_eq!(raw_answers(&msg, layout, &pk), vec![true; backends().len()]);

        for i in 0..msg.len() {
            for mask in [0x01u8, 0x80, 0xff] {
                let mut m = msg.clone();
                m[i] ^= mask;
                let results: Vec<_> = backends()
                    .iter()
                    .map(|(_, b)| check(&m, &pk, b.as_ref()))
                    .collect();
                assert!(
                    results.iter().all(|r| r.is_err()),
                    "byte {i} ^ {mask:#x} accepted"
                );
                assert!(
                    results.windows(2).all(|w| w[0] == w[1]),
                    "byte {i}: {results:?}"
                );
                if results[0] == Err(CoseError::BadSignature) {
                    reached_crypto += 1;
                }
                if m.len() == msg.len() {
                    let raw = raw_answers(&m, layout, &pk);
                    assert!(
                        raw.windows(2).all(|w| w[0] == w[1]),
                        "raw byte {i} ^ {mask:#x}"
                    );
                }
                checked += 1;
            }
        }
        for len in 0..msg.len() {
            let err = CoseSign1::parse(&msg[..len]).expect_err("truncation accepted");
            assert!(
                matches!(
                    err,
                    CoseError::Truncated { .. }
                        | CoseError::BadKid { .. }
                        | CoseError::WrongProtectedHeader { .. }
                ),
                "truncated to {len}: {err:?}"
            );
            checked += 1;
        }
        for extra in [&[0x00][..], &[0xff], &[0u8; 100]] {
            let m = [&msg[..], extra].concat();
            assert_eq!(
                CoseSign1::parse(&m),
                Err(CoseError::TrailingBytes {
                    offset: msg.len(),
                    got: extra.len()
                })
            );
            checked += 1;
        }
    }
    // The payload and signature mutants (most of them) get as far as the backends.
    assert!(
        reached_crypto > 700,
        "only {reached_crypto} mutants reached the backends"
    );
    assert!(checked > 2000);
}

#[test]
fn raw_backends_agree_on_garbage_signatures() {
    let pk = key("dev").public_key();
    let msg = b"hello";
    let mut cases: Vec<[u8; 64]> = vec![[0u8; 64], [0xff; 64], [1u8; 64]];
    let mut n_n = [0u8; 64];
    n_n[..32].copy_from_slice(&P256_ORDER);
    n_n[32..].copy_from_slice(&P256_ORDER);
    cases.push(n_n);
    for sig in cases {
        let answers: Vec<bool> = backends()
            .iter()
            .map(|(_, b)| b.verify_es256(&pk, &[msg], &sig))
            .collect();
        assert!(answers.iter().all(|a| !a), "{answers:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn prop_sign_parse_verify(
        kid_text in "(operator:)?[a-z0-9][a-z0-9._-]{0,63}",
        payload in proptest::collection::vec(any::<u8>(), 0..600),
    ) {
        let kid = kid(&kid_text);
        let sk = key(&kid_text);
        let msg = cose::sign_message(&kid, &payload, &sk).unwrap();
        let parsed = CoseSign1::parse(&msg).unwrap();
        prop_assert_eq!(parsed.kid(), &kid);
        prop_assert_eq!(parsed.payload(), &payload[..]);
        prop_assert_eq!(parsed.sig_structure(), cose::to_be_signed(&kid, &payload).unwrap());
        for (_, b) in backends() {
            prop_assert_eq!(parsed.verify(&sk.public_key(), b.as_ref()), Ok(()));
        }
    }

    #[test]
    fn prop_random_mutations_never_accept(
        payload in proptest::collection::vec(any::<u8>(), 0..300),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), 1..=255u8), 1..4),
    ) {
        let (msg, pk) = signed("dev", &payload);
        let mut m = msg.clone();
        for (at, mask) in edits {
            let i = at.index(m.len());
            m[i] ^= mask;
        }
        let results: Vec<_> = backends().iter().map(|(_, b)| check(&m, &pk, b.as_ref())).collect();
        prop_assert!(results.windows(2).all(|w| w[0] == w[1]));
        if m != msg {
            prop_assert!(results[0].is_err());
        }
    }

    #[test]
    fn prop_arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = CoseSign1::parse(&bytes);
        let mut tagged = vec![0xd2, 0x84];
        tagged.extend_from_slice(&bytes);
        let _ = CoseSign1::parse(&tagged);
    }
}
