//! The on-disk log: sequence/integrate/proofs against `MemoryTree`, reopen, torn tails at every
//! byte, mid-log corruption, segment rotation, write failures (ENOSPC) and tree repair.
#![cfg(feature = "std")]
// Test code: helpers outside #[test] functions may unwrap too; a failure aborts the test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::io::ErrorKind;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use prop::test_runner::{Config, FileFailurePersistence};
use proptest::prelude::*;
use prov_ledger::Hash32;
use prov_ledger::hasher::Blake3Hasher;
use prov_ledger::merkle::{MemoryTree, MerkleError, verify_consistency, verify_inclusion};
use prov_ledger::store::{Damage, LogStore, MAX_ENTRY_BYTES, StoreConfig, StoreError};

/// A deterministic entry: its index, a salt, then a pattern, `len` bytes in all (at least 9).
fn entry(i: u64, salt: u8, len: usize) -> Vec<u8> {
    let mut e = i.to_le_bytes().to_vec();
    e.push(salt);
    while e.len() < len {
        e.push((e.len() as u64 * 31 + i) as u8);
    }
    e
}

fn open(dir: &Path, segment_bytes: u64) -> LogStore {
    LogStore::open(StoreConfig {
        dir: dir.to_path_buf(),
        segment_bytes,
    })
    .unwrap()
}

fn refs(entries: &[Vec<u8>]) -> Vec<&[u8]> {
    entries.iter().map(Vec::as_slice).collect()
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir.join("entries"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    v.sort();
    v
}

/// Checks every root, a spread of inclusion and consistency proofs, and the entries.
fn check_matches(log: &LogStore, tree: &MemoryTree<Blake3Hasher>, entries: &[Vec<u8>]) {
    let n = tree.size();
    assert_eq!(log.size(), n);
    assert_eq!(log.integrated_size(), n);
    assert_eq!(log.root(), tree.root());
    let sizes: Vec<u64> = if n <= 40 {
        (0..=n).collect()
    } else {
        let mut s: Vec<u64> = (0..=20).chain(n - 20..=n).collect();
        s.extend((1..20).map(|k| n * k / 20));
        s
    };
    for &size in &sizes {
        let root = log.root_at(size).unwrap();
        assert_eq!(root, tree.root_at(size).unwrap(), "root at {size}");
        if size == 0 {
            continue;
        }
        for index in [
            0,
            size / 3,
            size / 2,
            size - 1,
            (size * 7 / 8).min(size - 1),
        ] {
            let p = log.inclusion_proof(index, size).unwrap();
            assert_eq!(p, tree.inclusion_proof(index, size).unwrap());
            let leaf = log.leaf_hash(index).unwrap();
            verify_inclusion(&Blake3Hasher, index, size, &leaf, &p, &root).unwrap();
        }
        for size1 in [1, size / 2, size.saturating_sub(1), size] {
            if size1 == 0 {
                continue;
            }
            let p = log.consistency_proof(size1, size).unwrap();
            assert_eq!(p, tree.consistency_proof(size1, size).unwrap());
            let root1 = log.root_at(size1).unwrap();
            verify_consistency(&Blake3Hasher, size1, size, &p, &root1, &root).unwrap();
        }
    }
    for i in [0, n / 2, n.saturating_sub(1)] {
        if i < n {
            assert_eq!(log.entry(i).unwrap(), entries[i as usize]);
        }
    }
    let mut seen = 0u64;
    log.for_each_entry(0..n, |i, e| {
        assert_eq!(i, seen);
        assert_eq!(e, entries[i as usize].as_slice());
        seen += 1;
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(seen, n);
}

proptest! {
    #![proptest_config(Config {
        cases: 24,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..Config::default()
    })]

    /// Random batches, random integrate points, small and default segments: every root and
    /// proof equals `MemoryTree`'s, before and after reopening.
    #[test]
    fn matches_memory_tree(
        batches in prop::collection::vec(
            (prop::collection::vec(9usize..120, 0..400), any::<bool>()), 1..12),
        segment_bytes in prop_oneof![Just(64u64 << 20), 200u64..6000],
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), segment_bytes);
        let mut tree = MemoryTree::new(Blake3Hasher);
        let mut all = Vec::new();
        for (lens, integrate) in &batches {
            let batch: Vec<Vec<u8>> = lens
                .iter()
                .enumerate()
                .map(|(k, &len)| entry(all.len() as u64 + k as u64, 7, len))
                .collect();
            let first = log.sequence(&refs(&batch)).unwrap();
            prop_assert_eq!(first, all.len() as u64);
            for e in &batch {
                tree.append_entry(e);
            }
            all.extend(batch);
            prop_assert_eq!(log.size(), all.len() as u64);
            if *integrate {
                prop_assert_eq!(log.integrate().unwrap(), tree.root());
            }
        }
        log.integrate().unwrap();
        check_matches(&log, &tree, &all);
        let usage = log.disk_usage().unwrap();
        drop(log);
        let log = open(dir.path(), segment_bytes);
        prop_assert_eq!(log.recovery(), &Default::default());
        prop_assert_eq!(log.disk_usage().unwrap(), usage);
        check_matches(&log, &tree, &all);
    }
}

#[test]
fn empty_store_and_range_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), 1 << 20);
    assert_eq!(log.size(), 0);
    assert_eq!(log.integrate().unwrap(), Hash32::blake3(b""));
    assert_eq!(log.root_at(0).unwrap(), Hash32::blake3(b""));
    assert!(matches!(
        log.entry(0),
        Err(StoreError::IndexOutOfRange { index: 0, size: 0 })
    ));
    assert_eq!(log.sequence(&[]).unwrap(), 0);
    log.sequence(&[b"a", b"b"]).unwrap();
    assert!(matches!(
        log.root_at(1),
        Err(StoreError::NotIntegrated {
            size: 1,
            integrated: 0
        })
    ));
    log.integrate().unwrap();
    assert!(matches!(
        log.inclusion_proof(2, 2),
        Err(StoreError::Proof(MerkleError::IndexOutOfRange {
            index: 2,
            size: 2
        }))
    ));
    assert!(matches!(
        log.for_each_entry(0..3, |_, _| ControlFlow::Continue(())),
        Err(StoreError::IndexOutOfRange { index: 2, size: 2 })
    ));
    // Stopping early.
    let mut n = 0;
    log.for_each_entry(0..2, |_, _| {
        n += 1;
        ControlFlow::Break(())
    })
    .unwrap();
    assert_eq!(n, 1);
    // An empty entry is an entry.
    log.sequence(&[b""]).unwrap();
    assert_eq!(log.entry(2).unwrap(), b"");
    // Too large: refused before anything is written.
    let big = vec![0u8; MAX_ENTRY_BYTES + 1];
    assert!(matches!(
        log.sequence(&[b"x", &big]),
        Err(StoreError::EntryTooLarge { position: 1, .. })
    ));
    assert_eq!(log.size(), 3);
}

#[test]
fn one_handle_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let _log = open(dir.path(), 1 << 20);
    assert!(matches!(
        LogStore::open(StoreConfig::new(dir.path())),
        Err(StoreError::Locked { .. })
    ));
    assert!(matches!(
        LogStore::open(StoreConfig {
            dir: dir.path().join("other"),
            segment_bytes: 0
        }),
        Err(StoreError::Config { .. })
    ));
}

/// Sequences `n` entries of varied lengths; returns them with the matching tree.
fn fill(log: &mut LogStore, n: u64, salt: u8) -> (Vec<Vec<u8>>, MemoryTree<Blake3Hasher>) {
    let entries: Vec<Vec<u8>> = (0..n)
        .map(|i| entry(i, salt, 9 + (i as usize * 37) % 90))
        .collect();
    for chunk in entries.chunks(7) {
        log.sequence(&refs(chunk)).unwrap();
    }
    log.integrate().unwrap();
    let mut tree = MemoryTree::new(Blake3Hasher);
    for e in &entries {
        tree.append_entry(e);
    }
    (entries, tree)
}

/// Offsets of the records of a segment file.
fn record_offsets(bytes: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut p = 0;
    while p + 4 <= bytes.len() {
        out.push(p);
        let len = u32::from_le_bytes(bytes[p..p + 4].try_into().unwrap()) as usize;
        p += 8 + len;
    }
    out
}

#[test]
fn torn_tail_at_every_byte_and_garbage() {
    let dir = tempfile::tempdir().unwrap();
    // 48 entries: the last completes a block, so the stored tree covers it and must be cut too.
    let mut log = open(dir.path(), 1 << 20);
    let (entries, _) = fill(&mut log, 48, 1);
    drop(log);
    let seg = segments(dir.path()).pop().unwrap();
    let original = fs::read(&seg).unwrap();
    let last = *record_offsets(&original).last().unwrap();
    let mut tree = MemoryTree::new(Blake3Hasher);
    for e in &entries[..47] {
        tree.append_entry(e);
    }
    for cut in last..original.len() {
        fs::write(&seg, &original[..cut]).unwrap();
        let mut log = open(dir.path(), 1 << 20);
        assert_eq!(log.size(), 47, "cut at {cut}");
        assert_eq!(log.recovery().torn_bytes, (cut - last) as u64);
        assert_eq!(log.root(), tree.root());
        assert_eq!(fs::metadata(&seg).unwrap().len(), last as u64);
        // The store goes on from the cut.
        let again = log.sequence(&[&entries[47]]).unwrap();
        assert_eq!(again, 47);
        log.integrate().unwrap();
        let mut t = tree.clone();
        t.append_entry(&entries[47]);
        assert_eq!(log.root(), t.root());
    }
    // Garbage after whole records: zeros, ones, a plausible length, random bytes.
    let mut tree = MemoryTree::new(Blake3Hasher);
    for e in &entries {
        tree.append_entry(e);
    }
    let mut random = Vec::new();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..300 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        random.push(x as u8);
    }
    let garbage: Vec<Vec<u8>> = vec![
        vec![0; 1],
        vec![0; 12],
        vec![0; 4096],
        vec![0xff; 40],
        [10u8, 0, 0, 0, 1, 2, 3].to_vec(),
        [3u8, 0, 0, 0, 1, 2, 3, 9, 9, 9, 9, 0, 0].to_vec(),
        random,
    ];
    for g in garbage {
        let mut bytes = original.clone();
        bytes.extend_from_slice(&g);
        fs::write(&seg, &bytes).unwrap();
        let log = open(dir.path(), 1 << 20);
        assert_eq!(log.size(), 48, "garbage {:?}", &g[..g.len().min(8)]);
        assert_eq!(log.recovery().torn_bytes, g.len() as u64);
        check_matches(&log, &tree, &entries);
    }
}

#[test]
fn corruption_in_the_middle_is_an_error_naming_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), 700);
    let (_, _) = fill(&mut log, 60, 2);
    assert!(log.segment_count() > 3);
    drop(log);
    let segs = segments(dir.path());
    // A payload byte, a length byte and a checksum byte, in a sealed segment and in the last.
    for seg in [&segs[1], segs.last().unwrap()] {
        let original = fs::read(seg).unwrap();
        let offsets = record_offsets(&original);
        let first: u64 = seg.file_stem().unwrap().to_str().unwrap().parse().unwrap();
        let k = 1usize; // a record with records after it
        assert!(offsets.len() > 2);
        let len = u32::from_le_bytes(original[offsets[k]..offsets[k] + 4].try_into().unwrap());
        for (what, at) in [
            ("payload", offsets[k] + 4 + 3),
            ("length", offsets[k]),
            ("checksum", offsets[k] + 4 + len as usize + 1),
        ] {
            let mut bytes = original.clone();
            bytes[at] ^= 0x40;
            fs::write(seg, &bytes).unwrap();
            match LogStore::open(StoreConfig {
                dir: dir.path().to_path_buf(),
                segment_bytes: 700,
            }) {
                Err(StoreError::Corrupt {
                    segment,
                    offset,
                    index,
                    damage,
                }) => {
                    assert_eq!(&segment, seg, "{what}");
                    assert_eq!(offset, offsets[k] as u64, "{what}");
                    assert_eq!(index, first + k as u64, "{what}");
                    assert!(
                        matches!(damage, Damage::Checksum { .. } | Damage::Truncated { .. }),
                        "{what}: {damage:?}"
                    );
                    let text = StoreError::Corrupt {
                        segment,
                        offset,
                        index,
                        damage,
                    }
                    .to_string();
                    assert!(text.contains(&format!("entry {index}")), "{text}");
                }
                other => panic!("{what} in {}: {other:?}", seg.display()),
            }
            // Nothing was cut.
            assert_eq!(fs::read(seg).unwrap(), bytes);
        }
        fs::write(seg, &original).unwrap();
    }
    // Corruption after open is found on read.
    let log = open(dir.path(), 700);
    let seg = &segs[2];
    let first: u64 = seg.file_stem().unwrap().to_str().unwrap().parse().unwrap();
    let mut bytes = fs::read(seg).unwrap();
    bytes[10] ^= 1;
    fs::write(seg, &bytes).unwrap();
    assert!(matches!(
        log.entry(first),
        Err(StoreError::Corrupt { index, offset: 0, .. }) if index == first
    ));
}

#[test]
fn rotation_with_tiny_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), 100);
    // 30-byte entries take 38 bytes: two per segment. A 200-byte entry gets its own segment.
    let mut entries: Vec<Vec<u8>> = (0..9).map(|i| entry(i, 3, 30)).collect();
    entries.push(entry(9, 3, 200));
    entries.extend((10..13).map(|i| entry(i, 3, 30)));
    log.sequence(&refs(&entries[..5])).unwrap();
    log.sequence(&refs(&entries[5..])).unwrap();
    log.integrate().unwrap();
    let names: Vec<String> = segments(dir.path())
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        [0, 2, 4, 6, 8, 9, 10, 12].map(|f| format!("{f:020}.seg"))
    );
    let mut tree = MemoryTree::new(Blake3Hasher);
    for e in &entries {
        tree.append_entry(e);
    }
    check_matches(&log, &tree, &entries);
    drop(log);
    let log = open(dir.path(), 100);
    check_matches(&log, &tree, &entries);
    // A missing segment in the middle is a layout error.
    drop(log);
    fs::remove_file(dir.path().join("entries").join(format!("{:020}.seg", 4))).unwrap();
    assert!(matches!(
        LogStore::open(StoreConfig {
            dir: dir.path().to_path_buf(),
            segment_bytes: 100
        }),
        Err(StoreError::Layout { .. })
    ));
}

#[test]
fn write_failures_are_undone() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), 200);
    let (mut entries, _) = fill(&mut log, 20, 4);
    let usage = log.disk_usage().unwrap();
    let segs_before = segments(dir.path());
    let lens_before: Vec<u64> = segs_before
        .iter()
        .map(|p| fs::metadata(p).unwrap().len())
        .collect();
    // A batch that spans several new segments; the disk fills up in the middle of it.
    let batch: Vec<Vec<u8>> = (20..32).map(|i| entry(i, 4, 50)).collect();
    for budget in [0u64, 1, 57, 58, 200, 400] {
        log.fail_writes_after(Some(budget));
        match log.sequence(&refs(&batch)) {
            Err(StoreError::WriteFailed { source, size, .. }) => {
                assert_eq!(source.kind(), ErrorKind::StorageFull);
                assert_eq!(size, 20);
            }
            other => panic!("budget {budget}: {other:?}"),
        }
        assert_eq!(log.size(), 20);
        assert_eq!(log.disk_usage().unwrap(), usage);
        assert_eq!(segments(dir.path()), segs_before, "budget {budget}");
        let lens: Vec<u64> = segs_before
            .iter()
            .map(|p| fs::metadata(p).unwrap().len())
            .collect();
        assert_eq!(lens, lens_before, "budget {budget}");
    }
    log.fail_writes_after(None);
    assert_eq!(log.sequence(&refs(&batch)).unwrap(), 20);
    entries.extend(batch);
    // Integrate fails to write tree hashes: nothing changes, and it works once space is back.
    let root_before = log.root();
    log.fail_writes_after(Some(5));
    assert!(matches!(
        log.integrate(),
        Err(StoreError::WriteFailed { ref source, .. }) if source.kind() == ErrorKind::StorageFull
    ));
    assert_eq!(log.integrated_size(), 20);
    assert_eq!(log.root(), root_before);
    log.fail_writes_after(None);
    log.integrate().unwrap();
    let mut tree = MemoryTree::new(Blake3Hasher);
    for e in &entries {
        tree.append_entry(e);
    }
    check_matches(&log, &tree, &entries);
    drop(log);
    let log = open(dir.path(), 200);
    assert_eq!(log.recovery(), &Default::default());
    check_matches(&log, &tree, &entries);
}

#[test]
fn stored_tree_is_checked_and_repaired_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), 1 << 20);
    let (entries, tree) = fill(&mut log, 1000, 5);
    let tree_bytes = log.disk_usage().unwrap().tree_bytes;
    assert_eq!(tree_bytes, (2 * 62 - 62u64.count_ones() as u64) * 32);
    drop(log);
    let path = dir.path().join("tree").join("nodes.bin");
    let original = fs::read(&path).unwrap();
    // A damaged hash: rewritten from its block on.
    let mut bytes = original.clone();
    bytes[32 * 40 + 5] ^= 1;
    fs::write(&path, &bytes).unwrap();
    let log = open(dir.path(), 1 << 20);
    assert!(log.recovery().tree_rebuilt_from_entry.is_some());
    check_matches(&log, &tree, &entries);
    drop(log);
    assert_eq!(fs::read(&path).unwrap(), original);
    // A tree file cut mid-hash (not synced before a crash), and one deleted.
    fs::write(&path, &original[..original.len() - 45]).unwrap();
    let log = open(dir.path(), 1 << 20);
    assert!(log.recovery().tree_rebuilt_from_entry.is_some());
    check_matches(&log, &tree, &entries);
    drop(log);
    fs::remove_file(&path).unwrap();
    let log = open(dir.path(), 1 << 20);
    assert_eq!(log.recovery().tree_rebuilt_from_entry, Some(0));
    check_matches(&log, &tree, &entries);
    drop(log);
    assert_eq!(fs::read(&path).unwrap(), original);
    // Hashes beyond the entries are cut.
    let mut longer = original.clone();
    longer.extend_from_slice(&[7; 64]);
    fs::write(&path, &longer).unwrap();
    let log = open(dir.path(), 1 << 20);
    assert_eq!(log.recovery().tree_bytes_dropped, 64);
    check_matches(&log, &tree, &entries);
}

#[test]
fn foreign_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("FORMAT"), "something else\n").unwrap();
    assert!(matches!(
        LogStore::open(StoreConfig::new(dir.path())),
        Err(StoreError::Format { .. })
    ));
}

#[test]
fn stores_can_be_shared_across_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<LogStore>();
    send_sync::<prov_ledger::store::ChainStore>();
    send_sync::<StoreError>();
}
