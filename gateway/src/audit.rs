//! Offline audit: [`export`] writes a self-contained archive of a gateway's log, and
//! [`verify`] checks one with no network, trusting nothing in it but what it can recompute.
//!
//! Why: a customs auditor must be able to prove what the log says without trusting the gateway's
//! operator. The archive carries every entry and every chain block; the verifier replays the
//! chain from block 0, recomputes every checkpoint's root from the entries, re-verifies every
//! signature under keys registered *in the log* (registry records under operator keys pinned
//! from outside with `--trust`), and re-runs the gateway's own sequencing rules
//! ([`crate::verify::chain_verdict`], [`crate::verify::registry_verdict`],
//! [`crate::verify::device_verdict`], over a [`MemoryView`]) on the whole history. A checkpoint
//! obtained elsewhere (a phone, a witness) is then compared with the archive: that is how a split
//! view is caught.
//!
//! # Archive format (v1): a directory
//!
//! ```text
//! FORMAT        the line "prov-audit-archive v1\n"
//! keys.json     the gateway's keys in the /api/v1/keys shape (SPEC §6), compact JSON:
//!               {"gateway_key":"{verifier key}","operator_keys":{"operator:{name}":"{base64 SEC1}"}}
//! chain.bin     every chain block (SPEC §5), from block 0: records [u32 BE length][block bytes]
//! entries.bin   every log entry, leaf 0 up to the latest checkpoint's size, in order:
//!               records [u32 BE length][message bytes] (1 ≤ length ≤ 16 KiB)
//! cosigned/     optional: {size}.note, checkpoint notes with witness cosignature lines, copied
//!               from the data directory's cosigned/ (where the gateway keeps what its
//!               witnesses returned)
//! ```
//!
//! Every byte matters: the formats are parsed strictly (canonical base64, no unknown JSON
//! fields, exact record framing), so that one changed byte anywhere makes [`verify`] fail and
//! name the cause ([`AuditError`]).
//!
//! # What [`verify`] checks, in order (the first failure is returned)
//!
//! 1. `FORMAT`; `keys.json` (against `--trust` if given: the keys must be the same);
//! 2. the chain from block 0 ([`ChainVerifier`]: links, signatures, every consistency proof);
//! 3. each entry in log order: strict parse; not a duplicate of an earlier entry; registry
//!    records signed by a trusted operator and obeying the registry rules; events from a device
//!    registered before them and not revoked, signed by the registered key, and fitting the
//!    device's seq/prev chain (a broken `prev` link or a replay fails; gaps and equivocations
//!    are *reported*); at every checkpoint's size, the root recomputed from the entries equals
//!    the signed root (so a damaged entry is located between two checkpoints);
//! 4. the number of entries equals the final checkpoint's size;
//! 5. cosigned notes: signed by the gateway, and for the same size and root as the chain's
//!    checkpoint (else a split view); cosignatures verified under the `--witness` keys given
//!    (when some are given, a line of any other key fails: the auditor named its witnesses);
//! 6. `--checkpoint`: same size → same root; smaller → its root is the one recomputed from the
//!    archive's entries at that size (which every later checkpoint is proven consistent with);
//!    larger → cannot be judged from this archive ([`ExternalVerdict::BeyondArchive`]).
//!
//! Signature checks of a batch run on several threads; everything else is one sequential pass
//! that keeps O(entries) state in memory (the hash → leaf map and each device's chain links).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use prov_ledger::chain::{ChainError, ChainVerifier};
use prov_ledger::checkpoint::{Checkpoint, CheckpointError};
use prov_ledger::hasher::{Blake3Hasher, LogHasher};
use prov_ledger::merkle::Frontier;
use prov_ledger::note::{KeyError, KeyKind, NoteError, SignedNote, VerifierKey};
use prov_ledger::store::{ChainStore, LogStore, StoreConfig, StoreError};
use prov_schemas::Hash32;
use prov_schemas::checked::VerifyError;
use prov_schemas::cose::{CoseSign1, MAX_MESSAGE_LEN, PreferredBackend};
use prov_schemas::keys::{DeviceId, OperatorName, PublicKey};
use prov_schemas::registry::RegistryRecord;

use crate::config::Config;
use crate::index::LoggedEntry;
use crate::keys::{KeyFileError, load_gateway_signer, trusted_operators};
use crate::verify::{
    ChainVerdict, LogView, MemoryView, chain_verdict, device_verdict, registry_verdict,
};

/// The first line of an archive's `FORMAT` file.
pub const FORMAT: &str = "prov-audit-archive v1\n";
/// The largest chain block accepted (a note with 100 signature lines and a 65-hash proof).
pub const MAX_BLOCK_LEN: usize = 64 * 1024;
/// Entries checked per batch (the unit of parallel signature checks).
const BATCH: usize = 4096;

/// An audit failed: the first cause, with its evidence.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The archive's `FORMAT` is not v1.
    #[error("{}: not a v1 archive (got {got:?}, want {want:?})", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// Its content (cut at 64 bytes).
        got: String,
        /// [`FORMAT`].
        want: &'static str,
    },
    /// A keys file is malformed.
    #[error("{}: {detail}", path.display())]
    Keys {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The archive's keys differ from the keys pinned with `--trust`.
    #[error(
        "archive keys.json differs from the trusted keys: {what}: archive {archive}, trusted {trusted}"
    )]
    TrustMismatch {
        /// Which key.
        what: String,
        /// The archive's value.
        archive: String,
        /// The trusted value.
        trusted: String,
    },
    /// A record of `chain.bin` or `entries.bin` is not framed correctly.
    #[error("{file}: record {index} at byte {offset}: {detail}")]
    Framing {
        /// `chain.bin` or `entries.bin`.
        file: &'static str,
        /// The record's index.
        index: u64,
        /// Its byte offset.
        offset: u64,
        /// What is wrong.
        detail: String,
    },
    /// The chain does not verify.
    #[error("chain: {0}")]
    Chain(#[from] ChainError),
    /// The chain has no block.
    #[error("chain.bin holds no block")]
    EmptyChain,
    /// An entry is malformed or its signature does not verify.
    #[error("entry {leaf}: {source}")]
    Entry {
        /// Its leaf index.
        leaf: u64,
        /// Why.
        source: VerifyError,
    },
    /// An entry appears twice (the log stores a message once, SPEC §4).
    #[error("entry {leaf} repeats entry {first}")]
    DuplicateEntry {
        /// The repeat.
        leaf: u64,
        /// The first copy.
        first: u64,
    },
    /// An event from a device that is not registered at that point, or is revoked.
    #[error("entry {leaf}: event of device {device} not admissible: {detail}")]
    Device {
        /// The event's leaf.
        leaf: u64,
        /// The device id.
        device: String,
        /// Not registered, or revoked at which leaf.
        detail: String,
    },
    /// A registry record breaking the registry rules.
    #[error("entry {leaf}: registry record refused: {detail}")]
    Registry {
        /// Its leaf.
        leaf: u64,
        /// Why.
        detail: String,
    },
    /// An event whose `prov:prev` is not the BLAKE3 of the device's previous message.
    #[error(
        "entry {leaf}: device {device} seq {seq} breaks its chain: prov:prev {got}, want {want}"
    )]
    BrokenChain {
        /// The event's leaf.
        leaf: u64,
        /// The device id.
        device: String,
        /// Its seq.
        seq: u64,
        /// Its `prov:prev`.
        got: Hash32,
        /// BLAKE3 of the previous message.
        want: Hash32,
    },
    /// An event for an empty slot below the head that does not link to its neighbours.
    #[error("entry {leaf}: device {device} seq {seq} does not fit its chain: {reason}")]
    Replay {
        /// The event's leaf.
        leaf: u64,
        /// The device id.
        device: String,
        /// Its seq.
        seq: u64,
        /// Which link failed.
        reason: String,
    },
    /// The root recomputed from the entries differs from a signed checkpoint's.
    #[error(
        "checkpoint of chain block {block} (size {size}): root recomputed from the entries is {recomputed}, signed root is {signed}: an entry in [{from}, {size}) differs from what was signed"
    )]
    RootMismatch {
        /// The chain block.
        block: usize,
        /// The checkpoint's size.
        size: u64,
        /// Recomputed.
        recomputed: Hash32,
        /// Signed.
        signed: Hash32,
        /// The previous checkpoint's size.
        from: u64,
    },
    /// The archive does not hold exactly the entries the final checkpoint covers.
    #[error("entries.bin holds {got} entries, the final checkpoint covers {want}")]
    EntryCount {
        /// Entries found.
        got: u64,
        /// The final checkpoint's size.
        want: u64,
    },
    /// A cosigned note is malformed or not signed by the gateway.
    #[error("{}: {detail}", path.display())]
    Cosigned {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A checkpoint signed by the gateway that contradicts the archive: a split view.
    #[error(
        "split view: {source_name} has size {size} with root {given}, the archive's root at that size is {archive}"
    )]
    SplitView {
        /// Where the contradicting checkpoint came from.
        source_name: String,
        /// Its size.
        size: u64,
        /// Its root.
        given: Hash32,
        /// The archive's root at that size.
        archive: Hash32,
    },
    /// The checkpoint given with `--checkpoint` does not verify under the gateway key.
    #[error("{}: not a checkpoint signed by the gateway key: {source}", path.display())]
    ExternalCheckpoint {
        /// The file.
        path: PathBuf,
        /// Why.
        source: CheckpointError,
    },
    /// A witness cosignature does not verify.
    #[error("{}: cosignature of witness {witness}: {source}", path.display())]
    Cosignature {
        /// The note's file.
        path: PathBuf,
        /// The witness key's name.
        witness: String,
        /// Why.
        source: NoteError,
    },
    /// Export: the data directory's log could not be read.
    #[error("log store: {0}")]
    Store(#[from] StoreError),
    /// Export: a key file.
    #[error("{0}")]
    Key(#[from] KeyFileError),
    /// Export: the gateway key.
    #[error("gateway key: {0}")]
    GatewayKey(KeyError),
    /// Export: the output exists.
    #[error("{} exists: export writes a new archive directory only", path.display())]
    OutExists {
        /// The path.
        path: PathBuf,
    },
    /// Export: the log holds no checkpoint yet.
    #[error("the chain holds no checkpoint: nothing to export")]
    NothingSigned,
}

type Result<T, E = AuditError> = std::result::Result<T, E>;

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> AuditError + '_ {
    move |source| AuditError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Reports the progress of a long step (the CLI draws bars; tests pass [`NoProgress`]).
pub trait Progress {
    /// A step named `stage` starts, with `total` units of work.
    fn start(&self, stage: &'static str, total: u64);
    /// `n` more units done.
    fn advance(&self, n: u64);
    /// The step is finished.
    fn finish(&self);
}

/// No progress reporting.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _: &'static str, _: u64) {}
    fn advance(&self, _: u64) {}
    fn finish(&self) {}
}

// ---------------------------------------------------------------------------------------------
// Keys.
// ---------------------------------------------------------------------------------------------

/// The keys a verifier pins: the gateway's checkpoint key and the trusted operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySet {
    /// The gateway's checkpoint verifier key (SPEC §5).
    pub gateway: VerifierKey,
    /// Trusted operators and their P-256 keys.
    pub operators: BTreeMap<OperatorName, PublicKey>,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysStrict {
    gateway_key: String,
    operator_keys: BTreeMap<String, String>,
}

#[derive(serde::Deserialize)]
struct KeysLenient {
    gateway_key: String,
    operator_keys: BTreeMap<String, String>,
}

impl KeySet {
    /// Parses the /api/v1/keys JSON shape. `strict` (an archive's own file) also refuses unknown
    /// fields and requires the exact compact encoding [`KeySet::to_json`] writes.
    ///
    /// # Errors
    /// [`AuditError::Keys`] naming `path`.
    pub fn from_json(bytes: &[u8], path: &Path, strict: bool) -> Result<KeySet> {
        let bad = |detail: String| AuditError::Keys {
            path: path.to_path_buf(),
            detail,
        };
        let (gateway_key, operator_keys) = if strict {
            let k: KeysStrict = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
            (k.gateway_key, k.operator_keys)
        } else {
            let k: KeysLenient = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
            (k.gateway_key, k.operator_keys)
        };
        let gateway = VerifierKey::parse(&gateway_key)
            .map_err(|e| bad(format!("gateway_key {gateway_key:?}: {e}")))?;
        if gateway.kind() != KeyKind::Ed25519 {
            return Err(bad(String::from(
                "gateway_key is not an Ed25519 (type 0x01) key",
            )));
        }
        let mut operators = BTreeMap::new();
        for (name, key) in &operator_keys {
            let op = name
                .strip_prefix("operator:")
                .and_then(|n| OperatorName::new(n).ok())
                .ok_or_else(|| bad(format!("{name:?} is not an operator:{{name}} kid")))?;
            let raw = STANDARD
                .decode(key)
                .ok()
                .filter(|raw| STANDARD.encode(raw) == *key)
                .ok_or_else(|| bad(format!("{name}: key is not canonical base64")))?;
            let public =
                PublicKey::from_sec1_uncompressed(&raw).map_err(|e| bad(format!("{name}: {e}")))?;
            operators.insert(op, public);
        }
        let set = KeySet { gateway, operators };
        if strict && set.to_json().as_bytes() != bytes {
            return Err(bad(String::from(
                "not in the archive's exact encoding (compact JSON and a final newline)",
            )));
        }
        Ok(set)
    }

    /// The /api/v1/keys JSON (compact, sorted, with a final newline).
    pub fn to_json(&self) -> String {
        let keys = KeysStrict {
            gateway_key: self.gateway.to_string(),
            operator_keys: self
                .operators
                .iter()
                .map(|(n, k)| {
                    (
                        format!("operator:{n}"),
                        STANDARD.encode(k.to_sec1_uncompressed()),
                    )
                })
                .collect(),
        };
        let mut text = serde_json::to_string(&keys).unwrap_or_default();
        text.push('\n');
        text
    }

    /// Compares with the keys pinned from outside.
    fn check_against(&self, trusted: &KeySet) -> Result<()> {
        if self.gateway != trusted.gateway {
            return Err(AuditError::TrustMismatch {
                what: String::from("gateway_key"),
                archive: self.gateway.to_string(),
                trusted: trusted.gateway.to_string(),
            });
        }
        let names: BTreeSet<_> = self
            .operators
            .keys()
            .chain(trusted.operators.keys())
            .collect();
        for name in names {
            let show = |k: Option<&PublicKey>| {
                k.map_or(String::from("(none)"), |k| {
                    STANDARD.encode(k.to_sec1_uncompressed())
                })
            };
            let (a, t) = (self.operators.get(name), trusted.operators.get(name));
            if a != t {
                return Err(AuditError::TrustMismatch {
                    what: format!("operator:{name}"),
                    archive: show(a),
                    trusted: show(t),
                });
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Records.
// ---------------------------------------------------------------------------------------------

fn write_record(out: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(bytes.len())
        .map_err(|_| std::io::Error::other("record longer than 4 GiB"))?;
    out.write_all(&len.to_be_bytes())?;
    out.write_all(bytes)
}

/// Reads `[u32 BE len][bytes]` records, checking their framing.
struct RecordReader<R> {
    input: R,
    file: &'static str,
    path: PathBuf,
    max: usize,
    index: u64,
    offset: u64,
}

impl<R: Read> RecordReader<R> {
    fn new(input: R, file: &'static str, path: &Path, max: usize) -> RecordReader<R> {
        RecordReader {
            input,
            file,
            path: path.to_path_buf(),
            max,
            index: 0,
            offset: 0,
        }
    }

    fn framing(&self, detail: String) -> AuditError {
        AuditError::Framing {
            file: self.file,
            index: self.index,
            offset: self.offset,
            detail,
        }
    }

    /// The next record, `None` at a clean end of file.
    fn next_record(&mut self) -> Result<Option<Vec<u8>>> {
        let mut head = [0u8; 4];
        let mut got = 0;
        while got < 4 {
            let n = self
                .input
                .read(&mut head[got..])
                .map_err(io_err(&self.path))?;
            if n == 0 {
                break;
            }
            got += n;
        }
        if got == 0 {
            return Ok(None);
        }
        if got < 4 {
            return Err(self.framing(format!("cut inside the length ({got} of 4 bytes)")));
        }
        let len = u32::from_be_bytes(head) as usize;
        if len == 0 || len > self.max {
            return Err(self.framing(format!("length {len} outside 1..={}", self.max)));
        }
        let mut bytes = vec![0u8; len];
        let mut filled = 0;
        while filled < len {
            let n = self
                .input
                .read(&mut bytes[filled..])
                .map_err(io_err(&self.path))?;
            if n == 0 {
                return Err(self.framing(format!("cut short: {filled} of {len} bytes")));
            }
            filled += n;
        }
        self.index += 1;
        self.offset += 4 + len as u64;
        Ok(Some(bytes))
    }
}

// ---------------------------------------------------------------------------------------------
// Export.
// ---------------------------------------------------------------------------------------------

/// What [`export`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSummary {
    /// Entries written (the latest checkpoint's size).
    pub entries: u64,
    /// Chain blocks written.
    pub blocks: u64,
    /// The latest checkpoint.
    pub checkpoint: Checkpoint,
    /// Cosigned notes copied.
    pub cosigned: usize,
    /// Bytes written.
    pub bytes: u64,
}

/// Writes the archive of the gateway of `config` to the new directory `out` (see the module
/// docs). Run on a stopped gateway or a copy of its data directory: the log store is opened
/// (and locked) as the gateway would open it.
///
/// # Errors
/// [`AuditError`]: key files, the stores, I/O; [`AuditError::OutExists`].
pub fn export(config: &Config, out: &Path, progress: &dyn Progress) -> Result<ExportSummary> {
    if out.exists() {
        return Err(AuditError::OutExists {
            path: out.to_path_buf(),
        });
    }
    let signer = load_gateway_signer(&config.gateway_key_path(), &config.origin)?;
    let gateway = signer.verifier_key().map_err(AuditError::GatewayKey)?;
    let operators = trusted_operators(&config.keys.operators)?;
    let keys = KeySet { gateway, operators };
    let log = LogStore::open(StoreConfig::new(config.log_dir()))?;
    let chain = ChainStore::open(&config.chain_path(), &keys.gateway)?;
    let checkpoint = chain.latest().cloned().ok_or(AuditError::NothingSigned)?;

    std::fs::create_dir_all(out).map_err(io_err(out))?;
    let mut bytes = 0u64;
    let mut write_file = |name: &str, content: &[u8]| -> Result<()> {
        let path = out.join(name);
        let mut f = File::create(&path).map_err(io_err(&path))?;
        f.write_all(content)
            .and_then(|()| f.sync_all())
            .map_err(io_err(&path))?;
        bytes += content.len() as u64;
        Ok(())
    };
    write_file("FORMAT", FORMAT.as_bytes())?;
    write_file("keys.json", keys.to_json().as_bytes())?;

    progress.start("chain", chain.len());
    let chain_path = out.join("chain.bin");
    let mut w = BufWriter::new(File::create(&chain_path).map_err(io_err(&chain_path))?);
    for i in 0..chain.len() {
        let block = chain.block(i)?;
        write_record(&mut w, &block).map_err(io_err(&chain_path))?;
        bytes += 4 + block.len() as u64;
        progress.advance(1);
    }
    finish_file(w, &chain_path)?;
    progress.finish();

    progress.start("entries", checkpoint.size());
    let entries_path = out.join("entries.bin");
    let mut w = BufWriter::with_capacity(
        1 << 20,
        File::create(&entries_path).map_err(io_err(&entries_path))?,
    );
    let mut write_error = None;
    log.for_each_entry(0..checkpoint.size(), |_, entry| {
        if let Err(e) = write_record(&mut w, entry) {
            write_error = Some(e);
            return ControlFlow::Break(());
        }
        bytes += 4 + entry.len() as u64;
        progress.advance(1);
        ControlFlow::Continue(())
    })?;
    if let Some(e) = write_error {
        return Err(io_err(&entries_path)(e));
    }
    finish_file(w, &entries_path)?;
    progress.finish();

    let mut cosigned = 0;
    let from = config.data_dir.join("cosigned");
    if from.is_dir() {
        let to = out.join("cosigned");
        std::fs::create_dir_all(&to).map_err(io_err(&to))?;
        for entry in std::fs::read_dir(&from).map_err(io_err(&from))? {
            let path = entry.map_err(io_err(&from))?.path();
            if path.extension().is_some_and(|x| x == "note")
                && let Some(name) = path.file_name()
            {
                let content = std::fs::read(&path).map_err(io_err(&path))?;
                let target = to.join(name);
                std::fs::write(&target, &content).map_err(io_err(&target))?;
                bytes += content.len() as u64;
                cosigned += 1;
            }
        }
    }
    File::open(out)
        .and_then(|d| d.sync_all())
        .map_err(io_err(out))?;
    Ok(ExportSummary {
        entries: checkpoint.size(),
        blocks: chain.len(),
        checkpoint,
        cosigned,
        bytes,
    })
}

fn finish_file(w: BufWriter<File>, path: &Path) -> Result<()> {
    let f = w.into_inner().map_err(|e| AuditError::Io {
        path: path.to_path_buf(),
        source: e.into_error(),
    })?;
    f.sync_all().map_err(io_err(path))
}

// ---------------------------------------------------------------------------------------------
// Verify.
// ---------------------------------------------------------------------------------------------

/// Options of [`verify`].
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Keys pinned from outside the archive (`--trust`); `None`: the archive's own keys.json.
    pub trust: Option<KeySet>,
    /// A checkpoint obtained elsewhere (`--checkpoint FILE`): its path and content.
    pub checkpoint: Option<(PathBuf, String)>,
    /// Witness cosignature keys (type 0x04) whose cosignatures to verify.
    pub witnesses: Vec<VerifierKey>,
    /// Threads checking signatures (0: one per CPU).
    pub workers: usize,
}

/// One open gap of a device's chain: seqs `from..=to` never logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    /// The device.
    pub device: DeviceId,
    /// First missing seq.
    pub from: u64,
    /// Last missing seq.
    pub to: u64,
}

/// Two logged events of one device with the same seq (the gateway should have logged only the
/// first): reported, the first is the one the chain continues from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Equivocation {
    /// The device.
    pub device: DeviceId,
    /// The seq.
    pub seq: u64,
    /// The first event's leaf.
    pub first: u64,
    /// The second event's leaf.
    pub second: u64,
}

/// One cosigned note of the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CosignedNote {
    /// Its file.
    pub path: PathBuf,
    /// Its checkpoint's size.
    pub size: u64,
    /// The `--witness` keys whose cosignature verified, with the timestamp.
    pub verified: Vec<(String, u64)>,
    /// Signature lines of keys that are neither the gateway's nor a `--witness` key.
    pub unverified_lines: usize,
}

/// How a checkpoint from elsewhere relates to the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExternalVerdict {
    /// Same size, same root.
    Same {
        /// The size.
        size: u64,
    },
    /// Smaller, and its root is the archive's root at that size.
    Consistent {
        /// Its size.
        size: u64,
        /// The archive's size.
        archive_size: u64,
    },
    /// Larger than the archive: nothing can be said from this archive (export again).
    BeyondArchive {
        /// Its size.
        size: u64,
        /// The archive's size.
        archive_size: u64,
    },
}

/// What a successful [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Whether the keys came from the archive itself (no `--trust`).
    pub keys_from_archive: bool,
    /// The keys used.
    pub keys: KeySet,
    /// Chain blocks verified.
    pub blocks: usize,
    /// The final checkpoint.
    pub checkpoint: Checkpoint,
    /// Entries verified.
    pub entries: u64,
    /// Of which events.
    pub events: u64,
    /// Registrations.
    pub registrations: u64,
    /// Revocations.
    pub revocations: u64,
    /// Devices that logged at least one event.
    pub devices: usize,
    /// Seqs that filled an earlier gap.
    pub gap_fills: u64,
    /// Open gaps at the end.
    pub gaps: Vec<Gap>,
    /// Equivocations found.
    pub equivocations: Vec<Equivocation>,
    /// Cosigned notes.
    pub cosigned: Vec<CosignedNote>,
    /// The `--checkpoint` verdict.
    pub external: Option<ExternalVerdict>,
}

/// A signature to check: the leaf, and the key it must verify under.
struct Job {
    leaf: u64,
    index: usize,
    key: PublicKey,
}

/// The sequential state of the entry pass.
struct Pass<'k> {
    keys: &'k KeySet,
    view: MemoryView,
    frontier: Frontier<Blake3Hasher>,
    /// (block, size, root) of every checkpoint still ahead.
    targets: Vec<(usize, u64, Hash32)>,
    next_target: usize,
    last_checked_size: u64,
    external_size: Option<u64>,
    external_root: Option<Hash32>,
    events: u64,
    registrations: u64,
    revocations: u64,
    gaps: BTreeMap<DeviceId, Vec<(u64, u64)>>,
    fills: BTreeMap<DeviceId, BTreeSet<u64>>,
    gap_fills: u64,
    equivocations: Vec<Equivocation>,
    devices: BTreeSet<DeviceId>,
}

impl Pass<'_> {
    /// The sequential checks of one entry; pushes its signature job.
    fn entry(
        &mut self,
        leaf: u64,
        index: usize,
        message: &[u8],
        jobs: &mut Vec<Job>,
    ) -> Result<()> {
        let logged =
            LoggedEntry::parse(message).map_err(|source| AuditError::Entry { leaf, source })?;
        let entry = logged.as_ref();
        let hash = entry.hash();
        if let Ok(Some(first)) = self.view.leaf_of(&hash) {
            return Err(AuditError::DuplicateEntry { leaf, first });
        }
        match &logged {
            LoggedEntry::Event { event, .. } => {
                let device = event.device;
                let state = self.view.device_state(&device).ok().flatten();
                let key = device_verdict(&device, state.as_ref()).map_err(|(_, detail)| {
                    AuditError::Device {
                        leaf,
                        device: device.to_string(),
                        detail,
                    }
                })?;
                jobs.push(Job { leaf, index, key });
                self.events += 1;
                self.devices.insert(device);
                let Ok(verdict) = chain_verdict(&self.view, &device, event.seq, event.prev, hash);
                match verdict {
                    ChainVerdict::Extends { gap, fills_gap } => {
                        if let Some(g) = gap {
                            self.gaps.entry(device).or_default().push(g);
                        }
                        if fills_gap {
                            self.gap_fills += 1;
                            self.fills.entry(device).or_default().insert(event.seq);
                        }
                        self.view.apply(leaf, entry);
                    }
                    ChainVerdict::Duplicate { leaf: first } => {
                        return Err(AuditError::DuplicateEntry { leaf, first });
                    }
                    ChainVerdict::Equivocation { leaf: first, .. } => {
                        self.equivocations.push(Equivocation {
                            device,
                            seq: event.seq,
                            first,
                            second: leaf,
                        });
                    }
                    ChainVerdict::BrokenChain { want_prev } => {
                        return Err(AuditError::BrokenChain {
                            leaf,
                            device: device.to_string(),
                            seq: event.seq,
                            got: event.prev,
                            want: want_prev,
                        });
                    }
                    ChainVerdict::Replay { reason } => {
                        return Err(AuditError::Replay {
                            leaf,
                            device: device.to_string(),
                            seq: event.seq,
                            reason,
                        });
                    }
                }
            }
            LoggedEntry::Registry {
                operator, record, ..
            } => {
                let key = *self.keys.operators.get(operator).ok_or(AuditError::Entry {
                    leaf,
                    source: VerifyError::UnknownOperator {
                        operator: *operator,
                    },
                })?;
                jobs.push(Job { leaf, index, key });
                let Ok(verdict) = registry_verdict(&self.view, record);
                if let Err((code, detail)) = verdict {
                    return Err(AuditError::Registry {
                        leaf,
                        detail: format!("{code}: {detail}"),
                    });
                }
                match **record {
                    RegistryRecord::Registration { .. } => self.registrations += 1,
                    RegistryRecord::Revocation { .. } => self.revocations += 1,
                }
                self.view.apply(leaf, entry);
            }
        }
        self.leaf_hash(Blake3Hasher.hash_leaf(message))
    }

    /// Appends a leaf hash and checks the roots due at the new size.
    fn leaf_hash(&mut self, leaf: Hash32) -> Result<()> {
        // A tree of 2^64 leaves cannot be read from a file.
        let _ = self.frontier.append_leaf_hash(leaf);
        self.check_roots()
    }

    fn check_roots(&mut self) -> Result<()> {
        let size = self.frontier.size();
        if self.external_size == Some(size) {
            self.external_root = Some(self.frontier.root());
        }
        while let Some(&(block, target, signed)) = self.targets.get(self.next_target) {
            if target != size {
                break;
            }
            let recomputed = self.frontier.root();
            if recomputed != signed {
                return Err(AuditError::RootMismatch {
                    block,
                    size,
                    recomputed,
                    signed,
                    from: self.last_checked_size,
                });
            }
            self.last_checked_size = size;
            self.next_target += 1;
        }
        Ok(())
    }

    fn open_gaps(&self) -> Vec<Gap> {
        let mut out = Vec::new();
        for (device, ranges) in &self.gaps {
            let filled = self.fills.get(device);
            for &(from, to) in ranges {
                let mut start: Option<u64> = None;
                for seq in from..=to {
                    let missing = !filled.is_some_and(|f| f.contains(&seq));
                    match (missing, start) {
                        (true, None) => start = Some(seq),
                        (false, Some(s)) => {
                            out.push(Gap {
                                device: *device,
                                from: s,
                                to: seq - 1,
                            });
                            start = None;
                        }
                        _ => {}
                    }
                }
                if let Some(s) = start {
                    out.push(Gap {
                        device: *device,
                        from: s,
                        to,
                    });
                }
            }
        }
        out
    }
}

/// Checks the signatures of `jobs` (over `batch`) on `workers` threads; the failure with the
/// lowest leaf, if any.
fn check_signatures(batch: &[Vec<u8>], jobs: &[Job], workers: usize) -> Option<AuditError> {
    let check = |job: &Job| -> Option<AuditError> {
        let message = batch.get(job.index)?;
        let result = CoseSign1::parse(message)
            .and_then(|c| c.verify(&job.key, &PreferredBackend::default()));
        result.err().map(|e| AuditError::Entry {
            leaf: job.leaf,
            source: VerifyError::Cose(e),
        })
    };
    if workers <= 1 || jobs.len() < 64 {
        return jobs.iter().find_map(check);
    }
    let chunk = jobs.len().div_ceil(workers);
    std::thread::scope(|s| {
        let handles: Vec<_> = jobs
            .chunks(chunk)
            .map(|part| s.spawn(move || part.iter().find_map(check)))
            .collect();
        // Chunks are in leaf order: the first failing chunk holds the lowest failing leaf.
        let results: Vec<Option<AuditError>> = handles
            .into_iter()
            .map(|h| h.join().ok().flatten())
            .collect();
        results.into_iter().flatten().next()
    })
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(io_err(path))
}

/// The leaf an [`AuditError`] of the entry pass is about (for ordering failures).
fn failure_leaf(e: &AuditError) -> u64 {
    match e {
        AuditError::Entry { leaf, .. }
        | AuditError::DuplicateEntry { leaf, .. }
        | AuditError::Device { leaf, .. }
        | AuditError::Registry { leaf, .. }
        | AuditError::BrokenChain { leaf, .. }
        | AuditError::Replay { leaf, .. } => *leaf,
        AuditError::RootMismatch { size, .. } => size.saturating_sub(1),
        _ => u64::MAX,
    }
}

/// Verifies the archive in directory `archive` (see the module docs).
///
/// # Errors
/// The first failure, as an [`AuditError`] with its evidence.
pub fn verify(archive: &Path, options: &VerifyOptions, progress: &dyn Progress) -> Result<Report> {
    // 1. Format and keys.
    let format_path = archive.join("FORMAT");
    let format = read_file(&format_path)?;
    if format != FORMAT.as_bytes() {
        let got = String::from_utf8_lossy(&format[..format.len().min(64)]).into_owned();
        return Err(AuditError::Format {
            path: format_path,
            got,
            want: FORMAT,
        });
    }
    let keys_path = archive.join("keys.json");
    let archive_keys = KeySet::from_json(&read_file(&keys_path)?, &keys_path, true)?;
    let keys = match &options.trust {
        Some(trusted) => {
            archive_keys.check_against(trusted)?;
            trusted.clone()
        }
        None => archive_keys,
    };

    // 2. The chain.
    let chain_path = archive.join("chain.bin");
    let chain_file = File::open(&chain_path).map_err(io_err(&chain_path))?;
    let total_blocks = chain_file.metadata().map_or(0, |m| m.len());
    progress.start("chain", total_blocks);
    let mut reader = RecordReader::new(
        BufReader::new(chain_file),
        "chain.bin",
        &chain_path,
        MAX_BLOCK_LEN,
    );
    let mut verifier = ChainVerifier::new(keys.gateway.clone());
    let mut targets = Vec::new();
    while let Some(block) = reader.next_record()? {
        let index = verifier.blocks();
        let checkpoint = verifier.push(&block)?;
        targets.push((index, checkpoint.size(), checkpoint.root()));
        progress.advance(4 + block.len() as u64);
    }
    progress.finish();
    let final_checkpoint = verifier.latest().cloned().ok_or(AuditError::EmptyChain)?;
    let blocks = verifier.blocks();

    // The checkpoint from elsewhere: must be signed by the gateway.
    let external = match &options.checkpoint {
        Some((path, text)) => Some((
            path.clone(),
            text.clone(),
            Checkpoint::open(text, &keys.gateway).map_err(|source| {
                AuditError::ExternalCheckpoint {
                    path: path.clone(),
                    source,
                }
            })?,
        )),
        None => None,
    };

    // 3. The entries.
    let mut pass = Pass {
        keys: &keys,
        view: MemoryView::new(),
        frontier: Frontier::new(Blake3Hasher),
        targets,
        next_target: 0,
        last_checked_size: 0,
        external_size: external.as_ref().map(|(_, _, c)| c.size()),
        external_root: None,
        events: 0,
        registrations: 0,
        revocations: 0,
        gaps: BTreeMap::new(),
        fills: BTreeMap::new(),
        gap_fills: 0,
        equivocations: Vec::new(),
        devices: BTreeSet::new(),
    };
    // Size 0: the empty tree's checkpoints (block 0 of a new log) and an external size 0.
    pass.check_roots()?;
    let workers = match options.workers {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => n,
    };
    let entries_path = archive.join("entries.bin");
    let entries_file = File::open(&entries_path).map_err(io_err(&entries_path))?;
    let mut reader = RecordReader::new(
        BufReader::with_capacity(1 << 20, entries_file),
        "entries.bin",
        &entries_path,
        MAX_MESSAGE_LEN,
    );
    progress.start("entries", final_checkpoint.size());
    let mut leaf = 0u64;
    loop {
        let mut batch = Vec::with_capacity(BATCH);
        while batch.len() < BATCH {
            match reader.next_record() {
                Ok(Some(m)) => batch.push(m),
                Ok(None) => break,
                Err(e) => {
                    // Report a failure of an earlier entry of the batch first.
                    let mut jobs = Vec::new();
                    for (i, m) in batch.iter().enumerate() {
                        pass.entry(leaf + i as u64, i, m, &mut jobs)?;
                    }
                    if let Some(sig) = check_signatures(&batch, &jobs, workers) {
                        return Err(sig);
                    }
                    return Err(e);
                }
            }
        }
        if batch.is_empty() {
            break;
        }
        let mut jobs = Vec::with_capacity(batch.len());
        let mut failure = None;
        for (i, m) in batch.iter().enumerate() {
            if let Err(e) = pass.entry(leaf + i as u64, i, m, &mut jobs) {
                failure = Some(e);
                break;
            }
        }
        let signature_failure = check_signatures(&batch, &jobs, workers);
        match (signature_failure, failure) {
            (Some(s), Some(f)) => {
                return Err(if failure_leaf(&s) <= failure_leaf(&f) {
                    s
                } else {
                    f
                });
            }
            (Some(e), None) | (None, Some(e)) => return Err(e),
            (None, None) => {}
        }
        leaf += batch.len() as u64;
        progress.advance(batch.len() as u64);
    }
    progress.finish();

    // 4. Exactly the entries the final checkpoint covers.
    if leaf != final_checkpoint.size() {
        return Err(AuditError::EntryCount {
            got: leaf,
            want: final_checkpoint.size(),
        });
    }

    // 5. Cosigned notes.
    let mut cosigned = Vec::new();
    let cosigned_dir = archive.join("cosigned");
    if cosigned_dir.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&cosigned_dir)
            .map_err(io_err(&cosigned_dir))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        files.sort();
        for path in files {
            let bytes = read_file(&path)?;
            cosigned.push(check_cosigned(&path, &bytes, &keys, &pass, options)?);
        }
    }

    // 6. The checkpoint from elsewhere.
    let external = match external {
        None => None,
        Some((path, _, given)) => Some(judge_external(&path, &given, &pass, &final_checkpoint)?),
    };

    Ok(Report {
        keys_from_archive: options.trust.is_none(),
        keys: keys.clone(),
        blocks,
        entries: leaf,
        events: pass.events,
        registrations: pass.registrations,
        revocations: pass.revocations,
        devices: pass.devices.len(),
        gap_fills: pass.gap_fills,
        gaps: pass.open_gaps(),
        equivocations: pass.equivocations.clone(),
        cosigned,
        external,
        checkpoint: final_checkpoint,
    })
}

fn judge_external(
    path: &Path,
    given: &Checkpoint,
    pass: &Pass<'_>,
    final_checkpoint: &Checkpoint,
) -> Result<ExternalVerdict> {
    let archive_size = final_checkpoint.size();
    if given.size() > archive_size {
        return Ok(ExternalVerdict::BeyondArchive {
            size: given.size(),
            archive_size,
        });
    }
    let archive_root = pass.external_root.unwrap_or(Hash32::ZERO);
    if given.root() != archive_root {
        return Err(AuditError::SplitView {
            source_name: path.display().to_string(),
            size: given.size(),
            given: given.root(),
            archive: archive_root,
        });
    }
    Ok(if given.size() == archive_size {
        ExternalVerdict::Same { size: given.size() }
    } else {
        ExternalVerdict::Consistent {
            size: given.size(),
            archive_size,
        }
    })
}

fn check_cosigned(
    path: &Path,
    bytes: &[u8],
    keys: &KeySet,
    pass: &Pass<'_>,
    options: &VerifyOptions,
) -> Result<CosignedNote> {
    let bad = |detail: String| AuditError::Cosigned {
        path: path.to_path_buf(),
        detail,
    };
    let note = SignedNote::parse_bytes(bytes).map_err(|e| bad(e.to_string()))?;
    let checkpoint = Checkpoint::open_note(&note, &keys.gateway).map_err(|e| bad(e.to_string()))?;
    let in_chain = pass
        .targets
        .iter()
        .find(|(_, size, _)| *size == checkpoint.size());
    match in_chain {
        Some((_, _, root)) if *root == checkpoint.root() => {}
        Some((_, _, root)) => {
            return Err(AuditError::SplitView {
                source_name: path.display().to_string(),
                size: checkpoint.size(),
                given: checkpoint.root(),
                archive: *root,
            });
        }
        None => {
            return Err(bad(format!(
                "size {} is not the size of any checkpoint of the chain",
                checkpoint.size()
            )));
        }
    }
    let mut verified = Vec::new();
    for witness in &options.witnesses {
        match note.verify_cosignature(witness) {
            Ok(time) => verified.push((witness.name().to_owned(), time)),
            Err(NoteError::MissingSignature { .. }) => {}
            Err(source) => {
                return Err(AuditError::Cosignature {
                    path: path.to_path_buf(),
                    witness: witness.name().to_owned(),
                    source,
                });
            }
        }
    }
    let unverified_lines = note
        .signatures()
        .iter()
        .filter(|s| {
            let gateway = s.name == keys.gateway.name() && s.key_id == keys.gateway.key_id();
            let witness = options
                .witnesses
                .iter()
                .any(|w| s.name == w.name() && s.key_id == w.key_id());
            !gateway && !witness
        })
        .count();
    if !options.witnesses.is_empty() && unverified_lines > 0 {
        return Err(bad(format!(
            "{unverified_lines} signature line(s) from keys that are neither the gateway's nor a --witness key"
        )));
    }
    Ok(CosignedNote {
        path: path.to_path_buf(),
        size: checkpoint.size(),
        verified,
        unverified_lines,
    })
}
