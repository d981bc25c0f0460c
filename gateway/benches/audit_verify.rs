//! `prov verify` throughput: entries/s of the offline audit of an exported archive.
//!
//! ```text
//! cargo bench -p prov-gateway --bench audit_verify -- [--entries N] [--workers W] [--runs R]
//!     [--keep DIR]
//! ```
//!
//! 1. builds a real log of about N entries (default 100,000) in a temporary data directory, or
//!    in `--keep DIR` (reused if it already holds an archive): the simulator pre-signs N events
//!    of 4 lines (24 devices), the gateway's own pipeline (`service::open_offline`) logs the
//!    operator-signed registrations and the events in batches of 1,000, one checkpoint per
//!    batch;
//! 2. exports the archive (`audit::export`), timed;
//! 3. runs `audit::verify` R times (default 3) with W signature threads (default: one per CPU)
//!    and reports entries/s for each run and the best.
//!
//! Without `--bench` on the command line (`cargo test --benches`) it does a 2,000-entry smoke
//! run.

// Bench code: a failure aborts the run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::{Path, PathBuf};
use std::time::Instant;

use prov_gateway::audit::{self, KeySet, NoProgress, VerifyOptions};
use prov_gateway::config::Config;
use prov_gateway::keys;
use prov_gateway::pipeline::{Item, now_ms};
use prov_gateway::service::open_offline;
use prov_schemas::keys::OperatorName;
use prov_simulator::line::{LineConfig, Stop};
use prov_simulator::provision::{now, registration_record};

fn arg<T: std::str::FromStr>(args: &[String], name: &str) -> Option<T> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().ok().expect("bad argument value"))
}

fn build(data: &Path, events: u64) -> Config {
    let mut config = Config {
        data_dir: data.to_path_buf(),
        origin: "bench.example/prov/log/1".into(),
        ..Config::default()
    };
    std::fs::create_dir_all(data).unwrap();
    keys::create_gateway_key(&config.gateway_key_path()).unwrap();
    let op = keys::create_operator_key(&config.operator_key_path()).unwrap();
    config.keys.operator_name = Some("site".into());
    config.keys.operators.insert(
        "site".into(),
        hex::encode(op.public_key().to_sec1_uncompressed()),
    );
    std::fs::write(data.join("prov.toml"), config.to_toml().unwrap()).unwrap();

    let mut line = LineConfig::new("factory-b").unwrap();
    line.lines = 4;
    line.seed = 21;
    line.stop = Stop::Count(events);
    let stream = data.join("stream.bin");
    let t = Instant::now();
    prov_simulator::presign::presign(&line, &stream).unwrap();
    eprintln!(
        "presigned {events} events in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    let (mut pipeline, outbox) = open_offline(&config).unwrap();
    let operator = OperatorName::new("site").unwrap();
    let records: Vec<Item> = line
        .device_keys()
        .unwrap()
        .into_iter()
        .map(|(d, k)| {
            let (reply, _rx) = tokio::sync::oneshot::channel();
            Item::Registry {
                message: registration_record(d, k, now().unwrap(), operator, &op).unwrap(),
                received_ms: now_ms(),
                reply,
            }
        })
        .collect();
    pipeline.process(records, &outbox).unwrap();
    let mut file = std::io::BufReader::new(std::fs::File::open(&stream).unwrap());
    let mut batch = Vec::with_capacity(1000);
    loop {
        let next = prov_simulator::presign::read_record(&mut file).unwrap();
        let done = next.is_none();
        if let Some((topic, payload)) = next {
            batch.push(Item::Mqtt {
                publish: rumqttc::Publish::new(topic, rumqttc::QoS::AtLeastOnce, payload),
                generation: 0,
                received_ms: now_ms(),
            });
        }
        if batch.len() == 1000 || (done && !batch.is_empty()) {
            pipeline
                .process(std::mem::take(&mut batch), &outbox)
                .unwrap();
        }
        if done {
            break;
        }
    }
    drop(pipeline);
    std::fs::remove_file(&stream).unwrap();
    eprintln!(
        "logged through the pipeline in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    config
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bench = args.iter().any(|a| a == "--bench");
    let entries: u64 = arg(&args, "--entries").unwrap_or(if bench { 100_000 } else { 2_000 });
    let workers: usize = arg(&args, "--workers").unwrap_or(0);
    let runs: usize = arg(&args, "--runs").unwrap_or(if bench { 3 } else { 1 });
    let keep: Option<PathBuf> = arg(&args, "--keep");
    let tmp = tempfile::tempdir().unwrap();
    let root = keep.unwrap_or_else(|| tmp.path().to_path_buf());
    let data = root.join("gateway");
    let archive = root.join("archive");

    if !archive.join("FORMAT").exists() {
        let config = build(&data, entries);
        let t = Instant::now();
        let summary = audit::export(&config, &archive, &NoProgress).unwrap();
        let secs = t.elapsed().as_secs_f64();
        println!(
            "export: {} entries, {} blocks, {} bytes in {secs:.2} s ({:.0} entries/s)",
            summary.entries,
            summary.blocks,
            summary.bytes,
            summary.entries as f64 / secs
        );
    }
    let config = Config::from_file(&data.join("prov.toml")).unwrap();
    let signer = keys::load_gateway_signer(&config.gateway_key_path(), &config.origin).unwrap();
    let trust = KeySet {
        gateway: signer.verifier_key().unwrap(),
        operators: keys::trusted_operators(&config.keys.operators).unwrap(),
    };
    let options = VerifyOptions {
        trust: Some(trust),
        workers,
        ..VerifyOptions::default()
    };
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let mut best = 0f64;
    for run in 1..=runs {
        let t = Instant::now();
        let report = audit::verify(&archive, &options, &NoProgress).unwrap();
        let secs = t.elapsed().as_secs_f64();
        let rate = report.entries as f64 / secs;
        best = best.max(rate);
        println!(
            "verify run {run}: {} entries ({} events, {} devices, {} blocks) in {secs:.2} s: {rate:.0} entries/s (workers {}, {cpus} CPUs)",
            report.entries,
            report.events,
            report.devices,
            report.blocks,
            if workers == 0 { cpus } else { workers }
        );
    }
    println!("verify best: {best:.0} entries/s");
}
