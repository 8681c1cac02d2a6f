//! Verifying cosign signatures with public keys, before anything of the artifact is pulled
//! (Flux `source-controller: internal/oci/cosign/cosign.go` with `.pub` keys: offline, no tlog).

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use futures::StreamExt as _;
use serde::Deserialize;

use super::keys::{Check, PublicKey};
use super::{
    BUNDLE_MEDIA_TYPE_PREFIX, MAX_SIGNATURE_BLOB_BYTES, MAX_SIGNATURES, SIGNATURE_ANNOTATION,
    SIMPLE_SIGNING_MEDIA_TYPE, payload, referrers_tag, signature_tag,
};
use crate::client::{self, Client};
use crate::digest::Digest;
use crate::manifest::{Descriptor, Manifest};
use crate::reference::Reference;

/// Where the verified signature was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignatureSource {
    /// A simple-signing layer of the `sha256-<hex>.sig` manifest.
    Tag,
    /// A Sigstore bundle (DSSE) attached as an OCI 1.1 referrer (or listed in the referrers
    /// fallback tag `sha256-<hex>`).
    Bundle,
}

/// A successful verification.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Verified {
    /// The verified manifest digest (the `digest` passed to [`verify`]).
    pub digest: Digest,
    /// Index into the `keys` passed to [`verify`] of the key that verified the signature.
    pub key_index: usize,
    /// Which storage form held the signature.
    pub source: SignatureSource,
}

/// Why [`verify`] refused the artifact. Each failure of the signature itself has its own
/// variant; only [`VerifyError::Registry`] is about the registry (and may be worth a retry, see
/// [`VerifyError::is_retryable`]). Messages are meant for users and Flux's `SourceVerified`
/// condition.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// `keys` was empty (e.g. the Secret has no `*.pub` entry).
    #[error(
        "no public keys given: nothing to verify signatures with (expected at least one *.pub key)"
    )]
    NoPublicKeys,
    /// Neither a `.sig` signature nor a signature bundle exists for the digest.
    #[error("no signatures found for {reference}@{digest}")]
    NoSignatures {
        /// `registry/repository`.
        reference: String,
        /// The digest that was looked up.
        digest: Digest,
    },
    /// Signatures exist, but none was made by any of the keys.
    #[error(
        "no signature of {digest} matched the {keys} public key(s) ({signatures} signature(s) checked)"
    )]
    NoMatchingSignature {
        /// The digest being verified.
        digest: Digest,
        /// Signatures checked.
        signatures: usize,
        /// Keys tried.
        keys: usize,
    },
    /// A signature is valid under a key, but its payload signs another manifest digest (a
    /// signature copied from another artifact).
    #[error("signature payload is for {signed}, not for {expected}")]
    WrongDigest {
        /// The digest being verified.
        expected: Digest,
        /// The digest the signed payload names.
        signed: String,
    },
    /// A signature's payload was altered: the blob does not match its descriptor's digest or
    /// size, exceeds [`MAX_SIGNATURE_BLOB_BYTES`], or is not a valid signature payload.
    #[error("signature payload {layer} is tampered or malformed: {reason}")]
    TamperedPayload {
        /// Digest of the payload layer (or bundle layer).
        layer: Digest,
        /// What was wrong.
        reason: String,
    },
    /// A signature value is missing, not base64, or not a well-formed signature for the keys'
    /// type (e.g. broken DER).
    #[error("malformed signature in layer {layer}: {reason}")]
    MalformedSignature {
        /// Digest of the payload layer (or bundle layer) carrying the signature.
        layer: Digest,
        /// What was wrong.
        reason: String,
    },
    /// Keyless: a valid signature by a trusted certificate, but its OIDC issuer or subject
    /// matches none of the accepted identities.
    #[error(
        "signer identity mismatch: issuer {issuer:?} and subject {subject:?} match none of the accepted identities"
    )]
    IdentityMismatch {
        /// The certificate's OIDC issuer.
        issuer: String,
        /// The certificate's subject (SAN email or URI).
        subject: String,
    },
    /// Keyless: the signing certificate does not chain to a certificate authority of the trusted
    /// root at the signing time, is not a code-signing certificate, or cannot be read.
    #[error("untrusted signing certificate: {reason}")]
    UntrustedCertificate {
        /// What was wrong.
        reason: String,
    },
    /// Keyless: no transparency-log entry with a valid signed entry timestamp from a log of the
    /// trusted root records this signature.
    #[error("transparency log check failed: {reason}")]
    TransparencyLog {
        /// What was wrong.
        reason: String,
    },
    /// Reading signatures from the registry failed (auth, network, bad responses).
    #[error("{operation} for {reference}")]
    Registry {
        /// What was being read.
        operation: &'static str,
        /// The reference read.
        reference: String,
        /// The registry error (boxed to keep the error small).
        #[source]
        source: Box<client::Error>,
    },
}

impl VerifyError {
    /// The registry could not be read and retrying later may succeed (timeouts, 5xx, 429).
    pub fn is_retryable(&self) -> bool {
        matches!(self, VerifyError::Registry { source, .. } if source.is_retryable())
    }
}

/// What went wrong so far; the most telling failure becomes the error.
#[derive(Default)]
struct Failures {
    signatures: usize,
    wrong_digest: Option<String>,
    tampered: Option<(Digest, String)>,
    malformed: Option<(Digest, String)>,
}

impl Failures {
    fn into_error(self, reference: &Reference, digest: &Digest, keys: usize) -> VerifyError {
        if let Some(signed) = self.wrong_digest {
            VerifyError::WrongDigest {
                expected: digest.clone(),
                signed,
            }
        } else if let Some((layer, reason)) = self.tampered {
            VerifyError::TamperedPayload { layer, reason }
        } else if let Some((layer, reason)) = self.malformed {
            VerifyError::MalformedSignature { layer, reason }
        } else if self.signatures == 0 {
            VerifyError::NoSignatures {
                reference: format!("{}/{}", reference.registry, reference.repository),
                digest: digest.clone(),
            }
        } else {
            VerifyError::NoMatchingSignature {
                digest: digest.clone(),
                signatures: self.signatures,
                keys,
            }
        }
    }
}

/// Verifies that `digest` (the resolved manifest digest of `reference`'s repository) carries a
/// cosign signature made by one of `keys`; any one valid signature passes.
///
/// Reads, in order: the `.sig` manifest `sha256-<hex>.sig` (each
/// `application/vnd.dev.cosign.simplesigning.v1+json` layer: payload blob fetched and checked
/// against its digest, base64 signature from `dev.cosignproject.cosign/signature` checked
/// against each key over the exact payload bytes, then the payload's
/// `critical.image.docker-manifest-digest` compared with `digest`); then Sigstore bundles
/// attached as referrers (`GET /v2/<name>/referrers/<digest>`, else the `sha256-<hex>` index
/// tag): the DSSE signature over `PAE(payloadType, payload)` checked against each key and the
/// in-toto statement's subject compared with `digest`. Bundles of other predicates
/// (attestations) are ignored. Rekor entries and certificates are not checked. At most
/// [`MAX_SIGNATURES`](super::MAX_SIGNATURES) layers and bundles of each form are read. Nothing
/// of the artifact's own layers is read. Signature checks run on the blocking pool. A registry
/// answering the referrers API with 404 or another 4xx (other than 401/403) is treated as not
/// having it.
///
/// # Errors
/// [`VerifyError::NoPublicKeys`] when `keys` is empty; otherwise, when no signature passes, the
/// most telling failure among the signatures found: [`VerifyError::WrongDigest`], then
/// [`VerifyError::TamperedPayload`], then [`VerifyError::MalformedSignature`], then
/// [`VerifyError::NoMatchingSignature`]; [`VerifyError::NoSignatures`] when there are none;
/// [`VerifyError::Registry`] when a registry read fails (a missing `.sig` tag or referrers
/// index is not an error).
pub async fn verify(
    client: &Client,
    reference: &Reference,
    digest: &Digest,
    keys: &[PublicKey],
) -> Result<Verified, VerifyError> {
    if keys.is_empty() {
        return Err(VerifyError::NoPublicKeys);
    }
    let keys: Arc<[PublicKey]> = keys.to_vec().into();
    let mut failures = Failures::default();

    let sig_ref = reference.with_tag(&signature_tag(digest));
    let layers = match client.get_manifest(&sig_ref).await {
        Ok((Manifest::Image(m), _, _)) => m.layers,
        Ok((Manifest::Index(_), _, _)) => Vec::new(),
        Err(e) if e.is_not_found() => Vec::new(),
        Err(source) => {
            return Err(VerifyError::Registry {
                operation: "reading the signature manifest",
                reference: sig_ref.to_string(),
                source: Box::new(source),
            });
        }
    };
    for layer in layers
        .iter()
        .filter(|l| l.media_type == SIMPLE_SIGNING_MEDIA_TYPE)
        .take(MAX_SIGNATURES)
    {
        failures.signatures += 1;
        if let Some(key_index) =
            check_simple_signing(client, reference, digest, &keys, layer, &mut failures).await?
        {
            return Ok(Verified {
                digest: digest.clone(),
                key_index,
                source: SignatureSource::Tag,
            });
        }
    }

    for layer in &bundle_layers(client, reference, digest).await? {
        if let Some(key_index) =
            check_bundle(client, reference, digest, &keys, layer, &mut failures).await?
        {
            return Ok(Verified {
                digest: digest.clone(),
                key_index,
                source: SignatureSource::Bundle,
            });
        }
    }

    Err(failures.into_error(reference, digest, keys.len()))
}

/// One `.sig` layer: `Ok(Some(key))` when it verifies for `digest`; failures are recorded.
async fn check_simple_signing(
    client: &Client,
    reference: &Reference,
    digest: &Digest,
    keys: &Arc<[PublicKey]>,
    layer: &Descriptor,
    failures: &mut Failures,
) -> Result<Option<usize>, VerifyError> {
    let Some(encoded) = layer
        .annotations
        .as_ref()
        .and_then(|a| a.get(SIGNATURE_ANNOTATION))
    else {
        failures.malformed.get_or_insert((
            layer.digest.clone(),
            format!("no {SIGNATURE_ANNOTATION} annotation"),
        ));
        return Ok(None);
    };
    let Ok(signature) = STANDARD.decode(encoded.trim()) else {
        failures
            .malformed
            .get_or_insert((layer.digest.clone(), "signature is not base64".to_owned()));
        return Ok(None);
    };
    let Some(payload) = fetch(client, reference, layer, failures).await? else {
        return Ok(None);
    };
    let (matched, all_malformed, payload) = check_keys(keys, payload.to_vec(), signature).await;
    let Some(key_index) = matched else {
        if all_malformed {
            failures.malformed.get_or_insert((
                layer.digest.clone(),
                "not a well-formed signature for the key type (ASN.1 DER for ECDSA)".to_owned(),
            ));
        }
        return Ok(None);
    };
    match payload::signed_digest(&payload) {
        Ok(signed) if signed == digest.as_str() => Ok(Some(key_index)),
        Ok(signed) => {
            failures.wrong_digest.get_or_insert(signed);
            Ok(None)
        }
        Err(reason) => {
            failures
                .tampered
                .get_or_insert((layer.digest.clone(), reason));
            Ok(None)
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Bundle {
    dsse_envelope: Option<Envelope>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    payload: String,
    payload_type: String,
    #[serde(default)]
    signatures: Vec<EnvelopeSignature>,
}

#[derive(Deserialize)]
struct EnvelopeSignature {
    sig: String,
}

/// One bundle layer: `Ok(Some(key))` when its DSSE signature verifies for `digest`.
async fn check_bundle(
    client: &Client,
    reference: &Reference,
    digest: &Digest,
    keys: &Arc<[PublicKey]>,
    layer: &Descriptor,
    failures: &mut Failures,
) -> Result<Option<usize>, VerifyError> {
    let Some(blob) = fetch(client, reference, layer, failures).await? else {
        failures.signatures += 1;
        return Ok(None);
    };
    let tampered = |failures: &mut Failures, reason: String| {
        failures.signatures += 1;
        failures
            .tampered
            .get_or_insert((layer.digest.clone(), reason));
    };
    let bundle: Bundle = match serde_json::from_slice(&blob) {
        Ok(b) => b,
        Err(e) => {
            tampered(failures, format!("not a Sigstore bundle: {e}"));
            return Ok(None);
        }
    };
    // Message-signature bundles (`cosign sign-blob`) sign files, not images.
    let Some(envelope) = bundle.dsse_envelope else {
        return Ok(None);
    };
    let Ok(statement) = STANDARD.decode(envelope.payload.trim()) else {
        tampered(failures, "DSSE payload is not base64".to_owned());
        return Ok(None);
    };
    let subjects = match payload::statement_subjects(&statement) {
        Ok(Some(s)) => s,
        Ok(None) => return Ok(None),
        Err(reason) => {
            tampered(failures, reason);
            return Ok(None);
        }
    };
    failures.signatures += 1;
    let pae = payload::dsse_pae(&envelope.payload_type, &statement);
    for sig in &envelope.signatures {
        let Ok(signature) = STANDARD.decode(sig.sig.trim()) else {
            failures.malformed.get_or_insert((
                layer.digest.clone(),
                "DSSE signature is not base64".to_owned(),
            ));
            continue;
        };
        let (matched, all_malformed, _) = check_keys(keys, pae.clone(), signature).await;
        match matched {
            Some(key_index) => {
                if envelope.payload_type != payload::IN_TOTO_PAYLOAD_TYPE {
                    failures.tampered.get_or_insert((
                        layer.digest.clone(),
                        format!("DSSE payload type is {:?}", envelope.payload_type),
                    ));
                } else if subjects.iter().any(|s| s == digest.as_str()) {
                    return Ok(Some(key_index));
                } else {
                    failures
                        .wrong_digest
                        .get_or_insert(subjects.first().cloned().unwrap_or_default());
                }
            }
            None if all_malformed => {
                failures.malformed.get_or_insert((
                    layer.digest.clone(),
                    "not a well-formed signature for the key type (ASN.1 DER for ECDSA)".to_owned(),
                ));
            }
            None => {}
        }
    }
    Ok(None)
}

/// Fetches a small signature blob, verified against its descriptor. `Ok(None)` (recorded as
/// tampered) when it is too large or does not match its digest or size.
async fn fetch(
    client: &Client,
    reference: &Reference,
    layer: &Descriptor,
    failures: &mut Failures,
) -> Result<Option<Bytes>, VerifyError> {
    if layer.size > MAX_SIGNATURE_BLOB_BYTES {
        failures.tampered.get_or_insert((
            layer.digest.clone(),
            format!(
                "{} bytes, over the {MAX_SIGNATURE_BLOB_BYTES} byte limit",
                layer.size
            ),
        ));
        return Ok(None);
    }
    let registry = |source: client::Error| VerifyError::Registry {
        operation: "fetching a signature payload",
        reference: format!("{}@{}", reference.without_version(), layer.digest),
        source: Box::new(source),
    };
    let mut tampered = |e: &client::Error| {
        failures
            .tampered
            .get_or_insert((layer.digest.clone(), e.to_string()));
    };
    let mut stream = match client.get_blob(reference, layer).await {
        Ok(s) => s,
        Err(e @ client::Error::SizeMismatch { .. }) => {
            tampered(&e);
            return Ok(None);
        }
        Err(e) => return Err(registry(e)),
    };
    let mut bytes = Vec::with_capacity(usize::try_from(layer.size).unwrap_or(0));
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(c) => bytes.extend_from_slice(&c),
            Err(
                e @ (client::Error::DigestMismatch { .. } | client::Error::SizeMismatch { .. }),
            ) => {
                tampered(&e);
                return Ok(None);
            }
            Err(e) => return Err(registry(e)),
        }
    }
    Ok(Some(Bytes::from(bytes)))
}

/// Checks `signature` over `message` with every key on the blocking pool. Returns the first
/// matching key, whether every key found the signature malformed, and the message back.
async fn check_keys(
    keys: &Arc<[PublicKey]>,
    message: Vec<u8>,
    signature: Vec<u8>,
) -> (Option<usize>, bool, Vec<u8>) {
    let keys = Arc::clone(keys);
    let task = tokio::task::spawn_blocking(move || {
        let mut all_malformed = true;
        for (i, key) in keys.iter().enumerate() {
            match key.check(&message, &signature) {
                Check::Valid => return (Some(i), false, message),
                Check::Invalid => all_malformed = false,
                Check::Malformed => {}
            }
        }
        (None, all_malformed, message)
    });
    task.await.unwrap_or((None, false, Vec::new()))
}

/// The Sigstore bundle layers attached to `digest` (at most [`MAX_SIGNATURES`] bundle
/// manifests, each checked to name `digest` as its subject); missing manifests are skipped.
///
/// # Errors
/// [`VerifyError::Registry`] when the registry fails other than with "not found".
pub(crate) async fn bundle_layers(
    client: &Client,
    reference: &Reference,
    digest: &Digest,
) -> Result<Vec<Descriptor>, VerifyError> {
    let mut layers = Vec::new();
    for bundle_manifest in bundle_manifests(client, reference, digest)
        .await?
        .into_iter()
        .take(MAX_SIGNATURES)
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
            layers.push(layer.clone());
        }
    }
    Ok(layers)
}

/// Descriptors of the Sigstore bundle manifests referring to `digest`: the referrers API, or
/// the `sha256-<hex>` fallback index when the registry has none.
pub(crate) async fn bundle_manifests(
    client: &Client,
    reference: &Reference,
    digest: &Digest,
) -> Result<Vec<Descriptor>, VerifyError> {
    let index = match client.referrers(reference, digest, None).await {
        Ok(Some(index)) => Some(index),
        Ok(None)
        | Err(client::Error::Status {
            status: 400..=499, ..
        }) => {
            let tag_ref = reference.with_tag(&referrers_tag(digest));
            match client.get_manifest(&tag_ref).await {
                Ok((Manifest::Index(index), _, _)) => Some(index),
                Ok(_) => None,
                Err(e) if e.is_not_found() => None,
                Err(source) => {
                    return Err(VerifyError::Registry {
                        operation: "reading the referrers tag",
                        reference: tag_ref.to_string(),
                        source: Box::new(source),
                    });
                }
            }
        }
        Err(source) => {
            return Err(VerifyError::Registry {
                operation: "listing referrers",
                reference: format!("{}@{digest}", reference.without_version()),
                source: Box::new(source),
            });
        }
    };
    Ok(index
        .map(|i| i.manifests)
        .unwrap_or_default()
        .into_iter()
        .filter(|d| {
            d.artifact_type
                .as_deref()
                .is_some_and(|t| t.starts_with(BUNDLE_MEDIA_TYPE_PREFIX))
        })
        .collect())
}
