//! The device core over a `MemFlash`: events verify with the core's verifier, the seq/prev chain
//! holds across reboots and power cuts, the queue drains oldest first after an outage and only
//! receipts free it, clock sync, failure paths that must not spend a seq, and the wire helpers
//! (receipts, reject lines, topics).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod device_common;

use device_common::*;
use prov_firmware::device::{
    Device, DeviceError, Reject, SIGN_ATTEMPTS, TopicKind, Topics, parse_receipt,
};
use prov_firmware::roles::{Commissioning, Draft};
use prov_firmware::signer::{FlashKeySigner, Signer, SignerError};
use prov_firmware::storage::mem_flash::Tear;
use prov_firmware::storage::{ChainPoint, EventStore, StorageError};
use prov_schemas::Hash32;
use prov_schemas::checked::verify_event;
use prov_schemas::cose::{self, CoseError, P256Backend};
use prov_schemas::event::{EventError, EventType};
use prov_schemas::keys::{Kid, PublicKey, Signature, SignatureError};

/// The commissioning draft for item `n`.
fn draft(n: u32) -> Draft {
    let mut role = Commissioning::new(station(FACTORY));
    role.on_scan(item(&format!("SER{n:05}"))).unwrap()
}

fn record_n(device: &mut TestDevice, from: u32, count: u32) {
    for n in from..from + count {
        device.record(draft(n)).unwrap();
    }
}

#[test]
fn events_verify_and_chain_from_genesis() {
    let mut device = new_device("line1-commission");
    for n in 0..10 {
        assert_eq!(device.record(draft(n)).unwrap(), u64::from(n) + 1);
    }
    let events = verified_outbox(&mut device);
    assert_eq!(events.len(), 10);
    assert_eq!(events[0].seq(), 1);
    assert_eq!(events[0].prev(), Hash32::ZERO);
    assert_eq!(device.chain_head().seq, 10);
    assert_eq!(device.chain_head().hash, events[9].hash());
    for (n, e) in events.iter().enumerate() {
        assert_eq!(e.event().event_type, EventType::Object);
        assert_eq!(e.event().epc_list, vec![item(&format!("SER{n:05}"))]);
        assert!(e.event().clock_synced);
    }
    check_json_schema(&events);
}

#[test]
fn the_schema_check_is_not_vacuous() {
    let mut device = new_device("line1-commission");
    device.record(draft(0)).unwrap();
    let events = verified_outbox(&mut device);
    let good = serde_json::to_value(events[0].event()).unwrap();
    let mut unknown_field = good.clone();
    unknown_field["colour"] = serde_json::json!("red");
    let mut two_children = serde_json::json!({
        "type": "AggregationEvent", "action": "ADD",
        "parentID": "https://id.gs1.org/00/106141412345678908",
        "childEPCs": [item("A").canonical(), item("B").canonical()],
    });
    for key in [
        "eventTime",
        "eventTimeZoneOffset",
        "prov:device",
        "prov:seq",
        "prov:prev",
    ] {
        two_children[key] = good[key].clone();
    }
    if let Some((ok, output)) = schema_check(&[good]) {
        assert!(ok, "{output}");
        for bad in [unknown_field, two_children] {
            let (ok, output) = schema_check(&[bad]).unwrap();
            assert!(!ok, "accepted: {output}");
        }
    }
}

#[test]
fn chain_unbroken_across_reboots() {
    let mut device = new_device("line1-commission");
    record_n(&mut device, 0, 4);
    for round in 1..=3 {
        device = reboot(device, layout());
        assert_eq!(device.chain_head().seq, 4 * round);
        record_n(&mut device, 4 * round as u32, 4);
    }
    let events = verified_outbox(&mut device);
    let seqs: Vec<u64> = events.iter().map(|e| e.seq()).collect();
    assert_eq!(seqs, (1..=16).collect::<Vec<_>>());
}

#[test]
fn power_cut_at_every_write_of_a_record_keeps_the_chain() {
    // Count the flash mutations of one record after a few events.
    let mut probe = new_device("line1-commission");
    record_n(&mut probe, 0, 3);
    let before = probe.store().flash().mutations();
    probe.record(draft(3)).unwrap();
    let per_record = probe.store().flash().mutations() - before;
    assert!(per_record >= 2, "reserve and commit both write");

    for cut in 0..per_record {
        for tear in Tear::ALL {
            let mut device = new_device("line1-commission");
            record_n(&mut device, 0, 3);
            let at = device.store().flash().mutations() + cut;
            device.store_mut().flash_mut().cut_power_at(at, tear);
            let result = device.record(draft(3));
            assert!(
                result.is_err(),
                "cut {cut} {tear:?} must interrupt the record"
            );
            device.store_mut().flash_mut().power_on();
            device = reboot(device, layout());
            // Whatever landed, the next events chain on the newest complete message.
            let head = device.chain_head();
            assert!(
                head.seq == 3 || head.seq == 4,
                "cut {cut} {tear:?}: head {head:?}"
            );
            record_n(&mut device, 10, 2);
            let events = verified_outbox(&mut device);
            let seqs: Vec<u64> = events.iter().map(|e| e.seq()).collect();
            assert_eq!(&seqs[..3], &[1, 2, 3]);
            assert_eq!(seqs.len(), 5 + usize::from(head.seq == 4));
            // Seqs never repeat and never go back; a lost reservation is a gap at most one wide.
            assert!(
                seqs.windows(2).all(|w| w[1] > w[0] && w[1] - w[0] <= 2),
                "{seqs:?}"
            );
        }
    }
}

#[test]
fn lost_first_reservation_is_reported_not_signed() {
    // The first record is cut right after its reservation reached the state log: the store has
    // handed out seq 1 but queued nothing.
    let mut device = new_device("line1-commission");
    let start = device.store().flash().mutations();
    device.record(draft(0)).unwrap();
    let per_record = device.store().flash().mutations() - start;
    let mut device = new_device("line1-commission");
    let at = device.store().flash().mutations() + per_record - 1;
    device
        .store_mut()
        .flash_mut()
        .cut_power_at(at, Tear::Nothing);
    assert!(device.record(draft(0)).is_err());
    device.store_mut().flash_mut().power_on();
    let mut device = reboot(device, layout());
    assert_eq!(device.store().last_reserved(), 1);
    assert_eq!(device.chain_head(), ChainPoint::GENESIS);
    assert_eq!(
        device.record(draft(1)),
        Err(DeviceError::LostGenesis { reserved: 1 })
    );
    // Nothing more was reserved by the refusal.
    assert_eq!(device.store().last_reserved(), 1);
}

#[test]
fn outage_then_drain_in_order_and_only_receipts_free() {
    let mut device = new_device("line1-commission");
    record_n(&mut device, 0, 20);
    // Connected: the first 5 are published, the broker acks them, then the link drops.
    let published: Vec<u64> = device.outbox().take(5).map(|q| q.unwrap().seq).collect();
    assert_eq!(published, vec![1, 2, 3, 4, 5]);
    // More events while offline.
    record_n(&mut device, 20, 5);
    // Reconnected without a receipt: everything is offered again, oldest first.
    let again: Vec<u64> = device.outbox().map(|q| q.unwrap().seq).collect();
    assert_eq!(again, (1..=25).collect::<Vec<_>>());
    // Continuing on the same connection after seq 5.
    let rest: Vec<u64> = device.outbox_after(5).map(|q| q.unwrap().seq).collect();
    assert_eq!(rest, (6..=25).collect::<Vec<_>>());
    // The receipt frees through 12; an older receipt changes nothing; a receipt beyond the
    // newest message is clamped.
    assert_eq!(device.on_receipt(12).unwrap(), 12);
    assert_eq!(device.on_receipt(7).unwrap(), 12);
    let after: Vec<u64> = device.outbox().map(|q| q.unwrap().seq).collect();
    assert_eq!(after, (13..=25).collect::<Vec<_>>());
    assert_eq!(device.on_receipt(1_000).unwrap(), 25);
    assert_eq!(device.outbox().count(), 0);
    // The receipt survives a reboot.
    let mut device = reboot(device, layout());
    assert_eq!(device.released(), 25);
    assert_eq!(device.outbox().count(), 0);
    assert_eq!(device.record(draft(99)).unwrap(), 26);
}

#[test]
fn full_queue_refuses_new_events_without_spending_a_seq_until_a_receipt() {
    let store = EventStore::format(SmallFlash::new(), small_layout(), ChainPoint::GENESIS).unwrap();
    let mut device = Device::new(
        device_id("line1-commission"),
        FlashKeySigner::new(key("line1-commission")),
        store,
        TestClock::synced(T0),
    );
    let mut n = 0;
    let full = loop {
        match device.record(draft(n)) {
            Ok(_) => n += 1,
            Err(e) => break e,
        }
    };
    assert!(
        matches!(full, DeviceError::Storage(StorageError::QueueFull { .. })),
        "{full:?}"
    );
    let queued = device.chain_head().seq;
    assert_eq!(queued, u64::from(n));
    assert!(
        queued >= 10,
        "a 8 KiB queue holds more than {queued} events"
    );
    assert_eq!(device.store().last_reserved(), queued);
    assert_eq!(device.dropped(), 1);
    // Publishing (iterating the outbox) frees nothing.
    assert_eq!(device.outbox().count() as u64, queued);
    assert!(device.record(draft(n)).is_err());
    assert_eq!(device.dropped(), 2);
    // A receipt does.
    device.on_receipt(queued).unwrap();
    assert_eq!(device.record(draft(n)).unwrap(), queued + 1);
    let events = verified_outbox(&mut device);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].seq(), queued + 1);
}

#[test]
fn unsynchronised_clock_marks_events_and_uses_uptime() {
    let mut device = new_device("line1-commission");
    *device.clock_mut() = TestClock {
        now: None,
        uptime: 133_000, // now() advances it by 250 ms
    };
    device.record(draft(0)).unwrap();
    // SNTP arrives.
    device.clock_mut().now = Some(T0);
    device.record(draft(1)).unwrap();
    let events = verified_outbox(&mut device);
    let first = events[0].event();
    assert!(!first.clock_synced);
    assert_eq!(first.event_time.as_str(), "1970-01-01T00:02:13.250Z");
    let json = serde_json::to_value(first).unwrap();
    assert_eq!(json["prov:clockSynced"], serde_json::json!(false));
    let second = events[1].event();
    assert!(second.clock_synced);
    assert_eq!(second.event_time.as_str(), "2026-11-24T08:00:00.000Z");
    let json = serde_json::to_value(second).unwrap();
    assert!(json.get("prov:clockSynced").is_none());
    check_json_schema(&events);
}

#[test]
fn invalid_draft_is_refused_before_a_seq_is_reserved() {
    let mut device = new_device("line1-commission");
    device.record(draft(0)).unwrap();
    let mut bad = draft(1);
    bad.epc_list.clear();
    let err = device.record(bad).unwrap_err();
    assert!(
        matches!(
            err,
            DeviceError::Event(EventError::Required {
                field: "epcList or quantityList",
                ..
            })
        ),
        "{err:?}"
    );
    assert_eq!(device.store().last_reserved(), 1);
    assert_eq!(device.record(draft(2)).unwrap(), 2);
}

#[test]
fn oversized_event_is_refused_before_a_seq_is_reserved() {
    let mut device = new_device("line1-commission");
    let mut big = draft(0);
    big.epc_list = (0..400)
        .map(|n| item(&format!("LONG-SERIAL-{n:06}")))
        .collect();
    let err = device.record(big).unwrap_err();
    assert!(
        matches!(
            err,
            DeviceError::Cose(CoseError::TooLarge { max: 16384, .. })
        ),
        "{err:?}"
    );
    assert_eq!(device.store().last_reserved(), 0);
    assert_eq!(device.record(draft(1)).unwrap(), 1);
}

/// A signer that fails its first `failures` calls (a secure element with a bad I2C day).
struct Flaky {
    inner: FlashKeySigner,
    failures: usize,
}

impl Signer for Flaky {
    fn public_key(&self) -> PublicKey {
        self.inner.public_key()
    }

    fn sign(&mut self, message: &[u8]) -> Result<Signature, SignerError> {
        if self.failures > 0 {
            self.failures -= 1;
            return Err(SignerError::BadSignature(SignatureError::HighS));
        }
        self.inner.sign(message)
    }
}

#[test]
fn transient_signer_failures_are_retried_and_a_failure_is_a_gap_that_still_chains() {
    let store = EventStore::format(Flash::new(), layout(), ChainPoint::GENESIS).unwrap();
    let mut device = Device::new(
        device_id("line1-commission"),
        Flaky {
            inner: FlashKeySigner::new(key("line1-commission")),
            failures: 0,
        },
        store,
        TestClock::synced(T0),
    );
    device.record(draft(0)).unwrap();
    // Two failures, then success: retried within one record.
    let (signer, store, clock) = device.into_parts();
    let mut device = Device::new(
        device_id("line1-commission"),
        Flaky {
            failures: SIGN_ATTEMPTS - 1,
            ..signer
        },
        store,
        clock,
    );
    assert_eq!(device.record(draft(1)).unwrap(), 2);
    // Persistent failure: seq 3 is given up.
    let (signer, store, clock) = device.into_parts();
    let mut device = Device::new(
        device_id("line1-commission"),
        Flaky {
            failures: SIGN_ATTEMPTS,
            ..signer
        },
        store,
        clock,
    );
    let err = device.record(draft(2)).unwrap_err();
    assert!(matches!(err, DeviceError::Signer { seq: 3, .. }), "{err:?}");
    assert_eq!(device.record(draft(3)).unwrap(), 4);
    let key = device.public_key();
    let messages: Vec<_> = device.outbox().map(|q| q.unwrap()).collect();
    let events: Vec<_> = messages
        .iter()
        .map(|q| verify_event(&q.message, &key, &P256Backend).unwrap())
        .collect();
    let seqs: Vec<u64> = events.iter().map(|e| e.seq()).collect();
    assert_eq!(seqs, vec![1, 2, 4]);
    // Seq 4 chains over the gap to seq 2.
    check_chain(&events);
}

#[test]
fn message_len_matches_assembled_messages() {
    let key = key("line1-commission");
    for kid in ["a", "line1-commission", &"x".repeat(64)] {
        let kid = Kid::new(kid).unwrap();
        for len in [0usize, 1, 23, 24, 255, 256, 1000, 16_000] {
            let payload = vec![0xa0u8; len];
            match cose::sign_message(&kid, &payload, &key) {
                Ok(message) => assert_eq!(
                    message.len(),
                    prov_schemas::cose::signed_message_len(&kid, len)
                ),
                Err(CoseError::TooLarge { got, .. }) => {
                    assert_eq!(got, prov_schemas::cose::signed_message_len(&kid, len))
                }
                Err(e) => panic!("{e}"),
            }
        }
    }
}

#[test]
fn receipts_parse() {
    assert_eq!(parse_receipt(b"42"), Ok(42));
    assert_eq!(parse_receipt(b" 7\n"), Ok(7));
    assert_eq!(parse_receipt(b"0"), Ok(0));
    assert_eq!(parse_receipt(b"18446744073709551615"), Ok(u64::MAX));
    for bad in [
        &b""[..],
        b"-1",
        b"+3",
        b"1e3",
        b"12 13",
        b"18446744073709551616",
        b"\xff",
    ] {
        assert!(parse_receipt(bad).is_err(), "{bad:?}");
    }
    let mut device = new_device("line1-commission");
    record_n(&mut device, 0, 3);
    assert_eq!(device.on_receipt_payload(b"2").unwrap(), 2);
    assert!(device.on_receipt_payload(b"two").is_err());
    assert_eq!(device.released(), 2);
}

#[test]
fn reject_lines_parse_and_are_counted() {
    let hash = Hash32::blake3(b"x");
    let line = format!("17 bad-signature {}\n", hash.to_hex());
    let mut device = new_device("line1-commission");
    let reject = device.on_reject(line.as_bytes()).unwrap();
    assert_eq!(
        reject,
        Reject {
            seq: Some(17),
            reason: "bad-signature".into(),
            hash
        }
    );
    let anonymous = Reject::parse(format!("- malformed {}", hash.to_hex()).as_bytes()).unwrap();
    assert_eq!(anonymous.seq, None);
    assert_eq!(device.rejects(), 1);
    assert_eq!(device.last_reject(), Some(&reject));
    for bad in [
        String::new(),
        format!("17 {}", hash.to_hex()),
        format!("x reason {}", hash.to_hex()),
        format!("17 reason {}00", hash.to_hex()),
        format!("17  reason {}", hash.to_hex()),
        format!("17 reason {} extra", hash.to_hex()),
    ] {
        assert!(device.on_reject(bad.as_bytes()).is_err(), "{bad:?}");
    }
    // Rejects release nothing.
    assert_eq!(device.rejects(), 1);
    assert_eq!(device.released(), 0);
}

#[test]
fn topics() {
    let id = device_id("line1-packer");
    let t = Topics::new("factory-a", &id).unwrap();
    assert_eq!(t.events, "prov/v1/factory-a/line1-packer/events");
    assert_eq!(t.status, "prov/v1/factory-a/line1-packer/status");
    assert_eq!(t.receipts, "prov/v1/factory-a/line1-packer/receipts");
    assert_eq!(t.rejects, "prov/v1/factory-a/line1-packer/rejects");
    assert_eq!(
        Topics::parse(&t.receipts),
        Some(("factory-a", id, TopicKind::Receipts))
    );
    for bad in ["", "Factory", "a/b", "+", "#", "a b"] {
        assert!(Topics::new(bad, &id).is_err(), "{bad:?}");
    }
    for bad in [
        "prov/v1/factory-a/line1-packer",
        "prov/v2/factory-a/line1-packer/events",
        "prov/v1/factory-a/line1-packer/events/x",
        "prov/v1/factory-a/Line1/events",
        "prov/v1/factory-a/line1-packer/other",
    ] {
        assert_eq!(Topics::parse(bad), None, "{bad}");
    }
}
