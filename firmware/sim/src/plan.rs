//! The script of a simulated line: which observation reaches which board, in what order.
//!
//! Each line (one board per [`RoleKind`]) repeats a pallet cycle:
//!
//! 1. the dryer turns two milk lots into the powder lot the next items are filled from
//!    (TransformationEvent), and commissioning is told the lot (`cbvmda:lotNumber` in `ilmd`);
//! 2. the palletizer scans a new pallet label;
//! 3. for each case: the packer scans a case label, then for each item the commissioning
//!    station scans its freshly printed label (ObjectEvent ADD) and the packer scans it going
//!    in (AggregationEvent, one child); the full case goes onto the pallet (a scan at the
//!    palletizer) and the cold room's sensor takes a reading (ObjectEvent with sensor reports;
//!    with `excursion_probability` the room is too warm and the report carries
//!    `ALARM_CONDITION`);
//! 4. the palletizer's trigger closes the pallet (AggregationEvent listing its cases);
//! 5. the previous pallet leaves the cold room and is shipped (ObjectEvent OBSERVE and
//!    TransactionEvent against a new order); the new pallet enters the cold room.
//!
//! Scans arrive as a scanner sends them, in a random mix of formats (Digital Link URIs on a
//! brand host with lot and expiry, GS1 DataMatrix element strings with AIM prefix and GS,
//! human-readable element strings, GS1-128 case labels) and terminators, with an occasional
//! misread (a retail EAN-13 the scanner also reads), so the firmware's scanner path is exercised
//! as in the field.
//!
//! Everything random comes from one SplitMix64 stream seeded with `--seed`: a given seed and
//! run tag give the same script. The plan knows how many events each step makes (it mirrors
//! the roles' rules), so a run can stop after a given number of events.

use std::collections::{BTreeMap, VecDeque};

use prov_schemas::digital_link::{DigitalLink, Gln, Gtin, Lot, Serial, Sscc};
use prov_schemas::event::{BizTransaction, BizTransactionType, Ilmd, IlmdValue, Uom, Uri};

use crate::board::{Observation, RoleKind};

/// The GS1 group separator (FNC1 in raw element strings).
const GS: char = '\u{1d}';

/// What the plan needs to know about the line.
#[derive(Debug, Clone)]
pub struct PlanConfig {
    /// Lines (each with one board per role).
    pub lines: u32,
    /// Seed of every random choice.
    pub seed: u64,
    /// Distinguishes runs: part of serials, lots and orders (at most 6 characters of
    /// `[0-9A-Z]`).
    pub run_tag: String,
    /// The product's GTIN (items and the powder lots).
    pub gtin: Gtin,
    /// The milk's GTIN (input lots).
    pub input_gtin: Gtin,
    /// GS1 company prefix for SSCCs (7 to 10 digits).
    pub company_prefix: String,
    /// The site's GLN (for order URIs).
    pub factory: Gln,
    /// Items per case.
    pub items_per_case: u32,
    /// Cases per pallet.
    pub cases_per_pallet: u32,
    /// Probability that a cold-room reading is an excursion.
    pub excursion_probability: f64,
    /// Probability that a scan is preceded by a misread.
    pub misread_probability: f64,
    /// Probability that a cold-room reading fails (CRC error).
    pub sensor_fault_probability: f64,
}

/// One step: an observation for the board `role` of line `line` (0-based), and how many
/// events it makes.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The line.
    pub line: u32,
    /// The station.
    pub role: RoleKind,
    /// What happens there.
    pub observation: Observation,
    /// Events the step records.
    pub events: u32,
}

/// SplitMix64: small, fast, and the same everywhere.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `[lo, hi)`.
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// `true` with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// The GS1 mod-10 check digit of `body` (ASCII digits).
pub fn check_digit(body: &str) -> u32 {
    let sum: u32 = body
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, d)| u32::from(d.wrapping_sub(b'0')) * if i % 2 == 0 { 3 } else { 1 })
        .sum();
    (10 - sum % 10) % 10
}

#[derive(Debug, Default)]
struct LineState {
    items: u64,
    ssccs: u64,
    lots: u64,
    orders: u64,
    pending: VecDeque<Step>,
    room: u32,
    waiting: Option<DigitalLink>,
}

/// The script, as an endless iterator of [`Step`]s, lines interleaved step by step.
#[derive(Debug)]
pub struct Plan {
    config: PlanConfig,
    rng: Rng,
    lines: Vec<LineState>,
    turn: u32,
    sscc_base: u64,
    sscc_ref_digits: u32,
}

impl Plan {
    /// A plan for `config`, after checking that every identifier it will make is valid.
    pub fn new(config: PlanConfig) -> anyhow::Result<Plan> {
        let tag = &config.run_tag;
        if tag.is_empty()
            || tag.len() > 6
            || !tag
                .bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
        {
            anyhow::bail!("run tag {tag:?} must be 1 to 6 of [0-9A-Z]");
        }
        let prefix = &config.company_prefix;
        if !(7..=10).contains(&prefix.len()) || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            anyhow::bail!("company prefix {prefix:?} must be 7 to 10 digits");
        }
        if !(1..=999).contains(&config.lines) {
            anyhow::bail!("lines must be 1 to 999, not {}", config.lines);
        }
        let lines = (0..config.lines.max(1))
            .map(|_| LineState::default())
            .collect();
        let sscc_ref_digits = 16u32.saturating_sub(config.company_prefix.len() as u32);
        let tag_hash = u64::from_le_bytes(
            blake3::hash(config.run_tag.as_bytes()).as_bytes()[..8]
                .try_into()
                .unwrap_or([0; 8]),
        );
        Ok(Plan {
            rng: Rng::new(config.seed),
            lines,
            turn: 0,
            sscc_base: tag_hash,
            sscc_ref_digits,
            config,
        })
    }

    fn next_line(&mut self) -> u32 {
        let line = self.turn % self.config.lines.max(1);
        self.turn = self.turn.wrapping_add(1);
        line
    }

    fn serial_number(&mut self, line: u32) -> Option<Serial> {
        let state = &mut self.lines[line as usize];
        state.items += 1;
        let text = format!("{}{}{:06}", self.config.run_tag, line + 1, state.items);
        Serial::parse(&text).ok()
    }

    fn sscc(&mut self, line: u32) -> Option<Sscc> {
        let state = &mut self.lines[line as usize];
        state.ssccs += 1;
        let modulus = 10u64.saturating_pow(self.sscc_ref_digits);
        let reference = self
            .sscc_base
            .wrapping_add(u64::from(line) * 1_000_003)
            .wrapping_add(state.ssccs)
            % modulus.max(1);
        let extension = (line % 10) as u8;
        let body = format!(
            "{extension}{}{reference:0width$}",
            self.config.company_prefix,
            width = self.sscc_ref_digits as usize
        );
        let text = format!("{body}{}", check_digit(&body));
        Sscc::parse(&text).ok()
    }

    fn lot(&mut self, line: u32, prefix: &str) -> Option<Lot> {
        let state = &mut self.lines[line as usize];
        state.lots += 1;
        let text = format!("{prefix}{}{}-{}", self.config.run_tag, line + 1, state.lots);
        Lot::parse(&text).ok()
    }

    /// How the scanner sends an item label.
    fn item_scan(&mut self, serial: &Serial, lot: &str) -> String {
        let gtin = self.config.gtin;
        match self.rng.below(4) {
            0 => format!(
                "https://brand.example.com/01/{gtin}/10/{lot}/21/{}?17=281130",
                DigitalLink::Item {
                    gtin,
                    serial: serial.clone()
                }
                .path()
                .rsplit('/')
                .next()
                .unwrap_or_default()
            ),
            1 => format!("]d201{gtin}17281130{}{}{GS}21{serial}", "10", lot),
            2 => format!("(01){gtin}(21){serial}"),
            _ => format!(
                "]Q1{}",
                DigitalLink::Item {
                    gtin,
                    serial: serial.clone()
                }
            ),
        }
    }

    fn sscc_scan(&mut self, sscc: &Sscc) -> String {
        match self.rng.below(3) {
            0 => format!("]C100{sscc}"),
            1 => format!("(00){sscc}"),
            _ => format!("https://id.gs1.org/00/{sscc}"),
        }
    }

    fn serial(&mut self, line: &str) -> Observation {
        let terminator = match self.rng.below(8) {
            0 => "\r",
            1 => "\n",
            _ => "\r\n",
        };
        let mut bytes = Vec::new();
        if self.rng.chance(self.config.misread_probability) {
            // A retail EAN-13 on the same carton, read by mistake.
            bytes.extend_from_slice(b"]E04006381333931\r\n");
        }
        bytes.extend_from_slice(line.as_bytes());
        bytes.extend_from_slice(terminator.as_bytes());
        Observation::Serial(bytes)
    }

    fn push(&mut self, line: u32, role: RoleKind, observation: Observation, events: u32) {
        self.lines[line as usize].pending.push_back(Step {
            line,
            role,
            observation,
            events,
        });
    }

    fn reading(&mut self, line: u32) {
        let events = u32::from(self.lines[line as usize].room > 0);
        let observation = if self.rng.chance(self.config.sensor_fault_probability) {
            Observation::MeasureFault
        } else if self.rng.chance(self.config.excursion_probability) {
            Observation::Measure {
                celsius: self.rng.range(8.5, 12.5),
                rh: self.rng.range(55.0, 75.0),
            }
        } else {
            Observation::Measure {
                celsius: 4.0 + self.rng.range(-0.8, 0.8) + self.rng.range(-0.8, 0.8),
                rh: self.rng.range(38.0, 48.0),
            }
        };
        self.push(line, RoleKind::ColdChain, observation, events);
    }

    /// Queues the steps of one pallet cycle of `line`.
    fn cycle(&mut self, line: u32) {
        // 1. A new powder lot from two milk lots.
        let kgm = Uom::parse("KGM").ok();
        // Plan::new checked the configuration, so identifiers always parse; a cycle that
        // could not name its lots would be skipped rather than panic.
        let (Some(milk_a), Some(milk_b), Some(powder)) = (
            self.lot(line, "MILK"),
            self.lot(line, "MILK"),
            self.lot(line, "PWD"),
        ) else {
            return;
        };
        let (qa, qb) = (
            (self.rng.range(800.0, 1600.0) * 2.0).round() / 2.0,
            (self.rng.range(800.0, 1600.0) * 2.0).round() / 2.0,
        );
        for (lot, quantity) in [(milk_a, qa), (milk_b, qb)] {
            let lot = DigitalLink::Lot {
                gtin: self.config.input_gtin,
                lot,
            };
            self.push(
                line,
                RoleKind::Transformation,
                Observation::Input {
                    lot,
                    quantity,
                    uom: kgm,
                },
                0,
            );
        }
        let mut ilmd = BTreeMap::new();
        ilmd.insert(
            "cbvmda:bestBeforeDate".to_string(),
            IlmdValue::Text("2028-11-30".into()),
        );
        self.push(
            line,
            RoleKind::Transformation,
            Observation::Output {
                lot: DigitalLink::Lot {
                    gtin: self.config.gtin,
                    lot: powder.clone(),
                },
                quantity: ((qa + qb) * 0.125 * 4.0).round() / 4.0,
                uom: kgm,
                ilmd: Some(Ilmd(ilmd)),
            },
            1,
        );
        let mut item_ilmd = BTreeMap::new();
        item_ilmd.insert(
            "cbvmda:lotNumber".to_string(),
            IlmdValue::Text(powder.to_string()),
        );
        self.push(
            line,
            RoleKind::Commissioning,
            Observation::Ilmd(Some(Ilmd(item_ilmd))),
            0,
        );

        // 2. A pallet label.
        let Some(pallet) = self.sscc(line) else {
            return;
        };
        let scan = self.sscc_scan(&pallet);
        let obs = self.serial(&scan);
        self.push(line, RoleKind::Palletizing, obs, 0);

        // 3. Cases of items.
        for _ in 0..self.config.cases_per_pallet.max(1) {
            let Some(case) = self.sscc(line) else {
                continue;
            };
            let scan = self.sscc_scan(&case);
            let obs = self.serial(&scan);
            self.push(line, RoleKind::Packing, obs, 0);
            for _ in 0..self.config.items_per_case.max(1) {
                let Some(serial) = self.serial_number(line) else {
                    continue;
                };
                let scan = self.item_scan(&serial, powder.as_str());
                let obs = self.serial(&scan);
                self.push(line, RoleKind::Commissioning, obs, 1);
                let scan = self.item_scan(&serial, powder.as_str());
                let obs = self.serial(&scan);
                self.push(line, RoleKind::Packing, obs, 1);
            }
            let scan = self.sscc_scan(&case);
            let obs = self.serial(&scan);
            self.push(line, RoleKind::Palletizing, obs, 0);
            self.reading(line);
        }

        // 4. The pallet is wrapped.
        self.push(line, RoleKind::Palletizing, Observation::Trigger, 1);

        // 5. The previous pallet ships; the new one goes into the cold room.
        let pallet = DigitalLink::Sscc(pallet);
        if let Some(previous) = self.lines[line as usize].waiting.take() {
            let scan = scan_text(&previous);
            let obs = self.serial(&scan);
            self.push(line, RoleKind::ColdChain, obs, 0);
            self.lines[line as usize].room -= 1;
            if let Some(order) = self.order(line) {
                self.push(line, RoleKind::Shipping, Observation::Order(order), 0);
                let obs = self.serial(&scan);
                self.push(line, RoleKind::Shipping, obs, 2);
            }
        }
        let scan = scan_text(&pallet);
        let obs = self.serial(&scan);
        self.push(line, RoleKind::ColdChain, obs, 0);
        let state = &mut self.lines[line as usize];
        state.room += 1;
        state.waiting = Some(pallet);
    }

    fn order(&mut self, line: u32) -> Option<BizTransaction> {
        let state = &mut self.lines[line as usize];
        state.orders += 1;
        let text = format!(
            "urn:epcglobal:cbv:bt:{}:PO-{}{}-{}",
            self.config.factory,
            self.config.run_tag,
            line + 1,
            state.orders
        );
        Uri::parse(&text).ok().map(|uri| BizTransaction {
            kind: Some(BizTransactionType::Po),
            biz_transaction: uri,
        })
    }
}

fn scan_text(id: &DigitalLink) -> String {
    id.canonical()
}

impl Iterator for Plan {
    type Item = Step;

    fn next(&mut self) -> Option<Step> {
        let line = self.next_line();
        if self.lines[line as usize].pending.is_empty() {
            self.cycle(line);
        }
        self.lines[line as usize].pending.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_digits() {
        assert_eq!(check_digit("10614141234567890"), 8);
        assert_eq!(check_digit("950600013437"), 6);
    }
}
