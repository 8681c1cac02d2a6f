//! Manifest digests: a registry whose manifest bytes match neither the digest asked for nor
//! the `Docker-Content-Digest` it sends is refused with `DigestMismatch`, nothing returned.

use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use registry::client::{Client, ClientConfig, Error, RetryPolicy};
use registry::manifest::media_types;
use registry::{Digest, Reference};

const MANIFEST: &[u8] = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;
/// The bytes the fake actually sends: the manifest with one byte changed.
const ALTERED: &[u8] = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":3},"layers":[]}"#;

/// Serves `ALTERED` for every manifest, with `Docker-Content-Digest` = `header_digest`.
async fn serve(header_digest: Digest) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().fallback(move || {
        let digest = header_digest.to_string();
        async move {
            let mut response: Response = ALTERED.into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(media_types::OCI_MANIFEST),
            );
            headers.insert("docker-content-digest", digest.parse().unwrap());
            response
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr.to_string()
}

fn client() -> Client {
    Client::new(ClientConfig {
        insecure: true,
        retry: RetryPolicy {
            max_attempts: 1,
            base_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(10),
        },
        timeout: Duration::from_secs(10),
        ..ClientConfig::default()
    })
    .unwrap()
}

fn assert_mismatch(result: Result<impl std::fmt::Debug, Error>, want: &Digest) {
    match result {
        Err(Error::DigestMismatch {
            expected, actual, ..
        }) => {
            assert_eq!(&expected, want);
            assert_eq!(actual, Digest::sha256_of(ALTERED));
        }
        other => panic!("a digest mismatch, not {other:?}"),
    }
}

#[tokio::test]
async fn manifest_bytes_that_do_not_match_the_requested_digest_are_refused() {
    let wanted = Digest::sha256_of(MANIFEST);
    // The header even agrees with the altered bytes: the digest asked for still wins.
    let host = serve(Digest::sha256_of(ALTERED)).await;
    let reference: Reference = format!("{host}/app@{wanted}").parse().unwrap();
    assert_mismatch(client().get_manifest(&reference).await, &wanted);
}

#[tokio::test]
async fn manifest_bytes_that_do_not_match_docker_content_digest_are_refused() {
    let claimed = Digest::sha256_of(MANIFEST);
    let host = serve(claimed.clone()).await;
    let reference: Reference = format!("{host}/app:v1").parse().unwrap();
    assert_mismatch(client().get_manifest(&reference).await, &claimed);
}
