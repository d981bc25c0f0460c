//! Receipts (SPEC §3 with the firmware's power-loss rule): a gap that the next message chains
//! over (its `prov:prev` is the BLAKE3 of the message before the gap, or zero when seq 1 is
//! missing) is closed for receipts; an open gap holds the receipt back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use prov_gateway::index::{Indexes, LoggedEntry};
use prov_gateway::pipeline::receipt_seq;
use prov_schemas::Hash32;
use prov_schemas::cose::sign_message;
use prov_schemas::event::Event;
use prov_schemas::keys::{DeviceId, Kid, OperatorName, SecretKey};
use prov_simulator::keys::derive_device_key;
use prov_simulator::line::{LineConfig, Stop};

const SEED: u64 = 3;

/// The first five messages of one device of a pre-signed stream, and the device.
fn device_messages() -> (DeviceId, Vec<Vec<u8>>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.bin");
    let mut config = LineConfig::new("factory-a").unwrap();
    config.seed = SEED;
    config.stop = Stop::Count(60);
    prov_simulator::presign::presign(&config, &path).unwrap();
    let mut file = std::io::BufReader::new(std::fs::File::open(&path).unwrap());
    let mut by_topic: std::collections::BTreeMap<String, Vec<Vec<u8>>> = Default::default();
    while let Some((t, m)) = prov_simulator::presign::read_record(&mut file).unwrap() {
        by_topic.entry(t).or_default().push(m);
    }
    let (topic, msgs) = by_topic.into_iter().find(|(_, m)| m.len() >= 5).unwrap();
    let device = DeviceId::new(topic.split('/').nth(3).unwrap()).unwrap();
    (device, msgs)
}

/// `message` re-signed with `seq` and `prev` changed.
fn resign(device: &DeviceId, message: &[u8], seq: u64, prev: Hash32) -> Vec<u8> {
    let LoggedEntry::Event { event, .. } = LoggedEntry::parse(message).unwrap() else {
        panic!("not an event")
    };
    let mut event: Event = *event;
    event.seq = seq;
    event.prev = prev;
    let key = derive_device_key(SEED, device);
    sign_message(&Kid::Device(*device), &event.encode_payload(), &key).unwrap()
}

fn indexes_with(device: &DeviceId, messages: &[Vec<u8>]) -> Indexes {
    let operator = SecretKey::test_key("operator").unwrap();
    let registration = prov_simulator::provision::registration_record(
        *device,
        derive_device_key(SEED, device).public_key(),
        prov_simulator::provision::now().unwrap(),
        OperatorName::new("site").unwrap(),
        &operator,
    )
    .unwrap();
    let indexes = Indexes::temporary().unwrap();
    let mut all = vec![registration];
    all.extend(messages.iter().cloned());
    let parsed: Vec<LoggedEntry> = all.iter().map(|m| LoggedEntry::parse(m).unwrap()).collect();
    indexes
        .apply_batch(0, parsed.iter().map(LoggedEntry::as_ref))
        .unwrap();
    indexes
}

#[test]
fn contiguous_chain_is_receipted_to_its_head() {
    let (device, m) = device_messages();
    let ix = indexes_with(&device, &m[..3]);
    assert_eq!(receipt_seq(&ix, &device).unwrap(), 3);
}

#[test]
fn open_gap_holds_the_receipt() {
    let (device, m) = device_messages();
    // seq 4's prev is BLAKE3(seq 3), which is missing: the gap is open.
    let ix = indexes_with(&device, &[m[0].clone(), m[1].clone(), m[3].clone()]);
    assert_eq!(receipt_seq(&ix, &device).unwrap(), 2);
}

#[test]
fn gap_chained_over_is_closed() {
    let (device, m) = device_messages();
    // Power lost after reserving seq 3: seq 4 links to seq 2.
    let four = resign(&device, &m[3], 4, Hash32::blake3(&m[1]));
    let ix = indexes_with(&device, &[m[0].clone(), m[1].clone(), four]);
    assert_eq!(receipt_seq(&ix, &device).unwrap(), 4);
}

#[test]
fn missing_first_seq_holds_the_receipt_at_zero() {
    let (device, m) = device_messages();
    // The real seq 2 (prev = BLAKE3 of the missing seq 1) leaves the gap open.
    let ix = indexes_with(&device, &[m[1].clone()]);
    assert_eq!(receipt_seq(&ix, &device).unwrap(), 0);
    // A seq 2 chaining over a lost seq 1 with a zero prev is not a valid event at all (the
    // schema allows a zero prev only at seq 1), so that case of the firmware's rule cannot
    // reach the log.
    let two = resign(&device, &m[1], 2, Hash32::ZERO);
    assert!(LoggedEntry::parse(&two).is_err());
}
