//! Interoperability with an independent client, `skopeo`: what our client pushes skopeo reads
//! byte for byte, and what skopeo pushes our client resolves and verifies. Also exercises the
//! harness's token server and TLS with skopeo.

use std::path::Path;
use std::process::Command;

use bytes::Bytes;
use futures::StreamExt as _;
use registry::client::{Client, ClientConfig, Credentials};
use registry::manifest::{Descriptor, ImageManifest, Manifest, media_types};
use registry::{Digest, Reference};
use test_support::pki::TestCa;
use test_support::registry::{RegistryBuilder, TokenAuth};
use test_support::tools;

fn skopeo(args: &[&str]) -> String {
    let out = Command::new(tools::require("skopeo"))
        .args(args)
        .output()
        .expect("running skopeo");
    assert!(
        out.status.success(),
        "skopeo {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A minimal OCI image: one uncompressed empty tar layer (1024 zero bytes) and its config.
fn image() -> (Vec<u8>, Vec<u8>) {
    let layer = vec![0u8; 1024];
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [Digest::sha256_of(&layer).to_string()]},
    });
    (layer, serde_json::to_vec(&config).unwrap())
}

fn manifest_for(layer: &[u8], config: &[u8]) -> Vec<u8> {
    let m = ImageManifest {
        schema_version: 2,
        media_type: Some(media_types::OCI_MANIFEST.into()),
        artifact_type: None,
        config: Descriptor::of_bytes(media_types::OCI_CONFIG, config),
        layers: vec![Descriptor::of_bytes(media_types::OCI_LAYER_TAR, layer)],
        subject: None,
        annotations: None,
    };
    serde_json::to_vec(&m).unwrap()
}

/// Writes an OCI image layout with the image tagged `v1`.
fn write_layout(dir: &Path, layer: &[u8], config: &[u8]) -> Digest {
    let manifest = manifest_for(layer, config);
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    for b in [layer, config, &manifest] {
        std::fs::write(blobs.join(Digest::sha256_of(b).hex()), b).unwrap();
    }
    let digest = Digest::sha256_of(&manifest);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": media_types::OCI_MANIFEST,
            "digest": digest.to_string(),
            "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": "v1"},
        }],
    });
    std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    digest
}

#[tokio::test]
async fn skopeo_reads_what_we_push() {
    let reg = RegistryBuilder::new().start();
    let client = Client::new(ClientConfig {
        insecure: true,
        ..ClientConfig::default()
    })
    .unwrap();
    let r: Reference = format!("{}/app:v1", reg.host()).parse().unwrap();
    let (layer, config) = image();
    client
        .push_blob_bytes(&r, Bytes::from(layer.clone()))
        .await
        .unwrap();
    client
        .push_blob_bytes(&r, Bytes::from(config.clone()))
        .await
        .unwrap();
    let manifest = manifest_for(&layer, &config);
    client
        .push_manifest(&r, media_types::OCI_MANIFEST, Bytes::from(manifest.clone()))
        .await
        .unwrap();

    let target = format!("docker://{}/app:v1", reg.host());
    let raw = skopeo(&["inspect", "--raw", "--tls-verify=false", &target]);
    assert_eq!(raw.as_bytes(), manifest.as_slice());
    let tags: serde_json::Value = serde_json::from_str(&skopeo(&[
        "list-tags",
        "--tls-verify=false",
        &format!("docker://{}/app", reg.host()),
    ]))
    .unwrap();
    assert_eq!(tags["Tags"], serde_json::json!(["v1"]));
}

#[tokio::test]
async fn we_read_what_skopeo_pushes_through_token_auth_and_tls() {
    let ca = TestCa::new();
    let reg = RegistryBuilder::new()
        .tls(&ca)
        .token_auth(TokenAuth::new("alice", "s3cret"))
        .start();
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    let (layer, config) = image();
    let digest = write_layout(&layout, &layer, &config);
    let certs = work.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::write(certs.join("ca.crt"), ca.cert_pem()).unwrap();
    let digest_file = work.path().join("digest");
    skopeo(&[
        "copy",
        "--insecure-policy",
        "--preserve-digests",
        "--dest-cert-dir",
        certs.to_str().unwrap(),
        "--dest-creds",
        "alice:s3cret",
        "--digestfile",
        digest_file.to_str().unwrap(),
        &format!("oci:{}:v1", layout.display()),
        &format!("docker://{}/copied:v1", reg.host()),
    ]);
    let pushed: Digest = std::fs::read_to_string(&digest_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(pushed, digest);

    let client = Client::new(ClientConfig {
        ca_certs_pem: vec![ca.cert_pem().to_vec()],
        credentials: Credentials::Basic {
            username: "alice".into(),
            password: "s3cret".into(),
        },
        ..ClientConfig::default()
    })
    .unwrap();
    let r: Reference = format!("{}/copied:v1", reg.host()).parse().unwrap();
    assert_eq!(client.resolve(&r).await.unwrap().digest, digest);
    let (manifest, _, _) = client.get_manifest(&r.with_digest(digest)).await.unwrap();
    let Manifest::Image(image) = manifest else {
        panic!("expected an image manifest")
    };
    let mut stream = client.get_blob(&r, &image.layers[0]).await.unwrap();
    let mut got = Vec::new();
    while let Some(chunk) = stream.next().await {
        got.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(got, layer);
}
