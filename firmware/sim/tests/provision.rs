//! Provisioning: key files (0600 from creation, never overwritten, never printed), the
//! operator-signed registration record (verifies with the core's verifier, SPEC §4 fields), and
//! the `prov-sim` commands' output.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;

use prov_schemas::checked::verify_registry_record;
use prov_schemas::cose::P256Backend;
use prov_schemas::keys::{DeviceId, OperatorName};
use prov_schemas::registry::RegistryRecord;
use prov_simulator::keys::{create_key_file, load_key_file};
use prov_simulator::provision::provision;

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn provision_writes_a_private_key_and_a_verifiable_registration() {
    let dir = tempfile::tempdir().unwrap();
    let operator_key_path = dir.path().join("operator.key");
    let operator_key = create_key_file(&operator_key_path).unwrap();
    assert_eq!(mode(&operator_key_path), 0o600);

    let device = DeviceId::new("line1-packer").unwrap();
    let operator = OperatorName::new("factory-a").unwrap();
    let key_path = dir.path().join("line1-packer.key");
    let record_path = dir.path().join("line1-packer.cose");
    let done = provision(
        device,
        &key_path,
        operator,
        &operator_key_path,
        &record_path,
    )
    .unwrap();
    assert_eq!(mode(&key_path), 0o600);
    let key = load_key_file(&key_path).unwrap();
    assert_eq!(key.public_key(), done.public_key);

    let record = std::fs::read(&record_path).unwrap();
    let trusted = [(operator, operator_key.public_key())];
    let checked = verify_registry_record(&record, &trusted, &P256Backend).unwrap();
    match checked.record() {
        RegistryRecord::Registration {
            device: d, key: k, ..
        } => {
            assert_eq!(*d, device);
            assert_eq!(*k, done.public_key);
        }
        other => panic!("not a registration: {other:?}"),
    }
    assert_eq!(checked.hash(), done.record_hash);

    // Nothing is ever overwritten.
    let other_record = dir.path().join("other.cose");
    assert!(
        provision(
            device,
            &key_path,
            operator,
            &operator_key_path,
            &other_record
        )
        .is_err()
    );
    assert!(!other_record.exists());
    let other_key = dir.path().join("other.key");
    assert!(
        provision(
            device,
            &other_key,
            operator,
            &operator_key_path,
            &record_path
        )
        .is_err()
    );
    assert!(
        !other_key.exists(),
        "no key left behind by a failed provisioning"
    );
    assert!(create_key_file(&key_path).is_err());
    assert_eq!(
        load_key_file(&key_path).unwrap().public_key(),
        done.public_key
    );
}

#[test]
fn key_files_readable_by_others_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.key");
    create_key_file(&path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = load_key_file(&path).unwrap_err().to_string();
    assert!(err.contains("mode 644"), "{err}");
    std::fs::write(dir.path().join("bad.key"), "zz\n").unwrap();
    std::fs::set_permissions(
        dir.path().join("bad.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    assert!(load_key_file(&dir.path().join("bad.key")).is_err());
}

#[test]
fn the_cli_prints_public_keys_never_secrets() {
    let bin = env!("CARGO_BIN_EXE_prov-sim");
    let dir = tempfile::tempdir().unwrap();
    let op = dir.path().join("op.key");
    let out = Command::new(bin)
        .args(["keygen", "--out"])
        .arg(&op)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let op_secret = std::fs::read_to_string(&op).unwrap().trim().to_string();
    let key = dir.path().join("dev.key");
    let record = dir.path().join("dev.cose");
    let out2 = Command::new(bin)
        .args([
            "provision",
            "--device",
            "line1-packer",
            "--operator",
            "factory-a",
        ])
        .arg("--key-out")
        .arg(&key)
        .arg("--operator-key")
        .arg(&op)
        .arg("--record-out")
        .arg(&record)
        .output()
        .unwrap();
    assert!(
        out2.status.success(),
        "{}",
        String::from_utf8_lossy(&out2.stderr)
    );
    let dev_secret = std::fs::read_to_string(&key).unwrap().trim().to_string();
    let public = load_key_file(&key).unwrap().public_key();
    let printed = format!(
        "{}{}{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out2.stdout),
        String::from_utf8_lossy(&out2.stderr)
    );
    assert_eq!(op_secret.len(), 64);
    assert!(!printed.contains(&op_secret) && !printed.contains(&dev_secret));
    assert!(
        printed.contains(&hex::encode(public.to_sec1_uncompressed())),
        "{printed}"
    );
    assert!(
        printed.contains(&public.fingerprint().to_hex()),
        "{printed}"
    );
    // Refuses to overwrite, and says so.
    let again = Command::new(bin)
        .args(["keygen", "--out"])
        .arg(&op)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("never overwritten"));
}
