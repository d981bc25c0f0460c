//! The quarantine file: round trips, flags, torn tails at every offset, corruption anywhere.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::path::Path;

use prov_gateway::quarantine::{MAGIC, Quarantine, QuarantineError};
use prov_gateway::verify::{RejectCode, Rejection};
use prov_schemas::Hash32;
use prov_schemas::cose::MAX_MESSAGE_LEN;
use prov_schemas::keys::DeviceId;

fn rejection(code: RejectCode, device: Option<&str>, seq: Option<u64>, raw: &[u8]) -> Rejection {
    Rejection {
        code,
        detail: format!("{code} because of reasons"),
        seq,
        hash: Hash32::blake3(raw),
        evidence_of: (code == RejectCode::Equivocation).then_some(42),
        device: device.map(|d| DeviceId::new(d).expect("device")),
        received_ms: 1_795_505_400_000,
    }
}

type Item = (Rejection, String, Vec<u8>);

fn items() -> Vec<Item> {
    let raw = |n: u8, len: usize| vec![n; len];
    vec![
        (
            rejection(RejectCode::BadCose, Some("dev-a"), None, &raw(1, 10)),
            "prov/v1/s/dev-a/events".into(),
            raw(1, 10),
        ),
        (
            rejection(
                RejectCode::Equivocation,
                Some("dev-b"),
                Some(7),
                &raw(2, 300),
            ),
            "prov/v1/s/dev-b/events".into(),
            raw(2, 300),
        ),
        (
            rejection(RejectCode::UnknownOperator, None, None, &raw(3, 0)),
            "http:registry".into(),
            raw(3, 0),
        ),
        (
            rejection(RejectCode::Replay, Some("dev-a"), Some(3), &raw(4, 70)),
            "prov/v1/s/dev-a/events".into(),
            raw(4, 70),
        ),
    ]
}

fn fill(path: &Path, items: &[Item]) -> Vec<u64> {
    let (mut q, report) = Quarantine::open(path).expect("open");
    assert!(report.created);
    items
        .iter()
        .map(|(r, t, raw)| q.append(r, t, raw).expect("append"))
        .collect()
}

#[test]
fn round_trip_counts_devices_flags() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("quarantine.log");
    let items = items();
    let ids = fill(&path, &items);
    assert_eq!(ids, vec![0, 1, 2, 3]);
    let (q, report) = Quarantine::open(&path).expect("reopen");
    assert_eq!(report.records, 4);
    assert_eq!(report.cut_bytes, 0);
    assert!(!report.created);
    let records: Vec<_> = q
        .iter()
        .expect("iter")
        .collect::<Result<_, _>>()
        .expect("records");
    assert_eq!(records.len(), 4);
    for ((r, topic, raw), rec) in items.iter().zip(&records) {
        assert_eq!(rec.code, r.code);
        assert_eq!(&rec.detail, &r.detail);
        assert_eq!(&rec.topic, topic);
        assert_eq!(&rec.raw, raw);
        assert_eq!(rec.seq, r.seq);
        assert_eq!(rec.evidence_of, r.evidence_of);
        assert_eq!(rec.device, r.device);
        assert_eq!(rec.hash, r.hash);
        assert_eq!(rec.received_ms, r.received_ms);
        assert!(!rec.truncated);
        assert_eq!(q.get(rec.id).expect("get"), *rec);
    }
    let a = DeviceId::new("dev-a").expect("id");
    let b = DeviceId::new("dev-b").expect("id");
    assert_eq!(q.ids_for_device(&a), &[0, 3]);
    assert_eq!(q.ids_with_code(RejectCode::Replay), vec![3]);
    assert_eq!(q.counts().get(&RejectCode::BadCose), Some(&1));
    assert_eq!(q.counts().get(&RejectCode::Oversize), None);
    assert!(q.is_flagged(&b));
    assert!(!q.is_flagged(&a));
    assert!(matches!(
        q.get(4),
        Err(QuarantineError::NoSuchRecord { id: 4, len: 4 })
    ));
}

#[test]
fn batch_append_and_limits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("quarantine.log");
    let (mut q, _) = Quarantine::open(&path).expect("open");
    let big = vec![0xd2u8; MAX_MESSAGE_LEN * 3];
    let mut r = rejection(RejectCode::Oversize, Some("dev-a"), None, &big);
    r.detail = "é".repeat(5000); // 10,000 bytes, cut at a character boundary
    let topic = "ü".repeat(2000);
    let small = rejection(RejectCode::BadCbor, Some("dev-a"), Some(1), b"x");
    let ids = q
        .append_batch(&[(&r, &topic, &big), (&small, "t", b"x")])
        .expect("batch");
    assert_eq!(ids, vec![0, 1]);
    let (q, _) = Quarantine::open(&path).expect("reopen");
    let rec = q.get(0).expect("get");
    assert!(rec.truncated);
    assert_eq!(rec.raw.len(), MAX_MESSAGE_LEN);
    assert_eq!(rec.message_len, big.len() as u64);
    assert_eq!(rec.hash, Hash32::blake3(&big));
    assert!(rec.detail.len() <= 4096 && rec.detail.chars().all(|c| c == 'é'));
    assert!(rec.topic.len() <= 1024 && rec.topic.chars().all(|c| c == 'ü'));
    assert_eq!(q.get(1).expect("get").raw, b"x");
}

#[test]
fn torn_tail_at_every_offset_of_the_last_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let full_path = dir.path().join("full.log");
    let items = items();
    fill(&full_path, &items[..3]);
    let before_last = fs::metadata(&full_path).expect("meta").len() as usize;
    let (mut q, _) = Quarantine::open(&full_path).expect("open");
    let (r, t, raw) = &items[3];
    q.append(r, t, raw).expect("append");
    drop(q);
    let full = fs::read(&full_path).expect("read");
    let path = dir.path().join("torn.log");
    for cut in before_last..full.len() {
        fs::write(&path, &full[..cut]).expect("write");
        let (mut q, report) = Quarantine::open(&path).expect("torn tail is cut, not an error");
        assert_eq!(report.records, 3, "cut at {cut}");
        assert_eq!(report.cut_bytes, (cut - before_last) as u64);
        assert_eq!(
            fs::metadata(&path).expect("meta").len() as usize,
            before_last
        );
        // Appending after the cut gives a clean file again.
        q.append(r, t, raw).expect("append");
        drop(q);
        assert_eq!(fs::read(&path).expect("read"), full, "cut at {cut}");
    }
    // A file torn inside its magic is a new, empty quarantine.
    for cut in 0..MAGIC.len() {
        fs::write(&path, &full[..cut]).expect("write");
        let (q, report) = Quarantine::open(&path).expect("open");
        assert_eq!((q.len(), report.created), (0, true));
    }
}

#[test]
fn corruption_anywhere_but_a_torn_tail_is_a_typed_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let full_path = dir.path().join("full.log");
    fill(&full_path, &items());
    let full = fs::read(&full_path).expect("read");
    let path = dir.path().join("bad.log");
    // Flip one bit at every offset after the magic: every record, the last one included.
    for at in MAGIC.len()..full.len() {
        let mut bad = full.clone();
        bad[at] ^= 0x10;
        fs::write(&path, &bad).expect("write");
        match Quarantine::open(&path) {
            Err(QuarantineError::Corrupt { offset, .. }) => {
                assert!(
                    offset as usize <= at,
                    "offset {offset} after the flip at {at}"
                )
            }
            Err(e) => panic!("flip at {at}: unexpected error {e}"),
            Ok((q, report)) => panic!(
                "flip at {at} went unnoticed: {} records, {} bytes cut",
                q.len(),
                report.cut_bytes
            ),
        }
        // The file is left as it was: nothing is cut from a corrupt file.
        assert_eq!(fs::read(&path).expect("read"), bad);
    }
    let mut bad = full.clone();
    bad[0] ^= 1;
    fs::write(&path, &bad).expect("write");
    assert!(matches!(
        Quarantine::open(&path),
        Err(QuarantineError::BadMagic { .. })
    ));
}
