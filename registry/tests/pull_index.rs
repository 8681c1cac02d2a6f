//! The one pull path against the real registry: an image index is followed by the documented
//! platform rule (the only entry; else the wanted platform; else a refusal, never a guess),
//! and the layer is the first unless a media type is selected.

use bytes::Bytes;
use registry::artifact::{self, LayerOperation, LayerSelector, Platform, PullOptions};
use registry::client::ClientConfig;
use registry::manifest::media_types;
use registry::{Client, Digest, Reference};
use test_support::registry::RegistryBuilder;

fn client() -> Client {
    Client::new(ClientConfig {
        insecure: true,
        ..ClientConfig::default()
    })
    .unwrap()
}

/// A tar+gzip layer holding one file `name` with `content`.
fn layer(name: &str, content: &[u8]) -> Vec<u8> {
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::default(),
    ));
    let mut header = tar::Header::new_gnu();
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, name, content).unwrap();
    tar.into_inner().unwrap().finish().unwrap()
}

/// Pushes an image manifest whose only layer holds `name`; returns its descriptor JSON.
async fn push_image(client: &Client, repo: &Reference, name: &str) -> serde_json::Value {
    let config = Bytes::from_static(b"{}");
    let config_d = client.push_blob_bytes(repo, config.clone()).await.unwrap();
    let blob = Bytes::from(layer(name, name.as_bytes()));
    let layer_d = client.push_blob_bytes(repo, blob.clone()).await.unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_types::OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_d.digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": layer_d.digest, "size": blob.len()}],
    });
    let bytes = Bytes::from(serde_json::to_vec(&manifest).unwrap());
    let digest = Digest::sha256_of(&bytes);
    client
        .push_manifest(
            &repo.with_digest(digest.clone()),
            media_types::OCI_MANIFEST,
            bytes.clone(),
        )
        .await
        .unwrap();
    serde_json::json!({"mediaType": media_types::OCI_MANIFEST, "digest": digest,
                       "size": bytes.len()})
}

async fn push_index(client: &Client, repo: &Reference, tag: &str, entries: &[(&str, &str)]) {
    let mut manifests = Vec::new();
    for (os, arch) in entries {
        let mut d = push_image(client, repo, &format!("{os}-{arch}.txt")).await;
        d["platform"] = serde_json::json!({"os": os, "architecture": arch});
        manifests.push(d);
    }
    let index = serde_json::json!({"schemaVersion": 2, "mediaType": media_types::OCI_INDEX,
                                   "manifests": manifests});
    client
        .push_manifest(
            &repo.with_tag(tag),
            media_types::OCI_INDEX,
            Bytes::from(serde_json::to_vec(&index).unwrap()),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn an_index_is_followed_by_the_platform_rule() {
    let registry = RegistryBuilder::new().start();
    let client = client();
    let repo: Reference = format!("{}/lib/multi", registry.host()).parse().unwrap();
    push_index(
        &client,
        &repo,
        "two",
        &[("linux", "arm64"), ("linux", "amd64")],
    )
    .await;
    push_index(&client, &repo, "one", &[("linux", "arm64")]).await;
    push_index(
        &client,
        &repo,
        "none",
        &[("windows", "amd64"), ("linux", "arm64")],
    )
    .await;

    let pull = |tag: &str, platform: Platform| {
        let (client, reference) = (client.clone(), repo.with_tag(tag));
        async move {
            let dest = tempfile::tempdir().unwrap();
            let options = PullOptions {
                platform,
                ..PullOptions::default()
            };
            let pulled = artifact::pull(&client, &reference, dest.path(), options).await;
            let files: Vec<String> = std::fs::read_dir(dest.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            (pulled, files)
        }
    };
    let (pulled, files) = pull("two", Platform::default()).await;
    pulled.unwrap();
    assert_eq!(
        files,
        ["linux-amd64.txt"],
        "the default platform is linux/amd64"
    );
    let arm = Platform {
        os: "linux".into(),
        architecture: "arm64".into(),
    };
    let (_, files) = pull("two", arm).await;
    assert_eq!(files, ["linux-arm64.txt"]);
    let (_, files) = pull("one", Platform::default()).await;
    assert_eq!(files, ["linux-arm64.txt"], "a one-entry index is followed");
    let (pulled, _) = pull("none", Platform::default()).await;
    let err = pulled.unwrap_err();
    assert!(
        matches!(&err, artifact::Error::NoPlatformMatch { count: 2, platform, .. } if platform == "linux/amd64"),
        "{err:?}"
    );

    // The reconcilers' path: resolve (HEAD), then fetch by digest, the same rule.
    let resolved = artifact::resolve(&client, &repo.with_tag("two"))
        .await
        .unwrap();
    assert_eq!(resolved.media_type, media_types::OCI_INDEX);
    let options = PullOptions {
        layer: LayerSelector {
            media_type: Some("application/x-none".into()),
            operation: LayerOperation::Copy,
        },
        ..PullOptions::default()
    };
    let err = artifact::fetch(&client, &repo.with_digest(resolved.digest), &options)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, artifact::Error::NoMatchingLayer { media_type, .. } if media_type == "application/x-none"),
        "{err:?}"
    );
}
