//! The Merkle tree of one batch (pure: no I/O).
//!
//! - leaf = `keccak256(0x00 ‖ index ‖ message)` with `index` the message's position in the
//!   stream as 8 big-endian bytes: a proof binds the bytes to their position, so a message
//!   cannot be replayed at another index of the same batch;
//! - node = `keccak256(0x01 ‖ left ‖ right)`: the prefixes keep a leaf from ever passing as an
//!   inner node (second-preimage);
//! - odd node: the last node of a level with an odd count is carried up unchanged (never
//!   duplicated, so two different batches cannot share a root by repeating their last message);
//! - a proof lists the siblings from the leaf up, each with the side it sits on.

use alloy::primitives::{B256, keccak256};
use serde::{Deserialize, Serialize};

/// The leaf of the message at stream position `index`.
pub fn leaf(index: u64, message: &[u8]) -> B256 {
    let mut h = alloy::primitives::Keccak256::new();
    h.update([0u8]);
    h.update(index.to_be_bytes());
    h.update(message);
    h.finalize()
}

/// An inner node.
pub fn node(left: &B256, right: &B256) -> B256 {
    let mut buf = [0u8; 65];
    buf[0] = 1;
    buf[1..33].copy_from_slice(left.as_slice());
    buf[33..].copy_from_slice(right.as_slice());
    keccak256(buf)
}

/// Which side of the path a sibling sits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Side {
    Left,
    Right,
}

/// One step of a proof: hash the running value with `hash` on `side`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofStep {
    pub hash: B256,
    pub side: Side,
}

/// The root of a batch's leaves (`None` for an empty batch).
pub fn root(leaves: &[B256]) -> Option<B256> {
    let mut level = leaves.to_vec();
    if level.is_empty() {
        return None;
    }
    while level.len() > 1 {
        level = next_level(&level);
    }
    Some(level[0])
}

fn next_level(level: &[B256]) -> Vec<B256> {
    level
        .chunks(2)
        .map(|pair| match pair {
            [l, r] => node(l, r),
            [odd] => *odd,
            _ => unreachable!("chunks of two"),
        })
        .collect()
}

/// Every level of the tree, leaves first: built once per batch, then any proof is a walk.
#[derive(Debug, Clone)]
pub struct Tree {
    levels: Vec<Vec<B256>>,
}

impl Tree {
    /// `None` for an empty batch.
    pub fn new(leaves: Vec<B256>) -> Option<Self> {
        if leaves.is_empty() {
            return None;
        }
        let mut levels = vec![leaves];
        while levels.last().is_some_and(|l| l.len() > 1) {
            let next = next_level(levels.last().expect("non-empty"));
            levels.push(next);
        }
        Some(Self { levels })
    }

    pub fn root(&self) -> B256 {
        self.levels.last().expect("non-empty")[0]
    }

    pub fn len(&self) -> usize {
        self.levels[0].len()
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// The proof of the leaf at `position` within the batch (`None` when out of range).
    pub fn proof(&self, position: usize) -> Option<Vec<ProofStep>> {
        if position >= self.len() {
            return None;
        }
        let mut steps = Vec::new();
        let mut i = position;
        for level in &self.levels[..self.levels.len() - 1] {
            let sibling = i ^ 1;
            if sibling < level.len() {
                let side = if i.is_multiple_of(2) {
                    Side::Right
                } else {
                    Side::Left
                };
                steps.push(ProofStep {
                    hash: level[sibling],
                    side,
                });
            }
            // No sibling: the odd node is carried up unchanged, no step.
            i /= 2;
        }
        Some(steps)
    }
}

/// Whether `message` at stream position `index` is in the batch with `root`.
pub fn verify(root: B256, index: u64, message: &[u8], proof: &[ProofStep]) -> bool {
    let computed = proof
        .iter()
        .fold(leaf(index, message), |acc, step| match step.side {
            Side::Left => node(&step.hash, &acc),
            Side::Right => node(&acc, &step.hash),
        });
    computed == root
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(first: u64, n: usize) -> (Vec<Vec<u8>>, Vec<B256>) {
        let msgs: Vec<Vec<u8>> = (0..n)
            .map(|i| format!("{{\"t\":{}}}", i).into_bytes())
            .collect();
        let leaves = msgs
            .iter()
            .enumerate()
            .map(|(i, m)| leaf(first + i as u64, m))
            .collect();
        (msgs, leaves)
    }

    #[test]
    fn every_proof_verifies_for_every_size_and_tampering_fails() {
        for n in 1..=17 {
            let first = 100;
            let (msgs, leaves) = batch(first, n);
            let tree = Tree::new(leaves.clone()).unwrap();
            assert_eq!(Some(tree.root()), root(&leaves));
            for (pos, m) in msgs.iter().enumerate() {
                let index = first + pos as u64;
                let proof = tree.proof(pos).unwrap();
                assert!(verify(tree.root(), index, m, &proof), "n={n} pos={pos}");
                let mut tampered = m.clone();
                tampered[1] ^= 1;
                assert!(!verify(tree.root(), index, &tampered, &proof));
                // The same bytes at another index: not this proof.
                assert!(!verify(tree.root(), index + 1, m, &proof));
            }
            assert!(tree.proof(n).is_none());
        }
        assert!(Tree::new(vec![]).is_none());
        assert_eq!(root(&[]), None);
    }

    #[test]
    fn the_documented_rules_give_these_roots() {
        let l: Vec<B256> = (0..3).map(|i| leaf(i, b"x")).collect();
        assert_eq!(
            l[0],
            keccak256([&[0u8][..], &0u64.to_be_bytes(), b"x"].concat())
        );
        // Three leaves: (l0·l1)·l2, l2 carried up unchanged.
        assert_eq!(root(&l), Some(node(&node(&l[0], &l[1]), &l[2])));
        assert_eq!(root(&l[..1]), Some(l[0]));
        // Not a duplicate-last-leaf tree.
        let dup = [l[0], l[1], l[2], l[2]];
        assert_ne!(root(&l), root(&dup));
    }
}
