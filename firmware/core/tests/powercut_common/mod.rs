//! A device and gateway simulation over [`EventStore`] on a [`MemFlash`] that can lose power,
//! checking SPEC §2/§3 invariants: seqs never reused, the hash chain never broken, nothing that
//! `commit` acknowledged ever lost, messages delivered oldest first.

#![allow(dead_code)]

use std::collections::BTreeMap;

use prov_firmware::storage::mem_flash::{MemFlash, Tear};
use prov_firmware::storage::{ChainPoint, EventStore, Layout, StorageError};
use prov_schemas::Hash32;

/// 24 sectors of 512 bytes: a 2-sector state log and a 22-sector queue.
pub type Flash = MemFlash<12288, 512, 4>;
pub type Store = EventStore<Flash>;

pub fn layout() -> Layout {
    Layout {
        state: 0..1024,
        queue: 1024..12288,
    }
}

/// What the device does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Create, sign and queue an event with this much filler.
    Event(usize),
    /// The network is up: publish every unreleased message, the gateway stores them and its
    /// receipt comes back.
    Deliver,
    /// Published and PUBACKed by the broker, but the gateway's receipt is not received.
    DeliverNoReceipt,
    /// A clean reboot.
    Reboot,
}

/// A message: "EV", seq, prev, filler. The store never looks inside; the gateway does.
pub fn make_message(seq: u64, prev: Hash32, filler: usize) -> Vec<u8> {
    let mut out = b"EV".to_vec();
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(prev.as_bytes());
    out.extend((0..filler).map(|i| (i as u64 ^ seq) as u8));
    out
}

pub fn parse_message(bytes: &[u8]) -> (u64, Hash32) {
    assert_eq!(&bytes[..2], b"EV");
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&bytes[2..10]);
    let mut prev = [0u8; 32];
    prev.copy_from_slice(&bytes[10..42]);
    (u64::from_le_bytes(seq), Hash32(prev))
}

/// The gateway: stores each message once, checks that a seq never comes with other bytes.
#[derive(Default)]
pub struct Gateway {
    pub stored: BTreeMap<u64, Vec<u8>>,
    /// Seqs in the order they were first stored.
    pub arrival: Vec<u64>,
}

impl Gateway {
    pub fn receive(&mut self, bytes: Vec<u8>) {
        let (seq, _) = parse_message(&bytes);
        match self.stored.get(&seq) {
            Some(old) => assert_eq!(old, &bytes, "seq {seq} reused for different bytes"),
            None => {
                self.stored.insert(seq, bytes);
                self.arrival.push(seq);
            }
        }
    }

    /// The receipt: highest seq stored (delivery is in order and the chain is checked at the
    /// end; a gap whose neighbours chain is a lost reservation, not a lost message).
    pub fn receipt(&self) -> u64 {
        self.stored.keys().next_back().copied().unwrap_or(0)
    }

    /// Every stored message's prev is the hash of the stored message before it (zero first);
    /// seqs first arrived in increasing order.
    pub fn check_chain(&self, context: &str) {
        let mut prev = Hash32::ZERO;
        for (seq, bytes) in &self.stored {
            let (s, p) = parse_message(bytes);
            assert_eq!(s, *seq);
            assert_eq!(
                p, prev,
                "{context}: seq {seq} does not chain to the message before it"
            );
            prev = Hash32::blake3(bytes);
        }
        assert!(
            self.arrival.windows(2).all(|w| w[0] < w[1]),
            "{context}: new seqs arrived out of order: {:?}",
            self.arrival
        );
    }
}

pub struct Outcome {
    pub mutations: u64,
    pub gateway: Gateway,
    pub committed: Vec<u64>,
    pub dropped: u32,
    pub reboots: u32,
}

/// Runs `script` from a freshly provisioned device, losing power at each `(mutation, tear)` in
/// `cuts` (mutation indexes counted from after provisioning). After every power loss the device
/// reboots (reopens the store) and moves on to the next step. At the end: a clean reboot, a full
/// delivery, and every invariant checked.
pub fn run(script: &[Step], cuts: &[(u64, Tear)], context: &str) -> Outcome {
    let flash = Flash::new();
    let mut store = Store::format(flash, layout(), ChainPoint::GENESIS).unwrap();
    let base = store.flash().mutations();
    for &(at, tear) in cuts {
        store.flash_mut().cut_power_at(base + at, tear);
    }
    let mut gateway = Gateway::default();
    let mut committed = Vec::new();
    let mut max_reserved = 0u64;
    let mut dropped = 0u32;
    let mut reboots = 0u32;

    let reboot = |store: Store, reboots: &mut u32, dropped: &mut u32| -> Store {
        *dropped += store.dropped();
        let mut flash = store.into_flash();
        flash.power_on();
        *reboots += 1;
        Store::open(flash, layout()).unwrap_or_else(|e| panic!("{context}: reopen failed: {e}"))
    };

    for (i, step) in script.iter().enumerate() {
        let result: Result<(), StorageError<_>> = (|| {
            match *step {
                Step::Event(filler) => {
                    let len = 42 + filler;
                    let r = match store.reserve(len) {
                        Err(StorageError::QueueFull { .. }) => return Ok(()),
                        other => other?,
                    };
                    assert!(
                        r.seq() > max_reserved,
                        "{context}: step {i}: seq {} handed out again (max so far {max_reserved})",
                        r.seq()
                    );
                    max_reserved = r.seq();
                    let seq = r.seq();
                    let message = make_message(seq, r.prev(), filler);
                    store.commit(r, &message)?;
                    committed.push(seq);
                }
                Step::Deliver | Step::DeliverNoReceipt => {
                    let mut last = 0;
                    let mut cur = store.first_unreleased()?;
                    while let Some(entry) = cur {
                        assert!(entry.seq() > last, "{context}: delivery out of order");
                        last = entry.seq();
                        gateway.receive(store.read_vec(&entry)?);
                        cur = store.next(&entry)?;
                    }
                    if *step == Step::Deliver {
                        store.release_through(gateway.receipt())?;
                    }
                }
                Step::Reboot => {}
            }
            Ok(())
        })();
        match result {
            Ok(()) if *step == Step::Reboot => {
                store = reboot(store, &mut reboots, &mut dropped);
            }
            Ok(()) => {}
            Err(e) => {
                assert!(
                    !store.flash().is_powered(),
                    "{context}: step {i} {step:?} failed with power on: {e}"
                );
                store = reboot(store, &mut reboots, &mut dropped);
            }
        }
    }
    let mutations = store.flash().mutations() - base;
    // Final: clean reboot, deliver everything (no more faults from here).
    store.flash_mut().clear_faults();
    let mut store = reboot(store, &mut reboots, &mut dropped);
    let mut cur = store.first_unreleased().unwrap();
    while let Some(entry) = cur {
        gateway.receive(store.read_vec(&entry).unwrap());
        cur = store.next(&entry).unwrap();
    }
    store.release_through(gateway.receipt()).unwrap();
    gateway.check_chain(context);
    for seq in &committed {
        assert!(
            gateway.stored.contains_key(seq),
            "{context}: acknowledged seq {seq} was lost"
        );
    }
    // The store's chain head is the newest message the gateway has.
    let head = store.chain_head();
    if let Some((seq, bytes)) = gateway.stored.iter().next_back() {
        assert_eq!(head.seq, *seq, "{context}: chain head");
        assert_eq!(
            head.hash,
            Hash32::blake3(bytes),
            "{context}: chain head hash"
        );
    }
    // And the device goes on chaining from there.
    let r = store.reserve(64).unwrap();
    assert!(r.seq() > max_reserved);
    assert_eq!(r.prev(), head.hash);
    Outcome {
        mutations,
        gateway,
        committed,
        dropped,
        reboots,
    }
}

/// A day on the line: steady events with deliveries, a reboot, a receipt that never comes, a
/// long outage that fills the queue, recovery, more events.
pub fn day_script() -> Vec<Step> {
    let mut s = Vec::new();
    let sizes = [30usize, 400, 5, 700, 120, 1100, 60];
    let mut k = 0;
    let mut event = |s: &mut Vec<Step>| {
        s.push(Step::Event(sizes[k % sizes.len()]));
        k += 1;
    };
    for _ in 0..4 {
        event(&mut s);
    }
    s.push(Step::Deliver);
    for _ in 0..3 {
        event(&mut s);
    }
    s.push(Step::Reboot);
    event(&mut s);
    event(&mut s);
    s.push(Step::DeliverNoReceipt);
    event(&mut s);
    s.push(Step::Deliver);
    // Outage: more than the queue holds.
    for _ in 0..40 {
        event(&mut s);
    }
    s.push(Step::Deliver);
    for i in 0..12 {
        event(&mut s);
        if i % 3 == 2 {
            s.push(Step::Deliver);
        }
    }
    s
}
