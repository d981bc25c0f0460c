//! Shared by the device and roles tests: a device over a `MemFlash`, a settable clock, the
//! stations of a small factory, verification of every queued message with the core's verifier,
//! and the JSON Schema check of their JSON forms.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use prov_firmware::device::{Clock, Device};
use prov_firmware::roles::Station;
use prov_firmware::signer::FlashKeySigner;
use prov_firmware::storage::mem_flash::MemFlash;
use prov_firmware::storage::{ChainPoint, EventStore, Layout};
use prov_schemas::Hash32;
use prov_schemas::checked::{CheckedEvent, verify_event};
use prov_schemas::cose::P256Backend;
use prov_schemas::digital_link::{DigitalLink, Gln};
use prov_schemas::event::TzOffset;
use prov_schemas::keys::{DeviceId, SecretKey};

/// 64 sectors of 4 KiB (the ESP32-C3's erase size, 4-byte words): a 4-sector state log and
/// a 60-sector queue.
pub type Flash = MemFlash<{ 64 * 4096 }, 4096, 4>;
/// A small flash for queue-full tests: 2-sector state log, 2-sector queue of 4 KiB.
pub type SmallFlash = MemFlash<{ 4 * 4096 }, 4096, 4>;

pub type TestDevice<F = Flash> = Device<FlashKeySigner, F, TestClock>;

pub fn layout() -> Layout {
    Layout {
        state: 0..4 * 4096,
        queue: 4 * 4096..64 * 4096,
    }
}

pub fn small_layout() -> Layout {
    Layout {
        state: 0..2 * 4096,
        queue: 2 * 4096..4 * 4096,
    }
}

/// 2026-11-24T08:00:00.000Z.
pub const T0: u64 = 1_795_507_200_000;

/// A clock the test sets: `now` is `None` until "SNTP" has run.
#[derive(Debug, Clone, Copy)]
pub struct TestClock {
    pub now: Option<u64>,
    pub uptime: u64,
}

impl TestClock {
    pub fn synced(now: u64) -> TestClock {
        TestClock {
            now: Some(now),
            uptime: 5_000,
        }
    }

    pub fn advance(&mut self, ms: u64) {
        self.uptime += ms;
        if let Some(now) = &mut self.now {
            *now += ms;
        }
    }
}

impl Clock for TestClock {
    fn now(&mut self) -> Option<u64> {
        let now = self.now;
        self.advance(250);
        now
    }

    fn uptime_millis(&mut self) -> u64 {
        self.uptime
    }
}

pub fn device_id(name: &str) -> DeviceId {
    DeviceId::new(name).unwrap()
}

pub fn key(name: &str) -> SecretKey {
    SecretKey::test_key(name).unwrap()
}

/// A freshly provisioned device (genesis chain) with the test key of `name`.
pub fn new_device(name: &str) -> TestDevice {
    let store = EventStore::format(Flash::new(), layout(), ChainPoint::GENESIS).unwrap();
    Device::new(
        device_id(name),
        FlashKeySigner::new(key(name)),
        store,
        TestClock::synced(T0),
    )
}

/// A reboot: the device's flash reopened, the same key, the clock kept.
pub fn reboot<F: embedded_storage::nor_flash::NorFlash>(
    device: Device<FlashKeySigner, F, TestClock>,
    layout: Layout,
) -> Device<FlashKeySigner, F, TestClock> {
    let id = *device.id();
    let (signer, store, clock) = device.into_parts();
    let store = EventStore::open(store.into_flash(), layout).unwrap();
    Device::new(id, signer, store, clock)
}

pub const FACTORY: &str = "9506000134376";
pub const COLD_ROOM: &str = "9506000134383";
pub const DOCK: &str = "9506000134390";

pub fn gln(text: &str) -> Gln {
    Gln::parse(text).unwrap()
}

pub fn station(at: &str) -> Station {
    Station::new(gln(at), TzOffset::parse("+01:00").unwrap())
}

pub fn dl(uri: &str) -> DigitalLink {
    DigitalLink::parse_canonical(uri).unwrap()
}

pub fn item(serial: &str) -> DigitalLink {
    dl(&format!("https://id.gs1.org/01/09506000134352/21/{serial}"))
}

/// SSCC with extension digit 1, company prefix 0614141 and the given 9-digit serial reference.
pub fn sscc(reference: u32) -> DigitalLink {
    let body = format!("10614141{reference:09}");
    let check = gs1_check_digit(&body);
    dl(&format!("https://id.gs1.org/00/{body}{check}"))
}

pub fn lot(gtin: &str, lot: &str) -> DigitalLink {
    dl(&format!("https://id.gs1.org/01/{gtin}/10/{lot}"))
}

pub fn gs1_check_digit(body: &str) -> u32 {
    let sum: u32 = body
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, d)| u32::from(d - b'0') * if i % 2 == 0 { 3 } else { 1 })
        .sum();
    (10 - sum % 10) % 10
}

/// Every queued message of `device`, oldest first, verified with the core's verifier under the
/// device's key; checks the hash chain (each prev is the BLAKE3 of the message with the next
/// lower seq present, zero for seq 1) and that seqs increase.
pub fn verified_outbox<F: embedded_storage::nor_flash::NorFlash>(
    device: &mut Device<FlashKeySigner, F, TestClock>,
) -> Vec<CheckedEvent> {
    let key = device.public_key();
    let messages: Vec<_> = device.outbox().map(|q| q.unwrap()).collect();
    let mut out = Vec::new();
    for q in messages {
        let checked = verify_event(&q.message, &key, &P256Backend).unwrap();
        assert_eq!(checked.seq(), q.seq);
        assert_eq!(checked.device(), device.id());
        out.push(checked);
    }
    check_chain(&out);
    out
}

/// Seqs strictly increase and each prev is the hash of the message before it (the first one
/// chains to zero if it is seq 1).
pub fn check_chain(events: &[CheckedEvent]) {
    for pair in events.windows(2) {
        assert!(pair[1].seq() > pair[0].seq(), "seq order");
        assert_eq!(
            pair[1].prev(),
            pair[0].hash(),
            "prev of seq {}",
            pair[1].seq()
        );
    }
    if let Some(first) = events.first()
        && first.seq() == 1
    {
        assert_eq!(first.prev(), Hash32::ZERO);
    }
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `<repo>/.venv/bin/python` if it exists (CI), else `python3`.
fn python() -> PathBuf {
    let venv = repo_root().join(".venv/bin/python");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

const SCHEMA_CHECK: &str = r#"
import json, sys
import jsonschema
schema = json.load(open(sys.argv[1]))
events = json.load(open(sys.argv[2]))
cls = jsonschema.validators.validator_for(schema)
cls.check_schema(schema)
v = cls(schema, format_checker=cls.FORMAT_CHECKER)
bad = 0
for i, e in enumerate(events):
    for err in v.iter_errors(e):
        bad += 1
        print(f"event {i} ({e.get('type')} seq {e.get('prov:seq')}): {err.message} at {list(err.absolute_path)}")
print(f"{len(events)} events checked, {bad} errors")
sys.exit(1 if bad else 0)
"#;

/// Checks the JSON forms of `events` against `schemas/json/prov-event.schema.json` with
/// Python's `jsonschema`. Skips (saying so) only if `jsonschema` cannot be imported.
pub fn check_json_schema(events: &[CheckedEvent]) {
    let json: Vec<serde_json::Value> = events
        .iter()
        .map(|e| serde_json::to_value(e.event()).unwrap())
        .collect();
    if let Some((ok, output)) = schema_check(&json) {
        assert!(ok, "JSON Schema check failed:\n{output}");
    }
}

/// Runs the JSON Schema check on `json`: `Some((passed, output))`, or `None` (with a message on
/// stderr) when `jsonschema` is not importable.
pub fn schema_check(json: &[serde_json::Value]) -> Option<(bool, String)> {
    let py = python();
    let importable = Command::new(&py)
        .args(["-c", "import jsonschema"])
        .status()
        .is_ok_and(|s| s.success());
    if !importable {
        eprintln!(
            "SKIPPED JSON Schema check: `{} -c 'import jsonschema'` failed (install it: pip install jsonschema)",
            py.display()
        );
        return None;
    }
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "prov-firmware-schema-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let events_path = dir.join("events.json");
    std::fs::write(&events_path, serde_json::to_vec_pretty(json).unwrap()).unwrap();
    let schema = repo_root().join("schemas/json/prov-event.schema.json");
    let out = Command::new(&py)
        .arg("-c")
        .arg(SCHEMA_CHECK)
        .arg(&schema)
        .arg(&events_path)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    Some((
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    ))
}
