//! The shared test vectors, from the Rust side:
//! - the committed files are exactly what the generator writes (nobody edited them by hand);
//! - every valid vector verifies, with both P-256 backends;
//! - every invalid vector is rejected with the error it records, with both backends;
//! - every single-byte mutation of every signed message, proof, checkpoint and chain block is
//!   rejected with a typed error (and the two backends agree on each).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use prov_ledger::chain::verify_chain;
use prov_ledger::checkpoint::Checkpoint;
use prov_ledger::hasher::Blake3Hasher;
use prov_ledger::merkle;
use prov_ledger::tlog_proof::TlogProof;
use prov_schemas::Hash32;
use prov_schemas::cose::{P256Backend, RingBackend};
use prov_tests::invalid::{evaluate_with, gateway_key};
use serde_json::{Value as Json, json};
use std::path::PathBuf;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../schemas/vectors")
}

fn load(name: &str) -> Json {
    serde_json::from_str(&std::fs::read_to_string(dir().join(name)).unwrap()).unwrap()
}

fn messages(name: &str) -> Vec<Json> {
    load(name)["messages"].as_array().unwrap().clone()
}

fn hexes(v: &Json) -> Vec<Hash32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|h| Hash32::from_hex(h.as_str().unwrap()).unwrap())
        .collect()
}

/// Runs a case with both backends, requires them to agree, and returns the answer.
fn judge(kind: &str, input: &Json) -> Result<(), String> {
    let a = evaluate_with(kind, input, &P256Backend).unwrap();
    let b = evaluate_with(kind, input, &RingBackend).unwrap();
    assert_eq!(a, b, "backends disagree on a {kind} case");
    a
}

#[test]
fn committed_vectors_are_what_the_generator_writes() {
    for (name, contents) in prov_tests::vectors::generate().unwrap() {
        let committed = std::fs::read_to_string(dir().join(name)).unwrap();
        assert!(
            committed == contents,
            "schemas/vectors/{name} is stale or edited by hand: run `cargo run -p prov-tests --bin gen-vectors`"
        );
    }
}

fn event_input(m: &Json, message: &[u8]) -> Json {
    json!({"message_hex": hex::encode(message), "verify_with": m["kid"]})
}

#[test]
fn every_valid_message_verifies_with_both_backends() {
    let events = messages("events.json");
    assert_eq!(events.len(), 10);
    for m in &events {
        let msg = hex::decode(m["message_hex"].as_str().unwrap()).unwrap();
        assert_eq!(
            judge("event", &event_input(m, &msg)),
            Ok(()),
            "{}",
            m["name"]
        );
    }
    for m in &messages("registry.json") {
        let input = json!({"message_hex": m["message_hex"]});
        assert_eq!(judge("registry", &input), Ok(()), "{}", m["name"]);
    }
}

#[test]
fn every_invalid_case_is_rejected_with_its_recorded_error() {
    let cases = load("invalid.json")["cases"].as_array().unwrap().clone();
    assert!(cases.len() >= 20);
    for case in cases {
        let got = judge(case["kind"].as_str().unwrap(), &case["input"]);
        assert_eq!(
            got,
            Err(case["error"].as_str().unwrap().to_string()),
            "{}",
            case["name"]
        );
    }
}

#[test]
fn every_byte_of_every_signed_message_matters() {
    let all = messages("events.json")
        .into_iter()
        .map(|m| ("event", m))
        .chain(
            messages("registry.json")
                .into_iter()
                .map(|m| ("registry", m)),
        );
    let mut mutants = 0;
    for (kind, m) in all {
        let msg = hex::decode(m["message_hex"].as_str().unwrap()).unwrap();
        for i in 0..msg.len() {
            for xor in [0x01u8, 0x80] {
                let mut bad = msg.clone();
                bad[i] ^= xor;
                let input = match kind {
                    "event" => event_input(&m, &bad),
                    _ => json!({"message_hex": hex::encode(&bad)}),
                };
                let err = judge(kind, &input).expect_err("mutant accepted");
                assert!(!err.is_empty());
                mutants += 1;
            }
        }
        // Truncated and extended.
        for bad in [&msg[..msg.len() - 1], &[msg.as_slice(), &[0]].concat()[..]] {
            let input = match kind {
                "event" => event_input(&m, bad),
                _ => json!({"message_hex": hex::encode(bad)}),
            };
            judge(kind, &input).expect_err("truncated or extended message accepted");
        }
    }
    assert!(mutants > 5_000, "only {mutants} mutants");
}

#[test]
fn the_log_vectors_verify_and_every_mutation_is_rejected() {
    let log = load("log.json");
    let key = gateway_key().unwrap();
    let entries: Vec<Vec<u8>> = log["entries_hex"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| hex::decode(e.as_str().unwrap()).unwrap())
        .collect();
    let checkpoints = log["checkpoints"].as_array().unwrap();
    let last = checkpoints.last().unwrap();
    let cp = Checkpoint::open(last["note"].as_str().unwrap(), &key).unwrap();
    assert_eq!(cp.size(), entries.len() as u64);

    // The chain replays from block 0 to the last checkpoint.
    let blocks: Vec<Vec<u8>> = log["chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| hex::decode(b["block_hex"].as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(verify_chain(&blocks, &key).unwrap(), cp);
    for (b, block) in blocks.iter().enumerate() {
        for i in 0..block.len() {
            let mut bad = blocks.clone();
            bad[b][i] ^= 0x01;
            let err = verify_chain(&bad, &key).expect_err("mutated chain accepted");
            assert!(err.block <= b, "block {b} byte {i}: {err:?}");
        }
    }

    // Every tlog-proof verifies for its entry, and every byte of it matters.
    let mut checked = 0;
    for inc in log["inclusion"].as_array().unwrap() {
        let index = inc["index"].as_u64().unwrap();
        let size = inc["size"].as_u64().unwrap();
        let entry = &entries[index as usize];
        let proof = hexes(&inc["proof_hex"]);
        let root = Hash32::from_hex(
            checkpoints
                .iter()
                .find(|c| c["size"].as_u64() == Some(size))
                .map(|c| c["root_hex"].as_str().unwrap())
                .unwrap_or(&merkle_root(&entries[..size as usize]).to_hex()),
        )
        .unwrap();
        let leaf = Blake3Hasher.leaf(entry);
        merkle::verify_inclusion(&Blake3Hasher, index, size, &leaf, &proof, &root).unwrap();
        for p in 0..proof.len() {
            for byte in 0..32 {
                let mut bad = proof.clone();
                bad[p].0[byte] ^= 0x01;
                assert!(
                    merkle::verify_inclusion(&Blake3Hasher, index, size, &leaf, &bad, &root)
                        .is_err()
                );
            }
        }
        for other in 0..size + 2 {
            if other != index {
                assert!(
                    merkle::verify_inclusion(&Blake3Hasher, other, size, &leaf, &proof, &root)
                        .is_err(),
                    "index {index} proof accepted at index {other}"
                );
            }
        }
        let mut bad_root = root;
        bad_root.0[31] ^= 0x80;
        assert!(
            merkle::verify_inclusion(&Blake3Hasher, index, size, &leaf, &proof, &bad_root).is_err()
        );
        let Some(text) = inc["tlog_proof"].as_str() else {
            continue;
        };
        let parsed = TlogProof::parse(text).unwrap();
        assert_eq!(parsed.index(), index);
        assert_eq!(parsed.checkpoint_note(), last["note"].as_str().unwrap());
        parsed.verify_entry(entry, &key).unwrap();
        // Proofs are not transferable to another entry.
        let other = &entries[(index as usize + 1) % entries.len()];
        assert!(parsed.verify_entry(other, &key).is_err());
        let bytes = text.as_bytes();
        for i in 0..bytes.len() {
            let mut bad = bytes.to_vec();
            bad[i] ^= 0x01;
            let accepted = std::str::from_utf8(&bad)
                .ok()
                .and_then(|t| TlogProof::parse(t).ok())
                .is_some_and(|p| p.verify_entry(entry, &key).is_ok());
            assert!(
                !accepted,
                "tlog-proof {index}: byte {i} mutated and still accepted"
            );
        }
        checked += 1;
    }
    assert_eq!(checked, entries.len());

    // Consistency proofs verify between their two roots; every hash byte matters.
    for con in log["consistency"].as_array().unwrap() {
        let (s1, s2) = (
            con["size1"].as_u64().unwrap(),
            con["size2"].as_u64().unwrap(),
        );
        let r1 = merkle_root(&entries[..s1 as usize]);
        let r2 = merkle_root(&entries[..s2 as usize]);
        let proof = hexes(&con["proof_hex"]);
        merkle::verify_consistency(&Blake3Hasher, s1, s2, &proof, &r1, &r2).unwrap();
        for p in 0..proof.len() {
            let mut bad = proof.clone();
            bad[p].0[p % 32] ^= 0x04;
            assert!(merkle::verify_consistency(&Blake3Hasher, s1, s2, &bad, &r1, &r2).is_err());
        }
    }

    // Every byte of every signed checkpoint matters.
    for c in checkpoints {
        let note = c["note"].as_str().unwrap().as_bytes();
        for i in 0..note.len() {
            let mut bad = note.to_vec();
            bad[i] ^= 0x01;
            let accepted = std::str::from_utf8(&bad)
                .ok()
                .is_some_and(|t| Checkpoint::open(t, &key).is_ok());
            assert!(!accepted, "checkpoint byte {i} mutated and still accepted");
        }
    }
}

fn merkle_root(entries: &[Vec<u8>]) -> Hash32 {
    let leaves: Vec<Hash32> = entries.iter().map(|e| Blake3Hasher.leaf(e)).collect();
    merkle::root_from_leaf_hashes(&Blake3Hasher, &leaves)
}

trait Leaf {
    fn leaf(&self, entry: &[u8]) -> Hash32;
}

impl Leaf for Blake3Hasher {
    fn leaf(&self, entry: &[u8]) -> Hash32 {
        use prov_ledger::hasher::LogHasher;
        self.hash_leaf(entry)
    }
}
