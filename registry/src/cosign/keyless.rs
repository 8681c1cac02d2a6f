//! Keyless verification of cosign v3 Sigstore bundles: the Fulcio-style certificate chains to a
//! certificate authority of a Sigstore trusted root (`trusted_root.json`), its identity (OIDC
//! issuer extension, SAN subject) matches one of the `matchOIDCIdentity` regexes, and a
//! transparency-log entry whose signed entry timestamp (SET) verifies under one of the trusted
//! root's log keys records this very signature and gives the signing time at which the
//! certificate must have been valid (`sigstore/protobuf-specs: protos/sigstore_trustroot.proto`,
//! `sigstore_bundle.proto`; `sigstore/rekor: pkg/types/dsse/v0.0.1`; cosign
//! `pkg/cosign/verify.go`).

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use futures::StreamExt as _;
use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::verify::X509VerifyParam;
use openssl::x509::{X509, X509StoreContext};
use regex::Regex;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use super::keys::{Check, PublicKey};
use super::verify::{SignatureSource, Verified, VerifyError, bundle_manifests};
use super::{BUNDLE_MEDIA_TYPE_PREFIX, MAX_SIGNATURE_BLOB_BYTES, payload};
use crate::client::Client;
use crate::digest::Digest;
use crate::manifest::{Descriptor, Manifest};
use crate::reference::Reference;

/// Why a trusted root could not be used.
#[derive(Debug, thiserror::Error)]
#[error("invalid trusted root: {message}")]
pub struct TrustedRootError {
    message: String,
}

fn root_error(message: impl Into<String>) -> TrustedRootError {
    TrustedRootError {
        message: message.into(),
    }
}

/// A Sigstore trusted root: the certificate authorities (Fulcio) and transparency logs (Rekor)
/// keyless signatures are checked against. Parsed from the `trusted_root.json` of
/// `sigstore/protobuf-specs` (`application/vnd.dev.sigstore.trustedroot+json;version=0.1`);
/// CT logs and timestamp authorities are read but not used.
#[derive(Clone)]
pub struct TrustedRoot {
    authorities: Vec<Authority>,
    logs: Vec<LogKey>,
}

impl std::fmt::Debug for TrustedRoot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustedRoot")
            .field("certificate_authorities", &self.authorities.len())
            .field("transparency_logs", &self.logs.len())
            .finish()
    }
}

#[derive(Clone)]
struct Authority {
    /// `certChain.certificates`: intermediates first, the root last.
    chain: Vec<X509>,
    /// `validFor` start and end, Unix seconds.
    valid_from: Option<i64>,
    valid_until: Option<i64>,
}

#[derive(Clone)]
struct LogKey {
    key_id: Vec<u8>,
    key: PublicKey,
    /// `publicKey.validFor` start and end, Unix seconds.
    valid_from: Option<i64>,
    valid_until: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RootJson {
    #[serde(default)]
    tlogs: Vec<TlogJson>,
    #[serde(default)]
    certificate_authorities: Vec<CaJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TlogJson {
    public_key: RawJson,
    log_id: LogIdJson,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogIdJson {
    key_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawJson {
    raw_bytes: String,
    #[serde(default)]
    valid_for: Option<ValidForJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CaJson {
    cert_chain: ChainJson,
    #[serde(default)]
    valid_for: Option<ValidForJson>,
}

#[derive(Deserialize)]
struct ChainJson {
    certificates: Vec<RawJson>,
}

#[derive(Deserialize)]
struct ValidForJson {
    start: Option<String>,
    end: Option<String>,
}

fn unix_seconds(rfc3339: Option<&String>) -> Result<Option<i64>, TrustedRootError> {
    rfc3339
        .map(|s| {
            s.parse::<jiff::Timestamp>()
                .map(|t| t.as_second())
                .map_err(|e| root_error(format!("bad time {s:?}: {e}")))
        })
        .transpose()
}

impl TrustedRoot {
    /// Parses `trusted_root.json`.
    ///
    /// # Errors
    /// [`TrustedRootError`] for bad JSON, base64, certificates or keys, or a root without any
    /// certificate authority or transparency log.
    pub fn from_json(bytes: &[u8]) -> Result<Self, TrustedRootError> {
        let json: RootJson =
            serde_json::from_slice(bytes).map_err(|e| root_error(format!("JSON: {e}")))?;
        let mut authorities = Vec::new();
        for ca in &json.certificate_authorities {
            let chain = ca
                .cert_chain
                .certificates
                .iter()
                .map(|c| {
                    let der = STANDARD
                        .decode(&c.raw_bytes)
                        .map_err(|e| root_error(format!("certificate base64: {e}")))?;
                    X509::from_der(&der).map_err(|e| root_error(format!("certificate: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            if chain.is_empty() {
                return Err(root_error("a certificate authority has an empty chain"));
            }
            let valid = ca.valid_for.as_ref();
            authorities.push(Authority {
                chain,
                valid_from: unix_seconds(valid.and_then(|v| v.start.as_ref()))?,
                valid_until: unix_seconds(valid.and_then(|v| v.end.as_ref()))?,
            });
        }
        let mut logs = Vec::new();
        for tlog in &json.tlogs {
            let der = STANDARD
                .decode(&tlog.public_key.raw_bytes)
                .map_err(|e| root_error(format!("log key base64: {e}")))?;
            let key =
                PublicKey::from_spki_der(&der).map_err(|e| root_error(format!("log key: {e}")))?;
            let key_id = STANDARD
                .decode(&tlog.log_id.key_id)
                .map_err(|e| root_error(format!("log id base64: {e}")))?;
            let valid = tlog.public_key.valid_for.as_ref();
            logs.push(LogKey {
                key_id,
                key,
                valid_from: unix_seconds(valid.and_then(|v| v.start.as_ref()))?,
                valid_until: unix_seconds(valid.and_then(|v| v.end.as_ref()))?,
            });
        }
        if authorities.is_empty() || logs.is_empty() {
            return Err(root_error(
                "it needs at least one certificate authority and one transparency log",
            ));
        }
        Ok(TrustedRoot { authorities, logs })
    }
}

/// One accepted keyless identity (Flux `spec.verify.matchOIDCIdentity[]`): both regexes must
/// match (unanchored, as Go's `regexp.MatchString`) the certificate's OIDC issuer and subject
/// (SAN email or URI).
#[derive(Debug, Clone)]
pub struct Identity {
    /// Regex for the OIDC issuer (Fulcio extension `1.3.6.1.4.1.57264.1.8`, else `.1.1`).
    pub issuer: Regex,
    /// Regex for the subject (SAN email address or URI).
    pub subject: Regex,
}

/// The identity a verified keyless signature was made by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignerIdentity {
    /// OIDC issuer from the certificate.
    pub issuer: String,
    /// SAN email or URI from the certificate.
    pub subject: String,
}

/// Verifies that `digest` carries a keyless cosign signature whose certificate chains to a
/// certificate authority of `root`, whose signer matches one of `identities`, and whose
/// transparency-log entry (with a SET by one of `root`'s logs) records this very signature at
/// a time when the certificate was valid. Both storage forms are read, as in
/// [`verify`](super::verify): `.sig` layers with `dev.sigstore.cosign/certificate` and
/// `dev.sigstore.cosign/bundle` (a `hashedrekord` entry; cosign v2), then cosign v3 bundles
/// among the referrers (a `dsse` entry). Signature and certificate checks run on the blocking
/// pool. `Verified::key_index` is 0.
///
/// Not supported: inclusion proofs without a SET (Rekor v2), RFC 3161 timestamps, CT log (SCT)
/// checks, `dev.sigstore.cosign/chain` (the chain comes from `root`), certificate identity
/// checks beyond issuer and SAN.
///
/// # Errors
/// [`VerifyError::NoSignatures`] without any keyless bundle, [`VerifyError::IdentityMismatch`]
/// when valid signatures exist but by other identities, [`VerifyError::UntrustedCertificate`],
/// [`VerifyError::TransparencyLog`], [`VerifyError::WrongDigest`],
/// [`VerifyError::TamperedPayload`], [`VerifyError::Registry`]; the most telling one in that
/// reverse order when several bundles fail.
pub async fn verify_keyless(
    client: &Client,
    reference: &Reference,
    digest: &Digest,
    root: &TrustedRoot,
    identities: &[Identity],
) -> Result<(Verified, SignerIdentity), VerifyError> {
    let mut failure: Option<VerifyError> = None;
    let mut record = |e: VerifyError| {
        if failure.as_ref().is_none_or(|f| rank(&e) > rank(f)) {
            failure = Some(e);
        }
    };
    let root = Arc::new(root.clone());
    let identities: Arc<[Identity]> = identities.to_vec().into();

    let sig_ref = reference.with_tag(&super::signature_tag(digest));
    let layers = match client.get_manifest(&sig_ref).await {
        Ok((Manifest::Image(m), _, _)) => m.layers,
        Ok(_) => Vec::new(),
        Err(e) if e.is_not_found() => Vec::new(),
        Err(source) => {
            return Err(VerifyError::Registry {
                operation: "reading the signature manifest",
                reference: sig_ref.to_string(),
                source: Box::new(source),
            });
        }
    };
    let keyless_layers = layers.into_iter().filter(|l| {
        l.media_type == super::SIMPLE_SIGNING_MEDIA_TYPE
            && l.annotations
                .as_ref()
                .is_some_and(|a| a.contains_key(CERTIFICATE_ANNOTATION))
    });
    for layer in keyless_layers.take(super::MAX_SIGNATURES) {
        let payload_bytes = match fetch(client, reference, &layer).await {
            Ok(b) => b,
            Err(e @ VerifyError::Registry { .. }) => return Err(e),
            Err(e) => {
                record(e);
                continue;
            }
        };
        let (root, identities, digest_c) =
            (Arc::clone(&root), Arc::clone(&identities), digest.clone());
        let outcome = tokio::task::spawn_blocking(move || {
            let annotations = layer.annotations.unwrap_or_default();
            check_sig_layer(
                &payload_bytes,
                &annotations,
                &layer.digest,
                &digest_c,
                &root,
                &identities,
            )
        })
        .await
        .unwrap_or(Ok(None));
        match outcome {
            Ok(Some(identity)) => {
                return Ok((
                    Verified {
                        digest: digest.clone(),
                        key_index: 0,
                        source: SignatureSource::Tag,
                    },
                    identity,
                ));
            }
            Ok(None) => {}
            Err(e) => record(e),
        }
    }

    for bundle_manifest in bundle_manifests(client, reference, digest)
        .await?
        .into_iter()
        .take(super::MAX_SIGNATURES)
    {
        let manifest_ref = reference.with_digest(bundle_manifest.digest.clone());
        let manifest = match client.get_manifest(&manifest_ref).await {
            Ok((Manifest::Image(m), _, _)) => m,
            Ok(_) => continue,
            Err(e) if e.is_not_found() => continue,
            Err(source) => {
                return Err(VerifyError::Registry {
                    operation: "reading a signature bundle manifest",
                    reference: manifest_ref.to_string(),
                    source: Box::new(source),
                });
            }
        };
        if manifest
            .subject
            .as_ref()
            .is_some_and(|s| s.digest != *digest)
        {
            continue;
        }
        for layer in manifest
            .layers
            .iter()
            .filter(|l| l.media_type.starts_with(BUNDLE_MEDIA_TYPE_PREFIX))
        {
            let blob = match fetch(client, reference, layer).await {
                Ok(b) => b,
                Err(e @ VerifyError::Registry { .. }) => return Err(e),
                Err(e) => {
                    record(e);
                    continue;
                }
            };
            let (root, identities, digest_c, layer_digest) = (
                Arc::clone(&root),
                Arc::clone(&identities),
                digest.clone(),
                layer.digest.clone(),
            );
            let outcome = tokio::task::spawn_blocking(move || {
                check_bundle(&blob, &layer_digest, &digest_c, &root, &identities)
            })
            .await
            .unwrap_or(Ok(None));
            match outcome {
                Ok(Some(identity)) => {
                    return Ok((
                        Verified {
                            digest: digest.clone(),
                            key_index: 0,
                            source: SignatureSource::Bundle,
                        },
                        identity,
                    ));
                }
                Ok(None) => {}
                Err(e) => record(e),
            }
        }
    }
    Err(failure.unwrap_or_else(|| VerifyError::NoSignatures {
        reference: format!("{}/{}", reference.registry, reference.repository),
        digest: digest.clone(),
    }))
}

/// Higher is more telling.
fn rank(e: &VerifyError) -> u8 {
    match e {
        VerifyError::IdentityMismatch { .. } => 6,
        VerifyError::WrongDigest { .. } => 5,
        VerifyError::TransparencyLog { .. } => 4,
        VerifyError::UntrustedCertificate { .. } => 3,
        VerifyError::TamperedPayload { .. } => 2,
        VerifyError::MalformedSignature { .. } => 1,
        _ => 0,
    }
}

async fn fetch(
    client: &Client,
    reference: &Reference,
    layer: &Descriptor,
) -> Result<Vec<u8>, VerifyError> {
    let tampered = |reason: String| VerifyError::TamperedPayload {
        layer: layer.digest.clone(),
        reason,
    };
    if layer.size > MAX_SIGNATURE_BLOB_BYTES {
        return Err(tampered(format!("{} bytes, over the limit", layer.size)));
    }
    let registry = |source: crate::client::Error| VerifyError::Registry {
        operation: "fetching a signature bundle",
        reference: format!("{}@{}", reference.without_version(), layer.digest),
        source: Box::new(source),
    };
    let mut stream = client.get_blob(reference, layer).await.map_err(registry)?;
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(c) => bytes.extend_from_slice(&c),
            Err(
                e @ (crate::client::Error::DigestMismatch { .. }
                | crate::client::Error::SizeMismatch { .. }),
            ) => return Err(tampered(e.to_string())),
            Err(e) => return Err(registry(e)),
        }
    }
    Ok(bytes)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BundleJson {
    verification_material: Option<MaterialJson>,
    dsse_envelope: Option<EnvelopeJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MaterialJson {
    certificate: Option<RawCert>,
    x509_certificate_chain: Option<CertChainJson>,
    #[serde(default)]
    tlog_entries: Vec<TlogEntryJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCert {
    raw_bytes: String,
}

#[derive(Deserialize)]
struct CertChainJson {
    certificates: Vec<RawCert>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TlogEntryJson {
    log_index: serde_json::Value,
    log_id: LogIdJson,
    integrated_time: serde_json::Value,
    inclusion_promise: Option<PromiseJson>,
    canonicalized_body: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromiseJson {
    signed_entry_timestamp: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EnvelopeJson {
    payload: String,
    payload_type: String,
    signatures: Vec<SigJson>,
}

#[derive(Deserialize)]
struct SigJson {
    sig: String,
}

/// proto3 JSON int64: a string or a number.
fn int64(v: &serde_json::Value) -> Option<i64> {
    match v {
        serde_json::Value::String(s) => s.parse().ok(),
        serde_json::Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

/// `Ok(Some(identity))` when the bundle verifies; `Ok(None)` when it is not a keyless cosign
/// signature (key-signed, or another predicate).
fn check_bundle(
    blob: &[u8],
    layer: &Digest,
    digest: &Digest,
    root: &TrustedRoot,
    identities: &[Identity],
) -> Result<Option<SignerIdentity>, VerifyError> {
    let tampered = |reason: String| VerifyError::TamperedPayload {
        layer: layer.clone(),
        reason,
    };
    let bundle: BundleJson = serde_json::from_slice(blob)
        .map_err(|e| tampered(format!("not a Sigstore bundle: {e}")))?;
    let (Some(material), Some(envelope)) = (bundle.verification_material, bundle.dsse_envelope)
    else {
        return Ok(None);
    };
    let cert_b64 = match (&material.certificate, &material.x509_certificate_chain) {
        (Some(c), _) => &c.raw_bytes,
        (None, Some(chain)) if !chain.certificates.is_empty() => &chain.certificates[0].raw_bytes,
        _ => return Ok(None),
    };
    let statement = STANDARD
        .decode(envelope.payload.trim())
        .map_err(|_| tampered("DSSE payload is not base64".to_owned()))?;
    let subjects = match payload::statement_subjects(&statement).map_err(tampered)? {
        Some(s) => s,
        None => return Ok(None),
    };
    let cert_der = STANDARD
        .decode(cert_b64)
        .map_err(|_| untrusted("certificate is not base64".to_owned()))?;
    let (leaf, leaf_key) = leaf_certificate(&cert_der)?;

    // The signature itself.
    let pae = payload::dsse_pae(&envelope.payload_type, &statement);
    let signature = envelope
        .signatures
        .iter()
        .filter_map(|s| STANDARD.decode(s.sig.trim()).ok())
        .find(|s| leaf_key.check(&pae, s) == Check::Valid)
        .ok_or_else(|| VerifyError::MalformedSignature {
            layer: layer.clone(),
            reason: "no DSSE signature verifies under the bundle's certificate".to_owned(),
        })?;
    if envelope.payload_type != payload::IN_TOTO_PAYLOAD_TYPE {
        return Err(tampered(format!(
            "DSSE payload type is {:?}",
            envelope.payload_type
        )));
    }

    // The transparency log gives the signing time.
    let integrated_time = check_tlog(
        &material.tlog_entries,
        root,
        &statement,
        &signature,
        &cert_der,
    )?;

    if !subjects.iter().any(|s| s == digest.as_str()) {
        return finish(&leaf, &cert_der, root, integrated_time, identities).and(Err(
            VerifyError::WrongDigest {
                expected: digest.clone(),
                signed: subjects.first().cloned().unwrap_or_default(),
            },
        ));
    }
    finish(&leaf, &cert_der, root, integrated_time, identities).map(Some)
}

fn untrusted(reason: String) -> VerifyError {
    VerifyError::UntrustedCertificate { reason }
}

/// Parses the signing certificate and its public key.
fn leaf_certificate(cert_der: &[u8]) -> Result<(X509, PublicKey), VerifyError> {
    let leaf = X509::from_der(cert_der).map_err(|e| untrusted(format!("bad certificate: {e}")))?;
    let key = leaf
        .public_key()
        .and_then(|k| k.public_key_to_der())
        .map_err(|e| untrusted(format!("certificate key: {e}")))
        .and_then(|der| {
            PublicKey::from_spki_der(&der).map_err(|e| untrusted(format!("certificate key: {e}")))
        })?;
    Ok((leaf, key))
}

/// After the signature and the log entry: the certificate chains to a trusted authority at
/// the signing time and its identity is accepted.
fn finish(
    leaf: &X509,
    cert_der: &[u8],
    root: &TrustedRoot,
    integrated_time: i64,
    identities: &[Identity],
) -> Result<SignerIdentity, VerifyError> {
    check_chain(leaf, cert_der, root, integrated_time)?;
    let found = signer_identity(leaf, cert_der).map_err(untrusted)?;
    if identities
        .iter()
        .any(|i| i.issuer.is_match(&found.issuer) && i.subject.is_match(&found.subject))
    {
        Ok(found)
    } else {
        Err(VerifyError::IdentityMismatch {
            issuer: found.issuer,
            subject: found.subject,
        })
    }
}

/// A keyless `.sig` layer (cosign v2 `sign` without a key): `Ok(None)` when the layer has no
/// certificate (key-signed).
fn check_sig_layer(
    payload_bytes: &[u8],
    annotations: &std::collections::BTreeMap<String, String>,
    layer: &Digest,
    digest: &Digest,
    root: &TrustedRoot,
    identities: &[Identity],
) -> Result<Option<SignerIdentity>, VerifyError> {
    let Some(cert_pem) = annotations.get(CERTIFICATE_ANNOTATION) else {
        return Ok(None);
    };
    let cert_der = X509::from_pem(cert_pem.as_bytes())
        .and_then(|c| c.to_der())
        .map_err(|e| untrusted(format!("bad certificate annotation: {e}")))?;
    let (leaf, leaf_key) = leaf_certificate(&cert_der)?;
    let malformed = |reason: &str| VerifyError::MalformedSignature {
        layer: layer.clone(),
        reason: reason.to_owned(),
    };
    let signature = annotations
        .get(super::SIGNATURE_ANNOTATION)
        .and_then(|s| STANDARD.decode(s.trim()).ok())
        .ok_or_else(|| malformed("missing or non-base64 signature annotation"))?;
    if leaf_key.check(payload_bytes, &signature) != Check::Valid {
        return Err(malformed(
            "the signature does not verify under the layer's certificate",
        ));
    }
    let rekor =
        annotations
            .get(REKOR_BUNDLE_ANNOTATION)
            .ok_or_else(|| VerifyError::TransparencyLog {
                reason: "the signature has no Rekor bundle to prove the signing time".to_owned(),
            })?;
    let integrated_time = check_rekor_annotation(rekor, root, payload_bytes, &signature, &cert_der)
        .map_err(|reason| VerifyError::TransparencyLog { reason })?;
    let found = finish(&leaf, &cert_der, root, integrated_time, identities)?;
    match payload::signed_digest(payload_bytes) {
        Ok(signed) if signed == digest.as_str() => Ok(Some(found)),
        Ok(signed) => Err(VerifyError::WrongDigest {
            expected: digest.clone(),
            signed,
        }),
        Err(reason) => Err(VerifyError::TamperedPayload {
            layer: layer.clone(),
            reason,
        }),
    }
}

/// Layer annotation with the PEM signing certificate of a keyless `.sig` signature.
const CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";
/// Layer annotation with the Rekor bundle (SET and entry) of a `.sig` signature.
const REKOR_BUNDLE_ANNOTATION: &str = "dev.sigstore.cosign/bundle";

/// Checks the bundle's transparency-log entries; returns the integrated time (Unix seconds) of
/// the first entry whose SET verifies and whose body records this signature.
fn check_tlog(
    entries: &[TlogEntryJson],
    root: &TrustedRoot,
    statement: &[u8],
    signature: &[u8],
    cert_der: &[u8],
) -> Result<i64, VerifyError> {
    let fail = |reason: String| VerifyError::TransparencyLog { reason };
    if entries.is_empty() {
        return Err(fail(
            "the bundle has no transparency log entry to prove the signing time".to_owned(),
        ));
    }
    let mut last = String::new();
    for entry in entries {
        match check_entry(entry, root, statement, signature, cert_der) {
            Ok(t) => return Ok(t),
            Err(reason) => last = reason,
        }
    }
    Err(fail(last))
}

fn check_entry(
    entry: &TlogEntryJson,
    root: &TrustedRoot,
    statement: &[u8],
    signature: &[u8],
    cert_der: &[u8],
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
    let body = check_set(
        root,
        &key_id,
        integrated_time,
        log_index,
        &entry.canonicalized_body,
        &set,
    )?;
    check_entry_body(&body, statement, signature, cert_der)?;
    Ok(integrated_time)
}

/// Verifies a signed entry timestamp: the log is in the trusted root and valid at
/// `integrated_time`, and the SET is its signature over the canonical JSON (sorted keys,
/// compact) of `{body, integratedTime, logID (hex), logIndex}`. Returns the decoded body.
fn check_set(
    root: &TrustedRoot,
    key_id: &[u8],
    integrated_time: i64,
    log_index: i64,
    body_b64: &str,
    set: &[u8],
) -> Result<Vec<u8>, String> {
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
fn check_rekor_annotation(
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
    let body = check_set(
        root,
        &key_id,
        bundle.payload.integrated_time,
        bundle.payload.log_index,
        &bundle.payload.body,
        &set,
    )?;
    let body: HashedRekordBody = serde_json::from_slice(&body)
        .map_err(|e| format!("entry body is not a hashedrekord entry: {e}"))?;
    if body.kind != "hashedrekord" {
        return Err(format!(
            "entry kind {:?} is not supported (want hashedrekord)",
            body.kind
        ));
    }
    if body.spec.data.hash.algorithm != "sha256"
        || body.spec.data.hash.value != hex::encode(Sha256::digest(payload))
    {
        return Err("the log entry records another payload".to_owned());
    }
    let sig_ok = STANDARD
        .decode(&body.spec.signature.content)
        .is_ok_and(|b| b == signature);
    if !sig_ok || !pem_cert_is(&body.spec.signature.public_key.content, cert_der) {
        return Err("the log entry records another signature or certificate".to_owned());
    }
    Ok(bundle.payload.integrated_time)
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

fn check_chain(
    leaf: &X509,
    cert_der: &[u8],
    root: &TrustedRoot,
    at: i64,
) -> Result<(), VerifyError> {
    if !has_code_signing_eku(cert_der) {
        return Err(untrusted(
            "the certificate is not for code signing (extended key usage)".to_owned(),
        ));
    }
    let mut last = "no certificate authority in the trusted root".to_owned();
    for ca in &root.authorities {
        if ca.valid_from.is_some_and(|s| at < s) || ca.valid_until.is_some_and(|e| at > e) {
            last = "the signing time is outside the authority's validity".to_owned();
            continue;
        }
        match verify_chain(leaf, &ca.chain, at) {
            Ok(()) => return Ok(()),
            Err(reason) => last = reason,
        }
    }
    Err(untrusted(last))
}

fn verify_chain(leaf: &X509, chain: &[X509], at: i64) -> Result<(), String> {
    let err = |e: openssl::error::ErrorStack| e.to_string();
    let (root, intermediates) = chain.split_last().ok_or("empty chain")?;
    let mut store = X509StoreBuilder::new().map_err(err)?;
    store.add_cert(root.clone()).map_err(err)?;
    let mut param = X509VerifyParam::new().map_err(err)?;
    param.set_time(at);
    store.set_param(&param).map_err(err)?;
    let store = store.build();
    let mut stack = Stack::new().map_err(err)?;
    for c in intermediates {
        stack.push(c.clone()).map_err(err)?;
    }
    let mut ctx = X509StoreContext::new().map_err(err)?;
    let (ok, result) = ctx
        .init(&store, leaf, &stack, |c| {
            let ok = c.verify_cert()?;
            Ok((ok, c.error()))
        })
        .map_err(err)?;
    if ok {
        Ok(())
    } else {
        Err(format!(
            "the certificate does not chain to the trusted root at the signing time: {}",
            result.error_string()
        ))
    }
}

/// OID 1.3.6.1.4.1.57264.1.8 (Fulcio OIDC issuer v2, DER UTF8String value).
const OID_ISSUER_V2: &[u8] = &[0x2B, 6, 1, 4, 1, 0x83, 0xBF, 0x30, 1, 8];
/// OID 1.3.6.1.4.1.57264.1.1 (Fulcio OIDC issuer v1, raw string value).
const OID_ISSUER_V1: &[u8] = &[0x2B, 6, 1, 4, 1, 0x83, 0xBF, 0x30, 1, 1];
/// OID 2.5.29.37 (extended key usage).
const OID_EKU: &[u8] = &[0x55, 0x1D, 0x25];
/// OID 1.3.6.1.5.5.7.3.3 (id-kp-codeSigning).
const OID_CODE_SIGNING: &[u8] = &[0x2B, 6, 1, 5, 5, 7, 3, 3];

fn signer_identity(leaf: &X509, cert_der: &[u8]) -> Result<SignerIdentity, String> {
    let extensions = der::extensions(cert_der).ok_or("cannot read the certificate extensions")?;
    let issuer = extensions
        .iter()
        .find(|(oid, _)| *oid == OID_ISSUER_V2)
        .and_then(|(_, v)| der::tlv(v).filter(|t| t.0 == 0x0C).map(|t| t.1))
        .or_else(|| {
            extensions
                .iter()
                .find(|(oid, _)| *oid == OID_ISSUER_V1)
                .map(|(_, v)| *v)
        })
        .and_then(|b| std::str::from_utf8(b).ok())
        .ok_or("the certificate has no OIDC issuer extension")?
        .to_owned();
    let subject = leaf
        .subject_alt_names()
        .and_then(|names| {
            names
                .iter()
                .find_map(|n| n.email().or_else(|| n.uri()).map(str::to_owned))
        })
        .ok_or("the certificate has no email or URI subject alternative name")?;
    Ok(SignerIdentity { issuer, subject })
}

fn has_code_signing_eku(cert_der: &[u8]) -> bool {
    let Some(extensions) = der::extensions(cert_der) else {
        return false;
    };
    extensions
        .iter()
        .filter(|(oid, _)| *oid == OID_EKU)
        .any(|(_, value)| {
            let Some((0x30, mut rest, _)) = der::tlv(value) else {
                return false;
            };
            while let Some((tag, oid, next)) = der::tlv(rest) {
                if tag == 0x06 && oid == OID_CODE_SIGNING {
                    return true;
                }
                rest = next;
            }
            false
        })
}

/// Just enough DER to list a certificate's extensions (RFC 5280 §4.1).
mod der {
    /// `(tag, content, rest)` of the first TLV in `input` (definite lengths up to 4 bytes).
    pub(super) fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, rest) = input.split_first()?;
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let n = usize::from(first & 0x7F);
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            (len, &rest[n..])
        };
        if rest.len() < len {
            return None;
        }
        Some((tag, &rest[..len], &rest[len..]))
    }

    /// `(extnID content, extnValue content)` of every extension of a DER certificate.
    pub(super) fn extensions(cert: &[u8]) -> Option<Vec<(&[u8], &[u8])>> {
        let (0x30, cert, _) = tlv(cert)? else {
            return None;
        };
        let (0x30, mut tbs, _) = tlv(cert)? else {
            return None;
        };
        let mut out = Vec::new();
        while let Some((tag, content, rest)) = tlv(tbs) {
            tbs = rest;
            if tag != 0xA3 {
                continue;
            }
            let (0x30, mut list, _) = tlv(content)? else {
                return None;
            };
            while let Some((0x30, ext, rest)) = tlv(list) {
                list = rest;
                let (0x06, oid, mut fields) = tlv(ext)? else {
                    return None;
                };
                if let Some((0x01, _, after)) = tlv(fields) {
                    fields = after;
                }
                let (0x04, value, _) = tlv(fields)? else {
                    return None;
                };
                out.push((oid, value));
            }
        }
        Some(out)
    }
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

    #[test]
    fn der_reads_lengths() {
        assert_eq!(
            der::tlv(&[0x04, 2, 9, 9, 1]),
            Some((4, &[9u8, 9][..], &[1u8][..]))
        );
        assert_eq!(
            der::tlv(&[0x04, 0x81, 1, 7]),
            Some((4, &[7u8][..], &[][..]))
        );
        assert_eq!(der::tlv(&[0x04, 5, 1]), None);
    }
}
