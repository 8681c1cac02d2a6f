//! End to end, through kubectl against the real server and the real registry: where our
//! OCIRepository behaves as Flux's source-controller does (issue 15, `docs/reconcile.md`,
//! "Flux and us").

use std::path::Path;

use test_support::e2e::{
    apply, download, files, jsonpath, oci_repository, push, testdata, untar, wait_ready,
};
use test_support::kubectl::Kubectl;
use test_support::pki::TestCa;
use test_support::registry::RegistryBuilder;
use test_support::server::{ApiServer, ServerOptions};

fn server(args: &[&str]) -> ApiServer {
    ApiServer::start(
        Path::new(env!("CARGO_BIN_EXE_source-apiserver")),
        ServerOptions {
            args: args.iter().map(|s| (*s).to_owned()).collect(),
            ..Default::default()
        },
    )
}

/// Writes a `kubernetes.io/dockercfg` Secret (the legacy `.dockercfg` format: the `auths` map
/// itself) for `host` into `dir/<name>.yaml`.
fn write_dockercfg_secret(dir: &Path, name: &str, host: &str, user: &str, password: &str) {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let config = format!(
        r#"{{"https://{host}":{{"auth":"{}","email":"ci@example.com"}}}}"#,
        b64(&format!("{user}:{password}"))
    );
    let manifest = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: default\ntype: kubernetes.io/dockercfg\ndata:\n  .dockercfg: {}\n",
        b64(&config)
    );
    std::fs::write(dir.join(format!("{name}.yaml")), manifest).unwrap();
}

#[test]
fn insecure_skips_certificate_verification_and_dockercfg_secrets_authenticate() {
    // A registry with a certificate from a CA the server does not know, behind htpasswd.
    let ca = TestCa::new();
    let registry = RegistryBuilder::new()
        .tls(&ca)
        .htpasswd("alice", "s3cret")
        .start();
    let url = registry.oci_url("internal/app");
    let ca_file = ca.cert_path().to_str().unwrap().to_owned();
    push(
        &format!("{url}:v1"),
        &testdata("podinfo-kustomize"),
        &["--ca-file", &ca_file, "--creds", "alice:s3cret"],
    );
    let secrets = tempfile::tempdir().unwrap();
    write_dockercfg_secret(secrets.path(), "legacy", registry.host(), "alice", "s3cret");
    let server = server(&["--secrets-dir", secrets.path().to_str().unwrap()]);
    let k = Kubectl::new(None, &server.kubeconfig());
    let object = |name: &str, insecure: bool| {
        oci_repository(
            "v1",
            name,
            &format!(
                "  interval: 1h\n  url: {url}\n  insecure: {insecure}\n  ref:\n    tag: v1\n  secretRef:\n    name: legacy\n"
            ),
        )
    };
    apply(&k, &object("skip-verify", true));
    apply(&k, &object("verified", false));

    // insecure: HTTPS without verification (not plain HTTP), authenticated by the .dockercfg.
    wait_ready(&k, "skip-verify", "True", Some("Succeeded"));
    let bytes = download(&k, "v1", "skip-verify");
    assert_eq!(
        files(untar(&bytes).path()),
        files(&testdata("podinfo-kustomize"))
    );
    // Without insecure the unknown CA is refused, as before.
    let message = wait_ready(&k, "verified", "False", Some("AuthenticationFailed"));
    assert!(message.contains("certificate verify failed"), "{message}");
    assert_eq!(
        jsonpath(&k, "skip-verify", "{.status.artifact.revision}")
            .split('@')
            .next(),
        Some("v1")
    );
}

#[test]
fn insecure_still_reaches_a_plain_http_registry() {
    let registry = RegistryBuilder::new().start();
    let url = registry.oci_url("plain/app");
    push(
        &format!("{url}:v1"),
        &testdata("podinfo-kustomize"),
        &["--insecure-registry"],
    );
    let server = server(&[]);
    let k = Kubectl::new(None, &server.kubeconfig());
    apply(
        &k,
        &oci_repository(
            "v1",
            "plain",
            &format!("  interval: 1h\n  url: {url}\n  insecure: true\n  ref:\n    tag: v1\n"),
        ),
    );
    wait_ready(&k, "plain", "True", Some("Succeeded"));
}
