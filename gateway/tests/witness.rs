//! The witness (issue 6): a real HTTP server on an ephemeral loopback port cosigns a growing
//! log; its cosignatures verify under its key; stale old sizes get 409 with its size; a split
//! view (a forged checkpoint of a witnessed size, signed with the gateway's key) and a bad
//! consistency proof are refused with the evidence kept and the state unchanged; the state
//! survives a restart.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::Arc;

use prov_gateway::witness::{self, SubmitError, Witness};
use prov_ledger::checkpoint::Checkpoint;
use prov_ledger::hasher::Blake3Hasher;
use prov_ledger::merkle::MemoryTree;
use prov_ledger::note::{NoteSignature, NoteSigner, SignedNote, VerifierKey};
use prov_ledger::witness::encode_add_checkpoint;
use prov_schemas::Hash32;

const ORIGIN: &str = "factory-a.example/line-logs/1";
const WITNESS: &str = "witness.test/w1";

struct Log {
    signer: NoteSigner,
    tree: MemoryTree<Blake3Hasher>,
}

impl Log {
    fn grow(&mut self, size: u64) -> String {
        while self.tree.size() < size {
            let i = self.tree.size();
            self.tree.append_entry(format!("entry {i}").as_bytes());
        }
        self.note(size, self.tree.root())
    }
    fn note(&self, size: u64, root: Hash32) -> String {
        Checkpoint::new(ORIGIN, size, root)
            .unwrap()
            .sign(&self.signer)
            .unwrap()
            .encode()
    }
    fn proof(&self, old: u64, new: u64) -> Vec<Hash32> {
        if old == 0 {
            Vec::new()
        } else {
            self.tree.consistency_proof(old, new).unwrap()
        }
    }
}

fn verify_lines(note: &str, lines: &[NoteSignature], key: &VerifierKey) -> u64 {
    let mut cosigned = SignedNote::parse(note).unwrap();
    for l in lines {
        cosigned.push_signature(l.clone()).unwrap();
    }
    // Round trip through text, as a consumer would receive it.
    let cosigned = SignedNote::parse(&cosigned.encode()).unwrap();
    cosigned.verify_cosignature(key).unwrap()
}

/// One raw POST, for the statuses the client maps to errors.
fn raw_post(addr: &str, body: &[u8]) -> (u16, String) {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let head = format!(
        "POST /add-checkpoint HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let text = String::from_utf8_lossy(&resp).into_owned();
    let status = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = text.split_once("\r\n\r\n").unwrap().1.to_owned();
    (status, body)
}

#[test]
fn witness_cosigns_a_growing_log_and_catches_a_split_view() {
    let dir = tempfile::tempdir().unwrap();
    let wkey = witness::init(dir.path(), WITNESS).unwrap();
    assert!(
        witness::init(dir.path(), WITNESS).is_err(),
        "init never overwrites"
    );
    let mut log = Log {
        signer: NoteSigner::from_seed(ORIGIN, &[4; 32]).unwrap(),
        tree: MemoryTree::new(Blake3Hasher),
    };
    let log_key = log.signer.verifier_key().unwrap().to_string();
    let rt = tokio::runtime::Runtime::new().unwrap();

    let open = || Arc::new(Witness::open(dir.path(), std::slice::from_ref(&log_key)).unwrap());
    let w = open();
    assert_eq!(w.verifier_key().unwrap(), wkey);
    let running = rt
        .block_on(witness::start(
            Arc::clone(&w),
            "127.0.0.1:0".parse().unwrap(),
        ))
        .unwrap();
    let url = format!("http://{}", running.addr);

    // A growing log: 0 → 5 → 12 → 12 (same again) → 20.
    let mut old = 0;
    let mut witnessed_note = String::new();
    for size in [5u64, 12, 12, 20] {
        let note = log.grow(size);
        witnessed_note.clone_from(&note);
        let lines = witness::submit_checkpoint(&url, old, &log.proof(old, size), &note).unwrap();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].name, WITNESS);
        let t = verify_lines(&note, &lines, &wkey);
        assert!(t > 1_700_000_000, "timestamp {t}");
        assert_eq!(w.witnessed(ORIGIN).unwrap().size(), size);
        old = size;
    }
    let real20 = w.witnessed(ORIGIN).unwrap();

    // Stale old size: 409 with the witness's size, typed for the client.
    let note25 = log.grow(25);
    match witness::submit_checkpoint(&url, 12, &log.proof(12, 25), &note25) {
        Err(SubmitError::Conflict {
            sent: 12,
            witness_size: 20,
            ..
        }) => {}
        other => panic!("want a 409 conflict at 20, got {other:?}"),
    }

    // Split view: another root for size 20, signed with the gateway's own key.
    let forged = log.note(20, Hash32::blake3(b"another history"));
    match witness::submit_checkpoint(&url, 20, &[], &forged) {
        Err(SubmitError::Refused {
            status: 409, body, ..
        }) => {
            assert!(body.contains("split view"), "{body}");
        }
        other => panic!("want 409 split view, got {other:?}"),
    }
    // Also when the client pretends it is new (old 0).
    assert!(matches!(
        witness::submit_checkpoint(&url, 0, &[], &forged),
        Err(SubmitError::Refused { status: 409, .. })
    ));
    // An inconsistent proof from 20 to 25: 422.
    let mut bad = log.proof(20, 25);
    bad[0].0[0] ^= 1;
    assert!(matches!(
        witness::submit_checkpoint(&url, 20, &bad, &note25),
        Err(SubmitError::Refused { status: 422, .. })
    ));
    assert_eq!(w.witnessed(ORIGIN).unwrap(), real20, "state unchanged");
    let evidence = w.evidence_files().unwrap();
    assert_eq!(evidence.len(), 3, "{evidence:?}");
    let first = std::fs::read_to_string(&evidence[0]).unwrap();
    assert!(first.contains(&witnessed_note), "witnessed note kept");
    assert!(first.contains(&forged), "forged note kept");
    assert!(first.contains("split view"));

    // Other refusals: unknown log (404), another key (403), malformed (400).
    let stranger = NoteSigner::from_seed("other.example/log", &[1; 32]).unwrap();
    let foreign = Checkpoint::new("other.example/log", 1, Hash32([1; 32]))
        .unwrap()
        .sign(&stranger)
        .unwrap()
        .encode();
    let addr = running.addr.to_string();
    let (status, _) = raw_post(&addr, encode_add_checkpoint(0, &[], &foreign).as_bytes());
    assert_eq!(status, 404);
    let impostor = NoteSigner::from_seed(ORIGIN, &[5; 32]).unwrap();
    let forged_key = Checkpoint::new(ORIGIN, 25, log.tree.root())
        .unwrap()
        .sign(&impostor)
        .unwrap()
        .encode();
    let (status, _) = raw_post(
        &addr,
        encode_add_checkpoint(20, &[], &forged_key).as_bytes(),
    );
    assert_eq!(status, 403);
    let (status, _) = raw_post(&addr, b"old 020\n\n");
    assert_eq!(status, 400);
    let (status, body) = raw_post(&addr, encode_add_checkpoint(3, &[], &note25).as_bytes());
    assert_eq!((status, body.as_str()), (409, "20\n"));
    assert_eq!(w.evidence_files().unwrap().len(), 3);

    // Restart: the state survives, and the log carries on from it.
    rt.block_on(running.shutdown()).unwrap();
    drop(w);
    let w = open();
    assert_eq!(w.witnessed(ORIGIN).unwrap(), real20);
    let running = rt
        .block_on(witness::start(
            Arc::clone(&w),
            "127.0.0.1:0".parse().unwrap(),
        ))
        .unwrap();
    let url = format!("http://{}", running.addr);
    assert!(matches!(
        witness::submit_checkpoint(&url, 0, &[], &note25),
        Err(SubmitError::Conflict {
            witness_size: 20,
            ..
        })
    ));
    let lines = witness::submit_checkpoint(&url, 20, &log.proof(20, 25), &note25).unwrap();
    verify_lines(&note25, &lines, &wkey);
    assert_eq!(w.witnessed(ORIGIN).unwrap().size(), 25);
    rt.block_on(running.shutdown()).unwrap();

    // A state file that does not verify under the configured key is refused at open.
    let other_key = NoteSigner::from_seed(ORIGIN, &[6; 32])
        .unwrap()
        .verifier_key()
        .unwrap()
        .to_string();
    assert!(Witness::open(dir.path(), &[other_key]).is_err());
}
