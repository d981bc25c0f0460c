//! Command-line glue of issue 6: `prov witness init|run`, `prov export`, `prov verify`.
//!
//! Why a module of its own: `main.rs` only declares the subcommands and dispatches; the
//! arguments, progress bars and printed summaries of these commands live here, and the logic in
//! the library ([`prov_gateway::witness`], [`prov_gateway::audit`]) where tests call it directly.
//!
//! Exit codes of `verify`: 0 the archive verifies (and so does `--checkpoint`, if given);
//! 1 a failure, named on stderr (the first one found); 2 `--checkpoint` is larger than the
//! archive, so it cannot be judged (everything else verified).

use std::cell::RefCell;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, Result};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use prov_gateway::audit::{self, ExternalVerdict, KeySet, Progress, VerifyOptions};
use prov_gateway::config::Config;
use prov_gateway::witness::{self, Witness};
use prov_ledger::note::VerifierKey;

/// `prov witness …`
#[derive(Subcommand, Debug)]
pub enum WitnessCommand {
    /// Create a witness: an Ed25519 key and `witness.toml`; prints its verifier key.
    Init {
        /// The witness's data directory.
        #[arg(long)]
        data_dir: PathBuf,
        /// The witness's name (its cosignature key name), e.g. `witness.example/w1`.
        #[arg(long)]
        name: String,
    },
    /// Serve `POST /add-checkpoint` until SIGINT/SIGTERM.
    Run {
        /// The witness's data directory.
        #[arg(long)]
        data_dir: PathBuf,
        /// Listen address.
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: SocketAddr,
        /// A log to witness: its checkpoint verifier key (`{origin}+{id}+{key}`), optionally
        /// written `ORIGIN=KEY`; repeat for several (added to those of `witness.toml`).
        #[arg(long = "log")]
        logs: Vec<String>,
    },
}

/// `prov export`
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The gateway's data directory (its `prov.toml` is read if present and no --config given).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// The archive directory to create.
    #[arg(long)]
    pub out: PathBuf,
}

/// `prov verify`
#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The archive directory (written by `prov export`).
    pub archive: PathBuf,
    /// A signed checkpoint obtained elsewhere (a phone, a witness) to check against the archive.
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// The keys to trust, in the /api/v1/keys JSON shape, obtained out of band.
    #[arg(long)]
    pub trust: Option<PathBuf>,
    /// A witness cosignature verifier key whose cosignatures to verify (repeatable).
    #[arg(long = "witness")]
    pub witnesses: Vec<String>,
    /// Threads checking signatures (0: one per CPU).
    #[arg(long, default_value_t = 0)]
    pub workers: usize,
}

/// Progress bars on stderr (hidden when stderr is not a terminal).
#[derive(Default)]
struct Bars {
    bar: RefCell<Option<ProgressBar>>,
}

impl Progress for Bars {
    fn start(&self, stage: &'static str, total: u64) {
        let bar = ProgressBar::new(total);
        let style = ProgressStyle::with_template(
            "{prefix:>8} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} ({per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_prefix(stage);
        *self.bar.borrow_mut() = Some(bar);
    }
    fn advance(&self, n: u64) {
        if let Some(bar) = self.bar.borrow().as_ref() {
            bar.inc(n);
        }
    }
    fn finish(&self) {
        if let Some(bar) = self.bar.borrow_mut().take() {
            bar.finish_and_clear();
        }
    }
}

/// `prov witness …`
pub fn witness(command: WitnessCommand) -> Result<()> {
    match command {
        WitnessCommand::Init { data_dir, name } => {
            let key = witness::init(&data_dir, &name)?;
            println!("witness: {}", data_dir.join(witness::CONFIG_FILE).display());
            println!("witness key: {key}");
            Ok(())
        }
        WitnessCommand::Run {
            data_dir,
            listen,
            logs,
        } => {
            let mut keys = Vec::new();
            for log in logs {
                match log.split_once('=') {
                    Some((origin, key)) => {
                        let parsed = VerifierKey::parse(key)
                            .with_context(|| format!("--log {log}: bad verifier key"))?;
                        anyhow::ensure!(
                            parsed.name() == origin,
                            "--log {log}: the key's name {:?} is not the origin {origin:?}",
                            parsed.name()
                        );
                        keys.push(key.to_owned());
                    }
                    None => keys.push(log),
                }
            }
            let witness = Arc::new(Witness::open(&data_dir, &keys)?);
            anyhow::ensure!(
                !witness.origins().is_empty(),
                "no log to witness: give --log KEY or list keys in witness.toml"
            );
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let running = witness::start(Arc::clone(&witness), listen).await?;
                println!(
                    "prov witness: http://{} key={} logs={}",
                    running.addr,
                    witness.verifier_key()?,
                    witness.origins().join(",")
                );
                let mut term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
                running.shutdown().await?;
                Ok(())
            })
        }
    }
}

/// `prov export`
pub fn export(config_path: Option<&Path>, args: &ExportArgs) -> Result<()> {
    let mut config = match config_path {
        Some(p) => Config::load(Some(p))?,
        None => {
            let own = args.data_dir.join("prov.toml");
            Config::load(own.exists().then_some(own.as_path()))?
        }
    };
    config.data_dir.clone_from(&args.data_dir);
    let started = Instant::now();
    let summary = audit::export(&config, &args.out, &Bars::default()).with_context(|| {
        format!(
            "exporting {} (a running gateway locks its log: stop it or export a copy)",
            args.data_dir.display()
        )
    })?;
    println!(
        "exported {} entries, {} chain blocks, {} cosigned notes ({} bytes) to {} in {:.1} s",
        summary.entries,
        summary.blocks,
        summary.cosigned,
        summary.bytes,
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    println!(
        "checkpoint: {} size {} root {}",
        summary.checkpoint.origin(),
        summary.checkpoint.size(),
        summary.checkpoint.root()
    );
    Ok(())
}

/// `prov verify`
pub fn verify(args: &VerifyArgs) -> Result<()> {
    let trust = match &args.trust {
        Some(path) => {
            let bytes =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            Some(KeySet::from_json(&bytes, path, false)?)
        }
        None => None,
    };
    let checkpoint = match &args.checkpoint {
        Some(path) => Some((
            path.clone(),
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
        )),
        None => None,
    };
    let witnesses = args
        .witnesses
        .iter()
        .map(|w| VerifierKey::parse(w).with_context(|| format!("--witness {w}")))
        .collect::<Result<Vec<_>>>()?;
    if trust.is_none() {
        eprintln!(
            "WARNING: no --trust given: the gateway and operator keys are taken FROM THE ARCHIVE \
             ITSELF. This proves the archive is internally consistent, not that it is the \
             gateway's: pin the keys from /api/v1/keys, obtained out of band, with --trust."
        );
    }
    let options = VerifyOptions {
        trust,
        checkpoint,
        witnesses,
        workers: args.workers,
    };
    let started = Instant::now();
    let report = audit::verify(&args.archive, &options, &Bars::default())
        .map_err(|e| anyhow::anyhow!("VERIFY FAILED: {e}"))?;
    let secs = started.elapsed().as_secs_f64();
    println!("archive {} verifies:", args.archive.display());
    println!(
        "  keys: gateway {} ({}), {} operator key(s)",
        report.keys.gateway,
        if report.keys_from_archive {
            "taken from the archive"
        } else {
            "pinned with --trust"
        },
        report.keys.operators.len()
    );
    println!(
        "  chain: {} blocks from block 0, every consistency proof and signature checked",
        report.blocks
    );
    println!(
        "  final checkpoint: {} size {} root {} = root recomputed from the entries",
        report.checkpoint.origin(),
        report.checkpoint.size(),
        report.checkpoint.root()
    );
    println!(
        "  entries: {} ({} events from {} devices, {} registrations, {} revocations), every signature checked, {:.0} entries/s",
        report.entries,
        report.events,
        report.devices,
        report.registrations,
        report.revocations,
        report.entries as f64 / secs.max(1e-9)
    );
    println!(
        "  device chains: {} open gap(s), {} late fill(s), {} equivocation(s)",
        report.gaps.len(),
        report.gap_fills,
        report.equivocations.len()
    );
    for gap in report.gaps.iter().take(20) {
        println!("    gap: {} seq {}..={}", gap.device, gap.from, gap.to);
    }
    if report.gaps.len() > 20 {
        println!("    … {} more gaps", report.gaps.len() - 20);
    }
    for e in &report.equivocations {
        println!(
            "    EQUIVOCATION: {} seq {} at leaves {} and {}",
            e.device, e.seq, e.first, e.second
        );
    }
    for c in &report.cosigned {
        println!(
            "  cosigned {} (size {}): {} witness cosignature(s) verified{}, {} line(s) of unknown keys",
            c.path.display(),
            c.size,
            c.verified.len(),
            if c.verified.is_empty() {
                String::new()
            } else {
                format!(
                    " ({})",
                    c.verified
                        .iter()
                        .map(|(n, t)| format!("{n}@{t}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            },
            c.unverified_lines
        );
    }
    match &report.external {
        None => {}
        Some(ExternalVerdict::Same { size }) => {
            println!("  --checkpoint: same size {size}, same root: consistent");
        }
        Some(ExternalVerdict::Consistent { size, archive_size }) => println!(
            "  --checkpoint: size {size} ≤ archive size {archive_size}, its root is the archive's root at that size: consistent"
        ),
        Some(ExternalVerdict::BeyondArchive { size, archive_size }) => {
            println!(
                "  --checkpoint: CANNOT JUDGE: its size {size} is beyond the archive's {archive_size}; export a newer archive"
            );
            std::process::exit(2);
        }
    }
    if report.keys_from_archive {
        println!("  (keys were taken from the archive: see the warning above)");
    }
    Ok(())
}
