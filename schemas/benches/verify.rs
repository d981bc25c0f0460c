//! Verifications per second of a typical device event (~250-byte payload), parse + verify with the
//! key parsed once, for each backend; and ES256 signs per second with `p256`.
//!
//! Run: `cargo bench -p prov-schemas --all-features --bench verify`. Kept short (a few seconds per
//! benchmark) because the machine is shared.
// Test code: a failed expectation should panic (clippy.toml only exempts `#[test]` fns).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use prov_schemas::cose::{self, CoseSign1, P256Backend};
use prov_schemas::keys::{Kid, SecretKey};

fn setup() -> (Vec<u8>, SecretKey, Kid, Vec<u8>) {
    let sk = SecretKey::test_key("line1-commission").expect("test key");
    let kid = Kid::new("line1-commission").expect("kid");
    let payload: Vec<u8> = (0..250u16).map(|i| (i * 31 + 7) as u8).collect();
    let msg = cose::sign_message(&kid, &payload, &sk).expect("sign");
    (msg, sk, kid, payload)
}

fn bench(c: &mut Criterion) {
    let (msg, sk, kid, payload) = setup();
    let pk = sk.public_key();
    let mut group = c.benchmark_group("es256");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(1));

    group.bench_function("parse+verify/p256", |b| {
        b.iter(|| {
            let parsed = CoseSign1::parse(black_box(&msg)).expect("parse");
            parsed.verify(&pk, &P256Backend).expect("verify");
        })
    });
    #[cfg(feature = "ring")]
    group.bench_function("parse+verify/ring", |b| {
        b.iter(|| {
            let parsed = CoseSign1::parse(black_box(&msg)).expect("parse");
            parsed.verify(&pk, &cose::RingBackend).expect("verify");
        })
    });
    group.bench_function("parse-only", |b| {
        b.iter(|| CoseSign1::parse(black_box(&msg)).expect("parse"))
    });
    group.bench_function("sign_message/p256", |b| {
        b.iter(|| cose::sign_message(&kid, black_box(&payload), &sk).expect("sign"))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
