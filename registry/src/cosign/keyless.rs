//! Keyless verification of cosign signatures (v2 `.sig` layers with certificate and Rekor bundle
//! annotations, v3 Sigstore bundles): the Fulcio-style certificate chains to a
//! certificate authority of a Sigstore trusted root (`trusted_root.json`), its identity (OIDC
//! issuer extension, SAN subject) matches one of the `matchOIDCIdentity` regexes, and a
//! transparency-log entry whose signed entry timestamp (SET) verifies under one of the trusted
//! root's log keys, and whose inclusion proof and signed checkpoint verify when present,
//! records this very signature and gives the signing time at which the certificate must have
//! been valid (`sigstore/protobuf-specs: protos/sigstore_trustroot.proto`,
//! `sigstore_bundle.proto`; `sigstore/rekor: pkg/types/dsse/v0.0.1`; cosign
//! `pkg/cosign/verify.go`).

use std::sync::Arc;

mod blob;
mod certificate;
mod inclusion;
mod tlog;

pub use blob::verify_blob_bundle;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use futures::StreamExt as _;
use openssl::x509::X509;
use regex::Regex;
use serde::Deserialize;

use certificate::{check_chain, signer_identity};
use tlog::{Recorded, check_rekor_annotation, check_tlog};

use super::keys::{Check, PublicKey};
use super::verify::{SignatureSource, Verified, VerifyError};
use super::{MAX_SIGNATURE_BLOB_BYTES, payload};
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
/// CT logs and timestamp authorities are read but not used, and so are transparency logs whose
/// key type [`PublicKey`] does not support (the Ed25519 Rekor v2 logs, whose entries carry no
/// SET and could not be used anyway).
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
            let key = match PublicKey::from_spki_der(&der) {
                Ok(key) => key,
                Err(super::keys::KeyError::UnsupportedKeyType { .. }) => continue,
                Err(e) => return Err(root_error(format!("log key: {e}"))),
            };
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

    /// The Sigstore public-good trusted root (Fulcio `fulcio.sigstore.dev`, Rekor
    /// `rekor.sigstore.dev`), embedded in this build so that keyless verification works
    /// offline without `trustedRootSecretRef`.
    ///
    /// The file is `keyless/public_good_trusted_root.json`: the `trusted_root.json` target of
    /// the public-good TUF repository (`tuf-repo-cdn.sigstore.dev`) as shipped in the
    /// sigstore-python 4.5.1 wheel (PyPI), SHA-256
    /// `6494e21ea73fa7ee769f85f57d5a3e6a08725eae1e38c755fc3517c9e6bc0b66`, taken on
    /// 2026-11-26; its newest key is the Rekor v2 log `log2025-1`, valid from 2025-09-23. Update
    /// it as `docs/signing.md` ("Updating the embedded public-good root") says. At run time
    /// [`TrustedRootProvider`](super::tuf::TrustedRootProvider) replaces it with the root a
    /// TUF refresh verified, when a mirror is reachable.
    ///
    /// # Panics
    /// Never: the embedded file is parsed by a unit test.
    #[must_use]
    pub fn public_good() -> Self {
        Self::from_json(PUBLIC_GOOD_TRUSTED_ROOT).expect("the embedded trusted root parses")
    }
}

/// The embedded public-good `trusted_root.json` (see [`TrustedRoot::public_good`]).
pub const PUBLIC_GOOD_TRUSTED_ROOT: &[u8] = include_bytes!("keyless/public_good_trusted_root.json");

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
/// A bundle v0.2 or later (cosign v3 writes v0.3) is refused without a Rekor inclusion proof
/// and signed checkpoint for its entry, as sigstore-go refuses it; a v0.1 bundle's proof is
/// verified when present; the `.sig` annotation form has none. Not supported: inclusion proofs without a SET (Rekor v2), RFC 3161 timestamps, CT log (SCT)
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

    for layer in &super::verify::bundle_layers(client, reference, digest).await? {
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
    /// `application/vnd.dev.sigstore.bundle.v0.3+json`, or
    /// `application/vnd.dev.sigstore.bundle+json;version=0.N` before v0.3.
    #[serde(default)]
    media_type: String,
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
    inclusion_proof: Option<inclusion::InclusionProofJson>,
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
    let recorded = Recorded::Dsse {
        statement: &statement,
        signature: &signature,
        cert_der: &cert_der,
    };
    let require_proof = requires_inclusion_proof(&bundle.media_type);
    let integrated_time = check_tlog(&material.tlog_entries, root, recorded, require_proof)?;

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

/// Whether a bundle of `media_type` must carry a Rekor inclusion proof (with its signed
/// checkpoint) for each log entry: from bundle v0.2 on, as sigstore-go's bundle validation
/// requires (`sigstore/sigstore-go: pkg/bundle/bundle.go`, `validate`); a v0.1 bundle may
/// rest on the SET alone. An unknown or missing media type is held to the stricter rule.
fn requires_inclusion_proof(media_type: &str) -> bool {
    let version = media_type
        .strip_prefix("application/vnd.dev.sigstore.bundle+json;version=")
        .or_else(|| {
            media_type
                .strip_prefix("application/vnd.dev.sigstore.bundle.v")
                .and_then(|v| v.strip_suffix("+json"))
        });
    version != Some("0.1")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundles_from_v0_2_on_need_an_inclusion_proof() {
        for (media_type, required) in [
            (
                "application/vnd.dev.sigstore.bundle+json;version=0.1",
                false,
            ),
            ("application/vnd.dev.sigstore.bundle+json;version=0.2", true),
            ("application/vnd.dev.sigstore.bundle.v0.3+json", true),
            ("", true),
        ] {
            assert_eq!(
                requires_inclusion_proof(media_type),
                required,
                "{media_type}"
            );
        }
    }

    #[test]
    fn the_embedded_public_good_root_parses() {
        let root = TrustedRoot::public_good();
        // Two Fulcio authorities; of the two Rekor logs only the ECDSA v1 log is usable.
        assert_eq!(root.authorities.len(), 2);
        assert_eq!(root.logs.len(), 1);
        assert_eq!(
            STANDARD.encode(&root.logs[0].key_id),
            "wNI9atQGlz+VWfO6LRygH4QUfY/8W4RFwiT5i5WRgB0="
        );
    }
}
