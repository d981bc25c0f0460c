//! Offline audit (issue 6): a real log built through the gateway's own pipeline (operator-signed
//! registry records, simulator-signed events, a revocation, a checkpoint per batch) is exported
//! and verified; one flipped byte anywhere in the archive makes `verify` fail naming the cause;
//! a forged checkpoint of the archive's size (signed with the gateway key) is caught as a split
//! view; witness cosignatures in the archive are verified.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::{Path, PathBuf};

use prov_gateway::audit::{self, AuditError, ExternalVerdict, KeySet, NoProgress, VerifyOptions};
use prov_gateway::config::Config;
use prov_gateway::keys;
use prov_gateway::pipeline::{Item, now_ms};
use prov_gateway::service::open_offline;
use prov_ledger::checkpoint::Checkpoint;
use prov_ledger::note::{CosignatureSigner, SignedNote};
use prov_schemas::Hash32;
use prov_schemas::cose::sign_message;
use prov_schemas::keys::{DeviceId, Kid, OperatorName, SecretKey};
use prov_schemas::registry::RegistryRecord;
use prov_simulator::line::{LineConfig, Stop};
use prov_simulator::provision::{now, registration_record};

const ORIGIN: &str = "audit.test/prov/log/1";

/// A gateway data dir with a log of about `events` simulator events from 2 lines (12 devices),
/// one device revoked before the last batch. Returns the config and the revoked device.
fn build_log(dir: &Path, events: u64) -> (Config, DeviceId) {
    let mut config = Config {
        data_dir: dir.to_path_buf(),
        origin: ORIGIN.into(),
        ..Config::default()
    };
    std::fs::create_dir_all(dir).unwrap();
    keys::create_gateway_key(&config.gateway_key_path()).unwrap();
    let op = keys::create_operator_key(&config.operator_key_path()).unwrap();
    config.keys.operator_name = Some("site".into());
    config.keys.operators.insert(
        "site".into(),
        hex::encode(op.public_key().to_sec1_uncompressed()),
    );
    config.verify_workers = 2;

    let mut line = LineConfig::new("factory-a").unwrap();
    line.lines = 2;
    line.seed = 11;
    line.stop = Stop::Count(events);
    let stream = dir.join("stream.bin");
    prov_simulator::presign::presign(&line, &stream).unwrap();
    let mut file = std::io::BufReader::new(std::fs::File::open(&stream).unwrap());
    let mut messages = Vec::new();
    while let Some(r) = prov_simulator::presign::read_record(&mut file).unwrap() {
        messages.push(r);
    }
    std::fs::remove_file(&stream).unwrap();

    let (mut pipeline, outbox) = open_offline(&config).unwrap();
    let operator = OperatorName::new("site").unwrap();
    let registry = |message: Vec<u8>| {
        let (reply, _rx) = tokio::sync::oneshot::channel();
        Item::Registry {
            message,
            received_ms: now_ms(),
            reply,
        }
    };
    let devices = line.device_keys().unwrap();
    let records: Vec<Item> = devices
        .iter()
        .map(|(d, k)| registry(registration_record(*d, *k, now().unwrap(), operator, &op).unwrap()))
        .collect();
    pipeline.process(records, &outbox).unwrap();
    let mqtt = |(topic, payload): (String, Vec<u8>)| Item::Mqtt {
        publish: rumqttc::Publish::new(topic, rumqttc::QoS::AtLeastOnce, payload),
        generation: 0,
        received_ms: now_ms(),
    };
    let split = messages.len() * 9 / 10;
    let tail = messages.split_off(split);
    for chunk in messages.chunks(97) {
        pipeline
            .process(chunk.iter().cloned().map(mqtt).collect(), &outbox)
            .unwrap();
    }
    // Revoke the device of the first message of the tail, then log the tail (the revoked
    // device's events are refused by the gateway and never logged).
    let revoked = DeviceId::new(tail[0].0.split('/').nth(3).unwrap()).unwrap();
    let revocation = RegistryRecord::Revocation {
        device: revoked,
        event_time: now().unwrap(),
    };
    let message =
        sign_message(&Kid::Operator(operator), &revocation.encode_payload(), &op).unwrap();
    pipeline.process(vec![registry(message)], &outbox).unwrap();
    pipeline
        .process(tail.into_iter().map(mqtt).collect(), &outbox)
        .unwrap();
    drop(pipeline);
    (config, revoked)
}

fn trusted(config: &Config) -> KeySet {
    let signer = keys::load_gateway_signer(&config.gateway_key_path(), &config.origin).unwrap();
    KeySet {
        gateway: signer.verifier_key().unwrap(),
        operators: keys::trusted_operators(&config.keys.operators).unwrap(),
    }
}

fn files_of(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_of(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

#[test]
fn export_verify_byte_flips_and_split_view() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("gw");
    let (config, _revoked) = build_log(&data, 600);
    let keys = trusted(&config);

    // A witness cosigned the latest checkpoint; the gateway keeps it in cosigned/.
    let chain = prov_ledger::store::ChainStore::open(&config.chain_path(), &keys.gateway).unwrap();
    let latest_note = chain.latest_note().unwrap().to_owned();
    let latest = chain.latest().unwrap().clone();
    let early_note = {
        let block = prov_ledger::chain::ChainBlock::decode(&chain.block(3).unwrap()).unwrap();
        block.checkpoint_note().to_owned()
    };
    drop(chain);
    let witness = CosignatureSigner::from_seed("witness.test/w1", &[3; 32]).unwrap();
    let wkey = witness.verifier_key().unwrap();
    let mut cosigned = SignedNote::parse(&latest_note).unwrap();
    cosigned
        .push_signature(witness.cosign(cosigned.text(), 1_700_000_123).unwrap())
        .unwrap();
    std::fs::create_dir_all(data.join("cosigned")).unwrap();
    std::fs::write(
        data.join("cosigned")
            .join(format!("{}.note", latest.size())),
        cosigned.encode(),
    )
    .unwrap();

    let archive = tmp.path().join("archive");
    let summary = audit::export(&config, &archive, &NoProgress).unwrap();
    assert_eq!(summary.entries, latest.size());
    assert_eq!(summary.cosigned, 1);
    assert!(matches!(
        audit::export(&config, &archive, &NoProgress),
        Err(AuditError::OutExists { .. })
    ));

    let options = VerifyOptions {
        trust: Some(keys.clone()),
        witnesses: vec![wkey.clone()],
        workers: 2,
        ..VerifyOptions::default()
    };
    let report = audit::verify(&archive, &options, &NoProgress).unwrap();
    assert!(!report.keys_from_archive);
    assert_eq!(report.entries, latest.size());
    assert_eq!(report.checkpoint, latest);
    assert_eq!(report.registrations, 12);
    assert_eq!(report.revocations, 1);
    assert_eq!(
        report.registrations + report.revocations + report.events,
        report.entries
    );
    assert!(report.events >= 500, "{report:?}");
    assert!(report.blocks >= 8);
    assert!(report.equivocations.is_empty());
    assert_eq!(report.cosigned.len(), 1);
    assert_eq!(
        report.cosigned[0].verified,
        vec![("witness.test/w1".to_owned(), 1_700_000_123)]
    );
    // Without --trust: the archive's own keys, said so.
    let own = audit::verify(&archive, &VerifyOptions::default(), &NoProgress).unwrap();
    assert!(own.keys_from_archive);
    assert_eq!(own.keys, keys);
    // A --trust that differs from the archive's keys fails.
    let mut other = keys.clone();
    other.operators.clear();
    assert!(matches!(
        audit::verify(
            &archive,
            &VerifyOptions {
                trust: Some(other),
                ..VerifyOptions::default()
            },
            &NoProgress
        ),
        Err(AuditError::TrustMismatch { .. })
    ));

    // --checkpoint: the same, an earlier one, a later one, and a forged one of the same size.
    let signer = keys::load_gateway_signer(&config.gateway_key_path(), ORIGIN).unwrap();
    let with_checkpoint = |text: String| VerifyOptions {
        trust: Some(keys.clone()),
        checkpoint: Some((PathBuf::from("phone.note"), text)),
        workers: 2,
        ..VerifyOptions::default()
    };
    let v = |o: &VerifyOptions| audit::verify(&archive, o, &NoProgress);
    assert_eq!(
        v(&with_checkpoint(latest_note.clone())).unwrap().external,
        Some(ExternalVerdict::Same {
            size: latest.size()
        })
    );
    assert!(matches!(
        v(&with_checkpoint(early_note)).unwrap().external,
        Some(ExternalVerdict::Consistent { .. })
    ));
    let later = Checkpoint::new(ORIGIN, latest.size() + 5, Hash32([7; 32]))
        .unwrap()
        .sign(&signer)
        .unwrap()
        .encode();
    assert!(matches!(
        v(&with_checkpoint(later)).unwrap().external,
        Some(ExternalVerdict::BeyondArchive { .. })
    ));
    let forged = Checkpoint::new(ORIGIN, latest.size(), Hash32::blake3(b"the other view"))
        .unwrap()
        .sign(&signer)
        .unwrap()
        .encode();
    match v(&with_checkpoint(forged)) {
        Err(AuditError::SplitView { size, .. }) => assert_eq!(size, latest.size()),
        other => panic!("want a split view, got {other:?}"),
    }
    let forged_small = Checkpoint::new(ORIGIN, 40, Hash32::blake3(b"the other view"))
        .unwrap()
        .sign(&signer)
        .unwrap()
        .encode();
    assert!(matches!(
        v(&with_checkpoint(forged_small)),
        Err(AuditError::SplitView { size: 40, .. })
    ));
    let impostor = prov_ledger::note::NoteSigner::from_seed(ORIGIN, &[1; 32]).unwrap();
    let unsigned = Checkpoint::new(ORIGIN, latest.size(), latest.root())
        .unwrap()
        .sign(&impostor)
        .unwrap()
        .encode();
    assert!(matches!(
        v(&with_checkpoint(unsigned)),
        Err(AuditError::ExternalCheckpoint { .. })
    ));

    // One flipped byte anywhere: verify fails, naming the cause.
    let mut tried = 0;
    for file in files_of(&archive) {
        let original = std::fs::read(&file).unwrap();
        let len = original.len();
        let mut positions: Vec<usize> = (0..len.min(6)).collect();
        positions.extend((1..=40).map(|k| k * len / 41));
        positions.extend([len.saturating_sub(2), len - 1]);
        positions.sort_unstable();
        positions.dedup();
        for &pos in &positions {
            for mask in [0x01u8, 0x80] {
                let mut bytes = original.clone();
                bytes[pos] ^= mask;
                std::fs::write(&file, &bytes).unwrap();
                let result = audit::verify(&archive, &options, &NoProgress);
                let err = match result {
                    Err(e) => e,
                    Ok(_) => panic!("{} byte {pos} ^ {mask:#04x}: verify passed", file.display()),
                };
                let text = err.to_string();
                assert!(!text.is_empty());
                let name = file.file_name().unwrap().to_string_lossy().into_owned();
                let fitting = match name.as_str() {
                    "FORMAT" => matches!(err, AuditError::Format { .. }),
                    "keys.json" => matches!(
                        err,
                        AuditError::Keys { .. } | AuditError::TrustMismatch { .. }
                    ),
                    "chain.bin" => matches!(
                        err,
                        AuditError::Chain(_) | AuditError::Framing { .. } | AuditError::EmptyChain
                    ),
                    "entries.bin" => matches!(
                        err,
                        AuditError::Entry { .. }
                            | AuditError::Framing { .. }
                            | AuditError::RootMismatch { .. }
                            | AuditError::Device { .. }
                            | AuditError::BrokenChain { .. }
                            | AuditError::Replay { .. }
                            | AuditError::Registry { .. }
                            | AuditError::DuplicateEntry { .. }
                            | AuditError::EntryCount { .. }
                    ),
                    _ => matches!(
                        err,
                        AuditError::Cosigned { .. }
                            | AuditError::Cosignature { .. }
                            | AuditError::SplitView { .. }
                    ),
                };
                assert!(
                    fitting,
                    "{name} byte {pos} ^ {mask:#04x}: unexpected cause {err:?}"
                );
                tried += 1;
            }
        }
        std::fs::write(&file, &original).unwrap();
    }
    assert!(tried > 300, "{tried}");
    // Restored: passes again.
    audit::verify(&archive, &options, &NoProgress).unwrap();
    // A missing entry at the end is named.
    let entries = archive.join("entries.bin");
    let bytes = std::fs::read(&entries).unwrap();
    let mut at = 0usize;
    let mut last = 0usize;
    while at < bytes.len() {
        last = at;
        at += 4 + u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    }
    std::fs::write(&entries, &bytes[..last]).unwrap();
    assert!(matches!(
        audit::verify(&archive, &options, &NoProgress),
        Err(AuditError::EntryCount { .. } | AuditError::RootMismatch { .. })
    ));
}

#[test]
fn key_json_is_the_api_shape() {
    let key = SecretKey::test_key("operator").unwrap();
    let gateway = prov_ledger::note::NoteSigner::from_seed(ORIGIN, &[2; 32])
        .unwrap()
        .verifier_key()
        .unwrap();
    let set = KeySet {
        gateway,
        operators: [(OperatorName::new("site").unwrap(), key.public_key())].into(),
    };
    let json = set.to_json();
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(value["gateway_key"].is_string());
    assert!(value["operator_keys"]["operator:site"].is_string());
    let path = Path::new("keys.json");
    assert_eq!(KeySet::from_json(json.as_bytes(), path, true).unwrap(), set);
    // Lenient (a --trust file from the API): extra fields and whitespace are fine.
    let pretty = serde_json::to_string_pretty(&serde_json::json!({
        "gateway_key": value["gateway_key"],
        "operator_keys": value["operator_keys"],
        "extra": 1,
    }))
    .unwrap();
    assert_eq!(
        KeySet::from_json(pretty.as_bytes(), path, false).unwrap(),
        set
    );
    assert!(KeySet::from_json(pretty.as_bytes(), path, true).is_err());
}
