//! Rekor inclusion proofs: the Merkle audit path from an entry's leaf to the tree's root hash
//! (RFC 6962 §2.1.1, RFC 9162 §2.1.3.2 "verifying an inclusion proof") and the signed
//! checkpoint that commits the log to that root hash and tree size (the signed-note format of
//! `golang.org/x/mod/sumdb/note`, checkpoint body of `transparency-dev/formats: log/README.md`;
//! Rekor v1 signs it with its ECDSA log key and uses the first four bytes of the log ID as the
//! key hint: `sigstore/rekor: pkg/util/signed_note.go`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use super::{LogKey, int64};
use crate::cosign::keys::Check;

/// `verificationMaterial.tlogEntries[].inclusionProof` of a Sigstore bundle.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct InclusionProofJson {
    log_index: serde_json::Value,
    root_hash: String,
    tree_size: serde_json::Value,
    #[serde(default)]
    hashes: Vec<String>,
    checkpoint: Option<CheckpointJson>,
}

#[derive(Deserialize)]
pub(super) struct CheckpointJson {
    envelope: String,
}

/// Checks that `body` (the entry's canonicalized body) is included in the log of `log` at the
/// proof's index: the audit path leads to `rootHash`, and the checkpoint, signed by the same
/// log key, names that root hash and tree size. A proof without a checkpoint is refused, as
/// sigstore-python and sigstore-go refuse it.
pub(super) fn check_inclusion(
    proof: &InclusionProofJson,
    body: &[u8],
    log: &LogKey,
) -> Result<(), String> {
    let index = int64(&proof.log_index)
        .and_then(|i| u64::try_from(i).ok())
        .ok_or("bad inclusionProof.logIndex")?;
    let size = int64(&proof.tree_size)
        .and_then(|i| u64::try_from(i).ok())
        .ok_or("bad inclusionProof.treeSize")?;
    let root = hash32(&proof.root_hash).ok_or("bad inclusionProof.rootHash")?;
    let path = proof
        .hashes
        .iter()
        .map(|h| hash32(h))
        .collect::<Option<Vec<_>>>()
        .ok_or("bad inclusionProof.hashes")?;
    let leaf = leaf_hash(body);
    match root_from_audit_path(index, size, leaf, &path) {
        Some(computed) if computed == root => {}
        Some(_) => {
            return Err("the inclusion proof does not lead to the log's root hash".to_owned());
        }
        None => return Err("the inclusion proof is malformed for its index and size".to_owned()),
    }
    let checkpoint = proof
        .checkpoint
        .as_ref()
        .ok_or("the inclusion proof has no signed checkpoint")?;
    let note = check_checkpoint(&checkpoint.envelope, log)?;
    if note.size != size || note.root_hash != root {
        return Err(
            "the checkpoint names another tree size or root hash than the proof".to_owned(),
        );
    }
    Ok(())
}

/// `hash` is base64 of 32 bytes.
fn hash32(b64: &str) -> Option<[u8; 32]> {
    STANDARD.decode(b64).ok()?.try_into().ok()
}

/// RFC 6962 leaf hash: `SHA-256(0x00 || entry)`.
fn leaf_hash(entry: &[u8]) -> [u8; 32] {
    Sha256::new()
        .chain_update([0u8])
        .chain_update(entry)
        .finalize()
        .into()
}

/// RFC 6962 interior node hash: `SHA-256(0x01 || left || right)`.
fn node_hash(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    Sha256::new()
        .chain_update([1u8])
        .chain_update(left)
        .chain_update(right)
        .finalize()
        .into()
}

/// The root hash an audit path leads to (RFC 9162 §2.1.3.2), or `None` when the path does not
/// fit a leaf at `index` in a tree of `size` leaves (too short, too long, index out of range).
fn root_from_audit_path(
    index: u64,
    size: u64,
    leaf: [u8; 32],
    path: &[[u8; 32]],
) -> Option<[u8; 32]> {
    if index >= size {
        return None;
    }
    let (mut f, mut s, mut r) = (index, size - 1, leaf);
    for p in path {
        if s == 0 {
            return None;
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
    (s == 0).then_some(r)
}

/// The parts of a checkpoint body a proof is compared with.
#[derive(Debug, PartialEq, Eq)]
struct Checkpoint {
    size: u64,
    root_hash: [u8; 32],
}

/// Verifies a signed note carrying a checkpoint: the text is the body (origin, decimal tree
/// size, base64 root hash, optional extension lines, each ending in `\n`), a blank line, then
/// signature lines `— <name> <base64(key hint[4] || signature)>`. One signature whose key hint
/// is the first four bytes of `log`'s key ID must verify under `log`'s key over the body.
fn check_checkpoint(envelope: &str, log: &LogKey) -> Result<Checkpoint, String> {
    let (body, signatures) = envelope
        .split_once("\n\n")
        .ok_or("the checkpoint is not a signed note (no blank line)")?;
    let signed = format!("{body}\n");
    let hint = log.key_id.get(..4).ok_or("the log ID is too short")?;
    let verified = signatures
        .lines()
        .filter_map(|line| line.strip_prefix("\u{2014} "))
        .filter_map(|rest| rest.rsplit_once(' '))
        .filter_map(|(_, sig)| STANDARD.decode(sig).ok())
        .filter(|sig| sig.len() > 4 && &sig[..4] == hint)
        .any(|sig| log.key.check(signed.as_bytes(), &sig[4..]) == Check::Valid);
    if !verified {
        return Err("the checkpoint is not signed by the entry's log".to_owned());
    }
    let mut lines = body.split('\n');
    let _origin = lines
        .next()
        .filter(|o| !o.is_empty())
        .ok_or("the checkpoint has no origin")?;
    let size = lines
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or("the checkpoint has no tree size")?;
    let root_hash = lines
        .next()
        .and_then(hash32)
        .ok_or("the checkpoint has no root hash")?;
    Ok(Checkpoint { size, root_hash })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6962 test vectors (certificate-transparency-go `merkle` tests): the 8-leaf tree of
    /// leaves "", 0x00, 0x10, 0x2021, 0x3031, 0x40414243, 0x5051525354555657,
    /// 0x606162636465666768696a6b6c6d6e6f, rebuilt here from the hash definitions.
    fn leaves() -> Vec<[u8; 32]> {
        let data: [&[u8]; 8] = [
            b"",
            &[0x00],
            &[0x10],
            &[0x20, 0x21],
            &[0x30, 0x31],
            &[0x40, 0x41, 0x42, 0x43],
            &[0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57],
            &[
                0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d,
                0x6e, 0x6f,
            ],
        ];
        data.iter().map(|d| leaf_hash(d)).collect()
    }

    /// RFC 6962 §2.1 MTH, the definition the audit path must agree with.
    fn mth(l: &[[u8; 32]]) -> [u8; 32] {
        if l.len() == 1 {
            return l[0];
        }
        let k = l.len().next_power_of_two() / 2;
        node_hash(&mth(&l[..k]), &mth(&l[k..]))
    }

    /// RFC 6962 §2.1.1 PATH.
    fn path(m: usize, l: &[[u8; 32]]) -> Vec<[u8; 32]> {
        if l.len() == 1 {
            return Vec::new();
        }
        let k = l.len().next_power_of_two() / 2;
        if m < k {
            let mut p = path(m, &l[..k]);
            p.push(mth(&l[k..]));
            p
        } else {
            let mut p = path(m - k, &l[k..]);
            p.push(mth(&l[..k]));
            p
        }
    }

    #[test]
    fn audit_paths_lead_to_the_root_for_every_leaf_and_size() {
        let all = leaves();
        assert_eq!(
            hex::encode(mth(&all)),
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
        );
        for size in 1..=all.len() {
            let tree = &all[..size];
            for m in 0..size {
                let p = path(m, tree);
                let root = root_from_audit_path(m as u64, size as u64, tree[m], &p);
                assert_eq!(root, Some(mth(tree)), "leaf {m} of {size}");
                if let Some((first, rest)) = p.split_first() {
                    let mut bad = *first;
                    bad[0] ^= 1;
                    let mut tampered = vec![bad];
                    tampered.extend_from_slice(rest);
                    let r = root_from_audit_path(m as u64, size as u64, tree[m], &tampered);
                    assert_ne!(r, Some(mth(tree)));
                    assert_eq!(
                        root_from_audit_path(m as u64, size as u64, tree[m], rest),
                        None
                    );
                }
            }
        }
        assert_eq!(root_from_audit_path(8, 8, all[0], &[]), None);
    }
}
