//! The on-disk log at a million entries: sequence (batches of 1,000 × 300-byte entries, one
//! fdatasync per batch), integrate, open (the full recovery scan), proofs from disk, a
//! sequence → integrate → publish pipeline, and bytes on disk per entry.
//!
//! A plain timing binary (`harness = false`), not criterion: each phase is one pass over a
//! million entries, which is what is worth measuring, and the whole run stays under a minute on
//! the shared 2-core machine. `PROV_BENCH_ENTRIES` overrides the entry count. Proof figures
//! read through the page cache (the files were just written); cold-disk reads add device
//! latency per read, at most two short entry reads and one 32-byte read per level above 4.

// Bench code: a failure aborts the run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use prov_ledger::hasher::Blake3Hasher;
use prov_ledger::merkle::{verify_consistency, verify_inclusion};
use prov_ledger::note::NoteSigner;
use prov_ledger::store::{ChainStore, LogStore, StoreConfig, publish};

const BATCH: usize = 1000;
const MSG: usize = 300;

/// A 300-byte pseudo-random message (incompressible enough, distinct per index).
fn message(i: u64, len: usize) -> Vec<u8> {
    let mut x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

struct Lat(Vec<Duration>);

impl Lat {
    fn report(mut self, what: &str) {
        self.0.sort();
        let n = self.0.len();
        let mean = self.0.iter().sum::<Duration>() / n as u32;
        let p50 = self.0[n / 2];
        let p99 = self.0[(n * 99 / 100).min(n - 1)];
        println!(
            "  {what:<44} mean {:>7.1} µs  p50 {:>7.1} µs  p99 {:>7.1} µs  (n={n})",
            mean.as_secs_f64() * 1e6,
            p50.as_secs_f64() * 1e6,
            p99.as_secs_f64() * 1e6
        );
    }
}

fn rate(n: u64, d: Duration) -> String {
    format!(
        "{:>10.0} entries/s ({:.2} s)",
        n as f64 / d.as_secs_f64(),
        d.as_secs_f64()
    )
}

fn main() {
    let n: u64 = std::env::var("PROV_BENCH_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1 << 20);
    let dir = tempfile::tempdir().unwrap();
    println!(
        "store bench: {n} entries of {MSG} bytes, batches of {BATCH}, in {}",
        dir.path().display()
    );
    let config = StoreConfig::new(dir.path().join("log"));

    // SEQUENCE.
    let mut log = LogStore::open(config.clone()).unwrap();
    let messages: Vec<Vec<u8>> = (0..BATCH as u64).map(|i| message(i, MSG)).collect();
    let mut batch_lat = Vec::new();
    let t = Instant::now();
    let mut done = 0u64;
    while done < n {
        let k = (n - done).min(BATCH as u64) as usize;
        // Distinct entries: stamp the index into the first 8 bytes.
        let batch: Vec<Vec<u8>> = messages[..k]
            .iter()
            .enumerate()
            .map(|(j, m)| {
                let mut m = m.clone();
                m[..8].copy_from_slice(&(done + j as u64).to_le_bytes());
                m
            })
            .collect();
        let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
        let b = Instant::now();
        log.sequence(&refs).unwrap();
        batch_lat.push(b.elapsed());
        done += k as u64;
    }
    let seq = t.elapsed();
    println!(
        "sequence (fdatasync per batch of {BATCH}): {}",
        rate(n, seq)
    );
    Lat(batch_lat).report("sequence latency per batch");

    // INTEGRATE.
    let t = Instant::now();
    let root = log.integrate().unwrap();
    let int = t.elapsed();
    println!("integrate (all at once):                  {}", rate(n, int));
    let t = Instant::now();
    log.sync().unwrap();
    println!(
        "  tree fdatasync: {:.1} ms",
        t.elapsed().as_secs_f64() * 1e3
    );

    // DISK.
    let usage = log.disk_usage().unwrap();
    let msg_bytes = n * MSG as u64;
    println!(
        "disk: entries {:.1} MB + tree {:.1} MB + index {} = {:.2} bytes/entry = {:.3}x the message bytes (entries {:.2} B/entry, tree {:.2} B/entry)",
        usage.entry_bytes as f64 / 1e6,
        usage.tree_bytes as f64 / 1e6,
        usage.index_bytes,
        usage.total() as f64 / n as f64,
        usage.total() as f64 / msg_bytes as f64,
        (usage.entry_bytes as f64 - msg_bytes as f64) / n as f64,
        usage.tree_bytes as f64 / n as f64,
    );

    // OPEN: the full recovery scan (checksums, leaf hashes, stored tree compared).
    drop(log);
    let t = Instant::now();
    let log = LogStore::open(config.clone()).unwrap();
    let open = t.elapsed();
    assert_eq!(log.root(), root);
    assert_eq!(log.recovery(), &Default::default());
    println!(
        "open (verify every entry and tree hash):  {}",
        rate(n, open)
    );

    // PROOFS from disk.
    let mut x = 12345u64;
    let mut next = |m: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % m
    };
    let size = log.size();
    let mut lat = Vec::new();
    for _ in 0..20_000 {
        let i = next(size);
        let t = Instant::now();
        let p = log.inclusion_proof(i, size).unwrap();
        lat.push(t.elapsed());
        if lat.len().is_multiple_of(1000) {
            let leaf = log.leaf_hash(i).unwrap();
            verify_inclusion(&Blake3Hasher, i, size, &leaf, &p, &root).unwrap();
        }
    }
    Lat(lat).report(&format!("inclusion proof at size {size}"));
    let mut lat = Vec::new();
    for _ in 0..20_000 {
        let s = 1 + next(size);
        let i = next(s);
        let t = Instant::now();
        log.inclusion_proof(i, s).unwrap();
        lat.push(t.elapsed());
    }
    Lat(lat).report("inclusion proof at a random older size");
    let mut lat = Vec::new();
    for _ in 0..20_000 {
        let s1 = 1 + next(size);
        let t = Instant::now();
        let p = log.consistency_proof(s1, size).unwrap();
        lat.push(t.elapsed());
        if lat.len().is_multiple_of(1000) {
            let r1 = log.root_at(s1).unwrap();
            verify_consistency(&Blake3Hasher, s1, size, &p, &r1, &root).unwrap();
        }
    }
    Lat(lat).report("consistency proof (random size1 → size)");
    let mut lat = Vec::new();
    for _ in 0..20_000 {
        let s = 1 + next(size);
        let t = Instant::now();
        log.root_at(s).unwrap();
        lat.push(t.elapsed());
    }
    Lat(lat).report("root_at(random size)");
    let mut lat = Vec::new();
    for _ in 0..20_000 {
        let i = next(size);
        let t = Instant::now();
        log.entry(i).unwrap();
        lat.push(t.elapsed());
    }
    Lat(lat).report("entry(random index)");
    drop(log);

    // PIPELINE: sequence batches of 1,000, integrate each, publish every 12 batches (about a
    // second of traffic at 12,000 events/s), on a fresh store with its chain.
    let pdir = tempfile::tempdir().unwrap();
    let mut log = LogStore::open(StoreConfig::new(pdir.path().join("log"))).unwrap();
    let signer = NoteSigner::from_seed("bench.example/log", &[3; 32]).unwrap();
    let mut chain = ChainStore::open(
        &pdir.path().join("chain.bin"),
        &signer.verifier_key().unwrap(),
    )
    .unwrap();
    let total = (n / 4).max(BATCH as u64);
    let mut publish_lat = Vec::new();
    let t = Instant::now();
    let mut done = 0u64;
    let mut batches = 0u64;
    while done < total {
        let batch: Vec<Vec<u8>> = (done..done + BATCH as u64)
            .map(|i| message(i, MSG))
            .collect();
        let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
        log.sequence(&refs).unwrap();
        log.integrate().unwrap();
        done += BATCH as u64;
        batches += 1;
        if batches.is_multiple_of(12) {
            let p = Instant::now();
            publish(&mut log, &mut chain, &signer).unwrap();
            publish_lat.push(p.elapsed());
        }
    }
    let pipe = t.elapsed();
    println!(
        "pipeline sequence+integrate per batch, publish per 12 batches: {} (incl. message generation)",
        rate(done, pipe)
    );
    Lat(publish_lat).report("publish (integrate+sync+CAS+sign+append)");
    println!(
        "chain: {} blocks, {} bytes",
        chain.len(),
        chain.file_bytes()
    );
}
