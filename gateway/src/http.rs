//! The HTTP API (warp): the latest checkpoint, the keys to pin, metrics, the device registry.
//!
//! | route | what |
//! |---|---|
//! | `GET /checkpoint` | the latest signed checkpoint note, `text/plain` (SPEC §6) |
//! | `GET /api/v1/keys` | `{"gateway_key", "operator_keys": {"operator:{name}": base64 SEC1}}` (SPEC §6) |
//! | `GET /metrics` | Prometheus text format |
//! | `POST /api/v1/registry` | an operator-signed registry record (raw COSE_Sign1 bytes) |
//! | `GET /api/v1/devices` | the registry: every device with key, leaves and receipt seq |
//! | `GET /api/v1/entries/{i}` | entry `i`, raw bytes |
//! | `GET /api/v1/proof/{i}` | C2SP tlog-proof of entry `i` against the latest checkpoint |
//! | `GET /01/{GTIN}/21/{serial}`, `/01/{GTIN}/10/{lot}`, `/00/{SSCC}` | the Digital Link resolver: bundle JSON or the page ([`crate::resolver`]) |
//! | `GET /api/v1/labels/{digital link path}.png`, `.svg` | a printable QR label ([`crate::labels`]) |
//! | `GET /`, `GET /scanner/{path}` | the scanner page, its verifier and its `config.json` ([`crate::web`]) |
//! | `GET /api/v1/events`, `/api/v1/export`, `/api/v1/lineage` | auditor endpoints behind bearer tokens ([`crate::auditor_api`]) |
//!
//! Why registry records come in over HTTP and are verified like any other entry: the record
//! is self-authenticating (signed by an operator key pinned in the configuration), so the
//! endpoint needs no credentials of its own, and a gateway cannot admit a key that no trusted
//! operator signed.

use std::convert::Infallible;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, PoisonError};

use prov_ledger::tlog_proof::TlogProof;
use warp::Filter as _;
use warp::http::StatusCode;
use warp::reply::Reply as _;

use crate::pipeline::{Item, RegistryOutcome, Shared, now_ms, receipt_seq};
use crate::resolver::Resolver;

type Resp = warp::reply::Response;

fn text(status: StatusCode, body: String) -> Resp {
    warp::reply::with_status(
        warp::reply::with_header(body, "content-type", "text/plain; charset=utf-8"),
        status,
    )
    .into_response()
}

fn json(status: StatusCode, value: &serde_json::Value) -> Resp {
    warp::reply::with_status(warp::reply::json(value), status).into_response()
}

/// The routes, over the shared state, the pipeline's input and the resolver's state.
pub fn routes(
    shared: Arc<Shared>,
    pipeline: Sender<Item>,
    resolver: Arc<Resolver>,
    tokens: Arc<crate::auth::Tokens>,
) -> impl warp::Filter<Extract = (Resp,), Error = Infallible> + Clone + Send + Sync + 'static {
    let pipeline = Arc::new(Mutex::new(pipeline));
    let with_shared = {
        let s = Arc::clone(&shared);
        warp::any().map(move || Arc::clone(&s))
    };
    let checkpoint = warp::path!("checkpoint")
        .and(warp::get())
        .and(with_shared.clone())
        .map(|s: Arc<Shared>| match s.checkpoint_note() {
            Some(note) => text(StatusCode::OK, note),
            None => text(
                StatusCode::SERVICE_UNAVAILABLE,
                "no checkpoint yet\n".into(),
            ),
        });
    let keys = warp::path!("api" / "v1" / "keys")
        .and(warp::get())
        .and(with_shared.clone())
        .map(|s: Arc<Shared>| json(StatusCode::OK, &crate::web::trust_json(&s)));
    let metrics = warp::path!("metrics")
        .and(warp::get())
        .and(with_shared.clone())
        .map(|s: Arc<Shared>| {
            warp::reply::with_header(
                s.metrics.render(),
                "content-type",
                "text/plain; version=0.0.4",
            )
            .into_response()
        });
    let devices = warp::path!("api" / "v1" / "devices")
        .and(warp::get())
        .and(with_shared.clone())
        .map(|s: Arc<Shared>| match s.indexes.devices() {
            Ok(list) => {
                let items: Vec<serde_json::Value> = list
                    .iter()
                    .map(|(id, state)| {
                        serde_json::json!({
                            "device": id.as_str(),
                            "public_key": hex::encode(state.key.to_sec1_uncompressed()),
                            "fingerprint": state.key.fingerprint().to_hex(),
                            "registered_at": state.registered_at,
                            "revoked_at": state.revoked_at,
                            "receipt_seq": receipt_seq(&s.indexes, id).unwrap_or(0),
                        })
                    })
                    .collect();
                json(StatusCode::OK, &serde_json::Value::Array(items))
            }
            Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
        });
    let entry = warp::path!("api" / "v1" / "entries" / u64)
        .and(warp::get())
        .and(with_shared.clone())
        .map(|i: u64, s: Arc<Shared>| {
            let log = s.log.read().unwrap_or_else(PoisonError::into_inner);
            match log.entry(i) {
                Ok(bytes) => warp::reply::with_header(
                    bytes,
                    "content-type",
                    "application/cose; cose-type=\"cose-sign1\"",
                )
                .into_response(),
                Err(e) => text(StatusCode::NOT_FOUND, format!("{e}\n")),
            }
        });
    let proof = warp::path!("api" / "v1" / "proof" / u64)
        .and(warp::get())
        .and(with_shared.clone())
        .map(|i: u64, s: Arc<Shared>| {
            // The note and the tree are read under one lock, so they agree.
            let log = s.log.read().unwrap_or_else(PoisonError::into_inner);
            let Some(note) = s.checkpoint_note() else {
                return text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "no checkpoint yet\n".into(),
                );
            };
            let size = note
                .lines()
                .nth(1)
                .and_then(|l| l.parse::<u64>().ok())
                .unwrap_or(0);
            if i >= size {
                return text(
                    StatusCode::NOT_FOUND,
                    format!("entry {i} is not in the latest checkpoint (size {size})\n"),
                );
            }
            match log
                .inclusion_proof(i, size)
                .map_err(|e| e.to_string())
                .and_then(|h| TlogProof::new(i, h, note).map_err(|e| e.to_string()))
            {
                Ok(p) => text(StatusCode::OK, p.encode()),
                Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
            }
        });
    let page = crate::web::routes(Arc::clone(&shared));
    let labels = crate::labels::routes(Arc::clone(&resolver));
    let resolve = crate::resolver::routes(Arc::clone(&shared), resolver);
    let auditor = crate::auditor_api::routes(Arc::clone(&shared), tokens);
    let registry = warp::path!("api" / "v1" / "registry")
        .and(warp::post())
        .and(warp::body::content_length_limit(64 * 1024))
        .and(warp::body::bytes())
        .then(move |body: bytes::Bytes| {
            let pipeline = Arc::clone(&pipeline);
            async move {
                let (reply, rx) = tokio::sync::oneshot::channel();
                let item = Item::Registry {
                    message: body.to_vec(),
                    received_ms: now_ms(),
                    reply,
                };
                let sent = pipeline
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .send(item);
                if sent.is_err() {
                    return text(StatusCode::SERVICE_UNAVAILABLE, "pipeline stopped\n".into());
                }
                match rx.await {
                    Ok(RegistryOutcome::Accepted { leaf }) => json(
                        StatusCode::OK,
                        &serde_json::json!({"status": "accepted", "leaf_index": leaf}),
                    ),
                    Ok(RegistryOutcome::Duplicate { leaf }) => json(
                        StatusCode::OK,
                        &serde_json::json!({"status": "duplicate", "leaf_index": leaf}),
                    ),
                    Ok(RegistryOutcome::Rejected { code, detail }) => json(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        &serde_json::json!({"status": "rejected", "code": code.as_str(), "detail": detail}),
                    ),
                    Err(_) => text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "pipeline stopped before deciding\n".into(),
                    ),
                }
            }
        });
    checkpoint
        .or(keys)
        .unify()
        .or(metrics)
        .unify()
        .or(devices)
        .unify()
        .or(entry)
        .unify()
        .or(proof)
        .unify()
        .or(registry)
        .unify()
        .or(labels)
        .unify()
        .or(page)
        .unify()
        .or(resolve)
        .unify()
        .or(auditor)
        .unify()
        .recover(|_rejection: warp::Rejection| async {
            Ok::<_, Infallible>(text(StatusCode::NOT_FOUND, "not found\n".into()))
        })
        .unify()
}
