//! Mutation tests: change every byte (or value) of valid proofs, checkpoints, notes, tlog-proofs
//! and chain blocks, and require a rejection with the error kind that part of the input implies.

// Test code: helpers outside #[test] functions may unwrap too; a failure aborts the test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use prov_ledger::Hash32;
use prov_ledger::chain::{
    BlockError, ChainBlock, ChainError, ChainFault, ChainVerifier, verify_chain,
};
use prov_ledger::checkpoint::{Checkpoint, CheckpointError};
use prov_ledger::hasher::{Blake3Hasher, LogHasher};
use prov_ledger::merkle::{MemoryTree, MerkleError, inclusion_proof_len, verify_inclusion};
use prov_ledger::note::{NoteError, NoteSigner, SignedNote, VerifierKey};
use prov_ledger::tlog_proof::{TlogProof, TlogProofError};

const ORIGIN: &str = "factory-a.example/line-logs/1";

fn signer() -> NoteSigner {
    NoteSigner::from_seed(ORIGIN, &Hash32::blake3(b"mutation test key").0).unwrap()
}

fn tree(n: u64) -> MemoryTree<Blake3Hasher> {
    let mut t = MemoryTree::new(Blake3Hasher);
    for i in 0..n {
        t.append_entry(format!("entry {i}").as_bytes());
    }
    t
}

fn open_bytes(note: &[u8], key: &VerifierKey) -> Result<Checkpoint, CheckpointError> {
    Checkpoint::open_note(&SignedNote::parse_bytes(note)?, key)
}

/// Every byte of every proof hash, of the leaf hash and of the root, flipped: RootMismatch.
#[test]
fn inclusion_hash_bytes() {
    let t = tree(1000);
    let (index, size) = (377, 1000);
    let h = Blake3Hasher;
    let root = t.root_at(size).unwrap();
    let leaf = t.leaf_hash(index).unwrap();
    let proof = t.inclusion_proof(index, size).unwrap();
    verify_inclusion(&h, index, size, &leaf, &proof, &root).unwrap();
    let mut mutants = 0;
    for flip in [0x01u8, 0x80, 0xff] {
        for i in 0..proof.len() {
            for b in 0..32 {
                let mut p = proof.clone();
                p[i].0[b] ^= flip;
                let err = verify_inclusion(&h, index, size, &leaf, &p, &root).unwrap_err();
                assert!(matches!(err, MerkleError::RootMismatch { .. }), "{err:?}");
                mutants += 1;
            }
        }
        for b in 0..32 {
            let mut l = leaf;
            l.0[b] ^= flip;
            let err = verify_inclusion(&h, index, size, &l, &proof, &root).unwrap_err();
            assert!(matches!(err, MerkleError::RootMismatch { .. }), "{err:?}");
            let mut r = root;
            r.0[b] ^= flip;
            let err = verify_inclusion(&h, index, size, &leaf, &proof, &r).unwrap_err();
            assert_eq!(err, MerkleError::RootMismatch { got: root, want: r });
            mutants += 2;
        }
    }
    assert_eq!(mutants, 3 * (proof.len() * 32 + 64));
}

/// Every other index and size (and every bit flip of both): the error kind is predicted by
/// the RFC's preconditions and proof length.
#[test]
fn inclusion_index_and_size() {
    let t = tree(1000);
    let h = Blake3Hasher;
    let (index, size) = (377u64, 1000u64);
    let root = t.root_at(size).unwrap();
    let leaf = t.leaf_hash(index).unwrap();
    let proof = t.inclusion_proof(index, size).unwrap();
    let expect = |i: u64, s: u64, err: MerkleError| match inclusion_proof_len(i, s) {
        Err(_) => assert_eq!(err, MerkleError::IndexOutOfRange { index: i, size: s }),
        Ok(want) if want != proof.len() => assert_eq!(
            err,
            MerkleError::ProofLength {
                got: proof.len(),
                want
            }
        ),
        Ok(_) => assert!(matches!(err, MerkleError::RootMismatch { .. }), "{err:?}"),
    };
    let bit_flips = |v: u64| (0..64).map(move |b| v ^ (1 << b));
    for i in (0..1100).chain(bit_flips(index)).filter(|&i| i != index) {
        expect(
            i,
            size,
            verify_inclusion(&h, i, size, &leaf, &proof, &root).unwrap_err(),
        );
    }
    // RFC 9162 §2.1.3.2 binds the tree size only through the path's shape (which side each
    // proof hash goes on): sizes giving the same shape compute the same root. That is inherent
    // to the algorithm; the signed checkpoint is what binds the size (see the note tests).
    let mut same_shape = 0;
    for s in (0..1100).chain(bit_flips(size)).filter(|&s| s != size) {
        match verify_inclusion(&h, index, s, &leaf, &proof, &root) {
            Err(err) => expect(index, s, err),
            Ok(()) => {
                assert_eq!(path_shape(index, s), path_shape(index, size), "size {s}");
                same_shape += 1;
            }
        }
    }
    eprintln!("sizes verifying through an identical path shape: {same_shape}");
}

/// The sides (true = proof hash on the left) RFC 9162 §2.1.3.2 puts the proof hashes on.
fn path_shape(index: u64, size: u64) -> Option<Vec<bool>> {
    let len = inclusion_proof_len(index, size).ok()?;
    let (mut f, mut s) = (index, size - 1);
    let mut sides = Vec::new();
    for _ in 0..len {
        if f & 1 == 1 || f == s {
            sides.push(true);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sides.push(false);
        }
        f >>= 1;
        s >>= 1;
    }
    Some(sides)
}

/// Region of a signed checkpoint note a byte belongs to, and the errors a change there may give.
fn allowed_note_errors(offset: usize, body_len: usize, err: &CheckpointError) -> bool {
    use NoteError as N;
    let CheckpointError::Note(n) = err else {
        return false;
    };
    if offset <= body_len {
        // The signed text and the blank line: the signature no longer matches, a character
        // became a control character or invalid UTF-8, or the separating blank line is gone.
        matches!(
            n,
            N::BadSignature { .. } | N::ControlChar { .. } | N::NotUtf8 { .. } | N::NoSeparator
        )
    } else {
        // The signature line: its prefix, the key name, the base64 payload, or its newline.
        matches!(
            n,
            N::NotUtf8 { .. }
                | N::ControlChar { .. }
                | N::LineSyntax { .. }
                | N::LineName { .. }
                | N::LineBase64 { .. }
                | N::MissingSignature { .. }
                | N::BadSignature { .. }
        )
    }
}

#[test]
fn checkpoint_note_bytes() {
    let s = signer();
    let key = s.verifier_key().unwrap();
    let t = tree(10);
    let cp = Checkpoint::new(ORIGIN, 10, t.root()).unwrap();
    let note = cp.sign(&s).unwrap().encode();
    let body_len = cp.body().len();
    assert_eq!(open_bytes(note.as_bytes(), &key), Ok(cp));
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for flip in [0x01u8, 0x20, 0x80] {
        for offset in 0..note.len() {
            let mut m = note.clone().into_bytes();
            m[offset] ^= flip;
            let err = open_bytes(&m, &key).unwrap_err();
            assert!(
                allowed_note_errors(offset, body_len, &err),
                "offset {offset} flip {flip:#x}: {err:?}"
            );
            let kind = format!("{err:?}");
            *counts
                .entry(
                    kind.split([' ', '(', '{'])
                        .take(2)
                        .collect::<Vec<_>>()
                        .join(" "),
                )
                .or_default() += 1;
        }
    }
    eprintln!("checkpoint note mutants by error: {counts:?}");
}

/// Every byte of the 64-byte signature: BadSignature; of the key ID: MissingSignature.
#[test]
fn note_signature_bytes() {
    let s = signer();
    let key = s.verifier_key().unwrap();
    let note = Checkpoint::new(ORIGIN, 1, Hash32([9; 32]))
        .unwrap()
        .sign(&s)
        .unwrap();
    for b in 0..64 {
        for flip in [0x01u8, 0xff] {
            let mut sig = note.signatures()[0].clone();
            sig.signature[b] ^= flip;
            let n = SignedNote::new(note.text().into(), vec![sig]).unwrap();
            let reparsed = SignedNote::parse(&n.encode()).unwrap();
            assert_eq!(
                reparsed.verify(&key),
                Err(NoteError::BadSignature {
                    name: ORIGIN.into(),
                    key_id: key.key_id()
                })
            );
        }
    }
    for b in 0..4 {
        let mut sig = note.signatures()[0].clone();
        sig.key_id.0[b] ^= 1;
        let n = SignedNote::new(note.text().into(), vec![sig]).unwrap();
        assert!(matches!(
            n.verify(&key),
            Err(NoteError::MissingSignature { .. })
        ));
    }
}

#[test]
fn tlog_proof_bytes() {
    let s = signer();
    let key = s.verifier_key().unwrap();
    let t = tree(21);
    let cp = Checkpoint::new(ORIGIN, 21, t.root()).unwrap();
    let note = cp.sign(&s).unwrap().encode();
    let index = 13;
    let proof = TlogProof::new(index, t.inclusion_proof(index, 21).unwrap(), note.clone()).unwrap();
    let text = proof.encode();
    let entry = format!("entry {index}");
    let check = |bytes: &[u8]| -> Result<Checkpoint, TlogProofError> {
        let text = std::str::from_utf8(bytes).map_err(|_| {
            TlogProofError::Checkpoint(CheckpointError::Note(NoteError::NotUtf8 { valid_up_to: 0 }))
        })?;
        TlogProof::parse(text)?.verify_entry(entry.as_bytes(), &key)
    };
    assert_eq!(check(text.as_bytes()), Ok(cp));
    let note_start = text.len() - note.len();
    let index_line = "c2sp.org/tlog-proof@v1\n".len();
    let hashes_start = index_line + format!("index {index}\n").len();
    for flip in [0x01u8, 0x20, 0x80] {
        for offset in 0..text.len() {
            let mut m = text.clone().into_bytes();
            m[offset] ^= flip;
            let err = check(&m).unwrap_err();
            use TlogProofError as T;
            let ok = if offset < index_line {
                matches!(
                    err,
                    T::Header | T::Checkpoint(CheckpointError::Note(NoteError::NotUtf8 { .. }))
                )
            } else if offset < hashes_start {
                // The index line: its keyword, digits, newline; a changed index that still parses
                // fails the Merkle check.
                matches!(
                    err,
                    T::IndexLine
                        | T::IndexSyntax { .. }
                        | T::Merkle(_)
                        | T::Checkpoint(CheckpointError::Note(NoteError::NotUtf8 { .. }))
                )
            } else if offset < note_start {
                // Hash lines and the blank line.
                matches!(
                    err,
                    T::HashBase64 { .. }
                        | T::HashLength { .. }
                        | T::Merkle(MerkleError::RootMismatch { .. })
                        | T::Merkle(MerkleError::ProofLength { .. })
                        | T::Checkpoint(CheckpointError::Note(_))
                )
            } else {
                matches!(&err, T::Checkpoint(c) if allowed_note_errors(offset - note_start, cp_body_len(&note), c))
            };
            assert!(ok, "offset {offset} flip {flip:#x}: {err:?}");
        }
    }
}

fn cp_body_len(note: &str) -> usize {
    note.rfind("\n\n").unwrap() + 1
}

/// A chain of four blocks; every byte of every block flipped: the chain fails at that block,
/// with a fault matching the part of the block that was changed.
#[test]
fn chain_block_bytes() {
    let s = signer();
    let key = s.verifier_key().unwrap();
    let t = tree(40);
    let sizes = [5u64, 8, 21, 40];
    let mut blocks: Vec<ChainBlock> = Vec::new();
    for (i, &size) in sizes.iter().enumerate() {
        let note = Checkpoint::new(ORIGIN, size, t.root_at(size).unwrap())
            .unwrap()
            .sign(&s)
            .unwrap()
            .encode();
        let block = match blocks.last() {
            None => ChainBlock::genesis(note),
            Some(prev) => {
                let proof = t.consistency_proof(sizes[i - 1], size).unwrap();
                ChainBlock::next(prev, note, proof).unwrap()
            }
        };
        blocks.push(block);
    }
    let encoded: Vec<Vec<u8>> = blocks.iter().map(ChainBlock::encode).collect();
    assert_eq!(verify_chain(&encoded, &key).unwrap().size(), 40);
    // Verify the blocks before `k` once, then each mutant of block `k` from that state.
    let mut before = ChainVerifier::new(key.clone());
    for (k, block) in blocks.iter().enumerate() {
        let bytes = &encoded[k];
        let note_len = block.checkpoint_note().len();
        let note_start = 35 + if note_len < 256 { 2 } else { 3 };
        let note_end = note_start + note_len;
        for flip in [0x01u8, 0x80] {
            for offset in 0..bytes.len() {
                let mut mutant = bytes.clone();
                mutant[offset] ^= flip;
                let mut v = before.clone();
                let ChainError { block: at, fault } = v.push(&mutant).unwrap_err();
                assert_eq!(at, k, "offset {offset}: {fault:?}");
                assert_eq!(v.blocks(), k);
                let ok = match offset {
                    3..35 => matches!(fault, ChainFault::PrevMismatch { .. }),
                    o if (note_start..note_end).contains(&o) => matches!(
                        fault,
                        ChainFault::Checkpoint(_) | ChainFault::Decode(BlockError::Cbor { .. })
                    ),
                    o if o > note_end && (o - note_end - 1) % 34 >= 2 => matches!(
                        fault,
                        ChainFault::Consistency(
                            MerkleError::RootMismatch { .. } | MerkleError::OldRootMismatch { .. }
                        )
                    ),
                    // CBOR heads: the array, the byte and text string lengths, the proof array.
                    _ => matches!(fault, ChainFault::Decode(_)),
                };
                assert!(ok, "block {k} offset {offset} flip {flip:#x}: {fault:?}");
            }
        }
        before.push(bytes).unwrap();
    }
    // And the whole chain with one flipped byte fails at that block.
    let mut chain = encoded.clone();
    chain[2][10] ^= 1;
    assert!(matches!(
        verify_chain(&chain, &key),
        Err(ChainError {
            block: 2,
            fault: ChainFault::PrevMismatch { .. }
        })
    ));
    // The leaf hasher is BLAKE3 with the 0x00 prefix (SPEC §4).
    assert_eq!(
        t.leaf_hash(0).unwrap(),
        Hash32::blake3(&[b"\x00".as_slice(), b"entry 0"].concat())
    );
    assert_eq!(Blake3Hasher.hash_leaf(b"entry 0"), t.leaf_hash(0).unwrap());
}
