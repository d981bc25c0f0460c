//! Bundles (SPEC §6), natively: `schemas/vectors/bundle.json` (item ABC123, and every
//! hand-picked invalid variant failing exactly where it says), trust only from the
//! configuration, mutations, malformed input, and the 50-event bundle of `bundle-50.json`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]
// Native only: the library's wasm32 build brings its own panic handler and allocator.
#![cfg(not(target_arch = "wasm32"))]

use std::path::PathBuf;
use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use prov_verifier::checks::verify_bundle_json;
use prov_verifier::{Report, Trust, Verdict, verify_bundle};
use serde_json::{Value as Json, json};

fn load(name: &str) -> Json {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas/vectors");
    serde_json::from_str(&std::fs::read_to_string(path.join(name)).unwrap()).unwrap()
}

fn trust_of(v: &Json) -> Trust {
    Trust::from_json(v["trust"].to_string().as_bytes()).unwrap()
}

fn verify(bundle: &Json, trust: &Trust) -> Report {
    verify_bundle(bundle.to_string().as_bytes(), trust)
}

fn ats(r: &Report) -> Vec<&str> {
    r.failures.iter().map(|f| f.at.as_str()).collect()
}

fn replace_all(v: &Json, from: &str, to: &str) -> Json {
    match v {
        Json::String(s) => Json::String(s.replace(from, to)),
        Json::Array(a) => Json::Array(a.iter().map(|x| replace_all(x, from, to)).collect()),
        Json::Object(o) => Json::Object(
            o.iter()
                .map(|(k, x)| (k.clone(), replace_all(x, from, to)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Applies an invalid case's patches (schemas/vectors/README.md).
fn patched(bundle: &Json, patches: &[Json]) -> Json {
    let mut out = bundle.clone();
    for p in patches {
        if p["op"] == "replace_all" {
            out = replace_all(&out, p["from"].as_str().unwrap(), p["to"].as_str().unwrap());
            continue;
        }
        let path = p["path"].as_array().unwrap();
        let mut at = &mut out;
        for k in &path[..path.len() - 1] {
            at = match k {
                Json::String(k) => &mut at[k.as_str()],
                k => &mut at[k.as_u64().unwrap() as usize],
            };
        }
        match path.last().unwrap() {
            Json::String(k) => at[k.as_str()] = p["value"].clone(),
            k => {
                let (i, list) = (k.as_u64().unwrap() as usize, at.as_array_mut().unwrap());
                if i == list.len() {
                    list.push(p["value"].clone());
                } else {
                    list[i] = p["value"].clone();
                }
            }
        }
    }
    out
}

fn flip_b64(text: &str, i: usize) -> String {
    let mut b = STANDARD.decode(text).unwrap();
    let n = b.len();
    b[i % n] ^= 1;
    STANDARD.encode(b)
}

#[test]
fn abc123s_bundle_verifies_with_every_event_related() {
    let v = load("bundle.json");
    let r = verify(&v["bundle"], &trust_of(&v));
    assert_eq!(r.failures, vec![]);
    assert_eq!(r.verdict, Verdict::Verified);
    assert_eq!(r.events.len(), 8);
    assert!(r.events.iter().all(|e| e.verified));
    let relations: Vec<_> = r.events.iter().map(|e| e.relation.unwrap()).collect();
    assert_eq!(
        relations,
        [
            "lot",
            "product",
            "product",
            "container",
            "container",
            "container",
            "container",
            "container"
        ]
    );
    assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
    assert_eq!(r.checkpoint.as_ref().map(|c| c.size), Some(19));
    // The JSON the page reads.
    let json: Json = serde_json::from_slice(&r.to_json()).unwrap();
    assert_eq!(json["verdict"], "verified");
    assert_eq!(json["events"][4]["sensorException"], true);
    assert_eq!(
        json["events"][4]["sensorReports"][0]["exception"],
        "ALARM_CONDITION"
    );
    assert_eq!(json["events"][1]["clockSynced"], true);
    assert_eq!(
        json["events"][1]["event"]["epcList"][0],
        v["bundle"]["product"]
    );
}

#[test]
fn every_invalid_variant_fails_exactly_where_it_says() {
    let v = load("bundle.json");
    let trust = trust_of(&v);
    let cases = v["invalid"].as_array().unwrap();
    assert!(cases.len() >= 10);
    for c in cases {
        let r = verify(
            &patched(&v["bundle"], c["patches"].as_array().unwrap()),
            &trust,
        );
        let want = c["failures"].as_array().unwrap();
        assert_eq!(r.verdict, Verdict::NotVerified, "{}", c["name"]);
        let want_at: Vec<&str> = want.iter().map(|f| f["at"].as_str().unwrap()).collect();
        assert_eq!(ats(&r), want_at, "{}: {:?}", c["name"], r.failures);
        for (got, want) in r.failures.iter().zip(want) {
            assert!(
                got.error.starts_with(want["error"].as_str().unwrap()),
                "{}: {got}",
                c["name"]
            );
        }
    }
}

#[test]
fn trust_comes_from_the_configuration_only() {
    let v = load("bundle.json");
    let other = load("bundle-50.json");
    let mut t = v["trust"].clone();
    t["gateway_key"] = other["trust"]["gateway_key"].clone();
    let r = verify_bundle_json(v["bundle"].to_string().as_bytes(), t.to_string().as_bytes());
    assert_eq!(ats(&r), ["checkpoint"]);
    t = v["trust"].clone();
    t["operator_keys"] = json!({});
    let r = verify_bundle_json(v["bundle"].to_string().as_bytes(), t.to_string().as_bytes());
    let n = v["bundle"]["events"].as_array().unwrap().len();
    let want: Vec<String> = (0..n)
        .map(|i| format!("events[{i}].registration.cose"))
        .collect();
    assert_eq!(ats(&r), want);
    for bad in [json!({}), json!({"gateway_key": "x", "operator_keys": {}})] {
        let r = verify_bundle_json(
            v["bundle"].to_string().as_bytes(),
            bad.to_string().as_bytes(),
        );
        assert_eq!(ats(&r), ["trust"]);
    }
}

#[test]
fn a_flipped_byte_is_named_where_it_is() {
    let v = load("bundle.json");
    let trust = trust_of(&v);
    let bundle = &v["bundle"];
    for (k, e) in bundle["events"].as_array().unwrap().iter().enumerate() {
        let cose = e["cose"].as_str().unwrap();
        let len = STANDARD.decode(cose).unwrap().len();
        for i in [0, 1, 5, len / 2, len - 64, len - 33, len - 1] {
            let mut b = bundle.clone();
            b["events"][k]["cose"] = json!(flip_b64(cose, i));
            let r = verify(&b, &trust);
            let at = ats(&r);
            assert!(at.contains(&format!("events[{k}].cose").as_str()), "{at:?}");
            assert!(
                at.contains(&format!("events[{k}].proof").as_str()),
                "{at:?}"
            );
            assert!(
                at.iter().all(|a| a.starts_with(&format!("events[{k}]"))),
                "{at:?}"
            );
        }
        let proof = e["proof"].as_str().unwrap();
        let mut lines: Vec<String> = proof.split('\n').map(String::from).collect();
        lines[2] = flip_b64(&lines[2], 7);
        let mut b = bundle.clone();
        b["events"][k]["proof"] = json!(lines.join("\n"));
        let r = verify(&b, &trust);
        assert_eq!(ats(&r), [format!("events[{k}].proof")]);
        assert_eq!(
            r.failures[0].error,
            "inclusion proof does not match the checkpoint root"
        );
    }
    let note = bundle["checkpoint"].as_str().unwrap();
    let one = json!({"product": bundle["product"], "checkpoint": note,
                     "events": [bundle["events"][1]]});
    assert_eq!(verify(&one, &trust).verdict, Verdict::Verified);
    for i in 0..note.len() {
        let mut bytes = note.as_bytes().to_vec();
        bytes[i] ^= 1;
        let Ok(flipped) = String::from_utf8(bytes) else {
            continue;
        };
        let r = verify(&replace_all(&one, note, &flipped), &trust);
        assert_eq!(
            ats(&r).first(),
            Some(&"checkpoint"),
            "byte {i}: {:?}",
            r.failures
        );
    }
}

#[test]
fn malformed_input_gives_a_report() {
    let v = load("bundle.json");
    let trust = trust_of(&v);
    let text = v["bundle"].to_string();
    for cut in (0..text.len()).step_by(61) {
        let r = verify_bundle(&text.as_bytes()[..cut], &trust);
        assert_eq!(r.verdict, Verdict::NotVerified);
    }
    for odd in [
        "",
        "null",
        "[]",
        "{}",
        r#"{"events": [{}]}"#,
        r#"{"events": 5}"#,
    ] {
        assert_eq!(
            verify_bundle(odd.as_bytes(), &trust).verdict,
            Verdict::NotVerified
        );
    }
    let mut empty = v["bundle"].clone();
    empty["events"] = json!([]);
    assert_eq!(ats(&verify(&empty, &trust)), ["events"]);
}

#[test]
fn the_50_event_bundle_verifies() {
    let v = load("bundle-50.json");
    let trust = trust_of(&v);
    let text = v["bundle"].to_string();
    let start = Instant::now();
    let r = verify_bundle(text.as_bytes(), &trust);
    let took = start.elapsed();
    assert_eq!(r.failures, vec![]);
    assert_eq!(r.warnings, vec![]);
    assert_eq!(r.events.len(), 50);
    assert_eq!(r.events[0].relation, Some("lot"));
    assert_eq!(r.events.iter().filter(|e| e.sensor_exception).count(), 1);
    println!("50-event bundle, native: {took:?}");
}
