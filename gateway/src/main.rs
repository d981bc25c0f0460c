//! `prov`: the one command-line binary of the gateway.
//!
//! - `prov init --data-dir D [--origin O] [--operator NAME]`: keys (gateway Ed25519 seed,
//!   operator P-256 key, both 0600) and `D/prov.toml` trusting that operator.
//! - `prov gateway run [--config F]`: the service, until SIGINT/SIGTERM.
//! - `prov device add --id ID (--public-key HEX | --key-file F) [--gateway URL]`,
//!   `prov device revoke --id ID`, `prov device list`: registry records signed with the
//!   operator key and posted to the gateway, which logs them like any entry.
//! - `prov reindex --data-dir D [--out D2]`: rebuilds the sled indexes from the log.
//! - `prov demo [--http ADDR] [--data-dir D] [--seed N] [--run-tag T] [--products N]
//!   [--rate R]`: gateway, embedded broker, simulated line and scanner page in one command
//!   (`prov_gateway::demo`); prints product page URLs until SIGINT/SIGTERM.
//! - `prov lineage back|forward ID [--depth N] [--from T] [--to T] --token T`: a lineage
//!   trace from the gateway's auditor API, as JSON (graph, events, proofs).
//! - `prov token create --name N --scope auditor|operator|consumer`, `prov token revoke --name
//!   N`, `prov token list`: bearer tokens of the auditor endpoints (`prov_gateway::auth`).
//! - `prov witness init|run`, `prov export`, `prov verify`: the C2SP witness and the offline
//!   audit (issue 6; arguments and output in `cli_audit`).

mod cli_audit;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};
use prov_gateway::config::Config;
use prov_gateway::index::Indexes;
use prov_gateway::keys;
use prov_ledger::store::{LogStore, StoreConfig};
use prov_schemas::cose::sign_message;
use prov_schemas::event::EventTime;
use prov_schemas::keys::{DeviceId, Kid, OperatorName};
use prov_schemas::registry::RegistryRecord;

#[derive(Parser, Debug)]
#[command(name = "prov", version, about = "Goods-provenance gateway and tools")]
struct Cli {
    /// Configuration file (TOML; PROV_* environment variables override it).
    #[arg(long, global = true, env = "PROV_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create the keys and a default configuration in a data directory.
    Init {
        /// The data directory.
        #[arg(long)]
        data_dir: PathBuf,
        /// The log's origin (checkpoint key name).
        #[arg(long, default_value = "gateway.example/prov/log/1")]
        origin: String,
        /// The operator name (kid `operator:{name}`).
        #[arg(long, default_value = "site")]
        operator: String,
        /// Site of the topics to accept (default: any).
        #[arg(long)]
        site: Option<String>,
    },
    /// The gateway service.
    Gateway {
        #[command(subcommand)]
        command: GatewayCommand,
    },
    /// The device registry.
    Device {
        #[command(subcommand)]
        command: DeviceCommand,
    },
    /// Rebuild the indexes from the log (run on a stopped gateway or a copy).
    Reindex {
        /// The data directory holding the log.
        #[arg(long)]
        data_dir: PathBuf,
        /// Where to write the rebuilt indexes (`{out}/index`); default: in place.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// A C2SP tlog-witness: cosigns the checkpoints of the logs it knows.
    Witness {
        #[command(subcommand)]
        command: cli_audit::WitnessCommand,
    },
    /// Write a self-contained audit archive of a (stopped) gateway's log.
    Export(cli_audit::ExportArgs),
    /// Verify an audit archive offline (chain, proofs, roots, signatures, device chains).
    Verify(cli_audit::VerifyArgs),
    /// Gateway, embedded broker, a simulated packaging line and the scanner page, in one
    /// command: prints product page URLs as products are made, until SIGINT/SIGTERM.
    Demo(DemoArgs),
    /// Trace a product's lineage through a gateway's auditor API: `back` (containers, lots,
    /// inputs) or `forward` (what it was made into, the items of a lot, where they went).
    Lineage(LineageArgs),
    /// Access tokens for the auditor endpoints (stored hashed in the data directory).
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(clap::Args, Debug)]
struct LineageArgs {
    /// `back` or `forward`.
    #[arg(value_parser = ["back", "forward"])]
    direction: String,
    /// The product, lot, case or pallet: a GS1 Digital Link in any form.
    id: String,
    /// Hops to follow (1–16).
    #[arg(long, default_value_t = 3)]
    depth: u32,
    /// Only edges from this time (`YYYY-MM-DDTHH:MM:SS[.sss]Z`).
    #[arg(long)]
    from: Option<String>,
    /// Only edges before this time.
    #[arg(long)]
    to: Option<String>,
    /// The gateway's base URL (default: from the configuration's listen address).
    #[arg(long)]
    gateway: Option<String>,
    /// An auditor token (`prov token create --scope auditor`).
    #[arg(long, env = "PROV_TOKEN", hide_env_values = true)]
    token: String,
}

#[derive(Subcommand, Debug)]
enum TokenCommand {
    /// Create a token; prints it once (only its hash is kept).
    Create {
        /// A name to revoke it by.
        #[arg(long)]
        name: String,
        /// consumer, auditor or operator.
        #[arg(long)]
        scope: String,
    },
    /// Revoke a token (takes effect at once on a running gateway).
    Revoke {
        /// Its name.
        #[arg(long)]
        name: String,
    },
    /// List the tokens (names, scopes, revoked; never secrets).
    List,
}

#[derive(Subcommand, Debug)]
enum GatewayCommand {
    /// Run until SIGINT/SIGTERM.
    Run,
}

#[derive(Subcommand, Debug)]
enum DeviceCommand {
    /// Register a device key (signed with the operator key, logged by the gateway).
    Add {
        /// The device id.
        #[arg(long)]
        id: String,
        /// Its public key: 65-byte uncompressed SEC1, hex.
        #[arg(long, conflicts_with = "key_file")]
        public_key: Option<String>,
        /// Or its private key file (64 hex digits); only the public key is used.
        #[arg(long)]
        key_file: Option<PathBuf>,
        /// The gateway's base URL (default: from the configuration's listen address).
        #[arg(long)]
        gateway: Option<String>,
    },
    /// Revoke a device.
    Revoke {
        /// The device id.
        #[arg(long)]
        id: String,
        /// The gateway's base URL.
        #[arg(long)]
        gateway: Option<String>,
    },
    /// List the registry.
    List {
        /// The gateway's base URL.
        #[arg(long)]
        gateway: Option<String>,
    },
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rumqttd=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Init {
            data_dir,
            origin,
            operator,
            site,
        } => init(&data_dir, &origin, &operator, site),
        Command::Gateway {
            command: GatewayCommand::Run,
        } => gateway_run(cli.config.as_deref()),
        Command::Device { command } => {
            let config = Config::load(cli.config.as_deref())?;
            device(&config, command)
        }
        Command::Reindex { data_dir, out } => reindex(&data_dir, out.as_deref()),
        Command::Witness { command } => cli_audit::witness(command),
        Command::Export(args) => cli_audit::export(cli.config.as_deref(), &args),
        Command::Verify(args) => cli_audit::verify(&args),
        Command::Demo(args) => demo(args),
        Command::Lineage(args) => {
            let config = Config::load(cli.config.as_deref())?;
            lineage(&config, args)
        }
        Command::Token { command } => {
            let config = Config::load(cli.config.as_deref())?;
            token(&config, command)
        }
    }
}

fn lineage(config: &Config, args: LineageArgs) -> Result<()> {
    let enc = |v: &str| -> String {
        v.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    char::from(b).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    };
    let mut path = format!(
        "/api/v1/lineage?direction={}&id={}&depth={}",
        args.direction,
        enc(&args.id),
        args.depth
    );
    for (k, v) in [("from", &args.from), ("to", &args.to)] {
        if let Some(v) = v {
            path.push_str(&format!("&{k}={}", enc(v)));
        }
    }
    let base = gateway_url(config, args.gateway);
    let auth = format!("Authorization: Bearer {}\r\n", args.token);
    let (status, body) = http_request_with(&base, "GET", &path, &[], &auth)?;
    let text = String::from_utf8_lossy(&body);
    if status != 200 {
        bail!("gateway answered {status}: {}", text.trim());
    }
    println!("{text}");
    Ok(())
}

fn token(config: &Config, command: TokenCommand) -> Result<()> {
    let tokens = prov_gateway::auth::Tokens::open(&config.data_dir);
    match command {
        TokenCommand::Create { name, scope } => {
            let scope = prov_gateway::auth::Scope::parse(&scope)?;
            let secret = tokens.create(&name, scope)?;
            println!("{secret}");
            eprintln!(
                "token {name:?} ({}) created; it is shown only now. Use it as \
                 `Authorization: Bearer <token>`.",
                scope.as_str()
            );
        }
        TokenCommand::Revoke { name } => {
            tokens.revoke(&name)?;
            eprintln!("token {name:?} revoked");
        }
        TokenCommand::List => {
            for r in tokens.list()? {
                let state = if r.revoked { "revoked" } else { "active" };
                println!(
                    "{}\t{}\t{state}\tcreated {}",
                    r.name,
                    r.scope.as_str(),
                    r.created
                );
            }
        }
    }
    Ok(())
}

fn init(data_dir: &Path, origin: &str, operator: &str, site: Option<String>) -> Result<()> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let data_dir = data_dir.canonicalize()?;
    let mut config = Config {
        data_dir: data_dir.clone(),
        origin: origin.to_owned(),
        site,
        ..Config::default()
    };
    let name = OperatorName::new(operator).context("operator name")?;
    let gateway_key = config.gateway_key_path();
    keys::create_gateway_key(&gateway_key)?;
    let op_path = config.operator_key_path();
    let op = keys::create_operator_key(&op_path)?;
    config.keys.operator_name = Some(name.to_string());
    config.keys.operators.insert(
        name.to_string(),
        hex::encode(op.public_key().to_sec1_uncompressed()),
    );
    let signer = keys::load_gateway_signer(&gateway_key, origin)?;
    let path = data_dir.join("prov.toml");
    if path.exists() {
        bail!("{} exists (never overwritten)", path.display());
    }
    std::fs::write(&path, config.to_toml()?)?;
    println!("config: {}", path.display());
    println!("gateway key: {}", signer.verifier_key()?);
    println!(
        "operator:{name}: {}",
        hex::encode(op.public_key().to_sec1_uncompressed())
    );
    Ok(())
}

/// Resolves on SIGINT or SIGTERM (SIGINT only if the SIGTERM handler cannot be installed).
async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("SIGTERM handler: {e}");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("signal received: shutting down");
}

fn gateway_run(config: Option<&Path>) -> Result<()> {
    let config = Config::load(config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let shutdown = shutdown_signal();
        prov_gateway::service::run(config, shutdown).await
    })?;
    // rumqttd's threads cannot be stopped: leave without waiting for them.
    std::process::exit(0);
}

fn gateway_url(config: &Config, given: Option<String>) -> String {
    given.unwrap_or_else(|| {
        let mut addr = config.http.listen;
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        format!("http://{addr}")
    })
}

fn device(config: &Config, command: DeviceCommand) -> Result<()> {
    match command {
        DeviceCommand::Add {
            id,
            public_key,
            key_file,
            gateway,
        } => {
            let device = DeviceId::new(&id).context("device id")?;
            let key = match (public_key, key_file) {
                (Some(hex), None) => keys::parse_public_hex(&hex).map_err(anyhow::Error::msg)?,
                (None, Some(file)) => keys::load_operator_key(&file)?.public_key(),
                _ => bail!("give --public-key or --key-file"),
            };
            let record = RegistryRecord::Registration {
                device,
                key,
                event_time: now()?,
            };
            post_record(config, &gateway_url(config, gateway), &record)
        }
        DeviceCommand::Revoke { id, gateway } => {
            let record = RegistryRecord::Revocation {
                device: DeviceId::new(&id).context("device id")?,
                event_time: now()?,
            };
            post_record(config, &gateway_url(config, gateway), &record)
        }
        DeviceCommand::List { gateway } => {
            let (status, body) =
                http_request(&gateway_url(config, gateway), "GET", "/api/v1/devices", &[])?;
            if status != 200 {
                bail!(
                    "gateway answered {status}: {}",
                    String::from_utf8_lossy(&body)
                );
            }
            let list: serde_json::Value = serde_json::from_slice(&body)?;
            for d in list.as_array().into_iter().flatten() {
                println!(
                    "{}\t{}\tregistered@{}\t{}\treceipt {}",
                    d["device"].as_str().unwrap_or("?"),
                    d["fingerprint"].as_str().unwrap_or("?"),
                    d["registered_at"],
                    match d["revoked_at"].as_u64() {
                        Some(l) => format!("revoked@{l}"),
                        None => String::from("active"),
                    },
                    d["receipt_seq"]
                );
            }
            Ok(())
        }
    }
}

fn now() -> Result<EventTime> {
    let ms = prov_gateway::pipeline::now_ms();
    Ok(EventTime::from_unix_millis(ms)?)
}

fn post_record(config: &Config, url: &str, record: &RegistryRecord) -> Result<()> {
    let name = config
        .keys
        .operator_name
        .clone()
        .or_else(|| config.keys.operators.keys().next().cloned())
        .context("no operator name configured (keys.operator_name)")?;
    let name = OperatorName::new(name.strip_prefix("operator:").unwrap_or(&name))?;
    let key = keys::load_operator_key(&config.operator_key_path())?;
    let message = sign_message(&Kid::Operator(name), &record.encode_payload(), &key)?;
    let (status, body) = http_request(url, "POST", "/api/v1/registry", &message)?;
    let text = String::from_utf8_lossy(&body);
    println!("{}", text.trim());
    if status != 200 {
        bail!("gateway answered {status}");
    }
    Ok(())
}

/// A minimal HTTP/1.1 client (one request per connection) for the `device` commands.
fn http_request(base: &str, method: &str, path: &str, body: &[u8]) -> Result<(u16, Vec<u8>)> {
    http_request_with(base, method, path, body, "")
}

/// As [`http_request`], with extra header lines (each ending in `\r\n`).
fn http_request_with(
    base: &str,
    method: &str,
    path: &str,
    body: &[u8],
    headers: &str,
) -> Result<(u16, Vec<u8>)> {
    let host = base
        .strip_prefix("http://")
        .context("only http:// gateway URLs are supported")?
        .trim_end_matches('/');
    let mut stream = TcpStream::connect(host).with_context(|| format!("connecting to {host}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/cose\r\nContent-Length: {}\r\n{headers}Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("malformed HTTP response")?;
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("malformed status line")?;
    let mut body = response[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    Ok((status, body))
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(pos) = data.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&data[..pos])
            .ok()
            .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
            .unwrap_or(0);
        if size == 0 || data.len() < pos + 2 + size {
            break;
        }
        out.extend_from_slice(&data[pos + 2..pos + 2 + size]);
        data = &data[(pos + 4 + size).min(data.len())..];
    }
    out
}

fn reindex(data_dir: &Path, out: Option<&Path>) -> Result<()> {
    let log = LogStore::open(StoreConfig::new(data_dir.join("log"))).with_context(|| {
        format!(
            "opening the log in {} (is a gateway running on it?)",
            data_dir.display()
        )
    })?;
    let target = out.unwrap_or(data_dir).join("index");
    if out.is_none() && target.exists() {
        std::fs::remove_dir_all(&target)?;
    }
    if target.exists() {
        bail!(
            "{} exists: reindex writes fresh indexes only",
            target.display()
        );
    }
    if let Some(o) = out {
        std::fs::create_dir_all(o)?;
    }
    let indexes = Indexes::open(&target)?;
    let n = indexes.catch_up(&log)?;
    println!("indexed {n} entries into {}", target.display());
    println!("digest {}", indexes.digest()?);
    Ok(())
}

/// `prov demo`'s options (`prov_gateway::demo`).
#[derive(clap::Args, Debug)]
struct DemoArgs {
    /// HTTP listen address (if the port is taken, a free one is used).
    #[arg(long, default_value = "127.0.0.1:8080")]
    http: std::net::SocketAddr,
    /// Data directory (default: a fresh temporary directory, removed at the end).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Simulator seed (script and device keys).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Simulator run tag, part of every serial (1 to 6 of [0-9A-Z]).
    #[arg(long, default_value = "DEMO")]
    run_tag: String,
    /// How many product page URLs to print (the line keeps producing after).
    #[arg(long, default_value_t = 3)]
    products: usize,
    /// Events per second of the simulated line.
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
}

/// `prov demo`: gateway, embedded broker, simulated line and page until SIGINT/SIGTERM.
fn demo(args: DemoArgs) -> Result<()> {
    let options = prov_gateway::demo::DemoOptions {
        http: args.http,
        data_dir: args.data_dir,
        seed: args.seed,
        run_tag: args.run_tag,
        products: args.products,
        rate: args.rate,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let shutdown = shutdown_signal();
        prov_gateway::demo::run(options, shutdown).await
    })?;
    // rumqttd's threads cannot be stopped: leave without waiting for them.
    std::process::exit(0);
}
