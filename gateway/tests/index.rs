//! The sled indexes: live indexes equal a rebuild from the log, catch-up after a crash, the
//! queries, strict reindex, and a property test over random histories.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod verify_support;

use std::sync::OnceLock;

use proptest::prelude::*;
use prov_gateway::index::{IndexError, Indexes, LeafKind};
use prov_gateway::verify::{Decision, Incoming, LogView, MemoryView, Overlay, Verifier};
use prov_schemas::Hash32;
use prov_schemas::digital_link::DigitalLink;
use prov_schemas::event::Action;
use serde_json::json;
use verify_support::*;

/// The verify step over the sled indexes, as the sequencer drives it: verify a batch, append
/// the accepted entries to the log, apply them to the indexes.
struct SledGateway {
    verifier: Verifier,
    indexes: Indexes,
    log: Vec<Vec<u8>>,
}

impl SledGateway {
    fn new() -> SledGateway {
        SledGateway {
            verifier: verifier(),
            indexes: Indexes::temporary().expect("sled"),
            log: Vec::new(),
        }
    }

    fn batch(&mut self, items: &[Incoming<'_>]) -> Vec<Decision> {
        let first = self.log.len() as u64;
        let ds = self
            .verifier
            .verify_batch(&self.indexes, first, items)
            .expect("sled");
        let accepted: Vec<_> = ds
            .iter()
            .filter_map(|d| d.accepted().map(|a| &a.entry))
            .collect();
        self.log
            .extend(accepted.iter().map(|e| e.message().to_vec()));
        self.indexes
            .apply_batch(first, accepted.iter().map(|e| e.as_ref()))
            .expect("apply");
        ds
    }

    fn registry(&mut self, m: &[u8]) -> Decision {
        self.batch(&[Incoming::Registry {
            message: m,
            received_ms: 1,
        }])
        .remove(0)
    }

    fn events(&mut self, device: &str, ms: &[&[u8]]) -> Vec<Decision> {
        let t = topic(device);
        let items: Vec<_> = ms.iter().map(|m| incoming(&t, m)).collect();
        self.batch(&items)
    }

    fn entries(&self) -> impl Iterator<Item = (u64, &Vec<u8>)> {
        (0u64..).zip(&self.log)
    }
}

fn rebuilt(entries: impl IntoIterator<Item = (u64, Vec<u8>)>) -> Indexes {
    let copy = Indexes::temporary().expect("sled");
    copy.rebuild_from(entries).expect("rebuild");
    copy
}

fn dl(uri: &str) -> DigitalLink {
    DigitalLink::parse_canonical(uri).expect("uri")
}

/// A history with every kind of index entry: registrations, a transformation, aggregations
/// in and out, an association, gaps and fillers, duplicates, an equivocation, a revocation.
fn rich_history() -> SledGateway {
    let mut gw = SledGateway::new();
    for (i, d) in ["dryer", "packer", "palletizer", "sensor"]
        .iter()
        .enumerate()
    {
        let reg = registration(d, i as u32);
        assert!(gw.registry(&reg).accepted().is_some());
    }
    let mut dryer = Device::new("dryer");
    let t1 = dryer.next_json(json!({
        "type": "TransformationEvent",
        "eventTime": "2026-11-24T07:30:00.000Z",
        "eventTimeZoneOffset": "+01:00",
        "inputQuantityList": [{"epcClass": MILK_LOT, "quantity": 1500.5, "uom": "KGM"}],
        "outputQuantityList": [{"epcClass": POWDER_LOT, "quantity": 200.0, "uom": "KGM"}],
        "outputEPCList": [ITEM],
    }));
    let mut packer = Device::new("packer");
    let pack = |action: &str, item: &str, packer: &mut Device| {
        packer.next_json(json!({
            "type": "AggregationEvent",
            "eventTime": "2026-11-24T08:05:00.000Z",
            "eventTimeZoneOffset": "+01:00",
            "action": action,
            "parentID": CASE,
            "childEPCs": [item],
            "bizStep": "packing",
        }))
    };
    let p1 = pack("ADD", ITEM, &mut packer);
    let p2 = pack("ADD", ITEM_2, &mut packer);
    let p3 = pack("DELETE", ITEM_2, &mut packer);
    let p4 = pack("ADD", ITEM_2, &mut packer);
    let mut pal = Device::new("palletizer");
    let pl1 = pal.next_json(json!({
        "type": "AggregationEvent",
        "eventTime": "2026-11-24T08:20:00.000Z",
        "eventTimeZoneOffset": "+01:00",
        "action": "ADD",
        "parentID": PALLET,
        "childEPCs": [CASE],
    }));
    let pl2 = pal.next_json(json!({
        "type": "AssociationEvent",
        "eventTime": "2026-11-24T08:21:00.000Z",
        "eventTimeZoneOffset": "+01:00",
        "action": "ADD",
        "parentID": PALLET,
        "childEPCs": ["https://id.gs1.org/01/09506000134376/21/LOGGER-7"],
    }));
    let mut sensor = Device::new("sensor");
    let s: Vec<Vec<u8>> = (0..5).map(|_| sensor.next(PALLET)).collect();

    gw.events("dryer", &[&t1]);
    // p1, then p3 (gap at 2), then p2 fills it, p4 next, then p1 again (duplicate).
    gw.events("packer", &[&p1, &p3]);
    gw.events("packer", &[&p2, &p4, &p1]);
    gw.events("palletizer", &[&pl1, &pl2]);
    // Sensor: 1, 4 (gap 2..3), an equivocating twin of 1, 2 (fills), 5; 3 never comes.
    let twin = event("sensor", 1, Hash32::ZERO, ITEM);
    let ds = gw.events("sensor", &[&s[0], &s[3], &twin, &s[1], &s[4]]);
    assert_eq!(
        ds[2].code(),
        Some(prov_gateway::verify::RejectCode::Equivocation)
    );
    assert!(gw.registry(&revocation("sensor", 9)).accepted().is_some());
    gw
}

#[test]
fn reindex_on_a_copy_equals_the_live_indexes() {
    let gw = rich_history();
    let live = gw.indexes.digest().expect("digest");
    let copy = rebuilt(gw.entries().map(|(i, m)| (i, m.clone())));
    assert_eq!(copy.dump().expect("dump"), gw.indexes.dump().expect("dump"));
    assert_eq!(copy.digest().expect("digest"), live);
    // The same with every signature checked again.
    let full = Indexes::temporary().expect("sled");
    let verifier = verifier();
    let mut r = full
        .reindexer()
        .expect("reindexer")
        .with_signatures(&verifier);
    for (leaf, m) in gw.entries() {
        r.push(leaf, m).expect("push");
    }
    assert_eq!(r.finish().expect("finish"), gw.log.len() as u64);
    assert_eq!(full.digest().expect("digest"), live);
    // And into an on-disk copy, reopened.
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let disk = Indexes::open(dir.path().join("idx")).expect("open");
        disk.rebuild_from(gw.entries().map(|(i, m)| (i, m.as_slice())))
            .expect("rebuild");
    }
    let disk = Indexes::open(dir.path().join("idx")).expect("reopen");
    assert_eq!(disk.digest().expect("digest"), live);
    assert_eq!(disk.indexed_size().expect("size"), gw.log.len() as u64);
}

#[test]
fn queries() {
    let gw = rich_history();
    let idx = &gw.indexes;
    // Leaves: 0-3 registrations, 4 t1, 5 p1, 6 p3, 7 p2, 8 p4, 9 pl1, 10 pl2,
    // 11 s1, 12 s4, 13 s2, 14 s5, 15 revocation.
    assert_eq!(gw.log.len(), 16);
    assert_eq!(idx.product_leaves(&dl(ITEM)).expect("q"), vec![4, 5]);
    assert_eq!(idx.product_leaves(&dl(ITEM_2)).expect("q"), vec![6, 7, 8]);
    assert_eq!(idx.product_leaves(&dl(MILK_LOT)).expect("q"), vec![4]);
    assert_eq!(
        idx.product_leaves(&dl(PALLET)).expect("q"),
        vec![9, 10, 11, 12, 13, 14]
    );
    let children = idx.children(&dl(CASE)).expect("q");
    let summary: Vec<(String, Action, u64)> = children
        .iter()
        .map(|e| (e.other.canonical(), e.action, e.leaf))
        .collect();
    assert_eq!(
        summary,
        vec![
            (ITEM.to_string(), Action::Add, 5),
            (ITEM_2.to_string(), Action::Delete, 6),
            (ITEM_2.to_string(), Action::Add, 7),
            (ITEM_2.to_string(), Action::Add, 8),
        ]
    );
    let parents = idx.parents(&dl(ITEM_2)).expect("q");
    assert_eq!(parents.len(), 3);
    assert!(parents.iter().all(|e| e.other == dl(CASE)));
    assert_eq!(idx.parents(&dl(CASE)).expect("q")[0].other, dl(PALLET));
    // AssociationEvents are not containment.
    assert_eq!(idx.children(&dl(PALLET)).expect("q").len(), 1);
    let outs = idx.outputs_of(&dl(MILK_LOT)).expect("q");
    let mut outs: Vec<String> = outs.iter().map(|e| e.other.canonical()).collect();
    outs.sort();
    assert_eq!(outs, vec![POWDER_LOT.to_string(), ITEM.to_string()]);
    assert_eq!(idx.inputs_of(&dl(ITEM)).expect("q")[0].other, dl(MILK_LOT));
    assert_eq!(idx.inputs_of(&dl(ITEM)).expect("q")[0].leaf, 4);
    // Per-leaf facts.
    let info = idx.leaf_info(4).expect("q").expect("leaf 4");
    assert_eq!(info.kind, LeafKind::Event);
    assert_eq!(info.device, device("dryer"));
    assert_eq!(info.seq, Some(1));
    assert_eq!(info.event_time_ms, 1_795_505_400_000);
    assert_eq!(
        idx.leaf_info(15).expect("q").map(|i| i.kind),
        Some(LeafKind::Revocation)
    );
    assert_eq!(idx.leaf_info(16).expect("q"), None);
    // Chains, gaps, receipts.
    let sensor = device("sensor");
    assert_eq!(idx.gaps(&sensor).expect("q"), vec![(3, 3)]);
    assert_eq!(idx.contiguous_seq(&sensor).expect("q"), 2);
    assert_eq!(idx.head(&sensor).expect("q"), Some(5));
    assert_eq!(idx.gaps(&device("packer")).expect("q"), vec![]);
    assert_eq!(idx.contiguous_seq(&device("packer")).expect("q"), 4);
    assert_eq!(idx.contiguous_seq(&device("nobody")).expect("q"), 0);
    let chain: Vec<u64> = idx
        .chain(&sensor)
        .expect("q")
        .iter()
        .map(|(s, _)| *s)
        .collect();
    assert_eq!(chain, vec![1, 2, 4, 5]);
    // The registry: revoked sensor, its events still indexed.
    let state = idx.device_state(&sensor).expect("q").expect("registered");
    assert_eq!(state.revoked_at, Some(15));
    assert_eq!(state.registered_at, 3);
    assert_eq!(idx.devices().expect("q").len(), 4);
    assert_eq!(idx.link(&sensor, 1).expect("q").map(|l| l.leaf), Some(11));
}

#[test]
fn revoked_device_rejected_but_earlier_events_stay_indexed() {
    let mut gw = rich_history();
    let late = event("sensor", 6, Hash32::blake3(b"seq 5"), PALLET);
    let ds = gw.events("sensor", &[&late]);
    assert_eq!(
        ds[0].code(),
        Some(prov_gateway::verify::RejectCode::RevokedDevice)
    );
    assert_eq!(gw.log.len(), 16);
    assert_eq!(gw.indexes.product_leaves(&dl(PALLET)).expect("q").len(), 6);
}

#[test]
fn catch_up_after_a_crash_between_log_and_indexes() {
    let full = rich_history();
    let want = full.indexes.digest().expect("digest");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("idx");
    // The indexes saw only the first 9 leaves before the crash; the log has all 16.
    {
        let idx = Indexes::open(&path).expect("open");
        idx.rebuild_from(full.entries().take(9).map(|(i, m)| (i, m.clone())))
            .expect("partial");
    }
    let idx = Indexes::open(&path).expect("reopen");
    assert_eq!(idx.indexed_size().expect("size"), 9);
    let mut r = idx.reindexer().expect("reindexer");
    let from = r.next_leaf().expect("next");
    for (leaf, m) in full.entries().skip(from as usize) {
        r.push(leaf, m).expect("push");
    }
    assert_eq!(r.finish().expect("finish"), 16);
    assert_eq!(idx.digest().expect("digest"), want);
}

#[test]
fn catch_up_from_the_log_store() {
    use prov_ledger::store::{LogStore, StoreConfig};
    let full = rich_history();
    let want = full.indexes.digest().expect("digest");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = LogStore::open(StoreConfig::new(dir.path().join("log"))).expect("store");
    let entries: Vec<&[u8]> = full.log.iter().map(Vec::as_slice).collect();
    // The sequencer appended every batch, but the indexes committed only the first two.
    let idx = Indexes::open(dir.path().join("idx")).expect("open");
    for (n, chunk) in entries.chunks(5).enumerate() {
        let first = store.sequence(chunk).expect("sequence");
        if n < 2 {
            let parsed: Vec<_> = chunk
                .iter()
                .map(|m| prov_gateway::index::LoggedEntry::parse(m).expect("parse"))
                .collect();
            idx.apply_batch(first, parsed.iter().map(|e| e.as_ref()))
                .expect("apply");
        }
    }
    assert_eq!(idx.indexed_size().expect("size"), 10);
    assert_eq!(idx.catch_up(&store).expect("catch up"), 16);
    assert_eq!(idx.digest().expect("digest"), want);
    // Nothing to do the second time; a fresh copy catches up from 0 (the reindex command).
    assert_eq!(idx.catch_up(&store).expect("again"), 16);
    let copy = Indexes::temporary().expect("sled");
    assert_eq!(copy.catch_up(&store).expect("reindex"), 16);
    assert_eq!(copy.digest().expect("digest"), want);
    // Indexes ahead of the log are refused.
    let short_dir = tempfile::tempdir().expect("tempdir");
    let mut short = LogStore::open(StoreConfig::new(short_dir.path())).expect("store");
    short.sequence(&entries[..3]).expect("sequence");
    assert!(matches!(
        idx.catch_up(&short),
        Err(IndexError::AheadOfLog {
            indexed: 16,
            log: 3
        })
    ));
}

#[test]
fn reindex_is_strict() {
    let mut a = Device::new("dev-a");
    let reg = registration("dev-a", 0);
    let m1 = a.next(ITEM);
    let m2 = a.next(ITEM);
    let twin = event("dev-a", 1, Hash32::ZERO, ITEM_2);
    let broken = event("dev-a", 2, Hash32::blake3(b"x"), ITEM);
    let cases: Vec<(&str, Vec<Vec<u8>>)> = vec![
        ("event before registration", vec![m1.clone(), reg.clone()]),
        ("equivocation", vec![reg.clone(), m1.clone(), twin.clone()]),
        (
            "broken chain",
            vec![reg.clone(), m1.clone(), broken.clone()],
        ),
        ("duplicate", vec![reg.clone(), m1.clone(), m1.clone()]),
        (
            "registered twice",
            vec![reg.clone(), registration("dev-a", 1)],
        ),
        (
            "event after revocation",
            vec![reg.clone(), revocation("dev-a", 1), m1.clone()],
        ),
    ];
    for (what, log) in cases {
        let idx = Indexes::temporary().expect("sled");
        let err = idx.rebuild_from((0u64..).zip(log)).expect_err(what);
        assert!(
            matches!(err, IndexError::Inconsistent { .. }),
            "{what}: {err}"
        );
    }
    // Bytes that are not an entry.
    let idx = Indexes::temporary().expect("sled");
    let err = idx
        .rebuild_from([(0u64, reg.clone()), (1, vec![0xd2, 0x84])])
        .expect_err("garbage");
    assert!(matches!(err, IndexError::Entry { leaf: 1, .. }), "{err}");
    // A forged signature passes a parse-only reindex but not a signature-checking one.
    let forged = {
        let event: prov_schemas::event::Event =
            serde_json::from_value(object_json("dev-a", 2, Hash32::blake3(&m1), ITEM, 2))
                .expect("event");
        sign("dev-a", &event.encode_payload(), &key("mallory"))
    };
    let log = vec![reg.clone(), m1.clone(), forged];
    let idx = Indexes::temporary().expect("sled");
    assert_eq!(
        idx.rebuild_from((0u64..).zip(log.clone()))
            .expect("parse-only"),
        3
    );
    let idx = Indexes::temporary().expect("sled");
    let verifier = verifier();
    let mut r = idx.reindexer().expect("r").with_signatures(&verifier);
    r.push(0, &log[0]).expect("reg");
    r.push(1, &log[1]).expect("m1");
    let err = r.push(2, &log[2]).expect_err("forged");
    assert!(matches!(err, IndexError::Entry { leaf: 2, .. }), "{err}");
    // Out of order, and rebuilding into a non-empty index.
    let idx = Indexes::temporary().expect("sled");
    idx.rebuild_from([(0u64, reg.clone())]).expect("reg");
    let err = idx
        .rebuild_from([(1u64, m1.clone())])
        .expect_err("not empty");
    assert!(matches!(err, IndexError::NotEmpty { size: 1 }), "{err}");
    let mut r = idx.reindexer().expect("r");
    let err = r.push(2, &m2).expect_err("gap in leaves");
    assert!(
        matches!(
            err,
            IndexError::OutOfOrder {
                expected: 1,
                got: 2
            }
        ),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// Property test: random histories.
// ---------------------------------------------------------------------------------------------

const DEVICES: [&str; 3] = ["p-a", "p-b", "p-c"];
const CHAIN: usize = 7;

/// Signed once for all cases: each device's chain, an equivocating twin per seq, its
/// registration and revocation.
struct Pool {
    chains: Vec<Vec<Vec<u8>>>,
    twins: Vec<Vec<Vec<u8>>>,
    registrations: Vec<Vec<u8>>,
    revocations: Vec<Vec<u8>>,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let mut chains = Vec::new();
        let mut twins = Vec::new();
        for d in DEVICES {
            let mut dev = Device::new(d);
            let mut chain = Vec::new();
            let mut tw = Vec::new();
            for i in 0..CHAIN {
                let prev = dev.prev;
                let item = if i % 2 == 0 { ITEM } else { CASE };
                tw.push(event(d, dev.seq + 1, prev, ITEM_2));
                chain.push(dev.next(item));
            }
            chains.push(chain);
            twins.push(tw);
        }
        Pool {
            chains,
            twins,
            registrations: DEVICES.iter().map(|d| registration(d, 0)).collect(),
            revocations: DEVICES.iter().map(|d| revocation(d, 1)).collect(),
        }
    })
}

#[derive(Debug, Clone)]
enum Op {
    Deliver(usize, usize),
    Twin(usize, usize),
    Register(usize),
    Revoke(usize),
    Garbage,
    EndBatch,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => (0..DEVICES.len(), 0..CHAIN).prop_map(|(d, s)| Op::Deliver(d, s)),
        1 => (0..DEVICES.len(), 0..CHAIN).prop_map(|(d, s)| Op::Twin(d, s)),
        2 => (0..DEVICES.len()).prop_map(Op::Register),
        1 => (0..DEVICES.len()).prop_map(Op::Revoke),
        1 => Just(Op::Garbage),
        3 => Just(Op::EndBatch),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Over random histories (deliveries in any order, duplicates, twins, registrations and
    /// revocations at any point, batches of any size): the sled indexes decide exactly like the
    /// in-memory view, and a rebuild from the log equals the live indexes.
    #[test]
    fn rebuilt_indexes_equal_live_ones(ops in proptest::collection::vec(op(), 1..80)) {
        let pool = pool();
        let topics: Vec<String> = DEVICES.iter().map(|d| topic(d)).collect();
        let garbage = vec![0xd2u8, 0x84, 0x40];
        let mut batches: Vec<Vec<Incoming<'_>>> = vec![Vec::new()];
        for op in &ops {
            let item = match *op {
                Op::Deliver(d, s) => incoming(&topics[d], &pool.chains[d][s]),
                Op::Twin(d, s) => incoming(&topics[d], &pool.twins[d][s]),
                Op::Register(d) => Incoming::Registry { message: &pool.registrations[d], received_ms: 0 },
                Op::Revoke(d) => Incoming::Registry { message: &pool.revocations[d], received_ms: 0 },
                Op::Garbage => incoming(&topics[0], &garbage),
                Op::EndBatch => {
                    batches.push(Vec::new());
                    continue;
                }
            };
            if let Some(b) = batches.last_mut() {
                b.push(item);
            }
        }
        let mut gw = SledGateway::new();
        let mut reference = MemoryView::new();
        let mut ref_log: Vec<Vec<u8>> = Vec::new();
        let v = verifier();
        for batch in &batches {
            // Reference: one message at a time over the in-memory view.
            let mut want = Vec::new();
            for item in batch {
                let d = match *item {
                    Incoming::Event { topic, message, received_ms } => {
                        v.verify_event(&reference, topic, message, received_ms)
                    }
                    Incoming::Registry { message, received_ms } => {
                        v.verify_registry(&reference, message, received_ms)
                    }
                }
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
                if let Decision::Accept(a) = &d {
                    reference.apply(ref_log.len() as u64, a.entry.as_ref());
                    ref_log.push(a.entry.message().to_vec());
                }
                want.push(d);
            }
            let got = gw.batch(batch);
            prop_assert_eq!(got, want);
        }
        prop_assert_eq!(&gw.log, &ref_log);
        // Invariants: every device's seqs up to its head are logged or in a recorded gap.
        for d in DEVICES {
            let dev = device(d);
            let head = gw.indexes.head(&dev).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let gaps = gw.indexes.gaps(&dev).map_err(|e| TestCaseError::fail(e.to_string()))?;
            for seq in 1..=head.unwrap_or(0) {
                let logged = gw.indexes.link(&dev, seq).map_err(|e| TestCaseError::fail(e.to_string()))?.is_some();
                let in_gap = gaps.iter().any(|(f, t)| (*f..=*t).contains(&seq));
                prop_assert!(logged != in_gap, "{} seq {}: logged {} in gap {}", d, seq, logged, in_gap);
            }
        }
        let copy = rebuilt(gw.entries().map(|(i, m)| (i, m.clone())));
        prop_assert_eq!(copy.digest().ok(), gw.indexes.digest().ok());
        // An overlay on the rebuilt copy answers like the live indexes.
        let overlay = Overlay::new(&copy, gw.log.len() as u64);
        for d in DEVICES {
            let dev = device(d);
            prop_assert_eq!(overlay.head(&dev).ok(), gw.indexes.head(&dev).ok());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// The pipeline's order (issue 4, throughput): batch *n + 1* is verified over the indexes
    /// plus batch *n*'s delta ([`Overlay::with_delta`]) *before* batch *n* is applied to sled
    /// (and applied without a flush). Over random histories it decides exactly like verifying
    /// each batch after the previous one is indexed, and ends with the same indexes.
    #[test]
    fn pipelined_verification_decides_like_sequential(ops in proptest::collection::vec(op(), 1..80)) {
        let pool = pool();
        let topics: Vec<String> = DEVICES.iter().map(|d| topic(d)).collect();
        let mut batches: Vec<Vec<Incoming<'_>>> = vec![Vec::new()];
        for op in &ops {
            let item = match *op {
                Op::Deliver(d, s) => incoming(&topics[d], &pool.chains[d][s]),
                Op::Twin(d, s) => incoming(&topics[d], &pool.twins[d][s]),
                Op::Register(d) => Incoming::Registry { message: &pool.registrations[d], received_ms: 0 },
                Op::Revoke(d) => Incoming::Registry { message: &pool.revocations[d], received_ms: 0 },
                Op::Garbage | Op::EndBatch => {
                    batches.push(Vec::new());
                    continue;
                }
            };
            if let Some(b) = batches.last_mut() {
                b.push(item);
            }
        }
        let mut sequential = SledGateway::new();
        let v = verifier();
        let live = Indexes::temporary().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut log_len = 0u64;
        // (first leaf, accepted entries, delta) of the batch verified but not yet indexed.
        let mut pending: Option<(u64, Vec<prov_gateway::verify::Entry>, MemoryView)> = None;
        for batch in &batches {
            let want = sequential.batch(batch);
            let (got, delta) = match pending.take() {
                Some((first, entries, delta)) => {
                    let view = Overlay::with_delta(&live, delta, log_len);
                    let out = v.verify_batch_delta(&view, log_len, batch)
                        .map_err(|e| TestCaseError::fail(e.to_string()))?;
                    // Only now is the previous batch indexed.
                    live.apply_batch_unflushed(first, entries.iter().map(|e| e.as_ref()))
                        .map_err(|e| TestCaseError::fail(e.to_string()))?;
                    out
                }
                None => v.verify_batch_delta(&live, log_len, batch)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?,
            };
            prop_assert_eq!(&got, &want);
            let entries: Vec<_> = got.into_iter().filter_map(|d| match d {
                Decision::Accept(a) => Some(a.entry),
                _ => None,
            }).collect();
            let first = log_len;
            log_len += entries.len() as u64;
            pending = Some((first, entries, delta));
        }
        if let Some((first, entries, _)) = pending.take() {
            live.apply_batch_unflushed(first, entries.iter().map(|e| e.as_ref()))
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
        }
        prop_assert_eq!(log_len, sequential.log.len() as u64);
        prop_assert_eq!(live.digest().ok(), sequential.indexes.digest().ok());
    }
}

/// The per-device state [`Indexes`] keeps in memory (registry state, head, head link, gaps)
/// is loaded back from sled at open: a reopened copy answers every rule lookup like the live
/// one, including after gaps, a gap filler and a revocation.
#[test]
fn device_state_in_memory_survives_a_reopen() {
    let pool = pool();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("idx");
    let indexes = Indexes::open(&path).unwrap();
    let v = verifier();
    let mut leaf = 0u64;
    let mut run = |items: &[Incoming<'_>]| {
        let ds = v.verify_batch(&indexes, leaf, items).unwrap();
        let accepted: Vec<_> = ds.iter().filter_map(|d| d.accepted()).collect();
        indexes
            .apply_batch(leaf, accepted.iter().map(|a| a.entry.as_ref()))
            .unwrap();
        leaf += accepted.len() as u64;
        ds
    };
    let topics: Vec<String> = DEVICES.iter().map(|d| topic(d)).collect();
    let regs: Vec<Incoming<'_>> = (0..DEVICES.len())
        .map(|d| Incoming::Registry {
            message: &pool.registrations[d],
            received_ms: 0,
        })
        .collect();
    run(&regs);
    // Device 0: seq 1, 2, then 5 (gap 3..=4), then 3 (fills part of it).
    let c0 = &pool.chains[0];
    run(&[incoming(&topics[0], &c0[0]), incoming(&topics[0], &c0[1])]);
    run(&[incoming(&topics[0], &c0[4])]);
    let filled = run(&[incoming(&topics[0], &c0[2])]);
    assert!(matches!(filled[0], Decision::Accept(_)), "{filled:?}");
    // Device 1: two events, then revoked.
    let c1 = &pool.chains[1];
    run(&[incoming(&topics[1], &c1[0]), incoming(&topics[1], &c1[1])]);
    run(&[Incoming::Registry {
        message: &pool.revocations[1],
        received_ms: 0,
    }]);
    let answers = |ix: &Indexes| {
        DEVICES
            .iter()
            .map(|d| {
                let dev = device(d);
                let head = ix.head(&dev).unwrap();
                (
                    ix.device_state(&dev).unwrap(),
                    head,
                    head.map(|h| ix.link(&dev, h).unwrap()),
                    ix.gaps(&dev).unwrap(),
                    (1..=6)
                        .map(|s| ix.link(&dev, s).unwrap())
                        .collect::<Vec<_>>(),
                    ix.contiguous_seq(&dev).unwrap(),
                )
            })
            .collect::<Vec<_>>()
    };
    let before = answers(&indexes);
    assert_eq!(before[0].3, vec![(4, 4)]);
    assert!(before[1].0.unwrap().revoked_at.is_some());
    drop(indexes);
    let reopened = Indexes::open(&path).unwrap();
    assert_eq!(answers(&reopened), before);
}
