//! Transparency-log evidence: signed entry timestamps (SETs) of Rekor v1 entries, their
//! inclusion proofs and checkpoints ([`super::inclusion`]), and the entry bodies they sign
//! (`sigstore/rekor: pkg/types/dsse/v0.0.1`, `pkg/types/hashedrekord/v0.0.1`,
//! `pkg/api/entries.go` for the SET payload; cosign `pkg/cosign/bundle/rekor.go`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use openssl::x509::X509;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use super::inclusion::check_inclusion;
use super::{LogKey, TlogEntryJson, TrustedRoot, int64};
use crate::cosign::keys::Check;
use crate::cosign::verify::VerifyError;

/// What a log entry must record: the signed content, the signature and the certificate.
#[derive(Clone, Copy)]
pub(super) enum Recorded<'a> {
    /// A DSSE envelope: a `dsse` v0.0.1 entry over this in-toto statement.
    Dsse {
        statement: &'a [u8],
        signature: &'a [u8],
        cert_der: &'a [u8],
    },
    /// A message signature: a `hashedrekord` v0.0.1 entry over this SHA-256 digest.
    HashedRekord {
        sha256: &'a [u8; 32],
        signature: &'a [u8],
        cert_der: &'a [u8],
    },
}

/// Checks the bundle's transparency-log entries; returns the integrated time (Unix seconds) of
/// the first entry whose SET verifies, whose inclusion proof and checkpoint verify (required
/// when `require_proof`, else checked when present), and whose body records `recorded`.
pub(super) fn check_tlog(
    entries: &[TlogEntryJson],
    root: &TrustedRoot,
    recorded: Recorded<'_>,
    require_proof: bool,
) -> Result<i64, VerifyError> {
    let fail = |reason: String| VerifyError::TransparencyLog { reason };
    if entries.is_empty() {
        return Err(fail(
            "the bundle has no transparency log entry to prove the signing time".to_owned(),
        ));
    }
    let mut last = String::new();
    for entry in entries {
        match check_entry(entry, root, recorded, require_proof) {
            Ok(t) => return Ok(t),
            Err(reason) => last = reason,
        }
    }
    Err(fail(last))
}

fn check_entry(
    entry: &TlogEntryJson,
    root: &TrustedRoot,
    recorded: Recorded<'_>,
    require_proof: bool,
) -> Result<i64, String> {
    let key_id = STANDARD
        .decode(&entry.log_id.key_id)
        .map_err(|_| "log id is not base64".to_owned())?;
    let integrated_time =
        int64(&entry.integrated_time).ok_or_else(|| "bad integratedTime".to_owned())?;
    let log_index = int64(&entry.log_index).ok_or_else(|| "bad logIndex".to_owned())?;
    let promise = entry
        .inclusion_promise
        .as_ref()
        .ok_or_else(|| "the entry has no inclusion promise (SET)".to_owned())?;
    let set = STANDARD
        .decode(&promise.signed_entry_timestamp)
        .map_err(|_| "SET is not base64".to_owned())?;
    let log = find_log(root, &key_id, integrated_time)?;
    let body = check_set(
        log,
        integrated_time,
        log_index,
        &entry.canonicalized_body,
        &set,
    )?;
    match &entry.inclusion_proof {
        Some(proof) => check_inclusion(proof, &body, log)?,
        None if require_proof => return Err("the entry has no inclusion proof".to_owned()),
        None => {}
    }
    match recorded {
        Recorded::Dsse {
            statement,
            signature,
            cert_der,
        } => check_entry_body(&body, statement, signature, cert_der)?,
        Recorded::HashedRekord {
            sha256,
            signature,
            cert_der,
        } => check_hashedrekord_body(&body, sha256, signature, cert_der)?,
    }
    Ok(integrated_time)
}

/// The trusted root's log with this key ID, if its key is valid at `integrated_time`.
fn find_log<'r>(
    root: &'r TrustedRoot,
    key_id: &[u8],
    integrated_time: i64,
) -> Result<&'r LogKey, String> {
    let log = root
        .logs
        .iter()
        .find(|l| l.key_id == key_id)
        .ok_or_else(|| "the entry's log is not in the trusted root".to_owned())?;
    if log.valid_from.is_some_and(|s| integrated_time < s)
        || log.valid_until.is_some_and(|e| integrated_time > e)
    {
        return Err("the entry's time is outside the log key's validity".to_owned());
    }
    Ok(log)
}

/// Verifies a signed entry timestamp: the SET is `log`'s signature over the canonical JSON
/// (sorted keys, compact) of `{body, integratedTime, logID (hex), logIndex}`. Returns the
/// decoded body.
fn check_set(
    log: &LogKey,
    integrated_time: i64,
    log_index: i64,
    body_b64: &str,
    set: &[u8],
) -> Result<Vec<u8>, String> {
    let key_id = &log.key_id;
    let signed = serde_json::to_vec(&serde_json::json!({
        "body": body_b64,
        "integratedTime": integrated_time,
        "logID": hex::encode(key_id),
        "logIndex": log_index,
    }))
    .map_err(|e| e.to_string())?;
    let signed = canonical(&signed)?;
    if log.key.check(&signed, set) != Check::Valid {
        return Err("the signed entry timestamp does not verify under the log's key".to_owned());
    }
    STANDARD
        .decode(body_b64)
        .map_err(|_| "entry body is not base64".to_owned())
}

/// cosign's `dev.sigstore.cosign/bundle` layer annotation (`pkg/cosign/bundle/rekor.go`).
#[derive(Deserialize)]
struct RekorBundleJson {
    #[serde(rename = "SignedEntryTimestamp")]
    signed_entry_timestamp: String,
    #[serde(rename = "Payload")]
    payload: RekorPayloadJson,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RekorPayloadJson {
    body: String,
    integrated_time: i64,
    log_index: i64,
    #[serde(rename = "logID")]
    log_id: String,
}

#[derive(Deserialize)]
struct HashedRekordBody {
    kind: String,
    spec: HashedRekordSpec,
}

#[derive(Deserialize)]
struct HashedRekordSpec {
    data: HashedRekordData,
    signature: HashedRekordSignature,
}

#[derive(Deserialize)]
struct HashedRekordData {
    hash: HashJson,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HashedRekordSignature {
    content: String,
    public_key: HashedRekordKey,
}

#[derive(Deserialize)]
struct HashedRekordKey {
    content: String,
}

/// Checks the Rekor bundle annotation of a keyless `.sig` layer (a `hashedrekord` entry for
/// this payload, signature and certificate); returns the integrated time.
pub(super) fn check_rekor_annotation(
    json: &str,
    root: &TrustedRoot,
    payload: &[u8],
    signature: &[u8],
    cert_der: &[u8],
) -> Result<i64, String> {
    let bundle: RekorBundleJson =
        serde_json::from_str(json).map_err(|e| format!("bad Rekor bundle annotation: {e}"))?;
    let key_id = hex::decode(&bundle.payload.log_id).map_err(|_| "logID is not hex".to_owned())?;
    let set = STANDARD
        .decode(&bundle.signed_entry_timestamp)
        .map_err(|_| "SET is not base64".to_owned())?;
    let log = find_log(root, &key_id, bundle.payload.integrated_time)?;
    let body = check_set(
        log,
        bundle.payload.integrated_time,
        bundle.payload.log_index,
        &bundle.payload.body,
        &set,
    )?;
    check_hashedrekord_body(&body, &Sha256::digest(payload).into(), signature, cert_der)?;
    Ok(bundle.payload.integrated_time)
}

/// The Rekor `hashedrekord` v0.0.1 entry must record this digest, signature and certificate.
fn check_hashedrekord_body(
    body: &[u8],
    sha256: &[u8; 32],
    signature: &[u8],
    cert_der: &[u8],
) -> Result<(), String> {
    let body: HashedRekordBody = serde_json::from_slice(body)
        .map_err(|e| format!("entry body is not a hashedrekord entry: {e}"))?;
    if body.kind != "hashedrekord" {
        return Err(format!(
            "entry kind {:?} is not supported (want hashedrekord)",
            body.kind
        ));
    }
    if body.spec.data.hash.algorithm != "sha256" || body.spec.data.hash.value != hex::encode(sha256)
    {
        return Err("the log entry records another payload".to_owned());
    }
    let sig_ok = STANDARD
        .decode(&body.spec.signature.content)
        .is_ok_and(|b| b == signature);
    if !sig_ok || !pem_cert_is(&body.spec.signature.public_key.content, cert_der) {
        return Err("the log entry records another signature or certificate".to_owned());
    }
    Ok(())
}

/// `b64` is base64 of a PEM certificate whose DER is `cert_der`.
fn pem_cert_is(b64: &str, cert_der: &[u8]) -> bool {
    STANDARD
        .decode(b64)
        .ok()
        .and_then(|pem| X509::from_pem(&pem).ok())
        .and_then(|c| c.to_der().ok())
        .is_some_and(|der| der == cert_der)
}

/// Keys sorted at every level (serde_json keeps insertion order with `preserve_order`).
fn canonical(json: &[u8]) -> Result<Vec<u8>, String> {
    fn sort(v: serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Object(m) => {
                let mut entries: Vec<_> = m.into_iter().collect();
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                serde_json::Value::Object(entries.into_iter().map(|(k, v)| (k, sort(v))).collect())
            }
            serde_json::Value::Array(a) => {
                serde_json::Value::Array(a.into_iter().map(sort).collect())
            }
            other => other,
        }
    }
    let v: serde_json::Value = serde_json::from_slice(json).map_err(|e| e.to_string())?;
    serde_json::to_vec(&sort(v)).map_err(|e| e.to_string())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EntryBody {
    kind: String,
    spec: DsseSpec,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DsseSpec {
    payload_hash: HashJson,
    signatures: Vec<EntrySig>,
}

#[derive(Deserialize)]
struct HashJson {
    algorithm: String,
    value: String,
}

#[derive(Deserialize)]
struct EntrySig {
    signature: String,
    verifier: String,
}

/// The Rekor `dsse` v0.0.1 entry must record this payload, signature and certificate.
fn check_entry_body(
    body: &[u8],
    statement: &[u8],
    signature: &[u8],
    cert_der: &[u8],
) -> Result<(), String> {
    let body: EntryBody =
        serde_json::from_slice(body).map_err(|e| format!("entry body is not a dsse entry: {e}"))?;
    if body.kind != "dsse" {
        return Err(format!(
            "entry kind {:?} is not supported (want dsse)",
            body.kind
        ));
    }
    if body.spec.payload_hash.algorithm != "sha256"
        || body.spec.payload_hash.value != hex::encode(Sha256::digest(statement))
    {
        return Err("the log entry records another payload".to_owned());
    }
    let recorded = body.spec.signatures.iter().any(|s| {
        let sig_ok = STANDARD.decode(&s.signature).is_ok_and(|b| b == signature);
        sig_ok && pem_cert_is(&s.verifier, cert_der)
    });
    if !recorded {
        return Err("the log entry records another signature or certificate".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys() {
        assert_eq!(
            canonical(br#"{"logIndex":1,"body":"b","logID":"x","integratedTime":2}"#).unwrap(),
            br#"{"body":"b","integratedTime":2,"logID":"x","logIndex":1}"#
        );
    }
}
