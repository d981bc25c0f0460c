//! MQTT ingest with rumqttc: a persistent session, QoS 1, manual acknowledgements.
//!
//! Why it is built this way (FIELD-NOTES, MQTT):
//! - rumqttc sends acknowledgements only while its event loop is polled, so the poll task does
//!   nothing but forward incoming PUBLISH packets into the pipeline's **unbounded** channel: it
//!   never waits on the pipeline. What bounds memory is the broker's in-flight window towards
//!   this client (Mosquitto `max_inflight_messages`, rumqttd `max_inflight_count`): it sends no
//!   more until we acknowledge.
//! - Acknowledgements are issued by the pipeline thread after the batch is durable (SPEC §3).
//! - A stable client id and `clean_session = false`: the broker keeps our subscription and
//!   queues messages while the gateway is down or restarting (with `max_queued_messages 0`
//!   Mosquitto drops none), and redelivers unacknowledged ones after a reconnect or a crash.
//! - Every connection gets a new *generation*. An acknowledgement for a packet received on an
//!   older connection is dropped: the broker redelivers that message on the new connection, and
//!   its old packet id may already name another message there.
//! - Reconnection backs off exponentially from 100 ms to 5 s; the subscription is renewed on
//!   every CONNACK (a broker that lost our session needs it).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Outgoing, Packet, Publish, QoS};

use crate::metrics::Metrics;
use crate::pipeline::{Item, Outbox, now_ms};

/// The subscription filter of every device's events (SPEC §3).
pub const EVENTS_FILTER: &str = "prov/v1/+/+/events";

/// Largest incoming packet accepted from the broker.
pub const MAX_INCOMING_PACKET: usize = 1 << 20;

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long the pipeline waits to hand one request to the client before giving up on it (the
/// connection is then down; the broker redelivers unacknowledged messages).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A broker URL that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("broker URL {0:?} is not mqtt://host:port (or tcp://host:port, host:port)")]
pub struct BadUrl(pub String);

/// Parses `mqtt://host:port`, `tcp://host:port` or `host:port` (port default 1883).
pub fn parse_url(url: &str) -> Result<(String, u16), BadUrl> {
    let rest = url
        .strip_prefix("mqtt://")
        .or_else(|| url.strip_prefix("tcp://"))
        .unwrap_or(url)
        .trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().map_err(|_| BadUrl(url.to_owned()))?),
        None => (rest, 1883),
    };
    if host.is_empty() || host.contains('/') {
        return Err(BadUrl(url.to_owned()));
    }
    Ok((host.trim_matches(['[', ']']).to_owned(), port))
}

/// Settings of the ingest connection.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// Broker host.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// Stable client id.
    pub client_id: String,
    /// `$share/{group}/` prefix, if any.
    pub shared_group: Option<String>,
    /// Outgoing in-flight window.
    pub inflight: u16,
    /// Keep-alive.
    pub keep_alive: Duration,
}

/// The client side the pipeline uses: acknowledgements, receipts and reject lines.
#[derive(Debug, Clone)]
pub struct MqttOutbox {
    client: AsyncClient,
    generation: Arc<AtomicU64>,
    runtime: tokio::runtime::Handle,
}

impl Outbox for MqttOutbox {
    fn ack(&self, publish: &Publish, generation: u64) {
        if generation != self.generation.load(Ordering::SeqCst) {
            tracing::debug!(
                pkid = publish.pkid,
                "dropping an ack from an older connection"
            );
            return;
        }
        let _entered = self.runtime.enter();
        let done = self.runtime.block_on(tokio::time::timeout(
            REQUEST_TIMEOUT,
            self.client.ack(publish),
        ));
        if !matches!(done, Ok(Ok(()))) {
            tracing::warn!(
                pkid = publish.pkid,
                "could not hand an ack to the MQTT client"
            );
        }
    }

    fn send(&self, topic: String, payload: Vec<u8>) {
        let _entered = self.runtime.enter();
        let done = self.runtime.block_on(tokio::time::timeout(
            REQUEST_TIMEOUT,
            self.client.publish(topic, QoS::AtLeastOnce, false, payload),
        ));
        if !matches!(done, Ok(Ok(()))) {
            tracing::warn!("could not hand a receipt or reject line to the MQTT client");
        }
    }
}

/// A running ingest connection.
#[derive(Debug)]
pub struct Ingest {
    client: AsyncClient,
    stopping: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Ingest {
    /// Connects (in the background, retrying) and forwards every PUBLISH to `tx`. Returns the
    /// connection and the outbox the pipeline acknowledges through.
    pub fn start(
        config: &IngestConfig,
        tx: Sender<Item>,
        metrics: Arc<crate::pipeline::Shared>,
    ) -> (Ingest, MqttOutbox) {
        let mut options =
            MqttOptions::new(config.client_id.clone(), config.host.clone(), config.port);
        options
            .set_clean_session(false)
            .set_manual_acks(true)
            .set_keep_alive(config.keep_alive)
            .set_inflight(config.inflight.max(1))
            // Larger than any valid message (16 KiB), so that an oversize one reaches the verify
            // step and is rejected and acknowledged, instead of failing the connection and
            // being redelivered forever.
            .set_max_packet_size(MAX_INCOMING_PACKET, 64 * 1024);
        // Requests (acks, receipts, rejects) queue here while the poll task drains them.
        let cap = usize::from(config.inflight).saturating_mul(4).max(10_000);
        let (client, eventloop) = AsyncClient::new(options, cap);
        let generation = Arc::new(AtomicU64::new(0));
        let stopping = Arc::new(AtomicBool::new(false));
        let filter = match &config.shared_group {
            Some(g) => format!("$share/{g}/{EVENTS_FILTER}"),
            None => EVENTS_FILTER.to_owned(),
        };
        let task = tokio::spawn(poll(
            eventloop,
            client.clone(),
            filter,
            tx,
            Arc::clone(&generation),
            Arc::clone(&stopping),
            metrics,
        ));
        let outbox = MqttOutbox {
            client: client.clone(),
            generation,
            runtime: tokio::runtime::Handle::current(),
        };
        (
            Ingest {
                client,
                stopping,
                task,
            },
            outbox,
        )
    }

    /// Disconnects cleanly (after the pipeline has issued its last acknowledgements) and waits
    /// for the poll task, at most `grace`.
    pub async fn stop(self, grace: Duration) {
        self.stopping.store(true, Ordering::SeqCst);
        let _ = self.client.try_disconnect();
        let mut task = self.task;
        if tokio::time::timeout(grace, &mut task).await.is_err() {
            task.abort();
        }
    }
}

async fn poll(
    mut eventloop: EventLoop,
    client: AsyncClient,
    filter: String,
    tx: Sender<Item>,
    generation: Arc<AtomicU64>,
    stopping: Arc<AtomicBool>,
    shared: Arc<crate::pipeline::Shared>,
) {
    let metrics: &Metrics = &shared.metrics;
    let mut backoff = MIN_BACKOFF;
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                let g = generation.fetch_add(1, Ordering::SeqCst) + 1;
                metrics.mqtt_connected.store(1, Ordering::Relaxed);
                metrics.mqtt_connects.fetch_add(1, Ordering::Relaxed);
                backoff = MIN_BACKOFF;
                tracing::info!(
                    generation = g,
                    session_present = ack.session_present,
                    "connected to the broker"
                );
                if let Err(e) = client.try_subscribe(filter.clone(), QoS::AtLeastOnce) {
                    tracing::error!("subscribe request failed: {e}");
                }
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                metrics.mqtt_received.fetch_add(1, Ordering::Relaxed);
                let item = Item::Mqtt {
                    publish,
                    generation: generation.load(Ordering::SeqCst),
                    received_ms: now_ms(),
                };
                // Never blocks (unbounded); fails only once the pipeline is gone.
                if tx.send(item).is_err() && !stopping.load(Ordering::SeqCst) {
                    tracing::warn!("pipeline gone; message left unacknowledged for redelivery");
                }
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                if stopping.load(Ordering::SeqCst) {
                    metrics.mqtt_connected.store(0, Ordering::Relaxed);
                    return;
                }
            }
            Ok(_) => {}
            Err(e) => {
                metrics.mqtt_connected.store(0, Ordering::Relaxed);
                if stopping.load(Ordering::SeqCst) {
                    return;
                }
                // New generation at once: acks of this connection's packets are now stale.
                generation.fetch_add(1, Ordering::SeqCst);
                tracing::warn!("broker connection: {e}; retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}
