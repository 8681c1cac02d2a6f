//! The artifact API as the reconciler uses it, against the real registry: push, pull with
//! limits, copy a layer to a file, tag, list and diff.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use registry::artifact::{self, PullOptions, PushOptions, REPRODUCIBLE_CREATED};
use registry::client::ClientConfig;
use registry::extract::{self, Limits};
use registry::{Client, Digest, Matcher, Reference};
use test_support::registry::RegistryBuilder;

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/testdata")
        .join(name)
}

fn client() -> Client {
    Client::new(ClientConfig {
        insecure: true,
        ..ClientConfig::default()
    })
    .unwrap()
}

fn options() -> PushOptions {
    PushOptions {
        source: "https://github.com/stefanprodan/podinfo".into(),
        revision: "6.5.0@sha1:0123456789abcdef0123456789abcdef01234567".into(),
        created: Some(REPRODUCIBLE_CREATED.into()),
        annotations: BTreeMap::from([("team".to_owned(), "platform".to_owned())]),
        ignore: Matcher::flux_cli_default().unwrap(),
        progress: None,
    }
}

#[tokio::test]
async fn push_pull_copy_tag_list_and_diff() {
    let registry = RegistryBuilder::new().start();
    let client = client();
    let reference: Reference = format!("{}/lib/app:v1.0.0", registry.host())
        .parse()
        .unwrap();
    let src = testdata("podinfo-deploy");

    let pushed = artifact::push(&client, &reference, &src, options())
        .await
        .unwrap();
    assert_eq!(pushed.reference.tag.as_deref(), Some("v1.0.0"));
    assert_eq!(Digest::sha256_of(&pushed.manifest), pushed.digest);
    let again = artifact::push(&client, &reference, &src, options())
        .await
        .unwrap();
    assert_eq!(again.digest, pushed.digest, "reproducible");

    let dest = tempfile::tempdir().unwrap();
    let pulled = artifact::pull(&client, &reference, dest.path(), PullOptions::default())
        .await
        .unwrap();
    assert_eq!(pulled.digest, pushed.digest);
    assert_eq!(
        pulled.revision.as_deref(),
        Some("6.5.0@sha1:0123456789abcdef0123456789abcdef01234567")
    );
    assert_eq!(
        pulled.annotations.get("team").map(String::as_str),
        Some("platform")
    );
    assert_eq!(pulled.layer, pushed.layer);
    assert!(pulled.extracted.files > 5);

    // Limits name the limit and the entry.
    let small = tempfile::tempdir().unwrap();
    let err = artifact::pull(
        &client,
        &reference,
        small.path(),
        PullOptions {
            limits: Limits {
                max_size_bytes: 1 << 30,
                max_files: 3,
            },
            ..PullOptions::default()
        },
    )
    .await
    .unwrap_err();
    let artifact::Error::Extract {
        source: extract::Error::FileCountLimit { limit: 3, .. },
        ..
    } = &err
    else {
        panic!("{err:?}")
    };

    // Copy: the blob byte for byte, equal to a local build.
    let copy = tempfile::tempdir().unwrap();
    let file = copy.path().join("layer.tgz");
    let (layer, manifest_digest) =
        artifact::pull_layer_to_file(&client, &reference, None, &file, None)
            .await
            .unwrap();
    assert_eq!(manifest_digest, pushed.digest);
    let bytes = std::fs::read(&file).unwrap();
    assert_eq!(Digest::sha256_of(&bytes), layer.digest);
    let mut local = Vec::new();
    registry::archive::build(&src, &Matcher::flux_cli_default().unwrap(), &mut local).unwrap();
    assert_eq!(local, bytes, "the build is deterministic");

    // Tag and list.
    let digest = artifact::tag(&client, &reference, &["v1.1.0".into(), "stable".into()])
        .await
        .unwrap();
    assert_eq!(digest, pushed.digest);
    let rows = artifact::list(&client, &reference, &|t: &str| t.starts_with("v1.1"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].tag, "v1.1.0");
    assert_eq!(rows[0].digest, pushed.digest);
    assert_eq!(rows[0].source, "https://github.com/stefanprodan/podinfo");

    // Diff by content.
    let report = artifact::diff(
        &client,
        &reference,
        &src,
        Matcher::flux_cli_default().unwrap(),
        Limits::default(),
    )
    .await
    .unwrap();
    assert!(report.is_empty(), "{report:?}");
    let other = artifact::diff(
        &client,
        &reference,
        &testdata("podinfo-kustomize"),
        Matcher::flux_cli_default().unwrap(),
        Limits::default(),
    )
    .await
    .unwrap();
    assert!(!other.is_empty());
}

#[tokio::test]
async fn missing_artifacts_are_classified() {
    let registry = RegistryBuilder::new().start();
    let client = client();
    let reference: Reference = format!("{}/lib/none:v1", registry.host()).parse().unwrap();
    let dest = tempfile::tempdir().unwrap();
    let err = artifact::pull(&client, &reference, dest.path(), PullOptions::default())
        .await
        .unwrap_err();
    let artifact::Error::GetManifest { source, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(source.is_not_found(), "{source:?}");
}
