//! `prov` as a child process with its embedded broker (rumqttd): `init`, `gateway run`,
//! `device add` for the simulator's devices, the simulator through the embedded broker (every
//! event logged with a verifying proof, receipts drain the queues), `device revoke` then a
//! `revoked-device` reject line, SIGTERM, the chain from block 0, and `reindex` on a copy giving
//! indexes identical to the live ones.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod svc_support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use prov_gateway::config::Config;
use prov_gateway::index::Indexes;
use prov_schemas::Hash32;
use prov_simulator::line::{Drain, LineConfig, Stop};
use prov_simulator::testkit::free_port;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use svc_support::*;

const PROV: &str = env!("CARGO_BIN_EXE_prov");

fn prov(args: &[&str], config: Option<&Path>) -> String {
    let mut cmd = Command::new(PROV);
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    let out = cmd.args(args).output().unwrap();
    assert!(
        out.status.success(),
        "prov {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_broker_cli_registry_revoke_and_reindex() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    prov(
        &[
            "init",
            "--data-dir",
            data.to_str().unwrap(),
            "--origin",
            ORIGIN,
        ],
        None,
    );
    let config_path = data.join("prov.toml");
    let mut config = Config::from_file(&config_path).unwrap();
    let http_port = free_port().unwrap();
    let mqtt_port = free_port().unwrap();
    config.http.listen = format!("127.0.0.1:{http_port}").parse().unwrap();
    config.mqtt.embedded_port = mqtt_port;
    config.mqtt.client_id = unique("gw");
    config.batch.max_delay_ms = 20;
    std::fs::write(&config_path, config.to_toml().unwrap()).unwrap();
    let key = gateway_key(&config);
    let addr = format!("127.0.0.1:{http_port}");

    let child = Command::new(PROV)
        .args(["--config", config_path.to_str().unwrap(), "gateway", "run"])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut gateway = ChildGuard(Some(child));
    assert!(wait_until(Duration::from_secs(20), || {
        try_get(&addr, "/checkpoint").is_some_and(|(s, _)| s == 200)
    }));

    let mut sim = LineConfig::new("factory-a").unwrap();
    sim.broker.port = mqtt_port;
    sim.broker.client_prefix = unique("sim");
    sim.seed = 11;
    sim.stop = Stop::Count(200);
    sim.rate = 0.0;
    sim.drain = Drain::Receipts;
    sim.drain_timeout = Duration::from_secs(60);
    let devices = sim.device_keys().unwrap();
    for (id, pk) in &devices {
        let out = prov(
            &[
                "device",
                "add",
                "--id",
                id.as_str(),
                "--public-key",
                &hex::encode(pk.to_sec1_uncompressed()),
            ],
            Some(&config_path),
        );
        assert!(out.contains("accepted"), "{out}");
    }
    let report = prov_simulator::run_line(sim.clone(), None, std::future::pending())
        .await
        .unwrap();
    assert!(report.delivered, "queues did not drain: {report:?}");
    let entries = {
        let (addr, key) = (addr.clone(), key.clone());
        tokio::task::spawn_blocking(move || verify_all_proofs(&addr, &key))
            .await
            .unwrap()
    };
    assert_eq!(entries.len() as u64, devices.len() as u64 + report.events);

    // Revoke one device; its next event is rejected as revoked-device.
    let (victim, _) = devices[0];
    let out = prov(
        &["device", "revoke", "--id", victim.as_str()],
        Some(&config_path),
    );
    assert!(out.contains("accepted"), "{out}");
    let list = prov(&["device", "list"], Some(&config_path));
    assert!(
        list.lines()
            .any(|l| l.starts_with(victim.as_str()) && l.contains("revoked@")),
        "{list}"
    );
    let mut opts = MqttOptions::new(unique("obs"), "127.0.0.1", mqtt_port);
    opts.set_clean_session(true);
    let (client, mut eventloop) = AsyncClient::new(opts, 100);
    let rejects = format!("prov/v1/factory-a/{victim}/rejects");
    client.subscribe(&rejects, QoS::AtLeastOnce).await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        while let Ok(ev) = eventloop.poll().await {
            if let Event::Incoming(Packet::Publish(p)) = ev {
                let _ = tx.send(String::from_utf8_lossy(&p.payload).into());
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stream = tmp.path().join("late.bin");
    let mut late = sim.clone();
    late.run_tag = "LATE".into();
    late.stop = Stop::Count(30);
    prov_simulator::presign::presign(&late, &stream).unwrap();
    let mut file = std::io::BufReader::new(std::fs::File::open(&stream).unwrap());
    let topic = format!("prov/v1/factory-a/{victim}/events");
    let mut message = None;
    while let Some((t, m)) = prov_simulator::presign::read_record(&mut file).unwrap() {
        if t == topic {
            message = Some(m);
            break;
        }
    }
    let message = message.expect("the victim has an event in the late stream");
    client
        .publish(&topic, QoS::AtLeastOnce, false, message.clone())
        .await
        .unwrap();
    let line = tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(line.split(' ').nth(1), Some("revoked-device"), "{line}");
    assert!(line.ends_with(&Hash32::blake3(&message).to_hex()));

    gateway.terminate();
    let logged = log_entries(&config);
    assert_eq!(logged.len(), entries.len() + 1); // + the revocation
    assert_consistent(&verify_chain_file(&config, &key));

    // Reindex a copy: identical indexes.
    let copy = tmp.path().join("copy");
    let status = Command::new("cp")
        .arg("-r")
        .arg(&data)
        .arg(&copy)
        .status()
        .unwrap();
    assert!(status.success());
    let rebuilt = tmp.path().join("rebuilt");
    let out = prov(
        &[
            "reindex",
            "--data-dir",
            copy.to_str().unwrap(),
            "--out",
            rebuilt.to_str().unwrap(),
        ],
        None,
    );
    let digest = out
        .lines()
        .find_map(|l| l.strip_prefix("digest "))
        .unwrap()
        .trim()
        .to_owned();
    let live = Indexes::open(config.index_dir()).unwrap();
    assert_eq!(live.digest().unwrap().to_hex(), digest);
}
