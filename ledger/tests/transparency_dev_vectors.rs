//! Every inclusion and consistency vector of transparency-dev/merkle, run with `Sha256Hasher`.
//!
//! The vectors exercise the RFC 9162 algorithms with SHA-256; our logs use the same algorithms
//! with BLAKE3 (SPEC §4), so passing here checks the maths our BLAKE3 logs rely on.

// Test code: helpers outside #[test] functions may unwrap too; a failure aborts the test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use prov_ledger::Hash32;
use prov_ledger::hasher::{LogHasher, Sha256Hasher};
use prov_ledger::merkle::{
    MemoryTree, MerkleError, hashes_from_slices, verify_consistency, verify_inclusion,
};
use prov_schemas::hash::HashParseError;
use serde_json::Value;

/// Why a vector was rejected: a field that is not a 32-byte hash, or a typed Merkle error.
#[derive(Debug, PartialEq)]
enum Rejection {
    Field(&'static str, HashParseError),
    Merkle(MerkleError),
}

/// The one vector whose expectation our typed API cannot meet, and why.
///
/// `sizes-are-equal-one-and-proof-is-empty` has size1 = size2 = 1 and two equal 12-byte "roots"
/// (`"don't care 2"`) and expects success: Go compares the byte slices and never checks their
/// length in that branch. A [`Hash32`] cannot hold 12 bytes, so such a root is refused when it is
/// parsed, before any Merkle check; no real SHA-256 or BLAKE3 root can be 12 bytes long.
const UNREPRESENTABLE: &str = "consistency/additional/sizes-are-equal-one-and-proof-is-empty.json";

fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/transparency-dev-merkle")
}

fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            json_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
}

fn b64(v: &Value) -> Vec<u8> {
    STANDARD.decode(v.as_str().unwrap()).unwrap()
}

fn hash(v: &Value, field: &'static str) -> Result<Hash32, Rejection> {
    Hash32::from_slice(&b64(&v[field])).map_err(|e| Rejection::Field(field, e))
}

fn proof(v: &Value) -> Result<Vec<Hash32>, Rejection> {
    let items: Vec<Vec<u8>> = match &v["proof"] {
        Value::Null => Vec::new(),
        Value::Array(a) => a.iter().map(b64).collect(),
        other => panic!("proof is {other}"),
    };
    hashes_from_slices(&items).map_err(Rejection::Merkle)
}

fn run_inclusion(v: &Value) -> Result<(), Rejection> {
    let leaf = hash(v, "leafHash")?;
    let root = hash(v, "root")?;
    let proof = proof(v)?;
    let index = v["leafIdx"].as_u64().unwrap();
    let size = v["treeSize"].as_u64().unwrap();
    verify_inclusion(&Sha256Hasher, index, size, &leaf, &proof, &root).map_err(Rejection::Merkle)
}

fn run_consistency(v: &Value) -> Result<(), Rejection> {
    let root1 = hash(v, "root1")?;
    let root2 = hash(v, "root2")?;
    let proof = proof(v)?;
    let size1 = v["size1"].as_u64().unwrap();
    let size2 = v["size2"].as_u64().unwrap();
    verify_consistency(&Sha256Hasher, size1, size2, &proof, &root1, &root2)
        .map_err(Rejection::Merkle)
}

fn load(kind: &str) -> Vec<(String, Value)> {
    let mut files = Vec::new();
    json_files(&vectors_dir().join(kind), &mut files);
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p
                .strip_prefix(vectors_dir())
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let v: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            (name, v)
        })
        .collect()
}

#[test]
fn every_vector_verifies_iff_not_want_err() {
    let mut counts = [0usize; 4]; // [inclusion ok, inclusion rejected, consistency ok, rejected]
    for (kind, run, slot) in [
        (
            "inclusion",
            run_inclusion as fn(&Value) -> Result<(), Rejection>,
            0,
        ),
        ("consistency", run_consistency, 2),
    ] {
        let vectors = load(kind);
        assert!(vectors.len() > 80, "{kind}: only {} vectors", vectors.len());
        for (name, v) in vectors {
            let want_err = v["wantErr"].as_bool().unwrap();
            let got = run(&v);
            if name == UNREPRESENTABLE {
                assert!(!want_err);
                assert_eq!(
                    got,
                    Err(Rejection::Field(
                        "root1",
                        HashParseError::Length { got: 12 }
                    ))
                );
                continue;
            }
            assert_eq!(got.is_err(), want_err, "{name}: {got:?}");
            counts[slot + usize::from(want_err)] += 1;
        }
    }
    // 196 files: 98 inclusion, 98 consistency (one of them the documented exception).
    assert_eq!(counts, [6, 92, 5, 92]);
    eprintln!("inclusion ok/rejected, consistency ok/rejected: {counts:?}");
}

/// The wrong-case vectors must fail for the reason their name gives, not by accident.
#[test]
fn rejections_have_the_expected_kind() {
    for (name, v) in load("inclusion").into_iter().chain(load("consistency")) {
        if !v["wantErr"].as_bool().unwrap() {
            continue;
        }
        let got = if name.starts_with("inclusion") {
            run_inclusion(&v)
        } else {
            run_consistency(&v)
        };
        let err = got.unwrap_err();
        let file = name.rsplit('/').next().unwrap();
        let ok = match file {
            f if f.contains("garbage") => matches!(
                err,
                Rejection::Merkle(MerkleError::HashLength { got: 0, .. })
            ),
            f if f.starts_with("modified-proof") || f.starts_with("random-root") => matches!(
                err,
                Rejection::Merkle(
                    MerkleError::RootMismatch { .. } | MerkleError::OldRootMismatch { .. }
                )
            ),
            "truncated-proof.json" | "empty-proof.json" => {
                matches!(err, Rejection::Merkle(MerkleError::ProofLength { .. }))
            }
            "wrong-leaf.json" => matches!(err, Rejection::Field("leafHash", _)),
            "size1-is-greater-than-size2.json" | "size1-is-greater-than-size2-again.json" => {
                matches!(
                    err,
                    Rejection::Field(..) | Rejection::Merkle(MerkleError::SizesOutOfOrder { .. })
                )
            }
            _ => true, // Several causes are possible (e.g. a size change alters the length).
        };
        assert!(ok, "{name}: {err:?}");
    }
}

/// Our generated proofs equal the happy-path vectors (built from RFC 6962's eight test leaves).
#[test]
fn generated_proofs_match_the_happy_paths() {
    let leaves = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ];
    let mut tree = MemoryTree::new(Sha256Hasher);
    for l in leaves {
        tree.append_entry(&hex::decode(l).unwrap());
    }
    let mut checked = 0;
    for (name, v) in load("inclusion") {
        if !name.ends_with("happy-path.json") {
            continue;
        }
        let (index, size) = (
            v["leafIdx"].as_u64().unwrap(),
            v["treeSize"].as_u64().unwrap(),
        );
        assert_eq!(tree.leaf_hash(index), Some(hash(&v, "leafHash").unwrap()));
        assert_eq!(tree.root_at(size).unwrap(), hash(&v, "root").unwrap());
        assert_eq!(
            tree.inclusion_proof(index, size).unwrap(),
            proof(&v).unwrap(),
            "{name}"
        );
        checked += 1;
    }
    for (name, v) in load("consistency") {
        if !name.ends_with("happy-path.json") {
            continue;
        }
        let (size1, size2) = (v["size1"].as_u64().unwrap(), v["size2"].as_u64().unwrap());
        assert_eq!(tree.root_at(size1).unwrap(), hash(&v, "root1").unwrap());
        assert_eq!(tree.root_at(size2).unwrap(), hash(&v, "root2").unwrap());
        assert_eq!(
            tree.consistency_proof(size1, size2).unwrap(),
            proof(&v).unwrap(),
            "{name}"
        );
        checked += 1;
    }
    assert_eq!(checked, 10);
    assert_eq!(
        Sha256Hasher.empty_root(),
        Hash32::from_slice(
            &STANDARD
                .decode("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=")
                .unwrap()
        )
        .unwrap()
    );
}
