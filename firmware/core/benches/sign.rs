//! Events built and signed per second on the host: the whole `Device::record` path (validate,
//! deterministic CBOR, seq reservation and queue commit on an in-memory NOR flash, ES256 over
//! the Sig_structure) and the signature alone.
//!
//! Run: `cargo bench -p prov-firmware --bench sign`. Note: benches get the crate's
//! dev-dependencies, which turn on `prov-schemas/std` and with it p256's precomputed tables,
//! which the ESP32-C3 build cannot have. The device proxy is the `sign-count` binary built
//! without `std` (see its docs): `cargo run --release -p prov-firmware --features bench-bin
//! --bin sign-count -- record 2000`.
// Bench code: a failed expectation should panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/sign_workload.rs"]
mod workload;

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use prov_schemas::cose;
use prov_schemas::keys::{Kid, SecretKey};

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("device");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Elements(1));

    let mut device = workload::device().expect("device");
    let mut station = workload::station().expect("station");
    let mut n = 0u64;
    group.bench_function("record/commissioning", |b| {
        b.iter(|| {
            n += 1;
            workload::record(&mut device, &mut station, black_box(n)).expect("record")
        })
    });

    // The signature alone over the same payload.
    let payload = {
        let mut d = workload::device().expect("device");
        let mut s = workload::station().expect("station");
        workload::record(&mut d, &mut s, 1).expect("record");
        let q = d.outbox().next().expect("queued").expect("read");
        prov_schemas::cose::CoseSign1::parse(&q.message)
            .expect("parse")
            .payload()
            .to_vec()
    };
    let key = SecretKey::test_key("line1-commission").expect("key");
    let kid = Kid::new("line1-commission").expect("kid");
    group.bench_function("sign_message", |b| {
        b.iter(|| cose::sign_message(&kid, black_box(&payload), &key).expect("sign"))
    });
    group.finish();
    // The dev-dependencies turn on prov-schemas/std, hence p256's precomputed tables.
    eprintln!(
        "payload {} bytes; p256 precomputed tables: on (host path)",
        payload.len()
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
