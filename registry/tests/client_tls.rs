//! TLS against the real registry: the test CA as an extra root, failure without it, and mutual
//! TLS with and without a client certificate.

use bytes::Bytes;
use registry::Reference;
use registry::client::{Client, ClientConfig, ClientIdentity, Error, RetryPolicy};
use test_support::pki::TestCa;
use test_support::registry::RegistryBuilder;

fn no_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 1,
        ..RetryPolicy::default()
    }
}

#[tokio::test]
async fn trusts_the_registry_only_with_its_ca() {
    let ca = TestCa::new();
    let reg = RegistryBuilder::new().tls(&ca).start();
    let r: Reference = format!("{}/app:v1", reg.host()).parse().unwrap();

    let trusted = Client::new(ClientConfig {
        ca_certs_pem: vec![reg.ca_pem().unwrap().to_vec()],
        ..ClientConfig::default()
    })
    .unwrap();
    let d = trusted
        .push_blob_bytes(&r, Bytes::from_static(b"tls"))
        .await
        .unwrap();
    assert!(trusted.blob_exists(&r, &d.digest).await.unwrap());

    let untrusted = Client::new(ClientConfig {
        retry: no_retry(),
        ..ClientConfig::default()
    })
    .unwrap();
    let err = untrusted.blob_exists(&r, &d.digest).await.unwrap_err();
    assert!(matches!(err, Error::Tls { .. }), "{err:?}");
    assert!(!err.is_retryable(), "{err:?}");

    let other_ca = TestCa::with_name("some other CA");
    let wrong = Client::new(ClientConfig {
        ca_certs_pem: vec![other_ca.cert_pem().to_vec()],
        retry: no_retry(),
        ..ClientConfig::default()
    })
    .unwrap();
    let err = wrong.blob_exists(&r, &d.digest).await.unwrap_err();
    assert!(matches!(err, Error::Tls { .. }), "{err:?}");

    // `insecure` without a CA: HTTPS without certificate verification (Flux's
    // `spec.insecure` without `certSecretRef`), not plain HTTP against the TLS port.
    let insecure = Client::new(ClientConfig {
        insecure: true,
        retry: no_retry(),
        ..ClientConfig::default()
    })
    .unwrap();
    assert!(insecure.blob_exists(&r, &d.digest).await.unwrap());
    // `insecure` with a CA verifies with it; a certificate failure is not retried over HTTP.
    let insecure_wrong_ca = Client::new(ClientConfig {
        insecure: true,
        ca_certs_pem: vec![other_ca.cert_pem().to_vec()],
        retry: no_retry(),
        ..ClientConfig::default()
    })
    .unwrap();
    let err = insecure_wrong_ca
        .blob_exists(&r, &d.digest)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Tls { .. }), "{err:?}");
}

#[tokio::test]
async fn mutual_tls_needs_a_client_certificate_from_the_trusted_ca() {
    let ca = TestCa::new();
    let clients = TestCa::with_name("client CA");
    let reg = RegistryBuilder::new().tls(&ca).client_ca(&clients).start();
    let r: Reference = format!("{}/app:v1", reg.host()).parse().unwrap();
    let config = |identity: Option<ClientIdentity>| ClientConfig {
        ca_certs_pem: vec![ca.cert_pem().to_vec()],
        client_identity: identity,
        retry: no_retry(),
        ..ClientConfig::default()
    };

    let (cert_pem, key_pem) = clients.issue_client("flux", "system:flux");
    let with_cert = Client::new(config(Some(ClientIdentity { cert_pem, key_pem }))).unwrap();
    let d = with_cert
        .push_blob_bytes(&r, Bytes::from_static(b"mtls"))
        .await
        .unwrap();
    assert!(with_cert.blob_exists(&r, &d.digest).await.unwrap());

    let without = Client::new(config(None)).unwrap();
    let err = without.blob_exists(&r, &d.digest).await.unwrap_err();
    assert!(matches!(err, Error::Tls { .. }), "{err:?}");

    let stranger = TestCa::with_name("stranger CA");
    let (cert_pem, key_pem) = stranger.issue_client("mallory", "x");
    let wrong = Client::new(config(Some(ClientIdentity { cert_pem, key_pem }))).unwrap();
    let err = wrong.blob_exists(&r, &d.digest).await.unwrap_err();
    assert!(matches!(err, Error::Tls { .. }), "{err:?}");
}

#[test]
fn bad_client_identity_is_invalid_config() {
    let err = Client::new(ClientConfig {
        client_identity: Some(ClientIdentity {
            cert_pem: b"nope".to_vec(),
            key_pem: b"nope".to_vec(),
        }),
        ..ClientConfig::default()
    })
    .unwrap_err();
    assert!(matches!(err, Error::InvalidConfig { .. }), "{err:?}");
}
