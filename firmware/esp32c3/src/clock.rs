//! Wall-clock time: a minimal SNTP client (RFC 4330, one 48-byte packet each way over
//! embassy-net UDP) feeding the core's [`Clock`].
//!
//! Until the first successful exchange [`SyncedClock::now`] is `None`, so the core stamps events
//! with the uptime and `prov:clockSynced: false` (SPEC §2). After it, the time is the server's
//! transmit time plus half the round trip, carried forward by the monotonic embassy timer;
//! [`sntp_task`] refreshes it every [`RESYNC`].

use core::cell::Cell;
use core::net::Ipv4Addr;

use critical_section::Mutex;
use embassy_net::udp::{PacketMetadata, UdpSocket};
use embassy_net::{IpEndpoint, Stack};
use embassy_time::{Duration, Instant, Timer, with_timeout};
use log::{info, warn};
use prov_firmware::device::Clock;

use crate::sntp::{parse_reply, request};

/// The NTP port.
const NTP_PORT: u16 = 123;
/// How long to wait for an answer.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Retry interval while unsynchronised.
const RETRY: Duration = Duration::from_secs(15);
/// Refresh interval once synchronised.
const RESYNC: Duration = Duration::from_secs(3600);

/// The last synchronisation: Unix milliseconds at a given uptime.
#[derive(Debug, Clone, Copy)]
struct Anchor {
    unix_ms: u64,
    uptime_ms: u64,
}

static ANCHOR: Mutex<Cell<Option<Anchor>>> = Mutex::new(Cell::new(None));

fn uptime_ms() -> u64 {
    Instant::now().as_millis()
}

/// Whether SNTP has synchronised the clock since boot.
pub fn is_synced() -> bool {
    critical_section::with(|cs| ANCHOR.borrow(cs).get().is_some())
}

/// The core's clock on this board.
#[derive(Debug, Default)]
pub struct SyncedClock;

impl Clock for SyncedClock {
    fn now(&mut self) -> Option<u64> {
        let anchor = critical_section::with(|cs| ANCHOR.borrow(cs).get())?;
        Some(anchor.unix_ms + uptime_ms().saturating_sub(anchor.uptime_ms))
    }

    fn uptime_millis(&mut self) -> u64 {
        uptime_ms()
    }
}

/// One exchange with `server`; on success the clock is (re)anchored.
async fn sync_once(stack: Stack<'static>, server: Ipv4Addr, nonce: [u8; 8]) -> Result<u64, ()> {
    let mut rx_meta = [PacketMetadata::EMPTY; 2];
    let mut tx_meta = [PacketMetadata::EMPTY; 2];
    let mut rx_buf = [0u8; 128];
    let mut tx_buf = [0u8; 64];
    let mut socket = UdpSocket::new(stack, &mut rx_meta, &mut rx_buf, &mut tx_meta, &mut tx_buf);
    socket
        .bind(0)
        .map_err(|e| warn!("sntp: bind failed: {e:?}"))?;
    let endpoint = IpEndpoint::new(server.into(), NTP_PORT);
    let sent_at = uptime_ms();
    socket
        .send_to(&request(nonce), endpoint)
        .await
        .map_err(|e| warn!("sntp: send to {server} failed: {e:?}"))?;
    let mut reply = [0u8; 68];
    loop {
        let (len, from) = with_timeout(TIMEOUT, socket.recv_from(&mut reply))
            .await
            .map_err(|_| warn!("sntp: no answer from {server}"))?
            .map_err(|e| warn!("sntp: receive failed: {e:?}"))?;
        if from.endpoint != endpoint {
            continue;
        }
        let received_at = uptime_ms();
        let server_ms = parse_reply(&reply[..len], nonce)
            .map_err(|e| warn!("sntp: answer from {server} refused: {e:?}"))?;
        let unix_ms = server_ms + received_at.saturating_sub(sent_at) / 2;
        critical_section::with(|cs| {
            ANCHOR.borrow(cs).set(Some(Anchor {
                unix_ms,
                uptime_ms: received_at,
            }));
        });
        return Ok(unix_ms);
    }
}

/// Keeps the clock synchronised: first as soon as the network is up, then every [`RESYNC`].
#[embassy_executor::task]
pub async fn sntp_task(stack: Stack<'static>, configured: Option<Ipv4Addr>) {
    let rng = esp_hal::rng::Rng::new();
    loop {
        stack.wait_config_up().await;
        let server = configured.or_else(|| stack.config_v4().and_then(|c| c.gateway));
        let Some(server) = server else {
            warn!("sntp: no SNTP_SERVER configured and DHCP gave no gateway");
            Timer::after(RETRY).await;
            continue;
        };
        let nonce = {
            let (a, b) = (rng.random(), rng.random());
            let mut n = [0u8; 8];
            n[..4].copy_from_slice(&a.to_le_bytes());
            n[4..].copy_from_slice(&b.to_le_bytes());
            n
        };
        match sync_once(stack, server, nonce).await {
            Ok(unix_ms) => {
                info!("sntp: clock set from {server}: unix {} ms", unix_ms);
                Timer::after(RESYNC).await;
            }
            Err(()) => Timer::after(RETRY).await,
        }
    }
}
