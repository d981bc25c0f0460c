//! EPCIS 2.0 export and query over a real on-disk log holding the shared vectors' signed
//! messages (schemas/vectors/): the answers match the vectors' own payloads, paging walks the
//! whole log, and the exported documents validate against GS1's published JSON Schema with an
//! independent validator (Python `jsonschema`, format checking on).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use prov_gateway::epcis::{self, EventQuery, LoggedEvent};
use prov_ledger::checkpoint::Checkpoint;
use prov_ledger::note::NoteSigner;
use prov_ledger::store::{LogStore, StoreConfig};
use prov_ledger::tlog_proof::TlogProof;
use serde_json::Value;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn python() -> PathBuf {
    let venv = repo_root().join(".venv/bin/python");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

struct Vector {
    message: Vec<u8>,
    payload: Value,
}

fn vectors(file: &str) -> Vec<Vector> {
    let path = repo_root().join("schemas/vectors").join(file);
    let json: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    json["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| Vector {
            message: hex::decode(m["message_hex"].as_str().unwrap()).unwrap(),
            payload: m["payload"].clone(),
        })
        .collect()
}

/// A log of the vector registry records followed by the vector events.
fn vector_log(dir: &Path) -> (LogStore, Vec<Vector>, u64) {
    let registry = vectors("registry.json");
    let events = vectors("events.json");
    let mut log = LogStore::open(StoreConfig::new(dir)).unwrap();
    let all: Vec<&[u8]> = registry
        .iter()
        .chain(&events)
        .map(|v| v.message.as_slice())
        .collect();
    log.sequence(&all).unwrap();
    log.integrate().unwrap();
    log.sync().unwrap();
    (log, events, registry.len() as u64)
}

fn run(log: &LogStore, params: &[(&str, &str)]) -> Vec<LoggedEvent> {
    let q = EventQuery::parse(params.iter().copied()).unwrap();
    let page = epcis::query(log, log.size(), &q).unwrap();
    assert!(page.next_page_token.is_none());
    page.events
}

fn validate(doc: &Value) -> (bool, String) {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), serde_json::to_vec_pretty(doc).unwrap()).unwrap();
    let out = Command::new(python())
        .arg(repo_root().join("tests/python/epcis_validate.py"))
        .arg(file.path())
        .output()
        .expect("python (scripts/setup.sh makes .venv)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn queries_answer_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let (log, events, first_event_leaf) = vector_log(dir.path());

    // No filter: every event (registry records are not events), in log order.
    let all = run(&log, &[]);
    assert_eq!(all.len(), events.len());
    for (i, (got, want)) in all.iter().zip(&events).enumerate() {
        assert_eq!(got.leaf, first_event_leaf + i as u64);
        assert_eq!(got.message, want.message);
    }

    // Each filter against the vectors' own payloads, read field by field.
    let expect = |pred: &dyn Fn(&Value) -> bool| -> Vec<u64> {
        events
            .iter()
            .enumerate()
            .filter(|(_, v)| pred(&v.payload))
            .map(|(i, _)| first_event_leaf + i as u64)
            .collect()
    };
    let leaves = |evs: Vec<LoggedEvent>| evs.iter().map(|e| e.leaf).collect::<Vec<_>>();

    let packing = expect(&|p| p["bizStep"] == "packing");
    assert!(!packing.is_empty());
    assert_eq!(leaves(run(&log, &[("EQ_bizStep", "packing")])), packing);

    let item = "https://id.gs1.org/01/09506000134352/21/ABC123";
    let names_item_in = |p: &Value, keys: &[&str]| {
        keys.iter().any(|k| {
            p[*k]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x == item))
        })
    };
    let by_epc = expect(&|p| names_item_in(p, &["epcList", "childEPCs"]));
    assert!(!by_epc.is_empty());
    assert_eq!(leaves(run(&log, &[("MATCH_epc", item)])), by_epc);
    // A brand-host QR form with a lot and a query maps to the same item.
    assert_eq!(
        leaves(run(
            &log,
            &[(
                "MATCH_epc",
                "https://brand.example/01/09506000134352/10/ANY/21/ABC123?17=271231"
            )]
        )),
        by_epc
    );

    let transformation = expect(&|p| p["type"] == "TransformationEvent");
    assert_eq!(
        leaves(run(&log, &[("EQ_type", "TransformationEvent")])),
        transformation
    );

    let temperature_over = |bound: f64| {
        expect(&|p| {
            p["sensorElementList"].as_array().is_some_and(|els| {
                els.iter().any(|e| {
                    e["sensorReport"].as_array().is_some_and(|rs| {
                        rs.iter().any(|r| {
                            r["uom"] == "CEL" && r["value"].as_f64().is_some_and(|v| v >= bound)
                        })
                    })
                })
            })
        })
    };
    let warm = temperature_over(8.0);
    assert!(!warm.is_empty(), "the vectors hold a cold-chain excursion");
    assert_eq!(leaves(run(&log, &[("GE_value_CEL", "8")])), warm);
    assert_eq!(
        leaves(run(&log, &[("GE_value_CEL", "-100")])),
        temperature_over(-100.0)
    );

    let device = events[0].payload["prov:device"]
        .as_str()
        .unwrap()
        .to_owned();
    let by_device = expect(&|p| p["prov:device"] == device.as_str());
    assert_eq!(leaves(run(&log, &[("EQ_deviceID", &device)])), by_device);

    let t = events[3].payload["eventTime"].as_str().unwrap().to_owned();
    let later = expect(&|p| p["eventTime"].as_str().unwrap() >= t.as_str());
    assert_eq!(leaves(run(&log, &[("GE_eventTime", &t)])), later);
    let earlier = expect(&|p| p["eventTime"].as_str().unwrap() < t.as_str());
    assert_eq!(leaves(run(&log, &[("LT_eventTime", &t)])), earlier);

    // Constraints are ANDed.
    let both: Vec<u64> = packing
        .iter()
        .filter(|l| by_epc.contains(l))
        .copied()
        .collect();
    assert_eq!(
        leaves(run(&log, &[("EQ_bizStep", "packing"), ("MATCH_epc", item)])),
        both
    );
}

#[test]
fn paging_walks_the_whole_log() {
    let dir = tempfile::tempdir().unwrap();
    let (log, events, _) = vector_log(dir.path());
    let mut seen = Vec::new();
    let mut token: Option<u64> = None;
    let mut pages = 0;
    loop {
        let t = token.map(|t| t.to_string());
        let mut params = vec![("perPage", "3")];
        if let Some(t) = &t {
            params.push(("nextPageToken", t));
        }
        let q = EventQuery::parse(params).unwrap();
        let page = epcis::query(&log, log.size(), &q).unwrap();
        assert!(page.events.len() <= 3);
        seen.extend(page.events.into_iter().map(|e| e.leaf));
        pages += 1;
        match page.next_page_token {
            Some(next) => token = Some(next),
            None => break,
        }
    }
    assert_eq!(seen.len(), events.len());
    assert!(seen.windows(2).all(|w| w[0] < w[1]));
    assert!(pages >= 4);
}

#[test]
fn exported_documents_validate_against_gs1_schema() {
    let dir = tempfile::tempdir().unwrap();
    let (log, events, _) = vector_log(dir.path());
    let signer = NoteSigner::from_seed("test.example/epcis/1", &[7; 32]).unwrap();
    let size = log.size();
    let note = Checkpoint::new("test.example/epcis/1", size, log.root_at(size).unwrap())
        .unwrap()
        .sign(&signer)
        .unwrap()
        .encode();
    let all = run(&log, &[]);
    let json: Vec<Value> = all
        .iter()
        .map(|e| {
            let proof = TlogProof::new(
                e.leaf,
                log.inclusion_proof(e.leaf, size).unwrap(),
                note.clone(),
            )
            .unwrap()
            .encode();
            epcis::event_json(e, Some(&proof))
        })
        .collect();

    // Each exported event carries the exact signed message and a proof that verifies.
    for (j, e) in json.iter().zip(&all) {
        let cose = base64::engine::general_purpose::STANDARD
            .decode(j["prov:signature"]["cose"].as_str().unwrap())
            .unwrap();
        assert_eq!(cose, e.message);
        let proof = TlogProof::parse(j["prov:inclusion"]["tlogProof"].as_str().unwrap()).unwrap();
        proof
            .verify_entry(&e.message, &signer.verifier_key().unwrap())
            .unwrap();
        assert_eq!(j["prov:inclusion"]["leafIndex"], e.leaf);
    }
    // The event fields are the device's payload, unchanged.
    for (j, v) in json.iter().zip(&events) {
        for (k, want) in v.payload.as_object().unwrap() {
            assert_eq!(&j[k], want, "field {k}");
        }
    }

    let doc = epcis::document(&json, Some(&note), 1_795_000_000_000);
    let (ok, out) = validate(&doc);
    assert!(ok, "EPCISDocument invalid:\n{out}");
    let qdoc = epcis::query_document("SimpleEventQuery", &json, Some(&note), 1_795_000_000_000);
    let (ok, out) = validate(&qdoc);
    assert!(ok, "EPCISQueryDocument invalid:\n{out}");

    // The validator does reject: an event ID that is not a URI, an extension without prefix.
    let mut bad = doc.clone();
    bad["epcisBody"]["eventList"][0]["eventID"] = "not a uri".into();
    assert!(!validate(&bad).0);
    let mut bad = doc;
    bad["epcisBody"]["eventList"][1]["signature"] = "x".into();
    assert!(!validate(&bad).0);
}
