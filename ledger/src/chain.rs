//! The checkpoint chain (SPEC §5): every signed checkpoint, hash-linked to the one before and
//! carrying the consistency proof from it, so that anyone can replay the log's history from
//! block 0 and see that it only ever grew.
//!
//! A block is the deterministic CBOR array
//! `[prev_block_hash (bstr 32), signed checkpoint note (tstr), [consistency proof (bstr 32)...]]`
//! and its hash is `BLAKE3(block bytes)`. Block 0 has 32 zero bytes as `prev` and no proof.
//! Decoding is strict: one block has one encoding (definite lengths, shortest heads, no trailing
//! bytes), checked by re-encoding, so that the block hash is a function of the block's content.

use alloc::string::String;
use alloc::vec::Vec;
use core::convert::Infallible;

use minicbor::{Decoder, Encoder};
use prov_schemas::Hash32;

use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::hasher::{Blake3Hasher, LogHasher};
use crate::merkle::{MAX_CONSISTENCY_PROOF_LEN, MerkleError, verify_consistency};
use crate::note::VerifierKey;

/// A block's bytes are not a well-formed, canonically encoded chain block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// The bytes are not the expected CBOR items (wrong type, truncated, invalid UTF-8...).
    #[error("CBOR: {detail}")]
    Cbor {
        /// The decoder's description, with the byte position.
        detail: String,
    },
    /// An indefinite-length array.
    #[error("indefinite-length array")]
    Indefinite,
    /// The block array does not have three items.
    #[error("block array has {got} items, want 3")]
    ArrayLength {
        /// Items declared.
        got: u64,
    },
    /// `prev_block_hash` is not 32 bytes.
    #[error("previous block hash has {got} bytes, want 32")]
    PrevLength {
        /// Bytes found.
        got: usize,
    },
    /// More proof hashes than any consistency proof has.
    #[error("consistency proof has {got} hashes, at most {max} are possible")]
    ProofTooLong {
        /// Hashes declared.
        got: u64,
        /// The limit.
        max: usize,
    },
    /// A proof hash is not 32 bytes.
    #[error("proof hash {position} has {got} bytes, want 32")]
    ProofHashLength {
        /// 0-based position in the proof.
        position: usize,
        /// Bytes found.
        got: usize,
    },
    /// Bytes after the block.
    #[error("{extra} bytes after the block")]
    TrailingBytes {
        /// How many.
        extra: usize,
    },
    /// The block decodes, but is not in its one deterministic encoding.
    #[error("block is not deterministically encoded")]
    NotCanonical,
}

/// What is wrong with a chain block (see [`ChainError`] for which block).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainFault {
    /// There are no blocks to verify.
    #[error("the chain is empty")]
    Empty,
    /// The block's bytes are malformed.
    #[error("malformed block: {0}")]
    Decode(BlockError),
    /// `prev` is not the hash of the previous block (32 zero bytes for block 0).
    #[error("previous block hash is {got}, want {want}")]
    PrevMismatch {
        /// As written in the block.
        got: Hash32,
        /// The previous block's hash.
        want: Hash32,
    },
    /// Block 0 carries a consistency proof.
    #[error("block 0 carries {got} proof hashes, want none")]
    GenesisProof {
        /// Hashes found.
        got: usize,
    },
    /// The checkpoint note is malformed, not signed by the trusted key, or for another origin.
    #[error("checkpoint: {0}")]
    Checkpoint(CheckpointError),
    /// The checkpoint's origin differs from the chain's.
    #[error("origin changed from {want:?} to {got:?}")]
    OriginChanged {
        /// This block's origin.
        got: String,
        /// The chain's origin (block 0's).
        want: String,
    },
    /// The tree size went down.
    #[error("tree size went down from {from} to {to}")]
    SizeShrank {
        /// The previous checkpoint's size.
        from: u64,
        /// This checkpoint's size.
        to: u64,
    },
    /// A checkpoint of size 0 whose root is not the empty tree's.
    #[error("size-0 checkpoint has root {got}, want the empty root {want}")]
    EmptyTreeRoot {
        /// The checkpoint's root.
        got: Hash32,
        /// BLAKE3("").
        want: Hash32,
    },
    /// The consistency proof from the previous checkpoint does not verify.
    #[error("consistency with the previous checkpoint: {0}")]
    Consistency(MerkleError),
}

/// A chain failed verification at block `block`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("chain block {block}: {fault}")]
pub struct ChainError {
    /// The 0-based index of the first block that failed.
    pub block: usize,
    /// What failed.
    #[source]
    pub fault: ChainFault,
}

/// One block of the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBlock {
    prev: Hash32,
    checkpoint_note: String,
    proof: Vec<Hash32>,
}

impl ChainBlock {
    /// Block 0: `prev` is 32 zero bytes, and there is no proof.
    pub fn genesis(checkpoint_note: String) -> ChainBlock {
        ChainBlock {
            prev: Hash32::ZERO,
            checkpoint_note,
            proof: Vec::new(),
        }
    }

    /// A block from its parts (the note is not verified here).
    ///
    /// # Errors
    /// [`BlockError::ProofTooLong`].
    pub fn new(
        prev_block_hash: Hash32,
        checkpoint_note: String,
        proof: Vec<Hash32>,
    ) -> Result<ChainBlock, BlockError> {
        if proof.len() > MAX_CONSISTENCY_PROOF_LEN {
            return Err(BlockError::ProofTooLong {
                got: proof.len() as u64,
                max: MAX_CONSISTENCY_PROOF_LEN,
            });
        }
        Ok(ChainBlock {
            prev: prev_block_hash,
            checkpoint_note,
            proof,
        })
    }

    /// The block after `prev`: links to its hash and carries the consistency proof from its
    /// checkpoint to `checkpoint_note`'s.
    ///
    /// # Errors
    /// [`BlockError::ProofTooLong`].
    pub fn next(
        prev: &ChainBlock,
        checkpoint_note: String,
        proof: Vec<Hash32>,
    ) -> Result<ChainBlock, BlockError> {
        ChainBlock::new(prev.hash(), checkpoint_note, proof)
    }

    /// The previous block's hash.
    pub fn prev(&self) -> Hash32 {
        self.prev
    }

    /// The signed checkpoint note, verbatim.
    pub fn checkpoint_note(&self) -> &str {
        &self.checkpoint_note
    }

    /// The consistency proof from the previous block's checkpoint.
    pub fn proof(&self) -> &[Hash32] {
        &self.proof
    }

    /// The block's deterministic CBOR encoding.
    pub fn encode(&self) -> Vec<u8> {
        // Writing into a Vec cannot fail; minicbor's signature still returns a Result, whose
        // error case would yield an empty (and so undecodable, never valid) block.
        self.try_encode().unwrap_or_default()
    }

    fn try_encode(&self) -> Result<Vec<u8>, minicbor::encode::Error<Infallible>> {
        let mut e = Encoder::new(Vec::with_capacity(
            48 + self.checkpoint_note.len() + 34 * self.proof.len(),
        ));
        e.array(3)?
            .bytes(&self.prev.0)?
            .str(&self.checkpoint_note)?
            .array(self.proof.len() as u64)?;
        for h in &self.proof {
            e.bytes(&h.0)?;
        }
        Ok(e.into_writer())
    }

    /// The block hash: BLAKE3 of the encoding.
    pub fn hash(&self) -> Hash32 {
        Hash32::blake3(&self.encode())
    }

    /// Decodes a block strictly.
    ///
    /// # Errors
    /// Any [`BlockError`].
    pub fn decode(bytes: &[u8]) -> Result<ChainBlock, BlockError> {
        let cbor = |e: minicbor::decode::Error| BlockError::Cbor {
            detail: alloc::format!("{e}"),
        };
        let mut d = Decoder::new(bytes);
        match d.array().map_err(cbor)? {
            Some(3) => {}
            Some(got) => return Err(BlockError::ArrayLength { got }),
            None => return Err(BlockError::Indefinite),
        }
        let prev = d.bytes().map_err(cbor)?;
        let prev =
            Hash32::from_slice(prev).map_err(|_| BlockError::PrevLength { got: prev.len() })?;
        let note = d.str().map_err(cbor)?;
        let n = d.array().map_err(cbor)?.ok_or(BlockError::Indefinite)?;
        if n > MAX_CONSISTENCY_PROOF_LEN as u64 {
            return Err(BlockError::ProofTooLong {
                got: n,
                max: MAX_CONSISTENCY_PROOF_LEN,
            });
        }
        let mut proof = Vec::with_capacity(n as usize);
        for position in 0..n as usize {
            let h = d.bytes().map_err(cbor)?;
            proof.push(
                Hash32::from_slice(h).map_err(|_| BlockError::ProofHashLength {
                    position,
                    got: h.len(),
                })?,
            );
        }
        let extra = bytes.len().saturating_sub(d.position());
        if extra != 0 {
            return Err(BlockError::TrailingBytes { extra });
        }
        let block = ChainBlock {
            prev,
            checkpoint_note: note.into(),
            proof,
        };
        if block.encode() != bytes {
            return Err(BlockError::NotCanonical);
        }
        Ok(block)
    }
}

/// Verifies a chain incrementally, block by block, from block 0.
///
/// After a failed [`ChainVerifier::push`] the state is unchanged: the last good checkpoint
/// stays the latest verified one.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    key: VerifierKey,
    blocks: usize,
    last: Option<(Hash32, Checkpoint)>,
}

impl ChainVerifier {
    /// A verifier for the chain of the log whose checkpoint key is `key`.
    pub fn new(key: VerifierKey) -> ChainVerifier {
        ChainVerifier {
            key,
            blocks: 0,
            last: None,
        }
    }

    /// Number of blocks verified so far.
    pub fn blocks(&self) -> usize {
        self.blocks
    }

    /// The latest verified checkpoint.
    pub fn latest(&self) -> Option<&Checkpoint> {
        self.last.as_ref().map(|(_, c)| c)
    }

    /// The hash of the latest verified block.
    pub fn last_block_hash(&self) -> Option<Hash32> {
        self.last.as_ref().map(|(h, _)| *h)
    }

    /// Verifies the next block and returns its checkpoint.
    ///
    /// # Errors
    /// [`ChainError`] naming this block's index and the fault.
    pub fn push(&mut self, block_bytes: &[u8]) -> Result<&Checkpoint, ChainError> {
        let index = self.blocks;
        let fail = |fault| ChainError {
            block: index,
            fault,
        };
        let block = ChainBlock::decode(block_bytes).map_err(|e| fail(ChainFault::Decode(e)))?;
        let want_prev = self.last_block_hash().unwrap_or(Hash32::ZERO);
        if block.prev != want_prev {
            return Err(fail(ChainFault::PrevMismatch {
                got: block.prev,
                want: want_prev,
            }));
        }
        let checkpoint = Checkpoint::open(&block.checkpoint_note, &self.key)
            .map_err(|e| fail(ChainFault::Checkpoint(e)))?;
        let empty = Blake3Hasher.empty_root();
        if checkpoint.size() == 0 && checkpoint.root() != empty {
            return Err(fail(ChainFault::EmptyTreeRoot {
                got: checkpoint.root(),
                want: empty,
            }));
        }
        match &self.last {
            None => {
                if !block.proof.is_empty() {
                    return Err(fail(ChainFault::GenesisProof {
                        got: block.proof.len(),
                    }));
                }
            }
            Some((_, prev)) => {
                if checkpoint.origin() != prev.origin() {
                    return Err(fail(ChainFault::OriginChanged {
                        got: checkpoint.origin().into(),
                        want: prev.origin().into(),
                    }));
                }
                if checkpoint.size() < prev.size() {
                    return Err(fail(ChainFault::SizeShrank {
                        from: prev.size(),
                        to: checkpoint.size(),
                    }));
                }
                if prev.size() == 0 {
                    // Every tree extends the empty tree: nothing to prove, so nothing may be sent.
                    if !block.proof.is_empty() {
                        return Err(fail(ChainFault::Consistency(MerkleError::ProofLength {
                            got: block.proof.len(),
                            want: 0,
                        })));
                    }
                } else {
                    verify_consistency(
                        &Blake3Hasher,
                        prev.size(),
                        checkpoint.size(),
                        &block.proof,
                        &prev.root(),
                        &checkpoint.root(),
                    )
                    .map_err(|e| fail(ChainFault::Consistency(e)))?;
                }
            }
        }
        self.blocks += 1;
        let last = self.last.insert((Hash32::blake3(block_bytes), checkpoint));
        Ok(&last.1)
    }
}

/// Replays a whole chain from block 0 under the trusted checkpoint key and returns the latest
/// verified checkpoint.
///
/// # Errors
/// [`ChainError`] naming the first block that failed and why; block 0 with
/// [`ChainFault::Empty`] for an empty chain.
pub fn verify_chain<B: AsRef<[u8]>>(
    blocks: &[B],
    key: &VerifierKey,
) -> Result<Checkpoint, ChainError> {
    let mut verifier = ChainVerifier::new(key.clone());
    for block in blocks {
        verifier.push(block.as_ref())?;
    }
    verifier.latest().cloned().ok_or(ChainError {
        block: 0,
        fault: ChainFault::Empty,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::MemoryTree;
    use crate::note::NoteSigner;

    #[test]
    fn build_and_replay() {
        let signer = NoteSigner::from_seed("factory-a.example/line-logs/1", &[4; 32]).unwrap();
        let key = signer.verifier_key().unwrap();
        let mut tree = MemoryTree::new(Blake3Hasher);
        let mut blocks: Vec<ChainBlock> = Vec::new();
        let mut prev_size = 0u64;
        for (step, size) in [0u64, 3, 3, 9, 16, 17].into_iter().enumerate() {
            while tree.size() < size {
                tree.append_entry(&tree.size().to_be_bytes());
            }
            let note = Checkpoint::new(signer.name(), size, tree.root())
                .unwrap()
                .sign(&signer)
                .unwrap()
                .encode();
            let block = match blocks.last() {
                None => ChainBlock::genesis(note),
                Some(prev) => {
                    let proof = if prev_size == 0 {
                        Vec::new()
                    } else {
                        tree.consistency_proof(prev_size, size).unwrap()
                    };
                    ChainBlock::next(prev, note, proof).unwrap()
                }
            };
            let bytes = block.encode();
            assert_eq!(ChainBlock::decode(&bytes), Ok(block.clone()), "step {step}");
            blocks.push(block);
            prev_size = size;
        }
        let encoded: Vec<Vec<u8>> = blocks.iter().map(ChainBlock::encode).collect();
        let latest = verify_chain(&encoded, &key).unwrap();
        assert_eq!(latest.size(), 17);
        assert_eq!(latest.root(), tree.root());
        assert_eq!(
            verify_chain::<Vec<u8>>(&[], &key),
            Err(ChainError {
                block: 0,
                fault: ChainFault::Empty
            })
        );
        // Dropping a block breaks the link at the block after it.
        let mut gap = encoded.clone();
        gap.remove(2);
        assert!(matches!(
            verify_chain(&gap, &key),
            Err(ChainError {
                block: 2,
                fault: ChainFault::PrevMismatch { .. }
            })
        ));
    }

    #[test]
    fn strict_decoding() {
        let block =
            ChainBlock::new(Hash32([1; 32]), "n".into(), alloc::vec![Hash32([2; 32])]).unwrap();
        let bytes = block.encode();
        assert_eq!(bytes[0], 0x83);
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert_eq!(
            ChainBlock::decode(&trailing),
            Err(BlockError::TrailingBytes { extra: 1 })
        );
        // The same block with a non-shortest text length head (0x78 0x01 instead of 0x61).
        let pos = 1 + 2 + 32; // array head, bstr head (0x58 0x20), 32 bytes
        assert_eq!(bytes[pos], 0x61);
        let mut long = bytes[..pos].to_vec();
        long.extend_from_slice(&[0x78, 0x01]);
        long.extend_from_slice(&bytes[pos + 1..]);
        assert_eq!(ChainBlock::decode(&long), Err(BlockError::NotCanonical));
        // Indefinite outer array.
        let mut indef = alloc::vec![0x9f];
        indef.extend_from_slice(&bytes[1..]);
        indef.push(0xff);
        assert_eq!(ChainBlock::decode(&indef), Err(BlockError::Indefinite));
        let mut four = bytes.clone();
        four[0] = 0x84;
        assert_eq!(
            ChainBlock::decode(&four),
            Err(BlockError::ArrayLength { got: 4 })
        );
        assert!(matches!(
            ChainBlock::decode(&bytes[..bytes.len() - 1]),
            Err(BlockError::Cbor { .. })
        ));
    }
}
