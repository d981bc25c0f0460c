//! Lineage over a generated factory history (issue 6): a simulated plant (3 lines: input lots,
//! transformations into powder lots, commissioned items declaring their lot, cases, pallets,
//! shipping) logged through the gateway's own pipeline; trace back and forward over the sled
//! indexes must return exactly the sets a brute-force walk over every decoded event of the log
//! finds, at every depth; time bounds cut containment.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::path::Path;

use prov_gateway::config::Config;
use prov_gateway::index::{Indexes, LoggedEntry};
use prov_gateway::keys;
use prov_gateway::lineage::{Bounds, Direction, Window, trace};
use prov_gateway::pipeline::{Item, now_ms};
use prov_gateway::service::open_offline;
use prov_ledger::store::{LogStore, StoreConfig};
use prov_schemas::digital_link::{DigitalLink, IdKind};
use prov_schemas::event::{Action, Event};
use prov_schemas::keys::OperatorName;
use prov_simulator::line::{LineConfig, Stop};
use prov_simulator::provision::{now, registration_record};

fn open_log(config: &Config) -> LogStore {
    // Free once the pipeline is dropped: its drop joins the indexer thread.
    LogStore::open(StoreConfig::new(config.log_dir())).unwrap()
}

/// Logs about `events` events of a 3-line plant; returns the decoded events with their leaves
/// and the caught-up indexes.
fn plant(dir: &Path, events: u64) -> (Vec<(u64, Event)>, Indexes) {
    let mut config = Config {
        data_dir: dir.to_path_buf(),
        origin: "lineage.test/prov/log/1".into(),
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
    let mut line = LineConfig::new("factory-a").unwrap();
    line.lines = 3;
    line.seed = 5;
    line.stop = Stop::Count(events);
    let stream = dir.join("stream.bin");
    prov_simulator::presign::presign(&line, &stream).unwrap();
    let mut file = std::io::BufReader::new(std::fs::File::open(&stream).unwrap());
    let mut messages = Vec::new();
    while let Some(r) = prov_simulator::presign::read_record(&mut file).unwrap() {
        messages.push(r);
    }

    let (mut pipeline, outbox) = open_offline(&config).unwrap();
    let operator = OperatorName::new("site").unwrap();
    let records: Vec<Item> = line
        .device_keys()
        .unwrap()
        .iter()
        .map(|(d, k)| {
            let (reply, _rx) = tokio::sync::oneshot::channel();
            Item::Registry {
                message: registration_record(*d, *k, now().unwrap(), operator, &op).unwrap(),
                received_ms: now_ms(),
                reply,
            }
        })
        .collect();
    pipeline.process(records, &outbox).unwrap();
    for chunk in messages.chunks(211) {
        let items = chunk
            .iter()
            .cloned()
            .map(|(topic, payload)| Item::Mqtt {
                publish: rumqttc::Publish::new(topic, rumqttc::QoS::AtLeastOnce, payload),
                generation: 0,
                received_ms: now_ms(),
            })
            .collect();
        pipeline.process(items, &outbox).unwrap();
    }
    drop(pipeline);
    let log = open_log(&config);
    let indexes = Indexes::open(config.index_dir()).unwrap();
    indexes.catch_up(&log).unwrap();

    let mut events = Vec::new();
    log.for_each_entry(0..log.size(), |leaf, m| {
        if let Ok(LoggedEntry::Event { event, .. }) = LoggedEntry::parse(m) {
            events.push((leaf, *event));
        }
        ControlFlow::Continue(())
    })
    .unwrap();
    (events, indexes)
}

/// The oracle: one hop of lineage read straight off the decoded events, with no index and no
/// intervals (an all-time trace: a child was in a parent if any ADD or OBSERVE put it there).
fn neighbours(events: &[(u64, Event)], id: &str, direction: Direction) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (_, e) in events {
        for c in e.containment_edges() {
            if c.action != Action::Delete && c.child.canonical() == id {
                out.insert(c.parent.canonical());
            }
        }
        for (input, output) in e.transformation_edges() {
            match direction {
                Direction::Back if output.canonical() == id => {
                    out.insert(input.canonical());
                }
                Direction::Forward if input.canonical() == id => {
                    out.insert(output.canonical());
                }
                _ => {}
            }
        }
        for (item, lot) in e.declared_lots() {
            match direction {
                Direction::Back if item.canonical() == id => {
                    out.insert(lot.canonical());
                }
                Direction::Forward if lot.canonical() == id => {
                    out.insert(item.canonical());
                }
                _ => {}
            }
        }
    }
    out
}

fn oracle(
    events: &[(u64, Event)],
    start: &str,
    direction: Direction,
    depth: u32,
) -> BTreeSet<String> {
    let mut seen: BTreeSet<String> = [start.to_owned()].into();
    let mut frontier = seen.clone();
    for _ in 0..depth {
        let mut next = BTreeSet::new();
        for id in &frontier {
            for n in neighbours(events, id, direction) {
                if seen.insert(n.clone()) {
                    next.insert(n);
                }
            }
        }
        frontier = next;
    }
    seen
}

fn traced(
    indexes: &Indexes,
    start: &str,
    direction: Direction,
    bounds: Bounds,
) -> BTreeSet<String> {
    let g = trace(
        indexes,
        &DigitalLink::parse_canonical(start).unwrap(),
        direction,
        bounds,
    )
    .unwrap();
    assert!(!g.truncated);
    g.nodes.into_iter().map(|n| n.id).collect()
}

#[test]
fn traces_match_a_brute_force_walk_of_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let (events, indexes) = plant(tmp.path(), 2_500);

    // Starting points of every kind the history has.
    let mut items = BTreeSet::new();
    let mut input_lots = BTreeSet::new();
    let mut product_lots = BTreeSet::new();
    for (_, e) in &events {
        for (item, lot) in e.declared_lots() {
            items.insert(item.canonical());
            product_lots.insert(lot.canonical());
        }
        for (input, _) in e.transformation_edges() {
            input_lots.insert(input.canonical());
        }
    }
    assert!(items.len() > 20, "{} items", items.len());
    assert!(input_lots.len() >= 2 && product_lots.len() >= 2);

    let mut checked = 0;
    for start in items
        .iter()
        .step_by(7)
        .chain(&input_lots)
        .chain(&product_lots)
    {
        for direction in [Direction::Back, Direction::Forward] {
            for depth in [1, 2, 3, 6] {
                let bounds = Bounds {
                    max_depth: depth,
                    ..Bounds::default()
                };
                let want = oracle(&events, start, direction, depth);
                let got = traced(&indexes, start, direction, bounds);
                assert_eq!(got, want, "{direction:?} from {start} at depth {depth}");
                checked += 1;
            }
        }
    }
    assert!(checked > 40);

    // Back from an item: its case, its pallet, its lot and the lot's inputs.
    let item = items.iter().next().unwrap();
    let back = trace(
        &indexes,
        &DigitalLink::parse_canonical(item).unwrap(),
        Direction::Back,
        Bounds::default(),
    )
    .unwrap();
    let kinds: BTreeSet<IdKind> = back.nodes.iter().map(|n| n.kind).collect();
    assert!(
        kinds.contains(&IdKind::Lot) && kinds.contains(&IdKind::Sscc),
        "{kinds:?}"
    );
    // Every leaf the answer cites is an event that names one of its nodes.
    let ids: BTreeSet<&str> = back.nodes.iter().map(|n| n.id.as_str()).collect();
    for leaf in back.leaves() {
        let (_, e) = events.iter().find(|(l, _)| *l == leaf).unwrap();
        assert!(
            e.identifiers()
                .iter()
                .any(|i| ids.contains(i.canonical().as_str())),
            "leaf {leaf}"
        );
    }

    // Forward from an input lot reaches items, and the cases and pallets that held them.
    let lot = input_lots.iter().next().unwrap();
    let fwd = trace(
        &indexes,
        &DigitalLink::parse_canonical(lot).unwrap(),
        Direction::Forward,
        Bounds::default(),
    )
    .unwrap();
    assert!(fwd.nodes_of_kind(IdKind::Item).count() > 0);
    assert!(fwd.nodes_of_kind(IdKind::Sscc).count() > 0);
}

#[test]
fn time_bounds_cut_containment() {
    let tmp = tempfile::tempdir().unwrap();
    let (events, indexes) = plant(tmp.path(), 1_200);
    // An item that was packed: before its packing it was in no case; from it on it was.
    let (pack_time, item) = events
        .iter()
        .find_map(|(_, e)| {
            let c = e
                .containment_edges()
                .into_iter()
                .find(|c| c.action == Action::Add && c.child.kind() == IdKind::Item)?;
            Some((e.event_time.unix_millis(), c.child.canonical()))
        })
        .unwrap();
    let containers = |window: Window| {
        let b = Bounds {
            window,
            ..Bounds::default()
        };
        let g = trace(
            &indexes,
            &DigitalLink::parse_canonical(&item).unwrap(),
            Direction::Back,
            b,
        )
        .unwrap();
        g.nodes_of_kind(IdKind::Sscc).count()
    };
    assert_eq!(
        containers(Window {
            from: 0,
            to: pack_time
        }),
        0
    );
    assert!(
        containers(Window {
            from: pack_time,
            to: u64::MAX
        }) > 0
    );
    assert!(containers(Window::ALL) > 0);
}
