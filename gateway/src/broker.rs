//! The embedded broker: rumqttd on 127.0.0.1, started when no broker URL is configured, so that
//! one command runs everything.
//!
//! Why loopback only and why it is only a default: rumqttd keeps nothing on disk (sessions,
//! queued messages and retained messages live in memory) and has no shutdown API, so it suits a
//! demo, a developer machine and tests; a site's central broker should be a durable one
//! (Mosquitto with persistence, EMQX) given by `mqtt.url`. Devices only lose anything if the
//! broker dies while holding messages they have not seen a receipt for, and they resend those.
//!
//! The port: the configured one (default 1883) if it is free; if it is taken (this machine runs
//! a system Mosquitto on 1883) a free port is picked and the choice is logged and printed, so
//! nobody connects to the other broker by mistake. The broker runs on its own threads for the
//! life of the process.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

/// The embedded broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// No port could be bound.
    #[error("embedded broker: no free port: {0}")]
    Port(std::io::Error),
    /// The broker did not accept connections in time.
    #[error("embedded broker on {addr} did not start: {detail}")]
    Start {
        /// Where it should listen.
        addr: SocketAddr,
        /// What happened.
        detail: String,
    },
}

/// A started embedded broker (it runs until the process exits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbeddedBroker {
    /// Where it listens (MQTT 3.1.1).
    pub addr: SocketAddr,
    /// Whether the configured port was taken and another was picked.
    pub port_was_taken: bool,
}

/// Chooses the port: `wanted` if free (0: any free port), else a free one.
fn choose_port(wanted: u16) -> Result<(u16, bool), BrokerError> {
    if wanted != 0 && TcpListener::bind((Ipv4Addr::LOCALHOST, wanted)).is_ok() {
        return Ok((wanted, false));
    }
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(BrokerError::Port)?;
    let port = listener.local_addr().map_err(BrokerError::Port)?.port();
    Ok((port, wanted != 0))
}

/// Starts rumqttd on 127.0.0.1 (`port`, or a free one) with limits that drop nothing a gateway
/// would still want: large segments, a large in-flight window per connection.
pub fn start_embedded(port: u16, inflight: u16) -> Result<EmbeddedBroker, BrokerError> {
    let wanted = port;
    let (port, taken) = choose_port(wanted)?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    if taken {
        tracing::warn!(
            "port 127.0.0.1:{wanted} is taken (another broker?); the embedded broker listens on {addr} instead"
        );
    }
    let connections = ConnectionSettings {
        connection_timeout_ms: 60_000,
        max_payload_size: 32 * 1024,
        max_inflight_count: usize::from(inflight.max(16)),
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    let server = ServerSettings {
        name: String::from("v4-embedded"),
        listen: addr,
        tls: None,
        next_connection_delay_ms: 1,
        connections,
    };
    let config = Config {
        id: 0,
        router: RouterConfig {
            max_connections: 10_010,
            max_outgoing_packet_count: 200,
            max_segment_size: 100 << 20,
            max_segment_count: 10,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
        v4: Some(HashMap::from([(String::from("1"), server)])),
        ..Config::default()
    };
    std::thread::Builder::new()
        .name(String::from("rumqttd"))
        .spawn(move || {
            let mut broker = Broker::new(config);
            if let Err(e) = broker.start() {
                tracing::error!("embedded broker stopped: {e}");
            }
        })
        .map_err(|e| BrokerError::Start {
            addr,
            detail: e.to_string(),
        })?;
    let started = Instant::now();
    while TcpStream::connect(addr).is_err() {
        if started.elapsed() > Duration::from_secs(10) {
            return Err(BrokerError::Start {
                addr,
                detail: String::from("not listening after 10 s"),
            });
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(EmbeddedBroker {
        addr,
        port_was_taken: taken,
    })
}
