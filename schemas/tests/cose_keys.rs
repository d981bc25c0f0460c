//! Key, signature and identifier parsing.
// Test code: a failed expectation should panic (clippy.toml only exempts `#[test]` fns).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use prov_schemas::keys::{
    DeviceId, IdError, KeyError, Kid, OperatorName, P256_HALF_ORDER, P256_ORDER, Part, PublicKey,
    Signature, SignatureError,
};

/// The P-256 generator G, uncompressed.
const G: &str = "046b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296\
                 4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5";

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).expect("hex")
}

#[test]
fn public_key_round_trip_and_compression() {
    let g = unhex(G);
    let pk = PublicKey::from_sec1_uncompressed(&g).unwrap();
    assert_eq!(pk.to_sec1_uncompressed().to_vec(), g);
    // y of G is odd (…f5), so the compressed tag is 03.
    let c = pk.to_sec1_compressed();
    assert_eq!(c[0], 0x03);
    assert_eq!(&c[1..], &g[1..33]);
    assert_eq!(pk.fingerprint(), prov_schemas::Hash32::blake3(&c));
    assert_eq!(pk.to_string(), G);
    assert!(format!("{pk:?}").starts_with("PublicKey(046b17"));
}

#[test]
fn public_key_rejections() {
    let g = unhex(G);
    assert_eq!(
        PublicKey::from_sec1_uncompressed(&g[..64]),
        Err(KeyError::Length { got: 64, want: 65 })
    );
    assert_eq!(
        PublicKey::from_sec1_uncompressed(&[0x00]),
        Err(KeyError::Length { got: 1, want: 65 }),
        "identity"
    );
    let mut zero = [0u8; 65];
    assert_eq!(
        PublicKey::from_sec1_uncompressed(&zero),
        Err(KeyError::Tag { got: 0 })
    );
    zero[0] = 4;
    assert_eq!(
        PublicKey::from_sec1_uncompressed(&zero),
        Err(KeyError::NotOnCurve),
        "(0, 0)"
    );
    let pk = PublicKey::from_sec1_uncompressed(&g).unwrap();
    assert_eq!(
        PublicKey::from_sec1_uncompressed(&pk.to_sec1_compressed()),
        Err(KeyError::Length { got: 33, want: 65 })
    );
    let mut hybrid = g.clone();
    hybrid[0] = 0x07;
    assert_eq!(
        PublicKey::from_sec1_uncompressed(&hybrid),
        Err(KeyError::Tag { got: 7 })
    );
    for i in 1..65 {
        let mut bad = g.clone();
        bad[i] ^= 1;
        assert_eq!(
            PublicKey::from_sec1_uncompressed(&bad),
            Err(KeyError::NotOnCurve),
            "byte {i}"
        );
    }
    // x = p (out of field range) with G's y.
    let p = unhex("ffffffff00000001000000000000000000000000ffffffffffffffffffffffff");
    let mut big = g.clone();
    big[1..33].copy_from_slice(&p);
    assert_eq!(
        PublicKey::from_sec1_uncompressed(&big),
        Err(KeyError::NotOnCurve)
    );
}

#[test]
fn signature_checks() {
    let mut raw = [0x11u8; 64];
    let sig = Signature::from_bytes(&raw).unwrap();
    assert_eq!(sig.r(), &[0x11; 32]);
    assert_eq!(sig.s(), &[0x11; 32]);
    assert_eq!(sig.to_bytes(), raw);
    raw[32..].copy_from_slice(&P256_HALF_ORDER);
    assert!(Signature::from_bytes(&raw).is_ok(), "s = n/2 is low");
    raw[63] += 1;
    assert_eq!(Signature::from_bytes(&raw), Err(SignatureError::HighS));
    raw[32..].copy_from_slice(&P256_ORDER);
    raw[63] -= 1;
    assert_eq!(
        Signature::from_bytes(&raw),
        Err(SignatureError::HighS),
        "s = n - 1"
    );
    raw[63] += 1;
    assert_eq!(
        Signature::from_bytes(&raw),
        Err(SignatureError::OutOfRange { part: Part::S })
    );
    raw[..32].copy_from_slice(&[0xff; 32]);
    assert_eq!(
        Signature::from_bytes(&raw),
        Err(SignatureError::OutOfRange { part: Part::R })
    );
    assert_eq!(
        Signature::from_slice(&[]),
        Err(SignatureError::Length { got: 0 })
    );
}

#[test]
fn ids_and_kids() {
    let id = DeviceId::new("line1-commission").unwrap();
    assert_eq!(id.as_str(), "line1-commission");
    assert_eq!(id.to_string(), "line1-commission");
    assert_eq!("line1-commission".parse::<DeviceId>(), Ok(id));
    assert_eq!(Kid::from(id), Kid::new("line1-commission").unwrap());
    assert_eq!(
        DeviceId::new("operator:x"),
        Err(IdError::BadChar {
            offset: 8,
            byte: b':'
        })
    );
    assert_eq!(
        DeviceId::new("café"),
        Err(IdError::BadChar {
            offset: 3,
            byte: 0xc3
        })
    );
    assert_eq!(
        DeviceId::new(".a"),
        Err(IdError::BadChar {
            offset: 0,
            byte: b'.'
        })
    );
    let op = Kid::new("operator:factory-a").unwrap();
    assert_eq!(op, Kid::Operator(OperatorName::new("factory-a").unwrap()));
    assert_eq!(op.device(), None);
    assert_eq!(
        Kid::new(&format!("operator:{}", "a".repeat(65))),
        Err(IdError::TooLong { got: 65, max: 64 })
    );
    assert!(Kid::new(&format!("operator:{}", "a".repeat(64))).is_ok());
}

#[test]
fn serde_as_strings() {
    let id = DeviceId::new("dev-1").unwrap();
    assert_eq!(serde_json::to_string(&id).unwrap(), "\"dev-1\"");
    assert_eq!(serde_json::from_str::<DeviceId>("\"dev-1\"").unwrap(), id);
    assert!(serde_json::from_str::<DeviceId>("\"Dev\"").is_err());
    let kid = Kid::new("operator:factory-a").unwrap();
    assert_eq!(
        serde_json::to_string(&kid).unwrap(),
        "\"operator:factory-a\""
    );
    assert_eq!(
        serde_json::from_str::<Kid>("\"operator:factory-a\"").unwrap(),
        kid
    );
    assert!(serde_json::from_str::<Kid>("\"operator:\"").is_err());
}

#[cfg(feature = "sign")]
#[test]
fn secret_keys() {
    use prov_schemas::keys::SecretKey;
    assert_eq!(
        SecretKey::from_slice(&[0u8; 32]).err(),
        Some(KeyError::SecretZero)
    );
    assert_eq!(
        SecretKey::from_slice(&P256_ORDER).err(),
        Some(KeyError::SecretTooLarge)
    );
    assert_eq!(
        SecretKey::from_slice(&[0xff; 32]).err(),
        Some(KeyError::SecretTooLarge)
    );
    assert_eq!(
        SecretKey::from_slice(&[1u8; 31]).err(),
        Some(KeyError::Length { got: 31, want: 32 })
    );
    let mut n_minus_1 = P256_ORDER;
    n_minus_1[31] -= 1;
    assert!(SecretKey::from_slice(&n_minus_1).is_ok());
    let mut one = [0u8; 32];
    one[31] = 1;
    let sk = SecretKey::from_slice(&one).unwrap();
    // 1·G = G.
    assert_eq!(hex::encode(sk.public_key().to_sec1_uncompressed()), G);

    let secret = [0x42u8; 32];
    let sk = SecretKey::from_slice(&secret).unwrap();
    let shown = format!("{sk:?}");
    assert!(shown.contains("redacted"));
    assert!(!shown.contains("4242"), "{shown}");
    // Low S on every signature.
    for i in 0..64u8 {
        let sig = sk.sign(&[i]);
        assert!(sig.s() <= &P256_HALF_ORDER);
        assert_eq!(Signature::from_bytes(&sig.to_bytes()), Ok(sig));
    }
}
