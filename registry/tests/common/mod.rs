//! Helpers shared by the registry crate's integration suites.

use bytes::Bytes;
use registry::client::Client;
use registry::digest::Digest;
use registry::manifest::{Descriptor, ImageManifest, media_types};
use registry::reference::Reference;

/// Pushes a one-layer Flux-like artifact (config `{}`, `content` as the layer) under `r`'s
/// tag; returns its manifest digest.
pub(crate) async fn push_artifact(client: &Client, r: &Reference, content: &[u8]) -> Digest {
    let config = client
        .push_blob_bytes(r, Bytes::from_static(b"{}"))
        .await
        .unwrap();
    let layer = client
        .push_blob_bytes(r, Bytes::copy_from_slice(content))
        .await
        .unwrap();
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(media_types::OCI_MANIFEST.into()),
        artifact_type: None,
        config: Descriptor::new(media_types::FLUX_CONFIG, config.digest, config.size),
        layers: vec![Descriptor::new(
            media_types::FLUX_CONTENT,
            layer.digest,
            layer.size,
        )],
        subject: None,
        annotations: None,
    };
    client
        .push_manifest(
            r,
            media_types::OCI_MANIFEST,
            Bytes::from(serde_json::to_vec(&manifest).unwrap()),
        )
        .await
        .unwrap()
}
