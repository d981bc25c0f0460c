//! The GS1 Digital Link resolver (SPEC §1, §6): `GET /01/{GTIN}/21/{serial}`,
//! `/01/{GTIN}/10/{lot}`, `/00/{SSCC}`.
//!
//! Why one route for both people and programs: the QR code on a product carries one URI. A
//! phone's browser opening it (`Accept: text/html…`) gets the scanner page, which then fetches
//! the same URI with `Accept: application/json` and verifies the bundle itself; anything else
//! gets the bundle. The qualifier forms a QR code may carry (`/01/{g}/10/{lot}/21/{s}`, query
//! attributes such as `?17=YYMMDD`, lower-case percent-escapes) are mapped to the canonical key
//! before the lookup, exactly as [`DigitalLink::parse`] does for any reader.
//!
//! | answer | when |
//! |---|---|
//! | 200 bundle JSON (+ `lookups`) | known product, a checkpoint exists |
//! | 200 `index.html` | a browser asks (the page shows "unknown product" itself) |
//! | 400 `{"error", "detail"}` | malformed identifier (check digit, characters, AI order) |
//! | 404 `{"error", "detail"}` | well-formed, but no event in the signed log names it |
//! | 503 `{"error", "detail"}` | no checkpoint signed yet |
//!
//! Bundles are public, read-only data that a brand's own page (another origin) may fetch, so
//! they are served with `Access-Control-Allow-Origin: *`. Each bundle served counts as one
//! lookup of the product ([`crate::bundle::Lookups`]); the page itself does not count, so one
//! scan is one lookup.

use std::net::SocketAddr;
use std::sync::Arc;

use prov_schemas::digital_link::{CANONICAL_HOST, DigitalLink};
use warp::Filter as _;
use warp::http::StatusCode;
use warp::reply::Reply as _;

use crate::bundle::{self, BundleError, Lookups, LookupsError};
use crate::config::Config;
use crate::pipeline::Shared;
use crate::web;

type Resp = warp::reply::Response;

/// What the resolver, the labels and the page need besides [`Shared`].
#[derive(Debug)]
pub struct Resolver {
    /// The lookup counters.
    pub lookups: Lookups,
    /// The resolver base URL printed into labels (no trailing slash).
    pub base_url: String,
    /// The bundle cap.
    pub max_bundle_events: usize,
}

impl Resolver {
    /// The resolver of `config`, for a gateway whose HTTP API listens on `http_addr` (the
    /// default base URL; an unspecified address becomes 127.0.0.1).
    pub fn open(config: &Config, http_addr: SocketAddr) -> Result<Resolver, LookupsError> {
        let base_url = match &config.resolver.base_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => {
                let mut addr = http_addr;
                if addr.ip().is_unspecified() {
                    addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
                }
                format!("http://{addr}")
            }
        };
        Ok(Resolver {
            lookups: Lookups::open(&config.lookups_dir())?,
            base_url,
            max_bundle_events: config.resolver.max_bundle_events,
        })
    }
}

/// A JSON error reply `{"error": …, "detail": …}`.
pub fn error(status: StatusCode, error: &str, detail: &str) -> Resp {
    warp::reply::with_status(
        warp::reply::json(&serde_json::json!({"error": error, "detail": detail})),
        status,
    )
    .into_response()
}

/// Whether `accept` prefers HTML over JSON (browsers send `text/html,…,*/*;q=0.8`; programs
/// send `application/json` or `*/*`, which get JSON).
pub fn wants_html(accept: Option<&str>) -> bool {
    let Some(accept) = accept else { return false };
    let (mut html, mut json) = (None::<f32>, None::<f32>);
    for part in accept.split(',') {
        let mut params = part.split(';');
        let media = params
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        let q = params
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|v| v.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        let slot = match media.as_str() {
            "text/html" | "application/xhtml+xml" => &mut html,
            "application/json" => &mut json,
            _ => continue,
        };
        *slot = Some(slot.map_or(q, |old: f32| old.max(q)));
    }
    match (html, json) {
        (Some(h), Some(j)) => h > j,
        (Some(h), None) => h > 0.0,
        _ => false,
    }
}

/// Maps a request path (and query) of the resolver to its canonical identifier.
pub fn parse_request(
    path: &str,
    query: &str,
) -> Result<DigitalLink, prov_schemas::digital_link::DigitalLinkError> {
    let mut uri = String::with_capacity(CANONICAL_HOST.len() + path.len() + query.len() + 1);
    uri.push_str(CANONICAL_HOST);
    uri.push_str(path);
    if !query.is_empty() {
        uri.push('?');
        uri.push_str(query);
    }
    DigitalLink::parse(&uri)
}

fn bundle_reply(shared: &Shared, resolver: &Resolver, product: &DigitalLink) -> Resp {
    match bundle::assemble(shared, product, resolver.max_bundle_events) {
        Ok(mut b) => {
            let lookups = match resolver.lookups.record(product) {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!("lookup counter: {e}");
                    return error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "lookup counter failed",
                        &e.to_string(),
                    );
                }
            };
            b.json.insert("lookups".into(), lookups.into());
            let body = serde_json::Value::Object(b.json);
            let reply = warp::reply::with_header(
                warp::reply::json(&body),
                "access-control-allow-origin",
                "*",
            );
            let reply = warp::reply::with_header(reply, "cache-control", "no-store");
            warp::reply::with_header(reply, "vary", "Accept").into_response()
        }
        Err(e @ BundleError::NoCheckpoint) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "no signed checkpoint yet",
            &e.to_string(),
        ),
        Err(e @ (BundleError::Unknown { .. } | BundleError::NotAProduct { .. })) => {
            error(StatusCode::NOT_FOUND, "unknown product", &e.to_string())
        }
        Err(e) => {
            tracing::error!("bundle of {}: {e}", product.canonical());
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "bundle could not be assembled",
                &e.to_string(),
            )
        }
    }
}

/// The resolver routes: any GET whose path starts with `/01/` or `/00/`.
pub fn routes(
    shared: Arc<Shared>,
    resolver: Arc<Resolver>,
) -> impl warp::Filter<Extract = (Resp,), Error = warp::Rejection> + Clone + Send + Sync + 'static {
    let query = warp::query::raw().or(warp::any().map(String::new)).unify();
    warp::get()
        .and(warp::path::full())
        .and(query)
        .and(warp::header::optional::<String>("accept"))
        .and_then(
            move |full: warp::path::FullPath, query: String, accept: Option<String>| {
                let shared = Arc::clone(&shared);
                let resolver = Arc::clone(&resolver);
                async move {
                    let path = full.as_str();
                    if !(path.starts_with("/01/") || path.starts_with("/00/")) {
                        return Err(warp::reject::not_found());
                    }
                    let product = match parse_request(path, &query) {
                        Ok(p) => p,
                        Err(e) => {
                            return Ok(error(
                                StatusCode::BAD_REQUEST,
                                "malformed identifier",
                                &e.to_string(),
                            ));
                        }
                    };
                    if wants_html(accept.as_deref()) {
                        return Ok(web::index_page());
                    }
                    let reply = tokio::task::spawn_blocking(move || {
                        bundle_reply(&shared, &resolver, &product)
                    })
                    .await
                    .unwrap_or_else(|e| {
                        error(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "bundle task failed",
                            &e.to_string(),
                        )
                    });
                    Ok(reply)
                }
            },
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_prefers_what_the_client_ranks_higher() {
        let chrome = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8";
        assert!(wants_html(Some(chrome)));
        assert!(!wants_html(Some("application/json")));
        assert!(!wants_html(Some("*/*")));
        assert!(!wants_html(None));
        assert!(!wants_html(Some("text/html;q=0.5, application/json")));
        assert!(wants_html(Some("application/json;q=0.1, text/html")));
        assert!(!wants_html(Some("text/html;q=0")));
    }

    #[test]
    fn qualifier_forms_map_to_the_canonical_key() {
        let item = "https://id.gs1.org/01/09506000134352/21/ABC123";
        for (path, query) in [
            ("/01/09506000134352/21/ABC123", ""),
            ("/01/09506000134352/10/LOT1/21/ABC123", ""),
            ("/01/09506000134352/21/ABC123", "17=261231"),
            ("/01/9506000134352/21/ABC123", ""),
        ] {
            assert_eq!(
                parse_request(path, query).map(|l| l.canonical()).ok(),
                Some(item.to_string()),
                "{path}?{query}"
            );
        }
        assert!(parse_request("/01/09506000134353/21/ABC123", "").is_err());
        assert!(parse_request("/01/09506000134352/21/AB%20C", "").is_err());
        assert!(parse_request("/00/106141412345678908", "").is_ok());
        assert!(parse_request("/00/106141412345678909", "").is_err());
    }
}
