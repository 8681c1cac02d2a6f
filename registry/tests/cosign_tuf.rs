//! The Sigstore trusted root refreshed over TUF (`registry::cosign::tuf`): a real TUF repository
//! written by python-tuf (`test_support::tuf`, Ed25519 keys, consistent snapshots) whose target
//! `trusted_root.json` is the test Sigstore's root (`test_support::sigstore`), served over HTTP
//! from loopback; keyless signatures by the test CA in the real registry.

mod common;

use std::time::{Duration, Instant};

use common::push_artifact;
use regex::Regex;
use registry::client::{Client, ClientConfig};
use registry::cosign::tuf::{RefreshError, RootOrigin};
use registry::cosign::{self, Identity, TrustedRootProvider, TufConfig};
use registry::{Digest, Reference};
use test_support::registry::{Registry, RegistryBuilder};
use test_support::tuf::TufRepository;

/// A registry with one artifact signed keylessly by the test Sigstore, whose
/// `trusted_root.json` (and `other_root.json`, another CA) are in `sigstore`.
struct Signed {
    _registry: Registry,
    client: Client,
    reference: Reference,
    digest: Digest,
    sigstore: tempfile::TempDir,
}

impl Signed {
    async fn new() -> Self {
        let registry = RegistryBuilder::new().start();
        let client = Client::new(ClientConfig {
            insecure: true,
            ..ClientConfig::default()
        })
        .unwrap();
        let reference: Reference = format!("{}/tuf/app:v1", registry.host()).parse().unwrap();
        let digest = push_artifact(&client, &reference, b"tuf").await;
        let sigstore = tempfile::tempdir().unwrap();
        let dir = sigstore.path().to_str().unwrap().to_owned();
        let digest_text = digest.to_string();
        test_support::sigstore::run(
            sigstore.path(),
            &[
                registry.host(),
                &dir,
                &reference.repository,
                &digest_text,
                "good",
            ],
        );
        Self {
            _registry: registry,
            client,
            reference,
            digest,
            sigstore,
        }
    }

    fn root_file(&self, name: &str) -> std::path::PathBuf {
        self.sigstore.path().join(name)
    }

    /// Whether the signature verifies against `provider`'s current root.
    async fn verifies(&self, provider: &TrustedRootProvider) -> bool {
        let identity = Identity {
            issuer: Regex::new(r"^https://token\.actions\.githubusercontent\.com$").unwrap(),
            subject: Regex::new(r"^https://github\.com/org/app/").unwrap(),
        };
        cosign::verify_keyless(
            &self.client,
            &self.reference,
            &self.digest,
            &provider.current(),
            &[identity],
        )
        .await
        .is_ok()
    }
}

fn provider(mirror: &str, root: &std::path::Path, cache: &std::path::Path) -> TrustedRootProvider {
    let config = TufConfig::new(mirror.parse().unwrap(), cache.to_owned())
        .with_initial_root(std::fs::read(root).unwrap());
    TrustedRootProvider::new(config).unwrap()
}

/// A fresh test Sigstore, a TUF repository whose `trusted_root.json` target is its file
/// `target`, and a provider of it with its own cache directory (kept alive by the caller).
async fn mirrored(
    target: &str,
) -> (
    Signed,
    TufRepository,
    tempfile::TempDir,
    TrustedRootProvider,
) {
    let signed = Signed::new().await;
    let tuf = TufRepository::new(&signed.root_file(target));
    let cache = tempfile::tempdir().unwrap();
    let provider = provider(&tuf.url(), &tuf.root_path(), cache.path());
    (signed, tuf, cache, provider)
}

#[tokio::test]
async fn a_keyless_signature_verifies_only_after_the_refresh() {
    let (signed, _tuf, _cache, provider) = mirrored("trusted_root.json").await;

    assert_eq!(provider.origin(), RootOrigin::Embedded);
    assert!(
        !signed.verifies(&provider).await,
        "the public-good root does not know the test CA"
    );
    provider.refresh().await.unwrap();
    assert_eq!(provider.origin(), RootOrigin::Mirror);
    assert!(signed.verifies(&provider).await);
    assert!(!provider.refresh_due(Duration::from_secs(3600)));
}

#[tokio::test]
async fn the_next_start_verifies_the_cache_offline() {
    let signed = Signed::new().await;
    let tuf = TufRepository::new(&signed.root_file("trusted_root.json"));
    let (cache, root) = (tempfile::tempdir().unwrap(), tuf.root_path());
    let root_copy = cache.path().join("initial-root.json");
    std::fs::copy(&root, &root_copy).unwrap();
    let mirror = tuf.url();
    provider(&mirror, &root_copy, cache.path())
        .refresh()
        .await
        .unwrap();
    drop(tuf);

    let restarted = provider(&mirror, &root_copy, cache.path());
    assert!(restarted.load_cache().await.unwrap(), "cache taken");
    assert_eq!(restarted.origin(), RootOrigin::Cache);
    assert!(signed.verifies(&restarted).await);
    let offline = restarted.refresh().await.unwrap_err();
    assert!(offline.is_unreachable(), "{offline:?}");
    assert!(signed.verifies(&restarted).await, "the cached root is kept");
}

#[tokio::test]
async fn a_tampered_target_is_refused_and_the_previous_root_kept() {
    let (signed, tuf, _cache, provider) = mirrored("trusted_root.json").await;
    provider.refresh().await.unwrap();

    tuf.set_target(&signed.root_file("other_root.json"));
    tuf.tamper_target();
    let error = provider.refresh().await.unwrap_err();
    assert!(
        matches!(error, RefreshError::ReadTarget { .. }),
        "{error:?}"
    );
    assert_eq!(provider.origin(), RootOrigin::Mirror);
    assert!(signed.verifies(&provider).await, "previous root kept");
}

#[tokio::test]
async fn expired_timestamp_metadata_is_refused_and_the_previous_root_kept() {
    let (signed, tuf, _cache, provider) = mirrored("trusted_root.json").await;
    provider.refresh().await.unwrap();

    tuf.set_target(&signed.root_file("other_root.json"));
    tuf.expire_timestamp();
    let error = provider.refresh().await.unwrap_err();
    assert!(
        matches!(error, RefreshError::LoadRepository { .. }) && !error.is_unreachable(),
        "{error:?}"
    );
    assert!(
        format!("{:?}", error).contains("ExpiredMetadata"),
        "{error:?}"
    );
    assert!(signed.verifies(&provider).await, "previous root kept");
}

#[tokio::test]
async fn a_root_rotation_is_followed() {
    let (signed, tuf, cache, provider) = mirrored("other_root.json").await;
    provider.refresh().await.unwrap();
    assert!(!signed.verifies(&provider).await, "other CA");

    // Root v2 replaces the root and timestamp keys: the new timestamp verifies only under v2.
    tuf.rotate_root();
    tuf.set_target(&signed.root_file("trusted_root.json"));
    provider.refresh().await.unwrap();
    assert!(signed.verifies(&provider).await);

    // A later start trusts the cached v2 and verifies the v2-signed cache offline.
    let restarted = self::provider(&tuf.url(), &tuf.root_path(), cache.path());
    assert!(restarted.load_cache().await.unwrap());
    assert!(signed.verifies(&restarted).await);
}

#[tokio::test]
async fn an_unreachable_mirror_keeps_the_embedded_root_without_delay() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mirror = format!("http://{}/", closed.local_addr().unwrap());
    drop(closed);
    let cache = tempfile::tempdir().unwrap();
    let config = TufConfig::new(mirror.parse().unwrap(), cache.path().to_owned());
    let provider = TrustedRootProvider::new(config).unwrap();

    let started = Instant::now();
    let error = provider.refresh().await.unwrap_err();
    assert!(error.is_unreachable(), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(2), "fails fast");
    assert_eq!(provider.origin(), RootOrigin::Embedded);

    // A mirror that accepts connections and never answers: the refresh hangs in the
    // background, and the current root is there at once.
    let black_hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mirror = format!("http://{}/", black_hole.local_addr().unwrap());
    let config = TufConfig::new(mirror.parse().unwrap(), cache.path().to_owned());
    let provider = TrustedRootProvider::new(config).unwrap();
    let refresh = tokio::spawn({
        let provider = provider.clone();
        async move { provider.refresh().await }
    });
    let started = Instant::now();
    let root = provider.current();
    assert!(started.elapsed() < Duration::from_millis(100));
    assert_eq!(
        format!("{root:?}"),
        format!("{:?}", cosign::TrustedRoot::public_good())
    );
    let mut refresh = refresh;
    assert!(
        tokio::time::timeout(Duration::from_millis(500), &mut refresh)
            .await
            .is_err(),
        "the refresh is still waiting for the mirror"
    );
    assert_eq!(provider.origin(), RootOrigin::Embedded);
    refresh.abort();
}
