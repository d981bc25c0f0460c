//! The chain file and `publish`: the compare-and-swap against the last signed checkpoint,
//! torn chain tails, and a tampered log refused before anything is signed.
#![cfg(feature = "std")]
// Test code: helpers outside #[test] functions may unwrap too; a failure aborts the test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use prov_ledger::Hash32;
use prov_ledger::chain::{ChainBlock, ChainError, ChainFault, verify_chain};
use prov_ledger::checkpoint::Checkpoint;
use prov_ledger::hasher::Blake3Hasher;
use prov_ledger::merkle::{MemoryTree, verify_inclusion};
use prov_ledger::note::{NoteSigner, VerifierKey};
use prov_ledger::store::{ChainStore, LogStore, StoreConfig, StoreError, publish};

const ORIGIN: &str = "factory-a.example/line-logs/1";

fn signer() -> NoteSigner {
    NoteSigner::from_seed(ORIGIN, &[7; 32]).unwrap()
}

fn key() -> VerifierKey {
    signer().verifier_key().unwrap()
}

fn entry(i: u64, len: usize) -> Vec<u8> {
    let mut e = i.to_le_bytes().to_vec();
    while e.len() < len {
        e.push((e.len() as u64 ^ i) as u8);
    }
    e
}

struct Site {
    _dir: tempfile::TempDir,
    log_dir: PathBuf,
    chain_path: PathBuf,
}

impl Site {
    fn new() -> Site {
        let dir = tempfile::tempdir().unwrap();
        Site {
            log_dir: dir.path().join("log"),
            chain_path: dir.path().join("chain").join("chain.bin"),
            _dir: dir,
        }
    }
    fn log(&self) -> LogStore {
        LogStore::open(StoreConfig::new(&self.log_dir)).unwrap()
    }
    fn chain(&self) -> ChainStore {
        ChainStore::open(&self.chain_path, &key()).unwrap()
    }
}

fn add(log: &mut LogStore, n: u64) {
    let start = log.size();
    let batch: Vec<Vec<u8>> = (start..start + n).map(|i| entry(i, 40)).collect();
    let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
    log.sequence(&refs).unwrap();
}

fn all_blocks(chain: &ChainStore) -> Vec<Vec<u8>> {
    (0..chain.len()).map(|i| chain.block(i).unwrap()).collect()
}

#[test]
fn publish_builds_a_verifiable_chain() {
    let site = Site::new();
    let (mut log, mut chain) = (site.log(), site.chain());
    let s = signer();
    assert!(chain.is_empty());
    assert_eq!(chain.latest_note(), None);
    // Genesis at size 0, then nothing until the log grows.
    let c0 = publish(&mut log, &mut chain, &s).unwrap().unwrap();
    assert_eq!((c0.size(), c0.root()), (0, Hash32::blake3(b"")));
    assert_eq!(publish(&mut log, &mut chain, &s).unwrap(), None);
    let mut sizes = vec![0];
    for n in [1u64, 15, 16, 100, 3, 1000] {
        add(&mut log, n);
        let c = publish(&mut log, &mut chain, &s).unwrap().unwrap();
        assert_eq!(c.size(), log.size());
        assert_eq!(chain.latest(), Some(&c));
        assert_eq!(
            Checkpoint::open(chain.latest_note().unwrap(), &key()).unwrap(),
            c
        );
        sizes.push(c.size());
        assert_eq!(publish(&mut log, &mut chain, &s).unwrap(), None);
    }
    assert_eq!(chain.len(), 7);
    let blocks = all_blocks(&chain);
    let latest = verify_chain(&blocks, &key()).unwrap();
    assert_eq!(latest.size(), 1135);
    // An inclusion proof from the store verifies against the published checkpoint.
    let proof = log.inclusion_proof(500, latest.size()).unwrap();
    let leaf = log.leaf_hash(500).unwrap();
    verify_inclusion(
        &Blake3Hasher,
        500,
        latest.size(),
        &leaf,
        &proof,
        &latest.root(),
    )
    .unwrap();
    // Reopen: the same chain, and publishing goes on from it.
    let note = chain.latest_note().unwrap().to_string();
    let bytes = chain.file_bytes();
    drop(chain);
    let mut chain = site.chain();
    assert_eq!(chain.len(), 7);
    assert_eq!(chain.latest_note(), Some(note.as_str()));
    assert_eq!(chain.file_bytes(), bytes);
    assert_eq!(all_blocks(&chain), blocks);
    add(&mut log, 5);
    publish(&mut log, &mut chain, &s).unwrap().unwrap();
    assert_eq!(chain.len(), 8);
    // One handle at a time.
    assert!(matches!(
        ChainStore::open(&site.chain_path, &key()),
        Err(StoreError::Locked { .. })
    ));
}

/// A signed checkpoint note of `tree`'s first `size` leaves.
fn note(tree: &MemoryTree<Blake3Hasher>, size: u64) -> String {
    Checkpoint::new(ORIGIN, size, tree.root_at(size).unwrap())
        .unwrap()
        .sign(&signer())
        .unwrap()
        .encode()
}

fn tree_of(n: u64, salt: u8) -> MemoryTree<Blake3Hasher> {
    let mut t = MemoryTree::new(Blake3Hasher);
    for i in 0..n {
        let mut e = entry(i, 40);
        e.push(salt);
        t.append_entry(&e);
    }
    t
}

fn fault(e: StoreError) -> ChainFault {
    match e {
        StoreError::Chain {
            source: ChainError { fault, .. },
            ..
        } => fault,
        other => panic!("not a chain error: {other:?}"),
    }
}

#[test]
fn append_is_a_compare_and_swap() {
    let site = Site::new();
    let mut chain = site.chain();
    let tree = tree_of(40, 0);
    let other = tree_of(40, 1);
    let genesis = ChainBlock::genesis(note(&tree, 10));
    // Block 0 must link to zeros.
    let bad0 = ChainBlock::new(Hash32([1; 32]), note(&tree, 10), vec![]).unwrap();
    assert!(matches!(
        fault(chain.append(&bad0).unwrap_err()),
        ChainFault::PrevMismatch { .. }
    ));
    chain.append(&genesis).unwrap();
    let good = ChainBlock::next(
        &genesis,
        note(&tree, 20),
        tree.consistency_proof(10, 20).unwrap(),
    )
    .unwrap();
    let bytes_before = chain.file_bytes();
    // Wrong prev.
    let wrong_prev = ChainBlock::new(
        Hash32([2; 32]),
        note(&tree, 20),
        tree.consistency_proof(10, 20).unwrap(),
    )
    .unwrap();
    assert!(matches!(
        fault(chain.append(&wrong_prev).unwrap_err()),
        ChainFault::PrevMismatch { .. }
    ));
    // A checkpoint of another tree (inconsistent with block 0), with that tree's own proof.
    let fork = ChainBlock::next(
        &genesis,
        note(&other, 20),
        other.consistency_proof(10, 20).unwrap(),
    )
    .unwrap();
    assert!(matches!(
        fault(chain.append(&fork).unwrap_err()),
        ChainFault::Consistency(_)
    ));
    // Shrinking.
    let shrink = ChainBlock::next(&genesis, note(&tree, 5), vec![]).unwrap();
    assert!(matches!(
        fault(chain.append(&shrink).unwrap_err()),
        ChainFault::SizeShrank { from: 10, to: 5 }
    ));
    // Signed by another key.
    let stranger = NoteSigner::from_seed(ORIGIN, &[8; 32]).unwrap();
    let forged = Checkpoint::new(ORIGIN, 20, tree.root_at(20).unwrap())
        .unwrap()
        .sign(&stranger)
        .unwrap()
        .encode();
    let forged =
        ChainBlock::next(&genesis, forged, tree.consistency_proof(10, 20).unwrap()).unwrap();
    assert!(matches!(
        fault(chain.append(&forged).unwrap_err()),
        ChainFault::Checkpoint(_)
    ));
    assert_eq!(chain.len(), 1);
    assert_eq!(chain.file_bytes(), bytes_before);
    assert_eq!(fs::metadata(&site.chain_path).unwrap().len(), bytes_before);
    chain.append(&good).unwrap();
    assert_eq!(chain.len(), 2);
    assert_eq!(chain.latest().unwrap().size(), 20);
}

/// Offsets of the records of a file.
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
fn torn_chain_tail_is_cut_and_corruption_refused() {
    let site = Site::new();
    let (mut log, mut chain) = (site.log(), site.chain());
    for n in [3u64, 30, 300] {
        add(&mut log, n);
        publish(&mut log, &mut chain, &signer()).unwrap().unwrap();
    }
    let second = chain.block(1).unwrap();
    drop(chain);
    let original = fs::read(&site.chain_path).unwrap();
    let offsets = record_offsets(&original);
    let last = *offsets.last().unwrap();
    for cut in last..original.len() {
        fs::write(&site.chain_path, &original[..cut]).unwrap();
        let chain = site.chain();
        assert_eq!(chain.len(), 2, "cut at {cut}");
        assert_eq!(chain.torn_bytes(), (cut - last) as u64);
        assert_eq!(chain.latest().unwrap().size(), 33);
        assert_eq!(chain.block(1).unwrap(), second);
    }
    // After the cut, publishing resumes from block 1 (its checkpoint at 33).
    let mut chain = site.chain();
    let c = publish(&mut log, &mut chain, &signer()).unwrap().unwrap();
    assert_eq!((chain.len(), c.size()), (3, 333));
    drop(chain);
    // Garbage after whole records is a torn tail too.
    let mut bytes = fs::read(&site.chain_path).unwrap();
    let whole = bytes.len();
    bytes.extend_from_slice(&[0xAB; 50]);
    fs::write(&site.chain_path, &bytes).unwrap();
    let chain = site.chain();
    assert_eq!((chain.len(), chain.torn_bytes()), (3, 50));
    drop(chain);
    assert_eq!(fs::metadata(&site.chain_path).unwrap().len(), whole as u64);
    // A damaged block in the middle is corruption, reported and left alone.
    let mut bytes = fs::read(&site.chain_path).unwrap();
    bytes[offsets[1] + 10] ^= 1;
    fs::write(&site.chain_path, &bytes).unwrap();
    assert!(matches!(
        ChainStore::open(&site.chain_path, &key()),
        Err(StoreError::ChainCorrupt { block: 1, .. })
    ));
    assert_eq!(fs::read(&site.chain_path).unwrap(), bytes);
    // A whole, checksummed record that does not verify is never cut either.
    let wrong_key = NoteSigner::from_seed("other.example/log", &[1; 32])
        .unwrap()
        .verifier_key()
        .unwrap();
    bytes[offsets[1] + 10] ^= 1;
    fs::write(&site.chain_path, &bytes).unwrap();
    assert!(matches!(
        ChainStore::open(&site.chain_path, &wrong_key),
        Err(StoreError::Chain {
            source: ChainError { block: 0, .. },
            ..
        })
    ));
}

/// Rewrites entry `index` in its segment (same length) and fixes the record checksum, so that
/// only the Merkle root can tell.
fn tamper(log_dir: &Path, index: u64) {
    let mut segs: Vec<PathBuf> = fs::read_dir(log_dir.join("entries"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segs.sort();
    let seg = segs
        .iter()
        .rev()
        .find(|p| {
            let first: u64 = p.file_stem().unwrap().to_str().unwrap().parse().unwrap();
            first <= index
        })
        .unwrap();
    let first: u64 = seg.file_stem().unwrap().to_str().unwrap().parse().unwrap();
    let mut bytes = fs::read(seg).unwrap();
    let at = record_offsets(&bytes)[(index - first) as usize];
    let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    bytes[at + 4 + len - 1] ^= 0x55;
    let mut h = crc32fast::Hasher::new();
    h.update(&bytes[at..at + 4 + len]);
    let crc = h.finalize().to_le_bytes();
    bytes[at + 4 + len..at + 8 + len].copy_from_slice(&crc);
    fs::write(seg, &bytes).unwrap();
}

#[test]
fn publish_refuses_a_rewritten_log() {
    let site = Site::new();
    let (mut log, mut chain) = (site.log(), site.chain());
    add(&mut log, 500);
    let c = publish(&mut log, &mut chain, &signer()).unwrap().unwrap();
    drop(log);
    tamper(&site.log_dir, 123);
    let mut log = site.log();
    // The store itself sees only a stored tree that disagrees with the entries, and rebuilds it.
    assert_eq!(log.recovery().tree_rebuilt_from_entry, Some(112));
    let chain_bytes = chain.file_bytes();
    add(&mut log, 10);
    match publish(&mut log, &mut chain, &signer()) {
        Err(StoreError::RootMismatch {
            size,
            checkpoint_root,
            log_root,
        }) => {
            assert_eq!(size, 500);
            assert_eq!(checkpoint_root, c.root());
            assert_ne!(log_root, c.root());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(chain.len(), 1);
    assert_eq!(chain.file_bytes(), chain_bytes);
    // Even with no new entries.
    let mut log2 = log;
    assert!(matches!(
        publish(&mut log2, &mut chain, &signer()),
        Err(StoreError::RootMismatch { .. })
    ));
    // Also across a restart of the chain.
    drop(chain);
    let mut chain = site.chain();
    assert!(matches!(
        publish(&mut log2, &mut chain, &signer()),
        Err(StoreError::RootMismatch { .. })
    ));
}

#[test]
fn publish_refuses_a_log_that_lost_entries_or_a_foreign_key() {
    let site = Site::new();
    let (mut log, mut chain) = (site.log(), site.chain());
    add(&mut log, 50);
    publish(&mut log, &mut chain, &signer()).unwrap().unwrap();
    let stranger = NoteSigner::from_seed(ORIGIN, &[9; 32]).unwrap();
    add(&mut log, 1);
    assert!(matches!(
        publish(&mut log, &mut chain, &stranger),
        Err(StoreError::KeyMismatch { .. })
    ));
    drop(log);
    // Lose the last 10 records at a record boundary (a lying disk): the log opens cleanly...
    let seg = site.log_dir.join("entries").join(format!("{:020}.seg", 0));
    let bytes = fs::read(&seg).unwrap();
    let offsets = record_offsets(&bytes);
    fs::write(&seg, &bytes[..offsets[41]]).unwrap();
    let mut log = site.log();
    assert_eq!(log.size(), 41);
    // ...but publish will not sign for it.
    assert!(matches!(
        publish(&mut log, &mut chain, &signer()),
        Err(StoreError::LogBehindCheckpoint {
            log_size: 41,
            checkpoint_size: 50
        })
    ));
    // Refilling the lost slots with other entries is a rewrite.
    let refill: Vec<Vec<u8>> = (0..20).map(|i| entry(1000 + i, 40)).collect();
    let refs: Vec<&[u8]> = refill.iter().map(Vec::as_slice).collect();
    log.sequence(&refs).unwrap();
    assert!(matches!(
        publish(&mut log, &mut chain, &signer()),
        Err(StoreError::RootMismatch { size: 50, .. })
    ));
    assert_eq!(chain.len(), 1);
}

#[test]
fn failed_chain_write_signs_nothing_durable_and_recovers() {
    let site = Site::new();
    let (mut log, mut chain) = (site.log(), site.chain());
    add(&mut log, 20);
    publish(&mut log, &mut chain, &signer()).unwrap().unwrap();
    add(&mut log, 20);
    let before = chain.file_bytes();
    chain.fail_writes_after(Some(30));
    match publish(&mut log, &mut chain, &signer()) {
        Err(StoreError::WriteFailed { source, size, .. }) => {
            assert_eq!(source.kind(), ErrorKind::StorageFull);
            assert_eq!(size, 1);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(chain.len(), 1);
    assert_eq!(fs::metadata(&site.chain_path).unwrap().len(), before);
    chain.fail_writes_after(None);
    let c = publish(&mut log, &mut chain, &signer()).unwrap().unwrap();
    assert_eq!(c.size(), 40);
    drop(chain);
    let chain = site.chain();
    assert_eq!(chain.len(), 2);
    verify_chain(&all_blocks(&chain), &key()).unwrap();
}
