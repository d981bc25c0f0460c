//! The auditor's HTTP endpoints, behind bearer tokens ([`crate::auth`]).
//!
//! | route | scope | what |
//! |---|---|---|
//! | `GET /api/v1/events?{EPCIS query}` | auditor | an `EPCISQueryDocument` of the matching events, each with its signed message and its tlog-proof against the latest checkpoint ([`crate::epcis`]) |
//! | `GET /api/v1/export?{EPCIS query}` | auditor | the same events as an `EPCISDocument` |
//! | `GET /api/v1/lineage?id={Digital Link}&direction=back\|forward[&depth=N][&from=T][&to=T]` | auditor | a lineage trace ([`crate::lineage`]): nodes, edges with their time windows, and every event it rests on with its tlog-proof |
//!
//! Both answer against the latest signed checkpoint: the events are those of the log up to its
//! size, the proofs are against it, and it is carried in the document (`prov:checkpoint`), so
//! an auditor can check every event without asking the gateway anything else. Paging: at most
//! `perPage` events per answer; `prov:nextPageToken` in the document (and the
//! `Link: <…>; rel="next"` header) says where the next page starts.
//!
//! Errors carry no data: 401 (no token, unknown or revoked) with `WWW-Authenticate: Bearer`,
//! 403 (a token of too small a scope), 400 naming the bad query parameter, 503 before the first
//! checkpoint.

use std::convert::Infallible;
use std::sync::{Arc, PoisonError};

use base64::Engine as _;
use prov_ledger::checkpoint::Checkpoint;
use prov_ledger::tlog_proof::TlogProof;
use prov_schemas::digital_link::DigitalLink;
use prov_schemas::event::EventTime;
use serde_json::{Value, json};
use warp::Filter as _;
use warp::http::StatusCode;
use warp::reply::Reply as _;

use crate::auth::{Access, Scope, Tokens};
use crate::epcis::{self, EventQuery};
use crate::lineage::{self, Bounds, Direction};
use crate::pipeline::{Shared, now_ms};

type Resp = warp::reply::Response;

fn error(status: StatusCode, error: &str, detail: &str) -> Resp {
    let body = warp::reply::json(&json!({"error": error, "detail": detail}));
    let r = warp::reply::with_status(body, status);
    if status == StatusCode::UNAUTHORIZED {
        warp::reply::with_header(r, "www-authenticate", "Bearer").into_response()
    } else {
        r.into_response()
    }
}

/// Which document an endpoint answers with.
#[derive(Debug, Clone, Copy)]
enum Shape {
    Query,
    Document,
}

/// The auditor routes over the shared state and the token set.
pub fn routes(
    shared: Arc<Shared>,
    tokens: Arc<Tokens>,
) -> impl warp::Filter<Extract = (Resp,), Error = warp::Rejection> + Clone + Send + Sync + 'static {
    let with = move || {
        let s = Arc::clone(&shared);
        let t = Arc::clone(&tokens);
        warp::any().map(move || (Arc::clone(&s), Arc::clone(&t)))
    };
    // What every auditor route takes: a GET, the bearer token, the raw query, the state.
    let request = warp::get()
        .and(warp::header::optional::<String>("authorization"))
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(with());
    let events = warp::path!("api" / "v1" / "events")
        .and(request.clone())
        .and_then(
            |auth: Option<String>, qs: String, (s, t): (Arc<Shared>, Arc<Tokens>)| async move {
                Ok::<_, Infallible>(answer(&s, &t, auth.as_deref(), &qs, Shape::Query))
            },
        );
    let export = warp::path!("api" / "v1" / "export")
        .and(request.clone())
        .and_then(
            |auth: Option<String>, qs: String, (s, t): (Arc<Shared>, Arc<Tokens>)| async move {
                Ok::<_, Infallible>(answer(&s, &t, auth.as_deref(), &qs, Shape::Document))
            },
        );
    let lineage = warp::path!("api" / "v1" / "lineage").and(request).and_then(
        |auth: Option<String>, qs: String, (s, t): (Arc<Shared>, Arc<Tokens>)| async move {
            Ok::<_, Infallible>(lineage_answer(&s, &t, auth.as_deref(), &qs))
        },
    );
    events.or(export).unify().or(lineage).unify()
}

/// The token check every auditor endpoint starts with: `Err` is the reply.
fn require(tokens: &Tokens, authorization: Option<&str>, scope: Scope) -> Result<(), Box<Resp>> {
    match tokens.check(authorization, scope) {
        Access::Granted => Ok(()),
        Access::Unauthenticated => Err(Box::new(error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "an auditor token is required",
        ))),
        Access::Forbidden => Err(Box::new(error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this token's scope does not allow it",
        ))),
    }
}

/// The latest checkpoint note and its size; `Err` is the reply.
fn anchor(shared: &Shared) -> Result<(String, u64), Box<Resp>> {
    let Some(note) = shared.checkpoint_note() else {
        return Err(Box::new(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "no checkpoint yet",
            "the log has no signed checkpoint yet",
        )));
    };
    match Checkpoint::open(&note, &shared.gateway_key) {
        Ok(c) => Ok((note, c.size())),
        Err(e) => {
            tracing::error!("own checkpoint does not open: {e}");
            Err(Box::new(error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "checkpoint",
            )))
        }
    }
}

fn iso(ms: u64) -> Value {
    if ms == u64::MAX {
        return Value::Null;
    }
    EventTime::from_unix_millis(ms).map_or(Value::Null, |t| t.as_str().into())
}

/// Parses the lineage query: `id` (any Digital Link form), `direction`, `depth` (1–16,
/// default 3), `from`/`to` (times as `GE_eventTime` takes them).
fn lineage_query(qs: &str) -> Result<(DigitalLink, Direction, Bounds), String> {
    let params = epcis::params_from_query_string(qs).map_err(|e| e.to_string())?;
    let mut id = None;
    let mut direction = None;
    let mut bounds = Bounds {
        max_depth: 3,
        ..Bounds::default()
    };
    for (k, v) in &params {
        match k.as_str() {
            "id" => id = Some(DigitalLink::parse(v).map_err(|e| format!("id: {e}"))?),
            "direction" => {
                direction = Some(match v.as_str() {
                    "back" => Direction::Back,
                    "forward" => Direction::Forward,
                    _ => return Err(format!("direction: want back or forward, got {v:?}")),
                });
            }
            "depth" => {
                bounds.max_depth = v
                    .parse()
                    .ok()
                    .filter(|d| (1..=16).contains(d))
                    .ok_or_else(|| format!("depth: want 1..=16, got {v:?}"))?;
            }
            "from" | "to" => {
                let q = EventQuery::parse([(
                    if k == "from" {
                        "GE_eventTime"
                    } else {
                        "LT_eventTime"
                    },
                    v.as_str(),
                )])
                .map_err(|e| format!("{k}: {e}"))?;
                if k == "from" {
                    bounds.window.from = q.from_ms.unwrap_or(0);
                } else {
                    bounds.window.to = q.to_ms.unwrap_or(u64::MAX);
                }
            }
            _ => return Err(format!("unknown parameter {k:?}")),
        }
    }
    let id = id.ok_or("id: missing")?;
    let direction = direction.ok_or("direction: missing (back or forward)")?;
    if bounds.window.from >= bounds.window.to {
        return Err("from must be before to".into());
    }
    Ok((id, direction, bounds))
}

fn lineage_answer(shared: &Shared, tokens: &Tokens, authorization: Option<&str>, qs: &str) -> Resp {
    if let Err(r) = require(tokens, authorization, Scope::Auditor) {
        return *r;
    }
    let (id, direction, bounds) = match lineage_query(qs) {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad query", &e),
    };
    let (note, size) = match anchor(shared) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let graph = match lineage::trace(&shared.indexes, &id, direction, bounds) {
        Ok(g) => g,
        Err(e) => {
            tracing::error!("lineage trace failed: {e}");
            return error(StatusCode::INTERNAL_SERVER_ERROR, "internal", "index read");
        }
    };
    if graph.nodes.len() == 1 && graph.nodes[0].leaves.is_empty() && graph.edges.is_empty() {
        return error(
            StatusCode::NOT_FOUND,
            "unknown identifier",
            "no event in the log names it",
        );
    }
    let log = shared.log.read().unwrap_or_else(PoisonError::into_inner);
    let mut entries = Vec::new();
    let mut not_yet_checkpointed = 0u64;
    for leaf in graph.leaves() {
        if leaf >= size {
            not_yet_checkpointed += 1;
            continue;
        }
        let proof = log
            .entry(leaf)
            .ok()
            .zip(log.inclusion_proof(leaf, size).ok())
            .and_then(|(entry, hashes)| {
                let p = TlogProof::new(leaf, hashes, note.clone()).ok()?;
                Some((entry, p.encode()))
            });
        let Some((entry, proof)) = proof else {
            tracing::error!("no entry or proof for leaf {leaf} at size {size}");
            return error(StatusCode::INTERNAL_SERVER_ERROR, "internal", "proof");
        };
        entries.push(json!({
            "leaf_index": leaf,
            "cose": base64::engine::general_purpose::STANDARD.encode(entry),
            "proof": proof,
        }));
    }
    drop(log);
    let nodes: Vec<Value> = graph
        .nodes
        .iter()
        .map(|n| {
            json!({
                "id": n.id,
                "kind": format!("{:?}", n.kind).to_lowercase(),
                "depth": n.depth,
                "windows": n.windows.iter().map(|w| json!({"from": iso(w.from), "to": iso(w.to)})).collect::<Vec<_>>(),
                "leaves": n.leaves,
            })
        })
        .collect();
    let edges: Vec<Value> = graph
        .edges
        .iter()
        .map(|e| {
            json!({
                "from": e.from, "to": e.to, "kind": e.kind.as_str(),
                "window": {"from": iso(e.window.from), "to": iso(e.window.to)},
                "leaves": e.leaves,
            })
        })
        .collect();
    warp::reply::json(&json!({
        "root": graph.root,
        "direction": match direction { Direction::Back => "back", Direction::Forward => "forward" },
        "depth": bounds.max_depth,
        "window": {"from": iso(bounds.window.from), "to": iso(bounds.window.to)},
        "truncated": graph.truncated,
        "checkpoint": note,
        "nodes": nodes,
        "edges": edges,
        "entries": entries,
        "not_yet_checkpointed": not_yet_checkpointed,
    }))
    .into_response()
}

fn answer(
    shared: &Shared,
    tokens: &Tokens,
    authorization: Option<&str>,
    qs: &str,
    shape: Shape,
) -> Resp {
    if let Err(r) = require(tokens, authorization, Scope::Auditor) {
        return *r;
    }
    let query = match epcis::params_from_query_string(qs)
        .and_then(|params| EventQuery::parse(params.iter().map(|(k, v)| (k.as_str(), v.as_str()))))
    {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad query", &e.to_string()),
    };
    let (note, size) = match anchor(shared) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let log = shared.log.read().unwrap_or_else(PoisonError::into_inner);
    let page = match epcis::query(&log, size, &query) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!("EPCIS query over the log failed: {e}");
            return error(StatusCode::INTERNAL_SERVER_ERROR, "internal", "log read");
        }
    };
    let mut events = Vec::with_capacity(page.events.len());
    for e in &page.events {
        let proof = log
            .inclusion_proof(e.leaf, size)
            .ok()
            .and_then(|hashes| TlogProof::new(e.leaf, hashes, note.clone()).ok())
            .map(|p| p.encode());
        if proof.is_none() {
            tracing::error!("no inclusion proof for leaf {} at size {size}", e.leaf);
            return error(StatusCode::INTERNAL_SERVER_ERROR, "internal", "proof");
        }
        events.push(epcis::event_json(e, proof.as_deref()));
    }
    drop(log);
    let mut doc = match shape {
        Shape::Query => epcis::query_document("SimpleEventQuery", &events, Some(&note), now_ms()),
        Shape::Document => epcis::document(&events, Some(&note), now_ms()),
    };
    let next = page.next_page_token;
    if let (Some(n), Value::Object(map)) = (next, &mut doc) {
        map.insert("prov:nextPageToken".into(), n.to_string().into());
    }
    let reply = warp::reply::json(&doc);
    match next {
        Some(n) => {
            let link = format!("<?{}>; rel=\"next\"", with_token(qs, n));
            warp::reply::with_header(reply, "link", link).into_response()
        }
        None => reply.into_response(),
    }
}

/// `qs` with its `nextPageToken` replaced by `n`.
fn with_token(qs: &str, n: u64) -> String {
    let mut parts: Vec<String> = qs
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("nextPageToken="))
        .map(str::to_owned)
        .collect();
    parts.push(format!("nextPageToken={n}"));
    parts.join("&")
}
