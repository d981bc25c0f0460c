//! RFC 9162 §2.1 Merkle tree maths, generic over the [`LogHasher`].
//!
//! - Tree hash: [`root_from_leaf_hashes`] is the RFC's recursive definition, kept as the
//!   reference the faster structures are tested against.
//! - Proof generation ([`inclusion_proof`], [`consistency_proof`], [`root`]) follows the RFC's
//!   recursive `PATH` and `SUBPROOF` definitions, reading stored hashes of complete, aligned
//!   subtrees through a [`NodeSource`]. Only complete subtrees are ever stored (they never change
//!   once written), so the gateway can serve them from tiles on disk; the few hashes over a
//!   ragged right edge are recomputed from complete subtrees, O(log n) of them per proof.
//! - Proof verification ([`verify_inclusion`], [`verify_consistency`]) is the RFC's algorithms
//!   of §2.1.3.2 and §2.1.4.2, preceded by an exact length check so that a wrong proof length
//!   is reported as such (`got`/`want`) instead of as a root mismatch.
//! - [`MemoryTree`] is an append-only in-memory tree; [`Frontier`] keeps only the right edge.

use alloc::vec::Vec;
use prov_schemas::Hash32;

use crate::hasher::LogHasher;

/// The most hashes any inclusion proof can have: one per level of a tree of `u64` size.
pub const MAX_INCLUSION_PROOF_LEN: usize = 64;
/// The most hashes any consistency proof can have: one per level, plus the old tree's seed.
pub const MAX_CONSISTENCY_PROOF_LEN: usize = 65;

/// A proof could not be generated or did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MerkleError {
    /// The leaf index is not inside the tree (RFC 9162 requires `index < size`).
    #[error("leaf index {index} is not below tree size {size}")]
    IndexOutOfRange {
        /// The index asked for.
        index: u64,
        /// The tree size it was checked against.
        size: u64,
    },
    /// A tree size beyond the leaves this tree holds.
    #[error("tree size {size} is beyond the {available} leaves available")]
    SizeOutOfRange {
        /// The size asked for.
        size: u64,
        /// The leaves available.
        available: u64,
    },
    /// A consistency proof was asked from a larger tree to a smaller one.
    #[error("old size {size1} is greater than new size {size2}")]
    SizesOutOfOrder {
        /// The old (first) size.
        size1: u64,
        /// The new (second) size.
        size2: u64,
    },
    /// A consistency proof from the empty tree: RFC 9162 defines none (it would prove nothing).
    #[error("no consistency proof from the empty tree (new size {size2})")]
    EmptyOldTree {
        /// The new (second) size.
        size2: u64,
    },
    /// The proof does not have the number of hashes the sizes and index imply.
    #[error("proof has {got} hashes, want {want}")]
    ProofLength {
        /// Hashes received.
        got: usize,
        /// Hashes the RFC's algorithm consumes for these sizes.
        want: usize,
    },
    /// A proof hash given as raw bytes is not 32 bytes long.
    #[error("proof hash {position} has {got} bytes, want 32")]
    HashLength {
        /// Its position in the proof.
        position: usize,
        /// Its length.
        got: usize,
    },
    /// The root computed from the proof differs from the expected (new) root.
    #[error("computed root {got} does not match expected root {want}")]
    RootMismatch {
        /// Computed from the proof.
        got: Hash32,
        /// Expected by the caller.
        want: Hash32,
    },
    /// A consistency proof does not lead back to the old tree's root.
    #[error("computed old root {got} does not match expected old root {want}")]
    OldRootMismatch {
        /// Computed from the proof.
        got: Hash32,
        /// Expected by the caller.
        want: Hash32,
    },
    /// A node source does not hold a subtree hash the proof needs.
    #[error("no stored hash for the subtree at level {level}, index {index}")]
    NodeMissing {
        /// Height of the subtree (0 = leaf).
        level: u32,
        /// Its index among the subtrees of that height.
        index: u64,
    },
    /// An append would make the tree larger than `u64::MAX` leaves.
    #[error("the tree is full")]
    TreeFull,
}

/// Proof generation failed: either the request was invalid, or the node source failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError<E> {
    /// The request itself is invalid (index or sizes out of range).
    #[error(transparent)]
    Merkle(#[from] MerkleError),
    /// The node source could not provide a subtree hash (e.g. an I/O error on disk).
    #[error("node source failed: {0}")]
    Source(E),
}

/// Where proof generation reads the hashes of complete, aligned subtrees.
///
/// `node(level, index)` is the tree hash of leaves `[index * 2^level, (index + 1) * 2^level)`;
/// level 0 holds the leaf hashes. Only subtrees lying entirely inside the requested tree size
/// are ever asked for, so a source never needs hashes over a ragged right edge.
pub trait NodeSource {
    /// Why a hash could not be provided.
    type Error;
    /// The hash of the complete subtree at `level`, position `index` on that level.
    fn node(&self, level: u32, index: u64) -> Result<Hash32, Self::Error>;
}

/// Converts raw byte strings (e.g. decoded from JSON or text) to proof hashes.
///
/// # Errors
/// [`MerkleError::HashLength`] for the first item that is not exactly 32 bytes.
pub fn hashes_from_slices<T: AsRef<[u8]>>(items: &[T]) -> Result<Vec<Hash32>, MerkleError> {
    items
        .iter()
        .enumerate()
        .map(|(position, item)| {
            let bytes = item.as_ref();
            Hash32::from_slice(bytes).map_err(|_| MerkleError::HashLength {
                position,
                got: bytes.len(),
            })
        })
        .collect()
}

/// The RFC 9162 §2.1.1 tree hash of a list of leaf hashes, by the recursive definition.
///
/// O(n) hashes and O(log n) stack: the reference that [`MemoryTree`] and [`Frontier`] are tested
/// against, and a fine way to hash a small batch.
pub fn root_from_leaf_hashes<H: LogHasher>(hasher: &H, leaves: &[Hash32]) -> Hash32 {
    match leaves {
        [] => hasher.empty_root(),
        [leaf] => *leaf,
        _ => {
            let k = split_point(leaves.len() as u64) as usize;
            let (left, right) = leaves.split_at(k.min(leaves.len()));
            hasher.hash_children(
                &root_from_leaf_hashes(hasher, left),
                &root_from_leaf_hashes(hasher, right),
            )
        }
    }
}

/// The largest power of two strictly below `n` (RFC 9162's `k`); `n` must be at least 2.
fn split_point(n: u64) -> u64 {
    1u64 << (63 - (n - 1).leading_zeros())
}

/// Number of significant bits of `x` (Go's `bits.Len64`).
fn bit_len(x: u64) -> u32 {
    64 - x.leading_zeros()
}

/// Splits the inclusion proof of `index` in a tree of `size` (index < size) into the part
/// below the point where the paths to `index` and `size - 1` diverge, and the part above it.
fn decompose_inclusion(index: u64, size: u64) -> (u32, u32) {
    let inner = bit_len(index ^ (size - 1));
    let border = index.checked_shr(inner).unwrap_or(0).count_ones();
    (inner, border)
}

/// The exact number of hashes in the inclusion proof of `index` in a tree of `size`.
///
/// # Errors
/// [`MerkleError::IndexOutOfRange`] unless `index < size`.
pub fn inclusion_proof_len(index: u64, size: u64) -> Result<usize, MerkleError> {
    if index >= size {
        return Err(MerkleError::IndexOutOfRange { index, size });
    }
    let (inner, border) = decompose_inclusion(index, size);
    Ok((inner + border) as usize)
}

/// The exact number of hashes in the consistency proof from `size1` to `size2`.
///
/// # Errors
/// [`MerkleError::SizesOutOfOrder`] if `size1 > size2`; [`MerkleError::EmptyOldTree`] if
/// `size1` is 0 (RFC 9162 defines proofs only for `0 < size1 <= size2`).
pub fn consistency_proof_len(size1: u64, size2: u64) -> Result<usize, MerkleError> {
    if size1 > size2 {
        return Err(MerkleError::SizesOutOfOrder { size1, size2 });
    }
    if size1 == 0 {
        return Err(MerkleError::EmptyOldTree { size2 });
    }
    if size1 == size2 {
        return Ok(0);
    }
    let (inner, border) = decompose_inclusion(size1 - 1, size2);
    let shift = size1.trailing_zeros();
    let seed = usize::from(!size1.is_power_of_two());
    Ok(seed + (inner - shift) as usize + border as usize)
}

/// The tree hash of leaves `[begin, end)`, where `begin` is a multiple of the largest power of
/// two not above `end - begin` (always so for the ranges RFC 9162's recursion produces).
///
/// The range splits into complete subtrees, one per set bit of its length, largest first; the
/// RFC's recursion hashes them together from the right.
fn range_hash<H: LogHasher, S: NodeSource>(
    hasher: &H,
    source: &S,
    begin: u64,
    end: u64,
) -> Result<Hash32, S::Error> {
    let len = end.saturating_sub(begin);
    if len == 0 {
        return Ok(hasher.empty_root());
    }
    let mut acc: Option<Hash32> = None;
    let mut block_end = end;
    for level in 0..64u32 {
        if len >> level & 1 == 0 {
            continue;
        }
        let block_begin = block_end - (1u64 << level);
        let node = source.node(level, block_begin >> level)?;
        acc = Some(match acc {
            None => node,
            Some(right) => hasher.hash_children(&node, &right),
        });
        block_end = block_begin;
    }
    Ok(acc.unwrap_or_else(|| hasher.empty_root()))
}

/// The root of the tree of the first `size` leaves of `source`, in O(log size) node reads.
///
/// # Errors
/// Whatever the source returns for a missing subtree.
pub fn root<H: LogHasher, S: NodeSource>(
    hasher: &H,
    source: &S,
    size: u64,
) -> Result<Hash32, S::Error> {
    range_hash(hasher, source, 0, size)
}

/// The RFC 9162 §2.1.3.1 inclusion proof (`PATH(m, D[n])`) of leaf `index` in the tree of the
/// first `size` leaves, ordered from the leaf's sibling up to the root's child.
///
/// # Errors
/// [`MerkleError::IndexOutOfRange`] unless `index < size`; the source's error if it lacks a node.
pub fn inclusion_proof<H: LogHasher, S: NodeSource>(
    hasher: &H,
    source: &S,
    index: u64,
    size: u64,
) -> Result<Vec<Hash32>, ProofError<S::Error>> {
    let want = inclusion_proof_len(index, size)?;
    let mut proof = Vec::with_capacity(want);
    // Walk down from the root; siblings come out root-first and are reversed at the end.
    let (mut lo, mut hi, mut m) = (0u64, size, index);
    while hi - lo > 1 {
        let k = split_point(hi - lo);
        if m < k {
            proof.push(range_hash(hasher, source, lo + k, hi).map_err(ProofError::Source)?);
            hi = lo + k;
        } else {
            let level = k.trailing_zeros();
            proof.push(
                source
                    .node(level, lo >> level)
                    .map_err(ProofError::Source)?,
            );
            lo += k;
            m -= k;
        }
    }
    proof.reverse();
    Ok(proof)
}

/// The RFC 9162 §2.1.4.1 consistency proof (`PROOF(m, D[n])`) from the tree of the first
/// `size1` leaves to the tree of the first `size2` leaves. Empty when the sizes are equal.
///
/// # Errors
/// [`MerkleError::SizesOutOfOrder`], [`MerkleError::EmptyOldTree`]; the source's error if it
/// lacks a node.
pub fn consistency_proof<H: LogHasher, S: NodeSource>(
    hasher: &H,
    source: &S,
    size1: u64,
    size2: u64,
) -> Result<Vec<Hash32>, ProofError<S::Error>> {
    let want = consistency_proof_len(size1, size2)?;
    let mut proof = Vec::with_capacity(want);
    if size1 == size2 {
        return Ok(proof);
    }
    // SUBPROOF(m, D[lo:hi], b), unrolled: each step either ends or recurses into one half.
    let (mut lo, mut hi, mut m, mut whole) = (0u64, size2, size1, true);
    loop {
        if m == hi - lo {
            if !whole {
                proof.push(range_hash(hasher, source, lo, hi).map_err(ProofError::Source)?);
            }
            break;
        }
        let k = split_point(hi - lo);
        if m <= k {
            proof.push(range_hash(hasher, source, lo + k, hi).map_err(ProofError::Source)?);
            hi = lo + k;
        } else {
            let level = k.trailing_zeros();
            proof.push(
                source
                    .node(level, lo >> level)
                    .map_err(ProofError::Source)?,
            );
            lo += k;
            m -= k;
            whole = false;
        }
    }
    proof.reverse();
    Ok(proof)
}

/// The root implied by an inclusion proof: RFC 9162 §2.1.3.2 up to the final comparison.
///
/// # Errors
/// [`MerkleError::IndexOutOfRange`], [`MerkleError::ProofLength`].
pub fn root_from_inclusion_proof<H: LogHasher>(
    hasher: &H,
    index: u64,
    size: u64,
    leaf_hash: &Hash32,
    proof: &[Hash32],
) -> Result<Hash32, MerkleError> {
    let want = inclusion_proof_len(index, size)?;
    let wrong_length = MerkleError::ProofLength {
        got: proof.len(),
        want,
    };
    if proof.len() != want {
        return Err(wrong_length);
    }
    // Steps 2-5 of §2.1.3.2, literally. The length check above makes the `sn` failures
    // unreachable; they stay as a second line of defence.
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf_hash;
    for p in proof {
        if s == 0 {
            return Err(wrong_length);
        }
        if f & 1 == 1 || f == s {
            r = hasher.hash_children(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = hasher.hash_children(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(wrong_length);
    }
    Ok(r)
}

/// Verifies that `leaf_hash` is leaf `index` of the tree of `size` leaves with root `root`
/// (RFC 9162 §2.1.3.2).
///
/// # Errors
/// [`MerkleError::IndexOutOfRange`], [`MerkleError::ProofLength`], [`MerkleError::RootMismatch`].
pub fn verify_inclusion<H: LogHasher>(
    hasher: &H,
    index: u64,
    size: u64,
    leaf_hash: &Hash32,
    proof: &[Hash32],
    root: &Hash32,
) -> Result<(), MerkleError> {
    let got = root_from_inclusion_proof(hasher, index, size, leaf_hash, proof)?;
    if got != *root {
        return Err(MerkleError::RootMismatch { got, want: *root });
    }
    Ok(())
}

/// Verifies that the tree of `size2` leaves with root `root2` extends the tree of `size1` leaves
/// with root `root1` (RFC 9162 §2.1.4.2).
///
/// The RFC's algorithm covers `0 < size1 < size2`; at `size1 == size2` the proof must be empty
/// and the roots equal; from `size1 == 0` no proof is defined and the call fails (a caller that
/// accepts any tree after an empty one must say so itself).
///
/// # Errors
/// [`MerkleError::SizesOutOfOrder`], [`MerkleError::EmptyOldTree`], [`MerkleError::ProofLength`],
/// [`MerkleError::OldRootMismatch`], [`MerkleError::RootMismatch`].
pub fn verify_consistency<H: LogHasher>(
    hasher: &H,
    size1: u64,
    size2: u64,
    proof: &[Hash32],
    root1: &Hash32,
    root2: &Hash32,
) -> Result<(), MerkleError> {
    let want = consistency_proof_len(size1, size2)?;
    let wrong_length = MerkleError::ProofLength {
        got: proof.len(),
        want,
    };
    if proof.len() != want {
        return Err(wrong_length);
    }
    if size1 == size2 {
        if root1 != root2 {
            return Err(MerkleError::RootMismatch {
                got: *root1,
                want: *root2,
            });
        }
        return Ok(());
    }
    // Step 1 (empty path) is covered by the length check: want >= 1 when size1 < size2.
    // Step 2: when size1 is a power of two, the old root is the path's first value.
    let (seed, rest) = if size1.is_power_of_two() {
        (*root1, proof)
    } else {
        match proof.split_first() {
            Some((first, rest)) => (*first, rest),
            None => return Err(wrong_length),
        }
    };
    // Steps 3-4.
    let (mut f, mut s) = (size1 - 1, size2 - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    // Steps 5-6.
    let (mut fr, mut sr) = (seed, seed);
    for c in rest {
        if s == 0 {
            return Err(wrong_length);
        }
        if f & 1 == 1 || f == s {
            fr = hasher.hash_children(c, &fr);
            sr = hasher.hash_children(c, &sr);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = hasher.hash_children(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    // Step 7.
    if s != 0 {
        return Err(wrong_length);
    }
    if fr != *root1 {
        return Err(MerkleError::OldRootMismatch {
            got: fr,
            want: *root1,
        });
    }
    if sr != *root2 {
        return Err(MerkleError::RootMismatch {
            got: sr,
            want: *root2,
        });
    }
    Ok(())
}

/// An append-only Merkle tree held in memory.
///
/// `levels[h][i]` is the hash of the complete subtree over leaves `[i * 2^h, (i + 1) * 2^h)`.
/// Every complete subtree is stored once, when its last leaf arrives, so an append costs one
/// hash amortised (2 n hashes of storage in all); the root at any past size and any inclusion or
/// consistency proof then cost O(log n) hashes, computed from the stored complete subtrees.
#[derive(Debug, Clone)]
pub struct MemoryTree<H> {
    hasher: H,
    levels: Vec<Vec<Hash32>>,
}

impl<H: LogHasher> MemoryTree<H> {
    /// An empty tree.
    pub fn new(hasher: H) -> Self {
        MemoryTree {
            hasher,
            levels: Vec::new(),
        }
    }

    /// The hasher this tree uses.
    pub fn hasher(&self) -> &H {
        &self.hasher
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |leaves| leaves.len() as u64)
    }

    /// Appends an entry (hashing it as a leaf) and returns its leaf index.
    pub fn append_entry(&mut self, entry: &[u8]) -> u64 {
        let leaf = self.hasher.hash_leaf(entry);
        self.append_leaf_hash(leaf)
    }

    /// Appends a leaf hash and returns its leaf index.
    pub fn append_leaf_hash(&mut self, leaf: Hash32) -> u64 {
        let index = self.size();
        let mut carry = leaf;
        let mut level = 0usize;
        loop {
            if self.levels.len() <= level {
                self.levels.push(Vec::new());
            }
            let Some(row) = self.levels.get_mut(level) else {
                break;
            };
            row.push(carry);
            // A row of even length has just completed a pair: its parent is now complete too.
            match row.as_slice() {
                [.., left, right] if row.len() % 2 == 0 => {
                    carry = self.hasher.hash_children(left, right);
                    level += 1;
                }
                _ => break,
            }
        }
        index
    }

    /// The hash of leaf `index`, if present.
    pub fn leaf_hash(&self, index: u64) -> Option<Hash32> {
        let i = usize::try_from(index).ok()?;
        self.levels.first()?.get(i).copied()
    }

    /// The current root (the empty root for an empty tree).
    pub fn root(&self) -> Hash32 {
        // Every node below the current size is stored, so this cannot fail.
        self.root_at(self.size())
            .unwrap_or_else(|_| self.hasher.empty_root())
    }

    /// The root of the tree of the first `size` leaves.
    ///
    /// # Errors
    /// [`MerkleError::SizeOutOfRange`] if `size` exceeds the number of leaves.
    pub fn root_at(&self, size: u64) -> Result<Hash32, MerkleError> {
        self.check_size(size)?;
        root(&self.hasher, self, size)
    }

    /// The inclusion proof of leaf `index` in the tree of the first `size` leaves.
    ///
    /// # Errors
    /// [`MerkleError::SizeOutOfRange`], [`MerkleError::IndexOutOfRange`].
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash32>, MerkleError> {
        self.check_size(size)?;
        inclusion_proof(&self.hasher, self, index, size).map_err(flatten)
    }

    /// The consistency proof from the first `size1` leaves to the first `size2` leaves.
    ///
    /// # Errors
    /// [`MerkleError::SizeOutOfRange`], [`MerkleError::SizesOutOfOrder`],
    /// [`MerkleError::EmptyOldTree`].
    pub fn consistency_proof(&self, size1: u64, size2: u64) -> Result<Vec<Hash32>, MerkleError> {
        self.check_size(size2)?;
        consistency_proof(&self.hasher, self, size1, size2).map_err(flatten)
    }

    /// The right-edge summary of the tree of the first `size` leaves.
    ///
    /// # Errors
    /// [`MerkleError::SizeOutOfRange`].
    pub fn frontier(&self, size: u64) -> Result<Frontier<H>, MerkleError>
    where
        H: Clone,
    {
        self.check_size(size)?;
        Frontier::from_source(self.hasher.clone(), self, size)
    }

    fn check_size(&self, size: u64) -> Result<(), MerkleError> {
        let available = self.size();
        if size > available {
            return Err(MerkleError::SizeOutOfRange { size, available });
        }
        Ok(())
    }
}

fn flatten(e: ProofError<MerkleError>) -> MerkleError {
    match e {
        ProofError::Merkle(e) | ProofError::Source(e) => e,
    }
}

impl<H> NodeSource for MemoryTree<H> {
    type Error = MerkleError;

    fn node(&self, level: u32, index: u64) -> Result<Hash32, MerkleError> {
        let missing = MerkleError::NodeMissing { level, index };
        let row = self.levels.get(level as usize).ok_or(missing.clone())?;
        let i = usize::try_from(index).map_err(|_| missing.clone())?;
        row.get(i).copied().ok_or(missing)
    }
}

/// The right edge of a tree: the roots of its complete subtrees, largest first.
///
/// O(log n) memory whatever the size: enough to append and to compute the current root, which
/// is what a device or a light client that follows a log needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frontier<H> {
    hasher: H,
    size: u64,
    peaks: Vec<Hash32>,
}

impl<H: LogHasher> Frontier<H> {
    /// The frontier of the empty tree.
    pub fn new(hasher: H) -> Self {
        Frontier {
            hasher,
            size: 0,
            peaks: Vec::new(),
        }
    }

    /// The frontier of the first `size` leaves of `source`: one node read per set bit of `size`.
    ///
    /// # Errors
    /// Whatever the source returns for a missing subtree.
    pub fn from_source<S: NodeSource>(hasher: H, source: &S, size: u64) -> Result<Self, S::Error> {
        let mut peaks = Vec::with_capacity(size.count_ones() as usize);
        let mut begin = 0u64;
        for level in (0..64u32).rev() {
            if size >> level & 1 == 1 {
                peaks.push(source.node(level, begin >> level)?);
                begin += 1u64 << level;
            }
        }
        Ok(Frontier {
            hasher,
            size,
            peaks,
        })
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The complete-subtree roots along the right edge, largest (leftmost) first.
    pub fn peaks(&self) -> &[Hash32] {
        &self.peaks
    }

    /// Appends a leaf hash and returns its index.
    ///
    /// # Errors
    /// [`MerkleError::TreeFull`] at `u64::MAX` leaves.
    pub fn append_leaf_hash(&mut self, leaf: Hash32) -> Result<u64, MerkleError> {
        let index = self.size;
        let new_size = index.checked_add(1).ok_or(MerkleError::TreeFull)?;
        let mut carry = leaf;
        let mut s = index;
        while s & 1 == 1 {
            let Some(left) = self.peaks.pop() else {
                break;
            };
            carry = self.hasher.hash_children(&left, &carry);
            s >>= 1;
        }
        self.peaks.push(carry);
        self.size = new_size;
        Ok(index)
    }

    /// The root of the tree.
    pub fn root(&self) -> Hash32 {
        let mut peaks = self.peaks.iter().rev();
        let Some(last) = peaks.next() else {
            return self.hasher.empty_root();
        };
        peaks.fold(*last, |acc, left| self.hasher.hash_children(left, &acc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hasher::{Blake3Hasher, Sha256Hasher};

    fn hx(s: &str) -> Hash32 {
        Hash32::from_hex(s).unwrap()
    }

    /// The RFC 6962 test leaves used by transparency-dev/merkle.
    fn rfc_leaves() -> Vec<Vec<u8>> {
        [
            "",
            "00",
            "10",
            "2021",
            "3031",
            "40414243",
            "5051525354555657",
            "606162636465666768696a6b6c6d6e6f",
        ]
        .iter()
        .map(|h| hex::decode(h).unwrap())
        .collect()
    }

    const RFC_ROOTS: [&str; 8] = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    #[test]
    fn rfc6962_roots_and_known_proofs() {
        let mut tree = MemoryTree::new(Sha256Hasher);
        for (i, leaf) in rfc_leaves().iter().enumerate() {
            tree.append_entry(leaf);
            assert_eq!(tree.root(), hx(RFC_ROOTS[i]), "root at size {}", i + 1);
        }
        for size in 1..=8u64 {
            assert_eq!(
                tree.root_at(size).unwrap(),
                hx(RFC_ROOTS[size as usize - 1])
            );
        }
        // Known proofs from transparency-dev/merkle's verify_test.go.
        let p = tree.inclusion_proof(5, 8).unwrap();
        let want = [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ];
        assert_eq!(p, want.map(hx).to_vec());
        let c = tree.consistency_proof(6, 7).unwrap();
        let want = [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ];
        assert_eq!(c, want.map(hx).to_vec());
        let c = tree.consistency_proof(2, 5).unwrap();
        let want = [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ];
        assert_eq!(c, want.map(hx).to_vec());
    }

    #[test]
    fn every_proof_of_small_trees_verifies_and_has_the_predicted_length() {
        let h = Blake3Hasher;
        let mut tree = MemoryTree::new(h);
        for i in 0..70u32 {
            tree.append_entry(&i.to_be_bytes());
        }
        let leaves: Vec<Hash32> = (0..70).map(|i| tree.leaf_hash(i).unwrap()).collect();
        for size in 1..=70u64 {
            let root = tree.root_at(size).unwrap();
            assert_eq!(root, root_from_leaf_hashes(&h, &leaves[..size as usize]));
            assert_eq!(tree.frontier(size).unwrap().root(), root);
            for index in 0..size {
                let p = tree.inclusion_proof(index, size).unwrap();
                assert_eq!(p.len(), inclusion_proof_len(index, size).unwrap());
                verify_inclusion(&h, index, size, &leaves[index as usize], &p, &root).unwrap();
            }
            for size1 in 1..=size {
                let p = tree.consistency_proof(size1, size).unwrap();
                assert_eq!(p.len(), consistency_proof_len(size1, size).unwrap());
                let root1 = tree.root_at(size1).unwrap();
                verify_consistency(&h, size1, size, &p, &root1, &root).unwrap();
            }
        }
    }

    #[test]
    fn frontier_follows_appends() {
        let h = Blake3Hasher;
        let mut f = Frontier::new(h);
        let mut leaves = Vec::new();
        assert_eq!(f.root(), h.empty_root());
        for i in 0..100u32 {
            let leaf = h.hash_leaf(&i.to_le_bytes());
            leaves.push(leaf);
            assert_eq!(f.append_leaf_hash(leaf), Ok(u64::from(i)));
            assert_eq!(f.root(), root_from_leaf_hashes(&h, &leaves));
            assert_eq!(f.peaks().len(), f.size().count_ones() as usize);
        }
    }

    #[test]
    fn out_of_range_requests_are_typed_errors() {
        let mut tree = MemoryTree::new(Blake3Hasher);
        assert_eq!(tree.root(), Blake3Hasher.empty_root());
        assert_eq!(tree.root_at(0), Ok(Blake3Hasher.empty_root()));
        tree.append_entry(b"a");
        assert_eq!(
            tree.root_at(2),
            Err(MerkleError::SizeOutOfRange {
                size: 2,
                available: 1
            })
        );
        assert_eq!(
            tree.inclusion_proof(1, 1),
            Err(MerkleError::IndexOutOfRange { index: 1, size: 1 })
        );
        assert_eq!(
            tree.consistency_proof(0, 1),
            Err(MerkleError::EmptyOldTree { size2: 1 })
        );
        assert_eq!(
            consistency_proof_len(2, 1),
            Err(MerkleError::SizesOutOfOrder { size1: 2, size2: 1 })
        );
        assert_eq!(
            hashes_from_slices(&[&[0u8; 32][..], &[1u8; 3][..]]),
            Err(MerkleError::HashLength {
                position: 1,
                got: 3
            })
        );
        // Extreme sizes must not overflow any shift.
        assert_eq!(inclusion_proof_len(0, u64::MAX), Ok(64));
        assert_eq!(inclusion_proof_len(u64::MAX - 1, u64::MAX), Ok(63));
        assert!(
            consistency_proof_len(u64::MAX - 1, u64::MAX).unwrap() <= MAX_CONSISTENCY_PROOF_LEN
        );
        assert!(consistency_proof_len(3, u64::MAX).unwrap() <= MAX_CONSISTENCY_PROOF_LEN);
        let zero = Hash32::ZERO;
        assert!(
            verify_inclusion(&Blake3Hasher, u64::MAX - 1, u64::MAX, &zero, &[], &zero).is_err()
        );
    }
}
