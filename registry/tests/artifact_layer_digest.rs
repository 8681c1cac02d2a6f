//! A layer altered in the real registry's storage after the push (the distribution registry
//! serves the changed bytes under the old digest): the pull path refuses it with a digest
//! mismatch, whether the layer is copied or extracted, even when the altered bytes break the
//! gzip stream long before the digest can be checked at its end.

use std::io::{Seek as _, SeekFrom, Write as _};
use std::path::Path;

use registry::artifact::{self, LayerOperation, PullOptions, PushOptions};
use registry::client::{ClientConfig, Error as ClientError};
use registry::{Client, Digest, Matcher, Reference};
use test_support::registry::RegistryBuilder;

fn client() -> Client {
    Client::new(ClientConfig {
        insecure: true,
        ..ClientConfig::default()
    })
    .unwrap()
}

/// Overwrites the first 16 bytes of `file` in place (same size): the gzip header is gone.
fn alter(file: &Path) {
    let mut f = std::fs::OpenOptions::new().write(true).open(file).unwrap();
    f.seek(SeekFrom::Start(0)).unwrap();
    f.write_all(&[0u8; 16]).unwrap();
}

fn assert_digest_mismatch(result: Result<Vec<u8>, artifact::Error>, layer: &Digest) {
    match result {
        Err(artifact::Error::PullLayer { digest, source, .. }) => {
            assert_eq!(&digest, layer);
            match *source {
                ClientError::DigestMismatch {
                    expected, actual, ..
                } => {
                    assert_eq!(&expected, layer);
                    assert_ne!(&actual, layer);
                }
                other => panic!("a digest mismatch, not {other:?}"),
            }
        }
        other => panic!("a layer pull failure naming the digest mismatch, not {other:?}"),
    }
}

#[tokio::test]
async fn a_layer_altered_in_the_registry_storage_is_refused_as_a_digest_mismatch() {
    let registry = RegistryBuilder::new().start();
    let client = client();
    let reference: Reference = format!("{}/app/altered:v1", registry.host())
        .parse()
        .unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/podinfo-kustomize");
    let options = PushOptions {
        source: "https://github.com/stefanprodan/podinfo".into(),
        revision: "6.5.0@sha1:0123456789abcdef0123456789abcdef01234567".into(),
        created: None,
        annotations: Default::default(),
        ignore: Matcher::flux_cli_default().unwrap(),
        progress: None,
    };
    let pushed = artifact::push(&client, &reference, &src, options)
        .await
        .unwrap();
    alter(&registry.blob_file(&pushed.layer.digest.to_string()));

    let scratch = tempfile::tempdir().unwrap();
    for operation in [LayerOperation::Extract, LayerOperation::Copy] {
        let mut options = PullOptions::default();
        options.layer.operation = operation;
        let fetched = artifact::fetch(&client, &reference, &options)
            .await
            .unwrap();
        let result = artifact::pull_artifact(
            &client,
            &fetched,
            &options,
            scratch.path(),
            None,
            Vec::new(),
        )
        .await;
        assert_digest_mismatch(result, &pushed.layer.digest);
    }
    let left: Vec<_> = std::fs::read_dir(scratch.path()).unwrap().collect();
    assert!(left.is_empty(), "extraction scratch left: {left:?}");
}
