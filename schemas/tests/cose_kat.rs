//! Known answers: our signatures and messages equal those of an independent implementation.
//!
//! Every expected value below was computed once with Python `cryptography` 48.0.0 (OpenSSL
//! deterministic ECDSA, RFC 6979) and the `blake3` package, with this script:
//!
//! ```python
//! import blake3
//! from cryptography.hazmat.primitives.asymmetric import ec, utils
//! from cryptography.hazmat.primitives import hashes, serialization
//! n = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
//! def det_sign(d, msg):
//!     k = ec.derive_private_key(d, ec.SECP256R1())
//!     der = k.sign(msg, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
//!     r, s = utils.decode_dss_signature(der)
//!     return k, r, s
//! def low(s): return n - s if s > n // 2 else s
//! def bstr(b):
//!     l = len(b)
//!     h = bytes([0x40 | l]) if l < 24 else bytes([0x58, l]) if l < 256 else b"\x59" + l.to_bytes(2, "big")
//!     return h + b
//! def cose(name, kid, payload):
//!     d = int.from_bytes(blake3.blake3(b"prov test key v1:" + name.encode()).digest(), "big")
//!     protected = b"\xa2\x01\x26\x04" + bstr(kid)
//!     tbs = b"\x84\x6aSignature1" + bstr(protected) + b"\x40" + bstr(payload)
//!     k, r, s = det_sign(d, tbs)
//!     sig = r.to_bytes(32, "big") + low(s).to_bytes(32, "big")
//!     return b"\xd2\x84" + bstr(protected) + b"\xa0" + bstr(payload) + b"\x58\x40" + sig
//! ```
//!
//! (`cose("line1-commission", b"line1-commission", bytes(range(250)))` etc.; the public keys are
//! `public_bytes(X962, UncompressedPoint)` and the fingerprints BLAKE3 of the `CompressedPoint`.)
// Test code: a failed expectation should panic (clippy.toml only exempts `#[test]` fns).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg(feature = "sign")]

use prov_schemas::cose::{self, CoseSign1, P256Backend};
use prov_schemas::keys::{Kid, SecretKey};

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).expect("hex")
}

/// RFC 6979 A.2.5 key (P-256, SHA-256).
const RFC6979_KEY: &str = "c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721";

#[test]
fn rfc6979_sample_high_s_is_normalised() {
    let sk = SecretKey::from_slice(&unhex(RFC6979_KEY)).unwrap();
    // Python (and RFC 6979 A.2.5) give s = f7cb1c94…acda8, which is high; we emit n - s.
    let sig = sk.sign(b"sample");
    assert_eq!(
        hex::encode(sig.to_bytes()),
        "efd48b2aacb6a8fd1140dd9cd45e81d69d2c877b56aaf991c34d0ea84eaf3716\
         0834e36ad29a83bf2bc9385e491d6099c8fdf9d1ed67aa7ea5f51f93782857a9"
    );
}

#[test]
fn rfc6979_test_low_s_is_unchanged() {
    let sk = SecretKey::from_slice(&unhex(RFC6979_KEY)).unwrap();
    let sig = sk.sign(b"test");
    assert_eq!(
        hex::encode(sig.to_bytes()),
        "f1abb023518351cd71d881567b1ea663ed3efcf6c5132b354f28d3b0b7d38367\
         019f4113742a2b14bd25926b49c649155f267e60d3814b4c0cc84250e46f0083"
    );
}

struct Kat {
    name: &'static str,
    secret: &'static str,
    public: &'static str,
    fingerprint: &'static str,
    payload: Vec<u8>,
    message: &'static str,
}

fn kats() -> Vec<Kat> {
    vec![
        Kat {
            name: "line1-commission",
            secret: "bb54c4ec6c997fa079c20f7299ee5889708da19e8aa90644e4fec0320c2da439",
            public: "049efb969d4d0b902a552f145afebf91d5d43ef90d9dd51a2584eb2d1f1abdfa69\
                     d6e9e0929002ea487113f015bf7a5f3c2ac92b5da1caeb5ee4c9acb36594317e",
            fingerprint: "2333ff01446ac0fa0055b5d6cb183f425f2921b6d7e9efb87fd0d9d64f7ed60b",
            payload: (0..250u8).collect(),
            message: "d28455a2012604506c696e65312d636f6d6d697373696f6ea058fa000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f958404dd1a87cabe8751befe80f762a6154355761e47400eb3ff3d9752f72e8aefd787f898486ad8a155b13e44279b8f8ed6d98340d651d2cca89097979b0a6c5ed2a",
        },
        Kat {
            name: "operator:factory-a",
            secret: "9f86b160117c6cec6b41441982bb69cbf218a3601e87f1f0732afbfd41463ea4",
            public: "04fd455bf41b3f3d84c90944c51eb2471dda6d86733ab184b018a38a8e90d7ee03\
                     2a1730d986bdbba30a3efefbe78640fdbc56ea9a746ad2bb5206f73f80d492c0",
            fingerprint: "4f3eba4177d09e5dca005f7718c0157ffe5a74516c212d2aae932749e70ced86",
            payload: (0..250u8).collect(),
            message: "d28457a2012604526f70657261746f723a666163746f72792d61a058fa000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f95840855284dce3ef67c05db26dbe79a1c71b8424ef1c32a482cd5ac9bf737ea4bdcd27a05686fea55898f5f64e6b682307d6835c65c4bf932cfca9eac96c74830d7d",
        },
        // Python's raw s here was bb7fd3ba…2c57 (high): the message carries n - s.
        Kat {
            name: "line1-commission",
            secret: "bb54c4ec6c997fa079c20f7299ee5889708da19e8aa90644e4fec0320c2da439",
            public: "049efb969d4d0b902a552f145afebf91d5d43ef90d9dd51a2584eb2d1f1abdfa69\
                     d6e9e0929002ea487113f015bf7a5f3c2ac92b5da1caeb5ee4c9acb36594317e",
            fingerprint: "2333ff01446ac0fa0055b5d6cb183f425f2921b6d7e9efb87fd0d9d64f7ed60b",
            payload: vec![0xa1, 0x61, 0x78, 0x06],
            message: "d28455a2012604506c696e65312d636f6d6d697373696f6ea044a16178065840c2d2f99818e1ab6855f0c178fe6bbfca1986ffd720c81f09bad8fe7947fc7c0644802c446cbd37383eb18119a241a569b41682289f7ef4e859047c98793af8fa",
        },
    ]
}

#[test]
fn test_keys_and_cose_messages_match_python() {
    for kat in kats() {
        let sk = SecretKey::test_key(kat.name).unwrap();
        assert_eq!(
            sk.public_key(),
            SecretKey::from_slice(&unhex(kat.secret))
                .unwrap()
                .public_key()
        );
        let pk = sk.public_key();
        assert_eq!(
            hex::encode(pk.to_sec1_uncompressed()),
            kat.public,
            "{}",
            kat.name
        );
        assert_eq!(pk.fingerprint().to_hex(), kat.fingerprint, "{}", kat.name);
        assert_eq!(pk.fingerprint().to_string(), kat.fingerprint);

        let kid = Kid::new(kat.name).unwrap();
        let msg = cose::sign_message(&kid, &kat.payload, &sk).unwrap();
        assert_eq!(hex::encode(&msg), kat.message, "{}", kat.name);

        let expected = unhex(kat.message);
        let parsed = CoseSign1::parse(&expected).unwrap();
        assert_eq!(parsed.verify(&pk, &P256Backend), Ok(()));
        #[cfg(feature = "ring")]
        assert_eq!(parsed.verify(&pk, &cose::RingBackend), Ok(()));
    }
}
