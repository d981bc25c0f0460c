//! `sign-count`: records or signs N events and prints the rate; the program to run under
//! callgrind for instructions per signature, the proxy for the ESP32-C3's cost.
//!
//! A binary rather than a bench or example because those get the crate's dev-dependencies,
//! which enable `prov-schemas/std` and with it p256's precomputed tables (about 3x fewer
//! instructions for k·G); the board has no tables. Built without `std` it runs the device's
//! arithmetic; with `--features std` the host's:
//!
//! ```text
//! cargo build --release -p prov-firmware --features bench-bin --bin sign-count          # device path
//! cargo build --release -p prov-firmware --features bench-bin,std --bin sign-count      # host tables
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/sign-count record 101
//! ```
//!
//! Instructions per event = (I(record 101) − I(record 1)) / 100, which cancels the set-up.
//!
//! Usage: `sign-count [record|sign] [N]` (default `record 1000`). `record` is the whole
//! `Device::record` path; `sign` is `cose::sign_message` alone over the same payload.

#[path = "sign_workload.rs"]
mod workload;

use std::process::ExitCode;
use std::time::Instant;

use prov_schemas::cose;
use prov_schemas::keys::{Kid, SecretKey};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "record".into());
    let n: u64 = match args.next().map(|s| s.parse()) {
        None => 1000,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            eprintln!("usage: sign-count [record|sign] [N]");
            return ExitCode::FAILURE;
        }
    };
    let (Some(mut device), Some(mut station)) = (workload::device(), workload::station()) else {
        eprintln!("set-up failed");
        return ExitCode::FAILURE;
    };
    let started = Instant::now();
    let done = match mode.as_str() {
        "record" => (1..=n).all(|i| workload::record(&mut device, &mut station, i).is_some()),
        "sign" => {
            // The payload of a real commissioning event (one record in the set-up, which
            // `record 1` has too, so the difference method still cancels it).
            let payload = workload::record(&mut device, &mut station, 1)
                .and_then(|_| device.outbox().next()?.ok())
                .and_then(|q| {
                    cose::CoseSign1::parse(&q.message)
                        .ok()
                        .map(|m| m.payload().to_vec())
                });
            let key = SecretKey::test_key("line1-commission").ok();
            let kid = Kid::new("line1-commission").ok();
            match (payload, key, kid) {
                (Some(payload), Some(key), Some(kid)) => {
                    (0..n).all(|_| cose::sign_message(&kid, &payload, &key).is_ok())
                }
                _ => false,
            }
        }
        other => {
            eprintln!("unknown mode {other:?}: want record or sign");
            return ExitCode::FAILURE;
        }
    };
    let secs = started.elapsed().as_secs_f64();
    if !done {
        eprintln!("failed");
        return ExitCode::FAILURE;
    }
    println!(
        "{mode} {n}: {secs:.3} s, {:.0} events/s (p256 precomputed tables: {})",
        n as f64 / secs.max(1e-9),
        cfg!(feature = "std")
    );
    ExitCode::SUCCESS
}
