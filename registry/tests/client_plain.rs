//! The client against a real plain-HTTP distribution registry: push, resolve, pull, verify,
//! tags, referrers and error classification.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures::StreamExt as _;
use registry::client::{Client, ClientConfig};
use registry::manifest::{Descriptor, ImageManifest, Manifest, media_types};
use registry::{Digest, Reference};
use test_support::registry::{Registry, RegistryBuilder};

fn client() -> Client {
    Client::new(ClientConfig {
        insecure: true,
        ..ClientConfig::default()
    })
    .unwrap()
}

fn reference(reg: &Registry, repo_tag: &str) -> Reference {
    format!("{}/{repo_tag}", reg.host()).parse().unwrap()
}

async fn collect(
    client: &Client,
    r: &Reference,
    d: &Descriptor,
) -> Result<Vec<u8>, registry::client::Error> {
    let mut stream = client.get_blob(r, d).await?;
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}

/// Pushes config + one layer + manifest under `r`'s tag; returns (manifest digest, layer bytes).
async fn push_artifact(
    client: &Client,
    r: &Reference,
    content: &[u8],
) -> (Digest, Bytes, Descriptor) {
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
            layer.digest.clone(),
            layer.size,
        )],
        subject: None,
        annotations: None,
    };
    let bytes = Bytes::from(serde_json::to_vec(&manifest).unwrap());
    let digest = client
        .push_manifest(r, media_types::OCI_MANIFEST, bytes.clone())
        .await
        .unwrap();
    let layer_desc = Descriptor::new(media_types::FLUX_CONTENT, layer.digest, layer.size);
    (digest, bytes, layer_desc)
}

#[tokio::test]
async fn push_resolve_and_pull_round_trip() {
    let reg = RegistryBuilder::new().start();
    let client = client();
    let r = reference(&reg, "app/config:v1");
    let (digest, bytes, layer) = push_artifact(&client, &r, b"hello layer").await;
    assert_eq!(digest, Digest::sha256_of(&bytes));

    let resolved = client.resolve(&r).await.unwrap();
    assert_eq!(resolved.digest, digest);
    assert_eq!(resolved.media_type, media_types::OCI_MANIFEST);
    assert_eq!(resolved.size, bytes.len() as u64);

    let (manifest, desc, raw) = client
        .get_manifest(&r.with_digest(digest.clone()))
        .await
        .unwrap();
    assert_eq!(raw, bytes);
    assert_eq!(desc.digest, digest);
    let Manifest::Image(image) = manifest else {
        panic!("expected an image manifest")
    };
    assert_eq!(image.layers[0], layer);

    assert_eq!(collect(&client, &r, &layer).await.unwrap(), b"hello layer");
    assert!(client.blob_exists(&r, &layer.digest).await.unwrap());
    let absent = Digest::sha256_of(b"absent");
    assert!(!client.blob_exists(&r, &absent).await.unwrap());

    // Pushing the same blob again is a no-op that still returns its descriptor.
    let again = client
        .push_blob_bytes(&r, Bytes::from_static(b"hello layer"))
        .await
        .unwrap();
    assert_eq!(again.digest, layer.digest);
}

#[tokio::test]
async fn untagged_reference_reads_latest() {
    let reg = RegistryBuilder::new().start();
    let client = client();
    let (digest, _, _) = push_artifact(&client, &reference(&reg, "app:latest"), b"x").await;
    assert_eq!(
        client
            .resolve(&reference(&reg, "app"))
            .await
            .unwrap()
            .digest,
        digest
    );
}

#[tokio::test]
async fn missing_tag_repository_and_blob_are_not_found() {
    let reg = RegistryBuilder::new().start();
    let client = client();
    let r = reference(&reg, "app:v1");
    push_artifact(&client, &r, b"x").await;

    let err = client.resolve(&r.with_tag("nope")).await.unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    assert!(
        matches!(err, registry::client::Error::ManifestUnknown { .. }),
        "{err:?}"
    );
    let err = client
        .get_manifest(&reference(&reg, "other:v1"))
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    let err = client
        .list_tags(&reference(&reg, "other"))
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    let missing = Descriptor::new("x", Digest::sha256_of(b"missing"), 7);
    let err = collect(&client, &r, &missing).await.unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    assert!(!err.is_auth() && !err.is_retryable());
}

#[tokio::test]
async fn wrong_descriptor_size_or_digest_is_detected() {
    let reg = RegistryBuilder::new().start();
    let client = client();
    let r = reference(&reg, "app:v1");
    let (_, _, layer) = push_artifact(&client, &r, b"hello layer").await;
    let wrong_size = Descriptor::new(
        layer.media_type.clone(),
        layer.digest.clone(),
        layer.size + 1,
    );
    let err = collect(&client, &r, &wrong_size).await.unwrap_err();
    assert!(
        matches!(err, registry::client::Error::SizeMismatch { .. }),
        "{err:?}"
    );
    let err = client
        .push_manifest(
            &r.with_digest(Digest::sha256_of(b"other")),
            media_types::OCI_MANIFEST,
            Bytes::from_static(b"{}"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, registry::client::Error::DigestMismatch { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn large_file_is_uploaded_in_chunks_with_progress() {
    let reg = RegistryBuilder::new().start();
    let client = Client::new(ClientConfig {
        insecure: true,
        upload_chunk_bytes: 8 * 1024 * 1024,
        ..ClientConfig::default()
    })
    .unwrap();
    let r = reference(&reg, "big:v1");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blob");
    // 20 MiB + 3 bytes: three PATCH chunks of at most 8 MiB.
    let data: Vec<u8> = (0..20 * 1024 * 1024 + 3)
        .map(|i: u32| (i % 251) as u8)
        .collect();
    std::fs::write(&path, &data).unwrap();
    let digest = Digest::sha256_of(&data);
    let seen = Arc::new(AtomicU64::new(0));
    let s = seen.clone();
    let progress: registry::client::ProgressFn = Arc::new(move |n| {
        s.fetch_max(n, Ordering::SeqCst);
    });
    client
        .push_blob_file(
            &r,
            &path,
            &digest,
            data.len() as u64,
            Some(progress.clone()),
        )
        .await
        .unwrap();
    assert_eq!(seen.load(Ordering::SeqCst), data.len() as u64);
    let desc = Descriptor::new(
        "application/octet-stream",
        digest.clone(),
        data.len() as u64,
    );
    assert!(collect(&client, &r, &desc).await.unwrap() == data);
    // Second push: skipped, progress reports completion.
    seen.store(0, Ordering::SeqCst);
    client
        .push_blob_file(&r, &path, &digest, data.len() as u64, Some(progress))
        .await
        .unwrap();
    assert_eq!(seen.load(Ordering::SeqCst), data.len() as u64);

    // A small file goes in one PUT; a wrong digest is refused by the registry.
    let small = dir.path().join("small");
    std::fs::write(&small, b"small").unwrap();
    let err = client
        .push_blob_file(&r, &small, &Digest::sha256_of(b"not small"), 5, None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, registry::client::Error::Status { status: 400, .. }),
        "{err:?}"
    );
    client
        .push_blob_file(&r, &small, &Digest::sha256_of(b"small"), 5, None)
        .await
        .unwrap();
}

#[tokio::test]
async fn tags_are_listed_across_pages() {
    let reg = RegistryBuilder::new().start();
    let client = client();
    let r = reference(&reg, "many:base");
    let (digest, bytes, _) = push_artifact(&client, &r, b"x").await;
    let mut want: Vec<String> = (0..205).map(|i| format!("v{i:03}")).collect();
    for tag in &want {
        let d = client
            .push_manifest(&r.with_tag(tag), media_types::OCI_MANIFEST, bytes.clone())
            .await
            .unwrap();
        assert_eq!(d, digest);
    }
    want.push("base".into());
    want.sort();
    let mut all = client.list_tags(&r).await.unwrap();
    all.sort();
    assert_eq!(all, want);
    let mut paged = client.list_tags_paged(&r, Some(50)).await.unwrap();
    paged.sort();
    assert_eq!(paged, want);
}

#[tokio::test]
async fn referrers_are_none_on_a_registry_without_the_api() {
    let reg = RegistryBuilder::new().start();
    let client = client();
    let r = reference(&reg, "app:v1");
    let (digest, _, _) = push_artifact(&client, &r, b"x").await;
    assert_eq!(client.referrers(&r, &digest, None).await.unwrap(), None);
}

#[tokio::test]
async fn nothing_listening_is_a_retryable_connect_error() {
    let port = test_support::tools::free_port();
    let client = Client::new(ClientConfig {
        insecure: true,
        retry: registry::client::RetryPolicy {
            max_attempts: 2,
            base_backoff: std::time::Duration::from_millis(10),
            max_backoff: std::time::Duration::from_millis(10),
        },
        ..ClientConfig::default()
    })
    .unwrap();
    let r: Reference = format!("127.0.0.1:{port}/app:v1").parse().unwrap();
    let err = client.resolve(&r).await.unwrap_err();
    assert!(
        matches!(err, registry::client::Error::Connect { .. }),
        "{err:?}"
    );
    assert!(err.is_retryable());
}

#[tokio::test]
async fn docker_manifests_and_indexes_are_resolved_with_their_media_types() {
    let reg = RegistryBuilder::new().start();
    let client = client();
    let r = reference(&reg, "multi:image");
    let config = client
        .push_blob_bytes(&r, Bytes::from_static(b"{}"))
        .await
        .unwrap();
    let layer = client
        .push_blob_bytes(&r, Bytes::from_static(b"layer"))
        .await
        .unwrap();
    let docker = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_types::DOCKER_MANIFEST_V2,
        "config": {"mediaType": media_types::DOCKER_CONFIG, "digest": config.digest, "size": config.size},
        "layers": [{"mediaType": media_types::DOCKER_LAYER_TAR_GZIP, "digest": layer.digest, "size": layer.size}],
    });
    let docker = Bytes::from(serde_json::to_vec(&docker).unwrap());
    let docker_digest = client
        .push_manifest(&r, media_types::DOCKER_MANIFEST_V2, docker.clone())
        .await
        .unwrap();
    let resolved = client.resolve(&r).await.unwrap();
    assert_eq!(resolved.media_type, media_types::DOCKER_MANIFEST_V2);
    let (m, _, _) = client.get_manifest(&r).await.unwrap();
    assert_eq!(m.as_image().unwrap().layers[0].digest, layer.digest);

    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_types::OCI_INDEX,
        "manifests": [{
            "mediaType": media_types::DOCKER_MANIFEST_V2,
            "digest": docker_digest,
            "size": docker.len(),
            "platform": {"architecture": "amd64", "os": "linux"},
        }],
    });
    let index = Bytes::from(serde_json::to_vec(&index).unwrap());
    let ri = r.with_tag("index");
    let index_digest = client
        .push_manifest(&ri, media_types::OCI_INDEX, index)
        .await
        .unwrap();
    let resolved = client.resolve(&ri).await.unwrap();
    assert_eq!(
        (resolved.media_type.as_str(), &resolved.digest),
        (media_types::OCI_INDEX, &index_digest)
    );
    let (m, _, _) = client.get_manifest(&ri).await.unwrap();
    let entry = &m.as_index().unwrap().manifests[0];
    assert_eq!(entry.digest, docker_digest);
    assert_eq!(entry.platform.as_ref().unwrap().os, "linux");
}

#[tokio::test]
async fn blobs_are_mounted_across_repositories() {
    let reg = RegistryBuilder::new().start();
    let client = client();
    let a = reference(&reg, "a:v1");
    let b = reference(&reg, "b:v1");
    let d = client
        .push_blob_bytes(&a, Bytes::from_static(b"shared"))
        .await
        .unwrap();
    assert!(!client.blob_exists(&b, &d.digest).await.unwrap());
    assert!(client.mount_blob(&b, "a", &d.digest).await.unwrap());
    assert!(client.blob_exists(&b, &d.digest).await.unwrap());
    // A blob the source does not have is not mounted; the caller uploads instead.
    let missing = Digest::sha256_of(b"nowhere");
    assert!(!client.mount_blob(&b, "a", &missing).await.unwrap());
}
