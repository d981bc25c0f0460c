//! `prov demo`: the whole system on one machine in one command (issue 5).
//!
//! It starts the gateway on its embedded defaults (embedded MQTT broker on a free loopback
//! port, a fresh data directory: a temporary one unless given), creates the keys as `prov init`
//! would, registers the simulator's devices with operator-signed registry records (over the
//! gateway's own `POST /api/v1/registry`, like any operator), runs a simulated packaging line
//! (`prov_simulator::run_line`: the same firmware core as the boards, publishing over MQTT),
//! and prints each product's page URL once its journey is in a signed checkpoint: the item, its
//! case and its pallet (the item's packing and the pallet's wrapping logged and checkpointed),
//! so the page has a timeline to show. Then it keeps producing until SIGINT/SIGTERM.
//!
//! Output (stdout, one line each, flushed; a test parses it):
//!
//! ```text
//! demo: gateway http://127.0.0.1:{port}/ (data {dir})
//! http://127.0.0.1:{port}/01/{GTIN}/21/{serial}
//! label: http://127.0.0.1:{port}/api/v1/labels/01/{GTIN}/21/{serial}.png
//! ```
//!
//! (If the `--http` port is taken, a line after the first says so and which port is used.)
//!
//! With the same `--seed` and `--run-tag` the line makes the same serials in the same order, so
//! a test knows its products in advance. The simulator's device state (flash queues and chains)
//! lives in `{data}/sim`, so a demo restarted on the same `--data-dir` continues each device's
//! chain instead of equivocating.

use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use prov_schemas::digital_link::DigitalLink;
use prov_schemas::keys::OperatorName;
use prov_simulator::line::{Drain, LineConfig, Stop};
use prov_simulator::{Recorded, run_line};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::{mpsc, watch};

use crate::config::Config;
use crate::keys;
use crate::pipeline::Shared;
use crate::service::{self, Running, ServiceError};

/// The demo's site (topic level and device id prefix).
pub const SITE: &str = "factory-a";

/// The operator name of the demo's registry records.
pub const OPERATOR: &str = "demo";

/// What the demo could not do.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The data directory or its keys could not be set up.
    #[error("data directory {}: {detail}", path.display())]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// What failed.
        detail: String,
    },
    /// The gateway did not start or failed.
    #[error("gateway: {0}")]
    Service(#[from] ServiceError),
    /// A device could not be registered.
    #[error("registering {device}: {detail}")]
    Register {
        /// The device.
        device: String,
        /// What failed.
        detail: String,
    },
    /// The simulated line failed.
    #[error("simulated line: {0}")]
    Line(String),
}

/// The demo's options.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// The HTTP listen address (if its port is taken, a free one is used and said).
    pub http: SocketAddr,
    /// The data directory (`None`: a fresh temporary one, removed at the end).
    pub data_dir: Option<PathBuf>,
    /// The simulator's seed (script and device keys).
    pub seed: u64,
    /// The simulator's run tag (part of serials, lots and orders).
    pub run_tag: String,
    /// How many product URLs to print.
    pub products: usize,
    /// Events per second of the line.
    pub rate: f64,
}

impl Default for DemoOptions {
    fn default() -> DemoOptions {
        DemoOptions {
            http: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: None,
            seed: 1,
            run_tag: String::from("DEMO"),
            products: 3,
            rate: 20.0,
        }
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn data_error(path: &Path) -> impl Fn(String) -> DemoError + '_ {
    move |detail| DemoError::DataDir {
        path: path.to_path_buf(),
        detail,
    }
}

/// The configuration of the demo in `dir`: loaded from `{dir}/prov.toml` if a previous demo
/// left one, else keys created as `prov init` does and the file written.
fn demo_config(dir: &Path) -> Result<Config, DemoError> {
    let fail = data_error(dir);
    std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
    let dir = dir.canonicalize().map_err(|e| fail(e.to_string()))?;
    let path = dir.join("prov.toml");
    if path.exists() {
        let mut config = Config::from_file(&path).map_err(|e| fail(e.to_string()))?;
        config.data_dir = dir;
        return Ok(config);
    }
    let mut config = Config {
        data_dir: dir.clone(),
        origin: String::from("demo.example/prov/log/1"),
        ..Config::default()
    };
    keys::create_gateway_key(&config.gateway_key_path()).map_err(|e| fail(e.to_string()))?;
    let op =
        keys::create_operator_key(&config.operator_key_path()).map_err(|e| fail(e.to_string()))?;
    config.keys.operator_name = Some(OPERATOR.into());
    config.keys.operators.insert(
        OPERATOR.into(),
        hex::encode(op.public_key().to_sec1_uncompressed()),
    );
    let text = config.to_toml().map_err(|e| fail(e.to_string()))?;
    std::fs::write(&path, text).map_err(|e| fail(e.to_string()))?;
    Ok(config)
}

/// `addr` if it can be bound now, else the same IP with port 0 (a free port) and `true`.
fn http_address(addr: SocketAddr) -> (SocketAddr, bool) {
    if addr.port() == 0 || std::net::TcpListener::bind(addr).is_ok() {
        return (addr, false);
    }
    (SocketAddr::new(addr.ip(), 0), true)
}

/// One HTTP/1.1 POST on loopback; returns the status and body.
async fn post(addr: SocketAddr, path: &str, body: &[u8]) -> std::io::Result<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/cose\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// Registers every device of `line` with records signed by the demo's operator key.
async fn register_devices(
    config: &Config,
    line: &LineConfig,
    http: SocketAddr,
) -> Result<(), DemoError> {
    let fail = data_error(&config.data_dir);
    let op =
        keys::load_operator_key(&config.operator_key_path()).map_err(|e| fail(e.to_string()))?;
    let name = config
        .keys
        .operator_name
        .clone()
        .unwrap_or_else(|| OPERATOR.into());
    let operator = OperatorName::new(&name).map_err(|e| fail(e.to_string()))?;
    let devices = line
        .device_keys()
        .map_err(|e| DemoError::Line(e.to_string()))?;
    for (device, key) in devices {
        let register = |detail: String| DemoError::Register {
            device: device.to_string(),
            detail,
        };
        let time = prov_simulator::provision::now().map_err(|e| register(e.to_string()))?;
        let record =
            prov_simulator::provision::registration_record(device, key, time, operator, &op)
                .map_err(|e| register(e.to_string()))?;
        let (status, body) = post(http, "/api/v1/registry", &record)
            .await
            .map_err(|e| register(e.to_string()))?;
        if status != 200 {
            return Err(register(format!(
                "gateway answered {status}: {}",
                body.trim()
            )));
        }
    }
    Ok(())
}

/// The tree size of the latest signed checkpoint.
fn checkpoint_size(shared: &Shared) -> Option<u64> {
    let note = shared.checkpoint_note()?;
    note.lines().nth(1)?.parse().ok()
}

/// Whether `item`'s journey so far is checkpointed: packed into a case, the case onto a
/// pallet, both aggregations inside the latest signed checkpoint.
fn journey_checkpointed(shared: &Shared, item: &DigitalLink) -> bool {
    let Some(size) = checkpoint_size(shared) else {
        return false;
    };
    let Ok(cases) = shared.indexes.parents(item) else {
        return false;
    };
    cases.iter().filter(|e| e.leaf < size).any(|case| {
        shared
            .indexes
            .parents(&case.other)
            .is_ok_and(|pallets| pallets.iter().any(|p| p.leaf < size))
    })
}

/// Runs the demo until `shutdown` completes.
pub async fn run(
    options: DemoOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DemoError> {
    let (temp, dir) = match &options.data_dir {
        Some(d) => (None, d.clone()),
        None => {
            let t = tempfile::Builder::new()
                .prefix("prov-demo-")
                .tempdir()
                .map_err(|e| DemoError::DataDir {
                    path: std::env::temp_dir(),
                    detail: e.to_string(),
                })?;
            let p = t.path().to_path_buf();
            (Some(t), p)
        }
    };
    let mut config = demo_config(&dir)?;
    let (listen, taken) = http_address(options.http);
    config.http.listen = listen;
    config.mqtt.url = None;
    config.mqtt.embedded_port = 0;
    config.mqtt.client_id = String::from("prov-demo-gateway");

    let running = service::start(config.clone()).await?;
    let http = running.http_addr;
    let host = if http.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], http.port()))
    } else {
        http
    };
    say(&format!(
        "demo: gateway http://{host}/ (data {})",
        config.data_dir.display()
    ));
    if taken {
        say(&format!(
            "demo: {} is taken (another program listens there), so the demo listens on port {} instead",
            options.http,
            http.port()
        ));
    }

    let result = produce(&options, &config, &running, host, shutdown).await;
    let stopped = running.shutdown().await;
    drop(temp);
    result?;
    stopped?;
    Ok(())
}

async fn produce(
    options: &DemoOptions,
    config: &Config,
    running: &Running,
    host: SocketAddr,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DemoError> {
    let mut line = LineConfig::new(SITE).map_err(|e| DemoError::Line(e.to_string()))?;
    line.seed = options.seed;
    line.run_tag = options.run_tag.clone();
    line.rate = options.rate;
    line.stop = Stop::Never;
    line.drain = Drain::Receipts;
    line.broker.host = running.mqtt_addr.ip().to_string();
    line.broker.port = running.mqtt_addr.port();
    line.broker.client_prefix = String::from("prov-demo");
    line.state_dir = Some(config.data_dir.join("sim"));
    line.validate()
        .map_err(|e| DemoError::Line(format!("{e:#}")))?;
    register_devices(config, &line, running.http_addr).await?;

    let (stop_tx, mut stop_rx) = watch::channel(false);
    let (observed_tx, mut observed) = mpsc::unbounded_channel::<Recorded>();
    let line_stop = {
        let mut rx = stop_tx.subscribe();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };
    let mut line_task = tokio::spawn(run_line(line, Some(observed_tx), line_stop));
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });

    let shared = Arc::clone(&running.shared);
    let mut pending: Vec<DigitalLink> = Vec::new();
    let mut printed = 0usize;
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            recorded = observed.recv() => match recorded {
                Some(r) => {
                    if printed + pending.len() < options.products
                        && let Some(item) = r.commissioned_item()
                    {
                        pending.push(item.clone());
                    }
                }
                None => break,
            },
            _ = tick.tick() => {
                pending.retain(|item| {
                    if !journey_checkpointed(&shared, item) {
                        return true;
                    }
                    say(&format!("http://{host}{}", item.path()));
                    say(&format!("label: http://{host}/api/v1/labels{}.png", item.path()));
                    printed += 1;
                    false
                });
            }
            _ = stop_rx.wait_for(|stop| *stop) => break,
            done = &mut line_task => {
                return match done {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(DemoError::Line(format!("{e:#}"))),
                    Err(e) => Err(DemoError::Line(e.to_string())),
                };
            }
        }
    }
    // Stopping: the line gets the signal (if it has not), then a few seconds to say goodbye.
    match tokio::time::timeout(Duration::from_secs(10), line_task).await {
        Ok(Ok(Ok(_))) | Err(_) => Ok(()),
        Ok(Ok(Err(e))) => Err(DemoError::Line(format!("{e:#}"))),
        Ok(Err(e)) => Err(DemoError::Line(e.to_string())),
    }
}
