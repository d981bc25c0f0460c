//! The scanner page, served from the binary (issue 5).
//!
//! Why embedded: `prov demo` (and any gateway) must serve a working page with no hand step and
//! no files beside the binary. `build.rs` builds the wasm verifier (through
//! `scanner-web/build-wasm.sh`) and embeds every file of `scanner-web/www/`; this module serves
//! them:
//!
//! | route | what |
//! |---|---|
//! | `GET /`, `GET /scanner/` | the page (`index.html`) |
//! | `GET /scanner/{path}` | `scanner-web/www/{path}` |
//! | `GET /scanner/verifier.js` | `scanner-web/js/verifier.js`, the wasm loader |
//! | `GET /scanner/verifier.wasm` | the wasm verifier (`application/wasm`) |
//! | `GET /scanner/config.json` | `{"resolver": "", "trust": {gateway_key, operator_keys}}` |
//!
//! `config.json` is this gateway's own keys (the shape of `GET /api/v1/keys`), with the resolver
//! on the same origin (`""`). A brand hosting the page elsewhere pins its keys in its own copy
//! of that file: the page never takes keys from a bundle.

use std::sync::Arc;

use base64::Engine as _;
use warp::Filter as _;
use warp::http::StatusCode;
use warp::reply::Reply as _;

use crate::pipeline::Shared;
use crate::resolver::error;

type Resp = warp::reply::Response;

#[allow(missing_docs)]
mod assets {
    include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));
}

pub use assets::{PAGE_FILES, VERIFIER_JS, VERIFIER_WASM};

/// The `Content-Type` of a file, by extension.
pub fn content_type(path: &str) -> &'static str {
    let ext = path
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "webmanifest" => "application/manifest+json",
        "wasm" => "application/wasm",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "txt" | "md" => "text/plain; charset=utf-8",
        "map" => "application/json",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "mjpeg" => "video/x-motion-jpeg",
        _ => "application/octet-stream",
    }
}

/// The embedded file at `path` under `scanner-web/www/`.
pub fn page_file(path: &str) -> Option<&'static [u8]> {
    PAGE_FILES
        .iter()
        .find(|(p, _)| *p == path)
        .map(|(_, bytes)| *bytes)
}

fn bytes_reply(bytes: &'static [u8], content_type: &'static str) -> Resp {
    let reply = warp::reply::with_header(bytes, "content-type", content_type);
    warp::reply::with_header(reply, "cache-control", "no-cache").into_response()
}

/// The page (`index.html`), or 503 if this binary was built without one.
pub fn index_page() -> Resp {
    match page_file("index.html") {
        Some(bytes) => {
            let reply = bytes_reply(bytes, content_type("index.html"));
            warp::reply::with_header(reply, "vary", "Accept").into_response()
        }
        None => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "scanner page not available",
            "this binary was built without scanner-web/www/index.html",
        ),
    }
}

/// The keys a verifier of this gateway's bundles pins (SPEC §6): `{"gateway_key",
/// "operator_keys": {"operator:{name}": base64 SEC1}}`.
pub fn trust_json(shared: &Shared) -> serde_json::Value {
    let operators: serde_json::Map<String, serde_json::Value> = shared
        .operators
        .iter()
        .map(|(name, key)| {
            (
                format!("operator:{name}"),
                base64::engine::general_purpose::STANDARD
                    .encode(key.to_sec1_uncompressed())
                    .into(),
            )
        })
        .collect();
    serde_json::json!({
        "gateway_key": shared.gateway_key.to_string(),
        "operator_keys": operators,
    })
}

/// The page's routes.
pub fn routes(
    shared: Arc<Shared>,
) -> impl warp::Filter<Extract = (Resp,), Error = warp::Rejection> + Clone + Send + Sync + 'static {
    let root = warp::path::end().and(warp::get()).map(index_page);
    let scanner = warp::path("scanner")
        .and(warp::get())
        .and(warp::path::tail())
        .map(move |tail: warp::path::Tail| {
            let path = tail.as_str();
            match path {
                "" | "index.html" => index_page(),
                "verifier.js" => bytes_reply(VERIFIER_JS, content_type(path)),
                "verifier.wasm" => bytes_reply(VERIFIER_WASM, content_type(path)),
                "config.json" => {
                    let config = serde_json::json!({
                        "resolver": "",
                        "trust": trust_json(&shared),
                    });
                    let reply = warp::reply::json(&config);
                    warp::reply::with_header(reply, "cache-control", "no-cache").into_response()
                }
                _ => match page_file(path) {
                    Some(bytes) => bytes_reply(bytes, content_type(path)),
                    None => error(
                        StatusCode::NOT_FOUND,
                        "not found",
                        &format!("no file /scanner/{path}"),
                    ),
                },
            }
        });
    root.or(scanner).unify()
}
