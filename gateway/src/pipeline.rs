//! The pipeline: batch → verify → quarantine → sequence → acknowledge → reject lines → publish
//! (integrate, sign, chain block) → index (in the background) → receipts.
//!
//! Why this order (SPEC §3, §5, and the store's durability contract in
//! `prov_ledger::store`): a message is acknowledged to the broker only once it, or its
//! rejection, is durable: rejections are `fdatasync`ed into the quarantine and accepted entries
//! by [`LogStore::sequence`] before any PUBACK leaves. Receipts say "every seq up to N is
//! stored", which is true as soon as the entries are sequenced (they are sent once the batch
//! is also indexed, because they are computed from the indexes). The checkpoint comes last and
//! is signed only by [`publish`], whose compare-and-swap against the durable chain means that a
//! crash anywhere in this loop can never lead to two different roots being signed for one size.
//!
//! The pipeline runs on one dedicated thread that owns every writer (log, chain, quarantine);
//! the sled index batch of batch *n* is applied on a `prov-indexer` thread while the pipeline
//! verifies batch *n + 1* (on its verify workers) against the indexes plus batch *n*'s entries
//! in memory (an [`Overlay`]), so the two cores are busy at once and index writes are off the
//! path to the PUBACK. It receives work through an unbounded channel: the MQTT poll task must
//! never block (FIELD-NOTES), and the broker's in-flight window bounds what can be outstanding.
//! HTTP readers share the log through an `RwLock` (held for writing only during `sequence` and
//! `publish`) and the sled indexes, which are safe for concurrent reads and never lead the log
//! (see [`Pipeline::process`] for the durability contract of each step).

use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prov_ledger::note::{NoteSigner, VerifierKey};
use prov_ledger::store::{ChainStore, LogStore, StoreConfig, StoreError, publish};
use prov_schemas::Hash32;
use prov_schemas::keys::{DeviceId, OperatorName, PublicKey};
use rumqttc::Publish;
use tokio::sync::oneshot;

use crate::config::{BatchConfig, Config};
use crate::index::{IndexError, Indexes};
use crate::metrics::Metrics;
use crate::quarantine::{Quarantine, QuarantineError};
use crate::verify::{
    Decision, Entry, Incoming, LogView, MemoryView, Overlay, RejectCode, Rejection, Verifier,
    parse_event_topic, receipts_topic, rejects_topic,
};

/// A pipeline failure. The pipeline stops on any of these without acknowledging the batch, so
/// the broker redelivers it to the next run.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The log or chain store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The indexes failed.
    #[error("indexes: {0}")]
    Index(#[from] IndexError),
    /// The quarantine failed.
    #[error("quarantine: {0}")]
    Quarantine(#[from] QuarantineError),
    /// The checkpoint key's verifier key could not be derived.
    #[error("gateway key: {0}")]
    Key(String),
    /// The log and the indexes disagree about the next leaf.
    #[error("the log's next leaf is {log} but the batch was verified for leaf {verified}")]
    LeafMismatch {
        /// What `sequence` returned.
        log: u64,
        /// What the batch was verified against.
        verified: u64,
    },
    /// The indexing thread is gone (it panicked).
    #[error("the indexing thread is gone")]
    IndexerPanicked,
    /// The indexing thread could not be started.
    #[error("starting the indexing thread: {0}")]
    Spawn(std::io::Error),
    /// A data directory could not be created.
    #[error("creating {path}: {source}")]
    Dir {
        /// The directory.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Where acknowledgements, receipts and reject lines go (the MQTT client in the service; a
/// recorder in tests).
pub trait Outbox: Send {
    /// Acknowledges `publish`, received on connection `generation` (stale generations must be
    /// dropped: their packet ids may have been reused).
    fn ack(&self, publish: &Publish, generation: u64);
    /// Publishes `payload` on `topic` at QoS 1.
    fn send(&self, topic: String, payload: Vec<u8>);
}

/// An outbox that drops everything (HTTP-only use, tools).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoOutbox;

impl Outbox for NoOutbox {
    fn ack(&self, _: &Publish, _: u64) {}
    fn send(&self, _: String, _: Vec<u8>) {}
}

/// What happened to a registry record posted over HTTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryOutcome {
    /// Appended at `leaf` (and checkpointed).
    Accepted {
        /// Its leaf index.
        leaf: u64,
    },
    /// The same record is already logged at `leaf`.
    Duplicate {
        /// Its leaf index.
        leaf: u64,
    },
    /// Rejected (and quarantined).
    Rejected {
        /// The reason code.
        code: RejectCode,
        /// Details for the operator.
        detail: String,
    },
}

/// One unit of work for the pipeline.
#[derive(Debug)]
pub enum Item {
    /// A message from the broker.
    Mqtt {
        /// The packet (kept whole to acknowledge it).
        publish: Publish,
        /// The connection it arrived on.
        generation: u64,
        /// Receipt time, Unix milliseconds.
        received_ms: u64,
    },
    /// A registry record from the HTTP API.
    Registry {
        /// The COSE_Sign1 record.
        message: Vec<u8>,
        /// Receipt time, Unix milliseconds.
        received_ms: u64,
        /// Where the outcome goes.
        reply: oneshot::Sender<RegistryOutcome>,
    },
    /// Finish the batch in flight and stop.
    Stop,
}

/// State shared with the HTTP readers.
#[derive(Debug)]
pub struct Shared {
    /// The log (written only by the pipeline).
    pub log: RwLock<LogStore>,
    /// The derived indexes.
    pub indexes: Indexes,
    /// The latest signed checkpoint note (served once its chain block is durable).
    pub checkpoint: RwLock<Option<String>>,
    /// Metrics.
    pub metrics: Metrics,
    /// The gateway's checkpoint verifier key.
    pub gateway_key: VerifierKey,
    /// The trusted operators.
    pub operators: BTreeMap<OperatorName, PublicKey>,
}

impl Shared {
    /// The latest signed checkpoint note.
    pub fn checkpoint_note(&self) -> Option<String> {
        self.checkpoint
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The writer side: owns the chain, the quarantine and the signer.
pub struct Pipeline {
    shared: Arc<Shared>,
    chain: ChainStore,
    quarantine: Quarantine,
    signer: NoteSigner,
    verifier: Verifier,
    batch: BatchConfig,
    /// The last batch, sequenced and acknowledged, whose index writes may still be running.
    pending: Option<PendingIndex>,
    indexer: Indexer,
}

/// A sequenced batch being applied to the indexes on the `prov-indexer` thread.
struct PendingIndex {
    /// What its accepted entries change, for verifying the next batch meanwhile.
    delta: MemoryView,
    /// The devices whose receipts are due once it is indexed.
    receipts: Receipts,
}

/// The `prov-indexer` thread: applies one sequenced batch at a time to the sled indexes (one
/// atomic sled batch, not flushed: sled syncs every 500 ms, a graceful stop flushes, and a
/// crash is repaired from the log at the next start) and reports the result. It stops when the
/// pipeline is dropped, and the drop waits for it: once a `Pipeline` is gone, nothing of it
/// holds the log or the indexes any more (a restart in the same process can open them at once).
struct Indexer {
    jobs: Option<std::sync::mpsc::Sender<(u64, Vec<Entry>)>>,
    done: Receiver<Result<(), IndexError>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Indexer {
    fn drop(&mut self) {
        // Closing the job channel ends the thread's loop after the batch in hand.
        self.jobs.take();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the indexer thread panicked");
        }
    }
}

impl Indexer {
    fn start(shared: Arc<Shared>) -> Result<Indexer, PipelineError> {
        let (jobs, job_rx) = std::sync::mpsc::channel::<(u64, Vec<Entry>)>();
        let (done_tx, done) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(String::from("prov-indexer"))
            .spawn(move || {
                for (first_leaf, entries) in job_rx {
                    let result = if entries.is_empty() {
                        Ok(())
                    } else {
                        shared
                            .indexes
                            .apply_batch_unflushed(first_leaf, entries.iter().map(Entry::as_ref))
                    };
                    if done_tx.send(result).is_err() {
                        return;
                    }
                }
            })
            .map_err(PipelineError::Spawn)?;
        Ok(Indexer {
            jobs: Some(jobs),
            done,
            thread: Some(thread),
        })
    }

    fn submit(&self, first_leaf: u64, entries: Vec<Entry>) -> Result<(), PipelineError> {
        self.jobs
            .as_ref()
            .ok_or(PipelineError::IndexerPanicked)?
            .send((first_leaf, entries))
            .map_err(|_| PipelineError::IndexerPanicked)
    }

    fn wait(&self) -> Result<(), PipelineError> {
        self.done
            .recv()
            .map_err(|_| PipelineError::IndexerPanicked)??;
        Ok(())
    }
}

/// Groups of receipts owed, by `(site, device)`.
type Receipts = BTreeMap<(String, DeviceId), ()>;

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("chain_len", &self.chain.len())
            .field("batch", &self.batch)
            .field("indexing", &self.pending.is_some())
            .finish_non_exhaustive()
    }
}

/// Unix milliseconds now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Pipeline {
    /// Opens the stores of `config.data_dir` (recovering them), catches the indexes up with
    /// the log, and signs a checkpoint if the log is ahead of the chain (a crash between
    /// `sequence` and `publish`, or a new log).
    pub fn open(
        config: &Config,
        signer: NoteSigner,
        operators: BTreeMap<OperatorName, PublicKey>,
    ) -> Result<Pipeline, PipelineError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| PipelineError::Dir {
            path: config.data_dir.display().to_string(),
            source,
        })?;
        let gateway_key = signer
            .verifier_key()
            .map_err(|e| PipelineError::Key(e.to_string()))?;
        let mut log = LogStore::open(StoreConfig::new(config.log_dir()))?;
        let recovery = log.recovery().clone();
        if recovery.torn_bytes > 0 || recovery.tree_rebuilt_from_entry.is_some() {
            tracing::warn!(?recovery, "log recovered at open");
        }
        let mut chain = ChainStore::open(&config.chain_path(), &gateway_key)?;
        let indexes = Indexes::open(config.index_dir())?;
        let caught = indexes.indexed_size()?;
        let indexed = indexes.catch_up(&log)?;
        if indexed != caught {
            tracing::info!("indexes caught up from leaf {caught} to {indexed}");
        }
        let (quarantine, report) = Quarantine::open(config.quarantine_path())?;
        if report.cut_bytes > 0 {
            tracing::warn!(?report, "quarantine: torn tail cut at open");
        }
        publish(&mut log, &mut chain, &signer)?;
        let metrics = Metrics::default();
        metrics
            .log_size
            .store(log.size(), std::sync::atomic::Ordering::Relaxed);
        let checkpoint = chain.latest_note().map(str::to_owned);
        if let Some(cp) = chain.latest() {
            metrics
                .checkpoint_size
                .store(cp.size(), std::sync::atomic::Ordering::Relaxed);
        }
        let workers = match config.verify_workers {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        let mut verifier = Verifier::new(operators.clone()).with_workers(workers);
        if let Some(site) = &config.site {
            verifier = verifier.with_site(site.clone());
        }
        let shared = Arc::new(Shared {
            log: RwLock::new(log),
            indexes,
            checkpoint: RwLock::new(checkpoint),
            metrics,
            gateway_key,
            operators,
        });
        let indexer = Indexer::start(Arc::clone(&shared))?;
        Ok(Pipeline {
            shared,
            chain,
            quarantine,
            signer,
            verifier,
            batch: BatchConfig {
                max_entries: config.batch.max_entries.max(1),
                max_delay_ms: config.batch.max_delay_ms,
            },
            pending: None,
            indexer,
        })
    }

    /// The state shared with readers.
    pub fn shared(&self) -> Arc<Shared> {
        Arc::clone(&self.shared)
    }

    /// Runs until [`Item::Stop`] (after finishing the batch in flight) or until every sender
    /// is gone.
    pub fn run(mut self, rx: &Receiver<Item>, outbox: &dyn Outbox) -> Result<(), PipelineError> {
        let delay = Duration::from_millis(self.batch.max_delay_ms);
        loop {
            // Idle: finish the indexing in flight (its receipts go out) before waiting.
            let first = match rx.try_recv() {
                Ok(item) => Ok(item),
                Err(_) => {
                    self.settle(outbox)?;
                    rx.recv()
                }
            };
            let Ok(first) = first else {
                return self.finish(outbox);
            };
            if matches!(first, Item::Stop) {
                return self.finish(outbox);
            }
            let deadline = Instant::now() + delay;
            let mut batch = vec![first];
            let mut stop = false;
            while batch.len() < self.batch.max_entries {
                let wait = deadline.saturating_duration_since(Instant::now());
                match rx.recv_timeout(wait) {
                    Ok(Item::Stop) | Err(RecvTimeoutError::Disconnected) => {
                        stop = true;
                        break;
                    }
                    Ok(item) => batch.push(item),
                    Err(RecvTimeoutError::Timeout) => break,
                }
            }
            self.process(batch, outbox)?;
            if stop {
                return self.finish(outbox);
            }
        }
    }

    /// Processes one batch: verify, quarantine, sequence, acknowledge, reject lines, publish
    /// the checkpoint, then hand the accepted entries to the indexing thread. Returns while
    /// they may still be being indexed: the next call (or [`Pipeline::settle`]) waits for
    /// that, then sends this batch's receipts.
    ///
    /// Durability contract, step by step:
    /// 1. verify (no I/O) against the indexes plus the previous batch's entries (which are in
    ///    the log but maybe not yet indexed: an [`Overlay`] answers for them);
    /// 2. the previous batch's indexing is joined and its receipts are sent (a receipt says
    ///    "stored", which held since its `sequence`; waiting for the index only makes the
    ///    gap/head state it is computed from current);
    /// 3. rejections are appended to the quarantine and `fdatasync`ed;
    /// 4. accepted entries are appended to the log and `fdatasync`ed (`sequence`);
    /// 5. only now PUBACKs (and reject lines) leave: everything acknowledged is durable;
    /// 6. integrate, sign and chain (`publish`: tree hashes and chain block `fdatasync`ed
    ///    before the checkpoint is served);
    /// 7. the entries are applied to the sled indexes on the `prov-indexer` thread, overlapping
    ///    the next batch's verification. Indexes are derived: a crash before their commit
    ///    leaves them behind the log, and [`Pipeline::open`] catches them up from the log.
    ///    They never lead the log, so an HTTP reader never finds an index entry whose leaf is
    ///    not in the log. A batch with a registry record waits for its indexing before the
    ///    HTTP reply, so `device list` right after `device add` sees the device.
    pub fn process(&mut self, batch: Vec<Item>, outbox: &dyn Outbox) -> Result<(), PipelineError> {
        use std::sync::atomic::Ordering::Relaxed;
        let oldest_ms = batch
            .iter()
            .filter_map(|i| match i {
                Item::Mqtt { received_ms, .. } | Item::Registry { received_ms, .. } => {
                    Some(*received_ms)
                }
                Item::Stop => None,
            })
            .min()
            .unwrap_or_else(now_ms);
        let incoming: Vec<Incoming<'_>> = batch
            .iter()
            .filter_map(|item| match item {
                Item::Mqtt {
                    publish,
                    received_ms,
                    ..
                } => Some(Incoming::Event {
                    topic: &publish.topic,
                    message: &publish.payload,
                    received_ms: *received_ms,
                }),
                Item::Registry {
                    message,
                    received_ms,
                    ..
                } => Some(Incoming::Registry {
                    message,
                    received_ms: *received_ms,
                }),
                Item::Stop => None,
            })
            .collect();
        let shared = Arc::clone(&self.shared);
        let next_leaf = shared
            .log
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .size();
        let (decisions, delta) = match self.pending.as_mut() {
            Some(pending) => {
                let view = Overlay::with_delta(
                    &shared.indexes,
                    std::mem::take(&mut pending.delta),
                    next_leaf,
                );
                self.verifier
                    .verify_batch_delta(&view, next_leaf, &incoming)?
            }
            None => self
                .verifier
                .verify_batch_delta(&shared.indexes, next_leaf, &incoming)?,
        };
        self.settle(outbox)?;

        // Rejections: durable in the quarantine before anything is acknowledged.
        let topics: Vec<&str> = batch
            .iter()
            .filter_map(|i| match i {
                Item::Mqtt { publish, .. } => Some(publish.topic.as_str()),
                Item::Registry { .. } => Some("http:/api/v1/registry"),
                Item::Stop => None,
            })
            .collect();
        let rejected: Vec<(&Rejection, &str, &[u8])> = decisions
            .iter()
            .zip(&topics)
            .zip(&incoming)
            .filter_map(|((d, topic), inc)| match d {
                Decision::Reject(r) => Some((r, *topic, incoming_message(inc))),
                _ => None,
            })
            .collect();
        if !rejected.is_empty() {
            self.quarantine.append_batch(&rejected)?;
        }

        // Accepted entries: sequenced durably (indexed after the acknowledgements).
        let accepted: Vec<_> = decisions.iter().filter_map(Decision::accepted).collect();
        if !accepted.is_empty() {
            let messages: Vec<&[u8]> = accepted.iter().map(|a| a.entry.message()).collect();
            let first = shared
                .log
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .sequence(&messages)?;
            if first != next_leaf {
                return Err(PipelineError::LeafMismatch {
                    log: first,
                    verified: next_leaf,
                });
            }
        }
        let mut leaves = Vec::with_capacity(decisions.len());
        let mut leaf = next_leaf;
        for d in &decisions {
            leaves.push(match d {
                Decision::Accept(_) => {
                    leaf += 1;
                    Some(leaf - 1)
                }
                Decision::Duplicate { leaf } => Some(*leaf),
                Decision::Reject(_) => None,
            });
        }

        // Everything of the batch is durable: acknowledge, then tell the devices.
        let mut receipts: Receipts = BTreeMap::new();
        let mut lines: Vec<(String, String)> = Vec::new();
        let mut replies = Vec::new();
        let mut decisions_iter = decisions.iter().zip(&leaves);
        for item in batch {
            let Some((decision, leaf)) = (match item {
                Item::Stop => None,
                _ => decisions_iter.next(),
            }) else {
                continue;
            };
            count(
                &shared.metrics,
                decision,
                matches!(item, Item::Registry { .. }),
            );
            match item {
                Item::Mqtt {
                    publish,
                    generation,
                    ..
                } => {
                    outbox.ack(&publish, generation);
                    let Ok(topic) = parse_event_topic(&publish.topic) else {
                        continue;
                    };
                    match decision {
                        Decision::Accept(_) | Decision::Duplicate { .. } => {
                            receipts.insert((topic.site.to_owned(), topic.device), ());
                        }
                        Decision::Reject(r) => {
                            lines.push((rejects_topic(topic.site, &topic.device), r.line()));
                        }
                    }
                }
                Item::Registry { reply, .. } => {
                    let outcome = match (decision, leaf) {
                        (Decision::Accept(_), Some(l)) => RegistryOutcome::Accepted { leaf: *l },
                        (Decision::Duplicate { leaf }, _) => {
                            RegistryOutcome::Duplicate { leaf: *leaf }
                        }
                        (Decision::Reject(r), _) => RegistryOutcome::Rejected {
                            code: r.code,
                            detail: r.detail.clone(),
                        },
                        (Decision::Accept(_), None) => RegistryOutcome::Rejected {
                            code: RejectCode::BadRegistry,
                            detail: String::from("internal: no leaf"),
                        },
                    };
                    replies.push((reply, outcome));
                }
                Item::Stop => {}
            }
        }
        for (topic, line) in lines {
            outbox.send(topic, line.into_bytes());
        }

        // Integrate, sign, chain.
        let signed = {
            let mut log = shared.log.write().unwrap_or_else(PoisonError::into_inner);
            let signed = publish(&mut log, &mut self.chain, &self.signer)?;
            shared.metrics.log_size.store(log.size(), Relaxed);
            if let Ok(usage) = log.disk_usage() {
                shared.metrics.log_bytes.store(usage.total(), Relaxed);
            }
            signed
        };
        if let Some(cp) = signed {
            shared.metrics.checkpoint_size.store(cp.size(), Relaxed);
            *shared
                .checkpoint
                .write()
                .unwrap_or_else(PoisonError::into_inner) =
                self.chain.latest_note().map(str::to_owned);
        }
        shared.metrics.batches.fetch_add(1, Relaxed);
        let elapsed_ms = now_ms().saturating_sub(oldest_ms);
        shared
            .metrics
            .observe_latency(Duration::from_millis(elapsed_ms).as_secs_f64());

        // Index the entries in the background; receipts once they are indexed.
        let entries: Vec<Entry> = decisions
            .into_iter()
            .filter_map(|d| match d {
                Decision::Accept(a) => Some(a.entry),
                _ => None,
            })
            .collect();
        self.indexer.submit(next_leaf, entries)?;
        self.pending = Some(PendingIndex { delta, receipts });
        if !replies.is_empty() {
            self.settle(outbox)?;
        }
        for (reply, outcome) in replies {
            let _ = reply.send(outcome);
        }
        Ok(())
    }

    /// The end of a graceful run: the indexing in flight is finished and the indexes are
    /// flushed, so the next start has nothing to catch up.
    fn finish(&mut self, outbox: &dyn Outbox) -> Result<(), PipelineError> {
        self.settle(outbox)?;
        self.shared.indexes.flush()?;
        Ok(())
    }

    /// Waits for the indexing in flight, if any, then sends its batch's receipts (computed
    /// from the indexes, now current). A failed index commit stops the pipeline: the entries
    /// are in the log, so the next start catches the indexes up (or reports why not).
    pub fn settle(&mut self, outbox: &dyn Outbox) -> Result<(), PipelineError> {
        let Some(pending) = self.pending.take() else {
            return Ok(());
        };
        self.indexer.wait()?;
        for ((site, device), ()) in pending.receipts {
            let seq = receipt_seq(&self.shared.indexes, &device)?;
            if seq > 0 {
                outbox.send(receipts_topic(&site, &device), seq.to_string().into_bytes());
            }
        }
        Ok(())
    }
}

fn incoming_message<'a>(incoming: &Incoming<'a>) -> &'a [u8] {
    match *incoming {
        Incoming::Event { message, .. } | Incoming::Registry { message, .. } => message,
    }
}

fn count(metrics: &Metrics, decision: &Decision, registry: bool) {
    use std::sync::atomic::Ordering::Relaxed;
    match decision {
        Decision::Accept(_) if registry => {
            metrics.registry_accepted.fetch_add(1, Relaxed);
        }
        Decision::Accept(_) => {
            metrics.events_accepted.fetch_add(1, Relaxed);
        }
        Decision::Duplicate { .. } => {
            metrics.events_duplicate.fetch_add(1, Relaxed);
        }
        Decision::Reject(r) => metrics.reject(r.code),
    }
}

/// The receipt for `device` (SPEC §3): the highest seq such that every seq up to it is stored,
/// where a recorded gap counts as **closed** when the message after it chains over it (its
/// `prov:prev` is the BLAKE3 of the message before the gap, or zero when the gap starts at seq
/// 1): a device that lost power after reserving a seq but before storing its message skips
/// that seq for good, and its queue must not block on it. An open gap (the message after it
/// does not chain) holds the receipt at the seq before the gap. 0 when nothing is stored.
pub fn receipt_seq(indexes: &Indexes, device: &DeviceId) -> Result<u64, IndexError> {
    let Some(head) = indexes.head(device)? else {
        return Ok(0);
    };
    for (from, to) in indexes.gaps(device)? {
        let before = if from <= 1 {
            Some(Hash32::ZERO)
        } else {
            indexes.link(device, from - 1)?.map(|l| l.hash)
        };
        let after = indexes.link(device, to.saturating_add(1))?;
        let closed = matches!((before, after), (Some(b), Some(a)) if a.prev == b);
        if !closed {
            return Ok(from.saturating_sub(1));
        }
    }
    Ok(head)
}
