//! `prov-sim`: simulate a packaging line, pre-sign a stream, provision devices.
//!
//! ```text
//! prov-sim run --site factory-a --devices 2 --rate 50 --count 1000 --broker-port 1883
//! prov-sim presign --site factory-a --count 100000 --out events.bin
//! prov-sim keygen --out operator.key
//! prov-sim provision --device line1-packer --key-out line1-packer.key \
//!     --operator factory-a --operator-key operator.key --record-out line1-packer.cose
//! prov-sim register --site factory-a --devices 2 --operator factory-a \
//!     --operator-key operator.key --out-dir registry/
//! ```
//!
//! Secrets are never printed or logged: key commands print the public key (65-byte SEC1, hex)
//! and its fingerprint (BLAKE3 of the compressed key, SPEC §1).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use prov_schemas::digital_link::Gtin;
use prov_schemas::keys::{DeviceId, OperatorName};
use prov_simulator::keys::{create_key_file, fingerprint_hex, load_key_file, public_hex};
use prov_simulator::line::{Drain, LineConfig, Stop};
use prov_simulator::presign::{devices_path, presign};
use prov_simulator::provision::{now, provision, registration_record, write_new};
use prov_simulator::run_line;
use tokio::sync::mpsc;

#[derive(Parser)]
#[command(
    name = "prov-sim",
    version,
    about = "Simulated packaging line and device provisioning"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Publish a simulated line to an MQTT broker.
    Run(RunArgs),
    /// Write a pre-signed stream to a file (records: u16 topic length, topic, u32 message length,
    /// message; big-endian).
    Presign(PresignArgs),
    /// Create a device key file (0600) and its operator-signed registration record.
    Provision(ProvisionArgs),
    /// Create a key file (0600), e.g. an operator key; prints the public key.
    Keygen(KeygenArgs),
    /// Write the signed registration records of every device of a simulated line.
    Register(RegisterArgs),
}

#[derive(Args, Clone)]
struct LineArgs {
    /// Site name (topic level and device id prefix).
    #[arg(long, default_value = "factory-a")]
    site: String,
    /// Devices per role (each a full line: dryer, commissioning, packer, palletizer, cold
    /// room, shipper).
    #[arg(long, default_value_t = 1)]
    devices: u32,
    /// Seed of the script (and of the device keys unless --key-dir).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Product GTIN (8, 12, 13 or 14 digits).
    #[arg(long, default_value = "09506000134352")]
    gtin: String,
    /// Probability of a cold-room excursion per reading.
    #[arg(long, default_value_t = 0.05)]
    excursion_probability: f64,
    /// Items per case.
    #[arg(long, default_value_t = 6)]
    items_per_case: u32,
    /// Cases per pallet.
    #[arg(long, default_value_t = 4)]
    cases_per_pallet: u32,
    /// Tag in serials, lots and orders, 1-6 of [0-9A-Z] (default: from the clock, so runs
    /// never repeat identifiers).
    #[arg(long)]
    run_tag: Option<String>,
    /// Devices' clocks stay unsynchronised this long after boot (prov:clockSynced false).
    #[arg(long, default_value_t = 0)]
    sntp_delay_ms: u64,
    /// Keep each device's flash in DIR/{device}.flash (a restarted simulator resumes its seqs).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Load device keys from DIR/{device}.key (from `provision`) instead of deriving them from
    /// the seed.
    #[arg(long)]
    key_dir: Option<PathBuf>,
    /// Flash queue per device, KiB.
    #[arg(long, default_value_t = 1024)]
    queue_kib: u32,
}

impl LineArgs {
    fn config(&self) -> Result<LineConfig> {
        let mut c = LineConfig::new(&self.site)?;
        c.lines = self.devices;
        c.seed = self.seed;
        c.gtin = Gtin::parse(&self.gtin).with_context(|| format!("--gtin {}", self.gtin))?;
        c.excursion_probability = self.excursion_probability;
        c.items_per_case = self.items_per_case;
        c.cases_per_pallet = self.cases_per_pallet;
        c.run_tag = match &self.run_tag {
            Some(tag) => tag.clone(),
            None => clock_tag(),
        };
        c.sntp_delay = Duration::from_millis(self.sntp_delay_ms);
        c.state_dir = self.state_dir.clone();
        c.key_dir = self.key_dir.clone();
        c.queue_sectors = self.queue_kib.div_ceil(4);
        Ok(c)
    }
}

/// Six base-36 digits of the seconds since 1970: a new tag every second, repeating after
/// about 69 years.
fn clock_tag() -> String {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut n = seconds % 36u64.pow(6);
    let mut out = Vec::new();
    for _ in 0..6 {
        out.push(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"[(n % 36) as usize]);
        n /= 36;
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_else(|_| "A".into())
}

#[derive(Clone, Copy, ValueEnum)]
enum DrainArg {
    /// Until gateway receipts cover every message.
    Receipts,
    /// Until the broker acknowledged every message.
    Broker,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    line: LineArgs,
    /// Broker host.
    #[arg(long, default_value = "127.0.0.1")]
    broker_host: String,
    /// Broker port.
    #[arg(long, default_value_t = 1883)]
    broker_port: u16,
    /// Client id prefix (ids are {prefix}-{device}).
    #[arg(long, default_value = "prov-sim")]
    client_prefix: String,
    /// Events per second over the whole line (0: as fast as possible).
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
    /// Stop after this many events.
    #[arg(long, conflicts_with = "duration")]
    count: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long)]
    duration: Option<f64>,
    /// When a finished run counts as delivered.
    #[arg(long, value_enum, default_value = "receipts")]
    drain: DrainArg,
    /// Seconds to wait for delivery after producing stops.
    #[arg(long, default_value_t = 10.0)]
    drain_timeout: f64,
    /// Print the Digital Link of each commissioned item (under --resolver if given).
    #[arg(long)]
    print_products: bool,
    /// Resolver base URL for printed product links (default: the canonical id.gs1.org).
    #[arg(long)]
    resolver: Option<String>,
}

#[derive(Args)]
struct PresignArgs {
    #[command(flatten)]
    line: LineArgs,
    /// Output file (never overwritten); the device list goes to {out}.devices.json.
    #[arg(long)]
    out: PathBuf,
    /// Stop after this many events.
    #[arg(long, conflicts_with = "duration")]
    count: Option<u64>,
    /// Stop after this many seconds of signing.
    #[arg(long)]
    duration: Option<f64>,
}

#[derive(Args)]
struct ProvisionArgs {
    /// The device id (`[a-z0-9][a-z0-9._-]{0,63}`).
    #[arg(long)]
    device: String,
    /// Where to create the device's private key file (mode 0600; never overwritten).
    #[arg(long)]
    key_out: PathBuf,
    /// The operator name (the record's kid is operator:{name}).
    #[arg(long)]
    operator: String,
    /// The operator's key file (from `keygen`).
    #[arg(long)]
    operator_key: PathBuf,
    /// Where to write the signed registration record (raw COSE_Sign1) for the gateway.
    #[arg(long)]
    record_out: PathBuf,
}

#[derive(Args)]
struct KeygenArgs {
    /// Where to create the key file (mode 0600; never overwritten).
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
struct RegisterArgs {
    #[command(flatten)]
    line: LineArgs,
    /// The operator name.
    #[arg(long)]
    operator: String,
    /// The operator's key file.
    #[arg(long)]
    operator_key: PathBuf,
    /// Directory for the records ({device}.cose; existing files are not overwritten).
    #[arg(long)]
    out_dir: PathBuf,
}

fn stop(count: Option<u64>, duration: Option<f64>) -> Result<Stop> {
    Ok(match (count, duration) {
        (Some(n), _) => Stop::Count(n),
        (None, Some(s)) => Stop::Duration(
            Duration::try_from_secs_f64(s).context("--duration must be a positive number")?,
        ),
        (None, None) => Stop::Never,
    })
}

async fn run(args: RunArgs) -> Result<()> {
    let mut config = args.line.config()?;
    config.broker.host = args.broker_host;
    config.broker.port = args.broker_port;
    config.broker.client_prefix = args.client_prefix;
    config.rate = args.rate;
    config.stop = stop(args.count, args.duration)?;
    config.drain = match args.drain {
        DrainArg::Receipts => Drain::Receipts,
        DrainArg::Broker => Drain::BrokerAck,
    };
    config.drain_timeout = Duration::try_from_secs_f64(args.drain_timeout)
        .context("--drain-timeout must be a positive number")?;
    tracing::info!(
        site = %config.site,
        lines = config.lines,
        run_tag = %config.run_tag,
        "publishing to {}:{}",
        config.broker.host,
        config.broker.port
    );
    let (tx, mut rx) = mpsc::unbounded_channel::<prov_simulator::Recorded>();
    let printer = if args.print_products {
        let resolver = args.resolver.clone();
        Some(tokio::spawn(async move {
            while let Some(recorded) = rx.recv().await {
                if let Some(item) = recorded.commissioned_item() {
                    match &resolver {
                        Some(host) => println!("{}", item.with_host(host)),
                        None => println!("{item}"),
                    }
                }
            }
        }))
    } else {
        drop(rx);
        None
    };
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("interrupted: stopping");
    };
    let observer = args.print_products.then_some(tx);
    let report = run_line(config, observer, shutdown).await?;
    if let Some(printer) = printer {
        let _ = printer.await;
    }
    eprintln!(
        "{} events ({} items, {} sensor exceptions) in {:.1} s; delivered: {}; scan errors {}, refused {}, not recorded {}",
        report.events,
        report.items,
        report.exceptions,
        report.elapsed.as_secs_f64(),
        report.delivered,
        report.scan_errors,
        report.role_errors,
        report.record_errors
    );
    for d in &report.devices {
        eprintln!(
            "  {:<32} seq {:>6}  receipted {:>6}  published {:>6}  connects {:>3}  dropped {}  rejects {}",
            d.device.as_str(),
            d.last_seq,
            d.released,
            d.published,
            d.connects,
            d.dropped,
            d.rejects
        );
    }
    Ok(())
}

fn presign_cmd(args: PresignArgs) -> Result<()> {
    let mut config = args.line.config()?;
    config.stop = stop(args.count, args.duration)?;
    let report = presign(&config, &args.out)?;
    let secs = report.elapsed.as_secs_f64();
    eprintln!(
        "{} events signed in {secs:.2} s ({:.0}/s) to {}; devices in {}",
        report.events,
        report.events as f64 / secs.max(1e-9),
        args.out.display(),
        devices_path(&args.out).display()
    );
    Ok(())
}

fn provision_cmd(args: ProvisionArgs) -> Result<()> {
    let device =
        DeviceId::new(&args.device).with_context(|| format!("--device {}", args.device))?;
    let operator = OperatorName::new(&args.operator)
        .with_context(|| format!("--operator {}", args.operator))?;
    let done = provision(
        device,
        &args.key_out,
        operator,
        &args.operator_key,
        &args.record_out,
    )?;
    println!("device       {}", done.device);
    println!("public key   {}", public_hex(&done.public_key));
    println!("fingerprint  {}", fingerprint_hex(&done.public_key));
    println!("key file     {} (mode 0600)", done.key_file.display());
    println!(
        "registration {} (blake3 {})",
        done.record_file.display(),
        done.record_hash
    );
    Ok(())
}

fn keygen_cmd(args: KeygenArgs) -> Result<()> {
    let key = create_key_file(&args.out)?;
    println!("public key   {}", public_hex(&key.public_key()));
    println!("fingerprint  {}", fingerprint_hex(&key.public_key()));
    println!("key file     {} (mode 0600)", args.out.display());
    Ok(())
}

fn register_cmd(args: RegisterArgs) -> Result<()> {
    let config = args.line.config()?;
    let operator = OperatorName::new(&args.operator)
        .with_context(|| format!("--operator {}", args.operator))?;
    let operator_key = load_key_file(&args.operator_key)?;
    std::fs::create_dir_all(&args.out_dir)
        .with_context(|| format!("creating {}", args.out_dir.display()))?;
    let time = now()?;
    for (device, key) in config.device_keys()? {
        let record = registration_record(device, key, time, operator, &operator_key)?;
        let path = args.out_dir.join(format!("{device}.cose"));
        write_new(&path, &record)?;
        println!("{}  {}  {}", device, fingerprint_hex(&key), path.display());
    }
    Ok(())
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")
            .and_then(|rt| rt.block_on(run(args))),
        Command::Presign(args) => presign_cmd(args),
        Command::Provision(args) => provision_cmd(args),
        Command::Keygen(args) => keygen_cmd(args),
        Command::Register(args) => register_cmd(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("prov-sim: {e:#}");
            ExitCode::FAILURE
        }
    }
}
