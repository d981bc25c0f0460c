//! ESP32-C3 board binary of the provenance device: Wi-Fi (esp-radio), DHCP and sockets
//! (embassy-net), SNTP, MQTT (rust-mqtt) and the line peripherals around the `prov-firmware`
//! core, which does every decision that can be tested on a host: roles, signing, the power-safe
//! event store, receipts.
//!
//! Boot: configuration check → partition table → key (flash slot or ATECC608) → event store
//! (opened, or formatted once from the provisioning token) → tasks:
//!
//! - `wifi_task` / `net_task`: station join with reconnect, DHCP;
//! - `clock::sntp_task`: wall-clock time once the network is up;
//! - `mqtt::mqtt_task`: status, outbox drain, receipts and rejects;
//! - `scanner_task` (UART1), `trigger_task` (GPIO9), `sensor_task` (SHT4x, cold chain only):
//!   observations → `station::Station` → drafts → `Device::record`.
//!
//! Pins (chosen to stay clear of the strapping pins 2/8 and of UART0's GPIO20/21, which carry
//! the console on boards with a USB-UART bridge): scanner RX GPIO4 (UART1, receive only), I2C0
//! SDA GPIO6 / SCL GPIO7, trigger GPIO9 (the BOOT button on dev kits, active low).

#![no_std]
#![no_main]

extern crate alloc;

mod bus;
mod clock;
mod config;
mod flash;
mod mqtt;
mod signer;
mod sntp;
mod station;
mod token;

use alloc::vec::Vec;
use core::fmt;

use embassy_executor::Spawner;
use embassy_net::{Runner, StackResources};
use embassy_sync::blocking_mutex::raw::NoopRawMutex;
use embassy_sync::mutex::Mutex;
use embassy_time::{Duration, Ticker, Timer};
use esp_backtrace as _;
use esp_hal::Async;
use esp_hal::clock::CpuClock;
use esp_hal::delay::Delay;
use esp_hal::gpio::{Input, InputConfig, Pull};
use esp_hal::i2c::master::{Config as I2cConfig, I2c};
use esp_hal::time::Rate;
use esp_hal::timer::timg::TimerGroup;
use esp_hal::uart::{Config as UartConfig, UartRx};
use esp_radio::wifi::sta::StationConfig;
use esp_radio::wifi::{
    AuthenticationMethodConfig, Config as WifiConfig, ControllerConfig, Interface, WifiController,
};
use esp_storage::FlashStorage;
use log::{error, info, warn};
use prov_firmware::device::{Device, DeviceError, Topics};
use prov_firmware::drivers::atecc608::Atecc608;
use prov_firmware::drivers::sht4x::{Precision, Sht4x};
use prov_firmware::roles::Draft;
use prov_firmware::scanner::Scanner;
use prov_firmware::signer::{Atecc608Signer, FlashKeySigner, Signer as _};
use prov_firmware::storage::state::ChainState;
use prov_firmware::storage::{EventStore, StorageError};
use static_cell::StaticCell;

use crate::bus::SharedI2c;
use crate::clock::SyncedClock;
use crate::config::{Config, SignerKind};
use crate::flash::{Partition, Partitions};
use crate::signer::BoardSigner;
use crate::station::Station;
use crate::token::Token;

esp_bootloader_esp_idf::esp_app_desc!();

/// The device core on this board.
pub type BoardDevice = Device<BoardSigner, Partition, SyncedClock>;
/// Shared between the input tasks (record) and the MQTT task (outbox, receipts).
pub type SharedDevice = Mutex<NoopRawMutex, BoardDevice>;
/// The role, shared between the input tasks.
pub type SharedStation = Mutex<NoopRawMutex, Station>;

static DEVICE: StaticCell<SharedDevice> = StaticCell::new();
static STATION: StaticCell<SharedStation> = StaticCell::new();
static MQTT: StaticCell<mqtt::Params> = StaticCell::new();
static NET: StaticCell<StackResources<4>> = StaticCell::new();

/// Spawns a task; a task that cannot be spawned (its pool is taken) is logged, not a panic.
macro_rules! spawn {
    ($spawner:expr, $task:expr) => {
        match $task {
            Ok(token) => $spawner.spawn(token),
            Err(e) => error!("cannot spawn {}: {e:?}", stringify!($task)),
        }
    };
}

/// Logs `what` every 30 s forever: a device that cannot sign must not pretend to work.
async fn halt(what: fmt::Arguments<'_>) -> ! {
    loop {
        error!("HALTED: {what}");
        Timer::after(Duration::from_secs(30)).await;
    }
}

/// Lowercase hex of `bytes`, for the log.
struct Hex<'a>(&'a [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

#[esp_rtos::main]
async fn main(spawner: Spawner) -> ! {
    esp_println::logger::init_logger_from_env();
    let p = esp_hal::init(esp_hal::Config::default().with_cpu_clock(CpuClock::max()));
    // Wi-Fi wants ~70 KB; the rest is for messages (up to 16 KiB each) and the roles.
    esp_alloc::heap_allocator!(#[esp_hal::ram(reclaimed)] size: 64 * 1024);
    esp_alloc::heap_allocator!(size: 80 * 1024);

    let timg0 = TimerGroup::new(p.TIMG0);
    esp_rtos::start(timg0.timer0, p.FROM_CPU_INTR0);

    let config = match config::load() {
        Ok(config) => config,
        Err(e) => {
            halt(format_args!(
                "configuration: {}={:?}: {}",
                e.knob, e.value, e.problem
            ))
            .await
        }
    };
    info!(
        "prov-esp32c3 {}: device {} at site {}, role {:?}, signer {:?}",
        env!("CARGO_PKG_VERSION"),
        config.device_id,
        config.site,
        config.role,
        config.signer
    );

    // --- Flash: partitions, key, event store ------------------------------------------------
    let mut chip = FlashStorage::new(p.FLASH);
    let parts = match flash::find_partitions(&mut chip) {
        Ok(parts) => parts,
        Err(e) => halt(format_args!("partition table: {e} (flash partitions.csv)")).await,
    };
    if (parts.provkey, parts.provq) != (flash::EXPECTED_PROVKEY, flash::EXPECTED_PROVQ) {
        warn!("partition table differs from partitions.csv: {parts:x?} (using it)");
    }

    let i2c = match I2c::new(
        p.I2C0,
        I2cConfig::default().with_frequency(Rate::from_khz(100)),
    ) {
        Ok(i2c) => i2c.with_sda(p.GPIO6).with_scl(p.GPIO7),
        Err(e) => halt(format_args!("I2C0: {e:?}")).await,
    };
    let i2c = bus::share(i2c);

    let mut keys = Partition::new(chip, parts.provkey);
    let signer = match config.signer {
        SignerKind::Flash => match FlashKeySigner::load(&mut keys, flash::KEY_SLOT_OFFSET) {
            Ok(signer) => BoardSigner::Flash(signer),
            Err(e) => halt(format_args!("flash key: {e}")).await,
        },
        SignerKind::Atecc608 => {
            let chip = Atecc608::with_address(bus::device(i2c), Delay::new(), config.atecc_address);
            match Atecc608Signer::new(chip, config.atecc_slot) {
                Ok(signer) => BoardSigner::Atecc608(signer),
                Err(e) => halt(format_args!("ATECC608: {e}")).await,
            }
        }
    };
    let public = signer.public_key();
    info!(
        "device key: {} (fingerprint {})",
        Hex(public.as_sec1_uncompressed()),
        public.fingerprint()
    );

    let token = match flash::read_token(&mut keys) {
        Ok(token) => token,
        Err(e) => halt(format_args!("reading the format token: {e:?}")).await,
    };
    let store = match open_store(keys.retarget(parts.provq), &parts, token) {
        Ok(store) => store,
        Err(e) => halt(format_args!("event store: {e}")).await,
    };
    let device = Device::new(config.device_id, signer, store, SyncedClock);
    let head = device.chain_head();
    info!(
        "event store: chain head seq {} ({}), released through {}, room for a {}-byte message",
        head.seq,
        head.hash,
        device.released(),
        device.store().free_bytes()
    );
    let device: &'static SharedDevice = DEVICE.init(Mutex::new(device));
    let station: &'static SharedStation = STATION.init(Mutex::new(Station::new(&config)));

    // --- Network ------------------------------------------------------------------------------
    let topics = match Topics::new(config.site, &config.device_id) {
        Ok(topics) => topics,
        Err(e) => halt(format_args!("topics: {e}")).await,
    };
    let controller = match wifi_controller(p.WIFI, &config) {
        Ok(controller) => controller,
        Err(e) => halt(format_args!("Wi-Fi: {e:?}")).await,
    };
    let rng = esp_hal::rng::Rng::new();
    let seed = u64::from(rng.random()) << 32 | u64::from(rng.random());
    let (stack, runner) = embassy_net::new(
        Interface::station(),
        embassy_net::Config::dhcpv4(Default::default()),
        NET.init(StackResources::new()),
        seed,
    );
    let params = MQTT.init(mqtt::Params {
        host: config.mqtt_host,
        port: config.mqtt_port,
        client_id: config::DEVICE_ID,
        user: config.mqtt_user,
        password: config.mqtt_password,
        topics,
    });
    spawn!(spawner, net_task(runner));
    spawn!(spawner, wifi_task(controller));
    spawn!(spawner, clock::sntp_task(stack, config.sntp_server));
    spawn!(spawner, mqtt::mqtt_task(stack, device, params));

    // --- Line peripherals ---------------------------------------------------------------------
    match UartRx::new(
        p.UART1,
        UartConfig::default().with_baudrate(config.scanner_baud),
    ) {
        Ok(uart) => spawn!(
            spawner,
            scanner_task(uart.with_rx(p.GPIO4).into_async(), station, device)
        ),
        Err(e) => error!("scanner UART1: {e:?}; no scans will be read"),
    }
    let trigger = Input::new(p.GPIO9, InputConfig::default().with_pull(Pull::Up));
    spawn!(spawner, trigger_task(trigger, station, device));
    if station.lock().await.uses_sensor() {
        let sensor = Sht4x::new(bus::device(i2c), Delay::new());
        spawn!(
            spawner,
            sensor_task(sensor, config.coldchain_period_s, station, device)
        );
    }

    loop {
        Timer::after(Duration::from_secs(600)).await;
        let device = device.lock().await;
        info!(
            "status: head seq {}, released {}, clock synced {}, dropped {}, rejects {}",
            device.chain_head().seq,
            device.released(),
            clock::is_synced(),
            device.dropped(),
            device.rejects()
        );
    }
}

/// Opens the event store, or formats it once when the state region is blank and provisioning
/// left a format token (see `flash`); clears a token that has been used.
fn open_store(
    mut part: Partition,
    parts: &Partitions,
    token: Token,
) -> Result<EventStore<Partition>, StorageError<flash::PartitionError>> {
    let layout = parts.layout();
    let blank = match ChainState::open(&mut part, layout.state.clone()) {
        Ok(_) => false,
        Err(StorageError::NotProvisioned { .. }) => true,
        Err(e) => return Err(e),
    };
    let mut store = match (blank, token) {
        (false, _) => EventStore::open(part, layout)?,
        (true, Token::Format(resume)) => {
            info!(
                "formatting the event store: chain resumes after seq {} ({})",
                resume.seq, resume.hash
            );
            EventStore::format(part, layout, resume)?
        }
        (true, other) => {
            error!("state region blank and format token is {other:?}: provision the device");
            return Err(StorageError::NotProvisioned {
                start: parts.provq.0,
                end: parts.provq.0 + layout.state.end,
            });
        }
    };
    match token {
        Token::Format(_) => {
            if let Err(e) = store.flash_mut().consume_token(parts.provkey.0) {
                // Harmless while the state region holds records: a token is only ever used on
                // a blank one.
                warn!("could not clear the format token: {e:?}");
            }
        }
        Token::Corrupt => warn!("format token is corrupt (ignored)"),
        Token::Blank | Token::Used => {}
    }
    Ok(store)
}

fn wifi_controller(
    wifi: esp_hal::peripherals::WIFI<'static>,
    config: &Config,
) -> Result<WifiController<'static>, esp_radio::wifi::WifiError> {
    let auth = if config.wifi_password.is_empty() {
        AuthenticationMethodConfig::Open
    } else {
        AuthenticationMethodConfig::Wpa2Personal(
            config
                .wifi_password
                .try_into()
                .map_err(|_| esp_radio::wifi::WifiError::InvalidArguments)?,
        )
    };
    let station = StationConfig::default()
        .with_ssid(
            config
                .wifi_ssid
                .try_into()
                .map_err(|_| esp_radio::wifi::WifiError::InvalidArguments)?,
        )
        .with_authentication(auth);
    let mut controller = WifiController::new(wifi, ControllerConfig::default())?;
    controller.set_config(&WifiConfig::Station(station))?;
    Ok(controller)
}

#[embassy_executor::task]
async fn net_task(mut runner: Runner<'static, Interface>) -> ! {
    runner.run().await
}

/// Joins the access point and rejoins whenever the link drops.
#[embassy_executor::task]
async fn wifi_task(mut controller: WifiController<'static>) -> ! {
    let mut backoff = Duration::from_secs(1);
    loop {
        match controller.connect_async().await {
            Ok(info) => {
                info!(
                    "wifi: joined {} on channel {}",
                    info.ssid.as_str(),
                    info.channel
                );
                backoff = Duration::from_secs(1);
                match controller.wait_for_disconnect_async().await {
                    Ok(info) => warn!("wifi: link lost: {:?}", info.reason),
                    Err(e) => {
                        // Not connected after all: pause rather than spin on connect.
                        warn!("wifi: {e:?}");
                        Timer::after(Duration::from_secs(1)).await;
                    }
                }
            }
            Err(e) => {
                warn!(
                    "wifi: join failed: {e:?}; retrying in {} s",
                    backoff.as_secs()
                );
                Timer::after(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// Signs and queues `drafts` (in order), then wakes the MQTT task.
async fn record(device: &SharedDevice, drafts: Vec<Draft>) {
    if drafts.is_empty() {
        return;
    }
    let mut device = device.lock().await;
    for draft in drafts {
        match device.record(draft) {
            Ok(seq) => info!(
                "recorded seq {seq}{}",
                if clock::is_synced() {
                    ""
                } else {
                    " (clock not synced)"
                }
            ),
            Err(DeviceError::Storage(StorageError::NeedsReopen)) => {
                // The chain head is unknown until the store is reopened from flash, which is
                // exactly what a reboot does; everything durable survives it.
                error!("event store needs a reopen: restarting");
                Timer::after(Duration::from_millis(100)).await;
                esp_hal::system::software_reset();
            }
            Err(e) => error!("event NOT recorded: {e}"),
        }
    }
    drop(device);
    mqtt::OUTBOX.signal(());
}

/// An `embedded_io::Read` over the bytes of the last UART read, so the core's [`Scanner`]
/// (blocking reader API) can be fed from the async UART: empty means `Ok(0)`, which the scanner
/// takes as "no whole line yet".
struct Chunk {
    buf: [u8; 64],
    pos: usize,
    len: usize,
}

impl Chunk {
    fn fill(&mut self, bytes: &[u8]) {
        let n = bytes.len().min(self.buf.len());
        self.buf[..n].copy_from_slice(&bytes[..n]);
        self.pos = 0;
        self.len = n;
    }
}

impl embedded_io::ErrorType for Chunk {
    type Error = core::convert::Infallible;
}

impl embedded_io::Read for Chunk {
    fn read(&mut self, out: &mut [u8]) -> Result<usize, Self::Error> {
        let n = out.len().min(self.len - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Barcode / QR scanner on UART1: lines → identifiers → the role.
#[embassy_executor::task]
async fn scanner_task(
    mut uart: UartRx<'static, Async>,
    station: &'static SharedStation,
    device: &'static SharedDevice,
) -> ! {
    let mut scanner: Scanner<Chunk> = Scanner::new(Chunk {
        buf: [0; 64],
        pos: 0,
        len: 0,
    });
    let mut raw = [0u8; 64];
    loop {
        match uart.read_async(&mut raw).await {
            Ok(n) => scanner.reader_mut().fill(&raw[..n]),
            Err(e) => {
                warn!("scanner: UART error {e:?}");
                continue;
            }
        }
        loop {
            match scanner.read_scan() {
                Ok(Some(id)) => {
                    info!("scan: {}", id.canonical());
                    let drafts = station.lock().await.on_scan(id);
                    match drafts {
                        Ok(drafts) => record(device, drafts).await,
                        Err(e) => warn!("scan refused: {e}"),
                    }
                }
                Ok(None) => break,
                Err(e) => warn!("scanner: {e}"),
            }
        }
    }
}

/// The trigger button (active low, debounced).
#[embassy_executor::task]
async fn trigger_task(
    mut pin: Input<'static>,
    station: &'static SharedStation,
    device: &'static SharedDevice,
) -> ! {
    loop {
        pin.wait_for_falling_edge().await;
        Timer::after(Duration::from_millis(30)).await;
        if pin.is_high() {
            continue;
        }
        info!("trigger");
        let drafts = station.lock().await.on_trigger();
        record(device, drafts).await;
        pin.wait_for_high().await;
        Timer::after(Duration::from_millis(30)).await;
    }
}

/// The cold room's SHT4x, read every `period_s` seconds.
#[embassy_executor::task]
async fn sensor_task(
    mut sensor: Sht4x<SharedI2c, Delay>,
    period_s: u64,
    station: &'static SharedStation,
    device: &'static SharedDevice,
) -> ! {
    let mut ticker = Ticker::every(Duration::from_secs(period_s));
    loop {
        ticker.next().await;
        let reading = sensor.measure(Precision::High);
        match &reading {
            Ok(m) => info!(
                "sht4x: {} m°C, {} m%RH",
                m.temperature_millicelsius(),
                m.humidity_millipercent()
            ),
            Err(e) => warn!("sht4x: {e}"),
        }
        let drafts = station.lock().await.on_reading(reading);
        record(device, drafts).await;
    }
}
