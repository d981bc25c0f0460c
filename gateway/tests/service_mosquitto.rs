//! The gateway in-process against a real Mosquitto (started by the test on a free port):
//! simulator events all logged with verifying proofs, receipts drain the devices' queues, the
//! chain verifies from block 0; and rejection classes end to end on the rejects topic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod svc_support;

use std::collections::HashSet;
use std::time::Duration;

use prov_gateway::quarantine::Quarantine;
use prov_gateway::verify::RejectCode;
use prov_schemas::Hash32;
use prov_simulator::line::{Drain, LineConfig, Stop};
use prov_simulator::testkit::Mosquitto;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use svc_support::*;

fn line(site: &str, port: u16, prefix: &str, seed: u64, tag: &str, count: u64) -> LineConfig {
    let mut c = LineConfig::new(site).unwrap();
    c.broker.port = port;
    c.broker.client_prefix = prefix.into();
    c.seed = seed;
    c.run_tag = tag.into();
    c.stop = Stop::Count(count);
    c.rate = 0.0;
    c.drain = Drain::Receipts;
    c.drain_timeout = Duration::from_secs(60);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn simulator_through_mosquitto_all_logged_and_proven() {
    if Mosquitto::binary().is_none() {
        eprintln!("skipped: mosquitto is not installed");
        return;
    }
    let broker = Mosquitto::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("mqtt://127.0.0.1:{}", broker.port());
    let (mut config, op) = make_config(dir.path(), Some(url), &unique("gw"));
    config.batch.max_delay_ms = 20;
    let key = gateway_key(&config);
    let running = prov_gateway::service::start(config.clone()).await.unwrap();
    let addr = running.http_addr.to_string();

    let sim = line("factory-a", broker.port(), &unique("sim"), 7, "T1", 300);
    let devices = sim.device_keys().unwrap();
    {
        let (addr, devices) = (addr.clone(), devices.clone());
        tokio::task::spawn_blocking(move || register(&addr, &op, &devices))
            .await
            .unwrap();
    }
    let report = prov_simulator::run_line(sim, None, std::future::pending())
        .await
        .unwrap();
    assert!(
        report.delivered,
        "devices' queues did not drain: {report:?}"
    );
    assert!(report.events >= 300);
    for d in &report.devices {
        assert_eq!(d.released, d.last_seq, "{} not fully receipted", d.device);
        assert_eq!(d.rejects, 0);
    }

    let entries = {
        let (addr, key) = (addr.clone(), key.clone());
        tokio::task::spawn_blocking(move || verify_all_proofs(&addr, &key))
            .await
            .unwrap()
    };
    assert_eq!(entries.len() as u64, devices.len() as u64 + report.events);
    running.shutdown().await.unwrap();

    let logged = log_entries(&config);
    assert_eq!(logged, entries);
    let checkpoints = verify_chain_file(&config, &key);
    assert_consistent(&checkpoints);
    assert_eq!(checkpoints.last().unwrap().0, logged.len() as u64);
}

/// Messages of a pre-signed stream (topic, message), per device in seq order.
fn presigned(site: &str, seed: u64, tag: &str, count: u64) -> Vec<(String, Vec<u8>)> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stream.bin");
    let config = line(site, 1, "x", seed, tag, count);
    prov_simulator::presign::presign(&config, &path).unwrap();
    let mut file = std::io::BufReader::new(std::fs::File::open(&path).unwrap());
    let mut out = Vec::new();
    while let Some(r) = prov_simulator::presign::read_record(&mut file).unwrap() {
        out.push(r);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rejection_classes_reach_the_rejects_topic() {
    if Mosquitto::binary().is_none() {
        eprintln!("skipped: mosquitto is not installed");
        return;
    }
    let broker = Mosquitto::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("mqtt://127.0.0.1:{}", broker.port());
    let (mut config, op) = make_config(dir.path(), Some(url), &unique("gw"));
    config.batch.max_delay_ms = 10;
    let running = prov_gateway::service::start(config.clone()).await.unwrap();
    let addr = running.http_addr.to_string();

    let sim = line("factory-a", broker.port(), "x", 1, "A", 10);
    let devices = sim.device_keys().unwrap();
    {
        let (addr, devices) = (addr.clone(), devices.clone());
        tokio::task::spawn_blocking(move || register(&addr, &op, &devices))
            .await
            .unwrap();
    }
    let stream_a = presigned("factory-a", 1, "A", 10);
    let stream_b = presigned("factory-a", 1, "B", 10); // same keys, other payloads
    let stream_other_key = presigned("factory-a", 2, "A", 10); // same ids, other keys
    let stream_unknown = presigned("factory-z", 1, "A", 10); // unregistered ids

    // A subscriber to every rejects topic.
    let mut opts = MqttOptions::new(unique("obs"), "127.0.0.1", broker.port());
    opts.set_clean_session(true);
    let (client, mut eventloop) = AsyncClient::new(opts, 100);
    client
        .subscribe("prov/v1/+/+/rejects", QoS::AtLeastOnce)
        .await
        .unwrap();
    let (line_tx, mut line_rx) = tokio::sync::mpsc::unbounded_channel::<(String, String)>();
    tokio::spawn(async move {
        while let Ok(ev) = eventloop.poll().await {
            if let Event::Incoming(Packet::Publish(p)) = ev {
                let _ = line_tx.send((p.topic.clone(), String::from_utf8_lossy(&p.payload).into()));
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;

    let first = &stream_a[0];
    let (topic_a, msg_a) = first.clone();
    let device_a = topic_a.split('/').nth(3).unwrap().to_owned();
    // The first seq-1 message of the same device in stream B: an equivocating twin.
    let (_, twin) = stream_b
        .iter()
        .find(|(t, _)| *t == topic_a)
        .cloned()
        .unwrap();
    assert_ne!(twin, msg_a);
    let (_, forged) = stream_other_key
        .iter()
        .find(|(t, _)| *t == topic_a)
        .cloned()
        .unwrap();
    let (unknown_topic, unknown_msg) = stream_unknown[0].clone();
    // Another registered device's topic carrying device A's message.
    let other_topic = stream_a
        .iter()
        .map(|(t, _)| t.clone())
        .find(|t| *t != topic_a)
        .unwrap();
    let misrouted = stream_a
        .iter()
        .find(|(t, _)| *t == topic_a)
        .map(|(_, m)| m.clone())
        .unwrap();

    let send = |topic: String, msg: Vec<u8>| {
        let client = client.clone();
        async move {
            client
                .publish(topic, QoS::AtLeastOnce, false, msg)
                .await
                .unwrap();
        }
    };
    send(topic_a.clone(), msg_a.clone()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    send(topic_a.clone(), twin.clone()).await;
    send(topic_a.clone(), forged.clone()).await;
    send(unknown_topic.clone(), unknown_msg.clone()).await;
    send(other_topic.clone(), misrouted.clone()).await;

    let expected = [
        (
            topic_a.replace("/events", "/rejects"),
            RejectCode::Equivocation,
            &twin,
        ),
        (
            topic_a.replace("/events", "/rejects"),
            RejectCode::BadSignature,
            &forged,
        ),
        (
            unknown_topic.replace("/events", "/rejects"),
            RejectCode::UnknownDevice,
            &unknown_msg,
        ),
        (
            other_topic.replace("/events", "/rejects"),
            RejectCode::TopicMismatch,
            &misrouted,
        ),
    ];
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while got.len() < expected.len() {
        match tokio::time::timeout_at(deadline, line_rx.recv()).await {
            Ok(Some(l)) => got.push(l),
            _ => break,
        }
    }
    for (topic, code, msg) in &expected {
        let hash = Hash32::blake3(msg).to_hex();
        assert!(
            got.iter().any(|(t, l)| t == topic
                && l.split(' ').nth(1) == Some(code.as_str())
                && l.ends_with(&hash)),
            "no {code} line on {topic}; got {got:?}"
        );
    }
    assert!(device_a.starts_with("factory-a"));
    running.shutdown().await.unwrap();

    // Quarantine holds them; nothing of them is in the log.
    let (q, _) = Quarantine::open(config.quarantine_path()).unwrap();
    for code in [
        RejectCode::Equivocation,
        RejectCode::BadSignature,
        RejectCode::UnknownDevice,
        RejectCode::TopicMismatch,
    ] {
        assert!(q.counts().get(&code).copied().unwrap_or(0) >= 1, "{code}");
    }
    let logged: HashSet<Hash32> = log_entries(&config)
        .iter()
        .map(|e| Hash32::blake3(e))
        .collect();
    assert!(logged.contains(&Hash32::blake3(&msg_a)));
    for (_, _, msg) in &expected[..3] {
        assert!(!logged.contains(&Hash32::blake3(msg)));
    }
}
