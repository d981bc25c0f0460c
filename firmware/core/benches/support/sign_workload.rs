//! The workload shared by the `sign` bench and the `sign-count` binary: a device over an
//! in-memory flash recording commissioning events (the commonest event on a line, ~300-byte
//! payload), exactly as `Device::record` runs on the board: validate, encode, reserve a seq on
//! flash, sign the Sig_structure, assemble, commit to the flash queue.

use prov_firmware::device::{Clock, Device};
use prov_firmware::roles::{Commissioning, Draft, Station};
use prov_firmware::signer::FlashKeySigner;
use prov_firmware::storage::mem_flash::MemFlash;
use prov_firmware::storage::{ChainPoint, EventStore, Layout};
use prov_schemas::digital_link::{DigitalLink, Gln, Gtin, Serial};
use prov_schemas::event::TzOffset;
use prov_schemas::keys::{DeviceId, SecretKey};

/// 64 sectors of 4 KiB: 4 for the state log, 60 for the queue.
pub type Flash = MemFlash<{ 64 * 4096 }, 4096, 4>;

/// A synchronised clock that ticks 250 ms per event.
pub struct Ticking(pub u64);

impl Clock for Ticking {
    fn now(&mut self) -> Option<u64> {
        self.0 += 250;
        Some(self.0)
    }

    fn uptime_millis(&mut self) -> u64 {
        self.0
    }
}

/// The device under test.
pub type BenchDevice = Device<FlashKeySigner, Flash, Ticking>;

/// A provisioned device with the test key of `line1-commission`.
pub fn device() -> Option<BenchDevice> {
    let layout = Layout {
        state: 0..4 * 4096,
        queue: 4 * 4096..64 * 4096,
    };
    let store = EventStore::format(Flash::new(), layout, ChainPoint::GENESIS).ok()?;
    let key = SecretKey::test_key("line1-commission").ok()?;
    Some(Device::new(
        DeviceId::new("line1-commission").ok()?,
        FlashKeySigner::new(key),
        store,
        Ticking(1_795_507_200_000),
    ))
}

/// The commissioning station.
pub fn station() -> Option<Commissioning> {
    let gln = Gln::parse("9506000134376").ok()?;
    Some(Commissioning::new(Station::new(
        gln,
        TzOffset::parse("+01:00").ok()?,
    )))
}

/// The draft for item `n`.
pub fn draft(station: &mut Commissioning, n: u64) -> Option<Draft> {
    let item = DigitalLink::Item {
        gtin: Gtin::parse("09506000134352").ok()?,
        serial: Serial::parse(&format!("K3F9A1{n:06}")).ok()?,
    };
    station.on_scan(item).ok()
}

/// Records event `n`; every 100 events a receipt frees the queue (the gateway keeps up).
pub fn record(device: &mut BenchDevice, station: &mut Commissioning, n: u64) -> Option<u64> {
    let seq = device.record(draft(station, n)?).ok()?;
    if seq % 100 == 0 {
        device.on_receipt(seq).ok()?;
    }
    Some(seq)
}
