//! The verifier's primitive checks (what the wasm build exports) over the shared vectors, judged
//! like the Rust core judges them (`tests/src/invalid.rs`): the same code the node tests run in
//! wasm (`scanner-web/tests/vectors.test.mjs`), natively.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]
// Native only: the library's wasm32 build brings its own panic handler and allocator.
#![cfg(not(target_arch = "wasm32"))]

use std::path::PathBuf;

use prov_verifier::checks;
use serde_json::{Value as Json, json};

fn load(name: &str) -> Json {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas/vectors");
    serde_json::from_str(&std::fs::read_to_string(path.join(name)).unwrap()).unwrap()
}

fn hex(v: &Json) -> Vec<u8> {
    hex::decode(v.as_str().unwrap()).unwrap()
}

fn outcome(bytes: Vec<u8>) -> Json {
    serde_json::from_slice(&bytes).unwrap()
}

struct World {
    keys: Json,
    trust: Vec<u8>,
    gateway_key: String,
}

impl World {
    fn new() -> World {
        let keys = load("keys.json");
        let op = hex(&keys["operator"]["public_sec1_hex"]);
        let trust = json!({
            "gateway_key": keys["gateway"]["verifier_key"],
            "operator_keys": {keys["operator"]["kid"].as_str().unwrap(): b64(&op)},
        });
        World {
            gateway_key: keys["gateway"]["verifier_key"].as_str().unwrap().into(),
            keys,
            trust: serde_json::to_vec(&trust).unwrap(),
        }
    }

    fn device_key(&self, id: &str) -> Vec<u8> {
        let d = self.keys["devices"].as_array().unwrap().iter();
        hex(&d.clone().find(|d| d["device_id"] == id).unwrap()["public_sec1_hex"])
    }

    /// Runs one case like the Rust judge `evaluate`.
    fn evaluate(&self, kind: &str, input: &Json) -> Json {
        let key = self.gateway_key.as_bytes();
        outcome(match kind {
            "event" => checks::verify_event(
                &hex(&input["message_hex"]),
                &self.device_key(input["verify_with"].as_str().unwrap()),
            ),
            "registry" => checks::verify_registry_record(&hex(&input["message_hex"]), &self.trust),
            "inclusion" => checks::verify_inclusion(input.to_string().as_bytes()),
            "consistency" => checks::verify_consistency(input.to_string().as_bytes()),
            "checkpoint" => {
                checks::open_checkpoint(input["note"].as_str().unwrap().as_bytes(), key)
            }
            "chain" => checks::verify_chain(input.to_string().as_bytes(), key),
            other => panic!("unknown kind {other}"),
        })
    }
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn root_of(log: &Json, size: u64) -> Json {
    let leaves = &log["leaf_hashes_hex"].as_array().unwrap()[..size as usize];
    let r = outcome(checks::tree_root(
        json!({"leaf_hashes_hex": leaves}).to_string().as_bytes(),
    ));
    assert_eq!(r["ok"], true);
    r["result"]["root_hex"].clone()
}

#[test]
fn every_valid_message_verifies_and_decodes_to_its_payload() {
    let w = World::new();
    for m in load("events.json")["messages"].as_array().unwrap() {
        let key = w.device_key(m["kid"].as_str().unwrap());
        let r = outcome(checks::verify_event(&hex(&m["message_hex"]), &key));
        assert_eq!(r["ok"], true, "{}: {r}", m["name"]);
        assert_eq!(r["result"]["event"], m["payload"]);
        assert_eq!(r["result"]["blake3_hex"], m["message_blake3_hex"]);
    }
    for m in load("registry.json")["messages"].as_array().unwrap() {
        let r = outcome(checks::verify_registry_record(
            &hex(&m["message_hex"]),
            &w.trust,
        ));
        assert_eq!(r["ok"], true, "{}: {r}", m["name"]);
        assert_eq!(r["result"]["record"], m["payload"]);
    }
}

#[test]
fn every_invalid_case_is_rejected_with_the_recorded_error() {
    let w = World::new();
    let cases = load("invalid.json")["cases"].as_array().unwrap().clone();
    assert!(cases.len() >= 20);
    for c in cases {
        let r = w.evaluate(c["kind"].as_str().unwrap(), &c["input"]);
        assert_eq!(r["ok"], false, "{}", c["name"]);
        assert_eq!(r["error"], c["error"], "{}", c["name"]);
    }
}

#[test]
fn every_byte_of_every_signed_message_matters() {
    let w = World::new();
    let mut mutants = 0;
    for (kind, file) in [("event", "events.json"), ("registry", "registry.json")] {
        for m in load(file)["messages"].as_array().unwrap() {
            let msg = hex(&m["message_hex"]);
            let check = |bad: &[u8]| {
                outcome(match kind {
                    "event" => checks::verify_event(bad, &w.device_key(m["kid"].as_str().unwrap())),
                    _ => checks::verify_registry_record(bad, &w.trust),
                })
            };
            for i in 0..msg.len() {
                for xor in [0x01u8, 0x80] {
                    let mut bad = msg.clone();
                    bad[i] ^= xor;
                    assert_eq!(check(&bad)["ok"], false, "{}: byte {i}", m["name"]);
                    mutants += 1;
                }
            }
            assert_eq!(check(&msg[..msg.len() - 1])["ok"], false);
            assert_eq!(check(&[msg.as_slice(), &[0]].concat())["ok"], false);
        }
    }
    assert!(mutants > 5_000, "only {mutants}");
}

#[test]
fn the_log_vectors_verify() {
    let w = World::new();
    let log = load("log.json");
    let key = w.gateway_key.as_bytes();
    let entries: Vec<Vec<u8>> = log["entries_hex"]
        .as_array()
        .unwrap()
        .iter()
        .map(hex)
        .collect();
    let cps = log["checkpoints"].as_array().unwrap();
    let last = cps.last().unwrap();
    for c in cps {
        assert_eq!(root_of(&log, c["size"].as_u64().unwrap()), c["root_hex"]);
        let r = outcome(checks::open_checkpoint(
            c["note"].as_str().unwrap().as_bytes(),
            key,
        ));
        assert_eq!(r["result"]["checkpoint"]["root_hex"], c["root_hex"], "{r}");
    }
    let mut tlog = 0;
    for inc in log["inclusion"].as_array().unwrap() {
        let (index, size) = (
            inc["index"].as_u64().unwrap(),
            inc["size"].as_u64().unwrap(),
        );
        let mut input = json!({
            "index": index, "size": size, "proof_hex": inc["proof_hex"],
            "leaf_hash_hex": log["leaf_hashes_hex"][index as usize],
            "root_hex": root_of(&log, size),
        });
        let r = outcome(checks::verify_inclusion(input.to_string().as_bytes()));
        assert_eq!(r["ok"], true, "{r}");
        input["index"] = json!(index + 1);
        let r = outcome(checks::verify_inclusion(input.to_string().as_bytes()));
        assert_eq!(r["ok"], false);
        let Some(text) = inc["tlog_proof"].as_str() else {
            continue;
        };
        let entry = &entries[index as usize];
        let r = outcome(checks::verify_tlog_proof(text.as_bytes(), entry, key));
        assert_eq!(r["ok"], true, "{r}");
        assert_eq!(r["result"]["index"], index);
        assert_eq!(r["result"]["checkpoint"]["root_hex"], last["root_hex"]);
        let other = &entries[(index as usize + 1) % entries.len()];
        let r = outcome(checks::verify_tlog_proof(text.as_bytes(), other, key));
        assert_eq!(r["ok"], false);
        tlog += 1;
    }
    assert_eq!(tlog, entries.len());
    for con in log["consistency"].as_array().unwrap() {
        let (s1, s2) = (
            con["size1"].as_u64().unwrap(),
            con["size2"].as_u64().unwrap(),
        );
        let input = json!({
            "size1": s1, "size2": s2, "proof_hex": con["proof_hex"],
            "root1_hex": root_of(&log, s1), "root2_hex": root_of(&log, s2),
        });
        let r = outcome(checks::verify_consistency(input.to_string().as_bytes()));
        assert_eq!(r["ok"], true, "{s1}→{s2}: {r}");
    }
    let blocks: Vec<&Json> = log["chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| &b["block_hex"])
        .collect();
    let input = json!({ "blocks_hex": blocks }).to_string();
    let r = outcome(checks::verify_chain(input.as_bytes(), key));
    assert_eq!(r["result"]["checkpoint"]["size"], last["size"], "{r}");
}
