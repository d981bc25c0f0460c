//! Shared by the simulator tests: a line configuration for tests, an independent MQTT
//! subscriber, and the verification of received streams with the core's verifier.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use prov_firmware::device::{TopicKind, Topics};
use prov_schemas::Hash32;
use prov_schemas::checked::{CheckedEvent, verify_event};
use prov_schemas::cose::P256Backend;
use prov_schemas::keys::{DeviceId, PublicKey};
use prov_simulator::line::{Drain, LineConfig, Stop};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::{mpsc, oneshot};

/// A site name unique to this test process and `name`, so tests sharing a broker (or a
/// developer's) never see each other's topics or sessions.
pub fn site(name: &str) -> String {
    format!("t{}-{name}", std::process::id())
}

/// A fast, small line against `port`.
pub fn config(name: &str, port: u16, count: u64) -> LineConfig {
    let site = site(name);
    let mut c = LineConfig::new(&site).unwrap();
    c.broker.port = port;
    c.broker.client_prefix = format!("test-{site}");
    c.seed = 7;
    c.run_tag = "T".into();
    c.rate = 0.0;
    c.stop = Stop::Count(count);
    c.items_per_case = 3;
    c.cases_per_pallet = 2;
    c.excursion_probability = 0.3;
    c.queue_sectors = 64;
    c.drain = Drain::BrokerAck;
    c.drain_timeout = Duration::from_secs(30);
    c
}

/// Every device's public key.
pub fn keys(config: &LineConfig) -> HashMap<DeviceId, PublicKey> {
    config.device_keys().unwrap().into_iter().collect()
}

/// An independent subscriber (clean session, its own client id). Returns once its
/// subscriptions are acknowledged; every message arrives on the channel as (topic, payload).
/// It re-subscribes after a reconnect.
pub async fn subscribe(
    port: u16,
    id: &str,
    filters: &[String],
) -> (AsyncClient, mpsc::UnboundedReceiver<(String, Vec<u8>)>) {
    let mut options = MqttOptions::new(id, "127.0.0.1", port);
    options.set_max_packet_size(32 * 1024, 32 * 1024);
    options.set_keep_alive(Duration::from_secs(10));
    let (client, mut eventloop) = AsyncClient::new(options, 1024);
    let (tx, rx) = mpsc::unbounded_channel();
    let (ready_tx, ready_rx) = oneshot::channel();
    let filters = filters.to_vec();
    let sub = client.clone();
    tokio::spawn(async move {
        let mut ready = Some(ready_tx);
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    for f in &filters {
                        sub.subscribe(f.clone(), QoS::AtLeastOnce).await.unwrap();
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if let Some(ready) = ready.take() {
                        let _ = ready.send(());
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if tx.send((p.topic.clone(), p.payload.to_vec())).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(rumqttc::ConnectionError::RequestsDone) => return,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), ready_rx)
        .await
        .expect("subscriber ready")
        .unwrap();
    (client, rx)
}

/// What a subscriber saw of a line's events.
#[derive(Default)]
pub struct Received {
    /// Per device, per seq: the verified event (duplicates must be byte-identical).
    pub events: BTreeMap<DeviceId, BTreeMap<u64, CheckedEvent>>,
    /// Per device, the seqs in arrival order (duplicates included).
    pub arrivals: BTreeMap<DeviceId, Vec<u64>>,
    /// Messages received in all.
    pub messages: usize,
}

impl Received {
    /// Verifies one message from `topic` with the core's verifier and files it.
    pub fn add(&mut self, topic: &str, message: &[u8], keys: &HashMap<DeviceId, PublicKey>) {
        let (_, device, kind) = Topics::parse(topic).unwrap_or_else(|| panic!("topic {topic}"));
        assert_eq!(kind, TopicKind::Events, "{topic}");
        let key = keys
            .get(&device)
            .unwrap_or_else(|| panic!("unknown device {device}"));
        let checked = verify_event(message, key, &P256Backend)
            .unwrap_or_else(|e| panic!("{topic}: does not verify: {e}"));
        assert_eq!(checked.device(), &device, "kid equals the topic's device");
        let seq = checked.seq();
        self.messages += 1;
        self.arrivals.entry(device).or_default().push(seq);
        let per_device = self.events.entry(device).or_default();
        match per_device.get(&seq) {
            Some(old) => assert_eq!(old.message(), message, "{device} seq {seq} changed bytes"),
            None => {
                per_device.insert(seq, checked);
            }
        }
    }

    /// Whether every device has every seq from 1 to its entry in `last`.
    pub fn complete(&self, last: &BTreeMap<DeviceId, u64>) -> bool {
        last.iter().all(|(d, &n)| {
            self.events.get(d).map_or(n == 0, |e| {
                e.len() as u64 == n && e.keys().next_back() == Some(&n)
            })
        })
    }

    /// Asserts seqs 1..=last with unbroken prev chains for every device.
    pub fn check_chains(&self, last: &BTreeMap<DeviceId, u64>) {
        for (device, &n) in last {
            let events = self.events.get(device).cloned().unwrap_or_default();
            let seqs: Vec<u64> = events.keys().copied().collect();
            assert_eq!(seqs, (1..=n).collect::<Vec<_>>(), "{device}: seqs");
            let mut prev = Hash32::ZERO;
            for (seq, e) in &events {
                assert_eq!(e.prev(), prev, "{device} seq {seq}: prev");
                prev = e.hash();
            }
        }
    }
}

/// Reads messages from `rx` into `received` until `done(received)` or `timeout`.
pub async fn collect_until(
    rx: &mut mpsc::UnboundedReceiver<(String, Vec<u8>)>,
    received: &mut Received,
    keys: &HashMap<DeviceId, PublicKey>,
    timeout: Duration,
    mut done: impl FnMut(&Received) -> bool,
) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while !done(received) {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some((topic, message))) => received.add(&topic, &message, keys),
            Ok(None) | Err(_) => return false,
        }
    }
    true
}
