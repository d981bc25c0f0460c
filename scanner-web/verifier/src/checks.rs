//! The primitive checks, with JSON outcomes: what the wasm build exports besides the bundle
//! verifier, so that it can be run over the shared vectors (`schemas/vectors/*.json`) exactly
//! like the Rust judge (`tests/src/invalid.rs`).
//!
//! Every function answers JSON: `{"ok": true, "result": ...}` with what was verified, or
//! `{"ok": false, "error": "<the typed error, as {:?}>", "message": "<as text>"}`. `error` is
//! the same string the Rust core's error prints with `{:?}` (what `invalid.json` records), so a
//! rejection for the wrong reason is caught too. Inputs that are not even of the right shape
//! (bad hex, bad JSON, a bad key) answer with `error` starting `Input(`.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt::{Debug, Display};

use prov_ledger::chain;
use prov_ledger::checkpoint::Checkpoint;
use prov_ledger::hasher::Blake3Hasher;
use prov_ledger::merkle;
use prov_ledger::note::VerifierKey;
use prov_ledger::tlog_proof::TlogProof;
use prov_schemas::Hash32;
use prov_schemas::checked;
use prov_schemas::cose::P256Backend;
use prov_schemas::event::Event;
use prov_schemas::keys::PublicKey;
use prov_schemas::registry::RegistryRecord;
use serde::{Deserialize, Serialize};

use crate::bundle::{Report, verify_bundle};
use crate::trust::Trust;

/// An accepted input: `{"ok": true, "result": ...}`.
#[derive(Serialize)]
struct Accepted<T: Serialize> {
    ok: bool,
    result: T,
}

/// A rejected input: `{"ok": false, "error": "<{:?}>", "message": "<text>"}`.
#[derive(Serialize)]
struct Rejected {
    ok: bool,
    error: String,
    message: String,
}

fn accepted<T: Serialize>(result: T) -> Vec<u8> {
    serde_json::to_vec(&Accepted { ok: true, result }).unwrap_or_default()
}

fn rejected<E: Debug + Display>(e: &E) -> Vec<u8> {
    let r = Rejected {
        ok: false,
        error: format!("{e:?}"),
        message: e.to_string(),
    };
    serde_json::to_vec(&r).unwrap_or_default()
}

fn bad_input(what: &str) -> Vec<u8> {
    let r = Rejected {
        ok: false,
        error: format!("Input({what:?})"),
        message: what.into(),
    };
    serde_json::to_vec(&r).unwrap_or_default()
}

/// A checkpoint in an answer.
#[derive(Serialize)]
struct CheckpointJson {
    origin: String,
    size: u64,
    root_hex: String,
}

impl From<&Checkpoint> for CheckpointJson {
    fn from(cp: &Checkpoint) -> CheckpointJson {
        CheckpointJson {
            origin: cp.origin().into(),
            size: cp.size(),
            root_hex: cp.root().to_hex(),
        }
    }
}

#[derive(Serialize)]
struct EventResult<'a> {
    device: &'a str,
    blake3_hex: String,
    event: &'a Event,
}

#[derive(Serialize)]
struct RecordResult<'a> {
    operator: String,
    record: &'a RegistryRecord,
}

#[derive(Serialize)]
struct CheckpointResult {
    checkpoint: CheckpointJson,
}

#[derive(Serialize)]
struct TlogProofResult {
    index: u64,
    checkpoint: CheckpointJson,
}

fn parse_key(text: &[u8]) -> Result<VerifierKey, Vec<u8>> {
    let text = core::str::from_utf8(text).map_err(|_| bad_input("key is not UTF-8"))?;
    VerifierKey::parse(text).map_err(|e| bad_input(&format!("gateway key: {e}")))
}

fn hash(text: &str) -> Result<Hash32, Vec<u8>> {
    Hash32::from_hex(text).map_err(|_| bad_input("a hash is not 64 hex digits"))
}

fn hashes(texts: &[String]) -> Result<Vec<Hash32>, Vec<u8>> {
    texts.iter().map(|t| hash(t)).collect()
}

fn from_json<'a, T: Deserialize<'a>>(input: &'a [u8]) -> Result<T, Vec<u8>> {
    serde_json::from_slice(input).map_err(|e| bad_input(&format!("input JSON: {e}")))
}

fn answer(result: Result<Vec<u8>, Vec<u8>>) -> Vec<u8> {
    result.unwrap_or_else(|e| e)
}

/// Verifies a device event (SPEC §2) under a 65-byte uncompressed SEC1 key; on success answers
/// the device, the message's BLAKE3 and the event's JSON form.
pub fn verify_event(message: &[u8], key_sec1: &[u8]) -> Vec<u8> {
    let key = match PublicKey::from_sec1_uncompressed(key_sec1) {
        Ok(k) => k,
        Err(e) => return bad_input(&format!("device key: {e}")),
    };
    match checked::verify_event(message, &key, &P256Backend) {
        Ok(c) => accepted(EventResult {
            device: c.device().as_str(),
            blake3_hex: c.hash().to_hex(),
            event: c.event(),
        }),
        Err(e) => rejected(&e),
    }
}

/// Verifies a registry record (SPEC §4) under the trusted operators of `trust_json` (the
/// `/api/v1/keys` shape); on success answers the operator and the record's JSON form.
pub fn verify_registry_record(message: &[u8], trust_json: &[u8]) -> Vec<u8> {
    let trust = match Trust::from_json(trust_json) {
        Ok(t) => t,
        Err(e) => return bad_input(&format!("trust: {e}")),
    };
    match checked::verify_registry_record(message, &trust, &P256Backend) {
        Ok(c) => accepted(RecordResult {
            operator: format!("operator:{}", c.operator()),
            record: c.record(),
        }),
        Err(e) => rejected(&e),
    }
}

#[derive(Deserialize)]
struct InclusionInput {
    index: u64,
    size: u64,
    leaf_hash_hex: String,
    proof_hex: Vec<String>,
    root_hex: String,
}

/// Verifies an RFC 9162 inclusion proof with BLAKE3 (SPEC §4). Input:
/// `{"index", "size", "leaf_hash_hex", "proof_hex": [...], "root_hex"}`.
pub fn verify_inclusion(input_json: &[u8]) -> Vec<u8> {
    answer((|| {
        let i: InclusionInput = from_json(input_json)?;
        let result = merkle::verify_inclusion(
            &Blake3Hasher,
            i.index,
            i.size,
            &hash(&i.leaf_hash_hex)?,
            &hashes(&i.proof_hex)?,
            &hash(&i.root_hex)?,
        );
        Ok(match result {
            Ok(()) => accepted(()),
            Err(e) => rejected(&e),
        })
    })())
}

#[derive(Deserialize)]
struct ConsistencyInput {
    size1: u64,
    size2: u64,
    proof_hex: Vec<String>,
    root1_hex: String,
    root2_hex: String,
}

/// Verifies an RFC 9162 consistency proof with BLAKE3 (SPEC §4). Input:
/// `{"size1", "size2", "proof_hex": [...], "root1_hex", "root2_hex"}`.
pub fn verify_consistency(input_json: &[u8]) -> Vec<u8> {
    answer((|| {
        let i: ConsistencyInput = from_json(input_json)?;
        let result = merkle::verify_consistency(
            &Blake3Hasher,
            i.size1,
            i.size2,
            &hashes(&i.proof_hex)?,
            &hash(&i.root1_hex)?,
            &hash(&i.root2_hex)?,
        );
        Ok(match result {
            Ok(()) => accepted(()),
            Err(e) => rejected(&e),
        })
    })())
}

/// Opens a signed checkpoint note under a gateway verifier key string (SPEC §5); on success
/// answers the checkpoint.
pub fn open_checkpoint(note: &[u8], gateway_key: &[u8]) -> Vec<u8> {
    answer((|| {
        let key = parse_key(gateway_key)?;
        let note = core::str::from_utf8(note).map_err(|_| bad_input("note is not UTF-8"))?;
        Ok(match Checkpoint::open(note, &key) {
            Ok(cp) => accepted(CheckpointResult {
                checkpoint: (&cp).into(),
            }),
            Err(e) => rejected(&e),
        })
    })())
}

/// Verifies a C2SP tlog-proof for the entry's exact bytes under a gateway verifier key string
/// (SPEC §5); on success answers the index and the checkpoint.
pub fn verify_tlog_proof(proof: &[u8], entry: &[u8], gateway_key: &[u8]) -> Vec<u8> {
    answer((|| {
        let key = parse_key(gateway_key)?;
        let text = core::str::from_utf8(proof).map_err(|_| bad_input("proof is not UTF-8"))?;
        let parsed = TlogProof::parse(text).map_err(|e| rejected(&e))?;
        Ok(match parsed.verify_entry(entry, &key) {
            Ok(cp) => accepted(TlogProofResult {
                index: parsed.index(),
                checkpoint: (&cp).into(),
            }),
            Err(e) => rejected(&e),
        })
    })())
}

#[derive(Deserialize)]
struct ChainInput {
    blocks_hex: Vec<String>,
}

/// Replays a checkpoint chain (SPEC §5) from block 0 under a gateway verifier key string.
/// Input: `{"blocks_hex": [...]}`; on success answers the latest checkpoint.
pub fn verify_chain(input_json: &[u8], gateway_key: &[u8]) -> Vec<u8> {
    answer((|| {
        let key = parse_key(gateway_key)?;
        let i: ChainInput = from_json(input_json)?;
        let blocks = i
            .blocks_hex
            .iter()
            .map(|b| hex::decode(b).map_err(|_| bad_input("a block is not hex")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(match chain::verify_chain(&blocks, &key) {
            Ok(cp) => accepted(CheckpointResult {
                checkpoint: (&cp).into(),
            }),
            Err(e) => rejected(&e),
        })
    })())
}

#[derive(Deserialize)]
struct TreeInput {
    leaf_hashes_hex: Vec<String>,
}

#[derive(Serialize)]
struct TreeResult {
    size: u64,
    root_hex: String,
}

/// The RFC 9162 root (BLAKE3, SPEC §4) of a tree of leaf hashes: what an auditor holding the
/// leaves checks a checkpoint or a consistency proof against. Input: `{"leaf_hashes_hex": [...]}`.
pub fn tree_root(input_json: &[u8]) -> Vec<u8> {
    answer((|| {
        let i: TreeInput = from_json(input_json)?;
        let leaves = hashes(&i.leaf_hashes_hex)?;
        Ok(accepted(TreeResult {
            size: leaves.len() as u64,
            root_hex: merkle::root_from_leaf_hashes(&Blake3Hasher, &leaves).to_hex(),
        }))
    })())
}

/// [`verify_bundle`] with the trust configuration as JSON; an unreadable configuration is a
/// report with one failure at `trust`.
pub fn verify_bundle_json(bundle_json: &[u8], trust_json: &[u8]) -> Report {
    match Trust::from_json(trust_json) {
        Ok(trust) => verify_bundle(bundle_json, &trust),
        Err(e) => Report::rejected("trust", e.to_string()),
    }
}
