//! The verify step: every rejection class, idempotency, equivocation, gaps, revocation,
//! registry records and batches.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod verify_support;

use prov_gateway::quarantine::Quarantine;
use prov_gateway::verify::{
    Decision, Incoming, LogView, MemoryView, RejectCode, Rejection, Verifier, parse_event_topic,
    rejects_topic,
};
use prov_schemas::Hash32;
use prov_schemas::cose::MAX_MESSAGE_LEN;
use prov_schemas::keys::DeviceId;
use verify_support::*;

fn rejection(d: &Decision) -> &Rejection {
    match d {
        Decision::Reject(r) => r,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

fn assert_accepted(d: &Decision) {
    assert!(
        matches!(d, Decision::Accept(_)),
        "expected accept, got {d:?}"
    );
}

/// Checks the full contract of a rejection: its code, nothing logged, and the quarantine
/// keeping it with the reason and the raw bytes.
fn check_rejected(gw: &MemGateway, before: usize, d: &Decision, code: RejectCode, raw: &[u8]) {
    let r = rejection(d);
    assert_eq!(r.code, code, "detail: {}", r.detail);
    assert_eq!(gw.log.len(), before, "nothing enters the log");
    assert_eq!(r.hash, Hash32::blake3(raw));
    assert!(!r.detail.is_empty());
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut q, _) = Quarantine::open(dir.path().join("quarantine.log")).expect("open");
    let id = q
        .append(r, "prov/v1/factory-a/x/events", raw)
        .expect("append");
    let (q2, report) = Quarantine::open(dir.path().join("quarantine.log")).expect("reopen");
    assert_eq!(report.records, 1);
    let rec = q2.get(id).expect("get");
    assert_eq!(rec.code, code);
    assert_eq!(rec.detail, r.detail);
    assert_eq!(rec.hash, r.hash);
    assert_eq!(rec.seq, r.seq);
    if raw.len() <= MAX_MESSAGE_LEN {
        assert_eq!(rec.raw, raw);
    } else {
        assert!(rec.truncated);
        assert_eq!(rec.message_len, raw.len() as u64);
    }
    assert_eq!(q.counts().get(&code), Some(&1));
}

fn setup() -> (MemGateway, Device) {
    let mut gw = MemGateway::new();
    gw.register("dev-a");
    (gw, Device::new("dev-a"))
}

#[test]
fn a_linked_chain_is_accepted() {
    let (mut gw, mut dev) = setup();
    for i in 0..3 {
        let m = dev.next(ITEM);
        let d = gw.event("dev-a", &m);
        let a = d.accepted().expect("accepted");
        assert_eq!(a.gap, None);
        assert!(!a.fills_gap);
        assert_eq!(gw.leaf_of(&m), Some(1 + i));
    }
    assert_eq!(gw.state.head(&device("dev-a")).ok().flatten(), Some(3));
}

#[test]
fn oversize() {
    let (mut gw, _) = setup();
    let mut m = event("dev-a", 1, Hash32::ZERO, ITEM);
    m.resize(MAX_MESSAGE_LEN + 1, 0);
    let d = gw.event("dev-a", &m);
    check_rejected(&gw, 1, &d, RejectCode::Oversize, &m);
    assert_eq!(rejection(&d).device, Some(device("dev-a")));
    // A much larger message: the quarantine keeps its first 16 KiB, its length and its hash.
    let big = vec![0xd2u8; 100_000];
    let d = gw.event("dev-a", &big);
    check_rejected(&gw, 1, &d, RejectCode::Oversize, &big);
}

#[test]
fn bad_cbor() {
    let (mut gw, _) = setup();
    let k = key("dev-a");
    // Valid CBOR, not an event.
    let m = sign("dev-a", &[0xa1, 0x61, b'a', 0x01], &k);
    let d = gw.event("dev-a", &m);
    check_rejected(&gw, 1, &d, RejectCode::BadCbor, &m);
    // Not deterministic: an integer in a longer form than needed.
    let m = sign("dev-a", &[0x18, 0x01], &k);
    let d = gw.event("dev-a", &m);
    check_rejected(&gw, 1, &d, RejectCode::BadCbor, &m);
    // A valid event's payload followed by a stray byte.
    let event: prov_schemas::event::Event =
        serde_json::from_value(object_json("dev-a", 1, Hash32::ZERO, ITEM, 1)).expect("event");
    let payload = event.encode_payload();
    let mut garbage = payload.clone();
    garbage.push(0x00);
    let m = sign("dev-a", &garbage, &k);
    let d = gw.event("dev-a", &m);
    check_rejected(&gw, 1, &d, RejectCode::BadCbor, &m);
}

#[test]
fn bad_cose() {
    let (mut gw, _) = setup();
    let good = event("dev-a", 1, Hash32::ZERO, ITEM);
    let mut untagged = good.clone();
    untagged[0] = 0xd3;
    let mut trailing = good.clone();
    trailing.push(0);
    let mut unprotected = good.clone();
    // The unprotected map (A0) follows the protected bstr: 2 + 1 + protected length.
    let at = 2 + 1 + usize::from(good[2] & 0x1f);
    assert_eq!(unprotected[at], 0xa0);
    unprotected[at] = 0xa1;
    for m in [
        untagged,
        trailing,
        unprotected,
        good[..good.len() - 1].to_vec(),
        vec![],
    ] {
        let d = gw.event("dev-a", &m);
        check_rejected(&gw, 1, &d, RejectCode::BadCose, &m);
        assert_eq!(rejection(&d).seq, None);
    }
}

#[test]
fn high_s_is_rejected() {
    let (mut gw, _) = setup();
    let m = high_s(&event("dev-a", 1, Hash32::ZERO, ITEM));
    let d = gw.event("dev-a", &m);
    check_rejected(&gw, 1, &d, RejectCode::HighS, &m);
}

#[test]
fn unknown_device() {
    let (mut gw, _) = setup();
    let m = event("dev-b", 1, Hash32::ZERO, ITEM);
    let d = gw.event("dev-b", &m);
    check_rejected(&gw, 1, &d, RejectCode::UnknownDevice, &m);
    // The reject line carries the (unauthenticated) seq for the device's benefit.
    assert_eq!(
        rejection(&d).line(),
        format!("1 unknown-device {}", Hash32::blake3(&m))
    );
}

#[test]
fn revoked_device_rejected_after_revocation_earlier_events_kept() {
    let (mut gw, mut dev) = setup();
    let first = dev.next(ITEM);
    assert_accepted(&gw.event("dev-a", &first));
    assert_accepted(&gw.registry(&revocation("dev-a", 1)));
    let late = dev.next(ITEM);
    let d = gw.event("dev-a", &late);
    check_rejected(&gw, 3, &d, RejectCode::RevokedDevice, &late);
    // The earlier event stays logged, and resending it is still idempotent.
    assert_eq!(gw.leaf_of(&first), Some(1));
    assert_eq!(gw.event("dev-a", &first), Decision::Duplicate { leaf: 1 });
}

#[test]
fn bad_signature() {
    let (mut gw, _) = setup();
    let event: prov_schemas::event::Event =
        serde_json::from_value(object_json("dev-a", 1, Hash32::ZERO, ITEM, 1)).expect("event");
    // Signed by another key under dev-a's kid.
    let m = sign("dev-a", &event.encode_payload(), &key("mallory"));
    let d = gw.event("dev-a", &m);
    check_rejected(&gw, 1, &d, RejectCode::BadSignature, &m);
    // A flipped payload bit that keeps the payload valid is caught by the signature.
    let good = verify_support::event("dev-a", 1, Hash32::ZERO, ITEM);
    let mut flipped = good.clone();
    let pos = flipped
        .windows(6)
        .position(|w| w == b"ABC123")
        .expect("serial in payload");
    flipped[pos + 5] = b'4';
    let d = gw.event("dev-a", &flipped);
    check_rejected(&gw, 1, &d, RejectCode::BadSignature, &flipped);
}

#[test]
fn kid_mismatch() {
    let (mut gw, _) = setup();
    // dev-a signs (with its own key, under its kid) a payload claiming to be from dev-b.
    let event: prov_schemas::event::Event =
        serde_json::from_value(object_json("dev-b", 1, Hash32::ZERO, ITEM, 1)).expect("event");
    let m = sign("dev-a", &event.encode_payload(), &key("dev-a"));
    let d = gw.event("dev-a", &m);
    check_rejected(&gw, 1, &d, RejectCode::KidMismatch, &m);
}

#[test]
fn topic_mismatch() {
    let (mut gw, _) = setup();
    gw.register("dev-b");
    let m = event("dev-a", 1, Hash32::ZERO, ITEM);
    for topic in [
        topic("dev-b"),                               // another device's topic
        "prov/v1/factory-b/dev-a/events".to_string(), // another site
        "prov/v1/factory-a/dev-a/status".to_string(), // not an events topic
        "prov/v1/factory-a/Dev-A/events".to_string(), // not a device id
        "prov/v1//dev-a/events".to_string(),          // empty site
        "prov/v2/factory-a/dev-a/events".to_string(),
        "prov/v1/factory-a/dev-a/events/x".to_string(),
    ] {
        let d = gw.event_on(&topic, &m);
        check_rejected(&gw, 2, &d, RejectCode::TopicMismatch, &m);
    }
    // An operator-signed record on a device topic.
    let r = registration("dev-c", 2);
    let d = gw.event("dev-a", &r);
    check_rejected(&gw, 2, &d, RejectCode::TopicMismatch, &r);
    // The same message on its own topic is fine.
    assert_accepted(&gw.event("dev-a", &m));
}

#[test]
fn broken_chain() {
    let (mut gw, mut dev) = setup();
    assert_accepted(&gw.event("dev-a", &dev.next(ITEM)));
    // seq 2 pointing at something other than seq 1.
    let m = event("dev-a", 2, Hash32::blake3(b"not seq 1"), ITEM);
    let d = gw.event("dev-a", &m);
    check_rejected(&gw, 2, &d, RejectCode::BrokenChain, &m);
    assert_eq!(rejection(&d).seq, Some(2));
}

#[test]
fn gap_recorded_then_filled_and_bad_filler_is_replay() {
    let (mut gw, mut dev) = setup();
    let m1 = dev.next(ITEM);
    let m2 = dev.next(ITEM);
    let m3 = dev.next(ITEM);
    let m4 = dev.next(ITEM);
    assert_accepted(&gw.event("dev-a", &m1));
    let d = gw.event("dev-a", &m4);
    assert_eq!(d.accepted().map(|a| a.gap), Some(Some((2, 3))));
    // A filler for seq 3 that does not hash to seq 4's prev: replay.
    let wrong3 = event("dev-a", 3, Hash32::blake3(&m2), ITEM_2);
    let d = gw.event("dev-a", &wrong3);
    check_rejected(&gw, 3, &d, RejectCode::Replay, &wrong3);
    // A filler for seq 2 whose prev is not seq 1's hash: replay.
    let wrong2 = event("dev-a", 2, Hash32::blake3(b"x"), ITEM);
    let d = gw.event("dev-a", &wrong2);
    check_rejected(&gw, 3, &d, RejectCode::Replay, &wrong2);
    // The right fillers, in either order.
    let d = gw.event("dev-a", &m3);
    let a = d.accepted().expect("m3 accepted");
    assert!(a.fills_gap);
    assert_eq!(a.gap, None);
    let d = gw.event("dev-a", &m2);
    assert!(d.accepted().expect("m2 accepted").fills_gap);
    assert_eq!(gw.log.len(), 5);
    assert_eq!(gw.event("dev-a", &m3), Decision::Duplicate { leaf: 3 });
}

#[test]
fn first_event_above_one_records_a_gap_from_one() {
    let (mut gw, mut dev) = setup();
    let m1 = dev.next(ITEM);
    let m2 = dev.next(ITEM);
    let m3 = dev.next(ITEM);
    let d = gw.event("dev-a", &m3);
    assert_eq!(d.accepted().map(|a| a.gap), Some(Some((1, 2))));
    // seq 1 has no logged neighbour yet: accepted, checked later by seq 2.
    assert!(gw.event("dev-a", &m1).accepted().expect("m1").fills_gap);
    assert!(gw.event("dev-a", &m2).accepted().expect("m2").fills_gap);
}

#[test]
fn duplicates_are_idempotent_across_and_inside_batches() {
    let (mut gw, mut dev) = setup();
    let m1 = dev.next(ITEM);
    let m2 = dev.next(ITEM);
    assert_accepted(&gw.event("dev-a", &m1));
    assert_eq!(gw.event("dev-a", &m1), Decision::Duplicate { leaf: 1 });
    let t = topic("dev-a");
    let item = |m| incoming(&t, m);
    let m2c = m2.clone();
    let ds = gw.batch(&[item(&m2), item(&m1), item(&m2c)]);
    assert_accepted(&ds[0]);
    assert_eq!(ds[1], Decision::Duplicate { leaf: 1 });
    assert_eq!(ds[2], Decision::Duplicate { leaf: 2 }, "inside the batch");
    assert_eq!(gw.log.len(), 3);
    let ds = gw.batch(&[item(&m2)]);
    assert_eq!(ds[0], Decision::Duplicate { leaf: 2 }, "across batches");
    assert_eq!(gw.log.len(), 3);
}

#[test]
fn equivocation_is_rejected_with_evidence() {
    let (mut gw, mut dev) = setup();
    let m1 = dev.next(ITEM);
    assert_accepted(&gw.event("dev-a", &m1));
    // Another authentic message for seq 1.
    let twin = event("dev-a", 1, Hash32::ZERO, ITEM_2);
    let d = gw.event("dev-a", &twin);
    check_rejected(&gw, 2, &d, RejectCode::Equivocation, &twin);
    let r = rejection(&d);
    assert_eq!(r.evidence_of, Some(1), "the logged twin's leaf");
    assert_eq!(r.seq, Some(1));
    assert_eq!(r.device, Some(device("dev-a")));
    // Both are kept: the first in the log, the second in the quarantine; the device flagged.
    assert_eq!(gw.log[1], m1);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("quarantine.log");
    let (mut q, _) = Quarantine::open(&path).expect("open");
    let id = q.append(r, &topic("dev-a"), &twin).expect("append");
    assert!(q.is_flagged(&device("dev-a")));
    drop(q);
    let (q, _) = Quarantine::open(&path).expect("reopen");
    assert!(q.is_flagged(&device("dev-a")), "flags survive a restart");
    assert_eq!(q.flagged().get(&device("dev-a")), Some(&vec![id]));
    let rec = q.get(id).expect("get");
    assert_eq!(rec.raw, twin);
    assert_eq!(rec.evidence_of, Some(1));
    // An equivocating twin inside one batch.
    let m2 = dev.next(ITEM);
    let twin2 = event("dev-a", 2, Hash32::blake3(&m1), ITEM_2);
    let t = topic("dev-a");
    let ds = gw.batch(&[
        Incoming::Event {
            topic: &t,
            message: &m2,
            received_ms: 1,
        },
        Incoming::Event {
            topic: &t,
            message: &twin2,
            received_ms: 1,
        },
    ]);
    assert_accepted(&ds[0]);
    assert_eq!(rejection(&ds[1]).code, RejectCode::Equivocation);
    assert_eq!(rejection(&ds[1]).evidence_of, Some(2));
    assert_eq!(gw.leaf_of(&m2), Some(2));
}

#[test]
fn registry_records() {
    let mut gw = MemGateway::new();
    let reg = registration("dev-a", 0);
    assert_accepted(&gw.registry(&reg));
    // The same record again: idempotent.
    assert_eq!(gw.registry(&reg), Decision::Duplicate { leaf: 0 });
    // Another registration of a registered device.
    let again = registration("dev-a", 1);
    let d = gw.registry(&again);
    check_rejected(&gw, 1, &d, RejectCode::BadRegistry, &again);
    // Revoking a device never registered.
    let rev_b = revocation("dev-b", 1);
    let d = gw.registry(&rev_b);
    check_rejected(&gw, 1, &d, RejectCode::UnknownDevice, &rev_b);
    // Revoke, then revoke again, then try to register again.
    assert_accepted(&gw.registry(&revocation("dev-a", 2)));
    let rev_again = revocation("dev-a", 3);
    let d = gw.registry(&rev_again);
    check_rejected(&gw, 2, &d, RejectCode::RevokedDevice, &rev_again);
    let rereg = registration("dev-a", 4);
    let d = gw.registry(&rereg);
    check_rejected(&gw, 2, &d, RejectCode::RevokedDevice, &rereg);
    // An untrusted operator.
    let payload = prov_schemas::cose::CoseSign1::parse(&registration("dev-c", 5))
        .expect("parse")
        .payload()
        .to_vec();
    let rogue = sign("operator:rogue", &payload, &key("operator:rogue"));
    let d = gw.registry(&rogue);
    check_rejected(&gw, 2, &d, RejectCode::UnknownOperator, &rogue);
    // The trusted operator's kid, another key.
    let forged = registration_with("dev-c", &key("dev-c").public_key(), 5, &key("mallory"));
    let d = gw.registry(&forged);
    check_rejected(&gw, 2, &d, RejectCode::BadSignature, &forged);
    // A device-signed message on the registry path.
    let ev = event("dev-c", 1, Hash32::ZERO, ITEM);
    let d = gw.registry(&ev);
    check_rejected(&gw, 2, &d, RejectCode::BadRegistry, &ev);
    // An event payload signed by the operator.
    let ev_payload = prov_schemas::cose::CoseSign1::parse(&ev)
        .expect("parse")
        .payload()
        .to_vec();
    let odd = sign("operator:factory-a", &ev_payload, &operator_key());
    let d = gw.registry(&odd);
    check_rejected(&gw, 2, &d, RejectCode::BadRegistry, &odd);
    // A high-S registry record.
    let hs = high_s(&registration("dev-d", 6));
    let d = gw.registry(&hs);
    check_rejected(&gw, 2, &d, RejectCode::HighS, &hs);
}

#[test]
fn events_only_between_registration_and_revocation_in_one_batch() {
    let mut gw = MemGateway::new();
    let mut dev = Device::new("dev-a");
    let reg = registration("dev-a", 0);
    let m1 = dev.next(ITEM);
    let rev = revocation("dev-a", 1);
    let m2 = dev.next(ITEM);
    let t = topic("dev-a");
    let items = [
        Incoming::Event {
            topic: &t,
            message: &m1,
            received_ms: 1,
        },
        Incoming::Registry {
            message: &reg,
            received_ms: 1,
        },
        Incoming::Event {
            topic: &t,
            message: &m1,
            received_ms: 1,
        },
        Incoming::Registry {
            message: &rev,
            received_ms: 1,
        },
        Incoming::Event {
            topic: &t,
            message: &m2,
            received_ms: 1,
        },
    ];
    let ds = gw.batch(&items);
    assert_eq!(ds[0].code(), Some(RejectCode::UnknownDevice));
    assert_accepted(&ds[1]);
    assert_accepted(&ds[2]);
    assert_accepted(&ds[3]);
    assert_eq!(ds[4].code(), Some(RejectCode::RevokedDevice));
    assert_eq!(gw.log, vec![reg.clone(), m1.clone(), rev.clone()]);
}

#[test]
fn batch_decisions_equal_one_by_one_and_parallel() {
    // A mixed stream: chains with gaps, fillers, duplicates, equivocations, garbage.
    let mut a = Device::new("dev-a");
    let mut b = Device::new("dev-b");
    let a_msgs: Vec<Vec<u8>> = (0..6).map(|_| a.next(ITEM)).collect();
    let b_msgs: Vec<Vec<u8>> = (0..6).map(|_| b.next(ITEM_2)).collect();
    let twin = event("dev-a", 2, Hash32::blake3(&a_msgs[0]), ITEM_2);
    let stream: Vec<(String, Vec<u8>)> = vec![
        (topic("dev-a"), a_msgs[0].clone()),
        (topic("dev-b"), b_msgs[0].clone()),
        (topic("dev-a"), a_msgs[2].clone()),
        (topic("dev-b"), b_msgs[1].clone()),
        (topic("dev-a"), a_msgs[1].clone()),
        (topic("dev-a"), twin.clone()),
        (topic("dev-a"), a_msgs[0].clone()),
        (topic("dev-b"), b_msgs[4].clone()),
        (topic("dev-b"), b_msgs[3].clone()),
        (topic("dev-b"), vec![1, 2, 3]),
        (topic("dev-a"), a_msgs[5].clone()),
        (topic("dev-b"), b_msgs[2].clone()),
        (topic("dev-a"), a_msgs[3].clone()),
        (topic("dev-a"), a_msgs[4].clone()),
        (topic("dev-b"), b_msgs[5].clone()),
    ];
    let items: Vec<Incoming<'_>> = stream
        .iter()
        .map(|(t, m)| Incoming::Event {
            topic: t,
            message: m,
            received_ms: 7,
        })
        .collect();
    let run = |verifier: Verifier, chunk: usize| -> (Vec<Decision>, Vec<Vec<u8>>) {
        let mut gw = MemGateway::new();
        gw.verifier = verifier;
        gw.register("dev-a");
        gw.register("dev-b");
        let mut out = Vec::new();
        for c in items.chunks(chunk) {
            out.extend(gw.batch(c));
        }
        (out, gw.log)
    };
    let (one, log_one) = run(verifier(), 1);
    for (verifier, chunk) in [
        (verifier(), 4),
        (verifier(), items.len()),
        (verifier().with_workers(2), items.len()),
        (verifier().with_workers(3), 7),
    ] {
        let (ds, log) = run(verifier, chunk);
        assert_eq!(ds, one);
        assert_eq!(log, log_one);
    }
    let codes: Vec<Option<RejectCode>> = one.iter().map(Decision::code).collect();
    assert_eq!(codes[5], Some(RejectCode::Equivocation));
    assert_eq!(rejection(&one[5]).evidence_of, Some(6));
    assert_eq!(codes[9], Some(RejectCode::BadCose));
    assert!(one[4].accepted().expect("a1 fills").fills_gap);
    assert_eq!(one[6], Decision::Duplicate { leaf: 2 });
    assert_eq!(log_one.len(), 2 + 12);
}

#[test]
fn reject_codes_round_trip_and_lines() {
    for code in RejectCode::ALL {
        assert_eq!(code.as_str().parse::<RejectCode>(), Ok(code));
        assert!(
            code.as_str()
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'-')
        );
    }
    assert!("nope".parse::<RejectCode>().is_err());
    let r = Rejection {
        code: RejectCode::BadCose,
        detail: String::from("x"),
        seq: None,
        hash: Hash32::blake3(b""),
        evidence_of: None,
        device: None,
        received_ms: 0,
    };
    assert_eq!(
        r.line(),
        "- bad-cose af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
    );
}

#[test]
fn topics() {
    let t = parse_event_topic("prov/v1/factory-a/line1-packer/events").expect("topic");
    assert_eq!(t.site, "factory-a");
    assert_eq!(t.device.as_str(), "line1-packer");
    assert!(parse_event_topic("prov/v1/+/dev/events").is_err());
    assert!(parse_event_topic("prov/v1/a#/dev/events").is_err());
    assert!(parse_event_topic("prov/v1/site/dev").is_err());
    let dev = DeviceId::new("dev-a").expect("id");
    assert_eq!(
        rejects_topic("factory-a", &dev),
        "prov/v1/factory-a/dev-a/rejects"
    );
}

#[test]
fn the_verify_step_is_pure_over_any_view() {
    // The same message, the same state: the same decision, every time.
    let mut state = MemoryView::new();
    let v = verifier();
    let reg = registration("dev-a", 0);
    let d = v.verify_registry(&state, &reg, 0).expect("view");
    if let Decision::Accept(a) = &d {
        state.apply(0, a.entry.as_ref());
    }
    let m = event("dev-a", 1, Hash32::ZERO, ITEM);
    let d1 = v
        .verify_event(&state, &topic("dev-a"), &m, 9)
        .expect("view");
    let d2 = v
        .verify_event(&state, &topic("dev-a"), &m, 9)
        .expect("view");
    assert_eq!(d1, d2);
    assert_accepted(&d1);
}
