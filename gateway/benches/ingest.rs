//! End-to-end ingest benchmark: pre-signed events from many devices → a real MQTT broker →
//! the gateway (`prov gateway run`, a child process) → durable log, indexes and signed
//! checkpoints.
//!
//! ```text
//! cargo bench -p prov-gateway --bench ingest -- [--events N] [--devices D]
//!     [--broker mosquitto|embedded] [--connections K] [--window W] [--rate R]
//!     [--broker-inflight M] [--batch-max-entries E] [--batch-max-delay-ms MS]
//!     [--verify-workers V] [--gateway-inflight G] [--inflight I] [--poll-ms MS]
//!     [--wait-load L] [--perf FILE] [--perf-trace FILE] [--out FILE] [--fresh] [--keep]
//! ```
//!
//! What it does:
//! 1. pre-signs N events (default 200,000) of a simulated line with `ceil(D / 6)` lines of six
//!    boards (D = 200 gives 204 devices) with the simulator's presign path, cached under
//!    `target/bench-cache/` (`--fresh` re-signs); no signing happens during the measured run;
//! 2. starts Mosquitto as a child (loopback, free port, `persistence false`,
//!    `max_queued_messages 0`, `max_inflight_messages M`, default 4 × the batch size: the
//!    gateway acknowledges a batch only once it is durable, so the broker must be allowed to
//!    send the next batch meanwhile; Mosquitto's own default of 20 caps the gateway at a few
//!    hundred events/s), or uses the gateway's embedded
//!    rumqttd (`--broker embedded`);
//! 3. starts the gateway as a child process (`prov gateway run`, temporary data directory,
//!    that broker, the batch settings given or the defaults of `config.rs`) and registers every
//!    device through `POST /api/v1/registry` (operator-signed records, all posted at once);
//! 4. publishes the stream with K rumqttc clients (QoS 1; each device always on the same
//!    client, so every device's events arrive in seq order). Closed loop: at most W (2,000) events
//!    may be published and not yet covered by a served checkpoint (the broker acknowledges a
//!    publish on receipt, so only an end-to-end window keeps its queue, and the latency, bounded).
//!    `--rate R` publishes open loop at R events/s instead (window unbounded unless given);
//! 5. measures, while polling `GET /checkpoint` every `--poll-ms` (default 5 ms):
//!    - **sustained accepted events/s**: checkpointed events between the moments the checkpoint
//!      covered 10 % and 90 % of the run, divided by the time between them (warm-up and drain
//!      excluded); also the slowest whole second inside that window;
//!    - **publish→checkpoint latency**: for each event, from the moment the publisher handed it
//!      to its MQTT client to the first poll that saw a served checkpoint whose tree size covers
//!      the event's leaf (leaf found by BLAKE3 in the log after the run). Includes the broker,
//!      batching, verification, two fdatasyncs and signing; overstated by up to one poll
//!      interval. p50/p99/max over the events published inside the steady window;
//!    - CPU seconds of the gateway, the broker and this process (publisher, poller) over the
//!      steady window from `/proc/{pid}/stat`, the gateway per thread, and the whole machine
//!      (`/proc/stat`: what other processes took);
//!    - the gateway's RSS (`VmHWM`, `VmRSS`);
//!    - bytes on disk after a graceful stop: the log (segment files with their framing + stored
//!      tree hashes, from `LogStore::disk_usage`) against the bytes of the messages it holds,
//!      and the sled indexes, chain and quarantine separately;
//!    - the gateway's pipeline thread and Mosquitto from `schedstat`: share of wall time running,
//!      runnable but waiting for a CPU, and blocked (fsync, waiting for work);
//! 6. `--perf FILE` records the gateway with `perf record -e cpu-clock --call-graph dwarf`
//!    from the first publish to the end of the run (`docs/bench/perf-breakdown.py` sorts the
//!    samples into pipeline steps); `--perf-trace FILE` writes `perf trace -s` (syscall counts
//!    and times per gateway thread: fdatasync, futex …) over the same span.
//!
//! `--wait-load L` waits (up to 30 min) until the 1-minute load average is at most L before
//! starting the broker and gateway. Without `--bench` on the command line (`cargo test
//! --benches`) it runs a 3,000-event smoke run.

// Bench code: a failure aborts the run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use prov_gateway::config::{Config, DEFAULT_MAX_DELAY_MS, DEFAULT_MAX_ENTRIES};
use prov_gateway::keys;
use prov_ledger::store::{LogStore, StoreConfig};
use prov_schemas::Hash32;
use prov_schemas::keys::{DeviceId, OperatorName, PublicKey};
use prov_simulator::line::{LineConfig, Stop};
use prov_simulator::presign::{presign, read_record};
use prov_simulator::provision::{now, registration_record};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

// -------------------------------------------------------------------------------------------
// Arguments.
// -------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BrokerKind {
    Mosquitto,
    Embedded,
}

#[derive(Debug, Clone)]
struct Args {
    events: u64,
    devices: u32,
    broker: BrokerKind,
    connections: usize,
    inflight: u16,
    window: Option<u64>,
    rate: f64,
    broker_inflight: u32,
    batch_max_entries: usize,
    batch_max_delay_ms: u64,
    verify_workers: usize,
    gateway_inflight: u16,
    poll_ms: u64,
    perf: Option<PathBuf>,
    perf_trace: Option<PathBuf>,
    out: Option<PathBuf>,
    wait_load: Option<f64>,
    fresh: bool,
    keep: bool,
    seed: u64,
    label: String,
}

impl Args {
    fn parse() -> Args {
        let raw: Vec<String> = std::env::args().skip(1).collect();
        let bench = raw.iter().any(|a| a == "--bench");
        let mut a = Args {
            events: if bench { 200_000 } else { 3_000 },
            devices: 200,
            broker: BrokerKind::Mosquitto,
            connections: 4,
            inflight: 200,
            window: None,
            rate: 0.0,
            broker_inflight: 0,
            batch_max_entries: DEFAULT_MAX_ENTRIES,
            batch_max_delay_ms: DEFAULT_MAX_DELAY_MS,
            verify_workers: 0,
            gateway_inflight: Config::default().mqtt.inflight,
            poll_ms: 5,
            perf: None,
            perf_trace: None,
            out: None,
            wait_load: None,
            fresh: false,
            keep: false,
            seed: 1,
            label: String::new(),
        };
        let mut it = raw.into_iter();
        while let Some(flag) = it.next() {
            let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
            match flag.as_str() {
                "--bench" => {}
                "--events" => a.events = value().parse().expect("--events N"),
                "--devices" => a.devices = value().parse().expect("--devices D"),
                "--broker" => {
                    a.broker = match value().as_str() {
                        "mosquitto" => BrokerKind::Mosquitto,
                        "embedded" => BrokerKind::Embedded,
                        other => panic!("--broker mosquitto|embedded, not {other}"),
                    }
                }
                "--connections" => a.connections = value().parse().expect("--connections K"),
                "--inflight" => a.inflight = value().parse().expect("--inflight I"),
                "--window" => a.window = Some(value().parse().expect("--window W")),
                "--rate" => a.rate = value().parse().expect("--rate R"),
                "--broker-inflight" => {
                    a.broker_inflight = value().parse().expect("--broker-inflight M")
                }
                "--batch-max-entries" => {
                    a.batch_max_entries = value().parse().expect("--batch-max-entries E")
                }
                "--batch-max-delay-ms" => {
                    a.batch_max_delay_ms = value().parse().expect("--batch-max-delay-ms MS")
                }
                "--verify-workers" => {
                    a.verify_workers = value().parse().expect("--verify-workers N")
                }
                "--gateway-inflight" => {
                    a.gateway_inflight = value().parse().expect("--gateway-inflight N")
                }
                "--poll-ms" => a.poll_ms = value().parse().expect("--poll-ms MS"),
                "--perf" => a.perf = Some(PathBuf::from(value())),
                "--perf-trace" => a.perf_trace = Some(PathBuf::from(value())),
                "--out" => a.out = Some(PathBuf::from(value())),
                "--wait-load" => a.wait_load = Some(value().parse().expect("--wait-load L")),
                "--seed" => a.seed = value().parse().expect("--seed S"),
                "--label" => a.label = value(),
                "--fresh" => a.fresh = true,
                "--keep" => a.keep = true,
                other => panic!("unknown argument {other:?} (see the module docs)"),
            }
        }
        a.connections = a.connections.max(1);
        a.devices = a.devices.max(1);
        if a.broker_inflight == 0 {
            // The gateway acknowledges a whole batch at once, after it is durable: the broker
            // must be allowed to have the batch being processed *and* the next one in flight
            // towards it, or batches cannot overlap with the transfer of the next one.
            a.broker_inflight = u32::try_from(a.batch_max_entries.saturating_mul(4))
                .unwrap_or(u32::MAX)
                .max(1000);
        }
        a
    }

    fn window(&self) -> u64 {
        self.window
            .unwrap_or(if self.rate > 0.0 { u64::MAX } else { 2_000 })
    }
}

// -------------------------------------------------------------------------------------------
// The pre-signed stream.
// -------------------------------------------------------------------------------------------

struct Record {
    topic: String,
    payload: Bytes,
    device: u32,
}

struct Stream {
    records: Vec<Record>,
    devices: Vec<(DeviceId, PublicKey)>,
    message_bytes: u64,
    path: PathBuf,
    signed_now: Option<(Duration, u64)>,
}

fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    // target/{profile}/deps/ingest-HASH
    let exe = std::env::current_exe().expect("current exe");
    exe.ancestors()
        .nth(3)
        .map_or_else(|| PathBuf::from("target"), Path::to_path_buf)
}

fn load_stream(args: &Args) -> Stream {
    let lines = args.devices.div_ceil(6);
    let mut config = LineConfig::new("factory-a").expect("line config");
    config.lines = lines;
    config.seed = args.seed;
    config.rate = 0.0;
    config.stop = Stop::Count(args.events);
    let dir = target_dir().join("bench-cache");
    std::fs::create_dir_all(&dir).expect("cache dir");
    let path = dir.join(format!(
        "ingest-n{}-l{}-s{}.bin",
        args.events, lines, args.seed
    ));
    let mut signed_now = None;
    if args.fresh || !path.exists() {
        let tmp = dir.join(format!("ingest-tmp-{}.bin", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        eprintln!(
            "pre-signing {} events of {} devices into {} …",
            args.events,
            lines * 6,
            path.display()
        );
        let report = presign(&config, &tmp).expect("presign");
        signed_now = Some((report.elapsed, report.events));
        let tmp_devices = prov_simulator::presign::devices_path(&tmp);
        std::fs::rename(&tmp_devices, prov_simulator::presign::devices_path(&path))
            .expect("rename");
        std::fs::rename(&tmp, &path).expect("rename");
    }
    let devices = config.device_keys().expect("device keys");
    let index: HashMap<String, u32> = devices
        .iter()
        .enumerate()
        .map(|(i, (d, _))| {
            (
                d.as_str().to_owned(),
                u32::try_from(i).expect("device count"),
            )
        })
        .collect();
    let mut input = BufReader::with_capacity(1 << 20, std::fs::File::open(&path).expect("open"));
    let mut records = Vec::new();
    let mut message_bytes = 0u64;
    while let Some((topic, message)) = read_record(&mut input).expect("read stream") {
        let device = topic.split('/').nth(3).expect("events topic");
        let device = *index
            .get(device)
            .unwrap_or_else(|| panic!("unknown device in {topic}"));
        message_bytes += message.len() as u64;
        records.push(Record {
            topic,
            payload: Bytes::from(message),
            device,
        });
    }
    Stream {
        records,
        devices,
        message_bytes,
        path,
        signed_now,
    }
}

// -------------------------------------------------------------------------------------------
// /proc readers.
// -------------------------------------------------------------------------------------------

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// (comm, utime + stime) of a `/proc/.../stat` file.
fn read_stat(path: &Path) -> Option<(String, u64)> {
    let text = std::fs::read_to_string(path).ok()?;
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_owned();
    let fields: Vec<&str> = text.get(close + 2..)?.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((comm, utime + stime))
}

fn process_ticks(pid: u32) -> u64 {
    read_stat(Path::new(&format!("/proc/{pid}/stat"))).map_or(0, |(_, t)| t)
}

/// Per thread: name, CPU ticks, and from `schedstat` the ns spent running and waiting on a
/// run queue (runnable but no CPU free).
#[derive(Debug, Clone, Default)]
struct ThreadStat {
    name: String,
    ticks: u64,
    run_ns: u64,
    wait_ns: u64,
}

fn schedstat(path: &Path) -> (u64, u64) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut v = text
        .split_whitespace()
        .filter_map(|x| x.parse::<u64>().ok());
    (v.next().unwrap_or(0), v.next().unwrap_or(0))
}

fn thread_ticks(pid: u32) -> BTreeMap<u32, ThreadStat> {
    let mut out = BTreeMap::new();
    if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for entry in dir.flatten() {
            let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
                continue;
            };
            if let Some((name, ticks)) = read_stat(&entry.path().join("stat")) {
                let (run_ns, wait_ns) = schedstat(&entry.path().join("schedstat"));
                out.insert(
                    tid,
                    ThreadStat {
                        name,
                        ticks,
                        run_ns,
                        wait_ns,
                    },
                );
            }
        }
    }
    out
}

/// (busy, iowait, total) jiffies of the whole machine.
fn system_ticks() -> (u64, u64, u64) {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let line = text.lines().next().unwrap_or_default();
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0);
    let iowait = v.get(4).copied().unwrap_or(0);
    (total - idle - iowait, iowait, total)
}

fn status_kb(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn loadavg() -> (f64, f64, f64) {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let v: Vec<f64> = text
        .split_whitespace()
        .take(3)
        .filter_map(|x| x.parse().ok())
        .collect();
    (
        v.first().copied().unwrap_or(0.0),
        v.get(1).copied().unwrap_or(0.0),
        v.get(2).copied().unwrap_or(0.0),
    )
}

fn dir_bytes(path: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt as _;
    let mut apparent = 0;
    let mut allocated = 0;
    if let Ok(dir) = std::fs::read_dir(path) {
        for entry in dir.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                let (a, b) = dir_bytes(&entry.path());
                apparent += a;
                allocated += b;
            } else {
                apparent += meta.len();
                allocated += meta.blocks() * 512;
            }
        }
    } else if let Ok(meta) = std::fs::metadata(path) {
        apparent = meta.len();
        allocated = meta.blocks() * 512;
    }
    (apparent, allocated)
}

// -------------------------------------------------------------------------------------------
// A minimal HTTP/1.1 client (keep-alive), enough for warp's replies.
// -------------------------------------------------------------------------------------------

struct Http {
    addr: SocketAddr,
    conn: Option<BufReader<TcpStream>>,
}

impl Http {
    fn new(addr: SocketAddr) -> Http {
        Http { addr, conn: None }
    }

    fn request(
        &mut self,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> std::io::Result<(u16, Vec<u8>)> {
        let mut last = None;
        for _ in 0..2 {
            if self.conn.is_none() {
                let s = TcpStream::connect(self.addr)?;
                s.set_nodelay(true)?;
                s.set_read_timeout(Some(Duration::from_secs(60)))?;
                self.conn = Some(BufReader::new(s));
            }
            let conn = self.conn.as_mut().expect("connected");
            let head = format!(
                "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n\r\n",
                self.addr,
                body.len()
            );
            let sent = conn
                .get_mut()
                .write_all(head.as_bytes())
                .and_then(|()| conn.get_mut().write_all(body));
            match sent.and_then(|()| read_response(conn)) {
                Ok(r) => return Ok(r),
                Err(e) => {
                    self.conn = None;
                    last = Some(e);
                }
            }
        }
        Err(last.expect("an error"))
    }
}

fn read_response(r: &mut BufReader<TcpStream>) -> std::io::Result<(u16, Vec<u8>)> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_owned());
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(bad("connection closed"));
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("status line"))?;
    let mut length = None;
    let mut chunked = false;
    loop {
        line.clear();
        r.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let lower = l.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse::<usize>().ok();
        }
        if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
            chunked = true;
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            r.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim(), 16).map_err(|_| bad("chunk size"))?;
            let mut chunk = vec![0u8; size + 2];
            r.read_exact(&mut chunk)?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else {
        let n = length.ok_or_else(|| bad("no content-length"))?;
        body.resize(n, 0);
        r.read_exact(&mut body)?;
    }
    Ok((status, body))
}

fn checkpoint_size(http: &mut Http) -> Option<u64> {
    let (status, body) = http.request("GET", "/checkpoint", &[]).ok()?;
    if status != 200 {
        return None;
    }
    std::str::from_utf8(&body)
        .ok()?
        .lines()
        .nth(1)?
        .parse()
        .ok()
}

fn metrics(http: &mut Http) -> BTreeMap<String, f64> {
    let Ok((_, body)) = http.request("GET", "/metrics", &[]) else {
        return BTreeMap::new();
    };
    String::from_utf8_lossy(&body)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}

fn metric(m: &BTreeMap<String, f64>, key: &str) -> f64 {
    m.get(key).copied().unwrap_or(0.0)
}

fn rejected_total(m: &BTreeMap<String, f64>) -> f64 {
    m.iter()
        .filter(|(k, _)| k.starts_with("prov_events_rejected_total"))
        .map(|(_, v)| v)
        .sum()
}

// -------------------------------------------------------------------------------------------
// Children: Mosquitto and the gateway.
// -------------------------------------------------------------------------------------------

struct Guard(Option<Child>);

impl Guard {
    fn pid(&self) -> u32 {
        self.0.as_ref().map_or(0, Child::id)
    }

    /// SIGTERM (graceful), then SIGKILL after `grace`.
    fn stop(&mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        let mut child = self.0.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let started = Instant::now();
        loop {
            if let Ok(Some(s)) = child.try_wait() {
                return Some(s);
            }
            if started.elapsed() > grace {
                let _ = child.kill();
                return child.wait().ok();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn start_mosquitto(dir: &Path, inflight: u32) -> (Guard, u16) {
    let port = free_port();
    let conf = format!(
        "listener {port} 127.0.0.1\n\
         allow_anonymous true\n\
         persistence false\n\
         max_queued_messages 0\n\
         max_inflight_messages {inflight}\n\
         log_dest file {}\n\
         log_type error\nlog_type warning\n",
        dir.join("mosquitto.log").display()
    );
    let path = dir.join("mosquitto.conf");
    std::fs::write(&path, conf).expect("mosquitto.conf");
    let child = Command::new("/usr/sbin/mosquitto")
        .arg("-c")
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting /usr/sbin/mosquitto");
    let guard = Guard(Some(child));
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "mosquitto did not listen"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (guard, port)
}

struct Gateway {
    guard: Guard,
    http: SocketAddr,
    mqtt: SocketAddr,
    data_dir: PathBuf,
    operator: (OperatorName, prov_schemas::keys::SecretKey),
}

fn start_gateway(args: &Args, dir: &Path, mqtt_url: Option<String>) -> Gateway {
    let data_dir = dir.join("data");
    std::fs::create_dir_all(&data_dir).expect("data dir");
    let mut config = Config {
        data_dir: data_dir.clone(),
        origin: String::from("bench.example/prov/log/1"),
        verify_workers: args.verify_workers,
        ..Config::default()
    };
    config.mqtt.url = mqtt_url;
    config.mqtt.embedded_port = 0;
    config.mqtt.inflight = args.gateway_inflight;
    config.mqtt.client_id = format!("prov-gateway-bench-{}", std::process::id());
    config.http.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    config.batch.max_entries = args.batch_max_entries;
    config.batch.max_delay_ms = args.batch_max_delay_ms;
    keys::create_gateway_key(&config.gateway_key_path()).expect("gateway key");
    let operator_key =
        keys::create_operator_key(&config.operator_key_path()).expect("operator key");
    let name = OperatorName::new("bench").expect("operator name");
    config.keys.operator_name = Some(String::from("bench"));
    config.keys.operators.insert(
        String::from("bench"),
        hex::encode(operator_key.public_key().to_sec1_uncompressed()),
    );
    let path = dir.join("prov.toml");
    std::fs::write(&path, config.to_toml().expect("toml")).expect("prov.toml");
    let mut child = Command::new(env!("CARGO_BIN_EXE_prov"))
        .arg("--config")
        .arg(&path)
        .args(["gateway", "run"])
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting prov gateway run");
    let stdout = child.stdout.take().expect("stdout");
    let guard = Guard(Some(child));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if line.starts_with("prov gateway:") {
                let _ = tx.send(line);
            } else {
                eprintln!("[gateway] {line}");
            }
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("the gateway did not print its addresses");
    let field = |key: &str| -> SocketAddr {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in {line:?}"))
    };
    Gateway {
        guard,
        http: field("http="),
        mqtt: field("mqtt="),
        data_dir,
        operator: (name, operator_key),
    }
}

/// Registers every device through the HTTP API, all at once (they share batches).
fn register(gw: &Gateway, devices: &[(DeviceId, PublicKey)]) -> Duration {
    let started = Instant::now();
    let time = now().expect("now");
    let handles: Vec<_> = devices
        .iter()
        .map(|(device, key)| {
            let record = registration_record(*device, *key, time, gw.operator.0, &gw.operator.1)
                .expect("registration record");
            let addr = gw.http;
            let device = *device;
            std::thread::spawn(move || {
                let mut http = Http::new(addr);
                let (status, body) = http
                    .request("POST", "/api/v1/registry", &record)
                    .expect("POST /api/v1/registry");
                assert_eq!(
                    status,
                    200,
                    "registering {device}: {}",
                    String::from_utf8_lossy(&body)
                );
            })
        })
        .collect();
    for h in handles {
        h.join().expect("registration thread");
    }
    started.elapsed()
}

// -------------------------------------------------------------------------------------------
// The run.
// -------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Default)]
struct Sample {
    t_ns: u64,
    covered: u64,
    gateway: u64,
    broker: u64,
    bench: u64,
    sys_busy: u64,
    sys_iowait: u64,
    threads: BTreeMap<u32, ThreadStat>,
    /// The broker's main thread (run ns, run-queue wait ns).
    broker_sched: (u64, u64),
}

struct Shared {
    t0: Instant,
    stop: AtomicBool,
    /// The publishers are disconnecting (their event loops' errors are expected).
    closing: AtomicBool,
    published: AtomicU64,
    /// Events (leaves beyond the registry records) covered by the served checkpoint.
    covered: AtomicU64,
    /// (ns since t0, tree size) at each change seen.
    checkpoints: Mutex<Vec<(u64, u64)>>,
    samples: Mutex<Vec<Sample>>,
    pubacks: AtomicU64,
    mqtt_errors: AtomicU64,
}

impl Shared {
    fn ns(&self) -> u64 {
        u64::try_from(self.t0.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

fn poller(shared: Arc<Shared>, http: SocketAddr, base: u64, poll: Duration) {
    let mut client = Http::new(http);
    let mut last = 0;
    while !shared.stop.load(Ordering::Relaxed) {
        if let Some(size) = checkpoint_size(&mut client)
            && size != last
        {
            last = size;
            let t = shared.ns();
            shared.checkpoints.lock().unwrap().push((t, size));
            shared
                .covered
                .store(size.saturating_sub(base), Ordering::Release);
        }
        std::thread::sleep(poll);
    }
}

fn sampler(shared: Arc<Shared>, gateway: u32, broker: u32) {
    let me = std::process::id();
    while !shared.stop.load(Ordering::Relaxed) {
        let (sys_busy, sys_iowait, _) = system_ticks();
        let sample = Sample {
            t_ns: shared.ns(),
            covered: shared.covered.load(Ordering::Acquire),
            gateway: process_ticks(gateway),
            broker: if broker == 0 {
                0
            } else {
                process_ticks(broker)
            },
            bench: process_ticks(me),
            sys_busy,
            sys_iowait,
            threads: thread_ticks(gateway),
            broker_sched: if broker == 0 {
                (0, 0)
            } else {
                schedstat(Path::new(&format!("/proc/{broker}/schedstat")))
            },
        };
        shared.samples.lock().unwrap().push(sample);
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Publishes the stream; returns (record index, publish ns) for every record.
fn publish_all(
    args: &Args,
    stream: &Arc<Stream>,
    mqtt: SocketAddr,
    shared: &Arc<Shared>,
) -> Vec<(u32, u64)> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bench-pub")
        .enable_all()
        .build()
        .expect("runtime");
    let k = args.connections;
    let window = args.window();
    let rate = args.rate;
    let inflight = args.inflight;
    runtime.block_on(async {
        let mut tasks = Vec::new();
        for c in 0..k {
            let mut options = MqttOptions::new(
                format!("bench-pub-{}-{c}", std::process::id()),
                mqtt.ip().to_string(),
                mqtt.port(),
            );
            options
                .set_keep_alive(Duration::from_secs(60))
                .set_clean_session(true)
                .set_inflight(inflight)
                .set_max_packet_size(64 * 1024, 64 * 1024);
            let (client, mut eventloop) = AsyncClient::new(options, 1024);
            let acks = Arc::clone(shared);
            tokio::spawn(async move {
                loop {
                    match eventloop.poll().await {
                        Ok(Event::Incoming(Packet::PubAck(_))) => {
                            acks.pubacks.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(_) => {}
                        Err(e) => {
                            if acks.closing.load(Ordering::Relaxed) {
                                return;
                            }
                            acks.mqtt_errors.fetch_add(1, Ordering::Relaxed);
                            eprintln!("publisher {c}: {e}");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
            });
            let stream = Arc::clone(stream);
            let shared = Arc::clone(shared);
            tasks.push(tokio::spawn(async move {
                let mut times = Vec::new();
                let start = tokio::time::Instant::from_std(shared.t0);
                for (i, r) in stream.records.iter().enumerate() {
                    if r.device as usize % k != c {
                        continue;
                    }
                    if rate > 0.0 {
                        let due = start + Duration::from_secs_f64(i as f64 / rate);
                        tokio::time::sleep_until(due).await;
                    }
                    while shared.published.load(Ordering::Relaxed)
                        >= shared
                            .covered
                            .load(Ordering::Acquire)
                            .saturating_add(window)
                    {
                        tokio::time::sleep(Duration::from_micros(500)).await;
                    }
                    shared.published.fetch_add(1, Ordering::Relaxed);
                    times.push((u32::try_from(i).expect("index"), shared.ns()));
                    client
                        .publish_bytes(r.topic.clone(), QoS::AtLeastOnce, false, r.payload.clone())
                        .await
                        .expect("publish");
                }
                // Keep the client until its messages are out.
                while !shared.stop.load(Ordering::Relaxed)
                    && shared.pubacks.load(Ordering::Relaxed)
                        < shared.published.load(Ordering::Relaxed)
                {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                (times, client)
            }));
        }
        let mut all = Vec::new();
        let mut clients = Vec::new();
        for t in tasks {
            let (times, client) = t.await.expect("publisher task");
            all.extend(times);
            clients.push(client);
        }
        // Wait for the checkpoint to cover everything (or a stall).
        let total = stream.records.len() as u64;
        let mut last = (0, Instant::now());
        loop {
            let c = shared.covered.load(Ordering::Acquire);
            if c >= total {
                break;
            }
            if c != last.0 {
                last = (c, Instant::now());
            } else if last.1.elapsed() > Duration::from_secs(30) {
                eprintln!("stalled: checkpoint covers {c} of {total} events after 30 s");
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        shared.closing.store(true, Ordering::Relaxed);
        for c in clients {
            let _ = c.disconnect().await;
        }
        all
    })
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    let args = Args::parse();
    let mut out = String::new();
    if args.broker == BrokerKind::Mosquitto && !Path::new("/usr/sbin/mosquitto").exists() {
        println!("ingest bench: /usr/sbin/mosquitto is not installed; skipped");
        return;
    }

    // 1. The stream.
    let loaded = Instant::now();
    let stream = Arc::new(load_stream(&args));
    let n = stream.records.len() as u64;
    eprintln!(
        "stream: {n} events, {} devices, {:.1} MB, {} ({:.1} s)",
        stream.devices.len(),
        stream.message_bytes as f64 / 1e6,
        stream.path.display(),
        loaded.elapsed().as_secs_f64()
    );
    if let Some((d, e)) = stream.signed_now {
        eprintln!(
            "  signed now: {e} events in {:.1} s ({:.0}/s)",
            d.as_secs_f64(),
            e as f64 / d.as_secs_f64()
        );
    }
    let mut per_device = vec![0u64; stream.devices.len()];
    for r in &stream.records {
        per_device[r.device as usize] += 1;
    }
    let active = per_device.iter().filter(|&&c| c > 0).count();
    let max_dev = per_device.iter().copied().max().unwrap_or(0);

    // Wait for a quiet machine.
    if let Some(limit) = args.wait_load {
        let started = Instant::now();
        loop {
            let (l1, _, _) = loadavg();
            if l1 <= limit {
                break;
            }
            if started.elapsed() > Duration::from_secs(1800) {
                eprintln!("load still {l1:.2} > {limit} after 30 min: running anyway");
                break;
            }
            eprintln!("load {l1:.2} > {limit}: waiting …");
            std::thread::sleep(Duration::from_secs(20));
        }
    }
    let load_before = loadavg();
    let clk = clock_ticks();

    // 2–3. Broker and gateway.
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut broker, mqtt_url) = match args.broker {
        BrokerKind::Mosquitto => {
            let (g, port) = start_mosquitto(dir.path(), args.broker_inflight);
            (g, Some(format!("mqtt://127.0.0.1:{port}")))
        }
        BrokerKind::Embedded => (Guard(None), None),
    };
    let mut gw = start_gateway(&args, dir.path(), mqtt_url);
    let gw_pid = gw.guard.pid();
    let reg_time = register(&gw, &stream.devices);
    let mut http = Http::new(gw.http);
    let base = checkpoint_size(&mut http).expect("a checkpoint after registration");
    eprintln!(
        "gateway pid {gw_pid}: http {} mqtt {}; {} devices registered in {:.2} s (tree size {base})",
        gw.http,
        gw.mqtt,
        stream.devices.len(),
        reg_time.as_secs_f64()
    );
    let rss_idle = status_kb(gw_pid, "VmRSS:");

    let mut perf = args.perf.as_ref().map(|file| {
        Guard(Some(
            Command::new("perf")
                .args([
                    "record",
                    "-e",
                    "cpu-clock",
                    "-F",
                    "499",
                    "--call-graph",
                    "dwarf,16384",
                    "-p",
                ])
                .arg(gw_pid.to_string())
                .arg("-o")
                .arg(file)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("perf record"),
        ))
    });
    let mut trace = args.perf_trace.as_ref().map(|file| {
        Guard(Some(
            Command::new("perf")
                .args(["trace", "-s", "-p"])
                .arg(gw_pid.to_string())
                .arg("-o")
                .arg(file)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("perf trace"),
        ))
    });
    if perf.is_some() || trace.is_some() {
        std::thread::sleep(Duration::from_millis(500));
    }

    // 4–5. Publish and measure.
    let shared = Arc::new(Shared {
        t0: Instant::now(),
        stop: AtomicBool::new(false),
        closing: AtomicBool::new(false),
        published: AtomicU64::new(0),
        covered: AtomicU64::new(0),
        checkpoints: Mutex::new(Vec::new()),
        samples: Mutex::new(Vec::new()),
        pubacks: AtomicU64::new(0),
        mqtt_errors: AtomicU64::new(0),
    });
    let poll = {
        let s = Arc::clone(&shared);
        let addr = gw.http;
        let every = Duration::from_millis(args.poll_ms);
        std::thread::Builder::new()
            .name("bench-poll".into())
            .spawn(move || poller(s, addr, base, every))
            .expect("poller")
    };
    let sample = {
        let s = Arc::clone(&shared);
        let broker_pid = broker.pid();
        std::thread::Builder::new()
            .name("bench-sample".into())
            .spawn(move || sampler(s, gw_pid, broker_pid))
            .expect("sampler")
    };
    let times = publish_all(&args, &stream, gw.mqtt, &shared);
    let end_ns = shared.ns();
    std::thread::sleep(Duration::from_millis(150));
    shared.stop.store(true, Ordering::Relaxed);
    poll.join().expect("poller");
    sample.join().expect("sampler");
    for p in [&mut perf, &mut trace].into_iter().flatten() {
        if let Some(child) = &p.0 {
            let _ = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
            let _ = p.0.take().map(|mut c| c.wait());
        }
    }
    let m = metrics(&mut http);
    let hwm = status_kb(gw_pid, "VmHWM:");
    let rss = status_kb(gw_pid, "VmRSS:");
    let broker_hwm = if broker.pid() == 0 {
        0
    } else {
        status_kb(broker.pid(), "VmHWM:")
    };
    drop(http);
    let exit = gw.guard.stop(Duration::from_secs(30));
    let _ = broker.stop(Duration::from_secs(5));

    // Disk, and the leaf of every event.
    let log = LogStore::open(StoreConfig::new(gw.data_dir.join("log"))).expect("open the log");
    let usage = log.disk_usage().expect("disk usage");
    let mut by_hash: HashMap<[u8; 32], u32> = HashMap::with_capacity(stream.records.len());
    for (i, r) in stream.records.iter().enumerate() {
        by_hash.insert(
            Hash32::blake3(&r.payload).0,
            u32::try_from(i).expect("index"),
        );
    }
    let mut leaf_of = vec![u64::MAX; stream.records.len()];
    let mut log_message_bytes = 0u64;
    log.for_each_entry(0..log.size(), |leaf, entry| {
        log_message_bytes += entry.len() as u64;
        if let Some(&i) = by_hash.get(&Hash32::blake3(entry).0) {
            leaf_of[i as usize] = leaf;
        }
        std::ops::ControlFlow::Continue(())
    })
    .expect("reading the log");
    let log_size = log.size();
    drop(log);
    let (index_bytes, index_alloc) = dir_bytes(&gw.data_dir.join("index"));
    let (chain_bytes, _) = dir_bytes(&gw.data_dir.join("chain.bin"));
    let (quarantine_bytes, _) = dir_bytes(&gw.data_dir.join("quarantine.log"));

    // Analysis.
    let cps = shared.checkpoints.lock().unwrap().clone();
    let samples = shared.samples.lock().unwrap().clone();
    let covered_at = |target: u64| -> Option<u64> {
        cps.iter()
            .find(|(_, s)| s.saturating_sub(base) >= target)
            .map(|(t, _)| *t)
    };
    let (lo, hi) = (n / 10, n * 9 / 10);
    let t10 = covered_at(lo.max(1));
    let t90 = covered_at(hi.max(1));
    let t_all = covered_at(n);
    let first_pub = times.iter().map(|t| t.1).min().unwrap_or(0);
    let mut res = String::new();
    let accepted = metric(&m, "prov_events_accepted_total");
    let rejected = rejected_total(&m);
    let duplicates = metric(&m, "prov_events_duplicate_total");
    let batches = metric(&m, "prov_batches_total");

    let (steady_rate, steady_secs) = match (t10, t90) {
        (Some(a), Some(b)) if b > a => {
            let covered_a = cps.iter().find(|(t, _)| *t == a).map_or(0, |c| c.1 - base);
            let covered_b = cps.iter().find(|(t, _)| *t == b).map_or(0, |c| c.1 - base);
            let secs = (b - a) as f64 / 1e9;
            ((covered_b - covered_a) as f64 / secs, secs)
        }
        _ => (f64::NAN, 0.0),
    };
    // Slowest whole second inside the steady window.
    let mut min_second = f64::NAN;
    if let (Some(a), Some(b)) = (t10, t90) {
        let covered_by = |t: u64| -> u64 {
            let i = cps.partition_point(|(ct, _)| *ct <= t);
            if i == 0 { 0 } else { cps[i - 1].1 - base }
        };
        let mut t = a;
        while t + 1_000_000_000 <= b {
            let r = (covered_by(t + 1_000_000_000) - covered_by(t)) as f64;
            if min_second.is_nan() || r < min_second {
                min_second = r;
            }
            t += 1_000_000_000;
        }
    }

    // Latencies.
    let mut lat_all = Vec::with_capacity(times.len());
    let mut lat_steady = Vec::with_capacity(times.len());
    let mut uncovered = 0u64;
    for &(i, pub_ns) in &times {
        let leaf = leaf_of[i as usize];
        if leaf == u64::MAX {
            uncovered += 1;
            continue;
        }
        let k = cps.partition_point(|(_, size)| *size <= leaf);
        let Some(&(cov_ns, _)) = cps.get(k) else {
            uncovered += 1;
            continue;
        };
        let l = cov_ns.saturating_sub(pub_ns) as f64 / 1e9;
        lat_all.push(l);
        if let (Some(a), Some(b)) = (t10, t90)
            && pub_ns >= a
            && pub_ns <= b
        {
            lat_steady.push(l);
        }
    }
    lat_all.sort_by(f64::total_cmp);
    lat_steady.sort_by(f64::total_cmp);
    let lat = if lat_steady.len() > 100 {
        &lat_steady
    } else {
        &lat_all
    };

    // CPU over the steady window.
    let pick = |t: Option<u64>, first: bool| -> Option<Sample> {
        let t = t?;
        if first {
            samples.iter().find(|s| s.t_ns >= t).cloned()
        } else {
            samples.iter().rev().find(|s| s.t_ns <= t).cloned()
        }
    };
    let cpu = match (pick(t10, true), pick(t90, false)) {
        (Some(a), Some(b)) if b.t_ns > a.t_ns => Some((a, b)),
        _ => None,
    };

    let _ = writeln!(
        res,
        "## ingest bench{}",
        if args.label.is_empty() {
            String::new()
        } else {
            format!(": {}", args.label)
        }
    );
    let _ = writeln!(
        res,
        "load average before the run: {:.2} {:.2} {:.2}; {} CPUs",
        load_before.0,
        load_before.1,
        load_before.2,
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    let _ = writeln!(
        res,
        "stream: {n} events from {} devices ({active} with events, at most {max_dev} per device), {:.0} B/message mean",
        stream.devices.len(),
        stream.message_bytes as f64 / n.max(1) as f64
    );
    let _ = writeln!(
        res,
        "broker: {}; publisher: {} rumqttc clients, QoS 1, inflight {} each, {}",
        match args.broker {
            BrokerKind::Mosquitto => format!(
                "mosquitto (max_queued_messages 0, max_inflight_messages {}, persistence false)",
                args.broker_inflight
            ),
            BrokerKind::Embedded => String::from("embedded rumqttd (in the gateway process)"),
        },
        args.connections,
        args.inflight,
        if args.rate > 0.0 {
            format!("open loop at {:.0} events/s", args.rate)
        } else {
            format!(
                "closed loop, window {} events published and not yet checkpointed",
                args.window()
            )
        }
    );
    let _ = writeln!(
        res,
        "gateway: child `prov gateway run`, batch max_entries {} max_delay_ms {}, verify workers {}, mqtt inflight {}",
        args.batch_max_entries,
        args.batch_max_delay_ms,
        if args.verify_workers == 0 {
            String::from("one per CPU")
        } else {
            args.verify_workers.to_string()
        },
        args.gateway_inflight
    );
    let _ = writeln!(res);
    let _ = writeln!(res, "| measure | value |");
    let _ = writeln!(res, "|---|---|");
    let mut row = |k: &str, v: String| {
        let _ = writeln!(res, "| {k} | {v} |");
    };
    row(
        "sustained accepted events/s (10 %→90 % of the run)",
        format!("**{steady_rate:.0}** over {steady_secs:.1} s (slowest second {min_second:.0})"),
    );
    if let Some(t) = t_all {
        row(
            "whole run, first publish → all checkpointed",
            format!(
                "{:.0} events/s ({:.1} s)",
                n as f64 / ((t - first_pub) as f64 / 1e9),
                (t - first_pub) as f64 / 1e9
            ),
        );
    }
    row(
        "publish → checkpoint latency p50 / p99 / max",
        format!(
            "**{:.0} ms / {:.0} ms** / {:.0} ms ({} events{})",
            percentile(lat, 0.5) * 1e3,
            percentile(lat, 0.99) * 1e3,
            lat.last().copied().unwrap_or(f64::NAN) * 1e3,
            lat.len(),
            if std::ptr::eq(lat, &lat_steady) {
                ", steady window"
            } else {
                ", whole run"
            }
        ),
    );
    row(
        "same, whole run p50 / p99",
        format!(
            "{:.0} ms / {:.0} ms",
            percentile(&lat_all, 0.5) * 1e3,
            percentile(&lat_all, 0.99) * 1e3
        ),
    );
    let h_count = metric(&m, "prov_batch_latency_seconds_count");
    row(
        "batches; mean events/batch; gateway's own receipt→checkpoint mean",
        format!(
            "{batches:.0}; {:.0}; {:.0} ms (oldest message of each batch)",
            accepted / batches.max(1.0),
            metric(&m, "prov_batch_latency_seconds_sum") / h_count.max(1.0) * 1e3
        ),
    );
    row(
        "accepted / rejected / duplicate / not covered",
        format!("{accepted:.0} / {rejected:.0} / {duplicates:.0} / {uncovered}"),
    );
    row(
        "gateway RSS: idle after registration / peak (VmHWM) / at end",
        format!(
            "{:.1} MB / **{:.1} MB** / {:.1} MB",
            rss_idle as f64 / 1024.0,
            hwm as f64 / 1024.0,
            rss as f64 / 1024.0
        ),
    );
    if broker_hwm > 0 {
        row(
            "mosquitto peak RSS",
            format!("{:.1} MB", broker_hwm as f64 / 1024.0),
        );
    }
    let msg = log_message_bytes.max(1) as f64;
    row(
        "message bytes in the log (events + registry records)",
        format!("{log_message_bytes} ({log_size} entries)"),
    );
    row(
        "log bytes: entries + tree = total (× message bytes)",
        format!(
            "{} + {} = {} (**{:.3}×**, {:.1} B/event)",
            usage.entry_bytes,
            usage.tree_bytes,
            usage.entry_bytes + usage.tree_bytes,
            (usage.entry_bytes + usage.tree_bytes) as f64 / msg,
            (usage.entry_bytes + usage.tree_bytes) as f64 / log_size.max(1) as f64
        ),
    );
    row(
        "index bytes (sled): apparent / allocated (× message bytes)",
        format!(
            "{index_bytes} / {index_alloc} ({:.2}× / {:.2}×, {:.0} B/event)",
            index_bytes as f64 / msg,
            index_alloc as f64 / msg,
            index_bytes as f64 / log_size.max(1) as f64
        ),
    );
    row(
        "chain file / quarantine",
        format!("{chain_bytes} / {quarantine_bytes} bytes"),
    );
    if let Some((a, b)) = &cpu {
        let secs = (b.t_ns - a.t_ns) as f64 / 1e9;
        let cores = |d: u64| d as f64 / clk / secs;
        let gw_c = cores(b.gateway - a.gateway);
        let br_c = cores(b.broker - a.broker);
        let be_c = cores(b.bench - a.bench);
        let sys = cores(b.sys_busy - a.sys_busy);
        let iow = cores(b.sys_iowait - a.sys_iowait);
        let rate = (b.covered - a.covered) as f64 / secs;
        let per_ev = |c: f64| c / rate.max(1.0) * 1e6;
        row(
            "CPU (cores) over the steady window: gateway",
            format!("{gw_c:.2} ({:.0} µs/event)", per_ev(gw_c)),
        );
        if args.broker == BrokerKind::Mosquitto {
            row(
                "  mosquitto",
                format!("{br_c:.2} ({:.0} µs/event)", per_ev(br_c)),
            );
        }
        row(
            "  publisher + poller (this process)",
            format!("{be_c:.2} ({:.0} µs/event)", per_ev(be_c)),
        );
        row(
            "  whole machine busy / other processes / iowait",
            format!(
                "{sys:.2} of 2 / {:.2} / {iow:.2}",
                (sys - gw_c - br_c - be_c).max(0.0)
            ),
        );
        // Gateway threads (long-lived threads by name; the rest is short-lived threads, i.e.
        // the per-batch verify workers).
        let mut by_name: BTreeMap<String, u64> = BTreeMap::new();
        let mut named = 0;
        let wall = (b.t_ns - a.t_ns) as f64;
        let mut pipeline_sched = None;
        for (tid, tb) in &b.threads {
            if let Some(ta) = a.threads.get(tid) {
                *by_name.entry(tb.name.clone()).or_default() += tb.ticks - ta.ticks;
                named += tb.ticks - ta.ticks;
                if tb.name == "prov-pipeline" {
                    pipeline_sched = Some((
                        (tb.run_ns - ta.run_ns) as f64 / wall,
                        (tb.wait_ns - ta.wait_ns) as f64 / wall,
                    ));
                }
            }
        }
        let mut parts: Vec<(String, u64)> = by_name.into_iter().collect();
        parts.push((
            String::from("short-lived threads (verify workers)"),
            (b.gateway - a.gateway).saturating_sub(named),
        ));
        parts.sort_by_key(|p| std::cmp::Reverse(p.1));
        let text: Vec<String> = parts
            .iter()
            .filter(|(_, t)| *t > 0)
            .map(|(name, t)| format!("{name} {:.2}", cores(*t)))
            .collect();
        row("  gateway by thread (cores)", text.join(", "));
        if let Some((run, wait)) = pipeline_sched {
            row(
                "pipeline thread: running / runnable, waiting for a CPU / blocked (fsync, idle, joins)",
                format!(
                    "{:.0} % / {:.0} % / {:.0} % of wall time",
                    run * 100.0,
                    wait * 100.0,
                    (1.0 - run - wait).max(0.0) * 100.0
                ),
            );
        }
        if args.broker == BrokerKind::Mosquitto {
            row(
                "mosquitto: running / waiting for a CPU",
                format!(
                    "{:.0} % / {:.0} % of wall time",
                    (b.broker_sched.0 - a.broker_sched.0) as f64 / wall * 100.0,
                    (b.broker_sched.1 - a.broker_sched.1) as f64 / wall * 100.0
                ),
            );
        }
    }
    row(
        "publisher: pubacks / MQTT errors",
        format!(
            "{} / {}",
            shared.pubacks.load(Ordering::Relaxed),
            shared.mqtt_errors.load(Ordering::Relaxed)
        ),
    );
    row(
        "gateway exit",
        format!("{exit:?} after {:.1} s of publishing", end_ns as f64 / 1e9),
    );
    let _ = writeln!(res);
    out.push_str(&res);
    println!("{out}");
    if let Some(path) = &args.out {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("--out file");
        f.write_all(out.as_bytes()).expect("writing --out");
    }
    if args.keep {
        let kept = dir.keep();
        eprintln!("kept {}", kept.display());
    }
}
