//! The resolver end to end (issue 5): a simulated line through the gateway's embedded broker
//! into a real in-process gateway, then over HTTP: an item's bundle verifies with the browser's
//! verifier (native build of `prov-verifier`) under the keys of `/api/v1/keys` and with an
//! independent Python verifier (pycose + blake3 + cryptography), holds its case, pallet and lot
//! events and no other item's serial; lot and SSCC bundles; qualifier forms; 400/404/503; HTML vs
//! JSON; the page's files; labels (the PNG decodes back to the URI, the SVG is XML holding it);
//! the lookup counter increments and survives a restart; the cap truncates and says so.
//! The auditor endpoints on the same kind of gateway: 401 without a token, 403 with a consumer
//! token, EPCIS queries and lineage with an auditor token (proofs verified, the EPCIS document
//! valid against GS1's schema), revocation at once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod svc_support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::Engine as _;
use prov_gateway::pipeline::Shared;
use prov_gateway::resolver::Resolver;
use prov_gateway::service;
use prov_schemas::cose::CoseSign1;
use prov_schemas::digital_link::{DigitalLink, IdKind};
use prov_schemas::event::{Event, EventType};
use prov_simulator::line::{Drain, LineConfig, Stop};
use prov_simulator::{Recorded, run_line};
use serde_json::Value as Json;
use svc_support::*;

/// One HTTP/1.1 GET with an `Accept` header: (status, lower-cased head, body).
fn get(addr: &str, path: &str, accept: Option<&str>) -> (u16, String, Vec<u8>) {
    let accept = accept.map_or(String::new(), |a| format!("Accept: {a}\r\n"));
    get_with(addr, path, &accept)
}

/// One HTTP/1.1 GET with extra header lines (each ending in CRLF): (status, lower-cased head,
/// body).
fn get_with(addr: &str, path: &str, headers: &str) -> (u16, String, Vec<u8>) {
    let (status, head, body) = try_request(addr, "GET", path, headers, &[])
        .unwrap_or_else(|| panic!("GET {path} on {addr} failed"));
    (status, head.to_ascii_lowercase(), body)
}

fn get_json(addr: &str, path: &str) -> (u16, Json) {
    let (status, head, body) = get(addr, path, Some("application/json"));
    assert!(head.contains("content-type: application/json"), "{head}");
    (status, serde_json::from_slice(&body).unwrap())
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The decoded events of a bundle.
fn events_of(bundle: &Json) -> Vec<Event> {
    bundle["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(e["cose"].as_str().unwrap())
                .unwrap();
            Event::decode_payload(CoseSign1::parse(&bytes).unwrap().payload()).unwrap()
        })
        .collect()
}

/// Verifies `bundle` with the browser's verifier under `trust` (the `/api/v1/keys` JSON).
fn verify_natively(bundle: &Json, trust: &[u8]) -> prov_verifier::Report {
    let trust = prov_verifier::Trust::from_json(trust).unwrap();
    prov_verifier::verify_bundle(&serde_json::to_vec(bundle).unwrap(), &trust)
}

/// Runs the independent Python verifier over `bundle`; returns (success, its output).
fn verify_in_python(bundle: &Json, trust: &[u8], dir: &Path) -> (bool, String) {
    let python = repo_root().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} missing: run scripts/setup.sh",
        python.display()
    );
    let bundle_path = dir.join("bundle.json");
    let trust_path = dir.join("trust.json");
    std::fs::write(&bundle_path, serde_json::to_vec(bundle).unwrap()).unwrap();
    std::fs::write(&trust_path, trust).unwrap();
    let out = std::process::Command::new(python)
        .arg(repo_root().join("tests/python/verify_bundle.py"))
        .arg(&bundle_path)
        .arg(&trust_path)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A line of `events` events through the gateway's embedded broker; returns every item
/// commissioned, in order.
async fn run_simulated_line(
    running: &service::Running,
    addr: &str,
    op: &prov_schemas::keys::SecretKey,
    events: u64,
) -> Vec<DigitalLink> {
    let mut line = LineConfig::new("factory-a").unwrap();
    line.broker.port = running.mqtt_addr.port();
    line.broker.client_prefix = unique("sim");
    line.seed = 5;
    line.run_tag = "RT".into();
    line.rate = 0.0;
    line.stop = Stop::Count(events);
    line.drain = Drain::Receipts;
    line.drain_timeout = Duration::from_secs(60);
    line.misread_probability = 0.0;
    register(addr, op, &line.device_keys().unwrap());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Recorded>();
    let report = run_line(line, Some(tx), std::future::pending::<()>())
        .await
        .unwrap();
    assert!(report.delivered, "{report:?}");
    let mut items = Vec::new();
    while let Ok(r) = rx.try_recv() {
        if let Some(item) = r.commissioned_item() {
            items.push(item.clone());
        }
    }
    items
}

fn checkpoint_size(addr: &str) -> u64 {
    let (_, _, note) = get(addr, "/checkpoint", None);
    String::from_utf8_lossy(&note)
        .lines()
        .nth(1)
        .and_then(|l| l.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resolver_bundles_labels_page_and_lookups() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut config, op) = make_config(&tmp.path().join("data"), None, &unique("gw"));
    config.batch.max_delay_ms = 20;
    let running = service::start(config.clone()).await.unwrap();
    let addr = running.http_addr.to_string();

    let items = run_simulated_line(&running, &addr, &op, 200).await;
    assert!(items.len() > 30, "{} items", items.len());
    let log_size = running.shared.log.read().unwrap().size();
    assert!(wait_until(Duration::from_secs(20), || checkpoint_size(
        &addr
    ) >= log_size));

    let (status, _, trust) = get(&addr, "/api/v1/keys", None);
    assert_eq!(status, 200);

    // The first item: packed, palletised, shipped by now.
    let item = &items[0];
    let (status, bundle) = get_json(&addr, &item.path());
    assert_eq!(status, 200, "{bundle}");
    assert_eq!(bundle["product"], item.canonical());
    assert_eq!(bundle["lookups"], 1);
    assert_eq!(bundle["truncated"], false);
    let report = verify_natively(&bundle, &trust);
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(report.verdict, prov_verifier::Verdict::Verified);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);

    // What it holds: its commissioning and packing, its case onto a pallet, the pallet's
    // shipping, its lot's transformation; no other item's serial anywhere.
    let events = events_of(&bundle);
    assert_eq!(
        events.len(),
        bundle["total_events"].as_u64().unwrap() as usize
    );
    let packed = events
        .iter()
        .find(|e| e.event_type == EventType::Aggregation && e.child_epcs.contains(item))
        .expect("the item's packing");
    let case = packed.parent_id.clone().unwrap();
    let palletised = events
        .iter()
        .find(|e| e.event_type == EventType::Aggregation && e.child_epcs.contains(&case))
        .expect("the case's palletising");
    let pallet = palletised.parent_id.clone().unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.epc_list.contains(&pallet)
                && e.biz_step.map(|b| b.as_str()) == Some("shipping")),
        "the pallet's shipping"
    );
    assert!(
        events
            .iter()
            .any(|e| e.event_type == EventType::Transformation),
        "the lot's transformation"
    );
    for e in &events {
        for id in e.identifiers() {
            assert!(
                id.kind() != IdKind::Item || id == item,
                "another item's serial: {}",
                id.canonical()
            );
        }
    }
    let others: BTreeSet<String> = items[1..].iter().map(|i| i.canonical()).collect();
    let text = bundle.to_string();
    assert!(others.iter().all(|o| !text.contains(o.as_str())));

    // The independent verifier agrees, and refuses a one-byte change in an event.
    let (ok, out) = verify_in_python(&bundle, &trust, tmp.path());
    assert!(ok, "python verifier: {out}");
    assert!(
        out.contains(&format!("verified {} events", events.len())),
        "{out}"
    );
    let mut tampered = bundle.clone();
    let cose = tampered["events"][1]["cose"].as_str().unwrap().to_string();
    let mut bytes = base64::engine::general_purpose::STANDARD
        .decode(&cose)
        .unwrap();
    let at = bytes.len() - 70;
    bytes[at] ^= 0x01;
    tampered["events"][1]["cose"] = base64::engine::general_purpose::STANDARD
        .encode(&bytes)
        .into();
    let (ok, out) = verify_in_python(&tampered, &trust, tmp.path());
    assert!(!ok && out.contains("events[1]"), "{out}");
    assert_eq!(
        verify_natively(&tampered, &trust).verdict,
        prov_verifier::Verdict::NotVerified
    );

    // Lookups count each bundle served.
    let (_, again) = get_json(&addr, &item.path());
    assert_eq!(again["lookups"], 2);

    // Qualifier forms map to the canonical item.
    let lot = events
        .iter()
        .find_map(|e| {
            e.ilmd
                .as_ref()?
                .0
                .get("cbvmda:lotNumber")
                .map(|v| format!("{v:?}"))
        })
        .expect("a declared lot");
    let lot_text = lot.trim_start_matches("Text(\"").trim_end_matches("\")");
    let DigitalLink::Item { gtin, serial } = item else {
        panic!()
    };
    let qualified = format!(
        "/01/{}/10/{lot_text}/21/{}?17=271231",
        gtin.as_str(),
        serial.as_str()
    );
    let (status, q) = get_json(&addr, &qualified);
    assert_eq!(status, 200, "{q}");
    assert_eq!(q["product"], item.canonical());
    assert_eq!(q["lookups"], 3);

    // The lot's bundle and the case's bundle verify; the case's names no item.
    let lot_path = format!("/01/{}/10/{lot_text}", gtin.as_str());
    for path in [lot_path.as_str(), case.path().as_str()] {
        let (status, b) = get_json(&addr, path);
        assert_eq!(status, 200, "{path}: {b}");
        let report = verify_natively(&b, &trust);
        assert!(report.failures.is_empty(), "{path}: {:?}", report.failures);
        for e in events_of(&b) {
            assert!(
                e.identifiers().iter().all(|id| id.kind() != IdKind::Item),
                "{path}: an item's serial"
            );
        }
    }

    // Malformed: 400 with a JSON error; well-formed but unknown: 404.
    let bad_check = format!("/01/{}/21/X1", bump_check_digit(gtin.as_str()));
    for path in [
        bad_check.as_str(),
        "/01/09506000134352/21/AB%20C",
        "/00/12345",
    ] {
        let (status, e) = get_json(&addr, path);
        assert_eq!(status, 400, "{path}: {e}");
        assert_eq!(e["error"], "malformed identifier");
        assert!(e["detail"].as_str().is_some_and(|d| !d.is_empty()));
    }
    let (status, e) = get_json(&addr, "/01/09506000134352/21/NEVERMADE");
    assert_eq!(status, 404, "{e}");
    assert_eq!(e["error"], "unknown product");

    // A browser gets the page; the page's files are served with their types.
    let chrome = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    let (status, head, body) = get(&addr, &item.path(), Some(chrome));
    match prov_gateway::web::page_file("index.html") {
        Some(page) => {
            assert_eq!(status, 200);
            assert!(head.contains("content-type: text/html"), "{head}");
            assert_eq!(body, page);
        }
        None => assert_eq!(status, 503, "no page built in"),
    }
    let (status, head, wasm) = get(&addr, "/scanner/verifier.wasm", None);
    assert_eq!(status, 200);
    assert!(head.contains("content-type: application/wasm"), "{head}");
    assert_eq!(&wasm[..4], b"\0asm");
    let (status, head, _) = get(&addr, "/scanner/verifier.js", None);
    assert_eq!(status, 200);
    assert!(head.contains("content-type: text/javascript"), "{head}");
    for (path, _) in prov_gateway::web::PAGE_FILES {
        let (status, head, body) = get(&addr, &format!("/scanner/{path}"), None);
        assert_eq!(status, 200, "{path}");
        assert!(
            head.contains(&format!(
                "content-type: {}",
                prov_gateway::web::content_type(path)
            )),
            "{path}: {head}"
        );
        assert_eq!(body, prov_gateway::web::page_file(path).unwrap());
    }
    let (status, page_config) = get_json(&addr, "/scanner/config.json");
    assert_eq!(status, 200);
    assert_eq!(page_config["resolver"], "");
    assert_eq!(
        page_config["trust"],
        serde_json::from_slice::<Json>(&trust).unwrap()
    );

    // Labels: the PNG decodes back to the URI under the configured base URL; the SVG is XML
    // holding it.
    let uri = format!("http://{addr}{}", item.path());
    let (status, head, png) = get(&addr, &format!("/api/v1/labels{}.png", item.path()), None);
    assert_eq!(status, 200);
    assert!(head.contains("content-type: image/png"), "{head}");
    let img = image::load_from_memory(&png).unwrap().to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(img);
    let grids = prepared.detect_grids();
    assert_eq!(grids.len(), 1);
    let (_, content) = grids[0].decode().unwrap();
    assert_eq!(content, uri);
    let (status, head, svg) = get(&addr, &format!("/api/v1/labels{}.svg", item.path()), None);
    assert_eq!(status, 200);
    assert!(head.contains("content-type: image/svg+xml"), "{head}");
    let svg = String::from_utf8(svg).unwrap();
    let doc = roxmltree::Document::parse(&svg).unwrap();
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    assert!(
        doc.descendants()
            .any(|n| n.text().is_some_and(|t| t.contains(&uri))),
        "{svg}"
    );
    let (status, _) = get_json(&addr, "/api/v1/labels/01/09506000134353/21/X.png");
    assert_eq!(status, 400);

    // Restart with a small cap: the counter survived; the bundle is truncated, says so, and
    // still verifies (the product's own and the linking events come first).
    running.shutdown().await.unwrap();
    config.resolver.max_bundle_events = 4;
    let running = start_again(&config).await;
    let addr = running.http_addr.to_string();
    let (status, capped) = get_json(&addr, &item.path());
    assert_eq!(status, 200, "{capped}");
    assert_eq!(capped["lookups"], 4, "the counter survives a restart");
    assert_eq!(capped["truncated"], true);
    assert_eq!(capped["max_events"], 4);
    assert_eq!(capped["events"].as_array().unwrap().len(), 4);
    assert_eq!(capped["total_events"], bundle["total_events"]);
    let report = verify_natively(&capped, &trust);
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    running.shutdown().await.unwrap();
}

/// Starts the gateway of `config` again in this process: the stopped one's indexer thread
/// may hold the sled lock for a moment after it stopped.
async fn start_again(config: &prov_gateway::config::Config) -> service::Running {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        match service::start(config.clone()).await {
            Ok(r) => return r,
            Err(e) if std::time::Instant::now() < deadline && e.to_string().contains("lock") => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("restarting the gateway: {e}"),
        }
    }
}

/// The same GTIN with a wrong check digit.
fn bump_check_digit(gtin: &str) -> String {
    let (body, check) = gtin.split_at(13);
    let d = check.parse::<u8>().unwrap();
    format!("{body}{}", (d + 1) % 10)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_checkpoint_yet_is_503() {
    // A gateway's state before its first checkpoint: an empty log, no note.
    let tmp = tempfile::tempdir().unwrap();
    let (config, _) = make_config(&tmp.path().join("data"), None, &unique("gw"));
    let signer =
        prov_gateway::keys::load_gateway_signer(&config.gateway_key_path(), &config.origin)
            .unwrap();
    let log =
        prov_ledger::store::LogStore::open(prov_ledger::store::StoreConfig::new(config.log_dir()))
            .unwrap();
    let shared = Arc::new(Shared {
        log: RwLock::new(log),
        indexes: prov_gateway::index::Indexes::temporary().unwrap(),
        checkpoint: RwLock::new(None),
        metrics: Default::default(),
        gateway_key: signer.verifier_key().unwrap(),
        operators: Default::default(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let resolver = Resolver::open(&config, addr).unwrap();
    let (tx, _rx) = std::sync::mpsc::channel();
    let tokens = Arc::new(prov_gateway::auth::Tokens::open(&config.data_dir));
    let routes = prov_gateway::http::routes(Arc::clone(&shared), tx, Arc::new(resolver), tokens);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        warp::serve(routes)
            .incoming(listener)
            .graceful(async move {
                let _ = stopped.await;
            })
            .run(),
    );
    let addr = addr.to_string();
    let (status, e) =
        tokio::task::spawn_blocking(move || get_json(&addr, "/01/09506000134352/21/ABC123"))
            .await
            .unwrap();
    assert_eq!(status, 503, "{e}");
    assert_eq!(e["error"], "no signed checkpoint yet");
    let _ = stop.send(());
    server.await.unwrap();
    // Nothing was counted for a bundle that was not served.
    let resolver = Resolver::open(&config, "127.0.0.1:1".parse().unwrap()).unwrap();
    let product =
        DigitalLink::parse_canonical("https://id.gs1.org/01/09506000134352/21/ABC123").unwrap();
    assert_eq!(resolver.lookups.count(&product).unwrap(), 0);
}

/// The auditor endpoints (issue 6): tokens, EPCIS query and export, lineage.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn auditor_endpoints_need_tokens_and_answer_with_proofs() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut config, op) = make_config(&tmp.path().join("data"), None, &unique("gw"));
    config.batch.max_delay_ms = 20;
    let running = service::start(config.clone()).await.unwrap();
    let addr = running.http_addr.to_string();
    let items = run_simulated_line(&running, &addr, &op, 120).await;
    let log_size = running.shared.log.read().unwrap().size();
    assert!(wait_until(Duration::from_secs(20), || checkpoint_size(
        &addr
    ) >= log_size));
    let key = gateway_key(&config);

    let tokens = prov_gateway::auth::Tokens::open(&config.data_dir);
    let auditor = tokens
        .create("customs", prov_gateway::auth::Scope::Auditor)
        .unwrap();
    let consumer = tokens
        .create("phone", prov_gateway::auth::Scope::Consumer)
        .unwrap();
    let bearer = |t: &str| format!("Authorization: Bearer {t}\r\n");
    let item = &items[0];
    let enc = |s: &str| s.replace(':', "%3A").replace('/', "%2F");
    let paths = [
        "/api/v1/events?EQ_bizStep=packing".to_owned(),
        "/api/v1/export?EQ_bizStep=packing".to_owned(),
        format!(
            "/api/v1/lineage?direction=back&id={}",
            enc(&item.canonical())
        ),
    ];
    for path in &paths {
        let (status, head, body) = get_with(&addr, path, "");
        assert_eq!(status, 401, "{path}");
        assert!(head.contains("www-authenticate: bearer"), "{head}");
        let text = String::from_utf8_lossy(&body);
        assert!(
            !text.contains("https://id.gs1.org"),
            "data in a 401: {text}"
        );
        let (status, _, body) = get_with(&addr, path, &bearer("prov_not-a-token"));
        assert_eq!(status, 401, "{path}");
        assert!(!String::from_utf8_lossy(&body).contains("https://id.gs1.org"));
        let (status, _, body) = get_with(&addr, path, &bearer(&consumer));
        assert_eq!(status, 403, "{path}");
        assert!(!String::from_utf8_lossy(&body).contains("https://id.gs1.org"));
        let (status, _, body) = get_with(&addr, path, &bearer(&auditor));
        assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
    }

    // EPCIS query: only packing events, each with its signed message and a proof that holds.
    let (_, _, body) = get_with(&addr, &paths[0], &bearer(&auditor));
    let doc: Json = serde_json::from_slice(&body).unwrap();
    assert_eq!(doc["type"], "EPCISQueryDocument");
    let list = doc["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
        .as_array()
        .unwrap();
    assert!(!list.is_empty());
    for e in list {
        assert_eq!(e["bizStep"], "packing");
        let cose = base64::engine::general_purpose::STANDARD
            .decode(e["prov:signature"]["cose"].as_str().unwrap())
            .unwrap();
        let proof = prov_ledger::tlog_proof::TlogProof::parse(
            e["prov:inclusion"]["tlogProof"].as_str().unwrap(),
        )
        .unwrap();
        proof.verify_entry(&cose, &key).unwrap();
    }
    // The export validates against GS1's EPCIS 2.0 JSON Schema (independent validator).
    let (_, _, body) = get_with(&addr, &paths[1], &bearer(&auditor));
    let export = tmp.path().join("export.json");
    std::fs::write(&export, &body).unwrap();
    let python = repo_root().join(".venv/bin/python");
    let python = if python.exists() {
        python
    } else {
        "python3".into()
    };
    let out = std::process::Command::new(python)
        .arg(repo_root().join("tests/python/epcis_validate.py"))
        .arg(&export)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // Lineage back from the item: its case and lot, every cited entry proven.
    let (_, _, body) = get_with(&addr, &paths[2], &bearer(&auditor));
    let g: Json = serde_json::from_slice(&body).unwrap();
    let kinds: BTreeSet<&str> = g["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains("sscc") && kinds.contains("lot"), "{kinds:?}");
    let entries = g["entries"].as_array().unwrap();
    assert!(!entries.is_empty());
    for e in entries {
        let cose = base64::engine::general_purpose::STANDARD
            .decode(e["cose"].as_str().unwrap())
            .unwrap();
        let proof =
            prov_ledger::tlog_proof::TlogProof::parse(e["proof"].as_str().unwrap()).unwrap();
        assert_eq!(proof.index(), e["leaf_index"].as_u64().unwrap());
        proof.verify_entry(&cose, &key).unwrap();
    }

    // Bad queries are 400 naming the parameter; an unknown identifier 404.
    let (status, _, body) = get_with(
        &addr,
        "/api/v1/events?EQ_bizstep=packing",
        &bearer(&auditor),
    );
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("EQ_bizstep"));
    let unknown = "https%3A%2F%2Fid.gs1.org%2F01%2F09506000134352%2F21%2FNOSUCH";
    let (status, _, _) = get_with(
        &addr,
        &format!("/api/v1/lineage?direction=forward&id={unknown}"),
        &bearer(&auditor),
    );
    assert_eq!(status, 404);

    // Revocation takes effect at once on the running gateway.
    tokens.revoke("customs").unwrap();
    let (status, _, _) = get_with(&addr, &paths[0], &bearer(&auditor));
    assert_eq!(status, 401);
    running.shutdown().await.unwrap();
}
