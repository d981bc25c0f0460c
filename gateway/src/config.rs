//! The gateway's configuration: a TOML file, then `PROV_*` environment overrides.
//!
//! Why both: the file is what an operator keeps under version control (trusted operator keys,
//! origin, site); the environment is what a container or a test changes per run (ports, data
//! directory, broker URL) without rewriting the file. Every field has a default, so an empty
//! file (or none) starts a gateway on loopback with the embedded broker.
//!
//! Environment overrides (each replaces the file's value):
//!
//! | variable | field |
//! |---|---|
//! | `PROV_DATA_DIR` | `data_dir` |
//! | `PROV_ORIGIN` | `origin` |
//! | `PROV_SITE` | `site` |
//! | `PROV_MQTT_URL` | `mqtt.url` (`mqtt://host:port`; empty = embedded broker) |
//! | `PROV_MQTT_CLIENT_ID` | `mqtt.client_id` |
//! | `PROV_MQTT_SHARED_GROUP` | `mqtt.shared_group` |
//! | `PROV_EMBEDDED_PORT` | `mqtt.embedded_port` (0: any free port) |
//! | `PROV_HTTP_LISTEN` | `http.listen` |
//! | `PROV_BATCH_MAX_ENTRIES` | `batch.max_entries` |
//! | `PROV_BATCH_MAX_DELAY_MS` | `batch.max_delay_ms` |
//! | `PROV_GATEWAY_KEY` | `keys.gateway_key` |
//! | `PROV_OPERATOR_KEY` | `keys.operator_key` |
//! | `PROV_RESOLVER_BASE_URL` | `resolver.base_url` |

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Default batch size: large enough that a batch's fsyncs are amortised at ~12,000 events/s,
/// small enough that verifying it (~35 ms on two cores with `ring`) stays far below 1 s.
pub const DEFAULT_MAX_ENTRIES: usize = 1000;

/// Default batch delay: the longest an event waits for its batch to fill. Receipt to checkpoint
/// is then about this plus verify, two fdatasyncs and a signature: well under the 1 s p99.
/// Short because a broker's in-flight window can keep a batch from ever filling: the embedded
/// rumqttd sends at most 100 unacknowledged messages per connection, so with 50 ms every batch
/// waited the full delay (1,243 events/s; 2,773/s at 10 ms); under Mosquitto saturated batches
/// fill first and the delay costs nothing (docs/bench/README.md).
pub const DEFAULT_MAX_DELAY_MS: u64 = 10;

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the log, chain, indexes and quarantine live.
    pub data_dir: PathBuf,
    /// The log's origin (checkpoint key name), unique per log.
    pub origin: String,
    /// Accept events only on topics of this site (`None`: any site).
    pub site: Option<String>,
    /// The broker.
    pub mqtt: MqttConfig,
    /// The HTTP API.
    pub http: HttpConfig,
    /// Batching.
    pub batch: BatchConfig,
    /// Key files and trusted operators.
    pub keys: KeysConfig,
    /// Threads verifying a batch's signatures (0: one per CPU).
    pub verify_workers: usize,
    /// The Digital Link resolver, bundles and labels.
    pub resolver: ResolverConfig,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            data_dir: PathBuf::from("prov-data"),
            origin: String::from("gateway.example/prov/log/1"),
            site: None,
            mqtt: MqttConfig::default(),
            http: HttpConfig::default(),
            batch: BatchConfig::default(),
            keys: KeysConfig::default(),
            verify_workers: 0,
            resolver: ResolverConfig::default(),
        }
    }
}

/// The broker connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqttConfig {
    /// `mqtt://host:port` of an external broker; `None` starts the embedded one.
    pub url: Option<String>,
    /// The stable client id of the persistent session (must be unique per gateway).
    pub client_id: String,
    /// Subscribe through `$share/{group}/…` (several gateways sharing one stream).
    pub shared_group: Option<String>,
    /// Port of the embedded broker on 127.0.0.1 (if taken, a free one is picked and printed;
    /// 0: any free port).
    pub embedded_port: u16,
    /// Outgoing in-flight window (our receipts and rejects) and the embedded broker's
    /// per-connection in-flight window towards us.
    pub inflight: u16,
    /// Keep-alive, seconds.
    pub keep_alive_s: u64,
}

impl Default for MqttConfig {
    fn default() -> MqttConfig {
        MqttConfig {
            url: None,
            client_id: String::from("prov-gateway"),
            shared_group: None,
            embedded_port: 1883,
            inflight: 1000,
            keep_alive_s: 30,
        }
    }
}

/// The HTTP API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Listen address (port 0: any free port).
    pub listen: SocketAddr,
}

impl Default for HttpConfig {
    fn default() -> HttpConfig {
        HttpConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
        }
    }
}

/// Batching: a batch closes at `max_entries` messages or `max_delay_ms` after its first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BatchConfig {
    /// Most messages in one batch.
    pub max_entries: usize,
    /// Longest a batch stays open, milliseconds.
    pub max_delay_ms: u64,
}

impl Default for BatchConfig {
    fn default() -> BatchConfig {
        BatchConfig {
            max_entries: DEFAULT_MAX_ENTRIES,
            max_delay_ms: DEFAULT_MAX_DELAY_MS,
        }
    }
}

/// Default cap on the events of one provenance bundle (SPEC §6): a pallet's life of cold-room
/// readings fits, and the page still verifies it well within its time budget.
pub const DEFAULT_MAX_BUNDLE_EVENTS: usize = 500;

/// The Digital Link resolver (SPEC §1, §6): bundles and QR labels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResolverConfig {
    /// The resolver base URL printed into QR labels (`scheme://host[:port][/prefix]`);
    /// `None`: `http://{the HTTP listen address}`.
    pub base_url: Option<String>,
    /// Most events in one bundle; beyond it the bundle says `"truncated": true`.
    pub max_bundle_events: usize,
}

impl Default for ResolverConfig {
    fn default() -> ResolverConfig {
        ResolverConfig {
            base_url: None,
            max_bundle_events: DEFAULT_MAX_BUNDLE_EVENTS,
        }
    }
}

/// Key files and trusted operator keys.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeysConfig {
    /// The gateway's Ed25519 seed file (default `{data_dir}/gateway.key`).
    pub gateway_key: Option<PathBuf>,
    /// This site's operator P-256 key file, used by the `device` commands to sign registry
    /// records (default `{data_dir}/operator.key`). The gateway itself never signs with it.
    pub operator_key: Option<PathBuf>,
    /// The operator name of `operator_key` (kid `operator:{name}`).
    pub operator_name: Option<String>,
    /// Trusted operators: name → 65-byte uncompressed SEC1 public key, hex.
    pub operators: BTreeMap<String, String>,
}

/// A configuration that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this configuration.
    #[error("parsing {}: {source}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        source: Box<toml::de::Error>,
    },
    /// An environment override does not parse.
    #[error("environment variable {var}={value:?}: {detail}")]
    Env {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// What is wrong.
        detail: String,
    },
    /// The configuration could not be written.
    #[error("serialising the configuration: {0}")]
    Serialize(#[from] toml::ser::Error),
}

impl Config {
    /// Reads `path` (if given) and applies the environment overrides.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let mut config = match path {
            Some(p) => Config::from_file(p)?,
            None => Config::default(),
        };
        config.apply_env(|k| std::env::var(k).ok())?;
        Ok(config)
    }

    /// Reads a TOML file (no environment overrides).
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source: Box::new(source),
        })
    }

    /// The TOML text of this configuration.
    pub fn to_toml(&self) -> Result<String, ConfigError> {
        Ok(toml::to_string_pretty(self)?)
    }

    /// Applies `PROV_*` overrides read through `var` (the environment, or a map in tests).
    pub fn apply_env(
        &mut self,
        var: impl Fn(&'static str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        fn parse<T: std::str::FromStr>(var: &'static str, value: String) -> Result<T, ConfigError>
        where
            T::Err: std::fmt::Display,
        {
            value.parse().map_err(|e: T::Err| ConfigError::Env {
                var,
                detail: e.to_string(),
                value,
            })
        }
        if let Some(v) = var("PROV_DATA_DIR") {
            self.data_dir = PathBuf::from(v);
        }
        if let Some(v) = var("PROV_ORIGIN") {
            self.origin = v;
        }
        if let Some(v) = var("PROV_SITE") {
            self.site = (!v.is_empty()).then_some(v);
        }
        if let Some(v) = var("PROV_MQTT_URL") {
            self.mqtt.url = (!v.is_empty()).then_some(v);
        }
        if let Some(v) = var("PROV_MQTT_CLIENT_ID") {
            self.mqtt.client_id = v;
        }
        if let Some(v) = var("PROV_MQTT_SHARED_GROUP") {
            self.mqtt.shared_group = (!v.is_empty()).then_some(v);
        }
        if let Some(v) = var("PROV_EMBEDDED_PORT") {
            self.mqtt.embedded_port = parse("PROV_EMBEDDED_PORT", v)?;
        }
        if let Some(v) = var("PROV_HTTP_LISTEN") {
            self.http.listen = parse("PROV_HTTP_LISTEN", v)?;
        }
        if let Some(v) = var("PROV_BATCH_MAX_ENTRIES") {
            self.batch.max_entries = parse("PROV_BATCH_MAX_ENTRIES", v)?;
        }
        if let Some(v) = var("PROV_BATCH_MAX_DELAY_MS") {
            self.batch.max_delay_ms = parse("PROV_BATCH_MAX_DELAY_MS", v)?;
        }
        if let Some(v) = var("PROV_GATEWAY_KEY") {
            self.keys.gateway_key = Some(PathBuf::from(v));
        }
        if let Some(v) = var("PROV_OPERATOR_KEY") {
            self.keys.operator_key = Some(PathBuf::from(v));
        }
        if let Some(v) = var("PROV_RESOLVER_BASE_URL") {
            self.resolver.base_url = (!v.is_empty()).then_some(v);
        }
        Ok(())
    }

    /// The gateway key file.
    pub fn gateway_key_path(&self) -> PathBuf {
        self.keys
            .gateway_key
            .clone()
            .unwrap_or_else(|| self.data_dir.join("gateway.key"))
    }

    /// The operator key file.
    pub fn operator_key_path(&self) -> PathBuf {
        self.keys
            .operator_key
            .clone()
            .unwrap_or_else(|| self.data_dir.join("operator.key"))
    }

    /// The log directory.
    pub fn log_dir(&self) -> PathBuf {
        self.data_dir.join("log")
    }

    /// The chain file.
    pub fn chain_path(&self) -> PathBuf {
        self.data_dir.join("chain.bin")
    }

    /// The sled indexes directory.
    pub fn index_dir(&self) -> PathBuf {
        self.data_dir.join("index")
    }

    /// The lookup counters of the resolver (not derived from the log: kept apart from it).
    pub fn lookups_dir(&self) -> PathBuf {
        self.data_dir.join("lookups")
    }

    /// The quarantine file.
    pub fn quarantine_path(&self) -> PathBuf {
        self.data_dir.join("quarantine.log")
    }
}
