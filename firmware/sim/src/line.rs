//! A simulated line: its configuration, its boards, and the report of a run.
//!
//! [`LineConfig`] says what to simulate; [`Line::build`] creates one board per role and line
//! (device ids `{site}-l{n}-{role}`, e.g. `factory-a-l1-packer`), each with its key (derived from
//! the seed, or a provisioned key file) and its flash (in RAM, or a file per device under
//! `state_dir` so a restarted simulator continues each device's chain). The two ways to run it
//! are [`crate::mqtt::run_line`] (publish to a broker) and [`crate::presign::presign`] (write a
//! pre-signed stream).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use prov_firmware::device::check_site;
use prov_firmware::roles::{ColdChainConfig, Station};
use prov_schemas::digital_link::{DigitalLink, Gln, Gtin};
use prov_schemas::event::{Destination, Source, SourceDestType, TzOffset, Uri};
use prov_schemas::keys::{DeviceId, PublicKey, SecretKey};

use crate::board::{Board, Recorded, RoleKind, RoleSetup, device_flash, open_device};
use crate::keys::{derive_device_key, load_key_file};
use crate::peripherals::SimClock;
use crate::plan::{Plan, PlanConfig};

/// When a run stops producing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// After this many events (the last step may add one more: shipping makes two).
    Count(u64),
    /// After this long.
    Duration(Duration),
    /// Only when the shutdown signal comes.
    Never,
}

/// When a finished run counts as delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drain {
    /// Every message published on the current connection and acknowledged by the broker.
    BrokerAck,
    /// Every message covered by a gateway receipt (the queue is empty).
    Receipts,
}

/// Where the broker is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerConfig {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Client ids are `{client_prefix}-{device_id}`: stable across runs (persistent sessions)
    /// and unique per device.
    pub client_prefix: String,
}

/// What to simulate.
#[derive(Debug, Clone)]
pub struct LineConfig {
    /// The site (topic level and device id prefix).
    pub site: String,
    /// Lines (each one board per role: `--devices` boards per role).
    pub lines: u32,
    /// Seed of the script and of derived keys.
    pub seed: u64,
    /// Part of serials, lots and orders, so runs do not repeat identifiers (1 to 6 of
    /// `[0-9A-Z]`).
    pub run_tag: String,
    /// The product's GTIN.
    pub gtin: Gtin,
    /// The input (milk) GTIN.
    pub input_gtin: Gtin,
    /// GS1 company prefix for SSCCs.
    pub company_prefix: String,
    /// Where packing happens (readPoint of the dryer, commissioning, packing, palletizing).
    pub factory: Gln,
    /// The cold room.
    pub cold_room: Gln,
    /// The dock.
    pub dock: Gln,
    /// Who receives the shipments (destination owning party).
    pub customer: Gln,
    /// The site's time zone offset.
    pub tz: TzOffset,
    /// Events per second over the whole line (0: as fast as possible).
    pub rate: f64,
    /// When to stop.
    pub stop: Stop,
    /// Probability of a cold-room excursion per reading.
    pub excursion_probability: f64,
    /// Probability of a misread before a scan.
    pub misread_probability: f64,
    /// Probability of a failed sensor reading.
    pub sensor_fault_probability: f64,
    /// Items per case.
    pub items_per_case: u32,
    /// Cases per pallet.
    pub cases_per_pallet: u32,
    /// Until this long after boot the devices' clocks are unsynchronised.
    pub sntp_delay: Duration,
    /// Keep each device's flash in `{dir}/{device}.flash`.
    pub state_dir: Option<PathBuf>,
    /// Load each device's key from `{dir}/{device}.key` (from `prov-sim provision`) instead of
    /// deriving it from the seed.
    pub key_dir: Option<PathBuf>,
    /// Flash queue size per device, in 4 KiB sectors.
    pub queue_sectors: u32,
    /// The broker (for [`crate::mqtt::run_line`]).
    pub broker: BrokerConfig,
    /// When the run is delivered.
    pub drain: Drain,
    /// How long to wait for delivery after producing stops.
    pub drain_timeout: Duration,
}

impl LineConfig {
    /// The defaults of the demo line (GS1 example identifiers), for `site`.
    pub fn new(site: &str) -> Result<LineConfig> {
        Ok(LineConfig {
            site: site.to_string(),
            lines: 1,
            seed: 1,
            run_tag: "A".into(),
            gtin: Gtin::parse("09506000134352")?,
            input_gtin: Gtin::parse("09506000134369")?,
            company_prefix: "950600013".into(),
            factory: Gln::parse("9506000134376")?,
            cold_room: Gln::parse("9506000134383")?,
            dock: Gln::parse("9506000134390")?,
            customer: Gln::parse("9506000134406")?,
            tz: TzOffset::parse("+01:00")?,
            rate: 20.0,
            stop: Stop::Never,
            excursion_probability: 0.05,
            misread_probability: 0.01,
            sensor_fault_probability: 0.002,
            items_per_case: 6,
            cases_per_pallet: 4,
            sntp_delay: Duration::ZERO,
            state_dir: None,
            key_dir: None,
            queue_sectors: 256,
            broker: BrokerConfig {
                host: "127.0.0.1".into(),
                port: 1883,
                client_prefix: "prov-sim".into(),
            },
            drain: Drain::Receipts,
            drain_timeout: Duration::from_secs(10),
        })
    }

    /// The device id of `role` on line `line` (0-based).
    pub fn device_id(&self, line: u32, role: RoleKind) -> Result<DeviceId> {
        let text = format!("{}-l{}-{}", self.site, line + 1, role.name());
        DeviceId::new(&text).with_context(|| format!("device id {text:?}"))
    }

    /// Every device id, in board order (line by line, roles in [`RoleKind::ALL`] order).
    pub fn device_ids(&self) -> Result<Vec<DeviceId>> {
        let mut out = Vec::new();
        for line in 0..self.lines {
            for role in RoleKind::ALL {
                out.push(self.device_id(line, role)?);
            }
        }
        Ok(out)
    }

    /// The signing key of `device`: its key file under `key_dir`, or derived from the seed.
    pub fn device_key(&self, device: &DeviceId) -> Result<SecretKey> {
        match &self.key_dir {
            Some(dir) => load_key_file(&dir.join(format!("{device}.key"))),
            None => Ok(derive_device_key(self.seed, device)),
        }
    }

    /// Every device id with its public key (what a gateway's registry needs).
    pub fn device_keys(&self) -> Result<Vec<(DeviceId, PublicKey)>> {
        self.device_ids()?
            .into_iter()
            .map(|id| Ok((id, self.device_key(&id)?.public_key())))
            .collect()
    }

    fn plan_config(&self) -> PlanConfig {
        PlanConfig {
            lines: self.lines,
            seed: self.seed,
            run_tag: self.run_tag.clone(),
            gtin: self.gtin,
            input_gtin: self.input_gtin,
            company_prefix: self.company_prefix.clone(),
            factory: self.factory,
            items_per_case: self.items_per_case,
            cases_per_pallet: self.cases_per_pallet,
            excursion_probability: self.excursion_probability,
            misread_probability: self.misread_probability,
            sensor_fault_probability: self.sensor_fault_probability,
        }
    }

    fn setup(&self, kind: RoleKind) -> Result<RoleSetup> {
        let at = |gln| Station::new(gln, self.tz);
        let station = match kind {
            RoleKind::ColdChain => at(self.cold_room),
            RoleKind::Shipping => Station {
                biz_location: None,
                ..at(self.dock)
            },
            _ => at(self.factory),
        };
        let party = |gln: Gln| Uri::parse(&DigitalLink::Location(gln).canonical());
        Ok(RoleSetup {
            kind,
            station,
            items_per_case: self.items_per_case,
            cases_per_pallet: self.cases_per_pallet,
            cold_chain: ColdChainConfig::chilled(),
            sources: vec![Source {
                kind: SourceDestType::OwningParty,
                source: party(self.factory)?,
            }],
            destinations: vec![Destination {
                kind: SourceDestType::OwningParty,
                destination: party(self.customer)?,
            }],
        })
    }

    /// Checks the parts the types do not: site name, rates and probabilities, sizes.
    pub fn validate(&self) -> Result<()> {
        check_site(&self.site).with_context(|| format!("site {:?}", self.site))?;
        if !(self.rate.is_finite() && self.rate >= 0.0) {
            bail!("rate must be a number ≥ 0");
        }
        for (name, p) in [
            ("excursion probability", self.excursion_probability),
            ("misread probability", self.misread_probability),
            ("sensor fault probability", self.sensor_fault_probability),
        ] {
            if !(0.0..=1.0).contains(&p) {
                bail!("{name} must be within 0..=1, not {p}");
            }
        }
        if self.items_per_case == 0 || self.cases_per_pallet == 0 {
            bail!("items per case and cases per pallet must be at least 1");
        }
        if self.queue_sectors < 8 {
            bail!("the queue needs at least 8 sectors (32 KiB)");
        }
        self.device_ids()?;
        Ok(())
    }
}

/// The boards of a line and its script.
pub struct Line {
    /// One board per role and line, in [`LineConfig::device_ids`] order.
    pub boards: Vec<Board>,
    /// The script.
    pub plan: Plan,
}

impl std::fmt::Debug for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Line")
            .field("boards", &self.boards.len())
            .finish_non_exhaustive()
    }
}

impl Line {
    /// Builds every board (opening or formatting its flash) and the script.
    pub fn build(config: &LineConfig) -> Result<Line> {
        config.validate()?;
        let plan = Plan::new(config.plan_config())?;
        let mut boards = Vec::new();
        for line in 0..config.lines {
            for kind in RoleKind::ALL {
                let id = config.device_id(line, kind)?;
                let key = config.device_key(&id)?;
                let (flash, resume) =
                    device_flash(config.state_dir.as_deref(), &id, 4 + config.queue_sectors)?;
                let clock = SimClock::new(config.sntp_delay);
                let device = open_device(id, key, flash, resume, clock)?;
                if resume {
                    tracing::info!(
                        device = %id,
                        "resuming at seq {} ({} unreceipted)",
                        device.chain_head().seq,
                        device.chain_head().seq.saturating_sub(device.released())
                    );
                }
                boards.push(Board::new(&config.setup(kind)?, device, &config.site)?);
            }
        }
        Ok(Line { boards, plan })
    }

    /// The index in [`Line::boards`] of `role` on `line`.
    pub fn board_index(line: u32, role: RoleKind) -> usize {
        line as usize * RoleKind::ALL.len() + role.index()
    }
}

/// One device at the end of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceReport {
    /// The device.
    pub device: DeviceId,
    /// Its public key.
    pub public_key: PublicKey,
    /// Its newest queued seq (its chain head).
    pub last_seq: u64,
    /// The highest receipt it got.
    pub released: u64,
    /// Events it refused because its queue was full.
    pub dropped: u32,
    /// Rejects it got.
    pub rejects: u32,
    /// Messages it published (including re-publications after reconnects).
    pub published: u64,
    /// Times it (re)connected.
    pub connects: u32,
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LineReport {
    /// Events recorded (signed and queued) during the run.
    pub events: u64,
    /// Events whose sensor reports carry an exception.
    pub exceptions: u64,
    /// Items commissioned.
    pub items: u64,
    /// Scanner lines that were not identifiers.
    pub scan_errors: u64,
    /// Observations the roles refused.
    pub role_errors: u64,
    /// Drafts that could not be recorded (queue full and others).
    pub record_errors: u64,
    /// Per device.
    pub devices: Vec<DeviceReport>,
    /// Whether everything was delivered (per [`Drain`]) before the run ended.
    pub delivered: bool,
    /// How long the run took.
    pub elapsed: Duration,
}

impl LineReport {
    pub(crate) fn count(&mut self, recorded: &Recorded) {
        self.events += 1;
        self.exceptions += u64::from(recorded.exception);
        self.items += u64::from(recorded.commissioned_item().is_some());
    }

    pub(crate) fn add_stats(&mut self, board: &Board) {
        let stats = board.stats();
        self.scan_errors += stats.scan_errors;
        self.role_errors += stats.role_errors;
        self.record_errors += stats.record_errors;
    }
}
