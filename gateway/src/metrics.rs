//! Prometheus metrics, hand-written in the text exposition format.
//!
//! Why hand-written: a dozen counters and one histogram do not justify a metrics framework;
//! atomics updated by the pipeline and one renderer for `GET /metrics` are enough.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::verify::RejectCode;

/// Upper bounds (seconds) of the batch latency histogram buckets.
pub const LATENCY_BUCKETS: [f64; 10] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The gateway's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Events accepted into the log.
    pub events_accepted: AtomicU64,
    /// Messages that were already logged (idempotent redeliveries).
    pub events_duplicate: AtomicU64,
    /// Registry records accepted.
    pub registry_accepted: AtomicU64,
    /// Batches processed.
    pub batches: AtomicU64,
    /// Entries in the log.
    pub log_size: AtomicU64,
    /// Size of the latest signed checkpoint.
    pub checkpoint_size: AtomicU64,
    /// Bytes on disk of the log.
    pub log_bytes: AtomicU64,
    /// 1 while connected to the broker.
    pub mqtt_connected: AtomicU64,
    /// Connections made to the broker.
    pub mqtt_connects: AtomicU64,
    /// Messages received from the broker.
    pub mqtt_received: AtomicU64,
    rejected: Mutex<BTreeMap<RejectCode, u64>>,
    latency: Mutex<Histogram>,
}

#[derive(Debug, Default)]
struct Histogram {
    buckets: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Metrics {
    /// Counts one rejection.
    pub fn reject(&self, code: RejectCode) {
        let mut map = self
            .rejected
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *map.entry(code).or_default() += 1;
    }

    /// Rejections of `code` so far.
    pub fn rejected(&self, code: RejectCode) -> u64 {
        self.rejected
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&code)
            .copied()
            .unwrap_or(0)
    }

    /// Records one batch latency: from the receipt of its oldest message to its checkpoint.
    pub fn observe_latency(&self, seconds: f64) {
        let mut h = self
            .latency
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        h.count += 1;
        h.sum += seconds;
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            if seconds <= *bound
                && let Some(b) = h.buckets.get_mut(i)
            {
                *b += 1;
            }
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut counter = |name: &str, help: &str, kind: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        counter(
            "prov_events_accepted_total",
            "Device events accepted into the log.",
            "counter",
            get(&self.events_accepted),
        );
        counter(
            "prov_events_duplicate_total",
            "Messages already in the log (stored once).",
            "counter",
            get(&self.events_duplicate),
        );
        counter(
            "prov_registry_accepted_total",
            "Registry records accepted into the log.",
            "counter",
            get(&self.registry_accepted),
        );
        counter(
            "prov_batches_total",
            "Batches sequenced.",
            "counter",
            get(&self.batches),
        );
        counter(
            "prov_log_size",
            "Entries in the log.",
            "gauge",
            get(&self.log_size),
        );
        counter(
            "prov_checkpoint_size",
            "Tree size of the latest signed checkpoint.",
            "gauge",
            get(&self.checkpoint_size),
        );
        counter(
            "prov_log_bytes",
            "Bytes on disk of the log (entries and tree).",
            "gauge",
            get(&self.log_bytes),
        );
        counter(
            "prov_mqtt_connected",
            "1 while connected to the broker.",
            "gauge",
            get(&self.mqtt_connected),
        );
        counter(
            "prov_mqtt_connects_total",
            "Connections made to the broker.",
            "counter",
            get(&self.mqtt_connects),
        );
        counter(
            "prov_mqtt_received_total",
            "Messages received from the broker.",
            "counter",
            get(&self.mqtt_received),
        );
        let _ = writeln!(
            out,
            "# HELP prov_events_rejected_total Messages rejected, by reason code.\n# TYPE prov_events_rejected_total counter"
        );
        {
            let map = self
                .rejected
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for code in RejectCode::ALL {
                let n = map.get(&code).copied().unwrap_or(0);
                let _ = writeln!(out, "prov_events_rejected_total{{reason=\"{code}\"}} {n}");
            }
        }
        let h = self
            .latency
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = writeln!(
            out,
            "# HELP prov_batch_latency_seconds From the receipt of a batch's oldest message to its signed checkpoint.\n# TYPE prov_batch_latency_seconds histogram"
        );
        for (bound, n) in LATENCY_BUCKETS.iter().zip(h.buckets) {
            let _ = writeln!(
                out,
                "prov_batch_latency_seconds_bucket{{le=\"{bound}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "prov_batch_latency_seconds_bucket{{le=\"+Inf\"}} {}\nprov_batch_latency_seconds_sum {}\nprov_batch_latency_seconds_count {}",
            h.count, h.sum, h.count
        );
        out
    }
}
