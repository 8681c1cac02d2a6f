//! Cosign v3 bundles found through the native OCI 1.1 referrers API
//! (`GET /v2/<name>/referrers/<digest>`), which the Debian distribution 2.8 registry lacks: an
//! in-process fake registry serves a fixed set of manifests, blobs and referrers, and records
//! the paths asked for.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use registry::Reference;
use registry::client::{Client, ClientConfig};
use registry::cosign::{self, PrivateKey, PublicKey, SignatureSource, VerifyError};
use registry::manifest::{Descriptor, ImageIndex, ImageManifest, media_types};

#[derive(Default)]
struct Fake {
    /// Path tail after `/v2/app/` → (content type, bytes).
    content: HashMap<String, (String, Vec<u8>)>,
    log: Mutex<Vec<String>>,
}

async fn handle(State(fake): State<Arc<Fake>>, uri: Uri) -> Response {
    let path = uri.path().to_owned();
    fake.log.lock().unwrap().push(path.clone());
    if path == "/v2/" {
        return StatusCode::OK.into_response();
    }
    let Some(tail) = path.strip_prefix("/v2/app/") else {
        return StatusCode::NOT_FOUND.into_response();
    };
    match fake.content.get(tail) {
        Some((content_type, bytes)) => {
            let digest = format!("sha256:{}", sha256_hex(bytes));
            (
                [
                    (header::CONTENT_TYPE, content_type.clone()),
                    (
                        header::HeaderName::from_static("docker-content-digest"),
                        digest,
                    ),
                ],
                bytes.clone(),
            )
                .into_response()
        }
        None => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"unknown"}]}"#,
        )
            .into_response(),
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    registry::Digest::sha256_of(bytes).hex().to_owned()
}

fn pae(payload_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

#[tokio::test]
async fn bundles_are_found_through_the_referrers_api() {
    let key = PrivateKey::generate().unwrap();
    let public = PublicKey::from_pem(&key.public_key().unwrap().to_pem().unwrap()).unwrap();
    let bundle_type = cosign::BUNDLE_V03_MEDIA_TYPE;
    let mut content = HashMap::new();

    // The signed artifact.
    let empty = b"{}".to_vec();
    let subject = ImageManifest {
        schema_version: 2,
        media_type: Some(media_types::OCI_MANIFEST.into()),
        artifact_type: None,
        config: Descriptor::empty(),
        layers: vec![],
        subject: None,
        annotations: None,
    };
    let subject_bytes = serde_json::to_vec(&subject).unwrap();
    let subject_desc = Descriptor::of_bytes(media_types::OCI_MANIFEST, &subject_bytes);
    let digest = subject_desc.digest.clone();

    // A cosign v3 bundle signed with the key.
    let statement = serde_json::to_vec(&serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"digest": {"sha256": digest.hex()}}],
        "predicateType": cosign::COSIGN_SIGN_PREDICATE,
        "predicate": {},
    }))
    .unwrap();
    let sig = key
        .sign(&pae(cosign::IN_TOTO_PAYLOAD_TYPE, &statement))
        .unwrap();
    let bundle = serde_json::to_vec(&serde_json::json!({
        "mediaType": bundle_type,
        "verificationMaterial": {"publicKey": {"hint": "k"}},
        "dsseEnvelope": {
            "payload": STANDARD.encode(&statement),
            "payloadType": cosign::IN_TOTO_PAYLOAD_TYPE,
            "signatures": [{"sig": STANDARD.encode(&sig), "keyid": ""}],
        },
    }))
    .unwrap();
    let bundle_desc = Descriptor::of_bytes(bundle_type, &bundle);
    let referrer = ImageManifest {
        schema_version: 2,
        media_type: Some(media_types::OCI_MANIFEST.into()),
        artifact_type: Some(bundle_type.into()),
        config: Descriptor::empty(),
        layers: vec![bundle_desc.clone()],
        subject: Some(subject_desc.clone()),
        annotations: None,
    };
    let referrer_bytes = serde_json::to_vec(&referrer).unwrap();
    let mut referrer_desc = Descriptor::of_bytes(media_types::OCI_MANIFEST, &referrer_bytes);
    referrer_desc.artifact_type = Some(bundle_type.into());
    let mut index = ImageIndex::empty();
    index.manifests.push(referrer_desc.clone());

    let oci = media_types::OCI_MANIFEST.to_owned();
    content.insert("manifests/v1".into(), (oci.clone(), subject_bytes.clone()));
    content.insert(format!("manifests/{digest}"), (oci.clone(), subject_bytes));
    content.insert(
        format!("manifests/{}", referrer_desc.digest),
        (oci, referrer_bytes),
    );
    content.insert(
        format!("blobs/{}", bundle_desc.digest),
        ("application/octet-stream".into(), bundle),
    );
    content.insert(
        format!("blobs/{}", Descriptor::empty().digest),
        ("application/octet-stream".into(), empty),
    );
    content.insert(
        format!("referrers/{digest}"),
        (
            media_types::OCI_INDEX.into(),
            serde_json::to_vec(&index).unwrap(),
        ),
    );

    let fake = Arc::new(Fake {
        content,
        ..Fake::default()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().fallback(handle).with_state(fake.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let client = Client::new(ClientConfig {
        insecure: true,
        ..ClientConfig::default()
    })
    .unwrap();
    let r: Reference = format!("{addr}/app:v1").parse().unwrap();
    let verified = cosign::verify(&client, &r, &digest, std::slice::from_ref(&public))
        .await
        .unwrap();
    assert_eq!(verified.source, SignatureSource::Bundle);
    assert_eq!(verified.digest, digest);
    let log = fake.log.lock().unwrap().clone();
    assert!(
        log.contains(&format!("/v2/app/referrers/{digest}")),
        "{log:?}"
    );
    let fallback = format!("/v2/app/manifests/sha256-{}", digest.hex());
    assert!(
        !log.contains(&fallback),
        "the fallback tag is not read when the API answers: {log:?}"
    );

    let stranger = PublicKey::from_pem(
        &PrivateKey::generate()
            .unwrap()
            .public_key()
            .unwrap()
            .to_pem()
            .unwrap(),
    )
    .unwrap();
    let e = cosign::verify(&client, &r, &digest, &[stranger])
        .await
        .unwrap_err();
    assert!(
        matches!(e, VerifyError::NoMatchingSignature { signatures: 1, .. }),
        "{e:?}"
    );
}
