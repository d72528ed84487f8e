//! An RFC 6962 / RFC 9162 Merkle tree over a tenant's pack digests: the transparency log of its
//! evidence. Leaves are SHA-256(0x00 ‖ data), nodes SHA-256(0x01 ‖ left ‖ right), the tree is
//! left-balanced (split at the largest power of two below the size). Inclusion proofs (audit
//! paths) and consistency proofs are generated and verified exactly as RFC 9162 §2.1.3 and
//! §2.1.4 say, so any RFC 9162 implementation can check them; checkpoints are C2SP signed notes
//! (`checkpoint`).
//!
//! `Tree` keeps the hash of every complete, aligned subtree (level by level), so a proof for any
//! leaf of any tree size is O(log² n) hashes: a million-leaf tree answers in microseconds.

use sha2::{Digest, Sha256};
use thiserror::Error;

/// A node or leaf hash.
pub type Hash = [u8; 32];

/// Why a proof does not verify, or cannot be made.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ProofError {
    /// The leaf index is not in the tree.
    #[error("leaf index {index} is not in a tree of size {size}")]
    IndexOutOfRange {
        /// The index.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// The sizes of a consistency proof are not 0 < old ≤ new ≤ the tree.
    #[error("no consistency proof from size {old} to size {new} (tree size {size})")]
    BadSizes {
        /// The older size.
        old: u64,
        /// The newer size.
        new: u64,
        /// The tree's size.
        size: u64,
    },
    /// The proof does not lead to the expected root(s).
    #[error("the proof does not verify: {0}")]
    Mismatch(&'static str),
}

/// SHA-256 of the empty string: the root of the empty tree.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The hash of a leaf's data.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(data);
    h.finalize().into()
}

/// The hash of an interior node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The leaf hash of a pack: SHA-256(0x00 ‖ the 32 bytes of its `sha256:<hex>` digest).
pub fn pack_leaf(digest: &str) -> Option<Hash> {
    let bytes: [u8; 32] = hex::decode(digest.strip_prefix("sha256:").unwrap_or(digest)).ok()?.try_into().ok()?;
    Some(leaf_hash(&bytes))
}

/// The largest power of two strictly below `n` (n ≥ 2).
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// A Merkle tree that grows by appending leaves.
#[derive(Debug, Clone, Default)]
pub struct Tree {
    /// `levels[k][i]` is the hash of the complete subtree of leaves `i·2^k .. (i+1)·2^k`.
    levels: Vec<Vec<Hash>>,
}

impl Tree {
    /// An empty tree.
    pub fn new() -> Tree {
        Tree { levels: vec![Vec::new()] }
    }

    /// A tree of these leaf hashes, in order.
    pub fn from_leaf_hashes(leaves: impl IntoIterator<Item = Hash>) -> Tree {
        let mut tree = Tree::new();
        for leaf in leaves {
            tree.push(leaf);
        }
        tree
    }

    /// Appends a leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        self.levels[0].push(leaf);
        let mut level = 0;
        // Every pair the new leaf completes becomes a node one level up.
        while self.levels[level].len().is_multiple_of(2) {
            let n = self.levels[level].len();
            let node = node_hash(&self.levels[level][n - 2], &self.levels[level][n - 1]);
            if self.levels.len() == level + 1 {
                self.levels.push(Vec::new());
            }
            self.levels[level + 1].push(node);
            level += 1;
        }
    }

    /// The number of leaves.
    pub fn size(&self) -> u64 {
        self.levels[0].len() as u64
    }

    /// The hash of leaf `index`.
    pub fn leaf(&self, index: u64) -> Option<Hash> {
        self.levels[0].get(index as usize).copied()
    }

    /// MTH(D[start..start + len]) for a range that starts at a multiple of the largest power
    /// of two not above `len`, as every range the RFC's recursions visit does.
    fn range_hash(&self, start: u64, len: u64) -> Hash {
        if len.is_power_of_two() {
            let level = len.trailing_zeros() as usize;
            return self.levels[level][(start >> level) as usize];
        }
        let k = split(len);
        node_hash(&self.range_hash(start, k), &self.range_hash(start + k, len - k))
    }

    /// The root of the tree's first `size` leaves (`size` ≤ the tree's size).
    pub fn root_at(&self, size: u64) -> Hash {
        if size == 0 { empty_root() } else { self.range_hash(0, size) }
    }

    /// The root of the whole tree.
    pub fn root(&self) -> Hash {
        self.root_at(self.size())
    }

    /// The audit path of leaf `index` in the tree of the first `size` leaves, leaf to root.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, ProofError> {
        if index >= size || size > self.size() {
            return Err(ProofError::IndexOutOfRange { index, size });
        }
        let mut path = Vec::new();
        self.path(index, 0, size, &mut path);
        Ok(path)
    }

    /// PATH(m, D[start..start + n]), appended leaf to root.
    fn path(&self, m: u64, start: u64, n: u64, out: &mut Vec<Hash>) {
        if n <= 1 {
            return;
        }
        let k = split(n);
        if m < k {
            self.path(m, start, k, out);
            out.push(self.range_hash(start + k, n - k));
        } else {
            self.path(m - k, start + k, n - k, out);
            out.push(self.range_hash(start, k));
        }
    }

    /// The consistency proof between the trees of the first `old` and `new` leaves.
    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, ProofError> {
        if old == 0 || old > new || new > self.size() {
            return Err(ProofError::BadSizes { old, new, size: self.size() });
        }
        let mut proof = Vec::new();
        self.subproof(old, 0, new, true, &mut proof);
        Ok(proof)
    }

    /// SUBPROOF(m, D[start..start + n], b).
    fn subproof(&self, m: u64, start: u64, n: u64, b: bool, out: &mut Vec<Hash>) {
        if m == n {
            if !b {
                out.push(self.range_hash(start, n));
            }
            return;
        }
        let k = split(n);
        if m <= k {
            self.subproof(m, start, k, b, out);
            out.push(self.range_hash(start + k, n - k));
        } else {
            self.subproof(m - k, start + k, n - k, false, out);
            out.push(self.range_hash(start, k));
        }
    }
}

/// Verifies an inclusion proof (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(index: u64, size: u64, leaf: &Hash, path: &[Hash], root: &Hash) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in path {
        if s == 0 {
            return Err(ProofError::Mismatch("the audit path is longer than the tree is deep"));
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(ProofError::Mismatch("the audit path is shorter than the tree is deep"));
    }
    if &r != root {
        return Err(ProofError::Mismatch("the audit path leads to another root"));
    }
    Ok(())
}

/// Verifies a consistency proof between two tree heads (RFC 9162 §2.1.4.2).
pub fn verify_consistency(
    old: u64,
    new: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old == 0 || old > new {
        return Err(ProofError::BadSizes { old, new, size: new });
    }
    if old == new {
        return if proof.is_empty() && old_root == new_root {
            Ok(())
        } else {
            Err(ProofError::Mismatch("equal sizes need equal roots and an empty proof"))
        };
    }
    if proof.is_empty() {
        return Err(ProofError::Mismatch("the proof is empty"));
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let (mut f, mut s) = (old - 1, new - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if s == 0 {
            return Err(ProofError::Mismatch("the proof is longer than the trees need"));
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(ProofError::Mismatch("the proof is shorter than the trees need"));
    }
    if &fr != old_root {
        return Err(ProofError::Mismatch("the proof does not lead to the old root"));
    }
    if &sr != new_root {
        return Err(ProofError::Mismatch("the proof does not lead to the new root"));
    }
    Ok(())
}
