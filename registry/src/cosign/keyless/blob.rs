//! Keyless verification of a Sigstore bundle over a blob (`cosign sign-blob --bundle`,
//! `sigstore sign`): a `messageSignature` over the artifact's bytes, recorded in a Rekor
//! `hashedrekord` entry (`sigstore/protobuf-specs: protos/sigstore_bundle.proto`,
//! `sigstore_common.proto` `MessageSignature`; sigstore-python `sigstore/verify/verifier.py`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use super::tlog::{Recorded, check_tlog};
use super::{Identity, MaterialJson, SignerIdentity, TrustedRoot, finish, leaf_certificate};
use crate::cosign::keys::Check;
use crate::cosign::verify::VerifyError;
use crate::digest::Digest;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlobBundleJson {
    verification_material: MaterialJson,
    message_signature: Option<MessageSignatureJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageSignatureJson {
    message_digest: Option<MessageDigestJson>,
    signature: String,
}

#[derive(Deserialize)]
struct MessageDigestJson {
    algorithm: String,
    digest: String,
}

/// Verifies a Sigstore bundle (`application/vnd.dev.sigstore.bundle…+json`, v0.1 to v0.3)
/// with a `messageSignature` over `artifact`, offline against `root`: the signature verifies
/// under the bundle's certificate over the artifact bytes, a transparency-log entry with a SET
/// by one of `root`'s logs, an inclusion proof whose audit path leads to its root hash, and a
/// checkpoint signed by the same log naming that root hash and tree size records this digest,
/// signature and certificate; the certificate chains to one of `root`'s authorities at the
/// entry's integrated time and its signer matches one of `identities`.
///
/// DSSE bundles (attestations) are not taken here; an inclusion proof is required, as
/// sigstore-python and sigstore-go require it for bundles.
///
/// # Errors
/// [`VerifyError::TamperedPayload`] (`layer` is the bundle's SHA-256) for JSON that is not a
/// message-signature bundle, [`VerifyError::WrongDigest`] when the bundle's message digest is
/// not the artifact's, [`VerifyError::MalformedSignature`] when the signature does not verify,
/// [`VerifyError::TransparencyLog`], [`VerifyError::UntrustedCertificate`],
/// [`VerifyError::IdentityMismatch`].
pub fn verify_blob_bundle(
    bundle: &[u8],
    artifact: &[u8],
    root: &TrustedRoot,
    identities: &[Identity],
) -> Result<SignerIdentity, VerifyError> {
    let layer = Digest::sha256_of(bundle);
    let tampered = |reason: String| VerifyError::TamperedPayload {
        layer: layer.clone(),
        reason,
    };
    let json: BlobBundleJson = serde_json::from_slice(bundle)
        .map_err(|e| tampered(format!("not a Sigstore bundle: {e}")))?;
    let message = json
        .message_signature
        .ok_or_else(|| tampered("the bundle has no messageSignature".to_owned()))?;
    let material = json.verification_material;
    let cert_b64 = match (&material.certificate, &material.x509_certificate_chain) {
        (Some(c), _) => &c.raw_bytes,
        (None, Some(chain)) if !chain.certificates.is_empty() => &chain.certificates[0].raw_bytes,
        _ => return Err(tampered("the bundle has no signing certificate".to_owned())),
    };
    let sha256: [u8; 32] = Sha256::digest(artifact).into();
    if let Some(d) = &message.message_digest {
        let recorded = STANDARD.decode(&d.digest).unwrap_or_default();
        if d.algorithm != "SHA2_256" || recorded != sha256 {
            return Err(VerifyError::WrongDigest {
                expected: Digest::sha256_of(artifact),
                signed: format!("{}:{}", d.algorithm, hex::encode(recorded)),
            });
        }
    }
    let cert_der = STANDARD
        .decode(cert_b64)
        .map_err(|_| super::untrusted("certificate is not base64".to_owned()))?;
    let (leaf, leaf_key) = leaf_certificate(&cert_der)?;
    let signature = STANDARD
        .decode(message.signature.trim())
        .ok()
        .filter(|s| leaf_key.check(artifact, s) == Check::Valid)
        .ok_or_else(|| VerifyError::MalformedSignature {
            layer: layer.clone(),
            reason: "the message signature does not verify under the bundle's certificate"
                .to_owned(),
        })?;
    let recorded = Recorded::HashedRekord {
        sha256: &sha256,
        signature: &signature,
        cert_der: &cert_der,
    };
    let integrated_time = check_tlog(&material.tlog_entries, root, recorded, true)?;
    finish(&leaf, &cert_der, root, integrated_time, identities)
}
