//! Bundle endpoint latency (issue 5: p99 ≤ 10 ms) over a log of many items.
//!
//! ```text
//! cargo bench -p prov-gateway --bench bundle -- [--events N] [--requests R] [--items K]
//!     [--lines L]
//! ```
//!
//! 1. pre-signs N events (default 100,000) of a simulated line (`L` lines of six boards,
//!    default 4) with the simulator's presign path;
//! 2. puts them through the real pipeline (verify, sequence, index, checkpoint) offline:
//!    `service::open_offline`, the devices' registration records first, then every message as
//!    an MQTT publish, in batches as the service would;
//! 3. starts the gateway on that data directory (HTTP on a free loopback port) and requests the
//!    JSON bundles of K items (default 200, spread over the whole log) round-robin, R times in
//!    all (default 2,000), over one keep-alive connection, timing each request from the first
//!    byte written to the last byte read;
//! 4. prints p50 / p90 / p99 / max latency, events per bundle, and bundle bytes.
//!
//! Without `--bench` on the command line (`cargo test --benches`) it runs a small smoke run
//! (6,000 events, 200 requests).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use prov_gateway::config::Config;
use prov_gateway::keys;
use prov_gateway::pipeline::{Item, RegistryOutcome, now_ms};
use prov_gateway::service;
use prov_schemas::cose::CoseSign1;
use prov_schemas::digital_link::DigitalLink;
use prov_schemas::event::{BizStep, Event, EventType};
use prov_schemas::keys::OperatorName;
use prov_simulator::line::{LineConfig, Stop};
use prov_simulator::presign::{presign, read_record};
use rumqttc::{Publish, QoS};

struct Args {
    events: u64,
    requests: usize,
    items: usize,
    lines: u32,
}

fn args() -> Args {
    let argv: Vec<String> = std::env::args().collect();
    let bench = argv.iter().any(|a| a == "--bench");
    let mut a = if bench {
        Args {
            events: 100_000,
            requests: 2_000,
            items: 200,
            lines: 4,
        }
    } else {
        Args {
            events: 6_000,
            requests: 200,
            items: 20,
            lines: 1,
        }
    };
    let mut it = argv.iter().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .expect("a value")
                .parse::<u64>()
                .expect("a number")
        };
        match flag.as_str() {
            "--events" => a.events = value(),
            "--requests" => a.requests = value() as usize,
            "--items" => a.items = value() as usize,
            "--lines" => a.lines = value() as u32,
            _ => {}
        }
    }
    a
}

/// Builds the log of `line` in `config.data_dir` through the pipeline; returns every item
/// commissioned, in log order.
fn build_log(config: &Config, line: &LineConfig, stream: &Path) -> Vec<DigitalLink> {
    let (pipeline, outbox) = service::open_offline(config).unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Item>();
    let worker = std::thread::spawn(move || pipeline.run(&rx, &outbox));

    let op = keys::load_operator_key(&config.operator_key_path()).unwrap();
    let operator = OperatorName::new("site").unwrap();
    for (device, key) in line.device_keys().unwrap() {
        let record = prov_simulator::provision::registration_record(
            device,
            key,
            prov_simulator::provision::now().unwrap(),
            operator,
            &op,
        )
        .unwrap();
        let (reply, answer) = tokio::sync::oneshot::channel();
        tx.send(Item::Registry {
            message: record,
            received_ms: now_ms(),
            reply,
        })
        .unwrap();
        let outcome = answer.blocking_recv().unwrap();
        assert!(
            matches!(outcome, RegistryOutcome::Accepted { .. }),
            "{outcome:?}"
        );
    }

    let mut input = std::io::BufReader::new(std::fs::File::open(stream).unwrap());
    let mut items = Vec::new();
    let mut n = 0u64;
    while let Some((topic, message)) = read_record(&mut input).unwrap() {
        if let Ok(cose) = CoseSign1::parse(&message)
            && let Ok(event) = Event::decode_payload(cose.payload())
            && event.event_type == EventType::Object
            && event.biz_step == Some(BizStep::Commissioning)
            && let Some(item) = event.epc_list.first()
        {
            items.push(item.clone());
        }
        let mut publish = Publish::new(topic, QoS::AtLeastOnce, message);
        publish.pkid = (n % 60_000 + 1) as u16;
        tx.send(Item::Mqtt {
            publish,
            generation: 0,
            received_ms: now_ms(),
        })
        .unwrap();
        n += 1;
    }
    tx.send(Item::Stop).unwrap();
    worker.join().unwrap().unwrap();
    items
}

/// One keep-alive GET; returns the body.
fn get(
    stream: &mut TcpStream,
    reader: &mut BufReader<TcpStream>,
    host: &str,
    path: &str,
) -> Vec<u8> {
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\n\r\n");
    stream.write_all(req.as_bytes()).unwrap();
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    assert!(status.contains(" 200 "), "{path}: {status}");
    let mut length = None;
    let mut chunked = false;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let l = line.trim_end().to_ascii_lowercase();
        if l.is_empty() {
            break;
        }
        if let Some(v) = l.strip_prefix("content-length:") {
            length = Some(v.trim().parse::<usize>().unwrap());
        }
        if l.starts_with("transfer-encoding:") && l.contains("chunked") {
            chunked = true;
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).unwrap();
            let size = usize::from_str_radix(size.trim(), 16).unwrap();
            let mut chunk = vec![0u8; size + 2];
            reader.read_exact(&mut chunk).unwrap();
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else {
        let mut b = vec![0u8; length.expect("a length")];
        reader.read_exact(&mut b).unwrap();
        body = b;
    }
    body
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    let args = args();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let mut config = Config {
        data_dir: data.clone(),
        origin: String::from("bench.example/prov/log/1"),
        ..Config::default()
    };
    keys::create_gateway_key(&config.gateway_key_path()).unwrap();
    let op = keys::create_operator_key(&config.operator_key_path()).unwrap();
    config.keys.operator_name = Some("site".into());
    config.keys.operators.insert(
        "site".into(),
        hex::encode(op.public_key().to_sec1_uncompressed()),
    );
    config.mqtt.embedded_port = 0;
    config.mqtt.client_id = format!("bench-bundle-{}", std::process::id());
    config.http.listen = "127.0.0.1:0".parse().unwrap();

    let mut line = LineConfig::new("factory-a").unwrap();
    line.lines = args.lines;
    line.seed = 9;
    line.run_tag = "BB".into();
    line.stop = Stop::Count(args.events);
    line.rate = 0.0;
    let stream = tmp.path().join("stream.bin");
    let started = Instant::now();
    let report = presign(&line, &stream).unwrap();
    eprintln!(
        "presigned {} events ({} items) in {:.1} s",
        report.events,
        report.items,
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let items = build_log(&config, &line, &stream);
    eprintln!(
        "built the log through the pipeline in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // The offline pipeline's indexer thread lets go of the sled lock just after the pipeline
    // stops: retry for a few seconds.
    let running = {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match runtime.block_on(service::start(config.clone())) {
                Ok(r) => break r,
                Err(e) if Instant::now() < deadline && e.to_string().contains("lock") => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("starting the gateway: {e}"),
            }
        }
    };
    let size = running.shared.log.read().unwrap().size();
    let host = running.http_addr.to_string();

    // Items spread over the whole log.
    let step = (items.len() / args.items.max(1)).max(1);
    let chosen: Vec<&DigitalLink> = items.iter().step_by(step).take(args.items).collect();
    let mut stream = TcpStream::connect(&host).unwrap();
    stream.set_nodelay(true).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    // Warm-up: one request per item.
    let mut events = Vec::new();
    let mut bytes = Vec::new();
    for item in &chosen {
        let body = get(&mut stream, &mut reader, &host, &item.path());
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        events.push(json["events"].as_array().unwrap().len());
        bytes.push(body.len());
    }
    let mut latencies = Vec::with_capacity(args.requests);
    for i in 0..args.requests {
        let item = chosen[i % chosen.len()];
        let t = Instant::now();
        let body = get(&mut stream, &mut reader, &host, &item.path());
        latencies.push(t.elapsed());
        assert!(!body.is_empty());
    }
    latencies.sort();
    events.sort_unstable();
    bytes.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "bundle endpoint: log of {size} entries, {} items in it, {} distinct bundles, {} requests on one keep-alive connection",
        items.len(),
        chosen.len(),
        args.requests
    );
    println!(
        "latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.90)),
        ms(percentile(&latencies, 0.99)),
        ms(*latencies.last().unwrap())
    );
    println!(
        "events per bundle: min {} median {} max {}; bundle bytes: median {} max {}",
        events[0],
        events[events.len() / 2],
        events[events.len() - 1],
        bytes[bytes.len() / 2],
        bytes[bytes.len() - 1]
    );
    runtime.block_on(running.shutdown()).unwrap();
    // rumqttd's threads cannot be stopped: leave without waiting for them.
    std::process::exit(0);
}
