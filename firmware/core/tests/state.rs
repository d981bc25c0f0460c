//! The state log: format/open, sector rotation, refusals, and a power cut at every write and
//! erase of a long run of appends.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use prov_firmware::storage::StorageError;
use prov_firmware::storage::mem_flash::{MemFlash, MemFlashError, Tear};
use prov_firmware::storage::state::{ChainState, RECORD_LEN, StateRecord};
use prov_schemas::Hash32;

type Flash = MemFlash<2048, 256, 4>;
const REGION: core::ops::Range<u32> = 512..1024; // two 256-byte sectors, 4 slots each

fn record(n: u64) -> StateRecord {
    StateRecord {
        reserved: n,
        last_seq: n.saturating_sub(1),
        last_hash: Hash32::blake3(&n.to_le_bytes()),
        released: n / 3,
    }
}

#[test]
fn record_encoding_round_trips_and_is_checked() {
    let r = record(77);
    let bytes = r.encode();
    assert_eq!(bytes.len(), RECORD_LEN);
    assert_eq!(&bytes[..4], b"PVS1");
    assert_eq!(StateRecord::decode(&bytes), Some(r));
    for i in 0..RECORD_LEN {
        let mut bad = bytes;
        bad[i] ^= 0x10;
        assert_eq!(StateRecord::decode(&bad), None, "flip in byte {i}");
    }
}

#[test]
fn blank_region_is_not_provisioned_and_garbage_is_corrupt() {
    let mut flash = Flash::new();
    assert_eq!(
        ChainState::open(&mut flash, REGION).unwrap_err(),
        StorageError::NotProvisioned {
            start: 512,
            end: 1024
        }
    );
    flash.as_bytes_mut()[600] = 0x00;
    assert_eq!(
        ChainState::open(&mut flash, REGION).unwrap_err(),
        StorageError::StateCorrupt {
            start: 512,
            end: 1024
        }
    );
}

#[test]
fn bad_regions_are_refused() {
    let mut flash = Flash::new();
    for (region, reason) in [
        (512..768, "too few erase sectors"),
        (500..1024, "not aligned to the erase size"),
        (1536..2304, "extends past the end of the flash"),
    ] {
        assert!(matches!(
            ChainState::format(&mut flash, region.clone(), record(0)),
            Err(StorageError::BadRegion { reason: r, .. }) if r == reason
        ));
    }
}

#[test]
fn appends_rotate_sectors_and_reopen_finds_the_newest() {
    let mut flash = Flash::new();
    let mut state = ChainState::format(&mut flash, REGION, record(0)).unwrap();
    assert_eq!(state.slots_per_sector(), 4);
    for n in 1..=100 {
        state.append(&mut flash, record(n)).unwrap();
        let reopened = ChainState::open(&mut flash, REGION).unwrap();
        assert_eq!(reopened.current(), &record(n));
    }
    // 101 records, 4 per sector: each of the two sectors erased about 101 / 8 times (+1 format).
    let erases = flash.sector_erases(2) + flash.sector_erases(3);
    assert!((25..=27).contains(&erases), "{erases} erases");
    assert!(
        flash.sector_erases(0) == 0 && flash.sector_erases(4) == 0,
        "outside the region"
    );
    // Appending continues after a reopen.
    let mut state = ChainState::open(&mut flash, REGION).unwrap();
    state.append(&mut flash, record(101)).unwrap();
    assert_eq!(
        ChainState::open(&mut flash, REGION).unwrap().current(),
        &record(101)
    );
}

#[test]
fn regression_is_refused() {
    let mut flash = Flash::new();
    let mut state = ChainState::format(&mut flash, REGION, record(10)).unwrap();
    let mut back = record(10);
    back.released = 2;
    assert_eq!(
        state.append(&mut flash, back),
        Err(StorageError::StateRegression {
            field: "released",
            have: 3,
            got: 2
        })
    );
    assert_eq!(
        state.append(&mut flash, record(9)).unwrap_err(),
        StorageError::StateRegression {
            field: "reserved",
            have: 10,
            got: 9
        }
    );
}

#[test]
fn injected_failures_skip_the_slot_and_carry_on() {
    let mut flash = Flash::new();
    let mut state = ChainState::format(&mut flash, REGION, record(0)).unwrap();
    for n in 1..=40 {
        if n % 7 == 0 {
            let next = flash.mutations();
            flash.fail_op(next);
            let err = state.append(&mut flash, record(n)).unwrap_err();
            assert!(matches!(
                err,
                StorageError::Flash {
                    error: MemFlashError::Injected { .. },
                    ..
                }
            ));
            // The failed record counts as current: later records never fall below it.
            assert_eq!(state.current(), &record(n));
            continue;
        }
        state.append(&mut flash, record(n)).unwrap();
        assert_eq!(
            ChainState::open(&mut flash, REGION).unwrap().current(),
            &record(n)
        );
    }
}

/// Appends records 1..=N, cutting the power at mutation `cut` with `tear`; after the reboot the
/// newest record must be the last acknowledged one or the one in flight, never older, never
/// corrupt; and appending must go on working.
fn run_with_cut(cut: u64, tear: Tear, n: u64) -> u64 {
    let mut flash = Flash::new();
    let mut state = ChainState::format(&mut flash, REGION, record(0)).unwrap();
    let base = flash.mutations();
    if cut != u64::MAX {
        flash.cut_power_at(base + cut, tear);
    }
    let mut acked = 0;
    for i in 1..=n {
        match state.append(&mut flash, record(i)) {
            Ok(()) => acked = i,
            Err(_) => {
                assert!(!flash.is_powered());
                flash.power_on();
                let reopened = ChainState::open(&mut flash, REGION)
                    .unwrap_or_else(|e| panic!("cut {cut} {tear:?}: reopen failed: {e}"));
                let got = *reopened.current();
                assert!(
                    got == record(acked) || got == record(i),
                    "cut {cut} {tear:?}: found {got:?} after acking {acked}"
                );
                state = reopened;
                // Continue from what survived.
                let resume = got.reserved + 1;
                for j in resume..=n + 3 {
                    state.append(&mut flash, record(j)).unwrap();
                    assert_eq!(
                        ChainState::open(&mut flash, REGION).unwrap().current(),
                        &record(j)
                    );
                }
                return flash.mutations();
            }
        }
    }
    flash.mutations() - base
}

#[test]
fn power_cut_at_every_write_and_erase() {
    let n = 30;
    let total = run_with_cut(u64::MAX, Tear::Nothing, n);
    assert!(total > 30, "{total} mutations");
    let mut runs = 0;
    for cut in 0..total {
        for tear in [Tear::Prefix(1), Tear::Prefix(63), Tear::Suffix(100)]
            .into_iter()
            .chain(Tear::ALL)
        {
            run_with_cut(cut, tear, n);
            runs += 1;
        }
    }
    assert_eq!(runs, total * 7);
}

#[test]
fn wide_write_words_pad_the_slot() {
    // A part with 128-byte programming pages: slots are 128 bytes.
    let mut flash = MemFlash::<4096, 1024, 128>::new();
    let region = 2048..4096;
    let mut state = ChainState::format(&mut flash, region.clone(), record(0)).unwrap();
    assert_eq!(state.slots_per_sector(), 8);
    for n in 1..=40 {
        state.append(&mut flash, record(n)).unwrap();
    }
    assert_eq!(
        ChainState::open(&mut flash, region).unwrap().current(),
        &record(40)
    );
}
