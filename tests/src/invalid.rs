//! Hand-picked invalid vectors (`invalid.json`): one per way a message, proof, checkpoint or
//! chain can be wrong, each with the typed error the core must answer.
//!
//! [`evaluate`] is the single judge: the generator records its answer, and the tests check that
//! the core still gives exactly that answer (and that it is the intended kind of error), so a
//! regression that rejects for the wrong reason is caught too.

use crate::vectors::{self, DEVICES, OPERATOR, SignedVector};
use anyhow::{Context, Result, anyhow, ensure};
use prov_ledger::chain::{ChainBlock, verify_chain};
use prov_ledger::checkpoint::Checkpoint;
use prov_ledger::hasher::Blake3Hasher;
use prov_ledger::merkle::{self, MemoryTree};
use prov_ledger::note::{NoteSigner, VerifierKey};
use prov_schemas::Hash32;
use prov_schemas::checked;
use prov_schemas::cose::{self, CoseSign1, P256Backend, VerifyBackend};
use prov_schemas::keys::{Kid, OperatorName, PublicKey, negate_s};
use serde_json::{Value as Json, json};

/// The trusted operator keys of the vector world.
pub fn trusted_operators() -> Result<Vec<(OperatorName, PublicKey)>> {
    let name = OperatorName::new(OPERATOR.trim_start_matches("operator:"))
        .map_err(|e| anyhow!("operator name: {e}"))?;
    Ok(vec![(name, vectors::test_key(OPERATOR)?.public_key())])
}

/// The public key registered for a vector device.
pub fn device_key(device: &str) -> Result<PublicKey> {
    Ok(vectors::test_key(device)?.public_key())
}

/// The gateway's verifier key of the vector log.
pub fn gateway_key() -> Result<VerifierKey> {
    Ok(vectors::gateway_signer()?.verifier_key()?)
}

fn hexes(v: &Json) -> Result<Vec<Hash32>> {
    v.as_array()
        .context("hash list")?
        .iter()
        .map(|h| Hash32::from_hex(h.as_str().unwrap_or_default()).map_err(|e| anyhow!("{e}")))
        .collect()
}

fn text<'a>(v: &'a Json, field: &str) -> Result<&'a str> {
    v[field].as_str().with_context(|| format!("field {field}"))
}

fn num(v: &Json, field: &str) -> Result<u64> {
    v[field].as_u64().with_context(|| format!("field {field}"))
}

fn bytes(v: &Json, field: &str) -> Result<Vec<u8>> {
    hex::decode(text(v, field)?).with_context(|| format!("hex in {field}"))
}

/// Runs one case (valid or invalid) through the core with the given backend. `Ok(())` means
/// the core accepted it; `Err(text)` is the core's typed error, as `{:?}`.
pub fn evaluate_with<B: VerifyBackend + ?Sized>(
    kind: &str,
    input: &Json,
    backend: &B,
) -> Result<std::result::Result<(), String>> {
    let dbg = |e: &dyn std::fmt::Debug| format!("{e:?}");
    Ok(match kind {
        "event" => {
            let key = device_key(text(input, "verify_with")?)?;
            checked::verify_event(&bytes(input, "message_hex")?, &key, backend)
                .map(|_| ())
                .map_err(|e| dbg(&e))
        }
        "registry" => checked::verify_registry_record(
            &bytes(input, "message_hex")?,
            &trusted_operators()?,
            backend,
        )
        .map(|_| ())
        .map_err(|e| dbg(&e)),
        "inclusion" => merkle::verify_inclusion(
            &Blake3Hasher,
            num(input, "index")?,
            num(input, "size")?,
            &Hash32::from_hex(text(input, "leaf_hash_hex")?).map_err(|e| anyhow!("{e}"))?,
            &hexes(&input["proof_hex"])?,
            &Hash32::from_hex(text(input, "root_hex")?).map_err(|e| anyhow!("{e}"))?,
        )
        .map_err(|e| dbg(&e)),
        "consistency" => merkle::verify_consistency(
            &Blake3Hasher,
            num(input, "size1")?,
            num(input, "size2")?,
            &hexes(&input["proof_hex"])?,
            &Hash32::from_hex(text(input, "root1_hex")?).map_err(|e| anyhow!("{e}"))?,
            &Hash32::from_hex(text(input, "root2_hex")?).map_err(|e| anyhow!("{e}"))?,
        )
        .map_err(|e| dbg(&e)),
        "checkpoint" => Checkpoint::open(text(input, "note")?, &gateway_key()?)
            .map(|_| ())
            .map_err(|e| dbg(&e)),
        "chain" => {
            let blocks = input["blocks_hex"]
                .as_array()
                .context("blocks_hex")?
                .iter()
                .map(|b| hex::decode(b.as_str().unwrap_or_default()))
                .collect::<Result<Vec<_>, _>>()?;
            verify_chain(&blocks, &gateway_key()?)
                .map(|_| ())
                .map_err(|e| dbg(&e))
        }
        other => return Err(anyhow!("unknown vector kind {other}")),
    })
}

/// [`evaluate_with`] on the no_std backend every target has.
pub fn evaluate(kind: &str, input: &Json) -> Result<std::result::Result<(), String>> {
    evaluate_with(kind, input, &P256Backend)
}

fn resign(kid: &str, payload_cbor: &[u8]) -> Result<Vec<u8>> {
    let kid_parsed = Kid::new(kid).map_err(|e| anyhow!("{e}"))?;
    // A raw signature over a Sig_structure we build ourselves, so that payloads the model would
    // refuse to encode (non-deterministic, mismatched) still carry a valid signature.
    let tbs = cose::to_be_signed(&kid_parsed, payload_cbor)?;
    let sig = vectors::test_key(kid)?.sign(&tbs);
    Ok(cose::assemble(&kid_parsed, payload_cbor, &sig)?)
}

fn high_s(message: &[u8]) -> Result<Vec<u8>> {
    let mut m = message.to_vec();
    let n = m.len();
    let s: [u8; 32] = m[n - 32..].try_into()?;
    m[n - 32..].copy_from_slice(&negate_s(&s));
    Ok(m)
}

struct Case {
    name: &'static str,
    kind: &'static str,
    input: Json,
    /// The start of the `{:?}` of the error this case exists to provoke.
    want: &'static str,
}

fn event_input(message: &[u8], verify_with: &str) -> Json {
    json!({"message_hex": hex::encode(message), "verify_with": verify_with})
}

fn cases(registry: &[SignedVector], events: &[SignedVector]) -> Result<Vec<Case>> {
    let ev = events.get(1).context("events")?;
    let msg = &ev.message;
    let device = ev.kid.as_str();
    let payload = CoseSign1::parse(msg).context("parse")?.payload().to_vec();
    let mut out = Vec::new();

    out.push(Case {
        name: "event-high-s",
        kind: "event",
        input: event_input(&high_s(msg)?, device),
        want: "Cose(HighS",
    });
    let mut flipped = msg.clone();
    let at = flipped.len() - 33;
    flipped[at] ^= 0x01; // last byte of r
    out.push(Case {
        name: "event-bad-signature",
        kind: "event",
        input: event_input(&flipped, device),
        want: "Cose(BadSignature",
    });
    out.push(Case {
        name: "event-wrong-device-key",
        kind: "event",
        input: event_input(msg, DEVICES[0]),
        want: "Cose(BadSignature",
    });
    let mut trailing = msg.clone();
    trailing.push(0);
    out.push(Case {
        name: "event-trailing-bytes",
        kind: "event",
        input: event_input(&trailing, device),
        want: "Cose(TrailingBytes",
    });
    let mut untagged = msg.clone();
    untagged.remove(0);
    out.push(Case {
        name: "event-untagged",
        kind: "event",
        input: event_input(&untagged, device),
        want: "Cose(NotTagged",
    });
    // prov:seq 1 written as 0x18 0x01 (not shortest), validly signed.
    let seq_key = [0x68, b'p', b'r', b'o', b'v', b':', b's', b'e', b'q'];
    let pos = payload
        .windows(seq_key.len())
        .position(|w| w == seq_key)
        .context("prov:seq key")?
        + seq_key.len();
    let mut long_seq = payload.clone();
    long_seq.splice(pos..pos + 1, [0x18, payload[pos]]);
    out.push(Case {
        name: "event-non-deterministic-payload",
        kind: "event",
        input: event_input(&resign(device, &long_seq)?, device),
        want: "Event(",
    });
    // The same payload signed by another device: prov:device differs from the kid.
    let other = events.get(3).context("events")?;
    out.push(Case {
        name: "event-kid-mismatch",
        kind: "event",
        input: event_input(&resign(&other.kid, &payload)?, &other.kid),
        want: "KidMismatch",
    });
    out.push(Case {
        name: "event-signed-by-operator",
        kind: "event",
        input: event_input(&resign(OPERATOR, &payload)?, device),
        want: "NotADevice",
    });
    let mut big = vec![0xd2, 0x84];
    big.resize(16 * 1024 + 1, 0);
    out.push(Case {
        name: "event-oversize",
        kind: "event",
        input: event_input(&big, device),
        want: "Cose(TooLarge",
    });

    let reg = registry.first().context("registry")?;
    let reg_payload = CoseSign1::parse(&reg.message)
        .context("parse")?
        .payload()
        .to_vec();
    out.push(Case {
        name: "registry-signed-by-device",
        kind: "registry",
        input: json!({"message_hex": hex::encode(resign(DEVICES[0], &reg_payload)?)}),
        want: "NotAnOperator",
    });
    out.push(Case {
        name: "registry-unknown-operator",
        kind: "registry",
        input: json!({"message_hex": hex::encode(resign("operator:rogue", &reg_payload)?)}),
        want: "UnknownOperator",
    });
    let mut reg_bad = reg.message.clone();
    let at = reg_bad.len() - 1;
    reg_bad[at] ^= 0x01;
    out.push(Case {
        name: "registry-bad-signature",
        kind: "registry",
        input: json!({"message_hex": hex::encode(reg_bad)}),
        want: "Cose(BadSignature",
    });

    // Proofs, checkpoint and chain over the same log as log.json.
    let entries: Vec<&[u8]> = registry
        .iter()
        .chain(events)
        .map(|v| v.message.as_slice())
        .collect();
    let mut tree = MemoryTree::new(Blake3Hasher);
    for e in &entries {
        tree.append_entry(e);
    }
    let size = entries.len() as u64;
    let root = tree.root_at(size)?;
    let index = 5;
    let proof = tree.inclusion_proof(index, size)?;
    let inc = |index: u64, proof: &[Hash32], root: &Hash32| {
        json!({
            "index": index, "size": size,
            "leaf_hash_hex": tree.leaf_hash(5).map(|h| h.to_hex()).unwrap_or_default(),
            "proof_hex": proof.iter().map(Hash32::to_hex).collect::<Vec<_>>(),
            "root_hex": root.to_hex(),
        })
    };
    out.push(Case {
        name: "inclusion-wrong-index",
        kind: "inclusion",
        input: inc(index + 1, &proof, &root),
        want: "RootMismatch",
    });
    let mut bent = proof.clone();
    bent[0].0[0] ^= 1;
    out.push(Case {
        name: "inclusion-modified-hash",
        kind: "inclusion",
        input: inc(index, &bent, &root),
        want: "RootMismatch",
    });
    out.push(Case {
        name: "inclusion-truncated",
        kind: "inclusion",
        input: inc(index, &proof[..proof.len() - 1], &root),
        want: "ProofLength",
    });
    out.push(Case {
        name: "inclusion-index-beyond-size",
        kind: "inclusion",
        input: inc(size, &proof, &root),
        want: "IndexOutOfRange",
    });

    let (s1, s2) = (9u64, size);
    let cproof = tree.consistency_proof(s1, s2)?;
    let con = |proof: &[Hash32], r1: &Hash32| {
        json!({
            "size1": s1, "size2": s2,
            "proof_hex": proof.iter().map(Hash32::to_hex).collect::<Vec<_>>(),
            "root1_hex": r1.to_hex(), "root2_hex": root.to_hex(),
        })
    };
    let r1 = tree.root_at(s1)?;
    out.push(Case {
        name: "consistency-truncated",
        kind: "consistency",
        input: con(&cproof[..cproof.len() - 1], &r1),
        want: "ProofLength",
    });
    out.push(Case {
        name: "consistency-wrong-old-root",
        kind: "consistency",
        input: con(&cproof, &tree.root_at(s1 - 1)?),
        want: "OldRootMismatch",
    });

    let signer = vectors::gateway_signer()?;
    let cp = Checkpoint::new(vectors::ORIGIN, size, root)?;
    let note = cp.sign(&signer)?.encode();
    let forged_size = note.replacen(&format!("\n{size}\n"), &format!("\n{}\n", size + 1), 1);
    out.push(Case {
        name: "checkpoint-size-changed-after-signing",
        kind: "checkpoint",
        input: json!({"note": forged_size}),
        want: "Note(BadSignature",
    });
    let impostor = NoteSigner::from_seed(vectors::ORIGIN, &[7u8; 32])?;
    out.push(Case {
        name: "checkpoint-signed-by-another-key",
        kind: "checkpoint",
        input: json!({"note": cp.sign(&impostor)?.encode()}),
        want: "Note(MissingSignature",
    });

    let genesis = ChainBlock::genesis(
        Checkpoint::new(vectors::ORIGIN, 9, r1)?
            .sign(&signer)?
            .encode(),
    );
    let second = ChainBlock::next(&genesis, note.clone(), cproof.clone())?;
    let unlinked = ChainBlock::new(Hash32([9u8; 32]), note.clone(), cproof.clone())?;
    let chain = |blocks: &[&ChainBlock]| json!({"blocks_hex": blocks.iter().map(|b| hex::encode(b.encode())).collect::<Vec<_>>()});
    out.push(Case {
        name: "chain-broken-prev-link",
        kind: "chain",
        input: chain(&[&genesis, &unlinked]),
        want: "ChainError { block: 1, fault: PrevMismatch",
    });
    let no_proof = ChainBlock::next(&genesis, note.clone(), Vec::new())?;
    out.push(Case {
        name: "chain-missing-consistency-proof",
        kind: "chain",
        input: chain(&[&genesis, &no_proof]),
        want: "ChainError { block: 1, fault: Consistency",
    });
    let same = ChainBlock::next(&second, note.clone(), Vec::new())?;
    let smaller = ChainBlock::next(
        &same,
        Checkpoint::new(vectors::ORIGIN, 9, r1)?
            .sign(&signer)?
            .encode(),
        Vec::new(),
    )?;
    out.push(Case {
        name: "chain-tree-shrank",
        kind: "chain",
        input: chain(&[&genesis, &second, &same, &smaller]),
        want: "ChainError { block: 3, fault: SizeShrank",
    });
    Ok(out)
}

/// Builds `invalid.json`, checking while it does that each case fails for its intended reason.
pub fn invalid_json(registry: &[SignedVector], events: &[SignedVector]) -> Result<Json> {
    let mut out = Vec::new();
    for case in cases(registry, events)? {
        let got = evaluate(case.kind, &case.input)?;
        let err = match got {
            Ok(()) => return Err(anyhow!("invalid case {} was accepted", case.name)),
            Err(e) => e,
        };
        ensure!(
            err.starts_with(case.want),
            "invalid case {} failed for the wrong reason: {err} (want {}…)",
            case.name,
            case.want
        );
        out.push(json!({"name": case.name, "kind": case.kind, "input": case.input, "error": err}));
    }
    Ok(json!({ "cases": out }))
}
