//! Merkle tree throughput at a million leaves, with BLAKE3 (SPEC §4).
//!
//! Kept short on purpose (the machine is shared): a 1M-leaf build is ~0.3 s, so that group runs
//! ten samples; the O(log n) operations run for two seconds each.

// Test code: helpers outside #[test] functions may unwrap too; a failure aborts the test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use prov_ledger::Hash32;
use prov_ledger::hasher::{Blake3Hasher, LogHasher};
use prov_ledger::merkle::{
    MemoryTree, root_from_leaf_hashes, verify_consistency, verify_inclusion,
};

const N: u64 = 1 << 20;

fn leaves() -> Vec<Hash32> {
    (0..N)
        .map(|i| Blake3Hasher.hash_leaf(&i.to_le_bytes()))
        .collect()
}

fn build(leaves: &[Hash32]) -> MemoryTree<Blake3Hasher> {
    let mut t = MemoryTree::new(Blake3Hasher);
    for l in leaves {
        t.append_leaf_hash(*l);
    }
    t
}

fn bulk(c: &mut Criterion) {
    let leaves = leaves();
    let mut g = c.benchmark_group("1M leaves");
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(6))
        .warm_up_time(Duration::from_secs(1))
        .throughput(Throughput::Elements(N));
    g.bench_function("MemoryTree append (leaf hashes given)", |b| {
        b.iter(|| build(black_box(&leaves)))
    });
    g.bench_function("MemoryTree append_entry (hash 8-byte entries too)", |b| {
        b.iter(|| {
            let mut t = MemoryTree::new(Blake3Hasher);
            for i in 0..N {
                t.append_entry(&i.to_le_bytes());
            }
            t
        })
    });
    g.bench_function("recursive root from leaf hashes", |b| {
        b.iter(|| root_from_leaf_hashes(&Blake3Hasher, black_box(&leaves)))
    });
    g.finish();
}

fn proofs(c: &mut Criterion) {
    let tree = build(&leaves());
    let size = N - 12_345; // a ragged right edge
    let root = tree.root_at(size).unwrap();
    let mut g = c.benchmark_group("at ~1M leaves");
    g.sample_size(50)
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500));
    g.bench_function("root_at(size)", |b| {
        b.iter(|| tree.root_at(black_box(size)).unwrap())
    });
    let mut i = 0u64;
    g.bench_function("inclusion proof generation", |b| {
        b.iter(|| {
            i = (i + 7_919) % size;
            tree.inclusion_proof(black_box(i), size).unwrap()
        })
    });
    let index = 654_321;
    let leaf = tree.leaf_hash(index).unwrap();
    let proof = tree.inclusion_proof(index, size).unwrap();
    g.bench_function("inclusion proof verification", |b| {
        b.iter(|| verify_inclusion(&Blake3Hasher, index, size, &leaf, black_box(&proof), &root))
    });
    let size1 = 333_333;
    let root1 = tree.root_at(size1).unwrap();
    g.bench_function("consistency proof generation", |b| {
        b.iter(|| tree.consistency_proof(black_box(size1), size).unwrap())
    });
    let cproof = tree.consistency_proof(size1, size).unwrap();
    g.bench_function("consistency proof verification", |b| {
        b.iter(|| {
            verify_consistency(
                &Blake3Hasher,
                size1,
                size,
                black_box(&cproof),
                &root1,
                &root,
            )
        })
    });
    g.finish();
}

criterion_group!(benches, bulk, proofs);
criterion_main!(benches);
