//! Running a line against an MQTT broker ([`run_line`]).
//!
//! Each board gets its own task and its own MQTT connection, as each physical board has:
//!
//! - client id `{client_prefix}-{device_id}`, clean session **off** (a persistent session: the
//!   broker keeps the board's subscriptions and queues its receipts while it is away), last will
//!   `offline` retained on its status topic, `online` retained once connected;
//! - it subscribes to its receipts and rejects topics (QoS 1);
//! - it publishes its queued messages on its events topic (QoS 1), oldest first, and frees its
//!   flash queue **only** on a receipt: a broker's PUBACK proves nothing about the gateway;
//! - on every (re)connection it starts again from the oldest unreceipted message, so a message
//!   lost anywhere between broker and gateway is sent again (the gateway stores duplicates
//!   once); reconnection attempts back off exponentially from 100 ms to 5 s.
//!
//! The network side of each board is split in two tasks, because an rumqttc event loop must be
//! polled continuously for anything (acks included) to move (FIELD-NOTES): a poll task that
//! never blocks (it forwards what arrives through an unbounded channel) and the board task,
//! which records events and publishes with `try_publish`, so a slow or absent broker never
//! stalls the line: events keep being signed into the flash queue, which is what the real
//! device does while its Wi-Fi is down.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::Result;
use rumqttc::{
    AsyncClient, ClientError, ConnectionError, Event, EventLoop, LastWill, MqttOptions, Outgoing,
    Packet, QoS,
};
use tokio::sync::{mpsc, watch};

use prov_firmware::device::{STATUS_OFFLINE, STATUS_ONLINE, Topics};

use crate::board::{Board, Observation, Recorded};
use crate::line::{DeviceReport, Drain, Line, LineConfig, LineReport, Stop};

/// Reconnection backoff bounds.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often a board retries publishing when rumqttc's request channel was full.
const TICK: Duration = Duration::from_millis(20);
/// rumqttc request channel size and in-flight window per board.
const CHANNEL: usize = 64;
const INFLIGHT: u16 = 32;
/// Largest MQTT packet: a 16 KiB message plus topic and headers.
const MAX_PACKET: usize = 20 * 1024;
/// Observations waiting per board.
const OBSERVATIONS: usize = 256;
/// How long a stopping board waits for its `offline` status and disconnect to go out.
const FAREWELL: Duration = Duration::from_secs(2);

/// What the poll task tells its board.
#[derive(Debug)]
enum Net {
    Connected,
    Disconnected(String),
    Receipt(Vec<u8>),
    Reject(Vec<u8>),
    PubAck,
}

/// Runs `config`'s line against its broker until it stops (count or duration reached, then
/// delivered or timed out) or `shutdown` completes. Every recorded event is also sent to
/// `observer`, if given (e.g. to print the Digital Links of commissioned items).
pub async fn run_line(
    config: LineConfig,
    observer: Option<mpsc::UnboundedSender<Recorded>>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<LineReport> {
    let Line { boards, plan } = Line::build(&config)?;
    let started = Instant::now();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut inputs = Vec::new();
    let mut tasks = Vec::new();
    for board in boards {
        // Bounded: with `rate` 0 the script outruns signing; the driver then waits for the
        // slowest board instead of queueing observations without limit.
        let (tx, rx) = mpsc::channel(OBSERVATIONS);
        inputs.push(tx);
        let task = BoardTask::new(board, &config, rx, observer.clone(), stop_rx.clone());
        tasks.push(tokio::spawn(task.run()));
    }
    // Only the board tasks hold receivers now: `closed()` tells when they have all finished.
    drop(stop_rx);

    // The script: paced at `rate`, stopped by count, duration or shutdown.
    let pace = (config.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / config.rate));
    let deadline = match config.stop {
        Stop::Duration(d) => Some(started + d),
        _ => None,
    };
    let mut planned = 0u64;
    let mut next_at = tokio::time::Instant::now();
    tokio::pin!(shutdown);
    let mut interrupted = false;
    for step in plan {
        if let Stop::Count(n) = config.stop
            && planned >= n
        {
            break;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        if let Some(pace) = pace
            && step.events > 0
        {
            tokio::select! {
                () = tokio::time::sleep_until(next_at) => {}
                () = &mut shutdown => { interrupted = true; break; }
            }
            next_at += pace * step.events;
        }
        planned += u64::from(step.events);
        let index = Line::board_index(step.line, step.role);
        if let Some(tx) = inputs.get(index) {
            tokio::select! {
                // A board task only ends after its input closes, so this cannot fail.
                sent = tx.send(step.observation) => { let _ = sent; }
                () = &mut shutdown => { interrupted = true; break; }
            }
        }
    }
    drop(inputs);
    if interrupted {
        let _ = stop_tx.send(true);
    } else {
        // Producing is over; the boards deliver until done, timeout or shutdown.
        tokio::select! {
            () = &mut shutdown => { let _ = stop_tx.send(true); }
            () = wait_all(&stop_tx) => {}
        }
    }

    let mut report = LineReport::default();
    let mut delivered = true;
    for task in tasks {
        let outcome = task.await?;
        delivered &= outcome.delivered;
        report.events += outcome.report.events;
        report.exceptions += outcome.report.exceptions;
        report.items += outcome.report.items;
        report.scan_errors += outcome.report.scan_errors;
        report.role_errors += outcome.report.role_errors;
        report.record_errors += outcome.report.record_errors;
        report.devices.extend(outcome.report.devices);
    }
    report.delivered = delivered && !interrupted;
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Resolves when every board task has dropped its stop receiver (i.e. finished).
async fn wait_all(stop_tx: &watch::Sender<bool>) {
    stop_tx.closed().await;
}

struct Outcome {
    report: LineReport,
    delivered: bool,
}

struct BoardTask {
    board: Board,
    topics: Topics,
    options: MqttOptions,
    input: mpsc::Receiver<Observation>,
    observer: Option<mpsc::UnboundedSender<Recorded>>,
    stop: watch::Receiver<bool>,
    drain: Drain,
    drain_timeout: Duration,
    report: LineReport,
    // Connection state.
    connected: bool,
    last_published: u64,
    publishes: u64,
    acks: u64,
    published_total: u64,
    connects: u32,
}

impl BoardTask {
    fn new(
        board: Board,
        config: &LineConfig,
        input: mpsc::Receiver<Observation>,
        observer: Option<mpsc::UnboundedSender<Recorded>>,
        stop: watch::Receiver<bool>,
    ) -> BoardTask {
        let topics = board.topics().clone();
        let client_id = format!("{}-{}", config.broker.client_prefix, board.device().id());
        let mut options = MqttOptions::new(client_id, &config.broker.host, config.broker.port);
        options
            .set_clean_session(false)
            .set_keep_alive(Duration::from_secs(10))
            .set_inflight(INFLIGHT)
            .set_max_packet_size(MAX_PACKET, MAX_PACKET)
            .set_last_will(LastWill::new(
                &topics.status,
                STATUS_OFFLINE,
                QoS::AtLeastOnce,
                true,
            ));
        BoardTask {
            board,
            topics,
            options,
            input,
            observer,
            stop,
            drain: config.drain,
            drain_timeout: config.drain_timeout,
            report: LineReport::default(),
            connected: false,
            last_published: 0,
            publishes: 0,
            acks: 0,
            published_total: 0,
            connects: 0,
        }
    }

    async fn run(mut self) -> Outcome {
        let (client, eventloop) = AsyncClient::new(self.options.clone(), CHANNEL);
        let (net_tx, mut net_rx) = mpsc::unbounded_channel();
        let poller = tokio::spawn(poll(eventloop, self.topics.clone(), net_tx));
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut input_open = true;
        let mut stopping = false;
        let mut drain_deadline: Option<tokio::time::Instant> = None;
        let mut delivered = false;
        loop {
            if !input_open && drain_deadline.is_none() {
                drain_deadline = Some(tokio::time::Instant::now() + self.drain_timeout);
            }
            if !input_open && self.is_delivered() {
                delivered = true;
                break;
            }
            if stopping || drain_deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                break;
            }
            tokio::select! {
                observation = self.input.recv(), if input_open => match observation {
                    Some(observation) => {
                        for recorded in self.board.observe(observation) {
                            self.report.count(&recorded);
                            if let Some(observer) = &self.observer {
                                let _ = observer.send(recorded);
                            }
                        }
                        self.publish(&client).await;
                    }
                    None => input_open = false,
                },
                net = net_rx.recv() => match net {
                    Some(net) => self.on_net(net, &client).await,
                    None => break,
                },
                _ = tick.tick() => self.publish(&client).await,
                _ = self.stop.changed() => stopping = true,
            }
        }
        // Goodbye: retained offline status (the will covers a crash, not a clean exit).
        let farewell = async {
            if self.connected {
                let _ = client
                    .publish(&self.topics.status, QoS::AtLeastOnce, true, STATUS_OFFLINE)
                    .await;
            }
            let _ = client.disconnect().await;
            let _ = poller.await;
        };
        let _ = tokio::time::timeout(FAREWELL, farewell).await;
        self.report.add_stats(&self.board);
        let device = self.board.device();
        self.report.devices.push(DeviceReport {
            device: *device.id(),
            public_key: device.public_key(),
            last_seq: device.chain_head().seq,
            released: device.released(),
            dropped: device.dropped(),
            rejects: device.rejects(),
            published: self.published_total,
            connects: self.connects,
        });
        Outcome {
            report: self.report,
            delivered,
        }
    }

    fn is_delivered(&self) -> bool {
        let head = self.board.device().chain_head().seq;
        match self.drain {
            Drain::Receipts => self.board.device().released() >= head,
            Drain::BrokerAck => {
                self.connected && self.last_published >= head && self.acks >= self.publishes
            }
        }
    }

    async fn on_net(&mut self, net: Net, client: &AsyncClient) {
        let id = *self.board.device().id();
        match net {
            Net::Connected => {
                self.connected = true;
                self.connects += 1;
                // Start over from the oldest unreceipted message.
                self.last_published = self.board.device().released();
                self.publishes = 0;
                self.acks = 0;
                tracing::debug!(device = %id, "connected; publishing from seq {}", self.last_published + 1);
                let subscribed = client
                    .subscribe_many([
                        rumqttc::SubscribeFilter::new(
                            self.topics.receipts.clone(),
                            QoS::AtLeastOnce,
                        ),
                        rumqttc::SubscribeFilter::new(
                            self.topics.rejects.clone(),
                            QoS::AtLeastOnce,
                        ),
                    ])
                    .await;
                let online = client
                    .publish(&self.topics.status, QoS::AtLeastOnce, true, STATUS_ONLINE)
                    .await;
                if subscribed.is_err() || online.is_err() {
                    tracing::warn!(device = %id, "MQTT client closed");
                }
                self.publishes += 1;
                self.publish(client).await;
            }
            Net::Disconnected(why) => {
                if self.connected {
                    tracing::info!(device = %id, "disconnected: {why}");
                }
                self.connected = false;
            }
            Net::Receipt(payload) => match self.board.device_mut().on_receipt_payload(&payload) {
                Ok(released) => {
                    tracing::trace!(device = %id, "receipt: released through {released}")
                }
                Err(e) => tracing::warn!(device = %id, "bad receipt: {e}"),
            },
            Net::Reject(payload) => match self.board.device_mut().on_reject(&payload) {
                Ok(reject) => tracing::warn!(
                    device = %id,
                    "gateway rejected seq {:?}: {} ({})",
                    reject.seq,
                    reject.reason,
                    reject.hash
                ),
                Err(e) => tracing::warn!(device = %id, "bad reject line: {e}"),
            },
            Net::PubAck => self.acks += 1,
        }
    }

    /// Publishes queued messages after the last one published on this connection, until
    /// rumqttc's request channel is full (the tick continues later).
    async fn publish(&mut self, client: &AsyncClient) {
        if !self.connected {
            return;
        }
        let topic = self.topics.events.clone();
        let after = self.last_published;
        let mut last = after;
        let mut sent = 0u64;
        for queued in self.board.device_mut().outbox_after(after) {
            let queued = match queued {
                Ok(q) => q,
                Err(e) => {
                    tracing::error!("reading the flash queue: {e}");
                    break;
                }
            };
            match client.try_publish(&topic, QoS::AtLeastOnce, false, queued.message) {
                Ok(()) => {
                    last = queued.seq;
                    sent += 1;
                }
                Err(ClientError::TryRequest(_)) => break,
                Err(ClientError::Request(_)) => break,
            }
        }
        self.last_published = last;
        self.publishes += sent;
        self.published_total += sent;
    }
}

/// Polls the event loop forever (reconnecting with backoff) and forwards what matters; never
/// blocks on the board.
async fn poll(mut eventloop: EventLoop, topics: Topics, tx: mpsc::UnboundedSender<Net>) {
    let mut backoff = MIN_BACKOFF;
    loop {
        let net = match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                backoff = MIN_BACKOFF;
                Some(Net::Connected)
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                if p.topic == topics.receipts {
                    Some(Net::Receipt(p.payload.to_vec()))
                } else if p.topic == topics.rejects {
                    Some(Net::Reject(p.payload.to_vec()))
                } else {
                    None
                }
            }
            Ok(Event::Incoming(Packet::PubAck(_))) => Some(Net::PubAck),
            Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
            Ok(_) => None,
            Err(ConnectionError::RequestsDone) => return,
            Err(e) => {
                if tx.send(Net::Disconnected(e.to_string())).is_err() {
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                None
            }
        };
        if let Some(net) = net
            && tx.send(net).is_err()
        {
            return;
        }
    }
}
