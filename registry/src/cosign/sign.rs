//! Writing `.sig` signatures, appending as `cosign sign` does
//! (`sigstore/cosign: pkg/oci/mutate/signatures.go`, `cmd/cosign/cli/sign/sign.go`).

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde::Serialize;

use super::keys::{Check, KeyError, PrivateKey};
use super::{SIGNATURE_ANNOTATION, SIMPLE_SIGNING_MEDIA_TYPE, payload, signature_tag};
use crate::client::{self, Client};
use crate::digest::Digest;
use crate::manifest::{Descriptor, ImageManifest, Manifest, media_types};
use crate::reference::Reference;

/// Why [`sign`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// The artifact to sign could not be resolved (unknown tag, auth, network).
    #[error("resolving {reference}")]
    Resolve {
        /// The reference given.
        reference: String,
        /// The registry error.
        #[source]
        source: client::Error,
    },
    /// Signing with the key failed.
    #[error("signing the payload")]
    Sign(#[source] KeyError),
    /// Reading the existing signatures or writing the new ones failed.
    #[error("{operation} {reference}")]
    Registry {
        /// What was being done (`reading signatures`, `pushing signature payload`...).
        operation: &'static str,
        /// The signature reference (`…:sha256-<hex>.sig`).
        reference: String,
        /// The registry error.
        #[source]
        source: client::Error,
    },
    /// The `.sig` tag holds something that is not a signature manifest (an index).
    #[error("{reference} is not a cosign signature manifest: {message}")]
    NotASignatureManifest {
        /// The signature reference.
        reference: String,
        /// What was found.
        message: String,
    },
}

/// What [`sign`] did.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Signed {
    /// The signed manifest digest (the artifact's).
    pub digest: Digest,
    /// Where the signature lives: `<registry>/<repository>:sha256-<hex>.sig`.
    pub signature_reference: Reference,
    /// Digest of the `.sig` manifest after the write.
    pub signature_manifest_digest: Digest,
    /// Signatures (layers) in the `.sig` manifest after the write.
    pub signatures: usize,
    /// `false` when an identical signature by this key was already there (nothing written).
    pub appended: bool,
}

/// Signs the artifact `reference` (tag or digest) with `key` in cosign's tag form.
///
/// Resolves the reference to its manifest digest, builds the simple-signing payload
/// (`docker-reference` = `<registry>/<repository>`), signs it, and writes the `.sig` manifest:
/// the existing signature layers are kept (with their annotations) and the new one appended; if
/// a layer with the same payload already verifies under `key`, nothing is written, as cosign's
/// duplicate detector does. Layers are OCI; the config is the image config cosign writes
/// (`rootfs.diff_ids` = the payload digests). No Rekor upload.
///
/// Concurrent signers of one artifact race (read-modify-write of one tag), as with cosign.
///
/// # Errors
/// [`SignError::Resolve`], [`SignError::Sign`], [`SignError::Registry`],
/// [`SignError::NotASignatureManifest`].
pub async fn sign(
    client: &Client,
    reference: &Reference,
    key: &PrivateKey,
) -> Result<Signed, SignError> {
    let digest = client
        .resolve(reference)
        .await
        .map_err(|source| SignError::Resolve {
            reference: reference.to_string(),
            source,
        })?
        .digest;
    let docker_reference = format!("{}/{}", reference.registry, reference.repository);
    let payload = payload::simple_signing(&docker_reference, &digest);
    let signature = key.sign(&payload).map_err(SignError::Sign)?;
    let public = key.public_key().map_err(SignError::Sign)?;
    let sig_ref = reference.with_tag(&signature_tag(&digest));
    let registry = |operation: &'static str| {
        let reference = sig_ref.to_string();
        move |source| SignError::Registry {
            operation,
            reference,
            source,
        }
    };

    let (mut layers, existing_digest) = match client.get_manifest(&sig_ref).await {
        Ok((Manifest::Image(m), descriptor, _)) => (m.layers, Some(descriptor.digest)),
        Ok((Manifest::Index(_), _, _)) => {
            return Err(SignError::NotASignatureManifest {
                reference: sig_ref.to_string(),
                message: "an image index".to_owned(),
            });
        }
        Err(e) if e.is_not_found() => (Vec::new(), None),
        Err(e) => return Err(registry("reading signatures")(e)),
    };

    let payload_descriptor = Descriptor::of_bytes(SIMPLE_SIGNING_MEDIA_TYPE, &payload);
    for layer in &layers {
        if layer.digest != payload_descriptor.digest {
            continue;
        }
        let existing = layer
            .annotations
            .as_ref()
            .and_then(|a| a.get(SIGNATURE_ANNOTATION))
            .and_then(|s| STANDARD.decode(s).ok());
        if let Some(manifest_digest) = &existing_digest
            && existing.is_some_and(|s| public.check(&payload, &s) == Check::Valid)
        {
            return Ok(Signed {
                digest,
                signature_manifest_digest: manifest_digest.clone(),
                signature_reference: sig_ref,
                signatures: layers.len(),
                appended: false,
            });
        }
    }

    client
        .push_blob_bytes(reference, Bytes::from(payload))
        .await
        .map_err(registry("pushing signature payload for"))?;
    let mut layer = payload_descriptor;
    layer.annotations = Some(BTreeMap::from([(
        SIGNATURE_ANNOTATION.to_owned(),
        STANDARD.encode(&signature),
    )]));
    layers.push(layer);

    let config = image_config(&layers);
    let config_descriptor = Descriptor::of_bytes(media_types::OCI_CONFIG, &config);
    client
        .push_blob_bytes(reference, Bytes::from(config))
        .await
        .map_err(registry("pushing signature config for"))?;
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(media_types::OCI_MANIFEST.to_owned()),
        artifact_type: None,
        config: config_descriptor,
        layers,
        subject: None,
        annotations: None,
    };
    let signatures = manifest.layers.len();
    let bytes = serde_json::to_vec(&manifest).map_err(|e| SignError::NotASignatureManifest {
        reference: sig_ref.to_string(),
        message: format!("cannot serialise: {e}"),
    })?;
    let manifest_digest = client
        .push_manifest(&sig_ref, media_types::OCI_MANIFEST, Bytes::from(bytes))
        .await
        .map_err(registry("pushing signature manifest"))?;
    Ok(Signed {
        digest,
        signature_reference: sig_ref,
        signature_manifest_digest: manifest_digest,
        signatures,
        appended: true,
    })
}

/// The image config go-containerregistry marshals for cosign's signature image: zero times,
/// one history entry and one diff ID (the uncompressed payload digest) per layer.
fn image_config(layers: &[Descriptor]) -> Vec<u8> {
    #[derive(Serialize)]
    struct History {
        created: &'static str,
    }
    #[derive(Serialize)]
    struct RootFs<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        diff_ids: Vec<&'a Digest>,
    }
    #[derive(Serialize)]
    struct ConfigFile<'a> {
        architecture: &'static str,
        created: &'static str,
        history: Vec<History>,
        os: &'static str,
        rootfs: RootFs<'a>,
        config: serde_json::Map<String, serde_json::Value>,
    }
    const ZERO_TIME: &str = "0001-01-01T00:00:00Z";
    let config = ConfigFile {
        architecture: "",
        created: ZERO_TIME,
        history: layers
            .iter()
            .map(|_| History { created: ZERO_TIME })
            .collect(),
        os: "",
        rootfs: RootFs {
            kind: "layers",
            diff_ids: layers.iter().map(|l| &l.digest).collect(),
        },
        config: serde_json::Map::new(),
    };
    serde_json::to_vec(&config).unwrap_or_default()
}
