//! Property tests of the text formats: checkpoint bodies, signed notes and tlog-proofs encode
//! and parse back to the same value and the same bytes, and sign/verify round-trips.

// Test code: helpers outside #[test] functions may unwrap too; a failure aborts the test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use prop::test_runner::{Config, FileFailurePersistence};
use proptest::prelude::*;
use prov_ledger::Hash32;
use prov_ledger::checkpoint::Checkpoint;
use prov_ledger::note::{CosignatureSigner, NoteSigner, SignedNote, VerifierKey};
use prov_ledger::tlog_proof::TlogProof;

fn origin() -> impl Strategy<Value = String> {
    "[a-z0-9][a-z0-9./_-]{0,40}"
}

proptest! {
    #![proptest_config(Config {
        cases: 64,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..Config::default()
    })]

    #[test]
    fn checkpoint_note_and_proof_round_trip(
        origin in origin(),
        size in any::<u64>(),
        root in any::<[u8; 32]>(),
        seed in any::<[u8; 32]>(),
        hashes in prop::collection::vec(any::<[u8; 32]>(), 0..64),
        index in any::<u64>(),
        witness_time in 0..=i64::MAX as u64,
    ) {
        let cp = Checkpoint::new(&origin, size, Hash32(root)).unwrap();
        let body = cp.body();
        prop_assert_eq!(Checkpoint::parse(&body).unwrap(), cp.clone());

        let signer = NoteSigner::from_seed(&origin, &seed).unwrap();
        let key = signer.verifier_key().unwrap();
        prop_assert_eq!(VerifierKey::parse(&key.to_string()).unwrap(), key.clone());
        let mut note = cp.sign(&signer).unwrap();
        let witness = CosignatureSigner::from_seed("witness.example/w1", &seed).unwrap();
        note.push_signature(witness.cosign(&body, witness_time).unwrap()).unwrap();
        let text = note.encode();
        let parsed = SignedNote::parse(&text).unwrap();
        prop_assert_eq!(&parsed, &note);
        prop_assert_eq!(parsed.encode(), text.clone());
        prop_assert_eq!(Checkpoint::open(&text, &key).unwrap(), cp);
        prop_assert_eq!(
            parsed.verify_cosignature(&witness.verifier_key().unwrap()).unwrap(),
            witness_time
        );

        let proof = TlogProof::new(index, hashes.into_iter().map(Hash32).collect(), text).unwrap();
        let encoded = proof.encode();
        let back = TlogProof::parse(&encoded).unwrap();
        prop_assert_eq!(&back, &proof);
        prop_assert_eq!(back.encode(), encoded);
    }
}
