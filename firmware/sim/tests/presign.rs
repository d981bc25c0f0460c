//! The pre-signed stream: its record format, every message verifies, chains per device, the
//! device list beside it, and a file-backed state directory that makes a second run continue
//! each device's chain.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::io::BufReader;

use common::*;
use prov_schemas::keys::DeviceId;
use prov_simulator::line::Stop;
use prov_simulator::presign::{devices_path, presign, read_record, write_record};

fn read_all(path: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut input = BufReader::new(std::fs::File::open(path).unwrap());
    let mut out = Vec::new();
    while let Some(record) = read_record(&mut input).unwrap() {
        out.push(record);
    }
    out
}

#[test]
fn record_format() {
    let mut buf = Vec::new();
    write_record(&mut buf, "a/b", &[1, 2, 3]).unwrap();
    assert_eq!(buf, [0, 3, b'a', b'/', b'b', 0, 0, 0, 3, 1, 2, 3]);
    let mut input = &buf[..];
    assert_eq!(
        read_record(&mut input).unwrap(),
        Some(("a/b".to_string(), vec![1, 2, 3]))
    );
    assert_eq!(read_record(&mut input).unwrap(), None);
    // A truncated record is an error, not a clean end.
    let mut cut = &buf[..7];
    assert!(read_record(&mut cut).is_err());
}

#[test]
fn presigned_stream_verifies_and_chains() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stream.bin");
    let mut config = config("presign", 1, 300);
    config.lines = 2;
    let report = presign(&config, &path).unwrap();
    assert!(
        report.events >= 300 && report.events <= 301,
        "{}",
        report.events
    );
    let records = read_all(&path);
    assert_eq!(records.len() as u64, report.events);
    let keys = keys(&config);
    let mut received = Received::default();
    for (topic, message) in &records {
        received.add(topic, message, &keys);
    }
    let last: BTreeMap<DeviceId, u64> = report
        .devices
        .iter()
        .map(|d| (d.device, d.last_seq))
        .collect();
    received.check_chains(&last);
    assert_eq!(received.messages as u64, report.events, "no duplicates");
    // The device list names every device with its key.
    let list: serde_json::Value =
        serde_json::from_slice(&std::fs::read(devices_path(&path)).unwrap()).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 12);
    // Never overwritten.
    assert!(presign(&config, &path).is_err());
}

#[test]
fn a_state_directory_continues_each_chain_across_runs() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config("resume", 1, 60);
    config.state_dir = Some(dir.path().join("state"));
    let first_path = dir.path().join("first.bin");
    let first = presign(&config, &first_path).unwrap();
    config.run_tag = "U".into();
    config.stop = Stop::Count(60);
    let second_path = dir.path().join("second.bin");
    let second = presign(&config, &second_path).unwrap();

    let keys = keys(&config);
    let mut received = Received::default();
    for (topic, message) in read_all(&first_path).iter().chain(&read_all(&second_path)) {
        received.add(topic, message, &keys);
    }
    let last: BTreeMap<DeviceId, u64> = second
        .devices
        .iter()
        .map(|d| (d.device, d.last_seq))
        .collect();
    // One chain per device over both runs: seqs continue, prev links across the restart.
    received.check_chains(&last);
    for (a, b) in first.devices.iter().zip(&second.devices) {
        assert_eq!(a.device, b.device);
        assert!(b.last_seq >= a.last_seq);
    }
    assert_eq!(
        second.devices.iter().map(|d| d.last_seq).sum::<u64>(),
        first.events + second.events
    );
}
