//! The stored tree: hashes of complete, aligned subtrees of 16 or more leaves, in one append-only
//! file in post-order.
//!
//! Leaves are grouped into blocks of [`BLOCK`] = 16 entries. The file holds the hash of every
//! complete subtree at level [`BLOCK_LEVEL`] (= 4) and above, each written once, when its last
//! block completes, in the order they complete: the children before their parent (the layout of
//! a Merkle mountain range). After `k` complete blocks the file holds exactly
//! `2k − popcount(k)` hashes, so one length says how much of the tree is stored, a torn tail is
//! recognised by its length alone, and one fsync makes it durable.
//!
//! That is 2 hashes per 16 entries, 4 bytes per entry (a full tree from the leaves up would be
//! 64). Hashes below level 4 are recomputed from the entries when a proof needs them: a proof
//! touches at most two blocks below level 4 (the leaf's own and the ragged right edge), so it
//! costs two reads of ≤ 16 consecutive records and ≤ 32 leaf hashes, plus one 32-byte read per
//! level above 4.

use prov_schemas::Hash32;

use crate::hasher::{Blake3Hasher, LogHasher};

/// Entries per block: the bottom `BLOCK_LEVEL` levels are recomputed, not stored.
pub(crate) const BLOCK: u64 = 16;
/// The lowest stored level.
pub(crate) const BLOCK_LEVEL: u32 = 4;
/// Bytes per stored hash.
pub(crate) const HASH_BYTES: u64 = 32;
/// Stored hashes of this level and above are also kept in memory (1/64 of the tree file, half a
/// byte per entry), so that a proof reads at most three levels (4 to 6) from the file.
pub(crate) const CACHE_LEVEL: u32 = 7;

/// Hashes stored for `k` complete blocks: one per level ≥ 4 for each complete subtree.
pub(crate) fn nodes_for_blocks(k: u64) -> u64 {
    2 * k - u64::from(k.count_ones())
}

/// Position (in hashes) of the node at `level` ≥ 4, `index`, in the post-order file.
pub(crate) fn node_position(level: u32, index: u64) -> Option<u64> {
    let shift = level.checked_sub(BLOCK_LEVEL)?;
    // The node completes with block m − 1, where m = (index + 1) · 2^shift blocks.
    let m = index
        .checked_add(1)?
        .checked_mul(1u64.checked_shl(shift)?)?;
    nodes_for_blocks(m - 1).checked_add(u64::from(shift))
}

/// The root of a perfect subtree over `leaves` (a power-of-two count, at most 16).
pub(crate) fn perfect_root(leaves: &[Hash32]) -> Hash32 {
    let h = Blake3Hasher;
    let mut row = [Hash32::ZERO; BLOCK as usize];
    let mut n = leaves.len().min(row.len());
    for (slot, leaf) in row.iter_mut().zip(leaves) {
        *slot = *leaf;
    }
    while n > 1 {
        for i in 0..n / 2 {
            row[i] = h.hash_children(&row[2 * i], &row[2 * i + 1]);
        }
        n /= 2;
    }
    row[0]
}

/// The right edge of the integrated tree: enough to append and to compute the current root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Edge {
    /// Complete blocks (all their nodes are stored).
    pub blocks: u64,
    /// Roots of the complete subtrees of the blocks, one per set bit of `blocks`, largest first.
    pub peaks: Vec<Hash32>,
    /// Leaf hashes after the last complete block (fewer than 16).
    pub pending: Vec<Hash32>,
}

impl Edge {
    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.blocks * BLOCK + self.pending.len() as u64
    }

    /// Appends a leaf hash; when it completes a block, appends the new stored nodes (the
    /// block's hash, then each parent it completes) to `out` as bytes.
    pub fn push_leaf(&mut self, leaf: Hash32, out: &mut Vec<u8>) {
        self.pending.push(leaf);
        if self.pending.len() as u64 != BLOCK {
            return;
        }
        let h = Blake3Hasher;
        let mut carry = perfect_root(&self.pending);
        self.pending.clear();
        out.extend_from_slice(&carry.0);
        let mut s = self.blocks;
        while s & 1 == 1 {
            let Some(left) = self.peaks.pop() else { break };
            carry = h.hash_children(&left, &carry);
            out.extend_from_slice(&carry.0);
            s >>= 1;
        }
        self.peaks.push(carry);
        self.blocks += 1;
    }

    /// The root of the tree of all `size()` leaves.
    pub fn root(&self) -> Hash32 {
        let h = Blake3Hasher;
        // Complete subtrees, largest (leftmost) first: the block peaks, then the pending leaves
        // split by the set bits of their count.
        let mut parts: Vec<Hash32> = self.peaks.clone();
        let mut begin = 0usize;
        for level in (0..BLOCK_LEVEL).rev() {
            let width = 1usize << level;
            if self.pending.len() & width != 0 {
                parts.push(perfect_root(
                    self.pending.get(begin..begin + width).unwrap_or_default(),
                ));
                begin += width;
            }
        }
        let mut parts = parts.into_iter().rev();
        let Some(last) = parts.next() else {
            return h.empty_root();
        };
        parts.fold(last, |acc, left| h.hash_children(&left, &acc))
    }

    /// The stored peak at (`level` ≥ 4, `index`), if that node is one of the peaks.
    pub fn peak(&self, level: u32, index: u64) -> Option<Hash32> {
        let shift = level.checked_sub(BLOCK_LEVEL)?;
        let count = self.blocks.checked_shr(shift)?;
        if count & 1 == 0 || index.checked_add(1) != Some(count) {
            return None;
        }
        // Peaks are ordered by decreasing level: count the set bits above this one.
        let above = self.blocks.checked_shr(shift + 1).unwrap_or(0).count_ones() as usize;
        self.peaks.get(above).copied()
    }
}

/// The in-memory copy of the stored levels ≥ [`CACHE_LEVEL`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Upper(Vec<Vec<Hash32>>);

impl Upper {
    /// Takes the nodes one block completion emitted (levels 4, 5, … in order).
    pub fn add(&mut self, emitted: &[u8]) {
        for (j, node) in emitted.chunks_exact(HASH_BYTES as usize).enumerate() {
            let Some(row) = (BLOCK_LEVEL as usize + j).checked_sub(CACHE_LEVEL as usize) else {
                continue;
            };
            if self.0.len() <= row {
                self.0.resize_with(row + 1, Vec::new);
            }
            if let (Some(r), Ok(h)) = (self.0.get_mut(row), Hash32::from_slice(node)) {
                r.push(h);
            }
        }
    }

    /// The node at (`level`, `index`) if cached.
    pub fn get(&self, level: u32, index: u64) -> Option<Hash32> {
        let row = level.checked_sub(CACHE_LEVEL)? as usize;
        self.0.get(row)?.get(usize::try_from(index).ok()?).copied()
    }

    /// Drops the nodes beyond `blocks` complete blocks.
    pub fn truncate(&mut self, blocks: u64) {
        for (row, nodes) in self.0.iter_mut().enumerate() {
            let shift = CACHE_LEVEL - BLOCK_LEVEL + row as u32;
            let keep = blocks.checked_shr(shift).unwrap_or(0);
            nodes.truncate(usize::try_from(keep).unwrap_or(usize::MAX));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::{MemoryTree, NodeSource};

    #[test]
    fn positions_follow_completion_order() {
        let mut edge = Edge::default();
        let mut tree = MemoryTree::new(Blake3Hasher);
        let mut stored = Vec::new();
        let mut upper = Upper::default();
        for i in 0..(BLOCK * 300 + 5) {
            let leaf = Blake3Hasher.hash_leaf(&i.to_le_bytes());
            tree.append_leaf_hash(leaf);
            let before = stored.len();
            edge.push_leaf(leaf, &mut stored);
            upper.add(&stored[before..]);
            assert_eq!(edge.root(), tree.root(), "size {}", i + 1);
            assert_eq!(
                stored.len() as u64,
                nodes_for_blocks(edge.blocks) * HASH_BYTES
            );
        }
        assert_eq!(edge.blocks, 300);
        for level in BLOCK_LEVEL..14 {
            for index in 0..(edge.blocks >> (level - BLOCK_LEVEL)) {
                let pos = node_position(level, index).unwrap() as usize * 32;
                let want = tree.node(level, index).unwrap();
                assert_eq!(&stored[pos..pos + 32], &want.0, "node {level}/{index}");
                if let Some(p) = edge.peak(level, index) {
                    assert_eq!(p, want);
                }
                assert_eq!(upper.get(level, index).is_some(), level >= CACHE_LEVEL);
                if let Some(u) = upper.get(level, index) {
                    assert_eq!(u, want);
                }
            }
        }
        assert_eq!(upper.get(CACHE_LEVEL, 300 >> 3), None);
        upper.truncate(100);
        assert_eq!(upper.get(CACHE_LEVEL, 100 >> 3), None);
        assert!(upper.get(CACHE_LEVEL, (100 >> 3) - 1).is_some());
        assert_eq!(node_position(3, 0), None);
        assert_eq!(node_position(70, 0), None);
    }
}
