//! The simulator against a real broker: a Mosquitto started by the test on a free loopback port
//! (`max_queued_messages 0`, `persistence false`). An independent subscriber receives every
//! event and verifies it with the core's verifier under the devices' keys; per device the seqs
//! run 1..N and the prev chain is unbroken. The test also plays the gateway (receipts and
//! rejects) and cuts the simulator's network to check it re-publishes what no receipt covers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use prov_firmware::device::Topics;
use prov_schemas::Hash32;
use prov_schemas::event::BizStep;
use prov_simulator::line::{Drain, LineReport};
use prov_simulator::testkit::{Mosquitto, Proxy};
use prov_simulator::{Recorded, run_line};
use rumqttc::QoS;
use tokio::sync::{mpsc, oneshot};

/// The broker, or `None` (with a message) when Mosquitto is not installed.
fn broker() -> Option<Mosquitto> {
    if Mosquitto::binary().is_none() {
        eprintln!("SKIPPED: mosquitto is not installed (apt-get install mosquitto)");
        return None;
    }
    Some(Mosquitto::start().expect("start mosquitto"))
}

fn last_seqs(report: &LineReport) -> BTreeMap<prov_schemas::keys::DeviceId, u64> {
    report
        .devices
        .iter()
        .map(|d| (d.device, d.last_seq))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_reaches_an_independent_subscriber_and_verifies() {
    let Some(broker) = broker() else { return };
    let mut config = config("all", broker.port(), 150);
    config.lines = 2;
    // The first events of each device are signed before "SNTP" answers.
    config.sntp_delay = Duration::from_millis(30);
    let keys = keys(&config);
    let filter = format!("prov/v1/{}/+/events", config.site);
    let (_sub, mut rx) = subscribe(broker.port(), &format!("{}-sub", config.site), &[filter]).await;

    let (obs_tx, mut obs_rx) = mpsc::unbounded_channel::<Recorded>();
    let report = run_line(config.clone(), Some(obs_tx), std::future::pending())
        .await
        .unwrap();
    assert!(report.delivered, "{report:?}\n{}", broker.log());
    assert!(report.events >= 150, "{}", report.events);
    assert_eq!(report.devices.len(), 12);
    let last = last_seqs(&report);
    assert_eq!(last.values().sum::<u64>(), report.events);

    let mut received = Received::default();
    let complete = collect_until(
        &mut rx,
        &mut received,
        &keys,
        Duration::from_secs(30),
        |r| r.complete(&last),
    )
    .await;
    assert!(complete, "incomplete: {:?}", received.arrivals);
    received.check_chains(&last);

    // What the line made, as the observer saw it, matches what was received.
    let mut observed = Vec::new();
    while let Ok(r) = obs_rx.try_recv() {
        observed.push(r);
    }
    assert_eq!(observed.len() as u64, report.events);
    let items: Vec<_> = observed
        .iter()
        .filter_map(|r| r.commissioned_item())
        .collect();
    assert_eq!(items.len() as u64, report.items);
    assert!(report.items > 10);
    let mut steps = BTreeMap::new();
    for e in received.events.values().flat_map(|m| m.values()) {
        *steps.entry(e.event().biz_step).or_insert(0u64) += 1;
    }
    for step in [
        BizStep::Commissioning,
        BizStep::Packing,
        BizStep::SensorReporting,
        BizStep::Shipping,
    ] {
        assert!(
            steps.contains_key(&Some(step)),
            "no {step} events: {steps:?}"
        );
    }
    let unsynced = received
        .events
        .values()
        .flat_map(|m| m.values())
        .filter(|e| !e.event().clock_synced)
        .count();
    eprintln!(
        "{} events from 12 devices, {} exceptions, {unsynced} before clock sync",
        report.events, report.exceptions
    );

    // Each device left `offline` retained on its status topic.
    let status = format!("prov/v1/{}/+/status", config.site);
    let (_s, mut status_rx) =
        subscribe(broker.port(), &format!("{}-status", config.site), &[status]).await;
    let mut offline = BTreeMap::new();
    while offline.len() < 12 {
        let (topic, payload) = tokio::time::timeout(Duration::from_secs(5), status_rx.recv())
            .await
            .expect("retained status")
            .unwrap();
        offline.insert(topic, payload);
    }
    assert!(offline.values().all(|p| p == b"offline"), "{offline:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_free_the_queue_and_rejects_are_surfaced() {
    let Some(broker) = broker() else { return };
    let mut config = config("receipts", broker.port(), 80);
    config.drain = Drain::Receipts;
    let keys = keys(&config);
    let site = config.site.clone();
    let (gateway, mut rx) = subscribe(
        broker.port(),
        &format!("{site}-gateway"),
        &[format!("prov/v1/{site}/+/events")],
    )
    .await;

    // The test plays the gateway: verify, store, and publish each device's receipt (the highest
    // contiguous seq); reject the first message of the packer once.
    let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
    let gateway_task = tokio::spawn(async move {
        let mut received = Received::default();
        let mut rejected = false;
        loop {
            let (topic, message) = tokio::select! {
                m = rx.recv() => match m { Some(m) => m, None => break },
                _ = &mut stop_rx => break,
            };
            received.add(&topic, &message, &keys);
            let (_, device, _) = Topics::parse(&topic).unwrap();
            let topics = Topics::new(&site, &device).unwrap();
            let seqs = &received.events[&device];
            let contiguous = (1..)
                .take_while(|s| seqs.contains_key(s))
                .last()
                .unwrap_or(0);
            gateway
                .publish(
                    &topics.receipts,
                    QoS::AtLeastOnce,
                    false,
                    contiguous.to_string(),
                )
                .await
                .unwrap();
            if !rejected && device.as_str().ends_with("packer") {
                rejected = true;
                let line = format!("- test-reject {}", Hash32::blake3(&message).to_hex());
                gateway
                    .publish(&topics.rejects, QoS::AtLeastOnce, false, line)
                    .await
                    .unwrap();
            }
        }
        received
    });

    let report = run_line(config.clone(), None, std::future::pending())
        .await
        .unwrap();
    let _ = stop_tx.send(());
    let received = gateway_task.await.unwrap();
    assert!(report.delivered, "{report:?}");
    let last = last_seqs(&report);
    received.check_chains(&last);
    for d in &report.devices {
        assert_eq!(
            d.released, d.last_seq,
            "{}: queue freed by receipts",
            d.device
        );
        let want_rejects = u32::from(d.device.as_str().ends_with("packer"));
        assert_eq!(d.rejects, want_rejects, "{}", d.device);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_receipts_the_queue_is_republished_in_order_after_an_outage() {
    let Some(broker) = broker() else { return };
    let proxy = Proxy::start(broker.port()).unwrap();
    // The simulator goes through the proxy; the observer connects to the broker directly and
    // stays connected through the outage.
    let mut config = config("outage", proxy.port(), 120);
    config.rate = 150.0;
    let keys = keys(&config);
    let filter = format!("prov/v1/{}/+/events", config.site);
    let (_sub, mut rx) = subscribe(broker.port(), &format!("{}-sub", config.site), &[filter]).await;

    let run = tokio::spawn(run_line(config.clone(), None, std::future::pending()));
    let mut received = Received::default();
    assert!(
        collect_until(
            &mut rx,
            &mut received,
            &keys,
            Duration::from_secs(20),
            |r| r.messages >= 20
        )
        .await
    );
    // Wi-Fi drops for a while; the devices keep signing into their flash queues.
    proxy.cut();
    let before: BTreeMap<_, _> = received
        .arrivals
        .iter()
        .map(|(d, seqs)| (*d, seqs.len()))
        .collect();
    tokio::time::sleep(Duration::from_millis(700)).await;
    proxy.restore();

    let report = run.await.unwrap().unwrap();
    assert!(report.delivered, "{report:?}");
    let last = last_seqs(&report);
    assert!(
        collect_until(
            &mut rx,
            &mut received,
            &keys,
            Duration::from_secs(30),
            |r| r.complete(&last)
        )
        .await,
        "incomplete after the outage: {:?}",
        received.arrivals
    );
    received.check_chains(&last);
    for d in &report.devices {
        // Broker acks freed nothing: only receipts do, and there were none.
        assert_eq!(d.released, 0, "{}", d.device);
        assert!(d.connects >= 2, "{} reconnected: {}", d.device, d.connects);
    }
    // Every device that had published before the outage published its queue again from
    // seq 1, in order.
    for (device, n_before) in before {
        let arrivals = &received.arrivals[&device];
        let after = &arrivals[n_before..];
        let restart = after
            .iter()
            .rposition(|&s| s == 1)
            .unwrap_or_else(|| panic!("{device} did not re-publish seq 1: {arrivals:?}"));
        let drained = &after[restart..];
        assert!(
            drained.windows(2).all(|w| w[1] == w[0] + 1),
            "{device}: not drained in order: {drained:?}"
        );
        assert_eq!(drained.last(), last.get(&device), "{device}");
    }
}
