//! `EventStore` behaviour at its edges: what a lost reservation and a lost state record do to
//! the chain, the queue-full policy, provisioning and refusals.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod powercut_common;

use powercut_common::*;
use prov_firmware::storage::{ChainPoint, EventStore, Layout, StorageError};
use prov_schemas::Hash32;

fn fresh() -> Store {
    Store::format(Flash::new(), layout(), ChainPoint::GENESIS).unwrap()
}

fn event(store: &mut Store, filler: usize) -> Vec<u8> {
    let r = store.reserve(42 + filler).unwrap();
    let m = make_message(r.seq(), r.prev(), filler);
    store.commit(r, &m).unwrap();
    m
}

#[test]
fn first_event_is_seq_1_with_zero_prev_and_events_chain() {
    let mut store = fresh();
    let r = store.reserve(100).unwrap();
    assert_eq!((r.seq(), r.prev()), (1, Hash32::ZERO));
    let m1 = make_message(1, r.prev(), 10);
    store.commit(r, &m1).unwrap();
    let r = store.reserve(100).unwrap();
    assert_eq!((r.seq(), r.prev()), (2, Hash32::blake3(&m1)));
    assert_eq!(
        store.chain_head(),
        ChainPoint {
            seq: 1,
            hash: Hash32::blake3(&m1)
        }
    );
}

#[test]
fn reservation_lost_before_queueing_becomes_a_gap_that_still_chains() {
    let mut store = fresh();
    let m1 = event(&mut store, 10);
    // Seq 2 is reserved (durable), then power is lost before its message is queued.
    let r2 = store.reserve(100).unwrap();
    assert_eq!(r2.seq(), 2);
    drop(r2);
    let mut store = Store::open(store.into_flash(), layout()).unwrap();
    // After the reboot: seq 2 is never handed out again; seq 3 chains to message 1.
    let r3 = store.reserve(100).unwrap();
    assert_eq!((r3.seq(), r3.prev()), (3, Hash32::blake3(&m1)));
}

#[test]
fn message_queued_but_record_not_written_is_recovered_from_the_queue() {
    let mut store = fresh();
    event(&mut store, 10);
    let r = store.reserve(100).unwrap();
    let m2 = make_message(r.seq(), r.prev(), 20);
    store.commit(r, &m2).unwrap();
    // Power lost now: the newest state record still says the chain head is message 1.
    let mut store = Store::open(store.into_flash(), layout()).unwrap();
    assert_eq!(
        store.chain_head(),
        ChainPoint {
            seq: 2,
            hash: Hash32::blake3(&m2)
        }
    );
    let r3 = store.reserve(100).unwrap();
    assert_eq!((r3.seq(), r3.prev()), (3, Hash32::blake3(&m2)));
}

#[test]
fn a_reservation_that_is_never_committed_leaves_a_gap_without_reboot() {
    let mut store = fresh();
    let m1 = event(&mut store, 1);
    let lost = store.reserve(100).unwrap(); // signing failed, say
    let r3 = store.reserve(100).unwrap();
    assert_eq!((r3.seq(), r3.prev()), (3, Hash32::blake3(&m1)));
    assert_eq!(
        store.commit(lost, b"EV too late"),
        Err(StorageError::StaleReservation { got: 2, newest: 3 })
    );
    let too_big = vec![0u8; 101];
    assert_eq!(
        store.commit(r3, &too_big),
        Err(StorageError::ExceedsReservation {
            seq: 3,
            got: 101,
            reserved: 100
        })
    );
}

#[test]
fn full_queue_refuses_the_newest_without_burning_a_seq() {
    let mut store = fresh();
    let mut n = 0;
    loop {
        match store.reserve(1000) {
            Ok(r) => {
                let m = make_message(r.seq(), r.prev(), 1000 - 42);
                store.commit(r, &m).unwrap();
                n += 1;
            }
            Err(StorageError::QueueFull { need, free }) => {
                assert_eq!(need, 1000);
                assert!(free < 1000);
                break;
            }
            Err(e) => panic!("{e}"),
        }
    }
    let before = store.flash().as_bytes().to_vec();
    let reserved = store.last_reserved();
    for _ in 0..5 {
        assert!(matches!(
            store.reserve(1000),
            Err(StorageError::QueueFull { .. })
        ));
    }
    assert_eq!(store.dropped(), 6);
    assert_eq!(store.last_reserved(), reserved, "no seq consumed");
    assert_eq!(store.flash().as_bytes(), &before[..], "nothing written");
    // A smaller event may still fit; then a receipt frees space and seqs continue densely.
    store.release_through(n).unwrap();
    let r = store.reserve(1000).unwrap();
    assert_eq!(r.seq(), reserved + 1);
}

#[test]
fn receipts_release_only_what_they_cover_and_survive_reboots() {
    let mut store = fresh();
    for _ in 0..6 {
        event(&mut store, 50);
    }
    assert_eq!(store.release_through(4).unwrap(), 4);
    // Broker PUBACKs are not receipts: there is no call for them; publishing frees nothing.
    let first = store.first_unreleased().unwrap().unwrap();
    assert_eq!(first.seq(), 5);
    let mut store = Store::open(store.into_flash(), layout()).unwrap();
    assert_eq!(store.released(), 4);
    assert_eq!(store.first_unreleased().unwrap().map(|e| e.seq()), Some(5));
    // Clamped to the newest message; never backwards.
    assert_eq!(store.release_through(1_000).unwrap(), 6);
    assert_eq!(store.release_through(2).unwrap(), 6);
    assert!(store.first_unreleased().unwrap().is_none());
}

#[test]
fn provisioning_and_refusals() {
    // A blank device refuses to start rather than begin at seq 1 by accident.
    assert!(matches!(
        Store::open(Flash::new(), layout()),
        Err(StorageError::NotProvisioned { .. })
    ));
    // Overlapping regions.
    assert!(matches!(
        Store::format(
            Flash::new(),
            Layout {
                state: 0..1024,
                queue: 512..4096
            },
            ChainPoint::GENESIS
        ),
        Err(StorageError::BadRegion { .. })
    ));
    // Re-provisioning a device whose state was lost: resume after what the gateway holds.
    let resume = ChainPoint {
        seq: 41,
        hash: Hash32::blake3(b"message 41"),
    };
    let mut store = Store::format(Flash::new(), layout(), resume).unwrap();
    let r = store.reserve(64).unwrap();
    assert_eq!((r.seq(), r.prev()), (42, resume.hash));
}

#[test]
fn a_rolled_back_state_partition_is_refused() {
    let mut store = fresh();
    event(&mut store, 1);
    let old_state = store.flash().as_bytes()[..1024].to_vec();
    for _ in 0..3 {
        event(&mut store, 1);
    }
    let mut flash = store.into_flash();
    flash.as_bytes_mut()[..1024].copy_from_slice(&old_state);
    assert_eq!(
        EventStore::open(flash, layout()).unwrap_err(),
        StorageError::StateBehindQueue { queue: 4, state: 1 }
    );
}

/// The number of mutations `commit` of a 72-byte message makes on a copy of `store`'s flash.
fn commit_mutations(store: &Store) -> u64 {
    let mut probe = Store::open(store.flash().clone(), layout()).unwrap();
    let r = probe.reserve(100).unwrap();
    let m = make_message(r.seq(), r.prev(), 30);
    let before = probe.flash().mutations();
    probe.commit(r, &m).unwrap();
    probe.flash().mutations() - before
}

fn queued(store: &mut Store) -> Vec<u64> {
    let mut v = Vec::new();
    let mut cur = store.first_unreleased().unwrap();
    while let Some(e) = cur {
        v.push(e.seq());
        cur = store.next(&e).unwrap();
    }
    v
}

#[test]
fn failed_last_write_that_did_not_land_is_a_gap() {
    let mut store = fresh();
    event(&mut store, 1);
    let writes = commit_mutations(&store);
    let r = store.reserve(100).unwrap();
    let m = make_message(r.seq(), r.prev(), 30);
    let at = store.flash().mutations() + writes - 1;
    store.flash_mut().fail_op(at);
    assert!(matches!(
        store.commit(r, &m),
        Err(StorageError::Flash { .. })
    ));
    assert_eq!(store.chain_head().seq, 1);
    let r = store.reserve(100).unwrap();
    assert_eq!(r.seq(), 3);
    let m3 = make_message(r.seq(), r.prev(), 30);
    store.commit(r, &m3).unwrap();
    let mut store = Store::open(store.into_flash(), layout()).unwrap();
    assert_eq!(queued(&mut store), vec![1, 3]);
}

#[test]
fn failed_last_write_that_landed_is_resolved_by_read_back() {
    let mut store = fresh();
    event(&mut store, 1);
    let writes = commit_mutations(&store);
    let r = store.reserve(100).unwrap();
    let m = make_message(r.seq(), r.prev(), 30);
    let at = store.flash().mutations() + writes - 1;
    store.flash_mut().fail_op_landed(at);
    // The driver reported an error, but the message is complete on flash: it is queued, and it
    // is the chain head.
    store.commit(r, &m).unwrap();
    assert_eq!(
        store.chain_head(),
        ChainPoint {
            seq: 2,
            hash: Hash32::blake3(&m)
        }
    );
    let r = store.reserve(100).unwrap();
    assert_eq!((r.seq(), r.prev()), (3, Hash32::blake3(&m)));
    drop(r);
    assert_eq!(queued(&mut store), vec![1, 2]);
}

#[test]
fn wear_is_spread_over_every_sector() {
    // 600 events, a receipt every 4: the state log and the queue each rotate evenly.
    let mut store = fresh();
    let mut seq = 0;
    for i in 0..600u64 {
        event(&mut store, (i as usize * 37) % 300);
        seq += 1;
        if i % 4 == 3 {
            store.release_through(seq).unwrap();
        }
    }
    let flash = store.flash();
    let state: Vec<u32> = (0..2).map(|s| flash.sector_erases(s)).collect();
    let queue: Vec<u32> = (2..24).map(|s| flash.sector_erases(s)).collect();
    // 600 reservations + 150 receipts + 1 = 751 records, 8 per 512-byte sector.
    let state_total: u32 = state.iter().sum();
    assert!((92..=96).contains(&state_total), "state erases {state:?}");
    assert!(state[0].abs_diff(state[1]) <= 1, "state erases {state:?}");
    let (lo, hi) = (queue.iter().min().unwrap(), queue.iter().max().unwrap());
    assert!(hi - lo <= 1, "queue erases {queue:?}");
    assert!(*lo >= 5, "queue erases {queue:?}");
}
