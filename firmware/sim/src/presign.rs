//! A pre-signed stream: the same line as [`crate::mqtt::run_line`], without a broker, written to
//! a file, for benchmarks that must not spend CPU on signing (a gateway's ingest rate).
//!
//! # Format
//!
//! A sequence of records, each exactly what a device would publish:
//!
//! ```text
//! u16 big-endian  topic length
//! topic bytes     UTF-8, `prov/v1/{site}/{device_id}/events`
//! u32 big-endian  message length
//! message bytes   the COSE_Sign1 message (SPEC §2)
//! ```
//!
//! Records are in recording order; per device, seqs increase by one and each message's
//! `prov:prev` is the BLAKE3 of the device's previous record. The file has no header or trailer;
//! end of file after a whole record is the end of the stream. The devices' public keys are in
//! `{file}.devices.json` (`[{"device", "public_key", "fingerprint"}]`) so a consumer can register
//! them.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, Result, bail};

use crate::keys::{fingerprint_hex, public_hex};
use crate::line::{DeviceReport, Line, LineConfig, LineReport, Stop};

/// Writes one record.
pub fn write_record(out: &mut impl Write, topic: &str, message: &[u8]) -> io::Result<()> {
    let topic_len = u16::try_from(topic.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "topic longer than 65535"))?;
    let message_len = u32::try_from(message.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "message longer than 4 GiB"))?;
    out.write_all(&topic_len.to_be_bytes())?;
    out.write_all(topic.as_bytes())?;
    out.write_all(&message_len.to_be_bytes())?;
    out.write_all(message)
}

/// Reads the next record; `Ok(None)` at a clean end of stream.
pub fn read_record(input: &mut impl Read) -> io::Result<Option<(String, Vec<u8>)>> {
    let mut len2 = [0u8; 2];
    match input.read_exact(&mut len2) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut topic = vec![0u8; usize::from(u16::from_be_bytes(len2))];
    input.read_exact(&mut topic)?;
    let topic = String::from_utf8(topic)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "topic is not UTF-8"))?;
    let mut len4 = [0u8; 4];
    input.read_exact(&mut len4)?;
    let len = u32::from_be_bytes(len4) as usize;
    if len > prov_schemas::cose::MAX_MESSAGE_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("record of {len} bytes exceeds the 16 KiB message limit"),
        ));
    }
    let mut message = vec![0u8; len];
    input.read_exact(&mut message)?;
    Ok(Some((topic, message)))
}

/// Where the device list of a pre-signed stream at `path` goes.
pub fn devices_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(".devices.json");
    PathBuf::from(name)
}

/// Plays the line of `config` without a broker and writes every message to `path` (refusing to
/// overwrite it). `config.stop` must be a count (a duration works too, measured in signing
/// time). `config.rate` is ignored: the stream is produced as fast as signing allows.
pub fn presign(config: &LineConfig, path: &Path) -> Result<LineReport> {
    if config.stop == Stop::Never {
        bail!("presign needs --count or --duration");
    }
    let Line { mut boards, plan } = Line::build(config)?;
    let file = File::options()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("creating {} (never overwritten)", path.display()))?;
    let mut out = BufWriter::new(file);
    let started = Instant::now();
    let mut report = LineReport::default();
    for step in plan {
        match config.stop {
            Stop::Count(n) if report.events >= n => break,
            Stop::Duration(d) if started.elapsed() >= d => break,
            _ => {}
        }
        let index = Line::board_index(step.line, step.role);
        let Some(board) = boards.get_mut(index) else {
            continue;
        };
        let recorded = board.observe(step.observation);
        for r in &recorded {
            report.count(r);
        }
        if recorded.is_empty() {
            continue;
        }
        let topic = board.topics().events.clone();
        let device = board.device_mut();
        let mut last = device.released();
        for queued in device.outbox() {
            let queued = queued.map_err(|e| anyhow::anyhow!("reading the flash queue: {e}"))?;
            write_record(&mut out, &topic, &queued.message)
                .with_context(|| format!("writing {}", path.display()))?;
            last = queued.seq;
        }
        // Written out: as good as a receipt for this purpose, and it keeps the queue small.
        device
            .on_receipt(last)
            .map_err(|e| anyhow::anyhow!("releasing the queue: {e}"))?;
    }
    out.flush()
        .with_context(|| format!("writing {}", path.display()))?;
    let mut devices = Vec::new();
    for board in &boards {
        report.add_stats(board);
        let device = board.device();
        report.devices.push(DeviceReport {
            device: *device.id(),
            public_key: device.public_key(),
            last_seq: device.chain_head().seq,
            released: device.released(),
            dropped: device.dropped(),
            rejects: 0,
            published: 0,
            connects: 0,
        });
        devices.push(serde_json::json!({
            "device": device.id().as_str(),
            "public_key": public_hex(&device.public_key()),
            "fingerprint": fingerprint_hex(&device.public_key()),
        }));
    }
    let list = devices_path(path);
    std::fs::write(&list, serde_json::to_vec_pretty(&devices)?)
        .with_context(|| format!("writing {}", list.display()))?;
    report.delivered = true;
    report.elapsed = started.elapsed();
    Ok(report)
}
