//! The flash queue: order, outages, receipts, the full policy, wrap-around, large messages,
//! corruption, and a power cut at every write and erase.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::VecDeque;

use proptest::prelude::*;
use prov_firmware::storage::StorageError;
use prov_firmware::storage::mem_flash::{MemFlash, Tear};
use prov_firmware::storage::queue::{MAX_MESSAGE_LEN, Queue};

type Flash = MemFlash<16384, 512, 4>;
const REGION: core::ops::Range<u32> = 4096..16384; // 24 sectors of 512 bytes

/// A recognisable message: the seq, then bytes derived from it.
fn msg(seq: u64, len: usize) -> Vec<u8> {
    let mut out = seq.to_le_bytes().to_vec();
    let mut x = seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push(x as u8);
    }
    out.truncate(len);
    out
}

fn len_for(seq: u64) -> usize {
    // 1..=1200 bytes, so some messages span two or three sectors.
    1 + (seq.wrapping_mul(7919) % 1200) as usize
}

/// Every unreleased complete message, in queue order, with its bytes.
fn drain<F: embedded_storage::nor_flash::NorFlash>(q: &Queue, flash: &mut F) -> Vec<(u64, Vec<u8>)>
where
    F::Error: std::fmt::Debug,
{
    let mut out = Vec::new();
    let mut cur = q.first_unreleased(flash).unwrap();
    while let Some(entry) = cur {
        out.push((entry.seq(), q.read_vec(flash, &entry).unwrap()));
        cur = q.next(flash, &entry).unwrap();
    }
    out
}

fn seqs(items: &[(u64, Vec<u8>)]) -> Vec<u64> {
    items.iter().map(|(s, _)| *s).collect()
}

#[test]
fn messages_drain_in_order_and_survive_a_reboot() {
    let mut flash = Flash::new();
    let mut q = Queue::format(&mut flash, REGION).unwrap();
    for seq in 1..=12 {
        q.push(&mut flash, seq, &msg(seq, len_for(seq))).unwrap();
    }
    let drained = drain(&q, &mut flash);
    assert_eq!(seqs(&drained), (1..=12).collect::<Vec<_>>());
    for (seq, bytes) in &drained {
        assert_eq!(bytes, &msg(*seq, len_for(*seq)));
    }
    let q = Queue::open(&mut flash, REGION, 0).unwrap();
    assert_eq!(drain(&q, &mut flash), drained);
    let q = Queue::open(&mut flash, REGION, 5).unwrap();
    assert_eq!(seqs(&drain(&q, &mut flash)), (6..=12).collect::<Vec<_>>());
    assert_eq!(
        q.first_after(&mut flash, 10).unwrap().map(|e| e.seq()),
        Some(11)
    );
}

#[test]
fn outage_then_drain_oldest_first_many_times_around_the_ring() {
    let mut flash = Flash::new();
    let mut q = Queue::format(&mut flash, REGION).unwrap();
    let mut seq = 0u64;
    for round in 0..6 {
        // Outage: nothing is acknowledged; push until the queue refuses.
        let first = seq + 1;
        loop {
            let len = len_for(seq + 1);
            let before = flash.as_bytes().to_vec();
            match q.push(&mut flash, seq + 1, &msg(seq + 1, len)) {
                Ok(()) => seq += 1,
                Err(StorageError::QueueFull { need, free }) => {
                    assert_eq!(need, len);
                    assert!(free < need);
                    assert_eq!(free, q.free_bytes());
                    assert_eq!(
                        flash.as_bytes(),
                        &before[..],
                        "a refused push writes nothing"
                    );
                    break;
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert!(
            seq - first > 5,
            "round {round}: only {} queued",
            seq - first + 1
        );
        // The link is back: everything comes out in order, oldest first, also after a reboot.
        let drained = drain(&q, &mut flash);
        assert_eq!(seqs(&drained), (first..=seq).collect::<Vec<_>>());
        q = Queue::open(&mut flash, REGION, q.released()).unwrap();
        assert_eq!(drain(&q, &mut flash), drained);
        // The gateway's receipt frees it all.
        assert_eq!(q.release_through(seq), seq);
        assert!(q.first_unreleased(&mut flash).unwrap().is_none());
    }
    // Every sector went around the ring several times.
    let region_sectors = (REGION.start / 512) as usize..(REGION.end / 512) as usize;
    assert!(region_sectors.clone().all(|s| flash.sector_erases(s) >= 4));
    assert!(
        flash.sector_erases(0) == 0,
        "nothing outside the region is touched"
    );
}

#[test]
fn publishing_frees_nothing_only_receipts_do() {
    let mut flash = Flash::new();
    let mut q = Queue::format(&mut flash, REGION).unwrap();
    let mut seq = 0;
    while q.push(&mut flash, seq + 1, &msg(seq + 1, 300)).is_ok() {
        seq += 1;
    }
    let full = q.free_bytes();
    // "Publishing" (reading every message, getting PUBACKs) changes nothing.
    let published = drain(&q, &mut flash);
    assert_eq!(published.len() as u64, seq);
    assert_eq!(q.free_bytes(), full);
    assert!(matches!(
        q.push(&mut flash, seq + 1, &msg(seq + 1, 300)),
        Err(StorageError::QueueFull { .. })
    ));
    // A receipt for the first message frees nothing yet (its sector still holds seq 2).
    q.release_through(1);
    assert_eq!(q.free_bytes(), full);
    assert_eq!(drain(&q, &mut flash)[0].0, 2);
    // A receipt covering the first sector frees it.
    q.release_through(3);
    assert!(q.free_bytes() > full);
    q.push(&mut flash, seq + 1, &msg(seq + 1, 300)).unwrap();
    // A receipt beyond what was queued is clamped to the newest seq.
    assert_eq!(q.release_through(u64::MAX), seq + 1);
    assert_eq!(q.released(), seq + 1);
    // Receipts never go backwards.
    assert_eq!(q.release_through(2), seq + 1);
}

#[test]
fn refusals() {
    let mut flash = Flash::new();
    let mut q = Queue::format(&mut flash, REGION).unwrap();
    q.push(&mut flash, 5, b"five").unwrap();
    assert_eq!(
        q.push(&mut flash, 5, b"again"),
        Err(StorageError::SeqNotIncreasing { got: 5, newest: 5 })
    );
    assert_eq!(
        q.push(&mut flash, 4, b"older"),
        Err(StorageError::SeqNotIncreasing { got: 4, newest: 5 })
    );
    assert_eq!(
        q.push(&mut flash, 6, b""),
        Err(StorageError::MessageSize {
            got: 0,
            max: MAX_MESSAGE_LEN
        })
    );
    assert_eq!(
        q.push(&mut flash, 6, &vec![0; MAX_MESSAGE_LEN + 1]),
        Err(StorageError::MessageSize {
            got: MAX_MESSAGE_LEN + 1,
            max: MAX_MESSAGE_LEN
        })
    );
    let e = q.first_unreleased(&mut flash).unwrap().unwrap();
    let mut small = [0u8; 3];
    assert_eq!(
        q.read(&mut flash, &e, &mut small),
        Err(StorageError::BufferTooSmall { got: 3, want: 4 })
    );
}

#[test]
fn largest_messages_span_many_sectors() {
    let mut flash = MemFlash::<65536, 1024, 4>::new();
    let region = 0..65536;
    let mut q = Queue::format(&mut flash, region.clone()).unwrap();
    let sizes = [
        MAX_MESSAGE_LEN,
        1,
        MAX_MESSAGE_LEN - 1,
        977,
        MAX_MESSAGE_LEN,
    ];
    for (i, &len) in sizes.iter().enumerate() {
        let seq = i as u64 + 1;
        q.push(&mut flash, seq, &msg(seq, len)).unwrap();
    }
    let q = Queue::open(&mut flash, region, 0).unwrap();
    let drained = drain(&q, &mut flash);
    assert_eq!(drained.len(), sizes.len());
    for ((seq, bytes), &len) in drained.iter().zip(&sizes) {
        assert_eq!(bytes, &msg(*seq, len));
    }
}

#[test]
fn a_corrupted_message_is_skipped_not_the_rest() {
    let mut flash = Flash::new();
    let mut q = Queue::format(&mut flash, REGION).unwrap();
    for seq in 1..=6 {
        q.push(&mut flash, seq, &msg(seq, 100)).unwrap();
    }
    // Flip a data byte of message 3 (sector header 16 + 2 entries of 32 + 100 padded to 100).
    let third_data = REGION.start as usize + 16 + 2 * 132 + 32 + 10;
    flash.as_bytes_mut()[third_data] ^= 0x01;
    let q = Queue::open(&mut flash, REGION, 0).unwrap();
    assert_eq!(seqs(&drain(&q, &mut flash)), vec![1, 2, 4, 5, 6]);
}

#[test]
fn next_survives_its_entry_being_reclaimed() {
    let mut flash = Flash::new();
    let mut q = Queue::format(&mut flash, REGION).unwrap();
    let mut seq = 0;
    while q.push(&mut flash, seq + 1, &msg(seq + 1, 400)).is_ok() {
        seq += 1;
    }
    let first = q.first_unreleased(&mut flash).unwrap().unwrap();
    assert_eq!(first.seq(), 1);
    q.release_through(4);
    q.push(&mut flash, seq + 1, &msg(seq + 1, 400)).unwrap();
    q.push(&mut flash, seq + 2, &msg(seq + 2, 400)).unwrap();
    // Message 1's sector was erased and reused; reading it fails with evidence, and iteration
    // resumes after it from the oldest sector.
    assert!(matches!(
        q.read_vec(&mut flash, &first),
        Err(StorageError::Corrupt { seq: 1, .. })
    ));
    let next = q.next(&mut flash, &first).unwrap().unwrap();
    assert!(next.seq() > 1);
    assert_eq!(q.read_vec(&mut flash, &next).unwrap(), msg(next.seq(), 400));
}

/// One scenario: pushes with periodic receipts, wrapping the ring. The power is cut at
/// mutation `cut`; after the reboot every acknowledged unreleased message must be there, in
/// order, intact; the one in flight may be there complete or not at all; nothing else. Then the
/// scenario continues and is checked again at the end.
fn queue_scenario(cut: Option<(u64, Tear)>) -> u64 {
    let mut flash = Flash::new();
    let mut q = Queue::format(&mut flash, REGION).unwrap();
    let base = flash.mutations();
    if let Some((at, tear)) = cut {
        flash.cut_power_at(base + at, tear);
    }
    let mut released = 0u64; // "durable" receipt, as the store keeps it
    let mut acked: Vec<u64> = Vec::new();
    let mut in_flight_ok: Option<u64> = None; // in flight at the cut and found complete
    let mut next_seq = 1u64;
    let mut rebooted = false;
    while next_seq <= 70 {
        let seq = next_seq;
        next_seq += 1;
        let bytes = msg(seq, len_for(seq));
        match q.push(&mut flash, seq, &bytes) {
            Ok(()) => acked.push(seq),
            Err(StorageError::QueueFull { .. }) => {}
            Err(_) => {
                assert!(!flash.is_powered(), "only power loss fails here");
                flash.power_on();
                rebooted = true;
                q = Queue::open(&mut flash, REGION, released).unwrap();
                let found = drain(&q, &mut flash);
                let want: Vec<u64> = acked.iter().copied().filter(|&s| s > released).collect();
                let got = seqs(&found);
                let ok = got == want || {
                    let mut with = want.clone();
                    with.push(seq);
                    got == with
                };
                assert!(
                    ok,
                    "cut {cut:?}: found {got:?}, acked {want:?}, in flight {seq}"
                );
                for (s, b) in &found {
                    assert_eq!(b, &msg(*s, len_for(*s)), "cut {cut:?}: seq {s} damaged");
                }
                if got.last() == Some(&seq) {
                    in_flight_ok = Some(seq);
                }
            }
        }
        if seq.is_multiple_of(9) {
            // A receipt for all but the newest three.
            released = q.release_through(seq.saturating_sub(3));
        }
    }
    let mut all = acked.clone();
    all.extend(in_flight_ok);
    all.sort_unstable();
    let want: Vec<u64> = all.into_iter().filter(|&s| s > released).collect();
    let q = Queue::open(&mut flash, REGION, released).unwrap();
    let got = drain(&q, &mut flash);
    assert_eq!(seqs(&got), want, "cut {cut:?} (rebooted {rebooted})");
    flash.mutations() - base
}

#[test]
fn power_cut_at_every_write_and_erase_keeps_acknowledged_messages_in_order() {
    let total = queue_scenario(None);
    assert!(total > 150, "{total} mutations");
    for at in 0..total {
        for tear in [Tear::Prefix(5), Tear::Suffix(100)]
            .into_iter()
            .chain(Tear::ALL)
        {
            queue_scenario(Some((at, tear)));
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Push(usize),
    Release(u64),
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1usize..1500).prop_map(Op::Push),
        2 => (0u64..8).prop_map(Op::Release),
        1 => Just(Op::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Against a model: a FIFO of (seq, bytes) that only a receipt shortens.
    #[test]
    fn behaves_like_a_fifo_released_by_receipts(ops in prop::collection::vec(op(), 1..120)) {
        let mut flash = Flash::new();
        let mut q = Queue::format(&mut flash, REGION).unwrap();
        let mut model: VecDeque<(u64, Vec<u8>)> = VecDeque::new();
        let mut seq = 0u64;
        for op in ops {
            match op {
                Op::Push(len) => {
                    let bytes = msg(seq + 1, len);
                    let free = q.free_bytes();
                    match q.push(&mut flash, seq + 1, &bytes) {
                        Ok(()) => { seq += 1; model.push_back((seq, bytes)); }
                        Err(StorageError::QueueFull { .. }) => prop_assert!(len > free),
                        Err(e) => return Err(TestCaseError::fail(e.to_string())),
                    }
                }
                Op::Release(back) => {
                    let r = q.release_through(seq.saturating_sub(back));
                    while model.front().is_some_and(|(s, _)| *s <= r) { model.pop_front(); }
                }
                Op::Reopen => q = Queue::open(&mut flash, REGION, q.released()).unwrap(),
            }
            let got = drain(&q, &mut flash);
            prop_assert_eq!(got, model.iter().cloned().collect::<Vec<_>>());
        }
    }
}
