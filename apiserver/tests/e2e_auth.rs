//! End to end with credentials: a private registry (htpasswd) with a wrong and then a fixed
//! `kubernetes.io/dockerconfigjson` Secret in `--secrets-dir`, TLS with a CA from
//! `certSecretRef`, and mutual TLS.

use std::path::Path;

use test_support::e2e::{
    apply, download, files, jsonpath, oci_repository, push, push_podinfo, sha256, testdata, untar,
    wait_ready, write_docker_secret, write_secret,
};
use test_support::kubectl::Kubectl;
use test_support::pki::TestCa;
use test_support::registry::RegistryBuilder;
use test_support::server::{ApiServer, ServerOptions};

fn server(secrets: &Path) -> ApiServer {
    ApiServer::start(
        Path::new(env!("CARGO_BIN_EXE_source-apiserver")),
        ServerOptions {
            args: vec!["--secrets-dir".into(), secrets.display().to_string()],
            ..Default::default()
        },
    )
}

#[test]
fn wrong_credentials_fail_until_the_secret_file_is_fixed() {
    let registry = RegistryBuilder::new().htpasswd("alice", "s3cret").start();
    let url = registry.oci_url("private/app");
    push(
        &format!("{url}:v1"),
        &testdata("podinfo-kustomize"),
        &["--insecure-registry", "--creds", "alice:s3cret"],
    );
    let secrets = tempfile::tempdir().unwrap();
    write_docker_secret(secrets.path(), "creds", registry.host(), "alice", "wrong");
    let server = server(secrets.path());
    let k = Kubectl::for_server(&server);
    apply(
        &k,
        &oci_repository(
            "v1",
            "private",
            &format!(
                "  interval: 2s\n  url: {url}\n  insecure: true\n  ref:\n    tag: v1\n  secretRef:\n    name: creds\n"
            ),
        ),
    );
    let message = wait_ready(&k, "private", "False", Some("AuthenticationFailed"));
    assert!(message.contains("authentication"), "{message}");
    assert!(
        !message.contains("wrong"),
        "the password never shows: {message}"
    );
    assert_eq!(
        jsonpath(
            &k,
            "private",
            "{.status.conditions[?(@.type==\"FetchFailed\")].reason}"
        ),
        "AuthenticationFailed"
    );

    write_docker_secret(secrets.path(), "creds", registry.host(), "alice", "s3cret");
    wait_ready(&k, "private", "True", Some("Succeeded"));
    let bytes = download(&k, "v1", "private");
    assert_eq!(
        sha256(&bytes),
        jsonpath(&k, "private", "{.status.artifact.digest}")
    );
    assert_eq!(
        files(untar(&bytes).path()),
        files(&testdata("podinfo-kustomize"))
    );
    assert!(
        !server.log().contains("s3cret"),
        "no credentials in the log"
    );

    // A missing Secret says where Secrets come from.
    apply(
        &k,
        &oci_repository(
            "v1",
            "nosecret",
            &format!(
                "  interval: 2s\n  url: {url}\n  insecure: true\n  secretRef:\n    name: absent\n"
            ),
        ),
    );
    let message = wait_ready(&k, "nosecret", "False", Some("AuthenticationFailed"));
    assert!(
        message.starts_with("failed to get credential: secrets \"absent\" not found"),
        "{message}"
    );
}

#[test]
fn tls_with_a_ca_from_cert_secret_ref_and_mutual_tls() {
    let ca = TestCa::new();
    let (cert, key) = ca.issue_client_files("client", "source-apiserver", "tests");
    let tls = RegistryBuilder::new().tls(&ca).start();
    let mtls = RegistryBuilder::new().tls(&ca).client_ca(&ca).start();
    let ca_file = ca.cert_path().to_str().unwrap().to_owned();
    push(
        &format!("{}:v1", tls.oci_url("tls/app")),
        &testdata("podinfo-kustomize"),
        &["--ca-file", &ca_file],
    );
    push(
        &format!("{}:v1", mtls.oci_url("mtls/app")),
        &testdata("podinfo-kustomize"),
        &[
            "--ca-file",
            &ca_file,
            "--cert-file",
            cert.to_str().unwrap(),
            "--key-file",
            key.to_str().unwrap(),
        ],
    );
    let secrets = tempfile::tempdir().unwrap();
    write_secret(secrets.path(), "ca", &[("ca.crt", ca.cert_pem())]);
    write_secret(
        secrets.path(),
        "client",
        &[
            ("tls.crt", &std::fs::read(&cert).unwrap()),
            ("tls.key", &std::fs::read(&key).unwrap()),
            ("ca.crt", ca.cert_pem()),
        ],
    );
    // The legacy keys Flux still accepts.
    write_secret(
        secrets.path(),
        "legacy",
        &[
            ("certFile", &std::fs::read(&cert).unwrap()),
            ("keyFile", &std::fs::read(&key).unwrap()),
            ("caFile", ca.cert_pem()),
        ],
    );
    let server = server(secrets.path());
    let k = Kubectl::for_server(&server);
    let object = |name: &str, url: String, secret: Option<&str>| {
        let cert = secret
            .map(|s| format!("  certSecretRef:\n    name: {s}\n"))
            .unwrap_or_default();
        oci_repository(
            "v1",
            name,
            &format!("  interval: 2s\n  url: {url}\n  ref:\n    tag: v1\n{cert}"),
        )
    };
    apply(&k, &object("tls", tls.oci_url("tls/app"), Some("ca")));
    apply(
        &k,
        &object("mtls", mtls.oci_url("mtls/app"), Some("client")),
    );
    apply(
        &k,
        &object("legacy", mtls.oci_url("mtls/app"), Some("legacy")),
    );
    apply(&k, &object("untrusted", tls.oci_url("tls/app"), None));
    apply(&k, &object("nocert", mtls.oci_url("mtls/app"), Some("ca")));
    for name in ["tls", "mtls", "legacy"] {
        wait_ready(&k, name, "True", Some("Succeeded"));
        let bytes = download(&k, "v1", name);
        assert_eq!(
            files(untar(&bytes).path()),
            files(&testdata("podinfo-kustomize"))
        );
    }
    // No CA: the server certificate fails verification. A client certificate missing: the
    // registry refuses the handshake (TLS alert 42, bad_certificate). Not any failure: the TLS
    // cause, on the request for the tag.
    let message = wait_ready(&k, "untrusted", "False", Some("AuthenticationFailed"));
    assert!(
        message.starts_with(&format!(
            "failed to determine artifact digest: tls error talking to https://{}/v2/tls/app/manifests/v1: ",
            tls.host()
        )) && message.contains("certificate verify failed"),
        "{message}"
    );
    let message = wait_ready(&k, "nocert", "False", Some("AuthenticationFailed"));
    assert!(
        message.starts_with(&format!(
            "failed to determine artifact digest: tls error talking to https://{}/v2/mtls/app/manifests/v1: ",
            mtls.host()
        )) && message.contains("bad certificate"),
        "{message}"
    );
}

fn sourcectl_with_password(args: &[&str]) -> String {
    let empty = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(test_support::e2e::sourcectl_binary())
        .env("DOCKER_CONFIG", empty.path())
        .env("COSIGN_PASSWORD", "")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sourcectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Generates a cosign key pair in a new directory and pushes `src` to `url` signed with it;
/// returns the directory (`cosign.key`, `cosign.pub`).
fn push_signed(url: &str, src: &Path) -> tempfile::TempDir {
    let keys = tempfile::tempdir().unwrap();
    let prefix = keys.path().join("cosign");
    sourcectl_with_password(&[
        "generate",
        "key-pair",
        "--output-key-prefix",
        prefix.to_str().unwrap(),
    ]);
    sourcectl_with_password(&[
        "push",
        "artifact",
        url,
        "--path",
        src.to_str().unwrap(),
        "--source",
        "s",
        "--revision",
        "r",
        "--insecure-registry",
        "--sign-key",
        keys.path().join("cosign.key").to_str().unwrap(),
    ]);
    keys
}

#[test]
fn cosign_signatures_are_verified_before_pulling() {
    let registry = RegistryBuilder::new().start();
    let url = registry.oci_url("signed/app");
    let src = testdata("podinfo-kustomize");
    let keys = push_signed(&format!("{url}:signed"), &src);
    push(&format!("{url}:unsigned"), &src, &["--insecure-registry"]);
    let secrets = tempfile::tempdir().unwrap();
    write_secret(
        secrets.path(),
        "cosign-keys",
        &[(
            "cosign.pub",
            &std::fs::read(keys.path().join("cosign.pub")).unwrap(),
        )],
    );
    let server = server(secrets.path());
    let k = Kubectl::for_server(&server);
    let object = |name: &str, tag: &str, verify: &str| {
        oci_repository(
            "v1",
            name,
            &format!(
                "  interval: 2s\n  url: {url}\n  insecure: true\n  ref:\n    tag: {tag}\n  verify:\n    provider: cosign\n{verify}"
            ),
        )
    };
    let with_keys = "    secretRef:\n      name: cosign-keys\n";
    apply(&k, &object("signed", "signed", with_keys));
    apply(&k, &object("unsigned", "unsigned", with_keys));
    apply(&k, &object("keyless", "signed", ""));

    wait_ready(&k, "signed", "True", Some("Succeeded"));
    let revision = jsonpath(&k, "signed", "{.status.artifact.revision}");
    assert_eq!(
        jsonpath(
            &k,
            "signed",
            "{.status.conditions[?(@.type==\"SourceVerified\")].message}"
        ),
        format!("verified signature of revision {revision}")
    );
    let message = wait_ready(&k, "unsigned", "False", Some("VerificationError"));
    assert!(
        message.starts_with(
            "failed to verify the signature using provider 'cosign': no signatures found"
        ),
        "{message}"
    );
    assert_eq!(
        jsonpath(&k, "unsigned", "{.status.artifact}"),
        "",
        "nothing pulled"
    );
    // Keyless without trustedRootSecretRef verifies against the embedded public-good root: a
    // key-made signature carries no certificate, so none is found; retried, not stalled.
    let message = wait_ready(&k, "keyless", "False", Some("VerificationError"));
    assert!(
        message.starts_with(
            "failed to verify the signature using provider 'cosign': no signatures found"
        ),
        "{message}"
    );
    assert_eq!(
        jsonpath(
            &k,
            "keyless",
            "{.status.conditions[?(@.type==\"Stalled\")].status}"
        ),
        ""
    );
    assert_eq!(
        jsonpath(&k, "keyless", "{.status.artifact}"),
        "",
        "nothing pulled"
    );
}

#[test]
fn proxy_secret_ref_sends_registry_traffic_through_the_proxy() {
    use base64::Engine as _;
    let registry = RegistryBuilder::new().start();
    push(
        &format!("{}:v1", registry.oci_url("proxied/app")),
        &testdata("podinfo-kustomize"),
        &["--insecure-registry"],
    );
    let proxy = test_support::e2e::HttpProxy::start(registry.host().parse().unwrap());
    let secrets = tempfile::tempdir().unwrap();
    write_secret(
        secrets.path(),
        "proxy",
        &[
            ("address", proxy.url().as_bytes()),
            ("username", b"puser"),
            ("password", b"ppass"),
        ],
    );
    let server = server(secrets.path());
    let k = Kubectl::for_server(&server);
    // A host that does not resolve: only the proxy can reach it.
    apply(
        &k,
        &oci_repository(
            "v1",
            "proxied",
            "  interval: 2s\n  url: oci://registry.invalid:5000/proxied/app\n  insecure: true\n  ref:\n    tag: v1\n  proxySecretRef:\n    name: proxy\n",
        ),
    );
    wait_ready(&k, "proxied", "True", Some("Succeeded"));
    let bytes = download(&k, "v1", "proxied");
    assert_eq!(
        files(untar(&bytes).path()),
        files(&testdata("podinfo-kustomize"))
    );
    let seen = proxy.seen.lock().unwrap().clone();
    let want = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("puser:ppass")
    );
    assert!(
        seen.iter().any(
            |(line, _)| line == "HEAD http://registry.invalid:5000/v2/proxied/app/manifests/v1"
        ),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .all(|(_, auth)| auth.as_deref() == Some(want.as_str())),
        "{seen:?}"
    );
}

/// Keyless: a bundle made by the independent Python test Sigstore (`test_support::sigstore`)
/// verifies against the trusted root from `trustedRootSecretRef` for the right identity, and
/// a wrong issuer or subject is refused before anything is pulled.
#[test]
fn keyless_signatures_are_verified_against_the_trusted_root_and_identity() {
    let registry = RegistryBuilder::new().start();
    let url = registry.oci_url("keyless/app");
    let digest = push_podinfo(&format!("{url}:v1"));
    let sigstore = test_support::sigstore::sign_keyless(&url, &digest, "good");
    let secrets = tempfile::tempdir().unwrap();
    write_secret(
        secrets.path(),
        "sigstore-root",
        &[(
            "trusted_root.json",
            &std::fs::read(sigstore.path().join("trusted_root.json")).unwrap(),
        )],
    );
    let server = server(secrets.path());
    let k = Kubectl::for_server(&server);
    let object = |name: &str, issuer: &str, subject: &str| {
        oci_repository(
            "v1",
            name,
            &format!(
                "  interval: 2s\n  url: {url}\n  insecure: true\n  ref:\n    tag: v1\n  verify:\n    provider: cosign\n    trustedRootSecretRef:\n      name: sigstore-root\n    matchOIDCIdentity:\n    - issuer: '{issuer}'\n      subject: '{subject}'\n"
            ),
        )
    };
    let issuer = r"^https://token\.actions\.githubusercontent\.com$";
    apply(
        &k,
        &object("right", issuer, r"^https://github\.com/org/app/"),
    );
    apply(
        &k,
        &object("wrong-subject", issuer, r"^https://github\.com/other/"),
    );
    apply(
        &k,
        &object("wrong-issuer", r"^https://accounts\.google\.com$", ".*"),
    );

    wait_ready(&k, "right", "True", Some("Succeeded"));
    assert_eq!(
        jsonpath(
            &k,
            "right",
            "{.status.conditions[?(@.type==\"SourceVerified\")].status}"
        ),
        "True"
    );
    for name in ["wrong-subject", "wrong-issuer"] {
        let message = wait_ready(&k, name, "False", Some("VerificationError"));
        assert!(
            message.starts_with(
                "failed to verify the signature using provider 'cosign': signer identity mismatch"
            ),
            "{name}: {message}"
        );
        assert_eq!(
            jsonpath(&k, name, "{.status.artifact}"),
            "",
            "{name}: nothing pulled"
        );
    }
}

/// A tag moved to an unsigned artifact is refused and never replaces the verified artifact that
/// is being served.
#[test]
fn a_tag_moved_to_an_unsigned_artifact_never_replaces_the_verified_one() {
    let registry = RegistryBuilder::new().start();
    let url = registry.oci_url("moving/app");
    let src = testdata("podinfo-kustomize");
    let keys = push_signed(&format!("{url}:stable"), &src);
    let secrets = tempfile::tempdir().unwrap();
    write_secret(
        secrets.path(),
        "cosign-keys",
        &[(
            "cosign.pub",
            &std::fs::read(keys.path().join("cosign.pub")).unwrap(),
        )],
    );
    let server = server(secrets.path());
    let k = Kubectl::for_server(&server);
    apply(
        &k,
        &oci_repository(
            "v1",
            "moving",
            &format!(
                "  interval: 1s\n  url: {url}\n  insecure: true\n  ref:\n    tag: stable\n  verify:\n    provider: cosign\n    secretRef:\n      name: cosign-keys\n"
            ),
        ),
    );
    wait_ready(&k, "moving", "True", Some("Succeeded"));
    let verified_digest = jsonpath(&k, "moving", "{.status.artifact.digest}");
    let verified_bytes = download(&k, "v1", "moving");
    assert_eq!(sha256(&verified_bytes), verified_digest);

    // Move the tag to different, unsigned content.
    let changed = tempfile::tempdir().unwrap();
    test_support::e2e::copy_tree(&src, changed.path());
    std::fs::write(changed.path().join("extra.yaml"), "kind: ConfigMap\n").unwrap();
    let unsigned = push(
        &format!("{url}:stable"),
        changed.path(),
        &["--insecure-registry"],
    );
    let message = wait_ready(&k, "moving", "False", Some("VerificationError"));
    assert!(message.contains("no signatures found"), "{message}");
    assert!(
        message.contains(&unsigned),
        "names the new digest: {message}"
    );
    // The verified artifact is still the one served, reconcile after reconcile: each round
    // requests a reconcile and waits until the server handled it (one object is never
    // reconciled twice at once, so round n also proves round n-1's reconcile finished), with
    // 1 s interval reconciles in between.
    for round in 1..=4 {
        let requested = format!("round-{round}");
        k.run(&[
            "annotate",
            "--overwrite",
            "ocirepository/moving",
            &format!("reconcile.fluxcd.io/requestedAt={requested}"),
        ])
        .ok();
        test_support::e2e::eventually(
            &format!("reconcile request {requested} handled"),
            || {
                (jsonpath(&k, "moving", "{.status.lastHandledReconcileAt}") == requested)
                    .then_some(())
            },
            || test_support::e2e::describe(&k, "moving"),
        );
        assert_eq!(
            jsonpath(&k, "moving", "{.status.artifact.digest}"),
            verified_digest,
            "{requested}"
        );
        assert_eq!(download(&k, "v1", "moving"), verified_bytes, "{requested}");
        let (status, reason, _) = test_support::e2e::ready(&k, "moving");
        assert_eq!(
            (status.as_str(), reason.as_str()),
            ("False", "VerificationError")
        );
    }
    assert_eq!(
        jsonpath(
            &k,
            "moving",
            "{.status.conditions[?(@.type==\"SourceVerified\")].status}"
        ),
        "False"
    );
}
