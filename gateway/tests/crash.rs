//! Crash test: `prov gateway run` as a child process against Mosquitto (persistent session,
//! `max_queued_messages 0`) while a publisher streams pre-signed events at QoS 1; the gateway is
//! killed with SIGKILL at random moments (seeded; the seed is printed, `PROV_CRASH_SEED`
//! replays it) and restarted each time. Finally: every event the broker acknowledged to the
//! publisher is in the log exactly once, the chain verifies from block 0, and no two checkpoints
//! seen (served at /checkpoint during the run, or in the chain) have different roots for one
//! size.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod svc_support;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prov_ledger::checkpoint::Checkpoint;
use prov_schemas::Hash32;
use prov_simulator::line::{LineConfig, Stop};
use prov_simulator::testkit::{Mosquitto, free_port};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use svc_support::*;

const PROV: &str = env!("CARGO_BIN_EXE_prov");
const KILLS: usize = 12;
const EVENTS: u64 = 1500;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
}

fn spawn_gateway(config: &std::path::Path, log: &std::path::Path) -> ChildGuard {
    let stderr = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let child = Command::new(PROV)
        .args(["--config", config.to_str().unwrap(), "gateway", "run"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    ChildGuard(Some(child))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_under_load_loses_and_duplicates_nothing() {
    if Mosquitto::binary().is_none() {
        eprintln!("skipped: mosquitto is not installed");
        return;
    }
    let seed = std::env::var("PROV_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("crash test seed: {seed} (PROV_CRASH_SEED={seed} replays the kill schedule)");
    let mut rng = Rng(seed);

    let broker = Mosquitto::start().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let url = format!("mqtt://127.0.0.1:{}", broker.port());
    let (mut config, op) = make_config(&data, Some(url), &unique("gw-crash"));
    let http_port = free_port().unwrap();
    config.http.listen = format!("127.0.0.1:{http_port}").parse().unwrap();
    config.batch.max_delay_ms = 20;
    let config_path = write_config(&config, tmp.path());
    let key = gateway_key(&config);
    let addr = format!("127.0.0.1:{http_port}");
    let gw_log = tmp.path().join("gateway.log");
    let up = |addr: &str| {
        wait_until(Duration::from_secs(30), || {
            try_get(addr, "/checkpoint").is_some_and(|(s, _)| s == 200)
        })
    };

    let mut gateway = spawn_gateway(&config_path, &gw_log);
    assert!(up(&addr), "gateway did not start");
    assert!(wait_until(Duration::from_secs(10), || {
        metric(&addr, "prov_mqtt_connected") == Some(1)
    }));

    // The stream and its devices.
    let mut line = LineConfig::new("factory-a").unwrap();
    line.seed = seed % 1000 + 1;
    line.stop = Stop::Count(EVENTS);
    let stream_path = tmp.path().join("stream.bin");
    prov_simulator::presign::presign(&line, &stream_path).unwrap();
    let devices = line.device_keys().unwrap();
    register(&addr, &op, &devices);
    let mut file = std::io::BufReader::new(std::fs::File::open(&stream_path).unwrap());
    let mut stream = Vec::new();
    while let Some(r) = prov_simulator::presign::read_record(&mut file).unwrap() {
        stream.push(r);
    }
    let total = stream.len();
    let hashes: Vec<Hash32> = stream.iter().map(|(_, m)| Hash32::blake3(m)).collect();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The publisher: paced, QoS 1, counts the broker's PUBACKs.
    let mut opts = MqttOptions::new(unique("pub"), "127.0.0.1", broker.port());
    opts.set_clean_session(false).set_inflight(50);
    let (client, mut eventloop) = AsyncClient::new(opts, 100);
    let acked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    {
        let acked = Arc::clone(&acked);
        tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        acked.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
    }
    let publisher = tokio::spawn(async move {
        for (topic, message) in stream {
            client
                .publish(topic, QoS::AtLeastOnce, false, message)
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
        client
    });

    // The observer: every checkpoint served at /checkpoint.
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let observing = Arc::new(AtomicBool::new(true));
    let observer = {
        let (seen, observing, addr) = (Arc::clone(&seen), Arc::clone(&observing), addr.clone());
        std::thread::spawn(move || {
            while observing.load(Ordering::SeqCst) {
                if let Some((200, body)) = try_get(&addr, "/checkpoint") {
                    seen.lock().unwrap().push(String::from_utf8(body).unwrap());
                }
                std::thread::sleep(Duration::from_millis(15));
            }
        })
    };

    // The kills.
    for i in 0..KILLS {
        let wait = rng.range(50, 700);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        gateway.kill();
        println!(
            "kill {}/{KILLS} after {wait} ms ({} of {total} acknowledged by the broker)",
            i + 1,
            acked.load(Ordering::SeqCst)
        );
        gateway = spawn_gateway(&config_path, &gw_log);
        let addr2 = addr.clone();
        let ok = tokio::task::spawn_blocking(move || {
            wait_until(Duration::from_secs(30), || {
                try_get(&addr2, "/checkpoint").is_some_and(|(s, _)| s == 200)
            })
        })
        .await
        .unwrap();
        assert!(
            ok,
            "gateway did not restart: {}",
            std::fs::read_to_string(&gw_log).unwrap_or_default()
        );
    }

    // Let everything arrive.
    let _client = publisher.await.unwrap();
    let want = devices.len() as u64 + total as u64;
    let start = Instant::now();
    while acked.load(Ordering::SeqCst) < total && start.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        acked.load(Ordering::SeqCst),
        total,
        "broker did not ack everything"
    );
    let addr2 = addr.clone();
    let reached = tokio::task::spawn_blocking(move || {
        wait_until(Duration::from_secs(120), || {
            metric(&addr2, "prov_checkpoint_size") == Some(want)
        })
    })
    .await
    .unwrap();
    observing.store(false, Ordering::SeqCst);
    observer.join().unwrap();
    gateway.terminate();
    assert!(
        reached,
        "log did not reach {want} entries; gateway log:\n{}",
        std::fs::read_to_string(&gw_log).unwrap_or_default()
    );

    // Exactly once.
    let entries = log_entries(&config);
    assert_eq!(entries.len() as u64, want);
    let mut count: HashMap<Hash32, usize> = HashMap::new();
    for e in &entries {
        *count.entry(Hash32::blake3(e)).or_default() += 1;
    }
    for h in &hashes {
        assert_eq!(count.get(h), Some(&1), "event {h} not logged exactly once");
    }

    // The chain, and every checkpoint ever seen.
    let mut checkpoints = verify_chain_file(&config, &key);
    let seen = seen.lock().unwrap();
    assert!(!seen.is_empty());
    for note in seen.iter() {
        let cp = Checkpoint::open(note, &key).unwrap();
        checkpoints.push((cp.size(), cp.root()));
    }
    assert_consistent(&checkpoints);
    println!(
        "{} checkpoints in the chain and observed, {} entries, {KILLS} kills",
        checkpoints.len(),
        entries.len()
    );
}
