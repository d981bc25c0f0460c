//! The MQTT link (SPEC §3): rust-mqtt 0.6 (MQTT 5) over an embassy-net TCP socket.
//!
//! Per connection:
//!
//! 1. CONNECT with the device id as client id, clean start 0 and a session expiry of
//!    [`SESSION_EXPIRY_S`] (the broker keeps the subscriptions and queues the gateway's QoS 1
//!    receipts while the device is away), and the last will `offline`, retained, QoS 1 on the
//!    status topic.
//! 2. `online`, retained, QoS 1 on the status topic; SUBSCRIBE to the receipts and rejects
//!    topics at QoS 1.
//! 3. Drain the core's outbox oldest first at QoS 1, at most [`SEND_MAXIMUM`] (or the broker's
//!    receive maximum) unacknowledged, starting after the last receipt; more as PUBACKs come
//!    back and as new events are recorded ([`OUTBOX`]).
//! 4. Receipts go to `Device::on_receipt_payload` (the only thing that frees flash), rejects to
//!    `Device::on_reject` and the log.
//! 5. PINGREQ every half keep-alive; a PINGRESP missing by the next one, any protocol or network
//!    error: drop the connection and reconnect with exponential backoff.
//!
//! Each connection starts with a fresh client-side MQTT session, so rust-mqtt's in-flight
//! state from a lost connection is never "republished" with DUP: instead the outbox is drained
//! again from the last *receipt*, which covers everything the broker may not have passed on. A
//! message published twice is the same bytes, which the gateway stores once (SPEC §4), and
//! PUBACKs are only flow control here, never a reason to free anything.

use core::convert::Infallible;
use core::net::Ipv4Addr;
use core::num::NonZero;

use alloc::string::String;
use embassy_futures::select::{Either3, select3};
use embassy_net::tcp::TcpSocket;
use embassy_net::{IpEndpoint, Stack};
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::signal::Signal;
use embassy_time::{Duration, Instant, Timer};
use log::{error, info, warn};
use prov_firmware::device::{STATUS_OFFLINE, STATUS_ONLINE, Topics};
use rust_mqtt::Bytes;
use rust_mqtt::buffer::AllocBuffer;
use rust_mqtt::client::Client;
use rust_mqtt::client::event::Event;
use rust_mqtt::client::options::{
    ConnectOptions, PublicationOptions, SubscriptionOptions, TopicReference, WillOptions,
};
use rust_mqtt::config::{KeepAlive, SessionExpiryInterval};
use rust_mqtt::types::{MqttBinary, MqttString, TopicFilter, TopicName};

use crate::SharedDevice;

/// Keep-alive announced in CONNECT.
pub const KEEP_ALIVE_S: u16 = 30;
/// How long the broker keeps the session (subscriptions, queued receipts) after a disconnect.
pub const SESSION_EXPIRY_S: u32 = 7 * 24 * 3600;
/// Most unacknowledged QoS 1 publications of ours.
pub const SEND_MAXIMUM: usize = 4;
/// Largest packet the broker may send us (receipts and reject lines are tens of bytes).
const MAX_INCOMING_PACKET: u32 = 4096;
/// Most unacknowledged QoS 1 publications from the broker (receipts, rejects).
const RECEIVE_MAXIMUM: usize = 8;

const MIN_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// A connection that lasted this long resets the backoff.
const STABLE: Duration = Duration::from_secs(60);

/// Signalled when an event was queued: the link drains the outbox.
pub static OUTBOX: Signal<CriticalSectionRawMutex, ()> = Signal::new();

/// What the link needs from the configuration.
#[derive(Debug)]
pub struct Params {
    /// Broker address.
    pub host: Ipv4Addr,
    /// Broker port.
    pub port: u16,
    /// Client id (the device id).
    pub client_id: &'static str,
    /// Optional credentials.
    pub user: Option<&'static str>,
    /// Optional credentials.
    pub password: Option<&'static str>,
    /// The device's topics.
    pub topics: Topics,
}

/// The connection ended (already logged).
struct Dropped;

fn log_err<E: core::fmt::Debug>(what: &'static str) -> impl FnOnce(E) -> Dropped {
    move |e| {
        warn!("mqtt: {what}: {e:?}");
        Dropped
    }
}

fn mqtt_str(text: &str) -> Result<MqttString<'_>, Dropped> {
    MqttString::try_from(text).map_err(log_err("string"))
}

fn topic_name(text: &str) -> Result<TopicName<'_>, Dropped> {
    TopicName::new(mqtt_str(text)?).ok_or_else(|| {
        warn!("mqtt: {text} is not a topic name");
        Dropped
    })
}

fn topic_filter(text: &str) -> Result<TopicFilter<'_>, Dropped> {
    TopicFilter::new(mqtt_str(text)?).ok_or_else(|| {
        warn!("mqtt: {text} is not a topic filter");
        Dropped
    })
}

/// Connects, serves and reconnects forever.
#[embassy_executor::task]
pub async fn mqtt_task(
    stack: Stack<'static>,
    device: &'static SharedDevice,
    params: &'static Params,
) {
    let mut rx = [0u8; 2048];
    let mut tx = [0u8; 4096];
    let mut backoff = MIN_BACKOFF;
    loop {
        stack.wait_config_up().await;
        let started = Instant::now();
        let Err(Dropped) = connection(stack, device, params, &mut rx, &mut tx).await;
        if started.elapsed() >= STABLE {
            backoff = MIN_BACKOFF;
        }
        info!("mqtt: reconnecting in {} s", backoff.as_secs());
        Timer::after(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One connection, until it fails.
async fn connection(
    stack: Stack<'static>,
    device: &'static SharedDevice,
    params: &'static Params,
    rx: &mut [u8],
    tx: &mut [u8],
) -> Result<Infallible, Dropped> {
    let mut socket = TcpSocket::new(stack, rx, tx);
    socket.set_timeout(Some(Duration::from_secs(u64::from(KEEP_ALIVE_S) * 2)));
    let endpoint = IpEndpoint::new(params.host.into(), params.port);
    socket
        .connect(endpoint)
        .await
        .map_err(log_err("TCP connect"))?;

    let topics = &params.topics;
    let status = topic_name(&topics.status)?;
    let events = topic_name(&topics.events)?;
    let will = WillOptions::new(
        status.as_borrowed(),
        MqttBinary::try_from(STATUS_OFFLINE).map_err(log_err("will"))?,
    )
    .at_least_once()
    .retain();
    let mut options = ConnectOptions::new()
        .keep_alive(KeepAlive::Seconds(
            NonZero::new(KEEP_ALIVE_S).unwrap_or(NonZero::<u16>::MIN),
        ))
        .session_expiry_interval(SessionExpiryInterval::Seconds(
            NonZero::new(SESSION_EXPIRY_S).unwrap_or(NonZero::<u32>::MIN),
        ))
        // Only receipts and reject lines come in: a bigger packet is refused by the broker
        // instead of being allocated here.
        .maximum_packet_size(NonZero::new(MAX_INCOMING_PACKET).unwrap_or(NonZero::<u32>::MIN))
        .will(will);
    if let Some(user) = params.user {
        options = options.user_name(mqtt_str(user)?);
    }
    if let Some(password) = params.password {
        options = options.password(MqttBinary::try_from(password).map_err(log_err("password"))?);
    }

    let mut buffer = AllocBuffer;
    let mut client =
        Client::<'_, '_, _, _, 2, RECEIVE_MAXIMUM, SEND_MAXIMUM, 1, 2, 0, 0>::new(&mut buffer);
    let connected = client
        .connect(socket, &options, Some(mqtt_str(params.client_id)?))
        .await
        .map_err(log_err("CONNECT"))?;
    info!(
        "mqtt: connected to {}:{} (session present: {})",
        params.host, params.port, connected.session_present
    );

    let mut inflight = 0usize;
    client
        .publish(
            &PublicationOptions::new(TopicReference::Name(status.as_borrowed()))
                .at_least_once()
                .retain(),
            Bytes::from(STATUS_ONLINE),
        )
        .await
        .map_err(log_err("publish status"))?;
    inflight += 1;
    for filter in [&topics.receipts, &topics.rejects] {
        client
            .subscribe(
                topic_filter(filter)?,
                &SubscriptionOptions::new().at_least_once(),
            )
            .await
            .map_err(log_err("SUBSCRIBE"))?;
    }

    let publish_events = PublicationOptions::new(TopicReference::Name(events)).at_least_once();
    let ping_every = Duration::from_secs(u64::from(KEEP_ALIVE_S) / 2);
    let mut next_ping = Instant::now() + ping_every;
    let mut ping_outstanding = false;
    // The newest seq published on this connection (or covered by a receipt).
    let mut cursor = device.lock().await.released();

    loop {
        // Fill the window, oldest first.
        let window = SEND_MAXIMUM.min(usize::from(client.server_config().receive_maximum.get()));
        while inflight < window {
            let next = {
                let mut device = device.lock().await;
                cursor = cursor.max(device.released());
                device.outbox_after(cursor).next()
            };
            match next {
                None => break,
                Some(Err(e)) => {
                    // Retried on the next wake-up (new event, receipt, ping timer).
                    error!("mqtt: reading the queue after seq {cursor}: {e}");
                    break;
                }
                Some(Ok(queued)) => {
                    let len = queued.message.len();
                    client
                        .publish(&publish_events, Bytes::from(queued.message))
                        .await
                        .map_err(log_err("publish event"))?;
                    inflight += 1;
                    cursor = queued.seq;
                    info!("mqtt: published seq {} ({len} bytes)", queued.seq);
                }
            }
        }

        match select3(client.poll_header(), OUTBOX.wait(), Timer::at(next_ping)).await {
            Either3::First(header) => {
                let header = header.map_err(log_err("receive"))?;
                let event = client.poll_body(header).await.map_err(log_err("receive"))?;
                match event {
                    Event::PublishAcknowledged(_) => inflight = inflight.saturating_sub(1),
                    Event::PublishRejected(rejected) => {
                        warn!(
                            "mqtt: broker refused publication {}: {:?}",
                            rejected.packet_identifier, rejected.reason_code
                        );
                        // Start over from the last receipt on a new connection.
                        return Err(Dropped);
                    }
                    Event::Pingresp => ping_outstanding = false,
                    Event::Suback(suback) => info!("mqtt: subscribed: {:?}", suback.reason_code),
                    Event::Publish(publication) => {
                        let topic = publication
                            .topic
                            .name()
                            .map(|name| String::from(name.as_ref().as_str()));
                        on_message(
                            device,
                            topics,
                            topic.as_deref(),
                            publication.message.as_bytes(),
                        )
                        .await;
                    }
                    _ => {}
                }
            }
            Either3::Second(()) => {}
            Either3::Third(()) => {
                if ping_outstanding {
                    warn!("mqtt: no PINGRESP within {} s", ping_every.as_secs());
                    return Err(Dropped);
                }
                client.ping().await.map_err(log_err("PINGREQ"))?;
                ping_outstanding = true;
                next_ping = Instant::now() + ping_every;
            }
        }
    }
}

/// A message on one of our subscriptions.
async fn on_message(device: &SharedDevice, topics: &Topics, topic: Option<&str>, payload: &[u8]) {
    if topic == Some(topics.receipts.as_str()) {
        match device.lock().await.on_receipt_payload(payload) {
            Ok(released) => info!("receipt: released through seq {released}"),
            Err(e) => warn!("receipt refused: {e}"),
        }
    } else if topic == Some(topics.rejects.as_str()) {
        let mut device = device.lock().await;
        for line in payload.split(|&b| b == b'\n') {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match device.on_reject(line) {
                Ok(reject) => error!(
                    "gateway REJECTED seq {:?}: {} (message {}); {} reject(s) since boot",
                    reject.seq,
                    reject.reason,
                    reject.hash,
                    device.rejects()
                ),
                Err(e) => warn!("unreadable reject: {e}"),
            }
        }
    } else {
        warn!("mqtt: message on unexpected topic {topic:?}");
    }
}
