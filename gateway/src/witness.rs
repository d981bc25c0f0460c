//! A C2SP `tlog-witness` for our BLAKE3 logs (SPEC §5): `POST /add-checkpoint`, answered with a
//! `tlog-cosignature` v1 line; and [`submit_checkpoint`], the client a log uses to ask for it.
//!
//! Why a witness: a gateway could show one history to a consumer's phone and another to an
//! auditor (a split view). A witness cosigns a checkpoint only if it is consistent with the last
//! one it cosigned for that log, so two witnessed views of one log are always consistent, and a
//! log that forks is caught with its own signatures as evidence.
//!
//! The decision is the pure [`prov_ledger::witness::check_add_checkpoint`]; this module adds the
//! I/O, under one lock so that checking `old` against the state and recording the new state are
//! atomic (C2SP's rollback race):
//! - the new state is persisted **before** the answer: write a temporary file, `fsync` it,
//!   rename it over the state file, `fsync` the directory;
//! - a refusal that proves a split view (same size, another root; or a consistency proof that
//!   does not verify from the witnessed checkpoint, under a valid log signature) writes an
//!   evidence file holding both signed notes and the request, durably, before the answer; the
//!   witnessed state is left unchanged.
//!
//! # Data directory
//!
//! ```text
//! witness.key            the Ed25519 seed, 64 hex digits (mode 0600, never overwritten)
//! witness.toml           name = "witness.example/w1"; logs = ["{log verifier key}", ...]
//! state/{id}.note        per log (id = first 16 bytes of BLAKE3(origin), hex): the last
//!                        cosigned checkpoint note, exactly as submitted
//! evidence/{ns}-{id}.txt split-view evidence (see [`Witness::add_checkpoint`])
//! ```
//!
//! A log is identified by its checkpoint verifier key (SPEC §5), whose name is the origin;
//! `prov witness run --log KEY` adds logs to those of `witness.toml`.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fs::File;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prov_ledger::checkpoint::Checkpoint;
use prov_ledger::note::{CosignatureSigner, KeyError, NoteError, NoteSignature, VerifierKey};
use prov_ledger::witness::{
    ADD_CHECKPOINT_PATH, AddCheckpoint, ResponseError, SIZE_CONTENT_TYPE, WitnessError,
    check_add_checkpoint, encode_add_checkpoint, encode_cosignature_lines, parse_cosignature_lines,
};
use prov_schemas::Hash32;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use warp::Filter as _;
use warp::reply::Reply as _;

use crate::keys::{self, KeyFileError};

/// The witness's seed file in its data directory.
pub const KEY_FILE: &str = "witness.key";
/// The witness's configuration file in its data directory.
pub const CONFIG_FILE: &str = "witness.toml";
/// Largest request body accepted (a note with 100 signature lines and 63 proof lines fits).
pub const MAX_BODY: u64 = 64 * 1024;

/// The witness could not start or could not record its state.
#[derive(Debug, thiserror::Error)]
pub enum WitnessServiceError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The witness key file.
    #[error("{0}")]
    Key(#[from] KeyFileError),
    /// `witness.toml` is missing or invalid.
    #[error("{}: {detail}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A configured log key is not a valid Ed25519 verifier key.
    #[error("log key {key:?}: {source}")]
    LogKey {
        /// The key string.
        key: String,
        /// Why it is invalid.
        source: KeyError,
    },
    /// Two configured keys for one origin.
    #[error("two keys configured for log {origin:?}: {first} and {second}")]
    DuplicateLog {
        /// The origin.
        origin: String,
        /// The first key.
        first: String,
        /// The second key.
        second: String,
    },
    /// A stored state file does not hold a checkpoint signed by its log's configured key.
    #[error("state file {}: {detail}", path.display())]
    State {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The HTTP listener could not be bound.
    #[error("listening on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The server task died.
    #[error("witness server: {0}")]
    Internal(String),
}

type Result<T, E = WitnessServiceError> = std::result::Result<T, E>;

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> WitnessServiceError + '_ {
    move |source| WitnessServiceError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The content of `witness.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessFile {
    /// The witness's name (its cosignature key name, e.g. `witness.example/w1`).
    pub name: String,
    /// The logs it witnesses: their checkpoint verifier keys (the key name is the origin).
    #[serde(default)]
    pub logs: Vec<String>,
}

/// Creates a witness in `data_dir`: a new Ed25519 key (0600) and `witness.toml` naming it.
/// Returns its cosignature verifier key (type 0x04), which logs and verifiers pin.
///
/// # Errors
/// An invalid name; existing files (never overwritten); I/O.
pub fn init(data_dir: &Path, name: &str) -> Result<VerifierKey> {
    std::fs::create_dir_all(data_dir).map_err(io_err(data_dir))?;
    let config_path = data_dir.join(CONFIG_FILE);
    if config_path.exists() {
        return Err(WitnessServiceError::Config {
            path: config_path,
            detail: String::from("exists (never overwritten)"),
        });
    }
    let seed = keys::random_32()?;
    // Validate the name before writing anything.
    let signer = CosignatureSigner::from_seed(name, &seed).map_err(|source| {
        WitnessServiceError::LogKey {
            key: name.to_owned(),
            source,
        }
    })?;
    keys::write_key_file(&data_dir.join(KEY_FILE), &seed)?;
    let file = WitnessFile {
        name: name.to_owned(),
        logs: Vec::new(),
    };
    let text = toml::to_string_pretty(&file).map_err(|e| WitnessServiceError::Config {
        path: config_path.clone(),
        detail: e.to_string(),
    })?;
    write_durably(&config_path, text.as_bytes())?;
    signer
        .verifier_key()
        .map_err(|source| WitnessServiceError::LogKey {
            key: name.to_owned(),
            source,
        })
}

/// Writes `bytes` to `path` atomically and durably: a temporary file in the same directory,
/// `fsync`, rename over `path`, `fsync` of the directory.
///
/// # Errors
/// I/O errors, naming the file.
pub fn write_durably(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut file = File::create(&tmp).map_err(io_err(&tmp))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(io_err(&tmp))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(io_err(path))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// The file name stem of a log's state and evidence files.
pub fn log_id(origin: &str) -> String {
    hex::encode(&Hash32::blake3(origin.as_bytes()).0[..16])
}

/// One answer of the witness: status, content type and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// Body.
    pub body: String,
}

impl Answer {
    fn text(status: u16, body: String) -> Answer {
        Answer {
            status,
            content_type: "text/plain; charset=utf-8",
            body,
        }
    }
}

/// A witness: its key, the logs it knows, and what it last cosigned for each.
pub struct Witness {
    dir: PathBuf,
    signer: CosignatureSigner,
    logs: BTreeMap<String, VerifierKey>,
    state: Mutex<BTreeMap<String, (Checkpoint, String)>>,
}

impl std::fmt::Debug for Witness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Witness")
            .field("dir", &self.dir)
            .field("name", &self.signer.name())
            .field("logs", &self.logs.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Witness {
    /// Opens the witness of `data_dir` (made by [`init`]), witnessing the logs of its
    /// `witness.toml` and `extra_logs` (verifier key strings), and loads and re-verifies its
    /// state.
    ///
    /// # Errors
    /// A missing or invalid configuration, key or state file.
    pub fn open(data_dir: &Path, extra_logs: &[String]) -> Result<Witness> {
        let config_path = data_dir.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&config_path).map_err(io_err(&config_path))?;
        let file: WitnessFile = toml::from_str(&text).map_err(|e| WitnessServiceError::Config {
            path: config_path.clone(),
            detail: e.to_string(),
        })?;
        let seed = keys::read_key_file(&data_dir.join(KEY_FILE))?;
        let signer = CosignatureSigner::from_seed(&file.name, &seed).map_err(|source| {
            WitnessServiceError::LogKey {
                key: file.name.clone(),
                source,
            }
        })?;
        let mut logs: BTreeMap<String, VerifierKey> = BTreeMap::new();
        for key_text in file.logs.iter().chain(extra_logs) {
            let key = VerifierKey::parse(key_text.trim()).map_err(|source| {
                WitnessServiceError::LogKey {
                    key: key_text.clone(),
                    source,
                }
            })?;
            if key.kind() != prov_ledger::note::KeyKind::Ed25519 {
                return Err(WitnessServiceError::LogKey {
                    key: key_text.clone(),
                    source: KeyError::UnknownType {
                        got: key.kind().sig_type(),
                    },
                });
            }
            match logs.get(key.name()) {
                Some(existing) if existing != &key => {
                    return Err(WitnessServiceError::DuplicateLog {
                        origin: key.name().to_owned(),
                        first: existing.to_string(),
                        second: key.to_string(),
                    });
                }
                _ => {
                    logs.insert(key.name().to_owned(), key);
                }
            }
        }
        for sub in ["state", "evidence"] {
            let d = data_dir.join(sub);
            std::fs::create_dir_all(&d).map_err(io_err(&d))?;
        }
        let mut state = BTreeMap::new();
        for (origin, key) in &logs {
            let path = data_dir
                .join("state")
                .join(format!("{}.note", log_id(origin)));
            if !path.exists() {
                continue;
            }
            let note = std::fs::read_to_string(&path).map_err(io_err(&path))?;
            let checkpoint =
                Checkpoint::open(&note, key).map_err(|e| WitnessServiceError::State {
                    path: path.clone(),
                    detail: format!("does not verify under the configured key {key}: {e}"),
                })?;
            state.insert(origin.clone(), (checkpoint, note));
        }
        Ok(Witness {
            dir: data_dir.to_path_buf(),
            signer,
            logs,
            state: Mutex::new(state),
        })
    }

    /// The witness's cosignature verifier key (type 0x04).
    ///
    /// # Errors
    /// Never for a key made from a seed (kept typed rather than unwrapped).
    pub fn verifier_key(&self) -> Result<VerifierKey, KeyError> {
        self.signer.verifier_key()
    }

    /// The origins this witness knows.
    pub fn origins(&self) -> Vec<String> {
        self.logs.keys().cloned().collect()
    }

    /// The last checkpoint cosigned for `origin`.
    pub fn witnessed(&self, origin: &str) -> Option<Checkpoint> {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(origin)
            .map(|(c, _)| c.clone())
    }

    /// Handles one `add-checkpoint` body at POSIX time `now`: decides, persists (new state or
    /// evidence) and only then returns the answer. An I/O failure while persisting answers 500
    /// and cosigns nothing.
    pub fn add_checkpoint(&self, body: &[u8], now: u64) -> Answer {
        let request = match AddCheckpoint::parse(body) {
            Ok(r) => r,
            Err(e) => return refusal(&WitnessError::Malformed(e)),
        };
        let origin = request.origin().to_owned();
        let Some(key) = self.logs.get(&origin) else {
            return refusal(&WitnessError::UnknownLog { origin });
        };
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let witnessed = state.get(&origin);
        let checkpoint = match check_add_checkpoint(key, witnessed.map(|(c, _)| c), &request) {
            Ok(c) => c,
            Err(e) => {
                if e.is_split_view() {
                    let old_note = witnessed.map_or("", |(_, n)| n.as_str());
                    if let Err(io) = self.keep_evidence(&origin, &e, old_note, body) {
                        tracing::error!("witness: could not keep split-view evidence: {io}");
                        return Answer::text(500, String::from("could not store evidence\n"));
                    }
                    tracing::warn!(%origin, "witness: split view refused: {e}");
                }
                return refusal(&e);
            }
        };
        let note = request.note.encode();
        let path = self
            .dir
            .join("state")
            .join(format!("{}.note", log_id(&origin)));
        if let Err(e) = write_durably(&path, note.as_bytes()) {
            tracing::error!("witness: could not persist state: {e}");
            return Answer::text(500, String::from("could not persist state\n"));
        }
        state.insert(origin, (checkpoint, note));
        drop(state);
        match self.signer.cosign(request.note.text(), now) {
            Ok(line) => Answer::text(200, encode_cosignature_lines(&[line])),
            Err(e) => Answer::text(500, format!("cosigning failed: {e}\n")),
        }
    }

    fn keep_evidence(
        &self,
        origin: &str,
        error: &WitnessError,
        witnessed_note: &str,
        body: &[u8],
    ) -> Result<PathBuf> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path = self
            .dir
            .join("evidence")
            .join(format!("{nanos:020}-{}.txt", log_id(origin)));
        let text = format!(
            "prov witness split-view evidence v1\norigin: {origin}\nreason: {error}\n\
             --- witnessed checkpoint note\n{witnessed_note}--- refused add-checkpoint body\n{}",
            String::from_utf8_lossy(body)
        );
        write_durably(&path, text.as_bytes())?;
        Ok(path)
    }

    /// The evidence files kept so far, oldest first.
    ///
    /// # Errors
    /// I/O.
    pub fn evidence_files(&self) -> Result<Vec<PathBuf>> {
        let dir = self.dir.join("evidence");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(io_err(&dir))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "txt"))
            .collect();
        files.sort();
        Ok(files)
    }
}

fn refusal(error: &WitnessError) -> Answer {
    let content_type = match error {
        WitnessError::OldSizeMismatch { .. } => SIZE_CONTENT_TYPE,
        _ => "text/plain; charset=utf-8",
    };
    Answer {
        status: error.status(),
        content_type,
        body: error.body(),
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A running witness server.
#[derive(Debug)]
pub struct RunningWitness {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningWitness {
    /// Stops the server and waits for it.
    ///
    /// # Errors
    /// The server task panicked.
    pub async fn shutdown(mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task
            .await
            .map_err(|e| WitnessServiceError::Internal(e.to_string()))
    }
}

/// The witness's routes: `POST /add-checkpoint` (anything else: 404).
pub fn routes(
    witness: Arc<Witness>,
) -> impl warp::Filter<Extract = (warp::reply::Response,), Error = Infallible>
+ Clone
+ Send
+ Sync
+ 'static {
    let path = ADD_CHECKPOINT_PATH.trim_start_matches('/');
    warp::path(path)
        .and(warp::path::end())
        .and(warp::post())
        .and(warp::body::content_length_limit(MAX_BODY))
        .and(warp::body::bytes())
        .then(move |body: bytes::Bytes| {
            let witness = Arc::clone(&witness);
            async move {
                // The decision holds a lock and fsyncs: off the async workers.
                let answer =
                    tokio::task::spawn_blocking(move || witness.add_checkpoint(&body, unix_now()))
                        .await
                        .unwrap_or_else(|e| Answer::text(500, format!("internal: {e}\n")));
                reply(answer)
            }
        })
        .recover(|rejection: warp::Rejection| async move {
            let answer = if rejection.is_not_found() {
                Answer::text(404, String::from("not found\n"))
            } else {
                Answer::text(400, format!("bad request: {rejection:?}\n"))
            };
            Ok::<_, Infallible>(reply(answer))
        })
        .unify()
}

fn reply(answer: Answer) -> warp::reply::Response {
    let status = warp::http::StatusCode::from_u16(answer.status)
        .unwrap_or(warp::http::StatusCode::INTERNAL_SERVER_ERROR);
    warp::reply::with_status(
        warp::reply::with_header(answer.body, "content-type", answer.content_type),
        status,
    )
    .into_response()
}

/// Starts the witness server on `listen` (port 0: any free port); must be called inside a
/// tokio runtime.
///
/// # Errors
/// [`WitnessServiceError::Listen`].
pub async fn start(witness: Arc<Witness>, listen: SocketAddr) -> Result<RunningWitness> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| WitnessServiceError::Listen {
            addr: listen,
            source,
        })?;
    let addr = listener
        .local_addr()
        .map_err(|source| WitnessServiceError::Listen {
            addr: listen,
            source,
        })?;
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(
        warp::serve(routes(witness))
            .incoming(listener)
            .graceful(async move {
                let _ = stop_rx.await;
            })
            .run(),
    );
    Ok(RunningWitness {
        addr,
        stop: Some(stop_tx),
        task,
    })
}

/// Submitting a checkpoint to a witness failed.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The URL is not `http://host:port[/prefix]`.
    #[error("witness URL {url:?}: only http://host:port[/prefix] is supported")]
    Url {
        /// The URL given.
        url: String,
    },
    /// Connecting, sending or receiving failed.
    #[error("witness {url}: {source}")]
    Io {
        /// The URL.
        url: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The response is not HTTP/1.1 as expected.
    #[error("witness {url}: malformed HTTP response: {detail}")]
    Http {
        /// The URL.
        url: String,
        /// What is wrong.
        detail: String,
    },
    /// 409 with a size: the witness has cosigned up to `witness_size`; resubmit with that old
    /// size and a proof from it.
    #[error("witness {url}: old size {sent} is stale, the witness is at {witness_size}")]
    Conflict {
        /// The URL.
        url: String,
        /// The old size sent.
        sent: u64,
        /// The witness's size.
        witness_size: u64,
    },
    /// Another refusal (400, 403, 404, 409 on a root, 422, 5xx).
    #[error("witness {url} answered {status}: {body}")]
    Refused {
        /// The URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The body (trimmed).
        body: String,
    },
    /// A 200 whose body is not cosignature lines.
    #[error("witness {url}: bad cosignature lines: {source}")]
    Response {
        /// The URL.
        url: String,
        /// Why.
        source: ResponseError,
    },
    /// The signed note to submit is malformed.
    #[error("the checkpoint note to submit: {0}")]
    Note(NoteError),
}

/// Submits `signed_note` with the consistency proof from `old_size` (the size the witness last
/// cosigned, 0 the first time) to the witness at `witness_url` (`http://host:port[/prefix]`)
/// and returns its signature lines, unverified: verify them with
/// [`prov_ledger::note::SignedNote::verify_cosignature`] under the witness keys you trust, and
/// ignore lines of other keys. Blocking (plain HTTP/1.1 over a `TcpStream`, 30 s timeouts).
///
/// # Errors
/// [`SubmitError::Conflict`] carries the witness's size for a retry; the others are final.
pub fn submit_checkpoint(
    witness_url: &str,
    old_size: u64,
    proof: &[Hash32],
    signed_note: &str,
) -> Result<Vec<NoteSignature>, SubmitError> {
    let note = prov_ledger::note::SignedNote::parse(signed_note).map_err(SubmitError::Note)?;
    let body = encode_add_checkpoint(old_size, proof, signed_note);
    let (status, content_type, response) = post(witness_url, ADD_CHECKPOINT_PATH, body.as_bytes())?;
    let text = String::from_utf8_lossy(&response).into_owned();
    match status {
        200 => {
            parse_cosignature_lines(note.text(), &text).map_err(|source| SubmitError::Response {
                url: witness_url.to_owned(),
                source,
            })
        }
        409 if content_type.starts_with(SIZE_CONTENT_TYPE) => {
            let size = text
                .strip_suffix('\n')
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| SubmitError::Http {
                    url: witness_url.to_owned(),
                    detail: format!("409 body {text:?} is not a size"),
                })?;
            Err(SubmitError::Conflict {
                url: witness_url.to_owned(),
                sent: old_size,
                witness_size: size,
            })
        }
        status => Err(SubmitError::Refused {
            url: witness_url.to_owned(),
            status,
            body: text.trim().to_owned(),
        }),
    }
}

/// One HTTP/1.1 POST (one connection, `Connection: close`): status, content type, body.
fn post(url: &str, path: &str, body: &[u8]) -> Result<(u16, String, Vec<u8>), SubmitError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| SubmitError::Url {
            url: url.to_owned(),
        })?;
    let (host, prefix) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    if host.is_empty() {
        return Err(SubmitError::Url {
            url: url.to_owned(),
        });
    }
    let io = |source| SubmitError::Io {
        url: url.to_owned(),
        source,
    };
    let http = |detail: String| SubmitError::Http {
        url: url.to_owned(),
        detail,
    };
    let mut stream = TcpStream::connect(host).map_err(io)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(io)?;
    stream
        .set_write_timeout(Some(Duration::from_secs(30)))
        .map_err(io)?;
    let head = format!(
        "POST {prefix}{path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).map_err(io)?;
    stream.write_all(body).map_err(io)?;
    let mut response = Vec::new();
    stream
        .take(MAX_BODY * 4)
        .read_to_end(&mut response)
        .map_err(io)?;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| http(String::from("no end of headers")))?;
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| http(String::from("no status line")))?;
    let mut content_type = String::new();
    let mut chunked = false;
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            let name = name.trim().to_ascii_lowercase();
            let value = value.trim();
            if name == "content-type" {
                content_type = value.to_ascii_lowercase();
            } else if name == "transfer-encoding" && value.eq_ignore_ascii_case("chunked") {
                chunked = true;
            }
        }
    }
    let raw = &response[split + 4..];
    let body = if chunked {
        dechunk(raw).ok_or_else(|| http(String::from("bad chunked encoding")))?
    } else {
        raw.to_vec()
    };
    Ok((status, content_type, body))
}

/// Decodes a chunked body; `None` if it is malformed or cut short.
fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let pos = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..pos]).ok()?;
        let size_text = size_text.split(';').next()?.trim();
        let size = usize::from_str_radix(size_text, 16).ok()?;
        let start = pos + 2;
        if size == 0 {
            return Some(out);
        }
        let end = start.checked_add(size)?;
        out.extend_from_slice(data.get(start..end)?);
        data = data.get(end + 2..)?;
    }
}
