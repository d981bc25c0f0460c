//! Shared helpers of the service tests: data directories with keys, device registration over
//! HTTP, a tiny HTTP client, proof and chain checks, and a guard for child processes.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, HashSet};
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use prov_gateway::config::Config;
use prov_gateway::keys;
use prov_ledger::chain::verify_chain;
use prov_ledger::checkpoint::Checkpoint;
use prov_ledger::note::VerifierKey;
use prov_ledger::store::{ChainStore, LogStore, StoreConfig};
use prov_ledger::tlog_proof::TlogProof;
use prov_schemas::Hash32;
use prov_schemas::keys::{DeviceId, OperatorName, PublicKey, SecretKey};

pub const ORIGIN: &str = "test.example/prov/log/1";
pub const OPERATOR: &str = "site";

/// A fresh data dir with a gateway key and an operator key; the config trusts the operator.
pub fn make_config(dir: &Path, mqtt_url: Option<String>, client_id: &str) -> (Config, SecretKey) {
    let mut config = Config {
        data_dir: dir.to_path_buf(),
        origin: ORIGIN.into(),
        ..Config::default()
    };
    std::fs::create_dir_all(dir).unwrap();
    keys::create_gateway_key(&config.gateway_key_path()).unwrap();
    let op = keys::create_operator_key(&config.operator_key_path()).unwrap();
    config.keys.operator_name = Some(OPERATOR.into());
    config.keys.operators.insert(
        OPERATOR.into(),
        hex::encode(op.public_key().to_sec1_uncompressed()),
    );
    config.mqtt.url = mqtt_url;
    config.mqtt.client_id = client_id.into();
    config.mqtt.embedded_port = 0;
    config.http.listen = "127.0.0.1:0".parse().unwrap();
    config.verify_workers = 2;
    (config, op)
}

/// A unique suffix for client ids.
pub fn unique(prefix: &str) -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{n}", std::process::id())
}

/// One blocking HTTP/1.1 request.
pub fn http(addr: &str, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    try_http(addr, method, path, body).unwrap_or_else(|| panic!("{method} {path} on {addr} failed"))
}

/// One blocking HTTP/1.1 request; `None` on any connection or protocol failure.
pub fn try_http(addr: &str, method: &str, path: &str, body: &[u8]) -> Option<(u16, Vec<u8>)> {
    try_request(addr, method, path, "", body).map(|(status, _, body)| (status, body))
}

/// One blocking HTTP/1.1 request with extra header lines (each ending in CRLF): the status,
/// the response head as received, and the (de-chunked) body; `None` on any failure.
pub fn try_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &str,
    body: &[u8],
) -> Option<(u16, String, Vec<u8>)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n{headers}Connection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).ok()?;
    s.write_all(body).ok()?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).ok()?;
    let split = resp.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&resp[..split]).to_string();
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let mut body = resp[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    Some((status, head, body))
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(pos) = data.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(std::str::from_utf8(&data[..pos]).unwrap().trim(), 16)
            .unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&data[pos + 2..pos + 2 + size]);
        data = &data[(pos + 4 + size).min(data.len())..];
    }
    out
}

/// Tries an HTTP GET, `None` if the server is not up.
pub fn try_get(addr: &str, path: &str) -> Option<(u16, Vec<u8>)> {
    try_http(addr, "GET", path, &[])
}

/// Registers `devices` by posting operator-signed registration records.
pub fn register(addr: &str, operator: &SecretKey, devices: &[(DeviceId, PublicKey)]) {
    for (device, key) in devices {
        let record = prov_simulator::provision::registration_record(
            *device,
            *key,
            prov_simulator::provision::now().unwrap(),
            OperatorName::new(OPERATOR).unwrap(),
            operator,
        )
        .unwrap();
        let (status, body) = http(addr, "POST", "/api/v1/registry", &record);
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    }
}

/// The value of a metric line `name` (no labels).
pub fn metric(addr: &str, name: &str) -> Option<u64> {
    let (_, body) = try_get(addr, "/metrics")?;
    String::from_utf8_lossy(&body).lines().find_map(|l| {
        let (n, v) = l.split_once(' ')?;
        (n == name).then(|| v.trim().parse().ok()).flatten()
    })
}

/// Polls `f` every 50 ms until it is true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

/// Every entry of the log is fetched with its tlog-proof over HTTP and verified against the
/// latest checkpoint under the gateway key. Returns the entries.
pub fn verify_all_proofs(addr: &str, key: &VerifierKey) -> Vec<Vec<u8>> {
    let (status, note) = http(addr, "GET", "/checkpoint", &[]);
    assert_eq!(status, 200);
    let note = String::from_utf8(note).unwrap();
    let checkpoint = Checkpoint::open(&note, key).unwrap();
    let mut entries = Vec::new();
    for i in 0..checkpoint.size() {
        let (s1, entry) = http(addr, "GET", &format!("/api/v1/entries/{i}"), &[]);
        assert_eq!(s1, 200);
        let (s2, proof) = http(addr, "GET", &format!("/api/v1/proof/{i}"), &[]);
        assert_eq!(s2, 200, "{}", String::from_utf8_lossy(&proof));
        let proof = TlogProof::parse(std::str::from_utf8(&proof).unwrap()).unwrap();
        assert_eq!(proof.index(), i);
        let got = proof.verify_entry(&entry, key).unwrap();
        // The embedded checkpoint is at least as new as the one fetched first.
        assert!(got.size() >= checkpoint.size());
        entries.push(entry);
    }
    entries
}

/// Replays the chain file of a stopped gateway from block 0; returns every block's checkpoint
/// (size, root) and the latest.
pub fn verify_chain_file(config: &Config, key: &VerifierKey) -> Vec<(u64, Hash32)> {
    let chain = ChainStore::open(&config.chain_path(), key).unwrap();
    let blocks: Vec<Vec<u8>> = (0..chain.len()).map(|i| chain.block(i).unwrap()).collect();
    let latest = verify_chain(&blocks, key).unwrap();
    assert_eq!(Some(&latest), chain.latest());
    blocks
        .iter()
        .map(|b| {
            let block = prov_ledger::chain::ChainBlock::decode(b).unwrap();
            let cp = Checkpoint::open(block.checkpoint_note(), key).unwrap();
            (cp.size(), cp.root())
        })
        .collect()
}

/// The entries of a stopped gateway's log, checking there is no duplicate.
pub fn log_entries(config: &Config) -> Vec<Vec<u8>> {
    let log = LogStore::open(StoreConfig::new(config.log_dir())).unwrap();
    let mut out = Vec::new();
    log.for_each_entry(0..log.size(), |_, e| {
        out.push(e.to_vec());
        std::ops::ControlFlow::Continue(())
    })
    .unwrap();
    let distinct: HashSet<Hash32> = out.iter().map(|e| Hash32::blake3(e)).collect();
    assert_eq!(distinct.len(), out.len(), "duplicate leaves in the log");
    out
}

/// Checks that no two checkpoints name different roots for one size.
pub fn assert_consistent(checkpoints: &[(u64, Hash32)]) {
    let mut seen: BTreeMap<u64, Hash32> = BTreeMap::new();
    for (size, root) in checkpoints {
        if let Some(prev) = seen.insert(*size, *root) {
            assert_eq!(prev, *root, "two different roots signed for size {size}");
        }
    }
}

/// A child process killed on drop.
pub struct ChildGuard(pub Option<Child>);

impl ChildGuard {
    pub fn kill(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait (graceful shutdown).
    pub fn terminate(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = std::process::Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(20) {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
            panic!("the gateway did not stop within 20 s of SIGTERM");
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Writes `config` to `{dir}/prov.toml` and returns the path.
pub fn write_config(config: &Config, dir: &Path) -> PathBuf {
    let path = dir.join("prov.toml");
    std::fs::write(&path, config.to_toml().unwrap()).unwrap();
    path
}

/// The verifier key of a config's gateway key.
pub fn gateway_key(config: &Config) -> VerifierKey {
    keys::load_gateway_signer(&config.gateway_key_path(), &config.origin)
        .unwrap()
        .verifier_key()
        .unwrap()
}
